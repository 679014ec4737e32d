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
