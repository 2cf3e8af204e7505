/*
 * host_buffer_host.c: a host's buffer (mg_push_host_tensor) closed while an op reads it (issue 11).
 * Check, allocate the result (the collector may run finalizers), run the kernel: a finalizer that
 * closes the op's host-buffer input in between must not free the host's memory under the kernel.
 * The host's release callback poisons the buffer (NaN) and frees it, so a kernel reading released
 * memory gives NaN here, and a use after free under `make build-asan/host_buffer_host` (ASan).
 * Run by spec/interrupt_spec.lua; prints "host buffer: ..." lines, exits 0 when all hold.
 *
 *   host_buffer_host LUADIR        LUADIR holds moongrad/<name>.lua
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lauxlib.h"
#include "lualib.h"
#include "moongrad.h"

#define N 4000

typedef struct counts {
    int made, released;
} counts;

static void release(void *ud, void *data, size_t nbytes) {
    counts *c = (counts *)ud;
    float *f = (float *)data;
    for (size_t i = 0; i < nbytes / sizeof(float); i++) f[i] = NAN; /* poison, then free */
    free(data);
    c->released++;
}

/* host_tensor() -> a float32 tensor of N ones over a malloc'd buffer, released by `release` */
static int host_tensor(lua_State *L) {
    counts *c = (counts *)lua_touserdata(L, lua_upvalueindex(1));
    float *data = (float *)malloc(N * sizeof(float));
    if (!data) return luaL_error(L, "host_tensor: no memory");
    for (int i = 0; i < N; i++) data[i] = 1.0f;
    const int64_t size[1] = {N};
    mg_push_host_tensor(L, MG_FLOAT32, 1, size, data, release, c); /* raises: data is still ours */
    c->made++;
    return 1;
}

static int released(lua_State *L) {
    lua_pushinteger(L, ((counts *)lua_touserdata(L, lua_upvalueindex(1)))->released);
    return 1;
}

static const char *const script =
    "local core = require 'moongrad.core'\n"
    "collectgarbage('incremental', 0, 100) -- the collector always working: finalizers run inside ops\n"
    "local finished, refused = 0, 0\n"
    "local want = 4000 * (math.exp(3) - 1)\n"
    "for _ = 1, 400 do\n"
    "  local h = host_tensor()\n"
    "  setmetatable({}, {__gc = function() local _ <close> = h end})\n"
    "  local ok, r = pcall(function() return ((h * 2 + 1):exp() - h):sum():item() end)\n"
    "  if ok then\n"
    "    assert(math.abs(r - want) < 1e-3 * want, 'read released memory: ' .. r)\n"
    "    finished = finished + 1\n"
    "  else\n"
    "    assert(tostring(r):find('tensor used after its storage was released', 1, true), r)\n"
    "    refused = refused + 1\n"
    "  end\n"
    "end\n"
    "assert(refused > 0 and finished > 0, 'no finalizer ran inside an op: the test tests nothing')\n"
    "print(string.format('host buffer: 400 ops with a finalizer closing their input: %d finished right, '\n"
    "  .. '%d refused, 0 read released memory', finished, refused))\n"
    "-- outside a finalizer, <close> releases the buffer at once\n"
    "collectgarbage('collect'); collectgarbage('stop'); collectgarbage('restart')\n"
    "local before = released()\n"
    "do local h <close> = host_tensor() end\n"
    "assert(released() == before + 1, 'not released at <close>')\n"
    "print('host buffer: released at once by <close> outside a finalizer')\n";

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: host_buffer_host LUADIR\n");
        return 2;
    }
    counts c = {0, 0};
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", argv[1], argv[1]);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
    luaL_requiref(L, "moongrad.core", luaopen_moongrad_core, 0);
    lua_pop(L, 1);
    lua_pushlightuserdata(L, &c);
    lua_pushcclosure(L, host_tensor, 1);
    lua_setglobal(L, "host_tensor");
    lua_pushlightuserdata(L, &c);
    lua_pushcclosure(L, released, 1);
    lua_setglobal(L, "released");
    int ok = luaL_dostring(L, script) == LUA_OK;
    if (!ok) printf("host buffer: FAILED: %s\n", lua_tostring(L, -1));
    lua_close(L);
    printf("host buffer: %d made, %d released after lua_close\n", c.made, c.released);
    ok = ok && c.made == c.released;
    return ok ? 0 : 1;
}
