/*
 * functional.c: the fused functional kernels of mg.F and their backward rules, side by side.
 *
 * Fused means one pass over the data where composing tensor ops would take several and allocate
 * temporaries: mse_loss is sum((x - y)^2) in one loop, its backward 2 (x - y) g / n in one loop;
 * cross_entropy is log_softmax + nll per row (its backward softmax - onehot, from the saved
 * log-sum-exp); the book's grad_fn is both means of its hand-derived gradient in one loop.
 *
 * Layout: a kernel reads its inputs as contiguous arrays (`flat`: the input itself, or a broadcast
 * and converted copy in scratch) and writes its contiguous output; only the innermost loops are
 * typed, one DEFINE_ line per dtype (float32, float64) and a two-entry table per kernel. Values
 * are computed and summed in double and stored in the output's dtype.
 *
 * To add an op: a line in MG_FUNCTIONAL_OPS (functional.h), its kernel and entry point here, its case in
 * mg_functional_backward (with the math in a comment), its binding in src/bind/functional.c.
 */
#include <math.h>
#include <string.h>

#include "../core/cpu.h"
#include "gemm.h" /* MG_GEMM_KC */
#include "grad.h"
#include "linalg.h"
#include "reduce.h" /* mg_sum_columns */
#include "functional.h"
#include "vmath.h"
#include "ops.h"
#include "scalar.h"

#define MG_NAME_FUNCTIONAL(e, name) name,
static const char *const names[MG_NFUNCTIONAL] = {MG_FUNCTIONAL_OPS(MG_NAME_FUNCTIONAL)};
const char *mg_functional_name(mg_functional_op op) { return names[op]; }

/* ================================================================ helpers */

static bool has_shape(const mg_tensor *t, int ndim, const int64_t *size) {
    return t->ndim == ndim && (ndim == 0 || memcmp(t->size, size, sizeof(int64_t) * ndim) == 0);
}

/* t as a contiguous tensor of dtype dt and shape (ndim, size): t itself when it is one, else a
 * broadcast and converted copy in sc (sc->s.data != NULL then: release it with drop). */
static mg_status flat(mg_ctx *ctx, const mg_tensor *t, mg_dtype dt, int ndim, const int64_t *size,
                      mg_scratch *sc, const mg_tensor **out) {
    sc->s.data = NULL;
    *out = t;
    if (t->dtype == dt && has_shape(t, ndim, size) && mg_is_contiguous(t)) return MG_OK;
    mg_status st = mg_scratch_new(ctx, sc, dt, ndim, size);
    if (st == MG_OK) st = mg_copy(ctx, &sc->t, t);
    *out = &sc->t;
    return st;
}
static mg_status flat_as(mg_ctx *ctx, const mg_tensor *t, mg_dtype dt, mg_scratch *sc,
                         const mg_tensor **out) {
    return flat(ctx, t, dt, t->ndim, t->size, sc, out);
}

static void drop(mg_ctx *ctx, mg_scratch *sc) {
    if (sc->s.data) mg_scratch_free(ctx, sc);
}

/* Where a rule writes a gradient of shape (ndim, size) and dtype dt: gin itself when it has them
 * (gin is contiguous), else scratch that grad_done folds into gin (mg_sum_to: broadcast dims are
 * summed, the dtype converted). */
static mg_status grad_dest(mg_ctx *ctx, mg_tensor *gin, mg_dtype dt, int ndim, const int64_t *size,
                           mg_scratch *sc, mg_tensor **dest) {
    sc->s.data = NULL;
    *dest = gin;
    if (gin->dtype == dt && has_shape(gin, ndim, size)) return MG_OK;
    mg_status st = mg_scratch_new(ctx, sc, dt, ndim, size);
    *dest = &sc->t;
    return st;
}
static mg_status grad_done(mg_ctx *ctx, mg_tensor *gin, mg_scratch *sc, mg_status st) {
    if (sc->s.data) {
        if (st == MG_OK) st = mg_sum_to(ctx, gin, &sc->t);
        mg_scratch_free(ctx, sc);
    }
    return st;
}

/* The value of a one-element tensor of any dtype. */
static double scalar_of(const mg_tensor *t) {
    const char *p = (const char *)mg_tensor_data(t);
    switch (t->dtype) {
    case MG_FLOAT32: return *(const float *)p;
    case MG_FLOAT64: return *(const double *)p;
    case MG_INT64: return (double)*(const int64_t *)p;
    default: return *(const bool *)p;
    }
}

/* Writes v into every element of a contiguous float tensor (one element, for dw and db). */
static void store_scalar(mg_tensor *t, double v) {
    void *p = mg_tensor_data(t);
    for (int64_t i = 0; i < t->numel; i++) {
        if (t->dtype == MG_FLOAT32) ((float *)p)[i] = (float)v;
        else ((double *)p)[i] = v;
    }
}

static mg_status check_float(mg_ctx *ctx, const mg_tensor *out, const char *op) {
    if (out->dtype == MG_FLOAT32 || out->dtype == MG_FLOAT64) return MG_OK;
    return mg_fail(ctx, MG_EDTYPE, 1, "'%s' computes in float32 or float64, not %s", op,
                   mg_dtype_name((mg_dtype)out->dtype));
}

/* The scale of element k's gradient: g[k] unreduced, g / n for a mean, g for a sum. */
static inline double reduced_grad(mg_reduction red, const double g0, int64_t n) {
    return red == MG_REDUCTION_MEAN ? g0 / (double)n : g0;
}

static inline double sigmoid(double x) {
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    const double e = exp(x);
    return e / (1.0 + e);
}

/* ================================================================ the book's functions */

/* model: y = w u + b, in the element type (as w * t_u + b would be). */
#define DEFINE_MODEL(NAME, T)                                                              \
    static void NAME(void *out, const void *u, int64_t n, double w, double b) {            \
        T *o = (T *)out;                                                                   \
        const T *x = (const T *)u, wv = (T)w, bv = (T)b;                                   \
        for (int64_t i = 0; i < n; i++) o[i] = wv * x[i] + bv;                             \
    }
DEFINE_MODEL(model_f32, float)
DEFINE_MODEL(model_f64, double)
typedef void (*model_fn)(void *, const void *, int64_t, double, double);
static const model_fn model_kernels[2] = {model_f32, model_f64};

mg_status mg_model(mg_ctx *ctx, mg_tensor *out, const mg_tensor *u, const mg_tensor *w,
                   const mg_tensor *b) {
    mg_status st = check_float(ctx, out, "model");
    if (st != MG_OK) return st;
    mg_scratch su;
    const mg_tensor *cu;
    st = flat(ctx, u, (mg_dtype)out->dtype, out->ndim, out->size, &su, &cu);
    if (st == MG_OK)
        model_kernels[out->dtype](mg_tensor_data(out), mg_tensor_data(cu), out->numel, scalar_of(w),
                                  scalar_of(b));
    drop(ctx, &su);
    return st;
}

/* dloss_fn: 2 (p - c) */
#define DEFINE_DLOSS(NAME, T)                                                              \
    static void NAME(void *out, const void *p, const void *c, int64_t n) {                 \
        T *o = (T *)out;                                                                   \
        const T *x = (const T *)p, *y = (const T *)c;                                      \
        for (int64_t i = 0; i < n; i++) o[i] = 2 * (x[i] - y[i]);                          \
    }
DEFINE_DLOSS(dloss_f32, float)
DEFINE_DLOSS(dloss_f64, double)
typedef void (*dloss_fn)(void *, const void *, const void *, int64_t);
static const dloss_fn dloss_kernels[2] = {dloss_f32, dloss_f64};

mg_status mg_dloss(mg_ctx *ctx, mg_tensor *out, const mg_tensor *p, const mg_tensor *c) {
    mg_status st = check_float(ctx, out, "dloss_fn");
    if (st != MG_OK) return st;
    const mg_dtype dt = (mg_dtype)out->dtype;
    mg_scratch sp, sc;
    const mg_tensor *cp, *cc;
    sc.s.data = NULL;
    st = flat(ctx, p, dt, out->ndim, out->size, &sp, &cp);
    if (st == MG_OK) st = flat(ctx, c, dt, out->ndim, out->size, &sc, &cc);
    if (st == MG_OK) dloss_kernels[dt](mg_tensor_data(out), mg_tensor_data(cp), mg_tensor_data(cc), out->numel);
    drop(ctx, &sc);
    drop(ctx, &sp);
    return st;
}

/* grad_fn: with d = 2 (p - c) (dloss_fn), dmodel_dw = u and dmodel_db = 1:
 *   {mean(d u), mean(d)}, both sums in one pass. */
#define DEFINE_GRAD_FN(NAME, T)                                                            \
    static void NAME(void *out, const void *u, const void *c, const void *p, int64_t n) {  \
        const T *x = (const T *)u, *y = (const T *)c, *q = (const T *)p;                   \
        double sw = 0, sb = 0;                                                             \
        for (int64_t i = 0; i < n; i++) {                                                  \
            const double d = 2.0 * ((double)q[i] - (double)y[i]);                          \
            sw += d * (double)x[i];                                                        \
            sb += d;                                                                       \
        }                                                                                  \
        ((T *)out)[0] = (T)(sw / (double)n);                                               \
        ((T *)out)[1] = (T)(sb / (double)n);                                               \
    }
DEFINE_GRAD_FN(grad_fn_f32, float)
DEFINE_GRAD_FN(grad_fn_f64, double)
typedef void (*grad_fn_fn)(void *, const void *, const void *, const void *, int64_t);
static const grad_fn_fn grad_fn_kernels[2] = {grad_fn_f32, grad_fn_f64};

mg_status mg_grad_fn(mg_ctx *ctx, mg_tensor *out, const mg_tensor *u, const mg_tensor *c,
                     const mg_tensor *p) {
    mg_status st = check_float(ctx, out, "grad_fn");
    if (st != MG_OK) return st;
    const mg_dtype dt = (mg_dtype)out->dtype;
    mg_scratch su, sc, sp;
    const mg_tensor *cu, *cc, *cp;
    sc.s.data = sp.s.data = NULL;
    st = flat_as(ctx, u, dt, &su, &cu);
    if (st == MG_OK) st = flat_as(ctx, c, dt, &sc, &cc);
    if (st == MG_OK) st = flat_as(ctx, p, dt, &sp, &cp);
    if (st == MG_OK)
        grad_fn_kernels[dt](mg_tensor_data(out), mg_tensor_data(cu), mg_tensor_data(cc),
                            mg_tensor_data(cp), p->numel);
    drop(ctx, &sp);
    drop(ctx, &sc);
    drop(ctx, &su);
    return st;
}

/* model's backward: du = g w, dw = sum(g u), db = sum(g) */
#define DEFINE_SCALE(NAME, T)                                                              \
    static void NAME(void *dst, const void *g, int64_t n, double w) {                      \
        T *o = (T *)dst;                                                                   \
        const T *x = (const T *)g, wv = (T)w;                                              \
        for (int64_t i = 0; i < n; i++) o[i] = x[i] * wv;                                  \
    }
DEFINE_SCALE(scale_f32, float)
DEFINE_SCALE(scale_f64, double)
typedef void (*scale_fn)(void *, const void *, int64_t, double);
static const scale_fn scale_kernels[2] = {scale_f32, scale_f64};

/* sum(g u), or sum(g) when u is NULL */
#define DEFINE_DOT(NAME, T)                                                                \
    static double NAME(const void *g, const void *u, int64_t n) {                          \
        const T *x = (const T *)g, *y = (const T *)u;                                      \
        double s = 0;                                                                      \
        if (y) for (int64_t i = 0; i < n; i++) s += (double)x[i] * (double)y[i];           \
        else for (int64_t i = 0; i < n; i++) s += (double)x[i];                            \
        return s;                                                                          \
    }
DEFINE_DOT(dot_f32, float)
DEFINE_DOT(dot_f64, double)
typedef double (*dot_fn)(const void *, const void *, int64_t);
static const dot_fn dot_kernels[2] = {dot_f32, dot_f64};

static mg_status model_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin) {
    const mg_tensor *out = a->out;
    const mg_dtype dt = (mg_dtype)out->dtype;
    mg_scratch sg, su, sd;
    const mg_tensor *g, *u = NULL;
    su.s.data = sd.s.data = NULL;
    mg_status st = flat(ctx, a->gout, dt, out->ndim, out->size, &sg, &g);
    if (st == MG_OK && i == 0) {
        mg_tensor *dest;
        st = grad_dest(ctx, gin, dt, out->ndim, out->size, &sd, &dest);
        if (st == MG_OK)
            scale_kernels[dt](mg_tensor_data(dest), mg_tensor_data(g), g->numel, scalar_of(a->inputs[1]));
        st = grad_done(ctx, gin, &sd, st);
    } else if (st == MG_OK) {
        if (i == 1) st = flat(ctx, a->inputs[0], dt, out->ndim, out->size, &su, &u);
        if (st == MG_OK)
            store_scalar(gin, dot_kernels[dt](mg_tensor_data(g), u ? mg_tensor_data(u) : NULL, g->numel));
    }
    drop(ctx, &su);
    drop(ctx, &sg);
    return st;
}

/* ================================================================ pointwise losses */

/* One element of each loss, and its derivative with respect to x (wrt 0) or y (wrt 1):
 *   mse (x - y)^2:                       2 (x - y),        -2 (x - y)
 *   l1 |x - y|:                          sign(x - y),      -sign(x - y)    (0 at x = y, as PyTorch)
 *   bce max(x,0) - x y + log(1 + e^-|x|): sigmoid(x) - y,  -x
 * The bce form never exponentiates a positive number, so logits of +-1000 stay finite. */
static inline double pointwise(mg_functional_op op, double x, double y) {
    switch (op) {
    case MG_F_MSE: return (x - y) * (x - y);
    case MG_F_L1: return fabs(x - y);
    default: return fmax(x, 0.0) - x * y + log1p(exp(-fabs(x)));
    }
}
static inline double dpointwise(mg_functional_op op, int wrt, double x, double y) {
    switch (op) {
    case MG_F_MSE: return wrt ? -2.0 * (x - y) : 2.0 * (x - y);
    case MG_F_L1: {
        const double s = (double)((x > y) - (x < y));
        return wrt ? -s : s;
    }
    default: return wrt ? -x : sigmoid(x) - y;
    }
}

#define DEFINE_POINTWISE(NAME, T)                                                          \
    static void NAME(mg_functional_op op, void *out, const void *xp, const void *yp, int64_t n,  \
                     mg_reduction red) {                                                   \
        const T *x = (const T *)xp, *y = (const T *)yp;                                    \
        T *o = (T *)out;                                                                   \
        if (red == MG_REDUCTION_NONE) {                                                    \
            for (int64_t i = 0; i < n; i++) o[i] = (T)pointwise(op, x[i], y[i]);           \
            return;                                                                        \
        }                                                                                  \
        double s = 0; /* each term and the sum rounded to T: float32 overflows as PyTorch's */ \
        for (int64_t i = 0; i < n; i++) s += (double)(T)pointwise(op, x[i], y[i]);         \
        o[0] = red == MG_REDUCTION_MEAN ? (T)((T)s / (T)n) : (T)s;                         \
    }
DEFINE_POINTWISE(pointwise_f32, float)
DEFINE_POINTWISE(pointwise_f64, double)
typedef void (*pointwise_fn)(mg_functional_op, void *, const void *, const void *, int64_t, mg_reduction);
static const pointwise_fn pointwise_kernels[2] = {pointwise_f32, pointwise_f64};

/* mse and l1 reduced (mean or sum), per ISA level: each term as above (in double, rounded to T),
 * summed in double over 8 interleaved partials added in a fixed order, then the rest, as sum_f32
 * sums (the length alone decides the order), for 64 terms or more; fewer go one after the other,
 * as the loop above. One chain through every term was ~1 ns an term: mse_loss of 256k floats
 * took 210 us, PyTorch 55. */
#define MSE_TERM(x, y) (((double)(x) - (double)(y)) * ((double)(x) - (double)(y)))
#define L1_TERM(x, y) fabs((double)(x) - (double)(y))
#define REDUCED_LOSS(ISA, NAME, T, TERM)                                                       \
    static double MG_ISA_FN(NAME, ISA)(const T *restrict x, const T *restrict y, int64_t n) { \
        double s = 0;                                                                         \
        int64_t i = 0;                                                                        \
        if (n >= 64) {                                                                        \
            double part[8] = {0};                                                             \
            for (; i + 8 <= n; i += 8)                                                        \
                for (int k = 0; k < 8; k++) part[k] += (double)(T)TERM(x[i + k], y[i + k]);   \
            for (int k = 0; k < 8; k++) s += part[k];                                         \
        }                                                                                     \
        for (; i < n; i++) s += (double)(T)TERM(x[i], y[i]);                                  \
        return s;                                                                             \
    }
MG_ISA_STAMP(REDUCED_LOSS, mse_sum_f32, float, MSE_TERM)
MG_ISA_STAMP(REDUCED_LOSS, mse_sum_f64, double, MSE_TERM)
MG_ISA_STAMP(REDUCED_LOSS, l1_sum_f32, float, L1_TERM)
MG_ISA_STAMP(REDUCED_LOSS, l1_sum_f64, double, L1_TERM)

/* binary_cross_entropy_with_logits of float32, per ISA level, in float32 with vmath.h's exp and
 * log (as PyTorch's float kernels; the double form above took libm's exp and log1p an element:
 * 256k terms 5.2 ms, PyTorch 0.85): max(x, 0) - x y written without cancellation on either side,
 * (1 - y) x for x >= 0 and -(x y) below, plus log(1 + e^-|x|); summed as mse's. Its gradient
 * sigmoid(x) - y with vmath.h's sigmoid. A NaN logit gives NaN. */
static inline float bce_term_f32(float x, float y) {
    return mg_selectf(x >= 0, (1.0f - y) * x, -(x * y)) + mg_logf(1.0f + mg_expf(-fabsf(x)));
}
#define BCE_TERM(x, y) bce_term_f32(x, y)
MG_ISA_STAMP(REDUCED_LOSS, bce_sum_f32, float, BCE_TERM)
#define BCE_TERMS(ISA, NAME)                                                                   \
    static void MG_ISA_FN(NAME, ISA)(float *restrict o, const float *restrict x, const float *restrict y, \
                                     int64_t n) {                                             \
        for (int64_t i = 0; i < n; i++) o[i] = bce_term_f32(x[i], y[i]);                      \
    }
MG_ISA_STAMP(BCE_TERMS, bce_terms_f32)
/* d/dx times g[i] (none) or the reduced gradient s (gp NULL) */
#define DBCE(ISA, NAME)                                                                        \
    static void MG_ISA_FN(NAME, ISA)(float *restrict o, const float *restrict x, const float *restrict y, \
                                     const float *restrict g, double s, int64_t n) {          \
        if (g)                                                                                \
            for (int64_t i = 0; i < n; i++)                                                   \
                o[i] = (float)((double)(mg_sigmoidf(x[i]) - y[i]) * (double)g[i]);            \
        else                                                                                  \
            for (int64_t i = 0; i < n; i++) o[i] = (float)((double)(mg_sigmoidf(x[i]) - y[i]) * s); \
    }
MG_ISA_STAMP(DBCE, dbce_f32)

/* d loss / d x (wrt 0) or d y (wrt 1), elementwise, times g[k] (none) or g / n (mean) or g (sum) */
#define DEFINE_DPOINTWISE(NAME, T)                                                         \
    static void NAME(mg_functional_op op, int wrt, void *dst, const void *xp, const void *yp,    \
                     const void *gp, int64_t n, mg_reduction red) {                        \
        const T *x = (const T *)xp, *y = (const T *)yp, *g = (const T *)gp;                \
        T *o = (T *)dst;                                                                   \
        if (red == MG_REDUCTION_NONE) {                                                    \
            for (int64_t i = 0; i < n; i++)                                                \
                o[i] = (T)(dpointwise(op, wrt, x[i], y[i]) * (double)g[i]);                \
            return;                                                                        \
        }                                                                                  \
        const double s = reduced_grad(red, (double)g[0], n);                               \
        for (int64_t i = 0; i < n; i++) o[i] = (T)(dpointwise(op, wrt, x[i], y[i]) * s);   \
    }
DEFINE_DPOINTWISE(dpointwise_f32, float)
DEFINE_DPOINTWISE(dpointwise_f64, double)
typedef void (*dpointwise_fn)(mg_functional_op, int, void *, const void *, const void *, const void *,
                              int64_t, mg_reduction);
static const dpointwise_fn dpointwise_kernels[2] = {dpointwise_f32, dpointwise_f64};

mg_status mg_pointwise_loss(mg_ctx *ctx, mg_functional_op op, mg_tensor *out, const mg_tensor *x,
                            const mg_tensor *y, mg_reduction red, int ndim, const int64_t *size) {
    mg_status st = check_float(ctx, out, names[op]);
    if (st != MG_OK) return st;
    const mg_dtype dt = (mg_dtype)out->dtype;
    mg_scratch sx, sy;
    const mg_tensor *cx, *cy;
    sy.s.data = NULL;
    st = flat(ctx, x, dt, ndim, size, &sx, &cx);
    if (st == MG_OK) st = flat(ctx, y, dt, ndim, size, &sy, &cy);
    if (st == MG_OK && op == MG_F_BCE_LOGITS && dt == MG_FLOAT32) {
        const int64_t n = cx->numel;
        const float *xd = (const float *)mg_tensor_data(cx), *yd = (const float *)mg_tensor_data(cy);
        if (red == MG_REDUCTION_NONE) {
            MG_ISA_PICK(ctx->isa, bce_terms_f32)((float *)mg_tensor_data(out), xd, yd, n);
        } else {
            const double s = MG_ISA_PICK(ctx->isa, bce_sum_f32)(xd, yd, n);
            *(float *)mg_tensor_data(out) = red == MG_REDUCTION_MEAN ? (float)((float)s / (float)n) : (float)s;
        }
    } else if (st == MG_OK && red != MG_REDUCTION_NONE && (op == MG_F_MSE || op == MG_F_L1)) {
        const int64_t n = cx->numel;
        const void *xd = mg_tensor_data(cx), *yd = mg_tensor_data(cy);
        const int isa = ctx->isa;
        if (dt == MG_FLOAT32) {
            const double s = op == MG_F_MSE ? MG_ISA_PICK(isa, mse_sum_f32)((const float *)xd, (const float *)yd, n)
                                            : MG_ISA_PICK(isa, l1_sum_f32)((const float *)xd, (const float *)yd, n);
            *(float *)mg_tensor_data(out) = red == MG_REDUCTION_MEAN ? (float)((float)s / (float)n) : (float)s;
        } else {
            const double s = op == MG_F_MSE ? MG_ISA_PICK(isa, mse_sum_f64)((const double *)xd, (const double *)yd, n)
                                            : MG_ISA_PICK(isa, l1_sum_f64)((const double *)xd, (const double *)yd, n);
            *(double *)mg_tensor_data(out) = red == MG_REDUCTION_MEAN ? s / (double)n : s;
        }
    } else if (st == MG_OK)
        pointwise_kernels[dt](op, mg_tensor_data(out), mg_tensor_data(cx), mg_tensor_data(cy),
                              cx->numel, red);
    drop(ctx, &sy);
    drop(ctx, &sx);
    return st;
}

/* The inputs broadcast to one shape, the gradient computed there and summed back (mg_sum_to). */
static mg_status pointwise_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin) {
    const mg_functional_op op = (mg_functional_op)a->node->op;
    const mg_reduction red = (mg_reduction)a->node->iarg[0];
    const mg_dtype dt = (mg_dtype)a->out->dtype;
    const mg_tensor *x = a->inputs[0], *y = a->inputs[1];
    int ndim;
    int64_t size[MG_MAX_DIMS];
    mg_status st = mg_broadcast_shape(ctx, &ndim, size, x->ndim, x->size, y->ndim, y->size);
    if (st != MG_OK) return st;
    mg_scratch sx, sy, sg, sd;
    const mg_tensor *cx, *cy, *cg;
    mg_tensor *dest;
    sy.s.data = sg.s.data = sd.s.data = NULL;
    st = flat(ctx, x, dt, ndim, size, &sx, &cx);
    if (st == MG_OK) st = flat(ctx, y, dt, ndim, size, &sy, &cy);
    if (st == MG_OK) st = flat_as(ctx, a->gout, dt, &sg, &cg);
    if (st == MG_OK) st = grad_dest(ctx, gin, dt, ndim, size, &sd, &dest);
    if (st == MG_OK && op == MG_F_BCE_LOGITS && dt == MG_FLOAT32 && i == 0) {
        const bool none = red == MG_REDUCTION_NONE;
        MG_ISA_PICK(ctx->isa, dbce_f32)((float *)mg_tensor_data(dest), (const float *)mg_tensor_data(cx),
                                        (const float *)mg_tensor_data(cy),
                                        none ? (const float *)mg_tensor_data(cg) : NULL,
                                        none ? 0.0 : reduced_grad(red, (double)*(const float *)mg_tensor_data(cg), cx->numel),
                                        cx->numel);
    } else if (st == MG_OK)
        dpointwise_kernels[dt](op, i, mg_tensor_data(dest), mg_tensor_data(cx), mg_tensor_data(cy),
                               mg_tensor_data(cg), cx->numel, red);
    st = grad_done(ctx, gin, &sd, st);
    drop(ctx, &sg);
    drop(ctx, &sy);
    drop(ctx, &sx);
    return st;
}

/* A float's bits as an int32 that orders as the float does (-0 below +0; NaNs past the infinities,
 * a NaN with its sign bit below -inf), and back: integer maxima vectorize where float ones, with
 * their NaN rules, do not. */
static inline int32_t float_key(float f) {
    const int32_t i = (int32_t)mg_f2u(f);
    return i ^ ((i >> 31) & 0x7fffffff);
}
static inline float key_float(int32_t k) { return mg_u2f((uint32_t)(k ^ ((k >> 31) & 0x7fffffff))); }

/* ================================================================ cross_entropy */

/* Per row n of logits x (N, C) with class t = target[n] - 1:
 *   lse = m + log(sum_c e^(x_c - m)), m = max_c x_c (stable for any magnitude),
 *   loss_n = lse - x_t   (log_softmax then nll, fused).
 * Backward: d loss_n / d x_c = softmax_c - [c == t] = e^(x_c - lse) - [c == t], times g_n (none)
 * or g / N (mean) or g (sum). lse is saved in float64 so the softmax is exact to the dtype. */
/* e^v in the dtype's precision (float32 logits: a float exp, as PyTorch computes them: the one of
 * vmath.h, which vectorizes; sums stay double). Rows are short (10 classes), so the exponentials
 * of several rows are taken in one loop over a buffer of EXP_BLOCK, which vectorizes, and then
 * summed row by row in order: the same arithmetic as one row at a time. */
/* A row's max: float32 rows of 64 or more on integer keys (they vectorize; the max is the same
 * number, and a NaN, which the loop skips, would reach the sum and every result anyway), others
 * as a loop skipping NaNs. */
static inline double row_max_f32(const float *row, int64_t C) {
    int64_t c = 0;
    double m = -INFINITY;
    if (C >= 64) {
        int32_t kp[16];
        for (int j = 0; j < 16; j++) kp[j] = INT32_MIN;
        for (; c + 16 <= C; c += 16)
            for (int j = 0; j < 16; j++) {
                const int32_t v = float_key(row[c + j]);
                kp[j] = v > kp[j] ? v : kp[j];
            }
        int32_t km = kp[0];
        for (int j = 1; j < 16; j++) km = kp[j] > km ? kp[j] : km;
        m = key_float(km);
    }
    for (; c < C; c++) m = row[c] > m ? (double)row[c] : m;
    return m;
}
static inline double row_max_f64(const double *row, int64_t C) {
    double m = -INFINITY;
    for (int64_t c = 0; c < C; c++) m = row[c] > m ? row[c] : m;
    return m;
}
/* The sum of a row's (piece's) exponentials: 8 interleaved partials added in a fixed order for 64
 * or more (a long row of classes: one chain through them was latency-bound), else in order. */
static inline double piece_sum(const double *e, int64_t k) {
    double s = 0;
    int64_t j = 0;
    if (k >= 64) {
        double part[8] = {0};
        for (; j + 8 <= k; j += 8)
            for (int q = 0; q < 8; q++) part[q] += e[j + q];
        for (int q = 0; q < 8; q++) s += part[q];
    }
    for (; j < k; j++) s += e[j];
    return s;
}
#define EXP_F32(v) ((double)mg_expf((float)(v)))
#define EXP_F64(v) exp(v)
#define EXP_BLOCK 256
#define DEFINE_CROSS_ENTROPY(NAME, T, EXP) MG_ISA_STAMP(CROSS_ENTROPY_LOOP, NAME, T, EXP)
#define CROSS_ENTROPY_LOOP(ISA, NAME, T, EXP)                                              \
    static void MG_ISA_FN(NAME, ISA)(void *out, double *lse, const void *xp,               \
                                     const int64_t *t, int64_t N, int64_t C,               \
                                     mg_reduction red) {                                   \
        T *o = (T *)out;                                                                   \
        double total = 0, e[EXP_BLOCK];                                                    \
        /* rows per buffer: several short rows, or one long row in pieces (rows = 1) */    \
        const int64_t fit = C && 2 * C <= EXP_BLOCK ? EXP_BLOCK / C : 1;                   \
        for (int64_t n0 = 0, rows; n0 < N; n0 += rows) {                                   \
            rows = N - n0 < fit ? N - n0 : fit;                                            \
            for (int64_t r = 0; r < rows; r++) { /* lse holds each row's max for now */    \
                const T *row = (const T *)xp + (n0 + r) * C;                               \
                lse[n0 + r] = ROW_MAX(row, C);                                             \
            }                                                                              \
            double s = 0; /* the sum of one long row, over its pieces */                   \
            for (int64_t c0 = 0; c0 < (rows > 1 ? 1 : C); c0 += EXP_BLOCK) {              \
                const int64_t k = rows > 1 ? C : (C - c0 < EXP_BLOCK ? C - c0 : EXP_BLOCK); \
                for (int64_t r = 0; r < rows; r++) {                                       \
                    const T *row = (const T *)xp + (n0 + r) * C + c0;                      \
                    for (int64_t j = 0; j < k; j++) e[r * k + j] = (double)row[j] - lse[n0 + r]; \
                }                                                                          \
                for (int64_t j = 0; j < rows * k; j++) e[j] = EXP(e[j]);                   \
                for (int64_t r = 0; r < rows; r++) {                                       \
                    if (rows > 1) s = 0;                                                   \
                    s += piece_sum(e + r * k, k);                                          \
                    if (rows > 1 || c0 + k >= C) {                                         \
                        const int64_t n = n0 + r;                                          \
                        lse[n] = lse[n] + log(s);                                          \
                        const double l = lse[n] - (double)((const T *)xp)[n * C + t[n] - 1]; \
                        if (red == MG_REDUCTION_NONE) o[n] = (T)l;                         \
                        else total += l;                                                   \
                    }                                                                      \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
        if (red != MG_REDUCTION_NONE)                                                      \
            o[0] = (T)(red == MG_REDUCTION_MEAN ? total / (double)N : total);              \
    }
#define ROW_MAX row_max_f32
DEFINE_CROSS_ENTROPY(cross_entropy_f32, float, EXP_F32)
#undef ROW_MAX
#define ROW_MAX row_max_f64
DEFINE_CROSS_ENTROPY(cross_entropy_f64, double, EXP_F64)
#undef ROW_MAX
typedef void (*cross_entropy_fn)(void *, double *, const void *, const int64_t *, int64_t, int64_t,
                                 mg_reduction);
static const cross_entropy_fn cross_entropy_kernels[MG_NISA][MG_NDTYPES] =
    MG_ISA_ROW(MG_KERNELS_F, cross_entropy);

#define DEFINE_DCROSS_ENTROPY(NAME, T, EXP) MG_ISA_STAMP(DCROSS_ENTROPY_LOOP, NAME, T, EXP)
#define DCROSS_ENTROPY_LOOP(ISA, NAME, T, EXP)                                             \
    static void MG_ISA_FN(NAME, ISA)(void *dst, const void *xp, const double *lse,         \
                                     const int64_t *t, const void *gp, int64_t N,          \
                                     int64_t C, mg_reduction red) {                        \
        const T *g = (const T *)gp;                                                        \
        T *o = (T *)dst;                                                                   \
        /* x - lse in T (EXP rounds its argument to T anyway), then e^ of all N C in one */ \
        /* loop that vectorizes, then minus the target's 1, times the gradient */          \
        for (int64_t n = 0; n < N; n++)                                                    \
            for (int64_t c = 0; c < C; c++)                                                \
                o[n * C + c] = (T)((double)((const T *)xp)[n * C + c] - lse[n]);           \
        for (int64_t i = 0; i < N * C; i++) o[i] = (T)EXP((double)o[i]);                   \
        for (int64_t n = 0; n < N; n++) {                                                  \
            const double s = red == MG_REDUCTION_NONE ? (double)g[n]                       \
                                                      : reduced_grad(red, (double)g[0], N); \
            for (int64_t c = 0; c < C; c++)                                                \
                o[n * C + c] = (T)(((double)o[n * C + c] - (c == t[n] - 1)) * s);          \
        }                                                                                  \
    }
DEFINE_DCROSS_ENTROPY(dcross_entropy_f32, float, EXP_F32)
DEFINE_DCROSS_ENTROPY(dcross_entropy_f64, double, EXP_F64)
typedef void (*dcross_entropy_fn)(void *, const void *, const double *, const int64_t *,
                                  const void *, int64_t, int64_t, mg_reduction);
static const dcross_entropy_fn dcross_entropy_kernels[MG_NISA][MG_NDTYPES] =
    MG_ISA_ROW(MG_KERNELS_F, dcross_entropy);

mg_status mg_cross_entropy(mg_ctx *ctx, mg_tensor *out, mg_tensor *lse, const mg_tensor *logits,
                           const mg_tensor *target, mg_reduction red) {
    mg_status st = check_float(ctx, out, "cross_entropy");
    if (st != MG_OK) return st;
    const mg_dtype dt = (mg_dtype)out->dtype;
    const int64_t C = logits->size[logits->ndim - 1], N = logits->numel / (C ? C : 1);
    mg_scratch sx, st_;
    const mg_tensor *cx, *ct;
    sx.s.data = NULL;
    st = flat_as(ctx, target, MG_INT64, &st_, &ct);
    if (st != MG_OK) goto done;
    const int64_t *t = (const int64_t *)mg_tensor_data(ct);
    for (int64_t n = 0; n < ct->numel; n++)
        if (t[n] < 1 || t[n] > C) {
            st = mg_fail(ctx, MG_EINDEX, 2, "target %lld out of range for %lld classes%s", (long long)t[n],
                         (long long)C, t[n] == 0 ? " (classes count from 1: add 1 to 0-based labels)" : "");
            goto done;
        }
    st = flat_as(ctx, logits, dt, &sx, &cx);
    if (st == MG_OK)
        cross_entropy_kernels[ctx->isa][dt](mg_tensor_data(out), (double *)mg_tensor_data(lse),
                                            mg_tensor_data(cx), t, N, C, red);
done:
    drop(ctx, &sx);
    drop(ctx, &st_);
    return st;
}

static mg_status cross_entropy_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin) {
    if (i != 0) return mg_fail(ctx, MG_EVALUE, 0, "'cross_entropy' is not differentiable with respect to the target");
    const mg_reduction red = (mg_reduction)a->node->iarg[0];
    const mg_tensor *logits = a->inputs[0];
    const mg_dtype dt = (mg_dtype)a->out->dtype;
    const int64_t C = logits->size[logits->ndim - 1], N = logits->numel / (C ? C : 1);
    mg_scratch sx, st_, sg, sd;
    const mg_tensor *cx, *ct, *cg;
    mg_tensor *dest;
    st_.s.data = sg.s.data = sd.s.data = NULL;
    mg_status st = flat_as(ctx, logits, dt, &sx, &cx);
    if (st == MG_OK) st = flat_as(ctx, a->inputs[1], MG_INT64, &st_, &ct);
    if (st == MG_OK) st = flat_as(ctx, a->gout, dt, &sg, &cg);
    if (st == MG_OK) st = grad_dest(ctx, gin, dt, logits->ndim, logits->size, &sd, &dest);
    if (st == MG_OK)
        dcross_entropy_kernels[ctx->isa][dt](mg_tensor_data(dest), mg_tensor_data(cx),
                                             (const double *)mg_tensor_data(a->saved[0]),
                                             (const int64_t *)mg_tensor_data(ct), mg_tensor_data(cg),
                                             N, C, red);
    st = grad_done(ctx, gin, &sd, st);
    drop(ctx, &sg);
    drop(ctx, &st_);
    drop(ctx, &sx);
    return st;
}

/* ================================================================ nll_loss (issue 13) */

/* x seen as (N, C, K) (K: the product of the dims after the class dim), target (N, K) of
 * 1-based classes. Element (n, k) with class t (not ignore_index), weight w = weight[t] (1 without
 * weights):  loss = -w x[n, t, k];  mean = sum of losses / sum of w.
 * Backward: dx[n, t, k] = -w g[n, k] (none), -w g / sum w (mean), -w g (sum); 0 elsewhere. */
#define DEFINE_NLL(NAME, T)                                                                \
    static void NAME(void *out, const void *xp, const int64_t *t, const void *wp, int64_t N,  \
                     int64_t C, int64_t K, int64_t ignore, mg_reduction red) {             \
        const T *x = (const T *)xp, *w = (const T *)wp;                                    \
        T *o = (T *)out;                                                                   \
        double total = 0, wsum = 0;                                                        \
        for (int64_t n = 0; n < N; n++)                                                    \
            for (int64_t k = 0; k < K; k++) {                                              \
                const int64_t c = t[n * K + k];                                            \
                if (c == ignore) {                                                         \
                    if (red == MG_REDUCTION_NONE) o[n * K + k] = 0;                        \
                    continue;                                                              \
                }                                                                          \
                const T wc = w ? w[c - 1] : (T)1;                                          \
                const T l = -wc * x[(n * C + c - 1) * K + k];                              \
                if (red == MG_REDUCTION_NONE) o[n * K + k] = l;                            \
                total += (double)l, wsum += (double)wc;                                    \
            }                                                                              \
        if (red == MG_REDUCTION_MEAN) o[0] = (T)(total / wsum);                            \
        else if (red == MG_REDUCTION_SUM) o[0] = (T)total;                                 \
    }
DEFINE_NLL(nll_f32, float)
DEFINE_NLL(nll_f64, double)
typedef void (*nll_fn)(void *, const void *, const int64_t *, const void *, int64_t, int64_t,
                       int64_t, int64_t, mg_reduction);
static const nll_fn nll_kernels[2] = {nll_f32, nll_f64};

#define DEFINE_DNLL(NAME, T)                                                               \
    static void NAME(void *dst, const int64_t *t, const void *wp, const void *gp, int64_t N, \
                     int64_t C, int64_t K, int64_t ignore, mg_reduction red) {             \
        const T *w = (const T *)wp, *g = (const T *)gp;                                    \
        T *d = (T *)dst;                                                                   \
        double wsum = 0;                                                                   \
        for (int64_t i = 0; i < N * C * K; i++) d[i] = 0;                                  \
        if (red == MG_REDUCTION_MEAN)                                                      \
            for (int64_t i = 0; i < N * K; i++)                                            \
                if (t[i] != ignore) wsum += w ? (double)w[t[i] - 1] : 1.0;                 \
        for (int64_t n = 0; n < N; n++)                                                    \
            for (int64_t k = 0; k < K; k++) {                                              \
                const int64_t c = t[n * K + k];                                            \
                if (c == ignore) continue;                                                 \
                const double wc = w ? (double)w[c - 1] : 1.0;                              \
                const double s = red == MG_REDUCTION_NONE ? (double)g[n * K + k]           \
                                 : red == MG_REDUCTION_MEAN ? (double)g[0] / wsum          \
                                                            : (double)g[0];                \
                d[(n * C + c - 1) * K + k] = (T)(-wc * s);                                 \
            }                                                                              \
    }
DEFINE_DNLL(dnll_f32, float)
DEFINE_DNLL(dnll_f64, double)
typedef void (*dnll_fn)(void *, const int64_t *, const void *, const void *, int64_t, int64_t,
                        int64_t, int64_t, mg_reduction);
static const dnll_fn dnll_kernels[2] = {dnll_f32, dnll_f64};

/* N, C, K of an nll_loss input: (C) is N = 1, K = 1; (N, C, d...) has K = prod d. */
static void nll_dims(const mg_tensor *x, int64_t *N, int64_t *C, int64_t *K) {
    *N = 1, *K = 1;
    if (x->ndim == 1) {
        *C = x->size[0];
        return;
    }
    *N = x->size[0], *C = x->size[1];
    for (int d = 2; d < x->ndim; d++) *K *= x->size[d];
}

mg_status mg_nll_loss(mg_ctx *ctx, mg_tensor *out, const mg_tensor *x, const mg_tensor *target,
                      const mg_tensor *weight, int64_t ignore_index, mg_reduction red) {
    mg_status st = check_float(ctx, out, "nll_loss");
    if (st != MG_OK) return st;
    const mg_dtype dt = (mg_dtype)out->dtype;
    int64_t N, C, K;
    nll_dims(x, &N, &C, &K);
    mg_scratch sx, st_, sw;
    const mg_tensor *cx, *ct, *cw = NULL;
    sx.s.data = sw.s.data = NULL;
    st = flat_as(ctx, target, MG_INT64, &st_, &ct);
    if (st != MG_OK) goto done;
    const int64_t *t = (const int64_t *)mg_tensor_data(ct);
    for (int64_t i = 0; i < ct->numel; i++)
        if (t[i] != ignore_index && (t[i] < 1 || t[i] > C)) {
            st = t[i] == 0 ? mg_fail(ctx, MG_EINDEX, 2, "target 0 out of range for %lld classes: classes count from 1",
                                     (long long)C)
                           : mg_fail(ctx, MG_EINDEX, 2, "target %lld out of range for %lld classes",
                                     (long long)t[i], (long long)C);
            goto done;
        }
    st = flat_as(ctx, x, dt, &sx, &cx);
    if (st == MG_OK && weight) st = flat_as(ctx, weight, dt, &sw, &cw);
    if (st == MG_OK)
        nll_kernels[dt](mg_tensor_data(out), mg_tensor_data(cx), t, cw ? mg_tensor_data(cw) : NULL, N,
                        C, K, ignore_index, red);
done:
    drop(ctx, &sw);
    drop(ctx, &sx);
    drop(ctx, &st_);
    return st;
}

/* node: inputs (x, target), saved[0] the weight when iarg[2]; iarg[0] reduction, iarg[1]
 * ignore_index */
static mg_status nll_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin) {
    if (i != 0) return mg_fail(ctx, MG_EVALUE, 0, "'nll_loss' is not differentiable with respect to the target");
    const mg_tensor *x = a->inputs[0];
    const mg_dtype dt = (mg_dtype)a->out->dtype;
    int64_t N, C, K;
    nll_dims(x, &N, &C, &K);
    mg_scratch st_, sw, sg, sd;
    const mg_tensor *ct, *cw = NULL, *cg = NULL;
    mg_tensor *dest = NULL;
    sw.s.data = sg.s.data = sd.s.data = NULL;
    mg_status st = flat_as(ctx, a->inputs[1], MG_INT64, &st_, &ct);
    if (st == MG_OK && a->node->iarg[2]) st = flat_as(ctx, a->saved[0], dt, &sw, &cw);
    if (st == MG_OK) st = flat_as(ctx, a->gout, dt, &sg, &cg);
    if (st == MG_OK) st = grad_dest(ctx, gin, dt, x->ndim, x->size, &sd, &dest);
    if (st == MG_OK)
        dnll_kernels[dt](mg_tensor_data(dest), (const int64_t *)mg_tensor_data(ct),
                         cw ? mg_tensor_data(cw) : NULL, mg_tensor_data(cg), N, C, K, a->node->iarg[1],
                         (mg_reduction)a->node->iarg[0]);
    st = grad_done(ctx, gin, &sd, st);
    drop(ctx, &sg);
    drop(ctx, &sw);
    drop(ctx, &st_);
    return st;
}

/* ================================================================ binary_cross_entropy (issue 13) */

/* PyTorch's element, in the dtype: (y - 1) max(log1p(-p), -100) - y max(log p, -100), times w.
 * Backward: dp = g (p - y) / max((1 - p) p, eps) w (eps: 1e-12 as a float, as PyTorch);  dy = g (log1p(-p) - log p) w; then / n
 * for a mean (PyTorch's order of roundings). */
#define DEFINE_BCE(NAME, T)                                                                \
    static void NAME(void *out, const void *pp, const void *yp, const void *wp, int64_t n,  \
                     mg_reduction red) {                                                   \
        const T *p = (const T *)pp, *y = (const T *)yp, *w = (const T *)wp;                \
        T *o = (T *)out;                                                                   \
        double total = 0;                                                                  \
        for (int64_t i = 0; i < n; i++) {                                                  \
            const T l1 = MG_MATH(log1p, -p[i]), l0 = MG_MATH(log, p[i]);                   \
            T l = (y[i] - (T)1) * (l1 > (T)-100 ? l1 : (T)-100) -                          \
                  y[i] * (l0 > (T)-100 ? l0 : (T)-100);                                    \
            if (w) l *= w[i];                                                              \
            if (red == MG_REDUCTION_NONE) o[i] = l;                                        \
            else total += (double)l;                                                       \
        }                                                                                  \
        if (red != MG_REDUCTION_NONE)                                                      \
            o[0] = (T)(red == MG_REDUCTION_MEAN ? total / (double)n : total);              \
    }
DEFINE_BCE(bce_f32, float)
DEFINE_BCE(bce_f64, double)
typedef void (*bce_fn)(void *, const void *, const void *, const void *, int64_t, mg_reduction);
static const bce_fn bce_kernels[2] = {bce_f32, bce_f64};

#define DEFINE_DBCE(NAME, T)                                                               \
    static void NAME(int wrt, void *dst, const void *pp, const void *yp, const void *wp,   \
                     const void *gp, int64_t n, mg_reduction red) {                        \
        const T *p = (const T *)pp, *y = (const T *)yp, *w = (const T *)wp, *g = (const T *)gp; \
        T *d = (T *)dst;                                                                   \
        for (int64_t i = 0; i < n; i++) {                                                  \
            const T gi = red == MG_REDUCTION_NONE ? g[i] : g[0];                           \
            T v;                                                                           \
            if (wrt == 0) {                                                                \
                const T den = ((T)1 - p[i]) * p[i];                                        \
                v = gi * (p[i] - y[i]) / (den > (T)1e-12f ? den : (T)1e-12f); /* a float eps */ \
            } else {                                                                       \
                v = gi * (MG_MATH(log1p, -p[i]) - MG_MATH(log, p[i]));                     \
            }                                                                              \
            if (w) v *= w[i];                                                              \
            d[i] = red == MG_REDUCTION_MEAN ? v / (T)n : v;                                \
        }                                                                                  \
    }
DEFINE_DBCE(dbce_f32, float)
DEFINE_DBCE(dbce_f64, double)
typedef void (*dbce_fn)(int, void *, const void *, const void *, const void *, const void *, int64_t,
                        mg_reduction);
static const dbce_fn dbce_kernels[2] = {dbce_f32, dbce_f64};

mg_status mg_binary_cross_entropy(mg_ctx *ctx, mg_tensor *out, const mg_tensor *p, const mg_tensor *y,
                                  const mg_tensor *weight, mg_reduction red) {
    mg_status st = check_float(ctx, out, "binary_cross_entropy");
    if (st != MG_OK) return st;
    const mg_dtype dt = (mg_dtype)out->dtype;
    mg_scratch sp, sy, sw;
    const mg_tensor *cp, *cy = NULL, *cw = NULL;
    sy.s.data = sw.s.data = NULL;
    st = flat_as(ctx, p, dt, &sp, &cp);
    if (st == MG_OK) {
        const char *base = (const char *)mg_tensor_data(cp);
        for (int64_t i = 0; i < cp->numel; i++) {
            const double v = dt == MG_FLOAT32 ? (double)((const float *)base)[i] : ((const double *)base)[i];
            if (!(v >= 0 && v <= 1)) {
                st = mg_fail(ctx, MG_EVALUE, 1, "all elements of input should be between 0 and 1");
                break;
            }
        }
    }
    if (st == MG_OK) st = flat(ctx, y, dt, p->ndim, p->size, &sy, &cy);
    if (st == MG_OK && weight) st = flat(ctx, weight, dt, p->ndim, p->size, &sw, &cw);
    if (st == MG_OK)
        bce_kernels[dt](mg_tensor_data(out), mg_tensor_data(cp), mg_tensor_data(cy),
                        cw ? mg_tensor_data(cw) : NULL, cp->numel, red);
    drop(ctx, &sw);
    drop(ctx, &sy);
    drop(ctx, &sp);
    return st;
}

/* node: inputs (p, y), saved[0] the weight when iarg[1]; iarg[0] reduction */
static mg_status bce_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin) {
    const mg_tensor *p = a->inputs[0];
    const mg_dtype dt = (mg_dtype)a->out->dtype;
    mg_scratch sp, sy, sw, sg, sd;
    const mg_tensor *cp = NULL, *cy = NULL, *cw = NULL, *cg = NULL;
    mg_tensor *dest = NULL;
    sy.s.data = sw.s.data = sg.s.data = sd.s.data = NULL;
    mg_status st = flat_as(ctx, p, dt, &sp, &cp);
    if (st == MG_OK) st = flat(ctx, a->inputs[1], dt, p->ndim, p->size, &sy, &cy);
    if (st == MG_OK && a->node->iarg[1]) st = flat(ctx, a->saved[0], dt, p->ndim, p->size, &sw, &cw);
    if (st == MG_OK) st = flat_as(ctx, a->gout, dt, &sg, &cg);
    if (st == MG_OK) st = grad_dest(ctx, gin, dt, p->ndim, p->size, &sd, &dest);
    if (st == MG_OK)
        dbce_kernels[dt](i, mg_tensor_data(dest), mg_tensor_data(cp), mg_tensor_data(cy),
                         cw ? mg_tensor_data(cw) : NULL, mg_tensor_data(cg), cp->numel,
                         (mg_reduction)a->node->iarg[0]);
    st = grad_done(ctx, gin, &sd, st);
    drop(ctx, &sg);
    drop(ctx, &sw);
    drop(ctx, &sy);
    drop(ctx, &sp);
    return st;
}

/* ================================================================ smooth_l1_loss, huber_loss (issue 13) */

/* d = x - y, z = |d|, in the dtype as PyTorch:
 *   smooth_l1 (beta b): z < b ? z^2 / 2 / b : z - b / 2 (b = 0: z);  dd = d / b clamped to [-1, 1]
 *   huber (delta t):    z < t ? z^2 / 2 : t (z - t / 2);               dd = d clamped to [-t, t]
 * dx = dd g, dy = -dd g (g: g[k] unreduced, g / n mean, g sum). */
static inline double robust_grad(mg_functional_op op, double d, double b) {
    if (op == MG_F_SMOOTH_L1 && b == 0) return (d > 0) - (d < 0);
    const double lim = op == MG_F_HUBER ? b : 1.0;
    if (d <= -b) return -lim;
    if (d >= b) return lim;
    return op == MG_F_HUBER ? d : d / b;
}
#define DEFINE_ROBUST(NAME, T)                                                             \
    static void NAME(mg_functional_op op, void *out, const void *xp, const void *yp, int64_t n, \
                     double param, mg_reduction red) {                                     \
        const T *x = (const T *)xp, *y = (const T *)yp, b = (T)param;                      \
        T *o = (T *)out;                                                                   \
        double total = 0;                                                                  \
        for (int64_t i = 0; i < n; i++) {                                                  \
            const T z = MG_MATH(fabs, x[i] - y[i]);                                        \
            T l;                                                                           \
            if (op == MG_F_HUBER) l = z < b ? (T)0.5 * z * z : b * (z - (T)0.5 * b);       \
            else if (b == 0) l = z;                                                        \
            else l = z < b ? (T)0.5 * z * z / b : z - (T)0.5 * b;                          \
            if (red == MG_REDUCTION_NONE) o[i] = l;                                        \
            else total += (double)l;                                                       \
        }                                                                                  \
        if (red != MG_REDUCTION_NONE)                                                      \
            o[0] = (T)(red == MG_REDUCTION_MEAN ? total / (double)n : total);              \
    }
DEFINE_ROBUST(robust_f32, float)
DEFINE_ROBUST(robust_f64, double)
typedef void (*robust_fn)(mg_functional_op, void *, const void *, const void *, int64_t, double,
                          mg_reduction);
static const robust_fn robust_kernels[2] = {robust_f32, robust_f64};

#define DEFINE_DROBUST(NAME, T)                                                            \
    static void NAME(mg_functional_op op, int wrt, void *dst, const void *xp, const void *yp, \
                     const void *gp, int64_t n, double param, mg_reduction red) {          \
        const T *x = (const T *)xp, *y = (const T *)yp, *g = (const T *)gp;                \
        T *o = (T *)dst;                                                                   \
        const double sign = wrt == 0 ? 1.0 : -1.0;                                         \
        const double s0 = red == MG_REDUCTION_NONE ? 0 : reduced_grad(red, (double)g[0], n); \
        for (int64_t i = 0; i < n; i++) {                                                  \
            const double s = red == MG_REDUCTION_NONE ? (double)g[i] : s0;                 \
            o[i] = (T)(sign * robust_grad(op, (double)(x[i] - y[i]), param) * s);          \
        }                                                                                  \
    }
DEFINE_DROBUST(drobust_f32, float)
DEFINE_DROBUST(drobust_f64, double)
typedef void (*drobust_fn)(mg_functional_op, int, void *, const void *, const void *, const void *,
                           int64_t, double, mg_reduction);
static const drobust_fn drobust_kernels[2] = {drobust_f32, drobust_f64};

mg_status mg_robust_loss(mg_ctx *ctx, mg_functional_op op, mg_tensor *out, const mg_tensor *x,
                         const mg_tensor *y, double param, mg_reduction red, int ndim,
                         const int64_t *size) {
    mg_status st = check_float(ctx, out, names[op]);
    if (st != MG_OK) return st;
    const mg_dtype dt = (mg_dtype)out->dtype;
    mg_scratch sx, sy;
    const mg_tensor *cx, *cy = NULL;
    sy.s.data = NULL;
    st = flat(ctx, x, dt, ndim, size, &sx, &cx);
    if (st == MG_OK) st = flat(ctx, y, dt, ndim, size, &sy, &cy);
    if (st == MG_OK)
        robust_kernels[dt](op, mg_tensor_data(out), mg_tensor_data(cx), mg_tensor_data(cy), cx->numel,
                           param, red);
    drop(ctx, &sy);
    drop(ctx, &sx);
    return st;
}

/* node: inputs (x, y); iarg[0] reduction, darg[0] beta / delta */
static mg_status robust_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin) {
    const mg_functional_op op = (mg_functional_op)a->node->op;
    const mg_dtype dt = (mg_dtype)a->out->dtype;
    const mg_tensor *x = a->inputs[0], *y = a->inputs[1];
    int ndim;
    int64_t size[MG_MAX_DIMS];
    mg_status st = mg_broadcast_shape(ctx, &ndim, size, x->ndim, x->size, y->ndim, y->size);
    if (st != MG_OK) return st;
    mg_scratch sx, sy, sg, sd;
    const mg_tensor *cx = NULL, *cy = NULL, *cg = NULL;
    mg_tensor *dest = NULL;
    sy.s.data = sg.s.data = sd.s.data = NULL;
    st = flat(ctx, x, dt, ndim, size, &sx, &cx);
    if (st == MG_OK) st = flat(ctx, y, dt, ndim, size, &sy, &cy);
    if (st == MG_OK) st = flat_as(ctx, a->gout, dt, &sg, &cg);
    if (st == MG_OK) st = grad_dest(ctx, gin, dt, ndim, size, &sd, &dest);
    if (st == MG_OK)
        drobust_kernels[dt](op, i, mg_tensor_data(dest), mg_tensor_data(cx), mg_tensor_data(cy),
                            mg_tensor_data(cg), cx->numel, a->node->darg[0],
                            (mg_reduction)a->node->iarg[0]);
    st = grad_done(ctx, gin, &sd, st);
    drop(ctx, &sg);
    drop(ctx, &sy);
    drop(ctx, &sx);
    return st;
}

/* ================================================================ one_hot (issue 13) */

mg_status mg_one_hot(mg_ctx *ctx, mg_tensor *out, const mg_tensor *idx) {
    if (out->dtype != MG_INT64 || !mg_is_contiguous(out) || out->ndim < 1)
        return mg_fail(ctx, MG_EVALUE, 0, "one_hot: output of the wrong dtype or shape");
    const int64_t C = out->size[out->ndim - 1];
    mg_scratch si;
    const mg_tensor *ci;
    mg_status st = flat_as(ctx, idx, MG_INT64, &si, &ci);
    if (st != MG_OK) return st;
    const int64_t *v = (const int64_t *)mg_tensor_data(ci);
    for (int64_t i = 0; i < ci->numel && st == MG_OK; i++)
        if (v[i] < 1 || v[i] > C)
            st = v[i] == 0 ? mg_fail(ctx, MG_EINDEX, 1, "class 0 out of range for %lld classes: classes count from 1",
                                     (long long)C)
                           : mg_fail(ctx, MG_EINDEX, 1, "class %lld out of range for %lld classes", (long long)v[i],
                                     (long long)C);
    if (st == MG_OK) {
        int64_t *o = (int64_t *)mg_tensor_data(out);
        if (out->numel) memset(o, 0, sizeof(int64_t) * (size_t)out->numel);
        for (int64_t i = 0; i < ci->numel; i++) o[i * C + v[i] - 1] = 1;
    }
    drop(ctx, &si);
    return st;
}

/* ================================================================ softmax, log_softmax */

/* x seen as (outer, n, inner) around dim; each of the outer * inner lines of n elements:
 *   softmax y_k = e^(x_k - m) / s,  log_softmax y_k = x_k - m - log s,
 *   m = max_k x_k, s = sum_k e^(x_k - m).
 * Backward from the saved output y:
 *   softmax dx = y (g - sum_k g_k y_k),  log_softmax dx = g - e^y sum_k g_k. */
#define DEFINE_SOFTMAX(NAME, T) MG_ISA_STAMP(SOFTMAX_LOOP, NAME, T)
#define SOFTMAX_LOOP(ISA, NAME, T)                                                         \
    static void MG_ISA_FN(NAME, ISA)(mg_functional_op op, void *out, const void *xp,       \
                                     int64_t outer, int64_t n, int64_t inner) {            \
        for (int64_t o = 0; o < outer; o++)                                                \
            for (int64_t j = 0; j < inner; j++) {                                          \
                const T *x = (const T *)xp + o * n * inner + j;                            \
                T *y = (T *)out + o * n * inner + j;                                       \
                double m = -INFINITY, s = 0;                                               \
                for (int64_t k = 0; k < n; k++) m = x[k * inner] > m ? (double)x[k * inner] : m; \
                for (int64_t k = 0; k < n; k++) s += exp((double)x[k * inner] - m);        \
                const double ls = m + log(s);                                              \
                for (int64_t k = 0; k < n; k++)                                            \
                    y[k * inner] = (T)(op == MG_F_SOFTMAX ? exp((double)x[k * inner] - ls) \
                                                             : (double)x[k * inner] - ls); \
            }                                                                              \
    }
DEFINE_SOFTMAX(softmax_f32, float)
DEFINE_SOFTMAX(softmax_f64, double)
typedef void (*softmax_fn)(mg_functional_op, void *, const void *, int64_t, int64_t, int64_t);
static const softmax_fn softmax_kernels[MG_NISA][MG_NDTYPES] =
    MG_ISA_ROW(MG_KERNELS_F, softmax);

/* float32 along the last dim (inner 1, the common case), at the machine's width: e_k = e^(x_k - m)
 * by vmath.h's float exp of the float-rounded argument (as cross_entropy here and PyTorch's float
 * kernels), summed in double over 8 interleaved partials added in a fixed order (the row's length
 * alone decides it, as sum_f32's), then softmax y_k = e_k (1 / s), log_softmax y_k = x_k - (m +
 * log s), in double, rounded once. The max is taken on integer keys: a NaN in the row may become
 * it (the loop above skips NaNs), which changes nothing, as the NaN reaches every result either
 * way; which zero a row of +0 and -0 keeps cannot change a result. The general loop above took
 * libm's double exp per element: 9 ns an element for softmax. */
#define SOFTMAX_ROWS_F32(ISA, NAME)                                                            \
    static void MG_ISA_FN(NAME, ISA)(mg_functional_op op, float *restrict y, const float *restrict x, \
                                     int64_t rows, int64_t n) {                                 \
        for (int64_t r = 0; r < rows; r++, x += n, y += n) {                                    \
            int32_t kp[16]; /* the max through integer keys (ordered as the floats): it vectorizes */ \
            for (int j = 0; j < 16; j++) kp[j] = INT32_MIN;                                     \
            int64_t k = 0;                                                                      \
            for (; k + 16 <= n; k += 16)                                                        \
                for (int j = 0; j < 16; j++) {                                                  \
                    const int32_t v = float_key(x[k + j]);                                      \
                    kp[j] = v > kp[j] ? v : kp[j];                                              \
                }                                                                               \
            int32_t km = INT32_MIN;                                                             \
            for (int j = 0; j < 16; j++) km = kp[j] > km ? kp[j] : km;                          \
            for (; k < n; k++) km = float_key(x[k]) > km ? float_key(x[k]) : km;                \
            const float mf = key_float(km);                                                     \
            const double m = mf;                                                                \
            double part[16] = {0};                                                              \
            k = 0;                                                                              \
            if (op == MG_F_SOFTMAX) {                                                           \
                for (; k + 16 <= n; k += 16)                                                    \
                    for (int j = 0; j < 16; j++) {                                              \
                        const float e = mg_expf((float)((double)x[k + j] - m));                 \
                        y[k + j] = e;                                                           \
                        part[j] += (double)e;                                                   \
                    }                                                                           \
            } else {                                                                            \
                for (; k + 16 <= n; k += 16)                                                    \
                    for (int j = 0; j < 16; j++) part[j] += (double)mg_expf((float)((double)x[k + j] - m)); \
            }                                                                                   \
            double s = 0;                                                                       \
            for (int j = 0; j < 16; j++) s += part[j];                                          \
            for (; k < n; k++) {                                                                \
                const float e = mg_expf((float)((double)x[k] - m));                             \
                if (op == MG_F_SOFTMAX) y[k] = e;                                               \
                s += (double)e;                                                                 \
            }                                                                                   \
            if (op == MG_F_SOFTMAX) {                                                           \
                const double inv = 1.0 / s;                                                     \
                for (k = 0; k < n; k++) y[k] = (float)((double)y[k] * inv);                     \
            } else {                                                                            \
                const double ls = m + log(s);                                                   \
                for (k = 0; k < n; k++) y[k] = (float)((double)x[k] - ls);                      \
            }                                                                                   \
        }                                                                                       \
    }
MG_ISA_STAMP(SOFTMAX_ROWS_F32, softmax_rows_f32)

/* Their backward, float32 along the last dim: the sums in double over 8 interleaved partials (as
 * above), softmax dx = y (g - sum g y), log_softmax dx = g - e^y sum g with vmath.h's float exp. */
#define DSOFTMAX_ROWS_F32(ISA, NAME)                                                           \
    static void MG_ISA_FN(NAME, ISA)(mg_functional_op op, float *restrict d, const float *restrict y, \
                                     const float *restrict g, int64_t rows, int64_t n) {        \
        for (int64_t r = 0; r < rows; r++, d += n, y += n, g += n) {                            \
            double part[8] = {0};                                                               \
            int64_t k = 0;                                                                      \
            if (op == MG_F_SOFTMAX) {                                                           \
                for (; k + 8 <= n; k += 8)                                                      \
                    for (int j = 0; j < 8; j++) part[j] += (double)g[k + j] * (double)y[k + j]; \
            } else {                                                                            \
                for (; k + 8 <= n; k += 8)                                                      \
                    for (int j = 0; j < 8; j++) part[j] += (double)g[k + j];                    \
            }                                                                                   \
            double s = 0;                                                                       \
            for (int j = 0; j < 8; j++) s += part[j];                                           \
            for (; k < n; k++) s += (double)g[k] * (op == MG_F_SOFTMAX ? (double)y[k] : 1.0);   \
            if (op == MG_F_SOFTMAX)                                                             \
                for (k = 0; k < n; k++) d[k] = (float)((double)y[k] * ((double)g[k] - s));      \
            else                                                                                \
                for (k = 0; k < n; k++) d[k] = (float)((double)g[k] - (double)mg_expf(y[k]) * s); \
        }                                                                                       \
    }
MG_ISA_STAMP(DSOFTMAX_ROWS_F32, dsoftmax_rows_f32)

#define DEFINE_DSOFTMAX(NAME, T) MG_ISA_STAMP(DSOFTMAX_LOOP, NAME, T)
#define DSOFTMAX_LOOP(ISA, NAME, T)                                                        \
    static void MG_ISA_FN(NAME, ISA)(mg_functional_op op, void *dst, const void *yp,       \
                                     const void *gp, int64_t outer, int64_t n,             \
                                     int64_t inner) {                                      \
        for (int64_t o = 0; o < outer; o++)                                                \
            for (int64_t j = 0; j < inner; j++) {                                          \
                const int64_t base = o * n * inner + j;                                    \
                const T *y = (const T *)yp + base, *g = (const T *)gp + base;              \
                T *d = (T *)dst + base;                                                    \
                double s = 0;                                                              \
                for (int64_t k = 0; k < n; k++)                                            \
                    s += (double)g[k * inner] * (op == MG_F_SOFTMAX ? (double)y[k * inner] : 1.0); \
                for (int64_t k = 0; k < n; k++) {                                          \
                    const double yk = y[k * inner], gk = g[k * inner];                     \
                    d[k * inner] = (T)(op == MG_F_SOFTMAX ? yk * (gk - s) : gk - exp(yk) * s); \
                }                                                                          \
            }                                                                              \
    }
DEFINE_DSOFTMAX(dsoftmax_f32, float)
DEFINE_DSOFTMAX(dsoftmax_f64, double)
typedef void (*dsoftmax_fn)(mg_functional_op, void *, const void *, const void *, int64_t, int64_t, int64_t);
static const dsoftmax_fn dsoftmax_kernels[MG_NISA][MG_NDTYPES] =
    MG_ISA_ROW(MG_KERNELS_F, dsoftmax);

static void split_dims(const mg_tensor *t, int dim, int64_t *outer, int64_t *n, int64_t *inner) {
    *outer = *inner = 1;
    *n = t->ndim ? t->size[dim] : 1;
    for (int d = 0; d < dim; d++) *outer *= t->size[d];
    for (int d = dim + 1; d < t->ndim; d++) *inner *= t->size[d];
}

mg_status mg_softmax(mg_ctx *ctx, mg_functional_op op, mg_tensor *out, const mg_tensor *x, int dim) {
    mg_status st = check_float(ctx, out, names[op]);
    if (st != MG_OK) return st;
    const mg_dtype dt = (mg_dtype)out->dtype;
    mg_scratch sx;
    const mg_tensor *cx;
    st = flat_as(ctx, x, dt, &sx, &cx);
    int64_t outer, n, inner;
    split_dims(x, dim, &outer, &n, &inner);
    if (st == MG_OK && dt == MG_FLOAT32 && inner == 1)
        MG_ISA_PICK(ctx->isa, softmax_rows_f32)(op, (float *)mg_tensor_data(out), (const float *)mg_tensor_data(cx),
                                                outer, n);
    else if (st == MG_OK)
        softmax_kernels[ctx->isa][dt](op, mg_tensor_data(out), mg_tensor_data(cx), outer, n, inner);
    drop(ctx, &sx);
    return st;
}

static mg_status softmax_backward(mg_ctx *ctx, const mg_backward_args *a, mg_tensor *gin) {
    const mg_functional_op op = (mg_functional_op)a->node->op;
    const mg_tensor *y = a->saved[0];
    const mg_dtype dt = (mg_dtype)y->dtype;
    mg_scratch sy, sg, sd;
    const mg_tensor *cy = NULL, *cg = NULL; /* set on success (-O3 cannot see it) */
    mg_tensor *dest = NULL;
    sg.s.data = sd.s.data = NULL;
    mg_status st = flat_as(ctx, y, dt, &sy, &cy);
    if (st == MG_OK) st = flat_as(ctx, a->gout, dt, &sg, &cg);
    if (st == MG_OK) st = grad_dest(ctx, gin, dt, y->ndim, y->size, &sd, &dest);
    int64_t outer, n, inner;
    split_dims(y, (int)a->node->iarg[0], &outer, &n, &inner);
    if (st == MG_OK && dt == MG_FLOAT32 && inner == 1)
        MG_ISA_PICK(ctx->isa, dsoftmax_rows_f32)(op, (float *)mg_tensor_data(dest), (const float *)mg_tensor_data(cy),
                                                 (const float *)mg_tensor_data(cg), outer, n);
    else if (st == MG_OK)
        dsoftmax_kernels[ctx->isa][dt](op, mg_tensor_data(dest), mg_tensor_data(cy), mg_tensor_data(cg),
                                       outer, n, inner);
    st = grad_done(ctx, gin, &sd, st);
    drop(ctx, &sg);
    drop(ctx, &sy);
    return st;
}

/* ================================================================ linear */

/* x (..., I), weight (O, I), bias (O): y = x W^T + b, the bias added to each row of the product
 * in the same loop that would otherwise be a broadcast add. Backward:
 *   dx = g W  (matmul (..., O) by (O, I)),  dW = g2^T x2  (g2 (M, O), x2 (M, I): the leading dims
 *   of g and x flattened),  db = g summed over its leading dims. */
#define DEFINE_ADD_ROWS(NAME, T) MG_ISA_STAMP(ADD_ROWS_LOOP, NAME, T)
#define ADD_ROWS_LOOP(ISA, NAME, T)                                                        \
    static void MG_ISA_FN(NAME, ISA)(void *out, const void *bp, int64_t rows, int64_t cols) { \
        const T *b = (const T *)bp;                                                        \
        for (int64_t r = 0; r < rows; r++) {                                               \
            T *o = (T *)out + r * cols;                                                    \
            for (int64_t c = 0; c < cols; c++) o[c] += b[c];                               \
        }                                                                                  \
    }
DEFINE_ADD_ROWS(add_rows_f32, float)
DEFINE_ADD_ROWS(add_rows_f64, double)
typedef void (*add_rows_fn)(void *, const void *, int64_t, int64_t);
static const add_rows_fn add_rows_kernels[MG_NISA][MG_NDTYPES] = MG_ISA_ROW(MG_KERNELS_F, add_rows);

/* A 2-D descriptor over t (whose strides are vb's to fill): sizes (r, c), strides (sr, sc). */
static mg_tensor *matrix(mg_view_buf *vb, const mg_tensor *t, int64_t r, int64_t c, int64_t sr,
                         int64_t sc) {
    mg_tensor *m = mg_view_of(vb, t, 2);
    m->size[0] = r;
    m->size[1] = c;
    m->stride[0] = sr;
    m->stride[1] = sc;
    m->numel = r * c;
    return m;
}

mg_status mg_linear(mg_ctx *ctx, mg_tensor *out, const mg_tensor *x, const mg_tensor *weight,
                    const mg_tensor *bias) {
    mg_status st = check_float(ctx, out, "linear");
    if (st != MG_OK) return st;
    const mg_dtype dt = (mg_dtype)out->dtype;
    const int64_t O = weight->size[0], I = weight->size[1];
    mg_view_buf vb;
    const mg_tensor *wt = matrix(&vb, weight, I, O, weight->stride[1], weight->stride[0]);
    st = mg_matmul(ctx, out, x, wt);
    if (st != MG_OK || !bias) return st;
    mg_scratch sb;
    const mg_tensor *cb;
    st = flat_as(ctx, bias, dt, &sb, &cb);
    if (st == MG_OK && O > 0)
        add_rows_kernels[ctx->isa][dt](mg_tensor_data(out), mg_tensor_data(cb), out->numel / O, O);
    drop(ctx, &sb);
    return st;
}

/* dW (O, I) = g2^T x2 into out, or added to it (mg_matmul_add) */
static mg_status weight_grad(mg_ctx *ctx, const mg_backward_args *a, mg_tensor *out, bool accumulate) {
    const mg_tensor *x = a->inputs[0], *w = a->inputs[1], *g = a->gout;
    const mg_dtype dt = (mg_dtype)out->dtype;
    const int64_t O = w->size[0], I = w->size[1], M = I ? x->numel / I : 0;
    mg_scratch sx, sg;
    const mg_tensor *cx, *cg;
    sg.s.data = NULL;
    mg_status st = flat_as(ctx, x, dt, &sx, &cx);
    if (st == MG_OK) st = flat_as(ctx, g, dt, &sg, &cg);
    if (st == MG_OK) {
        mg_view_buf vg, vx;
        const mg_tensor *gt = matrix(&vg, cg, O, M, 1, O);
        const mg_tensor *x2 = matrix(&vx, cx, M, I, I, 1);
        st = accumulate ? mg_matmul_add(ctx, out, gt, x2) : mg_matmul(ctx, out, gt, x2);
    }
    drop(ctx, &sg);
    drop(ctx, &sx);
    return st;
}

static mg_status linear_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin) {
    const mg_tensor *w = a->inputs[1], *g = a->gout;
    if (i == 2) {
        /* the common case (contiguous g and gin of one float dtype, gin the bias's (O) shape) in
         * one pass; a single column (a contiguous fold: mg_sum_to's own order) and anything
         * else through mg_sum_to */
        const int64_t O = g->ndim ? g->size[g->ndim - 1] : 0;
        if (O > 1 && gin->ndim == 1 && gin->size[0] == O && gin->dtype == g->dtype &&
            (g->dtype == MG_FLOAT32 || g->dtype == MG_FLOAT64) && mg_is_contiguous(gin) &&
            mg_is_contiguous(g)) {
            mg_sum_columns(ctx->isa, (mg_dtype)g->dtype, mg_tensor_data(gin), mg_tensor_data(g), g->numel / O, O);
            return MG_OK;
        }
        return mg_sum_to(ctx, gin, g);
    }
    if (i == 0) return mg_matmul(ctx, gin, g, w);
    return weight_grad(ctx, a, gin, false);
}

/* dW summed straight into W's .grad (acc += g2^T x2), without the product in a temporary and an
 * add after it: W6's 800 KB weight gradient, a write and a read of it fewer. The bits are those of
 * the temporary and the add: the same product (weight_grad), and with a batch of at most
 * MG_GEMM_KC rows each element's sum is one block, added to acc as the add would add it
 * (mg_matmul_add). Not when acc shares bytes with g or x. An interrupted product (products of
 * 2^20 multiply-adds and more look at mg_interrupt) leaves acc partly summed, as it leaves the
 * other parameters of an interrupted backward. */
static bool linear_weight_grad_into(mg_ctx *ctx, const mg_backward_args *a, mg_tensor *acc, mg_status *st) {
    const mg_tensor *x = a->inputs[0], *w = a->inputs[1];
    const int64_t O = w->size[0], I = w->size[1], M = I ? x->numel / I : 0;
    if (!mg_is_floating((mg_dtype)acc->dtype) || acc->dtype != w->dtype || !mg_same_shape(acc, w) || O < 2 ||
        I < 2 || M < 1 || M > MG_GEMM_KC || acc->storage == x->storage || acc->storage == a->gout->storage)
        return false;
    *st = weight_grad(ctx, a, acc, true);
    return true;
}

bool mg_functional_backward_into(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *acc, mg_status *st) {
    return a->node->op == MG_F_LINEAR && i == 1 && linear_weight_grad_into(ctx, a, acc, st);
}

/* ================================================================ dropout */

/* mask_k = 0 with probability p, else 1 / (1 - p) (so the expectation is kept); y = x mask.
 * Backward: dx = g mask (the mask is saved). */
#define DEFINE_DROPOUT(NAME, T)                                                            \
    static void NAME(mg_rng *rng, void *out, void *maskp, const void *xp, int64_t n, double p) { \
        const T *x = (const T *)xp;                                                        \
        T *o = (T *)out, *mask = (T *)maskp;                                               \
        const T scale = p < 1 ? (T)(1.0 / (1.0 - p)) : 0;                                  \
        for (int64_t i = 0; i < n; i++) {                                                  \
            mask[i] = (double)mg_rng_uniform_f32(rng) >= p ? scale : 0;                    \
            o[i] = x[i] * mask[i];                                                         \
        }                                                                                  \
    }
DEFINE_DROPOUT(dropout_f32, float)
DEFINE_DROPOUT(dropout_f64, double)
typedef void (*dropout_fn)(mg_rng *, void *, void *, const void *, int64_t, double);
static const dropout_fn dropout_kernels[2] = {dropout_f32, dropout_f64};

mg_status mg_dropout(mg_ctx *ctx, mg_tensor *out, mg_tensor *mask, const mg_tensor *x, double p) {
    mg_status st = check_float(ctx, out, "dropout");
    if (st != MG_OK) return st;
    const mg_dtype dt = (mg_dtype)out->dtype;
    mg_scratch sx;
    const mg_tensor *cx;
    st = flat_as(ctx, x, dt, &sx, &cx);
    if (st == MG_OK)
        dropout_kernels[dt](&ctx->rng, mg_tensor_data(out), mg_tensor_data(mask), mg_tensor_data(cx),
                            out->numel, p);
    drop(ctx, &sx);
    return st;
}

/* ================================================================ backward dispatch */

mg_status mg_functional_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin) {
    switch ((mg_functional_op)a->node->op) {
    case MG_F_MODEL: return model_backward(ctx, a, i, gin);
    case MG_F_MSE:
    case MG_F_L1:
    case MG_F_BCE_LOGITS: return pointwise_backward(ctx, a, i, gin);
    case MG_F_CROSS_ENTROPY: return cross_entropy_backward(ctx, a, i, gin);
    case MG_F_SOFTMAX:
    case MG_F_LOG_SOFTMAX: return softmax_backward(ctx, a, gin);
    case MG_F_LINEAR: return linear_backward(ctx, a, i, gin);
    case MG_F_DROPOUT: return mg_binary(ctx, MG_BIN_MUL, gin, a->gout, a->saved[0]);
    case MG_F_NLL: return nll_backward(ctx, a, i, gin);
    case MG_F_BCE: return bce_backward(ctx, a, i, gin);
    case MG_F_SMOOTH_L1:
    case MG_F_HUBER: return robust_backward(ctx, a, i, gin);
    default: return mg_fail(ctx, MG_EVALUE, 0, "unknown functional op %d", (int)a->node->op);
    }
}
