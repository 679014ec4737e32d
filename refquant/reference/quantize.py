"""QuantizeLinear, DequantizeLinear and DynamicQuantizeLinear (ONNX opsets 10-28), in numpy.

Semantics (``profile="onnx"``, the ONNX specification; other profiles change the
steps named in brackets, see ``refquant.profile``)::

  QuantizeLinear   y = saturate(round(x / y_scale) + y_zero_point)
    1. granularity: y_scale (and y_zero_point, same shape) is a scalar (per-tensor), a 1-D
       vector of length x.shape[axis] (per-axis, opset >= 13), or x's rank with
       ceil(D_axis / block_size) along ``axis`` (blocked, opset >= 21; the last block may be
       partial).  Each is replicated to x's shape.
    2. division precision P [q_division_precision, q_fp16_division]: the ``precision``
       attribute if given (opset >= 23), else the type of y_scale (opset >= 23), else x's type
       (opset 19-22 require x and y_scale to share a type).  int32 x is converted to P
       (float32 for a float32 scale: it rounds above 2^24).  A float8e8m0 scale (a power of
       two) divides in float32.  x and y_scale are converted to P, then v = fl_P(x / s)
       [q_scale_op: or fl_P(x * fl_P(1 / s))].  float32 stays float32.  Every conversion
       rounds once, to nearest even (ml_dtypes' own float64/integer -> bfloat16/float8/6/4
       casts round twice, through float32: refquant rounds to float32 to odd first; the
       onnx-reference profile keeps the evaluator's casts).
    3. integer targets: r = round_half_even(v) [q_rounding], computed exactly on the
       P-precision value; q = r + zp in exact integer arithmetic [q_zero_point: or
       round(fl_P(v + zp))]; q = clip(q, qmin, qmax).  Ranges: int8 [-128, 127],
       uint8 [0, 255], int16 [-32768, 32767], uint16 [0, 65535], int4 [-8, 7], uint4 [0, 15],
       int2 [-2, 1], uint2 [0, 3].  ``saturate`` is ignored for integer targets.
       Values the spec leaves open, and what ``onnx`` defines (the ORT/MLAS reading,
       never an int32-wraparound artefact): +Inf and any v beyond the range -> qmax;
       -Inf -> qmin; NaN -> qmin [q_nan, q_inf, q_overflow].
    4. float8/float6/float4 targets: v + zp (zp converted to P; for float8 a zero zp leaves v,
       so -0.0 stays -0.0 as in ORT and onnx.reference; float4/float6 add in IEEE arithmetic,
       -0.0 + 0 = +0, as onnx.reference and ONNX's test_quantizelinear_float4e2m1; a NaN v
       stays itself, so a NaN zero point cannot change its sign) [q_float_zero_point], then
       cast with round-to-nearest-even.  float8 with saturate=1: +-Inf and values beyond the
       largest finite value -> +-max, NaN -> NaN; saturate=0: the Cast table (NaN for
       e4m3fn/e4m3fnuz/e5m2fnuz, +-Inf for e5m2; -0 -> +0 for the "uz" types).  float4e2m1 and
       float6 have no Inf/NaN encoding: they always saturate and NaN becomes -0.0 (the
       conversion onnx.reference and ml_dtypes perform; the spec names no NaN encoding).
    Output dtype: y_zero_point's type, else ``output_dtype``, else uint8.

  DequantizeLinear y = (x - x_zero_point) * x_scale
    Integer x: d = x - zp exactly (int64) [dq_subtract: or fl32(x) - fl32(zp)]; d is
    converted to the output type T (``output_dtype`` at opset >= 23, else the scale's type)
    and y = fl_T(d * fl_T(scale)).  "The output type determines the precision of the
    multiplication."  float8/4/6 x: x, zp (if any) and the scale are converted to T and
    y = fl_T(fl_T(x - zp) * scale) [q_float_zero_point: "ignore" refuses a non-zero zp;
    "ignore_float8" (onnx.reference) refuses a float8 zp whose uint8 value conversion is
    non-zero, else drops it, and drops a float4e2m1 zp unread].  A float8e8m0 scale gives a
    float32 output unless ``output_dtype`` says otherwise.  int32 x: the spec says it takes no
    zero point ("supposed to be 0"); one that is given (int32) is subtracted exactly in int64
    (ONNX Runtime subtracts in int32 and wraps; onnx.reference subtracts in float32).

  DynamicQuantizeLinear (uint8):
    lo = min(0, min x), hi = max(0, max x)            (float32)
    y_scale = fl32((hi - lo) / 255), or 1.0 when hi == lo [dql_zero_range_scale]
    y_zero_point = round_half_even(clip(fl32(0 - lo / y_scale), 0, 255))
    y = QuantizeLinear(x, y_scale, y_zero_point)
    NaN or Inf in x, or a range whose float32 scale is 0 (|x| below ~1.8e-43) or Inf (range
    beyond float32): ValueError (the scale would be meaningless).

Bad input raises ``ValueError``/``TypeError`` naming the argument and the rule: a scale that
is zero, negative, NaN or infinite; a zero point of the wrong type, shape or range; axis
out of range; block_size outside the spec's rule; types the opset does not allow.
"""
from __future__ import annotations

import functools

import numpy as np
import ml_dtypes

from .._dtypes import (FLOAT_QTYPES, INTEGER_QTYPES, is_integer, is_low_float, qrange,
                       resolve_dtype, refuse_masked as _refuse_masked)
from ..profile import get_profile

__all__ = ["quantize_linear", "dequantize_linear", "dynamic_quantize_linear", "LATEST_OPSET",
           "round_half", "expand_qparam"]

LATEST_OPSET = 28

_F32 = np.dtype(np.float32)
_F16 = np.dtype(np.float16)
_F64 = np.dtype(np.float64)
_BF16 = np.dtype(ml_dtypes.bfloat16)
_E8M0 = np.dtype(ml_dtypes.float8_e8m0fnu)
_I32 = np.dtype(np.int32)
_FP4 = np.dtype(ml_dtypes.float4_e2m1fn)
_FLOAT8 = tuple(np.dtype(t) for t in (ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e4m3fnuz,
                                      ml_dtypes.float8_e5m2, ml_dtypes.float8_e5m2fnuz))


def _d(*names):
    return tuple(resolve_dtype(n) for n in names)


# Types each opset admits (onnx/defs/quantization/defs.cc, old.cc).  Cached per opset: every
# call validates against them (building the tuple took ~10 us of a small call).
@functools.lru_cache(maxsize=None)
def _q_output_types(opset):
    t = _d("int8", "uint8")
    if opset >= 19:
        t += _FLOAT8
    if opset >= 21:
        t += _d("int16", "uint16", "int4", "uint4")
    if opset >= 23:
        t += _d("float4e2m1")
    if opset >= 25:
        t += _d("int2", "uint2")
    if opset >= 28:
        t += _d("float6e2m3", "float6e3m2")
    return t


def _q_input_types(opset):
    return (_F32, _I32) if opset < 19 else (_F32, _F16, _BF16, _I32)


def _scale_types(opset):
    t = (_F32,) if opset < 19 else (_F32, _F16, _BF16)
    if opset >= 24:
        t += (_E8M0,)
    return t


@functools.lru_cache(maxsize=None)
def _dq_input_types(opset):
    return _q_output_types(opset) + (_I32,)


def _opset(opset):
    if opset is None:
        return LATEST_OPSET
    if isinstance(opset, (bool, np.bool_)) or not isinstance(opset, (int, np.integer)):
        raise TypeError(f"opset: expected an int or None, got {opset!r}")
    opset = int(opset)
    if not 10 <= opset <= LATEST_OPSET:
        raise ValueError(f"opset: {opset} is outside the supported range 10..{LATEST_OPSET}")
    return opset


def _names(types):
    from .._dtypes import onnx_name
    return ", ".join(onnx_name(t) for t in types)


# --------------------------------------------------------------------------------------------
# rounding
# --------------------------------------------------------------------------------------------
def round_half(v: np.ndarray, rule: str) -> np.ndarray:
    """Round floats to integral floats, in v's own precision, by ``rule``.

    "half_even" (RNE, np.rint), "half_away" (std::round), "half_up" (ties toward +inf).
    Exact for every finite input (v - trunc(v) is exact in floating point); NaN and
    +-Inf pass through unchanged.
    """
    v = np.asarray(v)
    if rule == "half_even":
        return np.rint(v)
    with np.errstate(invalid="ignore"):
        if rule == "half_away":
            t = np.trunc(v)
            frac = np.abs(v - t)
            return np.where(frac >= 0.5, t + np.sign(v), t).astype(v.dtype)
        if rule == "half_up":
            f = np.floor(v)
            return np.where(v - f >= 0.5, f + 1, f).astype(v.dtype)
    raise ValueError(f"unknown rounding rule {rule!r}")


def _fma_round_to(a, b, c, dtype):
    """fl_dtype(a*b + c) with a single rounding (a, b, c exactly representable in float64,
    a*b exact in float64: true for float32/float16 operands).  Uses round-to-odd in float64:
    53 >= 24 + 2 bits, so the final rounding to float32/float16 is the correctly rounded one.
    """
    a = np.asarray(a, _F64)
    b = np.asarray(b, _F64)
    c = np.asarray(c, _F64)
    p = a * b                                   # exact: <= 48 significant bits
    s = p + c
    # TwoSum error term: p + c == s + e exactly
    bb = s - p
    e = (p - (s - bb)) + (c - bb)
    bits_ = s.view(np.int64) if s.ndim else np.asarray(s).reshape(1).view(np.int64)
    odd = (bits_ & 1).astype(bool).reshape(s.shape)
    toward = np.where(e > 0, np.inf, -np.inf)
    s_odd = np.where((e != 0) & ~odd & np.isfinite(s), np.nextafter(s, toward), s)
    with np.errstate(over="ignore"):
        return s_odd.astype(dtype)


def _round_to(a, dtype):
    """``a`` (any numeric array) rounded once, to nearest even, to ``dtype``.  numpy's own
    conversions are correctly rounded, but ml_dtypes converts float64 and integers to bfloat16,
    float8, float6 and float4 through float32 -- two roundings (float64 1 + 2^-8 + 2^-30 became
    bfloat16 1.0, not 1.0078125).  Here a float64 / integer source is first rounded to float32
    *to odd* (24 >= 8 + 2 bits, so the final round-to-nearest-even is the correct one)."""
    a = np.asarray(a)
    dt = np.dtype(dtype)
    if dt.kind != "V" and dt.type.__module__ == "numpy" or a.dtype.kind not in "iuf" or (
            a.dtype.kind == "f" and a.dtype.itemsize <= 4) or a.dtype.kind == "V":
        return a.astype(dt)
    f64 = a.astype(_F64)                     # exact for integers below 2^53 (int32 x - zp)
    with np.errstate(over="ignore", invalid="ignore"):
        f = f64.astype(_F32)
        back = f.astype(_F64)
        fix = (back != f64) & np.isfinite(f) & ~(f.view(np.uint32) & 1).astype(bool)
        if fix.any():
            toward = np.where(f64 > back, np.float32(np.inf), np.float32(-np.inf))
            f = np.where(fix, np.nextafter(f, toward), f).astype(_F32)
    return f.astype(dt)


# --------------------------------------------------------------------------------------------
# quantization parameters
# --------------------------------------------------------------------------------------------
def _as_array(v, argname):
    """``v`` as a plain ndarray: a subclass is viewed as its base ndarray (np.matrix would
    otherwise turn a per-axis scale's broadcast into a matrix product); a masked array is
    refused (its mask would be ignored, and numpy.ma arithmetic leaves masked data unchanged)."""
    if v is None:
        return None
    if type(v) is np.ndarray:
        return v
    if isinstance(v, np.ndarray):
        _refuse_masked(v, argname)
        return np.asarray(v)
    try:
        return np.asarray(v)
    except Exception as exc:  # pragma: no cover - exotic objects
        raise TypeError(f"{argname}: cannot convert {type(v).__name__} to an array") from exc


def _check_scale_values(s, argname, given=None):
    """``given``: the caller's float64/int scale before its conversion to ``s.dtype`` (named in
    the message when the conversion made a valid value zero or infinite)."""
    sf = s.astype(_F64) if s.dtype != _F64 else s
    bad = ~(np.isfinite(sf) & (sf > 0))
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0]) if s.ndim else ()
        got = float(sf[bad].flat[0])
        conv = ""
        if given is not None:
            g = float(np.asarray(given, _F64)[bad].flat[0]) if s.ndim else float(given)
            if np.isfinite(g) and g > 0:
                conv = f" ({g!r} given, {got!r} once rounded to {s.dtype})"
        raise ValueError(f"{argname}: every scale must be finite and > 0; got {got!r}"
                         + (f" at index {idx}" if idx else "") + conv
                         + " (a zero, negative, NaN or infinite scale has no quantization meaning)")


def _byteorder_hint(dt, allowed_check):
    """' (byte order ...)' when dt is an allowed type stored in the other byte order."""
    dt = np.dtype(dt)
    if not dt.isnative:
        try:
            if allowed_check(dt.newbyteorder("=")):
                return (f"; its byte order is not the machine's: pass "
                        f"a.astype(a.dtype.newbyteorder('='))")
        except Exception:  # pragma: no cover - exotic dtypes
            pass
    return ""


def expand_qparam(value, x_shape, axis, block_size, *, argname):
    """Replicate a per-tensor / per-axis / blocked parameter to broadcast against ``x_shape``.

    Returns an array broadcastable to x_shape (0-d for per-tensor).
    """
    value = np.asarray(value)
    if value.ndim == 0 or (value.ndim == 1 and value.size == 1 and not block_size):
        return value.reshape(())
    r = len(x_shape)
    if not block_size:
        dims = [1] * r
        dims[axis] = value.size
        return value.reshape(dims)
    # element a of the axis takes block a // block_size (np.repeat first would allocate
    # nb * block_size entries: gigabytes for a block far longer than the axis)
    return np.take(value, np.arange(x_shape[axis]) // block_size, axis=axis)


def _granularity(x_shape, scale, zp, axis, block_size, opset, sname, zname):
    """Validate shapes of scale / zero point against x; returns the normalised axis."""
    r = len(x_shape)
    if isinstance(block_size, (bool, np.bool_)) or not isinstance(block_size, (int, np.integer)):
        raise TypeError(f"block_size: expected an int, got {block_size!r}")
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis: expected an int, got {axis!r}")
    block_size, axis = int(block_size), int(axis)
    if block_size < 0:
        raise ValueError(f"block_size: must be >= 0 (0 = not blocked), got {block_size}")
    if block_size and opset < 21:
        raise ValueError(f"block_size: blocked quantization needs opset >= 21 (opset={opset})")
    if zp is not None and zp.shape != scale.shape and not (
            not block_size and scale.size == 1 and zp.size == 1 and scale.ndim <= 1 and zp.ndim <= 1):
        # A scalar and a 1-element vector are both per-tensor parameters (ONNX Runtime and onnx's
        # reference accept the mix; ORT's own quantizer writes bias DequantizeLinear nodes with a
        # (1,) scale and a scalar zero point).
        raise ValueError(f"{zname}: shape {zp.shape} must equal {sname}'s shape {scale.shape}")
    per_tensor = scale.ndim == 0 or (scale.ndim == 1 and scale.size == 1 and not block_size)
    if per_tensor:
        return axis
    if r == 0:
        raise ValueError(f"{sname}: a 0-d input takes a scalar scale, got shape {scale.shape}")
    if not -r <= axis < r:
        raise ValueError(f"axis: {axis} is outside [-{r}, {r - 1}] for an input of rank {r}")
    axis = axis % r
    if not block_size:
        if scale.ndim != 1:
            raise ValueError(f"{sname}: shape {scale.shape} needs block_size > 0 (blocked "
                             f"quantization); per-tensor takes a scalar, per-axis a 1-D vector")
        if opset < 13:
            raise ValueError(f"{sname}: per-axis quantization needs opset >= 13 (opset={opset})")
        if scale.size != x_shape[axis]:
            raise ValueError(f"{sname}: per-axis scale has length {scale.size}, but input "
                             f"dimension axis={axis} has size {x_shape[axis]}")
        return axis
    if scale.ndim != r:
        raise ValueError(f"{sname}: blocked quantization needs a scale of the input's rank {r}, "
                         f"got shape {scale.shape}")
    for i in range(r):
        if i != axis and scale.shape[i] != x_shape[i]:
            raise ValueError(f"{sname}: blocked scale shape {scale.shape} must equal the input "
                             f"shape {tuple(x_shape)} except along axis {axis}")
    d, si = x_shape[axis], scale.shape[axis]
    lo = -(-d // si) if si else 0
    hi = (-(-d // (si - 1)) - 1) if si > 1 else None
    if si != -(-d // block_size):
        # the spec's [ceil(Di/Si), ceil(Di/(Si-1))-1] is exactly Si == ceil(Di/block_size); that
        # form also covers an empty axis (Di = 0: Si = 0 for every block_size)
        if d == 0:
            raise ValueError(f"{sname}: an empty axis {axis} (Di=0) takes Si=0 blocks, got "
                             f"Si={si}")
        if si == 0:
            raise ValueError(f"{sname}: Si=0 blocks along axis {axis} cannot cover Di={d} "
                             f"elements")
        rng = f"[{lo}, {hi}]" if hi is not None else f"[{lo}, inf)"
        raise ValueError(f"block_size: {block_size} is outside the accepted range {rng} = "
                         f"[ceil(Di/Si), ceil(Di/(Si-1))-1] for Di={d}, Si={si}")
    return axis


def _convert_scale(scale, x_dt, opset, argname, *, quantize):
    """Scale as an array of an allowed scale type (Python floats / float64 converted)."""
    s = _as_array(scale, argname)
    given = None
    if s.dtype.kind in "iu" and isinstance(scale, (np.ndarray, np.generic)):
        # a typed integer tensor (not a Python int): only where the schema allows int32 scales,
        # QuantizeLinear from opset 19 (at 19 / 21 with int32 x: y_scale shares x's type)
        if not (quantize and s.dtype == _I32 and (opset >= 23 or (opset >= 19 and x_dt == _I32))):
            raise TypeError(f"{argname}: type {s.dtype} is not allowed at opset {opset} (allowed: "
                            f"{_names(_scale_types(opset))}"
                            + ("; an int32 scale needs opset >= 23, or opset 19 / 21 with an int32 x"
                               if quantize else "") + ")")
    if s.dtype == _F64 or s.dtype.kind in "iu":
        given = s
        # Python floats / ints and float64 arrays: rounded to the input's float type (float32
        # for integer inputs) -- documented convenience, the only implicit conversion.
        with np.errstate(over="ignore"):        # beyond the float type: Inf, refused below
            s = _round_to(s, x_dt if (quantize and x_dt in (_F32, _F16, _BF16)) else _F32)
    if s.dtype not in _scale_types(opset):
        raise TypeError(f"{argname}: type {s.dtype} is not allowed at opset {opset} "
                        f"(allowed: {_names(_scale_types(opset))})"
                        + _byteorder_hint(s.dtype, lambda d: d in _scale_types(opset)))
    if s.dtype == _E8M0:
        sf = s.astype(_F32)
        if np.isnan(sf).any():
            raise ValueError(f"{argname}: float8e8m0 scale holds the NaN code 0xFF")
    else:
        _check_scale_values(s, argname, given)
    return s


# --------------------------------------------------------------------------------------------
# QuantizeLinear
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _numpy_division_type(x_dt, s_dt):
    """The dtype numpy's ``x / y_scale`` computes in (onnx.reference's division).  Not
    ``np.result_type``: float16 / bfloat16 has no common type, yet the ufunc runs its float32
    loop (and int32 / bfloat16 its float64 loop)."""
    with np.errstate(all="ignore"):
        return (np.ones(1, x_dt) / np.ones(1, s_dt)).dtype


def _division_dtype(x_dt, s_dt, precision, opset, prof):
    if precision is not None:
        if opset < 23:
            raise ValueError(f"precision: the attribute exists from opset 23 (opset={opset})")
        p = resolve_dtype(precision, argname="precision")
        if p not in (_F32, _F16, _BF16, _F64):
            raise TypeError(f"precision: must be a float type (float32, float16, bfloat16, "
                            f"float64), got {p}")
        return p
    if prof.q_division_precision == "float64":  # x and the scale widened exactly to double
        return _F64
    if prof.q_division_precision == "numpy_promotion":
        return _numpy_division_type(x_dt, s_dt)
    if x_dt in (_F16, _BF16):
        if prof.q_fp16_division == "float32" or (
                prof.q_fp16_division == "float32_below_opset23" and opset < 23):
            return _F32
    if s_dt == _E8M0:
        return _F32
    if opset >= 23:
        return s_dt
    return s_dt if x_dt == _I32 else x_dt


def _resolve_zero_point(zp, output_dtype, argname, opset):
    """Returns (zp array or None, output dtype)."""
    out = resolve_dtype(output_dtype, argname="output_dtype") if output_dtype is not None else None
    if output_dtype is not None and opset < 21:
        raise ValueError(f"output_dtype: the attribute exists from opset 21 (opset={opset})")
    if zp is None:
        return None, (out if out is not None else np.dtype(np.uint8))
    z = _as_array(zp, argname)
    if z.dtype in INTEGER_QTYPES or z.dtype in FLOAT_QTYPES:
        if out is not None and out != z.dtype:
            raise TypeError(f"output_dtype: {out} differs from {argname}'s type {z.dtype}; when "
                            f"both are given they must agree")
        return z, z.dtype
    if z.dtype.kind in "iu" and out is not None and is_integer(out):
        qmin, qmax = qrange(out)
        if z.size and (z.min() < qmin or z.max() > qmax):
            raise ValueError(f"{argname}: values must lie in [{qmin}, {qmax}] for {out}, "
                             f"got [{z.min()}, {z.max()}]")
        return z.astype(np.int64).astype(out), out
    if z.dtype.kind in "iuf" and out is not None and is_low_float(out):
        zo = _round_to(z, out)
        with np.errstate(invalid="ignore"):
            zf, back = z.astype(_F64), zo.astype(_F64)
            exact = (zf == back) | (np.isnan(zf) & np.isnan(back))
        if not exact.all():
            v = zf[~exact].flat[0] if z.ndim else float(zf)
            raise ValueError(f"{argname}: {v!r} is not representable in {out} (the zero point is "
                             f"an element of the output type; pass a value of that type)")
        return zo, out
    if out is not None:
        raise TypeError(f"{argname}: type {z.dtype} cannot give a zero point of output_dtype "
                        f"{out} (an integer output takes integer values)")
    raise TypeError(f"{argname}: type {z.dtype} is not a quantized type; pass a typed array "
                    f"(e.g. np.int8(3), np.array(3, ml_dtypes.int4)) or give output_dtype")


def quantize_linear(x, y_scale, y_zero_point=None, *, axis=1, block_size=0, output_dtype=None,
                    saturate=1, precision=None, profile="onnx", opset=None):
    """ONNX QuantizeLinear: ``y = saturate(round(x / y_scale) + y_zero_point)``.

    See the module docstring for every step, the precision of each intermediate and what
    each profile field changes.  Returns an array of the output type (ml_dtypes for
    sub-byte and float8/6/4 types, unpacked: see ``refquant.pack``).

    Parameters follow ONNX: ``x`` float32/float16/bfloat16/int32; ``y_scale`` scalar,
    1-D (per-axis) or blocked; ``y_zero_point`` of the output type (its type selects the
    output type); ``axis``, ``block_size``, ``output_dtype``, ``saturate``, ``precision`` are
    the ONNX attributes.  Python floats / float64 scales are rounded to the input's float
    type (float32 for int32 inputs) before use.
    """
    prof = get_profile(profile)
    prof.check_op("QuantizeLinear")
    opset = _opset(opset)
    x = _as_array(x, "x")
    if x.dtype not in _q_input_types(opset):
        hint = " (convert with x.astype(np.float32): refquant never picks a precision silently)" \
            if x.dtype == _F64 else _byteorder_hint(x.dtype, lambda d: d in _q_input_types(opset))
        raise TypeError(f"x: type {x.dtype} is not allowed for QuantizeLinear at opset {opset} "
                        f"(allowed: {_names(_q_input_types(opset))}){hint}")
    s_typed = np.asarray(y_scale).dtype if isinstance(y_scale, (np.ndarray, np.generic)) else None
    s = _convert_scale(y_scale, x.dtype, opset, "y_scale", quantize=True)
    if 19 <= opset < 23 and (s.dtype != x.dtype if x.dtype != _I32 else s_typed not in (None, _I32)):
        raise TypeError(f"y_scale: at opset {opset} y_scale must have x's type {x.dtype}, got "
                        f"{s_typed or s.dtype} (mixed types need opset >= 23)")
    if opset < 19 and s.ndim > 1:
        raise ValueError("y_scale: must be a scalar or a 1-D vector before opset 21")
    zp, out_dt = _resolve_zero_point(y_zero_point, output_dtype, "y_zero_point", opset)
    if out_dt not in _q_output_types(opset):
        raise TypeError(f"output type {out_dt} is not allowed for QuantizeLinear at opset {opset} "
                        f"(allowed: {_names(_q_output_types(opset))})")
    if saturate not in (0, 1, True, False):
        raise ValueError(f"saturate: must be 0 or 1, got {saturate!r}")
    if prof.symmetric_only and zp is not None and np.any(zp.astype(_F64) != 0):
        from ..profile import ProfileError
        raise ProfileError(prof.symmetric_error or
                           f"profile {prof.name!r}: non-zero zero points are not supported")
    prof.check_qtype(out_dt, "QuantizeLinear")
    axis = _granularity(x.shape, s, zp, axis, block_size, opset, "y_scale", "y_zero_point")
    prof = prof.for_op("QuantizeLinear", per_axis=bool(s.ndim == 1 and not block_size))
    if prof.q_vector_width:
        return _vector_and_tail(prof, x, y_scale, y_zero_point, dict(
            axis=axis, block_size=block_size, output_dtype=output_dtype, saturate=saturate,
            precision=precision, opset=opset))

    P = _division_dtype(x.dtype, s.dtype, precision, opset, prof)
    sb = expand_qparam(s, x.shape, axis, block_size, argname="y_scale")
    zb = None if zp is None else expand_qparam(zp, x.shape, axis, block_size, argname="y_zero_point")
    # int32 x to bfloat16 rounds once (onnx.reference's numpy/ml_dtypes cast rounds twice)
    xs = x.astype(P) if prof.q_division_precision == "numpy_promotion" else _round_to(x, P)
    ss = sb.astype(P)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if prof.q_scale_op == "divide":
            v = xs / ss
            inv = None
        else:
            inv = (np.asarray(1, P) / ss).astype(P)
            v = None if prof.q_fma else xs * inv
        v = None if v is None else np.asarray(v, P)

    if is_low_float(out_dt):
        return _to_low_float(v if v is not None else xs * inv, zb, out_dt, saturate, prof, P)
    return _to_integer(xs, inv, v, zb, out_dt, prof, P)


def _to_low_float(v, zb, out_dt, saturate, prof, P):
    with np.errstate(over="ignore", invalid="ignore"):
        mode = prof.q_float_zero_point
        if mode == "ignore_float8":
            mode = "ignore" if out_dt in _FLOAT8 else "add"
        elif mode == "add_nonzero_float8":
            mode = "add_nonzero" if out_dt in _FLOAT8 else "add"
        if zb is not None and mode in ("add", "add_nonzero"):
            zf = zb.astype(P)
            # NaN + NaN: IEEE leaves open which NaN comes out, and numpy's loops pick either
            # (by position and length); refquant keeps v's, as x86's scalar add does
            if mode == "add" and prof.q_division_precision == "numpy_promotion":
                # onnx.reference: x + zero_point in numpy's result type (float16/bfloat16 +
                # float4 -> float32), so the sum is not rounded to P first
                s_ = np.asarray(v + zb)
                v = np.asarray(np.where(np.isnan(v), v.astype(s_.dtype), s_))
            elif mode == "add":
                v = np.asarray(np.where(np.isnan(v), v, v + zf), P)   # IEEE: -0.0 + 0.0 = +0.0
            else:
                v = np.asarray(np.where((zf == 0) | np.isnan(v), v, v + zf), P)   # a zero zp keeps -0.0
        if out_dt in _FLOAT8:
            fmax = float(ml_dtypes.finfo(out_dt).max)
            if saturate or prof.q_float8_saturate0 == "saturate":   # "saturate": attribute ignored
                v = np.clip(v.astype(_F32) if P == _BF16 else v, -fmax, fmax)
            y = _cast_low(np.asarray(v), out_dt, prof)
            if not saturate and prof.q_float8_saturate0 == "onnxruntime":
                y = _ort_float8_saturate0(np.asarray(v), y, out_dt)
        else:  # float4 / float6: no Inf/NaN encoding, ml_dtypes saturates (NaN -> -0.0)
            y = _cast_low(np.asarray(v), out_dt, prof)
    return np.asarray(y, out_dt)


def _cast_low(v, out_dt, prof):
    """v (P-precision) to a float8/6/4 type with one rounding; a float64 v (precision=float64)
    would round twice through ml_dtypes -- kept for onnx.reference (numpy_promotion), whose
    saturate_cast / astype does exactly that."""
    if prof.q_division_precision == "numpy_promotion":
        return v.astype(out_dt)
    return _round_to(v, out_dt)


def _ort_float8_saturate0(v, y, out_dt):
    """ONNX Runtime's float -> float8 conversion with saturate=0 (measured, ORT 1.32): e4m3fn maps
    |v| in [480, 496) to +-448 (the cast's round-to-nearest would give NaN); e5m2 maps |v| in
    [61440, 65536) to NaN (0x7E, sign kept) where the cast gives +-Inf.  Other types: the cast."""
    a = np.abs(v.astype(_F32))
    sign = np.signbit(v.astype(_F32)).astype(np.uint8) << 7
    b = np.array(y, copy=True).view(np.uint8)
    if out_dt == np.dtype(ml_dtypes.float8_e4m3fn):
        m = (a >= 480.0) & (a < 496.0)
        b[m] = (0x7E | sign)[m] if sign.ndim else 0x7E | sign
    elif out_dt == np.dtype(ml_dtypes.float8_e5m2):
        m = (a >= 61440.0) & (a < 65536.0)
        b[m] = (0x7E | sign)[m] if sign.ndim else 0x7E | sign
    return b.view(out_dt)


def _to_integer(xs, inv, v, zb, out_dt, prof, P):
    qmin, qmax = qrange(out_dt)
    z = np.zeros((), np.int64) if zb is None else zb.astype(np.int64)
    with np.errstate(over="ignore", invalid="ignore"):
        if prof.q_zero_point == "before_rounding":
            if prof.q_fma and inv is not None:
                w = _fma_round_to(xs, inv, z, P)
            else:
                w = np.asarray(v + z.astype(P), P)
            r = round_half(w, prof.q_rounding)
            zadd = np.zeros((), np.int64)
        else:
            if v is None:  # q_fma without zp-before-rounding degenerates to a plain product
                v = np.asarray(xs * inv, P)
            r = round_half(v, prof.q_rounding)
            zadd = z
    r64 = np.asarray(r, _F64)
    shape = np.broadcast_shapes(r64.shape, np.shape(zadd))
    if prof.q_overflow == "int32_wrap":
        # onnx.reference: rint(...).astype(int32) (x86: NaN/Inf/out-of-range -> INT32_MIN),
        # then "+ zero_point" in int32 (wraps), then clip.
        ok = (r64 >= -2.0 ** 31) & (r64 < 2.0 ** 31)
        i32 = np.where(ok, np.where(ok, r64, 0), -2.0 ** 31).astype(np.int64)
        q = (i32 + zadd + 2 ** 31) % 2 ** 32 - 2 ** 31
        q = np.broadcast_to(np.clip(q, qmin, qmax), shape).copy()
    else:
        lo, hi = float(qmin) - 1.0, float(qmax) + 1.0
        zf = np.asarray(zadd, _F64)
        c = np.clip(np.nan_to_num(r64, nan=0.0), lo - zf, hi - zf)
        q = np.clip(c.astype(np.int64) + zadd, qmin, qmax)
        q = np.broadcast_to(q, shape).copy()
        if prof.q_inf != "saturate":
            q[np.broadcast_to(np.isinf(r64), shape)] = qmin if prof.q_inf == "qmin" else qmax
        if prof.q_overflow == "int64_min":  # float -> int64: |v| >= 2^63 and +-Inf -> INT64_MIN
            big = ~((r64 >= -2.0 ** 63) & (r64 < 2.0 ** 63)) & ~np.isnan(r64)
            q[np.broadcast_to(big, shape)] = qmin
    nan = np.broadcast_to(np.isnan(r64), shape)
    if nan.any() and prof.q_nan != "int32_wrap":
        if prof.q_nan == "qmin":
            q[nan] = qmin
        elif prof.q_nan == "qmax":
            q[nan] = qmax
        elif prof.q_nan == "zero":  # the code 0 whatever the zero point
            q[nan] = min(max(0, qmin), qmax)
        else:  # zero_point
            q[nan] = np.broadcast_to(np.clip(z, qmin, qmax), shape)[nan]
    return q.astype(out_dt)


def _blocks_and_tail(op, func, width_field, prof, x, scale, zero_point, kw):
    """``<width_field>`` = w > 0: full blocks of w elements (flattened, C order) follow the
    profile's fields; the last n mod w elements follow its "tail" override (an engine's scalar
    remainder loop).  Both halves are the ordinary op with the width set to 0."""
    import dataclasses
    w = getattr(prof, width_field)
    main = dataclasses.replace(prof, **{width_field: 0})
    tail = dataclasses.replace(prof.for_op(op, tail=True), **{width_field: 0})
    y = func(x, scale, zero_point, profile=main, **kw)
    n = y.size
    cut = n - n % w
    if cut < n:
        yt = func(x, scale, zero_point, profile=tail, **kw)
        flat = y.reshape(-1).copy()
        flat[cut:] = yt.reshape(-1)[cut:]
        y = flat.reshape(y.shape)
    return y


def _vector_and_tail(prof, x, y_scale, y_zero_point, kw):
    """q_vector_width = w > 0 (see ``_blocks_and_tail``)."""
    return _blocks_and_tail("QuantizeLinear", quantize_linear, "q_vector_width", prof, x, y_scale,
                            y_zero_point, kw)


def _dq_vector_and_tail(prof, x, x_scale, x_zero_point, kw):
    """dq_vector_width = w > 0 (see ``_blocks_and_tail``)."""
    return _blocks_and_tail("DequantizeLinear", dequantize_linear, "dq_vector_width", prof, x,
                            x_scale, x_zero_point, kw)


# --------------------------------------------------------------------------------------------
# DequantizeLinear
# --------------------------------------------------------------------------------------------
def dequantize_linear(x, x_scale, x_zero_point=None, *, axis=1, block_size=0, output_dtype=None,
                      profile="onnx", opset=None):
    """ONNX DequantizeLinear: ``y = (x - x_zero_point) * x_scale``.

    The output type (``output_dtype`` at opset >= 23, else x_scale's type) sets the
    precision of the multiplication; the subtraction is exact.  See the module docstring.
    """
    prof = get_profile(profile)
    prof.check_op("DequantizeLinear")
    # a "per_axis" override (e.g. LiteRT's per-channel DEQUANTIZE, the reference kernel) applies
    # before the vector blocks are formed, as for QuantizeLinear
    prof = prof.for_op("DequantizeLinear", per_axis=bool(np.ndim(x_scale) == 1 and not block_size))
    if prof.dq_vector_width:
        return _dq_vector_and_tail(prof, x, x_scale, x_zero_point, dict(
            axis=axis, block_size=block_size, output_dtype=output_dtype, opset=opset))
    opset = _opset(opset)
    x = _as_array(x, "x")
    if x.dtype not in _dq_input_types(opset):
        raise TypeError(f"x: type {x.dtype} is not allowed for DequantizeLinear at opset {opset} "
                        f"(allowed: {_names(_dq_input_types(opset))})"
                        + _byteorder_hint(x.dtype, lambda d: d in _dq_input_types(opset)))
    s = _convert_scale(x_scale, x.dtype, opset, "x_scale", quantize=False)
    if opset < 21 and s.ndim > 1:
        raise ValueError("x_scale: must be a scalar or a 1-D vector before opset 21")
    zp = None
    if x_zero_point is not None:
        zp = _as_array(x_zero_point, "x_zero_point")
        if zp.dtype != x.dtype:
            if zp.dtype.kind in "iu" and zp.dtype not in INTEGER_QTYPES and is_integer(x.dtype) \
                    and x.dtype != _I32:
                qmin, qmax = qrange(x.dtype)
                if zp.size and (zp.min() < qmin or zp.max() > qmax):
                    raise ValueError(f"x_zero_point: values must lie in [{qmin}, {qmax}] for "
                                     f"{x.dtype}, got [{zp.min()}, {zp.max()}]")
                zp = zp.astype(np.int64).astype(x.dtype)
            else:
                raise TypeError(f"x_zero_point: type {zp.dtype} must equal x's type {x.dtype}")
    if output_dtype is not None:
        if opset < 23:
            raise ValueError(f"output_dtype: DequantizeLinear has it from opset 23 (opset={opset})")
        out_dt = resolve_dtype(output_dtype, argname="output_dtype")
        if out_dt not in (_F32, _F16, _BF16):
            raise TypeError(f"output_dtype: must be float32, float16 or bfloat16, got {out_dt}")
    else:
        out_dt = _F32 if s.dtype == _E8M0 else s.dtype
    if prof.symmetric_only and zp is not None and np.any(zp.astype(_F64) != 0):
        from ..profile import ProfileError
        raise ProfileError(prof.symmetric_error or
                           f"profile {prof.name!r}: non-zero zero points are not supported")
    if x.dtype != _I32 or prof.qtypes is not None:
        # int32 (a bias DQ) is checked only against an explicit qtypes list (TensorRT's parser
        # rejects int32 DQ inputs: lint RQ105)
        prof.check_qtype(x.dtype, "DequantizeLinear")
    axis = _granularity(x.shape, s, zp, axis, block_size, opset, "x_scale", "x_zero_point")
    sb = expand_qparam(s, x.shape, axis, block_size, argname="x_scale")
    zb = None if zp is None else expand_qparam(zp, x.shape, axis, block_size,
                                               argname="x_zero_point")
    if zb is not None and is_low_float(x.dtype) and prof.q_float_zero_point == "ignore":
        if np.any(zp.astype(_F32) != 0):
            raise ValueError("x_zero_point: must be zero for float8/float4/float6 inputs under "
                             f"profile {prof.name!r} (the engine ignores the zero point)")
        zb = None
    elif zb is not None and prof.q_float_zero_point == "ignore_float8" and x.dtype in _FLOAT8:
        # onnx.reference: the check is zp.astype(uint8) == 0 (a value cast, so |zp| < 1 passes)
        with np.errstate(invalid="ignore", over="ignore"):
            if np.any(zp.astype(np.uint8) != 0):
                raise ValueError(f"x_zero_point: must be zero for float8 inputs under profile "
                                 f"{prof.name!r} (onnx.reference rejects a zero point whose "
                                 f"uint8 conversion is non-zero)")
        zb = None
    elif zb is not None and prof.q_float_zero_point == "ignore_float8" and x.dtype == _FP4:
        zb = None                    # onnx.reference skips float4e2m1's zero point silently
    with np.errstate(over="ignore", invalid="ignore"):
        if prof.dq_subtract == "float32":
            dx = x.astype(_F32)
            if zb is not None:
                dx = dx - zb.astype(_F32)
            y = np.asarray(dx * sb.astype(_F32) if sb.dtype != _F64 else dx * sb)
            return np.asarray(y.astype(out_dt), out_dt)
        if is_integer(x.dtype) and prof.dq_subtract == "scale_then_subtract":
            # fl(fl(x * s) - fl(zp * s)): the zero point's product is precomputed
            y = np.asarray(_round_to(x, out_dt) * sb.astype(out_dt), out_dt)
            if zb is not None:
                y = np.asarray(y - np.asarray(_round_to(zb, out_dt) * sb.astype(out_dt), out_dt), out_dt)
        elif is_integer(x.dtype):
            d = x.astype(np.int64)
            if zb is not None:
                d = d - zb.astype(np.int64)
            y = _round_to(d, out_dt) * sb.astype(out_dt)     # int32 d to bfloat16: one rounding
        else:
            d = x.astype(out_dt)
            if zb is not None:
                d = np.asarray(d - zb.astype(out_dt), out_dt)
            y = d * sb.astype(out_dt)
    return np.asarray(y, out_dt)


# --------------------------------------------------------------------------------------------
# DynamicQuantizeLinear
# --------------------------------------------------------------------------------------------
def dynamic_qparams(xmin, xmax, prof):
    """DynamicQuantizeLinear's (y_scale float32, y_zero_point uint8) from the input's min/max,
    every step in float32 (shared by the reference and the fast kernels' glue)."""
    qmin, qmax = 0, 255
    hi = np.float32(max(0.0, float(xmax)))
    lo = np.float32(min(0.0, float(xmin)))
    if hi == lo:
        scale = np.float32(prof.dql_zero_range_scale)
    else:
        with np.errstate(over="ignore"):          # a range beyond float32: Inf, refused by the caller
            scale = np.float32(np.float32(hi - lo) / np.float32(qmax - qmin))
    if not (np.isfinite(scale) and scale > 0):
        return scale, np.uint8(0)                 # refused by the callers
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        izp = np.float32(np.float32(qmin) - np.float32(lo / scale))
    zp = np.uint8(np.rint(np.clip(izp, np.float32(qmin), np.float32(qmax))))
    return scale, zp


def dynamic_quantize_linear(x, *, profile="onnx", opset=None):
    """ONNX DynamicQuantizeLinear (uint8): returns ``(y, y_scale, y_zero_point)``.

    y_scale = (max(0, max x) - min(0, min x)) / 255 in float32 (1.0 when the range is
    empty, profile field ``dql_zero_range_scale``); y_zero_point =
    RNE(clip(0 - min/y_scale, 0, 255)); y = QuantizeLinear(x, y_scale, y_zero_point).
    """
    prof = get_profile(profile)
    prof.check_op("DynamicQuantizeLinear")
    opset = _opset(opset)
    if opset < 11:
        raise ValueError(f"opset: DynamicQuantizeLinear exists from opset 11 (opset={opset})")
    x = _as_array(x, "x")
    if x.dtype != _F32:
        raise TypeError(f"x: DynamicQuantizeLinear takes float32, got {x.dtype}")
    if x.size and not np.isfinite(x).all():
        raise ValueError("x: DynamicQuantizeLinear of an input holding NaN or Inf is undefined "
                         "(the range, hence the scale, would not be finite)")
    scale, zp = dynamic_qparams(x.min() if x.size else 0.0, x.max() if x.size else 0.0, prof)
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"x: DynamicQuantizeLinear's scale (max(0, max x) - min(0, min x)) / 255 = "
                         f"{float(scale)!r} is not a finite positive float32 (range "
                         f"[{float(x.min())!r}, {float(x.max())!r}])")
    y = quantize_linear(x, np.asarray(scale, _F32), np.asarray(zp, np.uint8), profile=prof,
                        opset=opset)
    return y, np.asarray(scale, _F32), np.asarray(zp, np.uint8)
