/* gemm_avx2.c -- AVX2 integer GEMM on int16 operands (exact, no int16 saturation).
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

/* Not inlined, and on a 64-byte boundary: inlined into the tile loop its inner loop's placement
 * moved with unrelated code, by up to 8% at 1024^3 (Zen 5, session 16). */
__attribute__((noinline, aligned(64))) static void kern_6x16(const int16_t *ap, int K2, const int16_t *b0,
                                                              const int16_t *b1, int32_t *out) {
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
            c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    const int32_t *a = (const int32_t *)ap;
    for (int g = 0; g < K2; g++) {
        __m256i B0 = _mm256_load_si256((const __m256i *)(b0 + 16 * g));
        __m256i B1 = _mm256_load_si256((const __m256i *)(b1 + 16 * g));
        __m256i x;
        x = _mm256_set1_epi32(a[g]);
        c00 = _mm256_add_epi32(c00, _mm256_madd_epi16(x, B0)); c01 = _mm256_add_epi32(c01, _mm256_madd_epi16(x, B1));
        x = _mm256_set1_epi32(a[g + K2]);
        c10 = _mm256_add_epi32(c10, _mm256_madd_epi16(x, B0)); c11 = _mm256_add_epi32(c11, _mm256_madd_epi16(x, B1));
        x = _mm256_set1_epi32(a[g + 2 * K2]);
        c20 = _mm256_add_epi32(c20, _mm256_madd_epi16(x, B0)); c21 = _mm256_add_epi32(c21, _mm256_madd_epi16(x, B1));
        x = _mm256_set1_epi32(a[g + 3 * K2]);
        c30 = _mm256_add_epi32(c30, _mm256_madd_epi16(x, B0)); c31 = _mm256_add_epi32(c31, _mm256_madd_epi16(x, B1));
        x = _mm256_set1_epi32(a[g + 4 * K2]);
        c40 = _mm256_add_epi32(c40, _mm256_madd_epi16(x, B0)); c41 = _mm256_add_epi32(c41, _mm256_madd_epi16(x, B1));
        x = _mm256_set1_epi32(a[g + 5 * K2]);
        c50 = _mm256_add_epi32(c50, _mm256_madd_epi16(x, B0)); c51 = _mm256_add_epi32(c51, _mm256_madd_epi16(x, B1));
    }
    _mm256_storeu_si256((__m256i *)(out + 0), c00); _mm256_storeu_si256((__m256i *)(out + 8), c01);
    _mm256_storeu_si256((__m256i *)(out + 16), c10); _mm256_storeu_si256((__m256i *)(out + 24), c11);
    _mm256_storeu_si256((__m256i *)(out + 32), c20); _mm256_storeu_si256((__m256i *)(out + 40), c21);
    _mm256_storeu_si256((__m256i *)(out + 48), c30); _mm256_storeu_si256((__m256i *)(out + 56), c31);
    _mm256_storeu_si256((__m256i *)(out + 64), c40); _mm256_storeu_si256((__m256i *)(out + 72), c41);
    _mm256_storeu_si256((__m256i *)(out + 80), c50); _mm256_storeu_si256((__m256i *)(out + 88), c51);
}

#include "gemm_i16_pack.inc"

int rq_gemm_i16__avx2(const rq_gemm_args *a, const rq_epi *e, rq_epi_fn epi, int nthreads) {
    const int M = a->M, N = a->N, K = a->K;
    const int K2 = (K + 1) / 2, Kp = 2 * K2;
    const int npan = (N + 7) / 8, npan2 = (npan + 1) / 2 * 2;  /* 8-column panels, even count */
    const int nrb = (M + MR - 1) / MR;
    int16_t *bp = (int16_t *)rq_aligned_alloc(sizeof(int16_t) * (size_t)npan2 * 8 * Kp);
    int16_t *ap = (int16_t *)rq_aligned_alloc(sizeof(int16_t) * (size_t)nrb * MR * Kp);
    if (!bp || !ap) { rq_aligned_free(bp); rq_aligned_free(ap); return RQ_ENOMEM; }
    /* B' panels (gemm_i16_pack.inc): 16-column blocks by vector code, the rest column by column */
    const int nvec = i16_pack_b_vec(a, bp, Kp, 8, nthreads);
    if (nvec < 0) { rq_aligned_free(bp); rq_aligned_free(ap); return RQ_ENOMEM; }
#if defined(_OPENMP)
#pragma omp parallel for num_threads(nthreads) schedule(static) if (nthreads > 1 && (size_t)K * N > 65536)
#endif
    for (int p = 2 * nvec; p < npan2; p++) {
        int16_t *d = bp + (size_t)p * 8 * Kp;
        for (int c = 0; c < 8; c++) {
            int j = p * 8 + c;
            if (j >= N) { for (int k = 0; k < Kp; k++) d[(k / 2) * 16 + c * 2 + (k & 1)] = 0; continue; }
            int32_t zb = a->b_zp[a->b_zp_n == 1 ? 0 : j];
            const uint8_t *s = a->B + (ptrdiff_t)j * a->b_cs;
            for (int k = 0; k < Kp; k++)
                d[(k / 2) * 16 + c * 2 + (k & 1)] = k < K ? (int16_t)(ldv(s + (ptrdiff_t)k * a->b_rs, a->b_signed) - zb) : 0;
        }
    }
    i16_a_rows(a, ap, nrb * MR, Kp);
    const int npp = npan2 / 2;
    int jbw = (int)((256 * 1024) / ((size_t)(Kp > 0 ? Kp : 2) * 32));   /* (K = 0: no divide by zero) */
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
        int32_t out[MR * 16] __attribute__((aligned(32)));
        for (int rb = rc * rchunk; rb < imin(nrb, (rc + 1) * rchunk); rb++) {
            const int i0 = rb * MR, mi = imin(MR, M - i0);
            for (int pp = jb * jbw; pp < imin(npp, (jb + 1) * jbw); pp++) {
                const int16_t *b0 = bp + (size_t)(2 * pp) * 8 * Kp;
                kern_6x16(ap + (size_t)i0 * Kp, K2, b0, b0 + (size_t)8 * Kp, out);
                const int j0 = pp * 16;
                if (j0 < N) epi(e, i0, mi, j0, imin(16, N - j0), out, 16);
            }
        }
    }
    rq_aligned_free(bp); rq_aligned_free(ap);
    return RQ_OK;
}

/* ---------------------------------------------------------------- int16 pair saturation
 * Profile int16_pair_saturation (ORT's AVX2 MLAS kernel, fbgemm): the raw uint8 x int8 products
 * of k-pairs (2j, 2j+1) are summed with int16 saturation before the int32 sum.  vpmaddubsw does
 * exactly that; vpmaddwd with ones then adds the two pair sums of a 4-byte group in int32 (exact).
 * B comes in the VNNI-4 packed layout (B_used; uint8 B is XORed back to its raw values here);
 * when A is the int8 operand the roles swap (B is vpmaddubsw's unsigned operand): the pair sums
 * are the same.  Zero points: row/column sums of the raw values (gemm.c). */
#define MRS 4
int rq_gemm_sat16__avx2(const rq_gemm_args *a, const rq_packed_b *pb, const rq_epi *e, rq_epi_fn epi,
                        int nthreads) {
    const int M = a->M, N = a->N, Kp = pb->Kp, npan = pb->Np / 16;
    const int nrb = (M + MRS - 1) / MRS;
    uint8_t *ap = rq_sat16_rows(a, nrb * MRS, Kp);
    if (!ap) return RQ_ENOMEM;
    const int a_unsigned = !a->a_signed;
    const __m256i bx = _mm256_set1_epi8(a->b_signed ? 0 : (char)0x80);
    const __m256i ones = _mm256_set1_epi16(1);
    const int ntask = nrb * npan;
#if defined(_OPENMP)
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 4) if (nthreads > 1 && ntask > 1)
#endif
    for (int t = 0; t < ntask; t++) {
        const int rb = t / npan, p = t % npan;
        int32_t out[MRS * 16] __attribute__((aligned(32)));
        __m256i c[MRS][2];
        for (int r = 0; r < MRS; r++) c[r][0] = c[r][1] = _mm256_setzero_si256();
        const uint8_t *panel = pb->data + (size_t)p * Kp * 16;
        const uint8_t *arow = ap + (size_t)rb * MRS * Kp;
        for (int g = 0; g < Kp / 4; g++) {
            __m256i B0 = _mm256_xor_si256(_mm256_load_si256((const __m256i *)(panel + g * 64)), bx);
            __m256i B1 = _mm256_xor_si256(_mm256_load_si256((const __m256i *)(panel + g * 64 + 32)), bx);
            for (int r = 0; r < MRS; r++) {
                __m256i x = _mm256_set1_epi32(rq_ld_i32(arow + (size_t)r * Kp + 4 * g));
                __m256i t0 = a_unsigned ? _mm256_maddubs_epi16(x, B0) : _mm256_maddubs_epi16(B0, x);
                __m256i t1 = a_unsigned ? _mm256_maddubs_epi16(x, B1) : _mm256_maddubs_epi16(B1, x);
                c[r][0] = _mm256_add_epi32(c[r][0], _mm256_madd_epi16(t0, ones));
                c[r][1] = _mm256_add_epi32(c[r][1], _mm256_madd_epi16(t1, ones));
            }
        }
        for (int r = 0; r < MRS; r++) {
            _mm256_store_si256((__m256i *)(out + 16 * r), c[r][0]);
            _mm256_store_si256((__m256i *)(out + 16 * r + 8), c[r][1]);
        }
        const int i0 = rb * MRS, j0 = p * 16;
        if (j0 < N) epi(e, i0, imin(MRS, M - i0), j0, imin(16, N - j0), out, 16);
    }
    rq_aligned_free(ap);
    return RQ_OK;
}

/* ---------------------------------------------------------------- VNNI-4 packing with AVX2
 * B (unit column stride) into the VNNI-4 panels of rq_pack_b (gemm.c pack_b_generic's bytes and
 * column sums) for the levels below AVX-512 VNNI: the vpmaddubsw kernels (int16 pair
 * saturation) and pack_weights there; not for b_raw (uint8 B kept raw: the AMX driver's).
 * Per 4-row group and 16 columns: 4 loads, byte then word
 * interleaves into 16 dwords of 4 k each, one 64-byte panel row; the column sums from the
 * stored bytes (vpmaddubsw against ones, then vpmaddwd: exact, |sum| <= 4 * 128 per dword).
 * Panels in blocks of 4 with the k-groups inner (each panel written front to back); the
 * columns of a last partial panel column by column. */
static void pack_vnni4_panels(rq_packed_b *pb, const uint8_t *B, ptrdiff_t b_rs, int p0, int p1) {
    const int K = pb->K, Kp = pb->Kp;
    const __m128i x = _mm_set1_epi8(pb->b_signed ? 0 : (char)0x80);
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    for (int pa = p0; pa < p1; pa += 4) {
        const int pe = imin(p1, pa + 4);
        __m256i cs[4][2];
        for (int q = 0; q < 4; q++) cs[q][0] = cs[q][1] = _mm256_setzero_si256();
        for (int g = 0; g < Kp / 4; g++) {
            for (int p = pa; p < pe; p++) {
                __m128i r[4];
                for (int j = 0; j < 4; j++) {
                    const int k = 4 * g + j;
                    r[j] = k < K ? _mm_xor_si128(_mm_loadu_si128((const __m128i *)(B + (ptrdiff_t)k * b_rs + 16 * p)), x)
                                 : _mm_setzero_si128();
                }
                const __m128i a0 = _mm_unpacklo_epi8(r[0], r[1]), a1 = _mm_unpackhi_epi8(r[0], r[1]);
                const __m128i b0 = _mm_unpacklo_epi8(r[2], r[3]), b1 = _mm_unpackhi_epi8(r[2], r[3]);
                const __m256i lo = _mm256_set_m128i(_mm_unpackhi_epi16(a0, b0), _mm_unpacklo_epi16(a0, b0));
                const __m256i hi = _mm256_set_m128i(_mm_unpackhi_epi16(a1, b1), _mm_unpacklo_epi16(a1, b1));
                uint8_t *d = pb->data + (size_t)p * Kp * 16 + (size_t)g * 64;
                _mm256_store_si256((__m256i *)d, lo);            /* columns 0-7 */
                _mm256_store_si256((__m256i *)(d + 32), hi);     /* columns 8-15 */
                const int q = p - pa;     /* int8 B_used: ones (unsigned) x bytes (signed) */
                cs[q][0] = _mm256_add_epi32(cs[q][0], _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, lo), ones16));
                cs[q][1] = _mm256_add_epi32(cs[q][1], _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, hi), ones16));
            }
        }
        for (int p = pa; p < pe; p++) {
            _mm256_storeu_si256((__m256i *)(pb->csum + 16 * p), cs[p - pa][0]);
            _mm256_storeu_si256((__m256i *)(pb->csum + 16 * p + 8), cs[p - pa][1]);
        }
    }
}

int rq_pack_b_rows__avx2(rq_packed_b *pb, const uint8_t *B, ptrdiff_t b_rs, int nthreads) {
    const int K = pb->K, N = pb->N, Kp = pb->Kp, Np = pb->Np;
    const int nfull = N / 16;
    const uint8_t x = pb->b_signed ? 0 : 0x80;
    if (pb->b_raw) return RQ_EARG;     /* raw uint8 B (the AMX driver's): pack_b_generic */
#if defined(_OPENMP)
#pragma omp parallel for num_threads(nthreads) schedule(static) if (nthreads > 1 && (size_t)K * N > 65536)
#endif
    for (int pq = 0; pq < (nfull + 3) / 4; pq++) pack_vnni4_panels(pb, B, b_rs, 4 * pq, imin(nfull, 4 * pq + 4));
    /* a partial last panel and the padding panels: the generic loop's bytes */
    for (int p = nfull; p < Np / 16; p++) {
        memset(pb->data + (size_t)p * Kp * 16, 0, (size_t)Kp * 16);
        for (int c = 0; c < 16; c++) {
            const int n = 16 * p + c;
            uint32_t s = 0;
            if (n < N) {
                uint8_t *col = pb->data + (size_t)p * Kp * 16 + (size_t)c * 4;
                for (int k = 0; k < K; k++) {
                    const uint8_t v = B[(ptrdiff_t)k * b_rs + n] ^ x;
                    col[(k / 4) * 64 + (k % 4)] = v;
                    s += (uint32_t)(int32_t)(int8_t)v;
                }
            }
            pb->csum[n] = (int32_t)s;
        }
    }
    return RQ_OK;
}

/* ---------------------------------------------------------------- AVX-VNNI: vpdpbusd on ymm
 * For CPUs with AVX-VNNI and no AVX-512 (Intel Alder Lake and later client cores, Sierra
 * Forest): the AVX2 level takes this kernel where the CPU reports the feature (rq_gemm_choose;
 * REFQUANT_DISABLE_ISA=avxvnni turns it off).  The arithmetic is the AVX-512 VNNI GEMM's
 * (rq_gemm.h): A_used (uint8; A ^ 0x80 when A is int8) times B_used (int8, VNNI-4 packed by
 * rq_pack_b), each vpdpbusd lane the exact sum of 4 products (|.| <= 4 * 255 * 128 < 2^31)
 * added with wraparound; the zero points enter through the caller's corrections (e).
 * Register tile: R rows (6, 4, 2 or 1) x one 16-column panel, 2R accumulators. */
#if RQ_HAVE_AVXVNNI
#define MRV 6
/* (named accumulators: an array of them, c[r][h], was kept on the stack by GCC 12, stored and
 * reloaded every k-group) */
static inline __attribute__((always_inline, target("avxvnni"))) void vnni_tile(const uint8_t *a0, ptrdiff_t ars,
                                                                             int ng, const uint8_t *panel,
                                                                             int32_t *out, const int R) {
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
            c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
#define VROW(r, x0, x1)                                                                              \
    if (R > r) {                                                                                     \
        const __m256i x = _mm256_set1_epi32(rq_ld_i32(a0 + r * ars + 4 * (ptrdiff_t)g));              \
        x0 = _mm256_dpbusd_avx_epi32(x0, x, B0);                                                     \
        x1 = _mm256_dpbusd_avx_epi32(x1, x, B1);                                                     \
    }
    for (int g = 0; g < ng; g++) {
        const __m256i B0 = _mm256_load_si256((const __m256i *)(panel + (size_t)g * 64));
        const __m256i B1 = _mm256_load_si256((const __m256i *)(panel + (size_t)g * 64 + 32));
        VROW(0, c00, c01) VROW(1, c10, c11) VROW(2, c20, c21) VROW(3, c30, c31) VROW(4, c40, c41) VROW(5, c50, c51)
    }
#undef VROW
#define VOUT(r, x0, x1)                                                                              \
    if (R > r) {                                                                                     \
        _mm256_store_si256((__m256i *)(out + 16 * r), x0);                                           \
        _mm256_store_si256((__m256i *)(out + 16 * r + 8), x1);                                       \
    }
    VOUT(0, c00, c01) VOUT(1, c10, c11) VOUT(2, c20, c21) VOUT(3, c30, c31) VOUT(4, c40, c41) VOUT(5, c50, c51)
#undef VOUT
}
#define VNNI_KERN(R)                                                                                   \
    __attribute__((noinline, aligned(64), target("avxvnni"))) static void vnni_##R##x16(                \
        const uint8_t *a0, ptrdiff_t ars, int ng, const uint8_t *panel, int32_t *out) {                \
        vnni_tile(a0, ars, ng, panel, out, R);                                                         \
    }
VNNI_KERN(6)
VNNI_KERN(4)
VNNI_KERN(2)
VNNI_KERN(1)

int rq_gemm_vnni__avxvnni(const rq_gemm_args *a, const rq_packed_b *pb, const rq_epi *e, rq_epi_fn epi,
                          int nthreads) {
    const int M = a->M, N = a->N, K = a->K, Kp = pb->Kp, npan = pb->Np / 16;
    const int ng = (K + 3) / 4, nrb = (M + MRV - 1) / MRV;
    /* uint8 A with rows of unit stride and K a multiple of 4 is A_used as it stands: the whole
     * row blocks read it in place, the last partial one is copied (as the AVX-512 VNNI GEMM) */
    const int direct = !a->a_signed && a->a_cs == 1 && K % 4 == 0 && K > 0;
    const int ipack0 = direct ? M / MRV * MRV : 0;
    const uint8_t ax = a->a_signed ? 0x80 : 0;
    uint8_t *ap = (uint8_t *)rq_aligned_alloc((size_t)(nrb * MRV - ipack0) * Kp + 64);
    if (!ap) return RQ_ENOMEM;
    /* A_used rows, zero past K (packed B is zero there) and past M (the last block's kernel
     * may take up to one more row than it has) */
    memset(ap + (size_t)(M - ipack0) * Kp, 0, (size_t)(nrb * MRV - M) * Kp);
    for (int i = ipack0; i < M; i++) {
        uint8_t *d = ap + (size_t)(i - ipack0) * Kp;
        const uint8_t *s = a->A + (ptrdiff_t)i * a->a_rs;
        if (a->a_cs == 1) for (int k = 0; k < K; k++) d[k] = s[k] ^ ax;
        else for (int k = 0; k < K; k++) d[k] = s[(ptrdiff_t)k * a->a_cs] ^ ax;
        memset(d + K, 0, (size_t)(Kp - K));
    }
    /* column blocks of panels sized for half the L2, row blocks inside; tasks = column blocks x
     * row chunks (one chunk per thread), at least one task per thread */
    const size_t pbytes = (size_t)(Kp > 0 ? Kp : 64) * 16;
    int jbw = (int)(((size_t)rq_l2_bytes() / 2) / pbytes);
    if (jbw < 1) jbw = 1;
    if (jbw > npan) jbw = npan;
    int njb = (npan + jbw - 1) / jbw;
    const int rchunk = nthreads > 1 ? (nrb + nthreads - 1) / nthreads : nrb;
    const int nrc = (nrb + rchunk - 1) / rchunk;
    if (nthreads > 1 && nrc * njb < nthreads) njb = imin(npan, (nthreads + nrc - 1) / nrc);
    jbw = (npan + njb - 1) / njb;
    njb = (npan + jbw - 1) / jbw;
    const int ntask = njb * nrc;
#if defined(_OPENMP)
#pragma omp parallel for num_threads(nthreads) schedule(static) if (nthreads > 1 && ntask > 1)
#endif
    for (int t = 0; t < ntask; t++) {
        const int jb = t / nrc, rc = t % nrc;
        int32_t out[MRV * 16] __attribute__((aligned(32)));
        for (int rb = rc * rchunk; rb < imin(nrb, (rc + 1) * rchunk); rb++) {
            const int i0 = rb * MRV, mi = imin(MRV, M - i0);
            const uint8_t *a0 = i0 < ipack0 ? a->A + (ptrdiff_t)i0 * a->a_rs : ap + (size_t)(i0 - ipack0) * Kp;
            const ptrdiff_t ars = i0 < ipack0 ? a->a_rs : Kp;
            for (int p = jb * jbw; p < imin(npan, (jb + 1) * jbw); p++) {
                const uint8_t *panel = pb->data + (size_t)p * Kp * 16;
                if (mi > 4) vnni_6x16(a0, ars, ng, panel, out);
                else if (mi > 2) vnni_4x16(a0, ars, ng, panel, out);
                else if (mi == 2) vnni_2x16(a0, ars, ng, panel, out);
                else vnni_1x16(a0, ars, ng, panel, out);
                const int j0 = p * 16;
                if (j0 < N) epi(e, i0, mi, j0, imin(16, N - j0), out, 16);
            }
        }
    }
    rq_aligned_free(ap);
    return RQ_OK;
}
#endif

/* ---------------------------------------------------------------- the epilogue at the AVX2 level
 * rq_epi_rows__scalar's arithmetic (rq_gemm.h) 8 columns a vector, for the common case: a
 * row-contiguous output, corrections by column (colfix) and row (rowfix) only, an int32 bias per
 * column or per row or none, float multipliers (per tensor, per column, or per row: mult_rows),
 * int32 / uint8 / int8 outputs.  acc = raw - colfix[j] - rowfix[i] + bias (vpaddd / vpsubd:
 * int32 wraparound); v = fl32(acc) * m (cvtdq2ps RNE, one float32 multiply), clamped to
 * [qmin - zp, qmax - zp], cvtps2dq (RNE in the default MXCSR: the kernels' threads run with it),
 * + zp, then packed with saturation (the values are already in range).  Everything else (per-row
 * / per-column zero-point products, float biases, oneDNN's order, fixed point) and the last
 * nj % 8 columns: the scalar definition. */
void rq_epi_rows__avx2(const rq_epi *e, int i0, int mi, int j0, int nj, const int32_t *raw, ptrdiff_t ldr) {
    const int nfull = nj & ~7;
    if (e->c_cs != 1 || e->za_row || e->zb_col || e->fx_mode || e->od || e->fbias || e->fbias2 ||
        (e->bias && e->bias_cs != 1 && e->bias_cs != 0) || nfull == 0) {
        rq_epi_rows__scalar(e, i0, mi, j0, nj, raw, ldr);
        return;
    }
    const int s32 = e->out_type == RQ_OUT_S32, u8 = e->out_type == RQ_OUT_U8;
    const __m256 lo = _mm256_set1_ps((float)(e->qmin - e->y_zp)), hi = _mm256_set1_ps((float)(e->qmax - e->y_zp));
    const __m256i zp = _mm256_set1_epi32(e->y_zp);
    const int per_col = !s32 && e->mult_n != 1 && !e->mult_rows;
    const int32_t *colfix = e->colfix;
    for (int r = 0; r < mi; r++) {
        const int i = i0 + r;
        const int32_t *rr = raw + r * ldr;
        const int32_t *bp = e->bias ? e->bias + (ptrdiff_t)i * e->bias_rs : NULL;
        /* per row: the row correction and a broadcast bias folded into one constant */
        uint32_t rowc = e->rowfix ? 0u - (uint32_t)e->rowfix[i] : 0u;
        if (bp && e->bias_cs == 0) rowc += (uint32_t)bp[0];
        const int bcol = bp && e->bias_cs == 1;
        const __m256i rc = _mm256_set1_epi32((int32_t)rowc);
        const __m256 m1 = _mm256_set1_ps(s32 ? 0.0f : e->mult_rows ? e->mult[i] : e->mult[0]);
        for (int c = 0; c < nfull; c += 8) {
            const int j = j0 + c;
            __m256i a = _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(rr + c)), rc);
            if (colfix) a = _mm256_sub_epi32(a, _mm256_loadu_si256((const __m256i *)(colfix + j)));
            if (bcol) a = _mm256_add_epi32(a, _mm256_loadu_si256((const __m256i *)(bp + j)));
            if (s32) {
                _mm256_storeu_si256((__m256i *)((int32_t *)e->C + (ptrdiff_t)i * e->c_rs + j), a);
                continue;
            }
            const __m256 m = per_col ? _mm256_loadu_ps(e->mult + j) : m1;
            const __m256 v = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(a), m), lo), hi);
            const __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(v), zp);
            const __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
            const __m128i q8 = u8 ? _mm_packus_epi16(w16, w16) : _mm_packs_epi16(w16, w16);
            _mm_storel_epi64((__m128i *)((uint8_t *)e->C + (ptrdiff_t)i * e->c_rs + j), q8);
        }
    }
    if (nfull < nj) rq_epi_rows__scalar(e, i0, mi, j0 + nfull, nj - nfull, raw + nfull, ldr);
}

/* ---------------------------------------------------------------- GEMV (1 to 4 rows), plain B
 * B (unit column stride) read in place, no packing pass, in 16-column strips: each group of GR
 * rows of B (4: AVX-VNNI, 2: exact int16) interleaved into two vectors of 8 columns, multiplied
 * by each row's A dword at that group.  B is read in slabs of GV_SLAB rows, each row streamed
 * left to right across the thread's columns, the running sums of every strip kept in a buffer
 * between slabs.  (Whole strips down K, one after another, read B at its row stride: 1 x 4096 x
 * 4096 took 5.9 ms, latency-bound, against 2.2 ms packing B first.)  The last K % GR rows come
 * from a zero-padded copy (their A dwords are zero past K), the last N % 16 columns from a
 * zero-padded copy of those columns (outputs beyond N are dropped). */
#ifndef GV_SLAB
#define GV_SLAB 8   /* rows per slab (AVX-VNNI, 1 x 4096 x 4096, 1 thread: 4 -> 704-727 us, 8 -> 448-476,
                     * 16 -> 648, 32 -> 1258, 64 -> 1822) */
#endif
/* one strip: ng whole groups of B (rows rs apart) and then the group in tail (GR x 16 bytes;
 * NULL: none); at[g * R + r] row r's dword at group g; the sums of row r added to
 * acc[16 r .. 16 r + 15]; prm: the kernel's per-strip constants */
typedef void (*gv_strip_fn)(const uint8_t *B, ptrdiff_t rs, const void *prm, int ng, const uint8_t *tail,
                            const int32_t *at, int32_t *acc);

/* the strips of rows [0, M) (R rows of at: M, or M + 1 with a row whose sums go to csum);
 * prm(s): strip s's constants; outputs: epi over each strip's sums (e, M rows) when epi is set,
 * else the raw sums into raw (rows ldr apart) and csum */
typedef struct {
    const rq_gemm_args *a; int GR, R;
    const int32_t *at; gv_strip_fn strip;
    const void *prm_full; const uint8_t *prm_strips; size_t prm_stride;   /* prm(s) = prm_strips + s * prm_stride, or prm_full */
    const rq_epi *e; rq_epi_fn epi;
    int32_t *raw; ptrdiff_t ldr; int32_t *csum;
} gv_job;

static int gemv_strips(const gv_job *J, int nthreads) {
    const rq_gemm_args *a = J->a;
    const int M = a->M, N = a->N, K = a->K, GR = J->GR, R = J->R;
    const int ng = K / GR, kt = K % GR, gs = GV_SLAB / GR;
    const int nstrip = (N + 15) / 16, nfs = N / 16;
    /* threads: K slices (each thread streams a contiguous part of B's rows into sums of its own,
     * added afterwards in int32 wraparound: the same bits); column slices made each thread read
     * part of every row (2 threads, 1 x 4096 x 4096 from DRAM: 1.15x one thread, K slices see
     * docs/performance.md) */
    const int nth = nthreads > 1 && (size_t)K * N >= 262144 ? imin(nthreads, (ng + gs - 1) / gs) : 1;
    const ptrdiff_t rs = a->b_rs;
    const size_t per = (size_t)nstrip * R * 16;   /* one thread's sums */
    uint8_t *edge = NULL;   /* the last partial strip's columns, zero padded to 16 */
    if (nfs < nstrip) {
        edge = (uint8_t *)rq_aligned_alloc((size_t)K * 16 + 64);
        if (!edge) return RQ_ENOMEM;
        memset(edge, 0, (size_t)K * 16 + 64);
        for (int k = 0; k < K; k++)
            memcpy(edge + (size_t)k * 16, a->B + (ptrdiff_t)k * rs + 16 * nfs, (size_t)(N - 16 * nfs));
    }
    int32_t *acc = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * per * (nth > 0 ? nth : 1) + 64);
    if (!acc) { rq_aligned_free(edge); return RQ_ENOMEM; }
    memset(acc, 0, sizeof(int32_t) * per * nth);
#if defined(_OPENMP)
#pragma omp parallel for num_threads(nth) schedule(static) if (nth > 1)
#endif
    for (int t = 0; t < nth; t++) {
        const int nsl = (ng + gs - 1) / gs;   /* slabs, split between the threads */
        const int ga = (int)((long)nsl * t / nth) * gs, gb = imin(ng, (int)((long)nsl * (t + 1) / nth) * gs);
        int32_t *at_ = acc + per * t;
        for (int g0 = ga; g0 < gb; g0 += gs)
            for (int s = 0; s < nstrip; s++) {
                const int full = s < nfs;
                const uint8_t *bs = full ? a->B + 16 * s : edge;
                const ptrdiff_t brs = full ? rs : 16;
                const void *prm = J->prm_strips ? (const void *)(J->prm_strips + (size_t)s * J->prm_stride) : J->prm_full;
                J->strip(bs + (ptrdiff_t)GR * g0 * brs, brs, prm, imin(gs, gb - g0), NULL, J->at + (size_t)g0 * R,
                         at_ + (size_t)s * R * 16);
            }
    }
    for (int t = 1; t < nth; t++) {   /* (uint32: wraparound) */
        uint32_t *d = (uint32_t *)acc;
        const uint32_t *q = (const uint32_t *)(acc + per * t);
        for (size_t i = 0; i < per; i++) d[i] += q[i];
    }
    uint8_t tail[64] __attribute__((aligned(16)));
    for (int s = 0; s < nstrip; s++) {
        const int j0 = 16 * s, nj = imin(16, N - j0), full = s < nfs;
        int32_t *as = acc + (size_t)s * R * 16;
        const void *prm = J->prm_strips ? (const void *)(J->prm_strips + (size_t)s * J->prm_stride) : J->prm_full;
        if (kt) {
            const uint8_t *bs = full ? a->B + j0 : edge;
            const ptrdiff_t brs = full ? rs : 16;
            memset(tail, 0, sizeof(tail));
            for (int k = 0; k < kt; k++) memcpy(tail + 16 * k, bs + (ptrdiff_t)(GR * ng + k) * brs, 16);
            J->strip(bs, brs, prm, 0, tail, J->at + (size_t)ng * R, as);
        }
        if (J->epi) {
            J->epi(J->e, 0, M, j0, nj, as, 16);
        } else {
            for (int r = 0; r < M; r++) memcpy(J->raw + (ptrdiff_t)r * J->ldr + j0, as + 16 * r, sizeof(int32_t) * (size_t)nj);
            if (J->csum) memcpy(J->csum + j0, as + 16 * M, sizeof(int32_t) * (size_t)nj);
        }
    }
    rq_aligned_free(acc); rq_aligned_free(edge);
    return RQ_OK;
}

/* exact int16 GEMV below VNNI: groups of 2 rows; (B[k] - zb, B[k+1] - zb) pairs as int16 (vpmovsxbw /
 * vpmovzxbw of the byte interleave, minus the strip's zero points) times the row's (A[k] - za,
 * A[k+1] - za) pair (vpmaddwd: exact, |.| <= 2 * 255 * 255), added with wraparound: the
 * zero points folded in, no corrections (rq_gemm_i16__avx2's arithmetic) */
typedef struct { int16_t zb[32]; } gi_prm;   /* a strip's zero points, each twice (the pairs), columns 0-15 */
static inline __attribute__((always_inline)) void gi_strip(const uint8_t *B, ptrdiff_t rs, const void *prm, int ng,
                                                           const uint8_t *tail, const int32_t *at, int32_t *out,
                                                           const int R, const int sgn) {
    const __m256i zlo = _mm256_loadu_si256((const __m256i *)((const gi_prm *)prm)->zb);
    const __m256i zhi = _mm256_loadu_si256((const __m256i *)(((const gi_prm *)prm)->zb + 16));
    __m256i c00 = _mm256_load_si256((const __m256i *)out), c01 = _mm256_load_si256((const __m256i *)(out + 8));
    __m256i c10 = c00, c11 = c01, c20 = c00, c21 = c01, c30 = c00, c31 = c01;
    if (R > 1) { c10 = _mm256_load_si256((const __m256i *)(out + 16)); c11 = _mm256_load_si256((const __m256i *)(out + 24)); }
    if (R > 2) { c20 = _mm256_load_si256((const __m256i *)(out + 32)); c21 = _mm256_load_si256((const __m256i *)(out + 40)); }
    if (R > 3) { c30 = _mm256_load_si256((const __m256i *)(out + 48)); c31 = _mm256_load_si256((const __m256i *)(out + 56)); }
    for (int g = 0; g < ng + (tail != NULL); g++) {
        const uint8_t *p = g < ng ? B + (ptrdiff_t)2 * g * rs : tail;
        const ptrdiff_t prs = g < ng ? rs : 16;
        const __m128i r0 = _mm_loadu_si128((const __m128i *)p), r1 = _mm_loadu_si128((const __m128i *)(p + prs));
        const __m128i l = _mm_unpacklo_epi8(r0, r1), h = _mm_unpackhi_epi8(r0, r1);
        const __m256i v0 = _mm256_sub_epi16(sgn ? _mm256_cvtepi8_epi16(l) : _mm256_cvtepu8_epi16(l), zlo);
        const __m256i v1 = _mm256_sub_epi16(sgn ? _mm256_cvtepi8_epi16(h) : _mm256_cvtepu8_epi16(h), zhi);
#define GI_ROW(r, x0, x1)                                                                            \
        if (R > r) {                                                                                 \
            const __m256i w = _mm256_set1_epi32(at[(size_t)g * R + r]);                              \
            x0 = _mm256_add_epi32(x0, _mm256_madd_epi16(w, v0));                                     \
            x1 = _mm256_add_epi32(x1, _mm256_madd_epi16(w, v1));                                     \
        }
        GI_ROW(0, c00, c01) GI_ROW(1, c10, c11) GI_ROW(2, c20, c21) GI_ROW(3, c30, c31)
#undef GI_ROW
    }
    _mm256_store_si256((__m256i *)out, c00); _mm256_store_si256((__m256i *)(out + 8), c01);
    if (R > 1) { _mm256_store_si256((__m256i *)(out + 16), c10); _mm256_store_si256((__m256i *)(out + 24), c11); }
    if (R > 2) { _mm256_store_si256((__m256i *)(out + 32), c20); _mm256_store_si256((__m256i *)(out + 40), c21); }
    if (R > 3) { _mm256_store_si256((__m256i *)(out + 48), c30); _mm256_store_si256((__m256i *)(out + 56), c31); }
}
#define GI_KERN(R, S)                                                                                \
    __attribute__((noinline)) static void gi_strip_##R##_##S(const uint8_t *B, ptrdiff_t rs, const void *prm, int ng, \
                                                             const uint8_t *tail, const int32_t *at, int32_t *acc) { \
        gi_strip(B, rs, prm, ng, tail, at, acc, R, S);                                               \
    }
GI_KERN(1, 0) GI_KERN(2, 0) GI_KERN(3, 0) GI_KERN(4, 0)
GI_KERN(1, 1) GI_KERN(2, 1) GI_KERN(3, 1) GI_KERN(4, 1)

int rq_gemv_i16__avx2(const rq_gemm_args *a, const rq_epi *e, rq_epi_fn epi, int nthreads) {
    const int M = a->M, N = a->N, K = a->K, G = (K + 1) / 2, nstrip = (N + 15) / 16;
    if (M > 4 || a->b_cs != 1) return RQ_EARG;
    int32_t *at = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * ((size_t)G * M + 8));
    gi_prm *zp = (gi_prm *)rq_aligned_alloc(sizeof(gi_prm) * (size_t)nstrip + 64);
    if (!at || !zp) { rq_aligned_free(at); rq_aligned_free(zp); return RQ_ENOMEM; }
    for (int r = 0; r < M; r++) {   /* (A[k] - za, A[k+1] - za) as two int16, zero past K */
        const int32_t za = a->a_zp[a->a_zp_n == 1 ? 0 : r];
        const uint8_t *src = a->A + (ptrdiff_t)r * a->a_rs;
        for (int g = 0; g < G; g++) {
            int16_t pr[2] = {0, 0};
            for (int j = 0; j < 2 && 2 * g + j < K; j++) {
                const uint8_t b = src[(ptrdiff_t)(2 * g + j) * a->a_cs];
                pr[j] = (int16_t)((a->a_signed ? (int32_t)(int8_t)b : (int32_t)b) - za);
            }
            memcpy(at + (size_t)g * M + r, pr, 4);
        }
    }
    for (int j = 0; j < 16 * nstrip; j++) {
        const int16_t z = j < N ? (int16_t)a->b_zp[a->b_zp_n == 1 ? 0 : j] : 0;
        zp[j / 16].zb[2 * (j % 16)] = zp[j / 16].zb[2 * (j % 16) + 1] = z;
    }
    static const gv_strip_fn fns[2][4] = {{gi_strip_1_0, gi_strip_2_0, gi_strip_3_0, gi_strip_4_0},
                                          {gi_strip_1_1, gi_strip_2_1, gi_strip_3_1, gi_strip_4_1}};
    gv_job J = {a, 2, M, at, fns[a->b_signed != 0][M - 1], NULL, (const uint8_t *)zp, sizeof(gi_prm),
                e, epi, NULL, 0, NULL};
    const int rc = gemv_strips(&J, nthreads);
    rq_aligned_free(at); rq_aligned_free(zp);
    return rc;
}

#if RQ_HAVE_AVXVNNI
/* AVX-VNNI: groups of 4 rows, B_used = B ^ 0x80 for a uint8 B (prm: the 16-byte xor), each group
 * interleaved into two vectors of 8 columns x 4 k (pack_vnni4_panels' byte and word interleaves)
 * and multiplied by the row's A_used dword (vpdpbusd); a row of ones (when csum is wanted) gives
 * B_used's column sums for A's zero point.  Raw sums into e0->C (rows e0->c_rs apart); the
 * caller applies the corrections and the epilogue (gemm.c, as for the AVX-512 GEMV). */
static inline __attribute__((always_inline)) void gv_rows(const uint8_t *p, ptrdiff_t rs, __m128i x,
                                                          __m256i *v0, __m256i *v1) {
    const __m128i r0 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)p), x);
    const __m128i r1 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(p + rs)), x);
    const __m128i r2 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(p + 2 * rs)), x);
    const __m128i r3 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(p + 3 * rs)), x);
    const __m128i a0 = _mm_unpacklo_epi8(r0, r1), a1 = _mm_unpackhi_epi8(r0, r1);
    const __m128i b0 = _mm_unpacklo_epi8(r2, r3), b1 = _mm_unpackhi_epi8(r2, r3);
    *v0 = _mm256_set_m128i(_mm_unpackhi_epi16(a0, b0), _mm_unpacklo_epi16(a0, b0));   /* columns 0-7 */
    *v1 = _mm256_set_m128i(_mm_unpackhi_epi16(a1, b1), _mm_unpacklo_epi16(a1, b1));   /* columns 8-15 */
}

static inline __attribute__((always_inline, target("avxvnni"))) void gv_strip(
    const uint8_t *B, ptrdiff_t rs, const void *prm, int ng, const uint8_t *tail, const int32_t *at, int32_t *out,
    const int R) {
    const __m128i x = _mm_loadu_si128((const __m128i *)prm);
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
            c30 = c00, c31 = c00, c40 = c00, c41 = c00;
#define GV_IN(r, x0, x1)                                                                             \
    if (R > r) {                                                                                     \
        x0 = _mm256_load_si256((const __m256i *)(out + 16 * r));                                     \
        x1 = _mm256_load_si256((const __m256i *)(out + 16 * r + 8));                                 \
    }
    GV_IN(0, c00, c01) GV_IN(1, c10, c11) GV_IN(2, c20, c21) GV_IN(3, c30, c31) GV_IN(4, c40, c41)
#undef GV_IN
#define GV_ROW(r, x0, x1)                                                                            \
    if (R > r) {                                                                                     \
        const __m256i w = _mm256_set1_epi32(at[(size_t)g * R + r]);                                  \
        x0 = _mm256_dpbusd_avx_epi32(x0, w, v0);                                                     \
        x1 = _mm256_dpbusd_avx_epi32(x1, w, v1);                                                     \
    }
    for (int g = 0; g < ng + (tail != NULL); g++) {
        __m256i v0, v1;
        if (g < ng) gv_rows(B + (ptrdiff_t)4 * g * rs, rs, x, &v0, &v1);
        else gv_rows(tail, 16, x, &v0, &v1);
        GV_ROW(0, c00, c01) GV_ROW(1, c10, c11) GV_ROW(2, c20, c21) GV_ROW(3, c30, c31) GV_ROW(4, c40, c41)
    }
#undef GV_ROW
#define GV_OUT(r, x0, x1)                                                                            \
    if (R > r) {                                                                                     \
        _mm256_store_si256((__m256i *)(out + 16 * r), x0);                                           \
        _mm256_store_si256((__m256i *)(out + 16 * r + 8), x1);                                       \
    }
    GV_OUT(0, c00, c01) GV_OUT(1, c10, c11) GV_OUT(2, c20, c21) GV_OUT(3, c30, c31) GV_OUT(4, c40, c41)
#undef GV_OUT
}
#define GV_KERN(R)                                                                                   \
    __attribute__((noinline, target("avxvnni"))) static void gv_strip_##R(                          \
        const uint8_t *B, ptrdiff_t rs, const void *prm, int ng, const uint8_t *tail, const int32_t *at, \
        int32_t *acc) {                                                                              \
        gv_strip(B, rs, prm, ng, tail, at, acc, R);                                                  \
    }
GV_KERN(1)
GV_KERN(2)
GV_KERN(3)
GV_KERN(4)
GV_KERN(5)

int rq_gemv_vnni__avxvnni(const rq_gemm_args *a, const rq_epi *e0, int32_t *csum, int nthreads) {
    const int M = a->M, K = a->K;
    if (M > 4 || a->b_cs != 1) return RQ_EARG;
    const int R = M + (csum != NULL), G = (K + 3) / 4;
    const uint8_t ax = a->a_signed ? 0x80 : 0;
    uint8_t x[16] __attribute__((aligned(16)));
    memset(x, a->b_signed ? 0 : 0x80, sizeof(x));
    int32_t *at = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * ((size_t)G * R + 8));
    if (!at) return RQ_ENOMEM;
    for (int g = 0; g < G; g++)   /* A_used dwords (and ones), zero past K */
        for (int r = 0; r < R; r++) {
            uint8_t b4[4] = {0, 0, 0, 0};
            for (int j = 0; j < 4 && 4 * g + j < K; j++)
                b4[j] = r == M ? 1 : (uint8_t)(a->A[(ptrdiff_t)r * a->a_rs + (ptrdiff_t)(4 * g + j) * a->a_cs] ^ ax);
            memcpy(at + (size_t)g * R + r, b4, 4);
        }
    static const gv_strip_fn fns[5] = {gv_strip_1, gv_strip_2, gv_strip_3, gv_strip_4, gv_strip_5};
    gv_job J = {a, 4, R, at, fns[R - 1], x, NULL, 0, NULL, NULL, (int32_t *)e0->C, e0->c_rs, csum};
    const int rc = gemv_strips(&J, nthreads);
    rq_aligned_free(at);
    return rc;
}
#endif
