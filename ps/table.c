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
 * Eviction: positions are not stable identities.  To drop the row at
 * position p: keymap_remove(its key) while the row still holds it, copy
 * the last row into p, keymap_update(that row's key, p), rows--; chunks
 * left empty at the tail are freed (one is kept against regrowth).
 * ps_tables_evict() picks the rows by a total order on
 * (last_step, count, fn_mix64(key)) — LRU — or (count, last_step, ...) —
 * LFU — with a radix select — up to 8 passes
 * of 16-bit digits, each a histogram over the rows still in question — so
 * exactly the k least recently (then least often) used rows go, whatever
 * the rows' positions, which depend on the order pulls arrived in.
 * ps_table_row_at() walks positions, so a checkpoint must not run
 * interleaved with evictions.
 *
 * Admission: with a sketch set (ps_table_set_admission), pulls create no
 * rows (absent keys read as zeros) and a push of an absent key counts it
 * in the sketch; the push that brings its count to `after` creates the row
 * with its initial weights (that push's gradient, taken at zero weights,
 * is dropped like the earlier ones).  Counting at pushes keeps admission
 * deterministic: the server applies pushes in a fixed order.
 *
 * Callers: ps/server.c (pull, push), checkpoint load (set) and save
 * (row_at).  Not thread-safe (see table.h). */
#include "table.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fn_error.h"
#include "hash.h"
#include "keymap.h"
#include "sketch.h"

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

    size_t prefetch_bytes; /* look ahead in lookups once the rows outgrow this */
    ps_sketch *admit;      /* NULL: every key gets a row at once */
    uint32_t admit_after;
    uint64_t created, evicted, dropped;
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
    long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE); /* see tab_prefetch_ahead */
    t->prefetch_bytes = 4 * (size_t)(l2 > 0 ? l2 : 1 << 20);
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
    t->created++;
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

/* Batched lookups run ahead of the work: key i+2L's index entries and key
 * i+L's row are asked of the cache while key i is served, so a request's
 * cache misses overlap instead of queueing one after the other.  Only for
 * tables too big for the caches near the core (over 4 x L2): on a table
 * that stays cached the extra hashing is pure cost (server benchmark, 10k
 * rows: pull 950 -> 790 MB/s with it; in-process, 200k rows: 87 -> 42
 * ns a key). */
#define TAB_AHEAD 8

static inline int tab_worth_prefetch(const ps_table *t) { return t->rows * t->row_bytes > t->prefetch_bytes; }

static inline void tab_prefetch_ahead(const ps_table *t, const uint64_t *keys, uint32_t n, uint32_t i)
{
    if (i + 2 * TAB_AHEAD < n) keymap_prefetch(&t->index, keys[i + 2 * TAB_AHEAD]);
    if (i + TAB_AHEAD < n) {
        uint32_t pos = keymap_peek(&t->index, keys[i + TAB_AHEAD]);
        if (pos != KEYMAP_NONE && pos < t->rows) {
            const char *r = (const char *)tab_row_ptr(t, pos);
            for (size_t b = 0; b < t->row_bytes; b += 64) __builtin_prefetch(r + b, 1);
        }
    }
}

int ps_table_pull_at(ps_table *t, const uint64_t *keys, const uint32_t *at, uint32_t n, float *out, uint32_t step)
{
    const size_t dim = (size_t)t->dim;
    const int ahead = tab_worth_prefetch(t);
    for (uint32_t i = 0; i < n; i++) {
        if (ahead) tab_prefetch_ahead(t, keys, n, i);
        float *o = out + (at ? at[i] : i) * dim;
        tab_row *r;
        if (t->admit) {
            uint32_t pos = keymap_find(&t->index, keys[i]);
            if (pos == KEYMAP_NONE) { /* not admitted (yet): zeros */
                memset(o, 0, dim * sizeof(float));
                continue;
            }
            r = tab_row_ptr(t, pos);
        } else if (!(r = tab_get(t, keys[i]))) {
            return FN_ENOMEM;
        }
        tab_touch(r, step);
        memcpy(o, r->v, dim * sizeof(float));
    }
    return FN_OK;
}

int ps_table_pull(ps_table *t, const uint64_t *keys, uint32_t n, float *out, uint32_t step)
{
    return ps_table_pull_at(t, keys, NULL, n, out, step);
}

void ps_table_read_at(const ps_table *t, const uint64_t *keys, const uint32_t *at, uint32_t n, float *out)
{
    const size_t dim = (size_t)t->dim;
    for (uint32_t i = 0; i < n; i++) {
        float *o = out + (at ? at[i] : i) * dim;
        const float *w = ps_table_find(t, keys[i]);
        if (w) memcpy(o, w, dim * sizeof(float));
        else memset(o, 0, dim * sizeof(float));
    }
}

int ps_table_push_at(ps_table *t, const uint64_t *keys, const uint32_t *at, uint32_t n, const float *grads, uint32_t step)
{
    const size_t dim = (size_t)t->dim;
    const int ahead = tab_worth_prefetch(t);
    for (uint32_t i = 0; i < n; i++) {
        if (ahead) tab_prefetch_ahead(t, keys, n, i);
        tab_row *r;
        if (t->admit) {
            uint32_t pos = keymap_find(&t->index, keys[i]);
            if (pos == KEYMAP_NONE) {
                if (ps_sketch_add(t->admit, keys[i]) < t->admit_after) {
                    t->dropped++;
                    continue;
                }
                if ((pos = tab_create(t, keys[i])) == KEYMAP_NONE) return FN_ENOMEM;
                tab_touch(tab_row_ptr(t, pos), step);
                t->dropped++; /* its gradient was taken at zero weights */
                continue;
            }
            r = tab_row_ptr(t, pos);
        } else if (!(r = tab_get(t, keys[i]))) {
            return FN_ENOMEM;
        }
        tab_touch(r, step);
        ps_opt_apply(&t->opt, r->v, r->v + dim, grads + (at ? at[i] : i) * dim, t->dim);
    }
    return FN_OK;
}

int ps_table_push(ps_table *t, const uint64_t *keys, uint32_t n, const float *grads, uint32_t step)
{
    return ps_table_push_at(t, keys, NULL, n, grads, step);
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

void ps_table_set_admission(ps_table *t, ps_sketch *sketch, uint32_t after)
{
    t->admit = after > 1 ? sketch : NULL;
    t->admit_after = after;
}

void ps_table_counts(const ps_table *t, ps_table_stats *st)
{
    st->rows = t->rows;
    st->created = t->created;
    st->evicted = t->evicted;
    st->dropped = t->dropped;
    st->bytes = ps_table_bytes(t);
}

void ps_table_row_meta(const ps_table *t, size_t i, uint32_t *last_step, uint32_t *count)
{
    const tab_row *r = tab_row_ptr(t, i);
    *last_step = r->last_step;
    *count = r->count;
}

void ps_table_set_meta(ps_table *t, uint64_t key, uint32_t last_step, uint32_t count)
{
    uint32_t pos = keymap_find(&t->index, key);
    if (pos == KEYMAP_NONE) return;
    tab_row *r = tab_row_ptr(t, pos);
    r->last_step = last_step;
    r->count = count;
}

void ps_table_restore_counts(ps_table *t, uint64_t created, uint64_t evicted, uint64_t dropped)
{
    t->created = created;
    t->evicted = evicted;
    t->dropped = dropped;
}

/* ---- eviction ------------------------------------------------------------ */

/* Digit d (0..7, most significant first) of a row's 128-bit eviction order
 * (last_step, count, fn_mix64(key)), or (count, last_step, ...) when lfu:
 * 16 bits each. */
static inline unsigned tab_digit(const tab_row *r, int d, int lfu)
{
    uint64_t v = d >= 4 ? fn_mix64(r->key)
                        : lfu ? ((uint64_t)r->count << 32 | r->last_step) : ((uint64_t)r->last_step << 32 | r->count);
    return (unsigned)(v >> (48 - 16 * (d & 3))) & 0xFFFFu;
}

/* Compares the first `levels` digits of r with pre[]: <0, 0, >0. */
static inline int tab_cmp_prefix(const tab_row *r, const unsigned *pre, int levels, int lfu)
{
    for (int d = 0; d < levels; d++) {
        unsigned x = tab_digit(r, d, lfu);
        if (x != pre[d]) return x < pre[d] ? -1 : 1;
    }
    return 0;
}

/* Drops the row at pos (see the header comment). */
static void tab_remove_at(ps_table *t, size_t pos)
{
    tab_row *r = tab_row_ptr(t, pos);
    keymap_remove(&t->index, r->key);
    size_t last = t->rows - 1;
    if (pos != last) {
        tab_row *l = tab_row_ptr(t, last);
        memcpy(r, l, t->row_bytes);
        keymap_update(&t->index, r->key, (uint32_t)pos);
    }
    t->rows--;
    t->evicted++;
}

/* Frees chunks past the one that holds the last row, keeping one spare. */
static void tab_trim(ps_table *t)
{
    size_t used = (t->rows + t->chunk_mask) >> t->chunk_shift;
    while (t->n_chunks > used + 1) free(t->chunks[--t->n_chunks]);
}

size_t ps_tables_evict(ps_table *const *tabs, int n, size_t keep, uint32_t older_than, ps_evict_policy policy)
{
    size_t before = 0, total = 0;
    for (int k = 0; k < n; k++) before += tabs[k] ? tabs[k]->rows : 0;
    /* rows unseen since `older_than` first (the TTL) */
    if (older_than)
        for (int k = 0; k < n; k++) {
            ps_table *t = tabs[k];
            for (size_t p = 0; t && p < t->rows;)
                if (tab_row_ptr(t, p)->last_step < older_than) tab_remove_at(t, p);
                else p++;
        }
    for (int k = 0; k < n; k++) total += tabs[k] ? tabs[k]->rows : 0;
    if (total > keep) {
        uint64_t need = total - keep;
        const int lfu = policy == PS_EVICT_LFU;
        unsigned pre[8];
        int levels = 0;
        uint64_t *hist = malloc(65536 * sizeof *hist);
        if (!hist) {
            /* no memory for the histogram: fall back to positions (still
             * bounded, just not in least-recently-used order) */
            for (int k = 0; k < n && need; k++)
                while (tabs[k] && tabs[k]->rows && need) { tab_remove_at(tabs[k], tabs[k]->rows - 1); need--; }
        } else {
            while (levels < 8) {
                memset(hist, 0, 65536 * sizeof *hist);
                for (int k = 0; k < n; k++)
                    for (size_t p = 0; tabs[k] && p < tabs[k]->rows; p++) {
                        const tab_row *r = tab_row_ptr(tabs[k], p);
                        if (tab_cmp_prefix(r, pre, levels, lfu) == 0) hist[tab_digit(r, levels, lfu)]++;
                    }
                uint64_t below = 0;
                unsigned v = 0;
                while (below + hist[v] < need) below += hist[v++];
                pre[levels++] = v;
                need -= below;
                if (hist[v] == need) break; /* the whole group goes */
            }
            free(hist);
            /* evict every row whose order is at or below the chosen prefix
             * (after 8 levels, equal orders — the same key in two tables —
             * all go: never fewer than asked) */
            for (int k = 0; k < n; k++) {
                ps_table *t = tabs[k];
                for (size_t p = 0; t && p < t->rows;)
                    if (tab_cmp_prefix(tab_row_ptr(t, p), pre, levels, lfu) <= 0) tab_remove_at(t, p);
                    else p++;
            }
        }
    }
    size_t after = 0;
    for (int k = 0; k < n; k++)
        if (tabs[k]) {
            tab_trim(tabs[k]);
            after += tabs[k]->rows;
        }
    return before - after;
}
