/*
 * unary.c: elementwise ops of one tensor: exp log sqrt rsqrt sin cos tanh sigmoid log1p expm1
 * abs relu floor ceil round sign square clamp. (neg and pow are binary ops, in binary.c.)
 *
 * Each op is one line per dtype below: DEFINE_UNARY(name_dtype, T, expression in x), where `e`
 * (the op's extra argument, clamp's bounds) is also in scope. The macro writes a contiguous loop
 * and a strided one; input and output share the dtype T (mg_unary converts the input first).
 * Next to each op, its derivative in one comment: autograd (#4) adds the backward rules there.
 * "keeps y" marks a rule that needs the output rather than the input.
 *
 * To add an op: a line in MG_UNARY_OPS (unary.h), its DEFINE_UNARY lines, its row in `kernels`,
 * one line in src/bind/unary.c.
 */
#include <math.h>

#include "ops.h"
#include "unary.h"

#define DEFINE_UNARY(NAME, T, EXPR)                                                     \
    static void NAME(char **p, const int64_t *s, int64_t n, const void *extra) {       \
        const mg_clamp_bounds *e = (const mg_clamp_bounds *)extra;                      \
        (void)e;                                                                        \
        if (s[0] == sizeof(T) && s[1] == sizeof(T)) { /* may alias exactly: no restrict */ \
            T *o = (T *)p[0];                                                           \
            const T *in = (const T *)p[1];                                              \
            for (int64_t i = 0; i < n; i++) { const T x = in[i]; o[i] = (EXPR); }       \
        } else {                                                                        \
            char *o = p[0];                                                             \
            const char *in = p[1];                                                      \
            for (int64_t i = 0; i < n; i++, o += s[0], in += s[1]) {                    \
                const T x = *(const T *)in;                                             \
                *(T *)o = (EXPR);                                                       \
            }                                                                           \
        }                                                                               \
    }

/* 1 / (1 + e^-x) without overflow: e^x is only taken of a non-positive number. */
static inline float stable_sigmoidf(float x) {
    if (x >= 0) return 1.0f / (1.0f + expf(-x));
    const float z = expf(x);
    return z / (1.0f + z);
}
static inline double stable_sigmoid(double x) {
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    const double z = exp(x);
    return z / (1.0 + z);
}

/* |INT64_MIN| wraps to itself as in PyTorch (unsigned math: signed overflow is undefined in C) */
#define IABS(x) ((int64_t)((x) < 0 ? 0 - (uint64_t)(x) : (uint64_t)(x)))
#define ISQUARE(x) ((int64_t)((uint64_t)(x) * (uint64_t)(x)))
/* x < 0 ? 0 : x keeps NaN and -0.0, as torch.relu */
#define RELU(x) ((x) < 0 ? 0 : (x))
/* NaN gives 0, as torch.sign */
#define SIGN(T, x) ((T)(((x) > 0) - ((x) < 0)))
/* min(max(x, lo), hi): NaN in x propagates (both tests fail); lo > hi gives hi, as torch.clamp */
#define CLAMP_LO(x, lo) ((x) < (lo) ? (lo) : (x))
#define CLAMP(x, lo, hi) (CLAMP_LO(x, lo) > (hi) ? (hi) : CLAMP_LO(x, lo))

DEFINE_UNARY(exp_f32, float, expf(x))             /* dx = dy * y (keeps y) */
DEFINE_UNARY(exp_f64, double, exp(x))
DEFINE_UNARY(log_f32, float, logf(x))             /* dx = dy / x */
DEFINE_UNARY(log_f64, double, log(x))
DEFINE_UNARY(sqrt_f32, float, sqrtf(x))           /* dx = dy / (2 y) (keeps y) */
DEFINE_UNARY(sqrt_f64, double, sqrt(x))
DEFINE_UNARY(rsqrt_f32, float, 1.0f / sqrtf(x))   /* dx = -dy * y^3 / 2 (keeps y) */
DEFINE_UNARY(rsqrt_f64, double, 1.0 / sqrt(x))
DEFINE_UNARY(sin_f32, float, sinf(x))             /* dx = dy * cos(x) */
DEFINE_UNARY(sin_f64, double, sin(x))
DEFINE_UNARY(cos_f32, float, cosf(x))             /* dx = -dy * sin(x) */
DEFINE_UNARY(cos_f64, double, cos(x))
DEFINE_UNARY(tanh_f32, float, tanhf(x))           /* dx = dy * (1 - y^2) (keeps y) */
DEFINE_UNARY(tanh_f64, double, tanh(x))
DEFINE_UNARY(sigmoid_f32, float, stable_sigmoidf(x))  /* dx = dy * y * (1 - y) (keeps y) */
DEFINE_UNARY(sigmoid_f64, double, stable_sigmoid(x))
DEFINE_UNARY(log1p_f32, float, log1pf(x))         /* dx = dy / (1 + x) */
DEFINE_UNARY(log1p_f64, double, log1p(x))
DEFINE_UNARY(expm1_f32, float, expm1f(x))         /* dx = dy * (y + 1) (keeps y) */
DEFINE_UNARY(expm1_f64, double, expm1(x))
DEFINE_UNARY(abs_f32, float, fabsf(x))            /* dx = dy * sign(x) */
DEFINE_UNARY(abs_f64, double, fabs(x))
DEFINE_UNARY(abs_i64, int64_t, IABS(x))
DEFINE_UNARY(relu_f32, float, RELU(x))            /* dx = dy * (x > 0) */
DEFINE_UNARY(relu_f64, double, RELU(x))
DEFINE_UNARY(relu_i64, int64_t, RELU(x))
DEFINE_UNARY(floor_f32, float, floorf(x))         /* dx = 0 */
DEFINE_UNARY(floor_f64, double, floor(x))
DEFINE_UNARY(ceil_f32, float, ceilf(x))           /* dx = 0 */
DEFINE_UNARY(ceil_f64, double, ceil(x))
DEFINE_UNARY(round_f32, float, nearbyintf(x))     /* dx = 0; half to even (default rounding mode) */
DEFINE_UNARY(round_f64, double, nearbyint(x))
DEFINE_UNARY(identity_i64, int64_t, x)            /* floor, ceil and round of an integer */
DEFINE_UNARY(sign_f32, float, SIGN(float, x))     /* dx = 0 */
DEFINE_UNARY(sign_f64, double, SIGN(double, x))
DEFINE_UNARY(sign_i64, int64_t, SIGN(int64_t, x))
DEFINE_UNARY(sign_bool, bool, x)
DEFINE_UNARY(square_f32, float, x * x)            /* dx = 2 dy x */
DEFINE_UNARY(square_f64, double, x * x)
DEFINE_UNARY(square_i64, int64_t, ISQUARE(x))
DEFINE_UNARY(clamp_f32, float, CLAMP(x, (float)e->lo, (float)e->hi)) /* dx = dy * (lo <= x <= hi) */
DEFINE_UNARY(clamp_f64, double, CLAMP(x, e->lo, e->hi))
DEFINE_UNARY(clamp_i64, int64_t, CLAMP(x, e->ilo, e->ihi))

/* [op][dtype: float32, float64, int64, bool]; NULL: mg_unary_dtype never gives that dtype */
static const mg_inner_fn kernels[MG_NUNARY][MG_NDTYPES] = {
    [MG_UN_EXP] = {exp_f32, exp_f64, NULL, NULL},
    [MG_UN_LOG] = {log_f32, log_f64, NULL, NULL},
    [MG_UN_SQRT] = {sqrt_f32, sqrt_f64, NULL, NULL},
    [MG_UN_RSQRT] = {rsqrt_f32, rsqrt_f64, NULL, NULL},
    [MG_UN_SIN] = {sin_f32, sin_f64, NULL, NULL},
    [MG_UN_COS] = {cos_f32, cos_f64, NULL, NULL},
    [MG_UN_TANH] = {tanh_f32, tanh_f64, NULL, NULL},
    [MG_UN_SIGMOID] = {sigmoid_f32, sigmoid_f64, NULL, NULL},
    [MG_UN_LOG1P] = {log1p_f32, log1p_f64, NULL, NULL},
    [MG_UN_EXPM1] = {expm1_f32, expm1_f64, NULL, NULL},
    [MG_UN_ABS] = {abs_f32, abs_f64, abs_i64, NULL},
    [MG_UN_RELU] = {relu_f32, relu_f64, relu_i64, NULL},
    [MG_UN_FLOOR] = {floor_f32, floor_f64, identity_i64, NULL},
    [MG_UN_CEIL] = {ceil_f32, ceil_f64, identity_i64, NULL},
    [MG_UN_ROUND] = {round_f32, round_f64, identity_i64, NULL},
    [MG_UN_SIGN] = {sign_f32, sign_f64, sign_i64, sign_bool},
    [MG_UN_SQUARE] = {square_f32, square_f64, square_i64, NULL},
    [MG_UN_CLAMP] = {clamp_f32, clamp_f64, clamp_i64, NULL},
};

#define MG_NAME_UNARY(e, name, kind) name,
static const char *const names[MG_NUNARY] = {MG_UNARY_OPS(MG_NAME_UNARY)};
#define MG_KIND_UNARY(e, name, kind) kind,
static const int kinds[MG_NUNARY] = {MG_UNARY_OPS(MG_KIND_UNARY)};

const char *mg_unary_name(mg_unary_op op) { return names[op]; }

mg_status mg_unary_dtype(mg_ctx *ctx, mg_unary_op op, mg_dtype in, mg_dtype *out) {
    *out = in;
    if (mg_is_floating(in)) return MG_OK;
    switch (kinds[op]) {
    case MG_UNARY_FLOAT: *out = ctx->default_dtype; return MG_OK;
    case MG_UNARY_ALL: return MG_OK;
    case MG_UNARY_WIDEN: *out = MG_INT64; return MG_OK;
    default:
        if (in != MG_BOOL) return MG_OK;
        return mg_fail(ctx, MG_EDTYPE, 1, "expected a float32, float64 or int64 tensor, got bool");
    }
}

/* out <- kernel(in) with in converted to out's dtype first (in place in out: no scratch). */
static mg_status run(mg_ctx *ctx, mg_unary_op op, mg_tensor *out, const mg_tensor *in,
                     const void *extra) {
    const mg_inner_fn fn = kernels[op][out->dtype];
    if (!fn)
        return mg_fail(ctx, MG_EDTYPE, 1, "'%s' does not take %s tensors", names[op],
                       mg_dtype_name((mg_dtype)out->dtype));
    if (in->dtype != out->dtype) {
        mg_status st = mg_copy(ctx, out, in);
        if (st != MG_OK) return st;
        in = out;
    }
    const mg_tensor *ops[2] = {out, in};
    mg_iter it;
    mg_iter_init(&it, 2, ops);
    mg_iter_run_parallel(ctx, &it, fn, extra);
    return MG_OK;
}

mg_status mg_unary(mg_ctx *ctx, mg_unary_op op, mg_tensor *out, const mg_tensor *in) {
    static const mg_clamp_bounds open = {-INFINITY, INFINITY, INT64_MIN, INT64_MAX};
    return run(ctx, op, out, in, &open); /* clamp without bounds is a copy */
}

mg_status mg_clamp(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in, const mg_clamp_bounds *b) {
    return run(ctx, MG_UN_CLAMP, out, in, b);
}

/* ---- backward ------------------------------------------------------------------------------ */
/* With g = d loss / d y, each op's rule is the comment next to its kernels above. A rule reads v:
 * the output y for the ops marked "keeps y", the input x for the others. The binding saves y
 * exactly for the "keeps y" ops, so node->nsaved tells which. floor ceil round sign have a zero
 * gradient (recorded anyway, as PyTorch, so the graph goes on with zeros). Each rule is one line
 * per dtype: DEFINE_GRAD(name_dtype, T, expression in g and v), `e` being clamp's bounds (from
 * node->darg). Inputs that require grad are floating, and so is g. */
#include "../core/autograd.h"

#define DEFINE_GRAD(NAME, T, EXPR)                                                      \
    static void NAME(char **p, const int64_t *s, int64_t n, const void *extra) {       \
        const mg_clamp_bounds *e = (const mg_clamp_bounds *)extra;                      \
        (void)e;                                                                        \
        if (s[0] == sizeof(T) && s[1] == sizeof(T) && s[2] == sizeof(T)) {              \
            T *restrict o = (T *)p[0];                                                  \
            const T *gp = (const T *)p[1], *vp = (const T *)p[2];                       \
            for (int64_t i = 0; i < n; i++) { const T g = gp[i], v = vp[i]; o[i] = (EXPR); } \
            return;                                                                     \
        }                                                                               \
        char *o = p[0];                                                                 \
        const char *gp = p[1], *vp = p[2];                                              \
        for (int64_t i = 0; i < n; i++, o += s[0], gp += s[1], vp += s[2]) {            \
            const T g = *(const T *)gp, v = *(const T *)vp;                             \
            *(T *)o = (EXPR);                                                           \
        }                                                                               \
    }
/* (x > 0) - (x < 0): abs's derivative, 0 at 0 as PyTorch */
#define SGN(T, x) ((T)(((x) > 0) - ((x) < 0)))
DEFINE_GRAD(exp_grad_f32, float, g * v)
DEFINE_GRAD(exp_grad_f64, double, g * v)
DEFINE_GRAD(log_grad_f32, float, g / v)
DEFINE_GRAD(log_grad_f64, double, g / v)
DEFINE_GRAD(sqrt_grad_f32, float, g / (2 * v))
DEFINE_GRAD(sqrt_grad_f64, double, g / (2 * v))
DEFINE_GRAD(rsqrt_grad_f32, float, -0.5f * g * v * v * v)
DEFINE_GRAD(rsqrt_grad_f64, double, -0.5 * g * v * v * v)
DEFINE_GRAD(sin_grad_f32, float, g * cosf(v))
DEFINE_GRAD(sin_grad_f64, double, g * cos(v))
DEFINE_GRAD(cos_grad_f32, float, -g * sinf(v))
DEFINE_GRAD(cos_grad_f64, double, -g * sin(v))
DEFINE_GRAD(tanh_grad_f32, float, g * (1 - v * v))
DEFINE_GRAD(tanh_grad_f64, double, g * (1 - v * v))
DEFINE_GRAD(sigmoid_grad_f32, float, g * v * (1 - v))
DEFINE_GRAD(sigmoid_grad_f64, double, g * v * (1 - v))
DEFINE_GRAD(log1p_grad_f32, float, g / (1 + v))
DEFINE_GRAD(log1p_grad_f64, double, g / (1 + v))
DEFINE_GRAD(expm1_grad_f32, float, g * (v + 1))
DEFINE_GRAD(expm1_grad_f64, double, g * (v + 1))
DEFINE_GRAD(abs_grad_f32, float, g * SGN(float, v))
DEFINE_GRAD(abs_grad_f64, double, g * SGN(double, v))
DEFINE_GRAD(relu_grad_f32, float, v > 0 ? g : 0)
DEFINE_GRAD(relu_grad_f64, double, v > 0 ? g : 0)
DEFINE_GRAD(square_grad_f32, float, 2 * g * v)
DEFINE_GRAD(square_grad_f64, double, 2 * g * v)
/* g passes where lo <= x <= hi (bounds included, NaN x gives 0), as PyTorch's clamp_backward */
DEFINE_GRAD(clamp_grad_f32, float, v >= (float)e->lo && v <= (float)e->hi ? g : 0)
DEFINE_GRAD(clamp_grad_f64, double, v >= e->lo && v <= e->hi ? g : 0)

/* [op][float32, float64]; NULL: a zero gradient */
static const mg_inner_fn grads[MG_NUNARY][2] = {
    [MG_UN_EXP] = {exp_grad_f32, exp_grad_f64},
    [MG_UN_LOG] = {log_grad_f32, log_grad_f64},
    [MG_UN_SQRT] = {sqrt_grad_f32, sqrt_grad_f64},
    [MG_UN_RSQRT] = {rsqrt_grad_f32, rsqrt_grad_f64},
    [MG_UN_SIN] = {sin_grad_f32, sin_grad_f64},
    [MG_UN_COS] = {cos_grad_f32, cos_grad_f64},
    [MG_UN_TANH] = {tanh_grad_f32, tanh_grad_f64},
    [MG_UN_SIGMOID] = {sigmoid_grad_f32, sigmoid_grad_f64},
    [MG_UN_LOG1P] = {log1p_grad_f32, log1p_grad_f64},
    [MG_UN_EXPM1] = {expm1_grad_f32, expm1_grad_f64},
    [MG_UN_ABS] = {abs_grad_f32, abs_grad_f64},
    [MG_UN_RELU] = {relu_grad_f32, relu_grad_f64},
    [MG_UN_SQUARE] = {square_grad_f32, square_grad_f64},
    [MG_UN_CLAMP] = {clamp_grad_f32, clamp_grad_f64},
};


mg_status mg_unary_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin) {
    (void)i;
    const mg_unary_op op = (mg_unary_op)a->node->op;
    const mg_tensor *g = a->gout;
    const mg_dtype dt = (mg_dtype)g->dtype;
    if (!grads[op][0]) return mg_fill(ctx, gin, 0, 0); /* floor ceil round sign */
    if (dt != MG_FLOAT32 && dt != MG_FLOAT64)
        return mg_fail(ctx, MG_EDTYPE, 0, "'%s' has no gradient for %s tensors", names[op],
                       mg_dtype_name(dt));
    const mg_clamp_bounds bounds = {a->node->darg[0], a->node->darg[1], INT64_MIN, INT64_MAX};
    /* the rule computes in g's dtype; input and gin have it unless the forward promoted */
    mg_scratch sv, sout;
    const mg_tensor *v;
    sout.s.data = NULL;
    mg_status st = mg_scratch_as(ctx, a->node->nsaved ? a->saved[0] : a->inputs[0], dt, &sv, &v);
    mg_tensor *o = gin;
    if (st == MG_OK && gin->dtype != dt) {
        st = mg_scratch_new(ctx, &sout, dt, gin->ndim, gin->size);
        o = &sout.t;
    }
    if (st == MG_OK) {
        const mg_tensor *ops[3] = {o, g, v};
        mg_iter it;
        mg_iter_init(&it, 3, ops);
        mg_iter_run_parallel(ctx, &it, grads[op][dt == MG_FLOAT64], &bounds);
        if (o != gin) st = mg_copy(ctx, gin, o);
    }
    if (sout.s.data) mg_scratch_free(ctx, &sout);
    if (sv.s.data) mg_scratch_free(ctx, &sv);
    return st;
}
