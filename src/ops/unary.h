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

/* The one list of unary ops. Everything that must stay in step is made from it: the enum, the
 * names, the dtype rules, the kernel and gradient tables (src/ops/unary.c), what backward reads,
 * and the binding's t:op(), mg.op(t) and t:op_() (src/bind/unary.c). Adding an op is a line here,
 * its kernel and its derivative in unary.c, a spec and a docs line.
 *
 *   X(OP, name, dtypes, kernels, reads)
 *   dtypes   what an int64 / bool input gives (mg_unary_dtype): FLOAT (the default float dtype, as
 *            exp(int) in PyTorch), KEEP (int64 kept, bool refused), ALL (every dtype kept), WIDEN
 *            (int64 kept, bool becomes int64, as square(bool)). Float inputs keep their dtype.
 *   kernels  the dtypes with a kernel: F (float32, float64), FI (and int64), FIB (and bool)
 *   reads    what the derivative reads: INPUT (x), OUTPUT (y: the binding saves it for backward),
 *            NONE (a zero gradient, recorded anyway as PyTorch does, so the graph goes on)
 * neg and pow are binary ops (-t is 0 - t), in binary.c.
 * Parametric rows (clamp, gelu, leaky_relu, elu, softplus) read their parameters from the extra
 * argument of their kernels (mg_clamp_bounds: lo, hi), which the binding stores in node->darg[0..1]
 * so that the GRAD expression sees the same values. */
#define MG_UNARY_OPS(X)                       \
    X(EXP,     exp,     FLOAT, F,   OUTPUT)   \
    X(LOG,     log,     FLOAT, F,   INPUT)    \
    X(SQRT,    sqrt,    FLOAT, F,   OUTPUT)   \
    X(RSQRT,   rsqrt,   FLOAT, F,   OUTPUT)   \
    X(SIN,     sin,     FLOAT, F,   INPUT)    \
    X(COS,     cos,     FLOAT, F,   INPUT)    \
    X(TANH,    tanh,    FLOAT, F,   OUTPUT)   \
    X(SIGMOID, sigmoid, FLOAT, F,   OUTPUT)   \
    X(LOG1P,   log1p,   FLOAT, F,   INPUT)    \
    X(EXPM1,   expm1,   FLOAT, F,   OUTPUT)   \
    X(ABS,     abs,     KEEP,  FI,  INPUT)    \
    X(RELU,    relu,    KEEP,  FI,  INPUT)    \
    X(FLOOR,   floor,   KEEP,  FI,  NONE)     \
    X(CEIL,    ceil,    KEEP,  FI,  NONE)     \
    X(ROUND,   round,   KEEP,  FI,  NONE)     \
    X(SIGN,    sign,    ALL,   FIB, NONE)     \
    X(SQUARE,  square,  WIDEN, FI,  INPUT)    \
    X(CLAMP,   clamp,   WIDEN, FI,  INPUT)    \
    X(SILU,    silu,    FLOAT, F,   INPUT)    \
    X(GELU,    gelu,    FLOAT, F,   INPUT)    \
    X(LEAKY_RELU, leaky_relu, FLOAT, F, INPUT) \
    X(ELU,     elu,     FLOAT, F,   INPUT)    \
    X(SOFTPLUS, softplus, FLOAT, F, INPUT)
#define MG_ENUM_UNARY(OP, ...) MG_UN_##OP,
typedef enum mg_unary_op { MG_UNARY_OPS(MG_ENUM_UNARY) MG_NUNARY } mg_unary_op;
#undef MG_ENUM_UNARY

const char *mg_unary_name(mg_unary_op op);
/* true when op's derivative reads the output: the binding saves it in the node (node->nsaved 1). */
bool mg_unary_reads_output(mg_unary_op op);
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
/* A parametric activation: out <- op(in; p0, p1) (the extra argument's lo and hi):
 *   gelu        p0: 0 the exact erf form, 1 the tanh approximation
 *   leaky_relu  p0: negative_slope
 *   elu         p0: alpha
 *   softplus    p0: beta, p1: threshold
 * The other ops ignore p0 and p1. */
mg_status mg_unary_param(mg_ctx *ctx, mg_unary_op op, mg_tensor *out, const mg_tensor *in, double p0,
                         double p1);

#endif
