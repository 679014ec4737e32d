/* conv_avx512vnni.c -- depthwise convolution with vpdpbusd, for KW <= 4, W stride 1, W dilation 1,
 * int8 weights with zero w_zp.
 *
 * For output pixel p of a row, the KW taps of kernel row kh read x[p .. p+KW-1]: the 4 bytes at
 * p are one dword, and vpdpbusd with the weight dword (w[kh,0..KW-1], 0...) gives
 * sum_kw x[p+kw] * w[kh,kw] exactly (int32, wraps).  The 16 overlapping dwords of 16 outputs are
 * built from one 64-byte load with vpermd (dwords L..L+3 into 128-bit lane L) and an in-lane
 * vpshufb (bytes j..j+3 into dword j), or with one vpermb where the CPU has AVX512_VBMI (the
 * kernel body, conv_dw_dp.inc, is compiled once per way; measured on the 128-channel 56x56 3x3
 * layer: 140 -> 111 us).  x_used = x (uint8) or x ^ 0x80 (int8, = x + 128); padding
 * holds x_zp's x_used value; then acc = raw - (x_zp + 128*[int8 x]) * sum w + bias. */
#include "rq_gemm.h"
#include "../common/rq_cpu.h"
#include <immintrin.h>
#include <string.h>
#if defined(_OPENMP)
#include <omp.h>
#endif

/* the window of 16 outputs' dwords (bytes j .. j+3 into dword j) from 64 bytes at p:
 * vpermd + in-lane vpshufb, or one vpermb where the CPU has AVX512_VBMI (rq_cpu features) */
#define DW_CONSTS                                                                                 \
    /* 128-bit lane L (outputs 4L .. 4L+3) gets dwords sw*L .. sw*L+3; byte k of its output q  \
     * is lane byte sw*q + k */                                                                   \
    int32_t pix_[16]; uint8_t six_[16];                                                           \
    for (int j_ = 0; j_ < 16; j_++) { pix_[j_] = sw * (j_ / 4) + j_ % 4; six_[j_] = (uint8_t)(sw * (j_ / 4) + j_ % 4); } \
    const __m512i dw_k0 = _mm512_loadu_si512((const void *)pix_);                                 \
    const __m512i dw_k1 = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)six_))
#define DW_WIN(p) _mm512_shuffle_epi8(_mm512_permutexvar_epi32(dw_k0, _mm512_loadu_si512(p)), dw_k1)
#define DW_FN dw_dp_plain
#define DW_ATTR
#include "conv_dw_dp.inc"
#undef DW_FN
#undef DW_ATTR
#undef DW_CONSTS
#undef DW_WIN
#define DW_CONSTS                                                                                 \
    uint8_t wix_[64];                                                                             \
    for (int j_ = 0; j_ < 64; j_++) wix_[j_] = (uint8_t)(sw * (j_ / 4) + j_ % 4);                 \
    const __m512i dw_k0 = _mm512_loadu_si512((const void *)wix_), dw_k1 = _mm512_setzero_si512()
#define DW_WIN(p) _mm512_permutexvar_epi8(dw_k0, _mm512_loadu_si512(p))
#define DW_FN dw_dp_vbmi
#define DW_ATTR __attribute__((target("avx512vbmi")))
#include "conv_dw_dp.inc"
#undef DW_FN
#undef DW_ATTR
#undef DW_CONSTS
#undef DW_WIN

int rq_dwconv_dp__avx512vnni(const rq_conv_args *c, int nthreads) {
    if (rq_cpu_feature(RQ_FEAT_AVX512VBMI)) return dw_dp_vbmi(c, nthreads);
    return dw_dp_plain(c, nthreads);
}

/* ---------------------------------------------------------------- depthwise, channels last, vpdpbusd
 * conv_avx512.c's rq_dwconv_nhwc__avx512 (narrow rows, channel multiplier 1, 2-D or 3-D) for int8
 * weights with zero w_zp, 64 channels a block and 4 taps a vpdpbusd: x_used = x (uint8) or
 * x ^ 0x80 (int8, = x + 128) channels last in a padded block whose pads hold x_zp's x_used
 * value; per group of 4 taps the 4 taps' 64-byte rows interleaved to dwords (interleave4) and
 * multiplied by the interleaved weights; acc = raw - (x_zp + 128 [int8 x]) * sum w + bias.  The
 * interleave leaves channel 16 L + 4 q + j in dword j of lane L of accumulator q; the per-channel
 * constants are put in the same order, and the saturating packs of (acc 0, acc 1) and (acc 2,
 * acc 3) bring the bytes back into channel order. */
void rq_transpose_u8__avx512(const uint8_t *src, ptrdiff_t ss, uint8_t *dst, ptrdiff_t ds, int rows, int cols);
void rq_transpose_u32__avx512(const int32_t *src, ptrdiff_t ss, int32_t *dst, ptrdiff_t ds, int rows, int cols);
#include "conv_tr16.inc"
#include "conv_dw_nhwc.inc"
#include "conv_dw_nhwc_zmm.inc"

static inline void nhwc_il4(__m512i r0, __m512i r1, __m512i r2, __m512i r3, __m512i *v) {
    const __m512i t0 = _mm512_unpacklo_epi8(r0, r1), t1 = _mm512_unpackhi_epi8(r0, r1);
    const __m512i t2 = _mm512_unpacklo_epi8(r2, r3), t3 = _mm512_unpackhi_epi8(r2, r3);
    v[0] = _mm512_unpacklo_epi16(t0, t2); v[1] = _mm512_unpackhi_epi16(t0, t2);
    v[2] = _mm512_unpacklo_epi16(t1, t3); v[3] = _mm512_unpackhi_epi16(t1, t3);
}

/* out[q] lane L = in[L] lane q (a 4 x 4 transpose of 128-bit lanes: channel order <-> the
 * interleave's order, either way) */
static inline void nhwc_lanes4(const __m512i *in, __m512i *out) {
    const __m512i t0 = _mm512_shuffle_i32x4(in[0], in[1], 0x44), t1 = _mm512_shuffle_i32x4(in[0], in[1], 0xEE);
    const __m512i t2 = _mm512_shuffle_i32x4(in[2], in[3], 0x44), t3 = _mm512_shuffle_i32x4(in[2], in[3], 0xEE);
    out[0] = _mm512_shuffle_i32x4(t0, t2, 0x88); out[1] = _mm512_shuffle_i32x4(t0, t2, 0xDD);
    out[2] = _mm512_shuffle_i32x4(t1, t3, 0x88); out[3] = _mm512_shuffle_i32x4(t1, t3, 0xDD);
}

/* up to 16 pixels' 64 channel bytes (ob[i]: pixel p0 + i, channels in order) into the NCHW
 * output: transposed in registers, 16 bytes (n pixels) per channel row (channels < ncb) */
static inline __attribute__((always_inline)) void nhwc_flush16(__m512i ob[16], int n, uint8_t *y, size_t P,
                                                              int ncb) {
    for (int i = n; i < 16; i++) ob[i] = _mm512_setzero_si512();
    dw_tr16x4(ob);
    if (n == 16 && ncb == 64) {   /* (whole rows of 16: plain stores) */
        for (int j = 0; j < 16; j++) {
            _mm_storeu_si128((__m128i *)(y + (size_t)j * P), _mm512_castsi512_si128(ob[j]));
            _mm_storeu_si128((__m128i *)(y + (size_t)(16 + j) * P), _mm512_extracti32x4_epi32(ob[j], 1));
            _mm_storeu_si128((__m128i *)(y + (size_t)(32 + j) * P), _mm512_extracti32x4_epi32(ob[j], 2));
            _mm_storeu_si128((__m128i *)(y + (size_t)(48 + j) * P), _mm512_extracti32x4_epi32(ob[j], 3));
        }
        return;
    }
    const __mmask16 m = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
    for (int j = 0; j < 16; j++) {   /* channel 16 L + j: lane L of ob[j] */
        if (j < ncb) _mm_mask_storeu_epi8(y + (size_t)j * P, m, _mm512_castsi512_si128(ob[j]));
        if (16 + j < ncb) _mm_mask_storeu_epi8(y + (size_t)(16 + j) * P, m, _mm512_extracti32x4_epi32(ob[j], 1));
        if (32 + j < ncb) _mm_mask_storeu_epi8(y + (size_t)(32 + j) * P, m, _mm512_extracti32x4_epi32(ob[j], 2));
        if (48 + j < ncb) _mm_mask_storeu_epi8(y + (size_t)(48 + j) * P, m, _mm512_extracti32x4_epi32(ob[j], 3));
    }
}

/* a block of rq_dwconv_nhwc_dp__avx512vnni: the padded channels-last x_used (xb), each output
 * pixel's window at xb + pofs[p], the tap offsets, the interleaved weights and the per-channel
 * constants in the interleave's order, the 8-bit outputs' flush buffer */
typedef struct {
    const uint8_t *xb; const size_t *pofs; const int32_t *toff; int NG; const __m512i *wv, *fix; const __m512 *mul;
    __m512 lo, hi; __m512i zp; int otype; void *stage; __m512i *ob; uint8_t *yb; size_t P; int ncb;
} nhwc_dp_job;

/* output pixel p of the block; returns the flush buffer's count.  (A flat pixel loop over the
 * offsets pofs, against the (od, oh, ow) loop nest with the epilogue inline: 1024 ch 7x7 15.2 ->
 * 14.2 us, 512 ch 14x14 24.3 -> 22.2.  Two or three pixels side by side were slower than one.) */
static inline __attribute__((always_inline)) int nhwc_dp_px(const nhwc_dp_job *J, int nob, size_t p) {
    const uint8_t *px = J->xb + J->pofs[p];
    __m512i acc[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
    for (int g = 0; g < J->NG; g++) {
        const int32_t *to = J->toff + 4 * g;
        __m512i v[4];
        nhwc_il4(_mm512_load_si512((const void *)(px + to[0])), _mm512_load_si512((const void *)(px + to[1])),
                 _mm512_load_si512((const void *)(px + to[2])), _mm512_load_si512((const void *)(px + to[3])), v);
        for (int q = 0; q < 4; q++) acc[q] = _mm512_dpbusd_epi32(acc[q], v[q], J->wv[4 * g + q]);
    }
    for (int q = 0; q < 4; q++) acc[q] = _mm512_sub_epi32(acc[q], J->fix[q]);
    if (J->otype == RQ_OUT_S32) {
        __m512i o[4];
        nhwc_lanes4(acc, o);
        for (int n = 0; n < 4; n++) _mm512_store_si512((void *)((int32_t *)J->stage + 64 * p + 16 * n), o[n]);
        return nob;
    }
    __m512i r[4];
    for (int q = 0; q < 4; q++) {
        const __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc[q]), J->mul[q]), J->lo), J->hi);
        r[q] = _mm512_add_epi32(_mm512_cvtps_epi32(v), J->zp);
    }
    /* (in [qmin, qmax] after the clamp: the saturating packs are exact; lane L then holds
     * channels 16 L .. 16 L + 15 in order) */
    const __m512i p01 = _mm512_packs_epi32(r[0], r[1]), p23 = _mm512_packs_epi32(r[2], r[3]);
    J->ob[nob++] = J->otype == RQ_OUT_U8 ? _mm512_packus_epi16(p01, p23) : _mm512_packs_epi16(p01, p23);
    if (nob == 16 || p + 1 == J->P) {   /* (a transpose of the block's (pixel x 64) bytes in
                                         * memory took 20% of a 7x7 layer) */
        nhwc_flush16(J->ob, nob, J->yb + (p + 1 - (size_t)nob), J->P, J->ncb);
        nob = 0;
    }
    return nob;
}

/* the depthwise weights (C x KK bytes, KK <= 16) as rows of 16 bytes, zeros past KK: four
 * channels a vpermb (the masked moves channel by channel took about 1 us of a 1024-channel 7x7
 * layer); returns the channels written (whole groups of 4, zero rows past C) */
__attribute__((target("avx512vbmi"))) static int nhwc_wpad16_vbmi(const uint8_t *w, int C, int KK, uint8_t *wpad) {
    uint8_t ix[64] __attribute__((aligned(64)));
    __mmask64 keep = 0;
    for (int d = 0; d < 64; d++) {
        ix[d] = (uint8_t)(d % 16 < KK ? (d / 16) * KK + d % 16 : 0);
        if (d % 16 < KK) keep |= (__mmask64)1 << d;
    }
    const __m512i idx = _mm512_load_si512((const void *)ix);
    int ch = 0;
    for (; ch < C; ch += 4) {
        const int n = C - ch < 4 ? C - ch : 4, nb = n * KK;
        const __mmask64 lm = nb >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << nb) - 1);
        const __mmask64 om = n == 4 ? keep : keep & (((__mmask64)1 << (16 * n)) - 1);
        _mm512_storeu_si512((void *)(wpad + (size_t)ch * 16),
                            _mm512_maskz_permutexvar_epi8(om, idx, _mm512_maskz_loadu_epi8(lm, w + (size_t)ch * KK)));
    }
    return ch;
}

int rq_dwconv_nhwc_dp__avx512vnni(const rq_conv_args *c, int nthreads) {
    if (!c->w_signed) return RQ_EARG;
    for (int i = 0; i < c->w_zp_n; i++)
        if (c->w_zp[i]) return RQ_EARG;
    int32_t toff[128];
    dw_nhwc_plan pl;   /* (conv_dw_nhwc.inc: groups of 4 taps) */
    const int prc = dw_nhwc_plan_of(c, 64, 4, toff, &pl);
    if (prc != RQ_OK) return prc;
    const int C = c->C, Hp = pl.Hp, Wp = pl.Wp, KK = pl.KK, NG = pl.ng, P = pl.P, nb = (C + 63) / 64;
    const size_t xbn = pl.xbn;
    size_t *pofs = pl.pofs; ptrdiff_t *ioff = pl.ioff;
    const int otype = c->out_type, ax = c->x_signed, qmin = pl.qmin, qmax = pl.qmax;
    const __m512 lo = _mm512_set1_ps((float)(qmin - c->y_zp)), hi = _mm512_set1_ps((float)(qmax - c->y_zp));
    const __m512i zp = _mm512_set1_epi32(c->y_zp);
    const uint32_t xzu = (uint32_t)c->x_zp + (ax ? 128u : 0u);
    /* the weights tap-major once: each channel's KK bytes padded to KKp (a multiple of 16, zeros)
     * by masked moves, then whole 16 x 16 blocks transposed (a transpose of the KK = 9 columns
     * as they are ran element by element: a third of a 1024-channel 7x7 layer's time);
     * wT[t][c], channels past C and taps past KK 0 */
    const int KKp = (KK + 15) / 16 * 16, Cq = nb * 64;
    uint8_t *wpad = (uint8_t *)rq_aligned_alloc((size_t)Cq * KKp + 64), *wT = (uint8_t *)rq_aligned_alloc((size_t)Cq * KKp + 64);
    if (!wpad || !wT) { rq_aligned_free(wpad); rq_aligned_free(wT); rq_aligned_free(pofs); rq_aligned_free(ioff); return RQ_ENOMEM; }
    const int cdone = KKp == 16 && rq_cpu_feature(RQ_FEAT_AVX512VBMI) ? nhwc_wpad16_vbmi(c->w, C, KK, wpad) : 0;
    memset(wpad + (size_t)cdone * KKp, 0, (size_t)(Cq - cdone) * KKp);
    for (int ch = cdone; ch < C; ch++)
        for (int t0 = 0; t0 < KK; t0 += 64) {
            const int n = KK - t0 < 64 ? KK - t0 : 64;
            const __mmask64 m = n >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << n) - 1);
            _mm512_mask_storeu_epi8(wpad + (size_t)ch * KKp + t0, m,
                                    _mm512_maskz_loadu_epi8(m, c->w + (size_t)ch * KK + t0));
        }
    rq_transpose_u8__avx512(wpad, KKp, wT, Cq, Cq, KKp);
    rq_aligned_free(wpad);
    int rc = RQ_OK;
#if defined(_OPENMP)
#pragma omp parallel num_threads(nthreads) if (nthreads > 1 && (size_t)C * P * KK > 200000)
#endif
    {
        __m512i *wv = (__m512i *)rq_aligned_alloc(sizeof(__m512i) * (size_t)(4 * NG));
        void *stage = rq_aligned_alloc(otype == RQ_OUT_S32 ? (size_t)P * 64 * 4 + 64 : 64);
        uint8_t *xb = (uint8_t *)rq_aligned_alloc(xbn + 64);
        if (!wv || !stage || !xb) rc = RQ_ENOMEM;
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
        for (int b = 0; b < nb; b++) {
            if (!wv || !stage || !xb) continue;
            const int c0 = 64 * b, ncb = C - c0 < 64 ? C - c0 : 64;
            dw_nhwc_block_zmm(c, c0, ncb, 64, Hp, Wp, ioff, xb);   /* then x_used */
            if (ax) {
                const __m512i f = _mm512_set1_epi8((char)0x80);
                for (size_t i = 0; i < xbn; i += 64)
                    _mm512_store_si512((void *)(xb + i), _mm512_xor_si512(_mm512_load_si512((const void *)(xb + i)), f));
            }
            /* the block's weights interleaved by 4 taps; their sums by vpdpbusd with ones, in
             * the interleave's order */
            const __m512i ones = _mm512_set1_epi8(1);
            __m512i sw[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                             _mm512_setzero_si512()};
            for (int g = 0; g < NG; g++) {
                const uint8_t *wg = wT + (size_t)4 * g * Cq + c0;
                nhwc_il4(_mm512_load_si512((const void *)wg), _mm512_load_si512((const void *)(wg + Cq)),
                         _mm512_load_si512((const void *)(wg + 2 * Cq)), _mm512_load_si512((const void *)(wg + 3 * Cq)),
                         wv + 4 * g);
                for (int q = 0; q < 4; q++) sw[q] = _mm512_dpbusd_epi32(sw[q], ones, wv[4 * g + q]);
            }
            /* fix = x_zp_used * sum w - bias and the multipliers, in the interleave's order */
            const __mmask64 mc = ncb >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << ncb) - 1);
            __m512i nat[4], fix[4];
            __m512 mul[4];
            for (int n = 0; n < 4; n++)
                nat[n] = c->bias ? _mm512_maskz_loadu_epi32((__mmask16)(mc >> (16 * n)), c->bias + c0 + 16 * n)
                                 : _mm512_setzero_si512();
            nhwc_lanes4(nat, fix);
            for (int q = 0; q < 4; q++)
                fix[q] = _mm512_sub_epi32(_mm512_mullo_epi32(_mm512_set1_epi32((int32_t)xzu), sw[q]), fix[q]);
            for (int n = 0; n < 4; n++)
                nat[n] = !c->mult ? _mm512_setzero_si512()
                       : c->mult_n == 1 ? _mm512_castps_si512(_mm512_set1_ps(c->mult[0]))
                       : _mm512_castps_si512(_mm512_maskz_loadu_ps((__mmask16)(mc >> (16 * n)), c->mult + c0 + 16 * n));
            __m512i mi[4];
            nhwc_lanes4(nat, mi);
            for (int q = 0; q < 4; q++) mul[q] = _mm512_castsi512_ps(mi[q]);
            __m512i ob[16];   /* (8-bit outputs: the last pixels' bytes, flushed 16 at a time) */
            int nob = 0;
            uint8_t *yb = (uint8_t *)c->y + (size_t)c0 * P;
            nhwc_dp_job J = {xb, pofs, toff, NG, wv, fix, mul, lo, hi, zp, otype, stage, ob, yb, (size_t)P, ncb};
            for (size_t p = 0; p < (size_t)P; p++) nob = nhwc_dp_px(&J, nob, p);
            if (otype == RQ_OUT_S32)
                rq_transpose_u32__avx512((const int32_t *)stage, 64, (int32_t *)c->y + (size_t)c0 * P, P, P, ncb);
        }
        rq_aligned_free(wv); rq_aligned_free(stage);
        rq_aligned_free(xb);
    }
    rq_aligned_free(wT); rq_aligned_free(pofs); rq_aligned_free(ioff);
    return rc;
}
