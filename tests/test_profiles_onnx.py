"""'onnx-reference' verified live against onnx.reference.ReferenceEvaluator, the 'onnx' spec
profile's relation to ONNX Runtime, and OpenVINO as an extra peer for the spec ops."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from refquant import reference as R
from refquant import engines as E
from _profiles_live import need, assert_exact, engine_differs, CS

SEEDS = st.integers(0, 2 ** 32 - 1)
ENG = "onnx-reference"
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@settings(max_examples=40, deadline=None)
@given(seed=SEEDS, n=st.sampled_from(CS.sizes()), dtype=st.sampled_from(["int8", "uint8", "int16", "uint16"]),
       per_axis=st.booleans())
def test_quantize(seed, n, dtype, per_axis):
    need(ENG)
    inp = CS.quantize_case(np.random.default_rng(seed), n, dtype, per_axis=per_axis)
    assert_exact(ENG, "onnx-reference", "QuantizeLinear", inp, {"axis": 1} if per_axis else {})


def test_quantize_int32_wrap_table():
    """SEMANTICS 1.3: NaN/+Inf/3e9 -> INT32_MIN before the clip; a negative zp wraps to qmax."""
    need(ENG)
    x = np.float32([np.nan, np.inf, 3e9])
    for zp, want in [(np.uint8(0), [0, 0, 0]), (np.int8(0), [-128] * 3), (np.int8(-1), [127] * 3)]:
        assert R.quantize_linear(x, np.float32(1), zp, profile="onnx-reference").tolist() == want
        assert_exact(ENG, "onnx-reference", "QuantizeLinear", {"x": x, "y_scale": np.float32(1), "y_zero_point": zp})


@settings(max_examples=10, deadline=None)
@given(seed=SEEDS)
def test_quantize_int32_input_divides_in_float64(seed):
    need(ENG)
    rng = np.random.default_rng(seed)
    x = rng.integers(-2 ** 31, 2 ** 31 - 1, 50).astype(np.int32)
    inp = {"x": x, "y_scale": np.float32(rng.uniform(1e6, 1e8)), "y_zero_point": np.int8(0)}
    assert_exact(ENG, "onnx-reference", "QuantizeLinear", inp)


@settings(max_examples=15, deadline=None)
@given(seed=SEEDS, dtype=st.sampled_from(["int8", "uint8", "int16", "int32"]), per_axis=st.booleans())
def test_dequantize(seed, dtype, per_axis):
    need(ENG)
    rng = np.random.default_rng(seed)
    inp = CS.dequantize_case(rng, int(rng.choice(CS.sizes())), dtype, per_axis=per_axis)
    if dtype == "int32":
        inp.pop("x_zero_point")
        big = [16777217, -16777219, 2 ** 31 - 1]               # fl32(x) rounds above 2^24
        inp["x"].reshape(-1)[:min(3, inp["x"].size)] = big[:min(3, inp["x"].size)]
    assert_exact(ENG, "onnx-reference", "DequantizeLinear", inp, {"axis": 1} if per_axis else {})


@settings(max_examples=15, deadline=None)
@given(seed=SEEDS, n=st.sampled_from(CS.sizes(large=True)), zeros=st.booleans())
def test_dynamic_quantize(seed, n, zeros):
    need(ENG)
    rng = np.random.default_rng(seed)
    x = np.zeros(n, np.float32) if zeros else (rng.standard_normal(n) * rng.choice([1e-3, 1, 300])).astype(np.float32)
    assert_exact(ENG, "onnx-reference", "DynamicQuantizeLinear", {"x": x})


def test_dynamic_quantize_all_zero_scale():
    need(ENG)
    _, s, _ = R.dynamic_quantize_linear(np.zeros(4, np.float32), profile="onnx-reference")
    assert float(s) == np.float32(1.0 / 255.0)
    n_diff, _ = engine_differs("onnxruntime", "onnx-reference", "DynamicQuantizeLinear",
                               {"x": np.zeros(4, np.float32)}) if E.ENGINES["onnxruntime"].importable() else (1, 0)
    assert n_diff >= 1


@settings(max_examples=30, deadline=None)
@given(seed=SEEDS, ab=st.sampled_from([("uint8", "int8"), ("int8", "int8"), ("uint8", "uint8")]),
       K=st.sampled_from(CS.sizes()), per_column=st.booleans(), tie=st.booleans())
def test_qlinear_matmul(seed, ab, K, per_column, tie):
    need(ENG)
    rng = np.random.default_rng(seed)
    d = CS.matmul_case(rng, int(rng.integers(1, 9)), K, int(rng.integers(1, 9)), a_dtype=ab[0], b_dtype=ab[1],
                       per_column=per_column, tie=tie, b_symmetric=bool(rng.integers(0, 2)))
    assert_exact(ENG, "onnx-reference", "QLinearMatMul", d)


@settings(max_examples=25, deadline=None)
@given(seed=SEEDS, sdt=st.sampled_from(["float16", "bfloat16"]), ab=st.sampled_from([("uint8", "int8"), ("uint8", "uint8")]),
       per_column=st.booleans())
def test_qlinear_matmul_21_narrow_scales(seed, sdt, ab, per_column):
    """QLinearMatMul-21 with float16 / bfloat16 scales: the evaluator forms M in the scales' type
    (a_scale * b_scale / y_scale on float16 arrays), rq_multiplier="scale_type"."""
    need(ENG)
    import ml_dtypes
    dt = np.float16 if sdt == "float16" else ml_dtypes.bfloat16
    rng = np.random.default_rng(seed)
    M, K, N = (int(v) for v in rng.integers(1, 17, 3))
    a = rng.integers(0, 256, (M, K)).astype(ab[0])
    b = (rng.integers(-128, 128, (K, N)) if ab[1] == "int8" else rng.integers(0, 256, (K, N))).astype(ab[1])
    bs = (rng.uniform(0.001, 0.1, N) if per_column else rng.uniform(0.001, 0.1, ())).astype(dt)
    inp = {"a": a, "a_scale": np.asarray(rng.uniform(0.001, 0.1), dt), "a_zero_point": np.asarray(rng.integers(0, 256), a.dtype),
           "b": b, "b_scale": bs, "b_zero_point": np.zeros(bs.shape, b.dtype),
           "y_scale": np.asarray(rng.uniform(0.05, 2.0), dt), "y_zero_point": np.asarray(rng.integers(0, 256), np.uint8)}
    assert_exact(ENG, "onnx-reference", "QLinearMatMul", inp, opset=21)


def test_qlinear_matmul_21_float16_scale_rounding():
    """acc 4400, scales 0.1 * 0.1 / 0.3 in float16: M = 0.03329 (float32 M would give 0.033312):
    4400 * M = 146.50 -> 146 where the float32 multiplier gives 147."""
    need(ENG)
    h = np.float16
    inp = {"a": np.array([[44]], np.uint8), "a_scale": h(0.1), "a_zero_point": np.uint8(0),
           "b": np.array([[100]], np.uint8), "b_scale": h(0.1), "b_zero_point": np.uint8(0),
           "y_scale": h(0.3), "y_zero_point": np.uint8(0)}
    args = [inp[k] for k in E.OP_INPUTS["QLinearMatMul"]]
    assert R.qlinear_matmul(*args, profile="onnx-reference", opset=21).item() == 146
    assert R.qlinear_matmul(*args, profile="onnx", opset=21).item() == 147
    assert_exact(ENG, "onnx-reference", "QLinearMatMul", inp, opset=21)


def test_qlinear_matmul_zero_point_before_rounding():
    """SEMANTICS 1.3: acc*M = [0.5, 1.5, 2.5, 3.5], y_zp = 1: ORT [1, 3, 3, 5], onnx.reference [2, 2, 4, 4]."""
    need(ENG)
    a = np.array([[1], [3], [5], [7]], np.uint8)
    inp = {"a": a, "a_scale": np.float32(0.5), "a_zero_point": np.uint8(0), "b": np.ones((1, 1), np.uint8),
           "b_scale": np.float32(1.0), "b_zero_point": np.uint8(0), "y_scale": np.float32(1.0),
           "y_zero_point": np.uint8(1)}
    args = [inp[k] for k in E.OP_INPUTS["QLinearMatMul"]]
    assert R.qlinear_matmul(*args, profile="onnx-reference").ravel().tolist() == [2, 2, 4, 4]
    assert R.qlinear_matmul(*args, profile="onnx").ravel().tolist() == [1, 3, 3, 5]
    assert_exact(ENG, "onnx-reference", "QLinearMatMul", inp)


@settings(max_examples=20, deadline=None)
@given(seed=SEEDS, xd=st.sampled_from(["uint8", "int8"]), per_channel=st.booleans(), tie=st.booleans(),
       k=st.sampled_from([1, 3]), pad=st.booleans(), bias=st.booleans())
def test_qlinear_conv(seed, xd, per_channel, tie, k, pad, bias):
    need(ENG)
    rng = np.random.default_rng(seed)
    d, attrs = CS.conv_case(rng, 1, int(rng.integers(1, 4)), int(rng.integers(k, 8)), int(rng.integers(k, 8)),
                            int(rng.integers(1, 5)), k, k, x_dtype=xd, per_channel=per_channel, tie=tie,
                            pads=(k // 2,) * 4 if pad else (0, 0, 0, 0), bias=bias)
    assert_exact(ENG, "onnx-reference", "QLinearConv", d, attrs)


@settings(max_examples=10, deadline=None)
@given(seed=SEEDS)
def test_integer_ops(seed):
    need(ENG)
    rng = np.random.default_rng(seed)
    d = CS.matmul_case(rng, 3, int(rng.choice(CS.sizes())), 4, b_symmetric=False, per_column=True)
    assert_exact(ENG, "onnx-reference", "MatMulInteger",
                 {"A": d["a"], "B": d["b"], "a_zero_point": d["a_zero_point"], "b_zero_point": d["b_zero_point"]})
    c, attrs = CS.conv_case(rng, 1, 2, 5, 6, 3, 3, 3, pads=(1, 1, 1, 1))
    assert_exact(ENG, "onnx-reference", "ConvInteger", {"x": c["x"], "w": c["w"], "x_zero_point": c["x_zero_point"]},
                 attrs)


# ------------------------------------------------------------------- the 'onnx' spec profile
@settings(max_examples=20, deadline=None)
@given(seed=SEEDS, n=st.sampled_from(CS.sizes()), dtype=st.sampled_from(["int8", "uint8", "int16"]))
def test_onnx_equals_onnxruntime_on_float32(seed, n, dtype):
    """For float32 inputs the spec profile is the ORT reading (differences only for fp16 < opset 23)."""
    need("onnxruntime")
    rng = np.random.default_rng(seed)
    assert_exact("onnxruntime", "onnx", "QuantizeLinear", CS.quantize_case(rng, n, dtype))
    d = CS.matmul_case(rng, 3, n, 4, tie=True)
    assert_exact("onnxruntime", "onnx", "QLinearMatMul", d)


# ------------------------------------------------------------------- OpenVINO (extra peer)
def test_openvino_dequantize_matches_spec_per_tensor_int8():
    """OpenVINO 2026.4 CPU: per-tensor DequantizeLinear of int8 equals the spec on exactly
    representable products; its QuantizeLinear rounds x/s + zp (zero point before rounding) and is
    not modelled by a profile (reported by explain as 'no profile matches')."""
    need("openvino")
    x = np.arange(-128, 128, dtype=np.int8)
    inp = {"x": x, "x_scale": np.float32(0.5), "x_zero_point": np.int8(3)}
    assert_exact("openvino", "onnx", "DequantizeLinear", inp)
    q = {"x": np.float32([0.5, 1.5, 2.5, -0.5, -1.5, -2.5]), "y_scale": np.float32(1), "y_zero_point": np.int8(1)}
    assert E.run("openvino", "QuantizeLinear", q).tolist() == [2, 2, 4, 0, 0, -2]


@pytest.mark.parametrize("dt", ["float8e4m3fn", "float8e4m3fnuz", "float8e5m2", "float8e5m2fnuz", "float4e2m1"])
@pytest.mark.parametrize("saturate", [0, 1])
def test_quantize_low_float(dt, saturate):
    """float8 (zero point ignored by the evaluator) and float4e2m1 (zero point added, NaN -> -0)."""
    need(ENG)
    import refquant as rq
    from test_profiles_onnxruntime import _float8_values
    rng = np.random.default_rng(0)
    fdt = rq.resolve_dtype(dt)
    if dt.startswith("float8"):
        x = _float8_values(fdt, rng)
    else:
        x = np.concatenate([np.float32([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5, 7, 6.5, -6.5, np.nan, np.inf, -np.inf,
                                        -0.0]), (rng.standard_normal(50) * 4).astype(np.float32)])
    for zp in (0.0, 1.0):
        inp = {"x": x, "y_scale": np.float32(0.5), "y_zero_point": np.array(zp, fdt)}
        assert_exact(ENG, "onnx-reference", "QuantizeLinear", inp, {"saturate": saturate}, opset=25)
