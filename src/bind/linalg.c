/*
 * linalg.c (binding): matmul (every torch.matmul form), mm (2-D), bmm (3-D, same batch), dot (1-D)
 * and outer (1-D x 1-D). Each checks the shapes its name promises, promotes the two dtypes
 * (float32 x float64 -> float64, int64 x float -> float; bool is refused), and calls mg_matmul.
 * Results of operands that require grad record a node (MG_LIN_MATMUL, or MG_LIN_OUTER).
 */
#include "../ops/linalg.h"
#include "bind.h"

/* Refuses a bool operand (argument `arg`): there is no boolean matrix product. */
static void check_numeric(lua_State *L, int arg, const mg_tensor *t) {
    if (t->dtype == MG_BOOL)
        luaL_argerror(L, arg, "expected a float32, float64 or int64 tensor, got bool");
}

/* Refuses operands (at 1 and 2) whose number of dims is not `ndim`. */
static void check_ndims(lua_State *L, int ndim) {
    for (int arg = 1; arg <= 2; arg++) {
        const mg_tensor *t = lt_check(L, arg);
        if (t->ndim != ndim) lt_argerror(L, arg, "expected a %d-d tensor, got %d-d", ndim, (int)t->ndim);
    }
}

/* The operands at 1 and 2, with dims already checked by the caller, converted to one dtype and
 * multiplied (outer: as a column times a row). */
static int product(lua_State *L, int outer) {
    mg_ctx *ctx = lt_ctx(L);
    const mg_tensor *a = lt_check(L, 1), *b = lt_check(L, 2);
    int nd = 2;
    int64_t size[MG_MAX_DIMS];
    if (outer) {
        size[0] = a->size[0];
        size[1] = b->size[0];
    } else {
        LT_TRY(L, 1, mg_matmul_shape(ctx, &nd, size, a, b));
    }
    check_numeric(L, 1, a);
    check_numeric(L, 2, b);
    const mg_dtype dt = mg_promote((mg_dtype)a->dtype, (mg_dtype)b->dtype);
    lua_settop(L, 2);
    const mg_tensor *ca = lt_push_as(L, 1, dt);
    const mg_tensor *cb = lt_push_as(L, 2, dt);
    mg_tensor *out = lt_push_new(L, dt, nd, size);
    LT_TRY(L, 1, outer ? mg_outer(ctx, out, ca, cb) : mg_matmul(ctx, out, ca, cb));
    /* the inputs are the operands as given (their gradients keep their dtypes); the rule reads
     * them, so nothing else is saved */
    static const int operands[2] = {1, 2};
    if (lt_grad_needed(L, 2, operands))
        lt_record(L, -1, MG_FAM_LINALG, outer ? MG_LIN_OUTER : MG_LIN_MATMUL, 2, operands, 0, NULL);
    return 1;
}

/* matmul(a, b): torch.matmul's forms, batch dims broadcast */
static int l_matmul(lua_State *L) {
    lt_check(L, 1);
    lt_check(L, 2);
    return product(L, 0);
}

/* mm(a, b): (M,K) x (K,N) only */
static int l_mm(lua_State *L) {
    check_ndims(L, 2);
    return product(L, 0);
}

/* bmm(a, b): (B,M,K) x (B,K,N), batch sizes equal (no broadcasting, as torch.bmm) */
static int l_bmm(lua_State *L) {
    const mg_tensor *a = lt_check(L, 1), *b = lt_check(L, 2); /* both types before either's dims */
    check_ndims(L, 3);
    if (a->size[0] != b->size[0])
        return lt_argerror(L, 2, "shapes %s and %s cannot be multiplied: batch sizes %I != %I",
                           lt_push_shape(L, a->ndim, a->size), lt_push_shape(L, b->ndim, b->size),
                           (lua_Integer)a->size[0], (lua_Integer)b->size[0]);
    return product(L, 0);
}

/* dot(a, b): two 1-D tensors of one length -> 0-d */
static int l_dot(lua_State *L) {
    check_ndims(L, 1);
    return product(L, 0);
}

/* outer(a, b): (M) x (N) -> (M,N) */
static int l_outer(lua_State *L) {
    check_ndims(L, 1);
    return product(L, 1);
}

const luaL_Reg lt_linalg_methods[] = {
    {"matmul", l_matmul}, {"mm", l_mm}, {"bmm", l_bmm}, {"dot", l_dot}, {"outer", l_outer},
    {NULL, NULL}};
const luaL_Reg lt_linalg_functions[] = {{NULL, NULL}};
