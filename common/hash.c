/* common/hash.c — see hash.h. */
#include "hash.h"

#include <math.h>
#include <string.h>

uint64_t fn_hash64(const void *data, size_t len, uint64_t seed)
{
    /* 8 bytes at a time through the mixer; the tail zero-padded with the length folded in. */
    const unsigned char *p = data;
    uint64_t h = fn_mix64(seed ^ (len * 0x9E3779B97F4A7C15ull));
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h = fn_mix64(h ^ v);
        p += 8;
        len -= 8;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) v |= (uint64_t)p[i] << (8 * i);
    return fn_mix64(h ^ v ^ ((uint64_t)len << 59));
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void fn_rng_seed(fn_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) {
        seed += 0x9E3779B97F4A7C15ull;
        r->s[i] = fn_mix64(seed);
    }
}

uint64_t fn_rng_next(fn_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl(s[3], 45);
    return result;
}

double fn_rng_uniform(fn_rng *r) { return (double)(fn_rng_next(r) >> 11) * 0x1.0p-53; }

double fn_rng_normal(fn_rng *r)
{
    double u1 = fn_rng_uniform(r), u2 = fn_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

uint64_t fn_rng_below(fn_rng *r, uint64_t n) { return n ? fn_rng_next(r) % n : 0; }
