/*
 * bind.h: the Lua side of moongrad. Only src/bind includes Lua headers.
 *
 * A binding function does four things: check and convert its arguments, call core functions,
 * push the result, and turn a non-OK status into a Lua error (lt_raise). It does no math.
 *
 * Every C function of the module is a closure with three upvalues, set at registration:
 *   1. the mg_ctx (full userdata: allocator, generator, error detail), 2. the Tensor metatable,
 *   3. the methods table (what t:name(...) finds).
 *
 * Tensor userdata: an mg_tensor header, then its size[] and stride[] arrays, then, for a small
 * tensor that owns its storage, an mg_storage and the bytes themselves, all in one block that the
 * collector counts at its true size and frees without a finalizer. A large tensor's bytes (1 MiB
 * and up) are a block of the ctx's cache, owned by a "moongrad.Block" userdata in user value 1
 * (tensor.c says why and how the collector is paced). A view keeps the owner of its bytes alive
 * through user value 1. A host's buffer (mg_push_host_tensor) is a separate
 * "moongrad.Storage" userdata whose finalizer calls the host's release callback.
 *
 * The files: tensor.c (the userdata: making, checking, lifetime, properties), args.c (reading
 * arguments, wording errors), convert.c (Lua values <-> tensors, dtype conversions), view.c (views,
 * t[i]), host.c (the embedding API), autograd.c (recording and the engine), module.c (opening the
 * module, its settings), and one file per family of ops.
 *
 * Each family file (binary.c, unary.c, reduce.c, ...) exports its functions in luaL_Reg lists:
 *   lt_<family>_methods     both t:name(...) and mg.name(t, ...)
 *   lt_<family>_functions   mg.name(...) only
 * and module.c registers every list. Adding a function: one line in its family's list.
 */
#ifndef MG_BIND_H
#define MG_BIND_H

#include <lauxlib.h>
#include <lua.h>

#include "../core/core.h"

#define LT_TENSOR_MT "moongrad.Tensor"
#define LT_CTX_KEY "moongrad.ctx" /* the registry's reference to the last opened ctx (host.c) */
#define LT_STORAGE_MT "moongrad.Storage"
#define LT_BLOCK_MT "moongrad.Block" /* the owner of a large tensor's block (tensor.c) */
/* user values of a tensor */
#define LT_UV_OWNER 1 /* the owner of its storage (nil when the bytes are inline) */
#define LT_UV_GRAD 2  /* .grad */
#define LT_UV_NODE 3  /* grad_fn: the graph node that made it (nil for a leaf) */
#define LT_NUV 3

/* user values of the ctx userdata (module.c) */
#define LT_CTX_UV_ORDER 1   /* the backward engine's work tables (autograd.c) */
#define LT_CTX_UV_NODE_MT 2 /* the metatable of graph nodes */
#define LT_CTX_UV_GRAD_MODES 3 /* coroutine -> its grad mode, weak keys (autograd.c) */
#define LT_CTX_UV_HOOKS 4 /* leaf tensor -> its post-accumulate-grad hooks, weak keys (autograd.c) */
#define LT_CTX_UV_CALLBACKS 5 /* functions queued to run when the backward pass ends (autograd.c) */
#define LT_CTX_NUV 5

/* Storage of at least this many bytes starts on a 64-byte boundary inside its userdata. */
#define LT_ALIGN_MIN 256

/* t.flags bits */
enum {
    LT_OWNS_INLINE = 1, /* its bytes are inline in its userdata */
    LT_RETAINS_GRAD = 2,
    LT_OWNS_HOST = 4,   /* made by mg_push_host_tensor: its <close> releases the host's buffer */
    LT_CLOSED = 8,      /* closed by <close>: unusable, whatever its storage */
    LT_OWNS_BLOCK = 16, /* a large tensor: its bytes are a block of the ctx's cache (tensor.c) */
    LT_HAS_HOOK = 32,   /* has had a post-accumulate-grad hook (autograd.c): look it up */
    LT_SHARED_GRAD = 64, /* the backward engine's own 0-d gradient of ones, reused by every pass:
                          * never handed to a holder (autograd.c) */
    LT_HAS_NODE = 128,  /* made by a recorded op: user value LT_UV_NODE holds its node (autograd.c) */
};

static inline mg_ctx *lt_ctx(lua_State *L) { return (mg_ctx *)lua_touserdata(L, lua_upvalueindex(1)); }

/* ---- tensors on the stack (tensor.c) ------------------------------------------------------ */
/* The tensor at idx or NULL (no error). Borrowed: valid while the value stays reachable. */
mg_tensor *lt_test(lua_State *L, int idx);
/* t may be used: not closed, and its storage neither released nor closed. */
static inline int lt_storage_usable(const mg_storage *s) { return s->data && s->kind != MG_STORAGE_CLOSED; }
static inline int lt_usable(const mg_tensor *t) { return !(t->flags & LT_CLOSED) && lt_storage_usable(t->storage); }
/* The tensor at idx when its storage is alive (not released by <close>), else NULL (no error):
 * for fast paths that fall back to a checked path, which then words the error. */
static inline mg_tensor *lt_test_live(lua_State *L, int idx) {
    mg_tensor *t = lt_test(L, idx);
    return t && lt_usable(t) ? t : NULL;
}
/* The tensor at idx, or a type error for argument `idx`; also refuses released storage. */
mg_tensor *lt_check(lua_State *L, int idx);
/* Pushes a tensor userdata of ndim dims with `extra` bytes after its size and stride arrays, tagged
 * for lt_test, with the metatable at index mt (lua_upvalueindex(2) inside the module, an absolute
 * stack index for a host); everything else zero, for the caller to fill. */
mg_tensor *lt_push_header(lua_State *L, int ndim, size_t extra, int mt);
/* A userdata of `total` bytes and nuv user values, pushed under lua_pcall: a failed allocation
 * raises "not enough memory for <what> of <bytes> bytes" naming the function (after emptying the
 * block cache, a full collection and one more try). For allocations made when a memory limit is
 * set; without one, lua_newuserdatauv directly (Lua's own "not enough memory"). */
void *lt_push_named(lua_State *L, mg_ctx *ctx, size_t total, int nuv, size_t bytes, const char *what);
/* Pushes a new contiguous tensor (uninitialised bytes); raises on a bad shape or no memory. */
mg_tensor *lt_push_new(lua_State *L, mg_dtype dtype, int ndim, const int64_t *size);
/* Pushes a zero-filled one. */
mg_tensor *lt_push_zeros(lua_State *L, mg_dtype dtype, int ndim, const int64_t *size);
/* Pushes a tensor header of `ndim` dims sharing the storage of the tensor at src (geometry left for
 * the caller to fill, usually with a core mg_view_* function). */
mg_tensor *lt_push_view(lua_State *L, int src, int ndim);
/* Ends the life of storage s (idempotent): a host buffer's release callback runs, data becomes NULL;
 * a tensor's own bytes (inline or a block) stay until the collector frees their owner. */
void lt_release_storage(mg_storage *s);
/* <close> of a host's buffer (host.c): released at once, unless the close comes from a finalizer
 * (or the collector is stopped), which may be running inside a C call that reads the buffer: then
 * the storage only turns MG_STORAGE_CLOSED (unusable) and the release waits for its collection,
 * when no call can hold it any more. */
void lt_close_host_storage(lua_State *L, mg_storage *s);
/* Registers the metatable of large tensors' block owners (module.c calls it when opening). */
void lt_push_block_metatable(lua_State *L);
/* Gives back the blocks still held when the ctx is finalized (the state closing; tensor.c). */
void lt_free_lost_blocks(mg_ctx *ctx);
/* Bumps the version of t's storage: every in-place write does, and backward refuses a node whose
 * inputs changed since it was recorded. */
static inline void lt_written(mg_tensor *t) { t->storage->version++; }

/* ---- values and conversions (convert.c) ---------------------------------------------------- */
/* Pushes `t` converted to dtype (a new tensor), or t itself (at idx) when it already has it. */
mg_tensor *lt_push_as(lua_State *L, int idx, mg_dtype dtype);
/* Pushes a contiguous tensor with t's contents: t itself when already contiguous. */
mg_tensor *lt_push_contiguous(lua_State *L, int idx);
/* Pushes the element at p, of dtype dt, as a Lua number (or boolean). */
void lt_push_element(lua_State *L, mg_dtype dt, const char *p);
/* Number-or-tensor operands of binary ops: the dtype a Lua number takes next to a tensor of
 * dtype `other` (a Lua number never widens a tensor; a float number with an integer tensor gives
 * the default float dtype). */
mg_dtype lt_number_dtype(lua_State *L, int idx, mg_dtype other);
/* The operand at idx as a tensor of `dtype`: a converted copy is pushed when needed, a number
 * becomes the 0-d scalar in *sc. Raises a type error for anything else. */
const mg_tensor *lt_operand(lua_State *L, int idx, mg_dtype dtype, mg_scalar *sc);
/* Pushes the number or boolean at idx as a new 0-d tensor of `dtype` (a type error for anything
 * else). Records nothing: lt_record uses it for number inputs, so recording never calls back into
 * the conversions that record (lt_operand -> lt_push_as). */
mg_tensor *lt_push_scalar(lua_State *L, int idx, mg_dtype dtype);

/* ---- arguments (args.c) ----------------------------------------------------------------------- */
/* Raises "bad argument #arg to 'fn' (detail)", the detail formatted as lua_pushfstring does
 * (%s %d %I %f %p %c %%: Lua's formats, not printf's). Never returns. */
int lt_argerror(lua_State *L, int arg, const char *fmt, ...);
/* Sends the string at idx as a warning (the function at registry[LT_WARN_KEY], which the Lua layer
 * sets to moongrad.util.warn; else lua_warning). */
#define LT_WARN_KEY "moongrad.warn"
void lt_warn(lua_State *L, int idx);
/* Pushes a shape written as {3,2} and returns it (valid while it stays on the stack): the one
 * shape formatter of error details, e.g. lt_argerror(L, 2, "shape %s", lt_push_shape(L, n, s)). */
const char *lt_push_shape(lua_State *L, int ndim, const int64_t *size);
/* Raises the ctx's error detail as "bad argument #(arg0 + operand - 1) to 'fn' (detail)", or
 * "'fn': detail" when the core named no operand. Never returns. */
int lt_raise(lua_State *L, int arg0);
#define LT_TRY(L, arg0, call)                         \
    do {                                              \
        if ((call) != MG_OK) return lt_raise(L, arg0); \
    } while (0)
/* A dim argument (1-based, negative from the end) -> 0-based. */
int lt_check_dim(lua_State *L, int arg, int ndim);
/* An optional dim: `def` (0-based) when absent/nil. */
int lt_opt_dim(lua_State *L, int arg, int ndim, int def);
/* An index into a dim of `size` (1-based, negative from the end) -> 0-based. */
int64_t lt_check_index(lua_State *L, int arg, int64_t size);
/* A dtype name at arg -> mg_dtype; error names it and the valid ones. */
mg_dtype lt_check_dtype(lua_State *L, int arg);
/* Reads a shape given as varargs of integers from `first` or as one table there. Stops at a
 * trailing options table (a table with string keys), whose index goes to *opts (0 if none).
 * Returns ndim. */
int lt_read_shape(lua_State *L, int first, int64_t *size, int *opts);
/* An options table: checks every key is in `valid` (NULL-terminated) and raises naming it. */
void lt_check_opts(lua_State *L, int idx, const char *const *valid);
/* opts.dtype, or def when absent. */
mg_dtype lt_opt_dtype(lua_State *L, int opts, mg_dtype def);
/* A factory's options table at idx (0: none): {dtype, requires_grad}; returns the dtype. (factory.c) */
mg_dtype lt_factory_opts(lua_State *L, int idx, mg_dtype def, int *requires_grad);
/* true when the value at idx is a table with at least one string key (an options table). */
int lt_is_opts(lua_State *L, int idx);
/* Pushes the Lua list at arg (a table) as a new 1-D int64 tensor. An entry that is not an integer
 * raises "<name>[i] is <its value or type>, expected <expected>" for argument arg. */
mg_tensor *lt_push_int_list(lua_State *L, int arg, const char *name, const char *expected);

/* ---- views and t[i] (view.c) ----------------------------------------------------------------- */
/* Records the view at the top of the stack as made from the tensor at stack index 1 by shape op
 * `op` (src/ops/shape.h) with parameters a0, a1. Returns 1 (the view stays on the stack). */
int lt_record_view(lua_State *L, int op, int64_t a0, int64_t a1);
/* t[i] for the tensor t at 1 and the integer key at 2: a view of one dim fewer, or the value of an
 * element of a 1-D tensor. Returns 1. */
int lt_index_read(lua_State *L, mg_tensor *t);
/* t[i] = v (key at 2, v at 3): v a number (filled) or a tensor that broadcasts to t[i]'s shape. */
int lt_index_write(lua_State *L, mg_tensor *t);
/* t.T for the tensor at 1: the view with its dims reversed (PyTorch's .T; a 2-D tensor's
 * transpose), recorded as a permute. Returns 1. */
int lt_reversed_dims(lua_State *L);

/* ---- autograd (autograd.c) ---------------------------------------------------------------- */
#include "../ops/grad.h"
/* Grad mode, per coroutine: off inside no_grad. A coroutine that never entered no_grad /
 * enable_grad follows the main thread. */
int lt_grad_enabled(lua_State *L);
/* true when grad mode is on and one of the values at the n stack indices is a tensor requiring grad */
int lt_grad_needed(lua_State *L, int n, const int *idx);
/* Records the op that made the tensor at out_idx: family, op code, its inputs (stack indices of
 * tensors or numbers) and tensors saved for backward. Sets out.requires_grad and out.grad_fn.
 * Returns the node, for the caller to fill iarg / darg. */
mg_node *lt_record(lua_State *L, int out_idx, mg_family family, int op, int ninputs, const int *inputs,
                   int nsaved, const int *saved);
/* The tensor at idx, checked writable in place: not expanded, and not a tensor requiring grad while
 * grad mode is on (leaf: PyTorch's error; non-leaf: unsupported). Use before every in-place write. */
mg_tensor *lt_inplace(lua_State *L, int idx);
/* Refuses, while grad mode is on, a tensor requiring grad at idx as the source of an in-place
 * write (t:add_(w), t[i] = w, t:copy_(w)): its gradient would be lost. */
void lt_inplace_source(lua_State *L, int idx);
/* t.grad / t.requires_grad / t.is_leaf / t.grad_fn reads and writes; 0 when key is not one. The
 * tensor is at stack index 1 (and the value at 3 for a write). */
int lt_autograd_get(lua_State *L, mg_tensor *t, const char *key);
int lt_autograd_set(lua_State *L, mg_tensor *t, const char *key);

/* ---- registration (module.c) ------------------------------------------------------------- */
extern const luaL_Reg lt_tensor_methods[], lt_tensor_functions[], lt_tensor_metamethods[];
extern const luaL_Reg lt_view_methods[];
extern const luaL_Reg lt_convert_methods[], lt_convert_functions[];
extern const luaL_Reg lt_binary_methods[], lt_binary_functions[], lt_binary_metamethods[];
extern const luaL_Reg lt_unary_methods[], lt_unary_functions[], lt_unary_metamethods[];
extern const luaL_Reg lt_reduce_methods[], lt_reduce_functions[];
extern const luaL_Reg lt_linalg_methods[], lt_linalg_functions[];
extern const luaL_Reg lt_index_methods[], lt_index_functions[];
extern const luaL_Reg lt_sort_methods[]; /* sort argsort topk (sort.c) */
extern const luaL_Reg lt_random_methods[], lt_random_functions[];
extern const luaL_Reg lt_factory_functions[];
extern const luaL_Reg lt_autograd_methods[], lt_autograd_functions[];
extern const luaL_Reg lt_functional_functions[]; /* mg.F */
extern const luaL_Reg lt_conv_functions[];       /* mg.F: the layers (conv.c) */
extern const luaL_Reg lt_optim_functions[];      /* mg._optim_* (private: lua/moongrad/optim.lua) */
extern const luaL_Reg lt_serialize_functions[];  /* core._tensor_bytes / _from_bytes (serialize.lua) */
extern const luaL_Reg lt_debug_functions[];      /* core._check_invariants (debug.c: the fuzzer's) */

/* Pushes the metatable of graph nodes (autograd.c; module.c keeps it with the ctx). */
void lt_push_node_metatable(lua_State *L);

/* tostring(t), in PyTorch's format (print.c in the core does the formatting). */
int lt_tostring(lua_State *L);

#endif
