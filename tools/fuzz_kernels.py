#!/usr/bin/env python
"""Differential fuzzing of refquant's fast kernels against its numpy reference.

Every case is a random call of one op -- QuantizeLinear, DequantizeLinear,
DynamicQuantizeLinear, MatMulInteger, QLinearMatMul, QGemm, ConvInteger, QLinearConv or
refquant.requantize -- with random shapes (around the kernels' tile sizes), dtypes, zero points
(per tensor, per row or column, per channel), scales (per tensor, per axis, blocked), conv
attributes (1-D to 3-D, groups and depthwise, strides, dilations, pads, auto_pad), memory
layouts (C order, Fortran order, strided and misaligned views), float32 / float16 / bfloat16
data and scales, the float8 / float6 / float4 types, packed weights, a profile, and
a kernel level and thread count of this machine.  One case in twenty gets a bad argument (a
zero, negative, NaN, Inf or subnormal scale, a wrong-length scale vector, a zero point of the
wrong type or range, an operand of another type), and one Q/DQ case in four writes into a
preallocated ``out=`` between guard bytes that must stay untouched.  ``refquant.<op>`` (which
runs a fast kernel where one covers the call) and ``refquant.reference.<op>`` (the definition)
must return the same bits, or both raise the same exception class.

    python tools/fuzz_kernels.py --seconds 60                # every family, every level here
    python tools/fuzz_kernels.py --ops conv --levels amx --threads 1 4 --seconds 300
    python tools/fuzz_kernels.py --seed 7 --replay 1234      # one case again, described

Each case draws from ``numpy.random.default_rng([seed, index])``, so ``--seed S --replay I``
rebuilds case I exactly (its level and thread count included) and prints what it ran.  The
exit status is 1 when any case differed, 3 when one ran past ``--case-timeout``, 0 otherwise;
the summary counts the kernels that ran (``refquant.last_path()``), so a run shows which paths
it covered.
"""
from __future__ import annotations

import argparse
import collections
import sys
import time

import numpy as np

import refquant
from refquant import reference as R
from refquant._dtypes import qrange, resolve_dtype

try:
    import ml_dtypes
except ImportError:     # pragma: no cover - ml_dtypes is a dependency of refquant
    ml_dtypes = None

FAMILIES = ("qdq", "dynamic", "gemm", "conv", "requant")
BAD_INPUT_RATE = 0.05       # the share of cases with one argument made bad (_corrupt)
try:
    from refquant._levels import LEVELS
except ImportError:         # (no compiled kernels: the reference alone)
    LEVELS = ("reference",)


# ------------------------------------------------------------------ kernel levels

def _use_level(level):
    """Cap the kernels at ``level`` (refquant._levels.use; None: no cap)."""
    from refquant import _levels
    _levels.use(level)


def available_levels():
    """The kernel levels this machine and build can run, lowest first ("reference" alone when
    the compiled kernels are missing)."""
    try:
        from refquant import _levels
        return _levels.available()
    except ImportError:
        return ["reference"]


# ------------------------------------------------------------------ random pieces

def _dim(rng, big=300):
    """A size near the kernels' steps: small, a multiple of 4/8/16/32/64 +-1, a prime, or any."""
    r = rng.random()
    if r < 0.3:
        return int(rng.integers(1, 10))
    if r < 0.65:
        return max(1, int(rng.choice([4, 8, 16, 32, 48, 64, 96, 128, 192, 256])) + int(rng.integers(-1, 2)))
    if r < 0.75:
        return int(rng.choice([7, 13, 31, 61, 67, 127, 131, 251]))
    return int(rng.integers(1, big + 1))


def _ints(rng, dtype, shape, extreme=0.1):
    """Random integers of ``dtype``; with probability ``extreme`` only the type's end values."""
    info = np.iinfo(dtype)
    if rng.random() < extreme:
        return rng.choice(np.array([info.min, info.max], dtype), size=shape)
    return rng.integers(info.min, int(info.max) + 1, size=shape, dtype=np.int64).astype(dtype)


def _zp(rng, dtype, n=None):
    """A zero point of ``dtype``: a scalar, or a vector of n; often 0 (or 128 for uint8)."""
    info = np.iinfo(dtype)
    shape = () if n is None else (n,)
    r = rng.random()
    if r < 0.3:
        return np.zeros(shape, dtype)
    if r < 0.4 and dtype == np.uint8:
        return np.full(shape, 128, dtype)
    return rng.integers(info.min, int(info.max) + 1, size=shape, dtype=np.int64).astype(dtype)


def _scale(rng, shape=(), dtype=np.float32):
    """Positive scales, log-uniform over 1e-4 .. 10."""
    return np.exp(rng.uniform(np.log(1e-4), np.log(10.0), size=shape)).astype(dtype)


def _layout(rng, a):
    """The same values in another memory layout: C order, Fortran order, a strided view of a
    larger array, or a view one byte past an allocation's start (misaligned)."""
    r = rng.random()
    if a.ndim == 0 or a.size == 0:
        return a.copy()         # (np.ascontiguousarray would make a 0-d array 1-d)
    if r < 0.55:
        return np.ascontiguousarray(a)
    if r < 0.7:
        return np.asfortranarray(a)
    if r < 0.85:
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1] + 1,), a.dtype)
        v = big[..., 1::2]
        v[...] = a
        return v
    # (one byte past a 64-byte line; for wider types sometimes not even element-aligned)
    off = 1 if a.itemsize == 1 or rng.random() < 0.3 else a.itemsize
    raw = np.zeros(a.nbytes + 64 + off, np.uint8)
    start = (-raw.ctypes.data) % 64 + off
    v = raw[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    v[...] = a
    return v


def _floats(rng, shape, dtype, scale):
    """Values to quantize: multiples of the scale near ties, large values that saturate,
    ordinary values, and now and then NaN, +-Inf, -0.0 and subnormals."""
    n = int(np.prod(shape))
    s = float(np.max(scale)) if np.size(scale) else 1.0
    kind = rng.random()
    if kind < 0.3:
        x = (rng.integers(-300, 300, n) + rng.choice([0.5, -0.5, 0.0, 0.49999997, 0.50000006], n)) * s
    elif kind < 0.45:
        x = rng.standard_normal(n) * s * 1e4
    else:
        x = rng.standard_normal(n) * s * rng.choice([1.0, 30.0, 150.0])
    if rng.random() < 0.15:
        idx = rng.integers(0, n, max(1, n // 50))
        x[idx] = rng.choice([np.nan, np.inf, -np.inf, -0.0, 1e-40, -1e-42, 3e38], idx.size)
    with np.errstate(over="ignore", invalid="ignore"):
        return x.astype(np.float32).astype(dtype).reshape(shape)


# ------------------------------------------------------------------ case builders
# Each returns (op name, positional args, keyword args).

_QTYPES = ("uint8", "int8", "uint16", "int16", "uint4", "int4", "uint2", "int2")


def _zp_typed(rng, tname, shape):
    """A zero point of ONNX type ``tname`` (ml_dtypes for the 4- and 2-bit ones)."""
    lo, hi = qrange(tname)
    v = rng.integers(lo, hi + 1, size=shape) if rng.random() < 0.7 else np.zeros(shape, np.int64)
    return v.astype(resolve_dtype(tname))


# the float types' ONNX names and ml_dtypes names
_FTYPES = {"float8e4m3fn": "float8_e4m3fn", "float8e4m3fnuz": "float8_e4m3fnuz", "float8e5m2": "float8_e5m2",
           "float8e5m2fnuz": "float8_e5m2fnuz", "float4e2m1": "float4_e2m1fn", "float6e2m3": "float6_e2m3fn",
           "float6e3m2": "float6_e3m2fn"}


def _float_qdq(rng, ft, shape, sshape, kw):
    """QuantizeLinear to / DequantizeLinear from a float8 / float6 / float4 type (zero points
    absent or zero)."""
    fname = str(rng.choice([k for k, v in _FTYPES.items() if hasattr(ml_dtypes, v)]))
    fdt = np.dtype(getattr(ml_dtypes, _FTYPES[fname]))
    scale = _scale(rng, sshape, ft)
    zp = np.zeros(sshape, fdt) if rng.random() < 0.5 else None
    if rng.random() < 0.5:
        x = _layout(rng, _floats(rng, shape, ft, scale))
        if zp is None:
            kw["output_dtype"] = fname
        if fname.startswith("float8") and rng.random() < 0.3:
            kw["saturate"] = 0
        return "quantize_linear", (x, scale, zp), kw
    with np.errstate(over="ignore", invalid="ignore"):
        x = (rng.standard_normal(shape) * rng.choice([1.0, 30.0, 1e4])).astype(np.float32).astype(fdt)
    return "dequantize_linear", (_layout(rng, x), scale, zp), kw


def case_qdq(rng):
    """QuantizeLinear or DequantizeLinear: per tensor, per axis or blocked; integer types, and
    (one case in five) the float8 / float6 / float4 types."""
    tname = str(rng.choice(_QTYPES if ml_dtypes is not None else _QTYPES[:4]))
    fts = [np.float32, np.float16] + ([ml_dtypes.bfloat16] if ml_dtypes is not None else [])
    fp = [0.6, 0.25, 0.15][:len(fts)]
    ft = fts[int(rng.choice(len(fts), p=np.array(fp) / sum(fp)))]      # x / scale type
    nd = int(rng.integers(0, 4))
    shape = tuple(_dim(rng, 70) for _ in range(nd))
    if int(np.prod(shape)) > 200_000:
        shape = tuple(min(d, 40) for d in shape)
    mode = rng.choice(["tensor", "axis", "block"]) if nd else "tensor"
    kw = {}
    if mode == "tensor":
        sshape = ()
    else:
        axis = int(rng.integers(-nd, nd))
        kw["axis"] = axis
        if mode == "axis":
            sshape = (shape[axis],)
        else:
            bs = int(rng.choice([1, 2, 3, 4, 8, 16, 32]))
            kw["block_size"] = bs
            sshape = tuple(-(-d // bs) if i == axis % nd else d for i, d in enumerate(shape))
    if ml_dtypes is not None and rng.random() < 0.2:
        return _float_qdq(rng, ft, shape, sshape, kw)
    if rng.random() < 0.5:
        xdt = ft
        scale = _scale(rng, sshape, xdt)
        x = _layout(rng, _floats(rng, shape, xdt, scale))
        zp = _zp_typed(rng, tname, sshape) if rng.random() < 0.8 else None
        if zp is None:
            kw["output_dtype"] = tname
        if rng.random() < 0.1:
            kw["saturate"] = 0
        if rng.random() < 0.25:
            kw["_out"] = int(rng.integers(0, 3))     # write into a preallocated out= (see run_case)
        return "quantize_linear", (x, scale, zp), kw
    zp = _zp_typed(rng, tname, sshape)
    lo, hi = qrange(tname)
    x = rng.integers(lo, hi + 1, size=shape).astype(zp.dtype)
    x = _layout(rng, x) if x.dtype.itemsize > 1 or x.dtype in (np.uint8, np.int8) else x
    sdt = ft
    if rng.random() < 0.25:
        kw["_out"] = int(rng.integers(0, 3))
    return "dequantize_linear", (x, _scale(rng, sshape, sdt), zp if rng.random() < 0.85 else None), kw


def case_dynamic(rng):
    """DynamicQuantizeLinear on float32 data: ordinary, constant, all zero, or with NaN / Inf."""
    shape = tuple(_dim(rng, 200) for _ in range(int(rng.integers(1, 3))))
    r = rng.random()
    if r < 0.1:
        x = np.zeros(shape, np.float32)
    elif r < 0.2:
        x = np.full(shape, np.float32(rng.standard_normal() * 10))
    else:
        x = (rng.standard_normal(shape) * rng.choice([1e-3, 1.0, 100.0]) + rng.choice([0.0, 5.0])).astype(np.float32)
        if rng.random() < 0.05:
            x.flat[int(rng.integers(0, x.size))] = rng.choice([np.nan, np.inf])
    return "dynamic_quantize_linear", (_layout(rng, x),), {}


def _gemm_operands(rng, packable=True):
    M, N, K = _dim(rng), _dim(rng), _dim(rng)
    if rng.random() < 0.1:
        K = int(rng.integers(900, 2200))
        M, N = min(M, 40), min(N, 80)
    at = np.uint8 if rng.random() < 0.6 else np.int8
    bt = np.int8 if rng.random() < 0.7 else np.uint8
    return M, N, K, at, bt


def case_gemm(rng):
    """MatMulInteger, QLinearMatMul or QGemm."""
    M, N, K, at, bt = _gemm_operands(rng)
    kind = rng.choice(["mmi", "qlm", "qgemm"], p=[0.45, 0.35, 0.2])
    A = _ints(rng, at, (M, K))
    B = _ints(rng, bt, (K, N))
    packed = rng.random() < 0.2
    if kind == "mmi":
        if rng.random() < 0.15:            # a batch of A against one B (or a batch of B)
            A = _ints(rng, at, (int(rng.integers(2, 4)), M, K))
            if rng.random() < 0.3:
                B = _ints(rng, bt, (A.shape[0] if rng.random() < 0.8 else 1, K, N))
                packed = False
        az = _zp(rng, at, M if rng.random() < 0.15 and A.ndim == 2 else None) if rng.random() < 0.8 else None
        bz = _zp(rng, bt, N if rng.random() < 0.3 else None) if rng.random() < 0.8 else None
        Bv = refquant.pack_weights(B) if packed else _layout(rng, B)
        return "matmul_integer", (_layout(rng, A), Bv, az, bz), {}
    if kind == "qlm":
        if rng.random() < 0.1:             # batched a
            A = _ints(rng, at, (int(rng.integers(2, 4)), M, K))
        pc = rng.random() < 0.4
        yt = np.uint8 if rng.random() < 0.6 else np.int8
        bsc = _scale(rng, (N,) if pc else (), np.float32) * 0.05
        bz = _zp(rng, bt, N if pc and rng.random() < 0.5 else None)
        Bv = refquant.pack_weights(B) if packed else _layout(rng, B)
        ysc = np.float32(rng.uniform(0.5, 50.0)) * _scale(rng) * 0.05
        return "qlinear_matmul", (_layout(rng, A), _scale(rng) * 0.05, _zp(rng, at), Bv, bsc, bz,
                                  np.float32(ysc), _zp(rng, yt)), {}
    if at == np.int8:
        bt = np.int8
        B = _ints(rng, bt, (K, N))
    tA, tB = int(rng.random() < 0.25), int(rng.random() < 0.25)
    A2 = np.ascontiguousarray(A.T) if tA else A
    B2 = np.ascontiguousarray(B.T) if tB else B
    pc = rng.random() < 0.4
    C = (rng.integers(-50000, 50000, size=(N,) if rng.random() < 0.6 else (M, N)).astype(np.int32)
         if rng.random() < 0.6 else None)
    kw = dict(alpha=float(rng.choice([1.0, 0.5, 2.0, 0.3])), transA=tA, transB=tB)
    a_s, b_s = _scale(rng) * 0.05, _scale(rng, (N,) if pc else ()) * 0.05
    if C is not None and rng.random() < 0.3:     # a float C (fbgemm's float bias; others refuse it)
        shape = [(N,), (1, N), (M, N), (M, 1), ()][int(rng.integers(0, 5))]
        C = _float_bias(rng, shape, np.float32(np.float32(kw["alpha"]) * np.float32(a_s)) * np.min(b_s))
    args = [_layout(rng, A2), a_s, _zp(rng, at),
            refquant.pack_weights(B2) if packed and not tB else _layout(rng, B2),
            b_s, _zp(rng, bt, N if pc and rng.random() < 0.5 else None), C]
    if rng.random() < 0.7:
        yt = np.uint8 if rng.random() < 0.6 else np.int8
        args += [np.float32(_scale(rng) * 10), _zp(rng, yt)]
    return "qgemm", tuple(args), kw


def _float_bias(rng, shape, S):
    """A float32 bias: half of the time tie-prone (one ulp off k * S / 2, S the bias scale
    act_scale * w_scale, where fbgemm's fused and unfused bias forms part), else plain random;
    now and then float64, or with a NaN / Inf."""
    f = np.float32
    if rng.random() < 0.5:
        k = rng.integers(-3000, 3000, shape)
        b = np.nextafter((k * (S / 2)).astype(f), rng.choice(np.array([-1e9, 1e9], f), shape)).astype(f)
    else:
        b = (rng.standard_normal(shape) * rng.choice([0.01, 1.0, 100.0])).astype(f)
    b = np.asarray(b, f)
    if b.size and rng.random() < 0.05:
        b = b.copy()
        b.flat[int(rng.integers(0, b.size))] = rng.choice([np.nan, np.inf, -np.inf])
    return b.astype(np.float64) if rng.random() < 0.1 else b


def case_conv(rng):
    """ConvInteger or QLinearConv, 1-D to 3-D, groups, depthwise, strides, dilations, pads."""
    nd = int(rng.choice([1, 2, 2, 2, 3]))
    r = rng.random()
    if r < 0.35:                   # depthwise (channel multiplier 1 or 2)
        C = _dim(rng, 160)
        group, Cout = C, C * int(rng.choice([1, 1, 1, 2]))
    elif r < 0.45:                 # grouped
        group = int(rng.choice([2, 3, 4, 8]))
        cg = int(rng.integers(1, 12))
        C, Cout = group * cg, group * int(rng.integers(1, 9))
    else:
        C = int(rng.choice([1, 2, 3, 4, 8, 16, 17, 32, 48, 64, 65, 128]))
        group, Cout = 1, _dim(rng, 130)
    k = tuple(int(rng.choice([1, 1, 2, 3, 3, 3, 4, 5, 7])) for _ in range(nd))
    s = tuple(int(rng.choice([1, 1, 1, 2, 3])) for _ in range(nd))
    d = tuple(int(rng.choice([1, 1, 1, 2])) for _ in range(nd))
    lim = {1: 300, 2: 40, 3: 12}[nd]
    sp = tuple(int(rng.integers(1, lim)) for _ in range(nd))
    while C * int(np.prod(sp)) * max(1, Cout // group) * int(np.prod(k)) > 6_000_000:
        if max(sp) > 1:
            sp = tuple(max(1, v // 2) for v in sp)
        else:               # (a big kernel on many channels: fewer output channels)
            Cout = max(group, Cout // 2 // group * group)
            if Cout == group:
                break
    xt = np.uint8 if rng.random() < 0.6 else np.int8
    wt = np.int8 if rng.random() < 0.75 else np.uint8
    N = int(rng.choice([1, 1, 2]))
    x = _ints(rng, xt, (N, C) + sp, 0.05)
    w = _ints(rng, wt, (Cout, C // group) + k, 0.05)
    kw = dict(group=group)
    if rng.random() < 0.15:
        kw["auto_pad"] = str(rng.choice(["SAME_UPPER", "SAME_LOWER", "VALID"]))
    else:
        kw["pads"] = [int(rng.integers(0, 3)) for _ in range(2 * nd)]
    if rng.random() < 0.8:
        kw["strides"] = list(s)
    if rng.random() < 0.8:
        kw["dilations"] = list(d)
    if rng.random() < 0.3:
        kw["kernel_shape"] = list(k)
    wz_pc = rng.random() < 0.2
    wz = (np.zeros((), wt) if rng.random() < 0.6 else _zp(rng, wt, Cout if wz_pc else None))
    wv = refquant.pack_weights(w) if group == 1 and nd == 2 and rng.random() < 0.2 else _layout(rng, w)
    if rng.random() < 0.35:
        return "conv_integer", (_layout(rng, x), wv, _zp(rng, xt) if rng.random() < 0.8 else None,
                                wz if rng.random() < 0.8 else None), kw
    yt = np.uint8 if rng.random() < 0.6 else np.int8
    ws = _scale(rng, (Cout,) if rng.random() < 0.4 else ()) * 0.02
    xs = np.float32(_scale(rng) * 0.05)
    b = rng.integers(-200000, 200000, Cout).astype(np.int32) if rng.random() < 0.6 else None
    if b is not None and rng.random() < 0.3:     # a float bias (fbgemm's; others refuse it)
        b = _float_bias(rng, (Cout,), np.float32(xs * np.min(ws)))
    args = (_layout(rng, x), xs, _zp(rng, xt), wv, ws, wz,
            np.float32(_scale(rng) * 5), _zp(rng, yt), b)
    return "qlinear_conv", args, kw


def case_requant(rng):
    """Requantize of an int32 accumulator: per-tensor or per-channel multipliers and zero points
    along an axis, an int32 bias, uint8 / int8 outputs."""
    nd = int(rng.integers(1, 4))
    shape = tuple(_dim(rng, 80) for _ in range(nd))
    acc = (rng.integers(-2 ** 31, 2 ** 31, size=shape, dtype=np.int64) >> int(rng.choice([0, 8, 16]))).astype(np.int32)
    axis = int(rng.integers(-nd, nd)) if rng.random() < 0.5 else -1
    n = shape[axis]
    pc = rng.random() < 0.4
    m = (_scale(rng, (n,) if pc else ()) * 1e-3).astype(np.float32)
    odt = str(rng.choice(["uint8", "int8"]))
    zp = _zp(rng, np.dtype(odt).type, n if pc and rng.random() < 0.5 else None) if rng.random() < 0.8 else None
    kw = dict(output_dtype=odt)
    if axis != -1:
        kw["axis"] = axis
    if rng.random() < 0.5:
        kw["bias"] = rng.integers(-100000, 100000, size=(n,) if rng.random() < 0.7 else ()).astype(np.int32)
    return "requantize", (_layout(rng, acc), m, zp), kw


BUILDERS = {"qdq": case_qdq, "dynamic": case_dynamic, "gemm": case_gemm, "conv": case_conv,
            "requant": case_requant}


# ------------------------------------------------------------------ one case

def _same(a, b):
    """Same type, shape and bits (tuples element by element; NaN payloads included)."""
    if isinstance(a, tuple) or isinstance(b, tuple):
        return (isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b)
                and all(_same(x, y) for x, y in zip(a, b)))
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def _reference_args(args):
    """The reference takes packed weights too, but give it the plain array it holds."""
    out = []
    for a in args:
        orig = getattr(a, "original", None) if type(a).__name__ == "PackedWeights" else None
        out.append(a if orig is None else orig)
    return tuple(out)


_ONNX_OP = {"quantize_linear": "QuantizeLinear", "dequantize_linear": "DequantizeLinear",
            "dynamic_quantize_linear": "DynamicQuantizeLinear", "matmul_integer": "MatMulInteger",
            "qlinear_matmul": "QLinearMatMul", "qgemm": "QGemm", "conv_integer": "ConvInteger",
            "qlinear_conv": "QLinearConv", "requantize": "Requantize"}
# where each op takes zero points (made zero for a symmetric-only profile such as tensorrt)
_ZP_POS = {"quantize_linear": (2,), "dequantize_linear": (2,), "matmul_integer": (2, 3), "requantize": (2,),
           "qlinear_matmul": (2, 5, 7), "qgemm": (2, 5, 8), "conv_integer": (2, 3), "qlinear_conv": (2, 5, 7)}
# where each op takes scales
_SCALE_POS = {"quantize_linear": (1,), "dequantize_linear": (1,), "qlinear_matmul": (1, 4, 6), "requantize": (1,),
              "qgemm": (1, 4, 7), "qlinear_conv": (1, 4, 6)}
_MODELS = {}


def _corrupt(rng, op, args):
    """One argument made bad, the way users get it wrong: a scale of 0, negative, NaN, Inf or
    subnormal, a scale vector one too long, a zero point of the wrong type or out of its
    operand's range (as int32), an operand of int32 / float64.  The reference raises or defines
    the result; the fast path must do the same."""
    args = list(args)
    kind = rng.choice(["scale", "zp", "operand"])
    sp = [i for i in _SCALE_POS.get(op, ()) if i < len(args) and args[i] is not None]
    zp = [i for i in _ZP_POS.get(op, ()) if i < len(args) and args[i] is not None]
    if kind == "scale" and sp:
        i = int(rng.choice(sp))
        a = np.array(args[i], copy=True)
        bad = rng.choice([0.0, -0.5, np.nan, np.inf, 1e-41, -0.0])
        if a.ndim and rng.random() < 0.3:
            a = np.concatenate([a, a[..., :1]], axis=-1)
        elif a.ndim:
            a.flat[int(rng.integers(0, a.size))] = bad
        else:
            a = np.array(bad, a.dtype)
        args[i] = a
    elif kind == "zp" and zp:
        i = int(rng.choice(zp))
        a = np.asarray(args[i])
        args[i] = (a.astype(np.int32) + np.int32(rng.choice([256, -300, 70000]))) if rng.random() < 0.5 else \
            a.astype(rng.choice([np.int32, np.uint16, np.float32]))
    else:
        x = args[0]
        if type(x).__name__ != "PackedWeights":
            args[0] = np.asarray(x).astype(rng.choice([np.int32, np.float64, np.int64]))
    return tuple(args)


def _profiles_for(op, profiles):
    """The profiles of ``profiles`` that model ``op`` (others only raise ProfileError)."""
    key = (op, tuple(profiles))
    if key not in _MODELS:
        from refquant.profile import get_profile
        ok = []
        for name in profiles:
            try:
                get_profile(name).check_op(_ONNX_OP[op])
                ok.append(name)
            except Exception:       # noqa: BLE001 - the profile does not model the op
                pass
        _MODELS[key] = ok or ["onnx"]
    return _MODELS[key]


def make_case(seed, index, families, levels, threads, profiles):
    """Case ``index`` of run ``seed``: (family, level, threads, profile, op, args, kwargs).
    The profile is one that models the op (60%) or "onnx"; a symmetric-only profile gets zero
    zero points."""
    rng = np.random.default_rng([seed, index])
    fam = str(rng.choice(families))
    level = str(rng.choice(levels))
    nt = int(rng.choice(threads))
    op, args, kw = BUILDERS[fam](rng)
    prof = str(rng.choice(_profiles_for(op, profiles))) if rng.random() < 0.6 else "onnx"
    from refquant.profile import get_profile
    if get_profile(prof).symmetric_only:
        args = tuple(np.zeros(np.shape(a), np.asarray(a).dtype) if i in _ZP_POS.get(op, ()) and a is not None
                     else a for i, a in enumerate(args))
    if op != "dynamic_quantize_linear" or prof != "onnx":
        kw = dict(kw, profile=prof)
    if rng.random() < BAD_INPUT_RATE:
        args = _corrupt(rng, op, args)
    return fam, level, nt, prof, op, args, kw


def _guarded_out(want, misalign):
    """A C-contiguous array of want's shape and dtype inside a buffer of 0xA5 guard bytes (64
    each side, the array starting ``misalign`` bytes past a 64-byte line): (out, buffer, start)."""
    nb = want.nbytes
    buf = np.full(nb + 192, 0xA5, np.uint8)
    start = 64 + (-buf.ctypes.data) % 64 + misalign * want.dtype.itemsize
    return buf[start:start + nb].view(want.dtype).reshape(want.shape), buf, start


def run_case(op, args, kw, level, nt):
    """Run the case both ways: (status, fast path, detail); status is "same", "both_raise",
    "differ" or "raise_mismatch".  A case with ``_out`` in kw writes the fast result into a
    preallocated out= between guard bytes, which must stay untouched."""
    ref_err = fast_err = None
    want = got = None
    kw = dict(kw)
    out_mode = kw.pop("_out", None)
    try:
        want = getattr(R, op)(*_reference_args(args), **kw)
    except Exception as e:          # noqa: BLE001 - the fast path must raise too
        ref_err = e
    guard = None
    if out_mode is not None and ref_err is None and isinstance(want, np.ndarray):
        out, buf, start = _guarded_out(want, out_mode)
        guard = (out, buf, start, buf.copy())
        kw["out"] = out
    if level != "reference":
        _use_level(level)
    refquant.set_num_threads(nt)
    try:
        got = getattr(refquant, op)(*args, **kw)
    except Exception as e:          # noqa: BLE001
        fast_err = e
    finally:
        refquant.set_num_threads(None)
        if level != "reference":
            _use_level(None)
    path = refquant.last_path().get("path", "?") if fast_err is None else "(raised)"
    if ref_err is not None or fast_err is not None:
        if ref_err is not None and fast_err is not None:
            if type(ref_err) is not type(fast_err):     # (the same error on every CPU)
                return "raise_mismatch", path, f"reference: {ref_err!r}; fast: {fast_err!r}"
            return "both_raise", path, f"{type(ref_err).__name__} / {type(fast_err).__name__}"
        return "raise_mismatch", path, f"reference: {ref_err!r}; fast: {fast_err!r}"
    if guard is not None:
        out, buf, start, before = guard
        if got is not out:
            return "differ", path, "out= given, another array returned"
        nb = want.nbytes
        if not (np.array_equal(buf[:start], before[:start]) and np.array_equal(buf[start + nb:], before[start + nb:])):
            return "differ", path, "a guard byte around out= was overwritten"
    return ("same" if _same(got, want) else "differ"), path, ""


def describe(args, kw):
    """A short description of the arguments (shapes, dtypes, strides)."""
    parts = []
    for a in args:
        if a is None:
            parts.append("None")
        elif type(a).__name__ == "PackedWeights":
            parts.append(f"packed{getattr(a, 'shape', '')}")
        else:
            a = np.asarray(a)
            lay = "" if a.flags.c_contiguous else " F" if a.flags.f_contiguous else f" strides={a.strides}"
            parts.append(f"{a.dtype}{list(a.shape)}{lay}")
    return ", ".join(parts) + (f"; {kw}" if kw else "")


# ------------------------------------------------------------------ driver

def main(argv=None):
    global BAD_INPUT_RATE
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--seconds", type=float, default=30.0, help="time budget (default 30)")
    ap.add_argument("--cases", type=int, default=None, help="stop after this many cases")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ops", nargs="+", choices=FAMILIES, default=list(FAMILIES), help="op families")
    ap.add_argument("--levels", nargs="+", default=None,
                    help=f"kernel levels ({', '.join(LEVELS)}; default: every one this machine runs)")
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--profiles", nargs="+", default=None, help="default: every built-in profile")
    ap.add_argument("--bad-rate", type=float, default=BAD_INPUT_RATE, metavar="P",
                    help=f"share of cases with one bad argument (default {BAD_INPUT_RATE})")
    ap.add_argument("--case-timeout", type=float, default=60.0, metavar="S",
                    help="a case running longer is reported as a hang: stacks dumped, exit status 3 (0: off)")
    ap.add_argument("--replay", type=int, default=None, metavar="I", help="run case I alone and describe it")
    ap.add_argument("--quiet", action="store_true", help="only the summary and mismatches")
    a = ap.parse_args(argv)

    BAD_INPUT_RATE = a.bad_rate
    import warnings
    warnings.filterwarnings("ignore", category=RuntimeWarning)    # (overflow / NaN casts the cases make on purpose)
    here = available_levels()
    levels = here if a.levels is None else a.levels
    missing = [lv for lv in levels if lv not in here]
    if missing:
        ap.error(f"levels {missing} cannot run here (this machine and build: {here})")
    profiles = a.profiles or list(refquant.profiles())

    def one(i):
        fam, level, nt, prof, op, args, kw = make_case(a.seed, i, a.ops, levels, a.threads, profiles)
        st, path, detail = run_case(op, args, kw, level, nt)
        return fam, level, nt, op, args, kw, st, path, detail

    if a.replay is not None:
        # described before it runs, so that a case that crashes the process is still shown
        fam, level, nt, prof, op, args, kw = make_case(a.seed, a.replay, a.ops, levels, a.threads, profiles)
        print(f"case {a.replay} (seed {a.seed}): {op} at level {level}, {nt} thread(s)\n"
              f"  args: {describe(args, kw)}", flush=True)
        st, path, detail = run_case(op, args, kw, level, nt)
        print(f"  result: {st}  path: {path}  {detail}")
        return 0 if st in ("same", "both_raise") else 1

    import threading
    current = [None]
    finished = threading.Event()

    def watchdog():         # a case that runs past --case-timeout: say which, dump the stacks, exit 3
        import faulthandler
        import os
        while not finished.wait(1.0):
            c = current[0]
            if c is not None and time.monotonic() - c[1] > a.case_timeout:
                print(f"HANG case {c[0]} ran past {a.case_timeout:g} s; replay: python tools/fuzz_kernels.py "
                      f"--seed {a.seed} --replay {c[0]}", file=sys.stderr, flush=True)
                faulthandler.dump_traceback(all_threads=True)
                os._exit(3)

    if a.case_timeout > 0:
        threading.Thread(target=watchdog, daemon=True).start()
    t0 = time.monotonic()
    last = t0
    counts = collections.Counter()
    paths = collections.Counter()
    bad = []
    i = 0
    while (a.cases is None or i < a.cases) and time.monotonic() - t0 < a.seconds:
        current[0] = (i, time.monotonic())
        fam, level, nt, op, args, kw, st, path, detail = one(i)
        current[0] = None
        counts[st] += 1
        paths[path] += 1
        if st in ("differ", "raise_mismatch"):
            bad.append(i)
            print(f"MISMATCH case {i} ({st}): {op} at {level}, {nt} thread(s), path {path}: "
                  f"{describe(args, kw)} {detail}\n  replay: python tools/fuzz_kernels.py "
                  f"--seed {a.seed} --replay {i}", flush=True)
        i += 1
        now = time.monotonic()
        if not a.quiet and now - last >= 10:
            last = now
            print(f"[{now - t0:5.0f} s] {i} cases, {len(bad)} mismatches", flush=True)
    finished.set()
    print(f"seed {a.seed}: {i} cases in {time.monotonic() - t0:.1f} s over levels {', '.join(levels)}, "
          f"threads {a.threads}: {counts['same']} same, {counts['both_raise']} raised in both, "
          f"{counts['differ']} differ, {counts['raise_mismatch']} raised in one only")
    if not a.quiet:
        print("paths that ran:")
        for p, n in sorted(paths.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"  {n:7d}  {p}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
