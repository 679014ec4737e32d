"""Runtime CPU dispatch: the dispatcher picks the best ISA the build and the CPU allow, and
REFQUANT_DISABLE_ISA / REFQUANT_MAX_ISA / refquant._cpu.set_isa_cap demote it (numpy's
test_cpu_dispatcher idea).  Also the fast/reference switch, threads and show_config.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import refquant

_cpu = pytest.importorskip("refquant._cpu", reason="compiled extension not built (pip install -e .)")
from refquant import _config  # noqa: E402

LEVELS = ("scalar", "avx2", "avx512", "avx512vnni", "amx")
import _isa_levels  # noqa: E402  (tests/ on sys.path: conftest.py)


def _expected_hw_level(f):
    """The level the CPU/OS support, computed independently from the feature bits."""
    lvl = "scalar"
    if all(f[k] for k in ("avx", "avx2", "fma", "f16c", "bmi2", "os_ymm")):
        lvl = "avx2"
        if all(f[k] for k in ("avx512f", "avx512bw", "avx512dq", "avx512vl", "os_zmm")):
            lvl = "avx512"
            if f["avx512vnni"]:
                lvl = "avx512vnni"
                if f["amx_tile"] and f["amx_int8"] and f["os_tile"] and f["amx_permitted"]:
                    lvl = "amx"
    return lvl


def _run(code, **env):
    e = dict(os.environ)
    for k in ("REFQUANT_DISABLE_ISA", "REFQUANT_MAX_ISA", "REFQUANT_DISABLE_FAST", "OMP_NUM_THREADS"):
        e.pop(k, None)
    e.update(env)
    r = subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip(), r.stderr


def _quant_isa(level):
    """The quantize kernels exist at scalar/avx2/avx512; higher levels use avx512."""
    i = LEVELS.index(level)
    return LEVELS[min(i, 2)]


@pytest.fixture(autouse=True)
def _no_cap():
    _isa_levels.use(None)
    yield
    _isa_levels.use(None)


def test_picks_best_available():
    if os.environ.get("REFQUANT_DISABLE_ISA") or os.environ.get("REFQUANT_MAX_ISA"):
        pytest.skip("environment caps the ISA")
    f = _cpu.features()
    hw = _expected_hw_level(f)
    assert _cpu.supported_isas() == list(LEVELS[:LEVELS.index(hw) + 1])
    compiled = _cpu.compiled_isas()
    assert compiled[0] == "scalar" and compiled == list(LEVELS[:len(compiled)])
    best = min(LEVELS.index(hw), len(compiled) - 1)
    assert _cpu.isa_name() == LEVELS[best]
    assert _cpu.isa_level() == best
    assert _config.isa_level() == LEVELS[best]
    info = refquant._dispatch.kernel_info()
    assert info["QuantizeLinear"].endswith("__" + _quant_isa(LEVELS[best]))
    assert info["DequantizeLinear"].endswith("__" + _quant_isa(LEVELS[best]))


def test_features_consistent():
    f = _cpu.features()
    assert set(f) >= {"avx2", "avx512f", "avx512bw", "avx512vnni", "amx_tile", "amx_int8"}
    if f["avx512bw"]:
        assert f["avx512f"]
    if _cpu.cpu_has("amx"):
        assert f["amx_permitted"] and _cpu.amx_enable()


@pytest.mark.parametrize("cap", LEVELS)
def test_cap_demotes(cap):
    top = _cpu.isa_level()
    got = _cpu.set_isa_cap(cap)
    assert got == min(top, LEVELS.index(cap))
    assert _cpu.get_isa_cap() == cap
    x = np.linspace(-2, 2, 333, dtype=np.float32)
    refquant.quantize_linear(x, np.float32(0.01), np.int8(0))
    assert refquant.last_path()["path"].endswith("__" + _quant_isa(LEVELS[got]))
    _cpu.set_isa_cap(None)
    assert _cpu.isa_level() == top


@pytest.mark.parametrize("env, expect", [
    ({"REFQUANT_DISABLE_ISA": "avx2"}, "scalar"),
    ({"REFQUANT_DISABLE_ISA": "avx512"}, "avx2"),
    ({"REFQUANT_DISABLE_ISA": "amx,avx512vnni"}, "avx512"),
    ({"REFQUANT_DISABLE_ISA": "AMX"}, "avx512vnni"),
    ({"REFQUANT_MAX_ISA": "avx2"}, "avx2"),
    ({"REFQUANT_MAX_ISA": "scalar"}, "scalar"),
])
def test_environment_demotes(env, expect):
    top = _cpu.isa_level()
    want = LEVELS[min(top, LEVELS.index(expect))]
    code = ("import numpy as np, refquant, refquant._cpu as c; "
            "refquant.quantize_linear(np.ones(40, np.float32), np.float32(0.5), np.uint8(1)); "
            "print(c.isa_name(), refquant.last_path()['path'])")
    out, _ = _run(code, **env)
    name, path = out.split()
    assert name == want
    assert path.endswith("__" + _quant_isa(want))


def test_feature_switches():
    """AVX-VNNI and AVX512_VBMI are features kernels take inside a level: set_features_off and
    REFQUANT_DISABLE_ISA turn each off alone, the level stays; at the AVX2 level the GEMM is
    gemm_vnni4__avxvnni with AVX-VNNI and gemm_i16__avx2 without."""
    with pytest.raises(ValueError, match="unknown feature"):
        _cpu.set_features_off(["avx512"])
    f0, top = _cpu.features(), _cpu.isa_level()
    assert _cpu.set_features_off("avxvnni") == ["avxvnni"]
    assert _cpu.get_features_off() == ["avxvnni"]
    assert not _cpu.features()["avxvnni"] and _cpu.features()["avx2"] == f0["avx2"]
    assert _cpu.isa_level() == top
    assert _cpu.set_features_off(["avx512vbmi", "avxvnni"]) == ["avx512vbmi", "avxvnni"]
    assert not _cpu.features()["avx512vbmi"]
    assert _cpu.set_features_off(None) == [] and _cpu.features() == f0
    code = "import refquant._cpu as c; print(c.env_error() or '-', c.features()['avxvnni'], c.isa_level())"
    out, _ = _run(code, REFQUANT_DISABLE_ISA="avxvnni")
    assert out == f"- False {top}"
    if "avx2" in _cpu.available_isas():
        gemm = f"import refquant; print(refquant.kernel_info()['MatMulInteger'])"
        out, _ = _run(gemm, REFQUANT_MAX_ISA="avx2", REFQUANT_DISABLE_ISA="avxvnni")
        assert out == "gemm_i16__avx2"
        out, _ = _run(gemm, REFQUANT_MAX_ISA="avx2")
        assert out == ("gemm_vnni4__avxvnni" if "avxvnni" in _isa_levels.available() else "gemm_i16__avx2")


def test_unknown_isa_name_is_reported():
    code = ("import warnings, refquant, refquant._cpu as c; warnings.simplefilter('always'); "
            "print(c.env_error()); refquant._config.config_dict()")
    out, err = _run(code, REFQUANT_DISABLE_ISA="avx9000")
    assert "avx9000" in out and "avx9000" in err


def test_disable_fast():
    out, _ = _run("import numpy as np, refquant; "
                  "refquant.dequantize_linear(np.ones(4, np.uint8), np.float32(1)); "
                  "print(refquant.last_path()['path'], refquant._dispatch.kernel_info()['QuantizeLinear'])",
                  REFQUANT_DISABLE_FAST="1")
    assert out.startswith("reference reference")


def test_threads():
    n0 = refquant._config.get_num_threads()
    assert n0 >= 1
    try:
        assert refquant._config.set_num_threads(1) == 1
        assert _cpu.get_num_threads() == 1
        with pytest.raises(ValueError, match="num_threads"):
            refquant._config.set_num_threads(0)
        with pytest.raises(TypeError, match="num_threads"):
            refquant._config.set_num_threads(1.5)
    finally:
        refquant._config.set_num_threads(None)
    assert refquant._config.get_num_threads() == n0
    out, _ = _run("import refquant._config as c; print(c.get_num_threads())", OMP_NUM_THREADS="3")
    assert out == "3"


def test_state_shared_between_extensions():
    """A cap set through refquant._cpu reaches the quantize extension's copy of rq_cpu.c."""
    from refquant import _quant
    top = _cpu.isa_level()
    _cpu.set_isa_cap("scalar")
    assert _quant._kernel_isa_level() == 0 and _quant.level() == 0
    _cpu.set_isa_cap(None)
    assert _quant._kernel_isa_level() == top


def test_show_config():
    buf = io.StringIO()
    refquant.show_config(file=buf)
    text = buf.getvalue()
    for word in ("compiled ISAs", "CPU features", "ISA level", "threads", "QuantizeLinear",
                 "-ffp-contract=off"):
        assert word in text, word
    assert "-ffast-math" not in text
    cfg = _config.config_dict()
    json.dumps(cfg)
    assert cfg["compiled_isas"] == _cpu.compiled_isas()
    assert cfg["kernels"]["QuantizeLinear"].startswith("rq_quantize_")
    buf = io.StringIO()
    _config.show_config(file=buf, as_json=True)
    assert json.loads(buf.getvalue())["version"] == refquant.__version__


def test_output_buffer_pool_never_overwrites_a_live_result(monkeypatch):
    """Large outputs come from recycled buffers; a result (or a view of it) still referenced is
    never handed out again, and recycled results equal the reference.  (The compiled entries
    take outputs below 8 MiB with fresh arrays; the limit is lowered to the pool's 1 MiB here so
    that 1 MiB outputs exercise the pool.)"""
    import refquant
    from refquant import _quant_fast as qf
    monkeypatch.setattr(qf, "_LEAN_MAX_BYTES", qf._POOL_MIN)
    assert qf._pool_limit() == qf._POOL_MIN or qf._POOL_OFF
    rng = np.random.default_rng(0)
    n = (1 << 20) + 17
    xs = [(rng.standard_normal(n) * 50).astype(np.float32) for _ in range(3)]
    qs = [refquant.quantize_linear(x, np.float32(0.3), np.int8(1)) for x in xs]   # all alive
    assert all(any(np.shares_memory(q, b) for b in qf._POOL) for q in qs)   # pooled buffers
    view = qs[0][5:9]
    for x, q in zip(xs, qs):
        np.testing.assert_array_equal(q, refquant.reference.quantize_linear(x, np.float32(0.3),
                                                                            np.int8(1)))
    assert len({q.__array_interface__["data"][0] for q in qs}) == 3
    keep = view.copy()
    freed = {q.__array_interface__["data"][0] for q in qs[1:]}
    del qs
    q2 = refquant.quantize_linear(xs[1], np.float32(0.3), np.int8(1))   # reuses qs[1] or qs[2]
    assert q2.__array_interface__["data"][0] in freed
    np.testing.assert_array_equal(view, keep)          # the buffer behind `view` is untouched
    np.testing.assert_array_equal(q2, refquant.reference.quantize_linear(xs[1], np.float32(0.3),
                                                                         np.int8(1)))
    qi = refquant.quantize_linear(xs[2], np.float32(0.3), np.int8(1))
    d = refquant.dequantize_linear(qi, np.float32(0.3), np.int8(1))
    d2 = refquant.dequantize_linear(q2, np.float32(0.3), np.int8(1))
    assert d.__array_interface__["data"][0] != d2.__array_interface__["data"][0]
    np.testing.assert_array_equal(d, refquant.reference.dequantize_linear(qi, np.float32(0.3),
                                                                          np.int8(1)))
    qf.release_buffers()


def test_dimensions_beyond_int_run_the_reference(monkeypatch):
    """The C kernels size things with C ints: a dimension past 2**31 - 1 (a K of 2**32 + 5 would
    otherwise be truncated to 5) makes the compiled entries raise KernelSizeLimit before any C
    code runs, and the dispatcher runs the reference instead (stride-0 views: no memory used;
    the reference is replaced by a stub here)."""
    pytest.importorskip("refquant._gemm", reason="extensions not built")
    from numpy.lib.stride_tricks import as_strided
    from refquant import _dispatch as D, _gemm as k
    from refquant._errors import KernelSizeLimit
    K = 2**32 + 5
    A = as_strided(np.ones(1, np.uint8), shape=(1, K), strides=(0, 0))
    B = as_strided(np.ones(1, np.int8), shape=(K, 1), strides=(0, 0))
    for call in (lambda: k.matmul_s32(A, B, 0, 0), lambda: k.pack_b(B),
                 lambda: k.gemm(A, B, np.int32(0), np.int32(0), np.zeros((1, 1), np.int32))):
        with pytest.raises(KernelSizeLimit, match="4294967301"):
            call()
    for op in ("matmul_integer", "qlinear_matmul", "qlinear_conv", "conv_integer"):
        monkeypatch.setattr(D._ref, op, lambda *a, _op=op, **kw: _op)
    s, z8, zs8 = np.float32(0.5), np.uint8(1), np.int8(0)
    assert refquant.matmul_integer(A, B) == "matmul_integer"
    assert refquant.last_path()["path"] == "reference"
    assert refquant.matmul_integer(A, B, z8, profile="onnxruntime") == "matmul_integer"
    assert refquant.qlinear_matmul(A, s, z8, B, s, zs8, s, z8) == "qlinear_matmul"
    assert refquant.last_path()["path"] == "reference"
    x = as_strided(np.ones(1, np.uint8), shape=(1, 1, 46341, 46341), strides=(0, 0, 0, 0))
    w = np.ones((1, 1, 1, 1), np.int8)
    assert refquant.qlinear_conv(x, s, z8, w, s, zs8, s, z8) == "qlinear_conv"
    assert refquant.last_path()["path"] == "reference"
    assert refquant.conv_integer(x, w, z8, zs8) == "conv_integer"
    assert refquant.last_path()["path"] == "reference"


def _op_calls(rng, x, q16, a, b, xc, w):
    """(refquant.<op>, reference op, args, attributes) for every op family on the given arrays
    (x float32, q16 int16 with 300+ values, a uint8 (M, K), b int8 (K, N), xc NCHW uint8, w
    OIHW int8): the calls the layout tests move around."""
    from refquant import reference as R
    N, O = b.shape[1], w.shape[0]
    return [
        (refquant.quantize_linear, R.quantize_linear, [x, np.float32(0.05), np.int16(3)], {}),
        (refquant.quantize_linear, R.quantize_linear, [x, np.array(0.05, np.float32), np.uint8(3)], {}),
        (refquant.dequantize_linear, R.dequantize_linear, [q16, np.float32(0.5), np.int16(2)], {}),
        (refquant.dequantize_linear, R.dequantize_linear,
         [q16[:300].reshape(30, 10), np.full(10, 0.5, np.float32), np.zeros(10, np.int16)], {"axis": 1}),
        (refquant.dynamic_quantize_linear, R.dynamic_quantize_linear, [x], {}),
        (refquant.qlinear_matmul, R.qlinear_matmul,
         [a, np.float32(0.02), np.uint8(3), b, np.full(N, 0.01, np.float32), np.zeros(N, np.int8),
          np.float32(0.3), np.uint8(5)], {}),
        (refquant.qgemm, R.qgemm,
         [a, np.float32(0.02), np.uint8(3), b, np.float32(0.01), np.int8(0),
          rng.integers(-900, 900, N).astype(np.int32), np.float32(0.3), np.uint8(5)], {}),
        (refquant.qlinear_conv, R.qlinear_conv,
         [xc, np.float32(0.02), np.uint8(3), w, np.full(O, 0.01, np.float32), np.zeros(O, np.int8),
          np.float32(0.3), np.uint8(5), rng.integers(-900, 900, O).astype(np.int32)], {"pads": [1, 1, 1, 1]}),
    ]


def test_other_byte_order_same_as_reference():
    """Arrays stored in the other byte order (big-endian on x86) were read as native bytes by
    the compiled entries (quantize_linear of >f4 [1, 2, 3, 4] gave [0 0 0 0]): every op, each
    array argument swapped in turn, must give the reference's bits or its exception type."""
    from refquant import reference as R
    rng = np.random.default_rng(5)

    def swap(a):
        a = np.asarray(a)
        return a.astype(a.dtype.newbyteorder(">" if a.dtype.byteorder in "=<" else "<"))

    def same(fast, ref):
        try:
            want = ref()
        except Exception as exc:  # noqa: BLE001 - the same kind of error is the contract
            with pytest.raises(type(exc)):
                fast()
            return
        got = fast()
        for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
            assert np.asarray(g).dtype == np.asarray(w).dtype
            np.testing.assert_array_equal(np.asarray(g), np.asarray(w))

    x = (rng.standard_normal(300) * 4).astype(np.float32)
    q16 = rng.integers(-300, 300, 300).astype(np.int16)
    a = rng.integers(0, 256, (40, 64)).astype(np.uint8)
    b = rng.integers(-128, 128, (64, 48)).astype(np.int8)
    xc = rng.integers(0, 256, (1, 16, 9, 9)).astype(np.uint8)
    w = rng.integers(-128, 128, (32, 16, 3, 3)).astype(np.int8)
    calls = _op_calls(rng, x, q16, a, b, xc, w)
    for fast, ref, args, kw in calls:
        for i, v in enumerate(args):
            if not isinstance(v, (np.ndarray, np.generic)) or np.asarray(v).dtype.itemsize == 1:
                continue
            sw = list(args)
            sw[i] = swap(v)
            same(lambda: fast(*sw, **kw), lambda: ref(*sw, **kw))


def _at_byte(a, off):
    """A copy of ``a`` whose data starts ``off`` bytes past a 64-byte boundary (numpy allows any
    start: np.frombuffer(buf, offset=1), record fields); ``flags.aligned`` is False when ``off``
    is not a multiple of the item size."""
    a = np.asarray(a)
    buf = np.zeros(a.nbytes + 128, np.uint8)
    start = (-buf.ctypes.data) % 64 + off
    v = buf[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    v[...] = a
    return v


@pytest.mark.parametrize("isa", _isa_levels.available())
def test_unaligned_arrays_same_as_reference(isa):
    """Arrays that start at any byte: every op, each array argument moved 1 to 3 bytes off its
    alignment in turn (and the uint8 A / x at odd offsets: the GEMMs read A's rows in place, four
    bytes at a time, when K is a multiple of 4), give the reference's bits at every ISA level.  The kernels read and write such
    memory through memcpy (kernels/src/common/rq_mem.h); a typed access there was undefined
    behaviour (UndefinedBehaviorSanitizer: misaligned int32 loads in the VNNI GEMM, float stores
    in the DequantizeLinear tails)."""
    from refquant import reference as R
    _isa_levels.use(isa)
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(301) * 4).astype(np.float32)
    xh = x.astype(np.float16)
    q16 = rng.integers(-300, 300, 301).astype(np.int16)
    q32 = rng.integers(-2 ** 31, 2 ** 31, 301).astype(np.int32)
    a = rng.integers(0, 256, (37, 67)).astype(np.uint8)        # K = 67: rows at every byte offset
    b = rng.integers(-128, 128, (67, 45)).astype(np.int8)
    a4 = rng.integers(0, 256, (37, 64)).astype(np.uint8)       # K % 4 == 0: read in place
    b4 = rng.integers(-128, 128, (64, 45)).astype(np.int8)
    xc = rng.integers(0, 256, (1, 5, 9, 9)).astype(np.uint8)
    w = rng.integers(-128, 128, (32, 5, 3, 3)).astype(np.int8)
    wd = rng.integers(-128, 128, (5, 1, 3, 3)).astype(np.int8)
    calls = _op_calls(rng, x, q16, a, b, xc, w) + [
        (refquant.quantize_linear, R.quantize_linear, [xh, np.float16(0.05), np.int8(3)], {}),
        (refquant.quantize_linear, R.quantize_linear,
         [x[:301 // 43 * 43].reshape(7, 43), np.full(43, 0.05, np.float32), np.zeros(43, np.int8)], {"axis": 1}),
        (refquant.dequantize_linear, R.dequantize_linear, [q32, np.float32(0.5)], {}),
        (refquant.dequantize_linear, R.dequantize_linear, [q16, np.float16(0.5), np.int16(2)], {}),
        (refquant.matmul_integer, R.matmul_integer, [a, b, np.uint8(3), np.int8(0)], {}),
        (refquant.matmul_integer, R.matmul_integer, [a, b.view(np.uint8), np.uint8(3), np.uint8(1)], {}),
        (refquant.matmul_integer, R.matmul_integer, [a4, b4, np.uint8(3), np.int8(0)], {}),
        (refquant.matmul_integer, R.matmul_integer, [a4[:1], b4, np.uint8(3), np.int8(0)], {}),
        (refquant.matmul_integer, R.matmul_integer, [a4.view(np.int8), b4, np.int8(3), np.int8(0)], {}),
        (refquant.qlinear_matmul, R.qlinear_matmul,
         [a4, np.float32(0.02), np.uint8(3), b4, np.float32(0.01), np.int8(0), np.float32(0.3),
          np.uint8(5)], {}),
        (refquant.conv_integer, R.conv_integer, [xc, w, np.uint8(3), np.int8(0)], {"pads": [1, 1, 1, 1]}),
        (refquant.qlinear_conv, R.qlinear_conv,
         [xc, np.float32(0.02), np.uint8(3), wd, np.full(5, 0.01, np.float32), np.zeros(5, np.int8),
          np.float32(0.3), np.uint8(5), rng.integers(-900, 900, 5).astype(np.int32)],
         {"pads": [1, 1, 1, 1], "group": 5}),
    ]
    n = 0
    for fast, ref, args, kw in calls:
        want = ref(*args, **kw)
        for i, v in enumerate(args):
            if not isinstance(v, np.ndarray) or v.ndim == 0:
                continue
            for off in ((1, 2, 3) if v.dtype.itemsize > 1 else (1, 3)):
                moved = list(args)
                moved[i] = _at_byte(v, off)
                got = fast(*moved, **kw)
                for g, wv in zip(got if isinstance(got, tuple) else (got,),
                                 want if isinstance(want, tuple) else (want,)):
                    assert np.asarray(g).dtype == np.asarray(wv).dtype
                    np.testing.assert_array_equal(np.asarray(g), np.asarray(wv), err_msg=f"{fast.__name__} arg {i} +{off}")
                n += 1
    assert n > 60
    # outputs that start at any byte
    for dt, zp in ((np.int16, np.int16(3)), (np.uint8, np.uint8(3))):
        out = _at_byte(np.zeros(301, dt), 1)
        assert refquant.quantize_linear(x, np.float32(0.05), zp, out=out) is out
        np.testing.assert_array_equal(out, R.quantize_linear(x, np.float32(0.05), zp))
    for dt, sc in ((np.float32, np.float32(0.5)), (np.float16, np.float16(0.5))):
        out = _at_byte(np.zeros(301, dt), 1)
        assert refquant.dequantize_linear(q16, sc, np.int16(2), out=out) is out
        np.testing.assert_array_equal(out, R.dequantize_linear(q16, sc, np.int16(2)))


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")   # np.matrix
def test_array_subclasses():
    """Masked arrays are refused with a TypeError naming the argument, by refquant.<op> and the
    reference alike (numpy.ma arithmetic left masked entries uncomputed in the reference's
    DequantizeLinear while the kernels ignored the mask); np.matrix and np.memmap inputs give
    the bits of the plain array."""
    from refquant import reference as R
    rng = np.random.default_rng(9)
    a = rng.integers(0, 256, (6, 8)).astype(np.uint8)
    b = rng.integers(-128, 128, (8, 5)).astype(np.int8)
    x = (rng.standard_normal((6, 8)) * 3).astype(np.float32)
    xc = rng.integers(0, 256, (1, 2, 5, 5)).astype(np.uint8)
    w = rng.integers(-128, 128, (3, 2, 3, 3)).astype(np.int8)
    s, f = np.float32(0.05), np.float32(0.3)

    def calls(a, b, x, xc):
        return {
            "quantize_linear": lambda m: m.quantize_linear(x, s, np.uint8(128)),
            "dequantize_linear": lambda m: m.dequantize_linear(a, s, np.uint8(128)),
            "dynamic_quantize_linear": lambda m: m.dynamic_quantize_linear(x),
            "matmul_integer": lambda m: m.matmul_integer(a, b, np.uint8(3)),
            "qlinear_matmul": lambda m: m.qlinear_matmul(a, s, np.uint8(3), b, s, np.int8(0), f, np.uint8(5)),
            "qgemm": lambda m: m.qgemm(a, s, np.uint8(3), b, s, np.int8(0), None, f, np.uint8(5)),
            "conv_integer": lambda m: m.conv_integer(xc, w, np.uint8(3)),
            "qlinear_conv": lambda m: m.qlinear_conv(xc, s, np.uint8(3), w, s, np.int8(0), f, np.uint8(5)),
        }
    ma = lambda v: np.ma.masked_array(v, mask=rng.random(v.shape) < 0.3)   # noqa: E731
    for name, call in calls(ma(a), ma(b), ma(x), ma(xc)).items():
        for mod in (refquant, R):
            with pytest.raises(TypeError, match="masked arrays are not supported"):
                call(mod)
    plain = calls(a, b, x, xc)
    mm = {}
    for k, v in (("a", a), ("b", b), ("x", x), ("xc", xc)):
        mm[k] = v.view(np.memmap)
    for variant in (calls(np.asmatrix(a), np.asmatrix(b), np.asmatrix(x), xc), calls(**mm)):
        for name, call in variant.items():
            want = plain[name](R)
            for mod in (refquant, R):
                got = call(mod)
                for g, wv in zip(got if isinstance(got, tuple) else (got,),
                                 want if isinstance(want, tuple) else (want,)):
                    g, wv = np.asarray(g), np.asarray(wv)
                    assert g.shape == wv.shape and g.dtype == wv.dtype, name
                    assert g.tobytes() == wv.tobytes(), name


def test_thread_count_is_clamped():
    """OMP_NUM_THREADS=100000 made the AVX2 GEMM's OpenMP region fail with a segmentation fault;
    the kernels' thread count is clamped to 1024 (from the environment and from
    set_num_threads, which returns the clamped count), with the same bits."""
    code = ("import numpy as np, refquant as rq\n"
            "from refquant import reference as R\n"
            "a = np.arange(600 * 600, dtype=np.int64).reshape(600, 600).astype(np.uint8)\n"
            "b = (a.T.astype(np.int16) - 128).astype(np.int8)\n"
            "assert rq.get_num_threads() == 1024, rq.get_num_threads()\n"
            "assert (rq.matmul_integer(a, b, np.uint8(3)) == R.matmul_integer(a, b, np.uint8(3))).all()\n"
            "assert rq.set_num_threads(10**12) == 1024 and rq.set_num_threads(3) == 3\n"
            "print('ok')\n")
    env = dict(os.environ, OMP_NUM_THREADS="100000", REFQUANT_MAX_ISA="avx2")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "ok" in r.stdout, (r.returncode, r.stdout, r.stderr[-2000:])
