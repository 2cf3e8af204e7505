/* rng.c: xoshiro256** with splitmix64 seeding, and the distributions built on it (see rng.h). */
#include "rng.h"

#include <math.h> /* sqrt only: IEEE 754 requires it correctly rounded */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void mg_rng_seed(mg_rng *rng, uint64_t seed) {
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t mg_rng_next(mg_rng *rng) {
    uint64_t *s = rng->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double mg_rng_uniform(mg_rng *rng) { return (double)(mg_rng_next(rng) >> 11) * 0x1.0p-53; }
float mg_rng_uniform_f32(mg_rng *rng) { return (float)(mg_rng_next(rng) >> 40) * 0x1.0p-24f; }

/* Lemire, "Fast random integer generation in an interval" (2019): unbiased, one multiply. */
uint64_t mg_rng_below(mg_rng *rng, uint64_t n) {
    unsigned __int128 m = (unsigned __int128)mg_rng_next(rng) * n;
    uint64_t low = (uint64_t)m;
    if (low < n) {
        const uint64_t threshold = (0 - n) % n;
        while (low < threshold) {
            m = (unsigned __int128)mg_rng_next(rng) * n;
            low = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

/* ln x = e ln 2 + 2 atanh(z), z = (m-1)/(m+1), x = m 2^e with m in [sqrt(1/2), sqrt(2)):
 * |z| <= 0.1716, so the series to z^25 is below 1e-19 relative. Each step is one IEEE
 * operation (the file is compiled with -ffp-contract=off), hence bit-identical everywhere. */
double mg_rng_log(double x) {
    int e = 0;
    while (x >= 1.4142135623730951) { x *= 0.5; e++; }
    while (x < 0.7071067811865476) { x *= 2.0; e--; }
    const double z = (x - 1.0) / (x + 1.0), z2 = z * z;
    double sum = 0.0;
    for (int k = 25; k >= 1; k -= 2) sum = sum * z2 + 1.0 / k;
    return (double)e * 0.6931471805599453 + 2.0 * z * sum;
}

void mg_rng_normal_pair(mg_rng *rng, double *z0, double *z1) {
    double u, v, s;
    do {
        u = 2.0 * mg_rng_uniform(rng) - 1.0;
        v = 2.0 * mg_rng_uniform(rng) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    const double m = sqrt(-2.0 * mg_rng_log(s) / s);
    *z0 = u * m;
    *z1 = v * m;
}
