"""Pure-numpy reference implementations: the executable definition of every op.

``refquant.<op>`` may run a fast kernel; ``refquant.reference.<op>`` is always
this code, and both return identical bits.
"""
from .quantize import quantize_linear, dequantize_linear, dynamic_quantize_linear
from .gemm import matmul_integer, qlinear_matmul, qgemm, requantize, accumulator_range
from .conv import conv_integer, qlinear_conv

__all__ = [
    "quantize_linear", "dequantize_linear", "dynamic_quantize_linear",
    "matmul_integer", "qlinear_matmul", "qgemm", "requantize", "accumulator_range",
    "conv_integer", "qlinear_conv",
]
