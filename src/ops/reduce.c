/*
 * reduce.c: reductions over some or all dims, and cumsum.
 *
 * Geometry is dtype-free and written once (mg_reduce): the kept dims are walked with an odometer,
 * one output element at a time, and for each the reduced dims are walked in row-major order as
 * runs along the innermost reduced dim. Reduced dims that are contiguous with each other are
 * merged first, so the all-elements reduction of a contiguous tensor is one run of numel elements
 * and reducing the last dim of a contiguous tensor is one unit-stride run per output element;
 * any other strides (transposed, expanded: stride 0) take the same path with a byte stride.
 *
 * Only the fold over one run is typed: a `step` function updates an accumulator (struct acc) from
 * n elements at stride s. Each is one DEFINE_ line per dtype, compiled once per instruction set
 * (MG_ISA_STAMP, src/core/cpu.h); `steps` indexes them by op, ctx->isa and dtype (NULL: the
 * dtype is refused). `emit` turns the accumulator into the output element.
 * float32 folds accumulate in double and are rounded once at the end.
 *
 * The order is fixed (run after run, element after element), so results are bit-identical on
 * every run. Reductions run on the calling thread: splitting the output elements between threads
 * would keep that order; splitting one long run would need fixed-size chunks summed in chunk
 * order to stay deterministic.
 *
 * To add a reduction: a line in MG_REDUCE_OPS (reduce.h, which says what each column makes), its
 * DEFINE_ lines, and where it is not a plain fold its start in acc_init and result in emit.
 */
#include <math.h>
#include <string.h>

#include "../core/cpu.h"
#include "grad.h"
#include "index.h"
#include "ops.h"
#include "reduce.h"
#include "scalar.h" /* MG_WRAP: int64 sums and products wrap around, as in PyTorch */
#include "unary.h"

/* The running state of one output element. Which fields an op uses is said next to its kernels. */
typedef struct acc {
    double f;      /* float sums, products, norms; max / min of float dtypes */
    int64_t i;     /* integer sums, products; max / min of int64 and bool; any / all */
    double mean;   /* var / std (Welford) */
    double m2;     /* var / std: sum of squared deviations from the running mean */
    int64_t count; /* var / std: elements seen */
    int64_t idx;   /* max / min / argmax / argmin: 0-based position of the chosen element */
    bool has;      /* max / min: an element was seen */
} acc;

typedef void (*step_fn)(acc *a, const char *p, int64_t n, int64_t s, int64_t base,
                        const mg_reduce_args *args);


/* A fold r = EXPR(r, v) over n elements of type T at byte stride s, into the ACC field F. */
#define DEFINE_FOLD(NAME, T, ACC, F, EXPR) MG_ISA_STAMP(FOLD_LOOPS, NAME, T, ACC, F, EXPR)
#define FOLD_LOOPS(ISA, NAME, T, ACC, F, EXPR)                                                 \
    static void MG_ISA_FN(NAME, ISA)(acc *a, const char *p, int64_t n, int64_t s, int64_t base, \
                     const mg_reduce_args *args) {                                           \
        (void)base;                                                                           \
        (void)args;                                                                           \
        ACC r = a->F;                                                                         \
        if (s == (int64_t)sizeof(T)) {                                                        \
            const T *x = (const T *)p;                                                        \
            for (int64_t i = 0; i < n; i++) { const T v = x[i]; r = (EXPR); }                 \
        } else {                                                                              \
            for (int64_t i = 0; i < n; i++, p += s) { const T v = *(const T *)p; r = (EXPR); } \
        }                                                                                     \
        a->F = r;                                                                             \
    }

/* sum: y = sum x.  Backward: dx += dy (broadcast back over the reduced dims).
 * float32 runs of 64 or more are summed in double with 8 interleaved accumulators, added up in a
 * fixed order: the adds then run in vector registers (one accumulator chained through every
 * element is a latency-bound 1 add / 4 cycles), and the order depends only on the run, never on
 * threads. The norms' sums (below) take the same loop over their terms; shorter or strided runs go
 * one element at a time. */
#define PLAIN_TERM(v) ((double)(v))
#define SQUARE_TERM(v) ((double)(v) * (double)(v))
#define ABS_TERM(v) fabs((double)(v))
#define SUM8_LOOP(ISA, NAME, T, TERM)                                                          \
    static void MG_ISA_FN(NAME, ISA)(acc *a, const char *p, int64_t n, int64_t s, int64_t base, \
                                     const mg_reduce_args *args) {                           \
        (void)base;                                                                           \
        (void)args;                                                                           \
        if (s != (int64_t)sizeof(T) || n < 64) {                                              \
            double r = a->f;                                                                  \
            for (int64_t i = 0; i < n; i++, p += s) r += TERM(*(const T *)p);                \
            a->f = r;                                                                         \
            return;                                                                           \
        }                                                                                     \
        const T *x = (const T *)p;                                                            \
        double part[8] = {0};                                                                 \
        int64_t i = 0;                                                                        \
        for (; i + 8 <= n; i += 8)                                                            \
            for (int k = 0; k < 8; k++) part[k] += TERM(x[i + k]);                            \
        double r = 0;                                                                         \
        for (int k = 0; k < 8; k++) r += part[k];                                             \
        for (; i < n; i++) r += TERM(x[i]);                                                   \
        a->f += r;                                                                            \
    }
MG_ISA_STAMP(SUM8_LOOP, sum_f32, float, PLAIN_TERM)
DEFINE_FOLD(sum_f64, double, double, f, r + v)
DEFINE_FOLD(sum_i64, int64_t, int64_t, i, MG_WRAP(+, r, v))
DEFINE_FOLD(sum_bool, bool, int64_t, i, r + v)

/* prod: y = prod x.  Backward: dx_k += dy * prod_{j != k} x_j (y / x_k when no x is 0; with zeros
 * the product of the others, computed without dividing). */
DEFINE_FOLD(prod_f32, float, double, f, r * v)
DEFINE_FOLD(prod_f64, double, double, f, r * v)
DEFINE_FOLD(prod_i64, int64_t, int64_t, i, MG_WRAP(*, r, v))
DEFINE_FOLD(prod_bool, bool, int64_t, i, r & v)

/* mean: y = sum x / n, folded with sum_f32 / sum_f64.  Backward: dx += dy / n. */

/* any / all: nonzero test, NaN counts as true (as bool(nan) in PyTorch). No gradient. */
DEFINE_FOLD(any_f32, float, int64_t, i, r | (v != 0))
DEFINE_FOLD(any_f64, double, int64_t, i, r | (v != 0))
DEFINE_FOLD(any_i64, int64_t, int64_t, i, r | (v != 0))
DEFINE_FOLD(any_bool, bool, int64_t, i, r | v)
DEFINE_FOLD(all_f32, float, int64_t, i, r & (v != 0))
DEFINE_FOLD(all_f64, double, int64_t, i, r & (v != 0))
DEFINE_FOLD(all_i64, int64_t, int64_t, i, r & (v != 0))
DEFINE_FOLD(all_bool, bool, int64_t, i, r & v)

/* norm: y = (sum |x|^p)^(1/p); p = inf: max |x|, p = -inf: min |x|, p = 0: count of nonzeros.
 * Backward: dx += dy * sign(x) |x|^(p-1) / y^(p-1) (p = 2: dy * x / y; p = 1: dy * sign(x);
 * p = inf: dy * sign(x) at the elements equal to y, shared evenly; p = 0: none). */
#define ABS_MAX(r, v) ((v) != (v) || fabs(v) > (r) ? fabs(v) : (r)) /* NaN sticks: NaN > r fails */
#define ABS_MIN(r, v) ((v) != (v) || fabs(v) < (r) ? fabs(v) : (r))
/* the 2- and 1-norms' sums: sum's loop over their terms (a chain through every element ran at
 * ~1 ns an element; clip_grad_norm_ takes a norm a parameter a step) */
MG_ISA_STAMP(SUM8_LOOP, norm2_f32, float, SQUARE_TERM)
MG_ISA_STAMP(SUM8_LOOP, norm2_f64, double, SQUARE_TERM)
MG_ISA_STAMP(SUM8_LOOP, norm1_f32, float, ABS_TERM)
MG_ISA_STAMP(SUM8_LOOP, norm1_f64, double, ABS_TERM)
DEFINE_FOLD(norminf_f32, float, double, f, ABS_MAX(r, (double)v))
DEFINE_FOLD(norminf_f64, double, double, f, ABS_MAX(r, v))
DEFINE_FOLD(normninf_f32, float, double, f, ABS_MIN(r, (double)v))
DEFINE_FOLD(normninf_f64, double, double, f, ABS_MIN(r, v))
DEFINE_FOLD(norm0_f32, float, double, f, r + (v != 0))
DEFINE_FOLD(norm0_f64, double, double, f, r + (v != 0))
DEFINE_FOLD(normp_f32, float, double, f, r + pow(fabs(v), args->p))
DEFINE_FOLD(normp_f64, double, double, f, r + pow(fabs(v), args->p))

/* var: Welford's update, in double.  y = sum (x - mean)^2 / (n - correction).
 * Backward: dx += dy * 2 (x - mean) / (n - correction).  std: y = sqrt(var); dx += dy * (x - mean)
 * / ((n - correction) y). */
#define DEFINE_WELFORD(NAME, T) MG_ISA_STAMP(WELFORD_LOOP, NAME, T)
#define WELFORD_LOOP(ISA, NAME, T)                                                             \
    static void MG_ISA_FN(NAME, ISA)(acc *a, const char *p, int64_t n, int64_t s, int64_t base, \
                     const mg_reduce_args *args) {                                           \
        (void)base;                                                                           \
        (void)args;                                                                           \
        double mean = a->mean, m2 = a->m2;                                                    \
        int64_t count = a->count;                                                             \
        for (int64_t i = 0; i < n; i++, p += s) {                                             \
            const double v = *(const T *)p, d = v - mean;                                     \
            mean += d / (double)++count;                                                      \
            m2 += d * (v - mean);                                                             \
        }                                                                                     \
        a->mean = mean, a->m2 = m2, a->count = count;                                         \
    }
DEFINE_WELFORD(var_f32, float)
DEFINE_WELFORD(var_f64, double)

/* max / min, and argmax / argmin: keep the first element that BETTER(v, best) prefers, so ties go
 * to the first occurrence and the first NaN wins for good (as PyTorch: max of [1, nan] is nan).
 * Backward of max(dim) / min(dim): dx[index] += dy; of max() over all: dy shared evenly among the
 * elements equal to the result. argmax / argmin: no gradient. */
#define DEFINE_BEST(NAME, T, ACC, F, BETTER) MG_ISA_STAMP(BEST_LOOP, NAME, T, ACC, F, BETTER)
#define BEST_LOOP(ISA, NAME, T, ACC, F, BETTER)                                                \
    static void MG_ISA_FN(NAME, ISA)(acc *a, const char *p, int64_t n, int64_t s, int64_t base, \
                     const mg_reduce_args *args) {                                           \
        (void)args;                                                                           \
        ACC best = a->F;                                                                      \
        int64_t idx = a->idx, i = 0;                                                          \
        if (!a->has && n > 0) best = *(const T *)p, idx = base, i = 1, p += s, a->has = true; \
        for (; i < n; i++, p += s) {                                                          \
            const T v = *(const T *)p;                                                        \
            if (BETTER(v, best)) best = v, idx = base + i;                                    \
        }                                                                                     \
        a->F = best, a->idx = idx;                                                            \
    }
#define GT_NAN(v, b) ((v) > (b) || ((v) != (v) && (b) == (b)))
#define LT_NAN(v, b) ((v) < (b) || ((v) != (v) && (b) == (b)))
#define GT(v, b) ((v) > (b))
#define LT(v, b) ((v) < (b))
DEFINE_BEST(max_f32, float, double, f, GT_NAN)
DEFINE_BEST(max_f64, double, double, f, GT_NAN)
DEFINE_BEST(max_i64, int64_t, int64_t, i, GT)
DEFINE_BEST(max_bool, bool, int64_t, i, GT)
DEFINE_BEST(min_f32, float, double, f, LT_NAN)
DEFINE_BEST(min_f64, double, double, f, LT_NAN)
DEFINE_BEST(min_i64, int64_t, int64_t, i, LT)
DEFINE_BEST(min_bool, bool, int64_t, i, LT)

/* ---- the tables, made from MG_REDUCE_OPS ---------------------------------------------------- */
enum { RESULT_SAME, RESULT_WIDEN, RESULT_INDEX, RESULT_BOOL };
/* [op][isa][dtype: float32, float64, int64, bool]; NORM's row is its p = 2 kernel (see pick_step) */
#define STEPS(OP, op, fold, kernels, ...) MG_ISA_ROW(MG_KERNELS_##kernels, fold),
static const step_fn steps[MG_NREDUCE][MG_NISA][MG_NDTYPES] = {MG_REDUCE_OPS(STEPS)};
#define NAME(OP, op, ...) #op,
static const char *const names[MG_NREDUCE] = {MG_REDUCE_OPS(NAME)};
#define RESULT(OP, op, fold, kernels, result, ...) RESULT_##result,
static const uint8_t results[MG_NREDUCE] = {MG_REDUCE_OPS(RESULT)};
#define DIFFERENTIABLE(OP, op, fold, kernels, result, grad, args) DIFFERENTIABLE_##grad,
#define DIFFERENTIABLE_DIFF true
#define DIFFERENTIABLE_NONE false
static const bool differentiable[MG_NREDUCE] = {MG_REDUCE_OPS(DIFFERENTIABLE)};

const char *mg_reduce_name(mg_reduce_op op) {
    if ((int)op == MG_RED_CUMSUM) return "cumsum";
    if ((int)op == MG_RED_CUMPROD) return "cumprod";
    return names[op];
}
bool mg_reduce_is_differentiable(mg_reduce_op op) { return differentiable[op]; }

static step_fn pick_step(mg_reduce_op op, mg_dtype dt, const mg_reduce_args *args, int isa) {
    if (op != MG_RED_NORM || !steps[op][isa][dt]) return steps[op][isa][dt];
    const bool f32 = dt == MG_FLOAT32;
    const double p = args->p;
#define NORM(name) (f32 ? MG_ISA_PICK(isa, name##_f32) : MG_ISA_PICK(isa, name##_f64))
    if (p == 2) return NORM(norm2);
    if (p == 1) return NORM(norm1);
    if (p == INFINITY) return NORM(norminf);
    if (p == -INFINITY) return NORM(normninf);
    if (p == 0) return NORM(norm0);
    return NORM(normp);
#undef NORM
}

mg_status mg_reduce_dtype(mg_ctx *ctx, mg_reduce_op op, mg_dtype in, mg_dtype *out) {
    if (!steps[op][0][in])
        return mg_fail(ctx, MG_EDTYPE, 1, "%s expects a floating dtype (float32 or float64), got %s",
                       names[op], mg_dtype_name(in));
    switch (results[op]) {
    case RESULT_WIDEN: *out = mg_is_floating(in) ? in : MG_INT64; break;
    case RESULT_INDEX: *out = MG_INT64; break;
    case RESULT_BOOL: *out = MG_BOOL; break;
    default: *out = in; break;
    }
    return MG_OK;
}

static void acc_init(acc *a, mg_reduce_op op, const mg_reduce_args *args) {
    memset(a, 0, sizeof *a);
    if (op == MG_RED_PROD) a->f = 1, a->i = 1;
    if (op == MG_RED_ALL) a->i = 1;
    if (op == MG_RED_NORM && args->p == -INFINITY) a->f = INFINITY;
}

/* Writes one element of dtype dt: floats from f, int64 and bool from i. */
static void store(mg_dtype dt, char *o, double f, int64_t i) {
    switch (dt) {
    case MG_FLOAT32: *(float *)o = (float)f; break;
    case MG_FLOAT64: *(double *)o = f; break;
    case MG_INT64: *(int64_t *)o = i; break;
    default: *(bool *)o = i != 0; break;
    }
}

/* The result of op from its accumulator over `count` elements. */
static void emit(mg_reduce_op op, mg_dtype dt, char *o, int64_t *index, const acc *a, int64_t count,
                 const mg_reduce_args *args) {
    double f = a->f;
    int64_t i = a->i;
    switch (op) {
    case MG_RED_MEAN: /* empty: 0 / 0 = nan, as PyTorch */
        /* float32: the sum is rounded to float32 before the division, as PyTorch's float32 sum
         * is, so a sum past FLT_MAX gives inf (the book's diverging loss) instead of a finite mean */
        f = dt == MG_FLOAT32 ? (double)((float)a->f / (float)count) : a->f / (double)count;
        break;
    case MG_RED_ARGMAX:
    case MG_RED_ARGMIN: i = a->idx + 1; break;
    case MG_RED_VAR:
    case MG_RED_STD: {
        const int64_t d = count - args->correction; /* n = 1 unbiased: 0 / 0 = nan, as PyTorch */
        f = a->m2 / (double)(d > 0 ? d : 0);
        if (op == MG_RED_STD) f = sqrt(f);
        break;
    }
    case MG_RED_NORM:
        if (args->p == 2) f = sqrt(f);
        else if (args->p != 1 && args->p != 0 && isfinite(args->p)) f = pow(f, 1 / args->p);
        break;
    default: break;
    }
    store(dt, o, f, i);
    if (index) *index = a->idx + 1;
}

/* Folds the block at p (nr dims, sizes and byte strides, row-major) into a, one run at a time;
 * false when interrupted (mg_interrupt). The request is looked at every MG_INTERRUPT_CHUNK
 * elements: a strided run (an expanded input's 2^62 elements) is folded in chunks of that size,
 * which every step_fn folds as one run (they are sequential on strided data); a contiguous run is
 * folded whole (it is bounded by the memory it reads, and sum_f32's order depends on its length). */
typedef struct watch {
    int64_t since;   /* elements folded since the last look */
    double deadline; /* mg_deadline's */
} watch;
static bool fold_block(mg_ctx *ctx, acc *a, step_fn step, const char *p, int nr, const int64_t *size,
                       const int64_t *stride, int64_t item, watch *w, const mg_reduce_args *args) {
    const int last = nr - 1;
    int64_t index[MG_MAX_DIMS] = {0}, flat = 0;
    const int64_t n = size[last], s = stride[last];
    for (;;) {
        if (s == item || n <= MG_INTERRUPT_CHUNK) {
            step(a, p, n, s, flat, args);
            w->since += n;
        } else {
            for (int64_t done = 0; done < n; done += MG_INTERRUPT_CHUNK) {
                const int64_t m = n - done < MG_INTERRUPT_CHUNK ? n - done : MG_INTERRUPT_CHUNK;
                step(a, p + done * s, m, s, flat + done, args);
                if (done + m < n && mg_should_stop(ctx, w->deadline)) return false;
            }
            w->since += n;
        }
        flat += n;
        if (w->since >= MG_INTERRUPT_CHUNK) {
            w->since = 0;
            if (mg_should_stop(ctx, w->deadline)) return false;
        }
        int d = last - 1;
        for (; d >= 0; d--) {
            p += stride[d];
            if (++index[d] < size[d]) break;
            p -= stride[d] * size[d];
            index[d] = 0;
        }
        if (d < 0) return true;
    }
}

/* ---- sums over an outer dim, LANES outputs side by side -------------------------------------
 * A sum or mean over a dim that is not the innermost (x:sum(1) of a matrix, a broadcast bias's
 * gradient) folds each output's strided run one element at a time: a chain of dependent adds,
 * ~1 ns an element. Its outputs are contiguous, so `cols` runs LANES of them side by side: each
 * lane is one output's sum in double, its elements added in the same order as the fold's (the
 * runs are strided, so the fold is sequential): the same bits, in vector registers. */
#define SUM_LANES 64
#define SUM_COLS(ISA, NAME, T)                                                                 \
    static void MG_ISA_FN(NAME, ISA)(double *restrict accs, const T *restrict x, int64_t rows,  \
                                     int64_t row_stride, int64_t lanes) {                     \
        for (int64_t r = 0; r < rows; r++, x += row_stride)                                   \
            for (int64_t l = 0; l < lanes; l++) accs[l] += (double)x[l];                     \
    }
MG_ISA_STAMP(SUM_COLS, sum_cols_f32, float)
MG_ISA_STAMP(SUM_COLS, sum_cols_f64, double)

void mg_sum_columns(int isa, mg_dtype dt, void *out, const void *in, int64_t rows, int64_t cols) {
    for (int64_t l0 = 0; l0 < cols; l0 += SUM_LANES) {
        const int64_t w = cols - l0 < SUM_LANES ? cols - l0 : SUM_LANES;
        double accs[SUM_LANES];
        for (int64_t l = 0; l < w; l++) accs[l] = 0;
        if (dt == MG_FLOAT32) {
            MG_ISA_PICK(isa, sum_cols_f32)(accs, (const float *)in + l0, rows, cols, w);
            for (int64_t l = 0; l < w; l++) ((float *)out)[l0 + l] = (float)accs[l];
        } else {
            MG_ISA_PICK(isa, sum_cols_f64)(accs, (const double *)in + l0, rows, cols, w);
            for (int64_t l = 0; l < w; l++) ((double *)out)[l0 + l] = accs[l];
        }
    }
}

/* mg_reduce's path for a sum or mean over one strided run whose outputs are contiguous (see
 * above); false when it does not apply (nothing done). */
static bool sum_columns(mg_ctx *ctx, mg_reduce_op op, mg_dtype dt, char *o, const char *p, int64_t rows,
                        int64_t rstride, int nk, const int64_t *ksize, const int64_t *kstride, int64_t count,
                        const mg_reduce_args *args, mg_status *st) {
    const int64_t item = (int64_t)mg_dtype_size(dt);
    if ((op != MG_RED_SUM && op != MG_RED_MEAN) || !mg_is_floating(dt) || nk == 0 || rstride == item ||
        rstride % item != 0 || kstride[nk - 1] != item || ksize[nk - 1] < 8)
        return false;
    const int64_t lanes = ksize[nk - 1], rs = rstride / item;
    int64_t kindex[MG_MAX_DIMS] = {0}, line = 0, since = 0; /* line: the first output of this line */
    const double deadline = rows * lanes > MG_INTERRUPT_CHUNK ? mg_deadline(ctx) : 0;
    acc a0;
    acc_init(&a0, op, args);
    *st = MG_OK;
    for (;;) { /* each line of outputs along the innermost kept dim */
        for (int64_t l0 = 0; l0 < lanes; l0 += SUM_LANES) {
            const int64_t w = lanes - l0 < SUM_LANES ? lanes - l0 : SUM_LANES;
            double accs[SUM_LANES];
            for (int64_t l = 0; l < w; l++) accs[l] = a0.f;
            /* rows in chunks, so that an expanded input's 2^62 rows can be interrupted; each lane
             * goes on from where it was: the order does not change */
            const int64_t chunk = MG_INTERRUPT_CHUNK / w;
            for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
                const int64_t nrows = rows - r0 < chunk ? rows - r0 : chunk;
                const char *q = p + r0 * rstride;
                if (dt == MG_FLOAT32)
                    MG_ISA_PICK(ctx->isa, sum_cols_f32)(accs, (const float *)q + l0, nrows, rs, w);
                else
                    MG_ISA_PICK(ctx->isa, sum_cols_f64)(accs, (const double *)q + l0, nrows, rs, w);
                if ((since += nrows * w) >= MG_INTERRUPT_CHUNK) {
                    since = 0;
                    if (mg_should_stop(ctx, deadline)) {
                        *st = MG_EINTR;
                        return true;
                    }
                }
            }
            for (int64_t l = 0; l < w; l++) {
                acc a = a0;
                a.f = accs[l];
                emit(op, dt, o + (size_t)(line + l0 + l) * (size_t)item, NULL, &a, count, args);
            }
        }
        line += lanes;
        int d = nk - 2;
        for (; d >= 0; d--) { /* the next line: odometer over the outer kept dims */
            p += kstride[d];
            if (++kindex[d] < ksize[d]) break;
            p -= kstride[d] * ksize[d];
            kindex[d] = 0;
        }
        if (d < 0) return true;
    }
}

static bool is_index_op(mg_reduce_op op) {
    return op == MG_RED_MAX || op == MG_RED_MIN || op == MG_RED_ARGMAX || op == MG_RED_ARGMIN;
}

mg_status mg_reduce(mg_ctx *ctx, mg_reduce_op op, mg_tensor *out, mg_tensor *indices,
                    const mg_tensor *in, uint32_t dims, const mg_reduce_args *args) {
    static const mg_reduce_args defaults = {2, 1}; /* const: no mutable state */
    if (!args) args = &defaults;
    const mg_dtype dt = (mg_dtype)in->dtype;
    const step_fn step = pick_step(op, dt, args, ctx->isa);
    mg_dtype odt = dt; /* set by mg_reduce_dtype on success */
    mg_status st = mg_reduce_dtype(ctx, op, dt, &odt);
    if (st != MG_OK) return st;

    /* split the dims: kept ones (walked per output element) and reduced ones (merged when
     * contiguous with each other; size-1 dims dropped). No product here can overflow: each is
     * a product of some of in's sizes, which mg_check_shape bounded. */
    const int64_t item = (int64_t)mg_dtype_size(dt);
    int64_t rsize[MG_MAX_DIMS], rstride[MG_MAX_DIMS], ksize[MG_MAX_DIMS], kstride[MG_MAX_DIMS];
    int nr = 0, nk = 0, empty_dim = -1;
    int64_t count = 1, nout = 1;
    bool all = true;
    for (int i = 0; i < in->ndim; i++) {
        /* an empty input's strides are never walked, and may be huge (zeros(0, 2^62)) */
        const int64_t n = in->size[i], s = in->numel ? in->stride[i] * item : 0;
        if (!((dims >> i) & 1)) {
            ksize[nk] = n, kstride[nk++] = s, nout *= n, all = false;
            continue;
        }
        count *= n;
        if (n == 0 && empty_dim < 0) empty_dim = i;
        if (n == 1) continue;
        if (nr > 0 && rstride[nr - 1] == s * n) {
            rsize[nr - 1] *= n, rstride[nr - 1] = s;
        } else {
            rsize[nr] = n, rstride[nr++] = s;
        }
    }
    if (nr == 0) rsize[0] = 1, rstride[0] = 0, nr = 1; /* one element (or a 0-d input) */
    if (count == 0 && nout > 0 && is_index_op(op)) {
        if (all)
            return mg_fail(ctx, MG_EVALUE, 1, "%s of an empty tensor is undefined (no identity element)",
                           names[op]);
        return mg_fail(ctx, MG_EVALUE, 1, "%s over dimension %d of size 0 is undefined (no identity element)",
                       names[op], empty_dim + 1);
    }
    if (out->dtype != odt || out->numel != nout || !mg_is_contiguous(out) ||
        (indices && (indices->dtype != MG_INT64 || indices->numel != nout || !mg_is_contiguous(indices))))
        return mg_fail(ctx, MG_EVALUE, 0, "%s: output of the wrong dtype or size", names[op]);
    if (nout == 0) return MG_OK;

    const char *p = (const char *)mg_tensor_data(in);
    char *o = (char *)mg_tensor_data(out);
    int64_t *ix = indices ? (int64_t *)mg_tensor_data(indices) : NULL;
    const size_t osize = mg_dtype_size(odt);
    if (nr == 1 && count > 0 && sum_columns(ctx, op, dt, o, p, rsize[0], rstride[0], nk, ksize, kstride, count, args, &st))
        return st;
    int64_t kindex[MG_MAX_DIMS] = {0};
    watch w = {0, count > MG_INTERRUPT_CHUNK || nout > MG_INTERRUPT_CHUNK ? mg_deadline(ctx) : 0};
    /* one contiguous run an output and too few elements for an interrupt check to fall due (x:sum(2)
     * of a matrix): the step on each run directly, without fold_block's walk set up an output
     * (~40 ns: 1000 rows of 256 float32 took 40 us, now 29) */
    const bool one_run = nr == 1 && rstride[0] == item && count < MG_INTERRUPT_CHUNK &&
                         nout < MG_INTERRUPT_CHUNK / (count > 0 ? count : 1);
    for (int64_t k = 0; k < nout; k++) {
        acc a;
        acc_init(&a, op, args);
        if (count > 0 && one_run) step(&a, p, count, item, 0, args);
        else if (count > 0 && !fold_block(ctx, &a, step, p, nr, rsize, rstride, item, &w, args)) return MG_EINTR;
        emit(op, odt, o + (size_t)k * osize, ix ? ix + k : NULL, &a, count, args);
        for (int d = nk - 1; d >= 0; d--) { /* next output element: odometer over kept dims */
            p += kstride[d];
            if (++kindex[d] < ksize[d]) break;
            p -= kstride[d] * ksize[d];
            kindex[d] = 0;
        }
    }
    return MG_OK;
}

/* ---- cumsum ----------------------------------------------------------------------------------- */
/* cumsum: y_k = sum_{j <= k} x_j along dim, accumulated in ACC (double for float32).
 * Backward: dx_k += sum_{j >= k} dy_j (a reversed cumsum of dy). */
#define DEFINE_CUMSUM(NAME, T, ACC, R, EXPR) MG_ISA_STAMP(CUMSUM_LOOP, NAME, T, ACC, R, EXPR)
#define CUMSUM_LOOP(ISA, NAME, T, ACC, R, EXPR)                                                \
    static void MG_ISA_FN(NAME, ISA)(char *o, int64_t os, const char *p, int64_t s, int64_t n) { \
        ACC r = 0;                                                                            \
        for (int64_t i = 0; i < n; i++, p += s, o += os) {                                    \
            const T v = *(const T *)p;                                                        \
            r = (EXPR);                                                                       \
            *(R *)o = (R)r;                                                                   \
        }                                                                                     \
    }
DEFINE_CUMSUM(cumsum_f32, float, double, float, r + v)
DEFINE_CUMSUM(cumsum_f64, double, double, double, r + v)
DEFINE_CUMSUM(cumsum_i64, int64_t, int64_t, int64_t, MG_WRAP(+, r, v))
DEFINE_CUMSUM(cumsum_bool, bool, int64_t, int64_t, r + v)
typedef void (*scan_fn)(char *o, int64_t os, const char *p, int64_t s, int64_t n);
static const scan_fn cumsums[MG_NISA][MG_NDTYPES] = MG_ISA_ROW(MG_KERNELS_FIB, cumsum);

/* cumprod: y_k = prod_{j <= k} x_j, accumulated as cumsum's sums (double for float32). Backward:
 * cumprod_backward below. */
#define DEFINE_CUMPROD(NAME, T, ACC, R, EXPR) MG_ISA_STAMP(CUMPROD_LOOP, NAME, T, ACC, R, EXPR)
#define CUMPROD_LOOP(ISA, NAME, T, ACC, R, EXPR)                                               \
    static void MG_ISA_FN(NAME, ISA)(char *o, int64_t os, const char *p, int64_t s, int64_t n) { \
        ACC r = 1;                                                                            \
        for (int64_t i = 0; i < n; i++, p += s, o += os) {                                    \
            const T v = *(const T *)p;                                                        \
            r = (EXPR);                                                                       \
            *(R *)o = (R)r;                                                                   \
        }                                                                                     \
    }
DEFINE_CUMPROD(cumprod_f32, float, double, float, r * v)
DEFINE_CUMPROD(cumprod_f64, double, double, double, r * v)
DEFINE_CUMPROD(cumprod_i64, int64_t, int64_t, int64_t, MG_WRAP(*, r, v))
DEFINE_CUMPROD(cumprod_bool, bool, int64_t, int64_t, r * v)
static const scan_fn cumprods[MG_NISA][MG_NDTYPES] = MG_ISA_ROW(MG_KERNELS_FIB, cumprod);

static mg_status scan(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in, int dim, mg_reduce_op like,
                      const scan_fn (*table)[MG_NDTYPES]);

mg_status mg_cumsum(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in, int dim) {
    return scan(ctx, out, in, dim, MG_RED_SUM, cumsums);
}
mg_status mg_cumprod(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in, int dim) {
    return scan(ctx, out, in, dim, MG_RED_PROD, cumprods);
}

/* out <- the scan `table` of in along dim; out's dtype is what reduction `like` gives */
static mg_status scan(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in, int dim, mg_reduce_op like,
                      const scan_fn (*table)[MG_NDTYPES]) {
    const mg_dtype dt = (mg_dtype)in->dtype;
    mg_dtype odt = dt; /* set by mg_reduce_dtype on success */
    mg_status st = mg_reduce_dtype(ctx, like, dt, &odt);
    if (st != MG_OK) return st;
    if (out->dtype != odt || !mg_same_shape(out, in) || !mg_is_contiguous(out))
        return mg_fail(ctx, MG_EVALUE, 0, "%s: output of the wrong dtype or shape",
                       like == MG_RED_SUM ? "cumsum" : "cumprod");
    if (in->numel == 0) return MG_OK;
    const int64_t item = (int64_t)mg_dtype_size(dt), oitem = (int64_t)mg_dtype_size(odt);
    int64_t n = 1, s = 0, os = 0; /* the scanned line (a 0-d input is a line of one) */
    int64_t ksize[MG_MAX_DIMS], kstride[MG_MAX_DIMS], kostride[MG_MAX_DIMS], kindex[MG_MAX_DIMS] = {0};
    int nk = 0;
    int64_t lines = 1;
    for (int i = 0; i < in->ndim; i++) {
        if (i == dim) {
            n = in->size[i], s = in->stride[i] * item, os = out->stride[i] * oitem;
        } else {
            ksize[nk] = in->size[i], kstride[nk] = in->stride[i] * item;
            kostride[nk++] = out->stride[i] * oitem, lines *= in->size[i];
        }
    }
    const char *p = (const char *)mg_tensor_data(in);
    char *o = (char *)mg_tensor_data(out);
    for (int64_t k = 0; k < lines; k++) {
        table[ctx->isa][dt](o, os, p, s, n);
        for (int d = nk - 1; d >= 0; d--) {
            p += kstride[d], o += kostride[d];
            if (++kindex[d] < ksize[d]) break;
            p -= kstride[d] * ksize[d], o -= kostride[d] * ksize[d];
            kindex[d] = 0;
        }
    }
    return MG_OK;
}

/* ---- backward ------------------------------------------------------------------------------ */
/* A view of t, a contiguous tensor holding one element per kept position (the forward result, its
 * indices, gout, or a scratch of gout's shape), with gin's ndim: size 1 on the reduced dims, so
 * that it broadcasts against the input. */
static mg_tensor *kept_view(mg_view_buf *vb, const mg_tensor *t, const mg_tensor *gin, uint32_t dims) {
    mg_tensor *v = mg_view_of(vb, t, gin->ndim);
    int64_t kept[MG_MAX_DIMS], strides[MG_MAX_DIMS];
    int nk = 0;
    for (int d = 0; d < gin->ndim; d++)
        if (!((dims >> d) & 1)) kept[nk++] = gin->size[d];
    mg_contiguous_strides(nk, kept, strides);
    for (int d = 0, k = 0; d < gin->ndim; d++) {
        if ((dims >> d) & 1) {
            v->size[d] = 1, v->stride[d] = 0;
        } else {
            v->size[d] = kept[k], v->stride[d] = strides[k];
            k++;
        }
    }
    v->numel = t->numel;
    return v;
}

/* out <- op(x, number) */
static mg_status with_number(mg_ctx *ctx, mg_binary_op op, mg_tensor *out, const mg_tensor *x, double v) {
    mg_scalar s;
    mg_scalar_init(&s, (mg_dtype)x->dtype, v, (int64_t)v);
    return mg_binary(ctx, op, out, x, &s.t);
}

/* out <- where(cond, 0, out) */
static mg_status zero_where(mg_ctx *ctx, mg_tensor *out, const mg_tensor *cond) {
    mg_scalar z;
    mg_scalar_init(&z, (mg_dtype)out->dtype, 0, 0);
    return mg_where(ctx, out, cond, &z.t, out);
}

/* The scratch tensors of one rule, freed together on every path. */
enum { NSCRATCH = 6 };
typedef struct scratches {
    mg_scratch s[NSCRATCH];
    int n;
} scratches;
static mg_status take(mg_ctx *ctx, scratches *ss, mg_tensor **t, mg_dtype dt, int ndim, const int64_t *size) {
    mg_scratch *sc = &ss->s[ss->n++];
    mg_status st = mg_scratch_new(ctx, sc, dt, ndim, size);
    *t = &sc->t;
    return st;
}
static mg_status release(mg_ctx *ctx, scratches *ss, mg_status st) {
    for (int k = 0; k < ss->n; k++)
        if (ss->s[k].s.data) mg_scratch_free(ctx, &ss->s[k]);
    return st;
}

/* gin <- gout spread back over the reduced dims (iarg[0]: the dims mask), times `scale`. gout is
 * contiguous (the engine makes every gradient fresh), with or without the reduced dims. */
static mg_status spread(mg_ctx *ctx, const mg_backward_args *a, mg_tensor *gin, double scale) {
    const mg_tensor *g = a->gout;
    if (g->numel == 1 && mg_is_floating((mg_dtype)g->dtype) && g->dtype == gin->dtype) {
        /* a reduction to one value (a loss): one pass writing g * scale, rounded as the two-step
         * path rounds it (the gradient in gin's dtype, then the product in that dtype) */
        const double v = g->dtype == MG_FLOAT32 ? (double)*(const float *)mg_tensor_data(g)
                                                : *(const double *)mg_tensor_data(g);
        const double product = g->dtype == MG_FLOAT32 ? (double)((float)v * (float)scale) : v * scale;
        return mg_fill(ctx, gin, scale != 1.0 ? product : v, 0);
    }
    mg_view_buf vb;
    mg_status st = mg_copy(ctx, gin, kept_view(&vb, a->gout, gin, (uint32_t)a->node->iarg[0]));
    if (st == MG_OK && scale != 1.0) st = with_number(ctx, MG_BIN_MUL, gin, gin, scale);
    return st;
}

/* The value every element of a sum's or mean's gradient has when it reduced all of x to one
 * element: spread's one-pass value, into the 0-d `one`. */
bool mg_reduce_backward_uniform(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *one, mg_status *st) {
    const mg_tensor *g = a->gout, *x = a->inputs[i];
    const mg_reduce_op op = (mg_reduce_op)a->node->op;
    if ((op != MG_RED_SUM && op != MG_RED_MEAN) || g->numel != 1 || x->numel == 0 || g->dtype != x->dtype ||
        !mg_is_floating((mg_dtype)g->dtype) || one->ndim != 0 || one->dtype != x->dtype)
        return false;
    /* all of x in one group: the dims not reduced have size 1, so the count is x's numel */
    *st = spread(ctx, a, one, op == MG_RED_MEAN ? 1.0 / (double)x->numel : 1.0);
    return true;
}

/* prod: dx_k = dy * (product of the other elements of x_k's group). Without a zero in the group
 * that is y / x_k; with one zero, the product of the nonzeros at the zero and 0 elsewhere; with
 * two or more, 0 everywhere (no division by zero anywhere). */
static mg_status prod_backward(mg_ctx *ctx, const mg_backward_args *a, mg_tensor *gin, uint32_t dims) {
    const mg_tensor *x = a->inputs[0], *g = a->gout;
    const mg_dtype dt = (mg_dtype)gin->dtype;
    scratches ss = {.n = 0};
    mg_tensor *zero, *xs, *pp, *cnt, *e1, *e0;
    mg_view_buf v1, v2, v3;
    mg_status st = take(ctx, &ss, &zero, MG_BOOL, x->ndim, x->size);
    if (st == MG_OK) st = take(ctx, &ss, &xs, dt, x->ndim, x->size);
    if (st == MG_OK) st = take(ctx, &ss, &pp, dt, g->ndim, g->size);
    if (st == MG_OK) st = take(ctx, &ss, &cnt, MG_INT64, g->ndim, g->size);
    if (st == MG_OK) st = take(ctx, &ss, &e1, MG_BOOL, g->ndim, g->size);
    if (st == MG_OK) st = take(ctx, &ss, &e0, MG_BOOL, g->ndim, g->size);
    if (st != MG_OK) return release(ctx, &ss, st);
    mg_scalar one;
    mg_scalar_init(&one, dt, 1, 1);
    st = with_number(ctx, MG_BIN_EQ, zero, x, 0);
    if (st == MG_OK) st = mg_where(ctx, xs, zero, &one.t, x);          /* x with zeros as 1 */
    if (st == MG_OK) st = mg_reduce(ctx, MG_RED_PROD, pp, NULL, xs, dims, NULL); /* prod of nonzeros */
    if (st == MG_OK) st = mg_reduce(ctx, MG_RED_SUM, cnt, NULL, zero, dims, NULL); /* zeros per group */
    if (st == MG_OK) st = with_number(ctx, MG_BIN_EQ, e1, cnt, 1);
    if (st == MG_OK) st = with_number(ctx, MG_BIN_EQ, e0, cnt, 0);
    /* keep: at a zero when it is the only one, elsewhere when there is none */
    if (st == MG_OK)
        st = mg_where(ctx, zero, zero, kept_view(&v1, e1, gin, dims), kept_view(&v2, e0, gin, dims));
    if (st == MG_OK) st = mg_binary(ctx, MG_BIN_DIV, gin, kept_view(&v3, pp, gin, dims), xs);
    if (st == MG_OK) {
        mg_scalar z;
        mg_scalar_init(&z, dt, 0, 0);
        st = mg_where(ctx, gin, zero, gin, &z.t);
    }
    if (st == MG_OK) st = mg_binary(ctx, MG_BIN_MUL, gin, gin, kept_view(&v1, g, gin, dims));
    return release(ctx, &ss, st);
}

/* mask <- (x == y) or both NaN (y a kept view): the elements a max / min / inf-norm chose */
static mg_status chosen(mg_ctx *ctx, scratches *ss, mg_tensor *mask, const mg_tensor *x,
                        const mg_tensor *ykept, const mg_tensor *gin, uint32_t dims) {
    mg_tensor *xn, *yn;
    mg_view_buf vb;
    mg_status st = take(ctx, ss, &xn, MG_BOOL, x->ndim, x->size);
    if (st == MG_OK) st = take(ctx, ss, &yn, MG_BOOL, ykept->ndim, ykept->size);
    if (st == MG_OK) st = mg_binary(ctx, MG_BIN_EQ, mask, x, kept_view(&vb, ykept, gin, dims));
    if (st == MG_OK) st = mg_binary(ctx, MG_BIN_NE, xn, x, x);
    if (st == MG_OK) st = mg_binary(ctx, MG_BIN_NE, yn, ykept, ykept);
    if (st == MG_OK) st = mg_where(ctx, mask, xn, kept_view(&vb, yn, gin, dims), mask);
    return st;
}

/* gin <- g / (chosen elements per group) at the elements of x equal to y (a kept result), 0
 * elsewhere; times sign(s) unless s is NULL (the inf-norm, with x = |s|) */
static mg_status shared(mg_ctx *ctx, const mg_backward_args *a, mg_tensor *gin, uint32_t dims,
                        const mg_tensor *x, const mg_tensor *y, const mg_tensor *s) {
    const mg_tensor *g = a->gout;
    scratches ss = {.n = 0};
    mg_tensor *mask, *cnt, *gk;
    mg_view_buf vb;
    mg_status st = take(ctx, &ss, &mask, MG_BOOL, x->ndim, x->size);
    if (st == MG_OK) st = take(ctx, &ss, &cnt, MG_INT64, g->ndim, g->size);
    if (st == MG_OK) st = take(ctx, &ss, &gk, (mg_dtype)gin->dtype, g->ndim, g->size);
    if (st == MG_OK) st = chosen(ctx, &ss, mask, x, y, gin, dims);
    if (st == MG_OK) st = mg_reduce(ctx, MG_RED_SUM, cnt, NULL, mask, dims, NULL);
    if (st == MG_OK) st = mg_copy(ctx, gk, cnt);
    if (st == MG_OK) st = mg_binary(ctx, MG_BIN_DIV, gk, g, gk);
    if (st == MG_OK) st = s ? mg_unary(ctx, MG_UN_SIGN, gin, s) : mg_fill(ctx, gin, 1, 1);
    if (st == MG_OK) {
        mg_scalar z;
        mg_scalar_init(&z, (mg_dtype)gin->dtype, 0, 0);
        st = mg_where(ctx, gin, mask, gin, &z.t);
    }
    if (st == MG_OK) st = mg_binary(ctx, MG_BIN_MUL, gin, gin, kept_view(&vb, gk, gin, dims));
    return release(ctx, &ss, st);
}

/* max / min: over a dim the saved int64 indices (1-based) say where dy goes; over all elements (or
 * a list of dims) dy is shared evenly among the elements equal to the result, as PyTorch 1.13. */
static mg_status best_backward(mg_ctx *ctx, const mg_backward_args *a, mg_tensor *gin, uint32_t dims) {
    const mg_tensor *saved = a->saved[0];
    if (saved->dtype != MG_INT64) return shared(ctx, a, gin, dims, a->inputs[0], saved, NULL);
    if (gin->ndim == 0) return mg_copy(ctx, gin, a->gout);
    int dim = 0;
    while (!((dims >> dim) & 1)) dim++;
    mg_view_buf vi, vg;
    mg_status st = mg_fill(ctx, gin, 0, 0);
    if (st == MG_OK)
        st = mg_scatter(ctx, gin, dim, kept_view(&vi, saved, gin, dims), kept_view(&vg, a->gout, gin, dims));
    return st;
}

/* var: dx = dy 2 (x - mean) / (n - correction); std: dx = dy (x - mean) / ((n - correction) y),
 * 0 where y is 0 (PyTorch's masked form). */
static mg_status var_backward(mg_ctx *ctx, const mg_backward_args *a, mg_tensor *gin, uint32_t dims,
                              int64_t count, bool std) {
    const mg_tensor *x = a->inputs[0], *g = a->gout, *y = a->saved[0];
    scratches ss = {.n = 0};
    mg_tensor *mean, *gk = NULL, *yz = NULL;
    mg_view_buf vb;
    mg_status st = take(ctx, &ss, &mean, (mg_dtype)gin->dtype, g->ndim, g->size);
    if (st == MG_OK && std) st = take(ctx, &ss, &gk, (mg_dtype)gin->dtype, g->ndim, g->size);
    if (st == MG_OK && std) st = take(ctx, &ss, &yz, MG_BOOL, g->ndim, g->size);
    if (st == MG_OK) st = mg_reduce(ctx, MG_RED_MEAN, mean, NULL, x, dims, NULL);
    if (st == MG_OK && std) {
        st = mg_binary(ctx, MG_BIN_DIV, gk, g, y);
        if (st == MG_OK) st = with_number(ctx, MG_BIN_EQ, yz, y, 0);
        if (st == MG_OK) st = zero_where(ctx, gk, yz);
    }
    if (st == MG_OK) st = mg_binary(ctx, MG_BIN_SUB, gin, x, kept_view(&vb, mean, gin, dims));
    if (st == MG_OK) st = mg_binary(ctx, MG_BIN_MUL, gin, gin, kept_view(&vb, std ? gk : g, gin, dims));
    const double d = (double)(count - a->node->iarg[2]); /* n - correction <= 0: inf / nan, as PyTorch */
    if (st == MG_OK) st = with_number(ctx, MG_BIN_MUL, gin, gin, (std ? 1.0 : 2.0) / (d > 0 ? d : 0));
    return release(ctx, &ss, st);
}

/* norm, p = darg[0]: 0: no gradient; inf / -inf: dy sign(x) shared among the elements whose |x| is
 * the result; otherwise dx = sign(x) |x|^(p-1) (0 at x = 0) times dy / y^(p-1), which is 0 where
 * y = 0 (for p >= 1; p < 1: dy y^(1-p)), as PyTorch 1.13's linalg_vector_norm_backward. p = 2
 * gives dy x / y, p = 1 dy sign(x). */
static mg_status norm_backward(mg_ctx *ctx, const mg_backward_args *a, mg_tensor *gin, uint32_t dims) {
    const mg_tensor *x = a->inputs[0], *g = a->gout, *y = a->saved[0];
    const double p = a->node->darg[0];
    if (p == 0) return mg_fill(ctx, gin, 0, 0);
    const mg_dtype dt = (mg_dtype)gin->dtype;
    scratches ss = {.n = 0};
    mg_tensor *ax, *gk, *mask;
    mg_view_buf vb;
    mg_status st = take(ctx, &ss, &ax, dt, x->ndim, x->size);
    if (st == MG_OK) st = mg_unary(ctx, MG_UN_ABS, ax, x);
    if (st != MG_OK) return release(ctx, &ss, st);
    if (isinf(p)) {
        return release(ctx, &ss, shared(ctx, a, gin, dims, ax, y, x));
    }
    st = take(ctx, &ss, &gk, dt, g->ndim, g->size);
    if (st == MG_OK) st = take(ctx, &ss, &mask, MG_BOOL, x->ndim, x->size);
    /* gin <- sign(x) |x|^(p-1), 0 at x = 0 */
    if (st == MG_OK) st = with_number(ctx, MG_BIN_POW, gin, ax, p - 1);
    if (st == MG_OK) st = mg_unary(ctx, MG_UN_SIGN, ax, x);
    if (st == MG_OK) st = mg_binary(ctx, MG_BIN_MUL, gin, gin, ax);
    if (st == MG_OK) st = with_number(ctx, MG_BIN_EQ, mask, x, 0);
    if (st == MG_OK) st = zero_where(ctx, gin, mask);
    /* gk <- dy / y^(p-1), 0 where y = 0; p < 1: dy y^(1-p) */
    if (st == MG_OK) st = with_number(ctx, MG_BIN_POW, gk, y, p < 1 ? 1 - p : p - 1);
    if (st == MG_OK) st = mg_binary(ctx, p < 1 ? MG_BIN_MUL : MG_BIN_DIV, gk, g, gk);
    if (st == MG_OK && p >= 1) {
        mg_tensor *yz;
        st = take(ctx, &ss, &yz, MG_BOOL, g->ndim, g->size);
        if (st == MG_OK) st = with_number(ctx, MG_BIN_EQ, yz, y, 0);
        if (st == MG_OK) st = zero_where(ctx, gk, yz);
    }
    if (st == MG_OK) st = mg_binary(ctx, MG_BIN_MUL, gin, gin, kept_view(&vb, gk, gin, dims));
    return release(ctx, &ss, st);
}

/* cumsum: dx_k = sum_{j >= k} dy_j, a cumsum of dy read backwards, written backwards. */
static mg_status cumsum_backward(mg_ctx *ctx, const mg_backward_args *a, mg_tensor *gin) {
    const mg_tensor *g = a->gout;
    if (gin->numel == 0) return MG_OK;
    if (gin->ndim == 0) return mg_copy(ctx, gin, g);
    const int dim = (int)a->node->iarg[0];
    const int64_t n = g->size[dim];
    mg_view_buf vg, vo;
    mg_tensor *gr = mg_view_of(&vg, g, g->ndim), *ginr = mg_view_of(&vo, gin, gin->ndim);
    memcpy(gr->size, g->size, sizeof(int64_t) * g->ndim);
    memcpy(gr->stride, g->stride, sizeof(int64_t) * g->ndim);
    memcpy(ginr->size, gin->size, sizeof(int64_t) * gin->ndim);
    memcpy(ginr->stride, gin->stride, sizeof(int64_t) * gin->ndim);
    gr->offset += (n - 1) * g->stride[dim], gr->stride[dim] = -g->stride[dim];
    ginr->offset += (n - 1) * gin->stride[dim], ginr->stride[dim] = -gin->stride[dim];
    scratches ss = {.n = 0};
    mg_tensor *sum;
    mg_status st = take(ctx, &ss, &sum, (mg_dtype)g->dtype, g->ndim, g->size);
    if (st == MG_OK) st = mg_cumsum(ctx, sum, gr, dim);
    if (st == MG_OK) st = mg_copy(ctx, ginr, sum);
    return release(ctx, &ss, st);
}

/* cumprod along a line x_0..x_{n-1} with y_j = prod_{i <= j} x_i and z the first zero (n if none):
 *   k < z:  dx_k = (sum_{j >= k} g_j y_j) / x_k     (y_j / x_k is the product without x_k)
 *   k = z:  dx_z = sum_{j >= z} g_j y_{z-1} prod_{z < i <= j} x_i   (y_{-1} = 1)
 *   k > z:  dx_k = 0 (every product without x_k still holds x_z = 0)
 * as PyTorch's cumprod_backward, computed in double over contiguous copies. */
static void dcumprod_line(double *d, const double *x, const double *g, int64_t n, int64_t step) {
    int64_t z = n;
    for (int64_t k = 0; k < n; k++)
        if (x[k * step] == 0) {
            z = k;
            break;
        }
    double y = 1, before = 1, s = 0;
    for (int64_t k = 0; k < n; k++) { /* d_k <- y_k for now, the scan's forward */
        y *= x[k * step];
        if (k == z - 1) before = y;
        d[k * step] = y;
    }
    for (int64_t k = n - 1; k >= 0; k--) {
        s += g[k * step] * d[k * step];
        d[k * step] = k < z ? s / x[k * step] : 0;
    }
    if (z < n) {
        double p = before, sz = g[z * step] * p;
        for (int64_t j = z + 1; j < n; j++) {
            p *= x[j * step];
            sz += g[j * step] * p;
        }
        d[z * step] = sz;
    }
}

static mg_status cumprod_backward(mg_ctx *ctx, const mg_backward_args *a, mg_tensor *gin) {
    const mg_tensor *g = a->gout, *x = a->inputs[0];
    if (gin->numel == 0) return MG_OK;
    if (gin->ndim == 0) return mg_copy(ctx, gin, g);
    const int dim = (int)a->node->iarg[0];
    scratches ss = {.n = 0};
    mg_tensor *cx, *cg, *cd;
    mg_status st = take(ctx, &ss, &cx, MG_FLOAT64, x->ndim, x->size);
    if (st == MG_OK) st = mg_copy(ctx, cx, x);
    if (st == MG_OK) st = take(ctx, &ss, &cg, MG_FLOAT64, x->ndim, x->size);
    if (st == MG_OK) st = mg_copy(ctx, cg, g);
    if (st == MG_OK) st = take(ctx, &ss, &cd, MG_FLOAT64, x->ndim, x->size);
    if (st == MG_OK) {
        int64_t outer = 1, inner = 1;
        const int64_t n = x->size[dim];
        for (int d = 0; d < dim; d++) outer *= x->size[d];
        for (int d = dim + 1; d < x->ndim; d++) inner *= x->size[d];
        double *dp = (double *)mg_tensor_data(cd);
        const double *xp = (const double *)mg_tensor_data(cx), *gp = (const double *)mg_tensor_data(cg);
        for (int64_t o = 0; o < outer; o++)
            for (int64_t j = 0; j < inner; j++) {
                const int64_t base = o * n * inner + j;
                dcumprod_line(dp + base, xp + base, gp + base, n, inner);
            }
        st = mg_copy(ctx, gin, cd);
    }
    return release(ctx, &ss, st);
}

mg_status mg_reduce_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin) {
    (void)i;
    if (a->node->op == MG_RED_CUMSUM) return cumsum_backward(ctx, a, gin);
    if (a->node->op == MG_RED_CUMPROD) return cumprod_backward(ctx, a, gin);
    const uint32_t dims = (uint32_t)a->node->iarg[0];
    int64_t count = 1;
    for (int d = 0; d < gin->ndim; d++)
        if ((dims >> d) & 1) count *= gin->size[d];
    switch ((mg_reduce_op)a->node->op) {
    case MG_RED_SUM: return spread(ctx, a, gin, 1.0);
    case MG_RED_MEAN: return spread(ctx, a, gin, count ? 1.0 / (double)count : 0.0);
    case MG_RED_PROD: return prod_backward(ctx, a, gin, dims);
    case MG_RED_MAX:
    case MG_RED_MIN: return best_backward(ctx, a, gin, dims);
    case MG_RED_VAR: return var_backward(ctx, a, gin, dims, count, false);
    case MG_RED_STD: return var_backward(ctx, a, gin, dims, count, true);
    case MG_RED_NORM: return norm_backward(ctx, a, gin, dims);
    default:
        return mg_fail(ctx, MG_EVALUE, 0, "'%s' is not differentiable", mg_reduce_name((mg_reduce_op)a->node->op));
    }
}
