/*
 * rng.h: the per-state random generator (no global state: one lives in each mg_ctx).
 *
 * Algorithm, fixed so that a seed gives the same numbers on every platform and build:
 *   - state: xoshiro256** (Blackman & Vigna, 2018), four 64-bit words;
 *   - seeding: the four words are splitmix64 outputs from the seed;
 *   - uniform float64 in [0,1): (next >> 11) * 2^-53; float32: (next >> 40) * 2^-24;
 *   - normal: Marsaglia's polar method, with a logarithm computed by mg_rng_log from IEEE
 *     arithmetic alone (no libm, whose last bits differ between platforms); both values of a pair
 *     are used;
 *   - integers in [0, n): Lemire's multiply-and-reject, unbiased.
 */
#ifndef MG_RNG_H
#define MG_RNG_H

#include <stdint.h>

typedef struct mg_rng { uint64_t s[4]; } mg_rng;

void mg_rng_seed(mg_rng *rng, uint64_t seed);
uint64_t mg_rng_next(mg_rng *rng);
double mg_rng_uniform(mg_rng *rng);           /* [0, 1), 53 bits */
float mg_rng_uniform_f32(mg_rng *rng);        /* [0, 1), 24 bits */
uint64_t mg_rng_below(mg_rng *rng, uint64_t n); /* [0, n), n > 0 */
/* Two independent standard normals. */
void mg_rng_normal_pair(mg_rng *rng, double *z0, double *z1);
/* Natural logarithm, x > 0, from + - * / only: reproducible everywhere. */
double mg_rng_log(double x);

#endif
