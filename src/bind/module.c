/*
 * module.c: luaopen_moongrad_core. Builds the per-state context, the Tensor metatable and the
 * methods table, and registers every family's lists (see bind.h). Sets no globals. Also the
 * settings kept in the context (default dtype, threads) and core._isatty.
 */
#include <unistd.h> /* isatty */

#include "bind.h"

/* ================================================================ the module's settings */

static int l_set_default_dtype(lua_State *L) {
    const mg_dtype dt = lt_check_dtype(L, 1);
    if (!mg_is_floating(dt)) return luaL_argerror(L, 1, "the default dtype must be 'float32' or 'float64'");
    lt_ctx(L)->default_dtype = dt;
    return 0;
}

static int l_get_default_dtype(lua_State *L) {
    lua_pushstring(L, mg_dtype_name(lt_ctx(L)->default_dtype));
    return 1;
}

/* mg.set_num_threads(n): the threads ops may use (1: none are ever started). Results do not
 * depend on it. mg.get_num_threads() reads it. */
static int l_set_num_threads(lua_State *L) {
    const lua_Integer n = luaL_checkinteger(L, 1);
    if (n < 1 || n > MG_MAX_THREADS)
        return lt_argerror(L, 1, "number of threads must be in 1..%d, got %I", MG_MAX_THREADS, n);
    lt_ctx(L)->num_threads = (int)n;
    return 0;
}

static int l_get_num_threads(lua_State *L) {
    lua_pushinteger(L, lt_ctx(L)->num_threads);
    return 1;
}

/* set_memory_limit(bytes | nil): no tensor is made that would take the state's Lua heap past
 * `bytes` (after a full collection); nil removes the limit. Returns the previous limit (or nil). */
static int l_set_memory_limit(lua_State *L) {
    mg_ctx *ctx = lt_ctx(L);
    size_t limit = 0;
    if (!lua_isnoneornil(L, 1)) {
        const lua_Integer n = luaL_checkinteger(L, 1);
        if (n <= 0) return lt_argerror(L, 1, "memory limit must be a positive number of bytes, got %I", n);
        limit = (size_t)n;
    }
    if (ctx->memory_limit) lua_pushinteger(L, (lua_Integer)ctx->memory_limit); else lua_pushnil(L);
    ctx->memory_limit = limit;
    return 1;
}

static int l_get_memory_limit(lua_State *L) {
    mg_ctx *ctx = lt_ctx(L);
    if (ctx->memory_limit) lua_pushinteger(L, (lua_Integer)ctx->memory_limit); else lua_pushnil(L);
    return 1;
}

/* set_time_limit(seconds | nil): a long loop of a call (a reduction over 2^62 expanded elements)
 * stops after that long, the call raising "'sum': interrupted (over the time limit of 5 s)"; nil
 * removes the limit. Returns the previous limit (or nil). */
static int l_set_time_limit(lua_State *L) {
    mg_ctx *ctx = lt_ctx(L);
    double limit = 0;
    if (!lua_isnoneornil(L, 1)) {
        limit = luaL_checknumber(L, 1);
        if (!(limit > 0 && limit <= 1e9))
            return lt_argerror(L, 1, "time limit must be a positive number of seconds, got %f", (lua_Number)limit);
    }
    if (ctx->time_limit > 0) lua_pushnumber(L, ctx->time_limit); else lua_pushnil(L);
    ctx->time_limit = limit;
    return 1;
}

/* core._isatty(): whether standard output is a terminal (mg.train draws a progress bar then). */
static int l_isatty(lua_State *L) {
    lua_pushboolean(L, isatty(STDOUT_FILENO));
    return 1;
}

static const luaL_Reg settings_functions[] = {
    {"set_default_dtype", l_set_default_dtype}, {"get_default_dtype", l_get_default_dtype},
    {"set_num_threads", l_set_num_threads}, {"get_num_threads", l_get_num_threads},
    {"set_memory_limit", l_set_memory_limit}, {"get_memory_limit", l_get_memory_limit},
    {"set_time_limit", l_set_time_limit}, {"_isatty", l_isatty},
    {NULL, NULL}};

/* ================================================================ opening */

/* Registers `list` into the table at `target`, each function a closure over (ctx, mt, methods). */
static void register_list(lua_State *L, int target, const luaL_Reg *list, int ctx, int mt, int methods) {
    lua_pushvalue(L, target);
    lua_pushvalue(L, ctx);
    lua_pushvalue(L, mt);
    lua_pushvalue(L, methods);
    luaL_setfuncs(L, list, 3);
    lua_pop(L, 1);
}

static int ctx_gc(lua_State *L) {
    mg_ctx *ctx = (mg_ctx *)lua_touserdata(L, 1);
    mg_pool_shutdown(ctx);
    /* the state is closing: the cached blocks go back, and so will those of tensors finalized
     * after this */
    mg_block_flush(ctx);
    ctx->blocks.closed = 1;
    lt_free_lost_blocks(ctx); /* blocks whose owner was freed unfinalized (tensor.c) */
    return 0;
}

/* Opening the module again in the same state (a second luaL_requiref, say) returns the first
 * instance: tensors share one metatable, whose methods must keep one ctx. */
#define MODULE_KEY "moongrad.core.module"

int luaopen_moongrad_core(lua_State *L) {
    if (lua_getfield(L, LUA_REGISTRYINDEX, MODULE_KEY) == LUA_TTABLE) return 1;
    lua_pop(L, 1);
    lua_newtable(L);
    const int module = lua_gettop(L);
    mg_ctx *ctx = (mg_ctx *)lua_newuserdatauv(L, sizeof(mg_ctx), LT_CTX_NUV);
    void *alloc_ud;
    lua_Alloc alloc = lua_getallocf(L, &alloc_ud);
    mg_ctx_init(ctx, alloc, alloc_ud);
    lua_createtable(L, 0, 1); /* the ctx's finalizer stops its worker threads when the state closes */
    lua_pushcfunction(L, ctx_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_newtable(L); /* the backward engine's work tables (autograd.c) */
    lua_setiuservalue(L, -2, LT_CTX_UV_ORDER);
    lt_push_node_metatable(L);
    lua_setiuservalue(L, -2, LT_CTX_UV_NODE_MT);
    lt_push_block_metatable(L);
    lua_newtable(L); /* coroutine -> grad mode (autograd.c), weak keys: dead coroutines drop out */
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_setiuservalue(L, -2, LT_CTX_UV_GRAD_MODES);
    lua_newtable(L); /* leaf -> its post-accumulate-grad hooks (autograd.c), weak keys */
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_setiuservalue(L, -2, LT_CTX_UV_HOOKS);
    lua_newtable(L); /* callbacks queued for the end of the running backward pass (autograd.c) */
    lua_setiuservalue(L, -2, LT_CTX_UV_CALLBACKS);
    const int ctx_idx = lua_gettop(L);
    lua_pushvalue(L, ctx_idx); /* for the embedding API's calls from outside the module's closures */
    lua_setfield(L, LUA_REGISTRYINDEX, LT_CTX_KEY);
    luaL_newmetatable(L, LT_TENSOR_MT);
    const int mt = lua_gettop(L);
    lua_newtable(L);
    const int methods = lua_gettop(L);

    const luaL_Reg *const method_lists[] = {lt_tensor_methods, lt_view_methods, lt_convert_methods,
                                            lt_binary_methods, lt_unary_methods, lt_reduce_methods,
                                            lt_linalg_methods, lt_index_methods, lt_random_methods,
                                            lt_autograd_methods, lt_sort_methods};
    const luaL_Reg *const function_lists[] = {settings_functions, lt_tensor_functions,
                                              lt_convert_functions, lt_binary_functions,
                                              lt_unary_functions, lt_reduce_functions,
                                              lt_linalg_functions, lt_index_functions,
                                              lt_random_functions, lt_factory_functions,
                                              lt_autograd_functions, lt_optim_functions,
                                              lt_serialize_functions, lt_debug_functions};
    const luaL_Reg *const meta_lists[] = {lt_tensor_metamethods, lt_binary_metamethods,
                                          lt_unary_metamethods};
    for (size_t i = 0; i < sizeof method_lists / sizeof *method_lists; i++) {
        register_list(L, methods, method_lists[i], ctx_idx, mt, methods);
        register_list(L, module, method_lists[i], ctx_idx, mt, methods);
    }
    for (size_t i = 0; i < sizeof function_lists / sizeof *function_lists; i++)
        register_list(L, module, function_lists[i], ctx_idx, mt, methods);
    for (size_t i = 0; i < sizeof meta_lists / sizeof *meta_lists; i++)
        register_list(L, mt, meta_lists[i], ctx_idx, mt, methods);

    /* mg.F: the functional kernels (functional.c) */
    lua_newtable(L);
    register_list(L, lua_gettop(L), lt_functional_functions, ctx_idx, mt, methods);
    register_list(L, lua_gettop(L), lt_conv_functions, ctx_idx, mt, methods);
    lua_setfield(L, module, "F");

    /* the Lua layer adds methods written in Lua to this table */
    lua_pushvalue(L, methods);
    lua_setfield(L, module, "_methods");
    lua_settop(L, module);
    lua_pushvalue(L, module);
    lua_setfield(L, LUA_REGISTRYINDEX, MODULE_KEY);
    return 1;
}
