/*
 * pool.h: the worker threads of one ctx (one Lua state): no global pool, so two states in two
 * threads never share or fight over workers.
 *
 * mg_parallel_for cuts [0, n) into contiguous chunks of at least `grain` (a few per thread), which
 * whichever thread is free takes, the caller included, and returns when every chunk is done: the
 * caller can finish the job alone when the OS does not run a worker, and no thread spins long on
 * a CPU another one needs (pool.c). Work is split only when n >= grain * 2 and more than one
 * thread is allowed (mg.set_num_threads, MOONGRAD_NUM_THREADS, or the number of cores). Which
 * thread runs which chunk, and where the chunks are cut, changes from call to call: kernels give
 * each output element to exactly one index of [0, n) and compute it the same way whatever range
 * it falls in, and combine partial results (one per index, never per thread) in a fixed order
 * after the call, so results are bit-identical for any number of threads and any schedule.
 * Range functions must not wait for one another (no barriers): any of them may run after all the
 * others on one thread.
 * Workers start on first use and stop when the ctx is closed (mg_pool_shutdown).
 */
#ifndef MG_POOL_H
#define MG_POOL_H

#include <stdint.h>

struct mg_ctx;
typedef void (*mg_range_fn)(void *arg, int64_t begin, int64_t end);

void mg_parallel_for(struct mg_ctx *ctx, int64_t n, int64_t grain, mg_range_fn fn, void *arg);
/* The default thread count: MOONGRAD_NUM_THREADS when set, else the number of online cores. */
int mg_default_threads(void);
/* How many threads a parallel call made now would use at most: ctx->num_threads, or 1 on a worker,
 * after shutdown, and while the pool runs jobs on the caller alone (a worker stalled on a busy
 * core: pool.c). For plans that differ by thread count (the gemm's); a plan sizing per-thread
 * buffers from it must not call mg_parallel_for when it says 1. */
int mg_pool_threads(const struct mg_ctx *ctx);

/* Stops and joins the workers and frees the pool (idempotent). The ctx's parallel calls then run
 * on the caller alone: a finalizer running after the ctx's own cannot start threads again. */
void mg_pool_shutdown(struct mg_ctx *ctx);
/* Inside a range function: the index of the thread running it, 0 (the caller) to t - 1, where t
 * <= min(ctx->num_threads, n / grain) of that call; for per-thread scratch buffers. */
int mg_pool_thread_index(void);

#define MG_MAX_THREADS 64

#endif
