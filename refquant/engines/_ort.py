"""ONNX Runtime CPU execution provider (MLAS), graph optimizations disabled, one thread."""
from __future__ import annotations

import numpy as np

from .._dtypes import is_low_float
from ._onnx_model import build_model, OP_INPUTS, output_dtypes, check_inputs

NAME = "onnxruntime"
PACKAGE = "onnxruntime"
OPS = tuple(OP_INPUTS)
DESCRIPTION = ("onnxruntime InferenceSession, CPUExecutionProvider, ORT_DISABLE_ALL, 1 intra-op "
               "thread; the model is one ONNX node (QGemm in com.microsoft)")


def version():
    import onnxruntime
    return onnxruntime.__version__


def run(op, inputs, attributes, opset=None):
    import onnxruntime as ort
    model, feeds = build_model(op, inputs, attributes, opset)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    outs = sess.run(None, feeds)
    # ORT's Python binding hands float8 outputs back as raw uint8 bytes: view them as the type
    want = output_dtypes(op, check_inputs(op, inputs), attributes or {})
    outs = [o.view(w) if o.dtype == np.uint8 and w != o.dtype and w.itemsize == 1 and is_low_float(w)
            else o for o, w in zip(outs, want)]
    return tuple(outs) if len(outs) > 1 else outs[0]
