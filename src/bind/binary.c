/*
 * binary.c (binding): arithmetic operators and methods, comparisons, maximum / minimum, where,
 * masked_fill, the in-place forms (add_ sub_ mul_ div_ pow_ masked_fill_), allclose and equal.
 * Numbers on either side go through lt_operand; dtypes follow PyTorch's promotion.
 */
#include <math.h>
#include <string.h>

#include "../ops/ops.h"
#include "bind.h"

/* The kind of a dtype: bool < integer < floating. */
static int kind(mg_dtype dt) { return dt == MG_BOOL ? 0 : dt == MG_INT64 ? 1 : 2; }

/* PyTorch's result_type of two tensors: a 0-d tensor next to one with dims counts only when it is
 * of a higher kind, as a number does, but then with its own dtype (float32 {2} + 0-d float64 is
 * float32; int64 {2} + 0-d float64 is float64). */
static mg_dtype tensors_dtype(const mg_tensor *a, const mg_tensor *b) {
    const mg_dtype da = (mg_dtype)a->dtype, db = (mg_dtype)b->dtype;
    if ((a->ndim == 0) == (b->ndim == 0)) return mg_promote(da, db);
    const mg_dtype dims = a->ndim ? da : db, zero = a->ndim ? db : da;
    return kind(zero) > kind(dims) ? zero : dims;
}

/* The promoted dtype of the operands at 1 and 2 (at least one is a tensor). */
static mg_dtype operands_dtype(lua_State *L, const mg_tensor *a, const mg_tensor *b) {
    if (a && b) return tensors_dtype(a, b);
    if (a) return lt_number_dtype(L, 2, (mg_dtype)a->dtype);
    return lt_number_dtype(L, 1, (mg_dtype)b->dtype);
}

/* PyTorch refuses subtraction with a bool tensor (it would read as xor or logical not). */
static void check_sub_operands(lua_State *L, const mg_tensor *a, const mg_tensor *b) {
    if ((a && a->dtype == MG_BOOL) || (b && b->dtype == MG_BOOL))
        luaL_argerror(L, a && a->dtype == MG_BOOL ? 1 : 2,
                      "subtraction with a bool tensor is not supported");
}

/* out = a op b, a new tensor. Operands at stack slots 1 and 2; errors name them #1 and #2. */
/* The type error for a bad operand of op. Lua names the function from the call site; an operator
 * reached through the string library's coercion ("a" + t) has no name there, so op's is used. */
static int operand_error(lua_State *L, int arg, mg_binary_op op) {
    lua_Debug ar;
    if (lua_getstack(L, 0, &ar) && lua_getinfo(L, "n", &ar) && ar.name) return luaL_typeerror(L, arg, "number or tensor");
    return luaL_error(L, "bad argument #%d to '%s' (number or tensor expected, got %s)", arg,
                      mg_binary_name(op), luaL_typename(L, arg));
}

static int binary(lua_State *L, mg_binary_op op) {
    mg_ctx *ctx = lt_ctx(L);
    const mg_tensor *ta = lt_test(L, 1), *tb = lt_test(L, 2);
    if (ta && tb && ta->dtype == tb->dtype && mg_same_shape(ta, tb) && lt_usable(ta) &&
        lt_usable(tb) && !ta->requires_grad && !tb->requires_grad && ta->dtype != MG_BOOL &&
        mg_binary_compute_dtype(ctx, op, (mg_dtype)ta->dtype) == ta->dtype) {
        /* the common case (a + b, same shape and dtype, no graph): skip promotion and broadcasting */
        mg_tensor *out = lt_push_new(L, mg_binary_is_comparison(op) ? MG_BOOL : (mg_dtype)ta->dtype,
                                     ta->ndim, ta->size);
        LT_TRY(L, 1, mg_binary(ctx, op, out, ta, tb));
        return 1;
    }
    const mg_tensor *t = ta ? ta : tb;
    const int num = ta ? 2 : 1;
    if (t && !(ta && tb) && lua_type(L, num) == LUA_TNUMBER &&
        (t->dtype == MG_FLOAT32 || t->dtype == MG_FLOAT64) && lt_usable(t) && !t->requires_grad) {
        /* a Lua number and a float tensor (1e-2 * t, t - 1): the general path's result without its
         * checks. The number takes the tensor's dtype (a number never widens a float tensor, and
         * every op computes a float dtype as it is), the result has the tensor's shape, and no
         * gradient is needed: the same operands reach the same mg_binary call. */
        mg_scalar s; /* lt_operand's scalar (store_element: (float)lua_tonumber for float32) */
        mg_scalar_init(&s, (mg_dtype)t->dtype, lua_tonumber(L, num), 0);
        const mg_tensor *n = &s.t;
        mg_tensor *out = lt_push_new(L, mg_binary_is_comparison(op) ? MG_BOOL : (mg_dtype)t->dtype, t->ndim, t->size);
        const mg_tensor *a = ta ? ta : n, *b = tb ? tb : n;
        LT_TRY(L, 1, mg_binary(ctx, op, out, a, b));
        return 1;
    }
    if (!ta && !tb) return luaL_typeerror(L, lua_isnumber(L, 1) ? 2 : 1, "tensor");
    lua_settop(L, 2);
    for (int arg = 1; arg <= 2; arg++) {
        const int type = lua_type(L, arg);
        if (type != LUA_TNUMBER && type != LUA_TBOOLEAN && !lt_test(L, arg)) return operand_error(L, arg, op);
    }
    if (op == MG_BIN_SUB) check_sub_operands(L, ta, tb);
    const mg_dtype compute = mg_binary_compute_dtype(ctx, op, operands_dtype(L, ta, tb));
    mg_scalar sa, sb;
    const mg_tensor *a = lt_operand(L, 1, compute, &sa);
    const mg_tensor *b = lt_operand(L, 2, compute, &sb);
    int ndim;
    int64_t size[MG_MAX_DIMS];
    LT_TRY(L, 1, mg_broadcast_shape(ctx, &ndim, size, a->ndim, a->size, b->ndim, b->size));
    mg_tensor *out = lt_push_new(L, mg_binary_is_comparison(op) ? MG_BOOL : compute, ndim, size);
    LT_TRY(L, 1, mg_binary(ctx, op, out, a, b));
    static const int operands[2] = {1, 2};
    if (!mg_binary_is_comparison(op) && lt_grad_needed(L, 2, operands)) {
        const int saved = lua_gettop(L);
        lt_record(L, -1, MG_FAM_BINARY, op, 2, operands, mg_binary_reads_output(op), &saved);
    }
    return 1;
}

/* t op= v in place: the result keeps t's shape, and its dtype must be of t's kind or a lower one
 * (PyTorch's can_cast: float64 results go into float32, float results never into int64). The op
 * then computes in t's dtype. */
static int binary_inplace(lua_State *L, mg_binary_op op) {
    mg_ctx *ctx = lt_ctx(L);
    mg_tensor *t = lt_check(L, 1);
    lua_settop(L, 2);
    const mg_tensor *tb = lt_test(L, 2);
    if (!tb && lua_type(L, 2) != LUA_TNUMBER && lua_type(L, 2) != LUA_TBOOLEAN)
        return luaL_typeerror(L, 2, "number or tensor");
    if (op == MG_BIN_SUB) check_sub_operands(L, t, tb);
    const mg_dtype promoted = tb ? tensors_dtype(t, tb)
                                 : lt_number_dtype(L, 2, (mg_dtype)t->dtype);
    const mg_dtype result = mg_binary_compute_dtype(ctx, op, promoted);
    if (kind(result) > kind((mg_dtype)t->dtype)) {
        return lt_argerror(L, 2, "result of dtype %s cannot be written in place into a tensor of dtype %s",
                           mg_dtype_name(result), mg_dtype_name((mg_dtype)t->dtype));
    }
    lt_inplace(L, 1);
    lt_inplace_source(L, 2);
    mg_scalar sb;
    const mg_tensor *b = lt_operand(L, 2, (mg_dtype)t->dtype, &sb);
    int ndim;
    int64_t size[MG_MAX_DIMS];
    LT_TRY(L, 1, mg_broadcast_shape(ctx, &ndim, size, t->ndim, t->size, b->ndim, b->size));
    if (ndim != t->ndim || memcmp(size, t->size, sizeof(int64_t) * ndim) != 0) {
        return lt_argerror(L, 2, "shape %s does not broadcast to the in-place target's shape %s",
                           lt_push_shape(L, b->ndim, b->size), lt_push_shape(L, t->ndim, t->size));
    }
    if (b->storage == t->storage && b != t) { /* b may overlap t partially: read from a copy */
        mg_tensor *tmp = lt_push_new(L, (mg_dtype)b->dtype, b->ndim, b->size);
        mg_copy(ctx, tmp, b);
        b = tmp;
    }
    LT_TRY(L, 1, mg_binary(ctx, op, t, t, b));
    lt_written(t);
    lua_settop(L, 1);
    return 1;
}

/* From the list: op_method for every op, op_inplace for operators. */
#define BINARY_BINDING(OP, op, kernels, kind, saves)                          \
    static int op##_method(lua_State *L) { return binary(L, MG_BIN_##OP); } \
    INPLACE_BINDING_##kind(OP, op)
#define INPLACE_BINDING_OPERATOR(OP, op) \
    static int op##_inplace(lua_State *L) { return binary_inplace(L, MG_BIN_##OP); }
#define INPLACE_BINDING_FUNCTION(OP, op)
#define INPLACE_BINDING_COMPARISON(OP, op)
MG_BINARY_OPS(BINARY_BINDING)

/* unary minus goes through sub so that it shares its dtype rules: -t = 0 - t */
static int l_neg(lua_State *L) {
    lua_settop(L, 1);
    if (lt_check(L, 1)->dtype == MG_BOOL)
        return luaL_argerror(L, 1, "negation of a bool tensor is not supported");
    lua_pushinteger(L, 0);
    lua_insert(L, 1);
    return binary(L, MG_BIN_SUB);
}

/* -t: Lua names this metamethod 'unm' in messages; API.md names it 'neg', so the one error -t can
 * raise is worded here (a tensor is always the operand of __unm). */
static int l_unm(lua_State *L) {
    if (lt_check(L, 1)->dtype == MG_BOOL)
        return luaL_error(L, "bad argument #1 to 'neg' (negation of a bool tensor is not supported)");
    return l_neg(L);
}

/* where(cond, a, b): cond is bool; a and b numbers or tensors, promoted together. */
static int l_where(lua_State *L) {
    mg_ctx *ctx = lt_ctx(L);
    lua_settop(L, 3);
    const mg_tensor *cond = lt_check(L, 1);
    if (cond->dtype != MG_BOOL) {
        return lt_argerror(L, 1, "condition must be a bool tensor, got %s", mg_dtype_name((mg_dtype)cond->dtype));
    }
    const mg_tensor *ta = lt_test(L, 2), *tb = lt_test(L, 3);
    mg_dtype dt;
    if (ta && tb) dt = tensors_dtype(ta, tb);
    else if (ta) dt = lt_number_dtype(L, 3, (mg_dtype)ta->dtype);
    else if (tb) dt = lt_number_dtype(L, 2, (mg_dtype)tb->dtype);
    else if (lua_isboolean(L, 2) && lua_isboolean(L, 3)) dt = MG_BOOL;
    else dt = ctx->default_dtype; /* API.md: Lua numbers, integers too, take the default dtype */
    mg_scalar sa, sb;
    const mg_tensor *a = lt_operand(L, 2, dt, &sa);
    const mg_tensor *b = lt_operand(L, 3, dt, &sb);
    int n1, n2;
    int64_t s1[MG_MAX_DIMS], s2[MG_MAX_DIMS];
    LT_TRY(L, 1, mg_broadcast_shape(ctx, &n1, s1, cond->ndim, cond->size, a->ndim, a->size));
    LT_TRY(L, 2, mg_broadcast_shape(ctx, &n2, s2, n1, s1, b->ndim, b->size));
    mg_tensor *out = lt_push_new(L, dt, n2, s2);
    LT_TRY(L, 1, mg_where(ctx, out, cond, a, b));
    static const int operands[3] = {1, 2, 3};
    if (lt_grad_needed(L, 3, operands)) lt_record(L, -1, MG_FAM_WHERE, MG_WHERE, 3, operands, 0, NULL);
    return 1;
}

/* t:masked_fill(mask, v) == where(mask, v, t), keeping t's dtype. */
static int masked_fill(lua_State *L, int inplace) {
    mg_ctx *ctx = lt_ctx(L);
    lua_settop(L, 3);
    mg_tensor *t = lt_check(L, 1);
    const mg_tensor *mask = lt_check(L, 2);
    if (mask->dtype != MG_BOOL) {
        return lt_argerror(L, 2, "mask must be a bool tensor, got %s", mg_dtype_name((mg_dtype)mask->dtype));
    }
    if (lt_test(L, 3) && lt_check(L, 3)->ndim != 0)
        return luaL_argerror(L, 3, "value must be a number or a 0-d tensor");
    mg_scalar sv;
    const mg_tensor *v = lt_operand(L, 3, (mg_dtype)t->dtype, &sv);
    if (!mg_broadcasts_to(mask, t)) {
        return lt_argerror(L, 2, "mask of shape %s does not broadcast to shape %s",
                           lt_push_shape(L, mask->ndim, mask->size), lt_push_shape(L, t->ndim, t->size));
    }
    if (inplace) {
        lt_inplace(L, 1);
        lt_inplace_source(L, 3);
    }
    mg_tensor *out = t;
    if (!inplace) out = lt_push_new(L, (mg_dtype)t->dtype, t->ndim, t->size);
    LT_TRY(L, 1, mg_where(ctx, out, mask, v, t));
    if (inplace) {
        lt_written(t);
        lua_settop(L, 1);
        return 1;
    }
    static const int operands[3] = {1, 2, 3};
    if (lt_grad_needed(L, 3, operands))
        lt_record(L, -1, MG_FAM_WHERE, MG_MASKED_FILL, 3, operands, 0, NULL);
    return 1;
}
static int l_masked_fill(lua_State *L) { return masked_fill(L, 0); }
static int l_masked_fill_(lua_State *L) { return masked_fill(L, 1); }

/* equal(a, b): same shape and same values (after promotion). */
static int l_equal(lua_State *L) {
    mg_ctx *ctx = lt_ctx(L);
    const mg_tensor *a = lt_check(L, 1), *b = lt_check(L, 2);
    if (!mg_same_shape(a, b)) {
        lua_pushboolean(L, 0);
        return 1;
    }
    lua_settop(L, 2);
    const mg_dtype dt = mg_promote((mg_dtype)a->dtype, (mg_dtype)b->dtype);
    const mg_tensor *ca = lt_push_as(L, 1, dt);
    const mg_tensor *cb = lt_push_as(L, 2, dt);
    mg_tensor *ne = lt_push_new(L, MG_BOOL, a->ndim, a->size);
    LT_TRY(L, 1, mg_binary(ctx, MG_BIN_NE, ne, ca, cb));
    const bool *p = (const bool *)mg_tensor_data(ne);
    for (int64_t i = 0; i < ne->numel; i++)
        if (p[i]) {
            lua_pushboolean(L, 0);
            return 1;
        }
    lua_pushboolean(L, 1);
    return 1;
}

/* allclose(a, b [, rtol = 1e-5 [, atol = 1e-8]]): |a - b| <= atol + rtol |b|, broadcast, as PyTorch */
static int l_allclose(lua_State *L) {
    mg_ctx *ctx = lt_ctx(L);
    const mg_tensor *a = lt_check(L, 1), *b = lt_check(L, 2);
    const double rtol = luaL_optnumber(L, 3, 1e-5), atol = luaL_optnumber(L, 4, 1e-8);
    lua_settop(L, 2);
    int nd;
    int64_t size[MG_MAX_DIMS];
    LT_TRY(L, 1, mg_broadcast_shape(ctx, &nd, size, a->ndim, a->size, b->ndim, b->size));
    const mg_tensor *ca = lt_push_as(L, 1, MG_FLOAT64);
    const mg_tensor *cb = lt_push_as(L, 2, MG_FLOAT64);
    mg_tensor *ea = lt_push_new(L, MG_FLOAT64, nd, size);
    mg_tensor *eb = lt_push_new(L, MG_FLOAT64, nd, size);
    mg_copy(ctx, ea, ca); /* broadcast both to one contiguous shape */
    mg_copy(ctx, eb, cb);
    const double *x = (const double *)mg_tensor_data(ea), *y = (const double *)mg_tensor_data(eb);
    for (int64_t i = 0; i < ea->numel; i++) {
        if (x[i] == y[i]) continue; /* equal infinities */
        /* NaN, or an infinity against anything else: |inf - -inf| <= rtol * inf would pass */
        if (!isfinite(x[i]) || !isfinite(y[i]) || !(fabs(x[i] - y[i]) <= atol + rtol * fabs(y[i]))) {
            lua_pushboolean(L, 0);
            return 1;
        }
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* From the list: every op a method (t:add(u), mg.add(t, u)); operators also in place (t:add_(u)) and
 * as metamethods (t + u). */
#define METHOD(OP, op, ...) {#op, op##_method},
#define INPLACE(OP, op, kernels, kind, saves) INPLACE_##kind(op)
#define INPLACE_OPERATOR(op) {#op "_", op##_inplace},
#define INPLACE_FUNCTION(op)
#define INPLACE_COMPARISON(op)
#define METAMETHOD(OP, op, kernels, kind, saves) METAMETHOD_##kind(op)
#define METAMETHOD_OPERATOR(op) {"__" #op, op##_method},
#define METAMETHOD_FUNCTION(op)
#define METAMETHOD_COMPARISON(op)

const luaL_Reg lt_binary_methods[] = {
    MG_BINARY_OPS(METHOD) MG_BINARY_OPS(INPLACE)
    {"neg", l_neg}, {"masked_fill", l_masked_fill}, {"masked_fill_", l_masked_fill_},
    {"equal", l_equal}, {"allclose", l_allclose},
    {NULL, NULL}};

const luaL_Reg lt_binary_functions[] = {{"where", l_where}, {NULL, NULL}};

const luaL_Reg lt_binary_metamethods[] = {MG_BINARY_OPS(METAMETHOD) {"__unm", l_unm}, {NULL, NULL}};
