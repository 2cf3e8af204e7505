/*
 * pool.h: the worker threads of one ctx (one Lua state): no global pool, so two states in two
 * threads never share or fight over workers.
 *
 * mg_parallel_for splits [0, n) into contiguous chunks, one per thread (the caller runs the first),
 * and returns when every chunk is done. Work is split only when n >= grain * 2 and more than one
 * thread is allowed (mg.set_num_threads, MOONGRAD_NUM_THREADS, or the number of cores). Kernels
 * give each output element to exactly one chunk and never combine partial results across chunks,
 * so results are bit-identical for any number of threads.
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
/* Stops and joins the workers and frees the pool (idempotent). */
void mg_pool_shutdown(struct mg_ctx *ctx);

#define MG_MAX_THREADS 64

#endif
