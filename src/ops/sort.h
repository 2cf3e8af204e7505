/*
 * sort.h: ordering along a dim: sort, argsort and topk (src/ops/sort.c). Not a family of its own
 * for autograd: sorted values are in.gather(dim, indices), and the binding records them as that
 * gather (index family), whose backward scatters the gradient back to the indices.
 */
#ifndef MG_SORT_H
#define MG_SORT_H

#include "../core/core.h"

/* values (in's dtype, or NULL) and indices (int64, 1-based) <- the first k entries of each line of
 * in along dim (0-based; a 0-d input is a line of one), sorted ascending or descending. The sort
 * is stable (equal values keep their order, in either direction, as PyTorch's stable=True) and NaN
 * is the largest value (last ascending, first descending), as PyTorch. 0 <= k <= the line's length.
 * values and indices are allocated by the caller with in's shape, size[dim] = k; any strides. */
mg_status mg_sort(mg_ctx *ctx, mg_tensor *values, mg_tensor *indices, const mg_tensor *in, int dim,
                  bool descending, int64_t k);

#endif
