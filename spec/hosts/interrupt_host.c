/*
 * interrupt_host.c: stopping a long call (issue 11): mg_interrupt from another thread and from a
 * signal handler (SIGALRM) stops reductions over 2^62 expanded elements within a bounded time, with
 * the Lua error "'<fn>': interrupted"; the state works afterwards; a request made while nothing
 * runs stops the next long loop, or is withdrawn by mg_interrupt_clear. Matrix products (dot, mv,
 * mm on worker threads, bmm, linear) and nonzero over expanded inputs of 2^40 multiply-adds and
 * more stop the same way, and a product after an interrupted one gives the bits it gave before.
 * The state runs on a counting allocator: 0 bytes live after lua_close (scratch of the interrupted
 * products given back). Run by spec/interrupt_spec.lua (`make build/interrupt_host`; under ASan +
 * LSan: `make build-asan/interrupt_host`); prints one line per case and
 * "interrupt host: N of N cases passed".
 *
 *   interrupt_host LUADIR        LUADIR holds moongrad/<name>.lua
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "lauxlib.h"
#include "lualib.h"
#include "moongrad.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* the host's own global for its signal handler (a signal handler can reach nothing else) */
static void *volatile alarm_handle;
static void on_alarm(int sig) {
    (void)sig;
    mg_interrupt(alarm_handle);
}

typedef struct later {
    void *handle;
    int ms;
} later;
static void *interrupt_later(void *arg) {
    const later *l = (const later *)arg;
    usleep((useconds_t)l->ms * 1000);
    mg_interrupt(l->handle);
    return NULL;
}

static int passed, total;

/* the state's allocator: counts the bytes live (worker threads never allocate; atomic anyway) */
static _Atomic long long live_bytes;
static void *count_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    (void)ud;
    const long long old = ptr ? (long long)osize : 0;
    if (nsize == 0) {
        free(ptr);
        live_bytes -= old;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p) live_bytes += (long long)nsize - old;
    return p;
}

/* Runs `code` (a chunk given `core`); expects the error `want` (NULL: success) within `limit_ms`. */
static void expect(lua_State *L, const char *name, const char *code, const char *want, double limit_ms,
                   double t0) {
    total++;
    lua_settop(L, 0);
    if (luaL_loadstring(L, code) != LUA_OK) {
        printf("case %s: FAILED to load: %s\n", name, lua_tostring(L, -1));
        return;
    }
    lua_getglobal(L, "core");
    const int status = lua_pcall(L, 1, 1, 0);
    const double ms = now_ms() - t0;
    const char *msg = lua_tostring(L, -1);
    int ok = ms < limit_ms;
    if (want) ok = ok && status != LUA_OK && msg && strstr(msg, want);
    else ok = ok && status == LUA_OK;
    printf("case %s: %s (%s) after %.0f ms%s\n", name, ok ? "ok" : "FAILED",
           msg ? msg : luaL_typename(L, -1), ms, ok ? "" : " (limit exceeded or wrong result)");
    passed += ok;
}

/* runs `code` with an interrupt from another thread after `ms` (see expect) */
static void expect_interrupted(lua_State *L, void *h, int ms, const char *name, const char *code, const char *want,
                               double limit_ms) {
    later l = {h, ms};
    pthread_t th;
    const double t0 = now_ms();
    pthread_create(&th, NULL, interrupt_later, &l);
    expect(L, name, code, want, limit_ms, t0);
    pthread_join(th, NULL);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: interrupt_host LUADIR\n");
        return 2;
    }
    lua_State *L = lua_newstate(count_alloc, NULL);
    luaL_openlibs(L);
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", argv[1], argv[1]);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
    luaL_requiref(L, "moongrad.core", luaopen_moongrad_core, 0);
    lua_setglobal(L, "core");
    void *h = mg_interrupt_handle(L);

    /* 1. from another thread, 100 ms in: sum over 2^62 elements (a run of stride 0) */
    const char *long_sum = "local core = ... return core.zeros(1):expand(1 << 62):sum()";
    later l = {h, 100};
    pthread_t th;
    double t0 = now_ms();
    pthread_create(&th, NULL, interrupt_later, &l);
    expect(L, "thread, sum", long_sum, "'sum': interrupted", 2100, t0);
    pthread_join(th, NULL);

    /* 2. the state works afterwards, and the request was taken: a sum of 2^21 runs to its end */
    t0 = now_ms();
    expect(L, "after", "local core = ... assert(core.ones(1):expand(1 << 21):sum():item() == 2097152)", NULL,
           10000, t0);

    /* 3. from a signal handler (SIGALRM after 150 ms): rows of 4 elements, 2^60 of them, mean */
    alarm_handle = h;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 0}, {0, 150000}};
    t0 = now_ms();
    setitimer(ITIMER_REAL, &it, NULL);
    expect(L, "signal, mean of short rows",
           "local core = ... return core.zeros(1, 4):expand(1 << 60, 4):mean()", "'mean': interrupted", 2150, t0);

    /* 4. a reduction over a dim (2 outputs of 2^61 each), argmax, from a thread */
    l.ms = 50;
    t0 = now_ms();
    pthread_create(&th, NULL, interrupt_later, &l);
    expect(L, "thread, argmax over a dim",
           "local core = ... return core.zeros(1, 1):expand(2, 1 << 61):argmax(2)", "'argmax': interrupted", 2050, t0);
    pthread_join(th, NULL);

    /* 5. a request made while nothing runs stops the next long loop at once */
    mg_interrupt(h);
    t0 = now_ms();
    expect(L, "pending request", "local core = ... return core.zeros(1):expand(1 << 62):max()", "'max': interrupted",
           1000, t0);

    /* 6. withdrawn by mg_interrupt_clear: the next long loop runs to its end */
    mg_interrupt(h);
    mg_interrupt_clear(h);
    t0 = now_ms();
    expect(L, "cleared request", "local core = ... assert(core.ones(1):expand(1 << 22):sum():item() == 4194304)",
           NULL, 10000, t0);

    /* 7. Lua catches it like any error, and the same expression then runs when not interrupted */
    l.ms = 50;
    t0 = now_ms();
    pthread_create(&th, NULL, interrupt_later, &l);
    expect(L, "pcall in Lua",
           "local core = ... local ok, err = pcall(function() return core.zeros(1):expand(1 << 62):norm() end)\n"
           "assert(not ok and err:find(\"'norm': interrupted\", 1, true), tostring(err))\n"
           "assert(core.ones(1):expand(9):norm():item() == 3)",
           NULL, 2050, t0);
    pthread_join(th, NULL);

    /* 8-15. matrix products and nonzero over expanded inputs (2^40 multiply-adds or elements and
     * more): each stops within a bounded time and names its function */
    const char *same_bits = /* a product computed before the interrupted ones, as bits */
        "local core = ... core.manual_seed(3)\n"
        "local a, b = core.randn(300, 700), core.randn(700, 500)\n"
        "local x, v = core.randn(5000, 3000), core.randn(3000)\n"
        "BITS = {a = a, b = b, x = x, v = v, ab = a:matmul(b), xv = x:matmul(v)}";
    expect(L, "products before", same_bits, NULL, 10000, now_ms());
    expect_interrupted(L, h, 100, "thread, dot of 2^40",
                       "local core = ... return core.zeros(1):expand(1 << 40):dot(core.ones(1):expand(1 << 40))",
                       "'dot': interrupted", 2100);
    expect_interrupted(L, h, 100, "thread, float64 dot of 2^40",
                       "local core = ... local z = core.zeros(1, {dtype = 'float64'}):expand(1 << 40) return z:dot(z)",
                       "'dot': interrupted", 2100);
    expect_interrupted(L, h, 100, "thread, mv of {2^20,2^20}",
                       "local core = ... return core.zeros(1, 1):expand(1 << 20, 1 << 20):matmul(core.zeros(1):expand(1 << 20))",
                       "'matmul': interrupted", 2100);
    expect_interrupted(L, h, 100, "thread, int64 mm",
                       "local core = ... local z = core.zeros(1, 1, {dtype = 'int64'})\n"
                       "return z:expand(64, 1 << 34):mm(z:expand(1 << 34, 64))",
                       "'mm': interrupted", 2100);
    expect_interrupted(L, h, 100, "thread, bmm of 2^30 products",
                       "local core = ... local z = core.zeros(1, 1, 1) return z:expand(1 << 26, 4, 4):bmm(z:expand(1 << 26, 4, 1))",
                       "'bmm': interrupted", 2100);
    expect_interrupted(L, h, 100, "thread, linear",
                       "local core = ... local z = core.zeros(1, 1)\n"
                       "return core.F.linear(z:expand(8, 1 << 36), z:expand(3, 1 << 36))",
                       "'linear': interrupted", 2100);
    expect_interrupted(L, h, 100, "thread, nonzero of 2^39 rows of 2",
                       "local core = ... return core.zeros(1, 2):expand(1 << 39, 2):nonzero()", "'nonzero': interrupted",
                       2100);
    /* worker threads see it: a blocked mm on 2 threads, stopped by SIGALRM */
    it.it_value.tv_usec = 150000;
    double t1 = now_ms();
    setitimer(ITIMER_REAL, &it, NULL);
    expect(L, "signal, mm on 2 threads",
           "local core = ... core.set_num_threads(2)\n"
           "local ok, err = pcall(function() return core.zeros(1, 1):expand(512, 1 << 30):mm(core.zeros(1, 1):expand(1 << 30, 512)) end)\n"
           "core.set_num_threads(1) error(err)",
           "'mm': interrupted", 2150, t1);
    /* a pending request stops the next long product at once; a product after the interrupted
     * ones gives the bits it gave before, on 1 and 2 threads */
    mg_interrupt(h);
    expect(L, "pending request, dot", "local core = ... return core.ones(1):expand(1 << 21):dot(core.ones(1):expand(1 << 21))",
           "'dot': interrupted", 1000, now_ms());
    expect(L, "products after, same bits",
           "local core = ... assert(core.ones(1):expand(1 << 21):dot(core.ones(1):expand(1 << 21)):item() == 2097152)\n"
           "for _, n in ipairs({1, 2}) do core.set_num_threads(n)\n"
           "  assert(core.equal(BITS.a:matmul(BITS.b), BITS.ab) and core.equal(BITS.x:matmul(BITS.v), BITS.xv), n)\n"
           "end core.set_num_threads(1) BITS = nil",
           NULL, 10000, now_ms());

    lua_close(L);
    printf("interrupt host: %lld bytes live after lua_close\n", (long long)live_bytes);
    if (live_bytes != 0) passed = -1;
    printf("interrupt host: %d of %d cases passed\n", passed, total);
    return passed == total ? 0 : 1;
}
