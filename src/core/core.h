/*
 * core.h: the core's internal API, shared by src/core and src/ops. No Lua here.
 *
 * The core works on descriptors it is given: it never creates tensors. A caller (the Lua binding,
 * or a plain C host) asks the core for a result's shape (mg_broadcast_shape, ...), allocates the
 * result, and passes it in as `out`. Scratch memory goes through ctx->alloc and is freed before
 * the call returns. Errors: return a status and leave the detail in the ctx (mg_fail).
 */
#ifndef MG_CORE_H
#define MG_CORE_H

#include <stdatomic.h>
#include <stdio.h>

#include "moongrad.h"
#include "pool.h"
#include "rng.h"

/* lua_Alloc's contract: realloc when nsize > 0, free when nsize == 0. */
typedef void *(*mg_alloc_fn)(void *ud, void *ptr, size_t osize, size_t nsize);

/* Everything the library keeps for one Lua state (or one C host): no globals anywhere. */
/* Large blocks (a large tensor's bytes), kept when freed and handed out again: a training loop
 * makes tensors of the same few sizes every step, and a block taken back from here is already
 * mapped (no page faults, as a fresh one from the allocator has) and often still in cache. */
#define MG_BLOCK_SLOTS 16
typedef struct mg_block_cache {
    void *p[MG_BLOCK_SLOTS]; /* the most recently freed last */
    size_t n[MG_BLOCK_SLOTS];
    int count;
    size_t bytes;            /* held here */
    size_t live;             /* handed out and not yet given back */
    size_t live_after_collect; /* live after it */
    int closed;              /* the state is closing: blocks go straight back to the allocator */
    void *held;              /* the binding's list of blocks tensors hold (src/bind/tensor.c) */
    unsigned colour;         /* the next block's colour (tensor.c) */
} mg_block_cache;

typedef struct mg_ctx {
    mg_alloc_fn alloc;
    void *alloc_ud;
    mg_rng rng;
    uint64_t seed;          /* the last seed given to rng (mg.initial_seed) */
    mg_dtype default_dtype; /* float32 unless mg.set_default_dtype */
    int grad_mode_entries;  /* coroutines holding their own grad mode (the binding's no_grad) */
    int main_grad_mode;     /* the main thread's own grad mode there: 0 none, 1 off, 2 on */
    int num_threads;        /* mg.set_num_threads; 1: never start a worker */
    size_t memory_limit;    /* mg.set_memory_limit: the state's Lua heap past which no tensor is made; 0: none */
    int isa;                /* the kernels' instruction set, an mg_isa (cpu.h): set by mg_ctx_init */
    struct mg_pool *pool;   /* workers, started on first use (pool.c) */
    uint32_t backward_pass; /* numbers backward passes, to mark the nodes each one visits */
    int backward_running;   /* a pass is running: a second one (from a finalizer) is refused */
    atomic_int interrupt;   /* mg_interrupt's request (any thread or a signal handler sets it): the
                             * next long loop to look (mg_take_interrupt) stops and fails MG_EINTR */
    double time_limit;      /* mg.set_time_limit: seconds a long loop may run; 0: none */
    mg_block_cache blocks;  /* large tensors' bytes (mg_block_get / mg_block_put) */
    int huge_pages;         /* ask the OS for 2 MiB pages under new blocks of 2 MiB and up (ctx.c);
                             * 0 where the OS has no such request (MG_HUGE_PAGES_OS) */
    int err_operand;        /* which operand an error concerns, 1-based; 0 when none */
    char err[256];          /* the detail of the last error, lowercase, no final period */
} mg_ctx;

void mg_ctx_init(mg_ctx *ctx, mg_alloc_fn alloc, void *alloc_ud);

/* Huge pages (ctx.c, advise_huge_pages): their size, and whether this OS takes the request. */
#define MG_HUGE_PAGE ((size_t)2 << 20)
#if defined(__linux__)
#define MG_HUGE_PAGES_OS 1
#else
#define MG_HUGE_PAGES_OS 0
#endif

/* Records the detail of an error about operand `operand` (1-based, 0: none) and returns `st`. */
mg_status mg_fail(mg_ctx *ctx, mg_status st, int operand, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* Long loops (a reduction over an expanded input of 2^62 elements, say) look at the interrupt
 * request every MG_INTERRUPT_CHUNK elements: a relaxed load, so per chunk it costs nothing. When a
 * request is pending, mg_take_interrupt clears it and records "interrupted": the caller stops,
 * frees what it holds and returns MG_EINTR. */
#define MG_INTERRUPT_CHUNK ((int64_t)1 << 20)
static inline bool mg_take_interrupt(mg_ctx *ctx) {
    if (!atomic_load_explicit(&ctx->interrupt, memory_order_relaxed)) return false;
    atomic_store_explicit(&ctx->interrupt, 0, memory_order_relaxed);
    ctx->err_operand = 0;
    snprintf(ctx->err, sizeof ctx->err, "interrupted");
    return true;
}
/* The time limit (mg.set_time_limit), a script's own way to stop a long loop: a loop that starts
 * takes mg_deadline(ctx) (0: no limit; the clock is read only when a limit is set), and at each
 * chunk mg_should_stop also fails when the deadline has passed. */
double mg_now(void);
static inline double mg_deadline(const mg_ctx *ctx) { return ctx->time_limit > 0 ? mg_now() + ctx->time_limit : 0; }
static inline bool mg_should_stop(mg_ctx *ctx, double deadline) {
    if (mg_take_interrupt(ctx)) return true;
    if (deadline == 0 || mg_now() < deadline) return false;
    ctx->err_operand = 0;
    snprintf(ctx->err, sizeof ctx->err, "interrupted (over the time limit of %g s)", ctx->time_limit);
    return true;
}

/* Scratch memory through the ctx's allocator. Caller owns; free with mg_free(ctx, p, n). */
void *mg_alloc(mg_ctx *ctx, size_t n);
void mg_free(mg_ctx *ctx, void *p, size_t n);

/* A block of *n bytes or more (*n becomes its size: give that back to mg_block_put): one from the
 * cache of exactly *n bytes when `exact`, else of at most a quarter more; else a new one from the
 * allocator. NULL: no memory. mg_alloc takes blocks for scratch of 256 KiB or more (exact). */
void *mg_block_get(mg_ctx *ctx, size_t *n, int exact);
/* Gives back a block of mg_block_get: kept for reuse while the cache holds at most what is in use
 * (and 32 MB at least), else freed. */
void mg_block_put(mg_ctx *ctx, void *p, size_t n);
/* Frees every cached block (before reporting no memory, and when the state closes). */
void mg_block_flush(mg_ctx *ctx);

/* Writes "{3,2}" into buf (always terminated). */
void mg_format_shape(char *buf, size_t cap, int ndim, const int64_t *size);

/* ---- shapes (src/core/shape.c) ------------------------------------------------------------ */
#define MG_MAX_NUMEL ((int64_t)1 << 62)
/* Checks every size >= 0 and the product <= 2^62; stores the product. */
mg_status mg_check_shape(mg_ctx *ctx, int operand, int ndim, const int64_t *size, int64_t *numel);
void mg_contiguous_strides(int ndim, const int64_t *size, int64_t *stride);
bool mg_is_contiguous(const mg_tensor *t);
bool mg_same_shape(const mg_tensor *a, const mg_tensor *b);
/* MG_EVALUE when t cannot be written in place (expanded: elements sharing memory). */
mg_status mg_check_inplace_target(mg_ctx *ctx, int operand, const mg_tensor *t);
/* out = broadcast of a and b (NumPy rules). out_size holds MG_MAX_DIMS entries. */
mg_status mg_broadcast_shape(mg_ctx *ctx, int *out_ndim, int64_t *out_size, int a_ndim,
                             const int64_t *a_size, int b_ndim, const int64_t *b_size);
/* true when src's shape broadcasts to exactly target's (an in-place write or copy may proceed). */
bool mg_broadcasts_to(const mg_tensor *src, const mg_tensor *target);
/* Wraps a 1-based (negative from the end) dim into 0..ndim-1; MG_EDIM with a message otherwise. */
mg_status mg_wrap_dim(mg_ctx *ctx, int operand, int64_t dim, int ndim, int *out);

/* ---- view geometry (src/core/view.c): fill out's size/stride/offset; out shares in's storage --- */
/* `out` must have room for its ndim (given by the caller, who knows it). */
mg_status mg_view_shape(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in);           /* view() */
mg_status mg_view_transpose(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in, int d0, int d1);
mg_status mg_view_permute(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in, const int *perm);
mg_status mg_view_narrow(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in, int dim, int64_t start,
                         int64_t length);
mg_status mg_view_select(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in, int dim, int64_t index);
mg_status mg_view_expand(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in);
void mg_view_unsqueeze(mg_tensor *out, const mg_tensor *in, int dim);
void mg_view_squeeze(mg_tensor *out, const mg_tensor *in, int dim); /* dim < 0: all size-1 dims */

/* ---- element iteration (src/core/iter.c) ------------------------------------------------ */
#define MG_MAX_OPERANDS 4
/* Walks operands broadcast to one shape, calling `inner` on runs along the innermost dim.
 * strides are in bytes; a stride of 0 repeats the element (broadcast or a scalar). */
typedef void (*mg_inner_fn)(char **data, const int64_t *stride, int64_t n, const void *extra);
typedef struct mg_iter {
    int ndim, nops;
    int64_t size[MG_MAX_DIMS];
    int64_t stride[MG_MAX_OPERANDS][MG_MAX_DIMS];
    char *data[MG_MAX_OPERANDS];
} mg_iter;
/* ops[0] is the output and gives the shape; the others broadcast to it (the caller checked). */
void mg_iter_init(mg_iter *it, int nops, const mg_tensor *const *ops);
void mg_iter_run(const mg_iter *it, mg_inner_fn inner, const void *extra);
/* The same, split between the ctx's threads when there are at least 2 * MG_GRAIN_ELEMENTWISE
 * elements (below that, starting threads costs more than it saves: measured with W6's 200 704-
 * element gradients, which gain from two threads since the pool's waits spin with `pause`). */
#define MG_GRAIN_ELEMENTWISE 65536
void mg_iter_run_parallel(mg_ctx *ctx, const mg_iter *it, mg_inner_fn inner, const void *extra);

/* A 0-d tensor over a C value, for numbers on either side of an operator. */
typedef struct mg_scalar {
    mg_tensor t;
    mg_storage s;
    union { float f32; double f64; int64_t i64; bool b; } v;
} mg_scalar;
void mg_scalar_init(mg_scalar *sc, mg_dtype dt, double value, int64_t ivalue);

/* ---- dtypes -------------------------------------------------------------------------------- */
bool mg_is_floating(mg_dtype dt);
/* The dtype whose mg_dtype_name is `name` into *out; false when there is none. */
bool mg_dtype_from_name(const char *name, mg_dtype *out);
/* PyTorch's promotion between two tensors' dtypes (bool < int64 < float32 < float64). */
mg_dtype mg_promote(mg_dtype a, mg_dtype b);

#endif
