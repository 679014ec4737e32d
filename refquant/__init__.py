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
# imported eagerly: the function shares its name with the submodule refquant.explain, and a
# later ``import refquant.explain`` must not rebind refquant.explain to the module
from .explain import explain, Explanation


def _warn_if_unbuilt():
    """A source checkout imported before its kernels were built (``pip install .`` installs a
    built copy elsewhere, but Python run from the checkout's root imports this folder): say so,
    as every op would otherwise run the numpy reference silently (same bits, much slower)."""
    import importlib.machinery
    import os
    here = os.path.dirname(os.path.abspath(__file__))
    if os.environ.get("REFQUANT_DISABLE_FAST") or not os.path.isfile(os.path.join(here, "..", "setup.py")):
        return
    if any(os.path.isfile(os.path.join(here, "_gemm" + sfx)) for sfx in importlib.machinery.EXTENSION_SUFFIXES):
        return
    import warnings
    warnings.warn(
        f"refquant is imported from the source folder {here}, whose C kernels are not built: every "
        "op runs the numpy reference (same bits, slower). Build them in place with "
        "`pip install -e .` (or `python setup.py build_ext --inplace`), or run Python from "
        "another folder to use an installed copy. REFQUANT_DISABLE_FAST=1 silences this.",
        RuntimeWarning, stacklevel=3)


_warn_if_unbuilt()

# Names whose modules load on first use (heavier imports, optional engines).
_LAZY = {
    "tensorrt_profile": ("refquant._builtin_profiles", "tensorrt_profile"),
    "compute_scale_zero_point": ("refquant.calibration", "compute_scale_zero_point"),
    "calibrate": ("refquant.calibration", "calibrate"),
    "compare_tools": ("refquant.calibration", "compare_tools"),
    "CalibrationResult": ("refquant.calibration", "CalibrationResult"),
    "pack_weights": ("refquant._dispatch", "pack_weights"),
    "quantize_linear_packed": ("refquant._dispatch", "quantize_linear_packed"),
    "kernel_info": ("refquant._dispatch", "kernel_info"),
    "compiled_isas": ("refquant._config", "compiled_isas"),
    "cpu_features": ("refquant._config", "cpu_features"),
    "PackedWeights": ("refquant._packed", "PackedWeights"),
    "set_num_threads": ("refquant._config", "set_num_threads"),
    "get_num_threads": ("refquant._config", "get_num_threads"),
    "config_dict": ("refquant._config", "config_dict"),
    "run_conformance": ("refquant.conformance", "run_conformance"),
    "run_model": ("refquant.model", "run_model"),
    "plan_fusions": ("refquant.model", "plan_fusions"),
    "compare_model": ("refquant.compare", "compare_model"),
    "CompareResult": ("refquant.compare", "CompareResult"),
    "lint_model": ("refquant.lint", "lint_model"),
    "engines": ("refquant.engines", None),
    "golden": ("refquant.golden", None),
}


def __getattr__(name):
    try:
        modname, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'refquant' has no attribute {name!r}") from None
    import importlib
    mod = importlib.import_module(modname)
    value = mod if attr is None else getattr(mod, attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))

__all__ = [
    "__version__", "Profile", "ProfileError", "get_profile", "profiles", "register_profile",
    "resolve_dtype", "qrange", "pack", "unpack",
    "quantize_linear", "dequantize_linear", "dynamic_quantize_linear",
    "matmul_integer", "qlinear_matmul", "qgemm", "requantize", "accumulator_range",
    "conv_integer", "qlinear_conv", "last_path", "show_config", "reference", "explain",
    "Explanation",
] + sorted(_LAZY)
