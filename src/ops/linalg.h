/*
 * linalg.h: matrix products (matmul in all of PyTorch's forms, and outer). mm, bmm and dot are
 * matmul once the binding has checked their stricter shapes.
 */
#ifndef MG_LINALG_H
#define MG_LINALG_H

#include "../core/core.h"

/* The shape of matmul(a, b), following torch.matmul:
 *   1-D . 1-D -> 0-d (dot);  2-D . 2-D -> (M,N);  1-D . 2-D -> (N) (a 1 is prepended, then removed);
 *   2-D . 1-D -> (M);  N-D: the batch dims (all but the last two) broadcast, and a 1-D operand is
 *   promoted to a matrix whose added dim is removed from the result.
 * Errors: a 0-d operand, inner sizes that differ, batch dims that cannot broadcast.
 * out_size holds MG_MAX_DIMS entries. */
mg_status mg_matmul_shape(mg_ctx *ctx, int *out_ndim, int64_t *out_size, const mg_tensor *a,
                          const mg_tensor *b);

/* out = matmul(a, b). a, b and out share one dtype (float32, float64 or int64); out has the shape
 * mg_matmul_shape gives and does not overlap a or b. a and b may have any strides (transposed,
 * expanded). float32 accumulates in float32, in an order fixed by the sizes alone. Scratch for
 * packing comes from the ctx's allocator and is freed before returning. */
mg_status mg_matmul(mg_ctx *ctx, mg_tensor *out, const mg_tensor *a, const mg_tensor *b);
/* out += a b: two matrices of a float dtype, each dim of out above 1, K at most MG_GEMM_KC (gemm.h's
 * accumulate: each element is out + its sum, as an add after the product would round it); fails
 * MG_EVALUE otherwise. */
mg_status mg_matmul_add(mg_ctx *ctx, mg_tensor *out, const mg_tensor *a, const mg_tensor *b);

/* Op codes of the linalg family for autograd (node->op). mm, bmm and dot are recorded as matmul:
 * their shapes are matmul's special cases and so are their gradients. */
typedef enum mg_linalg_op {
    MG_LIN_MATMUL, /* inputs (a, b): every torch.matmul form */
    MG_LIN_OUTER   /* inputs (a, b): 1-D x 1-D, a as an (M,1) column times b as a (1,N) row */
} mg_linalg_op;

/* out(i,j) = a(i) * b(j): a and b 1-D of one dtype, out (a.size, b.size) of that dtype. */
mg_status mg_outer(mg_ctx *ctx, mg_tensor *out, const mg_tensor *a, const mg_tensor *b);

#endif
