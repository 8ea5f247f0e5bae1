/* tests/unit/test_table.c — ps/table.c against a reference.
 *
 * The reference keeps every row's weights and optimizer state in flat
 * arrays indexed by key id and applies ps_opt_apply() itself (the update
 * math is test_optimizer's business; here the question is whether the
 * table stores, finds, creates and moves the right bytes).  Rows pulled
 * for the first time seed the reference with the table's initial values,
 * which are checked separately: same (seed, key) -> same row in another
 * table built in another order, another seed -> another row, values in
 * [-init_range, init_range] and spread like a uniform.
 *
 * The main run grows an Adagrad dim-16 table to 300k rows through pulls
 * and pushes and checks the memory bound (bytes / (rows * row_need) <= 1.3
 * from 100k rows on) at every batch. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fn_error.h"
#include "hash.h"
#include "table.h"

#include "check.h"

/* keys[id] = (id + 1) * KEY_MUL, so a key maps back to its id. */
#define KEY_MUL 0x9E3779B97F4A7C15ull
static uint64_t key_mul_inv;

static uint64_t key_of_id(size_t id) { return (uint64_t)(id + 1) * KEY_MUL; }
static size_t id_of_key(uint64_t key) { return (size_t)(key * key_mul_inv - 1); }

static uint64_t mul_inverse(uint64_t c)
{
    uint64_t inv = c;
    for (int i = 0; i < 6; i++) inv *= 2 - c * inv;
    return inv;
}

#define BATCH 1024u

typedef struct {
    ps_opt_kind kind;
    int dim;
    size_t rows;      /* distinct keys to reach */
    int check_memory; /* the <= 1.3 bound from 100k rows */
} run_spec;

/* Grows a table to spec->rows through pull + push batches (half new keys,
 * half random old ones, some repeated in a batch), checking every pulled
 * value, then checks every row by find and by row_at. */
static void run_against_reference(const run_spec *spec)
{
    const int dim = spec->dim;
    const float range = 0.01f;
    ps_opt opt = ps_opt_default(spec->kind);
    const size_t sf = ps_opt_state_floats(&opt, dim);
    const char *name = ps_opt_kind_name(spec->kind);
    ps_table *t = ps_table_new(dim, &opt, 7, range);
    CHECK(t != NULL, "new");
    if (!t) return;
    CHECK(ps_table_dim(t) == dim && ps_table_rows(t) == 0, "fresh table");
    CHECK(ps_table_row_need(t) == 8 + 4 * ((size_t)dim + sf), "row_need %zu", ps_table_row_need(t));

    const size_t N = spec->rows;
    float *ref_w = malloc(N * dim * sizeof *ref_w);
    float *ref_s = malloc((N * sf + 1) * sizeof *ref_s);
    unsigned char *present = calloc(N, 1);
    uint64_t *keys = malloc(BATCH * sizeof *keys);
    size_t *ids = malloc(BATCH * sizeof *ids);
    float *out = malloc(BATCH * dim * sizeof *out);
    float *grads = malloc(BATCH * dim * sizeof *grads);
    fn_rng rng;
    fn_rng_seed(&rng, 1234 + (uint64_t)spec->kind);

    size_t next_new = 0, n_present = 0, batches = 0;
    double max_ratio = 0.0;
    uint32_t step = 0;
    double sum = 0.0, sum2 = 0.0;
    float vmin = range, vmax = -range;
    while (n_present < N) {
        step++;
        uint32_t n = 0;
        for (; n < BATCH; n++) {
            size_t id;
            if (next_new < N && (n % 2 == 0 || next_new == 0))
                id = next_new++;
            else if (n % 16 == 15 && n > 0)
                id = ids[n - 1]; /* the same key twice in a batch */
            else
                id = (size_t)fn_rng_below(&rng, next_new);
            ids[n] = id;
            keys[n] = key_of_id(id);
        }
        CHECK(ps_table_pull(t, keys, n, out, step) == FN_OK, "pull");
        for (uint32_t i = 0; i < n; i++) {
            size_t id = ids[i];
            const float *o = out + (size_t)i * dim;
            if (!present[id]) {
                /* First sight: the table's initial row becomes the reference. */
                present[id] = 1;
                n_present++;
                memcpy(ref_w + id * dim, o, dim * sizeof *o);
                ps_opt_init_state(&opt, ref_s + id * sf, dim);
                for (int j = 0; j < dim; j++) {
                    CHECK(o[j] >= -range && o[j] <= range, "init %g out of range", o[j]);
                    sum += o[j];
                    sum2 += (double)o[j] * o[j];
                    if (o[j] < vmin) vmin = o[j];
                    if (o[j] > vmax) vmax = o[j];
                }
            } else {
                CHECK(memcmp(o, ref_w + id * dim, dim * sizeof *o) == 0,
                      "%s step %" PRIu32 ": pulled row of id %zu differs", name, step, id);
            }
        }
        for (size_t i = 0; i < (size_t)n * dim; i++) grads[i] = (float)(fn_rng_uniform(&rng) - 0.5) * 0.2f;
        CHECK(ps_table_push(t, keys, n, grads, step) == FN_OK, "push");
        for (uint32_t i = 0; i < n; i++)
            ps_opt_apply(&opt, ref_w + ids[i] * dim, ref_s + ids[i] * sf, grads + (size_t)i * dim, dim);
        CHECK(ps_table_rows(t) == n_present, "rows %zu, want %zu", ps_table_rows(t), n_present);
        if (n_present >= 100000) {
            double ratio = (double)ps_table_bytes(t) / ((double)n_present * ps_table_row_need(t));
            if (ratio > max_ratio) max_ratio = ratio;
        }
        batches++;
    }

    /* Every row, by key. */
    size_t bad = 0;
    for (size_t id = 0; id < N; id++) {
        const float *w = ps_table_find(t, key_of_id(id));
        if (!w || memcmp(w, ref_w + id * dim, dim * sizeof *w) != 0) bad++;
    }
    CHECK(bad == 0, "%s: %zu rows differ from the reference", name, bad);
    CHECK(ps_table_find(t, key_of_id(N + 5)) == NULL, "find of an absent key");
    CHECK(ps_table_rows(t) == N, "find must not create rows");

    /* Every row, by position: each key once, weights and state as expected. */
    unsigned char *seen = calloc(N, 1);
    size_t dup = 0, alien = 0, bad_state = 0;
    for (size_t i = 0; i < ps_table_rows(t); i++) {
        uint64_t key;
        const float *w, *s;
        ps_table_row_at(t, i, &key, &w, &s);
        size_t id = id_of_key(key);
        if (id >= N) {
            alien++;
            continue;
        }
        dup += seen[id];
        seen[id] = 1;
        if (memcmp(w, ref_w + id * dim, dim * sizeof *w) != 0) bad++;
        if (sf == 0 ? s != NULL : memcmp(s, ref_s + id * sf, sf * sizeof *s) != 0) bad_state++;
    }
    size_t unseen = 0;
    for (size_t id = 0; id < N; id++) unseen += !seen[id];
    CHECK(dup == 0 && alien == 0 && unseen == 0, "row_at: %zu twice, %zu unknown, %zu missed", dup, alien, unseen);
    CHECK(bad == 0 && bad_state == 0, "row_at: %zu weights, %zu states differ", bad, bad_state);

    /* The initial values look uniform on [-range, range]: mean 0, variance
     * range^2 / 3, both ends reached. */
    double cnt = (double)N * dim, mean = sum / cnt, var = sum2 / cnt - mean * mean;
    double want_var = (double)range * range / 3.0;
    CHECK(fabs(mean) < 0.01 * range, "init mean %g", mean);
    CHECK(fabs(var / want_var - 1.0) < 0.02, "init variance %g, want %g", var, want_var);
    CHECK(vmin < -0.999f * range && vmax > 0.999f * range, "init spans [%g, %g]", vmin, vmax);

    double ratio = (double)ps_table_bytes(t) / ((double)N * ps_table_row_need(t));
    printf("table %-7s dim %2d: %zu rows in %zu batches; bytes %zu = %.1f per row, row_need %zu, ratio %.3f",
           name, dim, N, batches, ps_table_bytes(t), (double)ps_table_bytes(t) / N, ps_table_row_need(t), ratio);
    if (N >= 100000) printf(" (max %.3f at any batch from 100k rows on)", max_ratio);
    printf("\n");
    if (spec->check_memory) {
        CHECK(N >= 300000 && ratio <= 1.3, "memory ratio %.3f at %zu rows", ratio, N);
        CHECK(max_ratio <= 1.3, "memory ratio reached %.3f past 100k rows", max_ratio);
    }

    ps_table_destroy(&t);
    CHECK(t == NULL, "destroy clears the pointer");
    free(seen);
    free(ref_w);
    free(ref_s);
    free(present);
    free(keys);
    free(ids);
    free(out);
    free(grads);
}

/* Same seed and key -> same row whatever the table, order of arrival or
 * entry point; another seed or key -> another row. */
static void test_init_determinism(void)
{
    enum { DIM = 16, NK = 2000 };
    ps_opt ada = ps_opt_default(PS_OPT_ADAGRAD), adam = ps_opt_default(PS_OPT_ADAM);
    ps_table *a = ps_table_new(DIM, &ada, 99, 0.05f);
    ps_table *b = ps_table_new(DIM, &adam, 99, 0.05f); /* state layout differs, weights must not */
    ps_table *c = ps_table_new(DIM, &ada, 100, 0.05f);
    CHECK(a && b && c, "new");
    if (!a || !b || !c) return;
    uint64_t keys[NK];
    for (int i = 0; i < NK; i++) keys[i] = fn_mix64(0xabcdefull + (uint64_t)i);
    float *wa = malloc((size_t)NK * DIM * sizeof *wa);
    CHECK(ps_table_pull(a, keys, NK, wa, 1) == FN_OK, "pull a");
    size_t differ_b = 0, same_c = 0, equal_in_row = 0;
    for (int i = NK - 1; i >= 0; i--) {
        const float *wb = ps_table_get(b, keys[i], 5);
        const float *wc = ps_table_get(c, keys[i], 5);
        CHECK(wb && wc, "get");
        if (!wb || !wc) break;
        differ_b += memcmp(wb, wa + (size_t)i * DIM, DIM * sizeof *wb) != 0;
        for (int j = 0; j < DIM; j++) {
            same_c += wc[j] == wa[(size_t)i * DIM + j];
            equal_in_row += j > 0 && wa[(size_t)i * DIM + j] == wa[(size_t)i * DIM];
        }
    }
    CHECK(differ_b == 0, "%zu rows differ between two tables with the same seed", differ_b);
    CHECK(same_c < 5, "%zu values equal under another seed", same_c);
    CHECK(equal_in_row < 5, "%zu values equal to their row's first", equal_in_row);
    size_t same_rows = 0;
    for (int i = 1; i < NK; i++) same_rows += memcmp(wa + (size_t)i * DIM, wa, DIM * sizeof *wa) == 0;
    CHECK(same_rows == 0, "%zu keys got the row of key 0", same_rows);
    /* range 0: all weights 0 */
    ps_table *z = ps_table_new(DIM, &ada, 99, 0.0f);
    const float *wz = z ? ps_table_get(z, 42, 0) : NULL;
    CHECK(wz != NULL, "get");
    for (int j = 0; wz && j < DIM; j++) CHECK(wz[j] == 0.0f, "init_range 0 gives %g", wz[j]);
    ps_table_destroy(&z);
    free(wa);
    ps_table_destroy(&a);
    ps_table_destroy(&b);
    ps_table_destroy(&c);
}

static void test_set_roundtrip(void)
{
    for (int k = 0; k < 4; k++) {
        enum { DIM = 6 };
        ps_opt opt = ps_opt_default((ps_opt_kind)k);
        opt.init_acc = 0.25f;
        const size_t sf = ps_opt_state_floats(&opt, DIM);
        ps_table *t = ps_table_new(DIM, &opt, 1, 0.1f);
        CHECK(t != NULL, "new");
        if (!t) return;
        float w[DIM], s[2 * DIM + 1], fresh[2 * DIM + 1];
        for (int j = 0; j < DIM; j++) w[j] = 1.5f * (float)(j + 1);
        for (size_t j = 0; j < sf; j++) s[j] = 0.5f + (float)j;
        ps_opt_init_state(&opt, fresh, DIM);
        /* a few other rows around it */
        for (uint64_t key = 100; key < 110; key++) CHECK(ps_table_get(t, key, 1) != NULL, "get");
        CHECK(ps_table_set(t, 7, w, s) == FN_OK, "set new");
        const float *got = ps_table_find(t, 7);
        CHECK(got && memcmp(got, w, sizeof w) == 0, "%s: weights after set", ps_opt_kind_name(opt.kind));
        size_t rows = ps_table_rows(t), found = 0;
        CHECK(rows == 11, "rows %zu", rows);
        for (size_t i = 0; i < rows; i++) {
            uint64_t key;
            const float *rw, *rs;
            ps_table_row_at(t, i, &key, &rw, &rs);
            if (key != 7) continue;
            found++;
            CHECK(rw == got, "row_at and find point at the same weights");
            CHECK(sf ? rs && memcmp(rs, s, sf * sizeof *rs) == 0 : rs == NULL, "%s: state after set",
                  ps_opt_kind_name(opt.kind));
        }
        CHECK(found == 1, "key 7 seen %zu times", found);
        /* set again, existing row, fresh state */
        w[0] = -3.0f;
        CHECK(ps_table_set(t, 7, w, NULL) == FN_OK, "set existing");
        CHECK(ps_table_rows(t) == rows, "set of an existing key adds no row");
        got = ps_table_find(t, 7);
        CHECK(got && got[0] == -3.0f, "overwritten weights");
        for (size_t i = 0; i < rows; i++) {
            uint64_t key;
            const float *rw, *rs;
            ps_table_row_at(t, i, &key, &rw, &rs);
            if (key == 7 && sf) CHECK(memcmp(rs, fresh, sf * sizeof *rs) == 0, "state reset by set(NULL)");
        }
        /* a pull then returns what was set */
        float out[DIM];
        uint64_t key = 7;
        CHECK(ps_table_pull(t, &key, 1, out, 3) == FN_OK && memcmp(out, w, sizeof out) == 0, "pull after set");
        ps_table_destroy(&t);
    }
    ps_table *bad = ps_table_new(0, NULL, 1, 0.1f);
    CHECK(bad == NULL, "dim 0 is refused");
}

int main(void)
{
    key_mul_inv = mul_inverse(KEY_MUL);
    CHECK(id_of_key(key_of_id(12345)) == 12345, "key <-> id");
    test_init_determinism();
    test_set_roundtrip();
    static const run_spec runs[] = {
        {PS_OPT_ADAGRAD, 16, 300000, 1},
        {PS_OPT_SGD, 8, 20000, 0},
        {PS_OPT_ADAM, 5, 20000, 0},
        {PS_OPT_FTRL, 16, 20000, 0},
    };
    for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) run_against_reference(&runs[i]);
    if (failures) {
        printf("test_table: %d failures\n", failures);
        return 1;
    }
    printf("test_table: ok\n");
    return 0;
}
