"""Fast QuantizeLinear / DequantizeLinear / DynamicQuantizeLinear kernels == the numpy reference,
bit for bit, at every ISA level this machine has (scalar, AVX2, AVX-512; a missing level is a
skip).  Kernels are capped per call with the glue's ``isa=`` argument (the same cap as
``refquant._cpu.set_isa_cap`` / ``REFQUANT_DISABLE_ISA``, see tests/test_dispatch.py).

Inputs concentrate on the hard places: exact ties (k + 1/2) * s and their float32 neighbours,
q-range boundaries, every zero point, NaN/Inf/huge/denormal values, tiny and huge scales
(including scales whose reciprocal is not a normal float, which disables the division-free
path), shapes around the vector widths (1, 15, 16, 17, 63, 64, 65, 1000+), strided /
Fortran-ordered / offset views, and guard bytes around outputs that must stay untouched.

Memory safety (AddressSanitizer): ``pytest -m asan tests/test_build.py`` rebuilds the
extensions with ``REFQUANT_SANITIZE=address`` in a scratch copy and runs a sample of these
kernels under ASan (see that file's docstring).
"""
from __future__ import annotations

import os
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest

hyp = pytest.importorskip("hypothesis", reason="hypothesis drives the sweeps")
from hypothesis import given, settings, strategies as st  # noqa: E402

import refquant  # noqa: E402
from refquant import reference as R  # noqa: E402
from refquant.profile import get_profile  # noqa: E402
from _same_bits import run_in_threads, same_as_reference  # noqa: E402

_k = pytest.importorskip("refquant._quant", reason="compiled kernels not built (pip install -e .)")
from refquant import _cpu, _quant_fast as F  # noqa: E402

ONNX = get_profile("onnx")
ORT = get_profile("onnxruntime")

# Quantize kernels exist for these levels; higher levels (avx512vnni, amx) run the avx512 ones.
KERNEL_ISAS = ("scalar", "avx2", "avx512")
AVAILABLE = [i for i in KERNEL_ISAS if i in _cpu.available_isas()]
ISA_PARAMS = [pytest.param(i, marks=pytest.mark.skipif(i not in AVAILABLE,
                                                       reason=f"{i} not compiled/supported here"))
              for i in KERNEL_ISAS]

Q_TYPES = [np.dtype(t) for t in (np.uint8, np.int8, np.uint16, np.int16, ml_dtypes.uint4,
                                 ml_dtypes.int4)]
DQ_TYPES = Q_TYPES + [np.dtype(np.int32)]
SIZES = [0, 1, 2, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 1000, 4099]

SCALES = [1.0, 0.5, 0.1, 0.0235, 3.0517578125e-05, 7.0, 1e-3, 1e-8, 1e-30, 1e-38, 1e-40,
          1e-45, 3.4e38, 1e30, 2.0 ** -126, 2.0 ** 126, 2.0 ** 127, 0.3333333]


def _bits(a):
    a = np.asarray(a)
    if a.dtype.itemsize == 1:
        return a.view(np.uint8)
    return a.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def assert_bitexact(got, want, what=""):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    if want.dtype.kind in "iu" or want.dtype in Q_TYPES:
        a, b = got.astype(np.int64), want.astype(np.int64)
        bad = a != b
    else:
        bad = _bits(got) != _bits(want)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(f"{what}: {int(bad.sum())} of {bad.size} differ; first at {idx}: "
                             f"got {got[idx]!r}, want {want[idx]!r}")
    # the raw storage too (int4 nibbles, -0.0 vs 0.0)
    assert np.array_equal(_bits(np.ascontiguousarray(got)), _bits(np.ascontiguousarray(want))), what


def _qrange(dt):
    return refquant.qrange(dt)


def hard_values(rng, n, scale, zp, dt, xdtype=np.float32):
    """float32 (or float16) values concentrated on ties, their neighbours, range edges, specials."""
    qmin, qmax = _qrange(dt)
    s = np.float32(scale)
    k = rng.integers(qmin - int(zp) - 3, qmax - int(zp) + 4, n).astype(np.float64)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        ties = ((k + 0.5) * np.float64(s)).astype(xdtype)
        exact = (k * np.float64(s)).astype(xdtype)
        up = np.nextafter(ties, np.array(np.inf, xdtype))
        dn = np.nextafter(ties, np.array(-np.inf, xdtype))
        rnd = (rng.standard_normal(n) * float(s) * (qmax - qmin) / 3).astype(xdtype)
    specials = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 1e-40,
                         3e38, -3e38, 65504, -65504, 2.0 ** 31, -2.0 ** 31, 5e9, 1.5, 2.5, -2.5],
                        np.float64).astype(xdtype)
    pool = np.concatenate([ties, exact, up, dn, rnd, specials])
    return pool[rng.integers(0, pool.size, n)].astype(xdtype)


def _zp_for(rng, dt):
    qmin, qmax = _qrange(dt)
    z = int(rng.choice([qmin, qmax, 0 if qmin <= 0 else qmin, rng.integers(qmin, qmax + 1)]))
    return np.array(z, dt)


def _run_both(fn_fast, fn_ref, *args, isa, **kw):
    """(fast result, kernel name, reference result); warnings of the reference silenced."""
    res = fn_fast(*args, isa=isa, **kw)
    with np.errstate(all="ignore"):
        ref = fn_ref(*args, **{k: v for k, v in kw.items() if k != "profile"},
                     profile=kw.get("profile", "onnx"))
    return res, ref


# --------------------------------------------------------------------------------------------
# QuantizeLinear
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("isa", ISA_PARAMS)
@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), n=st.sampled_from(SIZES),
       dt=st.sampled_from(Q_TYPES), scale=st.sampled_from(SCALES + [None]),
       prof=st.sampled_from(["onnx", "onnxruntime"]))
def test_quantize_per_tensor(isa, seed, n, dt, scale, prof):
    rng = np.random.default_rng(seed)
    s = np.float32(scale if scale is not None else rng.uniform(1e-4, 10))
    zp = _zp_for(rng, dt)
    x = hard_values(rng, n, s, zp, dt)
    res, ref = _run_both(F.quantize_linear, R.quantize_linear, x, s, zp, isa=isa,
                         profile=get_profile(prof))
    assert res is not None, "kernel declined a covered call"
    y, name = res
    assert name.endswith("__" + isa), name
    assert_bitexact(y, ref, f"{name} s={s!r} zp={zp!r} n={n}")


@pytest.mark.parametrize("isa", ISA_PARAMS)
@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), dt=st.sampled_from(Q_TYPES),
       shape=st.sampled_from([(3, 17), (5, 64, 3), (2, 3, 65), (17,), (4, 1, 33), (1, 70),
                              (65, 2), (2, 5, 7, 3)]),
       axis_pick=st.integers(0, 10), neg=st.booleans())
def test_quantize_per_axis(isa, seed, dt, shape, axis_pick, neg):
    rng = np.random.default_rng(seed)
    axis = axis_pick % len(shape)
    D = shape[axis]
    s = rng.choice(np.array(SCALES + [0.02, 0.7, 13.0], np.float32), D).astype(np.float32)
    qmin, qmax = _qrange(dt)
    zp = rng.integers(qmin, qmax + 1, D).astype(np.int64).astype(dt)
    x = hard_values(rng, int(np.prod(shape)), float(np.median(s)), 0, dt).reshape(shape)
    ax = axis - len(shape) if neg else axis
    res, ref = _run_both(F.quantize_linear, R.quantize_linear, x, s, zp, isa=isa, axis=ax,
                         profile=ONNX)
    assert res is not None
    assert_bitexact(res[0], ref, f"{res[1]} per-axis axis={ax} shape={shape}")


@pytest.mark.parametrize("isa", ISA_PARAMS)
@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), n=st.sampled_from(SIZES), dt=st.sampled_from(Q_TYPES),
       case=st.sampled_from(["f16_opset21", "f16_opset23", "f16_ort_opset21", "f32x_f16s_opset23",
                             "f16x_f32s_opset23", "precision_f16", "precision_f32"]))
def test_quantize_float16_precision(isa, seed, n, dt, case):
    """float16 inputs/scales: division in float16 or float32 as the opset, profile and
    ``precision`` decide (the reference's _division_dtype)."""
    rng = np.random.default_rng(seed)
    zp = _zp_for(rng, dt)
    s32 = np.float32(rng.choice([0.0235, 0.1, 1.0, 3.0, 1e-3, 6e-5, 0.007]))
    kw = {}
    if case in ("f16_opset21", "f16_ort_opset21"):
        x, s, kw["opset"] = hard_values(rng, n, s32, zp, dt, np.float16), np.float16(s32), 21
    elif case == "f16_opset23":
        x, s, kw["opset"] = hard_values(rng, n, s32, zp, dt, np.float16), np.float16(s32), 23
    elif case == "f32x_f16s_opset23":
        x, s, kw["opset"] = hard_values(rng, n, s32, zp, dt), np.float16(s32), 23
    elif case == "f16x_f32s_opset23":
        x, s, kw["opset"] = hard_values(rng, n, s32, zp, dt, np.float16), s32, 23
    else:
        x, s = hard_values(rng, n, s32, zp, dt), s32
        kw["precision"] = "float16" if case == "precision_f16" else "float32"
    prof = ORT if case == "f16_ort_opset21" else ONNX
    res, ref = _run_both(F.quantize_linear, R.quantize_linear, x, s, zp, isa=isa, profile=prof, **kw)
    assert res is not None, case
    assert_bitexact(res[0], ref, f"{res[1]} {case}")


@pytest.mark.parametrize("isa", ISA_PARAMS)
@pytest.mark.parametrize("dt", Q_TYPES, ids=str)
@pytest.mark.parametrize("divide", ["0", "1", None], ids=["recip", "divide", "auto"])
def test_quantize_every_tie(isa, dt, divide, monkeypatch):
    """Every code's tie (k + 1/2) * s and both float32 neighbours, for scales with exact and
    inexact reciprocals, every zero-point extreme: the division-free path must redo ties.  Both
    per-tensor forms (REFQUANT_QUANT_DIVIDE: x / s, taken on Zen 5 for data in cache, and the
    division-free one), and the machine's own choice."""
    if divide is not None:
        monkeypatch.setenv("REFQUANT_QUANT_DIVIDE", divide)
    qmin, qmax = _qrange(dt)
    rng = np.random.default_rng(7)
    for s in (np.float32(0.1), np.float32(0.0235), np.float32(0.5), np.float32(3.0),
              np.float32(1.0 / 3.0), np.float32(1e-20)):
        for z in {qmin, qmax, (qmin + qmax) // 2}:
            ks = np.arange(qmin - z - 2, qmax - z + 2, dtype=np.float64)
            if ks.size > 4000:
                ks = np.unique(np.concatenate([ks[:1000], ks[-1000:], rng.choice(ks, 2000)]))
            t = ((ks + 0.5) * np.float64(s)).astype(np.float32)
            x = np.concatenate([t, np.nextafter(t, np.float32(np.inf)),
                                np.nextafter(t, np.float32(-np.inf))])
            zp = np.array(z, dt)
            res, ref = _run_both(F.quantize_linear, R.quantize_linear, x, s, zp, isa=isa,
                                 profile=ONNX)
            assert_bitexact(res[0], ref, f"{res[1]} ties s={s} zp={z}")


@pytest.mark.parametrize("isa", ISA_PARAMS)
def test_quantize_layouts(isa):
    """Strided, Fortran-ordered, offset, negative-stride, 0-d and empty inputs."""
    rng = np.random.default_rng(3)
    base = hard_values(rng, 4 * 67 * 33, 0.05, 128, np.uint8).reshape(4, 67, 33)
    s, zp = np.float32(0.05), np.uint8(128)
    sv = rng.uniform(0.01, 0.2, 67).astype(np.float32)
    zv = rng.integers(0, 256, 67).astype(np.uint8)
    views = {
        "strided": base[:, ::2, :], "fortran": np.asfortranarray(base),
        "offset": base.reshape(-1)[3:3 + 1000], "reversed": base[::-1, :, ::-1],
        "transposed": base.transpose(2, 0, 1), "zero_d": np.array(base.flat[5]), "scalar": np.float32(base.flat[6]),
        "empty": base[:, :0, :],
    }
    for name, v in views.items():
        res, ref = _run_both(F.quantize_linear, R.quantize_linear, v, s, zp, isa=isa, profile=ONNX)
        assert res is not None, name
        assert_bitexact(res[0], ref, name)
    for name, v in {"fortran": np.asfortranarray(base), "strided": base[::-1, :, ::3]}.items():
        res, ref = _run_both(F.quantize_linear, R.quantize_linear, v, sv, zv, isa=isa, axis=1,
                             profile=ONNX)
        assert_bitexact(res[0], ref, "per-axis " + name)


@pytest.mark.parametrize("isa", ISA_PARAMS)
@pytest.mark.parametrize("n", [1, 15, 16, 17, 63, 64, 65, 100, 257, 1000, 4099])
@pytest.mark.parametrize("offset", [0, 1, 3, 17])
@pytest.mark.parametrize("stream", [0, 1], ids=["cached", "streaming"])
def test_guard_bytes(isa, n, offset, stream):
    """The kernels write exactly n outputs: sentinel bytes before and after stay untouched
    (1- and 2-byte quantize outputs, float32/float16 dequantize outputs), at every alignment,
    with cached and with streaming (non-temporal) stores; the values equal the reference."""
    lvl = _cpu._level(isa)
    rng = np.random.default_rng(n + offset)
    x = (rng.standard_normal(n) * 100).astype(np.float32)
    s, z = np.array([0.37], np.float32), np.array([3], np.int32)
    for out_type, itemsize, dt in (("uint8", 1, np.uint8), ("int16", 2, np.int16),
                                   ("int4", 1, ml_dtypes.int4)):
        buf = np.full((n + 2 * 64 + offset) * itemsize, 0xA5, np.uint8)
        start = (64 + offset) * itemsize
        view = buf[start:start + n * itemsize]
        y = view.view(np.uint8 if itemsize == 1 else np.uint16)
        _k.quantize(x, "float32", y, out_type, s, z, 1, 1, n, False, lvl, 0, 0, stream)
        assert (buf[:start] == 0xA5).all() and (buf[start + n * itemsize:] == 0xA5).all(), out_type
        want = R.quantize_linear(x, np.float32(0.37), np.array(3, dt))
        assert_bitexact(view.view(np.uint8 if itemsize == 1 else np.int16).view(dt) if itemsize == 1
                        else view.view(np.int16), want, out_type)
    q = rng.integers(-128, 128, n).astype(np.int8)
    for out_type, itemsize in (("float32", 4), ("float16", 2)):
        buf = np.full((n + 128) * itemsize + 4 * offset, 0x5A, np.uint8)
        start = 64 * itemsize + 2 * offset
        y = buf[start:start + n * itemsize].view(np.float32 if itemsize == 4 else np.float16)
        sc = np.float32(0.37) if itemsize == 4 else np.float16(np.float32(0.37))
        # the kernel takes the scale already rounded to the output precision (the glue does it)
        _k.dequantize(q, "int8", y, out_type, np.array([sc], np.float32), z, 1, 1, n, lvl, 0, 0,
                      stream)
        assert (buf[:start] == 0x5A).all() and (buf[start + n * itemsize:] == 0x5A).all(), out_type
        assert_bitexact(y, R.dequantize_linear(q, sc, np.int8(3)), out_type)


def test_same_bits_any_thread_count():
    """Large input (many parallel chunks): 1 and 2 threads give identical results."""
    rng = np.random.default_rng(11)
    x = hard_values(rng, 300_001, 0.02, 0, np.int8)
    s, z = np.float32(0.02), np.int8(-5)
    q = R.quantize_linear(x, s, z)
    outs = []
    try:
        for th in (1, 2, 3):
            refquant.set_num_threads(th)
            y, _ = F.quantize_linear(x, s, z, profile=ONNX)
            d, _ = F.dequantize_linear(q, s, z, profile=ONNX)
            dq = F.dynamic_quantize_linear(np.nan_to_num(x, nan=1.0, posinf=7.0, neginf=-9.0),
                                           profile=ONNX)[0]
            outs.append((y, d, dq[0]))
    finally:
        refquant.set_num_threads(None)
    for o in outs[1:]:
        for a, b in zip(outs[0], o):
            assert_bitexact(a, b, "threads")
    assert_bitexact(outs[0][0], q, "vs reference")


# --------------------------------------------------------------------------------------------
# DequantizeLinear
# --------------------------------------------------------------------------------------------
def _random_q(rng, dt, n):
    if dt == np.int32:
        v = rng.choice(np.array([0, 1, -1, 2 ** 31 - 1, -2 ** 31, 2 ** 24 + 1, -(2 ** 24) - 3,
                                 16777217, 65519, 65520, 65535, -65536], np.int64), n)
        v = np.where(rng.random(n) < 0.5, rng.integers(-2 ** 31, 2 ** 31, n), v)
        return v.astype(np.int32)
    qmin, qmax = _qrange(dt)
    return rng.integers(qmin, qmax + 1, n).astype(np.int64).astype(dt)


@pytest.mark.parametrize("isa", ISA_PARAMS)
@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), n=st.sampled_from(SIZES), dt=st.sampled_from(DQ_TYPES),
       scale=st.sampled_from(SCALES + [None]),
       out=st.sampled_from(["f32", "f16_scale", "output_dtype_f16", "output_dtype_f32"]),
       with_zp=st.booleans())
def test_dequantize_per_tensor(isa, seed, n, dt, scale, out, with_zp):
    rng = np.random.default_rng(seed)
    x = _random_q(rng, dt, n)
    s = np.float32(scale if scale is not None else rng.uniform(1e-4, 10))
    kw = {}
    if out == "f16_scale":
        with np.errstate(over="ignore", under="ignore"):
            s = np.float16(s)
        if not (np.isfinite(s) and s > 0):
            s = np.float16(0.0123)
    elif out.startswith("output_dtype"):
        kw = {"output_dtype": "float16" if out.endswith("f16") else "float32", "opset": 23}
    zp = _zp_for(rng, dt) if (with_zp and dt != np.int32) else None
    res, ref = _run_both(F.dequantize_linear, R.dequantize_linear, x, s, zp, isa=isa,
                         profile=ONNX, **kw)
    assert res is not None
    assert_bitexact(res[0], ref, f"{res[1]} s={s!r} zp={zp!r}")


@pytest.mark.parametrize("isa", ISA_PARAMS)
@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), dt=st.sampled_from(Q_TYPES),
       shape=st.sampled_from([(3, 17), (5, 64, 3), (2, 3, 65), (17,), (65, 2), (2, 5, 7, 3)]),
       axis_pick=st.integers(0, 10), f16=st.booleans())
def test_dequantize_per_axis(isa, seed, dt, shape, axis_pick, f16):
    rng = np.random.default_rng(seed)
    axis = axis_pick % len(shape)
    D = shape[axis]
    s = rng.uniform(1e-3, 3, D).astype(np.float16 if f16 else np.float32)
    qmin, qmax = _qrange(dt)
    zp = rng.integers(qmin, qmax + 1, D).astype(np.int64).astype(dt)
    x = _random_q(rng, dt, int(np.prod(shape))).reshape(shape)
    res, ref = _run_both(F.dequantize_linear, R.dequantize_linear, x, s, zp, isa=isa, axis=axis,
                         profile=ONNX)
    assert res is not None
    assert_bitexact(res[0], ref, f"{res[1]} axis={axis}")
    # non-contiguous view of the same data
    xv = np.asfortranarray(x)[..., ::-1] if axis != len(shape) - 1 else np.asfortranarray(x)
    res, ref = _run_both(F.dequantize_linear, R.dequantize_linear, xv, s, zp, isa=isa, axis=axis,
                         profile=ONNX)
    assert_bitexact(res[0], ref, "view")


@pytest.mark.parametrize("isa", ISA_PARAMS)
@pytest.mark.parametrize("dt", Q_TYPES, ids=str)
def test_dequantize_every_code(isa, dt):
    """Every code of the type, every zero-point extreme, float32 and float16 outputs."""
    qmin, qmax = _qrange(dt)
    x = np.arange(qmin, qmax + 1, dtype=np.int64).astype(dt)
    for z in (qmin, qmax, 0 if qmin <= 0 <= qmax else qmin):
        for s in (np.float32(0.0235), np.float32(1e-38), np.float16(0.0123), np.float16(6e-5),
                  np.float16(300.0)):
            res, ref = _run_both(F.dequantize_linear, R.dequantize_linear, x, s, np.array(z, dt),
                                 isa=isa, profile=ONNX)
            assert_bitexact(res[0], ref, f"{res[1]} zp={z} s={s!r}")


# --------------------------------------------------------------------------------------------
# DynamicQuantizeLinear
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("isa", ISA_PARAMS)
@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), n=st.sampled_from(SIZES[1:]),
       kind=st.sampled_from(["normal", "positive", "negative", "zeros", "tiny", "huge", "one"]),
       prof=st.sampled_from(["onnx", "onnxruntime"]))
def test_dynamic_quantize(isa, seed, n, kind, prof):
    rng = np.random.default_rng(seed)
    x = {
        "normal": lambda: rng.standard_normal(n) * 10,
        "positive": lambda: rng.random(n) * 3 + 1,
        "negative": lambda: -rng.random(n) * 3 - 1,
        "zeros": lambda: np.zeros(n),
        "tiny": lambda: rng.standard_normal(n) * 1e-40,
        "huge": lambda: rng.standard_normal(n) * 1e37,
        "one": lambda: np.full(n, 0.5),
    }[kind]().astype(np.float32)
    p = get_profile(prof)
    res = F.dynamic_quantize_linear(x, profile=p, isa=isa)
    try:
        with np.errstate(all="ignore"):
            ref = R.dynamic_quantize_linear(x, profile=p)
    except ValueError:     # e.g. a range so tiny that the scale underflows to 0
        assert res is None and kind == "tiny", kind
        with pytest.raises(ValueError):
            refquant.dynamic_quantize_linear(x, profile=p)
        return
    if res is None:   # only an unusable scale (e.g. all-denormal input) may decline
        assert kind in ("tiny",), kind
        return
    (y, ys, yz), name = res
    assert_bitexact(y, ref[0], name)
    assert_bitexact(ys, ref[1], "y_scale")
    assert_bitexact(yz, ref[2], "y_zero_point")


def test_dynamic_quantize_nonfinite_goes_to_reference():
    x = np.array([1.0, np.nan, 2.0], np.float32)
    assert F.dynamic_quantize_linear(x, profile=ONNX) is None
    with pytest.raises(ValueError, match="NaN or Inf"):
        refquant.dynamic_quantize_linear(x)
    assert refquant.last_path()["path"] == "reference"


# --------------------------------------------------------------------------------------------
# Coverage boundaries: what the kernels decline goes to the reference (same errors)
# --------------------------------------------------------------------------------------------
def test_declined_calls_run_the_reference():
    x = np.linspace(-3, 3, 100, dtype=np.float32)
    cases = [
        dict(args=(x.astype(ml_dtypes.bfloat16), np.array(0.1, ml_dtypes.bfloat16), np.uint8(3)),
             kw=dict(precision="float64")),
        dict(args=(x, np.float32(0.1), np.array(3, ml_dtypes.float8_e4m3fn)), kw=dict(profile="onnx-reference")),
        dict(args=(x.astype(np.int32), np.float32(0.1), np.uint8(3)), kw={}),
        dict(args=(x, np.float32(0.1), np.array(1, ml_dtypes.uint2)), kw=dict(opset=25, precision="float64")),
    ]
    for c in cases:
        y = refquant.quantize_linear(*c["args"], **c["kw"])
        assert refquant.last_path()["path"] == "reference", c
        with np.errstate(all="ignore"):
            assert_bitexact(y, R.quantize_linear(*c["args"], **c["kw"]))
    # the reference's validation errors surface unchanged
    for bad in (np.float32(0), np.float32(-1), np.float32(np.nan), np.float32(np.inf)):
        with pytest.raises(ValueError, match="y_scale"):
            refquant.quantize_linear(x, bad, np.uint8(0))
    with pytest.raises(ValueError, match="axis"):
        refquant.quantize_linear(x.reshape(10, 10), np.ones(10, np.float32), np.zeros(10, np.uint8),
                                 axis=5)
    with pytest.raises(TypeError):
        refquant.quantize_linear(x.astype(np.float64), np.float32(0.1), np.uint8(0))
    # near the quick path's acceptance boundary: the reference decides (and raises)
    # (a scalar and a 1-element vector are both per tensor, as in ORT and onnx's reference)
    assert_bitexact(refquant.quantize_linear(x, np.float32(0.1), np.array([3], np.uint8)),
                    R.quantize_linear(x, np.float32(0.1), np.uint8(3)))
    assert_bitexact(refquant.dequantize_linear(np.zeros(3, np.uint8), np.array([0.1], np.float32), np.uint8(1)),
                    R.dequantize_linear(np.zeros(3, np.uint8), np.float32(0.1), np.uint8(1)))
    with pytest.raises(ValueError, match="y_zero_point"):
        refquant.quantize_linear(x, np.float32(0.1), np.array([3, 4], np.uint8))
    with pytest.raises(ValueError, match="x_zero_point"):
        refquant.dequantize_linear(np.zeros(3, np.uint8), np.array([0.1], np.float32), np.uint8([1, 2]))
    with pytest.raises(TypeError, match="block_size"):
        refquant.quantize_linear(x, np.float32(0.1), np.uint8(3), block_size=True)
    with pytest.raises(TypeError, match="axis"):
        refquant.dequantize_linear(np.zeros(3, np.uint8), np.float32(0.1), axis=1.0)
    with pytest.raises(TypeError, match="x_zero_point"):
        refquant.dequantize_linear(np.zeros(3, np.uint8), np.float32(0.1), np.int8(1))
    with pytest.raises(ValueError, match="x_scale"):
        refquant.dequantize_linear(np.zeros(3, np.uint8), np.float32(0), np.uint8(0))


def test_covered_calls_take_the_kernel():
    x = np.linspace(-3, 3, 100, dtype=np.float32)
    refquant.quantize_linear(x, np.float32(0.1), np.int8(3))
    assert refquant.last_path()["path"].startswith("rq_quantize_f32s8__")
    refquant.quantize_linear(x, 0.1, output_dtype="int4")     # Python float scale
    assert refquant.last_path()["path"].startswith("rq_quantize_f32s4__")
    refquant.dequantize_linear(np.arange(10, dtype=np.uint16), np.float32(0.5), np.uint16(7))
    assert refquant.last_path()["path"].startswith("rq_dequantize_u16f32__")
    refquant.dynamic_quantize_linear(x)
    assert refquant.last_path()["path"].startswith("rq_dynamic_quantize_f32u8__")


def test_packed_output():
    rng = np.random.default_rng(5)
    x = hard_values(rng, 1001, 0.3, 0, ml_dtypes.int4)
    for xx in (x, x[:1000], x[:1], x[:0], x.reshape(7, 11, 13)):
        for z in (np.array(-2, ml_dtypes.int4), np.array(9, ml_dtypes.uint4), np.uint8(7),
                  np.array(-300, np.int16)):
            p = refquant._dispatch.quantize_linear_packed(xx, np.float32(0.3), z)
            want = refquant.pack(R.quantize_linear(xx, np.float32(0.3), z))
            assert p.dtype == np.uint8 and np.array_equal(p, want), (xx.shape, z)
            assert np.array_equal(F.quantize_linear_packed(xx, np.float32(0.3), z), want)
    # reference path (profile the kernels do not cover) and 2-bit types pack the same way
    for z, kw in ((np.array(-2, ml_dtypes.int4), {"profile": "onnx-reference"}),
                  (np.array(1, ml_dtypes.uint2), {})):
        with np.errstate(all="ignore"):
            p = refquant._dispatch.quantize_linear_packed(x, np.float32(0.3), z, **kw)
            want = refquant.pack(R.quantize_linear(x, np.float32(0.3), z, **kw))
        assert np.array_equal(p, want)


def test_disable_fast_env():
    code = ("import numpy as np, refquant; "
            "refquant.quantize_linear(np.ones(4, np.float32), np.float32(1), np.uint8(0)); "
            "print(refquant.last_path()['path'])")
    env = dict(os.environ, REFQUANT_DISABLE_FAST="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "reference"


@pytest.mark.slow
@pytest.mark.parametrize("isa", ISA_PARAMS)
@settings(max_examples=4000, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), n=st.sampled_from(SIZES + [10007, 65537, 131075]),
       dt=st.sampled_from(Q_TYPES), scale=st.sampled_from(SCALES + [None]))
def test_quantize_per_tensor_long(isa, seed, n, dt, scale):
    rng = np.random.default_rng(seed)
    s = np.float32(scale if scale is not None else rng.uniform(1e-6, 1e3))
    zp = _zp_for(rng, dt)
    x = hard_values(rng, n, s, zp, dt)
    res, ref = _run_both(F.quantize_linear, R.quantize_linear, x, s, zp, isa=isa, profile=ONNX)
    assert_bitexact(res[0], ref, res[1])


@pytest.mark.parametrize("isa", ISA_PARAMS)
@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), dt=st.sampled_from(Q_TYPES),
       shape=st.sampled_from([(4, 70), (70, 6), (3, 33, 5), (2, 5, 3), (64,), (1, 129), (5, 16, 2)]),
       axis_pick=st.integers(0, 10), bs_pick=st.integers(0, 10 ** 6), f16=st.booleans())
def test_blocked(isa, seed, dt, shape, axis_pick, bs_pick, f16):
    """Blocked quantization (opset >= 21): every valid block size, partial last blocks."""
    rng = np.random.default_rng(seed)
    axis = axis_pick % len(shape)
    D = shape[axis]
    bs = 1 + bs_pick % D
    nb = -(-D // bs)
    if nb > 1 and bs > -(-D // (nb - 1)) - 1:     # block size outside the spec's range
        bs = -(-D // nb)
    sshape = list(shape)
    sshape[axis] = nb
    sdt = np.float16 if f16 else np.float32
    s = rng.uniform(1e-3, 2, sshape).astype(sdt)
    qmin, qmax = _qrange(dt)
    zp = rng.integers(qmin, qmax + 1, sshape).astype(np.int64).astype(dt)
    x = hard_values(rng, int(np.prod(shape)), 0.3, 0, dt).reshape(shape).astype(sdt)
    res, ref = _run_both(F.quantize_linear, R.quantize_linear, x, s, zp, isa=isa, axis=axis,
                         block_size=bs, profile=ONNX)
    assert res is not None, (shape, axis, bs)
    assert_bitexact(res[0], ref, f"{res[1]} blocked axis={axis} bs={bs}")
    res, ref = _run_both(F.dequantize_linear, R.dequantize_linear, ref, s, zp, isa=isa, axis=axis,
                         block_size=bs, profile=ONNX)
    assert res is not None
    assert_bitexact(res[0], ref, f"{res[1]} blocked dequantize axis={axis} bs={bs}")


def test_concurrent_python_threads():
    """Kernels release the GIL; several Python threads calling at once get correct bits (the
    pool runs one job at a time, the others run serially on their own thread)."""
    rng = np.random.default_rng(21)
    xs = [hard_values(rng, 200_003, 0.05, 0, np.int8) for _ in range(4)]
    want = [R.quantize_linear(x, np.float32(0.05), np.int8(1)) for x in xs]
    got, errors = [None] * 4, []

    def work(i):
        try:
            for _ in range(5):
                got[i] = F.quantize_linear(xs[i], np.float32(0.05), np.int8(1), profile=ONNX)[0]
        except Exception as exc:   # pragma: no cover
            errors.append(exc)

    run_in_threads(work, 4)
    assert not errors
    for g, w in zip(got, want):
        assert_bitexact(g, w, "threads")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_after_fork():
    """The worker pool is rebuilt in a forked child (pthread_atfork)."""
    code = textwrap_dedent("""
        import os, numpy as np, refquant
        from refquant import _quant_fast as F
        from refquant.profile import get_profile
        P = get_profile("onnx")
        refquant.set_num_threads(2)
        x = np.linspace(-5, 5, 300_001, dtype=np.float32)
        want = refquant.reference.quantize_linear(x, np.float32(0.01), np.int16(3))
        assert np.array_equal(F.quantize_linear(x, np.float32(0.01), np.int16(3), profile=P)[0], want)
        pid = os.fork()
        if pid == 0:
            ok = np.array_equal(F.quantize_linear(x, np.float32(0.01), np.int16(3), profile=P)[0], want)
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "child 0"


def textwrap_dedent(s):
    import textwrap
    return textwrap.dedent(s)


def test_out_argument():
    """refquant.quantize_linear / dequantize_linear(..., out=buf): written in place, same bits,
    on the kernel path and on the reference path; a wrong buffer is a clear error."""
    rng = np.random.default_rng(4)
    x = hard_values(rng, 5000, 0.1, 0, np.int8).reshape(50, 100)
    want = R.quantize_linear(x, np.float32(0.1), np.int8(2))
    buf = np.empty((50, 100), np.int8)
    y = refquant.quantize_linear(x, np.float32(0.1), np.int8(2), out=buf)
    assert y is buf and refquant.last_path()["path"].startswith("rq_quantize_")
    assert_bitexact(buf, want)
    buf2 = np.empty((50, 100), np.int8)
    y = refquant.quantize_linear(x, np.float32(0.1), np.int8(2), out=buf2, profile="tflite-optimized")
    assert y is buf2 and refquant.last_path()["path"] == "reference"
    with np.errstate(all="ignore"):
        assert_bitexact(buf2, R.quantize_linear(x, np.float32(0.1), np.int8(2), profile="tflite-optimized"))
    d = np.empty((50, 100), np.float32)
    assert refquant.dequantize_linear(want, np.float32(0.1), np.int8(2), out=d) is d
    assert_bitexact(d, R.dequantize_linear(want, np.float32(0.1), np.int8(2)))
    with pytest.raises(ValueError, match="out"):
        refquant.quantize_linear(x, np.float32(0.1), np.int8(2), out=np.empty((50, 100), np.uint8))
    with pytest.raises(ValueError, match="out"):
        refquant.quantize_linear(x, np.float32(0.1), np.int8(2), out=np.empty((100, 50), np.int8))
    with pytest.raises(TypeError, match="out"):
        refquant.quantize_linear(x, np.float32(0.1), np.int8(2), out=[0] * 5000)
    fbuf = np.empty((50, 100), np.int8, order="F")      # any layout: the reference path copies
    assert refquant.quantize_linear(x, np.float32(0.1), np.int8(2), out=fbuf) is fbuf
    assert_bitexact(fbuf, want)
    # per axis, both types, large outputs (the compiled entries take any size with out=)
    for n in (7, 5000, 3 << 20):
        xs = hard_values(rng, n, 0.1, 0, np.uint8)
        q = np.empty(n, np.uint8)
        assert refquant.quantize_linear(xs, np.float32(0.1), np.uint8(9), out=q) is q
        assert refquant.last_path()["path"].startswith("rq_quantize_")
        assert_bitexact(q, R.quantize_linear(xs, np.float32(0.1), np.uint8(9)))
        d = np.empty(n, np.float32)
        assert refquant.dequantize_linear(q, np.float32(0.1), np.uint8(9), out=d) is d
        assert_bitexact(d, R.dequantize_linear(q, np.float32(0.1), np.uint8(9)))
    xa = hard_values(rng, 600, 0.1, 0, np.int8).reshape(20, 30)
    sc = rng.uniform(0.01, 0.2, 30).astype(np.float32)
    zs = rng.integers(-5, 5, 30).astype(np.int8)
    qa = np.empty((20, 30), np.int8)
    assert refquant.quantize_linear(xa, sc, zs, axis=1, out=qa) is qa
    assert_bitexact(qa, R.quantize_linear(xa, sc, zs, axis=1))
    # out overlapping x: the kernels would read what they wrote; the reference path copies
    raw = np.zeros(4096 * 5, np.uint8)
    qv = raw[:4096]
    qv[:] = rng.integers(0, 256, 4096)
    dv = raw[2048:2048 + 4 * 4096].view(np.float32)      # its bytes start inside qv
    want_d = R.dequantize_linear(qv.copy(), np.float32(0.5), np.uint8(3))
    assert refquant.dequantize_linear(qv, np.float32(0.5), np.uint8(3), out=dv) is dv
    assert refquant.last_path()["path"] == "reference"
    assert_bitexact(dv, want_d)
    xf = np.zeros(2048, np.float32)
    xf[:] = rng.uniform(-10, 10, 2048)
    want_q = R.quantize_linear(xf.copy(), np.float32(0.1), np.uint8(128))
    qo = xf.view(np.uint8)[100:2148]                       # inside x's bytes
    assert refquant.quantize_linear(xf, np.float32(0.1), np.uint8(128), out=qo) is qo
    assert_bitexact(qo, want_q)


@pytest.mark.slow
@pytest.mark.parametrize("isa", ISA_PARAMS)
@settings(max_examples=2000, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), n=st.sampled_from(SIZES + [10007, 65537, 131075]),
       dt=st.sampled_from(Q_TYPES), f16=st.booleans(),
       shape_kind=st.sampled_from(["flat", "per_axis_last", "per_axis_first", "blocked"]))
def test_quantize_dequantize_long(isa, seed, n, dt, f16, shape_kind):
    """Long random sweep over granularities, float16/float32, every type (``-m slow``)."""
    rng = np.random.default_rng(seed)
    fdt = np.float16 if f16 else np.float32
    rows = 7
    x = hard_values(rng, rows * max(n // rows, 1), 0.05, 0, dt, fdt).reshape(rows, -1)
    qmin, qmax = _qrange(dt)
    kw = {}
    if shape_kind == "flat":
        s, zshape = fdt(rng.uniform(1e-3, 1)), ()
    elif shape_kind == "per_axis_last":
        s, kw = rng.uniform(1e-3, 1, x.shape[1]).astype(fdt), {"axis": 1}
        zshape = s.shape
    elif shape_kind == "per_axis_first":
        s, kw = rng.uniform(1e-3, 1, rows).astype(fdt), {"axis": 0}
        zshape = s.shape
    else:
        bs = max(1, x.shape[1] // 3)
        nb = -(-x.shape[1] // bs)
        s, kw = rng.uniform(1e-3, 1, (rows, nb)).astype(fdt), {"axis": 1, "block_size": bs}
        zshape = s.shape
    zp = np.asarray(rng.integers(qmin, qmax + 1, zshape)).astype(np.int64).astype(dt)
    res, ref = _run_both(F.quantize_linear, R.quantize_linear, x, s, zp, isa=isa, profile=ONNX, **kw)
    assert res is not None
    assert_bitexact(res[0], ref, res[1])
    res, ref = _run_both(F.dequantize_linear, R.dequantize_linear, ref, s, zp, isa=isa,
                         profile=ONNX, **kw)
    assert res is not None
    assert_bitexact(res[0], ref, res[1])


# --------------------------------------------------------------------------------------------
# QuantizeLinear variants: the vendor profiles' formulas (x * fl(1/s), zero point before
# rounding, fma, half-away / half-up rounding, NaN codes) in the kernels
# --------------------------------------------------------------------------------------------
_VARIANT_PROFILES = [get_profile(p) for p in ("pytorch", "pytorch-fbgemm", "pytorch-fakequant",
                                               "tflite-xnnpack", "tensorrt")] + [
    ONNX.replace(name="div-away", q_rounding="half_away"),
    ONNX.replace(name="div-up", q_rounding="half_up", q_nan="zero_point"),
    ONNX.replace(name="div-zpb", q_zero_point="before_rounding", q_nan="qmax"),
    ONNX.replace(name="recip-away", q_scale_op="multiply_reciprocal", q_rounding="half_away",
                 q_nan="zero"),
    ONNX.replace(name="recip-fma-up", q_scale_op="multiply_reciprocal", q_fma=True,
                 q_zero_point="before_rounding", q_rounding="half_up"),
    ONNX.replace(name="recip-f16-as-f32", q_scale_op="multiply_reciprocal", q_fp16_division="float32"),
    get_profile("onnx-reference"), get_profile("tflite-reference"),          # int32 wraparound
    ONNX.replace(name="wrap-nanqmax", q_overflow="int32_wrap", q_nan="qmax"),
    ONNX.replace(name="wrap-recip-zpb", q_overflow="int32_wrap", q_nan="int32_wrap",
                 q_scale_op="multiply_reciprocal", q_zero_point="before_rounding"),
    # tflite-optimized's blocks of 8 (x * fl(1/s), int32 wraparound; its tail is the glue's)
    F._vector_tail_profiles(get_profile("tflite-optimized"))[0],
]


def _recip_ties(rng, n, s, zp, dt):
    """x with x * fl(1/s) (and + zp) at or next to k + 1/2: the reciprocal formulas' ties."""
    qmin, qmax = _qrange(dt)
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        r = np.float32(1) / np.float32(s)
        k = rng.integers(qmin - int(zp) - 3, qmax - int(zp) + 4, n).astype(np.float64)
        t = ((k + 0.5) / np.float64(r)).astype(np.float32)
        pool = np.concatenate([t, np.nextafter(t, np.float32(np.inf)), np.nextafter(t, np.float32(-np.inf))])
    return pool[rng.integers(0, pool.size, n)]


@pytest.mark.parametrize("isa", ISA_PARAMS)
@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), n=st.sampled_from(SIZES), dt=st.sampled_from(Q_TYPES),
       scale=st.sampled_from(SCALES + [None]), pi=st.integers(0, len(_VARIANT_PROFILES) - 1),
       per_axis=st.booleans(), f16=st.booleans())
def test_quantize_variants(isa, seed, n, dt, scale, pi, per_axis, f16):
    """Every kernel-covered vendor formula equals the reference bit for bit: per tensor and per
    axis (where torch's per-channel path drops the fma and maps NaN to 0), float32 and float16
    input, ties of x / s and of x * fl(1/s), specials, tiny and huge scales."""
    prof = _VARIANT_PROFILES[pi]
    rng = np.random.default_rng(seed)
    if prof.symmetric_only and dt not in (np.dtype(np.int8), np.dtype(ml_dtypes.int4)):
        dt = np.dtype(np.int8)          # TensorRT quantizes to int8 / int4 only
    s = np.float32(scale if scale is not None else rng.uniform(1e-4, 10))
    zp = np.array(0, dt) if prof.symmetric_only else _zp_for(rng, dt)
    x = np.concatenate([hard_values(rng, n, s, zp, dt), _recip_ties(rng, n, s, zp, dt)])
    x = x[rng.permutation(2 * n)][:n]
    if f16:
        with np.errstate(over="ignore"):
            x = x.astype(np.float16)
    if per_axis and n:
        rows = 3
        x = np.resize(x, rows * n).reshape(rows, n)
        with np.errstate(over="ignore", under="ignore"):
            sv = (np.array([1.0, 0.37, 3.0], np.float32) * s).astype(np.float32)
        if not np.all(np.isfinite(sv) & (sv > 0)):
            sv = np.full(rows, s, np.float32)
        args, kw = (x, sv, np.full(rows, zp, dt)), dict(axis=0)
    else:
        per_axis = False
        args, kw = (x, s, zp), {}
    res, ref = _run_both(F.quantize_linear, R.quantize_linear, *args, isa=isa, profile=prof, **kw)
    if res is None:
        # declined: float16 division precision, or a formula the kernels do not implement
        # (torch's per-channel fake-quant casts through int64)
        assert (f16 and prof.q_fp16_division == "spec") or \
            F._q_variant(prof, per_axis, dt, bool(zp != 0)) is None, \
            f"kernel declined {prof.name} per_axis={per_axis} f16={f16}"
        return
    y, name = res
    v = F._q_variant(prof, per_axis, dt, bool(zp != 0))
    # (the synthetic combinations outside RQ_QV_SIMD_LIST run the scalar core at every level)
    assert name.endswith("__" + (isa if not v or _k.variant_simd(v) else "scalar")), name
    assert_bitexact(y, ref, f"{prof.name} {name} s={s!r} zp={zp!r} n={n} per_axis={per_axis}")


def test_every_profile_variant_runs_in_simd():
    """Every quantize formula a registered profile selects (and tflite-optimized's blocks of 8)
    is one the AVX2 / AVX-512 units compile in (RQ_QV_SIMD_LIST): until session 19 tflite-optimized's
    ran the scalar default behind an "__avx512" name.  A combination outside the list runs the
    scalar core, is named "__scalar", and gives the reference's bits."""
    missing = set()
    for name in refquant.profiles():
        p = get_profile(name)
        for pr in (p, F._vector_tail_profiles(p)[0]) if getattr(p, "q_vector_width", 0) else (p,):
            for per_axis in (False, True):
                for dt in Q_TYPES:
                    for znz in (False, True):
                        try:
                            v = F._q_variant(pr, per_axis, dt, znz)
                        except Exception:   # noqa: BLE001 - a formula the kernels decline
                            v = None
                        if v and not _k.variant_simd(v):
                            missing.add((name, v))
                        # in float16 precision (RQ_QV_P16; not with the zero point before rounding)
                        if v and not v & (F._QV_ZPB | F._QV_FMA) and not _k.variant_simd(v | F._QV_P16):
                            missing.add((name, v | F._QV_P16))
    assert not missing, missing
    odd = ONNX.replace(name="recip-zpb-away", q_scale_op="multiply_reciprocal",
                       q_zero_point="before_rounding", q_rounding="half_away")
    v = F._q_variant(odd, False, np.dtype(np.uint8), True)
    assert v and not _k.variant_simd(v)
    x = np.linspace(-40, 40, 1001, dtype=np.float32)
    for isa in AVAILABLE:
        res, ref = _run_both(F.quantize_linear, R.quantize_linear, x, np.float32(0.3), np.uint8(7),
                             isa=isa, profile=odd)
        assert res[1].endswith("__scalar"), res[1]
        assert_bitexact(res[0], ref, res[1])


def test_variant_kernel_names_and_declines():
    x = np.linspace(-3, 3, 100, dtype=np.float32)
    refquant.quantize_linear(x, np.float32(0.1), np.uint8(3), profile="pytorch")
    assert refquant.last_path()["path"].startswith("rq_quantize_f32u8_recip_zpb_fma_nanqmax__")
    refquant.quantize_linear(x.reshape(2, 50), np.array([0.1, 0.2], np.float32),
                             np.array([3, 4], np.uint8), axis=0, profile="pytorch")
    assert refquant.last_path()["path"].startswith("rq_quantize_f32u8_recip_zpb_nanzero__")
    refquant.quantize_linear(x, np.float32(0.1), np.int8(0), profile="tensorrt")
    assert refquant.last_path()["path"].startswith("rq_quantize_f32s8_recip_nanzero__")
    # int32 wraparound (onnx.reference, tflite reference): x86's cvttps2dq and an int32 add
    refquant.quantize_linear(x, np.float32(0.1), np.int8(3), profile="tflite-reference")
    assert refquant.last_path()["path"].startswith("rq_quantize_f32s8_away_wrap32__")
    refquant.quantize_linear(x, np.float32(0.1), np.int8(3), profile="onnx-reference")
    assert refquant.last_path()["path"].startswith("rq_quantize_f32s8_wrap32__")
    # the 8-lane split (tflite-optimized): the blocks' variant by the kernels, the n mod 8 tail
    # by the reference (session 10); not covered: torch's per-channel fake-quant int64 cast
    refquant.quantize_linear(x, np.float32(0.1), np.int8(3), profile="tflite-optimized")
    assert refquant.last_path()["path"].startswith("rq_quantize_f32s8_recip_wrap32__")
    refquant.quantize_linear(x.reshape(2, 50), np.array([0.1, 0.2], np.float32),
                             np.array([3, 4], np.uint8), axis=0, profile="pytorch-fakequant")
    assert refquant.last_path()["path"] == "reference"
    # the reference's errors are kept: tensorrt refuses non-zero zero points
    with pytest.raises(Exception, match="shiftIsAllZeros"):
        refquant.quantize_linear(x, np.float32(0.1), np.int8(3), profile="tensorrt")


def test_dequantize_profiles_with_overrides_take_the_kernel():
    """DequantizeLinear reads a profile's own dq fields (its per-axis / op overrides concern
    other ops), so pytorch*, tflite-reference and tensorrt (zero zero points) run the kernel;
    tensorrt's error on a non-zero zero point is the reference's."""
    q = np.arange(-50, 50, dtype=np.int8)
    for p in ("pytorch", "pytorch-x86", "tflite-reference", "tensorrt"):
        for args, kw in (((q, np.float32(0.02), np.int8(0)), {}),
                         ((q.reshape(2, 50), np.array([0.02, 0.5], np.float32), np.zeros(2, np.int8)),
                          dict(axis=0))):
            y = refquant.dequantize_linear(*args, profile=p, **kw)
            assert refquant.last_path()["path"].startswith("rq_dequantize_s8f32__"), p
            assert_bitexact(y, R.dequantize_linear(*args, profile=p, **kw), p)
    with pytest.raises(Exception, match="shiftIsAllZeros"):
        refquant.dequantize_linear(q, np.float32(0.02), np.int8(3), profile="tensorrt")
    with pytest.raises(Exception, match="uint8"):
        refquant.dequantize_linear(q.view(np.uint8), np.float32(0.02), profile="tensorrt")



def test_dequantize_scale_then_subtract_blocks_of_8():
    """tflite-optimized's DequantizeLinear (LiteRT: blocks of 8 flattened elements compute
    fl32(fl32(x*s) - fl32(zp*s)), the last n mod 8 (x - zp)*s exactly): the kernel with a zero
    point of 0 for fl32(x*s), one float32 subtraction, the tail by the reference.  Every n mod 8,
    per tensor and per axis (the axis first, inner and last, negative), zero and non-zero zero
    points, 8- and 16-bit x, extreme values; a zero point of another type, a blocked scale, a
    float16 scale and a Python-int zero point fall back (the reference's result or error)."""
    rng = np.random.default_rng(43)
    prof = "tflite-optimized"
    for dt in (np.uint8, np.int8, np.uint16, np.int16):
        info = np.iinfo(dt)
        for n in (1, 7, 8, 9, 15, 16, 63, 64, 65, 1003):
            x = _random_q(rng, np.dtype(dt), n)
            x[: min(n, 2)] = (info.min, info.max)[: min(n, 2)]
            for z in (None, dt(0), dt(info.max), dt(info.min), dt(rng.integers(info.min, info.max))):
                args = (x, np.float32(rng.uniform(1e-3, 2.0)), z)
                y = refquant.dequantize_linear(*args, profile=prof)
                assert refquant.last_path()["path"].startswith("rq_dequantize_sts_"), refquant.last_path()
                assert_bitexact(y, R.dequantize_linear(*args, profile=prof), f"{dt.__name__} n={n} z={z}")
        for shape in ((), (13,), (3, 5)):   # a 0-d x, scales and zero points of shape (1,)
            x = _random_q(rng, np.dtype(dt), max(1, int(np.prod(shape)))).reshape(shape)
            for args in ((x, np.array([0.3], np.float32), np.array([info.max], dt)),
                         (x.T, np.float32(0.3), dt(info.min))):
                y = refquant.dequantize_linear(*args, profile=prof)
                assert_bitexact(y, R.dequantize_linear(*args, profile=prof), f"{dt.__name__} {shape}")
        for shape, axis in (((3, 7, 5), 1), ((4, 9), 0), ((6, 3), -1), ((2, 3, 11), 2)):
            x = _random_q(rng, np.dtype(dt), int(np.prod(shape))).reshape(shape)
            d = shape[axis]
            sv = rng.uniform(1e-3, 2.0, d).astype(np.float32)
            for zv in (None, np.zeros(d, dt), rng.integers(info.min, info.max, d).astype(dt)):
                # per axis: LiteRT's reference kernel (override per_axis): the exact subtraction
                y = refquant.dequantize_linear(x, sv, zv, axis=axis, profile=prof)
                path = refquant.last_path()["path"]
                assert path.startswith("rq_dequantize_") and not path.startswith("rq_dequantize_sts_"), path
                assert_bitexact(y, R.dequantize_linear(x, sv, zv, axis=axis, profile=prof),
                                f"{dt.__name__} {shape} axis={axis}")
    # every ISA level's kernel (the scale-then-subtract runs: rq_dqrun_args.sts), the runs of a
    # per-axis scale both per element (axis last) and per run (axis first): a profile keeping the
    # blocks of 8 per axis too (tflite-optimized without its per_axis override)
    P = get_profile(prof)
    P = P.replace(name="blocks-per-axis", overrides=tuple(o for o in P.overrides if o[0] != "per_axis"))
    for isa in AVAILABLE:
        for dt in (np.uint8, np.int8, np.uint16, np.int16):
            info = np.iinfo(dt)
            for shape, axis in (((1003,), 0), ((7, 37), 1), ((37, 7), 0), ((3, 5, 19), 2)):
                x = _random_q(rng, np.dtype(dt), int(np.prod(shape))).reshape(shape)
                d = shape[axis]
                for sv, zv in ((np.float32(0.37), dt(info.max)),
                               (rng.uniform(1e-3, 2.0, d).astype(np.float32),
                                rng.integers(info.min, info.max, d).astype(dt))):
                    kw = dict(axis=axis) if np.ndim(sv) else {}
                    res = F.dequantize_linear(x, sv, zv, profile=P, isa=isa, **kw)
                    assert res is not None and res[1].startswith("rq_dequantize_sts_") and \
                        res[1].endswith("__" + isa), res and res[1]
                    assert_bitexact(res[0], R.dequantize_linear(x, sv, zv, profile=P, **kw),
                                    f"{isa} {dt.__name__} {shape} axis={axis}")
    x = _random_q(rng, np.dtype(np.uint8), 100)
    for args, kw in (((x, np.float32(0.1), np.int8(3)), {}),                 # zp of another type
                     ((x.reshape(10, 10), np.full((10, 2), 0.1, np.float32), np.zeros((10, 2), np.uint8)),
                      dict(axis=1, block_size=5)),                             # blocked
                     ((x, np.float16(0.1), np.uint8(3)), {}),                  # float16 output
                     ((x, np.float32(0.1), 3), {})):                           # a Python int
        try:
            want = R.dequantize_linear(*args, profile=prof, **kw)
        except Exception as e:   # noqa: BLE001
            with pytest.raises(type(e)):
                refquant.dequantize_linear(*args, profile=prof, **kw)
            continue
        y = refquant.dequantize_linear(*args, profile=prof, **kw)
        assert refquant.last_path()["path"] == "reference"
        assert_bitexact(y, want, f"fallback {kw}")

def test_dequantize_float32_subtraction_profile():
    """onnx-reference's DequantizeLinear (fl32(x) - fl32(zp), float32 product, then the cast to
    the output type) equals the exact subtraction for float32 outputs, so it runs the kernel
    there; a float16 output (float16 scale) runs the float32 kernel and one cast (session 10;
    the reference before)."""
    rng = np.random.default_rng(41)
    for dt in (np.uint8, np.int8, np.uint16, np.int16, ml_dtypes.int4, np.int32):
        x = _random_q(rng, np.dtype(dt), 1000)
        z = None if dt == np.int32 else _random_q(rng, np.dtype(dt), 1).reshape(())
        for s in (np.float32(0.0123), np.float16(0.0123)):
            want = R.dequantize_linear(x, s, z, profile="onnx-reference")
            got = refquant.dequantize_linear(x, s, z, profile="onnx-reference")
            assert_bitexact(got, want, f"onnx-reference {np.dtype(dt)} {np.asarray(s).dtype}")
            assert refquant.last_path()["path"] != "reference"


def _same_or_raises(fast, ref, what):
    """fast() gives ref()'s bits or raises ref()'s exception type; the path fast() took (None
    when the reference raised)."""
    return same_as_reference(fast, ref, what, assert_bitexact)


def test_compiled_entries_same_as_reference():
    """The compiled entries refquant.quantize_linear / dequantize_linear try first (no
    keywords: the default profile, a per-tensor scale and zero point) give the reference's bits
    for every scale form (numpy float32, Python float rounded to float32, 0-d array) and zero
    point form they take, and decline everything else to the glue / reference (same errors)."""
    rng = np.random.default_rng(71)
    qtypes = (np.uint8, np.int8, np.uint16, np.int16)
    for shape in ((1,), (17,), (3, 5, 7), (4099,)):
        n = int(np.prod(shape))
        for s in SCALES + [0.0, -0.1, float("nan"), float("inf"), 1e-46, 1e39]:
            dt = qtypes[rng.integers(0, 4)]
            z = _zp_for(rng, dt)
            x = hard_values(rng, n, s if 0 < s < 1e38 else 1.0, z, dt).reshape(shape)
            with np.errstate(over="ignore"):
                sfs = (np.float32(s), s, np.array(s, np.float32), np.array([s], np.float32))
            for sf in sfs:
                for zf in (z, z[()], None, int(z), np.array(int(z), ml_dtypes.int4 if -8 <= z <= 7 else np.int32)):
                    path = _same_or_raises(lambda: refquant.quantize_linear(x, sf, zf),
                                           lambda: R.quantize_linear(x, sf, zf), f"q {shape} s={s} zp={zf!r}")
                    if path is not None and zf is not None and type(zf) is not int:
                        assert path.startswith("rq_quantize_"), (s, zf)
                    with np.errstate(invalid="ignore"):
                        q = np.nan_to_num(x).clip(*_qrange(dt)).astype(dt)
                    for zd in (zf, None, True, 70000):
                        path = _same_or_raises(lambda: refquant.dequantize_linear(q, sf, zd),
                                               lambda: R.dequantize_linear(q, sf, zd), f"dq {shape} s={s} zp={zd!r}")
                        if path is not None and (zd is None or type(zd) is int or zd.dtype == dt):
                            assert path.startswith("rq_dequantize_"), (s, zd)
    # int32 input (no zero point), non-contiguous and float16 inputs (the glue's paths)
    xi = rng.integers(-2 ** 31, 2 ** 31, 1000, dtype=np.int64).astype(np.int32)
    for args in ((xi, 0.37), (xi, np.float32(3e-5), None), (xi[::3], 0.1)):
        _same_or_raises(lambda: refquant.dequantize_linear(*args), lambda: R.dequantize_linear(*args), "dq int32")
    with np.errstate(over="ignore"):
        x = hard_values(rng, 999, 0.1, 3, np.int8)
        xh = x.astype(np.float16)
    for args in ((x[::2], 0.1, np.int8(3)), (xh, np.float16(0.1), np.int8(3)),
                 (x.reshape(27, 37).T, np.float32(0.1), np.int8(3))):
        path = _same_or_raises(lambda: refquant.quantize_linear(*args), lambda: R.quantize_linear(*args), "q glue")
        assert path.startswith("rq_quantize_")
    # the entry's acceptance, directly
    variants = tuple([0] * 8)
    assert F._k.quantize_lean(x, 0.1, np.int8(3), variants, 1 << 20) is not None
    for args in ((x, 0.1, 3), (x, 0.1, True), (x, 1e-50, None), (x, 1e39, None), (x, np.float64(0.1), None),
                 (x[::2], 0.1, None), (xh, 0.1, None), (x[:0], 0.1, None),
                 (x, 0.1, np.array([3], np.int8)), (list(x), 0.1, None)):
        assert F._k.quantize_lean(*args, variants, 1 << 20) is None, args
    # a 1-element 1-D scale: per tensor's arithmetic with the per-axis variant (the reference
    # resolves the profile's per-axis overrides for it); without per-axis variants: declined
    y1 = F._k.quantize_lean(x, np.array([0.1], np.float32), None, variants + variants, 1 << 20)
    assert_bitexact(y1[0], R.quantize_linear(x, np.array([0.1], np.float32)))
    assert F._k.quantize_lean(x, np.array([0.1], np.float32), None, variants, 1 << 20) is None
    assert F._k.quantize_lean(x, 0.1, None, variants, 999) is None           # the pool's sizes
    assert F._k.quantize_lean(x, 0.1, None, (-1,) + variants[1:], 1 << 20) is None   # variant refused
    q = np.arange(256, dtype=np.uint8)
    assert F._k.dequantize_lean(q, 0.5, 255, 1 << 20) is not None
    for args in ((q, 0.5, 256), (q, 0.5, -1), (q, 0.5, np.int8(1)), (q.view(np.int8), 0.5, np.uint8(1)),
                 (q, 0.5, np.array([1], np.uint8)), (q.astype(np.int32), 0.5, 0), (q[::2], 0.5, None)):
        assert F._k.dequantize_lean(*args, 1 << 20) is None, args
    # out=: written in place at any size (max_bytes does not apply); declined when it has the
    # wrong type, shape or layout, is read-only, or overlaps x
    o = np.empty(x.shape, np.int8)
    r = F._k.quantize_lean(x, 0.1, np.int8(3), variants, 999, 1, o)
    assert r is not None and r[0] is o
    assert_bitexact(o, R.quantize_linear(x, np.float32(0.1), np.int8(3)))
    ro = np.empty(x.shape, np.int8)
    ro.flags.writeable = False
    big = np.empty(2 * x.size, np.int8)
    for bad in (np.empty(x.shape, np.uint8), np.empty(x.size + 1, np.int8), big[::2], ro, [0] * x.size,
                x.view(np.int8)[:x.size]):
        assert F._k.quantize_lean(x, 0.1, np.int8(3), variants, 1 << 20, 1, bad) is None
    d = np.empty(q.shape, np.float32)
    r = F._k.dequantize_lean(q, 0.5, 255, 1, 1, d)
    assert r is not None and r[0] is d
    assert_bitexact(d, R.dequantize_linear(q, np.float32(0.5), np.uint8(255)))
    qq = np.zeros(4 * q.size, np.uint8)
    qq[:q.size] = q
    for bad in (np.empty(q.shape, np.float64), np.empty(q.size - 1, np.float32), qq.view(np.float32)):
        assert F._k.dequantize_lean(qq[:q.size], 0.5, 255, 1 << 20, 1, bad) is None


def test_compiled_quantize_entry_follows_the_registry():
    """A profile registered under the default's name (here rounding half away from zero, a
    kernel variant; then one whose formula the kernels do not have) is honoured by the very
    next call of the compiled entry."""
    import dataclasses
    from refquant.profile import register_profile
    x = (np.arange(-40, 40, dtype=np.float32) + np.float32(0.5)) * np.float32(0.25)
    want_even = R.quantize_linear(x, np.float32(0.25), np.int8(0))
    onnx = get_profile("onnx")
    try:
        for changes in (dict(q_rounding="half_away"), dict(q_division_precision="float64")):
            prof = dataclasses.replace(onnx, **changes)
            register_profile(prof)
            got = refquant.quantize_linear(x, np.float32(0.25), np.int8(0))
            assert_bitexact(got, R.quantize_linear(x, np.float32(0.25), np.int8(0), profile=prof), str(changes))
            if "q_rounding" in changes:
                assert not np.array_equal(got, want_even)
                assert refquant.last_path()["path"].startswith("rq_quantize_f32s8_away__")
            else:
                assert refquant.last_path()["path"] == "reference"
    finally:
        register_profile(onnx)
    assert_bitexact(refquant.quantize_linear(x, np.float32(0.25), np.int8(0)), want_even, "restored")
    assert refquant.last_path()["path"].startswith("rq_quantize_f32s8__")


def test_compiled_dynamic_quantize_entry():
    """refquant.dynamic_quantize_linear's compiled entry (min / max, the float32 scale and zero
    point formula, the quantize kernel) gives the reference's three results, bits and types,
    for ranges on both sides of zero, one-sided, empty (the zero-range scale), signed zeros,
    denormal and huge ranges; NaN / Inf / a range beyond float32 get the reference's error."""
    rng = np.random.default_rng(73)
    f = np.float32
    cases = [rng.standard_normal(1000).astype(f), np.abs(rng.standard_normal(77)).astype(f) + f(3),
             -np.abs(rng.standard_normal(65)).astype(f) - f(2), np.zeros(33, f), np.full(5, -0.0, f),
             np.array([0.0, -0.0, 1e-45, -1e-45], f), np.array([1e-40, 3e-41], f),
             np.array([-1e-38, 2e-38, 0.0], f), np.array([3e38, -3e38], f), np.array([3e38, 1.0], f),
             np.array([1.0, np.nan], f), np.array([np.inf, 0.0], f), np.array([7.5], f),
             (rng.standard_normal((3, 4, 5)) * 100).astype(f), np.arange(-255, 256, dtype=f) * f(0.5)]
    for x in cases:
        try:
            with np.errstate(all="ignore"):
                want = R.dynamic_quantize_linear(x)
        except Exception as e:  # noqa: BLE001
            with pytest.raises(type(e)):
                refquant.dynamic_quantize_linear(x)
            continue
        got = refquant.dynamic_quantize_linear(x)
        for g, w_ in zip(got, want):
            assert_bitexact(g, w_, f"dynamic {x[:4]}")
        assert refquant.last_path()["path"].startswith("rq_dynamic_quantize_f32u8__"), x[:4]
    lean = F._k.dynamic_quantize_lean
    x = cases[0]
    assert lean(x, 1.0, 1 << 20) is not None
    for bad in (x[::2], x.astype(np.float64), x[:0], list(x), np.array([1.0, np.nan], f)):
        assert lean(bad, 1.0, 1 << 20) is None
    assert lean(x, 1.0, 1000) is None


def test_compiled_entries_per_axis():
    """Per-axis calls (axis as the only keyword) take the compiled entries with the reference's
    bits: every axis (negative too), zero points of every 8/16-bit type or none, ties and
    specials; the forms they do not take (float64 / strided scales, a zero point whose shape or
    type differs, a non-positive scale, a bool or numpy axis, an axis out of range) get the
    reference's result or error."""
    rng = np.random.default_rng(79)
    for shape in ((8, 5, 3), (64, 9), (3, 4, 5, 6), (17,)):
        for axis in range(-len(shape), len(shape)):
            D = shape[axis]
            dt = (np.uint8, np.int8, np.uint16, np.int16)[rng.integers(0, 4)]
            s = (10 ** rng.uniform(-3, 0, D)).astype(np.float32)
            z = np.array([_zp_for(rng, dt) for _ in range(D)], dt)
            x = hard_values(rng, int(np.prod(shape)), float(s[0]), z[0], dt).reshape(shape)
            for zf in (z, None, z.astype(np.int32), z[:-1] if D > 1 else z[:0]):
                for ax in (axis, True if axis == 1 else axis, np.int64(axis)):
                    kw = {"axis": ax}
                    path = _same_or_raises(lambda: refquant.quantize_linear(x, s, zf, **kw),
                                           lambda: R.quantize_linear(x, s, zf, **kw), f"q axis={ax} {shape}")
                    if path is not None and zf is not None and zf.dtype == dt and type(ax) is int:
                        assert path.startswith("rq_quantize_"), (shape, ax)
            with np.errstate(invalid="ignore"):
                q = np.nan_to_num(x).clip(*_qrange(dt)).astype(dt)
            for zf in (z, None, z.view(np.uint8 if dt == np.int8 else np.int8) if z.itemsize == 1 else z.astype(np.int8)):
                for sf in (s, s.astype(np.float64), np.repeat(s, 2)[::2], np.where(np.arange(D) == 0, 0, s).astype(np.float32)):
                    path = _same_or_raises(lambda: refquant.dequantize_linear(q, sf, zf, axis=axis),
                                           lambda: R.dequantize_linear(q, sf, zf, axis=axis), f"dq axis={axis} {shape}")
                    if path is not None and sf is s and (zf is None or zf.dtype == dt):
                        assert path.startswith("rq_dequantize_"), (shape, axis)
    x = np.ones((4, 6), np.float32)
    for bad_axis in (2, -3):
        with pytest.raises(ValueError, match="axis"):
            refquant.quantize_linear(x, np.ones(4, np.float32), np.zeros(4, np.uint8), axis=bad_axis)


@pytest.mark.parametrize("isa", ISA_PARAMS)
def test_blocked_rows_across_chunks(isa):
    """Blocked along the contiguous axis with work chunks that start in the middle of a block and
    of a row (the chunk walk that advances block by block): block sizes that do not divide the
    row or the chunk, a partial last block, 1 and 2 threads, quantize and dequantize."""
    rng = np.random.default_rng(101)
    try:
        for (rows, D, bs) in ((37, 1000, 48), (5, 70001, 32), (300, 333, 7), (2, 131072, 64)):
            x = (rng.standard_normal((rows, D)) * 4).astype(np.float32)
            nb = -(-D // bs)
            s = (rng.random((rows, nb)) * 0.05 + 0.01).astype(np.float32)
            z = rng.integers(-8, 8, (rows, nb)).astype(ml_dtypes.int4)
            for nt in (1, 2):
                refquant.set_num_threads(nt)
                res, ref = _run_both(F.quantize_linear, R.quantize_linear, x, s, z, axis=1, block_size=bs,
                                     profile=ONNX, isa=isa)
                assert_bitexact(res[0], ref, f"blocked q rows={rows} D={D} bs={bs} t={nt}")
                res, dref = _run_both(F.dequantize_linear, R.dequantize_linear, ref, s, z, axis=1, block_size=bs,
                                      profile=ONNX, isa=isa)
                assert_bitexact(res[0], dref, f"blocked dq rows={rows} D={D} bs={bs} t={nt}")
    finally:
        refquant.set_num_threads(None)


# (outer, D, inner): the channel axis last with few channels and few elements per channel (the
# kernels' periodic parameter table, quant_dispatch.c periodic_params), runs of every length
# around the vector and cache-line widths (whole-vector prologues and tails), a period that does
# not divide the 64K-element work chunk (phases across chunks), and layouts past the table's
# limits (D >= 1024 last, inner >= 64, P > 16384).
_SHORT_RUNS = [(2000, 3, 1), (700, 4, 1), (300, 16, 1), (40, 64, 1), (6, 1000, 1), (3, 1024, 1),
               (30000, 3, 1), (100, 3, 16), (100, 16, 4), (4, 64, 49), (40, 5, 63), (12, 7, 64),
               (5, 32, 128), (200, 2, 17), (3, 257, 65), (2, 300, 49), (30, 9, 31), (9, 3, 255),
               (17, 4, 100), (11, 2, 129)]


@pytest.mark.parametrize("isa", ISA_PARAMS)
@pytest.mark.parametrize("stream", ["0", "-1"], ids=["streaming", "cached"])
def test_per_axis_short_runs(isa, stream, monkeypatch):
    """Per-axis QuantizeLinear / DequantizeLinear whose runs of shared parameters are short
    equal the reference: every quantize type, float32 and float16 input / output, the vendor
    formulas (tflite-optimized's scale-then-subtract dequantize), 1 and 2 threads, with every
    output streamed (REFQUANT_STREAM_BYTES=0) and with none."""
    monkeypatch.setenv("REFQUANT_STREAM_BYTES", stream)
    rng = np.random.default_rng(7)
    qprofs = [ONNX, ORT] + [get_profile(p) for p in ("pytorch", "tflite-xnnpack")]
    try:
        for k, (outer, D, inner) in enumerate(_SHORT_RUNS):
            shape = (outer, D, inner)
            dt = Q_TYPES[k % len(Q_TYPES)]
            s = rng.uniform(0.01, 0.2, D).astype(np.float32)
            qmin, qmax = _qrange(dt)
            zp = rng.integers(qmin, qmax + 1, D).astype(np.int64).astype(dt)
            x = (rng.standard_normal(shape) * 8).astype(np.float32)
            refquant.set_num_threads(1 + k % 2)
            prof = qprofs[k % len(qprofs)]
            for xin in (x, x.astype(np.float16)) if k % 3 == 0 else (x,):
                res, ref = _run_both(F.quantize_linear, R.quantize_linear, xin, s, zp, isa=isa,
                                     axis=1, profile=prof)
                what = f"q {prof.name} {shape} {dt} {xin.dtype}"
                assert res is not None, what
                assert_bitexact(res[0], ref, what)
            q = _random_q(rng, dt, x.size).reshape(shape)
            for dprof, sv in ((ONNX, s), (ONNX, s.astype(np.float16)),
                              (get_profile("tflite-optimized"), s)):
                if dprof.name == "tflite-optimized" and dt not in _DQ_STS_TYPES:
                    continue
                res, ref = _run_both(F.dequantize_linear, R.dequantize_linear, q, sv, zp, isa=isa,
                                     axis=1, profile=dprof)
                what = f"dq {dprof.name} {shape} {dt} {sv.dtype}"
                assert res is not None, what
                assert_bitexact(res[0], ref, what)
    finally:
        refquant.set_num_threads(None)


_DQ_STS_TYPES = tuple(np.dtype(t) for t in (np.uint8, np.int8, np.uint16, np.int16))


@pytest.mark.parametrize("isa", ISA_PARAMS)
@pytest.mark.parametrize("stream", [0, 1], ids=["cached", "streaming"])
def test_per_axis_runs_guard_bytes(isa, stream):
    """Runs of 1-300 elements at every output alignment write exactly their elements (the whole
    vectors that end each run overlap elements written before, never bytes past the run)."""
    lvl = _cpu._level(isa)
    rng = np.random.default_rng(3)
    for inner in (1, 15, 16, 17, 31, 33, 48, 49, 64, 65, 100, 127, 128, 129, 255, 257, 300):
        D, outer = 3, 2
        n = outer * D * inner
        x = (rng.standard_normal(n) * 100).astype(np.float32)
        s = np.array([0.37, 0.5, 1.25], np.float32)
        z = np.array([3, -7, 0], np.int32)
        want_q = R.quantize_linear(x.reshape(outer, D, inner), s, z.astype(np.int8), axis=1)
        for offset in (0, 1, 5, 33):
            buf = np.full(n + 128 + offset, 0xA5, np.uint8)
            y = buf[64 + offset:64 + offset + n]
            _k.quantize(x, "float32", y, "int8", s, z, outer, D, inner, False, lvl, 0, 0, stream)
            assert (buf[:64 + offset] == 0xA5).all() and (buf[64 + offset + n:] == 0xA5).all()
            assert_bitexact(y.view(np.int8).reshape(outer, D, inner), want_q, f"q {inner} {offset}")
            fbuf = np.full(n + 64 + offset, np.float32(-1.5), np.float32)
            fy = fbuf[32 + offset:32 + offset + n]
            _k.dequantize(want_q.reshape(-1), "int8", fy, "float32", s, z, outer, D, inner, lvl,
                          0, 0, stream)
            assert (fbuf[:32 + offset] == -1.5).all() and (fbuf[32 + offset + n:] == -1.5).all()
            assert_bitexact(fy.reshape(outer, D, inner),
                            R.dequantize_linear(want_q, s, z.astype(np.int8), axis=1),
                            f"dq {inner} {offset}")


@pytest.mark.parametrize("isa", ISA_PARAMS)
def test_minmax_every_position(isa):
    """The min / max kernel (DynamicQuantizeLinear's first pass) flags NaN (either sign, quiet
    or signalling) and +-Inf at any position of arrays around its unrolled widths, and gives the
    exact min and max otherwise (FLT_MAX included)."""
    lvl = _cpu._level(isa)
    specials = np.array([0x7fc00000, 0xffc00000, 0x7f800001, 0x7f800000, 0xff800000],
                        np.uint32).view(np.float32)
    for n in (1, 15, 16, 17, 31, 33, 63, 64, 65, 127, 128, 129, 1000):
        for pos in sorted({0, n // 3, n // 2, n - 1}):
            x = np.random.default_rng(n + pos).standard_normal(n).astype(np.float32)
            for v in specials:
                xb = x.copy()
                xb[pos] = v
                assert _k.minmax(xb, lvl)[2], (n, pos, v)
            xb = x.copy()
            xb[pos] = np.float32(-3.4028235e38) if pos % 2 else np.float32(3.4028235e38)
            mn, mx, nf, _ = _k.minmax(xb, lvl)
            assert not nf and mn == xb.min() and mx == xb.max(), (n, pos)
    # the main loops run on 64-byte lines after a whole first vector: every start in a line,
    # the extreme and the special just before, at and after the first aligned element
    rng = np.random.default_rng(5)
    for n in (79, 80, 81, 143, 300):
        for off in range(16):
            buf = np.empty(n + 32, np.float32)
            base = (-(buf.ctypes.data // 4)) % 16
            x = buf[base + off: base + off + n]
            x[:] = rng.standard_normal(n)
            first = (16 - off) % 16
            for pos in sorted({p for p in (0, first - 1, first, first + 1, n - 1) if 0 <= p < n}):
                keep = x[pos]
                x[pos] = np.float32(9.0) if pos % 2 else np.float32(-9.0)
                mn, mx, nf, _ = _k.minmax(x, lvl)
                assert not nf and mn == x.min() and mx == x.max(), (n, off, pos)
                x[pos] = np.float32(np.inf)
                assert _k.minmax(x, lvl)[2], (n, off, pos)
                x[pos] = keep


@pytest.mark.parametrize("isa", ISA_PARAMS)
def test_dequantize_float16_via_float32(isa):
    """A float16 DequantizeLinear under dq_subtract "float32" (onnxruntime, onnx-reference:
    fl16(fl32(x - zp) * fl32(s))) runs the kernels' float32 results rounded once to float16 in
    blocks of 2048 (`..._via_f32`; a numpy cast of the whole float32 result before): every input
    type, per tensor, per axis and blocked, scales whose products overflow float16 or land in its
    subnormals, sizes around the block and the 64K-element chunk, 1 and 2 threads, a caller's
    float16 ``out``; the reference's bits."""
    rng = np.random.default_rng(29)
    try:
        for k, dt in enumerate(DQ_TYPES):
            for n in (1, 17, 2047, 2049, 65536 + 2050):
                x = _random_q(rng, dt, n)
                z = None if dt == np.int32 else _random_q(rng, dt, 1).reshape(())
                prof = ("onnxruntime", "onnx-reference")[k % 2]
                refquant.set_num_threads(1 + n % 2)
                for s in (np.float16(0.0123), np.float16(3000.0), np.float16(1e-7)):
                    res, ref = _run_both(F.dequantize_linear, R.dequantize_linear, x, s, z, isa=isa,
                                         profile=get_profile(prof))
                    assert res is not None and res[1].endswith("_via_f32__" + isa), res and res[1]
                    assert_bitexact(res[0], ref, f"{prof} {dt} n={n} s={s}")
                out = np.empty(n, np.float16)
                res = F.dequantize_linear(x, np.float16(0.5), z, profile=get_profile(prof), out=out, isa=isa)
                assert res is not None and res[0] is out
                assert_bitexact(out, R.dequantize_linear(x, np.float16(0.5), z, profile=prof), "out")
            if dt == np.int32:
                continue
            # per axis and blocked, float16 scales
            xa = _random_q(rng, dt, 3 * 5000).reshape(3, 5000)
            sa = rng.uniform(1e-3, 40, 3).astype(np.float16)
            za = _random_q(rng, dt, 3)
            res, ref = _run_both(F.dequantize_linear, R.dequantize_linear, xa, sa, za, isa=isa, axis=0,
                                 profile=ORT)
            assert res is not None and "_via_f32__" in res[1]
            assert_bitexact(res[0], ref, f"per axis {dt}")
            sb = rng.uniform(1e-3, 40, (3, 157)).astype(np.float16)
            zb = _random_q(rng, dt, 3 * 157).reshape(3, 157)
            res, ref = _run_both(F.dequantize_linear, R.dequantize_linear, xa, sb, zb, isa=isa, axis=1,
                                 block_size=32, profile=ORT)
            assert res is not None and "_via_f32__" in res[1]
            assert_bitexact(res[0], ref, f"blocked {dt}")
    finally:
        refquant.set_num_threads(None)


@pytest.mark.parametrize("isa", ISA_PARAMS)
def test_quantize_variants_float16_precision(isa):
    """Vendor formulas in float16 precision (float16 x, or a float16 scale at opset 23: x, 1/s
    and x * r or x / s each rounded to float16, RQ_QV_P16): tflite-xnnpack, tensorrt,
    onnx-reference and tflite-reference (int32 wraparound) run the kernels, with the
    reference's bits on float16 ties and their neighbours, specials and huge values, per tensor
    and per axis, float16 and float32 x.  The zero point before rounding (pytorch): the next
    test."""
    rng = np.random.default_rng(37)
    profs = [get_profile(p) for p in ("tflite-xnnpack", "tensorrt", "onnx-reference", "tflite-reference")]
    profs.append(ONNX.replace(name="p16-div-away", q_rounding="half_away", q_nan="qmax"))
    for k, prof in enumerate(profs):
        for dt in (np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16), np.dtype(ml_dtypes.int4)):
            if prof.symmetric_only and dt not in (np.dtype(np.int8), np.dtype(ml_dtypes.int4)):
                continue
            for s in (np.float16(0.0123), np.float16(1 / 3), np.float16(3.0), np.float16(0.00061)):
                zp = np.array(0, dt) if prof.symmetric_only else _zp_for(rng, dt)
                x = hard_values(rng, 3001, np.float32(s), zp, dt, xdtype=np.float16)
                res, ref = _run_both(F.quantize_linear, R.quantize_linear, x, s, zp, isa=isa, profile=prof)
                assert res is not None, (prof.name, dt)
                v = F._q_variant(prof, False, dt, bool(zp != 0))
                assert "_p16" in res[1] and res[1].endswith(
                    "__" + (isa if _k.variant_simd(v | F._QV_P16) else "scalar")), res[1]
                assert_bitexact(res[0], ref, f"{prof.name} {dt} s={s}")
                # float32 x with a float16 scale at opset 23: x rounded to float16 first where the
                # profile divides in the scale's type (onnx-reference promotes to float32)
                x32 = (x.astype(np.float32) * np.float32(1.0001)).astype(np.float32)
                res, ref = _run_both(F.quantize_linear, R.quantize_linear, x32, s, zp, isa=isa,
                                     profile=prof, opset=23)
                from refquant.reference.quantize import _division_dtype
                p16 = _division_dtype(x32.dtype, s.dtype, None, 23, prof.for_op("QuantizeLinear")) == np.float16
                assert res is not None and ("_p16" in res[1]) == p16, (prof.name, res and res[1])
                assert_bitexact(res[0], ref, f"{prof.name} {dt} s={s} float32 x")
            # per axis
            sv = np.array([0.0123, 1 / 3, 3.0], np.float16)
            zv = np.zeros(3, dt) if prof.symmetric_only else _random_q(rng, dt, 3)
            xa = hard_values(rng, 3 * 257, np.float32(0.1), zv[0], dt, xdtype=np.float16).reshape(3, 257)
            res, ref = _run_both(F.quantize_linear, R.quantize_linear, xa, sv, zv, isa=isa, axis=0,
                                 profile=prof)
            if res is not None:
                assert_bitexact(res[0], ref, f"{prof.name} {dt} per axis")
            else:   # a per-axis override the kernels do not implement
                assert F._q_variant(prof, True, dt, bool(np.any(zv != 0))) is None, prof.name


@pytest.mark.parametrize("isa", ISA_PARAMS)
def test_quantize_zero_point_before_rounding_float16(isa):
    """The zero point added before rounding, in float16 precision (RQ_QV_ZPB | RQ_QV_P16):
    pytorch per tensor, fl16(fma(x, r, zp)) rounded once (the kernels round x * r + zp to
    float32 *to odd*, then to float16), and per axis, fl16(fl16(x * r) + fl16(zp)); also the
    division form.  Every 8- and 16-bit type, zero points past 2048 (not float16 integers),
    every float16 x (all 65536 codes); the reference's bits, on inputs where rounding x * r +
    zp to the nearest float32 first gives other bits."""
    from refquant.reference.quantize import _fma_round_to
    X16 = np.arange(65536, dtype=np.uint16).view(np.float16)
    pt = get_profile("pytorch")
    div = ONNX.replace(name="zpb-div-f16", q_zero_point="before_rounding", q_nan="qmax")
    naive_differs = 0
    for dt in (np.dtype(np.uint8), np.dtype(np.int8), np.dtype(np.int16), np.dtype(np.uint16)):
        qmin, qmax = _qrange(dt)
        zps = [0, 3, qmax, qmin] + ([2049, -2051 if qmin < 0 else 40001] if qmax > 255 else [])
        for s in (np.float16(0.0123), np.float16(1 / 3), np.float16(3.0), np.float16(0.00061)):
            for z in zps:
                zp = np.array(z, dt)
                x = X16
                for prof in (pt, div):
                    res, ref = _run_both(F.quantize_linear, R.quantize_linear, x, s, zp, isa=isa, profile=prof)
                    assert res is not None, (prof.name, dt)
                    v = F._q_variant(prof, False, dt, z != 0)
                    assert "_zpb" in res[1] and "_p16" in res[1] and res[1].endswith(
                        "__" + (isa if _k.variant_simd(v | F._QV_P16) else "scalar")), res[1]
                    assert_bitexact(res[0], ref, f"{prof.name} {dt} s={s} zp={z}")
                r16 = (np.float16(1) / s).astype(np.float16)
                with np.errstate(all="ignore"):
                    naive = (x.astype(np.float32) * np.float32(r16) + np.float32(z)).astype(np.float16)
                    exact = _fma_round_to(x, r16, np.float64(z), np.float16)
                naive_differs += int(np.sum((naive != exact) & ~np.isnan(exact)))
            # per axis (pytorch: x * r rounded, then the zero point added in float16)
            sv = np.array([s, np.float16(0.37), np.float16(2.5), np.float16(0.0051)], np.float16)
            zv = np.array([zps[-1], zps[1], zps[0], zps[2]]).astype(dt)
            xa = X16.reshape(-1, 4, 2)[:, :, ::-1]   # every code, a negative stride, axis 1
            res, ref = _run_both(F.quantize_linear, R.quantize_linear, xa, sv, zv, isa=isa, axis=1,
                                 profile=pt)
            assert res is not None and "_zpb" in res[1] and "_p16" in res[1], res and res[1]
            assert_bitexact(res[0], ref, f"pytorch {dt} per axis")
    assert naive_differs > 0   # the inputs reach the cases a float32 rounding to nearest gets wrong


# --------------------------------------------------------------------------------------------
# float8 QuantizeLinear / DequantizeLinear (rq_f8.h)
# --------------------------------------------------------------------------------------------
F8_TYPES = [ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e4m3fnuz, ml_dtypes.float8_e5m2,
            ml_dtypes.float8_e5m2fnuz]
# float4e2m1 (opset 23) and float6 (opset 28): the same kernels, no Inf / NaN codes
LOWF_TYPES = F8_TYPES + [ml_dtypes.float4_e2m1fn, ml_dtypes.float6_e2m3fn, ml_dtypes.float6_e3m2fn]


def _f8_inputs(dt, rng, n_random):
    """Every finite value of the type, the midpoints between neighbours and 3 float32 steps
    around each (the rounding ties and their neighbours), the subnormal range, the edges around
    the largest value, specials, and random float32 values over the type's exponent range."""
    codes = np.arange(256, dtype=np.uint8).view(dt).astype(np.float32)
    grid = np.unique(codes[np.isfinite(codes)])
    mids = ((grid[:-1].astype(np.float64) + grid[1:]) / 2).astype(np.float32)
    base = np.concatenate([grid, mids]).view(np.uint32).astype(np.int64)
    near = np.concatenate([base + d for d in range(-3, 4)])
    near = near[(near >= 0) & (near < 2 ** 31)].astype(np.uint32).view(np.float32)
    e = rng.integers(95, 150, n_random).astype(np.uint32)
    m = rng.integers(0, 2 ** 23, n_random).astype(np.uint32)
    rnd = ((e << 23) | m).view(np.float32)
    fmax = np.float32(ml_dtypes.finfo(dt).max)
    specials = np.float32([np.nan, np.inf, 0.0, fmax * 1.01, fmax * 2, 3e38, 1e-45, 480, 496, 61440, 65536,
                           5.0, 5.5, 6.5, 7.0, 7.75, 8.0, 26.0, 30.0, 32.0])
    x = np.concatenate([near, rnd, specials])
    sign = rng.integers(0, 2, x.size).astype(np.uint32) << 31
    return (x.view(np.uint32) | sign).view(np.float32)


@pytest.mark.parametrize("isa", ISA_PARAMS)
@pytest.mark.parametrize("dt", LOWF_TYPES, ids=lambda d: np.dtype(d).name)
def test_float8_quantize_grid(isa, dt):
    """float8 / float6 / float4 QuantizeLinear by the kernels == the reference, bit for bit, at
    every level: every rounding tie of the type's grid and the float32 values around it,
    subnormals, the edges of saturation, NaN (either sign), +-Inf, -0.0; scales 1, 0.75 and 3e-5;
    a +0 zero point under the profiles that add it (-0 -> +0) and those that do not; saturate=0
    (the Cast table, ONNX Runtime's edges, a profile that clamps anyway; ignored by float6/4);
    per axis with two threads."""
    import dataclasses
    rng = np.random.default_rng(np.dtype(dt).num)
    x = _f8_inputs(np.dtype(dt), rng, 200_000)
    z0 = np.zeros((), dt)
    add = dataclasses.replace(get_profile("onnx"), name="test-f8-add", q_float_zero_point="add")
    for s in (np.float32(1.0), np.float32(0.75), np.float32(3e-5)):
        for prof, zp in ((ONNX, z0), (ONNX, None), (add, z0), (get_profile("onnxruntime"), z0)):
            kw = dict(output_dtype=dt) if zp is None else {}
            res = F.quantize_linear(x, s, zp, profile=prof, isa=isa, **kw)
            assert res is not None and res[1].endswith("__" + ("avx512" if isa.startswith("avx512") or isa == "amx"
                                                              else "avx2" if isa.startswith("avx") else "scalar"))
            with np.errstate(all="ignore"):
                want = R.quantize_linear(x, s, zp, profile=prof, **kw)
            bad = np.flatnonzero(res[0].view(np.uint8) != want.view(np.uint8))
            assert bad.size == 0, (prof.name, s, [(hex(int(x.view(np.uint32)[i])), res[0].view(np.uint8)[i],
                                                   want.view(np.uint8)[i]) for i in bad[:4]])
    # saturate=0: the Cast table (onnx), ONNX Runtime's edges on it (onnxruntime), the clamp
    # anyway (a profile whose q_float8_saturate0 is "saturate")
    edges = np.float32([464, 465, 479, 480, 495.9, 496, 497, 61439, 61440, 65535, 65536, 70000, np.inf])
    xs0 = np.concatenate([x[:300_000], edges, -edges])
    sat0 = dataclasses.replace(get_profile("onnx"), name="test-f8-sat0", q_float8_saturate0="saturate")
    for prof in (ONNX, get_profile("onnxruntime"), sat0):
        res = F.quantize_linear(xs0, np.float32(0.75), z0, saturate=0, profile=prof, isa=isa)
        with np.errstate(all="ignore"):
            want = R.quantize_linear(xs0, np.float32(0.75), z0, saturate=0, profile=prof)
        assert res is not None and np.array_equal(res[0].view(np.uint8), want.view(np.uint8)), prof.name
    xa = x[:120_000].reshape(-1, 6, 40)
    sa = np.float32([0.5, 1.0, 3.0, 1e-3, 7.0, 0.1])
    refquant.set_num_threads(2)
    try:
        for axis, ss in ((1, sa), (2, np.resize(sa, 40)), (0, np.resize(sa, xa.shape[0]))):
            res = F.quantize_linear(xa, ss, np.zeros(ss.shape, dt), axis=axis, profile=ONNX, isa=isa)
            with np.errstate(all="ignore"):
                want = R.quantize_linear(xa, ss, np.zeros(ss.shape, dt), axis=axis)
            assert res is not None and np.array_equal(res[0].view(np.uint8), want.view(np.uint8)), axis
    finally:
        refquant.set_num_threads(None)


@pytest.mark.parametrize("isa", ISA_PARAMS)
def test_float8_dequantize_every_code(isa):
    """float8 DequantizeLinear by the kernels (a 256-entry table, then fl32(fl32(v - 0) * s)):
    all 256 codes of each type (NaN codes, -0.0, subnormals), per tensor and per axis, scales
    that overflow and underflow, a +0 zero point given or absent; the reference's bits."""
    x8 = np.arange(256, dtype=np.uint8)
    for dt in F8_TYPES:
        x = np.tile(x8, 12).view(dt).reshape(12, 256)
        for s in (np.float32(1.0), np.float32(0.3), np.float32(3e38), np.float32(1e-40)):
            for zp in (None, np.zeros((), dt)):
                res = F.dequantize_linear(x, s, zp, profile=ONNX, isa=isa)
                want = R.dequantize_linear(x, s, zp)
                assert res is not None and "dequantize_" in res[1]
                assert np.array_equal(res[0].view(np.uint32), want.view(np.uint32)), (dt, s)
        sa = np.float32(np.geomspace(1e-3, 1e3, 12))
        res = F.dequantize_linear(x, sa, np.zeros(12, dt), axis=0, profile=get_profile("onnxruntime"), isa=isa)
        want = R.dequantize_linear(x, sa, np.zeros(12, dt), axis=0, profile="onnxruntime")
        assert res is not None and np.array_equal(res[0].view(np.uint32), want.view(np.uint32))
        # float16 outputs: a float16 scale (fl16(x * s), the float32 product exact), or a float32
        # scale with output_dtype float16 (the scale rounded to float16 first, or under ORT's
        # dq_subtract "float32" the float32 product rounded once)
        for prof in (ONNX, get_profile("onnxruntime"), get_profile("onnx-reference")):
            for s, kw in ((np.float16(0.37), {}), (np.float16(3000.0), {}), (np.float16(1e-7), {}),
                          (np.float32(0.123456), dict(output_dtype="float16", opset=23)),
                          (np.float32(1e-6), dict(output_dtype="float16", opset=23))):
                with np.errstate(over="ignore"):
                    want = R.dequantize_linear(x, s, None, profile=prof, **kw)
                res = F.dequantize_linear(x, s, None, profile=prof, isa=isa, **kw)
                assert res is not None and res[1].split("__")[0].endswith("f16_via_f32"), res and res[1]
                assert res[0].dtype == np.float16 and np.array_equal(res[0].view(np.uint16), want.view(np.uint16)), \
                    (dt, prof.name, s, kw)
        # channels last (a per-element scale row, runs of 40 rows and a remainder of one)
        xl = np.resize(x8, 41 * 100).view(dt).reshape(41, 100)
        sl = np.float32(np.geomspace(1e-2, 1e2, 100))
        res = F.dequantize_linear(xl, sl, np.zeros(100, dt), axis=1, profile=ONNX, isa=isa)
        want = R.dequantize_linear(xl, sl, np.zeros(100, dt), axis=1)
        assert res is not None and np.array_equal(res[0].view(np.uint32), want.view(np.uint32))


def test_float8_declines_to_reference():
    """What the low-float kernels do not implement runs the reference (same bits, same errors):
    onnx-reference's numpy promotions (QuantizeLinear), a float16 DequantizeLinear output with a
    non-zero zero point (x - zp rounds to float16 first), a zero point the profile refuses."""
    x = np.float32([1.0, -0.0, 500.0, np.nan, 3e-3] * 8)
    dt = ml_dtypes.float8_e4m3fn
    calls = [
        (refquant.quantize_linear, R.quantize_linear, (x, np.float32(1.0), np.zeros((), dt)),
         dict(profile="onnx-reference")),
        (refquant.dequantize_linear, R.dequantize_linear, (x.astype(dt), np.float16(2.0), np.array(1.0, dt)), {}),
        (refquant.dequantize_linear, R.dequantize_linear,
         (x.astype(ml_dtypes.float4_e2m1fn), np.float32(2.0), np.array(1.0, ml_dtypes.float4_e2m1fn)),
         dict(output_dtype="float16")),
    ]
    for fast, ref, args, kw in calls:
        with np.errstate(all="ignore"):
            want = ref(*args, **kw)
            got = fast(*args, **kw)
        assert refquant.last_path()["path"] == "reference", (args[2], kw)
        assert np.array_equal(np.asarray(got).view(np.uint8), np.asarray(want).view(np.uint8))
    # ORT's DequantizeLinear refuses a non-zero float8 zero point: the reference's error
    with pytest.raises(ValueError, match="x_zero_point"):
        refquant.dequantize_linear(x.astype(dt), np.float32(2.0), np.array(1.0, dt), profile="onnxruntime")
    assert refquant.quantize_linear(x, np.float32(1.0), np.zeros((), dt)).dtype == dt
    assert refquant.last_path()["path"].startswith("rq_quantize_f32e4m3fn__")


@pytest.mark.parametrize("isa", ISA_PARAMS)
def test_low_float_zero_points(isa):
    """Non-zero float8 / float6 / float4 zero points by the kernels, under every
    q_float_zero_point rule (add, add_nonzero, ignore and the per-type ones): QuantizeLinear
    adds fl32(fl32(x / s) + zp) where the rule adds it, DequantizeLinear subtracts
    fl32(x - zp) before the scale; per tensor, per axis (mixed zeros, -0.0, NaN) and blocked;
    the reference's bits, or its error where it refuses the zero point."""
    import dataclasses
    rng = np.random.default_rng(77)
    modes = ("add", "add_nonzero", "add_nonzero_float8", "ignore", "ignore_float8")
    profs = [dataclasses.replace(get_profile("onnx"), name=f"test-zp-{m}", q_float_zero_point=m) for m in modes]
    for dt in LOWF_TYPES:
        dt = np.dtype(dt)
        grid = np.unique(np.arange(256, dtype=np.uint8).view(dt).astype(np.float32))
        grid = grid[np.isfinite(grid)]
        x = _f8_inputs(dt, rng, 3000)[: 6 * 7 * 40].reshape(6, 7, 40)
        zvals = np.concatenate([rng.choice(grid, 5), [0.0, -0.0]]).astype(np.float32)
        if ml_dtypes.finfo(dt).bits == 8 and np.isnan(np.float32(np.nan).astype(dt).astype(np.float32)):
            zvals = np.append(zvals, np.float32(np.nan))
        cases = [  # (scale, zero point, kw)
            (np.float32(0.5), np.array(zvals[0]).astype(dt), dict(axis=1)),
            (np.float32(0.5), np.array(-0.0, np.float32).astype(dt), dict(axis=1)),
            (np.float32(np.geomspace(0.1, 10, 7)), np.resize(zvals, 7).astype(dt), dict(axis=1)),
            (np.float32(np.geomspace(0.1, 10, 40)), np.resize(zvals, 40).astype(dt), dict(axis=2)),
            ((rng.random((6, 7, 4)) + 0.1).astype(np.float32), np.resize(zvals, (6, 7, 4)).astype(dt),
             dict(axis=2, block_size=10)),
            ((rng.random((2, 7, 40)) + 0.1).astype(np.float32), np.resize(zvals, (2, 7, 40)).astype(dt),
             dict(axis=0, block_size=4)),
        ]
        for prof in profs:
            for s, z, kw in cases:
                for op, fast, ref, arg in (("q", F.quantize_linear, R.quantize_linear, x),
                                           ("dq", F.dequantize_linear, R.dequantize_linear, None)):
                    if op == "dq":
                        with np.errstate(all="ignore"):
                            arg = R.quantize_linear(x, s, None, output_dtype=dt, **kw)
                    try:
                        with np.errstate(all="ignore"):
                            want = ref(arg, s, z, profile=prof, **kw)
                    except ValueError:
                        assert fast(arg, s, z, profile=prof, isa=isa, **kw) is None
                        continue
                    res = fast(arg, s, z, profile=prof, isa=isa, **kw)
                    if res is None:
                        # a NaN zero point added in QuantizeLinear: the reference (it keeps a NaN
                        # quotient's sign, which a plain add does not promise)
                        assert op == "q" and np.isnan(z.astype(np.float32)).any(), (dt, prof.name, op, kw)
                        with np.errstate(all="ignore"):
                            res = (refquant.quantize_linear(arg, s, z, profile=prof, **kw), None)
                    assert np.array_equal(res[0].view(np.uint8), want.view(np.uint8)), (dt, prof.name, op, kw, z)


@pytest.mark.parametrize("isa", ISA_PARAMS)
def test_low_float_dequantize_every_byte(isa):
    """float4e2m1 / float6 DequantizeLinear: all 256 bytes (the high bits as ml_dtypes converts
    them), float32 and float16 outputs, per tensor and per axis; the reference's bits."""
    x8 = np.arange(256, dtype=np.uint8)
    for dt in LOWF_TYPES[4:]:
        x = np.tile(x8, 12).view(dt).reshape(12, 256)
        for s, kw in ((np.float32(0.3), {}), (np.float32(3e38), {}), (np.float16(0.37), {}),
                      (np.float32(0.123456), dict(output_dtype="float16")),
                      (np.float32(np.geomspace(1e-3, 1e3, 12)), dict(axis=0))):
            for zp in (None, np.zeros(np.shape(s), dt)):
                with np.errstate(over="ignore"):
                    want = R.dequantize_linear(x, s, zp, **kw)
                res = F.dequantize_linear(x, s, zp, profile=ONNX, isa=isa, **kw)
                assert res is not None and "dequantize_" in res[1]
                assert res[0].dtype == want.dtype and np.array_equal(res[0].view(np.uint8), want.view(np.uint8)), \
                    (dt, s, kw)


def test_float4_packed_output_from_the_kernels():
    """quantize_linear_packed to float4e2m1 (two codes per byte, element 0 low) from the kernels'
    one-code-per-byte output == refquant.pack of the reference."""
    x = np.random.default_rng(5).standard_normal(1001).astype(np.float32) * 4
    z = np.zeros((), ml_dtypes.float4_e2m1fn)
    got = refquant.quantize_linear_packed(x, np.float32(0.5), z)
    assert refquant.last_path()["path"].startswith("rq_quantize_f32e2m1__")
    assert np.array_equal(got, refquant.pack(R.quantize_linear(x, np.float32(0.5), z)))


def test_float8_fast_path_vs_live_onnxruntime():
    """The float8 kernels against the live onnxruntime QuantizeLinear / DequantizeLinear (opset
    21, saturate 1 and 0), every type, per tensor: the ties of each grid, overflow, NaN, -0.0."""
    pytest.importorskip("onnxruntime")
    from refquant import engines as E
    rng = np.random.default_rng(3)
    for dt in F8_TYPES:
        x = _f8_inputs(np.dtype(dt), rng, 2000)
        for s in (np.float32(1.0), np.float32(0.37)):
            inp = {"x": x, "y_scale": s, "y_zero_point": np.zeros((), dt)}
            for sat in (1, 0):
                want = np.asarray(E.run("onnxruntime", "QuantizeLinear", inp, {"saturate": sat}, opset=21))
                got = refquant.quantize_linear(x, s, np.zeros((), dt), saturate=sat, profile="onnxruntime")
                assert refquant.last_path()["path"].startswith("rq_quantize_f32")
                assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), (dt, s, sat)
            got = refquant.quantize_linear(x, s, np.zeros((), dt), profile="onnxruntime")
            dq = {"x": got, "x_scale": s, "x_zero_point": np.zeros((), dt)}
            want = np.asarray(E.run("onnxruntime", "DequantizeLinear", dq, {}, opset=21))
            back = refquant.dequantize_linear(got, s, np.zeros((), dt), profile="onnxruntime")
            assert refquant.last_path()["path"].startswith("rq_dequantize_")
            assert np.array_equal(back.view(np.uint32), want.view(np.uint32)), (dt, s)


@pytest.mark.parametrize("isa", ISA_PARAMS)
def test_bfloat16_quantize(isa):
    """bfloat16 QuantizeLinear to integers by the kernels: a bfloat16 x divided in float32
    (converted exactly), or the division in bfloat16 (v = fl_bf16(x / s), or x * fl_bf16(1 / s),
    by numpy as the reference forms it, then the kernel with a unit scale); per tensor, per axis,
    blocked; several profiles and targets; NaN, +-Inf, -0.0, ties; the reference's bits."""
    rng = np.random.default_rng(23)
    x32 = (rng.standard_normal((48, 96)) * 40).astype(np.float32)
    x32.reshape(-1)[:8] = [np.nan, -np.inf, np.inf, -0.0, 0.5, 1.5, 2.5, -2.5]
    xb = x32.astype(ml_dtypes.bfloat16)
    # NaNs whose payload lies in the bits bfloat16 drops (rounding them as numbers gives Inf),
    # values that round up to Inf, and bfloat16 ties
    x32.reshape(-1)[8:16] = np.uint32([0x7F800001, 0xFF800001, 0x7F807FFF, 0x7F7FFFFF, 0xFF7FFFFF, 0x3F808000,
                                       0x3F818000, 0x00008000]).view(np.float32)
    names = ("onnx", "onnxruntime", "tensorrt", "pytorch-fbgemm", "tflite-xnnpack", "pytorch-onednn", "onnx-reference")
    seen = set()
    for xd, sd, opset in ((xb, ml_dtypes.bfloat16, 21), (xb, ml_dtypes.bfloat16, 23), (xb, np.float32, 23),
                          (x32, ml_dtypes.bfloat16, 23), (x32.astype(np.float16), ml_dtypes.bfloat16, 23)):
        for name in names:
            prof = get_profile(name)
            for out, s, z, kw in ((np.uint8, np.array(0.37, sd), np.uint8(3), {}),
                                  (np.int8, (rng.random(96) + 0.05).astype(sd), np.resize(np.int8([0, -3, 5]), 96), dict(axis=1)),
                                  (ml_dtypes.int4, (rng.random((48, 3)) + 0.2).astype(sd), np.zeros((48, 3), ml_dtypes.int4),
                                   dict(axis=1, block_size=32)),
                                  (np.uint16, np.array(0.01, sd), np.uint16(300), {})):
                z = np.asarray(z).astype(out)
                try:
                    with np.errstate(all="ignore"):
                        want = R.quantize_linear(xd, s, z, profile=prof, opset=opset, **kw)
                except (ValueError, TypeError):
                    assert F.quantize_linear(xd, s, z, profile=prof, opset=opset, isa=isa, **kw) is None
                    continue
                with np.errstate(all="ignore"):
                    res = F.quantize_linear(xd, s, z, profile=prof, opset=opset, isa=isa, **kw)
                if res is None:
                    continue
                seen.add(res[1].split("__")[0])
                assert np.array_equal(res[0].astype(np.int64), want.astype(np.int64)), (name, opset, kw, res[1])
    assert any(k.endswith("_pbf16") and k.startswith("rq_quantize_bf16") for k in seen), seen        # C division
    assert any(k.endswith("_pbf16_numpy") and k.startswith("rq_quantize_bf16") for k in seen), seen  # variants
    assert any("_pbf16" not in k and k.startswith("rq_quantize_bf16") for k in seen), seen
    assert any(k.startswith("rq_quantize_f32") and k.endswith("_pbf16") for k in seen), seen


@pytest.mark.parametrize("isa", ISA_PARAMS)
def test_bfloat16_dequantize_output(isa):
    """DequantizeLinear to bfloat16 from 8- and 4-bit integers (d = x - zp exact in bfloat16):
    the kernels' float32 product, rounded once; a bfloat16 scale, or output_dtype bfloat16 with a
    float32 scale (rounded to bfloat16 first, or under ORT's dq_subtract "float32" the float32
    product rounded); 16-bit inputs go to the reference."""
    rng = np.random.default_rng(24)
    for qt, lo, hi in ((np.uint8, 0, 256), (np.int8, -128, 128), (ml_dtypes.uint4, 0, 16), (ml_dtypes.int4, -8, 8)):
        x = rng.integers(lo, hi, (40, 64)).astype(qt)
        for name in ("onnx", "onnxruntime", "onnx-reference", "tensorrt"):
            prof = get_profile(name)
            for s, z, kw in ((np.array(0.3711, ml_dtypes.bfloat16), np.array(hi - 1).astype(qt), {}),
                             (np.array(3e38, ml_dtypes.bfloat16), None, {}),
                             ((rng.random(64) * 9).astype(np.float32) + 1e-3, rng.integers(lo, hi, 64).astype(qt),
                              dict(axis=1, output_dtype="bfloat16")),
                             ((rng.random((40, 2)) + 0.1).astype(ml_dtypes.bfloat16), rng.integers(lo, hi, (40, 2)).astype(qt),
                              dict(axis=1, block_size=32))):
                try:
                    with np.errstate(all="ignore"):
                        want = R.dequantize_linear(x, s, z, profile=prof, **kw)
                except (ValueError, TypeError):
                    continue
                with np.errstate(all="ignore"):
                    res = F.dequantize_linear(x, s, z, profile=prof, isa=isa, **kw)
                assert res is not None and "bf16_via_f32" in res[1], (name, kw)
                assert res[0].dtype == want.dtype and np.array_equal(res[0].view(np.uint16), want.view(np.uint16)), \
                    (np.dtype(qt).name, name, kw)
    x16 = rng.integers(0, 65536, 100).astype(np.uint16)
    s16 = np.array(0.5, ml_dtypes.bfloat16)
    assert F.dequantize_linear(x16, s16, None, profile=ONNX, isa=isa) is None
    got = refquant.dequantize_linear(x16, s16)
    assert refquant.last_path()["path"] == "reference"
    assert np.array_equal(got.view(np.uint16), R.dequantize_linear(x16, s16).view(np.uint16))


@pytest.mark.parametrize("isa", ISA_PARAMS)
def test_low_float_bfloat16_and_mx_scales(isa):
    """float8 / float4 with bfloat16 inputs and scales, and MX (float8e8m0) scales:
    QuantizeLinear from bfloat16 x (divided in float32, or in bfloat16 by numpy then the kernel
    with a unit scale); DequantizeLinear with e8m0 scales (float32 output) and bfloat16 scales or
    outputs (the float32 product rounded once); blocked as MX stores them; the reference's
    bits."""
    rng = np.random.default_rng(25)
    x32 = (rng.standard_normal((16, 128)) * 8).astype(np.float32)
    x32.reshape(-1)[:5] = [np.nan, -np.inf, -0.0, 1e6, 0.25]
    e8 = (2.0 ** rng.integers(-4, 4, (16, 4))).astype(np.float32).astype(ml_dtypes.float8_e8m0fnu)
    for dt in (ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2, ml_dtypes.float4_e2m1fn):
        z = np.zeros((16, 4), dt)
        for xd, sc, opset in ((x32.astype(ml_dtypes.bfloat16), e8.astype(np.float32).astype(ml_dtypes.bfloat16), 23),
                              (x32.astype(ml_dtypes.bfloat16), e8.astype(np.float32), 23),
                              (x32, e8, 24)):
            kw = dict(axis=1, block_size=32, opset=opset)
            with np.errstate(all="ignore"):
                want = R.quantize_linear(xd, sc, z, **kw)
                res = F.quantize_linear(xd, sc, z, profile=ONNX, isa=isa, **kw)
            assert res is not None and np.array_equal(res[0].view(np.uint8), want.view(np.uint8)), (dt, sc.dtype)
            for okw in ({}, dict(output_dtype="bfloat16"), dict(output_dtype="float16")):
                with np.errstate(all="ignore"):
                    dw = R.dequantize_linear(want, sc, z, **kw, **okw)
                    d = F.dequantize_linear(want, sc, z, profile=ONNX, isa=isa, **kw, **okw)
                assert d is not None and d[0].dtype == dw.dtype, (dt, sc.dtype, okw)
                assert np.array_equal(d[0].view(np.uint8), dw.view(np.uint8)), (dt, sc.dtype, okw)


@pytest.mark.parametrize("isa", ISA_PARAMS)
def test_two_bit_quantize_dequantize(isa):
    """int2 / uint2 (opset 25): QuantizeLinear by the 8-bit kernels then the 2-bit clamp (every
    profile's formula nests inside it), DequantizeLinear from the codes decoded to 8 bits (the
    high bits of each byte ignored, as ml_dtypes reads them); per tensor, per axis, blocked;
    float32 / float16 / bfloat16; the reference's bits and errors."""
    rng = np.random.default_rng(26)
    x32 = (rng.standard_normal((24, 80)) * 2).astype(np.float32)
    x32.reshape(-1)[:7] = [np.nan, -np.inf, np.inf, -0.0, 0.5, 1.5, -2.5]
    n_fast = 0
    for qt, lo, hi in ((ml_dtypes.int2, -2, 2), (ml_dtypes.uint2, 0, 4)):
        for name in sorted(refquant.profiles()):
            prof = get_profile(name)
            for xd in (np.float32, np.float16, ml_dtypes.bfloat16):
                x = x32.astype(xd)
                for s, z, kw in ((np.array(0.37, xd), np.array(hi - 1).astype(qt), {}),
                                 ((rng.random(80) + 0.05).astype(xd), rng.integers(lo, hi, 80).astype(qt), dict(axis=1)),
                                 ((rng.random((24, 3)) + 0.1).astype(xd), rng.integers(lo, hi, (24, 3)).astype(qt),
                                  dict(axis=1, block_size=32))):
                    if prof.symmetric_only:
                        z = np.zeros(z.shape, qt)
                    xq = rng.integers(0, 256, x.shape).astype(np.uint8).view(qt)
                    for fast, ref, a in ((F.quantize_linear, R.quantize_linear, x),
                                         (F.dequantize_linear, R.dequantize_linear, xq)):
                        try:
                            with np.errstate(all="ignore"):
                                want = ref(a, s, z, profile=prof, opset=25, **kw)
                        except (ValueError, TypeError):
                            assert fast(a, s, z, profile=prof, opset=25, isa=isa, **kw) is None
                            continue
                        with np.errstate(all="ignore"):
                            res = fast(a, s, z, profile=prof, opset=25, isa=isa, **kw)
                        if res is None:
                            continue
                        n_fast += 1
                        assert "2" in res[1].split("_")[2], res[1]
                        assert res[0].dtype == want.dtype and res[0].shape == want.shape, (res[0].shape, want.shape)
                        assert np.array_equal(res[0].view(np.uint8), want.view(np.uint8)), \
                            (np.dtype(qt).name, name, np.dtype(xd).name, kw, res[1])
    assert n_fast > 100
    # 0-d codes stay 0-d (the decode to 8 bits once returned shape (1,); tools/fuzz_kernels.py found it)
    for qt in (ml_dtypes.int2, ml_dtypes.uint2):
        for z in (None, np.array(1).astype(qt)):
            res = F.dequantize_linear(np.array(1).astype(qt), np.float32(0.5), z, profile=ONNX, isa=isa)
            want = R.dequantize_linear(np.array(1).astype(qt), np.float32(0.5), z)
            assert res is not None and res[0].shape == () == want.shape and res[0] == want, (res, want)
    # below opset 25 the types do not exist: the reference's error
    with pytest.raises(TypeError):
        refquant.dequantize_linear(np.zeros(4, ml_dtypes.int2), np.float32(1.0), opset=23)
    assert F.dequantize_linear(np.zeros(4, ml_dtypes.int2), np.float32(1.0), profile=ONNX, opset=23, isa=isa) is None


@pytest.mark.parametrize("isa", ISA_PARAMS)
def test_low_float_per_axis_short_runs(isa):
    """Per-axis float8 / float4 Q and DQ with the channel axis last or nearly (runs shorter than 64
    elements) where the glue's periodic rows do not apply (one outer row, or rows past 64K
    elements): the C walk runs along the scales (inner 1) or expands them 1024 elements at a time;
    one zero point for all channels or one per channel; chunks of 64K cutting the runs; 1 and 2
    threads; the reference's bits."""
    rng = np.random.default_rng(27)
    for k, (shape, axis) in enumerate((((4, 70001), 1), ((1, 3, 30001, 5), 2), ((2, 40000, 3), 1), ((70003, 3), 1),
                                      ((3, 5, 20000), 1))):
        dt = (ml_dtypes.float8_e4m3fn, ml_dtypes.float4_e2m1fn, ml_dtypes.float8_e5m2)[k % 3]
        x = (rng.standard_normal(shape) * 4).astype(np.float32)
        x.reshape(-1)[:3] = [np.nan, -0.0, np.inf]
        D = shape[axis]
        sc = (rng.random(D) + 0.05).astype(np.float32)
        for z in (np.zeros(D, dt), np.full(D, 0.5, np.float32).astype(dt), rng.choice([0.0, 1.0, -0.5], D).astype(dt)):
            refquant.set_num_threads(1 + k % 2)
            try:
                res = F.quantize_linear(x, sc, z, axis=axis, profile=ONNX, isa=isa)
                with np.errstate(all="ignore"):
                    want = R.quantize_linear(x, sc, z, axis=axis)
                assert res is not None and np.array_equal(res[0].view(np.uint8), want.view(np.uint8)), (shape, z[:3])
                d = F.dequantize_linear(want, sc, z, axis=axis, profile=ONNX, isa=isa)
                dw = R.dequantize_linear(want, sc, z, axis=axis)
                assert d is not None and np.array_equal(d[0].view(np.uint32), dw.view(np.uint32)), (shape, z[:3])
            finally:
                refquant.set_num_threads(None)


def test_float4_fast_path_vs_live_onnx_reference():
    """float4e2m1 QuantizeLinear / DequantizeLinear by the kernels against onnx's own
    ReferenceEvaluator (opset 23; onnxruntime has no CPU kernel for float4): the ties of the
    grid, overflow, NaN, -0.0, zero points 0, 1 and -0.5 (added as the 'onnx' profile says; the
    evaluator's DequantizeLinear drops float4's zero point, as 'onnx-reference' does), per tensor
    and blocked."""
    pytest.importorskip("onnx")
    from refquant import engines as E
    dt = ml_dtypes.float4_e2m1fn
    x = _f8_inputs(np.dtype(dt), np.random.default_rng(9), 2000)[:2048].reshape(16, 128)
    sb = np.float32(np.random.default_rng(1).random((16, 4)) + 0.2)
    for zv in (0.0, 1.0, -0.5):
        for s, kw, attrs in ((np.float32(0.37), {}, {}), (sb, dict(axis=1, block_size=32), dict(axis=1, block_size=32))):
            z = np.full(np.shape(s), zv, np.float32).astype(dt)
            want = np.asarray(E.run("onnx-reference", "QuantizeLinear", {"x": x, "y_scale": s, "y_zero_point": z},
                                    attrs, opset=23))
            got = refquant.quantize_linear(x, s, z, opset=23, **kw)
            assert refquant.last_path()["path"].startswith("rq_quantize_f32e2m1__")
            assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), (zv, kw)
            want = np.asarray(E.run("onnx-reference", "DequantizeLinear", {"x": got, "x_scale": s, "x_zero_point": z},
                                    attrs, opset=23))
            back = refquant.dequantize_linear(got, s, z, opset=23, profile="onnx-reference", **kw)
            assert refquant.last_path()["path"].startswith("rq_dequantize_e2m1f32__")
            assert np.array_equal(back.view(np.uint32), want.view(np.uint32)), (zv, kw)


@pytest.mark.parametrize("isa", ISA_PARAMS)
def test_float8_blocked_scales(isa):
    """float8 / float6 / float4 QuantizeLinear / DequantizeLinear with blocked scales (a scale per
    block of an axis, the last block partial; low-float weights as they are stored): the kernels'
    walk takes one scale per block run (per element below blocks of 8 along the last axis);
    zero or non-zero zero points, saturate 1 and 0, every type, 1 and 2 threads; the reference's
    bits."""
    rng = np.random.default_rng(41)
    for k, dt in enumerate(LOWF_TYPES):
        for shape, axis, bs in (((64, 256), 1, 32), ((64, 256), 0, 16), ((7, 50), 1, 3), ((5, 6, 7), 1, 4),
                                ((5, 6, 7), 2, 1), ((300,), 0, 128), ((3, 70000), 1, 3000),
                                ((20, 6, 1000), 1, 4),      # (chunks of 64K cut blocks and rows)
                                ((2, 5000), 1, 7), ((3, 3000), 1, 100)):   # (1024-element runs cut blocks)
            x = (rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 3)).astype(np.float32)
            x.reshape(-1)[:4] = [np.nan, -np.inf, -0.0, 1e6]
            sshape = list(shape)
            sshape[axis] = -(-shape[axis] // bs)
            sc = (rng.random(sshape) + 0.01).astype(np.float32)
            z = np.zeros(sshape, dt) if k % 2 else rng.choice([0.0, 1.0, -0.5], sshape).astype(dt)
            refquant.set_num_threads(1 + k % 2)
            try:
                for sat in (1, 0):
                    res = F.quantize_linear(x, sc, z, axis=axis, block_size=bs, saturate=sat, profile=ONNX, isa=isa)
                    with np.errstate(all="ignore"):
                        want = R.quantize_linear(x, sc, z, axis=axis, block_size=bs, saturate=sat)
                    assert res is not None and np.array_equal(res[0].view(np.uint8), want.view(np.uint8)), \
                        (shape, axis, bs, sat)
                    d = F.dequantize_linear(want, sc, z, axis=axis, block_size=bs, profile=ONNX, isa=isa)
                    dw = R.dequantize_linear(want, sc, z, axis=axis, block_size=bs)
                    assert d is not None and np.array_equal(d[0].view(np.uint32), dw.view(np.uint32))
            finally:
                refquant.set_num_threads(None)


@pytest.mark.parametrize("isa", ISA_PARAMS)
def test_float8_quantize_from_float16(isa):
    """float16 x to float8, every float16 bit pattern: the division in float16 (onnx; numpy's
    float16 division, then the kernel with a unit scale, `..._p16`) or in float32 (onnxruntime
    below opset 23), per tensor and per axis, saturate 1 and 0; the reference's bits."""
    x = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16).reshape(256, 256)
    for dt in F8_TYPES:
        for prof, opset, p16 in ((ONNX, 21, True), (get_profile("onnxruntime"), 21, False),
                                 (get_profile("onnxruntime"), 23, True)):
            for s in (np.float16(1.0), np.float16(0.3), np.float16(np.geomspace(1e-3, 1e3, 256))):
                for sat in (1, 0):
                    z = np.zeros(np.shape(s), dt)
                    res = F.quantize_linear(x, s, z, axis=1, saturate=sat, profile=prof, opset=opset, isa=isa)
                    with np.errstate(all="ignore"):
                        want = R.quantize_linear(x, s, z, axis=1, saturate=sat, profile=prof, opset=opset)
                    assert res is not None and res[1].startswith("rq_quantize_f16") and res[1].split("__")[0].endswith(
                        "_p16") == p16, res and res[1]
                    assert np.array_equal(res[0].view(np.uint8), want.view(np.uint8)), (dt, prof.name, opset, sat)


def test_session21_review_regressions():
    """What the session-21 review found: a 0-d input quantized to a low float through a float16 /
    bfloat16 division came back 1-d; NaN + a NaN zero point took either sign in the reference
    (numpy's loops pick either NaN by position and length): the quotient's NaN is kept now; a
    masked zero point was accepted by the fast paths; a blocked parameter whose block is far
    longer than the axis made the reference allocate block_size entries per block."""
    x0 = np.array(3.0, np.float16)
    for kw in (dict(), dict(precision="bfloat16")):
        got = refquant.quantize_linear(x0, np.array(0.5, np.float16), output_dtype=ml_dtypes.float8_e4m3fn, **kw)
        assert got.shape == () and refquant.last_path()["path"].split("__")[0].endswith(("_p16", "_pbf16"))
    zp = np.array(0xFE, np.uint8).view(ml_dtypes.float8_e5m2)          # -NaN
    for n in (1, 8, 16, 17, 100):
        x = np.full(n, np.nan, np.float32)
        want = R.quantize_linear(x, np.float32(1), zp).view(np.uint8)
        assert np.all(want == 0x7E), (n, np.unique(want))               # x's +NaN
        assert np.array_equal(refquant.quantize_linear(x, np.float32(1), zp).view(np.uint8), want)
    x2 = np.full((2, 17), np.nan, np.float32)
    assert np.all(R.quantize_linear(x2, np.ones(17, np.float32), np.full(17, zp), axis=1).view(np.uint8) == 0x7E)
    for call in (
            lambda m: refquant.dequantize_linear(np.array([1, 2], np.uint8).view(ml_dtypes.float8_e4m3fn), np.float32(0.5),
                                                 np.ma.masked_array(np.array(1.0, ml_dtypes.float8_e4m3fn), mask=m)),
            lambda m: refquant.quantize_linear(np.float32([1, 2]), np.float32(.5), np.ma.masked_array(np.uint8(3), mask=m)),
            lambda m: refquant.dequantize_linear(np.uint8([1, 2]), np.float32(.5), np.ma.masked_array(np.uint8(3), mask=m)),
            lambda m: refquant.quantize_linear(np.float32([1, 2]), np.float32(.5),
                                               np.ma.masked_array(np.array(1.0, ml_dtypes.float8_e4m3fn), mask=m))):
        for mask in (True, False):
            with pytest.raises(TypeError, match="masked"):
                call(mask)
    x = np.zeros((2, 65537), np.float32)
    s = np.ones((1, 65537), np.float32)
    assert R.quantize_linear(x, s, np.zeros((1, 65537), np.uint8), axis=0, block_size=1 << 30).shape == (2, 65537)
