/* tests/bench/bench_embed.c — the worker's sparse side alone, on real batches.
 *
 *   bench_embed --format aliccp|bin --data PATH [--common FILE] [--batches N]
 *               [--batch B] [--threads T] [--dim D] [--reps R]
 *
 * Reads N batches of B impressions once (the common-feature table is built
 * into a temporary file for text), then times, R times over those batches,
 * what a training step does with them besides the towers and the network:
 * embed_prepare (de-duplication, server order: the reading thread's work),
 * embed_pool (the towers' input) and embed_backward (gradients per key),
 * the last two on T threads.  Prints ns per impression and per entry of
 * each, the best of R, and the batches' shape (entries, distinct sets and
 * keys per batch). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "embed.h"
#include "fn_error.h"
#include "flags.h"
#include "hash.h"
#include "par.h"
#include "reader.h"
#include "schema.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    const char *format = "aliccp", *data = NULL, *common = NULL;
    long nb = 20, B = 1024, threads = 2, dim = 16, reps = 5;
    flag_spec specs[] = {
        {"format", FLAG_CHOICE, &format, 0, 0, "aliccp|bin", "input format", 0, 0},
        {"data", FLAG_STRING, &data, 0, 0, NULL, "skeleton file or binary directory", 1, 0},
        {"common", FLAG_STRING, &common, 0, 0, NULL, "common features file (aliccp)", 0, 0},
        {"batches", FLAG_INT, &nb, 1, 100000, NULL, "batches to read (20)", 0, 0},
        {"batch", FLAG_INT, &B, 1, 1 << 20, NULL, "impressions per batch (1024)", 0, 0},
        {"threads", FLAG_INT, &threads, 1, 64, NULL, "threads of pool and backward (2)", 0, 0},
        {"dim", FLAG_INT, &dim, 1, 1024, NULL, "embedding dimension (16)", 0, 0},
        {"reps", FLAG_INT, &reps, 1, 1000, NULL, "repetitions, the best reported (5)", 0, 0},
        {0},
    };
    int rc = flags_parse(specs, argc, argv);
    if (rc == FLAGS_HELP) { flags_usage(stdout, "bench_embed --data PATH [--common FILE] [options]", specs); return 0; }
    if (rc) { fprintf(stderr, "bench_embed: %s\n", fn_err_msg()); return 2; }
    fn_schema schema;
    schema_parse(&schema, "aliccp");
    fn_dataset *ds = NULL;
    fn_reader *r = NULL;
    if (dataset_open(&ds, format, data, common, &schema, 0) || reader_open(&r, ds, 0, 1)) { fprintf(stderr, "bench_embed: %s\n", fn_err_msg()); return 1; }
    fn_batch *b = calloc((size_t)nb, sizeof *b);
    embed_table *e = calloc((size_t)nb, sizeof *e);
    int got = 0;
    for (; got < nb; got++) {
        if (batch_init(&b[got], (int)B, 1024) || reader_next(r, &b[got], (int)B)) { fprintf(stderr, "bench_embed: %s\n", fn_err_msg()); return 1; }
        if (b[got].n == 0) break;
        embed_init(&e[got], 0, 1, (int)dim, schema.n);
    }
    par *pool = NULL;
    if (par_open(&pool, (int)threads)) return 1;
    size_t W = (size_t)schema.n * (size_t)dim;
    float *x = malloc(B * W * sizeof *x), *dx = malloc(B * W * sizeof *dx);
    fn_rng rng;
    fn_rng_seed(&rng, 1);
    for (size_t i = 0; i < (size_t)B * W; i++) dx[i] = (float)fn_rng_uniform(&rng) - 0.5f;
    double best[3] = {1e30, 1e30, 1e30};
    double entries = 0, sets = 0, keys = 0, imps = 0;
    for (long rep = 0; rep < reps; rep++) {
        double t[3] = {0, 0, 0};
        for (int k = 0; k < got; k++) {
            double a = now_s();
            if (embed_prepare(&e[k], &b[k])) return 1;
            double c = now_s();
            t[0] += c - a;
            if (rep == 0) {
                for (size_t i = 0; i < e[k].n_uniq * (size_t)dim; i++) e[k].rows[i] = (float)fn_rng_uniform(&rng) * 0.1f;
                entries += (double)embed_entries(&e[k], &b[k]);
                sets += e[k].ng;
                keys += (double)e[k].n_uniq;
                imps += b[k].n;
            }
            a = now_s();
            embed_pool(&e[k], &b[k], x, pool);
            c = now_s();
            t[1] += c - a;
            if (embed_backward(&e[k], &b[k], dx, 1.0f, pool)) return 1;
            t[2] += now_s() - c;
        }
        for (int j = 0; j < 3; j++) best[j] = t[j] < best[j] ? t[j] : best[j];
    }
    printf("bench_embed: %d batches of %ld: %.0f entries, %.1f distinct sets, %.0f distinct keys per batch; %ld thread(s)\n", got, B,
           entries / got, sets / got, keys / got, threads);
    static const char *const name[3] = {"prepare", "pool", "backward"};
    for (int j = 0; j < 3; j++)
        printf("  %-8s %8.1f ns/impression %6.2f ns/entry  (%.2f ms a batch)\n", name[j], 1e9 * best[j] / imps, 1e9 * best[j] / entries,
               1e3 * best[j] / got);
    return 0;
}
