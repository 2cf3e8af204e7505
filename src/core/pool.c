/* pool.c: the worker threads of one ctx (see pool.h). pthreads; futexes on Linux.
 *
 * A job is [0, n) cut into `chunks` chunks, chunk k = [n k / chunks, n (k + 1) / chunks). Whoever
 * is free, the caller or a worker, claims the next chunk from one atomic word, `claim`:
 *   bits 0..27 the next chunk, 28..55 the number of chunks, 56..63 how many threads may take part
 *   (thread indices 0..limit-1; the caller is 0).
 * A claim is a compare-and-swap of the whole word, so a thread takes a chunk only of the job that
 * is current at that instant: a worker waking after its job ended finds no chunk left and goes
 * back to waiting. A thread reads the job's description (fn, arg, n) only once it owns a chunk:
 * the job cannot end, and the caller cannot write the next description, before every claimed
 * chunk is counted in `done`. The caller claims chunks like the workers, so it finishes the job
 * alone when no worker gets a CPU; it waits only for chunks a worker has started.
 *
 * Waiting never holds a core another thread needs: a worker spins for the next job at most
 * WORKER_SPIN_NS, yielding its CPU to any thread that wants it every ~1.5 us, and not at all when
 * it runs on the CPU the caller posted from (it would delay the caller, which will post that job);
 * then it sleeps on a futex, and the caller wakes only the workers that may take part. The caller
 * waiting for the last chunks spins briefly, then spins yielding its CPU (to a worker that may be
 * holding one on it), then sleeps.
 *
 * A worker the OS stops in the middle of a chunk (another program busy on its core) holds the job
 * back for up to a scheduler time slice, milliseconds where the job took microseconds; a worker the
 * OS wakes on the caller's own CPU (the others busy) only takes turns with the caller. The caller
 * notices either (a stall: it waited far longer than a chunk takes it; a worker that found itself
 * on the caller's CPU leaves the job and says so) and runs the next jobs alone for a while (16
 * times what was lost, doubled at each strike in a row), then tries the workers again; plans that
 * depend on the thread count (the gemm's) ask mg_pool_threads, which says 1 meanwhile:
 * with a busy core, a run loses little more than the probes' stalls to its 1-thread time; with
 * free cores, stalls do not happen and every job is shared. Which thread runs a chunk never changes
 * what it computes, so results stay the same either way.
 */
#include "pool.h"

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "cpu.h"

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#define POOL_FUTEX 1
/* glibc and musl have it; <sched.h> declares it only with _GNU_SOURCE, which this file cannot set
 * in the amalgamation (the headers come first there) */
int sched_getcpu(void);
#else
#define POOL_FUTEX 0
#endif

/* Chunks per thread taking part: enough that a thread the OS does not run holds back little of
 * the job, few enough that claiming (a compare-and-swap each) costs nothing measurable. */
#define CHUNKS_PER_THREAD 4
/* How long a worker spins for the next job before it sleeps: the parallel ops of a training step
 * come tens of microseconds apart, and waking a sleeping thread costs a few each time. The spin
 * yields its CPU every microsecond or so, so it only ever uses a CPU nothing else wants. */
#define WORKER_SPIN_NS 500000
/* How long the caller waiting for the last chunks spins, then spins yielding its CPU, before it
 * sleeps. */
#define CALLER_SPIN_NS 2000
#define CALLER_YIELD_NS 30000
/* A stall: the caller waited, after its own last chunk, more than twice what a chunk took it plus
 * this slack (a sleeping worker's wake-up, a cache miss's worth of imbalance). */
#define STALL_SLACK_NS 50000
/* Running alone after a stall: STALL_SOLO_FACTOR times the stall, doubled per stall in a row up to
 * 2^STALL_MAX_STRIKES, and never more than STALL_SOLO_MAX_NS. */
#define STALL_SOLO_FACTOR 16
#define STALL_MAX_STRIKES 6
#define STALL_SOLO_MAX_NS 1000000000

#define CLAIM(limit, chunks, next) (((uint64_t)(limit) << 56) | ((uint64_t)(chunks) << 28) | (uint64_t)(next))
#define CLAIM_NEXT(w) ((int64_t)((w)&0xfffffff))
#define CLAIM_CHUNKS(w) ((int64_t)(((w) >> 28) & 0xfffffff))
#define CLAIM_LIMIT(w) ((int)((w) >> 56))
#define MAX_CHUNKS ((int64_t)1 << 20)

#define ALL_BITS 0xffffffffu

struct mg_pool {
    pthread_t threads[MG_MAX_THREADS];
    int nworkers; /* started, besides the caller */
    /* the current job: written by the caller before it publishes `claim`, read by a thread only
     * once it has claimed a chunk */
    mg_range_fn fn;
    void *arg;
    int64_t n;
    /* each group below on its own cache lines: the claim word, polled and swapped by all; the
     * count of finished chunks; the words the caller writes once per job */
    char pad0[64];
    _Atomic uint64_t claim;
    char pad1[64];
    _Atomic uint32_t done;          /* chunks of the current job finished; the caller sleeps on it */
    _Atomic uint32_t caller_sleeps; /* the caller is asleep (or about to be) on done */
    char pad2[64];
    _Atomic uint32_t gen;      /* bumped for every job and at stop; workers sleep on it */
    _Atomic uint64_t sleeping; /* bit i: worker i is asleep (or about to be) on gen */
    _Atomic int caller_cpu;    /* the CPU the caller posted the last job from (-1: unknown) */
    _Atomic int crowded;       /* a worker found itself on caller_cpu (see worker) */
    _Atomic int stop;
    /* the caller's own: jobs posted before solo_until_ns run on the caller alone; strikes counts
     * the stalls in a row (see the top of this file) */
    int64_t solo_until_ns;
    int strikes;
#if !POOL_FUTEX
    pthread_mutex_t mu;
    pthread_cond_t cv;
#endif
};

/* What a ctx's pool becomes when it is shut down: parallel calls then run on the caller alone, so
 * an op run by a finalizer after the ctx's own (during lua_close) cannot start threads again. */
static struct mg_pool closed_pool;

/* 0 on the callers' threads, i on worker i (1..). In the static TLS block (initial-exec), not a
 * dynamic one: after lua_close dlcloses the module, LeakSanitizer's exit check read the freed
 * dynamic block's stale range and crashed, depending on how the heap was laid out since
 * (spec/threads_spec.lua's finalizer-at-close case under `make asan`). */
static _Thread_local int thread_index __attribute__((tls_model("initial-exec")));

int mg_pool_thread_index(void) { return thread_index; }

/* ---- sleeping and waking ------------------------------------------------------------------------ */
#if POOL_FUTEX
/* Sleeps while *word == expected (checked by the kernel as it goes to sleep), until a wake whose
 * bits meet `bits`; may also return spuriously. */
static void wait_word(struct mg_pool *p, _Atomic uint32_t *word, uint32_t expected, uint32_t bits) {
    (void)p;
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_BITSET_PRIVATE, expected, NULL, NULL, bits);
}
static void wake_word(struct mg_pool *p, _Atomic uint32_t *word, uint32_t bits) {
    (void)p;
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_BITSET_PRIVATE, INT_MAX, NULL, NULL, bits);
}
#else
static void wait_word(struct mg_pool *p, _Atomic uint32_t *word, uint32_t expected, uint32_t bits) {
    (void)bits;
    pthread_mutex_lock(&p->mu);
    if (atomic_load(word) == expected) pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
static void wake_word(struct mg_pool *p, _Atomic uint32_t *word, uint32_t bits) {
    (void)word, (void)bits;
    pthread_mutex_lock(&p->mu); /* a thread between its check and its wait holds the lock */
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}
#endif

/* The futex wake bits of worker i (workers 32 apart share one: a spurious wake-up at worst). */
static uint32_t index_bit(int index) { return 1u << (index % 32); }

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int current_cpu(void) {
#if defined(__linux__)
    return sched_getcpu();
#else
    return -1;
#endif
}

/* ---- running a job ------------------------------------------------------------------------------ */
/* Claims and runs chunks of the current job until none is left (or this thread may not take
 * part in it); returns how many it ran. */
static int64_t run_chunks(struct mg_pool *p, int index) {
    uint64_t w = atomic_load_explicit(&p->claim, memory_order_relaxed);
    int64_t ran = 0;
    for (;;) {
        const int64_t k = CLAIM_NEXT(w), chunks = CLAIM_CHUNKS(w);
        if (k >= chunks || index >= CLAIM_LIMIT(w)) return ran;
        if (!atomic_compare_exchange_weak_explicit(&p->claim, &w, w + 1, memory_order_acquire,
                                                   memory_order_relaxed))
            continue; /* w is now the current word */
        /* chunk k is ours, and its job stays current until the chunk is counted done */
        const int64_t n = p->n, begin = n * k / chunks, end = n * (k + 1) / chunks;
        if (end > begin) p->fn(p->arg, begin, end);
        ran++;
        /* seq_cst, against the caller's store of caller_sleeps then load of done */
        if (atomic_fetch_add(&p->done, 1) + 1 == (uint32_t)chunks) {
            if (atomic_load(&p->caller_sleeps)) wake_word(p, &p->done, ALL_BITS);
            return ran;
        }
        w = atomic_load_explicit(&p->claim, memory_order_relaxed);
    }
}

/* The caller, after its last chunk: waits until every chunk is done; returns how long it waited
 * (0 when it did not), t0 being now. */
static int64_t wait_done(struct mg_pool *p, uint32_t chunks, int64_t t0) {
    if (atomic_load_explicit(&p->done, memory_order_acquire) == chunks) return 0;
    for (int i = 1; atomic_load_explicit(&p->done, memory_order_acquire) != chunks; i++) {
        if (i % 16 == 0) {
            const int64_t waited = now_ns() - t0;
            if (waited > CALLER_YIELD_NS) { /* sleep */
                for (;;) {
                    atomic_store(&p->caller_sleeps, 1);
                    const uint32_t d = atomic_load(&p->done);
                    if (d == chunks) break;
                    wait_word(p, &p->done, d, ALL_BITS);
                }
                atomic_store_explicit(&p->caller_sleeps, 0, memory_order_relaxed);
                return now_ns() - t0;
            }
            /* a worker sharing this CPU (holding a chunk we wait for) gets to run */
            if (waited > CALLER_SPIN_NS) sched_yield();
        }
        MG_CPU_PAUSE();
    }
    return now_ns() - t0;
}

/* After a shared job: a stall (a worker stopped mid-chunk), or a worker that woke on the caller's
 * CPU, sends the next jobs to the caller alone for a while; a job without either forgives a
 * strike. */
static void note_stall(struct mg_pool *p, int64_t posted, int64_t own_end, int64_t mine, int64_t waited) {
    const int64_t chunk_ns = (own_end - posted) / (mine > 0 ? mine : 1);
    const int crowded = atomic_exchange_explicit(&p->crowded, 0, memory_order_relaxed);
    if (!crowded && waited <= 2 * chunk_ns + STALL_SLACK_NS) {
        if (p->strikes > 0) p->strikes--;
        return;
    }
    if (p->strikes < STALL_MAX_STRIKES) p->strikes++;
    const int64_t lost = crowded && waited < own_end - posted ? own_end - posted : waited;
    int64_t solo = lost * STALL_SOLO_FACTOR << (p->strikes - 1);
    if (solo > STALL_SOLO_MAX_NS) solo = STALL_SOLO_MAX_NS;
    p->solo_until_ns = own_end + waited + solo;
}

typedef struct worker_start {
    struct mg_pool *pool;
    int index;     /* 1..nworkers */
    uint32_t seen; /* gen when it was made: jobs after it are its to join, even one posted before
                      the thread first runs */
} worker_start;

static void *worker(void *arg) {
    const worker_start start = *(worker_start *)arg;
    free(arg);
    struct mg_pool *p = start.pool;
    const int index = start.index;
    const uint64_t bit = (uint64_t)1 << index;
    thread_index = index;
    uint32_t seen = start.seen;
    for (;;) {
        uint32_t g = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (g == seen) { /* spin a little, unless that takes the caller's CPU */
            const int cpu = current_cpu();
            if (cpu < 0 || cpu != atomic_load_explicit(&p->caller_cpu, memory_order_relaxed)) {
                const int64_t until = now_ns() + WORKER_SPIN_NS;
                for (int i = 1; (g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen; i++) {
                    if (i % 32 == 0) {
                        if (now_ns() > until) break;
                        sched_yield(); /* any other thread that wants this CPU gets it */
                    }
                    MG_CPU_PAUSE();
                }
            }
        }
        while (g == seen) { /* sleep; seq_cst against the caller's bump of gen then load of sleeping */
            atomic_fetch_or(&p->sleeping, bit);
            if (atomic_load(&p->gen) == seen) wait_word(p, &p->gen, seen, index_bit(index));
            atomic_fetch_and(&p->sleeping, ~bit);
            g = atomic_load_explicit(&p->gen, memory_order_acquire);
        }
        seen = g;
        if (atomic_load(&p->stop)) break;
        /* woken on the CPU the caller posted from (the OS put it there: the other cores are busy),
         * it would only take turns with the caller on one core; it says so and leaves the job */
        const int cpu = current_cpu();
        if (cpu >= 0 && cpu == atomic_load_explicit(&p->caller_cpu, memory_order_relaxed)) {
            atomic_store_explicit(&p->crowded, 1, memory_order_relaxed);
            continue;
        }
        run_chunks(p, index);
    }
    return NULL;
}

/* ---- the pool ----------------------------------------------------------------------------------- */
int mg_default_threads(void) {
    const char *env = getenv("MOONGRAD_NUM_THREADS");
    long n = env ? strtol(env, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > MG_MAX_THREADS) n = MG_MAX_THREADS;
    return (int)n;
}

/* The pool with at least `want` workers, or fewer when threads cannot be started; NULL when it
 * was shut down or cannot be made. The pool struct comes from the ctx's allocator; the worker's
 * start record from malloc, because it is freed by the worker thread, which must not call the
 * (possibly not thread-safe) Lua allocator. */
static struct mg_pool *pool_with(mg_ctx *ctx, int want) {
    struct mg_pool *p = ctx->pool;
    if (p == &closed_pool) return NULL;
    if (!p) {
        p = mg_alloc(ctx, sizeof *p);
        if (!p) return NULL;
        memset(p, 0, sizeof *p);
#if !POOL_FUTEX
        if (pthread_mutex_init(&p->mu, NULL) || pthread_cond_init(&p->cv, NULL)) {
            mg_free(ctx, p, sizeof *p);
            return NULL;
        }
#endif
        atomic_init(&p->caller_cpu, -1);
        ctx->pool = p;
    }
    while (p->nworkers < want && p->nworkers < MG_MAX_THREADS - 1) {
        worker_start *s = malloc(sizeof *s);
        if (!s) break;
        s->pool = p;
        s->index = p->nworkers + 1;
        s->seen = atomic_load(&p->gen);
        if (pthread_create(&p->threads[p->nworkers], NULL, worker, s) != 0) {
            free(s);
            break;
        }
        p->nworkers++;
    }
    return p;
}

int mg_pool_threads(const mg_ctx *ctx) {
    const struct mg_pool *p = ctx->pool;
    if (ctx->num_threads <= 1 || thread_index != 0 || p == &closed_pool) return 1;
    if (p && p->solo_until_ns && now_ns() < p->solo_until_ns) return 1;
    return ctx->num_threads;
}

void mg_parallel_for(mg_ctx *ctx, int64_t n, int64_t grain, mg_range_fn fn, void *arg) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int64_t t = ctx->num_threads;
    if (t > n / grain) t = n / grain;
    /* a worker never posts a job: a range function calling mg_parallel_for runs it alone */
    struct mg_pool *p = t > 1 && thread_index == 0 ? pool_with(ctx, (int)t - 1) : NULL;
    if (p && t > p->nworkers + 1) t = p->nworkers + 1;
    const int64_t posted = p && t > 1 ? now_ns() : 0;
    if (!p || t <= 1 || posted < p->solo_until_ns) {
        fn(arg, 0, n);
        return;
    }
    int64_t chunks = n / grain;
    if (chunks > t * CHUNKS_PER_THREAD) chunks = t * CHUNKS_PER_THREAD;
    if (chunks > MAX_CHUNKS) chunks = MAX_CHUNKS;
    p->fn = fn; /* published by the release store of claim */
    p->arg = arg;
    p->n = n;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    atomic_store_explicit(&p->caller_cpu, current_cpu(), memory_order_relaxed);
    atomic_store_explicit(&p->claim, CLAIM(t, chunks, 0), memory_order_release);
    /* wake the sleeping workers that may take part; seq_cst against their store to sleeping then
     * load of gen (a worker going to sleep either sees the new gen or is seen asleep here) */
    atomic_fetch_add(&p->gen, 1);
    const uint64_t helpers = (t >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << t) - 1) & ~(uint64_t)1;
    const uint64_t asleep = atomic_load(&p->sleeping) & helpers;
    if (asleep) {
        uint32_t bits = 0;
        for (int i = 1; i < t; i++)
            if (asleep >> i & 1) bits |= index_bit(i);
        wake_word(p, &p->gen, bits);
    }
    const int64_t mine = run_chunks(p, 0);
    const int64_t own_end = now_ns();
    note_stall(p, posted, own_end, mine, wait_done(p, (uint32_t)chunks, own_end));
}

void mg_pool_shutdown(mg_ctx *ctx) {
    struct mg_pool *p = ctx->pool;
    if (p == &closed_pool) return;
    ctx->pool = &closed_pool;
    if (!p) return;
    atomic_store(&p->stop, 1);
    atomic_fetch_add(&p->gen, 1);
    wake_word(p, &p->gen, ALL_BITS);
    for (int i = 0; i < p->nworkers; i++) pthread_join(p->threads[i], NULL);
#if !POOL_FUTEX
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
#endif
    mg_free(ctx, p, sizeof *p);
}
