/* conv.c -- 2-D integer convolution (one NCHW image) on the GEMM machinery.  Portable unit.
 *
 * acc[co, oh, ow] = sum_{ci,kh,kw} (x[g*Cg+ci, oh*sh - pt + kh*dh, ow*sw - pl + kw*dw] - x_zp)
 *                                  * (w[co, ci, kh, kw] - w_zp[co])        (int32, wraps)
 * where padded positions hold x_zp (so they contribute 0), then the epilogue of rq_gemm.h.
 *
 * Paths:
 *   implicit AMX  group 1, stride 1, Cin % 64 == 0, int8 w with zero w_zp: x is copied once to a
 *                 padded NHWC buffer filled with x_zp; output pixel q = oh*Wp + ow (Wp = padded
 *                 width) reads its k-chunk (kh, kw, 64 channels) at q*C + (kh*dh*Wp + kw*dw)*C,
 *                 so A tiles load straight from that buffer (rows C bytes apart); virtual pixels
 *                 with ow >= OW are computed and dropped.
 *   depthwise     group == C, Cout = m * C (a channel multiplier m: output m*ch + j reads input
 *                 channel ch): direct loops (vpdpbusd windows, AVX-512 any stride, scalar).
 *   generic       per group: im2col (k ordered kh, kw, ci) + rq_gemm_run.
 */
#include "rq_gemm.h"
#include "../common/rq_cpu.h"
#include "../common/rq_pool.h"
#include <stdlib.h>
#include <string.h>
#if defined(_OPENMP)
#include <omp.h>
#endif

static inline int imin(int a, int b) { return a < b ? a : b; }

void rq_transpose_u8__avx512(const uint8_t *src, ptrdiff_t ss, uint8_t *dst, ptrdiff_t ds, int rows,
                             int cols) __attribute__((weak));

/* dst[c*ds + r] = src[r*ss + c] (bytes) */
void rq_transpose_u32__avx512(const int32_t *src, ptrdiff_t ss, int32_t *dst, ptrdiff_t ds, int rows,
                              int cols) __attribute__((weak));
/* the same at the AVX2 level (conv_avx2.c: whole 16x16 / 8x8 blocks by interleaves, edges
 * element by element) */
void rq_transpose_u8__avx2(const uint8_t *src, ptrdiff_t ss, uint8_t *dst, ptrdiff_t ds, int rows,
                           int cols) __attribute__((weak));
void rq_transpose_u32__avx2(const int32_t *src, ptrdiff_t ss, int32_t *dst, ptrdiff_t ds, int rows,
                            int cols) __attribute__((weak));
static void transpose_u8(const uint8_t *src, ptrdiff_t ss, uint8_t *dst, ptrdiff_t ds, int rows, int cols,
                         int isa) {
    if (isa >= RQ_ISA_AVX512 && rq_transpose_u8__avx512) {
        rq_transpose_u8__avx512(src, ss, dst, ds, rows, cols);
        return;
    }
    if (isa >= RQ_ISA_AVX2 && rq_transpose_u8__avx2) {
        rq_transpose_u8__avx2(src, ss, dst, ds, rows, cols);
        return;
    }
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) dst[c * ds + r] = src[r * ss + c];
}
static inline size_t osize(int t) { return t == RQ_OUT_S32 ? 4 : 1; }

static void epi_conv_base(rq_epi *e, const rq_conv_args *c) {
    memset(e, 0, sizeof(*e));
    e->bias = c->bias; e->bias_rs = 0; e->bias_cs = 1; e->fbias = c->fbias;
    e->fbias_fma = c->fbias_fma; e->fbias_rcp = c->fbias_rcp;
    e->od = c->od; e->od_s1 = c->od_s1; e->od_s3 = c->od_s3; e->fbias2 = c->fbias2;
    e->fx_mode = c->fx_mode; e->fx_qm = c->fx_qm; e->fx_sh = c->fx_sh;
    e->mult = c->mult; e->mult_n = c->mult_n; e->y_zp = c->y_zp;
    e->out_type = c->out_type; e->C = c->y;
    e->qmin = c->out_type == RQ_OUT_U8 ? 0 : -128;
    e->qmax = c->out_type == RQ_OUT_U8 ? 255 : 127;
}

static rq_epi_fn pick_epi(int isa) {
    if (isa >= RQ_ISA_AVX512 && rq_epi_rows__avx512) return rq_epi_rows__avx512;
    return rq_epi_rows__scalar;
}

/* The channels-last depthwise kernel for narrow rows (rq_conv_run): on unless
 * REFQUANT_DW_NHWC=0 or rq_set_dw_nhwc(0) (the tests sweep the per-channel kernels on narrow
 * rows too); rq_set_dw_nhwc(-1) goes back to the environment's setting. */
static int dw_nhwc_mode = -1;
void rq_set_dw_nhwc(int on) { dw_nhwc_mode = on < 0 ? -1 : on != 0; }
static int dw_nhwc_enabled(void) {
    int m = dw_nhwc_mode;
    if (m < 0) {
        const char *e = getenv("REFQUANT_DW_NHWC");
        m = !(e && e[0] == '0');
    }
    return m;
}

/* ---------------------------------------------------------------- depthwise (scalar) */
static int dw_scalar(const rq_conv_args *c, int isa, int nt) {
    const rq_conv_depth z = rq_conv_depth_of(c);   /* (a 2-D conv: one plane) */
    const int P2 = c->OH * c->OW, P = z.OD * P2, KK2 = c->KH * c->KW, KK = z.KD * KK2;
    const size_t HW = (size_t)c->H * c->W;
    rq_epi e; epi_conv_base(&e, c);
    e.M = P; e.N = c->Cout; e.K = KK; e.c_rs = 1; e.c_cs = P;
    rq_epi_fn epi = pick_epi(isa);
#if defined(_OPENMP)
#pragma omp parallel num_threads(nt) if (nt > 1 && (size_t)P * c->Cout * KK > 100000)
#endif
    {
        int32_t *row = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)(P + 16));
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
        for (int co = 0; co < c->Cout; co++) {
            if (!row) continue;
            const int32_t wz = c->w_zp[c->w_zp_n == 1 ? 0 : co], xz = c->x_zp;
            const uint8_t *xc = c->x + (size_t)(co / (c->Cout / c->C)) * z.D * HW;   /* (a channel multiplier) */
            const uint8_t *wp = c->w + (size_t)co * KK;
            int32_t wv[64];
            int big = KK > 64;
            if (!big) for (int k = 0; k < KK; k++) wv[k] = (c->w_signed ? (int32_t)(int8_t)wp[k] : (int32_t)wp[k]) - wz;
            for (int od = 0; od < z.OD; od++)
            for (int oh = 0; oh < c->OH; oh++)
                for (int ow = 0; ow < c->OW; ow++) {
                    uint32_t acc = 0;
                    if (c->sat16) {
                        /* int16 pair saturation (uint8 x int8 either way; 2-D only): raw values,
                         * padded taps holding the raw x_zp, pairs of taps (t, t + 1) in (kh, kw)
                         * order, each pair's exact sum clamped to int16; then
                         * acc = sum sat16(P) - xz sum w - wz sum x + KK xz wz (mod 2^32) */
                        const uint8_t *xp = xc;
                        uint32_t sw_ = 0, sx = 0;
                        int32_t pend = 0;
                        for (int k = 0; k < KK; k++) {
                            const int kh = k / c->KW, kw = k % c->KW;
                            const int ih = oh * c->sh - c->pt + kh * c->dh, iw = ow * c->sw - c->pl + kw * c->dw;
                            const int in = ih >= 0 && ih < c->H && iw >= 0 && iw < c->W;
                            const int32_t xv = in ? (c->x_signed ? (int32_t)(int8_t)xp[ih * c->W + iw]
                                                                  : (int32_t)xp[ih * c->W + iw])
                                                  : xz;
                            const int32_t wr = c->w_signed ? (int32_t)(int8_t)wp[k] : (int32_t)wp[k];
                            sw_ += (uint32_t)wr; sx += (uint32_t)xv;
                            pend += xv * wr;
                            if (k % 2 == 1 || k == KK - 1) {
                                acc += (uint32_t)(pend < -32768 ? -32768 : pend > 32767 ? 32767 : pend);
                                pend = 0;
                            }
                        }
                        acc = acc - (uint32_t)xz * sw_ - (uint32_t)wz * sx + (uint32_t)KK * (uint32_t)xz * (uint32_t)wz;
                        row[oh * c->OW + ow] = (int32_t)acc;
                        continue;
                    }
                    for (int kd = 0; kd < z.KD; kd++) {
                        const int id = od * z.sd - z.pd + kd * z.dd;
                        if (id < 0 || id >= z.D) continue;   /* a padded plane: x_zp, adds nothing */
                        const uint8_t *xp = xc + (size_t)id * HW;
                        for (int kh = 0; kh < c->KH; kh++) {
                            int ih = oh * c->sh - c->pt + kh * c->dh;
                            if (ih < 0 || ih >= c->H) continue;
                            for (int kw = 0; kw < c->KW; kw++) {
                                int iw = ow * c->sw - c->pl + kw * c->dw;
                                if (iw < 0 || iw >= c->W) continue;
                                int32_t xv = (c->x_signed ? (int32_t)(int8_t)xp[ih * c->W + iw] : (int32_t)xp[ih * c->W + iw]) - xz;
                                int k = kd * KK2 + kh * c->KW + kw;
                                int32_t w_ = big ? (c->w_signed ? (int32_t)(int8_t)wp[k] : (int32_t)wp[k]) - wz : wv[k];
                                acc += (uint32_t)(xv * w_);
                            }
                        }
                    }
                    row[(size_t)od * P2 + oh * c->OW + ow] = (int32_t)acc;
                }
            epi(&e, 0, P, co, 1, row, 1);
        }
        rq_aligned_free(row);
    }
    return RQ_OK;
}

/* ---------------------------------------------------------------- generic: im2col + GEMM */
/* im2col through a padded NHWC copy of the group's channels: each input row is transposed
 * (C x W -> W x C, vectorised) into a buffer whose pads hold x_zp, then every output pixel's
 * row of A is KH runs of KW*Cg contiguous bytes (dilation 1 along W) or KH*KW runs of Cg.
 * Gathering the channels byte by byte straight from NCHW (Cg loads H*W apart per tap) took
 * more than half of a 32-channel 14x14 3x3 conv (48 us).  The three stages (rows into the
 * NHWC buffer, im2col rows, the output transpose) split over the kernels' pool by rows, as the
 * implicit conv's transposes (OpenMP threads spinning beside the pool's made 2 threads slower
 * than 1). */
typedef struct {
    const rq_conv_args *c; uint8_t *xp, *acol; const uint8_t *yt; char *yg;
    int g, Cg, Cog, Wp, Kc, Kcp, P, isa, ntask; size_t es;
    int Cb;   /* bytes per pixel of the NHWC copy: Cg, or Cg rounded up to 4 (the implicit conv
               * of a stem: its extra channels hold x_zp, their weights 0) */
} gen_job;

static void gen_pad_rows(void *ctx, int64_t t) {       /* input rows of task t -> NHWC */
    const gen_job *J = (const gen_job *)ctx;
    const rq_conv_args *c = J->c;
    const uint8_t xz = (uint8_t)c->x_zp;
    const int HW = c->H * c->W, Cg = J->Cg, Cb = J->Cb;
    for (int h = (int)((int64_t)c->H * t / J->ntask); h < (int)((int64_t)c->H * (t + 1) / J->ntask); h++) {
        uint8_t *row = J->xp + ((size_t)(h + c->pt) * J->Wp + c->pl) * Cb;
        memset(row - (size_t)c->pl * Cb, xz, (size_t)c->pl * Cb);            /* left pad */
        if (Cb != Cg) memset(row, xz, (size_t)c->W * Cb);                    /* (the extra channels) */
        transpose_u8(c->x + (size_t)J->g * Cg * HW + (size_t)h * c->W, HW, row, Cb, Cg, c->W, J->isa);
        memset(row + (size_t)c->W * Cb, xz, (size_t)c->pr * Cb);             /* right pad */
    }
}

/* n bytes from s to d: runs of up to 64 bytes as two overlapping fixed-size moves (the
 * compiler makes each one load and one store), longer ones through memcpy.  A 3-channel 7x7
 * stem copies 21-byte runs, 7 per output pixel: the libc call per run was most of its im2col. */
static inline void copy_run(uint8_t *d, const uint8_t *s, size_t n) {
    if (n >= 32 && n <= 64) { memcpy(d, s, 32); memcpy(d + n - 32, s + n - 32, 32); }
    else if (n >= 16 && n < 32) { memcpy(d, s, 16); memcpy(d + n - 16, s + n - 16, 16); }
    else if (n >= 8 && n < 16) { memcpy(d, s, 8); memcpy(d + n - 8, s + n - 8, 8); }
    else if (n >= 4 && n < 8) { memcpy(d, s, 4); memcpy(d + n - 4, s + n - 4, 4); }
    else if (n > 64) memcpy(d, s, n);
    else for (size_t i = 0; i < n; i++) d[i] = s[i];
}

static void gen_im2col(void *ctx, int64_t t) {         /* output rows of task t -> rows of A */
    const gen_job *J = (const gen_job *)ctx;
    const rq_conv_args *c = J->c;
    const int Cg = J->Cg, Kc = J->Kc, Kcp = J->Kcp, Wp = J->Wp;
    const uint8_t xz = (uint8_t)c->x_zp;
    const size_t run = (c->dw == 1 ? (size_t)c->KW : 1) * Cg;      /* bytes per copied run */
    const int runs_w = c->dw == 1 ? 1 : c->KW;
    for (int oh = (int)((int64_t)c->OH * t / J->ntask); oh < (int)((int64_t)c->OH * (t + 1) / J->ntask); oh++) {
        for (int ow = 0; ow < c->OW; ow++) {
            uint8_t *d = J->acol + (size_t)(oh * c->OW + ow) * Kcp;
            for (int kh = 0; kh < c->KH; kh++) {
                const uint8_t *s = J->xp + ((size_t)(oh * c->sh + kh * c->dh) * Wp + (size_t)ow * c->sw) * Cg;
                for (int r = 0; r < runs_w; r++) {
                    copy_run(d, s + (size_t)r * c->dw * Cg, run);
                    d += run;
                }
            }
            if (Kcp > Kc) memset(d, xz, (size_t)(Kcp - Kc));
        }
    }
}

static void gen_out(void *ctx, int64_t t) {            /* pixels of task t: (P x Cog) -> NCHW */
    const gen_job *J = (const gen_job *)ctx;
    const int P = J->P, Cog = J->Cog;
    const int p0 = (int)((int64_t)P * t / J->ntask), p1 = (int)((int64_t)P * (t + 1) / J->ntask);
    if (p1 <= p0) return;
    if (J->es == 1) {
        transpose_u8(J->yt + (size_t)p0 * Cog, Cog, (uint8_t *)J->yg + p0, P, p1 - p0, Cog, J->isa);
    } else if (J->isa >= RQ_ISA_AVX512 && rq_transpose_u32__avx512) {
        rq_transpose_u32__avx512((const int32_t *)J->yt + (size_t)p0 * Cog, Cog, (int32_t *)J->yg + p0, P,
                                 p1 - p0, Cog);
    } else if (J->isa >= RQ_ISA_AVX2 && rq_transpose_u32__avx2) {
        rq_transpose_u32__avx2((const int32_t *)J->yt + (size_t)p0 * Cog, Cog, (int32_t *)J->yg + p0, P,
                               p1 - p0, Cog);
    } else {
        const int32_t *s = (const int32_t *)J->yt;
        int32_t *d = (int32_t *)J->yg;
        for (int p = p0; p < p1; p++)
            for (int co = 0; co < Cog; co++) d[(size_t)co * P + p] = s[(size_t)p * Cog + co];
    }
}

#ifndef RQ_GEN_DIRECT_PACK
#define RQ_GEN_DIRECT_PACK 1
#endif
#ifndef RQ_CONV_CPAD
#define RQ_CONV_CPAD 1   /* 0: small odd channel counts through im2col (A/B measurements) */
#endif
#ifndef RQ_CONV_CPAD_MAX_KK
#define RQ_CONV_CPAD_MAX_KK 64   /* taps (the implicit kernel's limit); the packing of more than 16
                                  * taps pads the weights and takes the staged packer */
#endif
#ifndef RQ_CONV_VNNI_IMPLICIT
#define RQ_CONV_VNNI_IMPLICIT 1   /* 0: im2col + GEMM at the VNNI level too (A/B measurements) */
#endif
static int conv_im2col_jit(const rq_conv_args *c, const uint8_t *acol, int Kc, int Pp, void *yt, int nt);
static int conv_im2col_jit_ok(const rq_conv_args *c, int isa, int Kc, int Pp);

static int conv_generic(const rq_conv_args *c, int isa, int nt, int *kern) {
    const int G = c->group, Cg = c->C / G, Cog = c->Cout / G;
    const int KK = c->KH * c->KW, Kc = KK * Cg, P = c->OH * c->OW;
    const int Hp = c->H + c->pt + c->pb, Wp = c->W + c->pl + c->pr;
    const uint8_t xz = (uint8_t)c->x_zp;
    /* the packed weights serve only the VNNI (AVX-512, AVX-VNNI) / AMX GEMMs; below them (an ISA cap, a CPU
     * without VNNI) and for the int16-pair-saturation kernels the GEMM reads B itself */
    const rq_packed_b *pk0 = (G == 1) ? c->packed : NULL;
    if (pk0 && ((isa < RQ_ISA_AVX512VNNI && !rq_gemm_avxvnni_at(isa)) || c->sat16)) pk0 = NULL;
    /* with AMX, A's rows are whole cache lines and its row count a whole number of tiles, so
     * the tiles load straight from the im2col buffer instead of a zero-padded copy: K padded to
     * a multiple of 64 with x_zp bytes in A and zero rows in B (each padded term is
     * (x_zp - x_zp) * (0 - w_zp) = 0; packed weights already hold those zero rows), pixels
     * padded to a multiple of 16 with x_zp rows whose outputs are dropped.  Not for the int16
     * pair saturation kernels. */
    const int pad = isa >= RQ_ISA_AMX && !c->sat16;
    const int Kcp = pad ? (Kc + 63) / 64 * 64 : Kc, Pp = pad ? (P + 15) / 16 * 16 : P;
    const size_t es = osize(c->out_type);
    /* AVX-512 VNNI without AMX: the GEMM reads the conv's rows in place from the NHWC copy
     * (rq_implicit_a, no im2col), where the weights are packed here (or given packed), their
     * zero points leave B_used's all zero (no row sums of A needed) and the channels come in
     * whole dwords.  Measured on an AMD Zen 5, 3x3 64 -> 64 at 56x56, 1 thread: 304 -> 253 us
     * (im2col + GEMM reading A in place, against this; ORT 258 us) */
    int wz_ok = 1;
    for (int j = 0; j < c->w_zp_n; j++) wz_ok &= c->w_zp[j] == (c->w_signed ? 0 : 128);
    /* a single group of fewer than 16 channels, not a multiple of 4 (a 3-channel stem): the
     * implicit conv over an NHWC copy padded to whole dwords, the extra channels x_zp (each
     * term (x_zp - x_zp) * w = 0), the weights packed with zero rows for them.  224x224 stride
     * 2, 1 thread, alternating builds: 3 -> 32 3x3 326 -> 180 us, 3 -> 24 5x5 371 -> 244 us,
     * 3 -> 64 7x7 661 -> 570 us (im2col of 27-147 byte rows, against this) */
    const int cpad = RQ_CONV_VNNI_IMPLICIT && RQ_CONV_CPAD && isa == RQ_ISA_AVX512VNNI && !c->sat16 && wz_ok &&
                     G == 1 && Cg % 4 && Cg < 16 && KK <= RQ_CONV_CPAD_MAX_KK && P > 4 && rq_gemm_vnni__avx512vnni;
    const int Cb = cpad ? (Cg + 3) / 4 * 4 : Cg;
    const int implicit = cpad || (RQ_CONV_VNNI_IMPLICIT && isa == RQ_ISA_AVX512VNNI && !c->sat16 && wz_ok &&
                                  Cg % 4 == 0 && KK <= 16 && P > 4 && rq_gemm_vnni__avx512vnni);
    if (cpad) pk0 = NULL;   /* (packed for Cg channels: packed again below for Cb) */
    /* the weights packed in one pass (VBMI), else transposed to a row-major B and packed */
    const int direct_pack = RQ_GEN_DIRECT_PACK && isa >= RQ_ISA_AVX512VNNI && !c->sat16 && Cg % 4 == 0 &&
                            KK <= 16 && rq_pack_conv_w__avx512vnni && rq_cpu_feature(RQ_FEAT_AVX512VBMI);
    uint8_t *acol = implicit ? NULL : (uint8_t *)rq_aligned_alloc((size_t)Pp * Kcp);
    uint8_t *bmat = pk0 ? NULL : (uint8_t *)rq_aligned_alloc((size_t)Kcp * Cog);
    uint8_t *xp = (uint8_t *)rq_aligned_alloc((size_t)Hp * Wp * Cb + 64);
    /* the GEMM's outputs pixel-major (contiguous rows of Cog), then one transpose to NCHW:
     * stores P apart from the epilogue cost a quarter of a 32-channel 56x56 conv */
    uint8_t *yt = (uint8_t *)rq_aligned_alloc((size_t)Pp * Cog * es + 64);
    if ((!acol && !implicit) || (!bmat && !pk0) || !xp || !yt) {
        rq_aligned_free(acol); rq_aligned_free(bmat); rq_aligned_free(xp); rq_aligned_free(yt);
        return RQ_ENOMEM;
    }
    if (Pp > P && acol) memset(acol + (size_t)P * Kcp, xz, (size_t)(Pp - P) * Kcp);
    if (bmat && Kcp > Kc) memset(bmat + (size_t)Kc * Cog, 0, (size_t)(Kcp - Kc) * Cog);
    /* top and bottom pad rows of the NHWC buffer (the row tasks write the rest) */
    memset(xp, xz, (size_t)c->pt * Wp * Cb);
    memset(xp + (size_t)(c->pt + c->H) * Wp * Cb, xz, (size_t)(Hp - c->pt - c->H) * Wp * Cb + 64);
    const int nt_in = ((size_t)c->C / G * c->H * c->W > 65536) ? imin(nt, c->H) : 1;
    const int nt_col = ((size_t)P * Kc > 262144) ? imin(nt, c->OH) : 1;
    const int nt_out = ((size_t)P * Cog > 65536) ? nt : 1;
    int rc = RQ_OK;
    for (int g = 0; g < G && rc == RQ_OK; g++) {
        gen_job J = {c, xp, acol, yt, (char *)c->y + (size_t)g * Cog * P * es, g, Cg, Cog, Wp, Kc, Kcp, P,
                     isa, nt_in, es, Cb};
        rq_parallel(nt_in, nt_in, gen_pad_rows, &J);
        if (implicit && c->x_signed) {
            /* A_used = x ^ 0x80, pads included: the rows this group wrote, and the top and
             * bottom pad rows (written once, before the first group) once */
            const size_t row = (size_t)Wp * Cb;
            const size_t i0 = g ? (size_t)c->pt * row : 0, i1 = g ? (size_t)(c->pt + c->H) * row : (size_t)Hp * row;
            for (size_t i = i0; i < i1; i++) xp[i] ^= 0x80;
        }
        J.ntask = nt_col;
        if (!implicit) rq_parallel(nt_col, nt_col, gen_im2col, &J);
        if (G == 1 && !pk0 && pad && conv_im2col_jit_ok(c, isa, Kc, Pp)) {
            /* large plain weights, few pixels: packed group by group just in time */
            if (kern) *kern = RQ_K_AMX;
            rc = conv_im2col_jit(c, acol, Kc, Pp, yt, nt);
            if (rc != RQ_OK) break;
            J.ntask = nt_out;
            rq_parallel(nt_out, nt_out, gen_out, &J);
            continue;
        }
        rq_packed_b pk2, *own = NULL;
        const rq_packed_b *pk = pk0;
        if (!pk && (direct_pack || cpad)) {
            /* the group's weights packed in one pass (rq_pack_conv_w_pad), not transposed into
             * a row-major B for the GEMM to pack again (cpad: Cb channels, zero weights past Cg) */
            own = rq_pack_conv_w_pad(c->w + (size_t)g * Cog * Kc, Cog, Cg, Cb, c->KH, c->KW, c->w_signed, isa, nt);
            if (!own) { rc = RQ_ENOMEM; break; }
            pk = own;
        }
        if (pk && pk->K == Kc && pk->Kp == Kcp) {   /* K padded: the packing's zero rows */
            pk2 = *pk;
            pk2.K = Kcp;
            pk = &pk2;
        }
        if (!pk) {
            /* B[(k*Cg + ci), co] = w[g*Cog + co, ci, k]: the group's (Cog x Cg*KK) weights
             * transposed (vectorised) to rows (ci, k), then the rows reordered to (k, ci); the
             * byte-by-byte reorder cost 50 us of a 96-channel 14x14 3x3 conv */
            const uint8_t *wg = c->w + (size_t)g * Cog * Kc;
            if (KK == 1) {
                transpose_u8(wg, Kc, bmat, Cog, Cog, Kc, isa);
            } else {
                uint8_t *wt = (uint8_t *)rq_aligned_alloc((size_t)Kc * Cog);
                if (!wt) { rc = RQ_ENOMEM; break; }
                transpose_u8(wg, Kc, wt, Cog, Cog, Kc, isa);
                for (int k = 0; k < KK; k++)
                    for (int ci = 0; ci < Cg; ci++)
                        memcpy(bmat + (size_t)(k * Cg + ci) * Cog, wt + (size_t)(ci * KK + k) * Cog, (size_t)Cog);
                rq_aligned_free(wt);
            }
            if (implicit) {   /* the implicit rows need packed weights (no VBMI: AVX-512 VNNI
                               * CPUs before Ice Lake) */
                own = rq_pack_b(bmat, Cog, 1, Kc, Cog, c->w_signed, isa, nt);
                if (!own) { rc = RQ_ENOMEM; break; }
                pk = own;
            }
        }
        rq_gemm_args a;
        memset(&a, 0, sizeof(a));
        a.M = Pp; a.N = Cog; a.K = pk ? pk->K : Kcp;
        a.A = acol; a.a_rs = Kcp; a.a_cs = 1; a.a_signed = c->x_signed;
        a.B = bmat; a.b_rs = Cog; a.b_cs = 1; a.b_signed = c->w_signed;
        a.packed = pk;
        a.a_zp = &c->x_zp; a.a_zp_n = 1;
        a.b_zp = c->w_zp + (c->w_zp_n == 1 ? 0 : g * Cog); a.b_zp_n = c->w_zp_n == 1 ? 1 : Cog;
        a.out_type = c->out_type;
        a.C = yt; a.c_rs = Cog; a.c_cs = 1;
        if (c->bias) { a.bias = c->bias + g * Cog; a.bias_rs = 0; a.bias_cs = 1; }
        if (c->fbias) { a.fbias = c->fbias + g * Cog; a.bias_rs = 0; a.bias_cs = 1; }
        if (c->fbias2) { a.fbias2 = c->fbias2 + g * Cog; a.bias_rs = 0; a.bias_cs = 1; }
        a.od = c->od; a.od_s1 = c->od_s1; a.od_s3 = c->od_s3;
        a.fbias_fma = c->fbias_fma; a.fbias_rcp = c->fbias_rcp;
        a.fx_mode = c->fx_mode;
        if (c->fx_mode) {
            a.fx_qm = c->fx_qm + (c->mult_n == 1 ? 0 : g * Cog);
            a.fx_sh = c->fx_sh + (c->mult_n == 1 ? 0 : g * Cog);
        }
        a.mult = c->mult ? c->mult + (c->mult_n == 1 ? 0 : g * Cog) : NULL;
        a.mult_n = c->mult_n == 1 ? 1 : Cog;
        a.y_zp = c->y_zp; a.isa = isa; a.nthreads = nt;
        a.sat16 = c->sat16;
        rq_implicit_a ia = {xp, Wp, Cb, c->OW, c->KH, c->KW, c->sh, c->sw, c->dh, c->dw};
        if (implicit) { a.ia = &ia; a.A = NULL; a.a_rs = 0; a.M = P; }
        rc = rq_gemm_run(&a, kern);
        if (implicit && kern) *kern = RQ_K_CONV_VNNI_IMPLICIT;
        rq_packed_b_free(own);
        if (rc != RQ_OK) break;
        J.ntask = nt_out;
        rq_parallel(nt_out, nt_out, gen_out, &J);
    }
    rq_aligned_free(acol); rq_aligned_free(bmat); rq_aligned_free(xp); rq_aligned_free(yt);
    return rc;
}

/* ---------------------------------------------------------------- implicit AMX */
/* the implicit conv's layout changes run through the kernels' pool (rq_parallel), like the
 * AMX GEMM between them: OpenMP threads spinning beside pool workers cost more than the
 * transposes (measured at 2 threads) */
/* each task takes a contiguous range of rows (rows * t / n ..): neighbouring output rows share
 * cache lines in every NCHW plane, so an interleaved split would have the threads fight over
 * them (false sharing) */
typedef struct { const rq_conv_args *c; uint8_t *xp; const void *yv; int Wp, isa; size_t es; int ntask, Cp; } conv_tjob;

static void conv_tin_row(const conv_tjob *J, int h) {     /* input row h: (C x W) -> (W x Cp) */
    const rq_conv_args *c = J->c;
    const int C = c->C, Cp = J->Cp, HW = c->H * c->W;
    transpose_u8(c->x + (size_t)h * c->W, HW, J->xp + ((size_t)(h + c->pt) * J->Wp + c->pl) * Cp, Cp, C,
                 c->W, J->isa);
}

static void conv_tin_rows(void *ctx, int64_t t) {
    const conv_tjob *J = (const conv_tjob *)ctx;
    const int H = J->c->H;
    for (int h = (int)((int64_t)H * t / J->ntask); h < (int)((int64_t)H * (t + 1) / J->ntask); h++)
        conv_tin_row(J, h);
}

static void conv_tout_row(const conv_tjob *J, int oh) {   /* output row oh: NHWC -> NCHW */
    const rq_conv_args *c = J->c;
    const size_t P = (size_t)c->OH * c->OW;
    if (J->es == 1) {
        transpose_u8((const uint8_t *)J->yv + (size_t)oh * J->Wp * c->Cout, c->Cout,
                     (uint8_t *)c->y + (size_t)oh * c->OW, (ptrdiff_t)P, c->OW, c->Cout, J->isa);
    } else {
        const int32_t *s = (const int32_t *)J->yv + (size_t)oh * J->Wp * c->Cout;
        int32_t *d = (int32_t *)c->y + (size_t)oh * c->OW;
        if (J->isa >= RQ_ISA_AVX512 && rq_transpose_u32__avx512)   /* (ConvInteger: 2x faster) */
            rq_transpose_u32__avx512(s, c->Cout, d, (ptrdiff_t)P, c->OW, c->Cout);
        else if (J->isa >= RQ_ISA_AVX2 && rq_transpose_u32__avx2)
            rq_transpose_u32__avx2(s, c->Cout, d, (ptrdiff_t)P, c->OW, c->Cout);
        else
            for (int co = 0; co < c->Cout; co++)
                for (int ow = 0; ow < c->OW; ow++) d[co * P + ow] = s[(size_t)ow * c->Cout + co];
    }
}

static void conv_tout_rows(void *ctx, int64_t t) {
    const conv_tjob *J = (const conv_tjob *)ctx;
    const int OH = J->c->OH;
    for (int oh = (int)((int64_t)OH * t / J->ntask); oh < (int)((int64_t)OH * (t + 1) / J->ntask); oh++)
        conv_tout_row(J, oh);
}

/* the virtual output rows (pitch virtual pixels a row, NHWC) transposed into c->y (NCHW) */
static void conv_out_nchw(const rq_conv_args *c, const void *yv, int pitch, int isa, size_t es, int nt) {
    const size_t P = (size_t)c->OH * c->OW;
    const int ntk = (P * c->Cout > 65536) ? nt : 1;
    conv_tjob J = {c, NULL, yv, pitch, isa, es, ntk, c->C};
    rq_parallel(ntk, ntk, conv_tout_rows, &J);
}

/* Channels not a multiple of 64 are padded to Cp = the next multiple: the NHWC copy keeps Cp
 * bytes a pixel (x_zp in the extra ones) and the weights get zero rows for the extra channels,
 * so each tap is still whole 64-byte chunks (the extra products are zeros; the tile unit has the
 * time to spare, the im2col path's copies cost more). */
/* plain weights larger than half the L2, few output rows: each 64-channel group of weights
 * packed right before its tile products (rq_gemm_amx_plainf__amx) instead of the whole packed B
 * written out first and read back through L3.  Measured in-process, 1 thread: 512 -> 512 3x3 at
 * 7x7 311-317 -> 189-212 us, at 14x14 536-548 -> 423-472 (2 threads: 177 -> 113, 370 -> 270);
 * with 590 KB of weights (256 ch) no gain or a 3 us loss, and from about 800 rows on a loss
 * (256 ch 28x28: 353 -> 401 us) */
#ifndef RQ_IM2COL_JIT
#define RQ_IM2COL_JIT 1
#endif
#ifndef RQ_CONV_JIT_MAX_M
#define RQ_CONV_JIT_MAX_M 256
#endif
typedef struct { const uint8_t *w; int Cin, Cp, KK; const rq_epi *e; int32_t *colfix; uint32_t xzu;
                 const int32_t *csum; } conv_jit;

static int conv_jit_pack(void *ctx, rq_packed_b *blk, int c0) {
    const conv_jit *P = (const conv_jit *)ctx;
    return rq_pack_conv_w__avx512vnni(blk, P->w + (size_t)c0 * P->Cin * P->KK, P->Cin, P->Cp, P->KK, 1);
}

static void conv_jit_prep(void *ctx, int c0, int n, rq_epi *eb) {
    const conv_jit *P = (const conv_jit *)ctx;
    if (P->xzu)
        for (int j = c0; j < c0 + n; j++) P->colfix[j] = (int32_t)(P->xzu * (uint32_t)P->csum[j]);
    rq_epi_shift_cols(eb, P->e, c0, n);
}

/* The im2col path with plain weights larger than half the L2 and at most RQ_CONV_JIT_MAX_M
 * pixels (strided convs of the late layers: 512 -> 512 3x3 stride 2 at 14x14, 1x1 stride-2
 * downsampling): as the implicit conv, each 64-channel group of weights packed right before its
 * tile products (rq_gemm_amx_plainf__amx) instead of the whole packed B written out and read
 * back through L3.  Group 1, int8 weights with zero zero points, whole 64-byte chunks of K. */
static int conv_im2col_jit_ok(const rq_conv_args *c, int isa, int Kc, int Pp) {
    if (!RQ_IM2COL_JIT || c->group != 1 || !c->w_signed || c->sat16 || Kc % 64 || c->C % 4 ||
        c->KH * c->KW > 16 || Pp > RQ_CONV_JIT_MAX_M || (size_t)Kc * c->Cout <= (size_t)rq_l2_bytes() / 2 ||
        isa < RQ_ISA_AMX || !rq_gemm_amx_plainf__amx || !rq_pack_conv_w__avx512vnni ||
        !rq_cpu_feature(RQ_FEAT_AVX512VBMI) || !rq_amx_enable())
        return 0;
    for (int i = 0; i < c->w_zp_n; i++)
        if (c->w_zp[i] != 0) return 0;
    return 1;
}

static int conv_im2col_jit(const rq_conv_args *c, const uint8_t *acol, int Kc, int Pp, void *yt, int nt) {
    const int nkc = Kc / 64;
    int64_t *koff = (int64_t *)rq_aligned_alloc(sizeof(int64_t) * (size_t)nkc);
    int32_t *colfix = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)(c->Cout + 32));
    int32_t *csum = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)(c->Cout + 64));
    int rc = RQ_OK;
    if (!koff || !colfix || !csum) rc = RQ_ENOMEM;
    if (rc == RQ_OK) {
        for (int kc = 0; kc < nkc; kc++) koff[kc] = (int64_t)kc * 64;
        rq_epi e; epi_conv_base(&e, c);
        e.M = Pp; e.N = c->Cout; e.K = Kc;
        e.C = yt; e.c_rs = c->Cout; e.c_cs = 1;
        const uint32_t xzu = (uint32_t)c->x_zp;
        if (xzu) e.colfix = colfix;   /* (each group's columns filled right after its packing) */
        rq_amx_a A = {acol, (ptrdiff_t)16 * Kc, koff, Kc, c->x_signed, Pp / 16};
        conv_jit P = {c->w, c->C, c->C, c->KH * c->KW, &e, colfix, xzu, csum};
        rc = rq_gemm_amx_plainf__amx(&A, conv_jit_pack, &P, Kc, c->Cout, 1, csum, conv_jit_prep, &P, nt);
    }
    rq_aligned_free(koff); rq_aligned_free(colfix); rq_aligned_free(csum);
    return rc;
}

static int conv_implicit_amx(const rq_conv_args *c, int isa, int nt) {
    const int C = (c->C + 63) / 64 * 64, Hp = c->H + c->pt + c->pb, Wp = c->W + c->pl + c->pr;
    const int Mv = c->OH * Wp, nib = (Mv + 15) / 16, nc = C / 64;
    const int Kc = c->KH * c->KW * C, nkc = Kc / 64;
    size_t npix = (size_t)nib * 16 + (size_t)(c->KH - 1) * c->dh * Wp + (size_t)(c->KW - 1) * c->dw + 1;
    /* and every pixel the copy below writes: up to the last row's right pad and the left pad
     * after it (with no bottom pad, a left pad of pl pixels past Hp * Wp; a 3x1 kernel with pads
     * (1, 2, 0, 0) on 128 channels ran the memsets past the buffer) */
    if (npix < (size_t)Hp * Wp + c->pl) npix = (size_t)Hp * Wp + c->pl;
    uint8_t *xp = (uint8_t *)rq_aligned_alloc(npix * C + 64);
    int64_t *koff = (int64_t *)rq_aligned_alloc(sizeof(int64_t) * (size_t)nkc);
    int32_t *colfix = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)(c->Cout + 32));
    rq_packed_b *own = NULL;
    const rq_packed_b *pb = C != c->C ? c->packed_pad : c->packed;   /* (rq_conv_run checked it) */
    const int KK = c->KH * c->KW;
    const int jit = !pb && nib * 16 <= RQ_CONV_JIT_MAX_M && (size_t)Kc * c->Cout > (size_t)rq_l2_bytes() / 2 &&
                    KK <= 16 && rq_gemm_amx_plainf__amx &&
                    rq_pack_conv_w__avx512vnni && rq_cpu_feature(RQ_FEAT_AVX512VBMI);
    int32_t *csum = jit ? (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)(c->Cout + 64)) : NULL;
    int rc = RQ_OK;
    if (!xp || !koff || !colfix || (jit && !csum)) rc = RQ_ENOMEM;
    if (rc == RQ_OK && !pb && !jit) {
        /* the channels from c->C to C as zero weights */
        own = rq_pack_conv_w_pad(c->w, c->Cout, c->C, C, c->KH, c->KW, c->w_signed, isa, nt);
        if (!own) rc = RQ_ENOMEM;
        pb = own;
    }
    if (rc == RQ_OK) {
        const uint8_t xz = (uint8_t)c->x_zp;
        /* padded NHWC copy: per input row, a (C x W) -> (W x C) byte transpose */
        /* x_zp everywhere the copy below does not write: top rows, left/right pads, the rest */
        const int HW = c->H * c->W;
        if (C != c->C) {
            memset(xp, xz, npix * C + 64);          /* the extra channels of every pixel too */
        } else {
            memset(xp, xz, (size_t)c->pt * Wp * C + (size_t)c->pl * C);
            for (int h = 0; h < c->H; h++) {
                uint8_t *rowend = xp + ((size_t)(h + c->pt) * Wp + c->pl + c->W) * C;
                memset(rowend, xz, (size_t)(c->pr + c->pl) * C);   /* right pad + next row's left pad */
            }
            size_t done = ((size_t)(c->H + c->pt) * Wp + c->pl) * C;
            memset(xp + done, xz, npix * C + 64 - done);
        }
        {
            const int ntk = ((size_t)C * HW > 65536) ? nt : 1;
            conv_tjob J = {c, xp, NULL, Wp, isa, 0, ntk, C};
            rq_parallel(ntk, ntk, conv_tin_rows, &J);
        }
        for (int kh = 0; kh < c->KH; kh++)
            for (int kw = 0; kw < c->KW; kw++)
                for (int cc = 0; cc < nc; cc++)
                    koff[(kh * c->KW + kw) * nc + cc] = ((int64_t)kh * c->dh * Wp + (int64_t)kw * c->dw) * C + cc * 64;
        rq_epi e; epi_conv_base(&e, c);
        e.M = Mv; e.N = c->Cout; e.K = Kc;
        uint32_t xzu = (uint32_t)c->x_zp;
        if (xzu) {
            if (!jit) for (int j = 0; j < c->Cout; j++) colfix[j] = (int32_t)(xzu * (uint32_t)pb->csum[j]);
            e.colfix = colfix;   /* (jit: each group's columns filled right after its packing) */
        }
        /* outputs of the virtual pixels in NHWC order, then one transpose to NCHW */
        const size_t es = osize(c->out_type);
        void *yv = rq_aligned_alloc((size_t)nib * 16 * c->Cout * es + 64);
        if (!yv) rc = RQ_ENOMEM;
        if (rc == RQ_OK) {
            e.C = yv; e.c_rs = c->Cout; e.c_cs = 1;
            rq_amx_a A = {xp, (ptrdiff_t)16 * C, koff, C, c->x_signed, nib};
            if (jit) {
                conv_jit P = {c->w, c->C, C, KK, &e, colfix, xzu, csum};
                rc = rq_gemm_amx_plainf__amx(&A, conv_jit_pack, &P, Kc, c->Cout, 1, csum, conv_jit_prep, &P, nt);
            } else {
                rc = rq_gemm_amx__amx(&A, pb, &e, nt);
            }
        }
        if (rc == RQ_OK) conv_out_nchw(c, yv, Wp, isa, es, nt);
        rq_aligned_free(yv);
    }
    rq_aligned_free(xp); rq_aligned_free(koff); rq_aligned_free(colfix); rq_aligned_free(csum);
    rq_packed_b_free(own);
    return rc;
}

/* ---------------------------------------------------------------- row-implicit AMX */
/* Few input channels (the 3-channel stems, 1-channel inputs), where one tap's channels are a
 * sliver of a 64-byte chunk: the input is rearranged space-to-depth by the strides (fh = sh,
 * fw = sw: s2d pixel (i, j) holds the padded pixels (fh i + dy, fw j + dx), channels ordered
 * (dy, dx, c), Cs = fh fw C bytes), which makes the conv stride 1 with a KHs x KWs kernel
 * (KHs = ceil(KH / fh), KWs = ceil(KW / fw)).  One kernel row of it is then KWs * Cs <= 64
 * contiguous bytes of the s2d buffer, so each 64-byte chunk of K is one kernel row (kh') read
 * straight by the tile loads: 16 virtual output pixels Cs bytes apart (the rows overlap), the
 * chunk's bytes past KWs * Cs against zero weights, like the taps past KH / KW.  The weights
 * are rearranged to (Cout x 64 x KHs) and packed as a KHs x 1 conv of 64 channels.  No im2col
 * buffer (a 3-channel 7x7 stem wrote and read back 2.4 MB of it, a third of its time); its
 * virtual pixels are whole s2d rows (Ws wide), the ones past OW dropped by the output
 * transpose.  Zero weight zero points only (the bytes past KWs * Cs are real pixels).
 * 3-channel 7x7 stride-2 stem, 224x224, 1 thread: 558 -> 317 us (im2col 190 us of the 558). */
typedef struct { const rq_conv_args *c; const uint8_t *xp; uint8_t *xs; int Hs, Ws, fh, fw, Cs, ntask; } conv_s2d_job;

static void conv_s2d_rows(void *ctx, int64_t t) {       /* s2d rows of task t from the NHWC copy */
    const conv_s2d_job *J = (const conv_s2d_job *)ctx;
    const int C = J->c->C, fh = J->fh, fw = J->fw, Ws = J->Ws, Cs = J->Cs, run = fw * C;
    for (int i = (int)((int64_t)J->Hs * t / J->ntask); i < (int)((int64_t)J->Hs * (t + 1) / J->ntask); i++)
        for (int dy = 0; dy < fh; dy++) {
            const uint8_t *src = J->xp + (size_t)(i * fh + dy) * Ws * run;
            uint8_t *dst = J->xs + (size_t)i * Ws * Cs + (size_t)dy * run;
            for (int j = 0; j < Ws; j++) copy_run(dst + (size_t)j * Cs, src + (size_t)j * run, (size_t)run);
        }
}

static int conv_rows_amx(const rq_conv_args *c, int isa, int nt) {
    const int C = c->C, fh = c->sh, fw = c->sw, Cs = fh * fw * C;
    const int KHs = (c->KH + fh - 1) / fh, KWs = (c->KW + fw - 1) / fw;
    const int Hp = c->H + c->pt + c->pb, Wp = c->W + c->pl + c->pr;
    int Ws = c->OW + KWs - 1, Hs = c->OH + KHs - 1;
    if (Ws * fw < Wp) Ws = (Wp + fw - 1) / fw;
    if (Hs * fh < Hp) Hs = (Hp + fh - 1) / fh;
    const int Mv = c->OH * Ws, nib = (Mv + 15) / 16, Kc = KHs * 64;
    /* the tiles read up to 64 bytes from the last virtual pixel's last kernel row */
    size_t xs_pix = (size_t)nib * 16 + (size_t)(KHs - 1) * Ws;
    if (xs_pix < (size_t)Hs * Ws) xs_pix = (size_t)Hs * Ws;     /* (all of the s2d rows) */
    const size_t xs_bytes = xs_pix * Cs + 128;
    const size_t xp_bytes = (size_t)Hs * fh * Ws * fw * C + 64;
    const int s2d = fh > 1 || fw > 1;
    uint8_t *xp = (uint8_t *)rq_aligned_alloc(s2d ? xp_bytes : (xp_bytes > xs_bytes ? xp_bytes : xs_bytes));
    uint8_t *xs = s2d ? (uint8_t *)rq_aligned_alloc(xs_bytes) : xp;
    uint8_t *w2 = (uint8_t *)rq_aligned_alloc((size_t)c->Cout * Kc);
    int64_t koff[64];
    int32_t *colfix = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)(c->Cout + 32));
    const size_t es = osize(c->out_type);
    void *yv = rq_aligned_alloc((size_t)nib * 16 * c->Cout * es + 64);
    rq_packed_b *pb = NULL;
    int rc = RQ_OK;
    if (!xp || !xs || !w2 || !colfix || !yv) rc = RQ_ENOMEM;
    if (rc == RQ_OK) {
        /* w2[co][kw' Cs + (dy fw + dx) C + ci][kh'] = w[co][ci][kh' fh + dy][kw' fw + dx], 0 past the kernel */
        memset(w2, 0, (size_t)c->Cout * Kc);
        const int KK = c->KH * c->KW;
        int toff[256];     /* tap (kh, kw) -> its offset in a w2 row (ci 0) */
        for (int kh = 0; kh < c->KH; kh++)
            for (int kw = 0; kw < c->KW; kw++)
                toff[kh * c->KW + kw] = ((kw / fw) * Cs + ((kh % fh) * fw + kw % fw) * C) * KHs + kh / fh;
        for (int co = 0; co < c->Cout; co++)
            for (int ci = 0; ci < C; ci++) {
                const uint8_t *src = c->w + ((size_t)co * C + ci) * KK;
                uint8_t *dst = w2 + (size_t)co * Kc + (size_t)ci * KHs;
                for (int t = 0; t < KK; t++) dst[toff[t]] = src[t];
            }
        pb = rq_pack_conv_w_pad(w2, c->Cout, 64, 64, KHs, 1, c->w_signed, isa, nt);
        if (!pb) rc = RQ_ENOMEM;
    }
    if (rc == RQ_OK) {
        /* the padded NHWC copy, x_zp everywhere the transposes do not write */
        const uint8_t xz = (uint8_t)c->x_zp;
        memset(xp, xz, xp_bytes);
        if (!s2d) memset(xp + xp_bytes, xz, (xp_bytes > xs_bytes ? xp_bytes : xs_bytes) - xp_bytes);
        const int ntk = ((size_t)C * c->H * c->W > 65536) ? nt : 1;
        conv_tjob T = {c, xp, NULL, Ws * fw, isa, 0, ntk, C};
        rq_parallel(ntk, ntk, conv_tin_rows, &T);
        if (s2d) {
            memset(xs + (size_t)Hs * Ws * Cs, xz, xs_bytes > (size_t)Hs * Ws * Cs ? xs_bytes - (size_t)Hs * Ws * Cs : 0);
            conv_s2d_job S = {c, xp, xs, Hs, Ws, fh, fw, Cs, ntk};
            rq_parallel(ntk, ntk, conv_s2d_rows, &S);
        }
        for (int k = 0; k < KHs; k++) koff[k] = (int64_t)k * Ws * Cs;
        rq_epi e; epi_conv_base(&e, c);
        e.M = Mv; e.N = c->Cout; e.K = Kc;
        const uint32_t xzu = (uint32_t)c->x_zp;
        if (xzu) {
            for (int j = 0; j < c->Cout; j++) colfix[j] = (int32_t)(xzu * (uint32_t)pb->csum[j]);
            e.colfix = colfix;
        }
        e.C = yv; e.c_rs = c->Cout; e.c_cs = 1;
        rq_amx_a A = {xs, (ptrdiff_t)16 * Cs, koff, Cs, c->x_signed, nib};
        rc = rq_gemm_amx__amx(&A, pb, &e, nt);
        if (rc == RQ_OK) conv_out_nchw(c, yv, Ws, isa, es, nt);
    }
    if (xs != xp) rq_aligned_free(xs);
    rq_aligned_free(xp); rq_aligned_free(w2); rq_aligned_free(colfix); rq_aligned_free(yv);
    rq_packed_b_free(pb);
    return rc;
}

#ifndef RQ_IMPLICIT_MIN_C
#define RQ_IMPLICIT_MIN_C 16
#endif
#ifndef RQ_CONV_ROWS
#define RQ_CONV_ROWS 1
#endif
/* Below this many multiply-adds (and 4096 output pixels) a conv runs on one thread: the hand-offs between its stages
 * (layout copies, tile products, output transposes) cost more than a second core gains
 * (measured, 3x3 convs at 2 threads against 1: 64 ch 7x7 23 against 12 us, 128 ch 14x14 73
 * against 55, 32 ch 56x56 (60M) even, 64 ch 56x56 (120M) 87 against 126). */
#ifndef RQ_CONV_MT_MIN_MACS
#define RQ_CONV_MT_MIN_MACS (64.0 * 1024 * 1024)
#endif
#ifndef RQ_CONV_MT_MIN_MACS_VNNI
#define RQ_CONV_MT_MIN_MACS_VNNI (256.0 * 1024)
#endif
/* the row-implicit AMX conv's conditions (below) */
static int rows_amx_ok(const rq_conv_args *c, int isa) {
    if (!(RQ_CONV_ROWS && c->group == 1 && c->dh == 1 && c->dw == 1 && c->w_signed &&
          c->C < RQ_IMPLICIT_MIN_C && c->sh <= 4 && c->sw <= 4 &&
          ((c->KW + c->sw - 1) / c->sw) * c->sh * c->sw * c->C <= 64 && (c->KH + c->sh - 1) / c->sh <= 16 &&
          c->KH * c->KW <= 256 && isa >= RQ_ISA_AMX && rq_gemm_amx__amx && rq_amx_enable() &&
          rq_pack_conv_w__avx512vnni))
        return 0;
    for (int i = 0; i < c->w_zp_n; i++)
        if (c->w_zp[i] != 0) return 0;
    return 1;
}

int rq_conv_run(const rq_conv_args *c, int *kernel_used) {
    if (!c || c->C <= 0 || c->group <= 0 || c->C % c->group || c->Cout % c->group) return RQ_EARG;
    int isa = c->isa < 0 ? rq_isa_level() : imin(c->isa, rq_isa_level());
    int nt = c->nthreads > 0 ? c->nthreads : rq_num_threads();
    /* (the implicit and im2col paths; the 1x1 path is one GEMM and gains from 2 threads below
     * it: 256->1024 at 14x14, 51M, 93 -> 76 us) */
    /* at the VNNI level without AMX the GEMM is slower per core and the threads pay from far
     * smaller convs on (Zen 5, 3x3, 1 -> 2 threads: 16 ch 14x14 (0.5M MACs) 6.8 -> 6.3 us, 64 ch
     * 14x14 21.6 -> 15.5, 32 ch 56x56 (29M) 85 -> 49, 64 -> 128 56x56 stride 2 (58M) 143 -> 78) */
    /* (not for the int16-pair-saturation GEMMs, whose threads are an OpenMP team); below AVX-512
     * VNNI the same (Zen 5, 2 threads, alternating builds: 1x1 256->64 at 56x56 (51M MACs) 314-325
     * -> 211-214 us at the AVX-VNNI level, 604-614 -> 373-385 AVX2, 339-351 -> 229-239 AVX-512 BW;
     * 3x3 64->64 at 14x14 44-47 -> 32-33 us at each; 1x1 256->1024 at 14x14 278-300 -> 168-174) */
    const double mt_min = isa <= RQ_ISA_AVX512VNNI && isa >= RQ_ISA_AVX2 && !c->sat16 ? RQ_CONV_MT_MIN_MACS_VNNI
                                                                                     : RQ_CONV_MT_MIN_MACS;
    const int nt_staged = (nt > 1 && (double)c->OH * c->OW * c->Cout * (c->C / c->group) * c->KH * c->KW <
                           mt_min && c->OH * c->OW < 4096) ? 1 : nt;   /* (many pixels: the
                           layout work splits well, a 3-channel 112x112 stem gains from 2 threads) */
    const int Cg = c->C / c->group;
    const rq_conv_depth z = rq_conv_depth_of(c);
    if (c->D > 0) {   /* 3-D: the depthwise kernels only */
        if (Cg != 1 || c->Cout % c->C || c->sat16 || z.KD < 1 || z.OD < 0 || z.sd < 1 || z.dd < 1 || z.pd < 0)
            return RQ_EARG;
    }
    if (c->OH <= 0 || c->OW <= 0 || c->Cout == 0 || z.OD <= 0) {
        if (kernel_used) *kernel_used = RQ_K_SCALAR;
        return RQ_OK;
    }
    const int sat = c->sat16 && c->x_signed != c->w_signed;   /* (vpmaddubsw: uint8 x int8 only) */
    /* One input channel (group 1, Cout = m outputs): a plain conv the depthwise kernels also
     * take (channel multiplier m).  They compute each output's taps apart; the GEMM paths share
     * one im2col row of taps among the m outputs, and win for more taps and outputs (Zen 5, 1
     * thread, 28x28 and 56x56 inputs, direct / GEMM us; VNNI level: 5x5 m=20 14.7 / 16.0, m=32
     * 20.4 / 16.1, m=64 40.0 / 23.7, 7x7 m=8 11.9 / 18.5, m=32 90 / 69, 3x3 m=32 8.9 / 12.0;
     * AVX-VNNI: 5x5 m=20 18.9 / 35.7, m=32 27.9 / 26.5, 7x7 m=32 148 / 102; AVX-512 BW, whose
     * int16 GEMM is slower: 5x5 m=32 20.7 / 25.5, m=64 40.4 / 31.9, 7x7 m=32 92 / 107, 9x9 m=32
     * 53 / 36, 11x11 m=32 207 / 172; AVX2 alone: 5x5 m=32 26.7 / 29.3, 7x7 m=32 143 / 127).
     * Under AMX the row-implicit conv takes them (session 8's stems and 1-channel inputs). */
    const int c1_gemm = c->C == 1 && c->group == 1 && c->D <= 0 &&
        ((!sat && rows_amx_ok(c, isa)) ||
         (c->KH * c->KW > 9 && (isa >= RQ_ISA_AVX512VNNI || rq_gemm_avxvnni_at(isa) ? c->Cout >= 24
                                                                                    : c->Cout >= 48 || c->KH * c->KW >= 64)));
    if (Cg == 1 && c->Cout % c->C == 0 && !c1_gemm) {
        /* depthwise (any channel multiplier): the direct kernels.  With int16 pair saturation
         * (fbgemm's depthwise kernel, onnxruntime-avx2; the pairs of taps are the im2col order's
         * pairs for one channel a group) the AVX-512, AVX2 and scalar ones.  They fold an int32 bias
         * into their own epilogue; other epilogues (fbgemm's float bias, oneDNN's order, TFLite's
         * fixed point) run over their int32 accumulators (they took a GEMM per group before) */
        int wz0 = 1;
        for (int i = 0; i < c->w_zp_n; i++) wz0 &= c->w_zp[i] == 0;
        const int fused = !c->fbias && !c->od && !c->fx_mode;
        int k = RQ_K_DW_SCALAR;
        /* output rows up to 24 pixels (MobileNet's 14x14 and 7x7 layers), channel multiplier 1:
         * channels last, 32 a vector (Zen 5, 3x3, us, per-channel kernels -> this one, 1 / 2
         * threads: 1024 ch 7x7 57 -> 18 / 30 -> 11; 512 ch 14x14 47 -> 30 / 30 -> 18; stride 2
         * 28 -> 14 256 ch 38 -> 24 / 21 -> 14; 96 ch 20x20 17 -> 13; 128 ch 24x24 26 -> 22; but
         * 28x28 0.95-1.05x, 56x56 0.76x) */
        /* int8 weights with zero w_zp at the VNNI level: 4 taps a vpdpbusd, 64 channels a block
         * (1024 ch 7x7, 1 thread, API: 19.7 -> 16.9 us); with 3x3x3 taps it also wins on wider
         * rows from 48 channels (Zen 5, 1 thread, us, per-channel -> channels last: 64 ch
         * 8x28x28 211 -> 165, 48 ch 16x28x28 311 -> 296, 64 ch 4x56x56 366 -> 308; but 32 ch
         * 8x32x32 132 -> 217, 24 ch 16x56x56 522 -> 1066; 2-D 56x56 128 ch 83 -> 92) */
        /* (the threads split the kernels' channel blocks: with fewer blocks than threads the
         * per-channel kernels, whose threads split the channels; 64 ch 8x28x28, 2 threads: 130
         * GOPS channels last, 181 per channel) */
        /* (below AVX-512: the AVX2 one, 16 channels a block; Zen 5, 1 thread, us, per-channel ->
         * channels last, AVX2 / AVX-VNNI level: 1024 ch 7x7 100 -> 44 / 73 -> 44, 512 ch 14x14 95
         * -> 59 / 73 -> 59, stride 2 138 -> 28, 96 ch 20x20 31 -> 23 / 24 -> 23, 128 ch 24x24 45
         * -> 39 / 34 -> 40) */
        const int nhwc_dp = isa >= RQ_ISA_AVX512VNNI && rq_dwconv_nhwc_dp__avx512vnni && c->w_signed && wz0;
        const int nhwc_cb = nhwc_dp ? 64 : isa >= RQ_ISA_AVX512 ? 32 : 16;
        const int nhwc_at = isa >= RQ_ISA_AVX512 ? rq_dwconv_nhwc__avx512 != NULL
                                                 : isa >= RQ_ISA_AVX2 && rq_dwconv_nhwc__avx2 != NULL;
        if (!sat && nhwc_at && c->Cout == c->C &&
            (c->OW <= (isa < RQ_ISA_AVX512 && rq_gemm_avxvnni_at(isa) ? 20 : 24) ||
             (nhwc_dp && c->D > 0 && c->C >= 48 && c->OW <= 56)) && z.KD * c->KH * c->KW <= 128 &&
            (nt <= 1 || (c->C + nhwc_cb - 1) / nhwc_cb >= nt) && dw_nhwc_enabled())
            k = nhwc_dp ? RQ_K_DW_NHWC_VNNI : isa >= RQ_ISA_AVX512 ? RQ_K_DW_NHWC : RQ_K_DW_NHWC_AVX2;
        else if (!sat && isa >= RQ_ISA_AVX512VNNI && rq_dwconv_dp__avx512vnni && c->sw <= 4 && c->dw == 1 &&
            c->KW <= 4 && c->KH <= 16 && z.KD * c->KH <= 64 && c->w_signed && wz0)
            k = RQ_K_DW_VNNI;
        else if (isa >= RQ_ISA_AVX512 && rq_dwconv__avx512 && (!sat || wz0))   /* any stride (phase-split rows) */
            k = RQ_K_DW_AVX512;
        else if (!sat && rq_gemm_avxvnni_at(isa) && rq_dwconv_dp__avxvnni && c->sw == 1 && c->dw == 1 &&
                 c->KW <= 4 && c->KH <= 16 && z.KD * c->KH <= 64 && c->w_signed && wz0)   /* vpdpbusd on ymm */
            k = RQ_K_DW_AVXVNNI;
        else if (isa >= RQ_ISA_AVX2 && rq_dwconv__avx2 && (!sat || wz0))       /* the same, 8 pixels a vector */
            k = RQ_K_DW_AVX2;
        if (kernel_used) *kernel_used = k;
        if (k == RQ_K_DW_SCALAR) return dw_scalar(c, isa, nt);   /* (every epilogue: rq_epi) */
        int (*const dwk)(const rq_conv_args *, int) =
            k == RQ_K_DW_NHWC ? rq_dwconv_nhwc__avx512 : k == RQ_K_DW_NHWC_VNNI ? rq_dwconv_nhwc_dp__avx512vnni :
            k == RQ_K_DW_NHWC_AVX2 ? rq_dwconv_nhwc__avx2 :
            k == RQ_K_DW_VNNI ? rq_dwconv_dp__avx512vnni : k == RQ_K_DW_AVX512 ? rq_dwconv__avx512
          : k == RQ_K_DW_AVXVNNI ? rq_dwconv_dp__avxvnni : rq_dwconv__avx2;
        if (fused) return dwk(c, nt);
        const size_t P = (size_t)z.OD * c->OH * c->OW;   /* (a 3-D conv: its OD planes) */
        int32_t *acc = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (P * (size_t)c->Cout + 16));
        if (!acc) return RQ_ENOMEM;
        rq_conv_args c2 = *c;
        c2.out_type = RQ_OUT_S32; c2.y = acc; c2.bias = NULL; c2.fbias = NULL; c2.fbias2 = NULL;
        c2.od = 0; c2.fx_mode = 0; c2.mult = NULL;
        int rc = dwk(&c2, nt);
        if (rc == RQ_OK) {
            /* one epilogue call with the channels as rows (as the 1x1 path's W.X): per-row
             * parameters (multipliers, fixed-point ones included), NCHW output rows (a call per
             * channel, one column each, took 5.9 ms at 128 ch 56x56 3x3, against about 0.02
             * ms); on the calling thread (split over the pool's threads right after the
             * kernel's OpenMP team, 2 threads took 0.35 ms against 0.14) */
            rq_epi e; epi_conv_base(&e, c);
            e.M = c->Cout; e.N = (int)P; e.K = z.KD * c->KH * c->KW; e.c_rs = (ptrdiff_t)P; e.c_cs = 1;
            e.bias_rs = 1; e.bias_cs = 0; e.mult_rows = c->mult_n != 1;
            pick_epi(isa)(&e, 0, c->Cout, 0, (int)P, acc, (ptrdiff_t)P);
        }
        rq_aligned_free(acc);
        return rc;
    }
    if (sat)   /* pairs of the im2col order: the GEMM path */
        return conv_generic(c, isa, nt_staged, kernel_used);
    /* 1x1 with few pixels at the AVX-512 VNNI level: the implicit conv (pixel rows,
     * conv_generic) instead of W.X, whose 49 pixels of a 7x7 output fill 64 columns.  Zen 5,
     * 1 thread, us, W.X -> implicit.  Packed weights, up to 196 pixels: 7x7 512->2048 170 ->
     * 120, 2048->512 165 -> 114, 256->1024 47 -> 36; 14x14 1024->256 122-124 -> 117-119,
     * 1024->2048 932-937 -> 845-875; but 28x28 512->128 117 -> 135, 56x56 slower still.  Plain
     * weights (packed per call, 16 groups a transpose: packw_panel), up to 100 pixels: 7x7
     * 512->2048 175-177 -> 151-162, 2048->512 167 -> 140-144, 5x5 512->512 27-34 -> 24; at
     * 14x14 mixed (1024->256 124-128 -> 126-135) */
    int wz0 = 1;
    for (int i = 0; i < c->w_zp_n; i++) wz0 &= c->w_zp[i] == 0;
    const int pw_implicit = RQ_CONV_VNNI_IMPLICIT && isa == RQ_ISA_AVX512VNNI && c->w_signed && wz0 &&
                            c->C % 4 == 0 && c->H * c->W > 4 && c->H * c->W <= (c->packed ? 196 : 100) &&
                            (c->packed || rq_cpu_feature(RQ_FEAT_AVX512VBMI));
    if (c->group == 1 && c->KH == 1 && c->KW == 1 && c->sh == 1 && c->sw == 1 && !c->pt && !c->pl &&
        !c->pb && !c->pr && (isa >= RQ_ISA_AVX512VNNI || (rq_gemm_avxvnni_at(isa) && c->H * c->W >= 128)) &&
        !pw_implicit) {
        /* 1x1, stride 1, no padding: Y (Cout x HW) = W (Cout x C) . X (C x HW), straight NCHW.
         * At the AVX-VNNI level from 128 pixels (alternating builds, Zen 5, 1 / 2 threads, us:
         * 256->64 at 56x56 315 -> 262 / 275 -> 147, 64->256 at 56x56 406 -> 363 / 340 -> 212,
         * 1024->256 at 14x14 288 -> 248 / 238 -> 178; at 7x7, 512->2048 332 -> 347: the 49
         * columns fill 64); not at the int16 levels (mixed: AVX2 -9% .. +9%, AVX-512 BW -14%
         * .. +14% by shape and threads) */
        rq_gemm_args a;
        memset(&a, 0, sizeof(a));
        const int P = c->H * c->W;
        a.M = c->Cout; a.N = P; a.K = c->C;
        a.A = c->w; a.a_rs = c->C; a.a_cs = 1; a.a_signed = c->w_signed;
        a.B = c->x; a.b_rs = P; a.b_cs = 1; a.b_signed = c->x_signed;
        a.a_zp = c->w_zp; a.a_zp_n = c->w_zp_n;
        a.b_zp = &c->x_zp; a.b_zp_n = 1;
        a.out_type = c->out_type; a.C = c->y; a.c_rs = P; a.c_cs = 1;
        if (c->bias) { a.bias = c->bias; a.bias_rs = 1; a.bias_cs = 0; }
        if (c->fbias) { a.fbias = c->fbias; a.bias_rs = 1; a.bias_cs = 0; }
        if (c->fbias2) { a.fbias2 = c->fbias2; a.bias_rs = 1; a.bias_cs = 0; }
        a.od = c->od; a.od_s1 = c->od_s1; a.od_s3 = c->od_s3;
        a.fbias_fma = c->fbias_fma; a.fbias_rcp = c->fbias_rcp;
        a.fx_mode = c->fx_mode; a.fx_qm = c->fx_qm; a.fx_sh = c->fx_sh;
        a.mult = c->mult; a.mult_n = c->mult_n; a.mult_rows = c->mult && c->mult_n != 1;
        a.y_zp = c->y_zp; a.isa = isa; a.nthreads = nt;
        return rq_gemm_run(&a, kernel_used);
    }
    /* the implicit conv for whole 64-channel chunks, or padded to them from RQ_IMPLICIT_MIN_C
     * channels on (packed weights: their padded layout, packed_pad) */
    const int Cp64 = (c->C + 63) / 64 * 64;
    if (c->group == 1 && c->sh == 1 && c->sw == 1 && c->w_signed &&
        (c->C % 64 == 0 || (c->C >= RQ_IMPLICIT_MIN_C && (!c->packed || c->packed_pad))) &&
        isa >= RQ_ISA_AMX && rq_gemm_amx__amx && rq_amx_enable()) {
        int zero = 1;
        for (int i = 0; i < c->w_zp_n; i++) zero &= c->w_zp[i] == 0;
        const rq_packed_b *pk = c->C % 64 ? c->packed_pad : c->packed;
        if (zero && (!c->packed || (pk->K == c->KH * c->KW * Cp64 && pk->N == c->Cout))) {
            if (kernel_used) *kernel_used = RQ_K_CONV_AMX_IMPLICIT;
            return conv_implicit_amx(c, isa, nt_staged);
        }
    }
    /* few channels (stems): the row-implicit conv over a space-to-depth copy */
    /* (packed weights: their layout is for the true kernel, not the s2d one the strides make;
     * the plain weights, always at hand in c->w, are rearranged instead: 16 KB for the stem) */
    if (!sat && rows_amx_ok(c, isa)) {
        if (kernel_used) *kernel_used = RQ_K_CONV_AMX_ROWS;
        return conv_rows_amx(c, isa, nt_staged);
    }
    return conv_generic(c, isa, nt_staged, kernel_used);
}
