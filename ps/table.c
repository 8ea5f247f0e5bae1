/* ps/table.c — see table.h.
 *
 * Storage.  Rows are dense at positions 0 .. rows-1 (no holes), in chunks
 * of 2^chunk_shift rows; only the array of chunk pointers is ever
 * reallocated (doubling), so growth copies no rows and never holds two
 * copies of the table.  A row is
 *
 *   [u64 key][u32 last_step][u32 count][dim floats w][state floats]
 *
 * padded to a multiple of 8 bytes (row_bytes).  The keymap maps key ->
 * position and reads keys back out of the rows (tab_key_of), so the key is
 * stored once.  Memory per row is row_bytes + 8 / load-of-the-keymap
 * (10.7 .. 21.3 bytes) + the unused tail of the last chunk; a chunk holds
 * 256-512 KiB of rows, so that tail costs under ~5 bytes a row from 100k
 * rows on (test_table measures the whole ratio).
 *
 * Initial weights are a pure function of (seed, key, j): the splitmix64
 * stream started at fn_mix64(key ^ fn_mix64(seed)), each output turned into
 * one of 2^24 evenly spaced values in [-init_range, init_range).  So any
 * server, any stripe, any run with the same seed builds the same row no
 * matter in which order keys arrive.
 *
 * Room left for eviction (not implemented): positions are not stable
 * identities.  To drop the row at position p: keymap_remove(its key) while
 * the row still holds it, copy the last row into p, keymap_update(that
 * row's key, p), rows--.  last_step and count are kept for the policy that
 * picks p.  ps_table_row_at() walks positions, so a checkpoint must not
 * run interleaved with evictions.
 *
 * Callers: ps/server.c (pull, push), checkpoint load (set) and save
 * (row_at).  Not thread-safe (see table.h). */
#include "table.h"

#include <stdlib.h>
#include <string.h>

#include "fn_error.h"
#include "hash.h"
#include "keymap.h"

/* Target bytes of rows per chunk; the row count is a power of two under it. */
#define TAB_CHUNK_BYTES (512u * 1024u)
#define TAB_MIN_CHUNK_SHIFT 4u
/* Positions are u32 and KEYMAP_NONE is reserved. */
#define TAB_MAX_ROWS ((size_t)UINT32_MAX - 1)

typedef struct {
    uint64_t key;
    uint32_t last_step; /* step of the last pull or push */
    uint32_t count;     /* pulls + pushes, saturating */
    float v[];          /* dim weights, then the optimizer state */
} tab_row;

struct ps_table {
    int dim;
    size_t state_floats;
    ps_opt opt;
    uint64_t init_base; /* fn_mix64(seed): mixed into every key's stream */
    float init_range;

    size_t row_bytes;    /* bytes, multiple of 8 */
    unsigned chunk_shift;
    size_t chunk_mask;   /* rows per chunk - 1 */
    unsigned char **chunks;
    size_t n_chunks;     /* allocated chunks */
    size_t chunks_cap;   /* length of the pointer array */
    size_t rows;

    keymap index;
};

static inline tab_row *tab_row_ptr(const ps_table *t, size_t pos)
{
    return (tab_row *)(t->chunks[pos >> t->chunk_shift] + (pos & t->chunk_mask) * t->row_bytes);
}

static uint64_t tab_key_of(const void *ud, uint32_t pos)
{
    return tab_row_ptr(ud, pos)->key;
}

ps_table *ps_table_new(int dim, const ps_opt *opt, uint64_t seed, float init_range)
{
    if (dim <= 0 || !opt) {
        fn_fail(FN_EINVAL, "ps_table_new: dim %d, opt %p", dim, (const void *)opt);
        return NULL;
    }
    ps_table *t = calloc(1, sizeof *t);
    if (!t) {
        fn_fail(FN_ENOMEM, "ps_table_new: out of memory");
        return NULL;
    }
    t->dim = dim;
    t->opt = *opt;
    t->state_floats = ps_opt_state_floats(opt, dim);
    t->init_base = fn_mix64(seed);
    t->init_range = init_range;
    size_t raw = sizeof(tab_row) + ((size_t)dim + t->state_floats) * sizeof(float);
    t->row_bytes = (raw + 7) & ~(size_t)7;
    unsigned shift = TAB_MIN_CHUNK_SHIFT;
    while (((size_t)2 << shift) * t->row_bytes <= TAB_CHUNK_BYTES) shift++;
    t->chunk_shift = shift;
    t->chunk_mask = ((size_t)1 << shift) - 1;
    if (keymap_init(&t->index, 0, tab_key_of, t) != FN_OK) {
        free(t);
        return NULL;
    }
    return t;
}

void ps_table_destroy(ps_table **tp)
{
    ps_table *t = *tp;
    if (!t) return;
    for (size_t c = 0; c < t->n_chunks; c++) free(t->chunks[c]);
    free(t->chunks);
    keymap_free(&t->index);
    free(t);
    *tp = NULL;
}

int ps_table_dim(const ps_table *t) { return t->dim; }
size_t ps_table_rows(const ps_table *t) { return t->rows; }

size_t ps_table_bytes(const ps_table *t)
{
    return sizeof *t + t->chunks_cap * sizeof *t->chunks +
           t->n_chunks * (t->chunk_mask + 1) * t->row_bytes + keymap_bytes(&t->index);
}

size_t ps_table_row_need(const ps_table *t)
{
    return sizeof(uint64_t) + ((size_t)t->dim + t->state_floats) * sizeof(float);
}

/* Weights of key j: 2^24 evenly spaced values in [-r, r). */
static void tab_init_weights(const ps_table *t, uint64_t key, float *w)
{
    const uint64_t gamma = 0x9E3779B97F4A7C15ull;
    const uint64_t base = fn_mix64(key ^ t->init_base);
    const float r = t->init_range;
    for (int j = 0; j < t->dim; j++) {
        uint64_t x = fn_mix64(base + (uint64_t)j * gamma);
        float u = (float)(x >> 40) * 0x1.0p-23f - 1.0f; /* exact: [-1, 1) */
        w[j] = r * u;
    }
}

/* Appends a fresh row for key (absent); its position, or KEYMAP_NONE. */
static uint32_t tab_create(ps_table *t, uint64_t key)
{
    if (t->rows >= TAB_MAX_ROWS) {
        fn_fail(FN_ENOMEM, "ps_table: %zu rows is the limit", t->rows);
        return KEYMAP_NONE;
    }
    size_t pos = t->rows;
    if ((pos >> t->chunk_shift) == t->n_chunks) {
        if (t->n_chunks == t->chunks_cap) {
            size_t ncap = t->chunks_cap ? 2 * t->chunks_cap : 8;
            unsigned char **nc = realloc(t->chunks, ncap * sizeof *nc);
            if (!nc) {
                fn_fail(FN_ENOMEM, "ps_table: chunk array of %zu", ncap);
                return KEYMAP_NONE;
            }
            t->chunks = nc;
            t->chunks_cap = ncap;
        }
        unsigned char *c = malloc((t->chunk_mask + 1) * t->row_bytes);
        if (!c) {
            fn_fail(FN_ENOMEM, "ps_table: chunk %zu of %zu bytes", t->n_chunks,
                    (t->chunk_mask + 1) * t->row_bytes);
            return KEYMAP_NONE;
        }
        t->chunks[t->n_chunks++] = c;
    }
    tab_row *r = tab_row_ptr(t, pos);
    r->key = key;
    r->last_step = 0;
    r->count = 0;
    tab_init_weights(t, key, r->v);
    ps_opt_init_state(&t->opt, r->v + t->dim, t->dim);
    /* The row is written but not counted until the index knows it, so a
     * failed insert leaves the table as it was. */
    if (keymap_insert(&t->index, key, (uint32_t)pos) != FN_OK) return KEYMAP_NONE;
    t->rows++;
    return (uint32_t)pos;
}

/* The row of key, created if absent; NULL when out of memory. */
static inline tab_row *tab_get(ps_table *t, uint64_t key)
{
    uint32_t pos = keymap_find(&t->index, key);
    if (pos == KEYMAP_NONE) {
        pos = tab_create(t, key);
        if (pos == KEYMAP_NONE) return NULL;
    }
    return tab_row_ptr(t, pos);
}

static inline void tab_touch(tab_row *r, uint32_t step)
{
    r->last_step = step;
    if (r->count != UINT32_MAX) r->count++;
}

float *ps_table_get(ps_table *t, uint64_t key, uint32_t step)
{
    tab_row *r = tab_get(t, key);
    if (!r) return NULL;
    tab_touch(r, step);
    return r->v;
}

const float *ps_table_find(const ps_table *t, uint64_t key)
{
    uint32_t pos = keymap_find(&t->index, key);
    return pos == KEYMAP_NONE ? NULL : tab_row_ptr(t, pos)->v;
}

int ps_table_pull(ps_table *t, const uint64_t *keys, uint32_t n, float *out, uint32_t step)
{
    const size_t dim = (size_t)t->dim;
    for (uint32_t i = 0; i < n; i++) {
        tab_row *r = tab_get(t, keys[i]);
        if (!r) return FN_ENOMEM;
        tab_touch(r, step);
        memcpy(out + i * dim, r->v, dim * sizeof(float));
    }
    return FN_OK;
}

int ps_table_push(ps_table *t, const uint64_t *keys, uint32_t n, const float *grads, uint32_t step)
{
    const size_t dim = (size_t)t->dim;
    for (uint32_t i = 0; i < n; i++) {
        tab_row *r = tab_get(t, keys[i]);
        if (!r) return FN_ENOMEM;
        tab_touch(r, step);
        ps_opt_apply(&t->opt, r->v, r->v + dim, grads + i * dim, t->dim);
    }
    return FN_OK;
}

int ps_table_set(ps_table *t, uint64_t key, const float *w, const float *state)
{
    tab_row *r = tab_get(t, key);
    if (!r) return FN_ENOMEM;
    memcpy(r->v, w, (size_t)t->dim * sizeof(float));
    if (state)
        memcpy(r->v + t->dim, state, t->state_floats * sizeof(float));
    else
        ps_opt_init_state(&t->opt, r->v + t->dim, t->dim);
    return FN_OK;
}

void ps_table_row_at(const ps_table *t, size_t i, uint64_t *key, const float **w, const float **state)
{
    const tab_row *r = tab_row_ptr(t, i);
    *key = r->key;
    *w = r->v;
    *state = t->state_floats ? r->v + t->dim : NULL;
}
