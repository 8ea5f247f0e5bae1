/* worker/embed.c — see embed.h. */
#include "embed.h"

#include <stdlib.h>
#include <string.h>

#include "fn_error.h"
#include "hash.h"

int embed_init(embed_table *e, uint32_t table, int n_servers, int dim, int n_fields)
{
    memset(e, 0, sizeof *e);
    e->table = table;
    e->n_servers = n_servers;
    e->dim = dim;
    e->n_fields = n_fields;
    e->srv_off = calloc((size_t)n_servers + 1, sizeof *e->srv_off);
    return e->srv_off ? FN_OK : FN_ENOMEM;
}

void embed_free(embed_table *e)
{
    free(e->uniq); free(e->entry_u); free(e->rows); free(e->grads); free(e->srv_off);
    free(e->srv); free(e->srv_keys); free(e->scratch); free(e->sort_tmp);
    free(e->set_key); free(e->set_val); free(e->set_gen);
    memset(e, 0, sizeof *e);
}

static int grow(embed_table *e, size_t nf)
{
    if (nf > e->cap_entries) {
        size_t cap = e->cap_entries ? e->cap_entries : 4096;
        while (cap < nf) cap *= 2;
        uint32_t *eu = realloc(e->entry_u, cap * sizeof *eu);
        if (!eu) return FN_ENOMEM;
        e->entry_u = eu;
        e->cap_entries = cap;
        /* unique keys never outnumber entries: size those arrays alike */
        size_t d = (size_t)e->dim;
        free(e->uniq); free(e->rows); free(e->grads); free(e->srv); free(e->srv_keys); free(e->scratch); free(e->sort_tmp);
        e->uniq = malloc(cap * sizeof *e->uniq);
        e->rows = malloc(cap * d * sizeof(float));
        e->grads = malloc(cap * d * sizeof(float));
        e->srv = malloc(cap * sizeof *e->srv);
        e->srv_keys = malloc(cap * sizeof *e->srv_keys);
        e->scratch = malloc(cap * d * sizeof(float));
        e->sort_tmp = malloc(cap * sizeof *e->sort_tmp);
        e->cap_uniq = cap;
        /* set: power of two >= 2 * entries */
        free(e->set_key); free(e->set_val); free(e->set_gen);
        e->set_cap = 1;
        while (e->set_cap < 2 * cap) e->set_cap *= 2;
        e->set_key = malloc(e->set_cap * sizeof *e->set_key);
        e->set_val = malloc(e->set_cap * sizeof *e->set_val);
        e->set_gen = calloc(e->set_cap, sizeof *e->set_gen);
        e->gen = 0;
        if (!e->uniq || !e->rows || !e->grads || !e->srv || !e->srv_keys || !e->scratch || !e->sort_tmp || !e->set_key || !e->set_val || !e->set_gen) {
            /* claim no capacity, so that the next call allocates again
             * instead of writing through the NULL buffers */
            e->cap_entries = e->cap_uniq = 0;
            return FN_ENOMEM;
        }
    }
    return FN_OK;
}

/* Sorts a[0..n) by key: insertion sort for a few, else an LSD radix sort
 * on eight 8-bit digits through tmp, skipping digits every key shares.
 * Linear whatever the keys, and several times faster than qsort on a
 * batch's keys (this runs on the reading thread, beside the towers). */
static void sort_kp(embed_kp *a, embed_kp *tmp, size_t n)
{
    if (n < 64) {
        for (size_t i = 1; i < n; i++) {
            embed_kp x = a[i];
            size_t j = i;
            for (; j > 0 && a[j - 1].key > x.key; j--) a[j] = a[j - 1];
            a[j] = x;
        }
        return;
    }
    uint32_t count[8][256];
    memset(count, 0, sizeof count);
    for (size_t i = 0; i < n; i++) {
        uint64_t k = a[i].key;
        for (int p = 0; p < 8; p++) count[p][(k >> (8 * p)) & 0xFF]++;
    }
    embed_kp *src = a, *dst = tmp;
    for (int p = 0; p < 8; p++) {
        if (count[p][(a[0].key >> (8 * p)) & 0xFF] == n) continue; /* one digit for all: order unchanged */
        uint32_t sum = 0;
        for (int d = 0; d < 256; d++) {
            uint32_t c = count[p][d];
            count[p][d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++) dst[count[p][(src[i].key >> (8 * p)) & 0xFF]++] = src[i];
        embed_kp *t = src;
        src = dst;
        dst = t;
    }
    if (src != a) memcpy(a, src, n * sizeof *a);
}

int embed_prepare(embed_table *e, const fn_batch *b)
{
    if (grow(e, b->nf > 0 ? b->nf : 1)) return FN_ENOMEM;
    if (++e->gen == 0) { /* generation wrapped: clear once */
        memset(e->set_gen, 0, e->set_cap * sizeof *e->set_gen);
        e->gen = 1;
    }
    size_t mask = e->set_cap - 1, n = 0;
    for (size_t k = 0; k < b->nf; k++) {
        uint64_t key = batch_table_key(b->key[k], e->table);
        size_t h = (size_t)fn_mix64(key) & mask;
        for (;;) {
            if (e->set_gen[h] != e->gen) {
                e->set_gen[h] = e->gen;
                e->set_key[h] = key;
                e->set_val[h] = (uint32_t)n;
                e->uniq[n] = key;
                e->entry_u[k] = (uint32_t)n++;
                break;
            }
            if (e->set_key[h] == key) { e->entry_u[k] = e->set_val[h]; break; }
            h = (h + 1) & mask;
        }
    }
    e->n_uniq = n;
    /* counting sort by server, then sort each server's run by key */
    int S = e->n_servers;
    memset(e->srv_off, 0, sizeof(uint32_t) * ((size_t)S + 1));
    for (size_t u = 0; u < n; u++) e->srv_off[fn_key_server(e->uniq[u], (uint32_t)S) + 1]++;
    for (int s = 0; s < S; s++) e->srv_off[s + 1] += e->srv_off[s];
    uint32_t fill[1024];
    uint32_t *at = S <= 1024 ? fill : malloc(sizeof(uint32_t) * (size_t)S);
    if (!at) return FN_ENOMEM;
    memcpy(at, e->srv_off, sizeof(uint32_t) * (size_t)S);
    for (size_t u = 0; u < n; u++) {
        uint32_t s = fn_key_server(e->uniq[u], (uint32_t)S);
        e->srv[at[s]].key = e->uniq[u];
        e->srv[at[s]].pos = (uint32_t)u;
        at[s]++;
    }
    if (at != fill) free(at);
    for (int s = 0; s < S; s++) sort_kp(e->srv + e->srv_off[s], e->sort_tmp, e->srv_off[s + 1] - e->srv_off[s]);
    for (size_t j = 0; j < n; j++) e->srv_keys[j] = e->srv[j].key;
    return FN_OK;
}

void embed_pool(const embed_table *e, const fn_batch *b, float *x)
{
    const int D = e->dim, F = e->n_fields;
    memset(x, 0, sizeof(float) * (size_t)b->n * (size_t)F * (size_t)D);
    for (int i = 0; i < b->n; i++) {
        float *xi = x + (size_t)i * F * D;
        for (size_t k = b->off[i]; k < b->off[i + 1]; k++) {
            float *dst = xi + (size_t)b->field[k] * D;
            const float *row = e->rows + (size_t)e->entry_u[k] * D;
            float v = b->val[k];
            for (int d = 0; d < D; d++) dst[d] += v * row[d];
        }
    }
}

void embed_backward(embed_table *e, const fn_batch *b, const float *dx, float scale)
{
    const int D = e->dim, F = e->n_fields;
    memset(e->grads, 0, sizeof(float) * e->n_uniq * (size_t)D);
    for (int i = 0; i < b->n; i++) {
        const float *di = dx + (size_t)i * F * D;
        for (size_t k = b->off[i]; k < b->off[i + 1]; k++) {
            const float *src = di + (size_t)b->field[k] * D;
            float *g = e->grads + (size_t)e->entry_u[k] * D;
            float v = b->val[k] * scale;
            for (int d = 0; d < D; d++) g[d] += v * src[d];
        }
    }
}
