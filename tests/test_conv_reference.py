"""ConvInteger / QLinearConv reference: exactness vs a direct int64 convolution, peers
(onnxruntime, onnx.reference, PyTorch fbgemm / qnnpack), deviations by name, bad input."""
import itertools
import time
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

from refquant import get_profile
from refquant._packed import PackedWeights
from refquant.reference import conv_integer, qlinear_conv, qgemm, accumulator_range
from refquant.reference.conv import conv_output_shape, fbgemm_depthwise_fast_path

U8, S8 = np.uint8, np.int8


def rnd(rng, dt, shape):
    i = np.iinfo(dt)
    return rng.integers(i.min, i.max + 1, shape).astype(dt)


def wrap(x):
    return ((np.asarray(x, np.int64) + 2 ** 31) % 2 ** 32 - 2 ** 31).astype(np.int32)


def _same_pads(spatial, kernel, strides, dilations, mode):
    pb, pe = [], []
    for D, k, s, d in zip(spatial, kernel, strides, dilations):
        out = -(-D // s)
        tot = max(0, (out - 1) * s + (k - 1) * d + 1 - D)
        h = tot // 2 if mode == "SAME_UPPER" else tot - tot // 2
        pb.append(h)
        pe.append(tot - h)
    return pb + pe


def direct_conv(x, w, xz=0, wz=0, *, group=1, strides=None, dilations=None, pads=None, auto_pad="NOTSET"):
    """Independent exact int64 convolution: a loop over kernel taps, no im2col, no float."""
    nd = x.ndim - 2
    kernel = w.shape[2:]
    strides = strides or [1] * nd
    dilations = dilations or [1] * nd
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = _same_pads(x.shape[2:], kernel, strides, dilations, auto_pad)
    elif auto_pad == "VALID" or pads is None:
        pads = [0] * (2 * nd)
    xi = x.astype(np.int64) - np.int64(xz)
    wz = np.asarray(wz, np.int64)
    wi = w.astype(np.int64) - (wz.reshape((-1,) + (1,) * (w.ndim - 1)) if wz.ndim else wz)
    xp = np.pad(xi, [(0, 0), (0, 0)] + [(pads[i], pads[i + nd]) for i in range(nd)])
    out = [(xp.shape[2 + i] - ((kernel[i] - 1) * dilations[i] + 1)) // strides[i] + 1 for i in range(nd)]
    N, C = x.shape[:2]
    M = w.shape[0]
    Cg, Mg = C // group, M // group
    y = np.zeros((N, M, *out), np.int64)
    for g in range(group):
        for j in itertools.product(*[range(k) for k in kernel]):
            sl = tuple(slice(j[i] * dilations[i], j[i] * dilations[i] + (out[i] - 1) * strides[i] + 1, strides[i])
                       for i in range(nd))
            xs = xp[(slice(None), slice(g * Cg, (g + 1) * Cg)) + sl]            # (N, Cg, out...)
            ws = wi[(slice(g * Mg, (g + 1) * Mg), slice(None)) + tuple(j)]      # (Mg, Cg)
            y[:, g * Mg:(g + 1) * Mg] += np.einsum("nc...,mc->nm...", xs, ws)
    return y


def ort():
    pytest.importorskip("onnxruntime", reason="onnxruntime is the peer engine")
    from _ort_models import run_ort
    return run_ort


def onnx_ref():
    pytest.importorskip("onnx.reference", reason="onnx.reference is the peer")
    from _ort_models import run_onnx_ref
    return run_onnx_ref


# (x shape, w shape, attributes)
CASES = [
    ((1, 1, 1, 1), (1, 1, 1, 1), {}),
    ((2, 3, 11, 9), (4, 3, 3, 3), {}),
    ((1, 3, 7, 7), (5, 3, 3, 3), {"pads": [1, 1, 1, 1]}),
    ((1, 4, 10, 10), (4, 1, 3, 3), {"group": 4, "pads": [1, 1, 1, 1]}),                 # depthwise
    ((1, 8, 9, 9), (8, 1, 3, 3), {"group": 8, "strides": [2, 2], "pads": [1, 0, 1, 0]}),  # depthwise s2
    ((1, 6, 13), (4, 3, 5), {"group": 2, "strides": [2], "dilations": [2], "pads": [2, 1]}),   # 1-D
    ((2, 5, 17), (3, 5, 1), {}),                                                         # 1-D 1x1
    ((1, 2, 5, 6, 7), (3, 2, 2, 3, 2), {"strides": [1, 2, 1], "auto_pad": "SAME_UPPER"}),  # 3-D
    ((1, 4, 4, 5, 3), (2, 2, 3, 1, 2), {"group": 2, "pads": [1, 0, 1, 1, 0, 0], "dilations": [1, 1, 2]}),
    ((1, 2, 9, 8), (3, 2, 3, 3), {"strides": [2, 3], "auto_pad": "SAME_LOWER"}),
    ((1, 2, 9, 8), (3, 2, 3, 3), {"auto_pad": "VALID", "strides": [3, 1]}),
    ((1, 3, 12, 12), (2, 3, 5, 4), {"dilations": [2, 3], "pads": [2, 3, 1, 0], "strides": [1, 2]}),
    ((1, 17, 7, 5), (19, 17, 2, 2), {}),                                                 # primes
    ((1, 64, 9, 9), (16, 64, 3, 3), {"pads": [1, 1, 1, 1]}),                             # K = 576 > tiles
]
COMBOS = [(U8, S8), (U8, U8), (S8, S8), (S8, U8)]


def _ids(c):
    return f"{len(c[0]) - 2}d-{c[0]}-{c[1]}-{'-'.join(f'{k}{v}' for k, v in c[2].items())}".replace(" ", "")


# --------------------------------------------------------------------------- exactness

@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_conv_integer_vs_direct_int64(case):
    xs, ws, at = case
    rng = np.random.default_rng(abs(hash(str(case))) % 2 ** 31)
    for xt, wt in COMBOS:
        x, w = rnd(rng, xt, xs), rnd(rng, wt, ws)
        xz = rnd(rng, xt, ())
        wz = rnd(rng, wt, (ws[0],)) if xt == U8 else rnd(rng, wt, ())
        got = conv_integer(x, w, xz, wz, **at)
        assert got.dtype == np.int32
        assert got.shape == conv_output_shape(xs, ws, **at)
        assert np.array_equal(got, wrap(direct_conv(x, w, xz, wz, **at)))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3),
       st.integers(1, 2), st.integers(0, 2), st.sampled_from(["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]),
       st.integers(0, 2 ** 31), st.integers(1, 3))
def test_conv_integer_hypothesis(nd, g, cg, mg, k, s, p, auto_pad, seed, d):
    rng = np.random.default_rng(seed)
    spatial = list(rng.integers(k * d, k * d + 6, nd))
    xs = (int(rng.integers(1, 3)), g * cg, *spatial)
    ws = (g * mg, cg, *[k] * nd)
    at = dict(group=g, strides=[s] * nd, dilations=[d] * nd, auto_pad=auto_pad)
    if auto_pad == "NOTSET":
        at["pads"] = [p] * (2 * nd)
    x, w = rnd(rng, U8, xs), rnd(rng, S8, ws)
    wz = rnd(rng, S8, (ws[0],))
    got = conv_integer(x, w, np.uint8(128), wz, **at)
    assert np.array_equal(got, wrap(direct_conv(x, w, 128, wz, **at)))


def test_conv_int32_overflow_and_accumulator_range():
    run_ort = ort()
    C = 34000                                  # 34000 * 255 * 255 > 2^31
    x = np.full((1, C, 1), 255, U8)
    w = np.full((2, C, 1), 255, U8)
    w[1] = 1
    got = conv_integer(x, w)
    ex = direct_conv(x, w)
    assert ex.max() > 2 ** 31
    assert np.array_equal(got, wrap(ex))
    assert np.array_equal(got, run_ort("ConvInteger", [x, w], opset=10))
    r = accumulator_range(x, w, conv=True)
    assert r.int32_overflow and r.max == int(ex.max())
    r2 = accumulator_range(x, w, strides=[1])          # any conv attribute implies a convolution
    assert r2 == r


# --------------------------------------------------------------------------- onnxruntime

@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_conv_integer_vs_onnxruntime_and_reference(case):
    run_ort, run_ref = ort(), onnx_ref()
    xs, ws, at = case
    rng = np.random.default_rng(7 + len(xs))
    for xt, wt in COMBOS:
        x, w = rnd(rng, xt, xs), rnd(rng, wt, ws)
        xz = np.array(np.iinfo(xt).max if xt == U8 else -1, xt)    # extreme / odd zero points
        wz = np.array(np.iinfo(wt).min, wt)
        ours = conv_integer(x, w, xz, wz, **at)
        assert np.array_equal(ours, run_ort("ConvInteger", [x, w, xz, wz], at, opset=10))
        assert np.array_equal(ours, run_ref("ConvInteger", [x, w, xz, wz], at, opset=10))


def test_conv_integer_same_with_dilation_reference_only():
    """onnxruntime rejects SAME_* auto_pad with dilations ('Dilation not supported for
    AutoPadType::SAME_UPPER'); onnx.reference (and refquant) use the dilated kernel extent."""
    run_ort, run_ref = ort(), onnx_ref()
    rng = np.random.default_rng(8)
    x, w = rnd(rng, U8, (1, 2, 9, 8)), rnd(rng, S8, (3, 2, 3, 3))
    for mode in ("SAME_UPPER", "SAME_LOWER"):
        at = {"auto_pad": mode, "strides": [2, 3], "dilations": [2, 1]}
        ours = conv_integer(x, w, np.uint8(3), **at)
        assert np.array_equal(ours, run_ref("ConvInteger", [x, w, np.uint8(3)], at, opset=10))
        assert np.array_equal(ours, wrap(direct_conv(x, w, 3, **at)))
        with pytest.raises(Exception, match="Dilation not supported"):
            run_ort("ConvInteger", [x, w, np.uint8(3)], at, opset=10)


def test_conv_integer_per_channel_w_zero_point_deviations():
    """Per-output-channel w_zero_point: onnxruntime's ConvInteger rejects it ('Non per-tensor
    quantization is not supported'); onnx.reference handles it only for 4-D (2-D conv) input
    (expand_dims((1, 2, 3)))."""
    run_ort, run_ref = ort(), onnx_ref()
    rng = np.random.default_rng(9)
    x, w = rnd(rng, U8, (1, 3, 6, 6)), rnd(rng, U8, (4, 3, 3, 3))
    wz = rnd(rng, U8, (4,))
    ours = conv_integer(x, w, np.uint8(5), wz)
    assert np.array_equal(ours, wrap(direct_conv(x, w, 5, wz)))
    assert np.array_equal(ours, run_ref("ConvInteger", [x, w, np.uint8(5), wz], opset=10))
    with pytest.raises(Exception, match="Non per-tensor quantization"):
        run_ort("ConvInteger", [x, w, np.uint8(5), wz], opset=10)
    x1, w1 = rnd(rng, U8, (1, 3, 8)), rnd(rng, U8, (4, 3, 3))
    ours1 = conv_integer(x1, w1, np.uint8(5), wz)
    assert np.array_equal(ours1, wrap(direct_conv(x1, w1, 5, wz)))
    with pytest.raises(Exception):
        run_ref("ConvInteger", [x1, w1, np.uint8(5), wz], opset=10)      # 4-D-only expand_dims


def _qconv_args(rng, xs, ws, xt, wt, *, per_channel, ties, bias=True):
    M = ws[0]
    x, w = rnd(rng, xt, xs), rnd(rng, wt, ws)
    xz = rnd(rng, xt, ())
    if ties:
        ix, iw = np.iinfo(xt), np.iinfo(wt)
        x = np.clip(int(xz) + rng.integers(-2, 3, xs), ix.min, ix.max).astype(xt)
        w = np.clip((128 if wt == U8 else 0) + rng.integers(-2, 3, ws), iw.min, iw.max).astype(wt)
        x_s, y_s = np.float32(1.0), np.float32(2.0)
        w_s = np.ones(M, np.float32) if per_channel else np.float32(1.0)
        yz = np.array(1 if xt == U8 else -1, xt)
    else:
        x_s, y_s = np.float32(rng.uniform(0.01, 0.1)), np.float32(rng.uniform(0.05, 0.5))
        w_s = rng.uniform(0.001, 0.02, M).astype(np.float32) if per_channel else np.float32(rng.uniform(0.001, 0.02))
        yz = rnd(rng, xt, ())
    wz = np.zeros(M, wt) if per_channel else np.array(0, wt)
    if wt == U8:
        wz = (wz + 128).astype(U8)
    B = (rng.integers(-3, 4, M) if ties else rng.integers(-20000, 20000, M)).astype(np.int32) if bias else None
    return [x, x_s, xz, w, w_s, wz, y_s, yz, B]


@pytest.mark.parametrize("ties", [False, True], ids=["random", "ties"])
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_qlinear_conv_vs_onnxruntime_and_reference(case, ties):
    run_ort, run_ref = ort(), onnx_ref()
    xs, ws, at = case
    rng = np.random.default_rng(11 + len(xs) + ties)
    n_dev = 0
    # onnxruntime 1.32 QLinearConv kernels: x u8 with w u8/s8, x s8 with w s8 (output type = x type)
    for xt, wt in [(U8, S8), (U8, U8), (S8, S8)]:
        for per_channel in (False, True):
            args = _qconv_args(rng, xs, ws, xt, wt, per_channel=per_channel, ties=ties)
            ours = qlinear_conv(*args, **at)
            assert ours.dtype == xt
            assert np.array_equal(ours, run_ort("QLinearConv", args, at)), (xt, wt, per_channel)
            if len(xs) == 4 or not per_channel:
                ref = run_ref("QLinearConv", args, at)
                assert np.array_equal(ref, qlinear_conv(*args, **at, profile="onnx-reference"))
                n_dev += int(np.count_nonzero(ref != ours))
    if ties:
        assert n_dev > 0           # rq_zero_point='before_rounding' in onnx.reference


def test_qlinear_conv_per_channel_4d_only_in_onnx_reference():
    """onnx.reference QLinearConv expands a 1-D w_scale with expand_dims((0, 2, 3)): only a 4-D
    (2-D conv) output broadcasts; 1-D and 3-D convolutions with per-channel scales fail there."""
    run_ort, run_ref = ort(), onnx_ref()
    rng = np.random.default_rng(12)
    outcomes = []
    for xs, ws in [((2, 4, 9), (3, 4, 3)), ((1, 2, 4, 5, 4), (3, 2, 2, 2, 2)), ((1, 2, 4, 5, 4), (3, 2, 2, 2, 2)),
                   ((1, 3, 7), (3, 3, 3))]:
        args = _qconv_args(rng, xs, ws, U8, S8, per_channel=True, ties=False)
        ours = qlinear_conv(*args)
        assert np.array_equal(ours, run_ort("QLinearConv", args))
        try:
            ref = run_ref("QLinearConv", args)
        except Exception:
            outcomes.append("error")                   # broadcasting error
            continue
        if ref.shape != ours.shape:
            outcomes.append("shape")                   # (1, C, C, L) for N = 1, 1-D conv
        else:                                          # 3-D with D == M: scales applied along D
            assert not np.array_equal(ref, qlinear_conv(*args, profile="onnx-reference"))
            outcomes.append("values")
    assert outcomes


def test_qlinear_conv_acc_beyond_2_24():
    run_ort, run_ref = ort(), onnx_ref()
    C = 2048
    x = np.full((1, C, 1, 1), 255, U8)
    w = np.full((2, C, 1, 1), 127, S8)
    w[:, 0] = 126
    args = [x, np.float32(1.0), np.uint8(0), w, np.float32(1.0), np.int8(0), np.float32(1 / 3.0230283e-06),
            np.uint8(0), np.array([0, 1], np.int32)]
    ours = qlinear_conv(*args)
    assert np.array_equal(ours, run_ort("QLinearConv", args))
    ref = run_ref("QLinearConv", args)
    assert np.array_equal(ref, qlinear_conv(*args, profile="onnx-reference"))
    assert ours[0, 0, 0, 0] == 200 and ref[0, 0, 0, 0] == 201   # fl32(66324225) = 66324224 (cvtdq2ps)


def test_qlinear_conv_bias_int32_wraps_like_onnxruntime():
    run_ort = ort()
    rng = np.random.default_rng(13)
    x, w = rnd(rng, U8, (1, 2, 4, 4)), rnd(rng, S8, (2, 2, 1, 1))
    B = np.array([2 ** 31 - 1, -2 ** 31], np.int32)
    args = [x, np.float32(0.1), np.uint8(100), w, np.float32(0.1), np.int8(0), np.float32(1e8), np.uint8(128), B]
    assert np.array_equal(qlinear_conv(*args), run_ort("QLinearConv", args))


# --------------------------------------------------------------------------- int16 pair saturation

def test_conv_pair_saturation_nhwc_order():
    """onnxruntime-avx2: pairs run over (kernel position, channel) with the channel fastest; the
    #16105 case as a 1x1 conv with 3 channels."""
    p = get_profile("onnxruntime-avx2")
    x = np.array([210, 198, 234], U8).reshape(1, 3, 1, 1)
    w = np.array([-81, -80, 127], S8).reshape(1, 3, 1, 1)
    assert conv_integer(x, w).item() == 210 * -81 + 198 * -80 + 234 * 127
    assert conv_integer(x, w, profile=p).item() == -32768 + 234 * 127
    # kernel 1x2 with one channel: the pair is the two kernel taps
    x2 = np.array([210, 198], U8).reshape(1, 1, 1, 2)
    w2 = np.array([-81, -80], S8).reshape(1, 1, 1, 2)
    assert conv_integer(x2, w2, profile=p).item() == -32768
    r = accumulator_range(x, w, conv=True)
    assert r.n_pair_saturated == 1


def test_conv_pair_saturation_matches_gemm_model():
    from refquant.reference import matmul_integer
    p = get_profile("onnxruntime-avx2")
    rng = np.random.default_rng(14)
    x = rng.integers(150, 256, (1, 5, 4, 4)).astype(U8)
    w = rng.choice([-128, -127, 120, 127], (3, 5, 3, 3)).astype(S8)
    got = conv_integer(x, w, np.uint8(7), np.int8(2), pads=[1, 1, 1, 1], profile=p)
    # same thing through an explicit NHWC im2col and matmul_integer with the same profile
    xp = np.pad(x, [(0, 0), (0, 0), (1, 1), (1, 1)], constant_values=7)
    cols = np.stack([xp[0, :, i:i + 3, j:j + 3].transpose(1, 2, 0).reshape(-1) for i in range(4) for j in range(4)])
    wm = w.transpose(0, 2, 3, 1).reshape(3, -1).T
    exp = matmul_integer(cols, wm, np.uint8(7), np.int8(2), profile=p).T.reshape(1, 3, 4, 4)
    assert np.array_equal(got, exp)
    assert not np.array_equal(got, conv_integer(x, w, np.uint8(7), np.int8(2), pads=[1, 1, 1, 1]))


# --------------------------------------------------------------------------- PyTorch

def _torch_conv(torch, engine, X, xs, xz, W, ws, b, ys, yz, st_, pd, dl, g):
    torch.backends.quantized.engine = engine
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x = torch._make_per_tensor_quantized_tensor(torch.from_numpy(X), xs, xz)
        if np.ndim(ws):
            w = torch._make_per_channel_quantized_tensor(torch.from_numpy(W), torch.from_numpy(ws.astype(np.float64)),
                                                         torch.zeros(len(ws), dtype=torch.int64), 0)
        else:
            w = torch._make_per_tensor_quantized_tensor(torch.from_numpy(W), float(ws), 0)
        pk = torch.ops.quantized.conv2d_prepack(w, torch.from_numpy(b), [st_, st_], [pd, pd], [dl, dl], g)
        return torch.ops.quantized.conv2d(x, pk, ys, yz).int_repr().numpy()


@pytest.mark.parametrize("engine", ["fbgemm", "qnnpack"])
def test_torch_quantized_conv2d(engine):
    """fbgemm: rq_bias='float' (float bias folded as fl32(acc) + fl32(b/fl32(x_s*w_s)));
    qnnpack: rq_multiplier='fp32_reciprocal' with int32 bias RNE(fl32(b * fl32(1/fl32(w_s*x_s))))."""
    torch = pytest.importorskip("torch", reason="PyTorch quantized CPU engines are the peer")
    if engine not in torch.backends.quantized.supported_engines:
        pytest.skip(f"torch engine {engine} not built")
    base = get_profile("onnx")
    prof = base.replace(rq_bias="float") if engine == "fbgemm" else base.replace(rq_multiplier="fp32_reciprocal")
    rng = np.random.default_rng(15)
    for t in range(16):
        C, g = int(rng.integers(1, 4)) * 2, [1, 2][t % 2]
        M = int(rng.integers(1, 4)) * 2
        k, st_, pd, dl = (int(v) for v in (rng.integers(1, 4), rng.integers(1, 3), rng.integers(0, 2),
                                             rng.integers(1, 3)))
        X = rng.integers(0, 256, (1, C, int(rng.integers(6, 12)), int(rng.integers(6, 12))), dtype=np.uint8)
        W = rng.integers(-127, 128, (M, C // g, k, k), dtype=np.int8)
        xs, ys = float(np.float32(rng.uniform(0.01, 0.1))), float(np.float32(rng.uniform(0.02, 0.2)))
        xz, yz = int(rng.integers(0, 256)), int(rng.integers(0, 256))
        per_ch = engine == "fbgemm" and t % 3 == 0
        ws = rng.uniform(0.001, 0.02, M).astype(np.float32) if per_ch else np.float32(rng.uniform(0.001, 0.02))
        b = rng.normal(size=M).astype(np.float32)
        y = _torch_conv(torch, engine, X, xs, xz, W, ws, b, ys, yz, st_, pd, dl, g)
        at = dict(strides=[st_, st_], pads=[pd] * 4, dilations=[dl, dl], group=g)
        wz = np.zeros(M, S8) if per_ch else np.int8(0)
        if engine == "fbgemm":
            ours = qlinear_conv(X, np.float32(xs), np.uint8(xz), W, ws, wz, np.float32(ys), np.uint8(yz), b,
                                profile=prof, **at)
        else:
            s = np.float32(ws * np.float32(xs))
            bq = np.rint((b * (np.float32(1) / s)).astype(np.float32)).astype(np.int32)
            ours = qlinear_conv(X, np.float32(xs), np.uint8(xz), W, ws, wz, np.float32(ys), np.uint8(yz), bq,
                                profile=prof, **at)
        assert np.array_equal(y, ours), (engine, t)


# --------------------------------------------------------------------------- bad input

def test_bad_input_conv():
    x, w = np.zeros((1, 4, 5, 5), U8), np.zeros((2, 4, 3, 3), S8)
    conv_integer(x, w)
    with pytest.raises(ValueError, match="group"):
        conv_integer(x, np.zeros((2, 4, 3, 3), S8), group=3)
    with pytest.raises(ValueError, match="group"):
        conv_integer(x, np.zeros((3, 2, 3, 3), S8), group=2)
    with pytest.raises(ValueError, match="w.shape\\[1\\]"):
        conv_integer(x, np.zeros((2, 3, 3, 3), S8))
    with pytest.raises(ValueError, match="larger than the padded input"):
        conv_integer(x, np.zeros((2, 4, 7, 7), S8), pads=[1, 0, 0, 0])
    with pytest.raises(ValueError, match="larger than the padded input"):
        conv_integer(x, w, dilations=[3, 1])
    with pytest.raises(ValueError, match="kernel_shape"):
        conv_integer(x, w, kernel_shape=[2, 2])
    with pytest.raises(ValueError, match="strides"):
        conv_integer(x, w, strides=[1])
    with pytest.raises(ValueError, match="strides"):
        conv_integer(x, w, strides=[0, 1])
    with pytest.raises(ValueError, match="pads"):
        conv_integer(x, w, pads=[1, 1])
    with pytest.raises(ValueError, match="pads"):
        conv_integer(x, w, auto_pad="SAME_UPPER", pads=[1, 1, 1, 1])
    with pytest.raises(ValueError, match="auto_pad"):
        conv_integer(x, w, auto_pad="SAME")
    with pytest.raises(ValueError, match="x"):
        conv_integer(np.zeros((4, 5), U8), w)
    with pytest.raises(ValueError, match="w"):
        conv_integer(x, np.zeros((2, 4, 3), S8))
    with pytest.raises(TypeError, match="x"):
        conv_integer(x.astype(np.int32), w)
    with pytest.raises(ValueError, match="x_zero_point"):
        conv_integer(x, w, np.zeros(4, U8))
    with pytest.raises(ValueError, match="w_zero_point"):
        conv_integer(x, w, None, np.zeros(3, S8))
    with pytest.raises(TypeError, match="w_zero_point"):
        conv_integer(x, w, None, np.zeros(2, U8))


def test_bad_input_qlinear_conv():
    x, w = np.zeros((1, 4, 5, 5), U8), np.zeros((2, 4, 3, 3), S8)
    ok = [x, np.float32(0.1), np.uint8(0), w, np.float32(0.1), np.int8(0), np.float32(0.2), np.uint8(0)]
    qlinear_conv(*ok)
    for i, name, val, exc in [(1, "x_scale", np.ones(2, np.float32), ValueError),
                              (1, "x_scale", np.float32(0), ValueError),
                              (4, "w_scale", np.ones(3, np.float32), ValueError),
                              (4, "w_scale", np.float32(-1), ValueError),
                              (6, "y_scale", np.float32(np.inf), ValueError),
                              (7, "y_zero_point", np.zeros(2, U8), ValueError),
                              (2, "x_zero_point", np.int8(0), TypeError)]:
        bad = list(ok)
        bad[i] = val
        with pytest.raises(exc, match=name):
            qlinear_conv(*bad)
    with pytest.raises(ValueError, match="B"):
        qlinear_conv(*ok, np.zeros(3, np.int32))
    with pytest.raises(TypeError, match="B"):
        qlinear_conv(*ok, np.zeros(2, np.float32))
    with pytest.raises(TypeError, match="B"):
        qlinear_conv(*ok, np.zeros(2, np.int64))
    # PackedWeights accepted for w
    assert np.array_equal(qlinear_conv(*ok[:3], PackedWeights(w), *ok[4:]), qlinear_conv(*ok))


# --------------------------------------------------------------------------- speed / big sweeps

@pytest.mark.slow
def test_speed_resnet50_3x3_layer():
    rng = np.random.default_rng(20)
    x, w = rnd(rng, U8, (1, 64, 56, 56)), rnd(rng, S8, (64, 64, 3, 3))
    t = time.perf_counter()
    y = qlinear_conv(x, np.float32(0.02), np.uint8(128), w, np.float32(0.01), np.int8(0), np.float32(0.1),
                     np.uint8(128), rng.integers(-1000, 1000, 64).astype(np.int32), pads=[1, 1, 1, 1])
    dt = time.perf_counter() - t
    assert y.shape == (1, 64, 56, 56)
    assert dt < 10, dt


@pytest.mark.slow
def test_conv_big_sweep_vs_onnxruntime():
    run_ort, run_ref = ort(), onnx_ref()
    rng = np.random.default_rng(21)
    for t in range(80):
        nd = int(rng.integers(1, 4))
        g = int(rng.integers(1, 4))
        cg, mg = int(rng.integers(1, 5)), int(rng.integers(1, 4))
        k = [int(v) for v in rng.integers(1, 4, nd)]
        d = [int(v) for v in rng.integers(1, 3, nd)]
        s = [int(v) for v in rng.integers(1, 3, nd)]
        spatial = [int(kk * dd + rng.integers(0, 8)) for kk, dd in zip(k, d)]
        xs, ws = (int(rng.integers(1, 3)), g * cg, *spatial), (g * mg, cg, *k)
        mode = ["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"][t % 4]
        at = dict(group=g, strides=s, auto_pad=mode)
        if mode in ("NOTSET", "VALID"):
            at["dilations"] = d
        if mode == "NOTSET":
            at["pads"] = [int(v) for v in rng.integers(0, 3, 2 * nd)]
        xt, wt = [(U8, S8), (U8, U8), (S8, S8)][t % 3]
        args = _qconv_args(rng, xs, ws, xt, wt, per_channel=bool(t % 2), ties=bool(t % 5 == 0))
        assert np.array_equal(qlinear_conv(*args, **at), run_ort("QLinearConv", args, at)), (xs, ws, at)
        assert np.array_equal(conv_integer(args[0], args[3], args[2], args[5], **at),
                              run_ort("ConvInteger", [args[0], args[3], args[2],
                                                      args[5] if np.size(args[5]) == 1 else None], at, opset=10)
                              if np.size(args[5]) == 1 else wrap(direct_conv(args[0], args[3], args[2], args[5], **at)))
        if nd == 2 or np.size(args[4]) == 1:
            assert np.array_equal(qlinear_conv(*args, **at, profile="onnx-reference"),
                                  run_ref("QLinearConv", args, at))


_FBGEMM_SCRIPT = r'''
import sys, warnings, numpy as np
warnings.filterwarnings("ignore")
import torch
torch.backends.quantized.engine = "fbgemm"
d = dict(np.load(sys.argv[1]))
out = {}
i = 0
while f"X{i}" in d:
    X, W, b = d[f"X{i}"], d[f"W{i}"], d[f"b{i}"]
    xs, xz, ws, ys, yz = (float(v) for v in d[f"q{i}"])
    x = torch._make_per_tensor_quantized_tensor(torch.from_numpy(X), xs, int(xz))
    w = torch._make_per_tensor_quantized_tensor(torch.from_numpy(W), ws, 0)
    if X.ndim == 2:
        pk = torch.ops.quantized.linear_prepack(w, torch.from_numpy(b))
        y = torch.ops.quantized.linear(x, pk, ys, int(yz))
    elif X.ndim == 4:
        st, pd, dl, g = (int(v) for v in d[f"c{i}"])
        pk = torch.ops.quantized.conv2d_prepack(w, torch.from_numpy(b), [st, st], [pd, pd], [dl, dl], g)
        y = torch.ops.quantized.conv2d(x, pk, ys, int(yz))
    else:
        st, pd, dl, g = (int(v) for v in d[f"c{i}"])
        pk = torch.ops.quantized.conv3d_prepack(w, torch.from_numpy(b), [st] * 3, [pd] * 3, [dl] * 3, g)
        y = torch.ops.quantized.conv3d(x, pk, ys, int(yz))
    out[f"y{i}"] = y.int_repr().numpy()
    i += 1
np.savez(sys.argv[2], **out)
'''


def _with_pair_saturation(profile, mode):
    """profile.replace(int16_pair_saturation=mode), admitting the string scope
    "fbgemm_depthwise" that conv.py implements even where Profile's validation does not
    accept it yet."""
    if isinstance(mode, bool):
        return profile.replace(int16_pair_saturation=mode)
    try:
        return profile.replace(int16_pair_saturation=mode)
    except (TypeError, ValueError):
        p = profile.replace(int16_pair_saturation=False)
        object.__setattr__(p, "int16_pair_saturation", mode)
        return p


def test_torch_fbgemm_avx2_int16_pair_saturation(tmp_path):
    """Live check of Profile.int16_pair_saturation: fbgemm forced to its AVX2 kernels
    (FBGEMM_ENABLE_INSTRUCTIONS=AVX2, vpmaddubsw) equals the reference with
    int16_pair_saturation=True and rq_bias='float' -- linear, conv, grouped and depthwise
    (pairs of consecutive (kernel position, channel) taps, channel fastest).  With the VNNI
    kernels (AVX512_E1, this machine's default) GEMM, im2col and groupwise paths do not saturate,
    but fbgemm's depthwise fast path (conv.fbgemm_depthwise_fast_path: G == C, M in {G, 2G},
    G % 8 == 0, stride 1/2, cubic kernel 3/5/7, dilation 1, pads (k-1)/2; 2-D and 3-D) is AVX2
    code and saturates on every x86 CPU."""
    pytest.importorskip("torch", reason="PyTorch fbgemm is the peer")
    import os
    import subprocess
    import sys
    rng = np.random.default_rng(16)
    d = {}
    n_cases = 20
    for i in range(n_cases):
        if i >= 18:                                  # 3-D depthwise 3x3x3 (C = 8) and 5x5x5 (C = 4)
            C, k = (8, 3) if i == 18 else (4, 5)
            X = rng.integers(100, 256, (1, C, 6, 7, 6)).astype(U8)
            W = rng.choice([-128, -127, -100, 100, 127], (C, 1, k, k, k)).astype(S8)
            d[f"c{i}"] = np.array([1, k // 2, 1, C])
        elif i % 3 == 0:
            M, K, N = int(rng.integers(1, 20)), int(rng.integers(1, 70)), int(rng.integers(1, 20))
            X = rng.integers(100, 256, (M, K)).astype(U8)
            W = rng.choice([-128, -127, -100, 100, 127], (N, K)).astype(S8)
        else:
            if i % 3 == 1:
                C, g, k = int(rng.integers(1, 5)) * 2, [1, 2][i % 2], int(rng.integers(1, 4))
                Mo = int(rng.integers(1, 4)) * 2
            else:                                    # depthwise 3x3 / 5x5, C = 4 or 16
                C = [4, 16][(i // 3) % 2]
                g, k, Mo = C, [3, 5][i % 2], C
            X = rng.integers(100, 256, (1, C, 8, 9)).astype(U8)
            W = rng.choice([-128, -127, -100, 100, 127], (Mo, C // g, k, k)).astype(S8)
            d[f"c{i}"] = np.array([int(rng.integers(1, 3)), k // 2, 1 if g > 1 else int(rng.integers(1, 3)), g])
        d[f"X{i}"], d[f"W{i}"] = X, W
        d[f"b{i}"] = rng.normal(size=W.shape[0]).astype(np.float32)
        d[f"q{i}"] = np.array([np.float32(rng.uniform(0.01, 0.1)), int(rng.integers(0, 256)),
                               np.float32(rng.uniform(0.001, 0.02)), np.float32(rng.uniform(1, 10)),
                               int(rng.integers(0, 256))], np.float64)
    np.savez(tmp_path / "in.npz", **d)
    (tmp_path / "run.py").write_text(_FBGEMM_SCRIPT)
    fb = get_profile("onnx").replace(name="fbgemm-like", rq_bias="float")
    isas = [("AVX2", True)]
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        flags = ""
    if "avx512_vnni" in flags:
        isas.append(("AVX512_E1", False))
    for isa, sat_all in isas:
        env = dict(os.environ, FBGEMM_ENABLE_INSTRUCTIONS=isa)
        subprocess.run([sys.executable, str(tmp_path / "run.py"), str(tmp_path / "in.npz"),
                        str(tmp_path / f"{isa}.npz")], env=env, check=True, capture_output=True)
        res = np.load(tmp_path / f"{isa}.npz")
        n_sat_effect = 0
        # fbgemm's depthwise fast path is AVX2 code (vpmaddubsw) on every x86 CPU
        p = _with_pair_saturation(fb, True if sat_all else "fbgemm_depthwise")
        for i in range(n_cases):
            X, W, b, q = d[f"X{i}"], d[f"W{i}"], d[f"b{i}"], d[f"q{i}"]
            nd = X.ndim - 2
            sat = sat_all or (X.ndim >= 4 and fbgemm_depthwise_fast_path(
                X.shape, W.shape, group=int(d[f"c{i}"][3]), strides=[int(d[f"c{i}"][0])] * nd,
                dilations=[int(d[f"c{i}"][2])] * nd, pads_begin=[int(d[f"c{i}"][1])] * nd,
                pads_end=[int(d[f"c{i}"][1])] * nd))
            xs, xz, ws, ys, yz = np.float32(q[0]), np.uint8(q[1]), np.float32(q[2]), np.float32(q[3]), np.uint8(q[4])
            if X.ndim == 2:
                f = lambda prof: qgemm(X, xs, xz, W, ws, np.int8(0), b, ys, yz, transB=1, profile=prof)  # noqa: E731
            else:
                st_, pd, dl, g = (int(v) for v in d[f"c{i}"])
                at = dict(strides=[st_] * nd, pads=[pd] * (2 * nd), dilations=[dl] * nd, group=g)
                f = lambda prof: qlinear_conv(X, xs, xz, W, ws, np.int8(0), ys, yz, b, profile=prof, **at)  # noqa: E731
            ours = f(p)
            assert np.array_equal(res[f"y{i}"], ours), (isa, i)
            n_sat_effect += int(np.count_nonzero(ours != f(fb.replace(int16_pair_saturation=not sat))))
            assert np.array_equal(ours, f(fb.replace(int16_pair_saturation=bool(sat))))
        assert n_sat_effect > 0     # the data does exercise the saturation


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3),
       st.integers(1, 2), st.sampled_from(["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]),
       st.sampled_from([(U8, S8), (U8, U8), (S8, S8)]), st.booleans(), st.booleans(), st.integers(0, 2 ** 31))
def test_qlinear_conv_hypothesis_vs_onnxruntime(nd, g, cg, mg, k, s, auto_pad, combo, per_channel, ties, seed):
    run_ort = ort()
    rng = np.random.default_rng(seed)
    d = int(rng.integers(1, 3)) if auto_pad in ("NOTSET", "VALID") else 1   # ORT: no dilation with SAME
    spatial = [int(v) for v in rng.integers((k - 1) * d + 1, (k - 1) * d + 7, nd)]
    xs, ws = (int(rng.integers(1, 3)), g * cg, *spatial), (g * mg, cg, *[k] * nd)
    at = dict(group=g, strides=[s] * nd, dilations=[d] * nd, auto_pad=auto_pad)
    if auto_pad == "NOTSET":
        at["pads"] = [int(v) for v in rng.integers(0, 3, 2 * nd)]
    args = _qconv_args(rng, xs, ws, *combo, per_channel=per_channel, ties=ties)
    assert np.array_equal(qlinear_conv(*args, **at), run_ort("QLinearConv", args, at))


def test_fbgemm_depthwise_fast_path_predicate():
    f = fbgemm_depthwise_fast_path
    kw = dict(strides=[1, 1], dilations=[1, 1], pads_begin=[1, 1], pads_end=[1, 1])
    assert f((1, 8, 9, 9), (8, 1, 3, 3), group=8, **kw)
    assert f((1, 8, 9, 9), (16, 1, 3, 3), group=8, **kw)                 # channel multiplier 2
    assert not f((1, 4, 9, 9), (4, 1, 3, 3), group=4, **kw)              # G % 8
    assert not f((1, 12, 9, 9), (12, 1, 3, 3), group=12, **kw)
    assert not f((1, 8, 9, 9), (8, 1, 3, 3), group=8, **dict(kw, strides=[3, 3]))
    assert not f((1, 8, 9, 9), (8, 1, 3, 3), group=8, **dict(kw, dilations=[2, 2]))
    assert not f((1, 8, 9, 9), (8, 1, 3, 3), group=8, **dict(kw, pads_begin=[0, 0], pads_end=[0, 0]))
    assert f((1, 8, 13, 13), (8, 1, 7, 7), group=8, **dict(kw, pads_begin=[3, 3], pads_end=[3, 3]))
    assert not f((1, 8, 13, 13), (8, 1, 9, 9), group=8, **dict(kw, pads_begin=[4, 4], pads_end=[4, 4]))
    # the scope only affects those convolutions
    p = _with_pair_saturation(get_profile("onnx"), "fbgemm_depthwise")
    x = np.array([210, 198] * 8, U8).reshape(1, 8, 1, 2)
    w = np.tile(np.array([-81, -80], S8), 8).reshape(8, 1, 1, 2)
    assert np.array_equal(conv_integer(x, w, group=8, profile=p), conv_integer(x, w, group=8))
    x3 = np.full((1, 8, 3, 3), 210, U8)
    w3 = np.full((8, 1, 3, 3), -81, S8)
    sat = conv_integer(x3, w3, group=8, pads=[1, 1, 1, 1], profile=p)
    assert not np.array_equal(sat, conv_integer(x3, w3, group=8, pads=[1, 1, 1, 1]))
    assert np.array_equal(sat, conv_integer(x3, w3, group=8, pads=[1, 1, 1, 1],
                                            profile=get_profile("onnx").replace(int16_pair_saturation=True)))
    from refquant.reference import matmul_integer
    assert matmul_integer(np.array([[210, 198]], U8), np.array([[-81], [-80]], S8), profile=p).item() == -32850
