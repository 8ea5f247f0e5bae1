/* common/hash.h — 64-bit hashing of feature keys and a seeded RNG.
 *
 * A feature key is fn_key(table, field, id): a 64-bit hash of which
 * embedding table it lives in, which field it belongs to and the feature id
 * string.  Everything that must agree across processes (which server owns a
 * key, a row's initial values) is a pure function of the key and the seed. */
#ifndef FN_HASH_H
#define FN_HASH_H

#include <stddef.h>
#include <stdint.h>

/* A strong 64-bit finaliser (splitmix64's). */
static inline uint64_t fn_mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* Hash of a byte string with a seed. */
uint64_t fn_hash64(const void *data, size_t len, uint64_t seed);

/* The key of feature id string `id` (len bytes) of field index `field` in
 * embedding table `table`. */
static inline uint64_t fn_key(uint32_t table, uint32_t field, const char *id, size_t len)
{
    return fn_mix64(fn_hash64(id, len, ((uint64_t)table << 32) | field) ^ 0x5bd1e995u);
}

/* Which of n_servers owns key. */
static inline uint32_t fn_key_server(uint64_t key, uint32_t n_servers)
{
    return (uint32_t)(((fn_mix64(key ^ 0xC2B2AE3D27D4EB4Full) >> 32) * n_servers) >> 32);
}

/* Which of n stripes of a server's table holds key (ps/server.c): a hash
 * independent of fn_key_server's, so a server's keys spread evenly. */
static inline uint32_t fn_key_stripe(uint64_t key, uint32_t n)
{
    return (uint32_t)(((fn_mix64(key ^ 0x165667B19E3779F9ull) >> 32) * n) >> 32);
}

/* xoshiro256** seeded by splitmix64. */
typedef struct { uint64_t s[4]; } fn_rng;

void fn_rng_seed(fn_rng *r, uint64_t seed);
uint64_t fn_rng_next(fn_rng *r);
/* uniform in [0, 1) */
double fn_rng_uniform(fn_rng *r);
/* standard normal */
double fn_rng_normal(fn_rng *r);
/* uniform integer in [0, n) */
uint64_t fn_rng_below(fn_rng *r, uint64_t n);

#endif
