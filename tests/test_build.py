"""The build conventions (setup.py) and the compiled extensions, plus the AddressSanitizer run.

Conventions checked here: per-ISA compile units chosen by file-name suffix with their own
flags (never global -m flags), -O3 -ffp-contract=off and never -ffast-math, OpenMP when
available, one extension ``refquant._<family>`` per ``kernels/_<family>.pyx``.

AddressSanitizer (opt-in, marker ``asan``; about 7 minutes on 2 cores: a sample of every kernel
family at every level, 25 s of tools/fuzz_kernels.py, 24 s of it at the AMX level alone, and the
GEMM / conv tests at the AMX level):

    pytest -m asan tests/test_build.py

copies setup.py, pyproject.toml, kernels/ and refquant/ into a scratch folder, rebuilds the
extensions there with ``REFQUANT_SANITIZE=address,undefined,float-cast-overflow`` (adds
``-fsanitize=... -fno-omit-frame-pointer`` to every compile and link; AddressSanitizer alone
where gcc lacks libubsan) and ``REFQUANT_AMX_EMU=1`` (the AMX tile instructions emulated in C,
kernels/src/gemm/rq_amx_emu.h, so that the AMX drivers run on any AVX-512 VNNI CPU and their
tile loads and stores go through memcpy, which the sanitizers see), and runs a sample of the quantize kernels
(every ISA level, every output type, sizes and offsets around the vector widths, per-axis) and,
when built, the GEMM kernels, in a child Python started with
``LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0``.
Any out-of-bounds access, and any undefined behaviour UBSan sees (``UBSAN_OPTIONS=
halt_on_error=1``: misaligned typed access, signed overflow, out-of-range shifts and float ->
int conversions), stops the child and fails the test.  The sample ends with every op on arrays
that start at odd bytes (tests/test_dispatch.py) at every ISA level.  The same by hand:

    REFQUANT_SANITIZE=address python setup.py build_ext --inplace
    LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 \\
        python -m pytest -q -p no:cacheprovider tests/test_quant_kernels.py
    python setup.py build_ext --inplace --force      # back to the normal build

Tests that run onnxruntime or torch need libstdc++ preloaded after libasan
(``LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)"``);
otherwise ASan's ``__cxa_throw`` interceptor aborts at their first C++ exception.  So preloaded,
the seven kernel and dispatch test files (843 tests) ran clean in session 16.
"""
from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _setup_module():
    """Import setup.py's helpers without running setup()."""
    spec = importlib.util.spec_from_file_location("_rq_setup", os.path.join(ROOT, "setup.py"))
    src = open(os.path.join(ROOT, "setup.py")).read()
    head = src.split("\nsetup(")[0]          # everything before the setup() call
    mod = importlib.util.module_from_spec(spec)
    exec(compile(head, "setup.py", "exec"), mod.__dict__)
    return mod


def test_isa_suffixes_and_flags():
    s = _setup_module()
    assert s.isa_of("kernels/src/gemm/gemm_avx2.c") == "avx2"
    assert s.isa_of("kernels/src/gemm/gemm_avx512.c") == "avx512"
    assert s.isa_of("kernels/src/gemm/gemm_avx512vnni.c") == "avx512vnni"
    assert s.isa_of("kernels/src/gemm/gemm_amx.c") == "amx"
    assert s.isa_of("kernels/src/gemm/gemm.c") is None
    assert s.isa_of("kernels/src/quant/quant_scalar.c") is None
    f = s.ISA_FLAGS
    assert f["avx2"] == ["-mavx2", "-mfma", "-mf16c", "-mbmi2"]
    assert f["avx512"] == f["avx2"] + ["-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl"]
    assert f["avx512vnni"] == f["avx512"] + ["-mavx512vnni"]
    assert f["amx"] == f["avx512vnni"] + ["-mamx-tile", "-mamx-int8"]


def test_one_extension_per_pyx():
    pyx = sorted(os.path.basename(p)[1:-4] for p in glob.glob(os.path.join(ROOT, "kernels", "_*.pyx")))
    assert "cpu" in pyx and "quant" in pyx
    import refquant
    for fam in pyx:
        mod = pytest.importorskip(f"refquant._{fam}", reason="extensions not built")
        assert mod.__file__.endswith((".so", ".pyd")), mod.__file__


def test_build_flags_recorded():
    cpu = pytest.importorskip("refquant._cpu", reason="extensions not built")
    info = cpu.build_info()
    flags = info["cflags"].split()
    assert "-ffp-contract=off" in flags or "/fp:precise" in flags
    assert "-ffast-math" not in flags and "-Ofast" not in flags
    assert not any(f.startswith("-m") for f in flags), "ISA flags must not be global"
    for isa in cpu.compiled_isas()[1:]:
        assert info["isa_flags"][isa], isa
    if info["openmp"]:
        assert "-fopenmp" in flags or "/openmp" in flags
    assert cpu.compiled_isas()[0] == "scalar"


def test_c_sources_follow_layout():
    """No per-file optimisation overrides (fast-math pragmas/attributes) in the kernel sources."""
    for path in glob.glob(os.path.join(ROOT, "kernels", "src", "**", "*.[ch]"), recursive=True):
        for line in open(path, errors="replace"):
            code = line.split("/*")[0].split("//")[0]
            assert "#pragma GCC optimize" not in code, (path, line)
            assert "__attribute__((optimize" not in code.replace(" ", ""), (path, line)
            assert "fast-math" not in code and "fast_math" not in code, (path, line)


_ASAN_SAMPLE = textwrap.dedent(r"""
    import sys, numpy as np
    sys.path.insert(0, sys.argv[1])
    import refquant
    assert refquant.__file__.startswith(sys.argv[1]), refquant.__file__
    from refquant import _quant as K, _cpu, reference as R, _quant_fast as F
    from refquant.profile import get_profile
    P = get_profile("onnx")
    rng = np.random.default_rng(0)
    lvls = [l for l in range(_cpu.isa_level() + 1)]
    for lvl in lvls:
        for n in (1, 15, 16, 17, 31, 33, 63, 64, 65, 255, 257, 1000, 70001):
            for off in (0, 1, 3):
                xb = (rng.standard_normal(n + off) * 50).astype(np.float32)
                x = xb[off:]
                x = x.copy() if off == 0 else x      # offset views are copied by the glue
                for t, isz in (("uint8", 1), ("int8", 1), ("uint16", 2), ("int16", 2), ("uint4", 1), ("int4", 1)):
                    yb = np.zeros(n * isz + off, np.uint8)[off:]
                    y = yb.view(np.uint8) if isz == 1 else yb[: n * 2].view(np.uint16) if off % 2 == 0 else None
                    if y is None:
                        continue
                    K.quantize(np.ascontiguousarray(x), "float32", y, t, np.array([0.3], np.float32),
                               np.array([1], np.int32), 1, 1, n, False, lvl)
                q = rng.integers(0, 256, n).astype(np.uint8)
                for t, isz in (("float32", 4), ("float16", 2)):
                    yb = np.zeros(n * isz + 2 * off, np.uint8)[2 * off:]
                    y = yb.view(np.float32) if isz == 4 and off % 2 == 0 else (yb.view(np.float16) if isz == 2 else None)
                    if y is not None:
                        K.dequantize(q, "uint8", y, t, np.array([0.3], np.float32), np.array([1], np.int32), 1, 1, n, lvl)
                        if t == "float32":   # the scale-then-subtract form (tflite-optimized)
                            K.dequantize(q, "uint8", y, t, np.array([0.3], np.float32), np.array([1], np.int32),
                                         1, 1, n, lvl, 0, 0, -1, 1)
                        else:                # float32 results rounded once to float16 (onnxruntime)
                            K.dequantize(q, "uint8", y, t, np.array([0.3], np.float32), np.array([1], np.int32),
                                         1, 1, n, lvl, 0, 0, -1, 0, True)
                K.minmax(np.ascontiguousarray(x), lvl)
        x = (rng.standard_normal((7, 33, 5)) * 9).astype(np.float32)
        s = rng.uniform(0.01, 1, 33).astype(np.float32); z = rng.integers(0, 255, 33).astype(np.uint8)
        y, _ = F.quantize_linear(x, s, z, axis=1, profile=P, isa=lvl)
        assert np.array_equal(y, R.quantize_linear(x, s, z, axis=1))
        xl = np.ascontiguousarray(x.transpose(0, 2, 1))          # per-axis on the last axis
        y, _ = F.quantize_linear(xl, s, z, axis=2, profile=P, isa=lvl)
        assert np.array_equal(y, R.quantize_linear(xl, s, z, axis=2))
        sb = rng.uniform(0.01, 1, (7, 5, 5)).astype(np.float16)  # blocked, partial last block
        zb = rng.integers(-8, 8, (7, 5, 5)).astype(np.int8)
        xb = xl.astype(np.float16).transpose(0, 2, 1).copy()      # (7, 33, 5), blocks of 7 on axis 1
        y, _ = F.quantize_linear(xb, sb, zb, axis=1, block_size=7, profile=P, isa=lvl)
        assert np.array_equal(y, R.quantize_linear(xb, sb, zb, axis=1, block_size=7))
        d, _ = F.dequantize_linear(y, sb, zb, axis=1, block_size=7, profile=P, isa=lvl)
        assert np.array_equal(d, R.dequantize_linear(y, sb, zb, axis=1, block_size=7))
        r = F.dynamic_quantize_linear(x, profile=P, isa=lvl)[0]
        assert all(np.array_equal(a, b) for a, b in zip(r, R.dynamic_quantize_linear(x)))
        # per-axis runs: the periodic parameter table (few last-axis channels, few elements per
        # channel) and short runs at odd output offsets, cached and streamed
        for (o, D, inner) in ((700, 3, 1), (4, 64, 49), (3, 5, 17), (2, 3, 129)):
            n = o * D * inner
            xp = (rng.standard_normal(n) * 9).astype(np.float32)
            sp = rng.uniform(0.01, 1, D).astype(np.float32); zp = rng.integers(0, 255, D).astype(np.int32)
            for off in (0, 3):
                for stream in (0, 1):
                    yb = np.empty(n + off, np.uint8)
                    K.quantize(xp, "float32", yb[off:], "uint8", sp, zp, o, D, inner, False, lvl, 0, 0, stream)
                    fb = np.empty(n + off, np.float32)
                    K.dequantize(yb[off:], "uint8", fb[off:], "float32", sp, zp, o, D, inner, lvl, 0, 0, stream)
        # the vendor-formula quantize kernels (RQ_QV_*): every length around the vector widths
        for prof in ("pytorch", "tflite-xnnpack", "pytorch-fakequant", "tflite-reference", "onnx-reference",
                     "tflite-optimized"):
            for n in (1, 7, 8, 9, 15, 16, 17, 33, 257):
                xv = (rng.standard_normal(n) * 40).astype(np.float32)
                for zt in (np.uint8, np.int16):
                    y, _ = F.quantize_linear(xv, np.float32(0.3), zt(3), profile=get_profile(prof), isa=lvl)
                    assert np.array_equal(y, R.quantize_linear(xv, np.float32(0.3), zt(3), profile=prof))
                    # float16 precision (RQ_QV_P16) where the formula has it
                    r16 = F.quantize_linear(xv.astype(np.float16), np.float16(0.3), zt(3),
                                            profile=get_profile(prof), isa=lvl)
                    if r16 is not None:
                        assert np.array_equal(r16[0], R.quantize_linear(xv.astype(np.float16), np.float16(0.3),
                                                                        zt(3), profile=prof))
            res = F.quantize_linear(x, s, z, axis=1, profile=get_profile(prof), isa=lvl)   # per axis
            assert res is None or np.array_equal(res[0], R.quantize_linear(x, s, z, axis=1, profile=prof))
    try:
        import refquant._gemm  # noqa: F401
        for M, K_, N in ((1, 1, 1), (3, 17, 5), (33, 65, 17), (64, 128, 64)):
            A = rng.integers(0, 256, (M, K_)).astype(np.uint8)
            B = rng.integers(-128, 128, (K_, N)).astype(np.int8)
            assert np.array_equal(refquant.matmul_integer(A, B), R.matmul_integer(A, B))
            Bu = rng.integers(0, 256, (K_, N)).astype(np.uint8)    # raw uint8 B (tdpbuud)
            assert np.array_equal(refquant.matmul_integer(A, Bu), R.matmul_integer(A, Bu))
        for t, M, K_, N in ((1, 5, 3, 1), (1, 33, 65, 47), (2, 40, 130, 70), (2, 33, 64, 200), (1, 33, 70, 192),
                            (2, 40, 64, 208)):
            refquant.set_num_threads(t)     # the 64-column plain-B driver (AMX), 1 and 2 threads
            A = rng.integers(0, 256, M * K_ + 16).astype(np.uint8)[16:].reshape(M, K_)
            Bo = rng.integers(-128, 128, K_ * N + 64).astype(np.int8)
            Bo = Bo[(16 - Bo.ctypes.data) % 64:][:K_ * N].reshape(K_, N)   # rows 16 bytes past a line: a narrower first group
            for B in (rng.integers(-128, 128, (K_, N)).astype(np.int8), rng.integers(0, 256, (K_, N)).astype(np.uint8),
                      Bo, Bo.view(np.uint8)):
                for zb in (0, 3):
                    zb = B.dtype.type(zb)
                    assert np.array_equal(refquant.matmul_integer(A, B, np.uint8(5), zb),
                                          R.matmul_integer(A, B, np.uint8(5), zb))
        refquant.set_num_threads(None)
        for t, M, K_, N in ((1, 2, 1031, 200), (1, 6, 520, 130), (2, 8, 1030, 1100), (2, 5, 520, 1600),
                            (2, 401, 130, 70), (3, 1000, 64, 33),   # (these two: rows split between threads)
                            (1, 2, 3, 200001), (2, 4, 5, 70001)):   # (these two: GEMV column blocks)
            refquant.set_num_threads(t)     # the register-blocked GEMV: bands, halves, K / column slices
            A = rng.integers(0, 256, (M, K_)).astype(np.uint8)
            for B in (rng.integers(-128, 128, (K_, N)).astype(np.int8), rng.integers(0, 256, (K_, N)).astype(np.uint8)):
                assert np.array_equal(refquant.matmul_integer(A, B, np.uint8(5)), R.matmul_integer(A, B, np.uint8(5)))
                if M <= 4:   # A - za within int8: the signed-operand GEMV (no column sums)
                    As = rng.integers(-128, 128, (M, K_)).astype(np.int8)
                    assert np.array_equal(refquant.matmul_integer(As, B, np.int8(0), B[0, 0]),
                                          R.matmul_integer(As, B, np.int8(0), B[0, 0]))
        refquant.set_num_threads(None)
        for t, M, K_, N, off in ((1, 1, 70, 600, 16), (2, 2, 1030, 530, 1), (1, 4, 33, 512, 63), (2, 5, 64, 700, 48)):
            refquant.set_num_threads(t)     # GEMV chunks on B's lines: chunk 0 and the last masked
            Bo = rng.integers(-128, 128, K_ * 768 + 128).astype(np.int8)
            Bo = Bo[(off - Bo.ctypes.data) % 64:][:K_ * 768].reshape(K_, 768)[:, :N]
            A = rng.integers(0, 256, (M, K_)).astype(np.uint8)
            for B in (Bo, Bo[::-1], Bo.view(np.uint8)):
                assert np.array_equal(refquant.matmul_integer(A, B, np.uint8(5)), R.matmul_integer(A, B, np.uint8(5)))
        refquant.set_num_threads(None)
        for M, K_, off in ((33, 65, 1), (40, 130, 16), (17, 64, 48)):   # lazy A strips (AMX)
            A = rng.integers(0, 256, M * K_ + off).astype(np.uint8)[off:].reshape(M, K_)
            B = rng.integers(-128, 128, (K_, 40)).astype(np.int8)
            assert np.array_equal(refquant.matmul_integer(A, B, np.uint8(3), np.int8(2)),
                                  R.matmul_integer(A, B, np.uint8(3), np.int8(2)))
        for t, M, K_, N in ((1, 3, 70, 300), (1, 40, 130, 70), (2, 70, 64, 600), (1, 300, 96, 33)):
            refquant.set_num_threads(t)     # requantizing epilogues: deferred strips, GEMV rows
            A = rng.integers(0, 256, M * K_ + 16).astype(np.uint8)[16:].reshape(M, K_)
            B = rng.integers(-128, 128, (K_, N)).astype(np.int8)
            qa = (A, np.float32(0.03), np.uint8(117), B, np.float32(0.004), np.int8(0), np.float32(0.5),
                  np.uint8(121))
            assert np.array_equal(refquant.qlinear_matmul(*qa), R.qlinear_matmul(*qa))
            Cb = rng.integers(-9000, 9000, (M, N)).astype(np.int32)
            ga = (A, np.float32(0.03), np.uint8(117), B, rng.uniform(1e-3, 9e-3, N).astype(np.float32),
                  np.int8(0), Cb, np.float32(0.5), np.uint8(121))
            assert np.array_equal(refquant.qgemm(*ga), R.qgemm(*ga))
        for t, M, K_, N, off in ((1, 40, 64, 47, 16), (2, 33, 130, 200, 48), (1, 17, 96, 130, 32)):
            refquant.set_num_threads(t)     # plain B 16/32/48 bytes off a line: the narrower lead group
            buf = rng.integers(-128, 128, K_ * (N + (-N) % 64) + 128).astype(np.int8)
            s0 = (-buf.ctypes.data) % 64 + off
            rs = N + (-N) % 64
            B = buf[s0:s0 + K_ * rs].reshape(K_, rs)[:, :N]
            A = rng.integers(0, 256, (M, K_)).astype(np.uint8)
            assert np.array_equal(refquant.matmul_integer(A, B, np.uint8(7)), R.matmul_integer(A, B, np.uint8(7)))
            qa = (A, np.float32(0.03), np.uint8(117), B, np.float32(0.004), np.int8(0), np.float32(0.5), np.uint8(9))
            assert np.array_equal(refquant.qlinear_matmul(*qa), R.qlinear_matmul(*qa))
        for t, M, K_, N in ((1, 40, 1100, 70), (2, 300, 1500, 40),   # K passes (1024 < K <= 2048)
                            (2, 70, 1000, 1100), (2, 100, 768, 768)):   # task orders: column blocks, row chunks
            refquant.set_num_threads(t)
            A = rng.integers(0, 256, (M, K_)).astype(np.uint8)
            B = rng.integers(-128, 128, (K_, N)).astype(np.int8)
            pw = refquant.pack_weights(B)
            assert np.array_equal(refquant.matmul_integer(A, pw, np.uint8(5)), R.matmul_integer(A, B, np.uint8(5)))
            qa = (A, np.float32(0.03), np.uint8(117), pw, np.float32(0.0004), np.int8(0), np.float32(0.5), np.uint8(9))
            assert np.array_equal(refquant.qlinear_matmul(*qa), R.qlinear_matmul(*qa[:3], B, *qa[4:]))
        for t, M, K_, N in ((1, 1, 5, 1), (1, 9, 67, 17), (2, 17, 130, 47), (2, 8, 64, 32)):
            refquant.set_num_threads(t)     # int16 pair saturation (AVX-512 / AVX2 vpmaddubsw kernels)
            for ad, bd in ((np.uint8, np.int8), (np.int8, np.uint8)):
                lo, hi = (0, 256) if ad == np.uint8 else (-128, 128)
                A = rng.integers(lo, hi, (M, K_)).astype(ad)
                B = rng.integers(-128, 128, (K_, N)).astype(np.int8) if bd == np.int8 else \
                    rng.integers(0, 256, (K_, N)).astype(np.uint8)
                assert np.array_equal(refquant.matmul_integer(A, B, profile="onnxruntime-avx2"),
                                      R.matmul_integer(A, B, profile="onnxruntime-avx2"))
            A = rng.integers(0, 256, (M, K_)).astype(np.uint8)      # the fixed-point epilogue (vector)
            B = rng.integers(-128, 128, (K_, N)).astype(np.int8)
            for bs in (np.float32(0.004), rng.uniform(1e-4, 1e-2, N).astype(np.float32)):
                qa = (A, np.float32(0.03), np.uint8(117), B, bs, np.zeros(np.size(bs), np.int8) if np.ndim(bs)
                      else np.int8(0), np.float32(0.05), np.uint8(121))
                assert np.array_equal(refquant.qlinear_matmul(*qa, profile="tflite-optimized"),
                                      R.qlinear_matmul(*qa, profile="tflite-optimized"))
        refquant.set_num_threads(None)
        import os
        for dis in ("", "avx512vbmi"):      # depthwise vpdpbusd: the vpermb and vpermd windows
            os.environ["REFQUANT_DISABLE_ISA"] = dis
            _cpu.reset()
            for W, KW, m in ((1, 3, 1), (33, 3, 1), (70, 4, 1), (33, 3, 2), (19, 5, 3)):   # (m: channel multiplier)
                xd = rng.integers(0, 256, (1, 24, 7, W)).astype(np.uint8)
                wd = rng.integers(-128, 128, (24 * m, 1, 3, KW)).astype(np.int8)
                da = (xd, np.float32(0.05), np.uint8(9), wd, np.float32(0.01), np.int8(0), np.float32(0.2),
                      np.uint8(100))
                assert np.array_equal(refquant.qlinear_conv(*da, group=24, pads=[1, 1, 1, 1]),
                                      R.qlinear_conv(*da, group=24, pads=[1, 1, 1, 1]))
        os.environ.pop("REFQUANT_DISABLE_ISA", None)
        _cpu.reset()
        for lvl in lvls:                    # depthwise 3-D: a padded volume per channel
            _cpu.set_isa_cap(lvl)
            for D, W, k, st3, m, xt in ((1, 33, (3, 3, 3), (1, 1, 1), 1, np.uint8), (5, 70, (3, 3, 4), (2, 1, 2), 2, np.int8),
                                        (4, 17, (7, 3, 3), (1, 2, 1), 1, np.uint8), (3, 5, (2, 1, 5), (3, 1, 1), 1, np.int8)):
                xd = rng.integers(-128, 128, (1, 8, D, 6, W)).astype(np.int16).astype(xt)
                wd = rng.integers(-128, 128, (8 * m, 1) + k).astype(np.int8)
                kw3 = dict(group=8, pads=[1, 1, 2, 2, 0, 1], strides=list(st3))
                da = (xd, np.float32(0.05), xt(9), wd, np.float32(0.01), np.int8(0), np.float32(0.2), xt(100))
                assert np.array_equal(refquant.qlinear_conv(*da, **kw3), R.qlinear_conv(*da, **kw3))
                assert np.array_equal(refquant.conv_integer(xd, wd, xt(9), **kw3), R.conv_integer(xd, wd, xt(9), **kw3))
            for C, H, W, k, st2, xt in ((33, 7, 7, (3, 3), 1, np.uint8), (70, 14, 13, (5, 5), 2, np.int8),
                                        (1, 12, 24, (11, 11), 1, np.uint8), (65, 9, 9, (3, 3), 1, np.int8),
                                        (130, 7, 5, (2, 5), 2, np.uint8)):   # narrow rows: channels last
                xd = rng.integers(-128, 128, (1, C, H, W)).astype(np.int16).astype(xt)
                wd = rng.integers(0, 256, (C, 1) + k).astype(np.uint8)
                wz = rng.integers(0, 256, C).astype(np.uint8)
                if C >= 65:                 # int8 weights, zero w_zp: the vpdpbusd form at the VNNI level
                    wd, wz = wd.view(np.int8), np.int8(0)
                kw2 = dict(group=C, pads=[2, 1, 0, 3], strides=[st2, st2])
                da = (xd, np.float32(0.05), xt(9), wd, np.float32(0.01), wz, np.float32(0.2), xt(100))
                assert np.array_equal(refquant.qlinear_conv(*da, **kw2), R.qlinear_conv(*da, **kw2))
                assert np.array_equal(refquant.conv_integer(xd, wd, xt(9), wz, **kw2), R.conv_integer(xd, wd, xt(9), wz, **kw2))
        _cpu.set_isa_cap(None)
        for k, s_, W in ((3, 1, 19), (5, 2, 70), (7, 1, 3)):   # depthwise int16 pairs (fbgemm): folded
            xd = rng.integers(0, 256, (1, 16, 9, W)).astype(np.uint8)   # int32 bias, float bias (epilogue
            wd = rng.integers(-128, 128, (16, 1, k, k)).astype(np.int8)  # over the int32 accumulators)
            for bd in (rng.integers(-999, 999, 16).astype(np.int32), (rng.standard_normal(16) * 3).astype(np.float32)):
                da = (xd, np.float32(0.05), np.uint8(255), wd, np.float32(0.01), np.int8(0), np.float32(0.2),
                      np.uint8(100), bd)
                kwd = dict(group=16, pads=[k // 2] * 4, strides=[s_, s_])
                prof = "pytorch-fbgemm" if bd.dtype == np.float32 else "onnxruntime-avx2"
                assert np.array_equal(refquant.qlinear_conv(*da, profile=prof, **kwd), R.qlinear_conv(*da, profile=prof, **kwd))
        for C, Co, k, H in ((3, 5, 3, 7), (64, 16, 3, 9), (17, 70, 1, 5), (64, 17, 3, 6)):   # packing, transposes
            xc = rng.integers(0, 256, (2 if C == 17 else 1, C, H, H + 2)).astype(np.uint8)   # (2 images: the compiled entry's loop)
            wc = rng.integers(-128, 128, (Co, C, k, k)).astype(np.int8)
            ca = (xc, np.float32(0.02), np.uint8(3), wc, np.float32(0.01), np.int8(0), np.float32(0.3), np.uint8(9))
            pads = [k // 2] * 4
            assert np.array_equal(refquant.qlinear_conv(*ca, pads=pads), R.qlinear_conv(*ca, pads=pads))
            assert np.array_equal(refquant.conv_integer(xc, wc, np.uint8(3), pads=pads),    # int32 transpose
                                  R.conv_integer(xc, wc, np.uint8(3), pads=pads))
            bf = (rng.standard_normal(Co) * 3).astype(np.float32)       # fbgemm / oneDNN epilogues
            for prof in ("pytorch-fbgemm", "pytorch-onednn"):
                assert np.array_equal(refquant.qlinear_conv(*ca, bf, pads=pads, profile=prof),
                                      R.qlinear_conv(*ca, bf, pads=pads, profile=prof))
            xs8 = rng.integers(-128, 128, (1, C, H, H + 2)).astype(np.int8)     # fixed point (tflite)
            bi = rng.integers(-9999, 9999, Co).astype(np.int32)
            cs = (xs8, np.float32(0.02), np.int8(3), np.maximum(wc, -127), np.float32(0.01), np.int8(0),
                  np.float32(0.3), np.int8(-9), bi)
            for prof in ("tflite-reference", "tflite-optimized"):
                assert np.array_equal(refquant.qlinear_conv(*cs, pads=pads, profile=prof),
                                      R.qlinear_conv(*cs, pads=pads, profile=prof))
        for t, C, Co, k, s_, H, p in ((1, 3, 16, 7, 2, 30, 3), (2, 1, 8, 11, 4, 57, 2), (1, 2, 5, 3, 1, 9, 1),
                                      (2, 3, 24, 3, 2, 17, 0), (1, 512, 300, 3, 2, 13, 1),
                                      (2, 1024, 1100, 1, 2, 9, 0)):   # row-implicit conv (s2d copy, overlapping
            # tile rows); the last two: strided, weights beyond half the L2 (im2col, packed just in time)
            refquant.set_num_threads(t)
            xr = rng.integers(0, 256, (1, C, H, H + 1)).astype(np.uint8)
            wr = rng.integers(-128, 128, (Co, C, k, k)).astype(np.int8)
            kwr = dict(pads=[p] * 4, strides=[s_, s_])
            ra = (xr, np.float32(0.02), np.uint8(3), wr, np.float32(0.01), np.int8(0), np.float32(0.3), np.uint8(9))
            assert np.array_equal(refquant.qlinear_conv(*ra, **kwr), R.qlinear_conv(*ra, **kwr))
            assert np.array_equal(refquant.conv_integer(xr, wr, np.uint8(3), **kwr), R.conv_integer(xr, wr, np.uint8(3), **kwr))
        refquant.set_num_threads(None)
        for t, C, Co, k, s_, H, g in ((1, 3, 8, 7, 2, 23, 1), (2, 24, 16, 3, 1, 13, 1), (1, 32, 40, 3, 2, 9, 2),
                                      (2, 200, 8, 3, 1, 5, 1)):   # generic conv: NHWC copy, padded K / pixels
            refquant.set_num_threads(t)
            xg = rng.integers(0, 256, (1, C, H, H + 3)).astype(np.uint8)
            wg = rng.integers(-128, 128, (Co, C // g, k, k)).astype(np.int8)
            kwg = dict(pads=[k // 2] * 4, strides=[s_, s_], group=g)
            ga = (xg, np.float32(0.02), np.uint8(3), wg, np.float32(0.01), np.int8(0), np.float32(0.3), np.uint8(9))
            assert np.array_equal(refquant.qlinear_conv(*ga, **kwg), R.qlinear_conv(*ga, **kwg))
            assert np.array_equal(refquant.conv_integer(xg, wg, np.uint8(3), **kwg),
                                  R.conv_integer(xg, wg, np.uint8(3), **kwg))
            if g == 1:
                gp = ga[:3] + (refquant.pack_weights(wg),) + ga[4:]
                assert np.array_equal(refquant.qlinear_conv(*gp, **kwg), R.qlinear_conv(*ga, **kwg))
        refquant.set_num_threads(None)
        if "avx512vnni" in _cpu.available_isas():   # the implicit VNNI conv (rows read in place)
            _cpu.set_isa_cap("avx512vnni")
            for t, C, Co, k, s_, H, g, xdt in ((1, 16, 24, 3, 1, 7, 1, np.uint8), (2, 24, 16, 3, 2, 9, 2, np.int8),
                                               (1, 8, 9, 2, 1, 5, 1, np.int8)):
                refquant.set_num_threads(t)
                xi = rng.integers(-128 if xdt == np.int8 else 0, 128 if xdt == np.int8 else 256,
                                  (1, C, H, H + 1)).astype(xdt)
                wi = rng.integers(-128, 128, (Co, C // g, k, k)).astype(np.int8)
                kwi = dict(pads=[1] * 4, strides=[s_, s_], group=g)
                ia = (xi, np.float32(0.02), xdt(3), wi, np.float32(0.01), np.int8(0), np.float32(0.3), np.uint8(9))
                assert np.array_equal(refquant.qlinear_conv(*ia, **kwi), R.qlinear_conv(*ia, **kwi))
                assert np.array_equal(refquant.conv_integer(xi, wi, xdt(3), **kwi), R.conv_integer(xi, wi, xdt(3), **kwi))
            refquant.set_num_threads(None)
            _cpu.set_isa_cap(None)
        from refquant import _gemm
        for Co, Ci, k, cp in ((17, 13, 3, 16), (40, 70, 3, 128), (5, 4, 4, 4)):   # one-pass conv weight packer
            wq = rng.integers(-128, 128, (Co, Ci, k, k)).astype(np.int8)
            for nt in (1, 2):
                _gemm.pack_conv_w(wq, nthreads=nt, cp=cp)._bytes()
        for t in (1, 2):   # large plain weights: packed per 64-channel group right before use
            refquant.set_num_threads(t)
            xj = rng.integers(0, 256, (1, 500, 5, 6)).astype(np.uint8)
            wj = rng.integers(-128, 128, (520, 500, 3, 3)).astype(np.int8)
            ja = (xj, np.float32(0.02), np.uint8(3), wj, np.float32(0.001), np.int8(0), np.float32(0.3), np.uint8(9))
            assert np.array_equal(refquant.qlinear_conv(*ja, pads=[1] * 4), R.qlinear_conv(*ja, pads=[1] * 4))
            wk = rng.integers(-128, 128, (24, 40, 3, 3)).astype(np.int8)       # packed, channels padded
            xk = rng.integers(0, 256, (1, 40, 9, 11)).astype(np.uint8)
            ka = (xk, np.float32(0.02), np.uint8(3), wk, np.float32(0.01), np.int8(0), np.float32(0.3), np.uint8(9))
            kp = ka[:3] + (refquant.pack_weights(wk),) + ka[4:]
            for st in ([1, 1], [2, 1]):
                assert np.array_equal(refquant.qlinear_conv(*kp, pads=[1] * 4, strides=st),
                                      R.qlinear_conv(*ka, pads=[1] * 4, strides=st))
        refquant.set_num_threads(None)
        for dis in ("", "avx512vbmi", "avx512vnni", "avx512"):   # depthwise, strides along W (avx512: AVX2 / AVX-VNNI)
            os.environ["REFQUANT_DISABLE_ISA"] = dis
            _cpu.reset()
            for W, sw, pl in ((1, 2, 1), (57, 2, 0), (130, 3, 1), (64, 4, 2), (40, 1, 1), (7, 1, 3)):
                xd = rng.integers(0, 256, (1, 16, 7, W)).astype(np.uint8)
                wd = rng.integers(-128, 128, (16, 1, 3, 3)).astype(np.int8)
                da = (xd, np.float32(0.05), np.uint8(9), wd, np.float32(0.01), np.int8(0), np.float32(0.2),
                      np.uint8(100))
                kwd = dict(group=16, pads=[1, pl, 1, 1], strides=[1, sw])
                assert np.array_equal(refquant.qlinear_conv(*da, **kwd), R.qlinear_conv(*da, **kwd))
                ia = (xd, wd, np.uint8(9), np.int8(0))     # int16 pair saturation
                assert np.array_equal(refquant.conv_integer(*ia, profile="onnxruntime-avx2", **kwd),
                                      R.conv_integer(*ia, profile="onnxruntime-avx2", **kwd))
        os.environ.pop("REFQUANT_DISABLE_ISA", None)
        _cpu.reset()
        for t, M, K_, N in ((1, 8, 1027, 1300), (2, 20, 4500, 520), (2, 40, 1100, 2100),
                            (1, 70, 3080, 1400)):   # K slabs: few rows, a large B (the last: B packed whole first)
            refquant.set_num_threads(t)
            A = rng.integers(0, 256, (M, K_)).astype(np.uint8)
            B = rng.integers(-128, 128, (K_, N)).astype(np.int8)
            assert np.array_equal(refquant.matmul_integer(A, B, np.uint8(5)), R.matmul_integer(A, B, np.uint8(5)))
            assert np.array_equal(refquant.matmul_integer(A, refquant.pack_weights(B), np.uint8(5)),   # packed: slabs in place
                                  R.matmul_integer(A, B, np.uint8(5)))
        for t, M, K_, N in ((1, 1, 77, 65), (2, 4, 300, 200), (1, 3, 1030, 17)):   # packed B, 1-4 rows
            refquant.set_num_threads(t)
            A = rng.integers(0, 256, (M, K_)).astype(np.uint8)
            B = rng.integers(-128, 128, (K_, N)).astype(np.int8)
            assert np.array_equal(refquant.matmul_integer(A, refquant.pack_weights(B), np.uint8(5)),
                                  R.matmul_integer(A, B, np.uint8(5)))
        refquant.set_num_threads(None)
        xq = rng.standard_normal((5, 7, 3)).astype(np.float32)     # compiled Q / DQ / dynamic entries
        sq = np.array([0.1, 0.02, 0.5, 1e-3, 7.0, 0.3, 0.01], np.float32)
        zq = rng.integers(0, 256, 7).astype(np.uint8)
        for ax in (1, -2):
            yq = refquant.quantize_linear(xq, sq, zq, axis=ax)
            assert np.array_equal(yq, R.quantize_linear(xq, sq, zq, axis=ax))
            assert np.array_equal(refquant.dequantize_linear(yq, sq, zq, axis=ax).view(np.uint32),
                                  R.dequantize_linear(yq, sq, zq, axis=ax).view(np.uint32))
        for got, want in zip(refquant.dynamic_quantize_linear(xq), R.dynamic_quantize_linear(xq)):
            assert np.array_equal(got, want)
        assert np.array_equal(refquant.quantize_linear(xq, 0.05, np.int16(-7)), R.quantize_linear(xq, 0.05, np.int16(-7)))
        import ml_dtypes                        # blocked along rows: block runs, chunks mid-block
        for rows, D, bs in ((3, 70000, 32), (40, 100, 16), (2, 65600, 48)):
            xb = rng.standard_normal((rows, D)).astype(np.float32)
            sb = (rng.random((rows, -(-D // bs))) * 0.1 + 0.01).astype(np.float32)
            zb4 = rng.integers(-8, 8, sb.shape).astype(ml_dtypes.int4)
            for t in (1, 2):
                refquant.set_num_threads(t)
                qb = R.quantize_linear(xb, sb, zb4, axis=1, block_size=bs)
                assert np.array_equal(refquant.quantize_linear(xb, sb, zb4, axis=1, block_size=bs).view(np.int8),
                                      qb.view(np.int8))
                assert np.array_equal(refquant.dequantize_linear(qb, sb, zb4, axis=1, block_size=bs).view(np.uint32),
                                      R.dequantize_linear(qb, sb, zb4, axis=1, block_size=bs).view(np.uint32))
        refquant.set_num_threads(None)
    except ImportError:
        pass
    # arrays that start at any byte, every op at every ISA level (UndefinedBehaviorSanitizer:
    # misaligned typed loads / stores)
    sys.path.insert(1, sys.argv[2])
    import test_dispatch as TD
    import _isa_levels
    for isa in _isa_levels.available():
        TD.test_unaligned_arrays_same_as_reference(isa)
    # the GEMMs below the AVX-512 VNNI level (exact int16, AVX-VNNI and vpmaddubsw kernels) and
    # their B packers: 16-column vector blocks, a partial last panel, reversed rows, packed
    # weights, 2 threads
    for isa in [i for i in ("avx2", "avxvnni", "avx512") if i in _isa_levels.available()]:
        _isa_levels.use(isa)
        for t, M, K_, N in ((1, 6, 67, 45), (2, 33, 130, 80), (1, 7, 3, 16), (2, 2, 64, 129), (1, 3, 67, 45), (2, 3, 3001, 100)):
            refquant.set_num_threads(t)
            A = rng.integers(0, 256, (M, K_)).astype(np.uint8)
            for bd in (np.int8, np.uint8):
                lo, hi = (-128, 128) if bd == np.int8 else (0, 256)
                W = rng.integers(lo, hi, (K_, N + 7)).astype(bd)
                for B in (W[:, :N], W[::-1, :N]):
                    for prof in ("onnx", "onnxruntime-avx2"):
                        assert np.array_equal(refquant.matmul_integer(A, B, np.uint8(3), bd(1), profile=prof),
                                              R.matmul_integer(A, B, np.uint8(3), bd(1), profile=prof))
                    pw = refquant.pack_weights(np.ascontiguousarray(B))
                    assert np.array_equal(refquant.matmul_integer(A, pw, np.uint8(3), bd(1)),
                                          R.matmul_integer(A, B, np.uint8(3), bd(1)))
        refquant.set_num_threads(None)
    # requantize (the GEMM epilogue over a caller's accumulators): blocks of rows and of 16K
    # columns, tails, per-column multipliers and biases, fixed point, every level, 2 threads
    refquant.set_num_threads(2)
    for isa in _isa_levels.available():
        _isa_levels.use(isa)
        for shape in ((1, 16385), (300, 251), (7,), (70000,)):
            acc = rng.integers(-2 ** 31, 2 ** 31, shape, dtype=np.int64).astype(np.int32)
            n = shape[-1]
            for prof, m in (("onnx", (rng.random(n) * 1e-3).astype(np.float32)), ("tflite-optimized", np.float32(3e-4))):
                b = rng.integers(-9999, 9999, n).astype(np.int32)
                assert np.array_equal(refquant.requantize(acc, m, np.int8(-3), output_dtype=np.int8, bias=b, profile=prof),
                                      R.requantize(acc, m, np.int8(-3), output_dtype=np.int8, bias=b, profile=prof))
                assert refquant.last_path()["path"].startswith("rq_epi_rows__")
    refquant.set_num_threads(None)
    # float8 QuantizeLinear / DequantizeLinear (rq_f8.h: per-lane shifts of the subnormal
    # rounding), tails of every length, per axis, every level
    import ml_dtypes
    for isa in _isa_levels.available():
        _isa_levels.use(isa)
        for dt in (ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e4m3fnuz, ml_dtypes.float8_e5m2, ml_dtypes.float8_e5m2fnuz,
                   ml_dtypes.float4_e2m1fn, ml_dtypes.float6_e2m3fn, ml_dtypes.float6_e3m2fn):
            for n in (1, 7, 33, 1000):
                xf = np.concatenate([(rng.standard_normal(n) * 10.0 ** rng.integers(-9, 6, n)).astype(np.float32),
                                     np.float32([np.nan, -np.inf, -0.0, 1e-45])])
                for s in (np.float32(0.37), np.float32([0.5, 2.0])):
                    xs = xf if s.ndim == 0 else np.concatenate([xf, xf]).reshape(2, -1)
                    z = np.zeros(np.shape(s), dt)
                    for sat, prof in ((1, "onnx"), (0, "onnx"), (0, "onnxruntime")):
                        y = refquant.quantize_linear(xs, s, z, axis=0, saturate=sat, profile=prof)
                        assert refquant.last_path()["path"].startswith("rq_quantize_f32")
                        assert np.array_equal(y.view(np.uint8), R.quantize_linear(xs, s, z, axis=0, saturate=sat,
                                                                                   profile=prof).view(np.uint8))
                    d = refquant.dequantize_linear(y, s, z, axis=0)
                    assert np.array_equal(d.view(np.uint32), R.dequantize_linear(y, s, z, axis=0).view(np.uint32))
                # blocked scales (one per element below blocks of 8, else the block walk along
                # either axis), float16 outputs, non-zero zero points
                xb = np.resize(xf, 2 * (n + 4)).reshape(2, n + 4) if n < 1000 else np.resize(xf, (2, 3000))
                for bs, ax in ((3, 1), (9, 1), (1, 0), (100, 1)):
                    w = xb.shape[1]
                    sb = np.float32(rng.random((-(-2 // bs), w) if ax == 0 else (2, -(-w // bs))) + 0.1)
                    zb = np.zeros(sb.shape, dt)
                    y = refquant.quantize_linear(xb, sb, zb, axis=ax, block_size=bs)
                    assert np.array_equal(y.view(np.uint8),
                                          R.quantize_linear(xb, sb, zb, axis=ax, block_size=bs).view(np.uint8))
                    d = refquant.dequantize_linear(y, sb.astype(np.float16), zb, axis=ax, block_size=bs)
                    assert np.array_equal(d.view(np.uint16), R.dequantize_linear(y, sb.astype(np.float16), zb, axis=ax,
                                                                                 block_size=bs).view(np.uint16))
                    zb = np.resize(np.float32([1.0, -0.5, 0.0]), sb.shape).astype(dt)
                    with np.errstate(all="ignore"):
                        y = refquant.quantize_linear(xb, sb, zb, axis=ax, block_size=bs)
                        assert refquant.last_path()["path"].startswith("rq_quantize_f32")
                        assert np.array_equal(y.view(np.uint8),
                                              R.quantize_linear(xb, sb, zb, axis=ax, block_size=bs).view(np.uint8))
                        d = refquant.dequantize_linear(y, sb, zb, axis=ax, block_size=bs)
                        assert refquant.last_path()["path"].startswith("rq_dequantize_")
                        assert np.array_equal(d.view(np.uint32),
                                              R.dequantize_linear(y, sb, zb, axis=ax, block_size=bs).view(np.uint32))
        # the division in bfloat16 (RQ div_f16 = 2): float32 / float16 / bfloat16 x, tails
        for xd in (np.float32, np.float16, ml_dtypes.bfloat16):
            xs = xf.astype(xd)
            for zq in (np.uint8(3), np.int8(-1), np.zeros((), ml_dtypes.int4)):
                y = refquant.quantize_linear(xs, np.array(0.37, ml_dtypes.bfloat16), zq, opset=23)
                assert refquant.last_path()["path"].split("__")[0].endswith("_pbf16")
                assert np.array_equal(y, R.quantize_linear(xs, np.array(0.37, ml_dtypes.bfloat16), zq, opset=23))
        # DequantizeLinear to bfloat16 (RQ_F_BF16_VIA32), tails, blocked
        for qt, lo, hi in ((np.uint8, 0, 256), (ml_dtypes.int4, -8, 8)):
            xq = rng.integers(lo, hi, xf.size).astype(qt)
            d = refquant.dequantize_linear(xq, np.array(0.37, ml_dtypes.bfloat16), np.array(hi - 1).astype(qt))
            assert refquant.last_path()["path"].split("__")[0].endswith("bf16_via_f32")
            assert np.array_equal(d.view(np.uint16), R.dequantize_linear(
                xq, np.array(0.37, ml_dtypes.bfloat16), np.array(hi - 1).astype(qt)).view(np.uint16))
        # per-axis runs shorter than 64 elements past the glue's periodic rows (the C walk along
        # the scales, or 1024-element expansions), a zero point per channel or one for all
        for shape, ax in (((2, 70001), 1), ((1, 30001, 3), 1)):
            xs = np.resize(xf, shape).astype(np.float32)
            sa = np.float32(rng.random(shape[ax]) + 0.1)
            for za in (np.zeros(shape[ax], ml_dtypes.float8_e4m3fn),
                       np.resize(np.float32([0.5, 0.0, -1.0]), shape[ax]).astype(ml_dtypes.float8_e4m3fn)):
                with np.errstate(all="ignore"):
                    y = refquant.quantize_linear(xs, sa, za, axis=ax)
                    assert np.array_equal(y.view(np.uint8), R.quantize_linear(xs, sa, za, axis=ax).view(np.uint8))
                    d = refquant.dequantize_linear(y, sa, za, axis=ax)
                    assert np.array_equal(d.view(np.uint32), R.dequantize_linear(y, sa, za, axis=ax).view(np.uint32))
    _isa_levels.use(None)
    print("ASAN-SAMPLE-OK")
""")


@pytest.mark.asan
def test_kernels_under_address_sanitizer(tmp_path):
    if sys.platform != "linux" or shutil.which("gcc") is None:
        pytest.skip("needs Linux and gcc")
    libasan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                             text=True).stdout.strip()
    if not os.path.isabs(libasan) or not os.path.exists(libasan):
        pytest.skip("libasan not installed")
    work = tmp_path / "src"
    work.mkdir()
    for f in ("setup.py", "pyproject.toml"):
        shutil.copy(os.path.join(ROOT, f), work / f)
    ignore = shutil.ignore_patterns("*.so", "*.pyd", "__pycache__", "_*.c")
    kroot = os.path.join(ROOT, "kernels")

    def kignore(d, names):      # generated Cython output kernels/_<family>.c is rebuilt
        return [n for n in names if n.endswith((".so", ".pyd")) or
                (os.path.abspath(d) == kroot and n.startswith("_") and n.endswith(".c"))]
    shutil.copytree(kroot, work / "kernels", ignore=kignore)
    shutil.copytree(os.path.join(ROOT, "refquant"), work / "refquant", ignore=ignore)
    # UndefinedBehaviorSanitizer too where gcc has it (misaligned access, signed overflow,
    # shifts, float -> int conversions out of range): any report stops the child
    libubsan = subprocess.run(["gcc", "-print-file-name=libubsan.so"], capture_output=True,
                              text=True).stdout.strip()
    ubsan = os.path.isabs(libubsan) and os.path.exists(libubsan)
    # the AMX tile instructions emulated in C (REFQUANT_AMX_EMU): the AMX drivers run on any
    # CPU with AVX-512 VNNI, and every byte a tile load or store touches goes through memcpy,
    # which the sanitizers see (a real tileloadd is not instrumented)
    env = dict(os.environ, REFQUANT_SANITIZE="address,undefined,float-cast-overflow" if ubsan else "address",
               REFQUANT_AMX_EMU="1")
    b = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=work, env=env,
                       capture_output=True, text=True)
    assert b.returncode == 0, b.stdout[-3000:] + b.stderr[-3000:]
    script = tmp_path / "sample.py"
    script.write_text(_ASAN_SAMPLE)
    env = dict(os.environ, LD_PRELOAD=libasan, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0",
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    env.pop("PYTHONPATH", None)
    r = subprocess.run([sys.executable, str(script), str(work), os.path.join(ROOT, "tests")], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0 and "ASAN-SAMPLE-OK" in r.stdout, (r.stdout[-2000:] + r.stderr[-6000:])
    # then random calls of every family at every level (tools/fuzz_kernels.py: shapes, layouts,
    # misaligned views, packed weights, profiles, 1-2 threads) under the same sanitizers
    fuzz = ("import sys, runpy; sys.path.insert(0, sys.argv[1]); import refquant; "
            "assert refquant.__file__.startswith(sys.argv[1]), refquant.__file__; "
            "sys.argv = [sys.argv[2], '--seconds', '25', '--seed', '24', '--quiet']; "
            "runpy.run_path(sys.argv[0], run_name='__main__')")
    r = subprocess.run([sys.executable, "-c", fuzz, str(work), os.path.join(ROOT, "tools", "fuzz_kernels.py")],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "0 differ, 0 raised in one only" in r.stdout, (r.stdout[-2000:] + r.stderr[-6000:])
    print(r.stdout.strip().splitlines()[-1])
    # the (emulated) AMX level alone, GEMM and conv, with the plain-B driver's packing overlapped
    # inside the tile calls (REFQUANT_AMX_OVERLAP=2) and between them (1)
    amx = ("import sys; sys.path.insert(0, sys.argv[1]); from refquant import _levels; "
           "print('amx' in _levels.available())")
    r = subprocess.run([sys.executable, "-c", amx, str(work)], cwd=tmp_path, env=env, capture_output=True, text=True)
    if r.stdout.strip() == "True":
        for mode in ("2", "1"):
            f2 = fuzz.replace("'--seconds', '25', '--seed', '24'",
                              f"'--seconds', '12', '--seed', '26{mode}', '--levels', 'amx', '--ops', 'gemm', "
                              f"'conv', '--threads', '1', '2', '3'")
            r = subprocess.run([sys.executable, "-c", f2, str(work), os.path.join(ROOT, "tools", "fuzz_kernels.py")],
                               cwd=tmp_path, env=dict(env, REFQUANT_AMX_OVERLAP=mode), capture_output=True,
                               text=True, timeout=300)
            assert r.returncode == 0 and "0 differ, 0 raised in one only" in r.stdout, (r.stdout[-2000:] + r.stderr[-6000:])
            print(r.stdout.strip().splitlines()[-1])
        # and the GEMM / conv tests at the AMX level, which CI's CPUs otherwise skip (and the
        # VNNI kernel that reads a plain B in place, whose edge chunks load masked): about 90 s
        # under the sanitizers (left out: the large shapes -- K-slab, walk-order, plain-weight
        # conv drivers, 2 to 5 minutes each here -- and the three slowest sweeps, 25-55 s each;
        # they run wherever AMX is real, and in an emulated build without sanitizers)
        tests = ("import sys; sys.path.insert(0, sys.argv[1]); import refquant; "
                 "assert refquant.__file__.startswith(sys.argv[1]), refquant.__file__; import pytest; "
                 "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '-x', '-k', "
                 "'(amx and not large_plain_weights and not row_implicit_conv_few_channels and not "
                 "amx_task_orders and not uint8_b_raw_amx) or vnni_plain_b_in_place', sys.argv[2], sys.argv[3]]))")
        r = subprocess.run([sys.executable, "-c", tests, str(work), os.path.join(ROOT, "tests", "test_gemm_kernels.py"),
                            os.path.join(ROOT, "tests", "test_conv_kernels.py")],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, (r.stdout[-4000:] + r.stderr[-6000:])
        print(r.stdout.strip().splitlines()[-1])
