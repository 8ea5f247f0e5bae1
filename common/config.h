/* common/config.h — the configuration of a training job, from flags.
 *
 * One struct for both roles: servers read the embedding side (dim,
 * optimizer, seed), workers everything.  config_parse_train() is the single
 * place flags are defined, checked and documented (`funnel train --help`);
 * config_write_json() records the used configuration in RUN_DIR. */
#ifndef FN_CONFIG_H
#define FN_CONFIG_H

#include <stddef.h>

#define CONFIG_MAX_LAYERS 8

typedef struct {
    long servers;
    const char *model;
    const char *format;
    const char *train, *common, *test, *test_common, *test_truth;
    const char *common_cache;  /* aliccp: where the common-feature tables go (NULL: RUN_DIR/cache) */
    const char *out;
    const char *fields;
    const char *hidden_s, *bottom_s;
    int hidden[CONFIG_MAX_LAYERS], n_hidden;
    int bottom[CONFIG_MAX_LAYERS], n_bottom;
    long epochs, batch, dim, seed;
    long checkpoint_every;
    long keep_checkpoints;
    int resume;
    const char *share;                 /* NULL: the preset's */
    double w_ctr, w_cvr, w_ctcvr;      /* < 0: the preset's */
    const char *emb_opt;
    double emb_lr, dense_lr, init_range;
    double emb_eps, emb_init_acc, emb_beta1, emb_beta2, emb_l1, emb_l2;
    long eval_every;
    double log_every;
    const char *bad_lines;
    long timeout;
    int sync_pulls;                    /* pull after the previous step's pushes (no pull-ahead) */
    long threads;                      /* towers' threads per worker; 0: OpenBLAS's count */
    long server_threads;               /* threads (table stripes) per server; 0: its host's cores / ranks there */
    int no_lz4;
    const char *push_enc, *pull_enc;
    int insecure;
    long admit_after, admit_sketch_mb, max_rows_per_server, ttl_steps; /* bounded tables; 0: off */
    const char *evict;                 /* lru|lfu */
    const char *bind;
    int no_preds;
    int verbose;
} train_conf;

/* Parses `funnel train` flags (argv[0] = "train").  Returns FN_OK,
 * FLAGS_HELP (usage printed to stdout), or FN_EUSAGE with the reason. */
int config_parse_train(train_conf *c, int argc, char **argv);

/* Writes the configuration as a JSON object to path. */
int config_write_json(const train_conf *c, const char *path, int n_servers, int n_workers);

#endif
