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

import numpy as np

from ._errors import EngineUnsupported
from ._onnx_model import build_model, output_dtypes

PACKAGE = "openvino"


def version():
    import openvino
    return openvino.__version__


def _is_low(dt):
    """Element types OpenVINO's Python binding cannot take from numpy as a graph input
    (ml_dtypes' sub-byte integers, float8/float6/float4 and bfloat16: "ParameterMismatch:
    Failed to set tensor")."""
    return np.dtype(dt).type.__module__ != "numpy"     # float8_e5m2 has kind 'f', not 'V'


def run(op, inputs, attributes, opset=None):
    import openvino as ov
    x = np.asarray(inputs["x"])
    # a low-precision x travels as an initializer (as onnxruntime's adapter does, and as
    # compressed int4/float8 weights do in OpenVINO's own models)
    model, feeds = build_model(op, inputs, attributes, opset, dynamic=() if _is_low(x.dtype) else ("x",))
    _dynamic_if_empty(model, feeds)
    core = ov.Core()
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "m.onnx")
        with open(p, "wb") as f:
            f.write(model.SerializeToString())
        try:
            m = core.read_model(p)
            cm = core.compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1})
        except RuntimeError as e:
            # e.g. int2/uint2 ("Unsupported type"), float4e2m1 outputs ("Bad format for f8
            # conversion type"), int32 QuantizeLinear outputs (unconverted op)
            msg = " ".join(ln.strip() for ln in str(e).splitlines()
                           if ln.strip() and not ln.startswith(("Exception from", "Check 'false'")))
            raise EngineUnsupported(f"OpenVINO {version().split('-')[0]} cannot load/compile this {op} "
                                    f"model: {msg[:300]}") from e
    res = cm(list(feeds.values()))
    shape = x.shape if op == "QuantizeLinear" else None
    outs = [_as_dtype(np.asarray(res[o]), dt, shape)
            for o, dt in zip(cm.outputs, output_dtypes(op, inputs, attributes))]
    for o in outs:
        if o.shape != x.shape:
            # OpenVINO 2026.4 turns an empty 1-D constant (a low-precision x of shape (0,)) into a
            # scalar and returns shape ()
            raise EngineUnsupported(f"OpenVINO returned shape {o.shape} for {op} of an x of shape "
                                    f"{x.shape}")
    return tuple(outs) if len(outs) > 1 else outs[0]


def _dynamic_if_empty(model, feeds):
    """Give every zero-size graph input dynamic dimensions.  OpenVINO 2026.4's ONNX frontend
    drops a graph input of static shape (0,) from the model (read_model lists no inputs), and
    the inference request then fails with "vector::_M_range_check" (other zero-size shapes such
    as (0, 3) keep their input); with dynamic dimensions the input stays and the empty tensor
    runs.  The ops here are elementwise (scale/zero point are initializers), so dynamic
    dimensions change nothing else."""
    for vi in model.graph.input:
        a = feeds.get(vi.name)
        if a is not None and np.size(a) == 0:
            for i, d in enumerate(vi.type.tensor_type.shape.dim):
                d.dim_param = f"{vi.name}_d{i}"


def _as_dtype(a, dt, shape):
    """OpenVINO hands sub-byte outputs back packed (ONNX layout) and float8 as raw bytes."""
    from .._dtypes import bits
    from ..packing import unpack
    if a.dtype == dt:
        return a
    if bits(dt) < 8 and shape is not None:
        return unpack(np.ascontiguousarray(a).reshape(-1).view(np.uint8), dt, shape)
    if a.dtype.itemsize == dt.itemsize and a.dtype.kind in "iu":
        return a.view(dt)
    return a
