/* quant_avx512.c -- AVX-512 (F+BW+DQ+VL) QuantizeLinear / DequantizeLinear / min-max runs.
 * Same steps as rq_quant_core.h, 16 lanes at a time; remainders use masked loads/stores. */
/* Software prefetch of the quantize input: into L1 RQ_QPF elements ahead (4 KiB of float32;
 * 2 KiB before session 19) and, for streamed calls only (data from DRAM), into L2 RQ_QPF2
 * elements ahead (measured 14-15 -> 21 GB/s at 16M elements, 1 thread).  The L2 prefetch on
 * calls in cache cost 10-15%: Zen 5, 1 thread, against ORT, 256K-1M elements 0.82-0.90x with
 * it, 1.05-1.10x without (and 4 KiB instead of 2: 16M 1.14-1.18x -> 1.27-1.31x). */
#ifndef RQ_QPF
#define RQ_QPF 1024
#endif
#ifndef RQ_QPF2
#define RQ_QPF2 4096
#endif
#include <immintrin.h>
#include "rq_quant_core.h"

#define AI static inline __attribute__((always_inline))

/* ---- quantize --------------------------------------------------------------------------- */

AI __m512 q_load(const void *x, int64_t i, int in_f16, __mmask16 m, int full)
{
    if (in_f16) {
        __m256i h = full ? _mm256_loadu_si256((const __m256i *)((const uint16_t *)x + i))
                         : _mm256_maskz_loadu_epi16(m, (const uint16_t *)x + i);
        return _mm512_cvtph_ps(h);
    }
    return full ? _mm512_loadu_ps((const float *)x + i) : _mm512_maskz_loadu_ps(m, (const float *)x + i);
}

AI __m512 round_f16(__m512 v)
{
    return _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

/* rq_round_bf16 on 16 lanes */
AI __m512 round_bf16(__m512 v)
{
    const __m512i u = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    const __m512i r = _mm512_and_si512(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb),
                                       _mm512_set1_epi32((int)0xffff0000u));
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_castsi512_ps(r), v);
}

AI __m512 round_p(__m512 v, int div_f16) { return div_f16 == 2 ? round_bf16(v) : round_f16(v); }

/* v = x / s (f32, f16 or bf16 precision), clamp to [lo, hi] (NaN -> lo), RNE convert, + zp;
 * a float16 x is exact in float16, not in bfloat16 */
AI __m512i q_core(__m512 xf, __m512 s, __m512 lo, __m512 hi, __m512i zp, int div_f16, int in_f16)
{
    if (div_f16 == 2 || (div_f16 && !in_f16)) xf = round_p(xf, div_f16);
    __m512 v = _mm512_div_ps(xf, s);
    if (div_f16) v = round_p(v, div_f16);
    v = _mm512_max_ps(v, lo);     /* vmaxps: NaN in the first operand -> second operand */
    v = _mm512_min_ps(v, hi);
    return _mm512_add_epi32(_mm512_cvtps_epi32(v), zp);   /* cvtps2dq: RNE (default MXCSR) */
}

/* Division-free variant, exact.  q = fl(x * r) with r = fl(1/s) normal, so
 * |q - fl(x/s)| <= 2^-22.3 |q|.  qc = clamp(q) (NaN -> lo); with e = |qc| * 2^-18 the
 * computed interval [qc - e, qc + e] contains clamp(fl(x/s)) (see tests/test_quant_kernels.py
 * and the proof in rq_quant.h).  If round(qc - e) == round(qc + e), that integer is
 * round(clamp(fl(x/s))); otherwise (a near-tie) the vector is redone with the true division. */
AI __m512i q_core_recip(__m512 xf, __m512 s, __m512 r, __m512 lo, __m512 hi, __m512i zp)
{
    __m512 q = _mm512_mul_ps(xf, r);
    q = _mm512_max_ps(q, lo);     /* NaN -> lo */
    q = _mm512_min_ps(q, hi);
    __m512 e = _mm512_mul_ps(_mm512_abs_ps(q), _mm512_set1_ps(3.814697265625e-06f));   /* 2^-18 */
    __m512i i1 = _mm512_cvtps_epi32(_mm512_sub_ps(q, e));
    __m512i i2 = _mm512_cvtps_epi32(_mm512_add_ps(q, e));
    if (__builtin_expect(_mm512_cmpneq_epi32_mask(i1, i2) != 0, 0)) {
        __m512 v = _mm512_div_ps(xf, s);
        v = _mm512_max_ps(v, lo);
        v = _mm512_min_ps(v, hi);
        i1 = _mm512_cvtps_epi32(v);
    }
    return _mm512_add_epi32(i1, zp);
}

AI void q_store(void *y, int64_t i, __m512i q, int out_type, __mmask16 m, int full)
{
    if (out_type == RQ_Q_U4 || out_type == RQ_Q_I4) q = _mm512_and_si512(q, _mm512_set1_epi32(0xF));
    if (out_type == RQ_Q_U16 || out_type == RQ_Q_I16) {
        __m256i w = _mm512_cvtepi32_epi16(q);
        if (full) _mm256_storeu_si256((__m256i *)((uint16_t *)y + i), w);
        else _mm256_mask_storeu_epi16((uint16_t *)y + i, m, w);
    } else {
        __m128i b = _mm512_cvtepi32_epi8(q);
        if (full) _mm_storeu_si128((__m128i *)((uint8_t *)y + i), b);
        else _mm_mask_storeu_epi8((uint8_t *)y + i, m, b);
    }
}

AI void q_params(const rq_qrun_args *a, int64_t i, int ps, int32_t qmin, int32_t qmax,
                 __mmask16 m, int full, __m512 *s, __m512 *lo, __m512 *hi, __m512i *zp)
{
    if (!ps) return;
    if (ps == 2) {      /* blocks of 2^-pstride elements from the run's start: one parameter each */
        const int64_t bi = i >> (-a->pstride);
        const int32_t z = a->zp[bi];
        *s = _mm512_set1_ps(a->s[bi]);
        *zp = _mm512_set1_epi32(z);
        *lo = _mm512_set1_ps((float)(qmin - z));
        *hi = _mm512_set1_ps((float)(qmax - z));
        (void)m; (void)full;
        return;
    }
    *s = full ? _mm512_loadu_ps(a->s + i) : _mm512_mask_loadu_ps(_mm512_set1_ps(1.0f), m, a->s + i);
    *zp = full ? _mm512_loadu_si512(a->zp + i) : _mm512_maskz_loadu_epi32(m, a->zp + i);
    *lo = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_set1_epi32(qmin), *zp));
    *hi = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_set1_epi32(qmax), *zp));
}

AI void qrun(const rq_qrun_args *a, const int in_f16, const int out_type, const int ps, const int div_f16)
{
    int32_t qmin, qmax;
    rq_qrange(out_type, &qmin, &qmax);
    const int osz = (out_type == RQ_Q_U16 || out_type == RQ_Q_I16) ? 2 : 1;
    __m512 s = _mm512_set1_ps(a->s[0]);
    __m512i zp = _mm512_set1_epi32(a->zp[0]);
    __m512 lo = _mm512_set1_ps((float)(qmin - a->zp[0]));
    __m512 hi = _mm512_set1_ps((float)(qmax - a->zp[0]));
    const int64_t n = a->n;
    const float r1 = 1.0f / a->s[0];
    const int recip = !a->divide && !ps && !div_f16 && r1 >= 1.17549435e-38f && r1 <= 3.40282347e+38f;
    const __m512 r = _mm512_set1_ps(r1);
#define QCORE(X) (recip ? q_core_recip((X), s, r, lo, hi, zp) : q_core((X), s, lo, hi, zp, div_f16, in_f16))
    int64_t i = 0;
    uintptr_t addr = (uintptr_t)a->y;
    if (ps != 2 && n >= 256 && (addr & (uintptr_t)(osz - 1)) == 0) {   /* (blocks: every vector
                                                                         * 16-aligned to the run) */
        /* reach a 64-byte aligned output address, then write whole cache lines
         * (streaming stores for large outputs) */
        int64_t pre = (int64_t)(((64 - (addr & 63)) & 63) / (uintptr_t)osz);
        /* whole vectors up to the aligned point: those past it are written again below, with
         * the same values (masked stores cost ~40 cycles each on Zen 5, see q_tail) */
        for (; i < pre; i += 16) {
            q_params(a, i, ps, qmin, qmax, 0xFFFF, 1, &s, &lo, &hi, &zp);
            q_store(a->y, i, QCORE(q_load(a->x, i, in_f16, 0xFFFF, 1)), out_type, 0xFFFF, 1);
        }
        i = pre;
        const int64_t step = 64 / osz;   /* elements per 64-byte line: 64 (8-bit) or 32 (16-bit) */
        const int nt = a->nontemporal;
        const int64_t iend = nt ? rq_stream_end(i, n, step, 16) : n;
        for (; i + step <= iend; i += step) {
            /* software prefetch (RQ_QPF): a single core's demand misses alone do not
             * saturate DRAM bandwidth (+30% at 16M elements); never affects results */
            {
                const int xsz = in_f16 ? 2 : 4;
                const char *pf = (const char *)a->x + (i + RQ_QPF) * xsz;
                for (int l = 0; l < (int)step * xsz; l += 64) _mm_prefetch(pf + l, _MM_HINT_T0);
#if RQ_QPF2 > 0
                if (nt) {
                    const char *pf2 = (const char *)a->x + (i + RQ_QPF2) * xsz;
                    for (int l = 0; l < (int)step * xsz; l += 64) _mm_prefetch(pf2 + l, _MM_HINT_T1);
                }
#endif
            }
            __m512i q[4];
            for (int u = 0; u < step / 16; u++) {
                q_params(a, i + 16 * u, ps, qmin, qmax, 0xFFFF, 1, &s, &lo, &hi, &zp);
                q[u] = QCORE(q_load(a->x, i + 16 * u, in_f16, 0xFFFF, 1));
                if (out_type == RQ_Q_U4 || out_type == RQ_Q_I4)
                    q[u] = _mm512_and_si512(q[u], _mm512_set1_epi32(0xF));
            }
            __m512i line;
            if (osz == 1) {
                /* the codes lie in the output's range (or 0..15 for 4 bits), so the saturating
                 * packs only narrow them; a dword permute restores the order (against four
                 * vpmovdb and three inserts: 11.8 -> 12.5 Gelem/s in cache on Zen 5) */
                const __m512i w01 = _mm512_packs_epi32(q[0], q[1]), w23 = _mm512_packs_epi32(q[2], q[3]);
                line = out_type == RQ_Q_I8 ? _mm512_packs_epi16(w01, w23) : _mm512_packus_epi16(w01, w23);
                line = _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13,
                                                                  2, 6, 10, 14, 3, 7, 11, 15), line);
            } else {
                line = _mm512_castsi256_si512(_mm512_cvtepi32_epi16(q[0]));
                line = _mm512_inserti64x4(line, _mm512_cvtepi32_epi16(q[1]), 1);
            }
            if (nt) _mm512_stream_si512((__m512i *)((uint8_t *)a->y + i * osz), line);
            else _mm512_store_si512((__m512i *)((uint8_t *)a->y + i * osz), line);
        }
    }
    for (; i + 64 <= n; i += 64) {
        for (int u = 0; u < 4; u++) {
            q_params(a, i + 16 * u, ps, qmin, qmax, 0xFFFF, 1, &s, &lo, &hi, &zp);
            q_store(a->y, i + 16 * u,
                    QCORE(q_load(a->x, i + 16 * u, in_f16, 0xFFFF, 1)), out_type, 0xFFFF, 1);
        }
    }
    if (ps != 2 && n >= 16) {
        /* the last partial vector as a whole one ending at n: elements computed twice, with the
         * same values.  Masked stores were the cost of short runs (per-axis, 256 channels of 49
         * elements, 16M float32, 1 thread, Zen 5: 10.7-12.0 ms with a masked tail, 2.7 ms
         * for 64-element runs without) */
        for (; i + 16 <= n; i += 16) {
            q_params(a, i, ps, qmin, qmax, 0xFFFF, 1, &s, &lo, &hi, &zp);
            q_store(a->y, i, QCORE(q_load(a->x, i, in_f16, 0xFFFF, 1)), out_type, 0xFFFF, 1);
        }
        if (i < n) {
            i = n - 16;
            q_params(a, i, ps, qmin, qmax, 0xFFFF, 1, &s, &lo, &hi, &zp);
            q_store(a->y, i, QCORE(q_load(a->x, i, in_f16, 0xFFFF, 1)), out_type, 0xFFFF, 1);
        }
        return;
    }
    for (; i < n; i += 16) {
        int64_t k = n - i < 16 ? n - i : 16;
        __mmask16 m = (__mmask16)((1u << k) - 1u);
        q_params(a, i, ps, qmin, qmax, m, 0, &s, &lo, &hi, &zp);
        q_store(a->y, i, QCORE(q_load(a->x, i, in_f16, m, 0)), out_type, m, 0);
    }
#undef QCORE
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
#define Q_PSS(IN) if (a->pstride > 0) { Q_DIVS(IN, 1) } else if (a->pstride < 0) { Q_DIVS(IN, 2) } else { Q_DIVS(IN, 0) }

/* ---- quantize variants (rq_quant.h: RQ_QV_*), the same steps as rq_quantize1v ----------- */

AI __m512i qv_core(__m512 xf, __m512 s, __m512 r, __m512 zpf, __m512i zp, __m512 lo, __m512 hi,
                   __m512i nanq, const int V)
{
    if (V & RQ_QV_P16) xf = round_f16(xf);
    __m512 v = (V & RQ_QV_RECIP) ? _mm512_mul_ps(xf, r) : _mm512_div_ps(xf, s);
    if ((V & RQ_QV_P16) && !((V & RQ_QV_ZPB) && (V & RQ_QV_FMA))) v = round_f16(v);
    __m512 w;
    if ((V & RQ_QV_ZPB) && (V & RQ_QV_P16)) {
        if (V & RQ_QV_FMA) {
            /* v = x * r exact; v + zp rounded to odd (rq_add_odd), then to float16 */
            const __m512 t = _mm512_add_ps(v, zpf), bb = _mm512_sub_ps(t, v);
            const __m512 e = _mm512_add_ps(_mm512_sub_ps(v, _mm512_sub_ps(t, bb)), _mm512_sub_ps(zpf, bb));
            const __m512i u = _mm512_castps_si512(t), one = _mm512_set1_epi32(1);
            const __mmask16 fix = _mm512_cmp_ps_mask(e, _mm512_setzero_ps(), _CMP_NEQ_OQ) &
                                  _mm512_cmp_ps_mask(_mm512_sub_ps(t, t), _mm512_setzero_ps(), _CMP_EQ_OQ) &
                                  _mm512_testn_epi32_mask(u, one);
            const __mmask16 up = ~(_mm512_cmp_ps_mask(e, _mm512_setzero_ps(), _CMP_GT_OQ) ^
                                   _mm512_cmp_ps_mask(t, _mm512_setzero_ps(), _CMP_GT_OQ));
            const __m512i d = _mm512_mask_mov_epi32(_mm512_set1_epi32(-1), up, one);
            w = round_f16(_mm512_castsi512_ps(_mm512_mask_add_epi32(u, fix, u, d)));
        } else {
            w = round_f16(_mm512_add_ps(v, round_f16(zpf)));
        }
    } else {
        w = (V & RQ_QV_ZPB) ? ((V & RQ_QV_FMA) ? _mm512_fmadd_ps(xf, r, zpf) : _mm512_add_ps(v, zpf)) : v;
    }
    const __mmask16 nan = _mm512_cmp_ps_mask(w, w, _CMP_UNORD_Q);
    if (V & RQ_QV_WRAP) {
        /* rounded unclamped (roundscale keeps huge, infinite and NaN values); cvttps2dq gives
         * INT32_MIN for NaN, +-Inf and values outside int32; zero point added with wraparound */
        __m512 t;
        if (V & RQ_QV_RAWAY) {
            t = _mm512_roundscale_ps(w, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            __m512 d = _mm512_sub_ps(w, t);
            t = _mm512_mask_add_ps(t, _mm512_cmp_ps_mask(d, _mm512_set1_ps(0.5f), _CMP_GE_OQ), t, _mm512_set1_ps(1.0f));
            t = _mm512_mask_sub_ps(t, _mm512_cmp_ps_mask(d, _mm512_set1_ps(-0.5f), _CMP_LE_OQ), t, _mm512_set1_ps(1.0f));
        } else if (V & RQ_QV_RUP) {
            t = _mm512_roundscale_ps(w, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
            __m512 d = _mm512_sub_ps(w, t);
            t = _mm512_mask_add_ps(t, _mm512_cmp_ps_mask(d, _mm512_set1_ps(0.5f), _CMP_GE_OQ), t, _mm512_set1_ps(1.0f));
        } else {
            t = _mm512_roundscale_ps(w, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        }
        __m512i q = _mm512_cvttps_epi32(t);
        if (!(V & RQ_QV_ZPB)) q = _mm512_add_epi32(q, zp);
        q = _mm512_min_epi32(_mm512_max_epi32(q, _mm512_cvtps_epi32(_mm512_add_ps(lo, (V & RQ_QV_ZPB) ? _mm512_setzero_ps() : zpf))),
                             _mm512_cvtps_epi32(_mm512_add_ps(hi, (V & RQ_QV_ZPB) ? _mm512_setzero_ps() : zpf)));
        return (V & RQ_QV_NANWRAP) ? q : _mm512_mask_mov_epi32(q, nan, nanq);
    }
    w = _mm512_max_ps(w, lo);
    w = _mm512_min_ps(w, hi);
    __m512i q;
    if (V & RQ_QV_RAWAY) {
        __m512 t = _mm512_roundscale_ps(w, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        __m512 d = _mm512_sub_ps(w, t);                                   /* exact */
        t = _mm512_mask_add_ps(t, _mm512_cmp_ps_mask(d, _mm512_set1_ps(0.5f), _CMP_GE_OQ), t, _mm512_set1_ps(1.0f));
        t = _mm512_mask_sub_ps(t, _mm512_cmp_ps_mask(d, _mm512_set1_ps(-0.5f), _CMP_LE_OQ), t, _mm512_set1_ps(1.0f));
        q = _mm512_cvttps_epi32(t);
    } else if (V & RQ_QV_RUP) {
        __m512 f = _mm512_roundscale_ps(w, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
        __m512 d = _mm512_sub_ps(w, f);                                   /* exact */
        f = _mm512_mask_add_ps(f, _mm512_cmp_ps_mask(d, _mm512_set1_ps(0.5f), _CMP_GE_OQ), f, _mm512_set1_ps(1.0f));
        q = _mm512_cvttps_epi32(f);
    } else {
        q = _mm512_cvtps_epi32(w);                                        /* RNE */
    }
    if (!(V & RQ_QV_ZPB)) q = _mm512_add_epi32(q, zp);
    return _mm512_mask_mov_epi32(q, nan, nanq);
}

AI void qvrun(const rq_qrun_args *a, const int in_f16, const int ps, const int V)
{
    const int out_type = a->out_type;
    int32_t qmin, qmax;
    rq_qrange(out_type, &qmin, &qmax);
    const __m512i vqmin = _mm512_set1_epi32(qmin), vqmax = _mm512_set1_epi32(qmax);
    const int nanc = (a->variant >> RQ_QV_NAN_SHIFT) & 3;
    __m512 s = _mm512_set1_ps(a->s[0]), r = _mm512_set1_ps((V & RQ_QV_P16) ? rq_round_f16(1.0f / a->s[0]) : 1.0f / a->s[0]);
    __m512i zp = _mm512_set1_epi32(a->zp[0]);
    __m512 zpf = _mm512_cvtepi32_ps(zp);
    __m512 lo, hi;
    __m512i nanq;
    const int64_t n = a->n;
    for (int64_t i = 0; i < n; i += 16) {
        const int full = i + 16 <= n;
        const __mmask16 m = full ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
        if (ps || i == 0) {
            if (ps) {
                s = full ? _mm512_loadu_ps(a->s + i) : _mm512_mask_loadu_ps(_mm512_set1_ps(1.0f), m, a->s + i);
                zp = full ? _mm512_loadu_si512(a->zp + i) : _mm512_maskz_loadu_epi32(m, a->zp + i);
                zpf = _mm512_cvtepi32_ps(zp);
                if (V & RQ_QV_RECIP) r = _mm512_div_ps(_mm512_set1_ps(1.0f), s);
                if ((V & RQ_QV_RECIP) && (V & RQ_QV_P16)) r = round_f16(r);
            }
            if (V & RQ_QV_ZPB) { lo = _mm512_cvtepi32_ps(vqmin); hi = _mm512_cvtepi32_ps(vqmax); }
            else {
                lo = _mm512_cvtepi32_ps(_mm512_sub_epi32(vqmin, zp));
                hi = _mm512_cvtepi32_ps(_mm512_sub_epi32(vqmax, zp));
            }
            nanq = nanc == 1 ? vqmax
                 : nanc == 2 ? _mm512_min_epi32(_mm512_max_epi32(zp, vqmin), vqmax)
                 : nanc == 3 ? _mm512_min_epi32(_mm512_max_epi32(_mm512_setzero_si512(), vqmin), vqmax)
                 : vqmin;
        }
        if (full) {
            const int xsz = in_f16 ? 2 : 4;
            _mm_prefetch((const char *)a->x + (i + RQ_QPF) * xsz, _MM_HINT_T0);
            if (a->nontemporal) _mm_prefetch((const char *)a->x + (i + RQ_QPF2) * xsz, _MM_HINT_T1);
        }
        q_store(a->y, i, qv_core(q_load(a->x, i, in_f16, m, full), s, r, zpf, zp, lo, hi, nanq, V),
                out_type, m, full);
    }
}

#define QV_V(F16, PS) RQ_QV_SWITCH(qvrun, a, F16, PS)

static void qv_dispatch(const rq_qrun_args *a)
{
    /* the arithmetic flags are compiled in; the NaN code is a constant chosen at run time */
    if (a->in_type == RQ_F_F16) {
        if (a->pstride) { QV_V(1, 1) } else { QV_V(1, 0) }
    } else {
        if (a->pstride) { QV_V(0, 1) } else { QV_V(0, 0) }
    }
}

void rq_quantize_run__avx512(const rq_qrun_args *a)
{
    if (a->variant) { qv_dispatch(a); return; }
    if (a->in_type == RQ_F_F16) { Q_PSS(1) } else { Q_PSS(0) }
}

/* ---- dequantize ------------------------------------------------------------------------- */

AI __m512i dq_load(const void *x, int64_t i, int in_type, __mmask16 m, int full)
{
    switch (in_type) {
    case RQ_Q_U8: case RQ_Q_I8: case RQ_Q_U4: case RQ_Q_I4: {
        __m128i b = full ? _mm_loadu_si128((const __m128i *)((const uint8_t *)x + i))
                         : _mm_maskz_loadu_epi8(m, (const uint8_t *)x + i);
        if (in_type == RQ_Q_U8) return _mm512_cvtepu8_epi32(b);
        if (in_type == RQ_Q_I8) return _mm512_cvtepi8_epi32(b);
        __m512i v = _mm512_cvtepu8_epi32(b);
        if (in_type == RQ_Q_U4) return _mm512_and_si512(v, _mm512_set1_epi32(0xF));
        return _mm512_srai_epi32(_mm512_slli_epi32(v, 28), 28);
    }
    case RQ_Q_U16: case RQ_Q_I16: {
        __m256i w = full ? _mm256_loadu_si256((const __m256i *)((const uint16_t *)x + i))
                         : _mm256_maskz_loadu_epi16(m, (const uint16_t *)x + i);
        return in_type == RQ_Q_U16 ? _mm512_cvtepu16_epi32(w) : _mm512_cvtepi16_epi32(w);
    }
    default:
        return full ? _mm512_loadu_si512((const int32_t *)x + i) : _mm512_maskz_loadu_epi32(m, (const int32_t *)x + i);
    }
}

AI __m512 dq_core(__m512i q, __m512i zp, __m512 s, int out_f16)
{
    __m512 d = _mm512_cvtepi32_ps(_mm512_sub_epi32(q, zp));     /* cvtdq2ps: RNE */
    if (out_f16) return round_f16(_mm512_mul_ps(round_f16(d), s));
    return _mm512_mul_ps(d, s);
}

AI void dq_store(void *y, int64_t i, __m512 v, int out_f16, __mmask16 m, int full)
{
    if (out_f16) {
        __m256i h = _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        if (full) _mm256_storeu_si256((__m256i *)((uint16_t *)y + i), h);
        else _mm256_mask_storeu_epi16((uint16_t *)y + i, m, h);
    } else {
        if (full) _mm512_storeu_ps((float *)y + i, v);
        else _mm512_mask_storeu_ps((float *)y + i, m, v);
    }
}

AI void dq_params(const rq_dqrun_args *a, int64_t i, int ps, __mmask16 m, int full, __m512 *s, __m512i *zp)
{
    if (!ps) return;
    if (ps == 2) {      /* blocks of 2^-pstride elements from the run's start (as q_params) */
        const int64_t bi = i >> (-a->pstride);
        *s = _mm512_set1_ps(a->s[bi]);
        *zp = _mm512_set1_epi32(a->zp[bi]);
        (void)m; (void)full;
        return;
    }
    *s = full ? _mm512_loadu_ps(a->s + i) : _mm512_maskz_loadu_ps(m, a->s + i);
    *zp = full ? _mm512_loadu_si512(a->zp + i) : _mm512_maskz_loadu_epi32(m, a->zp + i);
}

AI void dqrun(const rq_dqrun_args *a, const int in_type, const int out_f16, const int ps)
{
    __m512 s = _mm512_set1_ps(a->s[0]);
    __m512i zp = _mm512_set1_epi32(a->zp[0]);
    const int64_t n = a->n;
    const int osz = out_f16 ? 2 : 4;
    int64_t i = 0;
    if (ps != 2 && n >= 64 && ((uintptr_t)a->y & (uintptr_t)(osz - 1)) == 0) {
        /* 64-byte aligned output: no store splits a cache line; stream large outputs (not for
         * blocks: every vector stays 16-aligned to the run there) */
        int64_t pre = (int64_t)(((64 - ((uintptr_t)a->y & 63)) & 63) / (uintptr_t)osz);
        for (; i < pre; i += 16) {   /* whole vectors, as in qrun */
            dq_params(a, i, ps, 0xFFFF, 1, &s, &zp);
            dq_store(a->y, i, dq_core(dq_load(a->x, i, in_type, 0xFFFF, 1), zp, s, out_f16), out_f16, 0xFFFF, 1);
        }
        i = pre;
        const int nt = a->nontemporal;
        const int isz = (in_type == RQ_Q_I32) ? 4 : (in_type == RQ_Q_U16 || in_type == RQ_Q_I16) ? 2 : 1;
        /* 64 elements per iteration: 4 (float32) or 2 (float16) whole output cache lines */
        const int64_t iend = nt ? rq_stream_end(i, n, 64, 16) : n;
        for (; i + 64 <= iend; i += 64) {
            for (int l = 0; l < 64 * isz; l += 64)   /* prefetch the input ~2 KiB ahead */
                _mm_prefetch((const char *)a->x + i * isz + 2048 + l, _MM_HINT_T0);
            __m512 v[4];
            for (int u = 0; u < 4; u++) {
                dq_params(a, i + 16 * u, ps, 0xFFFF, 1, &s, &zp);
                v[u] = dq_core(dq_load(a->x, i + 16 * u, in_type, 0xFFFF, 1), zp, s, out_f16);
            }
            if (out_f16) {
                for (int u = 0; u < 4; u += 2) {
                    __m512i line = _mm512_castsi256_si512(_mm512_cvtps_ph(v[u], _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
                    line = _mm512_inserti64x4(line, _mm512_cvtps_ph(v[u + 1], _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), 1);
                    if (nt) _mm512_stream_si512((__m512i *)((uint16_t *)a->y + i + 16 * u), line);
                    else _mm512_store_si512((__m512i *)((uint16_t *)a->y + i + 16 * u), line);
                }
            } else {
                for (int u = 0; u < 4; u++) {
                    if (nt) _mm512_stream_ps((float *)a->y + i + 16 * u, v[u]);
                    else _mm512_store_ps((float *)a->y + i + 16 * u, v[u]);
                }
            }
        }
    }
    for (; i + 32 <= n; i += 32) {
        dq_params(a, i, ps, 0xFFFF, 1, &s, &zp);
        dq_store(a->y, i, dq_core(dq_load(a->x, i, in_type, 0xFFFF, 1), zp, s, out_f16), out_f16, 0xFFFF, 1);
        dq_params(a, i + 16, ps, 0xFFFF, 1, &s, &zp);
        dq_store(a->y, i + 16, dq_core(dq_load(a->x, i + 16, in_type, 0xFFFF, 1), zp, s, out_f16), out_f16, 0xFFFF, 1);
    }
    if (ps != 2 && n >= 16 && i < n) {   /* the last partial vector as a whole one (qrun) */
        if (i + 16 <= n) {
            dq_params(a, i, ps, 0xFFFF, 1, &s, &zp);
            dq_store(a->y, i, dq_core(dq_load(a->x, i, in_type, 0xFFFF, 1), zp, s, out_f16), out_f16, 0xFFFF, 1);
            i += 16;
        }
        if (i < n) {
            i = n - 16;
            dq_params(a, i, ps, 0xFFFF, 1, &s, &zp);
            dq_store(a->y, i, dq_core(dq_load(a->x, i, in_type, 0xFFFF, 1), zp, s, out_f16), out_f16, 0xFFFF, 1);
        }
        return;
    }
    for (; i < n; i += 16) {
        int64_t k = n - i < 16 ? n - i : 16;
        __mmask16 m = (__mmask16)((1u << k) - 1u);
        dq_params(a, i, ps, m, 0, &s, &zp);
        dq_store(a->y, i, dq_core(dq_load(a->x, i, in_type, m, 0), zp, s, out_f16), out_f16, m, 0);
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
#define DQ_PSS(F16) if (a->pstride > 0) { DQ_INS(F16, 1) } else if (a->pstride < 0) { DQ_INS(F16, 2) } else { DQ_INS(F16, 0) }

/* fl32(fl32(x*s) - fl32(zp*s)) (rq_dqrun_args.sts): float32 output, 8/16-bit x, pstride >= 0;
 * large outputs streamed from a 64-byte aligned point, as dqrun */
AI void dqrun_sts(const rq_dqrun_args *a, const int in_type, const int ps)
{
    __m512 s = _mm512_set1_ps(a->s[0]);
    __m512 zs = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_set1_epi32(a->zp[0])), s);
    const int64_t n = a->n;
    float *y = (float *)a->y;
    int64_t i = 0;
    const int nt = a->nontemporal && ((uintptr_t)y & 3) == 0;
    const int64_t pre = nt ? (int64_t)(((64 - ((uintptr_t)y & 63)) & 63) / 4) : 0;
    for (;;) {
        const int64_t left = n - i;
        if (left <= 0) break;
        const int full = left >= 16 && !(i < pre);
        const int64_t k = i < pre ? (pre - i < left ? pre - i : left) : (left < 16 ? left : 16);
        const __mmask16 m = full ? (__mmask16)0xFFFF : (__mmask16)((1u << k) - 1u);
        if (ps) {
            s = full ? _mm512_loadu_ps(a->s + i) : _mm512_maskz_loadu_ps(m, a->s + i);
            const __m512i z = full ? _mm512_loadu_si512(a->zp + i) : _mm512_maskz_loadu_epi32(m, a->zp + i);
            zs = _mm512_mul_ps(_mm512_cvtepi32_ps(z), s);
        }
        const __m512 v = _mm512_sub_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(dq_load(a->x, i, in_type, m, full)), s), zs);
        if (!full) _mm512_mask_storeu_ps(y + i, m, v);
        else if (nt) _mm512_stream_ps(y + i, v);
        else _mm512_storeu_ps(y + i, v);
        i += full ? 16 : k;
    }
}

void rq_dequantize_run__avx512(const rq_dqrun_args *a)
{
    if (a->sts) {
        RQ_DQ_STS_SWITCH(dqrun_sts, a, a->pstride > 0)
        return;
    }
    if (a->out_type == RQ_F_F16) { DQ_PSS(1) } else { DQ_PSS(0) }
}

/* ---- min / max -------------------------------------------------------------------------- */

int rq_minmax_f32__avx512(const float *x, int64_t n, float *mn, float *mx)
{
    /* four min / max chains, and the largest |x| bit pattern as an integer (vpandd + vpmaxud,
     * no mask registers): NaN / Inf iff it reaches 0x7f800000.  Two chains with a compare to a
     * mask per vector ran at 74-84 GB/s even from L2 (Zen 5, 1 thread; the kor chain) */
    __m512 lo = _mm512_set1_ps(rq_ld_f32(x)), hi = lo;
    const __m512i absm = _mm512_set1_epi32(0x7fffffff);
    __m512i am = _mm512_setzero_si512(), am2 = am;
    int64_t i = 0;
    __m512 lo2 = lo, hi2 = hi, lo3 = lo, hi3 = hi, lo4 = lo, hi4 = hi;
    if (n >= 80 && ((uintptr_t)x & 3) == 0) {
        /* the main loop on 64-byte lines: numpy places large arrays 16 bytes past a line, and
         * loads that span two lines read L3 at 64-74 GB/s against 106-112 aligned (4M float32,
         * Zen 5, 1 thread).  The first vector, read whole, covers the elements before the
         * line; min / max see some elements twice, which changes nothing */
        const __m512 v = _mm512_loadu_ps(x);
        am = _mm512_and_si512(_mm512_castps_si512(v), absm);
        lo = _mm512_min_ps(lo, v);
        hi = _mm512_max_ps(hi, v);
        i = (int64_t)(((64 - ((uintptr_t)x & 63)) & 63) / 4);
    }
    for (; i + 64 <= n; i += 64) {
        for (int l = 0; l < 256; l += 64) {
            /* (an L2 prefetch RQ_QPF2 ahead as well: 1M float32 in L3 32 -> 49 us, no gain
             * from DRAM at 16M) */
            _mm_prefetch((const char *)(x + i) + 2048 + l, _MM_HINT_T0);
        }
        const __m512 v = _mm512_loadu_ps(x + i), w = _mm512_loadu_ps(x + i + 16);
        const __m512 v3 = _mm512_loadu_ps(x + i + 32), v4 = _mm512_loadu_ps(x + i + 48);
        am = _mm512_max_epu32(am, _mm512_and_si512(_mm512_castps_si512(v), absm));
        am2 = _mm512_max_epu32(am2, _mm512_and_si512(_mm512_castps_si512(w), absm));
        am = _mm512_max_epu32(am, _mm512_and_si512(_mm512_castps_si512(v3), absm));
        am2 = _mm512_max_epu32(am2, _mm512_and_si512(_mm512_castps_si512(v4), absm));
        lo = _mm512_min_ps(lo, v);
        hi = _mm512_max_ps(hi, v);
        lo2 = _mm512_min_ps(lo2, w);
        hi2 = _mm512_max_ps(hi2, w);
        lo3 = _mm512_min_ps(lo3, v3);
        hi3 = _mm512_max_ps(hi3, v3);
        lo4 = _mm512_min_ps(lo4, v4);
        hi4 = _mm512_max_ps(hi4, v4);
    }
    lo = _mm512_min_ps(_mm512_min_ps(lo, lo2), _mm512_min_ps(lo3, lo4));
    hi = _mm512_max_ps(_mm512_max_ps(hi, hi2), _mm512_max_ps(hi3, hi4));
    am = _mm512_max_epu32(am, am2);
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        am = _mm512_max_epu32(am, _mm512_and_si512(_mm512_castps_si512(v), absm));
        lo = _mm512_min_ps(lo, v);
        hi = _mm512_max_ps(hi, v);
    }
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        __m512 v = _mm512_mask_loadu_ps(lo, m, x + i);   /* inactive lanes repeat lo: neutral */
        am = _mm512_max_epu32(am, _mm512_maskz_and_epi32(m, _mm512_castps_si512(v), absm));
        lo = _mm512_min_ps(lo, v);
        v = _mm512_mask_loadu_ps(hi, m, x + i);
        hi = _mm512_max_ps(hi, v);
    }
    const __mmask16 bad = _mm512_cmpge_epu32_mask(am, _mm512_set1_epi32(0x7f800000));
    *mn = _mm512_reduce_min_ps(lo);
    *mx = _mm512_reduce_max_ps(hi);
    return bad != 0;
}

void rq_cvt_f32_f16__avx512(const float *s, uint16_t *d, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(d + i),
                            _mm512_cvtps_ph(_mm512_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++) d[i] = rq_f32_to_f16(s[i]);
}

/* ---- float8 QuantizeLinear / DequantizeLinear (rq_f8.h) --------------------------------- */
#define RQ_F8_SUFFIX __avx512
#include "rq_f8.h"

void rq_cvt_f32_bf16__avx512(const float *s, uint16_t *d, int64_t n)
{
    RQ_CVT_BF16_BODY
}
