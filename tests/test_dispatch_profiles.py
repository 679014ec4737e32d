"""Safety net for the dispatcher: for EVERY registered profile and every op, the top-level
``refquant.<op>`` (which may run a fast kernel) returns the same bits as
``refquant.reference.<op>`` -- or raises the same exception type.  A fast path that claims a
profile whose fields it does not implement exactly fails here, whatever the profile is."""
from __future__ import annotations

import numpy as np
import pytest

import refquant
from refquant import reference as R
from refquant.engines import cases as CS
import _isa_levels  # noqa: E402  (tests/ on sys.path: conftest.py)

PROFILES = sorted(refquant.profiles())


@pytest.fixture
def scratch_profiles():
    """Profiles a test registers are removed afterwards (the registry is global: a README
    example lists the registered profiles)."""
    from refquant import profile as P
    before = dict(P._REGISTRY)
    yield
    P._REGISTRY.clear()
    P._REGISTRY.update(before)
    P._GENERATION[0] += 1


def _same(fast_call, ref_call):
    try:
        want = ref_call()
    except Exception as exc:  # the dispatcher must raise the same kind of error
        with pytest.raises(type(exc)):
            fast_call()
        return
    got = fast_call()
    if isinstance(want, tuple):
        for g, w in zip(got, want):
            np.testing.assert_array_equal(np.asarray(g).reshape(-1).view(np.uint8),
                                          np.asarray(w).reshape(-1).view(np.uint8))
    else:
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got.reshape(-1).view(np.uint8), want.reshape(-1).view(np.uint8))


def _call(fn, d, keys, **kw):
    return lambda: fn(*[d.get(k) for k in keys], **kw)


@pytest.mark.parametrize("profile", PROFILES)
def test_quantize_dequantize_every_profile(profile):
    rng = np.random.default_rng(abs(hash(profile)) % 2**32)
    for dt in ("int8", "uint8", "int16", "uint4"):
        for n in (1, 7, 16, 33, 1000):
            for per_axis in (False, True):
                d = CS.quantize_case(rng, n if not per_axis else max(n // 3, 1) * 3, dt,
                                     per_axis=per_axis)
                x = d["x"] if not per_axis else d["x"].reshape(-1, 3)
                args = (x, d["y_scale"], d["y_zero_point"])
                _same(lambda: refquant.quantize_linear(*args, profile=profile),
                      lambda: R.quantize_linear(*args, profile=profile))
                q = R.quantize_linear(*args, profile="onnx")
                _same(lambda: refquant.dequantize_linear(q, d["y_scale"], d["y_zero_point"],
                                                         profile=profile),
                      lambda: R.dequantize_linear(q, d["y_scale"], d["y_zero_point"],
                                                  profile=profile))
    x = (rng.standard_normal(257) * 3).astype(np.float32)
    _same(lambda: refquant.dynamic_quantize_linear(x, profile=profile),
          lambda: R.dynamic_quantize_linear(x, profile=profile))
    x16 = x.astype(np.float16)
    for opset in (21, 23):
        _same(lambda: refquant.quantize_linear(x16, np.float16(0.0999), np.int8(1), profile=profile,
                                               opset=opset),
              lambda: R.quantize_linear(x16, np.float16(0.0999), np.int8(1), profile=profile,
                                        opset=opset))


QL = ("a", "a_scale", "a_zero_point", "b", "b_scale", "b_zero_point", "y_scale", "y_zero_point")
QG = ("A", "a_scale", "a_zero_point", "B", "b_scale", "b_zero_point", "C", "y_scale", "y_zero_point")
QC = ("x", "x_scale", "x_zero_point", "w", "w_scale", "w_zero_point", "y_scale", "y_zero_point", "B")


@pytest.mark.parametrize("profile", PROFILES)
def test_gemm_conv_every_profile(profile):
    rng = np.random.default_rng(abs(hash(profile + "g")) % 2**32)
    for i in range(6):
        M, K, N = int(rng.integers(1, 20)), int(rng.choice([1, 3, 16, 31, 64, 100])), \
            int(rng.integers(1, 40))
        ad = ("uint8", "int8")[i % 2]
        d = CS.matmul_case(rng, M, K, N, a_dtype=ad, per_column=i % 3 == 1, tie=i % 2 == 0,
                           b_symmetric=True)
        _same(_call(refquant.qlinear_matmul, d, QL, profile=profile),
              _call(R.qlinear_matmul, d, QL, profile=profile))
        _same(lambda: refquant.matmul_integer(d["a"], d["b"], d["a_zero_point"], d["b_zero_point"],
                                              profile=profile),
              lambda: R.matmul_integer(d["a"], d["b"], d["a_zero_point"], d["b_zero_point"],
                                       profile=profile))
        for bias_dtype in ("int32", "float32"):
            g = CS.to_qgemm(CS.matmul_case(rng, M, K, N, a_dtype=ad, per_column=i % 3 == 1,
                                           tie=i % 2 == 0, bias=True, bias_dtype=bias_dtype,
                                           b_symmetric=True))
            _same(_call(refquant.qgemm, g, QG, profile=profile),
                  _call(R.qgemm, g, QG, profile=profile))
        c, attrs = CS.conv_case(rng, 1, int(rng.integers(1, 9)), int(rng.integers(3, 12)),
                                int(rng.integers(3, 12)), int(rng.integers(1, 9)), 3, 3,
                                x_dtype=ad, per_channel=i % 2 == 0, tie=i % 2 == 1,
                                pads=(1, 1, 1, 1), bias_dtype="int32")
        _same(_call(refquant.qlinear_conv, c, QC, profile=profile, **attrs),
              _call(R.qlinear_conv, c, QC, profile=profile, **attrs))
        _same(lambda: refquant.conv_integer(c["x"], c["w"], c["x_zero_point"], c["w_zero_point"],
                                            profile=profile, **attrs),
              lambda: R.conv_integer(c["x"], c["w"], c["x_zero_point"], c["w_zero_point"],
                                     profile=profile, **attrs))
        # depthwise (fbgemm saturates int16 pairs there)
        C = 8 * int(rng.integers(1, 3))
        x = rng.integers(0, 256, (1, C, 9, 9)).astype(np.uint8)
        w = rng.integers(-128, 128, (C, 1, 3, 3)).astype(np.int8)
        dw = dict(group=C, pads=[1, 1, 1, 1])
        _same(lambda: refquant.conv_integer(x, w, np.uint8(0), np.int8(0), profile=profile, **dw),
              lambda: R.conv_integer(x, w, np.uint8(0), np.int8(0), profile=profile, **dw))


@pytest.mark.parametrize("profile", PROFILES)
def test_gemm_column_blocks_every_profile(profile):
    """Shapes that reach the AMX drivers' column blocks (the 64-column plain-B driver, B packed
    whole or just in time, K slabs, rows split between threads) with a multiplier per column:
    each block's epilogue must index the per-column multipliers -- float or fixed point
    (tflite-optimized's were read from column 0 of every block until session 9)."""
    rng = np.random.default_rng(abs(hash(profile + "cb")) % 2**32)
    try:
        for M, K, N in [(64, 256, 1000), (300, 64, 3000), (40, 4096, 1024), (200, 512, 512),
                        (9, 100, 200)]:
            a = rng.integers(0, 256, (M, K)).astype(np.uint8)
            b = rng.integers(-127, 128, (K, N)).astype(np.int8)
            bs = (rng.random(N) * 0.01 + 0.001).astype(np.float32)
            args = (a, np.float32(0.05), np.uint8(7), b, bs, np.zeros(N, np.int8), np.float32(0.3),
                    np.uint8(5))
            want = lambda: R.qlinear_matmul(*args, profile=profile)   # noqa: E731
            for nt in (1, 2):
                refquant.set_num_threads(nt)
                _same(lambda: refquant.qlinear_matmul(*args, profile=profile), want)
                _same(lambda: refquant.qlinear_matmul(*args[:3], refquant.pack_weights(b), *args[4:],
                                                      profile=profile), want)
    finally:
        refquant.set_num_threads(None)


@pytest.mark.parametrize("profile", PROFILES)
def test_weight_zero_point_limits_every_profile(profile):
    """Profiles whose engine refuses a non-zero weight zero point (Profile.extra["weights"]:
    pytorch-onednn, tflite-*) raise the reference's ProfileError through refquant.<op> too --
    the kernels would compute a result -- and every profile gives the reference's bits or
    error for zero and non-zero weight zero points, per tensor and per channel."""
    rng = np.random.default_rng(abs(hash(profile + "wz")) % 2**32)
    a = rng.integers(0, 256, (40, 64)).astype(np.uint8)
    b = rng.integers(-127, 128, (64, 48)).astype(np.int8)
    x = rng.integers(0, 256, (1, 16, 9, 9)).astype(np.uint8)
    w = rng.integers(-127, 128, (32, 16, 3, 3)).astype(np.int8)
    for zb, zw in ((np.int8(0), np.int8(0)), (np.int8(3), np.int8(-2)),
                   (rng.integers(-5, 5, 48).astype(np.int8), rng.integers(-5, 5, 32).astype(np.int8))):
        bs = np.full(np.shape(zb) or (), 0.01, np.float32)
        ws = np.full(np.shape(zw) or (), 0.01, np.float32)
        qm = (a, np.float32(0.02), np.uint8(3), b, bs, zb, np.float32(0.3), np.uint8(5))
        _same(lambda: refquant.qlinear_matmul(*qm, profile=profile), lambda: R.qlinear_matmul(*qm, profile=profile))
        bw = refquant.pack_weights(b)
        _same(lambda: refquant.qlinear_matmul(*qm[:3], bw, *qm[4:], profile=profile),
              lambda: R.qlinear_matmul(*qm, profile=profile))
        qg = (a, np.float32(0.02), np.uint8(3), b, bs, zb, rng.integers(-900, 900, 48).astype(np.int32),
              np.float32(0.3), np.uint8(5))
        _same(lambda: refquant.qgemm(*qg, profile=profile), lambda: R.qgemm(*qg, profile=profile))
        qc = (x, np.float32(0.02), np.uint8(3), w, ws, zw, np.float32(0.3), np.uint8(5))
        _same(lambda: refquant.qlinear_conv(*qc, pads=[1, 1, 1, 1], profile=profile),
              lambda: R.qlinear_conv(*qc, pads=[1, 1, 1, 1], profile=profile))


# x_s * w_s / y_s is exactly 2^-9 in float32-product-then-double (TFLite's
# GetQuantizedConvolutionMultipler) and just below it as a double product: profiles that select
# one or the other per call (overrides "QLinearMatMul+per_tensor", "QLinearConv+uint8", ...)
_TIE_SCALES = (np.float32(0.041279905), np.float32(0.0321819), np.float32(0.68017447))


@pytest.mark.parametrize("profile", PROFILES)
def test_call_selected_overrides_and_huge_multipliers_every_profile(profile):
    """The fast glue resolves a profile for each call exactly as the reference does -- the
    overrides selected by the weight-scale granularity and the activation type as well as by
    the op -- and takes a multiplier that can leave int32 only under rq_float_to_int="saturate"
    (the kernels clamp; fbgemm / QNNPACK / TFLite / XNNPACK convert to INT32_MIN first) and a
    fixed-point one only below 2^31 (TFLite's reference shifts by the count mod 32).  Both once
    sent calls to the kernels with other bits than the reference (session 10)."""
    rng = np.random.default_rng(abs(hash(profile + "ov")) % 2**32)
    sa, sb, sy = _TIE_SCALES
    for ad in (np.uint8, np.int8):
        lo, hi = (0, 256) if ad == np.uint8 else (-128, 128)
        a = rng.integers(lo, hi, (48, 40)).astype(ad)
        b = rng.integers(-127, 128, (40, 72)).astype(np.int8)
        x = rng.integers(lo, hi, (1, 6, 7, 7)).astype(ad)
        w = rng.integers(-127, 128, (24, 6, 3, 3)).astype(np.int8)
        for y_s in (sy, np.float32(3e-7), np.float32(1e-12), np.float32(1e-17)):
            for per_col in (False, True):
                bs = np.full(72, sb, np.float32) if per_col else sb
                zb = np.zeros(72, np.int8) if per_col else np.int8(0)
                ws = np.full(24, sb, np.float32) if per_col else sb
                zw = np.zeros(24, np.int8) if per_col else np.int8(0)
                for zy in (ad(0), ad(lo + 3), ad(hi - 7)):
                    qm = (a, sa, ad(lo + 1), b, bs, zb, y_s, zy)
                    _same(lambda: refquant.qlinear_matmul(*qm, profile=profile),
                          lambda: R.qlinear_matmul(*qm, profile=profile))
                    c = rng.integers(-2**31, 2**31, 72, dtype=np.int64).astype(np.int32)
                    c[:4] = (-2**31, -2**31 + 1, 2**31 - 1, 0)
                    qg = (a, sa, ad(lo + 1), b, bs, zb, c, y_s, zy)
                    _same(lambda: refquant.qgemm(*qg, profile=profile),
                          lambda: R.qgemm(*qg, profile=profile))
                    for bias in (None, c[:24].copy(), (rng.standard_normal(24) * 1e3).astype(np.float32)):
                        qc = (x, sa, ad(lo + 1), w, ws, zw, y_s, zy, bias)
                        _same(lambda: refquant.qlinear_conv(*qc, pads=[1, 1, 1, 1], profile=profile),
                              lambda: R.qlinear_conv(*qc, pads=[1, 1, 1, 1], profile=profile))


@pytest.mark.parametrize("profile", ["pytorch-fbgemm", "pytorch-qnnpack", "tflite-xnnpack"])
def test_int32_min_profiles_keep_the_kernels_for_usual_scales(profile):
    """The multiplier bound of the rq_float_to_int check sends only multipliers that could
    leave int32 to the reference: usual scales still run a kernel under these profiles."""
    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, (32, 64)).astype(np.uint8)
    b = rng.integers(-127, 128, (64, 48)).astype(np.int8)
    qm = (a, np.float32(0.02), np.uint8(3), b, np.float32(0.01), np.int8(0), np.float32(0.3), np.uint8(5))
    _same(lambda: refquant.qlinear_matmul(*qm, profile=profile), lambda: R.qlinear_matmul(*qm, profile=profile))
    assert refquant.last_path()["path"] != "reference"
    x = rng.integers(0, 256, (1, 8, 9, 9)).astype(np.uint8)
    w = rng.integers(-127, 128, (16, 8, 3, 3)).astype(np.int8)
    qc = (x, np.float32(0.02), np.uint8(3), w, np.float32(0.01), np.int8(0), np.float32(0.3), np.uint8(5))
    _same(lambda: refquant.qlinear_conv(*qc, pads=[1, 1, 1, 1], profile=profile),
          lambda: R.qlinear_conv(*qc, pads=[1, 1, 1, 1], profile=profile))
    assert refquant.last_path()["path"] != "reference"


@pytest.mark.parametrize("profile", PROFILES)
def test_empty_axis_and_profile_types_qdq_every_profile(profile):
    """Q/DQ over an empty axis with a per-axis scale of length 0 (the compiled entries were
    handed a 0-byte scale: "s: expected 4 bytes, got 0"), and an int32 DequantizeLinear under a
    profile that lists its types (TensorRT refuses int32 DQ; the kernel computed it)."""
    s, z8 = np.zeros(0, np.float32), np.zeros(0, np.int8)
    for shape in ((2, 0, 3), (0, 4), (3, 0)):
        x = np.zeros(shape, np.float32)
        _same(lambda: refquant.quantize_linear(x, s, z8, axis=1, profile=profile),
              lambda: R.quantize_linear(x, s, z8, axis=1, profile=profile))
        q = np.zeros(shape, np.int8)
        _same(lambda: refquant.dequantize_linear(q, s, z8, axis=1, profile=profile),
              lambda: R.dequantize_linear(q, s, z8, axis=1, profile=profile))
    for bsz in (1, 3):        # blocked over an empty axis: Si = 0 blocks
        x, sb, zb = np.zeros((3, 0), np.float32), np.ones((3, 0), np.float32), np.zeros((3, 0), np.int8)
        _same(lambda: refquant.quantize_linear(x, sb, zb, axis=1, block_size=bsz, profile=profile),
              lambda: R.quantize_linear(x, sb, zb, axis=1, block_size=bsz, profile=profile))
        q = np.zeros((3, 0), np.int8)
        _same(lambda: refquant.dequantize_linear(q, sb, zb, axis=1, block_size=bsz, profile=profile),
              lambda: R.dequantize_linear(q, sb, zb, axis=1, block_size=bsz, profile=profile))
    x32 = np.array([1, -5, 7, 2**31 - 1], np.int32)
    for sc in (np.float32(0.5), np.float32([0.25])):
        _same(lambda: refquant.dequantize_linear(x32, sc, profile=profile),
              lambda: R.dequantize_linear(x32, sc, profile=profile))


@pytest.mark.parametrize("profile", PROFILES)
def test_zero_and_subnormal_multipliers_every_profile(profile):
    """A requantization multiplier that is zero or subnormal in float32 (a huge y_scale):
    QNNPACK refuses it (Profile.extra["multiplier"] = "normal", a ProfileError from the
    reference) -- the kernels computed it -- and every other profile gives the reference's
    bits, through the lean and the generic glue, per tensor and per column."""
    rng = np.random.default_rng(abs(hash(profile + "sub")) % 2**32)
    a = rng.integers(0, 256, (8, 40)).astype(np.uint8)
    b = rng.integers(-127, 128, (40, 24)).astype(np.int8)
    x = rng.integers(0, 256, (1, 4, 6, 6)).astype(np.uint8)
    w = rng.integers(-127, 128, (8, 4, 3, 3)).astype(np.int8)
    for y_s in (np.float32(1e30), np.float32(3e38), np.float32(1e-3)):
        for bs, ws in ((np.float32(1e-5), np.float32(1e-5)),
                       (np.full(24, 1e-5, np.float32), np.full(8, 1e-5, np.float32))):
            zb = np.zeros(np.shape(bs), np.int8) if np.ndim(bs) else np.int8(0)
            zw = np.zeros(np.shape(ws), np.int8) if np.ndim(ws) else np.int8(0)
            qm = (a, np.float32(1e-5), np.uint8(3), b, bs, zb, y_s, np.uint8(5))
            _same(lambda: refquant.qlinear_matmul(*qm, profile=profile),
                  lambda: R.qlinear_matmul(*qm, profile=profile))
            qg = (a, np.float32(1e-5), np.uint8(3), b, bs, zb, None, y_s, np.uint8(5))
            _same(lambda: refquant.qgemm(*qg, profile=profile), lambda: R.qgemm(*qg, profile=profile))
            qc = (x, np.float32(1e-5), np.uint8(3), w, ws, zw, y_s, np.uint8(5))
            _same(lambda: refquant.qlinear_conv(*qc, pads=[1, 1, 1, 1], profile=profile),
                  lambda: R.qlinear_conv(*qc, pads=[1, 1, 1, 1], profile=profile))


@pytest.mark.parametrize("profile", PROFILES)
def test_dequantize_to_float16_every_profile(profile):
    """DequantizeLinear with output_dtype float16 (opset 23): the spec multiplies in float16,
    onnxruntime in float32 and then casts (dq_subtract="float32"; the glue runs the float32
    kernel and one cast) -- per tensor, per axis and blocked, float32 and float16 scales, with
    and without zero points, scales whose float16 rounding matters (1e-7)."""
    rng = np.random.default_rng(abs(hash(profile + "dq16")) % 2**32)
    for dt in (np.int8, np.uint8, np.int16, np.uint16):
        info = np.iinfo(dt)
        x = rng.integers(info.min, info.max + 1, (24, 70)).astype(dt)
        for s, kw in ((np.float32(0.0123457), {}), (np.float16(0.0123), {}), (np.float32(1e-7), {}),
                      ((rng.random(24) * 0.01).astype(np.float32), dict(axis=0)),
                      ((rng.random((24, 3)) * 0.01).astype(np.float32), dict(axis=1, block_size=32))):
            for z in (None, np.asarray(rng.integers(info.min, info.max + 1, np.shape(s))).astype(dt)):
                args = dict(kw, output_dtype=np.float16, opset=23, profile=profile)
                _same(lambda: refquant.dequantize_linear(x, s, z, **args),
                      lambda: R.dequantize_linear(x, s, z, **args))


@pytest.mark.parametrize("profile", ["tflite-optimized", "pytorch-onednn"])
def test_fixed_point_and_onednn_qgemm_run_the_kernels(profile):
    """tflite-optimized's QGemm (LiteRT FULLY_CONNECTED with a bias: acc + C, then TFLite's
    fixed-point multiplier) and pytorch-onednn's (the scales one by one after reciprocal round
    trips, alpha folded into a_scale, zero point before rounding) run the kernels' epilogues
    (session 10; the reference before) with the reference's bits: per tensor and per column,
    every C shape, alpha, transB, small and tiny y_scale, both activation types."""
    rng = np.random.default_rng(77)
    for it in range(24):
        M, K, N = (int(v) for v in rng.integers(1, 80, 3))
        if it % 6 == 0:
            M = 200
        ad = (np.uint8, np.int8)[it % 2]
        lo, hi = (0, 256) if ad == np.uint8 else (-128, 128)
        A = rng.integers(lo, hi, (M, K)).astype(ad)
        B = rng.integers(-127, 128, (K, N)).astype(np.int8)
        pc = it % 3 == 0
        bs = (rng.random(N) * 0.02 + 1e-3).astype(np.float32) if pc else np.float32(0.0123)
        zb = np.zeros(N, np.int8) if pc else np.int8(0)
        C = (None, rng.integers(-5000, 5000, N).astype(np.int32),
             rng.integers(-2**31, 2**31, (M, N), dtype=np.int64).astype(np.int32))[it % 3]
        tb = it % 4 == 1
        args = (A, np.float32(0.03), ad(lo + 5), B.T.copy() if tb else B, bs, zb, C,
                np.float32((0.3, 1e-3)[it % 2]), ad(hi - 9))
        kw = dict(alpha=(1.0, 0.5)[it % 2], transB=int(tb), profile=profile)
        _same(lambda: refquant.qgemm(*args, **kw), lambda: R.qgemm(*args, **kw))
        assert refquant.last_path()["path"] != "reference"


def test_vector_and_tail_quantize_runs_the_kernels():
    """tflite-optimized's QuantizeLinear (LiteRT: blocks of 8 flattened elements with
    RNE(x * fl32(1/s)), the last n mod 8 with std::round(double x / s)) runs the kernels for the
    blocks and the reference for the tail (session 10; all of it on the reference before):
    the reference's bits for sizes around multiples of 8, per tensor and per axis, ties, NaN,
    +-Inf and huge values, C and Fortran order."""
    rng = np.random.default_rng(88)
    for n in (1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 1003):
        for dt in (np.int8, np.uint8, np.int16):
            x = (np.round(rng.standard_normal(n) * 400) / 4 + 0.125).astype(np.float32)
            x[rng.integers(0, n, 2)] = rng.choice([np.nan, np.inf, -np.inf, 3e9])
            z = dt(np.iinfo(dt).min + 7)
            for shape, s, zz, axis in (((n,), np.float32(0.25), z, 0),
                                       ((1, n), np.float32(0.1), z, 1),
                                       ((n, 1), (rng.random(n) * 0.1 + 0.01).astype(np.float32),
                                        np.full(n, z, dt), 0)):
                xs = x.reshape(shape)
                for xv in (xs, np.asfortranarray(xs)):
                    _same(lambda: refquant.quantize_linear(xv, s, zz, axis=axis, profile="tflite-optimized"),
                          lambda: R.quantize_linear(xv, s, zz, axis=axis, profile="tflite-optimized"))
                    assert refquant.last_path()["path"] != "reference"
    # per axis with elements on both sides of the axis: the tail's elements take their channels'
    # parameters (the reference over those elements only, session 19)
    for shape, axis in (((3, 7, 5), 1), ((3, 7, 5), -1), ((2, 3, 11), 0), ((5, 3), 1), ((4, 9, 2, 3), 2)):
        d = shape[axis]
        x = (np.round(rng.standard_normal(shape) * 400) / 4 + 0.125).astype(np.float32)
        s = (rng.random(d) * 0.1 + 0.01).astype(np.float32)
        for zz in (None, rng.integers(-100, 100, d).astype(np.int8), rng.integers(0, 255, d).astype(np.uint8)):
            _same(lambda: refquant.quantize_linear(x, s, zz, axis=axis, profile="tflite-optimized"),
                  lambda: R.quantize_linear(x, s, zz, axis=axis, profile="tflite-optimized"))
            assert refquant.last_path()["path"] != "reference"


@pytest.mark.parametrize("rounding", ["double", "double_half_up", "single"])
def test_fixed_point_epilogue_vector_every_rounding(rounding, scratch_profiles):
    """The fixed-point epilogue (TFLite's QuantizeMultiplier: gemmlowp double rounding, ruy's
    x86 double half-up, single rounding) in AVX-512 lanes (session 11; the scalar definition
    before) gives the reference's bits: int32 biases and accumulators near the int32 limits,
    multipliers from 2^-40 to 2^9 (left and right shifts, per column mixed), every output zero
    point range, QLinearMatMul / QGemm / QLinearConv, both activation types, every ISA level."""
    import dataclasses
    from refquant import _cpu
    base = refquant.get_profile("tflite-optimized")
    prof = refquant.register_profile(dataclasses.replace(
        base, name=f"test-fx-{rounding}", rq_method="fixed_point", rq_fixed_rounding=rounding))
    rng = np.random.default_rng(11)

    def scale(n=None):
        e = (-10, -36, 4)[int(rng.integers(3))]
        if n is None:
            return np.float32(2.0 ** (e + rng.uniform(-4, 4)))
        return (2.0 ** (e + rng.uniform(-6, 6, n))).astype(np.float32)

    isas = _isa_levels.available()
    try:
        for it in range(90):
            _isa_levels.use(isas[(it + it // 7) % len(isas)])
            ad = (np.uint8, np.int8)[it % 2]
            lo, hi = (0, 256) if ad == np.uint8 else (-128, 128)
            pc = it % 3 != 0
            M, K, N = int(rng.integers(1, 40)), int(rng.integers(1, 200)), int(rng.integers(1, 70))
            A = rng.integers(lo, hi, (M, K)).astype(ad)
            B = rng.integers(-128, 128, (K, N)).astype(np.int8)
            if it % 7 == 0:
                A[:] = lo if it % 2 else hi - 1
                B[:] = 127 if it % 2 else -128
            bs = scale(N) if pc else scale()
            zb = np.zeros(N, np.int8) if pc else np.int8(0)
            az, yz = ad(rng.integers(lo, hi)), ad(rng.integers(lo, hi))
            args = (A, scale(), az, B, bs, zb)
            # the multiplier a_s * b_s / y_s: usually 2^-14 .. 2^-6 (results spread over the
            # output range), every fourth call 2^-40 .. 2^8
            u = rng.uniform(-8, 40) if it % 4 == 3 else rng.uniform(6, 14)
            if it % 7 == 0:      # extreme accumulators times a multiplier near 2^8: beyond int32
                u = rng.uniform(-8, -4)
            ys = np.float32(float(args[1]) * float(np.max(bs)) * 2.0 ** u)
            _same(lambda: refquant.qlinear_matmul(*args, ys, yz, profile=prof.name),
                  lambda: R.qlinear_matmul(*args, ys, yz, profile=prof.name))
            C = (rng.integers(-2**31, 2**31, N, dtype=np.int64) if it % 5 == 0 or it % 7 == 0
                 else rng.integers(-60000, 60000, N)).astype(np.int32)
            _same(lambda: refquant.qgemm(*args, C, ys, yz, profile=prof.name),
                  lambda: R.qgemm(*args, C, ys, yz, profile=prof.name))
            acc = R.matmul_integer(A, B, az, zb)
            mr = (np.float64(args[1]) * bs.astype(np.float64) / np.float64(ys))
            _same(lambda: refquant.requantize(acc, mr, yz, output_dtype=ad, bias=C, profile=prof.name),
                  lambda: R.requantize(acc, mr, yz, output_dtype=ad, bias=C, profile=prof.name))
            x = rng.integers(lo, hi, (1, K % 16 + 1, 5, 6)).astype(ad)
            w = rng.integers(-128, 128, (N % 20 + 1, x.shape[1], 3, 3)).astype(np.int8)
            co = w.shape[0]
            xs_, ws_ = scale(), scale(co) if pc else scale()
            cargs = (x, xs_, az, w, ws_, np.int8(0),
                     np.float32(float(xs_) * float(np.max(ws_)) * 2.0 ** (u - 2)), yz,
                     (rng.integers(-2**31, 2**31, co, dtype=np.int64) if it % 5 == 0 or it % 7 == 0
                      else rng.integers(-60000, 60000, co)).astype(np.int32))
            _same(lambda: refquant.qlinear_conv(*cargs, pads=[1, 1, 1, 1], profile=prof.name),
                  lambda: R.qlinear_conv(*cargs, pads=[1, 1, 1, 1], profile=prof.name))
    finally:
        _isa_levels.use(None)


@pytest.mark.parametrize("profile", sorted(refquant.profiles()))
def test_overflowing_multiplier_every_profile(profile):
    """Scales whose ratio a_s * b_s / y_s overflows float32: the reference refuses the multiplier
    (ValueError) under the float rules, and the fast path must too -- oneDNN's constants
    (fl32(1/fl32(1/s)) per scale) stay finite, so its epilogue returned a result (session 11),
    for QLinearMatMul and QGemm, per tensor and per column; each multiplier rule's fast
    formation gives the reference's bits for ordinary scales."""
    rng = np.random.default_rng(5)
    A = rng.integers(0, 256, (5, 40)).astype(np.uint8)
    B = rng.integers(-128, 128, (40, 7)).astype(np.int8)
    for a_s, b_s, y_s in ((np.float32(3e38), np.float32(2.0), np.float32(1e-3)),
                          (np.float32(1e30), np.full(7, 1e20, np.float32), np.float32(1e-10)),
                          (0.02, np.float32(0.004), 0.9), (np.float32(1e-30), np.float32(1e-9), 3e38),
                          (np.float32(0.5), np.linspace(0.001, 0.01, 7).astype(np.float32), np.float32(0.07))):
        zb = np.zeros(np.size(b_s), np.int8) if np.size(b_s) > 1 else np.int8(0)
        args = (A, a_s, np.uint8(3), B, b_s, zb)
        _same(lambda: refquant.qlinear_matmul(*args, y_s, np.uint8(9), profile=profile),
              lambda: R.qlinear_matmul(*args, y_s, np.uint8(9), profile=profile))
        C = rng.integers(-1000, 1000, 7).astype(np.int32)
        for alpha in (1.0, 0.75):
            _same(lambda: refquant.qgemm(*args, C, y_s, np.uint8(9), alpha=alpha, profile=profile),
                  lambda: R.qgemm(*args, C, y_s, np.uint8(9), alpha=alpha, profile=profile))


@pytest.mark.parametrize("rule", ["fp32", "fp32_reciprocal", "fp64", "fp64_f32product", "onednn"])
def test_fast_multiplier_equals_form_multiplier(rule):
    """The glue's multiplier (_fast_multiplier, memoised for scalars) has form_multiplier's bits
    and dtype for every rq_multiplier rule: scalar and per-column scales, Python floats, alpha,
    no y_scale, scales near float32's limits."""
    import dataclasses
    from refquant import _gemm_fast as F
    from refquant.reference.requant import form_multiplier
    p = dataclasses.replace(refquant.get_profile("onnx"), name=f"test-mult-{rule}", rq_multiplier=rule)
    rng = np.random.default_rng(21)
    for it in range(400):
        def one():
            v = float(2.0 ** rng.uniform(-60, 60)) if it % 3 else float(rng.uniform(1e-3, 1))
            return v if it % 5 == 0 else np.float32(v)
        a, y = one(), (None if it % 7 == 0 else one())
        b = (2.0 ** rng.uniform(-20, 20, 6)).astype(np.float32) if it % 2 else one()
        alpha = None if it % 4 else float(rng.choice([0.5, 1.7, -2.0, 3e-5]))
        with np.errstate(all="ignore"):
            want = form_multiplier(a, b, y, profile=p, alpha=alpha)
            for _ in range(2):       # computed, then from the memo
                got = np.asarray(F._fast_multiplier(a, b, y, p, alpha=alpha))
                assert got.dtype == want.dtype
                np.testing.assert_array_equal(got.reshape(-1).view(np.uint8),
                                              np.asarray(want).reshape(-1).view(np.uint8))


@pytest.mark.parametrize("profile", ["onnx", "pytorch-onednn", "pytorch-fbgemm", "tflite-optimized",
                                     "tflite-reference", "onnxruntime"])
def test_per_channel_memos_follow_the_values(profile):
    """The glue memoises what it derives from per-channel weight scales (the multiplier,
    oneDNN's constants, TFLite's fixed-point multipliers), keyed by the vector's bytes: a scale
    vector changed in place, one element at a time, or one differing only in its last element,
    gets its own entry -- every call has the reference's bits.  The memoised arrays are
    read-only."""
    from refquant import _gemm_fast as F
    rng = np.random.default_rng(33)
    X = rng.integers(0, 256, (1, 24, 5, 5), dtype=np.uint8)
    W = rng.integers(-128, 128, (24, 24, 3, 3), dtype=np.int8)
    A = rng.integers(0, 256, (9, 40), dtype=np.uint8)
    B = rng.integers(-128, 128, (40, 24), dtype=np.int8)
    ws = rng.uniform(1e-3, 4e-3, 24).astype(np.float32)
    for step in range(6):
        if step:
            ws[(5 * step) % 24] *= np.float32(1.5 if step % 2 else 0.6)   # in place: same object
        if step == 5:
            ws = ws.copy()
            ws[-1] = np.nextafter(ws[-1], np.float32(1))                   # the last element only
        for _ in range(2):                                                 # computed, then memoised
            _same(lambda: refquant.qlinear_conv(X, np.float32(0.02), np.uint8(120), W, ws, np.int8(0),
                                                np.float32(0.05), np.uint8(128), pads=[1] * 4, profile=profile),
                  lambda: R.qlinear_conv(X, np.float32(0.02), np.uint8(120), W, ws, np.int8(0),
                                         np.float32(0.05), np.uint8(128), pads=[1] * 4, profile=profile))
            _same(lambda: refquant.qlinear_matmul(A, np.float32(0.02), np.uint8(120), B, ws, np.int8(0),
                                                  np.float32(0.05), np.uint8(128), profile=profile),
                  lambda: R.qlinear_matmul(A, np.float32(0.02), np.uint8(120), B, ws, np.int8(0),
                                           np.float32(0.05), np.uint8(128), profile=profile))
    for cache in (F._MULT_VCACHE, F._OD_VCACHE, F._FX_VCACHE):
        for v in cache.values():
            for a in (v if isinstance(v, tuple) else (v,)):
                if isinstance(a, np.ndarray) and a.ndim:
                    assert not a.flags.writeable


@pytest.mark.parametrize("profile", sorted(refquant.profiles()))
def test_one_element_axis_scale_every_profile(profile):
    """A 1-element 1-D scale is "per axis" to the reference (Profile.for_op(per_axis=True): the
    pytorch profiles' per-channel formula, NaN -> 0 without the fma); the compiled entry that
    ``profile=`` calls now take (session 11) read it as per tensor and gave NaN -> qmax."""
    rng = np.random.default_rng(9)
    x = (rng.standard_normal((7, 3, 1)) * 300).astype(np.float32)
    x[0, 0, 0], x[1, 1, 0], x[2, 2, 0] = np.nan, np.inf, 2.5
    for s in (np.array([3e38], np.float32), np.array([0.25], np.float32), np.float32(0.25)):
        for z in (None, np.array([3], np.uint8), np.uint8(3), np.array([-5], np.int8)):
            if z is not None and np.ndim(z) != np.ndim(s):
                continue
            for kw in ({"axis": 2}, {}):
                _same(lambda: refquant.quantize_linear(x, s, z, profile=profile, **kw),
                      lambda: R.quantize_linear(x, s, z, profile=profile, **kw))
                q = R.quantize_linear(x, np.float32(0.5), None if z is None else np.asarray(z).reshape(())[()],
                                      profile="onnx")
                _same(lambda: refquant.dequantize_linear(q, s, z if z is None or z.dtype == q.dtype else None,
                                                         profile=profile, **kw),
                      lambda: R.dequantize_linear(q, s, z if z is None or z.dtype == q.dtype else None,
                                                  profile=profile, **kw))


def test_profile_keyword_takes_the_compiled_entries_and_follows_re_registration(scratch_profiles):
    """Calls naming a profile (profile="onnx", a Profile object, any registered name) take the
    same compiled entries as calls without one (session 11: 33 -> 2.5 us for a small per-column
    QLinearMatMul, 10 -> 1.8 us for QuantizeLinear of 1,000 floats); a profile registered again
    under the same name is resolved again (the entries are memoised per profile object and
    registry generation)."""
    import dataclasses
    rng = np.random.default_rng(4)
    A = rng.integers(0, 256, (4, 64)).astype(np.uint8)
    B = rng.integers(-128, 128, (64, 64)).astype(np.int8)
    bs = np.linspace(0.001, 0.01, 64).astype(np.float32)
    args = (A, np.float32(0.02), np.uint8(117), B, bs, np.zeros(64, np.int8), np.float32(0.9), np.uint8(121))
    want = R.qlinear_matmul(*args)
    for prof in ("onnx", refquant.get_profile("onnx"), "onnxruntime"):
        np.testing.assert_array_equal(refquant.qlinear_matmul(*args, profile=prof), want)
        assert refquant.last_path()["path"] != "reference"
    x = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 7.25], np.float32)
    base = refquant.get_profile("onnx")
    for rounding, expect in (("half_even", [0, 2, 2, 0, -2, 7]), ("half_away", [1, 2, 3, -1, -3, 7])):
        refquant.register_profile(dataclasses.replace(base, name="test-lean-rereg", q_rounding=rounding))
        y = refquant.quantize_linear(x, np.float32(1.0), np.int8(0), profile="test-lean-rereg")
        assert y.tolist() == expect, (rounding, y)
        assert refquant.last_path()["path"] != "reference"


@pytest.mark.parametrize("profile", ["onnx", "pytorch-fbgemm", "tflite-optimized", "pytorch-onednn"])
def test_conv_attribute_types_fast_and_reference_agree(profile):
    """The conv geometry is memoised by shapes and attributes (session 11); its key is typed, so
    that pads of floats or strides as an array never meet the int attributes' entry.  group=1.0 /
    True: the reference now raises a clear TypeError (it used to pass validation and fail inside
    numpy, while the kernels computed a result)."""
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (1, 4, 6, 7)).astype(np.uint8)
    w = rng.integers(-128, 128, (6, 4, 3, 3)).astype(np.int8)
    args = (x, np.float32(0.02), np.uint8(3), w, np.float32(0.01), np.int8(0), np.float32(0.5), np.uint8(7))
    variants = [dict(pads=[1, 1, 1, 1]), dict(pads=[1.0, 1, 1, 1]), dict(pads=np.array([1, 1, 1, 1])),
                dict(group=1.0, pads=[1, 1, 1, 1]), dict(group=True, pads=[1, 1, 1, 1]),
                dict(group=np.int64(1)), dict(strides=[2, 2]), dict(strides=[2.0, 2]),
                dict(dilations=[True, 1]), dict(kernel_shape=[3.0, 3]), dict(auto_pad="SAME_LOWER", strides=[2, 2]),
                dict(auto_pad="BOGUS"), dict(pads=[1, 1, 1]), dict(pads=[-1, 0, 0, 0])]
    for _ in range(2):       # computed, then from the memo
        for kw in variants:
            _same(lambda: refquant.qlinear_conv(*args, profile=profile, **kw),
                  lambda: R.qlinear_conv(*args, profile=profile, **kw))
            _same(lambda: refquant.conv_integer(x, w, np.uint8(3), profile=profile, **kw),
                  lambda: R.conv_integer(x, w, np.uint8(3), profile=profile, **kw))
    with pytest.raises(TypeError, match="group: expected an int"):
        R.conv_integer(x, w, group=1.0)


def test_onednn_subnormal_weight_scale_runs_the_reference():
    """oneDNN's constants round-trip each scale, s' = fl32(1/fl32(1/s)): a subnormal weight scale
    gives w' = 0, and with a huge activation scale fl32(acc * a') is inf, so the epilogue meets
    inf * 0 = NaN, which the reference converts its own way (0 here) and the kernels' clamp gave
    qmin (-128 on 26,288 of 27,360 outputs of a depthwise conv, found by the fuzzer in session
    11).  Such calls run the reference."""
    rng = np.random.default_rng(13)
    x = rng.integers(-128, 128, (1, 6, 5, 7)).astype(np.int8)
    w = rng.integers(-128, 128, (6, 1, 3, 3)).astype(np.int8)
    args = (x, np.float32(1e36), np.int8(-36), w, np.float32(1.4e-45), np.int8(0), np.float32(2.1e9), np.int8(50))
    for kw in (dict(group=6, pads=[1, 1, 1, 1]), dict(group=1, pads=[1, 1, 1, 1])):
        a = args if kw["group"] == 6 else (args[:3] + (rng.integers(-128, 128, (6, 6, 3, 3)).astype(np.int8),) + args[4:])
        _same(lambda: refquant.qlinear_conv(*a, profile="pytorch-onednn", **kw),
              lambda: R.qlinear_conv(*a, profile="pytorch-onednn", **kw))
    A = rng.integers(-128, 128, (9, 40)).astype(np.int8)
    B = rng.integers(-128, 128, (40, 20)).astype(np.int8)
    for bs in (np.float32(1.4e-45), np.full(20, 1.4e-45, np.float32)):
        zb = np.zeros(20, np.int8) if np.ndim(bs) else np.int8(0)
        qa = (A, np.float32(1e36), np.int8(-36), B, bs, zb, np.float32(2.1e9), np.int8(50))
        _same(lambda: refquant.qlinear_matmul(*qa, profile="pytorch-onednn"),
              lambda: R.qlinear_matmul(*qa, profile="pytorch-onednn"))
        _same(lambda: refquant.qgemm(*qa[:6], None, *qa[6:], profile="pytorch-onednn"),
              lambda: R.qgemm(*qa[:6], None, *qa[6:], profile="pytorch-onednn"))


@pytest.mark.parametrize("profile", ["onnx-reference", "tflite-reference"])
def test_qlinear_matmul_reference_epilogue_on_kernel_accumulators(profile):
    """QLinearMatMul under a profile whose epilogue the kernels lack (onnx-reference: float64
    products, zero point before rounding; tflite-reference: a double multiplier, half away) runs
    the reference's function with its int32 accumulator from the kernels (path
    "<kernel>+reference_epilogue"): the reference's bits for per-tensor and per-column weights,
    per-row activation zero points, packed weights, both operand types, 1 and 2 threads; a
    batched A against a 2-D B (per-tensor zero point) in one kernel call, a batched B one call a
    matrix; invalid calls raise the reference's errors."""
    rng = np.random.default_rng(61)
    for M, K, N in ((1, 64, 300), (7, 33, 40), (128, 768, 96)):
        for ad in (np.uint8, np.int8):
            a = rng.integers(np.iinfo(ad).min, np.iinfo(ad).max + 1, (M, K)).astype(ad)
            b = rng.integers(-127, 128, (K, N)).astype(np.int8)
            za = ad(3) if profile == "tflite-reference" or M == 1 else \
                rng.integers(0, 9, M).astype(ad)
            zs = np.float32(0.02) if np.ndim(za) == 0 else np.full(M, 0.02, np.float32)
            for bs in (np.float32(0.004), (rng.random(N) * 0.01 + 0.001).astype(np.float32)):
                zb = np.int8(0) if np.ndim(bs) == 0 else np.zeros(N, np.int8)
                args = (a, zs, za, b, bs, zb, np.float32(0.3), ad(5))
                try:
                    want = R.qlinear_matmul(*args, profile=profile)
                except Exception as e:   # noqa: BLE001 - e.g. tflite's per-row activation scales
                    with pytest.raises(type(e)):
                        refquant.qlinear_matmul(*args, profile=profile)
                    continue
                for t in (1, 2):
                    refquant.set_num_threads(t)
                    try:
                        for bb in (b, refquant.pack_weights(b)):
                            got = refquant.qlinear_matmul(*args[:3], bb, *args[4:], profile=profile)
                            assert refquant.last_path()["path"].endswith("+reference_epilogue")
                            np.testing.assert_array_equal(got, want)
                            assert got.dtype == want.dtype
                    finally:
                        refquant.set_num_threads(None)
    a3 = rng.integers(0, 256, (2, 5, 16)).astype(np.uint8)
    b = rng.integers(-127, 128, (16, 8)).astype(np.int8)
    for a_ in (a3, a3[None]):
        args = (a_, np.float32(0.02), np.uint8(3), b, np.float32(0.01), np.int8(0), np.float32(0.3),
                np.uint8(5))
        np.testing.assert_array_equal(refquant.qlinear_matmul(*args, profile=profile),
                                      R.qlinear_matmul(*args, profile=profile))
        assert refquant.last_path()["path"].endswith("+reference_epilogue")
    # a batched B (and a batched A with per-row zero points): one kernel call per matrix of the
    # broadcast batch, each with its slice of the zero points (per tensor, per row / column,
    # per batch element [..., M, 1] / [..., 1, N]); int8 and uint8 on both sides
    b3 = rng.integers(-127, 128, (2, 16, 8)).astype(np.int8)
    zr = rng.integers(0, 9, (2, 5, 1)).astype(np.uint8)
    bs3 = (rng.random((2, 1, 8)) * 0.01 + 0.001).astype(np.float32)
    cases = [(a3, np.float32(0.02), np.uint8(3), np.stack([b, b]), np.float32(0.01), np.int8(0)),
             (a3, np.float32(0.02), np.uint8(3), b3, bs3, rng.integers(-4, 5, (2, 1, 8)).astype(np.int8)),
             (a3, np.float32(0.02), np.uint8(3), b3, bs3, np.zeros((2, 1, 8), np.int8)),
             (a3[0], np.float32(0.02), np.uint8(3), b3, np.float32(0.01), np.int8(0)),
             (a3[:, None], np.float32(0.02), np.uint8(3), b3, np.float32(0.01), np.int8(0)),
             (a3, np.full((2, 5, 1), 0.02, np.float32), zr, b3, np.float32(0.01), np.int8(0)),
             (a3, np.full((2, 5, 1), 0.02, np.float32), zr, b, np.float32(0.01), np.int8(0)),
             ((a3 ^ 0x80).view(np.int8), np.float32(0.02), np.int8(-3), b3.view(np.uint8),
              np.float32(0.01), np.uint8(128))]
    for c in cases:
        args = c + (np.float32(0.3), c[0].dtype.type(5))
        try:
            want = R.qlinear_matmul(*args, profile=profile)
        except Exception as e:   # noqa: BLE001 - tflite's per-row activation scales
            with pytest.raises(type(e)):
                refquant.qlinear_matmul(*args, profile=profile)
            continue
        got = refquant.qlinear_matmul(*args, profile=profile)
        assert refquant.last_path()["path"].endswith("+reference_epilogue")
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype and got.shape == want.shape
    with pytest.raises(TypeError):
        refquant.qlinear_matmul(a3[0], np.float32(0.02), np.int8(3), b, np.float32(0.01), np.int8(0),
                                np.float32(0.3), np.uint8(5), profile=profile)


def test_qgemm_reference_epilogue_on_kernel_accumulators():
    """QGemm under tflite-reference (FULLY_CONNECTED in double, half away: no kernel's epilogue)
    takes the kernels' int32 accumulator under the reference's own function: the reference's
    bits with and without C, transA / transB, per-column weights, packed weights."""
    rng = np.random.default_rng(67)
    prof = "tflite-reference"
    for M, K, N in ((1, 64, 300), (9, 70, 33), (64, 256, 128)):
        a = rng.integers(0, 256, (M, K)).astype(np.uint8)
        b = rng.integers(-127, 128, (K, N)).astype(np.int8)
        C = rng.integers(-900, 900, N).astype(np.int32)
        for bs in (np.float32(0.004), (rng.random(N) * 0.01 + 0.001).astype(np.float32)):
            zb = np.int8(0) if np.ndim(bs) == 0 else np.zeros(N, np.int8)
            for c in (None, C):
                args = (a, np.float32(0.02), np.uint8(3), b, bs, zb, c, np.float32(0.3), np.uint8(5))
                want = R.qgemm(*args, profile=prof)
                for kw, aa, bb in ((dict(), a, b), (dict(transA=1, transB=1), a.T.copy(), b.T.copy()),
                                   (dict(), a, refquant.pack_weights(b))):
                    got = refquant.qgemm(aa, *args[1:3], bb, *args[4:], profile=prof, **kw)
                    assert refquant.last_path()["path"].endswith("+reference_epilogue"), kw
                    np.testing.assert_array_equal(got, want)


def _conv_inputs(rng, xs, wsh, x_types, w_scale, span, lo):
    """(xd, x, w, w_scale, w_zero_point) for a conv case: x of each type in x_types over its
    whole range, int8 weights in [-127, 127], then the per-tensor weight scale w_scale and a
    per-channel one (uniform in [lo, lo + span)), with zero zero points."""
    for xd in x_types:
        x = rng.integers(np.iinfo(xd).min, np.iinfo(xd).max + 1, xs).astype(xd)
        w = rng.integers(-127, 128, wsh).astype(np.int8)
        M = wsh[0]
        for ws in (np.float32(w_scale), (rng.random(M) * span + lo).astype(np.float32)):
            yield xd, x, w, ws, (np.int8(0) if np.ndim(ws) == 0 else np.zeros(M, np.int8))


def test_qlinear_conv_reference_epilogue_on_kernel_accumulators():
    """QLinearConv under onnx-reference (float64 products, zero point before rounding: no
    kernel's epilogue) takes the int32 accumulator from the kernels' ConvInteger, after the
    reference's own checks: the reference's bits for strides, pads, dilations, groups and
    depthwise, 1-D and 2-D convs, per-channel weights, an int32 bias, int8 and uint8 x, packed
    weights; invalid calls raise the reference's errors."""
    rng = np.random.default_rng(71)
    prof = "onnx-reference"
    cases = [((1, 8, 9, 9), (16, 8, 3, 3), dict(pads=[1, 1, 1, 1])),
             ((2, 6, 11, 7), (6, 3, 3, 3), dict(group=2, strides=[2, 1], pads=[0, 1, 1, 0])),
             ((1, 8, 10, 10), (8, 1, 3, 3), dict(group=8, dilations=[2, 2], pads=[2, 2, 2, 2])),
             ((1, 4, 17), (5, 4, 3), dict(strides=[2], pads=[1, 1])),
             ((1, 64, 14, 14), (32, 64, 1, 1), dict())]
    for xs, wsh, attrs in cases:
        for xd, x, w, wsc, wz in _conv_inputs(rng, xs, wsh, (np.uint8, np.int8), 0.01, 0.02, 0.001):
            for bias in (None, rng.integers(-500, 500, wsh[0]).astype(np.int32)):
                args = (x, np.float32(0.02), xd(3), w, wsc, wz, np.float32(0.4), xd(7), bias)
                want = R.qlinear_conv(*args, profile=prof, **attrs)
                for ww in (w, refquant.pack_weights(w) if len(wsh) == 4 else w):
                    got = refquant.qlinear_conv(*args[:3], ww, *args[4:], profile=prof, **attrs)
                    assert refquant.last_path()["path"].endswith("+reference_epilogue"), (xs, attrs)
                    np.testing.assert_array_equal(got, want)
    x = rng.integers(0, 256, (1, 4, 5, 5)).astype(np.uint8)
    w = rng.integers(-127, 128, (3, 4, 3, 3)).astype(np.int8)
    for bad in (dict(pads=[1, 1]), dict(group=3)):
        with pytest.raises(ValueError):
            refquant.qlinear_conv(x, np.float32(0.02), np.uint8(3), w, np.float32(0.01), np.int8(0),
                                  np.float32(0.4), np.uint8(7), profile=prof, **bad)


def test_dynamic_quantize_onnx_reference_takes_the_kernels():
    """onnx-reference's DynamicQuantizeLinear (its all-zero range scale 1/255, its QuantizeLinear
    with the int32 wraparound): the range by the kernel, the reference's qparams, the fast
    QuantizeLinear under the profile (the wrap32 variant): the reference's bits for ordinary,
    all-zero, one-signed, tiny and huge-range inputs; NaN / Inf raise the reference's error."""
    rng = np.random.default_rng(73)
    prof = "onnx-reference"
    xs = [(rng.standard_normal(1001) * 3).astype(np.float32), np.zeros(37, np.float32),
          np.abs(rng.standard_normal((4, 9))).astype(np.float32), -np.ones(8, np.float32),
          np.array([1e-30, -2e-30, 0.0], np.float32), np.array([3e38, -3e38, 1.0], np.float32),
          np.linspace(-1, 1, 511, dtype=np.float32)]
    for x in xs:
        try:
            want = R.dynamic_quantize_linear(x, profile=prof)
        except Exception as e:   # noqa: BLE001 - a scale that is not finite: the same error
            with pytest.raises(type(e)):
                refquant.dynamic_quantize_linear(x, profile=prof)
            continue
        got = refquant.dynamic_quantize_linear(x, profile=prof)
        assert refquant.last_path()["path"].startswith("rq_dynamic_quantize_f32u8_wrap32__")
        for g, w in zip(got, want):
            assert np.asarray(g).dtype == np.asarray(w).dtype
            np.testing.assert_array_equal(np.asarray(g), np.asarray(w))
    for bad in (np.array([1.0, np.nan], np.float32), np.array([np.inf, 0.0], np.float32)):
        with pytest.raises(ValueError):
            refquant.dynamic_quantize_linear(bad, profile=prof)


def test_tensorrt_gemm_conv_on_kernels():
    """The symmetric-only tensorrt profile's QLinearMatMul / QGemm / QLinearConv run the kernels
    when every zero point is absent or zero (the only rule the reference adds; a non-zero one
    raises the reference's ProfileError), and QLinearConv's bias added after the multiplier
    (rq_bias="float_after_scaling": fl32(fl32(acc) * M) + fl32(fl32(B) * M) for an int32 B,
    + fl32(B / y_s) for a float one) through the oneDNN epilogue's second bias: the reference's
    bits for plain, grouped, depthwise and 1x1 convs, per-channel scales, extreme biases; a
    bias that is not finite, or a multiplier that can overflow, runs the reference (a NaN there
    takes the profile's rq_nan rule, 0 for tensorrt, which the kernels do not follow)."""
    rng = np.random.default_rng(73)
    prof = "tensorrt"
    for xs_, wsh, attrs in (((1, 8, 9, 9), (16, 8, 3, 3), dict(pads=[1, 1, 1, 1])),
                            ((2, 16, 10, 10), (16, 1, 3, 3), dict(group=16, pads=[1, 1, 1, 1], strides=[2, 2])),
                            ((1, 12, 7, 7), (24, 3, 3, 3), dict(group=4, pads=[0, 1, 1, 0])),
                            ((1, 32, 6, 6), (8, 32, 1, 1), dict())):
        Co = wsh[0]
        for xd, x, w, ws, wz in _conv_inputs(rng, xs_, wsh, (np.int8, np.uint8), 0.004, 0.01, 0.001):
            for B in (None, rng.integers(-30000, 30000, Co).astype(np.int32),
                      np.full(Co, 2 ** 31 - 1, np.int32), (rng.standard_normal(Co) * 3).astype(np.float32),
                      np.array([np.inf, -np.inf] + [1e30] * (Co - 2), np.float32)):
                for ys in (np.float32(0.3), np.float16(0.25), 1e-30):
                    args = (x, np.float32(0.02), xd(0), w, ws, wz, ys, xd(0), B)
                    want = R.qlinear_conv(*args, profile=prof, **attrs)
                    got = refquant.qlinear_conv(*args, profile=prof, **attrs)
                    if B is None or np.all(np.isfinite(B)):   # (an infinite bias: the reference)
                        assert refquant.last_path()["path"] != "reference", (xs_, B)
                    np.testing.assert_array_equal(got, want)
                    assert got.dtype == want.dtype
            bn = (rng.standard_normal(wsh[0]) * 3).astype(np.float32)
            bn[1] = np.nan
            args = (x, np.float32(0.02), xd(0), w, np.float32(0.004), np.int8(0), np.float32(0.3), xd(0), bn)
            np.testing.assert_array_equal(refquant.qlinear_conv(*args, profile=prof, **attrs),
                                          R.qlinear_conv(*args, profile=prof, **attrs))
            assert refquant.last_path()["path"] == "reference"
            # fl32(acc) * M overflowing to +inf against a -inf scaled bias (a tiny y_s): a NaN,
            # which rq_nan="zero" turns into 0 -- the reference runs it (the kernels gave qmin;
            # found by a differential fuzz)
            ov = (x, np.float32(1), xd(0), w, np.float32(1), np.int8(0), np.float32(1.1754944e-38), xd(0),
                  np.full(wsh[0], -1e6, np.float32))
            np.testing.assert_array_equal(refquant.qlinear_conv(*ov, profile=prof, **attrs),
                                          R.qlinear_conv(*ov, profile=prof, **attrs))
            with pytest.raises(refquant.ProfileError):      # the symmetric rule, the reference's error
                refquant.qlinear_conv(x, np.float32(0.02), xd(0), w, np.float32(0.004), np.int8(0),
                                      np.float32(0.3), xd(3), profile=prof, **attrs)
    for M, K, N in ((1, 64, 300), (7, 33, 40), (128, 256, 96)):
        a = rng.integers(-128, 128, (M, K)).astype(np.int8)
        b = rng.integers(-127, 128, (K, N)).astype(np.int8)
        for bs in (np.float32(0.004), (rng.random(N) * 0.01 + 0.001).astype(np.float32)):
            zb = np.int8(0) if np.ndim(bs) == 0 else np.zeros(N, np.int8)
            args = (a, np.float32(0.02), np.int8(0), b, bs, zb, np.float32(0.3), np.int8(0))
            np.testing.assert_array_equal(refquant.qlinear_matmul(*args, profile=prof),
                                          R.qlinear_matmul(*args, profile=prof))
            assert refquant.last_path()["path"] != "reference"
            C = rng.integers(-3000, 3000, N).astype(np.int32)
            gargs = args[:6] + (C,) + args[6:]
            np.testing.assert_array_equal(refquant.qgemm(*gargs, profile=prof), R.qgemm(*gargs, profile=prof))
            assert refquant.last_path()["path"] != "reference"
        with pytest.raises(refquant.ProfileError):
            refquant.qlinear_matmul(a, np.float32(0.02), np.int8(1), b, np.float32(0.004), np.int8(0),
                                    np.float32(0.3), np.int8(0), profile=prof)


@pytest.mark.parametrize("profile", PROFILES)
def test_requantize_every_profile(profile):
    """refquant.requantize (the GEMM epilogue kernels where they cover the call) gives the
    reference's bits or raises its error type, for every profile: multipliers from 0 and
    subnormal to beyond 2^30 (the int32_min profiles' bound), negative, NaN, inf, float64;
    per-tensor and per-channel multipliers and biases, int32 and float biases, zero points at
    the range's ends and outside it, 0-d to 3-D accumulators at the int32 limits."""
    rng = np.random.default_rng(abs(hash(profile)) % 2**32)
    mults = [np.float32(0.013), np.float32(0.0), np.float32(1e-40), np.float32(3e9), np.float32(-0.5),
             np.float32(np.nan), np.float32(np.inf), np.float64(0.25), np.float64(1e-300)]
    for it, m in enumerate(mults * 3):
        shape = [(), (9,), (4, 33), (2, 3, 17)][it % 4]
        acc = rng.integers(-2 ** 31, 2 ** 31, shape, dtype=np.int64).astype(np.int32)
        if acc.size > 2:
            acc.reshape(-1)[:2] = [2 ** 31 - 1, -2 ** 31]
        n = shape[-1] if shape else 1
        mm = m if it < len(mults) or not shape else np.abs(rng.standard_normal(n)).astype(type(m)) * m
        odt = (np.uint8, np.int8)[it % 2]
        zp = odt([0, 255, 128][it % 3]) if odt == np.uint8 else odt([-128, 127, 0][it % 3])
        bias = [None, np.int32(-2 ** 31), rng.integers(-2 ** 31, 2 ** 31, n, dtype=np.int64).astype(np.int32),
                np.float32(3.5)][it % 4]
        if not shape and bias is not None and np.ndim(bias):
            bias = None
        kw = dict(output_dtype=odt, bias=bias, profile=profile)
        _same(lambda: refquant.requantize(acc, mm, zp, **kw), lambda: R.requantize(acc, mm, zp, **kw))
    acc = np.arange(-100, 100, dtype=np.int32)
    _same(lambda: refquant.requantize(acc, np.float32(0.1), np.int16(300), output_dtype=np.uint8,
                                      profile=profile),
          lambda: R.requantize(acc, np.float32(0.1), np.int16(300), output_dtype=np.uint8, profile=profile))
    _same(lambda: refquant.requantize(acc, np.float32(0.1), np.uint8(3), output_dtype=np.uint8,
                                      scales=(np.float32(0.1), np.float32(0.2), np.float32(0.2)), profile=profile),
          lambda: R.requantize(acc, np.float32(0.1), np.uint8(3), output_dtype=np.uint8,
                               scales=(np.float32(0.1), np.float32(0.2), np.float32(0.2)), profile=profile))


@pytest.mark.parametrize("profile", PROFILES)
def test_conv3d_every_profile(profile):
    """3-D QLinearConv / ConvInteger (the 2-D kernels plane by plane, then the requantize
    kernels or the reference's epilogue): the reference's bits or its error, every profile, with
    int32 and float biases, per-channel scales, both activation types."""
    rng = np.random.default_rng(abs(hash(profile)) % 2**32)
    for it in range(4):
        xt = (np.uint8, np.int8)[it % 2]
        lo, hi = (0, 256) if xt == np.uint8 else (-128, 128)
        x = rng.integers(lo, hi, (1, 6, 4, 5, 6)).astype(xt)
        w = rng.integers(-128, 128, (4, 6 // (1 + it // 2), 3, 2, 3)).astype(np.int8)
        attrs = dict(pads=[1, 0, 1, 1, 1, 1], strides=[1, 2, 1], group=1 + it // 2)
        ws = (rng.random(4) * 0.01 + 1e-3).astype(np.float32) if it % 2 else np.float32(0.004)
        B = (rng.integers(-50000, 50000, 4).astype(np.int32) if it != 3
             else rng.standard_normal(4).astype(np.float32))
        args = (x, np.float32(0.03), xt(5), w, ws, np.int8(0), np.float32(0.07), xt(-3 if xt == np.int8 else 7), B)
        _same(lambda: refquant.qlinear_conv(*args, profile=profile, **attrs),
              lambda: R.qlinear_conv(*args, profile=profile, **attrs))
        _same(lambda: refquant.conv_integer(x, w, xt(5), np.int8(1), profile=profile, **attrs),
              lambda: R.conv_integer(x, w, xt(5), np.int8(1), profile=profile, **attrs))


def test_session20_review_regressions(scratch_profiles):
    """Findings of a review of the session-20 fast paths, each now the reference's behaviour:
    requantize with numpy type codes as output_dtype (the reference takes ONNX names only),
    float8 QuantizeLinear of a masked array, float8 Q/DQ per axis with an empty trailing axis,
    a 3-D QLinearConv whose int16 pair saturation comes from a per-call override, and a
    misaligned float8 DequantizeLinear ``out``."""
    import dataclasses
    import ml_dtypes
    acc = np.arange(-5, 5, dtype=np.int32)
    for code in ("i1", "u1", "b", "B", "byte"):
        _same(lambda: refquant.requantize(acc, np.float32(0.5), None, output_dtype=code),
              lambda: R.requantize(acc, np.float32(0.5), None, output_dtype=code))
    f8 = ml_dtypes.float8_e4m3fn
    xm = np.ma.masked_array(np.float32([1, 2, 3]), mask=[0, 1, 0])
    _same(lambda: refquant.quantize_linear(xm, np.float32(0.5), None, output_dtype=f8),
          lambda: R.quantize_linear(xm, np.float32(0.5), None, output_dtype=f8))
    for shape in ((2, 3, 0), (2, 3, 0, 4)):
        x0 = np.zeros(shape, np.float32)
        s = np.ones(3, np.float32)
        _same(lambda: refquant.quantize_linear(x0, s, None, axis=1, output_dtype=f8),
              lambda: R.quantize_linear(x0, s, None, axis=1, output_dtype=f8))
        _same(lambda: refquant.dequantize_linear(np.zeros(shape, f8), s, axis=1),
              lambda: R.dequantize_linear(np.zeros(shape, f8), s, axis=1))
    p = refquant.register_profile(dataclasses.replace(
        refquant.get_profile("onnx"), name="test-u8-pairsat",
        overrides=(("QLinearConv+uint8", {"int16_pair_saturation": True}),)))
    x = np.full((1, 1, 2, 1, 2), 255, np.uint8)
    w = np.empty((1, 1, 2, 1, 2), np.int8)
    w[:, :, 0], w[:, :, 1] = 127, -128
    args = (x, np.float32(1.0), np.uint8(0), w, np.float32(1.0), None, np.float32(1.0), np.int8(0), None)
    _same(lambda: refquant.qlinear_conv(*args, profile=p.name), lambda: R.qlinear_conv(*args, profile=p.name))
    q = np.arange(64, dtype=np.uint8).view(f8)
    buf = np.zeros(64 * 4 + 1, np.uint8)
    out = buf[1:].view(np.float32)
    assert not out.flags.aligned and out.flags.writeable
    y = refquant.dequantize_linear(q, np.float32(0.5), None, out=out)
    assert y is out and refquant.last_path()["path"] == "reference"
    assert np.array_equal(out.view(np.uint32), R.dequantize_linear(q, np.float32(0.5), None).view(np.uint32))
