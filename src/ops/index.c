/*
 * index.c: index_select, masked_select, nonzero, gather / scatter_, and the pieces of cat / stack.
 *
 * These ops move elements without computing on them, so they are dtype-free: whole slices go
 * through mg_copy into narrowed views (index_select, cat, stack), and single elements are copied
 * as bytes (gather, scatter, masked_select). Only the nonzero test is typed: one line per dtype.
 * Index tensors hold 1-based int64 indices (see index.h); each is checked before anything is
 * written. The backward rules of all of them are at the end of the file.
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
    if (mg_is_contiguous(in) && mg_is_contiguous(out) && out->dtype == in->dtype) {
        /* both contiguous: each slice is `outer` runs of `inner` elements, copied as bytes (a
         * view and mg_copy a slice cost ~60 ns: 500 rows of 256 floats took 31 us, PyTorch 14) */
        int64_t outer = 1, inner = 1;
        for (int d = 0; d < dim; d++) outer *= in->size[d];
        for (int d = dim + 1; d < in->ndim; d++) inner *= in->size[d];
        const size_t run = (size_t)inner * mg_dtype_size((mg_dtype)in->dtype);
        const char *src = (const char *)mg_tensor_data(in);
        char *dst = (char *)mg_tensor_data(out);
        const int64_t N = in->ndim ? in->size[dim] : 1;
        if (run > 0)
            for (int64_t o = 0; o < outer; o++)
                for (int64_t k = 0; k < n; k++)
                    memcpy(dst + (size_t)(o * n + k) * run, src + (size_t)(o * N + index_at(idx, k) - 1) * run, run);
        return MG_OK;
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

/* Walks its own odometer over the merged dims (mg_iter's), the innermost run in pieces of at most
 * MG_INTERRUPT_CHUNK, looking at the interrupt request between pieces once it has counted that
 * many: an expanded input of 2^40 elements (or 2^39 runs of 2) can be stopped. */
mg_status mg_count_nonzero(mg_ctx *ctx, const mg_tensor *t, int64_t *count) {
    int64_t c = 0, *pc = &c;
    *count = 0;
    mg_iter it;
    mg_iter_init(&it, 1, &t);
    if (t->numel <= MG_INTERRUPT_CHUNK) {
        mg_iter_run(&it, count_kernels[t->dtype], &pc);
        *count = c;
        return MG_OK;
    }
    const mg_inner_fn kernel = count_kernels[t->dtype];
    const int last = it.ndim - 1;
    const int64_t n = it.size[last], s = it.stride[0][last];
    const double deadline = mg_deadline(ctx);
    int64_t index[MG_MAX_DIMS] = {0}, since = 0;
    char *base = it.data[0];
    for (;;) {
        for (int64_t done = 0; done < n; done += MG_INTERRUPT_CHUNK) {
            const int64_t m = n - done < MG_INTERRUPT_CHUNK ? n - done : MG_INTERRUPT_CHUNK;
            char *p = base + done * s;
            kernel(&p, &s, m, &pc);
            if ((since += m) >= MG_INTERRUPT_CHUNK) {
                since = 0;
                if (mg_should_stop(ctx, deadline)) return MG_EINTR;
            }
        }
        int d = last - 1;
        for (; d >= 0; d--) {
            base += it.stride[0][d];
            if (++index[d] < it.size[d]) break;
            base -= it.stride[0][d] * it.size[d];
            index[d] = 0;
        }
        if (d < 0) break;
    }
    *count = c;
    return MG_OK;
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

/* ---- backward ------------------------------------------------------------------------------ */
/* index_select and gather scatter-add the gradient back (repeated indices add up), masked_select
 * writes it where the mask is true, cat and stack take their piece of it. */

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

mg_status mg_index_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin) {
    const mg_node *n = a->node;
    const mg_tensor *g = a->gout;
    mg_view_buf vb;
    mg_tensor *v;
    switch ((mg_index_op)n->op) {
    case MG_INDEX_SELECT: { /* gin[idx[k]] += g[k] along dim */
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
    case MG_INDEX_CAT: {
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
    case MG_INDEX_STACK:
        v = mg_view_of(&vb, g, g->ndim - 1);
        mg_view_select(ctx, v, g, (int)n->iarg[0], i);
        return mg_copy(ctx, gin, v);
    case MG_INDEX_GATHER: /* gin[p with p[dim] <- idx[p]] += g[p]: a scatter that adds */
        if (i == 1) return mg_fail(ctx, MG_EVALUE, 0, "the indices of 'gather' have no gradient");
        return scatter_add(ctx, gin, (int)n->iarg[0], a->inputs[1], g);
    case MG_INDEX_MASKED_SELECT:
        if (i == 1) return mg_fail(ctx, MG_EVALUE, 0, "the mask of 'masked_select' has no gradient");
        return unselect(ctx, gin, a->inputs[1], g);
    default: return mg_fail(ctx, MG_EVALUE, 0, "this index op has no backward rule");
    }
}
