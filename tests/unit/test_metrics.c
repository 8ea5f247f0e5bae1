/* tests/unit/test_metrics.c — common/metrics.c against straightforward
 * references: O(n²) pair counting for AUC, a loop over distinct thresholds
 * for average precision, the textbook formulas for log loss, RCE and
 * calibration, hand-checked small cases, the NaN cases, and a 5M-row set
 * checked against a rank-sum AUC (qsort + mid-ranks) and timed.
 * Seeded and deterministic; prints every failure, exits 1 if any. */
#include "metrics.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"

/* |a - b| <= tol, or both NaN */
static int near(double a, double b, double tol)
{
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    return fabs(a - b) <= tol;
}

/* splitmix64: the test's own RNG, so it depends on nothing but metrics.c */
static uint64_t rng_state;
static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double rng_unif(void) { return (double)(rng_next() >> 11) * 0x1.0p-53; }
static size_t rng_below(size_t n) { return (size_t)(rng_next() % n); }

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Runs metrics_compute with freshly allocated scratch. */
static metrics_result run(const float *p, const float *y, size_t n, double base_rate)
{
    void *scratch = malloc(metrics_scratch_bytes(n) + 1);
    metrics_result r;
    metrics_compute(p, y, n, base_rate, scratch, &r);
    free(scratch);
    return r;
}

/* ---- references ------------------------------------------------------- */

static double ref_auc(const float *p, const float *y, size_t n)
{
    double num = 0.0, pairs = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (y[i] != 1.0f) continue;
        for (size_t j = 0; j < n; j++) {
            if (y[j] != 0.0f) continue;
            pairs += 1.0;
            num += p[i] > p[j] ? 1.0 : p[i] == p[j] ? 0.5 : 0.0;
        }
    }
    return pairs > 0 ? num / pairs : NAN;
}

static int cmp_float_desc(const void *a, const void *b)
{
    float x = *(const float *)a, z = *(const float *)b;
    return (x < z) - (x > z);
}

/* AP = Σ over distinct thresholds t, from the highest, of
 * precision(score >= t) · (TP(t) - TP(previous t)) / P. */
static double ref_ap(const float *p, const float *y, size_t n)
{
    float *t = malloc(n * sizeof *t + 1);
    memcpy(t, p, n * sizeof *t);
    qsort(t, n, sizeof *t, cmp_float_desc);
    double P = 0;
    for (size_t i = 0; i < n; i++) P += y[i];
    double ap = 0.0, tp_prev = 0.0;
    for (size_t k = 0; k < n; k++) {
        if (k > 0 && t[k] == t[k - 1]) continue; /* distinct thresholds only */
        double tp = 0, fp = 0;
        for (size_t i = 0; i < n; i++) {
            if (p[i] >= t[k]) {
                if (y[i] == 1.0f) tp++;
                else fp++;
            }
        }
        ap += tp / (tp + fp) * (tp - tp_prev) / P;
        tp_prev = tp;
    }
    free(t);
    return P > 0 ? ap : NAN;
}

static double ref_logloss(const float *p, const float *y, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double q = p[i];
        if (q < 1e-7) q = 1e-7;
        if (q > 1 - 1e-7) q = 1 - 1e-7;
        s += -(y[i] * log(q) + (1 - y[i]) * log(1 - q));
    }
    return s / (double)n;
}

static double ref_rce(double ll, double rate, double base_rate)
{
    double b = base_rate < 1e-7 ? 1e-7 : base_rate > 1 - 1e-7 ? 1 - 1e-7 : base_rate;
    double llb = -(rate * log(b) + (1 - rate) * log(1 - b));
    return 100.0 * (llb - ll) / llb;
}

/* Rank-sum (Mann-Whitney) AUC with mid-ranks for ties; O(n log n). */
typedef struct { float p, y; } ref_row;
static int cmp_row_asc(const void *a, const void *b)
{
    float x = ((const ref_row *)a)->p, z = ((const ref_row *)b)->p;
    return (x > z) - (x < z);
}
static double ref_auc_ranksum(const float *p, const float *y, size_t n)
{
    ref_row *r = malloc(n * sizeof *r);
    for (size_t i = 0; i < n; i++) r[i] = (ref_row){p[i], y[i]};
    qsort(r, n, sizeof *r, cmp_row_asc);
    double rank_sum = 0.0, P = 0.0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && r[j].p == r[i].p) j++;
        double mid = 0.5 * (double)(i + 1 + j); /* ranks i+1 .. j */
        for (size_t k = i; k < j; k++) {
            if (r[k].y == 1.0f) {
                rank_sum += mid;
                P += 1.0;
            }
        }
        i = j;
    }
    free(r);
    double N = (double)n - P;
    return (rank_sum - P * (P + 1) / 2) / (P * N);
}

/* ---- tests ------------------------------------------------------------ */

/* Checks every metric of (p, y) against the references. */
static void check_all(const float *p, const float *y, size_t n, double base_rate, const char *what)
{
    metrics_result r = run(p, y, n, base_rate);
    size_t P = 0;
    double sp = 0;
    for (size_t i = 0; i < n; i++) {
        P += y[i] == 1.0f;
        sp += p[i];
    }
    double ll = ref_logloss(p, y, n), rate = (double)P / (double)n;
    CHECK(r.n == n && r.positives == P, "%s: n %zu pos %zu vs %zu %zu", what, r.n, r.positives, n, P);
    CHECK(near(r.auc, ref_auc(p, y, n), 1e-12), "%s n=%zu: auc %.15g ref %.15g", what, n, r.auc,
          ref_auc(p, y, n));
    CHECK(near(r.prauc, ref_ap(p, y, n), 1e-12), "%s n=%zu: prauc %.15g ref %.15g", what, n,
          r.prauc, ref_ap(p, y, n));
    CHECK(near(r.logloss, ll, 1e-12 * (1 + ll)), "%s n=%zu: logloss %.15g ref %.15g", what, n,
          r.logloss, ll);
    CHECK(near(r.rce, ref_rce(ll, rate, base_rate), 1e-9), "%s n=%zu: rce %.15g ref %.15g", what,
          n, r.rce, ref_rce(ll, rate, base_rate));
    CHECK(near(r.calibration, P ? sp / (double)P : NAN, 1e-12), "%s n=%zu: calibration %.15g",
          what, n, r.calibration);
    CHECK(near(r.mean_pred, sp / (double)n, 1e-12), "%s: mean_pred %.15g", what, r.mean_pred);
    CHECK(near(r.rate, rate, 0), "%s: rate %.15g", what, r.rate);
}

static void test_random_vs_bruteforce(void)
{
    rng_state = 42;
    enum { SETS = 400, MAXN = 2000 };
    float *p = malloc(MAXN * sizeof *p), *y = malloc(MAXN * sizeof *y);
    static const float pool[] = {0.0f, 0.1f, 0.25f, 0.5f, 0.75f, 1.0f};
    for (int s = 0; s < SETS; s++) {
        /* sizes: every n in 1..40, then spread up to 2000 */
        size_t n = s < 40 ? (size_t)s + 1 : 1 + rng_below(s % 10 == 0 ? MAXN : 400);
        int mode = s % 4; /* 0 continuous, 1 a few values, 2 two values, 3 fine grid */
        int nvals = 2 + (int)rng_below(4);
        double prior = rng_unif();
        for (size_t i = 0; i < n; i++) {
            double u = rng_unif();
            switch (mode) {
            case 0: p[i] = (float)u; break;
            case 1: p[i] = pool[rng_below((size_t)nvals)]; break;
            case 2: p[i] = u < 0.5 ? 0.3f : 0.7f; break;
            default: p[i] = (float)(rng_below(20) / 20.0); break;
            }
            /* labels correlated with the score so AUC is not always ~0.5 */
            y[i] = rng_unif() < prior * (0.5 + 0.5 * p[i]) ? 1.0f : 0.0f;
        }
        char what[64];
        snprintf(what, sizeof what, "random set %d mode %d", s, mode);
        check_all(p, y, n, 0.05 + 0.9 * rng_unif(), what);
    }
    free(p);
    free(y);
}

static void test_hand_cases(void)
{
    /* scikit-learn's documented examples: roc_auc_score 0.75,
     * average_precision_score 0.8333... */
    const float p1[] = {0.1f, 0.4f, 0.35f, 0.8f}, y1[] = {0, 0, 1, 1};
    metrics_result r = run(p1, y1, 4, 0.5);
    CHECK(near(r.auc, 0.75, 1e-15), "auc %.17g", r.auc);
    CHECK(near(r.prauc, 5.0 / 6.0, 1e-15), "prauc %.17g", r.prauc);

    /* all tied: AUC one half, AP = rate */
    const float p2[] = {0.5f, 0.5f, 0.5f, 0.5f}, y2[] = {1, 0, 1, 0};
    r = run(p2, y2, 4, 0.5);
    CHECK(near(r.auc, 0.5, 0), "all tied auc %.17g", r.auc);
    CHECK(near(r.prauc, 0.5, 0), "all tied prauc %.17g", r.prauc);

    /* -0 and +0 tie */
    const float p3[] = {-0.0f, 0.0f}, y3[] = {1, 0};
    r = run(p3, y3, 2, 0.5);
    CHECK(near(r.auc, 0.5, 0), "signed zeros auc %.17g", r.auc);

    /* negative scores and infinities rank correctly (the key mapping) */
    const float p4[] = {-INFINITY, -2.0f, -1.0f, -1e-30f, 1e-30f, 3.0f, INFINITY};
    const float y4[] = {0, 0, 0, 1, 0, 1, 1};
    r = run(p4, y4, 7, 0.5);
    CHECK(near(r.auc, ref_auc(p4, y4, 7), 1e-15), "signed auc %.17g ref %.17g", r.auc,
          ref_auc(p4, y4, 7));
    CHECK(near(r.prauc, ref_ap(p4, y4, 7), 1e-15), "signed prauc %.17g ref %.17g", r.prauc,
          ref_ap(p4, y4, 7));

    /* log loss clamps: p = 0 on a positive and p = 1 on a negative cost
     * -log(1e-7) each; RCE against a clamped base rate */
    const float p5[] = {0.0f, 1.0f}, y5[] = {1, 0};
    r = run(p5, y5, 2, 0.0);
    /* (1 - 1e-7 is not exact in double: 1 - that is 1e-7 to ~1e-9 relative) */
    CHECK(near(r.logloss, -log(1e-7), 1e-8), "clamped logloss %.17g", r.logloss);
    CHECK(near(r.logloss, ref_logloss(p5, y5, 2), 1e-12), "clamped logloss %.17g", r.logloss);
    CHECK(near(r.rce, ref_rce(ref_logloss(p5, y5, 2), 0.5, 0.0), 1e-9), "clamped rce %.17g",
          r.rce);
    CHECK(isfinite(r.rce), "rce with base rate 0 must be finite");
    r = run(p5, y5, 2, 1.0);
    CHECK(isfinite(r.rce), "rce with base rate 1 must be finite");

    /* RCE of predicting exactly the base rate is 0; calibration 1 */
    const float p6[] = {0.25f, 0.25f, 0.25f, 0.25f}, y6[] = {1, 0, 0, 0};
    r = run(p6, y6, 4, 0.25);
    CHECK(near(r.rce, 0.0, 1e-12), "rce at base rate %.17g", r.rce);
    CHECK(near(r.calibration, 1.0, 1e-15), "calibration %.17g", r.calibration);
    CHECK(near(r.logloss, -(0.25 * log(0.25) + 0.75 * log(0.75)), 1e-15), "logloss %.17g",
          r.logloss);

    /* calibration = mean(p)/mean(y): over-prediction by 2x */
    const float p7[] = {0.5f, 0.5f, 0.5f, 0.5f}, y7[] = {1, 0, 0, 0};
    r = run(p7, y7, 4, 0.25);
    CHECK(near(r.calibration, 2.0, 1e-15), "calibration 2x %.17g", r.calibration);
    CHECK(near(r.mean_pred, 0.5, 0) && near(r.rate, 0.25, 0), "mean_pred %g rate %g",
          r.mean_pred, r.rate);
}

static void test_perfect_and_inverted(void)
{
    rng_state = 7;
    enum { N = 1000 };
    float p[N], y[N], q[N];
    for (int i = 0; i < N; i++) {
        y[i] = rng_unif() < 0.3 ? 1.0f : 0.0f;
        p[i] = y[i] == 1.0f ? (float)(0.5 + 0.5 * rng_unif()) : (float)(0.49 * rng_unif());
        q[i] = 1.0f - p[i];
    }
    metrics_result r = run(p, y, N, 0.3);
    CHECK(near(r.auc, 1.0, 0), "perfect auc %.17g", r.auc);
    CHECK(near(r.prauc, 1.0, 1e-15), "perfect prauc %.17g", r.prauc);
    r = run(q, y, N, 0.3);
    CHECK(near(r.auc, 0.0, 0), "inverted auc %.17g", r.auc);
    CHECK(near(r.prauc, ref_ap(q, y, N), 1e-12), "inverted prauc %.17g", r.prauc);
}

static void test_undefined(void)
{
    metrics_result r;
    /* n = 0: everything undefined; scratch may be NULL */
    metrics_compute(NULL, NULL, 0, 0.1, NULL, &r);
    CHECK(r.n == 0 && r.positives == 0, "n=0 counts");
    CHECK(isnan(r.auc) && isnan(r.prauc) && isnan(r.logloss) && isnan(r.rce) &&
              isnan(r.calibration) && isnan(r.mean_pred) && isnan(r.rate),
          "n=0 must be all NaN");

    /* no positives: auc, prauc, calibration NaN; log loss and rce defined */
    const float p0[] = {0.1f, 0.2f, 0.3f}, y0[] = {0, 0, 0};
    r = run(p0, y0, 3, 0.1);
    CHECK(isnan(r.auc) && isnan(r.prauc) && isnan(r.calibration), "no positives: %g %g %g",
          r.auc, r.prauc, r.calibration);
    CHECK(near(r.logloss, ref_logloss(p0, y0, 3), 1e-15) && isfinite(r.rce),
          "no positives: logloss %g rce %g", r.logloss, r.rce);
    CHECK(r.positives == 0 && r.rate == 0.0, "no positives: rate %g", r.rate);

    /* only positives: auc NaN, prauc 1, calibration defined */
    const float y1[] = {1, 1, 1};
    r = run(p0, y1, 3, 0.1);
    CHECK(isnan(r.auc), "one class auc %g", r.auc);
    CHECK(near(r.prauc, 1.0, 0), "all positive prauc %g", r.prauc);
    CHECK(near(r.calibration, 0.2, 1e-7), "all positive calibration %g", r.calibration);

    /* n = 1 */
    const float p1[] = {0.9f}, y1b[] = {1};
    r = run(p1, y1b, 1, 0.5);
    CHECK(isnan(r.auc) && near(r.prauc, 1.0, 0), "n=1: auc %g prauc %g", r.auc, r.prauc);

    /* a NaN prediction: scores are not rankable, metrics NaN, counts kept */
    const float p2[] = {0.1f, NAN, 0.7f, 0.4f}, y2[] = {0, 1, 1, 0};
    r = run(p2, y2, 4, 0.5);
    CHECK(isnan(r.auc) && isnan(r.prauc) && isnan(r.logloss) && isnan(r.rce) &&
              isnan(r.calibration) && isnan(r.mean_pred),
          "NaN prediction must make scores NaN");
    CHECK(r.n == 4 && r.positives == 2 && r.rate == 0.5, "NaN prediction counts %zu %zu %g", r.n,
          r.positives, r.rate);

    /* NaN base rate: only rce is undefined */
    r = run(p2 + 2, y2 + 2, 2, NAN);
    CHECK(isnan(r.rce) && isfinite(r.logloss) && near(r.auc, 1.0, 0), "NaN base rate: rce %g",
          r.rce);
}

static void test_inputs_untouched(void)
{
    rng_state = 99;
    enum { N = 300 };
    float p[N], y[N], p0[N], y0[N];
    for (int i = 0; i < N; i++) {
        p[i] = (float)rng_unif();
        y[i] = rng_unif() < 0.4 ? 1.0f : 0.0f;
    }
    memcpy(p0, p, sizeof p);
    memcpy(y0, y, sizeof y);
    metrics_result a = run(p, y, N, 0.4), b = run(p, y, N, 0.4);
    CHECK(memcmp(p, p0, sizeof p) == 0 && memcmp(y, y0, sizeof y) == 0, "inputs modified");
    CHECK(memcmp(&a, &b, sizeof a) == 0, "not deterministic");
}

static void test_json(void)
{
    const float p[] = {0.1f, 0.4f, 0.35f, 0.8f}, y[] = {0, 0, 1, 1};
    metrics_result r = run(p, y, 4, 0.5);
    char buf[512];
    int len = metrics_json(&r, buf, sizeof buf);
    CHECK(len > 0 && (size_t)len == strlen(buf), "json length %d vs %zu", len, strlen(buf));
    static const char head[] = "{\"n\":4,\"positives\":2,\"auc\":0.75,\"prauc\":0.83333333";
    CHECK(strncmp(buf, head, sizeof head - 1) == 0, "json head: %s", buf);
    static const char *keys[] = {"\"logloss\":", "\"rce\":", "\"calibration\":",
                                 "\"mean_pred\":", "\"rate\":0.5}"};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
        CHECK(strstr(buf, keys[k]) != NULL, "json lacks %s: %s", keys[k], buf);

    /* values 1e-4 apart must print differently */
    metrics_result r2 = r;
    r2.auc += 1e-4;
    r2.rce = 12.3456;
    r.rce = 12.3457;
    char buf2[512];
    metrics_json(&r2, buf2, sizeof buf2);
    metrics_json(&r, buf, sizeof buf);
    CHECK(strstr(buf2, "\"auc\":0.7501,") && strstr(buf2, "\"rce\":12.3456,") &&
              strstr(buf, "\"rce\":12.3457,"),
          "json precision: %s / %s", buf, buf2);

    /* NaN -> null */
    metrics_result z;
    metrics_compute(NULL, NULL, 0, 0.1, NULL, &z);
    len = metrics_json(&z, buf, sizeof buf);
    CHECK(strcmp(buf, "{\"n\":0,\"positives\":0,\"auc\":null,\"prauc\":null,\"logloss\":null,"
                      "\"rce\":null,\"calibration\":null,\"mean_pred\":null,\"rate\":null}") == 0,
          "json nulls: %s", buf);

    /* snprintf semantics: truncated output is a prefix, the return value the full length */
    char small[16];
    int len2 = metrics_json(&z, small, sizeof small);
    CHECK(len2 == len && strlen(small) == sizeof small - 1 && strncmp(small, buf, 15) == 0,
          "truncation: %d vs %d, '%s'", len2, len, small);
    CHECK(metrics_json(&z, NULL, 0) == len, "cap 0 must only measure");
}

static void test_large(void)
{
    rng_state = 2024;
    const size_t n = 5000000;
    float *p = malloc(n * sizeof *p), *y = malloc(n * sizeof *y);
    void *scratch = malloc(metrics_scratch_bytes(n));
    CHECK(p && y && scratch, "out of memory");
    if (!p || !y || !scratch) goto out;
    /* a CTR-like task: ~4% positives, scores with a signal and float ties */
    for (size_t i = 0; i < n; i++) {
        double z = rng_unif();
        y[i] = z < 0.04 ? 1.0f : 0.0f;
        double s = 0.04 * exp(1.5 * (rng_unif() - 0.5) + (y[i] == 1.0f ? 0.7 : 0.0));
        p[i] = (float)(round(s * 1e5) / 1e5); /* 5 decimals: many ties */
    }
    metrics_result r;
    /* the first call also faults in the fresh scratch pages; an eval loop
     * reuses its scratch, so the second call is the steady-state cost */
    double t0 = now_sec();
    metrics_compute(p, y, n, 0.04, scratch, &r);
    double cold = now_sec() - t0;
    t0 = now_sec();
    metrics_compute(p, y, n, 0.04, scratch, &r);
    double dt = now_sec() - t0;
    printf("metrics_compute on %zu rows: %.3f s (first call, cold scratch: %.3f s)\n"
           "  auc %.6f prauc %.6f logloss %.6f rce %.4f calibration %.4f\n",
           n, dt, cold, r.auc, r.prauc, r.logloss, r.rce, r.calibration);
    double auc_ref = ref_auc_ranksum(p, y, n);
    CHECK(near(r.auc, auc_ref, 1e-9), "5M auc %.15g rank-sum %.15g", r.auc, auc_ref);
    double ll = ref_logloss(p, y, n);
    CHECK(near(r.logloss, ll, 1e-9), "5M logloss %.15g ref %.15g", r.logloss, ll);
    CHECK(r.auc > 0.6 && r.auc < 0.9, "5M auc implausible %g", r.auc);
    CHECK(dt < 5.0, "5M rows took %.3f s: not O(n log n)?", dt);

    /* the same rows, all scores distinct in their low bits, exercising
     * every radix pass */
    for (size_t i = 0; i < n; i++) p[i] = (float)(rng_unif() * 0.5 + 0.5 * y[i] * rng_unif());
    t0 = now_sec();
    metrics_compute(p, y, n, 0.04, scratch, &r);
    dt = now_sec() - t0;
    printf("metrics_compute on %zu distinct-ish rows: %.3f s (auc %.6f)\n", n, dt, r.auc);
    auc_ref = ref_auc_ranksum(p, y, n);
    CHECK(near(r.auc, auc_ref, 1e-9), "5M auc %.15g rank-sum %.15g", r.auc, auc_ref);
out:
    free(p);
    free(y);
    free(scratch);
}

int main(void)
{
    test_hand_cases();
    test_undefined();
    test_perfect_and_inverted();
    test_inputs_untouched();
    test_json();
    test_random_vs_bruteforce();
    test_large();
    if (failures) {
        fprintf(stderr, "test_metrics: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_metrics: all passed\n");
    return 0;
}
