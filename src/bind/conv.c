/*
 * conv.c (binding): the layers of mg.F from chapters 7-8 (src/ops/conv.h): conv1d, conv2d,
 * max_pool2d, avg_pool2d, adaptive_avg_pool2d, batch_norm, layer_norm, embedding. Each checks its
 * arguments as PyTorch does (batched and unbatched inputs), allocates the result, calls the kernel
 * on 4-d (N,C,H,W) views (a conv1d is a conv2d of height 1, an unbatched input a batch of one),
 * and records a node in family MG_FAM_CONV. Window options (kernel_size, stride, padding, dilation)
 * are a number or a {h, w} list (conv1d: a number or {l}); a convolution's padding may also be
 * "valid" (none) or "same" (the output as large as the input, stride 1: dilation (k - 1) in all,
 * the odd one at the bottom / right as PyTorch pads it, given to the kernel as a taller / wider
 * output: the kernels take out's size, and the windows past the input read zeros).
 */
#include <string.h>

#include "../ops/conv.h"
#include "bind.h"

/* ================================================================ arguments */

static mg_tensor *check_float_tensor(lua_State *L, int arg, const char *what) {
    mg_tensor *t = lt_check(L, arg);
    if (!mg_is_floating((mg_dtype)t->dtype)) {
        lt_argerror(L, arg, "%s must be a float32 or float64 tensor, got %s", what, mg_dtype_name((mg_dtype)t->dtype));
    }
    return t;
}

/* An optional float tensor at arg (nil: NULL) of x's dtype and shape {n}. */
static const mg_tensor *check_vector(lua_State *L, int arg, const char *what, const mg_tensor *x, int64_t n) {
    if (lua_isnil(L, arg)) return NULL;
    const mg_tensor *t = lt_test(L, arg);
    if (!t) lt_argerror(L, arg, "%s must be a tensor or nil, got %s", what, luaL_typename(L, arg));
    t = check_float_tensor(L, arg, what);
    if (t->dtype != x->dtype) {
        lt_argerror(L, arg, "%s is %s but input is %s", what, mg_dtype_name((mg_dtype)t->dtype),
                    mg_dtype_name((mg_dtype)x->dtype));
    }
    if (t->ndim != 1 || t->size[0] != n)
        lt_argerror(L, arg, "%s must have shape {%I}, got %s", what, (lua_Integer)n, lt_push_shape(L, t->ndim, t->size));
    return t;
}

/* The value at idx (a number or a list of `n` numbers) into out[0..n-1]; at least `min`. `arg` and
 * `name` word the error. n is 1 (conv1d) or 2. An absent value gives def. */
static void read_sizes(lua_State *L, int idx, int arg, const char *name, int n, int64_t min, int64_t def,
                       int64_t *out) {
    if (lua_isnil(L, idx)) {
        out[0] = out[1] = def;
        return;
    }
    int64_t v[2];
    if (lua_type(L, idx) == LUA_TTABLE && !lt_test(L, idx)) {
        if ((int)lua_rawlen(L, idx) != n) {
            lt_argerror(L, arg, n == 2 ? "%s must be a number or a {h, w} list, got a list of %d" :
                                         "%s must be a number or a list of one, got a list of %d",
                        name, (int)lua_rawlen(L, idx));
        }
        for (int i = 0; i < n; i++) {
            lua_rawgeti(L, idx, i + 1);
            int ok;
            v[i] = (int64_t)lua_tointegerx(L, -1, &ok);
            if (!ok || lua_type(L, -1) != LUA_TNUMBER)
                lt_argerror(L, arg, "%s[%d] must be an integer, got %s", name, i + 1,
                            lua_type(L, -1) == LUA_TNUMBER ? lua_tostring(L, -1) : luaL_typename(L, -1));
            lua_pop(L, 1);
        }
    } else {
        int ok;
        v[0] = (int64_t)lua_tointegerx(L, idx, &ok);
        if (!ok || lua_type(L, idx) != LUA_TNUMBER) {
            lt_argerror(L, arg, n == 2 ? "%s must be an integer or a {h, w} list, got %s" :
                                         "%s must be an integer, got %s",
                        name, lua_type(L, idx) == LUA_TNUMBER ? lua_tostring(L, idx) : luaL_typename(L, idx));
        }
        v[1] = v[0];
    }
    for (int i = 0; i < n; i++) {
        if (v[i] < min)
            lt_argerror(L, arg, min > 0 ? "%s must be positive, got %I" : "%s must be non-negative, got %I", name,
                        (lua_Integer)v[i]);
        if (v[i] > 0x7fffffff) lt_argerror(L, arg, "%s must be at most 2147483647, got %I", name, (lua_Integer)v[i]);
    }
    if (n == 1) out[0] = 1, out[1] = v[0]; /* conv1d: height 1 */
    else out[0] = v[0], out[1] = v[1];
}

/* opts field `key` (or nil when opts is 0) read by read_sizes */
static void opt_sizes(lua_State *L, int opts, int arg, const char *key, int n, int64_t min, int64_t def,
                      int64_t *out) {
    if (opts) lua_getfield(L, opts, key);
    else lua_pushnil(L);
    read_sizes(L, lua_gettop(L), arg, key, n, min, def, out);
    lua_pop(L, 1);
}

/* opts.key as an integer into *v: 1 when given, 0 (and *v untouched) when absent or opts is 0;
 * the caller checks its range */
static int opt_integer(lua_State *L, int opts, int arg, const char *key, int64_t *v) {
    if (!opts) return 0;
    lua_getfield(L, opts, key);
    const int given = !lua_isnil(L, -1);
    if (given) {
        int ok;
        *v = (int64_t)lua_tointegerx(L, -1, &ok);
        if (!ok || lua_type(L, -1) != LUA_TNUMBER)
            lt_argerror(L, arg, "%s must be an integer, got %s", key,
                        lua_type(L, -1) == LUA_TNUMBER ? lua_tostring(L, -1) : luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    return given;
}

/* x's ndim must be spatial + 1 or spatial + 2 */
static mg_tensor *check_input(lua_State *L, int spatial, const char *fname) {
    mg_tensor *x = check_float_tensor(L, 1, "input");
    if (x->ndim != spatial + 1 && x->ndim != spatial + 2) {
        lt_argerror(L, 1, "expected a %d-d (unbatched) or %d-d (batched) input to %s, got shape %s", spatial + 1,
                    spatial + 2, fname, lt_push_shape(L, x->ndim, x->size));
    }
    return x;
}

/* "3x3" or "3" (conv1d) */
static const char *push_hw(lua_State *L, int spatial, int64_t h, int64_t w) {
    if (spatial == 1) return lua_pushfstring(L, "%I", (lua_Integer)w);
    return lua_pushfstring(L, "%Ix%I", (lua_Integer)h, (lua_Integer)w);
}

/* raises when the dilated kernel does not fit the padded input (g's padding on both sides, plus
 * extra[0], extra[1] more at the bottom / right: padding = "same" with an odd total) */
static void check_fits(lua_State *L, int spatial, const int64_t *in, const mg_conv2d_geom *g, const int64_t *extra) {
    int64_t eh = 0, ew = 0;
    if (__builtin_mul_overflow(g->dh, g->kh - 1, &eh) || __builtin_mul_overflow(g->dw, g->kw - 1, &ew))
        lt_argerror(L, 1, "kernel size (dilated) is too large");
    eh += 1, ew += 1;
    const int64_t ph = in[0] + 2 * g->ph + extra[0], pw = in[1] + 2 * g->pw + extra[1];
    if (eh > ph || ew > pw) {
        const char *k = push_hw(L, spatial, eh, ew);
        const char *p = push_hw(L, spatial, ph, pw);
        lt_argerror(L, 1, "kernel size %s (dilated) is larger than the padded input %s", k, p);
    }
}

/* ================================================================ convolution */

/* opts.padding as a string: 1 "same" (stride must be 1), 0 "valid" (no padding), -1 not a string
 * (sizes, read by the caller). The strides are read before: g's are checked here. */
static int padding_mode(lua_State *L, int opts, int spatial) {
    if (!opts) return -1;
    lua_getfield(L, opts, "padding");
    if (lua_type(L, -1) != LUA_TSTRING) {
        lua_pop(L, 1);
        return -1;
    }
    const char *mode = lua_tostring(L, -1);
    int same = strcmp(mode, "same") == 0;
    if (!same && strcmp(mode, "valid") != 0)
        lt_argerror(L, 4, "invalid padding string \"%s\", should be \"valid\" or \"same\"", mode);
    lua_pop(L, 1);
    if (same) {
        int64_t s[2];
        opt_sizes(L, opts, 4, "stride", spatial, 1, 1, s);
        if (s[0] != 1 || s[1] != 1) lt_argerror(L, 4, "padding = \"same\" is not supported for strided convolutions");
    }
    return same;
}

static int conv(lua_State *L, int spatial, const char *fname) {
    mg_ctx *ctx = lt_ctx(L);
    int opts = 0;
    if (lua_istable(L, 3) && !lt_test(L, 3)) { /* conv2d(x, w, opts) */
        lua_settop(L, 3);
        lua_pushnil(L);
        lua_insert(L, 3);
    }
    lua_settop(L, 4);
    if (!lua_isnil(L, 4)) {
        static const char *const valid[] = {"stride", "padding", "dilation", "groups", NULL};
        if (!lua_istable(L, 4) || lt_test(L, 4)) luaL_typeerror(L, 4, "options table");
        lt_check_opts(L, 4, valid);
        opts = 4;
    }
    const mg_tensor *x = check_input(L, spatial, fname);
    const mg_tensor *w = check_float_tensor(L, 2, "weight");
    if (w->ndim != spatial + 2) {
        return lt_argerror(L, 2, spatial == 2 ? "weight must be {out_channels,in_channels/groups,kH,kW}, got shape %s"
                                              : "weight must be {out_channels,in_channels/groups,kL}, got shape %s",
                           lt_push_shape(L, w->ndim, w->size));
    }
    if (w->dtype != x->dtype) {
        return lt_argerror(L, 2, "weight is %s but input is %s", mg_dtype_name((mg_dtype)w->dtype),
                           mg_dtype_name((mg_dtype)x->dtype));
    }
    mg_conv2d_geom g;
    int64_t s[2], p[2], d[2], extra[2] = {0, 0};
    opt_sizes(L, opts, 4, "stride", spatial, 1, 1, s);
    opt_sizes(L, opts, 4, "dilation", spatial, 1, 1, d);
    const int same = padding_mode(L, opts, spatial);
    if (same < 0) opt_sizes(L, opts, 4, "padding", spatial, 0, 0, p);
    else p[0] = p[1] = 0;
    if (spatial == 1) p[0] = 0;
    g.sh = s[0], g.sw = s[1], g.ph = p[0], g.pw = p[1], g.dh = d[0], g.dw = d[1];
    g.groups = 1;
    opt_integer(L, opts, 4, "groups", &g.groups);
    if (g.groups < 1) return lt_argerror(L, 4, "groups must be positive, got %I", (lua_Integer)g.groups);
    const int64_t O = w->size[0], C = x->size[x->ndim - spatial - 1];
    if (O % g.groups != 0) {
        return lt_argerror(L, 2, "out_channels %I (weight %s) is not divisible by groups %I", (lua_Integer)O,
                           lt_push_shape(L, w->ndim, w->size), (lua_Integer)g.groups);
    }
    if (w->size[1] * g.groups != C) {
        return lt_argerror(L, 1, "input has %I channels, but weight %s with groups %I expects %I (shape %s)",
                           (lua_Integer)C, lt_push_shape(L, w->ndim, w->size), (lua_Integer)g.groups,
                           (lua_Integer)(w->size[1] * g.groups), lt_push_shape(L, x->ndim, x->size));
    }
    const mg_tensor *b = check_vector(L, 3, "bias", x, O);
    g.kh = spatial == 1 ? 1 : w->size[2];
    g.kw = w->size[w->ndim - 1];
    if (same == 1) { /* total padding dilation (k - 1): half on each side, the odd one at the bottom / right */
        int64_t th, tw;
        if (__builtin_mul_overflow(g.dh, g.kh - 1, &th) || __builtin_mul_overflow(g.dw, g.kw - 1, &tw))
            return lt_argerror(L, 1, "kernel size (dilated) is too large");
        if (th > 0x7fffffff || tw > 0x7fffffff) return lt_argerror(L, 1, "kernel size (dilated) is too large");
        g.ph = th / 2, g.pw = tw / 2, extra[0] = th % 2, extra[1] = tw % 2;
    }
    mg_view_buf vx;
    const mg_tensor *x4 = mg_conv_view4(&vx, x, spatial);
    check_fits(L, spatial, x4->size + 2, &g, extra);
    const int64_t OH = (x4->size[2] + 2 * g.ph + extra[0] - g.dh * (g.kh - 1) - 1) / g.sh + 1;
    const int64_t OW = (x4->size[3] + 2 * g.pw + extra[1] - g.dw * (g.kw - 1) - 1) / g.sw + 1;
    int64_t size[4];
    int nd = 0;
    if (x->ndim == spatial + 2) size[nd++] = x->size[0];
    size[nd++] = O;
    if (spatial == 2) size[nd++] = OH;
    size[nd++] = OW;
    mg_tensor *out = lt_push_new(L, (mg_dtype)x->dtype, nd, size);
    mg_view_buf vo, vw;
    mg_tensor *w4 = mg_view_of(&vw, w, 4);
    for (int i = 0; i < 4; i++) {
        const int src = spatial == 1 ? (i < 2 ? i : i == 2 ? -1 : 2) : i;
        w4->size[i] = src < 0 ? 1 : w->size[src];
        w4->stride[i] = src < 0 ? 0 : w->stride[src];
    }
    LT_TRY(L, 1, mg_conv2d(ctx, mg_conv_view4(&vo, out, spatial), x4, w4, b, &g));
    static const int inputs[3] = {1, 2, 3};
    const int n = b ? 3 : 2;
    if (lt_grad_needed(L, n, inputs)) {
        mg_node *node = lt_record(L, -1, MG_FAM_CONV, MG_CONV_CONV, n, inputs, 0, NULL);
        mg_conv_geom_pack(node->iarg, &g);
    }
    return 1;
}
static int l_conv1d(lua_State *L) { return conv(L, 1, "conv1d"); }
static int l_conv2d(lua_State *L) { return conv(L, 2, "conv2d"); }

/* ================================================================ pooling */

/* opts.key as a boolean (def when absent or opts is 0) */
static int opt_flag(lua_State *L, int opts, int arg, const char *key, int def) {
    if (!opts) return def;
    lua_getfield(L, opts, key);
    int v = def;
    if (!lua_isnil(L, -1)) {
        if (!lua_isboolean(L, -1)) lt_argerror(L, arg, "%s must be a boolean, got %s", key, luaL_typename(L, -1));
        v = lua_toboolean(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

/* A pool's output size along one dim, as PyTorch's pooling_output_shape: with ceil_mode the
 * division rounds up, but the last window must start inside the input or its left padding. */
static int64_t pool_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, int ceil_mode) {
    int64_t o = (in + 2 * p - d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0)) / s + 1;
    if (ceil_mode && (o - 1) * s >= in + p) o--;
    return o;
}

/* max_pool2d(x, kernel_size [, {stride, padding, dilation, ceil_mode, return_indices, relu}]),
 * avg_pool2d(x, kernel_size [, {stride, padding, ceil_mode, count_include_pad, divisor_override}]) */
static int pool(lua_State *L, mg_conv_op op, const char *fname) {
    mg_ctx *ctx = lt_ctx(L);
    lua_settop(L, 3);
    const mg_tensor *x = check_input(L, 2, fname);
    int64_t k[2], s[2], p[2], d[2] = {1, 1};
    if (lua_isnil(L, 2)) return luaL_argerror(L, 2, "kernel_size expected");
    read_sizes(L, 2, 2, "kernel_size", 2, 1, 1, k);
    int opts = 0;
    if (!lua_isnil(L, 3)) {
        static const char *const vmax[] = {"stride", "padding", "dilation", "ceil_mode", "return_indices", "relu",
                                           NULL};
        static const char *const vavg[] = {"stride", "padding", "ceil_mode", "count_include_pad", "divisor_override",
                                           NULL};
        if (!lua_istable(L, 3) || lt_test(L, 3)) luaL_typeerror(L, 3, "options table");
        lt_check_opts(L, 3, op == MG_CONV_MAX_POOL ? vmax : vavg);
        opts = 3;
    }
    if (opts) lua_getfield(L, opts, "stride");
    else lua_pushnil(L);
    if (lua_isnil(L, -1)) s[0] = k[0], s[1] = k[1];
    else read_sizes(L, lua_gettop(L), 3, "stride", 2, 1, 1, s);
    lua_pop(L, 1);
    opt_sizes(L, opts, 3, "padding", 2, 0, 0, p);
    if (op == MG_CONV_MAX_POOL) opt_sizes(L, opts, 3, "dilation", 2, 1, 1, d);
    const int ceil_mode = opt_flag(L, opts, 3, "ceil_mode", 0);
    const int want_indices = op == MG_CONV_MAX_POOL && opt_flag(L, opts, 3, "return_indices", 0);
    /* relu = true: max_pool2d(relu(x)) in one op (mg_max_pool2d_relu); its indices are not the
     * unfused pool's where a window's max is <= 0, so it does not return them */
    const int relu = op == MG_CONV_MAX_POOL && opt_flag(L, opts, 3, "relu", 0);
    if (relu && want_indices) return lt_argerror(L, 3, "relu and return_indices cannot be combined");
    mg_conv2d_geom g = {k[0], k[1], s[0], s[1], p[0], p[1], d[0], d[1], 1, 0, 0};
    if (op == MG_CONV_AVG_POOL) {
        g.exclude_pad = !opt_flag(L, opts, 3, "count_include_pad", 1);
        if (opt_integer(L, opts, 3, "divisor_override", &g.divisor)) {
            if (g.divisor == 0) return lt_argerror(L, 3, "divisor_override must not be 0");
            if (g.divisor > 0x3fffffff || g.divisor < -0x3fffffff)
                return lt_argerror(L, 3, "divisor_override must be within -2^30..2^30, got %I", (lua_Integer)g.divisor);
        }
    }
    for (int i = 0; i < 2; i++) {
        if (p[i] * 2 > k[i]) {
            return lt_argerror(L, 3, "padding %I should be at most half of the kernel size %I", (lua_Integer)p[i],
                               (lua_Integer)k[i]);
        }
    }
    mg_view_buf vx, vo;
    const mg_tensor *x4 = mg_conv_view4(&vx, x, 2);
    static const int64_t no_extra[2] = {0, 0};
    check_fits(L, 2, x4->size + 2, &g, no_extra);
    const int64_t OH = pool_size(x4->size[2], g.kh, g.sh, g.ph, g.dh, ceil_mode);
    const int64_t OW = pool_size(x4->size[3], g.kw, g.sw, g.pw, g.dw, ceil_mode);
    int64_t size[4];
    int nd = 0;
    if (x->ndim == 4) size[nd++] = x->size[0];
    size[nd++] = x->size[x->ndim - 3];
    size[nd++] = OH;
    size[nd++] = OW;
    int saved = 0;
    mg_tensor *idx = NULL;
    /* the fused relu over 2x2 windows keeps a byte a window (int64 elements holding 8 each), not
     * int64 indices: its backward needs only which element won */
    const int slots = relu && mg_max_pool2d_relu_slots(x4, OH, OW, &g);
    if (slots) {
        const int64_t bytes[1] = {(x4->size[0] * x4->size[1] * OH * OW + 7) / 8};
        idx = lt_push_new(L, MG_INT64, 1, bytes);
        saved = lua_gettop(L);
    } else if (op == MG_CONV_MAX_POOL) {
        idx = lt_push_new(L, MG_INT64, nd, size);
        saved = lua_gettop(L);
    }
    mg_tensor *out = lt_push_new(L, (mg_dtype)x->dtype, nd, size);
    mg_view_buf vi;
    if (op == MG_CONV_MAX_POOL) {
        LT_TRY(L, 1, (relu ? mg_max_pool2d_relu : mg_max_pool2d)(ctx, mg_conv_view4(&vo, out, 2),
                                                                  slots ? idx : mg_conv_view4(&vi, idx, 2), x4, &g));
    } else {
        LT_TRY(L, 1, mg_avg_pool2d(ctx, mg_conv_view4(&vo, out, 2), x4, &g));
    }
    static const int inputs[1] = {1};
    if (lt_grad_needed(L, 1, inputs)) {
        mg_node *node = lt_record(L, -1, MG_FAM_CONV, relu ? MG_CONV_MAX_POOL_RELU : op, 1, inputs, saved ? 1 : 0,
                                  &saved);
        mg_pool_pack(node->iarg, &g);
        node->darg[0] = (double)g.kh, node->darg[1] = (double)g.kw;
    }
    if (!want_indices) return 1;
    /* the indices as moongrad returns them (argmax, sort): 1-based, here h W + w + 1 in the plane */
    mg_tensor *idx1 = lt_push_new(L, MG_INT64, nd, size);
    const int64_t *from = (const int64_t *)mg_tensor_data(idx);
    int64_t *to = (int64_t *)mg_tensor_data(idx1);
    for (int64_t i = 0; i < idx1->numel; i++) to[i] = from[i] + 1;
    return 2;
}
static int l_max_pool2d(lua_State *L) { return pool(L, MG_CONV_MAX_POOL, "max_pool2d"); }
static int l_avg_pool2d(lua_State *L) { return pool(L, MG_CONV_AVG_POOL, "avg_pool2d"); }

/* adaptive_avg_pool2d(x, output_size): a number or {h, w} */
static int l_adaptive_avg_pool2d(lua_State *L) {
    lua_settop(L, 2);
    const mg_tensor *x = check_input(L, 2, "adaptive_avg_pool2d");
    if (lua_isnil(L, 2)) return luaL_argerror(L, 2, "output_size expected");
    int64_t os[2];
    read_sizes(L, 2, 2, "output_size", 2, 1, 1, os);
    int64_t size[4];
    int nd = 0;
    if (x->ndim == 4) size[nd++] = x->size[0];
    size[nd++] = x->size[x->ndim - 3];
    size[nd++] = os[0];
    size[nd++] = os[1];
    mg_tensor *out = lt_push_new(L, (mg_dtype)x->dtype, nd, size);
    mg_view_buf vx, vo;
    if (x->size[x->ndim - 1] == 0 || x->size[x->ndim - 2] == 0)
        return lt_argerror(L, 1, "input shape %s has an empty spatial dim", lt_push_shape(L, x->ndim, x->size));
    LT_TRY(L, 1, mg_adaptive_avg_pool2d(lt_ctx(L), mg_conv_view4(&vo, out, 2), mg_conv_view4(&vx, x, 2)));
    static const int inputs[1] = {1};
    if (lt_grad_needed(L, 1, inputs)) lt_record(L, -1, MG_FAM_CONV, MG_CONV_ADAPTIVE_AVG, 1, inputs, 0, NULL);
    return 1;
}

/* ================================================================ normalization */

/* opts.key as a number (def when absent) */
static double opt_number(lua_State *L, int opts, int arg, const char *key, double def) {
    if (!opts) return def;
    lua_getfield(L, opts, key);
    double v = def;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TNUMBER)
            lt_argerror(L, arg, "%s must be a number, got %s", key, luaL_typename(L, -1));
        v = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

/* batch_norm(x, running_mean, running_var [, {weight, bias, training, momentum, eps}]) */
static int l_batch_norm(lua_State *L) {
    mg_ctx *ctx = lt_ctx(L);
    lua_settop(L, 4);
    const mg_tensor *x = check_float_tensor(L, 1, "input");
    if (x->ndim < 2) {
        return lt_argerror(L, 1, "expected an input of 2 or more dims {N,C,...}, got shape %s",
                           lt_push_shape(L, x->ndim, x->size));
    }
    int opts = 0;
    if (!lua_isnil(L, 4)) {
        static const char *const valid[] = {"weight", "bias", "training", "momentum", "eps", NULL};
        if (!lua_istable(L, 4) || lt_test(L, 4)) luaL_typeerror(L, 4, "options table");
        lt_check_opts(L, 4, valid);
        opts = 4;
    }
    const int64_t C = x->size[1];
    mg_tensor *rm = (mg_tensor *)check_vector(L, 2, "running_mean", x, C);
    mg_tensor *rv = (mg_tensor *)check_vector(L, 3, "running_var", x, C);
    int training = 0;
    double momentum = opt_number(L, opts, 4, "momentum", 0.1), eps = opt_number(L, opts, 4, "eps", 1e-5);
    if (opts) {
        lua_getfield(L, opts, "training");
        training = lua_toboolean(L, -1);
        lua_getfield(L, opts, "weight");
        lua_getfield(L, opts, "bias");
        lua_remove(L, -3);
    } else {
        lua_pushnil(L);
        lua_pushnil(L);
    }
    /* weight at 5, bias at 6 */
    const mg_tensor *w = check_vector(L, 5, "weight", x, C);
    const mg_tensor *b = check_vector(L, 6, "bias", x, C);
    if (!training && (!rm || !rv))
        return lt_argerror(L, !rm ? 2 : 3, "%s must be given when not training", !rm ? "running_mean" : "running_var");
    if (!(eps >= 0)) return lt_argerror(L, 4, "eps must be non-negative, got %f", eps);
    int64_t M = x->numel / (C ? C : 1);
    if (training && M <= 1) {
        return lt_argerror(L, 1, "expected more than 1 value per channel when training, got input shape %s",
                           lt_push_shape(L, x->ndim, x->size));
    }
    if (training) {
        if (rm) lt_inplace(L, 2);
        if (rv) lt_inplace(L, 3);
    }
    lt_push_new(L, MG_FLOAT64, 1, &C);
    lt_push_new(L, MG_FLOAT64, 1, &C);
    const int saved[2] = {lua_gettop(L) - 1, lua_gettop(L)};
    mg_tensor *out = lt_push_new(L, (mg_dtype)x->dtype, x->ndim, x->size);
    mg_view_buf vx;
    mg_tensor *x3 = mg_view_of(&vx, x, 3);
    x3->size[0] = x->size[0], x3->stride[0] = x->stride[0];
    x3->size[1] = C, x3->stride[1] = x->stride[1];
    x3->size[2] = 1, x3->stride[2] = 1;
    if (x->ndim > 2) {
        /* the spatial dims as one: collapsible when x is contiguous there; otherwise copy */
        mg_tensor *xc = mg_is_contiguous(x) ? (mg_tensor *)x : lt_push_contiguous(L, 1);
        x3 = mg_view_of(&vx, xc, 3);
        x3->size[0] = x->size[0], x3->size[1] = C, x3->size[2] = M / (x->size[0] ? x->size[0] : 1);
        mg_contiguous_strides(3, x3->size, x3->stride);
        if (xc != x) lua_insert(L, -2); /* keep out on top */
    }
    LT_TRY(L, 1, mg_batch_norm(ctx, out, lt_check(L, saved[0]), lt_check(L, saved[1]), x3, rm, rv, w, b, training, momentum, eps));
    if (training) {
        if (rm) lt_written(rm);
        if (rv) lt_written(rv);
    }
    int inputs[3] = {1, 0, 0}, n = 1;
    if (w) inputs[n++] = 5;
    if (b) inputs[n++] = 6;
    if (lt_grad_needed(L, n, inputs)) {
        mg_node *node = lt_record(L, -1, MG_FAM_CONV, MG_CONV_BATCH_NORM, n, inputs, 2, saved);
        node->iarg[0] = training, node->iarg[1] = w != NULL, node->iarg[2] = b != NULL;
    }
    return 1;
}

/* layer_norm(x, normalized_shape [, {weight, bias, eps}]) */
static int l_layer_norm(lua_State *L) {
    mg_ctx *ctx = lt_ctx(L);
    lua_settop(L, 3);
    const mg_tensor *x = check_float_tensor(L, 1, "input");
    int64_t ns[MG_MAX_DIMS];
    int nn = 0;
    if (lua_type(L, 2) == LUA_TNUMBER) {
        nn = 1;
        ns[0] = (int64_t)luaL_checkinteger(L, 2);
    } else if (lua_istable(L, 2) && !lt_test(L, 2)) {
        nn = (int)lua_rawlen(L, 2);
        if (nn < 1 || nn > MG_MAX_DIMS) return lt_argerror(L, 2, "normalized_shape must be a non-empty list of sizes");
        for (int i = 0; i < nn; i++) {
            lua_rawgeti(L, 2, i + 1);
            int ok;
            ns[i] = (int64_t)lua_tointegerx(L, -1, &ok);
            if (!ok) return lt_argerror(L, 2, "normalized_shape[%d] must be an integer, got %s", i + 1, luaL_typename(L, -1));
            lua_pop(L, 1);
        }
    } else {
        return luaL_typeerror(L, 2, "list of sizes");
    }
    int fits = nn <= x->ndim;
    for (int i = 0; fits && i < nn; i++) fits = x->size[x->ndim - nn + i] == ns[i];
    if (!fits) {
        lua_pushliteral(L, "{*");
        for (int i = 0; i < nn; i++) lua_pushfstring(L, ",%I", (lua_Integer)ns[i]);
        lua_pushliteral(L, "}");
        lua_concat(L, nn + 2);
        return lt_argerror(L, 1, "normalized_shape %s expects an input of shape %s, got %s", lt_push_shape(L, nn, ns),
                           lua_tostring(L, -2), lt_push_shape(L, x->ndim, x->size));
    }
    int opts = 0;
    if (!lua_isnil(L, 3)) {
        static const char *const valid[] = {"weight", "bias", "eps", NULL};
        if (!lua_istable(L, 3) || lt_test(L, 3)) luaL_typeerror(L, 3, "options table");
        lt_check_opts(L, 3, valid);
        opts = 3;
    }
    const double eps = opt_number(L, opts, 3, "eps", 1e-5);
    if (opts) {
        lua_getfield(L, opts, "weight");
        lua_getfield(L, opts, "bias");
    } else {
        lua_pushnil(L);
        lua_pushnil(L);
    }
    const mg_tensor *wb[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++) {
        const int at = 4 + k;
        const char *what = k ? "bias" : "weight";
        if (lua_isnil(L, at)) continue;
        if (!lt_test(L, at)) return lt_argerror(L, 3, "%s must be a tensor or nil, got %s", what, luaL_typename(L, at));
        const mg_tensor *t = lt_check(L, at);
        if (t->dtype != x->dtype)
            return lt_argerror(L, 3, "%s is %s but input is %s", what, mg_dtype_name((mg_dtype)t->dtype),
                               mg_dtype_name((mg_dtype)x->dtype));
        if (t->ndim != nn || memcmp(t->size, ns, sizeof(int64_t) * nn) != 0)
            return lt_argerror(L, 3, "%s must have shape %s, got %s", what, lt_push_shape(L, nn, ns),
                               lt_push_shape(L, t->ndim, t->size));
        wb[k] = t;
    }
    int64_t d = 1;
    for (int i = 0; i < nn; i++) d *= ns[i];
    const int64_t rows = d ? x->numel / d : 0;
    lt_push_new(L, MG_FLOAT64, 1, &rows);
    lt_push_new(L, MG_FLOAT64, 1, &rows);
    const int saved[2] = {lua_gettop(L) - 1, lua_gettop(L)};
    mg_tensor *out = lt_push_new(L, (mg_dtype)x->dtype, x->ndim, x->size);
    LT_TRY(L, 1, mg_layer_norm(ctx, out, lt_check(L, saved[0]), lt_check(L, saved[1]), x, d, wb[0], wb[1], eps));
    int inputs[3] = {1, 0, 0}, n = 1;
    if (wb[0]) inputs[n++] = 4;
    if (wb[1]) inputs[n++] = 5;
    if (lt_grad_needed(L, n, inputs)) {
        mg_node *node = lt_record(L, -1, MG_FAM_CONV, MG_CONV_LAYER_NORM, n, inputs, 2, saved);
        node->iarg[0] = d, node->iarg[1] = wb[0] != NULL, node->iarg[2] = wb[1] != NULL;
    }
    return 1;
}

/* embedding(idx, weight [, {padding_idx}]): idx an int64 tensor or a Lua list of 1-based indices;
 * padding_idx (1-based, -1 the last row) gets no gradient. */
static int l_embedding(lua_State *L) {
    lua_settop(L, 3);
    int64_t pad = 0; /* the padding row, 1-based; 0 none */
    if (!lua_isnil(L, 3)) {
        static const char *const valid[] = {"padding_idx", NULL};
        if (!lua_istable(L, 3) || lt_test(L, 3)) luaL_typeerror(L, 3, "options table");
        lt_check_opts(L, 3, valid);
        if (opt_integer(L, 3, 3, "padding_idx", &pad) && pad == 0)
            return lt_argerror(L, 3, "padding_idx 0 is not a row (indices count from 1)");
    }
    if (!lt_test(L, 1)) {
        if (!lua_istable(L, 1)) return luaL_typeerror(L, 1, "int64 tensor or list of integers");
        lt_push_int_list(L, 1, "indices", "an integer index");
        lua_replace(L, 1);
    }
    const mg_tensor *idx = lt_check(L, 1);
    if (idx->dtype != MG_INT64) {
        return lt_argerror(L, 1, "indices must be an int64 tensor, got %s", mg_dtype_name((mg_dtype)idx->dtype));
    }
    const mg_tensor *w = check_float_tensor(L, 2, "weight");
    if (w->ndim != 2)
        return lt_argerror(L, 2, "weight must be {num_embeddings,embedding_dim}, got shape %s",
                           lt_push_shape(L, w->ndim, w->size));
    if (pad) {
        const int64_t V = w->size[0];
        if (pad > V || pad < -V)
            return lt_argerror(L, 3, "padding_idx %I is out of range for %I embeddings", (lua_Integer)pad,
                               (lua_Integer)V);
        if (pad < 0) pad += V + 1;
    }
    if (idx->ndim + 1 > MG_MAX_DIMS) return lt_argerror(L, 1, "indices have too many dims");
    int64_t size[MG_MAX_DIMS];
    memcpy(size, idx->size, sizeof(int64_t) * idx->ndim);
    size[idx->ndim] = w->size[1];
    mg_tensor *out = lt_push_new(L, (mg_dtype)w->dtype, idx->ndim + 1, size);
    LT_TRY(L, 1, mg_embedding(lt_ctx(L), out, idx, w));
    static const int inputs[2] = {2, 1};
    if (lt_grad_needed(L, 1, inputs)) lt_record(L, -1, MG_FAM_CONV, MG_CONV_EMBEDDING, 2, inputs, 0, NULL)->iarg[0] = pad;
    return 1;
}

const luaL_Reg lt_conv_functions[] = {
    {"conv1d", l_conv1d}, {"conv2d", l_conv2d},
    {"max_pool2d", l_max_pool2d}, {"avg_pool2d", l_avg_pool2d}, {"adaptive_avg_pool2d", l_adaptive_avg_pool2d},
    {"batch_norm", l_batch_norm}, {"layer_norm", l_layer_norm}, {"embedding", l_embedding},
    {NULL, NULL}};
