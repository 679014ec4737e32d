"""NVIDIA ModelOpt calibrators (modelopt/torch/quantization/calib/{max,histogram}.py, 0.47.0), replayed.

Semantics
---------
ModelOpt quantizes symmetrically: a calibrator returns ``amax``; export writes scale =
f32(amax) / maxbound (maxbound = 2**(bits-1+unsigned) - 1; scale 0 -> 1) and zero point 0.
``dtype`` int8 (num_bits 8), uint8 (num_bits 8, unsigned=True), int4 (num_bits 4).
Every batch is one ``collect(x)``; ``compute_amax`` runs at the end.

- minmax (``MaxCalibrator``): per batch ``reduce_amax`` = max(|max(x)|, |min(x)|) (over every axis
  but ``axis`` when given), running ``torch.max``.  Exact.  On 1-D batches the axes to reduce are
  ``[]``, which torch.amax/amin read as "every axis": one per-tensor amax, as ModelOpt returns.
- entropy / mse / percentile (``HistogramCalibrator(num_bins=2048, torch_hist=True)``, per tensor):
  * collect: x -> |x| if min(x) < 0; first batch ``hist = histc(x, num_bins, 0, max)``,
    ``edges = linspace(0, max, num_bins + 1)``; a later batch with a larger max grows the bins:
    ``width = edges[1] - edges[0]``, ``num_bins = int(ceil(max / width))``,
    ``edges = arange(0, max + width, width)`` (may hold one edge more than num_bins + 1), then
    ``hist = histc(x, num_bins, 0, edges[-1])`` and the old counts are added to its first bins;
    counts are float32 and become int32 (``.int()``) for compute_amax;
  * entropy (``_compute_amax_entropy``, stride 1, start_bin 128): bins[0] := bins[1]; for
    i = 128 .. len(bins): P = bins[:i] with sum(bins[i:]) added to P[i-1]; Q = bins[:i] grouped by
    ``digitize(range(i), linspace(0, i, nbins + 1)) - 1`` (nbins = 128, 256 unsigned), each group's
    sum spread evenly over its nonzero bins; ``scipy.stats.entropy(P, Q)``; the **last** argmin i;
    amax = edges[i] (a left edge);
  * mse (``_compute_amax_mse``): centers = (e[1:] + e[:-1]) / 2 (float32); for i = 128 ..
    len(centers) - 1: fake-quantize every center with amax = centers[i], error =
    mean(((q - c) ** 2) * counts) (float32, torch's summation order); first argmin; amax = centers[i].
    Bin edges near float32's largest value make a center overflow (ModelOpt: amax inf); refquant
    raises CalibrationError.
    NOTE ModelOpt 0.47.0 passes num_bits/unsigned into fake_tensor_quant's ``bias``/``num_bits``
    parameters (see :func:`amax_mse`), so its "MSE" amax is in practice centers[start_bin];
    refquant reproduces that;
  * percentile (``_compute_amax_percentile``, default 99.99): cdf = cumsum(hist / total) (float64),
    amax = edges[searchsorted(cdf, p / 100)].
"""
from __future__ import annotations

import numpy as np
import ml_dtypes

from . import _torchops as T
from ._common import (CalibrationError, CalibrationResult, check_finite_range, check_search_size,
                      per_channel_view)
from .qparams import nvidia_maxbound, nvidia_scale

F32 = np.float32
METHODS = ("minmax", "entropy", "mse", "percentile")
DEFAULT_METHOD = "minmax"


def num_bits_unsigned(dt):
    dt = np.dtype(dt)
    if dt == np.dtype(np.int8):
        return 8, False
    if dt == np.dtype(np.uint8):
        return 8, True
    if dt == np.dtype(ml_dtypes.int4):
        return 4, False
    raise CalibrationError(f"dtype: refquant replays ModelOpt's integer calibrators for int8, uint8 "
                           f"(unsigned) and int4, not {dt}")


_MAX_GROWN_BINS = 1 << 27


class HistogramState:
    """ModelOpt ``HistogramCalibrator`` with ``torch_hist=True`` (the default)."""

    def __init__(self, num_bins=2048, width=None, threads=None):
        self.num_bins = int(num_bins)
        self.width = width
        self.threads = threads
        self.hist = None
        self.edges = None

    def collect(self, x):
        x = np.asarray(x, np.float32).ravel()
        if x.min() < 0.0:
            x = np.abs(x)
        x_max = F32(x.max())
        if self.hist is None:
            self.hist = T.histc(x, self.num_bins, 0.0, x_max, threads=self.threads)
            self.edges = T.linspace(0.0, x_max, self.num_bins + 1)
            return
        if x_max > self.edges[-1]:
            width = F32(self.edges[1] - self.edges[0])
            if width == 0:
                raise CalibrationError(
                    "data: ModelOpt's histogram calibrator cannot grow a histogram whose first batch "
                    "was all zeros (bin width 0: int(ceil(max / 0)) fails); put a nonzero batch first")
            with np.errstate(over="ignore"):
                grown = np.ceil(F32(x_max / width))
            if not np.isfinite(grown) or grown > _MAX_GROWN_BINS:
                raise CalibrationError(
                    f"data: ModelOpt's histogram calibrator would grow to int(ceil(max / width)) = "
                    f"int(ceil({float(x_max)!r} / {float(width)!r})) bins (a later batch reaches far beyond "
                    f"the first batch's range, and ModelOpt keeps the first bin width); "
                    + ("ModelOpt fails converting inf to int" if not np.isfinite(grown) else
                       f"refquant refuses more than {_MAX_GROWN_BINS} bins"))
            self.num_bins = int(grown)
            self.edges = T.arange(0.0, float(F32(x_max + width)), float(width), width=self.width)
        h = T.histc(x, self.num_bins, 0.0, self.edges[-1], threads=self.threads)
        n = self.hist.size
        h[:n] = (h[:n] + self.hist).astype(np.float32)
        self.hist = h

    def int_hist(self):
        return self.hist.astype(np.int32)


def _entropy_kl(pk, qk):
    """``scipy.stats.entropy(pk, qk)`` (scipy 1.17 body without its array-API wrapper overhead):
    promote to float64, q /= sum(q), p /= sum(p), sum(special.rel_entr(p, q))."""
    pk = np.asarray(pk, np.float64)
    qk = np.asarray(qk, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        qk = qk / np.sum(qk, axis=0, keepdims=True)
        pk = pk / np.sum(pk, axis=0, keepdims=True)
        try:
            from scipy.special import rel_entr
            vec = rel_entr(pk, qk)
        except ImportError:  # pragma: no cover - scipy is a ModelOpt dependency
            vec = np.where((pk > 0) & (qk > 0), pk * np.log(pk / qk),
                           np.where((pk == 0) & (qk >= 0), 0.0, np.inf))
    return float(np.sum(vec, axis=0))


def amax_entropy(calib_hist, calib_bin_edges, num_bits, unsigned, stride=1, start_bin=128):
    """``_compute_amax_entropy`` (vectorised per candidate; integer sums are exact)."""
    bins = np.array(calib_hist[:])
    bins[0] = bins[1]
    total = np.sum(bins)
    nbins = 1 << (num_bits - 1 + int(unsigned))
    stop = len(bins)
    divs, args = [], []
    tail = np.concatenate([np.cumsum(bins[::-1].astype(np.int64))[::-1], [0]])  # tail[i] = sum(bins[i:])
    for i in range(start_bin, stop + 1, stride):
        space = np.linspace(0, i, num=nbins + 1)
        dig = np.digitize(np.arange(i), space) - 1     # == digitize(range(i), ...)
        dig[bins[:i] == 0] = -1
        ok = dig != -1
        d_ok = dig[ok]
        counts = np.bincount(d_ok, weights=bins[:i][ok].astype(np.float64), minlength=nbins)
        cnt = np.bincount(d_ok, minlength=nbins)
        present = cnt > 0
        counts[present] = counts[present] / cnt[present]
        new_density = np.zeros(i, np.float64)
        new_density[ok] = counts[dig[ok]]
        ref = np.array(bins[:i])
        ref[-1] += tail[i] if i < stop else 0
        tcn = np.sum(new_density) + tail[i] if i <= stop else 0
        if round(tcn) != total or round(np.sum(ref)) != total:
            raise CalibrationError(f"modelopt entropy: Count mismatch! total_counts_new={tcn}, "
                                   f"total_counts_old={np.sum(ref)}, total_data={total}")
        divs.append(_entropy_kl(ref, new_density))
        args.append(i)
    divs = np.array(divs)
    last = len(divs) - 1 - int(np.argmin(divs[::-1]))
    return F32(calib_bin_edges[last * stride + start_bin]), divs, last * stride + start_bin


def amax_mse(calib_hist, calib_bin_edges, num_bits, unsigned, stride=1, start_bin=128, width=None):
    """``_compute_amax_mse`` exactly as ModelOpt 0.47.0 runs it on CPU.

    ModelOpt calls ``fake_tensor_quant(centers, amax, num_bits, unsigned)``, but the function's
    third positional parameter is ``bias`` (signature ``inputs, amax, bias=None, num_bits=8,
    unsigned=False, narrow_range=True``).  So the centers are shifted by ``bias = num_bits`` and
    quantized with ``num_bits = int(unsigned)``: max_bound = 2**(int(unsigned) - 1) - 1 (-0.5 signed,
    0 unsigned), min_bound = -max_bound, and ``clamp(v, 0.5, -0.5)`` gives -0.5 everywhere.  Every
    fake-quantized center is then ``-0.5 / (-0.5 / amax) + bias`` (about amax + num_bits), the error
    is mean((amax + num_bits - c)^2 * count), and the search returns (almost always) the FIRST
    candidate, centers[start_bin] (for unsigned, 0/0 = NaN errors and ``np.argmin`` returns the
    first candidate as well).  refquant
    reproduces this (it is what ModelOpt computes); the intended MSE search is NOT what runs.
    """
    counts = np.asarray(calib_hist).astype(np.float32)
    edges = np.asarray(calib_bin_edges, np.float32)
    centers = ((edges[1:] + edges[:-1]).astype(np.float32) / F32(2)).astype(np.float32)
    if centers.size != counts.size:
        raise CalibrationError(
            f"data: ModelOpt 0.47's mse calibration fails on this data: the grown histogram has "
            f"{edges.size} edges for {counts.size} bins (torch.arange made an extra edge), and "
            f"'(quant_centers - centers) ** 2 * counts' raises 'The size of tensor a ({centers.size}) "
            f"must match the size of tensor b ({counts.size})'")
    cand = np.arange(start_bin, len(centers), stride)
    if cand.size == 0:
        raise CalibrationError(f"modelopt mse: no candidate (start_bin {start_bin} >= {len(centers)} centers)")
    bias = F32(num_bits)                  # shifted argument: bias = num_bits
    eff_bits = int(unsigned)              # num_bits = unsigned
    inputs = (centers - bias).astype(np.float32)
    max_bound = F32(2.0 ** (eff_bits - 1 + 0) - 1.0)
    min_bound = -max_bound                # narrow_range=True, unsigned=False
    errs = np.empty(cand.size, np.float32)
    chunk = 256
    n = centers.size
    for s in range(0, cand.size, chunk):
        amax = centers[cand[s:s + chunk]][:, None]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            scale = (max_bound / amax).astype(np.float32)
            small = amax <= F32(1.0 / (1 << 24))
            scale_q = np.where(small, F32(0), scale).astype(np.float32)
            r = np.rint((inputs[None, :] * scale_q).astype(np.float32)).astype(np.float32)
            q = np.minimum(np.maximum(r, min_bound), max_bound).astype(np.float32)   # torch.clamp
            scale_d = np.where(small, F32(1), scale).astype(np.float32)
            qc = ((q / scale_d).astype(np.float32) + bias).astype(np.float32)   # outputs + bias
            d = (qc - centers[None, :]).astype(np.float32)
            e = ((d * d).astype(np.float32) * counts[None, :]).astype(np.float32)
            errs[s:s + chunk] = (T.sum_f32_rows(e, width=width) / F32(n)).astype(np.float32)
    best = int(np.argmin(errs))
    return F32(centers[cand[best]]), errs, int(cand[best])


def amax_percentile(calib_hist, calib_bin_edges, percentile):
    total = calib_hist.sum()
    cdf = np.cumsum(calib_hist / total)
    idx = np.searchsorted(cdf, percentile / 100)
    return F32(calib_bin_edges[idx]), int(idx)


def calibrate(batches, *, method, dtype, dt, symmetric, reduce_range, axis, num_bins,
              num_quantized_bins, percentile, averaging_constant, torch_simd_width=None,
              start_bin=None, torch_threads=None, **_):
    if method not in METHODS:
        raise CalibrationError(f"method: ModelOpt has no {method!r} calibrator")
    nbits, unsigned = num_bits_unsigned(dt)
    nvidia_maxbound(dt, "modelopt")
    if reduce_range:
        raise CalibrationError("reduce_range: ModelOpt has no reduce_range option")
    if averaging_constant is not None:
        raise CalibrationError("averaging_constant: ModelOpt's calibrators have no moving average")
    if num_quantized_bins is not None:
        raise CalibrationError("num_quantized_bins: ModelOpt derives the quantized bins from the dtype "
                               "(128 for int8, 256 unsigned)")
    params, details, notes = {"num_bits": nbits, "unsigned": unsigned}, {}, []
    if not symmetric:
        notes.append("ModelOpt quantization is symmetric (amax); zero point 0")
    if unsigned and any(float(b.min()) < 0 for b in batches):
        notes.append("unsigned ModelOpt quantization of negative values: fake quant raises "
                     "'Negative values encountered in unsigned quantization'")
    if method == "minmax":
        if num_bins is not None or percentile is not None:
            raise CalibrationError("num_bins/percentile: not used by ModelOpt's MaxCalibrator")
        amax = None
        if axis is not None and len({b.ndim == 1 for b in batches}) > 1:
            raise CalibrationError("axis: ModelOpt's MaxCalibrator raises 'amax shape changed!' when 1-D "
                                   "batches (one per-tensor amax) mix with batches of higher rank")
        if axis is not None and all(b.ndim == 1 for b in batches):
            # convert_quantization_axis_to_reduce_axis gives [] for a 1-D tensor, and torch.amax /
            # torch.amin over dim=[] reduce every dimension: one per-tensor amax
            notes.append("ModelOpt reduces a 1-D tensor over dim=[], which torch treats as every "
                         "dimension: the per-channel amax is one per-tensor amax")
            axis_eff = None
        else:
            axis_eff = axis
        for b in batches:
            if axis_eff is None:
                a = np.maximum(np.abs(F32(b.max())), np.abs(F32(b.min())))
            else:
                v = per_channel_view(b, axis)
                a = np.maximum(np.abs(v.max(axis=1)), np.abs(v.min(axis=1))).astype(np.float32)
            amax = a if amax is None else np.maximum(amax, a)
        amax = np.asarray(amax, np.float32)
        params["calibrator"] = "MaxCalibrator"
    else:
        if axis is not None:
            raise CalibrationError("axis: ModelOpt's HistogramCalibrator only supports per tensor scaling")
        nb = 2048 if num_bins is None else num_bins
        if start_bin is not None and (isinstance(start_bin, bool) or not isinstance(start_bin, (int, np.integer))):
            raise TypeError(f"start_bin: expected an integer, got {start_bin!r}")
        sb = 128 if start_bin is None else int(start_bin)
        if method != "percentile" and percentile is not None:
            raise CalibrationError("percentile: only for method='percentile'")
        st = HistogramState(nb, width=torch_simd_width, threads=torch_threads)
        for b in batches:
            st.collect(b)
        hist = st.int_hist()
        edges = st.edges
        if method in ("entropy", "mse"):
            check_search_size("modelopt", method, hist.size, grown=hist.size > nb)
        details.update(hist=hist, hist_edges=edges)
        params.update(num_bins=nb, calibrator="HistogramCalibrator")
        if method == "entropy":
            if sb < 1:
                raise CalibrationError(f"start_bin: ModelOpt's entropy search needs start_bin >= 1, got {sb} "
                                       f"(_compute_amax_entropy fails with an IndexError)")
            if len(hist) < sb:
                raise CalibrationError(f"num_bins: ModelOpt's entropy search starts at bin {sb}; the "
                                       f"histogram has only {len(hist)} bins")
            amax, divs, i = amax_entropy(hist, edges, nbits, unsigned, 1, sb)
            details.update(divergences=divs, best=i)
            params["start_bin"] = sb
        elif method == "mse":
            amax, errs, i = amax_mse(hist, edges, nbits, unsigned, 1, sb, width=torch_simd_width)
            details.update(errors=errs, best=i)
            params["start_bin"] = sb
            check_finite_range(-amax, amax, tool="modelopt", method=method,
                               why="the bin centers (e[1:] + e[:-1]) / 2 add two float32 edges "
                                   "near float32's largest value before halving")
        else:
            p = 99.99 if percentile is None else percentile
            amax, i = amax_percentile(hist, edges, p)
            details.update(best=i)
            params["percentile"] = p
        amax = np.asarray(amax, np.float32)
    scale, zp = nvidia_scale(amax, dt, "modelopt")
    rmin = np.zeros_like(amax) if unsigned else (-amax).astype(np.float32)
    return CalibrationResult("modelopt", method, dtype, symmetric, reduce_range, axis, rmin,
                             amax.copy(), scale, zp, amax=amax, params=params, details=details,
                             notes=notes)
