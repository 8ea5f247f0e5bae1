/* tests/unit/test_embed.c — worker/embed.c against brute force.
 *
 * Random batches (several examples, keys repeated within and across
 * examples and across fields, values != 1) go through embed_prepare for
 * n_servers in {1, 2, 3, 7, 1100} and embedding tables 0 and 1.  Checked:
 * uniq is duplicate-free, in first-seen order, and covers every entry's key
 * (batch_table_key for table 1); entry_u maps each entry to its key;
 * srv_off partitions [0, n_uniq); each server's run holds only its keys
 * (fn_key_server), strictly increasing, with pos pointing at the same key
 * in uniq and every unique key exactly once.  embed_pool and embed_backward
 * are compared with plain loops over examples, entries and dimensions.  One
 * embed_table serves a sequence of batches of growing and shrinking sizes
 * (buffer growth past the first capacity, reuse of the de-duplication set
 * by generation) and the generation counter is driven through its wrap.
 *
 * Common-feature sets (fn_batch.set): batches whose examples name sets of
 * a hand-made table — scattered, in runs of one request, some with none,
 * empty sets, keys shared between sets and own features — are pooled and
 * back-propagated the grouped way on pools of 1, 2 and 3 threads and
 * compared with the per-impression path on the same batch with each set
 * copied in (ctable_flatten): the same input x and the same gradient per
 * key, up to float rounding. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "ctable.h"
#include "par.h"
#include "embed.h"
#include "fn_error.h"
#include "hash.h"

#include "check.h"

/* Fills b with n examples and nf entries drawn from a pool of keys (every
 * entry its own key when `unique`).  Pools of successive batches overlap,
 * as real batches share features: a key left over in the de-duplication set
 * from an earlier batch must never be taken for the current one. */
static void random_batch(fn_batch *b, fn_rng *rng, int n, size_t nf, int F, int unique)
{
    size_t pool_n = unique ? nf + 1 : nf / 3 + 1;
    uint64_t *pool = malloc(pool_n * sizeof *pool);
    uint64_t base = fn_rng_below(rng, 4000);
    for (size_t i = 0; i < pool_n; i++) pool[i] = fn_mix64(base + i);
    if (pool_n > 2) pool[1] = pool[0] + 1; /* neighbours in key order */
    batch_clear(b);
    if (n > b->cap) { printf("batch cap too small\n"); exit(1); }
    for (int i = 0; i < n; i++) {
        /* entries spread unevenly: some examples empty */
        size_t want = n ? (nf * (size_t)(i + 1)) / (size_t)n - (nf * (size_t)i) / (size_t)n : 0;
        if (batch_reserve_features(b, want)) { printf("oom\n"); exit(1); }
        for (size_t k = 0; k < want; k++) {
            b->field[b->nf] = (uint16_t)fn_rng_below(rng, (uint64_t)F);
            b->key[b->nf] = unique ? pool[b->nf] : pool[fn_rng_below(rng, pool_n)];
            /* values != 1, some negative, some exactly representable */
            b->val[b->nf] = (float)((double)fn_rng_below(rng, 17) * 0.25 - 2.0);
            if (b->val[b->nf] == 1.0f) b->val[b->nf] = 1.5f;
            b->nf++;
        }
        b->sample_id[i] = (uint64_t)i;
        b->click[i] = b->buy[i] = 0;
        b->n++;
        b->off[b->n] = b->nf;
    }
    free(pool);
}

typedef struct { uint64_t key; uint32_t u; } ku;
static int ku_cmp(const void *a, const void *b)
{
    uint64_t x = ((const ku *)a)->key, y = ((const ku *)b)->key;
    return x < y ? -1 : x > y;
}

/* The unique index of each entry, found by key (independently of entry_u);
 * checks the de-duplication and the server grouping on the way.  Returns
 * ref_u[nf] (caller frees) or NULL if the structure is too broken to go on. */
static uint32_t *check_prepare(const char *what, const embed_table *e, const fn_batch *b)
{
    size_t n = e->n_uniq;
    CHECK(n <= b->nf, "%s: %zu unique keys for %zu entries", what, n, b->nf);
    if (n > b->nf) return NULL;
    ku *sorted = malloc((n ? n : 1) * sizeof *sorted);
    for (size_t u = 0; u < n; u++) sorted[u] = (ku){e->uniq[u], (uint32_t)u};
    qsort(sorted, n, sizeof *sorted, ku_cmp);
    int dup = 0;
    for (size_t u = 1; u < n; u++) dup += sorted[u].key == sorted[u - 1].key;
    CHECK(dup == 0, "%s: %d duplicate keys in uniq", what, dup);

    /* every entry's key is in uniq, entry_u agrees, first-seen order */
    uint32_t *ref_u = malloc((b->nf ? b->nf : 1) * sizeof *ref_u);
    size_t next_new = 0;
    int bad_cover = 0, bad_map = 0, bad_order = 0;
    unsigned char *used = calloc(n ? n : 1, 1);
    for (size_t k = 0; k < b->nf; k++) {
        ku probe = {batch_table_key(b->key[k], e->table), 0};
        ku *hit = bsearch(&probe, sorted, n, sizeof *sorted, ku_cmp);
        if (!hit) { bad_cover++; ref_u[k] = 0; continue; }
        ref_u[k] = hit->u;
        used[hit->u] = 1;
        bad_map += e->entry_u[k] != hit->u;
        if (hit->u == next_new) next_new++;
        else bad_order += hit->u > next_new;
    }
    CHECK(bad_cover == 0, "%s: %d entries whose key is not in uniq", what, bad_cover);
    CHECK(bad_map == 0, "%s: %d entries with a wrong entry_u", what, bad_map);
    CHECK(bad_order == 0 && next_new == n, "%s: uniq not in first-seen order (%d, %zu of %zu)", what, bad_order, next_new, n);
    size_t unused = 0;
    for (size_t u = 0; u < n; u++) unused += !used[u];
    CHECK(unused == 0, "%s: %zu keys in uniq that no entry has", what, unused);
    if (b->nf) {
        /* the table's keys: table 1 must differ from table 0 */
        if (e->table) CHECK(e->uniq[0] != b->key[0], "%s: table 1 used the table-0 key", what);
        else CHECK(e->uniq[0] == b->key[0], "%s: table 0 key changed", what);
    }

    /* servers */
    uint32_t S = (uint32_t)e->n_servers;
    CHECK(e->srv_off[0] == 0 && e->srv_off[S] == n, "%s: srv_off spans [%u, %u), want [0, %zu)", what, e->srv_off[0], e->srv_off[S], n);
    memset(used, 0, n ? n : 1);
    int bad_srv = 0, bad_sort = 0, bad_pos = 0, bad_keys = 0, bad_mono = 0;
    for (uint32_t s = 0; s < S; s++) {
        if (e->srv_off[s + 1] < e->srv_off[s] || e->srv_off[s + 1] > n) { bad_mono++; continue; }
        for (uint32_t j = e->srv_off[s]; j < e->srv_off[s + 1]; j++) {
            const embed_kp *kp = &e->srv[j];
            bad_srv += fn_key_server(kp->key, S) != s;
            if (j > e->srv_off[s]) bad_sort += !(e->srv[j - 1].key < kp->key);
            if (kp->pos >= n || e->uniq[kp->pos] != kp->key || used[kp->pos]) bad_pos++;
            else used[kp->pos] = 1;
            bad_keys += e->srv_keys[j] != kp->key;
        }
    }
    CHECK(bad_mono == 0, "%s: srv_off not monotone (%d)", what, bad_mono);
    CHECK(bad_srv == 0, "%s: %d keys in another server's run", what, bad_srv);
    CHECK(bad_sort == 0, "%s: %d out-of-order keys in server runs", what, bad_sort);
    CHECK(bad_pos == 0, "%s: %d wrong or repeated pos", what, bad_pos);
    CHECK(bad_keys == 0, "%s: %d srv_keys differ from srv", what, bad_keys);
    free(used);
    free(sorted);
    return ref_u;
}

static int close_to(float a, double b) { return fabs((double)a - b) <= 1e-5 * (1.0 + fabs(b)); }

static void check_pool_backward(const char *what, embed_table *e, const fn_batch *b, const uint32_t *ref_u, fn_rng *rng)
{
    const int D = e->dim, F = e->n_fields, B = b->n;
    size_t n = e->n_uniq, xs = (size_t)B * (size_t)F * (size_t)D;
    /* known rows: a function of the key, so they cannot be confused */
    for (size_t u = 0; u < n; u++)
        for (int d = 0; d < D; d++) e->rows[u * (size_t)D + (size_t)d] = (float)((int)(fn_mix64(e->uniq[u] + (uint64_t)d) & 0xFFFF) - 32768) / 4096.0f;
    float *x = malloc((xs ? xs : 1) * sizeof *x);
    double *xr = calloc(xs ? xs : 1, sizeof *xr);
    for (size_t i = 0; i < xs; i++) x[i] = NAN; /* must be overwritten */
    embed_pool(e, b, x, NULL);
    for (int i = 0; i < B; i++)
        for (size_t k = b->off[i]; k < b->off[i + 1]; k++)
            for (int d = 0; d < D; d++)
                xr[((size_t)i * (size_t)F + b->field[k]) * (size_t)D + (size_t)d] +=
                    (double)b->val[k] * (double)e->rows[(size_t)ref_u[k] * (size_t)D + (size_t)d];
    int bad = 0;
    size_t first_bad = 0;
    for (size_t i = 0; i < xs; i++)
        if (!close_to(x[i], xr[i]) && !bad++) first_bad = i;
    CHECK(bad == 0, "%s: embed_pool: %d wrong of %zu, first at %zu: %g vs %g", what, bad, xs, first_bad, bad ? x[first_bad] : 0,
          bad ? xr[first_bad] : 0);

    /* backward: grads[u] = scale * Σ val * dx over the entries of key u */
    float *dx = malloc((xs ? xs : 1) * sizeof *dx);
    for (size_t i = 0; i < xs; i++) dx[i] = (float)fn_rng_uniform(rng) * 2.0f - 1.0f;
    for (size_t i = 0; i < n * (size_t)D; i++) e->grads[i] = NAN; /* must be cleared */
    const float scale = 0.375f;
    CHECK(embed_backward(e, b, dx, scale, NULL) == FN_OK, "%s: embed_backward failed", what);
    double *gr = calloc(n * (size_t)D + 1, sizeof *gr);
    for (int i = 0; i < B; i++)
        for (size_t k = b->off[i]; k < b->off[i + 1]; k++)
            for (int d = 0; d < D; d++)
                gr[(size_t)ref_u[k] * (size_t)D + (size_t)d] +=
                    (double)scale * (double)b->val[k] * (double)dx[((size_t)i * (size_t)F + b->field[k]) * (size_t)D + (size_t)d];
    bad = 0;
    for (size_t i = 0; i < n * (size_t)D; i++)
        if (!close_to(e->grads[i], gr[i]) && !bad++) first_bad = i;
    CHECK(bad == 0, "%s: embed_backward: %d wrong of %zu, first at %zu: %g vs %g", what, bad, n * (size_t)D, first_bad,
          bad ? e->grads[first_bad] : 0, bad ? gr[first_bad] : 0);
    free(x);
    free(xr);
    free(dx);
    free(gr);
}

/* ---- common-feature sets: grouped vs per-impression ----------------------- */

typedef struct {
    fn_ctable t;
    uint64_t *md5, *off, *keys;
    ctable_ent *ent;
    uint8_t *field;
} hand_table;

static void hand_table_make(hand_table *h, fn_rng *rng, int n_sets, int F)
{
    memset(h, 0, sizeof *h);
    size_t cap = 0;
    h->off = calloc((size_t)n_sets + 1, sizeof *h->off);
    h->md5 = calloc((size_t)n_sets, sizeof *h->md5);
    const int n_keys = 300;
    h->keys = malloc(n_keys * sizeof *h->keys);
    for (int k = 0; k < n_keys; k++) h->keys[k] = fn_mix64(7000 + (uint64_t)k); /* overlaps random_batch's pools */
    for (int s = 0; s < n_sets; s++) {
        int len = s % 7 == 3 ? 0 : 1 + (int)fn_rng_below(rng, 120);  /* some empty sets */
        if (h->off[s] + (size_t)len > cap) {
            cap = (h->off[s] + (size_t)len) * 2;
            h->ent = realloc(h->ent, cap * sizeof *h->ent);
            h->field = realloc(h->field, cap);
        }
        for (int j = 0; j < len; j++) {
            size_t e = h->off[s] + (size_t)j;
            h->ent[e].kid = (uint32_t)fn_rng_below(rng, n_keys);
            h->ent[e].val = (float)((double)fn_rng_below(rng, 9) * 0.25 + 0.25);
            h->field[e] = (uint8_t)fn_rng_below(rng, (uint64_t)F);
        }
        h->off[s + 1] = h->off[s] + (size_t)len;
        h->md5[s] = (uint64_t)s;
    }
    h->t.n_sets = (uint64_t)n_sets;
    h->t.n_entries = h->off[n_sets];
    h->t.n_keys = n_keys;
    h->t.md5 = h->md5;
    h->t.off = h->off;
    h->t.keys = h->keys;
    h->t.ent = h->ent;
    h->t.field = h->field;
}

static void hand_table_free(hand_table *h)
{
    free(h->md5); free(h->off); free(h->keys); free(h->ent); free(h->field);
}

static void check_groups(fn_rng *rng)
{
    const int F = 6;
    hand_table h;
    hand_table_make(&h, rng, 40, F);
    fn_batch b, flat;
    if (batch_init(&b, 300, 64) || batch_init(&flat, 300, 64)) { printf("FAIL batch_init\n"); exit(1); }
    static const int threads[] = {1, 2, 3};
    for (size_t ti = 0; ti < 3; ti++) {
        par *pool = NULL;
        if (par_open(&pool, threads[ti])) { printf("FAIL par_open\n"); exit(1); }
        for (int round = 0; round < 8; round++) {
            const int D = round % 2 ? 16 : 5, n = 1 + (int)fn_rng_below(rng, 299);
            const int run = round % 4 < 2 ? 1 : 6; /* scattered or runs of one request */
            char what[96];
            snprintf(what, sizeof what, "groups: threads %d round %d (n=%d, runs of %d, D=%d)", threads[ti], round, n, run, D);
            random_batch(&b, rng, n, (size_t)n * (size_t)fn_rng_below(rng, 4), F, 0);
            b.ct = &h.t;
            uint32_t cur = 0;
            for (int i = 0; i < n; i++) {
                if (i % run == 0) cur = fn_rng_below(rng, 10) == 0 ? CTABLE_NONE : (uint32_t)fn_rng_below(rng, h.t.n_sets);
                b.set[i] = cur;
            }
            CHECK(ctable_flatten(&b, &flat) == FN_OK, "%s: flatten", what);
            embed_table eg, ef;
            embed_init(&eg, (uint32_t)(round % 2), 3, D, F);
            embed_init(&ef, (uint32_t)(round % 2), 3, D, F);
            CHECK(embed_prepare(&eg, &b) == FN_OK && embed_prepare(&ef, &flat) == FN_OK, "%s: prepare", what);
            CHECK(eg.n_uniq == ef.n_uniq, "%s: %zu unique keys grouped, %zu flat", what, eg.n_uniq, ef.n_uniq);
            CHECK(embed_entries(&eg, &b) == flat.nf, "%s: %zu entries grouped, %zu flat", what, embed_entries(&eg, &b), flat.nf);
            int distinct = 0;
            for (int i = 0; i < n; i++) {
                int seen = 0;
                for (int j = 0; j < i && !seen; j++) seen = b.set[j] == b.set[i];
                distinct += b.set[i] != CTABLE_NONE && !seen;
            }
            CHECK(eg.ng == distinct, "%s: %d groups, %d distinct sets", what, eg.ng, distinct);
            if (failures) break;
            /* rows by key; uniq orders may differ: map flat positions to grouped ones */
            size_t nu = eg.n_uniq;
            uint32_t *to_g = malloc((nu ? nu : 1) * sizeof *to_g);
            for (size_t u = 0; u < nu; u++) {
                to_g[u] = UINT32_MAX;
                for (size_t v = 0; v < nu; v++)
                    if (eg.uniq[v] == ef.uniq[u]) to_g[u] = (uint32_t)v;
                CHECK(to_g[u] != UINT32_MAX, "%s: key of flat %zu not in the grouped table", what, u);
            }
            for (size_t u = 0; u < nu && to_g[u] != UINT32_MAX; u++)
                for (int d = 0; d < D; d++)
                    ef.rows[u * (size_t)D + (size_t)d] = eg.rows[(size_t)to_g[u] * (size_t)D + (size_t)d] =
                        (float)fn_rng_uniform(rng) * 2.0f - 1.0f;
            size_t xs = (size_t)n * (size_t)F * (size_t)D;
            float *xg = malloc(xs * sizeof *xg), *xf = malloc(xs * sizeof *xf), *dx = malloc(xs * sizeof *dx);
            for (size_t i = 0; i < xs; i++) xg[i] = NAN;
            embed_pool(&eg, &b, xg, pool);
            embed_pool(&ef, &flat, xf, NULL);
            int bad = 0;
            for (size_t i = 0; i < xs; i++) bad += !close_to(xg[i], xf[i]);
            CHECK(bad == 0, "%s: pooled input differs in %d of %zu", what, bad, xs);
            for (size_t i = 0; i < xs; i++) dx[i] = (float)fn_rng_uniform(rng) * 2.0f - 1.0f;
            CHECK(embed_backward(&eg, &b, dx, 0.5f, pool) == FN_OK && embed_backward(&ef, &flat, dx, 0.5f, NULL) == FN_OK, "%s: backward", what);
            bad = 0;
            for (size_t u = 0; u < nu; u++)
                for (int d = 0; d < D; d++)
                    bad += !(fabsf(eg.grads[(size_t)to_g[u] * (size_t)D + (size_t)d] - ef.grads[u * (size_t)D + (size_t)d]) <=
                             1e-4f * (1.0f + fabsf(ef.grads[u * (size_t)D + (size_t)d])));
            CHECK(bad == 0, "%s: gradients differ in %d of %zu", what, bad, nu * (size_t)D);
            free(xg); free(xf); free(dx); free(to_g);
            embed_free(&eg);
            embed_free(&ef);
        }
        par_close(&pool);
    }
    batch_free(&b);
    batch_free(&flat);
    hand_table_free(&h);
}

int main(void)
{
    fn_rng rng;
    fn_rng_seed(&rng, 2024);
    /* batch sizes: (examples, entries); past the first capacity (4096
     * entries) and back, empty, one entry */
    static const struct { int n; size_t nf; int unique; } sizes[] = {
        {3, 10, 0}, {40, 300, 0}, {64, 4096, 1}, {64, 5000, 0}, {2, 7, 0}, {5, 0, 0}, {128, 9000, 0},
        {1, 1, 0}, {17, 200, 0}, {100, 16384, 1}, {100, 4097, 0}, {9, 2000, 1},
    };
    static const int servers[] = {1, 2, 3, 7, 1100};
    const int F = 5;
    fn_batch b;
    if (batch_init(&b, 128, 16)) { printf("FAIL batch_init\n"); return 1; }
    for (size_t si = 0; si < sizeof servers / sizeof *servers; si++) {
        for (uint32_t table = 0; table < 2; table++) {
            int S = servers[si], D = 1 + (int)((si + table) % 4) * 3; /* 1, 4, 7, 10 */
            embed_table e;
            if (embed_init(&e, table, S, D, F)) { printf("FAIL embed_init\n"); return 1; }
            for (int round = 0; round < 2; round++) {
                /* round 1 drives the generation counter through its wrap */
                if (round == 1) e.gen = UINT32_MAX - 3;
                for (size_t z = 0; z < sizeof sizes / sizeof *sizes; z++) {
                    char what[96];
                    snprintf(what, sizeof what, "S=%d table=%u D=%d round %d batch %zu (n=%d nf=%zu)", S, table, D, round, z, sizes[z].n,
                             sizes[z].nf);
                    random_batch(&b, &rng, sizes[z].n, sizes[z].nf, F, sizes[z].unique);
                    int rc = embed_prepare(&e, &b);
                    CHECK(rc == FN_OK, "%s: embed_prepare rc %d", what, rc);
                    if (rc) continue;
                    uint32_t *ref_u = check_prepare(what, &e, &b);
                    if (ref_u) check_pool_backward(what, &e, &b, ref_u, &rng);
                    free(ref_u);
                    /* the same batch again gives the same answer */
                    uint64_t first = e.n_uniq ? e.uniq[0] : 0;
                    size_t nu = e.n_uniq;
                    rc = embed_prepare(&e, &b);
                    CHECK(rc == FN_OK && e.n_uniq == nu && (!nu || e.uniq[0] == first), "%s: second prepare differs", what);
                    if (failures > 20) break;
                }
            }
            CHECK(e.gen < 30, "S=%d: generation did not wrap (%u)", S, e.gen);
            embed_free(&e);
            CHECK(e.uniq == NULL && e.srv_off == NULL, "embed_free must clear the table");
        }
    }

    /* a batch with one key in every field and every example: one unique key */
    {
        embed_table e;
        embed_init(&e, 0, 3, 2, F);
        batch_clear(&b);
        for (int i = 0; i < 4; i++) {
            for (int f = 0; f < F; f++) {
                batch_reserve_features(&b, 1);
                b.field[b.nf] = (uint16_t)f;
                b.key[b.nf] = 42;
                b.val[b.nf] = 0.5f * (float)(f + 1);
                b.nf++;
            }
            b.n++;
            b.off[b.n] = b.nf;
        }
        CHECK(embed_prepare(&e, &b) == FN_OK && e.n_uniq == 1 && e.uniq[0] == 42, "one key: n_uniq %zu", e.n_uniq);
        uint32_t *ref_u = check_prepare("one key", &e, &b);
        if (ref_u) check_pool_backward("one key", &e, &b, ref_u, &rng);
        free(ref_u);
        embed_free(&e);
    }

    batch_free(&b);
    check_groups(&rng);
    if (failures) { printf("test_embed: %d failures\n", failures); return 1; }
    printf("test_embed: ok\n");
    return 0;
}
