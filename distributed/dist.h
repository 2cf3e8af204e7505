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

#endif
