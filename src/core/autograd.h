/*
 * autograd.h: what the core knows of reverse-mode differentiation: the graph node, what a backward
 * rule sees, and the scratch tensors rules compute in. No Lua, and no ops: the families and their
 * rules are in src/ops/grad.h.
 *
 * The binding records one mg_node per differentiable op whose inputs require grad (the node is a
 * userdata that keeps its input and saved tensors alive through user values, so the graph lives
 * exactly as long as the result that points to it).
 */
#ifndef MG_AUTOGRAD_H
#define MG_AUTOGRAD_H

#include "core.h"

enum { MG_NODE_FREED = 1 };

typedef struct mg_node {
    uint8_t family;     /* mg_family (src/ops/grad.h): which rule differentiates it */
    uint8_t op;         /* the family's op code */
    uint8_t flags;      /* MG_NODE_FREED once backward ran without retain_graph */
    uint8_t nsaved;     /* tensors saved besides the inputs (e.g. the output, for exp) */
    uint16_t ninputs;   /* inputs (tensors; numbers are recorded as 0-d tensors) */
    uint32_t seen, done; /* the engine's marks (a backward pass's number) */
    uint32_t pending_pass; /* the pass whose gradient `pending` is: in any other, the node has none */
    int64_t iarg[4];    /* op parameters: dims, keepdim, indices, ... */
    double darg[2];     /* op parameters: exponents, bounds, ... */
    const mg_tensor *out; /* the result (borrowed: the node holds it, and it holds the node) */
    mg_tensor *pending; /* the gradient arriving at out during pass pending_pass: gbuf, or a tensor
                         * borrowed from the node's last user value, which holds it */
    mg_tensor *gbuf;    /* for a small floating result: a contiguous buffer of out's shape inside the
                         * node's own bytes, where the first gradient for out is computed (no
                         * tensor made per gradient); NULL for a larger one */
    /* the inputs then the saved tensors, each with its storage's version when recorded, and for an
     * input, the node that made it (NULL for a leaf: a tensor's node is set once, when it is made).
     * The pointers are borrowed from the node's user values, which keep the tensors (and so their
     * nodes) alive (the saved ones until backward frees them: MG_NODE_FREED). */
    struct mg_node_operand { const mg_tensor *t; struct mg_node *node; uint64_t version; } operand[];
} mg_node;

/* What a backward rule sees (borrowed: valid during the call). */
typedef struct mg_backward_args {
    const mg_node *node;
    const mg_tensor *const *inputs; /* node->ninputs */
    const mg_tensor *const *saved;  /* node->nsaved */
    const mg_tensor *out;           /* the forward result (descriptor only: may be a view) */
    const mg_tensor *gout;          /* d loss / d out: out's shape, out's dtype */
} mg_backward_args;

/* ---- what rules compute in ----------------------------------------------------------------------- */

/* A contiguous tensor whose bytes come from mg_alloc: for temporaries inside one core call. */
typedef struct mg_scratch {
    mg_tensor t;
    mg_storage s;
    int64_t dims[2 * MG_MAX_DIMS];
} mg_scratch;
mg_status mg_scratch_new(mg_ctx *ctx, mg_scratch *sc, mg_dtype dtype, int ndim, const int64_t *size);
void mg_scratch_free(mg_ctx *ctx, mg_scratch *sc);
/* A descriptor on the C stack viewing t with other sizes / strides (for rules that write into
 * views of gin). */
typedef struct mg_view_buf {
    mg_tensor t;
    int64_t dims[2 * MG_MAX_DIMS];
} mg_view_buf;
mg_tensor *mg_view_of(mg_view_buf *vb, const mg_tensor *t, int ndim);

#endif
