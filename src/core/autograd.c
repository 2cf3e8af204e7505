/* autograd.c: the scratch tensors and stack views that backward rules work with (core: no ops). */
#include <string.h>

#include "autograd.h"

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

mg_tensor *mg_view_of(mg_view_buf *vb, const mg_tensor *t, int ndim) {
    vb->t = *t;
    vb->t.ndim = (uint8_t)ndim;
    vb->t.size = vb->dims;
    vb->t.stride = vb->dims + MG_MAX_DIMS;
    return &vb->t;
}
