"""Large live sweeps (marked slow): every engine-modelled profile, every op it models, hundreds
of tie-, saturation- and special-value-concentrated cases including sizes 1000+ and |acc| > 2^24.
Run with ``pytest -m slow tests/test_profiles_sweep.py``."""
from __future__ import annotations

import zlib

import numpy as np
import pytest

from refquant import engines as E
from _profiles_live import need, assert_exact, CS

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:.*quantized tensor creation functions:UserWarning"),
              pytest.mark.filterwarnings("ignore::RuntimeWarning")]
N_CASES = 300

Q_TYPES = {"onnxruntime": ["int8", "uint8", "int16", "uint16"], "onnx-reference": ["int8", "uint8", "int16", "uint16"],
           "pytorch": ["int8", "uint8"], "pytorch-fakequant": ["int8", "uint8", "int16", "uint16"],
           "tflite-reference": ["int8", "uint8", "int16"], "tflite-optimized": ["int8", "uint8", "int16"],
           "tflite-xnnpack": ["int8", "uint8"]}
LIN = {"onnxruntime": ("uint8", "int32"), "onnx-reference": ("uint8", "int32"), "pytorch-fbgemm": ("uint8", "float32"),
       "pytorch-x86": ("uint8", "float32"), "pytorch-qnnpack": ("uint8", "int32"),
       "pytorch-onednn": ("uint8", "float32"), "tflite-reference": ("int8", "int32"),
       "tflite-optimized": ("int8", "int32"), "tflite-xnnpack": ("int8", "int32")}


def _xnn_scale(engine, inp, key, fallback):
    if engine == "tflite-xnnpack" and abs(float(np.max(inp[key]))) < 2.0 ** -126:
        inp[key] = np.float32(fallback)


@pytest.mark.parametrize("engine", sorted(Q_TYPES))
def test_quantize_dequantize_sweep(engine):
    need(engine)
    rng = np.random.default_rng(zlib.crc32(engine.encode()))
    types = Q_TYPES[engine]
    per_axis_ok = not engine.startswith("tflite")
    for i in range(N_CASES):
        dt = types[i % len(types)]
        pa = per_axis_ok and i % 3 == 1
        n = int(rng.choice(CS.sizes(large=(i % 10 == 0))))
        inp = CS.quantize_case(rng, n, dt, per_axis=pa)
        _xnn_scale(engine, inp, "y_scale", 0.0173)
        assert_exact(engine, engine, "QuantizeLinear", inp, {"axis": 1} if pa else {}, what=f"case {i}")
        if engine != "pytorch-fakequant":
            dinp = CS.dequantize_case(rng, n, dt, per_axis=pa)
            _xnn_scale(engine, dinp, "x_scale", 0.3)
            if engine.startswith("tflite") and dt == "int16":
                dinp["x_zero_point"] = np.int16(0)    # LiteRT: int16 DEQUANTIZE requires zero point 0
            assert_exact(engine, engine, "DequantizeLinear", dinp, {"axis": 1} if pa else {}, what=f"case {i}")


@pytest.mark.parametrize("engine", sorted(LIN))
def test_requantizing_ops_sweep(engine):
    need(engine)
    ad, bias_dtype = LIN[engine]
    rng = np.random.default_rng(zlib.crc32(engine.encode()))
    for i in range(N_CASES):
        tie, pc = i % 2 == 0, i % 3 == 1
        large = i % 20 == 19
        K = 2048 if large else int(rng.choice(CS.sizes(large=(i % 15 == 0))))
        M, N = int(rng.integers(1, 9)), int(rng.integers(1, 17))
        sym = engine == "pytorch-onednn" or ad == "int8" or i % 2 == 0
        d = CS.matmul_case(rng, M, K, N, a_dtype=ad, per_column=pc, tie=tie, large=large, b_symmetric=sym)
        assert_exact(engine, engine, "QLinearMatMul", d, what=f"case {i}")
        if engine != "onnx-reference":
            g = CS.to_qgemm(CS.matmul_case(rng, M, K, N, a_dtype=ad, per_column=pc, tie=tie, bias=True,
                                           bias_dtype=bias_dtype, b_symmetric=sym))
            assert_exact(engine, engine, "QGemm", g, what=f"case {i}")
        k = int(rng.choice([1, 3]))
        H, W = int(rng.integers(k + 1, 10)), int(rng.integers(k + 1, 10))
        c, attrs = CS.conv_case(rng, 1, int(rng.integers(1, 6)), H, W, int(rng.integers(1, 8)), k, k, x_dtype=ad,
                                per_channel=pc, tie=tie, pads=(1, 1, 1, 1) if (k == 3 and i % 2 == 0) else (0,) * 4,
                                bias_dtype=bias_dtype)
        assert_exact(engine, engine, "QLinearConv", c, attrs, what=f"case {i}")


@pytest.mark.parametrize("engine", ["onnxruntime", "onnx-reference"])
def test_integer_and_dynamic_sweep(engine):
    need(engine)
    rng = np.random.default_rng(7)
    for i in range(N_CASES // 2):
        n = int(rng.choice(CS.sizes(large=True)))
        x = np.zeros(n, np.float32) if i % 7 == 0 else (rng.standard_normal(n) * rng.choice([1e-3, 1, 300])).astype(np.float32)
        assert_exact(engine, engine, "DynamicQuantizeLinear", {"x": x})
        d = CS.matmul_case(rng, int(rng.integers(1, 9)), int(rng.choice(CS.sizes())), int(rng.integers(1, 9)),
                           a_dtype=["uint8", "int8"][i % 2], b_symmetric=False, per_column=i % 3 == 0)
        assert_exact(engine, engine, "MatMulInteger", {"A": d["a"], "B": d["b"], "a_zero_point": d["a_zero_point"],
                                                       "b_zero_point": d["b_zero_point"]})
        c, attrs = CS.conv_case(rng, 1, int(rng.integers(1, 4)), 6, 7, int(rng.integers(1, 5)), 3, 3,
                                x_dtype=["uint8", "int8"][i % 2], pads=(1, 1, 1, 1))
        assert_exact(engine, engine, "ConvInteger", {"x": c["x"], "w": c["w"], "x_zero_point": c["x_zero_point"]}, attrs)
