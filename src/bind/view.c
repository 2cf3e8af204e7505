/*
 * view.c (binding): views, tensors that share another's storage with their own geometry: view
 * reshape flatten transpose t permute unsqueeze squeeze expand expand_as narrow select detach; and
 * t[i] read and written (the __index / __newindex of tensor.c hand integer keys here).
 *
 * A view records a shape node (src/ops/shape.h) when its base requires grad, so gradients flow
 * back through it; reshape and flatten copy (and record the copy) when the strides cannot be
 * viewed, as PyTorch does.
 */
#include <string.h>

#include "../ops/ops.h"
#include "../ops/shape.h"
#include "bind.h"

int lt_record_view(lua_State *L, int op, int64_t a0, int64_t a1) {
    const int in = 1;
    if (lt_grad_needed(L, 1, &in)) {
        mg_node *n = lt_record(L, -1, MG_FAM_SHAPE, op, 1, &in, 0, NULL);
        n->iarg[0] = a0;
        n->iarg[1] = a1;
    }
    return 1;
}

/* ================================================================ views */

/* Reads integers (negative allowed: -1 in view / expand) given as varargs from arg or as one
 * table at arg; errors name arg. Returns the count. */
static int read_sizes(lua_State *L, int arg, int64_t *size) {
    int ndim = 0;
    if (lua_type(L, arg) == LUA_TTABLE) {
        const lua_Integer n = (lua_Integer)lua_rawlen(L, arg);
        if (n > MG_MAX_DIMS) return luaL_argerror(L, arg, "too many dimensions (at most 16)");
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, arg, i);
            int isint;
            size[ndim++] = lua_tointegerx(L, -1, &isint);
            if (!isint || lua_type(L, -1) != LUA_TNUMBER)
                return lt_argerror(L, arg, "size at position %I is not an integer", i);
            lua_pop(L, 1);
        }
    } else {
        const int top = lua_gettop(L);
        if (top - arg + 1 > MG_MAX_DIMS) return luaL_argerror(L, arg, "too many dimensions (at most 16)");
        for (int i = arg; i <= top; i++) size[ndim++] = luaL_checkinteger(L, i);
    }
    return ndim;
}

/* Pushes the tensor at 1 viewed as `size` (one entry may be -1). With allow_copy (reshape,
 * flatten) a tensor whose strides cannot be viewed so is copied first, as PyTorch does; the
 * error of the second attempt is the real one (a size mismatch). */
static int push_viewed(lua_State *L, int ndim, const int64_t *size, int allow_copy) {
    mg_tensor *t = lt_check(L, 1);
    mg_tensor *v = lt_push_view(L, 1, ndim);
    memcpy(v->size, size, sizeof(int64_t) * ndim);
    if (mg_view_shape(lt_ctx(L), v, t) == MG_OK) return lt_record_view(L, MG_SHAPE_RESHAPE, 0, 0);
    if (!allow_copy || mg_is_contiguous(t)) return lt_raise(L, 1);
    lua_pop(L, 1);
    lt_push_contiguous(L, 1);
    lua_replace(L, 1);
    t = lt_check(L, 1);
    v = lt_push_view(L, 1, ndim);
    memcpy(v->size, size, sizeof(int64_t) * ndim);
    LT_TRY(L, 1, mg_view_shape(lt_ctx(L), v, t));
    return lt_record_view(L, MG_SHAPE_RESHAPE, 0, 0);
}

/* view(): never copies (PyTorch's stride rule; the error suggests reshape). */
static int l_view(lua_State *L) {
    lt_check(L, 1);
    int64_t size[MG_MAX_DIMS];
    const int ndim = read_sizes(L, 2, size);
    return push_viewed(L, ndim, size, 0);
}

/* reshape: a view when the strides allow it, else a copy (as PyTorch). */
static int l_reshape(lua_State *L) {
    lt_check(L, 1);
    int64_t size[MG_MAX_DIMS];
    const int ndim = read_sizes(L, 2, size);
    lua_settop(L, 1);
    return push_viewed(L, ndim, size, 1);
}

static int record_transpose(lua_State *L, int ndim, int d0, int d1) {
    int perm[MG_MAX_DIMS];
    for (int i = 0; i < ndim; i++) perm[i] = i;
    perm[d0] = d1, perm[d1] = d0;
    return lt_record_view(L, MG_SHAPE_PERMUTE, mg_pack_perm(perm, ndim), 0);
}

static int l_transpose(lua_State *L) {
    mg_tensor *t = lt_check(L, 1);
    const int d0 = lt_check_dim(L, 2, t->ndim), d1 = lt_check_dim(L, 3, t->ndim);
    mg_tensor *v = lt_push_view(L, 1, t->ndim);
    mg_view_transpose(lt_ctx(L), v, t, d0, d1);
    return record_transpose(L, t->ndim, d0, d1);
}

static int l_t(lua_State *L) {
    mg_tensor *t = lt_check(L, 1);
    if (t->ndim > 2)
        return lt_argerror(L, 1, "t() expects a tensor of at most 2 dimensions, got %d (use transpose)",
                           t->ndim);
    mg_tensor *v = lt_push_view(L, 1, t->ndim);
    mg_view_transpose(lt_ctx(L), v, t, 0, t->ndim == 2 ? 1 : 0);
    return record_transpose(L, t->ndim, 0, t->ndim == 2 ? 1 : 0);
}

static int l_permute(lua_State *L) {
    mg_tensor *t = lt_check(L, 1);
    int perm[MG_MAX_DIMS];
    const int table = lua_type(L, 2) == LUA_TTABLE;
    const int n = table ? (int)lua_rawlen(L, 2) : lua_gettop(L) - 1;
    if (n != t->ndim)
        return lt_argerror(L, 2, "permute needs %d dims for a tensor of %d dimensions, got %d",
                           t->ndim, t->ndim, n);
    for (int i = 0; i < n; i++) {
        if (table) {
            lua_rawgeti(L, 2, i + 1);
            int out, isint;
            const lua_Integer d = lua_tointegerx(L, -1, &isint);
            if (!isint || mg_wrap_dim(lt_ctx(L), 1, d, t->ndim, &out) != MG_OK)
                return lt_argerror(L, 2, "dims[%d] is %s: %s", i + 1, luaL_tolstring(L, -1, NULL),
                                   isint ? lt_ctx(L)->err : "expected an integer dimension");
            perm[i] = out;
            lua_pop(L, 1);
        } else {
            perm[i] = lt_check_dim(L, i + 2, t->ndim);
        }
    }
    mg_tensor *v = lt_push_view(L, 1, t->ndim);
    LT_TRY(L, 1, mg_view_permute(lt_ctx(L), v, t, perm));
    return lt_record_view(L, MG_SHAPE_PERMUTE, mg_pack_perm(perm, t->ndim), 0);
}

static int l_unsqueeze(lua_State *L) {
    mg_tensor *t = lt_check(L, 1);
    const int dim = lt_check_dim(L, 2, t->ndim + 1);
    if (t->ndim >= MG_MAX_DIMS) return luaL_argerror(L, 1, "too many dimensions (at most 16)");
    mg_tensor *v = lt_push_view(L, 1, t->ndim + 1);
    mg_view_unsqueeze(v, t, dim);
    return lt_record_view(L, MG_SHAPE_RESHAPE, 0, 0);
}

static int l_squeeze(lua_State *L) {
    mg_tensor *t = lt_check(L, 1);
    const int dim = lua_isnoneornil(L, 2) ? -1 : lt_check_dim(L, 2, t->ndim);
    if (t->ndim == 0) {
        lua_pushvalue(L, 1);
        return 1;
    }
    mg_tensor *v = lt_push_view(L, 1, t->ndim); /* room for all dims; squeeze sets the count */
    mg_view_squeeze(v, t, dim);
    return lt_record_view(L, MG_SHAPE_RESHAPE, 0, 0);
}

static int l_expand(lua_State *L) {
    mg_tensor *t = lt_check(L, 1);
    int64_t size[MG_MAX_DIMS];
    int ndim = 0;
    if (lt_test(L, 2)) { /* expand_as */
        const mg_tensor *o = lt_check(L, 2);
        ndim = o->ndim;
        memcpy(size, o->size, sizeof(int64_t) * ndim);
    } else {
        ndim = read_sizes(L, 2, size);
    }
    mg_tensor *v = lt_push_view(L, 1, ndim);
    memcpy(v->size, size, sizeof(int64_t) * ndim);
    LT_TRY(L, 1, mg_view_expand(lt_ctx(L), v, t));
    return lt_record_view(L, MG_SHAPE_EXPAND, 0, 0);
}

static int l_narrow(lua_State *L) {
    mg_tensor *t = lt_check(L, 1);
    if (t->ndim == 0) return luaL_argerror(L, 1, "narrow() cannot be applied to a 0-d tensor");
    const int dim = lt_check_dim(L, 2, t->ndim);
    lua_Integer start = luaL_checkinteger(L, 3);
    const lua_Integer length = luaL_checkinteger(L, 4);
    const int64_t n = t->size[dim];
    if (start == 0 || start > n + 1 || start < -n)
        return lt_argerror(L, 3, "start %I out of range for dimension %d of size %I",
                           start, dim + 1, (lua_Integer)n);
    start = start > 0 ? start - 1 : start + n;
    mg_tensor *v = lt_push_view(L, 1, t->ndim);
    LT_TRY(L, 2, mg_view_narrow(lt_ctx(L), v, t, dim, start, length));
    return lt_record_view(L, MG_SHAPE_NARROW, dim, start);
}

/* Pushes the slice i (0-based) along dim of t (at 1), a view of one dim fewer. */
static int push_select(lua_State *L, const mg_tensor *t, int dim, int64_t i) {
    mg_tensor *v = lt_push_view(L, 1, t->ndim - 1);
    mg_view_select(lt_ctx(L), v, t, dim, i);
    return lt_record_view(L, MG_SHAPE_SELECT, dim, i);
}

static int l_select(lua_State *L) {
    mg_tensor *t = lt_check(L, 1);
    if (t->ndim == 0) return luaL_argerror(L, 1, "select() cannot be applied to a 0-d tensor");
    const int dim = lt_check_dim(L, 2, t->ndim);
    return push_select(L, t, dim, lt_check_index(L, 3, t->size[dim]));
}

/* flatten([start_dim = 1 [, end_dim = -1]]): dims start..end merged; a view when the strides
 * allow it, else a copy (as PyTorch). A 0-d tensor becomes 1-D. */
static int l_flatten(lua_State *L) {
    mg_tensor *t = lt_check(L, 1);
    int64_t size[MG_MAX_DIMS];
    int nd = 0;
    if (t->ndim == 0) {
        size[nd++] = 1;
    } else {
        const int s = lt_opt_dim(L, 2, t->ndim, 0), e = lt_opt_dim(L, 3, t->ndim, t->ndim - 1);
        if (s > e) return luaL_argerror(L, 3, "end_dim comes before start_dim");
        for (int i = 0; i < s; i++) size[nd++] = t->size[i];
        int64_t m = 1;
        for (int i = s; i <= e; i++) m *= t->size[i]; /* no overflow: numel <= 2^62 */
        size[nd++] = m;
        for (int i = e + 1; i < t->ndim; i++) size[nd++] = t->size[i];
    }
    lua_settop(L, 1);
    return push_viewed(L, nd, size, 1);
}

/* detach(): the same data, without history and without requires_grad */
static int l_detach(lua_State *L) {
    mg_tensor *t = lt_check(L, 1);
    mg_tensor *v = lt_push_view(L, 1, t->ndim);
    memcpy(v->size, t->size, sizeof(int64_t) * t->ndim);
    memcpy(v->stride, t->stride, sizeof(int64_t) * t->ndim);
    v->numel = t->numel;
    return 1;
}

/* ================================================================ t[i], t[i] = v */

int lt_index_read(lua_State *L, mg_tensor *t) {
    if (t->ndim == 0) return luaL_error(L, "'index': a 0-d tensor cannot be indexed (use t:item())");
    const int64_t i = lt_check_index(L, 2, t->size[0]);
    /* an element of a 1-D tensor is a number, unless autograd must see the read: then a 0-d view
     * (the book's w, b = params: 0-d tensors) */
    if (t->ndim == 1 && !(t->requires_grad && lt_grad_enabled(L))) {
        const int64_t item = (int64_t)mg_dtype_size((mg_dtype)t->dtype);
        lt_push_element(L, (mg_dtype)t->dtype, (const char *)mg_tensor_data(t) + i * t->stride[0] * item);
        return 1;
    }
    return push_select(L, t, 0, i);
}

int lt_index_write(lua_State *L, mg_tensor *t) {
    mg_ctx *ctx = lt_ctx(L);
    if (t->ndim == 0) return luaL_error(L, "'newindex': a 0-d tensor cannot be indexed (use t:fill_(v))");
    const int64_t i = lt_check_index(L, 2, t->size[0]);
    lt_inplace(L, 1);
    lt_inplace_source(L, 3);
    mg_tensor *row = lt_push_view(L, 1, t->ndim - 1);
    mg_view_select(ctx, row, t, 0, i);
    mg_scalar sc;
    const mg_tensor *src = lt_operand(L, 3, (mg_dtype)t->dtype, &sc);
    if (src->storage == t->storage) { /* may overlap the row: read from a copy */
        mg_tensor *tmp = lt_push_new(L, (mg_dtype)src->dtype, src->ndim, src->size);
        mg_copy(ctx, tmp, src);
        src = tmp;
    }
    if (!mg_broadcasts_to(src, row))
        return luaL_error(L, "'newindex': a value of shape %s cannot be assigned to t[%I] of shape %s",
                          lt_push_shape(L, src->ndim, src->size), (lua_Integer)(i + 1),
                          lt_push_shape(L, row->ndim, row->size));
    mg_copy(ctx, row, src);
    lt_written(t);
    return 0;
}

/* ================================================================ registration */

int lt_reversed_dims(lua_State *L) {
    mg_tensor *t = lt_check(L, 1);
    int perm[MG_MAX_DIMS];
    for (int d = 0; d < t->ndim; d++) perm[d] = t->ndim - 1 - d;
    lua_settop(L, 1);
    mg_tensor *v = lt_push_view(L, 1, t->ndim);
    LT_TRY(L, 1, mg_view_permute(lt_ctx(L), v, t, perm));
    return lt_record_view(L, MG_SHAPE_PERMUTE, mg_pack_perm(perm, t->ndim), 0);
}

/* ================================================================ flip, tril, triu (copies) */

/* flip(dims): dims as varargs or one table, 1-based (negative from the end), each once */
static int l_flip(lua_State *L) {
    mg_tensor *t = lt_check(L, 1);
    const int table = lua_type(L, 2) == LUA_TTABLE;
    const int n = table ? (int)lua_rawlen(L, 2) : lua_gettop(L) - 1;
    if (n == 0 && !table) return luaL_argerror(L, 2, "dims expected (a dim or a list of dims)");
    uint32_t mask = 0;
    for (int i = 0; i < n; i++) {
        int d;
        if (table) {
            lua_rawgeti(L, 2, i + 1);
            int isint;
            const lua_Integer v = lua_tointegerx(L, -1, &isint);
            if (!isint || mg_wrap_dim(lt_ctx(L), 1, v, t->ndim, &d) != MG_OK)
                return lt_argerror(L, 2, "dims[%d] is %s: %s", i + 1, luaL_tolstring(L, -1, NULL),
                                   isint ? lt_ctx(L)->err : "expected an integer dimension");
            lua_pop(L, 1);
        } else {
            d = lt_check_dim(L, i + 2, t->ndim);
        }
        if (t->ndim == 0) continue;
        if ((mask >> d) & 1) return lt_argerror(L, table ? 2 : i + 2, "dim %d appears more than once", d + 1);
        mask |= 1u << d;
    }
    lua_settop(L, 1);
    mg_tensor *out = lt_push_new(L, (mg_dtype)t->dtype, t->ndim, t->size);
    LT_TRY(L, 1, mg_flip(lt_ctx(L), out, t, mask));
    return lt_record_view(L, MG_SHAPE_FLIP, mask, 0);
}

/* tril / triu([diagonal = 0]) of the last two dims */
static int tri(lua_State *L, int upper) {
    mg_tensor *t = lt_check(L, 1);
    const lua_Integer diag = luaL_optinteger(L, 2, 0);
    if (t->ndim < 2)
        return lt_argerror(L, 1, "expected a tensor of at least 2 dims (a matrix or a batch of them), got shape %s",
                           lt_push_shape(L, t->ndim, t->size));
    lua_settop(L, 1);
    mg_tensor *out = lt_push_new(L, (mg_dtype)t->dtype, t->ndim, t->size);
    LT_TRY(L, 1, mg_tri(lt_ctx(L), out, t, (int64_t)diag, upper));
    return lt_record_view(L, upper ? MG_SHAPE_TRIU : MG_SHAPE_TRIL, (int64_t)diag, 0);
}
static int l_tril(lua_State *L) { return tri(L, 0); }
static int l_triu(lua_State *L) { return tri(L, 1); }

const luaL_Reg lt_view_methods[] = {
    {"flip", l_flip}, {"tril", l_tril}, {"triu", l_triu},
    {"view", l_view}, {"reshape", l_reshape}, {"flatten", l_flatten}, {"transpose", l_transpose},
    {"t", l_t}, {"permute", l_permute}, {"unsqueeze", l_unsqueeze}, {"squeeze", l_squeeze},
    {"expand", l_expand}, {"expand_as", l_expand}, {"narrow", l_narrow}, {"select", l_select},
    {"detach", l_detach},
    {NULL, NULL}};
