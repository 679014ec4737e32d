"""TensorRT's INT8 calibrators, from their documented algorithms (TensorRT itself cannot run here).

TensorRT's calibrators are closed source.  refquant implements them from NVIDIA's published
description -- the GTC 2017 talk "8-bit Inference with TensorRT" (S. Migacz), whose pseudocode
ORT's calibrate.py and NVIDIA's forum answers quote, and the TensorRT developer guide -- using
NVIDIA's open-source pytorch-quantization/ModelOpt histogram code as the description of the steps
the talk leaves open (level assignment by ``digitize``, expansion over nonzero bins).  The result is
checked on hand-computed histograms (tests/test_calibration_tensorrt.py), NOT against TensorRT.
Where the description is silent refquant's choice is stated below (UNCONFIRMED against TensorRT).

Semantics
---------
- minmax (``IInt8MinMaxCalibrator``): amax = max |x| over every batch (per channel along ``axis``).
- entropy (``IInt8EntropyCalibrator2``):
  1. amax_all = max |x| over all batches; one histogram of |x| with ``num_bins`` = 2048 bins over
     [0, amax_all] (``np.histogram`` of the float32 |x|; refquant builds it after seeing every batch,
     as a two-pass calibrator would -- UNCONFIRMED how TensorRT grows it across batches);
  2. for i in range(num_quantized_bins, num_bins)  (128 .. 2047, as the talk's ``range(128, 2048)``):
     P = bins[0:i] with sum(bins[i:]) added to P[i-1];
     Q = bins[0:i] merged into ``num_quantized_bins`` levels (bin j -> level
     ``digitize(j, linspace(0, i, levels + 1)) - 1``), each level's mass spread evenly over its
     nonzero bins (zero bins stay 0);  P, Q normalised;  KL = sum P log(P / Q)  (float64;
     P > 0 where Q = 0 gives +inf);
  3. m = the first i with the smallest KL; threshold = (m + 0.5) * bin_width, bin_width = amax_all /
     num_bins (float64, then float32).
  The range is symmetric [-T, T]; scale = T / 127 (float32).
- percentile (TensorRT has only the legacy quantile calibrator; refquant follows
  pytorch-quantization's ``_compute_amax_percentile`` on the same |x| histogram): cdf =
  cumsum(hist / total), amax = edges[searchsorted(cdf, p / 100)], default p = 99.99.
"""
from __future__ import annotations

import numpy as np

from ._common import CalibrationError, CalibrationResult, np_histogram, per_channel_view
from .qparams import nvidia_maxbound, nvidia_scale

F32 = np.float32
METHODS = ("minmax", "entropy", "percentile")
DEFAULT_METHOD = "entropy"


def kl_divergence(p, q) -> float:
    """sum p*log(p/q) over p > 0 of the normalised p and q; +inf where p > 0 and q == 0."""
    p = np.asarray(p, np.float64)
    q = np.asarray(q, np.float64)
    p = p / p.sum()
    q = q / q.sum()
    m = p > 0
    if np.any(q[m] == 0):
        return float("inf")
    return float(np.sum(p[m] * np.log(p[m] / q[m])))


def quantize_expand(bins_i, levels):
    """Q for one candidate: merge ``bins_i`` into ``levels`` levels and expand over nonzero bins."""
    bins_i = np.asarray(bins_i, np.float64)
    i = bins_i.size
    space = np.linspace(0, i, num=levels + 1)
    dig = np.digitize(np.arange(i), space) - 1
    nz = bins_i != 0
    sums = np.zeros(levels, np.float64)
    np.add.at(sums, dig[nz], bins_i[nz])
    cnt = np.bincount(dig[nz], minlength=levels)
    q = np.zeros(i, np.float64)
    q[nz] = sums[dig[nz]] / cnt[dig[nz]]
    return q


def entropy_threshold_from_histogram(hist, bin_width, *, num_quantized_bins=128):
    """IInt8EntropyCalibrator2's threshold for a |x| histogram.

    Returns (threshold, m, divergences) with divergences[k] for i = num_quantized_bins + k.
    """
    hist = np.asarray(hist, np.float64)
    n = hist.size
    nq = int(num_quantized_bins)
    if n <= nq:
        raise CalibrationError(f"num_bins: TensorRT's entropy search needs more histogram bins ({n}) "
                               f"than quantized bins ({nq})")
    tail = np.concatenate([np.cumsum(hist[::-1])[::-1], [0.0]])
    divs = []
    for i in range(nq, n):
        p = hist[:i].copy()
        p[i - 1] += tail[i]
        if p.sum() == 0:
            divs.append(float("inf"))
            continue
        q = quantize_expand(hist[:i], nq)
        if q.sum() == 0:
            divs.append(float("inf"))
            continue
        divs.append(kl_divergence(p, q))
    divs = np.asarray(divs)
    k = int(np.argmin(divs))
    m = nq + k
    return (m + 0.5) * float(bin_width), m, divs


def abs_histogram(batches, num_bins):
    a = np.concatenate([np.abs(b.ravel()) for b in batches]).astype(np.float32)
    amax_all = F32(a.max())
    hist, edges = np_histogram("refquant's TensorRT model", a, bins=num_bins, range=(F32(0), amax_all))
    return hist, edges, amax_all


def calibrate(batches, *, method, dtype, dt, symmetric, reduce_range, axis, num_bins,
              num_quantized_bins, percentile, averaging_constant, **_):
    if method not in METHODS:
        raise CalibrationError(f"method: TensorRT has no {method!r} calibrator")
    nvidia_maxbound(dt, "tensorrt")
    if reduce_range:
        raise CalibrationError("reduce_range: TensorRT has no reduce_range option")
    if averaging_constant is not None:
        raise CalibrationError("averaging_constant: TensorRT's calibrators have no moving average")
    params, details, notes = {}, {}, []
    if not symmetric:
        notes.append("TensorRT quantization is symmetric: range [-amax, amax], zero point 0")
    if method == "minmax":
        if num_bins is not None or num_quantized_bins is not None or percentile is not None:
            raise CalibrationError("num_bins/num_quantized_bins/percentile: not used by the MinMax calibrator")
        amax = None
        for b in batches:
            if axis is None:
                a = F32(np.abs(b).max())
            else:
                a = np.abs(per_channel_view(b, axis)).max(axis=1).astype(np.float32)
            amax = a if amax is None else np.maximum(amax, a)
        amax = np.asarray(amax, np.float32)
        params["calibrator"] = "IInt8MinMaxCalibrator"
    else:
        if axis is not None:
            raise CalibrationError(f"axis: TensorRT's {method} calibration is per tensor")
        nb = 2048 if num_bins is None else num_bins
        hist, edges, amax_all = abs_histogram(batches, nb)
        details.update(hist=hist, hist_edges=edges)
        width = float(amax_all) / nb
        if method == "entropy":
            if percentile is not None:
                raise CalibrationError("percentile: not used by the entropy calibrator")
            nq = 128 if num_quantized_bins is None else num_quantized_bins
            if nq >= nb:
                raise CalibrationError(f"num_quantized_bins: {nq} must be smaller than num_bins {nb}")
            if amax_all == 0:
                amax = F32(0)
                notes.append("all-zero data: amax 0")
            else:
                t, m, divs = entropy_threshold_from_histogram(hist, width, num_quantized_bins=nq)
                amax = F32(t)
                details.update(divergences=divs, best=m)
            params.update(num_bins=nb, num_quantized_bins=nq, calibrator="IInt8EntropyCalibrator2")
        else:
            if num_quantized_bins is not None:
                raise CalibrationError("num_quantized_bins: not used by the percentile calibrator")
            p = 99.99 if percentile is None else percentile
            total = hist.sum()
            cdf = np.cumsum(hist / total)
            idx = int(np.searchsorted(cdf, p / 100))
            amax = F32(edges[min(idx, len(edges) - 1)])
            params.update(num_bins=nb, percentile=p, calibrator="percentile (pytorch-quantization rule)")
        amax = np.asarray(amax, np.float32)
    scale, zp = nvidia_scale(amax, dt, "tensorrt")
    return CalibrationResult("tensorrt", method, dtype, symmetric, reduce_range, axis,
                             (-amax).astype(np.float32), amax.copy(), scale, zp, amax=amax,
                             params=params, details=details, notes=notes)
