/*
 * reduce.c (binding): sum prod mean max min argmax argmin var std norm any all cumsum, as methods
 * and mg.* functions. Dims are 1-based (negative from the end) and become a bit mask here; the
 * result's shape drops the reduced dims, or keeps them as size 1 with keepdim. Without a dim the
 * result is a 0-d tensor, as in PyTorch (`t:sum():item()` gives the number).
 */
#include <math.h>
#include <string.h>

#include "../ops/reduce.h"
#include "bind.h"

/* The dims at arg: none / nil means all (returns 0); an integer one dim; with `list`, a table of
 * dims too ({} means all, as PyTorch's dim=[]). Sets *mask (bit i: 0-based dim i). */
static int read_dims(lua_State *L, int arg, const mg_tensor *t, int list, uint32_t *mask) {
    const uint32_t every = (uint32_t)((1u << t->ndim) - 1);
    if (lua_isnoneornil(L, arg)) {
        *mask = every;
        return 0;
    }
    if (!list || lua_type(L, arg) != LUA_TTABLE) {
        *mask = 1u << lt_check_dim(L, arg, t->ndim);
        return 1;
    }
    /* t:mean({dim = 1}) (PyTorch's keyword, written as a Lua options table) is not a list of dims:
     * reducing everything instead would be a silent wrong answer */
    *mask = 0;
    if (lt_is_opts(L, arg))
        return lt_argerror(L, arg, "a dim or a list of dims expected, got an options table (dims and keepdim "
                                   "are positional here: (1, true) for PyTorch's dim=0, keepdim=True)");
    mg_ctx *ctx = lt_ctx(L);
    const lua_Integer n = luaL_len(L, arg);
    *mask = 0;
    for (lua_Integer k = 1; k <= n; k++) {
        lua_geti(L, arg, k);
        int isint, d;
        const lua_Integer v = lua_tointegerx(L, -1, &isint);
        lua_pop(L, 1);
        if (!isint) return luaL_argerror(L, arg, "dims must be a list of integers");
        if (mg_wrap_dim(ctx, 1, v, t->ndim, &d) != MG_OK) return luaL_argerror(L, arg, ctx->err);
        if (t->ndim == 0) d = 0;
        if ((*mask >> d) & 1) {
            return lt_argerror(L, arg, "dimension %d appears more than once in the list of dims", d + 1);
        }
        *mask |= 1u << d;
    }
    if (n == 0) *mask = every;
    return 1;
}

/* keepdim at arg: a boolean, or none / nil for false. */
static int read_keepdim(lua_State *L, int arg) {
    if (lua_isnoneornil(L, arg)) return 0;
    luaL_checktype(L, arg, LUA_TBOOLEAN);
    return lua_toboolean(L, arg);
}

/* The result's shape: t's without the dims in mask, or with them as 1 when keepdim. */
static int result_shape(const mg_tensor *t, uint32_t mask, int keepdim, int64_t *size) {
    int nd = 0;
    for (int i = 0; i < t->ndim; i++) {
        if (!((mask >> i) & 1)) size[nd++] = t->size[i];
        else if (keepdim) size[nd++] = 1;
    }
    return nd;
}

/* Records the reduction at the top of the stack (input at 1) when it is differentiable and needed;
 * `saved`: the output, or max / min's indices. The node keeps dims, keepdim, p and correction. */
static int record(lua_State *L, mg_reduce_op op, uint32_t mask, int keepdim, const mg_reduce_args *args,
                  int out, int saved) {
    static const int input = 1;
    if (!mg_reduce_is_differentiable(op) || !lt_grad_needed(L, 1, &input)) return 1;
    mg_node *n = lt_record(L, out, MG_FAM_REDUCE, op, 1, &input, 1, &saved);
    n->iarg[0] = mask;
    n->iarg[1] = keepdim;
    n->iarg[2] = args ? args->correction : 1;
    n->darg[0] = args ? args->p : 2;
    return 1;
}

/* t:op([dim | dims [, keepdim]]): the dims at `first`, keepdim after them; pushes one result. */
static int reduce(lua_State *L, mg_reduce_op op, int first, int list, const mg_reduce_args *args) {
    mg_ctx *ctx = lt_ctx(L);
    const mg_tensor *t = lt_check(L, 1);
    uint32_t mask;
    read_dims(L, first, t, list, &mask);
    const int keepdim = read_keepdim(L, first + 1);
    mg_dtype odt;
    LT_TRY(L, 1, mg_reduce_dtype(ctx, op, (mg_dtype)t->dtype, &odt));
    int64_t size[MG_MAX_DIMS];
    const int nd = result_shape(t, mask, keepdim, size);
    mg_tensor *out = lt_push_new(L, odt, nd, size);
    LT_TRY(L, 1, mg_reduce(ctx, op, out, NULL, t, mask, args));
    return record(L, op, mask, keepdim, args, lua_gettop(L), lua_gettop(L));
}

/* t:op([dims [, keepdim]]) (DIMS in the list) and t:op([dim [, keepdim]]) (DIM) */
static int dims_args(lua_State *L, mg_reduce_op op) { return reduce(L, op, 2, 1, NULL); }
static int dim_args(lua_State *L, mg_reduce_op op) { return reduce(L, op, 2, 0, NULL); }

/* t:max() -> 0-d tensor; t:max(dim [, keepdim]) -> values, indices (int64, 1-based) */
static int best_args(lua_State *L, mg_reduce_op op) {
    if (lua_isnoneornil(L, 2)) return reduce(L, op, 2, 0, NULL);
    mg_ctx *ctx = lt_ctx(L);
    const mg_tensor *t = lt_check(L, 1);
    uint32_t mask;
    read_dims(L, 2, t, 0, &mask);
    const int keepdim = read_keepdim(L, 3);
    int64_t size[MG_MAX_DIMS];
    const int nd = result_shape(t, mask, keepdim, size);
    mg_tensor *values = lt_push_new(L, (mg_dtype)t->dtype, nd, size);
    mg_tensor *indices = lt_push_new(L, MG_INT64, nd, size);
    LT_TRY(L, 1, mg_reduce(ctx, op, values, indices, t, mask, NULL));
    record(L, op, mask, keepdim, NULL, lua_gettop(L) - 1, lua_gettop(L)); /* values save indices */
    return 2;
}

/* Refuses any key but `unbiased`. (lt_check_opts would do, but in Lua 5.4 its luaL_buffinit
 * pushes a placeholder that the key's luaL_tolstring(L, -1) then reads: the message names
 * 'userdata: 0x...'. Use it again once that is fixed.) */
static void check_var_opts(lua_State *L, int idx) {
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING || strcmp(lua_tostring(L, -1), "unbiased") != 0) {
            lt_argerror(L, idx, "unknown option '%s' (valid: unbiased)", luaL_tolstring(L, -1, NULL));
        }
    }
}

/* t:var([dim | dims [, keepdim]] [, {unbiased = true}]): the options table is the last argument. */
static int moment_args(lua_State *L, mg_reduce_op op) {
    mg_reduce_args args = {2, 1};
    lt_check(L, 1);
    const int top = lua_gettop(L);
    if (top >= 2 && lt_is_opts(L, top)) {
        check_var_opts(L, top);
        const int type = lua_getfield(L, top, "unbiased");
        if (type != LUA_TNIL && type != LUA_TBOOLEAN)
            return luaL_argerror(L, top, "unbiased must be a boolean");
        if (type == LUA_TBOOLEAN) args.correction = lua_toboolean(L, -1) ? 1 : 0;
        lua_settop(L, top - 1);
    }
    return reduce(L, op, 2, 1, &args);
}

/* t:norm([p [, dim | dims [, keepdim]]]): p a number (inf: math.huge) or "fro" (= 2); nil = 2 */
static int norm_args(lua_State *L, mg_reduce_op op) {
    mg_reduce_args args = {2, 1};
    lt_check(L, 1);
    if (lua_type(L, 2) == LUA_TSTRING) {
        if (strcmp(lua_tostring(L, 2), "fro") != 0)
            return luaL_argerror(L, 2, "p must be a number or 'fro'");
    } else if (!lua_isnoneornil(L, 2)) {
        args.p = luaL_checknumber(L, 2);
        if (isnan(args.p)) return luaL_argerror(L, 2, "p must not be nan");
    }
    return reduce(L, op, 3, 1, &args);
}

/* t:cumsum(dim), t:cumprod(dim): running sums / products along dim; int64 for int64 and bool
 * inputs, as sum / prod (`fold` gives the dtype rule). Recorded as `op` (past the reductions in
 * mg_reduce_op; iarg[0]: dim). */
typedef mg_status (*cumulative_fn)(mg_ctx *, mg_tensor *, const mg_tensor *, int);
static int cumulative(lua_State *L, mg_reduce_op fold, mg_reduce_op op, cumulative_fn kernel) {
    mg_ctx *ctx = lt_ctx(L);
    const mg_tensor *t = lt_check(L, 1);
    const int dim = lt_check_dim(L, 2, t->ndim);
    mg_dtype odt;
    LT_TRY(L, 1, mg_reduce_dtype(ctx, fold, (mg_dtype)t->dtype, &odt));
    mg_tensor *out = lt_push_new(L, odt, t->ndim, t->size);
    LT_TRY(L, 1, kernel(ctx, out, t, dim));
    static const int input = 1;
    if (lt_grad_needed(L, 1, &input)) {
        mg_node *n = lt_record(L, -1, MG_FAM_REDUCE, op, 1, &input, 0, NULL);
        n->iarg[0] = dim;
    }
    return 1;
}
static int l_cumsum(lua_State *L) { return cumulative(L, MG_RED_SUM, MG_RED_CUMSUM, mg_cumsum); }
static int l_cumprod(lua_State *L) { return cumulative(L, MG_RED_PROD, MG_RED_CUMPROD, mg_cumprod); }

/* From the list: each reduction's method, reading its arguments as its args column says. */
#define REDUCE_BINDING(OP, op, fold, kernels, result, grad, args) \
    static int op##_method(lua_State *L) { return ARGS_##args(L, MG_RED_##OP); }
#define ARGS_DIMS dims_args
#define ARGS_DIM dim_args
#define ARGS_BEST best_args
#define ARGS_MOMENT moment_args
#define ARGS_NORM norm_args
MG_REDUCE_OPS(REDUCE_BINDING)

#define METHOD(OP, op, ...) {#op, op##_method},
const luaL_Reg lt_reduce_methods[] = {MG_REDUCE_OPS(METHOD) {"cumsum", l_cumsum}, {"cumprod", l_cumprod},
                                     {NULL, NULL}};

const luaL_Reg lt_reduce_functions[] = {{NULL, NULL}};
