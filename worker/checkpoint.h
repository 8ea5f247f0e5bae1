/* worker/checkpoint.h — consistent checkpoints of a training job.
 *
 * RUN_DIR/ckpt/step-NNNNNNNNNN/ holds
 *   server-S.bin  each server's rows with optimizer state (ps/server.h,
 *                 written by the server itself on a CHECKPOINT request)
 *   worker-W.bin  each worker's position in its data partition and epoch
 *   dense.bin     the towers, their Adam state, the step and the training
 *                 base-rate counters (written by the lead worker)
 *   MANIFEST      written last, atomically: the step and the job's shape.
 * A checkpoint without a valid MANIFEST is incomplete; one whose files do
 * not all pass their checksums is corrupt.  Both are reported by name and
 * skipped for the one before.  Every file is a common/binfile.h container:
 * magic, version, CRC-32C, atomic rename. */
#ifndef FN_CHECKPOINT_H
#define FN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#define CKPT_DENSE_MAGIC 0x4B4C4E46u  /* "FNLK" */
#define CKPT_WORKER_MAGIC 0x574C4E46u /* "FNLW" */
#define CKPT_MANIFEST_MAGIC 0x4D4C4E46u /* "FNLM" */
#define CKPT_VERSION 1

typedef struct {
    uint64_t step, epoch;
    double n_imp, n_clk, n_buy;  /* training examples seen in epoch 0 */
    long adam_t;
    long n_params;
    float *params, *m, *v;       /* borrowed on save; allocated on load */
} ckpt_dense;

typedef struct {
    uint32_t worker, workers;
    uint64_t step, epoch;
    uint64_t pos[2];             /* reader_tell() after the step's batch */
} ckpt_worker;

/* RUN_DIR/ckpt/step-NNNNNNNNNN into buf; returns buf. */
const char *ckpt_dir(const char *run_dir, uint64_t step, char *buf, size_t cap);
/* Creates RUN_DIR/ckpt and the step directory. */
int ckpt_mkdir(const char *run_dir, uint64_t step);

int ckpt_save_dense(const char *dir, const ckpt_dense *d);
int ckpt_load_dense(const char *dir, ckpt_dense *d, long n_params);
void ckpt_dense_free(ckpt_dense *d);
int ckpt_save_worker(const char *dir, const ckpt_worker *w);
int ckpt_load_worker(const char *dir, uint32_t worker, ckpt_worker *w);

/* Written last: marks the checkpoint complete. */
int ckpt_save_manifest(const char *dir, uint64_t step, int servers, int workers, const char *model, long n_params);

/* The newest complete checkpoint of RUN_DIR whose every file verifies and
 * whose shape (servers, workers, model, parameters) is this job's.  Skipped
 * ones are logged with the reason.  Returns FN_OK with *step set, or
 * FN_ENOTFOUND. */
int ckpt_find_latest(const char *run_dir, int servers, int workers, const char *model, long n_params, uint64_t *step);

/* Removes all but the newest `keep` complete checkpoints (and incomplete
 * ones older than the newest complete one). */
void ckpt_prune(const char *run_dir, int keep);

#endif
