"""refquant.calibration._torchops (numpy emulations of torch CPU kernels) vs torch, bit-exact."""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is the peer for its own kernels")

from refquant.calibration import _torchops as T  # noqa: E402
from _calib_data import bits  # noqa: E402


def test_linspace_histc_sum_arange_divfloor():
    rng = np.random.default_rng(1)
    for _ in range(120):
        n = int(rng.integers(1, 4000))
        x = (rng.standard_normal(n) * rng.uniform(0.01, 100)).astype(np.float32)
        assert bits(T.sum_f32(x)) == bits(torch.from_numpy(x).sum().numpy())
        s, e = sorted(rng.normal(size=2).astype(np.float32) * 10)
        assert bits(T.linspace(s, e, n + 1)) == bits(torch.linspace(float(s), float(e), n + 1).numpy())
        b = int(rng.integers(1, 3000))
        lo, hi = float(x.min()), float(x.max())
        assert bits(T.histc(x, b, lo, hi)) == bits(torch.histc(torch.from_numpy(x), b, lo, hi).numpy())
        w = np.float32(rng.uniform(1e-4, 1))
        xm = np.float32(rng.uniform(0, 100))
        ta = torch.arange(0, torch.tensor(xm) + torch.tensor(w), torch.tensor(w)).numpy()
        assert bits(T.arange(0, float(np.float32(xm + w)), float(w))) == bits(ta)
        a = (rng.standard_normal(64) * 50).astype(np.float32)
        d = float(rng.uniform(0.1, 3))
        assert bits(T.div_floor(a, np.float32(d))) == bits(torch.div(torch.from_numpy(a), d, rounding_mode="floor").numpy())


def test_sum_rows_matches_sum():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((7, 2049)).astype(np.float32)
    assert bits(T.sum_f32_rows(x)) == bits([T.sum_f32(r) for r in x])


def test_histc_degenerate_range():
    x = np.full(5, 3.0, np.float32)
    assert bits(T.histc(x, 4, 3.0, 3.0)) == bits(torch.histc(torch.from_numpy(x), 4, 3.0, 3.0).numpy())
    z = np.zeros(9, np.float32)
    assert bits(T.histc(z, 2048, 0.0, 0.0)) == bits(torch.histc(torch.from_numpy(z), 2048, 0, 0).numpy())


def test_histc_float32_overflow_of_position():
    """(x - min) * bins beyond float32 (|x| > ~1.6e35 with 2048 bins): torch counts those in bin 0;
    the emulation matches (was a bincount ValueError)."""
    x = np.array([0.0, 1e36, 2e36], np.float32)
    assert bits(T.histc(x, 2048, 0.0, 2e36)) == bits(torch.histc(torch.from_numpy(x), 2048, 0, 2e36).numpy())
    rng = np.random.default_rng(5)
    for _ in range(200):
        bins = int(rng.choice([2, 128, 2048, 2049]))
        mag = float(10.0 ** rng.uniform(30, 38.5))
        lo = float(np.float32(rng.choice([0.0, -mag * rng.uniform(0, 1)])))
        hi = float(np.float32(min(mag, 3.4e38)))
        x = np.concatenate([rng.uniform(lo, hi, 50), [lo, hi, 0.0]]).astype(np.float32)
        with np.errstate(all="ignore"):
            got = T.histc(x, bins, lo, hi)
        assert bits(got) == bits(torch.histc(torch.from_numpy(x), bins, lo, hi).numpy()), (bins, lo, hi)


def test_fma32_single_rounding():
    # a*b + c where separate roundings differ from the fused result
    a, b, c = np.float32(1 + 2**-12), np.float32(1 + 2**-12), np.float32(-1)
    assert T.fma32(a, b, c) == np.float32(2**-11 + 2**-24)


def test_histc_thread_chunks_and_float32_count_limit(monkeypatch):
    """torch.histc counts with float32 += 1 per thread chunk (stuck at 2**24) and sums the thread
    histograms; replayed with the limit lowered to 4 so the case stays small."""
    from refquant.calibration import _torchops as T
    assert T._parallel_chunks(1000, 1) == [(0, 1000)]
    assert T._parallel_chunks(150, 8) == [(0, 150)]                    # below the grain: one chunk
    assert T._parallel_chunks(1000, 3) == [(0, 334), (334, 668), (668, 1000)]
    assert T._parallel_chunks(450, 8) == [(0, 150), (150, 300), (300, 450)]   # ceil(450 / 200) = 3
    monkeypatch.setattr(T, "_F32_COUNT_LIMIT", 4)
    x = np.zeros(1000, np.float32)
    x[::100] = 1.0
    assert T.histc(x, 2, 0.0, 1.0, threads=1).tolist() == [4.0, 4.0]
    assert T.histc(x, 2, 0.0, 1.0, threads=3).tolist() == [12.0, 10.0]
    assert T.histc(x, 2, 0.0, 1.0).tolist() == [990.0, 10.0]


@pytest.mark.slow
def test_histc_count_limit_live():
    """Live: 2**24 + 1000 zeros in one bin -- torch with 1 thread stops at 16777216, with 2 threads
    counts exactly; refquant's torch_threads reproduces both (HistogramObserver end to end)."""
    import torch
    from refquant.calibration import calibrate
    from _calib_peers import torch_observer
    from _calib_data import bits, ints
    x = np.zeros((1 << 24) + 1000, np.float32)
    x[:600] = np.linspace(-3, 5, 600, dtype=np.float32)
    old = torch.get_num_threads()
    try:
        for t in (1, 2):
            torch.set_num_threads(t)
            c = torch.histc(torch.from_numpy(x), 8, -3, 5)[3].item()
            assert (c == 16777216.0) == (t == 1), (t, c)
            s, z, lo, hi = torch_observer([x], method="histogram", dtype="uint8", bins=64)
            r = calibrate([x], tool="pytorch", method="histogram", dtype="uint8", num_bins=64, torch_threads=t)
            assert bits(lo) == bits(r.rmin) and bits(hi) == bits(r.rmax), (t, lo, hi, r.rmin, r.rmax)
            assert bits(s) == bits(r.scale) and ints(z) == ints(r.zero_point)
    finally:
        torch.set_num_threads(old)
