/* gemm_avx512.c -- AVX-512 BW integer GEMM on int16 operands (the gemm_avx2.c algorithm on zmm:
 * 32 columns per panel pair, 16 per panel).  Exact, no int16 saturation.
 *
 * A' = A - za[i] and B' = B - zb[j] are in [-255, 255] as int16; vpmaddwd forms
 * A'[k]B'[k] + A'[k+1]B'[k+1] exactly in int32 (|.| <= 130050) and vpaddd accumulates with
 * wraparound, so the sums are exact modulo 2^32 with the zero points already folded in. */
#include "rq_gemm.h"
#include "../common/rq_cpu.h"
#include <immintrin.h>
#include <string.h>
#if defined(_OPENMP)
#include <omp.h>
#endif

static inline int imin(int a, int b) { return a < b ? a : b; }
#define MR 6

static inline int32_t ldv(const uint8_t *p, int sgn) { return sgn ? (int32_t)(int8_t)*p : (int32_t)*p; }

#include "gemm_i16_pack.inc"

/* Not inlined, and on a 64-byte boundary (as kern_6x16 in gemm_avx2.c: its placement inside
 * the tile loop moved with unrelated code). */
__attribute__((noinline, aligned(64))) static void kern_6x32(const int16_t *ap, int K2, const int16_t *b0,
                                                              const int16_t *b1, int32_t *out) {
    __m512i c00 = _mm512_setzero_si512(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
            c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    const int32_t *a = (const int32_t *)ap;
    for (int g = 0; g < K2; g++) {
        __m512i B0 = _mm512_load_si512((const void *)(b0 + 32 * g));
        __m512i B1 = _mm512_load_si512((const void *)(b1 + 32 * g));
        __m512i x;
        x = _mm512_set1_epi32(a[g]);
        c00 = _mm512_add_epi32(c00, _mm512_madd_epi16(x, B0)); c01 = _mm512_add_epi32(c01, _mm512_madd_epi16(x, B1));
        x = _mm512_set1_epi32(a[g + K2]);
        c10 = _mm512_add_epi32(c10, _mm512_madd_epi16(x, B0)); c11 = _mm512_add_epi32(c11, _mm512_madd_epi16(x, B1));
        x = _mm512_set1_epi32(a[g + 2 * K2]);
        c20 = _mm512_add_epi32(c20, _mm512_madd_epi16(x, B0)); c21 = _mm512_add_epi32(c21, _mm512_madd_epi16(x, B1));
        x = _mm512_set1_epi32(a[g + 3 * K2]);
        c30 = _mm512_add_epi32(c30, _mm512_madd_epi16(x, B0)); c31 = _mm512_add_epi32(c31, _mm512_madd_epi16(x, B1));
        x = _mm512_set1_epi32(a[g + 4 * K2]);
        c40 = _mm512_add_epi32(c40, _mm512_madd_epi16(x, B0)); c41 = _mm512_add_epi32(c41, _mm512_madd_epi16(x, B1));
        x = _mm512_set1_epi32(a[g + 5 * K2]);
        c50 = _mm512_add_epi32(c50, _mm512_madd_epi16(x, B0)); c51 = _mm512_add_epi32(c51, _mm512_madd_epi16(x, B1));
    }
    _mm512_storeu_si512((void *)(out + 0), c00); _mm512_storeu_si512((void *)(out + 16), c01);
    _mm512_storeu_si512((void *)(out + 32), c10); _mm512_storeu_si512((void *)(out + 48), c11);
    _mm512_storeu_si512((void *)(out + 64), c20); _mm512_storeu_si512((void *)(out + 80), c21);
    _mm512_storeu_si512((void *)(out + 96), c30); _mm512_storeu_si512((void *)(out + 112), c31);
    _mm512_storeu_si512((void *)(out + 128), c40); _mm512_storeu_si512((void *)(out + 144), c41);
    _mm512_storeu_si512((void *)(out + 160), c50); _mm512_storeu_si512((void *)(out + 176), c51);
}

int rq_gemm_i16__avx512(const rq_gemm_args *a, const rq_epi *e, rq_epi_fn epi, int nthreads) {
    const int M = a->M, N = a->N, K = a->K;
    const int K2 = (K + 1) / 2, Kp = 2 * K2;
    const int npan = (N + 15) / 16, npan2 = (npan + 1) / 2 * 2;  /* 16-column panels, even count */
    const int nrb = (M + MR - 1) / MR;
    int16_t *bp = (int16_t *)rq_aligned_alloc(sizeof(int16_t) * (size_t)npan2 * 16 * Kp);
    int16_t *ap = (int16_t *)rq_aligned_alloc(sizeof(int16_t) * (size_t)nrb * MR * Kp);
    if (!bp || !ap) { rq_aligned_free(bp); rq_aligned_free(ap); return RQ_ENOMEM; }
    /* B' panels (gemm_i16_pack.inc): 16-column blocks by vector code, the rest column by column */
    const int nvec = i16_pack_b_vec(a, bp, Kp, 16, nthreads);
    if (nvec < 0) { rq_aligned_free(bp); rq_aligned_free(ap); return RQ_ENOMEM; }
#if defined(_OPENMP)
#pragma omp parallel for num_threads(nthreads) schedule(static) if (nthreads > 1 && (size_t)K * N > 65536)
#endif
    for (int p = nvec; p < npan2; p++) {
        int16_t *d = bp + (size_t)p * 16 * Kp;
        for (int c = 0; c < 16; c++) {
            int j = p * 16 + c;
            if (j >= N) { for (int k = 0; k < Kp; k++) d[(k / 2) * 32 + c * 2 + (k & 1)] = 0; continue; }
            int32_t zb = a->b_zp[a->b_zp_n == 1 ? 0 : j];
            const uint8_t *s = a->B + (ptrdiff_t)j * a->b_cs;
            for (int k = 0; k < Kp; k++)
                d[(k / 2) * 32 + c * 2 + (k & 1)] = k < K ? (int16_t)(ldv(s + (ptrdiff_t)k * a->b_rs, a->b_signed) - zb) : 0;
        }
    }
    i16_a_rows(a, ap, nrb * MR, Kp);
    const int npp = npan2 / 2;
    int jbw = (int)((256 * 1024) / ((size_t)(Kp > 0 ? Kp : 2) * 64));   /* (K = 0: no divide by zero) */
    if (jbw < 1) jbw = 1;
    if (jbw > npp) jbw = npp;
    int rchunk = nthreads > 1 ? (nrb + nthreads - 1) / nthreads : nrb;
    const int nrc = (nrb + rchunk - 1) / rchunk;
    const int njb = (npp + jbw - 1) / jbw, ntask = njb * nrc;
#if defined(_OPENMP)
#pragma omp parallel for num_threads(nthreads) schedule(static) if (nthreads > 1 && ntask > 1)
#endif
    for (int t = 0; t < ntask; t++) {
        const int jb = t / nrc, rc = t % nrc;
        int32_t out[MR * 32] __attribute__((aligned(64)));
        for (int rb = rc * rchunk; rb < imin(nrb, (rc + 1) * rchunk); rb++) {
            const int i0 = rb * MR, mi = imin(MR, M - i0);
            for (int pp = jb * jbw; pp < imin(npp, (jb + 1) * jbw); pp++) {
                const int16_t *b0 = bp + (size_t)(2 * pp) * 16 * Kp;
                kern_6x32(ap + (size_t)i0 * Kp, K2, b0, b0 + (size_t)16 * Kp, out);
                const int j0 = pp * 32;
                if (j0 < N) epi(e, i0, mi, j0, imin(32, N - j0), out, 32);
            }
        }
    }
    rq_aligned_free(bp); rq_aligned_free(ap);
    return RQ_OK;
}

/* ---------------------------------------------------------------- int16 pair saturation */
#define SAT16_FN rq_gemm_sat16__avx512
#define SAT16_ACC(c, t, ones) _mm512_add_epi32((c), _mm512_madd_epi16((t), (ones)))
#include "gemm_sat16_avx512.inc"
#undef SAT16_FN
#undef SAT16_ACC
