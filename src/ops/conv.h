/*
 * conv.h: the layers of chapters 7-8 (mg.F): convolution and pooling (src/ops/conv.c), batch norm,
 * layer norm and embedding (src/ops/norm.c). One autograd family, MG_FAM_CONV, whose rule
 * (mg_conv_backward, conv.c) dispatches on node->op (an mg_conv_op); the norm ops' rule is
 * mg_norm_backward (norm.c).
 *
 * Contract as in ops.h: results are allocated by the caller, contiguous, with the shapes named
 * below. Inputs may have any strides; all float operands of one call share one dtype (float32 or
 * float64: the binding checks). Work is split over threads by output planes / channels / rows,
 * each computed the same way wherever the chunks are cut: results are bit-identical for any
 * thread count. Sums (bias, batch-norm statistics, pooled windows) accumulate in double in a fixed
 * order; the matrix products are the gemm engine's (src/ops/gemm.h), bit-identical at every ISA.
 */
#ifndef MG_CONV_H
#define MG_CONV_H

#include "../core/autograd.h"

/* t (N,C,L) / (C,L) with spatial 1, (N,C,H,W) / (C,H,W) with spatial 2, seen as a 4-d (N,C,H,W)
 * view in vb (L as W, H 1; an unbatched t gets N 1): how the kernels and the binding see every
 * operand. */
mg_tensor *mg_conv_view4(mg_view_buf *vb, const mg_tensor *t, int spatial);

#define MG_CONV_OPS(X)                          \
    X(CONV, "conv")                             \
    X(MAX_POOL, "max_pool2d")                   \
    X(AVG_POOL, "avg_pool2d")                   \
    X(ADAPTIVE_AVG, "adaptive_avg_pool2d")      \
    X(BATCH_NORM, "batch_norm")                 \
    X(LAYER_NORM, "layer_norm")                 \
    X(EMBEDDING, "embedding")                   \
    X(MAX_POOL_RELU, "max_pool2d_relu")
#define MG_ENUM_CONV(e, name) MG_CONV_##e,
typedef enum mg_conv_op { MG_CONV_OPS(MG_ENUM_CONV) MG_NCONV } mg_conv_op;
#undef MG_ENUM_CONV
const char *mg_conv_name(mg_conv_op op);

/* The geometry of a 2-d window op (a conv1d is a conv2d with H = kh = 1). avg_pool2d's divisor:
 * `divisor` when not 0 (divisor_override), else the window's size inside the padded input
 * (count_include_pad) or, with exclude_pad, inside the input. */
typedef struct mg_conv2d_geom {
    int64_t kh, kw, sh, sw, ph, pw, dh, dw, groups;
    int64_t divisor, exclude_pad;
} mg_conv2d_geom;

/* Packs g into the node's iarg[0..3] and back (each field < 2^31); a pool's iarg[3] holds
 * 2 divisor + exclude_pad instead of groups (1): mg_pool_pack / mg_pool_unpack. */
void mg_conv_geom_pack(int64_t *iarg, const mg_conv2d_geom *g);
void mg_conv_geom_unpack(const int64_t *iarg, mg_conv2d_geom *g);
void mg_pool_pack(int64_t *iarg, const mg_conv2d_geom *g);
void mg_pool_unpack(const int64_t *iarg, mg_conv2d_geom *g);

/* out (N,O,OH,OW) = conv2d of x (N,C,H,W) with weight (O, C/groups, kh, kw) and bias (O) or NULL,
 * OH = (H + 2 ph - dh (kh - 1) - 1) / sh + 1 (likewise OW). im2col into scratch, then one product
 * per group through the gemm engine. g's kh, kw are the weight's. */
mg_status mg_conv2d(mg_ctx *ctx, mg_tensor *out, const mg_tensor *x, const mg_tensor *weight,
                    const mg_tensor *bias, const mg_conv2d_geom *g);

/* out (N,C,OH,OW) = max over each window (padding never wins), indices (int64, out's shape) the
 * 0-based offset h W + w of the max in its input plane (the first one on ties, NaN wins, as
 * PyTorch). OH, OW are out's: a ceil_mode output's last windows may reach past the input. */
mg_status mg_max_pool2d(mg_ctx *ctx, mg_tensor *out, mg_tensor *indices, const mg_tensor *x,
                        const mg_conv2d_geom *g);
/* out = max_pool2d(relu(x)) bit for bit (relu as unary.c's), from one pass over x: relu applied
 * to the pooled output. indices as mg_max_pool2d's where out > 0, -1 elsewhere (their gradient
 * through relu is 0), so the max pool's backward gives the unfused pair's gradient. */
mg_status mg_max_pool2d_relu(mg_ctx *ctx, mg_tensor *out, mg_tensor *indices, const mg_tensor *x,
                             const mg_conv2d_geom *g);
/* true when mg_max_pool2d_relu takes, as `indices`, a byte a window instead of their int64
 * indices (any tensor of at least N C OH OW bytes, read as bytes: 0 to 3 for the window's winner,
 * 4 where no gradient goes): the 2x2 window at stride 2, no padding, over contiguous rows of even
 * width (float32 / float64), whose backward needs no more. */
bool mg_max_pool2d_relu_slots(const mg_tensor *x, int64_t OH, int64_t OW, const mg_conv2d_geom *g);
/* out = mean of each window: the sum over the window's part inside the input, divided by g's
 * divisor (see mg_conv2d_geom; PyTorch's default counts the padded zeros but not a ceil_mode
 * window's part past the padding). */
mg_status mg_avg_pool2d(mg_ctx *ctx, mg_tensor *out, const mg_tensor *x, const mg_conv2d_geom *g);
/* out (N,C,OH,OW): window i covers floor(i H / OH) .. ceil((i + 1) H / OH) - 1, as PyTorch. */
mg_status mg_adaptive_avg_pool2d(mg_ctx *ctx, mg_tensor *out, const mg_tensor *x);

/* batch_norm over x (N,C,S) (S = the spatial size, 1 for (N,C) input; the binding gives the
 * view). training: statistics of the batch, saved in mean / invstd (float64, (C)), and the running
 * ones (may be NULL) updated in place: r = (1 - momentum) r + momentum stat, with the unbiased
 * variance; otherwise the running statistics are used (and saved). weight, bias (C) may be NULL. */
mg_status mg_batch_norm(mg_ctx *ctx, mg_tensor *out, mg_tensor *mean, mg_tensor *invstd, const mg_tensor *x,
                        mg_tensor *running_mean, mg_tensor *running_var, const mg_tensor *weight,
                        const mg_tensor *bias, int training, double momentum, double eps);
/* layer_norm over the last d elements of x, seen as (R, d): mean / invstd (float64, (R)) saved;
 * weight, bias (d elements) may be NULL. */
mg_status mg_layer_norm(mg_ctx *ctx, mg_tensor *out, mg_tensor *mean, mg_tensor *invstd, const mg_tensor *x,
                        int64_t d, const mg_tensor *weight, const mg_tensor *bias, double eps);
/* out (n, D) = rows idx[i] - 1 of weight (V, D); idx int64, n elements, checked in 1..V (MG_EINDEX
 * on operand 1, idx, naming the first bad one). */
mg_status mg_embedding(mg_ctx *ctx, mg_tensor *out, const mg_tensor *idx, const mg_tensor *weight);

/* The family's rule (conv.c) and the norm ops' part of it (norm.c). */
mg_status mg_norm_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin);

/* *out = t when contiguous, else a contiguous copy in sc (sc->s.data NULL when none was made;
 * otherwise the caller frees sc on every path). */
mg_status mg_conv_contiguous(mg_ctx *ctx, const mg_tensor *t, mg_scratch *sc, const mg_tensor **out);

#endif
