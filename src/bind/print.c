/* print.c (binding): tostring(t). The formatting is in src/core/print.c; this file only collects
 * its pieces into a luaL_Buffer (which may raise on no memory: the core holds no heap scratch). */
#include "../core/print.h"
#include "bind.h"

static void add_to_buffer(void *ud, const char *s, size_t n) { luaL_addlstring((luaL_Buffer *)ud, s, n); }

/* tostring(t), t:__tostring(): "tensor([  5.3671, -17.3012])" */
int lt_tostring(lua_State *L) {
    const mg_tensor *t = lt_check(L, 1);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    if (mg_format_tensor(lt_ctx(L), t, add_to_buffer, &b) != MG_OK) return lt_raise(L, 1);
    luaL_pushresult(&b);
    return 1;
}
