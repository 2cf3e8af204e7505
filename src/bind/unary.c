/*
 * unary.c (binding): the unary ops of MG_UNARY_OPS (src/ops/unary.h) as t:op(), mg.op(t) and the
 * in-place t:op_(), all made from the list; kernels, dtype rules and derivatives are in
 * src/ops/unary.c. Out-of-place results of a tensor that requires grad record a node (record); the
 * in-place forms refuse such tensors (lt_inplace), as PyTorch does for leaves.
 */
#include <math.h>
#include <string.h>

#include "../ops/unary.h"
#include "bind.h"

/* Refuses a result dtype other than t's, as PyTorch's "result type Float can't be cast". */
static void check_inplace(lua_State *L, const mg_tensor *t, mg_dtype result) {
    if (result != t->dtype)
        lt_argerror(L, 1, "result of dtype %s cannot be written in place into a tensor of dtype %s",
                    mg_dtype_name(result), mg_dtype_name((mg_dtype)t->dtype));
    lt_inplace(L, 1);
}

/* Records the result at the top of the stack as op(t), t at stack index 1, when t requires grad.
 * Saves the output for the ops whose derivative reads it (OUTPUT in the list). Every unary op is recorded, floor ceil round sign
 * too (their gradient is zero, as in PyTorch). Returns the node, or NULL when nothing was recorded. */
static mg_node *record(lua_State *L, mg_unary_op op) {
    static const int input = 1;
    if (!lt_grad_needed(L, 1, &input)) return NULL;
    const int out = lua_gettop(L);
    return lt_record(L, out, MG_FAM_UNARY, op, 1, &input, mg_unary_reads_output(op), &out);
}

/* clamp(t, min, max) with either bound nil (open). The result dtype promotes t's with the bounds
 * as a Lua number on the other side of a binary op would: clamp(int64, 0.5) is float32. */
static int clamp(lua_State *L, int inplace) {
    mg_ctx *ctx = lt_ctx(L);
    mg_tensor *t = lt_check(L, 1);
    lua_settop(L, 3);
    const int has_lo = !lua_isnil(L, 2), has_hi = !lua_isnil(L, 3);
    if (!has_lo && !has_hi) return luaL_argerror(L, 2, "at least one of min or max must be given");
    mg_dtype dt = (mg_dtype)t->dtype;
    mg_clamp_bounds b = {-INFINITY, INFINITY, INT64_MIN, INT64_MAX};
    if (has_lo) {
        b.lo = luaL_checknumber(L, 2);
        if (lua_isinteger(L, 2)) b.ilo = lua_tointeger(L, 2);
        dt = lt_number_dtype(L, 2, dt);
    }
    if (has_hi) {
        b.hi = luaL_checknumber(L, 3);
        if (lua_isinteger(L, 3)) b.ihi = lua_tointeger(L, 3);
        dt = lt_number_dtype(L, 3, dt);
    }
    if (inplace) {
        check_inplace(L, t, dt);
        LT_TRY(L, 1, mg_clamp(ctx, t, t, &b));
        lt_written(t);
        lua_settop(L, 1);
        return 1;
    }
    mg_tensor *out = lt_push_new(L, dt, t->ndim, t->size);
    LT_TRY(L, 1, mg_clamp(ctx, out, t, &b));
    mg_node *n = record(L, MG_UN_CLAMP);
    if (n) n->darg[0] = b.lo, n->darg[1] = b.hi; /* open sides: -inf / inf */
    return 1;
}
/* The number at arg, or the field `key` of an options table at `opts` (0: none), or def. */
static double param(lua_State *L, int arg, int opts, const char *key, double def) {
    if (opts) {
        lua_getfield(L, opts, key);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            return def;
        }
        if (lua_type(L, -1) != LUA_TNUMBER) lt_argerror(L, opts, "%s must be a number, got %s", key, luaL_typename(L, -1));
        const double v = lua_tonumber(L, -1);
        lua_pop(L, 1);
        return v;
    }
    if (lua_isnoneornil(L, arg)) return def;
    if (lua_type(L, arg) != LUA_TNUMBER) lt_argerror(L, arg, "%s must be a number, got %s", key, luaL_typename(L, arg));
    return lua_tonumber(L, arg);
}

/* The parameters of a parametric activation (after t at 1: numbers, or one options table with
 * the same names as PyTorch's keyword arguments), into p[0], p[1] (mg_unary_param's p0, p1). */
static void activation_params(lua_State *L, mg_unary_op op, double *p) {
    static const char *const gelu_keys[] = {"approximate", NULL};
    static const char *const leaky_keys[] = {"negative_slope", NULL};
    static const char *const elu_keys[] = {"alpha", NULL};
    static const char *const softplus_keys[] = {"beta", "threshold", NULL};
    const int opts = lua_type(L, 2) == LUA_TTABLE ? 2 : 0;
    p[0] = p[1] = 0;
    switch (op) {
    case MG_UN_GELU: {
        int at = 2;
        if (opts) {
            lt_check_opts(L, opts, gelu_keys);
            lua_getfield(L, opts, "approximate");
            at = lua_gettop(L);
        }
        if (lua_isnoneornil(L, at)) return;
        if (lua_type(L, at) != LUA_TSTRING) lt_argerror(L, 2, "approximate must be 'none' or 'tanh', got %s", luaL_typename(L, at));
        const char *s = lua_tostring(L, at);
        if (!strcmp(s, "tanh")) p[0] = 1;
        else if (strcmp(s, "none")) lt_argerror(L, 2, "approximate must be 'none' or 'tanh', got '%s'", s);
        return;
    }
    case MG_UN_LEAKY_RELU:
        if (opts) lt_check_opts(L, opts, leaky_keys);
        p[0] = param(L, 2, opts, "negative_slope", 0.01);
        return;
    case MG_UN_ELU:
        if (opts) lt_check_opts(L, opts, elu_keys);
        p[0] = param(L, 2, opts, "alpha", 1);
        return;
    case MG_UN_SOFTPLUS:
        if (opts) lt_check_opts(L, opts, softplus_keys);
        p[0] = param(L, 2, opts, "beta", 1);
        p[1] = param(L, 3, opts, "threshold", 20);
        return;
    default: return;
    }
}

/* gelu leaky_relu elu softplus: op(t, params...); the parameters go to the node (darg). */
static int parametric(lua_State *L, mg_unary_op op, int inplace) {
    mg_ctx *ctx = lt_ctx(L);
    mg_tensor *t = lt_check(L, 1);
    double p[2];
    activation_params(L, op, p);
    lua_settop(L, 1);
    mg_dtype dt;
    LT_TRY(L, 1, mg_unary_dtype(ctx, op, (mg_dtype)t->dtype, &dt));
    if (inplace) {
        check_inplace(L, t, dt);
        LT_TRY(L, 1, mg_unary_param(ctx, op, t, t, p[0], p[1]));
        lt_written(t);
        return 1;
    }
    mg_tensor *out = lt_push_new(L, dt, t->ndim, t->size);
    LT_TRY(L, 1, mg_unary_param(ctx, op, out, t, p[0], p[1]));
    mg_node *n = record(L, op);
    if (n) n->darg[0] = p[0], n->darg[1] = p[1];
    return 1;
}

/* op(t), a new tensor; or t itself written in place. */
static int unary(lua_State *L, mg_unary_op op, int inplace) {
    if (op == MG_UN_CLAMP) return clamp(L, inplace);
    if (op == MG_UN_GELU || op == MG_UN_LEAKY_RELU || op == MG_UN_ELU || op == MG_UN_SOFTPLUS)
        return parametric(L, op, inplace);
    mg_ctx *ctx = lt_ctx(L);
    mg_tensor *t = lt_check(L, 1);
    lua_settop(L, 1);
    mg_dtype dt;
    LT_TRY(L, 1, mg_unary_dtype(ctx, op, (mg_dtype)t->dtype, &dt));
    if (inplace) {
        check_inplace(L, t, dt);
        LT_TRY(L, 1, mg_unary(ctx, op, t, t));
        lt_written(t);
        return 1;
    }
    mg_tensor *out = lt_push_new(L, dt, t->ndim, t->size);
    LT_TRY(L, 1, mg_unary(ctx, op, out, t));
    record(L, op);
    return 1;
}

#define UNARY_BINDING(OP, op, ...)                                     \
    static int op##_method(lua_State *L) { return unary(L, MG_UN_##OP, 0); } \
    static int op##_inplace(lua_State *L) { return unary(L, MG_UN_##OP, 1); }
MG_UNARY_OPS(UNARY_BINDING)

#define METHODS(OP, op, ...) {#op, op##_method}, {#op "_", op##_inplace},
const luaL_Reg lt_unary_methods[] = {MG_UNARY_OPS(METHODS) {NULL, NULL}};
const luaL_Reg lt_unary_functions[] = {{NULL, NULL}};
const luaL_Reg lt_unary_metamethods[] = {{NULL, NULL}};
