/*
 * unary.c (binding): the unary ops of MG_UNARY_OPS (src/ops/unary.h) as t:op(), mg.op(t) and the
 * in-place t:op_(), all made from the list; kernels, dtype rules and derivatives are in
 * src/ops/unary.c. Out-of-place results of a tensor that requires grad record a node (record); the
 * in-place forms refuse such tensors (lt_inplace), as PyTorch does for leaves.
 */
#include <math.h>

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

#define UNARY_BINDING(OP, op, ...)                                     \
    static int op##_method(lua_State *L) { return unary(L, MG_UN_##OP, 0); } \
    static int op##_inplace(lua_State *L) { return unary(L, MG_UN_##OP, 1); }
MG_UNARY_OPS(UNARY_BINDING)

#define METHODS(OP, op, ...) {#op, op##_method}, {#op "_", op##_inplace},
const luaL_Reg lt_unary_methods[] = {MG_UNARY_OPS(METHODS) {NULL, NULL}};
const luaL_Reg lt_unary_functions[] = {{NULL, NULL}};
const luaL_Reg lt_unary_metamethods[] = {{NULL, NULL}};
