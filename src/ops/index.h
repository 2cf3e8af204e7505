/*
 * index.h: the indexing and joining family: index_select, masked_select, nonzero, gather,
 * scatter_, and the pieces of cat / stack.
 *
 * Index tensors are int64 and hold 1-based indices, as Lua users write them and as every
 * index-producing op returns them (nonzero here, argmax elsewhere). The core checks each index
 * against its dimension and names the bad one, 1-based, in the error; negative indices are
 * refused, as PyTorch refuses them in index_select / gather / scatter.
 *
 * As everywhere, `out` is allocated by the caller with the shape named below.
 */
#ifndef MG_INDEX_H
#define MG_INDEX_H

#include "grad.h"

/* Op codes of the index family for autograd (node->family MG_FAM_INDEX; rule mg_index_backward). */
typedef enum mg_index_op {
    MG_INDEX_SELECT,        /* index_select, inputs (t, idx): iarg[0] = dim */
    MG_INDEX_GATHER,        /* inputs (t, idx): iarg[0] = dim */
    MG_INDEX_MASKED_SELECT, /* inputs (t, mask) */
    MG_INDEX_CAT,           /* inputs: the pieces; iarg[0] = dim */
    MG_INDEX_STACK          /* inputs: the pieces; iarg[0] = dim */
} mg_index_op;

/* out = in with dim `dim` (0-based) reduced to the entries idx names: out has in's shape except
 * size[dim] == idx->numel. idx: int64, 0-d or 1-D, any strides. in and out share a dtype. */
mg_status mg_index_select(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in, int dim,
                          const mg_tensor *idx);

/* The number of nonzero (true) elements of t, any dtype, into *count. MG_EINTR when interrupted
 * (mg_interrupt, the time limit: looked at every MG_INTERRUPT_CHUNK elements). */
mg_status mg_count_nonzero(mg_ctx *ctx, const mg_tensor *t, int64_t *count);

/* out (1-D, mg_count_nonzero(mask) elements, in's dtype) = the elements of in where mask is true,
 * in row-major order. mask is bool and has in's shape (the caller expands both to their
 * broadcast shape). */
mg_status mg_masked_select(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in, const mg_tensor *mask);

/* out (int64, {mg_count_nonzero(in), in->ndim}) = the 1-based coordinates of the nonzero elements
 * of in, in row-major order. */
mg_status mg_nonzero(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in);

/* cat: copies `in` into out narrowed to [start, start + in->size[dim]) along dim (0-based), with
 * dtype conversion. in has out's ndim and out's sizes outside dim (the caller checked). */
mg_status mg_cat_piece(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in, int dim, int64_t start);
/* stack: copies `in` into out selected at `index` (0-based) along dim; in has out's shape without
 * dim. */
mg_status mg_stack_piece(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in, int dim, int64_t index);

/* gather: out[p] = in[p with p[dim] replaced by idx[p] - 1] for every position p of idx.
 * out has idx's shape and in's dtype; idx has in's ndim and, outside dim, sizes <= in's. */
mg_status mg_gather(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in, int dim, const mg_tensor *idx);
/* scatter_: t[p with p[dim] replaced by idx[p] - 1] = src[p] for every position p of idx.
 * src has t's dtype and is 0-d or has idx's ndim with sizes >= idx's; idx as for gather. Every
 * index is checked before anything is written, so a bad index leaves t untouched. */
mg_status mg_scatter(mg_ctx *ctx, mg_tensor *t, int dim, const mg_tensor *idx, const mg_tensor *src);

#endif
