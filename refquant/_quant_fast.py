"""Fast QuantizeLinear / DequantizeLinear / DynamicQuantizeLinear: glue over refquant._quant.

Each function takes the reference op's arguments (``profile`` already a ``Profile``) and
returns ``(result, kernel_name)``, or ``None`` when no kernel covers the call -- then
``refquant._dispatch`` runs the numpy reference, which also raises every validation error.

Covered (everything else -> None -> reference):
  QuantizeLinear   x float32/float16 (C-contiguous or copied), per-tensor, per-axis or blocked
                   (``block_size``, partial last block), integer targets
                   uint8/int8/uint16/int16/uint4/int4 (int2/uint2: the 8-bit kernel, then the
                   2-bit clamp), division precision float32 or float16 (bfloat16: numpy's
                   division, then the kernel with a unit scale),
                   profile fields q_scale_op="divide", q_rounding="half_even",
                   q_zero_point="after_rounding", q_nan="qmin", q_inf="saturate",
                   q_overflow="saturate" (the ``onnx`` and ``onnxruntime`` profiles and others
                   sharing these quantize fields).
  DequantizeLinear x uint8/int8/uint16/int16/uint4/int4 (int2/uint2 decoded to 8 bits; any
                   zero point of x's type) or int32 (no zero point), per-tensor, per-axis or
                   blocked, output float32/float16 (bfloat16 from 8- and 4-bit x),
                   dq_subtract="exact".
  Q / DQ low floats  float8 (e4m3fn, e4m3fnuz, e5m2, e5m2fnuz), float4e2m1, float6 (e2m3fn,
                   e3m2fn): float32/float16 x or output, per tensor, per axis or blocked, zero
                   points under every q_float_zero_point rule (_quantize_float8 /
                   _dequantize_float8 below say what declines).
  DynamicQuantizeLinear  float32 x; min/max in C (NaN/Inf -> reference, which raises), the
                   scale/zero-point formula in numpy exactly as the reference, then the
                   QuantizeLinear kernel.

Kernel names follow ``rq_<op>_<in><out>__<isa>`` (e.g. ``rq_quantize_f32u8__avx512``).
Validation reuses the reference's own helpers, so both paths accept the same inputs.
"""
from __future__ import annotations

import math as _math

import numpy as np
import ml_dtypes

from . import _quant as _k          # ImportError when the extension is not built
from . import _cpu

_ABI = 11
if getattr(_k, "ABI_VERSION", None) != _ABI:
    # a stale build (sources changed since `pip install -e .`): use the reference until rebuilt
    raise ImportError(f"refquant._quant ABI {getattr(_k, 'ABI_VERSION', None)} != {_ABI}; "
                      f"rebuild with `pip install -e .`")
from .reference import quantize as _rq

__all__ = ["quantize_linear", "dequantize_linear", "dynamic_quantize_linear",
           "quantize_linear_packed", "kernel_info", "kernel_name"]

_F32 = np.dtype(np.float32)
_F16 = np.dtype(np.float16)
_E8M0 = np.dtype(ml_dtypes.float8_e8m0fnu)
_BF16 = np.dtype(ml_dtypes.bfloat16)
_Q_OUT = {
    np.dtype(np.uint8): "uint8", np.dtype(np.int8): "int8",
    np.dtype(np.uint16): "uint16", np.dtype(np.int16): "int16",
    np.dtype(ml_dtypes.uint4): "uint4", np.dtype(ml_dtypes.int4): "int4",
}
_NIBBLE = (np.dtype(ml_dtypes.uint4), np.dtype(ml_dtypes.int4))
_DQ_IN = dict(_Q_OUT)
_DQ_IN[np.dtype(np.int32)] = "int32"
# int2 / uint2 (opset 25): the 8-bit kernels, then the 2-bit clamp (QuantizeLinear), or the codes
# decoded to 8 bits first (DequantizeLinear); one code per byte in the low bits, as ml_dtypes
# stores them
_TWO = {np.dtype(ml_dtypes.int2): ("int2", "int8", -2, 1), np.dtype(ml_dtypes.uint2): ("uint2", "uint8", 0, 3)}
_F_NAMES = {_F32: "float32", _F16: "float16"}
_SHORT = {"float32": "f32", "float16": "f16", "bfloat16": "bf16", "uint8": "u8", "int8": "s8", "uint16": "u16",
          "int16": "s16", "uint4": "u4", "int4": "s4", "int32": "s32", "int2": "s2", "uint2": "u2"}

_ISA = {0: "scalar", 1: "avx2", 2: "avx512", 3: "avx512vnni", 4: "amx"}
_LVL_SCALAR = 0


def kernel_name(op, in_name, out_name, level):
    return f"rq_{op}_{_SHORT[in_name]}{_SHORT[out_name]}__{_ISA.get(level, level)}"


def kernel_info():
    """{op: kernel a float32 -> uint8 (and back) call runs at the current ISA level}."""
    lvl = _k.level()
    return {
        "QuantizeLinear": kernel_name("quantize", "float32", "uint8", lvl),
        "DequantizeLinear": kernel_name("dequantize", "uint8", "float32", lvl),
        "DynamicQuantizeLinear": kernel_name("dynamic_quantize", "float32", "uint8", lvl),
    }


# Quantize fields the kernels implement only at the ``onnx`` value (q_fp16_division is read).
_Q_FIELDS = ("q_scale_op", "q_fma", "q_rounding", "q_zero_point", "q_nan", "q_inf", "q_overflow",
             "q_division_precision", "q_vector_width")


def _no_variants(p):
    """No op/granularity/tail overrides and no type restriction: the fields say it all."""
    return not getattr(p, "overrides", ()) and getattr(p, "qtypes", None) is None


def _q_profile_ok(p):
    from .profile import get_profile
    ref = get_profile("onnx")
    return _no_variants(p) and all(getattr(p, f, getattr(ref, f)) == getattr(ref, f)
                                   for f in _Q_FIELDS)


# Quantize variants (kernels/src/quant/rq_quant.h, RQ_QV_*): the vendor formulas the kernels
# also implement, float32 division precision, integer targets.
_QV_RECIP, _QV_ZPB, _QV_FMA, _QV_RAWAY, _QV_RUP, _QV_NAN_SHIFT = 1, 2, 4, 8, 16, 5
_QV_WRAP, _QV_NANWRAP, _QV_P16 = 128, 256, 512
_QV_NAN = {"qmin": 0, "qmax": 1, "zero_point": 2, "zero": 3}
_QV_ROUND = {"half_even": 0, "half_away": _QV_RAWAY, "half_up": _QV_RUP}


def _q_variant(prof, per_axis, out_dt, zp_nonzero):
    """RQ_QV_* flags for QuantizeLinear under ``prof`` (0 = the onnx formula), or None when the
    kernels do not implement the profile's formula or the reference would refuse the call."""
    try:
        prof.check_op("QuantizeLinear")
        if getattr(prof, "qtypes", None) is not None:
            prof.check_qtype(out_dt, "QuantizeLinear")
    except Exception:
        return None
    if prof.symmetric_only and zp_nonzero:
        return None
    p = prof.for_op("QuantizeLinear", per_axis=bool(per_axis))
    wrap = p.q_overflow == "int32_wrap"      # onnx.reference / tflite reference (rq_quant.h)
    if (p.q_vector_width or (p.q_inf != "saturate" and not wrap)
            or p.q_overflow not in ("saturate", "int32_wrap")
            or p.q_division_precision not in ("spec", "numpy_promotion")   # P is checked by the caller
            or (p.q_nan not in _QV_NAN and not (wrap and p.q_nan == "int32_wrap"))
            or p.q_rounding not in _QV_ROUND or p.q_scale_op not in ("divide", "multiply_reciprocal")
            or p.q_zero_point not in ("after_rounding", "before_rounding")):
        return None
    if wrap:
        v = _QV_ROUND[p.q_rounding] | _QV_WRAP
        v |= _QV_NANWRAP if p.q_nan == "int32_wrap" else (_QV_NAN[p.q_nan] << _QV_NAN_SHIFT)
    else:
        v = _QV_ROUND[p.q_rounding] | (_QV_NAN[p.q_nan] << _QV_NAN_SHIFT)
    if p.q_scale_op == "multiply_reciprocal":
        v |= _QV_RECIP
    if p.q_zero_point == "before_rounding":
        v |= _QV_ZPB
        if p.q_fma and v & _QV_RECIP:      # fma(x, 1/s, zp), one rounding
            v |= _QV_FMA
    return v


def _variant_tag(v):
    """'' for the onnx formula, else e.g. '_recip_zpb_fma_nanqmax' (kernel names)."""
    if not v:
        return ""
    parts = [n for f, n in ((_QV_RECIP, "recip"), (_QV_ZPB, "zpb"), (_QV_FMA, "fma"),
                            (_QV_RAWAY, "away"), (_QV_RUP, "up"), (_QV_WRAP, "wrap32"),
                            (_QV_P16, "p16")) if v & f]
    nan = (v >> _QV_NAN_SHIFT) & 3
    if nan and not v & _QV_NANWRAP:
        parts.append("nan" + ("qmax", "zp", "zero")[nan - 1])
    return "_" + "_".join(parts)


def _layout(shape, axis, per_tensor):
    n = _math.prod(shape)
    if per_tensor:
        return 1, 1, n
    return _math.prod(shape[:axis]), int(shape[axis]), _math.prod(shape[axis + 1:])


# ------------------------------------------------------------------------------------------
# output buffer pool
# ------------------------------------------------------------------------------------------
# A fresh multi-megabyte numpy array costs a page fault per 4 KiB page on first write, which
# for DequantizeLinear on 16M elements is slower than the kernel itself; engines such as ONNX
# Runtime reuse outputs from an arena.  Large outputs here come from a small pool of recycled
# buffers: a buffer is handed out again only when nothing but the pool references it (every
# array returned from it, and every view of those, holds a reference to it), so a result still
# in use is never overwritten.  At most _POOL_MAX buffers / _POOL_BYTES bytes are kept (LRU);
# REFQUANT_NO_BUFFER_POOL=1 disables the pool, release_buffers() empties it.
import os as _os
import sys as _sys
import threading as _threading

_POOL_MIN = 1 << 20
_POOL_MAX = 4
_POOL_BYTES = 512 << 20
_POOL = []                     # flat uint8 buffers, most recently used last
_POOL_LOCK = _threading.Lock()
_POOL_OFF = _os.environ.get("REFQUANT_NO_BUFFER_POOL", "").strip() not in ("", "0")


def release_buffers():
    """Drop the recycled output buffers (their memory goes back once no result uses them)."""
    with _POOL_LOCK:
        _POOL.clear()


def _new_output(shape, dtype):
    """(array, recycled) -- np.empty, or a view of an unreferenced pooled buffer."""
    dtype = np.dtype(dtype)
    n = _math.prod(shape) * dtype.itemsize
    if _POOL_OFF or n < _POOL_MIN:
        return np.empty(shape, dtype), False
    with _POOL_LOCK:
        for i in range(len(_POOL)):
            buf = _POOL[i]
            # references: the pool list, ``buf``, getrefcount's argument -- nothing else
            if buf.nbytes == n and _sys.getrefcount(buf) <= 3:
                _POOL.append(_POOL.pop(i))
                return buf.view(dtype).reshape(shape), True
        buf = np.empty(n, np.uint8)
        _POOL.append(buf)
        while len(_POOL) > _POOL_MAX or sum(b.nbytes for b in _POOL) > _POOL_BYTES:
            _POOL.pop(0)
        return buf.view(dtype).reshape(shape), False


def _plain(a):
    return isinstance(a, np.ndarray) or isinstance(a, np.generic)


def _scalar_f32(v):
    """float value of a float32 scale given as np.float32 / 0-d / (1,) array, else None."""
    # exact types: a subclass (numpy.ma's masked arrays) takes the full validation, which refuses it
    if (type(v) is np.ndarray or isinstance(v, np.generic)) and v.dtype == _F32 and v.size == 1 and v.ndim <= 1:
        return float(v.reshape(-1)[0]) if v.ndim else float(v)
    return None


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _quick_quantize(x, y_scale, y_zero_point, axis, block_size, output_dtype, saturate,
                    precision, opset):
    """The common call (float32 x, float32 scalar scale, typed scalar zero point or none,
    newest opset, no attributes) validated in a few microseconds; None = use the full
    validation.  Accepts exactly what the reference accepts for these argument kinds."""
    if (opset is not None or output_dtype is not None or precision is not None
            or x.dtype != _F32 or not _is_int(axis) or not _is_int(block_size) or block_size != 0
            or saturate not in (0, 1)):
        return None
    sv = _scalar_f32(y_scale)
    if sv is None or not (sv > 0.0 and sv != float("inf")):
        return None
    if y_zero_point is None:
        out_dt = np.dtype(np.uint8)
        z = 0
    else:
        if not isinstance(y_zero_point, (np.ndarray, np.generic)) or isinstance(y_zero_point, np.ma.MaskedArray) \
                or y_zero_point.dtype not in _Q_OUT \
                or np.shape(y_zero_point) != np.shape(y_scale):
            return None
        out_dt = y_zero_point.dtype
        z = int(np.asarray(y_zero_point).reshape(-1)[0].astype(np.int64))
    return dict(s=np.array([sv], _F32), zp=np.array([z], np.int32), out_dt=out_dt, div_f16=False,
                outer=1, D=1, inner=int(x.size), block=0)


def _q_operands(x, y_scale, y_zero_point, output_dtype, opset):
    """QuantizeLinear's first checks, as the reference makes them: (opset, scale, zero point,
    output type).  Raises (the callers decline) where the reference would raise, or where the
    kernels take no such call (mixed x / scale types before opset 23)."""
    opset = _rq._opset(opset)
    if x.dtype not in _rq._q_input_types(opset):
        raise TypeError("x: type not allowed at this opset")
    s = _rq._convert_scale(y_scale, x.dtype, opset, "y_scale", quantize=True)
    if (19 <= opset < 23 and s.dtype != x.dtype) or (opset < 19 and s.ndim > 1):
        raise TypeError("y_scale: type or rank")
    zp, out_dt = _rq._resolve_zero_point(y_zero_point, output_dtype, "y_zero_point", opset)
    return opset, s, zp, out_dt


def _prepare_quantize(x, y_scale, y_zero_point, axis, block_size, output_dtype, saturate,
                      precision, prof, opset):
    """Everything the kernel needs, or None when the call is not covered (or invalid)."""
    if isinstance(x, np.ma.MaskedArray):
        return None            # the reference raises its TypeError
    if isinstance(x, np.ndarray):
        quick = _quick_quantize(x, y_scale, y_zero_point, axis, block_size, output_dtype,
                                saturate, precision, opset)
        if quick is not None:
            # the reference's granularity flag for profile overrides: a 1-D scale is "per axis"
            v = _q_variant(prof, np.ndim(y_scale) == 1, quick["out_dt"], bool(quick["zp"][0] != 0))
            if v is None:
                return None
            quick["variant"] = v
            return quick
    if not isinstance(x, np.ndarray) or x.dtype not in (_F32, _F16, _BF16):
        return None
    try:
        opset, s, zp, out_dt = _q_operands(x, y_scale, y_zero_point, output_dtype, opset)
        if (out_dt not in _Q_OUT and out_dt not in _TWO) or out_dt not in _rq._q_output_types(opset):
            return None
        if saturate not in (0, 1, True, False):
            return None
        ax = _rq._granularity(x.shape, s, zp, axis, block_size, opset, "y_scale", "y_zero_point")
        variant = _q_variant(prof, s.ndim == 1 and not block_size, out_dt,
                             zp is not None and bool(np.any(zp.astype(np.int64) != 0)))
        if variant is None:
            return None
        prof = prof.for_op("QuantizeLinear", per_axis=bool(s.ndim == 1 and not block_size))
        P = _rq._division_dtype(x.dtype, s.dtype, precision, opset, prof)
    except Exception:
        return None
    xk, tag = None, ""
    if P == _BF16 or x.dtype == _BF16:
        # bfloat16: the kernels read float32 / float16.  P float32: x converted exactly.  P
        # bfloat16: v = fl_bf16(x / s) (or x * fl_bf16(1 / s)) by numpy as the reference forms
        # it, then the kernel with a unit scale on v (exact in float32): rounding, zero point and
        # clamp act on v alone.  Not with the zero point added in bfloat16 before rounding.
        if P == _F32:
            xk = x.astype(_F32)
        elif P == _BF16 and not variant:
            # the kernels divide in bfloat16 (x and x / s rounded to it, RQ div_f16 = 2)
            tag = "_pbf16"
            if x.dtype == _BF16:
                xk = x.astype(_F32)      # (exact)
        elif P == _BF16 and not variant & (_QV_ZPB | _QV_FMA):
            try:
                sb = _rq.expand_qparam(s, x.shape, ax, block_size, argname="y_scale")
                with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
                    xs, ss = _rq._round_to(x, P), sb.astype(P)
                    if variant & _QV_RECIP:
                        v = np.asarray(xs * (np.asarray(1, P) / ss).astype(P), P)
                    else:
                        v = np.asarray(xs / ss, P)
                    xk = np.broadcast_to(v, x.shape).astype(_F32)
            except Exception:
                return None
            variant &= ~_QV_RECIP
            s = np.ones(s.shape, _F32)
            P, tag = _F32, "_pbf16_numpy"
        else:
            return None
    if P not in (_F32, _F16, _BF16):
        return None
    if variant and P == _F16:
        # a vendor formula in float16 precision: x, 1/s and v = x * r (or x / s) each rounded to
        # float16 (RQ_QV_P16); the zero point before rounding as the float16 sum v + fl16(zp),
        # or (q_fma) x * r + zp rounded once to float16 (kernels/src/quant/rq_quant.h)
        variant |= _QV_P16
    per_tensor = s.ndim == 0 or (s.ndim == 1 and s.size == 1 and not block_size)
    blocked = bool(block_size) and not per_tensor
    if not per_tensor and not blocked and s.ndim != 1:
        return None
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        sf = np.ascontiguousarray(s.reshape(-1).astype(P).astype(_F32))
    if zp is None:
        zf = np.zeros(sf.shape, np.int32)
    else:
        zf = np.ascontiguousarray(zp.reshape(-1).astype(np.int64).astype(np.int32))
    if per_tensor:
        sf, zf = sf[:1].copy() if sf.size else sf, zf[:1].copy() if zf.size else zf
    outer, D, inner = _layout(x.shape, ax, per_tensor)
    if D == 0:
        outer, D, inner = 0, 1, 0      # empty input: nothing to compute
        if sf.size == 0 and not blocked:   # a per-axis scale of length 0: one unread placeholder
            sf, zf = np.ones(1, _F32), np.zeros(1, np.int32)
    return dict(s=sf, zp=zf, out_dt=out_dt, div_f16=2 if P == _BF16 else int(P == _F16 and not variant),
                outer=outer, D=D,
                inner=inner, block=int(block_size) if blocked else 0, variant=variant, x=xk, tag=tag)


_VT = {}      # id(profile) -> (profile, its vector-block profile, its tail profile)


def _vector_tail_profiles(prof):
    """(main, tail) of a profile with q_vector_width = w > 0, as the reference's
    _blocks_and_tail forms them (memoised: dataclasses.replace validates a whole Profile)."""
    ent = _VT.get(id(prof))
    if ent is None or ent[0] is not prof:
        import dataclasses
        ent = (prof, dataclasses.replace(prof, q_vector_width=0),
               dataclasses.replace(prof.for_op("QuantizeLinear", tail=True), q_vector_width=0))
        if len(_VT) > 64:
            _VT.clear()
        _VT[id(prof)] = ent       # the entry keeps the profile alive: its id stays unique
    return ent[1], ent[2]


def _quantize_vector_and_tail(x, y_scale, y_zero_point, axis, block_size, output_dtype, saturate,
                              precision, prof, opset, isa):
    """q_vector_width = w > 0 (LiteRT's optimized QUANTIZE: blocks of w elements of the flattened
    tensor, then a scalar loop over the last n mod w): the blocks' formula by the kernels over
    the whole tensor, the tail's by the reference -- over just those elements, per tensor and per
    axis (QuantizeLinear is elementwise; each element takes its channel's parameters), over the
    whole tensor when blocked -- exactly as the reference's _blocks_and_tail assembles them."""
    main, tail = _vector_tail_profiles(prof)
    res = quantize_linear(x, y_scale, y_zero_point, axis=axis, block_size=block_size,
                          output_dtype=output_dtype, saturate=saturate, precision=precision,
                          profile=main, opset=opset, isa=isa)
    if res is None:
        return None
    y, name = res
    n = y.size
    cut = n - n % prof.q_vector_width
    if cut < n:
        kw = dict(output_dtype=output_dtype, saturate=saturate, precision=precision, opset=opset,
                  profile=tail)
        try:
            xa = np.asarray(x)
            if np.size(y_scale) == 1 and not block_size:
                yt = _rq.quantize_linear(xa.reshape(-1)[cut:], y_scale, y_zero_point,
                                         axis=0, **kw).reshape(-1)
            elif (not block_size and np.ndim(y_scale) == 1 and xa.ndim
                  and (y_zero_point is None or np.shape(y_zero_point) == np.shape(y_scale))):
                # per axis: the tail's elements with their channels' parameters, one per
                # element (as the dequantize's tail; the whole tensor's reference for n mod w
                # elements cost about 40 ns an element)
                ax = axis + xa.ndim if axis < 0 else axis
                ch = (np.arange(cut, n) // _math.prod(xa.shape[ax + 1:])) % np.size(y_scale)
                zt = None if y_zero_point is None else np.asarray(y_zero_point).reshape(-1)[ch]
                yt = _rq.quantize_linear(xa.reshape(-1)[cut:], np.asarray(y_scale).reshape(-1)[ch], zt,
                                         axis=0, **kw).reshape(-1)
            else:
                yt = _rq.quantize_linear(x, y_scale, y_zero_point, axis=axis, block_size=block_size,
                                         **kw).reshape(-1)[cut:]
        except Exception:     # noqa: BLE001 - the reference decides (it raises the same way)
            return None
        y.reshape(-1)[cut:] = yt
    return y, name


def quantize_linear(x, y_scale, y_zero_point=None, *, axis=1, block_size=0, output_dtype=None,
                    saturate=1, precision=None, profile, opset=None, out=None, isa=None):
    """Fast QuantizeLinear; ``(y, kernel_name)`` or None.  ``out``: optional preallocated
    C-contiguous output of the right dtype and shape (benchmarks); ``isa``: cap (tests)."""
    if isinstance(x, np.generic):
        x = np.asarray(x)
    if getattr(profile, "q_vector_width", 0) and np.ndim(y_scale) == 1 and not block_size:
        # per axis: the reference applies the profile's "per_axis" override first
        profile = profile.for_op("QuantizeLinear", per_axis=True)
    if getattr(profile, "q_vector_width", 0):
        if out is not None:
            return None
        return _quantize_vector_and_tail(x, y_scale, y_zero_point, axis, block_size, output_dtype,
                                         saturate, precision, profile, opset, isa)
    prep = _prepare_quantize(x, y_scale, y_zero_point, axis, block_size, output_dtype,
                             saturate, precision, profile, opset)
    if prep is None:
        return _quantize_float8(x, y_scale, y_zero_point, axis, block_size, output_dtype, saturate,
                                precision, profile, opset, out, isa)
    xk = prep.get("x")
    xc = np.ascontiguousarray(x if xk is None else xk)
    out_dt = prep["out_dt"]
    recycled = False
    if out is None:
        y, recycled = _new_output(x.shape, out_dt)
    else:
        if (not isinstance(out, np.ndarray) or out.dtype != out_dt or out.shape != x.shape
                or not out.flags.c_contiguous or not out.flags.writeable or not out.flags.aligned
                or np.may_share_memory(out, x)):
            return None     # the dispatcher's reference path copies into it or raises
        y = out
    cap = -1 if isa is None else _cpu._level(isa)
    two = _TWO.get(out_dt)
    lvl = _k.quantize(xc.reshape(-1), _F_NAMES[xc.dtype], y.reshape(-1).view(np.uint8)
                      if y.dtype.itemsize == 1 else y.reshape(-1).view(np.uint16),
                      two[1] if two else _Q_OUT[out_dt], prep["s"], prep["zp"], prep["outer"], prep["D"],
                      prep["inner"], prep["div_f16"], cap, 0, prep["block"],
                      0 if (out is None and not recycled) else -1,   # fresh output: cached stores
                      prep["variant"])
    if two:
        # clamp(q8, qmin, qmax) == the 2-bit result: every 8-bit bound, NaN code and wrapped
        # value of the formula nests inside the 2-bit range (a zero point is within it)
        b = y.reshape(-1).view(np.int8 if two[2] < 0 else np.uint8)
        np.clip(b, two[2], two[3], out=b)
        np.bitwise_and(b.view(np.uint8), np.uint8(3), out=b.view(np.uint8))
    v = prep["variant"]
    if v and not _k.variant_simd(v):
        lvl = _LVL_SCALAR         # a combination the SIMD units leave to the scalar core
    name = kernel_name("quantize", _F_NAMES.get(x.dtype, "bfloat16"), two[0] if two else _Q_OUT[out_dt], lvl)
    if v or prep.get("tag"):
        name = name.replace("__", _variant_tag(v) + prep.get("tag", "") + "__", 1)
    return y, name


# ----------------------------------------------------------------------------- float8/6/4

_F8 = {np.dtype(getattr(ml_dtypes, n)): n for n in ("float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2",
                                                     "float8_e5m2fnuz")}
# the low-float types the rq_f8.h kernels take: float8, float4e2m1, float6 (one code per byte)
_LOWF = dict(_F8)
_LOWF.update({np.dtype(getattr(ml_dtypes, n)): n for n in ("float4_e2m1fn", "float6_e2m3fn",
                                                           "float6_e3m2fn")})
_F8_SHORT = {"float8_e4m3fn": "e4m3fn", "float8_e4m3fnuz": "e4m3fnuz", "float8_e5m2": "e5m2",
             "float8_e5m2fnuz": "e5m2fnuz", "float4_e2m1fn": "e2m1", "float6_e2m3fn": "e2m3",
             "float6_e3m2fn": "e3m2"}
_F8_TAB = {}
_MINUS0 = np.float32(-0.0)


def _f8_table(dt):
    """The 256 float32 values of a float8/6/4 type's bytes, as the reference converts them
    (x.astype)."""
    t = _F8_TAB.get(dt)
    if t is None:
        with np.errstate(invalid="ignore"):
            t = np.ascontiguousarray(np.arange(256, dtype=np.uint8).view(dt).astype(_F32))
        t.setflags(write=False)
        _F8_TAB[dt] = t
    return t


def _q_zero_mode(prof, out_dt):
    """The profile's q_float_zero_point rule for a low-float type: "add", "add_nonzero" or
    "ignore" (reference.quantize._to_low_float)."""
    mode = prof.q_float_zero_point
    f8 = out_dt in _F8
    if mode == "ignore_float8":
        return "ignore" if f8 else "add"
    if mode == "add_nonzero_float8":
        return "add_nonzero" if f8 else "add"
    return mode


def _q_zero_add(zp, mode):
    """QuantizeLinear's zero point as the kernels add it (float32, zp's shape): zp's value where
    the profile adds it, -0.0 where it does not (v + (-0.0) is v, -0.0 and NaN included).
    Raises (the caller declines) for a NaN zero point: the reference keeps a NaN v's sign, which
    a plain add does not promise."""
    if zp is None:
        return None
    with np.errstate(invalid="ignore", over="ignore"):
        z = zp.astype(_F32)
    if mode == "ignore":
        return np.full(z.shape, _MINUS0)
    if np.isnan(z).any():
        raise ValueError("y_zero_point: NaN (the reference keeps a NaN quotient's sign)")
    if mode == "add_nonzero":
        z = np.where(z == 0, _MINUS0, z).astype(_F32)
    return z


def _f8_layout(x, s, z, zfill, axis, block_size, opset, names):
    """(outer, D, inner, block, float32 scales, float32 zero points, per-element flag) of a per
    tensor / per axis / blocked call, or None.  ``z``: the zero points (float32, the scale's
    shape) or None (then ``zfill`` everywhere)."""
    ax = _rq._granularity(x.shape, s, z, axis, block_size, opset, *names)
    per_tensor = s.ndim == 0 or (s.ndim == 1 and s.size == 1 and not block_size)
    sf = np.ascontiguousarray(s.astype(_F32)).reshape(-1)
    zf = np.full(1, zfill, _F32) if z is None else np.ascontiguousarray(z.astype(_F32)).reshape(-1)
    if zf.size > 1 and not np.any(zf.view(np.uint32) != zf.view(np.uint32)[0]):
        zf = zf[:1].copy()      # one zero point for every element: the kernels read it once
    if block_size and not per_tensor:
        # blocked scales (float8/float4 weights with a scale per block): [outer, nb, inner], the
        # kernels' walk takes a block's scale per run
        if s.ndim != x.ndim or x.size == 0:
            return None
        outer, D, inner = _layout(x.shape, ax, False)
        return outer, D, inner, int(block_size), sf, zf, False
    if not per_tensor and s.ndim != 1:
        return None
    outer, D, inner = _layout(x.shape, ax, per_tensor)
    if per_tensor:
        sf, zf = sf[:1].copy(), zf[:1].copy()
    if D == 0 or sf.size != D:
        return None
    if D > 1 and inner < 64 and D * inner <= 65536 and outer > 1:
        # short runs (the channel axis last or nearly): one run per outer row, with a scale per
        # element of the row (last axis of 64 channels, 1M elements: 3.1 -> see docs)
        return (outer, 1, D * inner, 0, np.ascontiguousarray(np.repeat(sf, inner)),
                zf if zf.size == 1 else np.ascontiguousarray(np.repeat(zf, inner)), True)
    return outer, D, inner, 0, sf, zf, False


def _f8_output(x, out, dt):
    """The output array: a recycled buffer, or the caller's ``out`` when it fits (None if not:
    the dispatcher's reference path copies into it or raises)."""
    if out is None:
        return _new_output(x.shape, dt)[0]
    if (not isinstance(out, np.ndarray) or out.dtype != dt or out.shape != x.shape
            or not out.flags.c_contiguous or not out.flags.writeable or not out.flags.aligned
            or np.may_share_memory(out, x)):
        return None
    return out


def _quantize_float8(x, y_scale, y_zero_point, axis, block_size, output_dtype, saturate, precision,
                     prof, opset, out, isa):
    """QuantizeLinear to float8 (e4m3fn, e4m3fnuz, e5m2, e5m2fnuz), float4e2m1 or float6 by the
    rq_f8.h kernels:

        y = low_float_RNE(clamp(fl32(fl32(x / s) + zp), -max, max))   (NaN -> the type's NaN)

    the zero point added as the profile's q_float_zero_point says (IEEE: -0.0 + 0 = +0), or not
    at all.  float8 saturate=0 without the clamp: the Cast table (a magnitude past the largest
    value gives NaN, or +-Inf for e5m2), or ONNX Runtime's edges on it.  float4/float6 always
    saturate; their NaN becomes the zero of the opposite sign (ml_dtypes).  Taken: float32 or
    float16 x and scales with the division in float32, or in float16 (numpy's, zero point
    included, then the kernel with a unit scale); per tensor, per axis or blocked; profiles that
    divide without numpy's promotions.  ``(y, kernel name)`` or None (the reference runs and
    raises)."""
    if (type(x) is not np.ndarray or x.dtype not in (_F32, _F16, _BF16) or x.size == 0
            or not hasattr(_k, "quantize_f8")):
        return None         # (a masked array, an empty one: the reference)
    x_in = x.dtype
    if out is not None and np.may_share_memory(out, x):
        return None         # (checked on the caller's x: x may be replaced by a converted copy)
    try:
        opset, s, zp, out_dt = _q_operands(x, y_scale, y_zero_point, output_dtype, opset)
        if out_dt not in _LOWF or out_dt not in _rq._q_output_types(opset):
            return None
        if saturate not in (0, 1, True, False) or prof.symmetric_only:
            return None
        prof.check_qtype(out_dt, "QuantizeLinear")
        p = prof.for_op("QuantizeLinear", per_axis=bool(s.ndim == 1 and not block_size))
        P = _rq._division_dtype(x.dtype, s.dtype, precision, opset, p)
        if (p.q_vector_width or p.q_scale_op != "divide" or p.q_division_precision == "numpy_promotion"
                or P not in (_F32, _F16, _BF16)):
            return None
        mode = _q_zero_mode(p, out_dt)
        if P != _F32:
            # the division in float16 / bfloat16 (x and scale of that type, opset 19+):
            # v = fl_P(fl_P(x) / fl_P(s)) [+ the zero point in P], numpy's arithmetic as the
            # reference takes it; the kernel then quantizes v (exact in float32) with a unit
            # scale
            ax = _rq._granularity(x.shape, s, zp, axis, block_size, opset, "y_scale", "y_zero_point")
            sb = _rq.expand_qparam(s, x.shape, ax, block_size, argname="y_scale")
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                v = np.asarray(x.astype(P) / sb.astype(P), P)
                if zp is not None and mode != "ignore":
                    zf = _rq.expand_qparam(zp, x.shape, ax, block_size,
                                           argname="y_zero_point").astype(P)
                    keep = np.isnan(v) if mode == "add" else (zf == 0) | np.isnan(v)
                    v = np.asarray(np.where(keep, v, v + zf), P)
                x = np.broadcast_to(v, x.shape).astype(_F32).reshape(x.shape)
            lay = (1, 1, x.size, 0, np.ones(1, _F32), np.full(1, _MINUS0), False)
        else:
            if x.dtype != _F32:
                x = x.astype(_F32)           # (16-bit x divided in float32: converted exactly)
            lay = _f8_layout(x, s, _q_zero_add(zp, mode), _MINUS0, axis, block_size, opset,
                             ("y_scale", "y_zero_point"))
            if lay is None:
                return None
        # saturate=1 (or a profile that ignores saturate=0), and float4 / float6 always: clamp;
        # float8 saturate=0: the Cast table, or ONNX Runtime's edges on it
        sat = 1 if (saturate or p.q_float8_saturate0 == "saturate" or out_dt not in _F8) else \
            {"cast": 0, "onnxruntime": 2}.get(p.q_float8_saturate0)
        if sat is None:
            return None
    except Exception:
        return None
    cap = -1 if isa is None else _cpu._level(isa)
    fmt = _k.F8_FORMATS[_LOWF[out_dt]]
    r = _f8_execute(x, out, out_dt, lay,
                    lambda xs, ys, ss, zs, o, d, i, b, pe: _k.quantize_f8(xs, ys, ss, zs, o, d, i, fmt, pe, cap,
                                                                          sat=sat, block=b))
    tag = (_SHORT[_F_NAMES.get(x_in, "bfloat16")] + _F8_SHORT[_LOWF[out_dt]]
           + {_F16: "_p16", _BF16: "_pbf16"}.get(P, ""))
    return None if r is None else (r[0], f"rq_quantize_{tag}__{_ISA.get(r[1], r[1])}")


def _f8_execute(x, out, dt, lay, kernel):
    """(y, level) of ``kernel`` over the _f8_layout ``lay`` (low-float arrays as their bytes), or
    None when ``out`` does not fit."""
    y = _f8_output(x, out, dt)
    if y is None:
        return None
    xf, yf = np.ascontiguousarray(x).reshape(-1), y.reshape(-1)
    xf, yf = (xf.view(np.uint8) if xf.dtype in _LOWF else xf), (yf.view(np.uint8) if yf.dtype in _LOWF else yf)
    return y, _f8_runs(kernel, xf, yf, *lay)


def _f8_runs(call, xf, yf, outer, D, inner, block, sf, zf, pe):
    """The kernel over [outer, D, inner]; with per-element scales (pe: rows of one period), the
    rows in groups of about 4096 elements per run (the scale row repeated), then the rest."""
    if not pe or outer < 2 or inner >= 4096:
        return call(xf, yf, sf, zf, outer, D, inner, block, pe)
    r = min(outer, max(1, 4096 // inner))
    m = outer // r * r
    lvl = call(xf[:m * inner], yf[:m * inner], np.ascontiguousarray(np.tile(sf, r)),
               zf if zf.size == 1 else np.ascontiguousarray(np.tile(zf, r)), outer // r, 1, inner * r, 0, pe)
    if m < outer:
        lvl = call(xf[m * inner:], yf[m * inner:], sf, zf, outer - m, 1, inner, 0, pe)
    return lvl


def _dq_operands(x, x_scale, x_zero_point, opset):
    """DequantizeLinear's first checks: (opset, scale, zero point of x's type or None).  Raises
    (the callers decline) where the reference would raise, and for what the kernels do not take
    (a zero point that is not a plain array of x's type, or one with int32 x)."""
    opset = _rq._opset(opset)
    if x.dtype not in _rq._dq_input_types(opset):
        raise TypeError("x: type not allowed at this opset")
    s = _rq._convert_scale(x_scale, x.dtype, opset, "x_scale", quantize=False)
    if opset < 21 and s.ndim > 1:
        raise ValueError("x_scale: rank")
    zp = None
    if x_zero_point is not None:
        zp = np.asarray(x_zero_point) if _plain(x_zero_point) and not isinstance(
            x_zero_point, np.ma.MaskedArray) else None     # (a masked one: the reference refuses)
        if zp is None or zp.dtype != x.dtype or x.dtype == np.int32:
            raise TypeError("x_zero_point: not taken")
    return opset, s, zp


def _dq_zero(zp, x_dt, prof):
    """DequantizeLinear's low-float zero point as the reference subtracts it (float32, zp's
    shape), None when none is subtracted; raises (the caller declines) where the reference
    refuses it (q_float_zero_point "ignore" / "ignore_float8" with a non-zero one)."""
    if zp is None:
        return None
    with np.errstate(invalid="ignore", over="ignore"):
        z = zp.astype(_F32)
    mode = prof.q_float_zero_point
    if mode == "ignore":
        if np.any(z != 0):
            raise ValueError("x_zero_point: refused by the profile (the reference says why)")
        return None
    if mode == "ignore_float8" and x_dt in _F8:
        # onnx.reference: refused when zp.astype(uint8) is non-zero (a value cast: |zp| < 1
        # passes), else dropped
        with np.errstate(invalid="ignore", over="ignore"):
            if np.any(zp.astype(np.uint8) != 0):
                raise ValueError("x_zero_point: refused by the profile (the reference says why)")
        return None
    if mode == "ignore_float8" and x_dt == _FP4:
        return None                  # onnx.reference drops float4e2m1's zero point unread
    return z


_FP4 = np.dtype(ml_dtypes.float4_e2m1fn)


def _dequantize_float8(x, x_scale, x_zero_point, axis, block_size, output_dtype, prof, opset, out, isa):
    """DequantizeLinear from float8, float4e2m1 or float6 by the rq_f8.h kernels:
    y = fl32(fl32(float(x) - zp) * s) with the type's 256 values from a table, the zero point as
    the profile's q_float_zero_point rule takes it; float32 or float16 scale and output (float16:
    the float32 result rounded once, a zero point of +-0 only); per tensor, per axis or blocked."""
    if not hasattr(_k, "dequantize_f8") or x.dtype not in _LOWF or x.size == 0:
        return None
    try:
        opset, s, zp = _dq_operands(x, x_scale, x_zero_point, opset)
        if s.dtype not in (_F32, _F16, _BF16, _E8M0) or prof.symmetric_only:
            return None
        if output_dtype is not None:
            if opset < 23:
                return None
            out_dt = _rq.resolve_dtype(output_dtype, argname="output_dtype")
        else:
            out_dt = _F32 if s.dtype == _E8M0 else s.dtype     # (an MX scale: float32 out)
        if out_dt not in (_F32, _F16, _BF16):
            return None
        prof.check_qtype(x.dtype, "DequantizeLinear")
        z = _dq_zero(zp, x.dtype, prof)
        # a float16 / bfloat16 output: fl16(float(x) * fl16(s)); the float32 product of a
        # low-float value and a float16 / bfloat16 scale is exact (at most 4 + 11 significant
        # bits), so the kernel's float32 result rounded once is it.  dq_subtract "float32" (ORT)
        # multiplies by the float32 scale and rounds that product: the kernel's float32 result,
        # then the cast.  A non-zero zero point would round x - zp first: reference
        if out_dt != _F32 and z is not None and np.any(z != 0):
            return None
        if prof.dq_subtract != "float32":
            s = s.astype(out_dt)
        if zp is not None:
            _rq._granularity(x.shape, s, zp, axis, block_size, opset, "x_scale", "x_zero_point")
        lay = _f8_layout(x, s, z, 0.0, axis, block_size, opset, ("x_scale", "x_zero_point"))
        if lay is None:
            return None
    except Exception:
        return None
    if out_dt != _F32 and out is not None:
        return None
    cap = -1 if isa is None else _cpu._level(isa)
    tab = _f8_table(x.dtype)
    r = _f8_execute(x, out, _F32, lay,
                    lambda xs, ys, ss, zs, o, d, i, b, pe: _k.dequantize_f8(xs, ys, tab, ss, zs, o, d, i, pe, cap,
                                                                            block=b))
    if r is None:
        return None
    short, lvl = _F8_SHORT[_LOWF[x.dtype]], _ISA.get(r[1], r[1])
    if out_dt != _F32:
        with np.errstate(over="ignore"):
            return r[0].astype(out_dt), f"rq_dequantize_{short}{_SHORT[_F_NAMES.get(out_dt, 'bfloat16')]}_via_f32__{lvl}"
    return r[0], f"rq_dequantize_{short}f32__{lvl}"


def quantize_linear_packed(x, y_scale, y_zero_point=None, *, profile="onnx", **kwargs):
    """Alias of ``refquant._dispatch.quantize_linear_packed`` (kept for callers of this module)."""
    from ._dispatch import quantize_linear_packed as _qlp
    return _qlp(x, y_scale, y_zero_point, profile=profile, **kwargs)


_DQ_STS = (np.dtype(np.uint8), np.dtype(np.int8), np.dtype(np.uint16), np.dtype(np.int16))
_VT_DQ = {}   # id(profile) -> (profile, its exact-subtraction profile, its tail profile)


def _dequantize_scale_then_subtract(x, x_scale, x_zero_point, axis, block_size, output_dtype,
                                    prof, opset, isa):
    """dq_subtract "scale_then_subtract" with dq_vector_width w (LiteRT's optimized DEQUANTIZE):
    the blocks of w elements of the flattened tensor compute fl32(fl32(x*s) - fl32(zp*s)), the
    last n mod w the profile's "tail" override.  The blocks: the kernels' scale-then-subtract
    form in one pass (rq_dqrun_args.sts; x of at most 16 bits converts exactly), under the
    exact-subtraction profile's checks and layout; the tail: the reference over those elements.
    Float32 output, per tensor or per axis (not blocked); the zero point must have x's type and
    the scale's shape (the reference's acceptance)."""
    if (not isinstance(x, np.ndarray) or x.dtype not in _DQ_STS or output_dtype is not None
            or block_size or x.size == 0):
        return None
    s = np.asarray(x_scale)
    if s.dtype != _F32 or s.ndim > 1:
        return None
    zp = x_zero_point
    if zp is not None:
        if (not isinstance(zp, (np.ndarray, np.generic)) or zp.dtype != x.dtype
                or np.shape(zp) != s.shape or isinstance(zp, np.ma.MaskedArray)):
            return None
    ent = _VT_DQ.get(id(prof))
    if ent is None or ent[0] is not prof:
        import dataclasses
        ent = (prof, dataclasses.replace(prof, dq_subtract="exact", dq_vector_width=0),
               dataclasses.replace(prof.for_op("DequantizeLinear", tail=True), dq_vector_width=0))
        if len(_VT_DQ) > 64:
            _VT_DQ.clear()
        _VT_DQ[id(prof)] = ent
    main, tail = ent[1], ent[2]
    # the main part in one kernel pass (the exact-subtraction profile's checks and layout, the
    # kernels' scale-then-subtract form)
    res = dequantize_linear(x, x_scale, zp, axis=axis, profile=main, opset=opset, isa=isa, _sts=1)
    if res is None or res[0].dtype != _F32:
        return None
    y, name = res
    n = y.size
    cut = n - n % prof.dq_vector_width
    if cut < n:
        try:
            if s.size == 1:
                yt = _rq.dequantize_linear(x.reshape(-1)[cut:], x_scale, x_zero_point, axis=0,
                                           profile=tail, opset=opset).reshape(-1)
            else:
                # the tail's own elements with their channels' parameters, one per element (the
                # formula is elementwise): the reference over the whole tensor for its last
                # n mod w elements took 0.64 s at 16M elements
                ax = axis + x.ndim if axis < 0 else axis
                ch = (np.arange(cut, n) // _math.prod(x.shape[ax + 1:])) % s.size
                zt = None if zp is None else np.asarray(zp).reshape(-1)[ch]
                yt = _rq.dequantize_linear(x.reshape(-1)[cut:], s.reshape(-1)[ch], zt, axis=0,
                                           profile=tail, opset=opset).reshape(-1)
        except Exception:     # noqa: BLE001 - the reference decides (it raises the same way)
            return None
        y.reshape(-1)[cut:] = yt
    return y, name


def _decode_two(a, two):
    """int2 / uint2 codes (the low 2 bits of each byte) as int8 / uint8 values."""
    b = np.ascontiguousarray(a).view(np.uint8).reshape(a.shape) & np.uint8(3)   # (0-d stays 0-d)
    if two[2] < 0:
        return ((b ^ np.uint8(2)).view(np.int8) - np.int8(2)).astype(np.int8, copy=False)
    return b


_DQ_AXIS = {}   # id(profile) -> (profile, whether a "per_axis" override sets dq_* fields)


def _dq_axis_override(prof):
    ent = _DQ_AXIS.get(id(prof))
    if ent is None or ent[0] is not prof:
        has = any("per_axis" in sel.split("+") and any(str(k).startswith("dq_") for k in dict(fields))
                  for sel, fields in prof.overrides)
        if len(_DQ_AXIS) > 64:
            _DQ_AXIS.clear()
        ent = _DQ_AXIS[id(prof)] = (prof, has)   # the entry keeps the profile alive
    return ent[1]


def dequantize_linear(x, x_scale, x_zero_point=None, *, axis=1, block_size=0, output_dtype=None,
                      profile, opset=None, out=None, isa=None, _sts=0):
    """Fast DequantizeLinear; ``(y, kernel_name)`` or None.  ``_sts``: the kernels'
    fl32(fl32(x*s) - fl32(zp*s)) form (_dequantize_scale_then_subtract's main part)."""
    prof = profile
    if prof.overrides and _dq_axis_override(prof) and np.ndim(x_scale) == 1 and not block_size:
        # as the reference: a "per_axis" override with dq fields applies before anything else
        prof = prof.for_op("DequantizeLinear", per_axis=True)
    if (prof.dq_subtract == "scale_then_subtract" and getattr(prof, "dq_vector_width", 0)
            and out is None):
        if isinstance(x, np.generic):
            x = np.asarray(x)
        return _dequantize_scale_then_subtract(x, x_scale, x_zero_point, axis, block_size,
                                               output_dtype, prof, opset, isa)
    # DequantizeLinear reads the profile's own dq fields (no op / granularity overrides apply).
    # dq_subtract "float32" (onnx.reference: fl32(x) - fl32(zp), then * s in float32) equals the
    # exact subtraction for a float32 output: |x - zp| < 2^17 is exact in float32, and an int32
    # x (no zero point) converts the same way in both
    if prof.dq_subtract not in ("exact", "float32") or getattr(prof, "dq_vector_width", 0) != 0:
        return None
    if isinstance(x, np.generic):
        x = np.asarray(x)
    if type(x) is np.ndarray and x.dtype in _LOWF:
        return _dequantize_float8(x, x_scale, x_zero_point, axis, block_size, output_dtype, prof, opset,
                                  out, isa)
    if not isinstance(x, np.ndarray) or (x.dtype not in _DQ_IN and x.dtype not in _TWO) \
            or isinstance(x, np.ma.MaskedArray):
        return None
    try:
        prof.check_op("DequantizeLinear")
        if prof.qtypes is not None:
            # int32 too (the reference checks it against an explicit list: TensorRT refuses it)
            prof.check_qtype(x.dtype, "DequantizeLinear")
    except Exception:
        return None         # the reference raises the profile's error
    two = _TWO.get(x.dtype)
    if two:
        # 2-bit codes decoded to 8 bits (sign-extended for int2), the zero point likewise; the
        # type's opset is checked here, since the 8-bit type passes every opset's list
        if x.dtype not in _rq._dq_input_types(_rq._opset(opset)):
            return None
        if x_zero_point is not None:
            if not _plain(x_zero_point) or np.asarray(x_zero_point).dtype != x.dtype:
                return None
            x_zero_point = _decode_two(np.asarray(x_zero_point), two)
        x = _decode_two(x, two)
        res = dequantize_linear(x, x_scale, x_zero_point, axis=axis, block_size=block_size,
                                output_dtype=output_dtype, profile=prof, opset=opset, out=out, isa=isa)
        return None if res is None else (res[0], res[1].replace("dequantize_" + _SHORT[two[1]],
                                                                 "dequantize_" + _SHORT[two[0]], 1))
    if prof.symmetric_only and x_zero_point is not None and (
            not _plain(x_zero_point) or np.any(np.asarray(x_zero_point).astype(np.int64) != 0)):
        return None
    sv = _scalar_f32(x_scale)
    if (sv is not None and sv > 0.0 and sv != float("inf") and opset is None and output_dtype is None
            and _is_int(axis) and _is_int(block_size) and block_size == 0
            and (x_zero_point is None or (isinstance(x_zero_point, (np.ndarray, np.generic))
                                          and not isinstance(x_zero_point, np.ma.MaskedArray)
                                          and x_zero_point.dtype == x.dtype and x.dtype != np.int32
                                          and np.shape(x_zero_point) == np.shape(x_scale)))):
        # the common call, validated in a few microseconds (same acceptance as the reference)
        z = 0 if x_zero_point is None else int(np.asarray(x_zero_point).reshape(-1)[0].astype(np.int64))
        return _dq_run(x, np.array([sv], _F32), np.array([z], np.int32), _F32, 1, 1, int(x.size),
                       out, isa, 0, _sts)
    try:
        opset, s, zp = _dq_operands(x, x_scale, x_zero_point, opset)
        if output_dtype is not None:
            if opset < 23:
                return None
            out_dt = _rq.resolve_dtype(output_dtype, argname="output_dtype")
        else:
            out_dt = _F32 if s.dtype == _E8M0 else s.dtype
        if out_dt == _BF16 and (x.dtype.itemsize != 1 or _sts):
            return None
        if out_dt not in (_F32, _F16, _BF16):
            return None
        # a bfloat16 output from 8- and 4-bit x: d = x - zp (|d| <= 255) is exact in bfloat16,
        # so fl_bf16(d * s_bf16) is the kernels' float32 product (exact: 8 + 8 bits) rounded
        # once; under dq_subtract "float32" the float32 product with the float32 scale, then the
        # same rounding
        # dq_subtract "float32" with a float16 output (ORT: fl16(fl32(x - zp) * fl32(s))): the
        # kernels' float32 results, each rounded once to float16 (via32; a numpy cast of the
        # whole float32 result before session 19: 5 ns an element)
        cast_after = prof.dq_subtract == "float32" and out_dt != _F32
        if cast_after and s.dtype not in (_F32, _F16, _BF16, _E8M0):
            return None
        ax = _rq._granularity(x.shape, s, zp, axis, block_size, opset, "x_scale", "x_zero_point")
    except Exception:
        return None
    per_tensor = s.ndim == 0 or (s.ndim == 1 and s.size == 1 and not block_size)
    blocked = bool(block_size) and not per_tensor
    if not per_tensor and not blocked and s.ndim != 1:
        return None
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        sf = np.ascontiguousarray(s.reshape(-1).astype(_F32 if cast_after else out_dt).astype(_F32))
    zf = (np.zeros(sf.shape, np.int32) if zp is None
          else np.ascontiguousarray(zp.reshape(-1).astype(np.int64).astype(np.int32)))
    if per_tensor:
        sf, zf = sf[:1].copy(), zf[:1].copy()
    outer, D, inner = _layout(x.shape, ax, per_tensor)
    if D == 0:
        outer, D, inner = 0, 1, 0
        if sf.size == 0 and not blocked:   # a per-axis scale of length 0: one unread placeholder
            sf, zf = np.ones(1, _F32), np.zeros(1, np.int32)
    if _sts and (blocked or cast_after or out_dt != _F32):
        return None
    return _dq_run(x, sf, zf, out_dt, outer, D, inner, out, isa, int(block_size) if blocked else 0,
                   _sts, via32=cast_after)


def _dq_run(x, sf, zf, out_dt, outer, D, inner, out, isa, block=0, sts=0, via32=False):
    xc = np.ascontiguousarray(x)
    recycled = False
    if out is None:
        y, recycled = _new_output(x.shape, out_dt)
    else:
        if (not isinstance(out, np.ndarray) or out.dtype != out_dt or out.shape != x.shape
                or not out.flags.c_contiguous or not out.flags.writeable or not out.flags.aligned
                or np.may_share_memory(out, x)):
            return None     # the dispatcher's reference path copies into it or raises
        y = out
    cap = -1 if isa is None else _cpu._level(isa)
    xin = xc.reshape(-1)
    xin = xin.view(np.uint8) if x.dtype.itemsize == 1 else xin.view(
        np.uint16 if x.dtype.itemsize == 2 else np.int32)
    yk, oname = (y.reshape(-1).view(np.uint16), "bfloat16") if out_dt == _BF16 else (y.reshape(-1), _F_NAMES[out_dt])
    lvl = _k.dequantize(xin, _DQ_IN[x.dtype], yk, oname, sf, zf,
                        outer, D, inner, cap, 0, block, 0 if (out is None and not recycled) else -1,
                        sts, via32)
    name = kernel_name("dequantize", _DQ_IN[x.dtype], oname, lvl)
    if via32 or out_dt == _BF16:
        name = name.replace("f16__", "f16_via_f32__", 1).replace("bf16__", "bf16_via_f32__", 1)
    return y, (name.replace("dequantize_", "dequantize_sts_", 1) if sts else name)


def dynamic_quantize_linear(x, *, profile, opset=None, isa=None):
    """Fast DynamicQuantizeLinear; ``((y, y_scale, y_zero_point), kernel_name)`` or None."""
    prof = profile
    if prof.symmetric_only:
        return None
    direct = _q_profile_ok(prof)
    if not direct:
        # another QuantizeLinear formula (onnx-reference's int32 wraparound, ...): the range
        # by the kernel, then the fast QuantizeLinear under the profile, as the reference does
        try:
            prof.check_op("DynamicQuantizeLinear")
        except Exception:   # noqa: BLE001 - the reference raises the profile's error
            return None
    if isinstance(x, np.generic):
        x = np.asarray(x)
    if not isinstance(x, np.ndarray) or x.dtype != _F32 or isinstance(x, np.ma.MaskedArray):
        return None
    try:
        opset = _rq._opset(opset)
    except Exception:
        return None
    if opset < 11 or x.size == 0:
        return None
    cap = -1 if isa is None else _cpu._level(isa)
    xc = np.ascontiguousarray(x)
    mn, mx, bad, _ = _k.minmax(xc.reshape(-1), cap)
    if bad:
        return None     # the reference raises for NaN/Inf input
    scale, zp = _rq.dynamic_qparams(mn, mx, prof)       # the reference's own formula
    if not (np.isfinite(scale) and scale > 0):
        return None
    if not direct:
        r = quantize_linear(x, np.asarray(scale, _F32), np.asarray(zp, np.uint8), profile=prof,
                            opset=opset, isa=isa)
        if r is None:
            return None
        return ((r[0], np.asarray(scale, _F32), np.asarray(zp, np.uint8)),
                r[1].replace("rq_quantize_", "rq_dynamic_quantize_", 1))
    y, recycled = _new_output(x.shape, np.uint8)
    lvl = _k.quantize(xc.reshape(-1), "float32", y.reshape(-1), "uint8",
                      np.array([scale], np.float32), np.array([int(zp)], np.int32),
                      1, 1, x.size, False, cap, 0, 0, -1 if recycled else 0)
    return ((y, np.asarray(scale, _F32), np.asarray(zp, np.uint8)),
            kernel_name("dynamic_quantize", "float32", "uint8", lvl))


# ------------------------------------------------------------------------------------------
# compiled entries for the common per-tensor call (refquant._dispatch tries them first)
# ------------------------------------------------------------------------------------------
_RQ_OUT_ORDER = (np.dtype(np.uint8), np.dtype(np.int8), np.dtype(np.uint16), np.dtype(np.int16))


#: Outputs below this many bytes take the compiled entries with a fresh np.empty; larger ones
#: the glue with a recycled buffer (fresh pages there cost more than the glue's microseconds).
#: 8 MiB, where the kernels may start streaming: Zen 5, 1 thread, 1 MiB outputs (was the limit)
#: QuantizeLinear 1M elements 76 -> 63 us, DequantizeLinear 256K 23 -> 13 us.
_LEAN_MAX_BYTES = 8 << 20


def _pool_limit():
    return 1 << 62 if _POOL_OFF else max(_POOL_MIN, _LEAN_MAX_BYTES)


def quantize_entry(prof):
    """f(x, y_scale, y_zero_point, axis=1) -> (y, kernel name) or None: QuantizeLinear's common
    call (float32 x, a per-tensor or per-axis float32 scale, typed zero points or none, no
    attribute but axis, output under the buffer pool's size) checked in compiled code (_k.quantize_lean), with the RQ_QV_*
    variant the glue's _q_variant gives ``prof`` for each output type; None when ``prof``
    leaves no such call to the kernels."""
    if not hasattr(_k, "quantize_lean"):
        return None
    variants = []
    for per_axis in (False, True):
        for dt in _RQ_OUT_ORDER:
            for nz in (False, True):
                v = _q_variant(prof, per_axis, dt, nz)
                variants.append(-1 if v is None else v)
    if all(v < 0 for v in variants):
        return None
    variants = tuple(variants)
    names = {}

    def f(x, y_scale, y_zero_point, axis=1, out=None, _lean=_k.quantize_lean):
        r = _lean(x, y_scale, y_zero_point, variants, _pool_limit(), axis, out)
        if r is None:
            return None
        y, lvl, ot, v = r
        key = (lvl, ot, v)
        name = names.get(key)
        if name is None:
            name = kernel_name("quantize", "float32", _Q_OUT[_RQ_OUT_ORDER[ot]], lvl)
            if v:
                name = name.replace("__", _variant_tag(v) + "__", 1)
            names[key] = name
        return y, name
    return f


def dequantize_entry(prof):
    """As quantize_entry, for DequantizeLinear's common call (8/16-bit or int32 x, per-tensor
    float32 scale, a zero point of x's type or a Python int in its range, float32 output);
    None when ``prof`` does not let the kernels take it as the glue's quick path would."""
    if not hasattr(_k, "dequantize_lean"):
        return None
    # the profile as the reference resolves it for each call the entry may take (per tensor or
    # per axis, each input type): one formula, fl32(x - zp) * s, for all of them
    for per_axis in (False, True):
        for dt in ("uint8", "int8", "uint16", "int16", "int32"):
            q = prof.for_op("DequantizeLinear", per_axis=per_axis, dtype=dt)
            if q.dq_subtract not in ("exact", "float32") or getattr(q, "dq_vector_width", 0) != 0:
                return None
            if q.symmetric_only or getattr(q, "qtypes", None) is not None:
                return None
    try:
        prof.check_op("DequantizeLinear")
    except Exception:  # noqa: BLE001
        return None
    in_names = {0: "uint8", 1: "int8", 2: "uint16", 3: "int16", 6: "int32"}
    names = {}

    def f(x, x_scale, x_zero_point, axis=1, out=None, _lean=_k.dequantize_lean):
        r = _lean(x, x_scale, x_zero_point, _pool_limit(), axis, out)
        if r is None:
            return None
        y, lvl, it = r
        key = (lvl, it)
        name = names.get(key)
        if name is None:
            name = names[key] = kernel_name("dequantize", in_names[it], "float32", lvl)
        return y, name
    return f


def dynamic_quantize_entry(prof):
    """As quantize_entry, for DynamicQuantizeLinear's common call (a C-contiguous float32 x, no
    attributes): min / max, the reference's float32 scale / zero-point formula and the quantize
    kernel in compiled code (_k.dynamic_quantize_lean).  None when ``prof`` does not quantize
    with the onnx formula (the glue's own condition)."""
    if not hasattr(_k, "dynamic_quantize_lean") or not _q_profile_ok(prof) or prof.symmetric_only:
        return None
    try:
        prof.check_op("DynamicQuantizeLinear")
        zrs = float(np.float32(prof.dql_zero_range_scale))
    except Exception:  # noqa: BLE001
        return None
    names = {}

    def f(x, _lean=_k.dynamic_quantize_lean):
        r = _lean(x, zrs, _pool_limit())
        if r is None:
            return None
        res, lvl = r
        name = names.get(lvl)
        if name is None:
            name = names[lvl] = kernel_name("dynamic_quantize", "float32", "uint8", lvl)
        return res, name
    return f
