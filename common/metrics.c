/* common/metrics.c — exact evaluation metrics of a binary task (see metrics.h).
 *
 * Owns: the one sort an evaluation costs and the sums over the sorted
 * scores.  Called by the worker's eval loop once per task and space, on a
 * whole test set (millions of rows), with caller-owned scratch: it never
 * allocates, never logs and never fails; undefined metrics come back NaN.
 *
 * How:
 *   one pass over (p, y) accumulates the sums (in double) and writes a
 *   (key, label) pair per row, where key is the prediction's float bits
 *   mapped so that unsigned order is decreasing score order (-0 == +0); it
 *   also builds the histograms of all radix digits at once;
 *   an LSD radix sort on the 32-bit key, 3 passes of 11/11/10 bits between
 *   the two halves of the scratch (so it needs 2n pairs, 16 bytes a row),
 *   skipping passes where every key has the same digit (all-tied or
 *   few-valued scores);
 *   one pass over the sorted pairs, a group of equal keys at a time, gives
 *   ROC-AUC (ties one half) and average precision (ties grouped).
 *
 * Labels: a row is positive iff y > 0.5 (labels are 0/1 floats).
 * A NaN prediction has no rank and no log loss: if any is present, auc,
 * prauc, logloss, rce and calibration are NaN (and so is mean_pred), so a
 * diverged model reads as null in metrics.jsonl rather than as a number. */
#include "metrics.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* One row of the sort.  key: prediction bits, order-mapped (see
 * metrics_key); label: 1 positive, 0 negative. */
typedef struct {
    uint32_t key;
    uint32_t label;
} metrics_pair;

#define METRICS_CLAMP_LO 1e-7
#define METRICS_CLAMP_HI (1.0 - 1e-7)

/* Radix digits: bits [0,11), [11,22), [22,32). */
enum { METRICS_RADIX_BITS = 11, METRICS_RADIX = 1 << METRICS_RADIX_BITS, METRICS_PASSES = 3 };

size_t metrics_scratch_bytes(size_t n)
{
    /* two regions of n pairs: the radix sort ping-pongs between them */
    if (n > SIZE_MAX / (2 * sizeof(metrics_pair))) return SIZE_MAX;
    return 2 * n * sizeof(metrics_pair);
}

/* Float bits -> unsigned key whose ascending order is the float's
 * descending order.  -0 maps like +0 so that the two tie. */
static inline uint32_t metrics_key(float f)
{
    uint32_t u;
    if (f == 0.0f) f = 0.0f;
    memcpy(&u, &f, sizeof u);
    uint32_t asc = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ~asc;
}

static inline uint32_t metrics_digit(uint32_t key, int pass)
{
    return (key >> (pass * METRICS_RADIX_BITS)) & (METRICS_RADIX - 1);
}

static inline double metrics_clamp(double v)
{
    return v < METRICS_CLAMP_LO ? METRICS_CLAMP_LO : v > METRICS_CLAMP_HI ? METRICS_CLAMP_HI : v;
}

/* Sorts a[0..n) by key using b[0..n) as the other buffer; hist[pass][digit]
 * are the digit counts.  Returns whichever of a, b holds the result.
 * Destroys hist. */
static metrics_pair *metrics_radix_sort(metrics_pair *a, metrics_pair *b, size_t n,
                                        size_t hist[METRICS_PASSES][METRICS_RADIX])
{
    metrics_pair *src = a, *dst = b;
    for (int pass = 0; pass < METRICS_PASSES; pass++) {
        size_t *h = hist[pass];
        if (h[metrics_digit(src[0].key, pass)] == n) continue; /* one digit: order unchanged */
        size_t sum = 0;
        for (int d = 0; d < METRICS_RADIX; d++) {
            size_t c = h[d];
            h[d] = sum; /* now: first output slot of digit d */
            sum += c;
        }
        for (size_t i = 0; i < n; i++) dst[h[metrics_digit(src[i].key, pass)]++] = src[i];
        metrics_pair *t = src;
        src = dst;
        dst = t;
    }
    return src;
}

void metrics_compute(const float *p, const float *y, size_t n, double base_rate,
                     void *scratch, metrics_result *out)
{
    memset(out, 0, sizeof *out);
    out->n = n;
    out->auc = out->prauc = out->logloss = out->rce = out->calibration = NAN;
    out->mean_pred = out->rate = NAN;
    if (n == 0) return;

    /* 3 x 2048 counts: 48 KiB on the stack, so the call stays reentrant */
    size_t hist[METRICS_PASSES][METRICS_RADIX];
    memset(hist, 0, sizeof hist);

    metrics_pair *a = scratch, *b = a + n;
    double sum_p = 0.0, sum_ll = 0.0; /* sum_ll: Σ log-likelihood, <= 0 */
    size_t pos = 0, nan_p = 0;
    for (size_t i = 0; i < n; i++) {
        float pf = p[i];
        uint32_t lab = y[i] > 0.5f;
        pos += lab; /* positives and rate count every row, scored or not */
        if (isnan(pf)) {
            nan_p++;
            continue;
        }
        double pc = metrics_clamp((double)pf);
        sum_p += (double)pf;
        sum_ll += lab ? log(pc) : log1p(-pc);
        uint32_t k = metrics_key(pf);
        a[i].key = k;
        a[i].label = lab;
        for (int pass = 0; pass < METRICS_PASSES; pass++) hist[pass][metrics_digit(k, pass)]++;
    }
    out->positives = pos;
    out->rate = (double)pos / (double)n;
    if (nan_p) return;
    out->mean_pred = sum_p / (double)n;
    out->logloss = -sum_ll / (double)n;
    if (!isnan(base_rate)) {
        double br = metrics_clamp(base_rate), r = out->rate;
        double ll_base = -(r * log(br) + (1.0 - r) * log1p(-br)); /* > 0 since br is clamped */
        out->rce = 100.0 * (ll_base - out->logloss) / ll_base;
    }
    if (pos == 0) return; /* auc, prauc, calibration undefined */
    out->calibration = sum_p / (double)pos;
    size_t neg = n - pos;

    const metrics_pair *s = metrics_radix_sort(a, b, n, hist);

    /* Groups of equal score, best first.  A positive of group g beats the
     * negatives of later groups (neg - fp, fp counted through g) and ties
     * the fg of its own: 2·AUC numerator = Σ tg·(2·(neg - fp) + fg), exact
     * in 64 bits while n < 6e9.  AP adds precision at g times g's recall step. */
    uint64_t tp = 0, fp = 0, auc2 = 0;
    double ap = 0.0;
    for (size_t i = 0; i < n;) {
        uint32_t key = s[i].key;
        uint64_t tg = 0, fg = 0;
        do {
            tg += s[i].label;
            fg += !s[i].label;
            i++;
        } while (i < n && s[i].key == key);
        tp += tg;
        fp += fg;
        auc2 += tg * (2 * ((uint64_t)neg - fp) + fg);
        if (tg) ap += (double)tp / (double)(tp + fp) * (double)tg;
    }
    out->prauc = ap / (double)pos;
    if (neg > 0) out->auc = (double)auc2 / (2.0 * (double)pos * (double)neg);
}

/* Appends to buf with snprintf semantics: *len counts what would have
 * been written had cap been large enough. */
static void metrics_put(char *buf, size_t cap, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void metrics_put(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *at = *len < cap ? buf + *len : NULL;
    size_t room = *len < cap ? cap - *len : 0;
    int k = vsnprintf(at, room, fmt, ap);
    va_end(ap);
    if (k > 0) *len += (size_t)k;
}

static void metrics_put_num(char *buf, size_t cap, size_t *len, const char *name, double v)
{
    /* JSON has no NaN or inf; 9 significant digits show any 1e-4 change */
    if (isfinite(v)) metrics_put(buf, cap, len, ",\"%s\":%.9g", name, v);
    else metrics_put(buf, cap, len, ",\"%s\":null", name);
}

int metrics_json(const metrics_result *r, char *buf, size_t cap)
{
    size_t len = 0;
    if (cap > 0) buf[0] = '\0';
    metrics_put(buf, cap, &len, "{\"n\":%zu,\"positives\":%zu", r->n, r->positives);
    metrics_put_num(buf, cap, &len, "auc", r->auc);
    metrics_put_num(buf, cap, &len, "prauc", r->prauc);
    metrics_put_num(buf, cap, &len, "logloss", r->logloss);
    metrics_put_num(buf, cap, &len, "rce", r->rce);
    metrics_put_num(buf, cap, &len, "calibration", r->calibration);
    metrics_put_num(buf, cap, &len, "mean_pred", r->mean_pred);
    metrics_put_num(buf, cap, &len, "rate", r->rate);
    metrics_put(buf, cap, &len, "}");
    return len > INT_MAX ? -1 : (int)len;
}
