/* autograd.c: the dispatch from a node to its family's backward rule, and helpers for rules. */
#include <string.h>

#include "../ops/ops.h"
#include "../ops/reduce.h"
#include "autograd.h"

typedef mg_status (*family_rule)(mg_ctx *, const mg_backward_args *, int, mg_tensor *);
static const family_rule rules[MG_NFAMILIES] = {
    [MG_FAM_BINARY] = mg_binary_backward, [MG_FAM_UNARY] = mg_unary_backward,
    [MG_FAM_REDUCE] = mg_reduce_backward, [MG_FAM_LINALG] = mg_linalg_backward,
    [MG_FAM_SHAPE] = mg_shape_backward,   [MG_FAM_LOSS] = mg_loss_backward,
};

mg_status mg_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin) {
    return rules[a->node->family](ctx, a, i, gin);
}

mg_status mg_scratch_new(mg_ctx *ctx, mg_scratch *sc, mg_dtype dtype, int ndim, const int64_t *size) {
    memset(&sc->t, 0, sizeof sc->t);
    memset(&sc->s, 0, sizeof sc->s);
    int64_t numel;
    mg_status st = mg_check_shape(ctx, 0, ndim, size, &numel);
    if (st != MG_OK) return st;
    const size_t bytes = (size_t)numel * mg_dtype_size(dtype);
    sc->s.data = mg_alloc(ctx, bytes);
    if (!sc->s.data) return mg_fail(ctx, MG_ENOMEM, 0, "not enough memory for a %zu-byte temporary", bytes);
    sc->s.nbytes = bytes;
    sc->t.storage = &sc->s;
    sc->t.size = sc->dims;
    sc->t.stride = sc->dims + MG_MAX_DIMS;
    sc->t.ndim = (uint8_t)ndim;
    sc->t.dtype = (uint8_t)dtype;
    sc->t.numel = numel;
    memcpy(sc->t.size, size, sizeof(int64_t) * ndim);
    mg_contiguous_strides(ndim, size, sc->t.stride);
    return MG_OK;
}

void mg_scratch_free(mg_ctx *ctx, mg_scratch *sc) {
    mg_free(ctx, sc->s.data, sc->s.nbytes);
    sc->s.data = NULL;
}

mg_status mg_scratch_as(mg_ctx *ctx, const mg_tensor *t, mg_dtype dt, mg_scratch *sc,
                        const mg_tensor **out) {
    sc->s.data = NULL;
    *out = t;
    if (t->dtype == dt) return MG_OK;
    mg_status st = mg_scratch_new(ctx, sc, dt, t->ndim, t->size);
    if (st == MG_OK) st = mg_copy(ctx, &sc->t, t);
    *out = &sc->t;
    return st;
}

mg_tensor *mg_view_of(mg_view_buf *vb, const mg_tensor *t, int ndim) {
    vb->t = *t;
    vb->t.ndim = (uint8_t)ndim;
    vb->t.size = vb->dims;
    vb->t.stride = vb->dims + MG_MAX_DIMS;
    return &vb->t;
}

mg_status mg_sum_to(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in) {
    if (mg_same_shape(out, in)) return mg_copy(ctx, out, in);
    const int lead = in->ndim - out->ndim;
    uint32_t dims = 0;
    for (int i = 0; i < in->ndim; i++)
        if (i < lead || (out->size[i - lead] == 1 && in->size[i] != 1)) dims |= 1u << i;
    if (out->dtype == in->dtype && mg_is_contiguous(out))
        return mg_reduce(ctx, MG_RED_SUM, out, NULL, in, dims, NULL);
    mg_scratch sc;
    mg_status st = mg_scratch_new(ctx, &sc, (mg_dtype)in->dtype, out->ndim, out->size);
    if (st != MG_OK) return st;
    st = mg_reduce(ctx, MG_RED_SUM, &sc.t, NULL, in, dims, NULL);
    if (st == MG_OK) st = mg_copy(ctx, out, &sc.t);
    mg_scratch_free(ctx, &sc);
    return st;
}
