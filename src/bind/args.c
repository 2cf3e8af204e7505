/*
 * args.c: the one way the binding words a bad argument.
 *
 * Lua writes the frame ("bad argument #2 to 'add' (...)"), the caller writes the detail: lowercase,
 * no final period, shapes as {3,2} (lt_push_shape), dims and indices 1-based.
 */
#include <stdarg.h>

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
