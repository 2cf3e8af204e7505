/*
 * conv.c: conv2d (conv1d is a conv2d of height 1) and the 2-d pools, forward and backward, and the
 * rule of the MG_FAM_CONV family (the norm ops' part is in norm.c).
 *
 * Convolution as matrix products. x (N,C,H,W) is unfolded (im2col) into col (C kh kw, N OH OW):
 * row ((c kh + i) kw + j), column (n OH OW + p) holds the input element under kernel tap (i,j) of
 * output position p of sample n (0 in the padding). Seen per group g, col_g is (K, P) with
 * K = C/groups kh kw and P = N OH OW, and
 *     forward   out_g (O/groups, P) = W_g (O/groups, K) col_g          (then permuted to (N,O,OH,OW))
 *     dW_g      (O/groups, K)       = gout_g (O/groups, P) col_g^T
 *     dcol_g    (K, P)              = W_g^T gout_g                      (then folded back: col2im)
 * each one product of the gemm engine per group (its order of sums is fixed by the sizes: the
 * same bits for any thread count and ISA). Because col keeps the whole batch side by side, dW is
 * one product whose inner dimension runs over the batch too (no per-sample partial sums).
 * im2col / col2im / the permutes are split over threads by rows / input planes, each written by one
 * index of the range.
 */
#include <math.h>
#include <string.h>

#include "conv.h"
#include "gemm.h"
#include "grad.h"
#include "ops.h"

#define NAME(e, name) name,
static const char *const conv_names[MG_NCONV] = {MG_CONV_OPS(NAME)};
#undef NAME
const char *mg_conv_name(mg_conv_op op) { return conv_names[op]; }

void mg_conv_geom_pack(int64_t *iarg, const mg_conv2d_geom *g) {
    iarg[0] = (g->sh << 32) | g->sw;
    iarg[1] = (g->ph << 32) | g->pw;
    iarg[2] = (g->dh << 32) | g->dw;
    iarg[3] = g->groups;
}
void mg_conv_geom_unpack(const int64_t *iarg, mg_conv2d_geom *g) {
    const int64_t lo = 0xffffffff;
    g->sh = iarg[0] >> 32, g->sw = iarg[0] & lo;
    g->ph = iarg[1] >> 32, g->pw = iarg[1] & lo;
    g->dh = iarg[2] >> 32, g->dw = iarg[2] & lo;
    g->groups = iarg[3];
}

mg_status mg_conv_contiguous(mg_ctx *ctx, const mg_tensor *t, mg_scratch *sc, const mg_tensor **out) {
    sc->s.data = NULL;
    *out = t;
    if (mg_is_contiguous(t)) return MG_OK;
    mg_status st = mg_scratch_new(ctx, sc, (mg_dtype)t->dtype, t->ndim, t->size);
    if (st == MG_OK) st = mg_copy(ctx, &sc->t, t);
    *out = &sc->t;
    return st;
}

/* ---- im2col / col2im ------------------------------------------------------------------------ */
typedef struct conv_job {
    mg_dtype dt;
    const char *x;      /* x's first element */
    int64_t xs[4];      /* x's strides, elements */
    char *col;          /* (C kh kw, N OH OW) */
    char *dx;           /* col2im: (N,C,H,W) contiguous */
    const char *gout;   /* pool backward: d loss / d out, contiguous (N,C,OH,OW) */
    const int64_t *idx;
    char *out;
    int64_t N, C, H, W, OH, OW;
    mg_conv2d_geom g;
} conv_job;

/* The output columns ow whose tap kj reads inside the input row: [*lo, *hi) (may be empty). */
static void valid_cols(const conv_job *j, int64_t kj, int64_t *lo, int64_t *hi) {
    const mg_conv2d_geom *g = &j->g;
    const int64_t off = kj * g->dw - g->pw; /* iw = ow sw + off */
    int64_t a = off >= 0 ? 0 : (-off + g->sw - 1) / g->sw;
    int64_t b = j->W - 1 - off < 0 ? 0 : (j->W - 1 - off) / g->sw + 1;
    if (a > j->OW) a = j->OW;
    if (b > j->OW) b = j->OW;
    if (b < a) b = a;
    *lo = a, *hi = b;
}

#define IM2COL_ROW(T)                                                                      \
    do {                                                                                   \
        const T *xp = (const T *)j->x + n * j->xs[0] + c * j->xs[1];                       \
        T *dst = (T *)j->col + r * OHW;                                                    \
        const int64_t step = g->sw * j->xs[3], off = kj * g->dw - g->pw;                   \
        for (int64_t oh = 0; oh < j->OH; oh++) {                                           \
            const int64_t ih = oh * g->sh - g->ph + ki * g->dh;                            \
            T *d = dst + oh * j->OW;                                                       \
            if (ih < 0 || ih >= j->H) {                                                    \
                memset(d, 0, sizeof(T) * (size_t)j->OW);                                   \
                continue;                                                                  \
            }                                                                              \
            const T *src = xp + ih * j->xs[2] + (lo * g->sw + off) * j->xs[3];             \
            for (int64_t ow = 0; ow < lo; ow++) d[ow] = 0;                                 \
            if (step == 1) memcpy(d + lo, src, sizeof(T) * (size_t)(hi - lo));             \
            else                                                                           \
                for (int64_t ow = lo; ow < hi; ow++) d[ow] = src[(ow - lo) * step];        \
            for (int64_t ow = hi; ow < j->OW; ow++) d[ow] = 0;                             \
        }                                                                                  \
    } while (0)

/* rows r = ((c kh + ki) kw + kj) N + n of col */
static void im2col_range(void *arg, int64_t b, int64_t e) {
    const conv_job *j = (const conv_job *)arg;
    const mg_conv2d_geom *g = &j->g;
    const int64_t OHW = j->OH * j->OW;
    for (int64_t r = b; r < e; r++) {
        const int64_t n = r % j->N;
        int64_t t = r / j->N;
        const int64_t kj = t % g->kw;
        t /= g->kw;
        const int64_t ki = t % g->kh, c = t / g->kh;
        int64_t lo, hi;
        valid_cols(j, kj, &lo, &hi);
        if (j->dt == MG_FLOAT64) IM2COL_ROW(double);
        else IM2COL_ROW(float);
    }
}

#define COL2IM_PLANE(T)                                                                        \
    do {                                                                                       \
        T *plane = (T *)j->dx + q * j->H * j->W;                                               \
        memset(plane, 0, sizeof(T) * (size_t)(j->H * j->W));                                   \
        for (int64_t ki = 0; ki < g->kh; ki++)                                                 \
            for (int64_t kj = 0; kj < g->kw; kj++) {                                           \
                const T *src = (const T *)j->col + (((c * g->kh + ki) * g->kw + kj) * j->N + n) * OHW; \
                int64_t lo, hi;                                                                \
                valid_cols(j, kj, &lo, &hi);                                                   \
                const int64_t off = kj * g->dw - g->pw;                                        \
                for (int64_t oh = 0; oh < j->OH; oh++) {                                       \
                    const int64_t ih = oh * g->sh - g->ph + ki * g->dh;                        \
                    if (ih < 0 || ih >= j->H) continue;                                        \
                    T *drow = plane + ih * j->W;                                               \
                    const T *srow = src + oh * j->OW;                                          \
                    if (g->sw == 1)                                                            \
                        for (int64_t ow = lo; ow < hi; ow++) drow[ow + off] += srow[ow];       \
                    else                                                                       \
                        for (int64_t ow = lo; ow < hi; ow++) drow[ow * g->sw + off] += srow[ow]; \
                }                                                                              \
            }                                                                                  \
    } while (0)

/* input planes q = n C + c of dx */
static void col2im_range(void *arg, int64_t b, int64_t e) {
    const conv_job *j = (const conv_job *)arg;
    const mg_conv2d_geom *g = &j->g;
    const int64_t OHW = j->OH * j->OW;
    for (int64_t q = b; q < e; q++) {
        const int64_t n = q / j->C, c = q % j->C;
        if (j->dt == MG_FLOAT64) COL2IM_PLANE(double);
        else COL2IM_PLANE(float);
    }
}

static int64_t grain_for(int64_t work_per_index) {
    const int64_t g = 32768 / (work_per_index > 0 ? work_per_index : 1);
    return g > 0 ? g : 1;
}

/* 4-d views: t seen as (N,C,H,W); `spatial` is 1 (conv1d) or 2; an unbatched t gets N = 1. */
mg_tensor *mg_conv_view4(mg_view_buf *vb, const mg_tensor *t, int spatial) {
    mg_tensor *v = mg_view_of(vb, t, 4);
    const int batched = t->ndim == spatial + 2;
    int d = 0;
    v->size[0] = batched ? t->size[d] : 1, v->stride[0] = batched ? t->stride[d++] : 0;
    v->size[1] = t->size[d], v->stride[1] = t->stride[d++];
    if (spatial == 1) v->size[2] = 1, v->stride[2] = 0;
    else v->size[2] = t->size[d], v->stride[2] = t->stride[d++];
    v->size[3] = t->size[d], v->stride[3] = t->stride[d];
    return v;
}

static void fill_job(conv_job *j, const mg_tensor *x, int64_t OH, int64_t OW, const mg_conv2d_geom *g) {
    memset(j, 0, sizeof *j);
    j->dt = (mg_dtype)x->dtype;
    j->x = (const char *)mg_tensor_data(x);
    for (int d = 0; d < 4; d++) j->xs[d] = x->stride[d];
    j->N = x->size[0], j->C = x->size[1], j->H = x->size[2], j->W = x->size[3];
    j->OH = OH, j->OW = OW;
    j->g = *g;
}

/* col <- im2col(x); col is allocated here (the caller frees it). */
static mg_status unfold(mg_ctx *ctx, conv_job *j, mg_scratch *col) {
    const int64_t rows = j->C * j->g.kh * j->g.kw * j->N, OHW = j->OH * j->OW;
    const int64_t size[2] = {rows / j->N, j->N * OHW};
    mg_status st = mg_scratch_new(ctx, col, j->dt, 2, size);
    if (st != MG_OK) return st;
    j->col = (char *)col->s.data;
    mg_parallel_for(ctx, rows, grain_for(OHW), im2col_range, j);
    return MG_OK;
}

/* ---- permutes between (N, O, S) and (O, N S), with the bias --------------------------------- */
typedef struct perm_job {
    mg_dtype dt;
    const char *src;
    char *dst;
    const char *bias; /* to_nos: added (may be NULL) */
    int64_t bias_stride;
    int64_t N, O, S;
    int to_nos;       /* 1: (O, N S) -> (N, O, S); 0: (N, O, S) -> (O, N S) */
} perm_job;

#define PERM_ROW(T)                                                                            \
    do {                                                                                       \
        const T *s = (const T *)p->src + (p->to_nos ? (o * p->N + n) * p->S : (n * p->O + o) * p->S); \
        T *d = (T *)p->dst + (p->to_nos ? (n * p->O + o) * p->S : (o * p->N + n) * p->S);      \
        if (p->bias) {                                                                         \
            const T bv = ((const T *)p->bias)[o * p->bias_stride];                             \
            for (int64_t k = 0; k < p->S; k++) d[k] = s[k] + bv;                               \
        } else {                                                                               \
            memcpy(d, s, sizeof(T) * (size_t)p->S);                                            \
        }                                                                                      \
    } while (0)

/* rows r = n O + o */
static void perm_range(void *arg, int64_t b, int64_t e) {
    const perm_job *p = (const perm_job *)arg;
    for (int64_t r = b; r < e; r++) {
        const int64_t n = r / p->O, o = r % p->O;
        if (p->dt == MG_FLOAT64) PERM_ROW(double);
        else PERM_ROW(float);
    }
}

static void permute(mg_ctx *ctx, perm_job *p) {
    mg_parallel_for(ctx, p->N * p->O, grain_for(p->S), perm_range, p);
}

/* ---- conv2d ----------------------------------------------------------------------------------- */
mg_status mg_conv2d(mg_ctx *ctx, mg_tensor *out, const mg_tensor *x, const mg_tensor *weight,
                    const mg_tensor *bias, const mg_conv2d_geom *g) {
    const mg_dtype dt = (mg_dtype)x->dtype;
    const int64_t N = x->size[0], O = out->size[1], OH = out->size[2], OW = out->size[3];
    if (out->numel == 0) return MG_OK;
    /* out has elements: O > 0, so K <= weight->numel <= 2^62 */
    const int64_t G = g->groups, Og = O / G, K = weight->size[1] * g->kh * g->kw, P = N * OH * OW;
    conv_job j;
    fill_job(&j, x, OH, OW, g);
    mg_scratch col, outp, wsc;
    outp.s.data = NULL;
    const mg_tensor *w;
    mg_status st = mg_conv_contiguous(ctx, weight, &wsc, &w);
    if (st != MG_OK) goto done_w;
    col.s.data = NULL;
    if (K > 0) {
        st = unfold(ctx, &j, &col);
        if (st != MG_OK) goto done;
    }
    const int64_t psize[2] = {O, P};
    st = mg_scratch_new(ctx, &outp, dt, 2, psize);
    if (st != MG_OK) goto done;
    const int64_t bsa = Og * K, bsb = K * P, bsc = Og * P;
    const mg_gemm_args ga = {
        .m = Og, .n = P, .k = K,
        .a = mg_tensor_data(w), .rsa = K, .csa = 1,
        .b = col.s.data, .rsb = P, .csb = 1,
        .c = outp.s.data, .rsc = P, .csc = 1,
        .batch_ndim = 1, .batch_size = &G, .batch_sa = &bsa, .batch_sb = &bsb, .batch_sc = &bsc,
    };
    st = mg_gemm(ctx, dt, &ga);
    if (st != MG_OK) goto done;
    perm_job p = {.dt = dt, .src = (const char *)outp.s.data, .dst = (char *)mg_tensor_data(out),
                  .bias = bias ? (const char *)mg_tensor_data(bias) : NULL,
                  .bias_stride = bias ? bias->stride[0] : 0, .N = N, .O = O, .S = OH * OW, .to_nos = 1};
    permute(ctx, &p);
done:
    if (outp.s.data) mg_scratch_free(ctx, &outp);
    if (col.s.data) mg_scratch_free(ctx, &col);
done_w:
    if (wsc.s.data) mg_scratch_free(ctx, &wsc);
    return st;
}

/* db[o] = sum over n, p of g[n, o, p], in double: four lanes (p mod 4) per run of S, added in a
 * fixed order (independent sums hide the adds' latency; the order depends on the sizes only) */
typedef struct bias_job {
    mg_dtype dt;
    const char *g;
    char *db;
    int64_t N, O, S;
} bias_job;
#define BIAS_RUN(T)                                                                            \
    do {                                                                                       \
        const T *p = (const T *)j->g + off;                                                    \
        double l0 = 0, l1 = 0, l2 = 0, l3 = 0;                                                 \
        int64_t k = 0;                                                                         \
        for (; k + 4 <= j->S; k += 4) l0 += p[k], l1 += p[k + 1], l2 += p[k + 2], l3 += p[k + 3]; \
        for (; k < j->S; k++) l0 += p[k];                                                      \
        s += (l0 + l1) + (l2 + l3);                                                            \
    } while (0)
static void bias_grad_range(void *arg, int64_t b, int64_t e) {
    const bias_job *j = (const bias_job *)arg;
    for (int64_t o = b; o < e; o++) {
        double s = 0;
        for (int64_t n = 0; n < j->N; n++) {
            const int64_t off = (n * j->O + o) * j->S;
            if (j->dt == MG_FLOAT64) BIAS_RUN(double);
            else BIAS_RUN(float);
        }
        if (j->dt == MG_FLOAT64) ((double *)j->db)[o] = s;
        else ((float *)j->db)[o] = (float)s;
    }
}

static mg_status conv_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin) {
    const mg_tensor *xin = a->inputs[0], *weight = a->inputs[1];
    const int spatial = weight->ndim - 2;
    mg_conv2d_geom g;
    mg_conv_geom_unpack(a->node->iarg, &g);
    g.kh = spatial == 1 ? 1 : weight->size[2];
    g.kw = weight->size[weight->ndim - 1];
    mg_view_buf vx, vg;
    const mg_tensor *x = mg_conv_view4(&vx, xin, spatial);
    const mg_tensor *gout4 = mg_conv_view4(&vg, a->gout, spatial);
    const mg_dtype dt = (mg_dtype)gin->dtype;
    const int64_t N = x->size[0], C = x->size[1], O = weight->size[0], OH = gout4->size[2], OW = gout4->size[3];
    mg_scratch gsc, gp, col, wsc;
    gsc.s.data = gp.s.data = col.s.data = wsc.s.data = NULL;
    if (gin->numel == 0) return MG_OK;
    if (gout4->numel == 0) return mg_fill(ctx, gin, 0, 0); /* O == 0 (or no output) */
    const int64_t G = g.groups, Og = O / G, K = weight->size[1] * g.kh * g.kw, P = N * OH * OW, S = OH * OW;
    const mg_tensor *gc;
    mg_status st = mg_conv_contiguous(ctx, gout4, &gsc, &gc);
    if (st != MG_OK) goto done;
    if (i == 2) {
        bias_job bj = {dt, (const char *)mg_tensor_data(gc), (char *)mg_tensor_data(gin), N, O, S};
        mg_parallel_for(ctx, O, grain_for(N * S), bias_grad_range, &bj);
        goto done;
    }
    if (P == 0 || K == 0) {
        st = mg_fill(ctx, gin, 0, 0);
        goto done;
    }
    const int64_t psize[2] = {O, P};
    st = mg_scratch_new(ctx, &gp, dt, 2, psize);
    if (st != MG_OK) goto done;
    perm_job p = {.dt = dt, .src = (const char *)mg_tensor_data(gc), .dst = (char *)gp.s.data,
                  .N = N, .O = O, .S = S, .to_nos = 0};
    permute(ctx, &p);
    conv_job j;
    fill_job(&j, x, OH, OW, &g);
    if (i == 1) { /* dW_g = gout_g col_g^T */
        st = unfold(ctx, &j, &col);
        if (st != MG_OK) goto done;
        const int64_t bsa = Og * P, bsb = K * P, bsc = Og * K;
        const mg_gemm_args ga = {
            .m = Og, .n = K, .k = P,
            .a = gp.s.data, .rsa = P, .csa = 1,
            .b = col.s.data, .rsb = 1, .csb = P,
            .c = mg_tensor_data(gin), .rsc = K, .csc = 1,
            .batch_ndim = 1, .batch_size = &G, .batch_sa = &bsa, .batch_sb = &bsb, .batch_sc = &bsc,
        };
        st = mg_gemm(ctx, dt, &ga);
        goto done;
    }
    /* dcol_g = W_g^T gout_g, folded back into dx */
    const mg_tensor *w;
    st = mg_conv_contiguous(ctx, weight, &wsc, &w);
    if (st != MG_OK) goto done;
    const int64_t csize[2] = {C * g.kh * g.kw, P};
    st = mg_scratch_new(ctx, &col, dt, 2, csize);
    if (st != MG_OK) goto done;
    const int64_t bsa = Og * K, bsb = Og * P, bsc = K * P;
    const mg_gemm_args ga = {
        .m = K, .n = P, .k = Og,
        .a = mg_tensor_data(w), .rsa = 1, .csa = K,
        .b = gp.s.data, .rsb = P, .csb = 1,
        .c = col.s.data, .rsc = P, .csc = 1,
        .batch_ndim = 1, .batch_size = &G, .batch_sa = &bsa, .batch_sb = &bsb, .batch_sc = &bsc,
    };
    st = mg_gemm(ctx, dt, &ga);
    if (st != MG_OK) goto done;
    j.col = (char *)col.s.data;
    j.dx = (char *)mg_tensor_data(gin);
    mg_parallel_for(ctx, N * C, grain_for(K * S), col2im_range, &j);
done:
    if (wsc.s.data) mg_scratch_free(ctx, &wsc);
    if (col.s.data) mg_scratch_free(ctx, &col);
    if (gp.s.data) mg_scratch_free(ctx, &gp);
    if (gsc.s.data) mg_scratch_free(ctx, &gsc);
    return st;
}

/* ---- pooling ---------------------------------------------------------------------------------- */
/* best, at <- v, i when v is larger or NaN (PyTorch's test) */
#define MAX_STEP(v, i)                                                                         \
    do {                                                                                       \
        const __typeof__(best) v_ = (v);                                                                   \
        const int u_ = (v_ > best) | (v_ != v_);                                               \
        best = u_ ? v_ : best;                                                                 \
        at = u_ ? (i) : at;                                                                    \
    } while (0)

/* Padding 0: every window lies inside the input (OH, OW are floored), no bounds checks. */
#define MAXPOOL_PLANE(T)                                                                       \
    do {                                                                                       \
        const T *xp = (const T *)j->x + n * j->xs[0] + c * j->xs[1];                           \
        T *op = (T *)j->out + q * OHW;                                                         \
        int64_t *ip = (int64_t *)j->idx + q * OHW;                                             \
        const int inside = g->ph == 0 && g->pw == 0;                                           \
        const int k22 = inside && g->kh == 2 && g->kw == 2 && g->dh == 1 && g->dw == 1 && j->xs[3] == 1; \
        if (k22) { /* the common 2x2 window: the first maximum wins (selects, no branches) */ \
            for (int64_t oh = 0; oh < j->OH; oh++) {                                           \
                const T *r0 = xp + oh * g->sh * j->xs[2], *r1 = r0 + j->xs[2];                 \
                T *orow = op + oh * j->OW;                                                     \
                int64_t *irow = ip + oh * j->OW;                                               \
                for (int64_t ow = 0; ow < j->OW; ow++) {                                       \
                    const int64_t w0 = ow * g->sw, at0 = oh * g->sh * j->W + w0;               \
                    T best = r0[w0];                                                           \
                    int64_t at = at0;                                                          \
                    MAX_STEP(r0[w0 + 1], at0 + 1);                                             \
                    MAX_STEP(r1[w0], at0 + j->W);                                              \
                    MAX_STEP(r1[w0 + 1], at0 + j->W + 1);                                      \
                    orow[ow] = best;                                                           \
                    irow[ow] = at;                                                             \
                }                                                                              \
            }                                                                                  \
            break;                                                                             \
        }                                                                                      \
        for (int64_t oh = 0; oh < j->OH; oh++)                                                 \
            for (int64_t ow = 0; ow < j->OW; ow++) {                                           \
                T best = (T)-INFINITY;                                                         \
                int64_t at = -1;                                                               \
                const int64_t h0 = oh * g->sh - g->ph, w0 = ow * g->sw - g->pw;                \
                if (inside) {                                                                  \
                    for (int64_t ki = 0; ki < g->kh; ki++) {                                   \
                        const int64_t ih = h0 + ki * g->dh;                                    \
                        const T *row = xp + ih * j->xs[2];                                     \
                        for (int64_t kj = 0; kj < g->kw; kj++) {                               \
                            const int64_t iw = w0 + kj * g->dw;                                \
                            const T v = row[iw * j->xs[3]];                                    \
                            if (at < 0 || v > best || isnan(v)) best = v, at = ih * j->W + iw; \
                        }                                                                      \
                    }                                                                          \
                } else {                                                                       \
                    for (int64_t ki = 0; ki < g->kh; ki++) {                                   \
                        const int64_t ih = h0 + ki * g->dh;                                    \
                        if (ih < 0 || ih >= j->H) continue;                                    \
                        for (int64_t kj = 0; kj < g->kw; kj++) {                               \
                            const int64_t iw = w0 + kj * g->dw;                                \
                            if (iw < 0 || iw >= j->W) continue;                                \
                            const T v = xp[ih * j->xs[2] + iw * j->xs[3]];                     \
                            if (at < 0 || v > best || isnan(v)) best = v, at = ih * j->W + iw; \
                        }                                                                      \
                    }                                                                          \
                }                                                                              \
                op[oh * j->OW + ow] = best;                                                    \
                ip[oh * j->OW + ow] = at;                                                      \
            }                                                                                  \
    } while (0)

static void maxpool_range(void *arg, int64_t b, int64_t e) {
    const conv_job *j = (const conv_job *)arg;
    const mg_conv2d_geom *g = &j->g;
    const int64_t OHW = j->OH * j->OW;
    for (int64_t q = b; q < e; q++) {
        const int64_t n = q / j->C, c = q % j->C;
        if (j->dt == MG_FLOAT64) MAXPOOL_PLANE(double);
        else MAXPOOL_PLANE(float);
    }
}

/* avg (adaptive = 0) or adaptive avg (1) pooling of one plane */
static inline void window(const conv_job *j, int adaptive, int64_t oh, int64_t ow, int64_t *h0, int64_t *h1,
                          int64_t *w0, int64_t *w1, double *div) {
    if (adaptive) {
        *h0 = oh * j->H / j->OH, *h1 = ((oh + 1) * j->H + j->OH - 1) / j->OH;
        *w0 = ow * j->W / j->OW, *w1 = ((ow + 1) * j->W + j->OW - 1) / j->OW;
        *div = (double)((*h1 - *h0) * (*w1 - *w0));
        return;
    }
    const mg_conv2d_geom *g = &j->g;
    int64_t hs = oh * g->sh - g->ph, ws = ow * g->sw - g->pw;
    int64_t he = hs + g->kh, we = ws + g->kw;
    if (he > j->H + g->ph) he = j->H + g->ph;
    if (we > j->W + g->pw) we = j->W + g->pw;
    *div = (double)((he - hs) * (we - ws)); /* padded zeros counted */
    *h0 = hs < 0 ? 0 : hs, *w0 = ws < 0 ? 0 : ws;
    *h1 = he > j->H ? j->H : he, *w1 = we > j->W ? j->W : we;
}

#define AVGPOOL_PLANE(T)                                                                       \
    do {                                                                                       \
        const T *xp = (const T *)j->x + n * j->xs[0] + c * j->xs[1];                           \
        T *op = (T *)j->out + q * OHW;                                                         \
        for (int64_t oh = 0; oh < j->OH; oh++)                                                 \
            for (int64_t ow = 0; ow < j->OW; ow++) {                                           \
                int64_t h0, h1, w0, w1;                                                        \
                double div, s = 0;                                                             \
                window(j, adaptive, oh, ow, &h0, &h1, &w0, &w1, &div);                         \
                for (int64_t ih = h0; ih < h1; ih++)                                           \
                    for (int64_t iw = w0; iw < w1; iw++) s += xp[ih * j->xs[2] + iw * j->xs[3]]; \
                op[oh * j->OW + ow] = (T)(s / div);                                            \
            }                                                                                  \
    } while (0)

static void avgpool_range_impl(const conv_job *j, int adaptive, int64_t b, int64_t e) {
    const int64_t OHW = j->OH * j->OW;
    for (int64_t q = b; q < e; q++) {
        const int64_t n = q / j->C, c = q % j->C;
        if (j->dt == MG_FLOAT64) AVGPOOL_PLANE(double);
        else AVGPOOL_PLANE(float);
    }
}
static void avgpool_range(void *arg, int64_t b, int64_t e) { avgpool_range_impl((const conv_job *)arg, 0, b, e); }
static void adaptive_range(void *arg, int64_t b, int64_t e) { avgpool_range_impl((const conv_job *)arg, 1, b, e); }

static void pool_job(conv_job *j, const mg_tensor *x, const mg_tensor *out, const mg_conv2d_geom *g) {
    mg_conv2d_geom none = {1, 1, 1, 1, 0, 0, 1, 1, 1};
    fill_job(j, x, out->size[2], out->size[3], g ? g : &none);
    j->out = (char *)mg_tensor_data(out);
}

mg_status mg_max_pool2d(mg_ctx *ctx, mg_tensor *out, mg_tensor *indices, const mg_tensor *x,
                        const mg_conv2d_geom *g) {
    conv_job j;
    pool_job(&j, x, out, g);
    j.idx = (const int64_t *)mg_tensor_data(indices);
    if (out->numel) mg_parallel_for(ctx, j.N * j.C, grain_for(j.OH * j.OW * g->kh * g->kw), maxpool_range, &j);
    return MG_OK;
}

mg_status mg_avg_pool2d(mg_ctx *ctx, mg_tensor *out, const mg_tensor *x, const mg_conv2d_geom *g) {
    conv_job j;
    pool_job(&j, x, out, g);
    if (out->numel) mg_parallel_for(ctx, j.N * j.C, grain_for(j.OH * j.OW * g->kh * g->kw), avgpool_range, &j);
    return MG_OK;
}

mg_status mg_adaptive_avg_pool2d(mg_ctx *ctx, mg_tensor *out, const mg_tensor *x) {
    conv_job j;
    pool_job(&j, x, out, NULL);
    if (out->numel) mg_parallel_for(ctx, j.N * j.C, grain_for(j.H * j.W + j.OH * j.OW), adaptive_range, &j);
    return MG_OK;
}

/* backward of the pools: each input plane q gets the gradients of its own output plane */
#define POOL_BACK_PLANE(T)                                                                     \
    do {                                                                                       \
        T *dp = (T *)j->dx + q * HW;                                                           \
        const T *gp = (const T *)j->gout + q * OHW;                                               \
        for (int64_t s = 0; s < HW; s++) dp[s] = 0;                                            \
        if (j->idx) {                                                                          \
            const int64_t *ip = j->idx + q * OHW;                                              \
            for (int64_t s = 0; s < OHW; s++)                                                  \
                if (ip[s] >= 0) dp[ip[s]] += gp[s];                                            \
        } else {                                                                               \
            for (int64_t oh = 0; oh < j->OH; oh++)                                             \
                for (int64_t ow = 0; ow < j->OW; ow++) {                                       \
                    int64_t h0, h1, w0, w1;                                                    \
                    double div;                                                                \
                    window(j, adaptive, oh, ow, &h0, &h1, &w0, &w1, &div);                     \
                    const T v = (T)(gp[oh * j->OW + ow] / div);                                \
                    for (int64_t ih = h0; ih < h1; ih++)                                       \
                        for (int64_t iw = w0; iw < w1; iw++) dp[ih * j->W + iw] += v;          \
                }                                                                              \
        }                                                                                      \
    } while (0)

static void pool_back_impl(const conv_job *j, int adaptive, int64_t b, int64_t e) {
    const int64_t OHW = j->OH * j->OW, HW = j->H * j->W;
    for (int64_t q = b; q < e; q++) {
        if (j->dt == MG_FLOAT64) POOL_BACK_PLANE(double);
        else POOL_BACK_PLANE(float);
    }
}
static void pool_back_range(void *arg, int64_t b, int64_t e) { pool_back_impl((const conv_job *)arg, 0, b, e); }
static void adaptive_back_range(void *arg, int64_t b, int64_t e) { pool_back_impl((const conv_job *)arg, 1, b, e); }

static mg_status pool_backward(mg_ctx *ctx, const mg_backward_args *a, mg_tensor *gin) {
    const mg_conv_op op = (mg_conv_op)a->node->op;
    mg_conv2d_geom g = {1, 1, 1, 1, 0, 0, 1, 1, 1};
    if (op != MG_CONV_ADAPTIVE_AVG) {
        mg_conv_geom_unpack(a->node->iarg, &g);
        g.kh = (int64_t)a->node->darg[0], g.kw = (int64_t)a->node->darg[1];
    }
    mg_view_buf vx, vg, vi, vgin;
    const mg_tensor *x = mg_conv_view4(&vx, a->inputs[0], 2);
    const mg_tensor *gout4 = mg_conv_view4(&vg, a->gout, 2);
    mg_scratch gsc;
    const mg_tensor *gc;
    mg_status st = mg_conv_contiguous(ctx, gout4, &gsc, &gc);
    if (st != MG_OK) goto done;
    conv_job j;
    fill_job(&j, x, gout4->size[2], gout4->size[3], &g);
    j.dx = (char *)mg_tensor_data(mg_conv_view4(&vgin, gin, 2));
    j.gout = (const char *)mg_tensor_data(gc);
    if (op == MG_CONV_MAX_POOL) j.idx = (const int64_t *)mg_tensor_data(mg_conv_view4(&vi, a->saved[0], 2));
    if (gin->numel)
        mg_parallel_for(ctx, j.N * j.C, grain_for(j.H * j.W + j.OH * j.OW * g.kh * g.kw),
                        op == MG_CONV_ADAPTIVE_AVG ? adaptive_back_range : pool_back_range, &j);
done:
    if (gsc.s.data) mg_scratch_free(ctx, &gsc);
    return st;
}

/* ---- the family's rule ------------------------------------------------------------------------ */
mg_status mg_conv_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin) {
    switch ((mg_conv_op)a->node->op) {
    case MG_CONV_CONV: return conv_backward(ctx, a, i, gin);
    case MG_CONV_MAX_POOL:
    case MG_CONV_AVG_POOL:
    case MG_CONV_ADAPTIVE_AVG: return pool_backward(ctx, a, gin);
    default: return mg_norm_backward(ctx, a, i, gin);
    }
}
