/* quant_dispatch.c -- whole-array QuantizeLinear / DequantizeLinear / min-max: ISA choice,
 * [outer, D, inner] walking, OpenMP over fixed chunks.  Portable (no ISA flags).
 *
 * Chunks have a fixed size (RQ_QCHUNK elements) independent of the thread count, and each
 * element is computed on its own, so the bits never depend on threads or ISA.  Chunks are
 * handed out dynamically: on a shared machine a preempted thread then delays only its own
 * chunk instead of half the array. */
#include "rq_cpu.h"
#include "rq_build.h"
#include "rq_quant.h"

#if defined(_OPENMP)
#  include <omp.h>
#endif

#include <stdlib.h>

#define RQ_QCHUNK ((int64_t)1 << 16)          /* elements per parallel work item */
#define RQ_NT_BYTES_DEFAULT ((int64_t)8 << 20) /* streaming stores from this output size on */

/* Output size (bytes) from which stores bypass the cache; REFQUANT_STREAM_BYTES overrides
 * (a tuning knob: -1 never streams).  Never changes results. */
static int64_t nt_bytes(void)
{
    const char *e = getenv("REFQUANT_STREAM_BYTES");
    if (e && *e) {
        long long v = atoll(e);
        return v < 0 ? INT64_MAX : (int64_t)v;
    }
    return RQ_NT_BYTES_DEFAULT;
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

static qrun_fn pick_q(int lvl)
{
#if RQ_COMPILED_AVX512
    if (lvl >= RQ_ISA_AVX512) return rq_quantize_run__avx512;
#endif
#if RQ_COMPILED_AVX2
    if (lvl >= RQ_ISA_AVX2) return rq_quantize_run__avx2;
#endif
    (void)lvl;
    return rq_quantize_run__scalar;
}

static dqrun_fn pick_dq(int lvl)
{
#if RQ_COMPILED_AVX512
    if (lvl >= RQ_ISA_AVX512) return rq_dequantize_run__avx512;
#endif
#if RQ_COMPILED_AVX2
    if (lvl >= RQ_ISA_AVX2) return rq_dequantize_run__avx2;
#endif
    (void)lvl;
    return rq_dequantize_run__scalar;
}

static minmax_fn pick_mm(int lvl)
{
#if RQ_COMPILED_AVX512
    if (lvl >= RQ_ISA_AVX512) return rq_minmax_f32__avx512;
#endif
#if RQ_COMPILED_AVX2
    if (lvl >= RQ_ISA_AVX2) return rq_minmax_f32__avx2;
#endif
    (void)lvl;
    return rq_minmax_f32__scalar;
}

static int q_size(int t) { return (t == RQ_Q_U16 || t == RQ_Q_I16) ? 2 : (t == RQ_Q_I32 ? 4 : 1); }
static int f_size(int t) { return t == RQ_F_F16 ? 2 : 4; }

static int threads_for(int64_t n, int nthreads)
{
    if (nthreads <= 0) nthreads = rq_num_threads();
    int64_t chunks = (n + RQ_QCHUNK - 1) / RQ_QCHUNK;
    if (chunks < nthreads) nthreads = (int)(chunks > 0 ? chunks : 1);
    return nthreads < 1 ? 1 : nthreads;
}

int rq_quantize(const void *x, int in_type, void *y, int out_type, const float *s,
                const int32_t *zp, int64_t outer, int64_t D, int64_t inner, int div_f16,
                int isa_cap, int nthreads)
{
    if (outer < 0 || D < 1 || inner < 0 || out_type < 0 || out_type >= RQ_Q_I32 ||
        (in_type != RQ_F_F32 && in_type != RQ_F_F16))
        return -1;
    int lvl = rq_quant_level(isa_cap);
    qrun_fn fn = pick_q(lvl);
    const int64_t N = outer * D * inner;
    if (N == 0) return lvl;
    const int isz = f_size(in_type), osz = q_size(out_type);
    const int nt = threads_for(N, nthreads);
    const int ntemp = N * osz >= nt_bytes();
    const int64_t nchunks = (N + RQ_QCHUNK - 1) / RQ_QCHUNK;
    (void)nt;
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
#endif
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t a0 = c * RQ_QCHUNK, b0 = a0 + RQ_QCHUNK < N ? a0 + RQ_QCHUNK : N;
        rq_qrun_args r;
        r.in_type = in_type; r.out_type = out_type; r.div_f16 = div_f16; r.nontemporal = ntemp;
        int64_t pos = a0;
        while (pos < b0) {
            int64_t len, d;
            if (D == 1) {
                d = 0; len = b0 - pos; r.pstride = 0;
            } else if (inner == 1) {
                d = pos % D; len = D - d; r.pstride = 1;
            } else {
                d = (pos / inner) % D; len = inner - pos % inner; r.pstride = 0;
            }
            if (len > b0 - pos) len = b0 - pos;
            r.x = (const char *)x + pos * isz;
            r.y = (char *)y + pos * osz;
            r.s = s + d;
            r.zp = zp + d;
            r.n = len;
            fn(&r);
            pos += len;
        }
    }
    return lvl;
}

int rq_dequantize(const void *x, int in_type, void *y, int out_type, const float *s,
                  const int32_t *zp, int64_t outer, int64_t D, int64_t inner,
                  int isa_cap, int nthreads)
{
    if (outer < 0 || D < 1 || inner < 0 || in_type < 0 || in_type >= RQ_Q_COUNT ||
        (out_type != RQ_F_F32 && out_type != RQ_F_F16))
        return -1;
    int lvl = rq_quant_level(isa_cap);
    dqrun_fn fn = pick_dq(lvl);
    const int64_t N = outer * D * inner;
    if (N == 0) return lvl;
    const int isz = q_size(in_type), osz = f_size(out_type);
    const int nt = threads_for(N, nthreads);
    const int ntemp = N * osz >= nt_bytes();
    const int64_t nchunks = (N + RQ_QCHUNK - 1) / RQ_QCHUNK;
    (void)nt;
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
#endif
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t a0 = c * RQ_QCHUNK, b0 = a0 + RQ_QCHUNK < N ? a0 + RQ_QCHUNK : N;
        rq_dqrun_args r;
        r.in_type = in_type; r.out_type = out_type; r.nontemporal = ntemp;
        int64_t pos = a0;
        while (pos < b0) {
            int64_t len, d;
            if (D == 1) {
                d = 0; len = b0 - pos; r.pstride = 0;
            } else if (inner == 1) {
                d = pos % D; len = D - d; r.pstride = 1;
            } else {
                d = (pos / inner) % D; len = inner - pos % inner; r.pstride = 0;
            }
            if (len > b0 - pos) len = b0 - pos;
            r.x = (const char *)x + pos * isz;
            r.y = (char *)y + pos * osz;
            r.s = s + d;
            r.zp = zp + d;
            r.n = len;
            fn(&r);
            pos += len;
        }
    }
    return lvl;
}

int rq_minmax_f32(const float *x, int64_t n, float *mn, float *mx, int *nonfinite,
                  int isa_cap, int nthreads)
{
    int lvl = rq_quant_level(isa_cap);
    minmax_fn fn = pick_mm(lvl);
    *nonfinite = 0;
    if (n <= 0) return lvl;
    const int64_t nchunks = (n + RQ_QCHUNK - 1) / RQ_QCHUNK;
    const int nt = threads_for(n, nthreads);
    float lo = x[0], hi = x[0];
    int bad = 0;
    (void)nt;
#if defined(_OPENMP)
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        float tlo = x[0], thi = x[0];
        int tbad = 0;
#if defined(_OPENMP)
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t c = 0; c < nchunks; c++) {
            int64_t a0 = c * RQ_QCHUNK, len = a0 + RQ_QCHUNK < n ? RQ_QCHUNK : n - a0;
            float clo, chi;
            tbad |= fn(x + a0, len, &clo, &chi);
            tlo = clo < tlo ? clo : tlo;
            thi = chi > thi ? chi : thi;
        }
#if defined(_OPENMP)
#pragma omp critical(rq_minmax)
#endif
        {
            lo = tlo < lo ? tlo : lo;
            hi = thi > hi ? thi : hi;
            bad |= tbad;
        }
    }
    *mn = lo;
    *mx = hi;
    *nonfinite = bad;
    return lvl;
}
