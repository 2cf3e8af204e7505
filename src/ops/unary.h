/*
 * unary.h: elementwise ops of one tensor (exp, log, relu, clamp, ...), see unary.c.
 *
 * Contract as in ops.h: `out` is allocated by the caller with the input's shape and the dtype
 * mg_unary_dtype gives (clamp: the binding promotes with its bounds); out may alias the input
 * exactly (in-place ops) but not partially.
 */
#ifndef MG_UNARY_H
#define MG_UNARY_H

#include "../core/core.h"

/* Which dtypes an op keeps. FLOAT: int64 and bool become the default float dtype (exp(int) is
 * float32, as PyTorch). KEEP: float and int64 kept, bool refused. ALL: every dtype kept.
 * WIDEN: float and int64 kept, bool becomes int64 (square(bool) is int64, as PyTorch). */
enum { MG_UNARY_FLOAT, MG_UNARY_KEEP, MG_UNARY_ALL, MG_UNARY_WIDEN };

/* The list of unary ops: enum, names, dtype rules and kernel tables are all made from it.
 * neg lives in binary.c (-t is 0 - t) and pow there too. */
#define MG_UNARY_OPS(X)                 \
    X(EXP, "exp", MG_UNARY_FLOAT)       \
    X(LOG, "log", MG_UNARY_FLOAT)       \
    X(SQRT, "sqrt", MG_UNARY_FLOAT)     \
    X(RSQRT, "rsqrt", MG_UNARY_FLOAT)   \
    X(SIN, "sin", MG_UNARY_FLOAT)       \
    X(COS, "cos", MG_UNARY_FLOAT)       \
    X(TANH, "tanh", MG_UNARY_FLOAT)     \
    X(SIGMOID, "sigmoid", MG_UNARY_FLOAT) \
    X(LOG1P, "log1p", MG_UNARY_FLOAT)   \
    X(EXPM1, "expm1", MG_UNARY_FLOAT)   \
    X(ABS, "abs", MG_UNARY_KEEP)        \
    X(RELU, "relu", MG_UNARY_KEEP)      \
    X(FLOOR, "floor", MG_UNARY_KEEP)    \
    X(CEIL, "ceil", MG_UNARY_KEEP)      \
    X(ROUND, "round", MG_UNARY_KEEP)    \
    X(SIGN, "sign", MG_UNARY_ALL)       \
    X(SQUARE, "square", MG_UNARY_WIDEN) \
    X(CLAMP, "clamp", MG_UNARY_WIDEN)
#define MG_ENUM_UNARY(e, name, kind) MG_UN_##e,
typedef enum mg_unary_op { MG_UNARY_OPS(MG_ENUM_UNARY) MG_NUNARY } mg_unary_op;
#undef MG_ENUM_UNARY

const char *mg_unary_name(mg_unary_op op);
/* The result dtype of op on an input of dtype `in`; MG_EDTYPE (operand 1) when it refuses it. */
mg_status mg_unary_dtype(mg_ctx *ctx, mg_unary_op op, mg_dtype in, mg_dtype *out);
/* out <- op(in); in is converted to out's dtype first when they differ. (clamp: mg_clamp) */
mg_status mg_unary(mg_ctx *ctx, mg_unary_op op, mg_tensor *out, const mg_tensor *in);

/* Bounds of clamp; an open side is -INFINITY / +INFINITY (INT64_MIN / INT64_MAX for int64). */
typedef struct mg_clamp_bounds {
    double lo, hi;
    int64_t ilo, ihi;
} mg_clamp_bounds;
/* out <- min(max(in, lo), hi), NaN in `in` propagating, as torch.clamp. */
mg_status mg_clamp(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in, const mg_clamp_bounds *b);

#endif
