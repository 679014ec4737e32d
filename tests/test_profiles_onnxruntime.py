"""Live bit-exactness of the 'onnxruntime' profile against onnxruntime (CPU EP, MLAS), and the
hand-derived checks of 'onnxruntime-avx2' (its int16 pair saturation cannot happen on a
VNNI/AMX CPU, so it is checked on cases derived from the kernel's documented arithmetic)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import refquant as rq
from refquant import reference as R
from _profiles_live import need, assert_exact, engine_differs, CS
from _ort_versions import ort_before, ort_profile

ENG = "onnxruntime"
SEEDS = st.integers(0, 2 ** 32 - 1)


@settings(max_examples=40, deadline=None)
@given(seed=SEEDS, n=st.sampled_from(CS.sizes()), dtype=st.sampled_from(["int8", "uint8", "int16", "uint16"]),
       per_axis=st.booleans())
def test_quantize_ties_saturation_specials(seed, n, dtype, per_axis):
    need(ENG)
    inp = CS.quantize_case(np.random.default_rng(seed), n, dtype, per_axis=per_axis)
    assert_exact(ENG, "onnxruntime", "QuantizeLinear", inp, {"axis": 1} if per_axis else {})


def test_quantize_specials_table():
    """SEMANTICS 2.1: NaN -> qmin, +Inf -> qmax, -Inf -> qmin, 3e9 -> qmax (any zero point)."""
    need(ENG)
    x = np.float32([np.nan, np.inf, -np.inf, 3e9, -3e9])
    for zp in (np.int8(0), np.int8(-5), np.uint8(200)):
        inp = {"x": x, "y_scale": np.float32(1), "y_zero_point": zp}
        assert_exact(ENG, "onnxruntime", "QuantizeLinear", inp)
        lo, hi = rq.qrange(zp.dtype)
        assert R.quantize_linear(x, np.float32(1), zp, profile="onnxruntime").tolist() == [lo, hi, lo, hi, lo]


def test_quantize_large_sizes_vector_tail():
    need(ENG)
    rng = np.random.default_rng(5)
    for n in (1000, 1023, 1025, 4099):
        assert_exact(ENG, "onnxruntime", "QuantizeLinear", CS.quantize_case(rng, n, "int8"))


@pytest.mark.parametrize("opset", [21, 23])
def test_quantize_float16_division_precision_by_opset(opset):
    """ORT divides float16 in float32 below opset 23 and in float16 from 23; 'onnx' (spec)
    divides in float16 at both, so it differs from ORT at opset 21 only.  (ORT <= 1.31 divides
    in float32 at 23 too: the profile with q_fp16_division="float32".)"""
    need(ENG)
    if ort_before(1, 32):
        s = np.float16(0.0999)
        k = np.random.default_rng(1).integers(-100, 100, 400)
        x = ((k + 0.5) * np.float32(s)).astype(np.float16)
        inp = {"x": x, "y_scale": s, "y_zero_point": np.int8(0)}
        assert_exact(ENG, ort_profile(), "QuantizeLinear", inp, opset=opset)
        assert engine_differs(ENG, "onnx", "QuantizeLinear", inp, opset=opset)[0] > 0
        return
    s = np.float16(0.0999)
    k = np.random.default_rng(1).integers(-100, 100, 400)
    x = ((k + 0.5) * np.float32(s)).astype(np.float16)
    inp = {"x": x, "y_scale": s, "y_zero_point": np.int8(0)}
    assert_exact(ENG, "onnxruntime", "QuantizeLinear", inp, opset=opset)
    n_diff, steps = engine_differs(ENG, "onnx", "QuantizeLinear", inp, opset=opset)
    assert (n_diff > 0) == (opset == 21) and steps <= 1


@settings(max_examples=15, deadline=None)
@given(seed=SEEDS, dtype=st.sampled_from(["int8", "uint8", "int16", "int32"]), per_axis=st.booleans())
def test_dequantize(seed, dtype, per_axis):
    need(ENG)
    rng = np.random.default_rng(seed)
    inp = CS.dequantize_case(rng, int(rng.choice(CS.sizes())), dtype, per_axis=per_axis)
    if dtype == "int32":
        inp.pop("x_zero_point")
    assert_exact(ENG, "onnxruntime", "DequantizeLinear", inp, {"axis": 1} if per_axis else {})


@settings(max_examples=15, deadline=None)
@given(seed=SEEDS, n=st.sampled_from(CS.sizes(large=True)), mag=st.sampled_from([1e-3, 1.0, 100.0, 1e30]),
       shape=st.sampled_from(["normal", "positive", "negative", "zeros", "ties"]))
def test_dynamic_quantize(seed, n, mag, shape):
    need(ENG)
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) * mag).astype(np.float32)
    if shape == "positive":
        x = np.abs(x)
    elif shape == "negative":
        x = -np.abs(x)
    elif shape == "zeros":
        x = np.zeros(n, np.float32)
    elif shape == "ties":   # values on the tie grid of their own scale
        x[0], x[-1] = -1.0, 254.0 / 255.0 * 3
    assert_exact(ENG, "onnxruntime", "DynamicQuantizeLinear", {"x": x})


def test_dynamic_quantize_all_zero_scale_is_one():
    need(ENG)
    y, s, zp = R.dynamic_quantize_linear(np.zeros(4, np.float32), profile="onnxruntime")
    assert float(s) == 1.0
    assert_exact(ENG, "onnxruntime", "DynamicQuantizeLinear", {"x": np.zeros(4, np.float32)})


@settings(max_examples=20, deadline=None)
@given(seed=SEEDS, ab=st.sampled_from([("uint8", "int8"), ("uint8", "uint8"), ("int8", "int8"), ("int8", "uint8")]),
       K=st.sampled_from(CS.sizes()))
def test_matmul_integer(seed, ab, K):
    need(ENG)
    rng = np.random.default_rng(seed)
    d = CS.matmul_case(rng, int(rng.integers(1, 9)), K, int(rng.integers(1, 9)), a_dtype=ab[0], b_dtype=ab[1],
                       b_symmetric=False, per_column=bool(rng.integers(0, 2)))
    assert_exact(ENG, "onnxruntime", "MatMulInteger", {"A": d["a"], "B": d["b"], "a_zero_point": d["a_zero_point"],
                                                       "b_zero_point": d["b_zero_point"]})


@settings(max_examples=40, deadline=None)
@given(seed=SEEDS, ab=st.sampled_from([("uint8", "int8"), ("uint8", "uint8"), ("int8", "int8")]),
       K=st.sampled_from(CS.sizes()), per_column=st.booleans(), tie=st.booleans())
def test_qlinear_matmul(seed, ab, K, per_column, tie):
    need(ENG)
    rng = np.random.default_rng(seed)
    d = CS.matmul_case(rng, int(rng.integers(1, 9)), K, int(rng.integers(1, 17)), a_dtype=ab[0], b_dtype=ab[1],
                       per_column=per_column, tie=tie, b_symmetric=bool(rng.integers(0, 2)))
    assert_exact(ENG, "onnxruntime", "QLinearMatMul", d)


def test_qlinear_matmul_large_accumulator():
    """SEMANTICS 2.3: K=2048, A=255, B=127 (one 126): acc = 66,324,225 rounds to 66,324,224 in
    cvtdq2ps; with M = 3.0230283e-06 ORT gives 200 and onnx.reference (float64) 201."""
    need(ENG)
    a = np.full((1, 2048), 255, np.uint8)
    b = np.full((2048, 1), 127, np.int8)
    b[0, 0] = 126
    inp = {"a": a, "a_scale": np.float32(1.0), "a_zero_point": np.uint8(0), "b": b, "b_scale": np.float32(1.0),
           "b_zero_point": np.int8(0), "y_scale": np.float32(1 / 3.0230283e-06), "y_zero_point": np.uint8(0)}
    acc = 255 * 127 * 2048 - 255
    assert acc == 66_324_225 and int(np.float32(acc)) == 66_324_224
    assert_exact(ENG, "onnxruntime", "QLinearMatMul", inp)
    y = R.qlinear_matmul(*[inp[k] for k in ("a", "a_scale", "a_zero_point", "b", "b_scale", "b_zero_point",
                                               "y_scale", "y_zero_point")], profile="onnxruntime")
    y_ref = R.qlinear_matmul(*[inp[k] for k in ("a", "a_scale", "a_zero_point", "b", "b_scale", "b_zero_point",
                                                   "y_scale", "y_zero_point")], profile="onnx-reference")
    assert int(y[0, 0]) + 1 == int(y_ref[0, 0])


@settings(max_examples=10, deadline=None)
@given(seed=SEEDS, K=st.sampled_from([1100, 2048, 3000]))
def test_large_accumulators_above_2_24(seed, K):
    need(ENG)
    rng = np.random.default_rng(seed)
    d = CS.matmul_case(rng, 2, K, 3, large=True, tie=False)
    assert_exact(ENG, "onnxruntime", "QLinearMatMul", d)


@settings(max_examples=25, deadline=None)
@given(seed=SEEDS, K=st.sampled_from(CS.sizes()), per_column=st.booleans(), tie=st.booleans(),
       alpha=st.sampled_from([1.0, 0.5, 2.0, 0.3]), trans=st.sampled_from([(0, 0), (1, 0), (0, 1), (1, 1)]),
       ad=st.sampled_from(["uint8", "int8"]))
def test_qgemm(seed, K, per_column, tie, alpha, trans, ad):
    need(ENG)
    rng = np.random.default_rng(seed)
    d = CS.to_qgemm(CS.matmul_case(rng, int(rng.integers(1, 9)), K, int(rng.integers(1, 9)), a_dtype=ad,
                                   per_column=per_column, tie=tie, bias=True))
    if trans[0]:
        d["A"] = np.ascontiguousarray(d["A"].T)
    if trans[1]:
        d["B"] = np.ascontiguousarray(d["B"].T)
    assert_exact(ENG, "onnxruntime", "QGemm", d, {"alpha": alpha, "transA": trans[0], "transB": trans[1]})


@settings(max_examples=25, deadline=None)
@given(seed=SEEDS, xd=st.sampled_from(["uint8", "int8"]), per_channel=st.booleans(), tie=st.booleans(),
       k=st.sampled_from([1, 3]), pad=st.booleans(), stride=st.sampled_from([1, 2]), group=st.sampled_from([1, 2]))
def test_qlinear_conv(seed, xd, per_channel, tie, k, pad, stride, group):
    need(ENG)
    rng = np.random.default_rng(seed)
    C = 2 * int(rng.integers(1, 3))
    M = 2 * int(rng.integers(1, 4))
    p = (k // 2,) * 4 if pad else (0, 0, 0, 0)
    d, attrs = CS.conv_case(rng, 1, C, int(rng.integers(k, 9)), int(rng.integers(k, 9)), M, k, k, x_dtype=xd,
                            per_channel=per_channel, tie=tie, pads=p, strides=(stride, stride), group=group)
    assert_exact(ENG, "onnxruntime", "QLinearConv", d, attrs)


@settings(max_examples=10, deadline=None)
@given(seed=SEEDS, xd=st.sampled_from(["uint8", "int8"]))
def test_conv_integer(seed, xd):
    need(ENG)
    rng = np.random.default_rng(seed)
    d, attrs = CS.conv_case(rng, 1, 3, 6, 7, 4, 3, 3, x_dtype=xd, pads=(1, 1, 1, 1))
    assert_exact(ENG, "onnxruntime", "ConvInteger", {"x": d["x"], "w": d["w"], "x_zero_point": d["x_zero_point"]},
                 attrs)


# ------------------------------------------------------------------ onnxruntime-avx2 (hand-derived)
def _qgemm_16105(profile):
    """microsoft/onnxruntime#16105: x = [210, 198, 234] (u8), w = [-81, -80, 127] (s8)."""
    A = np.array([[210, 198, 234]], np.uint8)
    B = np.array([[-81], [-80], [127]], np.int8)
    return R.matmul_integer(A, B, np.uint8(0), np.int8(0), profile=profile)


def test_avx2_int16_pair_saturation_ort_16105():
    """Not checkable live (this CPU has VNNI): the first pair 210*-81 + 198*-80 = -32850 saturates
    to -32768 in vpmaddubsw, so the accumulator is -32768 + 234*127 = -3050, not -3132."""
    exact = 210 * -81 + 198 * -80 + 234 * 127
    assert exact == -3132
    assert int(_qgemm_16105("onnxruntime")[0, 0]) == -3132
    assert int(_qgemm_16105("onnxruntime-avx2")[0, 0]) == -32768 + 234 * 127 == -3050


def test_avx2_worst_case_pair():
    """255*127*2 = 64770 saturates to 32767 per pair (and -255*128*... only u8 x s8 pairs)."""
    A = np.full((1, 4), 255, np.uint8)
    B = np.full((4, 1), 127, np.int8)
    assert int(R.matmul_integer(A, B, np.uint8(0), np.int8(0), profile="onnxruntime")[0, 0]) == 4 * 255 * 127
    assert int(R.matmul_integer(A, B, np.uint8(0), np.int8(0), profile="onnxruntime-avx2")[0, 0]) == 2 * 32767


def test_avx2_pytorch_44939_pair():
    """pytorch/pytorch#44939: 211*71 + 171*107 = 33278 > 32767 (same vpmaddubsw pairing)."""
    A = np.array([[211, 171]], np.uint8)
    B = np.array([[71], [107]], np.int8)
    assert int(R.matmul_integer(A, B, np.uint8(0), np.int8(0), profile="onnxruntime-avx2")[0, 0]) == 32767
    assert int(R.matmul_integer(A, B, np.uint8(0), np.int8(0), profile="onnxruntime")[0, 0]) == 33278


def test_vnni_machine_does_not_saturate_live():
    """The live engine on this CPU matches 'onnxruntime' (not '-avx2') on the #16105 inputs."""
    need(ENG)
    from refquant import engines as E
    A = np.array([[210, 198, 234]], np.uint8)
    B = np.array([[-81], [-80], [127]], np.int8)
    y = E.run(ENG, "MatMulInteger", {"A": A, "B": B, "a_zero_point": np.uint8(0), "b_zero_point": np.int8(0)})
    assert int(y[0, 0]) == -3132


@settings(max_examples=10, deadline=None)
@given(seed=SEEDS, depthwise=st.booleans())
def test_extreme_operands_no_pair_saturation_on_this_cpu(seed, depthwise):
    """x in {0, 255}, w in {-128, 127}: every u8 x s8 pair leaves int16, yet ORT on this VNNI/AMX
    CPU (GEMM and the depthwise QLinearConv kernel) matches the non-saturating 'onnxruntime'."""
    need(ENG)
    rng = np.random.default_rng(seed)
    if depthwise:
        C = int(rng.choice([8, 16, 32]))
        d, attrs = CS.conv_case(rng, 1, C, 7, 7, C, 3, 3, group=C, pads=(1, 1, 1, 1))
        d["x"][:] = rng.choice([0, 255], d["x"].shape).astype(np.uint8)
        d["w"][:] = rng.choice([-128, 127], d["w"].shape).astype(np.int8)
        assert_exact(ENG, "onnxruntime", "QLinearConv", d, attrs)
    else:
        d = CS.matmul_case(rng, 16, int(rng.integers(64, 300)), 16, tie=False)
        d["a"][:] = rng.choice([0, 255], d["a"].shape).astype(np.uint8)
        d["b"][:] = rng.choice([-128, 127], d["b"].shape).astype(np.int8)
        assert_exact(ENG, "onnxruntime", "QLinearMatMul", d)


def _float8_values(dt, rng, n_random=200):
    import ml_dtypes  # noqa: F401
    codes = np.arange(256, dtype=np.uint8).view(dt).astype(np.float32)
    grid = np.unique(codes[np.isfinite(codes)])
    mids = ((grid[:-1].astype(np.float64) + grid[1:]) / 2).astype(np.float32)
    fmax = float(grid.max())
    edges = np.float32([fmax, fmax * 1.03, fmax * 1.07, fmax * 1.1, 480, 488, 495.99997, 496, 464, 61440, 63000,
                        65535.996, 65536, 1e9, np.nan, np.inf, -np.inf, -0.0, 0.0])
    x = np.concatenate([grid, mids, np.nextafter(mids, np.float32(np.inf)), np.nextafter(mids, np.float32(-np.inf)),
                        edges, -edges, (rng.standard_normal(n_random) * fmax / 4).astype(np.float32)])
    return x.astype(np.float32)


@pytest.mark.parametrize("dt", ["float8e4m3fn", "float8e4m3fnuz", "float8e5m2", "float8e5m2fnuz"])
@pytest.mark.parametrize("saturate", [0, 1])
@pytest.mark.parametrize("opset", [21, 23])
def test_quantize_float8(dt, saturate, opset):
    """ORT's float8 outputs (read back through an exact Cast): RNE on the float8 grid, ties,
    overflow; with saturate=0 ORT's own edge rule (e4m3fn [480, 496) -> 448, e5m2 [61440, 65536)
    -> NaN), which the Cast table (the 'onnx' profile) does not have."""
    need(ENG)
    fdt = rq.resolve_dtype(dt)
    x = _float8_values(fdt, np.random.default_rng(0))
    for s in (np.float32(1.0), np.float32(0.37)):
        inp = {"x": (x * s).astype(np.float32), "y_scale": s, "y_zero_point": np.zeros((), fdt)}
        assert_exact(ENG, "onnxruntime", "QuantizeLinear", inp, {"saturate": saturate}, opset=opset)
    if saturate == 0 and dt in ("float8e4m3fn", "float8e5m2"):
        inp = {"x": np.float32([488.0, 62000.0]), "y_scale": np.float32(1), "y_zero_point": np.zeros((), fdt)}
        n_diff, _ = engine_differs(ENG, "onnx", "QuantizeLinear", inp, {"saturate": 0}, opset=opset)
        assert n_diff >= 1


@settings(max_examples=15, deadline=None)
@given(seed=SEEDS, dt=st.sampled_from(["int4", "uint4"]), mode=st.sampled_from(["tensor", "axis", "block"]))
def test_quantize_dequantize_int4(seed, dt, mode):
    """4-bit outputs (read back through an exact Cast) and inputs (fed as initializers)."""
    need(ENG)
    rng = np.random.default_rng(seed)
    qdt = rq.resolve_dtype(dt)
    qmin, qmax = rq.qrange(qdt)
    x = CS.tie_values(rng, 8 * 6, np.float32(0.25), qmin, qmax, 0, specials=True).reshape(8, 6)
    if mode == "tensor":
        s, zp, attrs = np.float32(0.25), np.asarray(rng.integers(qmin, qmax + 1)).astype(qdt), {}
    elif mode == "axis":
        if ort_before(1, 32):   # (x beyond the int32 range: -1e38 -> 7 for int4, +inf -> 0 for uint4)
            pytest.skip("onnxruntime < 1.32 wraps out-of-range values in per-axis 4-bit QuantizeLinear")
        s = np.float32([0.25, 0.5, 0.125, 1.0, 0.25, 0.3])
        zp, attrs = rng.integers(qmin, qmax + 1, 6).astype(qdt), {"axis": 1}
    else:
        s = rng.choice(np.float32([0.25, 0.5, 0.3]), (8, 2)).astype(np.float32)
        zp, attrs = rng.integers(qmin, qmax + 1, (8, 2)).astype(qdt), {"axis": 1, "block_size": 3}
    assert_exact(ENG, "onnxruntime", "QuantizeLinear", {"x": x, "y_scale": s, "y_zero_point": zp}, attrs)
    q = rng.integers(qmin, qmax + 1, (8, 6)).astype(qdt)
    assert_exact(ENG, "onnxruntime", "DequantizeLinear", {"x": q, "x_scale": s, "x_zero_point": zp}, attrs)


def test_avx2_depthwise_qlinearconv_does_not_saturate():
    """ORT runs depthwise QLinearConv (one input and one output channel a group) with
    MlasConvDepthwise, which widens both operands to int16 and multiplies into int32
    (qdwconv_avx2.cpp): no pair saturates there ('mlas').  A channel multiplier of 2 (a grouped
    GEMM) and ConvInteger (im2col + GEMM) keep the vpmaddubsw saturation."""
    from refquant import reference as R
    import refquant
    rng = np.random.default_rng(5)
    C = 8
    x = rng.choice([0, 255], (1, C, 7, 7)).astype(np.uint8)
    f = np.float32
    for mult, saturates in ((1, False), (2, True)):
        w = rng.choice([-128, 127, -127], (C * mult, 1, 3, 3)).astype(np.int8)
        args = (x, f(0.02), np.uint8(0), w, f(0.001), np.int8(0), f(0.5), np.uint8(128))
        kw = dict(group=C, pads=[1, 1, 1, 1])
        for fn in (R.qlinear_conv, refquant.qlinear_conv):
            a2 = fn(*args, profile="onnxruntime-avx2", **kw)
            assert np.array_equal(a2, fn(*args, profile="onnxruntime", **kw)) != saturates, (mult, fn)
        ci = R.conv_integer(x, w, np.uint8(0), np.int8(0), profile="onnxruntime-avx2", **kw)
        assert not np.array_equal(ci, R.conv_integer(x, w, np.uint8(0), np.int8(0), **kw))
