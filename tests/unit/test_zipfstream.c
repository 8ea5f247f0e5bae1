/* tests/unit/test_zipfstream.c — common/zipfstream.c against exact
 * probabilities and its own contracts.
 *
 * The sampler: draw frequencies against k^-s / H(V, s) computed by direct
 * summation (small vocab: every rank; vocab 1e9: the first ranks, with H
 * from a sum to 1e6 plus the Euler–Maclaurin tail).  The stream: W readers
 * over partitions together give exactly the one reader's stream; tell/seek
 * come back to the same impression; the click rate is near the spec's;
 * bad specs are refused naming the item. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fn_error.h"
#include "zipfstream.h"

#include "check.h"

static double harmonic(double s, uint64_t v)
{
    uint64_t m = v < 1000000 ? v : 1000000;
    double h = 0;
    for (uint64_t k = m; k >= 1; k--) h += pow((double)k, -s);
    if (v > m) { /* Euler–Maclaurin: sum_{m+1}^{v} k^-s */
        double a = (double)m, b = (double)v;
        h += (pow(a, 1 - s) - pow(b, 1 - s)) / (s - 1) - 0.5 * pow(a, -s) + 0.5 * pow(b, -s);
    }
    return h;
}

static void test_sampler(double s, uint64_t vocab, int ranks, int draws)
{
    zipf_sampler z;
    zipf_sampler_init(&z, s, vocab);
    fn_rng rng;
    fn_rng_seed(&rng, 77);
    long *cnt = calloc((size_t)ranks + 1, sizeof *cnt);
    uint64_t top = 0;
    for (int i = 0; i < draws; i++) {
        uint64_t k = zipf_sample(&z, &rng);
        if (k < 1 || k > vocab) { CHECK(0, "rank %llu outside [1, %llu]", (unsigned long long)k, (unsigned long long)vocab); break; }
        if (k <= (uint64_t)ranks) cnt[k]++;
        if (k > top) top = k;
    }
    double h = harmonic(s, vocab), worst = 0;
    for (int k = 1; k <= ranks; k++) {
        double p = pow(k, -s) / h, e = p * draws, sd = sqrt(e * (1 - p));
        double zsc = (cnt[k] - e) / sd;
        if (fabs(zsc) > fabs(worst)) worst = zsc;
        CHECK(fabs(zsc) < 5, "s %g vocab %llu rank %d: %ld draws, expected %.0f (z %.1f)", s, (unsigned long long)vocab, k, cnt[k], e, zsc);
    }
    printf("sampler s %g vocab %llu: worst z-score over ranks 1..%d = %.2f, largest rank drawn %llu\n", s, (unsigned long long)vocab,
           ranks, worst, (unsigned long long)top);
    free(cnt);
}

static void test_stream(void)
{
    fn_schema sch;
    CHECK(schema_parse(&sch, "aliccp") == FN_OK, "schema");
    zipf_spec sp;
    CHECK(zipf_spec_parse(&sp, "n=5000,s=1.2,seed=3,world=2,vocab=1e6") == FN_OK, "parse: %s", fn_err_msg());
    CHECK(sp.n == 5000 && sp.s == 1.2 && sp.vocab == 1000000 && sp.seed == 3 && sp.world == 2, "parsed values");
    fn_batch one, part;
    batch_init(&one, 5000, 5000 * 23);
    batch_init(&part, 5000, 5000 * 23);
    zipf_reader *r;
    CHECK(zipf_reader_open(&r, &sp, &sch, 0, 1) == FN_OK, "open");
    zipf_reader_next(r, &one, 5000);
    CHECK(one.n == 5000 && one.nf == 5000u * 23, "one reader: %d impressions, %zu features", one.n, one.nf);
    double clicks = 0;
    for (int i = 0; i < one.n; i++) clicks += one.click[i];
    CHECK(clicks / one.n > 0.02 && clicks / one.n < 0.08, "click rate %.4f, spec 0.04", clicks / one.n);
    /* tell / seek */
    uint64_t pos[2] = {1234, 0};
    fn_batch x;
    batch_init(&x, 1, 23);
    CHECK(zipf_reader_seek(r, pos) == FN_OK, "seek");
    zipf_reader_next(r, &x, 1);
    CHECK(x.n == 1 && x.sample_id[0] == 1234 && !memcmp(x.key, one.key + 1234 * 23, 23 * sizeof *x.key) && x.click[0] == one.click[1234],
          "seek to 1234 gives impression 1234");
    zipf_reader_tell(r, pos);
    CHECK(pos[0] == 1235, "tell after it: %llu", (unsigned long long)pos[0]);
    zipf_reader_close(&r);
    /* three partitions make the same stream */
    int at = 0, bad = 0;
    for (int p = 0; p < 3; p++) {
        CHECK(zipf_reader_open(&r, &sp, &sch, p, 3) == FN_OK, "open part %d", p);
        for (;;) {
            zipf_reader_next(r, &part, 700);
            if (!part.n) break;
            for (int i = 0; i < part.n; i++, at++) {
                if (part.sample_id[i] != (uint64_t)at || part.click[i] != one.click[at] || part.buy[i] != one.buy[at] ||
                    memcmp(part.key + (size_t)i * 23, one.key + (size_t)at * 23, 23 * sizeof *part.key))
                    bad++;
            }
        }
        zipf_reader_close(&r);
    }
    CHECK(at == 5000 && bad == 0, "3 partitions: %d impressions, %d differ from the single stream", at, bad);
    /* another world labels the same keys otherwise */
    zipf_spec w2 = sp;
    w2.world = 3;
    CHECK(zipf_reader_open(&r, &w2, &sch, 0, 1) == FN_OK, "open w2");
    zipf_reader_next(r, &part, 5000);
    int same_keys = !memcmp(part.key, one.key, one.nf * sizeof *one.key), diff = 0;
    for (int i = 0; i < part.n; i++) diff += part.click[i] != one.click[i];
    CHECK(same_keys && diff > 0, "world changes labels (%d differ), not keys (%d)", diff, same_keys);
    zipf_reader_close(&r);
    batch_free(&one);
    batch_free(&part);
    batch_free(&x);
}

static void test_specs(void)
{
    zipf_spec sp;
    static const char *bad[] = {"n=0", "s=1", "s=abc", "foo=1", "n", "vocab=1e20", "ctr=1.5", "n=5,,s=2"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = zipf_spec_parse(&sp, bad[i]);
        CHECK(rc == FN_EUSAGE && strstr(fn_err_msg(), "zipf stream spec"), "spec '%s' refused: %s", bad[i], fn_err_msg());
    }
    CHECK(zipf_spec_parse(&sp, "") == FN_OK && sp.n == 1000000, "empty spec: defaults");
}

int main(void)
{
    test_sampler(1.3, 50, 50, 1000000);
    test_sampler(1.05, 1000000000ull, 200, 2000000);
    test_sampler(2.5, 1000000000000ull, 20, 500000);
    test_stream();
    test_specs();
    if (failures) {
        printf("test_zipfstream: %d failures\n", failures);
        return 1;
    }
    printf("test_zipfstream: ok\n");
    return 0;
}
