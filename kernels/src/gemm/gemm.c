/* gemm.c -- portable part of the integer GEMM: driver, packing, scalar kernels and epilogue.
 * Compiled without ISA flags; the per-ISA units are reached through weak symbols and only when
 * rq_isa_level() allows.  See rq_gemm.h for the semantics. */
#include "rq_gemm.h"
#include "../common/rq_cpu.h"
#include "../common/rq_pool.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#if defined(_OPENMP)
#include <omp.h>
#endif

static const char *const KNAMES[RQ_K_COUNT] = {
    "gemm_s32__scalar", "gemm_u8s8_sat16__scalar", "gemm_i16__avx2", "gemm_vnni4__avx512vnni",
    "gemv_vnni4__avx512vnni", "gemm_tdp__amx", "dwconv__scalar", "dwconv__avx512",
    "conv_implicit_tdp__amx", "gemm_u8s8_sat16__avx2", "dwconv_dpbusd__avx512vnni", "gemm_i16__avx512",
    "conv_rows_tdp__amx", "gemm_u8s8_sat16__avx512", "gemm_u8s8_sat16__avx512vnni",
    "conv_implicit_vnni4__avx512vnni", "gemm_vnni4__avxvnni", "dwconv__avx2", "gemv_vnni4__avxvnni", "gemv_i16__avx2",
    "dwconv_dpbusd__avxvnni", "dwconv_nhwc__avx512", "dwconv_nhwc_dpbusd__avx512vnni",
    "dwconv_nhwc__avx2", "gemm_vnni4_plain__avx512vnni",
};

/* rq_gemm.h: A's rows [0, rows) as rows of Kp bytes (its raw values, zero past M and past K),
 * for the vpmaddubsw kernels; NULL when out of memory */
uint8_t *rq_sat16_rows(const rq_gemm_args *a, int rows, int Kp) {
    uint8_t *ap = (uint8_t *)rq_aligned_alloc((size_t)rows * Kp);
    if (!ap) return NULL;
    for (int i = 0; i < rows; i++) {
        uint8_t *d = ap + (size_t)i * Kp;
        memset(d, 0, Kp);
        if (i >= a->M) continue;
        const uint8_t *s = a->A + (ptrdiff_t)i * a->a_rs;
        if (a->a_cs == 1) memcpy(d, s, (size_t)a->K);
        else for (int k = 0; k < a->K; k++) d[k] = s[(ptrdiff_t)k * a->a_cs];
    }
    return ap;
}

const char *rq_gemm_kernel_name(int k) { return (k >= 0 && k < RQ_K_COUNT) ? KNAMES[k] : "none"; }

/* ---- scratch allocation with a small per-thread cache of freed blocks ----
 * Kernels allocate their packing / output scratch per call.  Large blocks (>= 64 KiB) freed by
 * a thread are kept (up to 8 blocks, 128 MiB) and handed back to the next allocation of that
 * thread that fits, so repeated calls do not pay mmap/munmap and first-touch page faults;
 * smaller ones likewise (up to 16), so they do not pay malloc's bookkeeping.  The
 * cache dies with its thread (pthread key destructor).  Contents are never assumed zero. */
#define RQ_HDR 64
#define RQ_CACHE_MIN ((size_t)65536)
#define RQ_CACHE_MAX_TOTAL ((size_t)128 << 20)
#if defined(__SANITIZE_ADDRESS__)   /* GCC's -fsanitize=address */
#define RQ_NO_SCRATCH_CACHE 1   /* AddressSanitizer: every block its own allocation, sized as asked */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)   /* clang's */
#define RQ_NO_SCRATCH_CACHE 1
#endif
#endif
#ifndef RQ_NO_SCRATCH_CACHE
#define RQ_NO_SCRATCH_CACHE 0
#endif
#define RQ_SCACHE_N 16   /* blocks under RQ_CACHE_MIN kept too, at most 16 (1 MiB) */
typedef struct { void *blk[8]; size_t cap[8]; int n; size_t total;
                 void *sblk[RQ_SCACHE_N]; size_t scap[RQ_SCACHE_N]; int sn; } rq_cache;
static pthread_key_t rq_cache_key;
static pthread_once_t rq_cache_once = PTHREAD_ONCE_INIT;
static void rq_cache_destroy(void *p) {
    rq_cache *c = (rq_cache *)p;
    if (!c) return;
    for (int i = 0; i < c->n; i++) free(c->blk[i]);
    for (int i = 0; i < c->sn; i++) free(c->sblk[i]);
    free(c);
}
static void rq_cache_init(void) { pthread_key_create(&rq_cache_key, rq_cache_destroy); }
static rq_cache *rq_cache_get(void) {
    pthread_once(&rq_cache_once, rq_cache_init);
    rq_cache *c = (rq_cache *)pthread_getspecific(rq_cache_key);
    if (!c) {
        c = (rq_cache *)calloc(1, sizeof(rq_cache));
        if (c && pthread_setspecific(rq_cache_key, c) != 0) { free(c); c = NULL; }
    }
    return c;
}

/* the best fit (the smallest block of at least n bytes) taken out of a list of kept blocks, or
 * NULL; *total (if given) less its size */
static void *cache_take(void **blk, size_t *cap, int *cnt, size_t n, size_t *total) {
    int best = -1;
    for (int i = 0; i < *cnt; i++)
        if (cap[i] >= n && (best < 0 || cap[i] < cap[best])) best = i;
    if (best < 0) return NULL;
    void *raw = blk[best];
    if (total) *total -= cap[best];
    (*cnt)--;
    blk[best] = blk[*cnt]; cap[best] = cap[*cnt];
    return raw;
}

void *rq_aligned_alloc(size_t n) {
    void *raw = NULL;
    n = (n + 63) & ~(size_t)63;
    if (n == 0) n = 64;
    if (n >= RQ_CACHE_MIN && !RQ_NO_SCRATCH_CACHE) {
        rq_cache *c = rq_cache_get();
        if (c && (raw = cache_take(c->blk, c->cap, &c->n, n, &c->total)) != NULL) return (char *)raw + RQ_HDR;
    } else if (!RQ_NO_SCRATCH_CACHE) {
        /* small blocks: the best fit among the thread's kept ones (posix_memalign and free of
         * each kernel's few small scratch blocks per call cost glibc's fastbin consolidation:
         * 15% of a small depthwise call's time) */
        rq_cache *c = rq_cache_get();
        if (c && (raw = cache_take(c->sblk, c->scap, &c->sn, n, NULL)) != NULL) return (char *)raw + RQ_HDR;
    }
    if (posix_memalign(&raw, 64, n + RQ_HDR) != 0) return NULL;
    *(size_t *)raw = n;
    return (char *)raw + RQ_HDR;
}

void rq_aligned_free(void *p) {
    if (!p) return;
    void *raw = (char *)p - RQ_HDR;
    size_t cap = *(size_t *)raw;
    if (cap >= RQ_CACHE_MIN && cap <= RQ_CACHE_MAX_TOTAL && !RQ_NO_SCRATCH_CACHE) {
        rq_cache *c = rq_cache_get();
        if (c) {
            if (c->n == 8 || c->total + cap > RQ_CACHE_MAX_TOTAL) {   /* evict the smallest */
                int sm = -1;
                for (int i = 0; i < c->n; i++) if (sm < 0 || c->cap[i] < c->cap[sm]) sm = i;
                if (sm >= 0 && c->cap[sm] < cap) {
                    free(c->blk[sm]); c->total -= c->cap[sm];
                    c->n--; c->blk[sm] = c->blk[c->n]; c->cap[sm] = c->cap[c->n];
                }
            }
            if (c->n < 8 && c->total + cap <= RQ_CACHE_MAX_TOTAL) {
                c->blk[c->n] = raw; c->cap[c->n] = cap; c->n++; c->total += cap;
                return;
            }
        }
    } else if (cap < RQ_CACHE_MIN && !RQ_NO_SCRATCH_CACHE) {
        rq_cache *c = rq_cache_get();
        if (c && c->sn < RQ_SCACHE_N) {
            c->sblk[c->sn] = raw; c->scap[c->sn] = cap; c->sn++;
            return;
        }
    }
    free(raw);
}

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }
static inline int rup(int x, int m) { return (x + m - 1) / m * m; }

/* ------------------------------------------------------------------ packing */

size_t rq_packed_b_nbytes(const rq_packed_b *pb) {
    return pb ? (size_t)pb->Kp * pb->Np + sizeof(int32_t) * (size_t)pb->Np : 0;
}

void rq_packed_b_free(rq_packed_b *pb) {
    if (!pb) return;
    rq_aligned_free(pb->data);
    rq_aligned_free(pb->csum);
    free(pb);
}

static rq_packed_b *pb_alloc(int K, int N, int b_signed) {
    rq_packed_b *pb = (rq_packed_b *)calloc(1, sizeof(rq_packed_b));
    if (!pb) return NULL;
    pb->K = K; pb->N = N; pb->Kp = rup(K > 0 ? K : 1, 64); pb->Np = rup(N > 0 ? N : 1, 16);
    pb->b_signed = b_signed;
    pb->data = (uint8_t *)rq_aligned_alloc((size_t)pb->Kp * pb->Np);
    pb->csum = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)pb->Np);
    if (!pb->data || !pb->csum) { rq_packed_b_free(pb); return NULL; }
    return pb;
}

/* generic packing: B_used[k, n] = B[k, n] ^ (b_signed ? 0 : 0x80), zero padding */
static void pack_b_generic(rq_packed_b *pb, const uint8_t *B, ptrdiff_t b_rs, ptrdiff_t b_cs) {
    const int K = pb->K, N = pb->N, Kp = pb->Kp, Np = pb->Np;
    const uint8_t x = (pb->b_signed || pb->b_raw) ? 0 : 0x80;
    memset(pb->data, 0, (size_t)Kp * Np);
    for (int n = 0; n < Np; n++) pb->csum[n] = 0;
    for (int n = 0; n < N; n++) {
        uint8_t *panel = pb->data + (size_t)(n / 16) * Kp * 16 + (n % 16) * 4;
        uint32_t s = 0;
        for (int k = 0; k < K; k++) {
            uint8_t v = B[k * b_rs + n * b_cs] ^ x;
            panel[(k / 4) * 64 + (k % 4)] = v;
            s += pb->b_raw ? (uint32_t)v : (uint32_t)(int32_t)(int8_t)v;
        }
        pb->csum[n] = (int32_t)s;
    }
}

static rq_packed_b *pack_b_mode(const uint8_t *B, ptrdiff_t b_rs, ptrdiff_t b_cs, int K, int N,
                                int b_signed, int raw, int isa, int nthreads) {
    rq_packed_b *pb = pb_alloc(K, N, b_signed);
    if (!pb) return NULL;
    pb->b_raw = raw && !b_signed;
    if (isa < 0 || isa > rq_isa_level()) isa = rq_isa_level();   /* never above the CPU */
    if (nthreads <= 0) nthreads = rq_num_threads();
    if (b_cs == 1 && isa >= RQ_ISA_AVX512VNNI && rq_pack_b_rows__avx512vnni)
        rq_pack_b_rows__avx512vnni(pb, B, b_rs, nthreads);
    else if (b_cs == 1 && !pb->b_raw && isa >= RQ_ISA_AVX2 && rq_pack_b_rows__avx2)
        rq_pack_b_rows__avx2(pb, B, b_rs, nthreads);
    else
        pack_b_generic(pb, B, b_rs, b_cs);
    return pb;
}

rq_packed_b *rq_pack_b(const uint8_t *B, ptrdiff_t b_rs, ptrdiff_t b_cs, int K, int N, int b_signed,
                       int isa, int nthreads) {
    return pack_b_mode(B, b_rs, b_cs, K, N, b_signed, 0, isa, nthreads);
}

void rq_transpose_u8__avx512(const uint8_t *src, ptrdiff_t ss, uint8_t *dst, ptrdiff_t ds, int rows,
                             int cols) __attribute__((weak));

static rq_packed_b *pack_conv_w_staged(const uint8_t *w, int Cout, int Cin, int KH, int KW, int w_signed,
                                       int isa, int nthreads) {
    /* B[k, co] with k = (kh*KW + kw)*Cin + ci  ->  w[co, ci, kh, kw] */
    const int K = Cin * KH * KW, KK = KH * KW;
    if (isa >= RQ_ISA_AVX512VNNI && rq_transpose_u8__avx512 && rq_pack_b_rows__avx512vnni) {
        /* vectorised: w as [Cout][Cin*KK] -> [Cin*KK][Cout] (one transpose of whole 16x16
         * blocks), its rows (ci, kh, kw) reordered to (kh, kw, ci) (= B as a row-major K x Cout
         * matrix), then the VNNI-4 packer (the same bytes and column sums as the loop below;
         * measured 3x3 64->64: about 60 -> 5 us; a transpose over the KK axis first, in
         * 9-column edge blocks: 6.7 us) */
        uint8_t *t1 = KK > 1 ? (uint8_t *)rq_aligned_alloc((size_t)K * Cout) : NULL;
        uint8_t *bm = (uint8_t *)rq_aligned_alloc((size_t)K * Cout);
        rq_packed_b *pb = NULL;
        if (bm && (KK == 1 || t1)) {
            if (KK > 1) {
                rq_transpose_u8__avx512(w, (ptrdiff_t)K, t1, Cout, Cout, K);
                for (int p = 0; p < KK; p++)
                    for (int ci = 0; ci < Cin; ci++)
                        memcpy(bm + ((size_t)p * Cin + ci) * Cout, t1 + ((size_t)ci * KK + p) * Cout, (size_t)Cout);
            } else {
                rq_transpose_u8__avx512(w, Cin, bm, Cout, Cout, Cin);
            }
            pb = pb_alloc(K, Cout, w_signed);
            if (pb) rq_pack_b_rows__avx512vnni(pb, bm, Cout, nthreads > 0 ? nthreads : 1);
        }
        rq_aligned_free(t1); rq_aligned_free(bm);
        return pb;
    }
    rq_packed_b *pb = pb_alloc(K, Cout, w_signed);
    if (!pb) return NULL;
    const uint8_t x = w_signed ? 0 : 0x80;
    memset(pb->data, 0, (size_t)pb->Kp * pb->Np);
    for (int n = 0; n < pb->Np; n++) pb->csum[n] = 0;
    for (int co = 0; co < Cout; co++) {
        uint8_t *panel = pb->data + (size_t)(co / 16) * pb->Kp * 16 + (co % 16) * 4;
        uint32_t s = 0;
        for (int kh = 0; kh < KH; kh++)
            for (int kw = 0; kw < KW; kw++)
                for (int ci = 0; ci < Cin; ci++) {
                    int k = (kh * KW + kw) * Cin + ci;
                    uint8_t v = w[(((size_t)co * Cin + ci) * KH + kh) * KW + kw] ^ x;
                    panel[(k / 4) * 64 + (k % 4)] = v;
                    s += (uint32_t)(int32_t)(int8_t)v;
                }
        pb->csum[co] = (int32_t)s;
    }
    return pb;
}

rq_packed_b *rq_pack_conv_w_pad(const uint8_t *w, int Cout, int Cin, int Cp, int KH, int KW, int w_signed,
                                int isa, int nthreads) {
    const int KK = KH * KW;
    if (isa < 0 || isa > rq_isa_level()) isa = rq_isa_level();   /* never above the CPU */
    if (nthreads <= 0) nthreads = rq_num_threads();
    if (Cp < Cin) return NULL;
    if (isa >= RQ_ISA_AVX512VNNI && rq_pack_conv_w__avx512vnni && Cp % 4 == 0 && KK <= 16) {
        rq_packed_b *pb = pb_alloc(KK * Cp, Cout, w_signed);
        if (!pb) return NULL;
        if (rq_pack_conv_w__avx512vnni(pb, w, Cin, Cp, KK, nthreads) == RQ_OK) return pb;
        rq_packed_b_free(pb);   /* no AVX512_VBMI: the staged packer below */
    }
    if (Cp == Cin) return pack_conv_w_staged(w, Cout, Cin, KH, KW, w_signed, isa, nthreads);
    /* (Cout, Cp, KH, KW) with zero weights for the extra channels */
    const size_t KKs = (size_t)KK;
    uint8_t *wpad = (uint8_t *)rq_aligned_alloc((size_t)Cout * Cp * KKs);
    if (!wpad) return NULL;
    memset(wpad, 0, (size_t)Cout * Cp * KKs);
    for (int co = 0; co < Cout; co++)
        memcpy(wpad + (size_t)co * Cp * KKs, w + (size_t)co * Cin * KKs, (size_t)Cin * KKs);
    rq_packed_b *pb = pack_conv_w_staged(wpad, Cout, Cp, KH, KW, w_signed, isa, nthreads);
    rq_aligned_free(wpad);
    return pb;
}

rq_packed_b *rq_pack_conv_w(const uint8_t *w, int Cout, int Cin, int KH, int KW, int w_signed,
                            int isa, int nthreads) {
    return rq_pack_conv_w_pad(w, Cout, Cin, Cin, KH, KW, w_signed, isa, nthreads);
}

/* ------------------------------------------------------------------ epilogue */

static inline int32_t epi_acc(const rq_epi *e, int i, int j, int32_t raw) {
    uint32_t a = (uint32_t)raw;
    if (e->colfix) a -= (uint32_t)e->colfix[j];
    if (e->rowfix) a -= (uint32_t)e->rowfix[i];
    if (e->za_row) a -= (uint32_t)e->za_row[i] * (uint32_t)e->colterm[j];
    if (e->zb_col) a -= (uint32_t)e->zb_col[j] * (uint32_t)e->rsum[i];
    if (e->bias) a += (uint32_t)e->bias[i * e->bias_rs + j * e->bias_cs];
    return (int32_t)a;
}

/* TFLite / gemmlowp MultiplyByQuantizedMultiplier (refquant.reference.requant), int64 result */
static inline int64_t mbqm(int32_t x, int32_t qm, int shift, int mode) {
    const int left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
    if (mode == 3) {   /* single rounding: (x*qm + 2^(total-1)) >> total, wrapped to int32 */
        const int total = 31 - shift;
        const int64_t r = ((int64_t)x * qm + ((int64_t)1 << (total - 1))) >> total;
        return (int64_t)(int32_t)(uint32_t)(uint64_t)r;
    }
    const int32_t xs = left >= 32 ? 0 : (int32_t)((uint32_t)x << left);   /* wrap_int32(x << left) */
    if (mode == 1) {   /* SRDHM, then RoundingDivideByPOT (half away from zero) */
        const int64_t ab = (int64_t)xs * qm;
        const int64_t num = ab + (ab >= 0 ? ((int64_t)1 << 30) : 1 - ((int64_t)1 << 30));
        int64_t q = num >= 0 ? (num >> 31) : -((-num) >> 31);
        if (xs == INT32_MIN && qm == INT32_MIN) q = INT32_MAX;
        const int64_t mask = ((int64_t)1 << right) - 1;
        const int64_t rem = q & mask, thr = (mask >> 1) + (q < 0);
        return (q >> right) + (rem > thr);
    }
    /* double half-up (ruy x86) */
    const int64_t hh = ((int64_t)xs * qm + ((int64_t)1 << 30)) >> 31;
    const int64_t rnd = right > 0 ? ((int64_t)1 << (right - 1)) : 0;
    return (hh + rnd) >> right;
}

/* the scalar definition of the float epilogue (RNE via nearbyintf in the default mode) */
static inline int32_t epi_requant(const rq_epi *e, int i, int j, int32_t acc) {
    if (e->fx_mode) {
        const int k = e->mult_rows ? i : (e->mult_n == 1 ? 0 : j);
        int64_t r = mbqm(acc, e->fx_qm[k], e->fx_sh[k], e->fx_mode) + e->y_zp;
        return (int32_t)(r < e->qmin ? e->qmin : (r > e->qmax ? e->qmax : r));
    }
    float m = e->mult_rows ? e->mult[i] : e->mult[e->mult_n == 1 ? 0 : j];
    float af = (float)acc;
    if (e->fbias) {
        const float b = e->fbias[i * e->bias_rs + j * e->bias_cs];
        af = e->fbias_fma ? fmaf(b, e->fbias_rcp, af)   /* one rounding (fbgemm's per-tensor path) */
                          : af + b;                      /* float32 add */
    }
    if (e->od) {   /* oneDNN: the scales one by one, the zero point before rounding */
        float t = af * e->od_s1;
        t = t * m;
        if (e->fbias2) t = t + e->fbias2[i * e->bias_rs + j * e->bias_cs];
        t = t * e->od_s3;
        t = t + (float)e->y_zp;
        t = t < (float)e->qmin ? (float)e->qmin : t;
        t = t > (float)e->qmax ? (float)e->qmax : t;
        return (int32_t)nearbyintf(t);
    }
    float v = af * m;
    float lo = (float)(e->qmin - e->y_zp), hi = (float)(e->qmax - e->y_zp);
    v = v < lo ? lo : v;   /* NaN never reaches here (multipliers checked finite) */
    v = v > hi ? hi : v;
    return (int32_t)nearbyintf(v) + e->y_zp;
}

void rq_epi_rows__scalar(const rq_epi *e, int i0, int mi, int j0, int nj, const int32_t *raw,
                         ptrdiff_t ldr) {
    for (int r = 0; r < mi; r++) {
        int i = i0 + r;
        for (int c = 0; c < nj; c++) {
            int j = j0 + c;
            int32_t acc = epi_acc(e, i, j, raw[r * ldr + c]);
            ptrdiff_t o = i * e->c_rs + j * e->c_cs;
            if (e->out_type == RQ_OUT_S32) {
                ((int32_t *)e->C)[o] = acc;
            } else {
                int32_t q = epi_requant(e, i, j, acc);
                if (e->out_type == RQ_OUT_U8) ((uint8_t *)e->C)[o] = (uint8_t)q;
                else ((int8_t *)e->C)[o] = (int8_t)q;
            }
        }
    }
}

/* ------------------------------------------------------------------ scalar kernels */

static inline int32_t ld(const uint8_t *p, int sgn) { return sgn ? (int32_t)(int8_t)*p : (int32_t)*p; }

/* raw sums with zero points folded per product; rows [i0, i1) -> epilogue */
static void gemm_scalar_rows(const rq_gemm_args *a, const rq_epi *e, int i0, int i1, int32_t *row,
                             int32_t *bz) {
    const int N = a->N, K = a->K;
    for (int i = i0; i < i1; i++) {
        int32_t za = a->a_zp[a->a_zp_n == 1 ? 0 : i];
        uint32_t *acc = (uint32_t *)row;
        for (int j = 0; j < N; j++) acc[j] = 0;
        for (int k = 0; k < K; k++) {
            int32_t av = ld(a->A + i * a->a_rs + k * a->a_cs, a->a_signed) - za;
            if (av == 0) continue;
            const uint8_t *bp = a->B + k * a->b_rs;
            if (a->b_signed) {
                for (int j = 0; j < N; j++)
                    acc[j] += (uint32_t)(av * ((int32_t)(int8_t)bp[j * a->b_cs] - bz[j]));
            } else {
                for (int j = 0; j < N; j++)
                    acc[j] += (uint32_t)(av * ((int32_t)bp[j * a->b_cs] - bz[j]));
            }
        }
        rq_epi_rows__scalar(e, i, 1, 0, N, row, N);
    }
}

/* uint8 x int8 (either order) with vpmaddubsw's int16 pair saturation on the raw values; zero points through
 * row/column sums (e must carry them). */
static void gemm_sat16_rows(const rq_gemm_args *a, const rq_epi *e, int i0, int i1, int32_t *row) {
    const int N = a->N, K = a->K;
    for (int i = i0; i < i1; i++) {
        for (int j = 0; j < N; j++) {
            uint32_t s = 0;
            for (int k = 0; k < K; k += 2) {
                int32_t p = ld(a->A + i * a->a_rs + k * a->a_cs, a->a_signed) *
                            ld(a->B + k * a->b_rs + j * a->b_cs, a->b_signed);
                if (k + 1 < K)
                    p += ld(a->A + i * a->a_rs + (k + 1) * a->a_cs, a->a_signed) *
                         ld(a->B + (k + 1) * a->b_rs + j * a->b_cs, a->b_signed);
                p = p > 32767 ? 32767 : (p < -32768 ? -32768 : p);
                s += (uint32_t)p;
            }
            row[j] = (int32_t)s;
        }
        rq_epi_rows__scalar(e, i, 1, 0, N, row, N);
    }
}

/* ------------------------------------------------------------------ driver */

typedef struct {
    int32_t *colfix, *rowfix, *colterm, *rsum, *za_row, *zb_col;
} epi_bufs;

static void epi_free(epi_bufs *b) {
    rq_aligned_free(b->colfix); rq_aligned_free(b->rowfix); rq_aligned_free(b->colterm);
    rq_aligned_free(b->rsum); rq_aligned_free(b->za_row); rq_aligned_free(b->zb_col);
    memset(b, 0, sizeof(*b));
}

static void epi_base(rq_epi *e, const rq_gemm_args *a) {
    memset(e, 0, sizeof(*e));
    e->M = a->M; e->N = a->N; e->K = a->K;
    e->bias = a->bias; e->bias_rs = a->bias_rs; e->bias_cs = a->bias_cs; e->fbias = a->fbias;
    e->fbias_fma = a->fbias_fma; e->fbias_rcp = a->fbias_rcp;
    e->od = a->od; e->od_s1 = a->od_s1; e->od_s3 = a->od_s3; e->fbias2 = a->fbias2;
    e->fx_mode = a->fx_mode; e->fx_qm = a->fx_qm; e->fx_sh = a->fx_sh;
    e->mult = a->mult; e->mult_n = a->mult_n; e->mult_rows = a->mult_rows; e->y_zp = a->y_zp;
    e->out_type = a->out_type; e->C = a->C; e->c_rs = a->c_rs; e->c_cs = a->c_cs;
    e->qmin = a->out_type == RQ_OUT_U8 ? 0 : -128;
    e->qmax = a->out_type == RQ_OUT_U8 ? 255 : 127;
}

/* the column terms for columns [j0, j1): colterm, and colfix when a_zero_point is per tensor
 * (epi_corrections fills every column when it has csum; the drivers that pack B just in time
 * call this per column group) */
static void epi_fill_cols(epi_bufs *bf, const rq_gemm_args *a, int da, int db, const int32_t *csum,
                          int j0, int j1) {
    const uint32_t K = (uint32_t)a->K;
    if (!bf->colterm) return;
    /* constants hoisted and restrict pointers, so the loops vectorize (the plain-B driver calls
     * this once per 64-column group: a scalar loop reloading b_zp cost about 1 us at
     * 128x768x768) */
    int32_t *restrict ct = bf->colterm;
    if (a->b_zp_n == 1) {
        const uint32_t kz = K * (uint32_t)(a->b_zp[0] + db);
        for (int j = j0; j < j1; j++) ct[j] = (int32_t)((uint32_t)csum[j] - kz);
    } else {
        const int32_t *restrict bz = a->b_zp;
        for (int j = j0; j < j1; j++) ct[j] = (int32_t)((uint32_t)csum[j] - K * (uint32_t)(bz[j] + db));
    }
    if (bf->colfix) {
        const uint32_t za = (uint32_t)(a->a_zp[0] + da);
        int32_t *restrict cf = bf->colfix;
        for (int j = j0; j < j1; j++) cf[j] = (int32_t)(za * (uint32_t)ct[j]);
    }
}

/* Fill the correction terms for raw sums of (A + da) x (B + db) with the given rsum / csum.
 * za_u = za + da, zb_u = zb + db. rsum may be NULL when every zb_u is 0. */
static int epi_corrections(rq_epi *e, epi_bufs *bf, const rq_gemm_args *a, int da, int db,
                           const int32_t *rsum, const int32_t *csum) {
    const int M = a->M, N = a->N;
    int za_any = 0, zb_any = 0;
    for (int i = 0; i < a->a_zp_n; i++) za_any |= (a->a_zp[i] + da) != 0;
    for (int j = 0; j < a->b_zp_n; j++) zb_any |= (a->b_zp[j] + db) != 0;
    if (za_any) {
        bf->colterm = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)(N + 16));
        if (!bf->colterm) return RQ_ENOMEM;
        if (a->a_zp_n == 1) {
            bf->colfix = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)(N + 16));
            if (!bf->colfix) return RQ_ENOMEM;
            e->colfix = bf->colfix;
        }
        if (csum) epi_fill_cols(bf, a, da, db, csum, 0, N);   /* colterm, and colfix if any */
        if (a->a_zp_n != 1) {
            bf->za_row = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)(M + 16));
            if (!bf->za_row) return RQ_ENOMEM;
            for (int i = 0; i < M; i++) bf->za_row[i] = a->a_zp[i] + da;
            e->za_row = bf->za_row; e->colterm = bf->colterm;
        }
    }
    if (zb_any) {
        if (a->b_zp_n == 1) {
            bf->rowfix = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)(M + 16));
            if (!bf->rowfix) return RQ_ENOMEM;
            uint32_t zb = (uint32_t)(a->b_zp[0] + db);
            for (int i = 0; i < M; i++) bf->rowfix[i] = (int32_t)(zb * (uint32_t)rsum[i]);
            e->rowfix = bf->rowfix;
        } else {
            bf->zb_col = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)(N + 16));
            if (!bf->zb_col) return RQ_ENOMEM;
            for (int j = 0; j < N; j++) bf->zb_col[j] = a->b_zp[j] + db;
            e->zb_col = bf->zb_col; e->rsum = rsum;
        }
    }
    return RQ_OK;
}


/* e restricted to columns [c0, c0 + n): pointers shifted so that column c0 is column 0 */
static void epi_shift_cols(rq_epi *d, const rq_epi *e, int c0, int n) {
    *d = *e;
    d->N = n;
    if (e->colfix) d->colfix = e->colfix + c0;
    if (e->colterm) d->colterm = e->colterm + c0;
    if (e->zb_col) d->zb_col = e->zb_col + c0;
    if (e->bias) d->bias = e->bias + (ptrdiff_t)c0 * e->bias_cs;
    if (e->fbias) d->fbias = e->fbias + (ptrdiff_t)c0 * e->bias_cs;
    if (e->fbias2) d->fbias2 = e->fbias2 + (ptrdiff_t)c0 * e->bias_cs;
    if (e->mult && e->mult_n != 1 && !e->mult_rows) d->mult = e->mult + c0;
    if (e->fx_mode && e->mult_n != 1 && !e->mult_rows) {   /* fixed point: indexed like mult */
        d->fx_qm = e->fx_qm + c0;
        d->fx_sh = e->fx_sh + c0;
    }
    d->C = (char *)e->C + (ptrdiff_t)c0 * e->c_cs *
           (e->out_type == RQ_OUT_S32 ? (ptrdiff_t)sizeof(int32_t) : (ptrdiff_t)1);
}

void rq_epi_shift_cols(rq_epi *d, const rq_epi *e, int c0, int n) { epi_shift_cols(d, e, c0, n); }

/* B packed just in time, one column block at a time, when it is larger than this (bytes of
 * packed B): the block (<= RQ_AMX_BLOCK_BYTES) stays in L2 between its packing and its use */
#ifndef RQ_PACKA_MT_MIN
#define RQ_PACKA_MT_MIN ((size_t)131072)   /* A bytes above which its copy uses the threads (measured at 2 threads: 512^3 88 -> 85 us, 1024^3 630 -> 590 us) */
#endif
#ifndef RQ_JIT_THREADS_MAX_M
#define RQ_JIT_THREADS_MAX_M 256
#endif
/* B packed whole up to half the L2, else just in time in blocks of half the L2 (measured on a
 * 2 MiB L2: 1 MiB blocks instead of 512 KiB, 2048^3 plain B 7.66 -> 6.79 ms, 1024^3 797 -> 783 us) */
#ifndef RQ_JIT_MIN_BYTES
#define RQ_JIT_MIN_BYTES ((size_t)rq_l2_bytes() / 2)
#endif
#ifndef RQ_AMX_BLOCK_BYTES
#define RQ_AMX_BLOCK_BYTES ((size_t)rq_l2_bytes() / 2)
#endif

#ifndef RQ_AMX_PLAIN_MAX_M
#define RQ_AMX_PLAIN_MAX_M 256
#endif
/* 0: never the 64-column plain-B AMX driver (benchmarks compare the two paths in one process) */
int rq_amx_plain_on = 1;
int rq_amx_kslab_on = 1;
/* VNNI GEMM on a plain B without packing (gemm_vnni_plain): REFQUANT_VNNI_PLAIN=0 or
 * rq_set_vnni_plain(0) turns it off (the GEMV, or B packed and the packed kernel, as before
 * session 27), for measurements and for the tests of those kernels; rq_set_vnni_plain(-1) goes
 * back to the environment's setting */
static volatile int vnni_plain_mode = -1;
void rq_set_vnni_plain(int on) { vnni_plain_mode = on < 0 ? -1 : on != 0; }
static int vnni_plain_on(void) {
    int m = vnni_plain_mode;
    if (m < 0) {
        const char *v = getenv("REFQUANT_VNNI_PLAIN");
        m = !(v && v[0] == '0' && !v[1]);
    }
    return m;
}
#ifndef RQ_VNNI_PLAIN_MIN_M
#define RQ_VNNI_PLAIN_MIN_M 2   /* 1 row: even with the GEMV (1 x 768 x 768 6.6-6.8 -> 6.2-6.7 us) */
#endif
#ifndef RQ_VNNI_PLAIN_MAX_M
#define RQ_VNNI_PLAIN_MAX_M 160   /* x 768 x 768, Zen 5, 1 thread, fresh processes alternating, us,
    packed kernel -> this: 64 rows 87-90 -> 81-83, 128 162-170 -> 162, 192 234-243 -> 236-244,
    256 311-322 -> 312-323; 2 threads: 64 rows 46 -> 44, 128 85 -> 85, 192 121 -> 128 */
#endif
/* B's rows a multiple of 16 cache lines apart map a chunk's lines to few cache sets: the no-packing
 * kernel re-reads them for every 6 rows of A (Zen 5, 1 thread, against packing: 32 x 4096 x 4096
 * 2.5 -> 8.6 ms, 64 x 1024 x 1024 168 -> 208 us, 32 x 2048 x 256 54 -> 61 us; row strides of
 * 640, 768, 1536 bytes gained) */
static int vnni_plain_b_ok(const rq_gemm_args *a) {
    /* rows not whole cache lines apart: most 64-byte row loads would straddle two lines (the 1x1
     * conv 512 -> 128 at 28 x 28, B rows 784 bytes apart: 120-123 -> 136-137 us) */
    const ptrdiff_t rs = a->b_rs;
    if (rs <= 0 || rs % 64) return 0;
    ptrdiff_t l = rs / 64, g = 1;
    while (g < 64 && l % (2 * g) == 0) g *= 2;   /* the power of 2 in the line stride, up to 64 */
    if (g > 8) return 0;
    /* a column chunk (K lines, in g times as many L2 sets' worth as they would take at a stride of
     * odd lines) and all of A stay in half the L2 while every row block re-reads the chunk:
     * B's size does not matter, it is read once (Zen 5, 1 thread, against packing: 64 x 3136 x
     * 256 127 -> 115 us, 32 x 4160 x 4096 2.22 -> 1.65 ms, 128 x 2240 x 768 470 -> 460 us; over
     * the limit, 64 x 11008 x 4096 10.5 -> 15.2 ms) */
    return (size_t)a->K * ((size_t)a->M + 64 * (size_t)g) <= (size_t)rq_l2_bytes() / 2;
}
   /* (a switch for in-process A/B measurements) */

/* minimum M for the AMX path and maximum M for the GEMV path (tuned by measurement) */
#ifndef RQ_GEMV_MAX_M
#define RQ_GEMV_MAX_M 8   /* plain B with up to 8 rows: the register-blocked VNNI GEMV (also under AMX) */
#endif
#ifndef RQ_GEMV_SA
#define RQ_GEMV_SA 1      /* 0: A's zero point always through B's column sums (A/B measurements) */
#endif
#ifndef RQ_GEMV_SA2
#define RQ_GEMV_SA2 1     /* 0: rows whose A - za does not fit int8 through B's column sums */
#endif
#ifndef RQ_GEMV_MT_PACK_M
#define RQ_GEMV_MT_PACK_M 6   /* see rq_gemm_choose */
#endif
#ifndef RQ_AMX_MIN_M
#define RQ_AMX_MIN_M 5
#endif

int rq_gemm_avxvnni_at(int isa) {
    return isa == RQ_ISA_AVX2 && rq_gemm_vnni__avxvnni && rq_cpu_feature(RQ_FEAT_AVXVNNI);
}

int rq_gemm_choose(const rq_gemm_args *a) {
    int isa = a->isa < 0 ? rq_isa_level() : imin(a->isa, rq_isa_level());
    if (a->ia) return RQ_K_VNNI;   /* the caller checked the ISA (rq_gemm_run checks again) */
    if (a->sat16 && a->a_signed != a->b_signed)
        return (isa >= RQ_ISA_AVX512VNNI && rq_gemm_sat16__avx512vnni) ? RQ_K_VNNI_SAT16
             : (isa >= RQ_ISA_AVX512 && rq_gemm_sat16__avx512) ? RQ_K_AVX512_SAT16
             : (isa >= RQ_ISA_AVX2 && rq_gemm_sat16__avx2) ? RQ_K_AVX2_SAT16 : RQ_K_SCALAR_SAT16;
    /* plain B, few rows: the register-blocked GEMV; from RQ_AMX_MIN_M rows on at several threads
     * with B in half the L2, the AMX driver (2 threads, 8 x 768 x 768: 18-20 against 25 us);
     * without AMX, from RQ_GEMV_MT_PACK_M rows on at several threads with B in the L2, B packed
     * (by both threads) and the VNNI GEMM (Zen 5, 2 threads, fresh processes alternating, median
     * of six: 8 x 768 x 768 24 -> 14 us, 7 x 768 x 768 22 -> 16, 6 x 768 x 768 19 -> 13,
     * 8 x 1024 x 768 37 -> 17, 8 x 1024 x 1024 30 -> 27; 5 rows stay: 5 x 1024 x 1024 21 -> 30).
     * Measured at 2 threads only, so only there: with more, the GEMV's column slices spread over
     * more threads than the packed GEMM's few column blocks of so few rows */
    const int nt = a->nthreads > 0 ? a->nthreads : rq_num_threads();
    const size_t kn = (size_t)a->K * a->N, l2 = (size_t)rq_l2_bytes();
    const int amx = isa >= RQ_ISA_AMX && rq_gemm_amx__amx && rq_amx_enable();
    const size_t mt_gemv_min = !amx && nt == 2 && a->M >= RQ_GEMV_MT_PACK_M ? l2 : l2 / 2;
    const int gemv = isa >= RQ_ISA_AVX512VNNI && rq_gemv_vnni__avx512vnni && a->M <= RQ_GEMV_MAX_M &&
                     !a->packed && a->b_cs == 1 && (a->M < RQ_AMX_MIN_M || nt == 1 || kn > mt_gemv_min);
    if (amx && a->M >= RQ_AMX_MIN_M && !gemv) return RQ_K_AMX;
    if (isa >= RQ_ISA_AVX512VNNI && rq_gemm_vnni__avx512vnni) {
        /* no AMX, a plain B whose chunk stays in L2: B read in place, no packing, also in place
         * of the GEMV from RQ_VNNI_PLAIN_MIN_M rows (Zen 5, docs/performance.md, session 27; at 2
         * threads, x 768 x 768, us: 2 rows 10-12 -> 5, 4 rows 15 -> 5-6, 8 rows 15-16 -> 8, 12
         * rows 18-19 -> 11, 16 rows 17-20 -> 13-14) */
        if (!amx && !a->packed && a->b_cs == 1 && !a->sat16 && rq_gemm_vnni_plain__avx512vnni && vnni_plain_on() &&
            a->M >= RQ_VNNI_PLAIN_MIN_M && a->M <= RQ_VNNI_PLAIN_MAX_M &&
            vnni_plain_b_ok(a))
            return RQ_K_VNNI_PLAIN;
        return gemv ? RQ_K_VNNI_GEMV : RQ_K_VNNI;
    }
    /* 1 to 4 rows of a plain B below VNNI: the int16 GEMV reads B in place (AVX2 instructions,
     * also at the AVX-512 BW level; 1 x 4096 x 4096 at 1 thread, B packed first: AVX2 6.0 ms,
     * AVX-512 BW 4.2 ms) */
    if (isa >= RQ_ISA_AVX2 && isa < RQ_ISA_AVX512VNNI && !rq_gemm_avxvnni_at(isa) && rq_gemv_i16__avx2 &&
        a->M <= 4 && a->b_cs == 1)
        return RQ_K_AVX2_GEMV;
    if (isa >= RQ_ISA_AVX512 && rq_gemm_i16__avx512) return RQ_K_AVX512_I16;
    if (rq_gemm_avxvnni_at(isa))   /* (1 to 4 rows of a plain B: read in place, no packing pass) */
        return rq_gemv_vnni__avxvnni && a->M <= 4 && !a->packed && a->b_cs == 1 ? RQ_K_AVXVNNI_GEMV : RQ_K_AVXVNNI;
    if (isa >= RQ_ISA_AVX2 && rq_gemm_i16__avx2) return RQ_K_AVX2_I16;
    return RQ_K_SCALAR;
}

static rq_epi_fn pick_epi(int isa) {
    if (isa >= RQ_ISA_AVX512 && rq_epi_rows__avx512) return rq_epi_rows__avx512;
    if (isa >= RQ_ISA_AVX2 && rq_epi_rows__avx2) return rq_epi_rows__avx2;
    return rq_epi_rows__scalar;
}

/* A packed for AMX tiles: [ib][kc][16][64]; A_used = A (native signedness); rsum (over the true
 * K) only when need_rsum */
typedef struct { const rq_gemm_args *a; uint8_t *ap; int32_t *rsum; int need_rsum, Kp; } packa_job;

static void pack_a_block(void *ctx, int64_t t) {
    const packa_job *J = (const packa_job *)ctx;
    const rq_gemm_args *a = J->a;
    uint8_t *ap = J->ap; int32_t *rsum = J->rsum;
    const int need_rsum = J->need_rsum, Kp = J->Kp;
    const int M = a->M, K = a->K, nkc = Kp / 64;
    {
        const int ib = (int)t;
        uint8_t *blk = ap + (size_t)ib * nkc * 1024;
        for (int r = 0; r < 16; r++) {
            int i = ib * 16 + r;
            if (i >= M) {
                for (int kc = 0; kc < nkc; kc++) memset(blk + kc * 1024 + r * 64, 0, 64);
                continue;
            }
            const uint8_t *src = a->A + (ptrdiff_t)i * a->a_rs;
            uint32_t s = 0;
            if (a->a_cs == 1) {
                const int kfull = K / 64;
                for (int kc = 0; kc < kfull; kc++) memcpy(blk + kc * 1024 + r * 64, src + kc * 64, 64);
                for (int kc = kfull; kc < nkc; kc++) {
                    int k0 = kc * 64, n = K - k0 > 0 ? (K - k0 < 64 ? K - k0 : 64) : 0;
                    uint8_t *d = blk + kc * 1024 + r * 64;
                    if (n > 0) memcpy(d, src + k0, n);
                    memset(d + n, 0, 64 - n);
                }
                if (need_rsum) {
                    if (a->a_signed) for (int k = 0; k < K; k++) s += (uint32_t)(int32_t)(int8_t)src[k];
                    else for (int k = 0; k < K; k++) s += src[k];
                }
            } else {
                for (int kc = 0; kc < nkc; kc++) {
                    uint8_t *d = blk + kc * 1024 + r * 64;
                    for (int c = 0; c < 64; c++) {
                        int k = kc * 64 + c;
                        uint8_t v = k < K ? src[k * a->a_cs] : 0;
                        d[c] = v;
                        s += a->a_signed ? (uint32_t)(int32_t)(int8_t)v : v;
                    }
                }
            }
            rsum[i] = (int32_t)s;
        }
    }
}

/* through the kernels' own pool (rq_parallel), not OpenMP: mixing the two puts a spinning
 * OpenMP thread and a pool worker on the same core (measured: 2 threads slower than 1) */
static void pack_a_amx(const rq_gemm_args *a, uint8_t *ap, int32_t *rsum, int need_rsum, int Kp, int nt) {
    const int nib = (a->M + 15) / 16;
    packa_job J = {a, ap, rsum, need_rsum, Kp};
    rq_parallel(nib, ((size_t)a->M * a->K > RQ_PACKA_MT_MIN) ? nt : 1, pack_a_block, &J);
}

/* The AMX A operand: tiles straight from the caller's rows when they are whole (rows of
 * 64-byte chunks, 16-row blocks), otherwise a zero-padded tile-packed copy (*ap); rsum over the
 * true K when a B zero point (shifted by db) is nonzero.  *ap, *rsum, *koff: caller frees. */
static int amx_prep_a(const rq_gemm_args *a, int Kp, int db, int nt, rq_amx_a *A, uint8_t **ap,
                      int32_t **rsum, int64_t **koff) {
    const int M = a->M, K = a->K, nib = (M + 15) / 16, nkc = Kp / 64;
    /* tiles straight from the caller's rows only when every tile row is one whole cache line
     * (measured: a 16- or 1-byte offset costs 25-35% of the AMX kernel at 128x768x768 and
     * 512^3; the copy costs a few microseconds) */
    const int direct = a->a_cs == 1 && K % 64 == 0 && M % 16 == 0 && K > 0 &&
                       ((uintptr_t)a->A % 64) == 0 && a->a_rs % 64 == 0 &&
                       a->a_rs >= K && a->a_rs <= 960;  /* longer rows: L1 set conflicts (measured) */
    /* a row-major A that is not direct: copied strip by strip inside the AMX tasks (measured:
     * the whole-A copy cost 13 us at 512^3, more than a memcpy: its stores go through L2) */
    const int lazy = !direct && a->a_cs == 1 && K > 0;
    *ap = (direct || lazy) ? NULL : (uint8_t *)rq_aligned_alloc((size_t)nib * 16 * Kp);
    *rsum = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)(M + 16));
    *koff = (int64_t *)rq_aligned_alloc(sizeof(int64_t) * (size_t)nkc);
    if ((!direct && !lazy && !*ap) || !*rsum || !*koff) return RQ_ENOMEM;
    int need = 0;
    for (int j = 0; j < a->b_zp_n; j++) need |= (a->b_zp[j] + db) != 0;
    A->lazy = NULL; A->lazy_rs = 0; A->lazy_M = M; A->lazy_K = K;
    if (direct || lazy) {
        if (need && rq_row_sums__avx512 && rq_isa_level() >= RQ_ISA_AVX512)
            rq_row_sums__avx512(a->A, a->a_rs, M, K, a->a_signed ? 0x80 : 0, a->a_signed ? -128 : 0, *rsum);
        else
            for (int i = 0; i < M && need; i++) {
                const uint8_t *src = a->A + (ptrdiff_t)i * a->a_rs;
                uint32_t s = 0;
                if (a->a_signed) for (int k = 0; k < K; k++) s += (uint32_t)(int32_t)(int8_t)src[k];
                else for (int k = 0; k < K; k++) s += src[k];
                (*rsum)[i] = (int32_t)s;
            }
        if (direct) {
            for (int kc = 0; kc < nkc; kc++) (*koff)[kc] = (int64_t)kc * 64;
            A->abase = a->A; A->a_ib_stride = 16 * a->a_rs; A->a_tile_stride = a->a_rs;
        } else {
            for (int kc = 0; kc < nkc; kc++) (*koff)[kc] = (int64_t)kc * 1024;
            A->abase = NULL; A->a_ib_stride = (ptrdiff_t)nkc * 1024; A->a_tile_stride = 64;
            A->lazy = a->A; A->lazy_rs = a->a_rs;
        }
    } else {
        pack_a_amx(a, *ap, *rsum, need, Kp, nt);
        for (int kc = 0; kc < nkc; kc++) (*koff)[kc] = (int64_t)kc * 1024;
        A->abase = *ap; A->a_ib_stride = (ptrdiff_t)nkc * 1024; A->a_tile_stride = 64;
    }
    A->koff = *koff; A->a_signed = a->a_signed; A->nib = nib;
    return RQ_OK;
}


/* AMX GEMM on a plain row-major B packed just in time: column blocks of at most
 * RQ_AMX_BLOCK_BYTES of packed B, each packed (VNNI-4, its column sums) into one reused buffer
 * and consumed while it is in L2, instead of the whole packed B making a round trip through
 * L3 / DRAM.  Same integer sums and epilogue as the whole-B path, so the same bits. */
/* with threads: column slices claimed dynamically, each packed and computed (all rows) by
 * the thread that claims it, so packed B never crosses cores */
typedef struct {
    const rq_gemm_args *a; const rq_amx_a *A; const rq_epi *e; epi_bufs *bf; int32_t *csum;
    int Kp, bw, db; volatile int err;
} jit_job;

static void jit_slice(void *ctx, int64_t t) {
    jit_job *J = (jit_job *)ctx;
    const rq_gemm_args *a = J->a;
    const int c0 = (int)t * J->bw, n = imin(J->bw, a->N - c0);
    uint8_t *buf = (uint8_t *)rq_aligned_alloc((size_t)J->Kp * rup(n, 64));
    if (!buf) { J->err = RQ_ENOMEM; return; }
    rq_packed_b blk;
    blk.data = buf; blk.csum = J->csum + c0; blk.K = a->K; blk.N = n; blk.Kp = J->Kp;
    blk.Np = rup(n, 16); blk.b_signed = a->b_signed; blk.b_raw = !a->b_signed;
    int rc = rq_pack_b_rows__avx512vnni(&blk, a->B + c0, a->b_rs, 1);
    if (rc == RQ_OK) {
        epi_fill_cols(J->bf, a, 0, J->db, J->csum, c0, c0 + n);
        rq_epi eb; epi_shift_cols(&eb, J->e, c0, n);
        rc = rq_gemm_amx__amx(J->A, &blk, &eb, 1);
    }
    if (rc != RQ_OK) J->err = rc;
    rq_aligned_free(buf);
}

static int gemm_amx_jit(const rq_gemm_args *a, rq_epi *e, epi_bufs *bf, int nt) {
    const int N = a->N, K = a->K;
    const int Kp = rup(K > 0 ? K : 1, 64), Np = rup(N, 16);
    const int db = 0;   /* uint8 B packed raw (tdpbuud / tdpbsud): zb_u = zb */
    int bw = (int)(RQ_AMX_BLOCK_BYTES / ((size_t)Kp * 64)) * 64;   /* whole 64-column groups */
    if (bw < 64) bw = 64;
    if (bw > Np) bw = Np;
    rq_amx_a A;
    uint8_t *ap = NULL; int32_t *rsum = NULL; int64_t *koff = NULL;
    int32_t *csum = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)(Np + 64));
    uint8_t *buf = (uint8_t *)rq_aligned_alloc((size_t)Kp * rup(bw, 64));
    int rc = (csum && buf) ? RQ_OK : RQ_ENOMEM;
    if (rc == RQ_OK) rc = amx_prep_a(a, Kp, db, nt, &A, &ap, &rsum, &koff);
    if (rc == RQ_OK) rc = epi_corrections(e, bf, a, 0, db, rsum, NULL);
    if (rc == RQ_OK && nt > 1) {
        /* slices: at least 2 per thread, at most bw columns, whole 64-column groups */
        int sw = rup((N + 2 * nt - 1) / (2 * nt), 64);
        if (sw > bw) sw = bw;
        jit_job J = {a, &A, e, bf, csum, Kp, sw, db, RQ_OK};
        rq_parallel((N + sw - 1) / sw, nt, jit_slice, &J);
        rc = J.err;
    }
    for (int c0 = 0; rc == RQ_OK && nt <= 1 && c0 < N; c0 += bw) {
        const int n = imin(bw, N - c0);
        rq_packed_b blk;
        blk.data = buf; blk.csum = csum + c0; blk.K = K; blk.N = n; blk.Kp = Kp;
        blk.Np = rup(n, 16); blk.b_signed = a->b_signed; blk.b_raw = !a->b_signed;
        rc = rq_pack_b_rows__avx512vnni(&blk, a->B + c0, a->b_rs, nt);
        if (rc != RQ_OK) break;
        epi_fill_cols(bf, a, 0, db, csum, c0, c0 + n);
        rq_epi eb; epi_shift_cols(&eb, e, c0, n);
        rc = rq_gemm_amx__amx(&A, &blk, &eb, nt);
    }
    rq_aligned_free(ap); rq_aligned_free(rsum); rq_aligned_free(koff);
    rq_aligned_free(csum); rq_aligned_free(buf);
    epi_free(bf);
    return rc;
}

/* the row sums of A_used (A ^ 0x80 for int8 A) over K, modulo 2^32 */
static void a_used_row_sums(const rq_gemm_args *a, int isa, int32_t *rsum) {
    const int M = a->M, K = a->K;
    if (a->a_cs == 1 && rq_row_sums__avx512 && isa >= RQ_ISA_AVX512) {
        rq_row_sums__avx512(a->A, a->a_rs, M, K, a->a_signed ? 0x80 : 0, 0, rsum);
        return;
    }
    for (int i = 0; i < M; i++) {
        uint32_t s = 0;
        const uint8_t *src = a->A + (ptrdiff_t)i * a->a_rs;
        if (a->a_signed) for (int k = 0; k < K; k++) s += (uint32_t)(src[k * a->a_cs] ^ 0x80);
        else for (int k = 0; k < K; k++) s += src[k * a->a_cs];
        rsum[i] = (int32_t)s;
    }
}

/* VNNI GEMM on a plain B read in place (rq_gemm_vnni_plain__avx512vnni): no packing pass.  A_used
 * is read in place (uint8 A, unit column stride, K a multiple of 4) or copied (A ^ 0x80 for int8
 * A, rows rounded up to 4 bytes with zeros); B_used's column sums come from the kernel's row of
 * ones, chunk by chunk, and each chunk's column terms are filled right after them. */
typedef struct { const rq_gemm_args *a; const rq_epi *e; epi_bufs *bf; const int32_t *csum; int da, db; } vplain_ctx;

static void vplain_prep(void *ctx, int c0, int n, rq_epi *eb) {
    const vplain_ctx *P = (const vplain_ctx *)ctx;
    if (P->csum) epi_fill_cols(P->bf, P->a, P->da, P->db, P->csum, c0, c0 + n);
    epi_shift_cols(eb, P->e, c0, n);
}

static int gemm_vnni_plain(const rq_gemm_args *a, rq_epi *e, epi_bufs *bf, int isa, int nt) {
    const int M = a->M, N = a->N, K = a->K, K4 = rup(K > 0 ? K : 1, 4);
    const int da = a->a_signed ? 128 : 0, db = a->b_signed ? 0 : -128;
    const int inplace = !a->a_signed && a->a_cs == 1 && K % 4 == 0;
    uint8_t *ac = inplace ? NULL : (uint8_t *)rq_aligned_alloc((size_t)M * K4 + 64);
    int32_t *rsum = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)(M + 16));
    int32_t *csum = NULL;
    int rc = (rsum && (inplace || ac)) ? RQ_OK : RQ_ENOMEM;
    if (rc == RQ_OK && !inplace) {
        const uint8_t ax = a->a_signed ? 0x80 : 0;
        for (int i = 0; i < M; i++) {
            uint8_t *d = ac + (size_t)i * K4;
            const uint8_t *s = a->A + (ptrdiff_t)i * a->a_rs;
            if (a->a_cs == 1) for (int k = 0; k < K; k++) d[k] = s[k] ^ ax;
            else for (int k = 0; k < K; k++) d[k] = s[k * a->a_cs] ^ ax;
            memset(d + K, 0, (size_t)(K4 - K));
        }
    }
    int zb_any = 0;
    for (int j = 0; j < a->b_zp_n; j++) zb_any |= (a->b_zp[j] + db) != 0;
    if (rc == RQ_OK && zb_any) {
        a_used_row_sums(a, isa, rsum);
    }
    if (rc == RQ_OK) rc = epi_corrections(e, bf, a, da, db, rsum, NULL);
    if (rc == RQ_OK && bf->colterm) {   /* the column sums are wanted */
        csum = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)(N + 64));
        if (!csum) rc = RQ_ENOMEM;
    }
    if (rc == RQ_OK) {
        vplain_ctx P = {a, e, bf, csum, da, db};
        rc = rq_gemm_vnni_plain__avx512vnni(inplace ? a->A : ac, inplace ? a->a_rs : K4, a, e, csum,
                                             vplain_prep, &P, nt);
    }
    rq_aligned_free(ac); rq_aligned_free(rsum); rq_aligned_free(csum);
    epi_free(bf);
    return rc;
}

/* AMX GEMM on a plain B with few rows, A and B in L2: B packed 64 columns at a time into a small
 * buffer right before use (rq_gemm_amx_plain__amx; a lazy A is copied whole by each thread,
 * since the driver reads it once per column group) */
typedef struct { const rq_gemm_args *a; const rq_epi *e; epi_bufs *bf; const int32_t *csum; } plain_ctx;

static void plain_prep(void *ctx, int c0, int n, rq_epi *eb) {
    const plain_ctx *P = (const plain_ctx *)ctx;
    epi_fill_cols(P->bf, P->a, 0, 0, P->csum, c0, c0 + n);
    epi_shift_cols(eb, P->e, c0, n);
}

static int gemm_amx_plain(const rq_gemm_args *a, rq_epi *e, epi_bufs *bf, int nt) {
    const int K = a->K, Kp = rup(K > 0 ? K : 1, 64), Np = rup(a->N, 16);
    rq_amx_a A;
    uint8_t *ap = NULL; int32_t *rsum = NULL; int64_t *koff = NULL;
    int32_t *csum = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)(Np + 64));
    int rc = csum ? RQ_OK : RQ_ENOMEM;
    /* db = 0: a uint8 B is packed raw (tdpbuud / tdpbsud) */
    if (rc == RQ_OK) rc = amx_prep_a(a, Kp, 0, nt, &A, &ap, &rsum, &koff);
    if (rc == RQ_OK) rc = epi_corrections(e, bf, a, 0, 0, rsum, NULL);
    if (rc == RQ_OK) {
        plain_ctx P = {a, e, bf, csum};
        rc = rq_gemm_amx_plain__amx(&A, a->B, a->b_rs, K, a->N, a->b_signed, csum, plain_prep, &P, nt);
    }
    rq_aligned_free(ap); rq_aligned_free(rsum); rq_aligned_free(koff); rq_aligned_free(csum);
    epi_free(bf);
    return rc;
}

/* AMX GEMM on a plain B with few rows and a B larger than half the L2, by K slabs
 * (rq_gemm_amx_kslab__amx): B is read in whole rows, sequentially, instead of in column blocks
 * that touch every row of B once per block; the raw sums go through an int32 scratch, then
 * one epilogue.  Measured in-process against the column-block paths, 1 thread, slabs of 128
 * rows: 16x4096x4096 1.92 -> 1.27 ms, 16x4096x11008 8.1 -> 3.4 ms, 64x4096x11008 11.4 -> 6.7
 * ms, 8x4096x4096 1.34 -> 1.21 ms, 32x768x3072 279 -> 219 us.  Slabs of 256 rows: 1.65, 4.7,
 * 7.6 ms, 1.58 ms, 190 us; of 64: 1.45, 3.9, 7.6, 1.40 ms, 269 us (a C microbenchmark of the
 * walk packer alone: 64 or 128 rows 15-17 GB/s, 256 rows 9-12, its stores into the slab being
 * the limit: without them 26 GB/s, the read speed; then written in bands of 4 k-groups:
 * 16x4096x4096 1.27 -> 1.13 ms).  Up to 48 rows, 64 with K >= 4096, 128 with K > 4096 (with the
 * banded packer, 1 thread: 48x4096x4096 2.5-2.9 -> 1.8 ms, 64x1024x4096 540-630 -> 460-476 us,
 * 64x4096x4096 even; slower: 64x3072x768 266 -> 310 us, 128x4096x4096 3.8 -> 4.3 ms).  Threads
 * take runs of column groups through every slab, each with its own slab buffer; at 2 threads
 * only for a B beyond twice the L2 (16x4096x4096 0.88-1.08 -> 0.67-0.69 ms, 16x4096x11008 3.4-4.0
 * -> 1.9 ms; 32x768x3072, 2.4 MB: 124-131 against 161-167 us). */
#ifndef RQ_KSLABP
#define RQ_KSLABP 1
#endif
#ifndef RQ_KSLABP_MIN_K
#define RQ_KSLABP_MIN_K 1024
#endif
#ifndef RQ_KSLABP_MAX_M
#define RQ_KSLABP_MAX_M 128
#endif
#ifndef RQ_KSLABP_ROWS
#define RQ_KSLABP_ROWS 4096
#endif
#ifndef RQ_KSLAB_ROWS
#define RQ_KSLAB_ROWS 128
#endif
#ifndef RQ_KSLAB_MAX_M
#define RQ_KSLAB_MAX_M 48
#endif
static int gemm_amx_kslab(const rq_gemm_args *a, rq_epi *e, epi_bufs *bf, int isa, int nt) {
    const int M = a->M, N = a->N, K = a->K, Kp = rup(K > 0 ? K : 1, 64), Np = rup(N, 16);
    const int db = 0;   /* uint8 B packed raw (tdpbuud / tdpbsud) */
    const int nib = (M + 15) / 16, ldr = rup(Np, 32) + 16;
    rq_amx_a A;
    uint8_t *ap = NULL; int32_t *rsum = NULL; int64_t *koff = NULL;
    int32_t *csum = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)(rup(N, 64) + 64));
    int32_t *R = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)nib * 16 * ldr + 256);
    int rc = (csum && R) ? RQ_OK : RQ_ENOMEM;
    if (rc == RQ_OK) rc = amx_prep_a(a, Kp, db, nt, &A, &ap, &rsum, &koff);
    if (rc == RQ_OK) rc = epi_corrections(e, bf, a, 0, db, rsum, NULL);
    if (rc == RQ_OK) rc = rq_gemm_amx_kslab__amx(&A, a->B, a->b_rs, K, N, a->b_signed, RQ_KSLAB_ROWS, csum, R, ldr, nt);
    if (rc == RQ_OK) {
        epi_fill_cols(bf, a, 0, db, csum, 0, N);
        pick_epi(isa)(e, 0, M, 0, N, R, ldr);
    }
    rq_aligned_free(ap); rq_aligned_free(rsum); rq_aligned_free(koff);
    rq_aligned_free(csum); rq_aligned_free(R);
    epi_free(bf);
    return rc;
}

/* AMX GEMM on a plain B beyond twice the L2 with up to 256 rows and K >= 3072 (where the K-slab
 * driver above does not take it): B packed whole in walk order (whole rows read sequentially,
 * panels (Kp + 4) * 16 bytes apart so that they do not all map to the same L1 sets), then the K
 * slabs of the packed path.  Measured in-process against the column-block path, 1 thread:
 * 128x4096x4096 4.27-4.33 -> 3.23-3.35 ms, 96x4096x4096 3.26-3.38 -> 2.58-2.72, 256x4096x4096
 * 5.20-5.38 -> 4.37-4.48, 128x4096x3072 2.75-3.03 -> 2.30-2.35; slower at K = 1536 and 2048
 * (128x3072x1536 0.75-0.84 -> 1.02-1.04 ms, 128x4096x2048 1.48-1.54 -> 1.62-1.66 ms).  One
 * thread only: at 2 threads (each packing its own columns) 256x4096x4096 went 2.5-2.7 -> 4.5-5.2
 * ms and 96x4096x3072 1.3-1.4 -> 2.0-2.6 ms: packed whole, B crosses the memory bus three
 * times (read, packed copy written, packed copy read) against once for the column blocks,
 * which two cores sharing the bandwidth feel most (a likely cause, not verified). */
#ifndef RQ_WALKPACK
#define RQ_WALKPACK 1
#endif
typedef struct { rq_packed_b *pb; const uint8_t *B; ptrdiff_t b_rs; int ng, ntask; volatile int err; } walkpack_job;
static void walkpack_task(void *ctx, int64_t t) {
    walkpack_job *W = (walkpack_job *)ctx;
    const int g0 = (int)((int64_t)W->ng * t / W->ntask), g1 = (int)((int64_t)W->ng * (t + 1) / W->ntask);
    if (g1 > g0 && rq_pack_b_walk__avx512vnni(W->pb, W->B, W->b_rs, g0, g1) != RQ_OK) W->err = RQ_ENOMEM;
}
static int gemm_amx_walkpack(const rq_gemm_args *a, rq_epi *e, epi_bufs *bf, int isa, int nt) {
    const int M = a->M, N = a->N, K = a->K, Kp = rup(K > 0 ? K : 1, 64), Np = rup(N, 16);
    const int nib = (M + 15) / 16, ldr = rup(Np, 32) + 16, ng = (N + 63) / 64;
    rq_packed_b pb;
    memset(&pb, 0, sizeof(pb));
    pb.K = K; pb.N = N; pb.Kp = Kp + 4; pb.Np = Np; pb.b_signed = a->b_signed; pb.b_raw = !a->b_signed;
    pb.data = (uint8_t *)rq_aligned_alloc((size_t)(Kp + 4) * (size_t)ng * 64);
    pb.csum = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)(ng * 64 + 64));
    int32_t *R = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)nib * 16 * ldr + 256);
    rq_amx_a A;
    uint8_t *ap = NULL; int32_t *rsum = NULL; int64_t *koff = NULL;
    int rc = (pb.data && pb.csum && R) ? RQ_OK : RQ_ENOMEM;
    if (rc == RQ_OK) {
        const int ntask = nt > 1 ? imin(nt, ng) : 1;
        walkpack_job W = {&pb, a->B, a->b_rs, ng, ntask, RQ_OK};
        rq_parallel(ntask, ntask, walkpack_task, &W);
        rc = W.err;
    }
    if (rc == RQ_OK) rc = amx_prep_a(a, Kp, 0, nt, &A, &ap, &rsum, &koff);
    if (rc == RQ_OK) rc = epi_corrections(e, bf, a, 0, 0, rsum, pb.csum);
    if (rc == RQ_OK) rc = rq_gemm_amx_kslabp__amx(&A, NULL, 0, &pb, K, N, a->b_signed, RQ_KSLABP_ROWS, NULL, R, ldr, nt);
    if (rc == RQ_OK) pick_epi(isa)(e, 0, M, 0, N, R, ldr);
    rq_aligned_free(ap); rq_aligned_free(rsum); rq_aligned_free(koff);
    rq_aligned_free(pb.data); rq_aligned_free(pb.csum); rq_aligned_free(R);
    epi_free(bf);
    return rc;
}

/* Several threads, a plain B within a quarter of the L2, many rows: each thread packs all of B
 * itself and runs its own run of 32-row strips as a one-thread GEMM, instead of B packed once by
 * both threads and each thread's strips reading the half the other core packed, or the 64-column
 * driver's column runs (measured at 2 threads: see RQ_DUP_MIN_M).  Rows are independent, so the
 * bits are those of one call. */
#ifndef RQ_DUP_PACK
#define RQ_DUP_PACK 1
#endif
#ifndef RQ_DUP_MIN_M
/* measured at 2 threads against the paths below, in-process (us): 512^3 68-69 -> 50-57,
 * 320x512x512 52 -> 36-42, 256x1024x256 36 -> 31-35, 192x1024x256 29 -> 25-27; 192x512x512
 * even; from 128 rows slower (128x512x512 17.4-18.8 -> 19.5-21.4: packing all of B twice costs
 * more than the 64-column driver's shared work) */
#define RQ_DUP_MIN_M 192
#endif
typedef struct { const rq_gemm_args *a; int nt; int rc[256]; } rsplit_job;   /* (rq_pool.c: at most 256 threads) */

static void rsplit_task(void *ctx, int64_t t) {
    rsplit_job *J = (rsplit_job *)ctx;
    const rq_gemm_args *a = J->a;
    const int ns = (a->M + 31) / 32;
    const int r0 = (int)((int64_t)ns * t / J->nt) * 32, r1 = imin(a->M, (int)((int64_t)ns * (t + 1) / J->nt) * 32);
    J->rc[t] = RQ_OK;
    if (r1 <= r0) return;
    rq_gemm_args s = *a;
    s.M = r1 - r0;
    s.A = a->A + (ptrdiff_t)r0 * a->a_rs;
    if (a->a_zp_n != 1) { s.a_zp = a->a_zp + r0; s.a_zp_n = s.M; }
    const size_t es = a->out_type == RQ_OUT_S32 ? 4 : 1;
    s.C = (char *)a->C + (ptrdiff_t)r0 * a->c_rs * (ptrdiff_t)es;
    if (a->bias) s.bias = a->bias + (ptrdiff_t)r0 * a->bias_rs;
    if (a->fbias) s.fbias = a->fbias + (ptrdiff_t)r0 * a->bias_rs;
    if (a->fbias2) s.fbias2 = a->fbias2 + (ptrdiff_t)r0 * a->bias_rs;
    s.nthreads = 1;
    J->rc[t] = rq_gemm_run(&s, NULL);
}

static int gemm_rows_split(const rq_gemm_args *a, int nt) {
    rsplit_job J;
    J.a = a; J.nt = imin(nt, 256);
    rq_parallel(J.nt, J.nt, rsplit_task, &J);
    for (int t = 0; t < J.nt; t++)
        if (J.rc[t] != RQ_OK) return J.rc[t];
    return RQ_OK;
}

/* The GEMV over a long B, in column blocks run one after another: its buffers (the accumulators,
 * R x N int32, and the raw sums, M x N) are otherwise sized by all of N -- 40 bytes a column at
 * 4 rows, fresh pages from the system on every call, and every band of B's rows streamed them
 * through memory (1x1 conv 64 -> 4 at 1024x1024: 12 ms, a third of it clearing pages).  The
 * column slice's arguments: per-column zero points, multipliers (float or fixed point), biases
 * and C shifted to its first column. */
static int gemm_cols_split(const rq_gemm_args *a, int nb) {
    const ptrdiff_t es = a->out_type == RQ_OUT_S32 ? 4 : 1;
    for (int j0 = 0; j0 < a->N; j0 += nb) {
        rq_gemm_args s = *a;
        s.N = imin(nb, a->N - j0);
        s.B = a->B + (ptrdiff_t)j0 * a->b_cs;
        if (a->b_zp_n != 1) { s.b_zp = a->b_zp + j0; s.b_zp_n = s.N; }
        s.C = (char *)a->C + (ptrdiff_t)j0 * a->c_cs * es;
        if (a->bias) s.bias = a->bias + (ptrdiff_t)j0 * a->bias_cs;
        if (a->fbias) s.fbias = a->fbias + (ptrdiff_t)j0 * a->bias_cs;
        if (a->fbias2) s.fbias2 = a->fbias2 + (ptrdiff_t)j0 * a->bias_cs;
        if (a->mult_n != 1 && !a->mult_rows) {
            if (a->mult) s.mult = a->mult + j0;
            if (a->fx_qm) s.fx_qm = a->fx_qm + j0;
            if (a->fx_sh) s.fx_sh = a->fx_sh + j0;
            if (a->mult_n) s.mult_n = s.N;
        }
        const int rc = rq_gemm_run(&s, NULL);
        if (rc != RQ_OK) return rc;
    }
    return RQ_OK;
}

int rq_gemm_run(const rq_gemm_args *a, int *kernel_used) {
    if (!a || a->M < 0 || a->N < 0 || a->K < 0) return RQ_EARG;
    const int M = a->M, N = a->N, K = a->K;
    int isa = a->isa < 0 ? rq_isa_level() : imin(a->isa, rq_isa_level());
    int nt = a->nthreads > 0 ? a->nthreads : rq_num_threads();
    int kern = rq_gemm_choose(a);
    if (kernel_used) *kernel_used = kern;
    if (a->ia && (isa < RQ_ISA_AVX512VNNI || !rq_gemm_vnni__avx512vnni || !a->packed || a->sat16 ||
                  a->packed->K != K || a->packed->N != N || a->packed->b_signed != a->b_signed || M <= 4))
        return RQ_EARG;
    if (M == 0 || N == 0) return RQ_OK;
    if (kern == RQ_K_VNNI_GEMV) {
        /* the accumulators, (M + 1) x N int32: split when they pass half the L2, into equal
         * blocks of about a quarter (measured in-process, 1 thread, against no split: 1x1 conv
         * 64 -> 4 at 1024x1024 12 -> 5.0 ms, 2x1024x100000 6.0-6.4 -> 4.1; narrower blocks
         * over a B of long rows were slower: 4x4096x32000 in blocks of 10,688 columns 8.3-9.3
         * against 5.9-6.5 ms whole) */
        const size_t per_col = (size_t)(M + 1) * sizeof(int32_t), l2 = (size_t)rq_l2_bytes();
        if (per_col * (size_t)N > l2 / 2) {
            const size_t nblk = (per_col * (size_t)N + l2 / 4 - 1) / (l2 / 4);
            return gemm_cols_split(a, rup((int)(((size_t)N + nblk - 1) / nblk), 64));
        }
    }
    if (RQ_DUP_PACK && nt > 1 && kern == RQ_K_AMX && !a->packed && a->b_cs == 1 && !a->mult_rows &&
        M >= RQ_DUP_MIN_M && (size_t)rup(K > 0 ? K : 1, 64) * rup(N, 16) <= (size_t)rq_l2_bytes() / 4)
        return gemm_rows_split(a, nt);
    rq_epi e; epi_base(&e, a);
    epi_bufs bf; memset(&bf, 0, sizeof(bf));
    rq_epi_fn epi = pick_epi(isa);
    int rc = RQ_OK;

    if (kern == RQ_K_SCALAR || kern == RQ_K_AVX2_I16 || kern == RQ_K_AVX512_I16 || kern == RQ_K_AVX2_GEMV) {
        if (kern == RQ_K_AVX2_GEMV) return rq_gemv_i16__avx2(a, &e, epi, nt);
        if (kern == RQ_K_AVX2_I16) return rq_gemm_i16__avx2(a, &e, epi, nt);
        if (kern == RQ_K_AVX512_I16) return rq_gemm_i16__avx512(a, &e, epi, nt);
        /* scalar: zero points folded per product, no corrections */
        int32_t *bz = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)N);
        if (!bz) return RQ_ENOMEM;
        for (int j = 0; j < N; j++) bz[j] = a->b_zp[a->b_zp_n == 1 ? 0 : j];
        int nchunk = imin(nt, M);
#if defined(_OPENMP)
#pragma omp parallel for num_threads(nt) schedule(static) if (nchunk > 1 && (double)M * N * K > 1e6)
#endif
        for (int t = 0; t < nchunk; t++) {
            int32_t *row = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)N);
            if (row) {
                gemm_scalar_rows(a, &e, (int)((long)M * t / nchunk), (int)((long)M * (t + 1) / nchunk),
                                 row, bz);
                rq_aligned_free(row);
            }
        }
        rq_aligned_free(bz);
        return RQ_OK;
    }

    if (kern == RQ_K_SCALAR_SAT16) {
        int32_t *rsum = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)M);
        int32_t *csum = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)N);
        int32_t *row = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)N);
        if (!rsum || !csum || !row) rc = RQ_ENOMEM;
        if (rc == RQ_OK) {
            for (int i = 0; i < M; i++) {
                uint32_t s = 0;
                for (int k = 0; k < K; k++) s += ld(a->A + i * a->a_rs + k * a->a_cs, a->a_signed);
                rsum[i] = (int32_t)s;
            }
            for (int j = 0; j < N; j++) {
                uint32_t s = 0;
                for (int k = 0; k < K; k++) s += ld(a->B + k * a->b_rs + j * a->b_cs, a->b_signed);
                csum[j] = (int32_t)s;
            }
            rc = epi_corrections(&e, &bf, a, 0, 0, rsum, csum);
            if (rc == RQ_OK) gemm_sat16_rows(a, &e, 0, M, row);
        }
        rq_aligned_free(rsum); rq_aligned_free(csum); rq_aligned_free(row);
        epi_free(&bf);
        return rc;
    }

    if (kern == RQ_K_AVX2_SAT16 || kern == RQ_K_AVX512_SAT16 || kern == RQ_K_VNNI_SAT16) {
        /* raw-value row / column sums; B packed (VNNI-4), the kernel restores raw uint8 B */
        rq_packed_b *pk = rq_pack_b(a->B, a->b_rs, a->b_cs, K, N, a->b_signed, isa, nt);
        int32_t *rsum = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)(M + 16));
        int32_t *csum = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)(N + 16));
        if (!pk || !rsum || !csum) rc = RQ_ENOMEM;
        if (rc == RQ_OK) {
            for (int i = 0; i < M; i++) {
                uint32_t s = 0;
                for (int k = 0; k < K; k++) s += (uint32_t)ld(a->A + i * a->a_rs + k * a->a_cs, a->a_signed);
                rsum[i] = (int32_t)s;
            }
            /* csum of B_used; raw uint8 B = B_used + 128 */
            for (int j = 0; j < N; j++)
                csum[j] = (int32_t)((uint32_t)pk->csum[j] + (a->b_signed ? 0u : 128u * (uint32_t)K));
            rc = epi_corrections(&e, &bf, a, 0, 0, rsum, csum);
        }
        if (rc == RQ_OK)
            rc = kern == RQ_K_VNNI_SAT16 ? rq_gemm_sat16__avx512vnni(a, pk, &e, epi, nt)
               : kern == RQ_K_AVX512_SAT16 ? rq_gemm_sat16__avx512(a, pk, &e, epi, nt)
                                           : rq_gemm_sat16__avx2(a, pk, &e, epi, nt);
        rq_packed_b_free(pk); rq_aligned_free(rsum); rq_aligned_free(csum);
        epi_free(&bf);
        return rc;
    }

    /* VNNI / AMX: B packed as B_used = B ^ (b unsigned ? 0x80 : 0) (int8) */
    const int db = a->b_signed ? 0 : -128;
    rq_packed_b *own = NULL;
    const rq_packed_b *pb = a->packed;

    if (kern == RQ_K_VNNI_GEMV || kern == RQ_K_AVXVNNI_GEMV) {
        /* A_used = A ^ 0x80 when A is int8; the gemv kernel computes csum itself */
        const int da = a->a_signed ? 128 : 0;
        int32_t *rsum = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)(M + 16));
        int32_t *csum = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)(N + 64));
        if (!rsum || !csum) { rq_aligned_free(rsum); rq_aligned_free(csum); return RQ_ENOMEM; }
        a_used_row_sums(a, isa, rsum);
        /* pass 1 computes csum only if needed: the kernel fills csum and calls the epilogue after
         * the corrections are known, so corrections are set up through a callback-free 2-phase:
         * the kernel writes raw sums into C-sized scratch, then we correct. */
        int32_t *raw = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)M * (N + 64));
        if (!raw) { rq_aligned_free(rsum); rq_aligned_free(csum); return RQ_ENOMEM; }
        rq_epi e0; memset(&e0, 0, sizeof(e0));
        e0.C = raw; e0.c_rs = N + 64; e0.c_cs = 1; e0.M = M; e0.N = N; e0.K = K;
        int za_any = 0;
        for (int i = 0; i < a->a_zp_n; i++) za_any |= (a->a_zp[i] + da) != 0;
        /* A's zero point needs B's column sums (one more row through the kernel), unless every
         * A - za fits int8: then (A - za) is the signed operand and B_used ^ 0x80 the unsigned
         * one, and only sum_k (A - za) enters the corrections (int8 A with za 0, uint8 A with za
         * 128 always; Zen 5, 1 x 4096 x 4096 int8 x int8, za 0: 320 -> 236 us) */
        int8_t *ad = NULL;
        int32_t rsum_d[4];   /* sum_k (A - za) per row */
        int split = 1;       /* 2: both halves of each row (rq_gemv_vnni_sa2), 1: the first alone */
        if (RQ_GEMV_SA && kern == RQ_K_VNNI_GEMV && za_any && M <= 4 && rq_gemv_vnni_sa__avx512vnni) {
            /* each row as clamp(A - za, -128, 127) (row 2 i) plus the rest (row 2 i + 1, in
             * [-127, 126]): with no rest anywhere, the first halves are A - za itself */
            ad = (int8_t *)rq_aligned_alloc((size_t)2 * M * K + 64);
            int ok = ad != NULL, anyrest = 0;
            for (int i = 0; i < M && ok; i++) {
                const int32_t zi = a->a_zp[a->a_zp_n == 1 ? 0 : i];
                const uint8_t *src = a->A + (ptrdiff_t)i * a->a_rs;
                int8_t *d0 = ad + (size_t)(2 * i) * K, *d1 = d0 + K;
                int32_t s = 0, hi = 0;
                int rest = 0;
                if (a->a_cs == 1 && rq_gemv_split_a__avx512vnni) {
                    rq_gemv_split_a__avx512vnni(src, K, a->a_signed, zi, d0, d1, &s, &hi, &rest);
                } else {
                    for (int k = 0; k < K; k++) {
                        const uint8_t b = src[(ptrdiff_t)k * a->a_cs];
                        const int32_t v = (a->a_signed ? (int32_t)(int8_t)b : (int32_t)b) - zi;
                        const int32_t h = v < -128 ? -128 : v > 127 ? 127 : v;
                        hi = v > hi ? v : hi;
                        d0[k] = (int8_t)h;
                        d1[k] = (int8_t)(v - h);
                        rest |= v != h;
                        s = (int32_t)((uint32_t)s + (uint32_t)v);
                    }
                }
                ok = hi <= 254;   /* 255 has no two int8 halves (it needs za_u 0: not here) */
                anyrest |= rest;
                rsum_d[i] = s;
            }
            /* a rest somewhere needs the two-halves kernel, else B's column sums */
            if (ok && anyrest) ok = RQ_GEMV_SA2 && rq_gemv_vnni_sa2__avx512vnni;
            if (!ok) { rq_aligned_free(ad); ad = NULL; }
            split = anyrest ? 2 : 1;
        }
        if (ad) {
            static const int32_t zeros[RQ_GEMV_MAX_M] = {0};
            rq_gemm_args as = *a;
            as.A = (const uint8_t *)ad; as.a_rs = split == 2 ? K : 2 * (ptrdiff_t)K;   /* (1: rows 2 i) */
            as.a_cs = 1; as.a_signed = 1;
            as.a_zp = zeros;
            rc = split == 2 ? rq_gemv_vnni_sa2__avx512vnni(&as, &e0, nt)
                            : rq_gemv_vnni_sa__avx512vnni(&as, &e0, nt);
            /* raw = sum (A - za) (B_used + 128): za_u 0, zb_u + 128, rsum = sum (A - za) */
            if (rc == RQ_OK) rc = epi_corrections(&e, &bf, &as, 0, db + 128, rsum_d, NULL);
            rq_aligned_free(ad);
        } else {
            rc = kern == RQ_K_AVXVNNI_GEMV ? rq_gemv_vnni__avxvnni(a, &e0, za_any ? csum : NULL, nt)
                                           : rq_gemv_vnni__avx512vnni(a, &e0, za_any ? csum : NULL, nt);
            if (rc == RQ_OK) rc = epi_corrections(&e, &bf, a, da, db, rsum, csum);
        }
        if (rc == RQ_OK) epi(&e, 0, M, 0, N, raw, N + 64);
        rq_aligned_free(raw); rq_aligned_free(rsum); rq_aligned_free(csum);
        epi_free(&bf);
        return rc;
    }

    if (pb && (pb->K != K || pb->N != N || pb->b_signed != a->b_signed)) pb = NULL;
    if (!pb && kern == RQ_K_AMX && a->b_cs == 1 && isa >= RQ_ISA_AVX512VNNI &&
        rq_pack_b_rows__avx512vnni) {
        const size_t Kp0 = (size_t)rup(K > 0 ? K : 1, 64), Np0 = (size_t)rup(N, 16);
        /* one thread: just in time when packed B is large; threads: column slices when there
         * are at least two 64-column slices per thread */
        /* threads: column slices (each thread packs and computes its own) while packing B
         * dominates (few rows); with many rows, B packed whole (threads above 768K elements)
         * and the row strips shared out (measured at 2 threads: slices 55 vs 90 us at
         * 128x768x768, whole 100 vs 110 us at 512^3 and 620 vs 720 us at 1024^3) */
        /* few rows, B and A both in L2: the 64-column driver (measured with B as a plain array
         * in L2, 1 thread: 128x768x768 54.4 -> 50.6 us, 128x1024x1024 151 -> 118, 256x768x768
         * 96 -> 93; 2 threads, one run of groups each, against the column slices: 128x768x768
         * 41 -> 33 us, 256x768x768 63 -> 53; from 384 rows on, with numpy's misaligned A, the
         * paths below win: 512^3 79 vs 83 us, 512x768x384 90 vs 102; a B read from L3 / DRAM
         * packs faster in the 1 MiB blocks below: 64x4096x1024 516 vs 635 us) */
        if ((M <= RQ_KSLAB_MAX_M || (K >= 4096 && M <= 64) || (K > 4096 && M <= 128)) && rq_gemm_amx_kslab__amx &&
            rq_pack_b_walk__avx512vnni && rq_amx_kslab_on &&
            Kp0 * Np0 > (nt > 1 ? 4 * (size_t)RQ_JIT_MIN_BYTES : (size_t)RQ_JIT_MIN_BYTES))
            return gemm_amx_kslab(a, &e, &bf, isa, nt);
        if (RQ_WALKPACK && nt <= 1 && rq_gemm_amx_kslabp__amx && rq_pack_b_walk__avx512vnni &&
            M <= 2 * RQ_KSLABP_MAX_M && K >= 3072 && Kp0 * Np0 > 2 * (size_t)rq_l2_bytes())
            return gemm_amx_walkpack(a, &e, &bf, isa, nt);
        if (K <= 4096 && rq_gemm_amx_plain__amx && rq_amx_plain_on &&
            M <= RQ_AMX_PLAIN_MAX_M && Kp0 * Np0 <= (size_t)RQ_JIT_MIN_BYTES &&
            (size_t)M * Kp0 <= (size_t)rq_l2_bytes() / 4)
            return gemm_amx_plain(a, &e, &bf, nt);
        if ((nt <= 1 && Kp0 * Np0 > (size_t)RQ_JIT_MIN_BYTES) ||
            (nt > 1 && N >= 128 * nt && M <= RQ_JIT_THREADS_MAX_M))
            return gemm_amx_jit(a, &e, &bf, nt);
    }
    if (kern == RQ_K_VNNI_PLAIN) return gemm_vnni_plain(a, &e, &bf, isa, nt);   /* (rq_gemm_choose) */
    if (!pb) {
        /* AMX packs a uint8 B raw (tdpbuud / tdpbsud, no row-sum term for b_zp = 0) */
        own = pack_b_mode(a->B, a->b_rs, a->b_cs, K, N, a->b_signed, kern == RQ_K_AMX, isa, nt);
        if (!own) return RQ_ENOMEM;
        pb = own;
    }
    const int Kp = pb->Kp;

    if (kern == RQ_K_AMX) {
        rq_amx_a A;
        uint8_t *ap = NULL; int32_t *rsum = NULL; int64_t *koff = NULL;
        const int dbp = pb->b_raw ? 0 : db;
        rc = amx_prep_a(a, Kp, dbp, nt, &A, &ap, &rsum, &koff);
        if (rc == RQ_OK) rc = epi_corrections(&e, &bf, a, 0, dbp, rsum, pb->csum);
        /* few rows, packed B beyond the L2: by K slabs of up to 4096 rows read in place, every
         * column of a slab against all of A's slice before the next (the column blocks re-read
         * all of A once per block of half the L2).  Measured in-process, packed B, 1 / 2
         * threads: 64x4096x11008 5.5 -> 3.1 / 2.9 -> 1.6 ms, 128x4096x11008 10.8 -> 5.9 / 5.0 ->
         * 2.8 ms, 16x4096x4096 756 -> 640 / 416 -> 362 us, 64x4096x4096 1265 -> 1047 / 696 -> 601
         * us, 256x4096x4096 4.06 -> 3.40 / 2.15 -> 1.92 ms; slower with K <= 1024 (256x4096x1024
         * 936 -> 1112 us, 64x8192x1024 696 -> 757 us, 64x4096x768 249 -> 287 us at 1 thread) */
        if (rc == RQ_OK && RQ_KSLABP && rq_gemm_amx_kslabp__amx &&
            ((M <= RQ_KSLABP_MAX_M && K > RQ_KSLABP_MIN_K) || (M <= 2 * RQ_KSLABP_MAX_M && K >= 4096)) &&
            (size_t)Kp * pb->Np > (size_t)rq_l2_bytes()) {
            const int ldr = rup(pb->Np, 32) + 16;
            int32_t *R = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)((M + 15) / 16) * 16 * ldr + 256);
            rc = R ? rq_gemm_amx_kslabp__amx(&A, NULL, 0, pb, K, N, a->b_signed, RQ_KSLABP_ROWS, NULL, R, ldr, nt)
                   : RQ_ENOMEM;
            if (rc == RQ_OK) pick_epi(isa)(&e, 0, M, 0, N, R, ldr);
            rq_aligned_free(R);
        } else if (rc == RQ_OK) rc = rq_gemm_amx__amx(&A, pb, &e, nt);
        rq_aligned_free(ap); rq_aligned_free(rsum); rq_aligned_free(koff);
        epi_free(&bf);
        rq_packed_b_free(own);
        return rc;
    }

    /* RQ_K_VNNI, RQ_K_AVXVNNI: the kernel packs A itself and fills rsum; corrections need rsum first, so
     * compute rsum here (cheap, O(MK)). */
    {
        const int da = a->a_signed ? 128 : 0;
        int32_t *rsum = (int32_t *)rq_aligned_alloc(sizeof(int32_t) * (size_t)(M + 16));
        if (!rsum) rc = RQ_ENOMEM;
        /* the row sums serve only B's zero points (epi_corrections): with B_used's all zero
         * (symmetric int8 weights) A is not read for them (a 3136 x 576 im2col A: 17 us) */
        int zb_any = 0;
        for (int j = 0; j < a->b_zp_n; j++) zb_any |= (a->b_zp[j] + db) != 0;
        if (zb_any && a->ia) rc = RQ_EARG;   /* no row sums of implicit rows */
        if (rc == RQ_OK && !zb_any) {
            memset(rsum, 0, sizeof(int32_t) * (size_t)M);
        } else if (rc == RQ_OK) {
            a_used_row_sums(a, isa, rsum);
        }
        if (rc == RQ_OK) rc = epi_corrections(&e, &bf, a, da, db, rsum, pb->csum);
        if (rc == RQ_OK)
            rc = kern == RQ_K_AVXVNNI ? rq_gemm_vnni__avxvnni(a, pb, &e, epi, nt) : rq_gemm_vnni__avx512vnni(a, pb, &e, nt);
        rq_aligned_free(rsum);
        epi_free(&bf);
        rq_packed_b_free(own);
        return rc;
    }
}


/* ------------------------------------------------------------------ requantize */

typedef struct { const rq_epi *e; rq_epi_fn fn; const int32_t *acc; ptrdiff_t ldr; int rb, cb; int64_t ncb; } rqz_job;

static void rqz_task(void *ctx, int64_t t) {
    const rqz_job *J = (const rqz_job *)ctx;
    const int i0 = (int)((t / J->ncb) * J->rb), j0 = (int)((t % J->ncb) * J->cb);
    const int mi = imin(J->rb, J->e->M - i0), nj = imin(J->cb, J->e->N - j0);
    J->fn(J->e, i0, mi, j0, nj, J->acc + (ptrdiff_t)i0 * J->ldr + j0, J->ldr);
}

int rq_requantize_run(const rq_gemm_args *a, const int32_t *acc, ptrdiff_t acc_rs, int *isa_used) {
    if (!a || !acc || a->M < 0 || a->N < 0 || !a->mult || a->mult_n < 1 || a->od || a->fbias ||
        (a->out_type != RQ_OUT_U8 && a->out_type != RQ_OUT_S8))
        return RQ_EARG;
    const int isa = a->isa < 0 ? rq_isa_level() : imin(a->isa, rq_isa_level());
    rq_epi_fn fn = pick_epi(isa);
    if (isa_used)
        *isa_used = fn == rq_epi_rows__scalar ? RQ_ISA_SCALAR
                    : (fn == rq_epi_rows__avx2 ? RQ_ISA_AVX2 : RQ_ISA_AVX512);
    const int M = a->M, N = a->N;
    if (M == 0 || N == 0) return RQ_OK;
    rq_epi e; epi_base(&e, a);
    /* blocks of about 16K accumulators (64 KiB): whole rows up to 16K columns */
    const int cb = N <= 16384 ? N : 16384, rb = imax(1, 16384 / cb);
    /* (block counts in 64 bits: M or N near INT_MAX) */
    rqz_job J = {&e, fn, acc, acc_rs, rb, cb, ((int64_t)N + cb - 1) / cb};
    const int64_t nblk = (((int64_t)M + rb - 1) / rb) * J.ncb;
    const int nt = a->nthreads > 0 ? a->nthreads : rq_num_threads();
    rq_parallel(nblk, (int64_t)M * N >= 65536 ? nt : 1, rqz_task, &J);
    return RQ_OK;
}
