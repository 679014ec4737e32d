"""Top-level ops: run a fast kernel when one covers the call, else the numpy reference.

Both paths return identical bits.  ``refquant.last_path()`` tells which ran.
(Initial version: every op runs the reference.)
"""
from __future__ import annotations

from . import reference as _ref

_LAST = {"op": None, "path": None}


def last_path():
    """{'op': name, 'path': 'reference' | kernel name} of the most recent top-level op call."""
    return dict(_LAST)


def _ran(op, path):
    _LAST["op"] = op
    _LAST["path"] = path


def quantize_linear(*args, **kwargs):
    _ran("QuantizeLinear", "reference")
    return _ref.quantize_linear(*args, **kwargs)


def dequantize_linear(*args, **kwargs):
    _ran("DequantizeLinear", "reference")
    return _ref.dequantize_linear(*args, **kwargs)


def dynamic_quantize_linear(*args, **kwargs):
    _ran("DynamicQuantizeLinear", "reference")
    return _ref.dynamic_quantize_linear(*args, **kwargs)


def matmul_integer(*args, **kwargs):
    _ran("MatMulInteger", "reference")
    return _ref.matmul_integer(*args, **kwargs)


def qlinear_matmul(*args, **kwargs):
    _ran("QLinearMatMul", "reference")
    return _ref.qlinear_matmul(*args, **kwargs)


def qgemm(*args, **kwargs):
    _ran("QGemm", "reference")
    return _ref.qgemm(*args, **kwargs)


def conv_integer(*args, **kwargs):
    _ran("ConvInteger", "reference")
    return _ref.conv_integer(*args, **kwargs)


def qlinear_conv(*args, **kwargs):
    _ran("QLinearConv", "reference")
    return _ref.qlinear_conv(*args, **kwargs)


def requantize(*args, **kwargs):
    _ran("Requantize", "reference")
    return _ref.requantize(*args, **kwargs)
