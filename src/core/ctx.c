/* ctx.c: the per-state context (allocator, generator, error detail) and dtype facts. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core.h"
#include "cpu.h"

/* The kernels' instruction set: the highest level the CPU runs, capped by MOONGRAD_ISA=baseline,
 * avx2 or avx512 (a level the CPU lacks gives what it has). Any other value is ignored, with a
 * line on stderr naming the accepted ones. Only x86 has levels above the baseline. */
static int choose_isa(void) {
    static const char *const levels[MG_NISA] = {"baseline", "avx2", "avx512"};
    const int cpu = MG_CPU_ISA();
    const char *env = getenv("MOONGRAD_ISA");
    if (!env || !*env) return cpu;
    for (int i = 0; i < MG_NISA; i++)
        if (strcmp(env, levels[i]) == 0) return i < cpu ? i : cpu;
    fprintf(stderr, "moongrad: MOONGRAD_ISA=%s ignored: expected baseline, avx2 or avx512; using %s\n",
            env, levels[cpu]);
    return cpu;
}

void mg_ctx_init(mg_ctx *ctx, mg_alloc_fn alloc, void *alloc_ud) {
    memset(ctx, 0, sizeof *ctx);
    ctx->alloc = alloc;
    ctx->alloc_ud = alloc_ud;
    ctx->default_dtype = MG_FLOAT32;
    ctx->num_threads = mg_default_threads();
    ctx->isa = choose_isa();
    ctx->seed = 0x6d6f6f6e67726164ull; /* "moongrad": fixed, as PyTorch's default seed is */
    mg_rng_seed(&ctx->rng, ctx->seed);
}

mg_status mg_fail(mg_ctx *ctx, mg_status st, int operand, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->err, sizeof ctx->err, fmt, ap);
    va_end(ap);
    ctx->err_operand = operand;
    return st;
}

void *mg_alloc(mg_ctx *ctx, size_t n) { return ctx->alloc(ctx->alloc_ud, NULL, 0, n ? n : 1); }
void mg_free(mg_ctx *ctx, void *p, size_t n) {
    if (p) ctx->alloc(ctx->alloc_ud, p, n ? n : 1, 0);
}

static const size_t dtype_sizes[MG_NDTYPES] = {sizeof(float), sizeof(double), sizeof(int64_t),
                                               sizeof(bool)};
static const char *const dtype_names[MG_NDTYPES] = {"float32", "float64", "int64", "bool"};

size_t mg_dtype_size(mg_dtype dt) { return dtype_sizes[dt]; }
const char *mg_dtype_name(mg_dtype dt) { return dtype_names[dt]; }
bool mg_dtype_from_name(const char *name, mg_dtype *out) {
    for (int i = 0; i < MG_NDTYPES; i++)
        if (strcmp(name, dtype_names[i]) == 0) {
            *out = (mg_dtype)i;
            return true;
        }
    return false;
}
bool mg_is_floating(mg_dtype dt) { return dt == MG_FLOAT32 || dt == MG_FLOAT64; }

/* Categories rank bool < integer < floating; within floating the wider wins. */
mg_dtype mg_promote(mg_dtype a, mg_dtype b) {
    static const int rank[MG_NDTYPES] = {2, 3, 1, 0}; /* float32, float64, int64, bool */
    return rank[a] >= rank[b] ? a : b;
}

void mg_format_shape(char *buf, size_t cap, int ndim, const int64_t *size) {
    size_t n = 0;
    n += (size_t)snprintf(buf, cap, "{");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, i ? ",%lld" : "%lld", (long long)size[i]);
    if (n < cap) snprintf(buf + n, cap - n, "}");
}

void mg_scalar_init(mg_scalar *sc, mg_dtype dt, double value, int64_t ivalue) {
    memset(sc, 0, sizeof *sc);
    switch (dt) {
    case MG_FLOAT32: sc->v.f32 = (float)value; break;
    case MG_FLOAT64: sc->v.f64 = value; break;
    case MG_INT64: sc->v.i64 = ivalue; break;
    case MG_BOOL: sc->v.b = value != 0; break;
    default: break;
    }
    sc->s.data = (char *)&sc->v;
    sc->s.nbytes = sizeof sc->v;
    sc->t.storage = &sc->s;
    sc->t.numel = 1;
    sc->t.dtype = (uint8_t)dt;
    sc->t.ndim = 0;
    sc->t.size = sc->t.stride = NULL;
}

double mg_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
