/*
 * view.c: the geometry of views. Each function fills out's size, stride and offset so that it
 * reads the same storage as `in`; nothing is copied. The caller gave `out` room for its ndim,
 * pointed out->storage at in's storage and keeps that storage's owner alive.
 */
#include <string.h>

#include "core.h"

static void share(mg_tensor *out, const mg_tensor *in) {
    out->storage = in->storage;
    out->dtype = in->dtype;
    out->offset = in->offset;
}

static void set_numel(mg_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->size[i];
    t->numel = n;
}

/* view(): out->size holds the requested shape, one entry may be -1. PyTorch's rule: the new shape
 * must split or merge only dims that are contiguous with each other ("chunks" of the old shape). */
mg_status mg_view_shape(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in) {
    int infer = -1;
    int64_t known = 1;
    for (int i = 0; i < out->ndim; i++) {
        if (out->size[i] == -1) {
            if (infer >= 0) return mg_fail(ctx, MG_ESHAPE, 2, "only one dimension can be -1");
            infer = i;
        } else if (out->size[i] < 0) {
            return mg_fail(ctx, MG_ESIZE, 2, "size %lld at dimension %d is negative",
                           (long long)out->size[i], i + 1);
        } else {
            if (out->size[i] && known > MG_MAX_NUMEL / out->size[i])
                return mg_fail(ctx, MG_ESIZE, 2, "the shape has more than 2^62 elements");
            known *= out->size[i];
        }
    }
    if (infer >= 0) {
        if (known == 0 || in->numel % known != 0) goto mismatch;
        out->size[infer] = in->numel / known;
    } else if (known != in->numel) {
        goto mismatch;
    }
    share(out, in);
    set_numel(out);
    if (in->ndim == 0 || in->numel == 0) {
        mg_contiguous_strides(out->ndim, out->size, out->stride);
        return MG_OK;
    }
    /* Walk the old dims from the right, cutting them into chunks that are contiguous in memory;
     * each chunk must be exactly covered by a run of new dims. */
    int view_d = out->ndim - 1;
    int64_t chunk_stride = in->stride[in->ndim - 1], tensor_numel = 1, view_numel = 1;
    for (int d = in->ndim - 1; d >= 0; d--) {
        tensor_numel *= in->size[d];
        if (d == 0 || (in->size[d - 1] != 1 && in->stride[d - 1] != tensor_numel * chunk_stride)) {
            while (view_d >= 0 && (view_numel < tensor_numel || out->size[view_d] == 1)) {
                out->stride[view_d] = view_numel * chunk_stride;
                view_numel *= out->size[view_d];
                view_d--;
            }
            if (view_numel != tensor_numel) {
                char s[160];
                mg_format_shape(s, sizeof s, in->ndim, in->size);
                return mg_fail(ctx, MG_ESHAPE, 0,
                               "view of a non-contiguous tensor of shape %s is not possible without "
                               "a copy (use reshape)", s);
            }
            if (d > 0) {
                chunk_stride = in->stride[d - 1];
                tensor_numel = 1;
                view_numel = 1;
            }
        }
    }
    while (view_d >= 0) out->stride[view_d--] = 1; /* trailing size-1 dims */
    return MG_OK;
mismatch: {
    char s_in[160], s_out[160];
    mg_format_shape(s_in, sizeof s_in, in->ndim, in->size);
    mg_format_shape(s_out, sizeof s_out, out->ndim, out->size);
    return mg_fail(ctx, MG_ESHAPE, 2, "shape %s is invalid for a tensor of shape %s (%lld elements)",
                   s_out, s_in, (long long)in->numel);
}
}

mg_status mg_view_transpose(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in, int d0, int d1) {
    (void)ctx;
    share(out, in);
    memcpy(out->size, in->size, sizeof(int64_t) * in->ndim);
    memcpy(out->stride, in->stride, sizeof(int64_t) * in->ndim);
    if (in->ndim > 0) {
        out->size[d0] = in->size[d1], out->size[d1] = in->size[d0];
        out->stride[d0] = in->stride[d1], out->stride[d1] = in->stride[d0];
    }
    out->numel = in->numel;
    return MG_OK;
}

/* perm: 0-based, checked by the caller to be a permutation. */
mg_status mg_view_permute(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in, const int *perm) {
    bool seen[MG_MAX_DIMS] = {false};
    for (int i = 0; i < in->ndim; i++) {
        if (perm[i] < 0 || perm[i] >= in->ndim || seen[perm[i]])
            return mg_fail(ctx, MG_EDIM, 2, "dims do not form a permutation of 1..%d", in->ndim);
        seen[perm[i]] = true;
    }
    share(out, in);
    for (int i = 0; i < in->ndim; i++) {
        out->size[i] = in->size[perm[i]];
        out->stride[i] = in->stride[perm[i]];
    }
    out->numel = in->numel;
    return MG_OK;
}

/* start: 0-based. */
mg_status mg_view_narrow(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in, int dim, int64_t start,
                         int64_t length) {
    const int64_t n = in->size[dim];
    if (start < 0 || start > n)
        return mg_fail(ctx, MG_EINDEX, 2, "start %lld out of range for dimension %d of size %lld",
                       (long long)start + 1, dim + 1, (long long)n);
    if (length < 0 || start + length > n)
        return mg_fail(ctx, MG_EINDEX, 3,
                       "length %lld from start %lld exceeds dimension %d of size %lld",
                       (long long)length, (long long)start + 1, dim + 1, (long long)n);
    share(out, in);
    memcpy(out->size, in->size, sizeof(int64_t) * in->ndim);
    memcpy(out->stride, in->stride, sizeof(int64_t) * in->ndim);
    out->size[dim] = length;
    out->offset += start * in->stride[dim];
    set_numel(out);
    return MG_OK;
}

/* index: 0-based, already wrapped and checked by the caller. out has in->ndim - 1 dims. */
mg_status mg_view_select(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in, int dim, int64_t index) {
    (void)ctx;
    share(out, in);
    for (int i = 0, j = 0; i < in->ndim; i++) {
        if (i == dim) continue;
        out->size[j] = in->size[i];
        out->stride[j++] = in->stride[i];
    }
    out->offset += index * in->stride[dim];
    set_numel(out);
    return MG_OK;
}

/* expand(): out->size holds the target shape (-1 keeps a size); new leading dims get stride 0. */
mg_status mg_view_expand(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in) {
    if (out->ndim < in->ndim) {
        char s[160];
        mg_format_shape(s, sizeof s, in->ndim, in->size);
        return mg_fail(ctx, MG_ESHAPE, 2, "cannot expand a tensor of shape %s to fewer dimensions (%d)",
                       s, out->ndim);
    }
    const int lead = out->ndim - in->ndim;
    for (int i = out->ndim - 1; i >= 0; i--) {
        const int j = i - lead;
        if (j < 0) {
            if (out->size[i] < 0)
                return mg_fail(ctx, MG_ESIZE, 2, "size %lld at new dimension %d is not allowed",
                               (long long)out->size[i], i + 1);
            out->stride[i] = 0;
        } else if (out->size[i] == -1 || out->size[i] == in->size[j]) {
            out->size[i] = in->size[j];
            out->stride[i] = in->stride[j];
        } else if (in->size[j] == 1 && out->size[i] >= 0) {
            out->stride[i] = 0;
        } else {
            char s_in[160], s_out[160];
            mg_format_shape(s_in, sizeof s_in, in->ndim, in->size);
            mg_format_shape(s_out, sizeof s_out, out->ndim, out->size);
            return mg_fail(ctx, MG_ESHAPE, 2,
                           "cannot expand shape %s to %s (dimension %d of size %lld is not 1)", s_in,
                           s_out, j + 1, (long long)in->size[j]);
        }
    }
    int64_t numel;
    mg_status st = mg_check_shape(ctx, 2, out->ndim, out->size, &numel);
    if (st) return st;
    share(out, in);
    out->numel = numel;
    return MG_OK;
}

/* dim: 0..in->ndim (0-based position of the new size-1 dim). */
void mg_view_unsqueeze(mg_tensor *out, const mg_tensor *in, int dim) {
    share(out, in);
    for (int i = 0, j = 0; i <= in->ndim; i++) {
        if (i == dim) {
            out->size[i] = 1;
            out->stride[i] = dim < in->ndim ? in->size[dim] * in->stride[dim] : 1;
        } else {
            out->size[i] = in->size[j];
            out->stride[i] = in->stride[j++];
        }
    }
    out->numel = in->numel;
}

/* dim >= 0: drop that dim if its size is 1; dim < 0: drop every size-1 dim. out->ndim is set. */
void mg_view_squeeze(mg_tensor *out, const mg_tensor *in, int dim) {
    share(out, in);
    int j = 0;
    for (int i = 0; i < in->ndim; i++) {
        const bool drop = in->size[i] == 1 && (dim < 0 || dim == i);
        if (drop) continue;
        out->size[j] = in->size[i];
        out->stride[j++] = in->stride[i];
    }
    out->ndim = (uint8_t)j;
    out->numel = in->numel;
}
