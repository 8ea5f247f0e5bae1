/* tests/unit/test_evict.c — bounded tables: ps_tables_evict, admission
 * through ps/sketch.c, against brute-force references.
 *
 * Eviction: rows get random (last_step, count) histories; the rows left
 * after ps_tables_evict(keep) must be exactly the `keep` greatest under the
 * documented order (last_step, count, fn_mix64(key)), or for LFU
 * (count, last_step, ...), computed here by
 * sorting; every survivor must still hold its own weights (rows move when
 * others go), evicted keys must be gone, and the same histories applied in
 * another order (so rows sit at other positions) must leave the same set.
 * TTL: exactly the rows last used before the cut go.  Memory: bytes fall
 * back as chunks empty.  Admission: a key reads zeros and keeps no row
 * until its `after`-th push, then holds its usual initial weights.
 * Sketch: never below the true count; on a Zipf stream mostly exact. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fn_error.h"
#include "hash.h"
#include "sketch.h"
#include "table.h"

#include "check.h"

#define DIM 4

typedef struct {
    uint64_t key;
    uint32_t last, count;
} hist;

static ps_evict_policy policy;

static int cmp_order(const void *a, const void *b)
{
    const hist *x = a, *y = b;
    if (policy == PS_EVICT_LFU && x->count != y->count) return x->count < y->count ? -1 : 1;
    if (x->last != y->last) return x->last < y->last ? -1 : 1;
    if (x->count != y->count) return x->count < y->count ? -1 : 1;
    uint64_t hx = fn_mix64(x->key), hy = fn_mix64(y->key);
    return hx < hy ? -1 : hx > hy;
}

/* Touches key `count` times, the last at step `last` (earlier touches at
 * steps <= last), through pulls. */
static void replay(ps_table *t, const hist *h)
{
    float out[DIM];
    for (uint32_t c = 0; c < h->count; c++) {
        uint32_t step = c + 1 == h->count ? h->last : h->last / 2;
        ps_table_pull(t, &h->key, 1, out, step);
    }
}

static void test_evict_exact(size_t n, size_t keep, uint32_t steps)
{
    ps_opt opt = ps_opt_default(PS_OPT_ADAGRAD);
    hist *h = malloc(n * sizeof *h);
    fn_rng rng;
    fn_rng_seed(&rng, n * 31 + keep);
    for (size_t i = 0; i < n; i++) {
        h[i].key = fn_rng_next(&rng);
        h[i].last = (uint32_t)(fn_rng_next(&rng) % steps);
        h[i].count = 1 + (uint32_t)(fn_rng_next(&rng) % 3);
    }
    ps_table *a = ps_table_new(DIM, &opt, 5, 0.1f), *b = ps_table_new(DIM, &opt, 5, 0.1f);
    for (size_t i = 0; i < n; i++) replay(a, &h[i]);
    for (size_t i = n; i-- > 0;) replay(b, &h[i]); /* other positions */
    /* make the weights distinct per key so a moved row is recognisable */
    for (size_t i = 0; i < n; i++) {
        float w[DIM] = {(float)i, (float)(h[i].key & 0xFFFF), 1, 2};
        ps_table_set(a, h[i].key, w, NULL);
        ps_table_set(b, h[i].key, w, NULL);
    }
    size_t bytes_before = ps_table_bytes(a);
    size_t ea = ps_tables_evict(&a, 1, keep, 0, policy), eb = ps_tables_evict(&b, 1, keep, 0, policy);
    CHECK(ea == n - keep && eb == n - keep, "evicted %zu / %zu of %zu, keep %zu", ea, eb, n, keep);
    CHECK(ps_table_rows(a) == keep, "rows %zu, keep %zu", ps_table_rows(a), keep);
    qsort(h, n, sizeof *h, cmp_order);
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++) {
        const float *wa = ps_table_find(a, h[i].key), *wb = ps_table_find(b, h[i].key);
        int should = i >= n - keep;
        if (!!wa != should || !!wb != should) wrong++;
        if (wa && (wa[1] != (float)(h[i].key & 0xFFFF) || wa[2] != 1)) wrong++;
    }
    CHECK(wrong == 0, "%zu rows kept/evicted wrongly or lost their weights (n %zu, keep %zu)", wrong, n, keep);
    if (n - keep > n / 2 && n > 10000)
        CHECK(ps_table_bytes(a) < bytes_before * 3 / 4, "bytes %zu -> %zu: chunks not freed", bytes_before, ps_table_bytes(a));
    /* a row evicted and seen again comes back with its initial weights */
    if (keep < n) {
        ps_table *fresh = ps_table_new(DIM, &opt, 5, 0.1f);
        float w1[DIM], w2[DIM];
        ps_table_pull(a, &h[0].key, 1, w1, 99);
        ps_table_pull(fresh, &h[0].key, 1, w2, 99);
        CHECK(memcmp(w1, w2, sizeof w1) == 0, "re-created row has its initial weights");
        ps_table_destroy(&fresh);
    }
    ps_table_destroy(&a);
    ps_table_destroy(&b);
    free(h);
}

static void test_ttl_and_two_tables(void)
{
    ps_opt opt = ps_opt_default(PS_OPT_SGD);
    ps_table *t[3] = {ps_table_new(DIM, &opt, 1, 0.1f), NULL, ps_table_new(DIM, &opt, 2, 0.1f)};
    float out[DIM];
    for (uint64_t k = 1; k <= 1000; k++) {
        ps_table_pull(t[0], &k, 1, out, (uint32_t)(k % 100));
        ps_table_pull(t[2], &k, 1, out, (uint32_t)((k + 50) % 100));
    }
    size_t gone = ps_tables_evict(t, 3, SIZE_MAX, 30, PS_EVICT_LRU); /* last_step < 30 go */
    CHECK(gone == 600, "ttl evicted %zu, expected 600", gone);
    size_t bad = 0;
    for (uint64_t k = 1; k <= 1000; k++) {
        if (!!ps_table_find(t[0], k) != (k % 100 >= 30)) bad++;
        if (!!ps_table_find(t[2], k) != ((k + 50) % 100 >= 30)) bad++;
    }
    CHECK(bad == 0, "ttl: %zu rows wrong", bad);
    /* a budget over both tables takes the oldest of either */
    gone = ps_tables_evict(t, 3, 700, 0, PS_EVICT_LRU);
    CHECK(gone == 700 && ps_table_rows(t[0]) + ps_table_rows(t[2]) == 700, "budget over two tables: evicted %zu", gone);
    uint32_t min_kept = UINT32_MAX, last, count;
    for (int k = 0; k < 3; k += 2)
        for (size_t i = 0; i < ps_table_rows(t[k]); i++) {
            ps_table_row_meta(t[k], i, &last, &count);
            if (last < min_kept) min_kept = last;
        }
    CHECK(min_kept >= 65, "the oldest kept row was used at step %u (rows of steps 65..99 should be kept)", min_kept);
    ps_table_stats st;
    ps_table_counts(t[0], &st);
    CHECK(st.evicted + st.rows == 1000 && st.created == 1000, "counts: rows %zu created %llu evicted %llu", st.rows,
          (unsigned long long)st.created, (unsigned long long)st.evicted);
    ps_table_destroy(&t[0]);
    ps_table_destroy(&t[2]);
}

static void test_admission(void)
{
    ps_opt opt = ps_opt_default(PS_OPT_SGD);
    ps_sketch *sk = ps_sketch_new(1 << 16);
    ps_table *t = ps_table_new(DIM, &opt, 3, 0.1f), *ref = ps_table_new(DIM, &opt, 3, 0.1f);
    ps_table_set_admission(t, sk, 3);
    uint64_t key = 12345;
    float out[DIM], g[DIM] = {1, 1, 1, 1}, zero[DIM] = {0};
    CHECK(ps_table_pull(t, &key, 1, out, 1) == FN_OK && memcmp(out, zero, sizeof out) == 0 && ps_table_rows(t) == 0,
          "an unadmitted key reads zeros and gets no row");
    ps_table_push(t, &key, 1, g, 1);
    ps_table_push(t, &key, 1, g, 2);
    CHECK(ps_table_rows(t) == 0 && ps_sketch_count(sk, key) == 2, "two pushes: no row yet (count %u)", ps_sketch_count(sk, key));
    ps_table_push(t, &key, 1, g, 3);
    const float *w = ps_table_find(t, key);
    float w0[DIM];
    ps_table_pull(ref, &key, 1, w0, 0);
    CHECK(w && memcmp(w, w0, sizeof w0) == 0, "the third push admits the key with its initial weights");
    ps_table_push(t, &key, 1, g, 4);
    w = ps_table_find(t, key);
    CHECK(w && fabsf(w[0] - (w0[0] - opt.lr)) < 1e-6f, "then its gradients apply (%g vs %g)", w ? w[0] : 0, w0[0] - opt.lr);
    ps_table_stats st;
    ps_table_counts(t, &st);
    CHECK(st.created == 1 && st.dropped == 3, "created %llu dropped %llu", (unsigned long long)st.created, (unsigned long long)st.dropped);
    ps_table_destroy(&t);
    ps_table_destroy(&ref);
    ps_sketch_destroy(&sk);
}

static void test_sketch(void)
{
    /* a Zipf(1.1) stream of 200k sightings over 100k keys into 64 KiB */
    enum { N = 200000, K = 100000 };
    ps_sketch *s = ps_sketch_new(64 << 10);
    uint32_t *truth = calloc(K, sizeof *truth);
    double *cdf = malloc(K * sizeof *cdf), z = 0;
    for (int i = 0; i < K; i++) cdf[i] = (z += pow(i + 1, -1.1));
    fn_rng rng;
    fn_rng_seed(&rng, 9);
    for (int n = 0; n < N; n++) {
        double u = (double)(fn_rng_next(&rng) >> 11) * 0x1.0p-53 * z;
        int lo = 0, hi = K - 1;
        while (lo < hi) { int mid = (lo + hi) / 2; if (cdf[mid] < u) lo = mid + 1; else hi = mid; }
        uint64_t key = fn_mix64((uint64_t)lo + 1);
        uint32_t est = ps_sketch_add(s, key);
        if (truth[lo] < PS_SKETCH_MAX_COUNT) truth[lo]++;
        if (est < truth[lo]) { CHECK(0, "estimate %u below the true count %u", est, truth[lo]); break; }
    }
    size_t seen = 0, exact = 0;
    for (int i = 0; i < K; i++) {
        if (!truth[i]) continue;
        seen++;
        uint32_t est = ps_sketch_count(s, fn_mix64((uint64_t)i + 1));
        CHECK(est >= truth[i], "key %d: estimate %u < %u", i, est, truth[i]);
        exact += est == truth[i];
    }
    printf("sketch: %zu distinct keys in %zu bytes, %.1f%% counted exactly\n", seen, ps_sketch_bytes(s), 100.0 * exact / seen);
    CHECK(exact > seen * 8 / 10, "only %zu of %zu keys counted exactly", exact, seen);
    free(truth);
    free(cdf);
    ps_sketch_destroy(&s);
}

int main(void)
{
    for (policy = PS_EVICT_LRU; policy <= PS_EVICT_LFU; policy++) {
        test_evict_exact(1000, 600, 50);      /* many ties in last_step */
        test_evict_exact(5000, 1, 3);         /* ties all the way to the key hash */
        test_evict_exact(200000, 50000, 100000);
        test_evict_exact(3000, 3000, 10);     /* nothing to do */
        test_evict_exact(3000, 0, 10);        /* everything */
    }
    test_ttl_and_two_tables();
    test_admission();
    test_sketch();
    if (failures) {
        printf("test_evict: %d failures\n", failures);
        return 1;
    }
    printf("test_evict: ok\n");
    return 0;
}
