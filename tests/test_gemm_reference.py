"""MatMulInteger / QLinearMatMul / QGemm reference: exactness, peers (onnxruntime, onnx.reference,
PyTorch fbgemm / qnnpack), known deviations by name, int16 pair saturation, accumulator_range,
bad input."""
import time
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

from refquant import get_profile
from refquant._packed import PackedWeights
from refquant.reference import matmul_integer, qlinear_matmul, qgemm, accumulator_range, requantize
from refquant.reference.gemm import AccumulatorWarning
from refquant.reference.requant import form_multiplier

U8, S8 = np.uint8, np.int8
COMBOS = [(U8, U8), (U8, S8), (S8, S8), (S8, U8)]


def rnd(rng, dt, shape):
    i = np.iinfo(dt)
    return rng.integers(i.min, i.max + 1, shape).astype(dt)


def exact_int64(A, B, azp=0, bzp=0):
    """Independent exact computation: int64 einsum, no float anywhere."""
    a = A.astype(np.int64) - np.asarray(azp, np.int64)
    b = B.astype(np.int64) - np.asarray(bzp, np.int64)
    return np.matmul(a, b)            # int64 matmul: exact (|acc| < 2^63)


def wrap(x):
    return ((np.asarray(x, np.int64) + 2 ** 31) % 2 ** 32 - 2 ** 31).astype(np.int32)


def ort():
    pytest.importorskip("onnxruntime", reason="onnxruntime is the peer engine")
    from _ort_models import run_ort
    return run_ort


def onnx_ref():
    pytest.importorskip("onnx.reference", reason="onnx.reference is the peer")
    from _ort_models import run_onnx_ref
    return run_onnx_ref


# --------------------------------------------------------------------------- exactness

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 9), st.integers(1, 70), st.integers(1, 9), st.sampled_from(COMBOS),
       st.integers(0, 2 ** 31), st.booleans())
def test_float64_blas_is_exact_vs_int64(m, k, n, combo, seed, batch):
    rng = np.random.default_rng(seed)
    at, bt = combo
    A = rnd(rng, at, ((2, m, k) if batch else (m, k)))
    B = rnd(rng, bt, (k, n))
    azp, bzp = rnd(rng, at, ()), rnd(rng, bt, (n,))
    got = matmul_integer(A, B, azp, bzp)
    assert got.dtype == np.int32
    assert np.array_equal(got, wrap(exact_int64(A, B, azp, bzp)))


def test_exact_large_k_extremes_and_int32_wraparound():
    # |acc| up to 255*255*K: K = 70000 -> 4.55e9 > 2^32: wraps; float64 still exact (< 2^53)
    rng = np.random.default_rng(0)
    K = 70000
    A = np.full((3, K), 255, U8)
    A[1] = 0
    A[2] = rng.integers(0, 256, K)
    B = np.full((K, 4), 255, U8)
    B[:, 1] = 0
    B[:, 2] = rng.integers(0, 256, K)
    got = matmul_integer(A, B, np.uint8(0), np.uint8(0))
    ex = exact_int64(A, B)
    assert ex.max() > 2 ** 32
    assert np.array_equal(got, wrap(ex))
    r = accumulator_range(A, B, np.uint8(0), np.uint8(0))
    assert r.int32_overflow and r.max == int(ex.max()) and r.min == int(ex.min())
    with pytest.warns(AccumulatorWarning):
        accumulator_range(A, B, np.uint8(0), np.uint8(0), warn=True)


def test_batch_broadcast_and_1d_operands():
    rng = np.random.default_rng(1)
    A = rnd(rng, U8, (2, 1, 5, 7))
    B = rnd(rng, S8, (3, 7, 4))
    got = matmul_integer(A, B, np.uint8(9), np.int8(-3))
    assert got.shape == (2, 3, 5, 4)
    assert np.array_equal(got, wrap(exact_int64(A, B, 9, -3)))
    a1 = rnd(rng, U8, (7,))
    assert np.array_equal(matmul_integer(a1, B), wrap(exact_int64(a1, B)))
    b1 = rnd(rng, S8, (7,))
    assert np.array_equal(matmul_integer(A, b1), wrap(exact_int64(A, b1)))


def test_per_row_and_per_column_zero_points():
    rng = np.random.default_rng(2)
    A = rnd(rng, U8, (5, 6))
    B = rnd(rng, S8, (6, 3))
    azp = rnd(rng, U8, (5,))
    bzp = rnd(rng, S8, (3,))
    got = matmul_integer(A, B, azp, bzp)
    assert np.array_equal(got, wrap(exact_int64(A, B, azp[:, None], bzp)))
    A3 = rnd(rng, U8, (2, 5, 6))
    azp3 = rnd(rng, U8, (2, 5, 1))
    bzp3 = rnd(rng, S8, (1, 3))
    assert np.array_equal(matmul_integer(A3, B, azp3, bzp3), wrap(exact_int64(A3, B, azp3, bzp3)))


def test_packed_weights_accepted():
    rng = np.random.default_rng(3)
    A, B = rnd(rng, U8, (4, 8)), rnd(rng, S8, (8, 5))
    assert np.array_equal(matmul_integer(A, PackedWeights(B)), matmul_integer(A, B))
    args = (A, np.float32(0.1), np.uint8(3), B, np.float32(0.02), np.int8(0), np.float32(0.3), np.uint8(5))
    assert np.array_equal(qlinear_matmul(*args[:3], PackedWeights(B), *args[4:]), qlinear_matmul(*args))
    assert np.array_equal(qgemm(A, np.float32(0.1), np.uint8(3), PackedWeights(B), np.float32(0.02), np.int8(0)),
                          qgemm(A, np.float32(0.1), np.uint8(3), B, np.float32(0.02), np.int8(0)))


# --------------------------------------------------------------------------- onnxruntime

SHAPES = [(1, 1, 1), (1, 7, 1), (3, 5, 2), (7, 13, 11), (17, 31, 29), (33, 67, 65), (2, 129, 3), (64, 257, 17)]


def _zp_cases(dt):
    i = np.iinfo(dt)
    return [i.min, i.max, 1 if dt == U8 else -1]


@pytest.mark.parametrize("combo", COMBOS, ids=lambda c: f"{c[0].__name__}x{c[1].__name__}")
def test_matmul_integer_vs_onnxruntime(combo):
    run_ort = ort()
    rng = np.random.default_rng(10)
    at, bt = combo
    n = 0
    for i, (m, k, nn) in enumerate(SHAPES):
        A = rnd(rng, at, (m, k) if i % 3 else (2, m, k))
        B = rnd(rng, bt, (k, nn))
        azp = np.array(_zp_cases(at)[i % 3], at)
        bzp = np.array(_zp_cases(bt)[(i + 1) % 3], bt) if i % 2 else rnd(rng, bt, (nn,))
        y = run_ort("MatMulInteger", [A, B, azp, bzp], opset=10)
        assert np.array_equal(y, matmul_integer(A, B, azp, bzp)), (m, k, nn)
        n += y.size
    assert n > 0


def test_matmul_integer_int32_overflow_vs_onnxruntime_and_reference():
    run_ort, run_ref = ort(), onnx_ref()
    K = 40000
    A = np.full((2, K), 255, U8)
    B = np.full((K, 2), 255, U8)
    B[:, 1] = 254
    ours = matmul_integer(A, B)
    assert exact_int64(A, B).max() > 2 ** 31
    assert np.array_equal(ours, run_ort("MatMulInteger", [A, B], opset=10))
    assert np.array_equal(ours, run_ref("MatMulInteger", [A, B], opset=10))
    # the wrapped accumulator then goes through the epilogue (QLinearMatMul)
    args = [A, np.float32(0.01), np.uint8(0), B, np.float32(0.01), np.uint8(0), np.float32(1e5), np.uint8(128)]
    y = qlinear_matmul(*args)
    assert np.array_equal(y, run_ort("QLinearMatMul", args))
    assert np.array_equal(qlinear_matmul(*args, profile="onnx-reference"), run_ref("QLinearMatMul", args))
    assert y.min() < 128      # negative after the wrap


def test_matmul_integer_per_row_zero_point_deviations():
    """The spec allows a per-row a_zero_point; onnxruntime rejects it and onnx.reference
    broadcasts it along K (error for M != K, wrong values for M == K)."""
    run_ort, run_ref = ort(), onnx_ref()
    rng = np.random.default_rng(4)
    A, B = rnd(rng, U8, (4, 6)), rnd(rng, U8, (6, 3))
    azp = rnd(rng, U8, (4,))
    ours = matmul_integer(A, B, azp, np.uint8(2))
    assert np.array_equal(ours, wrap(exact_int64(A, B, azp[:, None], 2)))
    with pytest.raises(Exception, match="zero point must be a scalar"):
        run_ort("MatMulInteger", [A, B, azp, np.uint8(2)], opset=10)
    with pytest.raises(ValueError, match="broadcast"):
        run_ref("MatMulInteger", [A, B, azp, np.uint8(2)], opset=10)
    Aq = rnd(rng, U8, (6, 6))
    azq = rnd(rng, U8, (6,))
    wrong = run_ref("MatMulInteger", [Aq, B, azq, np.uint8(2)], opset=10)
    assert np.array_equal(wrong, wrap(exact_int64(Aq, B, azq[None, :], 2)))   # per column of A, not per row
    assert not np.array_equal(wrong, matmul_integer(Aq, B, azq, np.uint8(2)))


def _qlm_args(rng, m, k, n, at, bt, ot, per_col, ties):
    A = rnd(rng, at, (m, k))
    B = rnd(rng, bt, (k, n))
    az = rnd(rng, at, ())
    bz = rnd(rng, bt, (n,)) if per_col else rnd(rng, bt, ())
    if ties:   # M = 0.5 or 0.25 exactly, values near the zero points: many exact ties; odd zero points
        ia, ib = np.iinfo(at), np.iinfo(bt)
        A = np.clip(az.astype(int) + rng.integers(-2, 3, (m, k)), ia.min, ia.max).astype(at)
        B = np.clip(bz.astype(int) + rng.integers(-2, 3, (k, n)), ib.min, ib.max).astype(bt)
        a_s, y_s = np.float32(1.0), np.float32([2.0, 4.0][k % 2])
        b_s = np.full(n, 1.0, np.float32) if per_col else np.float32(1.0)
        yz = np.array(1 if ot == U8 else -1, ot)
    else:
        a_s, y_s = np.float32(rng.uniform(0.005, 0.05)), np.float32(rng.uniform(0.05, 0.5))
        b_s = rng.uniform(0.002, 0.02, n).astype(np.float32) if per_col else np.float32(rng.uniform(0.002, 0.02))
        yz = rnd(rng, ot, ())
    return [A, a_s, az, B, b_s, bz, y_s, yz]


@pytest.mark.parametrize("ties", [False, True], ids=["random", "ties"])
@pytest.mark.parametrize("combo", COMBOS, ids=lambda c: f"{c[0].__name__}x{c[1].__name__}")
def test_qlinear_matmul_vs_onnxruntime_and_reference(combo, ties):
    run_ort, run_ref = ort(), onnx_ref()
    rng = np.random.default_rng(20 + ties)
    at, bt = combo
    n_out = n_dev = 0
    # onnxruntime 1.32 registers (u8,u8)->u8, (u8,s8)->u8, (s8,s8)->s8 only; other type
    # combinations (output type != a's type, s8 x u8) are NOT_IMPLEMENTED there.
    ort_has = (at, bt) != (S8, U8)
    for i, (m, k, n) in enumerate(SHAPES):
        ot = at if (ort_has and i % 3) else [U8, S8][i % 2]
        args = _qlm_args(rng, m, k, n, at, bt, ot, per_col=bool(i % 2), ties=ties)
        ours = qlinear_matmul(*args)
        assert ours.dtype == ot
        if ort_has and ot == at:
            assert np.array_equal(ours, run_ort("QLinearMatMul", args)), (m, k, n)
        else:
            with pytest.raises(Exception, match="NOT_IMPLEMENTED"):
                run_ort("QLinearMatMul", args)
        ref = run_ref("QLinearMatMul", args)
        # onnx.reference = our 'onnx-reference' profile, bit for bit
        assert np.array_equal(ref, qlinear_matmul(*args, profile="onnx-reference")), (m, k, n)
        n_out += ours.size
        n_dev += int(np.count_nonzero(ref != ours))
    if ties:
        # deviation rq_zero_point='before_rounding': rint(acc*M + zp) vs rint(acc*M) + zp at ties
        assert n_dev > 0
    assert n_out > 0


def test_onnx_reference_deviation_named_fields():
    """Each onnx.reference deviation is one profile field: switching that field alone in the
    onnx profile reproduces the reference on data that isolates it."""
    run_ref = onnx_ref()
    onnx_p = get_profile("onnx")
    refp = get_profile("onnx-reference")
    assert onnx_p.diff(refp).keys() >= {"rq_zero_point", "rq_precision", "rq_acc_to_float"}
    # (1) zero point before rounding: ties with odd zp, small acc (float32 exact)
    A = np.array([[1, 3, 5, 7]], U8).T
    B = np.array([[1]], U8)
    args = [A, np.float32(1), np.uint8(0), B, np.float32(1), np.uint8(0), np.float32(2), np.uint8(1)]
    ref = run_ref("QLinearMatMul", args)
    assert ref.ravel().tolist() == [2, 2, 4, 4]
    assert qlinear_matmul(*args).ravel().tolist() == [1, 3, 3, 5]
    assert np.array_equal(ref, qlinear_matmul(*args, profile=onnx_p.replace(rq_zero_point="before_rounding")))
    # (2) float64 accumulator/product: |acc| > 2^24 (SEMANTICS 2.3 example)
    A = np.full((1, 2048), 255, U8)
    B = np.full((2048, 1), 127, S8)
    B[0, 0] = 126
    args = [A, np.float32(1), np.uint8(0), B, np.float32(1), np.int8(0), np.float32(1 / 3.0230283e-06), np.uint8(0)]
    ref = run_ref("QLinearMatMul", args)
    assert qlinear_matmul(*args).tolist() != ref.tolist()
    assert np.array_equal(ref, qlinear_matmul(*args, profile=onnx_p.replace(rq_precision="float64",
                                                                            rq_acc_to_float="float64")))


def test_onnx_reference_float16_scale_multiplier():
    """onnx.reference forms M = a_s*b_s/y_s in the scales' own dtype: float16 for float16
    scales (opset 21); onnxruntime (and rq_multiplier='fp32') widen to float32 first.  The
    'onnx-reference' profile's rq_multiplier='scale_type' reproduces the evaluator; 'onnx'
    (the float32 multiplier) differs from it."""
    run_ort, run_ref = ort(), onnx_ref()
    rng = np.random.default_rng(5)
    n_dev = 0
    for _ in range(12):
        A, B = rnd(rng, U8, (16, 32)), rnd(rng, S8, (32, 16))
        s = [np.float16(rng.uniform(0.001, 0.1)) for _ in range(3)]
        args = [A, s[0], np.uint8(3), B, s[1], np.int8(0), s[2], np.uint8(3)]
        assert np.array_equal(run_ort("QLinearMatMul", args), qlinear_matmul(*args))
        ref = run_ref("QLinearMatMul", args)
        m16 = np.float16(np.float16(s[0] * s[1]) / s[2])
        acc = matmul_integer(A, B, np.uint8(3), np.int8(0))
        assert np.array_equal(ref, requantize(acc, m16.astype(np.float32), np.uint8(3), output_dtype=U8,
                                              profile="onnx-reference"))
        assert np.array_equal(ref, qlinear_matmul(*args, profile="onnx-reference"))
        n_dev += int(np.count_nonzero(ref != qlinear_matmul(*args, profile="onnx")))
    assert n_dev > 0


def test_qlinear_matmul_batched_and_per_row_scale():
    run_ort = ort()
    rng = np.random.default_rng(6)
    A = rnd(rng, S8, (2, 3, 5, 9))
    B = rnd(rng, S8, (3, 9, 4))
    args = [A, np.float32(0.03), np.int8(-2), B, np.float32(0.01), np.int8(1), np.float32(0.2), np.int8(4)]
    assert np.array_equal(run_ort("QLinearMatMul", args), qlinear_matmul(*args))
    # batched per-column b scale / zero point of shape (D, 1, N)
    bs = rng.uniform(0.001, 0.01, (3, 1, 4)).astype(np.float32)
    bz = rng.integers(-3, 3, (3, 1, 4)).astype(S8)
    args = [A, np.float32(0.03), np.int8(-2), B, bs, bz, np.float32(0.2), np.int8(4)]
    assert np.array_equal(run_ort("QLinearMatMul", args), qlinear_matmul(*args))
    assert np.array_equal(onnx_ref()("QLinearMatMul", args), qlinear_matmul(*args, profile="onnx-reference"))
    # per-row a (spec allows; onnxruntime rejects a non-scalar a zero point)
    A2 = rnd(rng, U8, (4, 9))
    a_s = rng.uniform(0.01, 0.05, 4).astype(np.float32)
    a_z = rnd(rng, U8, (4,))
    B2 = rnd(rng, S8, (9, 4))
    y = qlinear_matmul(A2, a_s, a_z, B2, np.float32(0.01), np.int8(0), np.float32(0.1), np.uint8(128))
    acc = wrap(exact_int64(A2, B2, a_z[:, None], 0))
    M = (a_s[:, None] * np.float32(0.01) / np.float32(0.1)).astype(np.float32)
    exp = np.clip(np.rint((acc.astype(np.float32) * M).astype(np.float32)) + 128, 0, 255)
    assert np.array_equal(y, exp.astype(U8))
    with pytest.raises(Exception, match="zero point must be a scalar"):
        run_ort("QLinearMatMul", [A2, a_s, a_z, B2, np.float32(0.01), np.int8(0), np.float32(0.1), np.uint8(128)])


def test_qlinear_matmul_float8_per_spec():
    """Opset 21 float8 QLinearMatMul: onnxruntime 1.32 has no kernel, onnx.reference casts the
    float8 codes to int32 and fails; refquant implements the spec formula."""
    import ml_dtypes
    run_ort, run_ref = ort(), onnx_ref()
    f8 = ml_dtypes.float8_e4m3fn
    rng = np.random.default_rng(7)
    a = rng.normal(size=(3, 8)).astype(f8)
    b = rng.normal(size=(8, 4)).astype(f8)
    z = np.array(0, f8)
    args = [a, np.float32(0.5), z, b, np.float32(0.25), z, np.float32(0.1), z]
    y = qlinear_matmul(*args)
    assert y.dtype == f8
    exp = ((a.astype(np.float64) @ b.astype(np.float64)).astype(np.float32) * np.float32(1.25)).astype(f8)
    assert np.array_equal(y.astype(np.float32), exp.astype(np.float32))
    with pytest.raises(Exception, match="NOT_IMPLEMENTED|implementation"):
        run_ort("QLinearMatMul", args)
    with pytest.raises(Exception):
        run_ref("QLinearMatMul", args)
    # saturation to the float8 range
    big = qlinear_matmul(a, np.float32(1e4), z, b, np.float32(1e4), z, np.float32(1e-4), z)
    assert np.all(np.abs(big.astype(np.float32)) <= 448)
    with pytest.raises(TypeError, match="opset 10"):
        qlinear_matmul(*args, opset=10)


# --------------------------------------------------------------------------- QGemm

def _qgemm_case(rng, trial):
    M, K, N = (int(v) for v in rng.integers(1, 40, 3))
    at = [U8, S8][trial % 2]
    bt = S8 if at == S8 else [U8, S8][(trial // 2) % 2]
    tA, tB = (int(v) for v in rng.integers(0, 2, 2))
    A = rnd(rng, at, (K, M) if tA else (M, K))
    B = rnd(rng, bt, (N, K) if tB else (K, N))
    perc = trial % 3 == 0
    bs = rng.uniform(0.001, 0.02, N).astype(np.float32) if perc else np.float32(0.013)
    bz = rnd(rng, bt, (N,)) if perc else rnd(rng, bt, ())
    cshape = [None, (), (N,), (1, N), (M, 1), (M, N)][trial % 6]
    C = None if cshape is None else rng.integers(-100000, 100000, cshape).astype(np.int32)
    alpha = [1.0, 0.5, 1.7, 3.0][trial % 4]
    mode = trial % 3
    if mode == 0:
        ys, yz = np.float32(0.07), rnd(rng, at, ())
    elif mode == 1:
        ys, yz = None, None
    else:
        ys, yz = np.float32(0.3), None       # y_scale without y_zero_point: float output / y_scale
    args = [A, np.float32(0.021), rnd(rng, at, ()), B, bs, bz, C, ys, yz]
    return args, dict(alpha=alpha, transA=tA, transB=tB), (np.float32 if yz is None else at)


def test_qgemm_vs_onnxruntime():
    run_ort = ort()
    rng = np.random.default_rng(30)
    for trial in range(36):
        args, attrs, odt = _qgemm_case(rng, trial)
        y = run_ort("QGemm", args, attrs, domain="com.microsoft", output_dtype=odt)
        ours = qgemm(*args, **attrs)
        assert ours.dtype == y.dtype and ours.shape == y.shape
        # bit for bit, float outputs included
        assert np.array_equal(ours.view(np.uint8), y.view(np.uint8)), (trial, attrs)


def test_qgemm_float_output_formula_and_ties():
    rng = np.random.default_rng(31)
    A, B = rnd(rng, U8, (5, 8)), rnd(rng, S8, (8, 3))
    C = rng.integers(-1000, 1000, 3).astype(np.int32)
    y = qgemm(A, np.float32(0.1), np.uint8(3), B, np.float32(0.02), np.int8(0), C, alpha=2.0)
    acc = wrap(exact_int64(A, B, 3, 0) + C)
    S = np.float32(np.float32(np.float32(2.0) * np.float32(0.1)) * np.float32(0.02))
    assert np.array_equal(y, (acc.astype(np.float32) * S).astype(np.float32))
    # alpha = 0.5 with unit scales: M = 0.25 / y_s ties
    run_ort = ort()
    A = (np.arange(40) % 7).astype(U8).reshape(5, 8)
    B = np.ones((8, 3), U8)
    args = [A, np.float32(1), np.uint8(0), B, np.float32(1), np.uint8(0), None, np.float32(1), np.uint8(1)]
    assert np.array_equal(run_ort("QGemm", args, dict(alpha=0.5), domain="com.microsoft", output_dtype=U8),
                          qgemm(*args, alpha=0.5))


# --------------------------------------------------------------------------- int16 pair saturation

def _pairsat_brute(A, B):
    """vpmaddubsw model on raw operands, straight loops in Python ints."""
    M, K = A.shape
    N = B.shape[1]
    out = np.zeros((M, N), np.int64)
    for m in range(M):
        for n in range(N):
            s = 0
            for k in range(0, K, 2):
                p = int(A[m, k]) * int(B[k, n]) + (int(A[m, k + 1]) * int(B[k + 1, n]) if k + 1 < K else 0)
                s += min(32767, max(-32768, p))
            out[m, n] = s
    return out


def test_int16_pair_saturation_known_cases():
    p = get_profile("onnxruntime-avx2")
    # microsoft/onnxruntime#16105: 210*(-81) + 198*(-80) = -32850 saturates to -32768
    x = np.array([[210, 198, 234]], U8)
    w = np.array([[-81], [-80], [127]], S8)
    assert matmul_integer(x, w).item() == 210 * -81 + 198 * -80 + 234 * 127
    assert matmul_integer(x, w, profile=p).item() == -32768 + 234 * 127
    # pytorch/pytorch#44939: 211*71 + 171*107 = 33278 saturates to 32767
    x = np.array([[211, 171]], U8)
    w = np.array([[71], [107]], S8)
    assert matmul_integer(x, w, profile=p).item() == 32767
    # u8 x u8 and s8 x s8 never saturate
    assert matmul_integer(np.array([[255, 255]], U8), np.array([[255], [255]], U8), profile=p).item() == 130050
    r = accumulator_range(np.array([[210, 198, 234]], U8), np.array([[-81], [-80], [127]], S8))
    assert r.n_pair_saturated == 1


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(1, 13), st.integers(1, 6), st.integers(0, 2 ** 31), st.booleans())
def test_int16_pair_saturation_vs_brute_force(m, k, n, seed, swap):
    rng = np.random.default_rng(seed)
    A = rng.integers(150, 256, (m, k)).astype(U8)       # large magnitudes: saturations are common
    B = rng.choice([-128, -127, -100, 100, 126, 127], (k, n)).astype(S8)
    azp, bzp = rnd(rng, U8, ()), rnd(rng, S8, ())
    p = get_profile("onnxruntime-avx2")
    exact = exact_int64(A, B, azp, bzp)
    corr = _pairsat_brute(A, B) - exact_int64(A, B)      # saturation term on the raw operands
    if swap:   # s8 x u8: same pairs, B^T A^T
        got = matmul_integer(B.T.copy(), A.T.copy(), bzp, azp, profile=p).T
    else:
        got = matmul_integer(A, B, azp, bzp, profile=p)
    assert np.array_equal(got, wrap(exact + corr))


# --------------------------------------------------------------------------- accumulator_range

def test_accumulator_range_reports():
    acc = np.array([0, 2 ** 24 + 1, -(2 ** 31) - 5, 7], np.int64)
    r = accumulator_range(acc)
    assert (r.min, r.max, r.n_int32_overflow, r.n_exceeds_float32_exact) == (-(2 ** 31) - 5, 2 ** 24 + 1, 1, 2)
    assert r.float32_rounded == 2 and r.n_pair_saturated is None and r.max_abs == 2 ** 31 + 5
    assert "int32 overflow: 1" in str(r)
    small = accumulator_range(np.arange(10))
    assert not small.int32_overflow and not small.exceeds_float32_exact
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        accumulator_range(np.arange(10), warn=True)          # nothing to report: no warning
    b = accumulator_range(np.array([[1, 2]], U8), np.array([[1], [1]], U8), bias=np.array([2 ** 31], np.int64))
    assert b.int32_overflow


# --------------------------------------------------------------------------- PyTorch

def _torch():
    torch = pytest.importorskip("torch", reason="PyTorch quantized CPU engines are the peer")
    return torch


def _torch_linear(torch, engine, X, xs, xz, W, ws, b, ys, yz):
    torch.backends.quantized.engine = engine
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x = torch._make_per_tensor_quantized_tensor(torch.from_numpy(X), xs, xz)
        if np.ndim(ws):
            w = torch._make_per_channel_quantized_tensor(
                torch.from_numpy(W), torch.from_numpy(ws.astype(np.float64)),
                torch.zeros(len(ws), dtype=torch.int64), 0)
        else:
            w = torch._make_per_tensor_quantized_tensor(torch.from_numpy(W), float(ws), 0)
        pk = torch.ops.quantized.linear_prepack(w, torch.from_numpy(b))
        return torch.ops.quantized.linear(x, pk, ys, yz).int_repr().numpy()


def _torch_linear_cases(n):
    rng = np.random.default_rng(40)
    for t in range(n):
        Mr, K, N = int(rng.integers(1, 30)), int(rng.integers(1, 70)), int(rng.integers(1, 20))
        X = rng.integers(0, 256, (Mr, K), dtype=np.uint8)
        W = rng.integers(-127, 128, (N, K), dtype=np.int8)
        xs = float(np.float32(rng.uniform(0.01, 0.1)))
        xz = int(rng.integers(0, 256))
        ws = rng.uniform(0.001, 0.02, N).astype(np.float32) if t % 2 == 0 else np.float32(rng.uniform(0.001, 0.02))
        b = rng.normal(size=N).astype(np.float32)
        ys = float(np.float32(rng.uniform(0.02, 0.2)))
        yz = int(rng.integers(0, 256))
        yield X, xs, xz, W, ws, b, ys, yz


def test_torch_fbgemm_linear_float_bias():
    """PyTorch fbgemm quantized::linear = rq_bias='float' (fl32(acc) + fl32(b/fl32(x_s*w_s)));
    everything else as the onnx profile.  The int32-bias reading differs (by name: rq_bias)."""
    torch = _torch()
    fb = get_profile("onnx").replace(name="fbgemm-like", rq_bias="float")
    for X, xs, xz, W, ws, b, ys, yz in _torch_linear_cases(40):
        y = _torch_linear(torch, "fbgemm", X, xs, xz, W, ws, b, ys, yz)
        ours = qgemm(X, np.float32(xs), np.uint8(xz), W, ws, np.int8(0), b, np.float32(ys), np.uint8(yz),
                     transB=1, profile=fb)
        assert np.array_equal(y, ours)
    # the int32-bias reading is counted in the slow test_torch_bias_and_multiplier_deviations_counted


def test_torch_qnnpack_linear_reciprocal_multiplier():
    """PyTorch qnnpack quantized::linear = rq_multiplier='fp32_reciprocal' with the bias quantized
    to int32 as RNE(fl32(b * fl32(1/fl32(w_s*x_s))))."""
    torch = _torch()
    qn = get_profile("onnx").replace(name="qnnpack-like", rq_multiplier="fp32_reciprocal")
    for X, xs, xz, W, ws, b, ys, yz in _torch_linear_cases(40):
        if np.ndim(ws):
            continue
        y = _torch_linear(torch, "qnnpack", X, xs, xz, W, ws, b, ys, yz)
        s = np.float32(ws * np.float32(xs))
        bq = np.rint((b * (np.float32(1) / s)).astype(np.float32)).astype(np.int32)
        ours = qgemm(X, np.float32(xs), np.uint8(xz), W, ws, np.int8(0), bq, np.float32(ys), np.uint8(yz),
                     transB=1, profile=qn)
        assert np.array_equal(y, ours)


@pytest.mark.slow
def test_torch_bias_and_multiplier_deviations_counted():
    """Over many outputs, fbgemm's float bias and qnnpack's reciprocal multiplier each differ from
    the onnx profile somewhere; the matching custom profiles stay bit-exact."""
    torch = _torch()
    fb = get_profile("onnx").replace(name="fbgemm-like", rq_bias="float")
    rng = np.random.default_rng(41)
    n_dev = n = 0
    for _ in range(200):
        X = rng.integers(0, 256, (16, 64), dtype=np.uint8)
        W = rng.integers(-127, 128, (8, 64), dtype=np.int8)
        xs, ws, ys = np.float32(rng.uniform(0.01, 0.1)), np.float32(rng.uniform(0.001, 0.02)), \
            np.float32(rng.uniform(0.02, 0.2))
        b = rng.normal(size=8).astype(np.float32)
        y = _torch_linear(torch, "fbgemm", X, float(xs), 128, W, ws, b, float(ys), 120)
        assert np.array_equal(y, qgemm(X, xs, np.uint8(128), W, ws, np.int8(0), b, ys, np.uint8(120), transB=1,
                                       profile=fb))
        bq = np.rint(b.astype(np.float64) / np.float64(np.float32(xs * ws))).astype(np.int32)
        n_dev += int(np.count_nonzero(qgemm(X, xs, np.uint8(128), W, ws, np.int8(0), bq, ys, np.uint8(120),
                                            transB=1) != y))
        n += y.size
    assert n_dev > 0, "float bias (rq_bias='float') never differed from int32 bias"


# --------------------------------------------------------------------------- bad input

def test_bad_input_matmul():
    A, B = np.zeros((3, 4), U8), np.zeros((5, 2), S8)
    with pytest.raises(ValueError, match="inner dimensions"):
        matmul_integer(A, B)
    with pytest.raises(TypeError, match="A"):
        matmul_integer(A.astype(np.int16), np.zeros((4, 2), S8))
    with pytest.raises(TypeError, match="B"):
        matmul_integer(A, np.zeros((4, 2), np.float32))
    with pytest.raises(TypeError, match="a_zero_point"):
        matmul_integer(A, np.zeros((4, 2), S8), np.int8(1))
    with pytest.raises(ValueError, match="a_zero_point"):
        matmul_integer(A, np.zeros((4, 2), S8), np.zeros(4, U8))
    with pytest.raises(ValueError, match="b_zero_point"):
        matmul_integer(A, np.zeros((4, 2), S8), None, np.zeros(3, S8))
    with pytest.raises(ValueError, match="b_zero_point"):
        matmul_integer(A, np.zeros((4, 2), S8), None, 200)
    with pytest.raises(ValueError, match="batch"):
        matmul_integer(np.zeros((2, 3, 4), U8), np.zeros((3, 4, 2), U8))


def test_bad_input_qlinear():
    A, B = np.zeros((3, 4), U8), np.zeros((4, 2), S8)
    ok = [A, np.float32(1), np.uint8(0), B, np.float32(1), np.int8(0), np.float32(1), np.uint8(0)]
    qlinear_matmul(*ok)
    for i, name, val, exc in [(1, "a_scale", np.float32(0), ValueError), (4, "b_scale", np.float32(-1), ValueError),
                              (6, "y_scale", np.float32(np.nan), ValueError),
                              (6, "y_scale", np.ones(2, np.float32), ValueError),
                              (7, "y_zero_point", np.zeros(2, np.uint8), ValueError),
                              (4, "b_scale", np.ones(3, np.float32), ValueError),
                              (5, "b_zero_point", np.zeros(2, np.uint8), TypeError),
                              (7, "y_zero_point", np.float32(0), TypeError)]:
        bad = list(ok)
        bad[i] = val
        with pytest.raises(exc, match=name):
            qlinear_matmul(*bad)
    bad = list(ok)
    bad[4], bad[5] = np.ones(2, np.float32), np.zeros((1, 2), S8)
    with pytest.raises(ValueError, match="same shape"):
        qlinear_matmul(*bad)
    with pytest.raises(TypeError, match="opset"):
        qlinear_matmul(*ok[:1], np.float16(1), *ok[2:], opset=10)


def test_bad_input_qgemm():
    A, B = np.zeros((3, 4), U8), np.zeros((4, 2), S8)
    with pytest.raises(ValueError, match="C"):
        qgemm(A, np.float32(1), np.uint8(0), B, np.float32(1), np.int8(0), np.zeros((2, 2), np.int32))
    with pytest.raises(TypeError, match="C"):
        qgemm(A, np.float32(1), np.uint8(0), B, np.float32(1), np.int8(0), np.zeros(2, np.float32),
              np.float32(1), np.uint8(0))
    with pytest.raises(ValueError, match="inner"):
        qgemm(A, np.float32(1), np.uint8(0), B, np.float32(1), np.int8(0), transB=1)
    with pytest.raises(TypeError, match="A, B"):
        qgemm(A.astype(S8), np.float32(1), np.int8(0), B.astype(U8), np.float32(1), np.uint8(0))
    with pytest.raises(ValueError, match="a_scale"):
        qgemm(A, np.ones(3, np.float32), np.uint8(0), B, np.float32(1), np.int8(0))
    with pytest.raises(ValueError, match="y_zero_point"):
        qgemm(A, np.float32(1), np.uint8(0), B, np.float32(1), np.int8(0), None, None, np.uint8(0))
    with pytest.raises(ValueError, match="b_scale"):
        qgemm(A, np.float32(1), np.uint8(0), B, np.ones(3, np.float32), np.int8(0))


# --------------------------------------------------------------------------- speed / big sweeps

@pytest.mark.slow
def test_speed_1024_cube():
    rng = np.random.default_rng(50)
    A, B = rnd(rng, U8, (1024, 1024)), rnd(rng, S8, (1024, 1024))
    t = time.perf_counter()
    y = matmul_integer(A, B, np.uint8(7), np.int8(-3))
    dt = time.perf_counter() - t
    assert dt < 10, dt
    idx = rng.integers(0, 1024, (50, 2))
    for i, j in idx:
        assert y[i, j] == np.dot(A[i].astype(np.int64) - 7, B[:, j].astype(np.int64) + 3)


@pytest.mark.slow
@pytest.mark.parametrize("combo", COMBOS, ids=lambda c: f"{c[0].__name__}x{c[1].__name__}")
def test_qlinear_matmul_big_sweep_vs_onnxruntime(combo):
    run_ort, run_ref = ort(), onnx_ref()
    rng = np.random.default_rng(60)
    at, bt = combo
    for trial in range(60):
        m, k, n = (int(v) for v in rng.integers(1, 140, 3))
        ot = at
        args = _qlm_args(rng, m, k, n, at, bt, ot, per_col=bool(trial % 2), ties=bool(trial % 3 == 0))
        if (at, bt) != (S8, U8):
            assert np.array_equal(qlinear_matmul(*args), run_ort("QLinearMatMul", args))
        assert np.array_equal(qlinear_matmul(*args, profile="onnx-reference"), run_ref("QLinearMatMul", args))
    for trial in range(60):
        args, attrs, odt = _qgemm_case(rng, trial)
        y = run_ort("QGemm", args, attrs, domain="com.microsoft", output_dtype=odt)
        assert np.array_equal(qgemm(*args, **attrs).view(np.uint8), y.view(np.uint8))


def test_torch_qnnpack_reciprocal_multiplier_deviation_named():
    """Constructed near-tie: the QNNPACK multiplier fl32(fl32(x_s*w_s)*fl32(1/y_s)) and ORT's
    fl32(fl32(x_s*w_s)/y_s) differ by an ulp and flip an output; torch qnnpack follows
    rq_multiplier='fp32_reciprocal', the onnx profile does not."""
    torch = _torch()
    if "qnnpack" not in torch.backends.quantized.supported_engines:
        pytest.skip("torch built without qnnpack")
    qn = get_profile("onnx").replace(name="qnnpack-like", rq_multiplier="fp32_reciprocal")
    # found by a search over random scales and all acc = x*w (x in [0,255], w in [1,127])
    xs, ws, ys = np.float32(0.016182978), np.float32(0.016452959), np.float32(0.17570421)
    assert form_multiplier(xs, ws, ys) != form_multiplier(xs, ws, ys, profile=qn)     # one ulp apart
    X = np.array([[152]], np.uint8)
    W = np.array([[89]], np.int8)                                                     # acc = 13528
    b = np.zeros(1, np.float32)
    y = _torch_linear(torch, "qnnpack", X, float(xs), 0, W, ws, b, float(ys), 0)
    args = (X, xs, np.uint8(0), W, ws, np.int8(0), np.zeros(1, np.int32), ys, np.uint8(0))
    assert np.array_equal(y, qgemm(*args, transB=1, profile=qn))
    assert not np.array_equal(y, qgemm(*args, transB=1))


def test_qgemm_alpha_multiplier_order_vs_onnxruntime():
    """With acc = 1 the float output *is* the scale: ORT forms fl32(fl32(alpha*a_s)*b_s) [/ y_s],
    left to right (QGemm::ComputeOutputScale); other orderings differ in the last bit."""
    run_ort = ort()
    rng = np.random.default_rng(44)
    n = 64
    A = np.ones((1, 1), U8)
    B = np.ones((1, n), S8)
    n_alt = 0
    for _ in range(4):
        alpha = float(np.float32(rng.uniform(0.1, 3)))
        a_s = np.float32(rng.uniform(0.001, 0.1))
        b_s = rng.uniform(0.001, 0.1, n).astype(np.float32)
        y_s = np.float32(rng.uniform(0.01, 1))
        for ys in (None, y_s):
            args = [A, a_s, np.uint8(0), B, b_s, np.zeros(n, S8), None, ys, None]
            y = run_ort("QGemm", args, {"alpha": alpha}, domain="com.microsoft", output_dtype=np.float32)
            ours = qgemm(*args, alpha=alpha)
            assert np.array_equal(y.view(np.uint32), ours.view(np.uint32))
            alt = (np.float32(alpha) * (a_s * b_s).astype(np.float32)).astype(np.float32)
            if ys is not None:
                alt = (alt / ys).astype(np.float32)
            n_alt += int(np.count_nonzero(alt != y[0]))
    assert n_alt > 0


def test_empty_inner_dimension():
    """K = 0: acc = 0 (+ C), the mathematical definition.  (onnxruntime 1.32 returns
    uninitialised memory for QLinearMatMul with K = 0 and writes the int32 C bytes into the
    float QGemm output, so it is not compared here.)"""
    A, B = np.zeros((2, 0), U8), np.zeros((0, 3), S8)
    assert np.array_equal(matmul_integer(A, B, np.uint8(3), np.int8(1)), np.zeros((2, 3), np.int32))
    y = qlinear_matmul(A, np.float32(0.02), np.uint8(3), B, np.float32(0.01), np.int8(0), np.float32(0.05),
                       np.uint8(7))
    assert y.tolist() == [[7] * 3] * 2
    C = np.array([1000, -5, 300], np.int32)
    yf = qgemm(A, np.float32(0.02), np.uint8(3), B, np.float32(0.01), np.int8(0), C, alpha=2.0)
    S = np.float32(np.float32(np.float32(2.0) * np.float32(0.02)) * np.float32(0.01))
    assert np.array_equal(yf, np.broadcast_to((C.astype(np.float32) * S).astype(np.float32), (2, 3)))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 40), st.integers(1, 300), st.integers(1, 40), st.sampled_from([(U8, U8), (U8, S8), (S8, S8)]),
       st.booleans(), st.booleans(), st.integers(0, 2), st.integers(0, 2 ** 31))
def test_qlinear_matmul_hypothesis_vs_onnxruntime(m, k, n, combo, per_col, ties, nbatch, seed):
    run_ort = ort()
    rng = np.random.default_rng(seed)
    at, bt = combo
    args = _qlm_args(rng, m, k, n, at, bt, at, per_col=per_col, ties=ties)
    if nbatch:
        args[0] = np.stack([args[0]] + [rnd(rng, at, (m, k)) for _ in range(nbatch)])
    assert np.array_equal(qlinear_matmul(*args), run_ort("QLinearMatMul", args))


@pytest.mark.parametrize("profile", ["onnx", "onnxruntime", "onnxruntime-avx2"])
@pytest.mark.parametrize("M,K,N", [(0, 3, 2), (2, 3, 0), (0, 4, 0), (2, 0, 3), (0, 0, 0)])
def test_zero_size_gemm_reference_equals_fast_path(profile, M, K, N):
    """Empty operands give the empty (or all-zero-accumulator) result on every profile, the int16
    pair-saturation ones (onnxruntime-avx2) included, exactly as the fast path does."""
    import refquant
    f32 = np.float32
    A = np.full((M, K), 255, U8)
    B = np.full((K, N), 127, S8)
    for ref, fast in ((matmul_integer, refquant.matmul_integer),):
        r, f = ref(A, B, profile=profile), fast(A, B, profile=profile)
        assert r.shape == f.shape == (M, N) and r.dtype == f.dtype and np.array_equal(r, f)
    q = (A, f32(0.1), U8(3), B, f32(0.2), S8(0), f32(0.5), U8(1))
    r, f = qlinear_matmul(*q, profile=profile), refquant.qlinear_matmul(*q, profile=profile)
    assert r.shape == f.shape == (M, N) and r.dtype == f.dtype and np.array_equal(r, f)
    g = (A, f32(0.1), U8(3), B, f32(0.2), S8(0), None, f32(0.5), U8(1))
    r, f = qgemm(*g, profile=profile), refquant.qgemm(*g, profile=profile)
    assert r.shape == f.shape == (M, N) and np.array_equal(r, f)
    # batched A (folded into the rows: numpy cannot infer a -1 dimension next to K = 0; found
    # by a differential fuzz in session 15), batched B, per-row zero points
    for Ab, Bb, za in ((np.full((3, M, K), 255, U8), B, U8(3)), (np.full((3, M, K), 255, U8), B, np.full(M, 3, U8)),
                       (np.full((2, M, K), 255, U8), np.full((2, K, N), 127, S8), U8(3))):
        want = matmul_integer(Ab, Bb, za, profile=profile)
        got = refquant.matmul_integer(Ab, Bb, za, profile=profile)
        assert got.shape == want.shape and got.dtype == want.dtype and np.array_equal(got, want)
        zs = f32(0.1) if np.ndim(za) == 0 else np.full(M, 0.1, f32)
        for prof in (profile, "onnx-reference"):
            q = (Ab, zs, za, Bb, f32(0.2), S8(0), f32(0.5), U8(1))
            r, f = qlinear_matmul(*q, profile=prof), refquant.qlinear_matmul(*q, profile=prof)
            assert r.shape == f.shape and r.dtype == f.dtype and np.array_equal(r, f)


@pytest.mark.parametrize("profile", ["onnx", "onnxruntime-avx2"])
@pytest.mark.parametrize("xs,ws", [((1, 2, 5, 5), (0, 2, 3, 3)), ((0, 2, 5, 5), (3, 2, 3, 3))])
def test_zero_size_conv_reference_equals_fast_path(profile, xs, ws):
    import refquant
    from refquant.reference import conv_integer, qlinear_conv
    f32 = np.float32
    x, w = np.full(xs, 255, U8), np.full(ws, 127, S8)
    r, f = conv_integer(x, w, profile=profile), refquant.conv_integer(x, w, profile=profile)
    assert r.shape == f.shape == (xs[0], ws[0], 3, 3) and r.dtype == f.dtype
    q = (x, f32(0.1), U8(3), w, f32(0.2), S8(0), f32(0.5), U8(1))
    r, f = qlinear_conv(*q, profile=profile), refquant.qlinear_conv(*q, profile=profile)
    assert r.shape == f.shape == (xs[0], ws[0], 3, 3) and r.dtype == f.dtype


def test_qgemm_no_columns_with_bias():
    """QGemm with N = 0 and an empty C ((0,), (1, 0), (M, 0)) returns the empty (M, 0) output, as
    onnxruntime and LiteRT do (the size-1 test for a scalar C reshaped the empty C to ())."""
    import refquant
    A = np.ones((3, 4), np.uint8)
    B = np.ones((4, 0), np.int8)
    for C in (np.zeros(0, np.int32), np.zeros((1, 0), np.int32), np.zeros((3, 0), np.int32)):
        for ys, yz, dt in ((np.float32(0.5), np.uint8(3), np.uint8), (None, None, np.float32)):
            for f in (qgemm, refquant.qgemm):
                y = f(A, np.float32(0.1), np.uint8(0), B, np.float32(0.1), np.int8(0), C, ys, yz)
                assert y.shape == (3, 0) and y.dtype == dt
