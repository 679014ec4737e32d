/* rq_f8.h -- float32 <-> float8 (e4m3fn, e4m3fnuz, e5m2, e5m2fnuz), float6 (e2m3fn, e3m2fn) and
 * float4 (e2m1fn) for QuantizeLinear / DequantizeLinear, instantiated in each ISA unit
 * (RQ_F8_SUFFIX: __scalar, __avx2, __avx512) as plain loops the compiler vectorises with the
 * unit's flags.
 *
 * Quantize (refquant.reference.quantize, low-float target, float32 division):
 *     v = fl32(fl32(x / s) + z)  z the zero point as float32 where the profile adds it (an IEEE
 *                                add: a +0 zero point turns -0 into +0), -0.0 where it does not
 *                                (v + (-0) is v, NaN's sign included); never NaN (NaN + NaN
 *                                leaves the sign open: the reference keeps v's, the glue
 *                                sends a NaN zero point there)
 *     v = clamp(v, -fmax, fmax)  with saturate=1, always for float6/float4 (NaN stays NaN;
 *                                float8 saturate=0: see sat)
 *     y = low_float(v), round to nearest even        (one rounding, subnormals included)
 * Encoding of low_float(v) (B bits: 8, 6 or 4), from |v|'s float32 bits a and sign bit sg:
 *     |v| below the smallest normal 2^(1-bias): code = RNE(|v| / 2^(1-bias-M)), the count of
 *         subnormal steps (|v|'s significand shifted right by 151 - bias - M - its exponent);
 *         a count of 2^M is exactly the smallest normal's code;
 *     else code = RNE(a - ((127 - bias) << 23)) >> (23 - M) (the clamp keeps it <= fmax's;
 *     with saturate=0 a code past it becomes the overflow code);
 *     y = code | sg << (B-1), except NaN -> 0x7F | sg << 7 (e4m3fn), 0x7E | sg << 7 (e5m2), 0x80
 *     (fnuz), the zero of the opposite sign (float6 / float4: no NaN code), and the fnuz types'
 *     zero is 0x00 whatever the sign (ml_dtypes' conversions, as the reference takes them).
 * Dequantize: y = fl32(fl32(tab[x] - z) * s), tab the 256 float32 values of the type (NaN codes,
 * and float6 / float4 bytes with high bits set, as ml_dtypes converts them), z the zero point as
 * float32 (+0 when absent). */
#ifndef RQ_F8_SUFFIX
#error "define RQ_F8_SUFFIX"
#endif
#include <stdint.h>
#include <string.h>
#include "rq_quant.h"

/* format constants (M mantissa bits, bias, fnuz, NaN code, largest value, bits): e4m3fn 3, 7,
 * 0, 0x7F, 448, 8; e4m3fnuz 3, 8, 1, 0x80, 240, 8; e5m2 2, 15, 0, 0x7E, 57344, 8; e5m2fnuz 2,
 * 16, 1, 0x80, 57344, 8; e2m1fn 1, 1, 0, -, 6, 4; e2m3fn 3, 1, 0, -, 7.5, 6; e3m2fn 2, 3, 0, -,
 * 28, 6 */
#define RQ_F8_CAT_(a, b) a##b
#define RQ_F8_CAT(a, b) RQ_F8_CAT_(a, b)

static inline __attribute__((always_inline)) void
rq_f8_q_run(const float *restrict x, uint8_t *restrict y, int64_t n, const float *restrict s,
            const float *restrict z, const int pe, const int pez, const int sat, const int M,
            const int bias, const int fnuz, const uint32_t nanc, const float fmax, const int bits)
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
    /* (every test and the subnormal rounding in integers: with a float add under a select, GCC
     * kept the loop scalar below AVX-512) */
    for (int64_t i = 0; i < n; i++) {
        /* z: the zero point as float32 where the profile adds it (IEEE: v + (+0) turns -0 into
         * +0), -0.0 where it does not (v + (-0) is v) */
        const float v = x[i] / s[pe ? i : 0] + z[pez ? i : 0];   /* (z is never NaN) */
        uint32_t u;
        memcpy(&u, &v, 4);
        const uint32_t sg = (u >> 31) << (bits - 1);
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
        /* NaN: the float8 NaN code with its sign (fnuz: 0x80); float4 / float6 have none and
         * take ml_dtypes' conversion: a zero with the opposite sign */
        code = (int32_t)a > 0x7f800000 ? (bits < 8 ? sg ^ (1u << (bits - 1)) : fnuz ? nanc : (nanc | sg)) : code;
        y[i] = (uint8_t)code;
    }
}

#define RQ_F8_Q_SAT(SAT, ...)                                                                  \
    do {                                                                                       \
        if (pe == 3) rq_f8_q_run(x, y, n, s, z, 1, 1, SAT, __VA_ARGS__);                         \
        else if (pe) rq_f8_q_run(x, y, n, s, z, 1, 0, SAT, __VA_ARGS__);                         \
        else rq_f8_q_run(x, y, n, s, z, 0, 0, SAT, __VA_ARGS__);                                 \
    } while (0)
#define RQ_F8_Q_FMT(...)                                                                       \
    do {                                                                                       \
        if (sat == 1) RQ_F8_Q_SAT(1, __VA_ARGS__);                                             \
        else if (sat == 0) RQ_F8_Q_SAT(0, __VA_ARGS__);                                        \
        else RQ_F8_Q_SAT(2, __VA_ARGS__);                                                      \
    } while (0)

static void RQ_F8_CAT(rq_f8_q_body, RQ_F8_SUFFIX)(const float *x, uint8_t *y, const float *s, const float *z,
                                                  int64_t n, int fmt, int pe, int sat)
{
    /* n elements; pe bit 0: a scale s[i] per element (else s[0]), bit 1: a zero point z[i] per
     * element (else z[0]; set only with bit 0); constant
     * formats, saturation modes
     * and scale strides: the loop's shifts, masks and tests become immediates */
    switch (fmt) {
    case RQ_F8_E4M3FN: RQ_F8_Q_FMT(3, 7, 0, 0x7F, 448.0f, 8); break;
    case RQ_F8_E4M3FNUZ: RQ_F8_Q_FMT(3, 8, 1, 0x80, 240.0f, 8); break;
    case RQ_F8_E5M2: RQ_F8_Q_FMT(2, 15, 0, 0x7E, 57344.0f, 8); break;
    case RQ_F8_E5M2FNUZ: RQ_F8_Q_FMT(2, 16, 1, 0x80, 57344.0f, 8); break;
    /* float4 / float6: no Inf or NaN encoding, always saturated (the caller passes sat 1) */
    case RQ_F4_E2M1FN: RQ_F8_Q_SAT(1, 1, 1, 0, 0, 6.0f, 4); break;
    case RQ_F6_E2M3FN: RQ_F8_Q_SAT(1, 3, 1, 0, 0, 7.5f, 6); break;
    default: RQ_F8_Q_SAT(1, 2, 3, 0, 0, 28.0f, 6); break;   /* RQ_F6_E3M2FN */
    }
}
#undef RQ_F8_Q_FMT
#undef RQ_F8_Q_SAT

/* Whole vectors of RQ_F8_PAD elements, then the last n mod RQ_F8_PAD padded to one more (x 0,
 * scale 1, zero point -0 in the padding; its codes are dropped): the compiler's scalar
 * remainder loop costs 3-8 ns an element, which made short runs (blocks of 16 or 24 along the
 * last axis) 5-10x slower per element than long ones. */
#define RQ_F8_PAD 32
void RQ_F8_CAT(rq_quantize_f8, RQ_F8_SUFFIX)(const float *x, uint8_t *y, const float *s, const float *z,
                                            int64_t n, int fmt, int pe, int sat)
{
    const int64_t m = n - n % RQ_F8_PAD;
    if (m) RQ_F8_CAT(rq_f8_q_body, RQ_F8_SUFFIX)(x, y, s, z, m, fmt, pe, sat);
    if (m == n) return;
    const int64_t r = n - m;
    float xb[RQ_F8_PAD], sb[RQ_F8_PAD], zb[RQ_F8_PAD];
    uint8_t yb[RQ_F8_PAD];
    for (int64_t i = 0; i < RQ_F8_PAD; i++) {
        xb[i] = i < r ? x[m + i] : 0.0f;
        if (pe) sb[i] = i < r ? s[m + i] : 1.0f;
        if (pe & 2) zb[i] = i < r ? z[m + i] : -0.0f;
    }
    RQ_F8_CAT(rq_f8_q_body, RQ_F8_SUFFIX)(xb, yb, pe ? sb : s, (pe & 2) ? zb : z, RQ_F8_PAD, fmt, pe, sat);
    memcpy(y + m, yb, (size_t)r);
}
#undef RQ_F8_PAD

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>
/* tab[idx] for 16 indices in 0..255 from the table held in 16 registers: eight two-register
 * permutes (index bits 0-4) and a blend tree on bits 5, 6, 7.  About 0.12 ns an element against
 * 0.25 for the scalar loads (a hardware gather: 0.38) on Zen 5. */
static inline __attribute__((always_inline)) __m512 rq_f8_lut(const __m512 *t, __m512i idx)
{
    __m512 r[8];
    for (int k = 0; k < 8; k++) r[k] = _mm512_permutex2var_ps(t[2 * k], idx, t[2 * k + 1]);
    const __mmask16 b5 = _mm512_test_epi32_mask(idx, _mm512_set1_epi32(32));
    const __mmask16 b6 = _mm512_test_epi32_mask(idx, _mm512_set1_epi32(64));
    const __mmask16 b7 = _mm512_test_epi32_mask(idx, _mm512_set1_epi32(128));
    const __m512 a0 = _mm512_mask_blend_ps(b5, r[0], r[1]), a1 = _mm512_mask_blend_ps(b5, r[2], r[3]);
    const __m512 a2 = _mm512_mask_blend_ps(b5, r[4], r[5]), a3 = _mm512_mask_blend_ps(b5, r[6], r[7]);
    return _mm512_mask_blend_ps(b7, _mm512_mask_blend_ps(b6, a0, a1), _mm512_mask_blend_ps(b6, a2, a3));
}
#endif

void RQ_F8_CAT(rq_dequantize_f8, RQ_F8_SUFFIX)(const uint8_t *x, float *y, const float *tab, const float *s,
                                              const float *z, int64_t n, int pe)
{
    const uint8_t *restrict xp = x;
    float *restrict yp = y;
    const float *restrict tp = tab, *restrict sp = s, *restrict zp = z;
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    /* the same fl32(fl32(tab[x] - z) * s), 16 lanes at a time; the last n mod 16 masked */
    __m512 t[16];
    for (int k = 0; k < 16; k++) t[k] = _mm512_loadu_ps(tp + 16 * k);
    int64_t i = 0;
    if (pe & 2) {
        for (; i + 16 <= n; i += 16) {
            const __m512 v = rq_f8_lut(t, _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(xp + i))));
            const __m512 d = _mm512_sub_ps(v, _mm512_loadu_ps(zp + i));
            _mm512_storeu_ps(yp + i, _mm512_mul_ps(d, _mm512_loadu_ps(sp + i)));
        }
    } else if (pe) {
        const __m512 zd = _mm512_set1_ps(zp[0]);
        for (; i + 16 <= n; i += 16) {
            const __m512 v = rq_f8_lut(t, _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(xp + i))));
            _mm512_storeu_ps(yp + i, _mm512_mul_ps(_mm512_sub_ps(v, zd), _mm512_loadu_ps(sp + i)));
        }
    } else {
        const __m512 sd = _mm512_set1_ps(sp[0]), zd = _mm512_set1_ps(zp[0]);
        for (; i + 16 <= n; i += 16) {
            const __m512 v = rq_f8_lut(t, _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(xp + i))));
            _mm512_storeu_ps(yp + i, _mm512_mul_ps(_mm512_sub_ps(v, zd), sd));
        }
    }
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        const __m512 v = rq_f8_lut(t, _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, xp + i)));
        const __m512 sv = pe ? _mm512_maskz_loadu_ps(m, sp + i) : _mm512_set1_ps(sp[0]);
        const __m512 zv = (pe & 2) ? _mm512_maskz_loadu_ps(m, zp + i) : _mm512_set1_ps(zp[0]);
        _mm512_mask_storeu_ps(yp + i, m, _mm512_mul_ps(_mm512_sub_ps(v, zv), sv));
    }
    return;
#endif
    if (pe & 2) {
        for (int64_t i = 0; i < n; i++) yp[i] = (tp[xp[i]] - zp[i]) * sp[i];
    } else if (pe) {
        const float zd = z[0];
        for (int64_t i = 0; i < n; i++) yp[i] = (tp[xp[i]] - zd) * sp[i];
    } else {
        const float sd = s[0], zd = z[0];
        for (int64_t i = 0; i < n; i++) yp[i] = (tp[xp[i]] - zd) * sd;
    }
}
