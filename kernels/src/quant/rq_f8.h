/* rq_f8.h -- float32 <-> float8 (e4m3fn, e4m3fnuz, e5m2, e5m2fnuz) for QuantizeLinear /
 * DequantizeLinear, instantiated in each ISA unit (RQ_F8_SUFFIX: __scalar, __avx2, __avx512)
 * as plain loops the compiler vectorises with the unit's flags.
 *
 * Quantize (refquant.reference.quantize, float8 target, float32 division):
 *     v = fl32(x / s)  [+ 0.0 when pos0: the IEEE add of a +0 zero point turns -0 into +0]
 *     v = clamp(v, -fmax, fmax)  with saturate=1     (NaN stays NaN; saturate=0: see sat)
 *     y = float8(v), round to nearest even           (one rounding, subnormals included)
 * Encoding of float8(v), from |v|'s float32 bits a and sign bit sg:
 *     |v| below the smallest normal 2^(1-bias): code = RNE(|v| / 2^(1-bias-M)), the count of
 *         subnormal steps (|v|'s significand shifted right by 151 - bias - M - its exponent);
 *         a count of 2^M is exactly the smallest normal's code;
 *     else code = RNE(a - ((127 - bias) << 23)) >> (23 - M) (the clamp keeps it <= fmax's;
 *     with saturate=0 a code past it becomes the overflow code);
 *     y = code | sg << 7, except NaN -> 0x7F | sg << 7 (e4m3fn), 0x7E | sg << 7 (e5m2), 0x80
 *     (fnuz), and the fnuz types' zero is 0x00 whatever the sign (ml_dtypes' conversions, as
 *     the reference takes them).
 * Dequantize: y = fl32(fl32(tab[x] - z) * s), tab the 256 float32 values of the type (NaN codes
 * as ml_dtypes converts them), z the float8 zero point as float32 (+0 when absent). */
#ifndef RQ_F8_SUFFIX
#error "define RQ_F8_SUFFIX"
#endif
#include <stdint.h>
#include <string.h>
#include "rq_quant.h"

/* format constants (M mantissa bits, bias, fnuz, NaN code, largest value): e4m3fn 3, 7, 0,
 * 0x7F, 448; e4m3fnuz 3, 8, 1, 0x80, 240; e5m2 2, 15, 0, 0x7E, 57344; e5m2fnuz 2, 16, 1, 0x80,
 * 57344 */
#define RQ_F8_CAT_(a, b) a##b
#define RQ_F8_CAT(a, b) RQ_F8_CAT_(a, b)

static inline __attribute__((always_inline)) void
rq_f8_q_run(const float *restrict x, uint8_t *restrict y, int64_t n, const float *restrict s, const int pe,
            int pos0, const int sat, const int M, const int bias, const int fnuz, const uint32_t nanc,
            const float fmax)
{
    /* sat: 1 clamp to +-fmax first (saturate=1); 0 the Cast table (saturate=0: a magnitude
     * that rounds past fmax gives the overflow code: NaN 0x7F / 0x80, +-Inf 0x7C for e5m2);
     * 2 the same with ONNX Runtime's edges (e4m3fn |v| in [480, 496) -> +-448, e5m2
     * [61440, 65536) -> NaN 0x7E) */
    const uint32_t ovf = fnuz ? 0x80u : (M == 2 ? 0x7Cu : 0x7Fu);
    const uint32_t ort_lo = M == 3 ? 0x43f00000u : 0x47700000u, ort_hi = M == 3 ? 0x43f80000u : 0x47800000u;
    const uint32_t ort_code = 0x7Eu;   /* 448 for e4m3fn, a NaN for e5m2 */
    uint32_t fmb, mnb;
    const float minnorm = 2.0f / (float)(1u << bias);
    memcpy(&fmb, &fmax, 4);
    memcpy(&mnb, &minnorm, 4);
    const uint32_t ebias = (uint32_t)(127 - bias) << 23, sh = 23u - (uint32_t)M;
    const uint32_t half = (1u << (22 - M)) - 1u;
    const int32_t sub0 = 151 - bias - M;
    const float add0 = pos0 ? 0.0f : -0.0f;         /* v + (-0) is v; v + (+0) turns -0 into +0 */
    /* (every test and the subnormal rounding in integers: with a float add under a select, GCC
     * kept the loop scalar below AVX-512) */
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i] / s[pe ? i : 0] + add0;
        uint32_t u;
        memcpy(&u, &v, 4);
        const uint32_t sg = (u >> 31) << 7;
        uint32_t a = u & 0x7fffffffu;
        if (sat == 1) a = (((int32_t)a > (int32_t)fmb) & ((int32_t)a <= 0x7f800000)) ? fmb : a;   /* |v| <= fmax, NaN kept */
        /* below the smallest normal: |v| / 2^(1-bias-M) rounded to nearest even, from the
         * significand (0 for a float32 zero or subnormal) shifted right by 151-bias-M-E */
        const int32_t E = (int32_t)(a >> 23);
        const uint32_t mant = E ? ((a & 0x7fffffu) | 0x800000u) : 0u;
        int32_t s2 = sub0 - E;
        s2 = s2 > 31 ? 31 : (s2 < 1 ? 1 : s2);     /* (only lanes below the smallest normal,
                                                     * 20..31, keep this result) */
        const uint32_t sub = (mant + ((1u << (s2 - 1)) - 1u) + ((mant >> s2) & 1u)) >> s2;
        const uint32_t e = a - ebias;
        const uint32_t nrm = (e + half + ((e >> sh) & 1u)) >> sh;
        uint32_t code = (int32_t)a < (int32_t)mnb ? sub : nrm;
        if (sat != 1) code = code >= ovf ? ovf : code;   /* (0x80 | sign is 0x80: fnuz's NaN) */
        if (sat == 2 && !fnuz) code = (((int32_t)a >= (int32_t)ort_lo) & ((int32_t)a < (int32_t)ort_hi)) ? ort_code : code;
        code = (fnuz & (code == 0)) ? 0u : (code | sg);
        code = (int32_t)a > 0x7f800000 ? (fnuz ? nanc : (nanc | sg)) : code;
        y[i] = (uint8_t)code;
    }
}

#define RQ_F8_Q_SAT(SAT, ...)                                                                  \
    do {                                                                                       \
        if (pe) rq_f8_q_run(x, y, n, s, 1, pos0, SAT, __VA_ARGS__);                             \
        else rq_f8_q_run(x, y, n, s, 0, pos0, SAT, __VA_ARGS__);                                \
    } while (0)
#define RQ_F8_Q_FMT(...)                                                                       \
    do {                                                                                       \
        if (sat == 1) RQ_F8_Q_SAT(1, __VA_ARGS__);                                             \
        else if (sat == 0) RQ_F8_Q_SAT(0, __VA_ARGS__);                                        \
        else RQ_F8_Q_SAT(2, __VA_ARGS__);                                                      \
    } while (0)

void RQ_F8_CAT(rq_quantize_f8, RQ_F8_SUFFIX)(const float *x, uint8_t *y, const float *s, int64_t n, int fmt,
                                            int pos0, int pe, int sat)
{
    /* n elements, scale s[0] (pe = 0) or s[i] each (pe = 1); constant formats, saturation modes
     * and scale strides: the loop's shifts, masks and tests become immediates */
    switch (fmt) {
    case RQ_F8_E4M3FN: RQ_F8_Q_FMT(3, 7, 0, 0x7F, 448.0f); break;
    case RQ_F8_E4M3FNUZ: RQ_F8_Q_FMT(3, 8, 1, 0x80, 240.0f); break;
    case RQ_F8_E5M2: RQ_F8_Q_FMT(2, 15, 0, 0x7E, 57344.0f); break;
    default: RQ_F8_Q_FMT(2, 16, 1, 0x80, 57344.0f); break;
    }
}
#undef RQ_F8_Q_FMT
#undef RQ_F8_Q_SAT

void RQ_F8_CAT(rq_dequantize_f8, RQ_F8_SUFFIX)(const uint8_t *x, float *y, const float *tab, const float *s,
                                              const float *z, int64_t n, int pe)
{
    const uint8_t *restrict xp = x;
    float *restrict yp = y;
    const float *restrict tp = tab, *restrict sp = s, *restrict zp = z;
    if (pe) {
        for (int64_t i = 0; i < n; i++) yp[i] = (tp[xp[i]] - zp[i]) * sp[i];
    } else {
        const float sd = s[0], zd = z[0];
        for (int64_t i = 0; i < n; i++) yp[i] = (tp[xp[i]] - zd) * sd;
    }
}
