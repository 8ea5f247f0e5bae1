/* worker/embed.h — the sparse side of one batch for one embedding table.
 *
 * embed_prepare() de-duplicates the batch's keys (first-seen order), and
 * groups them by owning server, sorted within each server — the order the
 * wire format wants.  After the pull has filled `rows`, embed_pool() builds
 * the towers' input x[B, F*D] (value-weighted sum of a field's rows);
 * embed_backward() turns d(loss)/dx back into one summed gradient per
 * unique key, ready to push.  All buffers are reused across batches.
 *
 * Common features (fn_batch.set, common/ctable.h) are computed once per
 * batch: embed_prepare lists the batch's distinct sets (its groups) and
 * the examples of each; embed_pool pools each group once (gx[g]) and adds
 * it to each of its examples' own pooled features; embed_backward sums
 * dx over a group's examples first and scatters that sum to the group's
 * keys once.  The result equals pooling every example's copy of its set,
 * up to float rounding (tests/unit/test_embed.c).  Both split their work
 * among the threads of a pool (each thread's gradients in a block of its
 * own, summed after), so the sum order depends on the thread count only. */
#ifndef FN_EMBED_H
#define FN_EMBED_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"

typedef struct {
    uint64_t key;
    uint32_t pos;   /* index into uniq/rows/grads */
    uint32_t pad;
} embed_kp;

typedef struct {
    int n_servers, dim, n_fields;
    uint32_t table;
    size_t n_uniq, cap_uniq, cap_entries;
    uint64_t *uniq;       /* [n_uniq] keys, first-seen order */
    uint32_t *entry_u;    /* [nf] unique index of each feature entry */
    float *rows;          /* [n_uniq, dim] pulled weights */
    float *grads;         /* [n_uniq, dim] summed gradients */
    uint32_t *srv_off;    /* [n_servers+1] */
    embed_kp *srv;        /* [n_uniq] (key, pos) grouped by server, sorted by key */
    uint64_t *srv_keys;   /* [n_uniq] the keys of srv, contiguous for encoding */
    float *scratch;       /* [n_uniq, dim] rows in server order, for the wire */
    embed_kp *sort_tmp;   /* [n_uniq] the radix sort's other half */
    /* de-duplication set: open addressing, cleared by generation */
    uint64_t *set_key;
    uint32_t *set_val, *set_gen;
    size_t set_cap;
    uint32_t gen;
    /* the batch's distinct common-feature sets ("groups") */
    int ng, cap_ex, cap_g;
    int32_t *grp;         /* [B] group of each example, -1 for none */
    uint32_t *gset;       /* [ng] the group's set in b->ct */
    size_t *goff;         /* [ng+1] group g's entries in gentry_u: [goff[g], goff[g+1]) */
    uint32_t *mem_off;    /* [ng+1] group g's examples: mem[mem_off[g] .. mem_off[g+1]) */
    uint32_t *mem;        /* [B] */
    uint32_t *gentry_u;   /* unique index of each group entry (capacity cap_entries) */
    float *gx;            /* [ng, F*D] pooled groups, then their summed dx */
    uint32_t *gs_key, *gs_val, *gs_gen;  /* set -> group, open addressing by generation */
    size_t gs_cap;
    uint64_t *kmap;       /* [kmap_n] kid of kmap_ct -> (generation << 32 | unique index) */
    size_t kmap_n;
    const void *kmap_ct;
    float *tgrads;        /* [(threads-1), cap_uniq, D] the other threads' gradient blocks */
    int tgrads_threads;
    size_t tgrads_cap;
} embed_table;

int embed_init(embed_table *e, uint32_t table, int n_servers, int dim, int n_fields);
void embed_free(embed_table *e);

/* FN_OK or FN_ENOMEM. */
int embed_prepare(embed_table *e, const fn_batch *b);

struct par;

/* x[B, F*D] = Σ_entries val * rows[entry] at the entry's field (an
 * example's own entries and its set's).  pool: threads (NULL: this one). */
void embed_pool(embed_table *e, const fn_batch *b, float *x, struct par *pool);

/* grads[u] = Σ over entries of key u of val * scale * dx[example, field].
 * Returns FN_OK or FN_ENOMEM (the threads' gradient blocks). */
int embed_backward(embed_table *e, const fn_batch *b, const float *dx, float scale, struct par *pool);

/* Entries (own and common) of the batch: what the towers' input sums. */
size_t embed_entries(const embed_table *e, const fn_batch *b);

#endif
