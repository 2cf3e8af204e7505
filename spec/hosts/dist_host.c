/*
 * dist_host.c: a C host that owns MPI and hands moongrad.distributed what to talk through
 * (include/moongrad_dist.h). Run by `make test-mpi` as `mpirun -np 2 build/dist_host`:
 *   1. its own communicator: MPI_COMM_WORLD with the ranks reversed (MPI_Comm_split), built into
 *      Open MPI's backend with mgd_mpi_backend and handed to a Lua state with mgd_set_backend;
 *      the Lua side sees the reversed ranks and reduces over them;
 *   2. its own transport: an mgd_backend of its own (here a wrapper that counts the calls and
 *      forwards them, as a game's transport would send them its own way);
 * then it finalizes MPI itself (the groups did not start it, so they leave it alone). Exit 0 and
 * "dist_host: ok" when every check held.
 */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "moongrad.h"
#include "moongrad_dist.h"

/* ---- a transport of the host's own: counts, then forwards to an inner backend ---------------- */
typedef struct counting {
    mgd_backend inner;
    int calls;
} counting;

static int c_rank(void *s) { return ((counting *)s)->inner.rank(((counting *)s)->inner.self); }
static int c_size(void *s) { return ((counting *)s)->inner.size(((counting *)s)->inner.self); }
static mgd_status c_allreduce(void *s, void *buf, size_t n, mg_dtype dt, mgd_op op, double timeout) {
    counting *c = (counting *)s;
    c->calls++;
    return c->inner.allreduce(c->inner.self, buf, n, dt, op, timeout);
}
static mgd_status c_broadcast(void *s, void *buf, size_t n, int root, double timeout) {
    counting *c = (counting *)s;
    c->calls++;
    return c->inner.broadcast(c->inner.self, buf, n, root, timeout);
}
static mgd_status c_allgather(void *s, const void *send, void *recv, size_t n, double timeout) {
    counting *c = (counting *)s;
    c->calls++;
    return c->inner.allgather(c->inner.self, send, recv, n, timeout);
}
static mgd_status c_barrier(void *s, double timeout) {
    counting *c = (counting *)s;
    c->calls++;
    return c->inner.barrier(c->inner.self, timeout);
}
static mgd_status c_close(void *s, double timeout) {
    counting *c = (counting *)s;
    return c->inner.close(c->inner.self, timeout);
}
static mgd_status c_iallreduce(void *s, int slot, void *buf, size_t n, mg_dtype dt, mgd_op op) {
    counting *c = (counting *)s;
    c->calls++;
    return c->inner.iallreduce(c->inner.self, slot, buf, n, dt, op);
}
static mgd_status c_test(void *s, int slot, int *done) {
    counting *c = (counting *)s;
    return c->inner.test(c->inner.self, slot, done);
}
static mgd_status c_wait(void *s, int slot, double timeout) {
    counting *c = (counting *)s;
    return c->inner.wait(c->inner.self, slot, timeout);
}
static void c_abort(void *s, int code, const char *msg) {
    counting *c = (counting *)s;
    c->inner.abort(c->inner.self, code, msg);
}
static const char *c_last_error(void *s) {
    counting *c = (counting *)s;
    return c->inner.last_error(c->inner.self);
}
static void c_destroy(void *s) { /* the host owns the wrapper; the inner backend goes */
    counting *c = (counting *)s;
    c->inner.destroy(c->inner.self);
}

static const char *const CHUNK =
    "local mg = require 'moongrad'\n"
    "local dist = require 'moongrad.distributed'\n"
    "local expect_rank, world = ...\n"
    "dist.init_process_group{backend = 'host', timeout = 20}\n"
    "assert(dist.get_rank() == expect_rank, 'rank ' .. dist.get_rank() .. ', expected ' .. expect_rank)\n"
    "assert(dist.get_world_size() == world)\n"
    "local t = mg.tensor({dist.get_rank() + 1.0, 2.0})\n"
    "dist.all_reduce(t)\n"
    "assert(t[1] == world * (world + 1) / 2 and t[2] == 2 * world, tostring(t))\n"
    "local model = mg.nn.parallel.DistributedDataParallel(mg.nn.Linear(3, 1))\n"
    "model(mg.ones(2, 3) * (dist.get_rank() + 1)):sum():backward()\n"
    "assert(model.module.weight.grad[1][1] == 2 * (world + 1) / 2, tostring(model.module.weight.grad))\n"
    "dist.destroy_process_group()\n";

/* Runs CHUNK in a new state with backend b handed in; 0 when it succeeded. */
static int run(const mgd_backend *b, int expect_rank, int world, const char *what) {
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    luaL_requiref(L, "moongrad.core", luaopen_moongrad_core, 0);
    luaL_requiref(L, "moongrad.distributed_core", luaopen_moongrad_distributed_core, 0);
    lua_pop(L, 2);
    mgd_set_backend(L, b);
    int status = luaL_loadstring(L, CHUNK);
    if (status == LUA_OK) {
        lua_pushinteger(L, expect_rank);
        lua_pushinteger(L, world);
        status = lua_pcall(L, 2, 0, 0);
    }
    if (status != LUA_OK) fprintf(stderr, "dist_host: %s: %s\n", what, lua_tostring(L, -1));
    lua_close(L);
    return status != LUA_OK;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size, failed = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm reversed;
    MPI_Comm_split(MPI_COMM_WORLD, 0, size - 1 - rank, &reversed);

    mgd_backend b;
    if (mgd_mpi_backend(reversed, &b) != 0) return 2;
    failed |= run(&b, size - 1 - rank, size, "the host's communicator");

    counting c;
    memset(&c, 0, sizeof c);
    if (mgd_mpi_backend(MPI_COMM_WORLD, &c.inner) != 0) return 2;
    mgd_backend own = {&c, c_rank, c_size, c_allreduce, c_broadcast, c_allgather, c_barrier, c_close,
                       c_iallreduce, c_test, c_wait, c_abort, c_last_error, c_destroy};
    failed |= run(&own, rank, size, "the host's transport");
    /* init's nothing, all_reduce's check + allreduce, DDP's check + 2 broadcasts (each checked) and
     * its bucket's iallreduce: at least 8 calls went through the host's transport */
    if (c.calls < 8) {
        fprintf(stderr, "dist_host: only %d calls reached the host's transport\n", c.calls);
        failed = 1;
    }
    MPI_Comm_free(&reversed);
    int any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    if (rank == 0) printf("dist_host: %s (%d ranks; %d calls through the host's transport on rank 0)\n",
                          any ? "FAILED" : "ok", size, c.calls);
    return any;
}
