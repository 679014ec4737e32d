/* rq_pool.h -- a small fork-join pool where the caller takes part and never waits for a
 * worker that has not started yet.
 *
 * rq_parallel(nchunks, nthreads, fn, ctx) runs fn(ctx, c) for every c in [0, nchunks), on the
 * calling thread plus up to nthreads - 1 pool workers, and returns when all chunks are done.
 * The chunks are split into one contiguous range per participant (the caller first, then the
 * workers in the order they join); each participant claims its own range's chunks from an
 * atomic counter, then what is left of the other ranges.  Unlike an OpenMP parallel region
 * there is no barrier on absent workers: on a busy machine a worker that is not scheduled in
 * time simply claims nothing and the caller takes its range, so a call never waits a
 * scheduler time slice for it (OpenMP's join does).  With a steady thread count a core tends
 * to get the same chunks call after call (kernels order their chunks so that this keeps a
 * core's share of packed weights in its cache).  Work assignment may still differ between
 * calls; kernels must make every chunk's result independent of which thread runs it (they
 * do: results never depend on threads).
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
