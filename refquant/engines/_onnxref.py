"""onnx.reference.ReferenceEvaluator (onnx's numpy implementation of the spec)."""
from __future__ import annotations

from ._onnx_model import build_model, OP_INPUTS

NAME = "onnx-reference"
PACKAGE = "onnx"
OPS = tuple(op for op in OP_INPUTS if op != "QGemm")
DESCRIPTION = "onnx.reference.ReferenceEvaluator on a one-node model"


def version():
    import onnx
    return onnx.__version__


def run(op, inputs, attributes, opset=None):
    from onnx.reference import ReferenceEvaluator
    model, feeds = build_model(op, inputs, attributes, opset)
    outs = ReferenceEvaluator(model).run(None, feeds)
    return tuple(outs) if len(outs) > 1 else outs[0]
