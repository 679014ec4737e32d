# cython: language_level=3
"""refquant._cpu: CPU feature detection, ISA levels and thread count (kernels/src/common/rq_cpu.c).

Levels (ordered; each implies the ones below): 0 scalar, 1 avx2 (AVX2+FMA+F16C+BMI2),
2 avx512 (F+BW+DQ+VL), 3 avx512vnni, 4 amx (AMX-TILE+AMX-INT8 with the Linux tile permission).

isa_level() = min(CPU/OS support, compiled units, REFQUANT_DISABLE_ISA / REFQUANT_MAX_ISA,
set_isa_cap()).  This module owns the state shared by every kernel extension.
"""
include "_rq_cpu_decl.pxi"

cdef extern from "Python.h":
    object PyCapsule_New(void *pointer, const char *name, void *destructor)

ISA_NAMES = tuple(rq_isa_name(i).decode() for i in range(RQ_ISA_COUNT))

_CAPSULE = PyCapsule_New(<void *>rq_cpu_state_ptr(), b"refquant._cpu.state", NULL)


def _state_capsule():
    """Capsule holding the shared rq_cpu_state (used by kernels/_rq_common.pxi)."""
    return _CAPSULE


def _level(level):
    if isinstance(level, str):
        lv = rq_isa_from_name(level.encode())
        if lv < 0:
            raise ValueError(f"isa: unknown ISA name {level!r}; expected one of {ISA_NAMES}")
        return lv
    lv = int(level)
    if not 0 <= lv < RQ_ISA_COUNT:
        raise ValueError(f"isa: level must be in [0, {RQ_ISA_COUNT - 1}], got {level}")
    return lv


def isa_level():
    """Highest usable ISA level (int)."""
    return rq_isa_level()


def isa_name(level=None):
    """Name of ``level`` (default: the current level)."""
    return rq_isa_name(rq_isa_level() if level is None else _level(level)).decode()


def cpu_has(level):
    """True if the CPU and OS support ``level`` (name or int), ignoring caps and compilation."""
    return bool(rq_cpu_has(_level(level)))


def compiled_isas():
    """Names of the ISA levels whose compile units were built."""
    return [rq_isa_name(i).decode() for i in range(RQ_ISA_COUNT) if rq_compiled_isa(i)]


def supported_isas():
    """Names of the ISA levels the CPU and OS support."""
    return [rq_isa_name(i).decode() for i in range(RQ_ISA_COUNT) if rq_cpu_has(i)]


def available_isas():
    """Levels usable right now: compiled, supported, and not above the caps (lowest first)."""
    top = rq_isa_level()
    return [rq_isa_name(i).decode() for i in range(top + 1) if rq_compiled_isa(i) and rq_cpu_has(i)]


def features():
    """{feature name: bool} for every detected CPU feature (cpuid + xgetbv)."""
    return {rq_cpu_feature_name(i).decode(): bool(rq_cpu_feature(i)) for i in range(RQ_FEAT_COUNT)}


def caches():
    """{"l2": bytes, "llc": bytes, "amd": bool}: this core's L2 and the last-level cache it
    shares (CPUID; 1 MiB / 32 MiB when the CPU does not say), and whether the CPU is AMD's."""
    return {"l2": int(rq_l2_bytes()), "llc": int(rq_llc_bytes()), "amd": bool(rq_cpu_is_amd())}


def fast_division():
    """True where QuantizeLinear divides x / s for data in cache (AMD Zen 5 and later) instead
    of the division-free form; the same bits either way."""
    return bool(rq_cpu_fast_div())


def amx_enable():
    """Request the Linux AMX tile-data permission; True if granted."""
    return bool(rq_amx_enable())


def set_isa_cap(level):
    """Cap the ISA level for every kernel family (None removes the cap). Returns the new level."""
    rq_set_isa_cap(-1 if level is None else _level(level))
    return rq_isa_level()


def get_isa_cap():
    """The cap set by set_isa_cap (name) or None."""
    c = rq_get_isa_cap()
    return None if c < 0 else rq_isa_name(c).decode()


_SWITCHABLE = {"avx512vbmi": RQ_FEAT_AVX512VBMI, "avxvnni": RQ_FEAT_AVXVNNI}


def set_features_off(names=None):
    """Turn off CPU features that kernels take inside an ISA level, on top of
    REFQUANT_DISABLE_ISA: "avx512vbmi" (vpermb in the AVX-512 VNNI conv packers and depthwise
    conv) and "avxvnni" (ymm vpdpbusd, the AVX2 level's GEMM).  None or () turns them back on.
    Returns the names now off."""
    cdef int mask = 0
    for n in ([] if names is None else ([names] if isinstance(names, str) else list(names))):
        if n not in _SWITCHABLE:
            raise ValueError(f"set_features_off: unknown feature {n!r}; expected some of {sorted(_SWITCHABLE)}")
        mask |= 1 << _SWITCHABLE[n]
    rq_set_features_off(mask)
    return get_features_off()


def get_features_off():
    """Names of the features set_features_off turned off."""
    m = rq_get_features_off()
    return [n for n, b in sorted(_SWITCHABLE.items()) if m & (1 << b)]


def reset():
    """Forget the cached detection and re-read REFQUANT_DISABLE_ISA / REFQUANT_MAX_ISA."""
    rq_cpu_reset()
    return rq_isa_level()


def env_error():
    """Environment names not understood ('' if none)."""
    return rq_cpu_env_error().decode()


def get_num_threads():
    """Threads kernels use (the rq_parallel pool works without OpenMP too)."""
    return rq_num_threads()


def set_num_threads(n):
    """Set the kernel thread count; None or 0 restores the default (OMP_NUM_THREADS or CPUs
    available).  Counts above 1024 are clamped to 1024 (the returned count says so)."""
    if n is None:
        n = 0
    n = int(n)
    if n < 0:
        raise ValueError(f"num_threads: must be a positive integer or None, got {n}")
    rq_set_num_threads(min(n, 1024))
    return rq_num_threads()


def have_openmp():
    """True if the extensions were built with OpenMP."""
    return bool(rq_have_openmp())


def build_info():
    """{'compiler', 'cflags', 'isa_flags': {level name: flags}, 'openmp'} recorded at build time."""
    return {
        "compiler": rq_build_compiler().decode(),
        "cflags": rq_build_cflags().decode(),
        "isa_flags": {rq_isa_name(i).decode(): rq_build_isa_flags(i).decode()
                      for i in range(1, RQ_ISA_COUNT)},
        "openmp": bool(rq_have_openmp()),
    }


from cpython.mem cimport PyMem_Calloc, PyMem_Free
from libc.stdint cimport int64_t

cdef extern from "rq_pool.h" nogil:
    ctypedef void (*rq_chunk_fn)(void *ctx, int64_t chunk)
    void rq_parallel(int64_t nchunks, int nthreads, rq_chunk_fn fn, void *ctx)

cdef extern from *:
    """
    static void rq_pool_count_chunk(void *ctx, int64_t c) {
        __atomic_fetch_add((int *)ctx + c, 1, __ATOMIC_RELAXED);
    }
    """
    void rq_pool_count_chunk(void *ctx, int64_t c) nogil


def _pool_counts(int64_t nchunks, int nthreads):
    """Run the kernels' worker pool (rq_pool.h) over ``nchunks`` chunks on ``nthreads`` threads;
    returns how many times each chunk ran (a self-check: every count must be 1)."""
    if nchunks < 0 or nchunks > 1 << 24:
        raise ValueError(f"nchunks: expected 0 .. 2**24, got {nchunks}")
    cdef int *counts = <int *>PyMem_Calloc(nchunks if nchunks else 1, sizeof(int))
    if counts == NULL:
        raise MemoryError()
    try:
        with nogil:
            rq_parallel(nchunks, nthreads, rq_pool_count_chunk, counts)
        return [counts[i] for i in range(nchunks)]
    finally:
        PyMem_Free(counts)
