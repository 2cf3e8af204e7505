/*
 * args.c: reading arguments, and the one way the binding words a bad one.
 *
 * Lua writes the frame ("bad argument #2 to 'add' (...)"), the caller writes the detail: lowercase,
 * no final period, shapes as {3,2} (lt_push_shape), dims and indices 1-based. The readers here
 * check and convert dims, indices, dtype names, options tables and shapes, raising in that form;
 * lt_raise turns the core's error detail into a Lua error.
 */
#include <stdarg.h>
#include <string.h>

#include "bind.h"

int lt_argerror(lua_State *L, int arg, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    const char *detail = lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    return luaL_argerror(L, arg, detail);
}

const char *lt_push_shape(lua_State *L, int ndim, const int64_t *size) {
    char buf[MG_MAX_DIMS * 22 + 4]; /* "{" + 16 x ("-9223372036854775808,") + "}" */
    mg_format_shape(buf, sizeof buf, ndim, size);
    return lua_pushstring(L, buf);
}

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
    if (i == 0 || i > size || i < -size)
        lt_argerror(L, arg, "index %I out of range for dimension of size %I%s", i, (lua_Integer)size,
                    i == 0 ? " (indices count from 1)" : "");
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
            for (int i = 0; valid[i]; i++) {
                if (i) luaL_addstring(&b, ", ");
                luaL_addstring(&b, valid[i]);
            }
            luaL_pushresult(&b);
            lt_argerror(L, idx, "unknown option '%s' (valid: %s)", key, lua_tostring(L, -1));
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
            if (!isint) lt_argerror(L, first, "size at position %d is not an integer", i);
            size[ndim++] = v;
            lua_pop(L, 1);
        }
    } else {
        if (top - first + 1 > MG_MAX_DIMS) luaL_argerror(L, first, "too many dimensions (at most 16)");
        for (int i = first; i <= top; i++) size[ndim++] = luaL_checkinteger(L, i);
    }
    for (int i = 0; i < ndim; i++)
        if (size[i] < 0)
            lt_argerror(L, lua_type(L, first) == LUA_TTABLE ? first : first + i,
                        "size %I at dimension %d is negative", (lua_Integer)size[i], i + 1);
    return ndim;
}

mg_tensor *lt_push_int_list(lua_State *L, int arg, const char *name, const char *expected) {
    const int64_t n = (int64_t)lua_rawlen(L, arg);
    mg_tensor *t = lt_push_new(L, MG_INT64, 1, &n);
    int64_t *p = (int64_t *)mg_tensor_data(t);
    for (int64_t i = 0; i < n; i++) {
        lua_rawgeti(L, arg, (lua_Integer)i + 1);
        int isint;
        p[i] = (int64_t)lua_tointegerx(L, -1, &isint);
        if (!isint || lua_type(L, -1) != LUA_TNUMBER) /* "3" converts, but is not a number */
            lt_argerror(L, arg, "%s[%I] is %s, expected %s", name, (lua_Integer)i + 1,
                        lua_type(L, -1) == LUA_TNUMBER ? lua_tostring(L, -1) : luaL_typename(L, -1), expected);
        lua_pop(L, 1);
    }
    return t;
}
