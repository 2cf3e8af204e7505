/*
 * ops.h: the kernels of the elementwise families (copy / fill, the binary ops, where), and the map
 * of src/ops. Each family is one .c file holding its forward kernels and, below them, its backward
 * rule, with a header declaring them:
 *
 *   ops.h         copy, fill (a number), binary ops (MG_BINARY_OPS), where / masked_fill
 *                 (copy.c, binary.c)
 *   unary.h       unary ops (MG_UNARY_OPS)                                           unary.c
 *   reduce.h      reductions (MG_REDUCE_OPS) and cumsum                             reduce.c
 *   index.h       index_select gather scatter_ masked_select nonzero, cat / stack   index.c
 *   shape.h       op codes of views and copies (geometry: src/core/view.c)          shape.c
 *   linalg.h      matmul, outer                                                     linalg.c
 *   functional.h  the fused kernels of mg.F: losses, softmax, linear, dropout       functional.c
 *   fill.h        eye arange linspace, and the random fills                         fill.c
 *   optim.h       fused optimizer updates (no autograd)                             optim.c
 *   grad.h        the families, mg_backward (rule dispatch), mg_sum_to              grad.c
 *   scalar.h      element rules kernels share: wrapping int64, NaN max / min, MG_MATH
 *
 * Calls between families, by intent (anything else is a mistake):
 *   - a forward kernel calls the copy / fill kernels (to convert or broadcast an input) and the
 *     products of linalg.h (functional's linear); never a family's rule;
 *   - a backward rule calls forward kernels of any family (a derivative is made of ops: pow's
 *     needs log, reduce's needs binary and unary ones) and mg_sum_to / mg_scratch_as (grad.h);
 *   - src/ops calls nothing in src/bind and includes no Lua; src/core calls nothing in src/ops.
 *
 * Contract of every kernel: `out` is allocated by the caller with the shape the matching shape
 * function gave and the dtype named below; inputs broadcast to out's shape; out may alias an input
 * exactly (in-place ops) but not partially.
 */
#ifndef MG_OPS_H
#define MG_OPS_H

#include "../core/core.h"

/* A row of a kernel table [dtype: float32, float64, int64, bool] from a list's kernels column:
 * the functions named op_f32_isa, op_f64_isa, op_i64_isa, op_bool_isa (isa: base, avx2, avx512,
 * see MG_ISA_ROW in src/core/cpu.h); NULL for a dtype without a kernel. */
#define MG_KERNELS_F(op, isa) {op##_f32_##isa, op##_f64_##isa, NULL, NULL}
#define MG_KERNELS_FI(op, isa) {op##_f32_##isa, op##_f64_##isa, op##_i64_##isa, NULL}
#define MG_KERNELS_FIB(op, isa) {op##_f32_##isa, op##_f64_##isa, op##_i64_##isa, op##_bool_##isa}

/* out <- in, converting dtype; in broadcasts to out (fill_ is a copy from a 0-d scalar). */
mg_status mg_copy(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in);
mg_status mg_fill(mg_ctx *ctx, mg_tensor *out, double value, int64_t ivalue);

/* The one list of binary ops. Everything that must stay in step is made from it: the enum, the
 * names, the kernel table (src/ops/binary.c) and the binding's t:op(u), mg.op(t, u) and, for
 * operators, t OP u and t:op_(u) (src/bind/binary.c). Adding an op is a line here, its kernel
 * lines and its derivative (a case of mg_binary_backward) in binary.c, a spec and a docs line.
 *
 *   X(OP, name, kernels, kind, saves)
 *   kernels  the dtypes with a kernel: F (float32, float64), FI (and int64), FIB (and bool);
 *            a missing one is refused (the binding promotes first)
 *   kind     OPERATOR (a Lua operator __name and an in-place t:name_(u); differentiable),
 *            FUNCTION (differentiable), COMPARISON (a bool result, never differentiated)
 *   saves    what backward reads besides the inputs: OUTPUT (the binding saves it) or NOTHING */
#define MG_BINARY_OPS(X)                                  \
    X(ADD,     add,     FIB, OPERATOR,   NOTHING)         \
    X(SUB,     sub,     FI,  OPERATOR,   NOTHING)         \
    X(MUL,     mul,     FIB, OPERATOR,   NOTHING)         \
    X(DIV,     div,     F,   OPERATOR,   NOTHING)         \
    X(POW,     pow,     FI,  OPERATOR,   OUTPUT)          \
    X(MAXIMUM, maximum, FIB, FUNCTION,   NOTHING)         \
    X(MINIMUM, minimum, FIB, FUNCTION,   NOTHING)         \
    X(EQ,      eq,      FIB, COMPARISON, NOTHING)         \
    X(NE,      ne,      FIB, COMPARISON, NOTHING)         \
    X(LT,      lt,      FIB, COMPARISON, NOTHING)         \
    X(LE,      le,      FIB, COMPARISON, NOTHING)         \
    X(GT,      gt,      FIB, COMPARISON, NOTHING)         \
    X(GE,      ge,      FIB, COMPARISON, NOTHING)
#define MG_ENUM_BINARY(OP, ...) MG_BIN_##OP,
typedef enum mg_binary_op { MG_BINARY_OPS(MG_ENUM_BINARY) MG_NBINARY } mg_binary_op;
#undef MG_ENUM_BINARY
const char *mg_binary_name(mg_binary_op op);
/* A bool result, never differentiated (COMPARISON in the list). */
bool mg_binary_is_comparison(mg_binary_op op);
/* Backward reads the output (OUTPUT in the list): the binding saves it in the node. */
bool mg_binary_reads_output(mg_binary_op op);

/* The dtype the op computes in for inputs promoted to `promoted` (int / int division is float). */
mg_dtype mg_binary_compute_dtype(mg_ctx *ctx, mg_binary_op op, mg_dtype promoted);
/* a and b hold the compute dtype; out holds it too, or bool for comparisons. */
mg_status mg_binary(mg_ctx *ctx, mg_binary_op op, mg_tensor *out, const mg_tensor *a,
                    const mg_tensor *b);

/* Op codes of the where family for autograd (node->family MG_FAM_WHERE; rule mg_where_backward). */
typedef enum mg_where_op {
    MG_WHERE,      /* where(cond, a, b), inputs (cond, a, b) */
    MG_MASKED_FILL /* t:masked_fill(mask, value), inputs (t, mask, value) */
} mg_where_op;
/* out <- cond ? a : b; cond is bool, a, b and out share one dtype; all broadcast to out. */
mg_status mg_where(mg_ctx *ctx, mg_tensor *out, const mg_tensor *cond, const mg_tensor *a,
                   const mg_tensor *b);

#endif
