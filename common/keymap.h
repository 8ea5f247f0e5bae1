/* common/keymap.h — open-addressing hash map from 64-bit key to 32-bit slot.
 *
 * The index under the parameter server's tables and the predictor's model:
 * it maps a feature key to the position of its row in a separate row store,
 * so the map itself costs ~8 bytes per entry (a u32 slot + a u32 tag) at a
 * load factor <= 0.75 — the rows' keys live in the row store, and the map
 * asks the caller for them through key_of(). Linear probing; deletion by
 * backward shift (no tombstones), so tables that evict stay fast. */
#ifndef FN_KEYMAP_H
#define FN_KEYMAP_H

#include <stddef.h>
#include <stdint.h>

#define KEYMAP_NONE UINT32_MAX

/* Returns the key stored at row `slot` of the caller's row store. */
typedef uint64_t (*keymap_key_fn)(const void *ud, uint32_t slot);

typedef struct {
    uint32_t *slots;  /* cap entries; KEYMAP_NONE = empty */
    uint32_t *tags;   /* cap entries: high 32 bits of the key's hash, to skip
                         most key_of() calls on collisions */
    size_t cap;       /* power of two */
    size_t count;
    keymap_key_fn key_of;
    const void *ud;
} keymap;

/* Returns FN_OK or FN_ENOMEM. */
int keymap_init(keymap *m, size_t expected, keymap_key_fn key_of, const void *ud);
void keymap_free(keymap *m);

/* The slot of key, or KEYMAP_NONE. */
uint32_t keymap_find(const keymap *m, uint64_t key);

/* For batched lookups that hide memory latency: keymap_prefetch(key) asks
 * the cache for key's home entries; a few keys later keymap_peek(key) gives
 * the slot of the first entry whose tag matches (unverified: the caller
 * prefetches that row, and keymap_find answers for certain later), or
 * KEYMAP_NONE. */
void keymap_prefetch(const keymap *m, uint64_t key);
uint32_t keymap_peek(const keymap *m, uint64_t key);

/* Inserts key -> slot (key must not be present).  Grows as needed.
 * Returns FN_OK or FN_ENOMEM. */
int keymap_insert(keymap *m, uint64_t key, uint32_t slot);

/* Removes key; returns its slot or KEYMAP_NONE. */
uint32_t keymap_remove(keymap *m, uint64_t key);

/* Changes the slot recorded for key (when the row store moves a row). */
void keymap_update(keymap *m, uint64_t key, uint32_t slot);

/* Bytes of memory held by the map. */
size_t keymap_bytes(const keymap *m);

#endif
