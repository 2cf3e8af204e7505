/*
 * grad.h: how autograd reaches the op families. The engine (src/bind/autograd.c) walks a graph of
 * mg_node (src/core/autograd.h) from the output back and, for each node and each input that needs
 * a gradient, calls mg_backward, which hands the node to its family's rule. Each rule lives in the
 * family's file, below its forward kernels.
 *
 * A backward rule computes d(loss)/d(input i) from d(loss)/d(output) into `gin`, a contiguous
 * tensor with input i's shape and dtype, overwriting it. It may use scratch tensors (mg_scratch)
 * but allocates nothing else. Gradients of broadcast inputs are summed back with mg_sum_to.
 *
 * To make an op differentiable: give it an op code in its family, record a node in its binding
 * (lt_record), and add its case to the family's rule.
 */
#ifndef MG_GRAD_H
#define MG_GRAD_H

#include "../core/autograd.h"

/* node->family: which rule differentiates the node; node->op is the family's op code. The one list
 * of families makes the enum, the rule table and the names (tostring of a grad_fn).
 *   X(FAMILY, name, rule)   op codes                                      rule's file */
#define MG_FAMILIES(X)                                                                          \
    X(BINARY, binary, mg_binary_backward)             /* mg_binary_op (ops.h)      binary.c */  \
    X(WHERE, where, mg_where_backward)                /* mg_where_op (ops.h)       binary.c */  \
    X(UNARY, unary, mg_unary_backward)                /* mg_unary_op; darg: clamp  unary.c */   \
    X(REDUCE, reduce, mg_reduce_backward)             /* mg_reduce_op; iarg: dims  reduce.c */  \
    X(LINALG, linalg, mg_linalg_backward)             /* mg_linalg_op              linalg.c */  \
    X(SHAPE, shape, mg_shape_backward)                /* mg_shape_op: views        shape.c */   \
    X(INDEX, index, mg_index_backward)                /* mg_index_op               index.c */   \
    X(FUNCTIONAL, functional, mg_functional_backward) /* mg_functional_op          functional.c */ \
    X(CONV, conv, mg_conv_backward)                   /* mg_conv_op: layers        conv.c, norm.c */
#define MG_ENUM_FAMILY(FAMILY, name, rule) MG_FAM_##FAMILY,
typedef enum mg_family { MG_FAMILIES(MG_ENUM_FAMILY) MG_NFAMILIES } mg_family;
#undef MG_ENUM_FAMILY
const char *mg_family_name(mg_family family);

/* d loss / d inputs[i] into gin (contiguous, inputs[i]'s shape and dtype), overwriting it. */
mg_status mg_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin);

/* True when the rule for input i gives d loss / d out itself whenever input i has out's shape and
 * dtype (add, and sub's first operand): the engine then hands the output's gradient on as it is,
 * as PyTorch does, instead of a copy of it. */
bool mg_backward_is_identity(const mg_node *n, int i);

/* When the rule's gradient for input i is one value at every element (a sum or mean of all of
 * input i, floating, as a loss's `mean()`): writes that value into `one` (0-d, input i's dtype),
 * its status in *st, and returns true; the engine then hands on a stride-0 view of it instead of
 * filling input i's shape (W5: a 4 MB write and read a step fewer). False otherwise. */
bool mg_backward_uniform(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *one, mg_status *st);
bool mg_reduce_backward_uniform(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *one, mg_status *st);
/* True when node n's rule reads its output's gradient only as an operand of elementwise kernels,
 * which give the same bits for a stride-0 operand as for its dense copy, and never hands it on,
 * copies it or sums it (unary ops; mul, div, pow, maximum, minimum): a uniform gradient may reach
 * it as a view. add and sub hand theirs on, or sum it back to a broadcast input's shape, where a
 * stride-0 operand would take another summation path. */
bool mg_backward_reads_elementwise(const mg_node *n);

/* acc += d loss / d inputs[i], straight into acc (a .grad: contiguous, inputs[i]'s shape and dtype),
 * with the bits of mg_backward into a temporary and an add after it. True when the rule did
 * (its status in *st); false when it does not for these operands: the caller then runs mg_backward
 * and adds. Today: nn.Linear's weight gradient for batches up to MG_GEMM_KC rows. */
bool mg_backward_into(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *acc, mg_status *st);
bool mg_functional_backward_into(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *acc, mg_status *st);

/* Each family's rule, with its forward kernels in src/ops/<family>.c. */
mg_status mg_binary_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin);
mg_status mg_where_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin);
mg_status mg_unary_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin);
mg_status mg_reduce_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin);
mg_status mg_linalg_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin);
mg_status mg_shape_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin);
mg_status mg_index_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin);
mg_status mg_functional_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin);
mg_status mg_conv_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin);

/* ---- helpers for rules ------------------------------------------------------------------------ */
/* out <- in summed over the dims that broadcasting added or stretched, so that in's shape (a
 * broadcast of out's) folds back to out's; converts dtype. out and in may have equal shapes. */
mg_status mg_sum_to(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in);
/* *out = t when it has dtype dt, else a converted copy made in sc. sc->s.data is NULL when no copy
 * was made; otherwise the caller frees sc (on every path, also when the status is an error). */
mg_status mg_scratch_as(mg_ctx *ctx, const mg_tensor *t, mg_dtype dt, mg_scratch *sc,
                        const mg_tensor **out);

#endif
