/*
 * debug.c: checks for the fuzzer (scripts/fuzz.lua) and specs, private to moongrad.core:
 *
 *   core._check_invariants(t)   -> true, or raises naming the broken invariant
 *       a tensor's numel is the product of its sizes, its strides are non-negative, and every
 *       element it can address lies inside its storage (or the storage was released).
 */
#include "bind.h"

static int l_check_invariants(lua_State *L) {
    const mg_tensor *t = lt_test(L, 1);
    if (!t) return luaL_typeerror(L, 1, "tensor");
    if (t->ndim > MG_MAX_DIMS) return luaL_error(L, "ndim %d is past %d", (int)t->ndim, MG_MAX_DIMS);
    int64_t numel = 1, last = t->offset; /* the offset of the last addressable element */
    for (int d = 0; d < t->ndim; d++) {
        if (t->size[d] < 0) return luaL_error(L, "size %I at dim %d is negative", (lua_Integer)t->size[d], d + 1);
        if (t->stride[d] < 0) return luaL_error(L, "stride %I at dim %d is negative", (lua_Integer)t->stride[d], d + 1);
        numel *= t->size[d];
        if (t->size[d] > 0) last += (t->size[d] - 1) * t->stride[d];
    }
    if (numel != t->numel) return luaL_error(L, "numel %I is not the product of the sizes (%I)", (lua_Integer)t->numel, (lua_Integer)numel);
    if (t->offset < 0) return luaL_error(L, "offset %I is negative", (lua_Integer)t->offset);
    const mg_storage *s = t->storage;
    if (s->data && numel > 0) {
        const uint64_t end = ((uint64_t)last + 1) * mg_dtype_size((mg_dtype)t->dtype);
        if (end > s->nbytes)
            return luaL_error(L, "elements reach byte %I of a %I-byte storage", (lua_Integer)end, (lua_Integer)s->nbytes);
    }
    lua_pushboolean(L, 1);
    return 1;
}

const luaL_Reg lt_debug_functions[] = {{"_check_invariants", l_check_invariants}, {NULL, NULL}};
