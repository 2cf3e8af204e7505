/*
 * unary.c (binding): elementwise math of one tensor as methods and mg.* functions (exp log sqrt
 * rsqrt sin cos tanh sigmoid log1p expm1 abs relu floor ceil round sign square clamp) and their
 * in-place forms (exp_ ... clamp_). neg and pow are in binary.c.
 * The kernels, dtype rules and backward rules are in src/ops/unary.c; adding an op is one line in
 * each list below. Out-of-place results of a tensor that requires grad record a node (record);
 * the in-place forms refuse such tensors (lt_inplace), as PyTorch does for leaves.
 */
#include <math.h>

#include "../ops/unary.h"
#include "bind.h"

/* Refuses a result dtype other than t's, as PyTorch's "result type Float can't be cast". */
static void check_inplace(lua_State *L, const mg_tensor *t, mg_dtype result) {
    if (result != t->dtype) {
        lua_pushfstring(L, "result of dtype %s cannot be written in place into a tensor of dtype %s",
                        mg_dtype_name(result), mg_dtype_name((mg_dtype)t->dtype));
        luaL_argerror(L, 1, lua_tostring(L, -1));
    }
    lt_inplace(L, 1);
}

/* The ops whose backward reads their output y rather than their input (src/ops/unary.c: "keeps y"). */
static int keeps_output(mg_unary_op op) {
    return op == MG_UN_EXP || op == MG_UN_SQRT || op == MG_UN_RSQRT || op == MG_UN_TANH ||
           op == MG_UN_SIGMOID || op == MG_UN_EXPM1;
}

/* Records the result at the top of the stack as op(t), t at stack index 1, when t requires grad.
 * Saves the output for the ops that keep it. Every unary op is recorded, floor ceil round sign
 * too (their gradient is zero, as in PyTorch). Returns the node, or NULL when nothing was recorded. */
static mg_node *record(lua_State *L, mg_unary_op op) {
    static const int input = 1;
    if (!lt_grad_needed(L, 1, &input)) return NULL;
    const int out = lua_gettop(L);
    return lt_record(L, out, MG_FAM_UNARY, op, 1, &input, keeps_output(op), &out);
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
/* op(t), a new tensor; or t itself written in place. */
static int unary(lua_State *L, mg_unary_op op, int inplace) {
    if (op == MG_UN_CLAMP) return clamp(L, inplace);
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

#define UNARY_BINDING(e, name, kind)                                  \
    static int l_##e(lua_State *L) { return unary(L, MG_UN_##e, 0); } \
    static int l_##e##_inplace(lua_State *L) { return unary(L, MG_UN_##e, 1); }
MG_UNARY_OPS(UNARY_BINDING)
#undef UNARY_BINDING


const luaL_Reg lt_unary_methods[] = {
    {"exp", l_EXP}, {"log", l_LOG}, {"sqrt", l_SQRT}, {"rsqrt", l_RSQRT},
    {"sin", l_SIN}, {"cos", l_COS}, {"tanh", l_TANH}, {"sigmoid", l_SIGMOID},
    {"log1p", l_LOG1P}, {"expm1", l_EXPM1}, {"abs", l_ABS}, {"relu", l_RELU},
    {"floor", l_FLOOR}, {"ceil", l_CEIL}, {"round", l_ROUND}, {"sign", l_SIGN},
    {"square", l_SQUARE}, {"clamp", l_CLAMP},
    {"exp_", l_EXP_inplace}, {"log_", l_LOG_inplace}, {"sqrt_", l_SQRT_inplace},
    {"rsqrt_", l_RSQRT_inplace}, {"sin_", l_SIN_inplace}, {"cos_", l_COS_inplace},
    {"tanh_", l_TANH_inplace}, {"sigmoid_", l_SIGMOID_inplace}, {"log1p_", l_LOG1P_inplace},
    {"expm1_", l_EXPM1_inplace}, {"abs_", l_ABS_inplace}, {"relu_", l_RELU_inplace},
    {"floor_", l_FLOOR_inplace}, {"ceil_", l_CEIL_inplace}, {"round_", l_ROUND_inplace},
    {"sign_", l_SIGN_inplace}, {"square_", l_SQUARE_inplace}, {"clamp_", l_CLAMP_inplace},
    {NULL, NULL}};
const luaL_Reg lt_unary_functions[] = {{NULL, NULL}};
const luaL_Reg lt_unary_metamethods[] = {{NULL, NULL}};
