"""ONNX Runtime's quantization-tool calibrators (onnxruntime/quantization/calibrate.py), replayed.

Semantics
---------
How ``quantize_static`` drives them: ``create_calibrator`` -> one ``collect_data(reader)`` over
every batch -> ``compute_data()`` -> per tensor ``compute_scale_zp`` (see :mod:`.qparams`).
Options reach the calibrator through ``extra_options`` ``CalibTensorRangeSymmetric``
(``calib_symmetric`` here), ``CalibMovingAverage``, ``CalibMovingAverageConstant``, ``CalibPercentile``;
the bin counts are the ``create_calibrator`` defaults unless given.

- minmax (``MinMaxCalibrater``): the augmented model runs ReduceMin/ReduceMax (keepdims, then
  Reshape -1) on every batch; ``compute_data`` takes ``np.nanmin``/``np.nanmax`` over the list of
  per-batch results (float32).  ``calib_symmetric``: (-a, a), a = nanmax(|min|, |max|).
  Per channel (``per_channel=True``): ORT reduces over every axis but 1; refquant reduces over
  every axis but ``axis``.  Several collect_data calls (``strides``) with more than one channel are
  refused: ORT's ``merge_range`` takes Python ``min``/``max`` of the arrays and raises.
  The sign of a zero bound is not modelled: when the extreme value is 0 and the data hold both
  +0.0 and -0.0, ORT's vectorised ReduceMin/ReduceMax and numpy may return zeros of different
  signs (the range compares equal; scale and zero point are the same).
- moving_average_minmax (``CalibMovingAverage``): within one collect_data call the range is
  ``np.nanmean`` of the per-batch minima / maxima (float32) -- an arithmetic mean, *not* an
  exponential average; ``averaging_constant`` only matters when collect_data is called several times
  (``CalibStridedMinMax``): ``old + c * (new - old)`` in float32 (``strides`` here).
  Where that float32 mean or update overflows (values near float32's largest), ORT's range is
  +-inf and its scale inf; refquant raises CalibrationError instead.
- entropy / percentile / distribution (``HistogramCalibrater``): all batches are gathered first,
  ``np.asarray(list).flatten()``, and ``HistogramCollector.collect`` builds ONE histogram
  (so batch order and splitting do not matter; ORT needs equal batch shapes, refquant concatenates).
  With ``strides`` (quantize_static's ``CalibStridedMinMax``, which applies to every method) each
  group of batches is one collect_data call and the histograms are merged call by call, as ORT
  does: ``collect_value``'s ``merge_histogram`` (same range: add; a larger threshold t': widen by
  ``int((t' - t) // stride + 1)`` bins of the old stride on each side, old counts in the middle;
  old threshold 0: rebin over t' and add) and ``collect_absolute_value``'s growth (append
  ``np.arange`` edges of the first width up to the new max |x|).
  * entropy: ``np.histogram(x, num_bins, range=(-t, t))``, t = max(|min|, |max|) (float32);
    candidates i = num_quantized_bins//2 .. num_bins//2 around the centre bin; P = the slice with
    outliers folded into its ends; Q = the slice merged into num_quantized_bins levels (the remainder
    joins the last level), expanded back by **int64 truncation** of level/nonzero-count over the
    whole level (zero bins included), leftover bins left 0; both smoothed (eps 1e-4, float32);
    KL with ORT's own float32 ``entropy``; first argmin; thresholds clipped to [min, max].
    Defaults num_bins = num_quantized_bins = 128 -> one candidate -> the full [min, max].
  * percentile: 2048 bins on |x| (calib_symmetric default True) -> ``cdf = cumsum(hist / total)``,
    edge[searchsorted(cdf, p / 100)] -> (-e, e); asymmetric: signed histogram, cut (100 - p)/200 on
    each side; clipped to [min, max].  Default p = 99.999.  The final histogram needs >= 2 bins
    (with one, ORT's compute_percentile fails building its TensorsData; with strides a histogram
    that started at one bin may have grown).
  * distribution: histogram mean/std ("same" scenario); float8e4m3fn: scale = std / std(all finite
    float8e4m3fn values), zero point 0; an integer type: quantize_static's calc_quant_params uses
    the TensorData's range (lowest, highest) = (min, max) of the histogram edges = [-t, t]
    (t = max |x|, or the grown threshold with strides) with compute_scale_zp.
"""
from __future__ import annotations

import copy

import numpy as np

from ._common import (CalibrationError, CalibrationResult, check_finite_range, check_search_size,
                      np_histogram, per_channel_view)
from .qparams import compute_scale_zero_point

METHODS = ("minmax", "moving_average_minmax", "entropy", "percentile", "distribution")
DEFAULT_METHOD = "minmax"


# --- ORT's numpy helpers, replayed operation for operation -----------------------------------

def _rel_entr(pk, qk):
    res = np.empty(pk.shape, dtype=pk.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        res[:] = pk[:] * np.log(pk[:] / qk[:])
    c2 = (pk == 0) & (qk >= 0)
    res[c2] = 0
    c1 = (pk > 0) & (qk > 0)
    res[~c1] = np.inf
    return res


def _entropy(pk, qk):
    pk = np.asarray(pk).astype(np.float32)
    pk = 1.0 * pk / np.sum(pk, axis=0, keepdims=True)
    qk = np.asarray(qk).astype(np.float32)
    pk, qk = np.broadcast_arrays(pk, qk)
    qk = 1.0 * qk / np.sum(qk, axis=0, keepdims=True)
    vec = _rel_entr(pk, qk)
    s = np.sum(vec, axis=0)
    return s.astype(pk.dtype)


def _smooth_distribution(p, eps=0.0001):
    is_zeros = (p == 0).astype(np.float32)
    is_nonzeros = (p != 0).astype(np.float32)
    n_zeros = is_zeros.sum()
    n_nonzeros = p.size - n_zeros
    if not n_nonzeros:
        return None
    eps1 = eps * float(n_zeros) / float(n_nonzeros)
    if not eps1 < 1.0:
        raise CalibrationError(f"onnxruntime entropy: smooth_distribution assertion eps1 < 1 failed "
                               f"(n_zeros={n_zeros}, n_nonzeros={n_nonzeros})")
    hist = p.astype(np.float32)
    hist += eps * is_zeros + (-eps1) * is_nonzeros
    return hist


def _collect_value(x, num_bins):
    """HistogramCollector.collect_value on the gathered data (first call)."""
    min_value = np.nanmin(x)
    max_value = np.nanmax(x)
    threshold = np.array(max(abs(min_value), abs(max_value)), dtype=x.dtype)
    hist, hist_edges = np_histogram("onnxruntime", x, num_bins, range=(-threshold, threshold))
    return hist, hist_edges, min_value, max_value, threshold


def _collect_absolute_value(x, num_bins):
    min_value = np.nanmin(x)
    max_value = np.nanmax(x)
    a = np.absolute(x)
    hist, hist_edges = np_histogram("onnxruntime", a, bins=num_bins)
    hist_edges = hist_edges.astype(a.dtype)
    return hist, hist_edges, min_value, max_value


_MAX_MERGED_BINS = 1 << 27


def _check_grown_bins(n):
    if n > _MAX_MERGED_BINS:
        raise CalibrationError(
            f"data: onnxruntime's HistogramCollector would grow its histogram to {n} bins on this data "
            f"(a later collect_data call reaches far beyond the first call's range, and ORT keeps the "
            f"first call's bin width); refquant refuses more than {_MAX_MERGED_BINS} bins")


def _merge_value(old, x, num_bins):
    """HistogramCollector.collect_value for one collect_data call (``x``: that call's data,
    flattened), including ``merge_histogram`` when a histogram exists (first call: ``old`` None)."""
    if old is None:
        return _collect_value(x, num_bins)
    min_value = np.nanmin(x)
    max_value = np.nanmax(x)
    new_threshold = np.array(max(abs(min_value), abs(max_value)), dtype=x.dtype)
    old_hist, old_hist_edges, old_min, old_max, old_threshold = old
    if new_threshold <= old_threshold:
        new_hist, _ = np_histogram("onnxruntime", x, len(old_hist), range=(-old_threshold, old_threshold))
        return (new_hist + old_hist, old_hist_edges, min(old_min, min_value), max(old_max, max_value),
                old_threshold)
    if old_threshold == 0:
        hist, hist_edges = np_histogram("onnxruntime", x, len(old_hist), range=(-new_threshold, new_threshold))
        hist += old_hist
    else:
        old_num_bins = len(old_hist)
        old_stride = 2 * old_threshold / old_num_bins
        half_increased_bins = int((new_threshold - old_threshold) // old_stride + 1)
        new_num_bins = old_num_bins + 2 * half_increased_bins
        _check_grown_bins(new_num_bins)
        new_threshold = half_increased_bins * old_stride + old_threshold
        hist, hist_edges = np_histogram("onnxruntime", x, new_num_bins, range=(-new_threshold, new_threshold))
        hist[half_increased_bins: new_num_bins - half_increased_bins] += old_hist
    return hist, hist_edges, min(old_min, min_value), max(old_max, max_value), new_threshold


def _merge_absolute_value(old, x, num_bins):
    """HistogramCollector.collect_absolute_value for one collect_data call: a later call whose
    max |x| passes the last edge appends edges of the first call's width (``np.arange``)."""
    if old is None:
        return _collect_absolute_value(x, num_bins)
    min_value = np.nanmin(x)
    max_value = np.nanmax(x)
    a = np.absolute(x)
    old_hist, old_hist_edges, old_min, old_max = old
    temp_amax = np.nanmax(a)
    if temp_amax > old_hist_edges[-1]:
        width = old_hist_edges[1] - old_hist_edges[0]
        _check_grown_bins(int(np.ceil(float(temp_amax - old_hist_edges[-1]) / float(width))) + len(old_hist))
        new_bin_edges = np.arange(old_hist_edges[-1] + width, temp_amax + width, width)
        old_hist_edges = np.hstack((old_hist_edges, new_bin_edges))
    hist, hist_edges = np_histogram("onnxruntime", a, bins=old_hist_edges)
    hist_edges = hist_edges.astype(a.dtype)
    hist[: len(old_hist)] += old_hist
    return hist, hist_edges, min(old_min, min_value), max(old_max, max_value)


def _histogram_over_calls(groups, num_bins, absolute):
    h = None
    for g in groups:
        x = np.concatenate([b.ravel() for b in g])
        h = _merge_absolute_value(h, x, num_bins) if absolute else _merge_value(h, x, num_bins)
    return h


def entropy_threshold(histogram, num_quantized_bins):
    """HistogramCollector.get_entropy_threshold (vectorised inner loops, same integer/float32 ops).

    Returns ((lo, hi), kl_divergence array, thresholds list).
    """
    hist = histogram[0]
    hist_edges = histogram[1]
    num_bins = hist.size
    zero_bin_index = num_bins // 2
    num_half_quantized_bin = num_quantized_bins // 2
    dtype = histogram[1].dtype
    kl = np.zeros(zero_bin_index - num_half_quantized_bin + 1)
    thresholds = [(np.array(0, dtype=dtype), np.array(0, dtype=dtype)) for _ in range(kl.size)]
    csum = np.concatenate([[0], np.cumsum(hist.astype(np.int64))])
    for i in range(num_half_quantized_bin, zero_bin_index + 1):
        start_index = zero_bin_index - i
        end_index = min(zero_bin_index + i + 1, num_bins)
        thresholds[i - num_half_quantized_bin] = (hist_edges[start_index], hist_edges[end_index])
        sliced = copy.deepcopy(hist[start_index:end_index])
        p = sliced.copy()
        p[0] += csum[start_index]                      # sum(hist[:start_index])
        p[-1] += csum[num_bins] - csum[end_index]      # sum(hist[end_index:])
        nonzeros = (p != 0).astype(np.int64)
        merged = sliced.size // num_quantized_bins
        body = num_quantized_bins * merged
        sl = sliced.astype(np.int64)
        quantized = sl[:body].reshape(num_quantized_bins, merged).sum(axis=1) if merged else \
            np.zeros(num_quantized_bins, np.int64)
        quantized[-1] += sl[body:].sum()
        q = np.zeros(p.size, dtype=np.int64)
        if merged:
            norm = nonzeros[:body].reshape(num_quantized_bins, merged).sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                lev = np.where(norm != 0, quantized / np.where(norm == 0, 1, norm), 0)
            lev = lev.astype(np.int64)                 # int64 assignment truncates
            q[:body] = np.where(np.repeat(norm, merged) != 0, np.repeat(lev, merged), 0)
        ps = _smooth_distribution(p)
        qs = _smooth_distribution(q)
        if ps is None or qs is None:
            div = np.array(np.inf, dtype=dtype)
        else:
            div = np.array(_entropy(ps, qs), dtype=dtype)
        kl[i - num_half_quantized_bin] = div
    idx = int(np.argmin(kl))
    opt = thresholds[idx]
    min_value, max_value = histogram[2], histogram[3]
    if opt[0] < min_value:
        opt = (min_value, opt[1])
    if opt[1] > max_value:
        opt = (opt[0], max_value)
    return opt, kl, thresholds, idx


def _percentile(histogram, percentile, symmetric):
    hist, hist_edges = histogram[0], histogram[1]
    total = hist.sum()
    cdf = np.cumsum(hist / total)
    if symmetric:
        idx_right = np.searchsorted(cdf, percentile / 100.0)
        th = (-np.array(hist_edges[idx_right], dtype=hist_edges.dtype),
              np.array(hist_edges[idx_right], dtype=hist_edges.dtype))
    else:
        cut = (100.0 - percentile) / 200.0
        idx_right = np.searchsorted(cdf, 1.0 - cut)
        idx_left = np.searchsorted(cdf, cut)
        th = (np.array(hist_edges[idx_left], dtype=hist_edges.dtype),
              np.array(hist_edges[idx_right], dtype=hist_edges.dtype))
    min_value, max_value = histogram[2], histogram[3]
    if th[0] < min_value:
        th = (min_value, th[1])
    if th[1] > max_value:
        th = (th[0], max_value)
    return th


def _avg_std(hist, hist_edges):
    values = (hist_edges[:-1] + hist_edges[1:]) * 0.5
    avg = (hist * values).sum() / hist.sum()
    std = ((hist * values**2).sum() / hist.sum() - avg**2) ** 0.5
    return np.array(avg, dtype=hist_edges.dtype), np.array(std, dtype=hist_edges.dtype)


def _float8_std():
    import ml_dtypes
    allv = np.arange(256, dtype=np.uint8).view(ml_dtypes.float8_e4m3fn).astype(np.float32)
    values = np.array([f for f in allv if not np.isnan(f) and not np.isinf(f)], dtype=np.float32)
    return np.std(values)


def calibrate(batches, *, method, dtype, dt, symmetric, reduce_range, axis, num_bins,
              num_quantized_bins, percentile, averaging_constant, calib_symmetric=None,
              strides=None, min_real_range=None, ort_version=None, **_):
    if method not in METHODS:
        raise CalibrationError(f"method: onnxruntime has no {method!r} calibrator")
    params = {}
    details = {}
    notes = []
    if axis is not None and method not in ("minmax", "moving_average_minmax"):
        raise CalibrationError(f"axis: onnxruntime's {method} calibrator is per-tensor only "
                               f"(per-channel ranges exist for MinMax only)")
    groups = [batches]
    if strides is not None:
        n = int(strides)
        if n < 1 or len(batches) % n:
            raise CalibrationError(f"strides: total data size ({len(batches)}) is not divisible by "
                                   f"stride size ({strides})")
        groups = [batches[i:i + n] for i in range(0, len(batches), n)]
        params["strides"] = n
    if method in ("minmax", "moving_average_minmax"):
        if num_bins is not None or num_quantized_bins is not None or percentile is not None:
            raise CalibrationError("num_bins/num_quantized_bins/percentile: not used by onnxruntime's MinMax calibrator")
        moving = method == "moving_average_minmax"
        c = 0.01 if averaging_constant is None else float(averaging_constant)
        if moving and not 0 <= c <= 1:
            raise CalibrationError("averaging_constant: Invalid averaging constant, which should not be < 0 or > 1.")
        if not moving and averaging_constant is not None:
            raise CalibrationError("averaging_constant: only for method='moving_average_minmax'")
        cs = bool(calib_symmetric) if calib_symmetric is not None else False
        params.update(calib_symmetric=cs, averaging_constant=c if moving else None)
        if axis is not None and not moving and len(groups) > 1 and batches[0].shape[axis] > 1:
            raise CalibrationError(
                "strides: onnxruntime cannot merge per-channel MinMax ranges across collect_data calls: "
                "MinMaxCalibrater.merge_range takes Python min()/max() of the per-channel arrays and "
                "fails ('The truth value of an array with more than one element is ambiguous'); use "
                "one collect_data call (no strides) or method='moving_average_minmax'")
        rng = None
        for g in groups:
            mins, maxs = [], []
            for b in g:
                if axis is None:
                    mins.append(np.min(b).reshape(-1))
                    maxs.append(np.max(b).reshape(-1))
                else:
                    v = per_channel_view(b, axis)
                    mins.append(np.min(v, axis=1))
                    maxs.append(np.max(v, axis=1))
            if moving:
                lo = np.nanmean(mins, axis=0)
                hi = np.nanmean(maxs, axis=0)
            else:
                lo = np.nanmin(mins, axis=0)
                hi = np.nanmax(maxs, axis=0)
            if cs:
                a = np.nanmax([np.abs(lo), np.abs(hi)], axis=0)
                lo, hi = -a, a
            if rng is None:
                rng = (lo, hi)
            elif moving:
                rng = (rng[0] + c * (lo - rng[0]), rng[1] + c * (hi - rng[1]))
            else:
                rng = (min(rng[0], lo) if axis is None else np.minimum(rng[0], lo),
                       max(rng[1], hi) if axis is None else np.maximum(rng[1], hi))
        rmin = np.asarray(rng[0], np.float32)
        rmax = np.asarray(rng[1], np.float32)
        if axis is None:
            rmin, rmax = rmin.reshape(()), rmax.reshape(())
        if moving:
            check_finite_range(rmin, rmax, tool="onnxruntime", method=method,
                               why="np.nanmean of the per-batch minima / maxima, or the strided update "
                                   "old + c * (new - old), overflows float32")
    else:
        if averaging_constant is not None:
            raise CalibrationError("averaging_constant: only for method='moving_average_minmax'")
        if method == "entropy":
            nb = 128 if num_bins is None else num_bins
            nq = 128 if num_quantized_bins is None else num_quantized_bins
            if nq > nb:
                raise CalibrationError(f"num_quantized_bins: {nq} exceeds num_bins {nb}; onnxruntime "
                                       f"would then compute no candidate")
            if percentile is not None:
                raise CalibrationError("percentile: not used by the entropy calibrator")
            if calib_symmetric:
                notes.append("CalibTensorRangeSymmetric does not change ORT's entropy histogram")
            h = _histogram_over_calls(groups, nb, absolute=False)
            check_search_size("onnxruntime", method, h[0].size, grown=h[0].size > nb)
            (lo, hi), kl, ths, idx = entropy_threshold(h, nq)
            params.update(num_bins=nb, num_quantized_bins=nq)
            details.update(hist=h[0], hist_edges=h[1], kl=kl, best=idx,
                           candidates=[(float(a), float(b)) for a, b in ths])
            rmin, rmax = np.asarray(lo, np.float32), np.asarray(hi, np.float32)
            if h[0].size // 2 == nq // 2:
                notes.append("a single entropy candidate: with num_bins == num_quantized_bins ORT's "
                             "entropy calibrator returns the min/max range")
        elif method == "percentile":
            nb = 2048 if num_bins is None else num_bins
            p = 99.999 if percentile is None else percentile
            if num_quantized_bins is not None:
                raise CalibrationError("num_quantized_bins: not used by the percentile calibrator")
            cs = True if calib_symmetric is None else bool(calib_symmetric)
            h = _histogram_over_calls(groups, nb, absolute=cs)
            if h[0].size < 2:
                raise CalibrationError(
                    f"num_bins: onnxruntime's percentile calibrator needs a histogram of at least 2 bins, "
                    f"got {h[0].size} (compute_percentile stores (lo, hi, *hist[:2]); with one bin that is "
                    f"a 3-tuple and TensorsData raises; a histogram grown across strided collect_data "
                    f"calls can pass)")
            lo, hi = _percentile(h, p, cs)
            params.update(num_bins=nb, percentile=p, calib_symmetric=cs)
            details.update(hist=h[0], hist_edges=h[1])
            rmin, rmax = np.asarray(lo, np.float32), np.asarray(hi, np.float32)
        else:  # distribution
            import ml_dtypes
            nb = 2048 if num_bins is None else num_bins
            if nb < 512:
                raise CalibrationError("num_bins: Invalid num_bins. Must be in range 512 <= num_bins.")
            h = _histogram_over_calls(groups, nb, absolute=False)
            avg, std = _avg_std(h[0], h[1])
            params.update(num_bins=nb, scenario="same")
            details.update(hist=h[0], hist_edges=h[1], avg=avg, std=std)
            rmin = np.asarray(h[1].min(), np.float32)
            rmax = np.asarray(h[1].max(), np.float32)
            if dt == np.dtype(ml_dtypes.float8_e4m3fn):
                scale = np.array(std / _float8_std(), dtype=std.dtype)
                zp = np.zeros((), np.float32).astype(dt)
                if not (np.isfinite(scale) and scale > 0):
                    notes.append(f"ORT's float8 scale here is {float(scale)!r} (the histogram's std is "
                                 f"{float(std)!r}, e.g. constant data): unusable for QuantizeLinear, but "
                                 f"it is what compute_scale_zp_float8 returns")
                return CalibrationResult("onnxruntime", method, dtype, symmetric, reduce_range, axis,
                                         rmin, rmax, np.asarray(scale, np.float32), zp, params=params,
                                         details=details, notes=notes)
            notes.append("integer type: quantize_static applies compute_scale_zp to the Distribution "
                         "calibrator's range, the histogram's extent [-t, t] (t = max |x|)")
    if dt == np.dtype("float32"):
        raise CalibrationError("dtype: float32 is not a quantized type")
    scale, zp = compute_scale_zero_point(rmin, rmax, dtype=dt, symmetric=symmetric,
                                         reduce_range=reduce_range, tool="onnxruntime",
                                         min_real_range=min_real_range, ort_version=ort_version)
    return CalibrationResult("onnxruntime", method, dtype, symmetric, reduce_range, axis, rmin, rmax,
                             scale, zp, params=params, details=details, notes=notes)
