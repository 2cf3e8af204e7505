/*
 * mpi_backend.c: the collective interface (include/moongrad_dist.h) over Open MPI.
 *
 * Every collective is MPI's nonblocking form (MPI_Iallreduce, MPI_Ibcast, ...) completed by a loop
 * of MPI_Test against the deadline: MPI has no timeout of its own, and Open MPI here has no progress
 * thread, so the calling thread drives progress and, when the deadline passes, returns MGD_TIMEOUT
 * (the binding then aborts the job with MPI_Abort). The loop spins briefly, then yields and sleeps
 * (a few hundred microseconds at most), so that oversubscribed ranks (mpirun --oversubscribe) leave
 * the cores to the rank that computes.
 *
 * MPI's start (MPI_Init, MPI_Comm_dup) cannot be polled: a watchdog thread keeps its deadline
 * (mgd_mpi_world).
 *
 * The communicator is set to MPI_ERRORS_RETURN: an MPI error comes back as MGD_ERROR with MPI's
 * text (last_error), never as MPI's default abort. All state lives in the mgd_mpi struct (one per
 * process group); nothing here is global.
 */
#include <errno.h>
#include <mpi.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dist.h"

typedef struct mgd_mpi {
    MPI_Comm comm;
    MPI_Comm closing; /* for the closing barrier only */
    int rank, size;
    MPI_Request pending[MGD_MAX_PENDING];
    char error[MPI_MAX_ERROR_STRING + 64];
} mgd_mpi;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static mgd_status fail(mgd_mpi *m, const char *what, int code) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "error %d", code);
    snprintf(m->error, sizeof m->error, "%s: %s", what, text);
    return MGD_ERROR;
}

/* Completes req by polling until the deadline. */
static mgd_status finish(mgd_mpi *m, MPI_Request *req, double timeout, const char *what) {
    const double deadline = now() + timeout;
    for (long spins = 0;; spins++) {
        int done = 0;
        const int rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return fail(m, what, rc);
        if (done) return MGD_OK;
        if (spins < 200) continue;
        if (now() > deadline) return MGD_TIMEOUT;
        if (spins < 2000) {
            sched_yield();
        } else {
            const struct timespec nap = {0, spins < 20000 ? 20000 : 200000};
            nanosleep(&nap, NULL);
        }
    }
}

static MPI_Datatype datatype(mg_dtype dt) {
    switch (dt) {
    case MG_FLOAT32: return MPI_FLOAT;
    case MG_FLOAT64: return MPI_DOUBLE;
    case MG_INT64: return MPI_INT64_T;
    default: return MPI_C_BOOL;
    }
}

static MPI_Op reduction(mg_dtype dt, mgd_op op) {
    if (dt == MG_BOOL) return op == MGD_MIN ? MPI_LAND : MPI_LOR;
    return op == MGD_SUM ? MPI_SUM : op == MGD_MAX ? MPI_MAX : MPI_MIN;
}

static int m_rank(void *self) { return ((mgd_mpi *)self)->rank; }
static int m_size(void *self) { return ((mgd_mpi *)self)->size; }

/* MPI counts are int: larger buffers go in pieces (each a collective of its own, in order). */
#define CHUNK ((size_t)1 << 30)

static mgd_status m_allreduce(void *self, void *buf, size_t count, mg_dtype dt, mgd_op op, double timeout) {
    mgd_mpi *m = (mgd_mpi *)self;
    const size_t esize = dt == MG_BOOL ? 1 : dt == MG_FLOAT32 ? 4 : 8;
    for (size_t at = 0; at < count || (count == 0 && at == 0); at += CHUNK) {
        const size_t n = count - at < CHUNK ? count - at : CHUNK;
        MPI_Request req;
        const int rc = MPI_Iallreduce(MPI_IN_PLACE, (char *)buf + at * esize, (int)n, datatype(dt),
                                      reduction(dt, op), m->comm, &req);
        if (rc != MPI_SUCCESS) return fail(m, "MPI_Iallreduce", rc);
        const mgd_status st = finish(m, &req, timeout, "MPI_Iallreduce");
        if (st != MGD_OK || count == 0) return st;
    }
    return MGD_OK;
}

static mgd_status m_broadcast(void *self, void *buf, size_t nbytes, int root, double timeout) {
    mgd_mpi *m = (mgd_mpi *)self;
    for (size_t at = 0; at < nbytes || (nbytes == 0 && at == 0); at += CHUNK) {
        const size_t n = nbytes - at < CHUNK ? nbytes - at : CHUNK;
        MPI_Request req;
        const int rc = MPI_Ibcast((char *)buf + at, (int)n, MPI_BYTE, root, m->comm, &req);
        if (rc != MPI_SUCCESS) return fail(m, "MPI_Ibcast", rc);
        const mgd_status st = finish(m, &req, timeout, "MPI_Ibcast");
        if (st != MGD_OK || nbytes == 0) return st;
    }
    return MGD_OK;
}

static mgd_status m_allgather(void *self, const void *send, void *recv, size_t nbytes, double timeout) {
    mgd_mpi *m = (mgd_mpi *)self;
    if (nbytes > (size_t)1 << 30) {
        snprintf(m->error, sizeof m->error, "all_gather of %zu bytes per rank: at most 2^30", nbytes);
        return MGD_ERROR;
    }
    MPI_Request req;
    const int rc = MPI_Iallgather(send, (int)nbytes, MPI_BYTE, recv, (int)nbytes, MPI_BYTE, m->comm, &req);
    if (rc != MPI_SUCCESS) return fail(m, "MPI_Iallgather", rc);
    return finish(m, &req, timeout, "MPI_Iallgather");
}

static mgd_status m_barrier(void *self, double timeout) {
    mgd_mpi *m = (mgd_mpi *)self;
    MPI_Request req;
    const int rc = MPI_Ibarrier(m->comm, &req);
    if (rc != MPI_SUCCESS) return fail(m, "MPI_Ibarrier", rc);
    return finish(m, &req, timeout, "MPI_Ibarrier");
}

static mgd_status m_close(void *self, double timeout) {
    mgd_mpi *m = (mgd_mpi *)self;
    MPI_Request req;
    const int rc = MPI_Ibarrier(m->closing, &req);
    if (rc != MPI_SUCCESS) return fail(m, "MPI_Ibarrier", rc);
    return finish(m, &req, timeout, "MPI_Ibarrier");
}

static mgd_status m_iallreduce(void *self, int slot, void *buf, size_t count, mg_dtype dt, mgd_op op) {
    mgd_mpi *m = (mgd_mpi *)self;
    if (slot < 0 || slot >= MGD_MAX_PENDING || m->pending[slot] != MPI_REQUEST_NULL || count > CHUNK) {
        snprintf(m->error, sizeof m->error, "iallreduce: slot %d is busy or out of range, or %zu elements "
                 "are too many", slot, count);
        return MGD_ERROR;
    }
    const int rc = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)count, datatype(dt), reduction(dt, op), m->comm,
                                  &m->pending[slot]);
    if (rc != MPI_SUCCESS) return fail(m, "MPI_Iallreduce", rc);
    return MGD_OK;
}

static mgd_status m_test(void *self, int slot, int *done) {
    mgd_mpi *m = (mgd_mpi *)self;
    if (slot < 0 || slot >= MGD_MAX_PENDING) return MGD_ERROR;
    *done = 1;
    if (m->pending[slot] == MPI_REQUEST_NULL) return MGD_OK;
    const int rc = MPI_Test(&m->pending[slot], done, MPI_STATUS_IGNORE);
    return rc == MPI_SUCCESS ? MGD_OK : fail(m, "MPI_Test", rc);
}

static mgd_status m_wait(void *self, int slot, double timeout) {
    mgd_mpi *m = (mgd_mpi *)self;
    if (slot < 0 || slot >= MGD_MAX_PENDING) return MGD_ERROR;
    if (m->pending[slot] == MPI_REQUEST_NULL) return MGD_OK;
    return finish(m, &m->pending[slot], timeout, "MPI_Iallreduce");
}

static void m_abort(void *self, int code, const char *message) {
    mgd_mpi *m = (mgd_mpi *)self;
    fprintf(stderr, "%s\n", message);
    fflush(stderr);
    MPI_Abort(m->comm, code);
    abort(); /* MPI_Abort does not return; should it, the process still ends */
}

static const char *m_last_error(void *self) { return ((mgd_mpi *)self)->error; }

/* Pending requests of a group destroyed mid-flight are left to MPI_Finalize (freeing a started
 * collective is not allowed); the communicator goes. */
static void m_destroy(void *self) {
    mgd_mpi *m = (mgd_mpi *)self;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) {
        MPI_Comm_free(&m->comm);
        MPI_Comm_free(&m->closing);
    }
    free(m);
}

int mgd_mpi_backend(MPI_Comm comm, mgd_backend *out) {
    mgd_mpi *m = (mgd_mpi *)calloc(1, sizeof *m);
    if (!m) return -1;
    if (MPI_Comm_dup(comm, &m->comm) != MPI_SUCCESS) {
        free(m);
        return -1;
    }
    if (MPI_Comm_dup(comm, &m->closing) != MPI_SUCCESS) {
        MPI_Comm_free(&m->comm);
        free(m);
        return -1;
    }
    MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(m->closing, MPI_ERRORS_RETURN);
    MPI_Comm_rank(m->comm, &m->rank);
    MPI_Comm_size(m->comm, &m->size);
    for (int i = 0; i < MGD_MAX_PENDING; i++) m->pending[i] = MPI_REQUEST_NULL;
    memset(out, 0, sizeof *out);
    out->self = m;
    out->rank = m_rank;
    out->size = m_size;
    out->allreduce = m_allreduce;
    out->broadcast = m_broadcast;
    out->allgather = m_allgather;
    out->barrier = m_barrier;
    out->close = m_close;
    out->iallreduce = m_iallreduce;
    out->test = m_test;
    out->wait = m_wait;
    out->abort = m_abort;
    out->last_error = m_last_error;
    out->destroy = m_destroy;
    return 0;
}

/* The watchdog of MPI's start: MPI_Init and MPI_Comm_dup block (a rank stopped before it calls
 * init_process_group would hold every other rank there for ever), so a thread waits for them with
 * the deadline and, past it, ends this process with a message; mpirun then ends the job. */
typedef struct start_watch {
    pthread_mutex_t lock;
    pthread_cond_t done_cv;
    int done;
    double timeout;
} start_watch;

static void *watch_start(void *arg) {
    start_watch *w = (start_watch *)arg;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    const double t = (double)until.tv_sec + 1e-9 * (double)until.tv_nsec + w->timeout;
    until.tv_sec = (time_t)t;
    until.tv_nsec = (long)((t - (double)until.tv_sec) * 1e9);
    pthread_mutex_lock(&w->lock);
    int rc = 0;
    while (!w->done && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&w->done_cv, &w->lock, &until);
    const int done = w->done;
    pthread_mutex_unlock(&w->lock);
    if (!done) {
        fprintf(stderr, "moongrad.distributed: init_process_group (MPI_Init, MPI_Comm_dup) did not complete within "
                        "the deadline of %.1f s (its timeout): a rank died, stopped, or did not call it; ending this "
                        "process\n", w->timeout);
        fflush(stderr);
        _exit(3);
    }
    return NULL;
}

int mgd_mpi_world(mgd_backend *out, int *owns, double timeout, char *why, size_t whylen) {
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    *owns = 0;
    if (finalized) {
        snprintf(why, whylen, "MPI was finalized in this process (by an earlier destroy_process_group): "
                              "MPI cannot start twice in one process");
        return -1;
    }
    start_watch w;
    memset(&w, 0, sizeof w);
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.done_cv, NULL);
    w.timeout = timeout;
    pthread_t watchdog;
    const int watching = pthread_create(&watchdog, NULL, watch_start, &w) == 0;
    int status = 0;
    if (!initialized) {
        int provided = 0;
        /* Open MPI's nonblocking allreduce (libnbc) picks a slow algorithm for large gradients by
         * default: its ring moved W6's 800 KB in 482 µs instead of 778 on 2 ranks here. Only when
         * this module starts MPI, and never over the user's own choice (overwrite 0). */
        setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "1", 0);
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
            snprintf(why, whylen, "MPI_Init_thread failed");
            status = -1;
        } else {
            *owns = 1;
        }
    }
    if (status == 0 && mgd_mpi_backend(MPI_COMM_WORLD, out) != 0) {
        snprintf(why, whylen, "cannot duplicate MPI_COMM_WORLD (no memory?)");
        status = -1;
    }
    pthread_mutex_lock(&w.lock);
    w.done = 1;
    pthread_cond_signal(&w.done_cv);
    pthread_mutex_unlock(&w.lock);
    if (watching) pthread_join(watchdog, NULL);
    pthread_cond_destroy(&w.done_cv);
    pthread_mutex_destroy(&w.lock);
    return status;
}

void mgd_mpi_finalize(void) {
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (initialized && !finalized) MPI_Finalize();
}
