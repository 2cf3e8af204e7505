/*
 * scalar.h: element-level rules that several kernel families share, written once so that every
 * family gives the same answer for the same element (PyTorch's answers, not C's defaults).
 */
#ifndef MG_SCALAR_H
#define MG_SCALAR_H

#include <math.h>
#include <stdint.h>

/* libm for kernels written once for float and double: MG_MATH(exp, x) is expf(x) for a float x and
 * exp(x) for a double (what <tgmath.h> does, without its macros for every libm name and complex.h's
 * I leaking into every file after it in the amalgamation). */
#define MG_MATH(fn, x) _Generic((x), float: fn##f, double: fn)(x)
#define MG_MATH2(fn, x, y) _Generic((x), float: fn##f, double: fn)(x, y)

/* int64 arithmetic wraps around as in PyTorch: done in unsigned math, since signed overflow is
 * undefined in C. MG_WRAP(+, a, b) is a + b modulo 2^64. */
#define MG_WRAP(op, a, b) ((int64_t)((uint64_t)(a) op (uint64_t)(b)))

/* NaN-propagating maximum / minimum, as torch.maximum / torch.minimum: a NaN in a wins (a != a),
 * and a NaN in b wins because a > b fails. */
#define MG_MAX_NAN(a, b) (((a) > (b) || (a) != (a)) ? (a) : (b))
#define MG_MIN_NAN(a, b) (((a) < (b) || (a) != (a)) ? (a) : (b))

/* relu as torch.relu: 0 below 0, x itself otherwise (relu(-0.0) is -0.0, relu(NaN) NaN). unary.c's
 * relu and conv.c's fused relu + max pool both use it, so that the fused op keeps the pair's bits. */
#define MG_RELU(x) ((x) < 0 ? 0 : (x))

/* -1, 0 or 1 as an int; NaN gives 0, as torch.sign (and as the derivative of abs at 0). */
#define MG_SIGN_OF(x) (((x) > 0) - ((x) < 0))

#endif
