/* print.c (binding): tostring(t); the formatting itself is in src/core/print.c. TODO */
#include "bind.h"

int lt_tostring(lua_State *L) {
    const mg_tensor *t = lt_check(L, 1);
    lua_pushfstring(L, "tensor(<%d-d %s>)", t->ndim, mg_dtype_name((mg_dtype)t->dtype));
    return 1;
}
