/* worker/embed.c — see embed.h. */
#include "embed.h"

#include <stdlib.h>
#include <string.h>

#include "ctable.h"
#include "fn_error.h"
#include "hash.h"
#include "par.h"

#define KMAP_MAX (4u << 20) /* dictionary keys a kid map covers (8 bytes each: at most 32 MB a table) */

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
    free(e->grp); free(e->gset); free(e->goff); free(e->mem_off); free(e->mem); free(e->gentry_u); free(e->gx);
    free(e->gs_key); free(e->gs_val); free(e->gs_gen); free(e->tgrads); free(e->kmap);
    memset(e, 0, sizeof *e);
}

/* Room for nf entries' unique indices (own and common). */
static int grow_entries(embed_table *e, size_t nf)
{
    if (nf <= e->cap_entries) return FN_OK;
    size_t cap = e->cap_entries ? e->cap_entries : 4096;
    while (cap < nf) cap *= 2;
    uint32_t *eu = realloc(e->entry_u, cap * sizeof *eu);
    if (!eu) return FN_ENOMEM;
    e->entry_u = eu;
    uint32_t *gu = realloc(e->gentry_u, cap * sizeof *gu);
    if (!gu) return FN_ENOMEM;
    e->gentry_u = gu;
    e->cap_entries = cap;
    return FN_OK;
}

/* The key set: a power of two >= 2 * (unique keys it may hold), rebuilt
 * from uniq[0..n) when it grows, so its size follows the batch's unique
 * keys, not its entries (a shaped batch has ~10 entries per unique key). */
static int grow_set(embed_table *e, size_t want, size_t n)
{
    size_t cap = e->set_cap ? e->set_cap : 8192;
    while (cap < 2 * want) cap *= 2;
    if (cap == e->set_cap) return FN_OK;
    free(e->set_key); free(e->set_val); free(e->set_gen);
    e->set_key = malloc(cap * sizeof *e->set_key);
    e->set_val = malloc(cap * sizeof *e->set_val);
    e->set_gen = calloc(cap, sizeof *e->set_gen);
    if (!e->set_key || !e->set_val || !e->set_gen) {
        free(e->set_key); free(e->set_val); free(e->set_gen);
        e->set_key = NULL; e->set_val = NULL; e->set_gen = NULL;
        e->set_cap = 0;
        return FN_ENOMEM;
    }
    e->set_cap = cap;
    size_t mask = cap - 1;
    for (size_t u = 0; u < n; u++) { /* this batch's keys so far, with their stamps */
        size_t h = (size_t)fn_mix64(e->uniq[u]) & mask;
        while (e->set_gen[h] == e->gen) h = (h + 1) & mask;
        e->set_gen[h] = e->gen;
        e->set_key[h] = e->uniq[u];
        e->set_val[h] = (uint32_t)u;
    }
    return FN_OK;
}

/* Room for n unique keys' rows, gradients and server order. */
static int grow_uniq(embed_table *e, size_t n)
{
    if (n <= e->cap_uniq && e->rows) return FN_OK;
    size_t cap = e->cap_uniq ? e->cap_uniq : 4096, d = (size_t)e->dim;
    while (cap < n) cap *= 2;
    free(e->rows); free(e->grads); free(e->srv); free(e->srv_keys); free(e->scratch); free(e->sort_tmp);
    e->rows = malloc(cap * d * sizeof(float));
    e->grads = malloc(cap * d * sizeof(float));
    e->srv = malloc(cap * sizeof *e->srv);
    e->srv_keys = malloc(cap * sizeof *e->srv_keys);
    e->scratch = malloc(cap * d * sizeof(float));
    e->sort_tmp = malloc(cap * sizeof *e->sort_tmp);
    uint64_t *u = realloc(e->uniq, cap * sizeof *u);
    if (u) e->uniq = u;
    if (!u || !e->rows || !e->grads || !e->srv || !e->srv_keys || !e->scratch || !e->sort_tmp) {
        /* claim no capacity, so that the next call allocates again
         * instead of writing through the NULL buffers */
        e->cap_uniq = 0;
        return FN_ENOMEM;
    }
    e->cap_uniq = cap;
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

/* Room for B examples and their groups. */
static int grow_examples(embed_table *e, int B, int F, int D)
{
    if (B <= e->cap_ex) return FN_OK;
    int cap = e->cap_ex ? e->cap_ex : 256;
    while (cap < B) cap *= 2;
    free(e->grp); free(e->gset); free(e->goff); free(e->mem_off); free(e->mem); free(e->gx);
    free(e->gs_key); free(e->gs_val); free(e->gs_gen);
    e->grp = malloc((size_t)cap * sizeof *e->grp);
    e->gset = malloc((size_t)cap * sizeof *e->gset);
    e->goff = malloc(((size_t)cap + 1) * sizeof *e->goff);
    e->mem_off = malloc(((size_t)cap + 1) * sizeof *e->mem_off);
    e->mem = malloc((size_t)cap * sizeof *e->mem);
    e->gx = malloc((size_t)cap * (size_t)F * (size_t)D * sizeof *e->gx);
    e->gs_cap = 1;
    while (e->gs_cap < 2 * (size_t)cap) e->gs_cap *= 2;
    e->gs_key = malloc(e->gs_cap * sizeof *e->gs_key);
    e->gs_val = malloc(e->gs_cap * sizeof *e->gs_val);
    e->gs_gen = calloc(e->gs_cap, sizeof *e->gs_gen);
    if (!e->grp || !e->gset || !e->goff || !e->mem_off || !e->mem || !e->gx || !e->gs_key || !e->gs_val || !e->gs_gen) {
        e->cap_ex = 0;
        return FN_ENOMEM;
    }
    e->cap_ex = cap;
    return FN_OK;
}

/* The batch's distinct sets, in first-seen order, and each example's. */
static void find_groups(embed_table *e, const fn_batch *b)
{
    e->ng = 0;
    if (!b->ct) {
        for (int i = 0; i < b->n; i++) e->grp[i] = -1;
        e->goff[0] = 0;
        e->mem_off[0] = 0;
        return;
    }
    const fn_ctable *ct = b->ct;
    size_t mask = e->gs_cap - 1;
    uint32_t gen = e->gen; /* bumped by the caller for this batch */
    int prev_set = -1, prev_g = -1;
    for (int i = 0; i < b->n; i++) {
        uint32_t s = b->set[i];
        if (s == CTABLE_NONE || s >= ct->n_sets) { e->grp[i] = -1; continue; }
        if ((int)s == prev_set) { e->grp[i] = prev_g; continue; } /* runs of one request */
        size_t h = (size_t)fn_mix64(s) & mask;
        for (;;) {
            if (e->gs_gen[h] != gen) {
                e->gs_gen[h] = gen;
                e->gs_key[h] = s;
                e->gs_val[h] = (uint32_t)e->ng;
                e->gset[e->ng] = s;
                e->grp[i] = e->ng++;
                break;
            }
            if (e->gs_key[h] == s) { e->grp[i] = (int32_t)e->gs_val[h]; break; }
            h = (h + 1) & mask;
        }
        prev_set = (int)s;
        prev_g = e->grp[i];
    }
    /* entries of each group, examples of each group (counting sort) */
    e->goff[0] = 0;
    for (int g = 0; g < e->ng; g++) e->goff[g + 1] = e->goff[g] + (size_t)(ct->off[e->gset[g] + 1] - ct->off[e->gset[g]]);
    memset(e->mem_off, 0, ((size_t)e->ng + 1) * sizeof *e->mem_off);
    for (int i = 0; i < b->n; i++)
        if (e->grp[i] >= 0) e->mem_off[e->grp[i] + 1]++;
    for (int g = 0; g < e->ng; g++) e->mem_off[g + 1] += e->mem_off[g];
    for (int i = 0; i < b->n; i++) /* each start becomes its end */
        if (e->grp[i] >= 0) e->mem[e->mem_off[e->grp[i]]++] = (uint32_t)i;
    for (int g = e->ng; g > 0; g--) e->mem_off[g] = e->mem_off[g - 1];
    e->mem_off[0] = 0;
}

size_t embed_entries(const embed_table *e, const fn_batch *b)
{
    size_t n = b->nf;
    if (b->ct)
        for (int i = 0; i < b->n; i++)
            if (e->grp[i] >= 0) n += e->goff[e->grp[i] + 1] - e->goff[e->grp[i]];
    return n;
}

/* The unique index of a key (table-0 key0), added if new; UINT32_MAX when
 * out of memory. */
static inline uint32_t uniq_of(embed_table *e, uint64_t key0, size_t *n)
{
    uint64_t key = batch_table_key(key0, e->table);
    if (2 * (*n + 1) > e->set_cap && grow_set(e, *n + 1, *n)) return UINT32_MAX;
    size_t mask = e->set_cap - 1, h = (size_t)fn_mix64(key) & mask;
    for (;;) {
        if (e->set_gen[h] != e->gen) {
            if (*n == e->cap_uniq && grow_uniq(e, *n + 1)) return UINT32_MAX;
            e->set_gen[h] = e->gen;
            e->set_key[h] = key;
            e->set_val[h] = (uint32_t)*n;
            e->uniq[*n] = key;
            return (uint32_t)(*n)++;
        }
        if (e->set_key[h] == key) return e->set_val[h];
        h = (h + 1) & mask;
    }
}

int embed_prepare(embed_table *e, const fn_batch *b)
{
    if (grow_examples(e, b->n > 0 ? b->n : 1, e->n_fields, e->dim)) return FN_ENOMEM;
    if (++e->gen == 0) { /* generation wrapped: clear once */
        if (e->set_gen) memset(e->set_gen, 0, e->set_cap * sizeof *e->set_gen);
        memset(e->gs_gen, 0, e->gs_cap * sizeof *e->gs_gen);
        if (e->kmap) memset(e->kmap, 0, e->kmap_n * sizeof *e->kmap);
        e->gen = 1;
    }
    find_groups(e, b);
    size_t ng_entries = e->goff[e->ng];
    if (grow_entries(e, b->nf + ng_entries > 0 ? b->nf + ng_entries : 1) || grow_uniq(e, 1) || grow_set(e, 1, 0)) return FN_ENOMEM;
    size_t n = 0;
    uint32_t bad = 0;
    for (size_t k = 0; k < b->nf; k++) bad |= (e->entry_u[k] = uniq_of(e, b->key[k], &n)) == UINT32_MAX;
    if (e->ng) {
        const fn_ctable *ct = b->ct;
        /* a set's entries name dictionary keys (kid): a direct map from kid
         * to unique index stamped with the batch's generation looks up each
         * distinct kid's key once, not every entry (~10x fewer on shaped
         * batches); past KMAP_MAX keys the hash alone does it */
        if (ct->n_keys <= KMAP_MAX && (e->kmap_ct != ct || !e->kmap)) {
            free(e->kmap);
            e->kmap = calloc(ct->n_keys ? ct->n_keys : 1, sizeof *e->kmap);
            e->kmap_n = e->kmap ? ct->n_keys : 0;
            e->kmap_ct = e->kmap ? ct : NULL;
        }
        uint64_t *km = e->kmap_ct == ct ? e->kmap : NULL, stamp = (uint64_t)e->gen << 32;
        for (int g = 0; g < e->ng; g++) {
            uint64_t a = ct->off[e->gset[g]], z = ct->off[e->gset[g] + 1];
            uint32_t *gu = e->gentry_u + e->goff[g];
            const ctable_ent *ent = ct->ent + a;
            if (km) {
                for (uint64_t k = 0; k < z - a; k++) {
                    uint32_t kid = ent[k].kid;
                    uint64_t v = km[kid];
                    if ((v & 0xFFFFFFFF00000000ull) == stamp) { gu[k] = (uint32_t)v; continue; }
                    uint32_t u = uniq_of(e, ct->keys[kid], &n);
                    bad |= u == UINT32_MAX;
                    km[kid] = stamp | u;
                    gu[k] = u;
                }
            } else {
                for (uint64_t k = 0; k < z - a; k++) bad |= (gu[k] = uniq_of(e, ct->keys[ent[k].kid], &n)) == UINT32_MAX;
            }
        }
    }
    if (bad || grow_uniq(e, n)) return FN_ENOMEM;
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

static inline void axpy(float *restrict dst, const float *restrict src, float v, int D)
{
    if (D == 16) {
        for (int d = 0; d < 16; d++) dst[d] += v * src[d];
    } else {
        for (int d = 0; d < D; d++) dst[d] += v * src[d];
    }
}

typedef struct {
    embed_table *e;
    const fn_batch *b;
    float *x;
    const float *dx;
    float scale;
} pool_job;

/* gx[g] = the group's set pooled, for this thread's groups */
static void pool_groups(void *arg, int j, int nt)
{
    pool_job *q = arg;
    embed_table *e = q->e;
    const fn_ctable *ct = q->b->ct;
    const int D = e->dim, F = e->n_fields;
    int lo, hi;
    par_rows(e->ng, j, nt, &lo, &hi);
    for (int g = lo; g < hi; g++) {
        float *xg = e->gx + (size_t)g * F * D;
        memset(xg, 0, sizeof(float) * (size_t)F * (size_t)D);
        uint64_t a = ct->off[e->gset[g]], z = ct->off[e->gset[g] + 1];
        const uint32_t *gu = e->gentry_u + e->goff[g];
        const uint64_t len = z - a;
        const uint8_t *fl = ct->field + a;
        const ctable_ent *en = ct->ent + a;
        for (uint64_t k = 0; k < len; k++) {
            axpy(xg + (size_t)fl[k] * D, e->rows + (size_t)gu[k] * D, en[k].val, D);
        }
    }
}

/* x[i] = its group's gx + its own entries, for this thread's examples */
static void pool_examples(void *arg, int j, int nt)
{
    pool_job *q = arg;
    embed_table *e = q->e;
    const fn_batch *b = q->b;
    const int D = e->dim, F = e->n_fields;
    const size_t W = (size_t)F * (size_t)D;
    int lo, hi;
    par_rows(b->n, j, nt, &lo, &hi);
    for (int i = lo; i < hi; i++) {
        float *xi = q->x + (size_t)i * W;
        if (e->grp[i] >= 0) memcpy(xi, e->gx + (size_t)e->grp[i] * W, sizeof(float) * W);
        else memset(xi, 0, sizeof(float) * W);
        for (size_t k = b->off[i]; k < b->off[i + 1]; k++)
            axpy(xi + (size_t)b->field[k] * D, e->rows + (size_t)e->entry_u[k] * D, b->val[k], D);
    }
}

void embed_pool(embed_table *e, const fn_batch *b, float *x, par *pool)
{
    pool_job q = {e, b, x, NULL, 1.0f};
    if (e->ng) par_run(e->ng > 1 ? pool : NULL, pool_groups, &q);
    par_run(b->n > 1 ? pool : NULL, pool_examples, &q);
}

/* gx[g] = Σ dx over the group's examples, for this thread's groups */
static void sum_groups(void *arg, int j, int nt)
{
    pool_job *q = arg;
    embed_table *e = q->e;
    const size_t W = (size_t)e->n_fields * (size_t)e->dim;
    int lo, hi;
    par_rows(e->ng, j, nt, &lo, &hi);
    for (int g = lo; g < hi; g++) {
        float *dg = e->gx + (size_t)g * W;
        uint32_t m0 = e->mem_off[g], m1 = e->mem_off[g + 1];
        memcpy(dg, q->dx + (size_t)e->mem[m0] * W, sizeof(float) * W);
        for (uint32_t m = m0 + 1; m < m1; m++) {
            const float *di = q->dx + (size_t)e->mem[m] * W;
            for (size_t c = 0; c < W; c++) dg[c] += di[c];
        }
    }
}

/* this thread's share of the entries, scattered into its gradient block:
 * thread j takes examples and groups [lo, hi) of each */
static void scatter(void *arg, int j, int nt)
{
    pool_job *q = arg;
    embed_table *e = q->e;
    const fn_batch *b = q->b;
    const int D = e->dim, F = e->n_fields;
    const size_t W = (size_t)F * (size_t)D;
    float *G = j ? e->tgrads + (size_t)(j - 1) * e->n_uniq * (size_t)D : e->grads;
    memset(G, 0, sizeof(float) * e->n_uniq * (size_t)D);
    const float sc = q->scale;
    int lo, hi;
    par_rows(b->n, j, nt, &lo, &hi);
    for (int i = lo; i < hi; i++) {
        const float *di = q->dx + (size_t)i * W;
        for (size_t k = b->off[i]; k < b->off[i + 1]; k++)
            axpy(G + (size_t)e->entry_u[k] * D, di + (size_t)b->field[k] * D, b->val[k] * sc, D);
    }
    if (!e->ng) return;
    const fn_ctable *ct = b->ct;
    par_rows(e->ng, j, nt, &lo, &hi);
    for (int g = lo; g < hi; g++) {
        const float *dg = e->gx + (size_t)g * W;
        uint64_t a = ct->off[e->gset[g]], z = ct->off[e->gset[g] + 1];
        const uint32_t *gu = e->gentry_u + e->goff[g];
        const uint64_t len = z - a;
        const uint8_t *fl = ct->field + a;
        const ctable_ent *en = ct->ent + a;
        for (uint64_t k = 0; k < len; k++) {
            axpy(G + (size_t)gu[k] * D, dg + (size_t)fl[k] * D, en[k].val * sc, D);
        }
    }
}

/* grads += the other threads' blocks, for this thread's range of keys */
static void reduce(void *arg, int j, int nt)
{
    pool_job *q = arg;
    embed_table *e = q->e;
    const size_t D = (size_t)e->dim, n = e->n_uniq * D;
    size_t lo = n * (size_t)j / (size_t)nt, hi = n * (size_t)(j + 1) / (size_t)nt;
    for (int t = 0; t < e->tgrads_threads; t++) {
        const float *src = e->tgrads + (size_t)t * n;
        for (size_t c = lo; c < hi; c++) e->grads[c] += src[c];
    }
}

int embed_backward(embed_table *e, const fn_batch *b, const float *dx, float scale, par *pool)
{
    pool_job q = {e, b, NULL, dx, scale};
    int nt = par_threads(pool);
    /* a thread's share must be worth waking it for */
    if (embed_entries(e, b) < 16384 || b->n < 2) { pool = NULL; nt = 1; }
    if (nt > 1) {
        size_t need = (size_t)(nt - 1) * e->n_uniq * (size_t)e->dim;
        if (need > e->tgrads_cap) {
            float *t = realloc(e->tgrads, need * sizeof *t);
            if (!t) return FN_ENOMEM;
            e->tgrads = t;
            e->tgrads_cap = need;
        }
    }
    e->tgrads_threads = nt - 1;
    if (e->ng) par_run(e->ng > 1 ? pool : NULL, sum_groups, &q);
    par_run(pool, scatter, &q);
    if (nt > 1) par_run(pool, reduce, &q);
    return FN_OK;
}
