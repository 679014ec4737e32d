"""Fast integer convolution (refquant._gemm conv paths via refquant._gemm_fast) == the numpy
reference, bit for bit, at every ISA level this machine has.

Paths exercised (see kernels/src/gemm/conv.c): implicit AMX conv (group 1, stride 1, Cin % 64 == 0,
int8 w with zero w_zp; padded NHWC copy, virtual pixels across row ends), 1x1 stride-1 GEMM
straight on NCHW (per-row multiplier), depthwise vpdpbusd (KW <= 4), depthwise AVX-512 and scalar
direct loops, and im2col + GEMM for everything else (groups, strides, dilations, pads, auto_pad,
1-D).  Zero points at the extremes, per-channel w zero points / scales, int32 bias with large
values, uint8/int8 for x and w in every combination.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

hyp = pytest.importorskip("hypothesis", reason="hypothesis drives the sweeps")
from hypothesis import example, given, settings, strategies as st, HealthCheck  # noqa: E402

import refquant  # noqa: E402
from refquant import reference as R  # noqa: E402

_k = pytest.importorskip("refquant._gemm", reason="compiled kernels not built (pip install -e .)")
from refquant import _cpu, _gemm_fast as F  # noqa: E402
from refquant.profile import get_profile  # noqa: E402

from _isa_levels import LEVELS as ISAS, available as _available_levels, use as _use_level  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import fuzz_kernels  # noqa: E402

AVAILABLE = _available_levels()
ISA_PARAMS = [pytest.param(i, marks=pytest.mark.skipif(i not in AVAILABLE,
                                                       reason=f"{i} not compiled/supported here"))
              for i in ISAS]
ONNX = get_profile("onnx")


@pytest.fixture
def isa_cap(request):
    _use_level(request.param)
    yield request.param
    _use_level(None)


def _rand(rng, dt, shape, extreme=0.15):
    lo, hi = (0, 255) if dt == np.uint8 else (-128, 127)
    a = rng.integers(lo, hi + 1, shape).astype(dt)
    m = rng.random(shape) < extreme
    a[m] = rng.choice(np.array([lo, hi], dtype=dt), size=int(m.sum()))
    return a


def _zp(rng, dt, n=None):
    lo, hi = (0, 255) if dt == np.uint8 else (-128, 127)
    if n is None:
        return dt(rng.choice([lo, hi, rng.integers(lo, hi + 1)]))
    return rng.integers(lo, hi + 1, n).astype(dt)


def _check(got, want, what):
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.dtype, want.shape)
    bad = np.argwhere(got != want)
    assert bad.size == 0, (f"{what}: {len(bad)} mismatches, first at {tuple(bad[0])}: "
                           f"got {got[tuple(bad[0])]}, want {want[tuple(bad[0])]}")


def _run_both(rng, x, w, xz, wz, attrs, what):
    M = w.shape[0]
    got = F.conv_integer(x, w, xz, wz, profile=ONNX, **attrs)
    assert got is not None, what
    _check(got[0], R.conv_integer(x, w, xz, wz, **attrs), f"conv_integer {what} [{got[1]}]")
    ws = rng.uniform(1e-3, 2e-2, M).astype(np.float32) if rng.random() < 0.5 else np.float32(0.01)
    odt = np.uint8 if rng.random() < 0.5 else np.int8
    B = rng.integers(-2 ** 20, 2 ** 20, M).astype(np.int32) if rng.random() < 0.7 else None
    args = (x, np.float32(rng.uniform(0.005, 0.05)), xz, w, ws, wz, np.float32(rng.uniform(0.05, 2.0)),
            _zp(rng, odt), B)
    got = F.qlinear_conv(*args, profile=ONNX, **attrs)
    assert got is not None, what
    _check(got[0], R.qlinear_conv(*args, **attrs), f"qlinear_conv {what} [{got[1]}]")


def _vbmi_variants(monkeypatch, also_off=()):
    """AVX512_VBMI turned off (REFQUANT_DISABLE_ISA=avx512vbmi), then on where the CPU has it,
    with the levels in `also_off` disabled in both: yields the setting after resetting the CPU
    state (the caller restores the environment)."""
    for vbmi in [False] + ([True] if _cpu.features().get("avx512vbmi") else []):
        off = list(also_off) + ([] if vbmi else ["avx512vbmi"])
        if off:
            monkeypatch.setenv("REFQUANT_DISABLE_ISA", ",".join(off))
        else:
            monkeypatch.delenv("REFQUANT_DISABLE_ISA", raising=False)
        _cpu.reset()
        yield vbmi


# ------------------------------------------------------------------ sweeps

@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(C=st.sampled_from([1, 2, 3, 4, 8, 16, 17, 64]), M=st.sampled_from([1, 2, 4, 16, 17, 32]),
       H=st.integers(1, 12), W=st.integers(1, 20), k=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       s=st.tuples(st.integers(1, 3), st.integers(1, 3)), d=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       p=st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 2), st.integers(0, 2)),
       g=st.sampled_from([1, 2, "dw"]), xt=st.sampled_from(["u8", "s8"]), wt=st.sampled_from(["u8", "s8"]),
       wzk=st.sampled_from(["zero", "scalar", "channel"]), seed=st.integers(0, 2 ** 31 - 1))
def test_conv2d_sweep(isa_cap, C, M, H, W, k, s, d, p, g, xt, wt, wzk, seed):
    rng = np.random.default_rng(seed)
    group = C if g == "dw" else g
    if g == "dw":
        M = C * (1 if rng.random() < 0.8 else 2)
    if C % group or M % group:
        return
    xdt = np.uint8 if xt == "u8" else np.int8
    wdt = np.uint8 if wt == "u8" else np.int8
    eff = [(k[0] - 1) * d[0] + 1, (k[1] - 1) * d[1] + 1]
    if H + p[0] + p[2] < eff[0] or W + p[1] + p[3] < eff[1]:
        return
    # x and w in any memory layout (C / Fortran order, strided, misaligned: the fuzzer's)
    x = fuzz_kernels._layout(rng, _rand(rng, xdt, (int(rng.integers(1, 3)), C, H, W)))
    w = fuzz_kernels._layout(rng, _rand(rng, wdt, (M, C // group, k[0], k[1])))
    wz = {"zero": wdt(0), "scalar": _zp(rng, wdt), "channel": _zp(rng, wdt, M)}[wzk]
    attrs = dict(group=group, strides=list(s), dilations=list(d), pads=[p[0], p[1], p[2], p[3]])
    _run_both(rng, x, w, _zp(rng, xdt), wz, attrs, f"C={C} M={M} HxW={H}x{W} k={k} s={s} d={d} p={p} g={group}")


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
@pytest.mark.parametrize("odt", [np.int32, np.uint8, np.int8])
def test_conv_guard_bytes(isa_cap, odt):
    """The conv kernels write exactly their output: a sentinel frame around it stays untouched
    (GEMM, implicit, 1x1 and depthwise paths)."""
    rng = np.random.default_rng(2)
    for xs, wsh, g, kw in (((8, 9, 9), (16, 8, 3, 3), 1, dict(pads=(1, 1, 1, 1))),
                           ((64, 7, 7), (64, 64, 1, 1), 1, dict(pads=(0, 0, 0, 0))),
                           ((64, 6, 10), (32, 64, 3, 3), 1, dict(pads=(1, 0, 2, 1))),
                           ((32, 11, 5), (32, 1, 3, 3), 32, dict(pads=(1, 1, 1, 1))),
                           ((6, 8, 8), (9, 2, 2, 2), 3, dict(pads=(0, 1, 0, 1)))):
        x = _rand(rng, np.uint8, xs)
        w = _rand(rng, np.int8, wsh)
        KH, KW = wsh[2:]
        pt, pl, pb, pr = kw["pads"]
        OH, OW = xs[1] + pt + pb - KH + 1, xs[2] + pl + pr - KW + 1
        n = wsh[0] * OH * OW
        sentinel = 0x5A5A5A5A if odt == np.int32 else 0x5A
        big = np.full(n + 128, sentinel, odt)
        out = big[64:64 + n].reshape(wsh[0], OH, OW)
        geo = dict(group=g, kernel=(KH, KW), strides=(1, 1), dilations=(1, 1), pads=kw["pads"])
        attrs = dict(group=g, pads=[pt, pl, pb, pr])
        acc = R.conv_integer(x[None], w, np.uint8(5), np.int8(0), **attrs)[0]
        if odt == np.int32:
            _k.conv2d(x, w, 5, np.zeros(1, np.int32), out, **geo)
            want = acc
        else:
            _k.conv2d(x, w, 5, np.zeros(1, np.int32), out, mult=np.float32([0.003]), y_zp=7, **geo)
            want = R.requantize(acc, np.float32(0.003), odt(7), output_dtype=odt)
        _check(out.copy(), want, f"conv {xs} {wsh} g={g} {odt.__name__}")
        assert (big[:64] == sentinel).all() and (big[64 + n:] == sentinel).all(), (xs, wsh, isa_cap)


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(C=st.sampled_from([64, 128]), M=st.sampled_from([1, 16, 31, 64]), H=st.integers(1, 14),
       W=st.integers(1, 20), k=st.sampled_from([(1, 1), (3, 3), (1, 3), (3, 1), (2, 2)]),
       d=st.sampled_from([(1, 1), (2, 1)]), pads=st.tuples(*[st.integers(0, 3)] * 4),
       xt=st.sampled_from(["u8", "s8"]), seed=st.integers(0, 2 ** 31 - 1))
@example(C=128, M=32, H=5, W=6, k=(3, 1), d=(1, 1), pads=(1, 2, 0, 0), xt="u8", seed=0)
def test_conv2d_implicit_amx_shapes(isa_cap, C, M, H, W, k, d, pads, xt, seed):
    """Shapes the implicit AMX conv and the 1x1 GEMM path take (stride 1, Cin % 64 == 0, int8 w),
    each side's pad drawn on its own.  The example: a left pad and no bottom pad, where the
    implicit AMX conv's padded copy ran past its buffer (found by the fuzzer under the emulated
    AMX build, tests/test_build.py)."""
    rng = np.random.default_rng(seed)
    xdt = np.uint8 if xt == "u8" else np.int8
    eff = [(k[0] - 1) * d[0] + 1, (k[1] - 1) * d[1] + 1]
    if H + pads[0] + pads[2] < eff[0] or W + pads[1] + pads[3] < eff[1]:
        return
    x = _rand(rng, xdt, (1, C, H, W))
    w = _rand(rng, np.int8, (M, C, k[0], k[1]))
    attrs = dict(dilations=list(d), pads=list(pads))
    _run_both(rng, x, w, _zp(rng, xdt), np.int8(0), attrs, f"implicit C={C} M={M} {H}x{W} k={k} pads={pads}")


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
def test_implicit_conv_padded_channels(isa_cap):
    """Stride-1 convs whose channel count is not a multiple of 64 (16 and up) run the implicit AMX
    kernel with the channels padded to whole 64-byte chunks (zero weight rows): the reference's
    bits for kernel sizes 1..5, dilation, asymmetric pads, x zero points, bias, per-channel
    scales, int32 and 8-bit outputs, 1 and 2 threads; packed weights carry the padded layout
    too (int8, AMX), so they take the same kernel."""
    rng = np.random.default_rng(91)
    try:
        for (C, M, H, W, k, d, pads) in ((16, 16, 14, 14, (3, 3), (1, 1), [1, 1, 1, 1]),
                                         (24, 40, 9, 23, (3, 3), (1, 2), [1, 2, 0, 1]),
                                         (48, 16, 7, 7, (5, 5), (1, 1), [2, 2, 2, 2]),
                                         (100, 64, 11, 6, (1, 3), (1, 1), [0, 1, 0, 1]),
                                         (96, 33, 5, 9, (3, 1), (2, 1), [2, 0, 2, 0]),
                                         (17, 8, 3, 30, (2, 2), (1, 1), [0, 0, 1, 1])):
            x = _rand(rng, np.uint8, (int(rng.integers(1, 3)), C, H, W))
            w = _rand(rng, np.int8, (M, C, k[0], k[1]))
            attrs = dict(dilations=list(d), pads=pads)
            for nt in (1, 2):
                refquant.set_num_threads(nt)
                got = F.conv_integer(x, w, np.uint8(117), np.int8(0), profile=ONNX, **attrs)
                _check(got[0], R.conv_integer(x, w, np.uint8(117), np.int8(0), **attrs), f"implicit padded C={C} t={nt}")
                if isa_cap == "amx":
                    assert got[1] == "conv_implicit_tdp__amx", got[1]
                ws = (rng.random(M) * 0.01 + 1e-4).astype(np.float32)
                b = rng.integers(-30000, 30000, M).astype(np.int32)
                args = (x, np.float32(0.03), np.uint8(9), w, ws, np.zeros(M, np.int8), np.float32(0.2), np.int8(-7), b)
                _check(refquant.qlinear_conv(*args, **attrs), R.qlinear_conv(*args, **attrs), f"implicit padded q C={C}")
            pw = refquant.pack_weights(w)
            assert pw.packed is None or pw.packed.has_pad == (isa_cap == "amx"), (isa_cap, pw.packed.has_pad)
            args = (x, np.float32(0.03), np.uint8(9), pw, np.float32(0.002), np.int8(0), np.float32(0.2), np.uint8(7))
            _check(refquant.qlinear_conv(*args, **attrs), R.qlinear_conv(*(args[:3] + (w,) + args[4:]), **attrs),
                   f"packed C={C}")
            if isa_cap == "amx":
                assert refquant.last_path()["path"] == "conv_implicit_tdp__amx", refquant.last_path()
                # strides: the im2col path with the true-channel layout of the same weights
                st = dict(attrs, strides=[2, 1])
                _check(refquant.qlinear_conv(*args, **st), R.qlinear_conv(*(args[:3] + (w,) + args[4:]), **st),
                       f"packed stride 2 C={C}")
    finally:
        refquant.set_num_threads(None)


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
def test_row_implicit_conv_few_channels(isa_cap, monkeypatch):
    """Convs with fewer than 16 input channels (stems), int8 weights with zero weight zero
    points, under AMX run the row-implicit kernel: a space-to-depth copy by the strides, one
    64-byte chunk of K per kernel row.  The reference's bits for the 3-channel 7x7 stride-2
    stem, 3x3 stems, 1-channel inputs, strides 1..4 (unequal too), kernels that the strides do
    not divide, asymmetric pads, x zero points at their extremes, int8 x, bias, per-channel
    scales, int32 and 8-bit outputs, 1 and 2 threads; outside its conditions (dilation, uint8 or
    zero-point weights) the calls still give the reference's bits; packed weights take the same
    kernel (it rearranges the plain weights they keep)."""
    rng = np.random.default_rng(57)
    cases = ((3, 64, 2, 3, 224, 224, (7, 7), (2, 2), [3, 3, 3, 3]),
             (3, 32, 1, 3, 37, 29, (3, 3), (2, 2), [1, 1, 1, 1]),
             (3, 16, 2, 3, 20, 21, (3, 3), (1, 1), [1, 0, 1, 2]),
             (1, 20, 1, 1, 28, 28, (5, 5), (1, 1), [2, 2, 2, 2]),
             (4, 17, 1, 4, 15, 18, (7, 5), (2, 3), [3, 1, 0, 2]),
             (2, 8, 1, 2, 19, 23, (4, 3), (4, 4), [0, 0, 0, 0]),
             (15, 33, 1, 15, 9, 11, (3, 1), (1, 2), [1, 0, 2, 0]),
             (8, 16, 1, 8, 12, 12, (2, 2), (2, 2), [0, 1, 1, 0]),
             (1, 64, 1, 1, 57, 57, (11, 11), (4, 4), [2, 2, 2, 2]))
    try:
        for (C, M, N, _c, H, W, k, st_, pads) in cases:
            w = _rand(rng, np.int8, (M, C, k[0], k[1]))
            attrs = dict(strides=list(st_), pads=pads)
            for xt in (np.uint8, np.int8):
                x = _rand(rng, xt, (N, C, H, W))
                for nt in (1, 2):
                    refquant.set_num_threads(nt)
                    xz = _zp(rng, xt)
                    got = F.conv_integer(x, w, xz, np.int8(0), profile=ONNX, **attrs)
                    what = f"rows C={C} k={k} s={st_} x={xt.__name__} xz={xz} t={nt}"
                    _check(got[0], R.conv_integer(x, w, xz, np.int8(0), **attrs), what)
                    if isa_cap == "amx":
                        assert got[1] == "conv_rows_tdp__amx", (what, got[1])
                    ws = (rng.random(M) * 0.01 + 1e-4).astype(np.float32) if nt == 1 else np.float32(0.004)
                    b = rng.integers(-30000, 30000, M).astype(np.int32)
                    yt = np.uint8 if rng.random() < 0.5 else np.int8
                    args = (x, np.float32(0.03), xz, w, ws, np.int8(0), np.float32(0.2), _zp(rng, yt), b)
                    _check(refquant.qlinear_conv(*args, **attrs), R.qlinear_conv(*args, **attrs), "q " + what)
            # outside the kernel's conditions: the other paths, the same bits
            x = _rand(rng, np.uint8, (1, C, H, W))
            pw = refquant.pack_weights(w)
            args = (x, np.float32(0.03), np.uint8(7), pw, np.float32(0.004), np.int8(0), np.float32(0.2), np.uint8(3))
            _check(refquant.qlinear_conv(*args, **attrs), R.qlinear_conv(*(args[:3] + (w,) + args[4:]), **attrs),
                   f"packed C={C}")
            if isa_cap == "amx":
                assert refquant.last_path()["path"] == "conv_rows_tdp__amx", refquant.last_path()
            for wv, wz, extra in ((w, np.int8(3), {}), ((w.astype(np.int16) + 128).astype(np.uint8), np.uint8(128), {}),
                                  (w, np.int8(0), {"dilations": [2, 1]})):
                a2 = dict(attrs, **extra)
                if "dilations" in extra and (H + pads[0] + pads[2] < 2 * (k[0] - 1) + 1):
                    continue
                args = (x, np.float32(0.03), np.uint8(7), wv, np.float32(0.004), wz, np.float32(0.2), np.uint8(3))
                _check(refquant.qlinear_conv(*args, **a2), R.qlinear_conv(*args, **a2), f"declined {extra} C={C}")
                assert refquant.last_path()["path"] != "conv_rows_tdp__amx"
        # its weights packed without AVX512_VBMI (the staged packer) too
        x = _rand(rng, np.uint8, (1, 3, 40, 41))
        w = _rand(rng, np.int8, (24, 3, 7, 7))
        attrs = dict(strides=[2, 2], pads=[3, 3, 3, 3])
        want = R.conv_integer(x, w, np.uint8(99), np.int8(0), **attrs)
        for vbmi in _vbmi_variants(monkeypatch):
            _use_level(isa_cap)
            _check(refquant.conv_integer(x, w, np.uint8(99), **attrs), want, f"stem vbmi={vbmi}")
    finally:
        refquant.set_num_threads(None)
        monkeypatch.delenv("REFQUANT_DISABLE_ISA", raising=False)
        _cpu.reset()


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
def test_one_input_channel_routing(isa_cap):
    """One input channel, group 1 (Cout = m: a channel multiplier to the depthwise kernels):
    the direct depthwise kernel for few taps or outputs, the GEMM paths for many of both, the
    row-implicit conv under AMX; the reference's bits on each (ConvInteger and QLinearConv)."""
    rng = np.random.default_rng(91)
    vnni_gemm = isa_cap in ("avxvnni", "avx512vnni")
    for m, k, s, H in ((8, 7, 1, 28), (20, 5, 1, 28), (32, 3, 1, 28), (32, 5, 1, 28), (64, 5, 2, 30),
                       (32, 7, 1, 23), (32, 9, 1, 20), (16, 11, 4, 57)):
        x = _rand(rng, np.uint8, (1, 1, H, H + 3))
        w = _rand(rng, np.int8, (m, 1, k, k))
        attrs = dict(strides=[s, s], pads=[k // 2] * 4)
        got = F.conv_integer(x, w, np.uint8(9), np.int8(0), profile=ONNX, **attrs)
        _check(got[0], R.conv_integer(x, w, np.uint8(9), np.int8(0), **attrs), f"m={m} k={k}")
        args = (x, np.float32(0.03), np.uint8(9), w, np.float32(0.004), np.int8(0), np.float32(0.2), np.uint8(3))
        _check(refquant.qlinear_conv(*args, **attrs), R.qlinear_conv(*args, **attrs), f"q m={m} k={k}")
        if isa_cap == "scalar":
            continue
        if isa_cap == "amx":
            want = "conv_rows_tdp__amx"
        else:
            many = k * k > 9 and (m >= 24 if vnni_gemm else (m >= 48 or k * k >= 64))
            want = "gemm" if many else "dwconv"
        assert (got[1].startswith(want) or (want == "gemm" and got[1].startswith("conv_implicit"))), \
            (isa_cap, m, k, got[1])


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
def test_generic_conv_larger_shapes(isa_cap):
    """The im2col + GEMM path at sizes the sweep does not reach: channels per group that are not
    a multiple of 64 (K = KH*KW*Cg padded to whole 64-byte chunks for the AMX tiles, K > 960
    copied instead), output pixel counts that are not a multiple of 16, strides, dilations along
    W (the im2col runs split per tap), groups, uint8 weights with scalar / per-channel zero
    points, bias, packed weights (the true K), int32 and 8-bit outputs."""
    rng = np.random.default_rng(77)
    configs = [  # (Cg, M, H, W, k, s, d, pads, group)
        (3, 32, 30, 30, (3, 3), (2, 2), (1, 1), [1, 1, 1, 1], 1),
        (3, 16, 23, 19, (7, 7), (2, 2), (1, 1), [3, 3, 3, 3], 1),
        (16, 16, 14, 14, (3, 3), (1, 1), (1, 1), [1, 1, 1, 1], 1),
        (24, 40, 9, 23, (3, 3), (1, 1), (1, 2), [1, 2, 0, 1], 1),
        (48, 48, 14, 14, (3, 3), (1, 1), (1, 1), [1, 1, 1, 1], 1),
        (32, 64, 20, 20, (3, 3), (2, 2), (1, 1), [1, 1, 1, 1], 1),
        (96, 80, 7, 11, (3, 3), (1, 1), (2, 1), [2, 1, 2, 1], 1),
        (200, 24, 6, 6, (3, 3), (1, 1), (1, 1), [1, 1, 1, 1], 1),
        (24, 32, 12, 12, (3, 3), (1, 1), (1, 1), [1, 1, 1, 1], 2),
        (40, 40, 10, 13, (5, 1), (1, 2), (1, 1), [2, 0, 2, 0], 1),
        (64, 16, 9, 9, (3, 3), (2, 1), (1, 1), [0, 1, 1, 0], 1),
    ]
    for (Cg, M, H, W, k, s, d, pads, group) in configs:
        for wdt, wzk in ((np.int8, "zero"), (np.uint8, "scalar"), (np.uint8, "channel")):
            xdt = np.uint8 if rng.random() < 0.5 else np.int8
            x = _rand(rng, xdt, (int(rng.integers(1, 3)), Cg * group, H, W))
            w = _rand(rng, wdt, (M, Cg, k[0], k[1]))
            wz = {"zero": wdt(0), "scalar": _zp(rng, wdt), "channel": _zp(rng, wdt, M)}[wzk]
            attrs = dict(group=group, strides=list(s), dilations=list(d), pads=pads)
            what = f"Cg={Cg} M={M} {H}x{W} k={k} s={s} d={d} g={group} w={wdt.__name__} {wzk}"
            _run_both(rng, x, w, _zp(rng, xdt), wz, attrs, what)
            if group == 1 and wzk == "zero":
                args = (x, np.float32(0.02), _zp(rng, xdt), refquant.pack_weights(w), np.float32(0.003),
                        wz, np.float32(0.4), np.uint8(100))
                got = F.qlinear_conv(*args, profile=ONNX, **attrs)
                _check(got[0], R.qlinear_conv(*(args[:3] + (w,) + args[4:]), **attrs), f"packed {what}")


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_auto_pad_and_1d(isa_cap, auto_pad):
    rng = np.random.default_rng(11)
    x = _rand(rng, np.uint8, (2, 8, 11, 13))
    w = _rand(rng, np.int8, (6, 8, 3, 2))
    _run_both(rng, x, w, np.uint8(17), np.int8(0), dict(auto_pad=auto_pad, strides=[2, 1]), f"2-D {auto_pad}")
    x1 = _rand(rng, np.int8, (2, 5, 29))
    w1 = _rand(rng, np.int8, (4, 5, 3))
    _run_both(rng, x1, w1, np.int8(-3), np.int8(0), dict(auto_pad=auto_pad, strides=[2]), f"1-D {auto_pad}")
    _run_both(rng, x1, w1, np.int8(-3), np.int8(0), dict(pads=[2, 1], dilations=[3]), "1-D dilated")


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
def test_resnet_like_layers(isa_cap):
    """The benchmark layers, scaled down in H/W: 3x3 64->64, 1x1 256->64, depthwise 3x3 128."""
    rng = np.random.default_rng(12)
    for C, M, k, g in ((64, 64, 3, 1), (256, 64, 1, 1), (128, 128, 3, 128)):
        x = _rand(rng, np.uint8, (1, C, 9, 14))
        w = _rand(rng, np.int8, (M, C // g, k, k))
        _run_both(rng, x, w, np.uint8(119), np.int8(0), dict(group=g, pads=[k // 2] * 4), f"layer C={C} k={k} g={g}")
    # a 1x1 conv of 168 pixels: one W.X GEMM at the AVX-VNNI and VNNI levels (from 128 pixels at
    # AVX-VNNI), per-channel weight zero points as per-row A zero points, an int8 x as B
    x = _rand(rng, np.int8, (1, 96, 12, 14))
    w = _rand(rng, np.uint8, (40, 96, 1, 1))
    _run_both(rng, x, w, np.int8(-7), _rand(rng, np.uint8, (40,)), {}, "1x1 W.X")


def test_accumulator_overflow_conv():
    """A 1x1 conv with many channels at the extremes overflows int32: every path must wrap."""
    C = 70000
    x = np.full((1, C, 1, 2), 255, np.uint8)
    w = np.full((2, C, 1, 1), 127, np.int8)
    w[1, ::3] = -128
    for cap in AVAILABLE:
        _use_level(cap)
        try:
            got = F.conv_integer(x, w, np.uint8(0), np.int8(0), profile=ONNX)[0]
        finally:
            _use_level(None)
        _check(got, R.conv_integer(x, w, np.uint8(0), np.int8(0)), f"overflow {cap}")


def test_packed_conv_weights():
    rng = np.random.default_rng(13)
    for C, M, k in ((64, 32, 3), (16, 8, 3), (128, 64, 1)):
        x = _rand(rng, np.uint8, (1, C, 10, 12))
        w = _rand(rng, np.int8, (M, C, k, k))
        pw = refquant.pack_weights(w)
        assert pw.info["layout"] == "vnni4_conv"
        args = (x, np.float32(0.02), np.uint8(100), pw, np.float32(0.01), np.int8(0), np.float32(0.4),
                np.uint8(120), rng.integers(-999, 999, M).astype(np.int32))
        got = refquant.qlinear_conv(*args, pads=[k // 2] * 4)
        assert refquant.last_path()["path"] != "reference"
        _check(got, R.qlinear_conv(*args[:3], w, *args[4:], pads=[k // 2] * 4), f"packed conv C={C} k={k}")


def test_conv_threads_same_bits():
    rng = np.random.default_rng(14)
    cases = [((1, 64, 20, 20), (64, 64, 3, 3), 1), ((2, 32, 15, 9), (32, 1, 3, 3), 32),
             ((1, 256, 8, 8), (64, 256, 1, 1), 1), ((1, 12, 17, 17), (8, 6, 3, 3), 2)]
    for xs, wsh, g in cases:
        x = _rand(rng, np.uint8, xs)
        w = _rand(rng, np.int8, wsh)
        outs = []
        for t in (1, 2):
            refquant.set_num_threads(t)
            outs.append(refquant.conv_integer(x, w, np.uint8(5), group=g, pads=[1] * 4))
        refquant.set_num_threads(None)
        _check(outs[1], outs[0], f"threads {xs}")


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(C=st.sampled_from([1, 4, 8, 20]), M=st.sampled_from([1, 5, 16]), D=st.integers(1, 6),
       H=st.integers(1, 7), W=st.integers(1, 9), k=st.sampled_from([(1, 1, 1), (3, 3, 3), (2, 1, 3), (3, 2, 2)]),
       s=st.sampled_from([(1, 1, 1), (2, 1, 2), (3, 2, 1)]), d=st.sampled_from([(1, 1, 1), (2, 1, 1), (1, 2, 2)]),
       p=st.sampled_from([(0,) * 6, (1,) * 6, (2, 0, 1, 0, 2, 1)]), g=st.sampled_from([1, "dw", 2]),
       xt=st.sampled_from([np.uint8, np.int8]), wt=st.sampled_from([np.int8, np.uint8]),
       pcw=st.booleans(), prof=st.sampled_from(["onnx", "tflite-optimized", "pytorch-x86", "onnx-reference"]),
       seed=st.integers(0, 2 ** 31 - 1))
def test_conv3d_by_planes(isa_cap, C, M, D, H, W, k, s, d, p, g, xt, wt, pcw, prof, seed):
    """3-D ConvInteger / QLinearConv: one 2-D conv an output plane with the kernel's depth folded
    into the channels, or (groups whose folded channels are not a multiple of 4) the int32
    accumulator as sums of the 2-D kernels' over the depth (padded planes skipped) and the
    epilogue by the requantize kernels where they cover the profile, or (depthwise) the
    depthwise kernels walking the depth: the reference's bits at every ISA level -- strides,
    dilations and
    asymmetric pads on each axis, groups and depthwise, both types of x and w, per-channel weight
    scales and zero points, int32 biases at the limits, accumulators that wrap."""
    rng = np.random.default_rng(seed)
    if g == "dw":
        g, M = C, C
    elif g == 2:
        C, M = 2 * max(C // 2, 1), 2 * max(M // 2, 1)
    if xt == np.int8 and wt == np.uint8 and prof != "onnx":
        wt = np.int8
    if prof == "tflite-optimized" and g > 1:
        prof = "tflite-reference"      # tflite-optimized refuses grouped convs (DEPTHWISE_CONV_2D)
    if prof.startswith("tflite") and pcw and xt == np.uint8:
        xt = np.int8                   # LiteRT refuses per-channel weights with a uint8 input
    x = _rand(rng, xt, (1 + seed % 2, C, D, H, W))
    w = _rand(rng, wt, (M, C // g) + k)
    if seed % 5 == 0:              # every product at its largest: int32 sums that wrap
        x[:] = 255 if xt == np.uint8 else -128
        w[:] = -128 if wt == np.int8 else 255
    attrs = dict(strides=list(s), dilations=list(d), pads=list(p), group=g)
    wz = _zp(rng, wt, M) if pcw and wt == np.int8 and prof == "onnx" else wt(0 if wt == np.int8 else 128)
    xz = _zp(rng, xt)
    try:
        want = R.conv_integer(x, w, xz, wz, **attrs)
    except ValueError:                 # an output dimension below 1: the reference's error
        with pytest.raises(ValueError):
            refquant.conv_integer(x, w, xz, wz, **attrs)
        return
    got = refquant.conv_integer(x, w, xz, wz, **attrs)
    path = refquant.last_path()["path"]
    # depth folded into the channels (one 2-D conv an output plane), planes summed (groups
    # whose folded channels are not a multiple of 4), or the depthwise kernels over the depth
    dw = g > 1 and C // g == 1
    planes = g > 1 and not dw and (k[0] * (C // g)) % 4 != 0
    assert (path.startswith("dwconv") and "+3d" not in path if dw
            else path.endswith("+3d_planes" if planes else "+3d_as_2d")), path
    np.testing.assert_array_equal(got, want)
    ws = (rng.random(M) * 0.01 + 1e-4).astype(np.float32) if pcw else np.float32(0.003)
    B = rng.integers(-2 ** 31, 2 ** 31, M, dtype=np.int64).astype(np.int32)
    yz = xt(rng.integers(-128, 128) if xt == np.int8 else rng.integers(0, 256))
    args = (x, np.float32(0.02), xz, w, ws, wz, np.float32(0.05), yz, B)
    want = R.qlinear_conv(*args, profile=prof, **attrs)
    got = refquant.qlinear_conv(*args, profile=prof, **attrs)
    path = refquant.last_path()["path"]
    np.testing.assert_array_equal(got, want)
    # an int16 pair saturation in the call's resolved profile (pytorch-x86's asymmetric uint8
    # weights: fbgemm's depthwise pairs) keeps the folded 2-D route out
    pairs = get_profile(prof).for_op("QLinearConv", per_axis=bool(np.size(ws) > 1), dtype=xt,
                                     asymmetric_weights=bool(np.any(np.asarray(wz).astype(int) != 0)))
    if dw and pairs.int16_pair_saturation:    # (where its geometry and types make pairs)
        assert path.startswith("dwconv") or "+3d_planes+" in path or path == "reference", path
    elif dw:
        assert path.startswith("dwconv") and "+3d" not in path, path
    elif planes or pairs.int16_pair_saturation:
        assert "+3d_planes+" in path or path == "reference", path
        if prof in ("onnx", "tflite-optimized"):
            assert "rq_epi_rows__" in path, path
    else:
        assert path.endswith("+3d_as_2d"), path


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(C=st.sampled_from([2, 3, 16, 24]), cm=st.sampled_from([1, 1, 2]), D=st.integers(1, 7),
       H=st.integers(1, 9), W=st.sampled_from([1, 5, 16, 17, 31, 33, 40]),
       k=st.sampled_from([(3, 3, 3), (1, 3, 3), (3, 1, 1), (2, 3, 4), (5, 2, 5), (7, 3, 3)]),
       s=st.sampled_from([(1, 1, 1), (2, 2, 2), (3, 1, 2), (1, 2, 4)]),
       d=st.sampled_from([(1, 1, 1), (2, 1, 1), (1, 2, 2), (3, 1, 2)]),
       p=st.sampled_from([(1,) * 6, (0,) * 6, (2, 0, 1, 0, 2, 1), (0, 3, 0, 2, 0, 3)]),
       xt=st.sampled_from([np.uint8, np.int8]), wt=st.sampled_from([np.int8, np.int8, np.uint8]),
       pcw=st.booleans(), prof=st.sampled_from(["onnx", "onnxruntime", "tflite-optimized", "pytorch-x86",
                                               "pytorch-onednn", "tensorrt", "onnx-reference"]),
       seed=st.integers(0, 2 ** 31 - 1))
def test_depthwise_conv3d_kernels(isa_cap, C, cm, D, H, W, k, s, d, p, xt, wt, pcw, prof, seed):
    """Depthwise 3-D convs (one input channel a group, channel multipliers) run the depthwise
    kernels over the depth (rq_conv_args.D: a padded volume per channel, or per block of
    channels for the channels-last kernels, taps (kd, kh, kw)):
    the reference's bits at every ISA level for ConvInteger and QLinearConv under each
    profile's epilogue -- padded depth planes, strides / dilations / pads on each axis, both
    types of x and w, per-channel weight scales and zero points, accumulators that wrap,
    kernels deeper than the 16 rows of a 2-D kernel (7x3x3)."""
    rng = np.random.default_rng(seed)
    M = C * cm
    if xt == np.int8 and wt == np.uint8 and prof != "onnx":
        wt = np.int8
    x = _rand(rng, xt, (1 + seed % 2, C, D, H, W))
    w = _rand(rng, wt, (M, 1) + k)
    if seed % 5 == 0:              # every product at its largest: int32 sums that wrap
        x[:] = 255 if xt == np.uint8 else -128
        w[:] = -128 if wt == np.int8 else 255
    attrs = dict(strides=list(s), dilations=list(d), pads=list(p), group=C)
    sym = prof in ("tensorrt",)
    wz = (_zp(rng, wt, M) if pcw and wt == np.int8 and prof == "onnx"
          else wt(0 if wt == np.int8 or sym else 128))
    xz = xt(0) if sym else _zp(rng, xt)
    try:
        want = R.conv_integer(x, w, xz, wz, **attrs)
    except ValueError:                 # an output dimension below 1: the reference's error
        return
    got = refquant.conv_integer(x, w, xz, wz, **attrs)
    path = refquant.last_path()["path"]
    np.testing.assert_array_equal(got, want)
    assert path.startswith("dwconv") and "+3d" not in path, path
    vnni = isa_cap == "avx512vnni" and wt == np.int8 and not np.any(wz)
    low = isa_cap in ("avx2", "avxvnni")
    nt = refquant.get_num_threads()     # (fewer channel blocks than threads: per channel)
    if (cm == 1 and want.shape[-1] <= (20 if isa_cap == "avxvnni" else 24) and isa_cap != "scalar"
            and (nt <= 1 or -(-C // (16 if low else 64 if vnni else 32)) >= nt)):   # narrow rows: channels last
        assert path == ("dwconv_nhwc__avx2" if low else "dwconv_nhwc_dpbusd__avx512vnni" if vnni
                        else "dwconv_nhwc__avx512"), path
    elif cm > 1 and vnni and k[2] <= 4 and s[2] <= 4 and d[2] == 1:
        assert path == "dwconv_dpbusd__avx512vnni", path
    ws = (rng.random(M) * 0.01 + 1e-4).astype(np.float32) if pcw else np.float32(0.003)
    B = rng.integers(-2 ** 31, 2 ** 31, M, dtype=np.int64).astype(np.int32)
    yz = xt(0) if sym else xt(rng.integers(-128, 128) if xt == np.int8 else rng.integers(0, 256))
    args = (x, np.float32(0.02), xz, w, ws, wz, np.float32(0.05), yz, B)
    try:
        want = R.qlinear_conv(*args, profile=prof, **attrs)
    except ValueError:                 # the profile refuses the call (its weight types, zero points)
        with pytest.raises(ValueError):
            refquant.qlinear_conv(*args, profile=prof, **attrs)
        return
    got = refquant.qlinear_conv(*args, profile=prof, **attrs)
    path = refquant.last_path()["path"]
    np.testing.assert_array_equal(got, want)
    pairs = get_profile(prof).for_op("QLinearConv", per_axis=bool(np.size(ws) > 1), dtype=xt,
                                     asymmetric_weights=bool(np.any(np.asarray(wz).astype(int) != 0)))
    if pairs.int16_pair_saturation and xt != wt:    # (where its geometry makes pairs: fbgemm's)
        assert path.startswith("dwconv") or "+3d_planes+" in path or path == "reference", path
    else:
        assert path.startswith("dwconv") and "+3d" not in path, path


def test_depthwise_conv3d_threads_and_direct_calls():
    """The depthwise 3-D kernels give the same bits on 1 and 2 threads; _gemm.conv2d's depth
    argument checks its operands (3-D depthwise layout, no packed weights, no int16 pairs)."""
    rng = np.random.default_rng(31)
    x = _rand(rng, np.uint8, (1, 48, 6, 20, 21))
    w = _rand(rng, np.int8, (96, 1, 3, 3, 3))
    args = (x, np.float32(0.02), np.uint8(9), w, np.float32(0.004), np.int8(0), np.float32(0.05), np.uint8(7))
    want = R.qlinear_conv(*args, group=48, pads=[1] * 6, strides=[2, 1, 1])
    try:
        for t in (1, 2):
            refquant.set_num_threads(t)
            np.testing.assert_array_equal(refquant.qlinear_conv(*args, group=48, pads=[1] * 6, strides=[2, 1, 1]),
                                          want)
    finally:
        refquant.set_num_threads(None)
    xi, wi = x[0], w
    o = np.empty((96, 3, 20, 21), np.int32)
    geo = dict(group=48, kernel=(3, 3), strides=(1, 1), dilations=(1, 1), pads=(1, 1, 1, 1))
    z = np.zeros(1, np.int32)
    _k.conv2d(xi, wi, 9, z, o, depth=(3, 2, 1, 1), **geo)
    np.testing.assert_array_equal(o[None], R.conv_integer(x, w, np.uint8(9), np.int8(0), group=48, pads=[1] * 6,
                                                          strides=[2, 1, 1]))
    with pytest.raises(ValueError, match="depth"):
        _k.conv2d(xi, wi, 9, z, o, depth=(3, 2, 1, 1), sat16=True, **geo)
    with pytest.raises(ValueError, match="depth"):
        _k.conv2d(xi, wi[:48], 9, z, o[:48], depth=(3, 2, 1, 1), **dict(geo, group=24))
    with pytest.raises(ValueError, match="depth"):
        _k.conv2d(xi, wi, 9, z, o, depth=(2, 2, 1, 1), **geo)
    with pytest.raises(ValueError, match="plain weights"):
        _k.conv2d(xi, wi, 9, z, o, depth=(3, 2, 1, 1), packed=refquant.pack_weights(w[:, :, 0]).packed, **geo)


def test_conv3d_output_planes_in_chunks(monkeypatch):
    """The folded 3-D conv runs its output planes through the 2-D call in chunks (x' up to
    _CONV3D_CHUNK_BYTES): one plane a call, two, and all at once give the same bits."""
    rng = np.random.default_rng(16)
    x = _rand(rng, np.int8, (2, 8, 7, 5, 6))
    w = _rand(rng, np.int8, (5, 8, 3, 3, 2))
    attrs = dict(pads=[2, 1, 0, 1, 1, 1], strides=[2, 1, 1], dilations=[2, 1, 1])
    args = (x, np.float32(0.02), np.int8(-4), w, np.float32(0.01), np.int8(0), np.float32(0.1), np.int8(3),
            rng.integers(-9999, 9999, 5).astype(np.int32))
    want_i = R.conv_integer(x, w, np.int8(-4), np.int8(2), **attrs)
    want_q = R.qlinear_conv(*args, **attrs)
    plane = 2 * 8 * 3 * 5 * 6
    for limit in (1, 2 * plane, 1 << 30):
        monkeypatch.setattr(F, "_CONV3D_CHUNK_BYTES", limit)
        np.testing.assert_array_equal(refquant.conv_integer(x, w, np.int8(-4), np.int8(2), **attrs), want_i)
        assert refquant.last_path()["path"].endswith("+3d_as_2d")
        np.testing.assert_array_equal(refquant.qlinear_conv(*args, **attrs), want_q)
        assert refquant.last_path()["path"].endswith("+3d_as_2d")


def test_conv3d_packed_weights_and_declines():
    """A 3-D conv given PackedWeights takes the plain weights behind them (both 3-D paths);
    onnxruntime-avx2's int16 pair saturation (whose pairs run over the whole reduction) runs the
    reference."""
    rng = np.random.default_rng(15)
    x = _rand(rng, np.uint8, (1, 4, 4, 5, 5))
    w = _rand(rng, np.int8, (6, 4, 2, 2, 2))
    want = R.conv_integer(x, w, np.uint8(1), np.int8(0))
    pw = refquant.pack_weights(w)
    np.testing.assert_array_equal(refquant.conv_integer(x, pw, np.uint8(1), np.int8(0)), want)
    assert refquant.last_path()["path"].endswith("+3d_as_2d")
    args = (x, np.float32(0.02), np.uint8(1), pw, np.float32(0.01), np.int8(0), np.float32(0.1), np.uint8(3))
    np.testing.assert_array_equal(refquant.qlinear_conv(*args), R.qlinear_conv(*args[:3], w, *args[4:]))
    assert refquant.last_path()["path"].endswith("+3d_as_2d")
    # the planes path with packed weights: two channels a group, 3 deep (6 folded channels)
    wd = _rand(rng, np.int8, (4, 2, 3, 3, 3))
    argd = (x, np.float32(0.02), np.uint8(1), refquant.pack_weights(wd), np.float32(0.01), np.int8(0),
            np.float32(0.1), np.uint8(3))
    np.testing.assert_array_equal(refquant.qlinear_conv(*argd, group=2, pads=[1] * 6),
                                  R.qlinear_conv(*argd[:3], wd, *argd[4:], group=2, pads=[1] * 6))
    assert "+3d_planes+rq_epi_rows__" in refquant.last_path()["path"]
    # a depthwise one: the depthwise kernels over the depth, with the plain weights
    wd = _rand(rng, np.int8, (4, 1, 3, 3, 3))
    argd = (x, np.float32(0.02), np.uint8(1), refquant.pack_weights(wd), np.float32(0.01), np.int8(0),
            np.float32(0.1), np.uint8(3))
    np.testing.assert_array_equal(refquant.qlinear_conv(*argd, group=4, pads=[1] * 6),
                                  R.qlinear_conv(*argd[:3], wd, *argd[4:], group=4, pads=[1] * 6))
    assert refquant.last_path()["path"].startswith("dwconv")
    assert F.conv_integer(x, w, np.uint8(1), np.int8(0), profile=get_profile("onnxruntime-avx2")) is None
    args = (x, np.float32(0.02), np.uint8(1), w, np.float32(0.01), np.int8(0), np.float32(0.1), np.uint8(3))
    np.testing.assert_array_equal(refquant.qlinear_conv(*args, profile="onnxruntime-avx2"),
                                  R.qlinear_conv(*args, profile="onnxruntime-avx2"))
    assert refquant.last_path()["path"] == "reference"


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(C=st.sampled_from([1, 3, 8, 64]), M=st.sampled_from([1, 8, 16]), H=st.integers(1, 9), W=st.integers(1, 12),
       k=st.sampled_from([(1, 1), (3, 3), (2, 3)]), g=st.sampled_from([1, "dw"]), x_u8=st.booleans(),
       pad=st.integers(0, 1), seed=st.integers(0, 2 ** 31 - 1))
def test_conv_pair_saturation(isa_cap, C, M, H, W, k, g, x_u8, pad, seed):
    """onnxruntime-avx2 (int16_pair_saturation=True): pairs of the (kernel position, channel)
    reduction order saturate; the conv runs as im2col + the saturating GEMM."""
    p = get_profile("onnxruntime-avx2")
    rng = np.random.default_rng(seed)
    group = C if g == "dw" else 1
    if g == "dw":
        M = C
    if H + 2 * pad < k[0] or W + 2 * pad < k[1]:
        return
    xdt, wdt = (np.uint8, np.int8) if x_u8 else (np.int8, np.uint8)
    x = _rand(rng, xdt, (1, C, H, W), extreme=0.7)
    w = _rand(rng, wdt, (M, C // group, *k), extreme=0.7)
    attrs = dict(group=group, pads=[pad] * 4)
    xz = _zp(rng, xdt)
    got = F.conv_integer(x, w, xz, None, profile=p, **attrs)
    assert got is not None
    _check(got[0], R.conv_integer(x, w, xz, None, profile=p, **attrs), f"sat16 conv {got[1]}")


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
def test_float_bias_epilogue(isa_cap):
    """fbgemm's float bias (pytorch-fbgemm, rq_bias="float"): an int32 B in accumulator units
    or a float32 B divided by fl32(x_s * w_s[m]), added in float32 after fl32(acc), before the
    multiplier -- in every conv path (implicit AMX, 1x1 GEMM, im2col per group, and fbgemm's
    depthwise convs with their int16 pair saturation: the depthwise kernel's int32 accumulators
    through the epilogue), packed or plain weights, per-tensor and per-channel scales."""
    p = get_profile("pytorch-fbgemm")
    rng = np.random.default_rng(31)
    cases = ((64, 64, 3, 9, 1, 1), (256, 64, 1, 7, 1, 1), (16, 16, 3, 8, 16, 1), (8, 24, 3, 11, 2, 2),
             (3, 5, 5, 9, 1, 1))
    for C, Co, k, H, G, s in cases:
        x = _rand(rng, np.uint8, (1, C, H, H))
        w = _rand(rng, np.int8, (Co, C // G, k, k))
        for ws in (np.float32(0.004), (rng.random(Co).astype(np.float32) * 0.02 + 0.001)):
            wz = np.int8(0) if np.ndim(ws) == 0 else np.zeros(Co, np.int8)
            for B in (rng.integers(-30000, 30000, Co).astype(np.int32),
                      (rng.standard_normal(Co) * 4).astype(np.float32)):
                args = (x, np.float32(0.03), np.uint8(7), w, ws, wz, np.float32(0.25), np.uint8(120), B)
                kw = dict(group=G, pads=[k // 2] * 4, strides=[s, s])
                want = R.qlinear_conv(*args, profile=p, **kw)
                got = F.qlinear_conv(*args, profile=p, **kw)
                assert got is not None, (C, Co, k, G, B.dtype)
                _check(got[0], want, f"float bias {got[1]} C={C} Co={Co} k={k} G={G} {B.dtype}")
                pa = list(args)
                pa[3] = refquant.pack_weights(w) if G == 1 else w
                _check(refquant.qlinear_conv(*pa, profile=p, **kw), want, f"float bias packed C={C}")


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(C=st.sampled_from([1, 3, 8, 16, 24]), H=st.integers(1, 12), W=st.integers(1, 40),
       k=st.sampled_from([(1, 1), (2, 3), (3, 3), (5, 5), (7, 7), (1, 4)]),
       s=st.tuples(st.integers(1, 3), st.integers(1, 3)), d=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       p=st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)),
       mult=st.sampled_from([1, 1, 2]), xt=st.sampled_from(["u8", "s8"]),
       wzk=st.sampled_from(["zero", "scalar", "channel"]), seed=st.integers(0, 2 ** 31 - 1))
def test_depthwise_pair_saturation_sweep(isa_cap, C, H, W, k, s, d, p, mult, xt, wzk, seed):
    """Hypothesis sweep of depthwise convs under the int16-pair-saturating profiles against the
    reference: onnxruntime-avx2 (every conv saturates; uint8 x int8 either way, any zero points)
    and pytorch-fbgemm (its depthwise fast path saturates, other depthwise convs do not),
    extreme operand values so that pairs do saturate."""
    rng = np.random.default_rng(seed)
    xdt = np.uint8 if xt == "u8" else np.int8
    wdt = np.int8 if xt == "u8" else np.uint8
    eff = [(k[0] - 1) * d[0] + 1, (k[1] - 1) * d[1] + 1]
    if H + p[0] + p[2] < eff[0] or W + p[1] + p[3] < eff[1]:
        return
    M = C * mult
    x = _rand(rng, xdt, (int(rng.integers(1, 3)), C, H, W), extreme=0.6)
    w = _rand(rng, wdt, (M, 1, k[0], k[1]), extreme=0.6)
    wz = {"zero": wdt(0), "scalar": _zp(rng, wdt), "channel": _zp(rng, wdt, M)}[wzk]
    attrs = dict(group=C, strides=list(s), dilations=list(d), pads=[p[0], p[1], p[2], p[3]])
    what = f"C={C} M={M} HxW={H}x{W} k={k} s={s} d={d} p={p} {xt} wz={wzk}"
    ort = get_profile("onnxruntime-avx2")
    xz = _zp(rng, xdt)
    _check(refquant.conv_integer(x, w, xz, wz, profile=ort, **attrs),
           R.conv_integer(x, w, xz, wz, profile=ort, **attrs), f"onnxruntime-avx2 conv_integer {what}")
    assert refquant.last_path()["path"] != "reference", what
    ws = rng.uniform(1e-3, 2e-2, M).astype(np.float32) if rng.random() < 0.5 else np.float32(0.01)
    B = rng.integers(-2 ** 16, 2 ** 16, M).astype(np.int32) if rng.random() < 0.6 else None
    args = (x, np.float32(0.02), xz, w, ws, wz, np.float32(rng.uniform(0.05, 2.0)), _zp(rng, xdt), B)
    _check(refquant.qlinear_conv(*args, profile=ort, **attrs), R.qlinear_conv(*args, profile=ort, **attrs),
           f"onnxruntime-avx2 qlinear_conv {what}")
    if xt == "u8" and wzk == "zero":   # pytorch-fbgemm: symmetric int8 weights, a float bias
        fb = get_profile("pytorch-fbgemm")
        B = (rng.standard_normal(M) * 30).astype(np.float32) if rng.random() < 0.6 else None
        args = args[:-1] + (B,)
        _check(refquant.qlinear_conv(*args, profile=fb, **attrs), R.qlinear_conv(*args, profile=fb, **attrs),
               f"pytorch-fbgemm qlinear_conv {what}")
        assert refquant.last_path()["path"] != "reference", what


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(C=st.sampled_from([1, 7, 32, 33, 64, 100]), H=st.integers(1, 16), W=st.integers(1, 26),
       k=st.sampled_from([(3, 3), (1, 1), (5, 5), (3, 1), (2, 4), (7, 7), (11, 11)]),
       s=st.sampled_from([(1, 1), (2, 2), (1, 3)]), d=st.sampled_from([(1, 1), (2, 2), (1, 3)]),
       p=st.sampled_from([(1, 1, 1, 1), (0, 0, 0, 0), (2, 0, 1, 3), (5, 5, 5, 5)]),
       xt=st.sampled_from([np.uint8, np.int8]), wt=st.sampled_from([np.int8, np.uint8]),
       wzk=st.sampled_from(["zero", "scalar", "per_channel"]),
       prof=st.sampled_from(["onnx", "onnxruntime", "pytorch-x86", "pytorch-fbgemm", "tflite-optimized",
                             "tensorrt", "onnx-reference"]),
       nhwc=st.booleans(), seed=st.integers(0, 2 ** 31 - 1))
def test_depthwise_channels_last(isa_cap, C, H, W, k, s, d, p, xt, wt, wzk, prof, nhwc, seed):
    """Depthwise convs with output rows up to 24 pixels (channel multiplier 1) run the
    channels-last kernels at the AVX-512 levels (``dwconv_nhwc__avx512``: 32 channels a vector,
    tap pairs by vpmaddwd; ``dwconv_nhwc_dpbusd__avx512vnni`` for int8 weights with zero w_zp:
    64 channels, 4 taps a vpdpbusd; the block's pixels transposed back to NCHW), or with it
    switched off
    (``_gemm.set_dw_nhwc(False)``) the per-channel kernels: the reference's bits either way --
    channels around the 32-channel blocks, kernels up to 11x11 (61 tap pairs), strides,
    dilations, pads wider than the kernel, int8 / uint8 x and w, weight zero points per tensor
    and per channel, accumulators that wrap, every epilogue."""
    rng = np.random.default_rng(seed)
    sym = prof == "tensorrt"
    if xt == np.int8 and wt == np.uint8 and prof != "onnx":
        wt = np.int8
    x = _rand(rng, xt, (1 + seed % 2, C, H, W))
    w = _rand(rng, wt, (C, 1) + k)
    if seed % 5 == 0:
        x[:] = 255 if xt == np.uint8 else -128
        w[:] = -128 if wt == np.int8 else 255
    wz = (wt(0) if wzk == "zero" or sym or prof != "onnx" and wt == np.int8 else
          _zp(rng, wt, C) if wzk == "per_channel" and prof == "onnx" else _zp(rng, wt))
    xz = xt(0) if sym else _zp(rng, xt)
    kw = dict(group=C, strides=list(s), dilations=list(d), pads=list(p))
    _k.set_dw_nhwc(nhwc)
    try:
        try:
            want = R.conv_integer(x, w, xz, wz, **kw)
        except ValueError:
            return
        got = refquant.conv_integer(x, w, xz, wz, **kw)
        path = refquant.last_path()["path"]
        np.testing.assert_array_equal(got, want)
        # (int8 weights with zero w_zp at the VNNI level: 4 taps a vpdpbusd, 64 channels a block)
        low = isa_cap in ("scalar", "avx2", "avxvnni")     # (the AVX2 kernel: 16 channels a block)
        vnni = not low and isa_cap != "avx512" and wt == np.int8 and not np.any(wz)
        kern = ("dwconv_nhwc__avx2" if low else "dwconv_nhwc_dpbusd__avx512vnni" if vnni
                else "dwconv_nhwc__avx512")
        narrow = got.shape[-1] <= (20 if isa_cap == "avxvnni" else 24) and k[0] * k[1] <= 128
        # (the threads split the channel blocks: fewer blocks than threads keep the per-channel kernels)
        nt = refquant.get_num_threads()
        on = (nhwc and narrow and isa_cap != "scalar"
              and (nt <= 1 or -(-C // (16 if low else 64 if vnni else 32)) >= nt))
        if C == 1 and not path.startswith("dwconv"):   # (one channel, many taps: the GEMM route;
            assert k[0] * k[1] > 9 or path == "conv_rows_tdp__amx", path   # under AMX the rows conv)
            on = False
        assert path.startswith("dwconv_nhwc") == on, (path, isa_cap, got.shape)
        assert not on or path == kern, (path, kern)
        ws = (rng.random(C) * 0.01 + 1e-4).astype(np.float32) if seed % 3 else np.float32(0.004)
        B = rng.integers(-2 ** 31, 2 ** 31, C, dtype=np.int64).astype(np.int32)
        yz = xt(0) if sym else xt(rng.integers(-128, 128) if xt == np.int8 else rng.integers(0, 256))
        args = (x, np.float32(0.02), xz, w, ws, wz, np.float32(0.05), yz, B)
        try:
            want = R.qlinear_conv(*args, profile=prof, **kw)
        except ValueError:
            with pytest.raises(ValueError):
                refquant.qlinear_conv(*args, profile=prof, **kw)
            return
        got = refquant.qlinear_conv(*args, profile=prof, **kw)
        np.testing.assert_array_equal(got, want)
        path = refquant.last_path()["path"]
        pairs = get_profile(prof).for_op("QLinearConv", per_axis=bool(np.size(ws) > 1), dtype=xt,
                                         asymmetric_weights=bool(np.any(np.asarray(wz).astype(int) != 0)))
        if on and not (pairs.int16_pair_saturation and xt != wt):
            assert path.startswith(kern), (path, prof)
    finally:
        _k.set_dw_nhwc(None)


@pytest.mark.parametrize("isa_cap", [p for p in ISA_PARAMS if p.values[0] in ("avx2", "avx512", "avx512vnni")],
                         indirect=True)
def test_depthwise_channels_last_flush_edges(isa_cap):
    """The channels-last kernels write their 8-bit outputs back to NCHW in register transposes
    of 16 pixels (vpdpbusd kernel) or 32 (the AVX-512 multiply-add kernel, two runs of 16 in a
    vector): output planes of 15-17, 31-33, 47-49, 63-65 and 98 pixels, so that the last flush of
    a block is whole, one short, one over, or lands in either half; channel counts with a partial
    last block of each size (16 / 32 / 64); int8 weights with zero w_zp (the vpdpbusd form at the
    VNNI level) and uint8 weights (the multiply-add form).  One thread (every block channels
    last); the whole output compared, so a run written past its row would show in the next
    channel's row."""
    rng = np.random.default_rng(53)
    refquant.set_num_threads(1)
    try:
        for H, W in ((3, 5), (4, 4), (1, 17), (31, 1), (2, 16), (3, 11), (47, 1), (7, 7), (3, 21),
                     (4, 16), (5, 13), (7, 14)):
            for C, wt in ((40, np.uint8), (72, np.int8), (23, np.int8)):
                x = _rand(rng, np.uint8, (1, C, H, W))
                w = _rand(rng, wt, (C, 1, 3, 3))
                wz = wt(128) if wt == np.uint8 else wt(0)
                args = (x, np.float32(0.05), np.uint8(7), w, np.float32(0.01), wz, np.float32(0.3),
                        np.uint8(100), rng.integers(-5000, 5000, C).astype(np.int32))
                kw = dict(group=C, pads=[1, 1, 1, 1])
                got = refquant.qlinear_conv(*args, **kw)
                path = refquant.last_path()["path"]
                assert path.startswith("dwconv_nhwc"), (path, isa_cap, H, W, C)
                _check(got, R.qlinear_conv(*args, **kw), f"{isa_cap} {path} {H}x{W} C={C}")
    finally:
        refquant.set_num_threads(None)


def test_depthwise_channels_last_threads():
    """The channels-last depthwise kernels split their channel blocks over the threads (with
    fewer blocks than threads the per-channel kernels run): the same bits on 1 and 2 threads;
    REFQUANT_DW_NHWC=0 switches them off."""
    if "avx512" not in AVAILABLE:
        pytest.skip("no AVX-512 here")
    rng = np.random.default_rng(47)
    x = _rand(rng, np.uint8, (1, 200, 14, 14))
    w = _rand(rng, np.int8, (200, 1, 3, 3))
    args = (x, np.float32(0.02), np.uint8(9), w, np.float32(0.004), np.int8(0), np.float32(0.05), np.uint8(7),
            rng.integers(-999, 999, 200).astype(np.int32))
    want = R.qlinear_conv(*args, group=200, pads=[1] * 4, strides=[2, 2])
    try:
        for t in (1, 2):
            refquant.set_num_threads(t)
            np.testing.assert_array_equal(refquant.qlinear_conv(*args, group=200, pads=[1] * 4, strides=[2, 2]),
                                          want)
            assert refquant.last_path()["path"].startswith("dwconv_nhwc")
    finally:
        refquant.set_num_threads(None)
    code = textwrap.dedent("""
        import numpy as np, refquant
        x = np.zeros((1, 128, 7, 7), np.uint8); w = np.ones((128, 1, 3, 3), np.int8)
        refquant.conv_integer(x, w, group=128, pads=[1] * 4)
        print(refquant.last_path()["path"])
    """)
    for env, want_nhwc in (("0", False), ("1", True)):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=dict(os.environ, REFQUANT_DW_NHWC=env), check=True).stdout.strip()
        assert out.startswith("dwconv_nhwc") == want_nhwc, out


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
def test_depthwise_channel_multiplier(isa_cap):
    """Depthwise convs with a channel multiplier (group == C, Cout = m * C: outputs m*ch .. m*ch +
    m - 1 read input channel ch) run the direct depthwise kernels, not a GEMM per group: the
    vpdpbusd kernels (KW <= 4, W dilation 1; on ymm with AVX-VNNI also W stride 1), the AVX-512
    one (wider kernels, dilations, non-zero weight zero points), the AVX2 one (the same, 8 pixels
    a vector) and the scalar one; the
    reference's bits for multipliers 1 to 4, per-channel scales and zero points, an int32 bias,
    uint8 and int8 inputs."""
    rng = np.random.default_rng(35)
    level = ISAS.index(isa_cap)
    for C, m, H, W, k, s, d in ((8, 2, 12, 13, (3, 3), 1, 1), (16, 3, 9, 20, (3, 3), 2, 1),
                                (4, 4, 11, 7, (5, 5), 1, 1), (8, 2, 10, 10, (3, 3), 1, 2), (3, 2, 6, 40, (1, 4), 3, 1)):
        Co = C * m
        for xd in (np.uint8, np.int8):
            x = _rand(rng, xd, (2, C, H, W))
            w = _rand(rng, np.int8, (Co, 1) + k)
            kw = dict(group=C, strides=[s, s], dilations=[d, d], pads=[k[0] // 2, 1, (k[0] - 1) // 2, 0])
            for wz in (np.int8(0), rng.integers(-3, 4, Co).astype(np.int8)):
                xz = xd(3)
                _check(refquant.conv_integer(x, w, xz, wz, **kw), R.conv_integer(x, w, xz, wz, **kw),
                       f"conv_integer C={C} m={m} k={k} s={s} d={d}")
                path = refquant.last_path()["path"]
                want_path = ("dwconv_dpbusd" if level >= ISAS.index("avx512vnni") and k[1] <= 4 and d == 1
                             and not np.any(wz) else "dwconv__avx512" if level >= ISAS.index("avx512")
                             else "dwconv_dpbusd__avxvnni" if isa_cap == "avxvnni" and k[1] <= 4 and d == 1
                             and s == 1 and not np.any(wz)
                             else "dwconv__avx2" if level >= ISAS.index("avx2") else "dwconv__scalar")
                assert path.startswith(want_path), (path, isa_cap, C, m, k, d)
                ws = (rng.random(Co) * 0.01 + 0.001).astype(np.float32)
                B = rng.integers(-5000, 5000, Co).astype(np.int32)
                args = (x, np.float32(0.02), xz, w, ws, wz, np.float32(0.3), xd(5), B)
                _check(refquant.qlinear_conv(*args, **kw), R.qlinear_conv(*args, **kw),
                       f"qlinear_conv C={C} m={m} k={k} s={s} d={d} {refquant.last_path()['path']}")
                assert refquant.last_path()["path"].startswith("dwconv"), refquant.last_path()


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
def test_depthwise_every_profile_epilogue(isa_cap):
    """Depthwise QLinearConv under every built-in profile runs a direct depthwise kernel: those
    whose epilogue the kernels fold (an int32 bias, a float32 multiplier) in the kernel, the
    others (fbgemm's float bias, oneDNN's order of scales, TFLite's fixed point, ...) over the
    kernel's int32 accumulators with the channels as the epilogue's rows (per-channel
    multipliers and biases); channel multipliers 1 and 2, the vpdpbusd kernel's shapes and
    wider kernels / dilations.  The reference's bits, or its error type where it refuses the
    call (a profile's dtype or bias rules)."""
    rng = np.random.default_rng(36)
    for prof in sorted(refquant.profiles()):
        p = get_profile(prof)
        for C, m, k, d in ((8, 1, 3, 1), (16, 2, 3, 1), (8, 1, 5, 1), (8, 2, 3, 2)):
            Co = C * m
            kw = dict(group=C, pads=[k // 2 * d] * 4, dilations=[d, d])
            for xd in (np.uint8, np.int8):
                x = _rand(rng, xd, (1, C, 9, 11))
                w = _rand(rng, np.int8, (Co, 1, k, k))
                w[w == -128] = -127
                ws = (rng.random(Co).astype(np.float32) * 0.01 + 0.001)
                for B in (None, rng.integers(-3000, 3000, Co).astype(np.int32),
                          (rng.standard_normal(Co) * 5).astype(np.float32)):
                    args = (x, np.float32(0.02), xd(3), w, ws, np.zeros(Co, np.int8), np.float32(0.3), xd(5), B)
                    try:
                        want = R.qlinear_conv(*args, profile=p, **kw)
                    except Exception as e:   # noqa: BLE001 - the profile refuses the call
                        with pytest.raises(type(e)):
                            refquant.qlinear_conv(*args, profile=p, **kw)
                        continue
                    got = refquant.qlinear_conv(*args, profile=p, **kw)
                    path = refquant.last_path()["path"]
                    _check(got, want, f"{prof} C={C} m={m} k={k} d={d} {xd.__name__} "
                                      f"B={None if B is None else B.dtype} [{path}]")
                    if p.accumulator == "int32_wrap":
                        assert path.startswith("dwconv"), (prof, path, isa_cap)


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
def test_depthwise_int16_pair_saturation(isa_cap):
    """Depthwise convs with int16 pair saturation run the direct depthwise kernels: fbgemm's
    depthwise fast path under pytorch-fbgemm (taps paired in (kh, kw) order, each pair's sum of
    raw products clamped to int16, padded taps holding the raw x_zp) and every depthwise conv
    under onnxruntime-avx2 (the im2col order's pairs, the same for one channel a group; its
    depthwise QLinearConv with one output channel a group runs MLAS's exact depthwise kernel,
    int16_pair_saturation="mlas", so only its ConvInteger and multiplier-2 convs saturate).  The
    reference's bits for kernels 3 / 5 / 7, strides 1 and 2, dilation, odd pads, x_zp at the
    ends of its range, zero and non-zero w_zp (the scalar kernel), uint8 x int8 and int8 x
    uint8, no bias / an int32 bias (folded in the kernel) / fbgemm's float bias (the epilogue
    over the kernel's int32 accumulators), per-tensor and per-channel scales; the saturation
    does change results here (against the onnx profile); channel multipliers 1 and 2."""
    rng = np.random.default_rng(33)
    level = ISAS.index(isa_cap)
    saturated = 0

    def expect(mult, wz):   # (any channel multiplier)
        return ("dwconv__scalar" if np.any(wz) or level < ISAS.index("avx2") else
                "dwconv__avx512" if level >= ISAS.index("avx512") else "dwconv__avx2")
    for prof in ("pytorch-fbgemm", "onnxruntime-avx2"):
        p = get_profile(prof)
        for C, H, W, k, s, d, mult in ((16, 12, 13, 3, 1, 1, 1), (8, 9, 20, 3, 2, 1, 1), (8, 11, 7, 5, 1, 1, 1),
                                       (24, 10, 10, 7, 2, 1, 1), (8, 70, 5, 3, 1, 1, 1), (8, 9, 9, 3, 1, 2, 1),
                                       (8, 9, 9, 3, 1, 1, 2)):
            if prof == "pytorch-fbgemm" and d != 1:
                continue
            pads = [k // 2] * 4 if prof == "pytorch-fbgemm" else [k // 2, 1, 0, k // 2]
            kw = dict(group=C, pads=pads, strides=[s, s], dilations=[d, d])
            Co = C * mult
            for xd, wd in ((np.uint8, np.int8), (np.int8, np.uint8)):
                if prof == "pytorch-fbgemm" and xd != np.uint8:
                    continue
                x = _rand(rng, xd, (2, C, H, W), extreme=0.5)
                w = _rand(rng, wd, (Co, 1, k, k), extreme=0.5)
                xz_all = (xd(0), xd(np.iinfo(xd).max), xd(5))
                for xz in xz_all:
                    wzs = [wd(0)] if prof == "pytorch-fbgemm" else [wd(0), wd(3), rng.integers(0, 4, Co).astype(wd)]
                    for wz in wzs:
                        want = R.conv_integer(x, w, xz, wz, profile=p, **kw) if prof != "pytorch-fbgemm" else None
                        if want is not None:
                            got = refquant.conv_integer(x, w, xz, wz, profile=p, **kw)
                            _check(got, want, f"{prof} conv_integer C={C} k={k} s={s} d={d} xz={xz} wz={wz}")
                            saturated += int((want != R.conv_integer(x, w, xz, wz, **kw)).sum())
                            path = refquant.last_path()["path"]
                            assert path.startswith(expect(mult, wz)), (path, isa_cap)
                    biases = [None, rng.integers(-30000, 30000, Co).astype(np.int32)]
                    if prof == "pytorch-fbgemm":
                        biases.append((rng.standard_normal(Co) * 40).astype(np.float32))
                    for B in biases:
                        for ws in (np.float32(0.004), (rng.random(Co).astype(np.float32) * 0.02 + 0.001)):
                            wzq = wd(0) if np.ndim(ws) == 0 else np.zeros(Co, wd)
                            args = (x, np.float32(0.03), xz, w, ws, wzq, np.float32(0.25), xd(7), B)
                            want = R.qlinear_conv(*args, profile=p, **kw)
                            got = refquant.qlinear_conv(*args, profile=p, **kw)
                            path = refquant.last_path()["path"]
                            _check(got, want, f"{prof} C={C} k={k} s={s} xz={xz} B={None if B is None else B.dtype} {path}")
                            if (prof == "pytorch-fbgemm" and B is not None and B.dtype.kind == "f"
                                    and np.ndim(ws) == 0):
                                pass    # per-tensor float bias: fma(b, 1/S, acc), the reference's epilogue
                            elif prof == "pytorch-fbgemm" or mult > 1:
                                assert path.startswith(expect(mult, 0)), (path, isa_cap)
                            else:   # ORT's depthwise QLinearConv does not saturate ("mlas")
                                assert path.startswith("dwconv"), (path, isa_cap)
    assert saturated > 0


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
def test_packed_weights_below_vnni(isa_cap):
    """Weights packed once and used at every ISA level: below VNNI (an ISA cap, or a CPU
    without it) and with int16 pair saturation the GEMM reads the unpacked weights, so the
    conv must hand it them (regression: the im2col path used to pass an unfilled matrix)."""
    rng = np.random.default_rng(32)
    for C, Co, k in ((64, 64, 3), (3, 16, 3), (16, 8, 1)):
        x = _rand(rng, np.uint8, (1, C, 9, 9))
        w = _rand(rng, np.int8, (Co, C, k, k))
        pw = refquant.pack_weights(w)
        b = rng.integers(-5000, 5000, Co).astype(np.int32)
        for prof in ("onnx", "onnxruntime-avx2"):
            args = (x, np.float32(0.03), np.uint8(7), pw, np.float32(0.004), np.int8(0), np.float32(0.25),
                    np.uint8(120), b)
            want = R.qlinear_conv(x, *args[1:3], w, *args[4:], pads=[k // 2] * 4, profile=prof)
            _check(refquant.qlinear_conv(*args, pads=[k // 2] * 4, profile=prof), want,
                   f"packed {prof} C={C} Co={Co} k={k} {refquant.last_path()['path']}")
        _check(refquant.conv_integer(x, pw, np.uint8(7), pads=[k // 2] * 4),
               R.conv_integer(x, w, np.uint8(7), pads=[k // 2] * 4), f"packed ConvInteger C={C}")


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
def test_onednn_epilogue(isa_cap):
    """oneDNN's epilogue (pytorch-onednn everywhere, pytorch-x86's QLinearConv): the scales one by
    one after their reciprocal round trip, fl32(fl32(fl32(fl32(acc) [+ b]) * a_s') * w_s'[m])
    [+ b_real] * fl32(1/y_s), the zero point added before rounding -- int32 and float32 biases,
    per-tensor and per-channel weight scales, every conv path and QLinearMatMul."""
    rng = np.random.default_rng(33)
    cases = ((64, 64, 3, 9, 1), (256, 64, 1, 7, 1), (16, 16, 3, 8, 16), (3, 5, 5, 9, 1))
    for prof in ("pytorch-onednn", "pytorch-x86"):
        p = get_profile(prof)
        for C, Co, k, H, G in cases:
            x = _rand(rng, np.uint8, (1, C, H, H))
            w = _rand(rng, np.int8, (Co, C // G, k, k))
            for ws in (np.float32(0.004), (rng.random(Co).astype(np.float32) * 0.02 + 0.001)):
                wz = np.int8(0) if np.ndim(ws) == 0 else np.zeros(Co, np.int8)
                for B in (None, rng.integers(-30000, 30000, Co).astype(np.int32),
                          (rng.standard_normal(Co) * 4).astype(np.float32)):
                    args = (x, np.float32(0.03), np.uint8(7), w, ws, wz, np.float32(0.25), np.uint8(120), B)
                    kw = dict(group=G, pads=[k // 2] * 4)
                    want = R.qlinear_conv(*args, profile=p, **kw)
                    got = F.qlinear_conv(*args, profile=p, **kw)
                    assert got is not None, (prof, C, Co, k, G)
                    _check(got[0], want, f"{prof} {got[1]} C={C} Co={Co} k={k} G={G}")
        A = _rand(rng, np.uint8, (37, 70))
        Bm = _rand(rng, np.int8, (70, 45))
        for bs in (np.float32(0.01), rng.random(45).astype(np.float32) * 0.02 + 0.001):
            bz = np.int8(0) if np.ndim(bs) == 0 else np.zeros(45, np.int8)
            args = (A, np.float32(0.02), np.uint8(3), Bm, bs, bz, np.float32(0.3), np.uint8(100))
            got = F.qlinear_matmul(*args, profile=get_profile("pytorch-onednn"))
            assert got is not None
            _check(got[0], R.qlinear_matmul(*args, profile="pytorch-onednn"), f"onednn qlinear_matmul {got[1]}")


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
def test_fixed_point_epilogue(isa_cap):
    """TFLite / gemmlowp fixed-point requantization (rq_method "fixed_point"): QuantizeMultiplier,
    then SRDHM + RoundingDivideByPOT (tflite-reference), ruy's double half-up (tflite-optimized)
    or single rounding; multipliers above 1 (left shifts), tiny ones (shift below -31: zero),
    per-channel, int32 bias, every conv path and QLinearMatMul."""
    rng = np.random.default_rng(34)
    profs = [get_profile("tflite-reference"), get_profile("tflite-optimized"),
             get_profile("tflite-optimized").replace(name="fx-single", rq_fixed_rounding="single")]
    cases = ((64, 64, 3, 9, 1), (32, 16, 1, 7, 1), (8, 8, 3, 8, 8), (3, 5, 5, 9, 1))
    for p in profs:
        for C, Co, k, H, G in cases:
            if G > 1 and (p.extra or {}).get("groups") == "refuse":
                continue        # tflite-optimized refuses grouped convs (DEPTHWISE_CONV_2D)
            x = _rand(rng, np.int8, (1, C, H, H))
            w = _rand(rng, np.int8, (Co, C // G, k, k))
            w[w == -128] = -127
            for ys in (np.float32(0.3), np.float32(2e-5), np.float32(1e-9)):
                ws = rng.random(Co).astype(np.float32) * 0.02 + 0.001
                B = rng.integers(-30000, 30000, Co).astype(np.int32)
                args = (x, np.float32(0.03), np.int8(-7), w, ws, np.zeros(Co, np.int8), ys, np.int8(5), B)
                kw = dict(group=G, pads=[k // 2] * 4)
                want = R.qlinear_conv(*args, profile=p, **kw)
                got = F.qlinear_conv(*args, profile=p, **kw)
                assert got is not None, (p.name, C, Co, k, G)
                _check(got[0], want, f"{p.name} {got[1]} C={C} Co={Co} k={k} G={G} ys={ys}")
        A = _rand(rng, np.int8, (37, 70))
        Bm = _rand(rng, np.int8, (70, 45))
        Bm[Bm == -128] = -127
        for ys in (np.float32(0.3), np.float32(2e-5)):
            args = (A, np.float32(0.02), np.int8(3), Bm, np.float32(0.01), np.int8(0), ys, np.int8(-100))
            want = R.qlinear_matmul(*args, profile=p)
            got = F.qlinear_matmul(*args, profile=p.for_op("QLinearMatMul"))
            if p.for_op("QLinearMatMul").rq_method == "fixed_point":
                assert got is not None, p.name
            if got is not None:
                _check(got[0], want, f"{p.name} qlinear_matmul {got[1]} ys={ys}")


def test_lean_call_paths():
    """The lean glue of the common call (refquant._gemm_fast: QLinearConv with float32 scalar
    scales and numpy scalar zero points, ConvInteger and QLinearMatMul likewise) returns the reference's bits for
    every zero point / bias / batch / packing variant it takes, and hands everything else to the
    generic glue or the reference: the same errors, the same results."""
    rng = np.random.default_rng(41)
    s = (np.float32(0.02), np.float32(0.004), np.float32(0.3))
    for xt, wt in ((np.uint8, np.int8), (np.int8, np.int8), (np.uint8, np.uint8)):
        x = _rand(rng, xt, (2, 64, 9, 11))
        w = _rand(rng, wt, (32, 64, 3, 3))
        b = rng.integers(-50000, 50000, 32).astype(np.int32)
        for xz, wz, yz, bias, pads, strides in ((_zp(rng, xt), wt(0), np.uint8(7), b, [1, 1, 1, 1], None),
                                               (None, None, None, None, None, [2, 1]),
                                               (_zp(rng, xt), _zp(rng, wt), np.int8(-3), b, [0, 2, 1, 0], [1, 2])):
            args = (x, s[0], xz, w, s[1], wz, s[2], yz)
            want = R.qlinear_conv(*args, b, pads=pads, strides=strides)
            for ww in (w, refquant.pack_weights(w)):
                got = refquant.qlinear_conv(x, s[0], xz, ww, s[1], wz, s[2], yz, b if bias is not None else None,
                                            pads=pads, strides=strides)
                if bias is None:
                    want_nb = R.qlinear_conv(*args, pads=pads, strides=strides)
                    _check(got, want_nb, f"lean conv {xt.__name__}{wt.__name__} no bias")
                else:
                    _check(got, want, f"lean conv {xt.__name__}{wt.__name__}")
                assert refquant.last_path()["path"] != "reference"
    x = _rand(rng, np.uint8, (1, 8, 5, 5))
    w = _rand(rng, np.int8, (4, 8, 3, 3))
    base = (x, s[0], np.uint8(3), w, s[1], np.int8(0), s[2], np.uint8(9))
    for kw in (dict(kernel_shape=[2, 2]), dict(pads=[1, 1]), dict(strides=[0, 1]), dict(group=3)):
        with pytest.raises(ValueError):
            R.qlinear_conv(*base, **kw)
        with pytest.raises(ValueError):
            refquant.qlinear_conv(*base, **kw)
    # a float64 scale, a bias of another dtype, NaN scales: the generic glue / reference decide
    for args, kw in (((x, np.float64(0.02)) + base[2:], {}), (base + (np.zeros(4, np.int64),), {}),
                     ((x, np.float32(np.nan)) + base[2:], {})):
        try:
            want = R.qlinear_conv(*args, **kw)
        except Exception as e:  # noqa: BLE001
            with pytest.raises(type(e)):
                refquant.qlinear_conv(*args, **kw)
            continue
        _check(refquant.qlinear_conv(*args, **kw), want, f"generic {kw}")
    # ConvInteger's lean glue: int32 outputs (the NHWC implicit path's int32 transpose back to
    # NCHW, edge blocks of 16x16 included), zero points None / scalar, packed weights
    for C, O, H, W in ((64, 70, 9, 13), (64, 17, 5, 31), (128, 32, 3, 3)):
        x = _rand(rng, np.uint8, (2, C, H, W))
        w = _rand(rng, np.int8, (O, C, 3, 3))
        for xz, wz in ((np.uint8(117), None), (None, np.int8(0)), (np.uint8(3), np.int8(-4))):
            want = R.conv_integer(x, w, xz, wz, pads=[1, 1, 1, 1])
            for ww in (w, refquant.pack_weights(w)):
                _check(refquant.conv_integer(x, ww, xz, wz, pads=[1, 1, 1, 1]), want, f"lean conv_integer {C} {O}")
    with pytest.raises(ValueError):
        refquant.conv_integer(x, w, np.uint8(1), kernel_shape=[2, 2])
    A = _rand(rng, np.uint8, (20, 70))
    Bm = _rand(rng, np.int8, (70, 33))
    for yz in (None, np.uint8(200), np.int8(-5)):
        for bb in (Bm, refquant.pack_weights(Bm)):
            qa = (A, np.float32(0.05), np.uint8(128), bb, np.float32(0.01), np.int8(0), np.float32(0.7), yz)
            _check(refquant.qlinear_matmul(*qa), R.qlinear_matmul(A, *qa[1:3], Bm, *qa[4:]), f"lean matmul {yz!r}")


def test_qlinear_conv_compiled_entry():
    """refquant.qlinear_conv tries the compiled entry first (default profile, attributes as
    keywords only): the same bits as the glue's lean path for batches, groups, strides, pads,
    bias or not, packed weights, extreme scales; it declines (None) what the lean path would
    not take, and those calls still give the reference's result or error."""
    rng = np.random.default_rng(47)
    prof = get_profile("onnx")
    ok = F._qc_prof(prof)[1:3]
    for xt, wt, yz in ((np.uint8, np.int8, np.uint8(7)), (np.int8, np.int8, np.int8(-3)), (np.uint8, np.uint8, None)):
        for (N, C, O, H, W, k, kw) in ((2, 16, 8, 9, 11, 3, dict(pads=[1, 1, 1, 1])),
                                       (1, 32, 16, 7, 7, 1, {}),
                                       (1, 8, 8, 6, 10, 3, dict(group=8, strides=[2, 1], pads=[0, 1, 1, 0])),
                                       (3, 12, 6, 5, 5, 2, dict(group=3, dilations=[2, 2]))):
            x = _rand(rng, xt, (N, C, H, W))
            w = _rand(rng, wt, (O, C // kw.get("group", 1), k, k))
            b = rng.integers(-50000, 50000, O).astype(np.int32)
            for s in ((np.float32(0.02), np.float32(0.004), np.float32(0.3)),
                      (np.float32(3e-5), np.float32(1e-4), np.float32(7.0)), (np.float32(0.5), np.float32(2.0), np.float32(1e-3))):
                for bias in (None, b):
                    for ww in ((w, refquant.pack_weights(w)) if kw.get("group", 1) == 1 else (w,)):
                        args = (x, s[0], _zp(rng, xt), ww, s[1], wt(0) if wt == np.int8 else _zp(rng, wt), s[2], yz)
                        args = args + ((bias,) if bias is not None else ())
                        got = F.qlinear_conv_compiled(args, kw, *ok)
                        glue = F._qlinear_conv_lean(*args[:8], bias, kw.get("dilations"), kw.get("group", 1),
                                                     None, kw.get("pads"), kw.get("strides"), prof)
                        assert (got is None) == (glue is None), (xt, wt, kw, s)
                        if got is not None:
                            _check(got[0], glue[0], f"compiled conv {xt.__name__}{wt.__name__} {kw} {s}")
                        want = R.qlinear_conv(*(args[:3] + (w,) + args[4:]), **kw)
                        _check(refquant.qlinear_conv(*args, **kw), want, f"top level {kw} {s}")
    x = _rand(rng, np.uint8, (1, 8, 5, 5))
    w = _rand(rng, np.int8, (4, 8, 3, 3))
    base = (x, np.float32(0.02), np.uint8(3), w, np.float32(0.004), np.int8(0), np.float32(0.5), np.uint8(9))
    got = F.qlinear_conv_compiled(base[:1] + (0.02, 3) + base[3:], {}, *ok)      # Python scalars: taken
    _check(got[0], R.qlinear_conv(*(base[:1] + (0.02, 3) + base[3:])), "compiled conv, Python scalars")
    for i, bad in ((1, 1e-50), (1, 1e39), (2, 256), (2, True), (7, 3.0), (1, np.float64(0.02)),
                   (1, np.float32(0)), (6, np.float32(np.nan)), (2, 3.0),
                   (7, np.int16(9)), (5, np.uint8(0)), (0, x[0]), (0, np.asfortranarray(x)), (3, w[:, :4])):
        args = base[:i] + (bad,) + base[i + 1:]
        assert F.qlinear_conv_compiled(args, {}, *ok) is None, (i, bad)
    for kw in (dict(auto_pad="SAME_UPPER"), dict(group=np.int64(1)), dict(kernel_shape=[2, 2])):
        assert F.qlinear_conv_compiled(base, kw, *ok) is None, kw
    assert F.qlinear_conv_compiled(base + (np.zeros(4, np.int64),), {}, *ok) is None
    with pytest.raises(ValueError):
        refquant.qlinear_conv(*base, kernel_shape=[2, 2])


def _dw_int8w_both(rng, x, w, kw, path, what):
    """QLinearConv (a random bias, int8 weights with a zero zero point) and ConvInteger of the
    depthwise conv x * w: the kernel `path` ran, and both equal the reference's bits."""
    C = x.shape[1]
    b = rng.integers(-20000, 20000, C).astype(np.int32)
    args = (x, np.float32(0.05), _zp(rng, x.dtype.type), w, np.float32(0.01), np.int8(0), np.float32(0.2),
            np.uint8(100), b)
    got = refquant.qlinear_conv(*args, **kw)
    assert refquant.last_path()["path"] == path, refquant.last_path()
    _check(got, R.qlinear_conv(*args, **kw), what)
    _check(refquant.conv_integer(x, w, args[2], **kw), R.conv_integer(x, w, args[2], **kw), what + " (int32)")


def test_depthwise_vbmi_and_plain_variants(monkeypatch):
    """The depthwise vpdpbusd kernel builds its 16 overlapping windows with one vpermb where the
    CPU has AVX512_VBMI and with vpermd + vpshufb otherwise (REFQUANT_DISABLE_ISA=avx512vbmi
    forces the latter here): both give the reference's bits over widths around the 16/32-pixel
    steps, KW 1..4, strides along H and along W (1 to 4: windows at every sw-th byte),
    dilation along H, pads and signed / unsigned x.  (Narrow rows would run the channels-last
    kernel: it is switched off here.)"""
    if "avx512vnni" not in AVAILABLE:
        pytest.skip("no VNNI depthwise kernel here")
    rng = np.random.default_rng(43)
    _k.set_dw_nhwc(False)
    try:
        for vbmi in _vbmi_variants(monkeypatch):
            assert bool(_cpu.features()["avx512vbmi"]) == vbmi
            for W, KH, KW, sh, dh, pads, xt, sw in ((1, 3, 3, 1, 1, [1, 1, 1, 1], np.uint8, 1),
                                                    (15, 3, 3, 1, 1, [1, 1, 1, 1], np.int8, 1),
                                                    (33, 2, 4, 2, 1, [0, 1, 1, 2], np.uint8, 1),
                                                    (64, 5, 1, 1, 2, [2, 0, 2, 0], np.int8, 1),
                                                    (70, 3, 2, 1, 1, [1, 0, 0, 1], np.uint8, 1),
                                                    (56, 3, 3, 2, 1, [1, 1, 1, 1], np.uint8, 2),
                                                    (57, 3, 3, 2, 1, [0, 1, 1, 0], np.int8, 2),
                                                    (1, 3, 3, 1, 1, [1, 1, 1, 1], np.uint8, 2),
                                                    (130, 5, 4, 2, 1, [2, 3, 2, 0], np.uint8, 2),
                                                    (67, 3, 3, 3, 1, [1, 1, 1, 1], np.int8, 3),
                                                    (100, 2, 4, 1, 2, [0, 2, 1, 1], np.uint8, 4),
                                                    (9, 3, 2, 1, 1, [1, 1, 1, 1], np.uint8, 4)):
                C = 24
                x = _rand(rng, xt, (1, C, 9, W))
                w = _rand(rng, np.int8, (C, 1, KH, KW))
                _dw_int8w_both(rng, x, w, dict(group=C, pads=pads, strides=[sh, sw], dilations=[dh, 1]),
                               "dwconv_dpbusd__avx512vnni", f"dw vbmi={vbmi} W={W} K={KH}x{KW} sw={sw}")
    finally:
        _k.set_dw_nhwc(None)
        monkeypatch.delenv("REFQUANT_DISABLE_ISA", raising=False)
        _cpu.reset()


def test_depthwise_channels_last_vbmi_and_plain(monkeypatch):
    """The channels-last vpdpbusd kernel pads each channel's taps to 16 bytes four channels a
    vpermb where the CPU has AVX512_VBMI (kernels of up to 16 taps) and channel by channel
    otherwise; both give the reference's bits: channel counts around the groups of 4 and the
    64-channel blocks, 1 to 25 taps, 2-D and 3-D, both types of x, input planes whose pixel count
    is not a multiple of 16 (the block transpose's last step), pads wider than the kernel."""
    if "avx512vnni" not in AVAILABLE:
        pytest.skip("no VNNI channels-last kernel here")
    rng = np.random.default_rng(47)
    refquant.set_num_threads(1)     # (one thread: a block of 64 channels or fewer goes channels last)
    try:    # (AMX off: under AMX one input channel runs the row-implicit conv instead)
        for vbmi in _vbmi_variants(monkeypatch, also_off=("amx",)):
            assert bool(_cpu.features()["avx512vbmi"]) == vbmi
            for C, sp, k, pads, st, xt in ((1, (7, 7), (3, 3), [1, 1, 1, 1], [1, 1], np.uint8),
                                           (5, (5, 9), (1, 1), [0, 0, 0, 0], [1, 1], np.int8),
                                           (63, (7, 7), (3, 3), [1, 1, 1, 1], [1, 1], np.uint8),
                                           (66, (14, 14), (3, 3), [1, 1, 1, 1], [2, 2], np.int8),
                                           (130, (3, 11), (4, 4), [2, 3, 4, 1], [1, 2], np.uint8),
                                           (67, (6, 6), (5, 5), [2, 2, 2, 2], [1, 1], np.int8),
                                           (40, (2, 5, 6), (3, 3, 3), [1, 1, 1, 1, 1, 1], [1, 1, 1], np.uint8),
                                           (9, (3, 4, 4), (2, 2, 2), [0, 1, 0, 1, 0, 1], [1, 1, 2], np.int8)):
                x = _rand(rng, xt, (1, C) + sp)
                w = _rand(rng, np.int8, (C, 1) + k)
                _dw_int8w_both(rng, x, w, dict(group=C, pads=pads, strides=st), "dwconv_nhwc_dpbusd__avx512vnni",
                               f"dw nhwc vbmi={vbmi} C={C} sp={sp} k={k}")
    finally:
        refquant.set_num_threads(None)
        monkeypatch.delenv("REFQUANT_DISABLE_ISA", raising=False)
        _cpu.reset()


def _packed_conv_w_model(w, cp):
    """The packed layout of conv weights, written out in numpy: B[k, co] = w[co, ci, t] with
    k = t*cp + ci (channels past Cin zero weights), B ^ 0x80 for uint8 weights, VNNI-4 panels of
    16 columns (K padded to 64, columns past Cout zero), int8 column sums."""
    Co, Ci, KH, KW = w.shape
    KK = KH * KW
    wp = np.zeros((Co, cp, KK), np.uint8)
    wp[:, :Ci] = w.view(np.uint8).reshape(Co, Ci, KK)
    B = wp.transpose(2, 1, 0).reshape(KK * cp, Co)
    if w.dtype == np.uint8:
        B = B ^ 0x80
    K = KK * cp
    Kp, Np = -(-K // 64) * 64, -(-Co // 16) * 16
    Bp = np.zeros((Kp, Np), np.uint8)
    Bp[:K, :Co] = B
    data = Bp.reshape(Kp // 4, 4, Np // 16, 16).transpose(2, 0, 3, 1).reshape(Np // 16, Kp // 4, 64)
    return data, Bp.view(np.int8).astype(np.int64).sum(0).astype(np.int32)


def test_pack_conv_w_layout(monkeypatch):
    """Conv weights packed in one pass (per 16-channel panel: each group of 4 input channels'
    taps permuted to tap-major dwords with vpermb, then a 16x16 int32 transpose; AVX512_VBMI) and
    by the staged packer (transpose, row reorder, VNNI-4 packer; without VBMI or below VNNI) give
    the same bytes and column sums as the layout written out in numpy (with 2 to 10 taps, whole
    blocks of 64 input channels go 16 groups at a time: one vpermt2b per 16 (group, tap) dwords,
    then the transpose; 64, 70 and 136 channels reach it): channel counts around the
    groups of 4, padded channels (the implicit conv's whole 64-byte chunks), output channels around
    the 16-column panels, kernels 1x1 to 4x4 and 1x7 / 5x5 (past the one-pass packer's 16 taps),
    int8 / uint8, 1 and 2 threads."""
    from refquant import _gemm
    rng = np.random.default_rng(61)
    try:
        for vbmi in _vbmi_variants(monkeypatch):
            for Co in (1, 16, 17, 40):
                for Ci in (1, 3, 4, 13, 64, 70, 136):
                    for KH, KW in ((1, 1), (3, 3), (2, 3), (2, 2), (4, 4), (5, 5), (1, 7), (2, 5)):
                        dt = np.int8 if rng.random() < 0.5 else np.uint8
                        w = _rand(rng, dt, (Co, Ci, KH, KW))
                        for cp in sorted({Ci, -(-Ci // 4) * 4, -(-Ci // 64) * 64}):
                            want = _packed_conv_w_model(w, cp)
                            for isa, nt in ((-1, 1), (-1, 2), (1, 1)):
                                got = _gemm.pack_conv_w(w, isa=isa, nthreads=nt, cp=cp)._bytes()
                                what = f"vbmi={vbmi} w={w.shape} {dt.__name__} cp={cp} isa={isa} nt={nt}"
                                assert (got[0] == want[0]).all(), f"panels {what}"
                                assert (got[1] == want[1]).all(), f"column sums {what}"
    finally:
        monkeypatch.delenv("REFQUANT_DISABLE_ISA", raising=False)
        _cpu.reset()


@pytest.mark.parametrize("isa_cap", ISA_PARAMS, indirect=True)
def test_large_plain_weights(isa_cap, monkeypatch):
    """Plain weights larger than half the L2 with few output rows: the implicit AMX conv packs
    each 64-channel group right before its tile products (rq_gemm_amx_plainf__amx), with the x
    zero point's column terms filled per group; the im2col path packs each group's weights in one
    pass, and where its convs have few pixels it too packs each group just in time.  The
    reference's bits with and without AVX512_VBMI (the staged packer, whole), for
    output channels that are not a multiple of 64 (a narrower last group), padded input channels,
    x zero points, per-channel scales, bias, int32 and 8-bit outputs, 1 and 2 threads."""
    rng = np.random.default_rng(62)
    try:
        for vbmi in _vbmi_variants(monkeypatch):
            _use_level(isa_cap)
            for (C, M, H, W, s) in ((512, 520, 7, 7, 1), (500, 600, 5, 9, 1), (512, 512, 14, 14, 2)):
                x = _rand(rng, np.uint8, (1, C, H, W))
                w = _rand(rng, np.int8, (M, C, 3, 3))
                attrs = dict(pads=[1, 1, 1, 1], strides=[s, s])
                want32 = R.conv_integer(x, w, np.uint8(117), np.int8(0), **attrs)
                ws = (rng.random(M) * 1e-3 + 1e-5).astype(np.float32)
                b = rng.integers(-30000, 30000, M).astype(np.int32)
                args = (x, np.float32(0.03), np.uint8(117), w, ws, np.int8(0), np.float32(0.2), np.int8(-7), b)
                want8 = R.qlinear_conv(*args, **attrs)
                for nt in (1, 2):
                    refquant.set_num_threads(nt)
                    what = f"vbmi={vbmi} C={C} M={M} {H}x{W} s={s} t={nt}"
                    _check(refquant.conv_integer(x, w, np.uint8(117), **attrs), want32, f"int32 {what}")
                    _check(refquant.qlinear_conv(*args, **attrs), want8, f"int8 {what}")
                    if isa_cap == "amx" and s == 1:
                        assert refquant.last_path()["path"] == "conv_implicit_tdp__amx", refquant.last_path()
            # the im2col path just in time (strided, large plain weights): a 1x1 stride-2
            # downsampling conv with a narrower last group, int8 x with its zero points, x_zp 0
            for (C, M, H, k, xt, xz) in ((1024, 1100, 14, 1, np.int8, -128), (512, 300, 13, 3, np.uint8, 0),
                                          (2048, 600, 9, 1, np.uint8, 255)):
                x = _rand(rng, xt, (1, C, H, H))
                w = _rand(rng, np.int8, (M, C, k, k))
                attrs = dict(pads=[k // 2] * 4, strides=[2, 2])
                xz = xt(xz)
                want32 = R.conv_integer(x, w, xz, np.int8(0), **attrs)
                ws = (rng.random(M) * 1e-3 + 1e-5).astype(np.float32)
                b = rng.integers(-30000, 30000, M).astype(np.int32)
                args = (x, np.float32(0.03), xz, w, ws, np.int8(0), np.float32(0.2), np.uint8(7), b)
                want8 = R.qlinear_conv(*args, **attrs)
                for nt in (1, 2):
                    refquant.set_num_threads(nt)
                    what = f"im2col jit vbmi={vbmi} C={C} M={M} k={k} x={xt.__name__} t={nt}"
                    _check(refquant.conv_integer(x, w, xz, **attrs), want32, f"int32 {what}")
                    _check(refquant.qlinear_conv(*args, **attrs), want8, f"u8 {what}")
                    wz = np.int8(5)      # a weight zero point: the GEMM with its row sums instead
                    a2 = args[:5] + (wz,) + args[6:]
                    _check(refquant.qlinear_conv(*a2, **attrs), R.qlinear_conv(*a2, **attrs), f"wz {what}")
    finally:
        refquant.set_num_threads(None)
        monkeypatch.delenv("REFQUANT_DISABLE_ISA", raising=False)
        _cpu.reset()


def test_zero_size_convs_same_as_reference():
    """Empty batches, no output channels and no input channels (K = 0: the sums are all zero,
    plus the bias; the kernels refuse K = 0, so that case runs on the reference): refquant's
    result is the reference's, shape and bits."""
    s, z8, zs8 = np.float32(0.5), np.uint8(3), np.int8(0)
    for xs, ws in (((1, 0, 5, 5), (3, 0, 3, 3)), ((1, 4, 5, 5), (0, 4, 3, 3)),
                   ((0, 4, 5, 5), (3, 4, 3, 3)), ((2, 0, 4, 4), (2, 0, 1, 1))):
        x = np.zeros(xs, np.uint8)
        w = np.zeros(ws, np.int8)
        B = np.arange(ws[0], dtype=np.int32) * 7
        for got, want in (
                (refquant.qlinear_conv(x, s, z8, w, s, zs8, s, z8, B), R.qlinear_conv(x, s, z8, w, s, zs8, s, z8, B)),
                (refquant.conv_integer(x, w, z8, zs8), R.conv_integer(x, w, z8, zs8))):
            assert got.shape == want.shape and got.dtype == want.dtype, (xs, ws)
            np.testing.assert_array_equal(got, want)
    # no output channels with per-channel (zero-size) weight scales / zero points: the reference
    # gives the empty result too (it reshaped a (0,) zero point to a scalar until session 15)
    x = np.ones((1, 3, 4, 4), np.uint8)
    w = np.ones((0, 3, 1, 1), np.int8)
    for got, want in ((refquant.conv_integer(x, w, z8, np.zeros(0, np.int8)), R.conv_integer(x, w, z8, np.zeros(0, np.int8))),
                      (refquant.qlinear_conv(x, s, z8, w, np.zeros(0, np.float32) + s, np.zeros(0, np.int8), s, z8),
                       R.qlinear_conv(x, s, z8, w, np.zeros(0, np.float32) + s, np.zeros(0, np.int8), s, z8))):
        assert got.shape == want.shape == (1, 0, 4, 4) and got.dtype == want.dtype


@pytest.mark.skipif("avx512vnni" not in AVAILABLE, reason="no AVX-512 VNNI here")
def test_stem_padded_channels_vbmi_and_not(monkeypatch):
    """The implicit conv over channels padded to whole dwords (stems) packs its weights with
    vpermb where the CPU has AVX512_VBMI and through zero-padded weights and the staged packer
    where it has not (AVX-512 VNNI CPUs before Ice Lake): the reference's bits both ways, int8
    and uint8 weights (whose padded channels hold -128 after the flip: the x_zp pad cancels
    them), plain and packed weights, kernels 3x3 to 7x7."""
    rng = np.random.default_rng(93)
    try:
        for _vbmi in _vbmi_variants(monkeypatch):
            _cpu.set_isa_cap("avx512vnni")     # (after the variant's reset)
            for C, k, s, p in ((3, 3, 2, 1), (3, 7, 2, 3), (5, 5, 1, 2), (13, 3, 1, 1)):
                for wd, wz in ((np.int8, np.int8(0)), (np.uint8, np.uint8(128))):
                    x = _rand(rng, np.uint8, (2, C, 17, 19))
                    w = _rand(rng, wd, (16, C, k, k))
                    args = (x, np.float32(0.02), np.uint8(7), w, np.float32(0.004), wz, np.float32(0.3), np.uint8(5))
                    kw = dict(pads=[p] * 4, strides=[s, s])
                    want = R.qlinear_conv(*args, **kw)
                    _check(refquant.qlinear_conv(*args, **kw), want, f"stem C={C} k={k} vbmi={_vbmi}")
                    assert refquant.last_path()["path"] == "conv_implicit_vnni4__avx512vnni"
                    pa = (x, args[1], args[2], refquant.pack_weights(w)) + args[4:]
                    _check(refquant.qlinear_conv(*pa, **kw), want, f"stem packed C={C} k={k} vbmi={_vbmi}")
    finally:
        monkeypatch.delenv("REFQUANT_DISABLE_ISA", raising=False)
        _cpu.reset()
        _cpu.set_isa_cap(None)


@pytest.mark.skipif("avx512vnni" not in AVAILABLE, reason="no AVX-512 VNNI here")
def test_conv_implicit_vnni():
    """At the AVX-512 VNNI level (no AMX) the GEMM reads the conv's rows in place from the
    padded NHWC copy (conv_implicit_vnni4__avx512vnni, no im2col) when the channels per group
    are a multiple of 4 and the weights' zero points leave B_used's all zero (int8 w with 0,
    uint8 w with 128): strides, dilations, pads, groups (the int8 x flip of each group's rows and
    of the pad rows once), pixel counts not a multiple of 8 (the last block repeats its last
    pixel), 1 and 2 taps wide, packed weights, int32 and 8-bit outputs, 1 and 2 threads give the
    reference's bits.  A single group of fewer than 16 channels that are not a multiple of 4 (a
    3-channel stem) runs it over a copy padded to whole dwords (the extra channels x_zp, their
    weights zero; given packed weights are packed again for it).  Other zero points and channel
    counts run the im2col path."""
    rng = np.random.default_rng(91)
    configs = [  # (Cg, M, H, W, k, s, d, pads, group)
        (64, 64, 9, 9, (3, 3), (1, 1), (1, 1), [1, 1, 1, 1], 1),
        (8, 40, 11, 7, (3, 3), (2, 2), (1, 1), [1, 1, 1, 1], 1),
        (12, 33, 10, 13, (3, 2), (1, 2), (2, 1), [2, 0, 1, 1], 1),
        (16, 16, 6, 6, (3, 3), (1, 1), (1, 1), [1, 1, 1, 1], 3),
        (4, 17, 5, 5, (1, 1), (1, 1), (1, 1), [1, 1, 1, 1], 1),
        (20, 24, 3, 40, (1, 4), (1, 1), (1, 1), [0, 1, 0, 2], 2),
        (6, 10, 7, 7, (3, 3), (1, 1), (1, 1), [1, 1, 1, 1], 1),     # Cg % 4 != 0, one group: padded
        (3, 32, 15, 16, (3, 3), (2, 2), (1, 1), [1, 1, 1, 1], 1),   # a 3-channel stem
        (3, 16, 13, 11, (7, 7), (2, 2), (1, 1), [3, 3, 3, 3], 1),
        (13, 9, 6, 9, (2, 3), (1, 1), (2, 1), [0, 1, 1, 0], 1),
        (6, 10, 7, 7, (3, 3), (1, 1), (1, 1), [1, 1, 1, 1], 2),     # groups: im2col
        (18, 8, 7, 7, (3, 3), (1, 1), (1, 1), [1, 1, 1, 1], 1),     # 16 channels or more: im2col
    ]
    _cpu.set_isa_cap("avx512vnni")
    try:
        for (Cg, M, H, W, k, s, d, pads, group) in configs:
            for xdt in (np.uint8, np.int8):
                for wdt, wz in ((np.int8, np.int8(0)), (np.uint8, np.uint8(128)), (np.int8, np.int8(3))):
                    x = _rand(rng, xdt, (2, Cg * group, H, W))
                    w = _rand(rng, wdt, (M * group, Cg, k[0], k[1]))
                    attrs = dict(group=group, strides=list(s), dilations=list(d), pads=pads)
                    what = f"Cg={Cg} M={M} {H}x{W} k={k} s={s} d={d} g={group} x={xdt.__name__} w={wdt.__name__} {wz}"
                    for t in (1, 2):
                        refquant.set_num_threads(t)
                        try:
                            _run_both(rng, x, w, _zp(rng, xdt), wz, attrs, what + f" t={t}")
                        finally:
                            refquant.set_num_threads(None)
                    xz = _zp(rng, xdt)
                    got = F.conv_integer(x, w, xz, wz, profile=ONNX, **attrs)
                    padded = group == 1 and Cg < 16
                    want_path = (("conv_implicit_vnni4__avx512vnni",) if int(wz) in (0, 128) and (Cg % 4 == 0 or padded)
                                 else ("gemm_vnni4__avx512vnni", "gemm_vnni4_plain__avx512vnni"))
                    assert got[1] in want_path, (what, got[1])
                    if group == 1 and int(wz) == 0 and (Cg % 4 == 0 or padded):
                        args = (x, np.float32(0.02), xz, refquant.pack_weights(w), np.float32(0.003),
                                wz, np.float32(0.5), np.uint8(7))
                        plain = (x, np.float32(0.02), xz, w, np.float32(0.003), wz, np.float32(0.5), np.uint8(7))
                        _check(refquant.qlinear_conv(*args, **attrs), R.qlinear_conv(*plain, **attrs), what + " packed")
                        assert refquant.last_path()["path"] == "conv_implicit_vnni4__avx512vnni", what
    finally:
        _cpu.set_isa_cap(None)


@pytest.mark.skipif("avx512vnni" not in AVAILABLE, reason="no AVX-512 VNNI here")
def test_conv_implicit_vnni_block_heights():
    """The implicit VNNI conv's row blocks: 8 pixels, or 7 where that takes no more blocks (up
    to 56 pixels: a 7x7 output runs 7 blocks of 7), and a last block of fewer rows that computes
    only those (a kernel per row count): every pixel count from 1 to 58, one and three panels
    of 16 output channels (the single-panel kernel), 1 and 2 threads, the reference's bits."""
    rng = np.random.default_rng(17)
    _cpu.set_isa_cap("avx512vnni")
    try:
        for OH, OW in [(1, 1), (1, 2), (1, 3), (2, 2), (1, 5), (2, 3), (1, 7), (3, 3), (2, 5),
                       (1, 13), (2, 7), (3, 5), (4, 4), (3, 6), (3, 7), (2, 11), (5, 5), (4, 7),
                       (5, 6), (6, 6), (5, 8), (6, 7), (7, 7), (5, 10), (6, 9), (7, 8), (1, 57),
                       (2, 29)]:
            for M in (16, 40):
                x = _rand(rng, np.uint8, (1, 8, OH + 2, OW + 2))
                w = _rand(rng, np.int8, (M, 8, 3, 3))
                what = f"{OH}x{OW} M={M}"
                for t in (1, 2):
                    refquant.set_num_threads(t)
                    try:
                        _run_both(rng, x, w, _zp(rng, np.uint8), np.int8(0), {}, what + f" t={t}")
                    finally:
                        refquant.set_num_threads(None)
                got = F.conv_integer(x, w, np.uint8(3), np.int8(0), profile=ONNX)
                if OH * OW > 4:   # (4 pixels or fewer: the GEMM on an im2col copy)
                    assert got[1] == "conv_implicit_vnni4__avx512vnni", (what, got[1])
    finally:
        _cpu.set_isa_cap(None)


@pytest.mark.skipif("avx512vnni" not in AVAILABLE, reason="no AVX-512 VNNI here")
def test_conv_1x1_few_pixels_implicit(monkeypatch):
    """1x1 convs with few pixels run the implicit VNNI conv (pixel rows) instead of W.X: with
    packed weights up to 196 pixels, with plain ones up to 100 where AVX512_VBMI packs them in one
    pass (16 channel groups a transpose); W.X otherwise (more pixels, weight zero points, no
    VBMI with plain weights).  Input channels around the 64-byte groups, output channels around
    the 16-column panels; the reference's bits."""
    rng = np.random.default_rng(23)
    try:
        for vbmi in _vbmi_variants(monkeypatch):
            _cpu.set_isa_cap("avx512vnni")
            for (C, M, H, W) in [(8, 16, 7, 7), (16, 40, 14, 14), (12, 24, 1, 5), (8, 16, 14, 15),
                                 (8, 16, 2, 2), (68, 17, 7, 7), (132, 33, 10, 10), (4, 16, 11, 10)]:
                x = _rand(rng, np.uint8, (1, C, H, W))
                w = _rand(rng, np.int8, (M, C, 1, 1))
                for wz in (np.int8(0), np.int8(2)):
                    for wk in (w, refquant.pack_weights(w)):
                        args = (x, np.float32(0.02), np.uint8(9), wk, np.float32(0.003), wz,
                                np.float32(0.5), np.uint8(7))
                        plain = (x, np.float32(0.02), np.uint8(9), w, np.float32(0.003), wz,
                                 np.float32(0.5), np.uint8(7))
                        packed = wk is not w
                        what = f"vbmi={vbmi} 1x1 {C}->{M} {H}x{W} wz={wz} packed={packed}"
                        _check(refquant.qlinear_conv(*args), R.qlinear_conv(*plain), what)
                        implicit = int(wz) == 0 and 4 < H * W <= (196 if packed else 100) and (packed or vbmi)
                        assert (refquant.last_path()["path"] == "conv_implicit_vnni4__avx512vnni") == implicit, \
                            (what, refquant.last_path())
            _cpu.set_isa_cap(None)
    finally:
        _cpu.set_isa_cap(None)
        monkeypatch.delenv("REFQUANT_DISABLE_ISA", raising=False)
        _cpu.reset()


@pytest.mark.skipif("avx512vnni" not in AVAILABLE, reason="no AVX-512 VNNI here")
def test_conv_implicit_vnni_without_vbmi():
    """Without AVX512_VBMI (AVX-512 VNNI CPUs before Ice Lake; here REFQUANT_DISABLE_ISA=
    avx512vbmi in a subprocess) the implicit VNNI conv packs its weights from the transposed
    row-major B (rq_pack_b) instead of the one-pass packer: the same bits, the same path."""
    code = textwrap.dedent("""
        import numpy as np, refquant
        from refquant import _cpu, reference as R
        assert not _cpu.features()["avx512vbmi"]
        _cpu.set_isa_cap("avx512vnni")
        rng = np.random.default_rng(5)
        for C, M, H, k, s, g, xdt, wdt, wz in ((16, 24, 9, 3, 1, 1, np.uint8, np.int8, 0),
                                               (12, 8, 7, 3, 2, 2, np.int8, np.uint8, 128),
                                               (8, 17, 6, 1, 1, 1, np.uint8, np.int8, 0)):
            x = rng.integers(np.iinfo(xdt).min, np.iinfo(xdt).max + 1, (1, C * g, H, H + 1)).astype(xdt)
            w = rng.integers(np.iinfo(wdt).min, np.iinfo(wdt).max + 1, (M * g, C, k, k)).astype(wdt)
            kw = dict(pads=[1] * 4, strides=[s, s], group=g)
            for t in (1, 2):
                refquant.set_num_threads(t)
                got = refquant.conv_integer(x, w, xdt(3), wdt(wz), **kw)
                assert refquant.last_path()["path"] == "conv_implicit_vnni4__avx512vnni", refquant.last_path()
                assert np.array_equal(got, R.conv_integer(x, w, xdt(3), wdt(wz), **kw)), (C, M, t)
        print("ok")
    """)
    env = dict(os.environ, REFQUANT_DISABLE_ISA="avx512vbmi")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout + r.stderr


@pytest.mark.skipif("avxvnni" not in AVAILABLE, reason="no AVX-VNNI here (or its kernels not built)")
def test_depthwise_avxvnni_dpbusd():
    """The AVX-VNNI depthwise kernel (dwconv_dpbusd__avxvnni: W stride 1, W dilation 1, KW <= 4,
    KH <= 16, int8 weights with zero w_zp; each kernel row's taps one dword of the padded row,
    8 overlapping windows from one 16-byte load and a vpshufb): KH 1-16 and 17 (the AVX2 kernel),
    KW 1-4, H strides and dilations, asymmetric pads wider than the kernel, rows of 1 to 70
    pixels, uint8 and int8 x (x ^ 0x80, the padding too) with x_zp at the ends of its range,
    channel multipliers, int32 / uint8 / int8 outputs with per-tensor and per-channel scales and
    a bias, 1 and 2 threads: the reference's bits, and the kernel each shape picks.  (Narrow rows
    would run the channels-last kernel: it is switched off here.)"""
    rng = np.random.default_rng(64)
    _use_level("avxvnni")
    _k.set_dw_nhwc(False)
    try:
        for threads in (1, 2):
            refquant.set_num_threads(threads)
            for it in range(60):
                C, m = int(rng.integers(1, 6)), int(rng.choice([1, 1, 2]))
                KH = 17 if it == 7 else int(rng.integers(1, 17)) if it % 5 == 0 else int(rng.integers(1, 6))
                KW = int(rng.integers(1, 5))
                sh, dh = int(rng.integers(1, 3)), int(rng.integers(1, 3))
                pads = [int(v) for v in rng.integers(0, 6, 4)]
                H = int(rng.integers(max(1, dh * (KH - 1) + 1 - pads[0] - pads[2]), 40))
                W = int(rng.integers(max(1, KW - pads[1] - pads[3]), 70))
                xt = (np.uint8, np.int8)[it % 2]
                x = _rand(rng, xt, (1, C, H, W))
                w = _rand(rng, np.int8, (C * m, 1, KH, KW))
                lo_, hi_ = (0, 255) if xt == np.uint8 else (-128, 127)
                xz = xt((lo_, hi_, (lo_ + hi_) // 2)[it % 3])
                kw = dict(group=C, strides=[sh, 1], dilations=[dh, 1], pads=pads)
                what = f"C={C} m={m} K={KH}x{KW} s={sh} d={dh} pads={pads} {xt.__name__} t={threads}"
                _check(refquant.conv_integer(x, w, xz, np.int8(0), **kw), R.conv_integer(x, w, xz, np.int8(0), **kw), what)
                want = "dwconv_dpbusd__avxvnni" if KH <= 16 else "dwconv__avx2"
                assert refquant.last_path()["path"] == want, (refquant.last_path(), what)
                ws = (rng.random(C * m) * 0.02 + 1e-3).astype(np.float32) if it % 2 else np.float32(0.01)
                B = rng.integers(-20000, 20000, C * m).astype(np.int32)
                args = (x, np.float32(0.02), xz, w, ws, np.int8(0), np.float32(0.2), (np.uint8(7), np.int8(-5))[it % 2], B)
                _check(refquant.qlinear_conv(*args, **kw), R.qlinear_conv(*args, **kw), "qlinear " + what)
    finally:
        _k.set_dw_nhwc(None)
        refquant.set_num_threads(None)
        _use_level(None)


def test_conv_dispatch_demotes():
    """QLinearConv's kernels follow the ISA cap: at each available level the 3x3 conv and the
    depthwise conv run a kernel of that level (the name's suffix; at the AMX level these small
    convs may take the AVX-512 VNNI kernels)."""
    rng = np.random.default_rng(5)
    x = _rand(rng, np.uint8, (1, 8, 9, 9))
    w = _rand(rng, np.int8, (16, 8, 3, 3))
    wd = _rand(rng, np.int8, (8, 1, 3, 3))
    q = (np.float32(0.02), np.uint8(3))
    r = (np.float32(0.01), np.int8(0), np.float32(0.5), np.uint8(9))
    for cap in AVAILABLE:
        _use_level(cap)
        try:
            for ww, g in ((w, 1), (wd, 8)):
                got = refquant.qlinear_conv(x, *q, ww, *r, group=g, pads=[1, 1, 1, 1])
                path = refquant.last_path()["path"]
                ok = ("__" + cap,) + (("__avx512vnni",) if cap == "amx" else ())
                assert path.endswith(ok), (cap, g, path)
                _check(got, R.qlinear_conv(x, *q, ww, *r, group=g, pads=[1, 1, 1, 1]), f"{cap} g={g}")
        finally:
            _use_level(None)
