"""refquant.calibration vs NVIDIA ModelOpt's calibrators (MaxCalibrator, HistogramCalibrator), live.

ModelOpt's own entropy search is pure-Python loops (seconds per call at 2048 bins), so the default
set uses 256/512 bins and one 2048-bin case; the slow sweep covers the rest.
"""
import numpy as np
import pytest

pytest.importorskip("modelopt.torch.quantization.calib", reason="nvidia-modelopt is the peer "
                    "(pip install nvidia-modelopt==0.47.0 requests huggingface_hub)")

from refquant.calibration import calibrate  # noqa: E402
from _calib_data import datasets, bits, ints  # noqa: E402
from _calib_peers import modelopt_amax  # noqa: E402

DATA = datasets(shape=(2, 3, 8, 8))


def _check(bs, meth, dt="int8", axis=None, num_bins=None, percentile=None):
    try:
        a = modelopt_amax(bs, method=meth, dtype=dt, axis=axis, num_bins=num_bins, percentile=percentile)
    except RuntimeError as exc:          # ModelOpt itself fails: refquant must refuse the same data
        with pytest.raises(ValueError, match="ModelOpt"):
            calibrate(bs, tool="modelopt", method=meth, dtype=dt, axis=axis, num_bins=num_bins,
                      percentile=percentile)
        return str(exc)
    r = calibrate(bs, tool="modelopt", method=meth, dtype=dt, axis=axis, num_bins=num_bins,
                  percentile=percentile)
    assert bits(a) == bits(r.amax), (meth, dt, a, r.amax)
    # export rule: scale = amax / maxbound, 0 -> 1, zp 0
    import torch
    bound = {"int8": 127, "uint8": 255, "int4": 7}[dt]
    sc = (torch.from_numpy(np.asarray(a, np.float32)) / bound)
    sc.masked_fill_(sc == 0, 1.0)
    assert bits(sc.numpy()) == bits(r.scale)
    assert set(ints(r.zero_point)) == {0}


@pytest.mark.parametrize("name", sorted(DATA))
def test_max_calibrator(name):
    for dt in ("int8", "uint8", "int4"):
        _check(DATA[name], "minmax", dt)
    _check(DATA[name], "minmax", "int8", axis=1)
    _check(DATA[name], "minmax", "int8", axis=0)


@pytest.mark.parametrize("name", sorted(set(DATA) - {"all_zero"}))
@pytest.mark.parametrize("meth", ["entropy", "mse", "percentile"])
def test_histogram_calibrator(name, meth):
    for dt in ("int8", "uint8"):
        _check(DATA[name], meth, dt, num_bins=256)


def test_histogram_calibrator_2048_bins():
    bs = DATA["multi_batch_growing"][:2]
    for meth in ("entropy", "mse", "percentile"):
        _check(bs, meth, "int8", num_bins=2048 if meth != "entropy" else 512)
    _check(bs, "percentile", "int8", percentile=99.0)


def test_all_zero_histogram():
    for meth in ("mse", "percentile"):
        _check(DATA["all_zero"], meth, "int8", num_bins=256)


def test_mse_reproduces_argument_shift():
    """ModelOpt 0.47 passes (num_bits, unsigned) into fake_tensor_quant's (bias, num_bits): the MSE
    search returns the first candidate, centers[128]."""
    r = calibrate(DATA["gaussian"], tool="modelopt", method="mse", num_bins=2048)
    e = r.details["hist_edges"]
    assert float(r.amax) == float(np.float32((e[128] + e[129]) / np.float32(2)))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(DATA) - {"all_zero"}))
def test_modelopt_2048_sweep(name):
    for meth in ("entropy", "mse", "percentile"):
        _check(DATA[name], meth, "int8")


def test_max_calibrator_axis_on_1d_is_per_tensor():
    """convert_quantization_axis_to_reduce_axis gives [] for 1-D input and torch.amax(dim=[])
    reduces everything: ModelOpt's 'per-channel' amax of a 1-D tensor is one per-tensor amax."""
    bs = [np.array([0.5, -3.0, 2.0, 1000.0], np.float32), np.array([1.0, 7.0, -2.0, 0.0], np.float32)]
    for ax in (0, -1):
        _check(bs, "minmax", "int8", axis=ax)
        r = calibrate(bs, tool="modelopt", method="minmax", axis=ax)
        assert np.ndim(r.amax) == 0 and float(r.amax) == 1000.0
    with pytest.raises(ValueError, match="amax shape changed"):
        calibrate([bs[0], bs[1].reshape(4, 1)], tool="modelopt", method="minmax", axis=0)


def test_mse_center_overflow_refused():
    """ModelOpt's bin centers (e[1:] + e[:-1]) / 2 overflow float32 near FLT_MAX: amax inf.
    refquant names the overflow instead of failing with 'amax: must be finite'."""
    x = [np.array([3e38, -1.0, 0.5], np.float32)]
    a = modelopt_amax(x, method="mse", num_bins=129)
    assert np.isinf(a)
    with pytest.raises(ValueError, match="overflows float32"):
        calibrate(x, tool="modelopt", method="mse", num_bins=129)
    _check(x, "percentile", num_bins=129)


def test_entropy_start_bin_below_1_refused():
    """ModelOpt's _compute_amax_entropy fails with an IndexError for start_bin <= 0; refquant raised
    the same bare IndexError -- now a CalibrationError (mse with start_bin 0 / -5 runs in both)."""
    x = np.random.default_rng(0).standard_normal(500).astype(np.float32)
    for sb in (0, -5):
        with pytest.raises(ValueError, match="start_bin: ModelOpt's entropy search needs start_bin >= 1"):
            calibrate(x, tool="modelopt", method="entropy", num_bins=256, start_bin=sb)
    with pytest.raises(TypeError, match="start_bin"):
        calibrate(x, tool="modelopt", method="entropy", start_bin=1.5)
    import torch
    from modelopt.torch.quantization.calib import HistogramCalibrator
    for sb in (0, -5):
        cal = HistogramCalibrator(num_bits=8, num_bins=256)
        cal.collect(torch.from_numpy(x))
        assert bits(cal.compute_amax("mse", start_bin=sb).numpy()) == \
            bits(calibrate(x, tool="modelopt", method="mse", num_bins=256, start_bin=sb).amax)


def test_histogram_growth_overflow_refused():
    """A later batch far beyond the first batch's bin width: ModelOpt's int(ceil(max / width))
    overflows (OverflowError) or asks for billions of bins; refquant raises a CalibrationError."""
    tiny = np.array([1e-30, -2e-30], np.float32)
    with pytest.raises(OverflowError):
        modelopt_amax([tiny, np.array([3e38], np.float32)], method="percentile")
    for big in (3e38, 1e6):
        with pytest.raises(ValueError, match="would grow to int"):
            calibrate([tiny, np.array([big], np.float32)], tool="modelopt", method="percentile")


def test_quadratic_search_on_grown_histogram_refused():
    """A later batch 94x wider grows ModelOpt's histogram to ~192k bins of the first width; its
    entropy / mse searches are quadratic in the bins (refquant hung for many minutes, as ModelOpt
    would): refused with a clear error, while the linear percentile still matches ModelOpt."""
    bs = [np.array([-16.7, 27.97], np.float32), np.array([-2620.1, 41.8], np.float32)]
    for meth in ("entropy", "mse"):
        with pytest.raises(ValueError, match="the histogram grew to that size"):
            calibrate(bs, tool="modelopt", method=meth)
    _check(bs, "percentile")
