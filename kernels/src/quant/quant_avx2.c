/* quant_avx2.c -- AVX2 + F16C QuantizeLinear / DequantizeLinear / min-max runs.
 * Same steps as rq_quant_core.h, 8 lanes at a time; remainders use the scalar core. */
#include <immintrin.h>
#include "rq_quant_core.h"

#define AI static inline __attribute__((always_inline))
#define RNE_PH (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

AI __m256 q_load8(const void *x, int64_t i, int in_f16)
{
    if (in_f16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)x + i)));
    return _mm256_loadu_ps((const float *)x + i);
}

AI __m256 round_f16(__m256 v) { return _mm256_cvtph_ps(_mm256_cvtps_ph(v, RNE_PH)); }

/* rq_round_bf16 on 8 lanes */
AI __m256 round_bf16(__m256 v)
{
    const __m256i u = _mm256_castps_si256(v);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i r = _mm256_and_si256(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), lsb),
                                       _mm256_set1_epi32((int)0xffff0000u));
    return _mm256_blendv_ps(_mm256_castsi256_ps(r), v, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
}

AI __m256 round_p(__m256 v, int div_f16) { return div_f16 == 2 ? round_bf16(v) : round_f16(v); }

/* a float16 x is exact in float16, not in bfloat16 */
AI __m256i q_core(__m256 xf, __m256 s, __m256 lo, __m256 hi, __m256i zp, int div_f16, int in_f16)
{
    if (div_f16 == 2 || (div_f16 && !in_f16)) xf = round_p(xf, div_f16);
    __m256 v = _mm256_div_ps(xf, s);
    if (div_f16) v = round_p(v, div_f16);
    v = _mm256_max_ps(v, lo);     /* vmaxps: NaN in the first operand -> second operand */
    v = _mm256_min_ps(v, hi);
    return _mm256_add_epi32(_mm256_cvtps_epi32(v), zp);
}

/* Division-free variant, exact; see quant_avx512.c (q_core_recip) and rq_quant.h. */
AI __m256i q_core_recip(__m256 xf, __m256 s, __m256 r, __m256 lo, __m256 hi, __m256i zp)
{
    __m256 q = _mm256_mul_ps(xf, r);
    q = _mm256_max_ps(q, lo);     /* NaN -> lo */
    q = _mm256_min_ps(q, hi);
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 e = _mm256_mul_ps(_mm256_and_ps(q, absmask), _mm256_set1_ps(3.814697265625e-06f));   /* 2^-18 */
    __m256i i1 = _mm256_cvtps_epi32(_mm256_sub_ps(q, e));
    __m256i i2 = _mm256_cvtps_epi32(_mm256_add_ps(q, e));
    if (__builtin_expect(_mm256_movemask_epi8(_mm256_cmpeq_epi32(i1, i2)) != -1, 0)) {
        __m256 v = _mm256_div_ps(xf, s);
        v = _mm256_max_ps(v, lo);
        v = _mm256_min_ps(v, hi);
        i1 = _mm256_cvtps_epi32(v);
    }
    return _mm256_add_epi32(i1, zp);
}

AI void q_params(const rq_qrun_args *a, int64_t i, int ps, int32_t qmin, int32_t qmax,
                 __m256 *s, __m256 *lo, __m256 *hi, __m256i *zp)
{
    if (!ps) return;
    *s = _mm256_loadu_ps(a->s + i);
    *zp = _mm256_loadu_si256((const __m256i *)(a->zp + i));
    *lo = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_set1_epi32(qmin), *zp));
    *hi = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_set1_epi32(qmax), *zp));
}

/* 32 elements from i: codes packed to 32 (8-bit) or 64 (16-bit) bytes; nt 1 streams */
AI void qgroup(const rq_qrun_args *a, int64_t i, const int in_f16, const int out_type, const int ps,
               const int div_f16, int recip, int nt, int32_t qmin, int32_t qmax, __m256 *s, __m256 *lo,
               __m256 *hi, __m256i *zp, __m256 r)
{
    const int is16 = (out_type == RQ_Q_U16 || out_type == RQ_Q_I16);
    const int is4 = (out_type == RQ_Q_U4 || out_type == RQ_Q_I4);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    __m256i q[4];
    for (int u = 0; u < 4; u++) {
        q_params(a, i + 8 * u, ps, qmin, qmax, s, lo, hi, zp);
        __m256 xv = q_load8(a->x, i + 8 * u, in_f16);
        q[u] = recip ? q_core_recip(xv, *s, r, *lo, *hi, *zp) : q_core(xv, *s, *lo, *hi, *zp, div_f16, in_f16);
        if (is4) q[u] = _mm256_and_si256(q[u], _mm256_set1_epi32(0xF));
    }
    if (is16) {
        __m256i w0, w1;
        if (out_type == RQ_Q_U16) {
            w0 = _mm256_packus_epi32(q[0], q[1]);
            w1 = _mm256_packus_epi32(q[2], q[3]);
        } else {
            w0 = _mm256_packs_epi32(q[0], q[1]);
            w1 = _mm256_packs_epi32(q[2], q[3]);
        }
        w0 = _mm256_permute4x64_epi64(w0, 0xD8);
        w1 = _mm256_permute4x64_epi64(w1, 0xD8);
        __m256i *dst = (__m256i *)((uint16_t *)a->y + i);
        if (nt == 1) { _mm256_stream_si256(dst, w0); _mm256_stream_si256(dst + 1, w1); }
        else { _mm256_storeu_si256(dst, w0); _mm256_storeu_si256(dst + 1, w1); }
    } else {
        __m256i p01 = _mm256_packs_epi32(q[0], q[1]);
        __m256i p23 = _mm256_packs_epi32(q[2], q[3]);
        __m256i b = (out_type == RQ_Q_I8) ? _mm256_packs_epi16(p01, p23) : _mm256_packus_epi16(p01, p23);
        b = _mm256_permutevar8x32_epi32(b, perm);
        __m256i *dst = (__m256i *)((uint8_t *)a->y + i);
        if (nt == 1) _mm256_stream_si256(dst, b);
        else _mm256_storeu_si256(dst, b);
    }
}

AI void qrun(const rq_qrun_args *a, const int in_f16, const int out_type, const int ps, const int div_f16)
{
    int32_t qmin, qmax;
    rq_qrange(out_type, &qmin, &qmax);
    const int is16 = (out_type == RQ_Q_U16 || out_type == RQ_Q_I16);
    __m256 s = _mm256_set1_ps(a->s[0]);
    __m256i zp = _mm256_set1_epi32(a->zp[0]);
    __m256 lo = _mm256_set1_ps((float)(qmin - a->zp[0]));
    __m256 hi = _mm256_set1_ps((float)(qmax - a->zp[0]));
    const int64_t n = a->n;
    const float r1 = 1.0f / a->s[0];
    const int recip = !ps && !div_f16 && r1 >= 1.17549435e-38f && r1 <= 3.40282347e+38f;
    const __m256 r = _mm256_set1_ps(r1);
    int64_t i = 0;
    const int osz = is16 ? 2 : 1;
    int nt = 0;
#define QG(I, NT) qgroup(a, (I), in_f16, out_type, ps, div_f16, recip, (NT), qmin, qmax, &s, &lo, &hi, &zp, r)
    if (n >= 64 && ((uintptr_t)a->y & (uintptr_t)(osz - 1)) == 0) {
        /* 64-byte aligned output (no store splits a cache line, and streamed lines are whole:
         * aligned to 32 bytes, per-axis runs of 128 float32 -> uint8 took 13.8 ms for 16M
         * elements where 64 takes 3); stream large outputs.  The
         * elements before the aligned point come from one whole unaligned group, written again
         * below with the same values: scalar prologues and tails made short runs slow
         * (per-axis, 32 channels of 128 elements, 16M float32, 1 thread, Zen 5: 7.3 ms) */
        int64_t pre = (int64_t)(((64 - ((uintptr_t)a->y & 63)) & 63) / (uintptr_t)osz);
        for (; i < pre; i += 32) QG(i, 0);
        i = pre;
        nt = a->nontemporal ? 1 : 2;    /* 1: stream, 2: aligned store */
    }
    const int64_t iend = nt == 1 ? rq_stream_end(i, n, is16 ? 32 : 64, 32) : n;
    for (; i + 32 <= n; i += 32) {
        /* software prefetch ~2 KiB ahead (see quant_avx512.c); never affects results */
        _mm_prefetch((const char *)a->x + (i + 512) * (in_f16 ? 2 : 4), _MM_HINT_T0);
        if (!in_f16) _mm_prefetch((const char *)a->x + (i + 512) * 4 + 64, _MM_HINT_T0);
        /* and into L2 16 KiB (float32) ahead, as quant_avx512.c */
        _mm_prefetch((const char *)a->x + (i + 4096) * (in_f16 ? 2 : 4), _MM_HINT_T1);
        if (!in_f16) _mm_prefetch((const char *)a->x + (i + 4096) * 4 + 64, _MM_HINT_T1);
        QG(i, i + 32 <= iend ? nt : 0);
    }
    if (i < n && n >= 32) {   /* the last partial group as a whole one ending at n */
        QG(n - 32, 0);
        return;
    }
#undef QG
    for (; i < n; i++) {
        int64_t j = ps ? i : 0;
        rq_store_q(a->y, i, rq_quantize1(rq_load_xf(a->x, i, a->in_type), a->s[j], a->zp[j], qmin, qmax, div_f16), out_type);
    }
}

#define Q_OUTS(IN, PS, DV)                                           \
    switch (a->out_type) {                                           \
    case RQ_Q_U8: qrun(a, IN, RQ_Q_U8, PS, DV); break;               \
    case RQ_Q_I8: qrun(a, IN, RQ_Q_I8, PS, DV); break;               \
    case RQ_Q_U16: qrun(a, IN, RQ_Q_U16, PS, DV); break;             \
    case RQ_Q_I16: qrun(a, IN, RQ_Q_I16, PS, DV); break;             \
    case RQ_Q_U4: qrun(a, IN, RQ_Q_U4, PS, DV); break;               \
    case RQ_Q_I4: qrun(a, IN, RQ_Q_I4, PS, DV); break;               \
    default: break;                                                  \
    }
#define Q_DIVS(IN, PS) if (a->div_f16 == 2) { Q_OUTS(IN, PS, 2) } else if (a->div_f16) { Q_OUTS(IN, PS, 1) } else { Q_OUTS(IN, PS, 0) }
#define Q_PSS(IN) if (a->pstride) { Q_DIVS(IN, 1) } else { Q_DIVS(IN, 0) }

/* ---- quantize variants (rq_quant.h: RQ_QV_*), the same steps as rq_quantize1v ----------- */

AI __m256i qv_core8(__m256 xf, __m256 s, __m256 r, __m256 zpf, __m256i zp, __m256 lo, __m256 hi,
                    __m256i nanq, const int V)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    if (V & RQ_QV_P16) xf = round_f16(xf);
    __m256 v = (V & RQ_QV_RECIP) ? _mm256_mul_ps(xf, r) : _mm256_div_ps(xf, s);
    if ((V & RQ_QV_P16) && !((V & RQ_QV_ZPB) && (V & RQ_QV_FMA))) v = round_f16(v);
    __m256 w;
    if ((V & RQ_QV_ZPB) && (V & RQ_QV_P16)) {
        if (V & RQ_QV_FMA) {
            /* v = x * r exact; v + zp rounded to odd (rq_add_odd), then to float16 */
            const __m256 t = _mm256_add_ps(v, zpf), bb = _mm256_sub_ps(t, v), z = _mm256_setzero_ps();
            const __m256 e = _mm256_add_ps(_mm256_sub_ps(v, _mm256_sub_ps(t, bb)), _mm256_sub_ps(zpf, bb));
            const __m256i u = _mm256_castps_si256(t), i1 = _mm256_set1_epi32(1);
            const __m256i even = _mm256_cmpeq_epi32(_mm256_and_si256(u, i1), _mm256_setzero_si256());
            const __m256i fix = _mm256_and_si256(even, _mm256_castps_si256(_mm256_and_ps(
                _mm256_cmp_ps(e, z, _CMP_NEQ_OQ), _mm256_cmp_ps(_mm256_sub_ps(t, t), z, _CMP_EQ_OQ))));
            const __m256i down = _mm256_castps_si256(_mm256_xor_ps(_mm256_cmp_ps(e, z, _CMP_GT_OQ),
                                                                   _mm256_cmp_ps(t, z, _CMP_GT_OQ)));
            /* +1 where e and t lie on the same side of zero, else -1 */
            const __m256i d = _mm256_sub_epi32(i1, _mm256_and_si256(down, _mm256_set1_epi32(2)));
            w = round_f16(_mm256_castsi256_ps(_mm256_add_epi32(u, _mm256_and_si256(fix, d))));
        } else {
            w = round_f16(_mm256_add_ps(v, round_f16(zpf)));
        }
    } else {
        w = (V & RQ_QV_ZPB) ? ((V & RQ_QV_FMA) ? _mm256_fmadd_ps(xf, r, zpf) : _mm256_add_ps(v, zpf)) : v;
    }
    const __m256 nan = _mm256_cmp_ps(w, w, _CMP_UNORD_Q);
    if (V & RQ_QV_WRAP) {   /* see quant_avx512.c qv_core */
        __m256 t;
        if (V & RQ_QV_RAWAY) {
            t = _mm256_round_ps(w, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            __m256 d = _mm256_sub_ps(w, t);
            t = _mm256_add_ps(t, _mm256_and_ps(_mm256_cmp_ps(d, _mm256_set1_ps(0.5f), _CMP_GE_OQ), one));
            t = _mm256_sub_ps(t, _mm256_and_ps(_mm256_cmp_ps(d, _mm256_set1_ps(-0.5f), _CMP_LE_OQ), one));
        } else if (V & RQ_QV_RUP) {
            t = _mm256_round_ps(w, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
            __m256 d = _mm256_sub_ps(w, t);
            t = _mm256_add_ps(t, _mm256_and_ps(_mm256_cmp_ps(d, _mm256_set1_ps(0.5f), _CMP_GE_OQ), one));
        } else {
            t = _mm256_round_ps(w, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        }
        __m256i q = _mm256_cvttps_epi32(t);
        const __m256 z0 = (V & RQ_QV_ZPB) ? _mm256_setzero_ps() : zpf;
        if (!(V & RQ_QV_ZPB)) q = _mm256_add_epi32(q, zp);
        q = _mm256_min_epi32(_mm256_max_epi32(q, _mm256_cvtps_epi32(_mm256_add_ps(lo, z0))),
                             _mm256_cvtps_epi32(_mm256_add_ps(hi, z0)));
        return (V & RQ_QV_NANWRAP) ? q : _mm256_blendv_epi8(q, nanq, _mm256_castps_si256(nan));
    }
    w = _mm256_max_ps(w, lo);
    w = _mm256_min_ps(w, hi);
    __m256i q;
    if (V & RQ_QV_RAWAY) {
        __m256 t = _mm256_round_ps(w, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        __m256 d = _mm256_sub_ps(w, t);                                   /* exact */
        t = _mm256_add_ps(t, _mm256_and_ps(_mm256_cmp_ps(d, _mm256_set1_ps(0.5f), _CMP_GE_OQ), one));
        t = _mm256_sub_ps(t, _mm256_and_ps(_mm256_cmp_ps(d, _mm256_set1_ps(-0.5f), _CMP_LE_OQ), one));
        q = _mm256_cvttps_epi32(t);
    } else if (V & RQ_QV_RUP) {
        __m256 f = _mm256_round_ps(w, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
        __m256 d = _mm256_sub_ps(w, f);                                   /* exact */
        f = _mm256_add_ps(f, _mm256_and_ps(_mm256_cmp_ps(d, _mm256_set1_ps(0.5f), _CMP_GE_OQ), one));
        q = _mm256_cvttps_epi32(f);
    } else {
        q = _mm256_cvtps_epi32(w);                                        /* RNE */
    }
    if (!(V & RQ_QV_ZPB)) q = _mm256_add_epi32(q, zp);
    return _mm256_blendv_epi8(q, nanq, _mm256_castps_si256(nan));
}

/* 8 results (in range) stored as 8 bytes / 8 shorts / 8 low nibbles */
AI void qv_store8(void *y, int64_t i, __m256i q, int out_type)
{
    if (out_type == RQ_Q_U16 || out_type == RQ_Q_I16) {
        __m256i w = out_type == RQ_Q_U16 ? _mm256_packus_epi32(q, q) : _mm256_packs_epi32(q, q);
        w = _mm256_permute4x64_epi64(w, 0x08);
        _mm_storeu_si128((__m128i *)((uint16_t *)y + i), _mm256_castsi256_si128(w));
    } else {
        if (out_type == RQ_Q_U4 || out_type == RQ_Q_I4) q = _mm256_and_si256(q, _mm256_set1_epi32(0xF));
        __m256i h = _mm256_packs_epi32(q, q);
        __m256i b = out_type == RQ_Q_I8 ? _mm256_packs_epi16(h, h) : _mm256_packus_epi16(h, h);
        b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4));
        _mm_storel_epi64((__m128i *)((uint8_t *)y + i), _mm256_castsi256_si128(b));
    }
}

AI void qvrun8(const rq_qrun_args *a, const int in_f16, const int ps, const int V)
{
    const int out_type = a->out_type;
    int32_t qmin, qmax;
    rq_qrange(out_type, &qmin, &qmax);
    const __m256i vqmin = _mm256_set1_epi32(qmin), vqmax = _mm256_set1_epi32(qmax);
    const int nanc = (a->variant >> RQ_QV_NAN_SHIFT) & 3;
    __m256 s = _mm256_set1_ps(a->s[0]), r = _mm256_set1_ps((V & RQ_QV_P16) ? rq_round_f16(1.0f / a->s[0]) : 1.0f / a->s[0]);
    __m256i zp = _mm256_set1_epi32(a->zp[0]);
    __m256 zpf = _mm256_cvtepi32_ps(zp), lo = zpf, hi = zpf;
    __m256i nanq = zp;
    const int64_t n = a->n;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        if (ps || i == 0) {
            if (ps) {
                s = _mm256_loadu_ps(a->s + i);
                zp = _mm256_loadu_si256((const __m256i *)(a->zp + i));
                zpf = _mm256_cvtepi32_ps(zp);
                if (V & RQ_QV_RECIP) r = _mm256_div_ps(_mm256_set1_ps(1.0f), s);
                if ((V & RQ_QV_RECIP) && (V & RQ_QV_P16)) r = round_f16(r);
            }
            if (V & RQ_QV_ZPB) { lo = _mm256_cvtepi32_ps(vqmin); hi = _mm256_cvtepi32_ps(vqmax); }
            else {
                lo = _mm256_cvtepi32_ps(_mm256_sub_epi32(vqmin, zp));
                hi = _mm256_cvtepi32_ps(_mm256_sub_epi32(vqmax, zp));
            }
            nanq = nanc == 1 ? vqmax
                 : nanc == 2 ? _mm256_min_epi32(_mm256_max_epi32(zp, vqmin), vqmax)
                 : nanc == 3 ? _mm256_min_epi32(_mm256_max_epi32(_mm256_setzero_si256(), vqmin), vqmax)
                 : vqmin;
        }
        _mm_prefetch((const char *)a->x + (i + 512) * (in_f16 ? 2 : 4), _MM_HINT_T0);
        _mm_prefetch((const char *)a->x + (i + 4096) * (in_f16 ? 2 : 4), _MM_HINT_T1);
        qv_store8(a->y, i, qv_core8(q_load8(a->x, i, in_f16), s, r, zpf, zp, lo, hi, nanq, V), out_type);
    }
    for (; i < n; i++) {
        const int64_t j = ps ? i : 0;
        rq_store_q(a->y, i, rq_quantize1v(rq_load_xf(a->x, i, a->in_type), a->s[j], a->zp[j], qmin, qmax,
                                          a->variant), out_type);
    }
}

#define QV_V8(F16, PS) RQ_QV_SWITCH(qvrun8, a, F16, PS)

void rq_quantize_run__avx2(const rq_qrun_args *a)
{
    if (a->variant) {
        if (a->in_type == RQ_F_F16) {
            if (a->pstride) { QV_V8(1, 1) } else { QV_V8(1, 0) }
        } else {
            if (a->pstride) { QV_V8(0, 1) } else { QV_V8(0, 0) }
        }
        return;
    }
    if (a->in_type == RQ_F_F16) { Q_PSS(1) } else { Q_PSS(0) }
}

/* ---- dequantize ------------------------------------------------------------------------- */

AI __m256i dq_load8(const void *x, int64_t i, int in_type)
{
    switch (in_type) {
    case RQ_Q_U8: case RQ_Q_I8: case RQ_Q_U4: case RQ_Q_I4: {
        __m128i b = _mm_loadl_epi64((const __m128i *)((const uint8_t *)x + i));
        if (in_type == RQ_Q_I8) return _mm256_cvtepi8_epi32(b);
        __m256i v = _mm256_cvtepu8_epi32(b);
        if (in_type == RQ_Q_U8) return v;
        if (in_type == RQ_Q_U4) return _mm256_and_si256(v, _mm256_set1_epi32(0xF));
        return _mm256_srai_epi32(_mm256_slli_epi32(v, 28), 28);
    }
    case RQ_Q_U16: return _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)x + i)));
    case RQ_Q_I16: return _mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)x + i)));
    default: return _mm256_loadu_si256((const __m256i *)((const int32_t *)x + i));
    }
}

AI __m256 dq_core(__m256i q, __m256i zp, __m256 s, int out_f16)
{
    __m256 d = _mm256_cvtepi32_ps(_mm256_sub_epi32(q, zp));
    if (out_f16) return round_f16(_mm256_mul_ps(round_f16(d), s));
    return _mm256_mul_ps(d, s);
}

/* 16 elements from i (two vectors); nt 1 streams */
AI void dqgroup(const rq_dqrun_args *a, int64_t i, const int in_type, const int out_f16, const int ps,
                int nt, __m256 *s, __m256i *zp)
{
    __m256 v[2];
    for (int u = 0; u < 2; u++) {
        if (ps) {
            *s = _mm256_loadu_ps(a->s + i + 8 * u);
            *zp = _mm256_loadu_si256((const __m256i *)(a->zp + i + 8 * u));
        }
        v[u] = dq_core(dq_load8(a->x, i + 8 * u, in_type), *zp, *s, out_f16);
    }
    if (out_f16) {
        __m256i h = _mm256_set_m128i(_mm256_cvtps_ph(v[1], RNE_PH), _mm256_cvtps_ph(v[0], RNE_PH));
        if (nt == 1) _mm256_stream_si256((__m256i *)((uint16_t *)a->y + i), h);
        else _mm256_storeu_si256((__m256i *)((uint16_t *)a->y + i), h);
    } else if (nt == 1) {
        _mm256_stream_ps((float *)a->y + i, v[0]);
        _mm256_stream_ps((float *)a->y + i + 8, v[1]);
    } else {
        _mm256_storeu_ps((float *)a->y + i, v[0]);
        _mm256_storeu_ps((float *)a->y + i + 8, v[1]);
    }
}

AI void dqrun(const rq_dqrun_args *a, const int in_type, const int out_f16, const int ps)
{
    __m256 s = _mm256_set1_ps(a->s[0]);
    __m256i zp = _mm256_set1_epi32(a->zp[0]);
    const int64_t n = a->n;
    const int osz = out_f16 ? 2 : 4;
    int64_t i = 0;
    int nt = 0;
    if (n >= 64 && ((uintptr_t)a->y & (uintptr_t)(osz - 1)) == 0) {
        /* whole groups before the aligned point and at the end, as qrun */
        int64_t pre = (int64_t)(((64 - ((uintptr_t)a->y & 63)) & 63) / (uintptr_t)osz);
        for (; i < pre; i += 16) dqgroup(a, i, in_type, out_f16, ps, 0, &s, &zp);
        i = pre;
        nt = a->nontemporal ? 1 : 2;
    }
    const int isz = (in_type == RQ_Q_I32) ? 4 : (in_type == RQ_Q_U16 || in_type == RQ_Q_I16) ? 2 : 1;
    const int64_t iend = nt == 1 ? rq_stream_end(i, n, out_f16 ? 32 : 16, 16) : n;
    for (; i + 16 <= n; i += 16) {
        if (((i * isz) & 63) == 0)
            _mm_prefetch((const char *)a->x + i * isz + 2048, _MM_HINT_T0);
        dqgroup(a, i, in_type, out_f16, ps, i + 16 <= iend ? nt : 0, &s, &zp);
    }
    if (i < n && n >= 16) {
        dqgroup(a, n - 16, in_type, out_f16, ps, 0, &s, &zp);
        return;
    }
    for (; i < n; i++) {
        int64_t j = ps ? i : 0;
        float v = rq_dequantize1(rq_load_q(a->x, i, in_type), a->zp[j], a->s[j], out_f16);
        if (out_f16) rq_st_u16((char *)a->y + 2 * i, rq_f32_to_f16(v));
        else rq_st_f32((char *)a->y + 4 * i, v);
    }
}

#define DQ_INS(F16, PS)                                              \
    switch (a->in_type) {                                            \
    case RQ_Q_U8: dqrun(a, RQ_Q_U8, F16, PS); break;                 \
    case RQ_Q_I8: dqrun(a, RQ_Q_I8, F16, PS); break;                 \
    case RQ_Q_U16: dqrun(a, RQ_Q_U16, F16, PS); break;               \
    case RQ_Q_I16: dqrun(a, RQ_Q_I16, F16, PS); break;               \
    case RQ_Q_U4: dqrun(a, RQ_Q_U4, F16, PS); break;                 \
    case RQ_Q_I4: dqrun(a, RQ_Q_I4, F16, PS); break;                 \
    case RQ_Q_I32: dqrun(a, RQ_Q_I32, F16, PS); break;               \
    default: break;                                                  \
    }
#define DQ_PSS(F16) if (a->pstride) { DQ_INS(F16, 1) } else { DQ_INS(F16, 0) }

/* fl32(fl32(x*s) - fl32(zp*s)) (rq_dqrun_args.sts): float32 output, 8/16-bit x */
AI void dqrun_sts(const rq_dqrun_args *a, const int in_type, const int ps)
{
    __m256 s = _mm256_set1_ps(a->s[0]);
    __m256 zs = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_set1_epi32(a->zp[0])), s);
    const int64_t n = a->n;
    float *y = (float *)a->y;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        if (ps) {
            s = _mm256_loadu_ps(a->s + i);
            zs = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(a->zp + i))), s);
        }
        _mm256_storeu_ps(y + i, _mm256_sub_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(dq_load8(a->x, i, in_type)), s), zs));
    }
    for (; i < n; i++) {
        const float sv = a->s[ps ? i : 0];
        rq_st_f32(y + i, (float)rq_load_q(a->x, i, in_type) * sv - (float)a->zp[ps ? i : 0] * sv);
    }
}

void rq_dequantize_run__avx2(const rq_dqrun_args *a)
{
    if (a->sts) {
        RQ_DQ_STS_SWITCH(dqrun_sts, a, a->pstride != 0)
        return;
    }
    if (a->out_type == RQ_F_F16) { DQ_PSS(1) } else { DQ_PSS(0) }
}

/* ---- min / max -------------------------------------------------------------------------- */

int rq_minmax_f32__avx2(const float *x, int64_t n, float *mn, float *mx)
{
    /* as rq_minmax_f32__avx512: two chains, the largest |x| bit pattern as an integer (NaN /
     * Inf iff it reaches 0x7f800000), the main loop on 64-byte lines */
    __m256 lo = _mm256_set1_ps(rq_ld_f32(x)), hi = lo;
    const __m256i absm = _mm256_set1_epi32(0x7fffffff);
    __m256i am = _mm256_setzero_si256();
    int64_t i = 0;
    if (n >= 40 && ((uintptr_t)x & 3) == 0) {
        const __m256 v = _mm256_loadu_ps(x);
        am = _mm256_and_si256(_mm256_castps_si256(v), absm);
        lo = _mm256_min_ps(lo, v);
        hi = _mm256_max_ps(hi, v);
        __m256 w = _mm256_loadu_ps(x + 8);
        am = _mm256_max_epu32(am, _mm256_and_si256(_mm256_castps_si256(w), absm));
        lo = _mm256_min_ps(lo, w);
        hi = _mm256_max_ps(hi, w);
        i = (int64_t)(((64 - ((uintptr_t)x & 63)) & 63) / 4);
    }
    __m256 lo2 = lo, hi2 = hi;   /* (four chains: GCC 12 spilled one of them) */
    for (; i + 32 <= n; i += 32) {
        _mm_prefetch((const char *)(x + i) + 2048, _MM_HINT_T0);
        _mm_prefetch((const char *)(x + i) + 2048 + 64, _MM_HINT_T0);
        const __m256 v = _mm256_loadu_ps(x + i), w = _mm256_loadu_ps(x + i + 8);
        const __m256 v3 = _mm256_loadu_ps(x + i + 16), v4 = _mm256_loadu_ps(x + i + 24);
        const __m256i b12 = _mm256_max_epu32(_mm256_and_si256(_mm256_castps_si256(v), absm),
                                             _mm256_and_si256(_mm256_castps_si256(w), absm));
        const __m256i b34 = _mm256_max_epu32(_mm256_and_si256(_mm256_castps_si256(v3), absm),
                                             _mm256_and_si256(_mm256_castps_si256(v4), absm));
        am = _mm256_max_epu32(am, _mm256_max_epu32(b12, b34));
        lo = _mm256_min_ps(lo, v);
        hi = _mm256_max_ps(hi, v);
        lo2 = _mm256_min_ps(lo2, w);
        hi2 = _mm256_max_ps(hi2, w);
        lo = _mm256_min_ps(lo, v3);
        hi = _mm256_max_ps(hi, v3);
        lo2 = _mm256_min_ps(lo2, v4);
        hi2 = _mm256_max_ps(hi2, v4);
    }
    lo = _mm256_min_ps(lo, lo2);
    hi = _mm256_max_ps(hi, hi2);
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        am = _mm256_max_epu32(am, _mm256_and_si256(_mm256_castps_si256(v), absm));
        lo = _mm256_min_ps(lo, v);
        hi = _mm256_max_ps(hi, v);
    }
    float l8[8], h8[8];
    _mm256_storeu_ps(l8, lo);
    _mm256_storeu_ps(h8, hi);
    float l = l8[0], h = h8[0];
    for (int k = 1; k < 8; k++) {
        l = l8[k] < l ? l8[k] : l;
        h = h8[k] > h ? h8[k] : h;
    }
    const __m256i big = _mm256_cmpgt_epi32(am, _mm256_set1_epi32(0x7f7fffff));   /* am <= 0x7fffffff */
    int b = !_mm256_testz_si256(big, big);
    for (; i < n; i++) {
        float v = rq_ld_f32(x + i);
        b |= (rq_f32_bits(v) & 0x7f800000u) == 0x7f800000u;
        l = v < l ? v : l;
        h = v > h ? v : h;
    }
    *mn = l;
    *mx = h;
    return b;
}

void rq_cvt_f32_f16__avx2(const float *s, uint16_t *d, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(d + i), _mm256_cvtps_ph(_mm256_loadu_ps(s + i), RNE_PH));
    for (; i < n; i++) d[i] = rq_f32_to_f16(s[i]);
}

/* ---- float8 QuantizeLinear / DequantizeLinear (rq_f8.h) --------------------------------- */
#define RQ_F8_SUFFIX __avx2
#include "rq_f8.h"

void rq_cvt_f32_bf16__avx2(const float *s, uint16_t *d, int64_t n)
{
    RQ_CVT_BF16_BODY
}
