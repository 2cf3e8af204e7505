/*
 * tensor.c: the Tensor userdata. Memory layout and lifetime (see bind.h), argument helpers shared
 * by every family file, creation from Lua values, properties, indexing, views, conversions and
 * the plain in-place writes (copy_ fill_ zero_).
 */
#include <limits.h>
#include <unistd.h> /* isatty */
#include <string.h>

#include "../ops/ops.h"
#include "../ops/shape.h"
#include "bind.h"

/* ================================================================ memory and lifetime */

/* The bytes of a host's buffer (mg_push_host_tensor): a userdata whose finalizer calls the host's
 * release callback, held by the tensors that view it. Tensors' own bytes need no finalizer: they
 * are inline in the tensor's userdata (see lt_push_new). */
typedef struct lt_storage {
    mg_storage s;
} lt_storage;

/* Idempotent: __gc and __close both land here. */
static int storage_release(lua_State *L) {
    lt_storage *st = (lt_storage *)luaL_checkudata(L, 1, LT_STORAGE_MT);
    if (st->s.data) {
        if (st->s.release) st->s.release(st->s.release_ud, st->s.data, st->s.nbytes);
        st->s.data = NULL;
    }
    return 0;
}

static lt_storage *push_storage(lua_State *L, int kind) {
    lt_storage *st = (lt_storage *)lua_newuserdatauv(L, sizeof *st, 0);
    memset(st, 0, sizeof *st); /* valid (and empty) before anything can fail */
    st->s.kind = kind;
    if (luaL_newmetatable(L, LT_STORAGE_MT)) {
        lua_pushcfunction(L, storage_release);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, storage_release);
        lua_setfield(L, -2, "__close");
    }
    lua_setmetatable(L, -2);
    return st;
}

/* Every tensor userdata carries the address of this constant in its header: checking it costs two
 * loads, where comparing metatables costs four API calls (a quarter of a small op's time). Only a
 * full userdata at least as large as a header is read; no other value can hold the address by
 * accident (Lua code cannot write a userdata's bytes; another C library would have to copy it). */
static const char tensor_tag = 'T';

/* Pushes a tensor userdata of ndim dims, `extra` bytes after its size and stride arrays, with the
 * metatable at index mt (an upvalue, or an absolute stack index); the caller fills the rest. */
static mg_tensor *push_header(lua_State *L, int ndim, size_t extra, int mt) {
    mg_tensor *t = (mg_tensor *)lua_newuserdatauv(L, sizeof(mg_tensor) + 2 * sizeof(int64_t) * ndim + extra,
                                                  LT_NUV);
    memset(t, 0, sizeof *t);
    t->tag = &tensor_tag;
    t->ndim = (uint8_t)ndim;
    t->size = (int64_t *)(t + 1);
    t->stride = t->size + ndim;
    lua_pushvalue(L, mt);
    lua_setmetatable(L, -2);
    return t;
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
    if (!t->storage->data)
        luaL_argerror(L, idx, "tensor used after its storage was released (by <close>)");
    return t;
}

/* The most a tensor's userdata adds to its bytes: header, size / stride arrays, storage, padding. */
#define MAX_OVERHEAD (sizeof(mg_tensor) + sizeof(mg_storage) + 2 * sizeof(int64_t) * MG_MAX_DIMS + 63)

mg_tensor *lt_push_new(lua_State *L, mg_dtype dtype, int ndim, const int64_t *size) {
    mg_ctx *ctx = lt_ctx(L);
    int64_t numel;
    if (mg_check_shape(ctx, 0, ndim, size, &numel) != MG_OK) lt_raise(L, 1);
    const size_t item = mg_dtype_size(dtype);
    if ((uint64_t)numel > (SIZE_MAX - MAX_OVERHEAD) / item) {
        mg_fail(ctx, MG_ENOMEM, 0, "not enough memory for a tensor of %lld elements", (long long)numel);
        lt_raise(L, 1);
    }
    const size_t bytes = (size_t)numel * item;
    /* The bytes live inline, after the header and the size / stride arrays: one block that the
     * collector counts at its true size and frees without a finalizer, whatever the size. Buffers
     * past LT_ALIGN_MIN bytes start on a 64-byte boundary, for whole-cache-line vector loads. */
    const size_t pad = bytes >= LT_ALIGN_MIN ? 63 : 0;
    mg_tensor *t = push_header(L, ndim, sizeof(mg_storage) + bytes + pad, lua_upvalueindex(2));
    mg_storage *s = (mg_storage *)(t->stride + ndim);
    memset(s, 0, sizeof *s);
    s->kind = MG_STORAGE_INLINE;
    s->data = pad ? (char *)(((uintptr_t)(s + 1) + 63) & ~(uintptr_t)63) : (char *)(s + 1);
    s->nbytes = bytes;
    t->storage = s;
    t->flags |= LT_OWNS_INLINE;
    t->dtype = (uint8_t)dtype;
    t->numel = numel;
    if (ndim) memcpy(t->size, size, sizeof(int64_t) * ndim); /* 0-d callers may pass size = NULL */
    mg_contiguous_strides(ndim, size, t->stride);
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
    mg_tensor *t = push_header(L, ndim, 0, lua_upvalueindex(2));
    push_owner(L, src, base);
    lua_setiuservalue(L, -2, 1);
    t->storage = base->storage;
    t->dtype = base->dtype;
    t->offset = base->offset;
    return t;
}

/* The copy at the top was made from the tensor at idx: differentiable (the gradient converts back). */
static void record_copy(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    if (lt_grad_needed(L, 1, &idx)) lt_record(L, -1, MG_FAM_SHAPE, MG_SHAPE_COPY, 1, &idx, 0, NULL);
}

mg_tensor *lt_push_as(lua_State *L, int idx, mg_dtype dtype) {
    mg_tensor *t = lt_check(L, idx);
    if (t->dtype == dtype) {
        lua_pushvalue(L, idx);
        return t;
    }
    mg_tensor *out = lt_push_new(L, dtype, t->ndim, t->size);
    mg_copy(lt_ctx(L), out, t);
    record_copy(L, idx);
    return out;
}

mg_tensor *lt_push_contiguous(lua_State *L, int idx) {
    mg_tensor *t = lt_check(L, idx);
    if (mg_is_contiguous(t)) {
        lua_pushvalue(L, idx);
        return t;
    }
    mg_tensor *out = lt_push_new(L, (mg_dtype)t->dtype, t->ndim, t->size);
    mg_copy(lt_ctx(L), out, t);
    record_copy(L, idx);
    return out;
}

int lt_record_view(lua_State *L, int op, int64_t a0, int64_t a1) {
    const int in = 1;
    if (lt_grad_needed(L, 1, &in)) {
        mg_node *n = lt_record(L, -1, MG_FAM_SHAPE, op, 1, &in, 0, NULL);
        n->iarg[0] = a0;
        n->iarg[1] = a1;
    }
    return 1;
}

/* ================================================================ argument helpers */

int lt_raise(lua_State *L, int arg0) {
    mg_ctx *ctx = lt_ctx(L);
    if (ctx->err_operand > 0) return luaL_argerror(L, arg0 + ctx->err_operand - 1, ctx->err);
    lua_Debug ar;
    const char *name = "?";
    if (lua_getstack(L, 0, &ar) && lua_getinfo(L, "n", &ar) && ar.name) name = ar.name;
    return luaL_error(L, "'%s': %s", name, ctx->err);
}

int lt_check_dim(lua_State *L, int arg, int ndim) {
    int out;
    mg_ctx *ctx = lt_ctx(L);
    if (mg_wrap_dim(ctx, 1, luaL_checkinteger(L, arg), ndim, &out) != MG_OK) lt_raise(L, arg);
    return ndim == 0 ? 0 : out;
}

int lt_opt_dim(lua_State *L, int arg, int ndim, int def) {
    return lua_isnoneornil(L, arg) ? def : lt_check_dim(L, arg, ndim);
}

int64_t lt_check_index(lua_State *L, int arg, int64_t size) {
    const lua_Integer i = luaL_checkinteger(L, arg);
    if (i == 0 || i > size || i < -size) {
        lua_pushfstring(L, "index %I out of range for dimension of size %I", i, (lua_Integer)size);
        luaL_argerror(L, arg, lua_tostring(L, -1));
    }
    return i > 0 ? i - 1 : i + size;
}

/* A dtype name (or an alias PyTorch users type) -> mg_dtype; raises naming it at arg. */
static mg_dtype dtype_from_name(lua_State *L, int arg, const char *name) {
    mg_dtype dt;
    if (mg_dtype_from_name(name, &dt)) return dt;
    if (!strcmp(name, "float")) return MG_FLOAT32;
    if (!strcmp(name, "double")) return MG_FLOAT64;
    if (!strcmp(name, "long")) return MG_INT64;
    return (mg_dtype)lt_argerror(L, arg, "unknown dtype '%s', expected 'float32', 'float64', 'int64' or 'bool'",
                                 name);
}

mg_dtype lt_check_dtype(lua_State *L, int arg) {
    return dtype_from_name(L, arg, luaL_checkstring(L, arg));
}

int lt_is_opts(lua_State *L, int idx) {
    if (lua_type(L, idx) != LUA_TTABLE || lt_test(L, idx)) return 0;
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) == LUA_TSTRING) {
            lua_pop(L, 2);
            return 1;
        }
        lua_pop(L, 1);
    }
    return 0;
}

void lt_check_opts(lua_State *L, int idx, const char *const *valid) {
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        int ok = 0;
        if (lua_type(L, -1) == LUA_TSTRING)
            for (int i = 0; valid[i] && !ok; i++) ok = strcmp(lua_tostring(L, -1), valid[i]) == 0;
        if (!ok) {
            /* the key's text first: luaL_buffinit pushes a placeholder, so -1 moves after it */
            const char *key = luaL_tolstring(L, -1, NULL);
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            lua_pushfstring(L, "unknown option '%s' (valid: ", key);
            luaL_addvalue(&b);
            for (int i = 0; valid[i]; i++) {
                if (i) luaL_addstring(&b, ", ");
                luaL_addstring(&b, valid[i]);
            }
            luaL_addstring(&b, ")");
            luaL_pushresult(&b);
            luaL_argerror(L, idx, lua_tostring(L, -1));
        }
    }
}

mg_dtype lt_opt_dtype(lua_State *L, int opts, mg_dtype def) {
    if (!opts) return def;
    mg_dtype dt = def;
    if (lua_getfield(L, opts, "dtype") != LUA_TNIL) {
        if (lua_type(L, -1) != LUA_TSTRING) luaL_argerror(L, opts, "dtype must be a string");
        dt = dtype_from_name(L, opts, lua_tostring(L, -1));
    }
    lua_pop(L, 1);
    return dt;
}

int lt_read_shape(lua_State *L, int first, int64_t *size, int *opts) {
    int top = lua_gettop(L), ndim = 0;
    *opts = 0;
    if (top >= first && lt_is_opts(L, top)) *opts = top--;
    if (top >= first && lua_type(L, first) == LUA_TTABLE) {
        if (top > first) luaL_argerror(L, first + 1, "give the shape as one table or as sizes, not both");
        const int n = (int)lua_rawlen(L, first);
        if (n > MG_MAX_DIMS) luaL_argerror(L, first, "too many dimensions (at most 16)");
        for (int i = 1; i <= n; i++) {
            lua_rawgeti(L, first, i);
            int isint;
            const lua_Integer v = lua_tointegerx(L, -1, &isint);
            if (!isint) {
                lua_pushfstring(L, "size at position %d is not an integer", i);
                luaL_argerror(L, first, lua_tostring(L, -1));
            }
            size[ndim++] = v;
            lua_pop(L, 1);
        }
    } else {
        if (top - first + 1 > MG_MAX_DIMS) luaL_argerror(L, first, "too many dimensions (at most 16)");
        for (int i = first; i <= top; i++) size[ndim++] = luaL_checkinteger(L, i);
    }
    for (int i = 0; i < ndim; i++)
        if (size[i] < 0) {
            lua_pushfstring(L, "size %I at dimension %d is negative", (lua_Integer)size[i], i + 1);
            luaL_argerror(L, lua_type(L, first) == LUA_TTABLE ? first : first + i, lua_tostring(L, -1));
        }
    return ndim;
}

mg_dtype lt_number_dtype(lua_State *L, int idx, mg_dtype other) {
    if (lua_type(L, idx) == LUA_TBOOLEAN) return other;
    if (mg_is_floating(other)) return other;
    if (lua_isinteger(L, idx)) return other == MG_BOOL ? MG_INT64 : other;
    return lt_ctx(L)->default_dtype;
}

/* ================================================================ elements and tables */

static void push_element(lua_State *L, mg_dtype dt, const char *p) {
    switch (dt) {
    case MG_FLOAT32: lua_pushnumber(L, *(const float *)p); break;
    case MG_FLOAT64: lua_pushnumber(L, *(const double *)p); break;
    case MG_INT64: lua_pushinteger(L, *(const int64_t *)p); break;
    default: lua_pushboolean(L, *(const bool *)p); break;
    }
}

/* Writes the Lua value at idx into *p as dtype dt; 0 when it is not a number (or boolean). */
static int store_element(lua_State *L, int idx, mg_dtype dt, char *p) {
    const int type = lua_type(L, idx);
    if (type == LUA_TBOOLEAN) {
        mg_scalar sc;
        const int b = lua_toboolean(L, idx);
        mg_scalar_init(&sc, dt, b, b);
        memcpy(p, &sc.v, mg_dtype_size(dt));
        return 1;
    }
    if (type != LUA_TNUMBER) return 0;
    switch (dt) {
    case MG_FLOAT32: *(float *)p = (float)lua_tonumber(L, idx); break;
    case MG_FLOAT64: *(double *)p = lua_tonumber(L, idx); break;
    case MG_INT64:
        if (lua_isinteger(L, idx)) {
            *(int64_t *)p = lua_tointeger(L, idx);
        } else {
            const double v = lua_tonumber(L, idx);
            *(int64_t *)p = (v >= -9.2e18 && v <= 9.2e18) ? (int64_t)v : INT64_MIN;
        }
        break;
    default: *(bool *)p = lua_tonumber(L, idx) != 0; break;
    }
    return 1;
}

mg_tensor *lt_push_scalar(lua_State *L, int idx, mg_dtype dtype) {
    mg_tensor *t = lt_push_new(L, dtype, 0, NULL);
    if (!store_element(L, idx, dtype, mg_tensor_data(t))) luaL_typeerror(L, idx, "number or tensor");
    return t;
}

const mg_tensor *lt_operand(lua_State *L, int idx, mg_dtype dtype, mg_scalar *sc) {
    mg_tensor *t = lt_test(L, idx);
    if (!t) { /* a number or a boolean: written into the C scalar, nothing pushed */
        mg_scalar_init(sc, dtype, 0, 0);
        if (!store_element(L, idx, dtype, (char *)&sc->v)) luaL_typeerror(L, idx, "number or tensor");
        return &sc->t;
    }
    if (t->dtype == dtype) return lt_check(L, idx);
    return lt_push_as(L, idx, dtype);
}

/* "[2][1]" for error messages; path holds 0-based positions */
static const char *push_path(lua_State *L, const int64_t *path, int depth) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "data");
    for (int i = 0; i < depth; i++) {
        lua_pushfstring(L, "[%I]", (lua_Integer)path[i] + 1);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    return lua_tostring(L, -1);
}

/* Infers the shape of nested tables from their first elements; *all_bool when the first leaf is
 * a boolean. */
static int infer_shape(lua_State *L, int idx, int64_t *size, int *all_bool) {
    int ndim = 0;
    lua_pushvalue(L, idx);
    while (lua_type(L, -1) == LUA_TTABLE && !lt_test(L, -1)) {
        if (ndim == MG_MAX_DIMS) luaL_argerror(L, 1, "nested tables deeper than 16 dimensions");
        size[ndim++] = (int64_t)lua_rawlen(L, -1);
        if (lua_rawlen(L, -1) == 0) break;
        lua_rawgeti(L, -1, 1);
        lua_remove(L, -2);
    }
    *all_bool = lua_type(L, -1) == LUA_TBOOLEAN;
    lua_pop(L, 1);
    return ndim;
}

/* Fills from nested tables, checking that every sub-table has the inferred length. */
static char *fill_from_table(lua_State *L, int idx, const mg_tensor *t, int depth, int64_t *path,
                             char *p) {
    const size_t item = mg_dtype_size((mg_dtype)t->dtype);
    const int64_t n = t->size[depth];
    if ((int64_t)lua_rawlen(L, idx) != n) {
        const char *where = push_path(L, path, depth);
        const lua_Integer got = (lua_Integer)lua_rawlen(L, idx);
        lua_pushfstring(L, "non-rectangular nested tables: %s has %I element%s, expected %I", where, got,
                        got == 1 ? "" : "s", (lua_Integer)n);
        luaL_argerror(L, 1, lua_tostring(L, -1));
    }
    for (int64_t i = 0; i < n; i++) {
        path[depth] = i;
        lua_rawgeti(L, idx, (lua_Integer)i + 1);
        if (depth + 1 < t->ndim) {
            if (lua_type(L, -1) != LUA_TTABLE) {
                const char *where = push_path(L, path, depth + 1);
                lua_pushfstring(L, "non-rectangular nested tables: %s is a %s, expected a table of %I elements",
                                where, luaL_typename(L, -2), (lua_Integer)t->size[depth + 1]);
                luaL_argerror(L, 1, lua_tostring(L, -1));
            }
            p = fill_from_table(L, lua_gettop(L), t, depth + 1, path, p);
        } else {
            if (!store_element(L, -1, (mg_dtype)t->dtype, p)) {
                const char *where = push_path(L, path, depth + 1);
                lua_pushfstring(L, "%s is a %s, expected a number", where, luaL_typename(L, -2));
                luaL_argerror(L, 1, lua_tostring(L, -1));
            }
            p += item;
        }
        lua_pop(L, 1);
    }
    return p;
}

static const char *const tensor_opts[] = {"dtype", "requires_grad", NULL};

/* opts.requires_grad on the new tensor at the top (floating dtypes only, as PyTorch) */
static int set_requires_grad(lua_State *L, mg_tensor *t, int opts) {
    if (!opts) return 1;
    lua_getfield(L, opts, "requires_grad");
    const int rg = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (rg && !mg_is_floating((mg_dtype)t->dtype)) {
        lua_pushfstring(L, "only floating point tensors can require gradients, got %s",
                        mg_dtype_name((mg_dtype)t->dtype));
        return luaL_argerror(L, opts, lua_tostring(L, -1));
    }
    t->requires_grad = (uint8_t)rg;
    return 1;
}

/* mg.tensor(data [, opts]): data is a number, a boolean, nested tables or a tensor (copied). */
static int l_tensor(lua_State *L) {
    mg_ctx *ctx = lt_ctx(L);
    int opts = 0;
    if (lua_gettop(L) >= 2 && !lua_isnil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lt_check_opts(L, 2, tensor_opts);
        opts = 2;
    }
    lua_settop(L, 2);
    if (lt_test(L, 1)) {
        const mg_tensor *src = lt_check(L, 1);
        mg_tensor *t = lt_push_new(L, lt_opt_dtype(L, opts, (mg_dtype)src->dtype), src->ndim, src->size);
        mg_copy(ctx, t, src);
        return set_requires_grad(L, t, opts);
    }
    int64_t size[MG_MAX_DIMS];
    int ndim = 0, all_bool = lua_type(L, 1) == LUA_TBOOLEAN;
    if (lua_type(L, 1) == LUA_TTABLE) ndim = infer_shape(L, 1, size, &all_bool);
    else if (lua_type(L, 1) != LUA_TNUMBER && lua_type(L, 1) != LUA_TBOOLEAN)
        luaL_typeerror(L, 1, "number, table or tensor");
    const mg_dtype dt = lt_opt_dtype(L, opts, all_bool ? MG_BOOL : ctx->default_dtype);
    if (ndim == 0) return set_requires_grad(L, lt_push_scalar(L, 1, dt), opts);
    mg_tensor *t = lt_push_new(L, dt, ndim, size);
    int64_t path[MG_MAX_DIMS];
    fill_from_table(L, 1, t, 0, path, mg_tensor_data(t));
    return set_requires_grad(L, t, opts);
}

static void push_table(lua_State *L, const mg_tensor *t, int depth, const char *p) {
    const size_t item = mg_dtype_size((mg_dtype)t->dtype);
    const int64_t n = t->size[depth];
    lua_createtable(L, n < INT_MAX ? (int)n : 0, 0);
    for (int64_t i = 0; i < n; i++, p += t->stride[depth] * (int64_t)item) {
        if (depth + 1 < t->ndim) push_table(L, t, depth + 1, p);
        else push_element(L, (mg_dtype)t->dtype, p);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

/* t:totable(): nested Lua tables (a number for a 0-d tensor) */
static int l_totable(lua_State *L) {
    const mg_tensor *t = lt_check(L, 1);
    luaL_checkstack(L, t->ndim + 4, "tensor too deep");
    if (t->ndim == 0) push_element(L, (mg_dtype)t->dtype, mg_tensor_data(t));
    else push_table(L, t, 0, mg_tensor_data(t));
    return 1;
}

static int l_item(lua_State *L) {
    const mg_tensor *t = lt_check(L, 1);
    if (t->numel != 1) {
        lua_pushfstring(L, "a tensor with %I elements cannot be converted to a number (item needs exactly 1)",
                        (lua_Integer)t->numel);
        return luaL_argerror(L, 1, lua_tostring(L, -1));
    }
    push_element(L, (mg_dtype)t->dtype, mg_tensor_data(t));
    return 1;
}

/* ================================================================ properties */

static void push_shape(lua_State *L, const mg_tensor *t) {
    lua_createtable(L, t->ndim, 0);
    for (int i = 0; i < t->ndim; i++) {
        lua_pushinteger(L, t->size[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

static int l_size(lua_State *L) {
    const mg_tensor *t = lt_check(L, 1);
    if (lua_isnoneornil(L, 2)) push_shape(L, t);
    else if (t->ndim == 0) return luaL_argerror(L, 2, "a 0-d tensor has no dimensions");
    else lua_pushinteger(L, t->size[lt_check_dim(L, 2, t->ndim)]);
    return 1;
}

static int l_stride(lua_State *L) {
    const mg_tensor *t = lt_check(L, 1);
    if (!lua_isnoneornil(L, 2)) {
        if (t->ndim == 0) return luaL_argerror(L, 2, "a 0-d tensor has no dimensions");
        lua_pushinteger(L, t->stride[lt_check_dim(L, 2, t->ndim)]);
        return 1;
    }
    lua_createtable(L, t->ndim, 0);
    for (int i = 0; i < t->ndim; i++) {
        lua_pushinteger(L, t->stride[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

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

/* ================================================================ indexing: t[i], t[i] = v */

/* Pushes t[i] as a view of the sub-tensor (n-D) or the element's value (1-D). */
static int index_get(lua_State *L, mg_tensor *t) {
    if (t->ndim == 0) return luaL_error(L, "'index': a 0-d tensor cannot be indexed (use t:item())");
    const int64_t i = lt_check_index(L, 2, t->size[0]);
    if (t->requires_grad && lt_ctx(L)->grad_enabled) { /* the book's w, b = params: 0-d tensors */
        mg_tensor *v = lt_push_view(L, 1, t->ndim - 1);
        mg_view_select(lt_ctx(L), v, t, 0, i);
        return lt_record_view(L, MG_SHAPE_SELECT, 0, i);
    }
    if (t->ndim == 1) {
        const size_t item = mg_dtype_size((mg_dtype)t->dtype);
        push_element(L, (mg_dtype)t->dtype, (const char *)mg_tensor_data(t) + i * t->stride[0] * (int64_t)item);
        return 1;
    }
    mg_tensor *v = lt_push_view(L, 1, t->ndim - 1);
    mg_view_select(lt_ctx(L), v, t, 0, i);
    return lt_record_view(L, MG_SHAPE_SELECT, 0, i);
}

static int l_index(lua_State *L) {
    mg_tensor *t = lt_test(L, 1);
    if (!t) return luaL_typeerror(L, 1, "tensor");
    switch (lua_type(L, 2)) {
    case LUA_TSTRING: {
        lua_pushvalue(L, 2);
        if (lua_rawget(L, lua_upvalueindex(3)) != LUA_TNIL) return 1; /* a method */
        const char *key = lua_tostring(L, 2);
        if (!strcmp(key, "shape")) push_shape(L, t);
        else if (!strcmp(key, "dtype")) lua_pushstring(L, mg_dtype_name((mg_dtype)t->dtype));
        else if (!strcmp(key, "ndim")) lua_pushinteger(L, t->ndim);
        else if (!lt_autograd_get(L, t, key)) lua_pushnil(L);
        return 1;
    }
    case LUA_TNUMBER: return index_get(L, lt_check(L, 1));
    default: return luaL_argerror(L, 2, "tensors are indexed by integers (t[i]) or method names");
    }
}

/* t[i] = v: v a number (filled) or a tensor that broadcasts to t[i]'s shape (copied). */
static int l_newindex(lua_State *L) {
    mg_tensor *t = lt_check(L, 1);
    mg_ctx *ctx = lt_ctx(L);
    if (lua_type(L, 2) == LUA_TSTRING && lt_autograd_set(L, t, lua_tostring(L, 2))) return 0;
    if (lua_type(L, 2) != LUA_TNUMBER)
        return luaL_error(L, "'newindex': tensors take t[i] = v for integer i only (got key '%s')",
                          luaL_tolstring(L, 2, NULL));
    if (t->ndim == 0) return luaL_error(L, "'newindex': a 0-d tensor cannot be indexed (use t:fill_(v))");
    const int64_t i = lt_check_index(L, 2, t->size[0]);
    lt_inplace(L, 1);
    lt_inplace_source(L, 3);
    mg_tensor *row = lt_push_view(L, 1, t->ndim - 1);
    mg_view_select(ctx, row, t, 0, i);
    mg_scalar sc;
    const mg_tensor *src = lt_operand(L, 3, (mg_dtype)t->dtype, &sc);
    if (src->storage == t->storage) { /* may overlap the row: read from a copy */
        mg_tensor *tmp = lt_push_new(L, (mg_dtype)src->dtype, src->ndim, src->size);
        mg_copy(ctx, tmp, src);
        src = tmp;
    }
    if (!mg_broadcasts_to(src, row)) {
        char a[160], b[160];
        mg_format_shape(a, sizeof a, src->ndim, src->size);
        mg_format_shape(b, sizeof b, row->ndim, row->size);
        return luaL_error(L, "'newindex': a value of shape %s cannot be assigned to t[%I] of shape %s", a,
                          (lua_Integer)(i + 1), b);
    }
    mg_copy(ctx, row, src);
    lt_written(t);
    return 0;
}

/* ================================================================ views */

/* Reads integers (negative allowed: -1 in view / expand) given as varargs from arg or as one
 * table at arg; errors name arg. Returns the count. */
static int read_sizes(lua_State *L, int arg, int64_t *size) {
    int ndim = 0;
    if (lua_type(L, arg) == LUA_TTABLE) {
        const lua_Integer n = (lua_Integer)lua_rawlen(L, arg);
        if (n > MG_MAX_DIMS) return luaL_argerror(L, arg, "too many dimensions (at most 16)");
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, arg, i);
            int isint;
            size[ndim++] = lua_tointegerx(L, -1, &isint);
            if (!isint || lua_type(L, -1) != LUA_TNUMBER) {
                lua_pushfstring(L, "size at position %I is not an integer", i);
                return luaL_argerror(L, arg, lua_tostring(L, -1));
            }
            lua_pop(L, 1);
        }
    } else {
        const int top = lua_gettop(L);
        if (top - arg + 1 > MG_MAX_DIMS) return luaL_argerror(L, arg, "too many dimensions (at most 16)");
        for (int i = arg; i <= top; i++) size[ndim++] = luaL_checkinteger(L, i);
    }
    return ndim;
}

/* Pushes the tensor at 1 viewed as `size` (one entry may be -1). With allow_copy (reshape,
 * flatten) a tensor whose strides cannot be viewed so is copied first, as PyTorch does; the
 * error of the second attempt is the real one (a size mismatch). */
static int push_viewed(lua_State *L, int ndim, const int64_t *size, int allow_copy) {
    mg_tensor *t = lt_check(L, 1);
    mg_tensor *v = lt_push_view(L, 1, ndim);
    memcpy(v->size, size, sizeof(int64_t) * ndim);
    if (mg_view_shape(lt_ctx(L), v, t) == MG_OK) return lt_record_view(L, MG_SHAPE_RESHAPE, 0, 0);
    if (!allow_copy || mg_is_contiguous(t)) return lt_raise(L, 1);
    lua_pop(L, 1);
    lt_push_contiguous(L, 1);
    lua_replace(L, 1);
    t = lt_check(L, 1);
    v = lt_push_view(L, 1, ndim);
    memcpy(v->size, size, sizeof(int64_t) * ndim);
    LT_TRY(L, 1, mg_view_shape(lt_ctx(L), v, t));
    return lt_record_view(L, MG_SHAPE_RESHAPE, 0, 0);
}

/* view(): never copies (PyTorch's stride rule; the error suggests reshape). */
static int l_view(lua_State *L) {
    lt_check(L, 1);
    int64_t size[MG_MAX_DIMS];
    const int ndim = read_sizes(L, 2, size);
    return push_viewed(L, ndim, size, 0);
}

/* reshape: a view when the strides allow it, else a copy (as PyTorch). */
static int l_reshape(lua_State *L) {
    lt_check(L, 1);
    int64_t size[MG_MAX_DIMS];
    const int ndim = read_sizes(L, 2, size);
    lua_settop(L, 1);
    return push_viewed(L, ndim, size, 1);
}

static int record_transpose(lua_State *L, int ndim, int d0, int d1) {
    int perm[MG_MAX_DIMS];
    for (int i = 0; i < ndim; i++) perm[i] = i;
    perm[d0] = d1, perm[d1] = d0;
    return lt_record_view(L, MG_SHAPE_PERMUTE, mg_pack_perm(perm, ndim), 0);
}

static int l_transpose(lua_State *L) {
    mg_tensor *t = lt_check(L, 1);
    const int d0 = lt_check_dim(L, 2, t->ndim), d1 = lt_check_dim(L, 3, t->ndim);
    mg_tensor *v = lt_push_view(L, 1, t->ndim);
    mg_view_transpose(lt_ctx(L), v, t, d0, d1);
    return record_transpose(L, t->ndim, d0, d1);
}

static int l_t(lua_State *L) {
    mg_tensor *t = lt_check(L, 1);
    if (t->ndim > 2) {
        lua_pushfstring(L, "t() expects a tensor of at most 2 dimensions, got %d (use transpose)", t->ndim);
        return luaL_argerror(L, 1, lua_tostring(L, -1));
    }
    mg_tensor *v = lt_push_view(L, 1, t->ndim);
    mg_view_transpose(lt_ctx(L), v, t, 0, t->ndim == 2 ? 1 : 0);
    return record_transpose(L, t->ndim, 0, t->ndim == 2 ? 1 : 0);
}

static int l_permute(lua_State *L) {
    mg_tensor *t = lt_check(L, 1);
    int perm[MG_MAX_DIMS];
    const int table = lua_type(L, 2) == LUA_TTABLE;
    const int n = table ? (int)lua_rawlen(L, 2) : lua_gettop(L) - 1;
    if (n != t->ndim) {
        lua_pushfstring(L, "permute needs %d dims for a tensor of %d dimensions, got %d", t->ndim, t->ndim, n);
        return luaL_argerror(L, 2, lua_tostring(L, -1));
    }
    for (int i = 0; i < n; i++) {
        if (table) {
            lua_rawgeti(L, 2, i + 1);
            int out, isint;
            const lua_Integer d = lua_tointegerx(L, -1, &isint);
            if (!isint || mg_wrap_dim(lt_ctx(L), 1, d, t->ndim, &out) != MG_OK) {
                lua_pushfstring(L, "dims[%d] is %s: %s", i + 1, luaL_tolstring(L, -1, NULL),
                                isint ? lt_ctx(L)->err : "expected an integer dimension");
                return luaL_argerror(L, 2, lua_tostring(L, -1));
            }
            perm[i] = out;
            lua_pop(L, 1);
        } else {
            perm[i] = lt_check_dim(L, i + 2, t->ndim);
        }
    }
    mg_tensor *v = lt_push_view(L, 1, t->ndim);
    LT_TRY(L, 1, mg_view_permute(lt_ctx(L), v, t, perm));
    return lt_record_view(L, MG_SHAPE_PERMUTE, mg_pack_perm(perm, t->ndim), 0);
}

static int l_unsqueeze(lua_State *L) {
    mg_tensor *t = lt_check(L, 1);
    const int dim = lt_check_dim(L, 2, t->ndim + 1);
    if (t->ndim >= MG_MAX_DIMS) return luaL_argerror(L, 1, "too many dimensions (at most 16)");
    mg_tensor *v = lt_push_view(L, 1, t->ndim + 1);
    mg_view_unsqueeze(v, t, dim);
    return lt_record_view(L, MG_SHAPE_RESHAPE, 0, 0);
}

static int l_squeeze(lua_State *L) {
    mg_tensor *t = lt_check(L, 1);
    const int dim = lua_isnoneornil(L, 2) ? -1 : lt_check_dim(L, 2, t->ndim);
    if (t->ndim == 0) {
        lua_pushvalue(L, 1);
        return 1;
    }
    mg_tensor *v = lt_push_view(L, 1, t->ndim); /* room for all dims; squeeze sets the count */
    mg_view_squeeze(v, t, dim);
    return lt_record_view(L, MG_SHAPE_RESHAPE, 0, 0);
}

static int l_expand(lua_State *L) {
    mg_tensor *t = lt_check(L, 1);
    int64_t size[MG_MAX_DIMS];
    int ndim = 0;
    if (lt_test(L, 2)) { /* expand_as */
        const mg_tensor *o = lt_check(L, 2);
        ndim = o->ndim;
        memcpy(size, o->size, sizeof(int64_t) * ndim);
    } else {
        ndim = read_sizes(L, 2, size);
    }
    mg_tensor *v = lt_push_view(L, 1, ndim);
    memcpy(v->size, size, sizeof(int64_t) * ndim);
    LT_TRY(L, 1, mg_view_expand(lt_ctx(L), v, t));
    return lt_record_view(L, MG_SHAPE_EXPAND, 0, 0);
}

static int l_narrow(lua_State *L) {
    mg_tensor *t = lt_check(L, 1);
    if (t->ndim == 0) return luaL_argerror(L, 1, "narrow() cannot be applied to a 0-d tensor");
    const int dim = lt_check_dim(L, 2, t->ndim);
    lua_Integer start = luaL_checkinteger(L, 3);
    const lua_Integer length = luaL_checkinteger(L, 4);
    const int64_t n = t->size[dim];
    if (start == 0 || start > n + 1 || start < -n) {
        lua_pushfstring(L, "start %I out of range for dimension %d of size %I", start, dim + 1, (lua_Integer)n);
        return luaL_argerror(L, 3, lua_tostring(L, -1));
    }
    start = start > 0 ? start - 1 : start + n;
    mg_tensor *v = lt_push_view(L, 1, t->ndim);
    LT_TRY(L, 2, mg_view_narrow(lt_ctx(L), v, t, dim, start, length));
    return lt_record_view(L, MG_SHAPE_NARROW, dim, start);
}

static int l_select(lua_State *L) {
    mg_tensor *t = lt_check(L, 1);
    if (t->ndim == 0) return luaL_argerror(L, 1, "select() cannot be applied to a 0-d tensor");
    const int dim = lt_check_dim(L, 2, t->ndim);
    const int64_t i = lt_check_index(L, 3, t->size[dim]);
    mg_tensor *v = lt_push_view(L, 1, t->ndim - 1);
    mg_view_select(lt_ctx(L), v, t, dim, i);
    return lt_record_view(L, MG_SHAPE_SELECT, dim, i);
}

/* flatten([start_dim = 1 [, end_dim = -1]]): dims start..end merged; a view when the strides
 * allow it, else a copy (as PyTorch). A 0-d tensor becomes 1-D. */
static int l_flatten(lua_State *L) {
    mg_tensor *t = lt_check(L, 1);
    int64_t size[MG_MAX_DIMS];
    int nd = 0;
    if (t->ndim == 0) {
        size[nd++] = 1;
    } else {
        const int s = lt_opt_dim(L, 2, t->ndim, 0), e = lt_opt_dim(L, 3, t->ndim, t->ndim - 1);
        if (s > e) return luaL_argerror(L, 3, "end_dim comes before start_dim");
        for (int i = 0; i < s; i++) size[nd++] = t->size[i];
        int64_t m = 1;
        for (int i = s; i <= e; i++) m *= t->size[i]; /* no overflow: numel <= 2^62 */
        size[nd++] = m;
        for (int i = e + 1; i < t->ndim; i++) size[nd++] = t->size[i];
    }
    lua_settop(L, 1);
    return push_viewed(L, nd, size, 1);
}

/* ================================================================ copies and conversions */

static int l_contiguous(lua_State *L) { lt_push_contiguous(L, 1); return 1; }

static int l_clone(lua_State *L) {
    const mg_tensor *t = lt_check(L, 1);
    mg_tensor *out = lt_push_new(L, (mg_dtype)t->dtype, t->ndim, t->size);
    mg_copy(lt_ctx(L), out, t);
    record_copy(L, 1);
    return 1;
}

/* detach(): the same data, without history and without requires_grad */
static int l_detach(lua_State *L) {
    mg_tensor *t = lt_check(L, 1);
    mg_tensor *v = lt_push_view(L, 1, t->ndim);
    memcpy(v->size, t->size, sizeof(int64_t) * t->ndim);
    memcpy(v->stride, t->stride, sizeof(int64_t) * t->ndim);
    v->numel = t->numel;
    return 1;
}

static int l_to(lua_State *L) { lt_check(L, 1); lt_push_as(L, 1, lt_check_dtype(L, 2)); return 1; }
static int l_float(lua_State *L) { lt_push_as(L, 1, MG_FLOAT32); return 1; }
static int l_double(lua_State *L) { lt_push_as(L, 1, MG_FLOAT64); return 1; }
static int l_long(lua_State *L) { lt_push_as(L, 1, MG_INT64); return 1; }
static int l_bool(lua_State *L) { lt_push_as(L, 1, MG_BOOL); return 1; }

/* ================================================================ in-place writes */

static int l_fill_(lua_State *L) {
    mg_tensor *t = lt_check(L, 1);
    lt_inplace(L, 1);
    lt_inplace_source(L, 2);
    mg_scalar sc;
    if (lt_test(L, 2)) {
        const mg_tensor *v = lt_check(L, 2);
        if (v->ndim != 0) return luaL_argerror(L, 2, "fill_ takes a number or a 0-d tensor");
        mg_copy(lt_ctx(L), t, v);
    } else {
        mg_copy(lt_ctx(L), t, lt_operand(L, 2, (mg_dtype)t->dtype, &sc));
    }
    lt_written(t);
    lua_settop(L, 1);
    return 1;
}

static int l_zero_(lua_State *L) {
    mg_tensor *t = lt_check(L, 1);
    lt_inplace(L, 1);
    mg_fill(lt_ctx(L), t, 0, 0);
    lt_written(t);
    lua_settop(L, 1);
    return 1;
}

/* copy_(src): src broadcasts to t; converts dtype */
static int l_copy_(lua_State *L) {
    mg_ctx *ctx = lt_ctx(L);
    mg_tensor *t = lt_check(L, 1);
    const mg_tensor *src = lt_check(L, 2);
    lt_inplace(L, 1);
    lt_inplace_source(L, 2);
    if (!mg_broadcasts_to(src, t)) {
        char a[160], b[160];
        mg_format_shape(a, sizeof a, src->ndim, src->size);
        mg_format_shape(b, sizeof b, t->ndim, t->size);
        lua_pushfstring(L, "source of shape %s does not broadcast to shape %s", a, b);
        return luaL_argerror(L, 2, lua_tostring(L, -1));
    }
    if (src->storage == t->storage) { /* overlapping: go through a temporary */
        lua_pushvalue(L, 2);
        mg_tensor *tmp = lt_push_new(L, (mg_dtype)src->dtype, src->ndim, src->size);
        mg_copy(ctx, tmp, src);
        src = tmp;
    }
    mg_copy(ctx, t, src);
    lt_written(t);
    lua_settop(L, 1);
    return 1;
}

/* <close>: ends the life of the tensor's storage. Later use of it (or of any view of it) is an
 * error; a host buffer's release callback runs now; the bytes of a tensor's own storage return to
 * the allocator when the collector frees its userdata (it counts them, so that comes soon). */
static int l_close(lua_State *L) {
    mg_tensor *t = lt_test(L, 1);
    if (!t || !t->storage->data) return 0;
    if (t->storage->kind == MG_STORAGE_HOST) {
        lua_settop(L, 1);
        lua_getiuservalue(L, 1, LT_UV_OWNER);
        lua_replace(L, 1);
        return storage_release(L);
    }
    t->storage->data = NULL;
    return 0;
}

/* ================================================================ the module's settings */

static int l_set_default_dtype(lua_State *L) {
    const mg_dtype dt = lt_check_dtype(L, 1);
    if (!mg_is_floating(dt)) return luaL_argerror(L, 1, "the default dtype must be 'float32' or 'float64'");
    lt_ctx(L)->default_dtype = dt;
    return 0;
}

/* mg.set_num_threads(n): the threads ops may use (1: none are ever started). Results do not
 * depend on it. mg.get_num_threads() reads it. */
static int l_set_num_threads(lua_State *L) {
    const lua_Integer n = luaL_checkinteger(L, 1);
    if (n < 1 || n > MG_MAX_THREADS) {
        lua_pushfstring(L, "number of threads must be in 1..%d, got %I", MG_MAX_THREADS, n);
        return luaL_argerror(L, 1, lua_tostring(L, -1));
    }
    lt_ctx(L)->num_threads = (int)n;
    return 0;
}

static int l_get_num_threads(lua_State *L) {
    lua_pushinteger(L, lt_ctx(L)->num_threads);
    return 1;
}

/* core._isatty(): whether standard output is a terminal (mg.train draws a progress bar then). */
static int l_isatty(lua_State *L) {
    lua_pushboolean(L, isatty(STDOUT_FILENO));
    return 1;
}

static int l_get_default_dtype(lua_State *L) {
    lua_pushstring(L, mg_dtype_name(lt_ctx(L)->default_dtype));
    return 1;
}

/* ================================================================ embedding API */

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
    lt_storage *st = push_storage(L, MG_STORAGE_HOST);
    st->s.data = data;
    st->s.nbytes = (size_t)numel * mg_dtype_size(dtype);
    st->s.release = release;
    st->s.release_ud = release_ud;
    /* a host calls from outside the module's closures: the metatable comes from the registry */
    if (luaL_getmetatable(L, LT_TENSOR_MT) == LUA_TNIL)
        luaL_error(L, "mg_push_host_tensor: load moongrad.core first");
    mg_tensor *t = push_header(L, ndim, 0, lua_gettop(L));
    lua_remove(L, -2);                   /* the metatable: storage, tensor */
    lua_rotate(L, -2, 1);                /* tensor, storage */
    lua_setiuservalue(L, -2, LT_UV_OWNER);
    t->storage = &st->s;
    t->dtype = (uint8_t)dtype;
    t->numel = numel;
    if (ndim) memcpy(t->size, size, sizeof(int64_t) * ndim); /* a 0-d host tensor may pass size = NULL */
    mg_contiguous_strides(ndim, t->size, t->stride);
    return t;
}

/* ================================================================ registration */

const luaL_Reg lt_tensor_methods[] = {
    {"totable", l_totable}, {"item", l_item}, {"size", l_size}, {"stride", l_stride},
    {"dim", l_dim}, {"numel", l_numel}, {"is_contiguous", l_is_contiguous},
    {"view", l_view}, {"reshape", l_reshape}, {"transpose", l_transpose}, {"t", l_t},
    {"permute", l_permute}, {"unsqueeze", l_unsqueeze}, {"squeeze", l_squeeze},
    {"expand", l_expand}, {"expand_as", l_expand}, {"narrow", l_narrow}, {"select", l_select},
    {"flatten", l_flatten}, {"contiguous", l_contiguous}, {"clone", l_clone}, {"detach", l_detach},
    {"to", l_to}, {"float", l_float}, {"double", l_double}, {"long", l_long}, {"bool", l_bool},
    {"fill_", l_fill_}, {"zero_", l_zero_}, {"copy_", l_copy_},
    {NULL, NULL}};

const luaL_Reg lt_tensor_functions[] = {
    {"tensor", l_tensor}, {"is_tensor", l_is_tensor},
    {"set_default_dtype", l_set_default_dtype}, {"get_default_dtype", l_get_default_dtype},
    {"_isatty", l_isatty}, {"set_num_threads", l_set_num_threads}, {"get_num_threads", l_get_num_threads},
    {NULL, NULL}};

const luaL_Reg lt_tensor_metamethods[] = {
    {"__index", l_index}, {"__newindex", l_newindex}, {"__len", l_len},
    {"__tostring", lt_tostring}, {"__close", l_close},
    {NULL, NULL}};
