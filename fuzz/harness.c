/*
 * fuzz/harness.c: libFuzzer harnesses for every decoder of outside data (issue 11). One source, one
 * binary per target: `-DMG_FUZZ_NAME='"csv"'` picks the row of `targets` below (`make fuzz-files`
 * builds and runs them all; fuzz/README.md says how to run one by hand).
 *
 * The decoders are partly Lua (the safetensors header and read_csv are parsed in lua/moongrad/), so
 * the harness links its own Lua 5.4 built from source with the same instrumentation as moongrad's C
 * (see the Makefile: the Debian .orig tarball, checked by its sha256), and adds Lua-level coverage:
 * a line hook counts each (previous line, line) edge of the interpreted code in 8-bit counters that
 * it hands to libFuzzer like a compiled module's (__sanitizer_cov_8bit_counters_init), so a new
 * branch taken inside serialize.lua is new coverage just as a new branch in serialize.c is.
 *
 * Each input gets a fresh file (the decoders read paths) in a private temporary directory, and
 * the Lua function of its target. A Lua error is a normal outcome (a designed refusal); a crash, a
 * sanitizer report, a hang (-timeout) or a broken tensor invariant (core._check_invariants on every
 * tensor a decoder returns) is a finding.
 *
 * Adding a decoder is one row in `targets` (its Lua function of (path, bytes)) plus a seed
 * directory fuzz/corpus/<name>/ and its name in FUZZ_TARGETS (Makefile); a decoder in a C module of
 * its own (ext/idx.c) is also linked in and preloaded, as MG_FUZZ_WITH_IDX shows.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lauxlib.h"
#include "lua.h"
#include "lualib.h"
#include "moongrad.h"

/* ---- the targets ---------------------------------------------------------------------------- */
/* Each `code` is a Lua chunk returning function(path, bytes): it decodes the file at `path` (which
 * holds `bytes`) and returns the tensors it made (any nesting of tables), or raises a Lua error. */
typedef struct fuzz_target {
    const char *name;
    const char *code;
} fuzz_target;

static const fuzz_target targets[] = {
    /* mg.load: the 8-byte header length, the JSON header (dtypes, shapes, data_offsets,
     * __metadata__), the moongrad.structure metadata of nested tables, the tensor bytes */
    {"safetensors",
     "local load = require('moongrad.serialize').load\n"
     "return function(path) return (load(path)) end\n"},
    /* read_csv: the first byte picks the options (header, dtype, delimiter, columns), the rest
     * is the file */
    {"csv",
     "local read_csv = require('moongrad.data').read_csv\n"
     "local dtypes, delims = {'float32', 'float64', 'int64', 'float32'}, {',', ';', '\\t', ' '}\n"
     "return function(path, bytes)\n"
     "  local b = bytes:byte(1) or 0\n"
     "  local opts = {header = b & 1 == 0, dtype = dtypes[(b >> 1) % 4 + 1],\n"
     "                delimiter = delims[(b >> 3) % 4 + 1]}\n"
     "  if b & 0x60 == 0x60 then opts.columns = {1, -1} elseif b & 0x60 == 0x40 then opts.columns = {2} end\n"
     "  local f = assert(io.open(path, 'wb')); f:write(bytes:sub(2)); f:close()\n"
     "  return {read_csv(path, opts)}\n"
     "end\n"},
    /* mg.tensor on a nested table built from the bytes (build_table below): ragged, deep, mixed
     * types, holes, NaN / inf / integer extremes, tensors inside */
    {"table",
     "local core = require('moongrad.core')\n"
     "local dtypes = {false, 'float32', 'float64', 'int64', 'bool'}\n"
     "return function(_, bytes)\n"
     "  local tbl, sel = fuzz_build_table(bytes)\n"
     "  local dt = dtypes[sel % 5 + 1]\n"
     "  local t = core.tensor(tbl, {dtype = dt or nil, requires_grad = (sel & 8) ~= 0 and dt ~= 'int64' and dt ~= 'bool'})\n"
     "  local back = t:totable()\n"
     "  local again = core.tensor(back, {dtype = t.dtype})\n"
     "  if again.numel ~= t.numel then error({finding = 'totable does not round-trip'}) end\n"
     "  return {t, again}\n"
     "end\n"},
    /* mg.data.read_idx (ext/idx.c, the moongrad.idx module, linked in when the tree has it: the
     * Makefile then adds "idx" to FUZZ_TARGETS and defines MG_FUZZ_WITH_IDX): the header, dims,
     * plain or gzip data; the first byte picks the dtype asked for, the rest is the file */
    {"idx",
     "local read_idx = require('moongrad.data').read_idx\n"
     "local dtypes = {false, 'float32', 'float64', 'int64'}\n"
     "return function(path, bytes)\n"
     "  local dt = dtypes[(bytes:byte(1) or 0) % 4 + 1]\n"
     "  local f = assert(io.open(path, 'wb')); f:write(bytes:sub(2)); f:close()\n"
     "  return {read_idx(path, dt and {dtype = dt} or nil)}\n"
     "end\n"},
};

#ifdef MG_FUZZ_WITH_IDX
int luaopen_moongrad_idx(lua_State *L);
#endif

#ifndef MG_FUZZ_NAME
#define MG_FUZZ_NAME "safetensors"
#endif
static const fuzz_target *target; /* the row named MG_FUZZ_NAME */

/* ---- Lua-level coverage --------------------------------------------------------------------- */
/* libFuzzer's hooks for a module's inline 8-bit counters and its PC table (sanitizer coverage). */
void __sanitizer_cov_8bit_counters_init(uint8_t *start, uint8_t *stop);
void __sanitizer_cov_pcs_init(const uintptr_t *pcs_beg, const uintptr_t *pcs_end);

#define LUA_EDGES (1u << 16)
static uint8_t lua_edges[LUA_EDGES];
static uintptr_t lua_edge_pcs[2 * LUA_EDGES]; /* (pc, flags) pairs: fake PCs, one per counter */
static uint32_t lua_prev_line;

__attribute__((constructor)) static void register_lua_edges(void) {
    for (uint32_t i = 0; i < LUA_EDGES; i++) lua_edge_pcs[2 * i] = 0x100000u + i;
    __sanitizer_cov_8bit_counters_init(lua_edges, lua_edges + LUA_EDGES);
    __sanitizer_cov_pcs_init(lua_edge_pcs, lua_edge_pcs + 2 * LUA_EDGES);
}

static uint32_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (uint32_t)x;
}

/* A line event: the edge (previous line -> this line) of the chunk (its source string, interned
 * and stable while loaded) increments its counter. Calls reset the previous line, so a function's
 * first line counts as an entry. */
static void line_hook(lua_State *L, lua_Debug *ar) {
    if (ar->event == LUA_HOOKCALL) { lua_prev_line = 0; return; }
    if (!lua_getinfo(L, "S", ar)) return;
    const uint32_t here = mix((uint64_t)(uintptr_t)ar->source * 0x9e3779b97f4a7c15ULL + (uint64_t)ar->currentline);
    uint8_t *c = &lua_edges[(here ^ (lua_prev_line >> 1)) % LUA_EDGES];
    if (*c != 255) ++*c;
    lua_prev_line = here;
}

/* ---- the table target's input -> a nested Lua table ---------------------------------------- */
typedef struct reader {
    const uint8_t *p;
    size_t n;
} reader;

static int take(reader *r) {
    if (!r->n) return -1;
    r->n--;
    return *r->p++;
}

static uint64_t take_bits(reader *r, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v = v << 8 | (uint64_t)(take(r) & 0xff);
    return v;
}

/* Pushes one value: a byte picks its kind (a table opens with '[' and ends at ']' or the input's
 * end; depth is bounded so that the C stack is not what gets tested). */
static void push_value(lua_State *L, reader *r, int depth) {
    const int op = take(r);
    switch (op < 0 ? 0 : op % 24) {
    case 0: lua_pushinteger(L, 0); break;
    case 1: lua_pushinteger(L, (int8_t)take(r)); break;
    case 2: lua_pushinteger(L, (lua_Integer)take_bits(r, 8)); break;
    case 3: {
        const uint64_t bits = take_bits(r, 8);
        double d;
        memcpy(&d, &bits, sizeof d);
        lua_pushnumber(L, d);
        break;
    }
    case 4: lua_pushnumber(L, (double)(int8_t)take(r) / 4.0); break;
    case 5: lua_pushnumber(L, 0.0 / 0.0); break;
    case 6: lua_pushnumber(L, (take(r) & 1) ? 1.0 / 0.0 : -1.0 / 0.0); break;
    case 7: lua_pushinteger(L, (take(r) & 1) ? LUA_MAXINTEGER : LUA_MININTEGER); break;
    case 8: lua_pushboolean(L, take(r) & 1); break;
    case 9: lua_pushnil(L); break;
    case 10: lua_pushstring(L, (take(r) & 1) ? "1" : "x"); break;
    case 11: { /* a small tensor: 0-d, 1-d or 2-d of a fuzz-chosen dtype */
        static const mg_dtype dts[] = {MG_FLOAT32, MG_FLOAT64, MG_INT64, MG_BOOL};
        const int b = take(r) & 0xff;
        const int ndim = b % 3;
        int64_t size[2] = {(b >> 2) % 3, (b >> 4) % 3};
        lua_getfield(L, LUA_REGISTRYINDEX, "mg_fuzz_core");
        lua_getfield(L, -1, "zeros");
        lua_remove(L, -2);
        lua_createtable(L, ndim, 0);
        for (int i = 0; i < ndim; i++) {
            lua_pushinteger(L, size[i]);
            lua_rawseti(L, -2, i + 1);
        }
        lua_createtable(L, 0, 1);
        lua_pushstring(L, mg_dtype_name(dts[(b >> 6) & 3]));
        lua_setfield(L, -2, "dtype");
        lua_call(L, 2, 1);
        break;
    }
    default:
        if (depth >= 24 || op % 24 > 17) { /* ']' and friends: a number */
            lua_pushinteger(L, op);
            break;
        }
        { /* a table: values until a closing byte (0xff) or the end; sometimes a hole or a key */
            lua_newtable(L);
            lua_Integer i = 1;
            while (r->n && r->p[0] != 0xff && i <= 4096) {
                if (r->p[0] == 0xfe) { /* a hole: skip an index */
                    take(r);
                    i++;
                    continue;
                }
                if (r->p[0] == 0xfd) { /* a string key */
                    take(r);
                    push_value(L, r, depth + 1);
                    lua_setfield(L, -2, "k");
                    continue;
                }
                push_value(L, r, depth + 1);
                lua_rawseti(L, -2, i++);
            }
            take(r);
        }
    }
}

/* fuzz_build_table(bytes) -> the table, the selector byte (run inside the target's pcall) */
static int build_table(lua_State *LL) {
    size_t n;
    const char *s = luaL_checklstring(LL, 1, &n);
    reader r = {(const uint8_t *)s, n};
    const int sel = take(&r);
    push_value(LL, &r, 0);
    lua_pushinteger(LL, sel < 0 ? 0 : sel);
    return 2;
}

/* ---- the driver ----------------------------------------------------------------------------- */
static lua_State *FL; /* the one state of this process */
static char dir[64], path[256];
static int fn_ref;

static int fail(const char *what, const char *detail) {
    fprintf(stderr, "fuzz %s: %s: %s\n", MG_FUZZ_NAME, what, detail);
    abort();
}

/* Every tensor in the value at idx (tables walked, depth-bounded) must pass the invariant check. */
static void check_result(int idx, int depth) {
    idx = lua_absindex(FL, idx);
    if (mg_to_tensor(FL, idx)) {
        lua_getfield(FL, LUA_REGISTRYINDEX, "mg_fuzz_core");
        lua_getfield(FL, -1, "_check_invariants");
        lua_pushvalue(FL, idx);
        if (lua_pcall(FL, 1, 0, 0) != LUA_OK) fail("broken invariant", lua_tostring(FL, -1));
        lua_pop(FL, 1);
        return;
    }
    if (lua_type(FL, idx) != LUA_TTABLE || depth > 200) return;
    lua_pushnil(FL);
    while (lua_next(FL, idx)) {
        check_result(-1, depth + 1);
        lua_pop(FL, 1);
    }
}

static void remove_dir(void) {
    unlink(path);
    rmdir(dir);
}

static int open_core(lua_State *LL) { return luaopen_moongrad_core(LL); }

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++)
        if (strcmp(targets[i].name, MG_FUZZ_NAME) == 0) target = &targets[i];
    if (!target) {
        fprintf(stderr, "fuzz: no target named %s in fuzz/harness.c\n", MG_FUZZ_NAME);
        abort();
    }
    snprintf(dir, sizeof dir, "/tmp/mg-fuzz-XXXXXX");
    if (!mkdtemp(dir)) fail("init", "mkdtemp failed");
    snprintf(path, sizeof path, "%s/input", dir);
    atexit(remove_dir);
    FL = luaL_newstate();
    luaL_openlibs(FL);
    /* moongrad's Lua files from the tree (MG_FUZZ_ROOT, set by the Makefile; MG_ROOT overrides),
     * its C core linked in: nothing is loaded from the system */
    const char *root = getenv("MG_ROOT");
    if (!root) root = MG_FUZZ_ROOT;
    lua_getglobal(FL, "package");
    lua_pushfstring(FL, "%s/lua/?.lua;%s/lua/?/init.lua", root, root);
    lua_setfield(FL, -2, "path");
    lua_pushstring(FL, "");
    lua_setfield(FL, -2, "cpath");
    lua_getfield(FL, -1, "preload");
    lua_pushcfunction(FL, open_core);
    lua_setfield(FL, -2, "moongrad.core");
#ifdef MG_FUZZ_WITH_IDX
    lua_pushcfunction(FL, luaopen_moongrad_idx);
    lua_setfield(FL, -2, "moongrad.idx");
#endif
    lua_pop(FL, 2);
    luaL_requiref(FL, "moongrad.core", luaopen_moongrad_core, 0);
    lua_setfield(FL, LUA_REGISTRYINDEX, "mg_fuzz_core");
    mg_set_memory_limit(FL, (size_t)1 << 30);
    lua_register(FL, "fuzz_build_table", build_table);
    if (luaL_loadstring(FL, target->code) != LUA_OK || lua_pcall(FL, 0, 1, 0) != LUA_OK)
        fail("init", lua_tostring(FL, -1));
    fn_ref = luaL_ref(FL, LUA_REGISTRYINDEX);
    if (!getenv("MG_FUZZ_NO_LUA_EDGES")) lua_sethook(FL, line_hook, LUA_MASKLINE | LUA_MASKCALL, 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) fail("write", path);
    lua_settop(FL, 0);
    lua_rawgeti(FL, LUA_REGISTRYINDEX, fn_ref);
    lua_pushstring(FL, path);
    lua_pushlstring(FL, (const char *)data, size);
    lua_prev_line = 0;
    if (lua_pcall(FL, 2, 1, 0) == LUA_OK) check_result(-1, 0);
    else if (lua_type(FL, -1) == LUA_TTABLE && lua_getfield(FL, -1, "finding") == LUA_TSTRING)
        fail("finding", lua_tostring(FL, -1));
    else if (lua_type(FL, -1) != LUA_TSTRING) fail("error value", luaL_typename(FL, -1));
    lua_settop(FL, 0);
    return 0;
}
