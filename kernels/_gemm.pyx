# cython: language_level=3, boundscheck=False, wraparound=False
"""refquant._gemm: thin wrappers over kernels/src/gemm (integer GEMM / convolution).

Validation of ONNX semantics lives in refquant/_gemm_fast.py; this layer checks only what
the C code needs (dtypes, shapes, memory) and releases the GIL around the kernels.
"""
include "_rq_common.pxi"

import numpy as np
cimport numpy as cnp
from libc.stdint cimport uint8_t, int32_t, int64_t
from libc.string cimport memcpy, memset

cnp.import_array()

from refquant._errors import KernelSizeLimit

cdef int _fits(str what, Py_ssize_t v) except -1:
    """KernelSizeLimit unless v fits the C kernels' int sizes (the dispatcher then runs the
    reference)."""
    if v > 2147483647:
        raise KernelSizeLimit(f"{what} = {v} is beyond the kernels' int sizes (2**31 - 1)")
    return 0


cdef int _conv_fits(Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t Cout, Py_ssize_t KH,
                    Py_ssize_t KW, Py_ssize_t OH, Py_ssize_t OW) except -1:
    _fits("conv input pixels H * W", H * W)
    _fits("conv output pixels OH * OW", OH * OW)
    _fits("conv K = C * KH * KW", C * KH * KW)
    _fits("conv output channels", Cout)
    return 0

cdef extern from "numpy/arrayobject.h":
    # new references; PyArray_NewFromDescr steals the descriptor's
    void *rq_descr_from_type "PyArray_DescrFromType"(int typenum)
    object rq_new_from_descr "PyArray_NewFromDescr"(void *subtype, void *descr, int nd,
                                                     cnp.npy_intp *dims, cnp.npy_intp *strides,
                                                     void *data, int flags, void *obj)
    void *rq_array_type "(&PyArray_Type)"


cdef cnp.ndarray _empty64(int nd, cnp.npy_intp *dims, int typenum, int itemsize):
    """empty_aligned() for C callers: a C-ordered array viewing a uint8 buffer from its first
    64-byte boundary (the buffer is the array's base)."""
    cdef cnp.npy_intp n = itemsize, nb
    cdef int i
    for i in range(nd):
        n *= dims[i]
    if n < 16384:
        return cnp.PyArray_EMPTY(nd, dims, typenum, 0)
    nb = n + 64
    cdef cnp.ndarray buf = cnp.PyArray_EMPTY(1, &nb, cnp.NPY_UINT8, 0)
    cdef char *p = <char *>cnp.PyArray_DATA(buf)
    p += (-<Py_ssize_t>p) & 63
    cdef void *descr = rq_descr_from_type(typenum)
    if descr == NULL:
        raise MemoryError("empty_aligned: no dtype")
    cdef cnp.ndarray arr = rq_new_from_descr(rq_array_type, descr, nd, dims, NULL, p,
                                             cnp.NPY_ARRAY_CARRAY, NULL)
    cnp.set_array_base(arr, buf)
    return arr

cdef extern from "rq_gemm.h" nogil:
    enum:
        RQ_OUT_S32
        RQ_OUT_U8
        RQ_OUT_S8
        RQ_K_COUNT
    ctypedef struct rq_packed_b:
        uint8_t *data
        int32_t *csum
        int K, N, Kp, Np
        int b_signed
    rq_packed_b *rq_pack_b(const uint8_t *B, Py_ssize_t b_rs, Py_ssize_t b_cs, int K, int N,
                           int b_signed, int isa, int nthreads)
    rq_packed_b *rq_pack_conv_w(const uint8_t *w, int Cout, int Cin, int KH, int KW, int w_signed,
                                int isa, int nthreads)
    rq_packed_b *rq_pack_conv_w_pad(const uint8_t *w, int Cout, int Cin, int Cp, int KH, int KW,
                                    int w_signed, int isa, int nthreads)
    void rq_packed_b_free(rq_packed_b *pb)
    size_t rq_packed_b_nbytes(const rq_packed_b *pb)
    ctypedef struct rq_gemm_args:
        int M, N, K
        const uint8_t *A
        Py_ssize_t a_rs, a_cs
        int a_signed
        const uint8_t *B
        Py_ssize_t b_rs, b_cs
        int b_signed
        const rq_packed_b *packed
        const int32_t *a_zp
        int a_zp_n
        const int32_t *b_zp
        int b_zp_n
        int out_type
        void *C
        Py_ssize_t c_rs, c_cs
        const int32_t *bias
        Py_ssize_t bias_rs, bias_cs
        const float *fbias
        int fbias_fma
        float fbias_rcp
        int od
        float od_s1, od_s3
        const float *fbias2
        int fx_mode
        const int32_t *fx_qm
        const int32_t *fx_sh
        const float *mult
        int mult_n
        int mult_rows
        int32_t y_zp
        int sat16
        const void *ia
        int isa
        int nthreads
    int rq_gemm_run(const rq_gemm_args *args, int *kernel_used)
    int rq_requantize_run(const rq_gemm_args *args, const int32_t *acc, Py_ssize_t acc_rs,
                          int *isa_used)
    int rq_gemm_choose(const rq_gemm_args *args)
    const char *rq_gemm_kernel_name(int k)
    ctypedef struct rq_conv_args:
        int C, H, W
        int Cout, group
        int KH, KW, sh, sw, dh, dw
        int pt, pl, pb, pr
        int OH, OW
        const uint8_t *x
        int x_signed
        const uint8_t *w
        int w_signed
        const rq_packed_b *packed
        const rq_packed_b *packed_pad
        int32_t x_zp
        const int32_t *w_zp
        int w_zp_n
        int out_type
        void *y
        const int32_t *bias
        const float *fbias
        int fbias_fma
        float fbias_rcp
        int od
        float od_s1, od_s3
        const float *fbias2
        int fx_mode
        const int32_t *fx_qm
        const int32_t *fx_sh
        const float *mult
        int mult_n
        int32_t y_zp
        int sat16
        int isa, nthreads
        int D, KD, OD, sd, dd, pd
    int rq_conv_run(const rq_conv_args *args, int *kernel_used)
    void rq_set_dw_nhwc(int on)
    void rq_set_vnni_plain(int on)


cdef extern int rq_amx_kslab_on


def _kslab(on=None):
    """Test / measurement hook: the K-slab driver for few rows and a large plain B on (1) or
    off (0); returns the previous setting."""
    global rq_amx_kslab_on
    cdef int prev = rq_amx_kslab_on
    if on is not None:
        rq_amx_kslab_on = 1 if on else 0
    return bool(prev)


cdef class PackedB:
    """Opaque packed B (VNNI-4 panels, int8 B_used, column sums); owned C memory.  Conv weights
    whose channel count is not a multiple of 64 also carry the layout with the channels padded
    to 64-byte chunks (``has_pad``), which the implicit AMX conv reads."""
    cdef rq_packed_b *pb
    cdef rq_packed_b *pb_pad
    cdef readonly int K, N, b_signed
    cdef readonly str kind

    def __dealloc__(self):
        if self.pb != NULL:
            rq_packed_b_free(self.pb)
            self.pb = NULL
        if self.pb_pad != NULL:
            rq_packed_b_free(self.pb_pad)
            self.pb_pad = NULL

    @property
    def nbytes(self):
        return rq_packed_b_nbytes(self.pb) + rq_packed_b_nbytes(self.pb_pad)

    @property
    def has_pad(self):
        return self.pb_pad != NULL

    def _bytes(self, bint pad=False):
        """Test hook: copies of the panels (Np/16, Kp/4, 64) and the column sums (Np,)."""
        cdef rq_packed_b *q = self.pb_pad if pad else self.pb
        if q == NULL:
            raise ValueError("no such layout")
        cdef int Kp = q.Kp, Np = q.Np
        data = np.empty((Np // 16, Kp // 4, 64), dtype=np.uint8)
        csum = np.empty(Np, dtype=np.int32)
        memcpy(<void *>cnp.PyArray_DATA(data), q.data, <size_t>Kp * Np)
        memcpy(<void *>cnp.PyArray_DATA(csum), q.csum, <size_t>Np * 4)
        return data, csum


def pack_b(B, int isa=-1, int nthreads=0):
    """Pack a 2-D uint8/int8 B (K, N) (any strides)."""
    cdef cnp.ndarray b = <cnp.ndarray?>B
    if b.ndim != 2 or b.dtype.itemsize != 1 or b.dtype.kind not in "iu":
        raise TypeError("B: 2-D uint8/int8 expected")
    cdef PackedB p = PackedB.__new__(PackedB)
    cdef const uint8_t *ptr = <const uint8_t *>cnp.PyArray_DATA(b)
    cdef Py_ssize_t rs = b.strides[0], cs = b.strides[1]
    _fits("B rows (K)", b.shape[0]); _fits("B columns (N)", b.shape[1])
    cdef int K = <int>b.shape[0], N = <int>b.shape[1], sg = b.dtype.kind == "i"
    with nogil:
        p.pb = rq_pack_b(ptr, rs, cs, K, N, sg, isa, nthreads)
    if p.pb == NULL:
        raise MemoryError("pack_b")
    p.K, p.N, p.b_signed, p.kind = K, N, sg, "gemm"
    return p


def pack_conv_w(w, int isa=-1, int nthreads=0, int cp=0, bint pad_implicit=True):
    """Pack conv weights (Cout, Cin, KH, KW), contiguous uint8/int8, group 1; ``cp`` > Cin pads
    the input channels to cp with zero weights (K = KH*KW*cp).  With ``pad_implicit``, int8
    weights of 16 or more channels that are not a multiple of 64 are also packed with the
    channels padded to 64-byte chunks where AMX runs (the implicit conv's layout)."""
    cdef cnp.ndarray a = np.ascontiguousarray(w)
    if a.ndim != 4 or a.dtype.itemsize != 1 or a.dtype.kind not in "iu":
        raise TypeError("w: 4-D uint8/int8 expected")
    _fits("w output channels", a.shape[0]); _fits("w K = Cin * KH * KW (channels padded)", (a.shape[1] + 64) * a.shape[2] * a.shape[3])
    cdef PackedB p = PackedB.__new__(PackedB)
    cdef int co = <int>a.shape[0], ci = <int>a.shape[1], kh = <int>a.shape[2], kw = <int>a.shape[3]
    cdef int sg = a.dtype.kind == "i"
    cdef const uint8_t *ptr = <const uint8_t *>cnp.PyArray_DATA(a)
    with nogil:
        p.pb = rq_pack_conv_w_pad(ptr, co, ci, cp if cp > ci else ci, kh, kw, sg, isa, nthreads)
    if p.pb == NULL:
        raise MemoryError("pack_conv_w")
    cdef int lvl = rq_isa_level() if isa < 0 else min(isa, rq_isa_level())
    if pad_implicit and cp <= ci and sg and ci >= 16 and ci % 64 and lvl >= RQ_ISA_AMX:
        # the implicit AMX conv's layout too (stride-1 convs; the im2col path reads p.pb)
        with nogil:
            p.pb_pad = rq_pack_conv_w_pad(ptr, co, ci, (ci + 63) // 64 * 64, kh, kw, sg, isa, nthreads)
        if p.pb_pad == NULL:
            raise MemoryError("pack_conv_w")
    p.K, p.N, p.b_signed, p.kind = (cp if cp > ci else ci) * kh * kw, co, sg, "conv"
    return p


cdef int _out_type(cnp.ndarray out) except -1:
    if out.dtype == np.int32:
        return RQ_OUT_S32
    if out.dtype == np.uint8:
        return RQ_OUT_U8
    if out.dtype == np.int8:
        return RQ_OUT_S8
    raise TypeError("out: int32, uint8 or int8 expected")


def _fx_arrays(fx, bint s32_out, Py_ssize_t n):
    """The fixed-point multipliers (qm, shift) as int32 arrays of 1 or n entries."""
    if s32_out or int(fx[2]) not in (1, 2, 3):
        raise ValueError("fx: 8-bit outputs and mode 1..3 only")
    fq = np.ascontiguousarray(fx[0], dtype=np.int32).reshape(-1)
    fs = np.ascontiguousarray(fx[1], dtype=np.int32).reshape(-1)
    if fq.shape[0] not in (1, n) or fs.shape[0] != fq.shape[0]:
        raise ValueError(f"fx: 1 or {n} multipliers expected")
    return fq, fs


cdef object _set_bias(rq_gemm_args *g, object bias):
    """g's bias: an (M, N) int32 or float32 view (any strides; 0 = broadcast), or None.  A
    float32 one is fbgemm's float bias (rq_gemm_args.fbias, 8-bit outputs).  Returns the array,
    which the caller keeps alive while the kernel runs."""
    if bias is None:
        return None
    cdef cnp.ndarray bi = <cnp.ndarray?>bias
    if bi.dtype not in (np.int32, np.float32) or bi.ndim != 2 or bi.shape[0] != g.M or bi.shape[1] != g.N:
        raise ValueError("bias: int32 or float32 (M, N) view expected")
    if bi.dtype == np.float32:
        if g.out_type == RQ_OUT_S32:
            raise ValueError("bias: a float32 bias needs 8-bit outputs")
        g.fbias = <const float *>cnp.PyArray_DATA(bi)
    else:
        g.bias = <const int32_t *>cnp.PyArray_DATA(bi)
    g.bias_rs = bi.strides[0] // 4; g.bias_cs = bi.strides[1] // 4
    return bi


cdef object _set_fx(rq_gemm_args *g, object fx, bint s32_out, Py_ssize_t n):
    """g's fixed-point multipliers (qm int32, shift int32, mode), 1 or n of them, or None.
    Returns (qm, shift) arrays to keep alive, or None."""
    if fx is None:
        return None
    fq, fs = _fx_arrays(fx, s32_out, n)
    g.fx_mode = int(fx[2])
    g.fx_qm = <const int32_t *>cnp.PyArray_DATA(fq); g.fx_sh = <const int32_t *>cnp.PyArray_DATA(fs)
    return fq, fs


def gemm(A, B, a_zp, b_zp, out, *, PackedB packed=None, bias=None, mult=None, int y_zp=0,
         bint sat16=False, int isa=-1, int nthreads=0, bint choose_only=False, od=None, fx=None,
         fbias_rcp=None):
    """out[i, j] = epilogue(sum_k (A[i,k]-a_zp)(B[k,j]-b_zp)); returns the kernel name.

    A (M, K), B (K, N) uint8/int8 with any strides; a_zp int32 (1 or M), b_zp int32 (1 or N);
    out (M, N) int32 / uint8 / int8 (any strides); bias int32 broadcast to (M, N) or None, or
    float32 (fbgemm's float bias, 8-bit outputs: fl32(acc) + bias, or with fbias_rcp, a float32,
    fma(bias, fbias_rcp, fl32(acc)) rounded once); mult float32 (1 or N) for 8-bit outputs.
    """
    cdef cnp.ndarray a = <cnp.ndarray?>A
    cdef cnp.ndarray b = <cnp.ndarray?>B
    cdef cnp.ndarray o = <cnp.ndarray?>out
    cdef cnp.ndarray za = np.ascontiguousarray(a_zp, dtype=np.int32).reshape(-1)
    cdef cnp.ndarray zb = np.ascontiguousarray(b_zp, dtype=np.int32).reshape(-1)
    cdef cnp.ndarray mu
    cdef rq_gemm_args g
    cdef int kern = -1, rc
    if a.ndim != 2 or b.ndim != 2 or o.ndim != 2:
        raise ValueError("A, B, out: 2-D expected")
    for t in (a, b):
        if t.dtype.itemsize != 1 or t.dtype.kind not in "iu":
            raise TypeError("A, B: uint8/int8 expected")
    if a.shape[1] != b.shape[0] or o.shape[0] != a.shape[0] or o.shape[1] != b.shape[1]:
        raise ValueError("A, B, out: shape mismatch")
    _fits("M", a.shape[0]); _fits("K", a.shape[1]); _fits("N", b.shape[1])
    g.M = <int>a.shape[0]; g.K = <int>a.shape[1]; g.N = <int>b.shape[1]
    g.A = <const uint8_t *>cnp.PyArray_DATA(a); g.a_rs = a.strides[0]; g.a_cs = a.strides[1]
    g.a_signed = a.dtype.kind == "i"
    g.B = <const uint8_t *>cnp.PyArray_DATA(b); g.b_rs = b.strides[0]; g.b_cs = b.strides[1]
    g.b_signed = b.dtype.kind == "i"
    g.packed = NULL
    g.ia = NULL
    if packed is not None:
        if packed.K != g.K or packed.N != g.N or packed.b_signed != g.b_signed or packed.kind != "gemm":
            raise ValueError("packed: does not match B")
        g.packed = packed.pb
    if za.shape[0] not in (1, g.M) or zb.shape[0] not in (1, g.N):
        raise ValueError("a_zp / b_zp: size 1 or M / N expected")
    g.a_zp = <const int32_t *>cnp.PyArray_DATA(za); g.a_zp_n = <int>za.shape[0]
    g.b_zp = <const int32_t *>cnp.PyArray_DATA(zb); g.b_zp_n = <int>zb.shape[0]
    g.out_type = _out_type(o)
    if not o.flags.writeable:
        raise ValueError("out: not writeable")
    g.C = cnp.PyArray_DATA(o)
    g.c_rs = o.strides[0] // o.dtype.itemsize; g.c_cs = o.strides[1] // o.dtype.itemsize
    g.bias = NULL; g.bias_rs = 0; g.bias_cs = 0; g.fbias = NULL; g.fbias_fma = 0; g.fbias_rcp = 0
    g.od = 0; g.od_s1 = 1; g.od_s3 = 1; g.fbias2 = NULL
    g.fx_mode = 0; g.fx_qm = NULL; g.fx_sh = NULL
    keep = _set_bias(&g, bias)
    if fbias_rcp is not None:
        if g.fbias == NULL:
            raise ValueError("fbias_rcp: needs a float32 bias")
        g.fbias_fma = 1; g.fbias_rcp = <float>fbias_rcp
    g.mult = NULL; g.mult_n = 0; g.mult_rows = 0
    if od is not None:      # oneDNN's epilogue: (a_s', fl32(1/y_s)); mult holds b_s'
        if g.out_type == RQ_OUT_S32:
            raise ValueError("od: 8-bit outputs only")
        g.od = 1; g.od_s1 = <float>od[0]; g.od_s3 = <float>od[1]
    keep_fx = _set_fx(&g, fx, g.out_type == RQ_OUT_S32, g.N)   # fixed point, sized like mult
    if keep_fx is not None and mult is None:
        mult = np.ones(keep_fx[0].shape[0], np.float32)
    if g.out_type != RQ_OUT_S32:
        if mult is None:
            raise ValueError("mult: required for 8-bit outputs")
        mu = np.ascontiguousarray(mult, dtype=np.float32).reshape(-1)
        if mu.shape[0] not in (1, g.N):
            raise ValueError("mult: size 1 or N expected")
        g.mult = <const float *>cnp.PyArray_DATA(mu); g.mult_n = <int>mu.shape[0]
    g.y_zp = y_zp
    g.sat16 = sat16
    g.isa = isa
    g.nthreads = nthreads
    if choose_only:
        return rq_gemm_kernel_name(rq_gemm_choose(&g)).decode()
    with nogil:
        rc = rq_gemm_run(&g, &kern)
    if rc == -1:
        raise MemoryError("gemm: out of memory")
    if rc != 0:
        raise RuntimeError(f"gemm: kernel error {rc}")
    return rq_gemm_kernel_name(kern).decode()


def requantize(acc, out, mult, int y_zp=0, bias=None, fx=None, bint mult_rows=False, int isa=-1,
               int nthreads=0):
    """out[i, j] = requant(acc[i, j] [+ bias[i, j]]): the GEMM epilogue alone (refquant.requantize's
    fast path).  acc (M, N) int32 with unit column stride; out (M, N) uint8 / int8, C-contiguous;
    mult float32 (1 or N, or M with mult_rows: one per row); bias int32 broadcast to (M, N) or
    None; fx as for gemm (sized like mult).  Returns the epilogue's name, rq_epi_rows__<isa>."""
    cdef cnp.ndarray a = <cnp.ndarray?>acc
    cdef cnp.ndarray o = <cnp.ndarray?>out
    cdef cnp.ndarray mu
    cdef rq_gemm_args g
    cdef int rc, lvl = 0
    if a.ndim != 2 or o.ndim != 2 or a.dtype != np.int32 or a.shape[0] != o.shape[0] or a.shape[1] != o.shape[1]:
        raise ValueError("acc, out: int32 and 8-bit (M, N) arrays expected")
    if (a.shape[1] > 1 and a.strides[1] != 4) or a.strides[0] % 4 or not a.flags.aligned:
        raise ValueError("acc: aligned, unit column stride expected")
    if not o.flags.c_contiguous or not o.flags.writeable:
        raise ValueError("out: writeable C-contiguous array expected")
    _fits("M", a.shape[0]); _fits("N", a.shape[1])
    memset(&g, 0, sizeof(g))
    g.M = <int>a.shape[0]; g.N = <int>a.shape[1]
    g.out_type = _out_type(o)
    if g.out_type == RQ_OUT_S32:
        raise TypeError("out: uint8 or int8 expected")
    g.C = cnp.PyArray_DATA(o)
    g.c_rs = o.strides[0] // o.dtype.itemsize; g.c_cs = 1
    keep = _set_bias(&g, bias)
    cdef Py_ssize_t nm = g.M if mult_rows else g.N
    keep_fx = _set_fx(&g, fx, False, nm)
    if keep_fx is not None and mult is None:
        mult = np.ones(keep_fx[0].shape[0], np.float32)
    mu = np.ascontiguousarray(mult, dtype=np.float32).reshape(-1)
    if mu.shape[0] not in (1, nm) or (keep_fx is not None and keep_fx[0].shape[0] != mu.shape[0]):
        raise ValueError("mult: size 1 or N (M with mult_rows) expected, fx alike")
    g.mult = <const float *>cnp.PyArray_DATA(mu); g.mult_n = <int>mu.shape[0]
    g.mult_rows = 1 if (mult_rows and mu.shape[0] != 1) else 0
    g.y_zp = y_zp
    g.isa = isa
    g.nthreads = nthreads
    with nogil:
        rc = rq_requantize_run(&g, <const int32_t *>cnp.PyArray_DATA(a), a.strides[0] // 4, &lvl)
    if rc != 0:
        raise RuntimeError(f"requantize: kernel error {rc}")
    return "rq_epi_rows__" + rq_isa_name(lvl).decode()


def empty_aligned(shape, dtype):
    """np.empty(shape, dtype) whose data starts on a 64-byte boundary when it is 16 KiB or more:
    the AMX kernels store 16 x 64-byte tile rows straight into int32 outputs, and a row that
    straddles two cache lines costs a second store (measured: 512^3 int32 output 78 -> 98 us,
    numpy's own large arrays start 16 bytes past a line).  A view of a uint8 buffer."""
    cdef cnp.dtype dt = np.dtype(dtype)
    if isinstance(shape, int):
        shape = (shape,)
    cdef int nd = len(shape), i
    if nd > 32:
        return np.empty(shape, dt)
    cdef cnp.npy_intp dims[32]
    for i in range(nd):
        dims[i] = shape[i]
        if dims[i] < 0:
            raise ValueError("negative dimensions are not allowed")
    return _empty64(nd, dims, dt.type_num, dt.itemsize)


cdef tuple _lean_gemm(cnp.ndarray a, cnp.ndarray b, int a_zp, int b_zp, PackedB packed, bint sat16,
                      int out_type, float mult, int y_zp, cnp.ndarray mcol=None, cnp.ndarray zcol=None,
                      cnp.ndarray bcol=None):
    """matmul_s32 / matmul_q8: one 2-D GEMM, per-tensor zero points, int32 or requantized
    8-bit output (float32 multiplier, zero point after rounding)."""
    cdef rq_gemm_args g
    cdef int kern = -1, rc
    cdef int32_t za = a_zp, zb = b_zp
    cdef float m = mult
    cdef int ta = _ntype(a), tb = _ntype(b)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError("a, b: 2-D arrays expected")
    if (ta != cnp.NPY_UINT8 and ta != cnp.NPY_INT8) or (tb != cnp.NPY_UINT8 and tb != cnp.NPY_INT8):
        raise TypeError("a, b: uint8/int8 expected")
    if a.shape[1] != b.shape[0]:
        raise ValueError("a, b: shape mismatch")
    _fits("M", a.shape[0]); _fits("K", a.shape[1]); _fits("N", b.shape[1])
    cdef cnp.npy_intp dims[2]
    dims[0] = a.shape[0]; dims[1] = b.shape[1]
    cdef cnp.ndarray o
    if out_type == RQ_OUT_S32:
        o = _empty64(2, dims, cnp.NPY_INT32, 4)
    else:
        o = _empty64(2, dims, cnp.NPY_UINT8 if out_type == RQ_OUT_U8 else cnp.NPY_INT8, 1)
    g.M = <int>a.shape[0]; g.K = <int>a.shape[1]; g.N = <int>b.shape[1]
    g.A = <const uint8_t *>cnp.PyArray_DATA(a); g.a_rs = a.strides[0]; g.a_cs = a.strides[1]
    g.a_signed = ta == cnp.NPY_INT8
    g.B = <const uint8_t *>cnp.PyArray_DATA(b); g.b_rs = b.strides[0]; g.b_cs = b.strides[1]
    g.b_signed = tb == cnp.NPY_INT8
    g.packed = NULL
    g.ia = NULL
    if packed is not None:
        if packed.K != g.K or packed.N != g.N or packed.b_signed != g.b_signed or packed.kind != "gemm":
            raise ValueError("packed: does not match B")
        g.packed = packed.pb
    g.a_zp = &za; g.a_zp_n = 1
    g.b_zp = &zb; g.b_zp_n = 1
    if zcol is not None:        # int32 (N,), C-contiguous (the caller made it)
        g.b_zp = <const int32_t *>cnp.PyArray_DATA(zcol); g.b_zp_n = g.N
    g.out_type = out_type
    g.C = cnp.PyArray_DATA(o); g.c_rs = g.N; g.c_cs = 1
    g.bias = NULL; g.bias_rs = 0; g.bias_cs = 0; g.fbias = NULL; g.fbias_fma = 0; g.fbias_rcp = 0
    if bcol is not None:        # int32 (N,), C-contiguous: a bias per column, broadcast over rows
        if (_ntype(bcol) != cnp.NPY_INT32 or bcol.ndim != 1 or bcol.shape[0] != g.N
                or not cnp.PyArray_IS_C_CONTIGUOUS(bcol)):
            raise ValueError("bias: C-contiguous int32 (N,) expected")
        g.bias = <const int32_t *>cnp.PyArray_DATA(bcol); g.bias_rs = 0; g.bias_cs = 1
    g.od = 0; g.od_s1 = 1; g.od_s3 = 1; g.fbias2 = NULL
    g.fx_mode = 0; g.fx_qm = NULL; g.fx_sh = NULL
    if out_type == RQ_OUT_S32:
        g.mult = NULL; g.mult_n = 0
    elif mcol is not None:      # float32 (N,), C-contiguous (the caller made it)
        g.mult = <const float *>cnp.PyArray_DATA(mcol); g.mult_n = g.N
    else:
        g.mult = &m; g.mult_n = 1
    g.mult_rows = 0
    g.y_zp = y_zp
    g.sat16 = sat16
    g.isa = -1
    g.nthreads = 0
    with nogil:
        rc = rq_gemm_run(&g, &kern)
    if rc == -1:
        raise MemoryError("gemm: out of memory")
    if rc != 0:
        raise RuntimeError(f"gemm: kernel error {rc}")
    return o, _KNAMES[kern]


def matmul_s32(cnp.ndarray a, cnp.ndarray b, int a_zp, int b_zp, PackedB packed=None,
               bint sat16=False):
    """Lean int32 GEMM for the common MatMulInteger call: a (M, K), b (K, N) uint8/int8 2-D
    arrays (any strides), per-tensor zero points as ints (the caller has range-checked them),
    optional packed B (must match b).  Returns (out int32 (M, N), kernel name).  Same kernel,
    same bits as gemm(); the caller does the ONNX validation."""
    return _lean_gemm(a, b, a_zp, b_zp, packed, sat16, RQ_OUT_S32, 0.0, 0)


def matmul_q8(cnp.ndarray a, cnp.ndarray b, int a_zp, int b_zp, float mult, int y_zp, bint y_signed,
              PackedB packed=None, bint sat16=False, cnp.ndarray bias=None):
    """Lean requantized GEMM for the common QLinearMatMul / QGemm call: as matmul_s32, then
    y = clamp(RNE(fl32(fl32(wrap32(acc + bias[j])) * mult)) + y_zp) as uint8 (or int8 with
    y_signed); mult is the float32 multiplier the caller formed (finite, >= 0), y_zp in the
    output's range, bias None or a C-contiguous int32 (N,) (QGemm's C).  Same kernel, same
    bits as gemm() with mult, y_zp and bias."""
    return _lean_gemm(a, b, a_zp, b_zp, packed, sat16, RQ_OUT_S8 if y_signed else RQ_OUT_U8, mult, y_zp,
                      None, None, bias)


cdef inline int _zp8(object z, int typenum, int *out):
    """A per-tensor zero point the lean entry takes: None (0), a numpy scalar of exactly the
    operand's type (uint8 / int8: always in range) or a Python int in the operand's range (the
    reference takes those as the same value).  1 on success, 0 otherwise (a bool, an int out of
    range: the generic glue and the reference decide)."""
    if z is None:
        out[0] = 0
        return 1
    if typenum == cnp.NPY_UINT8 and type(z) is np.uint8:
        out[0] = <int>int(z)
        return 1
    if typenum == cnp.NPY_INT8 and type(z) is np.int8:
        out[0] = <int>int(z)
        return 1
    if type(z) is int:
        if typenum == cnp.NPY_UINT8 and 0 <= z <= 255:
            out[0] = <int>z
            return 1
        if typenum == cnp.NPY_INT8 and -128 <= z <= 127:
            out[0] = <int>z
            return 1
    return 0


cdef inline int _scale32(object s, float *out):
    """A per-tensor scale the lean entries take, as float32: a numpy float32 scalar, or a Python
    float rounded to float32 (as the reference's check_scale rounds it).  1 when that is finite
    and > 0, 0 otherwise (the generic glue and the reference decide)."""
    cdef double d
    cdef float f
    if type(s) is np.float32 or type(s) is float:
        d = float(s)
    else:
        return 0
    if not (d > 0.0 and d < 3.5e38):      # beyond: +inf in float32 (or NaN, <= 0): refused
        return 0
    f = <float>d
    if not (f > 0.0 and f <= 3.4028234663852886e38):
        return 0
    out[0] = f
    return 1


cdef inline int _gemm2d_ok(object A, object B):
    """A (M, K) and B (K, N): 2-D uint8/int8 ndarrays (any strides), M, K, N > 0."""
    if type(A) is not np.ndarray or type(B) is not np.ndarray:
        return 0
    cdef cnp.ndarray a = <cnp.ndarray>A
    cdef cnp.ndarray b = <cnp.ndarray>B
    if a.ndim != 2 or b.ndim != 2:
        return 0
    cdef int ta = _ntype(a), tb = _ntype(b)
    if (ta != cnp.NPY_UINT8 and ta != cnp.NPY_INT8) or (tb != cnp.NPY_UINT8 and tb != cnp.NPY_INT8):
        return 0
    return a.shape[1] == b.shape[0] and a.shape[0] > 0 and a.shape[1] > 0 and b.shape[1] > 0


cdef object _fold_batch(object A, object B):
    """A (..., M, K) C-contiguous with a 2-D B: A viewed as (prod(...) * M, K) (numpy matmul's
    batch broadcasting against one B folds into the rows); None when A is not of that form."""
    if type(A) is not np.ndarray or type(B) is not np.ndarray:
        return None
    cdef cnp.ndarray a = <cnp.ndarray>A
    if a.ndim <= 2 or (<cnp.ndarray>B).ndim != 2 or not cnp.PyArray_IS_C_CONTIGUOUS(a):
        return None
    cdef Py_ssize_t rows = 1, d
    for d in range(a.ndim - 1):
        rows *= a.shape[d]
    return A.reshape(rows, A.shape[a.ndim - 1])   # (explicit rows: -1 is ambiguous when K is 0)


cdef object _unfold(tuple res, object A):
    """The (rows, N) result of a folded call back to A's batch shape."""
    if res is None:
        return None
    o = res[0]
    shp = A.shape
    return o.reshape(tuple(shp[:len(shp) - 1]) + (o.shape[1],)), res[1]


def matmul_integer_lean(A, B, a_zero_point=None, b_zero_point=None):
    """MatMulInteger's most common call under a profile whose MatMulInteger wraps in int32 and
    has no int16 pair saturation (the default ``onnx``, checked by the caller): A (M, K) and B
    (K, N) 2-D uint8/int8 ndarrays (any strides), zero points None, numpy scalars of the
    operands' types or Python ints in their range.  Returns (out, kernel name), or None for anything else (the caller then
    takes the generic glue, which validates and raises as the reference does).  Same kernel and
    bits as matmul_s32; these checks in C instead of Python save about 2 us a call.  A
    C-contiguous A (..., M, K) against a 2-D B folds its batch dimensions into the rows."""
    if not _gemm2d_ok(A, B):
        A2 = _fold_batch(A, B)
        if A2 is None or not _gemm2d_ok(A2, B):
            return None
        return _unfold(matmul_integer_lean(A2, B, a_zero_point, b_zero_point), A)
    cdef cnp.ndarray a = <cnp.ndarray>A
    cdef cnp.ndarray b = <cnp.ndarray>B
    cdef int ta = _ntype(a), tb = _ntype(b)
    cdef int za, zb
    if not _zp8(a_zero_point, ta, &za) or not _zp8(b_zero_point, tb, &zb):
        return None
    return _lean_gemm(a, b, za, zb, None, False, RQ_OUT_S32, 0.0, 0)


cdef inline int _lean_mult32(object a_s, object b_s, object y_s, float *out):
    """M = fl32(fl32(a_s * b_s) / y_s) for float32 scales (numpy float32 scalars, or Python
    floats rounded to float32), as the glue's _lean_mult forms it: 1 when every scale is finite
    and > 0, nothing nears float32 overflow and M is finite."""
    cdef float sa = 0, sb = 0, sy = 0
    if not _scale32(a_s, &sa) or not _scale32(b_s, &sb) or not _scale32(y_s, &sy):
        return 0
    cdef double fa = sa, fb = sb, fy = sy
    if not (fa * fb < 1e37 and fa * fb / fy < 1e37):
        return 0
    cdef float prod = sa * sb
    cdef float m = prod / sy
    if not (m >= 0.0 and m <= 3.4028234663852886e38):
        return 0
    out[0] = m
    return 1


cdef inline int _q8_zps(object a_zp, int ta, object y_zp, int *za, int *yz):
    """The output's type number and the a / y zero points of a requantizing lean call (as
    _q8_params), or -1."""
    cdef int ty
    if y_zp is None or type(y_zp) is int:      # the output takes a's type (the reference's rule)
        ty = ta
    elif type(y_zp) is np.uint8:
        ty = cnp.NPY_UINT8
    elif type(y_zp) is np.int8:
        ty = cnp.NPY_INT8
    else:
        return -1
    if not _zp8(a_zp, ta, za) or not _zp8(y_zp, ty, yz):
        return -1
    return ty


cdef inline int _q8_params(object a_zp, int ta, object b_zp, int tb, object y_zp, object a_s, object b_s,
                           object y_s, int *za, int *zb, int *yz, float *m):
    """The zero points and multiplier of a requantizing lean call: the output's type number
    (y_zp None or a Python int: a's type; a numpy uint8 / int8 scalar: its type), or -1 when any zero point or
    scale is not of the form the lean entries take."""
    cdef int ty = _q8_zps(a_zp, ta, y_zp, za, yz)
    if ty < 0 or not _zp8(b_zp, tb, zb) or not _lean_mult32(a_s, b_s, y_s, m):
        return -1
    return ty


cdef object _col_params(object w_s, object w_zp, int tw, Py_ssize_t n, object a_s, object y_s):
    """Per-column (per-output-channel) requantization parameters of a lean call, or None:
    w_s a 1-D float32 ndarray of n scales, each finite and > 0; a_s, y_s per-tensor scales as
    _scale32 takes them; w_zp None, a per-tensor zero point as _zp8 takes it, or a 1-D ndarray
    of n zero points of the weights' type (the reference allows a per-tensor zero point beside
    per-channel scales).  Returns (mult float32 (n,), zero points int32 (n,) or None, the
    per-tensor zero point): mult[j] = fl32(fl32(a_s * w_s[j]) / y_s), as the glue's
    _fast_multiplier forms it, each finite (else None: the glue and the reference decide)."""
    if type(w_s) is not np.ndarray:
        return None
    cdef cnp.ndarray ws = <cnp.ndarray>w_s
    if ws.ndim != 1 or ws.shape[0] != n or _ntype(ws) != cnp.NPY_FLOAT32 \
            or not cnp.PyArray_IS_C_CONTIGUOUS(ws):
        return None
    cdef float sa = 0, sy = 0, f, m
    if not _scale32(a_s, &sa) or not _scale32(y_s, &sy):
        return None
    cdef int zs = 0
    cdef object zcol = None
    cdef cnp.ndarray za
    if w_zp is None or not (type(w_zp) is np.ndarray):
        if not _zp8(w_zp, tw, &zs):
            return None
    else:
        za = <cnp.ndarray>w_zp
        if za.ndim != 1 or za.shape[0] != n or _ntype(za) != tw:
            return None
        zcol = np.ascontiguousarray(za, dtype=np.int32)
    cdef cnp.npy_intp dims[1]
    dims[0] = n
    cdef cnp.ndarray mu = cnp.PyArray_EMPTY(1, dims, cnp.NPY_FLOAT32, 0)
    cdef const float *pw = <const float *>cnp.PyArray_DATA(ws)
    cdef float *pm = <float *>cnp.PyArray_DATA(mu)
    cdef Py_ssize_t j
    for j in range(n):
        f = pw[j]
        if not (f > 0 and f <= 3.4028234663852886e38):
            return None
        m = sa * f
        m = m / sy
        if not (m >= 0 and m <= 3.4028234663852886e38):
            return None
        pm[j] = m
    return mu, zcol, zs


def f32_positive(s, bint allow_zero=False):
    """Whether every element of a C-contiguous 1-D float32 ndarray is finite and > 0 (>= 0 with
    allow_zero; NaN fails); None for anything else (the caller's numpy checks decide).  One pass
    in C instead of numpy's isfinite / all / any (about 2 us each on short vectors)."""
    if type(s) is not np.ndarray:
        return None
    cdef cnp.ndarray a = <cnp.ndarray>s
    if a.ndim != 1 or _ntype(a) != cnp.NPY_FLOAT32 or not cnp.PyArray_IS_C_CONTIGUOUS(a):
        return None
    cdef const float *p = <const float *>cnp.PyArray_DATA(a)
    cdef Py_ssize_t i, n = a.shape[0]
    cdef float v
    for i in range(n):
        v = p[i]
        if not (v < 3.4028234663852886e38 * 2.0):      # +Inf and NaN
            return False
        if allow_zero:
            if not (v >= 0.0):
                return False
        elif not (v > 0.0):
            return False
    return True


def col_multipliers(w_s, a_s, y_s):
    """The per-column multipliers the lean entries use (tests compare them with the glue's
    _fast_multiplier): float32 (n,) or None when the entries would decline the scales."""
    if type(w_s) is not np.ndarray:
        return None
    cp = _col_params(w_s, None, cnp.NPY_INT8, (<cnp.ndarray>w_s).shape[0] if (<cnp.ndarray>w_s).ndim == 1 else -1,
                     a_s, y_s)
    return None if cp is None else cp[0]


def qlinear_matmul_lean(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point):
    """QLinearMatMul's most common call under a profile with the plain float32 epilogue and no
    int16 pair saturation (the default ``onnx``, checked by the caller): a, b 2-D uint8/int8
    ndarrays, float32 scales (numpy float32 scalars, or Python floats rounded to float32),
    zero points that are numpy scalars of the operands' types or Python ints in range
    (y_zero_point None or a Python int: a's type).  The multiplier as the glue's lean path forms it,
    M = fl32(fl32(a_scale * b_scale) / y_scale), taken only when every scale is finite and > 0
    and nothing nears float32 overflow.  Per-column b scales (and zero points) as _col_params
    takes them.  A C-contiguous a (..., M, K) folds its batch dimensions into the rows.
    Returns (out, kernel name) or None (the caller then takes the generic glue)."""
    if not _gemm2d_ok(a, b):
        a2 = _fold_batch(a, b)
        if a2 is None or not _gemm2d_ok(a2, b):
            return None
        return _unfold(qlinear_matmul_lean(a2, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale,
                                           y_zero_point), a)
    cdef cnp.ndarray aa = <cnp.ndarray>a
    cdef cnp.ndarray bb = <cnp.ndarray>b
    cdef int ta = _ntype(aa), tb = _ntype(bb)
    cdef int za, zb, yz
    cdef float m = 0
    cdef int ty
    if type(b_scale) is np.ndarray:      # per-column scales (and zero points)
        ty = _q8_zps(a_zero_point, ta, y_zero_point, &za, &yz)
        if ty < 0:
            return None
        cp = _col_params(b_scale, b_zero_point, tb, bb.shape[1], a_scale, y_scale)
        if cp is None:
            return None
        return _lean_gemm(aa, bb, za, cp[2], None, False, RQ_OUT_S8 if ty == cnp.NPY_INT8 else RQ_OUT_U8,
                          0.0, yz, cp[0], cp[1])
    ty = _q8_params(a_zero_point, ta, b_zero_point, tb, y_zero_point, a_scale, b_scale, y_scale,
                    &za, &zb, &yz, &m)
    if ty < 0:
        return None
    return _lean_gemm(aa, bb, za, zb, None, False, RQ_OUT_S8 if ty == cnp.NPY_INT8 else RQ_OUT_U8, m, yz)


def qlinear_conv_lean(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B,
                      dict geo, tuple o2, PackedB packed=None):
    """QLinearConv's common call under a profile with the plain float32 epilogue and no int16
    pair saturation (checked by the caller), with the geometry the glue's _lean_geo computed
    (geo, o2): x (N, C, H, W) and w C-contiguous uint8/int8 ndarrays, scales and zero points
    as qlinear_matmul_lean takes them, B None or an int32 (Cout,) array.
    One rq_conv_run per image into a fresh output.  Returns (out, kernel name) or None (the
    caller then takes the glue's lean / generic path)."""
    if type(x) is not np.ndarray or type(w) is not np.ndarray:
        return None
    cdef cnp.ndarray xa = <cnp.ndarray>x
    cdef cnp.ndarray wa = <cnp.ndarray>w
    if xa.ndim != 4 or wa.ndim != 4 or not cnp.PyArray_IS_C_CONTIGUOUS(xa) or not cnp.PyArray_IS_C_CONTIGUOUS(wa):
        return None
    cdef int tx = _ntype(xa), tw = _ntype(wa)
    if (tx != cnp.NPY_UINT8 and tx != cnp.NPY_INT8) or (tw != cnp.NPY_UINT8 and tw != cnp.NPY_INT8):
        return None
    cdef int xz, wz = 0, yz
    cdef float m = 0
    cdef int Cout = <int>wa.shape[0]
    cdef int ty
    cdef object cp = None
    if type(w_scale) is np.ndarray:      # per-output-channel scales (and zero points)
        ty = _q8_zps(x_zero_point, tx, y_zero_point, &xz, &yz)
        if ty < 0:
            return None
        cp = _col_params(w_scale, w_zero_point, tw, Cout, x_scale, y_scale)
        if cp is None:
            return None
        wz = cp[2]
    else:
        ty = _q8_params(x_zero_point, tx, w_zero_point, tw, y_zero_point, x_scale, w_scale, y_scale,
                        &xz, &wz, &yz, &m)
        if ty < 0:
            return None
    cdef cnp.ndarray bi
    cdef const int32_t *bp = NULL
    if B is not None:
        if type(B) is not np.ndarray:
            return None
        bi = <cnp.ndarray>B
        if (bi.ndim != 1 or _ntype(bi) != cnp.NPY_INT32 or bi.shape[0] != Cout
                or not cnp.PyArray_IS_C_CONTIGUOUS(bi)):
            return None
        bp = <const int32_t *>cnp.PyArray_DATA(bi)
    cdef rq_conv_args c
    cdef int32_t wz32 = wz
    cdef tuple kern_ = geo["kernel"], st = geo["strides"], dl = geo["dilations"], pd = geo["pads"]
    _conv_fits(xa.shape[1], xa.shape[2], xa.shape[3], wa.shape[0], kern_[0], kern_[1], o2[0], o2[1])
    c.C = <int>xa.shape[1]; c.H = <int>xa.shape[2]; c.W = <int>xa.shape[3]
    c.Cout = Cout; c.group = <int>geo["group"]
    c.KH = <int>kern_[0]; c.KW = <int>kern_[1]
    c.sh = <int>st[0]; c.sw = <int>st[1]; c.dh = <int>dl[0]; c.dw = <int>dl[1]
    c.pt = <int>pd[0]; c.pl = <int>pd[1]; c.pb = <int>pd[2]; c.pr = <int>pd[3]
    c.OH = <int>o2[0]; c.OW = <int>o2[1]
    if (wa.shape[1] * c.group != c.C or wa.shape[2] != c.KH or wa.shape[3] != c.KW or c.OH <= 0 or c.OW <= 0
            or xa.shape[0] <= 0):
        return None
    c.x_signed = tx == cnp.NPY_INT8
    c.w = <const uint8_t *>cnp.PyArray_DATA(wa); c.w_signed = tw == cnp.NPY_INT8
    c.packed = NULL
    c.packed_pad = NULL
    if packed is not None:
        if (packed.kind != "conv" or packed.N != Cout or packed.K != wa.shape[1] * c.KH * c.KW
                or packed.b_signed != c.w_signed):
            return None
        c.packed = packed.pb
        c.packed_pad = packed.pb_pad
    c.x_zp = xz
    c.w_zp = &wz32; c.w_zp_n = 1
    c.out_type = RQ_OUT_S8 if ty == cnp.NPY_INT8 else RQ_OUT_U8
    c.bias = bp
    c.fbias = NULL; c.fbias_fma = 0; c.fbias_rcp = 0
    c.od = 0; c.od_s1 = 1; c.od_s3 = 1; c.fbias2 = NULL
    c.fx_mode = 0; c.fx_qm = NULL; c.fx_sh = NULL
    c.mult = &m; c.mult_n = 1
    cdef cnp.ndarray mcol, zcol
    if cp is not None:                   # (the arrays stay referenced by cp through the run)
        mcol = <cnp.ndarray>cp[0]
        c.mult = <const float *>cnp.PyArray_DATA(mcol); c.mult_n = Cout
        if cp[1] is not None:
            zcol = <cnp.ndarray>cp[1]
            c.w_zp = <const int32_t *>cnp.PyArray_DATA(zcol); c.w_zp_n = Cout
    c.y_zp = yz
    c.sat16 = 0
    c.isa = -1
    c.nthreads = 0
    c.D = 0; c.KD = 1; c.OD = 1; c.sd = 1; c.dd = 1; c.pd = 0
    cdef cnp.npy_intp dims[4]
    dims[0] = xa.shape[0]; dims[1] = Cout; dims[2] = c.OH; dims[3] = c.OW
    cdef cnp.ndarray o = _empty64(4, dims, ty, 1)
    cdef const uint8_t *xp = <const uint8_t *>cnp.PyArray_DATA(xa)
    cdef uint8_t *yp = <uint8_t *>cnp.PyArray_DATA(o)
    cdef Py_ssize_t xs = <Py_ssize_t>c.C * c.H * c.W, ys = <Py_ssize_t>Cout * c.OH * c.OW, n
    cdef int kern = -1, rc = 0
    with nogil:
        for n in range(dims[0]):
            c.x = xp + n * xs
            c.y = yp + n * ys
            rc = rq_conv_run(&c, &kern)
            if rc != 0:
                break
    if rc == -1:
        raise MemoryError("conv2d: out of memory")
    if rc != 0:
        raise RuntimeError(f"conv2d: kernel error {rc}")
    return o, _KNAMES[kern]


_KNAMES = [rq_gemm_kernel_name(k).decode() for k in range(RQ_K_COUNT)]


def conv2d(x, w, int x_zp, w_zp, out, *, int group, kernel, strides, dilations, pads,
           PackedB packed=None, bias=None, mult=None, int y_zp=0, bint sat16=False, int isa=-1,
           int nthreads=0, fbias=None, od=None, fx=None, depth=None, fbias_rcp=None):
    """One image: x (C, H, W) contiguous, w (Cout, C/group, KH, KW) contiguous,
    out (Cout, OH, OW) contiguous int32/uint8/int8.  fbias: float32 (Cout,) bias added after the
    int32 -> float32 conversion (fbgemm's rq_bias="float"; 8-bit outputs, no int bias); with
    fbias_rcp (a float32), fma(fbias, fbias_rcp, fl32(acc)) rounded once (rq_bias="float_rcp_fma").
    depth: a 3-D depthwise conv (group == C, no sat16): (KD, sd, dd, pd) -- kernel depth,
    stride, dilation and front pad along the depth -- with x (C, D, H, W), w (Cout, 1, KD, KH, KW)
    and out (Cout, OD, OH, OW); kernel, strides, dilations and pads stay the (H, W) ones.
    Returns the kernel name."""
    cdef cnp.ndarray xa = <cnp.ndarray?>x
    cdef cnp.ndarray wa = <cnp.ndarray?>w
    cdef cnp.ndarray o = <cnp.ndarray?>out
    cdef cnp.ndarray zw = np.ascontiguousarray(w_zp, dtype=np.int32).reshape(-1)
    cdef cnp.ndarray bi, mu, fb, fb2, fq, fs
    cdef rq_conv_args c
    cdef int kern = -1, rc
    if not (xa.flags.c_contiguous and wa.flags.c_contiguous and o.flags.c_contiguous):
        raise ValueError("x, w, out: C-contiguous expected")
    cdef int e = 0       # (a 3-D conv: the arrays' extra depth axis, after the channels)
    c.D = 0; c.KD = 1; c.OD = 1; c.sd = 1; c.dd = 1; c.pd = 0
    if depth is not None:
        if xa.ndim != 4 or wa.ndim != 5 or o.ndim != 4 or wa.shape[1] != 1 or group != xa.shape[0] or sat16:
            raise ValueError("conv2d depth: x (C,D,H,W), w (Cout,1,KD,KH,KW), out (Cout,OD,OH,OW), "
                             "group C, no sat16 expected")
        if packed is not None:
            raise ValueError("conv2d depth: plain weights only")
        if wa.shape[2] != depth[0] or min(depth[0], depth[1], depth[2]) < 1 or depth[3] < 0:
            raise ValueError("conv2d depth: bad (KD, sd, dd, pd)")
        _fits("conv input volume D * H * W", xa.shape[1] * xa.shape[2] * xa.shape[3])
        _fits("conv output volume OD * OH * OW", o.shape[1] * o.shape[2] * o.shape[3])
        _fits("conv taps KD * KH * KW", wa.shape[2] * wa.shape[3] * wa.shape[4])
        c.D = <int>xa.shape[1]; c.KD = <int>depth[0]; c.OD = <int>o.shape[1]
        c.sd = <int>depth[1]; c.dd = <int>depth[2]; c.pd = <int>depth[3]
        e = 1
    elif xa.ndim != 3 or wa.ndim != 4 or o.ndim != 3:
        raise ValueError("x (C,H,W), w (Cout,Cin/g,KH,KW), out (Cout,OH,OW) expected")
    else:
        _conv_fits(xa.shape[0], xa.shape[1], xa.shape[2], wa.shape[0], kernel[0], kernel[1], o.shape[1],
                   o.shape[2])
    c.C = <int>xa.shape[0]; c.H = <int>xa.shape[1 + e]; c.W = <int>xa.shape[2 + e]
    c.Cout = <int>wa.shape[0]; c.group = group
    c.KH = <int>kernel[0]; c.KW = <int>kernel[1]
    c.sh = <int>strides[0]; c.sw = <int>strides[1]; c.dh = <int>dilations[0]; c.dw = <int>dilations[1]
    c.pt = <int>pads[0]; c.pl = <int>pads[1]; c.pb = <int>pads[2]; c.pr = <int>pads[3]
    c.OH = <int>o.shape[1 + e]; c.OW = <int>o.shape[2 + e]
    if (o.shape[0] != c.Cout or wa.shape[1] * group != c.C or wa.shape[2 + e] != c.KH
            or wa.shape[3 + e] != c.KW):
        raise ValueError("conv2d: shape mismatch")
    c.x = <const uint8_t *>cnp.PyArray_DATA(xa); c.x_signed = xa.dtype.kind == "i"
    c.w = <const uint8_t *>cnp.PyArray_DATA(wa); c.w_signed = wa.dtype.kind == "i"
    c.packed = NULL
    c.packed_pad = NULL
    if packed is not None:
        if packed.kind != "conv" or packed.N != c.Cout or packed.K != wa.shape[1] * c.KH * c.KW or packed.b_signed != c.w_signed:
            raise ValueError("packed: does not match w")
        c.packed = packed.pb
        c.packed_pad = packed.pb_pad
    c.x_zp = x_zp
    if zw.shape[0] not in (1, c.Cout):
        raise ValueError("w_zp: size 1 or Cout expected")
    c.w_zp = <const int32_t *>cnp.PyArray_DATA(zw); c.w_zp_n = <int>zw.shape[0]
    c.out_type = _out_type(o)
    c.y = cnp.PyArray_DATA(o)
    c.bias = NULL
    if bias is not None:
        bi = np.ascontiguousarray(bias, dtype=np.int32).reshape(-1)
        if bi.shape[0] != c.Cout:
            raise ValueError("bias: Cout elements expected")
        c.bias = <const int32_t *>cnp.PyArray_DATA(bi)
    c.od = 0; c.od_s1 = 1; c.od_s3 = 1; c.fbias2 = NULL
    c.fx_mode = 0; c.fx_qm = NULL; c.fx_sh = NULL
    if fx is not None:      # fixed point: (qm int32, shift int32, mode), 1 or Cout entries
        fq, fs = _fx_arrays(fx, o.dtype.itemsize != 1, c.Cout)
        c.fx_mode = int(fx[2])
        c.fx_qm = <const int32_t *>cnp.PyArray_DATA(fq); c.fx_sh = <const int32_t *>cnp.PyArray_DATA(fs)
        if mult is None:
            mult = np.ones(fq.shape[0], np.float32)
    if od is not None:      # oneDNN's epilogue: (a_s', fl32(1/y_s), float bias in real units or None)
        if o.dtype.itemsize != 1:
            raise ValueError("od: 8-bit outputs only")
        c.od = 1; c.od_s1 = <float>od[0]; c.od_s3 = <float>od[1]
        if od[2] is not None:
            fb2 = np.ascontiguousarray(od[2], dtype=np.float32).reshape(-1)
            if fb2.shape[0] != c.Cout:
                raise ValueError("od bias: Cout elements expected")
            c.fbias2 = <const float *>cnp.PyArray_DATA(fb2)
    c.fbias = NULL; c.fbias_fma = 0; c.fbias_rcp = 0
    if fbias_rcp is not None:
        if fbias is None:
            raise ValueError("fbias_rcp: needs fbias")
        c.fbias_fma = 1; c.fbias_rcp = <float>fbias_rcp
    if fbias is not None:
        if bias is not None or o.dtype.itemsize != 1:
            raise ValueError("fbias: 8-bit outputs and no int32 bias only")
        fb = np.ascontiguousarray(fbias, dtype=np.float32).reshape(-1)
        if fb.shape[0] != c.Cout:
            raise ValueError("fbias: Cout elements expected")
        c.fbias = <const float *>cnp.PyArray_DATA(fb)
    c.mult = NULL; c.mult_n = 0
    if c.out_type != RQ_OUT_S32:
        mu = np.ascontiguousarray(mult, dtype=np.float32).reshape(-1)
        if mu.shape[0] not in (1, c.Cout):
            raise ValueError("mult: size 1 or Cout expected")
        c.mult = <const float *>cnp.PyArray_DATA(mu); c.mult_n = <int>mu.shape[0]
    c.y_zp = y_zp
    c.sat16 = sat16
    c.isa = isa
    c.nthreads = nthreads
    with nogil:
        rc = rq_conv_run(&c, &kern)
    if rc == -1:
        raise MemoryError("conv2d: out of memory")
    if rc != 0:
        raise RuntimeError(f"conv2d: kernel error {rc}")
    return rq_gemm_kernel_name(kern).decode()


def set_vnni_plain(on):
    """Whether the VNNI GEMM reads a plain B in place where it applies (``gemm_vnni4_plain__avx512vnni``,
    2 to 160 rows without AMX): True (the default), False (the GEMV or the packed kernel, as before),
    None (the REFQUANT_VNNI_PLAIN environment variable decides, "0" = off)."""
    rq_set_vnni_plain(-1 if on is None else (1 if on else 0))


def set_dw_nhwc(on):
    """Whether depthwise convs with output rows up to 24 pixels (channel multiplier 1, 2-D) run
    the channels-last kernel (``dwconv_nhwc__avx512``): True (the default), False (the
    per-channel kernels, as for wider rows), None (the REFQUANT_DW_NHWC environment variable
    decides, "0" = off)."""
    rq_set_dw_nhwc(-1 if on is None else (1 if on else 0))


def kernel_name(int k):
    return rq_gemm_kernel_name(k).decode()
