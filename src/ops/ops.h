/*
 * ops.h: the kernels of the elementwise families (copy / cast / fill, binary, unary). Other
 * families declare theirs in their own header (reduce.h, linalg.h, index.h, random.h, print.h).
 *
 * Contract of every kernel: `out` is allocated by the caller with the shape the matching shape
 * function gave and the dtype named below; inputs broadcast to out's shape; out may alias an input
 * exactly (in-place ops) but not partially.
 */
#ifndef MG_OPS_H
#define MG_OPS_H

#include "../core/core.h"

/* out <- in, converting dtype; in broadcasts to out (fill_ is a copy from a 0-d scalar). */
mg_status mg_copy(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in);
mg_status mg_fill(mg_ctx *ctx, mg_tensor *out, double value, int64_t ivalue);

/* The list of binary ops: enum, names and kernel tables are all made from it. */
#define MG_BINARY_OPS(X) \
    X(ADD, "add")        \
    X(SUB, "sub")        \
    X(MUL, "mul")        \
    X(DIV, "div")        \
    X(POW, "pow")        \
    X(MAXIMUM, "maximum")\
    X(MINIMUM, "minimum")\
    X(EQ, "eq")          \
    X(NE, "ne")          \
    X(LT, "lt")          \
    X(LE, "le")          \
    X(GT, "gt")          \
    X(GE, "ge")
#define MG_ENUM_BINARY(e, name) MG_BIN_##e,
typedef enum mg_binary_op { MG_BINARY_OPS(MG_ENUM_BINARY) MG_NBINARY } mg_binary_op;
#undef MG_ENUM_BINARY
const char *mg_binary_name(mg_binary_op op);
bool mg_binary_is_comparison(mg_binary_op op);

/* The dtype the op computes in for inputs promoted to `promoted` (int / int division is float). */
mg_dtype mg_binary_compute_dtype(mg_ctx *ctx, mg_binary_op op, mg_dtype promoted);
/* a and b hold the compute dtype; out holds it too, or bool for comparisons. */
mg_status mg_binary(mg_ctx *ctx, mg_binary_op op, mg_tensor *out, const mg_tensor *a,
                    const mg_tensor *b);

/* out <- cond ? a : b; cond is bool, a, b and out share one dtype; all broadcast to out. */
mg_status mg_where(mg_ctx *ctx, mg_tensor *out, const mg_tensor *cond, const mg_tensor *a,
                   const mg_tensor *b);

#endif
