/*
 * moongrad.idx: the file half of mg.data.read_idx (lua/moongrad/data.lua does the rest), a module
 * of its own so that only the data loader needs zlib: the core (moongrad.core) needs libc, libm and
 * pthreads alone. It knows nothing of tensors: it hands Lua little-endian bytes of float32,
 * float64 or int64 elements, which core._tensor_from_bytes copies into a tensor.
 *
 * IDX (the MNIST family's format): bytes 0 and 1 are zero, byte 2 the element type (0x08 uint8,
 * 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), byte 3 the number of dims, then
 * each dim as a big-endian uint32, then the elements in row-major order, big-endian. A file that
 * starts with 1f 8b is gzip-compressed (read through zlib); any other is read as it is.
 *
 *   idx.open(path)           -> reader | nil, message
 *       reads and checks the header: the magic, the type, the dims, and that the data fits the file
 *       (a plain file's size must be exactly header + elements; a gzip file's trailer holds its
 *       uncompressed size mod 2^32, which must agree, and deflate cannot expand more than 1032
 *       times, so a header claiming more elements than the file can hold is an error before any
 *       allocation).
 *   reader:info()            -> type name, dims (a list), gzip (boolean), file size in bytes
 *   reader:read(n, dtype)    -> string | nil, message
 *       the next n elements converted to dtype ("float32", "float64" or "int64"; integer types to
 *       any, float types to float32 / float64), as little-endian bytes; an error message when the
 *       data ends early or does not inflate.
 *   reader:close()           also run by the collector and by <close>
 *
 * Messages are plain details ("truncated: ..."): the Lua side puts the function and the path in
 * front. No memory from malloc is held across a call that can raise a Lua error: zlib's stream
 * lives in the reader (closed by its finalizer), every buffer is a Lua string or userdata.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <zlib.h>

#define READER "moongrad.idx.reader"
#define MAX_DIMS 16

typedef struct {
    gzFile gz;
    int type;            /* the IDX type byte */
    int size;            /* bytes per element in the file */
    int ndim;
    uint32_t dims[MAX_DIMS];
    uint64_t numel;
    uint64_t done;       /* elements read so far */
    int gzip;
    long long file_size;
    size_t path_len;     /* zlib's messages start with "path: " */
} reader;

static const char *type_name(int type) {
    switch (type) {
    case 0x08: return "uint8";
    case 0x09: return "int8";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    default: return NULL;
    }
}

static int type_size(int type) {
    switch (type) {
    case 0x08: case 0x09: return 1;
    case 0x0B: return 2;
    case 0x0C: case 0x0D: return 4;
    case 0x0E: return 8;
    default: return 0;
    }
}

static int fail(lua_State *L, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    luaL_pushfail(L);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    return 2;
}

/* the dims as "{60000,28,28}" on the stack */
static void push_dims(lua_State *L, const uint32_t *dims, int ndim) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addchar(&b, '{');
    for (int i = 0; i < ndim; i++) {
        if (i) luaL_addchar(&b, ',');
        lua_pushinteger(L, (lua_Integer)dims[i]);
        luaL_addvalue(&b);
    }
    luaL_addchar(&b, '}');
    luaL_pushresult(&b);
}

static reader *check_reader(lua_State *L) {
    reader *r = (reader *)luaL_checkudata(L, 1, READER);
    if (!r->gz) luaL_argerror(L, 1, "the IDX reader is closed");
    return r;
}

static int reader_close(lua_State *L) {
    reader *r = (reader *)luaL_checkudata(L, 1, READER);
    if (r->gz) {
        gzclose(r->gz);
        r->gz = NULL;
    }
    return 0;
}

/* The first two bytes, the last four (a gzip trailer's size) and the size of the file at path;
 * 0, or -1 with errno's message in *why. The FILE is closed before returning. */
static int peek_file(const char *path, unsigned char head[2], uint32_t *isize, long long *size,
                     const char **why) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        *why = strerror(errno);
        return -1;
    }
    int rc = 0;
    head[0] = head[1] = 0xFF;
    *isize = 0;
    *size = 0;
    if (fseek(f, 0, SEEK_END) != 0) rc = -1;
    long end = rc == 0 ? ftell(f) : -1;
    if (end < 0) rc = -1;
    if (rc == 0) {
        *size = end;
        unsigned char tail[4];
        if (end >= 2 && (fseek(f, 0, SEEK_SET) != 0 || fread(head, 1, 2, f) != 2)) rc = -1;
        if (rc == 0 && end >= 4 && (fseek(f, end - 4, SEEK_SET) != 0 || fread(tail, 1, 4, f) != 4)) rc = -1;
        if (rc == 0 && end >= 4)
            *isize = (uint32_t)tail[0] | (uint32_t)tail[1] << 8 | (uint32_t)tail[2] << 16 | (uint32_t)tail[3] << 24;
    }
    if (rc != 0) *why = strerror(errno ? errno : EIO);
    fclose(f);
    return rc;
}

/* reads exactly n bytes; returns the number read (short at the end of the data), or -1 */
static long long read_bytes(gzFile gz, unsigned char *dst, size_t n) {
    size_t got = 0;
    while (got < n) {
        size_t want = n - got;
        if (want > (1u << 30)) want = 1u << 30;
        int k = gzread(gz, dst + got, (unsigned)want);
        if (k < 0) return -1;
        if (k == 0) break;
        got += (size_t)k;
    }
    return (long long)got;
}

/* zlib's message for the last error, without the "path: " it puts in front */
static const char *gz_message(const reader *r) {
    int code;
    const char *msg = gzerror(r->gz, &code);
    if (!msg || !*msg) return "read error";
    const size_t len = strlen(msg);
    if (len > r->path_len + 2 && msg[r->path_len] == ':' && msg[r->path_len + 1] == ' ')
        return msg + r->path_len + 2;
    return msg;
}

static int l_open(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    unsigned char head[2];
    uint32_t isize;
    long long size;
    const char *why = NULL;
    if (peek_file(path, head, &isize, &size, &why) != 0) return fail(L, "cannot open (%s)", why);
    const int gzip = size >= 2 && head[0] == 0x1f && head[1] == 0x8b;

    reader *r = (reader *)lua_newuserdatauv(L, sizeof(reader), 0);
    memset(r, 0, sizeof *r);
    luaL_setmetatable(L, READER);
    r->gzip = gzip;
    r->file_size = size;
    r->path_len = strlen(path);
    r->gz = gzopen(path, "rb");
    if (!r->gz) return fail(L, "cannot open (%s)", errno ? strerror(errno) : "out of memory");
    gzbuffer(r->gz, 1u << 17);

    unsigned char magic[4];
    long long got = read_bytes(r->gz, magic, 4);
    if (got < 0) return fail(L, "corrupt gzip data (%s)", gz_message(r));
    if (got < 4) return fail(L, "truncated: %d bytes, an IDX header has at least 4", (int)got);
    char hex[16];
    if (magic[0] != 0 || magic[1] != 0) {
        snprintf(hex, sizeof hex, "%02x %02x %02x %02x", magic[0], magic[1], magic[2], magic[3]);
        return fail(L, "not an IDX file (it starts with %s; IDX starts with 00 00, a type and the number of dims)",
                    hex);
    }
    r->type = magic[2];
    r->size = type_size(r->type);
    if (!r->size) {
        snprintf(hex, sizeof hex, "0x%02X", (unsigned)r->type);
        return fail(L, "unknown IDX element type %s (expected 0x08 uint8, 0x09 int8, 0x0B int16, "
                    "0x0C int32, 0x0D float32 or 0x0E float64)", hex);
    }
    r->ndim = magic[3];
    if (r->ndim < 1 || r->ndim > MAX_DIMS)
        return fail(L, "%d dims in the header (1 to %d supported)", r->ndim, MAX_DIMS);
    unsigned char dimbytes[4 * MAX_DIMS];
    got = read_bytes(r->gz, dimbytes, (size_t)4 * r->ndim);
    if (got < 0) return fail(L, "corrupt gzip data (%s)", gz_message(r));
    if (got < 4 * r->ndim) return fail(L, "truncated: the header names %d dims, the file ends inside them", r->ndim);
    /* the element count, saturating at 2^62 (the largest tensor moongrad can describe) */
    const uint64_t cap = (uint64_t)1 << 62;
    uint64_t numel = 1;
    for (int i = 0; i < r->ndim; i++) {
        const unsigned char *d = dimbytes + 4 * i;
        r->dims[i] = (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | (uint32_t)d[3];
        if (r->dims[i] != 0 && numel > cap / r->dims[i]) numel = cap;
        else numel *= r->dims[i];
    }
    r->numel = numel;
    const uint64_t header = 4 + 4 * (uint64_t)r->ndim;
    const int huge = numel >= cap / 8;
    const uint64_t need = huge ? 0 : header + numel * (uint64_t)r->size; /* bytes of the whole IDX data */
    const char *tname = type_name(r->type);
    push_dims(L, r->dims, r->ndim);
    const char *dims = lua_tostring(L, -1);
    const char *bytes = huge ? "more than 2^59" : lua_pushfstring(L, "%I", (lua_Integer)need);
    const char *count = huge ? "more than 2^59" : lua_pushfstring(L, "%I", (lua_Integer)numel);
    if (!gzip) {
        if (huge || need > (uint64_t)size)
            return fail(L, "truncated: its header claims %s %s elements (%s), which need %s bytes, the file has %I",
                        dims, tname, count, bytes, (lua_Integer)size);
        if (need < (uint64_t)size)
            return fail(L, "%I bytes after the %s %s elements of its header (the file has %I bytes, the data %s)",
                        (lua_Integer)((uint64_t)size - need), dims, tname, (lua_Integer)size, bytes);
    } else {
        /* deflate expands at most 1032:1; the trailer holds the size mod 2^32 */
        if (huge || need / 1032 > (uint64_t)size)
            return fail(L, "its header claims %s %s elements (%s bytes of data), more than a gzip file of %I bytes "
                        "can hold", dims, tname, bytes, (lua_Integer)size);
        if ((uint32_t)need != isize)
            return fail(L, "corrupt or truncated gzip file: its header claims %s %s elements (%s bytes of IDX "
                        "data), its gzip trailer says %I bytes (mod 2^32)", dims, tname, bytes, (lua_Integer)isize);
    }
    lua_settop(L, 2); /* path, reader */
    return 1;
}

static int l_info(lua_State *L) {
    reader *r = check_reader(L);
    lua_pushstring(L, type_name(r->type));
    lua_createtable(L, r->ndim, 0);
    for (int i = 0; i < r->ndim; i++) {
        lua_pushinteger(L, (lua_Integer)r->dims[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_pushboolean(L, r->gzip);
    lua_pushinteger(L, (lua_Integer)r->file_size);
    return 4;
}

/* big-endian element i of src, as a double or an int64 */
static double get_float(const unsigned char *p, int type) {
    if (type == 0x0D) {
        uint32_t u = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    uint64_t u = 0;
    for (int b = 0; b < 8; b++) u = u << 8 | p[b];
    double d;
    memcpy(&d, &u, 8);
    return d;
}

static int64_t get_int(const unsigned char *p, int type) {
    switch (type) {
    case 0x08: return p[0];
    case 0x09: return (int8_t)p[0];
    case 0x0B: return (int16_t)(uint16_t)((unsigned)p[0] << 8 | p[1]);
    default: return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3]);
    }
}

static void put_le(unsigned char *dst, uint64_t u, int bytes) {
    for (int b = 0; b < bytes; b++) dst[b] = (unsigned char)(u >> (8 * b));
}

static int l_read(lua_State *L) {
    reader *r = check_reader(L);
    const lua_Integer n = luaL_checkinteger(L, 2);
    static const char *const DTYPES[] = {"float32", "float64", "int64", NULL};
    const int out = luaL_checkoption(L, 3, NULL, DTYPES);
    const int out_size = out == 0 ? 4 : 8;
    const int is_float = r->type == 0x0D || r->type == 0x0E;
    if (out == 2 && is_float)
        return luaL_argerror(L, 3, lua_pushfstring(L, "int64 needs integer data, the file holds %s",
                                                   type_name(r->type)));
    if (n < 0 || (uint64_t)n > r->numel - r->done)
        return luaL_argerror(L, 2, lua_pushfstring(L, "%I elements asked, %I left", n,
                                                   (lua_Integer)(r->numel - r->done)));
    if ((uint64_t)n > ((size_t)1 << 40) / 8) return luaL_argerror(L, 2, "too many elements for one read");
    const size_t count = (size_t)n;
    /* the file's bytes, in a userdata the collector frees; the result in a Lua buffer */
    unsigned char *src = (unsigned char *)lua_newuserdatauv(L, count * (size_t)r->size + 1, 0);
    long long got = read_bytes(r->gz, src, count * (size_t)r->size);
    if (got < 0) return fail(L, "corrupt gzip data (%s)", gz_message(r));
    if ((size_t)got < count * (size_t)r->size) {
        const uint64_t have = r->done + (uint64_t)got / (uint64_t)r->size;
        return fail(L, "truncated: the data ends after %I of its %I elements", (lua_Integer)have,
                    (lua_Integer)r->numel);
    }
    luaL_Buffer b;
    unsigned char *dst = (unsigned char *)luaL_buffinitsize(L, &b, count * (size_t)out_size);
    const int sz = r->size, type = r->type;
    if (type == 0x08 && out == 0) { /* the common case: images as float32 */
        for (size_t i = 0; i < count; i++) {
            float f = (float)src[i];
            uint32_t u;
            memcpy(&u, &f, 4);
            put_le(dst + 4 * i, u, 4);
        }
    } else if (is_float) {
        for (size_t i = 0; i < count; i++) {
            const double v = get_float(src + i * sz, type);
            if (out == 0) {
                float f = (float)v;
                uint32_t u;
                memcpy(&u, &f, 4);
                put_le(dst + 4 * i, u, 4);
            } else {
                uint64_t u;
                memcpy(&u, &v, 8);
                put_le(dst + 8 * i, u, 8);
            }
        }
    } else {
        for (size_t i = 0; i < count; i++) {
            const int64_t v = get_int(src + i * sz, type);
            if (out == 0) {
                float f = (float)v;
                uint32_t u;
                memcpy(&u, &f, 4);
                put_le(dst + 4 * i, u, 4);
            } else if (out == 1) {
                double d = (double)v;
                uint64_t u;
                memcpy(&u, &d, 8);
                put_le(dst + 8 * i, u, 8);
            } else {
                put_le(dst + 8 * i, (uint64_t)v, 8);
            }
        }
    }
    luaL_pushresultsize(&b, count * (size_t)out_size);
    r->done += count;
    return 1;
}

/* exported: the Makefile compiles with -fvisibility=hidden */
__attribute__((visibility("default"))) int luaopen_moongrad_idx(lua_State *L);

int luaopen_moongrad_idx(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"info", l_info}, {"read", l_read}, {"close", reader_close}, {NULL, NULL}};
    if (luaL_newmetatable(L, READER)) {
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, reader_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, reader_close);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
    static const luaL_Reg functions[] = {{"open", l_open}, {NULL, NULL}};
    luaL_newlib(L, functions);
    lua_pushstring(L, zlibVersion());
    lua_setfield(L, -2, "zlib_version");
    return 1;
}
