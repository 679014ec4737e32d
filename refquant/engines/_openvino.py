"""OpenVINO CPU plugin on the one-node ONNX model (read through OpenVINO's ONNX frontend),
compiled with INFERENCE_PRECISION_HINT = f32 and 1 inference thread.

OpenVINO lowers QuantizeLinear/DequantizeLinear to FakeQuantize/Convert subgraphs; only
those two ops are exposed here (its int8 GEMM/conv path depends on the CPU plugin's
low-precision transformations and is not a stable peer).  No refquant profile models
OpenVINO; it is an extra peer for the ONNX-spec ops.
"""
from __future__ import annotations

import os
import tempfile

from ._onnx_model import build_model

PACKAGE = "openvino"


def version():
    import openvino
    return openvino.__version__


def run(op, inputs, attributes, opset=None):
    import openvino as ov
    model, feeds = build_model(op, inputs, attributes, opset)
    core = ov.Core()
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "m.onnx")
        with open(p, "wb") as f:
            f.write(model.SerializeToString())
        m = core.read_model(p)
        cm = core.compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1})
    res = cm(list(feeds.values()))
    outs = [res[o] for o in cm.outputs]
    return tuple(outs) if len(outs) > 1 else outs[0]
