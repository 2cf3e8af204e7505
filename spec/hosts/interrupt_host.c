/*
 * interrupt_host.c: stopping a long call (issue 11): mg_interrupt from another thread and from a
 * signal handler (SIGALRM) stops reductions over 2^62 expanded elements within a bounded time, with
 * the Lua error "'<fn>': interrupted"; the state works afterwards; a request made while nothing
 * runs stops the next long loop, or is withdrawn by mg_interrupt_clear. Run by
 * spec/interrupt_spec.lua (`make build/interrupt_host`); prints one line per case and
 * "interrupt host: N of N cases passed".
 *
 *   interrupt_host LUADIR        LUADIR holds moongrad/<name>.lua
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
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

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: interrupt_host LUADIR\n");
        return 2;
    }
    lua_State *L = luaL_newstate();
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

    lua_close(L);
    printf("interrupt host: %d of %d cases passed\n", passed, total);
    return passed == total ? 0 : 1;
}
