/*
 * shape.c: backward rules of the shape family (see shape.h). A view's gradient is the gradient of
 * the output placed back where the view took its elements from: each rule builds the same view
 * over gin (a descriptor on the C stack, geometry from view.c) and copies gout into it.
 */
#include <stdbool.h>
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

/* t[p with p[dim] replaced by idx[p] - 1] += src[p] for every position p of idx (t contiguous,
 * float32 / float64; indices were checked by the forward gather). Repeated indices add up. */
static mg_status scatter_add(mg_ctx *ctx, mg_tensor *t, int dim, const mg_tensor *idx, const mg_tensor *src) {
    mg_status st = mg_fill(ctx, t, 0, 0);
    if (st != MG_OK || idx->numel == 0) return st;
    const int nd = idx->ndim;
    const int64_t *ip = (const int64_t *)mg_tensor_data(idx);
    char *tp = (char *)mg_tensor_data(t);
    const char *sp = (const char *)mg_tensor_data(src);
    const int64_t dim_stride = t->ndim ? t->stride[dim] : 0;
    const bool f32 = t->dtype == MG_FLOAT32;
    int64_t pos[MG_MAX_DIMS] = {0}, oi = 0, ot = 0, os = 0; /* element offsets into idx, t, src */
    for (;;) {
        const int64_t k = ot + (ip[oi] - 1) * dim_stride;
        if (f32) ((float *)tp)[k] += ((const float *)sp)[os];
        else ((double *)tp)[k] += ((const double *)sp)[os];
        int d = nd - 1;
        for (; d >= 0; d--) {
            const int64_t ts = d == dim ? 0 : t->stride[d];
            oi += idx->stride[d], ot += ts, os += src->stride[d];
            if (++pos[d] < idx->size[d]) break;
            oi -= idx->stride[d] * idx->size[d], ot -= ts * idx->size[d], os -= src->stride[d] * idx->size[d];
            pos[d] = 0;
        }
        if (d < 0) return MG_OK;
    }
}

/* masked_select: g (1-D) goes back to the positions where the mask (broadcast with the input) is
 * true, in row-major order of the broadcast shape; 0 elsewhere; then summed to gin's shape. */
static mg_status unselect(mg_ctx *ctx, mg_tensor *gin, const mg_tensor *mask, const mg_tensor *g) {
    int ndim;
    int64_t size[MG_MAX_DIMS];
    mg_status st = mg_broadcast_shape(ctx, &ndim, size, gin->ndim, gin->size, mask->ndim, mask->size);
    if (st != MG_OK) return st;
    mg_scratch full;
    full.s.data = NULL;
    mg_tensor *f = gin;
    if (ndim != gin->ndim || memcmp(size, gin->size, sizeof(int64_t) * ndim) != 0) {
        st = mg_scratch_new(ctx, &full, (mg_dtype)gin->dtype, ndim, size);
        if (st != MG_OK) return st;
        f = &full.t;
    }
    st = mg_fill(ctx, f, 0, 0);
    if (st == MG_OK && f->numel > 0) {
        int64_t mstride[MG_MAX_DIMS], pos[MG_MAX_DIMS] = {0}, om = 0, k = 0;
        const int lead = ndim - mask->ndim;
        for (int d = 0; d < ndim; d++)
            mstride[d] = d < lead || mask->size[d - lead] == 1 ? 0 : mask->stride[d - lead];
        const bool *mp = (const bool *)mg_tensor_data(mask);
        const char *gp = (const char *)mg_tensor_data(g);
        char *fp = (char *)mg_tensor_data(f);
        const int64_t gs = g->ndim ? g->stride[0] : 0;
        const bool f32 = f->dtype == MG_FLOAT32;
        for (int64_t e = 0; e < f->numel; e++) { /* f is contiguous: e is its offset */
            if (mp[om] && k < g->numel) {
                if (f32) ((float *)fp)[e] = ((const float *)gp)[k * gs];
                else ((double *)fp)[e] = ((const double *)gp)[k * gs];
                k++;
            }
            for (int d = ndim - 1; d >= 0; d--) {
                om += mstride[d];
                if (++pos[d] < size[d]) break;
                om -= mstride[d] * size[d];
                pos[d] = 0;
            }
        }
    }
    if (f != gin) {
        if (st == MG_OK) st = mg_sum_to(ctx, gin, f);
        mg_scratch_free(ctx, &full);
    }
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
    case MG_SHAPE_GATHER: /* gin[p with p[dim] <- idx[p]] += g[p]: a scatter that adds */
        if (i == 1) return mg_fail(ctx, MG_EVALUE, 0, "the indices of 'gather' have no gradient");
        return scatter_add(ctx, gin, (int)n->iarg[0], a->inputs[1], g);
    case MG_SHAPE_MASKED_SELECT:
        if (i == 1) return mg_fail(ctx, MG_EVALUE, 0, "the mask of 'masked_select' has no gradient");
        return unselect(ctx, gin, a->inputs[1], g);
    default: return mg_fail(ctx, MG_EVALUE, 0, "this shape op has no backward rule yet");
    }
}
