/*
 * fill.c: formula fills (eye, arange, linspace) and random fills (uniform, normal, randint,
 * randperm). Nothing here has a backward: the results are leaves.
 *
 * Random fills go through the element iterator with one operand, which keeps out's dims in order
 * (it only drops size-1 dims and merges neighbours), so numbers land in row-major logical order
 * whatever the strides: a transposed view gets the same sequence, laid out transposed.
 * Per dtype there is one DEFINE_DRAW line; to add a distribution, add its lines and its table.
 *
 * Reproducibility: the generator (core/rng.c) is bit-exact everywhere. The affine steps below
 * (u * (b - a) + a, mean + std * z) are exact for the defaults (a = 0, b = 1; mean = 0, std = 1)
 * even where the compiler fuses them into an fma; for other parameters this file needs the same
 * -ffp-contract=off as rng.c on targets with fma (aarch64, x86 with -mfma).
 *
 * The formula fills are compiled once per instruction set (MG_ISA_STAMP, src/core/cpu.h; the
 * ctx's level is called); fma() is correctly rounded, inlined or not, so every level gives the
 * same bits. The random fills are sequential (one generator) and compiled once.
 */
#include <math.h>
#include <string.h>

#include "../core/cpu.h"
#include "fill.h"
#include "ops.h"

/* ================================================================ eye, arange, linspace */

mg_status mg_eye(mg_ctx *ctx, mg_tensor *out) {
    mg_status st = mg_fill(ctx, out, 0, 0);
    if (st != MG_OK) return st;
    mg_scalar one;
    mg_scalar_init(&one, (mg_dtype)out->dtype, 1, 1);
    const size_t item = mg_dtype_size((mg_dtype)out->dtype);
    const int64_t n = out->size[0] < out->size[1] ? out->size[0] : out->size[1];
    char *p = mg_tensor_data(out);
    for (int64_t i = 0; i < n; i++)
        memcpy(p + (size_t)(i * (out->stride[0] + out->stride[1])) * item, &one.v, item);
    return MG_OK;
}

/* PyTorch's CPU arange computes start + step * i in double (acc_type of float is double), then
 * rounds to the dtype. Its x86 build fuses that into one fma, so fma() here: correctly rounded by
 * IEEE 754 on every platform, and the same bits as torch 1.13. (Its AVX2 loop also computes blocks
 * of 8 floats / 4 doubles as base + k * step from each block's first value, which moves some
 * elements of long ranges by an ulp; that depends on the CPU PyTorch runs on, so it is not copied.) */
#define DEFINE_ARANGE(NAME, T) MG_ISA_STAMP(ARANGE_LOOP, NAME, T)
#define ARANGE_LOOP(ISA, NAME, T)                                                               \
    static void MG_ISA_FN(NAME, ISA)(char *p, int64_t s, int64_t n, double start, double step) { \
        for (int64_t i = 0; i < n; i++) ((T *)p)[i * s] = (T)fma(step, (double)i, start);       \
    }
DEFINE_ARANGE(arange_f32, float)
DEFINE_ARANGE(arange_f64, double)

mg_status mg_arange(mg_ctx *ctx, mg_tensor *out, double start, double step) {
    char *p = mg_tensor_data(out);
    const int64_t n = out->size[0], s = out->stride[0];
    switch (out->dtype) {
    case MG_FLOAT32: MG_ISA_PICK(ctx->isa, arange_f32)(p, s, n, start, step); return MG_OK;
    case MG_FLOAT64: MG_ISA_PICK(ctx->isa, arange_f64)(p, s, n, start, step); return MG_OK;
    default:
        return mg_fail(ctx, MG_EDTYPE, 1, "arange does not take dtype '%s' here",
                       mg_dtype_name((mg_dtype)out->dtype));
    }
}

mg_status mg_arange_int(mg_ctx *ctx, mg_tensor *out, int64_t start, int64_t step) {
    if (out->dtype != MG_INT64)
        return mg_fail(ctx, MG_EDTYPE, 1, "integer arange needs an int64 tensor, got %s",
                       mg_dtype_name((mg_dtype)out->dtype));
    int64_t *p = mg_tensor_data(out);
    const int64_t n = out->size[0], s = out->stride[0];
    for (int64_t i = 0; i < n; i++) /* unsigned: wraps instead of undefined overflow */
        p[i * s] = (int64_t)((uint64_t)start + (uint64_t)step * (uint64_t)i);
    return MG_OK;
}

/* torch.linspace (aten/src/ATen/native/cpu/RangeFactoriesKernel.cpp): step = (end - start) /
 * (n - 1) in the dtype (double for integers); the first half counts up from start, the second
 * half down from end, so both ends are exact. Fused multiply-adds as in arange above (FMA is
 * fmaf or fma, STEP_T's). */
#define DEFINE_LINSPACE(NAME, T, STEP_T, FMA) MG_ISA_STAMP(LINSPACE_LOOP, NAME, T, STEP_T, FMA)
#define LINSPACE_LOOP(ISA, NAME, T, STEP_T, FMA)                                               \
    static void MG_ISA_FN(NAME, ISA)(char *p, int64_t s, int64_t n, double start_d,           \
                                     double end_d) {                                          \
        const T start = (T)start_d, end = (T)end_d;                                           \
        const STEP_T step = ((STEP_T)end - (STEP_T)start) / (STEP_T)(n - 1);                  \
        const int64_t half = n / 2;                                                           \
        for (int64_t i = 0; i < n; i++)                                                       \
            ((T *)p)[i * s] = i < half ? (T)FMA(step, (STEP_T)i, (STEP_T)start)               \
                                       : (T)FMA(-step, (STEP_T)(n - i - 1), (STEP_T)end);     \
    }
DEFINE_LINSPACE(linspace_f32, float, float, fmaf)
DEFINE_LINSPACE(linspace_f64, double, double, fma)
DEFINE_LINSPACE(linspace_i64, int64_t, double, fma)

typedef void (*linspace_fn)(char *p, int64_t s, int64_t n, double start, double end);
static const linspace_fn linspace_kernels[MG_NISA][MG_NDTYPES] = MG_ISA_ROW(MG_KERNELS_FI, linspace);

mg_status mg_linspace(mg_ctx *ctx, mg_tensor *out, double start, double end) {
    const linspace_fn fn = linspace_kernels[ctx->isa][out->dtype];
    if (!fn)
        return mg_fail(ctx, MG_EDTYPE, 1, "linspace does not take dtype '%s'",
                       mg_dtype_name((mg_dtype)out->dtype));
    const int64_t n = out->size[0];
    if (n == 1) return mg_fill(ctx, out, start, (int64_t)start); /* step would be 0/0 */
    if (n > 1) fn(mg_tensor_data(out), out->stride[0], n, start, end);
    return MG_OK;
}

/* ================================================================ random fills */

/* The generator and the second value of a normal pair: mutable state behind a const `extra`. */
typedef struct draw_state {
    mg_rng *rng;
    double spare;
    bool has_spare;
} draw_state;

typedef struct draw_args {
    draw_state *st;
    double a, b;     /* uniform: [a, b); normal: mean a, std b */
    int64_t low;     /* randint: low + [0, span) */
    uint64_t span;
} draw_args;

/* Standard normals, both values of each pair used, in order. */
static double next_normal(draw_state *st) {
    if (st->has_spare) {
        st->has_spare = false;
        return st->spare;
    }
    double z0;
    mg_rng_normal_pair(st->rng, &z0, &st->spare);
    st->has_spare = true;
    return z0;
}

/* high - low may exceed INT64_MAX: the span is unsigned and the sum wraps back into range. */
static int64_t next_int(const draw_args *d) {
    return (int64_t)((uint64_t)d->low + mg_rng_below(d->st->rng, d->span));
}

/* out <- EXPR for each element in order; d is the draw_args. */
#define DEFINE_DRAW(NAME, T, EXPR)                                                  \
    static void NAME(char **p, const int64_t *s, int64_t n, const void *extra) {   \
        const draw_args *d = (const draw_args *)extra;                              \
        char *o = p[0];                                                             \
        for (int64_t i = 0; i < n; i++, o += s[0]) *(T *)o = (EXPR);                \
    }

/* as PyTorch's uniform_real_distribution: x * (to - from) + from, in the dtype */
DEFINE_DRAW(uniform_f32, float, mg_rng_uniform_f32(d->st->rng) * ((float)d->b - (float)d->a) + (float)d->a)
DEFINE_DRAW(uniform_f64, double, mg_rng_uniform(d->st->rng) * (d->b - d->a) + d->a)
DEFINE_DRAW(normal_f32, float, (float)(d->a + d->b * next_normal(d->st)))
DEFINE_DRAW(normal_f64, double, d->a + d->b * next_normal(d->st))
DEFINE_DRAW(randint_f32, float, (float)next_int(d))
DEFINE_DRAW(randint_f64, double, (double)next_int(d))
DEFINE_DRAW(randint_i64, int64_t, next_int(d))
DEFINE_DRAW(randint_bool, bool, next_int(d) != 0)

static const mg_inner_fn uniform_kernels[MG_NDTYPES] = {uniform_f32, uniform_f64, NULL, NULL};
static const mg_inner_fn normal_kernels[MG_NDTYPES] = {normal_f32, normal_f64, NULL, NULL};
static const mg_inner_fn randint_kernels[MG_NDTYPES] = {randint_f32, randint_f64, randint_i64,
                                                        randint_bool};

static mg_status draw(mg_ctx *ctx, const char *name, const mg_inner_fn *kernels, mg_tensor *out,
                      draw_args *d) {
    const mg_inner_fn fn = kernels[out->dtype];
    if (!fn)
        return mg_fail(ctx, MG_EDTYPE, 1, "%s needs a floating point tensor, got %s", name,
                       mg_dtype_name((mg_dtype)out->dtype));
    draw_state st = {&ctx->rng, 0, false};
    d->st = &st;
    const mg_tensor *ops[1] = {out};
    mg_iter it;
    mg_iter_init(&it, 1, ops);
    mg_iter_run(&it, fn, d);
    return MG_OK;
}

mg_status mg_uniform(mg_ctx *ctx, mg_tensor *out, double a, double b) {
    draw_args d = {NULL, a, b, 0, 0};
    return draw(ctx, "uniform_", uniform_kernels, out, &d);
}

mg_status mg_normal(mg_ctx *ctx, mg_tensor *out, double mean, double std) {
    draw_args d = {NULL, mean, std, 0, 0};
    return draw(ctx, "normal_", normal_kernels, out, &d);
}

mg_status mg_randint(mg_ctx *ctx, mg_tensor *out, int64_t low, int64_t high) {
    if (low >= high)
        return mg_fail(ctx, MG_EVALUE, 0, "low %lld must be less than high %lld", (long long)low,
                       (long long)high);
    draw_args d = {NULL, 0, 0, low, (uint64_t)high - (uint64_t)low};
    return draw(ctx, "randint", randint_kernels, out, &d);
}

/* Fisher-Yates (Durstenfeld): from the last position down, swap with a uniform earlier one. */
#define DEFINE_RANDPERM(NAME, T)                                                     \
    static void NAME(mg_rng *rng, char *p, int64_t s, int64_t n) {                  \
        T *a = (T *)p;                                                               \
        for (int64_t i = 0; i < n; i++) a[i * s] = (T)(i + 1);                       \
        for (int64_t i = n - 1; i > 0; i--) {                                        \
            const int64_t j = (int64_t)mg_rng_below(rng, (uint64_t)i + 1);           \
            const T tmp = a[i * s];                                                  \
            a[i * s] = a[j * s];                                                     \
            a[j * s] = tmp;                                                          \
        }                                                                            \
    }
DEFINE_RANDPERM(randperm_f32, float)
DEFINE_RANDPERM(randperm_f64, double)
DEFINE_RANDPERM(randperm_i64, int64_t)

typedef void (*randperm_fn)(mg_rng *rng, char *p, int64_t s, int64_t n);
static const randperm_fn randperm_kernels[MG_NDTYPES] = {randperm_f32, randperm_f64, randperm_i64, NULL};

mg_status mg_randperm(mg_ctx *ctx, mg_tensor *out) {
    const randperm_fn fn = randperm_kernels[out->dtype];
    if (!fn)
        return mg_fail(ctx, MG_EDTYPE, 1, "randperm does not take dtype '%s'",
                       mg_dtype_name((mg_dtype)out->dtype));
    /* float32 holds every integer only up to 2^24 (PyTorch refuses larger n too) */
    if (out->dtype == MG_FLOAT32 && out->size[0] > ((int64_t)1 << 24))
        return mg_fail(ctx, MG_EVALUE, 1, "n = %lld is too large for float32 (at most 2^24)",
                       (long long)out->size[0]);
    fn(&ctx->rng, mg_tensor_data(out), out->stride[0], out->size[0]);
    return MG_OK;
}
