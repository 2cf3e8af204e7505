/*
 * convert.c (binding): Lua values into tensors and back, and tensors into other dtypes or layouts.
 *   - elements: one Lua number or boolean <-> one element of a dtype (the rounding rules live here);
 *   - operands: a number or a tensor as an op's operand (lt_operand, lt_number_dtype), and a number
 *     saved as a 0-d tensor (lt_push_scalar);
 *   - tables: mg.tensor(data), t:totable(), t:item();
 *   - conversions: lt_push_as / lt_push_contiguous and t:to float double long bool contiguous
 *     clone, recorded by autograd as copies;
 *   - the plain in-place writes t:fill_(v) zero_() copy_(src).
 */
#include <limits.h>
#include <string.h>

#include "../ops/ops.h"
#include "../ops/shape.h"
#include "bind.h"

/* ================================================================ elements */

void lt_push_element(lua_State *L, mg_dtype dt, const char *p) {
    switch (dt) {
    case MG_FLOAT32: lua_pushnumber(L, *(const float *)p); break;
    case MG_FLOAT64: lua_pushnumber(L, *(const double *)p); break;
    case MG_INT64: lua_pushinteger(L, *(const int64_t *)p); break;
    default: lua_pushboolean(L, *(const bool *)p); break;
    }
}

/* Writes the number or boolean at idx into *p as dtype dt (true is 1; a float into int64 truncates
 * toward zero, and one out of int64's range becomes INT64_MIN, as x86 does); 0 when it is neither. */
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

/* ================================================================ operands */

mg_dtype lt_number_dtype(lua_State *L, int idx, mg_dtype other) {
    if (lua_type(L, idx) == LUA_TBOOLEAN) return other;
    if (mg_is_floating(other)) return other;
    if (lua_isinteger(L, idx)) return other == MG_BOOL ? MG_INT64 : other;
    return lt_ctx(L)->default_dtype;
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

/* ================================================================ tables */

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
        lt_argerror(L, 1, "non-rectangular nested tables: %s has %I element%s, expected %I", where, got,
                    got == 1 ? "" : "s", (lua_Integer)n);
    }
    for (int64_t i = 0; i < n; i++) {
        path[depth] = i;
        lua_rawgeti(L, idx, (lua_Integer)i + 1);
        if (depth + 1 < t->ndim) {
            if (lua_type(L, -1) != LUA_TTABLE) {
                const char *where = push_path(L, path, depth + 1);
                lt_argerror(L, 1, "non-rectangular nested tables: %s is a %s, expected a table of %I elements",
                            where, luaL_typename(L, -2), (lua_Integer)t->size[depth + 1]);
            }
            p = fill_from_table(L, lua_gettop(L), t, depth + 1, path, p);
        } else {
            if (!store_element(L, -1, (mg_dtype)t->dtype, p)) {
                const char *where = push_path(L, path, depth + 1);
                lt_argerror(L, 1, "%s is a %s, expected a number", where, luaL_typename(L, -2));
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
    if (rg && !mg_is_floating((mg_dtype)t->dtype))
        return lt_argerror(L, opts, "only floating point tensors can require gradients, got %s",
                           mg_dtype_name((mg_dtype)t->dtype));
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
        else lt_push_element(L, (mg_dtype)t->dtype, p);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

/* t:totable(): nested Lua tables (a number for a 0-d tensor) */
static int l_totable(lua_State *L) {
    const mg_tensor *t = lt_check(L, 1);
    luaL_checkstack(L, t->ndim + 4, "tensor too deep");
    if (t->ndim == 0) lt_push_element(L, (mg_dtype)t->dtype, mg_tensor_data(t));
    else push_table(L, t, 0, mg_tensor_data(t));
    return 1;
}

static int l_item(lua_State *L) {
    const mg_tensor *t = lt_check(L, 1);
    if (t->numel != 1)
        return lt_argerror(L, 1, "a tensor with %I elements cannot be converted to a number (item needs exactly 1)",
                           (lua_Integer)t->numel);
    lt_push_element(L, (mg_dtype)t->dtype, mg_tensor_data(t));
    return 1;
}

/* ================================================================ conversions */

/* Pushes a new contiguous copy of the tensor at idx, in dtype: differentiable, recorded as a copy
 * (the gradient converts back). */
static mg_tensor *push_copy(lua_State *L, int idx, mg_dtype dtype) {
    idx = lua_absindex(L, idx);
    const mg_tensor *t = lt_check(L, idx);
    mg_tensor *out = lt_push_new(L, dtype, t->ndim, t->size);
    mg_copy(lt_ctx(L), out, t);
    if (lt_grad_needed(L, 1, &idx)) lt_record(L, -1, MG_FAM_SHAPE, MG_SHAPE_COPY, 1, &idx, 0, NULL);
    return out;
}

mg_tensor *lt_push_as(lua_State *L, int idx, mg_dtype dtype) {
    mg_tensor *t = lt_check(L, idx);
    if (t->dtype != dtype) return push_copy(L, idx, dtype);
    lua_pushvalue(L, idx);
    return t;
}

mg_tensor *lt_push_contiguous(lua_State *L, int idx) {
    mg_tensor *t = lt_check(L, idx);
    if (!mg_is_contiguous(t)) return push_copy(L, idx, (mg_dtype)t->dtype);
    lua_pushvalue(L, idx);
    return t;
}

static int l_contiguous(lua_State *L) { lt_push_contiguous(L, 1); return 1; }

static int l_clone(lua_State *L) {
    push_copy(L, 1, (mg_dtype)lt_check(L, 1)->dtype);
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
    if (!mg_broadcasts_to(src, t))
        return lt_argerror(L, 2, "source of shape %s does not broadcast to shape %s",
                           lt_push_shape(L, src->ndim, src->size), lt_push_shape(L, t->ndim, t->size));
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

/* ================================================================ registration */

const luaL_Reg lt_convert_methods[] = {
    {"totable", l_totable}, {"item", l_item}, {"contiguous", l_contiguous}, {"clone", l_clone},
    {"to", l_to}, {"float", l_float}, {"double", l_double}, {"long", l_long}, {"bool", l_bool},
    {"fill_", l_fill_}, {"zero_", l_zero_}, {"copy_", l_copy_},
    {NULL, NULL}};

const luaL_Reg lt_convert_functions[] = {{"tensor", l_tensor}, {NULL, NULL}};
