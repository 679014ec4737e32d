"""ONNX Runtime CPU execution provider (MLAS), graph optimizations disabled, one thread.

ORT's Python binding cannot exchange float8e5m2/fnuz, float4 or 4-/2-bit integer tensors with
numpy: such inputs become initializers of the model, and such outputs are followed by an exact
Cast (to float32, or to int8/uint8) whose result is converted back to the op's type; float8e4m3fn
outputs come back as raw bytes and are viewed as float8.
"""
from __future__ import annotations

import numpy as np

from .._dtypes import is_low_float, onnx_enum
from ._errors import EngineUnsupported
from ._onnx_model import build_model, OP_INPUTS, output_dtypes, check_inputs

NAME = "onnxruntime"
PACKAGE = "onnxruntime"
OPS = tuple(OP_INPUTS)
DESCRIPTION = ("onnxruntime InferenceSession, CPUExecutionProvider, ORT_DISABLE_ALL, 1 intra-op "
               "thread; the model is one ONNX node (QGemm in com.microsoft)")


def version():
    import onnxruntime
    return onnxruntime.__version__


def _is_low(dt):
    dt = np.dtype(dt)
    return is_low_float(dt) or str(dt) in ("int4", "uint4", "int2", "uint2")


def _cast_target(dt):
    """(numpy dtype, ONNX enum) an ORT-unfriendly output type is exactly cast to."""
    if is_low_float(dt):
        return np.dtype(np.float32), 1
    return (np.dtype(np.int8), 3) if str(dt).startswith("int") else (np.dtype(np.uint8), 2)


def _empty_reduction(op, ins, attributes):
    """True when the op sums over zero terms into a non-empty output.  onnxruntime 1.32 gets
    that wrong (measured): MatMulInteger, QGemm and ConvInteger return uninitialised memory and
    QLinearMatMul returns 0 instead of y_zero_point (QLinearConv with 0 input channels is right)."""
    if op in ("MatMulInteger", "QLinearMatMul", "QGemm"):
        A, B = (ins["A"], ins["B"]) if op != "QLinearMatMul" else (ins["a"], ins["b"])
        if A.ndim == 0 or B.ndim == 0:
            return False
        if op == "QGemm" and attributes.get("transA", 0):
            K, rows = A.shape[0], A.shape[1:]
        else:
            K, rows = A.shape[-1], A.shape[:-1]
        cols = B.shape[0] if (op == "QGemm" and attributes.get("transB", 0)) else B.shape[-1]
        return K == 0 and int(np.prod(rows)) * int(cols) > 0
    if op == "ConvInteger":
        x, w = ins["x"], ins["w"]
        return w.ndim > 1 and int(np.prod(w.shape[1:])) == 0 and x.shape[0] * w.shape[0] > 0
    return False


def run(op, inputs, attributes, opset=None):
    import onnxruntime as ort
    from onnx import helper
    attributes = attributes or {}
    ins = check_inputs(op, inputs)
    if _empty_reduction(op, ins, attributes):
        raise EngineUnsupported(f"onnxruntime {version()}: {op} with an empty reduction (K = 0 / no input "
                                "channels) returns uninitialised memory (QLinearMatMul: 0, not "
                                "y_zero_point)")
    lowfeed = any(_is_low(a.dtype) for a in ins.values())
    model, feeds = build_model(op, inputs, attributes, opset, dynamic=() if lowfeed else ("x", "A", "a"))
    want = output_dtypes(op, ins, attributes)
    g = model.graph
    cast = {}
    for i, w in enumerate(want):
        if _is_low(w):
            tgt, enum = _cast_target(w)
            name = g.output[i].name
            g.node[0].output[i] = name + "_raw"
            g.node.append(helper.make_node("Cast", [name + "_raw"], [name], to=enum))
            g.output[i].type.tensor_type.elem_type = enum
            cast[i] = w
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    try:
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        outs = sess.run(None, feeds)
    except Exception as e:   # onnxruntime's own exception types (NotImplemented, Fail, InvalidGraph)
        if "NOT_IMPLEMENTED" in str(e) or "Could not find an implementation" in str(e):
            raise EngineUnsupported(f"onnxruntime has no CPU kernel for this {op}: {e}") from e
        if "INVALID_GRAPH" in str(e) and "Type Error: Type 'tensor(" in str(e):
            # e.g. int2/uint2/float4e2m1 in ORT 1.32: the type checker rejects the element type
            t = str(e).split("Type 'tensor(", 1)[1].split(")", 1)[0]
            raise EngineUnsupported(f"onnxruntime {version()} does not accept element type {t} "
                                    f"in this {op} model: {e}") from e
        if "INVALID_ARGUMENT" in str(e):
            # e.g. a conv whose kernel is larger than the padded input ("Invalid input shape"),
            # which the reference refuses too
            raise EngineUnsupported(f"onnxruntime refused the inputs of this {op}: {e}") from e
        raise
    outs = [o.astype(cast[i]) if i in cast else o for i, o in enumerate(outs)]
    return tuple(outs) if len(outs) > 1 else outs[0]
