/* conv_avx512.c -- AVX-512 pieces of the convolution: byte/int32 block transposes (NCHW <-> NHWC)
 * and the depthwise kernel (any stride; with sat16, the int16 pair saturation of fbgemm's
 * depthwise kernel: see the taps loop).
 *
 * Depthwise: per channel c, with w'[t] = w[c, t] - w_zp[c] (int32) and x padded with x_zp,
 *   acc = sum_t x[..] * w'[t] - x_zp * sum_t w'[t]   == sum_t (x - x_zp) * w'[t]   (mod 2^32)
 * 16 output pixels per vector (vpmovzxbd / vpmovsxbd, vpmulld, vpaddd: int32 wraparound), then
 * the epilogue of rq_gemm.h inline (cvtdq2ps, float32 multiply, clamp, cvtps2dq, + zp). */
#include "rq_gemm.h"
#include "../common/rq_cpu.h"
#include <immintrin.h>
#include <string.h>
#if defined(_OPENMP)
#include <omp.h>
#endif
#include "conv_dw_common.inc"
#include "conv_tr16.inc"

/* 16x16 byte transpose: dst[c*ds + r] = src[r*ss + c] for r < nr, c < nc (nr, nc <= 16: edge
 * blocks read and write only their own bytes, through masked loads and stores) */
static inline __attribute__((always_inline)) void tr16(const uint8_t *src, ptrdiff_t ss, uint8_t *dst,
                                                       ptrdiff_t ds, const int nr, const int nc) {
    __m128i r[16];
    const __mmask16 mc = (__mmask16)((1u << nc) - 1u), mr = (__mmask16)((1u << nr) - 1u);
    for (int i = 0; i < 16; i++)
        r[i] = nc == 16 ? (i < nr ? _mm_loadu_si128((const __m128i *)(src + i * ss)) : _mm_setzero_si128())
                        : (i < nr ? _mm_maskz_loadu_epi8(mc, src + i * ss) : _mm_setzero_si128());
    tr16_net(r);
    for (int j = 0; j < nc; j++) {
        if (nr == 16) _mm_storeu_si128((__m128i *)(dst + j * ds), r[j]);
        else _mm_mask_storeu_epi8(dst + j * ds, mr, r[j]);
    }
}

/* 16x16 int32 transpose: dst[c*ds + r] = src[r*ss + c] (elements) for r < nr, c < nc: 32-bit
 * and 64-bit interleaves within 128-bit lanes, then a 4x4 transpose of the lanes; edge blocks
 * read and write only their own elements */
static inline __attribute__((always_inline)) void tr16x32(const int32_t *src, ptrdiff_t ss, int32_t *dst,
                                                          ptrdiff_t ds, const int nr, const int nc) {
    __m512i r[16], t[16];
    const __mmask16 mc = (__mmask16)((1u << nc) - 1u), mr = (__mmask16)((1u << nr) - 1u);
    for (int i = 0; i < 16; i++)
        r[i] = i >= nr ? _mm512_setzero_si512()
             : nc == 16 ? _mm512_loadu_si512((const void *)(src + i * ss)) : _mm512_maskz_loadu_epi32(mc, src + i * ss);
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {   /* r[4i + j], lane L: rows 4i .. 4i + 3 of column 4L + j */
        r[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int j = 0; j < 4; j++) {   /* lanes L of the four row groups -> column 4L + j */
        const __m512i a = _mm512_shuffle_i32x4(r[j], r[4 + j], 0x44), b = _mm512_shuffle_i32x4(r[j], r[4 + j], 0xEE);
        const __m512i c = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0x44), d = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0xEE);
        const __m512i o[4] = {_mm512_shuffle_i32x4(a, c, 0x88), _mm512_shuffle_i32x4(a, c, 0xDD),
                              _mm512_shuffle_i32x4(b, d, 0x88), _mm512_shuffle_i32x4(b, d, 0xDD)};
        for (int L = 0; L < 4; L++) {
            const int col = 4 * L + j;
            if (col >= nc) continue;
            if (nr == 16) _mm512_storeu_si512((void *)(dst + col * ds), o[L]);
            else _mm512_mask_storeu_epi32(dst + col * ds, mr, o[L]);
        }
    }
}

/* every 16x16 block of a rows x cols transpose through the block function TR (whole blocks with
 * constant sizes, so TR's loops unroll; edge blocks with their sizes).  Four block rows at a
 * time per block column, so each destination row gets 64 contiguous bytes (a whole line for
 * bytes) before the next block column: the 512 x 4608 byte transpose of a 512->512 3x3 conv's
 * weights wrote every line four times, far apart (35% of that conv with plain weights). */
#define RQ_TRANSPOSE_BLOCKS(TR)                                                                   \
    for (int r0 = 0; r0 < rows; r0 += 64) {                                                       \
        const int r1 = rows - r0 < 64 ? rows : r0 + 64;                                           \
        for (int c = 0; c < cols; c += 16) {                                                      \
            const int nc = cols - c < 16 ? cols - c : 16;                                         \
            for (int r = r0; r < r1; r += 16) {                                                   \
                const int nr = rows - r < 16 ? rows - r : 16;                                     \
                if (nr == 16 && nc == 16) TR(src + r * ss + c, ss, dst + c * ds + r, ds, 16, 16); \
                else TR(src + r * ss + c, ss, dst + c * ds + r, ds, nr, nc);                      \
            }                                                                                     \
        }                                                                                         \
    }

void rq_transpose_u32__avx512(const int32_t *src, ptrdiff_t ss, int32_t *dst, ptrdiff_t ds, int rows,
                              int cols) {
    RQ_TRANSPOSE_BLOCKS(tr16x32)
}

void rq_transpose_u8__avx512(const uint8_t *src, ptrdiff_t ss, uint8_t *dst, ptrdiff_t ds, int rows,
                             int cols) {
    RQ_TRANSPOSE_BLOCKS(tr16)
}

/* a padded input row (dw_run's row): with stride 2 split into even / odd columns by vector
 * code, other strides dw_plane_row */
static inline void dw_row_avx512(const rq_conv_args *c, uint8_t *dr, const uint8_t *sr, int Wp, int Wq) {
    if (c->sw != 2) {
        dw_plane_row(c, dr, sr, Wp, Wq);
        return;
    }
    const int W = c->W;
    const uint8_t xz = (uint8_t)c->x_zp;
    /* the padded row split into even / odd columns, 64 at a time: two masked
     * loads of 64 padded columns (x_zp where there is no input column) */
    const int pl = c->pl;
    const __m512i vz = _mm512_set1_epi8((char)xz);
    const __m512i m8 = _mm512_set1_epi16(0x00FF);
    const __m512i fix = _mm512_set_epi64(7, 5, 3, 1, 6, 4, 2, 0);
    for (int i = 0; i < Wq; i += 64) {
        __m512i v[2];
        for (int hlf = 0; hlf < 2; hlf++) {
            const int j0 = 2 * i + 64 * hlf - pl;          /* first input column */
            const int lo = j0 < 0 ? -j0 : 0, hi = W - j0 < 64 ? W - j0 : 64;
            __mmask64 mk = 0;
            if (hi > lo) {
                mk = (hi == 64 ? ~(__mmask64)0 : (((__mmask64)1 << hi) - 1));
                mk &= ~(lo ? (((__mmask64)1 << lo) - 1) : 0);
            }
            /* masked-off lanes are neither read nor faulted on */
            v[hlf] = mk ? _mm512_mask_loadu_epi8(vz, mk, (const void *)(sr + j0)) : vz;
        }
        const __m512i ev = _mm512_permutexvar_epi64(fix, _mm512_packus_epi16(_mm512_and_si512(v[0], m8), _mm512_and_si512(v[1], m8)));
        const __m512i od = _mm512_permutexvar_epi64(fix, _mm512_packus_epi16(_mm512_srli_epi16(v[0], 8), _mm512_srli_epi16(v[1], 8)));
        const int nn = Wq - i < 64 ? Wq - i : 64;
        const __mmask64 ms = nn == 64 ? ~(__mmask64)0 : (((__mmask64)1 << nn) - 1);
        _mm512_mask_storeu_epi8(dr + i, ms, ev);
        _mm512_mask_storeu_epi8(dr + Wq + i, ms, od);
    }
}

/* one output channel's plane (dw_run's chan): 64 pixels a step in 4 vectors of 16 */
static inline void dw_chan_avx512(const rq_conv_args *c, int co, const uint8_t *xp, int Wp, const int32_t *wv,
                                  const int32_t *toff, uint32_t fix, int KK, size_t obase) {
    const int OH = c->OH, OW = c->OW;
    const int sat = c->sat16;   /* the caller checked: uint8 x int8 (either way), every w_zp 0 */
    const int qmin = c->out_type == RQ_OUT_U8 ? 0 : -128, qmax = c->out_type == RQ_OUT_U8 ? 255 : 127;
    const __m512i vfix = _mm512_set1_epi32((int32_t)fix);   /* x_zp * sum w' - bias */
    const __m512 mul = _mm512_set1_ps(c->mult ? c->mult[c->mult_n == 1 ? 0 : co] : 0.0f);
    const __m512 lo = _mm512_set1_ps((float)(qmin - c->y_zp)), hi = _mm512_set1_ps((float)(qmax - c->y_zp));
    const __m512i zp = _mm512_set1_epi32(c->y_zp);
    /* (locals: the byte stores below may alias *c, which would reload its fields every step) */
    const int xsg = c->x_signed, otype = c->out_type;
    const ptrdiff_t rstep = (ptrdiff_t)c->sh * Wp;
    void *const y = c->y;
    for (int oh = 0; oh < OH; oh++) {
        for (int ow0 = 0; ow0 < OW; ow0 += 64) {
            /* up to 64 output pixels in 4 independent accumulators; only the vectors
             * holding outputs are computed (a 28-pixel row: 2, not 4) */
            const int nv = OW - ow0 >= 64 ? 4 : (OW - ow0 + 15) / 16;
            __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
            const uint8_t *row = xp + oh * rstep + ow0;
#define RQ_DW_X(q, o) (xsg ? _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)((q) + (o)))) \
                           : _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)((q) + (o)))))
            if (!sat) {
                for (int t = 0; t < KK; t++) {
                    const uint8_t *q = row + toff[t];
                    const __m512i wt = _mm512_set1_epi32(wv[t]);
                    a0 = _mm512_add_epi32(a0, _mm512_mullo_epi32(RQ_DW_X(q, 0), wt));
                    if (nv > 1) a1 = _mm512_add_epi32(a1, _mm512_mullo_epi32(RQ_DW_X(q, 16), wt));
                    if (nv > 2) a2 = _mm512_add_epi32(a2, _mm512_mullo_epi32(RQ_DW_X(q, 32), wt));
                    if (nv > 3) a3 = _mm512_add_epi32(a3, _mm512_mullo_epi32(RQ_DW_X(q, 48), wt));
                }
            } else {
                /* int16 pair saturation (rq_conv_args.sat16, zero w_zp: wv is the raw w):
                 * taps (t, t + 1) of the order (kh, kw), each pair's exact sum of raw
                 * products clamped to int16 (what vpmaddubsw computes), then summed */
                const __m512i s_lo = _mm512_set1_epi32(-32768), s_hi = _mm512_set1_epi32(32767);
                for (int t = 0; t < KK; t += 2) {
                    const uint8_t *q = row + toff[t], *q1 = row + toff[t + 1 < KK ? t + 1 : t];
                    const __m512i w0 = _mm512_set1_epi32(wv[t]), w1 = _mm512_set1_epi32(t + 1 < KK ? wv[t + 1] : 0);
#define RQ_DW_PAIR(acc, o)                                                                                  \
                    acc = _mm512_add_epi32(acc, _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(      \
                        _mm512_mullo_epi32(RQ_DW_X(q, o), w0), _mm512_mullo_epi32(RQ_DW_X(q1, o), w1)), s_lo), s_hi))
                    RQ_DW_PAIR(a0, 0);
                    if (nv > 1) RQ_DW_PAIR(a1, 16);
                    if (nv > 2) RQ_DW_PAIR(a2, 32);
                    if (nv > 3) RQ_DW_PAIR(a3, 48);
#undef RQ_DW_PAIR
                }
            }
#undef RQ_DW_X
            __m512i av[4] = {a0, a1, a2, a3};
            for (int v = 0; v < 4; v++) {
                const int ow = ow0 + 16 * v;
                if (ow >= OW) break;
                const int n = OW - ow < 16 ? OW - ow : 16;
                const __mmask16 m = (__mmask16)((1u << n) - 1u);
                __m512i acc = _mm512_sub_epi32(av[v], vfix);
                size_t o = obase + (size_t)oh * OW + ow;
                if (otype == RQ_OUT_S32) {
                    _mm512_mask_storeu_epi32((int32_t *)y + o, m, acc);
                } else {
                    __m512 vv = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc), mul), lo), hi);
                    __m128i qq = _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(vv), zp));
                    _mm_mask_storeu_epi8((uint8_t *)y + o, m, qq);
                }
            }
        }
    }
}

/* the frame (padded planes, strides along W as phases, weights) */
#define DW_FN rq_dwconv__avx512
#define DW_ROW dw_row_avx512
#define DW_CHAN dw_chan_avx512
#include "conv_dw_frame.inc"
#undef DW_FN
#undef DW_ROW
#undef DW_CHAN

/* ---------------------------------------------------------------- depthwise, channels last
 * For small planes (MobileNet's 14x14 and 7x7 depthwise layers) the per-channel kernels spend
 * their time on each channel's padded plane and a few short rows.  This one vectorises across
 * channels instead (channel multiplier 1, 2-D or 3-D, no int16 pairs; any stride, dilation,
 * pads, zero points and weight types):
 *   xb[h][w][c] = a block's padded input, channels last (conv_dw_nhwc.inc; the pads and the
 *                 channels past C hold the raw x_zp; a 3-D conv: xb[d][h][w][c]),
 *   acc[p][c]   = sum_t x_raw[p + toff[t]][c] * w'[c][t] - x_zp * sum_t w'[c][t] + bias[c]
 *                 (w' = w - w_zp; int32, wraps like the reference's sums),
 * 32 channels a block: the taps in pairs, each pair's raw x (int16) interleaved with vpunpck
 * and multiplied by the interleaved w' with vpmaddwd (|x| <= 255, |w'| <= 255: exact), then the
 * fused epilogue (rq_dwconv__avx512's) per pixel into a (pixel x 32) block transposed into the
 * NCHW output.  Other epilogues: the caller's int32 route (out_type RQ_OUT_S32). */
#include "conv_dw_nhwc.inc"
#include "conv_dw_nhwc_zmm.inc"

static inline __m512i dw_cvt32x2_16(__m512i a, __m512i b) {   /* 32 int32 -> 32 int16 */
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi32_epi16(a)), _mm512_cvtepi32_epi16(b), 1);
}

/* up to 32 pixels' 32 channel bytes (pixel i < 16: the low half of ob[i], pixel 16 + i: the high
 * half) into the NCHW output y (channel rows P apart): dw_tr16x4 leaves lane L of ob[j] = channel
 * 16 (L % 2) + j, pixels 16 (L / 2) .. + 15; n pixels, channels < ncb */
static inline __attribute__((always_inline)) void dw_nhwc_flush32(__m512i ob[16], int n, uint8_t *y, size_t P,
                                                                 int ncb) {
    dw_tr16x4(ob);
    const __mmask16 m0 = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
    const __mmask16 m1 = n >= 32 ? (__mmask16)0xFFFF : n <= 16 ? (__mmask16)0 : (__mmask16)((1u << (n - 16)) - 1u);
    for (int j = 0; j < 16; j++) {
        if (j < ncb) {
            _mm_mask_storeu_epi8(y + (size_t)j * P, m0, _mm512_castsi512_si128(ob[j]));
            if (m1) _mm_mask_storeu_epi8(y + (size_t)j * P + 16, m1, _mm512_extracti32x4_epi32(ob[j], 2));
        }
        if (16 + j < ncb) {
            _mm_mask_storeu_epi8(y + (size_t)(16 + j) * P, m0, _mm512_extracti32x4_epi32(ob[j], 1));
            if (m1) _mm_mask_storeu_epi8(y + (size_t)(16 + j) * P + 16, m1, _mm512_extracti32x4_epi32(ob[j], 3));
        }
    }
}

int rq_dwconv_nhwc__avx512(const rq_conv_args *c, int nthreads) {
    int32_t toff[128];
    dw_nhwc_plan pl;   /* (conv_dw_nhwc.inc: tap pairs) */
    const int prc = dw_nhwc_plan_of(c, 32, 2, toff, &pl);
    if (prc != RQ_OK) return prc;
    const int C = c->C, Cp = (C + 31) / 32 * 32, Hp = pl.Hp, Wp = pl.Wp, KK = pl.KK, NP = pl.ng, P = pl.P;
    const size_t xbn = pl.xbn;
    size_t *pofs = pl.pofs; ptrdiff_t *ioff = pl.ioff;
    const int otype = c->out_type, xsg = c->x_signed, qmin = pl.qmin, qmax = pl.qmax;
    const __m512i lo16 = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
    const __m512i hi16 = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
    const __m512i pack_perm = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    const __m512 lo = _mm512_set1_ps((float)(qmin - c->y_zp)), hi = _mm512_set1_ps((float)(qmax - c->y_zp));
    const __m512i zp = _mm512_set1_epi32(c->y_zp);
    const int nb = Cp / 32;
    int rc = RQ_OK;
#if defined(_OPENMP)
#pragma omp parallel num_threads(nthreads) if (nthreads > 1 && (size_t)C * P * KK > 200000)
#endif
    {
        /* per block: the interleaved weight pairs (lo / hi halves), the fix and multiplier in
         * channel order, the block's (pixel x 32) results */
        __m512i *wv = (__m512i *)rq_aligned_alloc(sizeof(__m512i) * (size_t)(2 * NP));
        void *stage = rq_aligned_alloc(otype == RQ_OUT_S32 ? (size_t)P * 32 * 4 + 64 : 64);
        uint8_t *wtb = (uint8_t *)rq_aligned_alloc((size_t)KK * 32 + 64);
        uint8_t *xb = (uint8_t *)rq_aligned_alloc(xbn + 64);   /* the block's padded input, channels last */
        if (!wv || !stage || !wtb || !xb) rc = RQ_ENOMEM;
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
        for (int b = 0; b < nb; b++) {
            if (!wv || !stage || !wtb || !xb) continue;
            const int c0 = 32 * b, ncb = C - c0 < 32 ? C - c0 : 32;
            dw_nhwc_block_zmm(c, c0, ncb, 32, Hp, Wp, ioff, xb);   /* (conv_dw_nhwc_zmm.inc) */
            /* the block's weights, tap-major (32 channels a tap: a transpose), w' = w - w_zp in
             * int16, interleaved by tap pairs; sum_t w' per channel by vpmaddwd with ones */
            const __mmask32 mc = ncb >= 32 ? 0xFFFFFFFFu : (1u << ncb) - 1u;
            rq_transpose_u8__avx512(c->w + (size_t)c0 * KK, KK, wtb, 32, ncb, KK);
            const __m512i wz = c->w_zp_n == 1 ? _mm512_set1_epi16((short)c->w_zp[0])
                : dw_cvt32x2_16(_mm512_maskz_loadu_epi32((__mmask16)mc, c->w_zp + c0),
                                          _mm512_maskz_loadu_epi32((__mmask16)(mc >> 16), c->w_zp + c0 + 16));
            const __m512i ones = _mm512_set1_epi16(1);
            __m512i suml = _mm512_setzero_si512(), sumh = suml;
            for (int pr = 0; pr < NP; pr++) {
                __m512i wq[2];
                for (int q = 0; q < 2; q++) {
                    const int t = 2 * pr + q;
                    if (t >= KK) { wq[q] = _mm512_setzero_si512(); continue; }
                    const __m256i r = _mm256_maskz_loadu_epi8(mc, wtb + (size_t)t * 32);
                    const __m512i v = c->w_signed ? _mm512_cvtepi8_epi16(r) : _mm512_cvtepu8_epi16(r);
                    wq[q] = _mm512_maskz_sub_epi16(mc, v, wz);    /* channels past C: 0 */
                }
                wv[2 * pr] = _mm512_unpacklo_epi16(wq[0], wq[1]);
                wv[2 * pr + 1] = _mm512_unpackhi_epi16(wq[0], wq[1]);
                suml = _mm512_add_epi32(suml, _mm512_madd_epi16(wv[2 * pr], ones));
                sumh = _mm512_add_epi32(sumh, _mm512_madd_epi16(wv[2 * pr + 1], ones));
            }
            /* fix = x_zp * sum w' - bias (uint32 wraparound), in channel order like the sums */
            const __m512i xzv = _mm512_set1_epi32(c->x_zp);
            __m512i f0 = _mm512_mullo_epi32(xzv, _mm512_permutex2var_epi32(suml, lo16, sumh));
            __m512i f1 = _mm512_mullo_epi32(xzv, _mm512_permutex2var_epi32(suml, hi16, sumh));
            if (c->bias) {
                f0 = _mm512_sub_epi32(f0, _mm512_maskz_loadu_epi32((__mmask16)mc, c->bias + c0));
                f1 = _mm512_sub_epi32(f1, _mm512_maskz_loadu_epi32((__mmask16)(mc >> 16), c->bias + c0 + 16));
            }
            __m512 m0 = _mm512_setzero_ps(), m1 = m0;
            if (c->mult && c->mult_n == 1) m0 = m1 = _mm512_set1_ps(c->mult[0]);
            else if (c->mult) {
                m0 = _mm512_maskz_loadu_ps((__mmask16)mc, c->mult + c0);
                m1 = _mm512_maskz_loadu_ps((__mmask16)(mc >> 16), c->mult + c0 + 16);
            }
            __m512i ob[16];   /* (8-bit outputs: the last pixels' bytes, flushed 32 at a time) */
            int nob = 0;
            uint8_t *yb = (uint8_t *)c->y + (size_t)c0 * P;
            for (size_t p = 0; p < (size_t)P; p++) {   /* (a flat loop over the window offsets) */
                const uint8_t *px = xb + pofs[p];
                __m512i al = _mm512_setzero_si512(), ah = al;
                for (int pr = 0; pr < NP; pr++) {
                    const __m256i r0 = _mm256_loadu_si256((const __m256i *)(px + toff[2 * pr]));
                    const __m256i r1 = _mm256_loadu_si256((const __m256i *)(px + toff[2 * pr + 1]));
                    const __m512i x0 = xsg ? _mm512_cvtepi8_epi16(r0) : _mm512_cvtepu8_epi16(r0);
                    const __m512i x1 = xsg ? _mm512_cvtepi8_epi16(r1) : _mm512_cvtepu8_epi16(r1);
                    al = _mm512_add_epi32(al, _mm512_madd_epi16(_mm512_unpacklo_epi16(x0, x1), wv[2 * pr]));
                    ah = _mm512_add_epi32(ah, _mm512_madd_epi16(_mm512_unpackhi_epi16(x0, x1), wv[2 * pr + 1]));
                }
                /* channels 0-15 and 16-31 in order (lane L: al 8L..8L+3, ah 8L+4..8L+7) */
                const __m512i e0 = _mm512_sub_epi32(_mm512_permutex2var_epi32(al, lo16, ah), f0);
                const __m512i e1 = _mm512_sub_epi32(_mm512_permutex2var_epi32(al, hi16, ah), f1);
                if (otype == RQ_OUT_S32) {
                    _mm512_store_si512((void *)((int32_t *)stage + 32 * p), e0);
                    _mm512_store_si512((void *)((int32_t *)stage + 32 * p + 16), e1);
                    continue;
                }
                const __m512 v0 = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(e0), m0), lo), hi);
                const __m512 v1 = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(e1), m1), lo), hi);
                /* (in [qmin, qmax] after the clamp: the saturating packs are exact) */
                __m512i tq = _mm512_packs_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(v0), zp),
                                                _mm512_add_epi32(_mm512_cvtps_epi32(v1), zp));
                tq = otype == RQ_OUT_U8 ? _mm512_packus_epi16(tq, tq) : _mm512_packs_epi16(tq, tq);
                tq = _mm512_permutexvar_epi32(pack_perm, tq);   /* the 32 channels in the low half */
                /* pixels 16 apart share a vector of the flush (a byte transpose of the block's
                 * (pixel x 32) bytes in memory, rq_transpose_u8, took a fifth of a 7x7 layer) */
                ob[nob & 15] = nob < 16 ? tq : _mm512_inserti64x4(ob[nob & 15], _mm512_castsi512_si256(tq), 1);
                if (++nob == 32 || p + 1 == (size_t)P) {
                    for (int i = nob; i < 16; i++) ob[i] = _mm512_setzero_si512();
                    dw_nhwc_flush32(ob, nob, yb + (p + 1 - (size_t)nob), (size_t)P, ncb);
                    nob = 0;
                }
            }
            if (otype == RQ_OUT_S32)
                rq_transpose_u32__avx512((const int32_t *)stage, 32, (int32_t *)c->y + (size_t)c0 * P, P, P, ncb);
        }
        rq_aligned_free(wv); rq_aligned_free(stage); rq_aligned_free(wtb);
        rq_aligned_free(xb);
    }
    rq_aligned_free(pofs); rq_aligned_free(ioff);
    return rc;
}
