/*
 * index.c: index_select, masked_select, nonzero, gather / scatter_, and the pieces of cat / stack.
 *
 * These ops move elements without computing on them, so they are dtype-free: whole slices go
 * through mg_copy into narrowed views (index_select, cat, stack), and single elements are copied
 * as bytes (gather, scatter, masked_select). Only the nonzero test is typed: one line per dtype.
 * Index tensors hold 1-based int64 indices (see index.h); each is checked before anything is
 * written. Backward (#4): index_select and gather scatter-add the gradient back, masked_select
 * writes it where the mask is true, cat / stack narrow it.
 */
#include <string.h>

#include "index.h"
#include "ops.h"

/* A descriptor with room for any ndim, for views that live on the C stack. */
typedef struct view_buf {
    mg_tensor t;
    int64_t size[MG_MAX_DIMS], stride[MG_MAX_DIMS];
} view_buf;

static mg_tensor *view_init(view_buf *b, int ndim) {
    memset(&b->t, 0, sizeof b->t);
    b->t.size = b->size;
    b->t.stride = b->stride;
    b->t.ndim = (uint8_t)ndim;
    return &b->t;
}

/* idx[k] for a 0-d or 1-D int64 tensor. */
static int64_t index_at(const mg_tensor *idx, int64_t k) {
    const int64_t *p = (const int64_t *)mg_tensor_data(idx);
    return idx->ndim ? p[k * idx->stride[0]] : p[0];
}

/* A 1-based index against a dim of size n; errors name idx as operand 3 (t, dim, idx). */
static mg_status check_index(mg_ctx *ctx, int64_t v, int dim, int64_t n) {
    if (v >= 1 && v <= n) return MG_OK;
    return mg_fail(ctx, MG_EINDEX, 3, "index %lld out of range for dimension %d of size %lld%s",
                   (long long)v, dim + 1, (long long)n,
                   v < 1 ? " (indices are 1-based and cannot be negative here)" : "");
}

/* ================================================================ index_select */

mg_status mg_index_select(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in, int dim,
                          const mg_tensor *idx) {
    const int64_t n = idx->numel;
    for (int64_t k = 0; k < n; k++) {
        const mg_status st = check_index(ctx, index_at(idx, k), dim, in->size[dim]);
        if (st) return st;
    }
    /* out[..., k, ...] <- in[..., idx[k] - 1, ...], one slice at a time */
    for (int64_t k = 0; k < n; k++) {
        view_buf src, dst;
        mg_view_narrow(ctx, view_init(&src, in->ndim), in, dim, index_at(idx, k) - 1, 1);
        mg_view_narrow(ctx, view_init(&dst, out->ndim), out, dim, k, 1);
        mg_copy(ctx, &dst.t, &src.t);
    }
    return MG_OK;
}

/* ================================================================ the nonzero test */

#define DEFINE_COUNT(NAME, T)                                                   \
    static void NAME(char **p, const int64_t *s, int64_t n, const void *extra) { \
        int64_t *count = *(int64_t *const *)extra, c = 0;                       \
        const char *x = p[0];                                                   \
        for (int64_t i = 0; i < n; i++, x += s[0]) c += *(const T *)x != 0;     \
        *count += c;                                                            \
    }
DEFINE_COUNT(count_f32, float)
DEFINE_COUNT(count_f64, double)
DEFINE_COUNT(count_i64, int64_t)
DEFINE_COUNT(count_bool, bool)
static const mg_inner_fn count_kernels[MG_NDTYPES] = {count_f32, count_f64, count_i64, count_bool};

int64_t mg_count_nonzero(const mg_tensor *t) {
    int64_t count = 0, *pcount = &count;
    mg_iter it;
    mg_iter_init(&it, 1, &t);
    mg_iter_run(&it, count_kernels[t->dtype], &pcount);
    return count;
}

static bool is_nonzero(mg_dtype dt, const char *p) {
    switch (dt) {
    case MG_FLOAT32: return *(const float *)p != 0;
    case MG_FLOAT64: return *(const double *)p != 0;
    case MG_INT64: return *(const int64_t *)p != 0;
    default: return *(const bool *)p;
    }
}

/* ================================================================ masked_select, nonzero */

typedef struct cursor {
    char *next; /* where the next selected element goes */
    size_t item;
} cursor;

/* p[0]: mask (bool), p[1]: input; appends the selected elements at the cursor */
static void select_run(char **p, const int64_t *s, int64_t n, const void *extra) {
    cursor *c = *(cursor *const *)extra;
    const char *m = p[0], *x = p[1];
    for (int64_t i = 0; i < n; i++, m += s[0], x += s[1])
        if (*(const bool *)m) {
            memcpy(c->next, x, c->item);
            c->next += c->item;
        }
}

mg_status mg_masked_select(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in, const mg_tensor *mask) {
    (void)ctx;
    cursor c = {(char *)mg_tensor_data(out), mg_dtype_size((mg_dtype)in->dtype)}, *pc = &c;
    const mg_tensor *ops[2] = {mask, in};
    mg_iter it;
    mg_iter_init(&it, 2, ops);
    mg_iter_run(&it, select_run, &pc);
    return MG_OK;
}

mg_status mg_nonzero(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in) {
    (void)ctx;
    if (in->numel == 0 || out->numel == 0) return MG_OK;
    const int nd = in->ndim;
    const size_t item = mg_dtype_size((mg_dtype)in->dtype);
    const char *base = (const char *)mg_tensor_data(in);
    int64_t *o = (int64_t *)mg_tensor_data(out);
    int64_t pos[MG_MAX_DIMS] = {0}, off = 0; /* off: in elements, follows pos */
    for (;;) {
        if (is_nonzero((mg_dtype)in->dtype, base + off * (int64_t)item))
            for (int d = 0; d < nd; d++) *o++ = pos[d] + 1;
        int d = nd - 1;
        for (; d >= 0; d--) { /* odometer: row-major order, as PyTorch lists them */
            off += in->stride[d];
            if (++pos[d] < in->size[d]) break;
            off -= in->stride[d] * in->size[d];
            pos[d] = 0;
        }
        if (d < 0) return MG_OK;
    }
}

/* ================================================================ cat, stack */

mg_status mg_cat_piece(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in, int dim, int64_t start) {
    view_buf dst;
    const mg_status st = mg_view_narrow(ctx, view_init(&dst, out->ndim), out, dim, start, in->size[dim]);
    return st ? st : mg_copy(ctx, &dst.t, in);
}

mg_status mg_stack_piece(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in, int dim, int64_t index) {
    view_buf dst;
    mg_view_select(ctx, view_init(&dst, out->ndim - 1), out, dim, index);
    return mg_copy(ctx, &dst.t, in);
}

/* ================================================================ gather, scatter */

/* Walks every position p of idx: self's element at p with p[dim] = idx[p] - 1, and other's at p
 * (other is 0-d for a scalar source). Checks only (write == 0), or copies: from self to other
 * (gather), or from other to self (scatter). */
static mg_status walk_indexed(mg_ctx *ctx, mg_tensor *self, int dim, const mg_tensor *idx,
                              mg_tensor *other, int write, bool to_self) {
    if (idx->numel == 0) return MG_OK;
    const int nd = idx->ndim;
    const size_t item = mg_dtype_size((mg_dtype)self->dtype);
    const int64_t dim_size = self->ndim ? self->size[dim] : 1;
    const int64_t dim_stride = self->ndim ? self->stride[dim] : 0;
    const int64_t *ip = (const int64_t *)mg_tensor_data(idx);
    char *sp = (char *)mg_tensor_data(self), *op = (char *)mg_tensor_data(other);
    int64_t pos[MG_MAX_DIMS] = {0}, oi = 0, os = 0, oo = 0; /* element offsets into idx, self, other */
    for (;;) {
        const int64_t v = ip[oi];
        if (!write) {
            const mg_status st = check_index(ctx, v, dim, dim_size);
            if (st) return st;
        } else {
            char *s = sp + (os + (v - 1) * dim_stride) * (int64_t)item, *o = op + oo * (int64_t)item;
            if (to_self) memcpy(s, o, item);
            else memcpy(o, s, item);
        }
        int d = nd - 1;
        for (; d >= 0; d--) {
            const int64_t ss = d == dim ? 0 : self->stride[d], so = other->ndim ? other->stride[d] : 0;
            oi += idx->stride[d], os += ss, oo += so;
            if (++pos[d] < idx->size[d]) break;
            oi -= idx->stride[d] * idx->size[d], os -= ss * idx->size[d], oo -= so * idx->size[d];
            pos[d] = 0;
        }
        if (d < 0) return MG_OK;
    }
}

mg_status mg_gather(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in, int dim, const mg_tensor *idx) {
    mg_status st = walk_indexed(ctx, (mg_tensor *)in, dim, idx, out, 0, false);
    return st ? st : walk_indexed(ctx, (mg_tensor *)in, dim, idx, out, 1, false); /* in is only read */
}

mg_status mg_scatter(mg_ctx *ctx, mg_tensor *t, int dim, const mg_tensor *idx, const mg_tensor *src) {
    mg_status st = walk_indexed(ctx, t, dim, idx, (mg_tensor *)src, 0, true);
    return st ? st : walk_indexed(ctx, t, dim, idx, (mg_tensor *)src, 1, true); /* src is only read */
}
