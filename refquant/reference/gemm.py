"""Integer GEMM reference: MatMulInteger, QLinearMatMul, com.microsoft QGemm.

Semantics block
===============

Accumulation (every op here and in ``conv.py``)
    acc[..., m, n] = wrap32( sum_k (A[..., m, k] - a_zp) * (B[..., k, n] - b_zp) )

    - Operands are widened (int8/uint8 -> float64 holding exact integers), zero points
      are subtracted exactly, and the sum is formed with float64 BLAS (``np.matmul``).
      Every partial sum is an integer of magnitude <= K * 255 * 255 < 2^53, so the
      float64 result is the exact integer sum in any summation order (K < 2^36 is
      checked).  The exact sum is then wrapped to int32 (two's complement), which is
      what a 32-bit accumulator does when the sum overflows: the spec's "accumulation
      may overflow if and only if in 32 bits".
    - ``Profile.int16_pair_saturation`` (x86 vpmaddubsw, AVX2 MLAS / fbgemm): when one
      operand is uint8 and the other int8, the raw (zero point NOT subtracted) products
      are summed pairwise over k = (2j, 2j+1) and each pair sum is saturated to
      [-32768, 32767] before the int32 accumulation; an odd K leaves the last product
      alone (zero padded).  The zero-point terms (row/column sums) are exact, as in
      MLAS / fbgemm: acc = wrap32(exact + sum_j (sat16(P_j) - P_j)).
    - ``accumulator_range`` reports the exact (int64) range, int32 overflow and
      |acc| > 2^24 (where the float32 conversion of the epilogue starts to round).

MatMulInteger-10:  Y(int32) = acc, numpy.matmul broadcasting over batch dimensions.
    a_zero_point: scalar, or per row (M,) for 2-D A, or (..., M, 1); b_zero_point:
    scalar, per column (N,) or (..., 1, N).  Types uint8 / int8, zero point of the
    operand's type.

QLinearMatMul-10/21:  y = saturate(round(acc * M) + y_zp) with M = a_s * b_s / y_s
    formed and applied as in ``requant.py`` (``onnx`` profile: M = fl32(fl32(a_s*b_s)/y_s),
    fl32(acc) * M in float32, RNE, + y_zp after rounding, saturate).  a's scale/zp per
    tensor or per row, b's per tensor or per column (each scale/zp pair the same shape).
    Opset 21 float8 inputs: acc = sum_k (fl(a) - a_zp)(fl(b) - b_zp) computed in float64
    (exact products), then v = fl32(fl32(acc) * M) + fl32(y_zp) cast to the float8
    output with RNE and saturation (the QuantizeLinear-21 rule, saturate=1).

QGemm (com.microsoft):  Y = alpha * A' * B' + C with A' = A or A^T (transA), B' likewise.
    acc' = wrap32(acc + C) (C int32, unidirectionally broadcast to (M, N)), then
    - y_zero_point given: requantize with M = fl32(fl32(fl32(alpha*a_s)*b_s)/y_s);
    - y_zero_point None: float32 output fl32(fl32(acc') * S) with
      S = fl32(fl32(alpha*a_s)*b_s) [/ y_s if y_scale is given] (ORT's
      MLAS_QGEMM_SCALE_BIAS_OUTPUT_PROCESSOR, ZeroMode, no bias).
    a_scale / a_zero_point per tensor; b_scale / b_zero_point per tensor or per column.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .._dtypes import resolve_dtype, qrange, refuse_masked as _refuse_masked
from .._packed import unwrap
from ..profile import Profile, get_profile, ProfileError
from .requant import requantize, form_multiplier, wrap_int32, check_scale  # noqa: F401  (requantize re-exported)

__all__ = ["matmul_integer", "qlinear_matmul", "qgemm", "requantize", "accumulator_range",
           "AccumulatorRange", "AccumulatorWarning"]

_INT8 = (np.dtype(np.int8), np.dtype(np.uint8))
_MAX_EXACT_K = 2 ** 36


class AccumulatorWarning(RuntimeWarning):
    """An int32 accumulation overflowed (wrapped) or left the float32-exact range."""


# --------------------------------------------------------------------------- checks

def _check_opset(op, opset, first, last=None):
    if opset is None:
        return last or first
    try:
        o = int(opset)
    except (TypeError, ValueError):
        raise TypeError(f"opset: expected an int or None, got {opset!r}") from None
    if o < first:
        raise ValueError(f"opset: {op} exists from opset {first}, got opset {o}")
    from .quantize import LATEST_OPSET
    if o > LATEST_OPSET:
        raise ValueError(f"opset: {o} is newer than the newest opset refquant knows ({LATEST_OPSET})")
    return o


_FP32 = Profile(name="fp32-multiplier")   # forms plain float32 scale products


def _profile_for(profile, op, *, per_axis=None, dtype=None, asymmetric_weights=None):
    """The profile as it applies to ``op`` (its op-specific overrides applied; with
    ``per_axis`` (a per-channel weight scale) and ``dtype`` (the activation input's type),
    also the overrides selected by them, e.g. "QLinearMatMul+per_tensor")."""
    p = get_profile(profile)
    p.check_op(op)
    return p.for_op(op, per_axis=per_axis, dtype=dtype, asymmetric_weights=asymmetric_weights)


def _int_tensor(x, argname, allowed=_INT8):
    _refuse_masked(x, argname)
    x = np.asarray(unwrap(x))
    if x.dtype not in allowed:
        raise TypeError(f"{argname}: expected one of {[str(d) for d in allowed]}, got {x.dtype}")
    return x


def _zp(zp, dtype, argname, tensor_name):
    """Zero point as int64 array; numpy arrays must have the tensor's dtype."""
    if zp is None:
        return None
    _refuse_masked(zp, argname)
    z = np.asarray(unwrap(zp))
    if isinstance(zp, (np.ndarray, np.generic)) and z.dtype != dtype:
        raise TypeError(f"{argname}: must have the type of {tensor_name} ({dtype}), got {z.dtype}")
    if z.dtype.kind not in "iu":
        raise TypeError(f"{argname}: integer zero point expected, got {z.dtype}")
    lo, hi = qrange(dtype)
    zi = z.astype(np.int64)
    if np.any(zi < lo) or np.any(zi > hi):
        raise ValueError(f"{argname}: value outside the range [{lo}, {hi}] of {dtype}")
    return zi


def _nonzero(z) -> bool:
    """Whether a zero point (None, a scalar or an array of any numeric type) has an element
    != 0: the "asymmetric_weights" override selector and the profiles' zero-point rules.  Integer
    scalars and arrays take a short cut (the glue calls this on every call)."""
    if z is None:
        return False
    if isinstance(z, (np.integer, int)) and not isinstance(z, bool):
        return bool(z != 0)
    if type(z) is np.ndarray and z.dtype.kind in "iu":
        return bool(z.any())
    return bool(np.any(np.asarray(z) != 0))


def _symmetric_check(p, **zps):
    if not p.symmetric_only:
        return
    for name, z in zps.items():
        if _nonzero(z):
            raise ProfileError(p.symmetric_error or
                               f"profile {p.name!r} accepts only zero {name} (symmetric quantization)")


_WEIGHT_RULES = {
    # Profile.extra["weights"]: the engine's limit on the weight operand's zero point
    # (QLinearConv w, QLinearMatMul b, QGemm B); a model outside it is refused by the engine
    "zero_point_0": "weight zero points must be 0",
    "int8_zero_point_0": "int8 weights need zero points 0 (uint8 weights: any zero point)",
}


def _weight_check(p, wdt, wzp, argname):
    rule = (getattr(p, "extra", None) or {}).get("weights")
    if rule is None or not _nonzero(wzp):
        return
    if rule == "int8_zero_point_0" and np.dtype(wdt) != np.dtype(np.int8):
        return
    why = p.extra.get("weights_error") or _WEIGHT_RULES.get(rule, rule)
    raise ProfileError(f"profile {p.name!r}: non-zero {argname} zero point "
                       f"{np.unique(np.asarray(wzp))[:4].tolist()}; {why}")


def _multiplier_check(p, M, scales=None):
    """Profile.extra["multiplier"] == "normal": the engine refuses a requantization scale that
    is zero or subnormal in float32 (QNNPACK: ``std::isnormal``); raise its error.
    Profile.extra["bias_scale"] == "normal": an fl32(a_s * b_s) (``scales``) whose float32
    reciprocal overflows (<= 2^-128) is refused (the engine's result there is not modelled:
    ``bias_scale_error``)."""
    ex = getattr(p, "extra", None) or {}
    if ex.get("bias_scale") == "normal" and scales is not None:
        with np.errstate(all="ignore"):   # the smallest product (scales are > 0): min * min
            S = np.float32(np.min(check_scale(scales[0], "a_scale")) * np.min(check_scale(scales[1], "b_scale")))
        if not np.isfinite(np.float32(1) / S):
            raise ProfileError(f"profile {p.name!r}: a_scale*b_scale = {float(S)!r} (float32) has no finite "
                               f"float32 reciprocal; {ex.get('bias_scale_error', 'not modelled')}")
    if ex.get("multiplier") != "normal":
        return
    m = np.asarray(M, dtype=np.float32)
    bad = ~(m >= np.finfo(np.float32).tiny)
    if np.any(bad):
        v = float(m[bad].reshape(-1)[0])
        raise ProfileError(f"profile {p.name!r}: requantization scale {v!r} (a_scale*b_scale/y_scale as the "
                           f"engine forms it) is zero or subnormal; "
                           f"{p.extra.get('multiplier_error', 'the engine refuses it')}")


def _row_param(v, a_shape, argname):
    """A per-tensor / per-row parameter of A (..., M, K) -> broadcastable to (..., M, 1)."""
    v = np.asarray(v)
    if v.ndim == 0 or (v.ndim == 1 and v.size == 1):
        return v.reshape(())
    M = a_shape[-2] if len(a_shape) >= 2 else 1
    if v.ndim == 1:
        if len(a_shape) < 2:
            raise ValueError(f"{argname}: a 1-D input (one row) takes a scalar zero point / scale, "
                             f"got shape {v.shape}")
        if v.shape[0] != M:
            raise ValueError(f"{argname}: a 1-D per-row value needs {M} elements (the rows of the "
                             f"input), got shape {v.shape}")
        return v.reshape(M, 1)
    if v.shape[-1] != 1 or v.shape[-2] != M or len(a_shape) < 2:
        raise ValueError(f"{argname}: an N-D per-row value must have shape [..., {M}, 1], got {v.shape}")
    try:
        np.broadcast_shapes(v.shape[:-2], tuple(a_shape[:-2]))
    except ValueError:
        raise ValueError(f"{argname}: batch shape {v.shape[:-2]} does not broadcast with "
                         f"{tuple(a_shape[:-2])}") from None
    return v


def _col_param(v, b_shape, argname):
    """A per-tensor / per-column parameter of B (..., K, N) -> broadcastable to (..., 1, N)."""
    v = np.asarray(v)
    if v.ndim == 0 or (v.ndim == 1 and v.size == 1):
        return v.reshape(())
    N = b_shape[-1] if len(b_shape) >= 2 else 1
    if v.ndim == 1:
        if len(b_shape) < 2 or v.shape[0] != N:
            raise ValueError(f"{argname}: a 1-D per-column value needs {N} elements (columns of "
                             f"B), got shape {v.shape}")
        return v
    if v.shape[-2] != 1 or v.shape[-1] != N:
        raise ValueError(f"{argname}: an N-D per-column value must have shape [..., 1, {N}], got {v.shape}")
    try:
        np.broadcast_shapes(v.shape[:-2], tuple(b_shape[:-2]))
    except ValueError:
        raise ValueError(f"{argname}: batch shape {v.shape[:-2]} does not broadcast with "
                         f"{tuple(b_shape[:-2])}") from None
    return v


def _same_shape(s, z, sname, zname):
    if z is None:
        return
    # the spec asks for equal shapes; a per-tensor zero point with per-channel scales (what
    # quantization tools emit, and onnxruntime accepts) is allowed, two different
    # non-scalar shapes are not.
    if np.size(s) > 1 and np.size(z) > 1 and np.shape(s) != np.shape(z):
        raise ValueError(f"{sname} and {zname} must have the same shape, got {np.shape(s)} and "
                         f"{np.shape(z)}")


def _matmul_shapes(a_shape, b_shape, aname="A", bname="B"):
    if len(a_shape) == 0 or len(b_shape) == 0:
        raise ValueError(f"{aname}, {bname}: matmul needs at least 1-D inputs")
    K1 = a_shape[-1]
    K2 = b_shape[-2] if len(b_shape) >= 2 else b_shape[0]
    if K1 != K2:
        raise ValueError(f"{aname}, {bname}: inner dimensions differ ({aname}.shape={tuple(a_shape)}, "
                         f"{bname}.shape={tuple(b_shape)}: {K1} != {K2})")
    if len(a_shape) > 2 or len(b_shape) > 2:
        try:
            np.broadcast_shapes(tuple(a_shape[:-2]), tuple(b_shape[:-2]))
        except ValueError:
            raise ValueError(f"{aname}, {bname}: batch dimensions {tuple(a_shape[:-2])} and "
                             f"{tuple(b_shape[:-2])} do not broadcast") from None
    return K1


# --------------------------------------------------------------------------- core GEMM

def _exact_matmul_f64(A, B, azp=None, bzp=None):
    """Exact sum_k (A - azp)(B - bzp) as a float64 array of integers (|value| < 2^53)."""
    K = A.shape[-1]
    if K >= _MAX_EXACT_K:
        raise ValueError(f"K={K}: inner dimension too large for the exact float64 accumulation")
    Af = A.astype(np.float64)
    if azp is not None:
        Af -= azp
    Bf = B.astype(np.float64)
    if bzp is not None:
        Bf -= bzp
    return np.matmul(Af, Bf)


def _pair_terms(A, B, count_only=False):
    """Int16 pair saturation: (correction sum_j (sat16(P_j) - P_j), number of saturated pairs).

    A (..., M, K), B (..., K, N) raw integer operands (2-D after matmul promotion).
    """
    a2 = A.ndim == 1
    b2 = B.ndim == 1
    Aa = A[None, :] if a2 else A
    Bb = B[:, None] if b2 else B
    batch = np.broadcast_shapes(Aa.shape[:-2], Bb.shape[:-2])
    Aa = np.broadcast_to(Aa, batch + Aa.shape[-2:])
    Bb = np.broadcast_to(Bb, batch + Bb.shape[-2:])
    M, K = Aa.shape[-2:]
    N = Bb.shape[-1]
    corr = np.zeros(batch + (M, N), dtype=np.int64)
    nsat = 0
    if K < 2 or M == 0 or N == 0:      # no pairs, or an empty output: nothing saturates
        out = corr
    else:
        Kp = K + (K & 1)
        for idx in np.ndindex(*batch):
            a = np.zeros((M, Kp), np.int32)
            a[:, :K] = Aa[idx]
            b = np.zeros((Kp, N), np.int32)
            b[:K] = Bb[idx]
            a0, a1 = a[:, 0::2], a[:, 1::2]
            b0, b1 = b[0::2], b[1::2]
            c = corr[idx]
            if M * N * Kp <= (1 << 20):
                nsat += _pair_block(a0, a1, b0, b1, c, count_only)
            else:
                nsat += _pair_filtered(a0, a1, b0, b1, c, count_only)
        out = corr
    if a2:
        out = out[..., 0, :]
    if b2:
        out = out[..., 0]
    return out, nsat


def _pair_block(a0, a1, b0, b1, c, count_only):
    """Small problems: every pair j at once, in chunks of M*N*j <= 4M elements."""
    M, N = a0.shape[0], b0.shape[1]
    # pairs whose largest possible |P| exceeds int16 are the only candidates
    bound = (np.abs(a0).max(0) * np.abs(b0).max(1) + np.abs(a1).max(0) * np.abs(b1).max(1))
    cand = np.nonzero(bound > 32767)[0]
    nsat = 0
    step = max(1, (1 << 22) // max(1, M * N))
    for s in range(0, cand.size, step):
        j = cand[s:s + step]
        P = a0[:, None, j] * b0[j].T[None, :, :] + a1[:, None, j] * b1[j].T[None, :, :]   # (M, N, len(j))
        hi = P > 32767
        lo = P < -32768
        nsat += int(hi.sum() + lo.sum())
        if not count_only:
            d = np.where(hi, 32767 - P, 0) + np.where(lo, -32768 - P, 0)
            c += d.sum(axis=-1, dtype=np.int64)
    return nsat


def _pair_filtered(a0, a1, b0, b1, c, count_only):
    """Large problems: per pair j, only the rows / columns that can reach |P| > 32767
    (|P| <= (|a0|+|a1|) * max|b| and <= (|b0|+|b1|) * max|a|)."""
    aa0, aa1, ab0, ab1 = np.abs(a0), np.abs(a1), np.abs(b0), np.abs(b1)
    rowsum = aa0 + aa1
    colsum = ab0 + ab1
    maxA = np.maximum(aa0, aa1).max(0)
    maxB = np.maximum(ab0, ab1).max(1)
    nsat = 0
    for j in range(a0.shape[1]):
        rows = np.nonzero(rowsum[:, j] * maxB[j] > 32767)[0]
        if rows.size == 0:
            continue
        cols = np.nonzero(colsum[j] * maxA[j] > 32767)[0]
        if cols.size == 0:
            continue
        P = a0[rows, j][:, None] * b0[j, cols][None, :] + a1[rows, j][:, None] * b1[j, cols][None, :]
        d = (np.minimum(P, 32767) - P) + (np.maximum(P, -32768) - P)
        nz = d != 0
        if nz.any():
            nsat += int(np.count_nonzero(nz))
            if not count_only:
                c[np.ix_(rows, cols)] += d
    return nsat


def _use_pair_saturation(p, A, B):
    # True / "mlas" = every u8 x s8 GEMM; "fbgemm_depthwise" names a scope that only
    # convolutions use (see conv._pair_saturation_applies)
    if p.int16_pair_saturation not in (True, "mlas"):
        return False
    return {A.dtype, B.dtype} == {np.dtype(np.uint8), np.dtype(np.int8)}


def _int_gemm(A, B, azp, bzp, p, *, wrap=True):
    """int32 (wrapped) or exact int64 accumulator of raw operands with zero points."""
    acc = _exact_matmul_f64(A, B, azp, bzp).astype(np.int64)
    if _use_pair_saturation(p, A, B):
        corr, _ = _pair_terms(A, B)
        acc = acc + corr
    return wrap_int32(acc) if wrap else acc


# --------------------------------------------------------------------------- accumulator_range

@dataclass(frozen=True)
class AccumulatorRange:
    """Exact accumulator statistics (see :func:`accumulator_range`)."""
    min: int
    max: int
    int32_overflow: bool        # some exact value outside [-2^31, 2^31 - 1] (the int32 result wraps)
    n_int32_overflow: int
    exceeds_float32_exact: bool  # some |acc| > 2^24 (a float32 conversion may round)
    n_exceeds_float32_exact: int
    float32_rounded: int        # how many values fl32(wrapped acc) != wrapped acc
    n_pair_saturated: int | None  # u8 x s8: int16 pair sums that saturate (vpmaddubsw); else None
    size: int

    @property
    def max_abs(self) -> int:
        return max(abs(self.min), abs(self.max))

    def __str__(self):
        s = (f"accumulator range [{self.min}, {self.max}] over {self.size} values; "
             f"int32 overflow: {self.n_int32_overflow}; |acc| > 2^24: {self.n_exceeds_float32_exact} "
             f"({self.float32_rounded} change when converted to float32)")
        if self.n_pair_saturated is not None:
            s += f"; int16 pair saturations (vpmaddubsw): {self.n_pair_saturated}"
        return s


def accumulator_range(A, B=None, a_zero_point=None, b_zero_point=None, *, bias=None, conv=None,
                      warn=False, count_pairs=True, **conv_attributes) -> AccumulatorRange:
    """Exact range of an integer accumulation, and whether int32 / float32 lose information.

    Forms:
      ``accumulator_range(acc)``                       an exact accumulator array (int64 or any int)
      ``accumulator_range(A, B, a_zp, b_zp)``          MatMulInteger operands
      ``accumulator_range(x, w, x_zp, w_zp, conv=True, strides=..., pads=...)``
                                                       ConvInteger operands (any conv attribute
                                                       keyword also implies conv=True)
    ``bias`` (int32, broadcastable; per output channel for conv) is added to the exact sum
    first, as the QLinear epilogues do.  With ``warn=True`` an ``AccumulatorWarning`` is
    issued when int32 overflows or |acc| exceeds 2^24 (or an int16 pair saturates).
    ``count_pairs=False`` skips the u8 x s8 int16-pair count (it costs about as much as
    the GEMM itself in numpy); ``n_pair_saturated`` is then None.

    Returns ``AccumulatorRange(min, max, int32_overflow, n_int32_overflow,
    exceeds_float32_exact, n_exceeds_float32_exact, float32_rounded, n_pair_saturated, size)``.
    """
    npair = None
    if B is None:
        if a_zero_point is not None or b_zero_point is not None or conv_attributes:
            raise ValueError("accumulator_range: zero points / conv attributes need the operands A, B")
        acc = np.asarray(A)
        if acc.dtype.kind not in "iu":
            raise TypeError(f"A: integer accumulator expected, got {acc.dtype}")
        acc = acc.astype(np.int64)
    elif conv or conv_attributes:
        from .conv import _conv_accumulate
        acc, npair = _conv_accumulate(A, B, a_zero_point, b_zero_point, exact=True,
                                      count_pairs=count_pairs, **conv_attributes)
    else:
        A_ = _int_tensor(A, "A")
        B_ = _int_tensor(B, "B")
        _matmul_shapes(A_.shape, B_.shape)
        azp = _zp(a_zero_point, A_.dtype, "a_zero_point", "A")
        bzp = _zp(b_zero_point, B_.dtype, "b_zero_point", "B")
        azp = None if azp is None else _row_param(azp, A_.shape, "a_zero_point")
        bzp = None if bzp is None else _col_param(bzp, B_.shape, "b_zero_point")
        acc = _exact_matmul_f64(A_, B_, azp, bzp).astype(np.int64)
        if count_pairs and {A_.dtype, B_.dtype} == {np.dtype(np.uint8), np.dtype(np.int8)}:
            _, npair = _pair_terms(A_, B_, count_only=True)
    if bias is not None:
        b = np.asarray(bias)
        if b.dtype.kind not in "iu":
            raise TypeError(f"bias: int32 expected, got {b.dtype}")
        if (conv or conv_attributes) and b.ndim == 1 and acc.ndim >= 2:
            b = b.reshape((1, -1) + (1,) * (acc.ndim - 2))
        acc = acc + b.astype(np.int64)
    if acc.size == 0:
        return AccumulatorRange(0, 0, False, 0, False, 0, 0, npair, 0)
    lo, hi = int(acc.min()), int(acc.max())
    n_over = int(np.count_nonzero((acc < -(2 ** 31)) | (acc > 2 ** 31 - 1)))
    n_big = int(np.count_nonzero(np.abs(acc) > 2 ** 24))
    w = wrap_int32(acc)
    n_round = int(np.count_nonzero(w.astype(np.float32).astype(np.int64) != w))
    r = AccumulatorRange(lo, hi, n_over > 0, n_over, n_big > 0, n_big, n_round, npair, int(acc.size))
    if warn and (n_over or n_big or npair):
        warnings.warn(str(r), AccumulatorWarning, stacklevel=2)
    return r


# --------------------------------------------------------------------------- MatMulInteger

def matmul_integer(A, B, a_zero_point=None, b_zero_point=None, *, profile="onnx", opset=None):
    """ONNX MatMulInteger-10: ``Y = wrap32(sum_k (A - a_zero_point) * (B - b_zero_point))`` (int32).

    numpy.matmul shapes and batch broadcasting; ``a_zero_point`` scalar / per row ((M,) for
    2-D A, or (..., M, 1)); ``b_zero_point`` scalar / per column ((N,) or (..., 1, N)).
    A, B: uint8 or int8 (any combination); zero points of the operand's type.
    ``profile.int16_pair_saturation`` emulates vpmaddubsw (see the module docstring).
    """
    p = _profile_for(profile, "MatMulInteger")
    _check_opset("MatMulInteger", opset, 10)
    A = _int_tensor(A, "A")
    B = _int_tensor(B, "B")
    _matmul_shapes(A.shape, B.shape)
    azp = _zp(a_zero_point, A.dtype, "a_zero_point", "A")
    bzp = _zp(b_zero_point, B.dtype, "b_zero_point", "B")
    _symmetric_check(p, a_zero_point=azp, b_zero_point=bzp)
    azp = None if azp is None else _row_param(azp, A.shape, "a_zero_point")
    bzp = None if bzp is None else _col_param(bzp, B.shape, "b_zero_point")
    return _int_gemm(A, B, azp, bzp, p)


# --------------------------------------------------------------------------- QLinearMatMul

_FLOAT8 = None


def _float8_types():
    global _FLOAT8
    if _FLOAT8 is None:
        _FLOAT8 = tuple(resolve_dtype(n) for n in ("float8e4m3fn", "float8e4m3fnuz", "float8e5m2",
                                                   "float8e5m2fnuz"))
    return _FLOAT8


def _check_scale_dtype(s, argname, opset):
    dt = np.asarray(s).dtype
    if opset < 21 and dt in (np.dtype(np.float16), resolve_dtype("bfloat16")):
        raise TypeError(f"{argname}: float16/bfloat16 scales need opset >= 21, got opset {opset}")


def qlinear_matmul(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point, *,
                   profile="onnx", opset=None):
    """ONNX QLinearMatMul-10/21: ``y = saturate(round(acc * a_scale*b_scale/y_scale) + y_zero_point)``.

    acc = wrap32(sum_k (a - a_zero_point)(b - b_zero_point)); the multiplier and the epilogue
    follow ``profile``'s rq_* fields (``requant.py``).  a's scale/zp: scalar or per row; b's:
    scalar or per column; y's: scalar.  Output type = y_zero_point's type (a's type when
    y_zero_point is a Python int).  Opset 21 adds float8 tensors and float16/bfloat16 scales.
    """
    return _qlinear_matmul(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale,
                           y_zero_point, profile, opset, _int_gemm)


def _check_scale_types_match(scales, names):
    """QLinearMatMul-21's scales share one type (TS): typed numpy scales of different float
    types are refused (Python floats take the others' type)."""
    typed = {n: np.asarray(s).dtype for s, n in zip(scales, names) if isinstance(s, (np.ndarray, np.generic))}
    if len(set(typed.values())) > 1:
        raise TypeError(f"{', '.join(names)}: QLinearMatMul's scales share one type, got "
                        + ", ".join(f"{n} {d}" for n, d in typed.items()))


def _qlinear_matmul(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point,
                    profile, opset, int_gemm):
    """qlinear_matmul with the integer GEMM ``int_gemm(A, B, azp, bzp, p)`` given: the fast glue
    passes one whose int32 accumulator comes from the kernels (the same wrapped value) for the
    profiles whose epilogue they lack; everything else is this function's."""
    p = _profile_for(profile, "QLinearMatMul")
    op = _check_opset("QLinearMatMul", opset, 10, 21)
    _refuse_masked(a, "a")
    _refuse_masked(b, "b")
    a = np.asarray(unwrap(a))
    b = np.asarray(unwrap(b))
    f8 = _float8_types()
    allowed = _INT8 + (f8 if op >= 21 else ())
    for t, n in ((a, "a"), (b, "b")):
        if t.dtype not in allowed:
            raise TypeError(f"{n}: opset {op} QLinearMatMul takes {[str(d) for d in allowed]}, got {t.dtype}")
    is_f8 = a.dtype in f8 or b.dtype in f8
    if is_f8 and not (a.dtype in f8 and b.dtype in f8):
        raise TypeError(f"a, b: float8 and integer inputs cannot be mixed ({a.dtype}, {b.dtype})")
    _matmul_shapes(a.shape, b.shape, "a", "b")
    for s, n in ((a_scale, "a_scale"), (b_scale, "b_scale"), (y_scale, "y_scale")):
        check_scale(s, n)
        _check_scale_dtype(s, n, op)
    _check_scale_types_match((a_scale, b_scale, y_scale), ("a_scale", "b_scale", "y_scale"))
    if np.size(y_scale) != 1:
        raise ValueError(f"y_scale: must be a scalar (per-tensor), got shape {np.shape(y_scale)}")
    _same_shape(a_scale, a_zero_point, "a_scale", "a_zero_point")
    _same_shape(b_scale, b_zero_point, "b_scale", "b_zero_point")
    if y_zero_point is not None and np.size(y_zero_point) != 1:
        raise ValueError(f"y_zero_point: must be a scalar (per-tensor), got shape {np.shape(y_zero_point)}")
    if is_f8:
        return _qlinear_matmul_f8(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale,
                                  y_zero_point, p)
    if isinstance(y_zero_point, (np.ndarray, np.generic)):
        out_dt = np.asarray(y_zero_point).dtype
        if out_dt not in _INT8:
            raise TypeError(f"y_zero_point: uint8 or int8 expected, got {out_dt}")
    else:
        out_dt = a.dtype
    azp = _zp(a_zero_point, a.dtype, "a_zero_point", "a")
    bzp = _zp(b_zero_point, b.dtype, "b_zero_point", "b")
    yzp = _zp(y_zero_point, out_dt, "y_zero_point", "y")
    _symmetric_check(p, a_zero_point=azp, b_zero_point=bzp, y_zero_point=yzp)
    _weight_check(p, b.dtype, bzp, "b (the weight)")
    azp = None if azp is None else _row_param(azp, a.shape, "a_zero_point")
    bzp = None if bzp is None else _col_param(bzp, b.shape, "b_zero_point")
    p = _profile_for(profile, "QLinearMatMul", per_axis=bool(np.size(b_scale) > 1), dtype=a.dtype,
                     asymmetric_weights=_nonzero(bzp))
    acc = int_gemm(a, b, azp, bzp, p)
    M = _matmul_multiplier(a_scale, b_scale, y_scale, a.shape, b.shape, acc.shape, p)
    _multiplier_check(p, M, (a_scale, b_scale))
    scales = None
    if p.rq_multiplier == "onednn":   # the scales one by one (requant.py), shaped like M
        one = np.ones((), np.float32)
        scales = (_matmul_multiplier(a_scale, one, one, a.shape, b.shape, acc.shape, _FP32),
                  _matmul_multiplier(one, b_scale, one, a.shape, b.shape, acc.shape, _FP32),
                  check_scale(y_scale, "y_scale").reshape(()))
    return requantize(acc, M, None if yzp is None else yzp.reshape(()), output_dtype=out_dt, profile=p,
                      scales=scales)


def _matmul_multiplier(a_scale, b_scale, y_scale, a_shape, b_shape, acc_shape, p):
    """M per output element: a's scale per row (..., M, 1), b's per column (..., 1, N)."""
    a_s = _row_param(a_scale, a_shape, "a_scale")
    b_s = _col_param(b_scale, b_shape, "b_scale")
    M = form_multiplier(a_s, b_s, np.asarray(y_scale).reshape(()), profile=p)
    if M.ndim == 0:
        return M
    if len(b_shape) == 1 and M.ndim >= 2:       # matmul drops the column axis
        M = M[..., 0]
    if len(a_shape) == 1 and M.ndim >= 2:       # matmul drops the row axis
        M = M[..., 0, :]
    try:
        return np.broadcast_to(M, np.broadcast_shapes(M.shape, acc_shape))
    except ValueError:
        raise ValueError(f"a_scale, b_scale: shapes {np.shape(a_scale)}, {np.shape(b_scale)} do not broadcast "
                         f"to the output shape {tuple(acc_shape)}") from None


def _f8_value(z, dt, argname):
    if z is None:
        return np.float64(0.0)
    zz = np.asarray(z)
    if isinstance(z, (np.ndarray, np.generic)) and zz.dtype != dt:
        raise TypeError(f"{argname}: must have type {dt}, got {zz.dtype}")
    return zz.astype(np.float64)


def _qlinear_matmul_f8(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp, p):
    out_dt = np.asarray(y_zp).dtype if isinstance(y_zp, (np.ndarray, np.generic)) else a.dtype
    if out_dt not in _float8_types():
        raise TypeError(f"y_zero_point: float8 expected with float8 inputs, got {out_dt}")
    az = _row_param(_f8_value(a_zp, a.dtype, "a_zero_point"), a.shape, "a_zero_point")
    bz = _col_param(_f8_value(b_zp, b.dtype, "b_zero_point"), b.shape, "b_zero_point")
    acc = np.matmul(a.astype(np.float64) - az, b.astype(np.float64) - bz)
    M = _matmul_multiplier(a_scale, b_scale, y_scale, a.shape, b.shape, acc.shape, p)
    P = np.float64 if p.rq_precision == "float64" else np.float32
    if p.rq_acc_to_float == "float64" and P is np.float64:
        af = acc
    else:
        af = acc.astype(np.float32).astype(P)
    v = (af * M.astype(P)).astype(P)
    yz = _f8_value(y_zp, out_dt, "y_zero_point").astype(P)
    v = (v + yz).astype(P)
    import ml_dtypes
    fmax = float(ml_dtypes.finfo(out_dt).max)
    v = np.where(np.isnan(v), v, np.clip(v, -fmax, fmax))
    return v.astype(out_dt)


# --------------------------------------------------------------------------- QGemm

def qgemm(A, a_scale, a_zero_point, B, b_scale, b_zero_point, C=None, y_scale=None, y_zero_point=None,
          *, alpha=1.0, transA=0, transB=0, profile="onnx", opset=None):
    """onnxruntime com.microsoft QGemm-1: ``Y = alpha * A' B' + C``, quantized or float32.

    acc' = wrap32(sum_k (A'-a_zp)(B'-b_zp) + C).  With ``y_zero_point``: requantized with
    M = fl32(fl32(fl32(alpha*a_scale)*b_scale)/y_scale) (``profile.rq_multiplier``) and
    the profile's epilogue; output type = y_zero_point's type.  Without: float32
    ``fl32(fl32(acc') * fl32(fl32(alpha*a_scale)*b_scale) [/ y_scale])``.
    A: uint8/int8 (M, K) or (K, M) with transA; B: uint8/int8 (int8 A needs int8 B);
    a_scale/a_zero_point per tensor, b_scale/b_zero_point per tensor or per column (N,);
    C: int32, unidirectionally broadcastable to (M, N).
    """
    return _qgemm(A, a_scale, a_zero_point, B, b_scale, b_zero_point, C, y_scale, y_zero_point,
                  alpha, transA, transB, profile, opset, _int_gemm)


def _flag_ok(v):
    return isinstance(v, (int, np.integer)) and int(v) in (0, 1)    # bools are ints: fine


def _qgemm_attrs_ok(alpha, transA, transB):
    """QGemm's attributes have their ONNX types: transA / transB ints 0 or 1, alpha a float
    (a Python or numpy real number, or a 0-d real array)."""
    return (_flag_ok(transA) and _flag_ok(transB)
            and (isinstance(alpha, (int, float, np.integer, np.floating))
                 or (type(alpha) is np.ndarray and alpha.ndim == 0 and alpha.dtype.kind in "iuf")))


def _qgemm(A, a_scale, a_zero_point, B, b_scale, b_zero_point, C, y_scale, y_zero_point, alpha,
           transA, transB, profile, opset, int_gemm):
    """qgemm with the integer GEMM given (see _qlinear_matmul)."""
    p = _profile_for(profile, "QGemm")
    _check_opset("QGemm", opset, 1)
    A = _int_tensor(A, "A")
    B = _int_tensor(B, "B")
    if not _qgemm_attrs_ok(alpha, transA, transB):
        for v, n in ((transA, "transA"), (transB, "transB")):
            if not _flag_ok(v):
                raise TypeError(f"{n}: expected 0 or 1, got {v!r}")
        raise TypeError(f"alpha: expected a real number, got {alpha!r}")
    _refuse_masked(C, "C")
    if A.ndim != 2:
        raise ValueError(f"A: QGemm takes a 2-D A, got shape {A.shape}")
    if B.ndim != 2:
        raise ValueError(f"B: QGemm takes a 2-D B, got shape {B.shape}")
    if A.dtype == np.int8 and B.dtype != np.int8:
        raise TypeError("A, B: QGemm with int8 A needs int8 B (onnxruntime type constraints)")
    At = A.T if transA else A
    Bt = B.T if transB else B
    if At.shape[1] != Bt.shape[0]:
        raise ValueError(f"A, B: inner dimensions differ (A'={At.shape}, B'={Bt.shape}, transA={transA}, "
                         f"transB={transB})")
    Mr, N = At.shape[0], Bt.shape[1]
    check_scale(a_scale, "a_scale")
    check_scale(b_scale, "b_scale")
    if np.size(a_scale) != 1:
        raise ValueError(f"a_scale: must be a scalar, got shape {np.shape(a_scale)}")
    if a_zero_point is not None and np.size(a_zero_point) != 1:
        raise ValueError(f"a_zero_point: must be a scalar, got shape {np.shape(a_zero_point)}")
    for v, n in ((b_scale, "b_scale"), (b_zero_point, "b_zero_point")):
        if v is not None and np.ndim(v) > 1 or (v is not None and np.ndim(v) == 1 and np.size(v) not in (1, N)):
            raise ValueError(f"{n}: must be a scalar or 1-D of size 1 or N={N}, got shape {np.shape(v)}")
    _same_shape(b_scale, b_zero_point, "b_scale", "b_zero_point")
    azp = _zp(a_zero_point, A.dtype, "a_zero_point", "A")
    bzp = _zp(b_zero_point, B.dtype, "b_zero_point", "B")
    if y_zero_point is not None and y_scale is None:
        raise ValueError("y_zero_point: given without y_scale")
    if y_scale is not None:
        check_scale(y_scale, "y_scale")
        if np.size(y_scale) != 1:
            raise ValueError(f"y_scale: must be a scalar, got shape {np.shape(y_scale)}")
    if y_zero_point is not None:
        if np.size(y_zero_point) != 1:
            raise ValueError(f"y_zero_point: must be a scalar, got shape {np.shape(y_zero_point)}")
        out_dt = np.asarray(y_zero_point).dtype if isinstance(y_zero_point, (np.ndarray, np.generic)) \
            else A.dtype
        if out_dt not in _INT8:
            raise TypeError(f"y_zero_point: uint8 or int8 expected, got {out_dt}")
        yzp = _zp(y_zero_point, out_dt, "y_zero_point", "Y")
    else:
        yzp = None
    _symmetric_check(p, a_zero_point=azp, b_zero_point=bzp, y_zero_point=yzp)
    _weight_check(p, Bt.dtype, bzp, "B (the weight)")
    p = _profile_for(profile, "QGemm", per_axis=bool(np.size(b_scale) > 1), dtype=A.dtype,
                     asymmetric_weights=_nonzero(bzp))
    acc = int_gemm(At, Bt, None if azp is None else azp.reshape(()),
                    None if bzp is None else bzp.reshape(-1) if bzp.size != 1 else bzp.reshape(()), p)
    bias = None
    if C is not None:
        Cc = np.asarray(C)
        ok = Cc.ndim <= 2 and (Cc.size == 1 or
                               (Cc.ndim == 1 and Cc.shape[0] == N) or
                               (Cc.ndim == 2 and Cc.shape[0] in (1, Mr) and Cc.shape[1] in (1, N)))
        if not ok:
            raise ValueError(f"C: shape {Cc.shape} is not unidirectionally broadcastable to (M, N)=({Mr}, {N})")
        Cc = Cc.reshape(() if Cc.size == 1 else Cc.shape)
        if Cc.dtype == np.int32:
            acc = wrap_int32(acc.astype(np.int64) + Cc.astype(np.int64))
        elif Cc.dtype.kind == "f" and p.rq_bias != "int32" and yzp is not None:
            bias = Cc.astype(np.float32)
        else:
            raise TypeError(f"C: QGemm bias must be int32 (float32 only with a float-bias profile and a "
                            f"quantized output), got {Cc.dtype}")
    bs = np.asarray(b_scale).reshape(-1) if np.size(b_scale) != 1 else np.asarray(b_scale).reshape(())
    a_s = np.asarray(a_scale).reshape(())
    if yzp is None:
        S = form_multiplier(a_s, bs, None if y_scale is None else np.asarray(y_scale).reshape(()),
                            profile=p, alpha=alpha)
        S32 = S.astype(np.float32)
        return (acc.astype(np.float32) * S32).astype(np.float32)
    M = form_multiplier(a_s, bs, np.asarray(y_scale).reshape(()), profile=p, alpha=alpha)
    _multiplier_check(p, M, (a_s, bs))
    bias_scale = None
    if bias is not None:
        if p.rq_bias in ("float", "float_rcp_fma"):   # fbgemm: b / fl32(act_scale * w_scale)
            bias_scale = form_multiplier(a_s, bs, None, profile="onnx", alpha=alpha)   # fl32(fl32(alpha*a_s)*b_s)
        else:                        # float_after_scaling: b / y_scale
            bias_scale = check_scale(y_scale, "y_scale").reshape(())
    scales = None
    if p.rq_multiplier == "onednn":   # alpha folds into the activation scale
        scales = (form_multiplier(a_s, np.float32(1), None, profile=_FP32, alpha=alpha), bs,
                  check_scale(y_scale, "y_scale").reshape(()))
    return requantize(acc, M, yzp.reshape(()), output_dtype=out_dt, profile=p, axis=-1, bias=bias,
                      bias_scale=bias_scale, scales=scales)
