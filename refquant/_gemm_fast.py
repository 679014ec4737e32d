"""Fast integer GEMM / convolution glue: refquant.<op> -> refquant._gemm (C kernels).

Every function here returns ``(result, kernel_name)`` when a kernel covers the call, or
``None`` so that ``refquant._dispatch`` runs the numpy reference (which also raises the
proper error for invalid input).  The results are bit-identical to ``refquant.reference``:

    acc = wrap32(sum_k (A - a_zp)(B - b_zp))            exact in every kernel (see
                                                        kernels/src/gemm/rq_gemm.h)
    y   = clamp(RNE(fl32(wrap32(acc + bias)) * M) + y_zp, qmin, qmax)
          M = form_multiplier(...) of the reference, as float32

Covered profiles: those with rq_method="float", rq_precision="float32",
rq_rounding="half_even", rq_zero_point="after_rounding", rq_bias="int32",
rq_epilogue_dtype="float32" (any rq_multiplier: M comes from the reference's
``form_multiplier``), accumulator="int32_wrap"; int16_pair_saturation for GEMM through a
dedicated scalar kernel (conv with it declines).  Validation reuses the reference's own
checks; anything unusual declines.
"""
from __future__ import annotations

import math
import threading

import numpy as np

from . import _gemm as _k
_HAVE_POS = hasattr(_k, "f32_positive")
from ._packed import PackedWeights, unwrap
from .reference import gemm as _rg
from .reference import conv as _rc
from .reference import requant as _rr
from .reference.requant import form_multiplier, check_scale

__all__ = ["matmul_integer", "qlinear_matmul", "qgemm", "conv_integer", "qlinear_conv",
           "requantize", "pack_weights", "kernel_info", "kernel_names"]

_I8 = (np.dtype(np.int8), np.dtype(np.uint8))
_FLT_MAX = float(np.finfo(np.float32).max)   # Python float scales above it: not taken (no cast warning)


# ----------------------------------------------------------------------------- helpers

def _rq_ok(p, bias=True, float_bias=False, onednn=False, fixed=False, after_scaling=False):
    """The epilogue the kernels implement; ``rq_bias`` matters only when there is a bias
    (QLinearMatMul has none, QGemm's C and QLinearConv's B are optional); ``float_bias``: the
    caller also implements rq_bias="float" (fbgemm: the bias added in float32 after the
    conversion, conv only); ``onednn``: the caller implements oneDNN's epilogue
    (rq_multiplier "onednn" with the zero point before rounding, see _onednn_params);
    ``after_scaling``: the caller implements rq_bias="float_after_scaling" (TensorRT: the bias
    added in float32 after the multiplier, through the oneDNN epilogue's second bias)."""
    if p.rq_method == "fixed_point":    # TFLite / gemmlowp integer requantization (_fixed_params)
        return (fixed and p.rq_bias == "int32" and p.accumulator == "int32_wrap"
                and p.rq_fixed_rounding in _FX_MODES and p.rq_multiplier != "onednn")
    if p.rq_multiplier == "onednn":
        form = onednn and p.rq_zero_point == "before_rounding"
    else:
        form = p.rq_zero_point == "after_rounding"
    return (p.rq_method == "float" and form
            and p.rq_precision == "float32" and p.rq_rounding == "half_even"
            and (p.rq_bias == "int32" or not bias or (float_bias and p.rq_bias in ("float", "float_rcp_fma"))
                 or (onednn and p.rq_multiplier == "onednn")
                 or (after_scaling and p.rq_bias == "float_after_scaling"))
            and p.rq_epilogue_dtype == "float32" and p.accumulator == "int32_wrap")


def _arr(x):
    """(array, PackedB or None) for an int8/uint8 operand, or (None, None)."""
    pk = None
    if isinstance(x, PackedWeights):
        pk = x.packed
        x = x.original
    if not isinstance(x, np.ndarray) or isinstance(x, np.ma.MaskedArray):
        return None, None          # a masked array: the reference raises its TypeError
    if x.dtype not in _I8:
        return None, None
    return x, pk


def _zp_vec(z, dtype, n):
    """Zero point -> int32 vector of size 1 or n; None if not such a shape / invalid."""
    if z is None:
        return np.zeros(1, np.int32)
    lo, hi = (-128, 127) if dtype == np.int8 else (0, 255)
    if type(z) is int:                                 # a Python int: that value, in range
        return np.array([z], np.int32) if lo <= z <= hi else None
    if isinstance(z, np.generic):                      # fast path: numpy scalar
        if z.dtype != dtype:
            return None
        v = int(z)
        return np.array([v], np.int32) if lo <= v <= hi else None
    if isinstance(z, (PackedWeights, np.ma.MaskedArray)):
        return None
    za = np.asarray(z)
    if isinstance(z, np.ndarray) and za.dtype != dtype:
        return None
    if za.dtype.kind not in "iu":
        return None
    if za.size and (za.min() < lo or za.max() > hi):
        return None
    if za.size == 1 and za.ndim <= 1:
        return za.reshape(1).astype(np.int32)
    if za.ndim == 1 and za.shape[0] == n:
        return za.astype(np.int32)
    return None


def _memo_put(cache, key, value, limit=4096):
    """Store a memo entry; a memo that grew past ``limit`` entries starts again (the memos here
    hold pure functions of their keys, or entries that keep their profile alive)."""
    if len(cache) > limit:
        cache.clear()
    cache[key] = value
    return value


def _vec_key(v):
    """A memo key for a per-channel vector (scales, multipliers): its bytes (with its length), for
    vectors of at most 2048 entries (memos keyed by them keep at most 256 entries); None for
    longer ones."""
    return (v.size, v.tobytes()) if v.size <= 2048 else None


class _Slow(Exception):
    """The fast multiplier path does not apply; use the reference's form_multiplier."""


def _f32_scale(s, allow_vector=False):
    """A float32 scale as a numpy float32 scalar (or 1-D float32 array), validated like
    requant.check_scale (finite, > 0); raises _Slow for anything else."""
    if isinstance(s, np.float32):
        v = s
    elif type(s) is float:                  # rounded to float32, as check_scale does
        if not 0.0 < s <= _FLT_MAX:
            raise _Slow
        v = np.float32(s)
    elif type(s) is np.ndarray and s.dtype == np.float32:   # not a subclass (numpy.ma)
        if s.size == 1 and s.ndim <= 1:
            v = s.reshape(())[()]
        elif allow_vector and s.ndim == 1:
            ok = _k.f32_positive(s) if _HAVE_POS else None
            if ok is None:
                ok = bool(np.isfinite(s).all() and (s > 0).all())
            if not ok:
                raise _Slow
            return s
        else:
            raise _Slow
    else:
        raise _Slow
    if not (v > 0 and v < np.inf):
        raise _Slow
    return v


_FX_MODES = {"double": 1, "double_half_up": 2, "single": 3}


def _fixed_params(p, Mul):
    """(qm int32, shift int32, mode) of TFLite's QuantizeMultiplier for the (float64)
    multiplier(s), as refquant.reference.requant computes them; None when it refuses them."""
    from .reference.requant import quantize_multiplier
    key = None
    cache = _FX_CACHE
    if isinstance(Mul, (float, np.floating)) or (isinstance(Mul, np.ndarray) and Mul.size == 1):
        key = (p.rq_fixed_rounding, float(np.asarray(Mul, np.float64).reshape(())))
    elif isinstance(Mul, np.ndarray) and Mul.ndim == 1 and Mul.size <= 2048:
        cache = _FX_VCACHE         # a per-channel multiplier: keyed by its type and bytes
        key = (p.rq_fixed_rounding, Mul.dtype.str, _vec_key(Mul))
    if key is not None:
        r = cache.get(key)
        if r is not None:
            return r
    try:
        qm, sh = quantize_multiplier(np.asarray(Mul, np.float64).reshape(-1),
                                     single_rounding=(p.rq_fixed_rounding == "single"))
    except (TypeError, ValueError):
        return None
    if np.size(sh) and int(np.max(sh)) >= 32:
        # a multiplier >= 2^31 (a tiny output scale): a left shift of 32 or more, which the
        # reference models as the engine computes it (TFLite's reference masks the count to 5
        # bits on x86); the kernels' shifts are not that -- the reference runs it
        return None
    r = (np.ascontiguousarray(qm, np.int32), np.ascontiguousarray(sh, np.int32),
         _FX_MODES[p.rq_fixed_rounding])
    if key is not None:
        r[0].flags.writeable = r[1].flags.writeable = False    # shared by later calls
        # a pure function of the multiplier and the rounding
        _memo_put(cache, key, r, limit=4096 if cache is _FX_CACHE else 256)
    return r


_FX_CACHE = {}    # (rq_fixed_rounding, M) -> _fixed_params, for a scalar multiplier
_FX_VCACHE = {}   # (rq_fixed_rounding, M's type, _vec_key(M)) -> _fixed_params, per channel


def _onednn_params(a_s, b_s, y_s):
    """oneDNN's epilogue constants (requant._onednn_scale): (a_s', b_s' (float32 scalar or
    per-channel array), fl32(1/y_s)) with s' = fl32(1/fl32(1/s)), the same float32 numpy
    operations as the reference; raises _Slow for scales the fast path does not take."""
    a = _f32_scale(a_s)
    b = _f32_scale(b_s, allow_vector=True)
    y = _f32_scale(y_s)
    vec = not isinstance(b, np.float32)
    cache = _OD_VCACHE if vec else _OD_CACHE
    key = (float(a), _vec_key(b) if vec else float(b), float(y))
    if key[1] is not None:
        r = cache.get(key)
        if r is not None:
            return r
    else:
        key = None
    f = np.float32
    with np.errstate(over="ignore", under="ignore", divide="ignore"):
        def rt(s):
            return (f(1) / (f(1) / np.asarray(s, f)).astype(f)).astype(f)
        s1, bp, s3 = rt(a).reshape(()), rt(b), (f(1) / np.asarray(y, f)).astype(f).reshape(())
    if not (np.isfinite(s1) and np.isfinite(s3) and np.all(np.isfinite(bp))):
        raise _Slow
    if np.any(bp == 0):
        # a subnormal weight scale's round trip gives b' = 0: fl32(acc * a') can be inf there,
        # and inf * 0 is NaN, which the reference converts its own way -- it runs the call
        raise _Slow
    if key is not None:
        for v in (s1, bp, s3):
            if isinstance(v, np.ndarray):
                v.flags.writeable = False    # shared by later calls
        # a pure function of the three scales
        _memo_put(cache, key, (s1, bp, s3), limit=256 if vec else 4096)
    return s1, bp, s3


_OD_CACHE = {}    # (a_s, b_s, y_s) -> _onednn_params
_OD_VCACHE = {}   # (a_s, _vec_key(b_s), y_s) -> _onednn_params, per-channel b_s


def _fast_multiplier(a_s, b_s, y_s, p, alpha=None):
    """requant.form_multiplier on float32 scales (numpy float32 scalars or Python floats, a 1-D
    float32 vector for b), without the generic validation overhead: the same operations in the
    same order and precision for each ``rq_multiplier``:

      fp32             M = fl32(fl32([fl32(alpha) *] a_s * b_s) / y_s)
      fp64             M = [alpha *] a_s * b_s / y_s in double
      fp64_f32product  M = double(fl32([fl32(alpha) *] a_s * b_s)) / double(y_s)
      others           M = fl32(fl32([fl32(alpha) *] a_s * b_s) * fl32(1 / y_s))   (reciprocal)

    A float32 result for the float32 rules, float64 for the double ones, as form_multiplier.
    Results are memoised (a pure function of the scales; a per-channel b keyed by its bytes,
    _vec_key, the memoised array read-only).  Raises _Slow when it does not
    apply (the reference's checks and form_multiplier decide)."""
    kind = p.rq_multiplier
    if kind == "scale_type":     # float32 scales here (_f32_scale): the float32 rule
        kind = "fp32"
    a = _f32_scale(a_s)
    b = _f32_scale(b_s, allow_vector=True)
    y = None if y_s is None else _f32_scale(y_s)
    if alpha is not None:
        alpha = float(alpha)
        if not np.isfinite(alpha):
            raise _Slow
    vec = not isinstance(b, np.float32)
    key = (kind, float(a), _vec_key(b) if vec else float(b), None if y is None else float(y), alpha)
    cache = _MULT_VCACHE if vec else _MULT_CACHE
    m = cache.get(key) if key[2] is not None else None
    if m is not None:
        return m
    if not vec:
        if alpha is None and kind == "fp32":
            # nothing can overflow float32 (checked in double): skip np.errstate
            fa, fb = float(a), float(b)
            if fa * fb < 1e37 and (y is None or fa * fb / float(y) < 1e37):
                m = a * b
                m = m if y is None else m / y
                return _memo_put(cache, key, m)
    elif key[2] is None:
        key = None
    with np.errstate(over="ignore", under="ignore", divide="ignore"):
        if kind == "fp64":
            m = np.float64(a)
            if alpha is not None:
                m = np.float64(alpha) * m
            m = m * (np.float64(b) if key is not None else b.astype(np.float64))
            if y is not None:
                m = m / np.float64(y)
            m = np.float64(m) if key is not None else np.asarray(m, np.float64)
        else:
            m = a
            if alpha is not None:
                m = np.float32(alpha) * m
            m = m * b                    # float32 scalar or float32 array
            if key is not None:
                m = np.float32(m)
            if kind == "fp64_f32product":
                m = np.float64(m) if key is not None else np.asarray(m, np.float32).astype(np.float64)
                if y is not None:
                    m = m / np.float64(y)
            elif y is not None:
                if kind == "fp32":
                    m = m / y
                else:
                    m = m * np.float32(np.float32(1.0) / y)
            if kind != "fp64_f32product":
                m = np.float32(m) if key is not None else np.asarray(m, dtype=np.float32)
    if key is not None:
        if vec:
            m.flags.writeable = False    # shared by later calls
        _memo_put(cache, key, m, limit=256 if vec else 4096)
    return m


_MULT_CACHE = {}    # (rule, a, b, y, alpha) -> multiplier (_fast_multiplier)
_MULT_VCACHE = {}   # (rule, a, _vec_key(b), y, alpha) -> multiplier, per-channel b


def _mult32(m):
    if isinstance(m, np.float32):                       # fast path: scalar multiplier
        return np.array([m], np.float32) if (m >= 0 and m < np.inf) else None
    m = np.asarray(m)
    if m.dtype != np.float32:
        m = m.astype(np.float32)
    m = np.ascontiguousarray(m.reshape(-1))
    ok = _k.f32_positive(m, True) if _HAVE_POS else None
    if ok is None:
        ok = bool(np.all(np.isfinite(m)) and not np.any(m < 0))
    return m if ok else None


def _split_packed(w):
    """(packing, the array) of a pack_weights() result, (None, w) for anything else."""
    if type(w) is PackedWeights:
        return w.packed, w.original
    return None, w


def _packed_for(pk, B2, kind="gemm"):
    if pk is None or pk.kind != kind:
        return None
    if kind == "gemm" and (pk.K != B2.shape[0] or pk.N != B2.shape[1] or
                           pk.b_signed != (B2.dtype == np.int8)):
        return None
    return pk


def _gemm2d(A2, B2, za, zb, out, **kw):
    return _k.gemm(A2, B2, za, zb, out, **kw)


def _matmul_core(A, B, za, zb, out_dtype, *, packed=None, mult=None, y_zp=0, bias=None,
                 sat16=False, od=None, fx=None):
    """numpy-matmul shapes with per-tensor / per-row (2-D A) / per-column zero points."""
    a1, b1 = A.ndim == 1, B.ndim == 1
    Aa = A[None, :] if a1 else A
    Bb = B[:, None] if b1 else B
    M, K = Aa.shape[-2:]
    N = Bb.shape[-1]
    if za.size not in (1, M) or zb.size not in (1, N):
        return None
    if (za.size > 1 and Aa.ndim > 2) or (mult is not None and mult.size not in (1, N)):
        return None
    kern = None
    if Aa.ndim == 2 and Bb.ndim == 2:
        out = _k.empty_aligned((M, N), out_dtype)
        kern = _gemm2d(Aa, Bb, za, zb, out, packed=_packed_for(packed, Bb), mult=mult, y_zp=y_zp,
                       bias=None if bias is None else np.broadcast_to(bias, (M, N)), sat16=sat16, od=od, fx=fx)
    elif Bb.ndim == 2 and za.size == 1:
        # fold A's batch dimensions into M (a copy only when the rows are not uniform)
        batch = Aa.shape[:-2]
        A2 = Aa.reshape(math.prod(batch) * M, K)   # (explicit: -1 is ambiguous when K or N is 0)
        out = _k.empty_aligned(batch + (M, N), out_dtype)
        o2 = out.reshape(math.prod(batch) * M, N)
        kern = _gemm2d(A2, Bb, za, zb, o2, packed=_packed_for(packed, Bb), mult=mult, y_zp=y_zp,
                       bias=None if bias is None else np.broadcast_to(bias, o2.shape), sat16=sat16, od=od, fx=fx)
    else:
        batch = np.broadcast_shapes(Aa.shape[:-2], Bb.shape[:-2])
        Ab = np.broadcast_to(Aa, batch + (M, K))
        Bbb = np.broadcast_to(Bb, batch + (K, N))
        out = _k.empty_aligned(batch + (M, N), out_dtype)
        for idx in np.ndindex(*batch):
            kern = _gemm2d(Ab[idx], Bbb[idx], za, zb, out[idx], mult=mult, y_zp=y_zp,
                           bias=None if bias is None else np.broadcast_to(bias, (M, N)), sat16=sat16, od=od, fx=fx)
        if kern is None:      # empty batch
            kern = "gemm"
    if a1:
        out = out[..., 0, :]
    if b1:
        out = out[..., 0]
    return out, kern


def _sat16(p, A, B):
    """int16 pair saturation for a GEMM: ``int16_pair_saturation`` True or "mlas" (the other string
    scopes such as "fbgemm_depthwise" name convolution kernels; see reference/gemm.py)."""
    return bool(p.int16_pair_saturation in (True, "mlas") and A.dtype != B.dtype)


# ----------------------------------------------------------------------------- GEMM ops

_FOR_OP = {}       # (id(profile), op, per_axis, dtype, asymmetric) -> (profile, profile.for_op(...))


def _for_op(profile, op, per_axis=None, dtype=None, asymmetric_weights=None):
    """``profile.for_op(op, per_axis=..., dtype=..., asymmetric_weights=...)``, memoised: the
    resolved profile of a call, as the reference resolves it (for_op builds a new Profile
    whenever an override applies, about as costly as a small kernel call)."""
    key = (id(profile), op, per_axis, None if dtype is None else np.dtype(dtype).str, asymmetric_weights)
    ent = _FOR_OP.get(key)
    if ent is None or ent[0] is not profile:
        ent = (profile, profile.for_op(op, per_axis=per_axis, dtype=dtype,
                                       asymmetric_weights=asymmetric_weights))
        _memo_put(_FOR_OP, key, ent, 256)    # the entry keeps the profile alive: its id stays unique
    return ent[1]


def _call_profile(profile, op, w_scale, w_zero_point, dtype, asymmetric):
    """The profile as it applies to one QLinear call, as the reference resolves it: the op's
    overrides and those selected by the weight-scale granularity, the activation type and a
    non-zero weight zero point (``asymmetric(w_zero_point)``, the reference's own test); None
    when the zero point cannot be read (the reference raises its error)."""
    try:
        asym = asymmetric(w_zero_point)
    except (TypeError, ValueError):
        return None
    return _for_op(profile, op, bool(np.size(w_scale) > 1), dtype, asym)


def _qlinear_operands(op, a, b, b_scale, b_zero_point, profile, two_d):
    """(A, B, B's packing or None, the call's profile) for QLinearMatMul / QGemm when the kernels
    may take the call (int8/uint8 arrays, 2-D when ``two_d``, an epilogue the kernels have:
    float, oneDNN's or fixed point), else None."""
    A, _ = _arr(a if not isinstance(a, PackedWeights) else None)
    B, pk = _arr(b)
    if A is None or B is None or (A.ndim != 2 or B.ndim != 2 if two_d else A.ndim == 0 or B.ndim == 0):
        return None
    p = _call_profile(profile, op, b_scale, b_zero_point, A.dtype, _asym)
    if p is None or not _rq_ok(p, bias=False, onednn=True, fixed=True):
        return None
    return A, B, pk, p


_asym = _rg._nonzero   # a non-zero weight zero point: the reference's "asymmetric_weights" selector
_ONNX_PROFILE = None   # set below (the onnx profile: int32 wrapped MatMulInteger, the kernels' own)


_MI_PROF = {}      # id(profile) -> (profile, for_op("MatMulInteger") accumulator ok, sat16 flag)
_U8, _S8 = np.dtype(np.uint8), np.dtype(np.int8)


def _mi_prof(profile):
    ent = _MI_PROF.get(id(profile))
    if ent is None or ent[0] is not profile:
        p = _for_op(profile, "MatMulInteger")
        ent = (profile, p.accumulator == "int32_wrap", p.int16_pair_saturation in (True, "mlas"))
        _memo_put(_MI_PROF, id(profile), ent, 64)   # the entry keeps the profile alive: its id stays unique
    return ent


def _lean_zp(z, dt):
    """A per-tensor zero point the lean path takes: None, a numpy scalar of exactly the
    operand's dtype (uint8 / int8: always in range) or a Python int in the dtype's range (the
    reference reads it as the same value).  Anything else -> None (generic path)."""
    if z is None:
        return 0
    if isinstance(z, np.generic) and z.dtype == dt:
        return int(z)
    if type(z) is int and (0 <= z <= 255 if dt == _U8 else -128 <= z <= 127):
        return z
    return None


def _lean_scale(s):
    """A per-tensor scale the lean paths take, as a numpy float32 scalar: a float32 scalar, or
    a Python float rounded to float32 as the reference's check_scale rounds it (then finite
    and > 0, else None; a non-positive or non-finite float32 scalar passes through and the
    multiplier check declines it).  Anything else -> None (generic path)."""
    if type(s) is _F32:
        return s
    if type(s) is float and 0.0 < s <= _FLT_MAX:
        v = _F32(s)
        return v if 0.0 < v < np.inf else None
    return None


def _lean_ydt(y_zero_point, default):
    """The output dtype the lean paths take: y_zero_point None or a Python int -> ``default``
    (a's / x's dtype, the reference's rule), a uint8 / int8 numpy scalar -> its dtype; else
    None."""
    if y_zero_point is None or type(y_zero_point) is int:
        return default
    if isinstance(y_zero_point, np.generic) and y_zero_point.dtype in _I8:
        return y_zero_point.dtype
    return None


def matmul_integer(A, B, a_zero_point=None, b_zero_point=None, *, profile, opset=None):
    # lean path for the common call: 2-D uint8/int8 arrays (B plain or packed), scalar zero
    # points of the operands' dtypes, no opset.  It checks exactly what the generic path below
    # checks for such a call and runs the same kernel; anything else takes the generic path.
    if opset is None and type(A) is np.ndarray and A.ndim == 2:
        pk, Bo = _split_packed(B)
        if type(Bo) is np.ndarray and Bo.ndim == 2:
            adt, bdt = A.dtype, Bo.dtype
            if ((adt is _U8 or adt is _S8 or adt in _I8) and (bdt is _U8 or bdt is _S8 or bdt in _I8)
                    and A.shape[1] == Bo.shape[0] and A.shape[0] > 0 and A.shape[1] > 0
                    and Bo.shape[1] > 0):
                za = _lean_zp(a_zero_point, adt)
                zb = _lean_zp(b_zero_point, bdt)
                if za is not None and zb is not None:
                    _, acc_ok, sat = _mi_prof(profile)
                    if not acc_ok:
                        return None
                    return _k.matmul_s32(A, Bo, za, zb, _packed_for(pk, Bo),
                                         bool(sat and adt != bdt))
    profile = _for_op(profile, "MatMulInteger")     # op-specific overrides, as the reference applies
    if profile.accumulator != "int32_wrap":
        return None
    A, _ = _arr(unwrap(A) if not isinstance(A, PackedWeights) else None)
    B, pk = _arr(B)
    if A is None or B is None or A.ndim == 0 or B.ndim == 0:
        return None
    try:
        if opset is not None:
            _rg._check_opset("MatMulInteger", opset, 10)
        _rg._matmul_shapes(A.shape, B.shape)
    except (TypeError, ValueError):
        return None
    if min(A.shape[-1:] + A.shape[-2:]) < 0:
        return None
    M = A.shape[-2] if A.ndim >= 2 else 1
    N = B.shape[-1] if B.ndim >= 2 else 1
    za = _zp_vec(a_zero_point, A.dtype, M if A.ndim == 2 else -1)
    zb = _zp_vec(b_zero_point, B.dtype, N if B.ndim >= 2 else -1)
    if za is None or zb is None:
        return None
    return _matmul_core(A, B, za, zb, np.int32, packed=pk, sat16=_sat16(profile, A, B))


def _out_dtype(y_zero_point, default):
    if isinstance(y_zero_point, (np.ndarray, np.generic)):
        dt = np.asarray(y_zero_point).dtype
        return dt if dt in _I8 else None
    return default


_QM_PROF = {}      # (id(profile), dtype) -> (profile, lean path allowed, sat16 flag, multiplier rules)
_F32 = np.float32
_LEAN_DTYPES = (np.dtype(np.uint8), np.dtype(np.int8))


def _lean_prof(cache, profile, adt, asym, op, entry, n_ok):
    """Cached ``entry(p)`` for ``profile`` as it applies to a per-tensor ``op`` call with
    activation type ``adt`` and a weight zero point that is non-zero (``asym``)
    (``Profile.for_op`` with per_axis=False, dtype=adt, asymmetric_weights=asym, as the
    reference resolves it).  ``entry`` returns ``n_ok`` "the kernels may take it" flags, then
    hazard flags.  ``adt`` None: any call (the compiled lean entries, which take both types and
    any zero point): every variant's ok flags AND-ed, hazard flags OR-ed."""
    key = (id(profile), adt, asym)
    ent = cache.get(key)
    if ent is None or ent[0] is not profile:
        if adt is None:
            parts = [entry(_for_op(profile, op, False, d, w)) for d in _LEAN_DTYPES for w in (False, True)]
            ent = (profile,) + tuple(all(x[i] for x in parts) if i < n_ok else any(x[i] for x in parts)
                                     for i in range(len(parts[0])))
        else:
            ent = (profile,) + entry(_for_op(profile, op, False, adt, asym))
        _memo_put(cache, key, ent, 64)     # the entry keeps the profile alive: its id stays unique
    return ent


def _mult_rules(p):
    """Whether the profile puts rules on the multiplier that _mult_ok must check per call."""
    ex = p.extra or {}
    return p.rq_float_to_int != "saturate" or ex.get("multiplier") == "normal" or ex.get("bias_scale") == "normal"


def _qm_entry(p):
    return (bool(_rq_ok(p, bias=False) and p.rq_multiplier == "fp32"), p.int16_pair_saturation in (True, "mlas"),
            _mult_rules(p))


_QG_PROF = {}      # the same for QGemm (its own overrides)


def _qg_prof(profile, adt, asym):
    """(profile, lean path allowed, sat16 flag, multiplier rules) for QGemm with an int32 C or
    none (added to the accumulator under every rq_bias: _qm_entry's conditions)."""
    return _lean_prof(_QG_PROF, profile, adt, asym, "QGemm", _qm_entry, 1)


def _qm_prof(profile, adt=None, asym=False):
    """(profile, lean path allowed, sat16 flag, multiplier rules) for QLinearMatMul (see _lean_prof;
    ``adt`` None: the compiled lean entry, allowed only where the multiplier has no rules)."""
    ent = _lean_prof(_QM_PROF, profile, adt, asym, "QLinearMatMul", _qm_entry, 1)
    if adt is None and ent[3]:
        return (profile, False, ent[2], True)
    return ent


# Profiles whose float -> int conversion of the scaled value is not a saturation
# (rq_float_to_int: cvtps2dq's INT32_MIN and what follows it) differ from the kernels' clamp
# only where |round(v)| >= 2^31; v = fl32(fl32(acc) [+ float bias]) * M with |fl32(acc)| <= 2^31
# (int32, also after an int32 bias), so a multiplier bound keeps every value inside.
_F2I_LIMIT = 2.0 ** 30
_F32_TINY = float(np.finfo(np.float32).tiny)


def _bias_scale_normal(scales):
    """Whether every fl32(a_s * b_s) (scales = (a_s, b_s), b_s scalar or per column) has a finite
    float32 reciprocal; None (not given): False."""
    if scales is None:
        return False
    try:
        with np.errstate(all="ignore"):   # the smallest product of positive scales
            S = np.float32(np.min(np.asarray(scales[0], np.float32)) * np.min(np.asarray(scales[1], np.float32)))
    except (TypeError, ValueError):
        return False
    with np.errstate(all="ignore"):
        return bool(np.isfinite(np.float32(1) / S))


def _mult_ok(p, mult, fbias=None, scales=None):
    """Whether the kernels give the profile's result for this multiplier M (float32, scalar or
    per column) whatever the accumulators:
    - rq_float_to_int other than "saturate": the kernels' saturating conversion equals it when
      (2^31 + max|float bias|) * max(M) < 2^30 (no value leaves int32);
    - Profile.extra["multiplier"] == "normal" (QNNPACK refuses a zero or subnormal M): every M
      normal, else the reference raises the engine's error.
    A NaN anywhere fails both comparisons (the reference decides)."""
    if (p.extra or {}).get("bias_scale") == "normal" and not _bias_scale_normal(scales):
        return False    # the reference refuses a subnormal activation x weight scale product
    normal = (p.extra or {}).get("multiplier") == "normal"
    f2i = p.rq_float_to_int != "saturate"
    if not (normal or f2i):
        return True
    if isinstance(mult, (float, np.floating)):
        mn = mx = float(np.float32(mult))
    else:
        m = np.asarray(mult, dtype=np.float32)
        if m.size == 0:
            return True
        mn, mx = float(m.min()), float(m.max())
    if normal and not mn >= _F32_TINY:
        return False
    if not f2i:
        return True
    fb = float(np.max(np.abs(fbias))) if fbias is not None and np.size(fbias) else 0.0
    return bool((2.0 ** 31 + fb) * mx < _F2I_LIMIT)


def _qlinear_matmul_lean(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point,
                         profile):
    """The common QLinearMatMul call without the generic glue: 2-D uint8/int8 arrays (B plain
    or packed), float32 scales (numpy float32 scalars or Python floats, _lean_scale), zero
    points that are numpy scalars of the operands' dtypes or Python ints in range (_lean_zp),
    a profile with the plain float32 epilogue.  It checks what the generic path checks for
    such a call, forms the multiplier the same way (_fast_multiplier's scalar branch) and runs
    the same kernel; None sends the call to the generic path (which may still take it)."""
    pk, Bo = _split_packed(b)
    if type(Bo) is not np.ndarray or Bo.ndim != 2:
        return None
    adt, bdt = a.dtype, Bo.dtype
    if not (adt in _I8 and bdt in _I8 and a.shape[1] == Bo.shape[0] and a.shape[0] > 0
            and a.shape[1] > 0 and Bo.shape[1] > 0):
        return None
    ydt = _lean_ydt(y_zero_point, adt)
    if ydt is None:
        return None
    za = _lean_zp(a_zero_point, adt)
    zb = _lean_zp(b_zero_point, bdt)
    yz = _lean_zp(y_zero_point, ydt)
    if za is None or zb is None or yz is None:
        return None
    return _lean_q8("QLinearMatMul", _qm_prof(profile, adt, zb != 0), profile, a, Bo, pk, za, zb,
                    (a_scale, b_scale, y_scale), yz, ydt == _S8)


def _lean_q8(op, ent, profile, a, Bo, pk, za, zb, scales, yz, y_signed, bias=None):
    """The lean paths' last steps: the profile entry's verdict (``ent`` = (profile, ok, sat16,
    multiplier rules)), the multiplier formed and checked, the requantized GEMM run."""
    _, ok, sat, rules = ent
    if not ok:
        return None
    m = _lean_mult(*scales)
    if m is None or (rules and not _mult_ok(_for_op(profile, op, False, a.dtype, zb != 0), m,
                                            scales=scales[:2])):
        return None
    return _k.matmul_q8(a, Bo, za, zb, float(m), yz, y_signed, _packed_for(pk, Bo),
                        bool(sat and a.dtype != Bo.dtype), bias)


def _qgemm_lean(A, a_scale, a_zero_point, B, b_scale, b_zero_point, C, y_scale, y_zero_point, profile):
    """The common QGemm call (alpha 1, no transposes, no opset) without the generic glue: as
    _qlinear_matmul_lean, with an 8-bit output whose zero point is a uint8 / int8 numpy scalar
    and C None or a C-contiguous int32 (N,) (added to the accumulator); None: the generic path."""
    pk, Bo = _split_packed(B)
    if type(Bo) is not np.ndarray or Bo.ndim != 2 or type(A) is not np.ndarray or A.ndim != 2:
        return None
    adt, bdt = A.dtype, Bo.dtype
    if not (adt in _I8 and bdt in _I8 and A.shape[1] == Bo.shape[0] and A.shape[0] > 0
            and A.shape[1] > 0 and Bo.shape[1] > 0) or (adt == _S8 and bdt != _S8):
        return None
    if not (isinstance(y_zero_point, np.generic) and y_zero_point.dtype in _I8):
        return None
    if C is not None and not (type(C) is np.ndarray and C.dtype == np.int32 and C.ndim == 1
                              and C.shape[0] == Bo.shape[1] and C.flags.c_contiguous):
        return None
    za = _lean_zp(a_zero_point, adt)
    zb = _lean_zp(b_zero_point, bdt)
    if za is None or zb is None:
        return None
    return _lean_q8("QGemm", _qg_prof(profile, adt, zb != 0), profile, A, Bo, pk, za, zb,
                    (a_scale, b_scale, y_scale), int(y_zero_point), y_zero_point.dtype == _S8, C)


def _lean_mult(a_s, b_s, y_s):
    """M = fl32(fl32(a_s * b_s) / y_s) for three float32 numpy scalars when _fast_multiplier's
    scalar branch takes them (each finite and > 0, nothing near float32 overflow) and _mult32
    accepts the result; None otherwise (the generic path decides)."""
    fa, fb, fy = float(a_s), float(b_s), float(y_s)
    if not (0.0 < fa < np.inf and 0.0 < fb < np.inf and 0.0 < fy < np.inf
            and fa * fb < 1e37 and fa * fb / fy < 1e37):
        return None
    m = a_s * b_s / y_s
    return m if (m >= 0 and m < np.inf) else None


def _kernel_int_gemm(b, B, used):
    """An ``int_gemm(A, B, azp, bzp, p)`` for the reference's _qlinear_matmul / _qgemm: the
    kernels' int32 accumulator (wrap32 of the exact sums: the reference's value) for 2-D
    int8/uint8 operands without the int16 pair saturation, B's packing used when the reference
    hands back B itself; else the reference's own.  The kernel's name goes into ``used``."""
    def int_gemm(A_, B_, azp, bzp, p):
        if (A_.ndim >= 2 and B_.ndim >= 2 and (B_.ndim > 2 or (A_.ndim > 2 and np.size(azp) > 1))
                and A_.dtype in _I8 and B_.dtype in _I8 and not _rg._use_pair_saturation(p, A_, B_)):
            # a batched B (or a batched A with per-row zero points): one 2-D kernel call per
            # matrix of the broadcast batch, with its slice of the zero points (the reference's
            # shapes: () or per row [..., M, 1]; () or per column [N] / [..., 1, N])
            batch = np.broadcast_shapes(A_.shape[:-2], B_.shape[:-2])
            M, N = A_.shape[-2], B_.shape[-1]
            Ab = np.broadcast_to(A_, batch + A_.shape[-2:])
            Bb = np.broadcast_to(B_, batch + B_.shape[-2:])
            za = azp if np.ndim(azp) == 0 else np.broadcast_to(azp, batch + (M, 1))
            zb = bzp if np.ndim(bzp) == 0 else np.broadcast_to(bzp, batch + (1, N))
            acc = np.empty(batch + (M, N), np.int32)
            for idx in np.ndindex(*batch):
                acc[idx] = int_gemm(np.ascontiguousarray(Ab[idx]), np.ascontiguousarray(Bb[idx]),
                                    za if np.ndim(za) == 0 else za[idx],
                                    zb if np.ndim(zb) == 0 else zb[idx], p)
            return acc
        if (A_.ndim > 2 and B_.ndim == 2 and (azp is None or np.size(azp) == 1)
                and A_.dtype in _I8 and B_.dtype in _I8 and not _rg._use_pair_saturation(p, A_, B_)):
            # batched A against one B, a per-tensor zero point: the rows of every batch at once
            acc = int_gemm(A_.reshape(math.prod(A_.shape[:-1]), A_.shape[-1]), B_, azp, bzp, p)
            return acc.reshape(A_.shape[:-1] + (B_.shape[1],))
        if (A_.ndim == 2 and B_.ndim == 2 and A_.dtype in _I8 and B_.dtype in _I8
                and not _rg._use_pair_saturation(p, A_, B_)):
            za = None if azp is None else np.asarray(azp).reshape(-1).astype(A_.dtype)
            zb = None if bzp is None else np.asarray(bzp).reshape(-1).astype(B_.dtype)
            za = za[0] if za is not None and za.size == 1 else za
            zb = zb[0] if zb is not None and zb.size == 1 else zb
            r = matmul_integer(A_, b if B_ is B else B_, za, zb, profile=_ONNX_PROFILE)
            if r is not None and r[0].shape == (A_.shape[0], B_.shape[1]):
                used.append(r[1])
                return r[0]
        return _rg._int_gemm(A_, B_, azp, bzp, p)
    return int_gemm


def _two_d_operands(a, b, batched=False):
    """b's array (unpacked) when a and b are 2-D int8/uint8 operands (a not packed; with
    ``batched``, either or both of 2 or more dimensions), else None."""
    A, _ = _arr(a if not isinstance(a, PackedWeights) else None)
    B, _ = _arr(b)
    ok = A is not None and B is not None and (
        (B.ndim == 2 and (A.ndim == 2 or (batched and A.ndim > 2))) or (batched and A.ndim >= 2 and B.ndim > 2))
    return B if ok else None


def _ref_epilogue(run, used):
    """Run the reference's function (``run()``, given the kernels' integer GEMM): (y, path) with
    path "<kernel>+reference_epilogue", or "reference" where its own GEMM ran; None when it
    raises (the dispatcher's reference raises the same error)."""
    try:
        y = run()
    except Exception:   # noqa: BLE001
        return None
    return y, (used[0] + "+reference_epilogue") if used else "reference"


def _qlinear_matmul_ref_epilogue(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale,
                                 y_zero_point, profile, opset):
    """QLinearMatMul under a profile whose epilogue the kernels lack (onnx-reference's float64
    products with the zero point before rounding, tflite-reference's double multiplier rounded
    half away, ...): the reference's own function, with its integer GEMM's int32 accumulator
    computed by the kernels.  The multiplier, the epilogue and every check stay the
    reference's."""
    B = _two_d_operands(a, b, batched=True)
    if B is None:
        return None
    used = []
    return _ref_epilogue(lambda: _rg._qlinear_matmul(
        a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point, profile, opset,
        _kernel_int_gemm(b, B, used)), used)


def _qgemm_ref_epilogue(A, a_scale, a_zero_point, B, b_scale, b_zero_point, C, y_scale,
                        y_zero_point, alpha, transA, transB, profile, opset):
    """QGemm the same way (tflite-reference's FULLY_CONNECTED in double, half away)."""
    Ba = _two_d_operands(A, B)
    if Ba is None:
        return None
    used = []
    return _ref_epilogue(lambda: _rg._qgemm(
        A, a_scale, a_zero_point, B, b_scale, b_zero_point, C, y_scale, y_zero_point, alpha,
        transA, transB, profile, opset, _kernel_int_gemm(B, Ba, used)), used)


def qlinear_matmul(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point, *,
                   profile, opset=None):
    if y_scale is None:
        return None      # the reference: "y_scale: a scale is required"
    if opset is None and type(a) is np.ndarray and a.ndim == 2:
        sa, sb, sy = _lean_scale(a_scale), _lean_scale(b_scale), _lean_scale(y_scale)
        if sa is not None and sb is not None and sy is not None:
            r = _qlinear_matmul_lean(a, sa, a_zero_point, b, sb, b_zero_point, sy, y_zero_point,
                                     profile)
            if r is not None:
                return r
    r = _qlinear_operands("QLinearMatMul", a, b, b_scale, b_zero_point, profile, two_d=False)
    if r is None:
        return _qlinear_matmul_ref_epilogue(a, a_scale, a_zero_point, b, b_scale, b_zero_point,
                                            y_scale, y_zero_point, profile, opset)
    A, B, pk, p = r
    profile = p
    od = None
    if p.rq_multiplier == "onednn":
        if p.rq_float_to_int != "saturate":
            return None
        try:
            s1, bprime, s3 = _onednn_params(a_scale, b_scale, y_scale)
        except _Slow:
            return None
        od = (float(s1), float(s3))
    N = B.shape[-1] if B.ndim >= 2 else 1
    try:
        if opset is not None:
            _rg._check_opset("QLinearMatMul", opset, 10, 21)
        _rg._matmul_shapes(A.shape, B.shape, "a", "b")
        try:
            Mul = _fast_multiplier(a_scale, b_scale, y_scale, p)
        except _Slow:
            for s_, n in ((a_scale, "a_scale"), (b_scale, "b_scale"), (y_scale, "y_scale")):
                check_scale(s_, n)
                _rg._check_scale_dtype(s_, n, 21 if opset is None else int(opset))
            _rg._check_scale_types_match((a_scale, b_scale, y_scale), ("a_scale", "b_scale", "y_scale"))
            Mul = None
        if not (isinstance(a_scale, np.generic) and isinstance(a_zero_point, (np.generic, type(None)))):
            _rg._same_shape(a_scale, a_zero_point, "a_scale", "a_zero_point")
        if not (isinstance(b_scale, np.generic) and isinstance(b_zero_point, (np.generic, type(None)))):
            _rg._same_shape(b_scale, b_zero_point, "b_scale", "b_zero_point")
    except (TypeError, ValueError):
        return None
    if np.size(a_scale) != 1 or np.size(y_scale) != 1:
        return None
    if y_zero_point is not None and np.size(y_zero_point) != 1:
        return None
    out_dt = _out_dtype(y_zero_point, A.dtype)
    if out_dt is None:
        return None
    bs = np.asarray(b_scale)
    if not (bs.size == 1 or (bs.ndim == 1 and bs.shape[0] == N and B.ndim >= 2)):
        return None
    za = _zp_vec(a_zero_point, A.dtype, -1)
    zb = _zp_vec(b_zero_point, B.dtype, N if B.ndim >= 2 else -1)
    yz = _zp_vec(y_zero_point, out_dt, -1)
    if za is None or zb is None or yz is None:
        return None
    if Mul is None:
        try:
            Mul = form_multiplier(np.asarray(a_scale).reshape(()),
                                  bs.reshape(-1) if bs.size != 1 else bs.reshape(()),
                                  np.asarray(y_scale).reshape(()), profile=p)
        except (TypeError, ValueError):
            return None
    fx = None
    if p.rq_method == "fixed_point":
        fx = _fixed_params(p, Mul)
        if fx is None:
            return None
        m = np.ones(fx[0].size, np.float32)      # unused by the fixed-point epilogue
    else:
        m = _mult32(Mul) if od is None else np.ascontiguousarray(bprime.reshape(-1), np.float32)
    if od is not None and not np.all(np.isfinite(Mul)):
        return None     # the reference refuses a multiplier that overflowed (oneDNN's constants may not)
    if m is None or not _mult_ok(p, Mul, scales=(a_scale, b_scale)):
        return None
    return _matmul_core(A, B, za, zb, out_dt, packed=pk, mult=m, y_zp=int(yz[0]),
                        sat16=_sat16(p, A, B), od=od, fx=fx)


def qgemm(A, a_scale, a_zero_point, B, b_scale, b_zero_point, C=None, y_scale=None,
          y_zero_point=None, *, alpha=1.0, transA=0, transB=0, profile, opset=None):
    if (opset is None and y_zero_point is not None and type(transA) is int and type(transB) is int
            and transA == 0 and transB == 0 and type(alpha) is float and alpha == 1.0):
        sa, sb, sy = _lean_scale(a_scale), _lean_scale(b_scale), _lean_scale(y_scale)
        if sa is not None and sb is not None and sy is not None:
            r = _qgemm_lean(A, sa, a_zero_point, B, sb, b_zero_point, C, sy, y_zero_point, profile)
            if r is not None:
                return r
    # an int32 C is added to the accumulator under every rq_bias; fixed point: LiteRT's
    # FULLY_CONNECTED with a bias (tflite-optimized), acc + C then TFLite's fixed-point multiplier
    if not _rg._qgemm_attrs_ok(alpha, transA, transB):
        return None    # the reference names the bad attribute
    r = _qlinear_operands("QGemm", A, B, b_scale, b_zero_point, profile, two_d=True)
    if r is None:
        return _qgemm_ref_epilogue(A, a_scale, a_zero_point, B, b_scale, b_zero_point, C, y_scale,
                                   y_zero_point, alpha, transA, transB, profile, opset)
    A, B, pk, p = r
    profile = p
    if A.dtype == np.int8 and B.dtype != np.int8:
        return None
    At = A.T if transA else A
    Bt = B.T if transB else B
    if transB:
        pk = None
    if At.shape[1] != Bt.shape[0]:
        return None
    Mr, N = At.shape[0], Bt.shape[1]
    # float32 scales (scalars, Python floats, a float32 vector for b): validated and combined
    # without the generic form_multiplier's overhead (_fast_multiplier: the same float32
    # operations in the same order); anything else takes the reference's checks
    try:
        _f32_scale(a_scale)
        _f32_scale(b_scale, allow_vector=True)
        if y_scale is not None:
            _f32_scale(y_scale)
        fast_scales = True
    except _Slow:
        fast_scales = False
    try:
        _rg._check_opset("QGemm", opset, 1)
        if not fast_scales:
            check_scale(a_scale, "a_scale")
            check_scale(b_scale, "b_scale")
            if y_scale is not None:
                check_scale(y_scale, "y_scale")
        _rg._same_shape(b_scale, b_zero_point, "b_scale", "b_zero_point")
        alpha = float(alpha)
    except (TypeError, ValueError):
        return None
    if not np.isfinite(alpha):
        return None
    if np.size(a_scale) != 1 or (a_zero_point is not None and np.size(a_zero_point) != 1):
        return None
    bs = np.asarray(b_scale)
    if not (bs.size == 1 or (bs.ndim == 1 and bs.shape[0] == N)):
        return None
    if y_zero_point is not None and (y_scale is None or np.size(y_zero_point) != 1):
        return None
    if y_scale is not None and np.size(y_scale) != 1:
        return None
    za = _zp_vec(a_zero_point, A.dtype, -1)
    zb = _zp_vec(b_zero_point, B.dtype, N)
    if za is None or zb is None:
        return None
    bias = fsrc = None
    if C is not None:
        Cc = np.asarray(C)
        ok = Cc.ndim <= 2 and (Cc.size == 1 or (Cc.ndim == 1 and Cc.shape[0] == N) or
                               (Cc.ndim == 2 and Cc.shape[0] in (1, Mr) and Cc.shape[1] in (1, N)))
        if not ok:
            return None
        if Cc.dtype == np.int32:
            bias = np.broadcast_to(Cc.reshape(() if Cc.size == 1 else Cc.shape), (Mr, N))
        elif (Cc.dtype.kind == "f" and y_zero_point is not None and p.rq_bias in ("float", "float_rcp_fma")
              and p.rq_multiplier != "onednn" and p.rq_method != "fixed_point"):
            fsrc = Cc.reshape(() if Cc.size == 1 else Cc.shape)   # fbgemm's float bias (below)
        else:
            return None
    sat = _sat16(p, At, Bt)
    a_s = np.asarray(a_scale).reshape(())
    bsv = bs.reshape(-1) if bs.size != 1 else bs.reshape(())
    if y_zero_point is None:
        try:
            if fast_scales:
                S = np.asarray(_fast_multiplier(a_scale, b_scale, y_scale, p, alpha=None if alpha == 1.0 else alpha),
                               np.float32)
            else:
                S = form_multiplier(a_s, bsv, None if y_scale is None else np.asarray(y_scale).reshape(()),
                                    profile=p, alpha=alpha)
        except (TypeError, ValueError, _Slow):
            return None
        out = _k.empty_aligned((Mr, N), np.int32)
        kern = _k.gemm(At, Bt, za, zb, out, packed=_packed_for(pk, Bt), bias=bias, sat16=sat)
        # fl32(acc) * S in float32, in place on the converted copy (the same float32 operations
        # as the reference's astype, multiply, astype; 128x768: 41 -> 23 us per-column)
        y = out.astype(np.float32)
        y *= S.astype(np.float32)
        return y, kern
    out_dt = _out_dtype(y_zero_point, A.dtype)
    if out_dt is None:
        return None
    yz = _zp_vec(y_zero_point, out_dt, -1)
    if yz is None:
        return None
    try:
        if fast_scales:
            Mul = _fast_multiplier(a_scale, b_scale, y_scale, p, alpha=None if alpha == 1.0 else alpha)
        else:
            Mul = form_multiplier(a_s, bsv, np.asarray(y_scale).reshape(()), profile=p, alpha=alpha)
    except (TypeError, ValueError, _Slow):
        return None
    fx = od = None
    if p.rq_method == "fixed_point":
        fx = _fixed_params(p, Mul)
        if fx is None:
            return None
        m = np.ones(fx[0].size, np.float32)      # unused by the fixed-point epilogue
    elif p.rq_multiplier == "onednn":
        # oneDNN (torch linear with an int32 bias in accumulator units, added to acc as the
        # reference does for QGemm's C): the scales one by one, alpha folded into a_scale as
        # fl32(fl32(alpha) * a_s) (requant._onednn_scale, reference qgemm)
        if p.rq_float_to_int != "saturate":
            return None
        try:
            a_eff = a_s if alpha == 1.0 else np.float32(np.float32(alpha) * np.float32(a_s))
            s1, bprime, s3 = _onednn_params(a_eff, b_scale, y_scale)
        except (_Slow, TypeError, ValueError):
            return None
        od = (float(s1), float(s3))
        m = np.ascontiguousarray(bprime.reshape(-1), np.float32)
        if not np.all(np.isfinite(Mul)):
            return None     # the reference refuses a multiplier that overflowed
    else:
        m = _mult32(Mul)
    fb = rcp = None
    if fsrc is not None:
        fb, rcp = _qgemm_float_bias(fsrc, a_s, bsv, alpha, p, fast_scales)
        if fb is None:
            return None
        bias = np.broadcast_to(fb, (Mr, N))
    if m is None or not _mult_ok(p, Mul if fx is not None else m,
                                 None if fb is None else (fb if rcp is None else fb * np.float64(rcp)),
                                 scales=(a_scale, b_scale)):
        return None
    out = _k.empty_aligned((Mr, N), out_dt)
    kern = _k.gemm(At, Bt, za, zb, out, packed=_packed_for(pk, Bt), bias=bias, mult=m,
                   y_zp=int(yz[0]), sat16=sat, fx=fx, od=od, fbias_rcp=rcp)
    return out, kern


def _qgemm_float_bias(c, a_s, b_s, alpha, p, f32_scales=False):
    """QGemm's float C under fbgemm's float bias (requant module doc; the reference's qgemm):
    with the bias scale S = fl32(fl32(alpha * a_s) * b_s[j]), rq_bias "float" gives the bias
    fl32(C / S) that the kernels add to fl32(acc); "float_rcp_fma" (S one scalar) gives C itself
    and fl32(1 / S), which the kernels take as fma(C, 1/S, fl32(acc)).  Returns (float32 bias
    broadcastable to (M, N), reciprocal or None), or (None, None) for the reference: a bias that
    is not finite, or a per-column S under "float_rcp_fma".  f32_scales: the scales passed
    _f32_scale (S formed here with form_multiplier's float32 operations, without its checks)."""
    if f32_scales:
        with np.errstate(over="ignore", under="ignore"):
            S = np.float32(np.float32(alpha) * np.float32(a_s)) * np.asarray(b_s, np.float32)
    else:
        try:
            S = form_multiplier(a_s, b_s, None, profile="onnx", alpha=alpha)
        except (TypeError, ValueError):
            return None, None
    cf = np.asarray(c).astype(np.float32)
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        if p.rq_bias == "float_rcp_fma":
            if np.size(S) != 1:
                return None, None
            rcp = np.float32(np.float32(1.0) / np.asarray(S, np.float32).reshape(()))
            fb = cf
            if not np.isfinite(rcp) or (fb.size and float(np.max(np.abs(fb))) * abs(float(rcp)) >= 1e38):
                return None, None
            rcp = float(rcp)
        else:
            fb = (cf / np.asarray(S, np.float32)).astype(np.float32)
            rcp = None
    if not np.all(np.isfinite(fb)):
        return None, None
    return fb, rcp


# ----------------------------------------------------------------------------- convolution

_GEOMETRY = {}   # (shapes, attributes) -> _rc._conv_geometry's result


_GEO_ATTRS = ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")


_TYPED = object()   # marks a typed key part (below)


def _geo_key(xs, ws, attrs):
    """A memo key of shapes and conv attributes, typed (group=1.0 or pads of floats never meet
    the int attributes' entry: anything but a Python int or a list / tuple of Python ints enters
    with its types, behind a marker); None when an attribute is not hashable."""
    parts = [xs, ws]
    for k in _GEO_ATTRS:
        v = attrs.get(k)
        tv = type(v)
        if v is None or tv is int or tv is str:
            parts.append(v)
        elif (tv is list or tv is tuple) and all(type(e) is int for e in v):
            parts.append(tuple(v))
        else:
            try:
                parts.append((_TYPED, tv) + tuple((type(e), e) for e in v))
            except TypeError:        # not a sequence
                parts.append((_TYPED, tv, v))
    key = tuple(parts)
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _geometry(xs, ws, attrs, key=None):
    """_rc._conv_geometry for the shapes and attributes, memoised (a pure function of them; its
    errors are raised each time, never stored)."""
    key = key if key is not None else _geo_key(xs, ws, attrs)
    r = _GEOMETRY.get(key) if key is not None else None
    if r is None:
        r = _rc._conv_geometry(xs, ws, attrs.get("auto_pad", "NOTSET"), attrs.get("dilations"),
                               attrs.get("group", 1), attrs.get("kernel_shape"), attrs.get("pads"),
                               attrs.get("strides"))
        if key is not None:
            _memo_put(_GEOMETRY, key, r, 1024)
    return r


def _conv_common(x, w, x_zero_point, w_zero_point, attrs, profile, op="ConvInteger"):
    """Validate; return (x4, w4, xz, wz, geometry dict, packed) for a 2-D (or 1-D) conv, or None."""
    if profile.accumulator != "int32_wrap":
        return None
    X, _ = _arr(x if not isinstance(x, PackedWeights) else None)
    W, pk = _arr(w)
    if X is None or W is None:
        return None
    try:
        pb, pe, strides, dil, out = _geometry(X.shape, W.shape, attrs)
        group = int(attrs.get("group", 1))
    except (TypeError, ValueError):
        return None
    if not _conv_fits(X.shape, W.shape, out, (*strides, *dil)):
        return None
    sat16 = False
    if profile.int16_pair_saturation and X.dtype != W.dtype:
        # saturating int16 pairs (vpmaddubsw): True = every conv, over the im2col reduction order
        # (kernel position, channel) -- the GEMM path reproduces it; "fbgemm_depthwise" = the
        # convs of fbgemm's depthwise fast path, whose pairs of taps are that order's pairs for
        # one channel a group (the reference models both with the same pairs)
        sat16 = _rc._pair_saturation_applies(profile, X.dtype, W.dtype, X.shape, W.shape, group, strides,
                                             dil, pb, pe, op)
    nd = X.ndim - 2
    depth = None
    if nd == 3:
        # depthwise only (the 2-D kernels' depthwise frames walk the depth; other 3-D convs run
        # _conv3d_as_2d / _conv3d_acc), without int16 pairs (their order spans the depth)
        if (sat16 or W.ndim != 5 or W.shape[1] != 1 or group != X.shape[1] or W.shape[0] % group
                or math.prod(out) <= 0):
            return None
        Dp = (out[0] - 1) * strides[0] + (W.shape[2] - 1) * dil[0] + 1
        if Dp * (X.shape[3] + pb[1] + pe[1] + W.shape[3] * dil[1]) * (X.shape[4] * 4 + 256) > (1 << 28):
            return None                   # (a padded volume per channel beyond the kernels' offsets)
        X4, W4 = X, W
        pads = (pb[1], pb[2], pe[1], pe[2])
        st, dl, o2 = (strides[1], strides[2]), (dil[1], dil[2]), tuple(out)
        depth = (W.shape[2], strides[0], dil[0], pb[0])
        pk = None
    elif nd == 1:
        X4 = X[:, :, None, :]
        W4 = W[:, :, None, :]
        pads = (0, pb[0], 0, pe[0])
        st, dl, o2 = (1, strides[0]), (1, dil[0]), (1, out[0])
        pk = None
    elif nd == 2:
        X4, W4 = X, W
        pads = (pb[0], pb[1], pe[0], pe[1])
        st, dl, o2 = tuple(strides), tuple(dil), tuple(out)
    else:
        return None
    Mc = W.shape[0]
    xz = _zp_vec(x_zero_point, X.dtype, -1)
    wz = _zp_vec(w_zero_point, W.dtype, Mc)
    if xz is None or wz is None:
        return None
    if pk is not None and (pk.kind != "conv" or group != 1):
        pk = None
    geo = dict(group=group, kernel=(W4.shape[-2], W4.shape[-1]), strides=st, dilations=dl, pads=pads,
               sat16=sat16)
    if depth is not None:
        geo["depth"] = depth
    return X4, np.ascontiguousarray(W4), int(xz[0]), wz, geo, o2, nd, pk


def _conv_run(X4, W4, xz, wz, geo, o2, out_dtype, pk, **kw):
    Nb = X4.shape[0]
    Mc = W4.shape[0]
    out = _k.empty_aligned((Nb, Mc) + tuple(o2), out_dtype)
    kern = "conv"
    for n in range(Nb):
        xi = np.ascontiguousarray(X4[n])
        kern = _k.conv2d(xi, W4, xz, wz, out[n], packed=pk, **geo, **kw)
    return out, kern


_QC_PROF = {}      # (id(profile), dtype) -> (profile, lean path allowed without / with a bias, multiplier rules)
_GEO = {}          # (x.shape, w.shape, attributes) -> the lean path's geometry
_Z1 = np.zeros(1, np.int32)
_Z1.setflags(write=False)


def _qc_entry(p):
    base = p.rq_multiplier == "fp32" and not p.int16_pair_saturation
    return (bool(base and _rq_ok(p, bias=False)), bool(base and _rq_ok(p, bias=True)),
            _mult_rules(p))


def _qc_prof(profile, xdt=None, asym=False):
    """(profile, lean path allowed without / with a bias, multiplier rules) for QLinearConv (see
    _lean_prof; ``xdt`` None: the compiled lean entry, allowed only where the multiplier has no rules)."""
    ent = _lean_prof(_QC_PROF, profile, xdt, asym, "QLinearConv", _qc_entry, 2)
    if xdt is None and ent[3]:
        return (profile, False, False, True)
    return ent


_INT_MAX = 2**31 - 1


def _conv_fits(xs, ws, out, steps=()):
    """Whether the kernels' C int sizes hold this conv (pixels in and out, K = C*KH*KW > 0, output
    channels, the strides and dilations in ``steps``; ``_gemm._conv_fits`` checks the same before
    any C code runs): checked before the per-image copies, so that a huge input goes to the
    reference without a copy first."""
    hw = math.prod(int(v) for v in xs[2:])
    ohw = math.prod(int(v) for v in out)
    k = math.prod(int(v) for v in ws[1:])
    # (K = 0, no input channels: the reference's all-zero sums plus bias; the kernels refuse it)
    return 0 < k and max(hw, ohw, k, ws[0], *steps) <= _INT_MAX


_GEO_INTS = {}     # the same by a key of int-only attributes (_lean_geo's first look)


def _int_key(v):
    """A tuple of v's elements when v is a list / tuple of Python ints (bool excluded), None
    for None; False otherwise."""
    if v is None:
        return None
    if type(v) is list or type(v) is tuple:
        for e in v:
            if type(e) is not int:
                return False
        return tuple(v)
    return False


def _lean_geo(xs, ws, dilations, group, kernel_shape, pads, strides):
    """(geometry kwargs of _k.conv2d, output spatial shape) of a 2-D conv, cached by shapes and
    attributes; None when _conv_geometry refuses them (the generic path raises the error).
    Attributes of Python ints only (the usual call) look in _GEO_INTS first, whose key is
    cheaper than _geo_key's typed one (0.6 -> 0.2 us)."""
    ik = None
    if type(group) is int:
        d, k, p, s = _int_key(dilations), _int_key(kernel_shape), _int_key(pads), _int_key(strides)
        if d is not False and k is not False and p is not False and s is not False:
            ik = (xs, ws, group, d, k, p, s)
            ent = _GEO_INTS.get(ik)
            if ent is not None:
                return ent
    ent = _lean_geo_typed(xs, ws, dilations, group, kernel_shape, pads, strides)
    if ent is not None and ik is not None:
        _memo_put(_GEO_INTS, ik, ent, 256)
    return ent


def _lean_geo_typed(xs, ws, dilations, group, kernel_shape, pads, strides):
    """_lean_geo's entry by _geo_key (any attribute types)."""
    attrs = dict(dilations=dilations, group=group, kernel_shape=kernel_shape, pads=pads, strides=strides)
    key = _geo_key(xs, ws, attrs)
    if key is None:
        return None
    ent = _GEO.get(key)
    if ent is None:
        try:
            pb, pe, st, dl, out = _geometry(xs, ws, attrs, key)
        except (TypeError, ValueError):
            return None
        if not _conv_fits(xs, ws, out, (*st, *dl)):
            return None
        ent = (dict(group=int(group), kernel=(ws[2], ws[3]), strides=tuple(st), dilations=tuple(dl),
                    pads=(pb[0], pb[1], pe[0], pe[1]), sat16=False), tuple(out))
        _memo_put(_GEO, key, ent, 256)
    return ent


_CI_PROF = {}      # id(profile) -> (profile, lean path allowed) for ConvInteger


def conv_integer(x, w, x_zero_point=None, w_zero_point=None, *, auto_pad="NOTSET", dilations=None,
                 group=1, kernel_shape=None, pads=None, strides=None, profile, opset=None):
    if opset is None and type(x) is np.ndarray and x.ndim == 4 and auto_pad == "NOTSET" and type(group) is int:
        # the lean glue (see _qlinear_conv_lean): 2-D conv, numpy scalar zero points
        ent = _CI_PROF.get(id(profile))
        if ent is None or ent[0] is not profile:
            p = _for_op(profile, "ConvInteger")
            ent = (profile, p.accumulator == "int32_wrap" and not p.int16_pair_saturation)
            _memo_put(_CI_PROF, id(profile), ent, 64)
        pk, Wo = _split_packed(w)
        if ent[1] and type(Wo) is np.ndarray and Wo.ndim == 4 and x.dtype in _I8 and Wo.dtype in _I8:
            xz = _lean_zp(x_zero_point, x.dtype)
            wz = _lean_zp(w_zero_point, Wo.dtype)
            g = _lean_geo(x.shape, Wo.shape, dilations, group, kernel_shape, pads, strides)
            if xz is not None and wz is not None and g is not None:
                geo, o2 = g
                if pk is not None and (pk.kind != "conv" or geo["group"] != 1):
                    pk = None
                W4 = np.ascontiguousarray(Wo)
                out = _k.empty_aligned((x.shape[0], Wo.shape[0]) + o2, np.int32)
                wza = _Z1 if wz == 0 else np.array([wz], np.int32)
                kern = "conv"
                for n in range(x.shape[0]):
                    kern = _k.conv2d(np.ascontiguousarray(x[n]), W4, xz, wza, out[n], packed=pk, **geo)
                return out, kern
    profile = _for_op(profile, "ConvInteger")     # op-specific overrides, as the reference applies
    try:
        if opset is not None:
            _rg._check_opset("ConvInteger", opset, 10)
    except (TypeError, ValueError):
        return None
    attrs = dict(auto_pad=auto_pad, dilations=dilations, group=group, kernel_shape=kernel_shape,
                 pads=pads, strides=strides)
    if isinstance(x, np.ndarray) and x.ndim == 5:
        r = _conv_common(x, w, x_zero_point, w_zero_point, attrs, profile) if _depthwise_3d(x, w, group) else None
        if r is not None:                 # depthwise: the kernels walk the depth
            X4, W4, xz, wz, geo, o2, nd, pk = r
            return _conv_run(X4, W4, xz, wz, geo, o2, np.int32, pk)
        return (_conv3d_as_2d(x, w, x_zero_point, attrs, profile,
                              lambda x2, w2, a2: conv_integer(x2, w2, x_zero_point, w_zero_point,
                                                              profile=profile, **a2))
                or _conv3d_acc(x, w, x_zero_point, w_zero_point, attrs, profile))
    r = _conv_common(x, w, x_zero_point, w_zero_point, attrs, profile)
    if r is None:
        return None
    X4, W4, xz, wz, geo, o2, nd, pk = r
    out, kern = _conv_run(X4, W4, xz, wz, geo, o2, np.int32, pk)
    if nd == 1:
        out = out[:, :, 0, :]
    return out, kern


def _qlinear_conv_lean(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B,
                       dilations, group, kernel_shape, pads, strides, profile):
    """The common QLinearConv call without the generic glue: a 2-D conv of uint8/int8 arrays
    (w plain or packed), scales and zero points as _qlinear_matmul_lean takes them, no bias or an int32 (Cout,) one, auto_pad NOTSET, a profile with the plain float32
    epilogue and no int16 pair saturation.  It checks what the generic path checks for such a
    call and runs the same kernel with the same arguments; None sends the call to the generic
    path (which may still take it)."""
    pk, Wo = _split_packed(w)
    if type(Wo) is not np.ndarray or Wo.ndim != 4 or Wo.dtype not in _I8 or x.dtype not in _I8:
        return None
    ydt = _lean_ydt(y_zero_point, x.dtype)
    if ydt is None:
        return None
    xz = _lean_zp(x_zero_point, x.dtype)
    wz = _lean_zp(w_zero_point, Wo.dtype)
    yz = _lean_zp(y_zero_point, ydt)
    if xz is None or wz is None or yz is None:
        return None
    Mc = Wo.shape[0]
    if B is not None and not (type(B) is np.ndarray and B.dtype == np.int32 and B.ndim == 1
                              and B.shape[0] == Mc):
        return None
    _, ok0, ok1, rules = _qc_prof(profile, x.dtype, wz != 0)
    if not (ok1 if B is not None else ok0):
        return None
    g = _lean_geo(x.shape, Wo.shape, dilations, group, kernel_shape, pads, strides)
    if g is None:
        return None
    geo, o2 = g
    m = _lean_mult(x_scale, w_scale, y_scale)
    if m is None or (rules and not _mult_ok(_for_op(profile, "QLinearConv", False, x.dtype, wz != 0), m,
                                            scales=(x_scale, w_scale))):
        return None
    if pk is not None and (pk.kind != "conv" or geo["group"] != 1):
        pk = None
    W4 = np.ascontiguousarray(Wo)
    out = _k.empty_aligned((x.shape[0], Mc) + o2, ydt)
    wza = _Z1 if wz == 0 else np.array([wz], np.int32)
    mult = np.array([m], np.float32)
    kern = "conv"
    for n in range(x.shape[0]):
        kern = _k.conv2d(np.ascontiguousarray(x[n]), W4, xz, wza, out[n], packed=pk, **geo, bias=B,
                         mult=mult, y_zp=yz)
    return out, kern


def qlinear_conv_compiled(args, kwargs, ok0, ok1):
    """refquant.qlinear_conv's first try for the default profile (ok0 / ok1: that profile lets
    the kernels take the call without / with a bias): the lean glue's checks, with the zero
    points, scales, bias and per-image loop in compiled code (_k.qlinear_conv_lean).  None
    when it does not take the call (the usual dispatch follows)."""
    x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point = args[:8]
    B = args[8] if len(args) > 8 else None
    if not (ok1 if B is not None else ok0) or type(x) is not np.ndarray or x.ndim != 4:
        return None
    group = kwargs.get("group", 1)
    if type(group) is not int or kwargs.get("auto_pad", "NOTSET") != "NOTSET":
        return None
    pk, Wo = _split_packed(w)
    if type(Wo) is not np.ndarray or Wo.ndim != 4:
        return None
    g = _lean_geo(x.shape, Wo.shape, kwargs.get("dilations"), group, kwargs.get("kernel_shape"),
                  kwargs.get("pads"), kwargs.get("strides"))
    if g is None:
        return None
    if pk is not None and (pk.kind != "conv" or group != 1):
        pk = None
    return _k.qlinear_conv_lean(x, x_scale, x_zero_point, Wo, w_scale, w_zero_point, y_scale, y_zero_point,
                                B, g[0], g[1], pk)


def _qlinear_conv_ref_epilogue(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale,
                               y_zero_point, B, auto_pad, dilations, group, kernel_shape, pads,
                               strides, profile, opset):
    """QLinearConv under a profile whose epilogue the kernels lack (onnx-reference): the
    reference's own function, its int32 accumulator (after its checks) by the kernels'
    ConvInteger (wrap32 of the exact sums: the same value)."""
    xa, _ = _arr(x)
    wa, _ = _arr(w)
    if xa is None or wa is None:
        return None
    used = []

    def int_conv(x_, w_, xz, wz):
        z1 = None if xz is None else x_.dtype.type(np.asarray(xz).reshape(-1)[0])
        z2 = None if wz is None else (np.asarray(wz).reshape(-1).astype(w_.dtype) if np.size(wz) > 1
                                      else w_.dtype.type(np.asarray(wz).reshape(-1)[0]))
        try:
            r = conv_integer(x_, w if w_ is wa else w_, z1, z2, auto_pad=auto_pad, dilations=dilations,
                             group=group, kernel_shape=kernel_shape, pads=pads, strides=strides,
                             profile=_ONNX_PROFILE)
        except Exception:   # noqa: BLE001 - the reference's own accumulation decides
            return None
        if r is None:
            return None
        used.append(r[1])
        return r[0]

    return _ref_epilogue(lambda: _rc._qlinear_conv(
        x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B, auto_pad,
        dilations, group, kernel_shape, pads, strides, profile, opset, int_conv), used)


_TLS = threading.local()


def _scratch(name, shape, dtype):
    """A work array of this thread, reused from call to call (never returned to a caller)."""
    dt = np.dtype(dtype)
    n = math.prod(shape) * dt.itemsize
    bufs = getattr(_TLS, "bufs", None)
    if bufs is None:
        bufs = _TLS.bufs = {}
    buf = bufs.get(name)
    if buf is None or buf.nbytes < n:
        buf = bufs[name] = _k.empty_aligned((max(n, 64),), np.uint8)
    return buf[:n].view(dt).reshape(shape)


def _conv3d_operands(x, w, attrs):
    """(x, w (the plain weights behind PackedWeights), pads begin / end, strides, dilations,
    output shape, group) of a 3-D conv, or None (the reference decides)."""
    X, _ = _arr(x)
    W, _ = _arr(unwrap(w) if isinstance(w, PackedWeights) else w)
    if X is None or W is None or X.ndim != 5 or W.ndim != 5:
        return None
    try:
        pb, pe, st, dl, out = _geometry(X.shape, W.shape, attrs)
        return X, W, pb, pe, st, dl, out, int(attrs.get("group", 1))
    except (TypeError, ValueError):
        return None


def _conv3d_acc(x, w, xz, wz, attrs, profile, scratch=False, op="ConvInteger"):
    """ConvInteger's int32 accumulator of a 3-D conv (N, C, D, H, W) by the 2-D kernels:

        acc[n, :, od] = wrap32(sum_kd conv2d(x[n, :, od*sd + kd*dd - pad_d] - xz, w[:, :, kd] - wz))

    over the kd whose input plane lies inside x (a padded plane holds x_zero_point: it adds
    nothing).  The int32 sums wrap, so the order does not change the bits.  Returns (acc,
    kernel name) or None (the reference computes it): a call with int16 pair saturation (its
    pairs follow the whole reduction order), shapes beyond the kernels' int sizes, an empty
    output.  ``scratch``: acc is this thread's reusable buffer (valid until its next 3-D conv;
    for a caller that only requantizes it)."""
    if profile.accumulator != "int32_wrap":
        return None
    ops = _conv3d_operands(x, w, attrs)
    if ops is None:
        return None
    X, W, pb, pe, st, dl, out, group = ops
    if profile.int16_pair_saturation and X.dtype != W.dtype and _rc._pair_saturation_applies(
            profile, X.dtype, W.dtype, X.shape, W.shape, group, st, dl, pb, pe, op):
        return None
    N, D, M = X.shape[0], X.shape[2], W.shape[0]
    OD, OH, OW = out
    if min(out) <= 0 or N == 0 or M == 0 or not _conv_fits(X.shape[:2] + X.shape[3:], W.shape[:2] + W.shape[3:],
                                                          out[1:], (*st, *dl)):
        return None
    xzv = _zp_vec(xz, X.dtype, -1)
    wzv = _zp_vec(wz, W.dtype, M)
    if xzv is None or wzv is None:
        return None
    geo = dict(group=group, kernel=(W.shape[3], W.shape[4]), strides=(st[1], st[2]), dilations=(dl[1], dl[2]),
               pads=(pb[1], pb[2], pe[1], pe[2]), sat16=False)
    # the accumulator in its final layout; a scratch buffer of this thread when the caller only
    # requantizes it (a fresh 1.6 MB each call cost a page fault per 4 KiB once glibc had given
    # the previous one back: depthwise 64 x 8x28x28, 1 thread, 0.83 -> 2.2 ms per call when the
    # caller drops its results)
    shape = (N, M, OD, OH, OW)
    acc = _scratch("conv3d_acc", shape, np.int32) if scratch else np.empty(shape, np.int32)
    tmp = _scratch("conv3d_plane", (M, OH, OW), np.int32)
    kern = None
    done = np.zeros(OD, bool)
    # a plane's conv on one thread below 1M MACs: the pool's start and join per plane cost more
    # than the second thread gained (depthwise 64 x 8x28x28, 2 threads: see docs/performance.md)
    small = M * OH * OW * (W.shape[1] * W.shape[3] * W.shape[4]) < (1 << 20)
    geo = dict(geo, nthreads=1) if small else geo
    for kd in range(W.shape[2]):
        W2 = np.ascontiguousarray(W[:, :, kd])
        for od in range(OD):
            i = od * st[0] + kd * dl[0] - pb[0]
            if not 0 <= i < D:
                continue
            for n in range(N):
                dst = acc[n, :, od]
                if done[od]:
                    kern = _k.conv2d(np.ascontiguousarray(X[n, :, i]), W2, int(xzv[0]), wzv, tmp, **geo)
                    np.add(dst, tmp, out=dst)     # int32: wraps like the hardware
                else:
                    kern = _k.conv2d(np.ascontiguousarray(X[n, :, i]), W2, int(xzv[0]), wzv, tmp, **geo)
                    np.copyto(dst, tmp)
            done[od] = True
    acc[:, :, ~done] = 0                          # output planes whose every input plane is padding
    return acc, (kern or "conv") + "+3d_planes"


_CONV3D_CHUNK_BYTES = 32 << 20


def _conv3d_as_2d(x, w, x_zero_point, attrs, profile, run2d):
    """A 3-D conv as one 2-D conv per output plane, the kernel's depth folded into the channels:

        y[n, :, od] = conv2d(x'[n, od], w')      x'[n, od] channel (g, kd, c) = x[n, g*Cg + c, od*sd + kd*dd - pad_d]
                                                 w'[m, kd*Cg + c] = w[m, c, kd]

    (a plane outside x holds x_zero_point: its products are zero, as in the reference's
    padding).  The 2-D call (``run2d(x', w', 2-D attributes)``: the 2-D glue, epilogue
    included) sums over (kd, c, kh, kw) in one int32 accumulator, which wraps like the
    reference's, so the bits are the 3-D conv's.  The output planes go through the 2-D call in
    chunks as a batch (x' holds each input plane up to KD times).  Returns (y, kernel name) or
    None: profiles with int16 pair saturation (whose pairs follow the 3-D reduction order) and
    groups whose folded channels are not a multiple of 4 (depthwise: _conv3d_acc's planes keep
    the depthwise kernels) take the other paths."""
    if profile.int16_pair_saturation or profile.accumulator != "int32_wrap":
        return None
    ops = _conv3d_operands(x, w, attrs)
    if ops is None:
        return None
    X, W, pb, pe, st, dl, out, G = ops
    N, C, D, H, Wd = X.shape
    M, Cg, KD, KH, KW = W.shape
    OD = out[0]
    if min(out) <= 0 or N == 0 or M == 0 or G < 1 or C != G * Cg or (G > 1 and (KD * Cg) % 4):
        return None
    xz = _zp_vec(x_zero_point, X.dtype, -1)
    if xz is None:
        return None
    Dp = D + pb[0] + pe[0]
    xp = np.empty((N, C, Dp, H, Wd), X.dtype)
    xp[:, :, :pb[0]] = xz[0]
    xp[:, :, pb[0] + D:] = xz[0]
    xp[:, :, pb[0]:pb[0] + D] = X
    idx = np.arange(OD)[:, None] * st[0] + np.arange(KD)[None, :] * dl[0]     # (OD, KD), padded depth
    w2 = np.ascontiguousarray(W.reshape(M, Cg, KD, KH, KW).transpose(0, 2, 1, 3, 4)).reshape(M, KD * Cg, KH, KW)
    a2 = dict(auto_pad="NOTSET", dilations=[dl[1], dl[2]], group=G, kernel_shape=None,
              pads=[pb[1], pb[2], pe[1], pe[2]], strides=[st[1], st[2]])
    per = N * C * KD * H * Wd * X.itemsize
    chunk = max(1, min(OD, _CONV3D_CHUNK_BYTES // max(per, 1)))      # x' up to about 32 MiB a call
    xg = xp.reshape(N, G, Cg, Dp, H, Wd)
    y = kern = None
    for o0 in range(0, OD, chunk):
        ids = idx[o0:o0 + chunk]
        oc = ids.shape[0]
        x2 = np.ascontiguousarray(xg[:, :, :, ids].transpose(0, 3, 1, 4, 2, 5, 6)).reshape(
            N * oc, G * KD * Cg, H, Wd)
        r = run2d(x2, w2, a2)
        if r is None:
            return None
        y2, kern = r
        if y is None:
            y = np.empty((N, M, OD) + y2.shape[2:], y2.dtype)
        y[:, :, o0:o0 + oc] = y2.reshape((N, oc, M) + y2.shape[2:]).transpose(0, 2, 1, 3, 4)
    return y, kern + "+3d_as_2d"


def _qlinear_conv_3d(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B,
                     attrs, profile0, opset):
    """QLinearConv over 3 spatial dims: one 2-D QLinearConv per output plane with the depth
    folded into the channels (_conv3d_as_2d), or else the reference's own function (its checks,
    multiplier and bias rules) with its int32 accumulator by _conv3d_acc and its requantization
    by the epilogue kernels (requantize above) where they cover the profile."""
    # the profile as the reference resolves it for this call (per-axis, activation type and
    # asymmetric-weight overrides: an int16 pair saturation selected by them must decline)
    pc = _call_profile(profile0, "QLinearConv", w_scale, w_zero_point,
                       x.dtype if isinstance(x, np.ndarray) else None, _rc._asymmetric)
    if opset is None and pc is not None:
        r = _conv3d_as_2d(x, w, x_zero_point, attrs, pc,
                          lambda x2, w2, a2: qlinear_conv(x2, x_scale, x_zero_point, w2, w_scale, w_zero_point,
                                                          y_scale, y_zero_point, B, profile=profile0, **a2))
        if r is not None:
            return r
    used = []

    def int_conv(x_, w_, xz, wz):
        # (the reference's zero points: int64 arrays, already checked against the types' ranges)
        z1 = None if xz is None else x_.dtype.type(np.asarray(xz).reshape(-1)[0])
        z2 = None if wz is None else (np.asarray(wz).reshape(-1).astype(w_.dtype) if np.size(wz) > 1
                                      else w_.dtype.type(np.asarray(wz).reshape(-1)[0]))
        r = _conv3d_acc(x_, w_, z1, z2, attrs, pc if pc is not None else _for_op(profile0, "QLinearConv"),
                        scratch=True, op="QLinearConv")
        if r is None:
            return None
        used.append(r[1])
        return r[0]

    def requant(acc, Mul, yz, *, profile, **kw):
        r = requantize(acc, Mul, yz, profile=profile, **kw) if used else None
        if r is None:
            used.append("reference_epilogue")
            return _rr.requantize(acc, Mul, yz, profile=profile, **kw)
        used.append(r[1])
        return r[0]

    y = _rc._qlinear_conv(x, x_scale, x_zero_point, unwrap(w), w_scale, w_zero_point, y_scale, y_zero_point, B,
                          attrs["auto_pad"], attrs["dilations"], attrs["group"], attrs["kernel_shape"],
                          attrs["pads"], attrs["strides"], profile0, opset, int_conv, requant)
    return y, ("+".join(used) if len(used) > 1 else "reference")


def _no_nan_epilogue(fb, *scales):
    """Whether the oneDNN epilogue's float bias after the scales (fl32(acc) * s1 * M[j] + fb, as
    oneDNN and TensorRT add it) can never make a NaN: fb finite and |acc| * s1 * M below float32
    overflow (no inf - inf).  A NaN there takes the profile's ``rq_nan`` rule (qmax for oneDNN,
    0 for TensorRT), which the kernels do not implement (they give qmin): such calls run the
    reference (found by a differential fuzz in session 15)."""
    if not np.all(np.isfinite(fb)):
        return False
    bound = 2.0 ** 32
    for sc in scales:
        bound *= float(np.max(np.abs(np.asarray(sc, np.float64))))
    return bound < 1e38


def qlinear_conv(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B=None, *,
                 auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None, pads=None, strides=None,
                 profile, opset=None):
    if y_scale is None:
        return None      # the reference: "y_scale: a scale is required"
    if (opset is None and type(x) is np.ndarray and x.ndim == 4 and auto_pad == "NOTSET"
            and type(group) is int):
        sx, sw, sy = _lean_scale(x_scale), _lean_scale(w_scale), _lean_scale(y_scale)
        if sx is not None and sw is not None and sy is not None:
            r = _qlinear_conv_lean(x, sx, x_zero_point, w, sw, w_zero_point, sy, y_zero_point, B,
                                   dilations, group, kernel_shape, pads, strides, profile)
            if r is not None:
                return r
    profile0 = profile
    if isinstance(x, np.ndarray) and x.ndim == 5:
        # a depthwise 3-D conv: the depthwise kernels over the depth (_conv_common), with the
        # 2-D path's epilogues; else one 2-D conv per output plane or the planes summed
        if _depthwise_3d(x, w, group):
            r = _qlinear_conv_general(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point,
                                      B, auto_pad, dilations, group, kernel_shape, pads, strides, profile0, opset)
            if r is not None:
                return r
        return _qlinear_conv_3d(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B,
                                dict(auto_pad=auto_pad, dilations=dilations, group=group,
                                     kernel_shape=kernel_shape, pads=pads, strides=strides), profile0, opset)
    return _qlinear_conv_general(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B,
                                 auto_pad, dilations, group, kernel_shape, pads, strides, profile0, opset)


def _rcp_fma_bias(b, a_s, w_s, alpha=None):
    """fbgemm's per-tensor float bias (rq_bias="float_rcp_fma"): the bias as float32 and the
    float32 reciprocal of the bias scale fl32(fl32(alpha * a_s) * w_s) (requant module doc),
    which the kernels' epilogue takes as fma(b, rcp, fl32(acc)), rounded once."""
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        a = np.asarray(a_s, np.float32).reshape(())
        if alpha is not None:
            a = np.float32(np.float32(alpha) * a)
        bsc = np.float32(a * np.asarray(w_s, np.float32).reshape(()))
        rcp = np.float32(np.float32(1.0) / bsc)
    return np.ascontiguousarray(np.asarray(b).astype(np.float32)), float(rcp)


def _rcp_fma_slow(p, b, a_s, w_s):
    """Whether a float bias under rq_bias="float_rcp_fma" needs the reference's epilogue: a
    bias scale that is not one float32 scalar, a reciprocal or bias that is not finite, or a
    product b * rcp near float32's range (the kernels and the reference then agree only by
    reasoning about infinities; the reference decides)."""
    if p.rq_bias != "float_rcp_fma" or b is None:
        return False
    bb = np.asarray(b)
    if bb.dtype.kind != "f":
        return False
    if np.size(a_s) != 1 or np.size(w_s) != 1:
        return True
    try:
        fb, rcp = _rcp_fma_bias(bb, a_s, w_s)
    except (TypeError, ValueError):
        return True
    if not (np.isfinite(rcp) and np.all(np.isfinite(fb))):
        return True
    return bool(fb.size and float(np.max(np.abs(fb))) * abs(rcp) >= 1e38)


def _depthwise_3d(x, w, group):
    """Whether a 5-D conv is depthwise (one input channel a group, at least two groups; any
    channel multiplier): _conv_common runs it on the depthwise kernels with the depth.  (One
    input channel and one group: the depth folded into the channels, _conv3d_as_2d, shares its
    im2col rows among the outputs.)"""
    W = unwrap(w) if isinstance(w, PackedWeights) else w
    return (isinstance(W, np.ndarray) and W.ndim == 5 and W.shape[1] == 1 and type(group) is int
            and group == x.shape[1] and group > 1 and W.shape[0] % group == 0)


def _qlinear_conv_general(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B,
                          auto_pad, dilations, group, kernel_shape, pads, strides, profile0, opset):
    """QLinearConv (1-D, 2-D, depthwise 3-D) with every epilogue the kernels implement, or
    the reference's epilogue over the kernels' accumulator, or None (the reference)."""
    profile = _call_profile(profile0, "QLinearConv", w_scale, w_zero_point,
                            x.dtype if isinstance(x, np.ndarray) else None, _rc._asymmetric)
    if profile is None:
        return None
    p = profile
    if not _rq_ok(p, bias=B is not None, float_bias=True, onednn=True, fixed=True, after_scaling=True) or (
            _rcp_fma_slow(p, B, x_scale, w_scale)):
        return _qlinear_conv_ref_epilogue(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale,
                                          y_zero_point, B, auto_pad, dilations, group, kernel_shape,
                                          pads, strides, profile0, opset)
    after = B is not None and p.rq_bias == "float_after_scaling"
    if (p.rq_multiplier == "onednn" or after) and p.rq_float_to_int != "saturate":
        return None
    try:
        if opset is not None:
            _rg._check_opset("QLinearConv", opset, 10)
        try:
            Mul = _fast_multiplier(x_scale, w_scale, y_scale, p)
            xs, ws, ys = np.asarray(x_scale), np.asarray(w_scale), np.asarray(y_scale)
        except _Slow:
            Mul = None
            xs = check_scale(x_scale, "x_scale")
            ws = check_scale(w_scale, "w_scale")
            ys = check_scale(y_scale, "y_scale")
    except (TypeError, ValueError):
        return None
    r = _conv_common(x, w, x_zero_point, w_zero_point,
                     dict(auto_pad=auto_pad, dilations=dilations, group=group, kernel_shape=kernel_shape,
                          pads=pads, strides=strides), p, op="QLinearConv")
    if r is None:
        return None
    X4, W4, xz, wz, geo, o2, nd, pk = r
    Mc = W4.shape[0]
    if xs.size != 1 or ys.size != 1 or not (ws.size == 1 or (ws.ndim == 1 and ws.shape[0] == Mc)):
        return None
    if y_zero_point is not None and np.size(y_zero_point) != 1:
        return None
    out_dt = _out_dtype(y_zero_point, X4.dtype)
    if out_dt is None:
        return None
    yz = _zp_vec(y_zero_point, out_dt, -1)
    if yz is None:
        return None
    bias = fbias = fbias2 = od = rcp = None
    if p.rq_multiplier == "onednn":
        try:
            s1, wprime, s3 = _onednn_params(x_scale, w_scale, y_scale)
        except _Slow:
            return None
    if B is not None:
        b = np.asarray(B)
        if b.ndim != 1 or b.shape[0] != Mc:
            return None
        if p.rq_multiplier == "onednn":
            # oneDNN (requant._onednn_scale): an int32 bias is in accumulator units (added to
            # fl32(acc) in float32, or to acc in int32 under rq_bias "int32"); a float bias is in
            # real units, added after the two scales
            if b.dtype == np.int32:
                if p.rq_bias == "int32":
                    bias = b
                else:
                    fbias = b.astype(np.float32)
            elif b.dtype.kind == "f" and p.rq_bias != "int32":
                fbias2 = np.ascontiguousarray(b.astype(np.float32))
                if not _no_nan_epilogue(fbias2, s1, wprime):
                    return None
            else:
                return None
        elif p.rq_bias in ("float", "float_rcp_fma"):
            # fbgemm (requant module doc): an int32 bias in accumulator units -> fl32(b); a float
            # bias -> fl32(b / fl32(x_s * w_s[m])); added in float32 after fl32(acc); per tensor
            # (float_rcp_fma) fma(b, fl32(1 / fl32(x_s * w_s)), fl32(acc)) rounded once
            if b.dtype == np.int32:
                fbias = b.astype(np.float32)
            elif p.rq_bias == "float_rcp_fma" and b.dtype.kind == "f":
                fbias, rcp = _rcp_fma_bias(b, xs, ws)
            elif b.dtype.kind == "f":
                with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
                    bsc = (np.asarray(xs, np.float32).reshape(()) * np.asarray(ws, np.float32).reshape(-1)
                           ).astype(np.float32)
                    fbias = np.ascontiguousarray((b.astype(np.float32) / bsc).astype(np.float32))
                if fbias.shape[0] != Mc:
                    fbias = np.broadcast_to(fbias, (Mc,)).copy()
                if not np.all(np.isfinite(fbias)):
                    return None     # NaN / Inf: the reference's rq_nan and saturation rules
            else:
                return None
        elif p.rq_bias == "float_after_scaling":
            # TensorRT (requant module doc): v = fl32(fl32(acc) * M) + bt, bt = fl32(fl32(b) * M)
            # for an int32 bias, fl32(b / y_s) for a float one: the oneDNN epilogue's second
            # bias with unit scales around M (below, once M is known); zero point 0 only (the
            # symmetric profile; oneDNN's adds it before rounding)
            if (b.dtype != np.int32 and b.dtype.kind != "f") or int(yz[0]) != 0:
                return None
        else:
            if b.dtype != np.int32:
                return None
            bias = b
    if Mul is None:
        try:
            Mul = form_multiplier(xs.reshape(()), ws.reshape(-1) if ws.size != 1 else ws.reshape(()),
                                  ys.reshape(()), profile=p, names=("x_scale", "w_scale", "y_scale"))
        except (TypeError, ValueError):
            return None
    m = _mult32(Mul)
    if m is None or not _mult_ok(p, Mul, fbias if rcp is None else fbias * np.float64(rcp),
                                 scales=(x_scale, w_scale)):
        return None
    kw = dict(bias=bias, mult=m, y_zp=int(yz[0]))
    if fbias is not None:
        kw = dict(kw, bias=None, fbias=fbias)
        if rcp is not None:
            kw["fbias_rcp"] = rcp
    if p.rq_multiplier == "onednn":
        kw["mult"] = np.ascontiguousarray(np.broadcast_to(wprime.reshape(-1), (Mc,)) if wprime.size > 1
                                          else wprime.reshape(1), np.float32)
        kw["od"] = (float(s1), float(s3), fbias2)
    elif after:
        b = np.asarray(B)
        with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
            if b.dtype == np.int32:
                bt = (b.astype(np.float32) * np.broadcast_to(m.reshape(-1), (Mc,))).astype(np.float32)
            else:
                bt = (b.astype(np.float32) / np.asarray(ys, np.float32).reshape(())).astype(np.float32)
        if not _no_nan_epilogue(bt, m):
            return None
        kw["mult"] = np.ascontiguousarray(np.broadcast_to(m.reshape(-1), (Mc,)), np.float32)
        kw["od"] = (1.0, 1.0, np.ascontiguousarray(bt))
    if p.rq_method == "fixed_point":
        fx = _fixed_params(p, Mul)
        if fx is None:
            return None
        kw["fx"] = fx
        kw["mult"] = np.ones(fx[0].size, np.float32)
    out, kern = _conv_run(X4, W4, xz, wz, geo, o2, out_dt, pk, **kw)
    if nd == 1:
        out = out[:, :, 0, :]
    return out, kern


# ----------------------------------------------------------------------------- packing, info

# ----------------------------------------------------------------------------- requantize

def requantize(acc, multiplier, y_zero_point, *, output_dtype, bias=None, profile, axis=-1,
               bias_scale=None, scales=None):
    """refquant.requantize through the GEMM's epilogue kernels (``_k.requantize``):

        y = clamp(RNE(fl32(fl32(wrap32(acc + bias)) * M)) + y_zp, qmin, qmax)     (float method)
        y = clamp(MultiplyByQuantizedMultiplier(wrap32(acc + bias), qm, shift) + y_zp, ...)
                                                                           (fixed point)

    for the profiles whose epilogue the kernels implement (``_rq_ok``; the float method's
    multiplier rules through ``_mult_ok``, the fixed point's multipliers through
    ``_fixed_params``).  Taken: an int32 accumulator of at least one element; a multiplier of
    one value or one per channel of ``axis``; a scalar zero point; an int32 bias of one value,
    one per channel of ``axis``, or acc's shape; uint8 / int8 outputs.  acc is seen as rows x
    columns: per-channel values along the last axis are per column, along another axis per row
    (the channel's value repeated for each index before it).  Anything else returns None and
    the reference runs (and raises its errors)."""
    rq = getattr(_k, "requantize", None)
    if (rq is None or scales is not None or bias_scale is not None or type(acc) is not np.ndarray
            or acc.dtype != np.int32 or acc.size == 0):
        return None
    try:
        out_dt = _rr.resolve_dtype(output_dtype, argname="output_dtype")   # (the reference's names)
    except (TypeError, ValueError):
        return None
    if out_dt not in _I8:
        return None
    p = profile
    if not _rq_ok(p, bias=bias is not None, fixed=True):
        return None
    shape = acc.shape
    nd = acc.ndim
    if (not isinstance(axis, (int, np.integer)) or isinstance(axis, (bool, np.bool_))
            or (nd and not -nd <= axis < nd)):
        return None    # the reference names the bad axis
    ax = int(axis) % nd if nd else None
    nch = shape[ax] if ax is not None else 1
    rows = ax is not None and ax != nd - 1          # per-channel values per row
    R = math.prod(shape[:ax + 1]) if rows else (math.prod(shape[:-1]) if nd else 1)
    L = acc.size // R if R else 0
    rep = math.prod(shape[:ax]) if rows else 1      # rows per channel value
    m = np.asarray(multiplier)
    if m.dtype.kind != "f" or not (m.size == 1 or (ax is not None and m.ndim == 1 and m.size == nch)):
        return None
    z = np.asarray(0 if y_zero_point is None else y_zero_point)
    if z.size != 1 or z.dtype.kind not in "iu":
        return None
    zv = int(z.reshape(()))
    lo, hi = (0, 255) if out_dt == np.uint8 else (-128, 127)
    if not lo <= zv <= hi or R > _INT_MAX or L > _INT_MAX:
        return None
    a2 = acc.reshape(R, L) if acc.flags.c_contiguous else np.ascontiguousarray(acc).reshape(R, L)
    bias2 = None
    if bias is not None:
        b = bias if type(bias) is np.ndarray else np.asarray(bias)
        if b.dtype != np.int32:
            return None
        if b.size == 1:
            bias2 = np.broadcast_to(b.reshape(1, 1), a2.shape)
        elif ax is not None and b.ndim == 1 and b.size == nch:
            bias2 = (np.broadcast_to(np.tile(b, rep).reshape(R, 1), a2.shape) if rows
                     else np.broadcast_to(b.reshape(1, L), a2.shape))
        elif b.shape == shape:
            bias2 = np.ascontiguousarray(b).reshape(a2.shape)
        else:
            return None
    fx = None
    mv = m.reshape(-1)
    if p.rq_method == "fixed_point":
        if not (np.all(np.isfinite(mv)) and np.all(mv >= 0)):
            return None
        fx = _fixed_params(p, mv.astype(np.float64) if mv.size > 1 else float(mv[0]))
        if fx is None:
            return None
        if rows and mv.size > 1:
            fx = (np.tile(fx[0], rep), np.tile(fx[1], rep), fx[2])
        mult = None
    else:
        mult = _mult32(mv.astype(np.float32))
        if mult is None or not _mult_ok(p, mult):
            return None
        if rows and mult.size > 1:
            mult = np.tile(mult, rep)
    out = np.empty(a2.shape, out_dt)
    name = rq(a2, out, mult, zv, bias=bias2, fx=fx, mult_rows=rows)
    return out.reshape(shape), name


_INT_MAX = 2 ** 31 - 1


def pack_weights(B, *args, **kwargs):
    """Packed weights for repeated calls (see ``refquant._packed.pack_weights``)."""
    from ._packed import pack_weights as _pw
    return _pw(B, *args, **kwargs)


def kernel_names():
    """{op: kernel a typical call picks at the current ISA level}: u8 x s8 GEMM with M >= 16
    (and M = 1), a 3x3 64->64 stride-1 conv, a 1x1 conv, a 3-channel stem (int8 weights with a
    zero zero point) and a depthwise 3x3 conv."""
    z = np.zeros(1, np.int32)
    A = np.zeros((32, 64), np.uint8)
    B = np.zeros((64, 32), np.int8)
    out = np.zeros((32, 32), np.int32)
    g = _k.gemm(A, B, z, z, out, choose_only=True)
    g1 = _k.gemm(A[:1], B, z, z, out[:1], choose_only=True)
    lvl = _k._kernel_isa_level()
    info = {"MatMulInteger": g, "QLinearMatMul": g, "QGemm": g, "MatMulInteger(M=1)": g1}
    conv = ("conv_implicit_tdp__amx" if g == "gemm_tdp__amx" else
            "conv_implicit_vnni4__avx512vnni" if g == "gemm_vnni4__avx512vnni" else g)
    info["ConvInteger"] = info["QLinearConv"] = conv
    if hasattr(_k, "requantize"):
        info["Requantize"] = _k.requantize(out[:1, :1], np.zeros((1, 1), np.uint8), np.ones(1, np.float32))
    info["QLinearConv(1x1)"] = g if lvl >= 3 else conv
    info["QLinearConv(stem, 3 channels)"] = "conv_rows_tdp__amx" if g == "gemm_tdp__amx" else g
    info["QLinearConv(depthwise)"] = ("dwconv_dpbusd__avx512vnni" if lvl >= 3 else
                                      "dwconv__avx512" if lvl >= 2 else
                                      "dwconv_dpbusd__avxvnni" if g == "gemm_vnni4__avxvnni" else
                                      "dwconv__avx2" if lvl >= 1 else "dwconv__scalar")
    if lvl >= 2:   # (output rows up to 24 pixels, channel multiplier 1; _gemm.set_dw_nhwc)
        info["QLinearConv(depthwise, narrow rows)"] = "dwconv_nhwc__avx512"
    return info


kernel_info = kernel_names


def _onnx_profile():
    from .profile import get_profile
    return get_profile("onnx")


_ONNX_PROFILE = _onnx_profile()
