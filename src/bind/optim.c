/*
 * optim.c (binding): one function per optimizer kind, called by lua/moongrad/optim.lua for each
 * parameter that has a gradient. They are private (mg._optim_*: init.lua copies no "_" names), and
 * take their hyperparameters as positional numbers; the Lua layer checks the options:
 *
 *   _optim_sgd(param, grad, buf|nil, lr, momentum, dampening, weight_decay, nesterov, first)
 *   _optim_adam(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq|nil, lr, beta1, beta2, eps,
 *               weight_decay, step)                     (and _optim_adamw, the same arguments)
 *   _optim_rmsprop(param, grad, square_avg, grad_avg|nil, buf|nil, lr, alpha, eps, weight_decay,
 *                  momentum)
 *   _optim_adagrad(param, grad, sum, lr, lr_decay, weight_decay, eps, step)
 *   _optim_adam_group(params, state, first, lr, beta1, beta2, eps, weight_decay, amsgrad)
 *                     (and _optim_adamw_group): a whole group's Adam step in one call (below)
 *
 * The parameter and the buffers are written in place (versions bumped). A parameter is a leaf that
 * requires grad, so lt_inplace's autograd check does not apply: an optimizer step is outside the
 * graph, as under PyTorch's no_grad. The math is in src/ops/optim.c.
 */

#include "../ops/ops.h"
#include "../ops/optim.h"
#include "bind.h"

/* The parameter at arg 1: a floating tensor that can be written in place. */
static mg_tensor *check_param(lua_State *L) {
    mg_tensor *p = lt_check(L, 1);
    if (!mg_is_floating((mg_dtype)p->dtype))
        lt_argerror(L, 1, "optimizers update float32 or float64 tensors, got %s",
                    mg_dtype_name((mg_dtype)p->dtype));
    if (mg_check_inplace_target(lt_ctx(L), 1, p) != MG_OK) lt_raise(L, 1);
    return p;
}

/* Raises unless t has param's shape and dtype; `what` names the tensor in the message. */
static void check_like(lua_State *L, int arg, const mg_tensor *t, const mg_tensor *param, const char *what) {
    if (t->dtype == param->dtype && mg_same_shape(t, param)) return;
    lt_argerror(L, arg, "%s (%s %s) must have the parameter's shape and dtype (%s %s)", what,
                lt_push_shape(L, t->ndim, t->size), mg_dtype_name((mg_dtype)t->dtype),
                lt_push_shape(L, param->ndim, param->size), mg_dtype_name((mg_dtype)param->dtype));
}

/* A contiguous copy of the tensor at arg (pushed), or the tensor itself; never recorded by autograd. */
static mg_tensor *contiguous(lua_State *L, int arg) {
    mg_tensor *t = lt_check(L, arg);
    if (mg_is_contiguous(t)) return t;
    mg_tensor *c = lt_push_new(L, (mg_dtype)t->dtype, t->ndim, t->size);
    mg_copy(lt_ctx(L), c, t);
    return c;
}

/* The gradient at arg 2: the parameter's shape and dtype, made contiguous. */
static const mg_tensor *check_grad(lua_State *L, const mg_tensor *param) {
    check_like(L, 2, lt_check(L, 2), param, "gradient");
    return contiguous(L, 2);
}

/* A state buffer at arg (nil allowed when `optional`): contiguous, with the parameter's shape and
 * dtype (the Lua layer makes them with zeros_like, and load_state_dict converts). */
static mg_tensor *check_buffer(lua_State *L, int arg, const mg_tensor *param, int optional) {
    if (optional && lua_isnil(L, arg)) return NULL;
    mg_tensor *b = lt_check(L, arg);
    check_like(L, arg, b, param, "state buffer");
    if (!mg_is_contiguous(b)) luaL_argerror(L, arg, "state buffer must be contiguous");
    return b;
}

/* Updates happen on a contiguous parameter: a strided one is updated in a copy, copied back. */
static void finish(lua_State *L, mg_tensor *param, const mg_tensor *work, mg_tensor *const *buffers, int n) {
    if (work != param) mg_copy(lt_ctx(L), param, work);
    lt_written(param);
    for (int i = 0; i < n; i++)
        if (buffers[i]) lt_written(buffers[i]);
}

/* Reads the step number at arg: an integer >= 1. */
static int64_t check_step(lua_State *L, int arg) {
    const lua_Integer step = luaL_checkinteger(L, arg);
    luaL_argcheck(L, step >= 1, arg, "step must be at least 1");
    return (int64_t)step;
}

static int l_sgd(lua_State *L) {
    mg_tensor *param = check_param(L);
    lua_settop(L, 9);
    mg_tensor *buf = check_buffer(L, 3, param, 1);
    const mg_sgd_options o = {.lr = luaL_checknumber(L, 4),
                              .momentum = luaL_checknumber(L, 5),
                              .dampening = luaL_checknumber(L, 6),
                              .weight_decay = luaL_checknumber(L, 7),
                              .nesterov = lua_toboolean(L, 8),
                              .first = lua_toboolean(L, 9)};
    luaL_argcheck(L, buf || o.momentum == 0, 3, "a momentum buffer is needed when momentum is not 0");
    const mg_tensor *grad = check_grad(L, param);
    mg_tensor *work = contiguous(L, 1);
    LT_TRY(L, 1, mg_optim_sgd(lt_ctx(L), work, grad, o.momentum != 0 ? buf : NULL, &o));
    mg_tensor *const buffers[] = {buf};
    finish(L, param, work, buffers, 1);
    return 0;
}

static int adam(lua_State *L, bool decoupled) {
    mg_tensor *param = check_param(L);
    lua_settop(L, 11);
    mg_tensor *m = check_buffer(L, 3, param, 0), *v = check_buffer(L, 4, param, 0);
    mg_tensor *vmax = check_buffer(L, 5, param, 1);
    const mg_adam_options o = {.lr = luaL_checknumber(L, 6),
                               .beta1 = luaL_checknumber(L, 7),
                               .beta2 = luaL_checknumber(L, 8),
                               .eps = luaL_checknumber(L, 9),
                               .weight_decay = luaL_checknumber(L, 10),
                               .step = check_step(L, 11),
                               .decoupled = decoupled};
    const mg_tensor *grad = check_grad(L, param);
    mg_tensor *work = contiguous(L, 1);
    LT_TRY(L, 1, mg_optim_adam(lt_ctx(L), work, grad, m, v, vmax, &o));
    mg_tensor *const buffers[] = {m, v, vmax};
    finish(L, param, work, buffers, 3);
    return 0;
}
static int l_adam(lua_State *L) { return adam(L, false); }
static int l_adamw(lua_State *L) { return adam(L, true); }

/* A state buffer the group step can write as it is: a contiguous tensor of param's shape and dtype. */
static mg_tensor *usable_buffer(lua_State *L, int idx, const mg_tensor *param) {
    mg_tensor *b = lt_test_live(L, idx);
    return b && b->dtype == param->dtype && mg_same_shape(b, param) && mg_is_contiguous(b) ? b : NULL;
}

/* _optim_adam_group(params, state, first, lr, beta1, beta2, eps, weight_decay, amsgrad) (and
 * _optim_adamw_group): the step of a whole parameter group in one call, from params[first] on.
 * Each parameter with a .grad gets state.step + 1 and the update of _optim_adam. Returns nothing
 * when the group is done, or the index of the first parameter that needs the per-parameter path
 * (its state not created yet, a strided or mismatched tensor, a step that is not an integer, a
 * hyperparameter that is not a number): the Lua layer updates that one and calls again from the
 * next, so every check and message stays _optim_adam's. */
static int adam_group(lua_State *L, bool decoupled) {
    lua_settop(L, 9);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer i = luaL_checkinteger(L, 3);
    bool numbers = true; /* else every parameter takes the per-parameter path (and its errors) */
    for (int a = 4; a <= 8; a++) numbers = numbers && lua_type(L, a) == LUA_TNUMBER;
    const bool amsgrad = lua_toboolean(L, 9);
    mg_adam_options o = {.lr = lua_tonumber(L, 4),
                         .beta1 = lua_tonumber(L, 5),
                         .beta2 = lua_tonumber(L, 6),
                         .eps = lua_tonumber(L, 7),
                         .weight_decay = lua_tonumber(L, 8),
                         .decoupled = decoupled};
    mg_ctx *ctx = lt_ctx(L);
    for (;; i++) {
        lua_settop(L, 9);
        if (lua_rawgeti(L, 1, i) == LUA_TNIL) return 0; /* 10: the parameter (ipairs' end) */
        mg_tensor *p = lt_test_live(L, 10); /* released ones take the checked path, which says so */
        if (!numbers || !p || !mg_is_floating((mg_dtype)p->dtype) || !mg_is_contiguous(p)) break;
        if (lua_getiuservalue(L, 10, LT_UV_GRAD) == LUA_TNIL) continue; /* 11: .grad */
        const mg_tensor *g = lt_test_live(L, 11);
        if (!g || g->dtype != p->dtype || !mg_same_shape(g, p) || !mg_is_contiguous(g)) break;
        lua_pushvalue(L, 10);
        if (lua_rawget(L, 2) != LUA_TTABLE) break; /* 12: state[p] */
        if (lua_getfield(L, 12, "step") != LUA_TNUMBER || !lua_isinteger(L, 13)) break;
        const lua_Integer step = lua_tointeger(L, 13);
        if (step < 0 || step == LUA_MAXINTEGER) break;
        lua_getfield(L, 12, "exp_avg");    /* 14 */
        lua_getfield(L, 12, "exp_avg_sq"); /* 15 */
        mg_tensor *m = usable_buffer(L, 14, p), *v = usable_buffer(L, 15, p), *vmax = NULL;
        if (!m || !v) break;
        if (amsgrad) {
            lua_getfield(L, 12, "max_exp_avg_sq"); /* 16 */
            if (!(vmax = usable_buffer(L, 16, p))) break;
        }
        lua_pushinteger(L, step + 1);
        lua_setfield(L, 12, "step");
        o.step = (int64_t)step + 1;
        LT_TRY(L, 1, mg_optim_adam(ctx, p, g, m, v, vmax, &o));
        mg_tensor *const buffers[] = {m, v, vmax};
        finish(L, p, p, buffers, 3);
    }
    lua_pushinteger(L, i);
    return 1;
}
static int l_adam_group(lua_State *L) { return adam_group(L, false); }
static int l_adamw_group(lua_State *L) { return adam_group(L, true); }

static int l_rmsprop(lua_State *L) {
    mg_tensor *param = check_param(L);
    lua_settop(L, 10);
    mg_tensor *s = check_buffer(L, 3, param, 0), *a = check_buffer(L, 4, param, 1);
    mg_tensor *buf = check_buffer(L, 5, param, 1);
    const mg_rmsprop_options o = {.lr = luaL_checknumber(L, 6),
                                  .alpha = luaL_checknumber(L, 7),
                                  .eps = luaL_checknumber(L, 8),
                                  .weight_decay = luaL_checknumber(L, 9),
                                  .momentum = luaL_checknumber(L, 10)};
    luaL_argcheck(L, buf || o.momentum <= 0, 5, "a momentum buffer is needed when momentum is positive");
    const mg_tensor *grad = check_grad(L, param);
    mg_tensor *work = contiguous(L, 1);
    LT_TRY(L, 1, mg_optim_rmsprop(lt_ctx(L), work, grad, s, a, o.momentum > 0 ? buf : NULL, &o));
    mg_tensor *const buffers[] = {s, a, buf};
    finish(L, param, work, buffers, 3);
    return 0;
}

static int l_adagrad(lua_State *L) {
    mg_tensor *param = check_param(L);
    lua_settop(L, 8);
    mg_tensor *sum = check_buffer(L, 3, param, 0);
    const mg_adagrad_options o = {.lr = luaL_checknumber(L, 4),
                                  .lr_decay = luaL_checknumber(L, 5),
                                  .weight_decay = luaL_checknumber(L, 6),
                                  .eps = luaL_checknumber(L, 7),
                                  .step = check_step(L, 8)};
    const mg_tensor *grad = check_grad(L, param);
    mg_tensor *work = contiguous(L, 1);
    LT_TRY(L, 1, mg_optim_adagrad(lt_ctx(L), work, grad, sum, &o));
    mg_tensor *const buffers[] = {sum};
    finish(L, param, work, buffers, 1);
    return 0;
}

const luaL_Reg lt_optim_functions[] = {
    {"_optim_sgd", l_sgd},         {"_optim_adam", l_adam},       {"_optim_adamw", l_adamw},
    {"_optim_rmsprop", l_rmsprop}, {"_optim_adagrad", l_adagrad}, {"_optim_adam_group", l_adam_group},
    {"_optim_adamw_group", l_adamw_group}, {NULL, NULL}};
