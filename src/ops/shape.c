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

/* in seen with the dims in `dims` walked backwards: a descriptor with negated strides whose
 * element 0 is the last along each flipped dim */
mg_status mg_flip(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in, uint32_t dims) {
    if (in->numel == 0) return MG_OK;
    mg_view_buf vb;
    mg_tensor *v = mg_view_of(&vb, in, in->ndim);
    for (int d = 0; d < in->ndim; d++) {
        v->size[d] = in->size[d];
        v->stride[d] = in->stride[d];
        if ((dims >> d) & 1) {
            v->offset += (in->size[d] - 1) * in->stride[d];
            v->stride[d] = -in->stride[d];
        }
    }
    return mg_copy(ctx, out, v);
}

mg_status mg_tri(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in, int64_t diagonal, bool upper) {
    if (in->ndim < 2 || !mg_is_contiguous(out) || !mg_same_shape(out, in) || out->dtype != in->dtype)
        return mg_fail(ctx, MG_EVALUE, 0, "tril / triu: output of the wrong dtype or shape");
    mg_status st = mg_copy(ctx, out, in);
    if (st != MG_OK || out->numel == 0) return st;
    const int64_t R = out->size[out->ndim - 2], C = out->size[out->ndim - 1];
    /* past [-R, C] every diagonal gives the same: clamped so that i + diagonal cannot overflow */
    diagonal = diagonal < -R ? -R : diagonal > C ? C : diagonal;
    const size_t item = mg_dtype_size((mg_dtype)out->dtype);
    char *base = (char *)mg_tensor_data(out);
    const int64_t mats = out->numel / (R * C);
    for (int64_t m = 0; m < mats; m++)
        for (int64_t i = 0; i < R; i++) {
            char *row = base + (size_t)((m * R + i) * C) * item;
            /* the zeroed columns [lo, hi) of row i (all-zero bytes are 0 in every dtype) */
            int64_t lo, hi;
            if (upper) lo = 0, hi = i + diagonal;
            else lo = i + diagonal + 1, hi = C;
            lo = lo < 0 ? 0 : lo > C ? C : lo;
            hi = hi < 0 ? 0 : hi > C ? C : hi;
            if (hi > lo) memset(row + (size_t)lo * item, 0, (size_t)(hi - lo) * item);
        }
    return MG_OK;
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
    case MG_SHAPE_FLIP: return mg_flip(ctx, gin, g, (uint32_t)n->iarg[0]);
    case MG_SHAPE_TRIL:
    case MG_SHAPE_TRIU: return mg_tri(ctx, gin, g, n->iarg[0], n->op == MG_SHAPE_TRIU);
    default: return mg_fail(ctx, MG_EVALUE, 0, "this shape op has no backward rule yet");
    }
}
