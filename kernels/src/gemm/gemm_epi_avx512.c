/* gemm_epi_avx512.c -- AVX-512 epilogue: raw int32 sums -> corrected int32 or requantized u8/s8.
 * Lane-wise the same operations as rq_epi_rows__scalar (gemm.c): uint32 wrap corrections, bias,
 * cvtdq2ps (RNE), float32 multiply, clamp to [qmin-zp, qmax-zp], cvtps2dq (RNE, MXCSR default),
 * + zp. */
#include "rq_gemm.h"
#include <immintrin.h>

static inline __m512i epi_acc16(const rq_epi *e, int i, int j, __m512i raw, __mmask16 m) {
    __m512i a = raw;
    if (e->colfix) a = _mm512_sub_epi32(a, _mm512_maskz_loadu_epi32(m, e->colfix + j));
    if (e->rowfix) a = _mm512_sub_epi32(a, _mm512_set1_epi32(e->rowfix[i]));
    if (e->za_row)
        a = _mm512_sub_epi32(a, _mm512_mullo_epi32(_mm512_set1_epi32(e->za_row[i]),
                                                   _mm512_maskz_loadu_epi32(m, e->colterm + j)));
    if (e->zb_col)
        a = _mm512_sub_epi32(a, _mm512_mullo_epi32(_mm512_set1_epi32(e->rsum[i]),
                                                   _mm512_maskz_loadu_epi32(m, e->zb_col + j)));
    if (e->bias) {
        if (e->bias_cs == 1)
            a = _mm512_add_epi32(a, _mm512_maskz_loadu_epi32(m, e->bias + i * e->bias_rs + j));
        else if (e->bias_cs == 0)
            a = _mm512_add_epi32(a, _mm512_set1_epi32(e->bias[i * e->bias_rs]));
        else {
            int32_t t[16];
            for (int c = 0; c < 16; c++)
                t[c] = (m >> c) & 1 ? e->bias[i * e->bias_rs + (j + c) * e->bias_cs] : 0;
            a = _mm512_add_epi32(a, _mm512_loadu_si512(t));
        }
    }
    return a;
}

/* oneDNN's order (rq_gemm.h, rq_gemm_args.od): the scales one by one, zero point before
 * rounding.  The constants are read into locals once (od_load): the 8-bit stores may alias the
 * struct, so fields read in the loop are reloaded after every store. */
typedef struct { __m512 s1, s3, zp, lo, hi; int fb2; } od_consts;

static inline od_consts od_load(const rq_epi *e) {
    od_consts k = {_mm512_set1_ps(e->od_s1), _mm512_set1_ps(e->od_s3), _mm512_set1_ps((float)e->y_zp),
                   _mm512_set1_ps((float)e->qmin), _mm512_set1_ps((float)e->qmax), e->fbias2 != NULL};
    return k;
}

static inline __m128i od16(const od_consts *k, __m512 af, __m512 mm, __m512 fb2) {
    __m512 t = _mm512_mul_ps(af, k->s1);
    t = _mm512_mul_ps(t, mm);
    if (k->fb2) t = _mm512_add_ps(t, fb2);
    t = _mm512_mul_ps(t, k->s3);
    t = _mm512_add_ps(t, k->zp);
    t = _mm512_min_ps(_mm512_max_ps(t, k->lo), k->hi);
    return _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(t));   /* RNE; in range, truncation exact */
}

static inline __m128i epi_od16(const rq_epi *e, __m512 af, __m512 mm, __m512 fb2) {
    const od_consts k = od_load(e);
    return od16(&k, af, mm, fb2);
}

/* The requantizing fast path (u8 / s8 output, float multiplier, not oneDNN's order).  The
 * integer corrections are folded (wraparound arithmetic: the same bits as applying them one by
 * one): the row-invariant column terms (-colfix[j], + bias[j] of a bias broadcast over rows) into
 * one table per 256 columns, the row terms (-rowfix[i], + bias[i]) into one offset per row.  The
 * struct's fields are held in locals (the uint8 stores may alias anything), full vectors run
 * unmasked, and the caller specialises HT (a column table), B2 (a 2-D int32 bias, added
 * separately) and PC (a multiplier per column).  Measured on the 3x3 conv's epilogue (3136 x 64,
 * colfix and bias per column): 29 -> 18 us. */
static inline __attribute__((always_inline)) void q8_rows(
    const rq_epi *e, int i0, int mi, int j0, int nj, const int32_t *raw, ptrdiff_t ldr,
    const int HT, const int B2, const int PC, const int OD) {
    uint8_t *const C8 = (uint8_t *)e->C;
    const ptrdiff_t c_rs = e->c_rs, bias_rs = e->bias_rs;
    const int32_t *const colfix = e->colfix, *const rowfix = e->rowfix, *const bias = e->bias;
    const int bcol = bias && e->bias_cs == 1;            /* bias indexed by column */
    const float *const fbias = e->fbias, *const mult = e->mult;
    const int fcol = fbias && e->bias_cs == 1, mult_rows = e->mult_rows, ffma = e->fbias_fma;
    const __m512 frcp = _mm512_set1_ps(e->fbias_rcp);
    const float *const fbias2 = OD ? e->fbias2 : NULL;   /* oneDNN: a float bias after the scales */
    const int f2col = fbias2 && e->bias_cs == 1;
    const __m512 lo = _mm512_set1_ps((float)(e->qmin - e->y_zp));
    const __m512 hi = _mm512_set1_ps((float)(e->qmax - e->y_zp));
    const __m512i zp = _mm512_set1_epi32(e->y_zp);
    const __m512i zp16 = _mm512_set1_epi16((short)e->y_zp);
    const int u8 = e->out_type == RQ_OUT_U8;
    /* after two in-lane packs, lane L holds lane L of each of the four vectors in turn */
    const __m512i lane_fix = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    const __m512 m1 = _mm512_set1_ps(mult ? mult[0] : 0.0f);
    /* OD: oneDNN's order: fl32(fl32(fl32(fl32(af * s1) * m) [+ fbias2]) * s3) + zp, clamped to
     * [qmin, qmax] before the conversion (epi_od16's steps), the zero point in float */
    const __m512 od_s1 = _mm512_set1_ps(e->od_s1), od_s3 = _mm512_set1_ps(e->od_s3);
    const __m512 od_zp = _mm512_set1_ps((float)e->y_zp);
    const __m512 od_lo = _mm512_set1_ps((float)e->qmin), od_hi = _mm512_set1_ps((float)e->qmax);
    int32_t tab[256] __attribute__((aligned(64)));
    for (int cs = 0; cs < nj; cs += 256) {
        const int cn = nj - cs < 256 ? nj - cs : 256, nfull = cn & ~15, jc = j0 + cs;
        if (HT)   /* -colfix[j] (+ bias[j]), int32 wraparound */
            for (int c = 0; c < cn; c += 16) {
                const __mmask16 m = cn - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (cn - c)) - 1u);
                __m512i t = _mm512_setzero_si512();
                if (colfix) t = _mm512_sub_epi32(t, _mm512_maskz_loadu_epi32(m, colfix + jc + c));
                if (bcol && !B2) t = _mm512_add_epi32(t, _mm512_maskz_loadu_epi32(m, bias + jc + c));
                _mm512_store_si512((void *)(tab + c), t);
            }
        for (int r = 0; r < mi; r++) {
            const int i = i0 + r;
            const int32_t *rr = raw + r * ldr + cs;
            uint8_t *dst = C8 + i * c_rs + jc;
            uint32_t o = 0u - (uint32_t)(rowfix ? rowfix[i] : 0);
            if (bias && !bcol) o += (uint32_t)bias[i * bias_rs];
            const __m512i off = _mm512_set1_epi32((int32_t)o);
            const int32_t *bp = B2 ? bias + i * bias_rs + jc : NULL;
            const float *fp = fbias ? fbias + i * bias_rs + (fcol ? jc : 0) : NULL;
            const __m512 fb = (fp && !fcol) ? _mm512_set1_ps(fp[0]) : _mm512_setzero_ps();
            const float *f2p = fbias2 ? fbias2 + i * bias_rs + (f2col ? jc : 0) : NULL;
            const __m512 f2b = (f2p && !f2col) ? _mm512_set1_ps(f2p[0]) : _mm512_setzero_ps();
            const __m512 mrow = (mult_rows && mult) ? _mm512_set1_ps(mult[i]) : m1;
            const float *mc = PC ? mult + jc : NULL;
#define RQ_Q8_STEP(LD, LDF, ST)                                                                   \
            do {                                                                                  \
                __m512i a = _mm512_add_epi32(LD(rr + c), off);                                    \
                if (HT) a = _mm512_add_epi32(a, LD(tab + c));                                     \
                if (B2) a = _mm512_add_epi32(a, LD(bp + c));                                      \
                __m512 af = _mm512_cvtepi32_ps(a);                                                \
                if (fp) {                                                                         \
                    const __m512 fbv = fcol ? LDF(fp + c) : fb;                                   \
                    af = ffma ? _mm512_fmadd_ps(fbv, frcp, af) : _mm512_add_ps(af, fbv);          \
                }                                                                                 \
                __m512 v;                                                                         \
                if (OD) {                                                                         \
                    v = _mm512_mul_ps(_mm512_mul_ps(af, od_s1), PC ? LDF(mc + c) : mrow);        \
                    if (f2p) v = _mm512_add_ps(v, f2col ? LDF(f2p + c) : f2b);                    \
                    v = _mm512_add_ps(_mm512_mul_ps(v, od_s3), od_zp);                            \
                    v = _mm512_min_ps(_mm512_max_ps(v, od_lo), od_hi);                            \
                    ST(dst + c, _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v)));                     \
                } else {                                                                          \
                    v = _mm512_mul_ps(af, PC ? LDF(mc + c) : mrow);                               \
                    v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);                                  \
                    ST(dst + c, _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(v), zp))); \
                }                                                                                 \
            } while (0)
#define RQ_LD(p) _mm512_loadu_si512((const void *)(p))
#define RQ_LDF(p) _mm512_loadu_ps((p))
#define RQ_ST(p, b) _mm_storeu_si128((__m128i *)(p), (b))
#define RQ_MLD(p) _mm512_maskz_loadu_epi32(m, (p))
#define RQ_MLDF(p) _mm512_maskz_loadu_ps(m, (p))
#define RQ_MST(p, b) _mm_mask_storeu_epi8((p), m, (b))
            int c = 0;
            /* four vectors at a time: the clamped, rounded values (in [qmin - zp, qmax - zp]) are
             * packed to int16 (exact), the zero point added there (exact), packed to 8 bits
             * (exact) and the lanes put back in order with one vpermd: fewer shuffle-port uops
             * than four vpmovdb (measured on the 1x1 conv's epilogue, 64 x 3136: see
             * docs/performance.md) */
            for (; c + 64 <= nfull; c += 64) {
                __m512i r[4];
                for (int q = 0; q < 4; q++) {
                    const int cc = c + 16 * q;
                    __m512i a = _mm512_add_epi32(RQ_LD(rr + cc), off);
                    if (HT) a = _mm512_add_epi32(a, RQ_LD(tab + cc));
                    if (B2) a = _mm512_add_epi32(a, RQ_LD(bp + cc));
                    __m512 af = _mm512_cvtepi32_ps(a);
                    if (fp) {
                        const __m512 fbv = fcol ? RQ_LDF(fp + cc) : fb;
                        af = ffma ? _mm512_fmadd_ps(fbv, frcp, af) : _mm512_add_ps(af, fbv);
                    }
                    __m512 v;
                    if (OD) {   /* the codes themselves, in [qmin, qmax] */
                        v = _mm512_mul_ps(_mm512_mul_ps(af, od_s1), PC ? RQ_LDF(mc + cc) : mrow);
                        if (f2p) v = _mm512_add_ps(v, f2col ? RQ_LDF(f2p + cc) : f2b);
                        v = _mm512_add_ps(_mm512_mul_ps(v, od_s3), od_zp);
                        v = _mm512_min_ps(_mm512_max_ps(v, od_lo), od_hi);
                    } else {
                        v = _mm512_mul_ps(af, PC ? RQ_LDF(mc + cc) : mrow);
                        v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
                    }
                    r[q] = _mm512_cvtps_epi32(v);
                }
                const __m512i w0 = OD ? _mm512_packs_epi32(r[0], r[1]) : _mm512_add_epi16(_mm512_packs_epi32(r[0], r[1]), zp16);
                const __m512i w1 = OD ? _mm512_packs_epi32(r[2], r[3]) : _mm512_add_epi16(_mm512_packs_epi32(r[2], r[3]), zp16);
                const __m512i b = u8 ? _mm512_packus_epi16(w0, w1) : _mm512_packs_epi16(w0, w1);
                _mm512_storeu_si512((void *)(dst + c), _mm512_permutexvar_epi32(lane_fix, b));
            }
            for (; c < nfull; c += 16) RQ_Q8_STEP(RQ_LD, RQ_LDF, RQ_ST);
            if (c < cn) {
                const __mmask16 m = (__mmask16)((1u << (cn - c)) - 1u);
                RQ_Q8_STEP(RQ_MLD, RQ_MLDF, RQ_MST);
            }
#undef RQ_Q8_STEP
#undef RQ_LD
#undef RQ_LDF
#undef RQ_ST
#undef RQ_MLD
#undef RQ_MLDF
#undef RQ_MST
        }
    }
}


/* 16 (n valid, mask m) 8-bit results of row i from column j: C[i, j + q * c_cs] */
static inline void store_q8x16(const rq_epi *e, int i, int j, int n, __mmask16 m, __m128i b) {
    uint8_t *dst = (uint8_t *)e->C + i * e->c_rs;
    if (e->c_cs == 1) _mm_mask_storeu_epi8(dst + j, m, b);
    else {
        uint8_t t[16]; _mm_storeu_si128((__m128i *)t, b);
        for (int q = 0; q < n; q++) dst[(j + q) * e->c_cs] = t[q];
    }
}

/* Fixed-point requantization of 8 accumulators in int64 lanes: exactly mbqm() of gemm.c (its
 * int64 arithmetic, lane by lane), then + y_zp and the clamp.  x: the accumulators
 * sign-extended; xs: (x << left) wrapped to int32, sign-extended; qm, sh: per lane, sign-extended.
 * lo / hi: qmin - y_zp, qmax - y_zp. */
static inline __m512i fx8(__m512i x, __m512i xs, __m512i qm, __m512i sh, int mode, __m512i lo, __m512i hi) {
    const __m512i one = _mm512_set1_epi64(1), zero = _mm512_setzero_si512();
    __m512i r;
    if (mode == 3) {   /* (x*qm + 2^(total-1)) >> total, total = 31 - shift, wrapped to int32 */
        const __m512i total = _mm512_sub_epi64(_mm512_set1_epi64(31), sh);
        r = _mm512_add_epi64(_mm512_mul_epi32(x, qm), _mm512_sllv_epi64(one, _mm512_sub_epi64(total, one)));
        r = _mm512_srav_epi64(r, total);
        r = _mm512_srai_epi64(_mm512_slli_epi64(r, 32), 32);
    } else {
        const __m512i right = _mm512_max_epi64(_mm512_sub_epi64(zero, sh), zero);
        const __m512i ab = _mm512_mul_epi32(xs, qm);
        if (mode == 1) {   /* SRDHM (nudge, truncating division by 2^31, saturation), RDBPOT */
            const __mmask8 neg = _mm512_cmplt_epi64_mask(ab, zero);
            const __m512i num = _mm512_add_epi64(ab, _mm512_mask_blend_epi64(neg, _mm512_set1_epi64((int64_t)1 << 30),
                                                                             _mm512_set1_epi64(1 - ((int64_t)1 << 30))));
            const __mmask8 nn = _mm512_cmplt_epi64_mask(num, zero);
            __m512i q = _mm512_srai_epi64(_mm512_mask_add_epi64(num, nn, num, _mm512_set1_epi64(((int64_t)1 << 31) - 1)), 31);
            q = _mm512_min_epi64(q, _mm512_set1_epi64(INT32_MAX));   /* only INT32_MIN * INT32_MIN reaches 2^31 */
            const __m512i mask = _mm512_sub_epi64(_mm512_sllv_epi64(one, right), one);
            const __m512i rem = _mm512_and_si512(q, mask);
            const __m512i thr = _mm512_mask_add_epi64(_mm512_srli_epi64(mask, 1), _mm512_cmplt_epi64_mask(q, zero),
                                                      _mm512_srli_epi64(mask, 1), one);
            r = _mm512_mask_add_epi64(_mm512_srav_epi64(q, right), _mm512_cmpgt_epi64_mask(rem, thr),
                                      _mm512_srav_epi64(q, right), one);
        } else {           /* double half-up (ruy x86) */
            const __m512i hh = _mm512_srai_epi64(_mm512_add_epi64(ab, _mm512_set1_epi64((int64_t)1 << 30)), 31);
            const __m512i rnd = _mm512_maskz_sllv_epi64(_mm512_cmpgt_epi64_mask(right, zero), one,
                                                        _mm512_sub_epi64(right, one));
            r = _mm512_srav_epi64(_mm512_add_epi64(hh, rnd), right);
        }
    }
    return _mm512_min_epi64(_mm512_max_epi64(r, lo), hi);
}

/* the fixed-point epilogue (rq_epi.fx_mode, 8-bit outputs) covers the shifts this call reads:
 * 1, else 0 (the scalar definition runs instead) */
static int fx_shifts_ok(const rq_epi *e, int i0, int mi, int j0, int nj) {
    const int mode = e->fx_mode;
    if (e->fbias || e->od || (mode < 1 || mode > 3)) return 0;
    const int per_col = e->mult_n != 1 && !e->mult_rows;
    const int k0 = e->mult_rows ? i0 : (per_col ? j0 : 0), kn = e->mult_rows ? mi : (per_col ? nj : 1);
    const int smin = mode == 3 ? -32 : -62, smax = mode == 3 ? 30 : 31;
    for (int k = k0; k < k0 + kn; k++)
        if (e->fx_sh[k] < smin || e->fx_sh[k] > smax) return 0;
    return 1;
}

/* 16 accumulators of row i, columns j.. (mask m) through the fixed-point epilogue: 8-bit codes */
static inline __m128i fx16(const rq_epi *e, int i, int j, __m512i a, __mmask16 m, int per_col) {
    const __m512i lo = _mm512_set1_epi64((int64_t)e->qmin - e->y_zp), hi = _mm512_set1_epi64((int64_t)e->qmax - e->y_zp);
    __m512i qm, sh;
    if (per_col) { qm = _mm512_maskz_loadu_epi32(m, e->fx_qm + j); sh = _mm512_maskz_loadu_epi32(m, e->fx_sh + j); }
    else { const int k = e->mult_rows ? i : 0; qm = _mm512_set1_epi32(e->fx_qm[k]); sh = _mm512_set1_epi32(e->fx_sh[k]); }
    const __m512i xs = _mm512_sllv_epi32(a, _mm512_max_epi32(sh, _mm512_setzero_si512()));   /* counts > 31 give 0 */
    const __m512i r0 = fx8(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(a)),
                           _mm512_cvtepi32_epi64(_mm512_castsi512_si256(xs)),
                           _mm512_cvtepi32_epi64(_mm512_castsi512_si256(qm)),
                           _mm512_cvtepi32_epi64(_mm512_castsi512_si256(sh)), e->fx_mode, lo, hi);
    const __m512i r1 = fx8(_mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(a, 1)),
                           _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(xs, 1)),
                           _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(qm, 1)),
                           _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(sh, 1)), e->fx_mode, lo, hi);
    const __m512i q = _mm512_add_epi32(_mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(r0)),
                                                          _mm512_cvtepi64_epi32(r1), 1), _mm512_set1_epi32(e->y_zp));
    return _mm512_cvtepi32_epi8(q);   /* in range: truncation is exact */
}

void rq_epi_rows__avx512(const rq_epi *e, int i0, int mi, int j0, int nj, const int32_t *raw,
                         ptrdiff_t ldr) {
    const int fx = e->fx_mode && e->out_type != RQ_OUT_S32;
    if (fx && !fx_shifts_ok(e, i0, mi, j0, nj)) {   /* fixed point: the vector loop below, or the scalar definition */
        rq_epi_rows__scalar(e, i0, mi, j0, nj, raw, ldr);
        return;
    }
    const __m512 lo = _mm512_set1_ps((float)(e->qmin - e->y_zp));
    const __m512 hi = _mm512_set1_ps((float)(e->qmax - e->y_zp));
    const __m512i zp = _mm512_set1_epi32(e->y_zp);
    const int per_col = e->mult_n != 1 && !e->mult_rows;
    const __m512 m1 = _mm512_set1_ps(e->mult ? e->mult[0] : 0.0f);
    /* fast path: row-contiguous output, corrections at most colfix/rowfix, bias per column or
     * none: everything hoisted into locals, full vectors unmasked */
    if (!fx && e->c_cs == 1 && !e->za_row && !e->zb_col &&
        ((!e->bias && !e->fbias && !e->fbias2) || e->bias_cs == 1 || e->bias_cs == 0)) {
        const int32_t *colfix = e->colfix, *rowfix = e->rowfix, *bias = e->bias;
        const ptrdiff_t bias_rs = e->bias_rs, bias_cs = e->bias_cs, c_rs = e->c_rs;
        const int nfull = nj & ~15;
        if (e->out_type != RQ_OUT_S32) {
            const int b2 = bias && bias_cs == 1 && bias_rs != 0;
            const int ht = colfix != NULL || (bias && bias_cs == 1 && !b2);
            const int od = e->od != 0;
            switch (ht + 2 * b2 + 4 * per_col + 8 * od) {
#define RQ_Q8_CASE(k) case k: q8_rows(e, i0, mi, j0, nj, raw, ldr, (k) & 1, ((k) >> 1) & 1, ((k) >> 2) & 1, (k) >> 3); break;
            RQ_Q8_CASE(0) RQ_Q8_CASE(1) RQ_Q8_CASE(2) RQ_Q8_CASE(3) RQ_Q8_CASE(4) RQ_Q8_CASE(5) RQ_Q8_CASE(6)
            RQ_Q8_CASE(7) RQ_Q8_CASE(8) RQ_Q8_CASE(9) RQ_Q8_CASE(10) RQ_Q8_CASE(11) RQ_Q8_CASE(12)
            RQ_Q8_CASE(13) RQ_Q8_CASE(14) RQ_Q8_CASE(15)
#undef RQ_Q8_CASE
            }
            return;
        }
        /* int32 output (8-bit outputs: q8_rows above) */
        for (int r = 0; r < mi; r++) {
            const int i = i0 + r;
            const int32_t *rr = raw + r * ldr;
            const __m512i rf = _mm512_set1_epi32(rowfix ? rowfix[i] : 0);
            const int32_t *bp = bias ? bias + i * bias_rs : NULL;
            const __m512i bb = (bias && bias_cs == 0) ? _mm512_set1_epi32(bp[0]) : _mm512_setzero_si512();
            for (int c = 0; c < nj; c += 16) {
                const int j = j0 + c;
                __mmask16 m = 0xFFFF;
                __m512i a;
                if (c < nfull) a = _mm512_loadu_si512(rr + c);
                else { m = (__mmask16)((1u << (nj - c)) - 1u); a = _mm512_maskz_loadu_epi32(m, rr + c); }
                if (colfix) a = _mm512_sub_epi32(a, _mm512_maskz_loadu_epi32(m, colfix + j));
                a = _mm512_sub_epi32(a, rf);
                if (bp) a = _mm512_add_epi32(a, bias_cs ? _mm512_maskz_loadu_epi32(m, bp + j) : bb);
                int32_t *dst = (int32_t *)e->C + i * c_rs + j;
                if (m == 0xFFFF) _mm512_storeu_si512(dst, a);
                else _mm512_mask_storeu_epi32(dst, m, a);
            }
        }
        return;
    }
    for (int r = 0; r < mi; r++) {
        const int i = i0 + r;
        for (int c = 0; c < nj; c += 16) {
            const int n = nj - c < 16 ? nj - c : 16;
            const __mmask16 m = (__mmask16)((1u << n) - 1u);
            const int j = j0 + c;
            __m512i a = epi_acc16(e, i, j, _mm512_maskz_loadu_epi32(m, raw + r * ldr + c), m);
            if (e->out_type == RQ_OUT_S32) {
                int32_t *dst = (int32_t *)e->C + i * e->c_rs;
                if (e->c_cs == 1) _mm512_mask_storeu_epi32(dst + j, m, a);
                else {
                    int32_t t[16]; _mm512_storeu_si512(t, a);
                    for (int q = 0; q < n; q++) dst[(j + q) * e->c_cs] = t[q];
                }
                continue;
            }
            if (fx) {
                store_q8x16(e, i, j, n, m, fx16(e, i, j, a, m, per_col));
                continue;
            }
            __m512 mm = per_col ? _mm512_maskz_loadu_ps(m, e->mult + j) : (e->mult_rows ? _mm512_set1_ps(e->mult[i]) : m1);
            __m512 af = _mm512_cvtepi32_ps(a);
            if (e->fbias) {
                float t[16];
                for (int q = 0; q < 16; q++)
                    t[q] = (m >> q) & 1 ? e->fbias[i * e->bias_rs + (j + q) * e->bias_cs] : 0.0f;
                af = e->fbias_fma ? _mm512_fmadd_ps(_mm512_loadu_ps(t), _mm512_set1_ps(e->fbias_rcp), af)
                                  : _mm512_add_ps(af, _mm512_loadu_ps(t));
            }
            __m512 v = _mm512_mul_ps(af, mm);
            if (e->od) {
                float t2[16];
                for (int q = 0; q < 16; q++)
                    t2[q] = (e->fbias2 && ((m >> q) & 1)) ? e->fbias2[i * e->bias_rs + (j + q) * e->bias_cs] : 0.0f;
                __m128i b = epi_od16(e, af, mm, _mm512_loadu_ps(t2));
                store_q8x16(e, i, j, n, m, b);
                continue;
            }
            v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
            __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(v), zp);
            __m128i b = _mm512_cvtepi32_epi8(q);  /* values are in range: truncation is exact */
            store_q8x16(e, i, j, n, m, b);
        }
    }
}

/* Row sums of bytes (rq_gemm.h): vpsadbw adds each 8 bytes into a 64-bit lane, 64 bytes an
 * instruction; the GEMM's zero-point corrections need them for every row of A (the weights of
 * a 1x1 conv with a nonzero x zero point: 1 MB a call at 2048 -> 512, where the portable loop
 * took 30% of the call). */
void rq_row_sums__avx512(const uint8_t *A, ptrdiff_t rs, int M, int K, uint8_t flip, int32_t bias,
                         int32_t *out) {
    const __m512i fx = _mm512_set1_epi8((char)flip), z = _mm512_setzero_si512();
    for (int i = 0; i < M; i++) {
        const uint8_t *r = A + (ptrdiff_t)i * rs;
        __m512i acc = z;
        int k = 0;
        for (; k + 64 <= K; k += 64)
            acc = _mm512_add_epi64(acc, _mm512_sad_epu8(_mm512_xor_si512(_mm512_loadu_si512((const void *)(r + k)), fx), z));
        if (k < K) {
            const __mmask64 m = ((__mmask64)1 << (K - k)) - 1;     /* K - k < 64 */
            /* masked-off lanes must add 0 after the flip: flip only the loaded ones */
            const __m512i v = _mm512_maskz_loadu_epi8(m, r + k);
            acc = _mm512_add_epi64(acc, _mm512_sad_epu8(_mm512_mask_blend_epi8(m, z, _mm512_xor_si512(v, fx)), z));
        }
        out[i] = (int32_t)((uint32_t)_mm512_reduce_add_epi64(acc) + (uint32_t)bias * (uint32_t)K);
    }
}
