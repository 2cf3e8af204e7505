/*
 * binary.c: elementwise ops of two operands (arithmetic, maximum / minimum, comparisons), and
 * where / masked_fill, forward and backward side by side. The list of binary ops and what each
 * column means is MG_BINARY_OPS in ops.h.
 *
 * Each op's kernel is one line per kind of dtype below: FLOAT_BINARY(op, expression in a and b)
 * for both float dtypes (MG_MATH2(pow, a, b) is powf for floats), INT_BINARY and BOOL_BINARY
 * where the list says FI / FIB. DEFINE_BINARY writes the three loops that matter: both operands
 * contiguous, one of them a broadcast scalar (stride 0), and the general strided case, once per
 * instruction set (MG_ISA_STAMP, src/core/cpu.h; the table is indexed by ctx->isa). Promotion
 * is the caller's job: a and b arrive in the compute dtype. The derivatives are the cases of
 * mg_binary_backward, below the kernels.
 */
#include <math.h>

#include "../core/cpu.h"
#include "grad.h"
#include "ops.h"
#include "scalar.h"
#include "unary.h"

#define DEFINE_BINARY(NAME, T, R, EXPR) MG_ISA_STAMP(BINARY_LOOPS, NAME, T, R, EXPR)
#define BINARY_LOOPS(ISA, NAME, T, R, EXPR)                                                  \
    static void MG_ISA_FN(NAME, ISA)(char **p, const int64_t *s, int64_t n, const void *extra) { \
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
#define FLOAT_BINARY(op, EXPR) \
    DEFINE_BINARY(op##_f32, float, float, EXPR) DEFINE_BINARY(op##_f64, double, double, EXPR)
#define INT_BINARY(op, EXPR) DEFINE_BINARY(op##_i64, int64_t, int64_t, EXPR)
#define BOOL_BINARY(op, EXPR) DEFINE_BINARY(op##_bool, bool, bool, EXPR)
/* a comparison: a bool result for every dtype */
#define COMPARISON(op, OPERATOR)                       \
    DEFINE_BINARY(op##_f32, float, bool, a OPERATOR b)     \
    DEFINE_BINARY(op##_f64, double, bool, a OPERATOR b)    \
    DEFINE_BINARY(op##_i64, int64_t, bool, a OPERATOR b)   \
    DEFINE_BINARY(op##_bool, bool, bool, a OPERATOR b)

/* base^e in int64, wrapping around as PyTorch; a negative exponent truncates toward 0 */
static inline int64_t ipow(int64_t base, int64_t e) {
    if (e < 0) return base == 1 ? 1 : base == -1 ? ((e & 1) ? -1 : 1) : 0;
    uint64_t r = 1, b = (uint64_t)base;
    for (uint64_t k = (uint64_t)e; k; k >>= 1, b *= b)
        if (k & 1) r *= b;
    return (int64_t)r;
}

/* int64 wraps around (MG_WRAP); bool + is or, bool * is and, as PyTorch */
FLOAT_BINARY(add, a + b)
INT_BINARY(add, MG_WRAP(+, a, b))
BOOL_BINARY(add, a || b)
FLOAT_BINARY(sub, a - b)
INT_BINARY(sub, MG_WRAP(-, a, b))
FLOAT_BINARY(mul, a * b)
INT_BINARY(mul, MG_WRAP(*, a, b))
BOOL_BINARY(mul, a && b)
FLOAT_BINARY(div, a / b)
/* x^2 (the losses) and x^1 (its gradient) without a call to pow */
FLOAT_BINARY(pow, b == 2 ? a * a : b == 1 ? a : MG_MATH2(pow, a, b))
INT_BINARY(pow, ipow(a, b))
/* NaN-propagating, as torch.maximum / torch.minimum */
FLOAT_BINARY(maximum, MG_MAX_NAN(a, b))
INT_BINARY(maximum, a > b ? a : b)
BOOL_BINARY(maximum, a || b)
FLOAT_BINARY(minimum, MG_MIN_NAN(a, b))
INT_BINARY(minimum, a < b ? a : b)
BOOL_BINARY(minimum, a && b)
COMPARISON(eq, ==)
COMPARISON(ne, !=)
COMPARISON(lt, <)
COMPARISON(le, <=)
COMPARISON(gt, >)
COMPARISON(ge, >=)

/* ---- pow by a number PyTorch computes without pow() ---------------------------------------- */
/* PyTorch 1.13 (PowKernel.cpp) takes x^3 as x x x, x^0.5 as sqrt(x), x^-0.5 as 1 / sqrt(x),
 * x^-1 as 1 / x and x^-2 as 1 / (x x), each rounded as written: its numbers (3.3^3 is 35.936996
 * there, 35.937000 by powf; (-0)^0.5 is -0, (-inf)^0.5 NaN), and a vectorized loop instead of a
 * call an element (x^3 over 256k floats: 2.1 ms by powf). */
enum { POW_CUBE, POW_SQRT, POW_RSQRT, POW_RECIPROCAL, POW_RECIPROCAL_SQUARE };
#define POW_SPECIAL_VALUE(NAME, T, SQRT)                                                      \
    static inline T NAME(T v, int code) {                                                     \
        switch (code) {                                                                       \
        case POW_CUBE: return v * v * v;                                                      \
        case POW_SQRT: return SQRT(v);                                                        \
        case POW_RSQRT: return (T)1 / SQRT(v);                                                \
        case POW_RECIPROCAL: return (T)1 / v;                                                 \
        default: return (T)1 / (v * v);                                                      \
        }                                                                                     \
    }
POW_SPECIAL_VALUE(pow_special_value_f32, float, sqrtf)
POW_SPECIAL_VALUE(pow_special_value_f64, double, sqrt)
/* contiguous runs with the exponent's code a constant in each loop (so that it vectorizes) */
#define POW_SPECIAL_RUN(VALUE, CODE) for (int64_t i = 0; i < n; i++) o[i] = VALUE(x[i], CODE)
#define POW_SPECIAL_LOOP(ISA, NAME, T, VALUE)                                                 \
    static void MG_ISA_FN(NAME, ISA)(char **p, const int64_t *s, int64_t n, const void *extra) { \
        const int code = *(const int *)extra;                                                 \
        if (s[0] == (int64_t)sizeof(T) && s[1] == (int64_t)sizeof(T)) {                       \
            T *restrict o = (T *)p[0];                                                        \
            const T *restrict x = (const T *)p[1];                                            \
            switch (code) {                                                                   \
            case POW_CUBE: POW_SPECIAL_RUN(VALUE, POW_CUBE); break;                           \
            case POW_SQRT: POW_SPECIAL_RUN(VALUE, POW_SQRT); break;                           \
            case POW_RSQRT: POW_SPECIAL_RUN(VALUE, POW_RSQRT); break;                         \
            case POW_RECIPROCAL: POW_SPECIAL_RUN(VALUE, POW_RECIPROCAL); break;               \
            default: POW_SPECIAL_RUN(VALUE, POW_RECIPROCAL_SQUARE); break;                    \
            }                                                                                 \
            return;                                                                           \
        }                                                                                     \
        for (int64_t i = 0; i < n; i++)                                                       \
            *(T *)(p[0] + i * s[0]) = VALUE(*(const T *)(p[1] + i * s[1]), code);             \
    }
MG_ISA_STAMP(POW_SPECIAL_LOOP, pow_special_f32, float, pow_special_value_f32)
MG_ISA_STAMP(POW_SPECIAL_LOOP, pow_special_f64, double, pow_special_value_f64)

/* The code of exponent e among those above, or -1. */
static int pow_special(double e) {
    if (e == 3) return POW_CUBE;
    if (e == 0.5) return POW_SQRT;
    if (e == -0.5) return POW_RSQRT;
    if (e == -1) return POW_RECIPROCAL;
    if (e == -2) return POW_RECIPROCAL_SQUARE;
    return -1;
}

/* ---- the tables, made from MG_BINARY_OPS ----------------------------------------------------- */
#define NAME(OP, op, ...) #op,
static const char *const names[MG_NBINARY] = {MG_BINARY_OPS(NAME)};
#define IS_COMPARISON(OP, op, kernels, kind, saves) IS_COMPARISON_##kind,
#define IS_COMPARISON_OPERATOR false
#define IS_COMPARISON_FUNCTION false
#define IS_COMPARISON_COMPARISON true
static const bool comparison[MG_NBINARY] = {MG_BINARY_OPS(IS_COMPARISON)};
#define READS_OUTPUT(OP, op, kernels, kind, saves) READS_OUTPUT_##saves,
#define READS_OUTPUT_OUTPUT true
#define READS_OUTPUT_NOTHING false
static const bool reads_output[MG_NBINARY] = {MG_BINARY_OPS(READS_OUTPUT)};
/* [op][isa][dtype: float32, float64, int64, bool]; NULL: the dtype is refused (the caller
 * promotes) */
#define KERNELS(OP, op, kernels, ...) MG_ISA_ROW(MG_KERNELS_##kernels, op),
static const mg_inner_fn kernels[MG_NBINARY][MG_NISA][MG_NDTYPES] = {MG_BINARY_OPS(KERNELS)};

const char *mg_binary_name(mg_binary_op op) { return names[op]; }
bool mg_binary_is_comparison(mg_binary_op op) { return comparison[op]; }
bool mg_binary_reads_output(mg_binary_op op) { return reads_output[op]; }

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

/* An operand's stride in the one-run fast path of mg_binary: 0 for a 0-d operand (a number, read
 * as a scalar), its element size when it is contiguous with out's shape, -1 otherwise. */
static int64_t run_stride(const mg_tensor *t, const mg_tensor *out) {
    if (t->ndim == 0) return 0;
    return mg_same_shape(t, out) && mg_is_contiguous(t) ? (int64_t)mg_dtype_size((mg_dtype)t->dtype) : -1;
}

mg_status mg_binary(mg_ctx *ctx, mg_binary_op op, mg_tensor *out, const mg_tensor *a,
                    const mg_tensor *b) {
    if (op == MG_BIN_POW && a->dtype == b->dtype && scalar_exponent(b) == 2.0)
        return mg_binary(ctx, MG_BIN_MUL, out, a, a); /* x ^ 2 = x * x exactly, and vectorized */
    if (op == MG_BIN_POW && a->dtype == b->dtype && out->dtype == a->dtype && pow_special(scalar_exponent(b)) >= 0) {
        const int code = pow_special(scalar_exponent(b));
        const mg_tensor *ops[2] = {out, a};
        mg_iter it;
        mg_iter_init(&it, 2, ops);
        mg_iter_run_parallel(ctx, &it,
                             a->dtype == MG_FLOAT32 ? MG_ISA_PICK(ctx->isa, pow_special_f32)
                                                    : MG_ISA_PICK(ctx->isa, pow_special_f64),
                             &code);
        return MG_OK;
    }
    const mg_inner_fn fn = kernels[op][ctx->isa][a->dtype];
    if (!fn || a->dtype != b->dtype)
        return mg_fail(ctx, MG_EDTYPE, 1, "'%s' does not take %s tensors", names[op],
                       mg_dtype_name((mg_dtype)a->dtype));
    const int64_t sa = run_stride(a, out), sb = run_stride(b, out);
    if (sa >= 0 && sb >= 0 && mg_is_contiguous(out)) {
        /* the common cases (operands of out's shape, or a number: W1's 1e-2 * t): one run, no
         * iterator set-up, the kernel's own loops (it has one for a scalar operand) */
        char *data[3] = {(char *)mg_tensor_data(out), (char *)mg_tensor_data(a), (char *)mg_tensor_data(b)};
        const int64_t strides[3] = {(int64_t)mg_dtype_size((mg_dtype)out->dtype), sa, sb};
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
#define DEFINE_WHERE(NAME, T, UT) MG_ISA_STAMP(WHERE_LOOP, NAME, T, UT)
/* A select, not a branch: a random mask mispredicted half the time (where(x > 0, x, 0) over 256k
 * floats took 1 ms). Contiguous runs (a value may be one number, masked_fill's) go in blocks: the
 * mask widened to the values' width, then each result picked by bit masks, two loops of one width
 * each, which vectorize (GCC does not vectorize a bool next to a float in one loop). Values are
 * copied bit for bit either way. */
#define WHERE_BLOCK 256
#define WHERE_LOOP(ISA, NAME, T, UT)                                                          \
    static void MG_ISA_FN(NAME, ISA)(char **p, const int64_t *s, int64_t n, const void *extra) { \
        (void)extra;                                                                          \
        const int64_t z = (int64_t)sizeof(T);                                                 \
        if (s[0] == z && s[1] == (int64_t)sizeof(bool) && (s[2] == z || s[2] == 0) &&         \
            (s[3] == z || s[3] == 0)) {                                                       \
            const int64_t xs = s[2] ? 1 : 0, ys = s[3] ? 1 : 0;                               \
            for (int64_t i0 = 0; i0 < n; i0 += WHERE_BLOCK) {                                 \
                const int64_t w = n - i0 < WHERE_BLOCK ? n - i0 : WHERE_BLOCK;                \
                const unsigned char *c = (const unsigned char *)p[1] + i0;                    \
                const UT *x = (const UT *)(const void *)p[2] + i0 * xs;                       \
                const UT *y = (const UT *)(const void *)p[3] + i0 * ys;                       \
                UT *o = (UT *)(void *)p[0] + i0;                                              \
                UT m[WHERE_BLOCK];                                                            \
                for (int64_t i = 0; i < w; i++) m[i] = (UT)0 - (UT)(c[i] != 0);               \
                if (xs && ys)                                                                 \
                    for (int64_t i = 0; i < w; i++) o[i] = (x[i] & m[i]) | (y[i] & ~m[i]);    \
                else if (xs)                                                                  \
                    for (int64_t i = 0; i < w; i++) o[i] = (x[i] & m[i]) | (y[0] & ~m[i]);    \
                else if (ys)                                                                  \
                    for (int64_t i = 0; i < w; i++) o[i] = (x[0] & m[i]) | (y[i] & ~m[i]);    \
                else                                                                          \
                    for (int64_t i = 0; i < w; i++) o[i] = (x[0] & m[i]) | (y[0] & ~m[i]);    \
            }                                                                                 \
            return;                                                                           \
        }                                                                                     \
        char *o = p[0];                                                                       \
        const char *c = p[1], *x = p[2], *y = p[3];                                           \
        for (int64_t i = 0; i < n; i++, o += s[0], c += s[1], x += s[2], y += s[3]) {         \
            const T a = *(const T *)x, b = *(const T *)y;                                     \
            *(T *)o = *(const bool *)c ? a : b;                                               \
        }                                                                                     \
    }
/* the values' bits, read and written through types that may alias them (no strict-aliasing
 * assumption between a float and its bits) */
typedef uint32_t __attribute__((may_alias)) where_bits32;
typedef uint64_t __attribute__((may_alias)) where_bits64;
typedef uint8_t __attribute__((may_alias)) where_bits8;
DEFINE_WHERE(where_f32, float, where_bits32)
DEFINE_WHERE(where_f64, double, where_bits64)
DEFINE_WHERE(where_i64, int64_t, where_bits64)
DEFINE_WHERE(where_bool, bool, where_bits8)
static const mg_inner_fn where_kernels[MG_NISA][MG_NDTYPES] = MG_ISA_ROW(MG_KERNELS_FIB, where);

mg_status mg_where(mg_ctx *ctx, mg_tensor *out, const mg_tensor *cond, const mg_tensor *a,
                   const mg_tensor *b) {
    (void)ctx;
    const mg_tensor *ops[4] = {out, cond, a, b};
    mg_iter it;
    mg_iter_init(&it, 4, ops);
    mg_iter_run_parallel(ctx, &it, where_kernels[ctx->isa][out->dtype], NULL);
    return MG_OK;
}

/* ---- (x k) g in one pass ----------------------------------------------------------------- */
/* pow's gradient at exponent 2 is (x 2) g: the product x 2 rounded, then times g, as two passes of
 * mg_binary would round them (the same bits), without writing x 2 out and reading it back: a pass
 * over W5's 4 MB gradient a step fewer. */
#define DEFINE_SCALED_MUL(NAME, T) MG_ISA_STAMP(SCALED_MUL_LOOP, NAME, T)
#define SCALED_MUL_LOOP(ISA, NAME, T)                                                          \
    static void MG_ISA_FN(NAME, ISA)(char **p, const int64_t *s, int64_t n, const void *extra) { \
        const T k = (T) * (const double *)extra;                                              \
        if (s[0] == sizeof(T) && s[1] == sizeof(T) && s[2] == sizeof(T)) {                    \
            T *o = (T *)p[0];                                                                 \
            const T *x = (const T *)p[1], *g = (const T *)p[2];                               \
            for (int64_t i = 0; i < n; i++) o[i] = (x[i] * k) * g[i];                         \
        } else {                                                                              \
            char *o = p[0];                                                                   \
            const char *x = p[1], *g = p[2];                                                  \
            for (int64_t i = 0; i < n; i++, o += s[0], x += s[1], g += s[2])                  \
                *(T *)o = (*(const T *)x * k) * *(const T *)g;                                \
        }                                                                                     \
    }
DEFINE_SCALED_MUL(scaled_mul_f32, float)
DEFINE_SCALED_MUL(scaled_mul_f64, double)
static const mg_inner_fn scaled_mul_kernels[MG_NISA][MG_NDTYPES] = MG_ISA_ROW(MG_KERNELS_F, scaled_mul);
/* out <- (x k) g, out float and of g's dtype, x of out's dtype (broadcast to it) */
static mg_status scaled_mul(mg_ctx *ctx, mg_tensor *out, const mg_tensor *x, double k, const mg_tensor *g) {
    const mg_tensor *ops[3] = {out, x, g};
    mg_iter it;
    mg_iter_init(&it, 3, ops);
    mg_iter_run_parallel(ctx, &it, scaled_mul_kernels[ctx->isa][out->dtype], &k);
    return MG_OK;
}

/* Backward of where and masked_fill: each value input gets g where it was chosen, 0 elsewhere. */
/* (where cond g 0) or (where cond 0 g), summed back to gin's shape */
static mg_status routed(mg_ctx *ctx, mg_tensor *gin, const mg_tensor *cond, const mg_tensor *g, bool when) {
    mg_scratch full;
    mg_status st = mg_scratch_new(ctx, &full, (mg_dtype)g->dtype, g->ndim, g->size);
    if (st != MG_OK) return st;
    mg_scalar z;
    mg_scalar_init(&z, (mg_dtype)g->dtype, 0, 0);
    st = when ? mg_where(ctx, &full.t, cond, g, &z.t) : mg_where(ctx, &full.t, cond, &z.t, g);
    if (st == MG_OK) st = mg_sum_to(ctx, gin, &full.t);
    mg_scratch_free(ctx, &full);
    return st;
}

mg_status mg_where_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin) {
    const mg_tensor *g = a->gout;
    switch ((mg_where_op)a->node->op) {
    case MG_WHERE:
        if (i == 0) return mg_fail(ctx, MG_EVALUE, 0, "the condition of 'where' has no gradient");
        return routed(ctx, gin, a->inputs[0], g, i == 1);
    case MG_MASKED_FILL: /* t keeps g where the mask is false; the value gets the rest */
        if (i == 1) return mg_fail(ctx, MG_EVALUE, 0, "the mask of 'masked_fill' has no gradient");
        return routed(ctx, gin, a->inputs[1], g, i == 2);
    default: return mg_fail(ctx, MG_EVALUE, 0, "this where op has no backward rule");
    }
}

/* ---- backward ------------------------------------------------------------------------------ */
/* With g = d loss / d out (out's shape), the gradients before summing back to each input's shape:
 *   add: g, g            sub: g, -g            mul: g b, g a          div: g / b, -g a / b^2
 *   pow: g b a^(b-1), g out log(a)             maximum / minimum: g where that input was chosen,
 *   half of g to each on ties (as PyTorch). Comparisons give bool and are never recorded. */
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
            if (scalar_exponent(y) == 2.0) { /* x^1 is x exactly: (x 2) g in one pass (scaled_mul) */
                st = scaled_mul(ctx, f, x, 2.0, g);
            } else if (!isnan(scalar_exponent(y)) && y->dtype == dt) {
                /* a number exponent: x^(y-1) by a number too, as PyTorch's self.pow(exponent - 1),
                 * so that its special cases (x^3 as x x x, x^0.5 as sqrt, ...) give its numbers */
                mg_scalar em1;
                mg_scalar_init(&em1, dt, scalar_exponent(y) - 1.0, 0);
                st = mg_binary(ctx, MG_BIN_POW, f, x, &em1.t);
                if (st == MG_OK) st = mg_binary(ctx, MG_BIN_MUL, f, f, y);
                if (st == MG_OK) st = mg_binary(ctx, MG_BIN_MUL, f, f, g);
            } else {
                st = with_number(ctx, MG_BIN_SUB, f, y, 1.0); /* y broadcast to out's shape */
                if (st == MG_OK) st = mg_binary(ctx, MG_BIN_POW, f, x, f);
                if (st == MG_OK) st = mg_binary(ctx, MG_BIN_MUL, f, f, y);
                if (st == MG_OK) st = mg_binary(ctx, MG_BIN_MUL, f, f, g);
            }
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
