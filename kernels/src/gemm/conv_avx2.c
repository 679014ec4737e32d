/* conv_avx2.c -- the depthwise convolution at the AVX2 level (any stride, any channel
 * multiplier; with sat16 the int16 pair saturation of fbgemm's depthwise kernel).  The
 * arithmetic of conv_avx512.c's rq_dwconv__avx512, 8 output pixels per ymm vector:
 *
 *   per channel c, w'[t] = w[c, t] - w_zp[c] (int32), x padded with x_zp:
 *   acc = sum_t x[..] * w'[t] - x_zp * sum_t w'[t]   == sum_t (x - x_zp) * w'[t]   (mod 2^32)
 *
 * (vpmovzxbd / vpmovsxbd, vpmulld, vpaddd: int32 wraparound), then the epilogue of rq_gemm.h
 * inline for an int32 bias and a float multiplier (cvtdq2ps, float32 multiply, clamp to
 * [qmin - zp, qmax - zp], cvtps2dq, + zp); other epilogues run over its int32 output (conv.c).
 * The frame (padded planes, strides along W as phases, weights) is conv_dw_common.inc's. */
#include "rq_gemm.h"
#include "../common/rq_cpu.h"
#include <immintrin.h>
#include <string.h>
#if defined(_OPENMP)
#include <omp.h>
#endif
#include "conv_dw_common.inc"
#include "conv_tr16.inc"

static inline __m256i dw_x(const uint8_t *q, int sgn) {
    const __m128i v = _mm_loadl_epi64((const __m128i *)q);
    return sgn ? _mm256_cvtepi8_epi32(v) : _mm256_cvtepu8_epi32(v);
}

/* n (<= 8) outputs of one output row from the int32 sums acc: int32 as they are, 8-bit through
 * the epilogue (v = fl32(acc) * mul clamped to [lo, hi] = [qmin - zp, qmax - zp], cvtps2dq, + zp,
 * then packed: the values are in range) */
static inline __attribute__((always_inline)) void dw_store8(int otype, void *y, size_t o, int n, __m256i acc,
                                                            __m256 mul, __m256 lo, __m256 hi, __m256i zp) {
    if (otype == RQ_OUT_S32) {
        if (n == 8) _mm256_storeu_si256((__m256i *)((int32_t *)y + o), acc);
        else {
            int32_t tmp[8];
            _mm256_storeu_si256((__m256i *)tmp, acc);
            memcpy((int32_t *)y + o, tmp, sizeof(int32_t) * (size_t)n);
        }
        return;
    }
    const __m256 vv = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(acc), mul), lo), hi);
    const __m256i qi = _mm256_add_epi32(_mm256_cvtps_epi32(vv), zp);
    const __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(qi), _mm256_extracti128_si256(qi, 1));
    const __m128i q8 = otype == RQ_OUT_U8 ? _mm_packus_epi16(w16, w16) : _mm_packs_epi16(w16, w16);
    if (n == 8) _mm_storel_epi64((__m128i *)((uint8_t *)y + o), q8);
    else {
        uint8_t tmp[16];
        _mm_storeu_si128((__m128i *)tmp, q8);
        memcpy((uint8_t *)y + o, tmp, (size_t)n);
    }
}

/* a padded row for the vpdpbusd depthwise kernel: x_used = x ^ 0x80 for an int8 x (sw == 1) */
static inline void dw_dp_row(const rq_conv_args *c, uint8_t *dr, const uint8_t *sr, int Wp, int Wq) {
    dw_plane_row(c, dr, sr, Wp, Wq);
    if (c->x_signed) {
        const int w0 = c->pl > 0 ? 0 : -c->pl, d0 = c->pl > 0 ? c->pl : 0;
        int n = c->W - w0;
        if (d0 + n > Wp - 16) n = Wp - 16 - d0;
        for (int i = 0; i < n; i++) dr[d0 + i] ^= 0x80;
    }
}

/* one output channel's plane (dw_run's chan): 32 pixels a step in 4 vectors of 8 */
static inline void dw_chan_avx2(const rq_conv_args *c, int co, const uint8_t *xp, int Wp, const int32_t *wv,
                                const int32_t *toff, uint32_t fix, int KK, size_t obase) {
    const int OH = c->OH, OW = c->OW;
    const int sat = c->sat16;   /* the caller checked: uint8 x int8 (either way), every w_zp 0 */
    const int xs_sgn = c->x_signed;
    const int qmin = c->out_type == RQ_OUT_U8 ? 0 : -128, qmax = c->out_type == RQ_OUT_U8 ? 255 : 127;
    const __m256i vfix = _mm256_set1_epi32((int32_t)fix);   /* x_zp * sum w' - bias */
    const __m256 mul = _mm256_set1_ps(c->mult ? c->mult[c->mult_n == 1 ? 0 : co] : 0.0f);
    const __m256 lo = _mm256_set1_ps((float)(qmin - c->y_zp)), hi = _mm256_set1_ps((float)(qmax - c->y_zp));
    const __m256i zp = _mm256_set1_epi32(c->y_zp);
    /* (locals: the byte stores below may alias *c, which would reload its fields every step) */
    const int otype = c->out_type;
    const ptrdiff_t rstep = (ptrdiff_t)c->sh * Wp;
    void *const y = c->y;
    for (int oh = 0; oh < OH; oh++) {
        for (int ow0 = 0; ow0 < OW; ow0 += 32) {
            /* up to 32 output pixels in 4 independent accumulators; only the vectors holding
             * outputs are computed */
            const int nv = OW - ow0 >= 32 ? 4 : (OW - ow0 + 7) / 8;
            __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
            const uint8_t *row = xp + oh * rstep + ow0;
            if (!sat) {
                for (int t = 0; t < KK; t++) {
                    const uint8_t *q = row + toff[t];
                    const __m256i wt = _mm256_set1_epi32(wv[t]);
                    a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(dw_x(q, xs_sgn), wt));
                    if (nv > 1) a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(dw_x(q + 8, xs_sgn), wt));
                    if (nv > 2) a2 = _mm256_add_epi32(a2, _mm256_mullo_epi32(dw_x(q + 16, xs_sgn), wt));
                    if (nv > 3) a3 = _mm256_add_epi32(a3, _mm256_mullo_epi32(dw_x(q + 24, xs_sgn), wt));
                }
            } else {
                /* int16 pair saturation (zero w_zp: wv is the raw w): taps (t, t + 1) of the order
                 * (kh, kw), each pair's exact sum of raw products clamped to int16 (what
                 * vpmaddubsw computes), then summed */
                const __m256i s_lo = _mm256_set1_epi32(-32768), s_hi = _mm256_set1_epi32(32767);
                for (int t = 0; t < KK; t += 2) {
                    const uint8_t *q = row + toff[t], *q1 = row + toff[t + 1 < KK ? t + 1 : t];
                    const __m256i w0 = _mm256_set1_epi32(wv[t]);
                    const __m256i w1 = _mm256_set1_epi32(t + 1 < KK ? wv[t + 1] : 0);
#define RQ_DW_PAIR(acc, o)                                                                             \
    acc = _mm256_add_epi32(acc, _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(                    \
        _mm256_mullo_epi32(dw_x(q + (o), xs_sgn), w0), _mm256_mullo_epi32(dw_x(q1 + (o), xs_sgn), w1)), \
        s_lo), s_hi))
                    RQ_DW_PAIR(a0, 0);
                    if (nv > 1) RQ_DW_PAIR(a1, 8);
                    if (nv > 2) RQ_DW_PAIR(a2, 16);
                    if (nv > 3) RQ_DW_PAIR(a3, 24);
#undef RQ_DW_PAIR
                }
            }
            const __m256i av[4] = {a0, a1, a2, a3};
            for (int v = 0; v < nv; v++) {
                const int ow = ow0 + 8 * v;
                dw_store8(otype, y, obase + (size_t)oh * OW + ow, OW - ow < 8 ? OW - ow : 8,
                          _mm256_sub_epi32(av[v], vfix), mul, lo, hi, zp);
            }
        }
    }
}

/* the frame (padded planes, strides along W as phases, weights) */
#define DW_FN rq_dwconv__avx2
#define DW_ROW dw_plane_row
#define DW_CHAN dw_chan_avx2
#include "conv_dw_frame.inc"
#undef DW_FN
#undef DW_ROW
#undef DW_CHAN

#if RQ_HAVE_AVXVNNI
/* ---------------------------------------------------------------- depthwise with AVX-VNNI
 * conv_avx512vnni.c's vpdpbusd depthwise on ymm, for stride 1 along W, W dilation 1, KW <= 4,
 * KH <= 16 (KD * KH <= 64 rows in 3-D), int8 weights with zero w_zp: the KW taps of kernel row
 * kh for output pixel p read the dword at byte p of the padded row (x_used = x, or x ^ 0x80 for
 * an int8 x, = x + 128; padding x_zp's x_used value), and vpdpbusd with the weight dword (w[kh, 0..KW-1], zeros) gives
 * sum_kw x_used * w exactly.  The 8 overlapping dwords of 8 outputs: one 16-byte load put in
 * both lanes, then an in-lane vpshufb (bytes j .. j+3 into dword j).  acc = raw - (x_zp +
 * 128 [int8 x]) * sum w + bias; the epilogue as dw_chan_avx2's. */
__attribute__((noinline, target("avxvnni"))) static void dw_dp_chan(
    const rq_conv_args *c, int co, const uint8_t *xp, int Wp, const int32_t *wv, const int32_t *toff, uint32_t fix,
    int KK, size_t obase) {
    /* kernel rows r = (kd, kh) (a 3-D conv: KD * KH <= 64), row r's taps from toff[r * KW] */
    const int OH = c->OH, OW = c->OW, KW = c->KW, KR = KK / KW;
    const int qmin = c->out_type == RQ_OUT_U8 ? 0 : -128, qmax = c->out_type == RQ_OUT_U8 ? 255 : 127;
    int32_t wd[64], roff[64];
    uint32_t wsum = 0;
    for (int r = 0; r < KR; r++) {   /* (w_zp 0: wv is w) */
        uint8_t b[4] = {0, 0, 0, 0};
        for (int kw = 0; kw < KW; kw++) {
            b[kw] = (uint8_t)wv[r * KW + kw];
            wsum += (uint32_t)wv[r * KW + kw];
        }
        memcpy(&wd[r], b, 4);
        roff[r] = toff[r * KW];
    }
    if (c->x_signed) fix += 128u * wsum;   /* x_used = x + 128 */
    const __m256i idx = _mm256_setr_epi8(0, 1, 2, 3, 1, 2, 3, 4, 2, 3, 4, 5, 3, 4, 5, 6,
                                         4, 5, 6, 7, 5, 6, 7, 8, 6, 7, 8, 9, 7, 8, 9, 10);
    const __m256i vfix = _mm256_set1_epi32((int32_t)fix);
    const __m256 mul = _mm256_set1_ps(c->mult ? c->mult[c->mult_n == 1 ? 0 : co] : 0.0f);
    const __m256 lo = _mm256_set1_ps((float)(qmin - c->y_zp)), hi = _mm256_set1_ps((float)(qmax - c->y_zp));
    const __m256i zp = _mm256_set1_epi32(c->y_zp);
    const int otype = c->out_type;
    const ptrdiff_t rstep = (ptrdiff_t)c->sh * Wp;
    void *const y = c->y;
#define DW_WIN8(q) _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(q))), idx)
    for (int oh = 0; oh < OH; oh++) {
        const uint8_t *base = xp + oh * rstep;
        for (int ow0 = 0; ow0 < OW; ow0 += 32) {
            const int nv = OW - ow0 >= 32 ? 4 : (OW - ow0 + 7) / 8;
            __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
            for (int r = 0; r < KR; r++) {
                const uint8_t *q = base + roff[r] + ow0;
                const __m256i wt = _mm256_set1_epi32(wd[r]);
                a0 = _mm256_dpbusd_avx_epi32(a0, DW_WIN8(q), wt);
                if (nv > 1) a1 = _mm256_dpbusd_avx_epi32(a1, DW_WIN8(q + 8), wt);
                if (nv > 2) a2 = _mm256_dpbusd_avx_epi32(a2, DW_WIN8(q + 16), wt);
                if (nv > 3) a3 = _mm256_dpbusd_avx_epi32(a3, DW_WIN8(q + 24), wt);
            }
            const __m256i av[4] = {a0, a1, a2, a3};
            for (int v = 0; v < nv; v++) {
                const int ow = ow0 + 8 * v;
                dw_store8(otype, y, obase + (size_t)oh * OW + ow, OW - ow < 8 ? OW - ow : 8,
                          _mm256_sub_epi32(av[v], vfix), mul, lo, hi, zp);
            }
        }
    }
#undef DW_WIN8
}
#define DW_FN dw_dp_avxvnni
#define DW_ROW dw_dp_row
#define DW_CHAN dw_dp_chan
#define DW_PAD_XOR (c->x_signed ? 0x80 : 0)
#include "conv_dw_frame.inc"
#undef DW_FN
#undef DW_ROW
#undef DW_CHAN

int rq_dwconv_dp__avxvnni(const rq_conv_args *c, int nthreads) {
    if (c->sw != 1 || c->dw != 1 || c->KW > 4 || c->KH * rq_conv_depth_of(c).KD > 64 || !c->w_signed || c->sat16)
        return RQ_EARG;
    for (int i = 0; i < c->w_zp_n; i++)
        if (c->w_zp[i]) return RQ_EARG;
    return dw_dp_avxvnni(c, nthreads);
}
#endif

/* ---------------------------------------------------------------- transposes (NCHW <-> NHWC)
 * dst[c*ds + r] = src[r*ss + c] for r < rows, c < cols.  Whole 16x16 byte blocks (8x8 int32
 * blocks) through interleaves; the edge blocks element by element.  Four block rows at a time
 * per block column, so each destination row gets 64 contiguous bytes before the next block
 * column (conv_avx512.c's order). */
static inline void tr16_u8(const uint8_t *src, ptrdiff_t ss, uint8_t *dst, ptrdiff_t ds) {
    __m128i r[16];
    for (int i = 0; i < 16; i++) r[i] = _mm_loadu_si128((const __m128i *)(src + i * ss));
    tr16_net(r);
    for (int j = 0; j < 16; j++) _mm_storeu_si128((__m128i *)(dst + j * ds), r[j]);
}

static inline void tr8_u32(const int32_t *src, ptrdiff_t ss, int32_t *dst, ptrdiff_t ds) {
    __m256i r[8], t[8];
    for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_si256((const __m256i *)(src + i * ss));
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) {   /* r[4i + j], lane L: rows 4i .. 4i + 3 of column 4L + j */
        r[4 * i + 0] = _mm256_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        r[4 * i + 1] = _mm256_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        r[4 * i + 2] = _mm256_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        r[4 * i + 3] = _mm256_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int j = 0; j < 4; j++) {
        _mm256_storeu_si256((__m256i *)(dst + j * ds), _mm256_permute2x128_si256(r[j], r[4 + j], 0x20));
        _mm256_storeu_si256((__m256i *)(dst + (4 + j) * ds), _mm256_permute2x128_si256(r[j], r[4 + j], 0x31));
    }
}

#define RQ_TRANSPOSE_AVX2(B, TR, T)                                                                 \
    for (int r0 = 0; r0 < rows; r0 += 4 * (B)) {                                                    \
        const int r1 = rows - r0 < 4 * (B) ? rows : r0 + 4 * (B);                                   \
        for (int c = 0; c < cols; c += (B)) {                                                       \
            const int nc = cols - c < (B) ? cols - c : (B);                                         \
            for (int r = r0; r < r1; r += (B)) {                                                    \
                const int nr = rows - r < (B) ? rows - r : (B);                                     \
                if (nr == (B) && nc == (B)) TR(src + r * ss + c, ss, dst + c * ds + r, ds);        \
                else                                                                                \
                    for (int i = 0; i < nr; i++)                                                    \
                        for (int j = 0; j < nc; j++) dst[(c + j) * ds + r + i] = src[(r + i) * ss + c + j]; \
            }                                                                                       \
        }                                                                                           \
    }

void rq_transpose_u8__avx2(const uint8_t *src, ptrdiff_t ss, uint8_t *dst, ptrdiff_t ds, int rows, int cols) {
    RQ_TRANSPOSE_AVX2(16, tr16_u8, uint8_t)
}

void rq_transpose_u32__avx2(const int32_t *src, ptrdiff_t ss, int32_t *dst, ptrdiff_t ds, int rows, int cols) {
    RQ_TRANSPOSE_AVX2(8, tr8_u32, int32_t)
}

/* ---------------------------------------------------------------- depthwise, channels last (AVX2)
 * conv_avx512.c's rq_dwconv_nhwc__avx512 on ymm (narrow rows, channel multiplier 1, 2-D or 3-D,
 * no int16 pairs; any weights and zero points): 16 channels a block, each pair of taps' raw x
 * (int16) interleaved with vpunpck and multiplied by the interleaved w' = w - w_zp with vpmaddwd
 * (exact: |x|, |w'| <= 255); per pixel the block's 16 results (dw_store8's epilogue) into a
 * (pixel x 16) block transposed into the NCHW output. */
#include "conv_dw_nhwc.inc"

/* the block's 16 channels into the padded block xb (the pads by dw_nhwc_pads): 32 pixels at a
 * time, channel i's two runs of 16 pixels as the lanes of ymm row i, tr16x2_net, then the lanes
 * of row j are pixels j and 16 + j, each stored in its padded place ioff[q] (-1: a pixel no
 * output reads); channels past ncb hold x_zp (against conv_dw_nhwc.inc's xmm transpose into a
 * channels-last copy, its rows then moved into place) */
static void dw_nhwc_block_ymm(const rq_conv_args *c, int c0, int ncb, int Hp, int Wp, const ptrdiff_t *ioff,
                              uint8_t *xb) {
    const rq_conv_depth z = rq_conv_depth_of(c);
    const size_t DHW = (size_t)z.D * c->H * c->W;
    const uint8_t *xs = c->x + (size_t)c0 * DHW;
    const __m128i zz = _mm_set1_epi8((char)c->x_zp);
    static const uint8_t tail_ix[32] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                        0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                        0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80};
    dw_nhwc_pads(c, 16, Hp, Wp, xb);
    for (size_t p0 = 0; p0 < DHW; p0 += 32) {
        const size_t n = DHW - p0 < 32 ? DHW - p0 : 32;
        __m256i r[16];
        for (int i = 0; i < 16; i++) {
            __m128i l[2] = {zz, zz};
            if (i < ncb) {
                const uint8_t *src = xs + (size_t)i * DHW + p0;
                for (int s = 0; s < 2; s++) {
                    const size_t ns = n > 16 * (size_t)s ? n - 16 * (size_t)s : 0;
                    if (ns >= 16) {
                        l[s] = _mm_loadu_si128((const __m128i *)(src + 16 * s));
                    } else if (ns > 0 && DHW >= 16) {
                        /* (no masked byte loads below AVX-512) the 16 bytes ending at the run's
                         * end, inside the channel's row, shifted down by pshufb */
                        const __m128i v = _mm_loadu_si128((const __m128i *)(src + 16 * s + ns - 16));
                        l[s] = _mm_shuffle_epi8(v, _mm_loadu_si128((const __m128i *)(tail_ix + 16 - ns)));
                    } else if (ns > 0) {   /* a plane of fewer than 16 pixels */
                        uint8_t tmp[16] = {0};
                        memcpy(tmp, src + 16 * s, ns);
                        l[s] = _mm_loadu_si128((const __m128i *)tmp);
                    }
                }
            }
            r[i] = _mm256_inserti128_si256(_mm256_castsi128_si256(l[0]), l[1], 1);
        }
        tr16x2_net(r);
        for (size_t j = 0; j < 16 && j < n; j++) {
            if (ioff[p0 + j] >= 0) _mm_store_si128((__m128i *)(xb + ioff[p0 + j]), _mm256_castsi256_si128(r[j]));
            if (16 + j < n && ioff[p0 + 16 + j] >= 0)
                _mm_store_si128((__m128i *)(xb + ioff[p0 + 16 + j]), _mm256_extracti128_si256(r[j], 1));
        }
    }
}

int rq_dwconv_nhwc__avx2(const rq_conv_args *c, int nthreads) {
    int32_t toff[128];
    dw_nhwc_plan pl;   /* (conv_dw_nhwc.inc: tap pairs) */
    const int prc = dw_nhwc_plan_of(c, 16, 2, toff, &pl);
    if (prc != RQ_OK) return prc;
    const int C = c->C, Hp = pl.Hp, Wp = pl.Wp, KK = pl.KK, NP = pl.ng, P = pl.P, nb = (C + 15) / 16;
    const size_t xbn = pl.xbn;
    size_t *pofs = pl.pofs; ptrdiff_t *ioff = pl.ioff;
    const int otype = c->out_type, xsg = c->x_signed, qmin = pl.qmin, qmax = pl.qmax;
    const __m256 lo = _mm256_set1_ps((float)(qmin - c->y_zp)), hi = _mm256_set1_ps((float)(qmax - c->y_zp));
    const __m256i zp = _mm256_set1_epi32(c->y_zp);
    const size_t es = otype == RQ_OUT_S32 ? 4 : 1;
    int rc = RQ_OK;
#if defined(_OPENMP)
#pragma omp parallel num_threads(nthreads) if (nthreads > 1 && (size_t)C * P * KK > 200000)
#endif
    {
        __m256i *wv = (__m256i *)rq_aligned_alloc(sizeof(__m256i) * (size_t)(2 * NP));
        void *stage = rq_aligned_alloc((size_t)P * 16 * es + 64);
        uint8_t *xb = (uint8_t *)rq_aligned_alloc(xbn + 64);   /* the block's padded input, channels last */
        if (!wv || !stage || !xb) rc = RQ_ENOMEM;
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
        for (int b = 0; b < nb; b++) {
            if (!wv || !stage || !xb) continue;
            const int c0 = 16 * b, ncb = C - c0 < 16 ? C - c0 : 16;
            dw_nhwc_block_ymm(c, c0, ncb, Hp, Wp, ioff, xb);
            /* w' per tap and channel (channels past C: 0), interleaved by tap pairs; the fix
             * x_zp * sum w' - bias and the multipliers per channel */
            int16_t wt[2][16];
            int32_t fix[16];
            float mul[16];
            for (int j = 0; j < 16; j++) {
                uint32_t sum = 0;
                mul[j] = 0.0f;
                if (j < ncb) {
                    const int co = c0 + j;
                    const int32_t wz = c->w_zp[c->w_zp_n == 1 ? 0 : co];
                    for (int t = 0; t < KK; t++) {
                        const uint8_t u = c->w[(size_t)co * KK + t];
                        sum += (uint32_t)((c->w_signed ? (int32_t)(int8_t)u : (int32_t)u) - wz);
                    }
                    sum = (uint32_t)c->x_zp * sum - (c->bias ? (uint32_t)c->bias[co] : 0u);
                    mul[j] = c->mult ? c->mult[c->mult_n == 1 ? 0 : co] : 0.0f;
                }
                fix[j] = (int32_t)sum;
            }
            for (int pr = 0; pr < NP; pr++) {
                for (int q = 0; q < 2; q++) {
                    const int t = 2 * pr + q;
                    for (int j = 0; j < 16; j++) {
                        int32_t v = 0;
                        if (t < KK && j < ncb) {
                            const int co = c0 + j;
                            const uint8_t u = c->w[(size_t)co * KK + t];
                            v = (c->w_signed ? (int32_t)(int8_t)u : (int32_t)u) - c->w_zp[c->w_zp_n == 1 ? 0 : co];
                        }
                        wt[q][j] = (int16_t)v;
                    }
                }
                const __m256i w0 = _mm256_loadu_si256((const __m256i *)wt[0]), w1 = _mm256_loadu_si256((const __m256i *)wt[1]);
                wv[2 * pr] = _mm256_unpacklo_epi16(w0, w1);
                wv[2 * pr + 1] = _mm256_unpackhi_epi16(w0, w1);
            }
            const __m256i f0 = _mm256_loadu_si256((const __m256i *)fix), f1 = _mm256_loadu_si256((const __m256i *)(fix + 8));
            const __m256 m0 = _mm256_loadu_ps(mul), m1 = _mm256_loadu_ps(mul + 8);
            for (size_t p = 0; p < (size_t)P; p++) {   /* (a flat loop over the window offsets) */
                const uint8_t *px = xb + pofs[p];
                __m256i al = _mm256_setzero_si256(), ah = al;
                for (int pr = 0; pr < NP; pr++) {
                    const __m128i r0 = _mm_loadu_si128((const __m128i *)(px + toff[2 * pr]));
                    const __m128i r1 = _mm_loadu_si128((const __m128i *)(px + toff[2 * pr + 1]));
                    const __m256i x0 = xsg ? _mm256_cvtepi8_epi16(r0) : _mm256_cvtepu8_epi16(r0);
                    const __m256i x1 = xsg ? _mm256_cvtepi8_epi16(r1) : _mm256_cvtepu8_epi16(r1);
                    al = _mm256_add_epi32(al, _mm256_madd_epi16(_mm256_unpacklo_epi16(x0, x1), wv[2 * pr]));
                    ah = _mm256_add_epi32(ah, _mm256_madd_epi16(_mm256_unpackhi_epi16(x0, x1), wv[2 * pr + 1]));
                }
                /* channels 0-7 and 8-15 in order (lane L: al 8L..8L+3, ah 8L+4..8L+7) */
                const __m256i e0 = _mm256_sub_epi32(_mm256_permute2x128_si256(al, ah, 0x20), f0);
                const __m256i e1 = _mm256_sub_epi32(_mm256_permute2x128_si256(al, ah, 0x31), f1);
                dw_store8(otype, stage, 16 * p, 8, e0, m0, lo, hi, zp);
                dw_store8(otype, stage, 16 * p + 8, 8, e1, m1, lo, hi, zp);
            }
            if (otype == RQ_OUT_S32)
                rq_transpose_u32__avx2((const int32_t *)stage, 16, (int32_t *)c->y + (size_t)c0 * P, P, P, ncb);
            else
                rq_transpose_u8__avx2((const uint8_t *)stage, 16, (uint8_t *)c->y + (size_t)c0 * P, P, P, ncb);
        }
        rq_aligned_free(wv); rq_aligned_free(stage);
        rq_aligned_free(xb);
    }
    rq_aligned_free(pofs); rq_aligned_free(ioff);
    return rc;
}
