/*
 * moongrad.h: the embedding API of moongrad, and the tensor descriptor its C core works on.
 *
 * Two layers live behind this header:
 *   - the core (src/core, src/ops): tensor descriptors and kernels over them. It never includes a
 *     Lua header, keeps no global mutable state (everything hangs off an mg_ctx) and allocates only
 *     through the ctx's allocator;
 *   - the Lua binding (src/bind): tensors as userdata, argument checks, Lua errors.
 *
 * A host that embeds Lua uses the functions at the bottom:
 *
 *     luaL_requiref(L, "moongrad.core", luaopen_moongrad_core, 0);
 *     float pixels[480][640];
 *     int64_t shape[2] = {480, 640};
 *     mg_push_host_tensor(L, MG_FLOAT32, 2, shape, pixels, NULL, NULL);  // no copy
 *     lua_setglobal(L, "frame");               // Lua code now reads and writes `pixels`
 *     ...
 *     const mg_tensor *t = mg_check_tensor(L, -1);
 *     const float *out = mg_tensor_data(t);    // borrowed: valid while the tensor is reachable
 */
#ifndef MOONGRAD_H
#define MOONGRAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The module is built with hidden visibility (internal calls skip the PLT); these are exported. */
#if defined(__GNUC__)
#define MG_API __attribute__((visibility("default")))
#else
#define MG_API
#endif

/* Element types. The order is part of the ABI (dtype tables are indexed by it). */
typedef enum mg_dtype { MG_FLOAT32, MG_FLOAT64, MG_INT64, MG_BOOL, MG_NDTYPES } mg_dtype;

/* Every core function returns a status; the detail (which operand, both shapes) is left in the ctx. */
typedef enum mg_status {
    MG_OK = 0,
    MG_ENOMEM,  /* the allocator returned NULL */
    MG_ESIZE,   /* a negative size, or numel / bytes past 2^62 */
    MG_ESHAPE,  /* shapes that do not fit together */
    MG_EDTYPE,  /* a dtype the operation does not take */
    MG_EINDEX,  /* an index out of range */
    MG_EDIM,    /* a dimension out of range */
    MG_EVALUE,  /* any other bad value */
    MG_ECLOSED, /* storage released by <close> or by its host */
    MG_EINTR    /* stopped by mg_interrupt */
} mg_status;

#define MG_MAX_DIMS 16

/* Releases host memory handed to mg_push_host_tensor (called once, from the collector or <close>). */
typedef void (*mg_release_fn)(void *ud, void *data, size_t nbytes);

/* The bytes behind one or more tensors. Views share it; `version` counts in-place writes so
 * that autograd can tell a saved tensor was changed. A host's storage has data == NULL once
 * released; a tensor's own storage, closed by <close>, keeps its bytes (they go with its userdata)
 * and says MG_STORAGE_CLOSED, so that a C call already reading them finishes safely. So does a
 * host's storage closed from a finalizer: its release waits for the storage's collection. */
typedef struct mg_storage {
    char *data;            /* borrowed from whoever owns the bytes (see kind) */
    size_t nbytes;
    uint64_t version;
    int kind;              /* MG_STORAGE_INLINE (bytes in a GC-managed userdata), _HOST, _CLOSED,
                            * _BLOCK (a large tensor's bytes, in a block of the ctx's cache) */
    mg_release_fn release; /* _HOST only */
    void *release_ud;
} mg_storage;

enum { MG_STORAGE_INLINE, MG_STORAGE_HOST, MG_STORAGE_CLOSED, MG_STORAGE_BLOCK };

/* A tensor is a view: dtype, shape and strides (in elements) over a storage, from an offset. */
typedef struct mg_tensor {
    mg_storage *storage;   /* borrowed: the binding keeps its owner alive */
    int64_t offset;        /* in elements */
    int64_t numel;
    int64_t *size;         /* ndim entries; borrowed (inline in the tensor's userdata) */
    int64_t *stride;       /* ndim entries, in elements; 0 on expanded dims */
    uint8_t dtype;         /* mg_dtype */
    uint8_t ndim;
    uint8_t requires_grad;
    uint8_t flags;         /* binding-private bits */
    const void *tag;       /* binding-private: marks a tensor userdata (a cheap type check) */
} mg_tensor;

MG_API size_t mg_dtype_size(mg_dtype dt);
MG_API const char *mg_dtype_name(mg_dtype dt);

/* Address of element 0 (borrowed; NULL when the storage was released). */
static inline void *mg_tensor_data(const mg_tensor *t) {
    return t->storage->data ? t->storage->data + (size_t)t->offset * mg_dtype_size((mg_dtype)t->dtype)
                            : NULL;
}

/* ---- Embedding from a Lua host (the functions below live in the binding) ---------------------- */
struct lua_State;

/* The module: pushes the `moongrad.core` table. Each call builds independent per-state data. */
MG_API int luaopen_moongrad_core(struct lua_State *L);

/* Pushes a tensor viewing `data` (contiguous, row-major) without copying. `release(ud, data, bytes)`
 * is called once when Lua no longer needs the memory (may be NULL: the host keeps it alive for as
 * long as the tensor may be used). Raises a Lua error on a bad shape or no memory; then the buffer
 * was not taken and `release` is never called for it. */
MG_API mg_tensor *mg_push_host_tensor(struct lua_State *L, mg_dtype dtype, int ndim, const int64_t *size,
                               void *data, mg_release_fn release, void *release_ud);

/* The state's memory budget: no tensor is made that would take the state's Lua heap past `bytes`
 * (after a full collection): the script gets a Lua error naming the function and the sizes, never
 * an out-of-memory kill. With a limit set, a tensor or view whose allocation the host's allocator
 * refuses before the limit is reached gets the same named error ("'add': not enough memory for a
 * tensor of 44 bytes"), after an emptied block cache, a full collection and one more try. 0 removes
 * the limit. Returns the previous limit (0: none). Call it after
 * luaopen_moongrad_core; scripts can do the same with mg.set_memory_limit. */
MG_API size_t mg_set_memory_limit(struct lua_State *L, size_t bytes);

/* Huge pages. On Linux, each new block of 2 MiB or more that moongrad takes from the state's
 * allocator (the bytes of large tensors and scratch) has its whole 2 MiB-aligned pages marked with
 * madvise(MADV_HUGEPAGE): a hint that the kernel back them with 2 MiB pages (fewer TLB misses; W5
 * and W7 of bench/ run 10-30 % faster). It never touches a byte outside what the allocator gave, and
 * changes no result. A host whose allocator's memory should keep its pages as they are (or that
 * cannot afford the kernel compacting memory on a page fault) turns it off: on = 0. On by default,
 * unless the environment has MOONGRAD_HUGE_PAGES=0. Returns the previous setting. */
MG_API int mg_set_huge_pages(struct lua_State *L, int on);

/* Stopping a long call. A kernel can run for ages (mg.zeros(1):expand(1 << 62):sum() walks 2^62
 * elements); a host stops it from another thread, a timer or a signal handler:
 *
 *     void *h = mg_interrupt_handle(L);   // once, from the state's thread, after luaopen_moongrad_core
 *     ...
 *     mg_interrupt(h);                    // anywhere: async-signal-safe and thread-safe
 *
 * The long loops of the running call (reductions, walked in chunks of 2^20 elements; matrix products,
 * every 2^20 multiply-adds on every worker thread; nonzero's count) see the request at their next
 * chunk, stop, and the call raises the Lua error "'sum': interrupted" (naming the function). A request is taken by the first loop that sees it: one made while no long loop runs
 * stops the next one, or is withdrawn by mg_interrupt_clear(h). Loops whose work is bounded by the
 * memory they write (elementwise ops, copies) run to their end. Lua code itself is stopped the way
 * lua.c does it (a hook from lua_sethook). The handle lives as long as the state (nothing after
 * lua_close). No signal handler is installed by moongrad: a process has one per signal, and it is
 * the host's (see spec/hosts/interrupt_host.c for one with SIGALRM). A script limits its own calls
 * with mg.set_time_limit(seconds): the same loops stop with "'sum': interrupted (over the time limit
 * of 5 s)". */
MG_API void *mg_interrupt_handle(struct lua_State *L);
MG_API void mg_interrupt(void *handle);
MG_API void mg_interrupt_clear(void *handle);

/* The tensor at `idx`, or a Lua error naming the argument. Borrowed: valid while it is reachable. */
MG_API const mg_tensor *mg_check_tensor(struct lua_State *L, int idx);
/* The tensor at `idx`, or NULL when the value there is not a tensor. */
MG_API const mg_tensor *mg_to_tensor(struct lua_State *L, int idx);

#ifdef __cplusplus
}
#endif
#endif
