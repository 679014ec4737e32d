"""Packed constant weights: ``refquant.pack_weights(B, ...)`` returns a ``PackedWeights``
that matmul_integer / qlinear_matmul / qgemm / qlinear_conv accept in place of B / w.

The reference ops call :func:`unwrap` to get the original array back; fast kernels
use the packed layout.  (Owned by the GEMM-kernel work; minimal version.)
"""
from __future__ import annotations

import numpy as np


class PackedWeights:
    """Weights packed once for repeated calls.  ``.original`` is the unpacked array."""

    def __init__(self, original, packed=None, info=None):
        self.original = np.asarray(original)
        self.packed = packed
        self.info = dict(info or {})

    @property
    def shape(self):
        return self.original.shape

    @property
    def dtype(self):
        return self.original.dtype

    def __array__(self, dtype=None, copy=None):
        return self.original if dtype is None else self.original.astype(dtype)

    def __repr__(self):
        return f"PackedWeights(shape={self.shape}, dtype={self.dtype}, layout={self.info.get('layout')})"


def unwrap(x):
    """The plain array behind ``x`` (``x`` itself when it is not PackedWeights)."""
    return x.original if isinstance(x, PackedWeights) else x


def pack_weights(B, **kwargs):
    """Pack constant weights for repeated calls (reference version: keeps the array)."""
    return PackedWeights(B, None, {"layout": "plain"})
