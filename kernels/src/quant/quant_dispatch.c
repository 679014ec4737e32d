/* quant_dispatch.c -- whole-array QuantizeLinear / DequantizeLinear / min-max: ISA choice,
 * [outer, D, inner] walking, OpenMP over fixed chunks.  Portable (no ISA flags).
 *
 * Chunks have a fixed size (RQ_QCHUNK elements) independent of the thread count, and each
 * element is computed on its own, so the bits never depend on threads or ISA.  Chunks are
 * claimed dynamically through rq_parallel (kernels/src/common/rq_pool.h): the caller takes
 * part and never waits for a worker that has not started, which matters on a shared machine
 * (an OpenMP region's join waits a whole scheduler slice for a preempted thread). */
#include "rq_cpu.h"
#include "rq_build.h"
#include "rq_quant.h"
#include "rq_quant_core.h"

#include "rq_pool.h"

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
#include <xmmintrin.h>
#define RQ_STREAM_FENCE() _mm_sfence()
#else
#define RQ_STREAM_FENCE() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#endif

#include <stdlib.h>
#include <string.h>

#define RQ_QCHUNK ((int64_t)1 << 16)          /* elements per parallel work item */
#define RQ_NT_BYTES_DEFAULT ((int64_t)8 << 20) /* streaming stores from this output size on */

/* Whether the stores bypass the cache (non-temporal): from 8 MiB of output.  A rule by the
 * last-level cache (stream only when input and output exceed it) was tried and dropped, 1
 * thread, DequantizeLinear u8 -> f32:
 *   Zen 5 (32 MiB L3), 4M elements (4 + 16 MiB), the same call repeated: cached 286 us,
 *   streamed 417; but in bench_quant's rounds alternating with ORT: cached 0.85x ORT,
 *   streamed 1.01x;
 *   a Sapphire Rapids-class Xeon VM (300 MiB L3 reported), 16M elements (16 + 64 MiB):
 *   cached 1.6-1.9 GB/s, streamed 3.6-4.0.
 * REFQUANT_STREAM_BYTES=n streams from n bytes of output instead (-1: never).  Never changes
 * results. */
static int stream_auto(int64_t in_bytes, int64_t out_bytes)
{
    (void)in_bytes;
    const char *e = getenv("REFQUANT_STREAM_BYTES");
    if (e && *e) {
        long long v = atoll(e);
        return v >= 0 && out_bytes >= (int64_t)v;
    }
    return out_bytes >= RQ_NT_BYTES_DEFAULT;
}

/* The per-tensor quantize form: x / s where the division is fast (rq_cpu_fast_div) and the
 * data comes from cache, else the division-free form.  With streaming stores (data from
 * DRAM) the division-free form is ahead even there (Zen 5, 16M elements, 1 thread: 11.0
 * against 9.1 Gelem/s; in L2 / L3 13.7 against 10.2).  REFQUANT_QUANT_DIVIDE=1 / 0 forces
 * either (tests); never changes results. */
static int quant_divide(int ntemp)
{
    const char *e = getenv("REFQUANT_QUANT_DIVIDE");
    if (e && *e) return atoi(e) != 0;
    return rq_cpu_fast_div() && !ntemp;
}

typedef void (*qrun_fn)(const rq_qrun_args *);
typedef void (*dqrun_fn)(const rq_dqrun_args *);
typedef int (*minmax_fn)(const float *, int64_t, float *, float *);

int rq_quant_level(int isa_cap)
{
    int lvl = rq_isa_level();
    if (isa_cap >= 0 && isa_cap < lvl) lvl = isa_cap;
    /* this family has scalar, avx2 and avx512 units; higher levels use avx512 */
    if (lvl >= RQ_ISA_AVX512) {
#if RQ_COMPILED_AVX512
        return RQ_ISA_AVX512;
#else
        lvl = RQ_ISA_AVX2;
#endif
    }
    if (lvl >= RQ_ISA_AVX2) {
#if RQ_COMPILED_AVX2
        return RQ_ISA_AVX2;
#endif
    }
    return RQ_ISA_SCALAR;
}

/* The ISA's run function, FN##__avx512 / __avx2 / __scalar, for a level (one picker each) */
#if RQ_COMPILED_AVX512
#define RQ_PICK_AVX512_(FN) if (lvl >= RQ_ISA_AVX512) return FN##__avx512;
#else
#define RQ_PICK_AVX512_(FN)
#endif
#if RQ_COMPILED_AVX2
#define RQ_PICK_AVX2_(FN) if (lvl >= RQ_ISA_AVX2) return FN##__avx2;
#else
#define RQ_PICK_AVX2_(FN)
#endif
#define RQ_PICK(TYPE, NAME, FN) \
    static TYPE NAME(int lvl) { RQ_PICK_AVX512_(FN) RQ_PICK_AVX2_(FN) (void)lvl; return FN##__scalar; }

typedef void (*cvt16_fn)(const float *, uint16_t *, int64_t);
RQ_PICK(qrun_fn, pick_q, rq_quantize_run)
RQ_PICK(dqrun_fn, pick_dq, rq_dequantize_run)
RQ_PICK(cvt16_fn, pick_cvt16, rq_cvt_f32_f16)
RQ_PICK(cvt16_fn, pick_cvtbf16, rq_cvt_f32_bf16)
RQ_PICK(minmax_fn, pick_mm, rq_minmax_f32)

static int q_size(int t) { return (t == RQ_Q_U16 || t == RQ_Q_I16) ? 2 : (t == RQ_Q_I32 ? 4 : 1); }
static int f_size(int t) { return t == RQ_F_F16 ? 2 : 4; }

static int threads_for(int64_t n, int nthreads)
{
    if (nthreads <= 0) nthreads = rq_num_threads();
    int64_t chunks = (n + RQ_QCHUNK - 1) / RQ_QCHUNK;
    if (chunks < nthreads) nthreads = (int)(chunks > 0 ? chunks : 1);
    return nthreads < 1 ? 1 : nthreads;
}

/* ---- float8 / float6 / float4 (rq_f8.h) ------------------------------------------------ */

typedef void (*qf8_fn)(const float *, uint8_t *, const float *, const float *, int64_t, int, int, int);
typedef void (*dqf8_fn)(const uint8_t *, float *, const float *, const float *, const float *, int64_t, int);
RQ_PICK(qf8_fn, pick_qf8, rq_quantize_f8)
RQ_PICK(dqf8_fn, pick_dqf8, rq_dequantize_f8)

typedef struct {
    const float *xf; uint8_t *y8;              /* quantize */
    const uint8_t *x8; float *yf; const float *tab;   /* dequantize */
    const float *s, *z; int64_t D, inner, n, block, nb; int fmt, pe, sat, zc;
    qf8_fn q; dqf8_fn dq;
} f8job;

/* blocks shorter than these along the last axis take per-element scale runs of F8_EXPAND
 * elements: a call per block costs about 20 ns (QuantizeLinear, blocks of 16: 4.1 -> 0.9 ms per
 * 2M elements).  DequantizeLinear's per-block calls are cheaper, so its crossing is lower
 * (2M elements, blocks of 32: 0.89 ms per block, 0.58 expanded; blocks of 64: 0.49 / 0.53) */
#define F8_SHORT_BLOCK_Q 128
#define F8_SHORT_BLOCK_DQ 48
#define F8_EXPAND 1024

/* The run [i, i + len) with its scales and zero points written out per element into L1
 * buffers (up to F8_EXPAND elements): element t takes entry k, which advances every `step`
 * elements (the first step `rem` long) by one, wrapping from `wrap` back to 0 (wrap 0: never). */
static void f8_expanded(const f8job *j, int64_t i, int64_t len, int64_t k, int64_t rem, int64_t step,
                        int64_t wrap)
{
    float sb[F8_EXPAND], zb[F8_EXPAND];
    for (int64_t t = 0; t < len;) {
        const float sv = j->s[k], zv = j->z[j->zc ? 0 : k];
        const int64_t c = rem < len - t ? rem : len - t;
        for (int64_t u = 0; u < c; u++) { sb[t + u] = sv; zb[t + u] = zv; }
        t += c;
        rem = step;
        k = (k + 1 == wrap) ? 0 : k + 1;
    }
    const float *zz = j->zc ? j->z : zb;
    const int pe = j->zc ? 1 : 3;
    if (j->q) j->q(j->xf + i, j->y8 + i, sb, zz, len, j->fmt, pe, j->sat);
    else j->dq(j->x8 + i, j->yf + i, j->tab, sb, zz, len, pe);
}

/* elements [c * RQ_QCHUNK, ...) of the flattened [outer, D, inner] tensor, cut at the runs of
 * one scale (or one row of per-element scales); pe for the kernels: bit 0 a scale per element,
 * bit 1 a zero point per element (not when one zero point serves the whole tensor: zc) */
static void f8_chunk(void *ctx, int64_t c)
{
    const f8job *j = (const f8job *)ctx;
    int64_t i = c * RQ_QCHUNK;
    const int64_t end = i + RQ_QCHUNK < j->n ? i + RQ_QCHUNK : j->n;
    const int short_block = j->q ? F8_SHORT_BLOCK_Q : F8_SHORT_BLOCK_DQ;
    while (i < end) {
        const int64_t r = i / j->inner, off = i - r * j->inner;
        int64_t len = (j->inner - off < end - i) ? j->inner - off : end - i;
        int64_t k;
        int pe = j->pe ? (j->zc ? 1 : 3) : 0;
        if (j->block) {
            /* blocked: row r = (o, a) takes the scales (o, a / block, :); with inner == 1 a run
             * is the rest of a's block (one scale), else the row (a scale per element) */
            const int64_t o = r / j->D, a = r - o * j->D;
            k = (o * j->nb + a / j->block) * j->inner;
            if (j->inner == 1 && j->block < short_block) {
                /* short blocks along the last axis: up to F8_EXPAND elements of the row, one
                 * per-element run instead of a call per block */
                len = j->D - a;
                if (end - i < len) len = end - i;
                if (len > F8_EXPAND) len = F8_EXPAND;
                f8_expanded(j, i, len, k, j->block - a % j->block, j->block, 0);
                i += len;
                continue;
            }
            if (j->inner == 1) {
                int64_t m = j->block - a % j->block;
                if (j->D - a < m) m = j->D - a;
                len = end - i < m ? end - i : m;
                pe = 0;
            } else {
                k += off;
                pe = j->zc ? 1 : 3;
            }
        } else if (!j->pe && j->D > 1 && j->inner < 64) {
            /* per axis with the axis last or nearly (runs of inner < 64 elements): inner == 1
             * runs along the scales themselves; else up to F8_EXPAND elements expanded */
            const int64_t a = r % j->D;
            if (j->inner == 1) {
                len = j->D - a;
                if (end - i < len) len = end - i;
                k = a;
                pe = j->zc ? 1 : 3;
            } else {
                len = end - i < F8_EXPAND ? end - i : F8_EXPAND;
                f8_expanded(j, i, len, a, j->inner - off, j->inner, j->D);
                i += len;
                continue;
            }
        } else {
            k = j->pe ? off : r % j->D;     /* the scale: per element of a row, or per d */
        }
        if (j->q) j->q(j->xf + i, j->y8 + i, j->s + k, j->z + (j->zc ? 0 : k), len, j->fmt, pe, j->sat);
        else j->dq(j->x8 + i, j->yf + i, j->tab, j->s + k, j->z + (j->zc ? 0 : k), len, pe);
        i += len;
    }
}

static int f8_run(f8job *j, int64_t outer, int64_t D, int64_t inner, int64_t block, int isa_cap,
                  int nthreads)
{
    if (outer < 0 || D < 1 || inner < 0 || block < 0 || (j->pe && (D != 1 || block))) return -1;
    const int lvl = rq_quant_level(isa_cap);
    j->D = D; j->inner = inner; j->n = outer * D * inner;
    j->block = block; j->nb = block ? (D + block - 1) / block : 0;
    if (j->n == 0) return lvl;
    if (j->xf) j->q = pick_qf8(lvl); else j->dq = pick_dqf8(lvl);
    const int64_t nchunks = (j->n + RQ_QCHUNK - 1) / RQ_QCHUNK;
    rq_parallel(nchunks, threads_for(j->n, nthreads), f8_chunk, j);
    return lvl;
}

int rq_quantize_f8(const float *x, uint8_t *y, const float *s, const float *z, int zc, int64_t outer,
                   int64_t D, int64_t inner, int64_t block, int fmt, int pe, int sat, int isa_cap,
                   int nthreads)
{
    if (fmt < RQ_F8_E4M3FN || fmt > RQ_F6_E3M2FN || sat < 0 || sat > 2
        || (fmt >= RQ_F4_E2M1FN && sat != 1))
        return -1;
    f8job j;
    memset(&j, 0, sizeof(j));
    j.xf = x; j.y8 = y; j.s = s; j.z = z; j.zc = zc; j.fmt = fmt; j.pe = pe; j.sat = sat;
    return f8_run(&j, outer, D, inner, block, isa_cap, nthreads);
}

int rq_dequantize_f8(const uint8_t *x, float *y, const float *tab, const float *s, const float *z, int zc,
                     int64_t outer, int64_t D, int64_t inner, int64_t block, int pe, int isa_cap,
                     int nthreads)
{
    f8job j;
    memset(&j, 0, sizeof(j));
    j.x8 = x; j.yf = y; j.tab = tab; j.s = s; j.z = z; j.zc = zc; j.pe = pe;
    return f8_run(&j, outer, D, inner, block, isa_cap, nthreads);
}

typedef struct {
    const void *x; void *y; const float *s; const int32_t *zp;
    int64_t N, D, inner, block; int in_type, out_type, div_f16, ntemp, isz, osz, variant, divide;
    qrun_fn qfn; dqrun_fn dqfn;
    int64_t runlen;     /* inner == 1: a run ends at a multiple of runlen (D, or periodic_params') */
    void (*cvt16)(const float *, uint16_t *, int64_t);   /* RQ_F_F16_VIA32 / RQ_F_BF16_VIA32: the
                                                          * runs write float32 blocks that this
                                                          * rounds into y */
} qjob;

/* Per-axis parameters whose runs would be short: the channel axis last (inner == 1) with few
 * channels, or few elements per channel (NCHW with a small image).  Each run then covered one
 * row of D elements, or inner elements, and its setup (the modulo, the call, the aligned
 * prologue) cost more than the row: 16M float32 over 3 channels (the last axis) took 25x as
 * long as per tensor.  Instead the parameters are laid out with period P = D * inner,
 * s2[i] = s[(i / inner) % D], repeated k times (k P >= RQ_PERIOD_RUN elements), and the call
 * walks [outer, P, 1] in runs that end at multiples of k P (pstride 1; a run from phase d reads
 * s2[d .. k P)): the same parameter for every element, so the same bits.  Returns the table (the
 * caller frees it) or NULL where runs are long already, the table would not fit in L2
 * (P > 16384) or the call is too small to pay for it. */
#define RQ_PERIOD_RUN 1024
#define RQ_PERIOD_MAX_INNER 64
#define RQ_PERIOD_MAX_P 16384
static void *periodic_params(qjob *j)
{
    const int64_t D = j->D, inner = j->inner, P = D * inner;
    if (j->block || D < 2 || inner < 1 || P > RQ_PERIOD_MAX_P) return NULL;
    if (inner == 1 ? D >= RQ_PERIOD_RUN : inner >= RQ_PERIOD_MAX_INNER) return NULL;
    const int64_t k = (RQ_PERIOD_RUN + P - 1) / P, R = P * k;
    if (j->N < 2 * R) return NULL;
    char *buf = (char *)malloc((size_t)R * (sizeof(float) + sizeof(int32_t)));
    if (!buf) return NULL;
    float *s2 = (float *)buf;
    int32_t *z2 = (int32_t *)(buf + (size_t)R * sizeof(float));
    for (int64_t c = 0, i = 0; c < D; c++)
        for (int64_t e = 0; e < inner; e++, i++) { s2[i] = j->s[c]; z2[i] = j->zp[c]; }
    for (int64_t i = P; i < R; i++) { s2[i] = s2[i - P]; z2[i] = z2[i - P]; }
    j->s = s2; j->zp = z2; j->D = P; j->inner = 1; j->runlen = k * P;
    return buf;
}

/* Elements [a0, b0): split into runs that share parameters.  Element pos is written at
 * ydst + (pos - ypos0) * osz, with streaming stores when nt. */
static void q_range(const qjob *j, int64_t a0, int64_t b0, char *ydst, int64_t ypos0, int osz, int nt)
{
    rq_qrun_args r;
    rq_dqrun_args dr;
    int64_t pos = a0;
    /* blocked along the contiguous axis: walk the blocks without the 64-bit divisions per run
     * (each run is one block, 32 elements for the usual int4 weights; the divisions were a large
     * part of those short runs) */
    const int blocked_rows = j->block > 0 && j->inner == 1;
    const int64_t Dbk = j->block > 0 ? (j->D + j->block - 1) / j->block : 0;
    int64_t bo = 0, bax = 0, bbi = 0;
    if (blocked_rows) { bo = pos / j->D; bax = pos % j->D; bbi = bax / j->block; }
    /* block runs (pstride -k) for the AVX-512 quantize (onnx formula) and dequantize, blocks
     * of 2^k >= 16 */
    int bshift = 0;
#if RQ_COMPILED_AVX512
    if (blocked_rows && ((j->qfn == rq_quantize_run__avx512 && j->variant == 0) ||
                         (!j->qfn && j->dqfn == rq_dequantize_run__avx512)) &&
        j->block >= 16 && (j->block & (j->block - 1)) == 0)
        while (((int64_t)1 << bshift) < j->block) bshift++;
#endif
    while (pos < b0) {
        int64_t len, d;
        int ps;
        if (blocked_rows && bshift && bax % j->block == 0) {
            /* from a block boundary: the rest of the row (or of the chunk) in one AVX-512 run with
             * one parameter per 2^bshift elements (1024x1024 int4, blocks of 32: one run per
             * block cost twice as much) */
            d = bo * Dbk + bbi; len = j->D - bax; ps = -bshift;
            if (len > b0 - pos) len = b0 - pos;
            bax += len;
            bbi = bax / j->block;
            if (bax >= j->D) { bo++; bax = 0; bbi = 0; }
        } else if (blocked_rows) {
            int64_t end = (bbi + 1) * j->block;
            if (end > j->D) end = j->D;
            d = bo * Dbk + bbi; len = end - bax; ps = 0;
            if (len > b0 - pos) len = b0 - pos;
            bax += len;
            if (bax >= end) { bbi++; if (bax >= j->D) { bo++; bax = 0; bbi = 0; } }
        } else if (j->block > 0) {
            /* blocked: parameters [outer, ceil(D / block), inner] */
            const int64_t Db = (j->D + j->block - 1) / j->block;
            int64_t o = pos / (j->D * j->inner), rem = pos % (j->D * j->inner);
            int64_t ax = rem / j->inner, in = rem % j->inner;
            int64_t base = (o * Db + ax / j->block) * j->inner;
            if (j->inner == 1) {
                int64_t end = (ax / j->block + 1) * j->block;
                if (end > j->D) end = j->D;
                d = base; len = end - ax; ps = 0;
            } else {
                d = base + in; len = j->inner - in; ps = 1;
            }
        } else if (j->D == 1) {
            d = 0; len = b0 - pos; ps = 0;
        } else if (j->inner == 1) {
            d = pos % j->D; len = j->runlen - d; ps = 1;
        } else {
            d = (pos / j->inner) % j->D; len = j->inner - pos % j->inner; ps = 0;
        }
        if (len > b0 - pos) len = b0 - pos;
        if (j->qfn) {
            r.x = (const char *)j->x + pos * j->isz;
            r.y = ydst + (pos - ypos0) * osz;
            r.s = j->s + d; r.zp = j->zp + d; r.n = len; r.pstride = ps;
            r.in_type = j->in_type; r.out_type = j->out_type; r.div_f16 = j->div_f16;
            r.nontemporal = nt; r.variant = j->variant; r.divide = j->divide;
            j->qfn(&r);
        } else {
            dr.x = (const char *)j->x + pos * j->isz;
            dr.y = ydst + (pos - ypos0) * osz;
            dr.s = j->s + d; dr.zp = j->zp + d; dr.n = len; dr.pstride = ps;
            dr.in_type = j->in_type; dr.out_type = j->out_type; dr.nontemporal = nt;
            dr.sts = j->variant;
            j->dqfn(&dr);
        }
        pos += len;
    }
}

#define RQ_CAST_BLK 2048   /* RQ_F_F16_VIA32: float32 elements a block (8 KiB on the stack) */

/* One chunk [c * RQ_QCHUNK, ...) */
static void q_chunk(void *ctx, int64_t c)
{
    const qjob *j = (const qjob *)ctx;
    int64_t a0 = c * RQ_QCHUNK, b0 = a0 + RQ_QCHUNK < j->N ? a0 + RQ_QCHUNK : j->N;
    if (j->cvt16) {
        /* float32 results a block at a time in L1, each rounded once into the float16 output
         * (the glue's numpy cast of a whole float32 result took 5 ns an element) */
        float tmp[RQ_CAST_BLK] __attribute__((aligned(64)));
        for (int64_t p = a0; p < b0; p += RQ_CAST_BLK) {
            const int64_t e = p + RQ_CAST_BLK < b0 ? p + RQ_CAST_BLK : b0;
            q_range(j, p, e, (char *)tmp, p, 4, 0);
            j->cvt16(tmp, (uint16_t *)j->y + p, e - p);
        }
        return;
    }
    q_range(j, a0, b0, (char *)j->y, 0, j->osz, j->ntemp);
    /* the runs' streaming stores are ordered once per chunk, not per run: an sfence after each
     * 1024-element run of a per-axis DequantizeLinear (4096 x 1024, 16 MiB streamed) drained
     * the write-combining buffers 4096 times (Zen 5, 1 thread: 0.45x ORT) */
    if (j->ntemp) RQ_STREAM_FENCE();
}

int rq_quantize(const void *x, int in_type, void *y, int out_type, const float *s,
                const int32_t *zp, int64_t outer, int64_t D, int64_t inner, int64_t block,
                int div_f16, int isa_cap, int nthreads, int stream, int variant)
{
    if (outer < 0 || D < 1 || inner < 0 || block < 0 || out_type < 0 || out_type >= RQ_Q_I32 ||
        (in_type != RQ_F_F32 && in_type != RQ_F_F16) || (variant && div_f16) || div_f16 < 0 || div_f16 > 2 ||
        (variant & ~(RQ_QV_WRAP | RQ_QV_NANWRAP | RQ_QV_P16 | ((4 << RQ_QV_NAN_SHIFT) - 1))) ||
        ((variant & RQ_QV_NANWRAP) && !(variant & RQ_QV_WRAP)) ||
        ((variant & RQ_QV_RAWAY) && (variant & RQ_QV_RUP)))
        return -1;
    int lvl = rq_quant_level(isa_cap);
    const int64_t N = outer * D * inner;
    if (N == 0) return lvl;
    qjob j = {x, y, s, zp, N, D, inner, block, in_type, out_type, div_f16, 0, f_size(in_type),
              q_size(out_type), variant, 0, pick_q(lvl), 0, D};
    j.ntemp = stream > 0 || (stream < 0 && stream_auto(N * j.isz, N * j.osz));
    j.divide = quant_divide(j.ntemp);
    void *table = periodic_params(&j);
    rq_parallel((N + RQ_QCHUNK - 1) / RQ_QCHUNK, threads_for(N, nthreads), q_chunk, &j);
    free(table);
    return lvl;
}

int rq_dequantize(const void *x, int in_type, void *y, int out_type, const float *s,
                  const int32_t *zp, int64_t outer, int64_t D, int64_t inner, int64_t block,
                  int isa_cap, int nthreads, int stream, int sts)
{
    if (outer < 0 || D < 1 || inner < 0 || block < 0 || in_type < 0 || in_type >= RQ_Q_COUNT ||
        (out_type != RQ_F_F32 && out_type != RQ_F_F16 && out_type != RQ_F_F16_VIA32 &&
         out_type != RQ_F_BF16_VIA32))
        return -1;
    if (sts && (out_type != RQ_F_F32 || block || (in_type != RQ_Q_U8 && in_type != RQ_Q_I8 &&
                                                  in_type != RQ_Q_U16 && in_type != RQ_Q_I16)))
        return -1;
    int lvl = rq_quant_level(isa_cap);
    const int64_t N = outer * D * inner;
    if (N == 0) return lvl;
    const int via32 = out_type == RQ_F_F16_VIA32 || out_type == RQ_F_BF16_VIA32;
    qjob j = {x, y, s, zp, N, D, inner, block, in_type, via32 ? RQ_F_F32 : out_type, 0, 0, q_size(in_type),
              via32 ? 2 : f_size(out_type), 0, 0, 0, pick_dq(lvl), D,
              via32 ? (out_type == RQ_F_BF16_VIA32 ? pick_cvtbf16(lvl) : pick_cvt16(lvl)) : 0};
    j.ntemp = !via32 && (stream > 0 || (stream < 0 && stream_auto(N * j.isz, N * j.osz)));
    j.variant = sts;
    void *table = periodic_params(&j);
    rq_parallel((N + RQ_QCHUNK - 1) / RQ_QCHUNK, threads_for(N, nthreads), q_chunk, &j);
    free(table);
    return lvl;
}

#define RQ_QV_SIMD_CASE_(V, unused) case (V):
int rq_quant_variant_simd(int variant)
{
    switch (variant & ~(3 << RQ_QV_NAN_SHIFT)) {
    RQ_QV_SIMD_LIST(RQ_QV_SIMD_CASE_, 0)
        return 1;
    default:
        return 0;
    }
}
#undef RQ_QV_SIMD_CASE_

typedef struct {
    const float *x; int64_t n; minmax_fn fn;
    float *lo, *hi; int *bad;      /* per chunk */
} mmjob;

static void mm_chunk(void *ctx, int64_t c)
{
    const mmjob *j = (const mmjob *)ctx;
    int64_t a0 = c * RQ_QCHUNK, len = a0 + RQ_QCHUNK < j->n ? RQ_QCHUNK : j->n - a0;
    j->bad[c] = j->fn(j->x + a0, len, &j->lo[c], &j->hi[c]);
}

int rq_minmax_f32(const float *x, int64_t n, float *mn, float *mx, int *nonfinite,
                  int isa_cap, int nthreads)
{
    int lvl = rq_quant_level(isa_cap);
    minmax_fn fn = pick_mm(lvl);
    *nonfinite = 0;
    if (n <= 0) return lvl;
    const int64_t nchunks = (n + RQ_QCHUNK - 1) / RQ_QCHUNK;
    float lo1, hi1;
    int bad1;
    mmjob j = {x, n, fn, &lo1, &hi1, &bad1};
    float *buf = 0;
    if (nchunks > 1) {
        buf = (float *)malloc((size_t)nchunks * (2 * sizeof(float) + sizeof(int)));
        if (!buf) { nthreads = 1; }
    }
    if (buf) {
        j.lo = buf; j.hi = buf + nchunks; j.bad = (int *)(buf + 2 * nchunks);
        rq_parallel(nchunks, threads_for(n, nthreads), mm_chunk, &j);
    } else {
        /* single chunk, or no memory for per-chunk results: one pass */
        bad1 = fn(x, n, &lo1, &hi1);
        *mn = lo1; *mx = hi1; *nonfinite = bad1;
        return lvl;
    }
    float lo = j.lo[0], hi = j.hi[0];
    int bad = 0;
    for (int64_t c = 0; c < nchunks; c++) {
        lo = j.lo[c] < lo ? j.lo[c] : lo;
        hi = j.hi[c] > hi ? j.hi[c] : hi;
        bad |= j.bad[c];
    }
    free(buf);
    *mn = lo;
    *mx = hi;
    *nonfinite = bad;
    return lvl;
}
