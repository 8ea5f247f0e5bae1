/* ps/table.h — one server's shard of one embedding table.
 *
 * Owns the rows of the keys this server is responsible for: each row holds
 * its key, two counters used by eviction policies (last step seen, times
 * seen), `dim` weights and the optimizer's state.  Rows live in fixed-size
 * chunks (never one giant realloc, so growth never doubles peak memory), and
 * a common/keymap.h index maps keys to row positions.  The table grows
 * without a preset vocabulary.  A row is created on its first pull with
 * values that depend only on (seed, key), uniform in [-init_range,
 * init_range], so every process and every run with the same seed agrees.
 *
 * Not thread-safe: the server gives each thread its own tables (stripes). */
#ifndef FN_PS_TABLE_H
#define FN_PS_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "optimizer.h"
#include "sketch.h"

typedef struct ps_table ps_table;

ps_table *ps_table_new(int dim, const ps_opt *opt, uint64_t seed, float init_range);
void ps_table_destroy(ps_table **t);

int ps_table_dim(const ps_table *t);
size_t ps_table_rows(const ps_table *t);

/* Resident bytes held (rows, chunks, index). */
size_t ps_table_bytes(const ps_table *t);
/* Bytes a row needs: key + weights + optimizer state. */
size_t ps_table_row_need(const ps_table *t);

/* The weights (dim floats) of key, creating the row if absent; NULL only when
 * out of memory.  `step` is recorded as the row's last use. */
float *ps_table_get(ps_table *t, uint64_t key, uint32_t step);

/* The weights of key or NULL if absent (creates nothing). */
const float *ps_table_find(const ps_table *t, uint64_t key);

/* out[i*dim..] = weights of keys[i], creating rows as needed.
 * Returns FN_OK or FN_ENOMEM. */
int ps_table_pull(ps_table *t, const uint64_t *keys, uint32_t n, float *out, uint32_t step);

/* Applies the optimizer to keys[i] with grads[i*dim..], creating rows as
 * needed.  Returns FN_OK or FN_ENOMEM. */
int ps_table_push(ps_table *t, const uint64_t *keys, uint32_t n, const float *grads, uint32_t step);

/* The same for a stripe's share of a request: keys[i]'s row goes to (comes
 * from) out (grads) at row at[i] of the request instead of row i (at NULL:
 * row i).  ps_table_read_at: ps_table_find's weights, zeros when absent,
 * nothing created (read-only pulls). */
int ps_table_pull_at(ps_table *t, const uint64_t *keys, const uint32_t *at, uint32_t n, float *out, uint32_t step);
int ps_table_push_at(ps_table *t, const uint64_t *keys, const uint32_t *at, uint32_t n, const float *grads, uint32_t step);
void ps_table_read_at(const ps_table *t, const uint64_t *keys, const uint32_t *at, uint32_t n, float *out);

/* Sets (or creates) the row of key with weights w and optimizer state
 * `state` (NULL: fresh state).  Used when loading checkpoints. */
int ps_table_set(ps_table *t, uint64_t key, const float *w, const float *state);

/* Iteration over all rows in storage order: i from 0 to ps_table_rows()-1.
 * *w and *state point into the table (state may be NULL if the optimizer
 * keeps none). */
void ps_table_row_at(const ps_table *t, size_t i, uint64_t *key, const float **w, const float **state);

/* Feature admission: with after >= 2, keys get a row only once pushes have
 * brought their count in `sketch` (shared, owned by the caller) to after;
 * until then pulls read zeros and their gradients are dropped.  after <= 1:
 * every key gets a row on its first pull or push. */
void ps_table_set_admission(ps_table *t, ps_sketch *sketch, uint32_t after);

typedef struct {
    size_t rows;
    uint64_t created;  /* rows ever made: admitted keys */
    uint64_t evicted;
    uint64_t dropped;  /* pushed gradients of keys without a row */
    size_t bytes;      /* ps_table_bytes */
} ps_table_stats;
void ps_table_counts(const ps_table *t, ps_table_stats *st);

/* Eviction bookkeeping of row i (storage order), and setting it back by
 * key (checkpoints). */
void ps_table_row_meta(const ps_table *t, size_t i, uint32_t *last_step, uint32_t *count);
void ps_table_set_meta(ps_table *t, uint64_t key, uint32_t last_step, uint32_t count);
void ps_table_restore_counts(ps_table *t, uint64_t created, uint64_t evicted, uint64_t dropped);

typedef enum { PS_EVICT_LRU = 0, PS_EVICT_LFU = 1 } ps_evict_policy;

/* Evicts, over the n tables together (NULL entries skipped), every row last
 * used before step `older_than` (0: none), then until at most `keep` rows
 * are left: LRU, the least recently used rows (ties: fewest uses); LFU, the
 * least often used (ties: least recent); last ties by a hash of the key.
 * Deterministic: the rows chosen depend on the rows' contents, not their
 * positions.  Returns the number of rows evicted. */
size_t ps_tables_evict(ps_table *const *tabs, int n, size_t keep, uint32_t older_than, ps_evict_policy policy);

#endif
