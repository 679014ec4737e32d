"""refquant.calibration vs torch.ao.quantization observers' calculate_qparams, live and bit-exact."""
import numpy as np
import pytest

pytest.importorskip("torch", reason="torch.ao observers are the peer")

from refquant.calibration import calibrate, compute_scale_zero_point  # noqa: E402
from _calib_data import datasets, bits, ints  # noqa: E402
from _calib_peers import torch_observer  # noqa: E402

DATA = datasets()
SMALL = datasets(seed=5, shape=(2, 3, 6, 6))


def _check(bs, meth, dt, sym, rr, axis=None, **kw):
    s, z, lo, hi = torch_observer(bs, method=meth, dtype=dt, symmetric=sym, reduce_range=rr, axis=axis, **kw)
    ac = kw.get("averaging_constant")
    r = calibrate(bs, tool="pytorch", method=meth, dtype=dt, symmetric=sym, reduce_range=rr, axis=axis,
                  averaging_constant=ac, num_bins=kw.get("bins"))
    assert bits(lo) == bits(r.rmin) and bits(hi) == bits(r.rmax), (lo, hi, r.rmin, r.rmax)
    assert bits(s) == bits(r.scale), (s, r.scale)
    assert ints(z) == ints(r.zero_point), (z, r.zero_point)


COMBOS = [(dt, sym, rr) for dt in ("int8", "uint8", "int16", "uint16", "int4", "uint4")
          for sym in (False, True) for rr in (False, True) if not (sym and rr and dt in ("uint8", "uint4"))]


@pytest.mark.parametrize("name", sorted(DATA))
@pytest.mark.parametrize("meth", ["minmax", "moving_average_minmax"])
def test_minmax_observers(name, meth):
    for dt, sym, rr in COMBOS:
        _check(DATA[name], meth, dt, sym, rr)


@pytest.mark.parametrize("name", sorted(DATA))
@pytest.mark.parametrize("meth", ["minmax", "moving_average_minmax"])
def test_per_channel_observers(name, meth):
    for dt, sym, rr in COMBOS[::3]:
        _check(DATA[name], meth, dt, sym, rr, axis=1)
    _check(DATA[name], meth, "int8", True, False, axis=0)


def test_moving_average_constant():
    _check(DATA["multi_batch_growing"], "moving_average_minmax", "uint8", False, False, averaging_constant=0.3)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_histogram_observer(name):
    for dt, sym, rr in [("uint8", False, True), ("int8", True, False), ("uint8", False, False),
                        ("int4", False, False)]:
        _check(SMALL[name], "histogram", dt, sym, rr)


def test_histogram_observer_small_bins_growing():
    rng = np.random.default_rng(11)
    bs = [rng.standard_normal(300).astype(np.float32) * np.float32(s) + np.float32(o)
          for s, o in ((1, 0), (3, 1), (0.5, -4), (6, 2))]
    for bins in (64, 256):
        _check(bs, "histogram", "uint8", False, False, bins=bins)


def test_symmetric_scale_is_absmax_over_127_5():
    """SEMANTICS 4.4/7.10: torch symmetric qint8 scale = absmax / 127.5."""
    s, z = compute_scale_zero_point(-1.0, 0.5, dtype="int8", symmetric=True, tool="pytorch")
    assert float(s) == float(np.float32(0.0078431377)) and int(z) == 0
    s, z = compute_scale_zero_point(-1.0, 0.5, dtype="uint8", symmetric=True, tool="pytorch")
    assert int(z) == 128


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_torch_sweep(seed):
    for name, bs in datasets(seed=seed + 20, shape=(3, 4, 5, 5)).items():
        for meth in ("minmax", "moving_average_minmax", "histogram"):
            for dt, sym, rr in COMBOS:
                if meth == "histogram" and dt in ("int16", "uint16"):
                    continue
                _check(bs, meth, dt, sym, rr)


# ---------------------------------------------------------------- edge cases found by red-teaming
def test_float32_overflow_refused():
    """torch's float32 arithmetic overflows on finite data: the moving average gives an inf range
    (scale inf); a histogram spanning more than FLT_MAX gives range [nan, inf] (scale nan).
    refquant names the overflow instead of failing with 'rmin: must be finite'."""
    F = np.float32
    mov = [np.array([-3e38], F), np.array([3e38], F)]
    s, z, lo, hi = torch_observer(mov, method="moving_average_minmax", dtype="uint8")
    assert np.isinf(lo) and np.isinf(s).all()
    with pytest.raises(ValueError, match="overflows float32"):
        calibrate(mov, tool="pytorch", method="moving_average_minmax", dtype="uint8")
    hist = [np.array([-3e38, 0.5, 3e38], F)]
    s, z, lo, hi = torch_observer(hist, method="histogram", dtype="uint8", bins=16)
    assert np.isnan(s).all()
    with pytest.raises(ValueError, match="overflows float32"):
        calibrate(hist, tool="pytorch", method="histogram", dtype="uint8", num_bins=16)
    _check(hist, "minmax", "uint8", False, False)        # finite range, inf scale: reproduced


def test_per_channel_needs_rank_2():
    """torch.flatten(y, start_dim=1) fails on 1-D batches: refquant refuses them too."""
    x = [np.array([1.0, -2.0, 3.0], np.float32)]
    with pytest.raises(IndexError):
        torch_observer(x, method="minmax", axis=0)
    for meth in ("minmax", "moving_average_minmax"):
        with pytest.raises(ValueError, match="rank >= 2"):
            calibrate(x, tool="pytorch", method=meth, axis=0)
    _check([x[0].reshape(3, 1)], "minmax", "int8", False, False, axis=-2)


def test_histogram_accepts_symmetric_reduce_range_quint8():
    """Only the MinMax observers' constructors refuse symmetric + reduce_range for quint8;
    HistogramObserver computes (zero point 128 outside [0, 127] for uint8)."""
    x = [np.linspace(-1, 3, 50, dtype=np.float32)]
    for dt in ("uint8", "uint4", "uint2"):
        _check(x, "histogram", dt, True, True, bins=64)
        with pytest.raises(ValueError, match="quint8"):
            calibrate(x, tool="pytorch", method="minmax", dtype=dt, symmetric=True, reduce_range=True)
    r = calibrate(x, tool="pytorch", method="histogram", dtype="uint8", symmetric=True, reduce_range=True)
    assert int(r.zero_point) == 128 and any("outside the reduced range" in n for n in r.notes)
