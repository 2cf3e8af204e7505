/*
 * host.c: the embedding API of include/moongrad.h for a C host: mg_push_host_tensor (a tensor over
 * the host's buffer, without a copy), mg_to_tensor, mg_check_tensor; and the "moongrad.Storage"
 * userdata that holds a host's buffer and calls its release callback once.
 *
 * These are called by the host, outside the module's closures: they find the Tensor metatable in
 * the registry, where luaopen_moongrad_core left it.
 */
#include <string.h>

#include "bind.h"

_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "mg_interrupt needs a lock-free atomic int (async-signal-safe)");

/* The bytes of a host's buffer (mg_push_host_tensor): a userdata whose finalizer calls the host's
 * release callback, held by the tensors that view it. Tensors' own bytes need no finalizer: they
 * are inline in the tensor's userdata (see lt_push_new). */
typedef struct lt_storage {
    mg_storage s;
} lt_storage;

/* Its __gc: the host's release callback (lt_release_storage is idempotent). */
static int storage_gc(lua_State *L) {
    lt_release_storage(&((lt_storage *)luaL_checkudata(L, 1, LT_STORAGE_MT))->s);
    return 0;
}

void lt_close_host_storage(lua_State *L, mg_storage *s) {
    if (s->kind != MG_STORAGE_HOST || !s->data) return;
    /* 1: the collector runs normally, so this is no finalizer (5.4.4 answers -1 inside one, 5.4.0-3
     * 0, as when a script stopped the collector) */
    if (lua_gc(L, LUA_GCISRUNNING) == 1) {
        lt_release_storage(s);
        return;
    }
    s->kind = MG_STORAGE_CLOSED; /* unusable from now on; the bytes stay until storage_gc */
}

/* Its __close (reached through debug.getuservalue only): as a tensor's <close>. */
static int storage_close(lua_State *L) {
    lt_close_host_storage(L, &((lt_storage *)luaL_checkudata(L, 1, LT_STORAGE_MT))->s);
    return 0;
}

static lt_storage *push_storage(lua_State *L) {
    lt_storage *st = (lt_storage *)lua_newuserdatauv(L, sizeof *st, 0);
    memset(st, 0, sizeof *st); /* valid (and empty) before anything can fail */
    st->s.kind = MG_STORAGE_HOST;
    /* the fields are set every time, not only when the metatable is new: one that a memory error
     * left half-made (registered, without __close) is completed by the next call */
    luaL_newmetatable(L, LT_STORAGE_MT);
    lua_pushcfunction(L, storage_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, storage_close);
    lua_setfield(L, -2, "__close");
    lua_setmetatable(L, -2);
    return st;
}

const mg_tensor *mg_to_tensor(lua_State *L, int idx) {
    return (const mg_tensor *)luaL_testudata(L, idx, LT_TENSOR_MT);
}

const mg_tensor *mg_check_tensor(lua_State *L, int idx) {
    return (const mg_tensor *)luaL_checkudata(L, idx, LT_TENSOR_MT);
}

mg_tensor *mg_push_host_tensor(lua_State *L, mg_dtype dtype, int ndim, const int64_t *size, void *data,
                               mg_release_fn release, void *release_ud) {
    if (ndim < 0 || ndim > MG_MAX_DIMS || (unsigned)dtype >= MG_NDTYPES)
        luaL_error(L, "mg_push_host_tensor: bad dtype or ndim %d", ndim);
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (size[i] < 0 || (size[i] && numel > MG_MAX_NUMEL / size[i]))
            luaL_error(L, "mg_push_host_tensor: bad size at dimension %d", i + 1);
        numel *= size[i];
    }
    lt_storage *st = push_storage(L);
    /* a host calls from outside the module's closures: the metatable comes from the registry */
    if (luaL_getmetatable(L, LT_TENSOR_MT) == LUA_TNIL)
        luaL_error(L, "mg_push_host_tensor: load moongrad.core first");
    mg_tensor *t = lt_push_header(L, ndim, 0, lua_gettop(L));
    lua_remove(L, -2);                   /* the metatable: storage, tensor */
    lua_rotate(L, -2, 1);                /* tensor, storage */
    lua_setiuservalue(L, -2, LT_UV_OWNER);
    /* the buffer is taken only now that nothing can fail: when this function raises (no memory
     * for the tensor, say) the buffer stays the host's and release is never called */
    st->s.data = data;
    st->s.nbytes = (size_t)numel * mg_dtype_size(dtype);
    st->s.release = release;
    st->s.release_ud = release_ud;
    t->storage = &st->s;
    t->flags |= LT_OWNS_HOST;
    t->dtype = (uint8_t)dtype;
    t->numel = numel;
    if (ndim) memcpy(t->size, size, sizeof(int64_t) * ndim); /* a 0-d host tensor may pass size = NULL */
    mg_contiguous_strides(ndim, t->size, t->stride);
    return t;
}

/* The state's ctx for the host API function `fn`, or a Lua error when moongrad is not loaded. */
static mg_ctx *host_ctx(lua_State *L, const char *fn) {
    lua_getfield(L, LUA_REGISTRYINDEX, LT_CTX_KEY);
    mg_ctx *ctx = (mg_ctx *)lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!ctx) luaL_error(L, "%s: load moongrad.core first", fn);
    return ctx;
}

size_t mg_set_memory_limit(lua_State *L, size_t bytes) {
    mg_ctx *ctx = host_ctx(L, "mg_set_memory_limit");
    const size_t previous = ctx->memory_limit;
    ctx->memory_limit = bytes;
    return previous;
}

int mg_set_huge_pages(lua_State *L, int on) {
    mg_ctx *ctx = host_ctx(L, "mg_set_huge_pages");
    const int previous = ctx->huge_pages;
    ctx->huge_pages = MG_HUGE_PAGES_OS && on != 0;
    return previous;
}

/* The interrupt request of include/moongrad.h: the handle is the state's ctx (a userdata in the
 * registry, alive until lua_close); mg_interrupt is one lock-free atomic store, so a signal handler
 * or another thread may call it. */
void *mg_interrupt_handle(lua_State *L) { return host_ctx(L, "mg_interrupt_handle"); }

void mg_interrupt(void *handle) {
    if (handle) atomic_store_explicit(&((mg_ctx *)handle)->interrupt, 1, memory_order_relaxed);
}

void mg_interrupt_clear(void *handle) {
    if (handle) atomic_store_explicit(&((mg_ctx *)handle)->interrupt, 0, memory_order_relaxed);
}
