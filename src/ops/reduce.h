/*
 * reduce.h: reductions (sum prod mean max min argmax argmin var std norm any all), cumsum and
 * cumprod.
 *
 * A reduction folds the dims named in a bit mask (bit i: 0-based dim i) and keeps the others, in
 * order; the caller allocates `out` contiguous with the kept dims' sizes (with or without the
 * reduced dims as size 1: the element order is the same), in the dtype mg_reduce_dtype gives.
 */
#ifndef MG_REDUCE_H
#define MG_REDUCE_H

#include "../core/core.h"

/* The one list of reductions. Everything that must stay in step is made from it: the enum, the
 * names, the kernel table and the result dtypes (src/ops/reduce.c), and the binding's t:op(...) /
 * mg.op(t, ...) with its arguments and whether it records a node (src/bind/reduce.c). Adding a
 * reduction is a line here, its fold (DEFINE_ lines) and, when not a plain fold, its start in
 * acc_init and result in emit, its case in mg_reduce_backward, a spec and a docs line.
 *
 *   X(OP, name, fold, kernels, result, grad, args)
 *   fold     the fold kernels it runs: fold_f32, fold_f64, ... (mean folds as sum, argmax as max)
 *   kernels  the dtypes with a fold: F (float32, float64) or FIB (every dtype); others are refused
 *   result   the result's dtype: SAME, WIDEN (int64 for int64 and bool), INDEX (int64), BOOL
 *   grad     DIFF (records a node; backward reads the output or, for max / min along a dim, the
 *            indices) or NONE
 *   args     what the binding reads after t: DIMS (a dim or a list of dims, keepdim), DIM (one dim,
 *            keepdim), BEST (max / min: values and indices along a dim), MOMENT (var / std: dims,
 *            keepdim, {unbiased}), NORM (p, dims, keepdim) */
#define MG_REDUCE_OPS(X)                                        \
    X(SUM,    sum,    sum,   FIB, WIDEN, DIFF, DIMS)            \
    X(PROD,   prod,   prod,  FIB, WIDEN, DIFF, DIMS)            \
    X(MEAN,   mean,   sum,   F,   SAME,  DIFF, DIMS)            \
    X(MAX,    max,    max,   FIB, SAME,  DIFF, BEST)            \
    X(MIN,    min,    min,   FIB, SAME,  DIFF, BEST)            \
    X(ARGMAX, argmax, max,   FIB, INDEX, NONE, DIM)             \
    X(ARGMIN, argmin, min,   FIB, INDEX, NONE, DIM)             \
    X(VAR,    var,    var,   F,   SAME,  DIFF, MOMENT)          \
    X(STD,    std,    var,   F,   SAME,  DIFF, MOMENT)          \
    X(NORM,   norm,   norm2, F,   SAME,  DIFF, NORM)            \
    X(ANY,    any,    any,   FIB, BOOL,  NONE, DIMS)            \
    X(ALL,    all,    all,   FIB, BOOL,  NONE, DIMS)
#define MG_ENUM_REDUCE(OP, ...) MG_RED_##OP,
typedef enum mg_reduce_op { MG_REDUCE_OPS(MG_ENUM_REDUCE) MG_NREDUCE } mg_reduce_op;
#undef MG_ENUM_REDUCE
const char *mg_reduce_name(mg_reduce_op op);
/* The op records a node (DIFF in the list). */
bool mg_reduce_is_differentiable(mg_reduce_op op);
/* The op codes cumsum and cumprod nodes carry in the reduce family (scans, not reductions);
 * iarg[0]: the dim. */
#define MG_RED_CUMSUM MG_NREDUCE
#define MG_RED_CUMPROD (MG_NREDUCE + 1)

/* Parameters of the ops that take some (NULL is fine for the others). */
typedef struct mg_reduce_args {
    double p;           /* norm: 2 (default), 1, INFINITY, -INFINITY, 0 (count of nonzeros), any other */
    int64_t correction; /* var / std: the divisor is n - correction (1: unbiased, 0: biased) */
} mg_reduce_args;

/* The dtype op gives for an input of dtype `in` (sum / prod: int64 for int64 and bool; argmax /
 * argmin: int64; any / all: bool; the rest keep the dtype). MG_EDTYPE on operand 1 when the op
 * does not take it (mean var std norm: float32 and float64 only). */
mg_status mg_reduce_dtype(mg_ctx *ctx, mg_reduce_op op, mg_dtype in, mg_dtype *out);

/* out <- op over the dims in `dims` of in (bits at or past in->ndim are ignored; a 0-d input is
 * one element). `indices` (int64, out's shape, or NULL) receives the 1-based position of the
 * chosen element along the reduced dims for max / min. MG_EVALUE when max / min / argmax / argmin
 * would fold an empty set. Order of evaluation is fixed (row-major over the reduced dims), so
 * results are bit-identical from run to run. */
mg_status mg_reduce(mg_ctx *ctx, mg_reduce_op op, mg_tensor *out, mg_tensor *indices,
                    const mg_tensor *in, uint32_t dims, const mg_reduce_args *args);

/* out[c] <- the sum over r of in[r cols + c]: a contiguous (rows, cols) float32 or float64 matrix
 * summed over its rows into a contiguous out of cols, in double from 0, row by row, rounded once:
 * mg_reduce's bits for a sum over dim 1, without its set-up (a Linear bias's gradient). isa: the
 * ctx's level. */
void mg_sum_columns(int isa, mg_dtype dt, void *out, const void *in, int64_t rows, int64_t cols);

/* out <- running sum of in along dim (0-based); out contiguous, in's shape, dtype as for sum. */
mg_status mg_cumsum(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in, int dim);
/* out <- running product of in along dim (0-based); out contiguous, in's shape, dtype as for
 * prod (float32 accumulates in double, as PyTorch's CPU kernel). */
mg_status mg_cumprod(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in, int dim);

#endif
