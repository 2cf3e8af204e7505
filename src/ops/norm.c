/*
 * norm.c: batch_norm, layer_norm and embedding, forward and backward (the MG_FAM_CONV rule hands
 * these ops to mg_norm_backward). Statistics and gradient sums accumulate in double, each channel
 * / row / column in one fixed order, split over threads by channel (batch norm), row (layer norm
 * forward and dx) or column (layer norm's weight and bias gradients, embedding's weight gradient).
 *
 * With xhat = (x - mean) invstd and gw = g weight (g when there is no weight), over the M
 * elements a statistic covers:
 *     training   dx = invstd (gw - mean(gw) - xhat mean(gw xhat))
 *     eval       dx = invstd gw                      (batch norm with the running statistics)
 *     dweight = sum(g xhat),  dbias = sum(g)
 */
#include <math.h>
#include <string.h>

#include "conv.h"
#include "grad.h"
#include "ops.h"

static inline double rd(mg_dtype dt, const void *p, int64_t i) {
    return dt == MG_FLOAT64 ? ((const double *)p)[i] : (double)((const float *)p)[i];
}
static inline void wr(mg_dtype dt, void *p, int64_t i, double v) {
    if (dt == MG_FLOAT64) ((double *)p)[i] = v;
    else ((float *)p)[i] = (float)v;
}
/* element i of a 1-d tensor (any stride), or `def` when t is NULL */
static inline double elem(const mg_tensor *t, int64_t i, double def) {
    return t ? rd((mg_dtype)t->dtype, mg_tensor_data(t), i * t->stride[0]) : def;
}

/* element k (row-major over t's shape, any strides) of t, or `def` when t is NULL */
static inline double elem_at(const mg_tensor *t, int64_t k, double def) {
    if (!t) return def;
    if (t->ndim == 1) return rd((mg_dtype)t->dtype, mg_tensor_data(t), k * t->stride[0]);
    if (mg_is_contiguous(t)) return rd((mg_dtype)t->dtype, mg_tensor_data(t), k);
    int64_t off = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        off += (k % t->size[d]) * t->stride[d];
        k /= t->size[d];
    }
    return rd((mg_dtype)t->dtype, mg_tensor_data(t), off);
}

static int64_t grain_for(int64_t work_per_index) {
    const int64_t g = 32768 / (work_per_index > 0 ? work_per_index : 1);
    return g > 0 ? g : 1;
}

/* ---- batch norm ------------------------------------------------------------------------------- */
typedef struct norm_job {
    mg_dtype dt;
    const void *x, *g;     /* contiguous */
    void *out;
    double *mean, *invstd;
    mg_tensor *rm, *rv;
    const mg_tensor *w, *b;
    int64_t N, C, S;       /* batch norm: (N, C, S); layer norm: (N rows, C = d) */
    int training;
    double momentum, eps;
    int which;             /* backward: 0 dx, 1 dweight, 2 dbias */
} norm_job;

/* Sums over channel c's runs (one per sample, S contiguous elements), in double, four lanes
 * (k mod 4) per run added in a fixed order: EXPR(k) is the term of element k of the run. */
#define BN_SUM(T, OUT, EXPR)                                                                   \
    do {                                                                                       \
        double acc_ = 0;                                                                       \
        for (int64_t n = 0; n < j->N; n++) {                                                   \
            const T *xp = (const T *)j->x + (n * j->C + c) * j->S;                             \
            const T *gp = j->g ? (const T *)j->g + (n * j->C + c) * j->S : NULL;               \
            double l0 = 0, l1 = 0, l2 = 0, l3 = 0;                                             \
            int64_t k = 0;                                                                     \
            for (; k + 4 <= j->S; k += 4) {                                                    \
                l0 += EXPR(k);                                                                 \
                l1 += EXPR(k + 1);                                                             \
                l2 += EXPR(k + 2);                                                             \
                l3 += EXPR(k + 3);                                                             \
            }                                                                                  \
            for (; k < j->S; k++) l0 += EXPR(k);                                               \
            acc_ += (l0 + l1) + (l2 + l3);                                                     \
            (void)xp, (void)gp;                                                                \
        }                                                                                      \
        OUT = acc_;                                                                            \
    } while (0)
#define X_(k) ((double)xp[k])
#define DEV2_(k) (((double)xp[k] - mean) * ((double)xp[k] - mean))
#define G_(k) ((double)gp[k])
#define GX_(k) ((double)gp[k] * ((double)xp[k] - mean))

/* out = x a + b0 over channel c (a, b0 fold the statistics, weight and bias) */
#define BN_APPLY(T)                                                                            \
    do {                                                                                       \
        for (int64_t n = 0; n < j->N; n++) {                                                   \
            const T *xp = (const T *)j->x + (n * j->C + c) * j->S;                             \
            T *op = (T *)j->out + (n * j->C + c) * j->S;                                       \
            for (int64_t k = 0; k < j->S; k++) op[k] = (T)(((double)xp[k] - mean) * a + b0);   \
        }                                                                                      \
    } while (0)

static void bn_forward_range(void *arg, int64_t b, int64_t e) {
    const norm_job *j = (const norm_job *)arg;
    const int64_t M = j->N * j->S;
    const int f64 = j->dt == MG_FLOAT64;
    for (int64_t c = b; c < e; c++) {
        double mean, invstd;
        if (j->training) {
            double s, ss;
            if (f64) BN_SUM(double, s, X_);
            else BN_SUM(float, s, X_);
            mean = s / (double)M;
            if (f64) BN_SUM(double, ss, DEV2_);
            else BN_SUM(float, ss, DEV2_);
            const double var = ss / (double)M;
            invstd = 1 / sqrt(var + j->eps);
            if (j->rm) {
                const int64_t at = c * j->rm->stride[0];
                wr(j->dt, mg_tensor_data(j->rm), at,
                   (1 - j->momentum) * rd(j->dt, mg_tensor_data(j->rm), at) + j->momentum * mean);
            }
            if (j->rv) {
                const int64_t at = c * j->rv->stride[0];
                const double unbiased = M > 1 ? ss / (double)(M - 1) : NAN;
                wr(j->dt, mg_tensor_data(j->rv), at,
                   (1 - j->momentum) * rd(j->dt, mg_tensor_data(j->rv), at) + j->momentum * unbiased);
            }
        } else {
            mean = elem(j->rm, c, 0);
            invstd = 1 / sqrt(elem(j->rv, c, 1) + j->eps);
        }
        j->mean[c] = mean, j->invstd[c] = invstd;
        const double a = invstd * elem(j->w, c, 1), b0 = elem(j->b, c, 0);
        if (f64) BN_APPLY(double);
        else BN_APPLY(float);
    }
}

mg_status mg_batch_norm(mg_ctx *ctx, mg_tensor *out, mg_tensor *mean, mg_tensor *invstd, const mg_tensor *x,
                        mg_tensor *running_mean, mg_tensor *running_var, const mg_tensor *weight,
                        const mg_tensor *bias, int training, double momentum, double eps) {
    mg_scratch sc;
    const mg_tensor *xc;
    mg_status st = mg_conv_contiguous(ctx, x, &sc, &xc);
    if (st != MG_OK) return st;
    norm_job j = {.dt = (mg_dtype)x->dtype, .x = mg_tensor_data(xc), .out = mg_tensor_data(out),
                  .mean = (double *)mg_tensor_data(mean), .invstd = (double *)mg_tensor_data(invstd),
                  .rm = running_mean, .rv = running_var, .w = weight, .b = bias,
                  .N = x->size[0], .C = x->size[1], .S = x->size[2], .training = training,
                  .momentum = momentum, .eps = eps};
    mg_parallel_for(ctx, j.C, grain_for(2 * j.N * j.S), bn_forward_range, &j);
    if (sc.s.data) mg_scratch_free(ctx, &sc);
    return MG_OK;
}

/* dx = k1 g + k2 (x - mean) + k3 over channel c */
#define BN_DX(T)                                                                               \
    do {                                                                                       \
        for (int64_t n = 0; n < j->N; n++) {                                                   \
            const int64_t off = (n * j->C + c) * j->S;                                         \
            const T *xp = (const T *)j->x + off, *gp = (const T *)j->g + off;                  \
            T *op = (T *)j->out + off;                                                         \
            for (int64_t k = 0; k < j->S; k++)                                                 \
                op[k] = (T)(k1 * (double)gp[k] + k2 * ((double)xp[k] - mean) + k3);            \
        }                                                                                      \
    } while (0)

static void bn_backward_range(void *arg, int64_t b, int64_t e) {
    const norm_job *j = (const norm_job *)arg;
    const int64_t M = j->N * j->S;
    const int f64 = j->dt == MG_FLOAT64;
    for (int64_t c = b; c < e; c++) {
        const double mean = j->mean[c], invstd = j->invstd[c], w = elem(j->w, c, 1);
        double sg = 0, sgx = 0; /* sum(g), sum(g (x - mean)) */
        if (j->which != 1 && (j->which == 2 || j->training)) {
            if (f64) BN_SUM(double, sg, G_);
            else BN_SUM(float, sg, G_);
        }
        if (j->which == 1 || (j->which == 0 && j->training)) {
            if (f64) BN_SUM(double, sgx, GX_);
            else BN_SUM(float, sgx, GX_);
        }
        if (j->which == 1) { wr(j->dt, j->out, c, sgx * invstd); continue; } /* sum(g xhat) */
        if (j->which == 2) { wr(j->dt, j->out, c, sg); continue; }
        /* training: dx = invstd w (g - sg / M - xhat sum(g xhat) / M); eval: invstd w g */
        const double k1 = invstd * w;
        const double k2 = j->training ? -k1 * invstd * invstd * sgx / (double)M : 0;
        const double k3 = j->training ? -k1 * sg / (double)M : 0;
        if (f64) BN_DX(double);
        else BN_DX(float);
    }
}

/* ---- layer norm ------------------------------------------------------------------------------- */
static void ln_forward_range(void *arg, int64_t b, int64_t e) {
    const norm_job *j = (const norm_job *)arg;
    const int64_t D = j->C;
    for (int64_t r = b; r < e; r++) {
        double s = 0, ss = 0;
        for (int64_t k = 0; k < D; k++) s += rd(j->dt, j->x, r * D + k);
        const double mean = s / (double)D;
        for (int64_t k = 0; k < D; k++) {
            const double d = rd(j->dt, j->x, r * D + k) - mean;
            ss += d * d;
        }
        const double invstd = 1 / sqrt(ss / (double)D + j->eps);
        j->mean[r] = mean, j->invstd[r] = invstd;
        for (int64_t k = 0; k < D; k++)
            wr(j->dt, j->out, r * D + k,
               (rd(j->dt, j->x, r * D + k) - mean) * invstd * elem_at(j->w, k, 1) + elem_at(j->b, k, 0));
    }
}

mg_status mg_layer_norm(mg_ctx *ctx, mg_tensor *out, mg_tensor *mean, mg_tensor *invstd, const mg_tensor *x,
                        int64_t d, const mg_tensor *weight, const mg_tensor *bias, double eps) {
    mg_scratch sc;
    const mg_tensor *xc;
    mg_status st = mg_conv_contiguous(ctx, x, &sc, &xc);
    if (st != MG_OK) return st;
    norm_job j = {.dt = (mg_dtype)x->dtype, .x = mg_tensor_data(xc), .out = mg_tensor_data(out),
                  .mean = (double *)mg_tensor_data(mean), .invstd = (double *)mg_tensor_data(invstd),
                  .w = weight, .b = bias, .N = d ? x->numel / d : 0, .C = d, .eps = eps};
    mg_parallel_for(ctx, j.N, grain_for(3 * d), ln_forward_range, &j);
    if (sc.s.data) mg_scratch_free(ctx, &sc);
    return MG_OK;
}

/* dx by rows */
static void ln_dx_range(void *arg, int64_t b, int64_t e) {
    const norm_job *j = (const norm_job *)arg;
    const int64_t D = j->C;
    for (int64_t r = b; r < e; r++) {
        const double mean = j->mean[r], invstd = j->invstd[r];
        double sg = 0, sgx = 0;
        for (int64_t k = 0; k < D; k++) {
            const double gw = rd(j->dt, j->g, r * D + k) * elem_at(j->w, k, 1);
            sg += gw;
            sgx += gw * (rd(j->dt, j->x, r * D + k) - mean) * invstd;
        }
        sg /= (double)D, sgx /= (double)D;
        for (int64_t k = 0; k < D; k++) {
            const double gw = rd(j->dt, j->g, r * D + k) * elem_at(j->w, k, 1);
            const double xh = (rd(j->dt, j->x, r * D + k) - mean) * invstd;
            wr(j->dt, j->out, r * D + k, invstd * (gw - sg - xh * sgx));
        }
    }
}
/* dweight / dbias by columns */
static void ln_dwb_range(void *arg, int64_t b, int64_t e) {
    const norm_job *j = (const norm_job *)arg;
    const int64_t D = j->C;
    for (int64_t k = b; k < e; k++) {
        double s = 0;
        for (int64_t r = 0; r < j->N; r++) {
            const double g = rd(j->dt, j->g, r * D + k);
            s += j->which == 1 ? g * (rd(j->dt, j->x, r * D + k) - j->mean[r]) * j->invstd[r] : g;
        }
        wr(j->dt, j->out, k, s);
    }
}

/* ---- embedding -------------------------------------------------------------------------------- */
mg_status mg_embedding(mg_ctx *ctx, mg_tensor *out, const mg_tensor *idx, const mg_tensor *weight) {
    mg_scratch sc;
    const mg_tensor *ic;
    mg_status st = mg_conv_contiguous(ctx, idx, &sc, &ic);
    if (st != MG_OK) return st;
    const int64_t *ip = (const int64_t *)mg_tensor_data(ic), V = weight->size[0], D = weight->size[1];
    const mg_dtype dt = (mg_dtype)weight->dtype;
    const char *w = (const char *)mg_tensor_data(weight);
    char *o = (char *)mg_tensor_data(out);
    const size_t es = mg_dtype_size(dt);
    for (int64_t i = 0; i < idx->numel; i++) {
        if (ip[i] < 1 || ip[i] > V) {
            st = mg_fail(ctx, MG_EINDEX, 1, ip[i] == 0 ? "index 0 is out of range for %lld embeddings (indices count from 1)"
                                                       : "index %lld is out of range for %lld embeddings",
                         ip[i] == 0 ? (long long)V : (long long)ip[i], (long long)V);
            break;
        }
        const char *row = w + (size_t)((ip[i] - 1) * weight->stride[0]) * es;
        if (weight->stride[1] == 1) memcpy(o + (size_t)(i * D) * es, row, (size_t)D * es);
        else
            for (int64_t k = 0; k < D; k++)
                memcpy(o + (size_t)(i * D + k) * es, row + (size_t)(k * weight->stride[1]) * es, es);
    }
    if (sc.s.data) mg_scratch_free(ctx, &sc);
    return st;
}

typedef struct emb_job {
    mg_dtype dt;
    const int64_t *idx;
    int64_t n, D, pad; /* pad: the padding row (1-based), which gets no gradient; 0 none */
    const void *g;
    void *gw;
} emb_job;
/* columns k of the weight's gradient: rows accumulate in the order of the indices (but the padding
 * row's, which stays 0, as PyTorch's padding_idx) */
static void emb_back_range(void *arg, int64_t b, int64_t e) {
    const emb_job *j = (const emb_job *)arg;
    for (int64_t k = b; k < e; k++)
        for (int64_t i = 0; i < j->n; i++) {
            if (j->idx[i] == j->pad) continue;
            const int64_t at = (j->idx[i] - 1) * j->D + k;
            wr(j->dt, j->gw, at, rd(j->dt, j->gw, at) + rd(j->dt, j->g, i * j->D + k));
        }
}

/* ---- the rule --------------------------------------------------------------------------------- */
mg_status mg_norm_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin) {
    const mg_node *node = a->node;
    const mg_conv_op op = (mg_conv_op)node->op;
    mg_scratch gsc, xsc;
    gsc.s.data = xsc.s.data = NULL;
    const mg_tensor *gc, *xc;
    mg_status st = mg_conv_contiguous(ctx, a->gout, &gsc, &gc);
    if (st != MG_OK) goto done;
    if (op == MG_CONV_EMBEDDING) { /* inputs: weight, idx */
        st = mg_conv_contiguous(ctx, a->inputs[1], &xsc, &xc);
        if (st != MG_OK) goto done;
        st = mg_fill(ctx, gin, 0, 0);
        if (st != MG_OK) goto done;
        emb_job j = {(mg_dtype)gin->dtype, (const int64_t *)mg_tensor_data(xc), xc->numel, gin->size[1],
                     node->iarg[0], mg_tensor_data(gc), mg_tensor_data(gin)};
        mg_parallel_for(ctx, j.D, grain_for(j.n), emb_back_range, &j);
        goto done;
    }
    /* batch / layer norm: inputs x, [weight], [bias]; iarg[1], iarg[2]: weight, bias given */
    st = mg_conv_contiguous(ctx, a->inputs[0], &xsc, &xc);
    if (st != MG_OK) goto done;
    const int has_w = (int)node->iarg[1];
    int which = i == 0 ? 0 : (i == 1 && has_w) ? 1 : 2;
    const mg_tensor *x = a->inputs[0];
    norm_job j = {.dt = (mg_dtype)gin->dtype, .x = mg_tensor_data(xc), .g = mg_tensor_data(gc),
                  .out = mg_tensor_data(gin), .mean = (double *)mg_tensor_data(a->saved[0]),
                  .invstd = (double *)mg_tensor_data(a->saved[1]), .w = has_w ? a->inputs[1] : NULL,
                  .which = which};
    if (op == MG_CONV_BATCH_NORM) {
        j.N = x->size[0], j.C = x->size[1], j.S = (j.N * j.C) != 0 ? x->numel / (j.N * j.C) : 1;
        j.training = (int)node->iarg[0];
        mg_parallel_for(ctx, j.C, grain_for(2 * j.N * j.S), bn_backward_range, &j);
    } else {
        j.C = node->iarg[0], j.N = j.C ? x->numel / j.C : 0;
        if (which == 0) mg_parallel_for(ctx, j.N, grain_for(4 * j.C), ln_dx_range, &j);
        else mg_parallel_for(ctx, j.C, grain_for(j.N), ln_dwb_range, &j);
    }
done:
    if (xsc.s.data) mg_scratch_free(ctx, &xsc);
    if (gsc.s.data) mg_scratch_free(ctx, &gsc);
    return st;
}
