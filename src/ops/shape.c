/*
 * shape.c: backward rules of the shape family (see shape.h): views and copies, whose forward work
 * is geometry (src/core/view.c) and mg_copy. A view's gradient is the gradient of the output placed
 * back where the view took its elements from: each rule builds the same view over gin (a
 * descriptor on the C stack) and copies gout into it.
 */
#include <string.h>

#include "ops.h"
#include "shape.h"

int64_t mg_pack_perm(const int *perm, int ndim) {
    uint64_t packed = 0; /* unsigned: dim 15's nibble reaches the sign bit (a signed shift is UB) */
    for (int i = 0; i < ndim; i++) packed |= (uint64_t)perm[i] << (4 * i);
    return (int64_t)packed;
}

/* gin <- 0, then the part of gin that `view` (a function of gin) selects <- gout */
static mg_status zero_then_copy(mg_ctx *ctx, mg_tensor *gin, const mg_tensor *part, const mg_tensor *gout) {
    mg_status st = mg_fill(ctx, gin, 0, 0);
    return st == MG_OK ? mg_copy(ctx, (mg_tensor *)part, gout) : st;
}

mg_status mg_shape_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin) {
    (void)i; /* every shape op has one input */
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
    default: return mg_fail(ctx, MG_EVALUE, 0, "this shape op has no backward rule yet");
    }
}
