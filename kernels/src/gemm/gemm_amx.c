/* gemm_amx.c -- AMX-INT8 integer GEMM: tdpbusd (uint8 A) / tdpbssd (int8 A) on B_used (int8),
 * tdpbuud / tdpbsud on a raw uint8 B (rq_packed_b.b_raw).
 *
 * Tiles: C 0..3 (2x2 blocks of 16x16 int32), A 4..5 (16 rows x 64 bytes), B 6..7 (16 k-groups x
 * 16 columns x 4 bytes, the VNNI-4 panel layout of rq_packed_b).  tdp* accumulate into int32 with
 * wraparound, so raw sums are exact modulo 2^32; gemm.c applies the zero-point correction.
 * Tile permission: rq_amx_enable() (arch_prctl) is requested by the caller before dispatch. */
#include "rq_gemm.h"
#include "../common/rq_cpu.h"
#include "../common/rq_pool.h"
#include <immintrin.h>
#include <string.h>
#include <stdlib.h>
#ifdef RQ_AMX_EMU
#include "rq_amx_emu.h"   /* tests on CPUs without AMX: REFQUANT_AMX_EMU=1 builds */
#endif
#if defined(_OPENMP)
#include <omp.h>
#endif

#ifndef RQ_PLAIN_PFB
#define RQ_PLAIN_PFB 0   /* plain-B driver: no B prefetch (its buffer is in L1 / L2; measured 3-7% faster) */
#endif
#ifndef RQ_PF
#define RQ_PF 1
#endif
static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

typedef struct {
    uint8_t palette, start_row, res[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tilecfg_t;

static void amx_config(void) {
    tilecfg_t c __attribute__((aligned(64)));
    memset(&c, 0, sizeof(c));
    c.palette = 1;
    for (int t = 0; t < 8; t++) { c.colsb[t] = 64; c.rows[t] = 16; }
    _tile_loadconfig(&c);
}

/* The plain-B driver packs the next 64-column group while the tile unit works on the current
 * one: 0 off (each group packed before its tile work), 1 a share of the packing after each
 * tile call, 2 a share inside each call's k loop.  REFQUANT_AMX_OVERLAP (0, 1, 2) overrides
 * the default, for measurements. */
#ifndef RQ_AMX_OVERLAP
#define RQ_AMX_OVERLAP 0   /* modes 1 and 2 are bit-exact (emulated AMX) but not yet timed on an AMX CPU */
#endif
static int amx_overlap_mode(void) {
    static volatile int mode = -1;
    if (mode < 0) {
        const char *e = getenv("REFQUANT_AMX_OVERLAP");
        mode = e && e[0] >= '0' && e[0] <= '2' && !e[1] ? e[0] - '0' : RQ_AMX_OVERLAP;
    }
    return mode;
}

/* packing of one group in steps (rq_pack_b_group_step__avx512vnni): k-groups [g, gend) to do,
 * per a step inside a tile call's k loop */
typedef struct {
    rq_packed_b *pb; const uint8_t *B; ptrdiff_t b_rs; int g, gend, per;
    int32_t cs[64];
} amx_pk;

static void pk_step(amx_pk *pk, int n) {
    if (pk->g >= pk->gend) return;
    const int e = pk->gend - pk->g > n ? pk->g + n : pk->gend;
    rq_pack_b_group_step__avx512vnni(pk->pb, pk->B, pk->b_rs, pk->g, e, pk->cs);
    pk->g = e;
}

/* accumulator start: zero, or (ci) one row of 16 int32 column constants in every row (a
 * stride-0 tile load): sums then start from -colfix[j], folded in exactly (wraparound) */
#define CINIT(t, cp) do { if (ci) _tile_loadd(t, (cp), 0); else _tile_zero(t); } while (0)

#define DEF_KERNELS(SFX, OP, ALD, PFB, PK)                                                                           \
static void k22_##SFX(const uint8_t *a0, const uint8_t *a1, const int64_t *koff, ptrdiff_t as,    \
                      const uint8_t *b0, const uint8_t *b1, int nkc, int32_t *out, int ldo, int acc,  \
                      ptrdiff_t bnext, const int32_t *ci, amx_pk *pk) {                           \
    if (acc) {                                                                                    \
        _tile_loadd(0, out, ldo * 4); _tile_loadd(1, out + 16, ldo * 4);                          \
        _tile_loadd(2, out + 16 * ldo, ldo * 4); _tile_loadd(3, out + 16 * ldo + 16, ldo * 4);    \
    } else { CINIT(0, ci); CINIT(1, ci + 16); CINIT(2, ci); CINIT(3, ci + 16); }                  \
    /* each operand tile is reloaded right after its last use in the step (no tile renaming) */   \
    ALD(4, a0 + koff[0], as);                                                             \
    _tile_loadd(6, b0, 64);                                                                       \
    _tile_loadd(7, b1, 64);                                                                       \
    ALD(5, a1 + koff[0], as);                                                             \
    for (int kc = 0; kc < nkc - 1; kc++) {                                                        \
        const size_t nb = (size_t)(kc + 1) * 1024;                                                \
        if (PK && pk) pk_step(pk, pk->per);                                                             \
        if (RQ_PF && PFB) {                                                                       \
            /* B one chunk ahead (measured 1-2% ahead of 2, 3, 4); past the end of this K     \
             * range, the next panel pair's first chunk (prefetch never faults).  A is not      \
             * prefetched (measured: prefetching its next chunk into L1 cost 4% at 512^3, 8% at \
             * 128x768x768, 13% at 1024^3) */                                                    \
            const ptrdiff_t pfo = kc + 1 < nkc ? (ptrdiff_t)(kc + 1) * 1024                       \
                                               : bnext + (ptrdiff_t)(kc + 1 - nkc) * 1024;        \
            const char *pf0 = (const char *)b0 + pfo, *pf1 = (const char *)b1 + pfo;              \
            for (int l = 0; l < 16; l++) {                                                        \
                _mm_prefetch(pf0 + l * 64, _MM_HINT_T0); _mm_prefetch(pf1 + l * 64, _MM_HINT_T0); \
            }                                                                                     \
        }                                                                                         \
        OP(0, 4, 6);                                                                              \
        OP(1, 4, 7);                                                                              \
        ALD(4, a0 + koff[kc + 1], as);                                                    \
        OP(2, 5, 6);                                                                              \
        _tile_loadd(6, b0 + nb, 64);                                                              \
        OP(3, 5, 7);                                                                              \
        _tile_loadd(7, b1 + nb, 64);                                                              \
        ALD(5, a1 + koff[kc + 1], as);                                                    \
    }                                                                                             \
    OP(0, 4, 6); OP(1, 4, 7); OP(2, 5, 6); OP(3, 5, 7);                                           \
    _tile_stored(0, out, ldo * 4); _tile_stored(1, out + 16, ldo * 4);                                    \
    _tile_stored(2, out + 16 * ldo, ldo * 4); _tile_stored(3, out + 16 * ldo + 16, ldo * 4);                             \
}                                                                                                 \
static void k12_##SFX(const uint8_t *a0, const int64_t *koff, ptrdiff_t as,                        \
                      const uint8_t *b0, const uint8_t *b1, int nkc, int32_t *out, int ldo, int acc,  \
                      const int32_t *ci, amx_pk *pk) {                                            \
    if (acc) { _tile_loadd(0, out, ldo * 4); _tile_loadd(1, out + 16, ldo * 4); }                \
    else { CINIT(0, ci); CINIT(1, ci + 16); }                                                     \
    for (int kc = 0; kc < nkc; kc++) {                                                            \
        if (PK && pk) pk_step(pk, pk->per);                                                             \
        ALD(4, a0 + koff[kc], as);                                                        \
        _tile_loadd(6, b0 + (size_t)kc * 1024, 64);                                               \
        _tile_loadd(7, b1 + (size_t)kc * 1024, 64);                                               \
        OP(0, 4, 6);                                                                              \
        OP(1, 4, 7);                                                                              \
    }                                                                                             \
    _tile_stored(0, out, ldo * 4); _tile_stored(1, out + 16, ldo * 4);                                    \
}                                                                                                 \
static void k21_##SFX(const uint8_t *a0, const uint8_t *a1, const int64_t *koff, ptrdiff_t as,    \
                      const uint8_t *b0, int nkc, int32_t *out, int ldo, int acc, const int32_t *ci, \
                      amx_pk *pk) {                                                               \
    if (acc) { _tile_loadd(0, out, ldo * 4); _tile_loadd(2, out + 16 * ldo, ldo * 4); }          \
    else { CINIT(0, ci); CINIT(2, ci); }                                                          \
    for (int kc = 0; kc < nkc; kc++) {                                                            \
        if (PK && pk) pk_step(pk, pk->per);                                                             \
        ALD(4, a0 + koff[kc], as);                                                        \
        ALD(5, a1 + koff[kc], as);                                                        \
        _tile_loadd(6, b0 + (size_t)kc * 1024, 64);                                               \
        OP(0, 4, 6);                                                                              \
        OP(2, 5, 6);                                                                              \
    }                                                                                             \
    _tile_stored(0, out, ldo * 4); _tile_stored(2, out + 16 * ldo, ldo * 4);                                   \
}                                                                                                 \
static void k11_##SFX(const uint8_t *a0, const int64_t *koff, ptrdiff_t as,                        \
                      const uint8_t *b0, int nkc, int32_t *out, int ldo, int acc, const int32_t *ci, \
                      amx_pk *pk) {                                                               \
    if (acc) _tile_loadd(0, out, ldo * 4); else { CINIT(0, ci); }                                 \
    for (int kc = 0; kc < nkc; kc++) {                                                            \
        if (PK && pk) pk_step(pk, pk->per);                                                             \
        ALD(4, a0 + koff[kc], as);                                                        \
        _tile_loadd(6, b0 + (size_t)kc * 1024, 64);                                               \
        OP(0, 4, 6);                                                                              \
    }                                                                                             \
    _tile_stored(0, out, ldo * 4);                                                                \
}

DEF_KERNELS(us, _tile_dpbusd, _tile_loadd, 1, 0)
DEF_KERNELS(ss, _tile_dpbssd, _tile_loadd, 1, 0)
DEF_KERNELS(uu, _tile_dpbuud, _tile_loadd, 1, 0)   /* raw uint8 B (rq_packed_b.b_raw) */
/* (PK 0 above: the packed-B kernels compile without the packing steps, as before them) */
DEF_KERNELS(su, _tile_dpbsud, _tile_loadd, 1, 0)
/* A tiles loaded with the non-temporal hint (tileloaddt1): the plain-B driver below keeps a small
 * packed-B buffer in L1 and streams A past it (measured at 128x768x768: 56.7 -> 49.3 us) */
DEF_KERNELS(us_s, _tile_dpbusd, _tile_stream_loadd, RQ_PLAIN_PFB, 1)
DEF_KERNELS(ss_s, _tile_dpbssd, _tile_stream_loadd, RQ_PLAIN_PFB, 1)
DEF_KERNELS(uu_s, _tile_dpbuud, _tile_stream_loadd, RQ_PLAIN_PFB, 1)
DEF_KERNELS(su_s, _tile_dpbsud, _tile_stream_loadd, RQ_PLAIN_PFB, 1)

/* rows i0 .. i0 + 31 of a lazy A into buf, tile-packed [2][nkc][16][64], zero padded past M and
 * past K (rq_amx_a.lazy) */
static void copy_strip(const rq_amx_a *A, int i0, int nkc, uint8_t *buf) {
    const int M = A->lazy_M, K = A->lazy_K, kfull = K / 64, kt = K - kfull * 64;
    const __mmask64 mt = kt ? (((__mmask64)1 << kt) - 1) : 0;
    for (int r = 0; r < 32; r++) {
        uint8_t *d = buf + (size_t)(r >> 4) * nkc * 1024 + (size_t)(r & 15) * 64;
        const int i = i0 + r;
        if (i >= M) {
            for (int kc = 0; kc < nkc; kc++) _mm512_store_si512((void *)(d + (size_t)kc * 1024), _mm512_setzero_si512());
            continue;
        }
        const uint8_t *s = A->lazy + (ptrdiff_t)i * A->lazy_rs;
        int kc = 0;
        for (; kc < kfull; kc++)
            _mm512_store_si512((void *)(d + (size_t)kc * 1024), _mm512_loadu_si512((const void *)(s + kc * 64)));
        if (kt) { _mm512_store_si512((void *)(d + (size_t)kc * 1024), _mm512_maskz_loadu_epi8(mt, s + kc * 64)); kc++; }
        for (; kc < nkc; kc++) _mm512_store_si512((void *)(d + (size_t)kc * 1024), _mm512_setzero_si512());
    }
}

/* int32 output needing at most the per-column correction colfix (folded into the accumulators'
 * start): whole 32x32 blocks can be stored straight into C */
static int direct_ok(const rq_epi *e) {
    return e->out_type == RQ_OUT_S32 && e->c_cs == 1 && !e->rowfix && !e->za_row && !e->zb_col &&
           !e->bias && !e->fbias && !e->od && !e->fx_mode && e->c_rs >= e->N && e->c_rs <= (1 << 26);
}

/* 8-bit outputs whose column terms (-colfix[j], an int32 bias[j] broadcast over rows) can start
 * the accumulators instead of being added by the epilogue: not with a zero point per row of A
 * (its column term is multiplied per row) nor the fixed-point epilogue (kept as written) */
static int fold_cols_ok(const rq_epi *e) {
    return e->out_type != RQ_OUT_S32 && !e->za_row && !e->fx_mode &&
           (e->colfix || (e->bias && e->bias_cs == 1 && e->bias_rs == 0));
}

/* t[j] = -colfix[c0 + j] + bias[c0 + j] (int32 wraparound) for j < n, 0 up to len */
static void fold_cols(const rq_epi *e, int c0, int n, int len, int32_t *t) {
    const int bcol = e->bias && e->bias_cs == 1 && e->bias_rs == 0;
    for (int j = 0; j < len; j++) {
        uint32_t v = 0;
        if (j < n) {
            if (e->colfix) v -= (uint32_t)e->colfix[c0 + j];
            if (bcol) v += (uint32_t)e->bias[c0 + j];
        }
        t[j] = (int32_t)v;
    }
}

typedef struct {
    const rq_amx_a *A; const rq_packed_b *pb; const rq_epi *e; rq_epi_fn epi;
    int M, N, Kp, nkc, nib, npan, nib2, npp, jbw, rchunk, nrc, sgn;
    int kcmax;
    int dc;                  /* direct mode: int32 output, corrections at most colfix */
    const int32_t *cinit;    /* direct mode: -colfix[j] (Np + 32 entries) or NULL */
    rq_epi e2;               /* direct mode: e without colfix (edge blocks: a plain copy);
                              * strip mode with folded column terms: e without them */
    const rq_epi *es;        /* strip mode: the epilogue the strips go through (e or &e2) */
    int njb, rowmaj;         /* column blocks; task order */
} amx_job;

/* one task: row chunk rc x column block jb.  Tiles are configured and released per task, so a
 * pool worker never keeps tile state between calls. */
static void amx_task(void *ctx, int64_t t) {
    const amx_job *J = (const amx_job *)ctx;
    const rq_amx_a *A = J->A;
    const rq_packed_b *pb = J->pb;
    const int M = J->M, N = J->N, Kp = J->Kp, nkc = J->nkc, nib = J->nib, npan = J->npan;
    const int jbw = J->jbw, rchunk = J->rchunk, nrc = J->nrc, sgn = J->sgn;
    /* task order (rq_gemm_amx__amx): row chunks outer (rowmaj) or column blocks outer */
    const int jb = (int)(J->rowmaj ? t % J->njb : t / nrc), rc = (int)(J->rowmaj ? t / J->njb : t % nrc);
    const int pp0 = jb * jbw, pp1 = imin(J->npp, (jb + 1) * jbw);
    /* raw sums of a 32-row strip of one column block are stored straight into a strip buffer;
     * the epilogue then runs over long rows (fewer, longer store streams) */
    const int ldo = jbw * 32 + 16;   /* +64 bytes: avoid 4K aliasing with the output rows */
    /* two strips: the epilogue of one runs while the tile unit works on the next */
    const size_t ssz = (size_t)32 * ldo + 64;
    int32_t *strips = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * 2 * ssz + 256);
    uint8_t *abuf = A->lazy ? (uint8_t *)rq_aligned_alloc((size_t)2 * nkc * 1024) : NULL;
    if (!strips || (A->lazy && !abuf)) { rq_aligned_free(strips); rq_aligned_free(abuf); return; }
    int pend_i0 = -1, pend_mi = 0, sidx = 0;
    const int ej0 = pp0 * 32, ejn = imin(N, pp1 * 32) - ej0;
    amx_config();
    /* K passes of at most kcmax chunks (1024 < K <= 2048, or K > 4096): partial sums
     * round-trip through C or the strip (tiles loaded back) */
    const int kcb = nkc > J->kcmax ? J->kcmax : nkc;
    for (int ib2 = rc * rchunk; ib2 < imin(J->nib2, (rc + 1) * rchunk); ib2++) {
        const int ib = 2 * ib2, two_i = ib + 1 < nib;
        const uint8_t *a0 = A->abase + (ptrdiff_t)ib * A->a_ib_stride;
        if (A->lazy) { copy_strip(A, ib * 16, nkc, abuf); a0 = abuf; }
        const uint8_t *a1 = a0 + A->a_ib_stride;
        const int i0 = ib * 16, mi = imin(32, M - i0);
        int32_t *strip = strips + (size_t)sidx * ssz;
        for (int kc0 = 0; kc0 < nkc; kc0 += kcb) {
            const int nk = imin(kcb, nkc - kc0), acc = kc0 > 0;
            const int64_t *koff = A->koff + kc0;
            for (int pp = pp0; pp < pp1; pp++) {
                const int p = 2 * pp, two_j = p + 1 < npan;
                const uint8_t *b0 = pb->data + (size_t)p * Kp * 16 + (size_t)kc0 * 1024;
                const uint8_t *b1 = b0 + (size_t)Kp * 16;
                const int j = p * 16;
                /* direct mode: whole 32x32 blocks go straight into C (no strip, no epilogue) */
                const int full = J->dc && two_i && two_j && i0 + 32 <= M && j + 32 <= N;
                int32_t *out = full ? (int32_t *)J->e->C + (ptrdiff_t)i0 * J->e->c_rs + j
                                    : strip + (pp - pp0) * 32;
                const int ld = full ? (int)J->e->c_rs : ldo;
                const int32_t *ci = J->cinit ? J->cinit + j : NULL;
                const ptrdiff_t bnext = (ptrdiff_t)Kp * 32;   /* the next panel pair */
#define RQ_AMX_CALL(S)                                                                            \
                do {                                                                              \
                    if (two_i && two_j) k22_##S(a0, a1, koff, A->a_tile_stride, b0, b1, nk, out, ld, acc, bnext, ci, NULL); \
                    else if (two_j) k12_##S(a0, koff, A->a_tile_stride, b0, b1, nk, out, ld, acc, ci, NULL); \
                    else if (two_i) k21_##S(a0, a1, koff, A->a_tile_stride, b0, nk, out, ld, acc, ci, NULL); \
                    else k11_##S(a0, koff, A->a_tile_stride, b0, nk, out, ld, acc, ci, NULL);            \
                } while (0)
                switch (sgn) {   /* A int8: +1; B raw uint8: +2 */
                case 0: RQ_AMX_CALL(us); break;
                case 1: RQ_AMX_CALL(ss); break;
                case 2: RQ_AMX_CALL(uu); break;
                default: RQ_AMX_CALL(su); break;
                }
#undef RQ_AMX_CALL
                if (J->dc && !full && kc0 + kcb >= nkc)   /* an edge block: copy out its part */
                    J->epi(&J->e2, i0, mi, j, imin(32, N - j), out, ldo);
            }
        }
        if (!J->dc) {   /* the previous strip's epilogue, behind this strip's tile work */
            if (pend_i0 >= 0)
                J->epi(J->es, pend_i0, pend_mi, ej0, ejn, strips + (size_t)(sidx ^ 1) * ssz, ldo);
            pend_i0 = i0; pend_mi = mi; sidx ^= 1;
        }
    }
    if (pend_i0 >= 0) J->epi(J->es, pend_i0, pend_mi, ej0, ejn, strips + (size_t)(sidx ^ 1) * ssz, ldo);
    _tile_release();
    rq_aligned_free(strips);
    rq_aligned_free(abuf);
}

int rq_gemm_amx__amx(const rq_amx_a *A, const rq_packed_b *pb, const rq_epi *e, int nthreads) {
    const int M = e->M, N = e->N, Kp = pb->Kp, nkc = Kp / 64;
    const int nib = A->nib, npan = pb->Np / 16;
    const int nib2 = (nib + 1) / 2, npp = (npan + 1) / 2;
    if (!rq_amx_enable()) return RQ_ENOISA;
    /* K chunks per pass: one pass up to K = 1024 and from K = 2112 to 4096; in between, passes of
     * about 8 chunks (512 bytes of each A row: a 32-row strip's part, 16 KiB, stays in L1 across
     * the column block's panel pairs instead of streaming from L2 beside B), the partial sums
     * kept in C (int32 outputs) or in the strip (measured at 1 thread, packed B: 2048^3 6.3 ->
     * 5.8 ms, 512x2048x2048 1.61 -> 1.49 ms (u8 output 1.64 -> 1.41), 1024x1024x1536 1.20 ->
     * 0.99 ms, 1024^3 637 -> 614 us; no gain at K = 768 (33 -> 38 us at 128x768x768), 3072 or
     * 4096) */
    const int kc_split = nkc >= 16 && nkc <= 32;
    const int kcmax = kc_split ? (nkc + (nkc + 7) / 8 - 1) / ((nkc + 7) / 8) : 64;
    rq_epi_fn epi = rq_epi_rows__avx512 ? rq_epi_rows__avx512 : rq_epi_rows__scalar;
    /* column blocks (panel pairs) sized so a block of packed B stays in L2 */
    /* half the L2 (measured on a 2 MiB L2: 1 MiB blocks beat 512 KiB by 8% at 1024^3 and 11%
     * at 2048^3 with packed B; 1.5 MiB is no better) */
    const long l2b = rq_l2_bytes() / 2;   /* bytes of packed B per column block */
    int jbw = (int)(l2b / ((size_t)Kp * 32));
    if (jbw < 1) jbw = 1;
    if (jbw > npp) jbw = npp;
    /* with threads: small row chunks handed out dynamically (a descheduled thread on a shared
     * machine does not hold the others up; every chunk sweeps the same B block, so the chunk
     * size does not change the memory traffic).  Bits never depend on the split. */
    int rchunk = nthreads > 1 ? (nib2 + 4 * nthreads - 1) / (4 * nthreads) : nib2;
    int nrc = (nib2 + rchunk - 1) / rchunk;
    if (nrc < 4 * nthreads && nthreads > 1) {
        int want = (4 * nthreads + nrc - 1) / nrc;
        int w = (npp + want - 1) / want;
        if (w < jbw) jbw = w < 1 ? 1 : w;
    }
    /* with threads, each thread first takes one contiguous range of the tasks (rq_pool.h), so
     * with a steady thread count a core gets the same tasks call after call.  A packed B that
     * fits half the L2 goes to every core whole, and the tasks are ordered row chunks outer: a
     * core takes a contiguous run of rows across all columns.  A larger B is split by column
     * blocks, their count a multiple of the threads, so each core's share of B stays in its
     * own L2 (measured in-process at 2 threads against one shared counter over column-major
     * tasks, packed B, us: 128x3072x768 142 -> 105, 32x3072x768 44 -> 33, 64x768x768 21.7 ->
     * 17.2, 128x768x768 29.7 -> 28.1, 512^3 55 -> 51, 1024^3 323 -> 311) */
    const int rowmaj = nthreads > 1 && (size_t)Kp * npan * 16 <= (size_t)l2b && nrc >= nthreads;
    if (nthreads > 1 && !rowmaj) {
        int nj = (npp + jbw - 1) / jbw;
        if (nj > 1) {
            nj = (nj + nthreads - 1) / nthreads * nthreads;
            jbw = (npp + nj - 1) / nj;
        }
    }
    const int njb = (npp + jbw - 1) / jbw;
    const int ntask = njb * nrc;
    const int sgn = (A->a_signed ? 1 : 0) + (pb->b_raw ? 2 : 0);
    amx_job J = {A, pb, e, epi, M, N, Kp, nkc, nib, npan, nib2, npp, jbw, rchunk, nrc, sgn, kcmax, 0, NULL};
    J.es = e;
    J.njb = njb; J.rowmaj = rowmaj;
    /* direct mode: raw sums need at most the per-column term colfix, which is folded into the
     * accumulators' start (sum - colfix == (-colfix) + sum modulo 2^32), so whole blocks are
     * the final int32 outputs */
    int32_t *cinit = NULL;
    /* (more than 64 chunks: passes of 64 through the strip, partial sums through C measured slower) */
    if (direct_ok(e) && (nkc <= kcmax || kc_split)) {
        if (e->colfix) {
            cinit = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)(npan * 16 + 32));
            if (!cinit) return RQ_ENOMEM;
            for (int j = 0; j < npan * 16 + 32; j++)
                cinit[j] = j < N ? (int32_t)(0u - (uint32_t)e->colfix[j]) : 0;
        }
        J.dc = 1; J.cinit = cinit; J.e2 = *e; J.e2.colfix = NULL;
    } else if (fold_cols_ok(e)) {
        /* strip mode: the column terms (-colfix[j], + bias[j] broadcast over rows) folded into
         * the accumulators' start too, so the epilogue adds no column table (the same sums
         * modulo 2^32; measured in-process on the 3x3 conv 64->64 at 56x56, whose epilogue is
         * as heavy as its tile products: 127.8 -> 122.4 and 123.5 -> 121.9 us; 512^3 with u8
         * output: no change) */
        cinit = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)(npan * 16 + 32));
        if (!cinit) return RQ_ENOMEM;
        fold_cols(e, 0, N, npan * 16 + 32, cinit);
        J.cinit = cinit; J.e2 = *e; J.e2.colfix = NULL;
        if (e->bias && e->bias_cs == 1 && e->bias_rs == 0) J.e2.bias = NULL;   /* folded */
        J.es = &J.e2;
    }
    /* tasks claimed dynamically by the caller plus pool workers (rq_pool.h): no join waits on
     * a worker the scheduler has not started */
    rq_parallel(ntask, ntask > 1 ? nthreads : 1, amx_task, &J);
    rq_aligned_free(cinit);
    return RQ_OK;
}

/* Plain B (rq_gemm.h): per 64-column group, pack it into a small buffer (4 panels, 64 * Kp bytes:
 * L1 / L2 resident), then every 32-row strip of A times its 1 or 2 panel pairs.  Same integer
 * sums and epilogue as rq_gemm_amx__amx on the whole packed B, so the same bits.  One task per
 * thread, each a contiguous run of groups with buffers of its own; a lazy A is copied whole by
 * every task into its own buffer (a copy shared between cores would cross caches on every
 * read). */
typedef struct {
    const rq_amx_a *A; const uint8_t *B; ptrdiff_t b_rs; int K, N, b_signed, ng, ntask;
    int lead;   /* columns in the first group (0: all groups 64 wide); see rq_gemm_amx_plain__amx */
    int32_t *csum; rq_cols_prep_fn prep; void *ctx; volatile int err;
    rq_pack_blk_fn pack; void *pctx;   /* packs each group instead of the row packer (B unused) */
} plain_job;

static void plain_task(void *vctx, int64_t t) {
    plain_job *J = (plain_job *)vctx;
    const rq_amx_a *A = J->A;
    const int K = J->K, N = J->N, b_signed = J->b_signed;
    const int Kp = ((K > 0 ? K : 1) + 63) / 64 * 64, nkc = Kp / 64;
    const int nib = A->nib, nib2 = (nib + 1) / 2;
    const int ldo = 64 + 16;   /* strip: 32 rows x 64 columns (+64 bytes against 4K aliasing) */
    /* overlap: the next group packed during this group's tile calls, into the other buffer */
    const int g0 = (int)(J->ng * t / J->ntask), g1 = (int)(J->ng * (t + 1) / J->ntask);
    const int ov = !J->pack && rq_pack_b_group_step__avx512vnni && g1 - g0 > 1 ? amx_overlap_mode() : 0;
    uint8_t *buf = (uint8_t *)rq_aligned_alloc((size_t)Kp * 64 * (ov ? 2 : 1));
    /* two strips: a strip's epilogue runs behind the next strip's tile work (as amx_task) */
    const size_t ssz = (size_t)32 * ldo + 64;
    int32_t *strips = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * 2 * ssz + 256);
    int32_t *cinit = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * 96);
    uint8_t *abuf = A->lazy ? (uint8_t *)rq_aligned_alloc((size_t)nib2 * 2 * nkc * 1024) : NULL;
    if (!buf || !strips || !cinit || (A->lazy && !abuf)) {
        rq_aligned_free(buf); rq_aligned_free(strips); rq_aligned_free(cinit); rq_aligned_free(abuf);
        J->err = RQ_ENOMEM;
        return;
    }
    const uint8_t *abase = A->abase;
    if (A->lazy) {   /* tile-packed [ib][kc][16][64], zero padded (A->koff: kc * 1024) */
        for (int ib2 = 0; ib2 < nib2; ib2++) copy_strip(A, ib2 * 32, nkc, abuf + (size_t)ib2 * 2 * nkc * 1024);
        abase = abuf;
    }
    rq_epi_fn epi = rq_epi_rows__avx512 ? rq_epi_rows__avx512 : rq_epi_rows__scalar;
    const int sgn = (A->a_signed ? 1 : 0) + (b_signed ? 0 : 2);
    const ptrdiff_t as = A->a_tile_stride;
    amx_config();
    rq_epi pe;   /* the pending epilogue: its group's columns, rows [pi0, pi0 + pmi) */
    int pi0 = -1, pmi = 0, pn = 0, sidx = 0;
    const int lead = J->lead;   /* group g starts at column g * 64, or with a lead group at
                                 * lead + (g - 1) * 64 (g > 0) */
#define RQ_GCOL(g) ((g) == 0 ? 0 : lead ? lead + ((g) - 1) * 64 : (g) * 64)
    /* group g's block, packed into buffer (g - g0) & 1 under overlap */
#define RQ_GBLK(bk, g)                                                                            \
    do {                                                                                          \
        const int c0_ = RQ_GCOL(g), n_ = imin(RQ_GCOL((g) + 1), N) - c0_;                        \
        (bk).data = buf + (ov ? (size_t)(((g) - g0) & 1) * Kp * 64 : 0); (bk).csum = J->csum + c0_; \
        (bk).K = K; (bk).N = n_; (bk).Kp = Kp; (bk).Np = (n_ + 15) / 16 * 16;                     \
        (bk).b_signed = b_signed; (bk).b_raw = !b_signed;                                         \
    } while (0)
    rq_packed_b nblk;   /* the next group's block (overlap) */
    amx_pk pk;
    pk.g = pk.gend = 0;
    for (int g = g0; g < g1; g++) {
        const int c0 = RQ_GCOL(g), n = imin(RQ_GCOL(g + 1), N) - c0;
        const int npan = (n + 15) / 16, npp = (npan + 1) / 2;
        rq_packed_b blk;
        RQ_GBLK(blk, g);
        if (ov && g > g0) {
            pk_step(&pk, Kp);   /* the rest of this group's packing, begun in the last group */
        } else {
            int rc = J->pack ? J->pack(J->pctx, &blk, c0) : rq_pack_b_rows__avx512vnni(&blk, J->B + c0, J->b_rs, 1);
            if (rc != RQ_OK) { J->err = rc; break; }
        }
        /* the next group, packed in steps through this group's tile calls (nib2 * npp calls
         * of nkc k steps each) */
        amx_pk *pkp = NULL;
        int per1 = 0;
        if (ov && g + 1 < g1) {
            RQ_GBLK(nblk, g + 1);
            pk.pb = &nblk; pk.B = J->B + RQ_GCOL(g + 1); pk.b_rs = J->b_rs;
            pk.g = 0; pk.gend = Kp / 4;
            memset(pk.cs, 0, sizeof(pk.cs));
            const int ncalls = nib2 * npp;
            per1 = (Kp / 4 + ncalls - 1) / ncalls;
            pk.per = (per1 + imax(nkc - 1, 1) - 1) / imax(nkc - 1, 1);   /* (k22: nkc - 1 steps) */
            if (ov == 2) pkp = &pk;
        }
        rq_epi eb;
        J->prep(J->ctx, c0, n, &eb);   /* columns [c0, c0 + n) only: tasks never share one */
        const int dc = direct_ok(&eb);
        const int32_t *ci = NULL;
        rq_epi e2 = eb;
        if (dc && eb.colfix) {   /* accumulators start from -colfix (exact mod 2^32) */
            for (int j = 0; j < 96; j++) cinit[j] = j < n ? (int32_t)(0u - (uint32_t)eb.colfix[j]) : 0;
            ci = cinit;
            e2.colfix = NULL;
        }   /* (folding the column terms into the start in strip mode too, as amx_task does:
             * measured slower here, 71.7 -> 73.3 us for QLinearMatMul 128x768x768: this
             * driver's epilogue is already hidden behind the tile unit, and the stride-0 tile
             * loads add to it) */
        /* int32 output straight into C: panel pair outer, strips inner, so a pair's 24 KiB of
         * packed B stays in L1 while A streams past it (measured against strips outer, C level:
         * 128x1024x1024 122-130 -> 112-122 us, 64x768x768 36 -> 35 us, 128x768x768 equal);
         * an epilogue through the strip buffers needs each strip's pairs together: strips outer */
        const int pm = dc;
        for (int it = 0; it < (pm ? nib2 * npp : nib2); it++) {
            const int ib2 = pm ? it % nib2 : it;
            const int ib = 2 * ib2, two_i = ib + 1 < nib;
            const uint8_t *a0 = abase + (ptrdiff_t)ib * A->a_ib_stride;
            const uint8_t *a1 = a0 + A->a_ib_stride;
            const int i0 = ib * 16, mi = imin(32, eb.M - i0);
            int32_t *strip = strips + (size_t)sidx * ssz;
            for (int pp = pm ? it / nib2 : 0; pp < (pm ? it / nib2 + 1 : npp); pp++) {
                const int p = 2 * pp, two_j = p + 1 < npan, j = p * 16;
                const uint8_t *b0 = blk.data + (size_t)p * Kp * 16, *b1 = b0 + (size_t)Kp * 16;
                /* whole tiles straight into C: a pair's 32 columns, or a single panel's 16 (the
                 * narrower lead group and a 16-column last group need no copy-out) */
                const int full = dc && two_i && i0 + 32 <= eb.M && (two_j ? j + 32 <= n : j + 16 <= n);
                int32_t *out = full ? (int32_t *)eb.C + (ptrdiff_t)i0 * eb.c_rs + j : strip + pp * 32;
                const int ld = full ? (int)eb.c_rs : ldo;
                const int32_t *cij = ci ? ci + j : NULL;
                /* the next panel pair, or the next strip's first (prefetch only) */
                const ptrdiff_t bnext = pp + 1 < npp ? (ptrdiff_t)Kp * 32 : -(ptrdiff_t)Kp * 32 * pp;
#define RQ_AMXP_CALL(S)                                                                           \
                do {                                                                              \
                    if (two_i && two_j) k22_##S(a0, a1, A->koff, as, b0, b1, nkc, out, ld, 0, bnext, cij, pkp); \
                    else if (two_j) k12_##S(a0, A->koff, as, b0, b1, nkc, out, ld, 0, cij, pkp);       \
                    else if (two_i) k21_##S(a0, a1, A->koff, as, b0, nkc, out, ld, 0, cij, pkp);       \
                    else k11_##S(a0, A->koff, as, b0, nkc, out, ld, 0, cij, pkp);                      \
                } while (0)
                switch (sgn) {
                case 0: RQ_AMXP_CALL(us_s); break;
                case 1: RQ_AMXP_CALL(ss_s); break;
                case 2: RQ_AMXP_CALL(uu_s); break;
                default: RQ_AMXP_CALL(su_s); break;
                }
#undef RQ_AMXP_CALL
                if (ov == 1) pk_step(&pk, per1);
                if (dc && !full)   /* an edge block: copy out its part */
                    epi(&e2, i0, mi, j, imin(32, n - j), out, ldo);
            }
            if (!dc) {
                if (pi0 >= 0) epi(&pe, pi0, pmi, 0, pn, strips + (size_t)(sidx ^ 1) * ssz, ldo);
                pe = eb; pi0 = i0; pmi = mi; pn = n; sidx ^= 1;
            }
        }
    }
#undef RQ_GCOL
#undef RQ_GBLK
    if (pi0 >= 0) epi(&pe, pi0, pmi, 0, pn, strips + (size_t)(sidx ^ 1) * ssz, ldo);
    _tile_release();
    rq_aligned_free(buf); rq_aligned_free(strips); rq_aligned_free(cinit); rq_aligned_free(abuf);
}

int rq_gemm_amx_plain__amx(const rq_amx_a *A, const uint8_t *B, ptrdiff_t b_rs, int K, int N,
                           int b_signed, int32_t *csum, rq_cols_prep_fn prep, void *ctx,
                           int nthreads) {
    const int Kp = ((K > 0 ? K : 1) + 63) / 64 * 64, nkc = Kp / 64;
    if (nkc > 64 || !rq_pack_b_rows__avx512vnni) return RQ_EARG;
    if (!rq_amx_enable()) return RQ_ENOISA;
    /* a B whose rows all start the same 16, 32 or 48 bytes past a cache line (numpy's usual
     * 16-byte alignment, rows a multiple of 64 bytes long): a narrower first group, so that
     * every other group's 64 columns are one whole line of each row, not two halves (the
     * one-group packer reads each row's line once; measured at 1 thread: 128x768x768 61 -> 57
     * us with B 16 bytes off, the 1x1 conv 256 -> 64 at 56x56 79 -> 59 us) */
    const int mis = (int)((uintptr_t)B % 64);
    const int lead = (b_rs % 64 == 0 && mis % 16 == 0 && mis && 64 - mis < N) ? 64 - mis : 0;
    const int ng = lead ? 1 + (N - lead + 63) / 64 : (N + 63) / 64;
    const int ntask = nthreads > 1 ? imin(nthreads, ng) : 1;
    plain_job J = {A, B, b_rs, K, N, b_signed, ng, ntask, lead, csum, prep, ctx, RQ_OK, NULL, NULL};
    rq_parallel(ntask, ntask, plain_task, &J);
    return J.err;
}

int rq_gemm_amx_plainf__amx(const rq_amx_a *A, rq_pack_blk_fn pack, void *pctx, int K, int N,
                            int b_signed, int32_t *csum, rq_cols_prep_fn prep, void *ctx,
                            int nthreads) {
    if (!pack || K <= 0) return RQ_EARG;
    if (!rq_amx_enable()) return RQ_ENOISA;
    const int ng = (N + 63) / 64;
    const int ntask = nthreads > 1 ? imin(nthreads, ng) : 1;
    plain_job J = {A, NULL, 0, K, N, b_signed, ng, ntask, 0, csum, prep, ctx, RQ_OK, pack, pctx};
    rq_parallel(ntask, ntask, plain_task, &J);
    return J.err;
}

/* ---------------------------------------------------------------- K slabs (rq_gemm.h) */
typedef struct {
    const rq_amx_a *A; const uint8_t *abase; ptrdiff_t a_ib_stride, a_ts;
    const uint8_t *B; ptrdiff_t b_rs; int K, N, b_signed, sgn;
    int kb, nbw, ng, ntask;
    int32_t *csum; int32_t *R; int ldr, nib;
    const rq_packed_b *pb;   /* packed B: slabs read in place (no packing, no column sums) */
    volatile int err;
} kslab_job;

/* one slab (rows k0 .. k0 + kb of B) of one column block (columns c0 .. c0 + n): packed in walk
 * order into slab / csum_s, its column sums added into csum, then every strip of A times it, the
 * raw sums added into R (tiles loaded back from the second slab on) */
static int kslab_block(const kslab_job *J, int c0, int n, int k0, uint8_t *slab, int32_t *csum_s) {
    const int rows = imin(J->kb, J->K - k0), Np = (n + 15) / 16 * 16;
    /* panels (kb + 4) * 16 bytes apart: at a multiple of 4 KiB every panel's k-group would map to
     * the same L1 set, and the walk writes one line to each panel per k-group */
    int Kpp = J->kb + 4;
    if (J->pb) {   /* packed B: the slab in place */
        Kpp = J->pb->Kp;
        slab = J->pb->data + (size_t)(c0 / 16) * Kpp * 16 + (size_t)(k0 / 64) * 1024;
    } else {
        rq_packed_b blk;
        blk.data = slab; blk.csum = csum_s; blk.K = rows; blk.N = n; blk.Kp = Kpp; blk.Np = Np;
        blk.b_signed = J->b_signed; blk.b_raw = !J->b_signed;
        int rc = rq_pack_b_walk__avx512vnni(&blk, J->B + (ptrdiff_t)k0 * J->b_rs + c0, J->b_rs, 0, (n + 63) / 64);
        if (rc != RQ_OK) return rc;
        for (int j = 0; j < Np; j++) J->csum[c0 + j] = (int32_t)((uint32_t)J->csum[c0 + j] + (uint32_t)csum_s[j]);
    }
    const int nk = (rows + 63) / 64, acc = k0 > 0, npan = Np / 16, nib = J->nib;   /* (A's chunks end at Kp) */
    const int64_t *koff = J->A->koff + k0 / 64;
    const ptrdiff_t as = J->a_ts;
    for (int p = 0; p < npan; p += 2) {
        const int two_j = p + 1 < npan;
        const uint8_t *b0 = slab + (size_t)p * Kpp * 16, *b1 = b0 + (size_t)Kpp * 16;
        for (int ib = 0; ib < nib; ib += 2) {
            const int two_i = ib + 1 < nib;
            const uint8_t *a0 = J->abase + (ptrdiff_t)ib * J->a_ib_stride, *a1 = a0 + J->a_ib_stride;
            int32_t *out = J->R + (size_t)ib * 16 * J->ldr + c0 + (size_t)p * 16;
#define RQ_KS_CALL(S)                                                                             \
            do {                                                                                  \
                if (two_i && two_j) k22_##S(a0, a1, koff, as, b0, b1, nk, out, J->ldr, acc, (ptrdiff_t)Kpp * 32, NULL, NULL); \
                else if (two_j) k12_##S(a0, koff, as, b0, b1, nk, out, J->ldr, acc, NULL, NULL);       \
                else if (two_i) k21_##S(a0, a1, koff, as, b0, nk, out, J->ldr, acc, NULL, NULL);       \
                else k11_##S(a0, koff, as, b0, nk, out, J->ldr, acc, NULL, NULL);                      \
            } while (0)
            switch (J->sgn) {
            case 0: RQ_KS_CALL(us); break;
            case 1: RQ_KS_CALL(ss); break;
            case 2: RQ_KS_CALL(uu); break;
            default: RQ_KS_CALL(su); break;
            }
#undef RQ_KS_CALL
        }
    }
    return RQ_OK;
}

/* task t: a contiguous run of 64-column groups, through every slab, with buffers of its own (no
 * hand-off between the threads per slab) */
static void kslab_task(void *ctx, int64_t t) {
    kslab_job *J = (kslab_job *)ctx;
    const int g0 = (int)((int64_t)J->ng * t / J->ntask), g1 = (int)((int64_t)J->ng * (t + 1) / J->ntask);
    if (g1 <= g0) return;
    uint8_t *slab = J->pb ? NULL : (uint8_t *)rq_aligned_alloc((size_t)(J->kb + 4) * (size_t)J->nbw);
    int32_t *csum_s = J->pb ? NULL : (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)J->nbw);
    int rc = (J->pb || (slab && csum_s)) ? RQ_OK : RQ_ENOMEM;
    if (rc == RQ_OK) {
        amx_config();
        const int cend = imin(J->N, g1 * 64);
        for (int c0 = g0 * 64; c0 < cend && rc == RQ_OK; c0 += J->nbw)
            for (int k0 = 0; k0 < J->K && rc == RQ_OK; k0 += J->kb)
                rc = kslab_block(J, c0, imin(J->nbw, cend - c0), k0, slab, csum_s);
        _tile_release();
    }
    if (rc != RQ_OK) J->err = rc;
    rq_aligned_free(slab); rq_aligned_free(csum_s);
}

int rq_gemm_amx_kslab__amx(const rq_amx_a *A, const uint8_t *B, ptrdiff_t b_rs, int K, int N, int b_signed,
                           int kb, int32_t *csum, int32_t *R, int ldr, int nthreads) {
    return rq_gemm_amx_kslabp__amx(A, B, b_rs, NULL, K, N, b_signed, kb, csum, R, ldr, nthreads);
}

int rq_gemm_amx_kslabp__amx(const rq_amx_a *A, const uint8_t *B, ptrdiff_t b_rs, const rq_packed_b *pb, int K,
                            int N, int b_signed, int kb, int32_t *csum, int32_t *R, int ldr, int nthreads) {
    if ((!pb && !rq_pack_b_walk__avx512vnni) || kb <= 0 || kb % 64 || K <= 0 || N <= 0) return RQ_EARG;
    if (!rq_amx_enable()) return RQ_ENOISA;
    const int nib = A->nib, nkc = (K + 63) / 64, ng = (N + 63) / 64;
    /* column blocks whose slab (kb rows) fits half the L2: runs of up to nbw bytes of each row */
    long nbw_l = pb ? (long)ng * 64 : (rq_l2_bytes() / 2) / kb / 64 * 64;   /* (packed: one block) */
    const int nbw = nbw_l < 64 ? 64 : (nbw_l > ng * 64 ? ng * 64 : (int)nbw_l);
    const size_t asz = (size_t)((nib + 1) / 2) * 2 * nkc * 1024;
    uint8_t *abuf = A->lazy ? (uint8_t *)rq_aligned_alloc(asz) : NULL;
    if (A->lazy && !abuf) return RQ_ENOMEM;
    kslab_job J;
    memset(&J, 0, sizeof(J));
    J.A = A; J.abase = A->abase; J.a_ib_stride = A->a_ib_stride; J.a_ts = A->a_tile_stride;
    if (A->lazy) {   /* tile-packed whole (few rows: every slab reads all of A) */
        for (int ib2 = 0; ib2 < (nib + 1) / 2; ib2++) copy_strip(A, ib2 * 32, nkc, abuf + (size_t)ib2 * 2 * nkc * 1024);
        J.abase = abuf; J.a_ib_stride = (ptrdiff_t)nkc * 1024; J.a_ts = 64;
    }
    J.B = B; J.b_rs = b_rs; J.K = K; J.N = N; J.b_signed = b_signed;
    J.sgn = (A->a_signed ? 1 : 0) + (pb ? (pb->b_raw ? 2 : 0) : (b_signed ? 0 : 2));
    J.pb = pb;
    J.kb = kb; J.nbw = nbw; J.ng = ng; J.ntask = nthreads > 1 ? imin(nthreads, ng) : 1;
    J.csum = csum; J.R = R; J.ldr = ldr; J.nib = nib; J.err = RQ_OK;
    if (!pb) for (int j = 0; j < (N + 15) / 16 * 16; j++) csum[j] = 0;
    rq_parallel(J.ntask, J.ntask, kslab_task, &J);
    rq_aligned_free(abuf);
    return J.err;
}
