"""Live bit-exactness of 'tflite-reference', 'tflite-optimized' and 'tflite-xnnpack' against
ai-edge-litert (one-op .tflite models built from the flatbuffer schema it ships)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from refquant import reference as R
from refquant import engines as E
from _profiles_live import need, assert_exact, CS

SEEDS = st.integers(0, 2 ** 32 - 1)
TFL = ["tflite-reference", "tflite-optimized", "tflite-xnnpack"]


def _qtypes(engine):
    return ["int8", "uint8"] + (["int16"] if engine != "tflite-xnnpack" else [])


@pytest.mark.parametrize("engine", TFL)
@settings(max_examples=30, deadline=None)
@given(seed=SEEDS, n=st.sampled_from(CS.sizes()), dt=st.integers(0, 2))
def test_quantize(engine, seed, n, dt):
    need(engine)
    types = _qtypes(engine)
    rng = np.random.default_rng(seed)
    inp = CS.quantize_case(rng, n, types[dt % len(types)])
    if engine == "tflite-xnnpack" and abs(float(inp["y_scale"])) < 2.0 ** -126:
        inp["y_scale"] = np.float32(0.0173)   # XNNPACK crashes on denormal scales (see engines._tflite)
    assert_exact(engine, engine, "QuantizeLinear", inp)


def test_optimized_quantize_vector_block_and_tail():
    """Measured: the optimized QUANTIZE rounds blocks of 8 with RNE(x*(1/s)) and the remainder
    with std::round(double(x)/s): x*(1/s) = 96.5 gives 96 in the block, 97 in the tail."""
    need("tflite-optimized")
    for n in (1, 7, 8, 9, 15, 16, 17, 33):
        x = np.full(n, 48.25, np.float32)
        inp = {"x": x, "y_scale": np.float32(0.5), "y_zero_point": np.int8(0)}
        assert_exact("tflite-optimized", "tflite-optimized", "QuantizeLinear", inp)
        y = R.quantize_linear(x, np.float32(0.5), np.int8(0), profile="tflite-optimized")
        cut = n - n % 8
        assert (y[:cut] == 96).all() and (y[cut:] == 97).all()


def test_reference_quantize_round_half_away_and_int32_artefacts():
    need("tflite-reference")
    x = np.float32([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, np.nan, np.inf, 3e9])
    y = R.quantize_linear(x, np.float32(1), np.int8(1), profile="tflite-reference")
    assert y.tolist() == [2, 3, 4, 0, -1, -2, -128, -128, -128]
    y = R.quantize_linear(x, np.float32(1), np.int8(-1), profile="tflite-reference")
    assert y[-3:].tolist() == [127, 127, 127]       # INT32_MIN + (-1) wraps to INT32_MAX
    for zp in (np.int8(1), np.int8(-1)):
        assert_exact("tflite-reference", "tflite-reference", "QuantizeLinear",
                     {"x": x, "y_scale": np.float32(1), "y_zero_point": zp})


@pytest.mark.parametrize("engine", TFL)
@settings(max_examples=15, deadline=None)
@given(seed=SEEDS, dt=st.sampled_from(["int8", "uint8", "int16"]))
def test_dequantize(engine, seed, dt):
    need(engine)
    if engine == "tflite-xnnpack" and dt == "int16":
        dt = "int8"                                 # int16 is not delegated to XNNPACK
    rng = np.random.default_rng(seed)
    inp = CS.dequantize_case(rng, int(rng.choice(CS.sizes())), dt)
    if dt == "int16":
        inp["x_zero_point"] = np.int16(0)           # LiteRT: int16 DEQUANTIZE requires zero point 0
    if engine == "tflite-xnnpack" and abs(float(inp["x_scale"])) < 2.0 ** -126:
        inp["x_scale"] = np.float32(0.3)
    assert_exact(engine, engine, "DequantizeLinear", inp)


@pytest.mark.parametrize("engine", TFL)
@pytest.mark.parametrize("op", ["QLinearMatMul", "QGemm"])
@settings(max_examples=20, deadline=None)
@given(seed=SEEDS, K=st.sampled_from(CS.sizes()), per_column=st.booleans(), tie=st.booleans(),
       dt=st.sampled_from(["int8", "uint8"]))
def test_fully_connected(engine, op, seed, K, per_column, tie, dt):
    need(engine)
    rng = np.random.default_rng(seed)
    if dt == "uint8":
        per_column = False      # uint8 FULLY_CONNECTED is per-tensor only
    d = CS.matmul_case(rng, int(rng.integers(1, 9)), K, int(rng.integers(1, 17)), a_dtype=dt, b_dtype=dt,
                       per_column=per_column, tie=tie, bias=(op == "QGemm"), b_symmetric=(dt == "int8"))
    if dt == "uint8":
        d["b_zero_point"] = np.asarray(rng.integers(100, 156)).astype(np.uint8)
    if op == "QGemm":
        d = CS.to_qgemm(d)
    try:
        assert_exact(engine, engine, op, d)
    except E.EngineUnsupported as e:
        pytest.skip(f"engine refuses this combination: {e}")


@pytest.mark.parametrize("engine", TFL)
@settings(max_examples=15, deadline=None)
@given(seed=SEEDS, per_channel=st.booleans(), tie=st.booleans(), k=st.sampled_from([1, 3]), same=st.booleans(),
       stride=st.sampled_from([1, 2]))
def test_conv_2d(engine, seed, per_channel, tie, k, same, stride):
    need(engine)
    rng = np.random.default_rng(seed)
    H, W = int(rng.integers(k + 1, 9)), int(rng.integers(k + 1, 9))
    pads = (0, 0, 0, 0)
    if same and k == 3:
        Ho, Wo = -(-H // stride), -(-W // stride)
        th, tw = max((Ho - 1) * stride + 3 - H, 0), max((Wo - 1) * stride + 3 - W, 0)
        pads = (th // 2, tw // 2, th - th // 2, tw - tw // 2)
    d, attrs = CS.conv_case(rng, 1, int(rng.integers(1, 5)), H, W, int(rng.integers(1, 6)), k, k, x_dtype="int8",
                            per_channel=per_channel, tie=tie, pads=pads, strides=(stride, stride))
    assert_exact(engine, engine, "QLinearConv", d, attrs)


def test_requant_tie_table():
    """SEMANTICS 5.3: M = 0.25, acc = [-6, -3, -2, 1, 2, 6] per kernel (zp 0, no bias)."""
    acc = np.array([-6, -3, -2, 1, 2, 6])
    want = {"tflite-reference": {"QLinearConv": [-2, -1, -1, 1, 1, 2], "QLinearMatMul": [-2, -1, -1, 0, 1, 2]},
            "tflite-optimized": {"QLinearConv": [-1, 0, 0, 1, 1, 2], "QLinearMatMul": [-1, 0, 0, 1, 1, 2]},
            "tflite-xnnpack": {"QLinearConv": [-2, -1, 0, 0, 0, 2], "QLinearMatMul": [-2, -1, 0, 0, 0, 2]}}
    a = acc.astype(np.int8).reshape(-1, 1)
    b = np.ones((1, 1), np.int8)
    for prof, per_op in want.items():
        got = R.qlinear_matmul(a, np.float32(0.5), np.int8(0), b, np.float32(0.5), np.int8(0), np.float32(1.0),
                               np.int8(0), profile=E.resolve_profile(prof, "QLinearMatMul"))
        assert got.ravel().tolist() == per_op["QLinearMatMul"], prof
        x = acc.astype(np.int8).reshape(1, 1, -1, 1)
        got = R.qlinear_conv(x, np.float32(0.5), np.int8(0), np.ones((1, 1, 1, 1), np.int8), np.float32([0.5]),
                             np.int8([0]), np.float32(1.0), np.int8(0),
                             profile=E.resolve_profile(prof, "QLinearConv"))
        assert got.ravel().tolist() == per_op["QLinearConv"], prof
        need(prof)
        assert_exact(prof, prof, "QLinearMatMul",
                     {"a": a, "a_scale": np.float32(0.5), "a_zero_point": np.int8(0), "b": b,
                      "b_scale": np.float32(0.5), "b_zero_point": np.int8(0), "y_scale": np.float32(1.0),
                      "y_zero_point": np.int8(0)})
        assert_exact(prof, prof, "QLinearConv",
                     {"x": x, "x_scale": np.float32(0.5), "x_zero_point": np.int8(0), "w": np.ones((1, 1, 1, 1), np.int8),
                      "w_scale": np.float32([0.5]), "w_zero_point": np.int8([0]), "y_scale": np.float32(1.0),
                      "y_zero_point": np.int8(0)}, {"kernel_shape": [1, 1]})


@pytest.mark.parametrize("engine", ["tflite-reference", "tflite-optimized"])
def test_per_channel_quantize_dequantize(engine):
    """Per-channel QUANTIZE / DEQUANTIZE (quantizedDimension = 1, models built by hand): LiteRT's
    optimized resolver runs the reference kernels there, which 'tflite-optimized' takes through its
    "per_axis" override (its blocks-of-8 model missed 352 of 2,118 elements)."""
    need(engine)
    from refquant.engines import _tflite as T
    S = T._schema()

    def run(op, x, s, zp, odt):
        b = T._Builder()
        if op == "QuantizeLinear":
            ti, to = b.tensor("x", x.shape, np.float32), b.tensor("y", x.shape, odt, s, zp, 1)
            b.op(S.BuiltinOperator.QUANTIZE, 2, [ti], [to], S.BuiltinOptions.QuantizeOptions, S.QuantizeOptionsT())
        else:
            ti, to = b.tensor("x", x.shape, x.dtype, s, zp, 1), b.tensor("y", x.shape, np.float32)
            b.op(S.BuiltinOperator.DEQUANTIZE, 5, [ti], [to], S.BuiltinOptions.DequantizeOptions, S.DequantizeOptionsT())
        T._guard_scales(engine, b)
        return T._interpret(engine, b.finish([ti], [to]), np.ascontiguousarray(x))

    rng = np.random.default_rng(41)
    n_el = 0
    for t in range(40):
        ch, n = int(rng.integers(2, 5)), int(rng.integers(1, 12))
        s = rng.choice(CS.SCALES[CS.SCALES > 1e-30], ch).astype(np.float32)
        zp = rng.integers(-128, 128, ch).astype(np.int8)
        x = np.stack([CS.tie_values(rng, n, s[j], -128, 127, zp[j]) for j in range(ch)], 1)
        got = run("QuantizeLinear", x, s, zp, np.int8)
        want = E.run_reference("QuantizeLinear", {"x": x, "y_scale": s, "y_zero_point": zp}, {"axis": 1}, profile=engine)
        assert CS.compare(want, got)[0] == 0
        q = rng.integers(-128, 128, (n, ch)).astype(np.int8)
        got = run("DequantizeLinear", q, s, zp, None)
        want = E.run_reference("DequantizeLinear", {"x": q, "x_scale": s, "x_zero_point": zp}, {"axis": 1}, profile=engine)
        assert CS.compare(want, got)[0] == 0
        n_el += x.size + q.size
    assert n_el > 500


def test_optimized_refuses_grouped_conv():
    """LiteRT runs a grouped conv as DEPTHWISE_CONV_2D, whose optimized int8 kernels round
    unlike CONV_2D: 'tflite-optimized' refuses group > 1 on both paths rather than compute it
    with CONV_2D's arithmetic; the other two profiles model it."""
    import refquant
    from refquant import ProfileError
    rng = np.random.default_rng(0)
    f = np.float32
    args = (rng.integers(0, 256, (1, 4, 5, 5)).astype(np.uint8), f(0.02), np.uint8(3),
            rng.integers(-128, 128, (4, 1, 3, 3)).astype(np.int8), f(0.01), np.int8(0), f(0.1), np.uint8(128))
    for fn in (refquant.qlinear_conv, R.qlinear_conv):
        with pytest.raises(ProfileError, match="DEPTHWISE_CONV_2D"):
            fn(*args, group=4, pads=[1] * 4, profile="tflite-optimized")
        assert fn(*args, pads=[1] * 4, group=4, profile="tflite-reference").shape == (1, 4, 5, 5)


@pytest.mark.parametrize("engine", TFL)
def test_per_channel_conv_needs_int8_input(engine):
    """LiteRT refuses per-channel CONV_2D weights with a uint8 input (kernel_util.cc); the
    profiles refuse the same call on both paths instead of computing it."""
    need(engine)
    import refquant
    from refquant import ProfileError
    rng = np.random.default_rng(0)
    f = np.float32
    d = {"x": rng.integers(0, 256, (1, 4, 5, 5)).astype(np.uint8), "x_scale": f(0.02), "x_zero_point": np.uint8(3),
         "w": rng.integers(0, 256, (3, 4, 3, 3)).astype(np.uint8), "w_scale": np.array([0.01, 0.02, 0.03], f),
         "w_zero_point": np.full(3, 128, np.uint8), "y_scale": f(0.5), "y_zero_point": np.uint8(128)}
    with pytest.raises(E.EngineUnsupported, match="kTfLiteInt8"):
        E.run(engine, "QLinearConv", d, {"pads": [1] * 4})
    args = [d[k] for k in E.OP_INPUTS["QLinearConv"] if k in d]
    for fn in (refquant.qlinear_conv, R.qlinear_conv):
        with pytest.raises(ProfileError, match="per-channel w_scale with a uint8 x"):
            fn(*args, pads=[1] * 4, profile=engine)
