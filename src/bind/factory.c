/*
 * factory.c (binding): new tensors from a shape or a range: zeros ones full empty, the *_like
 * forms, eye, arange, linspace. The random factories (rand, randn, ...) live in random.c and share
 * the options reader below.
 *
 * Shapes come as varargs or one table (lt_read_shape), with a trailing options table
 * {dtype = ..., requires_grad = ...}. To add a factory: a function here and a line in
 * lt_factory_functions.
 */
#include <math.h>

#include "../ops/fill.h"
#include "../ops/ops.h"
#include "bind.h"

/* ================================================================ options */

static const char *const factory_opt_names[] = {"dtype", "requires_grad", NULL};

/* The options table at idx (0: none): checks its keys and returns opts.dtype (or def); sets
 * *requires_grad, refusing it for a dtype that is not floating (as PyTorch). Shared with random.c
 * (declared there until bind.h carries it). */
mg_dtype lt_factory_opts(lua_State *L, int idx, mg_dtype def, int *requires_grad) {
    *requires_grad = 0;
    if (!idx) return def;
    lt_check_opts(L, idx, factory_opt_names);
    const mg_dtype dt = lt_opt_dtype(L, idx, def);
    const int type = lua_getfield(L, idx, "requires_grad");
    if (type != LUA_TNIL && type != LUA_TBOOLEAN) luaL_argerror(L, idx, "requires_grad must be a boolean");
    *requires_grad = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (*requires_grad && !mg_is_floating(dt))
        luaL_argerror(L, idx, "only floating point tensors can require gradients");
    return dt;
}

/* The index of an options table at idx for functions with fixed arguments: 0 when absent or nil;
 * any plain table counts ({} is an empty options table). */
static int opt_table(lua_State *L, int idx) {
    if (lua_isnoneornil(L, idx)) return 0;
    if (lua_type(L, idx) != LUA_TTABLE || lt_test(L, idx)) luaL_typeerror(L, idx, "options table");
    return idx;
}

/* ================================================================ from a shape */

/* zeros / ones / empty: shape at 1 (varargs or table), optional trailing options. */
static int filled(lua_State *L, double value) {
    int64_t size[MG_MAX_DIMS];
    int opts, rg;
    const int ndim = lt_read_shape(L, 1, size, &opts);
    const mg_dtype dt = lt_factory_opts(L, opts, lt_ctx(L)->default_dtype, &rg);
    mg_tensor *t = lt_push_new(L, dt, ndim, size);
    LT_TRY(L, 1, mg_fill(lt_ctx(L), t, value, (int64_t)value));
    t->requires_grad = (uint8_t)rg;
    return 1;
}

static int l_zeros(lua_State *L) { return filled(L, 0); }
static int l_ones(lua_State *L) { return filled(L, 1); }
/* PyTorch leaves empty() uninitialised; zeros cost little and keep bool tensors valid (a byte
 * other than 0 / 1 read as C bool is undefined behaviour). */
static int l_empty(lua_State *L) { return filled(L, 0); }

/* The fill value at idx as a scalar of dtype dt: a number or a boolean. */
static const mg_tensor *fill_value(lua_State *L, int idx, mg_dtype dt, mg_scalar *sc) {
    const int type = lua_type(L, idx);
    if (type != LUA_TNUMBER && type != LUA_TBOOLEAN) luaL_typeerror(L, idx, "number or boolean");
    return lt_operand(L, idx, dt, sc);
}

/* full(shape_table, value [, opts]): numbers give the default dtype, a boolean gives bool. */
static int l_full(lua_State *L) {
    if (lua_type(L, 1) != LUA_TTABLE || lt_test(L, 1))
        return luaL_typeerror(L, 1, "shape table (mg.full({2, 3}, value))");
    int rg;
    const mg_dtype def = lua_type(L, 2) == LUA_TBOOLEAN ? MG_BOOL : lt_ctx(L)->default_dtype;
    const mg_dtype dt = lt_factory_opts(L, opt_table(L, 3), def, &rg);
    mg_scalar sc;
    const mg_tensor *v = fill_value(L, 2, dt, &sc); /* a C value: nothing stays on the stack */
    lua_settop(L, 1);                              /* so that lt_read_shape sees the shape alone */
    int64_t size[MG_MAX_DIMS];
    int string_keys;
    const int ndim = lt_read_shape(L, 1, size, &string_keys);
    if (string_keys) return luaL_argerror(L, 1, "the shape must be a list of sizes");
    mg_tensor *t = lt_push_new(L, dt, ndim, size);
    LT_TRY(L, 1, mg_copy(lt_ctx(L), t, v));
    t->requires_grad = (uint8_t)rg;
    return 1;
}

/* zeros_like / ones_like / empty_like(t [, opts]); full_like(t, value [, opts]): t's shape, and
 * t's dtype unless opts.dtype. requires_grad is not inherited (as PyTorch). */
static int like(lua_State *L, int value_idx, double value) {
    const mg_tensor *src = lt_check(L, 1);
    int rg;
    const mg_dtype dt = lt_factory_opts(L, opt_table(L, value_idx ? 3 : 2), (mg_dtype)src->dtype, &rg);
    mg_scalar sc;
    const mg_tensor *v;
    if (value_idx) {
        v = fill_value(L, value_idx, dt, &sc);
    } else {
        mg_scalar_init(&sc, dt, value, (int64_t)value);
        v = &sc.t;
    }
    mg_tensor *t = lt_push_new(L, dt, src->ndim, src->size);
    LT_TRY(L, 1, mg_copy(lt_ctx(L), t, v));
    t->requires_grad = (uint8_t)rg;
    return 1;
}

static int l_zeros_like(lua_State *L) { return like(L, 0, 0); }
static int l_ones_like(lua_State *L) { return like(L, 0, 1); }
static int l_empty_like(lua_State *L) { return like(L, 0, 0); }
static int l_full_like(lua_State *L) { return like(L, 2, 0); }

/* A size argument that must be a non-negative integer. */
static int64_t check_count(lua_State *L, int arg, const char *what) {
    const lua_Integer n = luaL_checkinteger(L, arg);
    if (n < 0) lt_argerror(L, arg, "%s must be non-negative, got %I", what, n);
    return n;
}

/* eye(n [, m] [, opts]): n x m (m = n by default), ones on the diagonal. */
static int l_eye(lua_State *L) {
    int64_t size[2];
    size[0] = check_count(L, 1, "n");
    const int has_m = lua_type(L, 2) == LUA_TNUMBER;
    size[1] = has_m ? check_count(L, 2, "m") : size[0];
    int rg;
    const mg_dtype dt = lt_factory_opts(L, opt_table(L, has_m ? 3 : 2), lt_ctx(L)->default_dtype, &rg);
    mg_tensor *t = lt_push_new(L, dt, 2, size);
    LT_TRY(L, 1, mg_eye(lt_ctx(L), t));
    t->requires_grad = (uint8_t)rg;
    return 1;
}

/* ================================================================ ranges */

/* Float as PyTorch's to<int64_t>: truncation toward zero (range-checked: C leaves it undefined). */
static int64_t to_int64(lua_State *L, int arg) {
    if (lua_isinteger(L, arg)) return lua_tointeger(L, arg);
    const double v = lua_tonumber(L, arg);
    if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0))
        luaL_argerror(L, arg, "value out of range for int64");
    return (int64_t)v;
}

/* How the user wrote argument `arg` (def when it was left out), for messages: 5 stays "5". */
static const char *arg_text(lua_State *L, int arg, const char *def) {
    return arg ? luaL_tolstring(L, arg, NULL) : def;
}

/* The length of an int64 range, exactly: ceil((stop - start) / step) in unsigned arithmetic. */
static uint64_t int_range_length(int64_t start, int64_t stop, int64_t step) {
    if (step > 0 ? stop <= start : stop >= start) return 0;
    const uint64_t diff = step > 0 ? (uint64_t)stop - (uint64_t)start : (uint64_t)start - (uint64_t)stop;
    const uint64_t ustep = step > 0 ? (uint64_t)step : 0 - (uint64_t)step;
    return diff / ustep + (diff % ustep != 0);
}

/* arange(stop), arange(start, stop [, step]) [, opts]: stop excluded, default float dtype (API.md).
 * Length ceil((stop - start) / step), as PyTorch. */
static int l_arange(lua_State *L) {
    int top = lua_gettop(L), opts = 0;
    if (top >= 1 && lua_type(L, top) == LUA_TTABLE) opts = top--;
    if (top > 3) return luaL_argerror(L, 4, "arange takes at most start, stop and step");
    for (int i = 1; i <= (top ? top : 1); i++) luaL_checknumber(L, i);
    const int start_arg = top >= 2 ? 1 : 0, stop_arg = top >= 2 ? 2 : 1, step_arg = top == 3 ? 3 : 0;
    int rg;
    const mg_dtype dt = lt_factory_opts(L, opts, lt_ctx(L)->default_dtype, &rg);
    if (dt == MG_BOOL) return luaL_argerror(L, opts, "arange does not take dtype 'bool'");
    const double start = start_arg ? lua_tonumber(L, start_arg) : 0, stop = lua_tonumber(L, stop_arg),
                 step = step_arg ? lua_tonumber(L, step_arg) : 1;
    if (step == 0) return luaL_argerror(L, step_arg, "step must be nonzero");
    if (!isfinite(step)) return luaL_argerror(L, step_arg, "step must be finite");
    if (!isfinite(start) || !isfinite(stop))
        return luaL_error(L, "'arange': cannot count from %s to %s", arg_text(L, start_arg, "0"),
                          arg_text(L, stop_arg, NULL));
    if ((step > 0 && start > stop) || (step < 0 && start < stop))
        return luaL_error(L, "'arange': step %s has the wrong sign to go from %s to %s",
                          arg_text(L, step_arg, "1"), arg_text(L, start_arg, "0"), arg_text(L, stop_arg, NULL));

    int64_t n;
    if (dt == MG_INT64) {
        const int64_t istart = start_arg ? to_int64(L, start_arg) : 0, istop = to_int64(L, stop_arg),
                      istep = step_arg ? to_int64(L, step_arg) : 1;
        if (istep == 0) return luaL_argerror(L, step_arg, "step truncates to 0 as an int64, and it must be nonzero");
        const uint64_t len = int_range_length(istart, istop, istep);
        if (len > (uint64_t)MG_MAX_NUMEL)
            return luaL_error(L, "'arange': the range has more than 2^62 elements");
        n = (int64_t)len;
        mg_tensor *t = lt_push_new(L, dt, 1, &n);
        LT_TRY(L, 1, mg_arange_int(lt_ctx(L), t, istart, istep));
        return 1;
    }
    const double len = ceil((stop - start) / step);
    if (!(len <= (double)MG_MAX_NUMEL))
        return luaL_error(L, "'arange': the range from %s to %s by %s has more than 2^62 elements",
                          arg_text(L, start_arg, "0"), arg_text(L, stop_arg, NULL), arg_text(L, step_arg, "1"));
    n = (int64_t)len;
    mg_tensor *t = lt_push_new(L, dt, 1, &n);
    LT_TRY(L, 1, mg_arange(lt_ctx(L), t, start, step));
    t->requires_grad = (uint8_t)rg;
    return 1;
}

/* linspace(start, end, steps [, opts]): steps values from start to end included, as torch.linspace. */
static int l_linspace(lua_State *L) {
    const double start = luaL_checknumber(L, 1), end = luaL_checknumber(L, 2);
    const int64_t n = check_count(L, 3, "number of steps");
    int rg;
    const int opts = opt_table(L, 4);
    const mg_dtype dt = lt_factory_opts(L, opts, lt_ctx(L)->default_dtype, &rg);
    if (dt == MG_BOOL) return luaL_argerror(L, opts, "linspace does not take dtype 'bool'");
    if (dt == MG_INT64) { /* the ends convert as PyTorch's to<int64_t> */
        to_int64(L, 1);
        to_int64(L, 2);
    }
    mg_tensor *t = lt_push_new(L, dt, 1, &n);
    LT_TRY(L, 1, mg_linspace(lt_ctx(L), t, start, end));
    t->requires_grad = (uint8_t)rg;
    return 1;
}

/* ================================================================ registration */

const luaL_Reg lt_factory_functions[] = {
    {"zeros", l_zeros}, {"ones", l_ones}, {"empty", l_empty}, {"full", l_full},
    {"zeros_like", l_zeros_like}, {"ones_like", l_ones_like}, {"empty_like", l_empty_like},
    {"full_like", l_full_like}, {"eye", l_eye}, {"arange", l_arange}, {"linspace", l_linspace},
    {NULL, NULL}};
