/* conv_avx512vnni.c -- depthwise convolution with vpdpbusd, for KW <= 4, W stride 1, W dilation 1,
 * int8 weights with zero w_zp.
 *
 * For output pixel p of a row, the KW taps of kernel row kh read x[p .. p+KW-1]: the 4 bytes at
 * p are one dword, and vpdpbusd with the weight dword (w[kh,0..KW-1], 0...) gives
 * sum_kw x[p+kw] * w[kh,kw] exactly (int32, wraps).  The 16 overlapping dwords of 16 outputs are
 * built from one 64-byte load with vpermd (dwords L..L+3 into 128-bit lane L) and an in-lane
 * vpshufb (bytes j..j+3 into dword j).  x_used = x (uint8) or x ^ 0x80 (int8, = x + 128); padding
 * holds x_zp's x_used value; then acc = raw - (x_zp + 128*[int8 x]) * sum w + bias. */
#include "rq_gemm.h"
#include "../common/rq_cpu.h"
#include <immintrin.h>
#include <string.h>
#if defined(_OPENMP)
#include <omp.h>
#endif

int rq_dwconv_dp__avx512vnni(const rq_conv_args *c, int nthreads) {
    const int C = c->C, H = c->H, W = c->W, KH = c->KH, KW = c->KW, OH = c->OH, OW = c->OW;
    const int Hp = (OH - 1) * c->sh + (KH - 1) * c->dh + 1, Wp = (OW + 15) / 16 * 16 + 64 + 8;
    const size_t P = (size_t)OH * OW;
    const uint8_t ax = c->x_signed ? 0x80 : 0;
    const uint8_t xz = (uint8_t)c->x_zp ^ ax;
    const int qmin = c->out_type == RQ_OUT_U8 ? 0 : -128, qmax = c->out_type == RQ_OUT_U8 ? 255 : 127;
    const __m512i perm = _mm512_setr_epi32(0, 1, 2, 3, 1, 2, 3, 4, 2, 3, 4, 5, 3, 4, 5, 6);
    const __m512i shuf = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 2, 3, 1, 2, 3, 4, 2, 3, 4, 5, 3, 4, 5, 6));
    int rc = RQ_OK;
#if defined(_OPENMP)
#pragma omp parallel num_threads(nthreads) if (nthreads > 1 && (size_t)C * P * KH * KW > 100000)
#endif
    {
        uint8_t *xp = (uint8_t *)rq_aligned_alloc((size_t)Hp * Wp + 128);
        if (!xp) rc = RQ_ENOMEM;
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
        for (int ch = 0; ch < C; ch++) {
            if (!xp) continue;
            memset(xp, xz, (size_t)Hp * Wp + 128);
            const uint8_t *xs = c->x + (size_t)ch * H * W;
            for (int h = 0; h < Hp; h++) {
                int ih = h - c->pt;
                if (ih < 0 || ih >= H) continue;
                int n = W; if (c->pl + n > Wp - 64) n = Wp - 64 - c->pl;
                uint8_t *d = xp + (size_t)h * Wp + c->pl;
                const uint8_t *s = xs + (size_t)ih * W;
                if (ax) for (int q = 0; q < n; q++) d[q] = s[q] ^ 0x80;
                else if (n > 0) memcpy(d, s, n);
            }
            int32_t wd[16];
            uint32_t wsum = 0;
            for (int kh = 0; kh < KH; kh++) {
                uint8_t b[4] = {0, 0, 0, 0};
                for (int kw = 0; kw < KW; kw++) {
                    b[kw] = c->w[((size_t)ch * KH + kh) * KW + kw];
                    wsum += (uint32_t)(int32_t)(int8_t)b[kw];
                }
                memcpy(&wd[kh], b, 4);
            }
            uint32_t fix = ((uint32_t)c->x_zp + (ax ? 128u : 0u)) * wsum;
            if (c->bias) fix -= (uint32_t)c->bias[ch];
            const __m512i vfix = _mm512_set1_epi32((int32_t)fix);
            const __m512 mul = _mm512_set1_ps(c->mult ? c->mult[c->mult_n == 1 ? 0 : ch] : 0.0f);
            const __m512 lo = _mm512_set1_ps((float)(qmin - c->y_zp)), hi = _mm512_set1_ps((float)(qmax - c->y_zp));
            const __m512i zp = _mm512_set1_epi32(c->y_zp);
            for (int oh = 0; oh < OH; oh++) {
                const uint8_t *base = xp + (size_t)(oh * c->sh) * Wp;
                for (int ow = 0; ow < OW; ow += 32) {
                    __m512i a0 = _mm512_setzero_si512(), a1 = a0;
                    for (int kh = 0; kh < KH; kh++) {
                        const uint8_t *q = base + (size_t)kh * c->dh * Wp + ow;
                        const __m512i wt = _mm512_set1_epi32(wd[kh]);
                        __m512i v0 = _mm512_shuffle_epi8(_mm512_permutexvar_epi32(perm, _mm512_loadu_si512(q)), shuf);
                        __m512i v1 = _mm512_shuffle_epi8(_mm512_permutexvar_epi32(perm, _mm512_loadu_si512(q + 16)), shuf);
                        a0 = _mm512_dpbusd_epi32(a0, v0, wt);
                        a1 = _mm512_dpbusd_epi32(a1, v1, wt);
                    }
                    __m512i av[2] = {a0, a1};
                    for (int v = 0; v < 2; v++) {
                        const int o0 = ow + 16 * v;
                        if (o0 >= OW) break;
                        const int n = OW - o0 < 16 ? OW - o0 : 16;
                        const __mmask16 m = (__mmask16)((1u << n) - 1u);
                        __m512i acc = _mm512_sub_epi32(av[v], vfix);
                        size_t o = (size_t)ch * P + (size_t)oh * OW + o0;
                        if (c->out_type == RQ_OUT_S32) {
                            _mm512_mask_storeu_epi32((int32_t *)c->y + o, m, acc);
                        } else {
                            __m512 vv = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc), mul), lo), hi);
                            _mm_mask_storeu_epi8((uint8_t *)c->y + o, m,
                                                 _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(vv), zp)));
                        }
                    }
                }
            }
        }
        rq_aligned_free(xp);
    }
    return rc;
}
