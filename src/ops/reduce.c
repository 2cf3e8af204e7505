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
 * n elements at stride s. Each is one DEFINE_ line per dtype; `steps` indexes them by op and
 * dtype (NULL: the dtype is refused). `emit` turns the accumulator into the output element.
 * float32 folds accumulate in double and are rounded once at the end.
 *
 * The order is fixed (run after run, element after element), so results are bit-identical on
 * every run. TODO(#threads): split the output elements between threads (same result); splitting
 * one long run would need fixed-size chunks combined in chunk order to stay deterministic.
 *
 * To add a reduction: a line in MG_REDUCE_OPS (reduce.h), its DEFINE_ lines and row in `steps`,
 * its initial accumulator in acc_init, its result in emit, and its dtype rule in mg_reduce_dtype.
 */
#include <math.h>
#include <string.h>

#include "reduce.h"

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

/* int64 sums and products wrap around as in PyTorch (signed overflow is undefined in C) */
#define WRAP(op, a, b) ((int64_t)((uint64_t)(a) op (uint64_t)(b)))

/* A fold r = EXPR(r, v) over n elements of type T at byte stride s, into the ACC field F. */
#define DEFINE_FOLD(NAME, T, ACC, F, EXPR)                                                     \
    static void NAME(acc *a, const char *p, int64_t n, int64_t s, int64_t base,              \
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

/* sum: y = sum x.  Backward: dx += dy (broadcast back over the reduced dims). */
DEFINE_FOLD(sum_f32, float, double, f, r + v)
DEFINE_FOLD(sum_f64, double, double, f, r + v)
DEFINE_FOLD(sum_i64, int64_t, int64_t, i, WRAP(+, r, v))
DEFINE_FOLD(sum_bool, bool, int64_t, i, r + v)

/* prod: y = prod x.  Backward: dx_k += dy * prod_{j != k} x_j (y / x_k when no x is 0; with zeros
 * the product of the others, computed without dividing). */
DEFINE_FOLD(prod_f32, float, double, f, r * v)
DEFINE_FOLD(prod_f64, double, double, f, r * v)
DEFINE_FOLD(prod_i64, int64_t, int64_t, i, WRAP(*, r, v))
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
DEFINE_FOLD(norm2_f32, float, double, f, r + (double)v * v)
DEFINE_FOLD(norm2_f64, double, double, f, r + v * v)
DEFINE_FOLD(norm1_f32, float, double, f, r + fabs(v))
DEFINE_FOLD(norm1_f64, double, double, f, r + fabs(v))
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
#define DEFINE_WELFORD(NAME, T)                                                                \
    static void NAME(acc *a, const char *p, int64_t n, int64_t s, int64_t base,              \
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
#define DEFINE_BEST(NAME, T, ACC, F, BETTER)                                                   \
    static void NAME(acc *a, const char *p, int64_t n, int64_t s, int64_t base,              \
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

/* [op][dtype: float32, float64, int64, bool]; NORM's row is its p = 2 kernel (see pick_step) */
static const step_fn steps[MG_NREDUCE][MG_NDTYPES] = {
    [MG_RED_SUM] = {sum_f32, sum_f64, sum_i64, sum_bool},
    [MG_RED_PROD] = {prod_f32, prod_f64, prod_i64, prod_bool},
    [MG_RED_MEAN] = {sum_f32, sum_f64, NULL, NULL},
    [MG_RED_MAX] = {max_f32, max_f64, max_i64, max_bool},
    [MG_RED_MIN] = {min_f32, min_f64, min_i64, min_bool},
    [MG_RED_ARGMAX] = {max_f32, max_f64, max_i64, max_bool},
    [MG_RED_ARGMIN] = {min_f32, min_f64, min_i64, min_bool},
    [MG_RED_VAR] = {var_f32, var_f64, NULL, NULL},
    [MG_RED_STD] = {var_f32, var_f64, NULL, NULL},
    [MG_RED_NORM] = {norm2_f32, norm2_f64, NULL, NULL},
    [MG_RED_ANY] = {any_f32, any_f64, any_i64, any_bool},
    [MG_RED_ALL] = {all_f32, all_f64, all_i64, all_bool},
};

#define MG_NAME_REDUCE(e, name) name,
static const char *const names[MG_NREDUCE] = {MG_REDUCE_OPS(MG_NAME_REDUCE)};
const char *mg_reduce_name(mg_reduce_op op) { return names[op]; }

static step_fn pick_step(mg_reduce_op op, mg_dtype dt, const mg_reduce_args *args) {
    if (op != MG_RED_NORM || !steps[op][dt]) return steps[op][dt];
    const bool f32 = dt == MG_FLOAT32;
    const double p = args->p;
    if (p == 2) return f32 ? norm2_f32 : norm2_f64;
    if (p == 1) return f32 ? norm1_f32 : norm1_f64;
    if (p == INFINITY) return f32 ? norminf_f32 : norminf_f64;
    if (p == -INFINITY) return f32 ? normninf_f32 : normninf_f64;
    if (p == 0) return f32 ? norm0_f32 : norm0_f64;
    return f32 ? normp_f32 : normp_f64;
}

mg_status mg_reduce_dtype(mg_ctx *ctx, mg_reduce_op op, mg_dtype in, mg_dtype *out) {
    if (!steps[op][in])
        return mg_fail(ctx, MG_EDTYPE, 1, "%s expects a floating dtype (float32 or float64), got %s",
                       names[op], mg_dtype_name(in));
    switch (op) {
    case MG_RED_SUM:
    case MG_RED_PROD: *out = mg_is_floating(in) ? in : MG_INT64; break;
    case MG_RED_ARGMAX:
    case MG_RED_ARGMIN: *out = MG_INT64; break;
    case MG_RED_ANY:
    case MG_RED_ALL: *out = MG_BOOL; break;
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
    case MG_RED_MEAN: f = a->f / (double)count; break; /* empty: 0 / 0 = nan, as PyTorch */
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

/* Folds the block at p (nr dims, sizes and byte strides, row-major) into a, one run at a time. */
static void fold_block(acc *a, step_fn step, const char *p, int nr, const int64_t *size,
                       const int64_t *stride, const mg_reduce_args *args) {
    const int last = nr - 1;
    int64_t index[MG_MAX_DIMS] = {0}, flat = 0;
    for (;;) {
        step(a, p, size[last], stride[last], flat, args);
        flat += size[last];
        int d = last - 1;
        for (; d >= 0; d--) {
            p += stride[d];
            if (++index[d] < size[d]) break;
            p -= stride[d] * size[d];
            index[d] = 0;
        }
        if (d < 0) return;
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
    const step_fn step = pick_step(op, dt, args);
    mg_dtype odt;
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
        const int64_t n = in->size[i], s = in->stride[i] * item;
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
    int64_t kindex[MG_MAX_DIMS] = {0};
    for (int64_t k = 0; k < nout; k++) {
        acc a;
        acc_init(&a, op, args);
        if (count > 0) fold_block(&a, step, p, nr, rsize, rstride, args);
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
#define DEFINE_CUMSUM(NAME, T, ACC, R, EXPR)                                                   \
    static void NAME(char *o, int64_t os, const char *p, int64_t s, int64_t n) {              \
        ACC r = 0;                                                                            \
        for (int64_t i = 0; i < n; i++, p += s, o += os) {                                    \
            const T v = *(const T *)p;                                                        \
            r = (EXPR);                                                                       \
            *(R *)o = (R)r;                                                                   \
        }                                                                                     \
    }
DEFINE_CUMSUM(cumsum_f32, float, double, float, r + v)
DEFINE_CUMSUM(cumsum_f64, double, double, double, r + v)
DEFINE_CUMSUM(cumsum_i64, int64_t, int64_t, int64_t, WRAP(+, r, v))
DEFINE_CUMSUM(cumsum_bool, bool, int64_t, int64_t, r + v)
typedef void (*scan_fn)(char *o, int64_t os, const char *p, int64_t s, int64_t n);
static const scan_fn cumsums[MG_NDTYPES] = {cumsum_f32, cumsum_f64, cumsum_i64, cumsum_bool};

mg_status mg_cumsum(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in, int dim) {
    const mg_dtype dt = (mg_dtype)in->dtype;
    mg_dtype odt;
    mg_status st = mg_reduce_dtype(ctx, MG_RED_SUM, dt, &odt);
    if (st != MG_OK) return st;
    if (out->dtype != odt || !mg_same_shape(out, in) || !mg_is_contiguous(out))
        return mg_fail(ctx, MG_EVALUE, 0, "cumsum: output of the wrong dtype or shape");
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
        cumsums[dt](o, os, p, s, n);
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
#include "../core/autograd.h"
#include "ops.h"

/* gin <- gout spread back over the reduced dims (iarg[0]: the dims mask), times `scale`. gout is
 * contiguous (the engine makes every gradient fresh), with or without the reduced dims. */
static mg_status spread(mg_ctx *ctx, const mg_backward_args *a, mg_tensor *gin, double scale) {
    const uint32_t dims = (uint32_t)a->node->iarg[0];
    const mg_tensor *g = a->gout;
    mg_view_buf vb;
    mg_tensor *v = mg_view_of(&vb, g, gin->ndim);
    int64_t kept[MG_MAX_DIMS];
    int nk = 0;
    for (int d = 0; d < gin->ndim; d++)
        if (!((dims >> d) & 1)) kept[nk++] = gin->size[d];
    int64_t strides[MG_MAX_DIMS];
    mg_contiguous_strides(nk, kept, strides);
    for (int d = 0, k = 0; d < gin->ndim; d++) {
        if ((dims >> d) & 1) {
            v->size[d] = 1, v->stride[d] = 0;
        } else {
            v->size[d] = kept[k], v->stride[d] = strides[k];
            k++;
        }
    }
    v->numel = g->numel;
    mg_status st = mg_copy(ctx, gin, v); /* the size-1 dims broadcast */
    if (st == MG_OK && scale != 1.0) {
        mg_scalar s;
        mg_scalar_init(&s, (mg_dtype)gin->dtype, scale, 0);
        st = mg_binary(ctx, MG_BIN_MUL, gin, gin, &s.t);
    }
    return st;
}

mg_status mg_reduce_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin) {
    (void)i;
    const uint32_t dims = (uint32_t)a->node->iarg[0];
    int64_t count = 1;
    for (int d = 0; d < gin->ndim; d++)
        if ((dims >> d) & 1) count *= gin->size[d];
    switch ((mg_reduce_op)a->node->op) {
    case MG_RED_SUM: return spread(ctx, a, gin, 1.0);
    case MG_RED_MEAN: return spread(ctx, a, gin, count ? 1.0 / (double)count : 0.0);
    default:
        return mg_fail(ctx, MG_EVALUE, 0, "'%s' has no backward rule yet", names[a->node->op]);
    }
}
