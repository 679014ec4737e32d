/* rq_pool.h -- a small fork-join pool where the caller takes part and never waits for a
 * worker that has not started yet.
 *
 * rq_parallel(nchunks, nthreads, fn, ctx) runs fn(ctx, c) for every c in [0, nchunks), on the
 * calling thread plus up to nthreads - 1 pool workers, and returns when all chunks are done.
 * Chunks are claimed from an atomic counter.  Unlike an OpenMP parallel region there is no
 * barrier on absent workers: on a busy machine a worker that is not scheduled in time simply
 * claims nothing, so a call never waits a scheduler time slice for it (OpenMP's join does).
 * Work assignment may differ between calls; kernels must make every chunk's result
 * independent of which thread runs it (they do: results never depend on threads).
 *
 * One job at a time: a call that finds the pool busy (another Python thread releasing the
 * GIL) runs its chunks serially.  Safe across fork() (the child starts a fresh pool).
 */
#ifndef RQ_POOL_H
#define RQ_POOL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*rq_chunk_fn)(void *ctx, int64_t chunk);

void rq_parallel(int64_t nchunks, int nthreads, rq_chunk_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif
#endif
