/* common/batch.h — a batch of parsed impressions, as the readers produce it.
 *
 * Features are stored CSR-style: example i owns entries
 * [off[i], off[i+1]) of field/key/val.  Its request's common features are
 * not copied in: set[i] names a set of the common-feature table ct
 * (common/ctable.h), or is CTABLE_NONE, and the example's features are its
 * own entries and that set's.  A key is fn_key(0, field, id): the
 * feature's key in embedding table 0; the worker derives other tables' keys
 * from it with batch_table_key().  Capacity grows to the largest batch seen
 * and is then reused, so steady-state reading does not allocate. */
#ifndef FN_BATCH_H
#define FN_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "hash.h"

struct fn_ctable_s;

typedef struct {
    int n;              /* examples */
    int cap;            /* example capacity */
    size_t nf;          /* feature entries */
    size_t fcap;        /* feature capacity */
    uint64_t *sample_id;
    float *click, *buy;
    size_t *off;        /* n+1 */
    uint16_t *field;
    uint64_t *key;
    float *val;
    uint32_t *set;      /* [n] common-feature set of example i, or CTABLE_NONE (UINT32_MAX) */
    const struct fn_ctable_s *ct;  /* the sets' table (NULL: no example has one) */
} fn_batch;

int batch_init(fn_batch *b, int cap, size_t fcap);
void batch_free(fn_batch *b);
void batch_clear(fn_batch *b);
/* Makes room for `more` feature entries; FN_OK or FN_ENOMEM. */
int batch_reserve_features(fn_batch *b, size_t more);

/* The key of a table-0 key in embedding table t (t = 0 returns it as is). */
static inline uint64_t batch_table_key(uint64_t key0, uint32_t t)
{
    return t ? fn_mix64(key0 + 0x9E3779B97F4A7C15ull * t) : key0;
}

#endif
