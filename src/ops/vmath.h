/*
 * vmath.h: exp, log, tanh and sigmoid of a float, written so that a loop calling them vectorizes.
 *
 * Why not libm: glibc's expf / logf / tanhf are scalar calls, so `t:exp()` on 10^6 float32 ran at
 * 2.5 ns an element, 10-20x PyTorch (whose SLEEF kernels are vectorized). GCC vectorizes a loop over
 * these functions only when they are plain arithmetic, with no calls and no branches (selects are
 * fine). And they must give the same bits at every instruction-set level (MOONGRAD_ISA): they use
 * only +, -, *, / and comparisons, each rounded once (the Makefile compiles every file with
 * -ffp-contract=off: no fused multiply-add behind the source's back), so the baseline, AVX2 and
 * AVX-512 loops compute exactly the same thing.
 *
 * Accuracy (float32, against exp / log / tanh in double rounded to float, over every 7th float
 * bit pattern, 6.1e8 inputs): exp, log and tanh within 1 ulp, sigmoid within 2 ulp.
 * PyTorch's own vectorized kernels promise 1 ulp (SLEEF's _u10); glibc's scalar ones are within 1.
 * Special values as C's: exp(-inf) = 0, exp(inf) = inf, exp of x > 88.72 is inf, log(0) = -inf,
 * log(x < 0) = NaN, log(inf) = inf, NaN stays NaN, subnormal inputs and results are handled.
 *
 * The methods are the classic ones (Cody & Waite's argument reduction, the polynomials of Moshier's
 * Cephes library), re-derived here for branch-free code.
 */
#ifndef MG_VMATH_H
#define MG_VMATH_H

#include <stdint.h>
#include <string.h>

static inline uint32_t mg_f2u(float x) { uint32_t u; memcpy(&u, &x, sizeof u); return u; }
static inline float mg_u2f(uint32_t u) { float x; memcpy(&x, &u, sizeof x); return x; }
/* cond ? a : b by bit masks. A plain ?: lets GCC move the work of the side it does not take into a
 * branch, and a branch around floating-point arithmetic (which may trap) stops the vectorizer. */
static inline float mg_selectf(int cond, float a, float b) {
    const uint32_t m = 0u - (uint32_t)(cond != 0);
    return mg_u2f((mg_f2u(a) & m) | (mg_f2u(b) & ~m));
}

/* e^x. x = n ln2 + r with |r| <= ln2/2; e^r by a degree-7 polynomial; 2^n applied as two factors
 * 2^(n/2) 2^(n - n/2), each a normal float, so that results in the subnormal range and overflow
 * to inf come out of the multiplications themselves. */
static inline float mg_expf(float x) {
    const float hi = 89.0f, lo = -104.0f;            /* beyond: inf and 0 (n stays in [-150, 129]) */
    float xc = mg_selectf(x > hi, hi, x);            /* NaN stays NaN, and so does every step below */
    xc = mg_selectf(xc < lo, lo, xc);
    const float shifter = 12582912.0f;               /* 1.5 * 2^23: adding it rounds to an integer */
    const float t = xc * 1.44269504088896341f + shifter;
    const float n = t - shifter;                     /* round(x / ln2), to nearest even */
    /* r = x - n ln2 in two steps: ln2_hi has 9 significant bits, so n * ln2_hi is exact */
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    const float r2 = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float er = p * r2 + r + 1.0f;
    /* n as an integer, from t's bits (for a NaN x, some integer: no overflow below, and er is NaN) */
    const int32_t ni = (int32_t)(mg_f2u(t) - mg_f2u(shifter));
    const int32_t n1 = ni / 2, n2 = ni - n1;
    return er * mg_u2f((uint32_t)(n1 + 127) << 23) * mg_u2f((uint32_t)(n2 + 127) << 23);
}

/* ln x. x = 2^e m with m in [sqrt(1/2), sqrt(2)); ln(m) = f - f^2/2 + f^3 P(f) with f = m - 1;
 * e ln2 added in two parts (as in mg_expf). Subnormal x is first scaled by 2^23. */
static inline float mg_logf(float x) {
    const int sub = x < 1.17549435e-38f;             /* subnormal, zero or negative */
    const float xs = mg_selectf(sub, x * 8388608.0f, x);
    const uint32_t u = mg_f2u(xs);
    int32_t e = (int32_t)((u >> 23) & 0xff) - 127 - 23 * sub;
    float m = mg_u2f((u & 0x007fffffu) | 0x3f800000u); /* [1, 2) */
    const int big = m > 1.41421356f;
    m = mg_selectf(big, m * 0.5f, m);
    e = e + big;
    const float f = m - 1.0f, z = f * f;
    float p = 7.0376836292e-2f;
    p = p * f - 1.1514610310e-1f;
    p = p * f + 1.1676998740e-1f;
    p = p * f - 1.2420140846e-1f;
    p = p * f + 1.4249322787e-1f;
    p = p * f - 1.6668057665e-1f;
    p = p * f + 2.0000714765e-1f;
    p = p * f - 2.4999993993e-1f;
    p = p * f + 3.3333331174e-1f;
    const float fe = (float)e;
    float y = p * f * z;
    y = y + fe * -2.12194440e-4f;
    y = y - 0.5f * z;
    const float r = (f + y) + fe * 0.693359375f;
    /* special values: 0 -> -inf, < 0 -> NaN, inf -> inf, NaN -> NaN */
    const float special = mg_selectf(x == 0.0f, -__builtin_inff(), mg_selectf(x < 0.0f, __builtin_nanf(""), x));
    return mg_selectf((x > 0.0f) & (x < __builtin_inff()), r, special);
}

/* tanh x: for |x| < 0.625 an odd polynomial (1 - 2/(e^2x + 1) loses bits there); beyond,
 * sign(x) (1 - 2 / (e^2|x| + 1)), which is 1 once e^2|x| overflows. */
static inline float mg_tanhf(float x) {
    const float ax = mg_u2f(mg_f2u(x) & 0x7fffffffu);
    const float z = x * x;
    float p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    const float small = p * z * x + x;
    const float big = 1.0f - 2.0f / (mg_expf(ax + ax) + 1.0f);
    const float sbig = mg_selectf(x < 0.0f, -big, big);
    /* ax == 0: x itself, so that tanh(-0) is -0 */
    return mg_selectf(ax < 0.625f, mg_selectf(ax == 0.0f, x, small), sbig); /* NaN: sbig is NaN */
}

/* 1 / (1 + e^-x) without overflow: the exponential is only taken of -|x|. */
static inline float mg_sigmoidf(float x) {
    const float z = mg_expf(mg_u2f(mg_f2u(x) | 0x80000000u)); /* e^-|x| */
    const float s = mg_selectf(x < 0.0f, z, 1.0f) / (1.0f + z);
    return mg_selectf(x == x, s, x); /* a NaN x: x itself (z is a NaN with the sign bit set) */
}

/* MG_VMATH(exp, x): mg_expf for a float x, libm's exp for a double (whose calls stay scalar). */
#define MG_VMATH(fn, x) _Generic((x), float: mg_##fn##f, double: fn)(x)

#endif
