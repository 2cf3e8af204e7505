/*
 * shape.h: op codes of the shape family for autograd: views and copies. Their forward work is done
 * by src/core/view.c (geometry) and mg_copy; their backward rules are in shape.c. Parameters a
 * binding stores in the node are listed with each op. (Joins and indexing: index.h.)
 */
#ifndef MG_SHAPE_H
#define MG_SHAPE_H

#include "grad.h"

typedef enum mg_shape_op {
    MG_SHAPE_RESHAPE,      /* view reshape flatten squeeze unsqueeze: same elements, other shape */
    MG_SHAPE_PERMUTE,      /* transpose permute t: iarg[0] = perm, 4 bits per dim (mg_pack_perm) */
    MG_SHAPE_EXPAND,       /* expand: the gradient is summed back */
    MG_SHAPE_NARROW,       /* iarg[0] = dim, iarg[1] = start (0-based) */
    MG_SHAPE_SELECT,       /* iarg[0] = dim, iarg[1] = index (0-based); also t[i] */
    MG_SHAPE_COPY          /* contiguous clone to float double: the gradient converted back */
} mg_shape_op;

int64_t mg_pack_perm(const int *perm, int ndim);

#endif
