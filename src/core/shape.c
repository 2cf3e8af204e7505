/* shape.c: shape arithmetic shared by every op: checks, strides, broadcasting, dims. */
#include <string.h>

#include "core.h"

mg_status mg_check_shape(mg_ctx *ctx, int operand, int ndim, const int64_t *size, int64_t *numel) {
    if (ndim > MG_MAX_DIMS)
        return mg_fail(ctx, MG_ESIZE, operand, "%d dimensions, at most %d are supported", ndim,
                       MG_MAX_DIMS);
    int64_t n = 1;
    bool empty = false;
    for (int i = 0; i < ndim; i++) {
        if (size[i] < 0)
            return mg_fail(ctx, MG_ESIZE, operand, "size %lld at dimension %d is negative",
                           (long long)size[i], i + 1);
        if (size[i] == 0) empty = true;
    }
    /* overflow is checked on the nonzero sizes, so {0, 2^62, 2^62} is still refused */
    for (int i = 0; i < ndim; i++) {
        const int64_t s = size[i] ? size[i] : 1;
        if (n > MG_MAX_NUMEL / s) {
            char buf[160];
            mg_format_shape(buf, sizeof buf, ndim, size);
            return mg_fail(ctx, MG_ESIZE, operand, "shape %s has more than 2^62 elements", buf);
        }
        n *= s;
    }
    *numel = empty ? 0 : n;
    return MG_OK;
}

void mg_contiguous_strides(int ndim, const int64_t *size, int64_t *stride) {
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        stride[i] = s;
        s *= size[i] > 1 ? size[i] : 1;
    }
}

/* Size-1 dims may have any stride, as in PyTorch. */
bool mg_is_contiguous(const mg_tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->size[i] != 1 && t->stride[i] != s) return t->numel == 0;
        s *= t->size[i];
    }
    return true;
}

bool mg_same_shape(const mg_tensor *a, const mg_tensor *b) {
    /* a loop, not memcmp: a call through the PLT to a vector memcmp cost more than the few
     * compares of a small op (and a 0-d scalar's size is NULL, which memcmp may not be given) */
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->size[i] != b->size[i]) return false;
    return true;
}

mg_status mg_broadcast_shape(mg_ctx *ctx, int *out_ndim, int64_t *out_size, int a_ndim,
                             const int64_t *a_size, int b_ndim, const int64_t *b_size) {
    const int n = a_ndim > b_ndim ? a_ndim : b_ndim;
    for (int i = 0; i < n; i++) { /* align from the right */
        const int ia = a_ndim - n + i, ib = b_ndim - n + i;
        const int64_t sa = ia >= 0 ? a_size[ia] : 1, sb = ib >= 0 ? b_size[ib] : 1;
        if (sa != sb && sa != 1 && sb != 1) {
            char as[160], bs[160];
            mg_format_shape(as, sizeof as, a_ndim, a_size);
            mg_format_shape(bs, sizeof bs, b_ndim, b_size);
            return mg_fail(ctx, MG_ESHAPE, 2, "shapes %s and %s cannot broadcast", as, bs);
        }
        out_size[i] = sa == 1 ? sb : sa;
    }
    *out_ndim = n;
    return MG_OK;
}

bool mg_broadcasts_to(const mg_tensor *src, const mg_tensor *target) {
    if (src->ndim > target->ndim) return false;
    for (int i = 0; i < src->ndim; i++) {
        const int64_t s = src->size[src->ndim - 1 - i], t = target->size[target->ndim - 1 - i];
        if (s != t && s != 1) return false;
    }
    return true;
}

mg_status mg_wrap_dim(mg_ctx *ctx, int operand, int64_t dim, int ndim, int *out) {
    const int n = ndim > 0 ? ndim : 1; /* a 0-d tensor takes dim 1 / -1, as PyTorch's 0 / -1 */
    if (dim == 0 || dim > n || dim < -n)
        return mg_fail(ctx, MG_EDIM, operand, "dimension %lld out of range (expected 1..%d or -%d..-1)",
                       (long long)dim, n, n);
    *out = (int)(dim > 0 ? dim - 1 : dim + n);
    return MG_OK;
}

/* An in-place write into a tensor where two elements share one memory location (a dim of size > 1
 * and stride 0, as expand gives) would depend on the order of the writes: refused, as in PyTorch. */
mg_status mg_check_inplace_target(mg_ctx *ctx, int operand, const mg_tensor *t) {
    for (int i = 0; i < t->ndim; i++)
        if (t->stride[i] == 0 && t->size[i] > 1)
            return mg_fail(ctx, MG_EVALUE, operand,
                           "more than one element of the in-place target refers to one memory "
                           "location (clone() it first)");
    return MG_OK;
}
