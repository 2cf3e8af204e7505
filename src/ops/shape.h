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
    MG_SHAPE_COPY,         /* contiguous clone to float double: the gradient converted back */
    MG_SHAPE_FLIP,         /* copies: iarg[0] = the flipped dims, bit d for 0-based dim d */
    MG_SHAPE_TRIL,         /* copies: iarg[0] = diagonal (0 the main one, > 0 above) */
    MG_SHAPE_TRIU          /* copies: iarg[0] = diagonal */
} mg_shape_op;

int64_t mg_pack_perm(const int *perm, int ndim);

/* out <- in with the dims in `dims` (bit d: 0-based dim d) reversed; out has in's shape (any
 * strides, dtype converted as mg_copy does). */
mg_status mg_flip(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in, uint32_t dims);
/* out <- in (ndim >= 2) with the elements off the lower (tril) or upper (triu) triangle of its
 * last two dims zeroed: tril keeps column j of row i where j - i <= diagonal, triu where
 * j - i >= diagonal. out is contiguous, in's shape and dtype. */
mg_status mg_tri(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in, int64_t diagonal, bool upper);

#endif
