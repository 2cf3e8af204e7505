/*
 * autograd.c (binding): recording the graph, the backward engine, and autograd's Lua API
 * (backward, .grad, requires_grad_, detach, retain_grad, no_grad, enable_grad, autograd.grad,
 * post-accumulate-grad hooks).
 *
 * The graph is made of Node userdata ("moongrad.Node"), without finalizers. A result that requires
 * grad holds its node in user value LT_UV_NODE; a node holds, in its own user values,
 *   1..n        its inputs (tensors; a number operand is recorded as a 0-d tensor),
 *   n+1..n+k    tensors saved for backward besides the inputs (e.g. the output of exp),
 *   n+k+1       the gradient arriving at the output during a backward pass, when it is a tensor
 * (the node points to its output without holding it: see uv_pending). A small floating result's
 * node also has a gradient buffer of the result's shape in its own bytes (mg_node.gbuf), where the
 * first gradient for the result is computed: no tensor is made for it. The node keeps each input's
 * node (operand[i].node), so ordering a graph reads no user values of leaves. Nodes get their
 * metatable when Lua code first sees them (t.grad_fn).
 * So the graph lives exactly as long as something can reach a result of it, and the collector
 * frees it like any Lua data: loops need no collectgarbage().
 *
 * The engine: a depth-first walk from the root orders the nodes (post-order, with an explicit
 * stack in a weak table: deep graphs do not touch the C stack, and no pass keeps a graph alive),
 * then each node, from the root back, passes its output's gradient through its family's rule
 * (src/ops/<family>.c, via mg_backward) to each input that requires grad: into the input's node
 * (summed), or into a leaf's .grad (accumulated). A pending gradient is stamped with its pass's
 * number, so that what a pass that raised (a freed graph, an input changed in place) left in a
 * node counts as nothing for the next one. A 0-d loss's backward starts from one shared 0-d
 * tensor of ones per dtype (push_root_grad), which is never handed to a holder.
 *
 * Known strictness: every input's version is checked, also for rules that do not read their inputs
 * (add, sub), where PyTorch would let the change pass; the error is never a wrong gradient.
 */
#include <string.h>

#include "../ops/conv.h"
#include "../ops/functional.h"
#include "../ops/index.h"
#include "../ops/linalg.h"
#include "../ops/grad.h"
#include "../ops/ops.h"
#include "../ops/reduce.h"
#include "../ops/shape.h"
#include "../ops/unary.h"
#include "bind.h"

#define NODE_MT "moongrad.Node"

/* user values of a node: its inputs, its saved tensors, then the pending gradient. The result is
 * not among them: a node is reachable only through its result (t.grad_fn, or the inputs of later
 * nodes, which are results too), so n->out is valid whenever a backward pass can reach n. */
static int uv_pending(const mg_node *n) { return n->ninputs + n->nsaved + 1; }

/* What the engine keeps in the ctx's LT_CTX_UV_ORDER table (small keys: its array part): the
 * protected pass (run_backward), the weak work tables (work_table), the shared 0-d gradients of
 * ones (push_root_grad). */
enum { ORDER_PASS = 1, ORDER_NODES, ORDER_STACK, ORDER_ONES_F32, ORDER_ONES_F64 };

int lt_grad_needed(lua_State *L, int n, const int *idx) {
    for (int i = 0; i < n; i++) {
        const mg_tensor *t = lt_test(L, idx[i]);
        if (t && t->requires_grad) return lt_grad_enabled(L);
    }
    return 0;
}

/* The names of the families whose ops have no name table of their own (a switch, so that
 * -Wswitch names a new op without one). */
static const char *shape_name(mg_shape_op op) {
    switch (op) {
    case MG_SHAPE_RESHAPE: return "reshape";
    case MG_SHAPE_PERMUTE: return "permute";
    case MG_SHAPE_EXPAND: return "expand";
    case MG_SHAPE_NARROW: return "narrow";
    case MG_SHAPE_SELECT: return "select";
    case MG_SHAPE_COPY: return "copy";
    case MG_SHAPE_FLIP: return "flip";
    case MG_SHAPE_TRIL: return "tril";
    case MG_SHAPE_TRIU: return "triu";
    }
    return NULL;
}
static const char *index_name(mg_index_op op) {
    switch (op) {
    case MG_INDEX_SELECT: return "index_select";
    case MG_INDEX_GATHER: return "gather";
    case MG_INDEX_MASKED_SELECT: return "masked_select";
    case MG_INDEX_CAT: return "cat";
    case MG_INDEX_STACK: return "stack";
    }
    return NULL;
}
static const char *linalg_name(mg_linalg_op op) {
    switch (op) {
    case MG_LIN_MATMUL: return "matmul";
    case MG_LIN_OUTER: return "outer";
    }
    return NULL;
}
static const char *where_name(mg_where_op op) {
    switch (op) {
    case MG_WHERE: return "where";
    case MG_MASKED_FILL: return "masked_fill";
    }
    return NULL;
}

/* The op's own name (NULL for a code its family does not know: never, short of a bug) */
static const char *op_name(const mg_node *n) {
    switch ((mg_family)n->family) {
    case MG_FAM_BINARY: return mg_binary_name((mg_binary_op)n->op);
    case MG_FAM_WHERE: return where_name((mg_where_op)n->op);
    case MG_FAM_UNARY: return mg_unary_name((mg_unary_op)n->op);
    case MG_FAM_REDUCE: return n->op == MG_RED_CUMSUM ? "cumsum" : mg_reduce_name((mg_reduce_op)n->op);
    case MG_FAM_LINALG: return linalg_name((mg_linalg_op)n->op);
    case MG_FAM_SHAPE: return shape_name((mg_shape_op)n->op);
    case MG_FAM_INDEX: return index_name((mg_index_op)n->op);
    case MG_FAM_FUNCTIONAL: return mg_functional_name((mg_functional_op)n->op);
    case MG_FAM_CONV: return n->op < MG_NCONV ? mg_conv_name((mg_conv_op)n->op) : NULL;
    default: return NULL;
    }
}

/* "<grad_fn binary mul>", "<grad_fn conv max_pool2d>" (family, op) */
static int node_tostring(lua_State *L) {
    const mg_node *n = (const mg_node *)luaL_checkudata(L, 1, NODE_MT);
    const char *family = mg_family_name((mg_family)n->family), *name = op_name(n);
    if (name) lua_pushfstring(L, "<grad_fn %s %s>", family, name);
    else lua_pushfstring(L, "<grad_fn %s op %d>", family, (int)n->op);
    return 1;
}

void lt_push_node_metatable(lua_State *L) {
    luaL_newmetatable(L, NODE_MT); /* set every time: completes one a memory error left half-made */
    lua_pushcfunction(L, node_tostring);
    lua_setfield(L, -2, "__tostring");
}

/* A node's gradient buffer (mg_node.gbuf): for a floating result of at most GBUF_MAX bytes, a
 * descriptor, its storage, sizes and strides, then the bytes (16-aligned), after the operands. */
#define GBUF_MAX 256
static size_t gbuf_bytes(const mg_tensor *out) {
    if (!mg_is_floating((mg_dtype)out->dtype)) return 0;
    const size_t bytes = (size_t)out->numel * mg_dtype_size((mg_dtype)out->dtype);
    if (bytes > GBUF_MAX) return 0;
    return sizeof(mg_tensor) + sizeof(mg_storage) + 2 * sizeof(int64_t) * out->ndim + bytes + 15;
}
static mg_tensor *init_gbuf(char *p, const mg_tensor *out) {
    mg_tensor *t = (mg_tensor *)p;
    mg_storage *s = (mg_storage *)(t + 1);
    memset(t, 0, sizeof *t);
    memset(s, 0, sizeof *s);
    t->size = (int64_t *)(s + 1);
    t->stride = t->size + out->ndim;
    t->ndim = out->ndim;
    t->dtype = out->dtype;
    t->numel = out->numel;
    t->storage = s;
    if (out->ndim) memcpy(t->size, out->size, sizeof(int64_t) * out->ndim);
    mg_contiguous_strides(out->ndim, out->size, t->stride);
    s->kind = MG_STORAGE_INLINE;
    s->data = (char *)(((uintptr_t)(t->stride + out->ndim) + 15) & ~(uintptr_t)15);
    s->nbytes = (size_t)out->numel * mg_dtype_size((mg_dtype)out->dtype);
    return t;
}

mg_node *lt_record(lua_State *L, int out_idx, mg_family family, int op, int ninputs, const int *inputs,
                   int nsaved, const int *saved) {
    out_idx = lua_absindex(L, out_idx);
    mg_tensor *out = lt_check(L, out_idx);
    const int nversions = ninputs + nsaved;
    /* a userdata has fewer than USHRT_MAX user values; ninputs and nsaved are stored narrow */
    if (ninputs > 60000 || nsaved > UINT8_MAX)
        luaL_error(L, "an op with %d tensor inputs is too wide to record for autograd (at most 60000)",
                   ninputs);
    const size_t operands_end = sizeof(mg_node) + sizeof(struct mg_node_operand) * (size_t)nversions;
    const size_t gbuf = gbuf_bytes(out);
    const size_t node_bytes = operands_end + gbuf;
    mg_ctx *ctx = lt_ctx(L);
    mg_node *n = (mg_node *)(ctx->memory_limit
                                 ? lt_push_named(L, ctx, node_bytes, nversions + 1, node_bytes, "an autograd node")
                                 : lua_newuserdatauv(L, node_bytes, nversions + 1));
    memset(n, 0, sizeof *n);
    n->family = (uint8_t)family;
    n->op = (uint8_t)op;
    n->ninputs = (uint16_t)ninputs;
    n->nsaved = (uint8_t)nsaved;
    if (gbuf) n->gbuf = init_gbuf((char *)n + operands_end, out);
    /* no metatable yet: t.grad_fn, the only way Lua code sees a node, sets it (set_node_metatable) */
    const int node = lua_gettop(L);
    for (int i = 0; i < nversions; i++) {
        const int idx = i < ninputs ? lua_absindex(L, inputs[i]) : lua_absindex(L, saved[i - ninputs]);
        mg_tensor *t = lt_test(L, idx);
        if (t) {
            lua_pushvalue(L, idx);
        } else { /* a number operand: saved as a 0-d tensor of the result's dtype (never recorded) */
            t = lt_push_scalar(L, idx, (mg_dtype)out->dtype);
        }
        n->operand[i].t = t;
        n->operand[i].version = t->storage->version;
        n->operand[i].node = NULL;
        if (i < ninputs && (t->flags & LT_HAS_NODE)) {
            if (lua_getiuservalue(L, -1, LT_UV_NODE) == LUA_TUSERDATA) n->operand[i].node = (mg_node *)lua_touserdata(L, -1);
            lua_pop(L, 1);
        }
        lua_setiuservalue(L, node, i + 1);
    }
    n->out = out;
    lua_setiuservalue(L, out_idx, LT_UV_NODE); /* pops the node */
    out->requires_grad = 1;
    out->flags |= LT_HAS_NODE;
    return n;
}

/* ================================================================ in-place rules */

mg_tensor *lt_inplace(lua_State *L, int idx) {
    mg_tensor *t = lt_check(L, idx);
    mg_ctx *ctx = lt_ctx(L);
    if (mg_check_inplace_target(ctx, 1, t) != MG_OK) lt_raise(L, idx);
    if (t->requires_grad && lt_grad_enabled(L)) {
        const int leaf = lua_getiuservalue(L, idx, LT_UV_NODE) != LUA_TUSERDATA;
        lua_pop(L, 1);
        luaL_argerror(L, idx, leaf ? "a leaf tensor that requires grad cannot be changed in place "
                                     "(do it inside mg.no_grad)"
                                   : "in-place changes of a tensor that is part of a graph are not "
                                     "supported (use the out-of-place form)");
    }
    return t;
}

void lt_inplace_source(lua_State *L, int idx) {
    const mg_tensor *s = lt_test(L, idx);
    if (s && s->requires_grad && lt_grad_enabled(L))
        luaL_argerror(L, idx, "a tensor that requires grad cannot be the source of an in-place write "
                              "(its gradient would be lost: use the out-of-place form)");
}

/* ================================================================ the engine */

static mg_node *node_of(lua_State *L, int tensor_idx) {
    if (lua_getiuservalue(L, tensor_idx, LT_UV_NODE) == LUA_TUSERDATA) {
        mg_node *n = (mg_node *)lua_touserdata(L, -1);
        lua_pop(L, 1);
        return n;
    }
    lua_pop(L, 1);
    return NULL;
}

/* acc += g, of one shape: a plain loop for a few contiguous elements of one floating dtype (the
 * same sums, bit for bit, as mg_binary's add, whose general path costs more than this work), else
 * mg_binary. */
static int small_contiguous(const mg_tensor *t) { return t->numel <= 64 && mg_is_contiguous(t); }
static mg_status add_to(mg_ctx *ctx, mg_tensor *acc, const mg_tensor *g) {
    if (acc->dtype == g->dtype && small_contiguous(acc) && small_contiguous(g) && mg_same_shape(acc, g)) {
        char *a = (char *)mg_tensor_data(acc);
        const char *b = (const char *)mg_tensor_data(g);
        if (a && b && acc->dtype == MG_FLOAT32) {
            for (int64_t i = 0; i < acc->numel; i++) ((float *)a)[i] += ((const float *)b)[i];
            return MG_OK;
        }
        if (a && b && acc->dtype == MG_FLOAT64) {
            for (int64_t i = 0; i < acc->numel; i++) ((double *)a)[i] += ((const double *)b)[i];
            return MG_OK;
        }
    }
    return mg_binary(ctx, MG_BIN_ADD, acc, acc, g);
}

/* The gradient buffer in user value uv of holder (a node's pending gradient, or a leaf's .grad)
 * += g (at g_idx). A fresh g becomes the buffer itself; an existing one is added to in place, as
 * PyTorch does for .grad (so a user's reference to .grad sees the sum). */
static void accumulate(lua_State *L, int holder, int uv, int g_idx) {
    holder = lua_absindex(L, holder);
    g_idx = lua_absindex(L, g_idx);
    if (lua_getiuservalue(L, holder, uv) == LUA_TNIL) {
        lua_pop(L, 1);
        lua_pushvalue(L, g_idx);
        lua_setiuservalue(L, holder, uv);
        return;
    }
    mg_tensor *acc = lt_check(L, -1);
    const mg_tensor *g = lt_check(L, g_idx);
    mg_ctx *ctx = lt_ctx(L);
    if (mg_check_inplace_target(ctx, 1, acc) != MG_OK) {
        /* a .grad the user assigned as an expanded view: the sum goes to a new tensor */
        mg_tensor *sum = lt_push_new(L, (mg_dtype)acc->dtype, acc->ndim, acc->size);
        if (mg_binary(ctx, MG_BIN_ADD, sum, acc, g) != MG_OK) lt_raise(L, 0);
        lua_setiuservalue(L, holder, uv);
        lua_pop(L, 1);
        return;
    }
    if (add_to(ctx, acc, g) != MG_OK) lt_raise(L, 0);
    lt_written(acc);
    lua_pop(L, 1);
}

/* ---- post-accumulate-grad hooks and end-of-pass callbacks ----------------------------------
 * t:register_post_accumulate_grad_hook(fn) (PyTorch 2.x's name and meaning): fn(t) runs once per
 * backward pass, after the pass has summed every gradient it sends to the leaf t into t.grad. It is
 * what data-parallel training needs to start a bucket's allreduce during backward. Before the pass
 * the engine counts how many inputs of the nodes it will run are a hooked leaf t (counts[t], a
 * table made only when some leaf has a hook); each node that passes t (with or without a gradient)
 * lowers the count, and the one that brings it to 0 runs t's hooks if a gradient reached t.
 * autograd.grad does not run them (it leaves .grad alone), as in PyTorch.
 * mg._queue_backward_callback(fn), from a hook, runs fn when the pass's last node has run, before
 * backward returns (PyTorch's engine queue_callback): DDP finishes its allreduces there. */

/* counts[t] holds 2 * (inputs still to pass) + (1 if a gradient reached t) */
static void count_hooked_inputs(lua_State *L, int order, int count, int counts) {
    for (int i = 1; i <= count; i++) {
        lua_rawgeti(L, order, i);
        const mg_node *n = (const mg_node *)lua_touserdata(L, -1);
        for (int j = 1; j <= n->ninputs; j++) {
            lua_getiuservalue(L, -1, j);
            const mg_tensor *t = lt_test(L, -1);
            if (t && t->requires_grad && (t->flags & LT_HAS_HOOK) && !node_of(L, lua_gettop(L))) {
                lua_pushvalue(L, -1);
                const lua_Integer v = lua_rawget(L, counts) == LUA_TNUMBER ? lua_tointeger(L, -1) : 0;
                lua_pop(L, 1);
                lua_pushinteger(L, v + 2);
                lua_rawset(L, counts);
            } else {
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
    }
}

/* Runs the hooks of the leaf at idx: fn(t) for each, in the order registered. */
static void run_hooks(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    lua_getiuservalue(L, lua_upvalueindex(1), LT_CTX_UV_HOOKS);
    lua_pushvalue(L, idx);
    if (lua_rawget(L, -2) == LUA_TTABLE) {
        const lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            if (lua_rawgeti(L, -1, i) == LUA_TFUNCTION) {
                lua_pushvalue(L, idx);
                lua_call(L, 1, 0);
            } else {
                lua_pop(L, 1);
            }
        }
    }
    lua_pop(L, 2);
}

/* The node at node_idx has passed its inputs on (got: with a gradient): count the hooked leaves. */
static void pass_hooked_inputs(lua_State *L, int node_idx, int counts, int got) {
    const mg_node *n = (const mg_node *)lua_touserdata(L, node_idx);
    for (int j = 1; j <= n->ninputs; j++) {
        lua_getiuservalue(L, node_idx, j);
        const int in = lua_gettop(L);
        lua_pushvalue(L, in);
        if (lua_rawget(L, counts) == LUA_TNUMBER) {
            const lua_Integer v = (lua_tointeger(L, -1) - 2) | (got ? 1 : 0);
            lua_pushvalue(L, in);
            lua_pushinteger(L, v);
            lua_rawset(L, counts);
            if (v == 1) run_hooks(L, in);
        }
        lua_settop(L, in - 1);
    }
}

/* t:register_post_accumulate_grad_hook(fn): a handle whose remove() takes the hook off again. */
static int l_remove_hook(lua_State *L) {
    lua_pushvalue(L, lua_upvalueindex(1)); /* the leaf's list */
    const lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        const int same = lua_rawequal(L, -1, lua_upvalueindex(2));
        lua_pop(L, 1);
        if (same) { /* shift the rest down (table.remove) */
            for (; i < n; i++) {
                lua_rawgeti(L, -1, i + 1);
                lua_rawseti(L, -2, i);
            }
            lua_pushnil(L);
            lua_rawseti(L, -2, n);
            break;
        }
    }
    return 0;
}

static int l_register_post_accumulate_grad_hook(lua_State *L) {
    mg_tensor *t = lt_check(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    if (!t->requires_grad)
        return lt_argerror(L, 1, "cannot register a hook on a tensor that does not require grad");
    if (node_of(L, 1))
        return lt_argerror(L, 1, "post accumulate grad hooks cannot be registered on non-leaf tensors");
    lua_getiuservalue(L, lua_upvalueindex(1), LT_CTX_UV_HOOKS);
    lua_pushvalue(L, 1);
    if (lua_rawget(L, -2) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, 1);
        lua_pushvalue(L, -2);
        lua_rawset(L, -4);
    }
    lua_pushvalue(L, 2);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    t->flags |= LT_HAS_HOOK;
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, -2);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, l_remove_hook, 2);
    lua_setfield(L, -2, "remove");
    return 1;
}

/* Runs (and empties) the callbacks queued during the pass, in the order queued. */
static void run_callbacks(lua_State *L) {
    for (;;) {
        lua_getiuservalue(L, lua_upvalueindex(1), LT_CTX_UV_CALLBACKS);
        const lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
        if (n == 0) {
            lua_pop(L, 1);
            return;
        }
        lua_newtable(L);
        lua_setiuservalue(L, lua_upvalueindex(1), LT_CTX_UV_CALLBACKS);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            lua_call(L, 0, 0);
        }
        lua_pop(L, 1);
    }
}

static int l_queue_backward_callback(lua_State *L) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    if (!lt_ctx(L)->backward_running)
        return luaL_error(L, "'_queue_backward_callback': no backward pass is running (call it from a hook)");
    lua_getiuservalue(L, lua_upvalueindex(1), LT_CTX_UV_CALLBACKS);
    lua_pushvalue(L, 1);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    return 0;
}

/* Orders the nodes reachable from the node at `root` into the table at `order` (post-order:
 * inputs before the nodes that use them), with an explicit stack in the table at `stack`. The
 * inputs' nodes are read from the node (operand[i].node): only a node still to order is pushed. */
static int order_nodes(lua_State *L, int root, int order, int stack, uint32_t pass) {
    int depth = 0, count = 0;
    lua_pushvalue(L, root);
    lua_rawseti(L, stack, ++depth);
    while (depth > 0) {
        lua_rawgeti(L, stack, depth);
        const int top = lua_gettop(L);
        mg_node *n = (mg_node *)lua_touserdata(L, top);
        if (n->seen != pass) {
            n->seen = pass;
            const int before = depth;
            for (int i = 0; i < n->ninputs; i++) {
                const mg_node *m = n->operand[i].node;
                if (m && m->seen != pass) {
                    lua_getiuservalue(L, top, i + 1);
                    lua_getiuservalue(L, -1, LT_UV_NODE);
                    lua_rawseti(L, stack, ++depth);
                    lua_pop(L, 1);
                }
            }
            if (depth != before) { /* it follows its inputs' nodes: seen again once they are ordered */
                lua_settop(L, top - 1);
                continue;
            }
        }
        depth--; /* its slot is overwritten or left: the table is weak (work_table) */
        if (n->done != pass) {
            n->done = pass;
            lua_pushvalue(L, top);
            lua_rawseti(L, order, ++count);
        }
        lua_settop(L, top - 1);
    }
    return count;
}

/* The gradient pending at node m in this pass, or NULL (one left by an earlier pass that raised
 * counts as none). */
static mg_tensor *pending_of(const mg_node *m, uint32_t pass) {
    return m->pending_pass == pass ? m->pending : NULL;
}

/* The gradient pending at node m (its userdata at node_idx) += g (at g_idx): a first g becomes the
 * pending gradient itself, a later one is added to it in place. */
static void pending_add(lua_State *L, int node_idx, mg_node *m, int g_idx, uint32_t pass) {
    node_idx = lua_absindex(L, node_idx);
    g_idx = lua_absindex(L, g_idx);
    mg_tensor *g = lt_check(L, g_idx), *acc = pending_of(m, pass);
    if (acc) {
        mg_ctx *ctx = lt_ctx(L);
        if (mg_check_inplace_target(ctx, 1, acc) == MG_OK) {
            if (add_to(ctx, acc, g) != MG_OK) lt_raise(L, 0);
            lt_written(acc);
            return;
        }
        g = lt_push_new(L, (mg_dtype)acc->dtype, acc->ndim, acc->size); /* the sum, in a new tensor */
        if (mg_binary(ctx, MG_BIN_ADD, g, acc, lt_check(L, g_idx)) != MG_OK) lt_raise(L, 0);
    } else {
        lua_pushvalue(L, g_idx);
    }
    lua_setiuservalue(L, node_idx, uv_pending(m));
    m->pending = g;
    m->pending_pass = pass;
}

/* Drops the gradient pending at node n (at node_idx). */
static void pending_clear(lua_State *L, int node_idx, mg_node *n) {
    if (n->pending != n->gbuf) { /* gbuf is the node's own: no user value held it */
        lua_pushnil(L);
        lua_setiuservalue(L, node_idx, uv_pending(n));
    }
    n->pending = NULL;
    n->pending_pass = 0;
}

/* The capture table (autograd.grad): maps an input tensor to its position in the results. */
static int captured(lua_State *L, int capture, int tensor_idx) {
    if (!capture) return 0;
    lua_pushvalue(L, tensor_idx);
    const int pos = lua_rawget(L, capture) == LUA_TNUMBER ? (int)lua_tointeger(L, -1) : 0;
    lua_pop(L, 1);
    return pos;
}

/* Sends gradient g (at g_idx) to the input at in_idx (made by node m, NULL for a leaf): captured,
 * into its node, or into .grad. */
static void route(lua_State *L, int in_idx, mg_node *m, int g_idx, int capture, int results, uint32_t pass) {
    const mg_tensor *in = lt_check(L, in_idx);
    const int pos = captured(L, capture, in_idx);
    if (pos) { /* autograd.grad: collect, and do not touch .grad */
        lua_rawgeti(L, results, pos);
        if (lua_isnil(L, -1)) {
            lua_pushvalue(L, g_idx);
            lua_rawseti(L, results, pos);
        } else {
            mg_tensor *acc = lt_check(L, -1);
            if (add_to(lt_ctx(L), acc, lt_check(L, g_idx)) != MG_OK) lt_raise(L, 0);
        }
        lua_pop(L, 1);
        /* a captured non-leaf still passes its gradient on (other captured inputs may need it) */
    }
    if (m) {
        lua_getiuservalue(L, in_idx, LT_UV_NODE);
        const int node = lua_gettop(L);
        if (pos) { /* pass a copy on: the captured tensor must not be summed into again */
            mg_tensor *copy = lt_push_new(L, (mg_dtype)in->dtype, in->ndim, in->size);
            mg_copy(lt_ctx(L), copy, lt_check(L, g_idx));
            pending_add(L, node, m, -1, pass);
            lua_pop(L, 1);
        } else {
            pending_add(L, node, m, g_idx, pass);
        }
        if (!capture && (in->flags & LT_RETAINS_GRAD)) {
            mg_tensor *copy = lt_push_new(L, (mg_dtype)in->dtype, in->ndim, in->size);
            mg_copy(lt_ctx(L), copy, lt_check(L, g_idx));
            accumulate(L, in_idx, LT_UV_GRAD, -1);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        return;
    }
    if (!capture) accumulate(L, in_idx, LT_UV_GRAD, g_idx);
}

static void check_versions(lua_State *L, const mg_node *n) {
    for (int i = 0; i < n->ninputs + n->nsaved; i++) {
        const mg_tensor *t = n->operand[i].t;
        if (t->storage->version != n->operand[i].version)
            luaL_error(L, "'backward': a tensor needed to compute gradients was changed in place after "
                          "it was used (version %d, expected %d): compute it again, or change a clone()",
                       (int)t->storage->version, (int)n->operand[i].version);
    }
}

/* Where input `in` (at in_idx) already has a gradient buffer that the rule's result can be summed
 * into in place: a leaf's .grad, or a non-leaf's pending gradient, of in's shape and dtype and not
 * expanded. NULL when there is none (the first gradient to arrive becomes the buffer itself), for
 * a non-leaf that retains its gradient, or for a released .grad: the general path handles those.
 * The buffer stays reachable through the input's user values while the caller uses it. */
static mg_tensor *sum_target(lua_State *L, int in_idx, const mg_tensor *in, const mg_node *m, uint32_t pass) {
    mg_tensor *acc = NULL;
    if (m) {
        if (!(in->flags & LT_RETAINS_GRAD)) acc = pending_of(m, pass);
    } else {
        if (lua_getiuservalue(L, in_idx, LT_UV_GRAD) == LUA_TUSERDATA) acc = lt_test(L, -1);
        lua_pop(L, 1);
    }
    if (!acc || !lt_usable(acc) || acc->dtype != in->dtype || !mg_same_shape(acc, in)) return NULL;
    for (int d = 0; d < acc->ndim; d++)
        if (acc->stride[d] == 0 && acc->size[d] > 1) return NULL;
    return acc;
}

/* acc += the rule's gradient for input i, computed into a temporary on the C stack (or from the
 * allocator when large, freed before any Lua error): no tensor userdata per gradient. 16 KiB on
 * the stack (this frame is not recursive) takes a 64 x 64 float32 weight's gradient, W8's largest:
 * its malloc and free cost ~750 instructions, a ninth of the add itself. */
static void add_rule_result(lua_State *L, mg_ctx *ctx, const mg_backward_args *args, int i, mg_tensor *acc) {
    mg_status into;
    if (mg_backward_into(ctx, args, i, acc, &into)) { /* the rule summed it into acc itself */
        if (into != MG_OK) lt_raise(L, 0);
        lt_written(acc);
        return;
    }
    const mg_tensor *in = args->inputs[i];
    const size_t bytes = (size_t)in->numel * mg_dtype_size((mg_dtype)in->dtype);
    _Alignas(64) char small[16384];
    mg_scratch sc;
    memset(&sc.t, 0, sizeof sc.t);
    memset(&sc.s, 0, sizeof sc.s);
    sc.s.data = bytes <= sizeof small ? small : (char *)mg_alloc(ctx, bytes);
    if (!sc.s.data) luaL_error(L, "'backward': not enough memory for a %d-byte gradient", (int)bytes);
    sc.s.nbytes = bytes;
    sc.t.storage = &sc.s;
    sc.t.size = sc.dims;
    sc.t.stride = sc.dims + MG_MAX_DIMS;
    sc.t.ndim = in->ndim;
    sc.t.dtype = in->dtype;
    sc.t.numel = in->numel;
    if (in->ndim) memcpy(sc.t.size, in->size, sizeof(int64_t) * in->ndim);
    mg_contiguous_strides(in->ndim, in->size, sc.t.stride);
    mg_status st = mg_backward(ctx, args, i, &sc.t);
    if (st == MG_OK) st = add_to(ctx, acc, &sc.t);
    if (sc.s.data != small) mg_free(ctx, sc.s.data, bytes);
    if (st != MG_OK) lt_raise(L, 0);
    lt_written(acc);
}

/* The input that receives the node's output gradient as it is (no rule run, no copy), or -1: an
 * input that requires grad whose rule is the identity (add, sub's first operand) and that has the
 * gradient's shape and dtype, the last such. Only one input, so that no two holders share one
 * buffer (a buffer is summed into in place); the gradient is the node's own, dropped when the node
 * has run. The inputs after it still read the gradient in their rules: nothing writes into it
 * before run_node ends (a holder sums into its pending gradient only when a second one arrives,
 * and one arriving from this node for the same input, x + x, was computed before). So W5's
 * `X w + b` hands X w its gradient and sums b's, without a 4 MB copy. */
static int identity_input(const mg_node *n, const mg_tensor *const *inputs, const mg_tensor *gout) {
    for (int i = n->ninputs - 1; i >= 0; i--)
        if (inputs[i]->requires_grad && mg_backward_is_identity(n, i) && inputs[i]->dtype == gout->dtype &&
            mg_same_shape(inputs[i], gout))
            return i;
    return -1;
}

/* Inputs of at least this many elements get a uniform gradient as a view (run_node); below it,
 * filling is cheaper than the two tensors the view takes. */
#define UNIFORM_MIN 16384

/* Runs one node: its output's gradient through the rule to each input that requires grad. */
static void run_node(lua_State *L, int node_idx, int retain, int capture, int results, int counts, uint32_t pass) {
    mg_ctx *ctx = lt_ctx(L);
    mg_node *n = (mg_node *)lua_touserdata(L, node_idx);
    const int base = lua_gettop(L);
    const mg_tensor *g = pending_of(n, pass);
    if (!g) { /* no gradient reached it */
        if (counts) pass_hooked_inputs(L, node_idx, counts, 0);
        return;
    }
    const int in_gbuf = g == n->gbuf;
    int gout = 0;
    if (!in_gbuf) {
        lua_getiuservalue(L, node_idx, uv_pending(n)); /* g, for routing */
        gout = lua_gettop(L);
    }
    if (n->flags & MG_NODE_FREED)
        luaL_error(L, "cannot run 'backward' twice through a freed graph (pass {retain_graph = true} "
                      "to the first backward)");
    check_versions(L, n);
    /* the operands' descriptors (borrowed from the node): on the C stack, or in a userdata for a
     * wide node (mg.cat of many tensors), so that nothing malloc'd is held across errors */
    const int nops = n->ninputs + n->nsaved;
    const mg_tensor *small[16];
    const mg_tensor **ops = small;
    if (nops > 16) ops = (const mg_tensor **)lua_newuserdatauv(L, sizeof *ops * (size_t)nops, 0);
    for (int i = 0; i < nops; i++) ops[i] = n->operand[i].t;
    const mg_tensor *const *inputs = ops, *const *saved = ops + n->ninputs;
    const mg_backward_args args = {n, inputs, saved, n->out, g};
    /* the engine's shared gradient of ones is never handed on (see push_root_grad) */
    const int pass_on = in_gbuf || (g->flags & LT_SHARED_GRAD) ? -1 : identity_input(n, inputs, g);
    for (int i = 0; i < n->ninputs; i++) {
        if (!inputs[i]->requires_grad) continue;
        mg_node *m = n->operand[i].node;
        lua_getiuservalue(L, node_idx, i + 1); /* the input, for routing */
        const int input = lua_gettop(L);
        mg_tensor *acc = capture ? NULL : sum_target(L, input, inputs[i], m, pass);
        if (i == pass_on) { /* the gradient itself, without a copy (see identity_input) */
            if (acc) {
                if (add_to(ctx, acc, args.gout) != MG_OK) lt_raise(L, 0);
                lt_written(acc);
            } else {
                route(L, input, m, gout, capture, results, pass);
            }
            lua_pop(L, 1);
            continue;
        }
        if (acc) { /* the common case of a training loop: .grad exists (zeroed), or a fan-in */
            add_rule_result(L, ctx, &args, i, acc);
            lua_pop(L, 1);
            continue;
        }
        if (m && !capture && g->numel == 1 && inputs[i]->numel >= UNIFORM_MIN &&
            !(inputs[i]->flags & LT_RETAINS_GRAD) && mg_backward_reads_elementwise(m)) {
            /* a sum or mean of all of a large input (a loss's mean): its gradient is one value,
             * handed on as a stride-0 view of it (mg_backward_uniform), to a node whose rule reads
             * it elementwise: the same bits as a filled copy, without writing and reading it */
            const mg_dtype dt = (mg_dtype)inputs[i]->dtype;
            mg_scalar value; /* on the C stack: a tensor is made only when the rule has one value */
            mg_scalar_init(&value, dt, 0, 0);
            mg_status st;
            if (mg_backward_uniform(ctx, &args, i, &value.t, &st)) {
                if (st != MG_OK) lt_raise(L, 0);
                mg_tensor *one = lt_push_new(L, dt, 0, NULL);
                memcpy(mg_tensor_data(one), mg_tensor_data(&value.t), mg_dtype_size(dt));
                mg_tensor *v = lt_push_view(L, -1, inputs[i]->ndim);
                for (int d = 0; d < inputs[i]->ndim; d++) v->size[d] = inputs[i]->size[d], v->stride[d] = 0;
                v->numel = inputs[i]->numel;
                route(L, input, m, lua_gettop(L), capture, results, pass);
                lua_pop(L, 3);
                continue;
            }
        }
        if (m && m->gbuf && !capture && !(inputs[i]->flags & LT_RETAINS_GRAD)) {
            /* the first gradient for a small non-leaf: into its node's own buffer (no tensor) */
            if (mg_backward(ctx, &args, i, m->gbuf) != MG_OK) lt_raise(L, 0);
            m->pending = m->gbuf;
            m->pending_pass = pass;
            lua_pop(L, 1);
            continue;
        }
        mg_tensor *gin = lt_push_new(L, (mg_dtype)inputs[i]->dtype, inputs[i]->ndim, inputs[i]->size);
        if (mg_backward(ctx, &args, i, gin) != MG_OK) lt_raise(L, 0);
        route(L, input, m, lua_gettop(L), capture, results, pass);
        lua_pop(L, 2);
    }
    pending_clear(L, node_idx, n);
    if (counts) pass_hooked_inputs(L, node_idx, counts, 1);
    if (!retain) { /* free what only backward needed: the saved tensors */
        n->flags |= MG_NODE_FREED;
        for (int i = n->ninputs + 1; i <= n->ninputs + n->nsaved; i++) {
            lua_pushnil(L);
            lua_setiuservalue(L, node_idx, i);
        }
    }
    lua_settop(L, base);
}

/* Fills t (contiguous, of a floating dtype, or zero v) with v: a plain loop for the few elements
 * of a loss or a small .grad, where mg_fill's general path costs more than the work. */
static void fill_contiguous(mg_ctx *ctx, mg_tensor *t, double v) {
    void *p = mg_tensor_data(t);
    if (small_contiguous(t)) {
        if (t->dtype == MG_FLOAT32) {
            for (int64_t i = 0; i < t->numel; i++) ((float *)p)[i] = (float)v;
            return;
        }
        if (t->dtype == MG_FLOAT64) {
            for (int64_t i = 0; i < t->numel; i++) ((double *)p)[i] = v;
            return;
        }
    }
    mg_fill(ctx, t, v, (int64_t)v);
}

/* The gradient for root: given (converted to root's dtype and checked), or 1 for one element. */
static void push_root_grad(lua_State *L, int root, int grad_arg, const char *fn) {
    const mg_tensor *t = lt_check(L, root);
    if (grad_arg && !lua_isnoneornil(L, grad_arg)) {
        const mg_tensor *g = lt_check(L, grad_arg);
        if (!mg_same_shape(g, t))
            lt_argerror(L, grad_arg, "gradient of shape %s does not match the tensor's shape %s",
                        lt_push_shape(L, g->ndim, g->size), lt_push_shape(L, t->ndim, t->size));
        mg_tensor *copy = lt_push_new(L, (mg_dtype)t->dtype, t->ndim, t->size);
        mg_copy(lt_ctx(L), copy, g);
        return;
    }
    if (t->numel != 1)
        luaL_error(L, "'%s' of a tensor of shape %s needs a gradient argument (implicit only for one "
                      "element, as for a loss)", fn, lt_push_shape(L, t->ndim, t->size));
    if (t->ndim == 0 && (t->dtype == MG_FLOAT32 || t->dtype == MG_FLOAT64)) {
        /* a 0-d loss: the engine's own 0-d one, made once per dtype and kept in the ctx's
         * LT_CTX_UV_ORDER table (key ORDER_ONES_F32 / _F64). It only ever is the root
         * node's pending gradient, read by its rule: never handed on to a holder (run_node), never
         * a leaf's .grad (backward_pass copies it for a leaf root), copied where autograd.grad or
         * retain_grad keep it (backward_pass). */
        const lua_Integer key = t->dtype == MG_FLOAT32 ? ORDER_ONES_F32 : ORDER_ONES_F64;
        lua_getiuservalue(L, lua_upvalueindex(1), LT_CTX_UV_ORDER);
        mg_tensor *one;
        if (lua_rawgeti(L, -1, key) == LUA_TUSERDATA) {
            one = (mg_tensor *)lua_touserdata(L, -1);
        } else {
            lua_pop(L, 1);
            one = lt_push_new(L, (mg_dtype)t->dtype, 0, NULL);
            one->flags |= LT_SHARED_GRAD;
            lua_pushvalue(L, -1);
            lua_rawseti(L, -3, key);
        }
        if (one->dtype == MG_FLOAT32) *(float *)mg_tensor_data(one) = 1.0f;
        else *(double *)mg_tensor_data(one) = 1.0;
        lua_remove(L, -2);
        return;
    }
    mg_tensor *one = lt_push_new(L, (mg_dtype)t->dtype, t->ndim, t->size);
    fill_contiguous(lt_ctx(L), one, 1.0);
}

/* Pushes the engine's work table at `key` of the ctx's LT_CTX_UV_ORDER table (made there once),
 * below that table, which the caller pushed: 
 * with weak values, so that the nodes a pass leaves in it (a pass orders its graph's nodes there,
 * and uses the other as its depth-first stack) never keep a graph alive, and nothing needs
 * clearing. While a pass runs its nodes are reachable from its root (a node's inputs stay in its
 * user values), so none is collected out of the table. Returns its stack index. */
static int work_table(lua_State *L, lua_Integer key) {
    if (lua_rawgeti(L, -1, key) != LUA_TTABLE) { /* the LT_CTX_UV_ORDER table is at the top */
        lua_pop(L, 1);
        lua_newtable(L);
        lua_createtable(L, 0, 1);
        lua_pushliteral(L, "v");
        lua_setfield(L, -2, "__mode");
        lua_setmetatable(L, -2);
        lua_pushvalue(L, -1);
        lua_rawseti(L, -3, key);
    }
    lua_insert(L, -2); /* below the LT_CTX_UV_ORDER table */
    return lua_gettop(L) - 1;
}

/* Backward from the tensor at root with its gradient at grad_idx. */
static void backward_pass(lua_State *L, int root, int grad_idx, int retain, int capture, int results) {
    mg_ctx *ctx = lt_ctx(L);
    const int base = lua_gettop(L);
    if (lua_getiuservalue(L, root, LT_UV_NODE) != LUA_TUSERDATA) { /* a leaf */
        lua_pop(L, 1);
        const mg_tensor *g = lt_check(L, grad_idx);
        if (g->flags & LT_SHARED_GRAD) { /* the shared one must not become .grad: a tensor of its own */
            mg_tensor *copy = lt_push_new(L, (mg_dtype)g->dtype, g->ndim, g->size);
            mg_copy(ctx, copy, g);
            grad_idx = lua_gettop(L);
        }
        route(L, root, NULL, grad_idx, capture, results, 0);
        if (!capture && (lt_check(L, root)->flags & LT_HAS_HOOK)) run_hooks(L, root);
        return;
    }
    const int node = lua_gettop(L);
    mg_node *n = (mg_node *)lua_touserdata(L, node);
    /* two weak work tables, reused by every pass (work_table) */
    lua_getiuservalue(L, lua_upvalueindex(1), LT_CTX_UV_ORDER);
    const int order = work_table(L, ORDER_NODES);
    const int stack = work_table(L, ORDER_STACK);
    /* a pass's number marks what it visits and the gradients pending in it: a gradient that an
     * earlier pass that raised (a freed graph, a changed input) left in a node is not this pass's */
    if (++ctx->backward_pass == 0) ctx->backward_pass = 1; /* 0: never a pass (new nodes hold 0) */
    const uint32_t pass = ctx->backward_pass;
    const int count = order_nodes(L, node, order, stack, pass);
    int counts = 0; /* hooked leaves -> inputs still to pass: only when some leaf has a hook */
    lua_getiuservalue(L, lua_upvalueindex(1), LT_CTX_UV_HOOKS);
    lua_pushnil(L);
    const int any_hook = lua_next(L, -2) != 0;
    lua_settop(L, stack);
    if (!capture && any_hook) {
        lua_newtable(L);
        counts = lua_gettop(L);
        count_hooked_inputs(L, order, count, counts);
    }
    const int pos = captured(L, capture, root);
    if (pos) { /* autograd.grad(y, y): d y / d y is the gradient given */
        mg_tensor *g = lt_check(L, grad_idx);
        mg_tensor *copy = lt_push_new(L, (mg_dtype)g->dtype, g->ndim, g->size);
        mg_copy(ctx, copy, g);
        lua_rawseti(L, results, pos);
    }
    if (!capture && (lt_check(L, root)->flags & LT_RETAINS_GRAD)) { /* y:retain_grad(); y:backward() */
        mg_tensor *g = lt_check(L, grad_idx);
        mg_tensor *copy = lt_push_new(L, (mg_dtype)g->dtype, g->ndim, g->size);
        mg_copy(ctx, copy, g);
        accumulate(L, root, LT_UV_GRAD, -1);
        lua_pop(L, 1);
    }
    pending_add(L, node, n, grad_idx, pass);
    for (int i = count; i >= 1; i--) {
        lua_rawgeti(L, order, i);
        run_node(L, lua_gettop(L), retain, capture, results, counts, pass);
        lua_pop(L, 1);
    }
    lua_settop(L, base);
}

/* backward_pass with its arguments on the stack (root, gradient, capture or nil, results or nil,
 * retain), run by lua_pcall from run_backward. */
static int backward_protected(lua_State *L) {
    backward_pass(L, 1, 2, lua_toboolean(L, 5), lua_isnil(L, 3) ? 0 : 3, lua_isnil(L, 4) ? 0 : 4);
    run_callbacks(L);
    return 0;
}

/* The work tables and the pending gradients in the nodes serve one pass at a time. A second pass
 * started while one runs (backward from a __gc finalizer that an allocation of the first pass ran)
 * would overwrite them under the first: it is refused. The pass runs protected, so that an error
 * ending it also ends the mark, and is raised again unchanged. */
static void run_backward(lua_State *L, int root, int grad_idx, int retain, int capture, int results) {
    mg_ctx *ctx = lt_ctx(L);
    if (ctx->backward_running)
        luaL_error(L, "backward: another backward pass of this state is running (was this called from a "
                      "finalizer?); run it after that pass returns");
    lua_getiuservalue(L, lua_upvalueindex(1), LT_CTX_UV_ORDER);
    if (lua_rawgeti(L, -1, ORDER_PASS) != LUA_TFUNCTION) { /* made once per state, kept there */
        lua_pop(L, 1);
        for (int up = 1; up <= 3; up++) lua_pushvalue(L, lua_upvalueindex(up));
        lua_pushcclosure(L, backward_protected, 3);
        lua_pushvalue(L, -1);
        lua_rawseti(L, -3, ORDER_PASS);
    }
    lua_remove(L, -2);
    lua_pushvalue(L, root);
    lua_pushvalue(L, grad_idx);
    if (capture) lua_pushvalue(L, capture); else lua_pushnil(L);
    if (results) lua_pushvalue(L, results); else lua_pushnil(L);
    lua_pushboolean(L, retain);
    ctx->backward_running = 1;
    const int status = lua_pcall(L, 5, 0, 0);
    ctx->backward_running = 0;
    if (status != LUA_OK) { /* callbacks queued by a pass that raised do not run later */
        lua_newtable(L);
        lua_setiuservalue(L, lua_upvalueindex(1), LT_CTX_UV_CALLBACKS);
        lua_error(L);
    }
}

static int opt_retain(lua_State *L, int idx) {
    if (lua_type(L, idx) != LUA_TTABLE) return 0;
    static const char *const valid[] = {"retain_graph", NULL};
    lt_check_opts(L, idx, valid);
    lua_getfield(L, idx, "retain_graph");
    const int r = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return r;
}

/* t:backward([gradient] [, {retain_graph = false}]) */
static int l_backward(lua_State *L) {
    const mg_tensor *t = lt_check(L, 1);
    if (lua_gettop(L) == 1 && t->requires_grad) { /* loss:backward(), the common call */
        push_root_grad(L, 1, 0, "backward");
        run_backward(L, 1, 2, 0, 0, 0);
        return 0;
    }
    int grad_arg = 0, opts = 0;
    if (lt_test(L, 2)) grad_arg = 2;
    else if (lt_is_opts(L, 2) || (lua_type(L, 2) == LUA_TTABLE && lua_rawlen(L, 2) == 0)) opts = 2;
    else if (!lua_isnoneornil(L, 2)) return luaL_typeerror(L, 2, "tensor (the gradient) or options table");
    if (grad_arg && lua_type(L, 3) == LUA_TTABLE) opts = 3;
    else if (!lua_isnoneornil(L, 3)) return luaL_typeerror(L, 3, "options table");
    const int retain = opts ? opt_retain(L, opts) : 0;
    if (!t->requires_grad)
        return luaL_error(L, "'backward': the tensor does not require grad (no input of the computation "
                             "was made with requires_grad = true, or it ran inside no_grad)");
    lua_settop(L, 3);
    push_root_grad(L, 1, grad_arg, "backward");
    run_backward(L, 1, lua_gettop(L), retain, 0, 0);
    return 0;
}

/* mg.autograd.grad(outputs, inputs [, grad_outputs] [, {retain_graph}]): a list of gradients of
 * the outputs' sum with respect to each input, in the inputs' order, .grad untouched. An input the
 * outputs do not depend on gets zeros of its shape (PyTorch raises unless allow_unused, and then
 * gives None; zeros keep the list without holes and are the true derivative). outputs, inputs and
 * grad_outputs are lists, or one tensor each. */
static int l_grad(lua_State *L) {
    lua_settop(L, 4);
    if (lt_test(L, 1)) { /* one tensor: a list of one */
        lua_createtable(L, 1, 0);
        lua_pushvalue(L, 1);
        lua_rawseti(L, -2, 1);
        lua_replace(L, 1);
    }
    if (lt_test(L, 2)) {
        lua_createtable(L, 1, 0);
        lua_pushvalue(L, 2);
        lua_rawseti(L, -2, 1);
        lua_replace(L, 2);
    }
    if (lt_test(L, 3)) {
        lua_createtable(L, 1, 0);
        lua_pushvalue(L, 3);
        lua_rawseti(L, -2, 1);
        lua_replace(L, 3);
    }
    if (lua_type(L, 1) != LUA_TTABLE) return luaL_typeerror(L, 1, "tensor or list of tensors");
    if (lua_type(L, 2) != LUA_TTABLE) return luaL_typeerror(L, 2, "tensor or list of tensors");
    int grads = 0, opts = 0;
    if (lt_is_opts(L, 3)) opts = 3;
    else if (lua_type(L, 3) == LUA_TTABLE) grads = 3;
    else if (!lua_isnil(L, 3)) return luaL_typeerror(L, 3, "tensor, list of tensors or options table");
    if (lt_is_opts(L, 4)) opts = 4;
    else if (!lua_isnil(L, 4)) return luaL_typeerror(L, 4, "options table");
    const int retain = opts ? opt_retain(L, opts) : 0;
    const int ninputs = (int)lua_rawlen(L, 2);
    lua_newtable(L);
    const int capture = lua_gettop(L);
    for (int i = 1; i <= ninputs; i++) {
        lua_rawgeti(L, 2, i);
        const mg_tensor *t = lt_test(L, -1);
        if (!t || !t->requires_grad)
            return lt_argerror(L, 2, "inputs[%d] is not a tensor that requires grad", i);
        lua_pushinteger(L, i);
        lua_rawset(L, capture);
    }
    lua_createtable(L, ninputs, 0);
    const int results = lua_gettop(L);
    const int noutputs = (int)lua_rawlen(L, 1);
    for (int i = 1; i <= noutputs; i++) {
        lua_rawgeti(L, 1, i);
        const int out = lua_gettop(L);
        const mg_tensor *t = lt_test(L, out);
        if (!t || !t->requires_grad)
            return lt_argerror(L, 1, "outputs[%d] is not a tensor that requires grad", i);
        int g = 0;
        if (grads) {
            lua_rawgeti(L, grads, i);
            g = lua_gettop(L);
        }
        if (g && !lua_isnil(L, g) && !lt_test(L, g))
            return lt_argerror(L, 3, "grad_outputs[%d] is not a tensor", i);
        push_root_grad(L, out, g, "grad");
        run_backward(L, out, lua_gettop(L), retain || i < noutputs, capture, results);
        lua_settop(L, results);
    }
    for (int i = 1; i <= ninputs; i++) { /* zeros for the inputs the outputs do not depend on */
        if (lua_rawgeti(L, results, i) == LUA_TNIL) {
            lua_rawgeti(L, 2, i);
            const mg_tensor *in = lt_check(L, -1);
            lt_push_zeros(L, (mg_dtype)in->dtype, in->ndim, in->size);
            lua_rawseti(L, results, i);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    lua_settop(L, results);
    return 1;
}

/* ================================================================ tensor-level API */

/* Sets requires_grad of the tensor at stack index 1 (PyTorch's rules: a non-leaf already requires
 * grad and cannot drop it; only floating point tensors can require it). Returns NULL when allowed,
 * or the reason. */
static const char *set_requires_grad(lua_State *L, mg_tensor *t, int flag) {
    if (node_of(L, 1)) {
        if (flag) return NULL; /* a non-leaf requires grad already */
        return "only leaf tensors can change requires_grad (use detach() for a tensor without "
               "history)";
    }
    if (flag && !mg_is_floating((mg_dtype)t->dtype))
        return lua_pushfstring(L, "only floating point tensors can require gradients, got %s",
                               mg_dtype_name((mg_dtype)t->dtype));
    t->requires_grad = (uint8_t)flag;
    return NULL;
}

/* t:requires_grad_([flag = true]): returns t */
static int l_requires_grad_(lua_State *L) {
    mg_tensor *t = lt_check(L, 1);
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TBOOLEAN);
    const char *why = set_requires_grad(L, t, lua_isnoneornil(L, 2) ? 1 : lua_toboolean(L, 2));
    if (why) return luaL_argerror(L, 1, why);
    lua_settop(L, 1);
    return 1;
}

static int l_retain_grad(lua_State *L) {
    mg_tensor *t = lt_check(L, 1);
    if (!t->requires_grad)
        return luaL_argerror(L, 1, "cannot retain the gradient of a tensor that does not require grad");
    if (node_of(L, 1)) t->flags |= LT_RETAINS_GRAD; /* a leaf keeps its .grad anyway */
    lua_settop(L, 1);
    return 1;
}

/* t:zero_grad([{set_to_none = false}]): zeroes .grad in place (set_to_none drops it instead);
 * returns t */
static int l_zero_grad(lua_State *L) {
    lt_check(L, 1);
    int to_none = 0;
    if (!lua_isnoneornil(L, 2)) {
        static const char *const valid[] = {"set_to_none", NULL};
        luaL_checktype(L, 2, LUA_TTABLE);
        lt_check_opts(L, 2, valid);
        lua_getfield(L, 2, "set_to_none");
        to_none = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    if (to_none) {
        lua_pushnil(L);
        lua_setiuservalue(L, 1, LT_UV_GRAD);
    } else if (lua_getiuservalue(L, 1, LT_UV_GRAD) == LUA_TUSERDATA) {
        mg_tensor *g = lt_check(L, -1);
        fill_contiguous(lt_ctx(L), g, 0);
        lt_written(g);
    }
    lua_settop(L, 1);
    return 1;
}

/* mg._zero_grads(params, from): t:zero_grad() for params[from], params[from + 1], ... in one call
 * (an optimizer's zero_grad). Returns nothing when done, or the index of an element it leaves to
 * t:zero_grad (not a tensor, or a tensor or .grad closed by <close>: its error), to resume after. */
static int l_zero_grads(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    mg_ctx *ctx = lt_ctx(L);
    const lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
    for (lua_Integer i = luaL_checkinteger(L, 2); i <= n; i++) {
        lua_rawgeti(L, 1, i);
        const mg_tensor *t = lt_test(L, -1);
        if (!t || !lt_usable(t)) {
            lua_pushinteger(L, i);
            return 1;
        }
        if (lua_getiuservalue(L, -1, LT_UV_GRAD) == LUA_TUSERDATA) {
            mg_tensor *g = lt_test(L, -1);
            if (!g || !lt_usable(g)) {
                lua_pushinteger(L, i);
                return 1;
            }
            fill_contiguous(ctx, g, 0);
            lt_written(g);
        }
        lua_pop(L, 2);
    }
    return 0;
}

/* ---- grad mode ------------------------------------------------------------------------------ */
/* Grad mode belongs to a coroutine, as PyTorch's to a thread: a coroutine that yields inside
 * no_grad leaves the others recording. The modes live in a weak-keyed table, coroutine -> boolean,
 * holding the coroutines inside no_grad / enable_grad; one without an entry follows the main
 * thread, so a generator consumed inside no_grad runs without recording, as a Python generator
 * does. ctx->grad_mode_entries counts the entries: while it is 0 the check is one load. */

/* The main thread's own mode is kept in the ctx (main_grad_mode), the others' in the table: no
 * table operation for no_grad(fn) and the checks inside it in the main thread (W2's update). */

/* The explicit mode of a coroutine (not the main thread) at `thread` (stack index): 1, 0, or -1. */
static int table_mode(lua_State *L, int thread) {
    lua_getiuservalue(L, lua_upvalueindex(1), LT_CTX_UV_GRAD_MODES);
    lua_pushvalue(L, thread);
    const int type = lua_rawget(L, -2);
    const int mode = type == LUA_TNIL ? -1 : lua_toboolean(L, -1);
    lua_pop(L, 2);
    return mode;
}

static int is_main_thread(lua_State *L, int thread) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    const int main = lua_tothread(L, -1) == lua_tothread(L, thread);
    lua_pop(L, 1);
    return main;
}

static void count_entry(mg_ctx *ctx, int before, int mode) {
    if (before < 0 && mode >= 0) ctx->grad_mode_entries++;
    if (before >= 0 && mode < 0 && ctx->grad_mode_entries > 0) ctx->grad_mode_entries--;
}

/* Sets (mode 0 / 1) or clears (-1) the main thread's explicit mode. */
static void set_main_mode(mg_ctx *ctx, int mode) {
    count_entry(ctx, ctx->main_grad_mode - 1, mode);
    ctx->main_grad_mode = mode + 1;
}

/* Sets (mode 0 / 1) or clears (-1) the explicit mode of the thread at `thread`. */
static void set_explicit_mode(lua_State *L, int thread, int mode) {
    mg_ctx *ctx = lt_ctx(L);
    if (is_main_thread(L, thread)) {
        set_main_mode(ctx, mode);
        return;
    }
    const int before = table_mode(L, thread);
    lua_getiuservalue(L, lua_upvalueindex(1), LT_CTX_UV_GRAD_MODES);
    lua_pushvalue(L, thread);
    if (mode < 0) lua_pushnil(L); else lua_pushboolean(L, mode);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    count_entry(ctx, before, mode);
}

int lt_grad_enabled(lua_State *L) {
    mg_ctx *ctx = lt_ctx(L);
    if (ctx->grad_mode_entries == 0) return 1;
    const int main = lua_pushthread(L);
    const int mode = main ? ctx->main_grad_mode - 1 : table_mode(L, lua_gettop(L));
    lua_pop(L, 1);
    if (mode >= 0) return mode != 0;
    return ctx->main_grad_mode != 1; /* a coroutine without its own: the main thread's (none: on) */
}

/* The guard's __close: the thread it was made in (field 1) gets back its explicit mode (field 2). */
static int guard_close(lua_State *L) {
    lua_settop(L, 1); /* __close also receives the error object, if any */
    lua_rawgeti(L, 1, 1);
    lua_rawgeti(L, 1, 2);
    set_explicit_mode(L, 2, (int)lua_tointeger(L, 3));
    return 0;
}

/* no_grad(fn, ...) runs fn without recording and returns its results; no_grad() returns a guard
 * for a <close> variable. enable_grad likewise, with recording on. Either way the mode is the
 * calling coroutine's. */
static int grad_mode(lua_State *L, int enabled) {
    mg_ctx *ctx = lt_ctx(L);
    const int guard = lua_isnoneornil(L, 1);
    const int main = lua_pushthread(L);
    const int thread = lua_gettop(L);
    const int previous = main ? ctx->main_grad_mode - 1 : table_mode(L, thread);
    if (guard) {
        lua_createtable(L, 2, 0);
        lua_pushvalue(L, thread);
        lua_rawseti(L, -2, 1);
        lua_pushinteger(L, previous);
        lua_rawseti(L, -2, 2);
        lua_createtable(L, 0, 1);
        lua_pushvalue(L, lua_upvalueindex(1));
        lua_pushvalue(L, lua_upvalueindex(2));
        lua_pushvalue(L, lua_upvalueindex(3));
        lua_pushcclosure(L, guard_close, 3);
        lua_setfield(L, -2, "__close");
        lua_setmetatable(L, -2);
        set_explicit_mode(L, thread, enabled);
        return 1;
    }
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_insert(L, 1); /* the thread below fn and its arguments */
    if (main) set_main_mode(ctx, enabled); else set_explicit_mode(L, 1, enabled);
    const int status = lua_pcall(L, lua_gettop(L) - 2, LUA_MULTRET, 0);
    if (main) set_main_mode(ctx, previous); else set_explicit_mode(L, 1, previous);
    if (status != LUA_OK) return lua_error(L);
    return lua_gettop(L) - 1;
}
static int l_no_grad(lua_State *L) { return grad_mode(L, 0); }
static int l_enable_grad(lua_State *L) { return grad_mode(L, 1); }
static int l_is_grad_enabled(lua_State *L) {
    lua_pushboolean(L, lt_grad_enabled(L));
    return 1;
}

/* ---- properties (called from tensor.c's __index / __newindex) ------------------------------ */

int lt_autograd_get(lua_State *L, mg_tensor *t, const char *key) {
    if (!strcmp(key, "grad")) {
        lua_getiuservalue(L, 1, LT_UV_GRAD);
    } else if (!strcmp(key, "requires_grad")) {
        lua_pushboolean(L, t->requires_grad);
    } else if (!strcmp(key, "is_leaf")) {
        lua_pushboolean(L, lua_getiuservalue(L, 1, LT_UV_NODE) != LUA_TUSERDATA);
        lua_remove(L, -2);
    } else if (!strcmp(key, "grad_fn")) {
        /* a node gets its metatable (its tostring) when Lua code first sees it: lt_record leaves
         * it out, two calls fewer per recorded op */
        if (lua_getiuservalue(L, 1, LT_UV_NODE) == LUA_TUSERDATA) {
            if (lua_getmetatable(L, -1)) {
                lua_pop(L, 1);
            } else {
                lua_getiuservalue(L, lua_upvalueindex(1), LT_CTX_UV_NODE_MT);
                lua_setmetatable(L, -2);
            }
        }
    } else {
        return 0;
    }
    return 1;
}

int lt_autograd_set(lua_State *L, mg_tensor *t, const char *key) {
    if (!strcmp(key, "grad")) {
        if (!lua_isnil(L, 3)) {
            const mg_tensor *g = lt_test(L, 3);
            if (!g) return luaL_error(L, "'grad': assigned gradient must be a tensor or nil, got %s",
                                      luaL_typename(L, 3));
            if (!mg_same_shape(g, t) || g->dtype != t->dtype)
                return luaL_error(L, "'grad': assigned gradient (%s %s) must have the tensor's shape and "
                                     "dtype (%s %s)", mg_dtype_name((mg_dtype)g->dtype),
                                  lt_push_shape(L, g->ndim, g->size), mg_dtype_name((mg_dtype)t->dtype),
                                  lt_push_shape(L, t->ndim, t->size));
        }
        lua_pushvalue(L, 3);
        lua_setiuservalue(L, 1, LT_UV_GRAD);
        return 1;
    }
    if (!strcmp(key, "requires_grad")) {
        if (!lua_isboolean(L, 3))
            return luaL_error(L, "'requires_grad': a boolean expected, got %s", luaL_typename(L, 3));
        const char *why = set_requires_grad(L, t, lua_toboolean(L, 3));
        if (why) return luaL_error(L, "'requires_grad': %s", why);
        return 1;
    }
    return 0;
}

const luaL_Reg lt_autograd_methods[] = {
    {"backward", l_backward}, {"requires_grad_", l_requires_grad_}, {"retain_grad", l_retain_grad},
    {"zero_grad", l_zero_grad}, {"register_post_accumulate_grad_hook", l_register_post_accumulate_grad_hook},
    {NULL, NULL}};

/* mg._grad(t): t.grad, without the lookup through __index (the optimizers' step reads it for
 * every parameter) */
static int l_grad_of(lua_State *L) {
    if (!lt_test(L, 1)) return luaL_typeerror(L, 1, "tensor");
    lua_getiuservalue(L, 1, LT_UV_GRAD);
    return 1;
}

/* mg._last_dim(x): the size of x's last dim, or nil when x is not a tensor or is 0-d (one
 * call for nn.Linear's check of its input, where is_tensor, dim and size were three) */
static int l_last_dim(lua_State *L) {
    const mg_tensor *t = lt_test(L, 1);
    if (!t || t->ndim == 0) return 0; /* a closed one: F.linear says so */
    lua_pushinteger(L, t->size[t->ndim - 1]);
    return 1;
}

const luaL_Reg lt_autograd_functions[] = {
    {"_last_dim", l_last_dim},
    {"_grad", l_grad_of}, {"_zero_grads", l_zero_grads},
    {"no_grad", l_no_grad}, {"enable_grad", l_enable_grad}, {"is_grad_enabled", l_is_grad_enabled},
    {"_autograd_grad", l_grad}, {"_queue_backward_callback", l_queue_backward_callback},
    {NULL, NULL}};
