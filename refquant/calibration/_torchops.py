"""numpy emulations of the few PyTorch CPU kernels that the torch and ModelOpt calibrators use.

Every function reproduces the float32 arithmetic of the ATen CPU kernel it names, bit for bit,
as read from the ATen sources (``aten/src/ATen/native/cpu/*.cpp``) and checked live against
torch 2.13 (tests/test_calibration_torchops.py):

- :func:`linspace` -- ``RangeFactoriesKernel.cpp`` ``linspace_kernel``: ``step = (end - start) / (n - 1)``
  in float32; element i is ``fma(step, i, start)`` below ``n // 2`` and ``fma(-step, n - 1 - i, end)``
  above (the compiler contracts ``start + step * i`` into one fused multiply-add).
- :func:`arange` -- ``arange_kernel`` for a float32 result: start/step in float64 (the CPU accumulate
  type), SIMD lanes ``f32(f32(start + step * idx) + k * step)`` for ``k < W`` where W = 8 is the vector
  width torch 2.13 uses on x86, the scalar tail ``f32(start + step * idx)``.
- :func:`histc` -- ``Histogram.cpp`` ``histogram_histc_out`` + ``HistogramKernel.cpp``
  ``LINEAR_INTERPOLATION``: edges from :func:`linspace`, ``pos = int((x - left) * nbins / (right - left))``
  in float32, values outside [left, right] (and NaN) skipped, x == right goes to the last bin;
  counts are float32.  ATen counts with ``+= 1`` in one float32 histogram per thread
  (``at::parallel_for`` over the elements, grain 200: ``min(threads, ceil(N / 200))`` chunks of
  ``ceil(N / chunks)``), then sums the per-thread histograms in float32.  A float32 count stops at
  2**24 (16777216 + 1 rounds back to 16777216), so when one thread's chunk holds more than 2**24
  values of one bin, torch's histogram depends on its thread count (measured: 20M zeros, 1 thread
  -> 16777216; 2 threads -> 19999990).  ``threads=None`` gives the exact counts (what torch gives
  whenever no chunk passes 2**24 in a bin); ``threads=k`` replays ``torch.get_num_threads() == k``.
- :func:`sum_f32` -- ``SumKernel.cpp`` cascade sum of a contiguous float32 vector: four SIMD
  accumulator rows, multi-level (4 levels) partial sums, scalar tail, lane reduction.
- :func:`div_floor` -- ``c10::div_floor_floating``: ``(a - fmod(a, b)) / b`` corrected to a floor.
"""
from __future__ import annotations

import numpy as np

F32 = np.float32


def simd_width(width=None) -> int:
    """Float32 lanes of ATen's ``Vectorized<float>`` in the kernels above (default 8).

    8 reproduces torch 2.13 on x86 (checked live on an AVX-512 machine, where torch reports
    capability "AVX512" yet these kernels run 8-wide); 1 gives the non-vectorized order.
    """
    if width is None:
        return 8
    w = int(width)
    if w not in (1, 4, 8, 16):
        raise ValueError(f"torch_simd_width: must be 1, 4, 8 or 16, got {width!r}")
    return w


def fma32(a, b, c):
    """float32 fused multiply-add, one rounding: ``f32(a * b + c)`` computed exactly.

    a*b is exact in float64; the float64 sum is made round-to-odd (TwoSum error folded into
    the last bit) so that the final float64 -> float32 rounding is the single correct rounding.
    """
    a = np.asarray(a, np.float32).astype(np.float64)
    b = np.asarray(b, np.float32).astype(np.float64)
    c = np.asarray(c, np.float32).astype(np.float64)
    p = a * b
    s = p + c
    bp = s - p
    err = (p - (s - bp)) + (c - bp)
    s = np.asarray(s, np.float64)
    bits = s.view(np.int64)
    need = (err != 0) & ((bits & 1) == 0) & np.isfinite(s)
    if np.any(need):
        toward = np.where(err > 0, np.inf, -np.inf)
        s = np.where(need, np.nextafter(s, toward), s)
    return s.astype(np.float32)


def linspace(start, end, steps: int) -> np.ndarray:
    """``torch.linspace(start, end, steps)`` for a float32 result (see module docstring)."""
    start = F32(start)
    end = F32(end)
    steps = int(steps)
    if steps == 1:
        return np.array([start], np.float32)
    step = F32(F32(end - start) / F32(steps - 1))
    half = steps // 2
    i = np.arange(steps)
    lo = fma32(step, i[:half].astype(np.float32), start)
    hi = fma32(-step, (steps - 1 - i[half:]).astype(np.float32), end)
    return np.concatenate([lo, hi]).astype(np.float32)


def arange(start, end, step, *, width=None) -> np.ndarray:
    """``torch.arange(start, end, step)`` with a float32 result (float64 accumulate type)."""
    start = float(start)
    end = float(end)
    step = float(step)
    n = int(np.ceil((end - start) / step))
    if n < 0:
        raise ValueError("arange: upper bound and step sign are inconsistent")
    W = simd_width(width)
    out = np.empty(n, np.float32)
    idx = 0
    # cpu_serial_kernel_vec: vectorized loop takes 2 vectors per iteration while 2W elements remain.
    while idx + 2 * W <= n:
        for _ in range(2):
            base = np.float64(F32(start + step * idx))
            k = np.arange(W, dtype=np.float64)
            out[idx:idx + W] = (base + k * step).astype(np.float32)
            idx += W
    while idx < n:
        out[idx] = F32(start + step * idx)
        idx += 1
    return out


def _parallel_chunks(n: int, threads: int, grain: int = 200):
    """The [begin, end) ranges ``at::parallel_for(0, n, grain)`` hands to threads 0, 1, ... (OpenMP)."""
    if n < grain or threads == 1:
        return [(0, n)]
    nt = min(threads, -(-n // grain))
    cs = -(-n // nt)
    return [(b, min(n, b + cs)) for b in range(0, n, cs)]


_F32_COUNT_LIMIT = 1 << 24


def histc(x, bins: int, lo, hi, *, threads=None) -> np.ndarray:
    """``torch.histc(x, bins, min=lo, max=hi)`` for float32 x; returns float32 counts.

    ``threads``: None for exact counts, else torch's thread count (see the module docstring)."""
    x = np.asarray(x, np.float32).ravel()
    left = float(np.float64(lo))
    right = float(np.float64(hi))
    if left == right and x.size > 0:
        left = float(np.min(x))
        right = float(np.max(x))
    if left == right:
        # bins_edges_correction for float32: the farther of nexttoward(f32, -/+max) and -/+1.
        left = min(float(np.nextafter(F32(left), F32(-np.inf))), left - 1.0)
        right = max(float(np.nextafter(F32(right), F32(np.inf))), right + 1.0)
    if not (np.isfinite(left) and np.isfinite(right)):
        raise ValueError(f"torch.histc: range of [{left}, {right}] is not finite")
    if not left < right:
        raise ValueError("torch.histc: max must be larger than min")
    with np.errstate(over="ignore", invalid="ignore"):   # right - left may overflow float32, as in ATen
        edges = linspace(left, right, bins + 1)
    le = edges[0]
    re = edges[-1]
    keep = (x >= le) & (x <= re)
    v = x[keep]
    kept_index = np.flatnonzero(keep) if threads is not None and x.size > _F32_COUNT_LIMIT else None
    with np.errstate(over="ignore", invalid="ignore"):
        pos = (((v - le).astype(np.float32) * F32(bins)).astype(np.float32)
               / F32(re - le)).astype(np.float32)
    # (x - min) * bins overflows float32 for |x| beyond ~3.4e38 / bins: ATen's int64 cast of the
    # resulting inf lands in bin 0 (measured, torch 2.13: torch.histc([0, 1e36, 2e36], 2048,
    # 0, 2e36) counts all three in bin 0).
    over = ~np.isfinite(pos)
    pos = np.where(over, 0, pos).astype(np.int64)
    pos[pos == bins] = bins - 1
    if kept_index is None:
        return np.bincount(pos, minlength=bins).astype(np.float32)
    t = int(threads)
    if t < 1:
        raise ValueError(f"torch_threads: must be a positive integer, got {threads!r}")
    rows = np.zeros((t, 1, bins), np.float32)     # thread_histograms: one row per thread
    for tid, (b, e) in enumerate(_parallel_chunks(x.size, t)):
        lo_i, hi_i = np.searchsorted(kept_index, [b, e])
        rows[tid, 0] = np.minimum(np.bincount(pos[lo_i:hi_i], minlength=bins), _F32_COUNT_LIMIT)
    return _multi_row_sum(rows)[0]                 # at::sum_out(hist, thread_histograms, dim 0)


def _multi_row_sum(rows: np.ndarray) -> np.ndarray:
    """ATen multi_row_sum over rows (size, nrows, W) of float32 -> (nrows, W) float32."""
    size = rows.shape[0]
    num_levels = 4
    ceil_log2 = 0 if size <= 1 else int(np.ceil(np.log2(size)))
    level_power = max(4, ceil_log2 // num_levels)
    level_step = 1 << level_power
    level_mask = level_step - 1
    acc = np.zeros((num_levels,) + rows.shape[1:], np.float32)
    i = 0
    while i + level_step <= size:
        for _ in range(level_step):
            acc[0] = acc[0] + rows[i]
            i += 1
        for j in range(1, num_levels):
            acc[j] = acc[j] + acc[j - 1]
            acc[j - 1] = 0
            mask = level_mask << (j * level_power)
            if (i & mask) != 0:
                break
    while i < size:
        acc[0] = acc[0] + rows[i]
        i += 1
    for j in range(1, num_levels):
        acc[0] = acc[0] + acc[j]
    return acc[0]


def sum_f32(x, *, width=None) -> np.float32:
    """``torch.sum`` of a contiguous float32 vector on CPU (single thread, < 32768 elements)."""
    x = np.ascontiguousarray(np.asarray(x, np.float32).ravel())
    n = x.size
    W = simd_width(width)
    if n < W:
        W = 1   # the non-vectorized path: the same cascade over scalars
    ilp = 4
    vec_size = n // W
    vecs = x[:vec_size * W].reshape(vec_size, W)
    size_ilp = vec_size // ilp
    partial = _multi_row_sum(vecs[:size_ilp * ilp].reshape(size_ilp, ilp, W)) if size_ilp else \
        np.zeros((ilp, W), np.float32)
    for i in range(size_ilp * ilp, vec_size):
        partial[0] = partial[0] + vecs[i]
    for k in range(1, ilp):
        partial[0] = partial[0] + partial[k]
    final = F32(0)
    for k in range(vec_size * W, n):
        final = F32(final + x[k])
    for k in range(W):
        final = F32(final + partial[0][k])
    return final


def div_floor(a, b) -> np.ndarray:
    """``torch.div(a, b, rounding_mode="floor")`` in float32 (c10::div_floor_floating)."""
    a = np.asarray(a, np.float32)
    b = np.broadcast_to(np.asarray(b, np.float32), a.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        mod = np.fmod(a, b).astype(np.float32)
        div = ((a - mod).astype(np.float32) / b).astype(np.float32)
        div = np.where((mod != 0) & ((b < 0) != (mod < 0)), div - F32(1), div).astype(np.float32)
        fl = np.floor(div).astype(np.float32)
        fl = np.where((div - fl).astype(np.float32) > F32(0.5), fl + F32(1), fl).astype(np.float32)
        basic = (a / b).astype(np.float32)
        fl = np.where(div == 0, np.copysign(F32(0), basic), fl).astype(np.float32)
        fl = np.where(b == 0, basic, fl).astype(np.float32)
    return fl


def sum_f32_rows(x, *, width=None) -> np.ndarray:
    """:func:`sum_f32` of every row of a 2-D float32 array (same order of operations per row)."""
    x = np.asarray(x, np.float32)
    m, n = x.shape
    W = simd_width(width)
    if n < W:
        W = 1
    xt = np.ascontiguousarray(x.T)                    # (n, m): reduce over axis 0
    ilp = 4
    vec_size = n // W
    vecs = xt[:vec_size * W].reshape(vec_size, W, m)
    size_ilp = vec_size // ilp
    if size_ilp:
        partial = _multi_row_sum(vecs[:size_ilp * ilp].reshape(size_ilp, ilp, W, m))
    else:
        partial = np.zeros((ilp, W, m), np.float32)
    for i in range(size_ilp * ilp, vec_size):
        partial[0] = partial[0] + vecs[i]
    for k in range(1, ilp):
        partial[0] = partial[0] + partial[k]
    final = np.zeros(m, np.float32)
    for k in range(vec_size * W, n):
        final = (final + xt[k]).astype(np.float32)
    for k in range(W):
        final = (final + partial[0][k]).astype(np.float32)
    return final
