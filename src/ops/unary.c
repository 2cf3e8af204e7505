/*
 * unary.c: elementwise ops of one tensor, forward and backward side by side. The list of ops and
 * what each column means is MG_UNARY_OPS in unary.h.
 *
 * Each op is a block below: a comment with its math, its kernel as an expression in x (one line
 * for both float dtypes (MG_MATH(exp, x) calls expf for a float x, exp for a double); INT_ and
 * BOOL_KERNEL lines where the list says FI / FIB), and its derivative as an expression in g
 * (d loss / d y) and v (x, or y where the list says OUTPUT). `e` is the op's extra argument
 * (clamp's bounds) and `scalar` the element type. The macros write the loops that matter
 * (contiguous and strided), once per instruction set (MG_ISA_STAMP, src/core/cpu.h); the tables
 * at the end are made from the list and indexed by ctx->isa.
 */
#include "../core/cpu.h"
#include "grad.h"
#include "ops.h"
#include "scalar.h"
#include "unary.h"
#include "vmath.h"

/* y <- EXPR(x), in type T; may alias exactly (in-place ops): no restrict */
#define DEFINE_UNARY(NAME, T, EXPR) MG_ISA_STAMP(UNARY_LOOPS, NAME, T, EXPR)
#define UNARY_LOOPS(ISA, NAME, T, EXPR)                                                 \
    static void MG_ISA_FN(NAME, ISA)(char **p, const int64_t *s, int64_t n, const void *extra) { \
        typedef T scalar __attribute__((unused));                                       \
        const mg_clamp_bounds *e = (const mg_clamp_bounds *)extra;                      \
        (void)e;                                                                        \
        if (s[0] == sizeof(T) && s[1] == sizeof(T)) {                                   \
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
/* dx <- EXPR(g, v), in type T */
#define DEFINE_GRAD(NAME, T, EXPR) MG_ISA_STAMP(GRAD_LOOPS, NAME, T, EXPR)
#define GRAD_LOOPS(ISA, NAME, T, EXPR)                                                  \
    static void MG_ISA_FN(NAME, ISA)(char **p, const int64_t *s, int64_t n, const void *extra) { \
        typedef T scalar __attribute__((unused));                                       \
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
#define FLOAT_KERNEL(op, EXPR) DEFINE_UNARY(op##_f32, float, EXPR) DEFINE_UNARY(op##_f64, double, EXPR)
#define INT_KERNEL(op, EXPR) DEFINE_UNARY(op##_i64, int64_t, EXPR)
#define BOOL_KERNEL(op, EXPR) DEFINE_UNARY(op##_bool, bool, EXPR)
#define GRAD(op, EXPR) DEFINE_GRAD(op##_grad_f32, float, EXPR) DEFINE_GRAD(op##_grad_f64, double, EXPR)

/* 1 / (1 + e^-x) without overflow: e^x is only taken of a non-positive number. */
static inline double stable_sigmoid(double x) {
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    const double z = exp(x);
    return z / (1.0 + z);
}
#define SIGMOID(x) _Generic((x), float: mg_sigmoidf, double: stable_sigmoid)(x) /* vmath.h */
/* |INT64_MIN| wraps to itself as in PyTorch (unsigned math: signed overflow is undefined in C) */
#define IABS(x) ((int64_t)((x) < 0 ? 0 - (uint64_t)(x) : (uint64_t)(x)))
/* min(max(x, lo), hi): NaN in x propagates (both tests fail); lo > hi gives hi, as torch.clamp */
#define CLAMP_LO(x, lo) ((x) < (lo) ? (lo) : (x))
#define CLAMPED(x, lo, hi) (CLAMP_LO(x, lo) > (hi) ? (hi) : CLAMP_LO(x, lo))

/* exp: y = e^x; dx = dy y (float32: vmath.h, vectorized) */
FLOAT_KERNEL(exp, MG_VMATH(exp, x))
GRAD(exp, g * v)
/* log: y = ln x; dx = dy / x */
FLOAT_KERNEL(log, MG_VMATH(log, x))
GRAD(log, g / v)
/* sqrt: y = x^(1/2); dx = dy / (2 y) */
FLOAT_KERNEL(sqrt, MG_MATH(sqrt, x))
GRAD(sqrt, g / (2 * v))
/* rsqrt: y = x^(-1/2); dx = -dy y^3 / 2 */
FLOAT_KERNEL(rsqrt, 1 / MG_MATH(sqrt, x))
GRAD(rsqrt, -g / 2 * v * v * v)
/* sin: dx = dy cos x */
FLOAT_KERNEL(sin, MG_MATH(sin, x))
GRAD(sin, g * MG_MATH(cos, v))
/* cos: dx = -dy sin x */
FLOAT_KERNEL(cos, MG_MATH(cos, x))
GRAD(cos, -g * MG_MATH(sin, v))
/* tanh: dx = dy (1 - y^2) */
FLOAT_KERNEL(tanh, MG_VMATH(tanh, x))
GRAD(tanh, g * (1 - v * v))
/* sigmoid: y = 1 / (1 + e^-x); dx = dy y (1 - y) */
FLOAT_KERNEL(sigmoid, SIGMOID(x))
GRAD(sigmoid, g * v * (1 - v))
/* log1p: y = ln(1 + x); dx = dy / (1 + x) */
FLOAT_KERNEL(log1p, MG_MATH(log1p, x))
GRAD(log1p, g / (1 + v))
/* expm1: y = e^x - 1; dx = dy (y + 1) */
FLOAT_KERNEL(expm1, MG_MATH(expm1, x))
GRAD(expm1, g * (v + 1))
/* abs: dx = dy sign(x), 0 at 0 as PyTorch */
FLOAT_KERNEL(abs, MG_MATH(fabs, x))
INT_KERNEL(abs, IABS(x))
GRAD(abs, g * MG_SIGN_OF(v))
/* relu: y = max(x, 0); dx = dy (x > 0) */
FLOAT_KERNEL(relu, MG_RELU(x))
INT_KERNEL(relu, MG_RELU(x))
GRAD(relu, v > 0 ? g : 0)
/* floor, ceil, round (half to even: the default rounding mode): a zero gradient; integers are
 * their own floor, ceil and round. Exact whatever the code, but GCC vectorizes libm's floorf
 * (roundps, vrndscaleps) only where floating point may not trap: floor of 256k floats took 71 us
 * as a call an element, PyTorch 23; these three float kernels (and nothing else) are compiled so. */
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")
FLOAT_KERNEL(floor, MG_MATH(floor, x))
FLOAT_KERNEL(ceil, MG_MATH(ceil, x))
FLOAT_KERNEL(round, MG_MATH(nearbyint, x))
#pragma GCC pop_options
INT_KERNEL(floor, x)
INT_KERNEL(ceil, x)
INT_KERNEL(round, x)
/* sign: -1, 0 or 1 (NaN gives 0, as torch.sign); a zero gradient */
FLOAT_KERNEL(sign, MG_SIGN_OF(x))
INT_KERNEL(sign, MG_SIGN_OF(x))
BOOL_KERNEL(sign, x)
/* square: dx = 2 dy x; int64 wraps around */
FLOAT_KERNEL(square, x * x)
INT_KERNEL(square, MG_WRAP(*, x, x))
GRAD(square, 2 * g * v)
/* clamp: y = min(max(x, lo), hi); dx = dy where lo <= x <= hi (bounds included, NaN x gives 0), as
 * PyTorch's clamp_backward */
FLOAT_KERNEL(clamp, CLAMPED(x, (scalar)e->lo, (scalar)e->hi))
INT_KERNEL(clamp, CLAMPED(x, e->ilo, e->ihi))
GRAD(clamp, v >= (scalar)e->lo && v <= (scalar)e->hi ? g : 0)

/* ---- activations (parametric ones read p0 = e->lo, p1 = e->hi: see mg_unary_param) --------
 * Each is PyTorch 1.13's formula (aten/src/ATen/native/cpu/Activation.cpp), in the element type,
 * with its constants rounded to it as there. Written once per type below (T, and the libm names
 * through MG_MATH; exp and tanh through MG_VMATH: vmath.h's vectorizable ones for float32). */
#define DEFINE_ACTIVATIONS(T, SUF)                                                              \
    /* silu: y = x / (1 + e^-x); dx = dy s (1 + x (1 - s)), s = sigmoid(x) */                   \
    static inline T silu_##SUF(T x) { return x / ((T)1 + MG_VMATH(exp, -x)); }                   \
    static inline T dsilu_##SUF(T g, T x) {                                                     \
        const T s = (T)1 / ((T)1 + MG_VMATH(exp, -x));                                           \
        return g * s * ((T)1 + x * ((T)1 - s));                                                 \
    }                                                                                           \
    /* gelu: y = x Phi(x) = x (1 + erf(x / sqrt 2)) / 2; dx = dy (Phi(x) + x phi(x));           \
     * tanh form: y = x (1 + tanh(b (x + k x^3))) / 2, b = sqrt(2 / pi), k = 0.044715 */        \
    static inline T gelu_##SUF(T x, double mode) {                                              \
        if (mode == 0) return x * (T)0.5 * ((T)1 + MG_MATH(erf, x * (T)M_SQRT1_2));             \
        const T b = (T)(M_SQRT2 * M_2_SQRTPI * 0.5), k = (T)0.044715;                           \
        const T inner = b * (x + k * (x * x * x));                                              \
        return (T)0.5 * x * ((T)1 + MG_VMATH(tanh, inner));                                      \
    }                                                                                           \
    static inline T dgelu_##SUF(T g, T x, double mode) {                                        \
        if (mode == 0) {                                                                        \
            const T a = (T)(M_2_SQRTPI * M_SQRT1_2 * 0.5);                                      \
            const T cdf = (T)0.5 * ((T)1 + MG_MATH(erf, x * (T)M_SQRT1_2));                     \
            const T pdf = a * MG_VMATH(exp, x * x * (T)-0.5);                                    \
            return g * (cdf + x * pdf);                                                         \
        }                                                                                       \
        const T b = (T)(M_SQRT2 * M_2_SQRTPI * 0.5), k = (T)0.044715;                           \
        const T x2 = x * x, inner = b * (x + k * (x2 * x)), th = MG_VMATH(tanh, inner);          \
        const T left = (T)0.5 * x, dleft = (T)0.5 * ((T)1 + th);                                \
        const T dright = left * ((T)1 - th * th) * (b * ((T)1 + (T)3 * k * x2));                \
        return g * (dleft + dright);                                                            \
    }                                                                                           \
    /* softplus: y = x when beta x > threshold, else log(1 + e^(beta x)) / beta;                \
     * dx = dy, or dy z / (z + 1) with z = e^(beta x) */                                        \
    static inline T softplus_##SUF(T x, double beta, double threshold) {                        \
        const T bx = x * (T)beta;                                                               \
        return bx > (T)threshold ? x : MG_MATH(log1p, MG_VMATH(exp, bx)) / (T)beta;              \
    }                                                                                           \
    static inline T dsoftplus_##SUF(T g, T x, double beta, double threshold) {                  \
        const T bx = x * (T)beta;                                                               \
        if (bx > (T)threshold) return g;                                                        \
        const T z = MG_VMATH(exp, bx);                                                           \
        return g * z / (z + (T)1);                                                              \
    }
DEFINE_ACTIVATIONS(float, f32)
DEFINE_ACTIVATIONS(double, f64)
#define ACT(fn, x, ...) _Generic((x), float: fn##_f32, double: fn##_f64)(x, ##__VA_ARGS__)
#define DACT(fn, g, x, ...) _Generic((x), float: d##fn##_f32, double: d##fn##_f64)(g, x, ##__VA_ARGS__)

/* silu (swish) */
FLOAT_KERNEL(silu, ACT(silu, x))
GRAD(silu, DACT(silu, g, v))
/* gelu, p0 selects the form */
FLOAT_KERNEL(gelu, ACT(gelu, x, e->lo))
GRAD(gelu, DACT(gelu, g, v, e->lo))
/* leaky_relu: y = x > 0 ? x : slope x; dx = dy or slope dy (NaN gives NaN, as PyTorch) */
FLOAT_KERNEL(leaky_relu, x > 0 ? x : x * (scalar)e->lo)
GRAD(leaky_relu, v > 0 ? g : g * (scalar)e->lo)
/* elu: y = x > 0 ? x : alpha (e^x - 1) (expm1, as PyTorch's vectorized kernel);
 * dx = dy where x > 0, else dy alpha e^x (NaN takes that side, as PyTorch's blend) */
FLOAT_KERNEL(elu, x > 0 ? x : MG_MATH(expm1, x) * (scalar)e->lo)
GRAD(elu, v > 0 ? g : g * (scalar)e->lo * MG_VMATH(exp, v))
/* softplus, p0 beta, p1 threshold */
FLOAT_KERNEL(softplus, ACT(softplus, x, e->lo, e->hi))
GRAD(softplus, DACT(softplus, g, v, e->lo, e->hi))

/* ---- the tables, made from MG_UNARY_OPS ------------------------------------------------------ */
enum { DTYPES_FLOAT, DTYPES_KEEP, DTYPES_ALL, DTYPES_WIDEN };
enum { READS_INPUT, READS_OUTPUT, READS_NONE };

#define GRADS_INPUT(op, isa) {op##_grad_f32_##isa, op##_grad_f64_##isa}
#define GRADS_OUTPUT(op, isa) GRADS_INPUT(op, isa)
#define GRADS_NONE(op, isa) {NULL, NULL}

#define NAME(OP, op, ...) #op,
static const char *const names[MG_NUNARY] = {MG_UNARY_OPS(NAME)};
#define DTYPES(OP, op, dtypes, ...) DTYPES_##dtypes,
static const uint8_t dtype_rules[MG_NUNARY] = {MG_UNARY_OPS(DTYPES)};
#define READS(OP, op, dtypes, kernels, reads) READS_##reads,
static const uint8_t reads[MG_NUNARY] = {MG_UNARY_OPS(READS)};
/* [op][isa][dtype: float32, float64, int64, bool]; NULL: mg_unary_dtype never gives that dtype */
#define KERNELS(OP, op, dtypes, kernels, reads) MG_ISA_ROW(MG_KERNELS_##kernels, op),
static const mg_inner_fn kernels[MG_NUNARY][MG_NISA][MG_NDTYPES] = {MG_UNARY_OPS(KERNELS)};
/* [op][isa][float32, float64]; NULL: a zero gradient */
#define GRADS(OP, op, dtypes, kernels, reads) MG_ISA_ROW(GRADS_##reads, op),
static const mg_inner_fn grads[MG_NUNARY][MG_NISA][2] = {MG_UNARY_OPS(GRADS)};

const char *mg_unary_name(mg_unary_op op) { return names[op]; }
bool mg_unary_reads_output(mg_unary_op op) { return reads[op] == READS_OUTPUT; }

mg_status mg_unary_dtype(mg_ctx *ctx, mg_unary_op op, mg_dtype in, mg_dtype *out) {
    *out = in;
    if (mg_is_floating(in)) return MG_OK;
    switch (dtype_rules[op]) {
    case DTYPES_FLOAT: *out = ctx->default_dtype; return MG_OK;
    case DTYPES_ALL: return MG_OK;
    case DTYPES_WIDEN: *out = MG_INT64; return MG_OK;
    default:
        if (in != MG_BOOL) return MG_OK;
        return mg_fail(ctx, MG_EDTYPE, 1, "expected a float32, float64 or int64 tensor, got bool");
    }
}

/* out <- kernel(in) with in converted to out's dtype first (in place in out: no scratch). */
static mg_status run(mg_ctx *ctx, mg_unary_op op, mg_tensor *out, const mg_tensor *in,
                     const void *extra) {
    const mg_inner_fn fn = kernels[op][ctx->isa][out->dtype];
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
    switch (op) { /* the parametric activations with PyTorch's defaults */
    case MG_UN_GELU: return mg_unary_param(ctx, op, out, in, 0, 0);
    case MG_UN_LEAKY_RELU: return mg_unary_param(ctx, op, out, in, 0.01, 0);
    case MG_UN_ELU: return mg_unary_param(ctx, op, out, in, 1, 0);
    case MG_UN_SOFTPLUS: return mg_unary_param(ctx, op, out, in, 1, 20);
    default: return run(ctx, op, out, in, &open); /* clamp without bounds is a copy */
    }
}

mg_status mg_clamp(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in, const mg_clamp_bounds *b) {
    return run(ctx, MG_UN_CLAMP, out, in, b);
}

mg_status mg_unary_param(mg_ctx *ctx, mg_unary_op op, mg_tensor *out, const mg_tensor *in, double p0,
                         double p1) {
    const mg_clamp_bounds params = {p0, p1, INT64_MIN, INT64_MAX};
    return run(ctx, op, out, in, &params);
}

/* d loss / d x: the op's GRAD expression over g and v (x, or the saved y where the list says
 * OUTPUT), computed in g's dtype. */
mg_status mg_unary_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin) {
    (void)i;
    const mg_unary_op op = (mg_unary_op)a->node->op;
    const mg_tensor *g = a->gout;
    const mg_dtype dt = (mg_dtype)g->dtype;
    if (!grads[op][0][0]) return mg_fill(ctx, gin, 0, 0); /* floor ceil round sign */
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
        mg_iter_run_parallel(ctx, &it, grads[op][ctx->isa][dt == MG_FLOAT64], &bounds);
        if (o != gin) st = mg_copy(ctx, gin, o);
    }
    if (sout.s.data) mg_scratch_free(ctx, &sout);
    if (sv.s.data) mg_scratch_free(ctx, &sv);
    return st;
}
