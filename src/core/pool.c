/* pool.c: a small fork-join pool per ctx (see pool.h). pthreads only. */
#include "pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"
#include "cpu.h"

struct mg_pool {
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    pthread_t threads[MG_MAX_THREADS];
    int nworkers;        /* started, besides the caller */
    _Atomic uint64_t generation; /* bumped for every job */
    _Atomic int pending;         /* workers still running the current job */
    _Atomic int stop;
    /* the current job: chunk k of `chunks` is [n k / chunks, n (k + 1) / chunks) */
    mg_range_fn fn;
    void *arg;
    int64_t n;
    int chunks;
};

typedef struct worker_start {
    struct mg_pool *pool;
    int index;     /* 1..nworkers: the chunk it runs */
    uint64_t seen; /* the generation when it was made: jobs after it are its to run, even one
                      posted before the thread first takes the lock */
} worker_start;

static void run_chunk(struct mg_pool *p, int k) {
    const int64_t begin = p->n * k / p->chunks, end = p->n * (k + 1) / p->chunks;
    if (end > begin) p->fn(p->arg, begin, end);
}

/* Waiting spins this many rounds before sleeping: a job posted within a few microseconds (the
 * next op of a loop) then starts without the cost of waking a sleeping thread. */
#define SPIN_ROUNDS 20000

/* Tells the CPU this is a spin-wait (x86 `pause`): a sibling hyperthread keeps running at speed. */
static inline void spin_pause(void) { MG_CPU_PAUSE(); }

static void *worker(void *arg) {
    worker_start start = *(worker_start *)arg;
    free(arg);
    struct mg_pool *p = start.pool;
    uint64_t seen = start.seen;
    for (;;) {
        for (int i = 0; i < SPIN_ROUNDS && atomic_load(&p->generation) == seen && !atomic_load(&p->stop); i++)
            spin_pause();
        if (atomic_load(&p->generation) == seen && !atomic_load(&p->stop)) {
            pthread_mutex_lock(&p->mu);
            while (!atomic_load(&p->stop) && atomic_load(&p->generation) == seen)
                pthread_cond_wait(&p->wake, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop)) break;
        seen = atomic_load(&p->generation);
        if (start.index >= p->chunks) continue; /* not needed for this job */
        run_chunk(p, start.index);
        if (atomic_fetch_sub(&p->pending, 1) == 1) { /* the last one tells the caller */
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

int mg_default_threads(void) {
    const char *env = getenv("MOONGRAD_NUM_THREADS");
    long n = env ? strtol(env, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > MG_MAX_THREADS) n = MG_MAX_THREADS;
    return (int)n;
}

/* The pool with at least `want` workers, or fewer when threads cannot be started. The pool
 * struct comes from the ctx's allocator; the worker's start record from malloc, because it is
 * freed by the worker thread, which must not call the (possibly not thread-safe) Lua allocator. */
static struct mg_pool *pool_with(mg_ctx *ctx, int want) {
    struct mg_pool *p = ctx->pool;
    if (!p) {
        p = mg_alloc(ctx, sizeof *p);
        if (!p) return NULL;
        memset(p, 0, sizeof *p);
        if (pthread_mutex_init(&p->mu, NULL) || pthread_cond_init(&p->wake, NULL) ||
            pthread_cond_init(&p->done, NULL)) {
            mg_free(ctx, p, sizeof *p);
            return NULL;
        }
        ctx->pool = p;
    }
    while (p->nworkers < want && p->nworkers < MG_MAX_THREADS - 1) {
        worker_start *s = malloc(sizeof *s);
        if (!s) break;
        s->pool = p;
        s->index = p->nworkers + 1;
        s->seen = p->generation;
        if (pthread_create(&p->threads[p->nworkers], NULL, worker, s) != 0) {
            free(s);
            break;
        }
        p->nworkers++;
    }
    return p;
}

void mg_parallel_for(mg_ctx *ctx, int64_t n, int64_t grain, mg_range_fn fn, void *arg) {
    int64_t t = ctx->num_threads;
    if (grain < 1) grain = 1;
    if (t > n / grain) t = n / grain;
    struct mg_pool *p = t > 1 ? pool_with(ctx, (int)t - 1) : NULL;
    if (p && t > p->nworkers + 1) t = p->nworkers + 1;
    if (!p || t <= 1) {
        if (n > 0) fn(arg, 0, n);
        return;
    }
    p->fn = fn; /* published by the atomic increment below */
    p->arg = arg;
    p->n = n;
    p->chunks = (int)t;
    atomic_store(&p->pending, (int)t - 1);
    atomic_fetch_add(&p->generation, 1);
    pthread_mutex_lock(&p->mu); /* a worker between its check and its wait holds the lock */
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    run_chunk(p, 0);
    for (int i = 0; i < SPIN_ROUNDS && atomic_load(&p->pending) > 0; i++)
        spin_pause();
    if (atomic_load(&p->pending) > 0) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->pending) > 0) pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}

void mg_pool_shutdown(mg_ctx *ctx) {
    struct mg_pool *p = ctx->pool;
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nworkers; i++) pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    mg_free(ctx, p, sizeof *p);
    ctx->pool = NULL;
}
