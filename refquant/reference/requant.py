"""Requantization: the int32 accumulator -> quantized output epilogue (reference).

Semantics block
===============

Every QLinear op (QLinearMatMul, QLinearConv, com.microsoft QGemm) ends with

    y = saturate(round(acc' * M) + y_zp)        acc' = acc + bias (int32)

where ``acc`` is the exact int32 accumulator (two's-complement wraparound, see
``gemm.py``) and ``M = a_scale * b_scale / y_scale`` is the real multiplier.  The
ONNX specification leaves the precision of every step open; a ``Profile`` pins
each one.  The steps, in order, and the fields that choose them:

1. Multiplier (``form_multiplier``; field ``rq_multiplier``)
   - ``"fp32"`` [onnx]: ``M = fl32(fl32(a_s * b_s) / y_s)``, left to right, every
     operation in float32 (ORT ``QLinearMatMul::Compute`` / ``QLinearConv``
     ``ComputeOutputScale``; PyTorch fbgemm; XNNPACK).  QGemm's alpha:
     ``fl32(fl32(fl32(alpha * a_s) * b_s) / y_s)`` (ORT ``QGemm::ComputeOutputScale``).
     A negative alpha gives a negative M, which the float method applies as is (MLAS
     multiplies, clamps and rounds with the sign; checked live, onnxruntime 1.32);
     the fixed-point method refuses it (ValueError naming ``multiplier``).
   - ``"fp32_reciprocal"``: ``fl32(fl32(a_s * b_s) * fl32(1 / y_s))`` (PyTorch QNNPACK).
   - ``"fp64"``: ``double(a_s) * double(b_s) / double(y_s)`` (TFLite; with alpha,
     ``double(alpha) * double(a_s) * ...``).  Float16/bfloat16 scales are widened exactly.
   - ``"fp64_f32product"``: ``double(fl32(a_s * b_s)) / double(y_s)`` (TFLite's
     ``GetQuantizedConvolutionMultipler``, whose product is a float32 one: the per-tensor
     FULLY_CONNECTED multiplier of the optimized kernels and the uint8 CONV_2D multiplier;
     measured, LiteRT 2.3.0: a multiplier just below 2^-9 vs exactly 2^-9 changes the result).
   - ``"onednn"`` (oneDNN through torch/ideep): no single multiplier; ``requantize`` gets the
     scales (``scales=(a_s, b_s, y_s)``) and computes
     ``v = fl32(fl32(fl32(fl32(acc') * a_s') * b_s') + b) * fl32(1 / y_s)`` with
     ``s' = fl32(1 / fl32(1 / s))`` (torch hands ideep reciprocal scales) and the float bias
     ``b`` in real units added after the scales.  ``form_multiplier`` returns the "fp32" M.

2. Bias (field ``rq_bias``)
   - ``"int32"`` [onnx]: ``acc' = wrap32(acc + bias)``; an int32 add that wraps like
     the hardware (MLAS adds the bias with ``paddd``).
   - ``"float"`` (fbgemm ``ReQuantizeOutput``): ``v = fl32(fl32(acc) + fl32(b / fl32(a_s*w_s)))``
     for a float bias ``b`` (``bias_scale`` = the fl32 product a_s*w_s), or
     ``fl32(fl32(acc) + fl32(bias))`` for an integer bias (already in accumulator units).
   - ``"float_rcp_fma"`` (fbgemm's per-tensor ``requantizeOutputProcessingAvx2``: the bias times
     ``set1(1.0 / act_times_w_scale)``, added to the accumulator by one fused multiply-add):
     ``v = fma(b, fl32(1 / fl32(a_s*w_s)), fl32(acc))``, rounded once to float32.  A subnormal
     a_s*w_s makes the reciprocal infinite: ``v`` is +-Inf (NaN for b = 0), then INT32_MIN.
     An integer bias as ``"float"``.
   - ``"float_after_scaling"``: ``v = fl(fl(acc) * M) + fl(b / y_s)`` (float bias,
     ``bias_scale`` = y_s) or ``fl(fl(acc)*M) + fl(fl(bias) * M)`` (integer bias).

3. Float method (``rq_method="float"``) [onnx]
   - accumulator conversion (``rq_acc_to_float``): ``"float32"`` [onnx] = ``fl32(acc')``
     (cvtdq2ps: rounds to nearest even once |acc'| > 2^24); ``"float64"`` = exact.
   - product (``rq_precision``): ``"float32"`` [onnx] = ``fl32(fl32(acc') * fl32(M))``;
     ``"float64"`` = ``double(acc') * double(M)`` (exact acc when rq_acc_to_float is
     float64; a float32 M is widened exactly).  With rq_precision="float32" the
     accumulator is always fl32(acc'), whatever rq_acc_to_float says.
   - ``rq_epilogue_dtype="float16"``: the scaled value is rounded to float16
     (``fl16(v)``; a float bias after scaling is added in float16) before the zero
     point and the rounding.
   - zero point (``rq_zero_point``): ``"after_rounding"`` [onnx] = ``round(v) + zp``;
     ``"before_rounding"`` (onnx.reference) = ``round(v + zp)``, the sum in the product
     precision.
   - rounding (``rq_rounding``): ``"half_even"`` [onnx] (RNE, cvtps2dq / lrintf /
     np.rint), ``"half_away"`` (std::round), ``"half_up"`` (toward +inf at ties).
   - saturation: clamp to [qmin, qmax] of ``output_dtype`` (MLAS clamps in float to
     [qmin - zp, qmax - zp] before cvtps2dq: the same integers).
   - out of int32 (``rq_float_to_int``): ``"saturate"`` [onnx] as above, whatever the
     magnitude; ``"int32_min"``: a rounded value outside [-2^31, 2^31) gives qmin (fbgemm and
     QNNPACK convert with cvtps2dq before any clamp: INT32_MIN, then saturating packs;
     measured live, torch 2.13 fbgemm/x86/qnnpack, with y_scale tiny against a_s*b_s);
     ``"int32_min_wrap"``: INT32_MIN, then ``+ zp`` in int32 with wraparound, then the clamp
     (TFLite's reference FULLY_CONNECTED: ``static_cast<int32_t>(round(double))`` then
     ``+= output_offset``; qmin, except qmax for a negative zero point);
     ``"int32_min_wrap_negative"``: the same below -2^31 only, values above 2^31 saturate
     (XNNPACK's AVX-512 VNNI qs8 GEMM: ``min(v, qmax - zp)`` in float, cvtps2dq, ``+ zp``
     with ``_mm512_add_epi32``, then packs; measured: int8, zp < 0, bias near INT32_MIN
     and a large multiplier give 127 where the spec gives -128).
   - NaN (``rq_nan``): a NaN scaled value arises only from a NaN float bias, or from
     inf - inf (fl(acc*M) overflowing against an infinite scaled bias, or in the float16
     epilogue).  ``"int32_min"`` [onnx]: the conversion gives INT32_MIN like any value
     outside int32, then ``rq_float_to_int`` applies (qmin when it saturates; measured live,
     torch 2.13 fbgemm: NaN and +-inf float biases give qmin); ``"zero"``: the conversion gives
     0 and the zero point is added after it (GPU ``cvt.rni.sat``: TensorRT; with
     rq_zero_point="before_rounding" the result is saturate(0)); ``"qmax"``: oneDNN clamps
     with ``vminps(v, qmax)``, which returns the bound for NaN (measured live, torch 2.13
     onednn and x86 conv: 255 for uint8).

4. Fixed-point method (``rq_method="fixed_point"``, gemmlowp / TFLite)
   - ``QuantizeMultiplier(double(M))``: ``q, shift = frexp(M)``;
     ``qm = round_half_away(q * 2^31)``; ``qm == 2^31 -> qm = 2^30, shift += 1``;
     ``shift < -31 -> qm = 0, shift = 0``; single rounding also caps ``shift > 30`` to
     ``shift = 30, qm = 2^31 - 1``.
   - ``MultiplyByQuantizedMultiplier(acc', qm, shift)`` (field ``rq_fixed_rounding``):
     ``"double"``: ``RoundingDivideByPOT(SRDHM(wrap32(acc' * 2^max(shift,0)), qm), max(-shift,0))``;
     SRDHM = ``(x*qm + nudge) / 2^31`` truncated toward zero, nudge = 2^30 or 1 - 2^30
     (round half up), saturating INT32_MIN*INT32_MIN; RoundingDivideByPOT rounds half away.
     ``"single"`` (TFLITE_SINGLE_ROUNDING): ``(acc' * qm + 2^(30-shift)) >> (31-shift)``
     (half up, once), cast to int32.  ``"double_half_up"`` (ruy x86):
     ``RHU(RHU(acc'*qm / 2^31) / 2^-shift)``, both steps half up, exact in int64.
   - then ``+ zp`` (int64) and saturation.  The zero point is always added after the
     multiplication (rq_zero_point, rq_rounding, rq_precision are float-method fields).

Every intermediate dtype: acc / acc' int32 (wrap); M float32 (fp32, fp32_reciprocal)
or float64 (fp64); v float32, float64 or float16 as above; qm int32, shift int; the
result is computed in int64 / float and cast to ``output_dtype`` after saturation.

The ``onnx`` profile is the onnxruntime (MLAS) reading, measured bit-exact against
ORT 1.32 (``MlasRequantizeOutput``: cvtdq2ps(acc + bias) * fp32 scale, clamp,
cvtps2dq, + zp).  ``onnx-reference`` (onnx.reference.ReferenceEvaluator) differs in
three named fields: rq_acc_to_float="float64", rq_precision="float64" (an int32 array
times a float32 0-d array promotes to float64 in NumPy 2) and
rq_zero_point="before_rounding" (``rint(acc * M + zp)``); its M is the same fp32 value.
"""
from __future__ import annotations

import numpy as np

from .._dtypes import resolve_dtype, qrange, is_integer, refuse_masked
from ..profile import get_profile, ProfileError

__all__ = ["requantize", "form_multiplier", "quantize_multiplier",
           "multiply_by_quantized_multiplier", "round_to_int", "check_scale", "wrap_int32"]

_I32_MIN = -(2 ** 31)
_I32_MAX = 2 ** 31 - 1


# --------------------------------------------------------------------------- helpers

def wrap_int32(x) -> np.ndarray:
    """Two's-complement wrap of an integer array (any width) to int32."""
    x = np.asarray(x)
    if x.dtype == np.int32:
        return x
    x = x.astype(np.int64, copy=False)
    return (x & 0xFFFFFFFF).astype(np.uint32).view(np.int32)


def check_scale(scale, argname: str) -> np.ndarray:
    """Validate a scale and return it as float32 (the type ONNX stores; float16/bfloat16 widen
    exactly, Python floats and float64 round to float32).  Every element finite and > 0."""
    if scale is None:
        raise ValueError(f"{argname}: a scale is required")
    refuse_masked(scale, argname)
    s = np.asarray(scale)
    if s.dtype.kind in "iub" or s.dtype == object or s.dtype.kind in "SUc":
        raise TypeError(f"{argname}: scales must be float (float32, float16, bfloat16), got {s.dtype}")
    try:
        with np.errstate(over="ignore"):     # a float64 beyond float32: Inf, refused just below
            s32 = s.astype(np.float32)
    except (TypeError, ValueError):
        raise TypeError(f"{argname}: cannot interpret dtype {s.dtype} as a float scale") from None
    if not np.all(np.isfinite(s32)):
        raise ValueError(f"{argname}: scales must be finite (got NaN or Inf, or beyond float32's range)")
    if np.any(s32 <= 0):
        raise ValueError(f"{argname}: scales must be > 0 (got {s32[s32 <= 0].ravel()[:4].tolist()})")
    return s32


def _as_f32(s):
    return np.asarray(s).astype(np.float32)


def _narrow_scale_type(*scales):
    """float16 / bfloat16 when every given scale (None: absent) is a numpy array or scalar of
    that one type, else None (float32)."""
    dts = {np.asarray(s).dtype for s in scales if s is not None}
    if len(dts) == 1 and all(isinstance(s, (np.ndarray, np.generic)) for s in scales if s is not None):
        dt = dts.pop()
        if dt == np.float16 or dt == resolve_dtype("bfloat16"):
            return dt
    return None


def fma_f32(a, b, c) -> np.ndarray:
    """fl32(a * b + c) rounded once (a fused multiply-add) for float32 arrays, elementwise.

    a * b is exact in float64 (24 + 24 bits).  The sum is rounded to float64 *to odd* (TwoSum's
    error term moves an inexact even result one ulp toward the exact sum), and that to float32
    is then the correct rounding (53 >= 24 + 2).  Inf / NaN operands give the IEEE results."""
    a = np.asarray(a, np.float32).astype(np.float64)
    b = np.asarray(b, np.float32).astype(np.float64)
    c = np.asarray(c, np.float32).astype(np.float64)
    with np.errstate(all="ignore"):
        p = a * b
        s = p + c
        bb = s - p
        err = (p - (s - bb)) + (c - bb)
        fix = np.isfinite(s) & (err != 0) & ((s.view(np.int64) & 1) == 0)
        if np.any(fix):
            s = np.where(fix, np.nextafter(s, np.where(err > 0, np.inf, -np.inf)), s)
        return s.astype(np.float32)


def form_multiplier(a_scale, b_scale, y_scale=None, *, profile="onnx", alpha=None,
                    names=("a_scale", "b_scale", "y_scale")) -> np.ndarray:
    """The requantization multiplier M = (alpha *) a_scale * b_scale / y_scale per ``rq_multiplier``.

    Returns a float32 array (``"fp32"``, ``"fp32_reciprocal"``) or float64 array
    (``"fp64"``, ``"fp64_f32product"``), broadcast over the shapes of the scales.  ``y_scale=None`` omits the
    division (QGemm with float output).
    """
    p = get_profile(profile)
    narrow = _narrow_scale_type(a_scale, b_scale, y_scale) if p.rq_multiplier == "scale_type" else None
    a = check_scale(a_scale, names[0])
    b = check_scale(b_scale, names[1])
    y = None if y_scale is None else check_scale(y_scale, names[2])
    if alpha is not None:
        alpha = float(alpha)
        if not np.isfinite(alpha):
            raise ValueError(f"alpha: must be finite, got {alpha}")
    if p.rq_multiplier == "fp64":
        m = np.asarray(a, dtype=np.float64)
        if alpha is not None:
            m = np.float64(alpha) * m
        m = m * np.asarray(b, dtype=np.float64)
        if y is not None:
            m = m / np.asarray(y, dtype=np.float64)
        return np.asarray(m, dtype=np.float64)
    if p.rq_multiplier == "fp64_f32product":
        with np.errstate(over="ignore", under="ignore"):
            m = _as_f32(a)
            if alpha is not None:
                m = np.float32(alpha) * m
            m = (m * _as_f32(b)).astype(np.float32).astype(np.float64)
        if y is not None:
            m = m / np.asarray(y, dtype=np.float64)
        return np.asarray(m, dtype=np.float64)
    if narrow is not None:
        # each operation in float32, rounded to T: the single rounding in T (24 >= 2 * 11 + 2
        # bits, so the double rounding is innocuous for *, /), as numpy / ml_dtypes compute T
        with np.errstate(over="ignore", under="ignore"):
            m = _as_f32(a)
            if alpha is not None:
                m = (np.float32(alpha) * m).astype(narrow).astype(np.float32)
            m = (m * _as_f32(b)).astype(narrow).astype(np.float32)
            if y is not None:
                m = (m / _as_f32(y)).astype(narrow).astype(np.float32)
        return np.asarray(m, dtype=np.float32)
    with np.errstate(over="ignore", under="ignore"):
        m = _as_f32(a)
        if alpha is not None:
            m = np.float32(alpha) * m
        m = (m * _as_f32(b)).astype(np.float32)
        if y is not None:
            if p.rq_multiplier in ("fp32", "scale_type"):
                m = (m / _as_f32(y)).astype(np.float32)
            else:  # fp32_reciprocal
                m = (m * (np.float32(1.0) / _as_f32(y)).astype(np.float32)).astype(np.float32)
    return np.asarray(m, dtype=np.float32)


def round_to_int(v, rule: str) -> np.ndarray:
    """Round a float array to integral values (same float dtype) with ``rule``.

    "half_even" (RNE), "half_away" (ties away from zero), "half_up" (ties toward +inf).
    Exact: ties are detected with ``v - trunc(v)``, which is always representable.
    """
    v = np.asarray(v)
    r = np.rint(v)
    if rule == "half_even":
        return r
    t = np.trunc(v)
    tie = np.abs(v - t) == 0.5
    if not np.any(tie):
        return r
    if rule == "half_away":
        alt = t + np.sign(v)
    elif rule == "half_up":
        alt = np.ceil(v)
    else:
        raise ValueError(f"rounding rule {rule!r}: expected half_even, half_away or half_up")
    return np.where(tie, alt, r)


def quantize_multiplier(m, *, single_rounding: bool = False):
    """TFLite ``QuantizeMultiplier(double m)``: (qm int64 array, shift int64 array).

    m = qm * 2^(shift - 31), qm in [2^30, 2^31) (or 0).  Elementwise.
    """
    m = np.asarray(m, dtype=np.float64)
    if np.any(m < 0) or not np.all(np.isfinite(m)):
        raise ValueError("multiplier: must be finite and >= 0 for fixed-point requantization")
    q, shift = np.frexp(m)
    shift = shift.astype(np.int64)
    qf = q * 2.0 ** 31                        # exact in double
    qm = (np.floor(qf + 0.5)).astype(np.int64)  # half away (qf >= 0; qf + 0.5 exact below 2^52)
    over = qm == 2 ** 31
    qm = np.where(over, qm // 2, qm)
    shift = np.where(over, shift + 1, shift)
    zero = (m == 0) | (shift < -31)
    qm = np.where(zero, 0, qm)
    shift = np.where(zero, 0, shift)
    if single_rounding:
        big = shift > 30
        shift = np.where(big, 30, shift)
        qm = np.where(big, 2 ** 31 - 1, qm)
    return qm.astype(np.int64), shift.astype(np.int64)


def _srdhm(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul on int32 values held in int64."""
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    num = ab + nudge
    # division by 2^31 truncating toward zero
    q = np.where(num >= 0, num >> 31, -((-num) >> 31))
    sat = (a == _I32_MIN) & (b == _I32_MIN)
    return np.where(sat, _I32_MAX, q)


def _rdpot(x, e):
    """gemmlowp RoundingDivideByPOT (half away from zero), e >= 0 elementwise."""
    mask = (np.int64(1) << e) - 1
    rem = x & mask
    thr = (mask >> 1) + (x < 0)
    return (x >> e) + (rem > thr)


def multiply_by_quantized_multiplier(x, qm, shift, rounding: str = "double") -> np.ndarray:
    """TFLite/gemmlowp/ruy ``MultiplyByQuantizedMultiplier`` on int32 ``x``; int64 result.

    rounding: "double" (SRDHM + RoundingDivideByPOT), "single" (TFLITE_SINGLE_ROUNDING),
    "double_half_up" (ruy x86: half up twice).
    """
    x = np.asarray(x).astype(np.int64)
    qm = np.asarray(qm, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    if rounding == "single":
        total = 31 - shift
        rnd = np.int64(1) << (total - 1)
        # x*qm < 2^62 and rnd <= 2^61: exact in int64; arithmetic shift = floor
        return wrap_int32((x * qm + rnd) >> total).astype(np.int64)
    if rounding == "double":
        # TFLite reference: x * (1 << left_shift) in int32.  A left shift >= 32 (multiplier
        # >= 2^31: a tiny output scale) is undefined in C++; x86 masks the count to 5 bits,
        # which is what LiteRT 2.3.0's reference CONV_2D computes (measured, shifts 89..136)
        xs = wrap_int32(x << (left & 31)).astype(np.int64)
        return _rdpot(_srdhm(xs, qm), right)
    xs = wrap_int32(x << left).astype(np.int64)
    if rounding == "double_half_up":
        h = (xs * qm + (1 << 30)) >> 31
        rnd = np.where(right > 0, np.int64(1) << np.maximum(right - 1, 0), 0)
        return (h + rnd) >> right
    raise ValueError(f"rq_fixed_rounding {rounding!r}")


def _per_axis(arr, ndim, axis, argname, n_axis):
    """Reshape a 1-D per-channel array to broadcast along ``axis`` of an ndim array."""
    arr = np.asarray(arr)
    if arr.ndim == 0 or arr.size == 1:
        return arr.reshape(())
    if arr.ndim == 1:
        if ndim == 0:
            raise ValueError(f"{argname}: per-channel values need a non-scalar accumulator")
        ax = axis % ndim
        if arr.shape[0] != n_axis[ax]:
            raise ValueError(f"{argname}: {arr.shape[0]} values, but axis {axis} of the "
                             f"accumulator has {n_axis[ax]} channels")
        shape = [1] * ndim
        shape[ax] = arr.shape[0]
        return arr.reshape(shape)
    try:
        np.broadcast_shapes(arr.shape, tuple(n_axis))
    except ValueError:
        raise ValueError(f"{argname}: shape {arr.shape} does not broadcast to the accumulator "
                         f"shape {tuple(n_axis)}") from None
    return arr


def _zero_point_value(y_zero_point, out_dt, argname="y_zero_point"):
    if y_zero_point is None:
        return np.int64(0)
    z = np.asarray(y_zero_point)
    if z.dtype.kind not in "iu" and not is_integer(z.dtype):
        if z.dtype.kind == "f" and np.all(z == np.round(z)):
            z = z.astype(np.int64)
        else:
            raise TypeError(f"{argname}: integer zero point expected, got {z.dtype}")
    z = z.astype(np.int64)
    lo, hi = qrange(out_dt)
    if np.any(z < lo) or np.any(z > hi):
        raise ValueError(f"{argname}: zero point outside the range [{lo}, {hi}] of {out_dt}")
    return z


# --------------------------------------------------------------------------- requantize

def requantize(acc, multiplier, y_zero_point, *, output_dtype, bias=None, profile="onnx",
               axis=-1, bias_scale=None, scales=None):
    """Requantize an int32 accumulator: ``y = saturate(round((acc + bias) * M) + y_zero_point)``.

    Parameters
    ----------
    acc : integer array (values must fit int32; held as int32, wrapping on the bias add).
    multiplier : M, a scalar, a 1-D per-channel vector along ``axis``, or an array that
        broadcasts to ``acc``.  float32 for the float32 epilogues; a float64 value is
        rounded to float32 when ``rq_precision="float32"`` and used as is otherwise.
    y_zero_point : scalar (or per-channel like ``multiplier``) zero point, or None (0).
    output_dtype : integer output type (numpy / ml_dtypes / ONNX name or enum).
    bias : optional int32 bias (added to acc, ``rq_bias="int32"``) or, for the float bias
        modes, a float bias (divided by ``bias_scale``) or an integer bias in accumulator
        units.  Scalar, per-channel along ``axis`` or broadcastable.
    profile : profile name or ``Profile``; the rq_* fields choose every step (module doc).
    axis : the channel axis that 1-D per-channel multipliers / zero points / biases run
        along (default: last, the GEMM column axis; QLinearConv uses 1).
    bias_scale : for ``rq_bias="float"``, the float32 a_s*w_s a float bias is divided by;
        for ``"float_after_scaling"``, y_s.  None: a float bias is already in the target units.
    scales : ``(a_s, b_s, y_s)``, each scalar, per-channel along ``axis`` or broadcastable;
        needed by ``rq_multiplier="onednn"``, which applies them one by one (module doc).

    Returns an array of ``output_dtype`` with the shape of ``acc`` (broadcast).
    """
    p = get_profile(profile)
    out_dt = resolve_dtype(output_dtype, argname="output_dtype")
    if not is_integer(out_dt):
        raise TypeError(f"output_dtype: requantize produces integer types, got {out_dt}")
    lo, hi = qrange(out_dt)
    for v, n in ((acc, "acc"), (multiplier, "multiplier"), (y_zero_point, "y_zero_point"),
                 (bias, "bias"), (bias_scale, "bias_scale")):
        refuse_masked(v, n)
    for i, v in enumerate(scales or ()):
        refuse_masked(v, f"scales[{i}]")
    a = np.asarray(acc)
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, (bool, np.bool_)):
        raise TypeError(f"axis: expected an int, got {axis!r}")
    if a.ndim and not -a.ndim <= axis < a.ndim:
        raise ValueError(f"axis: {axis} is outside [{-a.ndim}, {a.ndim - 1}] for a {a.ndim}-D accumulator")
    if a.dtype.kind not in "iu":
        raise TypeError(f"acc: integer accumulator expected, got {a.dtype}")
    if a.dtype != np.int32:
        if a.size and (a.min() < _I32_MIN or a.max() > _I32_MAX):
            raise ValueError("acc: values outside int32 (wrap them with wrap_int32 first if "
                             "that is what the engine does)")
        a = a.astype(np.int32)
    shape = a.shape
    ndim = a.ndim
    m = np.asarray(multiplier)
    if m.dtype.kind not in "f":
        raise TypeError(f"multiplier: float expected, got {m.dtype}")
    if not np.all(np.isfinite(m)):
        raise ValueError("multiplier: must be finite (for the QLinear ops: a_scale * b_scale / y_scale "
                         "overflowed float32 to inf, i.e. the scales' ratio exceeds 3.4e38; engines then "
                         "saturate by the sign of acc and disagree at acc = 0 (inf * 0 = NaN))")
    if np.any(m < 0) and p.rq_method == "fixed_point":
        raise ValueError(f"multiplier: must be >= 0 for fixed-point requantization (profile {p.name!r}); "
                         f"a negative multiplier (QGemm alpha < 0) needs a float method")
    m = _per_axis(m, ndim, axis, "multiplier", shape)
    zp = _per_axis(_zero_point_value(y_zero_point, out_dt), ndim, axis, "y_zero_point", shape)

    bias_int = None
    bias_float = None
    if bias is not None:
        b = np.asarray(bias)
        if b.dtype.kind in "iu":
            if b.size and (b.min() < _I32_MIN or b.max() > _I32_MAX):
                raise ValueError("bias: integer bias must fit int32")
            bias_int = _per_axis(b.astype(np.int32), ndim, axis, "bias", shape)
        elif b.dtype.kind == "f":
            if p.rq_bias == "int32":
                raise TypeError(f"bias: profile {p.name!r} (rq_bias='int32') takes an int32 bias, "
                                f"got {b.dtype}")
            bias_float = _per_axis(b.astype(np.float32), ndim, axis, "bias", shape)
        else:
            raise TypeError(f"bias: int32 (or float with a float-bias profile) expected, got {b.dtype}")

    if p.rq_method == "fixed_point":
        if p.rq_bias != "int32":
            raise ProfileError(f"profile {p.name!r}: rq_method='fixed_point' needs rq_bias='int32'")
        x = a if bias_int is None else wrap_int32(a.astype(np.int64) + bias_int)
        qm, sh = quantize_multiplier(m.astype(np.float64), single_rounding=(p.rq_fixed_rounding == "single"))
        r = multiply_by_quantized_multiplier(x, qm, sh, p.rq_fixed_rounding)
        r = np.clip(r + zp, lo, hi)
        return _cast_out(r, out_dt)

    # ---- float method
    P = np.float64 if p.rq_precision == "float64" else np.float32
    if p.rq_bias == "int32" and bias_int is not None:
        a = wrap_int32(a.astype(np.int64) + bias_int)
        bias_int = None
    if p.rq_acc_to_float == "float64" and P is np.float64:
        af = a.astype(np.float64)
    else:
        af = a.astype(np.float32).astype(P)      # cvtdq2ps: RNE to float32
    mP = m.astype(P)
    with np.errstate(over="ignore", invalid="ignore"):
        if p.rq_multiplier == "onednn":
            v = _onednn_scale(af, scales, bias_int, bias_float, ndim, axis, shape, p)
            bias_int = bias_float = None
        elif p.rq_bias == "float_rcp_fma" and bias_float is not None and bias_scale is not None:
            rcp = (np.float32(1.0) / _as_f32(_per_axis(bias_scale, ndim, axis, "bias_scale", shape))
                   ).astype(np.float32)
            af = fma_f32(bias_float, rcp, af.astype(np.float32)).astype(P)
        elif p.rq_bias in ("float", "float_rcp_fma"):
            if bias_int is not None:
                bf = bias_int.astype(np.float32)
            elif bias_float is not None:
                bf = bias_float if bias_scale is None else \
                    (bias_float / _as_f32(_per_axis(bias_scale, ndim, axis, "bias_scale", shape))
                     ).astype(np.float32)
            else:
                bf = None
            if bf is not None:
                af = (af + bf.astype(P)).astype(P)
        if p.rq_multiplier != "onednn":
            v = (af * mP).astype(P)
        if p.rq_epilogue_dtype == "float16":
            v = v.astype(np.float16)
        if p.rq_bias == "float_after_scaling":
            bt = None
            if bias_int is not None:
                bt = (bias_int.astype(np.float32).astype(P) * mP).astype(P)
            elif bias_float is not None:
                bt = bias_float.astype(P) if bias_scale is None else \
                    (bias_float.astype(P) / np.asarray(bias_scale).astype(P)).astype(P)
            if bt is not None:
                bt = bt.astype(v.dtype)
                v = (v + bt).astype(v.dtype)
        zf = zp.astype(v.dtype)
        if p.rq_zero_point == "before_rounding":
            rv = round_to_int((v + zf).astype(v.dtype), p.rq_rounding)
            r = np.clip(rv, lo, hi)
        else:
            rv = round_to_int(v, p.rq_rounding)
            r = np.clip(rv, (lo - zp).astype(np.float64), (hi - zp).astype(np.float64)) + zp
        nan = np.isnan(rv)
        if p.rq_nan != "int32_min" or p.rq_float_to_int == "saturate":
            if nan.any():
                if p.rq_nan == "qmax":
                    alt = hi
                elif p.rq_nan == "zero":
                    alt = np.clip(zp, lo, hi) if p.rq_zero_point == "after_rounding" else max(lo, min(0, hi))
                else:   # INT32_MIN, saturated
                    alt = lo
                r = np.where(nan, alt, r)
                rv = np.where(nan, 0.0, rv).astype(rv.dtype)   # handled: not out of int32 below
        if p.rq_float_to_int != "saturate":
            # cvtps2dq / cvttsd2si: a value outside int32 (or NaN) converts to INT32_MIN; the
            # saturating packs of fbgemm/QNNPACK (epi32 -> epi16, + zp saturating, -> 8 bit) turn
            # it into qmin; TFLite adds the zero point in int32 (wrapping) and then clamps
            # (XNNPACK clamps the top in float first: only values below -2^31 convert)
            inside = rv >= -2.0 ** 31
            if p.rq_float_to_int != "int32_min_wrap_negative":
                inside &= rv < 2.0 ** 31
            if not np.all(inside):
                if p.rq_float_to_int == "int32_min" or p.rq_zero_point == "before_rounding":
                    alt = lo
                else:
                    alt = np.clip(wrap_int32(np.int64(_I32_MIN) + zp.astype(np.int64)).astype(np.int64), lo, hi)
                r = np.where(inside, r, alt)
    r = np.broadcast_to(r, np.broadcast_shapes(r.shape, shape))
    return _cast_out(r, out_dt)


def _onednn_scale(af, scales, bias_int, bias_float, ndim, axis, shape, p):
    """oneDNN: v = fl32(fl32(fl32(fl32(acc)*a_s')*b_s') + b) * fl32(1/y_s), s' = fl32(1/fl32(1/s))."""
    if scales is None:
        raise ProfileError(f"profile {p.name!r} (rq_multiplier='onednn') applies the scales one by "
                           f"one: requantize needs scales=(a_s, b_s, y_s)")
    f = np.float32
    a_s, b_s, y_s = (_per_axis(_as_f32(s), ndim, axis, n, shape)
                     for s, n in zip(scales, ("a_s", "b_s", "y_s")))

    def rt(s):   # the reciprocal round trip torch -> ideep
        return (f(1) / (f(1) / s).astype(f)).astype(f)

    t = af.astype(f)
    if bias_int is not None:                     # an integer bias is in accumulator units
        t = (t + bias_int.astype(f)).astype(f)
    t = ((t * rt(a_s)).astype(f) * rt(b_s)).astype(f)
    if bias_float is not None:                   # a float bias is in real units
        t = (t + bias_float.astype(f)).astype(f)
    return (t * (f(1) / y_s).astype(f)).astype(f)


def _cast_out(r, out_dt):
    r = np.asarray(r)
    if r.dtype.kind == "f":
        r = r.astype(np.int64)
    # np.ascontiguousarray makes a 0-d array 1-d: keep the shape (1-D . 1-D QLinearMatMul is a scalar)
    return np.ascontiguousarray(r.astype(np.int64).astype(out_dt)).reshape(r.shape)
