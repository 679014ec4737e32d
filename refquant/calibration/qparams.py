"""Scale and zero point from a real range, as each tool computes them.

Semantics (per tool; every step in the stated precision)
--------------------------------------------------------
onnxruntime -- ``onnxruntime/quantization/quant_utils.py`` ``get_qmin_qmax_for_qType`` +
``compute_scale_zp`` (what quantize_static applies to each calibrated tensor range)::

    (qmin, qmax) = reduce_range ? {int8: [-64, 64], uint8: [0, 127], int16: [-16384, 16384],
                                   uint16: [0, 32767], int4: [-4, 3], uint4: [0, 7]}
                 : symmetric ? {int8: [-127, 127], int16: [-32767, 32767], others: full range}
                 : full range
    rmin = min(f32 rmin, 0); rmax = max(f32 rmax, 0)                      (float32)
    [min_real_range]: rmax = max(rmax, f32(rmin + f32(min_real_range)))
    symmetric: a = max(|rmin|, |rmax|); rmin, rmax = -a, a               (float32)
    scale64 = (f64(rmax) - f64(rmin)) / f64(qmax - qmin)                 (float64)
        [onnxruntime <= 1.30: f64(f32(rmax - rmin)), the difference rounded to float32 first
         (and infinite past float32's range); 1.31 promotes before subtracting]
    scale64 < FLT_MIN (1.1754944e-38)  ->  scale = 1.0, zp = 0
    symmetric: zp = round_half_even((qmin + qmax) / 2.0)   (int8 0, uint8 128, uint16 32768)
    else:      zp = round_half_even(f64(qmin) - f64(rmin) / scale64)     (float64, RNE)
    scale = f32(scale64)                                                 (rounded once)

pytorch -- ``torch/ao/quantization/observer.py`` ``_calculate_qparams`` with
``utils.calculate_qmin_qmax`` (float32 tensors throughout; eps = 2**-23)::

    (qmin, qmax) = int8 [-128, 127] (reduce_range [-64, 63]), uint8 [0, 255] ([0, 127]),
                   int16 [-32768, 32767], uint16 [0, 65535], int32 [-2^31, 2^31 - 1];
                   int4/uint4/int2/uint2 = a custom quant_min/quant_max on qint8/quint8
                   (reduce_range then halves them with floor division)
    min_neg = min(rmin, 0); max_pos = max(rmax, 0)                       (float32)
    symmetric + reduce_range + quint8 (uint8/uint4/uint2): refused, as MinMaxObserver's constructor
               refuses it (HistogramObserver accepts it: see torch_histogram_qparams)
    symmetric: scale = max(max(-min_neg, max_pos) / f32((qmax - qmin) / 2), eps)
               zp = 0 (signed), 128 (uint8), (qmin + qmax) // 2 (custom unsigned), 32768 (uint16)
    affine:    scale = max((max_pos - min_neg) / f32(qmax - qmin), eps)      (float32 division)
               zp = clamp(qmin - int(round_half_even(f32(min_neg / scale))), qmin, qmax)

tensorrt -- symmetric only (IInt8 dynamic range amax; explicit-quantization Q/DQ scale)::

    amax = max(|rmin|, |rmax|)                                           (float32)
    scale = f32(amax / qmax)   qmax = 127 (int8), 7 (int4), 448 (float8e4m3fn);  zp = 0
    amax == 0 -> scale 1.0 (TensorRT has no defined scale for an empty range; refquant uses
    ModelOpt's export rule ``scale.masked_fill_(scale == 0, 1.0)``)

modelopt -- ``modelopt/torch/quantization/export_onnx.py`` ``export_int8`` (and the fake-quant
``_tensor_quant``): ``maxbound = 2**(bits - 1 + unsigned) - 1``; scale = f32(amax) / f32(maxbound)
(float32); scale == 0 -> 1.0; zp = 0 (int8, or uint8 when unsigned); amax = max(|rmin|, |rmax|).
"""
from __future__ import annotations

import numpy as np
import ml_dtypes

from .._dtypes import resolve_dtype
from ._common import CalibrationError, TOOLS, check_flag

F32 = np.float32

_I8, _U8 = np.dtype(np.int8), np.dtype(np.uint8)
_I16, _U16 = np.dtype(np.int16), np.dtype(np.uint16)
_I32 = np.dtype(np.int32)
_I4, _U4 = np.dtype(ml_dtypes.int4), np.dtype(ml_dtypes.uint4)
_I2, _U2 = np.dtype(ml_dtypes.int2), np.dtype(ml_dtypes.uint2)
_E4M3 = np.dtype(ml_dtypes.float8_e4m3fn)

_ORT_FULL = {_U8: (0, 255), _I8: (-128, 127), _U16: (0, 65535), _I16: (-32768, 32767),
             _U4: (0, 15), _I4: (-8, 7)}
_ORT_SYM = {_I8: (-127, 127), _I16: (-32767, 32767)}
_ORT_REDUCED = {_U8: (0, 127), _I8: (-64, 64), _U16: (0, 32767), _I16: (-16384, 16384),
                _U4: (0, 7), _I4: (-4, 3)}


def _names(dts):
    from .._dtypes import onnx_name
    return ", ".join(sorted(onnx_name(d) for d in dts))


def ort_qrange(dt: np.dtype, *, symmetric: bool, reduce_range: bool) -> tuple[int, int]:
    """ORT ``get_qmin_qmax_for_qType``: reduce_range wins over symmetric."""
    if dt not in _ORT_FULL:
        raise CalibrationError(f"dtype: onnxruntime's quantization tool computes integer scale/zero point "
                               f"for {_names(_ORT_FULL)} only, not {dt}")
    if reduce_range:
        return _ORT_REDUCED[dt]
    if symmetric and dt in _ORT_SYM:
        return _ORT_SYM[dt]
    return _ORT_FULL[dt]


def torch_qrange(dt: np.dtype, *, reduce_range: bool) -> tuple[int, int, bool]:
    """torch ``calculate_qmin_qmax`` -> (qmin, qmax, has_customized_qrange)."""
    if dt == _I8:
        return (-64, 63, False) if reduce_range else (-128, 127, False)
    if dt == _U8:
        return (0, 127, False) if reduce_range else (0, 255, False)
    if dt == _I16:
        return (-32768, 32767, False)
    if dt == _U16:
        return (0, 65535, False)
    if dt == _I32:
        return (-2**31, 2**31 - 1, False)
    custom = {_I4: (-8, 7), _U4: (0, 15), _I2: (-2, 1), _U2: (0, 3)}
    if dt in custom:
        lo, hi = custom[dt]
        if reduce_range:
            lo, hi = lo // 2, hi // 2
        return lo, hi, True
    raise CalibrationError(f"dtype: torch.ao observers support int8, uint8, int16, uint16, int32 "
                           f"(and int4/uint4/int2/uint2 as custom quant_min/quant_max), not {dt}")


def _as_f32(name, v):
    a = np.asarray(v)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected a real number or array, got {a.dtype}")
    a = a.astype(np.float32)
    if not np.all(np.isfinite(a)):
        raise CalibrationError(f"{name}: must be finite, got {v!r}")
    return a


def _cast_zp(zp, dt):
    if dt.kind == "V" or dt in (_I4, _U4, _I2, _U2):
        return np.asarray(zp).astype(np.int64).astype(dt)
    return np.asarray(zp).astype(dt)


def ort_version_tuple(v):
    """(major, minor) of an onnxruntime version string ("1.30.0", "1.31.1+cpu"), or None for None."""
    if v is None:
        return None
    try:
        parts = str(v).split("+")[0].split(".")
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except (ValueError, IndexError):
        raise CalibrationError(f"ort_version: expected a version like '1.30.0', got {v!r}") from None


def _ort(rmin, rmax, dt, symmetric, reduce_range, min_real_range, ort_version=None):
    qmin, qmax = ort_qrange(dt, symmetric=symmetric, reduce_range=reduce_range)
    rmin = np.minimum(rmin, F32(0))
    rmax = np.maximum(rmax, F32(0))
    if min_real_range is not None:
        rmax = np.maximum(rmax, (rmin + np.asarray(min_real_range, np.float32)).astype(np.float32))
    if symmetric:
        absmax = np.maximum(np.abs(rmin), np.abs(rmax))
        rmin, rmax = -absmax, +absmax
    if ort_version is not None and ort_version < (1, 31):
        with np.errstate(over="ignore"):     # (ORT <= 1.30: numpy.array(rmax - rmin, float64))
            dr = (rmax - rmin).astype(np.float32).astype(np.float64)
    else:
        dr = rmax.astype(np.float64) - rmin.astype(np.float64)
    scale64 = dr / np.float64(qmax - qmin)
    tiny = np.finfo(np.float32).tiny
    small = scale64 < tiny
    safe = np.where(small, 1.0, scale64)
    if symmetric:
        zp = np.broadcast_to(np.round((qmin + qmax) / np.float64(2.0)), scale64.shape)
    else:
        zp = np.round(np.float64(qmin) - rmin.astype(np.float64) / safe)
    zp = np.where(small, 0.0, zp)
    scale = np.where(small, F32(1.0), scale64.astype(np.float32)).astype(np.float32)
    return scale, _cast_zp(zp, dt)


def _torch(rmin, rmax, dt, symmetric, reduce_range, minmax_observer=True):
    qmin, qmax, custom = torch_qrange(dt, reduce_range=reduce_range)
    if minmax_observer and symmetric and reduce_range and dt in (_U8, _U4, _U2):
        raise CalibrationError("reduce_range: torch's MinMax observers refuse symmetric quantization with "
                               "reduce_range for quint8 ('Cannot reduce range for symmetric quantization "
                               "for quint8'); HistogramObserver accepts it (calibrate(method='histogram'))")
    eps = F32(np.finfo(np.float32).eps)
    if np.any(rmin > rmax):
        raise CalibrationError(f"rmin/rmax: torch asserts min <= max, got {rmin} > {rmax}")
    min_neg = np.minimum(rmin, F32(0))
    max_pos = np.maximum(rmax, F32(0))
    if symmetric:
        max_pos = np.maximum(-min_neg, max_pos)
        scale = (max_pos / F32(float(qmax - qmin) / 2)).astype(np.float32)
        scale = np.maximum(scale, eps)
        if dt == _U8 or (custom and dt in (_U4, _U2)):
            z = (qmin + qmax) // 2 if custom else 128
        elif dt == _U16:
            z = 2**15
        else:
            z = 0
        zp = np.full(scale.shape, z, np.int64)
    else:
        scale = ((max_pos - min_neg).astype(np.float32) / F32(float(qmax - qmin))).astype(np.float32)
        scale = np.maximum(scale, eps)
        qf = np.rint((min_neg / scale).astype(np.float32)).astype(np.float64)
        # torch: .to(torch.int) -- int32; an out-of-range float converts to INT_MIN on x86
        # (cvttss2si) -- then qmin - that in int32 (wrapping), then clamp
        oob = (qf < -2.0**31) | (qf >= 2.0**31)
        q = np.where(oob, -2**31, qf).astype(np.int64)
        d = (np.int64(qmin) - q + 2**31) % 2**32 - 2**31
        zp = np.clip(d, qmin, qmax)
    return scale.astype(np.float32), _cast_zp(zp, dt)


def torch_histogram_qparams(rmin, rmax, dt, symmetric, reduce_range):
    """``HistogramObserver.calculate_qparams`` on its searched range: ``_calculate_qparams`` as for
    the MinMax observers, but HistogramObserver's constructor has no symmetric + reduce_range +
    quint8 check, so that combination computes: qrange [0, 127] (custom: halved), zero point 128
    (custom unsigned: (qmin + qmax) // 2) -- 128 lies outside [0, 127]; that is torch's result."""
    rmin = np.array(_as_f32("rmin", rmin), np.float32)
    rmax = np.array(_as_f32("rmax", rmax), np.float32)
    return _torch(rmin, rmax, resolve_dtype(dt, argname="dtype"), bool(symmetric), bool(reduce_range),
                  minmax_observer=False)


def nvidia_maxbound(dt: np.dtype, tool: str) -> tuple[float, bool]:
    """(max bound, unsigned) for TensorRT / ModelOpt."""
    if dt == _I8:
        return 127.0, False
    if dt == _I4:
        return 7.0, False
    if dt == _E4M3:
        return 448.0, False
    if tool == "modelopt" and dt == _U8:
        return 255.0, True
    allowed = "int8, int4, float8e4m3fn" + (", uint8 (unsigned)" if tool == "modelopt" else "")
    raise CalibrationError(f"dtype: {tool} quantizes symmetrically to {allowed}, not {dt}")


def _nvidia(rmin, rmax, dt, reduce_range, tool):
    if reduce_range:
        raise CalibrationError(f"reduce_range: {tool} has no reduce_range option")
    bound, unsigned = nvidia_maxbound(dt, tool)
    amax = np.maximum(np.abs(rmin), np.abs(rmax)).astype(np.float32)
    scale = (amax / F32(bound)).astype(np.float32)
    scale = np.where(scale == 0, F32(1.0), scale).astype(np.float32)
    if dt == _E4M3:
        zp = np.zeros(scale.shape, np.float32).astype(_E4M3)
    else:
        zp = _cast_zp(np.zeros(scale.shape, np.int64), dt)
    return scale, zp, amax


def compute_scale_zero_point(rmin, rmax, *, dtype="int8", symmetric=False, reduce_range=False,
                             tool="onnxruntime", min_real_range=None, ort_version=None):
    """``(scale, zero_point)`` that ``tool`` derives from the real range [rmin, rmax].

    ``rmin``/``rmax`` are converted to float32 (scalars or per-channel arrays, broadcast together);
    ORT's compute_scale_zp works in the dtype of its range, and given float16 ranges (a float16
    model) it rounds the scale to float16 -- not modelled here.  Per-channel arrays are computed
    channel by channel (ORT's own function takes one range at a time).
    ``scale`` comes back float32, ``zero_point`` as ``dtype`` (0-d arrays for scalar input).
    ``min_real_range`` is ORT's ``MinimumRealRange`` option (onnxruntime only).
    ``ort_version`` (onnxruntime only): the onnxruntime release to follow, e.g. "1.30.0" or
    ``onnxruntime.__version__``; None = 1.31 and later.  Up to 1.30 ORT subtracted the range in
    float32 before promoting it, which moves some scales by one float32 ulp and makes a range
    wider than float32's maximum an infinite scale (returned as ORT returns it).
    The formulas of each tool are in this module's docstring.  TensorRT and ModelOpt are
    symmetric-only: for them ``symmetric`` has no effect and the zero point is 0.
    """
    if tool not in TOOLS:
        raise CalibrationError(f"tool: expected one of {', '.join(TOOLS)}, got {tool!r}")
    dt = resolve_dtype(dtype, argname="dtype")
    symmetric = check_flag("symmetric", symmetric)
    reduce_range = check_flag("reduce_range", reduce_range)
    rmin = _as_f32("rmin", rmin)
    rmax = _as_f32("rmax", rmax)
    try:
        rmin, rmax = np.broadcast_arrays(rmin, rmax)
    except ValueError:
        raise CalibrationError(f"rmin/rmax: shapes {rmin.shape} and {rmax.shape} do not broadcast "
                               f"(per-channel ranges need one rmin and one rmax per channel)") from None
    rmin = np.array(rmin, np.float32)
    rmax = np.array(rmax, np.float32)
    if ort_version is not None and tool != "onnxruntime":
        raise CalibrationError("ort_version: only for tool='onnxruntime'")
    ort_v = ort_version_tuple(ort_version)
    if min_real_range is not None and tool != "onnxruntime":
        raise CalibrationError("min_real_range: only onnxruntime has a MinimumRealRange option")
    if min_real_range is not None:
        m = np.asarray(min_real_range)
        if m.ndim or m.dtype.kind not in "fiu":
            raise TypeError(f"min_real_range: expected a real number, got {min_real_range!r}")
        with np.errstate(over="ignore"):
            m32 = m.astype(np.float32)
        if not np.isfinite(m32):
            # ORT: a NaN is ignored by Python's max(rmax, rmin + nan); an inf or a value beyond
            # float32 gives an infinite scale -- neither is a usable MinimumRealRange
            raise CalibrationError(f"min_real_range: must be a finite float32 number, got {min_real_range!r}")
    if tool == "onnxruntime":
        if dt == _E4M3:
            raise CalibrationError("dtype: onnxruntime computes float8e4m3fn scales from the "
                                   "distribution calibrator's std, not from a range; use "
                                   "calibrate(..., method='distribution')")
        with np.errstate(invalid="ignore", divide="ignore"):
            scale, zp = _ort(rmin, rmax, dt, bool(symmetric), bool(reduce_range), min_real_range, ort_v)
    elif tool == "pytorch":
        scale, zp = _torch(rmin, rmax, dt, bool(symmetric), bool(reduce_range))
    else:
        scale, zp, _ = _nvidia(rmin, rmax, dt, bool(reduce_range), tool)
    # the same types from every tool: float32 / ``dtype`` arrays (0-d for scalar ranges)
    return np.asarray(scale, np.float32), np.asarray(zp)


def nvidia_scale(amax, dt, tool):
    """Scale and zero point from an amax (TensorRT / ModelOpt)."""
    a = _as_f32("amax", amax)
    scale, zp, _ = _nvidia(-a, a, dt, False, tool)
    return scale, zp
