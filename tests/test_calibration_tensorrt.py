"""TensorRT calibrators (refquant.calibration.tensorrt) on hand-checked histograms.

TensorRT cannot run here; these cases were computed by hand from the documented algorithm
(GTC 2017 pseudocode, SEMANTICS.md 6.2): P = bins[:i] with the tail folded into P[i-1]; Q = bins[:i]
merged into levels and spread over the nonzero bins; KL(P || Q); first argmin m; T = (m + 0.5) * w.
"""
import math

import numpy as np
import pytest

from refquant.calibration import calibrate
from refquant.calibration.tensorrt import (entropy_threshold_from_histogram, kl_divergence,
                                           quantize_expand)
from _calib_data import bits


def test_uniform_four_bins_two_levels():
    # i=2: P=[4,12]/16, Q=[4,4]/8 -> .25 ln .5 + .75 ln 1.5 = 0.130812...
    # i=3: P=[4,4,8]/16, Q=[4,4,4]/12 -> 2 * .25 ln .75 + .5 ln 1.5 = 0.058892...
    t, m, divs = entropy_threshold_from_histogram([4, 4, 4, 4], 0.5, num_quantized_bins=2)
    assert divs[0] == pytest.approx(0.25 * math.log(0.5) + 0.75 * math.log(1.5), rel=1e-12)
    assert divs[1] == pytest.approx(0.5 * math.log(0.75) + 0.5 * math.log(1.5), rel=1e-12)
    assert m == 3 and t == 3.5 * 0.5


def test_zero_bins_are_not_filled():
    h = [6, 0, 2, 2, 0, 0]
    # i=2: Q=[6,0] while P[1]=4 -> inf;  i=3: P=[.6,0,.4], Q=[.75,0,.25];  i=4: Q == P -> 0;
    # i=5: Q=[4,0,4,2,0] -> .6 ln 1.5 + .2 ln .5
    assert list(quantize_expand([6, 0, 2], 2)) == [6, 0, 2]
    assert list(quantize_expand([6, 0, 2, 2, 0], 2)) == [4, 0, 4, 2, 0]
    t, m, divs = entropy_threshold_from_histogram(h, 1.0, num_quantized_bins=2)
    assert divs[0] == math.inf
    assert divs[1] == pytest.approx(0.6 * math.log(0.8) + 0.4 * math.log(1.6), rel=1e-12)
    assert divs[2] == 0.0
    assert divs[3] == pytest.approx(0.6 * math.log(1.5) + 0.2 * math.log(0.5), rel=1e-12)
    assert m == 4 and t == 4.5


def test_first_argmin_on_ties():
    t, m, divs = entropy_threshold_from_histogram([2, 2, 0, 0, 0, 0], 1.0, num_quantized_bins=2)
    assert divs[0] == 0.0 and divs[1] == 0.0 and m == 2 and t == 2.5


def test_kl_definition():
    assert kl_divergence([1, 1], [1, 3]) == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(2 / 3))
    assert kl_divergence([1, 1], [1, 0]) == math.inf
    assert kl_divergence([0, 1], [1, 1]) == pytest.approx(math.log(2))


def test_pipeline_uses_2048_bins_128_levels():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(20000).astype(np.float32)
    x[:5] = 30.0
    r = calibrate([x[:10000], x[10000:]], tool="tensorrt", method="entropy")
    h, e = np.histogram(np.abs(x), bins=2048, range=(np.float32(0), np.float32(30.0)))
    t, m, _ = entropy_threshold_from_histogram(h, 30.0 / 2048)
    assert bits(r.amax) == bits(np.float32(t)) and r.details["best"] == m
    assert 2.0 < float(r.amax) < 8.0                    # the outliers are clipped
    assert bits(r.scale) == bits(np.float32(r.amax) / np.float32(127))
    assert int(np.asarray(r.zero_point).astype(int)) == 0
    assert bits(r.rmin) == bits(-r.amax)


def test_minmax_and_percentile():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3, 5)).astype(np.float32)
    r = calibrate([x, 2 * x], tool="tensorrt", method="minmax")
    assert bits(r.amax) == bits(np.abs(2 * x).max())
    pc = calibrate([x, 2 * x], tool="tensorrt", method="minmax", axis=1)
    assert bits(pc.amax) == bits(np.abs(2 * x).max(axis=(0, 2)))
    p = calibrate(x, tool="tensorrt", method="percentile", percentile=50.0)
    assert 0 < float(p.amax) < float(np.abs(x).max())


def test_all_zero_data():
    r = calibrate(np.zeros(100, np.float32), tool="tensorrt", method="entropy")
    assert float(r.amax) == 0.0 and float(r.scale) == 1.0


def test_denormal_range_refused_clearly():
    """refquant's TensorRT model builds its |x| histogram with np.histogram: on a denormal range it
    cannot make 2048 finite float32 bins -- a CalibrationError, not numpy's bare ValueError."""
    from refquant.calibration import CalibrationError
    x = np.array([1e-45, -1e-44, 0.0], np.float32)
    for meth in ("entropy", "percentile"):
        with pytest.raises(CalibrationError, match="TensorRT model's histogram"):
            calibrate(x, tool="tensorrt", method=meth)
    assert float(calibrate(x, tool="tensorrt", method="minmax").amax) == float(np.float32(1e-44))
