/* limits.c: this machine's limits, measured the same day as the benchmarks (bench/run.sh builds
 * and runs it with cc -O2 -march=native; it measures the machine, not moongrad).
 *
 *   memory bandwidth, STREAM-like, float32, 1 and 2 threads (pthreads), best of REPS passes:
 *     read  s += a[i]              4 bytes per element
 *     copy  b[i] = a[i]            8 bytes per element (STREAM's count: write-allocate not counted)
 *     triad a[i] = b[i] + s*c[i]   12 bytes per element
 *   at two sizes: the working sets of W7 (three arrays of 10^6 floats, cache-resident here) and of
 *   W5 (X: 16*10^6 floats read once), and at DRAM size (arrays of 2^27 floats = 512 MiB each).
 *   single-core FMA peak: 12 independent accumulators of fused multiply-adds (AVX-512 and AVX2),
 *     register-only, 2 FLOPs per lane.
 * Output: one line per figure, "LIMIT name=... value=... unit=...", parsed by bench/run.sh.
 */
#define _GNU_SOURCE
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

enum kind { READ, COPY, TRIAD };
static const double BYTES[] = {4, 8, 12};

typedef struct {
    enum kind kind;
    float *a, *b, *c;
    size_t lo, hi;
    int reps;
    double sink;
    pthread_barrier_t *bar;
    double *t0, *t1;
} job;

static float read_part(const float *a, size_t lo, size_t hi) {
#ifdef __AVX512F__
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = lo;
    for (; i + 64 <= hi; i += 64) {
        s0 = _mm512_add_ps(s0, _mm512_loadu_ps(a + i));
        s1 = _mm512_add_ps(s1, _mm512_loadu_ps(a + i + 16));
        s2 = _mm512_add_ps(s2, _mm512_loadu_ps(a + i + 32));
        s3 = _mm512_add_ps(s3, _mm512_loadu_ps(a + i + 48));
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
#else
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = lo;
    for (; i + 32 <= hi; i += 32) {
        s0 = _mm256_add_ps(s0, _mm256_loadu_ps(a + i));
        s1 = _mm256_add_ps(s1, _mm256_loadu_ps(a + i + 8));
        s2 = _mm256_add_ps(s2, _mm256_loadu_ps(a + i + 16));
        s3 = _mm256_add_ps(s3, _mm256_loadu_ps(a + i + 24));
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    float s = 0;
    for (int k = 0; k < 8; k++) s += lanes[k];
#endif
    for (; i < hi; i++) s += a[i];
    return s;
}

static void *worker(void *p) {
    job *j = p;
    for (int r = 0; r < j->reps; r++) {
        pthread_barrier_wait(j->bar);
        double t = now();
        if (j->t0[r] == 0 || t < j->t0[r]) j->t0[r] = t; /* races are harmless: timing only */
        switch (j->kind) {
        case READ: j->sink += read_part(j->a, j->lo, j->hi); break;
        case COPY: memcpy(j->b + j->lo, j->a + j->lo, (j->hi - j->lo) * sizeof(float)); break;
        case TRIAD: {
            float *restrict a = j->a;
            const float *restrict b = j->b, *restrict c = j->c;
            size_t i = j->lo;
#ifdef __AVX512F__
            const __m512 s = _mm512_set1_ps(3.0f);
            for (; i + 16 <= j->hi; i += 16)
                _mm512_storeu_ps(a + i, _mm512_fmadd_ps(s, _mm512_loadu_ps(c + i), _mm512_loadu_ps(b + i)));
#else
            const __m256 s = _mm256_set1_ps(3.0f);
            for (; i + 8 <= j->hi; i += 8)
                _mm256_storeu_ps(a + i, _mm256_fmadd_ps(s, _mm256_loadu_ps(c + i), _mm256_loadu_ps(b + i)));
#endif
            for (; i < j->hi; i++) a[i] = b[i] + 3.0f * c[i];
            break;
        }
        }
        pthread_barrier_wait(j->bar);
        t = now();
        if (t > j->t1[r]) j->t1[r] = t;
    }
    return NULL;
}

/* best GB/s over reps passes of `kind` on arrays of n floats, split over nt threads */
static float *A, *B, *C; /* allocated and touched once, the prefixes serve the smaller sizes */

static double bandwidth(enum kind kind, size_t n, int nt, int reps) {
    float *a = A, *b = B, *c = C;
    double *t0 = calloc(reps, sizeof(double)), *t1 = calloc(reps, sizeof(double));
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, nt);
    job jobs[8];
    pthread_t th[8];
    for (int k = 0; k < nt; k++) {
        size_t lo = n * k / nt, hi = n * (k + 1) / nt;
        lo &= ~(size_t)63;
        if (k + 1 < nt) hi &= ~(size_t)63;
        jobs[k] = (job){kind, a, b, c, lo, hi, reps, 0, &bar, t0, t1};
    }
    for (int k = 1; k < nt; k++) pthread_create(&th[k], NULL, worker, &jobs[k]);
    worker(&jobs[0]);
    for (int k = 1; k < nt; k++) pthread_join(th[k], NULL);
    double best = 1e30;
    for (int r = 1; r < reps; r++) /* pass 0 is the warm-up */
        if (t1[r] - t0[r] < best) best = t1[r] - t0[r];
    double sink = 0;
    for (int k = 0; k < nt; k++) sink += jobs[k].sink;
    if (sink == 12345.678) puts("");
    pthread_barrier_destroy(&bar);
    free(t0); free(t1);
    return BYTES[kind] * (double)n / best / 1e9;
}

#define FMA_ITERS 20000000L
__attribute__((target("avx512f"))) static double fma512(void) {
    __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
    __m512 a0 = _mm512_set1_ps(1.0f), a1 = _mm512_set1_ps(1.1f), a2 = _mm512_set1_ps(1.2f),
           a3 = _mm512_set1_ps(1.3f), a4 = _mm512_set1_ps(1.4f), a5 = _mm512_set1_ps(1.5f),
           a6 = _mm512_set1_ps(1.6f), a7 = _mm512_set1_ps(1.7f), a8 = _mm512_set1_ps(1.8f),
           a9 = _mm512_set1_ps(1.9f), a10 = _mm512_set1_ps(2.0f), a11 = _mm512_set1_ps(2.1f);
    double t = now();
    for (long i = 0; i < FMA_ITERS; i++) {
        a0 = _mm512_fmadd_ps(a0, x, y); a1 = _mm512_fmadd_ps(a1, x, y);
        a2 = _mm512_fmadd_ps(a2, x, y); a3 = _mm512_fmadd_ps(a3, x, y);
        a4 = _mm512_fmadd_ps(a4, x, y); a5 = _mm512_fmadd_ps(a5, x, y);
        a6 = _mm512_fmadd_ps(a6, x, y); a7 = _mm512_fmadd_ps(a7, x, y);
        a8 = _mm512_fmadd_ps(a8, x, y); a9 = _mm512_fmadd_ps(a9, x, y);
        a10 = _mm512_fmadd_ps(a10, x, y); a11 = _mm512_fmadd_ps(a11, x, y);
        __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), "+v"(a6),
                         "+v"(a7), "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11));
    }
    t = now() - t;
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    if (_mm512_reduce_add_ps(s) == 12345.0f) puts("");
    return 2.0 * 16 * 12 * FMA_ITERS / t / 1e9;
}

__attribute__((target("avx2,fma"))) static double fma256(void) {
    __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
    __m256 a0 = _mm256_set1_ps(1.0f), a1 = _mm256_set1_ps(1.1f), a2 = _mm256_set1_ps(1.2f),
           a3 = _mm256_set1_ps(1.3f), a4 = _mm256_set1_ps(1.4f), a5 = _mm256_set1_ps(1.5f),
           a6 = _mm256_set1_ps(1.6f), a7 = _mm256_set1_ps(1.7f), a8 = _mm256_set1_ps(1.8f),
           a9 = _mm256_set1_ps(1.9f), a10 = _mm256_set1_ps(2.0f), a11 = _mm256_set1_ps(2.1f);
    double t = now();
    for (long i = 0; i < FMA_ITERS; i++) {
        a0 = _mm256_fmadd_ps(a0, x, y); a1 = _mm256_fmadd_ps(a1, x, y);
        a2 = _mm256_fmadd_ps(a2, x, y); a3 = _mm256_fmadd_ps(a3, x, y);
        a4 = _mm256_fmadd_ps(a4, x, y); a5 = _mm256_fmadd_ps(a5, x, y);
        a6 = _mm256_fmadd_ps(a6, x, y); a7 = _mm256_fmadd_ps(a7, x, y);
        a8 = _mm256_fmadd_ps(a8, x, y); a9 = _mm256_fmadd_ps(a9, x, y);
        a10 = _mm256_fmadd_ps(a10, x, y); a11 = _mm256_fmadd_ps(a11, x, y);
        __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5), "+x"(a6),
                         "+x"(a7), "+x"(a8), "+x"(a9), "+x"(a10), "+x"(a11));
    }
    t = now() - t;
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float lanes[8];
    _mm256_storeu_ps(lanes, s);
    if (lanes[0] == 12345.0f) puts("");
    return 2.0 * 8 * 12 * FMA_ITERS / t / 1e9;
}

static void limit(const char *name, double v, const char *unit) {
    printf("LIMIT name=%s value=%.4g unit=%s\n", name, v, unit);
    fflush(stdout);
}

int main(void) {
    const size_t W7 = 1000000, W5 = 16000000, DRAM = (size_t)1 << 27;
    char name[64];
    A = aligned_alloc(64, DRAM * sizeof(float));
    B = aligned_alloc(64, DRAM * sizeof(float));
    C = aligned_alloc(64, DRAM * sizeof(float));
    if (!A || !B || !C) { fprintf(stderr, "limits: out of memory\n"); return 1; }
    for (size_t i = 0; i < DRAM; i++) { A[i] = 1.0f; B[i] = 2.0f; C[i] = 0.5f; }
    for (int nt = 1; nt <= 2; nt++) {
        snprintf(name, sizeof name, "triad_w7size_%dt", nt);
        limit(name, bandwidth(TRIAD, W7, nt, 40), "GB/s");
        snprintf(name, sizeof name, "read_w5size_%dt", nt);
        limit(name, bandwidth(READ, W5, nt, 12), "GB/s");
        snprintf(name, sizeof name, "read_dram_%dt", nt);
        limit(name, bandwidth(READ, DRAM, nt, 4), "GB/s");
        snprintf(name, sizeof name, "copy_dram_%dt", nt);
        limit(name, bandwidth(COPY, DRAM, nt, 4), "GB/s");
        snprintf(name, sizeof name, "triad_dram_%dt", nt);
        limit(name, bandwidth(TRIAD, DRAM, nt, 4), "GB/s");
    }
    double f2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? fma256() : 0;
    double f5 = __builtin_cpu_supports("avx512f") ? fma512() : 0;
    limit("fma_avx2_1core", f2, "GFLOP/s");
    limit("fma_avx512_1core", f5, "GFLOP/s");
    limit("fma_peak_1core", f5 > f2 ? f5 : f2, "GFLOP/s");
    return 0;
}
