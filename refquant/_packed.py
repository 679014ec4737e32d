"""Packed constant weights: ``refquant.pack_weights(B, ...)`` returns a ``PackedWeights``
that matmul_integer / qlinear_matmul / qgemm / qlinear_conv accept in place of B / w.

The reference ops call :func:`unwrap` to get the original array back; fast kernels
use the packed layout (``refquant._gemm.PackedB``: int8 "VNNI-4" panels of 16 columns,
K padded to 64, B ^ 0x80 for uint8 B, plus column sums -- see kernels/src/gemm/rq_gemm.h),
as inference engines pre-pack constant weight initializers.  ``original`` is a read-only
copy, so later changes to the caller's array cannot make the two disagree.
"""
from __future__ import annotations

import numpy as np


class PackedWeights:
    """Weights packed once for repeated calls.  ``.original`` is the unpacked array."""

    def __init__(self, original, packed=None, info=None):
        # the packed copy must keep matching the original: hold a read-only array and hand out
        # read-only views of it (a view of a read-only base cannot be made writable again)
        a = np.asarray(original)
        if a.flags.writeable or not a.flags.owndata:   # (pack_weights passes its own frozen copy)
            a = np.array(a, copy=True)
            a.setflags(write=False)
        self._original = a.view()
        self.packed = packed
        self.info = dict(info or {})

    @property
    def original(self):
        """The unpacked weights (read-only)."""
        return self._original

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
    """Pack constant weights once for repeated calls.

    ``B``: a 2-D uint8/int8 GEMM operand (K, N) (MatMulInteger / QLinearMatMul / QGemm with
    transB=0) or 4-D convolution weights (M, C, kH, kW) (QLinearConv / ConvInteger, group 1).
    Returns a ``PackedWeights``: pass it wherever B / w goes.  Without the compiled kernels
    (or for other shapes / dtypes) the weights are kept plain; every op still accepts them.
    """
    if kwargs:
        raise TypeError(f"pack_weights: unexpected keyword arguments {sorted(kwargs)}")
    if isinstance(B, PackedWeights):
        return B
    from ._dtypes import refuse_masked
    refuse_masked(B, "B")
    orig = np.array(B, copy=True)
    orig.setflags(write=False)
    packed, layout = None, "plain"
    if orig.dtype in (np.dtype(np.uint8), np.dtype(np.int8)) and orig.ndim in (2, 4) and orig.size:
        try:
            from . import _gemm
        except ImportError:
            _gemm = None
        if _gemm is not None:
            from ._errors import KernelSizeLimit
            try:
                if orig.ndim == 2:
                    packed, layout = _gemm.pack_b(orig), "vnni4_gemm"
                else:
                    packed, layout = _gemm.pack_conv_w(orig), "vnni4_conv"
            except KernelSizeLimit:     # beyond the kernels' int sizes: kept plain
                packed, layout = None, "plain"
    return PackedWeights(orig, packed, {"layout": layout})
