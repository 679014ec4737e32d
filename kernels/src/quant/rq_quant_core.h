/* rq_quant_core.h -- the scalar semantic core of the quantize kernels (static inline).
 *
 * Used by quant_scalar.c for whole runs and by the SIMD files for their remainders, so
 * every ISA computes each element with exactly these steps (see rq_quant.h).
 * Portable C: no ISA flags, no libm (the rounding uses the 2^23 trick, exact for the
 * clamped range |v| <= 131070 under the default round-to-nearest-even mode).
 */
#ifndef RQ_QUANT_CORE_H
#define RQ_QUANT_CORE_H

#include <stdint.h>
#include <string.h>
#include <math.h>   /* fmaf (variants with RQ_QV_FMA) */
#include "rq_quant.h"
#include "../common/rq_mem.h"

#define RQ_INLINE static inline

RQ_INLINE uint32_t rq_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
RQ_INLINE float rq_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* float32 -> float16 bits, round to nearest even (IEEE; same as vcvtps2ph imm 0). */
RQ_INLINE uint16_t rq_f32_to_f16(float f)
{
    uint32_t x = rq_f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u)                       /* Inf / NaN (quiet, payload kept) */
        return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? (0x200u | ((ax >> 13) & 0x3ffu)) : 0u));
    if (ax >= 0x477ff000u)                       /* >= 65520 rounds to Inf */
        return (uint16_t)(sign | 0x7c00u);
    if (ax < 0x38800000u) {                      /* below 2^-14: half subnormal or zero */
        if (ax < 0x33000000u) return sign;       /* < 2^-25 (2^-25 itself ties to 0) */
        float t = rq_bits_f32(ax) * 16777216.0f; /* * 2^24, exact */
        const float big = 8388608.0f;            /* RNE to an integer in [0, 1024] */
        float r = (t + big) - big;
        return (uint16_t)(sign | (uint16_t)r);
    }
    ax += 0x0fffu + ((ax >> 13) & 1u);           /* round to nearest even at bit 13 */
    ax -= 0x38000000u;                           /* rebias 127 -> 15 */
    return (uint16_t)(sign | (ax >> 13));
}

RQ_INLINE float rq_f16_to_f32(uint16_t h)
{
    uint32_t sign = ((uint32_t)h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) {
        float v = (float)m * 5.9604644775390625e-08f;   /* m * 2^-24, exact */
        return rq_bits_f32(rq_f32_bits(v) | sign);
    }
    if (e == 31) return rq_bits_f32(sign | 0x7f800000u | (m << 13));
    return rq_bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

RQ_INLINE float rq_round_f16(float f) { return rq_f16_to_f32(rq_f32_to_f16(f)); }

/* f rounded to bfloat16 (to nearest even on the bits; Inf stays, a NaN stays a NaN), as
 * ml_dtypes converts float32 */
RQ_INLINE float rq_round_bf16(float f)
{
    const uint32_t u = rq_f32_bits(f);
    return f != f ? f : rq_bits_f32((u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u);
}

/* the bfloat16 bits of f, rounded as rq_round_bf16 (NaN: the quiet NaN 0x7FC0 with f's sign,
 * as ml_dtypes converts) */
RQ_INLINE uint16_t rq_f32_to_bf16(float f)
{
    const uint32_t u = rq_f32_bits(f);
    return f != f ? (uint16_t)(((u >> 16) & 0x8000u) | 0x7fc0u) : (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* a plain loop each ISA unit compiles with its own flags */
#define RQ_CVT_BF16_BODY                                                                           \
    for (int64_t i = 0; i < n; i++) d[i] = rq_f32_to_bf16(s[i]);

/* div_f16: 1 float16, 2 bfloat16 division precision */
RQ_INLINE float rq_round_p(float f, int div_f16) { return div_f16 == 2 ? rq_round_bf16(f) : rq_round_f16(f); }

/* Round half to even for |v| < 2^22 (finite): adding 1.5 * 2^23 moves v into [2^23, 2^24),
 * where the float spacing is 1, so the add rounds to an integer (RNE, default mode); the
 * subtraction is exact.  Branch-free, so compilers vectorise the loops that use it. */
RQ_INLINE float rq_rne_small(float v)
{
    const float magic = 12582912.0f;   /* IEEE semantics (no reassociation): both adds stay */
    return (v + magic) - magic;
}

/* One QuantizeLinear element (integer target). */
RQ_INLINE int32_t rq_quantize1(float xf, float s, int32_t zp, int32_t qmin, int32_t qmax, int div_f16)
{
    if (div_f16) xf = rq_round_p(xf, div_f16);
    float v = xf / s;
    if (div_f16) v = rq_round_p(v, div_f16);
    float lo = (float)(qmin - zp), hi = (float)(qmax - zp);
    v = v > lo ? v : lo;    /* NaN -> lo (like maxps(v, lo)) */
    v = v < hi ? v : hi;
    return (int32_t)rq_rne_small(v) + zp;
}

/* Round an integral-range float (|v| < 2^22, finite) by a variant's rule. */
RQ_INLINE float rq_round_rule(float v, int variant)
{
    if (variant & (RQ_QV_RAWAY | RQ_QV_RUP)) {
        float t = (float)(int32_t)v;              /* trunc, exact */
        if (variant & RQ_QV_RUP) {
            if (t > v) t -= 1.0f;                 /* floor */
            return v - t >= 0.5f ? t + 1.0f : t;
        }
        float d = v - t;                          /* exact */
        return d >= 0.5f ? t + 1.0f : (d <= -0.5f ? t - 1.0f : t);
    }
    return rq_rne_small(v);
}

/* p + c rounded to float32 *to odd* (p, c finite float32 with an exact float32 sum error:
 * TwoSum): the RNE sum when exact, else its neighbour with an odd last bit on the exact sum's
 * side.  Rounded once more to float16 (24 >= 11 + 2 bits) it is the float16 sum rounded once. */
RQ_INLINE float rq_add_odd(float p, float c)
{
    const float t = p + c, bb = t - p;
    const float e = (p - (t - bb)) + (c - bb);   /* p + c == t + e exactly */
    uint32_t u = rq_f32_bits(t);
    if (e != 0.0f && t - t == 0.0f && !(u & 1u)) u += ((e > 0.0f) == (t > 0.0f)) ? 1u : (uint32_t)-1;
    return rq_bits_f32(u);
}

/* One QuantizeLinear element under a variant (rq_quant.h), float32 division precision. */
RQ_INLINE int32_t rq_quantize1v(float xf, float s, int32_t zp, int32_t qmin, int32_t qmax, int variant)
{
    const int p16 = (variant & RQ_QV_P16) != 0;
    const float r = (variant & RQ_QV_RECIP) ? (p16 ? rq_round_f16(1.0f / s) : 1.0f / s) : 0.0f;
    float w, lo, hi;
    int32_t add;
    if (p16) xf = rq_round_f16(xf);
    if (variant & RQ_QV_ZPB) {
        if (p16) {
            /* float16: fma(x, r, zp) rounded once (x * r exact in float32, the sum to odd,
             * then to float16), or fl16(fl16(v) + fl16(zp)) */
            w = (variant & RQ_QV_FMA) ? rq_round_f16(rq_add_odd(xf * r, (float)zp))
                : rq_round_f16(rq_round_f16((variant & RQ_QV_RECIP) ? xf * r : xf / s) + rq_round_f16((float)zp));
        } else {
            w = (variant & RQ_QV_FMA) ? fmaf(xf, r, (float)zp)
                                      : ((variant & RQ_QV_RECIP) ? xf * r : xf / s) + (float)zp;
        }
        lo = (float)qmin; hi = (float)qmax; add = 0;
    } else {
        w = (variant & RQ_QV_RECIP) ? xf * r : xf / s;
        if (p16) w = rq_round_f16(w);
        lo = (float)(qmin - zp); hi = (float)(qmax - zp); add = zp;
    }
    if (variant & RQ_QV_WRAP) {
        /* round unclamped (|w| >= 2^23 is already integral), INT32_MIN when not an int32,
         * the zero point added with int32 wraparound, then clamped */
        const float a = w < 0 ? -w : w;
        const float r = a < 8388608.0f ? rq_round_rule(w, variant) : w;
        const int32_t i = (r >= -2147483648.0f && r < 2147483648.0f) ? (int32_t)r : INT32_MIN;
        const int32_t q = (int32_t)((uint32_t)i + (uint32_t)add);
        if (w != w && !(variant & RQ_QV_NANWRAP)) return rq_qv_nan(variant, zp, qmin, qmax);
        return q < qmin ? qmin : (q > qmax ? qmax : q);
    }
    if (w != w) return rq_qv_nan(variant, zp, qmin, qmax);
    w = w > lo ? w : lo;
    w = w < hi ? w : hi;
    return (int32_t)rq_round_rule(w, variant) + add;
}

RQ_INLINE float rq_load_xf(const void *x, int64_t i, int in_type)
{
    return in_type == RQ_F_F16 ? rq_f16_to_f32(rq_ld_u16((const char *)x + 2 * i))
                              : rq_ld_f32((const char *)x + 4 * i);
}

RQ_INLINE void rq_store_q(void *y, int64_t i, int32_t q, int out_type)
{
    switch (out_type) {
    case RQ_Q_U8: case RQ_Q_I8: ((uint8_t *)y)[i] = (uint8_t)q; break;
    case RQ_Q_U16: case RQ_Q_I16: rq_st_u16((char *)y + 2 * i, (uint16_t)q); break;
    default: ((uint8_t *)y)[i] = (uint8_t)(q & 0xF); break;     /* 4-bit: low nibble */
    }
}

RQ_INLINE int32_t rq_load_q(const void *x, int64_t i, int in_type)
{
    switch (in_type) {
    case RQ_Q_U8: return ((const uint8_t *)x)[i];
    case RQ_Q_I8: return ((const int8_t *)x)[i];
    case RQ_Q_U16: return rq_ld_u16((const char *)x + 2 * i);
    case RQ_Q_I16: return rq_ld_i16((const char *)x + 2 * i);
    case RQ_Q_U4: return ((const uint8_t *)x)[i] & 0xF;
    case RQ_Q_I4: return (int32_t)((((const uint8_t *)x)[i] & 0xF) ^ 8) - 8;   /* sign-extend nibble */
    default: return rq_ld_i32((const char *)x + 4 * i);
    }
}

/* One DequantizeLinear element; returns the float32 value of the result (f16 results are
 * f16-representable) -- the caller stores f32 or f16 bits. */
RQ_INLINE float rq_dequantize1(int32_t q, int32_t zp, float s, int out_f16)
{
    float d = (float)(q - zp);
    if (out_f16) return rq_round_f16(rq_round_f16(d) * s);
    return d * s;
}


/* The vendor-formula variants the SIMD units compile in (one list for AVX2 and AVX-512, also
 * read by rq_quant_variant_simd): X(V, ...) for each; the NaN code (bits RQ_QV_NAN_SHIFT) is
 * chosen at run time.  Rarer combinations take the scalar core (and the glue names the kernel
 * "__scalar").  RQ_QV_WRAP | RQ_QV_NANWRAP | RQ_QV_RECIP (tflite-optimized's blocks of 8) ran
 * the scalar default until session 19: 262144 elements 0.70 ms against 0.03. */
#define RQ_QV_SIMD_LIST(X, ...)                                                                  \
    X(RQ_QV_WRAP | RQ_QV_NANWRAP, __VA_ARGS__)                                                   \
    X(RQ_QV_WRAP | RQ_QV_NANWRAP | RQ_QV_RAWAY, __VA_ARGS__)                                     \
    X(RQ_QV_WRAP | RQ_QV_NANWRAP | RQ_QV_RECIP, __VA_ARGS__)                                     \
    X(0, __VA_ARGS__)                                                                            \
    X(RQ_QV_RECIP, __VA_ARGS__)                                                                  \
    X(RQ_QV_RECIP | RQ_QV_ZPB, __VA_ARGS__)                                                      \
    X(RQ_QV_RECIP | RQ_QV_ZPB | RQ_QV_FMA, __VA_ARGS__)                                          \
    X(RQ_QV_ZPB, __VA_ARGS__)                                                                    \
    X(RQ_QV_RAWAY, __VA_ARGS__)                                                                  \
    X(RQ_QV_RUP, __VA_ARGS__)                                                                    \
    X(RQ_QV_RECIP | RQ_QV_P16, __VA_ARGS__)                                                      \
    X(RQ_QV_WRAP | RQ_QV_NANWRAP | RQ_QV_P16, __VA_ARGS__)                                       \
    X(RQ_QV_WRAP | RQ_QV_NANWRAP | RQ_QV_RAWAY | RQ_QV_P16, __VA_ARGS__)                         \
    X(RQ_QV_WRAP | RQ_QV_NANWRAP | RQ_QV_RECIP | RQ_QV_P16, __VA_ARGS__)                         \
    X(RQ_QV_RECIP | RQ_QV_ZPB | RQ_QV_P16, __VA_ARGS__)                                          \
    X(RQ_QV_RECIP | RQ_QV_ZPB | RQ_QV_FMA | RQ_QV_P16, __VA_ARGS__)
#define RQ_QV_CASE_(V, RUN, a, F16, PS) case (V): RUN(a, F16, PS, (V)); break;
/* RUN(a, F16, PS, V) runs variant V with the flags as constants */
#define RQ_QV_SWITCH(RUN, a, F16, PS)                                                            \
    switch ((a)->variant & ~(3 << RQ_QV_NAN_SHIFT)) {                                            \
    RQ_QV_SIMD_LIST(RQ_QV_CASE_, RUN, a, F16, PS)                                                \
    default: rq_quantize_run__scalar(a); break;                                                  \
    }

/* The scale-then-subtract dequantize runs (rq_dqrun_args.sts) by input type and per-element
 * parameters: RUN(a, in_type, ps) is the ISA's inline kernel (8/16-bit x only). */
#define RQ_DQ_STS_SWITCH(RUN, a, PS)                                                             \
    switch ((a)->in_type) {                                                                      \
    case RQ_Q_U8: if (PS) RUN(a, RQ_Q_U8, 1); else RUN(a, RQ_Q_U8, 0); break;                    \
    case RQ_Q_I8: if (PS) RUN(a, RQ_Q_I8, 1); else RUN(a, RQ_Q_I8, 0); break;                    \
    case RQ_Q_U16: if (PS) RUN(a, RQ_Q_U16, 1); else RUN(a, RQ_Q_U16, 0); break;                 \
    case RQ_Q_I16: if (PS) RUN(a, RQ_Q_I16, 1); else RUN(a, RQ_Q_I16, 0); break;                 \
    default: break;                                                                              \
    }

#endif
