/* gemm_avx512vnni.c -- AVX-512 VNNI (vpdpbusd) integer GEMM: B packing, packed GEMM, GEMV.
 *
 * vpdpbusd multiplies uint8 (first operand) by int8 (second) in groups of 4 and adds into int32
 * lanes with wraparound, so raw sums are exact modulo 2^32.  A_used = A ^ 0x80 for int8 A and
 * B_used = B ^ 0x80 for uint8 B; gemm.c applies the row/column-sum correction (rq_gemm.h). */
#include "rq_gemm.h"
#include "../common/rq_cpu.h"
#include "../common/rq_pool.h"
#include <immintrin.h>
#include <string.h>
#if defined(_OPENMP)
#include <omp.h>
#endif

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

#ifndef RQ_PACK_MT_MIN
#define RQ_PACK_MT_MIN 65536   /* B elements above which packing uses the threads (measured at 2 threads: 512^3 103 -> 95 us, 384x768x768 178 -> 150 us) */
#endif
#ifndef RQ_WALK_BAND
#define RQ_WALK_BAND 4
#endif
#ifndef RQ_PACK_PFG1
/* the same for a single 64-column group (the plain-B AMX driver's packer); 0: none.  The
 * hardware prefetchers follow its one-line-per-row stride on their own (measured in-process,
 * 1 thread, against 4 k-groups ahead: 128x768x768 59.7 -> 57.5 us, 128x1024x1024 128.8 ->
 * 126.8, 64x768x768 38.6 -> 37.6; the two-group loop below: no difference either way) */
#define RQ_PACK_PFG1 0
#endif
#ifndef RQ_PACK_PFG
#define RQ_PACK_PFG 2   /* B packing: software prefetch this many k-groups (4 rows each) ahead */
#endif

/* 4x4 transpose of 128-bit lanes: out_P = (v0.lP, v1.lP, v2.lP, v3.lP) */
static inline void lane_transpose(__m512i *v0, __m512i *v1, __m512i *v2, __m512i *v3) {
    __m512i t0 = _mm512_shuffle_i32x4(*v0, *v1, 0x44), t1 = _mm512_shuffle_i32x4(*v0, *v1, 0xEE);
    __m512i t2 = _mm512_shuffle_i32x4(*v2, *v3, 0x44), t3 = _mm512_shuffle_i32x4(*v2, *v3, 0xEE);
    *v0 = _mm512_shuffle_i32x4(t0, t2, 0x88); *v1 = _mm512_shuffle_i32x4(t0, t2, 0xDD);
    *v2 = _mm512_shuffle_i32x4(t1, t3, 0x88); *v3 = _mm512_shuffle_i32x4(t1, t3, 0xDD);
}

/* interleave rows r0..r3 (64 columns each) into 4 VNNI vectors (lane-scrambled: v_q lane L holds
 * columns 16L + 4q .. 16L + 4q + 3, 4 bytes each) */
static inline void interleave4(__m512i r0, __m512i r1, __m512i r2, __m512i r3, __m512i *v) {
    __m512i t0 = _mm512_unpacklo_epi8(r0, r1), t1 = _mm512_unpackhi_epi8(r0, r1);
    __m512i t2 = _mm512_unpacklo_epi8(r2, r3), t3 = _mm512_unpackhi_epi8(r2, r3);
    v[0] = _mm512_unpacklo_epi16(t0, t2); v[1] = _mm512_unpackhi_epi16(t0, t2);
    v[2] = _mm512_unpacklo_epi16(t1, t3); v[3] = _mm512_unpackhi_epi16(t1, t3);
}

static inline __m512i load_row(const uint8_t *p, __mmask64 m, __m512i x) {
    __m512i r = _mm512_maskz_loadu_epi8(m, p);
    return _mm512_mask_xor_epi32(r, (__mmask16)0xFFFF, r, x); /* x is 0 or 0x80.. (pads fixed below) */
}

typedef struct { rq_packed_b *pb; const uint8_t *B; ptrdiff_t b_rs; } packb_job;

/* one 64-column group: all k-groups, 4 panels, their column sums */
/* k-groups [g0, g1) of one 64-column group (any K / N edge), column sums into cs[4] */
static void packb_cg_range(const packb_job *J, int cg, int g0, int g1, __m512i *cs) {
    rq_packed_b *pb = J->pb;
    const uint8_t *B = J->B;
    const ptrdiff_t b_rs = J->b_rs;
    const int K = pb->K, N = pb->N, Kp = pb->Kp, Np = pb->Np;
    const __m512i x = _mm512_set1_epi8((pb->b_signed || pb->b_raw) ? 0 : (char)0x80);
    const int raw = pb->b_raw;
    const __m512i ones = _mm512_set1_epi8(1);
    const int c0 = cg * 64;
    const int nvalid = N - c0 >= 64 ? 64 : (N - c0 > 0 ? N - c0 : 0);
    const __mmask64 m = nvalid == 64 ? ~(__mmask64)0 : (((__mmask64)1 << nvalid) - 1);
    const int npan = imin(4, (Np - c0) / 16);
    const int pfd = 2;   /* k-groups ahead (measured: 2 beats 0, 4, 8 slightly) */
    for (int g = g0; g < g1; g++) {
        __m512i r[4];
        if (pfd > 0) for (int q = 0; q < 4; q++) {   /* the strided rows pfd groups ahead */
            int k = 4 * (g + pfd) + q;
            if (k < K) _mm_prefetch((const char *)(B + (ptrdiff_t)k * b_rs + c0), _MM_HINT_T0);
        }
        for (int q = 0; q < 4; q++) {
            int k = 4 * g + q;
            if (k < K) {
                __m512i v = _mm512_maskz_loadu_epi8(m, B + (ptrdiff_t)k * b_rs + c0);
                r[q] = _mm512_maskz_mov_epi8(m, _mm512_xor_si512(v, x));
            } else r[q] = _mm512_setzero_si512();
        }
        __m512i v[4];
        interleave4(r[0], r[1], r[2], r[3], v);
        lane_transpose(&v[0], &v[1], &v[2], &v[3]);
        for (int p = 0; p < npan; p++) {
            _mm512_store_si512((void *)(pb->data + (size_t)(cg * 4 + p) * Kp * 16 + (size_t)g * 64), v[p]);
            cs[p] = raw ? _mm512_dpbusd_epi32(cs[p], v[p], ones) : _mm512_dpbusd_epi32(cs[p], ones, v[p]);
        }
    }
}

/* k-groups [g0, g1) of a one-group pb (pb->N <= 64, B at its first column): packed, column sums
 * accumulated in cs[64] (zeroed by the caller before the first step), stored into pb->csum by
 * the step that ends at Kp / 4.  Steps in any split give the bytes and sums of one
 * rq_pack_b_rows__avx512vnni call on the group (the AMX plain-B driver packs the next group in
 * steps between the current group's tile calls). */
void rq_pack_b_group_step__avx512vnni(rq_packed_b *pb, const uint8_t *B, ptrdiff_t b_rs, int g0, int g1,
                                      int32_t *cs) {
    packb_job J = {pb, B, b_rs};
    __m512i c[4];
    for (int p = 0; p < 4; p++) c[p] = _mm512_loadu_si512((const void *)(cs + 16 * p));
    packb_cg_range(&J, 0, g0, g1, c);
    if (g1 >= pb->Kp / 4) {
        const int npan = imin(4, pb->Np / 16);
        for (int p = 0; p < npan; p++) _mm512_storeu_si512(pb->csum + 16 * p, c[p]);
    } else {
        for (int p = 0; p < 4; p++) _mm512_storeu_si512((void *)(cs + 16 * p), c[p]);
    }
}

/* one task: two 64-column groups (2t, 2t+1).  Whole groups with whole k-groups take an
 * unmasked loop that interleaves both (twice the loads in flight); edges the generic one. */
static void packb_cg(void *ctx, int64_t t) {
    const packb_job *J = (const packb_job *)ctx;
    rq_packed_b *pb = J->pb;
    const uint8_t *B = J->B;
    const ptrdiff_t b_rs = J->b_rs;
    const int K = pb->K, N = pb->N, Kp = pb->Kp, Np = pb->Np;
    const int ncg = (Np + 63) / 64, cga = 2 * (int)t, cgb = cga + 1;
    __m512i cs[2][4];
    for (int c = 0; c < 2; c++) for (int p = 0; p < 4; p++) cs[c][p] = _mm512_setzero_si512();
    int gdone = 0, gdone_a = 0;
    if (!(cgb < ncg && cgb * 64 + 64 <= N) && cga * 64 < N) {
        /* one group (the last, or a block of its own: the plain-B AMX driver's 64 columns, or
         * its narrower first and last groups), whole k-groups: one loop without per-row
         * checks; a narrower group's loads are masked and its padding columns are zero
         * (measured at 1 thread, 128x768x768 with B 16 bytes off a line: its 48- and
         * 16-column edge groups went through packb_cg_range, 4.6% of the time) */
        const int gf = K / 4, c0 = cga * 64, nv = N - c0 >= 64 ? 64 : N - c0;
        const __mmask64 m = nv == 64 ? ~(__mmask64)0 : (((__mmask64)1 << nv) - 1);
        const int npan = imin(4, (Np - c0) / 16);
        const __m512i ones = _mm512_set1_epi8(1);
        const int xr = !(pb->b_signed || pb->b_raw);   /* uint8 B as B ^ 0x80 */
        const __m512i x = _mm512_set1_epi8((char)0x80);
        const int raw = pb->b_raw;
        uint8_t *da = pb->data + (size_t)(cga * 4) * Kp * 16;
        const size_t ps = (size_t)Kp * 16;
        for (int g = 0; g < gf; g++) {
            const uint8_t *rp = B + (ptrdiff_t)(4 * g) * b_rs + c0;
            if (RQ_PACK_PFG1 > 0 && g + RQ_PACK_PFG1 < gf) for (int q = 0; q < 4; q++)
                _mm_prefetch((const char *)(rp + (4 * RQ_PACK_PFG1 + q) * b_rs), _MM_HINT_T0);
            __m512i ra[4], va[4];
            if (nv == 64) for (int q = 0; q < 4; q++) ra[q] = _mm512_loadu_si512((const void *)(rp + q * b_rs));
            else for (int q = 0; q < 4; q++) ra[q] = _mm512_maskz_loadu_epi8(m, (const void *)(rp + q * b_rs));
            if (xr) for (int q = 0; q < 4; q++)
                ra[q] = nv == 64 ? _mm512_xor_si512(ra[q], x) : _mm512_maskz_mov_epi8(m, _mm512_xor_si512(ra[q], x));
            interleave4(ra[0], ra[1], ra[2], ra[3], va);
            lane_transpose(&va[0], &va[1], &va[2], &va[3]);
            for (int p = 0; p < npan; p++) {
                _mm512_store_si512((void *)(da + p * ps + (size_t)g * 64), va[p]);
                cs[0][p] = raw ? _mm512_dpbusd_epi32(cs[0][p], va[p], ones)
                               : _mm512_dpbusd_epi32(cs[0][p], ones, va[p]);
            }
        }
        gdone_a = gf;
    }
    if (cgb < ncg && cgb * 64 + 64 <= N) {
        const int gf = K / 4;   /* k-groups with 4 valid rows */
        const int c0 = cga * 64;
        const __m512i ones = _mm512_set1_epi8(1);
        const __m512i x = _mm512_set1_epi8((pb->b_signed || pb->b_raw) ? 0 : (char)0x80);
    const int raw = pb->b_raw;
        uint8_t *da = pb->data + (size_t)(cga * 4) * Kp * 16, *db = pb->data + (size_t)(cgb * 4) * Kp * 16;
        const size_t ps = (size_t)Kp * 16;
        for (int g = 0; g < gf; g++) {
            const uint8_t *rp = B + (ptrdiff_t)(4 * g) * b_rs + c0;
            if (g + RQ_PACK_PFG < gf) for (int q = 0; q < 4; q++) {
                _mm_prefetch((const char *)(rp + (4 * RQ_PACK_PFG + q) * b_rs), _MM_HINT_T0);
                _mm_prefetch((const char *)(rp + (4 * RQ_PACK_PFG + q) * b_rs + 64), _MM_HINT_T0);
            }
            __m512i ra[4], rb[4], va[4], vb[4];
            for (int q = 0; q < 4; q++) {
                ra[q] = _mm512_xor_si512(_mm512_loadu_si512((const void *)(rp + q * b_rs)), x);
                rb[q] = _mm512_xor_si512(_mm512_loadu_si512((const void *)(rp + q * b_rs + 64)), x);
            }
            interleave4(ra[0], ra[1], ra[2], ra[3], va);
            interleave4(rb[0], rb[1], rb[2], rb[3], vb);
            lane_transpose(&va[0], &va[1], &va[2], &va[3]);
            lane_transpose(&vb[0], &vb[1], &vb[2], &vb[3]);
            for (int p = 0; p < 4; p++) {
                _mm512_store_si512((void *)(da + p * ps + (size_t)g * 64), va[p]);
                _mm512_store_si512((void *)(db + p * ps + (size_t)g * 64), vb[p]);
                if (raw) {   /* unsigned column sums: the bytes as the uint8 operand */
                    cs[0][p] = _mm512_dpbusd_epi32(cs[0][p], va[p], ones);
                    cs[1][p] = _mm512_dpbusd_epi32(cs[1][p], vb[p], ones);
                } else {
                    cs[0][p] = _mm512_dpbusd_epi32(cs[0][p], ones, va[p]);
                    cs[1][p] = _mm512_dpbusd_epi32(cs[1][p], ones, vb[p]);
                }
            }
        }
        gdone = gf;
    }
    for (int c = 0; c < 2; c++) {
        const int cg = cga + c;
        if (cg >= ncg) break;
        packb_cg_range(J, cg, c == 0 && gdone_a ? gdone_a : gdone, Kp / 4, cs[c]);
        const int npan = imin(4, (Np - cg * 64) / 16);
        for (int p = 0; p < npan; p++) _mm512_storeu_si512(pb->csum + cg * 64 + 16 * p, cs[c][p]);
    }
}

/* 64-column groups [cg0, cg1) of pb (any K / N edge), one thread, in walk order: the k-groups
 * outer and the column groups inner, so that the rows of B are read across the whole range at
 * once (sequentially for a whole row) instead of one or two lines per row per pass (a C
 * microbenchmark read a B from memory at 5-15 GB/s 64 or 128 columns at a time, 27 GB/s over
 * whole 4 KiB rows).  Column sums into pb->csum. */
int rq_pack_b_walk__avx512vnni(rq_packed_b *pb, const uint8_t *B, ptrdiff_t b_rs, int cg0, int cg1) {
    const int K = pb->K, N = pb->N, Kp = pb->Kp, gf = K / 4;
    const size_t ps = (size_t)Kp * 16;
    const int raw = pb->b_raw;
    const __m512i ones = _mm512_set1_epi8(1);
    const __m512i x = _mm512_set1_epi8((pb->b_signed || raw) ? 0 : (char)0x80);
    const int cw1 = imin(cg1, N / 64);   /* whole groups [cg0, cw1) */
    const int ncs = cg1 > cg0 ? cg1 - cg0 : 0;
    __m512i *cs = (__m512i *)rq_aligned_alloc(sizeof(__m512i) * 4 * (size_t)(ncs > 0 ? ncs : 1));
    if (!cs) return RQ_ENOMEM;
    for (int c = 0; c < 4 * ncs; c++) cs[c] = _mm512_setzero_si512();
    packb_job J = {pb, B, b_rs};
    /* bands of RQ_WALK_BAND k-groups: per column group, the band's rows one after the other, so
     * that each panel gets that many consecutive lines (C microbenchmark, 4096 x 4096 B in slabs
     * of 128 rows: 10-19 GB/s a k-group at a time, 21-23 in bands of 4; the column sums stay in
     * registers through a band) */
    for (int b0 = 0; b0 < gf && cw1 > cg0; b0 += RQ_WALK_BAND) {
        const int b1 = imin(gf, b0 + RQ_WALK_BAND);
        for (int cg = cg0; cg < cw1; cg++) {
            __m512i *c = cs + 4 * (cg - cg0);
            __m512i c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3];
            uint8_t *d = pb->data + (size_t)(cg * 4) * ps;
            for (int g = b0; g < b1; g++) {
                const uint8_t *rp = B + (ptrdiff_t)(4 * g) * b_rs + cg * 64;
                __m512i r[4], v[4];
                for (int q = 0; q < 4; q++) r[q] = _mm512_xor_si512(_mm512_loadu_si512((const void *)(rp + q * b_rs)), x);
                interleave4(r[0], r[1], r[2], r[3], v);
                lane_transpose(&v[0], &v[1], &v[2], &v[3]);
                uint8_t *dg = d + (size_t)g * 64;
                _mm512_store_si512((void *)dg, v[0]);
                _mm512_store_si512((void *)(dg + ps), v[1]);
                _mm512_store_si512((void *)(dg + 2 * ps), v[2]);
                _mm512_store_si512((void *)(dg + 3 * ps), v[3]);
                if (raw) {
                    c0 = _mm512_dpbusd_epi32(c0, v[0], ones); c1 = _mm512_dpbusd_epi32(c1, v[1], ones);
                    c2 = _mm512_dpbusd_epi32(c2, v[2], ones); c3 = _mm512_dpbusd_epi32(c3, v[3], ones);
                } else {
                    c0 = _mm512_dpbusd_epi32(c0, ones, v[0]); c1 = _mm512_dpbusd_epi32(c1, ones, v[1]);
                    c2 = _mm512_dpbusd_epi32(c2, ones, v[2]); c3 = _mm512_dpbusd_epi32(c3, ones, v[3]);
                }
            }
            c[0] = c0; c[1] = c1; c[2] = c2; c[3] = c3;
        }
    }
    for (int cg = cg0; cg < cg1; cg++) {
        /* whole groups: the last, partial k-group and K's padding; a partial group: all of it */
        packb_cg_range(&J, cg, cg < cw1 ? gf : 0, Kp / 4, cs + 4 * (cg - cg0));
        const int npan = imin(4, (pb->Np - cg * 64) / 16);
        for (int p = 0; p < npan; p++) _mm512_storeu_si512(pb->csum + cg * 64 + 16 * p, cs[4 * (cg - cg0) + p]);
    }
    rq_aligned_free(cs);
    return RQ_OK;
}

int rq_pack_b_rows__avx512vnni(rq_packed_b *pb, const uint8_t *B, ptrdiff_t b_rs, int nthreads) {
    const int ncg = (pb->Np + 63) / 64;  /* 64-column groups */
    packb_job J = {pb, B, b_rs};
    /* threads above RQ_PACK_MT_MIN elements (the pool's workers poll for work, so a split pays
     * off from small B on; the packed halves end in both cores' L2, which the threaded AMX GEMM
     * that follows reads anyway) */
    rq_parallel((ncg + 1) / 2, ((size_t)pb->K * pb->N > RQ_PACK_MT_MIN) ? nthreads : 1, packb_cg, &J);
    (void)load_row;
    return RQ_OK;
}

/* ---------------------------------------------------------------- conv weights, packed directly */

/* 16x16 transpose of int32: r[i] element c -> r[c] element i (unpacks within 128-bit lanes, then a
 * 4x4 lane transpose per column phase) */
static inline void tr16x16_epi32(__m512i *r) {
    __m512i t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    __m512i q[4][4];   /* q[i][c]: lane L = column 4L + c of rows 4i .. 4i + 3 */
    for (int i = 0; i < 4; i++) {
        q[i][0] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        q[i][1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        q[i][2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        q[i][3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int c = 0; c < 4; c++) {
        lane_transpose(&q[0][c], &q[1][c], &q[2][c], &q[3][c]);
        for (int P = 0; P < 4; P++) r[4 * P + c] = q[P][c];
    }
}

#ifndef RQ_PACKW_RUNS_MAX_KK
/* conv weights with 2 to this many taps: 16 groups at a time (packw_panel; 0: never; the
 * 128-byte windows hold a run up to 10 taps).  Zen 5, 1 thread, the packer alone, 512 -> 512
 * channels, us: 1x2 44 -> 16, 1x3 / 3x1 48 -> 20, 2x2 49-54 -> 31-34, 2x3 55-62 -> 52, 2x4 90
 * -> 84-88, 3x3 64-66 -> 58-60, 2x5 70 either way.  (Session 28's first version was slower at
 * 3x3, 64 -> 75: its 16 rows went through the stack -- a branch per row for channels past N and
 * the job's fields reloaded after every store; session 29 loads whole panels branch-free.) */
#define RQ_PACKW_RUNS_MAX_KK 10
#endif
#ifndef RQ_PACKW_PF
#define RQ_PACKW_PF 4
#endif
typedef struct {
    rq_packed_b *pb; const uint8_t *w; int Cin, Cp, KK; const uint8_t *idx;
    /* 16 groups (64 input channels) at a time (NULL: off): the row's (group, tap) dwords in
     * runs of 16, run m gathered by one two-register byte permute (idx2 + 64 m) from the 128
     * bytes at base[m] past the block's first byte */
    const uint8_t *idx2; const int *base;
    const int *dst;   /* run m's slot sl: panel row t * (Cp / 4) + gl of the block (dst[16 m + sl]) */
} packw_job;

/* one panel (16 output channels): for every group of 4 input channels, each channel's 4*KK bytes
 * w[co, 4g .. 4g+3, 0 .. KK-1] (contiguous) permuted to tap-major dwords (vpermb), then a 16x16
 * int32 transpose gives the panel rows (t, g) -- one pass over the weights, against a transpose
 * of the whole (Cout x K) matrix, a reorder of its rows and the VNNI-4 packer (measured 512->512
 * 3x3: about 840 -> 100 us).  Needs AVX512_VBMI (vpermb). */
__attribute__((target("avx512vbmi"))) static void packw_panel(void *ctx, int64_t p) {
    const packw_job *J = (const packw_job *)ctx;
    rq_packed_b *pb = J->pb;
    const int Cin = J->Cin, Cp = J->Cp, KK = J->KK, N = pb->N, Kp = pb->Kp, K = pb->K;
    const size_t rowlen = (size_t)Cin * KK;
    uint8_t *panel = pb->data + (size_t)p * Kp * 16;
    const __m512i x = _mm512_set1_epi8(pb->b_signed ? 0 : (char)0x80);
    const __m512i ones = _mm512_set1_epi8(1), idx = _mm512_loadu_si512((const void *)J->idx);
    const __mmask64 outm = KK * 4 >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (4 * KK)) - 1);
    const int co0 = (int)p * 16, nco = imin(16, N - co0);
    __m512i cs = _mm512_setzero_si512();
    if (KK == 1) {
        /* 1x1: each channel's 64 bytes are 16 groups' dwords already, so one 16x16 transpose
         * gives 16 panel rows (the loop below loads 4 bytes a channel and keeps 1 of 16: 512 ->
         * 2048 took about 170 us, see docs/performance.md) */
        for (int g0 = 0; g0 < Cp / 4; g0 += 16) {
            const int ng = imin(16, Cp / 4 - g0);
            int nb = Cin - 4 * g0;
            nb = nb > 64 ? 64 : (nb < 0 ? 0 : nb);
            const __mmask64 lm = nb >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << nb) - 1);
            __m512i v[16];
            const uint8_t *rp = J->w + (size_t)co0 * rowlen + (size_t)4 * g0;
            if (nco == 16 && nb == 64) {
                for (int c = 0; c < 16; c++) v[c] = _mm512_xor_si512(_mm512_loadu_si512((const void *)(rp + c * rowlen)), x);
            } else {
                for (int c = 0; c < 16; c++)
                    v[c] = _mm512_maskz_xor_epi32(c < nco ? (__mmask16)0xFFFF : 0, _mm512_maskz_loadu_epi8(c < nco ? lm : 0, rp + (c < nco ? c : 0) * rowlen), x);
            }
            tr16x16_epi32(v);
            for (int j = 0; j < ng; j++) {
                _mm512_store_si512((void *)(panel + (size_t)(g0 + j) * 64), v[j]);
                cs = _mm512_dpbusd_epi32(cs, ones, v[j]);
            }
        }
    }
    int gstart = 0;
    if (KK > 1 && J->idx2) {
        /* whole blocks of 16 groups, every channel real: each 16-dword run of the rows' (group,
         * tap) pairs (group-major) is one vpermt2b of a row's 128-byte window, then a 16x16
         * transpose gives 16 panel rows; no dword of the transposes is wasted (the loop below
         * uses KK of 16); the column sums in 4 chains */
        const int nblk = imin(Cin / 4, Cp / 4) / 16;
        __m512i csb[4] = {cs, _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
        const uint8_t *const __restrict w = J->w;
        const uint8_t *const __restrict idx2 = J->idx2;
        const int *const __restrict dst = J->dst, *const __restrict base = J->base;
        const int cgs = Cp / 4;
        for (int b = 0; b < nblk; b++) {
            const int g0 = 16 * b;
            const size_t bstart = (size_t)4 * g0 * KK;
            for (int m = 0; m < KK; m++) {
                const size_t off = bstart + (size_t)base[m];
                const ptrdiff_t rem = (ptrdiff_t)rowlen - (ptrdiff_t)off;   /* bytes left in the row */
                const __mmask64 ml = rem >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << rem) - 1);
                const __mmask64 mh = rem >= 128 ? ~(__mmask64)0 : rem > 64 ? (((__mmask64)1 << (rem - 64)) - 1) : 0;
                const __m512i ix = _mm512_loadu_si512((const void *)(idx2 + 64 * m));
                const uint8_t *rp = w + (size_t)co0 * rowlen + off;
                __m512i v[16];
                if (nco == 16 && rem >= 128) {
                    for (int c = 0; c < 16; c++)
                        v[c] = _mm512_xor_si512(_mm512_permutex2var_epi8(_mm512_loadu_si512((const void *)(rp + c * rowlen)), ix,
                                                                        _mm512_loadu_si512((const void *)(rp + c * rowlen + 64))), x);
                } else {
                    for (int c = 0; c < 16; c++) {
                        const int cc = c < nco ? c : 0;
                        const __mmask16 vm = c < nco ? (__mmask16)0xFFFF : 0;
                        const __m512i lo = _mm512_maskz_loadu_epi8(ml, rp + cc * rowlen);
                        const __m512i hi = _mm512_maskz_loadu_epi8(mh, rp + cc * rowlen + 64);
                        v[c] = _mm512_maskz_xor_epi32(vm, _mm512_permutex2var_epi8(lo, ix, hi), x);
                    }
                }
                tr16x16_epi32(v);
                uint8_t *pg = panel + (size_t)g0 * 64;
                const int *ds = dst + 16 * m;
                for (int sl = 0; sl < 16; sl++) {
                    _mm512_store_si512((void *)(pg + (size_t)ds[sl] * 64), v[sl]);
                    csb[sl & 3] = _mm512_dpbusd_epi32(csb[sl & 3], ones, v[sl]);
                }
                (void)cgs;
            }
        }
        cs = _mm512_add_epi32(_mm512_add_epi32(csb[0], csb[1]), _mm512_add_epi32(csb[2], csb[3]));
        gstart = 16 * nblk;
    }
    for (int g = gstart; KK > 1 && g < Cp / 4; g++) {
        int nci = Cin - 4 * g;
        nci = nci > 4 ? 4 : (nci < 0 ? 0 : nci);
        const int nb = nci * KK;
        const __mmask64 lm = nb >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << nb) - 1);
        __m512i v[16];
        for (int c = 0; c < 16; c++) {
            if (c < nco) {
#if RQ_PACKW_PF > 0
                _mm_prefetch((const char *)(J->w + (size_t)(co0 + c) * rowlen + (size_t)4 * (g + RQ_PACKW_PF) * KK), _MM_HINT_T0);
#endif
                /* channels past Cin: weight 0, stored as 0 ^ x like any other weight */
                __m512i r = _mm512_maskz_loadu_epi8(lm, J->w + (size_t)(co0 + c) * rowlen + (size_t)4 * g * KK);
                v[c] = _mm512_maskz_permutexvar_epi8(outm, idx, _mm512_xor_si512(r, x));
            } else {
                v[c] = _mm512_setzero_si512();   /* columns past N: zero, as the B packer leaves them */
            }
        }
        tr16x16_epi32(v);
        for (int t = 0; t < KK; t++) {
            _mm512_store_si512((void *)(panel + ((size_t)t * (Cp / 4) + g) * 64), v[t]);
            cs = _mm512_dpbusd_epi32(cs, ones, v[t]);
        }
    }
    for (int r = K / 4; r < Kp / 4; r++) _mm512_store_si512((void *)(panel + (size_t)r * 64), _mm512_setzero_si512());
    _mm512_storeu_si512((void *)(pb->csum + co0), cs);
}

int rq_pack_conv_w__avx512vnni(rq_packed_b *pb, const uint8_t *w, int Cin, int Cp, int KK, int nthreads) {
    if (Cp % 4 || Cp < Cin || KK < 1 || 4 * KK > 64 || pb->K != KK * Cp || pb->b_raw) return RQ_EARG;
    if (!rq_cpu_feature(RQ_FEAT_AVX512VBMI)) return RQ_EARG;   /* vpermb; the caller's staged packer otherwise */
    uint8_t idx[64] __attribute__((aligned(64)));
    for (int d = 0; d < 64; d++) {
        const int t = d / 4, j = d % 4;
        idx[d] = (uint8_t)(t < KK ? j * KK + t : 0);
    }
    /* the 16-group runs: run m holds the (group, tap) pairs 16 m .. 16 m + 15 (group-major);
     * its bytes must lie in one 128-byte window (true up to KK = 10) */
    uint8_t idx2[16 * 64] __attribute__((aligned(64)));
    int base[16], dst[256];
    int runs_ok = KK > 1 && KK <= RQ_PACKW_RUNS_MAX_KK && KK <= 16;
    for (int m = 0; runs_ok && m < KK; m++) {
        const int p0 = 16 * m;
        base[m] = 4 * (p0 / KK) * KK + p0 % KK;
        for (int d = 0; d < 64; d++) {
            const int pr = p0 + d / 4, j = d % 4, gl = pr / KK, t = pr % KK;
            const int src = (4 * gl + j) * KK + t - base[m];
            if (src < 0 || src >= 128) { runs_ok = 0; break; }
            idx2[64 * m + d] = (uint8_t)src;
            if (j == 0) dst[pr] = t * (Cp / 4) + gl;
        }
    }
    packw_job J = {pb, w, Cin, Cp, KK, idx, runs_ok ? idx2 : NULL, base, dst};
    const int npan = pb->Np / 16;
    rq_parallel(npan, ((size_t)pb->K * pb->N > RQ_PACK_MT_MIN) ? (nthreads > 0 ? nthreads : 1) : 1, packw_panel, &J);
    return RQ_OK;
}

/* ---------------------------------------------------------------- packed GEMM, 8 x 32 tiles */

#define MR 8
#ifndef RQ_VNNI_EPI_PAIRS
#define RQ_VNNI_EPI_PAIRS 2  /* packed VNNI GEMM: panel pairs per epilogue call */
#endif
#ifndef RQ_IA_EPI_PAIRS
#define RQ_IA_EPI_PAIRS 2    /* implicit conv: panel pairs per epilogue call */
#endif
#ifndef RQ_VNNI_DIRECT_C
#define RQ_VNNI_DIRECT_C 1   /* 0: int32 results through the epilogue always (A/B measurements) */
#endif
#ifndef RQ_VNNI_DIRECT_A
#define RQ_VNNI_DIRECT_A 1   /* 0: always copy A (A/B measurements) */
#endif

/* 8 rows of A_used at ap (row stride Kp bytes) times panels b0, b1 (16 columns each) over ng
 * k-groups of 4 */
static inline void kern_8x32(const uint8_t *ap, ptrdiff_t Kp, int ng, const uint8_t *b0, const uint8_t *b1,
                             int32_t *out /* [8][ldo] */, ptrdiff_t ldo) {
    __m512i c00 = _mm512_setzero_si512(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
            c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00, c61 = c00,
            c70 = c00, c71 = c00;
    for (int g = 0; g < ng; g++) {
        __m512i B0 = _mm512_load_si512((const void *)(b0 + g * 64));
        __m512i B1 = _mm512_load_si512((const void *)(b1 + g * 64));
        const uint8_t *a = ap + 4 * g;
        __m512i a0 = _mm512_set1_epi32(rq_ld_i32(a));
        c00 = _mm512_dpbusd_epi32(c00, a0, B0); c01 = _mm512_dpbusd_epi32(c01, a0, B1);
        __m512i a1 = _mm512_set1_epi32(rq_ld_i32(a + Kp));
        c10 = _mm512_dpbusd_epi32(c10, a1, B0); c11 = _mm512_dpbusd_epi32(c11, a1, B1);
        __m512i a2 = _mm512_set1_epi32(rq_ld_i32(a + 2 * Kp));
        c20 = _mm512_dpbusd_epi32(c20, a2, B0); c21 = _mm512_dpbusd_epi32(c21, a2, B1);
        __m512i a3 = _mm512_set1_epi32(rq_ld_i32(a + 3 * Kp));
        c30 = _mm512_dpbusd_epi32(c30, a3, B0); c31 = _mm512_dpbusd_epi32(c31, a3, B1);
        __m512i a4 = _mm512_set1_epi32(rq_ld_i32(a + 4 * Kp));
        c40 = _mm512_dpbusd_epi32(c40, a4, B0); c41 = _mm512_dpbusd_epi32(c41, a4, B1);
        __m512i a5 = _mm512_set1_epi32(rq_ld_i32(a + 5 * Kp));
        c50 = _mm512_dpbusd_epi32(c50, a5, B0); c51 = _mm512_dpbusd_epi32(c51, a5, B1);
        __m512i a6 = _mm512_set1_epi32(rq_ld_i32(a + 6 * Kp));
        c60 = _mm512_dpbusd_epi32(c60, a6, B0); c61 = _mm512_dpbusd_epi32(c61, a6, B1);
        __m512i a7 = _mm512_set1_epi32(rq_ld_i32(a + 7 * Kp));
        c70 = _mm512_dpbusd_epi32(c70, a7, B0); c71 = _mm512_dpbusd_epi32(c71, a7, B1);
    }
    _mm512_storeu_si512(out + 0 * ldo, c00); _mm512_storeu_si512(out + 0 * ldo + 16, c01);
    _mm512_storeu_si512(out + 1 * ldo, c10); _mm512_storeu_si512(out + 1 * ldo + 16, c11);
    _mm512_storeu_si512(out + 2 * ldo, c20); _mm512_storeu_si512(out + 2 * ldo + 16, c21);
    _mm512_storeu_si512(out + 3 * ldo, c30); _mm512_storeu_si512(out + 3 * ldo + 16, c31);
    _mm512_storeu_si512(out + 4 * ldo, c40); _mm512_storeu_si512(out + 4 * ldo + 16, c41);
    _mm512_storeu_si512(out + 5 * ldo, c50); _mm512_storeu_si512(out + 5 * ldo + 16, c51);
    _mm512_storeu_si512(out + 6 * ldo, c60); _mm512_storeu_si512(out + 6 * ldo + 16, c61);
    _mm512_storeu_si512(out + 7 * ldo, c70); _mm512_storeu_si512(out + 7 * ldo + 16, c71);
}

/* The same over a convolution's implicit rows (rq_implicit_a): row r's bytes of tap s are at
 * ar[r] + soff[s], ngs k-groups each, the taps' k-groups one after the other in the panels;
 * NP panels (1 or 2) */
static inline __attribute__((always_inline)) void kern_8xnp_ia(const uint8_t *const *ar, const ptrdiff_t *soff,
                                                                int ns, int ngs, const uint8_t *b0,
                                                                const uint8_t *b1, int32_t *out, ptrdiff_t ldo,
                                                                const int NP, const int R) {
    /* R (1 .. MR, a constant): rows computed, the rows of a last partial block only */
    __m512i c0[MR], c1[MR];
    for (int r = 0; r < MR; r++) { c0[r] = _mm512_setzero_si512(); c1[r] = c0[r]; }
    for (int t = 0; t < ns; t++) {
        const uint8_t *a0 = ar[0] + soff[t], *a1 = ar[R > 1 ? 1 : 0] + soff[t], *a2 = ar[R > 2 ? 2 : 0] + soff[t],
                      *a3 = ar[R > 3 ? 3 : 0] + soff[t], *a4 = ar[R > 4 ? 4 : 0] + soff[t],
                      *a5 = ar[R > 5 ? 5 : 0] + soff[t], *a6 = ar[R > 6 ? 6 : 0] + soff[t],
                      *a7 = ar[R > 7 ? 7 : 0] + soff[t];
        const uint8_t *p0 = b0 + (size_t)t * ngs * 64, *p1 = NP == 2 ? b1 + (size_t)t * ngs * 64 : p0;
        for (int g = 0; g < ngs; g++) {
            const __m512i B0 = _mm512_load_si512((const void *)(p0 + g * 64));
            const __m512i B1 = NP == 2 ? _mm512_load_si512((const void *)(p1 + g * 64)) : B0;
#define RQ_IA_ROW(r)                                                                                 \
            if (R > r) {                                                                             \
                const __m512i av = _mm512_set1_epi32(rq_ld_i32(a##r + 4 * g));              \
                c0[r] = _mm512_dpbusd_epi32(c0[r], av, B0);                                          \
                if (NP == 2) c1[r] = _mm512_dpbusd_epi32(c1[r], av, B1);                             \
            }
            RQ_IA_ROW(0) RQ_IA_ROW(1) RQ_IA_ROW(2) RQ_IA_ROW(3)
            RQ_IA_ROW(4) RQ_IA_ROW(5) RQ_IA_ROW(6) RQ_IA_ROW(7)
#undef RQ_IA_ROW
        }
    }
    for (int r = 0; r < R; r++) {
        _mm512_storeu_si512(out + ldo * r, c0[r]);
        if (NP == 2) _mm512_storeu_si512(out + ldo * r + 16, c1[r]);
    }
}

static inline void kern_8x16(const uint8_t *ap, ptrdiff_t Kp, int ng, const uint8_t *b0, int32_t *out,
                             ptrdiff_t ldo) {
    __m512i c[MR];
    for (int r = 0; r < MR; r++) c[r] = _mm512_setzero_si512();
    for (int g = 0; g < ng; g++) {
        __m512i B0 = _mm512_load_si512((const void *)(b0 + g * 64));
        for (int r = 0; r < MR; r++)
            c[r] = _mm512_dpbusd_epi32(c[r], _mm512_set1_epi32(rq_ld_i32(ap + r * Kp + 4 * g)), B0);
    }
    for (int r = 0; r < MR; r++) _mm512_storeu_si512(out + ldo * r, c[r]);
}

/* M <= 4 rows against packed B: NP (<= 4) panels of 16 columns at a time, R rows */
typedef struct {
    const uint8_t *ap; const rq_packed_b *pb; const rq_epi *e; rq_epi_fn epi;
    int M, N, Kp, npan, ngrp, ntask;
} gemv_packed_job;

static inline __attribute__((always_inline)) void gemv_packed_grp(const gemv_packed_job *J, int p0,
                                                                  const int R, const int NP) {
    const int Kp = J->Kp;
    const uint8_t *b = J->pb->data + (size_t)p0 * Kp * 16;
    __m512i c[4][4];
    for (int r = 0; r < R; r++)
        for (int q = 0; q < NP; q++) c[r][q] = _mm512_setzero_si512();
    for (int g = 0; g < Kp / 4; g++) {
        __m512i Bq[4];
        for (int q = 0; q < NP; q++) Bq[q] = _mm512_load_si512((const void *)(b + (size_t)q * Kp * 16 + g * 64));
        for (int r = 0; r < R; r++) {
            const __m512i av = _mm512_set1_epi32(rq_ld_i32(J->ap + (size_t)r * Kp + 4 * g));
            for (int q = 0; q < NP; q++) c[r][q] = _mm512_dpbusd_epi32(c[r][q], av, Bq[q]);
        }
    }
    int32_t out[4 * 64] __attribute__((aligned(64)));
    for (int r = 0; r < R; r++)
        for (int q = 0; q < NP; q++) _mm512_store_si512((void *)(out + r * 64 + q * 16), c[r][q]);
    const int j0 = p0 * 16;
    J->epi(J->e, 0, R, j0, imin(NP * 16, J->N - j0), out, 64);
}

#define RQ_GP_CASES(R)                                                                            \
    switch (np) {                                                                                 \
    case 4: gemv_packed_grp(J, p0, R, 4); break;                                                  \
    case 3: gemv_packed_grp(J, p0, R, 3); break;                                                  \
    case 2: gemv_packed_grp(J, p0, R, 2); break;                                                  \
    default: gemv_packed_grp(J, p0, R, 1); break;                                                 \
    }

static void gemv_packed_task(void *ctx, int64_t t) {
    const gemv_packed_job *J = (const gemv_packed_job *)ctx;
    const int g0 = (int)((int64_t)J->ngrp * t / J->ntask), g1 = (int)((int64_t)J->ngrp * (t + 1) / J->ntask);
    for (int gi = g0; gi < g1; gi++) {
        const int p0 = gi * 4, np = imin(4, J->npan - p0);
        switch (J->M) {
        case 1: RQ_GP_CASES(1) break;
        case 2: RQ_GP_CASES(2) break;
        case 3: RQ_GP_CASES(3) break;
        default: RQ_GP_CASES(4) break;
        }
    }
}
#undef RQ_GP_CASES

/* the packed VNNI GEMM's tasks (column block jb of panel pairs, row chunk rc of 8-row
 * blocks), run by the kernels' pool (rq_parallel): an OpenMP team here competed with the pool's
 * workers still spinning after the packing (2 threads, 128 x 768 x 768 on a Zen 5: 963 GOPS,
 * no faster than 1 thread) */
typedef struct {
    const rq_gemm_args *a; const rq_packed_b *pb; const rq_epi *e; rq_epi_fn epi;
    const uint8_t *ap;   /* copied rows (from ipack0 on), Kp apart */
    int M, N, Kp, Np, nrb, npp, jbw, nrc, rchunk, ipack0, ns, ngs;
    ptrdiff_t soff[64];  /* implicit rows: the taps' offsets */
    int mr;              /* implicit rows: rows a block (MR, or 7 where that makes no more blocks) */
} vnni_job;

static void vnni_ia_task(void *ctx, int64_t t) {
    const vnni_job *J = (const vnni_job *)ctx;
    const rq_implicit_a *ia = J->a->ia;
    const int M = J->M, N = J->N, Kp = J->Kp, Np = J->Np;
    const int jb = (int)(t / J->nrc), rc = (int)(t % J->nrc), jbw = J->jbw;
    /* the block's panel pairs (at most RQ_IA_EPI_PAIRS at a time) into one buffer, then one
     * epilogue call over them */
    int32_t out[MR * 32 * RQ_IA_EPI_PAIRS] __attribute__((aligned(64)));
    const ptrdiff_t ldo = 32 * RQ_IA_EPI_PAIRS;
    const int mr = J->mr;
    for (int rb = rc * J->rchunk; rb < imin(J->nrb, (rc + 1) * J->rchunk); rb++) {
        const int i0 = rb * mr, mi = imin(mr, M - i0);
        const uint8_t *ar[MR];
        for (int r = 0; r < MR; r++) {
            const int p = i0 + (r < mi ? r : mi - 1), oh = p / ia->OW, ow = p % ia->OW;
            ar[r] = ia->xp + ((ptrdiff_t)oh * ia->sh * ia->Wp + (ptrdiff_t)ow * ia->sw) * ia->Cg;
        }
        const int pe = imin(J->npp, (jb + 1) * jbw);
        for (int pq = jb * jbw; pq < pe; pq += RQ_IA_EPI_PAIRS) {
            const int pqe = imin(pe, pq + RQ_IA_EPI_PAIRS);
            for (int pp = pq; pp < pqe; pp++) {
                const int p0 = 2 * pp;
                const uint8_t *b0 = J->pb->data + (size_t)p0 * Kp * 16;
                int32_t *o = out + 32 * (pp - pq);
                const uint8_t *b1 = b0 + (size_t)Kp * 16;
                if (p0 + 1 < Np / 16) {
                    switch (mi) {   /* blocks of fewer rows compute those rows only */
#define RQ_IA_R(R) case R: kern_8xnp_ia(ar, J->soff, J->ns, J->ngs, b0, b1, o, ldo, 2, R); break;
                    RQ_IA_R(1) RQ_IA_R(2) RQ_IA_R(3) RQ_IA_R(4) RQ_IA_R(5) RQ_IA_R(6) RQ_IA_R(7)
#undef RQ_IA_R
                    default: kern_8xnp_ia(ar, J->soff, J->ns, J->ngs, b0, b1, o, ldo, 2, MR); break;
                    }
                } else {
                    switch (mi) {
#define RQ_IA_R(R) case R: kern_8xnp_ia(ar, J->soff, J->ns, J->ngs, b0, NULL, o, ldo, 1, R); break;
                    RQ_IA_R(1) RQ_IA_R(2) RQ_IA_R(3) RQ_IA_R(4) RQ_IA_R(5) RQ_IA_R(6) RQ_IA_R(7)
#undef RQ_IA_R
                    default: kern_8xnp_ia(ar, J->soff, J->ns, J->ngs, b0, NULL, o, ldo, 1, MR); break;
                    }
                }
            }
            const int j0 = 32 * pq;
            J->epi(J->e, i0, mi, j0, imin(32 * (pqe - pq), N - j0), out, ldo);
        }
    }
}

static void vnni_task(void *ctx, int64_t t) {
    const vnni_job *J = (const vnni_job *)ctx;
    const rq_gemm_args *a = J->a;
    const int M = J->M, N = J->N, Kp = J->Kp, Np = J->Np, ngk = (a->K + 3) / 4, ipack0 = J->ipack0;
    const int jb = (int)(t / J->nrc), rc = (int)(t % J->nrc), jbw = J->jbw;
    int32_t out[MR * 32 * RQ_VNNI_EPI_PAIRS] __attribute__((aligned(64)));
    const ptrdiff_t ldo = 32 * RQ_VNNI_EPI_PAIRS;
    /* an int32 result with no correction but the column term (MatMulInteger with a per-tensor
     * zero point of A and B_used's zero points all zero): whole 8 x 32 tiles write C straight
     * from the kernel, raw - colfix, instead of through out and the epilogue (128x768x768, 1
     * thread: see docs/performance.md, session 23) */
    const rq_epi *e = J->e;
    const int direct = RQ_VNNI_DIRECT_C && e->out_type == RQ_OUT_S32 && e->c_cs == 1 && !e->rowfix && !e->za_row &&
                       !e->zb_col && !e->bias;
    for (int rb = rc * J->rchunk; rb < imin(J->nrb, (rc + 1) * J->rchunk); rb++) {
        const int i0 = rb * MR, mi = imin(MR, M - i0);
        const int inplace = i0 < ipack0;
        const uint8_t *arow = inplace ? a->A + (ptrdiff_t)i0 * a->a_rs : J->ap + (size_t)(i0 - ipack0) * Kp;
        const ptrdiff_t lda = inplace ? a->a_rs : Kp;
        const int pe = imin(J->npp, (jb + 1) * jbw);
        for (int pq = jb * jbw; pq < pe; pq += RQ_VNNI_EPI_PAIRS) {   /* one epilogue call a group */
            const int pqe = imin(pe, pq + RQ_VNNI_EPI_PAIRS);
            if (direct && mi == MR && 32 * pqe <= N) {
                for (int pp = pq; pp < pqe; pp++) {
                    const uint8_t *b0 = J->pb->data + (size_t)2 * pp * Kp * 16;
                    int32_t *ct = (int32_t *)e->C + (ptrdiff_t)i0 * e->c_rs + 32 * pp;
                    kern_8x32(arow, lda, ngk, b0, b0 + (size_t)Kp * 16, ct, e->c_rs);
                    if (e->colfix) {   /* (the tile is in L1: raw - colfix in place) */
                        const __m512i f0 = _mm512_loadu_si512((const void *)(e->colfix + 32 * pp));
                        const __m512i f1 = _mm512_loadu_si512((const void *)(e->colfix + 32 * pp + 16));
                        for (int r = 0; r < MR; r++) {
                            int32_t *cr = ct + (ptrdiff_t)r * e->c_rs;
                            _mm512_storeu_si512((void *)cr, _mm512_sub_epi32(_mm512_loadu_si512((const void *)cr), f0));
                            _mm512_storeu_si512((void *)(cr + 16), _mm512_sub_epi32(_mm512_loadu_si512((const void *)(cr + 16)), f1));
                        }
                    }
                }
                continue;
            }
            for (int pp = pq; pp < pqe; pp++) {
                const int p0 = 2 * pp;
                const uint8_t *b0 = J->pb->data + (size_t)p0 * Kp * 16;
                int32_t *o = out + 32 * (pp - pq);
                if (p0 + 1 < Np / 16) kern_8x32(arow, lda, ngk, b0, b0 + (size_t)Kp * 16, o, ldo);
                else kern_8x16(arow, lda, ngk, b0, o, ldo);
            }
            const int j0 = 32 * pq;
            J->epi(J->e, i0, mi, j0, imin(32 * (pqe - pq), N - j0), out, ldo);
        }
    }
}

/* The GEMM over a convolution's implicit rows (rq_gemm_args.ia, rq_implicit_a): no im2col;
 * each 8-pixel block's row pointers are set up once, then every panel pair runs the taps' runs
 * in place from the padded NHWC input (the last block's missing pixels repeat the last one,
 * their outputs dropped).  Tasks as in the packed GEMM below: column blocks of panel pairs
 * sized for the L2, row blocks split over the threads. */
static int gemm_vnni_ia(const rq_gemm_args *a, const rq_packed_b *pb, const rq_epi *e, int nthreads) {
    const rq_implicit_a *ia = a->ia;
    const int M = a->M, N = a->N, Kp = pb->Kp, Np = pb->Np;
    /* blocks of 7 pixels where that takes no more blocks than 8 (a 7x7 output: 7 blocks of 7,
     * not 6 of 8 and one of 1, whose single row read a whole L2 block of B; the 8-row kernel
     * computed 8 rows there before, 56 for 49).  ResNet-50's 512 -> 512 3x3 at 7x7, packed
     * weights, 1 thread, Zen 5, best of 61: 262-266 -> see docs/performance.md */
    const int mr = M % MR && (M + 6) / 7 == (M + MR - 1) / MR ? 7 : MR;
    const int nrb = (M + mr - 1) / mr, ns = ia->KH * ia->KW, ngs = ia->Cg / 4;
    if (ia->Cg % 4 || (size_t)ns * ia->Cg != (size_t)a->K || ns > 64) return RQ_EARG;
    rq_epi_fn epi = rq_epi_rows__avx512 ? rq_epi_rows__avx512 : rq_epi_rows__scalar;
    ptrdiff_t soff[64];
    for (int kh = 0; kh < ia->KH; kh++)
        for (int kw = 0; kw < ia->KW; kw++)
            soff[kh * ia->KW + kw] = ((ptrdiff_t)kh * ia->dh * ia->Wp + (ptrdiff_t)kw * ia->dw) * ia->Cg;
    const int npp = (Np / 16 + 1) / 2;
    int jbw = (int)((512 * 1024) / ((size_t)Kp * 32));
    if (jbw < 1) jbw = 1;
    if (jbw > npp) jbw = npp;
    const int njb = (npp + jbw - 1) / jbw;
    jbw = (npp + njb - 1) / njb;   /* equal blocks (98 pairs: 49 + 49, not 64 + 34: at 2 threads
                                    * the tasks of the longer block ran on one thread) */
    const int rchunk = nthreads > 1 ? (nrb + nthreads - 1) / nthreads : nrb;
    const int nrc = (nrb + rchunk - 1) / rchunk;
    const int ntask = njb * nrc;
    vnni_job J = {a, pb, e, epi, NULL, M, N, Kp, Np, nrb, npp, jbw, nrc, rchunk, 0, ns, ngs};
    memcpy(J.soff, soff, sizeof(soff));
    J.mr = mr;
    rq_parallel(ntask, nthreads, vnni_ia_task, &J);
    return RQ_OK;
}

int rq_gemm_vnni__avx512vnni(const rq_gemm_args *a, const rq_packed_b *pb, const rq_epi *e,
                             int nthreads) {
    const int M = a->M, N = a->N, K = a->K, Kp = pb->Kp, Np = pb->Np;
    const int nrb = (M + MR - 1) / MR;
    if (a->ia) return gemm_vnni_ia(a, pb, e, nthreads);
    /* uint8 A with rows of unit stride and K a multiple of 4 is A_used as it stands: the whole
     * 8-row blocks read it in place (no copy; the im2col buffer of a 3x3 64-channel 56x56 conv
     * is 1.8 MB), only the last partial block is copied, zero padded */
    const int direct = M > 4 && !a->a_signed && a->a_cs == 1 && K % 4 == 0 && K > 0 && RQ_VNNI_DIRECT_A;
    const int ipack0 = direct ? M / MR * MR : 0;   /* rows from here on are copied into ap */
    uint8_t *ap = (uint8_t *)rq_aligned_alloc((size_t)(nrb * MR - ipack0) * Kp + 64);
    if (!ap) return RQ_ENOMEM;
    const uint8_t ax = a->a_signed ? 0x80 : 0;
    rq_epi_fn epi = rq_epi_rows__avx512 ? rq_epi_rows__avx512 : rq_epi_rows__scalar;
    /* (vnni_task runs the k-groups inside K only: packed B and the copied A are zero past K) */
    /* pack A_used rows, zero padded */
    for (int i = ipack0; i < nrb * MR; i++) {
        uint8_t *d = ap + (size_t)(i - ipack0) * Kp;
        if (i >= M) { memset(d, 0, Kp); continue; }
        const uint8_t *s = a->A + (ptrdiff_t)i * a->a_rs;
        if (a->a_cs == 1) for (int k = 0; k < K; k++) d[k] = s[k] ^ ax;
        else for (int k = 0; k < K; k++) d[k] = s[k * a->a_cs] ^ ax;
        memset(d + K, 0, Kp - K);
    }
    if (M <= 4) {
        /* a few rows (decode): the 8-row kernels would compute 8; instead R = M rows against
         * four panels at a time, streaming packed B once (1 x 768 x 768: 17.8 -> see docs) */
        gemv_packed_job J = {ap, pb, e, epi, M, N, Kp, Np / 16};
        const int ngrp = (Np / 16 + 3) / 4;
        const int nth = (nthreads > 1 && (size_t)Kp * Np > 262144) ? imin(nthreads, ngrp) : 1;
        J.ntask = nth;
        J.ngrp = ngrp;
        rq_parallel(nth, nth, gemv_packed_task, &J);
        rq_aligned_free(ap);
        return RQ_OK;
    }
    const int npp = (Np / 16 + 1) / 2;  /* panel pairs */
    /* column blocks of panel pairs sized for L2, row blocks in between */
    int jbw = (int)((512 * 1024) / ((size_t)Kp * 32));
    if (jbw < 1) jbw = 1;
    if (jbw > npp) jbw = npp;
    const int njb = (npp + jbw - 1) / jbw;
    jbw = (npp + njb - 1) / njb;   /* equal blocks (98 pairs: 49 + 49, not 64 + 34: at 2 threads
                                    * the tasks of the longer block ran on one thread) */
    int ntask = njb * nrb;
    const int rchunk = nthreads > 1 ? (nrb + nthreads - 1) / nthreads : nrb;
    const int nrc = (nrb + rchunk - 1) / rchunk;
    ntask = njb * nrc;
    vnni_job J = {a, pb, e, epi, ap, M, N, Kp, Np, nrb, npp, jbw, nrc, rchunk, ipack0, 0, 0, {0}};
    rq_parallel(ntask, nthreads, vnni_task, &J);
    rq_aligned_free(ap);
    return RQ_OK;
}

/* ---------------------------------------------------------------- GEMV (M <= 4), B unpacked */

typedef struct {
    const rq_gemm_args *a; const rq_epi *e; int32_t *csum_out; const uint8_t *ap; int32_t *acc;
    int M, N, K, Kp, N64, R, nchunk, nth;
    const int32_t *at;   /* A_used by 4-k groups: at[g4 * R + r] = row r's 4 bytes at k = 4 g4 */
    int band;            /* 8-row groups per band (gemv_range) */
    int stream;          /* 1: gemv_stream for the whole groups and chunks, else gemv_band */
    int sa;              /* 1: A_used rows are int8 (A - za), B ^ 0x80 (int8 B) the unsigned
                          * operand (rq_gemv_vnni_sa__avx512vnni); 2: the same with A - za as
                          * two int8 halves, rows 2 r and 2 r + 1 of ap and at, both summed into
                          * row r (rq_gemv_vnni_sa2__avx512vnni); gemv_stream only */
    int RA;              /* rows of ap and at: R, or 2 R under sa == 2 */
    const uint8_t *nz;   /* sa == 2: nz[g2] nonzero where some row's second half is nonzero at
                          * k in [8 g2, 8 g2 + 8) (elsewhere the first half is the whole) */
    const uint8_t *B;    /* B - co: chunk ch covers the columns [64 ch - co, 64 ch - co + 64) */
    int co;              /* 0, or how far B's rows start past a cache line (every row alike):
                          * the chunks then load whole lines; N above is N + co, and the co
                          * columns before B's first are an edge chunk's masked lanes */
} gemv_job;

/* One slice of K (slice t of nth, whole 8-row groups): all columns, raw sums into the slice's
 * own accumulators (acc + t * R * N64).  Each thread streams contiguous parts of B (measured
 * at 2 threads, 1 x 4096 x 4096: column slices 66 GOPS, K slices see rq_gemv_vnni__avx512vnni);
 * the partial sums are added afterwards in int32 (wraparound: the same bits as one slice). */
/* one group of 8 B rows (two k-groups, g2) over 64-column chunks [ch0, ch1): the R rows of
 * A_used (row M: ones, for the column sums) accumulate into acc[r][N64] (lane-scrambled) */
#ifndef RQ_GEMV_EXP
#define RQ_GEMV_EXP 0
#endif
#ifndef RQ_GEMV_PF
#define RQ_GEMV_PF 1
#endif
#ifndef RQ_GEMV_MAXR
#define RQ_GEMV_MAXR 13   /* rows of A_used (M plus the column-sum row) the GEMV kernels take */
#endif
#ifndef RQ_GEMV_BAND
#define RQ_GEMV_BAND 8      /* 8-row groups of B per band of the register-blocked kernel, B in L2 */
#endif
#ifndef RQ_GEMV_MT_MIN
#define RQ_GEMV_MT_MIN 262144   /* B bytes above which the GEMV uses the threads (2 threads,
    1-8 rows, session 14 with the pool: 1x768x768 10.8 -> 9.8 us, 4x768x768 19.9 -> 16.1,
    1x512x512 no gain; before the pool, 768x768 was even or slower) */
#endif
#ifndef RQ_GEMV_SLICES
#define RQ_GEMV_SLICES 4    /* GEMV column slices per thread (gemv_run) */
#endif
#ifndef RQ_GEMV_STREAM_MAXR
#define RQ_GEMV_STREAM_MAXR 4   /* rows of A_used up to which gemv_stream runs (at most 4) */
#endif
#if RQ_GEMV_STREAM_MAXR > 4
#error "gemv_stream takes at most 4 rows"
#endif
#ifndef RQ_GEMV_STREAM_PFD
#define RQ_GEMV_STREAM_PFD 256  /* gemv_stream: software prefetch this many bytes down each row */
#endif
#ifndef RQ_GEMV_ALIGN
#define RQ_GEMV_ALIGN 1     /* 0: chunks from B's first column, wherever its rows start */
#endif
#ifndef RQ_GEMV_ALIGN_MIN_N
#define RQ_GEMV_ALIGN_MIN_N 512   /* columns from which the chunks are aligned to B's lines */
#endif
#ifndef RQ_GEMV_BAND_MEM
#define RQ_GEMV_BAND_MEM 2  /* the same for a B beyond half the L2: fewer rows streamed at once */
#endif

/* 4 rows of B at ph (64 columns; xb: uint8 B, flipped to B ^ 0x80) into the accumulators s:
 * NH == 1 all 4 VNNI vectors, NH == 2 half hh of them (interleave4's (t0, t2) -> v0, v1 or
 * (t1, t3) -> v2, v3); aq: the R rows' A_used dwords at these 4 k */
static inline __attribute__((always_inline)) void gemv_k4(const uint8_t *ph, ptrdiff_t rs, const int32_t *aq,
                                                          __m512i s[][4], const int R,
                                                          const int NH, const int hh, const int xb) {
    const __m512i x = _mm512_set1_epi8((char)0x80);
#if RQ_GEMV_PF
    if (!hh) {
        /* the next chunk's lines of these rows, for its pass (the hardware does not follow a
         * stride of 8 rows) */
        _mm_prefetch((const char *)(ph + 64), _MM_HINT_T0);
        _mm_prefetch((const char *)(ph + rs + 64), _MM_HINT_T0);
        _mm_prefetch((const char *)(ph + 2 * rs + 64), _MM_HINT_T0);
        _mm_prefetch((const char *)(ph + 3 * rs + 64), _MM_HINT_T0);
    }
#endif
    __m512i r0 = _mm512_loadu_si512((const void *)ph);
    __m512i r1 = _mm512_loadu_si512((const void *)(ph + rs));
    __m512i r2 = _mm512_loadu_si512((const void *)(ph + 2 * rs));
    __m512i r3 = _mm512_loadu_si512((const void *)(ph + 3 * rs));
    if (xb) {
        r0 = _mm512_xor_si512(r0, x); r1 = _mm512_xor_si512(r1, x);
        r2 = _mm512_xor_si512(r2, x); r3 = _mm512_xor_si512(r3, x);
    }
    __m512i v[4];
    if (NH == 1) {
        interleave4(r0, r1, r2, r3, v);
    } else {
        const __m512i ta = hh ? _mm512_unpackhi_epi8(r0, r1) : _mm512_unpacklo_epi8(r0, r1);
        const __m512i tb = hh ? _mm512_unpackhi_epi8(r2, r3) : _mm512_unpacklo_epi8(r2, r3);
        v[0] = _mm512_unpacklo_epi16(ta, tb);
        v[1] = _mm512_unpackhi_epi16(ta, tb);
    }
    for (int r = 0; r < R; r++) {
        const __m512i av = _mm512_set1_epi32(aq[r]);
        for (int q = 0; q < 4 / NH; q++) s[r][q] = _mm512_dpbusd_epi32(s[r][q], av, v[q]);
    }
}

/* Register-blocked band: 8-row groups [ga, gb) (all inside K) of whole 64-column chunks
 * [ch0, ch1).  One chunk's accumulators (R rows x 4 vectors; for R > 5 one half of the chunk,
 * R x 2) stay in registers down the band, so acc[] is read and written once per band rather
 * than once per 8 rows.  Per 4 rows of B: 4 loads, 8 unpacks (4 per half), R dpbusd per
 * vector.  With R <= 2 the second 4 rows of each group go into a second set of accumulators,
 * so that enough dpbusd chains run at once to cover its latency. */
/* one pass (half hh of NH) of chunk ch down groups [ga, gb) */
static inline __attribute__((always_inline)) void gemv_band_pass(const gemv_job *J, int ga, int gb, int ch,
                                                                 int32_t *acc, const int R, const int NH,
                                                                 const int hh, const int xb) {
    const int N64 = J->N64, NQ = 4 / NH;
    const ptrdiff_t rs = J->a->b_rs;
    /* both sets start from acc (loaded, not zeroed: GCC then keeps every accumulator in its own
     * register instead of copying between two each step); acc is taken once back out at the end */
    __m512i s[RQ_GEMV_MAXR][4], s2[2][4];
    for (int r = 0; r < R; r++)
        for (int q = 0; q < NQ; q++) {
            s[r][q] = _mm512_load_si512((const void *)(acc + (size_t)r * N64 + ch * 64 + 16 * (hh * NQ + q)));
            if (R <= 2) s2[r][q] = s[r][q];
        }
    const uint8_t *p = J->B + (ptrdiff_t)(8 * ga) * rs + ch * 64;
    const int32_t *aq = J->at + (size_t)(2 * ga) * R;
    for (int g2 = ga; g2 < gb; g2++, p += 8 * rs, aq += 2 * R) {
        gemv_k4(p, rs, aq, s, R, NH, hh, xb);
        if (R <= 2) gemv_k4(p + 4 * rs, rs, aq + R, s2, R, NH, hh, xb);
        else gemv_k4(p + 4 * rs, rs, aq + R, s, R, NH, hh, xb);
    }
    for (int r = 0; r < R; r++)
        for (int q = 0; q < NQ; q++) {
            int32_t *d = acc + (size_t)r * N64 + ch * 64 + 16 * (hh * NQ + q);
            __m512i t = s[r][q];
            if (R <= 2) t = _mm512_sub_epi32(_mm512_add_epi32(t, s2[r][q]), _mm512_load_si512((const void *)d));
            _mm512_store_si512((void *)d, t);
        }
}

/* Register-blocked band: 8-row groups [ga, gb) (all inside K) of whole 64-column chunks
 * [ch0, ch1).  One chunk's accumulators (R rows x 4 vectors; for R > 5 one half of the chunk,
 * R x 2) stay in registers down the band, so acc[] is read and written once per band rather
 * than once per 8 rows.  Per 4 rows of B: 4 loads, 8 unpacks (4 per half), R dpbusd per
 * vector.  With R <= 2 the second 4 rows of each group go into a second set of accumulators,
 * so that enough dpbusd chains run at once to cover its latency. */
static inline __attribute__((always_inline)) void gemv_band_t(const gemv_job *J, int ga, int gb, int ch0,
                                                              int ch1, int32_t *acc, const int R,
                                                              const int xb) {
    for (int ch = ch0; ch < ch1; ch++) {
        if (R <= 5) {
            gemv_band_pass(J, ga, gb, ch, acc, R, 1, 0, xb);
        } else {
            gemv_band_pass(J, ga, gb, ch, acc, R, 2, 0, xb);
            gemv_band_pass(J, ga, gb, ch, acc, R, 2, 1, xb);
        }
    }
}

#define RQ_GEMV_BAND_CASE(RR)                                                                      \
    case RR: if (xb) gemv_band_t(J, ga, gb, ch0, ch1, acc, RR, 1);                                  \
             else gemv_band_t(J, ga, gb, ch0, ch1, acc, RR, 0);                                     \
             break;

static void gemv_band(const gemv_job *J, int ga, int gb, int ch0, int ch1, int32_t *acc) {
    const int xb = !J->a->b_signed;
    switch (J->R) {
    RQ_GEMV_BAND_CASE(1) RQ_GEMV_BAND_CASE(2) RQ_GEMV_BAND_CASE(3) RQ_GEMV_BAND_CASE(4)
    RQ_GEMV_BAND_CASE(5) RQ_GEMV_BAND_CASE(6) RQ_GEMV_BAND_CASE(7) RQ_GEMV_BAND_CASE(8)
    RQ_GEMV_BAND_CASE(9) RQ_GEMV_BAND_CASE(10) RQ_GEMV_BAND_CASE(11) RQ_GEMV_BAND_CASE(12)
    default:
        if (xb) gemv_band_t(J, ga, gb, ch0, ch1, acc, RQ_GEMV_MAXR, 1);
        else gemv_band_t(J, ga, gb, ch0, ch1, acc, RQ_GEMV_MAXR, 0);
        break;
    }
}

static inline void gemv_rows8_any(const gemv_job *J, int g2, int ch0, int ch1, int32_t *acc);

/* gemv_stream's inner loop: one group of 8 B rows at p over 64-column chunks [ch0, ch1) into
 * the accumulators at ac (row r at ac + r N64).  A0 / A1: the broadcast A_used dwords of the
 * group's two k-groups, AS apart per row (1, or 2 where the rows are halves and only the first
 * is taken); SA: 0 A the unsigned operand, 1 B, 2 B with both halves of each row. */
static inline __attribute__((always_inline)) void gemv_stream_chunks(const uint8_t *p, int32_t *ac, int ch0,
                                                                     int ch1, ptrdiff_t rs, int N64,
                                                                     const __m512i *A0, const __m512i *A1,
                                                                     const int R, const int AS,
                                                                     const int xb, const int SA,
                                                                     const int MASKED, __mmask64 m) {
    const __m512i x = _mm512_set1_epi8((char)0x80);
    for (int ch = ch0; ch < ch1; ch++, p += 64, ac += 64) {
        __m512i rr[8];
        for (int q = 0; q < 8; q++) {
            _mm_prefetch((const char *)(p + q * rs + RQ_GEMV_STREAM_PFD), _MM_HINT_T0);
            if (MASKED) rr[q] = _mm512_maskz_loadu_epi8(m, (const void *)(p + q * rs));
            else rr[q] = _mm512_loadu_si512((const void *)(p + q * rs));
            if (xb) rr[q] = _mm512_xor_si512(rr[q], x);   /* (masked lanes: columns not stored) */
        }
        __m512i v0[4], v1[4];
        interleave4(rr[0], rr[1], rr[2], rr[3], v0);
        interleave4(rr[4], rr[5], rr[6], rr[7], v1);
        for (int r = 0; r < R; r++)
            for (int q = 0; q < 4; q++) {
                int32_t *d = ac + (size_t)r * N64 + 16 * q;
                __m512i t = _mm512_load_si512((const void *)d);
                if (SA == 2) {
                    t = _mm512_dpbusd_epi32(t, v0[q], A0[2 * r]);
                    t = _mm512_dpbusd_epi32(t, v1[q], A1[2 * r]);
                    t = _mm512_dpbusd_epi32(t, v0[q], A0[2 * r + 1]);
                    t = _mm512_dpbusd_epi32(t, v1[q], A1[2 * r + 1]);
                } else if (SA) {
                    t = _mm512_dpbusd_epi32(t, v0[q], A0[AS * r]);
                    t = _mm512_dpbusd_epi32(t, v1[q], A1[AS * r]);
                } else {
                    t = _mm512_dpbusd_epi32(t, A0[r], v0[q]);
                    t = _mm512_dpbusd_epi32(t, A1[r], v1[q]);
                }
                _mm512_store_si512((void *)d, t);
            }
    }
}

/* Streaming form, for 1 to RQ_GEMV_STREAM_MAXR rows of A_used: one group of 8 B rows at a time
 * across whole 64-column chunks [ch0, ch1), the accumulators read and written per chunk (they
 * stay in L1: (M + 1) x N int32).  Per chunk: 8 loads, 16 unpacks, 8 R dpbusd, 4 R accumulator
 * loads and stores, and no per-chunk set-up, so the loop runs near the memory's speed; only 8
 * rows are read at once, since at a row stride of 4 KiB every line of a step falls into one
 * L1 set (16 rows at once, the register bands' memory form, thrash the 12 ways).  Measured on
 * an AMD Zen 5 (1 thread, B int8 plain, 16 bytes past a line as numpy places it), against the
 * register bands: 1 x 4096 x 4096 295 vs 410 us (za 3; 235 vs 294 with za 0), 2 x 4096 x 4096
 * 361 vs 447, 1 x 1024 x 1024 15.3 vs 19.1, 1 x 768 x 768 9.0 vs 10.6; with 5 and 6 rows the
 * bands were as fast or faster (0.92-1.07x).  Session 14 (same machine): with the accumulators
 * (M + 1) x 16 KiB, B's lines through L1 evicted them (reading acc alone cost as much as
 * acc load + store); the two-halves form (sa 2: M rows of sums) and chunks on B's lines made
 * 1 x 4096 x 4096 za 117 about 260 -> 210 us (L3-resident B). */
static inline __attribute__((always_inline)) void gemv_stream_t(const gemv_job *J, int g0, int g1,
                                                                int ch0, int ch1, int32_t *acc,
                                                                const int R, const int xb, const int SA) {
    const int N64 = J->N64;
    const ptrdiff_t rs = J->a->b_rs;
    /* whole chunks [fa, fb); chunk 0 (under co) and the last (past N) masked, at most one each */
    const int full_ch = J->N / 64;
    const int fa = imin(imax(ch0, J->co ? 1 : 0), ch1), fb = imax(imin(ch1, full_ch), fa);
    const __mmask64 mh = ~(__mmask64)0 << J->co;
    const int nt = J->N - 64 * full_ch;
    const __mmask64 mt = nt ? ((__mmask64)1 << nt) - 1 : ~(__mmask64)0;
    for (int g2 = g0; g2 < g1; g2++) {
        const uint8_t *p = J->B + (ptrdiff_t)(8 * g2) * rs + ch0 * 64;
        const int RA = SA == 2 ? 2 * R : R;
        const int32_t *aq = J->at + (size_t)(2 * g2) * RA;
        __m512i A0[2 * RQ_GEMV_STREAM_MAXR], A1[2 * RQ_GEMV_STREAM_MAXR];
        for (int r = 0; r < RA; r++) { A0[r] = _mm512_set1_epi32(aq[r]); A1[r] = _mm512_set1_epi32(aq[RA + r]); }
        int32_t *ac = acc + ch0 * 64;
        /* every second half zero in these 8 k: the first halves alone, as SA 1 */
        const int light = SA == 2 && !J->nz[g2];
        /* chunk 0 under co and a last chunk past N's end: masked loads (their other lanes are
         * columns that are not stored) */
        if (ch0 < fa) {
            if (light) gemv_stream_chunks(p, ac, ch0, fa, rs, N64, A0, A1, R, 2, xb, 1, 1, mh);
            else gemv_stream_chunks(p, ac, ch0, fa, rs, N64, A0, A1, R, 1, xb, SA, 1, mh);
        }
        const uint8_t *pf = p + (fa - ch0) * 64;
        int32_t *af = ac + (fa - ch0) * 64;
        if (light) gemv_stream_chunks(pf, af, fa, fb, rs, N64, A0, A1, R, 2, xb, 1, 0, 0);
        else gemv_stream_chunks(pf, af, fa, fb, rs, N64, A0, A1, R, 1, xb, SA, 0, 0);
        if (fb < ch1) {
            const uint8_t *pt = p + (fb - ch0) * 64;
            int32_t *at_ = ac + (fb - ch0) * 64;
            if (light) gemv_stream_chunks(pt, at_, fb, ch1, rs, N64, A0, A1, R, 2, xb, 1, 1, mt);
            else gemv_stream_chunks(pt, at_, fb, ch1, rs, N64, A0, A1, R, 1, xb, SA, 1, mt);
        }
    }
}

#define RQ_GEMV_STREAM_CASE(RR)                                                                    \
    case RR:                                                                                       \
        if (J->sa == 2) { if (xb) gemv_stream_t(J, g0, g1, ch0, ch1, acc, RR, 1, 2);                \
                          else gemv_stream_t(J, g0, g1, ch0, ch1, acc, RR, 0, 2); }                 \
        else if (J->sa) { if (xb) gemv_stream_t(J, g0, g1, ch0, ch1, acc, RR, 1, 1);                \
                          else gemv_stream_t(J, g0, g1, ch0, ch1, acc, RR, 0, 1); }                 \
        else { if (xb) gemv_stream_t(J, g0, g1, ch0, ch1, acc, RR, 1, 0);                           \
               else gemv_stream_t(J, g0, g1, ch0, ch1, acc, RR, 0, 0); }                            \
        break;

static void gemv_stream(const gemv_job *J, int g0, int g1, int ch0, int ch1, int32_t *acc) {
    /* B's flip: to int8 B_used normally, to the unsigned operand B_used ^ 0x80 under sa */
    const int xb = J->sa ? J->a->b_signed : !J->a->b_signed;
    switch (J->R) {
    RQ_GEMV_STREAM_CASE(1) RQ_GEMV_STREAM_CASE(2) RQ_GEMV_STREAM_CASE(3) RQ_GEMV_STREAM_CASE(4)
    default: break;   /* R <= RQ_GEMV_STREAM_MAXR (J->stream) */
    }
}

/* 8-row groups [g0, g1) over 64-column chunks [ch0, ch1): bands of whole groups and whole
 * chunks in registers; the chunk past N's last whole 64 and a group past K by rows8_any */
static void gemv_range(const gemv_job *J, int g0, int g1, int ch0, int ch1, int32_t *acc) {
    const int full_ch = J->N / 64, gfull = J->K / 8;
    const int hb = imin(ch1, J->co ? 1 : 0);             /* head edge chunk [ch0, hb) */
    const int fa = imax(ch0, J->co ? 1 : 0);
    const int fb = ch1 < full_ch ? ch1 : full_ch;       /* whole chunks [fa, fb) */
    const int ta = imax(fa, full_ch);                    /* edge chunk(s) [ta, ch1) */
    const int gw = g1 < gfull ? g1 : gfull;
    for (int ga = g0; ga < gw; ga += J->band) {
        const int gb = ga + J->band < gw ? ga + J->band : gw;
        if (J->stream) {   /* the edge chunks too, with masked loads */
            gemv_stream(J, ga, gb, ch0, ch1, acc);
            continue;
        }
        if (hb > ch0)
            for (int g2 = ga; g2 < gb; g2++) gemv_rows8_any(J, g2, ch0, hb, acc);
        if (fb > fa) gemv_band(J, ga, gb, fa, fb, acc);
        if (ch1 > ta)
            for (int g2 = ga; g2 < gb; g2++) gemv_rows8_any(J, g2, ta, ch1, acc);
    }
    for (int g2 = gw > g0 ? gw : g0; g2 < g1; g2++) gemv_rows8_any(J, g2, ch0, ch1, acc);
}

static inline void gemv_rows8_any(const gemv_job *J, int g2, int ch0, int ch1, int32_t *acc) {
    const rq_gemm_args *a = J->a;
    const uint8_t *ap = J->ap;
    const int N = J->N, K = J->K, Kp = J->Kp, N64 = J->N64;
    const __m512i x = _mm512_set1_epi8((J->sa ? a->b_signed : !a->b_signed) ? (char)0x80 : 0);
    const uint8_t *rows[8];
    int valid[8];
    for (int q = 0; q < 8; q++) {
        int k = 8 * g2 + q;
        valid[q] = k < K;
        rows[q] = J->B + (ptrdiff_t)(valid[q] ? k : 0) * a->b_rs;
    }
    for (int ch = ch0; ch < ch1; ch++) {
        const int c0 = ch * 64;
        const int nv = N - c0 >= 64 ? 64 : N - c0;
        __mmask64 m = nv == 64 ? ~(__mmask64)0 : (((__mmask64)1 << nv) - 1);
        if (c0 < J->co) m &= ~(((__mmask64)1 << (J->co - c0)) - 1);   /* before B's first column */
        __m512i rr[8];
        for (int q = 0; q < 8; q++)
            rr[q] = valid[q] ? _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, rows[q] + c0), x)
                             : _mm512_setzero_si512();
        __m512i v0[4], v1[4];
        interleave4(rr[0], rr[1], rr[2], rr[3], v0);
        interleave4(rr[4], rr[5], rr[6], rr[7], v1);
        for (int ra = 0; ra < J->RA; ra++) {
            const int r = J->sa == 2 ? ra / 2 : ra;   /* sa 2: both halves into row r */
            int32_t *ac = acc + (size_t)r * N64 + c0;
            const __m512i A0 = _mm512_set1_epi32(rq_ld_i32(ap + (size_t)ra * Kp + 8 * g2));
            const __m512i A1 = _mm512_set1_epi32(rq_ld_i32(ap + (size_t)ra * Kp + 8 * g2 + 4));
            for (int q = 0; q < 4; q++) {
                __m512i sv = _mm512_load_si512((void *)(ac + 16 * q));
                if (J->sa) {
                    sv = _mm512_dpbusd_epi32(sv, v0[q], A0);
                    sv = _mm512_dpbusd_epi32(sv, v1[q], A1);
                } else {
                    sv = _mm512_dpbusd_epi32(sv, A0, v0[q]);
                    sv = _mm512_dpbusd_epi32(sv, A1, v1[q]);
                }
                _mm512_store_si512((void *)(ac + 16 * q), sv);
            }
        }
    }
}

static void gemv_kslice(void *ctx, int64_t t) {
    const gemv_job *J = (const gemv_job *)ctx;
    const int N64 = J->N64, R = J->R;
    int32_t *acc = J->acc + (size_t)t * R * N64;
    const int G = J->Kp / 8, g0 = (int)((long)G * t / J->nth), g1 = (int)((long)G * (t + 1) / J->nth);
    memset(acc, 0, sizeof(int32_t) * (size_t)R * N64);
    gemv_range(J, g0, g1, 0, J->nchunk, acc);
}

/* K-sliced GEMV epilogue: chunk ch of the partial sums added over the slices, unscrambled */
/* chunk ch's unscrambled sums v[0..3] into the row at dst (real columns from 64 ch - co: under
 * co, chunk 0's first co lanes lie before column 0 and are not stored; the last chunk's lanes
 * past N go into the row's padding, as without co) */
static inline void gemv_store_chunk(int32_t *dst, int ch, int co, const __m512i *v) {
    const int c0 = ch * 64 - co;
    for (int q = 0; q < 4; q++) {
        const int c = c0 + 16 * q;
        if (c >= 0) _mm512_storeu_si512(dst + c, v[q]);
        else if (c > -16) _mm512_mask_storeu_epi32(dst + c, (__mmask16)(0xFFFFu << -c), v[q]);
    }
}

static void gemv_ksum(void *ctx, int64_t ch) {
    const gemv_job *J = (const gemv_job *)ctx;
    const int M = J->M, N64 = J->N64, R = J->R, c0 = (int)ch * 64;
    for (int r = 0; r < R; r++) {
        __m512i v[4];
        for (int q = 0; q < 4; q++) {
            v[q] = _mm512_load_si512((const void *)(J->acc + (size_t)r * N64 + c0 + 16 * q));
            for (int t = 1; t < J->nth; t++)
                v[q] = _mm512_add_epi32(v[q], _mm512_load_si512((const void *)(J->acc + ((size_t)t * R + r) * N64 + c0 + 16 * q)));
        }
        lane_transpose(&v[0], &v[1], &v[2], &v[3]);
        gemv_store_chunk(r < M ? (int32_t *)J->e->C + (ptrdiff_t)r * J->e->c_rs : J->csum_out, (int)ch, J->co, v);
    }
}

/* one slice of 64-column chunks (slice tid of nth): all K rows streamed for these columns */
static void gemv_slice(void *ctx, int64_t tid_) {
    const gemv_job *J = (const gemv_job *)ctx;
    const rq_epi *e = J->e;
    int32_t *csum_out = J->csum_out;
    int32_t *acc = J->acc;
    const int M = J->M, Kp = J->Kp, N64 = J->N64, R = J->R, nchunk = J->nchunk;
    const int tid = (int)tid_, nth = J->nth;
    {
        const int ch0 = (int)((long)nchunk * tid / nth), ch1 = (int)((long)nchunk * (tid + 1) / nth);
        for (int r = 0; r < R; r++) memset(acc + (size_t)r * N64 + ch0 * 64, 0, sizeof(int32_t) * 64 * (ch1 - ch0));
        gemv_range(J, 0, Kp / 8, ch0, ch1, acc);
        /* unscramble into raw output / csum */
        for (int ch = ch0; ch < ch1; ch++) {
            const int c0 = ch * 64;
            for (int r = 0; r < R; r++) {
                int32_t *ac = acc + (size_t)r * N64 + c0;
                __m512i v[4];
                for (int q = 0; q < 4; q++) v[q] = _mm512_load_si512((void *)(ac + 16 * q));
                lane_transpose(&v[0], &v[1], &v[2], &v[3]);
                gemv_store_chunk(r < M ? (int32_t *)e->C + (ptrdiff_t)r * e->c_rs : csum_out, ch, J->co, v);
            }
        }
    }
}

static int gemv_run(const rq_gemm_args *a, const rq_epi *e, int32_t *csum_out, int nthreads, int sa) {
    const int M = a->M, K = a->K;
    /* B's rows all starting co bytes past a line (numpy places large arrays 16 bytes past
     * one): chunks of whole lines, the first co lanes of chunk 0 masked */
    const int co = RQ_GEMV_ALIGN && a->N >= RQ_GEMV_ALIGN_MIN_N && a->b_rs % 64 == 0
                   ? (int)((uintptr_t)a->B & 63) : 0;
    const int N = a->N + co;
    const int Kp = (K + 7) / 8 * 8, N64 = (N + 63) / 64 * 64;
    const int R = M + (csum_out ? 1 : 0);  /* extra row of ones computes the column sums */
    const int RA = sa == 2 ? 2 * R : R;    /* sa 2: a->A holds 2 M rows, two halves per row */
    if (R > RQ_GEMV_MAXR || (sa && (csum_out || R > RQ_GEMV_STREAM_MAXR))) return RQ_EARG;
    const int nchunk = N64 / 64;
    /* column slices (long contiguous row segments keep the prefetchers streaming), a few per
     * thread (below), claimed dynamically (rq_pool.h): an absent worker's slices are run by the
     * caller; with enough K, K slices (see gemv_kslice) with accumulators of their own, added
     * afterwards */
    int nth = 1;
    if (nthreads > 1 && (size_t)K * N > (size_t)RQ_GEMV_MT_MIN) nth = nchunk < nthreads ? nchunk : nthreads;
    const int kslices = nth > 1 && Kp / 8 >= 64 * nth;
    /* K slices: up to RQ_GEMV_SLICES per thread, each of at least 64 8-row groups (as the
     * column slices below: a descheduled worker holds up one small slice), their accumulators
     * within four times the L2 in all (many threads keep one slice each) */
    int nks = nth;
    while (kslices && nks < RQ_GEMV_SLICES * nth && Kp / 8 >= 64 * (nks + nth) &&
           sizeof(int32_t) * (size_t)(nks + nth) * R * N64 <= 4 * (size_t)rq_l2_bytes())
        nks += nth;
    uint8_t *ap = (uint8_t *)rq_aligned_alloc((size_t)RA * Kp + 64);
    int32_t *at = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * ((size_t)RA * (Kp / 4) + 16));
    int32_t *acc = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)(kslices ? nks : 1) * R * N64);
    if (!ap || !at || !acc) { rq_aligned_free(ap); rq_aligned_free(at); rq_aligned_free(acc); return RQ_ENOMEM; }
    const uint8_t ax = a->a_signed && !sa ? 0x80 : 0;
    for (int i = 0; i < (sa == 2 ? RA : M); i++) {
        uint8_t *d = ap + (size_t)i * Kp;
        const uint8_t *s = a->A + (ptrdiff_t)i * a->a_rs;
        if (a->a_cs == 1) for (int k = 0; k < K; k++) d[k] = s[k] ^ ax;
        else for (int k = 0; k < K; k++) d[k] = s[(ptrdiff_t)k * a->a_cs] ^ ax;
        memset(d + K, 0, Kp - K);
    }
    if (csum_out) { memset(ap + (size_t)M * Kp, 1, K); memset(ap + (size_t)M * Kp + K, 0, Kp - K); }
    for (int g4 = 0; g4 < Kp / 4; g4++)
        for (int r = 0; r < RA; r++) memcpy(at + (size_t)g4 * RA + r, ap + (size_t)r * Kp + 4 * g4, 4);
    uint8_t *nz = NULL;
    if (sa == 2) {
        nz = (uint8_t *)malloc((size_t)Kp / 8 + 1);
        if (!nz) { rq_aligned_free(ap); rq_aligned_free(at); rq_aligned_free(acc); return RQ_ENOMEM; }
        for (int g2 = 0; g2 < Kp / 8; g2++) {
            uint64_t o = 0, w;
            for (int r = 1; r < RA; r += 2) { memcpy(&w, ap + (size_t)r * Kp + 8 * g2, 8); o |= w; }
            nz[g2] = o != 0;
        }
    }
    gemv_job J = {a, e, csum_out, ap, acc, M, N, K, Kp, N64, R, nchunk, nth, at,
                  (size_t)K * N > (size_t)rq_l2_bytes() / 2 ? RQ_GEMV_BAND_MEM : RQ_GEMV_BAND,
                  R <= RQ_GEMV_STREAM_MAXR, sa, RA, nz, a->B - co, co};
    if (kslices) {
        J.nth = nks;
        rq_parallel(nks, nthreads, gemv_kslice, &J);
        rq_parallel(nchunk, nchunk >= 4 * nthreads ? nthreads : 1, gemv_ksum, &J);
    } else {
        /* column slices, RQ_GEMV_SLICES per thread where there are enough chunks: a worker
         * descheduled inside its slice (another process's thread, or numpy's OpenBLAS threads
         * polling after numpy starts, on the same core) then holds up one small slice, the
         * caller taking the rest */
        if (nth > 1) J.nth = imin(nchunk, RQ_GEMV_SLICES * nth);
        rq_parallel(J.nth, nthreads, gemv_slice, &J);
    }
    rq_aligned_free(ap); rq_aligned_free(at); rq_aligned_free(acc); free(nz);
    return RQ_OK;
}

int rq_gemv_vnni__avx512vnni(const rq_gemm_args *a, const rq_epi *e, int32_t *csum_out, int nthreads) {
    return gemv_run(a, e, csum_out, nthreads, 0);
}

/* Raw sums of int8 A (A's bytes as they are: A - za, from the caller) times B_used ^ 0x80
 * (uint8: B_used + 128), vpdpbusd with B the unsigned operand: no column sums of B are needed
 * for A's zero point (the caller subtracts (zb_u + 128) * sum_k (A - za)); 1 to
 * RQ_GEMV_STREAM_MAXR rows. */
int rq_gemv_vnni_sa__avx512vnni(const rq_gemm_args *a, const rq_epi *e, int nthreads) {
    return gemv_run(a, e, NULL, nthreads, 1);
}

/* One row of A (unit column stride) as the two int8 halves of A - zi (rq_gemv_vnni_sa2):
 * d0[k] = clamp(A[k] - zi, -128, 127) (vpmovswb saturates), d1[k] = the rest; *sum = sum_k
 * (A[k] - zi) (int32, wrapping), *hi = max(0, max_k (A[k] - zi)), *rest = any d1 nonzero.
 * 32 k a step in int16 (A - zi in [-255, 255]); the scalar loop it replaces cost 6 us a pass
 * at K = 4096 (two passes for uint8 A with za 117: 17.4 us against 5.7 for za 0, 1 x 4096 x
 * 16). */
void rq_gemv_split_a__avx512vnni(const uint8_t *src, int K, int a_signed, int32_t zi, int8_t *d0,
                                 int8_t *d1, int32_t *sum, int32_t *hi, int *rest) {
    const __m512i z = _mm512_set1_epi16((short)zi), ones = _mm512_set1_epi16(1);
    __m512i acc = _mm512_setzero_si512(), mx = _mm512_setzero_si512(), any = _mm512_setzero_si512();
    for (int k = 0; k < K; k += 32) {
        const __mmask32 m = K - k >= 32 ? ~(__mmask32)0 : (((__mmask32)1 << (K - k)) - 1);
        const __m256i b = _mm256_maskz_loadu_epi8(m, (const void *)(src + k));
        const __m512i a = a_signed ? _mm512_cvtepi8_epi16(b) : _mm512_cvtepu8_epi16(b);
        const __m512i v = _mm512_maskz_sub_epi16(m, a, z);            /* 0 past K */
        const __m256i h = _mm512_cvtsepi16_epi8(v);                    /* clamp to int8 */
        const __m512i r = _mm512_sub_epi16(v, _mm512_cvtepi8_epi16(h));
        _mm256_mask_storeu_epi8((void *)(d0 + k), m, h);
        _mm256_mask_storeu_epi8((void *)(d1 + k), m, _mm512_cvtepi16_epi8(r));
        acc = _mm512_add_epi32(acc, _mm512_madd_epi16(v, ones));
        mx = _mm512_max_epi16(mx, v);
        any = _mm512_or_si512(any, r);
    }
    *sum = _mm512_reduce_add_epi32(acc);
    __m256i m2 = _mm256_max_epi16(_mm512_castsi512_si256(mx), _mm512_extracti64x4_epi64(mx, 1));
    __m128i m1 = _mm_max_epi16(_mm256_castsi256_si128(m2), _mm256_extracti128_si256(m2, 1));
    m1 = _mm_max_epi16(m1, _mm_srli_si128(m1, 8));
    m1 = _mm_max_epi16(m1, _mm_srli_si128(m1, 4));
    m1 = _mm_max_epi16(m1, _mm_srli_si128(m1, 2));
    *hi = (int16_t)_mm_extract_epi16(m1, 0);
    *rest = _mm512_test_epi16_mask(any, any) != 0;
}

/* The same for rows whose A - za does not fit int8 (uint8 A with any za but 0 and 128): a->A
 * holds 2 M rows of int8, rows 2 i and 2 i + 1 the halves clamp(A - za, -128, 127) and the
 * rest (A - za in [-255, 254], the rest in [-127, 126]) of row i, and both go into row i's
 * sums, so that no column sums of B are needed: per 64 columns of 8 B rows 4 dpbusd into M
 * rows of sums (2 where the rest is zero at all 8 k), where the column-sum row took 2 dpbusd
 * into M + 1 rows.  For M = 1 the sums are half the bytes and stay in L1 (Zen 5, 1 x 4096 x
 * 4096 uint8 x int8 alternating: za 3 307 -> 250 us, 2 x 4096 x 4096 369 -> 316 us). */
int rq_gemv_vnni_sa2__avx512vnni(const rq_gemm_args *a, const rq_epi *e, int nthreads) {
    return gemv_run(a, e, NULL, nthreads, 2);
}

/* ---------------------------------------------------------------- int16 pair saturation */
#define SAT16_FN rq_gemm_sat16__avx512vnni
#define SAT16_ACC(c, t, ones) _mm512_dpwssd_epi32((c), (t), (ones))
#include "gemm_sat16_avx512.inc"
#undef SAT16_FN
#undef SAT16_ACC

/* ---------------------------------------------------------------- GEMM on a plain B, no packing
 *
 * rq_gemm_vnni_plain__avx512vnni: B read in place, row-major, 64 columns at a time.  Per
 * k-group, its 4 rows' 64 bytes are interleaved by in-lane unpacks (interleave4: lane-scrambled
 * VNNI vectors) and multiplied by R <= 6 rows of A (24 accumulators); the sums are put back in
 * column order once, after the K loop.  The unpacks run on ports the vpdpbusd leave free on a
 * Zen 5 (a loop of 12 vpdpbusd with 8 vpunpcklbw beside them ran at the rate of the vpdpbusd
 * alone; lane-crossing shuffles slowed it), so B needs no packing pass: with B in L2 this runs at
 * the packed kernel's speed (docs/performance.md, session 27).  The first row block of each
 * column chunk takes 5 rows and a row of ones when the column sums are wanted (csum). */
#ifndef RQ_NP_ASM
#define RQ_NP_ASM 1   /* vpdpbusd by inline asm: GCC 12 copied all 24 accumulators between
                       * registers every k-group with the intrinsic here (2.3x slower) */
#endif
#if RQ_NP_ASM && defined(__GNUC__)
#define RQ_NP_DP(c, av, bv) __asm__("vpdpbusd %2, %1, %0" : "+v"(c) : "v"(av), "v"(bv))
#else
#define RQ_NP_DP(c, av, bv) ((c) = _mm512_dpbusd_epi32((c), (av), (bv)))
#endif
#define RQ_NP_MAXR 6
#ifndef RQ_NP_MERGE
#define RQ_NP_MERGE 1
#endif

typedef struct {
    const uint8_t *ap; ptrdiff_t lda;   /* A_used rows (K bytes, rounded up to 4 with zeros) */
    const uint8_t *B; ptrdiff_t b_rs;   /* B - co: chunk c holds the columns [64 c - co, 64 c - co + 64) */
    int M, N, K, co, nch, xb;
    int32_t *csum;                      /* NULL, or B_used's column sums (column j at csum[j]) */
    rq_cols_prep_fn prep; void *ctx; rq_epi_fn epi;
    const rq_epi *e;                    /* the whole call's epilogue (its form: direct int32 stores or not) */
    int merge;                          /* 1: chunk 0 also runs the last chunk's columns (np_task) */
} np_job;

/* rows k .. k + 3 of the chunk at p (row stride rs), nk of them inside K (4 but in the last
 * k-group), m: the chunk's columns inside B (MASKED 1); MASKED 2 (the merged edge chunk): the
 * lanes m from p, the lanes m2 from p + d2; uint8 B flipped to int8 (xb) */
static inline __attribute__((always_inline)) void np_rows4(const uint8_t *p, ptrdiff_t rs, int nk, __mmask64 m,
                                                            __mmask64 m2, ptrdiff_t d2, const int MASKED,
                                                            const int XB, __m512i v[4]) {
    __m512i r[4];
    for (int t = 0; t < 4; t++) {
        if (t >= nk) { r[t] = _mm512_setzero_si512(); continue; }
        r[t] = MASKED == 2 ? _mm512_mask_loadu_epi8(_mm512_maskz_loadu_epi8(m, (const void *)(p + t * rs)), m2,
                                                    (const void *)(p + t * rs + d2))
             : MASKED ? _mm512_maskz_loadu_epi8(m, (const void *)(p + t * rs))
                      : _mm512_loadu_si512((const void *)(p + t * rs));
        if (XB) r[t] = _mm512_xor_si512(r[t], _mm512_set1_epi8((char)0x80));
    }
    interleave4(r[0], r[1], r[2], r[3], v);
}

/* s (lane-scrambled, 4 vectors) back in column order into d[0 .. 63] */
static inline __attribute__((always_inline)) void np_unscramble(__m512i s0, __m512i s1, __m512i s2, __m512i s3,
                                                                 int32_t *d) {
    const __m512i t0 = _mm512_shuffle_i32x4(s0, s1, 0x44), t1 = _mm512_shuffle_i32x4(s0, s1, 0xEE);
    const __m512i t2 = _mm512_shuffle_i32x4(s2, s3, 0x44), t3 = _mm512_shuffle_i32x4(s2, s3, 0xEE);
    _mm512_store_si512((void *)d, _mm512_shuffle_i32x4(t0, t2, 0x88));
    _mm512_store_si512((void *)(d + 16), _mm512_shuffle_i32x4(t0, t2, 0xDD));
    _mm512_store_si512((void *)(d + 32), _mm512_shuffle_i32x4(t1, t3, 0x88));
    _mm512_store_si512((void *)(d + 48), _mm512_shuffle_i32x4(t1, t3, 0xDD));
}

/* R rows of A_used (a[r], a[r] + k bytes) against one chunk (p = its first row), all of K; with
 * ONES a row of ones after them (the chunk's column sums); raw sums into out[R + ONES][64].
 * The accumulators are named variables, not an array: GCC kept an array of them on the stack
 * around the inline asm. */
#define RQ_NP_ROW(r)                                                                               \
    if (R + ONES > r) {                                                                            \
        const __m512i av = (ONES && r == R) ? _mm512_set1_epi8(1) : _mm512_set1_epi32(rq_ld_i32(a[r] + k)); \
        RQ_NP_DP(s##r##0, av, v[0]); RQ_NP_DP(s##r##1, av, v[1]);                                  \
        RQ_NP_DP(s##r##2, av, v[2]); RQ_NP_DP(s##r##3, av, v[3]);                                  \
    }
#define RQ_NP_ROWS RQ_NP_ROW(0) RQ_NP_ROW(1) RQ_NP_ROW(2) RQ_NP_ROW(3) RQ_NP_ROW(4) RQ_NP_ROW(5)
#define RQ_NP_OUT(r) if (R + ONES > r) np_unscramble(s##r##0, s##r##1, s##r##2, s##r##3, out + 64 * r);
static inline __attribute__((always_inline)) void np_kern(const uint8_t *const *a, const uint8_t *p, ptrdiff_t rs,
                                                           int K, __mmask64 m, __mmask64 m2, ptrdiff_t d2,
                                                           int32_t *out, const int R, const int ONES,
                                                           const int MASKED, const int XB) {
    __m512i s00 = _mm512_setzero_si512(), s01 = s00, s02 = s00, s03 = s00, s10 = s00, s11 = s00, s12 = s00,
            s13 = s00, s20 = s00, s21 = s00, s22 = s00, s23 = s00, s30 = s00, s31 = s00, s32 = s00, s33 = s00,
            s40 = s00, s41 = s00, s42 = s00, s43 = s00, s50 = s00, s51 = s00, s52 = s00, s53 = s00;
    const int K4 = K & ~3;
    int k = 0;
    for (; k < K4; k += 4, p += 4 * rs) {
        __m512i v[4];
        np_rows4(p, rs, 4, m, m2, d2, MASKED, XB, v);
        RQ_NP_ROWS
    }
    if (k < K) {   /* the last k-group's rows past K are zero (A_used is zero there too) */
        __m512i v[4];
        np_rows4(p, rs, K - k, m, m2, d2, MASKED, XB, v);
        RQ_NP_ROWS
    }
    RQ_NP_OUT(0) RQ_NP_OUT(1) RQ_NP_OUT(2) RQ_NP_OUT(3) RQ_NP_OUT(4) RQ_NP_OUT(5)
}
#undef RQ_NP_ROW
#undef RQ_NP_ROWS
#undef RQ_NP_OUT

static void np_block(const np_job *J, const uint8_t *const *a, const uint8_t *p, __mmask64 m, __mmask64 m2,
                     ptrdiff_t d2, int32_t *out, int R, int ones, int masked) {
    const ptrdiff_t rs = J->b_rs;
    const int K = J->K;
#define RQ_NP_X(RR, O, MK) \
    if (J->xb) np_kern(a, p, rs, K, m, m2, d2, out, RR, O, MK, 1); else np_kern(a, p, rs, K, m, m2, d2, out, RR, O, MK, 0);
#define RQ_NP_K(RR, O) \
    if (masked == 2) { RQ_NP_X(RR, O, 2) } else if (masked) { RQ_NP_X(RR, O, 1) } else { RQ_NP_X(RR, O, 0) }
    if (ones) {   /* the first block: up to 5 rows and the row of ones */
        switch (R) {
        case 5: RQ_NP_K(5, 1) break;
        case 4: RQ_NP_K(4, 1) break;
        case 3: RQ_NP_K(3, 1) break;
        case 2: RQ_NP_K(2, 1) break;
        default: RQ_NP_K(1, 1) break;
        }
        return;
    }
    switch (R) {
    case 6: RQ_NP_K(6, 0) break;
    case 5: RQ_NP_K(5, 0) break;
    case 4: RQ_NP_K(4, 0) break;
    case 3: RQ_NP_K(3, 0) break;
    case 2: RQ_NP_K(2, 0) break;
    default: RQ_NP_K(1, 0) break;
    }
#undef RQ_NP_K
#undef RQ_NP_X
}

/* chunks [t * nch / ntask, ...) of the column chunks, every row */
typedef struct { const np_job *J; int ntask; } np_tasks;

/* the outputs of one row block (rows [i, i + R)) for the columns [j0, j0 + n), lanes from ol of
 * out: straight int32 stores of raw - colfix, or the epilogue (eb: e restricted to the columns) */
static void np_finish(const np_job *J, const rq_epi *eb, int direct, int i, int R, const int32_t *out, int ol,
                      int n) {
    if (!direct) { J->epi(eb, i, R, 0, n, out + ol, 64); return; }
    for (int q = 0; q < 4; q++) {
        const int l = 16 * q;                     /* lanes [l, l + 16) */
        if (l + 16 <= ol || l >= ol + n) continue;
        const int lo = l < ol ? ol - l : 0, hi = l + 16 > ol + n ? ol + n - l : 16;
        const __mmask16 mq = (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
        const __m512i f = eb->colfix ? _mm512_maskz_loadu_epi32(mq, eb->colfix + (l - ol)) : _mm512_setzero_si512();
        int32_t *cq = (int32_t *)eb->C + (ptrdiff_t)i * eb->c_rs + (l - ol);
        for (int r = 0; r < R; r++)
            _mm512_mask_storeu_epi32(cq + (ptrdiff_t)r * eb->c_rs, mq,
                                     _mm512_sub_epi32(_mm512_load_si512((const void *)(out + 64 * r + l)), f));
    }
}

static inline __mmask64 np_lanes(int lo, int hi) {   /* lanes [lo, hi) of 64 */
    return _cvtu64_mask64((hi >= 64 ? ~0ULL : (1ULL << hi) - 1) & (~0ULL << lo));
}

static void np_task(void *ctx, int64_t t) {
    const np_tasks *T = (const np_tasks *)ctx;
    const np_job *J = T->J;
    /* the chunks this task runs; with J->merge, chunk 0 also takes the last one's columns */
    const int nrun = J->nch - J->merge;
    const int c0 = (int)((int64_t)nrun * t / T->ntask), c1 = (int)((int64_t)nrun * (t + 1) / T->ntask);
    int32_t out[(RQ_NP_MAXR + 1) * 64] __attribute__((aligned(64)));
    const rq_epi *e0 = J->e;
    /* an int32 result with no correction but the column term (as vnni_task's direct tiles) */
    const int direct = e0->out_type == RQ_OUT_S32 && e0->c_cs == 1 && !e0->rowfix && !e0->za_row &&
                       !e0->zb_col && !e0->bias;
    for (int c = c0; c < c1; c++) {
        const int jv = 64 * c - J->co;                 /* the chunk's first (virtual) column */
        const int jlo = jv < 0 ? 0 : jv, jhi = jv + 64 < J->N ? jv + 64 : J->N;
        const int merged = J->merge && c == 0;
        /* merged: the last chunk's columns [jv2, N) in lanes [0, N - jv2), which the first
         * chunk's co missing columns leave free */
        const int jv2 = 64 * (J->nch - 1) - J->co, n2 = merged ? J->N - jv2 : 0;
        const int masked = merged ? 2 : (jv < 0 || jv + 64 > J->N);
        const __mmask64 m = masked ? np_lanes(jlo - jv, jhi - jv) : np_lanes(0, 64);
        const __mmask64 m2 = np_lanes(0, n2);
        const ptrdiff_t d2 = 64 * (ptrdiff_t)(J->nch - 1);
        const uint8_t *p = J->B + 64 * (ptrdiff_t)c;
        rq_epi eb, eb2;
        for (int i = 0; i < J->M;) {
            const int rem = J->M - i, first = i == 0 && J->csum;
            const int R = first ? (rem < 5 ? rem : 5) : (rem >= 9 || rem == 6 ? 6 : (rem >= 7 ? 4 : rem));
            const uint8_t *a[RQ_NP_MAXR];
            for (int r = 0; r < RQ_NP_MAXR; r++) a[r] = J->ap + (ptrdiff_t)(i + (r < R ? r : R - 1)) * J->lda;
            np_block(J, a, p, m, m2, d2, out, R, first, masked);
            if (first) {
                for (int j = jlo; j < jhi; j++) J->csum[j] = out[64 * R + (j - jv)];
                for (int j = jv2; j < jv2 + n2; j++) J->csum[j] = out[64 * R + (j - jv2)];
            }
            if (i == 0) {
                J->prep(J->ctx, jlo, jhi - jlo, &eb);
                if (n2) J->prep(J->ctx, jv2, n2, &eb2);
            }
            np_finish(J, &eb, direct, i, R, out, jlo - jv, jhi - jlo);
            if (n2) np_finish(J, &eb2, direct, i, R, out, 0, n2);
            i += R;
        }
    }
}

int rq_gemm_vnni_plain__avx512vnni(const uint8_t *ap, ptrdiff_t lda, const rq_gemm_args *a, const rq_epi *e,
                                   int32_t *csum, rq_cols_prep_fn prep, void *ctx, int nthreads) {
    const int N = a->N;
    /* B's rows all starting co bytes past a cache line (numpy's usual 16): chunks of whole lines */
#ifndef RQ_NP_CO
#define RQ_NP_CO 1
#endif
    const int co = (RQ_NP_CO && a->b_rs % 64 == 0 && N >= 128) ? (int)((uintptr_t)a->B % 64) : 0;
    np_job J = {ap, lda, a->B - co, a->b_rs, a->M, N, a->K, co, (N + co + 63) / 64, !a->b_signed,
                csum, prep, ctx, rq_epi_rows__avx512 ? rq_epi_rows__avx512 : rq_epi_rows__scalar, e, 0};
    /* the last chunk's columns fit in the first one's co free lanes: one chunk runs both (768
     * columns 16 bytes past a line: 12 chunks, not 13) */
    J.merge = RQ_NP_MERGE && co > 0 && J.nch >= 3 && N - (64 * (J.nch - 1) - co) <= co;
    const int nt = imax(1, imin(nthreads, J.nch - J.merge));
    np_tasks T = {&J, nt};
    rq_parallel(nt, nt, np_task, &T);
    return RQ_OK;
}
