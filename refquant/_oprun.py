"""Run any supported op by its ONNX name on the reference, and measure differences in output steps.

Shared by the conformance report and the golden recorder::

    run_reference("QLinearMatMul", inputs, attributes, profile="onnx", opset=None)
    diff_steps("QuantizeLinear", a, b, inputs, attributes) -> float64 array of |a - b| in steps

A *step* is one unit of the output's quantization grid: one integer code for integer outputs,
one code position for float8/6/4 outputs (codes ordered by value), one ``x_scale`` for
DequantizeLinear, one ``a_scale * b_scale`` for QGemm's float output, and one unit for the
int32 outputs of MatMulInteger / ConvInteger.  Where exactly one side is NaN the difference is
``inf``; two NaNs are equal.
"""
from __future__ import annotations

import numpy as np

from . import reference as R
from ._dtypes import is_integer, is_low_float
from .reference.quantize import expand_qparam

from .engines._onnx_model import OP_INPUTS  # noqa: E402  (ONNX input names, node order)

_FUNCS = {
    "QuantizeLinear": R.quantize_linear, "DequantizeLinear": R.dequantize_linear,
    "DynamicQuantizeLinear": R.dynamic_quantize_linear, "MatMulInteger": R.matmul_integer,
    "QLinearMatMul": R.qlinear_matmul, "ConvInteger": R.conv_integer,
    "QLinearConv": R.qlinear_conv, "QGemm": R.qgemm,
}


_FAST = {}


def _fast_funcs():
    """{ONNX op: refquant.<op>}: the dispatching functions (a fast kernel where one covers the
    call, else the reference; the same bits either way)."""
    if not _FAST:
        from . import _dispatch as D
        _FAST.update({
            "QuantizeLinear": D.quantize_linear, "DequantizeLinear": D.dequantize_linear,
            "DynamicQuantizeLinear": D.dynamic_quantize_linear, "MatMulInteger": D.matmul_integer,
            "QLinearMatMul": D.qlinear_matmul, "ConvInteger": D.conv_integer,
            "QLinearConv": D.qlinear_conv, "QGemm": D.qgemm})
    return _FAST


def run_reference(op, inputs, attributes=None, *, profile="onnx", opset=None, kernels=False):
    """The reference output of ``op`` (ONNX name) on ``inputs`` (dict keyed by ONNX input names).
    ``kernels=True`` runs ``refquant.<op>`` instead: a fast kernel where one covers the call,
    which returns the reference's bits (REFQUANT_DISABLE_FAST=1 turns the kernels off)."""
    if op not in _FUNCS:
        raise ValueError(f"op: unknown op {op!r}; known: {', '.join(_FUNCS)}")
    names = OP_INPUTS[op]
    extra = set(inputs) - set(names)
    if extra:
        raise ValueError(f"inputs: {op} has no input(s) {sorted(extra)}; its inputs are {names}")
    args = [inputs.get(n) for n in names]
    while args and args[-1] is None:
        args.pop()
    kwargs = dict(attributes or {})
    kwargs["profile"] = profile
    kwargs["opset"] = opset
    return (_fast_funcs() if kernels else _FUNCS)[op](*args, **kwargs)


def _float_codes_ordered(a):
    """Map float8/6/4 values to integers ordered like the values (-0 and +0 both to 0)."""
    f = np.asarray(a).astype(np.float64)
    vals = np.unique(np.arange(256, dtype=np.uint8).view(a.dtype).astype(np.float64)) \
        if a.dtype.itemsize == 1 else None
    vals = vals[~np.isnan(vals)]
    pos = np.searchsorted(vals, f).astype(np.float64)
    zero = np.searchsorted(vals, 0.0)
    pos = pos - zero
    pos[np.isnan(f)] = np.nan
    return pos


def diff_steps(op, a, b, inputs=None, attributes=None):
    """|a - b| in output steps (see module docstring), elementwise, as float64."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"observed: shape {b.shape} differs from the expected {a.shape}")
    attributes = attributes or {}
    if is_low_float(a.dtype):
        fa, fb = _float_codes_ordered(a), _float_codes_ordered(b.astype(a.dtype))
    elif is_integer(a.dtype):
        fa, fb = a.astype(np.float64), b.astype(np.float64)
    else:
        fa, fb = a.astype(np.float64), b.astype(np.float64)
        step = None
        if op == "DequantizeLinear" and inputs is not None:
            s = np.asarray(inputs["x_scale"]).astype(np.float64)
            ax = attributes.get("axis", 1)
            ax = ax % a.ndim if a.ndim else 0
            step = expand_qparam(s, a.shape, ax, attributes.get("block_size", 0), argname="x_scale")
        elif op == "QGemm" and inputs is not None:
            sa = np.asarray(inputs["a_scale"]).astype(np.float64)
            sb = np.asarray(inputs["b_scale"]).astype(np.float64)
            step = sa * sb * abs(float(attributes.get("alpha", 1.0)) or 1.0)
        if step is not None:
            fa, fb = fa / step, fb / step
    with np.errstate(invalid="ignore"):
        d = np.abs(fa - fb)
    na, nb = np.isnan(fa), np.isnan(fb)
    d = np.where(na & nb, 0.0, np.where(na ^ nb, np.inf, d))
    # equal infinities
    d = np.where(np.isinf(fa) & (fa == fb), 0.0, d)
    return d
