"""torch.ao.quantization observers, replayed in numpy float32 (torch/ao/quantization/observer.py).

Semantics
---------
Every batch is one ``observer(x)`` call; ``calculate_qparams`` runs at the end.  All tensors are
float32 and every torch op is emulated with its CPU kernel's rounding (see :mod:`._torchops`).

- minmax: ``MinMaxObserver`` (``PerChannelMinMaxObserver(ch_axis=axis)`` with ``axis``):
  running ``min(aminmax(x))`` / ``max``; exact, except the sign of a zero bound: when the extreme
  value is 0 and the data hold both +0.0 and -0.0, torch's vectorised aminmax and numpy may return
  zeros of different signs (equal ranges; scale and zero point are the same).
- moving_average_minmax: ``MovingAverageMinMaxObserver`` / ``MovingAveragePerChannelMinMaxObserver``:
  first batch initialises, then ``m = m + f32(c) * (cur - m)`` in float32 (c = 0.01 by default).
  Per channel needs batches of rank >= 2 (torch flattens from dim 1).  A range that overflows
  float32 (torch: inf range, inf scale) raises CalibrationError, as does a histogram whose
  max - min overflows (torch: range [nan, inf], scale nan).  A finite range whose scale overflows
  (e.g. minmax over [-3e38, 3e38]) is returned as torch computes it (scale inf).
- histogram: ``HistogramObserver(bins=2048)`` (per tensor only):
  * first batch: min/max = aminmax(x); hist = ``histc(x, bins, min, max)``;
  * later batches: new range = running min/max; ``histc`` of the batch over the new range; if the
    range grew, the old histogram is up-sampled 16x (``repeat_interleave / 16``), each sub-bin's
    midpoint (``linspace(old_min, old_max, 16*bins + 1)[:-1] + 0.5 * sub_bin``) is bucketed into the
    new edges (``linspace(new_min, new_max, bins + 1)``, ``bucketize(right=True) - 1`` clamped) and
    accumulated with a float32 ``bincount``; a single-point old range is re-histogrammed with
    ``histc(old_min) * sum(old_hist)``;
  * ``_non_linear_param_search``: cumulative sums (float64 accumulate, float32 stored), the caffe2
    NormMinimization greedy trim (alpha/beta steps of 1e-5 in Python float; cSum compared to
    ``f32(alpha * total)``), L2 error of each candidate with ``dst_nbins = 2**bits(dtype)`` and the
    closed-form ``density * (end^3 - begin^3) / 3`` in float32, stopping at the first increase;
    new_min = min + width * start_bin, new_max = min + width * (end_bin + 1) (float32);
  * then ``_calculate_qparams(new_min, new_max)`` (:mod:`.qparams`).
- dtype: int8 -> torch.qint8, uint8 -> quint8, int16, uint16, int32 -> qint32; int4/uint4/int2/uint2
  -> qint8/quint8 with quant_min/quant_max (for the histogram search dst_nbins stays 256).
"""
from __future__ import annotations

import math

import numpy as np
import ml_dtypes

from . import _torchops as T
from ._common import CalibrationError, CalibrationResult, check_finite_range, per_channel_view
from .qparams import compute_scale_zero_point, torch_histogram_qparams, torch_qrange

F32 = np.float32
METHODS = ("minmax", "moving_average_minmax", "histogram")
DEFAULT_METHOD = "histogram"


def _dst_nbins(dt):
    dt = np.dtype(dt)
    if dt in (np.dtype(ml_dtypes.int4), np.dtype(ml_dtypes.uint4), np.dtype(ml_dtypes.int2),
              np.dtype(ml_dtypes.uint2)):
        return 256
    return 2 ** (dt.itemsize * 8)


class HistogramState:
    """The state of one HistogramObserver: histogram (float32), min_val, max_val (float32)."""

    def __init__(self, bins=2048, width=None, threads=None):
        self.bins = int(bins)
        self.width = width
        self.threads = threads
        self.histogram = np.zeros(self.bins, np.float32)
        self.min_val = F32(np.inf)
        self.max_val = F32(-np.inf)

    def _upscale(self, hist, omin, omax, umin, umax):
        up = 16
        h = (np.repeat(hist, up) / F32(up)).astype(np.float32)
        bin_size = F32(F32(omax - omin) / F32(self.bins * up))
        mids = (T.linspace(omin, omax, self.bins * up + 1)[:-1] + F32(F32(0.5) * bin_size)).astype(np.float32)
        bounds = T.linspace(umin, umax, self.bins + 1)
        b = np.searchsorted(bounds, mids, side="right") - 1
        b = np.clip(b, 0, self.bins - 1)
        out = np.zeros(self.bins, np.float32)
        np.add.at(out, b, h)
        return out

    def observe(self, x):
        x = np.asarray(x, np.float32).ravel()
        if x.size == 0:
            return
        x_min, x_max = F32(x.min()), F32(x.max())
        if self.min_val == np.inf or self.max_val == -np.inf:
            self.min_val, self.max_val = x_min, x_max
            self.histogram = T.histc(x, self.bins, x_min, x_max, threads=self.threads)
            return
        cmin, cmax = self.min_val, self.max_val
        nmin, nmax = min(cmin, x_min), max(cmax, x_max)
        upd = T.histc(x, self.bins, nmin, nmax, threads=self.threads)
        if nmin == cmin and nmax == cmax:
            self.histogram = (self.histogram + upd).astype(np.float32)
            return
        if cmin == cmax:
            bin_value = T.sum_f32(self.histogram, width=self.width)
            trans = (T.histc(np.array([cmin], np.float32), self.bins, nmin, nmax) * bin_value).astype(np.float32)
            self.histogram = (trans + upd).astype(np.float32)
        else:
            trans = self._upscale(self.histogram, cmin, cmax, nmin, nmax)
            self.histogram = (upd + trans).astype(np.float32)
        self.min_val, self.max_val = F32(nmin), F32(nmax)

    def _quant_error(self, s, e, dst_nbins):
        bins = self.bins
        bw = (float(self.max_val) - float(self.min_val)) / bins
        dbw = bw * (e - s + 1) / dst_nbins
        if dbw == 0.0:
            return 0.0
        bw32, dbw32 = F32(bw), F32(dbw)
        src = np.arange(bins, dtype=np.int64)
        begin = ((src - s).astype(np.float32) * bw32).astype(np.float32)
        end = (begin + bw32).astype(np.float32)
        dbob = np.clip(T.div_floor(begin, dbw32), F32(0), F32(dst_nbins - 1)).astype(np.float32)
        dbob_c = ((dbob + F32(0.5)).astype(np.float32) * dbw32).astype(np.float32)
        dboe = np.clip(T.div_floor(end, dbw32), F32(0), F32(dst_nbins - 1)).astype(np.float32)
        density = (self.histogram / bw32).astype(np.float32)

        def get_norm(db, de, dens):
            db = np.asarray(db, np.float32)
            de = np.asarray(de, np.float32)
            n = ((de * de * de).astype(np.float32) - (db * db * db).astype(np.float32)).astype(np.float32)
            n = (n / F32(3)).astype(np.float32)
            return (dens * n).astype(np.float32)

        half = F32(dbw / 2)
        nhalf = F32(-dbw / 2)
        norm = np.zeros(bins, np.float32)
        norm = (norm + get_norm((begin - dbob_c).astype(np.float32), np.ones(bins, np.float32) * half,
                                density)).astype(np.float32)
        cnt = ((dboe - dbob).astype(np.float32) - F32(1)).astype(np.float32)
        norm = (norm + (cnt * get_norm(nhalf, half, density)).astype(np.float32)).astype(np.float32)
        dboe_c = ((dboe * dbw32).astype(np.float32) + half).astype(np.float32)
        norm = (norm + get_norm(nhalf, (end - dboe_c).astype(np.float32), density)).astype(np.float32)
        return float(T.sum_f32(norm, width=self.width))

    def search(self, dst_nbins):
        """``_non_linear_param_search`` -> (new_min, new_max, start_bin, end_bin)."""
        bins = self.bins
        bin_width = F32(F32(self.max_val - self.min_val) / F32(bins))
        total = float(T.sum_f32(self.histogram, width=self.width))
        csum = np.cumsum(self.histogram.astype(np.float64)).astype(np.float32).astype(np.float64).tolist()
        stepsize = 1e-5
        alpha, beta = 0.0, 1.0
        start_bin, end_bin = 0, bins - 1
        norm_min = float("inf")
        while alpha < beta:
            next_alpha = alpha + stepsize
            next_beta = beta - stepsize
            ta = float(F32(next_alpha * total))
            tb = float(F32(next_beta * total))
            l_, r_ = start_bin, end_bin
            while l_ < end_bin and csum[l_] < ta:
                l_ += 1
            while r_ > start_bin and csum[r_] > tb:
                r_ -= 1
            ns, ne = start_bin, end_bin
            if (l_ - start_bin) > (end_bin - r_):
                ns = l_
                alpha = next_alpha
            else:
                ne = r_
                beta = next_beta
            if ns == start_bin and ne == end_bin:
                continue
            norm = self._quant_error(ns, ne, dst_nbins)
            if norm > norm_min:
                break
            norm_min = norm
            start_bin, end_bin = ns, ne
        new_min = F32(self.min_val + F32(bin_width * F32(start_bin)))
        new_max = F32(self.min_val + F32(bin_width * F32(end_bin + 1)))
        return new_min, new_max, start_bin, end_bin


def calibrate(batches, *, method, dtype, dt, symmetric, reduce_range, axis, num_bins,
              num_quantized_bins, percentile, averaging_constant, torch_simd_width=None, torch_threads=None,
              **_):
    if method not in METHODS:
        raise CalibrationError(f"method: torch.ao.quantization has no {method!r} observer")
    torch_qrange(dt, reduce_range=reduce_range)  # validates dtype
    if method != "histogram" and symmetric and reduce_range and \
            dt in (np.dtype(np.uint8), np.dtype(ml_dtypes.uint4), np.dtype(ml_dtypes.uint2)):
        raise CalibrationError("reduce_range: torch's MinMax observers refuse symmetric quantization with "
                               "reduce_range for quint8 ('Cannot reduce range for symmetric quantization "
                               "for quint8')")
    if num_quantized_bins is not None or percentile is not None:
        raise CalibrationError("num_quantized_bins/percentile: torch observers have no such option")
    params, details, notes = {}, {}, []
    if method in ("minmax", "moving_average_minmax"):
        if num_bins is not None:
            raise CalibrationError("num_bins: only the histogram observer has bins")
        moving = method == "moving_average_minmax"
        if not moving and averaging_constant is not None:
            raise CalibrationError("averaging_constant: only for method='moving_average_minmax'")
        c = F32(0.01 if averaging_constant is None else float(averaging_constant))
        if axis is not None and any(b.ndim < 2 for b in batches):
            raise CalibrationError(
                "axis: torch's per-channel observers need batches of rank >= 2: they flatten the "
                "channel-first tensor from dim 1 (torch.flatten(y, start_dim=1)), which raises "
                "'Dimension out of range' on a 1-D tensor")
        mn = mx = None
        for b in batches:
            if axis is None:
                cmin, cmax = F32(b.min()), F32(b.max())
            else:
                v = per_channel_view(b, axis)
                cmin, cmax = v.min(axis=1).astype(np.float32), v.max(axis=1).astype(np.float32)
            if mn is None:
                mn, mx = cmin, cmax
            elif moving:
                mn = (mn + (c * (cmin - mn).astype(np.float32)).astype(np.float32)).astype(np.float32)
                mx = (mx + (c * (cmax - mx).astype(np.float32)).astype(np.float32)).astype(np.float32)
            else:
                mn, mx = np.minimum(mn, cmin), np.maximum(mx, cmax)
        rmin, rmax = np.asarray(mn, np.float32), np.asarray(mx, np.float32)
        if moving:
            params["averaging_constant"] = float(c)
            check_finite_range(rmin, rmax, tool="pytorch", method=method,
                               why="the float32 update m + c * (x - m) overflows")
        params["observer"] = (("MovingAverage" if moving else "") +
                              ("PerChannel" if axis is not None else "") + "MinMaxObserver")
    else:
        if axis is not None:
            raise CalibrationError("axis: torch's HistogramObserver is per-tensor only")
        if averaging_constant is not None:
            raise CalibrationError("averaging_constant: only for method='moving_average_minmax'")
        nb = 2048 if num_bins is None else num_bins
        st = HistogramState(nb, width=torch_simd_width, threads=torch_threads)
        for b in batches:
            st.observe(b)
        new_min, new_max, sb, eb = st.search(_dst_nbins(dt))
        rmin, rmax = np.asarray(new_min, np.float32), np.asarray(new_max, np.float32)
        check_finite_range(rmin, rmax, tool="pytorch", method=method,
                           why=f"the histogram spans [{float(st.min_val)!r}, {float(st.max_val)!r}]: "
                               f"max - min overflows float32, so the bin width is inf and "
                               f"_non_linear_param_search returns min + inf * start_bin")
        params.update(bins=nb, observer="HistogramObserver")
        details.update(hist=st.histogram.copy(), hist_min=float(st.min_val), hist_max=float(st.max_val),
                       start_bin=sb, end_bin=eb)
        scale, zp = torch_histogram_qparams(rmin, rmax, dt, symmetric, reduce_range)
        if symmetric and reduce_range and dt == np.dtype(np.uint8):
            notes.append("HistogramObserver (unlike the MinMax observers) accepts symmetric + reduce_range "
                         "for quint8: its zero point 128 lies outside the reduced range [0, 127]")
        return CalibrationResult("pytorch", method, dtype, symmetric, reduce_range, axis, rmin, rmax,
                                 scale, zp, params=params, details=details, notes=notes)
    scale, zp = compute_scale_zero_point(rmin, rmax, dtype=dt, symmetric=symmetric,
                                         reduce_range=reduce_range, tool="pytorch")
    return CalibrationResult("pytorch", method, dtype, symmetric, reduce_range, axis, rmin, rmax,
                             scale, zp, params=params, details=details, notes=notes)
