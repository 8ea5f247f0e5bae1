/* tests/unit/test_keymap.c — common/keymap.c against a brute-force reference.
 *
 * The reference is a plain array indexed by key id (ref_pos[id] = the
 * position recorded for keys[id], or KEYMAP_NONE), and a row store
 * (store[pos] = key) with a free list, the way ps/table.c uses the map.
 * 200k random operations in three phases (grow, shrink, churn) insert,
 * remove, find and move keys, checking every answer and, every 20k
 * operations, every key and the map's structural invariant.
 *
 * The keys are built to hurt: keys that differ only in their high bits,
 * and — by inverting fn_mix64 — keys whose hashes share their top 16 bits
 * (one long probe run), and groups of keys with the same 32-bit tag (every
 * probe must fall back to key_of()). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fn_error.h"
#include "hash.h"
#include "keymap.h"

#include "check.h"

#define K 65536u      /* distinct keys */
#define STORE (2 * K) /* row store positions */
#define OPS 200000u

static uint64_t keys[K];
static uint32_t ref_pos[K];
static uint64_t store[STORE];
static uint32_t store_id[STORE];
static uint32_t free_pos[STORE];
static uint32_t n_free;
static size_t ref_count;
static size_t key_of_calls;

static uint64_t store_key_of(const void *ud, uint32_t pos)
{
    (void)ud;
    key_of_calls++;
    if (pos >= STORE) {
        failures++;
        printf("FAIL key_of(%" PRIu32 ") out of range\n", pos);
        return 0;
    }
    return store[pos];
}

/* x where y = x ^ (x >> s) */
static uint64_t unxorshift(uint64_t y, unsigned s)
{
    uint64_t x = y;
    for (unsigned k = s; k < 64; k += s) x ^= y >> k;
    return x;
}

static uint64_t mul_inverse(uint64_t c)
{
    uint64_t inv = c; /* right to 3 bits for odd c; each step doubles */
    for (int i = 0; i < 6; i++) inv *= 2 - c * inv;
    return inv;
}

/* The key whose fn_mix64 is h. */
static uint64_t unmix64(uint64_t h)
{
    uint64_t x = unxorshift(h, 31);
    x *= mul_inverse(0x94D049BB133111EBull);
    x = unxorshift(x, 27);
    x *= mul_inverse(0xBF58476D1CE4E5B9ull);
    x = unxorshift(x, 30);
    return x - 0x9E3779B97F4A7C15ull;
}

static void make_keys(fn_rng *rng)
{
    for (uint32_t i = 0; i < K; i++) {
        uint64_t r = fn_rng_next(rng);
        switch (i % 4) {
        case 0: keys[i] = r; break;
        /* Same low 40 bits (all zero), keys differ above. */
        case 1: keys[i] = (uint64_t)(i / 4 + 1) << 40; break;
        /* Hash top 16 bits from 4 values: 4 long runs at any capacity. */
        case 2: keys[i] = unmix64(((0x1234ull + 0x4000ull * (i % 16 / 4)) << 48) | (r >> 16)); break;
        /* Groups of 8 sharing their tag: the hash's top 31 bits equal
         * (the tag's low bit is forced to 1), the rest random. */
        case 3: keys[i] = unmix64(((fn_mix64(i / 32) >> 33) << 33) | (r >> 31)); break;
        }
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void check_distinct(void)
{
    uint64_t *s = malloc(K * sizeof *s);
    memcpy(s, keys, K * sizeof *s);
    qsort(s, K, sizeof *s, cmp_u64);
    size_t dup = 0;
    for (uint32_t i = 1; i < K; i++) dup += s[i] == s[i - 1];
    CHECK(dup == 0, "%zu duplicate test keys", dup);
    free(s);
}

/* Every key answers as the reference does, and the map is well formed:
 * each occupied entry's tag is its key's, no empty entry lies between an
 * entry and its home, and empties agree between tags and slots. */
static void check_all(const keymap *m, uint32_t op)
{
    for (uint32_t id = 0; id < K; id++) {
        uint32_t got = keymap_find(m, keys[id]);
        CHECK(got == ref_pos[id], "op %" PRIu32 " key %" PRIu32 ": found %" PRIu32 " want %" PRIu32,
              op, id, got, ref_pos[id]);
    }
    CHECK(m->count == ref_count, "op %" PRIu32 ": count %zu want %zu", op, m->count, ref_count);
    CHECK((m->cap & (m->cap - 1)) == 0, "cap %zu not a power of two", m->cap);
    CHECK(m->count * 4 <= m->cap * 3, "load over 3/4: %zu of %zu", m->count, m->cap);
    unsigned log2cap = 0;
    while (((size_t)1 << log2cap) < m->cap) log2cap++;
    size_t occupied = 0;
    for (size_t i = 0; i < m->cap; i++) {
        int empty_t = m->tags[i] == 0, empty_s = m->slots[i] == KEYMAP_NONE;
        CHECK(empty_t == empty_s, "entry %zu: tag %" PRIu32 " slot %" PRIu32, i, m->tags[i], m->slots[i]);
        if (empty_t) continue;
        occupied++;
        uint64_t key = store[m->slots[i]];
        uint32_t tag = (uint32_t)(fn_mix64(key) >> 32) | 1u;
        CHECK(m->tags[i] == tag, "entry %zu: tag mismatch", i);
        size_t home = tag >> (32 - log2cap);
        for (size_t j = home; j != i; j = (j + 1) & (m->cap - 1))
            CHECK(m->tags[j] != 0, "entry %zu unreachable from home %zu (gap at %zu)", i, home, j);
    }
    CHECK(occupied == m->count, "occupied %zu count %zu", occupied, m->count);
}

static void test_random_ops(void)
{
    fn_rng rng;
    fn_rng_seed(&rng, 42);
    make_keys(&rng);
    check_distinct();
    for (uint32_t i = 0; i < 8; i++) {
        uint64_t h = fn_rng_next(&rng);
        CHECK(fn_mix64(unmix64(h)) == h, "unmix64 is not fn_mix64's inverse");
    }
    for (uint32_t id = 0; id < K; id++) ref_pos[id] = KEYMAP_NONE;
    n_free = 0;
    for (uint32_t p = STORE; p-- > 0;) free_pos[n_free++] = p;

    keymap m;
    CHECK(keymap_init(&m, 0, store_key_of, NULL) == FN_OK, "init");
    size_t max_count = 0, min_cap = m.cap, max_cap = m.cap;
    uint32_t n_ins = 0, n_rem = 0, n_mov = 0;
    for (uint32_t op = 0; op < OPS; op++) {
        /* grow, then shrink, then churn: percent insert / remove / move */
        int p_ins = op < 80000 ? 60 : op < 140000 ? 15 : 40;
        int p_rem = op < 80000 ? 15 : op < 140000 ? 65 : 40;
        int r = (int)fn_rng_below(&rng, 100);
        uint32_t id = (uint32_t)fn_rng_below(&rng, K);
        uint64_t key = keys[id];
        if (r < p_ins) {
            if (ref_pos[id] == KEYMAP_NONE) {
                uint32_t pos = free_pos[--n_free];
                store[pos] = key;
                store_id[pos] = id;
                CHECK(keymap_insert(&m, key, pos) == FN_OK, "insert");
                ref_pos[id] = pos;
                ref_count++;
                n_ins++;
            } else {
                CHECK(keymap_find(&m, key) == ref_pos[id], "op %" PRIu32 ": find present", op);
            }
        } else if (r < p_ins + p_rem) {
            uint32_t got = keymap_remove(&m, key);
            CHECK(got == ref_pos[id], "op %" PRIu32 ": remove gave %" PRIu32 " want %" PRIu32, op, got,
                  ref_pos[id]);
            if (ref_pos[id] != KEYMAP_NONE) {
                store[ref_pos[id]] = ~key; /* freed rows hold garbage */
                free_pos[n_free++] = ref_pos[id];
                ref_pos[id] = KEYMAP_NONE;
                ref_count--;
                n_rem++;
            }
            CHECK(keymap_find(&m, key) == KEYMAP_NONE, "op %" PRIu32 ": found after remove", op);
        } else if (r < p_ins + p_rem + 10) {
            if (ref_pos[id] != KEYMAP_NONE) {
                /* The row store moves a row: copy, tell the map, free. */
                uint32_t to = free_pos[--n_free], from = ref_pos[id];
                store[to] = key;
                store_id[to] = id;
                keymap_update(&m, key, to);
                store[from] = ~key;
                free_pos[n_free++] = from;
                ref_pos[id] = to;
                n_mov++;
            }
        } else {
            uint32_t got = keymap_find(&m, key);
            CHECK(got == ref_pos[id], "op %" PRIu32 ": find gave %" PRIu32 " want %" PRIu32, op, got,
                  ref_pos[id]);
        }
        CHECK(m.count == ref_count, "op %" PRIu32 ": count", op);
        if (m.count > max_count) max_count = m.count;
        if (m.cap > max_cap) max_cap = m.cap;
        if (m.cap < min_cap) min_cap = m.cap;
        if (op % 20000 == 19999) check_all(&m, op);
    }
    check_all(&m, OPS);
    CHECK(keymap_bytes(&m) == m.cap * 8, "bytes %zu for cap %zu", keymap_bytes(&m), m.cap);
    CHECK(max_cap >= 32768, "the map never grew much (cap %zu)", max_cap);
    CHECK(n_rem > 20000, "too few removals (%" PRIu32 ")", n_rem);
    printf("keymap: %u ops: %" PRIu32 " inserts, %" PRIu32 " removes, %" PRIu32
           " moves; peak %zu keys, cap %zu -> %zu, %.2f key_of calls per op\n",
           OPS, n_ins, n_rem, n_mov, max_count, min_cap, max_cap, (double)key_of_calls / OPS);

    /* Empty everything: removal must leave a clean table. */
    for (uint32_t id = 0; id < K; id++)
        if (ref_pos[id] != KEYMAP_NONE) {
            CHECK(keymap_remove(&m, keys[id]) == ref_pos[id], "drain");
            ref_pos[id] = KEYMAP_NONE;
            ref_count--;
        }
    CHECK(m.count == 0, "count %zu after draining", m.count);
    for (size_t i = 0; i < m.cap; i++) CHECK(m.tags[i] == 0 && m.slots[i] == KEYMAP_NONE, "entry %zu left", i);
    keymap_free(&m);
    CHECK(m.slots == NULL && m.tags == NULL, "free clears");
}

/* Sizing from `expected`, and finds on an empty map. */
static void test_init_sizes(void)
{
    keymap m;
    CHECK(keymap_init(&m, 1000, store_key_of, NULL) == FN_OK, "init 1000");
    CHECK(m.cap == 2048, "cap %zu for 1000 expected (1000 > 0.75 * 1024)", m.cap);
    CHECK(keymap_find(&m, 12345) == KEYMAP_NONE, "find in empty");
    CHECK(keymap_remove(&m, 12345) == KEYMAP_NONE, "remove from empty");
    keymap_free(&m);
    CHECK(keymap_init(&m, 12, store_key_of, NULL) == FN_OK && m.cap == 16, "cap %zu for 12", m.cap);
    /* The 13th key crosses 3/4 of 16 and must double the map. */
    for (uint32_t i = 0; i < 13; i++) {
        store[i] = 1000 + i;
        CHECK(keymap_insert(&m, 1000 + i, i) == FN_OK, "insert");
    }
    CHECK(m.cap == 32, "cap %zu after 13 inserts", m.cap);
    for (uint32_t i = 0; i < 13; i++) CHECK(keymap_find(&m, 1000 + i) == i, "find %" PRIu32, i);
    keymap_free(&m);
}

int main(void)
{
    test_init_sizes();
    test_random_ops();
    if (failures) {
        printf("test_keymap: %d failures\n", failures);
        return 1;
    }
    printf("test_keymap: ok\n");
    return 0;
}
