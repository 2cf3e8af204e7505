/*
 * linalg.c: matrix products as tensor ops. matmul in every form torch.matmul defines (1-D, 2-D,
 * batched with broadcast batch dims) and outer; the binding maps mm, bmm and dot onto matmul.
 * Here: the shape rules, the mapping of each form onto one strided batch of matrix products
 * C(M,N) = A(M,K) B(K,N) (a 1-D operand is a matrix with a size-1, stride-0 dim; batch dims an
 * operand lacks or broadcasts get stride 0: no copy), and the backward rule. The products
 * themselves, their kernels, blocking and threads are the engine's: src/ops/gemm.{h,c}.
 *
 * Backward, for C = A B:  dA = dC B^T,  dB = A^T dC.  A 1-D operand's added dim is removed
 * from its gradient again; when batch dims were broadcast, dA and dB are summed over the batch dims
 * their operand was broadcast along (mg_sum_to to the operand's shape). See the backward section.
 */
#include <string.h>

#include "gemm.h"
#include "grad.h"
#include "linalg.h"
#include "ops.h"

/* ---- shapes -------------------------------------------------------------------------------- */
mg_status mg_matmul_shape(mg_ctx *ctx, int *out_ndim, int64_t *out_size, const mg_tensor *a,
                          const mg_tensor *b) {
    char as[160], bs[160];
    if (a->ndim == 0 || b->ndim == 0)
        return mg_fail(ctx, MG_ESHAPE, a->ndim == 0 ? 1 : 2,
                       "both arguments to matmul need at least 1 dimension, but they are %d-d and %d-d",
                       a->ndim, b->ndim);
    const int64_t ka = a->size[a->ndim - 1], kb = b->size[b->ndim == 1 ? 0 : b->ndim - 2];
    if (ka != kb) {
        mg_format_shape(as, sizeof as, a->ndim, a->size);
        mg_format_shape(bs, sizeof bs, b->ndim, b->size);
        return mg_fail(ctx, MG_ESHAPE, 2, "shapes %s and %s cannot be multiplied: %lld != %lld", as,
                       bs, (long long)ka, (long long)kb);
    }
    const int nba = a->ndim > 2 ? a->ndim - 2 : 0, nbb = b->ndim > 2 ? b->ndim - 2 : 0;
    int nd;
    if (mg_broadcast_shape(ctx, &nd, out_size, nba, a->size, nbb, b->size) != MG_OK) {
        char ab[160], bb[160];
        mg_format_shape(ab, sizeof ab, nba, a->size);
        mg_format_shape(bb, sizeof bb, nbb, b->size);
        mg_format_shape(as, sizeof as, a->ndim, a->size);
        mg_format_shape(bs, sizeof bs, b->ndim, b->size);
        return mg_fail(ctx, MG_ESHAPE, 2, "batch dimensions %s and %s of shapes %s and %s cannot broadcast",
                       ab, bb, as, bs);
    }
    if (a->ndim >= 2) out_size[nd++] = a->size[a->ndim - 2];
    if (b->ndim >= 2) out_size[nd++] = b->size[b->ndim - 1];
    *out_ndim = nd;
    return MG_OK;
}

/* ---- matmul -------------------------------------------------------------------------------- */
/* Stride of `t` along the out batch dim `d` (of nb): 0 where t lacks the dim or broadcasts it. */
static int64_t batch_stride(const mg_tensor *t, int nb, int d) {
    const int tb = t->ndim > 2 ? t->ndim - 2 : 0;
    const int j = d - (nb - tb);
    return (j < 0 || t->size[j] == 1) ? 0 : t->stride[j];
}

/* out = a b, or out += a b (accumulate: mg_gemm's limits) */
static mg_status matmul(mg_ctx *ctx, mg_tensor *out, const mg_tensor *a, const mg_tensor *b, bool accumulate) {
    const mg_dtype dt = (mg_dtype)a->dtype;
    if (dt == MG_BOOL || b->dtype != dt || out->dtype != dt)
        return mg_fail(ctx, MG_EDTYPE, dt == MG_BOOL ? 1 : 2,
                       "matmul takes two float32, float64 or int64 tensors of one dtype, got %s and %s",
                       mg_dtype_name(dt), mg_dtype_name((mg_dtype)b->dtype));
    int nd;
    int64_t size[MG_MAX_DIMS];
    mg_status st = mg_matmul_shape(ctx, &nd, size, a, b);
    if (st != MG_OK) return st;
    if (nd != out->ndim || memcmp(size, out->size, sizeof(int64_t) * (size_t)nd) != 0) {
        char want[160], got[160];
        mg_format_shape(want, sizeof want, nd, size);
        mg_format_shape(got, sizeof got, out->ndim, out->size);
        return mg_fail(ctx, MG_ESHAPE, 0, "matmul output has shape %s, expected %s", got, want);
    }
    if (out->numel == 0) return MG_OK;

    /* a 1-D a is a (1,K) row, a 1-D b a (K,1) column; their added dims are absent from out */
    const int a2 = a->ndim >= 2, b2 = b->ndim >= 2;
    const int nb = out->ndim - a2 - b2;
    int64_t sa[MG_MAX_DIMS], sb[MG_MAX_DIMS];
    for (int d = 0; d < nb; d++) {
        sa[d] = batch_stride(a, nb, d);
        sb[d] = batch_stride(b, nb, d);
    }
    const mg_gemm_args p = {
        .m = a2 ? a->size[a->ndim - 2] : 1,
        .n = b2 ? b->size[b->ndim - 1] : 1,
        .k = a->size[a->ndim - 1],
        .a = mg_tensor_data(a),
        .rsa = a2 ? a->stride[a->ndim - 2] : 0,
        .csa = a->stride[a->ndim - 1],
        .b = mg_tensor_data(b),
        .rsb = b->stride[b2 ? b->ndim - 2 : 0],
        .csb = b2 ? b->stride[b->ndim - 1] : 0,
        .c = mg_tensor_data(out),
        .rsc = a2 ? out->stride[nb] : 0,
        .csc = b2 ? out->stride[out->ndim - 1] : 0,
        .batch_ndim = nb,
        .batch_size = out->size,
        .batch_sa = sa,
        .batch_sb = sb,
        .batch_sc = out->stride,
        .accumulate = accumulate,
    };
    return mg_gemm(ctx, dt, &p);
}
mg_status mg_matmul(mg_ctx *ctx, mg_tensor *out, const mg_tensor *a, const mg_tensor *b) {
    return matmul(ctx, out, a, b, false);
}
mg_status mg_matmul_add(mg_ctx *ctx, mg_tensor *out, const mg_tensor *a, const mg_tensor *b) {
    return matmul(ctx, out, a, b, true);
}
/* outer(a, b) = matmul of a as an (M,1) column and b as a (1,N) row: views, no copy */
mg_status mg_outer(mg_ctx *ctx, mg_tensor *out, const mg_tensor *a, const mg_tensor *b) {
    if (a->ndim != 1 || b->ndim != 1)
        return mg_fail(ctx, MG_ESHAPE, a->ndim != 1 ? 1 : 2, "outer takes two 1-d tensors");
    int64_t a_size[2] = {a->size[0], 1}, a_stride[2] = {a->stride[0], 0};
    int64_t b_size[2] = {1, b->size[0]}, b_stride[2] = {0, b->stride[0]};
    mg_tensor col = *a, row = *b;
    col.ndim = row.ndim = 2;
    col.size = a_size;
    col.stride = a_stride;
    row.size = b_size;
    row.stride = b_stride;
    return mg_matmul(ctx, out, &col, &row);
}

/* ---- backward ------------------------------------------------------------------------------ */
/* Every form is a batched C = A B once each operand is seen as a matrix (as_matrix): a 1-D a of
 * matmul is a (1,K) row and a 1-D b a (K,1) column; outer's a is an (M,1) column and b a (1,N) row.
 * g, d loss / d C, gets the same dims back (size 1, stride 0). Then
 *     dA = g B^T : (batch..., M,N) x (batchB..., N,K) -> (batch..., M,K)
 *     dB = A^T g : (batchA..., K,M) x (batch..., M,N) -> (batch..., K,N)
 * and each is summed over the batch dims its operand was broadcast along (mg_sum_to to the
 * operand's matrix shape, over gin). When nothing needs summing (the common case) the product
 * is written straight into gin; otherwise into a scratch buffer first. Operands of another dtype
 * than g (float32 x float64 promoted to float64) are converted into scratch. */

/* The descriptor of t seen as a matrix (or a batch of them) in product `op`, operand `which`
 * (0: a, 1: b); `t` may be gin, which has the operand's shape. */
static mg_tensor *as_matrix(mg_view_buf *vb, const mg_tensor *t, mg_linalg_op op, int which) {
    if (t->ndim >= 2 && op == MG_LIN_MATMUL) {
        mg_tensor *v = mg_view_of(vb, t, t->ndim);
        memcpy(v->size, t->size, sizeof(int64_t) * t->ndim);
        memcpy(v->stride, t->stride, sizeof(int64_t) * t->ndim);
        return v;
    }
    mg_tensor *v = mg_view_of(vb, t, 2);
    /* the 1-D operand's dim goes second for a row (matmul's a, outer's b), first for a column */
    const int row = (op == MG_LIN_MATMUL) == (which == 0);
    v->size[row] = t->size[0], v->stride[row] = t->stride[0];
    v->size[!row] = 1, v->stride[!row] = 0;
    return v;
}

/* g with the dims matmul removed put back as size 1 (batch..., M, N) */
static mg_tensor *grad_as_matrix(mg_view_buf *vb, const mg_tensor *g, const mg_tensor *a,
                                 const mg_tensor *b, mg_linalg_op op) {
    if (op == MG_LIN_OUTER) return as_matrix(vb, g, MG_LIN_MATMUL, 0); /* already (M,N) */
    const int a2 = a->ndim >= 2, b2 = b->ndim >= 2;
    const int nb = g->ndim - a2 - b2;
    mg_tensor *v = mg_view_of(vb, g, nb + 2);
    for (int d = 0; d < nb; d++) v->size[d] = g->size[d], v->stride[d] = g->stride[d];
    v->size[nb] = a2 ? g->size[nb] : 1, v->stride[nb] = a2 ? g->stride[nb] : 0;
    v->size[nb + 1] = b2 ? g->size[g->ndim - 1] : 1, v->stride[nb + 1] = b2 ? g->stride[g->ndim - 1] : 0;
    return v;
}

/* The last two dims of m swapped, in place (m is a view descriptor). */
static void transpose_last(mg_tensor *m) {
    const int r = m->ndim - 2, c = m->ndim - 1;
    int64_t t = m->size[r];
    m->size[r] = m->size[c], m->size[c] = t;
    t = m->stride[r];
    m->stride[r] = m->stride[c], m->stride[c] = t;
}

/* target (a matrix view of gin) <- lhs rhs, summed over the batch dims target lacks or has as 1 */
static mg_status product_into(mg_ctx *ctx, mg_tensor *target, const mg_tensor *lhs, const mg_tensor *rhs) {
    int nd = 0;
    int64_t size[MG_MAX_DIMS];
    mg_status st = mg_matmul_shape(ctx, &nd, size, lhs, rhs);
    if (st != MG_OK) return st;
    int64_t numel = 1;
    for (int d = 0; d < nd; d++) numel *= size[d]; /* <= the numel of g or of an operand */
    if (numel == target->numel && lhs->dtype == target->dtype) {
        /* same elements in the same order (they differ only by size-1 dims): no sum needed */
        mg_view_buf vb;
        mg_tensor *v = mg_view_of(&vb, target, nd);
        memcpy(v->size, size, sizeof(int64_t) * nd);
        mg_contiguous_strides(nd, size, v->stride);
        return mg_matmul(ctx, v, lhs, rhs);
    }
    mg_scratch full;
    st = mg_scratch_new(ctx, &full, (mg_dtype)lhs->dtype, nd, size);
    if (st != MG_OK) return st;
    st = mg_matmul(ctx, &full.t, lhs, rhs);
    if (st == MG_OK) st = mg_sum_to(ctx, target, &full.t);
    mg_scratch_free(ctx, &full);
    return st;
}

mg_status mg_linalg_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin) {
    const mg_linalg_op op = (mg_linalg_op)a->node->op;
    const mg_tensor *g = a->gout;
    const mg_dtype dt = (mg_dtype)g->dtype;
    mg_scratch so;
    const mg_tensor *other; /* the operand the gradient multiplies by, in g's dtype */
    mg_status st = mg_scratch_as(ctx, a->inputs[1 - i], dt, &so, &other);
    if (st == MG_OK) {
        mg_view_buf gb, ob, tb;
        const mg_tensor *gm = grad_as_matrix(&gb, g, a->inputs[0], a->inputs[1], op);
        mg_tensor *om = as_matrix(&ob, other, op, 1 - i);
        transpose_last(om);
        mg_tensor *target = as_matrix(&tb, gin, op, i); /* gin is contiguous: so is this view */
        mg_contiguous_strides(target->ndim, target->size, target->stride);
        st = i == 0 ? product_into(ctx, target, gm, om) : product_into(ctx, target, om, gm);
    }
    if (so.s.data) mg_scratch_free(ctx, &so);
    return st;
}
