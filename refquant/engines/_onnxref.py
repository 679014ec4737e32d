"""onnx.reference.ReferenceEvaluator (onnx's numpy implementation of the spec).

Limits of onnx.reference (onnx 1.23) that the adapter reports as EngineUnsupported instead of
letting onnx's own exception escape:

* DequantizeLinear below opset 19: onnx.reference implements DequantizeLinear-19/21/23/25
  only, so a model importing opset 10..18 (DequantizeLinear-10 / -13) has no implementation
  ("No implementation for operator 'DequantizeLinear' ... and version 13"); every other op
  refquant runs here has an implementation from its first opset on.
* DynamicQuantizeLinear of an empty x: its numpy min()/max() has no identity for a zero-size
  array (onnxruntime returns y_scale 1, y_zero_point 0 there).
* an output type its QuantizeLinear does not know (int32: "not a supported quantized type").
"""
from __future__ import annotations

import re

from ._errors import EngineUnsupported
from ._onnx_model import build_model, OP_INPUTS

NAME = "onnx-reference"
PACKAGE = "onnx"
OPS = tuple(op for op in OP_INPUTS if op != "QGemm")
DESCRIPTION = "onnx.reference.ReferenceEvaluator on a one-node model"

_NO_IMPL = re.compile(r"No implementation for operator '([^']*)' domain '([^']*)' and version (\d+), "
                      r"found ([0-9, ]+)")


def version():
    import onnx
    return onnx.__version__


def run(op, inputs, attributes, opset=None):
    from onnx.reference import ReferenceEvaluator
    model, feeds = build_model(op, inputs, attributes, opset)
    try:
        ev = ReferenceEvaluator(model)
    except RuntimeError as e:
        m = _NO_IMPL.search(str(e))
        if m is None:
            raise
        asked = int(m.group(3))
        have = [int(v) for v in m.group(4).replace(" ", "").split(",") if v]
        raise EngineUnsupported(
            f"onnx.reference (onnx {version()}) has no implementation of {op} at opset {asked}: it "
            f"implements {op} from opset {min(have)} on (versions {', '.join(map(str, have))}); "
            f"ask for opset >= {min(have)}") from e
    try:
        outs = ev.run(None, feeds)
    except ValueError as e:
        if "zero-size array" in str(e) and any(getattr(v, "size", 1) == 0 for v in feeds.values()):
            raise EngineUnsupported(f"onnx.reference (onnx {version()}) cannot run {op} on an empty "
                                    f"input: {e}") from e
        if "is not a supported quantized type" in str(e):
            # e.g. an int32 QuantizeLinear output (not an ONNX QuantizeLinear type either;
            # onnxruntime has no kernel for it)
            raise EngineUnsupported(f"onnx.reference (onnx {version()}): {op}: {e}") from e
        raise
    return tuple(outs) if len(outs) > 1 else outs[0]
