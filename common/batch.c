/* common/batch.c — see batch.h. */
#include "batch.h"

#include <stdlib.h>
#include <string.h>

#include "fn_error.h"

int batch_init(fn_batch *b, int cap, size_t fcap)
{
    memset(b, 0, sizeof *b);
    if (cap < 1) cap = 1;
    if (fcap < 16) fcap = 16;
    b->cap = cap;
    b->sample_id = malloc(sizeof(uint64_t) * (size_t)cap);
    b->click = malloc(sizeof(float) * (size_t)cap);
    b->buy = malloc(sizeof(float) * (size_t)cap);
    b->off = calloc((size_t)cap + 1, sizeof(size_t));
    b->set = malloc(sizeof(uint32_t) * (size_t)cap);
    if (!b->sample_id || !b->click || !b->buy || !b->off || !b->set) { batch_free(b); return FN_ENOMEM; }
    return batch_reserve_features(b, fcap);
}

void batch_free(fn_batch *b)
{
    free(b->sample_id); free(b->click); free(b->buy); free(b->off); free(b->set);
    free(b->field); free(b->key); free(b->val);
    memset(b, 0, sizeof *b);
}

void batch_clear(fn_batch *b)
{
    b->n = 0;
    b->nf = 0;
    b->off[0] = 0;
    b->ct = NULL;
}

int batch_reserve_features(fn_batch *b, size_t more)
{
    if (b->nf + more <= b->fcap && b->field) return FN_OK;
    size_t cap = b->fcap ? b->fcap : 16;
    while (cap < b->nf + more) cap *= 2;
    uint16_t *f = realloc(b->field, cap * sizeof *f);
    if (!f) return FN_ENOMEM;
    b->field = f;
    uint64_t *k = realloc(b->key, cap * sizeof *k);
    if (!k) return FN_ENOMEM;
    b->key = k;
    float *v = realloc(b->val, cap * sizeof *v);
    if (!v) return FN_ENOMEM;
    b->val = v;
    b->fcap = cap;
    return FN_OK;
}
