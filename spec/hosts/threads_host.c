/*
 * threads_host.c: a C host running moongrad in several Lua states at once, one per pthread, as a
 * game engine or a server would (issue 11, item 4). Run from the repository's root (the Lua layer
 * is read from lua/):
 *     make threads-host        (build/threads-host)
 *     make threads-host-tsan   (build-tsan/threads-host: the host and the module's objects built
 *                               with -fsanitize=thread)
 *
 * 1. Training: the same script (manual_seed, an MLP 8-16-3 trained with Adam for 200 steps on
 *    synthetic data, full batch, mg.set_num_threads(2) so that each state's worker pool runs too)
 *    runs once alone, once alone with 1 thread, then in 4 states trained concurrently in 4
 *    pthreads. The final parameters, printed with "%a", must be identical bit for bit.
 * 2. Closing: a state whose pool has live workers is closed, many times and in every way below;
 *    after each lua_close no worker may be left: the threads of this process (/proc/self/task)
 *    are counted before and after.
 *      spinning   lua_close right after a parallel op returned (its workers still spin for the
 *                 next job, WORKER_SPIN_NS)
 *      asleep     lua_close once the workers sleep (a few ms later)
 *      finalizer  a finalizer that runs after the module's own at lua_close runs a parallel op
 *                 (it must run on the closing thread alone, not restart the pool)
 *      elsewhere  the state is made and its pool started in another pthread, then closed here
 *      unused     set_num_threads(4) but no op large enough to start the pool
 *    then 4 pthreads do the same concurrently, and the threads are counted once they are joined.
 * Prints a summary; exits 0 when every check passed.
 * Options: --steps N (training steps, 200), --closes N (sequential closes per kind, 40).
 */
#include <dirent.h>
#include <stdatomic.h>
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "moongrad.h"

#define NSTATES 4

/* The training script: returns the final loss and every parameter, one per line, with "%a". */
static const char *const train_script =
    "local mg = require 'moongrad'\n"
    "mg.manual_seed(20261204)\n"
    "mg.set_num_threads(NUM_THREADS)\n"
    "local N = 16384 -- the hidden layer's 262144 elements: element-wise ops split between threads\n"
    "local x = mg.randn(N, 8)\n"
    "local y = (x:matmul(mg.randn(8, 3)) + mg.randn(N, 3) * 0.1):argmax(2)\n"
    "local model = mg.nn.Sequential(mg.nn.Linear(8, 16), mg.nn.ReLU(), mg.nn.Linear(16, 3))\n"
    "local opt = mg.optim.Adam(model:parameters(), {lr = 0.01})\n"
    "local loss\n"
    "for _ = 1, STEPS do\n"
    "  opt:zero_grad()\n"
    "  loss = mg.F.cross_entropy(model(x), y)\n"
    "  loss:backward()\n"
    "  opt:step()\n"
    "end\n"
    "local out = {string.format('loss %a', loss:item())}\n"
    "for name, p in model:named_parameters() do\n"
    "  local flat = p:detach():reshape(-1)\n"
    "  for i = 1, flat:numel() do out[#out + 1] = string.format('%s[%d] %a', name, i, flat[i]) end\n"
    "end\n"
    "return table.concat(out, '\\n')\n";

/* A state with the standard libraries and moongrad linked in (the Lua layer from lua/). */
static lua_State *new_state(void) {
    lua_State *L = luaL_newstate();
    if (!L) return NULL;
    luaL_openlibs(L);
    luaL_requiref(L, "moongrad.core", luaopen_moongrad_core, 0);
    lua_pop(L, 1);
    if (luaL_dostring(L, "package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path") != LUA_OK) {
        lua_close(L);
        return NULL;
    }
    return L;
}

/* Runs `code` in L; NULL when it ran, else the error message (malloc'd). */
static char *run(lua_State *L, const char *code) {
    if (luaL_dostring(L, code) == LUA_OK) return NULL;
    const char *msg = lua_tostring(L, -1);
    return strdup(msg ? msg : "(error object is not a string)");
}

static int steps = 200;

/* The training script in a new state with `threads` threads: its result (malloc'd), or NULL
 * with the error printed. */
static char *train(int threads) {
    lua_State *L = new_state();
    if (!L) return NULL;
    lua_pushinteger(L, threads);
    lua_setglobal(L, "NUM_THREADS");
    lua_pushinteger(L, steps);
    lua_setglobal(L, "STEPS");
    char *result = NULL;
    char *err = run(L, train_script);
    if (err) {
        fprintf(stderr, "threads_host: training failed: %s\n", err);
        free(err);
    } else {
        result = strdup(lua_tostring(L, -1));
    }
    lua_close(L);
    return result;
}

typedef struct trainer {
    pthread_t thread;
    pthread_barrier_t *start;
    char *result;
} trainer;

static void *trainer_main(void *arg) {
    trainer *t = arg;
    pthread_barrier_wait(t->start); /* all four start together */
    t->result = train(2);
    return NULL;
}

/* 0 when a and b are identical, else the line where they first differ (1-based). */
static int first_difference(const char *a, const char *b) {
    if (!a || !b) return -1;
    int line = 1;
    for (; *a && *a == *b; a++, b++)
        if (*a == '\n') line++;
    return *a == *b ? 0 : line;
}

/* ---- closing ------------------------------------------------------------------------------------ */
/* The threads of this process. */
static int count_threads(void) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* A thread that pthread_join has returned for may still be listed for a moment (the kernel wakes
 * the joiner as the thread exits, before it is reaped): the count after a close is polled until
 * it is back to `expected`, for up to 1 s; a worker outliving lua_close stays counted. Returns
 * the count, and adds the number of polls that found more threads to *late. */
static int threads_settled(int expected, long *late) {
    int n = count_threads();
    for (int i = 0; n > expected && i < 1000; i++) {
        ++*late;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
        n = count_threads();
    }
    return n;
}

/* A parallel element-wise op (2^20 elements) and a product large enough to be split. */
#define PARALLEL_OPS                                                                            \
    "assert((mg.ones(1 << 20) + 1):sum():item() == 2 * (1 << 20))\n"                           \
    "assert(mg.ones(256, 256):matmul(mg.ones(256, 256)):sum():item() == 256 * 256 * 256)\n"

static const char *const open_script =
    "local mg = require 'moongrad.core'\n"
    "mg.set_num_threads(4)\n" PARALLEL_OPS;

/* A finalizer made before the module's runs after it at lua_close: its ops must run on the
 * closing thread alone. It reports the sum it got to the host (report_sum). */
static const char *const finalizer_script =
    "local mg\n"
    "KEEP = setmetatable({}, {__gc = function()\n"
    "  mg.set_num_threads(4)\n"
    "  report_sum((mg.ones(1 << 20) + 1):sum():item())\n"
    "end})\n"
    "mg = require 'moongrad.core'\n"
    "mg.set_num_threads(4)\n" PARALLEL_OPS;

/* The finalizers at lua_close that got the right sum, and those that did not. */
static _Atomic int finalizer_right, finalizer_wrong, finalizer_closes;

static int report_sum(lua_State *L) {
    if (lua_tonumber(L, 1) == 2 * (1 << 20)) finalizer_right++;
    else finalizer_wrong++;
    return 0;
}

static const char *const unused_script =
    "local mg = require 'moongrad.core'\n"
    "mg.set_num_threads(4)\n"
    "assert((mg.ones(10) + 1):sum():item() == 20)\n";

enum { SPINNING, ASLEEP, FINALIZER, ELSEWHERE, UNUSED, NKINDS };
static const char *const kind_names[NKINDS] = {"spinning", "asleep", "finalizer", "elsewhere", "unused"};

/* A state that ran the kind's script, or NULL with the error printed. */
static lua_State *opened(int kind) {
    lua_State *L = new_state();
    if (!L) return NULL;
    lua_register(L, "report_sum", report_sum);
    const char *code = kind == FINALIZER ? finalizer_script : kind == UNUSED ? unused_script : open_script;
    char *err = run(L, code);
    if (err) {
        fprintf(stderr, "threads_host: %s: %s\n", kind_names[kind], err);
        free(err);
        lua_close(L);
        return NULL;
    }
    return L;
}

static void *open_elsewhere(void *arg) {
    *(lua_State **)arg = opened(ELSEWHERE);
    return NULL;
}

/* Opens a state of `kind` and closes it; 0 when all went well. */
static int open_and_close(int kind) {
    lua_State *L;
    if (kind == ELSEWHERE) {
        pthread_t t;
        if (pthread_create(&t, NULL, open_elsewhere, &L) != 0) return -1;
        pthread_join(t, NULL);
    } else {
        L = opened(kind);
    }
    if (!L) return -1;
    if (kind == ASLEEP) nanosleep(&(struct timespec){0, 3000000}, NULL); /* > WORKER_SPIN_NS */
    lua_close(L);
    if (kind == FINALIZER) finalizer_closes++;
    return 0;
}

typedef struct closer {
    pthread_t thread;
    int rounds, failures;
} closer;

static void *closer_main(void *arg) {
    closer *c = arg;
    for (int i = 0; i < c->rounds; i++)
        if (open_and_close(i % NKINDS) != 0) c->failures++;
    return NULL;
}

static void *nothing(void *arg) { return arg; }

int main(int argc, char **argv) {
    int closes = 40;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--closes") && i + 1 < argc) closes = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--steps N] [--closes N]\n", argv[0]);
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* each line as it comes, also into a pipe or file */
    int ok = 1;
    /* a sanitizer's runtime may start a thread of its own at the first pthread_create
     * (ThreadSanitizer does): it is made before the threads are first counted */
    pthread_t first;
    if (pthread_create(&first, NULL, nothing, NULL) == 0) pthread_join(first, NULL);
    const int before = count_threads();

    /* 1. training: alone (2 threads, then 1), then 4 states at once */
    char *reference = train(2), *one_thread = train(1);
    if (!reference || !one_thread) return 1;
    printf("reference (1 state, 2 threads, %d steps): %.*s\n", steps, (int)strcspn(reference, "\n"), reference);
    const int d1 = first_difference(reference, one_thread);
    printf("1 state, 1 thread: %s\n", d1 ? "DIFFERENT" : "bit-identical");
    ok &= d1 == 0;

    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, NSTATES);
    trainer trainers[NSTATES];
    for (int i = 0; i < NSTATES; i++) {
        trainers[i] = (trainer){.start = &start};
        if (pthread_create(&trainers[i].thread, NULL, trainer_main, &trainers[i]) != 0) {
            perror("pthread_create");
            return 1;
        }
    }
    int identical = 0;
    for (int i = 0; i < NSTATES; i++) {
        pthread_join(trainers[i].thread, NULL);
        const int d = first_difference(reference, trainers[i].result);
        if (d == 0) identical++;
        else if (d < 0) printf("state %d: failed\n", i + 1);
        else printf("state %d: line %d differs\n", i + 1, d);
        free(trainers[i].result);
    }
    pthread_barrier_destroy(&start);
    printf("%d states in %d pthreads, 2 threads each: %d/%d bit-identical\n", NSTATES, NSTATES, identical, NSTATES);
    ok &= identical == NSTATES;
    free(reference);
    free(one_thread);
    long late = 0;
    const int trained = threads_settled(before, &late);
    printf("threads before %d, after training %d\n", before, trained);
    ok &= trained == before;

    /* 2. closing, one state at a time, the threads counted after each close */
    int worst = before, failures = 0;
    for (int kind = 0; kind < NKINDS; kind++)
        for (int i = 0; i < closes; i++) {
            if (open_and_close(kind) != 0) failures++;
            const int n = threads_settled(before, &late);
            if (n > worst) worst = n;
        }
    printf("closes: %d (%d of each: spinning asleep finalizer elsewhere unused), %d failed; "
           "threads after every close %s %d (joined threads still listed: %ld polls)\n",
           closes * NKINDS, closes, failures, worst == before ? "=" : "up to", worst, late);
    ok &= failures == 0 && worst == before;

    /* ... and in 4 pthreads at once */
    closer closers[NSTATES];
    for (int i = 0; i < NSTATES; i++) {
        closers[i] = (closer){.rounds = closes, .failures = 0};
        if (pthread_create(&closers[i].thread, NULL, closer_main, &closers[i]) != 0) {
            perror("pthread_create");
            return 1;
        }
    }
    failures = 0;
    for (int i = 0; i < NSTATES; i++) {
        pthread_join(closers[i].thread, NULL);
        failures += closers[i].failures;
    }
    const int after = threads_settled(before, &late);
    printf("concurrent closes: %d in %d pthreads, %d failed; threads after %d (before %d)\n",
           closes * NSTATES, NSTATES, failures, after, before);
    ok &= failures == 0 && after == before;

    printf("finalizers at lua_close: %d of %d got the right sum on the closing thread\n",
           finalizer_right, finalizer_closes);
    ok &= finalizer_right == finalizer_closes && finalizer_wrong == 0;

    printf("threads host: %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
