/*
 * random.c (binding): the seed, the random factories (rand randn randint randperm, rand_like
 * randn_like) and the in-place fills t:uniform_(a, b), t:normal_(mean, std).
 *
 * One generator per module instance (ctx->rng, see core/rng.h): mg.manual_seed(n) gives the same
 * numbers for the same calls on every platform. Kernels are in ops/fill.c; they fill in row-major
 * logical order, so a view gets the values a contiguous tensor of its shape would.
 */
#include <math.h>

#include "../ops/fill.h"
#include "bind.h"


/* ================================================================ the seed */

/* mg.manual_seed(n): n any integer (negative ones are taken modulo 2^64). */
static int l_manual_seed(lua_State *L) {
    const lua_Integer seed = luaL_checkinteger(L, 1);
    mg_ctx *ctx = lt_ctx(L);
    ctx->seed = (uint64_t)seed;
    mg_rng_seed(&ctx->rng, ctx->seed);
    return 0;
}

/* mg.initial_seed(): the seed given to the last manual_seed (or the default one). */
static int l_initial_seed(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)lt_ctx(L)->seed);
    return 1;
}

/* ================================================================ random factories */

/* The dtype of a floating factory: opts.dtype, which must be floating. */
static mg_dtype floating_dtype(lua_State *L, int opts, mg_dtype def, int *rg, const char *name) {
    const mg_dtype dt = lt_factory_opts(L, opts, def, rg);
    if (!mg_is_floating(dt))
        lt_argerror(L, opts, "%s needs a floating point dtype, got '%s'", name, mg_dtype_name(dt));
    return dt;
}

/* rand / randn(shape... [, opts]) */
static int random_factory(lua_State *L, const char *name, int normal) {
    int64_t size[MG_MAX_DIMS];
    int opts, rg;
    const int ndim = lt_read_shape(L, 1, size, &opts);
    const mg_dtype dt = floating_dtype(L, opts, lt_ctx(L)->default_dtype, &rg, name);
    mg_tensor *t = lt_push_new(L, dt, ndim, size);
    LT_TRY(L, 1, normal ? mg_normal(lt_ctx(L), t, 0, 1) : mg_uniform(lt_ctx(L), t, 0, 1));
    t->requires_grad = (uint8_t)rg;
    return 1;
}

static int l_rand(lua_State *L) { return random_factory(L, "rand", 0); }
static int l_randn(lua_State *L) { return random_factory(L, "randn", 1); }

/* rand_like / randn_like(t [, opts]): t's shape and (floating) dtype. */
static int random_like(lua_State *L, const char *name, int normal) {
    const mg_tensor *src = lt_check(L, 1);
    int rg, opts = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        opts = 2;
    } else if (!mg_is_floating((mg_dtype)src->dtype)) {
        return lt_argerror(L, 1, "%s needs a floating point tensor or opts.dtype, got %s", name,
                           mg_dtype_name((mg_dtype)src->dtype));
    }
    const mg_dtype dt = floating_dtype(L, opts, (mg_dtype)src->dtype, &rg, name);
    mg_tensor *t = lt_push_new(L, dt, src->ndim, src->size);
    LT_TRY(L, 1, normal ? mg_normal(lt_ctx(L), t, 0, 1) : mg_uniform(lt_ctx(L), t, 0, 1));
    t->requires_grad = (uint8_t)rg;
    return 1;
}

static int l_rand_like(lua_State *L) { return random_like(L, "rand_like", 0); }
static int l_randn_like(lua_State *L) { return random_like(L, "randn_like", 1); }

/* randint(low, high, shape... [, opts]) or randint(high, shape_table [, opts]): integers in
 * [low, high), int64 unless opts.dtype. */
static int l_randint(lua_State *L) {
    lua_Integer low = 0, high;
    int shape_arg;
    if (lua_type(L, 2) == LUA_TTABLE && !lt_is_opts(L, 2)) { /* randint(high, {shape}) */
        high = luaL_checkinteger(L, 1);
        shape_arg = 2;
    } else {
        low = luaL_checkinteger(L, 1);
        high = luaL_checkinteger(L, 2);
        shape_arg = 3;
    }
    if (lua_isnone(L, shape_arg) || lt_is_opts(L, shape_arg))
        return luaL_argerror(L, shape_arg, "shape expected (randint(low, high, shape))");
    if (low >= high)
        return lt_argerror(L, shape_arg - 1, "high (%I) must be greater than low (%I)", high, low);
    int64_t size[MG_MAX_DIMS];
    int opts, rg;
    const int ndim = lt_read_shape(L, shape_arg, size, &opts);
    const mg_dtype dt = lt_factory_opts(L, opts, MG_INT64, &rg);
    mg_tensor *t = lt_push_new(L, dt, ndim, size);
    LT_TRY(L, 1, mg_randint(lt_ctx(L), t, low, high));
    t->requires_grad = (uint8_t)rg;
    return 1;
}

/* randperm(n [, opts]): a permutation of 1..n (1-based, as every index in the API), int64. */
static int l_randperm(lua_State *L) {
    const lua_Integer n = luaL_checkinteger(L, 1);
    if (n < 0) return lt_argerror(L, 1, "n must be non-negative, got %I", n);
    int rg, opts = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        opts = 2;
    }
    const mg_dtype dt = lt_factory_opts(L, opts, MG_INT64, &rg);
    if (dt == MG_BOOL) return luaL_argerror(L, opts, "randperm does not take dtype 'bool'");
    const int64_t size = n;
    mg_tensor *t = lt_push_new(L, dt, 1, &size);
    LT_TRY(L, 1, mg_randperm(lt_ctx(L), t));
    t->requires_grad = (uint8_t)rg;
    return 1;
}

/* ================================================================ in-place fills */

/* The floating tensor at 1 for an in-place random fill. */
static mg_tensor *check_floating(lua_State *L, const char *name) {
    mg_tensor *t = lt_inplace(L, 1);
    if (!mg_is_floating((mg_dtype)t->dtype))
        lt_argerror(L, 1, "%s needs a floating point tensor, got %s",
                    name, mg_dtype_name((mg_dtype)t->dtype));
    return t;
}

/* How the user wrote optional argument `arg` (def when absent), for messages. */
static const char *arg_text(lua_State *L, int arg, const char *def) {
    return lua_isnoneornil(L, arg) ? def : luaL_tolstring(L, arg, NULL);
}

/* t:uniform_([a = 0 [, b = 1]]): uniform on [a, b), written through any view; returns t. */
static int l_uniform_(lua_State *L) {
    mg_tensor *t = check_floating(L, "uniform_");
    const double a = luaL_optnumber(L, 2, 0), b = luaL_optnumber(L, 3, 1);
    if (a > b)
        return lt_argerror(L, 2, "lower bound %s is greater than upper bound %s",
                           arg_text(L, 2, "0"), arg_text(L, 3, "1"));
    /* a, b and b - a finite in the tensor's dtype (PyTorch checks the same); NaN fails too */
    const int f32 = t->dtype == MG_FLOAT32;
    const double lo = f32 ? (double)(float)a : a, span = f32 ? (double)((float)b - (float)a) : b - a;
    if (!isfinite(lo) || !isfinite(span))
        return lt_argerror(L, 3, "range [%s, %s) is not finite in %s",
                           arg_text(L, 2, "0"), arg_text(L, 3, "1"),
                           mg_dtype_name((mg_dtype)t->dtype));
    LT_TRY(L, 1, mg_uniform(lt_ctx(L), t, a, b));
    lt_written(t);
    lua_settop(L, 1);
    return 1;
}

/* t:normal_([mean = 0 [, std = 1]]): written through any view; returns t. */
static int l_normal_(lua_State *L) {
    mg_tensor *t = check_floating(L, "normal_");
    const double mean = luaL_optnumber(L, 2, 0), std = luaL_optnumber(L, 3, 1);
    if (!(std >= 0)) return lt_argerror(L, 3, "std must be non-negative, got %s", arg_text(L, 3, "1"));
    LT_TRY(L, 1, mg_normal(lt_ctx(L), t, mean, std));
    lt_written(t);
    lua_settop(L, 1);
    return 1;
}

/* ================================================================ registration */

const luaL_Reg lt_random_methods[] = {{"uniform_", l_uniform_}, {"normal_", l_normal_}, {NULL, NULL}};

const luaL_Reg lt_random_functions[] = {
    {"manual_seed", l_manual_seed}, {"initial_seed", l_initial_seed},
    {"rand", l_rand}, {"randn", l_randn}, {"rand_like", l_rand_like}, {"randn_like", l_randn_like},
    {"randint", l_randint}, {"randperm", l_randperm},
    {NULL, NULL}};
