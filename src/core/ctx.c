/* ctx.c: the per-state context (allocator, generator, error detail) and dtype facts. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

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
    const char *huge = getenv("MOONGRAD_HUGE_PAGES");
    ctx->huge_pages = MG_HUGE_PAGES_OS && !(huge && strcmp(huge, "0") == 0);
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

static void *plain_alloc(mg_ctx *ctx, size_t n) { return ctx->alloc(ctx->alloc_ud, NULL, 0, n ? n : 1); }
static void plain_free(mg_ctx *ctx, void *p, size_t n) {
    if (p) ctx->alloc(ctx->alloc_ud, p, n ? n : 1, 0);
}

/* Scratch of MG_BLOCK_MIN bytes or more (a kernel's packed panels, a backward rule's temporary)
 * goes through the block cache too, at its size rounded up to 64 KiB: mg_free gives back exactly
 * what mg_alloc took. */
#define MG_BLOCK_MIN ((size_t)256 << 10)
static int is_block_size(size_t n) { return n >= MG_BLOCK_MIN && n <= SIZE_MAX / 2; }
static size_t block_round(size_t n) { return (n + 0xffff) & ~(size_t)0xffff; }

/* A failure is tried once more after the block cache is emptied (its blocks may be what the host
 * needs back): the caller's error (MG_ENOMEM, naming the bytes) comes only then. */
static void *try_alloc(mg_ctx *ctx, size_t n) {
    if (!is_block_size(n)) return plain_alloc(ctx, n);
    size_t cap = block_round(n);
    return mg_block_get(ctx, &cap, 1);
}
void *mg_alloc(mg_ctx *ctx, size_t n) {
    void *p = try_alloc(ctx, n);
    if (!p && ctx->blocks.count > 0) {
        mg_block_flush(ctx);
        p = try_alloc(ctx, n);
    }
    return p;
}
void mg_free(mg_ctx *ctx, void *p, size_t n) {
    if (p && is_block_size(n)) mg_block_put(ctx, p, block_round(n));
    else plain_free(ctx, p, n);
}

/* ---- the block cache ------------------------------------------------------------------------ */
/* It holds freed blocks up to the larger of this and a quarter of the blocks in use: enough for a
 * training step's transient tensors, and not a second copy of a data set held in blocks. */
#define BLOCK_CACHE_MIN ((size_t)64 << 20)

/* Takes slot i out of the cache (the later ones move down: the order is the order freed) and
 * returns its block. */
static void *cache_take(mg_block_cache *c, int i) {
    void *p = c->p[i];
    c->bytes -= c->n[i];
    for (int j = i; j + 1 < c->count; j++) {
        c->p[j] = c->p[j + 1];
        c->n[j] = c->n[j + 1];
    }
    c->count--;
    return p;
}

/* Large tensors on 4 KiB pages spend their time in TLB misses: a 4 MB result spans 1000 pages, and
 * `c = a + b` over three of them ran at 66 % of the cache's bandwidth (W7), W5's 64 MB X was read
 * at 17 GB/s. On Linux a new block's whole 2 MiB-aligned pages inside it (never a byte outside: the
 * memory is the host allocator's) are marked MADV_HUGEPAGE, so that the kernel backs them with 2 MiB
 * pages when transparent huge pages are set to "madvise" (Debian's default) or "always". Only a hint:
 * the bytes, their owner and the results do not change. W7 10^6: 190-196 -> 170-176 us; W5 9.5-10.0
 * -> 6.7-6.9 ms a step (AMD EPYC Zen 4). Hosts turn it off with mg_set_huge_pages (moongrad.h),
 * users with MOONGRAD_HUGE_PAGES=0. */
static void advise_huge_pages(void *p, size_t n) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const uintptr_t page = MG_HUGE_PAGE, begin = ((uintptr_t)p + page - 1) & ~(page - 1);
    const uintptr_t end = ((uintptr_t)p + n) & ~(page - 1);
    if (end > begin) (void)madvise((void *)begin, end - begin, MADV_HUGEPAGE); /* a refusal changes nothing */
#else
    (void)p, (void)n;
#endif
}

void *mg_block_get(mg_ctx *ctx, size_t *n, int exact) {
    mg_block_cache *c = &ctx->blocks;
    void *p = NULL;
    /* the most recently freed block that fits (LIFO: the likeliest to be in cache) */
    for (int i = c->count - 1; i >= 0 && !p; i--)
        if (exact ? c->n[i] == *n : c->n[i] >= *n && c->n[i] - *n <= *n / 4) {
            *n = c->n[i];
            p = cache_take(c, i);
        }
    if (!p) {
        p = plain_alloc(ctx, *n);
        if (p && ctx->huge_pages) advise_huge_pages(p, *n);
    }
    if (p) c->live += *n;
    return p;
}

void mg_block_put(mg_ctx *ctx, void *p, size_t n) {
    mg_block_cache *c = &ctx->blocks;
    c->live -= n;
    const size_t cap = c->live / 4 > BLOCK_CACHE_MIN ? c->live / 4 : BLOCK_CACHE_MIN;
    if (c->closed || n > cap) {
        plain_free(ctx, p, n);
        return;
    }
    /* make room: the oldest blocks go first */
    while (c->count > 0 && (c->count == MG_BLOCK_SLOTS || c->bytes + n > cap)) {
        const size_t old = c->n[0];
        plain_free(ctx, cache_take(c, 0), old);
    }
    c->p[c->count] = p;
    c->n[c->count] = n;
    c->count++;
    c->bytes += n;
}

void mg_block_flush(mg_ctx *ctx) {
    mg_block_cache *c = &ctx->blocks;
    for (int i = 0; i < c->count; i++) plain_free(ctx, c->p[i], c->n[i]);
    c->count = 0;
    c->bytes = 0;
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
