/*
 * binding.c: moongrad.distributed_core, the C half of moongrad.distributed (the PyTorch-named API
 * is lua/moongrad/distributed.lua). It holds one process group per call of new_group: a userdata
 * with the backend (include/moongrad_dist.h) and its deadline; nothing global.
 *
 * Rules kept here:
 *   - No Lua error is raised while a collective holds anything: every check (arguments, the
 *     metadata agreed by all ranks) happens before the engine is called or after it has completed.
 *   - A collective past its deadline ends the job: backend->abort (MPI_Abort) with a message that
 *     names the collective, the rank and the deadline. A rank that died, stopped or never called
 *     the collective cannot hang the others.
 *   - Before a user-level collective, check() gathers a small record from every rank (which
 *     collective, dtype, shape, op or src) and raises the same error on every rank when they
 *     disagree: mismatched input is an error, never a deadlock or a corrupted tensor.
 *
 * Tensors are read through the public descriptor (include/moongrad.h): a tensor userdata starts
 * with its mg_tensor and has the metatable "moongrad.Tensor". The Lua layer passes contiguous
 * tensors only (it copies a non-contiguous one in and back).
 */
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <string.h>

#include "dist.h"

#define GROUP_MT "moongrad.ProcessGroup"
#define HOST_KEY "moongrad.distributed.host_backend"
#define TENSOR_MT "moongrad.Tensor"
#define TENSOR_CLOSED 8 /* the binding's flag bit for a tensor closed by <close> (src/bind/bind.h) */

typedef struct group {
    mgd_backend b;
    double timeout; /* seconds */
    int live;       /* not yet destroyed */
    int owns_mpi;   /* this group initialized MPI: it finalizes it */
    int rank, size;
} group;

static group *check_group(lua_State *L) {
    group *g = (group *)luaL_checkudata(L, 1, GROUP_MT);
    if (!g->live) luaL_error(L, "the process group was destroyed (destroy_process_group)");
    return g;
}

/* The tensor at idx: usable and contiguous (the Lua layer makes it so). */
static mg_tensor *check_tensor(lua_State *L, int idx) {
    mg_tensor *t = (mg_tensor *)luaL_testudata(L, idx, TENSOR_MT);
    if (!t) luaL_typeerror(L, idx, "tensor");
    if (!t->storage->data || t->storage->kind == MG_STORAGE_CLOSED || (t->flags & TENSOR_CLOSED))
        luaL_argerror(L, idx, "tensor used after it was closed (by <close>)");
    int64_t expect = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->size[d] != 1 && t->stride[d] != expect) luaL_argerror(L, idx, "a contiguous tensor expected");
        expect *= t->size[d];
    }
    return t;
}

/* The job ends here: the collective `what` did not complete within the deadline. */
static void deadline_passed(lua_State *L, group *g, const char *what) {
    lua_pushfstring(L, "moongrad.distributed: rank %d of %d: %s did not complete within the deadline of "
                       "%f s (init_process_group's timeout): a rank died, stopped, or did not call it; "
                       "aborting the job (MPI_Abort)", g->rank, g->size, what, g->timeout);
    g->b.abort(g->b.self, 3, lua_tostring(L, -1));
}

/* After a collective: OK, or the job ends (timeout), or a Lua error (the engine's error: nothing
 * is pending then). */
static void settle(lua_State *L, group *g, mgd_status st, const char *what) {
    if (st == MGD_TIMEOUT) deadline_passed(L, g, what);
    if (st != MGD_OK) luaL_error(L, "'%s': %s", what, g->b.last_error(g->b.self));
}

static int parse_op(lua_State *L, int idx, int *avg) {
    static const char *const names[] = {"sum", "max", "min", "avg", NULL};
    const int op = luaL_checkoption(L, idx, "sum", names);
    *avg = op == 3;
    return op == 3 ? MGD_SUM : op;
}

/* Without calling into moongrad.core (a module loaded apart, its symbols not visible here). */
static size_t dsize(int dt) { return dt == MG_BOOL ? 1 : dt == MG_FLOAT32 ? 4 : 8; }
static void *data(const mg_tensor *t) { return t->storage->data + (size_t)t->offset * dsize(t->dtype); }

static void mark_written(mg_tensor *t) { t->storage->version++; }

/* ---- metadata check ------------------------------------------------------------------------- */
#define META 16
#define META_DIMS 11

static int64_t hash_name(const char *s) {
    uint64_t h = 5381;
    while (*s) h = h * 33 + (unsigned char)*s++;
    return (int64_t)(h & 0x7fffffffffff);
}

static void push_shape(lua_State *L, const int64_t *rec) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addchar(&b, '{');
    const int ndim = (int)rec[2];
    for (int d = 0; d < ndim && d < META_DIMS; d++) {
        if (d) luaL_addchar(&b, ',');
        lua_pushfstring(L, "%I", (lua_Integer)rec[5 + d]);
        luaL_addvalue(&b);
    }
    if (ndim > META_DIMS) luaL_addstring(&b, ",...");
    luaL_addchar(&b, '}');
    luaL_pushresult(&b);
}

static const char *dtype_name(int64_t dt) {
    static const char *const names[] = {"float32", "float64", "int64", "bool"};
    return dt >= 0 && dt < 4 ? names[dt] : "?";
}

/* g:check(name, t or nil, extra, extra_name): every rank agrees on the collective, the tensor's
 * dtype and shape, and `extra` (op or src), or every rank raises the same error. */
static int l_check(lua_State *L) {
    group *g = check_group(L);
    const char *name = luaL_checkstring(L, 2);
    const mg_tensor *t = lua_isnil(L, 3) ? NULL : check_tensor(L, 3);
    const lua_Integer extra = luaL_optinteger(L, 4, 0);
    const char *extra_name = luaL_optstring(L, 5, "argument");
    int64_t rec[META] = {0};
    rec[0] = hash_name(name);
    rec[1] = t ? t->dtype : -1;
    rec[2] = t ? t->ndim : 0;
    rec[3] = extra;
    rec[4] = t ? t->numel : 0;
    for (int d = 0; t && d < t->ndim && d < META_DIMS; d++) rec[5 + d] = t->size[d];
    int64_t *all = (int64_t *)lua_newuserdatauv(L, sizeof rec * (size_t)g->size, 0);
    lua_pushfstring(L, "%s (checking that every rank passed the same kind of input)", name);
    settle(L, g, g->b.allgather(g->b.self, rec, all, sizeof rec, g->timeout), lua_tostring(L, -1));
    for (int r = 1; r < g->size; r++) {
        const int64_t *a = all, *o = all + META * r;
        if (!memcmp(a, o, sizeof rec)) continue;
        if (a[0] != o[0])
            return luaL_error(L, "'%s': ranks called different collectives at the same point (rank %d "
                                 "differs from rank 0)", name, r);
        if (a[1] != o[1] || a[2] != o[2] || a[4] != o[4] || memcmp(a + 5, o + 5, sizeof(int64_t) * META_DIMS)) {
            push_shape(L, a);
            push_shape(L, o);
            return luaL_error(L, "'%s': rank %d passed a %s tensor of shape %s where rank 0 passed %s %s "
                                 "(every rank must pass the same dtype and shape)", name, r, dtype_name(o[1]),
                              lua_tostring(L, -1), dtype_name(a[1]), lua_tostring(L, -2));
        }
        return luaL_error(L, "'%s': rank %d passed %s %I where rank 0 passed %I", name, r, extra_name,
                          (lua_Integer)o[3], (lua_Integer)a[3]);
    }
    return 0;
}

/* ---- collectives ---------------------------------------------------------------------------- */

static void divide(mg_tensor *t, int n) {
    if (t->dtype == MG_FLOAT32) {
        float *p = (float *)data(t);
        for (int64_t i = 0; i < t->numel; i++) p[i] /= (float)n;
    } else if (t->dtype == MG_FLOAT64) {
        double *p = (double *)data(t);
        for (int64_t i = 0; i < t->numel; i++) p[i] /= (double)n;
    }
}

static void check_avg(lua_State *L, const mg_tensor *t, int avg, const char *fn) {
    if (avg && t->dtype != MG_FLOAT32 && t->dtype != MG_FLOAT64)
        luaL_error(L, "bad argument #2 to '%s' (op avg needs a floating point tensor, got %s)", fn,
                   dtype_name(t->dtype));
}

/* g:allreduce(t, op): in place; avg is the sum divided by the world size (the same on every rank) */
static int l_allreduce(lua_State *L) {
    group *g = check_group(L);
    mg_tensor *t = check_tensor(L, 2);
    int avg;
    const mgd_op op = (mgd_op)parse_op(L, 3, &avg);
    check_avg(L, t, avg, "all_reduce");
    settle(L, g, g->b.allreduce(g->b.self, data(t), (size_t)t->numel, (mg_dtype)t->dtype, op,
                                g->timeout), "all_reduce");
    if (avg) divide(t, g->size);
    mark_written(t);
    return 0;
}

/* g:broadcast(t, src) with src a rank, 0-based (checked by the Lua layer) */
static int l_broadcast(lua_State *L) {
    group *g = check_group(L);
    mg_tensor *t = check_tensor(L, 2);
    const lua_Integer src = luaL_checkinteger(L, 3);
    if (src < 0 || src >= g->size)
        return luaL_error(L, "bad argument #2 to 'broadcast' (src %I is not a rank of the group: 0 to %d)", src,
                          g->size - 1);
    settle(L, g, g->b.broadcast(g->b.self, data(t), (size_t)t->numel * dsize(t->dtype),
                                (int)src, g->timeout), "broadcast");
    mark_written(t);
    return 0;
}

/* g:allgather(t, out): out (contiguous, same dtype, size * numel elements) gets rank r's t at r */
static int l_allgather(lua_State *L) {
    group *g = check_group(L);
    const mg_tensor *t = check_tensor(L, 2);
    mg_tensor *out = check_tensor(L, 3);
    if (out->dtype != t->dtype || out->numel != t->numel * g->size)
        return luaL_error(L, "all_gather: the output buffer does not fit (internal)");
    settle(L, g, g->b.allgather(g->b.self, data(t), data(out),
                                (size_t)t->numel * dsize(t->dtype), g->timeout), "all_gather");
    mark_written(out);
    return 0;
}

static int l_barrier(lua_State *L) {
    group *g = check_group(L);
    settle(L, g, g->b.barrier(g->b.self, g->timeout), "barrier");
    return 0;
}

/* ---- buckets in shared memory (DistributedDataParallel) ------------------------------------ */

/* The core's mg_push_host_tensor (include/moongrad.h): linked in when this module is part of a host
 * program with the static library; else looked up in the shared object of moongrad.core, found
 * from the address of a tensor's tag (Lua loads each C module with its own symbols). NULL: none. */
typedef mg_tensor *(*push_fn)(lua_State *, mg_dtype, int, const int64_t *, void *, mg_release_fn, void *);
#pragma weak mg_push_host_tensor
static push_fn find_push(const mg_tensor *like) {
    if (mg_push_host_tensor) return mg_push_host_tensor;
    Dl_info info;
    if (!dladdr(like->tag, &info) || !info.dli_fname) return NULL;
    void *h = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    if (!h) return NULL;
    void *sym = dlsym(h, "mg_push_host_tensor");
    push_fn f = NULL;
    if (sym) memcpy(&f, &sym, sizeof f);
    dlclose(h); /* the module stays loaded: Lua holds it */
    return f;
}

static void seg_release(void *ud, void *bytes, size_t nbytes) {
    (void)bytes;
    (void)nbytes;
    mgd_seg_free((mgd_seg *)ud);
}

/* The bucket's segment when t is a whole bucket made by shared_tensor, else NULL */
static const mgd_seg *seg_of(const mg_tensor *t) {
    if (t->storage->kind != MG_STORAGE_HOST || t->storage->release != seg_release) return NULL;
    const mgd_seg *sg = (const mgd_seg *)t->storage->release_ud;
    if (data(t) != mgd_seg_data(sg) || (size_t)t->numel * dsize(t->dtype) != mgd_seg_bytes(sg)) return NULL;
    return sg;
}

typedef struct push_args {
    push_fn push;
    mg_dtype dt;
    int64_t numel;
    mgd_seg *seg;
} push_args;

static int push_protected(lua_State *L) {
    push_args *a = (push_args *)lua_touserdata(L, 1);
    a->push(L, a->dt, 1, &a->numel, mgd_seg_data(a->seg), seg_release, a->seg);
    return 1;
}

/* g:shared_tensor(numel, like): collective (every rank, same numel and dtype). A zero-filled 1-D
 * tensor of like's dtype over this rank's slot of a new shared segment, whose allreduce (iallreduce)
 * then runs in place; nil on every rank when that is not possible (ranks on several nodes, one
 * rank, a host's own backend, the shared-memory path off). */
static int l_shared_tensor(lua_State *L) {
    group *g = check_group(L);
    const lua_Integer numel = luaL_checkinteger(L, 2);
    const mg_tensor *like = check_tensor(L, 3);
    luaL_argcheck(L, numel > 0 && numel < ((lua_Integer)1 << 40), 2, "a positive size expected");
    if (!mgd_mpi_is(&g->b)) return 0; /* the same kind of backend on every rank */
    push_args a = {find_push(like), (mg_dtype)like->dtype, (int64_t)numel, NULL};
    settle(L, g, mgd_mpi_segment(g->b.self, (size_t)numel * dsize(like->dtype), a.push != NULL, g->timeout, &a.seg),
           "the shared memory of a gradient bucket");
    if (!a.seg) return 0;
    lua_pushcfunction(L, push_protected);
    lua_pushlightuserdata(L, &a);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        mgd_seg_free(a.seg); /* not taken */
        return lua_error(L);
    }
    return 1;
}

/* g:iallreduce(slot, t, op [, divisor]): started; t must stay reachable until test says done or
 * wait returns (the Lua layer keeps it). When t is a bucket of shared_tensor, the reduction runs in
 * place and a sum is divided by divisor in the same pass: returns true then (the caller divides
 * otherwise: false). */
static int l_iallreduce(lua_State *L) {
    group *g = check_group(L);
    const int slot = (int)luaL_checkinteger(L, 2);
    mg_tensor *t = check_tensor(L, 3);
    int avg;
    const mgd_op op = (mgd_op)parse_op(L, 4, &avg);
    if (avg) return luaL_argerror(L, 4, "iallreduce takes sum, max or min");
    const lua_Integer divisor = luaL_optinteger(L, 5, 1);
    luaL_argcheck(L, divisor >= 1 && divisor <= (1 << 24), 5, "a divisor from 1 to 2^24 expected");
    const mgd_seg *sg = mgd_mpi_is(&g->b) ? seg_of(t) : NULL;
    if (sg && !mgd_seg_of_group(sg, g->b.self)) sg = NULL; /* another group's bucket: staged */
    const int fold = sg && op == MGD_SUM && (t->dtype == MG_FLOAT32 || t->dtype == MG_FLOAT64);
    if (sg) {
        mark_written(t);
        settle(L, g, mgd_mpi_iallreduce_seg(g->b.self, slot, sg, (size_t)t->numel, (mg_dtype)t->dtype, op,
                                            fold ? (int)divisor : 1), "all_reduce (of a gradient bucket)");
    } else {
        settle(L, g, g->b.iallreduce(g->b.self, slot, data(t), (size_t)t->numel, (mg_dtype)t->dtype, op),
               "all_reduce (of a gradient bucket)");
    }
    lua_pushboolean(L, fold && divisor > 1); /* true: the sum was divided by divisor (in place) */
    return 1;
}

static int l_test(lua_State *L) {
    group *g = check_group(L);
    int done = 0;
    settle(L, g, g->b.test(g->b.self, (int)luaL_checkinteger(L, 2), &done), "all_reduce (of a gradient bucket)");
    lua_pushboolean(L, done);
    return 1;
}

static int l_wait(lua_State *L) {
    group *g = check_group(L);
    settle(L, g, g->b.wait(g->b.self, (int)luaL_checkinteger(L, 2), g->timeout),
           "all_reduce (of a gradient bucket)");
    return 0;
}

static int l_rank(lua_State *L) {
    lua_pushinteger(L, check_group(L)->rank);
    return 1;
}

static int l_size(lua_State *L) {
    lua_pushinteger(L, check_group(L)->size);
    return 1;
}

static int l_timeout(lua_State *L) {
    group *g = check_group(L);
    lua_pushnumber(L, g->timeout);
    if (!lua_isnoneornil(L, 2)) {
        const lua_Number s = luaL_checknumber(L, 2);
        luaL_argcheck(L, s > 0, 2, "the timeout must be positive (seconds)");
        g->timeout = s;
    }
    return 1;
}

/* g:abort(message): ends every rank of the job */
static int l_abort(lua_State *L) {
    group *g = check_group(L);
    g->b.abort(g->b.self, 1, luaL_checkstring(L, 2));
    return 0;
}

/* Ends the group: all ranks meet in a barrier first (within the deadline, else the job ends: a
 * rank that closes its state while the others still compute would otherwise leave them waiting),
 * then the backend is released and MPI finalized when this group started it. */
static void destroy(lua_State *L, group *g, const char *what) {
    if (!g->live) return;
    const mgd_status st = g->b.close ? g->b.close(g->b.self, g->timeout) : MGD_OK;
    if (st == MGD_TIMEOUT) deadline_passed(L, g, what);
    if (st != MGD_OK) { /* the barrier failed: releasing the backend (collective) could wait forever */
        lua_pushfstring(L, "moongrad.distributed: rank %d of %d: %s failed: %s; aborting the job (MPI_Abort)",
                        g->rank, g->size, what, g->b.last_error(g->b.self));
        g->b.abort(g->b.self, 3, lua_tostring(L, -1));
    }
    g->live = 0;
    if (g->b.destroy) g->b.destroy(g->b.self);
    if (g->owns_mpi) mgd_mpi_finalize();
}

static int l_destroy(lua_State *L) {
    destroy(L, (group *)luaL_checkudata(L, 1, GROUP_MT), "destroy_process_group (its barrier)");
    return 0;
}

static int l_gc(lua_State *L) {
    destroy(L, (group *)luaL_checkudata(L, 1, GROUP_MT),
            "the end of the process group when its Lua state closed (a barrier)");
    return 0;
}

/* new_group(timeout [, "mpi" | "host"]) */
static int l_new_group(lua_State *L) {
    const lua_Number timeout = luaL_checknumber(L, 1);
    luaL_argcheck(L, timeout > 0, 1, "the timeout must be positive (seconds)");
    static const char *const backends[] = {"mpi", "host", NULL};
    const int which = luaL_checkoption(L, 2, "mpi", backends);
    if (which == 1 && lua_getfield(L, LUA_REGISTRYINDEX, HOST_KEY) != LUA_TUSERDATA)
        return luaL_error(L, "backend \"host\": the host program handed in no backend (mgd_set_backend)");
    group *g = (group *)lua_newuserdatauv(L, sizeof(group), 0);
    memset(g, 0, sizeof *g);
    if (which == 1) {
        memcpy(&g->b, lua_touserdata(L, -2), sizeof g->b);
        lua_pushnil(L);
        lua_setfield(L, LUA_REGISTRYINDEX, HOST_KEY); /* handed over once: the group destroys it */
    } else {
        char why[200];
        if (mgd_mpi_world(&g->b, &g->owns_mpi, timeout, why, sizeof why) != 0) {
            if (g->owns_mpi) mgd_mpi_finalize();
            return luaL_error(L, "init_process_group: %s", why);
        }
    }
    g->live = 1;
    g->timeout = timeout;
    g->rank = g->b.rank(g->b.self);
    g->size = g->b.size(g->b.self);
    luaL_setmetatable(L, GROUP_MT);
    return 1;
}

MG_API void mgd_set_backend(lua_State *L, const mgd_backend *b) {
    mgd_backend *copy = (mgd_backend *)lua_newuserdatauv(L, sizeof *copy, 0);
    memcpy(copy, b, sizeof *copy);
    lua_setfield(L, LUA_REGISTRYINDEX, HOST_KEY);
}

MG_API int luaopen_moongrad_distributed_core(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"check", l_check}, {"allreduce", l_allreduce}, {"broadcast", l_broadcast}, {"allgather", l_allgather},
        {"barrier", l_barrier}, {"iallreduce", l_iallreduce}, {"shared_tensor", l_shared_tensor},
        {"test", l_test}, {"wait", l_wait},
        {"rank", l_rank}, {"size", l_size}, {"timeout", l_timeout}, {"abort", l_abort},
        {"destroy", l_destroy}, {NULL, NULL}};
    if (luaL_newmetatable(L, GROUP_MT)) {
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, l_new_group);
    lua_setfield(L, -2, "new_group");
    lua_pushinteger(L, MGD_MAX_PENDING);
    lua_setfield(L, -2, "max_pending");
    return 1;
}
