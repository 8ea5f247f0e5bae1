/* worker/embed.h — the sparse side of one batch for one embedding table.
 *
 * embed_prepare() de-duplicates the batch's keys (first-seen order), and
 * groups them by owning server, sorted within each server — the order the
 * wire format wants.  After the pull has filled `rows`, embed_pool() builds
 * the towers' input x[B, F*D] (value-weighted sum of a field's rows);
 * embed_backward() turns d(loss)/dx back into one summed gradient per
 * unique key, ready to push.  All buffers are reused across batches. */
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
} embed_table;

int embed_init(embed_table *e, uint32_t table, int n_servers, int dim, int n_fields);
void embed_free(embed_table *e);

/* FN_OK or FN_ENOMEM. */
int embed_prepare(embed_table *e, const fn_batch *b);

/* x[B, F*D] = Σ_entries val * rows[entry] at the entry's field. */
void embed_pool(const embed_table *e, const fn_batch *b, float *x);

/* grads[u] = Σ over entries of key u of val * dx[example, field]. */
void embed_backward(embed_table *e, const fn_batch *b, const float *dx, float scale);

#endif
