"""Shared helpers for the live profile tests (tests/test_profiles_*.py): run one op on a real
engine and on refquant's reference with a profile, and assert bit-exactness, reporting any
difference in integer output steps."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from refquant import engines as E
from refquant.engines import cases as CS

warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")

PACKAGE_OF = {
    "onnxruntime": "onnxruntime", "onnx-reference": "onnx", "openvino": "openvino",
    "pytorch": "torch", "pytorch-fakequant": "torch", "pytorch-fbgemm": "torch", "pytorch-x86": "torch",
    "pytorch-qnnpack": "torch", "pytorch-onednn": "torch", "tflite-reference": "ai_edge_litert",
    "tflite-optimized": "ai_edge_litert", "tflite-xnnpack": "ai_edge_litert",
}


def _torch_quantize_rounds_before_zero_point():
    """True when this torch build's quantize_per_tensor computes rne(x * (1/s)) + zp (ATen's
    native quantize_val, as torch 2.11.0+cu130 did on an Intel host) instead of fbgemm's
    rne(fma(x, 1/s, zp)) that the ``pytorch`` profile models (torch 2.13.0+cpu): the tie
    x/s = 2.5 with zp 1 gives 3 there and 4 here."""
    import torch
    q = torch.quantize_per_tensor(torch.tensor([2.5]), 1.0, 1, torch.quint8)
    return int(q.int_repr()[0]) == 3


def need(engine):
    """Skip (with the reason) when the engine's package is missing."""
    pkg = PACKAGE_OF[engine]
    pytest.importorskip(pkg, reason=f"live check needs {pkg} for engine {engine!r}")
    if engine == "pytorch" and _torch_quantize_rounds_before_zero_point():
        import torch
        pytest.skip(f"torch {torch.__version__} quantizes as rne(x*(1/s)) + zp (ATen's quantize_val, "
                    f"the pytorch-fakequant arithmetic), not fbgemm's rne(fma(x, 1/s, zp)) that the "
                    f"pytorch profile models (torch 2.13)")
    if engine.startswith("pytorch-") and engine != "pytorch-fakequant":
        import torch
        q = engine.split("-", 1)[1]
        if q not in torch.backends.quantized.supported_engines:
            pytest.skip(f"torch quantized engine {q!r} is not built into this torch")


def assert_exact(engine, profile, op, inputs, attributes=None, *, opset=None, what=""):
    """Engine output == reference output with ``profile``, bit for bit.  Returns the element count."""
    r = CS.check_engine(engine, profile, op, inputs, attributes, opset=opset)
    assert r["n_diff"] == 0, (
        f"{profile} vs {engine} {op} {what}: {r['n_diff']} of {r['n']} elements differ, max "
        f"{r['max_steps']} output steps; first (index, reference, engine): {r['first']}")
    return r["n"]


def engine_differs(engine, profile, op, inputs, attributes=None, *, opset=None):
    """(n_diff, max_steps) between the engine and the profile (for asserting known deviations)."""
    r = CS.check_engine(engine, profile, op, inputs, attributes, opset=opset)
    return r["n_diff"], r["max_steps"]


rng_for = np.random.default_rng
