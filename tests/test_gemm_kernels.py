"""Fast integer GEMM kernels (refquant._gemm via refquant._gemm_fast) == the numpy reference, bit
for bit, at every ISA level this machine has: scalar, avx2 (int16 vpmaddwd, ymm), avx512 (the same
on zmm), avx512vnni (vpdpbusd packed GEMM and GEMV), amx (tdpbusd/tdpbssd).  A level the machine lacks is a skip.  Levels are capped with
``refquant._cpu.set_isa_cap`` (the same cap as REFQUANT_DISABLE_ISA).

Shapes come from the kernels' tiles: AMX 16x16 tiles in 32x32 blocks with K chunks of 64, VNNI
8x32 register tiles with k-groups of 4, GEMV 64-column chunks and k-groups of 8, AVX2 6x16
with k pairs -- so M, N, K run over 1, tile-1, tile, tile+1, multiples, primes.  Operands are
C-ordered, Fortran-ordered, strided and offset views; zero points scalar / per row / per column
at their extremes; values at 0/255 and -128/127; outputs are written into views of a larger
buffer whose guard bytes must stay untouched; accumulators that overflow int32 must wrap.
"""
from __future__ import annotations

import numpy as np
import pytest

hyp = pytest.importorskip("hypothesis", reason="hypothesis drives the sweeps")
from hypothesis import given, settings, strategies as st, HealthCheck  # noqa: E402

import refquant  # noqa: E402
from refquant import reference as R  # noqa: E402

_k = pytest.importorskip("refquant._gemm", reason="compiled kernels not built (pip install -e .)")
from refquant import _cpu, _gemm_fast as F  # noqa: E402
from refquant.profile import get_profile  # noqa: E402
from _same_bits import run_in_threads, same_as_reference  # noqa: E402

from _isa_levels import LEVELS as ISAS, available as _available_levels, use as _use_level  # noqa: E402

AVAILABLE = _available_levels()
ISA_PARAMS = [pytest.param(i, marks=pytest.mark.skipif(i not in AVAILABLE,
                                                       reason=f"{i} not compiled/supported here"))
              for i in ISAS]
ONNX = get_profile("onnx")
DIMS = [1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 32, 33, 47, 63, 64, 65, 97, 128, 129]
KDIMS = [1, 2, 3, 4, 5, 7, 8, 9, 63, 64, 65, 127, 128, 129, 191, 256, 257]


@pytest.fixture
def isa_cap(request):
    _use_level(request.param)
    yield request.param
    _use_level(None)


@pytest.fixture
def no_vnni_plain():
    """The GEMV's own tests: shapes that the VNNI GEMM on a plain B in place would otherwise take."""
    _k.set_vnni_plain(False)
    yield
    _k.set_vnni_plain(None)


def _rand(rng, dt, shape, extreme=0.2):
    lo, hi = (0, 255) if dt == np.uint8 else (-128, 127)
    a = rng.integers(lo, hi + 1, shape).astype(dt)
    if extreme:
        m = rng.random(shape) < extreme
        a[m] = rng.choice(np.array([lo, hi], dtype=dt), size=int(m.sum()))
    return a


def _layout(rng, a, kind):
    """The same values as a C / Fortran / strided / offset view."""
    if kind == "C":
        return np.ascontiguousarray(a)
    if kind == "F":
        return np.asfortranarray(a)
    if kind == "strided":
        big = np.zeros((a.shape[0] * 2, a.shape[1] * 3), a.dtype)
        big[::2, ::3] = a
        return big[::2, ::3]
    big = np.zeros((a.shape[0] + 3, a.shape[1] + 5), a.dtype)   # offset view
    big[2:2 + a.shape[0], 1:1 + a.shape[1]] = a
    return big[2:2 + a.shape[0], 1:1 + a.shape[1]]


def _check(got, want, what):
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.dtype, want.shape)
    bad = np.argwhere(got != want)
    assert bad.size == 0, (f"{what}: {len(bad)} mismatches, first at {tuple(bad[0])}: "
                           f"got {got[tuple(bad[0])]}, want {want[tuple(bad[0])]}")


# ------------------------------------------------------------------ hypothesis sweeps, every ISA

@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(M=st.sampled_from(DIMS), N=st.sampled_from(DIMS), K=st.sampled_from(KDIMS),
       at=st.sampled_from(["u8", "s8"]), bt=st.sampled_from(["u8", "s8"]),
       la=st.sampled_from(["C", "F", "strided", "offset"]), lb=st.sampled_from(["C", "F", "strided", "offset"]),
       zpa=st.sampled_from(["none", "scalar", "row", "extreme"]), zpb=st.sampled_from(["none", "scalar", "col", "extreme"]),
       seed=st.integers(0, 2 ** 31 - 1))
def test_matmul_integer_sweep(isa_cap, M, N, K, at, bt, la, lb, zpa, zpb, seed):
    rng = np.random.default_rng(seed)
    adt = np.uint8 if at == "u8" else np.int8
    bdt = np.uint8 if bt == "u8" else np.int8
    A = _layout(rng, _rand(rng, adt, (M, K)), la)
    B = _layout(rng, _rand(rng, bdt, (K, N)), lb)

    def zp(kind, dt, n):
        lo, hi = (0, 255) if dt == np.uint8 else (-128, 127)
        if kind == "none":
            return None
        if kind == "extreme":
            return dt(rng.choice([lo, hi]))
        if kind == "scalar":
            return dt(rng.integers(lo, hi + 1))
        return rng.integers(lo, hi + 1, n).astype(dt)
    za, zb = zp(zpa, adt, M), zp(zpb, bdt, N)
    got = F.matmul_integer(A, B, za, zb, profile=ONNX)
    assert got is not None
    want = R.matmul_integer(A, B, za, zb)
    _check(got[0], want, f"matmul_integer {at}{bt} M={M} N={N} K={K} isa={isa_cap} kernel={got[1]}")


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(M=st.sampled_from(DIMS), N=st.sampled_from(DIMS), K=st.sampled_from(KDIMS),
       at=st.sampled_from(["u8", "s8"]), bt=st.sampled_from(["u8", "s8"]), per_col=st.booleans(),
       out=st.sampled_from(["u8", "s8"]), tie=st.booleans(), seed=st.integers(0, 2 ** 31 - 1))
def test_qlinear_matmul_sweep(isa_cap, M, N, K, at, bt, per_col, out, tie, seed):
    rng = np.random.default_rng(seed)
    adt = np.uint8 if at == "u8" else np.int8
    bdt = np.uint8 if bt == "u8" else np.int8
    odt = np.uint8 if out == "u8" else np.int8
    A = _rand(rng, adt, (M, K))
    B = _rand(rng, bdt, (K, N))
    a_s = np.float32(0.5 if tie else rng.uniform(1e-3, 0.1))
    b_s = (rng.uniform(1e-3, 0.05, N).astype(np.float32) if per_col else np.float32(rng.uniform(1e-3, 0.05)))
    if tie:   # multiplier 0.5: many outputs land exactly on .5
        b_s = np.ones(N, np.float32) if per_col else np.float32(1.0)
    y_s = np.float32(1.0 if tie else rng.uniform(0.01, 2.0))
    lo, hi = (0, 255) if adt == np.uint8 else (-128, 127)
    za = adt(rng.integers(lo, hi + 1))
    blo, bhi = (0, 255) if bdt == np.uint8 else (-128, 127)
    zb = rng.integers(blo, bhi + 1, N).astype(bdt) if per_col else bdt(rng.integers(blo, bhi + 1))
    olo, ohi = (0, 255) if odt == np.uint8 else (-128, 127)
    yz = odt(rng.integers(olo, ohi + 1))
    args = (A, a_s, za, B, b_s, zb, y_s, yz)
    for prof in ("onnx", "onnxruntime"):
        p = get_profile(prof)
        got = F.qlinear_matmul(*args, profile=p)
        assert got is not None
        _check(got[0], R.qlinear_matmul(*args, profile=prof), f"qlinear_matmul {prof} isa={isa_cap} {got[1]}")


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(M=st.sampled_from(DIMS), N=st.sampled_from(DIMS), K=st.sampled_from(KDIMS),
       ta=st.booleans(), tb=st.booleans(), bias=st.sampled_from(["none", "scalar", "N", "1N", "M1", "MN"]),
       quant=st.booleans(), signed=st.booleans(), seed=st.integers(0, 2 ** 31 - 1))
def test_qgemm_sweep(isa_cap, M, N, K, ta, tb, bias, quant, signed, seed):
    rng = np.random.default_rng(seed)
    adt = np.int8 if signed else np.uint8
    A = _rand(rng, adt, (K, M) if ta else (M, K))
    B = _rand(rng, np.int8, (N, K) if tb else (K, N))
    C = {"none": None, "scalar": np.int32(rng.integers(-2 ** 31, 2 ** 31)),
         "N": rng.integers(-2 ** 31, 2 ** 31, N).astype(np.int32),
         "1N": rng.integers(-5000, 5000, (1, N)).astype(np.int32),
         "M1": rng.integers(-5000, 5000, (M, 1)).astype(np.int32),
         "MN": rng.integers(-5000, 5000, (M, N)).astype(np.int32)}[bias]
    lo, hi = (0, 255) if adt == np.uint8 else (-128, 127)
    args = (A, np.float32(0.03), adt(rng.integers(lo, hi + 1)), B, rng.uniform(0.001, 0.01, N).astype(np.float32),
            rng.integers(-128, 128, N).astype(np.int8), C)
    kw = dict(alpha=float(rng.choice([1.0, 0.5, 2.5])), transA=int(ta), transB=int(tb))
    if quant:
        extra = (np.float32(0.7), adt(rng.integers(lo, hi + 1)))
    else:
        extra = (None, None)
    got = F.qgemm(*args, *extra, profile=ONNX, **kw)
    assert got is not None
    want = R.qgemm(*args, *extra, **kw)
    _check(got[0].view(np.uint32) if got[0].dtype == np.float32 else got[0],
           want.view(np.uint32) if want.dtype == np.float32 else want, f"qgemm isa={isa_cap} {got[1]}")


# ------------------------------------------------------------------ targeted cases

@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
def test_int32_overflow_wraps(isa_cap):
    """K large enough that the exact sum leaves int32: every kernel must wrap like the reference."""
    K = 70000
    A = np.full((3, K), 255, np.uint8)
    B = np.full((K, 34), 127, np.int8)
    B[::7, 1] = -128
    exact = (255 * B.astype(np.int64)).sum(0)
    assert exact.max() > 2 ** 31
    for za, zb in ((None, None), (np.uint8(0), np.int8(-128))):
        got = F.matmul_integer(A, B, za, zb, profile=ONNX)[0]
        _check(got, R.matmul_integer(A, B, za, zb), f"overflow isa={isa_cap}")
    # whole 64-column chunks too (the GEMV's register bands, whole and half chunks: 3 and 6 rows)
    B2 = np.full((K, 100), 127, np.int8)
    B2[::5, 70] = -128
    for M in (3, 6):
        A2 = np.full((M, K), 255, np.uint8)
        for za in (None, np.uint8(9)):
            got = F.matmul_integer(A2, B2, za, None, profile=ONNX)
            _check(got[0], R.matmul_integer(A2, B2, za, None), f"overflow M={M} za={za} isa={isa_cap} {got[1]}")


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
@pytest.mark.parametrize("odt", [np.int32, np.uint8, np.int8])
def test_guard_bytes(isa_cap, odt):
    """Kernels write exactly the output view: a sentinel frame around it stays untouched."""
    rng = np.random.default_rng(1)
    for M, N, K in ((1, 1, 1), (5, 17, 3), (33, 47, 65), (16, 32, 64), (2, 100, 300)):
        A = _rand(rng, np.uint8, (M, K))
        B = _rand(rng, np.int8, (K, N))
        big = np.full((M + 4, N + 40), 0x5A if odt != np.int32 else 0x5A5A5A5A, odt)
        view = big[2:2 + M, 16:16 + N]
        if odt == np.int32:
            _k.gemm(A, B, np.array([7], np.int32), np.array([0], np.int32), view)
            want = R.matmul_integer(A, B, np.uint8(7), np.int8(0))
        else:
            _k.gemm(A, B, np.array([7], np.int32), np.array([0], np.int32), view,
                    mult=np.float32([0.01]), y_zp=3)
            want = R.requantize(R.matmul_integer(A, B, np.uint8(7), np.int8(0)), np.float32(0.01), odt(3),
                                output_dtype=odt)
        _check(view.copy(), want, f"view M={M} N={N} K={K}")
        frame = big.copy()
        frame[2:2 + M, 16:16 + N] = frame[0, 0]
        assert (frame == frame[0, 0]).all(), f"guard bytes overwritten (M={M} N={N} K={K} isa={isa_cap})"


def test_threads_same_bits():
    rng = np.random.default_rng(2)
    for M, N, K in ((1, 300, 4096), (37, 129, 200), (130, 70, 129), (256, 256, 256)):
        A = _rand(rng, np.uint8, (M, K))
        B = _rand(rng, np.int8, (K, N))
        outs = []
        for t in (1, 2, 3):
            refquant.set_num_threads(t)
            outs.append(F.matmul_integer(A, B, np.uint8(9), np.int8(-1), profile=ONNX)[0])
        refquant.set_num_threads(None)
        for o in outs[1:]:
            _check(o, outs[0], f"threads M={M}")


def test_pool_runs_every_chunk_once():
    """The kernels' worker pool (rq_pool.h) splits the chunks into one range per participant
    and lets each take what is left of the others' ranges: every chunk runs exactly once for
    any chunk count, any thread count (more threads than cores, more than its 16 ranges, so
    late workers and stealing both happen)."""
    from refquant import _cpu
    for nt in (1, 2, 3, 5, 17, 40):
        for n in (0, 1, 2, 3, 5, 16, 17, 31, 100, 1001):
            for _ in range(3):
                counts = _cpu._pool_counts(n, nt)
                assert counts == [1] * n, f"nchunks={n} threads={nt}: {counts}"


def test_amx_task_orders_same_bits():
    """A packed B runs as tasks of (row chunk, column block): with threads, a B within half the
    L2 is taken row chunks outer, a larger one split into a multiple of the thread count of
    column blocks.  Both orders, with 1, 2 and 3 threads, give the reference's bits: int32
    output straight into C, uint8 output through the strips, per-column zero points."""
    rng = np.random.default_rng(12)
    try:
        for M, N, K in ((128, 768, 768), (96, 2496, 704), (32, 3072, 512), (70, 1100, 1000)):
            A = _rand(rng, np.uint8, (M, K))
            B = _rand(rng, np.int8, (K, N))
            pw = refquant.pack_weights(B)
            zb = _rand(rng, np.int8, (N,), extreme=0)
            want = R.matmul_integer(A, B, np.uint8(9), zb)
            wq = R.qlinear_matmul(A, np.float32(0.02), np.uint8(9), B, np.float32(0.01), np.int8(0),
                                  np.float32(0.4), np.uint8(100))
            for nt in (1, 2, 3):
                refquant.set_num_threads(nt)
                what = f"M={M} N={N} K={K} t={nt}"
                _check(refquant.matmul_integer(A, pw, np.uint8(9), zb), want, "mmi " + what)
                _check(refquant.qlinear_matmul(A, np.float32(0.02), np.uint8(9), pw, np.float32(0.01), np.int8(0),
                                               np.float32(0.4), np.uint8(100)), wq, "qlinear " + what)
    finally:
        refquant.set_num_threads(None)


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
def test_packed_weights(isa_cap):
    rng = np.random.default_rng(3)
    for (M, N, K), bdt in (((40, 70, 130), np.int8), ((1, 200, 64), np.uint8), ((64, 64, 64), np.int8)):
        A = _rand(rng, np.uint8, (M, K))
        B = _rand(rng, bdt, (K, N))
        pw = refquant.pack_weights(B)
        assert pw.info["layout"] == "vnni4_gemm"
        zb = bdt(3)
        _check(refquant.matmul_integer(A, pw, np.uint8(5), zb), R.matmul_integer(A, B, np.uint8(5), zb), "packed")
        assert refquant.last_path()["path"] != "reference"
        args = (A, np.float32(0.02), np.uint8(128), pw, np.float32(0.01), zb, np.float32(0.3), np.uint8(7))
        _check(refquant.qlinear_matmul(*args), R.qlinear_matmul(*args[:3], B, *args[4:]), "packed qlinear")
        # the reference accepts the packed object too
        _check(R.matmul_integer(A, pw, np.uint8(5), zb), R.matmul_integer(A, B, np.uint8(5), zb), "ref packed")


def _check_threads(A, B, za, zb, what):
    """matmul_integer through the kernels at 1 and 2 threads == the reference."""
    want = R.matmul_integer(A, B, za, zb)
    for t in (1, 2):
        refquant.set_num_threads(t)
        try:
            got = F.matmul_integer(A, B, za, zb, profile=ONNX)
        finally:
            refquant.set_num_threads(None)
        _check(got[0], want, f"{what} t={t} {got[1]}")


def _assert_gemv_path(A, B, za, zb, what):
    """At 1 thread, matmul_integer runs the GEMV kernel."""
    refquant.set_num_threads(1)
    try:
        assert F.matmul_integer(A, B, za, zb, profile=ONNX)[1] == "gemv_vnni4__avx512vnni", what
    finally:
        refquant.set_num_threads(None)


def test_amx_blocked_b_packing():
    """Plain B large enough to be packed just in time, column block by column block (AMX path:
    packed B > 768 KiB): several blocks, a partial last block, every dtype pair, per-column zero
    points and multipliers, bias, and 1 / 2 threads give the reference's bits."""
    rng = np.random.default_rng(11)
    p = get_profile("onnxruntime")
    for (M, N, K) in ((37, 900, 1001), (32, 1100, 768)):
        for at, bt in ((np.uint8, np.int8), (np.int8, np.int8), (np.uint8, np.uint8), (np.int8, np.uint8)):
            A = _rand(rng, at, (M, K))
            B = _rand(rng, bt, (K, N))
            za, zb = at(7), _rand(rng, bt, (N,), extreme=0)
            _check_threads(A, B, za, zb, f"blocked B {at.__name__}{bt.__name__} M={M} N={N} K={K}")
        bs = (rng.random(N).astype(np.float32) + 0.5) * np.float32(0.01)
        args = (A, np.float32(0.02), at(3), B, bs, zb, np.float32(0.7), np.int8(-5))
        got = F.qlinear_matmul(*args, profile=p)
        _check(got[0], R.qlinear_matmul(*args, profile=p), f"blocked B qlinear {got[1]}")


def test_matmul_integer_lean_path_same_semantics():
    """The lean 2-D / scalar-zero-point path and the generic path agree with the reference
    (bits, or the reference's exception type) for every zero-point form and operand kind."""
    rng = np.random.default_rng(12)
    for at, bt in ((np.uint8, np.int8), (np.int8, np.uint8), (np.uint8, np.uint8), (np.int8, np.int8)):
        A = _rand(rng, at, (21, 70))
        B = _rand(rng, bt, (70, 33))
        for Bx in (B, refquant.pack_weights(B), np.asfortranarray(B), B[:, ::-1]):
            Bp = Bx.original if hasattr(Bx, "original") else Bx
            for za, zb in ((None, None), (at(5), bt(3)), (5, 3), (np.array(5, at), np.array(3, bt)),
                           (bt(5), at(3)), (np.int32(5), None), (at(0), bt(0))):
                try:
                    want = R.matmul_integer(A, Bp, za, zb)
                except Exception as e:  # noqa: BLE001
                    with pytest.raises(type(e)):
                        refquant.matmul_integer(A, Bx, za, zb)
                    continue
                got = refquant.matmul_integer(A, Bx, za, zb)
                _check(got, want, f"lean {at.__name__}{bt.__name__} za={za!r} zb={zb!r}")
    # shape mismatch and an opset still raise the reference's errors
    with pytest.raises(ValueError):
        refquant.matmul_integer(_rand(rng, np.uint8, (4, 5)), _rand(rng, np.int8, (6, 7)))
    # the compiled entry the top-level call tries first (no keywords: the default profile) takes
    # exactly the common call and declines the rest (None), which the glue / reference handle
    A, B = _rand(rng, np.uint8, (9, 40)), _rand(rng, np.int8, (40, 12))
    lean = _k.matmul_integer_lean
    for args in ((A, B), (A, B, np.uint8(7)), (A, B, None, np.int8(-2)), (np.asfortranarray(A), B[:, ::-1])):
        got = lean(*args)
        assert got is not None
        _check(got[0], R.matmul_integer(*args), "compiled entry")
        _check(refquant.matmul_integer(*args), R.matmul_integer(*args), "top level")
        assert refquant.last_path() == {"op": "MatMulInteger", "path": got[1]}
    for args in ((A, B, 7), (A, B, 0, -128), (A, B, 255, 127)):      # Python ints in range: taken
        got = lean(*args)
        assert got is not None, args
        _check(got[0], R.matmul_integer(*args), f"compiled entry {args[2:]}")
    for args in ((A, B, 256), (A, B, -1), (A, B, None, 128), (A, B, True), (A, B, 7.0), (A, B, np.int8(7)), (A, B, np.array(7, np.uint8)), (A, B, None, np.uint8(1)),
                 (A[None, :, ::2], B[::2]), (A[None], B[None]), (A.astype(np.int16), B), (A, B[:-1]), (A[:0], B), (A, refquant.pack_weights(B)),
                 (A.tolist(), B)):
        assert lean(*args) is None, [type(a) for a in args]
    assert refquant.matmul_integer(A, B, profile="onnxruntime-avx2") is not None   # keywords: usual dispatch
    # the compiled entries follow the registry: a profile registered under the default's name
    # (here one whose MatMulInteger saturates int16 pairs) is honoured by the very next call
    import dataclasses
    from refquant.profile import register_profile
    onnx = get_profile("onnx")
    As = np.full((3, 64), 255, np.uint8)
    Bs = np.full((64, 5), 127, np.int8)
    plain = refquant.matmul_integer(As, Bs)
    sat = dataclasses.replace(onnx, int16_pair_saturation=True)
    try:
        register_profile(sat)
        got = refquant.matmul_integer(As, Bs)
        _check(got, R.matmul_integer(As, Bs, profile=sat), "re-registered default profile")
        assert not np.array_equal(got, plain)
    finally:
        register_profile(onnx)
    _check(refquant.matmul_integer(As, Bs), plain, "default profile restored")
    # QLinearMatMul's compiled entry: the multiplier formed as the glue's lean path forms it
    # (the same result or the same decline over scales from 1e-9 to 1e3), declines the rest
    qlean, prof = _k.qlinear_matmul_lean, get_profile("onnx")
    for _ in range(300):
        s = [np.float32(10 ** rng.uniform(-9, 3)) for _ in range(3)]
        args = (A, s[0], np.uint8(3), B, s[1], np.int8(1), s[2], np.int8(-4) if s[0] > 1e-3 else None)
        got, glue = qlean(*args), F._qlinear_matmul_lean(*args, profile=prof)
        assert (got is None) == (glue is None), s
        if got is not None:
            _check(got[0], glue[0], f"compiled qlinear entry {s}")
            _check(refquant.qlinear_matmul(*args), R.qlinear_matmul(*args), f"top-level qlinear {s}")
    base = (A, np.float32(0.02), np.uint8(3), B, np.float32(0.004), np.int8(1), np.float32(0.5), np.uint8(9))
    for i, bad in ((1, 1e-50), (1, 1e39), (1, -0.02), (1, float("nan")), (2, 256), (2, True), (5, 128),
                   (7, -1), (1, np.float64(0.02)), (1, np.float32(0)), (1, np.float32(np.inf)), (1, np.float32(np.nan)),
                   (6, np.float32(-1)), (2, 3.0), (7, np.int16(9)), (5, np.uint8(1)), (0, A[None, :, ::2]), (3, B[:-1])):
        args = base[:i] + (bad,) + base[i + 1:]
        assert qlean(*args) is None, (i, bad)


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
def test_int32_direct_blocks(isa_cap):
    """int32 output with at most a per-column correction (int8 B with zero point 0): the AMX path
    stores whole 32x32 blocks straight into the output with -colfix folded into the accumulator
    start; edge blocks, several K passes (K > 1024), int8 / uint8 A, packed or plain B."""
    rng = np.random.default_rng(13)
    for (M, N, K) in ((64, 96, 1100), (48, 80, 2048), (33, 50, 1030), (32, 32, 64), (96, 64, 200),
                      (40, 48, 4200)):
        for at in (np.uint8, np.int8):
            A = _rand(rng, at, (M, K))
            B = _rand(rng, np.int8, (K, N))
            for za in (at(0), at(5), at(255 if at == np.uint8 else -128)):
                want = R.matmul_integer(A, B, za, np.int8(0))
                got = F.matmul_integer(A, B, za, np.int8(0), profile=ONNX)
                _check(got[0], want, f"direct {at.__name__} M={M} N={N} K={K} za={za} {got[1]}")
                got = refquant.matmul_integer(A, refquant.pack_weights(B), za, np.int8(0))
                _check(got, want, f"direct packed {at.__name__} M={M} N={N} K={K} za={za}")
    # several K passes (K > 4096) with the strip path: uint8 B (row corrections)
    A = _rand(rng, np.uint8, (40, 4200))
    B = _rand(rng, np.uint8, (4200, 48))
    _check(F.matmul_integer(A, B, np.uint8(3), np.uint8(200), profile=ONNX)[0],
           R.matmul_integer(A, B, np.uint8(3), np.uint8(200)), "K passes u8u8")


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
def test_k_passes_mid_k(isa_cap):
    """1024 < K <= 2048 (16 to 32 chunks of 64): the AMX block path runs K in passes of about 8
    chunks, partial sums kept in C (int32 outputs, -colfix folded into the first pass only) or
    in the strip (row corrections, 8-bit outputs).  K at the ends of that range and just past
    them, uneven passes, edge blocks, packed and plain B (more than 256 rows: the block path), 1
    and 2 threads: the reference's bits."""
    rng = np.random.default_rng(41)
    try:
        for (M, N, K) in ((70, 100, 1000), (33, 64, 1024), (40, 47, 1025), (64, 96, 1300), (48, 80, 2048),
                          (17, 33, 2049), (300, 40, 1500)):
            A = _rand(rng, np.uint8, (M, K))
            B = _rand(rng, np.int8, (K, N))
            pw = refquant.pack_weights(B)
            for nt in (1, 2):
                refquant.set_num_threads(nt)
                for za, zb in ((np.uint8(0), np.int8(0)), (np.uint8(200), np.int8(0)), (np.uint8(9), np.int8(-3))):
                    want = R.matmul_integer(A, B, za, zb)
                    _check(refquant.matmul_integer(A, pw, za, zb), want, f"packed M={M} N={N} K={K} nt={nt} {za} {zb}")
                    _check(refquant.matmul_integer(A, B, za, zb), want, f"plain M={M} N={N} K={K} nt={nt} {za} {zb}")
                args = (A, np.float32(0.02), np.uint8(117), pw, np.float32(0.0005), np.int8(0), np.float32(0.9),
                        np.uint8(100))
                _check(refquant.qlinear_matmul(*args), R.qlinear_matmul(*args[:3], B, *args[4:]),
                       f"qlinear M={M} N={N} K={K} nt={nt}")
    finally:
        refquant.set_num_threads(None)


def _offset_rows(rng, a, off, pad):
    """The values of a as a view whose first row starts `off` bytes past a 64-byte boundary and
    whose rows are len + pad bytes apart."""
    M, K = a.shape
    buf = np.zeros(M * (K + pad) + 128, a.dtype)
    s = (-buf.ctypes.data) % 64 + off
    v = buf[s:s + M * (K + pad)].reshape(M, K + pad)[:, :K]
    v[...] = a
    return v


def test_amx_lazy_a_strips():
    """A whose rows are not whole cache lines (offset start, K not a multiple of 64, odd row
    stride): the AMX tasks copy it 32 rows at a time into a tile buffer (rq_amx_a.lazy).  Partial
    last strips, K tails, several K passes (K > 4096), just-in-time column blocks (large plain
    B), row zero points (row sums), plain and packed B, 1 and 2 threads: the reference's bits."""
    rng = np.random.default_rng(17)
    cases = ((1, 40, 100, 16, 0), (5, 33, 64, 1, 0), (17, 70, 65, 32, 3), (33, 64, 130, 48, 1),
             (100, 96, 700, 16, 0), (64, 50, 4200, 8, 5), (40, 2100, 520, 16, 0))
    for (M, N, K, off, pad) in cases:
        for at, bt in ((np.uint8, np.int8), (np.int8, np.uint8)):
            A = _offset_rows(rng, _rand(rng, at, (M, K)), off, pad)
            assert A.ctypes.data % 64 == off
            B = _rand(rng, bt, (K, N))
            for za, zb in ((at(0), bt(0)), (at(7), bt(-3 if bt == np.int8 else 200))):
                _check_threads(A, B, za, zb, f"lazy A {at.__name__}{bt.__name__} M={M} N={N} K={K} off={off}")
                want = R.matmul_integer(A, B, za, zb)
                got = refquant.matmul_integer(A, refquant.pack_weights(B), za, zb)
                _check(got, want, f"lazy A packed {at.__name__}{bt.__name__} M={M} N={N} K={K}")
    A = _offset_rows(rng, _rand(rng, np.uint8, (45, 200)), 16, 0)
    B = _rand(rng, np.int8, (200, 70))
    args = (A, np.float32(0.02), np.uint8(3), B, np.float32(0.01), np.int8(0), np.float32(0.7), np.int8(-5))
    p = get_profile("onnxruntime")
    got = F.qlinear_matmul(*args, profile=p)
    _check(got[0], R.qlinear_matmul(*args, profile=p), f"lazy A qlinear {got[1]}")


def test_packed_weights_are_a_copy():
    B = np.arange(12, dtype=np.int8).reshape(3, 4)
    pw = refquant.pack_weights(B)
    B[:] = 0
    A = np.ones((2, 3), np.uint8)
    _check(refquant.matmul_integer(A, pw), R.matmul_integer(A, np.arange(12, dtype=np.int8).reshape(3, 4)), "copy")
    with pytest.raises(ValueError):
        pw.original[0, 0] = 1


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
def test_pair_saturation_profile(isa_cap):
    """onnxruntime-avx2 (int16_pair_saturation): u8 x s8 pairs saturate like vpmaddubsw
    (microsoft/onnxruntime#16105: 210*-81 + 198*-80 = -32850 -> -32768)."""
    p = get_profile("onnxruntime-avx2")
    rng = np.random.default_rng(4)
    A = np.array([[210, 198, 234]], np.uint8)
    W = np.array([[-81], [-80], [127]], np.int8)
    got = F.matmul_integer(A, W, None, None, profile=p)[0]
    _check(got, R.matmul_integer(A, W, profile="onnxruntime-avx2"), "16105")
    assert got[0, 0] == -32768 + 234 * 127
    for at, bt in ((np.uint8, np.int8), (np.int8, np.uint8), (np.uint8, np.uint8)):
        A = _rand(rng, at, (9, 33), extreme=0.6)
        B = _rand(rng, bt, (33, 21), extreme=0.6)
        za, zb = at(3), bt(2)
        _check(F.matmul_integer(A, B, za, zb, profile=p)[0],
               R.matmul_integer(A, B, za, zb, profile="onnxruntime-avx2"), f"sat16 {at} {bt}")


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(M=st.sampled_from(DIMS), N=st.sampled_from(DIMS), K=st.sampled_from(KDIMS), a_u8=st.booleans(),
       zpa=st.sampled_from(["none", "scalar", "row"]), zpb=st.sampled_from(["none", "scalar", "col"]),
       out=st.sampled_from(["s32", "u8"]), layout=st.sampled_from(["C", "F", "strided"]),
       seed=st.integers(0, 2 ** 31 - 1))
def test_pair_saturation_sweep(isa_cap, M, N, K, a_u8, zpa, zpb, out, layout, seed):
    """int16 pair saturation (onnxruntime-avx2): the scalar kernel and the vpmaddubsw kernels
    (AVX2; AVX-512 at that level, session 11; AVX-512 VNNI's vpdpwssd from that level on,
    session 12)."""
    p = get_profile("onnxruntime-avx2")
    rng = np.random.default_rng(seed)
    adt, bdt = (np.uint8, np.int8) if a_u8 else (np.int8, np.uint8)
    A = _rand(rng, adt, (M, K), extreme=0.7)
    B = _rand(rng, bdt, (K, N), extreme=0.7)
    if layout == "F":            # column-major A and B (the kernels' strided row copies)
        A, B = np.asfortranarray(A), np.asfortranarray(B)
    elif layout == "strided":    # every other column of wider arrays
        A = np.repeat(A, 2, axis=1)[:, ::2]
        B = np.repeat(B, 2, axis=1)[:, ::2]

    def zp(kind, dt, n):
        lo, hi = (0, 255) if dt == np.uint8 else (-128, 127)
        return None if kind == "none" else dt(rng.integers(lo, hi + 1)) if kind == "scalar" else \
            rng.integers(lo, hi + 1, n).astype(dt)
    za, zb = zp(zpa, adt, M), zp(zpb, bdt, N)
    if out == "s32":
        got = F.matmul_integer(A, B, za, zb, profile=p)
        _check(got[0], R.matmul_integer(A, B, za, zb, profile=p), f"sat16 isa={isa_cap} {got[1]}")
        want = {"scalar": "__scalar", "avx2": "__avx2", "avxvnni": "__avx2", "avx512": "__avx512"}.get(isa_cap, "__avx512vnni")
        assert got[1].endswith(want) and "sat16" in got[1], (isa_cap, got[1])
    elif za is None or np.ndim(za) == 0:
        args = (A, np.float32(0.05), za, B, np.float32(0.01) if np.ndim(zb) == 0 else
                np.full(N, 0.01, np.float32), zb, np.float32(0.7), np.uint8(128))
        got = F.qlinear_matmul(*args, profile=p)
        _check(got[0], R.qlinear_matmul(*args, profile=p), f"sat16 qlinear isa={isa_cap} {got[1]}")


def test_batched_and_1d_shapes():
    rng = np.random.default_rng(5)
    cases = [((3, 5, 17), (17, 9)), ((2, 1, 4, 8), (3, 8, 5)), ((17,), (17, 4)), ((4, 17), (17,)),
             ((17,), (17,)), ((2, 3, 7), (2, 7, 6)), ((0, 5), (5, 3)), ((4, 0), (0, 3))]
    for sa, sb in cases:
        A = _rand(rng, np.uint8, sa)
        B = _rand(rng, np.int8, sb)
        want = R.matmul_integer(A, B, np.uint8(3), np.int8(1))
        got = refquant.matmul_integer(A, B, np.uint8(3), np.int8(1))
        _check(np.asarray(got), np.asarray(want), f"shapes {sa} {sb}")


def test_scale_types_generic_path():
    """Python-float / float64 / float16 scales take the generic (form_multiplier) path: same bits."""
    rng = np.random.default_rng(7)
    A = _rand(rng, np.uint8, (9, 70))
    B = _rand(rng, np.int8, (70, 33))
    for a_s, b_s, y_s in ((0.02, 0.005, 0.3), (np.float64(0.02), np.full(33, 0.004), np.float64(0.7)),
                          (np.float16(0.02), np.float16(0.01), np.float16(0.5)),
                          (np.float32(0.5), np.float32(1.0), np.float32(1.0))):
        args = (A, a_s, np.uint8(3), B, b_s, np.int8(0), y_s, np.uint8(128))
        for prof in ("onnx", "onnxruntime", get_profile("onnx").replace(rq_multiplier="fp32_reciprocal")):
            got = refquant.qlinear_matmul(*args, profile=prof)
            _check(got, R.qlinear_matmul(*args, profile=prof), f"scales {type(a_s)} {prof}")


def test_declines_reach_reference():
    """Calls no kernel covers go to the reference (same bits or the reference's error)."""
    A = np.ones((2, 3), np.uint8)
    B = np.ones((3, 4), np.int8)
    # onnx-reference's epilogue (float64, zero point before rounding) is not a kernel's: a 1-D B
    # (matmul's vector promotion) runs the reference whole; a 2-D or batched B the reference's
    # epilogue on the kernels' int32 sums
    q = (np.float32(1), np.int8(0), np.float32(1), np.uint8(0))
    refquant.qlinear_matmul(A, np.float32(1), np.uint8(0), B[:, 0], *q, profile="onnx-reference")
    assert refquant.last_path()["path"] == "reference"
    for a_, b_ in ((A, B), (A[None], B[None])):
        refquant.qlinear_matmul(a_, np.float32(1), np.uint8(0), b_, np.float32(1), np.int8(0), np.float32(1),
                                np.uint8(0), profile="onnx-reference")
        assert refquant.last_path()["path"].endswith("+reference_epilogue")
    with pytest.raises(ValueError):
        refquant.matmul_integer(A, np.ones((4, 4), np.int8))
    with pytest.raises(ValueError):
        refquant.matmul_integer(A, B, np.array([1, 2, 3], np.uint8))   # per-row zp of the wrong size
    with pytest.raises(TypeError):
        refquant.matmul_integer(A.astype(np.int16), B)


def test_dispatch_picks_best_and_demotes():
    names = {}
    for cap in AVAILABLE:
        _use_level(cap)
        try:
            A = np.ones((64, 64), np.uint8)
            B = np.ones((64, 64), np.int8)
            names[cap] = _k.gemm(A, B, np.zeros(1, np.int32), np.zeros(1, np.int32),
                                 np.empty((64, 64), np.int32), choose_only=True)
        finally:
            _use_level(None)
    expect = {"scalar": "gemm_s32__scalar", "avx2": "gemm_i16__avx2", "avxvnni": "gemm_vnni4__avxvnni",
              "avx512": "gemm_i16__avx512",
              "avx512vnni": "gemm_vnni4_plain__avx512vnni", "amx": "gemm_tdp__amx"}
    for cap, n in names.items():
        assert n == expect[cap], (cap, n)
    best = AVAILABLE[-1]
    assert F.kernel_names()["MatMulInteger"] in (expect[best], "gemm_vnni4__avx512vnni")


def _vnni_plain_cases(rng):
    """Shapes and layouts of the VNNI GEMM that reads a plain B in place: rows 2 to 160 in blocks
    of 6 (and the first block's up to 5 with the row of ones), column chunks of 64 starting where B's
    rows start past a cache line (the last chunk's columns merged into the first chunk's free
    lanes where they fit: N = 128, 192, 256), K not a multiple of 4, uint8 B (flipped), int8 /
    strided A."""
    for M in (2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17, 23, 35, 64, 112, 128, 160):
        for N, K in ((1, 5), (63, 64), (64, 3), (65, 7), (128, 9), (130, 66), (190, 40), (192, 64),
                     (200, 129), (256, 13), (257, 31)):
            yield M, N, K, int(rng.integers(0, 64))


@pytest.mark.skipif("avx512vnni" not in AVAILABLE, reason="avx512vnni not compiled/supported here")
def test_vnni_plain_b_in_place():
    rng = np.random.default_rng(2727)
    _use_level("avx512vnni")
    try:
        for t in (1, 2):
            refquant.set_num_threads(t)
            for M, N, K, off in _vnni_plain_cases(rng):
                at, bt = (np.uint8, np.int8) if rng.random() < 0.5 else (
                    rng.choice([np.uint8, np.int8]), rng.choice([np.uint8, np.int8]))
                A = _rand(rng, at, (M, K))
                if rng.random() < 0.3:
                    A = _layout(rng, A, "strided")
                rs = -(-(N + off) // 64) * 64 + (64 if rng.random() < 0.5 else 0)   # whole lines
                buf = np.zeros(K * rs + 128, np.uint8)
                base = (-buf.ctypes.data) % 64 + off
                Bb = buf[base:base + K * rs].view(bt).reshape(K, rs)
                Bb[...] = _rand(rng, bt, (K, rs))
                B = Bb[:, :N]
                zpa = _rand(rng, at, ()) if rng.random() < 0.8 else at(0)
                zpb = _rand(rng, bt, (N,)) if rng.random() < 0.3 else (
                    _rand(rng, bt, ()) if rng.random() < 0.5 else bt(0))
                y = refquant.matmul_integer(A, B, zpa, zpb)
                path = refquant.last_path()["path"]
                assert path == "gemm_vnni4_plain__avx512vnni", (M, N, K, t, path)
                np.testing.assert_array_equal(y, R.matmul_integer(A, B, zpa, zpb), err_msg=str((M, N, K, off, t)))
                if np.ndim(zpb) == 0:
                    ys = np.float32(rng.uniform(0.5, 40.0)) * np.float32(K)
                    for yz in (np.uint8(rng.integers(0, 256)), np.int8(rng.integers(-128, 128))):
                        q = refquant.qlinear_matmul(A, np.float32(0.02), zpa, B, np.float32(0.01), zpb, ys, yz)
                        r = R.qlinear_matmul(A, np.float32(0.02), zpa, B, np.float32(0.01), zpb, ys, yz)
                        np.testing.assert_array_equal(q, r, err_msg=str((M, N, K, off, t, yz.dtype)))
    finally:
        refquant.set_num_threads(None)
        _use_level(None)


@pytest.mark.skipif("avx512vnni" not in AVAILABLE or "amx" in AVAILABLE,
                    reason="the no-packing VNNI path runs where AMX does not")
def test_vnni_plain_switch_and_limits():
    """REFQUANT_VNNI_PLAIN=0 packs B as before; row strides that are not whole cache lines or are
    a multiple of 16 lines, a packed B and more than 160 rows keep the packed kernel."""
    import subprocess, sys
    code = ("import numpy as np, refquant; refquant.set_num_threads(1); "
            "refquant.matmul_integer(np.ones((32, 96), np.uint8), np.ones((96, 128), np.int8)); "
            "print(refquant.last_path()['path'])")
    for v, want in (("0", "gemm_vnni4__avx512vnni"), ("1", "gemm_vnni4_plain__avx512vnni")):
        env = dict(__import__("os").environ, REFQUANT_VNNI_PLAIN=v)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == want
    refquant.set_num_threads(1)
    try:
        A = np.ones((32, 64), np.uint8)
        for B, want in ((np.ones((64, 1024), np.int8), "gemm_vnni4__avx512vnni"),
                        (np.ones((64, 784), np.int8), "gemm_vnni4__avx512vnni"),   # rows not whole lines
                        (np.ones((64, 768), np.int8), "gemm_vnni4_plain__avx512vnni"),
                        (refquant.pack_weights(np.ones((64, 768), np.int8)), "gemm_vnni4__avx512vnni")):
            refquant.matmul_integer(A, B)
            assert refquant.last_path()["path"] == want
        refquant.matmul_integer(np.ones((161, 64), np.uint8), np.ones((64, 768), np.int8))
        assert refquant.last_path()["path"] == "gemm_vnni4__avx512vnni"
        refquant.matmul_integer(np.ones((1, 64), np.uint8), np.ones((64, 768), np.int8))
        assert refquant.last_path()["path"] == "gemv_vnni4__avx512vnni"       # one row: the GEMV
        # a chunk of B (K lines; rows 3 lines apart) and all of A within half the L2, or not
        half = _cpu.caches()["l2"] // 2
        K = 4096
        for M in (24, 140):
            plain = K * (M + 64) <= half
            refquant.matmul_integer(np.ones((M, K), np.uint8), np.ones((K, 192), np.int8))
            assert (refquant.last_path()["path"] == "gemm_vnni4_plain__avx512vnni") == plain, (M, half)
        for on, want in ((False, "gemv_vnni4__avx512vnni"), (None, "gemm_vnni4_plain__avx512vnni")):
            _k.set_vnni_plain(on)
            refquant.matmul_integer(np.ones((4, 64), np.uint8), np.ones((64, 768), np.int8))
            assert refquant.last_path()["path"] == want
    finally:
        _k.set_vnni_plain(None)
        refquant.set_num_threads(None)


# ------------------------------------------------------------------ slow: bigger shapes

@pytest.mark.slow
@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
@pytest.mark.parametrize("shape", [(1, 4096, 4096), (128, 768, 768), (257, 515, 1031), (512, 512, 512)])
def test_big_shapes(isa_cap, shape):
    M, N, K = shape
    if isa_cap == "scalar" and M * N * K > 2 ** 27:
        pytest.skip("scalar kernel too slow for this size")
    rng = np.random.default_rng(6)
    for at, bt in ((np.uint8, np.int8), (np.int8, np.int8), (np.uint8, np.uint8), (np.int8, np.uint8)):
        A = _rand(rng, at, (M, K))
        B = _rand(rng, bt, (K, N))
        za, zb = at(1), bt(-1 if bt == np.int8 else 200)
        _check(F.matmul_integer(A, B, za, zb, profile=ONNX)[0], R.matmul_integer(A, B, za, zb), f"big {shape}")


def test_every_registered_profile_matches_reference():
    """For every registered profile, the top-level op (fast path where covered, reference where the
    glue declines) gives the reference's bits or raises the reference's exception type."""
    from refquant import profiles
    rng = np.random.default_rng(8)
    A = _rand(rng, np.uint8, (33, 70))
    B = _rand(rng, np.int8, (70, 40))
    x = _rand(rng, np.uint8, (1, 16, 9, 9))
    wd = _rand(rng, np.int8, (16, 1, 3, 3))
    w2 = _rand(rng, np.int8, (8, 16, 3, 3))
    s = (np.float32(0.02), np.uint8(3))
    cases = [
        (refquant.matmul_integer, R.matmul_integer, (A, B, np.uint8(3), np.int8(0)), {}),
        (refquant.qlinear_matmul, R.qlinear_matmul, (A, *s, B, np.float32(0.01), np.int8(0), np.float32(0.3),
                                                     np.uint8(9)), {}),
        (refquant.qgemm, R.qgemm, (A, *s, B, np.float32(0.01), np.int8(0), None, np.float32(0.3), np.uint8(9)), {}),
        (refquant.qlinear_conv, R.qlinear_conv, (x, *s, wd, np.float32(0.01), np.int8(0), np.float32(0.3),
                                                 np.uint8(9)), dict(group=16, pads=[1] * 4)),
        (refquant.qlinear_conv, R.qlinear_conv, (x, *s, w2, np.float32(0.01), np.int8(0), np.float32(0.3),
                                                 np.uint8(9)), dict(pads=[1] * 4)),
        (refquant.conv_integer, R.conv_integer, (x, w2, np.uint8(3)), dict(pads=[1] * 4)),
    ]
    for name in profiles():
        for fast, ref, args, kw in cases:
            try:
                want = ref(*args, profile=name, **kw)
            except Exception as e:  # noqa: BLE001
                with pytest.raises(type(e)):
                    fast(*args, profile=name, **kw)
                continue
            got = fast(*args, profile=name, **kw)
            _check(np.asarray(got), np.asarray(want), f"{fast.__name__} profile={name} "
                                                      f"path={refquant.last_path()['path']}")


def test_row_split_threads():
    """Several threads, a plain B within a quarter of the L2 and 192 rows or more: each thread
    packs all of B and runs its own 32-row strips as a one-thread GEMM (AMX).  The reference's
    bits at 2 and 3 threads for row counts that are not multiples of 32, per-row and per-column
    zero points, int32 / uint8 / int8 outputs, QGemm's int32 C matrix, and every registered
    profile's epilogue (float bias, oneDNN's order, fixed point)."""
    from refquant import profiles
    rng = np.random.default_rng(31)
    try:
        for nt in (2, 3):
            refquant.set_num_threads(nt)
            for (M, N, K) in ((200, 70, 130), (401, 256, 512), (1000, 33, 64)):
                A = _rand(rng, np.uint8, (M, K))
                B = _rand(rng, np.int8, (K, N))
                what = f"M={M} N={N} K={K} t={nt}"
                for za, zb in ((np.uint8(7), np.int8(0)), (_rand(rng, np.uint8, (M,), extreme=0), _rand(rng, np.int8, (N,), extreme=0))):
                    _check(refquant.matmul_integer(A, B, za, zb), R.matmul_integer(A, B, za, zb), "mmi " + what)
                Cm = rng.integers(-9000, 9000, (M, N)).astype(np.int32)
                ws = rng.uniform(1e-3, 9e-3, N).astype(np.float32)
                for name in profiles():
                    for args, f, r in (((A, np.float32(0.02), np.uint8(3), B, np.float32(0.01), np.int8(0), np.float32(0.3),
                                         np.uint8(9)), refquant.qlinear_matmul, R.qlinear_matmul),
                                       ((A, np.float32(0.02), np.uint8(3), B, ws, np.int8(0), Cm, np.float32(0.3),
                                         np.int8(-5)), refquant.qgemm, R.qgemm)):
                        try:
                            want = r(*args, profile=name)
                        except Exception as e:  # noqa: BLE001
                            with pytest.raises(type(e)):
                                f(*args, profile=name)
                            continue
                        _check(f(*args, profile=name), want, f"{f.__name__} {name} {what} {refquant.last_path()['path']}")
    finally:
        refquant.set_num_threads(None)


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
def test_uint8_b_raw_amx(isa_cap):
    """A plain uint8 B on AMX is packed raw (tdpbuud / tdpbsud, unsigned column sums): with
    b_zp = 0 the int32 path needs no row sums.  u8u8 and s8u8, zero points 0 / mid / extreme,
    scalar and per-column b_zp, small (packed whole) and large (just in time) B, 1 and 2
    threads, int32 and requantized outputs, all equal the reference."""
    rng = np.random.default_rng(21)
    for (M, N, K) in ((32, 64, 128), (33, 47, 130), (128, 768, 768), (20, 1100, 800)):
        for at in (np.uint8, np.int8):
            A = _rand(rng, at, (M, K))
            B = _rand(rng, np.uint8, (K, N))
            for za, zb in ((at(0), np.uint8(0)), (at(5), np.uint8(0)), (at(-128 if at == np.int8 else 255), np.uint8(255)),
                           (at(3), _rand(rng, np.uint8, (N,), extreme=0))):
                _check_threads(A, B, za, zb, f"raw u8 B {at.__name__} M={M} N={N} K={K}")
            args = (A, np.float32(0.02), at(3), B, np.float32(0.01), np.uint8(9), np.float32(0.4), np.uint8(100))
            got = F.qlinear_matmul(*args, profile=ONNX)
            _check(got[0], R.qlinear_matmul(*args), f"raw u8 B qlinear {at.__name__} {got[1]}")


def test_float_bias_profiles_without_bias_take_the_kernel():
    """rq_bias matters only when there is a bias: pytorch-fbgemm / pytorch-x86 (float bias)
    QLinearMatMul, QGemm with an int32 C, and QLinearConv run the kernels with the reference's
    bits (a conv bias under rq_bias="float" goes through the float-bias epilogue)."""
    rng = np.random.default_rng(22)
    A = _rand(rng, np.uint8, (40, 72))
    B = _rand(rng, np.int8, (72, 24))
    x = _rand(rng, np.uint8, (1, 8, 9, 9))
    w = _rand(rng, np.int8, (16, 8, 3, 3))
    for p in ("pytorch-fbgemm", "pytorch-x86"):
        args = (A, np.float32(0.02), np.uint8(3), B, np.float32(0.01), np.int8(0), np.float32(0.4), np.uint8(100))
        _check(refquant.qlinear_matmul(*args, profile=p), R.qlinear_matmul(*args, profile=p), p)
        assert refquant.last_path()["path"] != "reference", p
        cargs = (x, np.float32(0.02), np.uint8(3), w, np.float32(0.01), np.int8(0), np.float32(0.4), np.uint8(100))
        want = R.qlinear_conv(*cargs, profile=p, pads=[1, 1, 1, 1])
        _check(refquant.qlinear_conv(*cargs, profile=p, pads=[1, 1, 1, 1]), want, p)
        assert refquant.last_path()["path"] != "reference", p
        C = rng.integers(-5000, 5000, 24).astype(np.int32)      # QGemm's int32 C: an int32 add
        gargs = (A, np.float32(0.02), np.uint8(3), B, np.float32(0.01), np.int8(0), C, np.float32(0.4),
                 np.uint8(100))
        _check(refquant.qgemm(*gargs, profile=p), R.qgemm(*gargs, profile=p), p + " qgemm C")
        assert refquant.last_path()["path"] != "reference", p
        bias = rng.integers(-1000, 1000, 16).astype(np.int32)
        _check(refquant.qlinear_conv(*cargs, bias, profile=p, pads=[1, 1, 1, 1]),
               R.qlinear_conv(*cargs, bias, profile=p, pads=[1, 1, 1, 1]), p + " bias")
        # fbgemm's float bias and oneDNN's epilogue (pytorch-x86's conv) are in the kernels
        assert refquant.last_path()["path"] != "reference", p


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
def test_fbgemm_float_bias_in_the_kernels(isa_cap):
    """fbgemm's float bias runs in the kernels' epilogue with the reference's bits: QGemm's float C
    (rq_bias "float": fl32(C / S) added to fl32(acc); per-tensor weights, "float_rcp_fma":
    fma(C, fl32(1 / S), fl32(acc)) rounded once) in every broadcast form, with alpha, transA /
    transB and packed weights, and QLinearConv's per-tensor float B (the GEMM, implicit and
    depthwise convs).  Biases one ulp off k * S with M = 1/4 and small sums put v next to
    half-integer ties, where the fused and unfused forms part.  A NaN bias goes to the reference."""
    rng = np.random.default_rng(2301)
    p = "pytorch-fbgemm"
    f = np.float32

    def tie_bias(S, shape):
        k = rng.integers(-500, 500, shape)
        return np.nextafter((k * S).astype(f), rng.choice(np.array([-1e9, 1e9], f), shape)).astype(f)

    for M, K, N in ((4, 2, 70), (9, 3, 64), (64, 1, 130), (3, 40, 20)):
        A = _rand(rng, np.uint8, (M, K))
        B = _rand(rng, np.int8, (K, N))
        for bs in (f(1 / 7), f(1 / 7) * np.array([1, 0.5, 0.25, 0.125], f)[rng.integers(0, 4, N)]):
            zb = np.int8(0) if np.ndim(bs) == 0 else np.zeros(N, np.int8)
            for alpha in (1.0, 0.5):
                S = f(f(alpha) * f(1 / 3)) * f(1 / 7)
                for shape in ((N,), (1, N), (M, N), (M, 1), ()):
                    C = tie_bias(S, shape)
                    args = (A, f(1 / 3), np.uint8(rng.integers(0, 256)), B, bs, zb, C, f(S * 4), np.uint8(128))
                    want = R.qgemm(*args, alpha=alpha, profile=p)
                    _check(refquant.qgemm(*args, alpha=alpha, profile=p), want, f"{p} C{shape} {alpha}")
                    assert "reference" not in refquant.last_path()["path"], (shape, alpha)
                    got = refquant.qgemm(A.T.copy(), *args[1:3], B.T.copy(), *args[4:], alpha=alpha,
                                         transA=1, transB=1, profile=p)
                    _check(got, want, f"{p} transposed C{shape}")
                    got = refquant.qgemm(A, *args[1:3], refquant.pack_weights(B), *args[4:], alpha=alpha,
                                         profile=p)
                    _check(got, want, f"{p} packed C{shape}")
        C = np.full(N, np.nan, f)
        args = (A, f(1 / 3), np.uint8(3), B, f(0.1), np.int8(0), C, f(0.37), np.uint8(9))
        _check(refquant.qgemm(*args, profile=p), R.qgemm(*args, profile=p), "NaN C")
        assert refquant.last_path()["path"] == "reference"
    S = f(f(1 / 3) * f(1 / 7))
    for xs, wsh, attrs in (((1, 8, 9, 9), (16, 8, 1, 1), dict()),
                           ((2, 16, 7, 7), (64, 16, 1, 1), dict()),
                           ((1, 4, 6, 10), (64, 4, 3, 3), dict(pads=[1, 1, 1, 1])),
                           ((1, 32, 10, 10), (32, 1, 3, 3), dict(group=32, pads=[1, 1, 1, 1]))):
        x = _rand(rng, np.uint8, xs)
        w = rng.integers(-3, 4, wsh).astype(np.int8)
        cargs = (x, f(1 / 3), np.uint8(rng.integers(0, 256)), w, f(1 / 7), np.int8(0), f(S * 4), np.uint8(128),
                 tie_bias(S, wsh[0]))
        want = R.qlinear_conv(*cargs, profile=p, **attrs)
        _check(refquant.qlinear_conv(*cargs, profile=p, **attrs), want, f"{p} conv {wsh}")
        assert "reference" not in refquant.last_path()["path"], wsh


def test_gemv_k_slices():
    """GEMV (M <= 4) with threads splits K (each thread streams its own part of B, partial int32
    sums added afterwards): the same bits as one thread, every dtype pair, zero points, K not a
    multiple of 8, N not a multiple of 64."""
    rng = np.random.default_rng(23)
    for (M, N, K) in ((1, 300, 2049), (4, 1000, 1500), (2, 64, 4100)):
        for at, bt in ((np.uint8, np.int8), (np.int8, np.uint8), (np.uint8, np.uint8), (np.int8, np.int8)):
            A = _rand(rng, at, (M, K))
            B = _rand(rng, bt, (K, N))
            for za, zb in ((at(0), bt(0)), (at(7), _rand(rng, bt, (N,), extreme=0))):
                _check_threads(A, B, za, zb, f"gemv {at.__name__}{bt.__name__} M={M} N={N} K={K}")


@pytest.mark.usefixtures("no_vnni_plain")
def test_gemv_register_bands():
    """The GEMV kernel (plain B, 1 to 8 rows, also where AMX runs): 1 to 4 rows of A_used (rows
    plus the column-sum row) stream 8 B rows at a time (gemv_stream), 5 to 9 run the
    register-blocked bands (5 rows a whole 64-column chunk in registers, 6 to 9 one half of it
    at a time).  K spans several bands and ends inside one (and inside an 8-row group), N ends
    inside a chunk, B is larger than half the L2 in one case (the narrower bands), and the
    K-sliced threads run with 5 to 9 rows: the reference's bits and the GEMV kernel at 1 and 2
    threads."""
    if "avx512vnni" not in AVAILABLE:
        pytest.skip("no AVX-512 VNNI here")
    rng = np.random.default_rng(29)
    shapes = [(M, N, K) for M in range(1, 9) for (N, K) in ((200, 1031), (64, 520))]
    shapes += [(3, 1100, 1030), (8, 1100, 1030), (6, 200, 4099), (7, 1600, 520)]
    for (M, N, K) in shapes:
        for at, bt in ((np.uint8, np.int8), (np.int8, np.uint8)):
            A = _rand(rng, at, (M, K))
            B = _rand(rng, bt, (K, N))
            for za, zb in ((at(9), bt(0)), (at(0), _rand(rng, bt, (N,), extreme=0))):
                what = f"gemv {at.__name__}{bt.__name__} M={M} N={N} K={K} za={za}"
                _check_threads(A, B, za, zb, what)
                _assert_gemv_path(A, B, za, zb, what)


@pytest.mark.usefixtures("no_vnni_plain")
def test_gemv_stream_views():
    """The streaming GEMV (1 to 4 rows of A_used) reads B rows through their stride: B a column
    slice of a wider array, starting 1 to 63 bytes past a cache line, rows of a stride that is
    and is not a multiple of 64 bytes, a negative row stride (B[::-1]), uint8 and int8 B, K a
    multiple of 8 and not: the reference's bits at 1 and 2 threads."""
    if "avx512vnni" not in AVAILABLE:
        pytest.skip("no AVX-512 VNNI here")
    rng = np.random.default_rng(41)
    for M, N, K, width, off in ((1, 300, 1031, 320, 1), (2, 256, 512, 256, 16), (3, 130, 72, 200, 63),
                                (1, 640, 2048, 704, 48), (4, 129, 257, 192, 5)):
        for at, bt in ((np.uint8, np.int8), (np.uint8, np.uint8), (np.int8, np.int8)):
            A = _rand(rng, at, (M, K))
            base = _rand(rng, bt, (K * width + off + 64,))
            B = base[off:off + K * width].reshape(K, width)[:, :N]
            for za, zb in ((at(0), bt(0)), (at(5), _rand(rng, bt, (N,), extreme=0))):
                what = f"gemv view {at.__name__}{bt.__name__} M={M} N={N} K={K} width={width} off={off}"
                _check_threads(A, B, za, zb, what)
                _check_threads(A, B[::-1], za, zb, what + " reversed rows")
                _assert_gemv_path(A, B, za, zb, what)



@pytest.mark.usefixtures("no_vnni_plain")
def test_gemv_line_aligned_chunks():
    """B's rows all starting the same distance past a cache line (a row stride that is a
    multiple of 64 bytes, numpy's large arrays 16 bytes past a line), N >= 512: the GEMV's
    64-column chunks start on B's lines, the first chunk's lanes before column 0 and the last
    chunk's lanes past N masked (the streaming kernel's edge chunks, the register bands'
    rows8_any): every offset class, N ending inside a chunk and on one, 1 to 8 rows (the
    column-sum, signed-operand and two-halves paths, the bands), K off the 8-row groups,
    reversed rows, 1 and 2 threads (column slices and K slices): the reference's bits."""
    if "avx512vnni" not in AVAILABLE:
        pytest.skip("no AVX-512 VNNI here")
    rng = np.random.default_rng(53)
    for (M, N, K, width) in ((1, 512, 64, 576), (2, 600, 100, 640), (3, 1000, 1031, 1024),
                             (4, 1089, 72, 1152), (5, 700, 520, 768), (8, 512, 33, 512),
                             (1, 4096, 260, 4096), (2, 200000, 5, 200064)):   # (the last: column blocks)
        for off in (0, 1, 16, 48, 63):
            at, bt = ((np.uint8, np.int8), (np.int8, np.uint8), (np.uint8, np.uint8))[off % 3]
            base = _rand(rng, bt, (K * width + 128,))
            shift = (off - base.ctypes.data) % 64
            B = base[shift:shift + K * width].reshape(K, width)[:, :N]
            assert B.ctypes.data % 64 == off
            A = _rand(rng, at, (M, K))
            for za, zb in ((at(0), bt(0)), (at(7) if at == np.uint8 else at(-7), _rand(rng, bt, (N,), extreme=0))):
                what = f"gemv aligned {at.__name__}{bt.__name__} M={M} N={N} K={K} off={off}"
                _check_threads(A, B, za, zb, what)
                _check_threads(A, B[::-1], za, zb, what + " reversed rows")
                _assert_gemv_path(A, B, za, zb, what)

def test_gemv_signed_a_operand():
    """GEMV rows whose A - za all fit int8 (int8 A with za 0, uint8 A with za 128, A within 127
    of za) run with A - za as the signed operand and B ^ 0x80 as the unsigned one, no column
    sums of B (rq_gemv_vnni_sa): the reference's bits for int8 and uint8 B, scalar and
    per-column B zero points, per-row A zero points, K and N off the kernel's blocks, B views,
    1 and 2 threads (K slices); a row that does not fit sends the call down the column-sum
    path, whose row sums the attempt must leave intact."""
    if "avx512vnni" not in AVAILABLE:
        pytest.skip("no AVX-512 VNNI here")
    rng = np.random.default_rng(43)
    for (M, N, K) in ((1, 300, 1031), (2, 64, 4100), (3, 130, 72), (4, 1000, 1500), (1, 4096, 520)):
        for at, bt in ((np.int8, np.int8), (np.int8, np.uint8), (np.uint8, np.int8), (np.uint8, np.uint8)):
            B = _rand(rng, bt, (K, N + 5))[:, 2:N + 2]
            if at == np.int8:
                cases = [(_rand(rng, at, (M, K)), at(0))]
            else:
                cases = [(_rand(rng, at, (M, K)), at(128)),
                         (rng.integers(60, 188, (M, K)).astype(at), at(61))]    # A - za in [-1, 126]
            # does not fit: extremes 127 + 2 away from za (the column-sum path, rsum intact)
            cases.append((_rand(rng, at, (M, K)), at(3) if at == np.uint8 else at(-2)))
            if M > 1:   # per-row zero points, every row within int8 of its own
                zr = np.array([128] * M, np.uint8) if at == np.uint8 else np.zeros(M, np.int8)
                zr[0] = at(100) if at == np.uint8 else at(-20)
                A = np.clip(rng.integers(-100, 100, (M, K)) + zr.astype(np.int64)[:, None],
                            np.iinfo(at).min, np.iinfo(at).max).astype(at)
                cases.append((A, zr))
            for A, za in cases:
                for zb in (bt(0), _rand(rng, bt, (N,), extreme=0)):
                    what = f"gemv sa {at.__name__}{bt.__name__} M={M} N={N} K={K} za={za if np.ndim(za) == 0 else 'rows'}"
                    _check_threads(A, B, za, zb, what)
                    _assert_gemv_path(A, B, za, zb, what)



@pytest.mark.usefixtures("no_vnni_plain")
def test_gemv_split_a_operand():
    """GEMV rows whose A - za does not fit int8 but lies in [-255, 254] (uint8 A with za other
    than 0 and 128, int8 A with za other than 0) run with A - za as two int8 halves, both
    summed into the row (rq_gemv_vnni_sa2): the reference's bits for every zero point from 1
    to 255, int8 and uint8 B, scalar and per-column B zero points, per-row A zero points that
    mix rows that fit int8 with rows that do not, K and N off the kernel's blocks (the edge
    chunks and the K tail), B views, 1 and 2 threads (K slices).  (An A - za of 255 has no two
    int8 halves, but needs uint8 A with za 0 or int8 A with za -128, where A_used's zero point
    is 0 and no correction runs at all: the extreme zero points are among the cases.)"""
    if "avx512vnni" not in AVAILABLE:
        pytest.skip("no AVX-512 VNNI here")
    rng = np.random.default_rng(47)
    for (M, N, K) in ((1, 300, 1031), (2, 64, 4100), (3, 130, 72), (4, 1000, 1500), (1, 4096, 520)):
        for at, bt in ((np.uint8, np.int8), (np.uint8, np.uint8), (np.int8, np.int8), (np.int8, np.uint8)):
            B = _rand(rng, bt, (K, N + 5))[:, 2:N + 2]
            A = _rand(rng, at, (M, K), extreme=0.3)
            if at == np.uint8:
                zas = [at(1), at(3), at(117), at(129), at(254), at(255)]
            else:
                zas = [at(-3), at(5), at(-127), at(127)]
            cases = [(A, za) for za in zas]
            cases.append((A, at(0) if at == np.uint8 else at(-128)))   # A - za up to 255
            # within int8 of za but at a few k (the first, one inside, the K tail): the 8 k
            # around those run both halves, the others the first half alone
            za = at(100) if at == np.uint8 else at(-20)
            As = np.clip(rng.integers(-60, 60, (M, K)) + int(za), np.iinfo(at).min,
                         np.iinfo(at).max).astype(at)
            for k in (0, K // 3, K - 1):
                As[rng.integers(0, M), k] = np.iinfo(at).max
            cases.append((As, za))
            if M > 1:           # row 0 fits int8, the others do not
                zr = np.array([9] * M, np.uint8) if at == np.uint8 else np.full(M, -9, np.int8)
                A2 = A.copy()
                A2[0] = np.clip(rng.integers(-100, 100, K) + 128, 0, 255).astype(np.uint8).view(at) \
                    if at == np.uint8 else rng.integers(-100, 100, K).astype(at)
                zr[0] = at(128) if at == np.uint8 else at(0)
                cases.append((A2, zr))
            for A_, za in cases:
                for zb in (bt(0), _rand(rng, bt, (N,), extreme=0)):
                    what = (f"gemv sa2 {at.__name__}{bt.__name__} M={M} N={N} K={K} "
                            f"za={za if np.ndim(za) == 0 else 'rows'}")
                    _check_threads(A_, B, za, zb, what)
                    _assert_gemv_path(A_, B, za, zb, what)
        B = _rand(rng, np.int8, (K, 2 * N))[::-1, ::2]     # reversed rows, a column stride of 2
        A = _rand(rng, np.uint8, (M, K))
        _check_threads(A, B, np.uint8(77), np.int8(3), f"gemv sa2 view M={M} N={N} K={K}")
        B = _rand(rng, np.int8, (K, N))
        for A in (_rand(rng, np.uint8, (M, 2 * K))[:, ::2], _rand(rng, np.int8, (M, K))[:, ::-1]):
            for za in ((np.uint8(77), np.uint8(128)) if A.dtype == np.uint8 else (np.int8(-9), np.int8(0))):
                # A with a column stride (the halves computed by the scalar loop)
                what = f"gemv sa2 A view {A.dtype} za={za} M={M} N={N} K={K}"
                _check_threads(A, B, za, np.int8(0), what)
                _assert_gemv_path(A, B, za, np.int8(0), what)


def test_gemv_column_blocks():
    """A GEMV whose accumulators ((M + 1) x N int32) pass half the L2 runs in equal column blocks
    one after another: per-column zero points, float and fixed-point multipliers (onnx,
    tflite-optimized), int32 and float biases (QGemm), the 8-bit and int32 outputs, and a 1x1
    conv with few output channels over a large image (pixels as columns) give the reference's
    bits at 1 and 2 threads, the last block shorter than the others."""
    if "avx512vnni" not in AVAILABLE:
        pytest.skip("no AVX-512 VNNI here")
    rng = np.random.default_rng(37)
    for (M, K, N) in ((1, 3, 300001), (4, 64, 70001), (8, 17, 33000)):
        A = _rand(rng, np.uint8, (M, K))
        B = _rand(rng, np.int8, (K, N))
        zb = _rand(rng, np.int8, (N,), extreme=0)
        _check_threads(A, B, np.uint8(9), zb, f"gemv blocks M={M} N={N} K={K}")
        bs = (rng.random(N).astype(np.float32) + 0.5) * np.float32(0.004)
        args = (A, np.float32(0.05), np.uint8(7), B, bs, np.zeros(N, np.int8), np.float32(0.3), np.uint8(5))
        C = rng.integers(-3000, 3000, N).astype(np.int32)
        for t in (1, 2):
            refquant.set_num_threads(t)
            try:
                for prof in ("onnx", "tflite-optimized"):
                    got = refquant.qlinear_matmul(*args, profile=prof)
                    assert t > 1 or refquant.last_path()["path"] == "gemv_vnni4__avx512vnni"
                    _check(got, R.qlinear_matmul(*args, profile=prof), f"qlm {prof} M={M} N={N} t={t}")
                _check(refquant.qgemm(*args[:6], C, *args[6:]), R.qgemm(*args[:6], C, *args[6:]),
                       f"qgemm M={M} N={N} t={t}")
            finally:
                refquant.set_num_threads(None)
    x = _rand(rng, np.uint8, (1, 16, 250, 251))
    w = _rand(rng, np.int8, (4, 16, 1, 1))
    cargs = (x, np.float32(0.05), np.uint8(7), w, (rng.random(4).astype(np.float32) + 0.5) * np.float32(0.004),
             np.zeros(4, np.int8), np.float32(0.3), np.uint8(5), rng.integers(-5000, 5000, 4).astype(np.int32))
    for t in (1, 2):
        refquant.set_num_threads(t)
        try:
            _check(refquant.qlinear_conv(*cargs), R.qlinear_conv(*cargs), f"1x1 conv 16->4 t={t}")
            assert t > 1 or refquant.last_path()["path"] == "gemv_vnni4__avx512vnni"
        finally:
            refquant.set_num_threads(None)


def test_few_rows_gemv_or_packed_by_threads():
    """Few rows of a plain B at the AVX-512 VNNI level (no AMX): 1 to 8 rows run the GEMV at 1
    thread; at 2 threads, 6 to 8 rows with B in the L2 (past half of it, where 5 rows keep the
    GEMV, and so do 3 threads) pack B and run the VNNI GEMM (both threads pack); a B beyond the
    L2 keeps the GEMV.  Every one gives the reference's
    bits."""
    if "avx512vnni" not in AVAILABLE:
        pytest.skip("no AVX-512 VNNI here")
    l2 = _cpu.caches()["l2"]
    rng = np.random.default_rng(61)
    small = 64   # the largest square B (of whole 64-column groups) within the L2, past half of it
    while (small + 64) ** 2 <= l2:
        small += 64
    big = 2 * small
    cases = ((8, small, 2, "gemm_vnni4__avx512vnni"), (6, small, 2, "gemm_vnni4__avx512vnni"),
             (5, small, 2, "gemv_vnni4__avx512vnni"), (8, small, 1, "gemv_vnni4__avx512vnni"),
             (8, big, 2, "gemv_vnni4__avx512vnni"), (8, small, 3, "gemv_vnni4__avx512vnni"))
    _use_level("avx512vnni")
    try:
        for M, n, t, want in cases:
            A = _rand(rng, np.uint8, (M, n))
            B = _rand(rng, np.int8, (n, n))
            refquant.set_num_threads(t)
            try:
                got = F.matmul_integer(A, B, np.uint8(117), np.int8(0), profile=ONNX)
            finally:
                refquant.set_num_threads(None)
            assert got[1] == want, (M, n, t, got[1])
            _check(got[0], R.matmul_integer(A, B, np.uint8(117), np.int8(0)), f"M={M} B {n}x{n} t={t}")
    finally:
        _use_level(None)


def test_outputs_start_on_a_cache_line():
    """Outputs of 16 KiB or more that the kernels allocate start on a 64-byte boundary (AMX tile
    rows stored straight into them must not straddle two lines), and are ordinary writable
    C-ordered arrays of the right dtype and shape, for MatMulInteger (lean and generic paths),
    QLinearMatMul and QLinearConv."""
    rng = np.random.default_rng(23)
    A = _rand(rng, np.uint8, (70, 96))
    B = _rand(rng, np.int8, (96, 130))
    outs = [refquant.matmul_integer(A, B), refquant.matmul_integer(A, B, np.uint8(3), np.int8(-2)),
            refquant.matmul_integer(A[None].repeat(2, 0), B),
            refquant.qlinear_matmul(A, np.float32(0.1), np.uint8(3), np.concatenate([B] * 2, 1),
                                    np.float32(0.01), np.int8(0), np.float32(0.5), np.uint8(7))]
    x = _rand(rng, np.uint8, (1, 8, 40, 40))
    w = _rand(rng, np.int8, (16, 8, 3, 3))
    outs.append(refquant.qlinear_conv(x, np.float32(0.1), np.uint8(3), w, np.float32(0.01), np.int8(0),
                                      np.float32(0.5), np.uint8(7), pads=[1, 1, 1, 1]))
    for o in outs:
        assert o.nbytes >= 16384 and o.ctypes.data % 64 == 0, (o.shape, o.ctypes.data % 64)
        assert o.flags["C_CONTIGUOUS"] and o.flags["WRITEABLE"]
    _check(outs[0], R.matmul_integer(A, B), "aligned output")
    small = refquant.matmul_integer(A[:3], B[:, :5])
    _check(small, R.matmul_integer(A[:3], B[:, :5]), "small output")


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
def test_plain_b_column_groups(isa_cap):
    """Plain B in L2, up to 256 rows: the AMX driver packs B 64 columns at a time (partial last
    groups of 1..63 columns, odd panel counts, K tails) and streams A past it, at 1 thread and at
    2 (a run of groups each, A copied by each when its rows are not whole lines); int32 outputs
    straight into C (with -colfix folded in, or edge blocks copied out) and the strip epilogue
    (row corrections, 8-bit outputs): the reference's bits for every dtype pair."""
    rng = np.random.default_rng(29)
    p = get_profile("onnxruntime")
    try:
        for (M, N, K, t) in ((5, 1, 1, 1), (16, 17, 63, 2), (17, 47, 64, 1), (33, 65, 65, 2),
                             (64, 100, 700, 1), (100, 129, 130, 2), (40, 200, 4, 1), (48, 300, 128, 2),
                             (250, 70, 200, 2), (64, 80, 96, 1), (37, 208, 64, 2), (32, 16, 64, 1)):
            refquant.set_num_threads(t)
            for at, bt in ((np.uint8, np.int8), (np.int8, np.int8), (np.uint8, np.uint8), (np.int8, np.uint8)):
                A = _rand(rng, at, (M, K))
                if M % 2:
                    A = _offset_rows(rng, A, 16, 0)   # rows not whole lines: copied per task
                B = _rand(rng, bt, (K, N))
                for za, zb in ((at(0), bt(0)), (at(9), bt(0)), (at(9), bt(-7 if bt == np.int8 else 250))):
                    got = F.matmul_integer(A, B, za, zb, profile=ONNX)
                    _check(got[0], R.matmul_integer(A, B, za, zb),
                           f"plain groups {at.__name__}{bt.__name__} M={M} N={N} K={K} za={za} zb={zb} {got[1]}")
                bs = (rng.random(N).astype(np.float32) + 0.5) * np.float32(0.01)
                args = (A, np.float32(0.02), at(3), B, bs, zb, np.float32(0.7), np.uint8(5))
                got = F.qlinear_matmul(*args, profile=p)
                _check(got[0], R.qlinear_matmul(*args, profile=p), f"plain groups qlinear M={M} N={N} K={K} {got[1]}")
    finally:
        refquant.set_num_threads(None)


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
def test_plain_b_rows_off_a_line(isa_cap):
    """A plain B whose rows all start 16, 32 or 48 bytes past a cache line (numpy's usual
    alignment, rows a multiple of 64 bytes long): the AMX driver makes its first column group
    narrower (64 - offset columns) so that the other groups read whole lines.  Widths below,
    at and just past that first group, a last group of 1..63 columns, offsets that take no lead
    group (8 bytes; rows not a multiple of 64), int32 outputs (tiles straight into C, edge blocks
    copied) and 8-bit ones, zero points, 1 and 2 threads: the reference's bits.  Also the 1x1
    convolution, whose input is that B."""
    rng = np.random.default_rng(37)
    try:
        for off in (16, 32, 48, 8):
            lead = 64 - off
            for (M, N, K) in ((32, lead - 1, 64), (17, lead, 70), (33, lead + 1, 128), (64, lead + 64, 200),
                              (40, lead + 65, 64), (96, 300, 130), (20, 640 - off, 96)):
                for pad in (0, 64, 5):
                    if (N + pad) % 64 and pad != 5:
                        pad += (-(N + pad)) % 64   # rows a whole number of lines
                    at, bt = (np.uint8, np.int8) if N % 2 else (np.int8, np.uint8)
                    A = _rand(rng, at, (M, K))
                    B = _offset_rows(rng, _rand(rng, bt, (K, N)), off, pad)
                    za, zb = at(rng.integers(0, 100)), bt(0 if M % 3 else 7)
                    for nt in (1, 2):
                        refquant.set_num_threads(nt)
                        got = F.matmul_integer(A, B, za, zb, profile=ONNX)
                        _check(got[0], R.matmul_integer(A, B, za, zb),
                               f"off={off} pad={pad} M={M} N={N} K={K} nt={nt} {got[1]}")
                        args = (A, np.float32(0.02), za, B, np.float32(0.004), zb, np.float32(0.3), np.uint8(100))
                        got = F.qlinear_matmul(*args, profile=ONNX)
                        _check(got[0], R.qlinear_matmul(*args), f"qlinear off={off} pad={pad} M={M} N={N} nt={nt}")
            for C, Co, H, W in ((64, 32, 8, 8), (128, 64, 14, 14)):
                x4 = _rand(rng, np.uint8, (1, C, H, W))
                buf = np.zeros(x4.size + 128, np.uint8)
                s = (-buf.ctypes.data) % 64 + off
                x = buf[s:s + x4.size].reshape(x4.shape)
                x[...] = x4
                w = _rand(rng, np.int8, (Co, C, 1, 1))
                bias = rng.integers(-3000, 3000, Co).astype(np.int32)
                args = (x, np.float32(0.02), np.uint8(119), w, np.float32(0.005), np.int8(0), np.float32(0.3),
                        np.uint8(127), bias)
                for nt in (1, 2):
                    refquant.set_num_threads(nt)
                    _check(refquant.qlinear_conv(*args), R.qlinear_conv(*args), f"1x1 conv off={off} C={C} nt={nt}")
                    _check(refquant.conv_integer(x, w, np.uint8(119)), R.conv_integer(x, w, np.uint8(119)),
                           f"1x1 conv_integer off={off} C={C} nt={nt}")
    finally:
        refquant.set_num_threads(None)


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
def test_requant_epilogue_wide_rows(isa_cap):
    """The requantizing epilogue folds the column terms (-colfix, a bias broadcast over rows) into
    one table per 256 columns and the row terms into one offset per row, with a 2-D bias added
    separately: rows wider than the table (N up to 1100, partial last vectors; M <= 4, the GEMV,
    runs the epilogue over whole rows), every bias shape of QGemm, per-column scales, zero
    points on both sides, and the float-bias profiles, at 1 and 2 threads, all give the
    reference's bits."""
    rng = np.random.default_rng(31)
    for M, N, K in ((37, 300, 70), (70, 1100, 130), (5, 257, 64), (3, 1100, 96), (1, 530, 64)):
        A = _rand(rng, np.uint8, (M, K))
        B = _rand(rng, np.int8, (K, N))
        zb = rng.integers(-128, 128, N).astype(np.int8)
        for C in (None, rng.integers(-9000, 9000, N).astype(np.int32),
                  rng.integers(-9000, 9000, (M, 1)).astype(np.int32),
                  rng.integers(-9000, 9000, (M, N)).astype(np.int32)):
            for b_s, b_z in ((np.float32(0.004), np.int8(0)), (rng.uniform(1e-3, 9e-3, N).astype(np.float32), zb)):
                args = (A, np.float32(0.03), np.uint8(117), B, b_s, b_z, C, np.float32(0.5), np.uint8(121))
                for nt in (1, 2):
                    old = refquant.get_num_threads()
                    refquant.set_num_threads(nt)
                    try:
                        got = F.qgemm(*args, profile=ONNX)
                    finally:
                        refquant.set_num_threads(old)
                    assert got is not None
                    _check(got[0], R.qgemm(*args), f"qgemm M={M} N={N} bias={None if C is None else C.shape} "
                                                   f"nt={nt} {got[1]}")
        for p in ("onnxruntime", "pytorch-fbgemm"):
            args = (A, np.float32(0.03), np.uint8(117), B, np.float32(0.004), np.int8(0), np.float32(0.5),
                    np.uint8(121))
            _check(refquant.qlinear_matmul(*args, profile=p), R.qlinear_matmul(*args, profile=p), f"{p} N={N}")


def _same_as_reference(fast, ref, what):
    """fast() gives ref()'s bits, or raises the type ref() raises; returns the path taken (or
    None when the reference raised)."""
    return same_as_reference(fast, ref, what, _check)


_PY_SCALES = (0.02, 0.1, 1 / 3, 5e-39, 1e-45, 1e-46, 3.4028235e38, 1e39, -0.5, 0.0, float("nan"),
              float("inf"))


def test_python_scalar_arguments():
    """Zero points given as Python ints and scales as Python floats (the reference reads them as
    the operand's type and as float32) take the kernels' lean paths, compiled and glue, with
    the reference's bits; ints out of range, bools and floats that are not finite and > 0 in
    float32 still get the reference's errors."""
    rng = np.random.default_rng(61)
    A, B = _rand(rng, np.uint8, (9, 70)), _rand(rng, np.int8, (70, 20))
    for za in (0, 5, 255, 256, -1, True, 2 ** 70):
        for zb in (None, -128, 127, 128):
            path = _same_as_reference(lambda: refquant.matmul_integer(A, B, za, zb),
                                      lambda: R.matmul_integer(A, B, za, zb), f"za={za} zb={zb}")
            if path is not None:
                assert path != "reference", (za, zb)
    As = A.view(np.int8)
    ort = get_profile("onnxruntime")
    for s in _PY_SCALES:
        for (a, za, yz) in ((A, 3, 250), (As, -7, -100), (A, np.uint8(3), None), (As, 300, 0)):
            args = (a, s, za, B, 0.004, 1, 0.05, yz)
            for prof in ("onnx", ort):
                path = _same_as_reference(lambda: refquant.qlinear_matmul(*args, profile=prof),
                                          lambda: R.qlinear_matmul(*args, profile=prof),
                                          f"qlinear s={s} za={za} yz={yz} {prof}")
                if path is not None and 1e-40 < s < 1e38:
                    assert path != "reference", (s, za, yz)
            path = _same_as_reference(lambda: refquant.qlinear_matmul(*args),
                                      lambda: R.qlinear_matmul(*args), f"qlinear s={s} za={za} yz={yz}")
            if path is not None and 1e-40 < s < 1e38:
                assert path != "reference", (s, za, yz)
                assert refquant.qlinear_matmul(*args).dtype == a.dtype     # y's type: a's
    x = _rand(rng, np.uint8, (2, 8, 9, 7))
    w = _rand(rng, np.int8, (16, 8, 3, 3))
    bias = rng.integers(-999, 999, 16).astype(np.int32)
    for s in _PY_SCALES:
        for (xz, wz, yz, b) in ((100, 0, 128, None), (0, -3, 5, bias), (256, 0, 0, None), (1, 0, -1, bias)):
            args = (x, 0.03, xz, w, s, wz, 0.2, yz, b)
            for kw in ({}, {"pads": [1, 0, 1, 2]}, {"profile": ort, "strides": [2, 1]}):
                path = _same_as_reference(lambda: refquant.qlinear_conv(*args, **kw),
                                          lambda: R.qlinear_conv(*args, **kw), f"conv s={s} xz={xz} {kw}")
                if path is not None and 1e-40 < s < 1e38:
                    assert path != "reference", (s, xz, kw)
    for xz, wz in ((7, -2), (0, None), (255, 127), (-1, 0), (7, 200)):
        path = _same_as_reference(lambda: refquant.conv_integer(x, w, xz, wz),
                                  lambda: R.conv_integer(x, w, xz, wz), f"conv_integer {xz} {wz}")
        if path is not None:
            assert path != "reference", (xz, wz)


def test_per_column_scales_compiled_entries():
    """Per-column (per-output-channel) weight scales, with a per-tensor zero point, per-column
    zero points or none, take the compiled QLinearMatMul / QLinearConv entries with the
    reference's bits; the forms they do not take (float64 or strided scales, a zero point of
    another type, a scale that is not finite and > 0, a multiplier that overflows) still get
    the reference's result or error."""
    rng = np.random.default_rng(67)
    A, B = _rand(rng, np.uint8, (7, 90)), _rand(rng, np.int8, (90, 40))
    N = B.shape[1]
    bs = (rng.random(N) * 0.01 + 1e-4).astype(np.float32)
    zs = _rand(rng, np.int8, (N,))
    qlean = _k.qlinear_matmul_lean
    good = [(bs, None), (bs, np.int8(0)), (bs, 0), (bs, np.zeros(N, np.int8)), (bs, zs), (bs, np.int8(-3))]
    bad = [(bs.astype(np.float64), None), (np.repeat(bs, 2)[::2], None), (bs, zs.astype(np.int16)),
           (bs, zs.view(np.uint8)), (bs[:-1], None), (np.where(np.arange(N) == 3, 0, bs).astype(np.float32), None),
           (np.where(np.arange(N) == 5, np.nan, bs).astype(np.float32), None), (bs * np.float32(1e30), None),
           (bs, zs[:-1])]
    for a_, yz in ((A, np.uint8(128)), (A.view(np.int8), np.int8(-5)), (A, 7)):
        for bsx, bz in good + bad:
            args = (a_, np.float32(0.02), 3 if a_.dtype == np.uint8 else -3, B, bsx, bz, np.float32(0.05), yz)
            path = _same_as_reference(lambda: refquant.qlinear_matmul(*args), lambda: R.qlinear_matmul(*args),
                                      f"per-column {bsx.dtype} {bz!r:.30}")
            if any(bsx is g[0] and bz is g[1] for g in good):
                assert path is not None and path != "reference"
                assert qlean(*args) is not None
    x = _rand(rng, np.uint8, (2, 24, 9, 11))
    for (C, M, k, pads) in ((24, 16, 3, [1, 1, 1, 1]), (64, 32, 3, [1, 0, 1, 2]), (64, 16, 1, [0, 0, 0, 0])):
        x = _rand(rng, np.uint8, (int(rng.integers(1, 3)), C, 9, 11))
        w = _rand(rng, np.int8, (M, C, k, k))
        ws = (rng.random(M) * 0.01 + 1e-4).astype(np.float32)
        bias = rng.integers(-5000, 5000, M).astype(np.int32)
        for wz in (None, np.int8(0), np.zeros(M, np.int8), _rand(rng, np.int8, (M,)), np.zeros(M, np.int16)):
            for b_ in (None, bias):
                args = (x, 0.02, 100, w, ws, wz, np.float32(0.3), np.uint8(3), b_)
                path = _same_as_reference(lambda: refquant.qlinear_conv(*args, pads=pads),
                                          lambda: R.qlinear_conv(*args, pads=pads), f"conv per-channel C={C} k={k}")
                if not (isinstance(wz, np.ndarray) and wz.dtype == np.int16):
                    assert path is not None and path != "reference"
    # the per-column multipliers themselves: those of the glue's _fast_multiplier, over scales
    # from 1e-12 to 1e4 (the same float32 operations in the same order)
    onnx = get_profile("onnx")
    for _ in range(200):
        n = int(rng.integers(1, 300))
        ws = (10 ** rng.uniform(-12, 4, n)).astype(np.float32)
        sa, sy = np.float32(10 ** rng.uniform(-6, 2)), np.float32(10 ** rng.uniform(-4, 3))
        got = _k.col_multipliers(ws, sa, sy)
        with np.errstate(over="ignore", under="ignore"):
            want = F._mult32(F._fast_multiplier(sa, ws, sy, onnx))
        assert (got is None) == (want is None)
        if got is not None:
            assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
def test_packed_b_few_rows(isa_cap):
    """Packed B with 1 to 4 rows of A (the VNNI level's packed GEMV: four 16-column panels at a
    time, a partial last group): N around the 64-column groups, odd K, per-tensor and per-row
    a zero points, per-column b zero points, int32 and requantized outputs with per-column
    multipliers, 1 and 2 threads -- the reference's bits."""
    rng = np.random.default_rng(83)
    try:
        for M in (1, 2, 3, 4):
            for (K, N) in ((1, 1), (77, 16), (64, 48), (129, 65), (300, 200), (1030, 1100)):
                for at, bt in ((np.uint8, np.int8), (np.int8, np.int8), (np.uint8, np.uint8)):
                    A = _rand(rng, at, (M, K))
                    B = _rand(rng, bt, (K, N))
                    pw = refquant.pack_weights(B)
                    za = at(5) if rng.random() < 0.5 else _rand(rng, at, (M,))
                    zb = bt(0) if rng.random() < 0.5 else _rand(rng, bt, (N,))
                    for nt in (1, 2):
                        refquant.set_num_threads(nt)
                        want = R.matmul_integer(A, B, za, zb)
                        got = F.matmul_integer(A, pw, za, zb, profile=ONNX)
                        _check(got[0], want, f"packed few rows M={M} K={K} N={N} t={nt} {got[1]}")
                    bs = (rng.random(N) * 0.01 + 1e-4).astype(np.float32)
                    args = (A, np.float32(0.02), at(3), pw, bs, bt(0) if bt == np.int8 else bt(128),
                            np.float32(0.07), np.int8(-3))
                    got = F.qlinear_matmul(*args, profile=ONNX)
                    _check(got[0], R.qlinear_matmul(*args[:3], B, *args[4:]), f"packed few rows q M={M} N={N}")
    finally:
        refquant.set_num_threads(None)


def test_qgemm_scalar_forms_and_alpha():
    """QGemm with scales as numpy float32 scalars, Python floats or a per-column float32 vector
    (combined without the generic form_multiplier: the same float32 operations), zero points
    as numpy scalars or Python ints, alpha 1 / other / negative, float (no y_scale / y zero
    point) and 8-bit outputs, C absent / per column / full: the reference's bits or errors."""
    rng = np.random.default_rng(89)
    A, B = _rand(rng, np.uint8, (9, 70)), _rand(rng, np.int8, (70, 33))
    N = B.shape[1]
    bsv = (rng.random(N) * 0.01 + 1e-4).astype(np.float32)
    for a_s, b_s, bz in ((np.float32(0.02), np.float32(0.004), np.int8(0)), (0.02, 0.004, 0), (0.02, bsv, None),
                         (np.float32(0.02), bsv, np.zeros(N, np.int8)), (0.0, 0.004, 0), (0.02, -0.5, 0)):
        for alpha in (1.0, 0.37, -1.5, 3e38):
            for C in (None, rng.integers(-999, 999, N).astype(np.int32), rng.integers(-999, 999, (9, N)).astype(np.int32)):
                for y_s, y_z in ((None, None), (np.float32(0.3), np.uint8(100)), (0.3, 7)):
                    args = (A, a_s, 117, B, b_s, bz, C, y_s, y_z)
                    with np.errstate(over="ignore"):     # alpha 3e38: float outputs of +-Inf
                        path = _same_as_reference(lambda: refquant.qgemm(*args, alpha=alpha),
                                                  lambda: R.qgemm(*args, alpha=alpha),
                                                  f"qgemm {type(a_s).__name__} alpha={alpha} y={y_s}")
                    if path is not None and alpha > 0 and alpha < 1e30:
                        assert path != "reference", (a_s, b_s, alpha, y_s)


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
def test_qgemm_lean_path(isa_cap):
    """The common QGemm call (alpha 1, no transposes, float32 scalar scales, a uint8 / int8
    numpy zero point for y, C absent or a contiguous int32 (N,)) runs without the generic glue:
    the reference's bits for uint8 / int8 A and outputs, every zero point, packed B, profiles
    with int16 pair saturation (onnxruntime-avx2) and with multiplier rules (qnnpack, fbgemm's
    INT32_MIN conversion); C's other forms, views and the declined calls give the same bits
    through the generic path or the reference."""
    rng = np.random.default_rng(1445)
    f = np.float32
    for prof in ("onnx", "onnxruntime", "onnxruntime-avx2", "pytorch-qnnpack", "pytorch-fbgemm",
                 "tflite-xnnpack", "tflite-optimized"):
        for M, K, N in ((1, 64, 48), (5, 33, 17), (64, 128, 96)):
            for adt, bdt in ((np.uint8, np.int8), (np.int8, np.int8), (np.uint8, np.uint8)):
                A, B = _rand(rng, adt, (M, K)), _rand(rng, bdt, (K, N))
                za = adt(rng.integers(np.iinfo(adt).min, np.iinfo(adt).max + 1))
                zb = bdt(0) if prof.startswith(("tflite", "pytorch")) else \
                    bdt(rng.integers(np.iinfo(bdt).min, np.iinfo(bdt).max + 1))
                C = rng.integers(-5000, 5000, N).astype(np.int32)
                for Cv in (None, C, C[None], C[::-1].copy()[::-1]):
                    for yz in (np.uint8(128), np.int8(-3)):
                        args = (A, f(0.02), za, B, f(0.011), zb, Cv, f(0.3), yz)
                        _same_as_reference(lambda: refquant.qgemm(*args, profile=prof),
                                           lambda: R.qgemm(*args, profile=prof), f"{prof} {adt} {bdt}")
                args = (A, f(0.02), za, refquant.pack_weights(B), f(0.011), zb, C, f(0.3), np.uint8(9))
                _same_as_reference(lambda: refquant.qgemm(*args, profile=prof),
                                   lambda: R.qgemm(A, *args[1:3], B, *args[4:], profile=prof), f"{prof} packed")
    # a tiny y_scale: fbgemm's INT32_MIN conversion (the multiplier rule declines the lean path)
    A, B = _rand(rng, np.uint8, (4, 40)), _rand(rng, np.int8, (40, 16))
    args = (A, f(0.5), np.uint8(0), B, f(0.5), np.int8(0), None, f(1e-9), np.uint8(100))
    _same_as_reference(lambda: refquant.qgemm(*args, profile="pytorch-fbgemm"),
                       lambda: R.qgemm(*args, profile="pytorch-fbgemm"), "fbgemm tiny y_scale")


def test_compiled_entries_fold_batch_dimensions():
    """A C-contiguous A (..., M, K) against a 2-D B (the transformer case) takes the compiled
    MatMulInteger / QLinearMatMul entries with its batch dimensions folded into the rows; other
    batched forms (a strided A, a batched B, an empty batch) are declined to the glue, which
    gives the reference's bits too."""
    rng = np.random.default_rng(97)
    B = _rand(rng, np.int8, (40, 24))
    bs = (rng.random(24) * 0.01 + 1e-4).astype(np.float32)
    for shape in ((3, 5, 40), (2, 3, 4, 40), (1, 1, 40)):
        A = _rand(rng, np.uint8, shape)
        got = _k.matmul_integer_lean(A, B, 7)
        assert got is not None and got[0].shape == shape[:-1] + (24,)
        _check(got[0], R.matmul_integer(A, B, 7), f"folded {shape}")
        for b_s in (np.float32(0.004), bs):
            args = (A, 0.02, 7, B, b_s, None, np.float32(0.3), np.uint8(5))
            got = _k.qlinear_matmul_lean(*args)
            assert got is not None
            _check(got[0], R.qlinear_matmul(*args), f"folded q {shape}")
            _check(refquant.qlinear_matmul(*args), R.qlinear_matmul(*args), f"top level q {shape}")
    A = _rand(rng, np.uint8, (4, 6, 40))
    for a_, b_ in ((A[:, ::2], B), (A, np.stack([B] * 4)), (A[:0], B), (A.transpose(1, 0, 2), B)):
        assert _k.matmul_integer_lean(a_, b_, 7) is None
        _check(refquant.matmul_integer(a_, b_, 7), R.matmul_integer(a_, b_, 7), f"declined {a_.shape} {b_.shape}")


def test_kslab_driver_few_rows_large_b():
    """Few rows (up to 48, 64 with K >= 4096, 128 with K > 4096) against a plain B larger than half the L2
    run the K-slab AMX driver: slabs of 256 whole rows of B packed in walk order (column blocks
    whose slab fits half the L2; threads take runs of column groups through every slab), the raw sums accumulated in an int32 scratch over the slabs,
    one epilogue.  The reference's bits with the driver on and off, for K and N tails (a last slab
    shorter than 256 rows, K not a multiple of 4, a last group narrower than 64 columns), several column blocks, int8 /
    uint8 A and B with zero points, per-column scales and zero points, bias, 8-bit and int32
    outputs, 1 and 2 threads."""
    if "amx" not in AVAILABLE:
        pytest.skip("AMX driver")
    rng = np.random.default_rng(71)
    prev = _k._kslab()
    try:
        for (M, K, N) in ((16, 1024, 2048), (8, 700, 4100), (20, 4500, 520), (3, 2112, 2048), (40, 4160, 320),
                          (12, 1027, 1300), (6, 2100, 2100)):
            for adt, bdt in ((np.uint8, np.int8), (np.int8, np.int8), (np.uint8, np.uint8), (np.int8, np.uint8)):
                A = _rand(rng, adt, (M, K))
                B = _rand(rng, bdt, (K, N))
                az = adt(rng.integers(0, 100))
                bz = bdt(rng.integers(0, 100)) if rng.random() < 0.5 else rng.integers(0, 100, N).astype(bdt)
                want = R.matmul_integer(A, B, az, bz)
                ws = rng.uniform(1e-5, 1e-3, N).astype(np.float32)
                bias = rng.integers(-99999, 99999, N).astype(np.int32)
                qa = (A, np.float32(0.02), az, B, ws, bz, np.float32(0.3), np.uint8(7))
                want_q = R.qlinear_matmul(*qa)
                for on in (True, False):
                    _k._kslab(on)
                    for nt in (1, 2):
                        refquant.set_num_threads(nt)
                        what = f"{M}x{K}x{N} {adt.__name__}/{bdt.__name__} kslab={on} t={nt}"
                        got = refquant.matmul_integer(A, B, az, bz)
                        assert np.array_equal(got, want), what
                        assert np.array_equal(refquant.qlinear_matmul(*qa), want_q), f"q {what}"
                if bdt == np.int8 and np.ndim(bz) == 0:
                    qg = refquant.qgemm(A, np.float32(0.02), az, B, np.float32(0.001), bz, bias,
                                        np.float32(0.3), np.uint8(7))
                    assert np.array_equal(qg, R.qgemm(A, np.float32(0.02), az, B, np.float32(0.001), bz, bias,
                                                      np.float32(0.3), np.uint8(7))), f"qgemm {M}x{K}x{N}"
    finally:
        _k._kslab(prev)
        refquant.set_num_threads(None)


def _large_b_cases(rng, shapes, packed):
    """MatMulInteger and QLinearMatMul (per-column scales) against the reference for each (M, K, N),
    u8 x s8 and s8 x u8 with per-tensor or per-column B zero points, B plain or packed, at 1 and
    2 threads."""
    try:
        for (M, K, N) in shapes:
            for adt, bdt in ((np.uint8, np.int8), (np.int8, np.uint8)):
                A = _rand(rng, adt, (M, K))
                B = _rand(rng, bdt, (K, N))
                Bx = refquant.pack_weights(B) if packed else B
                az = adt(rng.integers(0, 100))
                bz = bdt(rng.integers(0, 100)) if rng.random() < 0.5 else rng.integers(0, 100, N).astype(bdt)
                want = R.matmul_integer(A, B, az, bz)
                ws = rng.uniform(1e-5, 1e-3, N).astype(np.float32)
                qa = (A, np.float32(0.02), az, B, ws, bz, np.float32(0.3), np.int8(-7))
                want_q = R.qlinear_matmul(*qa)
                qx = qa[:3] + (Bx,) + qa[4:]
                for nt in (1, 2):
                    refquant.set_num_threads(nt)
                    what = f"{M}x{K}x{N} {adt.__name__}/{bdt.__name__} packed={packed} t={nt}"
                    assert np.array_equal(refquant.matmul_integer(A, Bx, az, bz), want), what
                    assert np.array_equal(refquant.qlinear_matmul(*qx), want_q), f"q {what}"
    finally:
        refquant.set_num_threads(None)


def test_kslab_packed_b():
    """Packed B beyond the L2 with few rows (up to 128 with K > 1024, 256 with K >= 4096) runs by K
    slabs of up to 4096 rows read in place: every column of a slab against A's slice, raw sums
    accumulated in an int32 scratch across slabs, one epilogue with the packed column sums.  The
    reference's bits for one and several slabs, K and N tails, row counts around the 16-row tiles
    and the 32-row strips, int8 / uint8 A and B with zero points (per column too), per-column
    scales, int8 and int32 outputs, 1 and 2 threads."""
    if "amx" not in AVAILABLE:
        pytest.skip("AMX driver")
    _large_b_cases(np.random.default_rng(72), ((16, 1100, 2100), (33, 4100, 600), (64, 9000, 300), (200, 4096, 640),
                                                (5, 2050, 1200)), packed=True)


def test_walkpack_plain_b():
    """A plain B beyond twice the L2 with 49 to 256 rows and K >= 3072 (one thread): B packed
    whole in walk order with its panels (Kp + 4) * 16 bytes apart, then the packed K slabs.  The
    reference's bits for K and N tails, K not a multiple of 4, int8 / uint8 A and B with zero
    points (per column too), per-column scales, int8 and int32 outputs (2 threads take the
    column-block paths: the same bits)."""
    if "amx" not in AVAILABLE:
        pytest.skip("AMX driver")
    _large_b_cases(np.random.default_rng(73), ((100, 3100, 1400), (160, 4096, 1100), (65, 3075, 1500),
                                                (256, 3200, 1400)), packed=False)


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
def test_zero_inner_dimension_every_isa(isa_cap):
    """K = 0 at every ISA level: the all-zero accumulator (plus the epilogue's bias and zero
    point), as the reference gives (the AVX2 / AVX-512 BW kernels divided by K when sizing their
    column blocks: SIGFPE, found by a differential fuzz in session 15); batched A folded into
    the rows; per-channel scales and zero points of zero size for N = 0."""
    f32 = np.float32
    for M, N in ((1, 1), (5, 40), (130, 3)):
        A = np.zeros((M, 0), np.uint8)
        B = np.zeros((0, N), np.int8)
        for a_, za in ((A, np.uint8(3)), (np.zeros((2, M, 0), np.uint8), np.uint8(3)),
                       (A, np.full(M, 7, np.uint8))):
            got = refquant.matmul_integer(a_, B, za, np.int8(2))
            want = R.matmul_integer(a_, B, za, np.int8(2))
            assert got.shape == want.shape and np.array_equal(got, want)
        q = (A, f32(0.1), np.uint8(3), B, f32(0.2), np.int8(0), f32(0.5), np.uint8(9))
        np.testing.assert_array_equal(refquant.qlinear_matmul(*q), R.qlinear_matmul(*q))
        C = np.arange(N, dtype=np.int32) * 1000
        g = q[:6] + (C,) + q[6:]
        np.testing.assert_array_equal(refquant.qgemm(*g), R.qgemm(*g))
    # N = 0 with a (0,) per-column scale: the same result, or the same error as the reference
    A = np.ones((3, 4), np.uint8)
    B = np.ones((4, 0), np.int8)
    for yz in (np.uint8(1), np.int32(1)):
        g = (A, f32(0.1), np.uint8(3), B, np.zeros(0, f32) + f32(0.2), np.zeros(0, np.int8), None, f32(0.5), yz)
        try:
            want = R.qgemm(*g)
        except Exception as e:   # noqa: BLE001
            with pytest.raises(type(e)):
                refquant.qgemm(*g)
            continue
        got = refquant.qgemm(*g)
        assert got.shape == want.shape and got.dtype == want.dtype


@pytest.mark.parametrize("isa", [pytest.param(i, marks=pytest.mark.skipif(
    i not in AVAILABLE, reason=f"{i} not compiled/supported here")) for i in ("avx2", "avx512")])
def test_int16_gemm_b_packing_vector_blocks(isa):
    """The exact int16 GEMMs (AVX2: 8-column panels, AVX-512 BW: 16-column panels; 5 rows and
    more, fewer run the GEMV) pack B' = B - zb 16 columns at a time when B has a unit column
    stride (gemm_i16_pack.inc: blocks of 4, k-pairs inner) and column by column otherwise:
    column slices of wider arrays, rows reversed (negative row stride), odd K (the last k-pair
    half zero), N around 16 and 64, per-column zero points, every sign combination, 1 and 2
    threads."""
    rng = np.random.default_rng(16)
    _use_level(isa)
    try:
        for threads in (1, 2):
            refquant.set_num_threads(threads)
            for _ in range(60):
                M, K = int(rng.integers(5, 20)), int(rng.integers(1, 70))   # (1-4 rows: the GEMV)
                N = int(rng.choice([15, 16, 17, 48, 63, 64, 65, 80, 129]))
                at, bt = rng.choice([np.uint8, np.int8]), rng.choice([np.uint8, np.int8])
                a = _rand(rng, at, (M, K))
                wide = _rand(rng, bt, (K, N + int(rng.integers(0, 20))))
                b = wide[:, :N] if rng.random() < 0.7 else wide[::-1, :N]
                zb = _rand(rng, bt, (N,)) if rng.random() < 0.4 else _rand(rng, bt, ())
                za = _rand(rng, at, ())
                got = refquant.matmul_integer(a, b, za, zb)
                assert refquant.last_path()["path"] == f"gemm_i16__{isa}"
                _check(got, R.matmul_integer(a, b, za, zb), f"{M}x{K}x{N} {at.__name__}x{bt.__name__}")
    finally:
        refquant.set_num_threads(None)
        _use_level(None)


@pytest.mark.parametrize("isa", [pytest.param(i, marks=pytest.mark.skipif(
    i not in AVAILABLE, reason=f"{i} not compiled/supported here")) for i in ("avx2", "avx512")])
def test_int16_gemv_plain_b(isa):
    """1 to 4 rows of a plain B below VNNI run the exact int16 GEMV (gemv_i16__avx2, also at the
    AVX-512 BW level): B read in place in 16-column strips, pairs of rows interleaved and
    widened, minus each column's zero point, times (A - za) pairs (vpmaddwd), in slabs of 8
    rows.  K around the pairs and slabs (odd K: the last row from a padded copy), N around the
    strips (the last partial strip from a padded copy), column slices and reversed rows of B,
    Fortran-ordered A, per-row and per-column zero points, every sign pair, int32 and
    requantized outputs, the int32 wraparound, 1 and 2 threads; a B without a unit column stride
    runs the GEMM."""
    rng = np.random.default_rng(19)
    _use_level(isa)
    try:
        for threads in (1, 2):
            refquant.set_num_threads(threads)
            for it in range(100):
                M = int(rng.integers(1, 5))
                K = int(rng.choice([1, 2, 3, 7, 8, 9, 15, 16, 17, 64, 131]))
                N = int(rng.choice([1, 15, 16, 17, 33, 64, 70]))
                at, bt = rng.choice([np.uint8, np.int8]), rng.choice([np.uint8, np.int8])
                a = _rand(rng, at, (M, K))
                if it % 3 == 1:
                    a = np.asfortranarray(a)
                b = _rand(rng, bt, (K, N + 5))
                b = b[:, 1:N + 1] if it % 2 else b[::-1, :N]
                za = _rand(rng, at, (M,)) if it % 4 == 0 else _rand(rng, at, ())
                zb = _rand(rng, bt, (N,)) if it % 5 == 0 else _rand(rng, bt, ())
                what = f"{M}x{K}x{N} {at.__name__}x{bt.__name__} t={threads}"
                _check(refquant.matmul_integer(a, b, za, zb), R.matmul_integer(a, b, za, zb), what)
                assert refquant.last_path()["path"] == "gemv_i16__avx2", what
                if np.ndim(za) == 0:
                    args = (a, np.float32(0.02), za, b, np.float32(0.03), zb, np.float32(0.9), np.int8(-4))
                    _check(refquant.qlinear_matmul(*args), R.qlinear_matmul(*args), "qlinear " + what)
        a = np.full((3, 70000), 255, np.uint8)
        b = np.full((70000, 17), -128, np.int8)
        b[::3] = 127
        _check(refquant.matmul_integer(a, b, np.uint8(1)), R.matmul_integer(a, b, np.uint8(1)), "wraparound")
        ak, bk = _rand(rng, np.int8, (4, 5003)), _rand(rng, np.uint8, (5003, 70))   # K slices, 2 threads
        zk = _rand(rng, np.uint8, (70,))
        _check(refquant.matmul_integer(ak, bk, np.int8(-3), zk), R.matmul_integer(ak, bk, np.int8(-3), zk), "K slices")
        bf = np.asfortranarray(_rand(rng, np.int8, (40, 20)))
        _check(refquant.matmul_integer(a[:, :40], bf), R.matmul_integer(a[:, :40], bf), "Fortran B")
        assert refquant.last_path()["path"] == f"gemm_i16__{isa}"
    finally:
        refquant.set_num_threads(None)
        _use_level(None)


@pytest.mark.skipif("avx2" not in AVAILABLE, reason="avx2 not compiled/supported here")
def test_vnni4_packing_avx2_same_bytes():
    """The AVX2 VNNI-4 packer (rq_pack_b_rows__avx2: the levels below AVX-512 VNNI, for the
    vpmaddubsw kernels and pack_weights) writes the generic packer's panels and column sums
    byte for byte: int8 and uint8 B, K around the 4-row groups and the 64-row padding, N around
    the 16-column panels (a partial last panel column by column), column slices and reversed
    rows, 1 and 2 threads."""
    rng = np.random.default_rng(17)
    for threads in (1, 2):
        for _ in range(80):
            K, N = int(rng.integers(1, 150)), int(rng.choice([1, 15, 16, 17, 31, 48, 64, 65, 100]))
            dt = rng.choice([np.uint8, np.int8])
            wide = _rand(rng, dt, (K, N + int(rng.integers(0, 10))))
            b = wide[:, :N] if rng.random() < 0.7 else wide[::-1, :N]
            got = _k.pack_b(b, _cpu._level("avx2"), threads)._bytes()
            want = _k.pack_b(b, _cpu._level("scalar"), 1)._bytes()
            for g, w, what in zip(got, want, ("panels", "column sums")):
                assert np.array_equal(g, w), (K, N, dt.__name__, what)


@pytest.mark.skipif("avxvnni" not in AVAILABLE, reason="no AVX-VNNI here (or its kernel not built)")
def test_avxvnni_gemm_tiles_and_layouts():
    """The AVX2 level's AVX-VNNI GEMM (gemm_vnni4__avxvnni: ymm vpdpbusd, 6 / 4 / 2 / 1-row
    tiles of one 16-column panel, a uint8 A with K % 4 == 0 read in place, other A copied as
    A_used) and GEMV (gemv_vnni4__avxvnni: 1 to 4 rows, a plain B read in place in 16-column
    strips, slabs of 8 rows; a row of ones for B's column sums): rows 1-14 (every tile and
    remainder), K around the 4-byte groups and the slabs, N around the strips and panels, every
    sign pair, per-row / per-column zero points, A at an odd address, Fortran order and column
    slices, B plain (also reversed rows, column slices, Fortran order: the GEMM) and packed,
    int32 and requantized outputs, 1 and 2 threads; each call must run the kernel its shape
    picks and give the reference's bits."""
    rng = np.random.default_rng(18)
    _use_level("avxvnni")
    try:
        for threads in (1, 2):
            refquant.set_num_threads(threads)
            for it in range(120):
                M = int(rng.integers(1, 15))
                K = int(rng.choice([1, 3, 4, 5, 8, 63, 64, 65, 128, 131]))
                N = int(rng.choice([1, 15, 16, 17, 33, 64, 70]))
                at, bt = rng.choice([np.uint8, np.int8]), rng.choice([np.uint8, np.int8])
                a = _rand(rng, at, (M, K))
                if it % 4 == 1:
                    a = np.asfortranarray(a)
                elif it % 4 == 2:                  # rows in place, at an odd address
                    buf = np.empty(M * K + 1, np.uint8)
                    a = buf[1:].view(at).reshape(M, K)
                    a[...] = _rand(rng, at, (M, K))
                elif it % 4 == 3:
                    a = _rand(rng, at, (M, K + 3))[:, 1:K + 1]
                b = _rand(rng, bt, (K, N))
                if it % 6 == 2:
                    b = _rand(rng, bt, (K, N + 5))[::-1, 2:N + 2]
                elif it % 6 == 4:
                    b = np.asfortranarray(b)
                za = _rand(rng, at, (M,)) if it % 3 == 0 else _rand(rng, at, ())
                zb = _rand(rng, bt, (N,)) if it % 5 == 0 else _rand(rng, bt, ())
                what = f"{M}x{K}x{N} {at.__name__}x{bt.__name__} t={threads}"
                bb = refquant.pack_weights(b) if it % 2 else b
                _check(refquant.matmul_integer(a, bb, za, zb), R.matmul_integer(a, b, za, zb), what)
                gemv = M <= 4 and bb is b and b.strides[1] == 1
                assert refquant.last_path()["path"] == ("gemv" if gemv else "gemm") + "_vnni4__avxvnni", what
                if np.ndim(za) == 0:
                    args = (a, np.float32(0.02), za, bb, np.float32(0.03), zb, np.float32(0.9), np.uint8(100))
                    want = R.qlinear_matmul(*[b if x is bb else x for x in args])
                    _check(refquant.qlinear_matmul(*args), want, "qlinear " + what)
        # the GEMV's K slices at 2 threads (sums added afterwards): K with a tail, a partial strip
        refquant.set_num_threads(2)
        for at, bt in ((np.uint8, np.int8), (np.int8, np.uint8)):
            a, b = _rand(rng, at, (3, 5003)), _rand(rng, bt, (5003, 70))
            za, zb = _rand(rng, at, (3,)), _rand(rng, bt, (70,))
            _check(refquant.matmul_integer(a, b, za, zb), R.matmul_integer(a, b, za, zb), "gemv K slices")
            assert refquant.last_path()["path"] == "gemv_vnni4__avxvnni"
        # the int32 wraparound of long dot products at the extremes (GEMM and GEMV)
        for m in (7, 2):
            a = np.full((m, 70000), 255, np.uint8)
            b = np.full((70000, 17), -128, np.int8)
            b[::3] = 127
            _check(refquant.matmul_integer(a, b, np.uint8(1)), R.matmul_integer(a, b, np.uint8(1)), f"wraparound {m}")
        # packed conv weights serve this level too (im2col + this GEMM)
        x = _rand(rng, np.uint8, (1, 24, 9, 11))
        w = _rand(rng, np.int8, (40, 24, 3, 3))
        pw = refquant.pack_weights(w)
        args = (x, np.float32(0.02), np.uint8(7), pw, np.float32(0.01), np.int8(0), np.float32(0.3), np.uint8(9))
        want = R.qlinear_conv(*[w if v is pw else v for v in args], pads=[1, 1, 1, 1])
        _check(refquant.qlinear_conv(*args, pads=[1, 1, 1, 1]), want, "conv packed")
        assert refquant.last_path()["path"] == "gemm_vnni4__avxvnni"
    finally:
        refquant.set_num_threads(None)
        _use_level(None)


# ------------------------------------------------------------------ requantize (the epilogue alone)
_RQ_PROFILES = ["onnx", "onnxruntime", "onnxruntime-avx2", "pytorch-fbgemm", "pytorch-qnnpack",
                "tflite-reference", "tflite-optimized", "tflite-xnnpack", "tensorrt"]


def _rq_mult(rng, kind, n):
    if kind == "scalar":
        return np.float32(rng.choice([1e-6, 3.1e-4, 0.0123, 0.5, 1.0, 7.0]))
    if kind == "tiny":
        return np.float32(rng.choice([0.0, 1e-30, 1.4e-45]))
    if kind == "f64":
        return np.float64(rng.uniform(1e-5, 0.3))
    return (rng.uniform(1e-5, 0.05, n) * rng.choice([1, 10, 1e3], n)).astype(np.float32)


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2 ** 32 - 1),
       shape=st.sampled_from([(), (1,), (5,), (17,), (3, 1), (3, 64), (7, 33), (2, 3, 65), (1, 16385)]),
       mkind=st.sampled_from(["scalar", "tiny", "f64", "column"]),
       bkind=st.sampled_from([None, "scalar", "column", "full"]),
       odt=st.sampled_from([np.uint8, np.int8]), prof=st.sampled_from(_RQ_PROFILES),
       layout=st.sampled_from(["C", "F", "strided"]), threads=st.sampled_from([1, 2]),
       axis=st.sampled_from([-1, 0, 1, -2]))
def test_requantize_kernel_matches_reference(isa_cap, seed, shape, mkind, bkind, odt, prof, layout,
                                             threads, axis):
    """refquant.requantize runs the GEMM's epilogue kernels (rq_epi_rows__<isa>) over any int32
    accumulator -- 0-d to 3-D, C / Fortran / strided, int32 extremes, a bias that wraps -- with a
    multiplier of one value or one per channel of any axis (per column for the last, per row
    otherwise; float32, float64, zero, subnormal), a bias of one value, one per channel or acc's
    shape, every zero point, uint8 / int8, for each
    profile whose epilogue the kernels implement (float method and TFLite's fixed point), 1 and 2
    threads; the reference's bits, or the reference runs (and says so)."""
    rng = np.random.default_rng(seed)
    acc = rng.integers(-2 ** 31, 2 ** 31, shape, dtype=np.int64).astype(np.int32)
    if acc.size:
        small = rng.random(shape) < 0.7
        acc[small] = rng.integers(-3000, 3000, int(small.sum()))
        acc.reshape(-1)[: min(4, acc.size)] = [2 ** 31 - 1, -2 ** 31, 0, -1][: min(4, acc.size)]
    if layout != "C" and acc.ndim >= 2:
        acc = _layout(rng, acc, layout) if acc.ndim == 2 else np.asfortranarray(acc)
    if not shape or len(shape) <= (axis if axis >= 0 else -axis - 1):
        axis = -1
    n_last = shape[axis] if shape else 1
    if mkind == "column" and not shape:
        mkind = "scalar"
    m = _rq_mult(rng, mkind, n_last)
    lo, hi = (0, 255) if odt == np.uint8 else (-128, 127)
    zp = odt(rng.choice([lo, hi, (lo + hi) // 2, lo + 1]))
    bias = None
    if bkind == "scalar":
        bias = np.int32(rng.choice([0, 77, -2 ** 31, 2 ** 31 - 1]))
    elif bkind == "column" and shape:
        bias = rng.integers(-2 ** 31, 2 ** 31, n_last, dtype=np.int64).astype(np.int32)
    elif bkind == "full":
        bias = rng.integers(-5000, 5000, shape).astype(np.int32)
    refquant.set_num_threads(threads)
    try:
        kw = dict(output_dtype=odt, bias=bias, profile=prof, axis=axis)
        with np.errstate(all="ignore"):
            try:
                want = R.requantize(acc, m, zp, **kw)
            except Exception as exc:       # the dispatcher must raise the same kind of error
                with pytest.raises(type(exc)):
                    refquant.requantize(acc, m, zp, **kw)
                return
        got = refquant.requantize(acc, m, zp, **kw)
        path = refquant.last_path()["path"]
    finally:
        refquant.set_num_threads(None)
    _check(got, want, f"{prof} {shape} {mkind} {bkind} {odt.__name__}")
    p = get_profile(prof)
    covered = (p.rq_method == "fixed_point" or (p.rq_bias == "int32" or bias is None)) and mkind != "tiny"
    if covered and prof not in ("pytorch-fbgemm", "pytorch-qnnpack", "tflite-xnnpack"):
        # (those three have multiplier bounds: some multipliers run the reference)
        lvl = {"scalar": "scalar", "avx2": "avx2", "avxvnni": "avx2"}.get(isa_cap, "avx512")
        assert path == f"rq_epi_rows__{lvl}", path


def test_requantize_declines_to_reference():
    """What the epilogue kernels do not implement runs the reference, named as such: a float
    bias, per-channel zero points, 16-bit outputs, the oneDNN and float64 epilogues, an int64
    accumulator."""
    acc = np.arange(-60, 60, dtype=np.int32).reshape(4, 30)
    m = np.float32(0.1)
    calls = [
        dict(args=(acc, m, np.uint8(3)), kw=dict(output_dtype=np.uint8, bias=np.float32(2.5),
                                                 profile="pytorch-fbgemm", bias_scale=np.float32(0.5))),
        dict(args=(acc, m, np.full(30, 3, np.uint8)), kw=dict(output_dtype=np.uint8)),
        dict(args=(acc, m, np.int16(3)), kw=dict(output_dtype=np.int16)),
        dict(args=(acc, m, np.uint8(3)), kw=dict(output_dtype=np.uint8, profile="onnx-reference")),
        dict(args=(acc.astype(np.int64), m, np.uint8(3)), kw=dict(output_dtype=np.uint8)),
    ]
    for c in calls:
        got = refquant.requantize(*c["args"], **c["kw"])
        assert refquant.last_path()["path"] == "reference", c
        np.testing.assert_array_equal(got, R.requantize(*c["args"], **c["kw"]))
    refquant.requantize(acc, m, np.uint8(3), output_dtype=np.uint8)
    assert refquant.last_path()["path"].startswith("rq_epi_rows__")


def test_concurrent_python_threads_gemm_and_conv():
    """GEMM and conv kernels release the GIL: Python threads calling them at once (plain and
    packed B, the GEMV, an implicit conv) get the same bits as one call at a time."""
    rng = np.random.default_rng(31)
    shapes = [(1, 2048, 256), (64, 256, 256), (37, 300, 130), (3, 1000, 64)]
    cases = [(_rand(rng, np.uint8, (M, K)), _rand(rng, np.int8, (K, N))) for M, K, N in shapes]
    cases.append((cases[1][0], refquant.pack_weights(cases[1][1])))
    q = (np.float32(0.02), np.uint8(3))
    r = (np.float32(0.01), np.int8(0), np.float32(0.5), np.uint8(9))
    want = [R.qlinear_matmul(A, *q, refquant._packed.unwrap(B) if not isinstance(B, np.ndarray) else B, *r)
            for A, B in cases]
    x = _rand(rng, np.uint8, (1, 32, 14, 14))
    w = _rand(rng, np.int8, (64, 32, 3, 3))
    wc = R.qlinear_conv(x, *q, w, *r, pads=[1, 1, 1, 1])
    bad = []

    def work(t):
        for it in range(12):
            i = (t + it) % len(cases)
            if not np.array_equal(refquant.qlinear_matmul(cases[i][0], *q, cases[i][1], *r), want[i]):
                bad.append(("gemm", t, it))
            if it % 4 == 0 and not np.array_equal(refquant.qlinear_conv(x, *q, w, *r, pads=[1, 1, 1, 1]), wc):
                bad.append(("conv", t, it))

    run_in_threads(work, 4)
    assert not bad, bad[:5]


def test_kernels_release_the_gil():
    """A Python thread keeps running while one long kernel call is in progress (the kernels
    release the GIL): its counter moves during the call.  A 50 ms switch interval, far longer
    than the call (a few ms), keeps the interpreter from handing the GIL over at its own
    pace: with the GIL held through the call the counter would not move."""
    import sys
    import threading
    import time
    rng = np.random.default_rng(3)
    A, B = _rand(rng, np.uint8, (1024, 1024)), _rand(rng, np.int8, (1024, 1024))
    count, stop = [0], threading.Event()

    def spin():
        while not stop.is_set():
            count[0] += 1

    refquant.set_num_threads(1)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.05)
    t = threading.Thread(target=spin)
    t.start()
    try:
        time.sleep(0.01)
        moved = 0
        for _ in range(40):         # the largest move over up to 40 calls (a loaded machine
            c0 = count[0]           # may not schedule the thread during every one)
            refquant.matmul_integer(A, B, np.uint8(3), np.int8(0))
            moved = max(moved, count[0] - c0)
            if moved > 1000:
                break
    finally:
        stop.set()
        t.join()
        sys.setswitchinterval(interval)
        refquant.set_num_threads(None)
    assert moved > 1000, moved
