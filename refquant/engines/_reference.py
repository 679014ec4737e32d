"""Run refquant's numpy reference on ONNX-style inputs (the same calling convention as the
engine adapters), with a profile resolved for the op (``Profile.for_op``)."""
from __future__ import annotations

import numpy as np

from ._onnx_model import OP_INPUTS, check_inputs

_FUNCS = {
    "QuantizeLinear": "quantize_linear", "DequantizeLinear": "dequantize_linear",
    "DynamicQuantizeLinear": "dynamic_quantize_linear", "MatMulInteger": "matmul_integer",
    "QLinearMatMul": "qlinear_matmul", "ConvInteger": "conv_integer",
    "QLinearConv": "qlinear_conv", "QGemm": "qgemm",
}
_ATTRS = {
    "QuantizeLinear": ("axis", "block_size", "output_dtype", "saturate", "precision"),
    "DequantizeLinear": ("axis", "block_size", "output_dtype"),
    "DynamicQuantizeLinear": (),
    "MatMulInteger": (),
    "QLinearMatMul": (),
    "ConvInteger": ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"),
    "QLinearConv": ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"),
    "QGemm": ("alpha", "transA", "transB"),
}


def resolve_profile(profile, op):
    """The profile as it applies to ``op`` (op-selected overrides applied; per-axis overrides of
    QuantizeLinear/DequantizeLinear are applied inside those ops)."""
    from ..profile import get_profile
    p = get_profile(profile)
    p.check_op(op)
    return p.for_op(op)


def run_reference(op: str, inputs: dict, attributes: dict | None = None, *, profile="onnx",
                  opset: int | None = None, kernels: bool = False):
    """``refquant.reference.<op>`` on an ONNX-style input dict; a tuple for DynamicQuantizeLinear.
    ``kernels=True``: ``refquant.<op>`` instead (a fast kernel where one covers the call, the
    reference's bits)."""
    if kernels:
        from .. import _dispatch as R
    else:
        from .. import reference as R
    inputs = check_inputs(op, inputs)
    attributes = dict(attributes or {})
    bad = set(attributes) - set(_ATTRS[op])
    if bad:
        raise ValueError(f"attributes: {op} has no attribute(s) {sorted(bad)}; its attributes are "
                         f"{_ATTRS[op]}")
    args = [inputs.get(n) for n in OP_INPUTS[op]]
    while args and args[-1] is None and len(args) > 1:
        args.pop()
    kw = {k: v for k, v in attributes.items() if v is not None}
    if isinstance(kw.get("auto_pad"), bytes):
        kw["auto_pad"] = kw["auto_pad"].decode()
    fn = getattr(R, _FUNCS[op])
    out = fn(*args, profile=resolve_profile(profile, op), opset=opset, **kw)
    return tuple(out) if isinstance(out, (tuple, list)) else np.asarray(out)
