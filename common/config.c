/* common/config.c — see config.h. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "flags.h"
#include "fn_error.h"
#include "schema.h"

#define SYNOPSIS                                                                                   \
    "train --servers S --model M --format aliccp --train PATH --common FILE\n"                     \
    "             [--test PATH --test-common FILE] [--epochs N] [--batch B] [--dim D]\n"           \
    "             (or --format bin --train DIR [--test DIR]: files of funnel convert)\n"          \
    "             [--hidden 200,80] [--seed N] --out RUN_DIR [options]\n"                         \
    "  (run under mpirun: ranks 0..S-1 are parameter servers, the rest workers)"

int config_parse_train(train_conf *c, int argc, char **argv)
{
    memset(c, 0, sizeof *c);
    c->servers = 1;
    c->model = "esmm";
    c->format = "aliccp";
    c->fields = "aliccp";
    c->hidden_s = "200,80";
    c->epochs = 1;
    c->batch = 1024;
    c->dim = 16;
    c->seed = 1;
    c->emb_opt = "adagrad";
    c->w_ctr = c->w_cvr = c->w_ctcvr = -1;
    c->emb_lr = 0.05;
    c->dense_lr = 1e-3;
    c->init_range = 0.05;
    c->emb_eps = -1;       /* -1: the optimizer's default */
    c->emb_init_acc = 0;
    c->emb_beta1 = 0.9;
    c->emb_beta2 = 0.999;
    c->emb_l1 = 0;
    c->emb_l2 = 0;
    c->log_every = 5;
    c->bad_lines = "skip";
    c->timeout = 20;
    c->keep_checkpoints = 3;
    c->bind = "auto";
    c->push_enc = c->pull_enc = "f32";
    c->admit_sketch_mb = 16;
    c->evict = "lfu";
    flag_spec specs[] = {
        {"servers", FLAG_INT, &c->servers, 1, 4096, NULL, "parameter servers: ranks 0..S-1 (default 1)", 0, 0},
        {"model", FLAG_CHOICE, &c->model, 0, 0, "cvr|ctr|shared-bottom|esmm|esmm-cvr|esmm-ns|mmoe|ple|escm2-ipw|escm2-dr", "model preset (default esmm)", 0, 0},
        {"format", FLAG_CHOICE, &c->format, 0, 0, "aliccp|bin|zipf", "input format (default aliccp; zipf: --train/--test are generator specs, see README)", 0, 0},
        {"train", FLAG_STRING, &c->train, 0, 0, NULL, "training data (aliccp: sample skeleton file; bin: directory of part files of funnel convert, or one .fbin file)", 1, 0},
        {"common", FLAG_STRING, &c->common, 0, 0, NULL, "common features file of --train (aliccp)", 0, 0},
        {"test", FLAG_STRING, &c->test, 0, 0, NULL, "test data, evaluated after training (same format as --train)", 0, 0},
        {"test-common", FLAG_STRING, &c->test_common, 0, 0, NULL, "common features file of --test (aliccp)", 0, 0},
        {"common-cache", FLAG_STRING, &c->common_cache, 0, 0, NULL, "directory of the common-feature tables built from --common/--test-common (aliccp; default RUN_DIR/cache; reused across runs when shared)", 0, 0},
        {"test-truth", FLAG_STRING, &c->test_truth, 0, 0, NULL, "known truth of --test (sample_id,pctr,pcvr,conv), which must load; default: truth_X.csv beside sample_skeleton_X.csv if present, used if it loads (else a warning and no entire-space metrics)", 0, 0},
        {"out", FLAG_STRING, &c->out, 0, 0, NULL, "run directory (config, metrics, model)", 1, 0},
        {"epochs", FLAG_INT, &c->epochs, 1, 1000, NULL, "passes over the training data (default 1)", 0, 0},
        {"batch", FLAG_INT, &c->batch, 1, 1 << 20, NULL, "examples per step over all workers (default 1024)", 0, 0},
        {"dim", FLAG_INT, &c->dim, 1, 1024, NULL, "embedding dimension (default 16)", 0, 0},
        {"hidden", FLAG_STRING, &c->hidden_s, 0, 0, NULL, "hidden widths of each tower (default 200,80)", 0, 0},
        {"bottom", FLAG_STRING, &c->bottom_s, 0, 0, NULL, "shared bottom widths for shared-bottom (default: the first --hidden width)", 0, 0},
        {"seed", FLAG_INT, &c->seed, 0, 2147483647, NULL, "random seed (default 1)", 0, 0},
        {"share", FLAG_CHOICE, &c->share, 0, 0, "nothing|emb|bottom", "override what the towers share (default: the preset's)", 0, 0},
        {"w-ctr", FLAG_DOUBLE, &c->w_ctr, 0, 1000, NULL, "override the CTR loss weight (0 switches it off)", 0, 0},
        {"w-cvr", FLAG_DOUBLE, &c->w_cvr, 0, 1000, NULL, "override the conditional CVR loss weight (clicked impressions)", 0, 0},
        {"w-ctcvr", FLAG_DOUBLE, &c->w_ctcvr, 0, 1000, NULL, "override the CTCVR loss weight (entire space)", 0, 0},
        {"fields", FLAG_STRING, &c->fields, 0, 0, NULL, "feature fields: 'aliccp' (its 23 fields) or a comma list (bin: must equal convert's --fields)", 0, 0},
        {"emb-optimizer", FLAG_CHOICE, &c->emb_opt, 0, 0, "adagrad|adam|ftrl|sgd", "sparse optimizer on the servers (default adagrad)", 0, 0},
        {"emb-lr", FLAG_DOUBLE, &c->emb_lr, 1e-9, 100, NULL, "sparse learning rate (default 0.05)", 0, 0},
        {"emb-eps", FLAG_DOUBLE, &c->emb_eps, 0, 1, NULL, "adagrad/adam epsilon (default 1e-10 / 1e-8)", 0, 0},
        {"emb-init-acc", FLAG_DOUBLE, &c->emb_init_acc, 0, 100, NULL, "adagrad initial accumulator (default 0)", 0, 0},
        {"emb-beta1", FLAG_DOUBLE, &c->emb_beta1, 0, 0.999999, NULL, "adam beta1 (default 0.9)", 0, 0},
        {"emb-beta2", FLAG_DOUBLE, &c->emb_beta2, 0, 0.999999, NULL, "adam beta2 (default 0.999)", 0, 0},
        {"emb-l1", FLAG_DOUBLE, &c->emb_l1, 0, 100, NULL, "ftrl l1 (default 0)", 0, 0},
        {"emb-l2", FLAG_DOUBLE, &c->emb_l2, 0, 100, NULL, "l2 on embedding rows (default 0)", 0, 0},
        {"init-range", FLAG_DOUBLE, &c->init_range, 0, 10, NULL, "new rows uniform in +-this (default 0.05)", 0, 0},
        {"dense-lr", FLAG_DOUBLE, &c->dense_lr, 1e-9, 100, NULL, "Adam learning rate of the towers (default 1e-3)", 0, 0},
        {"eval-every", FLAG_INT, &c->eval_every, 0, 1L << 40, NULL, "also evaluate every N steps (default 0: at the end)", 0, 0},
        {"log-every", FLAG_DOUBLE, &c->log_every, 0.1, 86400, NULL, "seconds between progress lines (default 5)", 0, 0},
        {"bad-lines", FLAG_CHOICE, &c->bad_lines, 0, 0, "skip|stop", "malformed input lines: count and skip, or stop (default skip)", 0, 0},
        {"sync-pulls", FLAG_BOOL, &c->sync_pulls, 0, 0, NULL, "pull a batch's rows after the previous step's pushes are applied (exact synchronous steps) instead of while the previous batch is in the towers (rows one step behind; the default)", 0, 0},
        {"threads", FLAG_INT, &c->threads, 0, 64, NULL, "threads per worker computing the towers, each on a share of the batch's rows (default 0: OpenBLAS's thread count, OPENBLAS_NUM_THREADS or the cores)", 0, 0},
        {"server-threads", FLAG_INT, &c->server_threads, 0, 16, NULL, "threads per server, each serving one stripe of every table's rows (default 0: the cores of its host shared among the job's processes there, at most 16)", 0, 0},
        {"timeout", FLAG_INT, &c->timeout, 1, 86400, NULL, "seconds a server may take to answer (default 20)", 0, 0},
        {"insecure", FLAG_BOOL, &c->insecure, 0, 0, NULL, "plain TCP: no CURVE authentication and encryption of parameter traffic", 0, 0},
        {"push-encoding", FLAG_CHOICE, &c->push_enc, 0, 0, "f32|f16|i8", "value encoding of pushed gradients (default f32)", 0, 0},
        {"pull-encoding", FLAG_CHOICE, &c->pull_enc, 0, 0, "f32|f16|i8", "value encoding of pulled rows (default f32)", 0, 0},
        {"no-lz4", FLAG_BOOL, &c->no_lz4, 0, 0, NULL, "do not compress parameter traffic", 0, 0},
        {"bind", FLAG_STRING, &c->bind, 0, 0, NULL, "address servers bind and advertise (default auto: 127.0.0.1 on one host)", 0, 0},
        {"no-preds", FLAG_BOOL, &c->no_preds, 0, 0, NULL, "do not write RUN_DIR/test_preds.csv", 0, 0},
        {"admit-after", FLAG_INT, &c->admit_after, 0, 255, NULL, "a key gets an embedding row once it occurs in this many steps; until then it reads as zeros (default 0: at once)", 0, 0},
        {"admit-sketch-mb", FLAG_INT, &c->admit_sketch_mb, 1, 1 << 20, NULL, "MiB per server of the count-min sketch that counts keys for --admit-after (default 16)", 0, 0},
        {"max-rows-per-server", FLAG_INT, &c->max_rows_per_server, 0, 4294967294.0, NULL, "embedding rows a server keeps; least recently used rows are evicted past it (default 0: no limit)", 0, 0},
        {"evict", FLAG_CHOICE, &c->evict, 0, 0, "lfu|lru", "rows that go first past --max-rows-per-server: least often or least recently used (default lfu)", 0, 0},
        {"ttl-steps", FLAG_INT, &c->ttl_steps, 0, 4294967295.0, NULL, "evict rows unused for this many steps (default 0: never)", 0, 0},
        {"checkpoint-every", FLAG_INT, &c->checkpoint_every, 1, 1L << 40, NULL, "write a checkpoint every N steps into RUN_DIR/ckpt", 0, 0},
        {"keep-checkpoints", FLAG_INT, &c->keep_checkpoints, 1, 1000, NULL, "complete checkpoints kept (default 3)", 0, 0},
        {"resume", FLAG_BOOL, &c->resume, 0, 0, NULL, "continue from RUN_DIR's newest complete, verified checkpoint", 0, 0},
        {"verbose", FLAG_BOOL, &c->verbose, 0, 0, NULL, "debug logging", 0, 0},
        {0},
    };
    int rc = flags_parse(specs, argc, argv);
    if (rc == FLAGS_HELP) {
        flags_usage(stdout, SYNOPSIS, specs);
        return FLAGS_HELP;
    }
    if (rc) return rc;
    if ((c->n_hidden = flags_int_list(c->hidden_s, c->hidden, CONFIG_MAX_LAYERS)) < 0)
        return fn_fail(FN_EUSAGE, "--hidden must be 1 to %d comma-separated widths in [1, 1000000], got '%.*s%s'", CONFIG_MAX_LAYERS, FLAGS_QUOTE(c->hidden_s));
    if (c->bottom_s && (c->n_bottom = flags_int_list(c->bottom_s, c->bottom, CONFIG_MAX_LAYERS)) < 0)
        return fn_fail(FN_EUSAGE, "--bottom must be 1 to %d comma-separated widths in [1, 1000000], got '%.*s%s'", CONFIG_MAX_LAYERS, FLAGS_QUOTE(c->bottom_s));
    if (!strcmp(c->format, "aliccp")) {
        if (!c->common) return fn_fail(FN_EUSAGE, "--common is required with --format aliccp");
        if (c->test && !c->test_common) return fn_fail(FN_EUSAGE, "--test-common is required with --test and --format aliccp");
    } else { /* bin: the features are in the files (written by funnel convert); zipf: generated */
        if (c->common) return fn_fail(FN_EUSAGE, "--common is for --format aliccp; with --format bin the files carry their features (give no --common)");
        if (c->test_common) return fn_fail(FN_EUSAGE, "--test-common is for --format aliccp; with --format bin the files carry their features (give no --test-common)");
    }
    /* checked here, where a bad list is a usage error on every rank, not a
     * worker's abort after the job has started */
    fn_schema fields;
    if (schema_parse(&fields, c->fields)) return FN_EUSAGE; /* the message names --fields */
    if (c->test_truth && !c->test) return fn_fail(FN_EUSAGE, "--test-truth given without --test");
    if (c->test_common && !c->test) return fn_fail(FN_EUSAGE, "--test-common given without --test");
    return FN_OK;
}

static void json_str(FILE *f, const char *key, const char *v, int comma)
{
    fprintf(f, "  \"%s\": ", key);
    if (!v) fputs("null", f);
    else {
        fputc('"', f);
        for (const char *p = v; *p; p++) {
            if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
            else if ((unsigned char)*p < 0x20) fprintf(f, "\\u%04x", *p);
            else fputc(*p, f);
        }
        fputc('"', f);
    }
    fputs(comma ? ",\n" : "\n", f);
}

int config_write_json(const train_conf *c, const char *path, int n_servers, int n_workers)
{
    FILE *f = fopen(path, "w");
    if (!f) return fn_fail(FN_EIO, "%s: cannot write: %s", path, strerror(errno));
    fputs("{\n", f);
    json_str(f, "model", c->model, 1);
    json_str(f, "format", c->format, 1);
    json_str(f, "train", c->train, 1);
    json_str(f, "common", c->common, 1);
    json_str(f, "test", c->test, 1);
    json_str(f, "test_common", c->test_common, 1);
    json_str(f, "fields", c->fields, 1);
    json_str(f, "hidden", c->hidden_s, 1);
    json_str(f, "bottom", c->bottom_s, 1);
    json_str(f, "emb_optimizer", c->emb_opt, 1);
    json_str(f, "share", c->share, 1);
    fprintf(f, "  \"w_ctr\": %g,\n  \"w_cvr\": %g,\n  \"w_ctcvr\": %g,\n", c->w_ctr, c->w_cvr, c->w_ctcvr);
    fprintf(f, "  \"servers\": %d,\n  \"workers\": %d,\n  \"epochs\": %ld,\n  \"batch\": %ld,\n  \"dim\": %ld,\n  \"seed\": %ld,\n",
            n_servers, n_workers, c->epochs, c->batch, c->dim, c->seed);
    fprintf(f, "  \"emb_lr\": %g,\n  \"emb_init_acc\": %g,\n  \"init_range\": %g,\n  \"dense_lr\": %g,\n  \"eval_every\": %ld,\n  \"lz4\": %s,\n",
            c->emb_lr, c->emb_init_acc, c->init_range, c->dense_lr, c->eval_every, c->no_lz4 ? "false" : "true");
    fprintf(f, "  \"secure\": %s,\n  \"threads\": %ld,\n  \"server_threads\": %ld,\n  \"pull_ahead\": %s,\n", c->insecure ? "false" : "true",
            c->threads, c->server_threads, c->sync_pulls ? "false" : "true");
    fprintf(f, "  \"admit_after\": %ld,\n  \"admit_sketch_mb\": %ld,\n  \"max_rows_per_server\": %ld,\n  \"ttl_steps\": %ld,\n",
            c->admit_after, c->admit_sketch_mb, c->max_rows_per_server, c->ttl_steps);
    json_str(f, "evict", c->evict, 1);
    json_str(f, "push_encoding", c->push_enc, 1);
    json_str(f, "pull_encoding", c->pull_enc, 1);
    json_str(f, "bad_lines", c->bad_lines, 0);
    fputs("}\n", f);
    if (fclose(f)) return fn_fail(FN_EIO, "%s: write failed", path);
    return FN_OK;
}
