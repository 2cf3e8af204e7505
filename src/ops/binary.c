/*
 * binary.c: elementwise ops of two operands (arithmetic, maximum / minimum, comparisons) and where.
 *
 * Each op is one line per dtype below: DEFINE_BINARY(name_dtype, T, R, expression in a and b),
 * where T is the compute type and R the result type. The macro writes the three loops that matter:
 * both operands contiguous, one of them a broadcast scalar (stride 0), and the general strided
 * case. Promotion is the caller's job: a and b arrive in the compute dtype.
 * Backward rules live with autograd (#4): d(a+b) = (g, g), d(a*b) = (g*b, g*a), ...
 *
 * To add an op: a line in MG_BINARY_OPS (ops.h), its DEFINE_BINARY lines, its row in `kernels`.
 */
#include <math.h>

#include "ops.h"

#define DEFINE_BINARY(NAME, T, R, EXPR)                                                      \
    static void NAME(char **p, const int64_t *s, int64_t n, const void *extra) {             \
        (void)extra;                                                                          \
        if (s[0] == sizeof(R) && s[1] == sizeof(T) && s[2] == sizeof(T)) {                    \
            R *o = (R *)p[0];                                                                 \
            const T *x = (const T *)p[1], *y = (const T *)p[2];                               \
            for (int64_t i = 0; i < n; i++) { const T a = x[i], b = y[i]; o[i] = (EXPR); }    \
        } else if (s[0] == sizeof(R) && s[1] == sizeof(T) && s[2] == 0) {                     \
            R *o = (R *)p[0];                                                                 \
            const T *x = (const T *)p[1];                                                     \
            const T b = *(const T *)p[2];                                                     \
            for (int64_t i = 0; i < n; i++) { const T a = x[i]; o[i] = (EXPR); }              \
        } else if (s[0] == sizeof(R) && s[1] == 0 && s[2] == sizeof(T)) {                     \
            R *o = (R *)p[0];                                                                 \
            const T a = *(const T *)p[1];                                                     \
            const T *y = (const T *)p[2];                                                     \
            for (int64_t i = 0; i < n; i++) { const T b = y[i]; o[i] = (EXPR); }              \
        } else {                                                                              \
            char *o = p[0];                                                                   \
            const char *x = p[1], *y = p[2];                                                  \
            for (int64_t i = 0; i < n; i++, o += s[0], x += s[1], y += s[2]) {                \
                const T a = *(const T *)x, b = *(const T *)y;                                 \
                *(R *)o = (EXPR);                                                             \
            }                                                                                 \
        }                                                                                     \
    }

/* int64 arithmetic wraps around as in PyTorch (unsigned math: signed overflow is undefined in C) */
#define WRAP(op, a, b) ((int64_t)((uint64_t)(a) op (uint64_t)(b)))

static inline int64_t ipow(int64_t base, int64_t e) {
    if (e < 0) return base == 1 ? 1 : base == -1 ? ((e & 1) ? -1 : 1) : 0;
    uint64_t r = 1, b = (uint64_t)base;
    for (uint64_t k = (uint64_t)e; k; k >>= 1, b *= b)
        if (k & 1) r *= b;
    return (int64_t)r;
}

/* NaN-propagating, as torch.maximum */
#define MAX_NAN(a, b) (((a) > (b) || (a) != (a)) ? (a) : (b))
#define MIN_NAN(a, b) (((a) < (b) || (a) != (a)) ? (a) : (b))

DEFINE_BINARY(add_f32, float, float, a + b)
DEFINE_BINARY(add_f64, double, double, a + b)
DEFINE_BINARY(add_i64, int64_t, int64_t, WRAP(+, a, b))
DEFINE_BINARY(add_bool, bool, bool, a || b)
DEFINE_BINARY(sub_f32, float, float, a - b)
DEFINE_BINARY(sub_f64, double, double, a - b)
DEFINE_BINARY(sub_i64, int64_t, int64_t, WRAP(-, a, b))
DEFINE_BINARY(mul_f32, float, float, a * b)
DEFINE_BINARY(mul_f64, double, double, a * b)
DEFINE_BINARY(mul_i64, int64_t, int64_t, WRAP(*, a, b))
DEFINE_BINARY(mul_bool, bool, bool, a && b)
DEFINE_BINARY(div_f32, float, float, a / b)
DEFINE_BINARY(div_f64, double, double, a / b)
/* x^2 (the losses) and x^1 (its gradient) without a call to powf */
DEFINE_BINARY(pow_f32, float, float, b == 2.0f ? a * a : b == 1.0f ? a : powf(a, b))
DEFINE_BINARY(pow_f64, double, double, b == 2.0 ? a * a : b == 1.0 ? a : pow(a, b))
DEFINE_BINARY(pow_i64, int64_t, int64_t, ipow(a, b))
DEFINE_BINARY(maximum_f32, float, float, MAX_NAN(a, b))
DEFINE_BINARY(maximum_f64, double, double, MAX_NAN(a, b))
DEFINE_BINARY(maximum_i64, int64_t, int64_t, a > b ? a : b)
DEFINE_BINARY(maximum_bool, bool, bool, a || b)
DEFINE_BINARY(minimum_f32, float, float, MIN_NAN(a, b))
DEFINE_BINARY(minimum_f64, double, double, MIN_NAN(a, b))
DEFINE_BINARY(minimum_i64, int64_t, int64_t, a < b ? a : b)
DEFINE_BINARY(minimum_bool, bool, bool, a && b)

#define DEFINE_COMPARISON(NAME, OP)                    \
    DEFINE_BINARY(NAME##_f32, float, bool, a OP b)     \
    DEFINE_BINARY(NAME##_f64, double, bool, a OP b)    \
    DEFINE_BINARY(NAME##_i64, int64_t, bool, a OP b)   \
    DEFINE_BINARY(NAME##_bool, bool, bool, a OP b)
DEFINE_COMPARISON(eq, ==)
DEFINE_COMPARISON(ne, !=)
DEFINE_COMPARISON(lt, <)
DEFINE_COMPARISON(le, <=)
DEFINE_COMPARISON(gt, >)
DEFINE_COMPARISON(ge, >=)

/* [op][dtype: float32, float64, int64, bool]; NULL: the dtype is refused (the caller promotes) */
static const mg_inner_fn kernels[MG_NBINARY][MG_NDTYPES] = {
    [MG_BIN_ADD] = {add_f32, add_f64, add_i64, add_bool},
    [MG_BIN_SUB] = {sub_f32, sub_f64, sub_i64, NULL},
    [MG_BIN_MUL] = {mul_f32, mul_f64, mul_i64, mul_bool},
    [MG_BIN_DIV] = {div_f32, div_f64, NULL, NULL},
    [MG_BIN_POW] = {pow_f32, pow_f64, pow_i64, NULL},
    [MG_BIN_MAXIMUM] = {maximum_f32, maximum_f64, maximum_i64, maximum_bool},
    [MG_BIN_MINIMUM] = {minimum_f32, minimum_f64, minimum_i64, minimum_bool},
    [MG_BIN_EQ] = {eq_f32, eq_f64, eq_i64, eq_bool},
    [MG_BIN_NE] = {ne_f32, ne_f64, ne_i64, ne_bool},
    [MG_BIN_LT] = {lt_f32, lt_f64, lt_i64, lt_bool},
    [MG_BIN_LE] = {le_f32, le_f64, le_i64, le_bool},
    [MG_BIN_GT] = {gt_f32, gt_f64, gt_i64, gt_bool},
    [MG_BIN_GE] = {ge_f32, ge_f64, ge_i64, ge_bool},
};

#define MG_NAME_BINARY(e, name) name,
static const char *const names[MG_NBINARY] = {MG_BINARY_OPS(MG_NAME_BINARY)};

const char *mg_binary_name(mg_binary_op op) { return names[op]; }
bool mg_binary_is_comparison(mg_binary_op op) { return op >= MG_BIN_EQ; }

mg_dtype mg_binary_compute_dtype(mg_ctx *ctx, mg_binary_op op, mg_dtype promoted) {
    if (op == MG_BIN_DIV && !mg_is_floating(promoted)) return ctx->default_dtype; /* true division */
    if (op == MG_BIN_POW && promoted == MG_BOOL) return MG_INT64; /* b ^ 2 counts, as PyTorch */
    /* sub stays bool and its kernel refuses it: PyTorch has no bool subtraction */
    return promoted;
}

/* The exponent when b is a floating 0-d tensor (a number operand), else NAN. */
static double scalar_exponent(const mg_tensor *b) {
    if (b->ndim != 0 || !mg_tensor_data(b)) return NAN;
    if (b->dtype == MG_FLOAT32) return *(const float *)mg_tensor_data(b);
    if (b->dtype == MG_FLOAT64) return *(const double *)mg_tensor_data(b);
    return NAN;
}

mg_status mg_binary(mg_ctx *ctx, mg_binary_op op, mg_tensor *out, const mg_tensor *a,
                    const mg_tensor *b) {
    if (op == MG_BIN_POW && a->dtype == b->dtype && scalar_exponent(b) == 2.0)
        return mg_binary(ctx, MG_BIN_MUL, out, a, a); /* x ^ 2 = x * x exactly, and vectorized */
    const mg_inner_fn fn = kernels[op][a->dtype];
    if (!fn || a->dtype != b->dtype)
        return mg_fail(ctx, MG_EDTYPE, 1, "'%s' does not take %s tensors", names[op],
                       mg_dtype_name((mg_dtype)a->dtype));
    if (mg_same_shape(a, b) && mg_same_shape(out, a) && mg_is_contiguous(a) && mg_is_contiguous(b) &&
        mg_is_contiguous(out)) { /* the common case: one run, no iterator set-up */
        char *data[3] = {(char *)mg_tensor_data(out), (char *)mg_tensor_data(a), (char *)mg_tensor_data(b)};
        const int64_t item = (int64_t)mg_dtype_size((mg_dtype)a->dtype);
        const int64_t strides[3] = {(int64_t)mg_dtype_size((mg_dtype)out->dtype), item, item};
        if (out->numel < 2 * MG_GRAIN_ELEMENTWISE) {
            fn(data, strides, out->numel, NULL);
            return MG_OK;
        }
        mg_iter it = {.ndim = 1, .nops = 3, .size = {out->numel}};
        for (int k = 0; k < 3; k++) it.data[k] = data[k], it.stride[k][0] = strides[k];
        mg_iter_run_parallel(ctx, &it, fn, NULL);
        return MG_OK;
    }
    const mg_tensor *ops[3] = {out, a, b};
    mg_iter it;
    mg_iter_init(&it, 3, ops);
    mg_iter_run_parallel(ctx, &it, fn, NULL);
    return MG_OK;
}

/* ---- where(cond, a, b) -------------------------------------------------------------------- */
#define DEFINE_WHERE(NAME, T)                                                                 \
    static void NAME(char **p, const int64_t *s, int64_t n, const void *extra) {             \
        (void)extra;                                                                          \
        char *o = p[0];                                                                       \
        const char *c = p[1], *x = p[2], *y = p[3];                                           \
        for (int64_t i = 0; i < n; i++, o += s[0], c += s[1], x += s[2], y += s[3])           \
            *(T *)o = *(const bool *)c ? *(const T *)x : *(const T *)y;                       \
    }
DEFINE_WHERE(where_f32, float)
DEFINE_WHERE(where_f64, double)
DEFINE_WHERE(where_i64, int64_t)
DEFINE_WHERE(where_bool, bool)
static const mg_inner_fn where_kernels[MG_NDTYPES] = {where_f32, where_f64, where_i64, where_bool};

mg_status mg_where(mg_ctx *ctx, mg_tensor *out, const mg_tensor *cond, const mg_tensor *a,
                   const mg_tensor *b) {
    (void)ctx;
    const mg_tensor *ops[4] = {out, cond, a, b};
    mg_iter it;
    mg_iter_init(&it, 4, ops);
    mg_iter_run_parallel(ctx, &it, where_kernels[out->dtype], NULL);
    return MG_OK;
}

/* ---- backward ------------------------------------------------------------------------------ */
/* With g = d loss / d out (out's shape), the gradients before summing back to each input's shape:
 *   add: g, g            sub: g, -g            mul: g b, g a          div: g / b, -g a / b^2
 *   pow: g b a^(b-1), g out log(a)             maximum / minimum: g where that input was chosen,
 *   half of g to each on ties (as PyTorch). Comparisons give bool and are never recorded. */
#include "../core/autograd.h"
#include "unary.h"


/* full <- op(x, number) */
static mg_status with_number(mg_ctx *ctx, mg_binary_op op, mg_tensor *full, const mg_tensor *x, double v) {
    mg_scalar s;
    mg_scalar_init(&s, (mg_dtype)full->dtype, v, (int64_t)v);
    return mg_binary(ctx, op, full, x, &s.t);
}

/* full <- g * w, where w = (x chosen over y) + 0.5 (x == y) */
static mg_status chosen_share(mg_ctx *ctx, mg_tensor *full, const mg_tensor *g, const mg_tensor *x,
                              const mg_tensor *y, mg_binary_op beats) {
    mg_scratch mask, w;
    mg_status st = mg_scratch_new(ctx, &mask, MG_BOOL, full->ndim, full->size);
    if (st != MG_OK) return st;
    st = mg_scratch_new(ctx, &w, (mg_dtype)full->dtype, full->ndim, full->size);
    if (st == MG_OK) st = mg_binary(ctx, MG_BIN_EQ, &mask.t, x, y);
    if (st == MG_OK) st = mg_copy(ctx, &w.t, &mask.t);
    if (st == MG_OK) st = with_number(ctx, MG_BIN_MUL, &w.t, &w.t, 0.5);
    if (st == MG_OK) st = mg_binary(ctx, beats, &mask.t, x, y);
    if (st == MG_OK) st = mg_copy(ctx, full, &mask.t);
    if (st == MG_OK) st = mg_binary(ctx, MG_BIN_ADD, full, full, &w.t);
    if (st == MG_OK) st = mg_binary(ctx, MG_BIN_MUL, full, full, g);
    if (w.s.data) mg_scratch_free(ctx, &w);
    mg_scratch_free(ctx, &mask);
    return st;
}

/* f <- 0 where (p cmp 0) and, when q is given, q >= 0: PyTorch's choices for pow at 0, where the
 * formulas give nan or -inf (0^0 has slope 0 in the base; 0^y with y >= 0 has none in y). */
static mg_status zero_where(mg_ctx *ctx, mg_tensor *f, const mg_tensor *p, mg_binary_op cmp,
                            const mg_tensor *q) {
    mg_scratch mask, also;
    mg_status st = mg_scratch_new(ctx, &mask, MG_BOOL, f->ndim, f->size);
    if (st != MG_OK) return st;
    also.s.data = NULL;
    mg_scalar zero;
    mg_scalar_init(&zero, (mg_dtype)p->dtype, 0, 0);
    st = mg_binary(ctx, cmp, &mask.t, p, &zero.t);
    if (st == MG_OK && q) {
        st = mg_scratch_new(ctx, &also, MG_BOOL, f->ndim, f->size);
        if (st == MG_OK) st = mg_binary(ctx, MG_BIN_GE, &also.t, q, &zero.t);
        if (st == MG_OK) st = mg_binary(ctx, MG_BIN_MUL, &mask.t, &mask.t, &also.t); /* and */
    }
    mg_scalar fz;
    mg_scalar_init(&fz, (mg_dtype)f->dtype, 0, 0);
    if (st == MG_OK) st = mg_where(ctx, f, &mask.t, &fz.t, f);
    if (also.s.data) mg_scratch_free(ctx, &also);
    mg_scratch_free(ctx, &mask);
    return st;
}

mg_status mg_binary_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin) {
    const mg_binary_op op = (mg_binary_op)a->node->op;
    const mg_tensor *g = a->gout;
    const mg_dtype dt = (mg_dtype)g->dtype;
    if (op == MG_BIN_ADD || (op == MG_BIN_SUB && i == 0)) return mg_sum_to(ctx, gin, g);

    mg_scratch sx, sy, full, tmp;
    const mg_tensor *x, *y;
    sx.s.data = sy.s.data = tmp.s.data = full.s.data = NULL;
    mg_status st = mg_scratch_as(ctx, a->inputs[0], dt, &sx, &x);
    if (st == MG_OK) st = mg_scratch_as(ctx, a->inputs[1], dt, &sy, &y);
    /* the full-shape gradient is computed in gin itself when the input was not broadcast (no
     * scratch, no copy); else in scratch, summed back to gin's shape at the end */
    const bool in_place = gin->dtype == dt && mg_same_shape(gin, g) && mg_is_contiguous(gin);
    if (st == MG_OK && !in_place) st = mg_scratch_new(ctx, &full, dt, g->ndim, g->size);
    if (st != MG_OK) goto done;
    mg_tensor *f = in_place ? gin : &full.t;
    switch (op) {
    case MG_BIN_SUB: st = with_number(ctx, MG_BIN_MUL, f, g, -1.0); break;
    case MG_BIN_MUL: st = mg_binary(ctx, MG_BIN_MUL, f, g, i == 0 ? y : x); break;
    case MG_BIN_DIV:
        if (i == 0) {
            st = mg_binary(ctx, MG_BIN_DIV, f, g, y);
        } else { /* -g x / y / y */
            st = mg_binary(ctx, MG_BIN_MUL, f, g, x);
            if (st == MG_OK) st = mg_binary(ctx, MG_BIN_DIV, f, f, y);
            if (st == MG_OK) st = mg_binary(ctx, MG_BIN_DIV, f, f, y);
            if (st == MG_OK) st = with_number(ctx, MG_BIN_MUL, f, f, -1.0);
        }
        break;
    case MG_BIN_POW:
        if (i == 0) { /* g y x^(y-1) */
            if (scalar_exponent(y) == 2.0) { /* x^1 is x exactly: the same bits, two passes fewer */
                st = mg_binary(ctx, MG_BIN_MUL, f, x, y);
            } else {
                st = with_number(ctx, MG_BIN_SUB, f, y, 1.0); /* y broadcast to out's shape */
                if (st == MG_OK) st = mg_binary(ctx, MG_BIN_POW, f, x, f);
                if (st == MG_OK) st = mg_binary(ctx, MG_BIN_MUL, f, f, y);
            }
            if (st == MG_OK) st = mg_binary(ctx, MG_BIN_MUL, f, f, g);
            /* 0 where y == 0; a number exponent (0-d) other than 0 needs no pass for it */
            const bool nonzero_scalar = y->ndim == 0 && mg_tensor_data(y) &&
                                        (dt == MG_FLOAT32 ? *(const float *)mg_tensor_data(y) != 0
                                                          : *(const double *)mg_tensor_data(y) != 0);
            if (st == MG_OK && !nonzero_scalar) st = zero_where(ctx, f, y, MG_BIN_EQ, NULL);
        } else { /* g out log(x) */
            st = mg_scratch_new(ctx, &tmp, dt, x->ndim, x->size);
            if (st == MG_OK) st = mg_unary(ctx, MG_UN_LOG, &tmp.t, x);
            if (st == MG_OK) st = mg_binary(ctx, MG_BIN_MUL, f, g, a->saved[0]);
            if (st == MG_OK) st = mg_binary(ctx, MG_BIN_MUL, f, f, &tmp.t);
            if (st == MG_OK) st = zero_where(ctx, f, x, MG_BIN_EQ, y); /* 0 where x == 0, y >= 0 */
        }
        break;
    case MG_BIN_MAXIMUM:
    case MG_BIN_MINIMUM: {
        const mg_binary_op beats = op == MG_BIN_MAXIMUM ? MG_BIN_GT : MG_BIN_LT;
        st = i == 0 ? chosen_share(ctx, f, g, x, y, beats) : chosen_share(ctx, f, g, y, x, beats);
        break;
    }
    default: st = mg_fail(ctx, MG_EVALUE, 0, "'%s' is not differentiable", names[op]); break;
    }
    if (st == MG_OK && f != gin) st = mg_sum_to(ctx, gin, f);
done:
    if (full.s.data) mg_scratch_free(ctx, &full);
    if (tmp.s.data) mg_scratch_free(ctx, &tmp);
    if (sx.s.data) mg_scratch_free(ctx, &sx);
    if (sy.s.data) mg_scratch_free(ctx, &sy);
    return st;
}
