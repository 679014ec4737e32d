/* rq_gemm.h -- integer GEMM and convolution kernels (refquant._gemm).
 *
 * Semantics (matches refquant.reference.gemm / requant / conv, profiles onnx and onnxruntime):
 *
 *   acc[i,j] = sum_k (A[i,k] - za[i]) * (B[k,j] - zb[j])      exact, int32 two's-complement wrap
 *   y[i,j]   = acc[i,j] + bias[i,j]                             int32 wrap        (out = S32: stop here)
 *   v        = fl32(y) * M[j]                                   cvtdq2ps (RNE), float32 product
 *   out      = clamp(RNE(v) + y_zp, qmin, qmax)                 (computed as ORT does: clamp v in
 *                                                                float to [qmin-zp, qmax-zp], cvtps2dq,
 *                                                                add zp -- identical for finite v)
 *
 * How each ISA computes acc exactly:
 *   scalar      (a - za) * (b - zb) in int32 per product, uint32 sum.
 *   avx2        A' = A - za and B' = B - zb as int16 ([-255, 255]); vpmaddwd sums two products
 *   avx512      (|.| <= 130050, no overflow), vpaddd wraps.  No correction terms.  (ymm 6x16 /
 *               zmm 6x32 register tiles: gemm_avx2.c, gemm_avx512.c)
 *   avx512vnni  vpdpbusd needs u8 x s8: A_used = A ^ 0x80 when A is int8 (= A + 128),
 *               B_used = B ^ 0x80 when B is uint8 (= B - 128); zero points shifted the same way
 *               (za_u = za + 128, zb_u = zb - 128); then
 *               acc = raw - za_u[i]*(csum[j] - K*zb_u[j]) - zb_u[j]*rsum[i]   (all mod 2^32)
 *               with raw = sum A_used*B_used, csum/rsum the column/row sums of B_used/A_used.
 *               The identity holds over the integers, hence modulo 2^32.
 *   amx         tdpbusd (A uint8) / tdpbssd (A int8) on B_used (int8, as above), same correction;
 *               a plain uint8 B is packed raw instead (rq_packed_b.b_raw: no shift, zb_u = zb)
 *               and multiplied with tdpbuud (A uint8) / tdpbsud (A int8), so u8 x u8 with
 *               b_zp = 0 needs no row-sum correction (the direct int32 path, as u8 x s8).
 *   sat16       (profile int16_pair_saturation, uint8 x int8 only) raw = sum over pairs (k, k+1)
 *               of sat16(A[k]B[k] + A[k+1]B[k+1]) on the raw values (what vpmaddubsw computes),
 *               then the same zero-point correction with za, zb unshifted.
 *
 * Kernels and files (the scalar sibling of every SIMD path is gemm.c):
 *   gemm.c               driver (rq_gemm_run / rq_gemm_choose), correction terms, packing (portable),
 *                        scalar GEMM, scalar int16-pair-saturation GEMM, scalar epilogue, scratch cache
 *   gemm_avx2.c / gemm_avx512.c      int16 vpmaddwd GEMM
 *   gemm_avx512vnni.c    VNNI-4 B packing, 8x32 vpdpbusd GEMM on packed B, GEMV (M <= 4) on plain B
 *   gemm_amx.c           2x2-tile tdpbusd/tdpbssd GEMM: 32x32 C blocks, column blocks of packed B
 *                        sized for L2, one K pass up to K = 4096 (longer K: passes of 4 KiB);
 *                        int32 output with at most the per-column correction (za * colterm, e.g.
 *                        u8 x s8 with b_zp = 0): accumulators start from -colfix (stride-0 tile
 *                        load; exact mod 2^32) and whole blocks are stored straight into C;
 *                        otherwise raw sums go into a row strip and the epilogue runs over it
 *                        (measured: an epilogue per block or interleaved with the tile
 *                        instructions is slower than the strip)
 *   plain B, AMX         up to 256 rows with A and B in L2: 64 columns of B packed at a time into a
 *                        small buffer right before use, A streamed past it with tileloaddt1
 *                        (rq_gemm_amx_plain__amx); otherwise packed whole when packed B <= half
 *                        the L2, else just in time per column block of half the L2 (gemm.c
 *                        gemm_amx_jit) so packed B never leaves L2.  An A whose rows are not
 *                        whole cache lines is copied 32 rows at a time inside the tasks
 *                        (rq_amx_a.lazy) into an L1 buffer (the 64-column driver copies it
 *                        whole, once per thread)
 *   gemm_epi_avx512.c    vector epilogue (same lane-wise operations as the scalar one)
 *   conv.c               conv driver: implicit AMX conv, 1x1 as W.X GEMM, depthwise, im2col + GEMM
 *   conv_avx512.c        byte transposes (NCHW <-> NHWC), depthwise direct kernel
 *   conv_avx512vnni.c    depthwise vpdpbusd kernel (KW <= 4)
 * Threads: the AMX GEMM, B packing and GEMV hand out tasks through rq_parallel (rq_pool.h, the
 * caller takes part, no join on workers that never started); the other paths use OpenMP
 * parallel-for.  Every task writes disjoint outputs from the same integer sums, so the bits never
 * depend on the thread count.
 *
 * C code here never touches the Python API.  Every function returns 0 or a negative RQ_E* code.
 */
#ifndef RQ_GEMM_H
#define RQ_GEMM_H

#include <stddef.h>
#include <stdint.h>
#include "../common/rq_mem.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { RQ_OUT_S32 = 0, RQ_OUT_U8 = 1, RQ_OUT_S8 = 2 };
enum { RQ_OK = 0, RQ_ENOMEM = -1, RQ_EARG = -2, RQ_ENOISA = -3 };

/* Kernel identifiers (returned by rq_gemm_run in *kernel_used). */
enum {
    RQ_K_SCALAR = 0, RQ_K_SCALAR_SAT16 = 1, RQ_K_AVX2_I16 = 2, RQ_K_VNNI = 3, RQ_K_VNNI_GEMV = 4,
    RQ_K_AMX = 5, RQ_K_DW_SCALAR = 6, RQ_K_DW_AVX512 = 7, RQ_K_CONV_AMX_IMPLICIT = 8,
    RQ_K_AVX2_SAT16 = 9, RQ_K_DW_VNNI = 10, RQ_K_AVX512_I16 = 11, RQ_K_CONV_AMX_ROWS = 12, RQ_K_AVX512_SAT16 = 13,
    RQ_K_VNNI_SAT16 = 14, RQ_K_CONV_VNNI_IMPLICIT = 15, RQ_K_AVXVNNI = 16, RQ_K_DW_AVX2 = 17, RQ_K_AVXVNNI_GEMV = 18, RQ_K_AVX2_GEMV = 19, RQ_K_DW_AVXVNNI = 20,
    RQ_K_DW_NHWC = 21, RQ_K_DW_NHWC_VNNI = 22, RQ_K_DW_NHWC_AVX2 = 23,
    RQ_K_VNNI_PLAIN = 24,   /* the VNNI GEMM reading a plain B in place (no packing) */
    RQ_K_COUNT
};
const char *rq_gemm_kernel_name(int k);

/* Packed B ("VNNI-4"): B_used (int8, = B ^ 0x80 when B is uint8), K padded with zeros to Kp (a
 * multiple of 64), N padded to Np (a multiple of 16).  Panel p (columns 16p..16p+15) starts at
 * data + p*Kp*16; inside it, k-group g (rows 4g..4g+3) is 64 bytes: column n's four bytes at 4n.
 * An AMX B tile is 16 consecutive k-groups of a panel (stride 64). */
typedef struct rq_packed_b {
    uint8_t *data;
    int32_t *csum;     /* Np column sums of B_used over the true K */
    int K, N, Kp, Np;
    int b_signed;      /* signedness of the original B */
    int b_raw;         /* 1: uint8 B stored as is (no ^ 0x80; csum = unsigned column sums), for
                        * AMX tdpbuud / tdpbsud only (plain-B AMX paths); 0: B_used as above */
} rq_packed_b;

/* Allocate and pack.  B[k, n] is at B + k*b_rs + n*b_cs (bytes).  Returns NULL on OOM. */
rq_packed_b *rq_pack_b(const uint8_t *B, ptrdiff_t b_rs, ptrdiff_t b_cs, int K, int N, int b_signed,
                       int isa, int nthreads);
void rq_packed_b_free(rq_packed_b *pb);
size_t rq_packed_b_nbytes(const rq_packed_b *pb);

/* A given implicitly, as a convolution's rows (the VNNI GEMM only): row p (output pixel p =
 * oh * OW + ow) is the KH * KW runs of Cg bytes at xp + ((oh*sh + kh*dh) * Wp + ow*sw + kw*dw)
 * * Cg, kh outer, then kw, in a padded NHWC copy of the input (pads hold x_zp), already A_used
 * (int8 x flipped by ^ 0x80).  Cg a multiple of 4, B packed with K ordered (kh, kw, ci). */
typedef struct rq_implicit_a {
    const uint8_t *xp;
    int Wp, Cg, OW, KH, KW, sh, sw, dh, dw;
} rq_implicit_a;

typedef struct rq_gemm_args {
    int M, N, K;
    /* A[i, k] at A + i*a_rs + k*a_cs (bytes); B[k, n] at B + k*b_rs + n*b_cs. */
    const uint8_t *A; ptrdiff_t a_rs, a_cs; int a_signed;
    const uint8_t *B; ptrdiff_t b_rs, b_cs; int b_signed;
    const rq_packed_b *packed;      /* optional: use instead of B (must match K, N, b_signed) */
    const int32_t *a_zp; int a_zp_n;   /* 1 (per tensor) or M (per row) */
    const int32_t *b_zp; int b_zp_n;   /* 1 or N (per column) */
    /* output C[i, j] at C + i*c_rs + j*c_cs (elements of out_type) */
    int out_type; void *C; ptrdiff_t c_rs, c_cs;
    /* epilogue: int32 bias[i, j] at bias + i*bias_rs + j*bias_cs (elements; 0 = broadcast) */
    const int32_t *bias; ptrdiff_t bias_rs, bias_cs;
    /* or a float32 bias (fbgemm's rq_bias="float", 8-bit outputs only), same indexing, added
     * after the conversion: v = fl32(fl32(fl32(acc) + fbias[i, j]) * M); bias must be NULL.
     * fbias_fma = 1 (fbgemm's per-tensor rq_bias="float_rcp_fma"): the bias is taken times the
     * float32 fbias_rcp in one rounding instead, v = fl32(fma(fbias[i, j], fbias_rcp, fl32(acc)) * M) */
    const float *fbias; int fbias_fma; float fbias_rcp;
    /* oneDNN's epilogue (od = 1; rq_multiplier "onednn", zero point before rounding):
     * t = fl32(acc) [+ fbias]; t = fl32(t * od_s1); t = fl32(t * M[j]); [t = fl32(t + fbias2)];
     * t = fl32(t * od_s3); q = clamp(RNE(fl32(t + y_zp)), qmin, qmax).  fbias2 indexed like bias. */
    int od; float od_s1, od_s3; const float *fbias2;
    /* fixed-point requantization (TFLite / gemmlowp, rq_method "fixed_point"): fx_mode 1 double
     * rounding (SRDHM + RoundingDivideByPOT), 2 double half-up (ruy x86), 3 single rounding;
     * fx_qm / fx_sh indexed like mult (1 or N, or M with mult_rows); q = clamp(r + y_zp) */
    int fx_mode; const int32_t *fx_qm, *fx_sh;
    const float *mult; int mult_n;     /* 1 or N; used for RQ_OUT_U8 / RQ_OUT_S8 */
    int mult_rows;                      /* 1: mult has M entries, one per row (conv as W.X) */
    int32_t y_zp;
    int sat16;                          /* int16 pair saturation (uint8 A x int8 B only) */
    const rq_implicit_a *ia;            /* A as a conv's rows instead of A (NULL: A): VNNI only,
                                         * packed B, B_used's zero points all zero */
    int isa;                            /* max ISA level to use (-1: rq_isa_level()) */
    int nthreads;                       /* <= 0: rq_num_threads() */
} rq_gemm_args;

int rq_gemm_run(const rq_gemm_args *args, int *kernel_used);
/* Requantize M x N int32 accumulators acc[i * acc_rs + j] (refquant.requantize): the GEMM's
 * epilogue alone, with args' epilogue fields (bias, mult, fx_*, y_zp, out_type 8-bit, C, c_rs,
 * c_cs, isa, nthreads; M, N; the rest unused).  *isa_used: the epilogue's ISA level. */
int rq_requantize_run(const rq_gemm_args *args, const int32_t *acc, ptrdiff_t acc_rs, int *isa_used);
/* The kernel rq_gemm_run would pick (without running). */
int rq_gemm_choose(const rq_gemm_args *args);

/* ---- 2-D convolution, one image, NCHW, through the GEMM machinery ---- */
typedef struct rq_conv_args {
    int C, H, W;                 /* input channels, height, width */
    int Cout, group;
    int KH, KW, sh, sw, dh, dw;
    int pt, pl, pb, pr;          /* pads top, left, bottom, right */
    int OH, OW;
    const uint8_t *x; int x_signed;      /* x[c, h, w] contiguous NCHW (one image) */
    const uint8_t *w; int w_signed;      /* w[co, ci, kh, kw] contiguous */
    const rq_packed_b *packed;           /* optional packed weights (group == 1 only) */
    const rq_packed_b *packed_pad;       /* optional: the same with the input channels padded to
                                          * whole 64-byte chunks (the implicit AMX conv's layout) */
    int32_t x_zp;
    const int32_t *w_zp; int w_zp_n;     /* 1 or Cout */
    int out_type; void *y;               /* y[co, oh, ow] contiguous */
    const int32_t *bias;                 /* Cout or NULL */
    const float *fbias;                  /* Cout or NULL: float bias (rq_gemm_args.fbias) */
    int fbias_fma; float fbias_rcp;      /* rq_gemm_args.fbias_fma / fbias_rcp */
    int od; float od_s1, od_s3; const float *fbias2;   /* oneDNN epilogue (rq_gemm_args) */
    int fx_mode; const int32_t *fx_qm, *fx_sh;           /* fixed point (rq_gemm_args) */
    const float *mult; int mult_n;
    int32_t y_zp;
    int sat16;                           /* int16 pair saturation over k = (kh, kw, ci), ci fastest */
    int isa, nthreads;
    /* A 3-D depthwise conv where D > 0 (the depthwise kernels only: C / group == 1, no sat16;
     * rq_conv_run refuses any other 3-D call with RQ_EARG): x[c, d, h, w], w[co, 0, kd, kh, kw],
     * y[co, od, oh, ow], all contiguous; input depth D, kernel depth KD, output depth OD, depth
     * stride sd, dilation dd and front pad pd (the back pad follows from OD; a padded plane holds
     * x_zp).  D == 0: a 2-D conv (the depth fields unused). */
    int D, KD, OD, sd, dd, pd;
} rq_conv_args;

/* the depth of a conv: a 2-D one as one plane with a one-plane kernel */
typedef struct rq_conv_depth { int D, KD, OD, sd, dd, pd, Dp; } rq_conv_depth;
static inline rq_conv_depth rq_conv_depth_of(const rq_conv_args *c) {
    rq_conv_depth z = {1, 1, 1, 1, 1, 0, 1};
    if (c->D > 0) {
        z.D = c->D; z.KD = c->KD; z.OD = c->OD; z.sd = c->sd; z.dd = c->dd; z.pd = c->pd;
        z.Dp = (z.OD - 1) * z.sd + (z.KD - 1) * z.dd + 1;   /* the padded planes the outputs read */
    }
    return z;
}

int rq_conv_run(const rq_conv_args *args, int *kernel_used);
/* 0: depthwise convs keep the per-channel kernels on narrow rows too; 1: the channels-last
 * kernel takes those (the default); -1: REFQUANT_DW_NHWC decides (0 = off) */
void rq_set_dw_nhwc(int on);
/* 0: no VNNI GEMM on a plain B in place (gemm_vnni4_plain), 1: where it is chosen (the default),
 * -1: REFQUANT_VNNI_PLAIN decides ("0" = off) */
void rq_set_vnni_plain(int on);
/* Pack conv weights [Cout, Cin, KH, KW] (group 1) as the GEMM B operand with K ordered
 * (kh, kw, ci): B[k, co]. */
rq_packed_b *rq_pack_conv_w(const uint8_t *w, int Cout, int Cin, int KH, int KW, int w_signed,
                            int isa, int nthreads);
/* The same with the input channels padded to Cp >= Cin (zero weights; K = KH*KW*Cp), as the
 * implicit AMX conv reads them. */
rq_packed_b *rq_pack_conv_w_pad(const uint8_t *w, int Cout, int Cin, int Cp, int KH, int KW, int w_signed,
                                int isa, int nthreads);

/* ---------------- internal (shared between the per-ISA compile units) ---------------- */

/* Epilogue context: turns raw int32 sums into outputs. */
typedef struct rq_epi {
    int M, N, K;
    const int32_t *colfix;   /* N or NULL: za_u * (csum[j] - K*zb_u[j]) (za per tensor) */
    const int32_t *rowfix;   /* M or NULL: zb_u * rsum[i] (zb per tensor) */
    const int32_t *za_row;   /* M or NULL (za per row): subtract za_row[i]*colterm[j] */
    const int32_t *colterm;  /* N: csum[j] - K*zb_u[j] */
    const int32_t *zb_col;   /* N or NULL (zb per column): subtract zb_col[j]*rsum[i] */
    const int32_t *rsum;     /* M */
    const int32_t *bias; ptrdiff_t bias_rs, bias_cs;
    const float *fbias;      /* float bias (rq_gemm_args.fbias), indexed like bias */
    int fbias_fma; float fbias_rcp;                      /* (rq_gemm_args) */
    int od; float od_s1, od_s3; const float *fbias2;   /* oneDNN epilogue (rq_gemm_args) */
    int fx_mode; const int32_t *fx_qm, *fx_sh;           /* fixed point (rq_gemm_args) */
    const float *mult; int mult_n; int mult_rows;
    int32_t y_zp; int qmin, qmax;
    int out_type; void *C; ptrdiff_t c_rs, c_cs;
} rq_epi;

typedef void (*rq_epi_fn)(const rq_epi *e, int i0, int mi, int j0, int nj, const int32_t *raw,
                          ptrdiff_t ldr);
void rq_epi_rows__scalar(const rq_epi *e, int i0, int mi, int j0, int nj, const int32_t *raw,
                         ptrdiff_t ldr);
void rq_epi_rows__avx2(const rq_epi *e, int i0, int mi, int j0, int nj, const int32_t *raw,
                       ptrdiff_t ldr) __attribute__((weak));
void rq_epi_rows__avx512(const rq_epi *e, int i0, int mi, int j0, int nj, const int32_t *raw,
                         ptrdiff_t ldr) __attribute__((weak));

void *rq_aligned_alloc(size_t n);
void rq_aligned_free(void *p);

/* out[i] = sum_k (A[i*rs + k] ^ flip) + bias * K (uint32 wrap), rows of unit column stride;
 * (flip 0x80, bias -128: the int8 sums; flip 0x80, bias 0: the sums of A_used for signed A) */
void rq_row_sums__avx512(const uint8_t *A, ptrdiff_t rs, int M, int K, uint8_t flip, int32_t bias,
                         int32_t *out) __attribute__((weak));

/* per-ISA entry points (weak: absent when the compile unit was not built) */
int rq_gemm_i16__avx2(const rq_gemm_args *a, const rq_epi *e, rq_epi_fn epi, int nthreads)
    __attribute__((weak));
int rq_gemm_i16__avx512(const rq_gemm_args *a, const rq_epi *e, rq_epi_fn epi, int nthreads)
    __attribute__((weak));
int rq_gemm_sat16__avx2(const rq_gemm_args *a, const rq_packed_b *pb, const rq_epi *e, rq_epi_fn epi,
                        int nthreads) __attribute__((weak));
int rq_gemm_sat16__avx512(const rq_gemm_args *a, const rq_packed_b *pb, const rq_epi *e, rq_epi_fn epi,
                          int nthreads) __attribute__((weak));
int rq_gemm_sat16__avx512vnni(const rq_gemm_args *a, const rq_packed_b *pb, const rq_epi *e, rq_epi_fn epi,
                              int nthreads) __attribute__((weak));
/* compilers that take target("avxvnni") (the AVX-VNNI kernels of the AVX2 units; -DRQ_HAVE_AVXVNNI=0
 * builds without them, as an older compiler does) */
#ifndef RQ_HAVE_AVXVNNI
#if defined(__clang__)
#define RQ_HAVE_AVXVNNI (__clang_major__ >= 12)
#elif defined(__GNUC__)
#define RQ_HAVE_AVXVNNI (__GNUC__ >= 11)
#else
#define RQ_HAVE_AVXVNNI 0
#endif
#endif
/* AVX-VNNI (ymm vpdpbusd, gemm_avx2.c): the VNNI GEMM's arithmetic on packed B (not b_raw) */
int rq_gemm_vnni__avxvnni(const rq_gemm_args *a, const rq_packed_b *pb, const rq_epi *e, rq_epi_fn epi,
                          int nthreads) __attribute__((weak));
/* AVX-VNNI GEMV (gemm_avx2.c): 1 to 4 rows, plain B with a unit column stride read in place;
 * raw sums into e0->C (int32, rows e0->c_rs apart), B_used's column sums into csum (NULL: not
 * needed, no row of ones) */
int rq_gemv_vnni__avxvnni(const rq_gemm_args *a, const rq_epi *e0, int32_t *csum, int nthreads)
    __attribute__((weak));
/* exact int16 GEMV with AVX2 (gemm_avx2.c): 1 to 4 rows, plain B with a unit column stride read
 * in place, zero points folded in; outputs through epi (the levels below VNNI without AVX-VNNI) */
int rq_gemv_i16__avx2(const rq_gemm_args *a, const rq_epi *e, rq_epi_fn epi, int nthreads)
    __attribute__((weak));
/* 1 when the GEMM at level isa runs rq_gemm_vnni__avxvnni: the AVX2 level (below AVX-512) on a
 * CPU with AVX-VNNI, the feature not turned off (gemm.c) */
int rq_gemm_avxvnni_at(int isa);
/* A's rows [0, rows) as rows of Kp bytes, zero padded (gemm.c; the vpmaddubsw kernels) */
uint8_t *rq_sat16_rows(const rq_gemm_args *a, int rows, int Kp);
int rq_pack_b_rows__avx512vnni(rq_packed_b *pb, const uint8_t *B, ptrdiff_t b_rs, int nthreads)
    __attribute__((weak));
/* one 64-column group's k-groups [g0, g1) (pb->N <= 64; gemm_avx512vnni.c): column sums
 * accumulated in cs[64], stored into pb->csum by the step ending at Kp / 4 */
void rq_pack_b_group_step__avx512vnni(rq_packed_b *pb, const uint8_t *B, ptrdiff_t b_rs, int g0, int g1,
                                      int32_t *cs) __attribute__((weak));
/* the same bytes and column sums with AVX2 (B with a unit column stride; gemm_avx2.c) */
int rq_pack_b_rows__avx2(rq_packed_b *pb, const uint8_t *B, ptrdiff_t b_rs, int nthreads)
    __attribute__((weak));
/* 64-column groups [cg0, cg1) of pb packed in walk order (rows read across the whole range),
 * one thread; column sums into pb->csum */
int rq_pack_b_walk__avx512vnni(rq_packed_b *pb, const uint8_t *B, ptrdiff_t b_rs, int cg0, int cg1)
    __attribute__((weak));
/* conv weights w[co, ci, t] (N x Cin x KK bytes) straight into pb (K = KK*Cp, k = t*Cp + ci; the
 * channels from Cin to Cp as zero weights).  Needs Cp % 4 == 0, KK <= 16; RQ_EARG otherwise. */
int rq_pack_conv_w__avx512vnni(rq_packed_b *pb, const uint8_t *w, int Cin, int Cp, int KK, int nthreads)
    __attribute__((weak));
/* VNNI: A packed as rows of Kp bytes (A_used), raw sums for rows [0, M), all columns. */
int rq_gemm_vnni__avx512vnni(const rq_gemm_args *a, const rq_packed_b *pb, const rq_epi *e,
                             int nthreads) __attribute__((weak));
int rq_gemv_vnni__avx512vnni(const rq_gemm_args *a, const rq_epi *e, int32_t *csum_out,
                             int nthreads) __attribute__((weak));
int rq_gemv_vnni_sa__avx512vnni(const rq_gemm_args *a, const rq_epi *e, int nthreads)
    __attribute__((weak));
int rq_gemv_vnni_sa2__avx512vnni(const rq_gemm_args *a, const rq_epi *e, int nthreads)
    __attribute__((weak));
void rq_gemv_split_a__avx512vnni(const uint8_t *src, int K, int a_signed, int32_t zi, int8_t *d0,
                                 int8_t *d1, int32_t *sum, int32_t *hi, int *rest)
    __attribute__((weak));
/* AMX: A operand described by tiles: row block ib (16 rows) and k chunk kc start at
 * abase + ib*a_ib_stride + koff[kc], rows a_tile_stride bytes apart. */
typedef struct rq_amx_a {
    const uint8_t *abase; ptrdiff_t a_ib_stride; const int64_t *koff; ptrdiff_t a_tile_stride;
    int a_signed; int nib;  /* number of 16-row blocks */
    /* lazy copy (row-major A whose rows are not whole cache lines): rows lazy + i*lazy_rs, true
     * M x K; each task copies its 32-row strip into a tile-packed L1 buffer ([2][nkc][16][64],
     * koff = kc*1024) right before using it, instead of a whole-A copy through L2 */
    const uint8_t *lazy; ptrdiff_t lazy_rs; int lazy_M, lazy_K;
} rq_amx_a;
int rq_gemm_amx__amx(const rq_amx_a *A, const rq_packed_b *pb, const rq_epi *e, int nthreads)
    __attribute__((weak));
/* AMX GEMM on a plain row-major B (unit column stride): each 64-column group of B (the first
 * one narrower when B's rows all start 16/32/48 bytes past a cache line, so that the others
 * read whole lines) is packed (VNNI-4, raw for a uint8 B, its column sums into csum + c0)
 * into a small buffer right
 * before every 32-row strip of A (streamed with the non-temporal tile load) multiplies it, so
 * packed B never makes a round trip through L2.  prep(ctx, c0, n, eb) fills the column
 * corrections of columns [c0, c0 + n) from csum and sets *eb to e restricted to them (tasks call
 * it for disjoint columns).  One task per thread, each a contiguous run of groups with buffers of
 * its own; a lazy A is copied whole by each task.  K <= 4096. */
typedef void (*rq_cols_prep_fn)(void *ctx, int c0, int n, rq_epi *eb);
int rq_gemm_amx_plain__amx(const rq_amx_a *A, const uint8_t *B, ptrdiff_t b_rs, int K, int N,
                           int b_signed, int32_t *csum, rq_cols_prep_fn prep, void *ctx,
                           int nthreads) __attribute__((weak));
/* VNNI GEMM on a plain row-major B (unit column stride) read in place, no packing pass: 64
 * columns at a time, 6 rows of A_used (ap, rows lda apart, K bytes then zeros up to a multiple
 * of 4) at a time; e: the call's epilogue (prep gives each chunk's); csum (NULL: not wanted) gets B_used's column sums, chunk by chunk, before
 * prep(ctx, c0, n, eb) is called for the chunk's columns and its epilogue runs. */
int rq_gemm_vnni_plain__avx512vnni(const uint8_t *ap, ptrdiff_t lda, const rq_gemm_args *a, const rq_epi *e,
                                   int32_t *csum, rq_cols_prep_fn prep, void *ctx, int nthreads)
    __attribute__((weak));
/* The same driver with each 64-column group packed by pack(pctx, blk, c0) (blk: the group's
 * buffer, K, N = its width, b_signed, b_raw = !b_signed; csum = the caller's csum + c0) instead
 * of from a row-major B: conv weights packed group by group stay in L1 / L2 (no K limit). */
typedef int (*rq_pack_blk_fn)(void *pctx, rq_packed_b *blk, int c0);
int rq_gemm_amx_plainf__amx(const rq_amx_a *A, rq_pack_blk_fn pack, void *pctx, int K, int N,
                            int b_signed, int32_t *csum, rq_cols_prep_fn prep, void *ctx,
                            int nthreads) __attribute__((weak));
/* AMX GEMM on a plain row-major B with few rows, by K slabs: the slab of kb rows of B (a multiple
 * of 64; whole rows, read sequentially) is packed in walk order and multiplied by every strip of
 * A, the raw sums accumulated in R (nib*16 rows, ldr int32 apart, Np = N rounded to 16 columns
 * at least, plus 16 more for the pair kernels) and the column sums of the whole B in csum (Np).
 * Threads split each slab's 64-column groups. */
int rq_gemm_amx_kslab__amx(const rq_amx_a *A, const uint8_t *B, ptrdiff_t b_rs, int K, int N, int b_signed,
                           int kb, int32_t *csum, int32_t *R, int ldr, int nthreads) __attribute__((weak));
/* the same on a packed B (pb; B, b_rs, csum unused): its K slabs read in place */
int rq_gemm_amx_kslabp__amx(const rq_amx_a *A, const uint8_t *B, ptrdiff_t b_rs, const rq_packed_b *pb, int K,
                            int N, int b_signed, int kb, int32_t *csum, int32_t *R, int ldr, int nthreads)
    __attribute__((weak));
/* e restricted to the columns [c0, c0 + n) (gemm.c) */
void rq_epi_shift_cols(rq_epi *d, const rq_epi *e, int c0, int n);
int rq_dwconv__avx512(const rq_conv_args *a, int nthreads) __attribute__((weak));
int rq_dwconv_nhwc__avx512(const rq_conv_args *a, int nthreads) __attribute__((weak));
int rq_dwconv_nhwc_dp__avx512vnni(const rq_conv_args *a, int nthreads) __attribute__((weak));
int rq_dwconv_nhwc__avx2(const rq_conv_args *a, int nthreads) __attribute__((weak));
int rq_dwconv__avx2(const rq_conv_args *a, int nthreads) __attribute__((weak));
/* vpdpbusd depthwise on ymm (conv_avx2.c): sw 1, dw 1, KW <= 4, KH <= 16, int8 w with w_zp 0 */
int rq_dwconv_dp__avxvnni(const rq_conv_args *a, int nthreads) __attribute__((weak));
int rq_dwconv_dp__avx512vnni(const rq_conv_args *a, int nthreads) __attribute__((weak));

#ifdef __cplusplus
}
#endif
#endif
