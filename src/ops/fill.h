/*
 * fill.h: kernels that fill a tensor from a formula (eye, arange, linspace) or from the ctx's
 * generator (uniform, normal, randint, randperm).
 *
 * Contract: `out` is allocated by the caller (any strides: a view is written through). Random fills
 * draw numbers in the row-major logical order of out, so a seed gives the same values for the same
 * shape on every platform, whatever the strides.
 */
#ifndef MG_FILL_H
#define MG_FILL_H

#include "../core/core.h"

/* out (2-D, any dtype) <- 1 on the diagonal, 0 elsewhere. */
mg_status mg_eye(mg_ctx *ctx, mg_tensor *out);
/* out (1-D) <- start + step * i, i = 0..n-1. Floating out: computed in double, then rounded (as
 * PyTorch's CPU kernel). int64 out: use mg_arange_int, exact with wrap-around. */
mg_status mg_arange(mg_ctx *ctx, mg_tensor *out, double start, double step);
mg_status mg_arange_int(mg_ctx *ctx, mg_tensor *out, int64_t start, int64_t step);
/* out (1-D, n elements, not bool) <- n evenly spaced values from start to end, as torch.linspace. */
mg_status mg_linspace(mg_ctx *ctx, mg_tensor *out, double start, double end);

/* Floating out <- uniform on [a, b) (a <= b, b - a finite: the caller checks). */
mg_status mg_uniform(mg_ctx *ctx, mg_tensor *out, double a, double b);
/* Floating out <- normal(mean, std) (std >= 0: the caller checks). */
mg_status mg_normal(mg_ctx *ctx, mg_tensor *out, double mean, double std);
/* out (any dtype) <- integers uniform on [low, high), low < high. */
mg_status mg_randint(mg_ctx *ctx, mg_tensor *out, int64_t low, int64_t high);
/* out (1-D of n, not bool) <- a random permutation of 1..n (1-based, as every index in the API). */
mg_status mg_randperm(mg_ctx *ctx, mg_tensor *out);

#endif
