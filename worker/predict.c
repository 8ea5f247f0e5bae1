/* worker/predict.c — `funnel predict`: scores a file with an exported model
 * in one process, without MPI or servers.  Keys the model never trained
 * read as zeros, exactly as the job's own evaluation reads them. */
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embed.h"
#include "flags.h"
#include "fn_error.h"
#include "log.h"
#include "model.h"
#include "modelfile.h"
#include "nn.h"
#include "par.h"
#include "predio.h"
#include "reader.h"
#include "train.h"

int predict_main(int argc, char **argv)
{
    const char *run = NULL, *format = "aliccp", *data = NULL, *common_path = NULL, *out = NULL, *bad = "skip";
    long batch = 1024, threads = 0;
    flag_spec specs[] = {
        {"run", FLAG_STRING, &run, 0, 0, NULL, "run directory of a finished `funnel train`", 1, 0},
        {"format", FLAG_CHOICE, &format, 0, 0, "aliccp|bin", "input format (default aliccp)", 0, 0},
        {"data", FLAG_STRING, &data, 0, 0, NULL, "impressions to score (aliccp: sample skeleton file; bin: directory of part files of funnel convert, or one .fbin file)", 1, 0},
        {"common", FLAG_STRING, &common_path, 0, 0, NULL, "common features file of --data (aliccp only)", 0, 0},
        {"out", FLAG_STRING, &out, 0, 0, NULL, "predictions CSV: sample_id,pctr,pcvr,pctcvr", 1, 0},
        {"batch", FLAG_INT, &batch, 1, 1 << 20, NULL, "examples per forward pass (default 1024)", 0, 0},
        {"threads", FLAG_INT, &threads, 0, 64, NULL, "threads computing the towers, each on a share of a batch's rows (default 0: OpenBLAS's thread count)", 0, 0},
        {"bad-lines", FLAG_CHOICE, &bad, 0, 0, "skip|stop", "malformed input lines: count and skip, or stop (default skip)", 0, 0},
        {0},
    };
    log_set_role("predict");
    int rc = flags_parse(specs, argc, argv);
    if (rc == FLAGS_HELP) {
        flags_usage(stdout, "predict --run RUN_DIR --format aliccp|bin --data PATH [--common FILE] --out PREDS.csv", specs);
        return 0;
    }
    if (rc) { fprintf(stderr, "funnel predict: %s\n", fn_err_msg()); return 2; }
    if (!strcmp(format, "aliccp") && !common_path) { fprintf(stderr, "funnel predict: --common is required with --format aliccp\n"); return 2; }
    if (strcmp(format, "aliccp") && common_path) {
        fprintf(stderr, "funnel predict: --common is for --format aliccp; with --format %s the files carry their features (give no --common)\n", format);
        return 2;
    }

    char path[4200];
    model m;
    fn_schema schema;
    snprintf(path, sizeof path, "%s/model/dense.bin", run);
    if ((rc = modelfile_load_dense(path, &m, &schema))) { log_error("%s", fn_err_msg()); return 1; }
    modelfile_rows rows;
    if (modelfile_rows_init(&rows, m.spec.dim)) { log_error("out of memory"); return 1; }
    snprintf(path, sizeof path, "%s/model/emb-*.bin", run);
    glob_t g;
    if (glob(path, 0, NULL, &g) || g.gl_pathc == 0) { log_error("%s: no exported embedding shards", path); return 1; }
    for (size_t i = 0; i < g.gl_pathc; i++)
        if ((rc = modelfile_load_rows(&rows, g.gl_pathv[i]))) { log_error("%s", fn_err_msg()); globfree(&g); return 1; }
    log_info("model %s: %zu embedding rows from %zu shard(s), %ld dense parameters", m.spec.preset, rows.n, g.gl_pathc, m.n_params);
    globfree(&g);

    int stop = !strcmp(bad, "stop");
    fn_dataset *ds = NULL;
    fn_reader *r = NULL;
    if ((rc = dataset_open(&ds, format, data, common_path, &schema, stop)) || (rc = reader_open(&r, ds, 0, 1))) {
        log_error("%s", fn_err_msg());
        return 1;
    }
    model_ws ws;
    fn_batch b;
    embed_table emb[MODEL_MAX_TABLES];
    memset(emb, 0, sizeof emb);
    par *pool = NULL;
    if (model_ws_init(&ws, &m, (int)batch) || batch_init(&b, (int)batch, (size_t)batch * 64)) { log_error("out of memory"); return 1; }
    if (par_open(&pool, nn_blas_threads_to_towers(threads)) || model_ws_parallel(&ws, &m, pool)) { log_error("%s", fn_err_msg()); return 1; }
    for (int k = 0; k < m.n_tables; k++) embed_init(&emb[k], (uint32_t)k, 1, m.spec.dim, schema.n);
    FILE *f = predio_open(out);
    if (!f) { log_error("%s", fn_err_msg()); return 1; }
    const float *p[3] = {model_predicts(&m, 0) ? ws.p[0] : NULL, model_predicts(&m, 1) ? ws.p[1] : NULL, model_predicts(&m, 2) ? ws.p[2] : NULL};
    size_t total = 0;
    for (;;) {
        if ((rc = reader_next(r, &b, (int)batch))) { log_error("%s", fn_err_msg()); fclose(f); return 1; }
        if (b.n == 0) break;
        for (int k = 0; k < m.n_tables; k++) {
            if (embed_prepare(&emb[k], &b)) { log_error("out of memory"); return 1; }
            for (size_t u = 0; u < emb[k].n_uniq; u++) {
                const float *w = modelfile_row(&rows, emb[k].uniq[u]);
                float *dst = emb[k].rows + u * (size_t)m.spec.dim;
                if (w) memcpy(dst, w, sizeof(float) * (size_t)m.spec.dim);
                else memset(dst, 0, sizeof(float) * (size_t)m.spec.dim);
            }
            embed_pool(&emb[k], &b, ws.x[k], pool);
        }
        model_forward(&m, &ws, b.n);
        for (int i = 0; i < b.n; i++) predio_row(f, b.sample_id[i], p, (size_t)i);
        total += (size_t)b.n;
    }
    if ((rc = predio_close(f, out))) { log_error("%s", fn_err_msg()); return 1; }
    const reader_stats *st = reader_get_stats(r);
    if (st->bad_lines) log_warn("%s: %llu malformed line(s) skipped", data, (unsigned long long)st->bad_lines);
    log_info("wrote %zu predictions to %s", total, out);
    reader_close(&r);
    dataset_close(&ds);
    for (int k = 0; k < m.n_tables; k++) embed_free(&emb[k]);
    batch_free(&b);
    model_ws_free(&ws);
    par_close(&pool);
    modelfile_rows_free(&rows);
    model_free(&m);
    return 0;
}
