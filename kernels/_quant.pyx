# cython: language_level=3, boundscheck=False, wraparound=False
"""refquant._quant: thin wrappers over kernels/src/quant (QuantizeLinear / DequantizeLinear /
min-max).  Arguments are checked here (contiguity, sizes); semantics in rq_quant.h.
The Python glue is refquant/_quant_fast.py."""
include "_rq_common.pxi"

import numpy as np
cimport numpy as cnp
from libc.stdint cimport int32_t, int64_t

cnp.import_array()

cdef extern from "rq_quant.h" nogil:
    enum:
        RQ_Q_U8
        RQ_Q_I8
        RQ_Q_U16
        RQ_Q_I16
        RQ_Q_U4
        RQ_Q_I4
        RQ_Q_I32
        RQ_F_F32
        RQ_F_F16
    int rq_quantize(const void *x, int in_type, void *y, int out_type, const float *s,
                    const int32_t *zp, int64_t outer, int64_t D, int64_t inner, int64_t block,
                    int div_f16, int isa_cap, int nthreads, int stream, int variant)
    int rq_dequantize(const void *x, int in_type, void *y, int out_type, const float *s,
                      const int32_t *zp, int64_t outer, int64_t D, int64_t inner, int64_t block,
                      int isa_cap, int nthreads, int stream)
    int rq_minmax_f32(const float *x, int64_t n, float *mn, float *mx, int *nonfinite,
                      int isa_cap, int nthreads)
    int rq_quant_level(int isa_cap)

# Bumped whenever a wrapper signature changes; refquant/_quant_fast.py refuses (ImportError ->
# numpy reference) a stale build whose ABI differs, instead of failing at call time.
ABI_VERSION = 3

Q_TYPES = {"uint8": RQ_Q_U8, "int8": RQ_Q_I8, "uint16": RQ_Q_U16, "int16": RQ_Q_I16,
           "uint4": RQ_Q_U4, "int4": RQ_Q_I4, "int32": RQ_Q_I32}
F_TYPES = {"float32": RQ_F_F32, "float16": RQ_F_F16}
_QSIZE = {RQ_Q_U8: 1, RQ_Q_I8: 1, RQ_Q_U16: 2, RQ_Q_I16: 2, RQ_Q_U4: 1, RQ_Q_I4: 1, RQ_Q_I32: 4}
_FSIZE = {RQ_F_F32: 4, RQ_F_F16: 2}


cdef void *_ptr(cnp.ndarray a, str name, Py_ssize_t nbytes) except NULL:
    if not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise ValueError(f"{name}: must be C-contiguous")
    if a.nbytes != nbytes:
        raise ValueError(f"{name}: expected {nbytes} bytes, got {a.nbytes}")
    if nbytes == 0:
        return <void *>1    # never dereferenced
    return cnp.PyArray_DATA(a)


def level(int isa_cap=-1):
    """ISA level the quantize kernels use (<= isa_cap when >= 0)."""
    return rq_quant_level(isa_cap)


def quantize(cnp.ndarray x, str in_type, cnp.ndarray y, str out_type, cnp.ndarray s,
             cnp.ndarray zp, Py_ssize_t outer, Py_ssize_t D, Py_ssize_t inner, bint div_f16,
             int isa_cap=-1, int nthreads=0, Py_ssize_t block=0, int stream=-1, int variant=0):
    """y[o, d, i] = Q(x[o, d, i] / s[d]) + zp[d]; s float32[D], zp int32[D] (blocked:
    [outer, ceil(D / block), inner]). stream: 1/0/-1 (auto) non-temporal stores.
    variant: RQ_QV_* flags (rq_quant.h), 0 = the ONNX formula. Returns the level."""
    cdef int it = F_TYPES[in_type], ot = Q_TYPES[out_type]
    if ot == RQ_Q_I32:
        raise ValueError("out_type: int32 is not a quantize target")
    cdef Py_ssize_t n = outer * D * inner
    if outer < 0 or D < 1 or inner < 0 or block < 0:
        raise ValueError("bad layout")
    cdef const void *px = _ptr(x, "x", n * _FSIZE[it])
    cdef void *py = _ptr(y, "y", n * _QSIZE[ot])
    if s.dtype != np.float32 or zp.dtype != np.int32:
        raise TypeError("s must be float32 and zp int32")
    cdef Py_ssize_t np_ = D if block == 0 else outer * ((D + block - 1) // block) * inner
    cdef const float *ps = <const float *>_ptr(s, "s", np_ * 4)
    cdef const int32_t *pz = <const int32_t *>_ptr(zp, "zp", np_ * 4)
    cdef int lvl
    with nogil:
        lvl = rq_quantize(px, it, py, ot, ps, pz, outer, D, inner, block, div_f16, isa_cap, nthreads,
                          stream, variant)
    if lvl < 0:
        raise ValueError("rq_quantize: bad arguments")
    return lvl


def dequantize(cnp.ndarray x, str in_type, cnp.ndarray y, str out_type, cnp.ndarray s,
               cnp.ndarray zp, Py_ssize_t outer, Py_ssize_t D, Py_ssize_t inner,
               int isa_cap=-1, int nthreads=0, Py_ssize_t block=0, int stream=-1):
    """y[o, d, i] = (x[o, d, i] - zp[d]) * s[d] in the output precision. Returns the level."""
    cdef int it = Q_TYPES[in_type], ot = F_TYPES[out_type]
    cdef Py_ssize_t n = outer * D * inner
    if outer < 0 or D < 1 or inner < 0 or block < 0:
        raise ValueError("bad layout")
    cdef const void *px = _ptr(x, "x", n * _QSIZE[it])
    cdef void *py = _ptr(y, "y", n * _FSIZE[ot])
    if s.dtype != np.float32 or zp.dtype != np.int32:
        raise TypeError("s must be float32 and zp int32")
    cdef Py_ssize_t np_ = D if block == 0 else outer * ((D + block - 1) // block) * inner
    cdef const float *ps = <const float *>_ptr(s, "s", np_ * 4)
    cdef const int32_t *pz = <const int32_t *>_ptr(zp, "zp", np_ * 4)
    cdef int lvl
    with nogil:
        lvl = rq_dequantize(px, it, py, ot, ps, pz, outer, D, inner, block, isa_cap, nthreads, stream)
    if lvl < 0:
        raise ValueError("rq_dequantize: bad arguments")
    return lvl


def minmax(cnp.ndarray x, int isa_cap=-1, int nthreads=0):
    """(min, max, nonfinite, level) of a C-contiguous float32 array (min/max undefined when
    nonfinite is True or the array is empty)."""
    if x.dtype != np.float32:
        raise TypeError("x must be float32")
    cdef Py_ssize_t n = x.size
    cdef const float *px = <const float *>_ptr(x, "x", n * 4)
    cdef float mn = 0, mx = 0
    cdef int bad = 0, lvl
    with nogil:
        lvl = rq_minmax_f32(px, n, &mn, &mx, &bad, isa_cap, nthreads)
    return np.float32(mn), np.float32(mx), bool(bad), lvl
