/*
 * tensor.c: the Tensor userdata. Its memory layout (see bind.h) and lifetime: making tensors
 * (lt_push_new, lt_push_view), recognising them (lt_test, lt_check), ending their storage's life
 * (<close>); and what a tensor tells about itself: t.shape t.dtype t.ndim, size stride dim numel
 * is_contiguous, #t, mg.is_tensor, and the lookup of methods and properties (__index, __newindex).
 *
 * Elsewhere: argument helpers in args.c, views and t[i] in view.c, Lua values <-> tensors and
 * conversions in convert.c, host buffers (the embedding API) in host.c.
 */
#include <string.h>

#include "bind.h"

/* ================================================================ memory and lifetime */

/* Every tensor userdata carries the address of this constant in its header: checking it costs two
 * loads, where comparing metatables costs four API calls (a quarter of a small op's time). Only a
 * full userdata at least as large as a header is read; no other value can hold the address by
 * accident (Lua code cannot write a userdata's bytes; another C library would have to copy it). */
static const char tensor_tag = 'T';

/* Makes the header in the userdata t at the top of the stack. */
static mg_tensor *init_header(lua_State *L, mg_tensor *t, int ndim, int mt) {
    memset(t, 0, sizeof *t);
    t->tag = &tensor_tag;
    t->ndim = (uint8_t)ndim;
    t->size = (int64_t *)(t + 1);
    t->stride = t->size + ndim;
    lua_pushvalue(L, mt);
    lua_setmetatable(L, -2);
    return t;
}

static size_t header_bytes(int ndim, size_t extra) { return sizeof(mg_tensor) + 2 * sizeof(int64_t) * ndim + extra; }

mg_tensor *lt_push_header(lua_State *L, int ndim, size_t extra, int mt) {
    mt = lua_absindex(L, mt);
    return init_header(L, (mg_tensor *)lua_newuserdatauv(L, header_bytes(ndim, extra), LT_NUV), ndim, mt);
}

/* ---- large tensors: the memory limit, and out-of-memory errors that say what and where -------- */
/* Below this, without a memory limit, a failed allocation is Lua's plain memory error (what any
 * small object gives); with a limit (or past this size), the error names the function and bytes. */
#define LARGE_TENSOR (1u << 20)

/* The state's Lua heap in bytes (tensors' bytes included: they are inline in their userdata). */
static size_t heap_bytes(lua_State *L) {
    return (size_t)lua_gc(L, LUA_GCCOUNT) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB);
}

/* The userdata of `bytes` with n user values, pushed; called through lua_pcall so that a failed
 * allocation is caught. */
static int new_userdata(lua_State *L) {
    lua_newuserdatauv(L, (size_t)lua_tointeger(L, 1), (int)lua_tointeger(L, 2));
    return 1;
}

/* The bytes the state holds: its Lua heap, and large tensors' blocks (in use or cached). */
static size_t used_bytes(lua_State *L, const mg_ctx *ctx) {
    return heap_bytes(L) + ctx->blocks.live + ctx->blocks.bytes;
}

/* Raises when a tensor taking `total` bytes would take the state past its memory limit, after
 * emptying the block cache and a full collection when only that could bring it under. */
static void check_limit(lua_State *L, mg_ctx *ctx, size_t total, size_t bytes) {
    if (used_bytes(L, ctx) + total > ctx->memory_limit) { /* the dead tensors' blocks, then the cache */
        lua_gc(L, LUA_GCCOLLECT);
        mg_block_flush(ctx);
    }
    const size_t used = used_bytes(L, ctx);
    if (used + total <= ctx->memory_limit) return;
    mg_fail(ctx, MG_ENOMEM, 0,
            "not enough memory for a tensor of %zu bytes: the memory limit is %zu bytes and %zu are in use",
            bytes, ctx->memory_limit, used);
    lt_raise(L, 1);
}

/* Pushes a userdata of `total` bytes and nuv user values for a tensor (`bytes` of them the
 * tensor's; `what` names it: "a tensor", "a view", "an autograd node") under lua_pcall, so that a failing allocator gives an error naming the function and the size:
 * a large tensor's always, every tensor's and view's when a memory limit is set (the host's
 * allocator may fail before the limit is reached). After a failure (Lua has already collected and
 * retried once), the block cache is emptied and the dead tensors collected, and it is tried once
 * more (not inside a finalizer, where lua_gc refuses). */
void *lt_push_named(lua_State *L, mg_ctx *ctx, size_t total, int nuv, size_t bytes, const char *what) {
    for (int attempt = 0;; attempt++) {
        lua_pushcfunction(L, new_userdata);
        lua_pushinteger(L, (lua_Integer)total);
        lua_pushinteger(L, nuv);
        if (lua_pcall(L, 2, 1, 0) == LUA_OK) return lua_touserdata(L, -1);
        lua_pop(L, 1);
        if (attempt > 0 || lua_gc(L, LUA_GCISRUNNING) < 0) break;
        lua_gc(L, LUA_GCCOLLECT); /* the dead tensors' blocks come back to the cache: empty it after */
        mg_block_flush(ctx);
    }
    mg_fail(ctx, MG_ENOMEM, 0, "not enough memory for %s of %zu bytes", what, bytes);
    lt_raise(L, 1);
    return NULL;
}
static mg_tensor *push_large(lua_State *L, mg_ctx *ctx, size_t total, size_t bytes) {
    return (mg_tensor *)lt_push_named(L, ctx, total, LT_NUV, bytes, "a tensor");
}
/* A tensor header of ndim dims (+ extra bytes) at the top of the stack; named errors when a
 * memory limit is set (lt_push_named), else lt_push_header's fast path. */
static mg_tensor *push_header(lua_State *L, mg_ctx *ctx, int ndim, size_t extra, size_t bytes, const char *what) {
    if (!ctx->memory_limit) return lt_push_header(L, ndim, extra, lua_upvalueindex(2));
    return init_header(L, (mg_tensor *)lt_push_named(L, ctx, header_bytes(ndim, extra), LT_NUV, bytes, what), ndim,
                       lua_upvalueindex(2));
}

/* ---- large tensors: their bytes in a block of the ctx's cache -------------------------------- *
 * A tensor of LT_BLOCK_MIN bytes or more keeps its bytes in a block from mg_block_get (the ctx's
 * allocator, which is the state's), owned by a small "moongrad.Block" userdata (the tensor's user
 * value 1, as a view's base) whose finalizer gives the block back to the cache. Why not inline, as
 * small tensors: a training step makes the same large tensors again and again, and a fresh block
 * from the allocator arrives unmapped (W5, 10^6-row regression: ~1100 page faults a step, 2 ms of
 * 15) where a cached one is mapped and often still in cache.
 * The collector does not see a block's bytes, so the binding paces it: each new block first takes
 * a basic collector step (in the generational mode lua5.4 starts in, a young collection: the
 * tensors that died since the last one, a loop's previous result say, give their blocks back, and
 * the next result gets that block while it is still in cache), and when the blocks in use (dead
 * ones not yet collected included) grew by more than the larger of the Lua heap (what a full
 * collection costs), LT_BLOCK_PACE and the blocks in use after the last full collection, these
 * counted at most as the larger of a quarter of them and LT_BLOCK_PACE_LIVE: a full collection
 * (the backstop for tensors that lived through enough young collections to turn old: a training
 * step's activations). Not all of them, as the collector's own 200 % pause would: a data set held
 * in blocks is most of what is in use, and pacing by all of it let a training loop hold its size
 * again in garbage (examples/fashion_cnn.lua on a 3000-image subset: peak RSS 574 MB with the
 * data set's 240, now 355). Not less than 32 MB either: collections every few MB freed the
 * mid-sized tensors (inline, from the C heap) in bursts that glibc gave back to the system and
 * took again (the book's convnet, W9: 31k page faults in 40 steps became 58k). Not inside a finalizer
 * (lua_gc refuses there, and a userdata made while the state closes is never finalized): a tensor
 * made there is inline, as a small one.
 * W7 (c = a + b, 10^6 float32 in a loop): inline 194-206 us, blocks with full collections only
 * 340, blocks with the young step 162-168 (1 thread, AMD EPYC Zen 4). From 256 KiB (not 1 MiB):
 * the book's convnet's activations and gradients of 0.4-0.8 MB came fresh from glibc, which gave
 * them back to the system between steps: W9 35-45k page faults in 40 steps -> 18k, ~10 % faster. */
#define LT_BLOCK_MIN ((size_t)256 << 10)
#define LT_BLOCK_PACE ((size_t)4 << 20)
#define LT_BLOCK_PACE_LIVE ((size_t)32 << 20)

typedef struct lt_block {
    mg_storage s;
    mg_ctx *ctx;
    void *raw;  /* from mg_block_get; NULL once given back */
    size_t cap; /* its size */
} lt_block;

/* The blocks that tensors hold, linked through a header at the start of each (the tensor's bytes
 * follow it, aligned to 64) in the ctx's list, so that the ctx's finalizer can give back any whose
 * owner the collector freed without calling its finalizer. That happens: an allocation failing
 * inside a generational young collection of lua 5.4.4 ran an emergency collection inside it, and
 * a Block went unfinalized (bytes live after lua_close in the allocation-failure sweep of
 * spec/oom_spec.lua). Lua calls the finalizers at lua_close in the reverse order objects got them,
 * and the ctx got its own before any Block: what is still linked then is what was lost. */
typedef struct block_link {
    struct block_link *prev, *next;
    size_t cap;
} block_link;
#define BLOCK_HEADER (sizeof(block_link) + 63) /* the link, then up to 63 bytes to align the data */
/* and a colour: the data starts 0..7 cache lines further, one more for each block a tensor takes
 * (the ctx's counter), so that blocks (page-aligned from the allocator alike) do not all start at
 * one offset within a page: c = a + b over three such arrays ran 175 or 218 us by how the blocks
 * lined up (loads and the store a multiple of 4 KiB apart alias in the core's store-to-load
 * check); coloured, 180-184 us in every run (W7 10^6, 1 thread, AMD EPYC Zen 4) */
#define BLOCK_COLOURS 8
#define BLOCK_SLACK (BLOCK_HEADER + 64 * (BLOCK_COLOURS - 1))

static void block_link_in(mg_ctx *ctx, void *raw, size_t cap) {
    block_link *l = (block_link *)raw, *head = (block_link *)ctx->blocks.held;
    l->prev = NULL, l->next = head, l->cap = cap;
    if (head) head->prev = l;
    ctx->blocks.held = l;
}
static void block_link_out(mg_ctx *ctx, void *raw) {
    block_link *l = (block_link *)raw;
    if (l->prev) l->prev->next = l->next;
    else ctx->blocks.held = l->next;
    if (l->next) l->next->prev = l->prev;
}
void lt_free_lost_blocks(mg_ctx *ctx) {
    while (ctx->blocks.held) {
        block_link *l = (block_link *)ctx->blocks.held;
        block_link_out(ctx, l);
        mg_block_put(ctx, l, l->cap);
    }
}

static int block_gc(lua_State *L) {
    lt_block *b = (lt_block *)luaL_checkudata(L, 1, LT_BLOCK_MT);
    if (b->raw) {
        block_link_out(b->ctx, b->raw);
        mg_block_put(b->ctx, b->raw, b->cap);
    }
    b->raw = NULL;
    b->s.data = NULL;
    return 0;
}

void lt_push_block_metatable(lua_State *L) {
    luaL_newmetatable(L, LT_BLOCK_MT);
    lua_pushcfunction(L, block_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
}

/* Pushes the owner of a block of at least `bytes` bytes, aligned to 64, or raises naming the size. */
static lt_block *push_block(lua_State *L, mg_ctx *ctx, size_t bytes) {
    mg_block_cache *c = &ctx->blocks;
    if (lua_gc(L, LUA_GCISRUNNING) == 1) {
        /* a basic step: in the generational mode lua5.4 starts in, a young collection, cheap, which
         * gives back the blocks of the tensors that died since the last one (a loop's previous
         * result: its block comes back here warm); in the incremental mode, a step of the cycle */
        lua_gc(L, LUA_GCSTEP, 0);
        /* the backstop (see above): blocks in use (dead ones included) grew by more than the larger of
         * the Lua heap, LT_BLOCK_PACE and what was in use after the last full collection, counted at
         * most as the larger of a quarter of it and LT_BLOCK_PACE_LIVE */
        size_t pace = heap_bytes(L), by_live = c->live_after_collect / 4;
        if (by_live < LT_BLOCK_PACE_LIVE) by_live = LT_BLOCK_PACE_LIVE;
        if (by_live > c->live_after_collect) by_live = c->live_after_collect;
        if (pace < by_live) pace = by_live;
        if (pace < LT_BLOCK_PACE) pace = LT_BLOCK_PACE;
        if (c->live > c->live_after_collect + pace) {
            lua_gc(L, LUA_GCCOLLECT);
            c->live_after_collect = c->live;
        }
    }
    lt_block *b = (lt_block *)(ctx->memory_limit ? lt_push_named(L, ctx, sizeof *b, 0, bytes, "a tensor")
                                                  : lua_newuserdatauv(L, sizeof *b, 0));
    memset(b, 0, sizeof *b); /* valid (and empty) before anything can fail */
    b->ctx = ctx;
    luaL_setmetatable(L, LT_BLOCK_MT);
    /* sizes rounded up to 64 KiB, so that tensors of nearly the same size share blocks */
    size_t cap = (bytes + BLOCK_SLACK + 0xffff) & ~(size_t)0xffff;
    void *raw = mg_block_get(ctx, &cap, 0);
    if (!raw) { /* the dead tensors' blocks (one may fit), then the cache back to the allocator */
        lua_gc(L, LUA_GCCOLLECT);
        raw = mg_block_get(ctx, &cap, 0);
        if (!raw) {
            mg_block_flush(ctx);
            raw = mg_block_get(ctx, &cap, 0);
        }
    }
    if (!raw) {
        mg_fail(ctx, MG_ENOMEM, 0, "not enough memory for a tensor of %zu bytes", bytes);
        lt_raise(L, 1);
    }
    block_link_in(ctx, raw, cap);
    b->raw = raw;
    b->cap = cap;
    b->s.kind = MG_STORAGE_BLOCK;
    b->s.data = (char *)(((uintptr_t)raw + BLOCK_HEADER) & ~(uintptr_t)63) +
                64 * (ctx->blocks.colour++ % BLOCK_COLOURS);
    b->s.nbytes = bytes;
    return b;
}

mg_tensor *lt_test(lua_State *L, int idx) {
    mg_tensor *t = (mg_tensor *)lua_touserdata(L, idx);
    /* a light userdata also gives a pointer, but its raw length is 0: no lua_type needed */
    if (!t || lua_rawlen(L, idx) < sizeof(mg_tensor)) return NULL;
    return t->tag == &tensor_tag ? t : NULL;
}

mg_tensor *lt_check(lua_State *L, int idx) {
    mg_tensor *t = lt_test(L, idx);
    if (!t) luaL_typeerror(L, idx, "tensor");
    if (!lt_usable(t))
        luaL_argerror(L, idx, lt_storage_usable(t->storage) ? "tensor used after it was closed (by <close>)"
                                                            : "tensor used after its storage was released (by <close>)");
    return t;
}

/* The most a tensor's userdata adds to its bytes: header, size / stride arrays, storage, padding. */
#define MAX_OVERHEAD (sizeof(mg_tensor) + sizeof(mg_storage) + 2 * sizeof(int64_t) * MG_MAX_DIMS + 63)

/* numel of a shape of at most two dims, each in [0, 2^31) (their product cannot overflow: nothing
 * for mg_check_shape to refuse), else -1: most results of a training step, checked in a few loads
 * instead of mg_check_shape's call and loops. */
static int64_t small_numel(int ndim, const int64_t *size) {
    if (ndim == 0) return 1;
    if (ndim > 2 || (uint64_t)size[0] > INT32_MAX) return -1;
    if (ndim == 1) return size[0];
    return (uint64_t)size[1] > INT32_MAX ? -1 : size[0] * size[1];
}

mg_tensor *lt_push_new(lua_State *L, mg_dtype dtype, int ndim, const int64_t *size) {
    mg_ctx *ctx = lt_ctx(L);
    int64_t numel = small_numel(ndim, size);
    if (numel < 0 && mg_check_shape(ctx, 0, ndim, size, &numel) != MG_OK) lt_raise(L, 1);
    const size_t item = mg_dtype_size(dtype);
    if ((uint64_t)numel > (SIZE_MAX - MAX_OVERHEAD) / item) {
        mg_fail(ctx, MG_ENOMEM, 0, "not enough memory for a tensor of %lld elements", (long long)numel);
        lt_raise(L, 1);
    }
    const size_t bytes = (size_t)numel * item;
    mg_tensor *t;
    if (bytes >= LT_BLOCK_MIN && lua_gc(L, LUA_GCISRUNNING) >= 0) { /* not in a finalizer */
        if (ctx->memory_limit) check_limit(L, ctx, header_bytes(ndim, sizeof(lt_block)) + bytes, bytes);
        lt_block *b = push_block(L, ctx, bytes);
        t = push_header(L, ctx, ndim, 0, bytes, "a tensor");
        lua_rotate(L, -2, 1); /* tensor, owner */
        lua_setiuservalue(L, -2, LT_UV_OWNER);
        t->storage = &b->s;
        t->flags |= LT_OWNS_BLOCK;
    } else {
        /* The bytes live inline, after the header and the size / stride arrays: one block that the
         * collector counts at its true size and frees without a finalizer. Buffers past
         * LT_ALIGN_MIN bytes start on a 64-byte boundary, for whole-cache-line vector loads. */
        const size_t pad = bytes >= LT_ALIGN_MIN ? 63 : 0;
        const size_t extra = sizeof(mg_storage) + bytes + pad;
        if (ctx->memory_limit) { /* the limit, then any failure named (lt_push_named) */
            check_limit(L, ctx, header_bytes(ndim, extra), bytes);
            t = init_header(L, (mg_tensor *)lt_push_named(L, ctx, header_bytes(ndim, extra), LT_NUV, bytes, "a tensor"), ndim,
                            lua_upvalueindex(2));
        } else {
            t = bytes >= LARGE_TENSOR /* only in a finalizer: see LT_BLOCK_MIN */
                    ? init_header(L, push_large(L, ctx, header_bytes(ndim, extra), bytes), ndim, lua_upvalueindex(2))
                    : lt_push_header(L, ndim, extra, lua_upvalueindex(2));
        }
        mg_storage *s = (mg_storage *)(t->stride + ndim);
        memset(s, 0, sizeof *s);
        s->kind = MG_STORAGE_INLINE;
        s->data = pad ? (char *)(((uintptr_t)(s + 1) + 63) & ~(uintptr_t)63) : (char *)(s + 1);
        s->nbytes = bytes;
        t->storage = s;
        t->flags |= LT_OWNS_INLINE;
    }
    t->dtype = (uint8_t)dtype;
    t->numel = numel;
    if (ndim == 1) { /* the common small results inline: mg_contiguous_strides's strides */
        t->size[0] = size[0];
        t->stride[0] = 1;
    } else {
        if (ndim) memcpy(t->size, size, sizeof(int64_t) * ndim); /* 0-d callers may pass size = NULL */
        mg_contiguous_strides(ndim, size, t->stride);
    }
    return t;
}

mg_tensor *lt_push_zeros(lua_State *L, mg_dtype dtype, int ndim, const int64_t *size) {
    mg_tensor *t = lt_push_new(L, dtype, ndim, size);
    if (t->numel) memset(mg_tensor_data(t), 0, (size_t)t->numel * mg_dtype_size(dtype));
    return t;
}

/* Pushes the owner of t's bytes (the tensor itself when inline, else its user value 1). */
static void push_owner(lua_State *L, int idx, const mg_tensor *t) {
    if (t->flags & LT_OWNS_INLINE) lua_pushvalue(L, idx);
    else lua_getiuservalue(L, idx, 1);
}

mg_tensor *lt_push_view(lua_State *L, int src, int ndim) {
    src = lua_absindex(L, src);
    const mg_tensor *base = lt_check(L, src);
    mg_tensor *t = push_header(L, lt_ctx(L), ndim, 0, header_bytes(ndim, 0), "a view");
    push_owner(L, src, base);
    lua_setiuservalue(L, -2, 1);
    t->storage = base->storage;
    t->dtype = base->dtype;
    t->offset = base->offset;
    return t;
}

void lt_release_storage(mg_storage *s) {
    if (s->kind == MG_STORAGE_INLINE || s->kind == MG_STORAGE_BLOCK) {
        s->kind = MG_STORAGE_CLOSED; /* the bytes stay until the userdata goes: a C call reading them
                                      * (a finalizer closed an input mid-call) finishes safely */
        return;
    }
    if (!s->data) return;
    if (s->release) s->release(s->release_ud, s->data, s->nbytes);
    s->data = NULL;
}

/* <close>: a tensor that owns its storage (made by an op, a factory, or a host's buffer) ends it:
 * later use of it or of any view of it is an error, a host buffer's release callback runs now, and
 * a tensor's own bytes return to the allocator when the collector frees its userdata (it counts
 * them, so that comes soon). A view ends only itself: closing a batch of a data set leaves the
 * data set whole. */
static int l_close(lua_State *L) {
    mg_tensor *t = lt_test(L, 1);
    if (!t) return 0;
    /* an owned storage is closed once: lt_release_storage on a closed one would drop its bytes
     * (data = NULL) under a call that a finalizer closing it twice interrupted */
    if (t->flags & LT_OWNS_HOST) lt_close_host_storage(L, t->storage);
    else if ((t->flags & (LT_OWNS_INLINE | LT_OWNS_BLOCK)) && t->storage->kind != MG_STORAGE_CLOSED)
        lt_release_storage(t->storage);
    t->flags |= LT_CLOSED;
    return 0;
}

/* ================================================================ properties */

/* Pushes a list of n integers. */
static void push_list(lua_State *L, int n, const int64_t *values) {
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushinteger(L, values[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

/* t:size([dim]) and t:stride([dim]): the list of the tensor's sizes (or strides), or one dim's. */
static int per_dim(lua_State *L, int strides) {
    const mg_tensor *t = lt_check(L, 1);
    const int64_t *values = strides ? t->stride : t->size;
    if (lua_isnoneornil(L, 2)) push_list(L, t->ndim, values);
    else if (t->ndim == 0) return luaL_argerror(L, 2, "a 0-d tensor has no dimensions");
    else lua_pushinteger(L, values[lt_check_dim(L, 2, t->ndim)]);
    return 1;
}

static int l_size(lua_State *L) { return per_dim(L, 0); }
static int l_stride(lua_State *L) { return per_dim(L, 1); }
static int l_dim(lua_State *L) { lua_pushinteger(L, lt_check(L, 1)->ndim); return 1; }
static int l_numel(lua_State *L) { lua_pushinteger(L, lt_check(L, 1)->numel); return 1; }
static int l_is_contiguous(lua_State *L) { lua_pushboolean(L, mg_is_contiguous(lt_check(L, 1))); return 1; }
static int l_is_tensor(lua_State *L) { lua_pushboolean(L, lt_test(L, 1) != NULL); return 1; }

static int l_len(lua_State *L) {
    const mg_tensor *t = lt_check(L, 1);
    if (t->ndim == 0) return luaL_error(L, "'len': a 0-d tensor has no length (use t:numel() or t:item())");
    lua_pushinteger(L, t->size[0]);
    return 1;
}

/* t.key: a method (the methods table, upvalue 3), a property (shape dtype ndim, autograd's), or
 * t[i] for an integer key (view.c). */
static int l_index(lua_State *L) {
    mg_tensor *t = lt_test(L, 1);
    if (!t) return luaL_typeerror(L, 1, "tensor");
    switch (lua_type(L, 2)) {
    case LUA_TSTRING: {
        lua_pushvalue(L, 2);
        if (lua_rawget(L, lua_upvalueindex(3)) != LUA_TNIL) return 1; /* a method */
        const char *key = lua_tostring(L, 2);
        if (!strcmp(key, "shape")) push_list(L, t->ndim, t->size);
        else if (!strcmp(key, "dtype")) lua_pushstring(L, mg_dtype_name((mg_dtype)t->dtype));
        else if (!strcmp(key, "ndim")) lua_pushinteger(L, t->ndim);
        else if (!strcmp(key, "T")) return lt_reversed_dims(L); /* view.c */
        else if (!lt_autograd_get(L, t, key)) lua_pushnil(L);
        return 1;
    }
    case LUA_TNUMBER: return lt_index_read(L, lt_usable(t) ? t : lt_check(L, 1)); /* lt_check words the error */
    default: return luaL_argerror(L, 2, "tensors are indexed by integers (t[i]) or method names");
    }
}

/* t.key = v: an autograd property (grad, requires_grad), or t[i] = v for an integer key (view.c). */
static int l_newindex(lua_State *L) {
    mg_tensor *t = lt_check(L, 1);
    if (lua_type(L, 2) == LUA_TSTRING && lt_autograd_set(L, t, lua_tostring(L, 2))) return 0;
    if (lua_type(L, 2) != LUA_TNUMBER)
        return luaL_error(L, "'newindex': tensors take t[i] = v for integer i only (got key '%s')",
                          luaL_tolstring(L, 2, NULL));
    return lt_index_write(L, t);
}

/* ================================================================ registration */

const luaL_Reg lt_tensor_methods[] = {
    {"size", l_size}, {"stride", l_stride}, {"dim", l_dim}, {"numel", l_numel},
    {"is_contiguous", l_is_contiguous},
    {NULL, NULL}};

const luaL_Reg lt_tensor_functions[] = {{"is_tensor", l_is_tensor}, {NULL, NULL}};

const luaL_Reg lt_tensor_metamethods[] = {
    {"__index", l_index}, {"__newindex", l_newindex}, {"__len", l_len},
    {"__tostring", lt_tostring}, {"__close", l_close},
    {NULL, NULL}};
