/*
 * copy.c: out <- in with dtype conversion and broadcasting, for every pair of dtypes. It backs
 * contiguous(), clone(), to(), copy_(), fill_() and type promotion.
 * Float -> int64 truncates toward zero as PyTorch does; NaN and out-of-range values become
 * INT64_MIN (what x86 gives) instead of C's undefined behaviour.
 */
#include <math.h>
#include <string.h>

#include "../core/cpu.h"
#include "ops.h"

static inline int64_t float_to_i64(double v) {
    return (v >= -9223372036854775808.0 && v < 9223372036854775808.0) ? (int64_t)v : INT64_MIN;
}

/* y = EXPR(v) for v read as FROM, written as TO; once per instruction set (src/core/cpu.h). */
#define DEFINE_CAST(NAME, TO, FROM, EXPR) MG_ISA_STAMP(CAST_LOOPS, NAME, TO, FROM, EXPR)
#define CAST_LOOPS(ISA, NAME, TO, FROM, EXPR)                                         \
    static void MG_ISA_FN(NAME, ISA)(char **p, const int64_t *s, int64_t n, const void *extra) { \
        (void)extra;                                                                  \
        if (s[0] == sizeof(TO) && s[1] == sizeof(FROM)) {                             \
            TO *o = (TO *)p[0];                                                       \
            const FROM *x = (const FROM *)p[1];                                       \
            for (int64_t i = 0; i < n; i++) { const FROM v = x[i]; o[i] = (EXPR); }   \
        } else if (s[0] == sizeof(TO) && s[1] == 0) {                                 \
            TO *o = (TO *)p[0];                                                       \
            const FROM v = *(const FROM *)p[1];                                       \
            const TO y = (EXPR);                                                      \
            for (int64_t i = 0; i < n; i++) o[i] = y;                                 \
        } else {                                                                      \
            char *o = p[0];                                                           \
            const char *x = p[1];                                                     \
            for (int64_t i = 0; i < n; i++, o += s[0], x += s[1]) {                   \
                const FROM v = *(const FROM *)x;                                      \
                *(TO *)o = (EXPR);                                                    \
            }                                                                         \
        }                                                                             \
    }

DEFINE_CAST(f32_from_f32, float, float, v)
DEFINE_CAST(f32_from_f64, float, double, (float)v)
DEFINE_CAST(f32_from_i64, float, int64_t, (float)v)
DEFINE_CAST(f32_from_bool, float, bool, v ? 1.0f : 0.0f)
DEFINE_CAST(f64_from_f32, double, float, (double)v)
DEFINE_CAST(f64_from_f64, double, double, v)
DEFINE_CAST(f64_from_i64, double, int64_t, (double)v)
DEFINE_CAST(f64_from_bool, double, bool, v ? 1.0 : 0.0)
DEFINE_CAST(i64_from_f32, int64_t, float, float_to_i64(v))
DEFINE_CAST(i64_from_f64, int64_t, double, float_to_i64(v))
DEFINE_CAST(i64_from_i64, int64_t, int64_t, v)
DEFINE_CAST(i64_from_bool, int64_t, bool, v ? 1 : 0)
DEFINE_CAST(bool_from_f32, bool, float, v != 0.0f)
DEFINE_CAST(bool_from_f64, bool, double, v != 0.0)
DEFINE_CAST(bool_from_i64, bool, int64_t, v != 0)
DEFINE_CAST(bool_from_bool, bool, bool, v)

/* [isa][to][from] */
#define CASTS_TO(to, isa)                                                                     \
    {to##_from_f32_##isa, to##_from_f64_##isa, to##_from_i64_##isa, to##_from_bool_##isa}
#define CASTS(_, isa) {CASTS_TO(f32, isa), CASTS_TO(f64, isa), CASTS_TO(i64, isa), CASTS_TO(bool, isa)}
static const mg_inner_fn cast_kernels[MG_NISA][MG_NDTYPES][MG_NDTYPES] = MG_ISA_ROW(CASTS, _);

mg_status mg_copy(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in) {
    if (out->dtype == in->dtype && mg_is_contiguous(out) && mg_is_contiguous(in) &&
        mg_same_shape(out, in)) {
        const size_t bytes = (size_t)out->numel * mg_dtype_size((mg_dtype)out->dtype);
        if (bytes) memmove(mg_tensor_data(out), mg_tensor_data(in), bytes);
        return MG_OK;
    }
    const mg_tensor *ops[2] = {out, in};
    mg_iter it;
    mg_iter_init(&it, 2, ops);
    mg_iter_run_parallel(ctx, &it, cast_kernels[ctx->isa][out->dtype][in->dtype], NULL);
    return MG_OK;
}

mg_status mg_fill(mg_ctx *ctx, mg_tensor *out, double value, int64_t ivalue) {
    mg_scalar sc;
    mg_scalar_init(&sc, (mg_dtype)out->dtype, value, ivalue);
    return mg_copy(ctx, out, &sc.t);
}
