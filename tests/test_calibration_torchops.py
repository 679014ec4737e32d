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
