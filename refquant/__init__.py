"""refquant: the bit-exact reference for low-bit quantized arithmetic, with fast kernels.

``refquant.<op>`` runs a fast kernel where one covers the call and the numpy
reference otherwise (``refquant.last_path()`` says which); ``refquant.reference.<op>``
is always the pure-numpy definition.  Both return identical bits.
"""
from ._version import __version__
from ._dtypes import resolve_dtype, qrange
from .profile import Profile, ProfileError, get_profile, profiles, register_profile
from .packing import pack, unpack
from ._dispatch import (
    quantize_linear, dequantize_linear, dynamic_quantize_linear,
    matmul_integer, qlinear_matmul, qgemm, requantize,
    conv_integer, qlinear_conv, last_path,
)
from .reference.gemm import accumulator_range
from ._config import show_config
from . import reference

__all__ = [
    "__version__", "Profile", "ProfileError", "get_profile", "profiles", "register_profile",
    "resolve_dtype", "qrange", "pack", "unpack",
    "quantize_linear", "dequantize_linear", "dynamic_quantize_linear",
    "matmul_integer", "qlinear_matmul", "qgemm", "requantize", "accumulator_range",
    "conv_integer", "qlinear_conv", "last_path", "show_config", "reference",
]
