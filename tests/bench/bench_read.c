/* tests/bench/bench_read.c — single-core read rate of the input formats.
 *
 *   bench_read --data SKELETON.csv --common COMMON.csv --bin DIR [--runs 3] [--batch 1024] [--fields aliccp]
 *
 * Reads the same data set through reader.h as one partition, no training:
 * the Ali-CCP text (sample skeleton + common features) and its binary copy
 * (`funnel convert`), each --runs times, and prints the median
 * impressions/s per core (examples / CPU seconds of this one-threaded
 * process) and per wall second, then the ratio bin / text.  "text" counts
 * the streaming of the skeleton only (the common features are loaded
 * before the clock starts: the reader's steady state); "text+load" adds
 * the loading of the common file, what a job pays at start.  Both readers
 * must produce identical examples: a digest of every sample id, label,
 * field, key and value is compared (exit 1 if they differ).  Built by
 * CMake (not a test); tests/bench/bench_read.sh generates data and runs it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch.h"
#include "flags.h"
#include "fn_error.h"
#include "hash.h"
#include "reader.h"
#include "schema.h"

static double clock_of(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct { uint64_t n, nf, digest; } pass_result;

static uint64_t digest_batch(uint64_t h, const fn_batch *b)
{
    for (int i = 0; i < b->n; i++) {
        h = fn_mix64(h ^ b->sample_id[i]) ^ (uint64_t)(b->click[i] * 2 + b->buy[i]);
        for (size_t j = b->off[i]; j < b->off[i + 1]; j++) {
            uint32_t v;
            memcpy(&v, &b->val[j], 4);
            h = fn_mix64(h + b->key[j]) ^ ((uint64_t)b->field[j] << 32 | v);
        }
    }
    return h;
}

/* One pass over the reader's partition from its start.  digest: also
 * hash every example (not in timed passes: hashing costs more than the
 * binary reading it would measure). */
static int one_pass(fn_reader *rd, fn_batch *b, int batch, int digest, pass_result *r)
{
    memset(r, 0, sizeof *r);
    int rc = reader_rewind(rd);
    while (!rc) {
        if ((rc = reader_next(rd, b, batch)) || b->n == 0) break;
        r->n += (uint64_t)b->n;
        r->nf += b->nf;
        if (digest) r->digest = digest_batch(r->digest, b);
    }
    return rc;
}

/* Opens the data set (timing it: the common features' load for text),
 * makes a first, hashed pass (warming the page cache, the buffers and
 * checking the content), then `runs` timed passes: rates[k] =
 * impressions/s per CPU second and per wall second of pass k. */
static int bench_format(const char *format, const char *path, const char *common, const fn_schema *schema, int batch, int runs,
                        double *cpu_rate, double *wall_rate, double *open_cpu, pass_result *check)
{
    double c0 = clock_of(CLOCK_PROCESS_CPUTIME_ID);
    fn_dataset *d = NULL;
    fn_reader *rd = NULL;
    fn_batch b;
    memset(&b, 0, sizeof b);
    int rc = dataset_open(&d, format, path, common, schema, 0);
    if (!rc) rc = reader_open(&rd, d, 0, 1);
    *open_cpu = clock_of(CLOCK_PROCESS_CPUTIME_ID) - c0;
    if (!rc && batch_init(&b, batch, (size_t)batch * 64)) rc = FN_ENOMEM;
    if (!rc) rc = one_pass(rd, &b, batch, 1, check);
    for (int k = 0; k < runs && !rc; k++) {
        pass_result r;
        double c1 = clock_of(CLOCK_PROCESS_CPUTIME_ID), w1 = clock_of(CLOCK_MONOTONIC);
        rc = one_pass(rd, &b, batch, 0, &r);
        double c2 = clock_of(CLOCK_PROCESS_CPUTIME_ID), w2 = clock_of(CLOCK_MONOTONIC);
        cpu_rate[k] = (double)r.n / (c2 - c1);
        wall_rate[k] = (double)r.n / (w2 - w1);
    }
    batch_free(&b);
    reader_close(&rd);
    dataset_close(&d);
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv)
{
    const char *data = NULL, *common = NULL, *bin = NULL, *fields = "aliccp", *only = NULL;
    long runs = 3, batch = 1024;
    flag_spec specs[] = {
        {"data", FLAG_STRING, &data, 0, 0, NULL, "Ali-CCP sample skeleton file", 1, 0},
        {"common", FLAG_STRING, &common, 0, 0, NULL, "its common features file", 1, 0},
        {"bin", FLAG_STRING, &bin, 0, 0, NULL, "the same data converted by funnel convert (directory or .fbin)", 1, 0},
        {"runs", FLAG_INT, &runs, 1, 99, NULL, "runs per format; the median is reported (default 3)", 0, 0},
        {"batch", FLAG_INT, &batch, 1, 1 << 20, NULL, "examples per reader_next (default 1024)", 0, 0},
        {"fields", FLAG_STRING, &fields, 0, 0, NULL, "feature fields, as given to convert (default aliccp)", 0, 0},
        {"only", FLAG_CHOICE, &only, 0, 0, "text|bin", "time one reader only, e.g. under perf (no comparison)", 0, 0},
        {0},
    };
    int rc = flags_parse(specs, argc, argv);
    if (rc == FLAGS_HELP) { flags_usage(stdout, "bench_read --data FILE --common FILE --bin DIR [--runs N]", specs); return 0; }
    if (rc) { fprintf(stderr, "bench_read: %s\n", fn_err_msg()); return 2; }
    fn_schema schema;
    if (schema_parse(&schema, fields)) { fprintf(stderr, "bench_read: %s\n", fn_err_msg()); return 2; }
    const char *fmt[2] = {"aliccp", "bin"};
    double cpu[2][99], wall[2][99], open_cpu[2];
    pass_result check[2];
    for (int f = 0; f < 2; f++) {
        if (only && strcmp(only, f ? "bin" : "text")) continue;
        if ((rc = bench_format(fmt[f], f ? bin : data, f ? NULL : common, &schema, (int)batch, (int)runs, cpu[f], wall[f], &open_cpu[f], &check[f]))) {
            fprintf(stderr, "bench_read: %s: %s\n", fmt[f], fn_err_msg());
            return 1;
        }
    }
    if (only) {
        int f = !strcmp(only, "bin");
        printf("%s: %llu impressions, %.0f imp/s per core, %.0f wall (median of %ld)\n", only, (unsigned long long)check[f].n,
               median(cpu[f], (int)runs), median(wall[f], (int)runs), runs);
        return 0;
    }
    if (check[0].n != check[1].n || check[0].digest != check[1].digest) {
        fprintf(stderr, "bench_read: the formats differ: %llu vs %llu examples, digests %016llx vs %016llx\n", (unsigned long long)check[0].n,
                (unsigned long long)check[1].n, (unsigned long long)check[0].digest, (unsigned long long)check[1].digest);
        return 1;
    }
    double n = (double)check[0].n, mc[2], mw[2];
    for (int f = 0; f < 2; f++) {
        mc[f] = median(cpu[f], (int)runs);
        mw[f] = median(wall[f], (int)runs);
    }
    double with_load = n / (n / mc[0] + open_cpu[0]);
    printf("%llu impressions, %.1f features each, batch %ld; median of %ld pass(es) after a first one; identical examples from both readers\n",
           (unsigned long long)check[0].n, (double)check[0].nf / (n > 0 ? n : 1), batch, runs);
    printf("%-28s %16s %16s\n", "reader (one partition)", "imp/s per core", "imp/s wall");
    printf("%-28s %16.0f %16.0f\n", "aliccp text", mc[0], mw[0]);
    printf("%-28s %16.0f %16s\n", "aliccp text + common load", with_load, "");
    printf("%-28s %16.0f %16.0f\n", "bin", mc[1], mw[1]);
    printf("ratio bin/text: %.1fx per core, %.1fx wall (%.1fx against text with its load; the load took %.2f s)\n", mc[1] / mc[0],
           mw[1] / mw[0], mc[1] / with_load, open_cpu[0]);
    return 0;
}
