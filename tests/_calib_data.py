"""Calibration datasets shared by the calibration tests (small, deterministic)."""
import numpy as np


def datasets(seed=0, shape=(4, 3, 8, 8)):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    out = {
        "gaussian": [x],
        "heavy_tailed": [rng.standard_t(2, shape).astype(np.float32)],
        "non_negative": [np.abs(x)],
        "outliers": [np.where(rng.random(shape) < 0.002, np.float32(40.0), x).astype(np.float32)],
        "constant": [np.full(shape, 1.5, np.float32)],
        "all_zero": [np.zeros(shape, np.float32)],
        "multi_batch_growing": [x * np.float32(0.5), x, x * np.float32(2.0), x * np.float32(3.0)],
        "multi_batch_shifting": [x + np.float32(3), x - np.float32(2), x * np.float32(4) + np.float32(1)],
        "negative_only": [-np.abs(x) - np.float32(0.25)],
        "constant_then_varied": [np.full(shape, 1.5, np.float32), x],
    }
    return out


def bits(a):
    return np.asarray(a, np.float32).view(np.uint32).ravel().tolist()


def ints(a):
    return np.asarray(a).astype(np.int64).ravel().tolist()
