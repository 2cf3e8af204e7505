/*
 * serialize.c: the byte-level half of mg.save / mg.load (lua/moongrad/serialize.lua does the file,
 * the safetensors header and every check of it). Two private functions of moongrad.core:
 *
 *   core._tensor_bytes(t)                              -> string
 *       t's elements in row-major order as little-endian bytes (a non-contiguous t is read through
 *       a contiguous copy); bool is one byte 0 / 1.
 *   core._tensor_from_bytes(s, offset, dtype, shape)   -> tensor
 *       a new contiguous tensor of `dtype` and `shape` copied from the little-endian bytes of the
 *       string `s` starting at byte `offset` (0-based, as safetensors' data_offsets). The bytes must
 *       lie inside `s`; bool bytes other than 0 read as true.
 *
 *   core._sync(file)                                   -> true | nil, message
 *       flushes an open Lua file to the disk (fflush, then fsync): mg.save renames its temporary
 *       file over the target only after this.
 *   core._pid()                                        -> integer
 *       this process's id, which names mg.save's temporary file (two processes saving to one path,
 *       such as MPI ranks, never share a temporary).
 *
 * Every byte goes through the Lua state's allocator: the result is a Lua string or a tensor.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "bind.h"

static int is_big_endian(void) {
    const uint16_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    return first == 0;
}

/* Copies n items of `item` bytes from src to dst, reversing each item's bytes. */
static void swap_copy(char *dst, const char *src, size_t n, size_t item) {
    for (size_t i = 0; i < n; i++)
        for (size_t b = 0; b < item; b++) dst[i * item + b] = src[i * item + item - 1 - b];
}

static int l_tensor_bytes(lua_State *L) {
    lt_check(L, 1);
    const mg_tensor *t = lt_push_contiguous(L, 1);
    const size_t item = mg_dtype_size((mg_dtype)t->dtype);
    const size_t n = (size_t)t->numel, bytes = n * item;
    const char *data = bytes ? (const char *)mg_tensor_data(t) : "";
    if (item == 1 || !is_big_endian()) {
        lua_pushlstring(L, data, bytes);
    } else {
        luaL_Buffer b;
        char *dst = luaL_buffinitsize(L, &b, bytes);
        swap_copy(dst, data, n, item);
        luaL_pushresultsize(&b, bytes);
    }
    return 1;
}

static int l_tensor_from_bytes(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    const lua_Integer offset = luaL_checkinteger(L, 2);
    const mg_dtype dtype = lt_check_dtype(L, 3);
    luaL_checktype(L, 4, LUA_TTABLE);
    lua_settop(L, 4);
    int64_t size[MG_MAX_DIMS];
    int opts;
    const int ndim = lt_read_shape(L, 4, size, &opts);
    if (offset < 0 || (lua_Unsigned)offset > len)
        return lt_argerror(L, 2, "offset %I is outside the string (%I bytes)", offset, (lua_Integer)len);
    mg_tensor *t = lt_push_new(L, dtype, ndim, size); /* raises on a shape past 2^62 elements */
    const size_t item = mg_dtype_size(dtype);
    const size_t n = (size_t)t->numel;
    if (n > (len - (size_t)offset) / item)
        return lt_argerror(L, 1, "%I elements of %d bytes from offset %I run past the end of the string (%I bytes)",
                           (lua_Integer)n, (int)item, offset, (lua_Integer)len);
    char *dst = (char *)mg_tensor_data(t);
    const char *src = s + offset;
    if (n == 0) return 1;
    if (dtype == MG_BOOL) {
        for (size_t i = 0; i < n; i++) dst[i] = src[i] != 0;
    } else if (item == 1 || !is_big_endian()) {
        memcpy(dst, src, n * item);
    } else {
        swap_copy(dst, src, n, item);
    }
    return 1;
}

static int l_sync(lua_State *L) {
    luaL_Stream *stream = (luaL_Stream *)luaL_checkudata(L, 1, LUA_FILEHANDLE);
    if (!stream->closef) return luaL_argerror(L, 1, "file is closed");
    if (fflush(stream->f) != 0 || fsync(fileno(stream->f)) != 0) {
        const int err = errno;
        luaL_pushfail(L);
        lua_pushstring(L, strerror(err));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_pid(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)getpid());
    return 1;
}

const luaL_Reg lt_serialize_functions[] = {
    {"_tensor_bytes", l_tensor_bytes}, {"_tensor_from_bytes", l_tensor_from_bytes},
    {"_sync", l_sync}, {"_pid", l_pid},
    {NULL, NULL}};
