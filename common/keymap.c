/* common/keymap.c — see keymap.h.
 *
 * Layout and invariants (the header's struct, used as follows):
 *   h    = fn_mix64(key)
 *   tag  = (h >> 32) | 1          never 0, so tags[i] == 0 marks an empty entry
 *   home = (tag * cap) >> 32      = tag >> (32 - log2 cap): the tag's top bits
 *   entry i is empty  <=>  tags[i] == 0  <=>  slots[i] == KEYMAP_NONE
 * An entry sits in the run that starts at its home and contains no empty
 * entry before it (linear probing, wrapping at cap).
 *
 * Why the home comes from the tag: growth and backward-shift deletion need
 * each entry's home, and the tag holds it, so neither ever calls key_of()
 * (which would be a cache miss into the row store per entry).  The price is
 * that a tag only tells apart keys of the same home by its remaining
 * 32 - log2(cap) bits; at 2^24 entries that is 1 false match in 256 between
 * two same-home keys, each costing one key_of() that then says no.
 *
 * Probing reads only `tags` until a tag matches, so a miss touches one
 * cache line of 16 tags; a hit adds one read of `slots` and the key_of()
 * into the row, which the caller is about to read anyway.
 *
 * Capacity is at most 2^31 entries (slots are u32, KEYMAP_NONE is
 * reserved); past that keymap_insert() reports FN_ENOMEM. */
#include "keymap.h"

#include <assert.h>
#include <stdlib.h>

#include "fn_error.h"
#include "hash.h"

#define KEYMAP_MIN_CAP ((size_t)16)
#define KEYMAP_MAX_CAP ((size_t)1 << 31)

static inline uint32_t km_tag(uint64_t key) { return (uint32_t)(fn_mix64(key) >> 32) | 1u; }

/* The tag's top log2(cap) bits, without a shift count to keep around. */
static inline size_t km_home(uint32_t tag, size_t cap) { return (size_t)(((uint64_t)tag * cap) >> 32); }

/* Over 3/4 full once it held n entries? */
static inline int km_over(size_t n, size_t cap) { return n > cap - cap / 4; }

/* Fresh arrays of cap entries, all empty. */
static int km_alloc(uint32_t **slots, uint32_t **tags, size_t cap)
{
    *slots = malloc(cap * sizeof **slots);
    *tags = calloc(cap, sizeof **tags);
    if (!*slots || !*tags) {
        free(*slots);
        free(*tags);
        *slots = *tags = NULL;
        return fn_fail(FN_ENOMEM, "keymap: cannot allocate %zu entries", cap);
    }
    for (size_t i = 0; i < cap; i++) (*slots)[i] = KEYMAP_NONE;
    return FN_OK;
}

int keymap_init(keymap *m, size_t expected, keymap_key_fn key_of, const void *ud)
{
    size_t cap = KEYMAP_MIN_CAP;
    while (km_over(expected, cap)) {
        if (cap >= KEYMAP_MAX_CAP)
            return fn_fail(FN_ENOMEM, "keymap: %zu entries is over the limit", expected);
        cap *= 2;
    }
    m->cap = cap;
    m->count = 0;
    m->key_of = key_of;
    m->ud = ud;
    int rc = km_alloc(&m->slots, &m->tags, cap);
    if (rc != FN_OK) m->cap = 0;
    return rc;
}

void keymap_free(keymap *m)
{
    free(m->slots);
    free(m->tags);
    m->slots = m->tags = NULL;
    m->cap = m->count = 0;
}

/* Index of the entry holding key, or cap if absent. */
static inline size_t km_locate(const keymap *m, uint64_t key)
{
    const uint32_t tag = km_tag(key);
    const size_t mask = m->cap - 1;
    const uint32_t *tags = m->tags;
    for (size_t i = km_home(tag, m->cap);; i = (i + 1) & mask) {
        uint32_t t = tags[i];
        if (t == tag) {
            if (m->key_of(m->ud, m->slots[i]) == key) return i;
        } else if (t == 0) {
            return m->cap;
        }
    }
}

uint32_t keymap_find(const keymap *m, uint64_t key)
{
    size_t i = km_locate(m, key);
    return i == m->cap ? KEYMAP_NONE : m->slots[i];
}

void keymap_prefetch(const keymap *m, uint64_t key)
{
    size_t i = km_home(km_tag(key), m->cap);
    __builtin_prefetch(m->tags + i);
    __builtin_prefetch(m->slots + i);
}

uint32_t keymap_peek(const keymap *m, uint64_t key)
{
    const uint32_t tag = km_tag(key);
    const size_t mask = m->cap - 1;
    for (size_t i = km_home(tag, m->cap);; i = (i + 1) & mask) {
        uint32_t t = m->tags[i];
        if (t == tag) return m->slots[i];
        if (t == 0) return KEYMAP_NONE;
    }
}

/* Places (tag, slot) in the first empty entry of its run; no checks. */
static inline void km_place(uint32_t *slots, uint32_t *tags, size_t cap, uint32_t tag, uint32_t slot)
{
    size_t i = km_home(tag, cap);
    while (tags[i] != 0) i = (i + 1) & (cap - 1);
    tags[i] = tag;
    slots[i] = slot;
}

static int km_grow(keymap *m)
{
    size_t ncap = m->cap * 2;
    if (ncap > KEYMAP_MAX_CAP)
        return fn_fail(FN_ENOMEM, "keymap: over %zu entries", m->count);
    uint32_t *nslots, *ntags;
    int rc = km_alloc(&nslots, &ntags, ncap);
    if (rc != FN_OK) return rc;
    /* Visit old entries from the start of a run (just after an empty
     * entry): homes then rise with the visit order, so the writes into the
     * new arrays run forward instead of scattering. */
    size_t mask = m->cap - 1, start = 0;
    while (m->tags[start] != 0) start++; /* an empty entry exists: load <= 3/4 */
    for (size_t k = 1; k <= m->cap; k++) {
        size_t i = (start + k) & mask;
        if (m->tags[i] != 0) km_place(nslots, ntags, ncap, m->tags[i], m->slots[i]);
    }
    free(m->slots);
    free(m->tags);
    m->slots = nslots;
    m->tags = ntags;
    m->cap = ncap;
    return FN_OK;
}

int keymap_insert(keymap *m, uint64_t key, uint32_t slot)
{
    assert(slot != KEYMAP_NONE);
    /* key absent is the caller's promise: checking it would cost a probe on
     * every insert, and asserts stay on in our release builds. */
    if (km_over(m->count + 1, m->cap)) {
        int rc = km_grow(m);
        if (rc != FN_OK) return rc;
    }
    km_place(m->slots, m->tags, m->cap, km_tag(key), slot);
    m->count++;
    return FN_OK;
}

uint32_t keymap_remove(keymap *m, uint64_t key)
{
    size_t hole = km_locate(m, key);
    if (hole == m->cap) return KEYMAP_NONE;
    uint32_t slot = m->slots[hole];
    const size_t mask = m->cap - 1;
    /* Backward shift: walk the rest of the run; an entry may fill the hole
     * when its home is not inside (hole, j], i.e. it would still be reached
     * from its home after the move. */
    for (size_t j = (hole + 1) & mask;; j = (j + 1) & mask) {
        uint32_t t = m->tags[j];
        if (t == 0) break;
        size_t home = km_home(t, m->cap);
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            m->tags[hole] = t;
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    m->tags[hole] = 0;
    m->slots[hole] = KEYMAP_NONE;
    m->count--;
    return slot;
}

void keymap_update(keymap *m, uint64_t key, uint32_t slot)
{
    assert(slot != KEYMAP_NONE);
    size_t i = km_locate(m, key);
    assert(i != m->cap); /* the row store only moves rows it holds */
    if (i != m->cap) m->slots[i] = slot;
}

size_t keymap_bytes(const keymap *m) { return m->cap * (sizeof *m->slots + sizeof *m->tags); }
