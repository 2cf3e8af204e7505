/*
 * sort.c (binding): t:sort([dim = -1 [, descending = false]]), t:argsort(...) and
 * t:topk(k [, dim = -1 [, largest = true [, sorted = true]]]) (or t:topk(k, {dim, largest, sorted})),
 * as methods and mg.* functions.
 * Indices are int64 and 1-based. The kernel is src/ops/sort.c; the values are recorded for
 * autograd as in:gather(dim, indices) (index family), whose backward scatters the gradient to
 * the indices.
 */
#include "../ops/index.h"
#include "../ops/sort.h"
#include "bind.h"

/* optional boolean at idx (nil: def); `what` names it in the error, blamed on argument arg */
static bool opt_bool_at(lua_State *L, int idx, int arg, bool def, const char *what) {
    if (lua_isnoneornil(L, idx)) return def;
    if (!lua_isboolean(L, idx)) lt_argerror(L, arg, "%s must be a boolean, got %s", what, luaL_typename(L, idx));
    return lua_toboolean(L, idx);
}
static bool opt_bool(lua_State *L, int arg, bool def, const char *what) { return opt_bool_at(L, arg, arg, def, what); }

/* Pushes values (unless argsort) and indices of the first k of each sorted line; returns the
 * number of results. The values record a gather node when t requires grad. */
static int sorted(lua_State *L, int dim, bool descending, int64_t k, bool want_values) {
    mg_ctx *ctx = lt_ctx(L);
    const mg_tensor *t = lt_check(L, 1);
    int64_t size[MG_MAX_DIMS];
    for (int d = 0; d < t->ndim; d++) size[d] = d == dim ? k : t->size[d];
    mg_tensor *values = want_values ? lt_push_new(L, (mg_dtype)t->dtype, t->ndim, size) : NULL;
    const int vidx = lua_gettop(L);
    mg_tensor *indices = lt_push_new(L, MG_INT64, t->ndim, size);
    const int iidx = lua_gettop(L);
    LT_TRY(L, 1, mg_sort(ctx, values, indices, t, dim, descending, k));
    if (!want_values) return 1;
    const int inputs[2] = {1, iidx};
    if (lt_grad_needed(L, 1, inputs)) {
        mg_node *n = lt_record(L, vidx, MG_FAM_INDEX, MG_INDEX_GATHER, 2, inputs, 0, NULL);
        n->iarg[0] = dim;
    }
    return 2;
}

static int l_sort(lua_State *L) {
    const mg_tensor *t = lt_check(L, 1);
    lua_settop(L, 3);
    const int dim = lt_opt_dim(L, 2, t->ndim, t->ndim ? t->ndim - 1 : 0);
    const bool desc = opt_bool(L, 3, false, "descending");
    return sorted(L, dim, desc, t->ndim ? t->size[dim] : 1, true);
}

static int l_argsort(lua_State *L) {
    const mg_tensor *t = lt_check(L, 1);
    lua_settop(L, 3);
    const int dim = lt_opt_dim(L, 2, t->ndim, t->ndim ? t->ndim - 1 : 0);
    const bool desc = opt_bool(L, 3, false, "descending");
    return sorted(L, dim, desc, t->ndim ? t->size[dim] : 1, false);
}

/* topk: the k largest (or smallest) of each line, sorted (sorted = false gives them sorted too:
 * PyTorch then allows any order). t:topk(k, dim, largest, sorted) or t:topk(k, {dim = , largest = ,
 * sorted = }). */
static int l_topk(lua_State *L) {
    const mg_tensor *t = lt_check(L, 1);
    lua_settop(L, 5);
    int opts = 0; /* the options table's fields go to 3, 4, 5; their errors blame argument 3 */
    if (lua_istable(L, 3) && !lt_test(L, 3)) {
        opts = 1;
        static const char *const valid[] = {"dim", "largest", "sorted", NULL};
        if (!lua_isnil(L, 4)) return lt_argerror(L, 4, "no argument expected after the options table");
        lt_check_opts(L, 3, valid);
        lua_getfield(L, 3, "dim");
        lua_getfield(L, 3, "largest");
        lua_getfield(L, 3, "sorted");
        lua_replace(L, 5);
        lua_replace(L, 4);
        lua_replace(L, 3);
    }
    const lua_Integer k = luaL_checkinteger(L, 2);
    const int dim = lt_opt_dim(L, 3, t->ndim, t->ndim ? t->ndim - 1 : 0);
    const bool largest = opt_bool_at(L, 4, opts ? 3 : 4, true, "largest");
    opt_bool_at(L, 5, opts ? 3 : 5, true, "sorted");
    const int64_t n = t->ndim ? t->size[dim] : 1;
    if (k < 0 || k > n)
        return lt_argerror(L, 2, "k (%I) out of range for dimension %d of size %I", k, dim + 1, (lua_Integer)n);
    return sorted(L, dim, largest, (int64_t)k, true);
}

const luaL_Reg lt_sort_methods[] = {{"sort", l_sort}, {"argsort", l_argsort}, {"topk", l_topk}, {NULL, NULL}};
