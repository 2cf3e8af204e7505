/*
 * index.c (binding): index_select, masked_select, nonzero, gather, scatter_ / scatter, and the
 * joins: mg.cat, mg.stack, split, chunk, unbind.
 *
 * Index arguments are an int64 tensor or a Lua list of integers, 1-based (the core checks their
 * range); masks are a bool tensor or a Lua list of booleans. split / chunk / unbind are views
 * (mg_view_narrow / mg_view_select), cat / stack copy each input into a view of the output, so
 * any strides and any mix of dtypes (promoted) work.
 */
#include <stdio.h>
#include <string.h>

#include "../ops/index.h"
#include "../ops/ops.h"
#include "../ops/shape.h"
#include "bind.h"

/* Records the result at the top of the stack as made by shape op `op` from the tensor at 1 and the
 * index or mask tensor at `other` (never differentiated), with iarg[0] = a0. */
static int record2(lua_State *L, int op, int other, int64_t a0) {
    const int inputs[2] = {1, lua_absindex(L, other)};
    if (lt_grad_needed(L, 1, inputs)) {
        mg_node *n = lt_record(L, -1, MG_FAM_INDEX, op, 2, inputs, 0, NULL);
        n->iarg[0] = a0;
    }
    return 1;
}

/* ================================================================ arguments */

/* The index argument at arg as an int64 tensor: the tensor itself, or a new 1-D one made from a
 * Lua list (pushed). Float and bool tensors are refused with their dtype named. */
static const mg_tensor *index_arg(lua_State *L, int arg) {
    const mg_tensor *t = lt_test(L, arg);
    if (t) {
        if (t->dtype != MG_INT64)
            lt_argerror(L, arg, "indices must be an int64 tensor or a list of integers, got a %s tensor",
                        mg_dtype_name((mg_dtype)t->dtype));
        return lt_check(L, arg);
    }
    if (lua_type(L, arg) != LUA_TTABLE) luaL_typeerror(L, arg, "int64 tensor or list of integers");
    return lt_push_int_list(L, arg, "indices", "an integer");
}

/* The mask argument at arg as a bool tensor: the tensor itself, or a new 1-D one made from a Lua
 * list of booleans (pushed). Returns its stack index through *at. */
static const mg_tensor *mask_arg(lua_State *L, int arg, int *at) {
    const mg_tensor *t = lt_test(L, arg);
    *at = arg;
    if (t) {
        if (t->dtype != MG_BOOL)
            lt_argerror(L, arg, "mask must be a bool tensor or a list of booleans, got a %s tensor",
                        mg_dtype_name((mg_dtype)t->dtype));
        return lt_check(L, arg);
    }
    if (lua_type(L, arg) != LUA_TTABLE) luaL_typeerror(L, arg, "bool tensor or list of booleans");
    const int64_t n = (int64_t)lua_rawlen(L, arg);
    mg_tensor *mask = lt_push_new(L, MG_BOOL, 1, &n);
    bool *p = (bool *)mg_tensor_data(mask);
    for (int64_t i = 0; i < n; i++) {
        if (lua_rawgeti(L, arg, (lua_Integer)i + 1) != LUA_TBOOLEAN)
            lt_argerror(L, arg, "mask[%I] is a %s, expected a boolean", (lua_Integer)i + 1,
                        luaL_typename(L, -1));
        p[i] = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    *at = lua_gettop(L);
    return mask;
}

/* ================================================================ selecting */

/* t:index_select(dim, idx): the entries idx names along dim, in idx's order (repeats allowed). */
static int l_index_select(lua_State *L) {
    lua_settop(L, 3);
    const mg_tensor *t = lt_check(L, 1);
    if (t->ndim == 0) return luaL_argerror(L, 1, "index_select() cannot be applied to a 0-d tensor");
    const int dim = lt_check_dim(L, 2, t->ndim);
    const mg_tensor *idx = index_arg(L, 3);
    const int idx_at = lua_gettop(L);
    if (idx->ndim > 1)
        return lt_argerror(L, 3, "indices must be 0-d or 1-D, got shape %s",
                           lt_push_shape(L, idx->ndim, idx->size));
    int64_t size[MG_MAX_DIMS];
    memcpy(size, t->size, sizeof(int64_t) * t->ndim);
    size[dim] = idx->numel;
    mg_tensor *out = lt_push_new(L, (mg_dtype)t->dtype, t->ndim, size);
    LT_TRY(L, 1, mg_index_select(lt_ctx(L), out, t, dim, idx));
    return record2(L, MG_INDEX_SELECT, idx_at, dim);
}

/* Pushes a view of the tensor at idx expanded to shape (ndim, size). */
static mg_tensor *push_expanded(lua_State *L, int idx, int ndim, const int64_t *size) {
    const mg_tensor *t = lt_check(L, idx);
    mg_tensor *v = lt_push_view(L, idx, ndim);
    memcpy(v->size, size, sizeof(int64_t) * ndim);
    if (mg_view_expand(lt_ctx(L), v, t) != MG_OK) lt_raise(L, 1);
    return v;
}

/* t:masked_select(mask): the elements where mask (broadcast with t) is true, as a 1-D tensor. */
static int l_masked_select(lua_State *L) {
    lua_settop(L, 2);
    mg_ctx *ctx = lt_ctx(L);
    const mg_tensor *t = lt_check(L, 1);
    int mask_at;
    const mg_tensor *mask = mask_arg(L, 2, &mask_at);
    int ndim;
    int64_t size[MG_MAX_DIMS];
    LT_TRY(L, 1, mg_broadcast_shape(ctx, &ndim, size, t->ndim, t->size, mask->ndim, mask->size));
    const mg_tensor *te = push_expanded(L, 1, ndim, size);
    const mg_tensor *me = push_expanded(L, mask_at, ndim, size);
    int64_t n;
    LT_TRY(L, 1, mg_count_nonzero(ctx, me, &n));
    mg_tensor *out = lt_push_new(L, (mg_dtype)t->dtype, 1, &n);
    if (n > 0) LT_TRY(L, 1, mg_masked_select(ctx, out, te, me)); /* none: no walk of a huge mask */
    return record2(L, MG_INDEX_MASKED_SELECT, mask_at, 0);
}

/* t:nonzero(): the 1-based coordinates of the nonzero elements, int64 of shape {n, t:dim()}. */
static int l_nonzero(lua_State *L) {
    const mg_tensor *t = lt_check(L, 1);
    int64_t size[2] = {0, t->ndim};
    LT_TRY(L, 1, mg_count_nonzero(lt_ctx(L), t, &size[0]));
    mg_tensor *out = lt_push_new(L, MG_INT64, 2, size);
    LT_TRY(L, 1, mg_nonzero(lt_ctx(L), out, t));
    return 1;
}

/* Checks that idx (arg 3) fits t for gather / scatter: same ndim, and sizes no larger than t's
 * outside dim (PyTorch's rule). */
static void check_gather_index(lua_State *L, const mg_tensor *t, int dim, const mg_tensor *idx) {
    if (idx->ndim != t->ndim)
        lt_argerror(L, 3, "indices of shape %s must have as many dimensions as the tensor (shape %s)",
                    lt_push_shape(L, idx->ndim, idx->size), lt_push_shape(L, t->ndim, t->size));
    for (int d = 0; d < t->ndim; d++)
        if (d != dim && idx->size[d] > t->size[d])
            lt_argerror(L, 3, "indices of shape %s are larger than the tensor's shape %s at dimension %d",
                        lt_push_shape(L, idx->ndim, idx->size), lt_push_shape(L, t->ndim, t->size), d + 1);
}

/* t:gather(dim, idx): out[i][j] = t[i][idx[i][j]] (dim = 2), out has idx's shape. */
static int l_gather(lua_State *L) {
    lua_settop(L, 3);
    const mg_tensor *t = lt_check(L, 1);
    const int dim = lt_check_dim(L, 2, t->ndim);
    const mg_tensor *idx = index_arg(L, 3);
    const int idx_at = lua_gettop(L);
    check_gather_index(L, t, dim, idx);
    mg_tensor *out = lt_push_new(L, (mg_dtype)t->dtype, idx->ndim, idx->size);
    LT_TRY(L, 1, mg_gather(lt_ctx(L), out, t, dim, idx));
    return record2(L, MG_INDEX_GATHER, idx_at, dim);
}

/* t:scatter_(dim, idx, src): t[i][idx[i][j]] = src[i][j] (dim = 2); src a tensor or a number.
 * Returns t. Every index is checked before t is written. */
static int l_scatter_(lua_State *L) {
    lua_settop(L, 4);
    mg_tensor *t = lt_inplace(L, 1);
    const int dim = lt_check_dim(L, 2, t->ndim);
    const mg_tensor *idx = index_arg(L, 3);
    check_gather_index(L, t, dim, idx);
    mg_scalar sc;
    const mg_tensor *src = lt_operand(L, 4, (mg_dtype)t->dtype, &sc);
    if (src->ndim != 0) {
        bool fits = src->ndim == idx->ndim;
        for (int d = 0; fits && d < idx->ndim; d++) fits = src->size[d] >= idx->size[d];
        if (!fits)
            return lt_argerror(L, 4, "source of shape %s is smaller than the indices' shape %s",
                               lt_push_shape(L, src->ndim, src->size), lt_push_shape(L, idx->ndim, idx->size));
    }
    LT_TRY(L, 1, mg_scatter(lt_ctx(L), t, dim, idx, src));
    lt_written(t);
    lua_settop(L, 1);
    return 1;
}

/* t:scatter(dim, idx, src): scatter_ on a copy of t. */
static int l_scatter(lua_State *L) {
    lua_settop(L, 4);
    const mg_tensor *t = lt_check(L, 1);
    mg_tensor *copy = lt_push_new(L, (mg_dtype)t->dtype, t->ndim, t->size);
    mg_copy(lt_ctx(L), copy, t);
    lua_replace(L, 1);
    return l_scatter_(L);
}

/* ================================================================ joining: cat, stack */

/* list[i] (1-based) of the table at 1, checked to be a live tensor. Borrowed: the list holds it. */
static const mg_tensor *list_tensor(lua_State *L, lua_Integer i) {
    lua_rawgeti(L, 1, i);
    const mg_tensor *t = lt_test(L, -1);
    if (!t) lt_argerror(L, 1, "list[%I] is a %s, expected a tensor", i, luaL_typename(L, -1));
    if (!lt_usable(t))
        lt_argerror(L, 1, "list[%I] was used after %s (by <close>)", i,
                    lt_storage_usable(t->storage) ? "it was closed" : "its storage was released");
    lua_pop(L, 1);
    return t;
}

/* Records the join at the top of the stack (cat or stack along dim) with every piece of the list
 * at 1 as an input, when one of them requires grad. */
static void record_join(lua_State *L, int op, lua_Integer n, int dim) {
    if (!lt_grad_enabled(L)) return;
    bool needed = false;
    for (lua_Integer i = 1; i <= n && !needed; i++) needed = list_tensor(L, i)->requires_grad;
    if (!needed) return;
    if (n > 65535) luaL_argerror(L, 1, "too many tensors to join with autograd (at most 65535)");
    const int out = lua_gettop(L);
    luaL_checkstack(L, (int)n + 8, "too many tensors to join");
    int *inputs = (int *)lua_newuserdatauv(L, sizeof(int) * (size_t)n, 0); /* freed by the collector */
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, i);
        inputs[i - 1] = lua_gettop(L);
    }
    mg_node *node = lt_record(L, out, MG_FAM_INDEX, op, (int)n, inputs, 0, NULL);
    node->iarg[0] = dim;
    lua_settop(L, out);
}

static lua_Integer check_list(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    const lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
    if (n == 0) luaL_argerror(L, 1, "expected a non-empty list of tensors");
    return n;
}

/* PyTorch still lets a 1-D empty tensor join anything in cat (it is skipped). */
static bool skipped_in_cat(const mg_tensor *t) { return t->ndim == 1 && t->size[0] == 0; }

static void raise_mismatch(lua_State *L, const mg_tensor *t, lua_Integer i, const mg_tensor *ref,
                           lua_Integer r, const char *where) {
    lt_argerror(L, 1, "shape %s of list[%I] does not match shape %s of list[%I]%s",
                lt_push_shape(L, t->ndim, t->size), i, lt_push_shape(L, ref->ndim, ref->size), r, where);
}

/* mg.cat(list [, dim = 1]): joins along an existing dim; all shapes equal outside it. */
static int l_cat(lua_State *L) {
    mg_ctx *ctx = lt_ctx(L);
    const lua_Integer n = check_list(L);
    lua_Integer r = 1; /* the reference: the first tensor that is not skipped */
    const mg_tensor *ref = list_tensor(L, 1);
    for (lua_Integer i = 1; i <= n && skipped_in_cat(ref); i++) {
        const mg_tensor *t = list_tensor(L, i);
        if (!skipped_in_cat(t)) ref = t, r = i;
    }
    if (ref->ndim == 0)
        return lt_argerror(L, 1, "list[%I] is 0-d and cannot be concatenated (use mg.stack)", r);
    const int dim = lt_opt_dim(L, 2, ref->ndim, 0);
    int64_t size[MG_MAX_DIMS];
    memcpy(size, ref->size, sizeof(int64_t) * ref->ndim);
    size[dim] = 0;
    mg_dtype dt = (mg_dtype)ref->dtype;
    char where[64];
    snprintf(where, sizeof where, " outside dimension %d", dim + 1);
    for (lua_Integer i = 1; i <= n; i++) {
        const mg_tensor *t = list_tensor(L, i);
        dt = mg_promote(dt, (mg_dtype)t->dtype);
        if (skipped_in_cat(t) && !skipped_in_cat(ref)) continue;
        bool same = t->ndim == ref->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = d == dim || t->size[d] == ref->size[d];
        if (!same) raise_mismatch(L, t, i, ref, r, where);
        if (size[dim] > MG_MAX_NUMEL - t->size[dim]) return luaL_argerror(L, 1, "the result is too large");
        size[dim] += t->size[dim];
    }
    mg_tensor *out = lt_push_new(L, dt, ref->ndim, size);
    int64_t start = 0;
    for (lua_Integer i = 1; i <= n; i++) {
        const mg_tensor *t = list_tensor(L, i);
        if (skipped_in_cat(t) && !skipped_in_cat(ref)) continue;
        LT_TRY(L, 1, mg_cat_piece(ctx, out, t, dim, start));
        start += t->size[dim];
    }
    record_join(L, MG_INDEX_CAT, n, dim);
    return 1;
}

/* mg.stack(list [, dim = 1]): joins along a new dim; all shapes equal. */
static int l_stack(lua_State *L) {
    mg_ctx *ctx = lt_ctx(L);
    const lua_Integer n = check_list(L);
    const mg_tensor *ref = list_tensor(L, 1);
    if (ref->ndim >= MG_MAX_DIMS) return luaL_argerror(L, 1, "too many dimensions (at most 16)");
    const int dim = lt_opt_dim(L, 2, ref->ndim + 1, 0);
    mg_dtype dt = (mg_dtype)ref->dtype;
    for (lua_Integer i = 2; i <= n; i++) {
        const mg_tensor *t = list_tensor(L, i);
        dt = mg_promote(dt, (mg_dtype)t->dtype);
        if (!mg_same_shape(t, ref)) raise_mismatch(L, t, i, ref, 1, "");
    }
    int64_t size[MG_MAX_DIMS];
    for (int d = 0, j = 0; d <= ref->ndim; d++) size[d] = d == dim ? (int64_t)n : ref->size[j++];
    mg_tensor *out = lt_push_new(L, dt, ref->ndim + 1, size);
    for (lua_Integer i = 1; i <= n; i++) LT_TRY(L, 1, mg_stack_piece(ctx, out, list_tensor(L, i), dim, i - 1));
    record_join(L, MG_INDEX_STACK, n, dim);
    return 1;
}

/* ================================================================ splitting: views */

/* Pushes t (at 1) narrowed to [start, start + len) along dim. */
static void push_piece(lua_State *L, const mg_tensor *t, int dim, int64_t start, int64_t len) {
    mg_tensor *v = lt_push_view(L, 1, t->ndim);
    if (mg_view_narrow(lt_ctx(L), v, t, dim, start, len) != MG_OK) lt_raise(L, 1);
    lt_record_view(L, MG_SHAPE_NARROW, dim, start);
}

/* Pushes a list of pieces of `each` along dim (the last one smaller), `count` pieces. */
static int push_even_pieces(lua_State *L, const mg_tensor *t, int dim, int64_t each, int64_t count) {
    lua_createtable(L, count < 1 << 20 ? (int)count : 0, 0);
    const int64_t n = t->size[dim];
    for (int64_t k = 0; k < count; k++) {
        const int64_t start = k * each < n ? k * each : n;
        push_piece(L, t, dim, start, n - start < each ? n - start : each);
        lua_rawseti(L, -2, (lua_Integer)k + 1);
    }
    return 1;
}

static const mg_tensor *check_splittable(lua_State *L, const char *what) {
    const mg_tensor *t = lt_check(L, 1);
    if (t->ndim == 0) lt_argerror(L, 1, "%s() cannot be applied to a 0-d tensor", what);
    return t;
}

/* t:split(size [, dim = 1]) or t:split({sizes} [, dim]): a list of views. */
static int l_split(lua_State *L) {
    lua_settop(L, 3);
    const mg_tensor *t = check_splittable(L, "split");
    const int dim = lt_opt_dim(L, 3, t->ndim, 0);
    const int64_t n = t->size[dim];
    if (lua_type(L, 2) != LUA_TTABLE) {
        const lua_Integer each = luaL_checkinteger(L, 2);
        if (each <= 0 && !(each == 0 && n == 0))
            return lt_argerror(L, 2, "split size must be positive, got %I", each);
        /* ceil(n / each) without n + each - 1, which overflows for a huge size (one piece, then) */
        return push_even_pieces(L, t, dim, each, n == 0 ? 1 : n / each + (n % each != 0));
    }
    const lua_Integer count = (lua_Integer)lua_rawlen(L, 2);
    int64_t sum = 0;
    for (lua_Integer k = 1; k <= count; k++) {
        lua_rawgeti(L, 2, k);
        int isint;
        const lua_Integer s = lua_tointegerx(L, -1, &isint);
        if (!isint || s < 0 || lua_type(L, -1) != LUA_TNUMBER)
            return lt_argerror(L, 2, "split sizes[%I] is %s, expected a size (an integer >= 0)", k,
                               luaL_tolstring(L, -1, NULL));
        lua_pop(L, 1);
        sum += s < n + 1 ? s : n + 1; /* clamped: an oversized entry cannot overflow the sum */
    }
    if (sum != n)
        return lt_argerror(L, 2, "split sizes must sum to %I (the size of dimension %d), got %I",
                           (lua_Integer)n, dim + 1, (lua_Integer)sum);
    lua_createtable(L, (int)count, 0);
    int64_t start = 0;
    for (lua_Integer k = 1; k <= count; k++) {
        lua_rawgeti(L, 2, k);
        const int64_t s = lua_tointeger(L, -1);
        lua_pop(L, 1);
        push_piece(L, t, dim, start, s);
        lua_rawseti(L, -2, k);
        start += s;
    }
    return 1;
}

/* t:chunk(n [, dim = 1]): at most n views of ceil(size / n) (PyTorch: may give fewer than n). */
static int l_chunk(lua_State *L) {
    lua_settop(L, 3);
    const mg_tensor *t = check_splittable(L, "chunk");
    const lua_Integer chunks = luaL_checkinteger(L, 2);
    if (chunks <= 0) return lt_argerror(L, 2, "number of chunks must be positive, got %I", chunks);
    const int dim = lt_opt_dim(L, 3, t->ndim, 0);
    const int64_t n = t->size[dim];
    /* an empty dim gives `chunks` empty pieces (PyTorch): 2^62 of them filled the memory (fuzz.lua) */
    if (n == 0 && chunks > 1000000)
        return lt_argerror(L, 2, "at most 1000000 chunks of an empty dimension, got %I", chunks);
    if (n == 0) return push_even_pieces(L, t, dim, 0, chunks);
    const int64_t each = n / chunks + (n % chunks != 0);
    return push_even_pieces(L, t, dim, each, n / each + (n % each != 0));
}

/* t:unbind([dim = 1]): every slice along dim, as multiple return values (views). */
static int l_unbind(lua_State *L) {
    lua_settop(L, 2);
    const mg_tensor *t = check_splittable(L, "unbind");
    const int dim = lt_opt_dim(L, 2, t->ndim, 0);
    const int64_t n = t->size[dim];
    if (n > 1000000 || !lua_checkstack(L, (int)n + 8)) /* + room for recording the last one */
        return luaL_argerror(L, 1, "too many slices to return as values (use split)");
    for (int64_t i = 0; i < n; i++) {
        mg_tensor *v = lt_push_view(L, 1, t->ndim - 1);
        mg_view_select(lt_ctx(L), v, t, dim, i);
        lt_record_view(L, MG_SHAPE_SELECT, dim, i);
    }
    return (int)n;
}

/* ================================================================ registration */

const luaL_Reg lt_index_methods[] = {
    {"index_select", l_index_select}, {"masked_select", l_masked_select}, {"nonzero", l_nonzero},
    {"gather", l_gather}, {"scatter_", l_scatter_}, {"scatter", l_scatter},
    {"split", l_split}, {"chunk", l_chunk}, {"unbind", l_unbind},
    {NULL, NULL}};

const luaL_Reg lt_index_functions[] = {{"cat", l_cat}, {"stack", l_stack}, {NULL, NULL}};
