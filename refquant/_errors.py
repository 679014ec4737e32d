"""Exceptions shared by the compiled kernels and the dispatcher."""
from __future__ import annotations


class KernelSizeLimit(ValueError):
    """A dimension beyond what the C kernels index (2**31 - 1: their sizes are C ints).

    Raised by the compiled entry points before any C code runs; the dispatcher catches it and
    runs the numpy reference instead (``refquant.last_path()`` then says ``'reference'``), so a
    huge array gets the reference's result (or numpy's MemoryError), never a truncated size."""
