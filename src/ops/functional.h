/*
 * functional.h: the fused functional kernels of mg.F (src/ops/functional.c): the book's model and hand-derived
 * gradient, losses, softmax / log_softmax, linear and dropout. Their backward rules are in
 * mg_functional_backward (in functional.c), dispatched on node->op (an mg_functional_op).
 *
 * Contract as in ops.h: `out` (and any other result, such as cross_entropy's saved log-sum-exp) is
 * allocated by the caller, contiguous, with the shape and dtype named below. Inputs may have any
 * strides and dtypes; a kernel reads a non-contiguous or other-dtype input through a contiguous
 * copy in scratch memory (freed before it returns). Every kernel computes in float32 or float64
 * (out's dtype) and accumulates sums in double.
 */
#ifndef MG_FUNCTIONAL_H
#define MG_FUNCTIONAL_H

#include "../core/core.h"

/* The list of recorded ops: enum and names are made from it. */
#define MG_FUNCTIONAL_OPS(X)                                         \
    X(MODEL, "model")                                          \
    X(MSE, "mse_loss")                                         \
    X(L1, "l1_loss")                                           \
    X(BCE_LOGITS, "binary_cross_entropy_with_logits")          \
    X(CROSS_ENTROPY, "cross_entropy")                          \
    X(SOFTMAX, "softmax")                                      \
    X(LOG_SOFTMAX, "log_softmax")                              \
    X(LINEAR, "linear")                                        \
    X(DROPOUT, "dropout")                                      \
    X(NLL, "nll_loss")                                         \
    X(BCE, "binary_cross_entropy")                             \
    X(SMOOTH_L1, "smooth_l1_loss")                             \
    X(HUBER, "huber_loss")
#define MG_ENUM_FUNCTIONAL(e, name) MG_F_##e,
typedef enum mg_functional_op { MG_FUNCTIONAL_OPS(MG_ENUM_FUNCTIONAL) MG_NFUNCTIONAL } mg_functional_op;
#undef MG_ENUM_FUNCTIONAL
const char *mg_functional_name(mg_functional_op op);

/* How a loss folds its elements (node->iarg[0] of the loss nodes). */
typedef enum mg_reduction { MG_REDUCTION_NONE, MG_REDUCTION_MEAN, MG_REDUCTION_SUM } mg_reduction;

/* ---- the book's functions (chapter 5) ------------------------------------------------------- */
/* out = w * u + b. out: u's shape, float; w and b one-element tensors of any dtype.
 * Backward: du = g w, dw = sum(g u), db = sum(g). */
mg_status mg_model(mg_ctx *ctx, mg_tensor *out, const mg_tensor *u, const mg_tensor *w,
                   const mg_tensor *b);
/* out = 2 (p - c): the seed of the hand-derived gradient. out: broadcast shape, float. */
mg_status mg_dloss(mg_ctx *ctx, mg_tensor *out, const mg_tensor *p, const mg_tensor *c);
/* out (2 elements) = {mean(2 (p - c) u), mean(2 (p - c))}, in one pass over the data.
 * u, c, p have one shape. */
mg_status mg_grad_fn(mg_ctx *ctx, mg_tensor *out, const mg_tensor *u, const mg_tensor *c,
                     const mg_tensor *p);

/* ---- losses --------------------------------------------------------------------------------- */
/* op MSE: (x - y)^2, L1: |x - y|, BCE_LOGITS: max(x,0) - x y + log(1 + e^-|x|), elementwise over
 * x and y broadcast to (ndim, size), then reduced. out: (ndim, size) for NONE, 0-d otherwise. */
mg_status mg_pointwise_loss(mg_ctx *ctx, mg_functional_op op, mg_tensor *out, const mg_tensor *x,
                            const mg_tensor *y, mg_reduction red, int ndim, const int64_t *size);
/* logits (N, C) (or (C): N = 1), target int64 (N) (or 0-d) of 1-based classes, checked (MG_EINDEX
 * on operand 2 naming the first bad one). lse (N) receives each row's log-sum-exp (saved for
 * backward). out: (N) (0-d for (C) logits) for NONE, 0-d otherwise. */
mg_status mg_cross_entropy(mg_ctx *ctx, mg_tensor *out, mg_tensor *lse, const mg_tensor *logits,
                           const mg_tensor *target, mg_reduction red);

/* ---- classification and robust losses (issue 13) ------------------------------------------- */
/* x (N, C, d...) (or (C): N = 1), target int64 (N, d...) (or 0-d) of 1-based classes, weight
 * (C) of x's dtype or NULL (all 1). An element whose target equals ignore_index counts for
 * nothing (loss 0, weight 0); the others are checked in 1..C (MG_EINDEX on operand 2). loss of an
 * element: -weight[t] x[n, t, k]; mean divides the sum by the sum of the counted weights (NaN
 * when nothing counts, as PyTorch). out: target's shape for NONE, 0-d otherwise. */
mg_status mg_nll_loss(mg_ctx *ctx, mg_tensor *out, const mg_tensor *x, const mg_tensor *target,
                      const mg_tensor *weight, int64_t ignore_index, mg_reduction red);
/* -w (y max(log p, -100) + (1 - y) max(log(1 - p), -100)) elementwise: p and y of one shape, w
 * (NULL: 1) broadcast to it; every p in [0, 1] (MG_EVALUE on operand 1). out: p's shape for
 * NONE, 0-d otherwise. */
mg_status mg_binary_cross_entropy(mg_ctx *ctx, mg_tensor *out, const mg_tensor *p, const mg_tensor *y,
                                  const mg_tensor *weight, mg_reduction red);
/* op SMOOTH_L1 (param beta): z = |x - y|, z < beta ? z^2 / (2 beta) : z - beta / 2;
 * op HUBER (param delta): z < delta ? z^2 / 2 : delta (z - delta / 2); over x and y broadcast
 * to (ndim, size). out: (ndim, size) for NONE, 0-d otherwise. */
mg_status mg_robust_loss(mg_ctx *ctx, mg_functional_op op, mg_tensor *out, const mg_tensor *x,
                         const mg_tensor *y, double param, mg_reduction red, int ndim,
                         const int64_t *size);

/* out (int64, idx's shape then C) <- 1 at [..., idx[...]] (idx int64, 1-based, checked in 1..C:
 * MG_EINDEX on operand 1), 0 elsewhere; C = out's last size. Not differentiable. */
mg_status mg_one_hot(mg_ctx *ctx, mg_tensor *out, const mg_tensor *idx);

/* ---- activations and layers ----------------------------------------------------------------- */
/* op SOFTMAX or LOG_SOFTMAX along dim (0-based), stable (the max is subtracted). out: x's shape. */
mg_status mg_softmax(mg_ctx *ctx, mg_functional_op op, mg_tensor *out, const mg_tensor *x, int dim);
/* out (..., O) = x (..., I) weight(O, I)^T + bias (O); bias may be NULL. One dtype for all. */
mg_status mg_linear(mg_ctx *ctx, mg_tensor *out, const mg_tensor *x, const mg_tensor *weight,
                    const mg_tensor *bias);
/* mask (x's shape, out's dtype) <- 0 with probability p, else 1 / (1 - p), from ctx->rng;
 * out = x * mask. 0 <= p <= 1. */
mg_status mg_dropout(mg_ctx *ctx, mg_tensor *out, mg_tensor *mask, const mg_tensor *x, double p);

#endif
