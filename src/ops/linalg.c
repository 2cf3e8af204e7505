/*
 * linalg.c: matrix products. matmul in every form torch.matmul defines (1-D, 2-D, batched with
 * broadcast batch dims) and outer; the binding maps mm, bmm and dot onto matmul.
 *
 * One product C(M,N) = A(M,K) B(K,N) is described by a `product` (pointers and strides in
 * elements, any strides: transposed and expanded views multiply without a copy). Two kernels run it:
 *   - naive: the triple loop, the oracle and the fallback. It runs int64 (wrapping as PyTorch does),
 *     K == 0 (C = 0), and vector products (M == 1 or N == 1) that read the matrix along its
 *     contiguous dim, where packing would only pad the vector to a whole micro-tile;
 *   - gemm (float32, float64): the usual cache-blocked scheme. For each KC x NC panel of B and each
 *     MC x KC block of A, both are packed into contiguous scratch (A in slivers of MR rows, B in
 *     slivers of NR columns, zero-padded), then a register-tiled MR x NR micro-kernel written as plain
 *     loops over a fixed-size local array, which the compiler keeps in vector registers.
 * Both accumulate in the element type (float32 in float32, as BLAS does). The order of the sums
 * depends on the sizes only (blocks of KC along K, each summed in order, then added to C), so
 * results are reproducible. The blocking logic is dtype-free; only pack, micro and naive are typed,
 * one DEFINE_ line per dtype.
 *
 * Backward (#4), for C = A B:  dA = dC B^T,  dB = A^T dC.  A 1-D operand's added dim is removed
 * from its gradient again; when batch dims were broadcast, dA and dB are summed over the batch dims
 * their operand was broadcast along (mg_sum_to to the operand's shape). See the backward section.
 *
 * To add a dtype: DEFINE_NAIVE (and DEFINE_PACK / DEFINE_MICRO for a gemm), a row in `kernels`.
 */
#include <string.h>

#include "linalg.h"

/* C(M,N) = A(M,K) B(K,N); strides in elements */
typedef struct product {
    int64_t m, n, k;
    const void *a;
    int64_t rsa, csa;
    const void *b;
    int64_t rsb, csb;
    void *c;
    int64_t rsc, csc;
} product;

/* ---- naive: oracle and fallback ------------------------------------------------------------ */
#define DEFINE_NAIVE(NAME, T)                                                                 \
    static void NAME(const product *g) {                                                      \
        const T *a = (const T *)g->a, *b = (const T *)g->b;                                   \
        T *c = (T *)g->c;                                                                     \
        for (int64_t i = 0; i < g->m; i++)                                                    \
            for (int64_t j = 0; j < g->n; j++) {                                              \
                T acc = 0;                                                                    \
                for (int64_t p = 0; p < g->k; p++)                                            \
                    acc += a[i * g->rsa + p * g->csa] * b[p * g->rsb + j * g->csb];            \
                c[i * g->rsc + j * g->csc] = acc;                                             \
            }                                                                                 \
    }
DEFINE_NAIVE(naive_f32, float)
DEFINE_NAIVE(naive_f64, double)
DEFINE_NAIVE(naive_i64, uint64_t) /* int64 storage read as unsigned: wraps instead of overflowing */

/* ---- gemm: packing and micro-kernel -------------------------------------------------------- */
/* Packs `lanes` rows (A: rows, s_lane = rsa, s_depth = csa) or columns (B: s_lane = csb,
 * s_depth = rsb) of a depth-`depth` block into slivers of `width` lanes: for each sliver, for each
 * p, `width` values, the missing lanes of the last sliver zero. */
#define DEFINE_PACK(NAME, T)                                                                  \
    static void NAME(void *dst_, const void *src_, int64_t s_lane, int64_t s_depth,           \
                     int64_t lanes, int64_t depth, int64_t width) {                           \
        T *restrict dst = (T *)dst_;                                                          \
        const T *src = (const T *)src_;                                                       \
        for (int64_t l0 = 0; l0 < lanes; l0 += width) {                                       \
            const int64_t w = lanes - l0 < width ? lanes - l0 : width;                        \
            for (int64_t p = 0; p < depth; p++) {                                             \
                const T *s = src + l0 * s_lane + p * s_depth;                                 \
                int64_t l = 0;                                                                \
                for (; l < w; l++) *dst++ = s[l * s_lane];                                    \
                for (; l < width; l++) *dst++ = 0;                                            \
            }                                                                                 \
        }                                                                                     \
    }
DEFINE_PACK(pack_f32, float)
DEFINE_PACK(pack_f64, double)

/* acc(MR,NR) = sum over p of pa(p, 0..MR) x pb(p, 0..NR), then the mr x nr corner that exists goes
 * to C: stored on the first K block, added on the next ones. */
#define DEFINE_MICRO(NAME, T, MR, NR)                                                         \
    static void NAME(int64_t kc, const void *pa_, const void *pb_, void *c_, int64_t rsc,     \
                     int64_t csc, int64_t mr, int64_t nr, bool first) {                       \
        const T *restrict pa = (const T *)pa_, *restrict pb = (const T *)pb_;                 \
        T acc[MR][NR];                                                                        \
        for (int i = 0; i < MR; i++)                                                          \
            for (int j = 0; j < NR; j++) acc[i][j] = 0;                                       \
        for (int64_t p = 0; p < kc; p++, pa += MR, pb += NR)                                  \
            for (int i = 0; i < MR; i++)                                                      \
                for (int j = 0; j < NR; j++) acc[i][j] += pa[i] * pb[j];                      \
        T *c = (T *)c_;                                                                       \
        for (int64_t i = 0; i < mr; i++)                                                      \
            for (int64_t j = 0; j < nr; j++) {                                                \
                T *cij = c + i * rsc + j * csc;                                               \
                *cij = first ? acc[i][j] : *cij + acc[i][j];                                  \
            }                                                                                 \
    }
/* 6x8 float32 / 6x4 float64: 12 SSE2 accumulators, leaving room for the B row and an A value */
DEFINE_MICRO(micro_f32, float, 6, 8)
DEFINE_MICRO(micro_f64, double, 6, 4)

typedef void (*naive_fn)(const product *g);
typedef void (*pack_fn)(void *dst, const void *src, int64_t s_lane, int64_t s_depth, int64_t lanes,
                        int64_t depth, int64_t width);
typedef void (*micro_fn)(int64_t kc, const void *pa, const void *pb, void *c, int64_t rsc,
                         int64_t csc, int64_t mr, int64_t nr, bool first);

/* mr, nr: the micro-tile (as in DEFINE_MICRO); mc, kc, nc: block sizes, so that a packed sliver of
 * B (kc x nr) stays in L1 and the packed block of A (mc x kc) in L2. */
typedef struct matmul_kernel {
    naive_fn naive;
    pack_fn pack;   /* NULL: no gemm, naive only */
    micro_fn micro;
    int64_t mr, nr, mc, kc, nc;
} matmul_kernel;

static const matmul_kernel kernels[MG_NDTYPES] = {
    [MG_FLOAT32] = {naive_f32, pack_f32, micro_f32, 6, 8, 96, 256, 1024},
    [MG_FLOAT64] = {naive_f64, pack_f64, micro_f64, 6, 4, 96, 256, 512},
    [MG_INT64] = {naive_i64, NULL, NULL, 0, 0, 0, 0, 0},
};

static int64_t min64(int64_t x, int64_t y) { return x < y ? x : y; }
static int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

/* Element offset -> address (es: element size in bytes). */
static const char *at(const void *p, int64_t off, size_t es) { return (const char *)p + (size_t)off * es; }

/* The blocked product; pa and pb hold the packed block of A and panel of B (see packed_sizes). */
static void gemm(const matmul_kernel *kn, size_t es, const product *g, void *pa, void *pb) {
    for (int64_t jc = 0; jc < g->n; jc += kn->nc) {
        const int64_t nc = min64(kn->nc, g->n - jc);
        for (int64_t pc = 0; pc < g->k; pc += kn->kc) {
            const int64_t kc = min64(kn->kc, g->k - pc);
            kn->pack(pb, at(g->b, pc * g->rsb + jc * g->csb, es), g->csb, g->rsb, nc, kc, kn->nr);
            for (int64_t ic = 0; ic < g->m; ic += kn->mc) {
                const int64_t mc = min64(kn->mc, g->m - ic);
                kn->pack(pa, at(g->a, ic * g->rsa + pc * g->csa, es), g->rsa, g->csa, mc, kc, kn->mr);
                for (int64_t jr = 0; jr < nc; jr += kn->nr)
                    for (int64_t ir = 0; ir < mc; ir += kn->mr) {
                        char *c = (char *)at(g->c, (ic + ir) * g->rsc + (jc + jr) * g->csc, es);
                        kn->micro(kc, at(pa, ir * kc, es), at(pb, jr * kc, es), c, g->rsc, g->csc,
                                  min64(kn->mr, mc - ir), min64(kn->nr, nc - jr), pc == 0);
                    }
            }
        }
    }
}

/* Bytes of packing scratch for an M x N x K product (bounded by the block sizes). */
static void packed_sizes(const matmul_kernel *kn, size_t es, int64_t m, int64_t n, int64_t k,
                         size_t *a_bytes, size_t *b_bytes) {
    const int64_t kc = min64(kn->kc, k);
    *a_bytes = (size_t)(round_up(min64(kn->mc, m), kn->mr) * kc) * es;
    *b_bytes = (size_t)(round_up(min64(kn->nc, n), kn->nr) * kc) * es;
}

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

mg_status mg_matmul(mg_ctx *ctx, mg_tensor *out, const mg_tensor *a, const mg_tensor *b) {
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
    product g;
    g.m = a2 ? a->size[a->ndim - 2] : 1;
    g.k = a->size[a->ndim - 1];
    g.n = b2 ? b->size[b->ndim - 1] : 1;
    g.rsa = a2 ? a->stride[a->ndim - 2] : 0;
    g.csa = a->stride[a->ndim - 1];
    g.rsb = b->stride[b2 ? b->ndim - 2 : 0];
    g.csb = b2 ? b->stride[b->ndim - 1] : 0;
    g.rsc = a2 ? out->stride[nb] : 0;
    g.csc = b2 ? out->stride[out->ndim - 1] : 0;

    int64_t sa[MG_MAX_DIMS], sb[MG_MAX_DIMS], idx[MG_MAX_DIMS], nbatch = 1;
    for (int d = 0; d < nb; d++) {
        sa[d] = batch_stride(a, nb, d);
        sb[d] = batch_stride(b, nb, d);
        idx[d] = 0;
        nbatch *= out->size[d];
    }

    const matmul_kernel *kn = &kernels[dt];
    const size_t es = mg_dtype_size(dt);
    /* a vector product whose dot loop walks the matrix contiguously is memory-bound: the naive
     * loop is as fast as packing, which would pad the vector to a whole micro-tile */
    const bool vector_friendly = (g.m == 1 && (g.n == 1 || g.rsb == 1)) || (g.n == 1 && g.csa == 1);
    const bool blocked = kn->pack && g.k > 0 && !vector_friendly;
    size_t a_bytes = 0, b_bytes = 0;
    void *pa = NULL, *pb = NULL;
    if (blocked) {
        packed_sizes(kn, es, g.m, g.n, g.k, &a_bytes, &b_bytes);
        pa = mg_alloc(ctx, a_bytes);
        pb = mg_alloc(ctx, b_bytes);
        if (!pa || !pb) {
            mg_free(ctx, pa, a_bytes);
            mg_free(ctx, pb, b_bytes);
            return mg_fail(ctx, MG_ENOMEM, 0, "not enough memory for matmul's packing buffers");
        }
    }
    const char *a0 = mg_tensor_data(a), *b0 = mg_tensor_data(b);
    char *c0 = mg_tensor_data(out);
    for (int64_t t = 0; t < nbatch; t++) {
        int64_t oa = 0, ob = 0, oc = 0; /* element offsets of this batch's matrices */
        for (int d = 0; d < nb; d++) {
            oa += idx[d] * sa[d];
            ob += idx[d] * sb[d];
            oc += idx[d] * out->stride[d];
        }
        g.a = at(a0, oa, es);
        g.b = at(b0, ob, es);
        g.c = (char *)at(c0, oc, es);
        if (blocked) gemm(kn, es, &g, pa, pb);
        else kn->naive(&g);
        for (int d = nb - 1; d >= 0; d--) { /* next batch index, last dim fastest */
            if (++idx[d] < out->size[d]) break;
            idx[d] = 0;
        }
    }
    mg_free(ctx, pa, a_bytes);
    mg_free(ctx, pb, b_bytes);
    return MG_OK;
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
#include "../core/autograd.h"
#include "ops.h"

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

/* t itself when it has dtype dt, else a converted copy in sc (freed by the caller when its data
 * is not NULL). */
static mg_status as_dtype(mg_ctx *ctx, const mg_tensor *t, mg_dtype dt, mg_scratch *sc,
                          const mg_tensor **out) {
    sc->s.data = NULL;
    *out = t;
    if (t->dtype == dt) return MG_OK;
    mg_status st = mg_scratch_new(ctx, sc, dt, t->ndim, t->size);
    if (st == MG_OK) st = mg_copy(ctx, &sc->t, t);
    *out = &sc->t;
    return st;
}

/* target (a matrix view of gin) <- lhs rhs, summed over the batch dims target lacks or has as 1 */
static mg_status product_into(mg_ctx *ctx, mg_tensor *target, const mg_tensor *lhs, const mg_tensor *rhs) {
    int nd;
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
    mg_status st = as_dtype(ctx, a->inputs[1 - i], dt, &so, &other);
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
