/* rq_pool.c -- see rq_pool.h.  Portable (pthreads; serial elsewhere). */
#include "rq_pool.h"

#if defined(__x86_64__) || defined(_M_X64)
#  include <xmmintrin.h>
/* Kernels compute in the default floating-point environment (round to nearest even, no
 * flush-to-zero / denormals-are-zero) on every thread, whatever the caller's MXCSR. */
#  define RQ_FPENV_SAVE_DEFAULT(saved) do { (saved) = _mm_getcsr(); _mm_setcsr(0x1F80u); } while (0)
#  define RQ_FPENV_RESTORE(saved) _mm_setcsr(saved)
#else
#  define RQ_FPENV_SAVE_DEFAULT(saved) do { (saved) = 0; } while (0)
#  define RQ_FPENV_RESTORE(saved) do { (void)(saved); } while (0)
#endif

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>

#define RQ_POOL_MAX 256

/* chunks are split into one contiguous range per participant (the caller is participant 0,
 * workers number themselves in the order they join); each claims its own range first, then
 * takes what is left of the others' (a worker the scheduler has not started yet holds nothing
 * up).  With a stable number of threads the same thread tends to get the same chunks call
 * after call, so the data a chunk reads (a column block of packed weights) stays in that
 * core's cache. */
#define RQ_POOL_PARTS 16
typedef struct {
    int64_t next;          /* atomic: next chunk of this range to claim */
    int64_t end;
    char pad[64 - 2 * sizeof(int64_t)];   /* one cache line each */
} __attribute__((aligned(64))) rq_range;

typedef struct rq_job {
    rq_chunk_fn fn;
    void *ctx;
    int64_t nchunks;
    int nparts;
    rq_range part[RQ_POOL_PARTS];
} rq_job;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_work = PTHREAD_COND_INITIALIZER;    /* workers wait for a job */
static pthread_cond_t g_idle = PTHREAD_COND_INITIALIZER;    /* caller waits for active == 0 */
static rq_job *g_job = 0;       /* current job (NULL: none open for joining) */
static unsigned long g_gen = 0; /* job generation */
static int g_want = 0;          /* workers allowed to join the current job */
static int g_joined = 0;        /* workers that joined it */
static int g_active = 0;        /* workers inside a job */
static int g_busy = 0;          /* a caller owns the pool */
static int g_started = 0;       /* worker threads created */
static int g_atfork = 0;

static void job_init(rq_job *job, rq_chunk_fn fn, void *ctx, int64_t nchunks, int nparts)
{
    job->fn = fn; job->ctx = ctx; job->nchunks = nchunks;
    if (nparts < 1) nparts = 1;
    if (nparts > RQ_POOL_PARTS) nparts = RQ_POOL_PARTS;
    job->nparts = nparts;
    for (int p = 0; p < nparts; p++) {
        job->part[p].next = nchunks * p / nparts;
        job->part[p].end = nchunks * (p + 1) / nparts;
    }
}

/* participant `me`: its own range, then the others' in turn */
static void run_chunks(rq_job *job, int me)
{
    const int np = job->nparts;
    for (int s = 0; s < np; s++) {
        rq_range *r = &job->part[(me + s) % np];
        for (;;) {
            int64_t c = __atomic_fetch_add(&r->next, 1, __ATOMIC_RELAXED);
            if (c >= r->end) break;
            job->fn(job->ctx, c);
        }
    }
}

#if defined(__x86_64__) || defined(__i386__)
#  include <x86intrin.h>
#  define RQ_RELAX() __builtin_ia32_pause()
#  define RQ_TICKS() __rdtsc()
/* spin budget in TSC ticks (~0.3 ms at 2-3 GHz) */
#  define RQ_SPIN_TICKS 800000ull
#elif defined(__aarch64__)
#  define RQ_RELAX() __asm__ volatile("yield")
#else
#  define RQ_RELAX() do { } while (0)
#endif
/* After a job, a worker polls for the next one for about 0.3 ms (x86: TSC-timed; elsewhere
 * RQ_SPIN polls) before it sleeps, so back-to-back kernel calls find it running instead of
 * waiting for a wake-up; the caller likewise polls for the workers' last chunks before it
 * sleeps (measured, 2 threads at 128x768x768: futex sleeps and wake-ups on both sides made
 * 2 threads slower than 1). */
#define RQ_SPIN (1 << 16)

/* poll until *p != v (or == v when eq) for the spin budget; returns 1 if the condition held */
static int spin_until(const void *p, unsigned long v, int eq, int is_int)
{
#ifdef RQ_TICKS
    const unsigned long long t0 = RQ_TICKS();
    for (int k = 0;; k++) {
#else
    for (int k = 0; k < RQ_SPIN; k++) {
#endif
        unsigned long cur = is_int ? (unsigned long)__atomic_load_n((const int *)p, __ATOMIC_ACQUIRE)
                                   : __atomic_load_n((const unsigned long *)p, __ATOMIC_ACQUIRE);
        if ((cur == v) == (eq != 0)) return 1;
        RQ_RELAX();
#ifdef RQ_TICKS
        if ((k & 63) == 63 && RQ_TICKS() - t0 > RQ_SPIN_TICKS) return 0;
#endif
    }
    return 0;
}

static void *worker(void *arg)
{
    (void)arg;
    unsigned long joined_gen = 0;
    unsigned int csr;
    RQ_FPENV_SAVE_DEFAULT(csr);
    (void)csr;
    pthread_mutex_lock(&g_mu);
    for (;;) {
        if (g_job && g_gen != joined_gen && g_joined < g_want) {
            rq_job *job = g_job;
            joined_gen = g_gen;
            const int me = ++g_joined;
            __atomic_add_fetch(&g_active, 1, __ATOMIC_ACQ_REL);
            pthread_mutex_unlock(&g_mu);
            run_chunks(job, me);
            pthread_mutex_lock(&g_mu);
            if (__atomic_sub_fetch(&g_active, 1, __ATOMIC_ACQ_REL) == 0) pthread_cond_broadcast(&g_idle);
            continue;
        }
        /* nothing to join: spin briefly for a newer generation, then sleep */
        unsigned long wait_gen = g_gen;
        pthread_mutex_unlock(&g_mu);
        spin_until(&g_gen, wait_gen, 0, 0);
        pthread_mutex_lock(&g_mu);
        if (g_gen == wait_gen) pthread_cond_wait(&g_work, &g_mu);
    }
    return 0;
}

static void atfork_child(void)
{
    pthread_mutex_init(&g_mu, 0);
    pthread_cond_init(&g_work, 0);
    pthread_cond_init(&g_idle, 0);
    g_job = 0; g_want = g_joined = g_active = g_busy = g_started = 0;
}

void rq_parallel(int64_t nchunks, int nthreads, rq_chunk_fn fn, void *ctx)
{
    unsigned int csr;
    if (nthreads > RQ_POOL_MAX) nthreads = RQ_POOL_MAX;
    RQ_FPENV_SAVE_DEFAULT(csr);
    if (nchunks <= 1 || nthreads <= 1) {
        for (int64_t c = 0; c < nchunks; c++) fn(ctx, c);
        RQ_FPENV_RESTORE(csr);
        return;
    }
    rq_job job;
    int helpers = nthreads - 1;
    if ((int64_t)helpers > nchunks - 1) helpers = (int)(nchunks - 1);
    pthread_mutex_lock(&g_mu);
    if (g_busy) {                       /* another caller owns the pool: run serially */
        pthread_mutex_unlock(&g_mu);
        job_init(&job, fn, ctx, nchunks, 1);
        run_chunks(&job, 0);
        RQ_FPENV_RESTORE(csr);
        return;
    }
    g_busy = 1;
    if (!g_atfork) { pthread_atfork(0, 0, atfork_child); g_atfork = 1; }
    while (g_started < helpers) {
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &at, worker, 0);
        pthread_attr_destroy(&at);
        if (rc != 0) break;
        g_started++;
    }
    if (helpers > g_started) helpers = g_started;
    job_init(&job, fn, ctx, nchunks, helpers + 1);
    g_job = &job;
    g_want = helpers;
    g_joined = 0;
    __atomic_store_n(&g_gen, g_gen + 1, __ATOMIC_RELEASE);   /* spinning workers see this */
    if (helpers > 0) pthread_cond_broadcast(&g_work);
    pthread_mutex_unlock(&g_mu);

    run_chunks(&job, 0);                /* the caller claims chunks too */

    pthread_mutex_lock(&g_mu);
    g_job = 0;                          /* no new joins; wait only for workers inside */
    if (g_active > 0) {                 /* their last chunks end soon: poll before sleeping */
        pthread_mutex_unlock(&g_mu);
        spin_until(&g_active, 0, 1, 1);
        pthread_mutex_lock(&g_mu);
    }
    while (g_active > 0) pthread_cond_wait(&g_idle, &g_mu);
    g_busy = 0;
    pthread_mutex_unlock(&g_mu);
    RQ_FPENV_RESTORE(csr);
}

#else  /* no pthreads: serial */
void rq_parallel(int64_t nchunks, int nthreads, rq_chunk_fn fn, void *ctx)
{
    unsigned int csr;
    (void)nthreads;
    RQ_FPENV_SAVE_DEFAULT(csr);
    for (int64_t c = 0; c < nchunks; c++) fn(ctx, c);
    RQ_FPENV_RESTORE(csr);
}
#endif
