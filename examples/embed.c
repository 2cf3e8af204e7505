/*
 * embed.c: a host program (a game engine, say) that embeds Lua and moongrad.
 *   - every byte goes through the host's allocator (here one that counts);
 *   - a host buffer becomes a tensor without a copy, and Lua's writes land in it;
 *   - the release callback runs once, when Lua no longer needs the buffer.
 * Build and run:  make build/embed && build/embed
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>

#include "moongrad.h"

typedef struct { size_t live, peak, calls; } counting;

static void *counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    counting *c = ud;
    if (ptr) c->live -= osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p) {
        c->live += nsize;
        c->calls++;
        if (c->live > c->peak) c->peak = c->live;
    } else if (ptr) {
        c->live += osize; /* the old block stays */
    }
    return p;
}

static void release(void *ud, void *data, size_t nbytes) {
    (void)data;
    (void)nbytes;
    *(int *)ud += 1;
}

int main(void) {
    counting stats = {0, 0, 0};
    lua_State *L = lua_newstate(counting_alloc, &stats);
    luaL_openlibs(L);
    luaL_requiref(L, "moongrad.core", luaopen_moongrad_core, 0);
    lua_pop(L, 1);

    float frame[2][3] = {{1, 2, 3}, {4, 5, 6}};
    int released = 0;
    const int64_t shape[2] = {2, 3};
    mg_push_host_tensor(L, MG_FLOAT32, 2, shape, frame, release, &released);
    lua_setglobal(L, "frame");

    const char *script =
        "local mg = require 'moongrad.core'\n"
        "frame:mul_(2)                       -- writes into the host's array\n"
        "local big = mg.tensor(frame):expand(1000, 2, 3):contiguous()  -- 24 KB through the allocator\n"
        "frame = nil\n"
        "return (frame == nil) and big:numel()\n";
    if (luaL_dostring(L, script) != LUA_OK) {
        fprintf(stderr, "embed: %s\n", lua_tostring(L, -1));
        return 1;
    }
    const long long numel = (long long)lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_gc(L, LUA_GCCOLLECT);
    printf("frame after Lua: %g %g %g / %g %g %g\n", frame[0][0], frame[0][1], frame[0][2], frame[1][0],
           frame[1][1], frame[1][2]);
    printf("released %d time(s); big tensor %lld elements; allocator: peak %zu bytes, %zu calls\n",
           released, numel, stats.peak, stats.calls);
    const int ok = frame[1][2] == 12 && released == 1 && numel == 6000 && stats.peak > 6000 * sizeof(float);
    lua_close(L);
    printf("after lua_close: %zu bytes live\n", stats.live);
    return ok && stats.live == 0 ? 0 : 1;
}
