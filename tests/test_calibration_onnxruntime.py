"""refquant.calibration vs onnxruntime.quantization's calibrators, live and bit-exact.

The peer runs as quantize_static runs it: create_calibrator on a one-node model (Mul by 1, so the
calibrated tensor equals the data), one collect_data over a CalibrationDataReader, compute_data,
then quant_utils.compute_scale_zp with get_qmin_qmax_for_qType.
"""
import numpy as np
import pytest

pytest.importorskip("onnxruntime.quantization", reason="onnxruntime's quantization tool is the peer")

from refquant.calibration import calibrate, compute_scale_zero_point  # noqa: E402
from _calib_data import datasets, bits, ints  # noqa: E402
from _calib_peers import ort_ranges, ort_qparams, ORT_VERSION  # noqa: E402

DATA = datasets()
CASES = [
    ("minmax", {}), ("moving_average_minmax", {}), ("entropy", {}), ("entropy", {"num_bins": 2048}),
    ("entropy", {"num_bins": 512, "num_quantized_bins": 64}), ("percentile", {}),
    ("percentile", {"calib_symmetric": False}), ("percentile", {"percentile": 99.0, "num_bins": 256}),
    ("minmax", {"calib_symmetric": True}), ("moving_average_minmax", {"calib_symmetric": True}),
]


def _peer(bs, meth, kw):
    pk = dict(method="minmax" if "minmax" in meth else meth, moving_average=meth == "moving_average_minmax")
    for k in ("num_bins", "num_quantized_bins", "calib_symmetric", "percentile", "averaging_constant"):
        if k in kw:
            pk[k] = kw[k]
    if "axis" in kw:
        pk["per_channel"] = True
    if "strides" in kw:
        pk["strides"] = kw["strides"]
    return ort_ranges(bs, **pk)


def _check(bs, meth, kw):
    td = _peer(bs, meth, kw)
    r = calibrate(bs, tool="onnxruntime", method=meth, ort_version=ORT_VERSION, **kw)
    lo, hi = td.range_value
    assert bits(lo) == bits(r.rmin) and bits(hi) == bits(r.rmax), (meth, kw, lo, hi, r.rmin, r.rmax)
    n = 0
    for dt in ("int8", "uint8", "int16", "uint16", "int4", "uint4"):
        for sym in (False, True):
            for rr in (False, True):
                if np.ndim(lo) and np.size(lo) > 1:     # ORT computes per channel one channel at a time
                    s = [ort_qparams(a, b, dt, sym, rr) for a, b in zip(lo, hi)]
                    s, z = np.array([v[0] for v in s], np.float32), np.array([int(v[1]) for v in s])
                else:
                    s, z = ort_qparams(lo, hi, dt, sym, rr)
                rs, rz = compute_scale_zero_point(r.rmin, r.rmax, dtype=dt, symmetric=sym, reduce_range=rr,
                                                  ort_version=ORT_VERSION)
                assert bits(s) == bits(rs) and ints(z) == ints(rz), (meth, kw, dt, sym, rr, s, z, rs, rz)
                n += 1
    # the scale/zp on the result is compute_scale_zero_point of its range
    return n


@pytest.mark.parametrize("name", sorted(DATA))
@pytest.mark.parametrize("meth,kw", CASES, ids=[f"{m}-{'-'.join(f'{k}{v}' for k, v in kw.items())}" for m, kw in CASES])
def test_ort_calibrators_bit_exact(name, meth, kw):
    _check(DATA[name], meth, kw)


@pytest.mark.parametrize("name", ["gaussian", "multi_batch_growing", "outliers", "all_zero"])
@pytest.mark.parametrize("meth", ["minmax", "moving_average_minmax"])
def test_ort_per_channel_minmax(name, meth):
    _check(DATA[name], meth, {"axis": 1})


@pytest.mark.parametrize("meth", ["minmax", "moving_average_minmax"])
def test_ort_strided_collect_data(meth):
    bs = DATA["multi_batch_growing"]
    kw = {"strides": 2}
    if meth == "moving_average_minmax":
        kw["averaging_constant"] = 0.25
    _check(bs, meth, kw)


def test_ort_distribution_float8():
    bs = DATA["multi_batch_growing"]
    td = ort_ranges(bs, method="distribution")
    r = calibrate(bs, tool="onnxruntime", method="distribution", dtype="float8e4m3fn")
    from onnxruntime.quantization.quant_utils import compute_scale_zp_float8
    from onnx import TensorProto
    z, s = compute_scale_zp_float8(TensorProto.FLOAT8E4M3FN, td.avg_std[1])
    assert bits(s) == bits(r.scale)
    assert bits(td.range_value[0]) == bits(r.rmin) and bits(td.range_value[1]) == bits(r.rmax)


def test_ort_entropy_default_equals_minmax():
    """SEMANTICS 6.4: with the defaults (128/128) there is one candidate -> the min/max range."""
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.standard_normal(5000), [40.0]]).astype(np.float32)
    e = calibrate(x, tool="onnxruntime", method="entropy")
    m = calibrate(x, tool="onnxruntime", method="minmax")
    assert bits(e.rmin) == bits(m.rmin) and bits(e.rmax) == bits(m.rmax)
    e2 = calibrate(x, tool="onnxruntime", method="entropy", num_bins=2048)
    assert float(e2.rmax) < 10.0


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(8))
def test_ort_sweep(seed):
    for name, bs in datasets(seed=seed + 10, shape=(2, 4, 6, 5)).items():
        for meth, kw in CASES:
            _check(bs, meth, kw)


def test_min_real_range_live():
    for rmin, rmax, mrr in [(-1e-6, 1e-6, 1e-3), (0.0, 0.0, 0.5), (-1.0, 2.0, 0.1), (0.5, 0.5, 2.0)]:
        for dt in ("int8", "uint8"):
            for sym in (False, True):
                s, z = ort_qparams(rmin, rmax, dt, sym, False, min_real_range=mrr)
                rs, rz = compute_scale_zero_point(rmin, rmax, dtype=dt, symmetric=sym, min_real_range=mrr,
                                                  ort_version=ORT_VERSION)
                assert bits(s) == bits(rs) and ints(z) == ints(rz), (rmin, rmax, mrr, dt, sym)


# ---------------------------------------------------------------- edge cases found by red-teaming
def test_ort_percentile_one_bin_refused():
    """ORT's compute_percentile stores (lo, hi, *hist[:2]): with num_bins=1 that is a 3-tuple and
    TensorsData raises; refquant refuses it up front instead of returning a range ORT never gives."""
    x = [np.linspace(-1, 2, 12, dtype=np.float32).reshape(3, 4)]
    for cs in (True, False):
        with pytest.raises(Exception):
            ort_ranges(x, method="percentile", num_bins=1, calib_symmetric=cs)
        with pytest.raises(ValueError, match="num_bins: onnxruntime's percentile calibrator needs a histogram of at least 2"):
            calibrate(x, tool="onnxruntime", method="percentile", num_bins=1, calib_symmetric=cs)
    _check(x, "percentile", {"num_bins": 2})
    # with strides a one-bin |x| histogram grows (arange edges) and ORT computes: so does refquant
    grow = [x[0], x[0] * np.float32(3)]
    _check(grow, "percentile", {"num_bins": 1, "strides": 1})


def test_ort_per_channel_strided_minmax_refused():
    """MinMaxCalibrater.merge_range takes Python min()/max() of per-channel arrays: ORT fails on a
    second collect_data call; refquant refuses (the moving average merges arithmetically and works)."""
    rng = np.random.default_rng(4)
    bs = [rng.standard_normal((2, 3, 4)).astype(np.float32) * np.float32(k + 1) for k in range(4)]
    with pytest.raises(ValueError, match="truth value"):
        ort_ranges(bs, method="minmax", per_channel=True, strides=2)
    with pytest.raises(ValueError, match="strides: onnxruntime cannot merge per-channel"):
        calibrate(bs, tool="onnxruntime", method="minmax", axis=1, strides=2)
    _check(bs, "moving_average_minmax", {"axis": 1, "strides": 2, "averaging_constant": 0.5})
    _check([b[:, :1] for b in bs], "minmax", {"axis": 1, "strides": 2})      # one channel: ORT merges


def test_ort_moving_average_overflow_refused():
    """np.nanmean of float32 per-batch maxima overflows: ORT's range is +-inf (scale inf); refquant
    says so instead of failing with 'rmax: must be finite'."""
    bs = [np.array([-3e38, 1.0, 3e38], np.float32)] * 2
    lo, hi = ort_ranges(bs, method="minmax", moving_average=True).range_value
    assert np.isinf(lo) and np.isinf(hi)
    with pytest.raises(ValueError, match="overflows float32"):
        calibrate(bs, tool="onnxruntime", method="moving_average_minmax")
    _check(bs, "minmax", {})                                                  # the plain range is finite


def test_ort_histogram_of_denormal_range_refused_clearly():
    """np.histogram cannot make 128 finite float32 bins over [-1e-44, 1e-44]: ORT fails with numpy's
    ValueError; refquant raises a CalibrationError naming the tool (the CLI's --compare-tools
    reports it instead of a traceback)."""
    from refquant.calibration import CalibrationError
    x = [np.array([1e-45, -1e-44, 0.0], np.float32)]
    for meth in ("entropy", "percentile"):
        with pytest.raises(ValueError, match="Too many bins"):
            ort_ranges(x, method=meth)
        with pytest.raises(CalibrationError, match="onnxruntime's histogram"):
            calibrate(x, tool="onnxruntime", method=meth)
    _check([np.array([0.0, 1e-41, 3e-41], np.float32)], "entropy", {})      # wide enough: bit-exact


@pytest.mark.parametrize("meth,kw", [("entropy", {"num_bins": 256, "num_quantized_bins": 64}),
                                     ("percentile", {}), ("percentile", {"calib_symmetric": False}),
                                     ("percentile", {"num_bins": 64, "percentile": 99.0})])
@pytest.mark.parametrize("name", ["multi_batch_growing", "multi_batch_shifting", "constant_then_varied"])
def test_ort_strided_histogram_calibrators(name, meth, kw):
    """quantize_static's CalibStridedMinMax applies to every method: each group of batches is one
    collect_data call and the HistogramCollector merges call by call (merge_histogram widens by whole
    old-stride bins; the |x| histogram appends arange edges).  refquant ignored strides here."""
    bs = DATA[name]
    for st in (1, len(bs)):
        _check(bs, meth, dict(kw, strides=st))


def test_ort_strided_distribution_and_zero_first_call():
    bs = [np.zeros((2, 3), np.float32), np.linspace(-2, 3, 6, dtype=np.float32).reshape(2, 3)]
    for meth, kw in (("entropy", {"num_bins": 128, "num_quantized_bins": 7}), ("percentile", {}),
                     ("percentile", {"calib_symmetric": False})):
        _check(bs, meth, dict(kw, strides=1))
    td = ort_ranges(DATA["multi_batch_growing"], method="distribution", strides=2)
    r = calibrate(DATA["multi_batch_growing"], tool="onnxruntime", method="distribution",
                  dtype="float8e4m3fn", strides=2)
    assert bits(td.range_value[0]) == bits(r.rmin) and bits(td.range_value[1]) == bits(r.rmax)
    assert bits(td.avg_std[1]) == bits(r.details["std"])


def test_ort_strided_histogram_growth_bounded():
    """A later collect_data call far beyond the first call's range: ORT keeps the first bin width and
    would allocate billions of bins; refquant refuses with a clear error instead of exhausting memory."""
    bs = [np.array([1e-6, -1e-6], np.float32), np.array([1e6, -2.0], np.float32)]
    for meth, kw in (("entropy", {}), ("percentile", {}), ("percentile", {"calib_symmetric": False})):
        with pytest.raises(ValueError, match="would grow its histogram to"):
            calibrate(bs, tool="onnxruntime", method=meth, strides=1, **kw)


@pytest.mark.parametrize("name", ["gaussian", "non_negative", "all_zero", "multi_batch_growing"])
def test_ort_distribution_integer_types(name):
    """quantize_static with the Distribution calibrator and an integer activation type applies
    compute_scale_zp to TensorData's (lowest, highest) = the histogram's extent; refquant refused
    every dtype but float8e4m3fn."""
    _check(DATA[name], "distribution", {})
    _check(DATA[name], "distribution", {"num_bins": 512, "strides": 1})


def test_ort_histogram_overflowing_range_refused_clearly():
    """Near float32's limit ORT's merged/signed histograms have an infinite range or width: ORT fails
    in np.histogram, refquant with a CalibrationError (the |x| histogram that stays finite matches)."""
    from refquant.calibration import CalibrationError
    bs = [np.array([1e38, 0.0], np.float32), np.array([3.4e38, 1.0], np.float32)]
    for meth, kw in (("entropy", {}), ("percentile", {"calib_symmetric": False})):
        with pytest.raises(ValueError):
            ort_ranges(bs, method=meth, strides=1, **kw)
        with pytest.raises(CalibrationError, match="onnxruntime's histogram"):
            calibrate(bs, tool="onnxruntime", method=meth, strides=1, **kw)
    _check(bs, "percentile", {"strides": 1})


def test_ort_entropy_on_grown_histogram_refused():
    """With strides ORT's merge_histogram keeps the first call's bin width; a far wider later call
    makes the (quadratic) entropy search enormous: refused clearly; percentile stays bit-exact."""
    bs = [np.array([-1.0, 1.0], np.float32), np.array([-2000.0, 5.0], np.float32)]
    with pytest.raises(ValueError, match="the histogram grew to that size"):
        calibrate(bs, tool="onnxruntime", method="entropy", strides=1)
    _check(bs, "percentile", {"strides": 1, "calib_symmetric": False})


def test_ort_distribution_float8_zero_std_noted():
    """All-zero data: ORT's float8 scale is std / std(float8) = 0 -- reproduced, and said."""
    from onnxruntime.quantization.quant_utils import compute_scale_zp_float8
    from onnx import TensorProto
    bs = DATA["all_zero"]
    td = ort_ranges(bs, method="distribution")
    z, s = compute_scale_zp_float8(TensorProto.FLOAT8E4M3FN, td.avg_std[1])
    r = calibrate(bs, tool="onnxruntime", method="distribution", dtype="float8e4m3fn")
    assert bits(s) == bits(r.scale) and float(r.scale) == 0.0
    assert any("unusable for QuantizeLinear" in n for n in r.notes)
