# cython: language_level=3, boundscheck=False, wraparound=False
"""refquant._quant: thin wrappers over kernels/src/quant (QuantizeLinear / DequantizeLinear /
min-max).  Arguments are checked here (contiguity, sizes); semantics in rq_quant.h.
The Python glue is refquant/_quant_fast.py."""
include "_rq_common.pxi"

import numpy as np
cimport numpy as cnp
from libc.stdint cimport int32_t, int64_t, uint8_t

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
        RQ_F_F16_VIA32
        RQ_F_BF16_VIA32
    int rq_quantize(const void *x, int in_type, void *y, int out_type, const float *s,
                    const int32_t *zp, int64_t outer, int64_t D, int64_t inner, int64_t block,
                    int div_f16, int isa_cap, int nthreads, int stream, int variant)
    int rq_dequantize(const void *x, int in_type, void *y, int out_type, const float *s,
                      const int32_t *zp, int64_t outer, int64_t D, int64_t inner, int64_t block,
                      int isa_cap, int nthreads, int stream, int sts)
    int rq_minmax_f32(const float *x, int64_t n, float *mn, float *mx, int *nonfinite,
                      int isa_cap, int nthreads)
    int rq_quant_level(int isa_cap)
    int rq_quant_variant_simd(int variant)
    int rq_quantize_f8(const float *x, uint8_t *y, const float *s, const float *z, int zc,
                       int64_t outer, int64_t D, int64_t inner, int64_t block, int fmt, int pe,
                       int sat, int isa_cap, int nthreads)
    int rq_dequantize_f8(const uint8_t *x, float *y, const float *tab, const float *s,
                         const float *z, int zc, int64_t outer, int64_t D, int64_t inner,
                         int64_t block, int pe, int isa_cap, int nthreads)

# Bumped whenever a wrapper signature changes; refquant/_quant_fast.py refuses (ImportError ->
# numpy reference) a stale build whose ABI differs, instead of failing at call time.
ABI_VERSION = 11

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


def variant_simd(int variant):
    """True when the AVX2 / AVX-512 units compile quantize variant ``variant`` (RQ_QV_* flags)
    in SIMD; False when the scalar core runs it at every level."""
    return rq_quant_variant_simd(variant) != 0


def level(int isa_cap=-1):
    """ISA level the quantize kernels use (<= isa_cap when >= 0)."""
    return rq_quant_level(isa_cap)


def quantize(cnp.ndarray x, str in_type, cnp.ndarray y, str out_type, cnp.ndarray s,
             cnp.ndarray zp, Py_ssize_t outer, Py_ssize_t D, Py_ssize_t inner, int div_f16,
             int isa_cap=-1, int nthreads=0, Py_ssize_t block=0, int stream=-1, int variant=0):
    """y[o, d, i] = Q(x[o, d, i] / s[d]) + zp[d]; s float32[D], zp int32[D] (blocked:
    [outer, ceil(D / block), inner]). div_f16: the division in float16 (1) or bfloat16 (2):
    x and x / s rounded to it. stream: 1/0/-1 (auto) non-temporal stores.
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
               int isa_cap=-1, int nthreads=0, Py_ssize_t block=0, int stream=-1, int sts=0,
               bint via32=False):
    """y[o, d, i] = (x[o, d, i] - zp[d]) * s[d] in the output precision; with sts,
    fl32(fl32(x*s[d]) - fl32(zp[d]*s[d])) (float32 output, 8/16-bit x, not blocked); with via32
    (float16 output), fl16(fl32(x - zp[d]) * s[d]): the float32 result rounded once; out_type
    "bfloat16" (y uint16, the bits): the float32 result rounded once to bfloat16.
    Returns the level."""
    cdef int it = Q_TYPES[in_type], ot, code
    if out_type == "bfloat16":
        ot, code = RQ_F_F16, RQ_F_BF16_VIA32          # (2-byte outputs)
    else:
        ot = F_TYPES[out_type]
        code = RQ_F_F16_VIA32 if via32 else ot
        if via32 and ot != RQ_F_F16:
            raise ValueError("via32: float16 output only")
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
        lvl = rq_dequantize(px, it, py, code, ps, pz, outer, D, inner, block,
                            isa_cap, nthreads, stream, sts)
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


F8_FORMATS = {"float8_e4m3fn": 0, "float8_e4m3fnuz": 1, "float8_e5m2": 2, "float8_e5m2fnuz": 3,
              "float4_e2m1fn": 4, "float6_e2m3fn": 5, "float6_e3m2fn": 6}


cdef int _f8_operands(cnp.ndarray s, cnp.ndarray z, cnp.ndarray y, Py_ssize_t outer, Py_ssize_t D,
                      Py_ssize_t inner, Py_ssize_t block, bint pe, const float **ps,
                      const float **pz) except -1:
    """Checks the layout and y, and sets the pointers to s and z.  s and z: D entries; pe (D = 1,
    no block): one per element of a row of inner; block > 0: outer * ceil(D / block) * inner.
    z may instead hold one value for every element: returns 1 then (zc), else 0."""
    if s.dtype != np.float32 or z.dtype != np.float32:
        raise TypeError("s / z float32 expected")
    if outer < 0 or D < 1 or inner < 0 or block < 0 or (pe and (D != 1 or block)):
        raise ValueError("bad layout")
    want = outer * ((D + block - 1) // block) * inner if block else (inner if pe else D)
    if s.size != want or (z.size != want and z.size != 1):
        raise ValueError("bad layout")
    if not y.flags.writeable:
        raise ValueError("y: not writeable")
    ps[0] = <const float *>_ptr(s, "s", s.size * 4)
    pz[0] = <const float *>_ptr(z, "z", z.size * 4)
    return 1 if z.size == 1 and want > 1 else 0


def quantize_f8(cnp.ndarray x, cnp.ndarray y, cnp.ndarray s, cnp.ndarray z, Py_ssize_t outer,
                Py_ssize_t D, Py_ssize_t inner, int fmt, bint pe=False, int isa_cap=-1,
                int nthreads=0, int sat=1, Py_ssize_t block=0):
    """float8 / float6 / float4 QuantizeLinear (rq_f8.h): y = low_float(fl32(fl32(x / s) + z)),
    x float32 [outer, D, inner] C-contiguous, y uint8 (the codes, one per byte) of the same size,
    s and z float32 (D; or, pe with D = 1, one per element of a row of inner; or, block > 0,
    [outer, ceil(D / block), inner]); z is the zero point where the profile adds it, -0.0 where
    not (laid out as s, or one value for every element; never NaN); fmt from F8_FORMATS; sat
    (float8): 1 saturate=1, 0 the Cast table, 2 ONNX Runtime's saturate=0.  Returns the
    level."""
    if x.dtype != np.float32 or y.dtype != np.uint8:
        raise TypeError("x float32, y uint8 expected")
    cdef const float *ps
    cdef const float *pz
    cdef int zc = _f8_operands(s, z, y, outer, D, inner, block, pe, &ps, &pz)
    cdef Py_ssize_t n = outer * D * inner
    cdef const float *px = <const float *>_ptr(x, "x", n * 4)
    cdef uint8_t *py = <uint8_t *>_ptr(y, "y", n)
    cdef int lvl
    with nogil:
        lvl = rq_quantize_f8(px, py, ps, pz, zc, outer, D, inner, block, fmt, pe, sat, isa_cap, nthreads)
    if lvl < 0:
        raise ValueError("rq_quantize_f8: bad arguments")
    return lvl


def dequantize_f8(cnp.ndarray x, cnp.ndarray y, cnp.ndarray tab, cnp.ndarray s, cnp.ndarray z,
                  Py_ssize_t outer, Py_ssize_t D, Py_ssize_t inner, bint pe=False, int isa_cap=-1,
                  int nthreads=0, Py_ssize_t block=0):
    """float8 / float6 / float4 DequantizeLinear: y = fl32(fl32(tab[x] - z) * s), s and z laid
    out as in quantize_f8; x uint8 (the codes), y float32, tab float32 (256), [outer, D, inner]
    C-contiguous."""
    if x.dtype != np.uint8 or y.dtype != np.float32 or tab.dtype != np.float32 or tab.size != 256:
        raise TypeError("x uint8, y / tab float32 (256) expected")
    cdef const float *ps
    cdef const float *pz
    cdef int zc = _f8_operands(s, z, y, outer, D, inner, block, pe, &ps, &pz)
    cdef Py_ssize_t n = outer * D * inner
    cdef const uint8_t *px = <const uint8_t *>_ptr(x, "x", n)
    cdef float *py = <float *>_ptr(y, "y", n * 4)
    cdef const float *pt = <const float *>_ptr(tab, "tab", 256 * 4)
    cdef int lvl
    with nogil:
        lvl = rq_dequantize_f8(px, py, pt, ps, pz, zc, outer, D, inner, block, pe, isa_cap, nthreads)
    if lvl < 0:
        raise ValueError("rq_dequantize_f8: bad arguments")
    return lvl


# ------------------------------------------------------------------------------------------
# Lean entries for the common per-tensor call (refquant/_dispatch.py tries them first): the
# checks the glue's quick paths make, in compiled code, then the same kernel with the same
# arguments.  None for anything else; the glue and the reference then decide (and raise).
# ------------------------------------------------------------------------------------------

cdef inline int _scale32(object s, float *out):
    """A per-tensor scale as float32: a numpy float32 scalar, a 0-d or 1-element 1-D float32
    array (per tensor in the reference too), or a Python float rounded to float32 (the reference
    rounds it to float32 x's type).  1 when that is finite and > 0; 0 otherwise (the glue and
    the reference decide)."""
    cdef double d
    cdef float f
    cdef cnp.ndarray a
    if type(s) is np.float32 or type(s) is float:
        d = float(s)
    elif type(s) is np.ndarray:
        a = <cnp.ndarray>s
        if (a.ndim != 0 and (a.ndim != 1 or a.shape[0] != 1)) or _ntype(a) != cnp.NPY_FLOAT32:
            return 0
        d = (<float *>cnp.PyArray_DATA(a))[0]
    else:
        return 0
    if not (d > 0.0 and d <= 3.4028234663852886e38):
        return 0
    f = <float>d
    if not (f > 0.0):
        return 0
    out[0] = f
    return 1


cdef inline int _qtype(int typenum):
    if typenum == cnp.NPY_UINT8:
        return RQ_Q_U8
    if typenum == cnp.NPY_INT8:
        return RQ_Q_I8
    if typenum == cnp.NPY_UINT16:
        return RQ_Q_U16
    if typenum == cnp.NPY_INT16:
        return RQ_Q_I16
    return -1


cdef inline int _typed_zp(object z, int *typenum):
    """The type number of a numpy integer scalar or 0-d array (-1 for anything else)."""
    if type(z) is np.ndarray:
        if (<cnp.ndarray>z).ndim != 0:
            return 0
        typenum[0] = _ntype(<cnp.ndarray>z)
        return 1
    if type(z) is np.uint8:
        typenum[0] = cnp.NPY_UINT8
    elif type(z) is np.int8:
        typenum[0] = cnp.NPY_INT8
    elif type(z) is np.uint16:
        typenum[0] = cnp.NPY_UINT16
    elif type(z) is np.int16:
        typenum[0] = cnp.NPY_INT16
    else:
        return 0
    return 1


cdef cnp.ndarray _f32_c(object x):
    """x when it is a non-empty C-contiguous float32 ndarray, else None."""
    if type(x) is not np.ndarray:
        return None
    cdef cnp.ndarray xa = <cnp.ndarray>x
    if _ntype(xa) != cnp.NPY_FLOAT32 or not cnp.PyArray_IS_C_CONTIGUOUS(xa) or cnp.PyArray_SIZE(xa) == 0:
        return None
    return xa


cdef int _axis_scales(cnp.ndarray xa, object scale, object axis_obj, Py_ssize_t *outer, Py_ssize_t *D,
                      Py_ssize_t *inner) except -2:
    """Per-axis layout of a lean call: scale a 1-D C-contiguous float32 ndarray of
    x.shape[axis] values, each finite and > 0; axis a Python int in [-ndim, ndim).  1 when
    taken (outer, D, inner set), 0 otherwise."""
    if type(scale) is not np.ndarray or type(axis_obj) is not int:
        return 0
    cdef cnp.ndarray sa = <cnp.ndarray>scale
    cdef int nd = xa.ndim
    if sa.ndim != 1 or _ntype(sa) != cnp.NPY_FLOAT32 or not cnp.PyArray_IS_C_CONTIGUOUS(sa) or nd == 0:
        return 0
    if not (-nd <= axis_obj < nd):
        return 0
    cdef int axis = <int>axis_obj
    if axis < 0:
        axis += nd
    cdef Py_ssize_t d = xa.shape[axis], i
    if sa.shape[0] != d or d < 1:
        return 0
    cdef const float *ps = <const float *>cnp.PyArray_DATA(sa)
    for i in range(d):
        if not (ps[i] > 0 and ps[i] <= 3.4028234663852886e38):
            return 0
    cdef Py_ssize_t o = 1, n = 1
    for i in range(axis):
        o *= xa.shape[i]
    for i in range(axis + 1, nd):
        n *= xa.shape[i]
    outer[0] = o; D[0] = d; inner[0] = n
    return 1


cdef object _axis_zps(object zp, Py_ssize_t d, int *typenum):
    """A per-axis zero point of a lean call as int32 (d,): a 1-D ndarray of d values of a
    uint8/int8/uint16/int16 type (typenum set).  None otherwise."""
    if type(zp) is not np.ndarray:
        return None
    cdef cnp.ndarray za = <cnp.ndarray>zp
    if za.ndim != 1 or za.shape[0] != d or _qtype(_ntype(za)) < 0:
        return None
    typenum[0] = _ntype(za)
    return np.ascontiguousarray(za, dtype=np.int32)


cdef bint _out_ok(object out, cnp.ndarray xa, int typenum):
    """out is a writeable C-contiguous ndarray of x's shape and the result's type, and its bytes
    do not overlap x's (the kernels read x while they write out; the reference path copies)"""
    if type(out) is not np.ndarray:
        return False
    cdef cnp.ndarray oa = <cnp.ndarray>out
    if (not cnp.PyArray_IS_C_CONTIGUOUS(oa) or not cnp.PyArray_ISWRITEABLE(oa)
            or _ntype(oa) != typenum or oa.ndim != xa.ndim):
        return False
    cdef int k
    for k in range(xa.ndim):
        if oa.shape[k] != xa.shape[k]:
            return False
    cdef size_t o0 = <size_t>cnp.PyArray_DATA(oa), x0 = <size_t>cnp.PyArray_DATA(xa)
    cdef size_t o1 = o0 + <size_t>cnp.PyArray_NBYTES(oa), x1 = x0 + <size_t>cnp.PyArray_NBYTES(xa)
    return o1 <= x0 or x1 <= o0


def quantize_lean(x, y_scale, y_zero_point, tuple variants, Py_ssize_t max_bytes, object axis=1,
                  object out=None):
    """QuantizeLinear's common call: x a non-empty C-contiguous float32 ndarray; per tensor:
    y_scale a float32 scalar (numpy, 0-d array, or a Python float rounded to float32),
    y_zero_point None (uint8 output, 0) or a uint8/int8/uint16/int16 numpy scalar or 0-d array;
    per axis: y_scale a 1-D float32 ndarray of x.shape[axis] scales, y_zero_point None or a 1-D
    ndarray of as many zero points of one of those types, axis a Python int; no other
    attribute.  ``variants[8 * per_axis + 2 * out_type + (any zero point != 0)]``: the RQ_QV_*
    flags the default profile's formula needs (-1: not taken), as the glue's _q_variant gives
    them.  Outputs of max_bytes or more are left to the glue (its buffer pool).  ``out``: a
    writeable C-contiguous ndarray of x's shape and the result's type to write into (any size;
    streaming stores by the kernels' rule), else None is returned.  Returns
    (y, level, out_type, variant) or None."""
    cdef cnp.ndarray xa = _f32_c(x)
    if xa is None or type(axis) is not int:
        return None
    cdef Py_ssize_t n = cnp.PyArray_SIZE(xa)
    cdef float s
    cdef int tn = cnp.NPY_UINT8, ot, nz = 0, per_axis = 0
    cdef int32_t z = 0
    cdef Py_ssize_t outer = 1, D = 1, inner = n, i
    cdef const float *ps = &s
    cdef const int32_t *pz = &z
    cdef cnp.ndarray sv, zv
    if _scale32(y_scale, &s):
        if y_zero_point is not None:
            if not _typed_zp(y_zero_point, &tn):
                return None
            if _qtype(tn) < 0:
                return None
            z = <int32_t>int(y_zero_point)
        nz = z != 0
        # a 1-element 1-D scale: the same arithmetic, but the reference resolves the profile's
        # per-axis overrides for it (Profile.for_op(per_axis=scale.ndim == 1)): their variant
        if type(y_scale) is np.ndarray and (<cnp.ndarray>y_scale).ndim == 1:
            per_axis = 1
    elif _axis_scales(xa, y_scale, axis, &outer, &D, &inner):
        per_axis = 1
        sv = <cnp.ndarray>y_scale
        ps = <const float *>cnp.PyArray_DATA(sv)
        zv = np.zeros(D, np.int32)
        if y_zero_point is not None:
            zo = _axis_zps(y_zero_point, D, &tn)
            if zo is None:
                return None
            zv = <cnp.ndarray>zo
        pz = <const int32_t *>cnp.PyArray_DATA(zv)
        for i in range(D):
            if pz[i] != 0:
                nz = 1
                break
    else:
        return None
    ot = _qtype(tn)
    if out is not None:
        if not _out_ok(out, xa, tn):
            return None
    elif n * (1 if ot <= RQ_Q_I8 else 2) >= max_bytes:
        return None
    cdef Py_ssize_t vi = 8 * per_axis + 2 * ot + nz
    if vi >= len(variants):
        return None
    cdef int variant = variants[vi]
    if variant < 0:
        return None
    cdef cnp.ndarray y = (cnp.PyArray_EMPTY(xa.ndim, xa.shape, tn, 0) if out is None
                          else <cnp.ndarray>out)
    cdef int stream = 0 if out is None else -1     # (a fresh output: cached stores)
    cdef const void *px = cnp.PyArray_DATA(xa)
    cdef void *py = cnp.PyArray_DATA(y)
    cdef int lvl
    with nogil:
        lvl = rq_quantize(px, RQ_F_F32, py, ot, ps, pz, outer, D, inner, 0, 0, -1, 0, stream, variant)
    if lvl < 0:
        raise ValueError("rq_quantize: bad arguments")
    return y, lvl, ot, variant


def dequantize_lean(x, x_scale, x_zero_point, Py_ssize_t max_bytes, object axis=1, object out=None):
    """DequantizeLinear's common call: x a non-empty C-contiguous uint8/int8/uint16/int16 (or
    int32, without a zero point) ndarray; per tensor: x_scale a float32 scalar (numpy, 0-d
    array, or a Python float rounded to float32), x_zero_point None, a numpy scalar / 0-d array
    of x's type, or a Python int in x's range (the reference reads it as that type); per axis:
    x_scale a 1-D float32 ndarray of x.shape[axis] scales, x_zero_point None or a 1-D ndarray
    of as many of x's type, axis a Python int; float32 output, no other attribute.  The caller
    checks that the default profile subtracts exactly.  Outputs of max_bytes or more are left
    to the glue.  Returns (y, level, in_type) or None."""
    if type(x) is not np.ndarray:
        return None
    cdef cnp.ndarray xa = <cnp.ndarray>x
    if not cnp.PyArray_IS_C_CONTIGUOUS(xa) or type(axis) is not int:
        return None
    cdef int tx = _ntype(xa), it = _qtype(tx), tz
    if it < 0 and tx != cnp.NPY_INT32:
        return None
    cdef Py_ssize_t n = cnp.PyArray_SIZE(xa)
    if n == 0:
        return None
    if out is not None:
        if not _out_ok(out, xa, cnp.NPY_FLOAT32):
            return None
    elif n * 4 >= max_bytes:
        return None
    if tx == cnp.NPY_INT32:
        if x_zero_point is not None:
            return None
        it = RQ_Q_I32
    cdef float s
    cdef int32_t z = 0
    cdef int32_t lo, hi
    cdef Py_ssize_t outer = 1, D = 1, inner = n
    cdef const float *ps = &s
    cdef const int32_t *pz = &z
    cdef cnp.ndarray sv, zv
    if _scale32(x_scale, &s):
        if x_zero_point is not None:
            if type(x_zero_point) is int:
                lo, hi = ((0, 255) if it == RQ_Q_U8 else (-128, 127) if it == RQ_Q_I8 else
                          (0, 65535) if it == RQ_Q_U16 else (-32768, 32767))
                if not (lo <= x_zero_point <= hi):
                    return None
                z = <int32_t>x_zero_point
            elif _typed_zp(x_zero_point, &tz) and tz == tx:
                z = <int32_t>int(x_zero_point)
            else:
                return None
    elif _axis_scales(xa, x_scale, axis, &outer, &D, &inner):
        sv = <cnp.ndarray>x_scale
        ps = <const float *>cnp.PyArray_DATA(sv)
        if x_zero_point is None:
            zv = np.zeros(D, np.int32)
        else:
            zo = _axis_zps(x_zero_point, D, &tz)
            if zo is None or tz != tx:
                return None
            zv = <cnp.ndarray>zo
        pz = <const int32_t *>cnp.PyArray_DATA(zv)
    else:
        return None
    cdef cnp.ndarray y = (cnp.PyArray_EMPTY(xa.ndim, xa.shape, cnp.NPY_FLOAT32, 0) if out is None
                          else <cnp.ndarray>out)
    cdef int stream = 0 if out is None else -1     # (a fresh output: cached stores)
    cdef const void *px = cnp.PyArray_DATA(xa)
    cdef void *py = cnp.PyArray_DATA(y)
    cdef int lvl
    with nogil:
        lvl = rq_dequantize(px, it, py, RQ_F_F32, ps, pz, outer, D, inner, 0, -1, 0, stream, 0)
    if lvl < 0:
        raise ValueError("rq_dequantize: bad arguments")
    return y, lvl, it


cdef extern from "math.h" nogil:
    float nearbyintf(float)


def dynamic_quantize_lean(x, float zero_range_scale, Py_ssize_t max_bytes):
    """DynamicQuantizeLinear's common call: x a non-empty C-contiguous float32 ndarray whose
    uint8 output is under max_bytes.  The min / max in the kernels, then the reference's
    formula (refquant.reference.quantize.dynamic_qparams) in float32 -- hi = max(0, max x),
    lo = min(0, min x), y_scale = fl32(fl32(hi - lo) / 255) (zero_range_scale when hi == lo),
    y_zero_point = RNE(clip(fl32(0 - fl32(lo / y_scale)), 0, 255)) -- then QuantizeLinear with
    the onnx formula.  The caller checks that the default profile quantizes that way.  Returns
    ((y, y_scale 0-d float32, y_zero_point 0-d uint8), level) or None: NaN / Inf in x (the
    reference raises), a scale that is not finite and > 0, anything else."""
    cdef cnp.ndarray xa = _f32_c(x)
    if xa is None:
        return None
    cdef Py_ssize_t n = cnp.PyArray_SIZE(xa)
    if n >= max_bytes:
        return None
    cdef const float *px = <const float *>cnp.PyArray_DATA(xa)
    cdef float mn = 0, mx = 0, hi, lo, scale, izp
    cdef int bad = 0, lvl
    with nogil:
        lvl = rq_minmax_f32(px, n, &mn, &mx, &bad, -1, 0)
    if bad or lvl < 0:
        return None
    hi = mx if mx > 0 else <float>0.0
    lo = mn if mn < 0 else <float>0.0
    if hi == lo:
        scale = zero_range_scale
    else:
        scale = (hi - lo) / <float>255.0
    if not (scale > 0 and scale <= 3.4028234663852886e38):
        return None
    izp = <float>0.0 - lo / scale
    izp = izp if izp > 0 else <float>0.0
    izp = izp if izp < 255 else <float>255.0
    cdef int32_t z = <int32_t>nearbyintf(izp)
    cdef cnp.ndarray y = cnp.PyArray_EMPTY(xa.ndim, xa.shape, cnp.NPY_UINT8, 0)
    cdef void *py = cnp.PyArray_DATA(y)
    with nogil:
        lvl = rq_quantize(px, RQ_F_F32, py, RQ_Q_U8, &scale, &z, 1, 1, n, 0, 0, -1, 0, 0, 0)
    if lvl < 0:
        raise ValueError("rq_quantize: bad arguments")
    cdef cnp.ndarray s0 = cnp.PyArray_EMPTY(0, NULL, cnp.NPY_FLOAT32, 0)
    cdef cnp.ndarray z0 = cnp.PyArray_EMPTY(0, NULL, cnp.NPY_UINT8, 0)
    (<float *>cnp.PyArray_DATA(s0))[0] = scale
    (<uint8_t *>cnp.PyArray_DATA(z0))[0] = <uint8_t>z
    return (y, s0, z0), lvl


def pack_nibbles(cnp.ndarray codes):
    """ONNX's packed 4-bit layout of a C-contiguous uint8 array of 4-bit codes (one code in the
    low nibble of each byte, upper bits zero, as the quantize kernels store them): byte i holds
    code 2i in its low nibble and code 2i+1 in its high one (a zero high nibble for an odd
    count).  Returns a new 1-D uint8 array of (n + 1) // 2 bytes.  One pass, GIL released."""
    if _ntype(codes) != cnp.NPY_UINT8 or not cnp.PyArray_IS_C_CONTIGUOUS(codes):
        raise TypeError("codes: C-contiguous uint8 expected")
    cdef Py_ssize_t n = codes.size, m = (n + 1) // 2, i
    cdef cnp.ndarray out = np.empty(m, np.uint8)
    cdef const uint8_t *c = <const uint8_t *>cnp.PyArray_DATA(codes)
    cdef uint8_t *o = <uint8_t *>cnp.PyArray_DATA(out)
    with nogil:
        for i in range(n // 2):
            o[i] = <uint8_t>((c[2 * i] & 0x0F) | ((c[2 * i + 1] & 0x0F) << 4))
        if n % 2:
            o[m - 1] = <uint8_t>(c[n - 1] & 0x0F)
    return out
