/*
 * shape.c: backward rules of the shape family (see shape.h). A view's gradient is the gradient of
 * the output placed back where the view took its elements from: each rule builds the same view
 * over gin (a descriptor on the C stack, geometry from view.c) and copies gout into it.
 */
#include <string.h>

#include "index.h"
#include "ops.h"
#include "shape.h"

int64_t mg_pack_perm(const int *perm, int ndim) {
    int64_t packed = 0;
    for (int i = 0; i < ndim; i++) packed |= (int64_t)perm[i] << (4 * i);
    return packed;
}

/* gin <- 0, then the part of gin that `view` (a function of gin) selects <- gout */
static mg_status zero_then_copy(mg_ctx *ctx, mg_tensor *gin, const mg_tensor *part, const mg_tensor *gout) {
    mg_status st = mg_fill(ctx, gin, 0, 0);
    return st == MG_OK ? mg_copy(ctx, (mg_tensor *)part, gout) : st;
}

/* (where cond g 0) or (where cond 0 g), summed back to gin's shape */
static mg_status routed(mg_ctx *ctx, mg_tensor *gin, const mg_tensor *cond, const mg_tensor *g, bool when) {
    mg_scratch full;
    mg_status st = mg_scratch_new(ctx, &full, (mg_dtype)g->dtype, g->ndim, g->size);
    if (st != MG_OK) return st;
    mg_scalar z;
    mg_scalar_init(&z, (mg_dtype)g->dtype, 0, 0);
    st = when ? mg_where(ctx, &full.t, cond, g, &z.t) : mg_where(ctx, &full.t, cond, &z.t, g);
    if (st == MG_OK) st = mg_sum_to(ctx, gin, &full.t);
    mg_scratch_free(ctx, &full);
    return st;
}

mg_status mg_shape_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin) {
    const mg_node *n = a->node;
    const mg_tensor *g = a->gout;
    mg_view_buf vb;
    mg_tensor *v;
    switch ((mg_shape_op)n->op) {
    case MG_SHAPE_RESHAPE:
        v = mg_view_of(&vb, gin, g->ndim);
        memcpy(v->size, g->size, sizeof(int64_t) * g->ndim);
        mg_contiguous_strides(g->ndim, g->size, v->stride);
        v->numel = g->numel;
        return mg_copy(ctx, v, g);
    case MG_SHAPE_PERMUTE:
        v = mg_view_of(&vb, gin, gin->ndim);
        for (int d = 0; d < gin->ndim; d++) {
            const int p = (int)((n->iarg[0] >> (4 * d)) & 15);
            v->size[d] = gin->size[p];
            v->stride[d] = gin->stride[p];
        }
        return mg_copy(ctx, v, g);
    case MG_SHAPE_EXPAND: return mg_sum_to(ctx, gin, g);
    case MG_SHAPE_NARROW:
        v = mg_view_of(&vb, gin, gin->ndim);
        mg_view_narrow(ctx, v, gin, (int)n->iarg[0], n->iarg[1], g->size[n->iarg[0]]);
        return zero_then_copy(ctx, gin, v, g);
    case MG_SHAPE_SELECT:
        v = mg_view_of(&vb, gin, gin->ndim - 1);
        mg_view_select(ctx, v, gin, (int)n->iarg[0], n->iarg[1]);
        return zero_then_copy(ctx, gin, v, g);
    case MG_SHAPE_COPY: return mg_copy(ctx, gin, g);
    case MG_SHAPE_INDEX_SELECT: { /* gin[idx[k]] += g[k] along dim */
        const int dim = (int)n->iarg[0];
        const mg_tensor *idx = a->inputs[1];
        mg_status st = mg_fill(ctx, gin, 0, 0);
        const int64_t *ix = (const int64_t *)mg_tensor_data(idx);
        const int64_t step = idx->ndim ? idx->stride[0] : 0;
        mg_view_buf gb;
        for (int64_t k = 0; k < idx->numel && st == MG_OK; k++) {
            v = mg_view_of(&vb, gin, gin->ndim - 1);
            mg_view_select(ctx, v, gin, dim, ix[k * step] - 1);
            mg_tensor *gk = mg_view_of(&gb, g, g->ndim - 1);
            mg_view_select(ctx, gk, g, dim, k);
            st = mg_binary(ctx, MG_BIN_ADD, v, v, gk);
        }
        return st;
    }
    case MG_SHAPE_CAT: {
        const int dim = (int)n->iarg[0];
        int64_t start = 0;
        for (int k = 0; k < i; k++)
            if (!(a->inputs[k]->ndim == 1 && a->inputs[k]->numel == 0 && g->ndim != 1))
                start += a->inputs[k]->size[dim];
        if (gin->ndim == 1 && gin->numel == 0 && g->ndim != 1) return MG_OK; /* skipped by cat */
        v = mg_view_of(&vb, g, g->ndim);
        mg_view_narrow(ctx, v, g, dim, start, gin->size[dim]);
        return mg_copy(ctx, gin, v);
    }
    case MG_SHAPE_STACK:
        v = mg_view_of(&vb, g, g->ndim - 1);
        mg_view_select(ctx, v, g, (int)n->iarg[0], i);
        return mg_copy(ctx, gin, v);
    case MG_SHAPE_WHERE:
        if (i == 0) return mg_fail(ctx, MG_EVALUE, 0, "the condition of 'where' has no gradient");
        return routed(ctx, gin, a->inputs[0], g, i == 1);
    case MG_SHAPE_MASKED_FILL: /* t keeps g where the mask is false; the value gets the rest */
        if (i == 1) return mg_fail(ctx, MG_EVALUE, 0, "the mask of 'masked_fill' has no gradient");
        return routed(ctx, gin, a->inputs[1], g, i == 2);
    default: return mg_fail(ctx, MG_EVALUE, 0, "this shape op has no backward rule yet");
    }
}
