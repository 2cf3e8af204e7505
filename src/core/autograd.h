/*
 * autograd.h: what the core knows of reverse-mode differentiation. No Lua here.
 *
 * The binding records one mg_node per differentiable op whose inputs require grad (the node is a
 * userdata that keeps its input and saved tensors alive through user values, so the graph lives
 * exactly as long as the result that points to it). The engine (src/bind/autograd.c) walks the
 * nodes from the output back and, for each node and each input that needs a gradient, calls the
 * op family's backward rule, which lives next to the forward kernel in src/ops/<family>.c.
 *
 * A backward rule computes d(loss)/d(input i) from d(loss)/d(output) into `gin`, a contiguous
 * tensor with input i's shape and dtype, overwriting it. It may use scratch tensors (mg_scratch)
 * but allocates nothing else. Gradients of broadcast inputs are summed back with mg_sum_to.
 *
 * To make an op differentiable: give it an op code in its family, record a node in its binding
 * (lt_record), and add its case to the family's backward function.
 */
#ifndef MG_AUTOGRAD_H
#define MG_AUTOGRAD_H

#include "core.h"

typedef enum mg_family {
    MG_FAM_BINARY, /* op: mg_binary_op */
    MG_FAM_UNARY,  /* op: mg_unary_op; darg: clamp bounds */
    MG_FAM_REDUCE, /* op: mg_reduce_op; iarg[0]: dims mask, iarg[1]: keepdim */
    MG_FAM_LINALG, /* op: mg_linalg_op */
    MG_FAM_SHAPE,  /* op: mg_shape_op (views, joins and indexing) */
    MG_FAM_LOSS,   /* op: mg_loss_op (fused functional kernels, mg.F) */
    MG_NFAMILIES
} mg_family;

enum { MG_NODE_FREED = 1 };

typedef struct mg_node {
    uint8_t family;     /* mg_family */
    uint8_t op;         /* the family's op code */
    uint8_t flags;      /* MG_NODE_FREED once backward ran without retain_graph */
    uint8_t nsaved;     /* tensors saved besides the inputs (e.g. the output, for exp) */
    uint16_t ninputs;   /* inputs (tensors; numbers are recorded as 0-d tensors) */
    uint32_t seen, done; /* the engine's marks (a backward pass's number) */
    int64_t iarg[4];    /* op parameters: dims, keepdim, indices, ... */
    double darg[2];     /* op parameters: exponents, bounds, ... */
    const mg_tensor *out; /* the result (borrowed: the node holds it, and it holds the node) */
    /* the inputs then the saved tensors, each with its storage's version when recorded. The
     * pointers are borrowed from the node's user values, which keep the tensors alive (the saved
     * ones until backward frees them: MG_NODE_FREED). */
    struct mg_node_operand { const mg_tensor *t; uint64_t version; } operand[];
} mg_node;

/* What a backward rule sees (borrowed: valid during the call). */
typedef struct mg_backward_args {
    const mg_node *node;
    const mg_tensor *const *inputs; /* node->ninputs */
    const mg_tensor *const *saved;  /* node->nsaved */
    const mg_tensor *out;           /* the forward result (descriptor only: may be a view) */
    const mg_tensor *gout;          /* d loss / d out: out's shape, out's dtype */
} mg_backward_args;

/* d loss / d inputs[i] into gin (contiguous, inputs[i]'s shape and dtype), overwriting it. */
mg_status mg_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin);

/* Each family's rule (in src/ops/<family>.c). */
mg_status mg_binary_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin);
mg_status mg_unary_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin);
mg_status mg_reduce_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin);
mg_status mg_linalg_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin);
mg_status mg_shape_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin);
mg_status mg_loss_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin);

/* ---- helpers for rules ----------------------------------------------------------------------- */

/* A contiguous tensor whose bytes come from mg_alloc: for temporaries inside one core call. */
typedef struct mg_scratch {
    mg_tensor t;
    mg_storage s;
    int64_t dims[2 * MG_MAX_DIMS];
} mg_scratch;
mg_status mg_scratch_new(mg_ctx *ctx, mg_scratch *sc, mg_dtype dtype, int ndim, const int64_t *size);
void mg_scratch_free(mg_ctx *ctx, mg_scratch *sc);
/* *out = t when it has dtype dt, else a converted copy made in sc. sc->s.data is NULL when no copy
 * was made; otherwise the caller frees sc (on every path, also when the status is an error). */
mg_status mg_scratch_as(mg_ctx *ctx, const mg_tensor *t, mg_dtype dt, mg_scratch *sc,
                        const mg_tensor **out);

/* out <- in summed over the dims that broadcasting added or stretched, so that in's shape (a
 * broadcast of out's) folds back to out's; converts dtype. out and in may have equal shapes. */
mg_status mg_sum_to(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in);

/* A descriptor on the C stack viewing t with other sizes / strides (for rules that write into
 * views of gin). */
typedef struct mg_view_buf {
    mg_tensor t;
    int64_t dims[2 * MG_MAX_DIMS];
} mg_view_buf;
mg_tensor *mg_view_of(mg_view_buf *vb, const mg_tensor *t, int ndim);

#endif
