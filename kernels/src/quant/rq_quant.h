/* rq_quant.h -- QuantizeLinear / DequantizeLinear / min-max kernels (scalar, AVX2, AVX-512).
 *
 * Semantics (the numpy reference, refquant/reference/quantize.py, is the definition):
 *
 * QuantizeLinear, integer target T with range [qmin, qmax], zero point zp (int32), scale s:
 *   xf = (float)x                      f32 input, or f16 input widened (exact)
 *   if div_f16: xf = fl16(xf)          division precision float16: x converted to f16 (RNE)
 *   v  = fl32(xf / s)                  IEEE true division (divss / vdivps), never x * (1/s)
 *   if div_f16: v = fl16(v)            == the correctly rounded f16 quotient (24 >= 2*11 + 2)
 *   div_f16 = 2 (bfloat16): xf = bf16(xf), v = bf16(fl32(xf / s)) -- ml_dtypes' bfloat16
 *                                      division (a float32 quotient rounded to bfloat16)
 *   v  = max(v, qmin - zp)             NaN -> qmin - zp   (maxps returns the 2nd operand on NaN)
 *   v  = min(v, qmax - zp)             +Inf and overflow -> qmax - zp
 *   q  = cvt_rne(v) + zp               round half to even (cvtps2dq, default MXCSR), exact int add
 * which equals saturate(round_half_even(v) + zp) with NaN -> qmin, +-Inf -> qmax/qmin, because
 * the clamp bounds are integers (clamping commutes with rounding).  4-bit results are stored
 * one per byte as the low nibble (ml_dtypes int4/uint4 storage: q & 0xF).
 *
 * Division-free fast path (SIMD, per-tensor, float32 division precision, r = fl(1/s) a normal
 * float): q = fl(x * r), qc = clamp(q) (NaN -> qmin - zp), e = |qc| * 2^-18,
 * i1 = cvt_rne(fl(qc - e)), i2 = cvt_rne(fl(qc + e)); if i1 == i2 the result is i1 + zp,
 * else the vector is recomputed with the true division.  Exact because
 *   |q - x/s| <= |x/s| (2u + u^2) and |fl(x/s) - x/s| <= u |x/s|  (u = 2^-24, normal range),
 * so clamp(fl(x/s)) lies within |q| 2^-22.3 of qc (or both saturate to the same bound, as
 * every bound is an integer with |bound| < 2^17), strictly inside [fl(qc - e), fl(qc + e)]
 * (each endpoint is off by at most |q| 2^-24 from qc -+ e); round-half-even is monotone, so
 * i1 == i2 forces round(clamp(fl(x/s))) == i1.  Tiny |q| (subnormal range) means |x/s| < 0.5:
 * both give 0.  q = +-Inf means |x/s| >= FLT_MAX (1 - 2^-23): both saturate.
 *
 * Variants (rq_qrun_args.variant, float32 division precision only): the vendor profiles'
 * quantize formulas (refquant.profile fields q_scale_op, q_fma, q_zero_point, q_rounding, q_nan):
 *   RQ_QV_RECIP   v = fl32(x * r), r = fl32(1 / s)           (q_scale_op "multiply_reciprocal")
 *   RQ_QV_ZPB     w = fl32(v + zp), clamp to [qmin, qmax], round; no zp after rounding
 *                                                             (q_zero_point "before_rounding")
 *   RQ_QV_FMA     with RECIP | ZPB: w = fma(x, r, zp), one rounding   (q_fma)
 *   rounding      half to even (default), RQ_QV_RAWAY half away from zero, RQ_QV_RUP half up;
 *                 applied to the clamped value (exact: |w| < 2^17, bounds are integers)
 *   NaN code      (variant >> RQ_QV_NAN_SHIFT) & 3: 0 qmin, 1 qmax, 2 the zero point (clamped to
 *                 [qmin, qmax]), 3 zero (clamped); NaN is tested on w before clamping
 * +-Inf and out-of-range values saturate (q_inf / q_overflow "saturate"), except under
 *   RQ_QV_WRAP    (q_overflow "int32_wrap"): w is rounded unclamped, i = (int32)round(w) when
 *                 -2^31 <= round(w) < 2^31, else INT32_MIN (NaN, +-Inf and overflow: x86's
 *                 cvttps2dq), q = clamp(i + zp in int32 two's complement, qmin, qmax); NaN
 *                 then takes the NaN code unless RQ_QV_NANWRAP (q_nan "int32_wrap").
 *
 * DequantizeLinear, integer x, zero point zp, scale s, output precision P (f32 or f16):
 *   d = x - zp                         exact in int32
 *   P = f32: y = fl32((float)d * s)    (float)d exact for |d| < 2^24; int32 x rounds like cvtdq2ps
 *   P = f16: y = fl16(fl32(fl16(d)) * s)   s already f16-representable; product exact in f32
 *   int4/uint4 inputs are decoded from the low nibble (sign-extended for int4).
 *
 * Layout: the data is viewed as [outer, D, inner] (C order); scale/zp have D entries
 * (D = 1: per tensor), or, blocked (block > 0), shape [outer, ceil(D / block), inner] with
 * element (o, a, i) using entry (o, a / block, i).  Work is split into fixed chunks; every element is computed
 * independently, so results never depend on the thread count or the ISA.
 *
 * Dispatch: rq_quantize / rq_dequantize / rq_minmax pick the best compiled + available level
 * (<= isa_cap when isa_cap >= 0) and return the level used.
 */
#ifndef RQ_QUANT_H
#define RQ_QUANT_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* quantized element types */
enum { RQ_Q_U8 = 0, RQ_Q_I8 = 1, RQ_Q_U16 = 2, RQ_Q_I16 = 3, RQ_Q_U4 = 4, RQ_Q_I4 = 5,
       RQ_Q_I32 = 6 /* dequantize input only */, RQ_Q_COUNT = 7 };
/* float element types */
enum { RQ_F_F32 = 0, RQ_F_F16 = 1,
       RQ_F_F16_VIA32 = 2, /* dequantize output only: float16 from the float32 result, one RNE
                            * rounding (ORT's fl16(fl32(x - zp) * fl32(s)), dq_subtract "float32") */
       RQ_F_BF16_VIA32 = 3 /* dequantize output only: bfloat16 from the float32 result, one RNE
                            * rounding (exact products of 8- / 4-bit x: the glue checks) */ };

/* One contiguous run: n elements, parameters either one scalar (pstride 0) or one per
 * element (pstride 1). Output type / input type fixed per call. */
typedef struct rq_qrun_args {
    const void *x;        /* input (float32 or float16 bits) */
    void *y;              /* output (1 or 2 bytes per element) */
    const float *s;       /* scale(s), as float32 values (already rounded to the division precision) */
    const int32_t *zp;    /* zero point(s) */
    int64_t n;
    int pstride;          /* 0: s[0], zp[0] for all; 1: s[i], zp[i]; -k (AVX-512 quantize only,
                           * variant 0): s[i >> k], zp[i >> k], blocks of 2^k >= 16 elements */
    int in_type;          /* RQ_F_F32 / RQ_F_F16 */
    int out_type;         /* RQ_Q_* (not I32) */
    int div_f16;          /* division precision float16 (1) or bfloat16 (2) */
    int nontemporal;      /* use streaming stores where possible (the caller fences after) */
    int variant;          /* 0: the ONNX formula above; else RQ_QV_* flags (div_f16 must be 0) */
    int divide;           /* variant 0, per tensor: 1 divides x / s, 0 takes the division-free
                           * form (the same bits: a speed choice, rq_quantize sets it) */
} rq_qrun_args;

enum { RQ_QV_RECIP = 1, RQ_QV_ZPB = 2, RQ_QV_FMA = 4, RQ_QV_RAWAY = 8, RQ_QV_RUP = 16,
       RQ_QV_NAN_SHIFT = 5 /* 2 bits: 0 qmin, 1 qmax, 2 zero point, 3 zero */,
       RQ_QV_WRAP = 128,   /* int32 wraparound (onnx.reference / tflite reference) */
       RQ_QV_NANWRAP = 256 /* with WRAP: NaN keeps the wrapped code (no NaN override) */,
       RQ_QV_P16 = 512     /* float16 precision P: x and 1/s rounded to float16, v = fl16(x * r)
                            * or fl16(x / s); each a single float32 operation on float16 operands
                            * rounded once more, which is the float16 result (24 >= 2 * 11 + 2
                            * bits).  With ZPB: w = fl16(v + fl16(zp)) (the same argument); with
                            * ZPB | FMA: x * r is exact in float32 (22 bits), x * r + zp is
                            * rounded to float32 *to odd* (TwoSum; rq_add_odd), then to float16:
                            * the float16 fma rounded once (24 >= 11 + 2 bits) */ };

typedef struct rq_dqrun_args {
    const void *x;        /* quantized input */
    void *y;              /* float32 or float16 output */
    const float *s;
    const int32_t *zp;
    int64_t n;
    int pstride;          /* as rq_qrun_args.pstride (-k: AVX-512 only) */
    int in_type;          /* RQ_Q_* */
    int out_type;         /* RQ_F_F32 / RQ_F_F16 */
    int nontemporal;      /* as rq_qrun_args.nontemporal */
    int sts;              /* 1: y = fl32(fl32(x*s) - fl32(zp*s)) (LiteRT's optimized DEQUANTIZE;
                           * float32 output, 8/16-bit x, pstride >= 0), else fl32(fl32(x - zp)*s) */
} rq_dqrun_args;

void rq_quantize_run__scalar(const rq_qrun_args *a);
void rq_quantize_run__avx2(const rq_qrun_args *a);
void rq_quantize_run__avx512(const rq_qrun_args *a);
void rq_dequantize_run__scalar(const rq_dqrun_args *a);
/* n float32 -> float16 bits, round to nearest even (vcvtps2ph; NaN quietened, payload's top bits) */
void rq_cvt_f32_f16__scalar(const float *s, uint16_t *d, int64_t n);
void rq_dequantize_run__avx2(const rq_dqrun_args *a);
void rq_dequantize_run__avx512(const rq_dqrun_args *a);
void rq_cvt_f32_f16__avx2(const float *s, uint16_t *d, int64_t n);
void rq_cvt_f32_f16__avx512(const float *s, uint16_t *d, int64_t n);
/* float32 -> bfloat16 bits, to nearest even (a NaN stays a NaN, as ml_dtypes converts) */
void rq_cvt_f32_bf16__scalar(const float *s, uint16_t *d, int64_t n);
void rq_cvt_f32_bf16__avx2(const float *s, uint16_t *d, int64_t n);
void rq_cvt_f32_bf16__avx512(const float *s, uint16_t *d, int64_t n);
/* min/max of n float32; returns 1 if any NaN or Inf was seen (min/max then unspecified) */
int rq_minmax_f32__scalar(const float *x, int64_t n, float *mn, float *mx);
int rq_minmax_f32__avx2(const float *x, int64_t n, float *mn, float *mx);
int rq_minmax_f32__avx512(const float *x, int64_t n, float *mn, float *mx);

/* float8 / float6 / float4 QuantizeLinear / DequantizeLinear (rq_f8.h): formats (one code per
 * byte; float6 / float4 in the low bits, ml_dtypes' storage) */
enum { RQ_F8_E4M3FN = 0, RQ_F8_E4M3FNUZ = 1, RQ_F8_E5M2 = 2, RQ_F8_E5M2FNUZ = 3,
       RQ_F4_E2M1FN = 4, RQ_F6_E2M3FN = 5, RQ_F6_E3M2FN = 6 };
#define RQ_F8_DECL(SFX)                                                                          \
    void rq_quantize_f8##SFX(const float *x, uint8_t *y, const float *s, const float *z, int64_t n, \
                             int fmt, int pe, int sat);                                          \
    void rq_dequantize_f8##SFX(const uint8_t *x, float *y, const float *tab, const float *s,    \
                               const float *z, int64_t n, int pe);
RQ_F8_DECL(__scalar)
RQ_F8_DECL(__avx2)
RQ_F8_DECL(__avx512)
/* [outer, D, inner] layout: s and z per d; or (pe = 1, D = 1) per element of a row of inner
 * elements (a periodic table for short runs); or (block > 0) per block, shape
 * [outer, ceil(D / block), inner], element (o, a, i) using entry (o, a / block, i).  Threads over
 * chunks of RQ_QCHUNK elements.  sat (quantize): 1 saturate=1, 0 saturate=0 (the Cast table), 2
 * ONNX Runtime's saturate=0 (float8 only: float6 / float4 take 1).  z: the zero point as float32
 * (quantize: -0.0 where the profile adds none), laid out as s, or (zc) one value for every
 * element.  Return the ISA level used, -1 on bad
 * arguments. */
int rq_quantize_f8(const float *x, uint8_t *y, const float *s, const float *z, int zc, int64_t outer,
                   int64_t D, int64_t inner, int64_t block, int fmt, int pe, int sat, int isa_cap,
                   int nthreads);
int rq_dequantize_f8(const uint8_t *x, float *y, const float *tab, const float *s, const float *z, int zc,
                     int64_t outer, int64_t D, int64_t inner, int64_t block, int pe, int isa_cap,
                     int nthreads);

/* Whole-array entry points: [outer, D, inner] layout, contiguous input and output.
 * Return the ISA level used (RQ_ISA_*), or -1 on bad arguments. Release-GIL safe. */
int rq_quantize(const void *x, int in_type, void *y, int out_type, const float *s,
                const int32_t *zp, int64_t outer, int64_t D, int64_t inner, int64_t block,
                int div_f16, int isa_cap, int nthreads, int stream, int variant);
int rq_dequantize(const void *x, int in_type, void *y, int out_type, const float *s,
                  const int32_t *zp, int64_t outer, int64_t D, int64_t inner, int64_t block,
                  int isa_cap, int nthreads, int stream, int sts);
int rq_minmax_f32(const float *x, int64_t n, float *mn, float *mx, int *nonfinite,
                  int isa_cap, int nthreads);
/* The level rq_quantize would use (for kernel names). */
int rq_quant_level(int isa_cap);

/* ---- scalar semantic core (shared by every ISA's tails) ---------------------------------- */

static inline void rq_qrange(int t, int32_t *qmin, int32_t *qmax);

/* The code a NaN input gets under a variant (zp: the element's zero point). */
static inline int32_t rq_qv_nan(int variant, int32_t zp, int32_t qmin, int32_t qmax)
{
    switch ((variant >> RQ_QV_NAN_SHIFT) & 3) {
    case 1: return qmax;
    case 2: return zp < qmin ? qmin : (zp > qmax ? qmax : zp);
    case 3: return 0 < qmin ? qmin : (0 > qmax ? qmax : 0);
    default: return qmin;
    }
}

static inline void rq_qrange(int t, int32_t *qmin, int32_t *qmax)
{
    switch (t) {
    case RQ_Q_U8: *qmin = 0; *qmax = 255; break;
    case RQ_Q_I8: *qmin = -128; *qmax = 127; break;
    case RQ_Q_U16: *qmin = 0; *qmax = 65535; break;
    case RQ_Q_I16: *qmin = -32768; *qmax = 32767; break;
    case RQ_Q_U4: *qmin = 0; *qmax = 15; break;
    case RQ_Q_I4: *qmin = -8; *qmax = 7; break;
    default: *qmin = INT32_MIN; *qmax = INT32_MAX; break;
    }
}

/* 1 when the AVX2 / AVX-512 units run quantize variant `variant` (RQ_QV_* flags, NaN code
 * ignored) in SIMD, 0 when it takes the scalar core (rq_quant_core.h, RQ_QV_SIMD_LIST). */
int rq_quant_variant_simd(int variant);

/* Where a run's streamed part ends.  From i (64-byte aligned output) the kernels stream steps
 * of S elements (whole cache lines, a multiple of their group G), then write the rest with
 * ordinary stores and end with one whole group that ends at n (overlapping elements already
 * written, with the same values).  That group must not touch a streamed line: an ordinary store
 * to a line still in a write-combining buffer flushes it half written (per-axis runs of 128
 * uint8 -> float32 at the AVX2 level, 16M elements, Zen 5: 12.8 ms against 2.7 unstreamed).
 * So the streamed part leaves either nothing or at least G elements. */
static inline int64_t rq_stream_end(int64_t i, int64_t n, int64_t S, int64_t G)
{
    int64_t len = (n - i) / S * S;
    const int64_t r = n - i - len;
    if (r && r < G && len >= S) len -= S;
    return i + len;
}

#ifdef __cplusplus
}
#endif
#endif
