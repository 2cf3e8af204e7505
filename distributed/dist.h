/* dist.h: what binding.c needs from mpi_backend.c besides the public interface (the MPI library's
 * life: the binding includes no MPI header). */
#ifndef MGD_DIST_H
#define MGD_DIST_H

#include "moongrad_dist.h"

/* Initializes MPI when nobody has (*owns = 1: the caller finalizes it), then builds the backend
 * over a duplicate of MPI_COMM_WORLD, all within `timeout` seconds (else a watchdog thread ends
 * the process with a message). 0 on success; -1 with a message in why. */
int mgd_mpi_world(mgd_backend *out, int *owns, double timeout, char *why, size_t whylen);
/* MPI_Finalize, when MPI is initialized and not yet finalized. */
void mgd_mpi_finalize(void);


/* Buckets in shared memory (mpi_backend.c, "buckets in shared memory"): only for a backend of
 * mpi_backend.c (mgd_mpi_is) whose ranks share one node. */
typedef struct mgd_seg mgd_seg;
int mgd_mpi_is(const mgd_backend *b);
/* Collective: a segment of one slot of `bytes` per rank, mapped by every rank (zero-filled). *out
 * stays NULL (MGD_OK) when the path is off, or when any rank passed want = 0 or could not map it. */
mgd_status mgd_mpi_segment(void *self, size_t bytes, int want, double timeout, mgd_seg **out);
void *mgd_seg_data(const mgd_seg *g); /* this rank's slot */
size_t mgd_seg_bytes(const mgd_seg *g);
int mgd_seg_of_group(const mgd_seg *g, const void *self); /* made by this backend's group */
void mgd_seg_free(mgd_seg *g);        /* this rank's mapping (any time, group alive or not) */
/* A nonblocking allreduce of this rank's whole slot in place (count elements), the sum divided by
 * divisor (1: not); test and wait as any iallreduce. */
mgd_status mgd_mpi_iallreduce_seg(void *self, int slot, const mgd_seg *g, size_t count, mg_dtype dt, mgd_op op,
                                  int divisor);

#endif
