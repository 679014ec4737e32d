"""The TensorRT golden recorder's network construction, checked by running the same Q/DQ
graphs on onnxruntime (TensorRT itself needs an NVIDIA GPU and is not installable here)."""
from __future__ import annotations

import numpy as np
import pytest

from refquant import golden
from refquant._oprun import run_reference
from refquant._tensorrt_recorder import _onnx_graph
from refquant.engines._errors import EngineUnsupported
from _ort_versions import ort_before

ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")


def _run(model, feeds):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return s.run(["y"], feeds)[0]


def test_recorder_graphs_run_and_recover_codes():
    n_q = n_lin = n_na = 0
    for c in golden.standard_cases():
        try:
            model, feeds, post = _onnx_graph(c)
        except EngineUnsupported as exc:
            assert "symmetric" in str(exc) or "TensorRT" in str(exc)
            n_na += 1
            continue
        if "fp16" in c.name and c.op == "QuantizeLinear" and (c.opset or 0) >= 23 and ort_before(1, 32):
            continue      # (ORT <= 1.31 divides float16 in float32 at opset 23 too)
        got = post(_run(model, feeds))
        want = run_reference(c.op, c.inputs, c.attributes, opset=c.opset, profile="onnxruntime")
        if c.op in ("QuantizeLinear", "DequantizeLinear"):
            same = (got.astype(np.float64) == want.astype(np.float64)) | (
                np.isnan(got.astype(np.float64)) & np.isnan(want.astype(np.float64)))
            # unfused Q->DQ->recovery is exact except where the fp8 cast saturates NaN/Inf
            assert same.mean() > 0.97, c.name
            n_q += 1
        else:
            # float Conv/MatMul between Q/DQ pairs: at most one step from the integer pipeline
            assert np.abs(got.astype(np.int64) - want.astype(np.int64)).max() <= 1, c.name
            n_lin += 1
    assert n_q >= 5 and n_lin >= 1 and n_na >= 5


def test_asymmetric_case_gets_tensorrts_message():
    c = golden.Case("a", "QuantizeLinear", {"x": np.ones(3, np.float32), "y_scale": np.float32(1),
                                            "y_zero_point": np.int8(3)})
    with pytest.raises(EngineUnsupported, match="zeroPt must be all zeros"):
        _onnx_graph(c)
