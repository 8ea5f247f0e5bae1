/* common/zipfstream.c — see zipfstream.h. */
#include "zipfstream.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fn_error.h"

int zipf_spec_parse(zipf_spec *z, const char *spec)
{
    *z = (zipf_spec){.n = 1000000, .vocab = 1000000000, .seed = 1, .world = 1, .s = 1.05, .ctr = 0.04, .cvr = 0.1};
    const char *p = spec ? spec : "";
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (!eq) return fn_fail(FN_EUSAGE, "zipf stream spec '%s': item '%.*s' is not name=value", spec, (int)len, p);
        size_t nl = (size_t)(eq - p);
        char val[64];
        size_t vl = len - nl - 1;
        if (vl == 0 || vl >= sizeof val) return fn_fail(FN_EUSAGE, "zipf stream spec '%s': bad value in '%.*s'", spec, (int)len, p);
        memcpy(val, eq + 1, vl);
        val[vl] = 0;
        char *e;
        errno = 0;
        double v = strtod(val, &e);
        if (*e || errno || !isfinite(v)) return fn_fail(FN_EUSAGE, "zipf stream spec '%s': '%s' is not a number", spec, val);
#define IS(name) (nl == strlen(name) && !memcmp(p, name, nl))
#define RANGE(lo, hi, what)                                                                                          \
    if (!(v >= (lo) && v <= (hi)))                                                                                   \
        return fn_fail(FN_EUSAGE, "zipf stream spec '%s': %.*s=%s out of range [%g, %g]", spec, (int)nl, p, val, (double)(lo), \
                       (double)(hi));                                                                                \
    what;
        if (IS("n")) { RANGE(1, 1e15, z->n = (uint64_t)v) }
        else if (IS("vocab")) { RANGE(1, 1e13, z->vocab = (uint64_t)v) }
        else if (IS("s")) { RANGE(1.0001, 10, z->s = v) }
        else if (IS("seed")) { RANGE(0, 1e15, z->seed = (uint64_t)v) }
        else if (IS("world")) { RANGE(0, 1e15, z->world = (uint64_t)v) }
        else if (IS("ctr")) { RANGE(1e-6, 0.999, z->ctr = v) }
        else if (IS("cvr")) { RANGE(1e-6, 0.999, z->cvr = v) }
        else return fn_fail(FN_EUSAGE, "zipf stream spec '%s': unknown item '%.*s' (n, vocab, s, seed, world, ctr, cvr)", spec, (int)nl, p);
#undef IS
#undef RANGE
        p += len;
        if (*p == ',') p++;
    }
    return FN_OK;
}

/* ---- rejection-inversion (Hörmann & Derflinger 1996) --------------------
 * With h(x) = x^-s and H its integral, draw x = H^-1(u) for u uniform in
 * (H(vocab + 1/2), H(3/2) - 1], round to k, and accept when k is
 * certainly right (k - x <= sq) or the density test passes. */

static double helper1(double x) { return fabs(x) > 1e-8 ? log1p(x) / x : 1 - x * (0.5 - x * (1.0 / 3 - 0.25 * x)); }
static double helper2(double x) { return fabs(x) > 1e-8 ? expm1(x) / x : 1 + x * 0.5 * (1 + x * (1.0 / 3) * (1 + 0.25 * x)); }
static double zh(double s, double x) { return exp(-s * log(x)); }
static double zH(double s, double x) { double lx = log(x); return helper2((1 - s) * lx) * lx; }
static double zHinv(double s, double x)
{
    double t = x * (1 - s);
    if (t < -1) t = -1; /* only from rounding */
    return exp(helper1(t) * x);
}

void zipf_sampler_init(zipf_sampler *z, double s, uint64_t vocab)
{
    z->s = s;
    z->vocab = vocab;
    z->h_x1 = zH(s, 1.5) - 1;
    z->h_n = zH(s, (double)vocab + 0.5);
    z->sq = 2 - zHinv(s, zH(s, 2.5) - zh(s, 2));
}

uint64_t zipf_sample(const zipf_sampler *z, fn_rng *rng)
{
    for (;;) {
        double u = z->h_n + fn_rng_uniform(rng) * (z->h_x1 - z->h_n);
        double x = zHinv(z->s, u);
        double kd = floor(x + 0.5);
        if (kd < 1) kd = 1;
        else if (kd > (double)z->vocab) kd = (double)z->vocab;
        if (kd - x <= z->sq || u >= zH(z->s, kd + 0.5) - zh(z->s, kd)) return (uint64_t)kd;
    }
}

/* ---- the stream ---------------------------------------------------------- */

struct zipf_reader {
    zipf_spec spec;
    const fn_schema *schema;
    zipf_sampler zs;
    uint64_t begin, end, at; /* this partition: impressions [begin, end) */
    double base_c, base_v, scale;
    uint64_t wseed;          /* the hidden weights' seed, from the world */
    aliccp_stats stats;
};

int zipf_reader_open(zipf_reader **out, const zipf_spec *spec, const fn_schema *schema, int part, int nparts)
{
    *out = NULL;
    zipf_reader *r = calloc(1, sizeof *r);
    if (!r) return FN_ENOMEM;
    r->spec = *spec;
    r->schema = schema;
    zipf_sampler_init(&r->zs, spec->s, spec->vocab);
    r->begin = spec->n * (uint64_t)part / (uint64_t)nparts;
    r->end = spec->n * (uint64_t)(part + 1) / (uint64_t)nparts;
    r->at = r->begin;
    r->base_c = log(spec->ctr / (1 - spec->ctr));
    r->base_v = log(spec->cvr / (1 - spec->cvr));
    r->scale = 2.0 / sqrt((double)(schema->n > 0 ? schema->n : 1)); /* logit sd ~2 from the keys */
    r->wseed = fn_mix64(spec->world + 0x632BE59BD9B4E019ull);
    *out = r;
    return FN_OK;
}

void zipf_reader_close(zipf_reader **r)
{
    free(*r);
    *r = NULL;
}

/* A standard normal from a 64-bit hash (Box-Muller on its halves). */
static double hash_normal(uint64_t h)
{
    double u1 = ((double)(h >> 40) + 0.5) * 0x1.0p-24, u2 = (double)(h & 0xFFFFFF) * 0x1.0p-24;
    return sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
}

static double sigmoid(double x) { return 1 / (1 + exp(-x)); }

int zipf_reader_next(zipf_reader *r, fn_batch *b, int max)
{
    batch_clear(b);
    const int F = r->schema->n;
    for (int i = 0; i < max && r->at < r->end; i++, r->at++) {
        if (b->n == b->cap) break; /* the caller sized the batch */
        if (batch_reserve_features(b, (size_t)F)) return FN_ENOMEM;
        fn_rng rng;
        fn_rng_seed(&rng, fn_mix64(r->spec.seed * 0x9E3779B97F4A7C15ull ^ r->at));
        double lc = r->base_c, lv = r->base_v;
        for (int f = 0; f < F; f++) {
            uint64_t k = zipf_sample(&r->zs, &rng);
            uint64_t key = zipf_key(f, k);
            /* hidden weights: the head carries the signal, so weights shrink
             * with rank like a learnable model's would */
            double shrink = 1.0 / (1.0 + log((double)k));
            lc += r->scale * shrink * hash_normal(fn_mix64(key ^ r->wseed));
            lv += r->scale * shrink * hash_normal(fn_mix64(key ^ r->wseed ^ 0xD6E8FEB86659FD93ull));
            size_t at = b->nf++;
            b->field[at] = (uint16_t)f;
            b->key[at] = key;
            b->val[at] = 1.0f;
        }
        int n = b->n++;
        b->sample_id[n] = r->at;
        b->click[n] = fn_rng_uniform(&rng) < sigmoid(lc) ? 1.0f : 0.0f;
        b->buy[n] = b->click[n] > 0 && fn_rng_uniform(&rng) < sigmoid(lv) ? 1.0f : 0.0f;
        b->off[n + 1] = b->nf;
        r->stats.lines++;
        r->stats.examples++;
    }
    return FN_OK;
}

int zipf_reader_rewind(zipf_reader *r)
{
    r->at = r->begin;
    return FN_OK;
}

double zipf_reader_progress(const zipf_reader *r)
{
    return r->end > r->begin ? (double)(r->at - r->begin) / (double)(r->end - r->begin) : 1.0;
}

const aliccp_stats *zipf_reader_stats(const zipf_reader *r) { return &r->stats; }

void zipf_reader_tell(const zipf_reader *r, uint64_t pos[2])
{
    pos[0] = r->at;
    pos[1] = 0;
}

int zipf_reader_seek(zipf_reader *r, const uint64_t pos[2])
{
    if (pos[0] < r->begin || pos[0] > r->end)
        return fn_fail(FN_EINVAL, "zipf stream: position %llu outside this partition [%llu, %llu]", (unsigned long long)pos[0],
                       (unsigned long long)r->begin, (unsigned long long)r->end);
    r->at = pos[0];
    return FN_OK;
}
