/*
 * moongrad_dist.h: the collective interface of moongrad.distributed (a separate module: the core
 * never includes this header nor MPI).
 *
 * The Lua module (lua/moongrad/distributed.lua over distributed/binding.c) talks to the collective
 * engine only through an mgd_backend: a struct of function pointers over the backend's own data
 * (`self`). Every collective takes a timeout in seconds (its deadline, counted from the call) and
 * returns a status; none raises, longjmps or exits, so the binding can turn MGD_TIMEOUT into a job
 * abort that names the collective, and MGD_ERROR into a Lua error. Ranks are numbered from 0.
 *
 * Two implementations come with the module: Open MPI's (mgd_mpi_backend, over any communicator,
 * distributed/mpi_backend.c; its allreduce goes through an MPI-3 shared-memory window when every
 * rank of the communicator is on one node, summing in rank order), and whatever a host program supplies: a game's own transport fills
 * an mgd_backend and hands it to a Lua state with mgd_set_backend; then
 * dist.init_process_group{backend = "host"} uses it. A host with its own MPI communicator builds
 * the MPI implementation over it with mgd_mpi_backend and hands that in the same way.
 */
#ifndef MOONGRAD_DIST_H
#define MOONGRAD_DIST_H

#include <stddef.h>

#include "moongrad.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mgd_status {
    MGD_OK = 0,
    MGD_TIMEOUT, /* the deadline passed before the collective completed (it may still be pending) */
    MGD_ERROR    /* the engine reported an error: last_error says which */
} mgd_status;

/* Reductions. Bool tensors: SUM and MAX are a logical or, MIN a logical and. */
typedef enum mgd_op { MGD_SUM, MGD_MAX, MGD_MIN } mgd_op;

/* Requests of the nonblocking allreduce are named by a slot, 0 .. MGD_MAX_PENDING - 1. */
#define MGD_MAX_PENDING 256

typedef struct mgd_backend {
    void *self;
    int (*rank)(void *self);
    int (*size)(void *self);
    /* Blocking collectives, in place where it applies. Every rank calls the same ones in the same
     * order, with the same count / nbytes / root (the binding checks that first). */
    mgd_status (*allreduce)(void *self, void *buf, size_t count, mg_dtype dtype, mgd_op op, double timeout);
    mgd_status (*broadcast)(void *self, void *buf, size_t nbytes, int root, double timeout);
    /* recv holds size() blocks of nbytes, rank r's at r * nbytes */
    mgd_status (*allgather)(void *self, const void *send, void *recv, size_t nbytes, double timeout);
    mgd_status (*barrier)(void *self, double timeout);
    /* The group's last collective (destroy_process_group, or its Lua state closing): all ranks meet,
     * on a channel of its own, so that it cannot be matched with a collective another rank is still
     * in. May be NULL (then the group ends without meeting). */
    mgd_status (*close)(void *self, double timeout);
    /* Nonblocking allreduce (data-parallel buckets): start it in a free slot; test never blocks
     * (and drives the engine's progress); wait blocks until done or the deadline. buf must stay
     * valid until test says done or wait returns MGD_OK. */
    mgd_status (*iallreduce)(void *self, int slot, void *buf, size_t count, mg_dtype dtype, mgd_op op);
    mgd_status (*test)(void *self, int slot, int *done);
    mgd_status (*wait)(void *self, int slot, double timeout);
    /* Ends every rank of the job with this message on stderr; does not return. */
    void (*abort)(void *self, int code, const char *message);
    /* The text of the last MGD_ERROR (valid until the next call). */
    const char *(*last_error)(void *self);
    /* Releases self (called once, when the process group is destroyed or its state closes). May be
     * NULL when the host owns self. */
    void (*destroy)(void *self);
} mgd_backend;

struct lua_State;

/* Hands a host's backend to the Lua state: dist.init_process_group{backend = "host"} then uses a
 * copy of *b (b->self must outlive the process group; b->destroy, when set, is called once). */
MG_API void mgd_set_backend(struct lua_State *L, const mgd_backend *b);

/* Open MPI's implementation over the host's communicator (duplicated: the host keeps its own; the
 * host has initialized MPI and finalizes it). 0 on success, -1 when MPI refused (no memory).
 * Declared when <mpi.h> was included before this header. */
#ifdef MPI_VERSION
MG_API int mgd_mpi_backend(MPI_Comm comm, mgd_backend *out);
#endif

/* The Lua module's entry point (moongrad.distributed requires it). */
MG_API int luaopen_moongrad_distributed_core(struct lua_State *L);

#ifdef __cplusplus
}
#endif
#endif
