/*
 * functional.c (binding): mg.F, the functional kernels (src/ops/functional.c).
 *
 * The book's chapter-5 functions under the book's names (model, loss_fn, dloss_fn, dmodel_dw,
 * dmodel_db, grad_fn), and the general differentiable kernels (linear, mse_loss, l1_loss,
 * cross_entropy, binary_cross_entropy_with_logits, softmax, log_softmax, dropout; relu, tanh and
 * sigmoid are the tensor methods). Each binding checks its arguments, allocates the result, calls
 * one kernel and records a node in family MG_FAM_FUNCTIONAL (op: mg_functional_op, iarg[0]: the reduction or
 * the dim). Losses take their reduction as a trailing string or an options table
 * ({reduction = "sum"}): "mean" (the default), "sum" or "none", as PyTorch.
 */
#include <string.h>

#include "../ops/functional.h"
#include "bind.h"

/* ================================================================ arguments */

/* The tensor at arg, which must be float32 or float64. */
static mg_tensor *check_float_tensor(lua_State *L, int arg) {
    mg_tensor *t = lt_test_live(L, arg);
    if (!t) t = lt_check(L, arg); /* raises: not a tensor, or closed */
    if (t->dtype != MG_FLOAT32 && t->dtype != MG_FLOAT64) {
        lt_argerror(L, arg, "expected a float32 or float64 tensor, got %s", mg_dtype_name((mg_dtype)t->dtype));
    }
    return t;
}


/* The reduction at arg: nil (mean), a string, or an options table {reduction = ...}. */
static mg_reduction check_reduction(lua_State *L, int arg) {
    static const char *const valid[] = {"reduction", NULL};
    int at = arg;
    if (lua_isnoneornil(L, arg)) return MG_REDUCTION_MEAN;
    if (lua_type(L, arg) == LUA_TTABLE) {
        lt_check_opts(L, arg, valid);
        lua_getfield(L, arg, "reduction");
        at = lua_gettop(L);
        if (lua_isnil(L, at)) {
            lua_pop(L, 1);
            return MG_REDUCTION_MEAN;
        }
    }
    if (at != arg && lua_type(L, at) != LUA_TSTRING) luaL_argerror(L, arg, "reduction must be a string");
    if (lua_type(L, at) != LUA_TSTRING) luaL_typeerror(L, arg, "reduction string or options table");
    const char *s = lua_tostring(L, at);
    mg_reduction red;
    if (!strcmp(s, "mean")) red = MG_REDUCTION_MEAN;
    else if (!strcmp(s, "sum")) red = MG_REDUCTION_SUM;
    else if (!strcmp(s, "none")) red = MG_REDUCTION_NONE;
    else {
        return (mg_reduction)lt_argerror(L, arg, "unknown reduction '%s', expected 'mean', 'sum' or 'none'", s);
    }
    if (at != arg) lua_pop(L, 1);
    return red;
}

/* Records the result at the top of the stack (family loss) when an input requires grad. */
static mg_node *record(lua_State *L, mg_functional_op op, int ninputs, const int *inputs, int nsaved,
                       const int *saved) {
    if (!lt_grad_needed(L, ninputs, inputs)) return NULL;
    return lt_record(L, -1, MG_FAM_FUNCTIONAL, op, ninputs, inputs, nsaved, saved);
}

/* ================================================================ the book's functions */

/* w or b of the model: a number or a one-element tensor. */
static void check_scalar_param(lua_State *L, int arg, const char *what) {
    const mg_tensor *t = lt_test(L, arg);
    if (t) {
        lt_check(L, arg);
        if (t->numel != 1) {
            lt_argerror(L, arg, "%s must be a number or a one-element tensor, got shape %s", what,
                        lt_push_shape(L, t->ndim, t->size));
        }
    } else if (lua_type(L, arg) != LUA_TNUMBER) {
        luaL_typeerror(L, arg, "number or tensor");
    }
}

/* w or b of the model, checked, as the kernel reads it: a number as a float64 scalar in *sc (what
 * lt_operand makes of it, without its lookups), a tensor as it is (the kernel reads one element of
 * any dtype: converting it to float64 would make a copy, and record a node, on every call). */
static const mg_tensor *scalar_param(lua_State *L, int arg, const char *what, mg_scalar *sc) {
    if (lua_type(L, arg) == LUA_TNUMBER) {
        mg_scalar_init(sc, MG_FLOAT64, lua_tonumber(L, arg), 0);
        return &sc->t;
    }
    check_scalar_param(L, arg, what);
    return lt_test(L, arg);
}

/* model(t_u, w, b) = w * t_u + b, differentiable in all three */
static int l_model(lua_State *L) {
    mg_ctx *ctx = lt_ctx(L);
    lua_settop(L, 3);
    const mg_tensor *u = lt_test_live(L, 1);
    if (!u) u = lt_check(L, 1); /* raises */
    mg_scalar sw, sb;
    const mg_tensor *w = scalar_param(L, 2, "w", &sw), *b = scalar_param(L, 3, "b", &sb);
    const mg_dtype dt = mg_is_floating((mg_dtype)u->dtype) ? (mg_dtype)u->dtype : ctx->default_dtype;
    mg_tensor *out = lt_push_new(L, dt, u->ndim, u->size);
    LT_TRY(L, 1, mg_model(ctx, out, u, w, b));
    static const int inputs[3] = {1, 2, 3};
    /* a number w or b (the scalar's requires_grad is 0) needs no gradient: no lookups for it */
    if (u->requires_grad || w->requires_grad || b->requires_grad) record(L, MG_F_MODEL, 3, inputs, 0, NULL);
    return 1;
}

/* The dtype of the pair at 1, 2 (float tensors), checked to have the same shape. */
static void check_same_shape(lua_State *L, int a, const mg_tensor *x, int b, const mg_tensor *y) {
    if (!mg_same_shape(x, y)) {
        lt_argerror(L, b, "shape %s does not match shape %s of argument #%d", lt_push_shape(L, y->ndim, y->size),
                    lt_push_shape(L, x->ndim, x->size), a);
    }
}
static mg_dtype same_shape_pair(lua_State *L, int a, int b) {
    const mg_tensor *x = check_float_tensor(L, a), *y = check_float_tensor(L, b);
    check_same_shape(L, a, x, b, y);
    return mg_promote((mg_dtype)x->dtype, (mg_dtype)y->dtype);
}

/* dloss_fn(t_p, t_c) = 2 * (t_p - t_c) (not recorded: it is the hand-derived gradient) */
static int l_dloss_fn(lua_State *L) {
    lua_settop(L, 2);
    const mg_dtype dt = same_shape_pair(L, 1, 2);
    const mg_tensor *p = lt_check(L, 1);
    mg_tensor *out = lt_push_new(L, dt, p->ndim, p->size);
    LT_TRY(L, 1, mg_dloss(lt_ctx(L), out, p, lt_check(L, 2)));
    return 1;
}

/* dmodel_dw(t_u, w, b) = t_u */
static int l_dmodel_dw(lua_State *L) {
    lt_check(L, 1);
    lua_settop(L, 1);
    return 1;
}

/* dmodel_db(t_u, w, b) = 1.0 */
static int l_dmodel_db(lua_State *L) {
    lua_pushnumber(L, 1.0);
    return 1;
}

/* grad_fn(t_u, t_c, t_p, w, b) = {mean(dloss * dmodel_dw), mean(dloss * dmodel_db)}, one pass */
static int l_grad_fn(lua_State *L) {
    lua_settop(L, 3);
    /* each tensor checked once, the errors in the order they came before (t_p's, then t_c's) */
    const mg_tensor *u = check_float_tensor(L, 1), *p = check_float_tensor(L, 3);
    check_same_shape(L, 1, u, 3, p);
    const mg_tensor *c = check_float_tensor(L, 2);
    check_same_shape(L, 1, u, 2, c);
    const mg_dtype dt = mg_promote(mg_promote((mg_dtype)u->dtype, (mg_dtype)c->dtype), (mg_dtype)p->dtype);
    const int64_t two = 2;
    mg_tensor *out = lt_push_new(L, dt, 1, &two);
    LT_TRY(L, 1, mg_grad_fn(lt_ctx(L), out, u, c, p));
    return 1;
}

/* ================================================================ losses */

/* mse_loss / l1_loss / binary_cross_entropy_with_logits (input, target [, reduction]) */
static int pointwise_loss(lua_State *L, mg_functional_op op) {
    mg_ctx *ctx = lt_ctx(L);
    lua_settop(L, 3);
    const mg_tensor *x = check_float_tensor(L, 1);
    const mg_tensor *y = lt_check(L, 2);
    if (y->dtype == MG_BOOL || (op == MG_F_BCE_LOGITS && !mg_is_floating((mg_dtype)y->dtype))) {
        return lt_argerror(L, 2, "target must be a float tensor, got %s", mg_dtype_name((mg_dtype)y->dtype));
    }
    const mg_reduction red = check_reduction(L, 3);
    const mg_dtype dt = mg_is_floating((mg_dtype)y->dtype) ? mg_promote((mg_dtype)x->dtype, (mg_dtype)y->dtype)
                                                           : (mg_dtype)x->dtype;
    int ndim;
    int64_t size[MG_MAX_DIMS];
    if (op == MG_F_BCE_LOGITS) { /* PyTorch: "target size must be the same as input size" */
        if (!mg_same_shape(x, y)) {
            return lt_argerror(L, 2, "target shape %s does not match input shape %s", lt_push_shape(L, y->ndim, y->size),
                               lt_push_shape(L, x->ndim, x->size));
        }
        ndim = x->ndim;
        if (ndim) memcpy(size, x->size, sizeof(int64_t) * ndim);
    } else {
        LT_TRY(L, 1, mg_broadcast_shape(ctx, &ndim, size, x->ndim, x->size, y->ndim, y->size));
        if (!mg_same_shape(x, y)) { /* PyTorch's UserWarning: {5,1} against {5} is rarely meant */
            const int top = lua_gettop(L);
            lua_pushfstring(L, "'%s': using a target size (%s) that is different to the input size (%s). This "
                               "will likely lead to incorrect results due to broadcasting. Please ensure they "
                               "have the same size.", op == MG_F_MSE ? "mse_loss" : "l1_loss",
                            lt_push_shape(L, y->ndim, y->size), lt_push_shape(L, x->ndim, x->size));
            lt_warn(L, -1);
            lua_settop(L, top);
        }
    }
    mg_tensor *out = red == MG_REDUCTION_NONE ? lt_push_new(L, dt, ndim, size) : lt_push_new(L, dt, 0, NULL);
    LT_TRY(L, 1, mg_pointwise_loss(ctx, op, out, x, y, red, ndim, size));
    static const int inputs[2] = {1, 2};
    mg_node *n = record(L, op, 2, inputs, 0, NULL);
    if (n) n->iarg[0] = red;
    return 1;
}
static int l_mse_loss(lua_State *L) { return pointwise_loss(L, MG_F_MSE); }
static int l_l1_loss(lua_State *L) { return pointwise_loss(L, MG_F_L1); }
static int l_bce_with_logits(lua_State *L) { return pointwise_loss(L, MG_F_BCE_LOGITS); }

/* loss_fn(t_p, t_c): the book's mean squared error */
static int l_loss_fn(lua_State *L) {
    lua_settop(L, 2);
    return pointwise_loss(L, MG_F_MSE);
}

/* The target of cross_entropy at arg as an int64 tensor of n elements (pushed when made from a
 * Lua list or integer); returns its stack index. */
static int check_target(lua_State *L, int arg, const mg_tensor *logits, int64_t n) {
    const mg_tensor *t = lt_test(L, arg);
    if (t) {
        lt_check(L, arg);
        if (t->dtype != MG_INT64) {
            lt_argerror(L, arg, "target must be an int64 tensor of class indices, got %s",
                        mg_dtype_name((mg_dtype)t->dtype));
        }
        const int want = logits->ndim - 1;
        if (t->ndim != want || t->numel != n) {
            lt_argerror(L, arg, "target shape %s does not match logits shape %s (expected %s)",
                        lt_push_shape(L, t->ndim, t->size), lt_push_shape(L, logits->ndim, logits->size),
                        want ? "{N}" : "a 0-d tensor");
        }
        return arg;
    }
    if (lua_isinteger(L, arg) && logits->ndim == 1) {
        mg_tensor *s = lt_push_new(L, MG_INT64, 0, NULL);
        *(int64_t *)mg_tensor_data(s) = (int64_t)lua_tointeger(L, arg);
        return lua_gettop(L);
    }
    if (lua_type(L, arg) != LUA_TTABLE || logits->ndim != 2)
        luaL_typeerror(L, arg, "int64 tensor or list of integers");
    const int64_t len = (int64_t)lua_rawlen(L, arg);
    if (len != n) {
        lt_argerror(L, arg, "target has %I classes for a batch of %I rows (logits %s)", (lua_Integer)len,
                    (lua_Integer)n, lt_push_shape(L, logits->ndim, logits->size));
    }
    lt_push_int_list(L, arg, "target", "an integer class index");
    return lua_gettop(L);
}

/* cross_entropy(logits (N, C) or (C), target (N) or 0-d [, reduction]) */
static int l_cross_entropy(lua_State *L) {
    mg_ctx *ctx = lt_ctx(L);
    lua_settop(L, 3);
    const mg_tensor *x = check_float_tensor(L, 1);
    if (x->ndim != 1 && x->ndim != 2) {
        return lt_argerror(L, 1, "logits must be {N,C} or {C}, got shape %s", lt_push_shape(L, x->ndim, x->size));
    }
    const int64_t N = x->ndim == 2 ? x->size[0] : 1;
    const mg_reduction red = check_reduction(L, 3);
    const int target = check_target(L, 2, x, N);
    mg_tensor *lse = lt_push_new(L, MG_FLOAT64, 1, &N);
    const int lse_idx = lua_gettop(L);
    mg_tensor *out = red == MG_REDUCTION_NONE ? lt_push_new(L, (mg_dtype)x->dtype, x->ndim - 1, &N)
                                              : lt_push_new(L, (mg_dtype)x->dtype, 0, NULL);
    LT_TRY(L, 1, mg_cross_entropy(ctx, out, lse, x, lt_check(L, target), red));
    const int inputs[2] = {1, target};
    mg_node *n = record(L, MG_F_CROSS_ENTROPY, 2, inputs, 1, &lse_idx);
    if (n) n->iarg[0] = red;
    return 1;
}

/* ================================================================ issue 13 losses */

/* A loss's trailing argument at arg: nil (mean), a reduction string, or an options table whose
 * keys are in `valid` (reduction and the loss's own). Returns the reduction; *opts is the table's
 * index (0 when there is none). */
static mg_reduction loss_options(lua_State *L, int arg, const char *const *valid, int *opts) {
    *opts = 0;
    if (lua_isnoneornil(L, arg)) return MG_REDUCTION_MEAN;
    int at = arg;
    if (lua_type(L, arg) == LUA_TTABLE) {
        lt_check_opts(L, arg, valid);
        *opts = arg;
        lua_getfield(L, arg, "reduction");
        at = lua_gettop(L);
        if (lua_isnil(L, at)) {
            lua_pop(L, 1);
            return MG_REDUCTION_MEAN;
        }
        if (lua_type(L, at) != LUA_TSTRING) luaL_argerror(L, arg, "reduction must be a string");
    }
    if (lua_type(L, at) != LUA_TSTRING) luaL_typeerror(L, arg, "reduction string or options table");
    const char *s = lua_tostring(L, at);
    mg_reduction red = MG_REDUCTION_MEAN;
    if (!strcmp(s, "mean")) red = MG_REDUCTION_MEAN;
    else if (!strcmp(s, "sum")) red = MG_REDUCTION_SUM;
    else if (!strcmp(s, "none")) red = MG_REDUCTION_NONE;
    else lt_argerror(L, arg, "unknown reduction '%s', expected 'mean', 'sum' or 'none'", s);
    if (at != arg) lua_pop(L, 1);
    return red;
}

/* opts[key] as a number (def when absent); pushes nothing. */
static double opt_number(lua_State *L, int opts, const char *key, double def) {
    if (!opts) return def;
    lua_getfield(L, opts, key);
    double v = def;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TNUMBER) lt_argerror(L, opts, "%s must be a number, got %s", key, luaL_typename(L, -1));
        v = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

/* opts.weight: pushed when it is a float tensor (returns its index), 0 when absent. */
static int opt_weight(lua_State *L, int opts) {
    if (!opts) return 0;
    lua_getfield(L, opts, "weight");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    const mg_tensor *w = lt_test(L, -1);
    if (!w) lt_argerror(L, opts, "weight must be a tensor, got %s", luaL_typename(L, -1));
    lt_check(L, lua_gettop(L));
    if (!mg_is_floating((mg_dtype)w->dtype))
        lt_argerror(L, opts, "weight must be a float tensor, got %s", mg_dtype_name((mg_dtype)w->dtype));
    return lua_gettop(L);
}

/* nll_loss(input (N,C,d...) or (C), target (N,d...) or 0-d [, reduction | {reduction, weight,
 * ignore_index}]): targets are 1-based classes; ignore_index compares with the target as given */
static int l_nll_loss(lua_State *L) {
    static const char *const valid[] = {"reduction", "weight", "ignore_index", NULL};
    mg_ctx *ctx = lt_ctx(L);
    lua_settop(L, 3);
    const mg_tensor *x = check_float_tensor(L, 1);
    if (x->ndim < 1)
        return lt_argerror(L, 1, "input must be {N,C}, {C} or {N,C,d...}, got shape %s", lt_push_shape(L, x->ndim, x->size));
    int opts;
    const mg_reduction red = loss_options(L, 3, valid, &opts);
    /* the target's expected shape: the input's without its class dim */
    int tn = 0;
    int64_t tsize[MG_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++)
        if (d != (x->ndim == 1 ? 0 : 1)) tsize[tn++] = x->size[d];
    int target = 2;
    const mg_tensor *t = lt_test(L, 2);
    if (!t && lua_isinteger(L, 2) && x->ndim == 1) {
        mg_tensor *s = lt_push_new(L, MG_INT64, 0, NULL);
        *(int64_t *)mg_tensor_data(s) = (int64_t)lua_tointeger(L, 2);
        target = lua_gettop(L);
    } else if (!t && lua_type(L, 2) == LUA_TTABLE && x->ndim == 2) {
        lt_push_int_list(L, 2, "target", "an integer class index");
        target = lua_gettop(L);
    } else if (!t) {
        luaL_typeerror(L, 2, "int64 tensor of class indices");
    }
    t = lt_check(L, target);
    if (t->dtype != MG_INT64)
        lt_argerror(L, 2, "target must be an int64 tensor of class indices, got %s", mg_dtype_name((mg_dtype)t->dtype));
    if (t->ndim != tn || (tn && memcmp(t->size, tsize, sizeof(int64_t) * tn) != 0))
        lt_argerror(L, 2, "target shape %s does not match input shape %s (expected %s)", lt_push_shape(L, t->ndim, t->size),
                    lt_push_shape(L, x->ndim, x->size), lt_push_shape(L, tn, tsize));
    const int weight = opt_weight(L, opts);
    if (weight) {
        const mg_tensor *w = lt_check(L, weight);
        const int64_t C = x->size[x->ndim == 1 ? 0 : 1];
        if (w->ndim != 1 || w->size[0] != C)
            lt_argerror(L, 3, "weight must be a 1-D tensor of %I elements (one per class), got shape %s", (lua_Integer)C,
                        lt_push_shape(L, w->ndim, w->size));
    }
    int64_t ignore = -100;
    if (opts) {
        lua_getfield(L, opts, "ignore_index");
        if (!lua_isnil(L, -1)) {
            if (!lua_isinteger(L, -1)) lt_argerror(L, 3, "ignore_index must be an integer, got %s", luaL_typename(L, -1));
            ignore = (int64_t)lua_tointeger(L, -1);
        }
        lua_pop(L, 1);
    }
    mg_tensor *out = red == MG_REDUCTION_NONE ? lt_push_new(L, (mg_dtype)x->dtype, tn, tsize)
                                              : lt_push_new(L, (mg_dtype)x->dtype, 0, NULL);
    LT_TRY(L, 1, mg_nll_loss(ctx, out, x, t, weight ? lt_check(L, weight) : NULL, ignore, red));
    const int inputs[2] = {1, target};
    mg_node *n = record(L, MG_F_NLL, 2, inputs, weight ? 1 : 0, &weight);
    if (n) n->iarg[0] = red, n->iarg[1] = ignore, n->iarg[2] = weight != 0;
    return 1;
}

/* binary_cross_entropy(p, target [, reduction | {reduction, weight}]): p probabilities in [0, 1] */
static int l_binary_cross_entropy(lua_State *L) {
    static const char *const valid[] = {"reduction", "weight", NULL};
    mg_ctx *ctx = lt_ctx(L);
    lua_settop(L, 3);
    const mg_tensor *p = check_float_tensor(L, 1);
    const mg_tensor *y = lt_check(L, 2);
    if (!mg_is_floating((mg_dtype)y->dtype))
        return lt_argerror(L, 2, "target must be a float tensor, got %s", mg_dtype_name((mg_dtype)y->dtype));
    if (!mg_same_shape(p, y))
        return lt_argerror(L, 2, "target shape %s does not match input shape %s", lt_push_shape(L, y->ndim, y->size),
                           lt_push_shape(L, p->ndim, p->size));
    int opts;
    const mg_reduction red = loss_options(L, 3, valid, &opts);
    const int weight = opt_weight(L, opts);
    if (weight && !mg_broadcasts_to(lt_check(L, weight), p)) {
        const mg_tensor *w = lt_check(L, weight);
        return lt_argerror(L, 3, "weight shape %s does not broadcast to input shape %s", lt_push_shape(L, w->ndim, w->size),
                           lt_push_shape(L, p->ndim, p->size));
    }
    const mg_dtype dt = mg_promote((mg_dtype)p->dtype, (mg_dtype)y->dtype);
    mg_tensor *out = red == MG_REDUCTION_NONE ? lt_push_new(L, dt, p->ndim, p->size) : lt_push_new(L, dt, 0, NULL);
    LT_TRY(L, 1, mg_binary_cross_entropy(ctx, out, p, y, weight ? lt_check(L, weight) : NULL, red));
    static const int inputs[2] = {1, 2};
    mg_node *n = record(L, MG_F_BCE, 2, inputs, weight ? 1 : 0, &weight);
    if (n) n->iarg[0] = red, n->iarg[1] = weight != 0;
    return 1;
}

/* smooth_l1_loss(x, y [, reduction | {reduction, beta = 1}]) and huber_loss(x, y [, reduction |
 * {reduction, delta = 1}]): y broadcasts with x, as mse_loss */
static int robust_loss(lua_State *L, mg_functional_op op) {
    static const char *const smooth_valid[] = {"reduction", "beta", NULL};
    static const char *const huber_valid[] = {"reduction", "delta", NULL};
    mg_ctx *ctx = lt_ctx(L);
    lua_settop(L, 3);
    const mg_tensor *x = check_float_tensor(L, 1);
    const mg_tensor *y = lt_check(L, 2);
    if (y->dtype == MG_BOOL) return lt_argerror(L, 2, "target must be a float tensor, got bool");
    int opts;
    const mg_reduction red = loss_options(L, 3, op == MG_F_HUBER ? huber_valid : smooth_valid, &opts);
    double param;
    if (op == MG_F_HUBER) {
        param = opt_number(L, opts, "delta", 1);
        if (!(param > 0)) return lt_argerror(L, 3, "delta must be positive, got %f", param);
    } else {
        param = opt_number(L, opts, "beta", 1);
        if (!(param >= 0)) return lt_argerror(L, 3, "beta must be non-negative, got %f", param);
    }
    const mg_dtype dt = mg_is_floating((mg_dtype)y->dtype) ? mg_promote((mg_dtype)x->dtype, (mg_dtype)y->dtype)
                                                           : (mg_dtype)x->dtype;
    int ndim;
    int64_t size[MG_MAX_DIMS];
    LT_TRY(L, 1, mg_broadcast_shape(ctx, &ndim, size, x->ndim, x->size, y->ndim, y->size));
    mg_tensor *out = red == MG_REDUCTION_NONE ? lt_push_new(L, dt, ndim, size) : lt_push_new(L, dt, 0, NULL);
    LT_TRY(L, 1, mg_robust_loss(ctx, op, out, x, y, param, red, ndim, size));
    static const int inputs[2] = {1, 2};
    mg_node *n = record(L, op, 2, inputs, 0, NULL);
    if (n) n->iarg[0] = red, n->darg[0] = param;
    return 1;
}
static int l_smooth_l1_loss(lua_State *L) { return robust_loss(L, MG_F_SMOOTH_L1); }
static int l_huber_loss(lua_State *L) { return robust_loss(L, MG_F_HUBER); }

/* one_hot(idx [, num_classes = -1]): int64, idx's shape then num_classes; -1 infers the largest
 * class in idx (an empty idx then has none to infer, as PyTorch refuses) */
static int l_one_hot(lua_State *L) {
    lua_settop(L, 2);
    const mg_tensor *idx = lt_check(L, 1);
    if (idx->dtype != MG_INT64)
        return lt_argerror(L, 1, "expected an int64 tensor of 1-based class indices, got %s", mg_dtype_name((mg_dtype)idx->dtype));
    if (idx->ndim >= MG_MAX_DIMS) return lt_argerror(L, 1, "too many dims (%d) to add one", (int)idx->ndim);
    lua_Integer C = lua_isnil(L, 2) ? -1 : luaL_checkinteger(L, 2);
    if (C == -1) {
        if (idx->numel == 0) return lt_argerror(L, 1, "cannot infer the number of classes from an empty tensor");
        const mg_tensor *c = lt_push_contiguous(L, 1);
        const int64_t *v = (const int64_t *)mg_tensor_data(c);
        int64_t m = v[0];
        for (int64_t i = 1; i < c->numel; i++) m = v[i] > m ? v[i] : m;
        lua_pop(L, 1);
        C = m < 1 ? 1 : (lua_Integer)m; /* every class below 1: the core names the first */
    } else if (C < 1) {
        return lt_argerror(L, 2, "num_classes must be positive or -1, got %I", C);
    }
    int64_t size[MG_MAX_DIMS];
    if (idx->ndim) memcpy(size, idx->size, sizeof(int64_t) * idx->ndim);
    size[idx->ndim] = (int64_t)C;
    mg_tensor *out = lt_push_new(L, MG_INT64, idx->ndim + 1, size);
    LT_TRY(L, 1, mg_one_hot(lt_ctx(L), out, idx));
    return 1;
}

/* ================================================================ activations and layers */

static int softmax(lua_State *L, mg_functional_op op) {
    const mg_tensor *x = check_float_tensor(L, 1);
    if (lua_isnoneornil(L, 2))
        return luaL_argerror(L, 2, "dim expected (softmax normalizes along one dim, as PyTorch's dim=)");
    const int dim = x->ndim ? lt_check_dim(L, 2, x->ndim) : 0;
    lua_settop(L, 2);
    mg_tensor *out = lt_push_new(L, (mg_dtype)x->dtype, x->ndim, x->size);
    LT_TRY(L, 1, mg_softmax(lt_ctx(L), op, out, x, dim));
    static const int inputs[1] = {1};
    const int saved = lua_gettop(L); /* the backward reads the output */
    mg_node *n = record(L, op, 1, inputs, 1, &saved);
    if (n) n->iarg[0] = dim;
    return 1;
}
static int l_softmax(lua_State *L) { return softmax(L, MG_F_SOFTMAX); }
static int l_log_softmax(lua_State *L) { return softmax(L, MG_F_LOG_SOFTMAX); }

/* linear(x (..., in), weight (out, in) [, bias (out)]) */
static int l_linear(lua_State *L) {
    lua_settop(L, 3);
    const mg_tensor *x = check_float_tensor(L, 1), *w = check_float_tensor(L, 2);
    const mg_tensor *b = lua_isnil(L, 3) ? NULL : check_float_tensor(L, 3);
    if (w->ndim != 2) {
        return lt_argerror(L, 2, "weight must be {out,in}, got shape %s", lt_push_shape(L, w->ndim, w->size));
    }
    if (x->ndim < 1 || x->size[x->ndim - 1] != w->size[1]) {
        return lt_argerror(L, 1, "input shape %s does not fit weight shape %s (in_features %I)",
                           lt_push_shape(L, x->ndim, x->size), lt_push_shape(L, w->ndim, w->size), (lua_Integer)w->size[1]);
    }
    if (w->dtype != x->dtype) {
        return lt_argerror(L, 2, "weight is %s but input is %s", mg_dtype_name((mg_dtype)w->dtype),
                           mg_dtype_name((mg_dtype)x->dtype));
    }
    if (b && (b->ndim != 1 || b->size[0] != w->size[0])) {
        return lt_argerror(L, 3, "bias must have shape {%I}, got %s", (lua_Integer)w->size[0],
                           lt_push_shape(L, b->ndim, b->size));
    }
    if (b && b->dtype != x->dtype) {
        return lt_argerror(L, 3, "bias is %s but input is %s", mg_dtype_name((mg_dtype)b->dtype),
                           mg_dtype_name((mg_dtype)x->dtype));
    }
    int64_t size[MG_MAX_DIMS];
    memcpy(size, x->size, sizeof(int64_t) * x->ndim);
    size[x->ndim - 1] = w->size[0];
    mg_tensor *out = lt_push_new(L, (mg_dtype)x->dtype, x->ndim, size);
    LT_TRY(L, 1, mg_linear(lt_ctx(L), out, x, w, b));
    static const int inputs[3] = {1, 2, 3};
    record(L, MG_F_LINEAR, b ? 3 : 2, inputs, 0, NULL);
    return 1;
}

/* dropout(x [, p = 0.5 [, training = true]]): x itself when not training (or p == 0) */
static int l_dropout(lua_State *L) {
    lua_settop(L, 3);
    const mg_tensor *x = check_float_tensor(L, 1);
    const double p = luaL_optnumber(L, 2, 0.5);
    if (!(p >= 0 && p <= 1)) {
        return lt_argerror(L, 2, "dropout probability has to be between 0 and 1, but got %f", p);
    }
    const int training = lua_isnil(L, 3) ? 1 : lua_toboolean(L, 3);
    if (!training || p == 0) {
        lua_settop(L, 1);
        return 1;
    }
    lt_push_new(L, (mg_dtype)x->dtype, x->ndim, x->size);
    const int mask = lua_gettop(L);
    mg_tensor *out = lt_push_new(L, (mg_dtype)x->dtype, x->ndim, x->size);
    LT_TRY(L, 1, mg_dropout(lt_ctx(L), out, lt_check(L, mask), x, p));
    static const int inputs[1] = {1};
    record(L, MG_F_DROPOUT, 1, inputs, 1, &mask);
    return 1;
}

/* relu / tanh / sigmoid: the tensor methods (with their autograd), called with this closure's
 * upvalues, which are the methods' own (ctx, metatable, methods) */
static int call_method(lua_State *L, const char *name) {
    lt_check(L, 1);
    lua_settop(L, 1);
    lua_getfield(L, lua_upvalueindex(3), name);
    lua_CFunction f = lua_tocfunction(L, -1);
    if (f) {
        lua_pop(L, 1);
        return f(L);
    }
    lua_insert(L, 1);
    lua_call(L, 1, 1);
    return 1;
}
/* gelu / leaky_relu / elu / silu / softplus: the tensor methods, with their parameters */
static int call_method_args(lua_State *L, const char *name) {
    lt_check(L, 1);
    lua_getfield(L, lua_upvalueindex(3), name);
    lua_CFunction f = lua_tocfunction(L, -1);
    lua_pop(L, 1);
    return f(L);
}
static int l_gelu(lua_State *L) { return call_method_args(L, "gelu"); }
static int l_leaky_relu(lua_State *L) { return call_method_args(L, "leaky_relu"); }
static int l_elu(lua_State *L) { return call_method_args(L, "elu"); }
static int l_silu(lua_State *L) { return call_method_args(L, "silu"); }
static int l_softplus(lua_State *L) { return call_method_args(L, "softplus"); }
static int l_relu(lua_State *L) { return call_method(L, "relu"); }
static int l_tanh(lua_State *L) { return call_method(L, "tanh"); }
static int l_sigmoid(lua_State *L) { return call_method(L, "sigmoid"); }

const luaL_Reg lt_functional_functions[] = {
    {"model", l_model}, {"loss_fn", l_loss_fn}, {"dloss_fn", l_dloss_fn},
    {"dmodel_dw", l_dmodel_dw}, {"dmodel_db", l_dmodel_db}, {"grad_fn", l_grad_fn},
    {"linear", l_linear}, {"mse_loss", l_mse_loss}, {"l1_loss", l_l1_loss},
    {"cross_entropy", l_cross_entropy}, {"binary_cross_entropy_with_logits", l_bce_with_logits},
    {"softmax", l_softmax}, {"log_softmax", l_log_softmax},
    {"relu", l_relu}, {"tanh", l_tanh}, {"sigmoid", l_sigmoid}, {"dropout", l_dropout},
    {"gelu", l_gelu}, {"leaky_relu", l_leaky_relu}, {"elu", l_elu}, {"silu", l_silu},
    {"softplus", l_softplus},
    {"nll_loss", l_nll_loss}, {"binary_cross_entropy", l_binary_cross_entropy},
    {"smooth_l1_loss", l_smooth_l1_loss}, {"huber_loss", l_huber_loss}, {"one_hot", l_one_hot},
    {NULL, NULL}};
