"""Live bit-exactness of the PyTorch profiles against torch 2.13 CPU: 'pytorch' (quantize_per_tensor
/ quantize_per_channel / dequantize), 'pytorch-fakequant', and the quantized linear/conv2d
engines 'pytorch-fbgemm', 'pytorch-x86', 'pytorch-qnnpack', 'pytorch-onednn'."""
from __future__ import annotations

import numpy as np
from refquant.profile import get_profile
import pytest
from hypothesis import given, settings, strategies as st

from refquant import reference as R
from refquant import engines as E
from _profiles_live import need, assert_exact, engine_differs, CS

pytestmark = pytest.mark.filterwarnings("ignore:.*quantized tensor creation functions:UserWarning")
SEEDS = st.integers(0, 2 ** 32 - 1)
LINEAR = ["pytorch-fbgemm", "pytorch-x86", "pytorch-qnnpack", "pytorch-onednn"]
FLOAT_BIAS = {"pytorch-fbgemm", "pytorch-x86", "pytorch-onednn"}


@settings(max_examples=40, deadline=None)
@given(seed=SEEDS, n=st.sampled_from(CS.sizes()), dtype=st.sampled_from(["int8", "uint8"]), per_axis=st.booleans())
def test_quantize_per_tensor_and_per_channel(seed, n, dtype, per_axis):
    need("pytorch")
    inp = CS.quantize_case(np.random.default_rng(seed), n, dtype, per_axis=per_axis)
    assert_exact("pytorch", "pytorch", "QuantizeLinear", inp, {"axis": 1} if per_axis else {})


def test_quantize_float16_is_an_extension():
    """torch.quantize_per_tensor refuses a Half tensor, so the profile's float16 QuantizeLinear
    (its formula in float16 precision) is refquant's extension, as its doc says."""
    need("pytorch")
    import torch
    with pytest.raises(RuntimeError, match="Float"):
        torch.quantize_per_tensor(torch.tensor([0.5], dtype=torch.float16), 0.1, 3, torch.quint8)
    assert "refquant's extension" in get_profile("pytorch").doc


def test_quantize_known_examples():
    """SEMANTICS 4.1: x*(1/s) with the zero point before rounding, per_tensor fused (FMA),
    per_channel not; NaN -> qmax per tensor, code 0 per channel."""
    need("pytorch")
    cases = [(0.273939937, 0.00214854861, np.uint8(0), 128), (-12.466922, 0.10260841, np.int8(0), -121)]
    for x, s, zp, want in cases:
        assert int(R.quantize_linear(np.float32([x]), np.float32(s), zp, profile="pytorch")[0]) == want
        assert int(R.quantize_linear(np.float32([x]), np.float32(s), zp, profile="onnxruntime")[0]) == want - 1
        assert_exact("pytorch", "pytorch", "QuantizeLinear", {"x": np.float32([x]), "y_scale": np.float32(s),
                                                               "y_zero_point": zp})
    x = np.float32([0.34249556])
    assert int(R.quantize_linear(x, np.float32(0.05269162), np.uint8(6), profile="pytorch")[0]) == 13
    assert int(R.quantize_linear(x[:, None], np.float32([0.05269162]), np.uint8([6]), axis=1,
                                 profile="pytorch")[0, 0]) == 12
    nan = np.float32([[np.nan]])
    assert int(R.quantize_linear(nan[0], np.float32(1), np.int8(5), profile="pytorch")[0]) == 127
    assert int(R.quantize_linear(nan, np.float32([1]), np.int8([5]), axis=1, profile="pytorch")[0, 0]) == 0
    for inp, attrs in [({"x": x, "y_scale": np.float32(0.05269162), "y_zero_point": np.uint8(6)}, {}),
                       ({"x": x[:, None], "y_scale": np.float32([0.05269162]), "y_zero_point": np.uint8([6])},
                        {"axis": 1}),
                       ({"x": np.float32([np.nan, 0.5, 1.5, 2.5]), "y_scale": np.float32(1), "y_zero_point": np.uint8(1)},
                        {})]:
        assert_exact("pytorch", "pytorch", "QuantizeLinear", inp, attrs)


@settings(max_examples=15, deadline=None)
@given(seed=SEEDS, dtype=st.sampled_from(["int8", "uint8", "int32"]), per_axis=st.booleans())
def test_dequantize(seed, dtype, per_axis):
    need("pytorch")
    rng = np.random.default_rng(seed)
    inp = CS.dequantize_case(rng, int(rng.choice(CS.sizes())), dtype, per_axis=per_axis)
    if dtype == "int32":   # ONNX: an int32 x takes no zero point (torch would subtract it with int32 wrap)
        inp.pop("x_zero_point")
    assert_exact("pytorch", "pytorch", "DequantizeLinear", inp, {"axis": 1} if per_axis else {})


@settings(max_examples=40, deadline=None)
@given(seed=SEEDS, n=st.sampled_from(CS.sizes()), dtype=st.sampled_from(["int8", "uint8", "int16", "uint16"]),
       per_axis=st.booleans())
def test_fake_quantize(seed, n, dtype, per_axis):
    need("pytorch-fakequant")
    rng = np.random.default_rng(seed)
    inp = CS.quantize_case(rng, n, dtype, per_axis=per_axis)
    assert_exact("pytorch-fakequant", "pytorch-fakequant", "QuantizeLinear", inp, {"axis": 1} if per_axis else {})


def test_fake_quantize_per_channel_int64_overflow():
    """Per-channel fake-quant converts to int64 first: 9.2e18 saturates, 9.3e18 and +Inf give qmin."""
    need("pytorch-fakequant")
    x = np.float32([[9.2e18], [9.3e18], [np.inf], [-np.inf], [np.nan]])
    y = R.quantize_linear(x, np.float32([1]), np.int8([0]), axis=1, profile="pytorch-fakequant")
    assert y[:, 0].tolist() == [127, -128, -128, -128, -128]
    assert_exact("pytorch-fakequant", "pytorch-fakequant", "QuantizeLinear",
                 {"x": x, "y_scale": np.float32([1]), "y_zero_point": np.int8([0])}, {"axis": 1})


def _onednn_tie(engine, op, tie):
    """oneDNN's epilogue is modelled exactly for any scales (rq_multiplier='onednn'); kept as a
    hook so the oneDNN cases can be steered."""
    return tie


def _linear_case(rng, engine, op, K, per_column, tie):
    tie = _onednn_tie(engine, op, tie)
    bias_dtype = "float32" if engine in FLOAT_BIAS else "int32"
    d = CS.matmul_case(rng, int(rng.integers(1, 9)), K, int(rng.integers(1, 17)), per_column=per_column, tie=tie,
                       bias=(op == "QGemm"), bias_dtype=bias_dtype,
                       b_symmetric=engine == "pytorch-onednn" or bool(rng.integers(0, 2)))
    return CS.to_qgemm(d) if op == "QGemm" else d


@pytest.mark.parametrize("engine", LINEAR)
@pytest.mark.parametrize("op", ["QLinearMatMul", "QGemm"])
@settings(max_examples=20, deadline=None)
@given(seed=SEEDS, K=st.sampled_from(CS.sizes()), per_column=st.booleans(), tie=st.booleans())
def test_quantized_linear(engine, op, seed, K, per_column, tie):
    need(engine)
    d = _linear_case(np.random.default_rng(seed), engine, op, K, per_column, tie)
    assert_exact(engine, engine, op, d)


@pytest.mark.parametrize("engine", LINEAR)
@settings(max_examples=15, deadline=None)
@given(seed=SEEDS, per_channel=st.booleans(), tie=st.booleans(), k=st.sampled_from([1, 3]), pad=st.booleans())
def test_quantized_conv2d(engine, seed, per_channel, tie, k, pad):
    need(engine)
    rng = np.random.default_rng(seed)
    d, attrs = CS.conv_case(rng, 1, int(rng.integers(1, 5)), int(rng.integers(k, 9)), int(rng.integers(k, 9)),
                            int(rng.integers(1, 6)), k, k, per_channel=per_channel,
                            tie=_onednn_tie(engine, "QLinearConv", tie),
                            pads=(k // 2,) * 4 if pad else (0, 0, 0, 0),
                            bias_dtype="float32" if engine in FLOAT_BIAS else "int32")
    assert_exact(engine, engine, "QLinearConv", d, attrs)


def test_onednn_zero_point_before_rounding_at_ties():
    """oneDNN rounds v + zp (v = -16.5, zp = 111 -> 94); FBGEMM rounds v then adds zp (95)."""
    need("pytorch-onednn")
    a = np.array([[2, 0]], np.uint8)
    b = np.array([[-33], [0]], np.int8)
    inp = {"a": a, "a_scale": np.float32(1), "a_zero_point": np.uint8(0), "b": b, "b_scale": np.float32(0.25),
           "b_zero_point": np.int8(0), "y_scale": np.float32(1), "y_zero_point": np.uint8(111)}
    assert_exact("pytorch-onednn", "pytorch-onednn", "QLinearMatMul", inp)
    assert_exact("pytorch-fbgemm", "pytorch-fbgemm", "QLinearMatMul", inp)
    y_one = R.qlinear_matmul(a, np.float32(1), np.uint8(0), b, np.float32(0.25), np.int8(0), np.float32(1),
                             np.uint8(111), profile="pytorch-onednn")
    y_fb = R.qlinear_matmul(a, np.float32(1), np.uint8(0), b, np.float32(0.25), np.int8(0), np.float32(1),
                            np.uint8(111), profile="pytorch-fbgemm")
    assert (int(y_one[0, 0]), int(y_fb[0, 0])) == (94, 95)


def test_fbgemm_and_qnnpack_differ_in_multiplier_and_bias():
    """SEMANTICS 7.8: float bias (fbgemm) vs int32 bias (qnnpack); the profiles name the fields."""
    from refquant import get_profile
    d = get_profile("pytorch-fbgemm").diff(get_profile("pytorch-qnnpack"))
    assert set(d) == {"rq_multiplier", "rq_bias", "int16_pair_saturation", "overrides"}
    assert d["rq_multiplier"] == ("fp32", "fp32_reciprocal") and d["rq_bias"] == ("float", "int32")
    assert d["int16_pair_saturation"] == ("fbgemm_depthwise", False)
    # per-tensor weights: fbgemm's bias by reciprocal and fma (the override the other lacks)
    assert get_profile("pytorch-fbgemm").for_op("QGemm", per_axis=False).rq_bias == "float_rcp_fma"
    assert get_profile("pytorch-fbgemm").for_op("QGemm", per_axis=True).rq_bias == "float"


@pytest.mark.parametrize("engine", LINEAR)
@settings(max_examples=8, deadline=None)
@given(seed=SEEDS, C=st.sampled_from([8, 16, 32]))
def test_depthwise_conv_extreme_values(engine, seed, C):
    """fbgemm's depthwise fast path saturates u8 x s8 pairs in int16 even on VNNI CPUs; the other
    engines do not.  Extreme operands (x in {0, 255}, w in {-128, -127, 127}) make it visible."""
    need(engine)
    rng = np.random.default_rng(seed)
    H = W = int(rng.integers(5, 12))
    d, attrs = CS.conv_case(rng, 1, C, H, W, C, 3, 3, group=C, pads=(1, 1, 1, 1),
                            tie=_onednn_tie(engine, "QLinearConv", True),
                            bias_dtype="float32" if engine in FLOAT_BIAS else "int32")
    d["x"][:] = rng.choice([0, 255], d["x"].shape).astype(np.uint8)
    d["w"][:] = rng.choice([-128, 127, -127], d["w"].shape).astype(np.int8)
    assert_exact(engine, engine, "QLinearConv", d, attrs)


def test_fbgemm_no_int16_saturation_on_this_cpu():
    """pytorch#44939's pair (211*71 + 171*107 = 33278) is exact on this AVX512-VNNI CPU."""
    need("pytorch-fbgemm")
    rng = np.random.default_rng(0)
    a = np.tile(np.array([211, 171], np.uint8), (16, 32))
    b = np.tile(np.array([[71], [107]], np.int8), (32, 16))
    inp = {"a": a, "a_scale": np.float32(1), "a_zero_point": np.uint8(0), "b": b, "b_scale": np.float32(1),
           "b_zero_point": np.int8(0), "y_scale": np.float32(8192), "y_zero_point": np.uint8(0)}
    assert rng is not None
    assert_exact("pytorch-fbgemm", "pytorch-fbgemm", "QLinearMatMul", inp)


def _onednn_model(d):
    """The measured oneDNN epilogue (torch engine onednn; x86 conv with symmetric weights): the
    scales make a reciprocal round trip (torch hands ideep 1/s), are applied one after the other,
    the float bias is added after them, then times fl32(1/ys), + zp in float, RNE:
    v = fl32(fl32(fl32(fl32(acc) * xs') * ws') + b) * fl32(1/ys), s' = fl32(1/fl32(1/s))."""
    f = np.float32
    A = d["A"].astype(np.int64) - int(d["a_zero_point"])
    acc = A @ d["B"].astype(np.int64)
    r2 = lambda v: (f(1) / (f(1) / np.asarray(v, f)).astype(f)).astype(f)   # noqa: E731
    t = ((acc.astype(f) * r2(d["a_scale"])).astype(f) * r2(d["b_scale"])).astype(f)
    v = ((t + d["C"]).astype(f) * (f(1) / f(d["y_scale"]))).astype(f)
    return np.clip(np.rint((v + f(d["y_zero_point"])).astype(f)), 0, 255).astype(np.uint8)


def test_onednn_epilogue_order():
    """oneDNN's epilogue applies the scales one by one after a reciprocal round trip and adds the
    float bias after them (rq_multiplier='onednn').  A constructed near-tie where fbgemm's single
    multiplier gives 246 and oneDNN 247, then random cases: engine == formula == profile."""
    need("pytorch-onednn")
    f = np.float32
    # a constructed near-tie: acc = 141*127 + 40 = 17947 (found by scanning acc for these scales)
    d = {"A": np.array([[141, 40]], np.uint8), "a_scale": f(0.02607926), "a_zero_point": np.uint8(0),
         "B": np.array([[127], [1]], np.int8), "b_scale": f(0.04757272), "b_zero_point": np.int8(0),
         "C": f([2.6918967]), "y_scale": f(0.18695164), "y_zero_point": np.uint8(113)}
    assert int(E.run("pytorch-onednn", "QGemm", d)[0, 0]) == int(_onednn_model(d)[0, 0]) == 247
    assert int(E.run_reference("QGemm", d, profile="pytorch-onednn")[0, 0]) == 247
    single_m = R.qgemm(d["A"], d["a_scale"], d["a_zero_point"], d["B"], d["b_scale"], d["b_zero_point"],
                       d["C"], d["y_scale"], d["y_zero_point"],
                       profile=get_profile("pytorch-onednn").replace(rq_multiplier="fp32"))
    assert int(single_m[0, 0]) == 246
    rng = np.random.default_rng(3)
    for t in range(200):
        d = CS.to_qgemm(CS.matmul_case(rng, 8, int(rng.integers(1, 40)), 16, per_column=t % 2 == 1, tie=False,
                                       bias=True, bias_dtype="float32"))
        obs = E.run("pytorch-onednn", "QGemm", d)
        assert np.array_equal(obs, _onednn_model(d))
        assert np.array_equal(E.run_reference("QGemm", d, profile="pytorch-onednn"), obs)

def _tie_bias(rng, S, n):
    """Float biases one ulp off k*S: with M = 1/4 they put v*M next to half-integer ties, where
    fbgemm's per-tensor fma(b, 1/S, acc) and the division fl32(acc + fl32(b/S)) part."""
    return np.array([np.nextafter(np.float32(k * float(S)), np.float32(rng.choice([-1e9, 1e9])))
                     for k in rng.integers(-500, 500, n)], np.float32)


@pytest.mark.parametrize("eng, w_zp", [("pytorch-fbgemm", 0), ("pytorch-fbgemm", 3), ("pytorch-x86", 3)])
def test_fbgemm_per_tensor_float_bias_is_one_fma(eng, w_zp):
    """fbgemm's per-tensor requantization multiplies the float bias by fl32(1/(sx*sw)) and adds it
    to fl32(acc) in one fused multiply-add (rq_bias='float_rcp_fma'); its per-channel path divides.
    Tie-prone cases: QGemm (K = 1..3) and QLinearConv (1x1 and depthwise 3x3); a subnormal
    sx*sw makes the reciprocal infinite (qmin everywhere)."""
    need(eng)
    rng = np.random.default_rng(29)
    f = np.float32
    n_el = 0
    for t in range(40):
        a_s, w_s = f(rng.uniform(0.001, 0.05)), f(rng.uniform(0.001, 0.05))
        S = f(a_s * w_s)
        N, K = int(rng.integers(1, 9)), int(rng.integers(1, 4))
        d = {"A": rng.integers(0, 256, (4, K)).astype(np.uint8), "a_scale": a_s, "a_zero_point": np.uint8(rng.integers(0, 256)),
             "B": rng.integers(-128, 128, (K, N)).astype(np.int8), "b_scale": w_s, "b_zero_point": np.int8(w_zp),
             "C": _tie_bias(rng, S, N), "y_scale": f(S * 4), "y_zero_point": np.uint8(128)}
        n_el += assert_exact(eng, eng, "QGemm", d)
        C = 8
        dw = t % 2 == 1
        w = rng.integers(-3, 4, (C, 1, 3, 3) if dw else (4, C, 1, 1)).astype(np.int8)
        Mo = w.shape[0]
        d = {"x": rng.integers(0, 256, (1, C, 5, 5)).astype(np.uint8), "x_scale": a_s,
             "x_zero_point": np.uint8(rng.integers(0, 256)), "w": w, "w_scale": w_s, "w_zero_point": np.int8(w_zp),
             "y_scale": f(S * 4), "y_zero_point": np.uint8(128), "B": _tie_bias(rng, S, Mo)}
        at = {"kernel_shape": [3, 3], "pads": [1] * 4, "group": C} if dw else {"kernel_shape": [1, 1]}
        if eng == "pytorch-x86" or w_zp == 0 or not dw:
            n_el += assert_exact(eng, eng, "QLinearConv", d, at)
    assert n_el > 2000
    # the division form misses some of these: the override is needed
    div = get_profile(eng).replace(overrides=tuple(o for o in get_profile(eng).overrides
                                                   if "float_rcp_fma" not in repr(o)))
    one = {"A": np.array([[95]], np.uint8), "a_scale": f(0.002940051), "a_zero_point": np.uint8(0),
           "B": np.array([[1]], np.int8), "b_scale": f(0.026900874), "b_zero_point": np.int8(0),
           "C": np.array([-0.0032426878], f), "y_scale": f(0.00031635977), "y_zero_point": np.uint8(128)}
    assert E.run(eng, "QGemm", one).item() == 141 == E.run_reference("QGemm", one, profile=eng).item()
    assert engine_differs(eng, div, "QGemm", one)[0] == 1
    tiny = {"A": np.array([[10]], np.uint8), "a_scale": f(1e-30), "a_zero_point": np.uint8(0),
            "B": np.array([[1]], np.int8), "b_scale": f(1e-10), "b_zero_point": np.int8(w_zp),
            "C": np.array([0.0], f), "y_scale": f(4e-40), "y_zero_point": np.uint8(100)}
    assert_exact(eng, eng, "QGemm", tiny)


@pytest.mark.parametrize("low", ["float16", "bfloat16"])
@pytest.mark.parametrize("per_channel", [False, True])
def test_fakequant_half_inputs_compute_in_float32(low, per_channel):
    """torch.fake_quantize_* on a Half / BFloat16 tensor: q from the float32 arithmetic
    (q_fp16_division="float32"); the op's output is fl_low((q - zp) * s)."""
    need("pytorch-fakequant")
    import ml_dtypes
    import torch
    npdt, tdt = (np.float16, torch.float16) if low == "float16" else (ml_dtypes.bfloat16, torch.bfloat16)
    rng = np.random.default_rng(31)
    f = np.float32
    n_el = 0
    for t in range(60):
        qmin, qmax, odt = (0, 255, np.uint8) if t % 2 else (-128, 127, np.int8)
        C, n = 3, int(rng.integers(1, 30))
        s = np.array([rng.choice([0.5, 0.1, 0.0173, 3.0, 0.002]) for _ in range(C if per_channel else 1)], f)
        s = s.astype(npdt).astype(f)                      # scales exact in both types
        zp = rng.integers(qmin, qmax + 1, s.shape)
        k = rng.integers(-140, 140, (C, n))
        x = ((k + 0.5) * s.reshape(-1, 1) if t % 3 else rng.uniform(-150, 150, (C, n)) * s.reshape(-1, 1)).astype(npdt)
        xt = torch.from_numpy(x.astype(f)).to(tdt)
        if per_channel:
            y = torch.fake_quantize_per_channel_affine(xt, torch.from_numpy(s), torch.from_numpy(zp.astype(np.int32)),
                                                       0, qmin, qmax)
            q = R.quantize_linear(x, s.astype(npdt), zp.astype(odt), axis=0, profile="pytorch-fakequant")
            want = ((q.astype(np.int64) - zp.reshape(-1, 1)).astype(f) * s.reshape(-1, 1)).astype(f).astype(npdt)
        else:
            y = torch.fake_quantize_per_tensor_affine(xt, float(s[0]), int(zp[0]), qmin, qmax)
            q = R.quantize_linear(x, s[0].astype(npdt), odt(zp[0]), profile="pytorch-fakequant")
            want = ((q.astype(np.int64) - int(zp[0])).astype(f) * s[0]).astype(f).astype(npdt)
        got = y.float().numpy().astype(npdt)
        assert np.array_equal(got.astype(f), want.astype(f)), (t, x[got.astype(f) != want.astype(f)])
        n_el += x.size
    assert n_el > 1000


def test_qnnpack_scale_product_without_a_float32_reciprocal_is_refused():
    """torch quantizes QNNPACK's bias (zeros when there is none) with scale a_s*b_s; at
    a_s*b_s <= 2^-128 its float32 reciprocal is inf, the bias INT32_MIN, and the outputs collapse
    to qmin or qmax (the int32 sum wraps; measured):
    the profile refuses that, on both paths, and still models 3e-39 (a finite reciprocal)."""
    need("pytorch-qnnpack")
    import refquant
    from refquant import ProfileError
    f = np.float32
    for b_s, y_s, ok in ((1e-10, 4.04e-38, False), (3e-9, 1e-36, True)):
        d = {"a": np.array([[20, 3]], np.uint8), "a_scale": f(1e-30), "a_zero_point": np.uint8(16),
             "b": np.array([[1], [2]], np.int8), "b_scale": f(b_s), "b_zero_point": np.int8(0),
             "y_scale": f(y_s), "y_zero_point": np.uint8(87)}
        args = [d[k] for k in E.OP_INPUTS["QLinearMatMul"]]
        if ok:
            assert_exact("pytorch-qnnpack", "pytorch-qnnpack", "QLinearMatMul", d)
            assert np.array_equal(refquant.qlinear_matmul(*args, profile="pytorch-qnnpack"),
                                  R.qlinear_matmul(*args, profile="pytorch-qnnpack"))
        else:
            assert E.run("pytorch-qnnpack", "QLinearMatMul", d).item() in (0, 255)   # INT32_MIN bias, wrapped
            for fn in (refquant.qlinear_matmul, R.qlinear_matmul):
                with pytest.raises(ProfileError, match="no finite float32 reciprocal"):
                    fn(*args, profile="pytorch-qnnpack")
