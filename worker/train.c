/* worker/train.c — the worker role of `funnel train`; see train.h. */
#include "train.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <zmq.h>

#include "batch.h"
#include "checkpoint.h"
#include "client.h"
#include "embed.h"
#include "fn_error.h"
#include "log.h"
#include "metrics.h"
#include "model.h"
#include "modelfile.h"
#include "nn.h"
#include "predio.h"
#include "par.h"
#include "prefetch.h"
#include "reader.h"
#include "schema.h"
#include "truth.h"
#include "wire.h"

/* extras appended to the dense gradients in the per-step allreduce */
enum { X_N, X_LOSS, X_CNT = X_LOSS + TASK_COUNT, X_CLK = X_CNT + TASK_COUNT, X_BUY, X_COUNT };

/* Where a training step's time goes, per worker: waiting for the reading
 * thread's batch, pulling and pooling, the towers (and the embeddings'
 * backward), pushing, and the dense allreduce with Adam. */
enum { TM_DATA, TM_PULL, TM_TOWERS, TM_PUSH, TM_SYNC, TM_COUNT };
static const char *const tm_name[TM_COUNT] = {"data", "pull", "towers", "push", "allreduce"};

typedef struct {
    const train_conf *c;
    MPI_Comm comm;
    int rank, size, n_servers;
    fn_schema schema;
    model m;
    model_ws ws;
    par *pool;             /* the towers' threads */
    double tm[TM_COUNT];   /* this worker's training seconds by phase */
    float *grads;          /* n_params + X_COUNT: the allreduce buffer */
    float *adam_m, *adam_v;
    nn_adam adam;
    embed_table emb[MODEL_MAX_TABLES];
    void *zctx;
    ps_client *client;
    fn_batch batch;
    int bw;                /* this worker's share of a step's batch */
    long step;
    double n_imp, n_clk, n_buy;   /* training examples seen (all workers), for base rates */
    double t_start;
    fn_dataset *test_ds;
    fn_truth truth;        /* lead worker: the test set's known truth, if any */
    int have_truth;
    FILE *metrics;
    char path[4096];
} trainer;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static char resume_hint[2048];

void train_set_resume_hint(const char *hint) { snprintf(resume_hint, sizeof resume_hint, "%s", hint); }

static void fail_job(const char *what, int rc)
{
    log_error("%s: %s (%s)", what, fn_err_msg(), fn_strerror(rc));
    if (resume_hint[0]) log_error("the job is ending; to continue from its last checkpoint run: %s", resume_hint);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

/* Checkpoint of the state after step t->step: servers' shards, every
 * worker's position, the towers; the MANIFEST last.  Collective over the
 * workers: nobody pulls for the next step before the servers are written. */
static void checkpoint(trainer *t, const uint64_t pos[2], long epoch)
{
    const train_conf *c = t->c;
    char dir[4200];
    int rc = FN_OK;
    ckpt_dir(c->out, (uint64_t)t->step, dir, sizeof dir);
    if (t->rank == 0) rc = ckpt_mkdir(c->out, (uint64_t)t->step);
    MPI_Bcast(&rc, 1, MPI_INT, 0, t->comm);
    if (rc) fail_job("checkpoint", rc);
    double t0 = now_s();
    ckpt_worker w = {.worker = (uint32_t)t->rank, .workers = (uint32_t)t->size, .step = (uint64_t)t->step, .epoch = (uint64_t)epoch,
                     .pos = {pos[0], pos[1]}};
    if ((rc = ckpt_save_worker(dir, &w))) fail_job("checkpoint", rc);
    if (t->rank == 0) {
        for (int s = 0; s < t->n_servers; s++) {
            char p[4300];
            snprintf(p, sizeof p, "%s/server-%d.bin", dir, s);
            if ((rc = ps_client_ctrl(t->client, s, WIRE_CTRL_CHECKPOINT, p, NULL, 0))) fail_job("checkpoint", rc);
        }
        ckpt_dense d = {.step = (uint64_t)t->step, .epoch = (uint64_t)epoch, .n_imp = t->n_imp, .n_clk = t->n_clk, .n_buy = t->n_buy,
                        .adam_t = t->adam.t, .n_params = t->m.n_params, .params = t->m.params, .m = t->adam_m, .v = t->adam_v};
        if ((rc = ckpt_save_dense(dir, &d))) fail_job("checkpoint", rc);
    }
    MPI_Barrier(t->comm);
    if (t->rank == 0) {
        if ((rc = ckpt_save_manifest(dir, (uint64_t)t->step, t->n_servers, t->size, c->model, t->m.n_params))) fail_job("checkpoint", rc);
        ckpt_prune(c->out, (int)c->keep_checkpoints);
        log_info("checkpoint at step %ld written to %s in %.1f s", t->step, dir, now_s() - t0);
    }
}

/* --resume: the newest complete, verified checkpoint, restored everywhere.
 * Returns the epoch to continue (and sets the reader's position), or -1
 * when there is none. */
static long resume(trainer *t, fn_reader *r)
{
    const train_conf *c = t->c;
    uint64_t step = 0;
    int rc = FN_OK;
    if (t->rank == 0) {
        rc = ckpt_find_latest(c->out, t->n_servers, t->size, c->model, t->m.n_params, &step);
        if (rc) log_warn("--resume: %s; starting from the beginning", fn_err_msg());
    }
    MPI_Bcast(&rc, 1, MPI_INT, 0, t->comm);
    if (rc) return -1;
    MPI_Bcast(&step, 1, MPI_UINT64_T, 0, t->comm);
    char dir[4200];
    ckpt_dir(c->out, step, dir, sizeof dir);
    if (t->rank == 0)
        for (int s = 0; s < t->n_servers; s++) {
            char p[4300];
            snprintf(p, sizeof p, "%s/server-%d.bin", dir, s);
            if ((rc = ps_client_ctrl(t->client, s, WIRE_CTRL_RESTORE, p, NULL, 0))) fail_job("resume", rc);
        }
    ckpt_dense d;
    ckpt_worker w;
    if ((rc = ckpt_load_dense(dir, &d, t->m.n_params)) || (rc = ckpt_load_worker(dir, (uint32_t)t->rank, &w))) fail_job("resume", rc);
    if ((rc = reader_seek(r, w.pos))) fail_job("resume", rc);
    memcpy(t->m.params, d.params, sizeof(float) * (size_t)d.n_params);
    memcpy(t->adam_m, d.m, sizeof(float) * (size_t)d.n_params);
    memcpy(t->adam_v, d.v, sizeof(float) * (size_t)d.n_params);
    t->adam.t = d.adam_t;
    t->step = (long)d.step;
    t->n_imp = d.n_imp;
    t->n_clk = d.n_clk;
    t->n_buy = d.n_buy;
    ckpt_dense_free(&d);
    MPI_Barrier(t->comm); /* servers restored before anyone pulls */
    if (t->rank == 0) log_info("resumed from %s: step %ld, epoch %llu", dir, t->step, (unsigned long long)w.epoch + 1);
    return (long)w.epoch;
}

/* Pulls the rows of tables emb (prepared for b) unless they are in already,
 * pools: after it, ws.x holds the batch's tower input. */
static int pull_pool(trainer *t, const fn_batch *b, embed_table *emb, int readonly, int pulled)
{
    for (int k = 0; k < t->m.n_tables; k++) {
        int rc = pulled ? FN_OK : ps_client_pull(t->client, &emb[k], readonly);
        if (rc) return rc;
        embed_pool(&emb[k], b, t->ws.x[k], t->pool);
    }
    return FN_OK;
}

/* pull_pool for a batch not yet prepared (evaluation reads inline). */
static int lookup(trainer *t, const fn_batch *b, int readonly)
{
    for (int k = 0; k < t->m.n_tables; k++) {
        int rc = embed_prepare(&t->emb[k], b);
        if (rc) return rc;
    }
    return pull_pool(t, b, t->emb, readonly, 0);
}

/* ---- evaluation ---------------------------------------------------------- */

typedef struct {
    size_t n, cap;
    float *p[TASK_COUNT], *click, *buy;
    uint64_t *id;
} pred_buf;

static int pred_push(pred_buf *pb, const fn_batch *b, const model_ws *ws)
{
    if (pb->n + (size_t)b->n > pb->cap) {
        size_t cap = pb->cap ? pb->cap * 2 : 65536;
        while (cap < pb->n + (size_t)b->n) cap *= 2;
        for (int k = 0; k < TASK_COUNT; k++) {
            float *q = realloc(pb->p[k], cap * sizeof(float));
            if (!q) return FN_ENOMEM;
            pb->p[k] = q;
        }
        float *q = realloc(pb->click, cap * sizeof(float));
        if (!q) return FN_ENOMEM;
        pb->click = q;
        q = realloc(pb->buy, cap * sizeof(float));
        if (!q) return FN_ENOMEM;
        pb->buy = q;
        uint64_t *id = realloc(pb->id, cap * sizeof(uint64_t));
        if (!id) return FN_ENOMEM;
        pb->id = id;
        pb->cap = cap;
    }
    for (int k = 0; k < TASK_COUNT; k++) memcpy(pb->p[k] + pb->n, ws->p[k], sizeof(float) * (size_t)b->n);
    memcpy(pb->click + pb->n, b->click, sizeof(float) * (size_t)b->n);
    memcpy(pb->buy + pb->n, b->buy, sizeof(float) * (size_t)b->n);
    memcpy(pb->id + pb->n, b->sample_id, sizeof(uint64_t) * (size_t)b->n);
    pb->n += (size_t)b->n;
    return FN_OK;
}

static void pred_free(pred_buf *pb)
{
    for (int k = 0; k < TASK_COUNT; k++) free(pb->p[k]);
    free(pb->click); free(pb->buy); free(pb->id);
    memset(pb, 0, sizeof *pb);
}

/* Gathers every worker's pred_buf onto the lead worker, in rank order
 * (= file order, since partitions are consecutive ranges of lines or examples). */
static int pred_gather(trainer *t, const pred_buf *mine, pred_buf *all)
{
    int n = (int)mine->n, *counts = NULL, *displs = NULL;
    if (t->rank == 0) {
        counts = calloc((size_t)t->size, sizeof *counts);
        displs = calloc((size_t)t->size, sizeof *displs);
        if (!counts || !displs) return FN_ENOMEM;
    }
    MPI_Gather(&n, 1, MPI_INT, counts, 1, MPI_INT, 0, t->comm);
    memset(all, 0, sizeof *all);
    if (t->rank == 0) {
        size_t total = 0;
        for (int r = 0; r < t->size; r++) { displs[r] = (int)total; total += (size_t)counts[r]; }
        all->n = all->cap = total;
        for (int k = 0; k < TASK_COUNT; k++) all->p[k] = malloc((total + 1) * sizeof(float));
        all->click = malloc((total + 1) * sizeof(float));
        all->buy = malloc((total + 1) * sizeof(float));
        all->id = malloc((total + 1) * sizeof(uint64_t));
        /* (allocation failure is caught below by a NULL check before use) */
    }
    for (int k = 0; k < TASK_COUNT; k++)
        MPI_Gatherv(mine->p[k], n, MPI_FLOAT, all->p[k], counts, displs, MPI_FLOAT, 0, t->comm);
    MPI_Gatherv(mine->click, n, MPI_FLOAT, all->click, counts, displs, MPI_FLOAT, 0, t->comm);
    MPI_Gatherv(mine->buy, n, MPI_FLOAT, all->buy, counts, displs, MPI_FLOAT, 0, t->comm);
    MPI_Gatherv(mine->id, n, MPI_UINT64_T, all->id, counts, displs, MPI_UINT64_T, 0, t->comm);
    free(counts);
    free(displs);
    if (t->rank == 0 && (!all->p[0] || !all->p[1] || !all->p[2] || !all->click || !all->buy || !all->id)) return FN_ENOMEM;
    return FN_OK;
}

static const char *task_name[TASK_COUNT] = {"ctr", "cvr", "ctcvr"};

/* Metrics of every task the model predicts, as JSON members into f. */
static int task_metrics(trainer *t, const pred_buf *all, FILE *f, metrics_result out[TASK_COUNT])
{
    size_t n = all->n;
    void *scratch = malloc(metrics_scratch_bytes(n) + 64);
    float *pc = malloc((n + 1) * sizeof(float)), *yc = malloc((n + 1) * sizeof(float));
    float *y_ctcvr = malloc((n + 1) * sizeof(float));
    if (!scratch || !pc || !yc || !y_ctcvr) { free(scratch); free(pc); free(yc); free(y_ctcvr); return FN_ENOMEM; }
    size_t nc = 0;
    for (size_t i = 0; i < n; i++) {
        y_ctcvr[i] = all->click[i] * all->buy[i];
        if (all->click[i] > 0) { pc[nc] = all->p[TASK_CVR][i]; yc[nc] = all->buy[i]; nc++; }
    }
    double base[TASK_COUNT] = {t->n_clk / fmax(t->n_imp, 1), t->n_buy / fmax(t->n_clk, 1), t->n_buy / fmax(t->n_imp, 1)};
    for (int k = 0; k < TASK_COUNT; k++) {
        if (!model_predicts(&t->m, k)) continue;
        if (k == TASK_CTR) metrics_compute(all->p[k], all->click, n, base[k], scratch, &out[k]);
        else if (k == TASK_CVR) metrics_compute(pc, yc, nc, base[k], scratch, &out[k]);
        else metrics_compute(all->p[k], y_ctcvr, n, base[k], scratch, &out[k]);
        char js[1024];
        metrics_json(&out[k], js, sizeof js);
        fprintf(f, ",\"%s\":%s", task_name[k], js);
    }
    free(scratch); free(pc); free(yc); free(y_ctcvr);
    return FN_OK;
}

/* With a synthetic world's truth: CVR over the entire space (against the
 * counterfactual conversion of every impression) and the metrics the true
 * probabilities reach (the ceiling). */
static int truth_metrics(trainer *t, const pred_buf *all, FILE *f)
{
    size_t n = all->n, missing = 0, nc = 0;
    float *tp = malloc((n + 1) * sizeof(float)), *tv = malloc((n + 1) * sizeof(float)), *cv = malloc((n + 1) * sizeof(float));
    float *a = malloc((n + 1) * sizeof(float)), *b = malloc((n + 1) * sizeof(float));
    void *scratch = malloc(metrics_scratch_bytes(n) + 64);
    if (!tp || !tv || !cv || !a || !b || !scratch) { free(tp); free(tv); free(cv); free(a); free(b); free(scratch); return FN_ENOMEM; }
    for (size_t i = 0; i < n; i++) {
        long j = truth_find(&t->truth, all->id[i]);
        if (j < 0) { missing++; continue; }
        tp[i] = t->truth.pctr[j];
        tv[i] = t->truth.pcvr[j];
        cv[i] = t->truth.conv[j];
    }
    if (missing) {
        log_warn("truth: %zu test impressions have no row in the truth file; entire-space metrics skipped", missing);
    } else {
        double base_ctr = t->n_clk / fmax(t->n_imp, 1), base_cvr = t->n_buy / fmax(t->n_clk, 1), base_ctcvr = t->n_buy / fmax(t->n_imp, 1);
        metrics_result r;
        char js[1024];
        if (model_predicts(&t->m, TASK_CVR)) {
            metrics_compute(all->p[TASK_CVR], cv, n, base_cvr, scratch, &r);
            metrics_json(&r, js, sizeof js);
            fprintf(f, ",\"cvr_entire\":%s", js);
            log_info("eval step %ld cvr over the entire space: auc %.4f  rce %6.2f%%  calibration %.3f", t->step, r.auc, r.rce, r.calibration);
        }
        fprintf(f, ",\"truth\":{");
        metrics_compute(tp, all->click, n, base_ctr, scratch, &r);
        metrics_json(&r, js, sizeof js);
        fprintf(f, "\"ctr\":%s", js);
        for (size_t i = 0; i < n; i++)
            if (all->click[i] > 0) { a[nc] = tv[i]; b[nc] = all->buy[i]; nc++; }
        metrics_compute(a, b, nc, base_cvr, scratch, &r);
        metrics_json(&r, js, sizeof js);
        fprintf(f, ",\"cvr\":%s", js);
        metrics_compute(tv, cv, n, base_cvr, scratch, &r);
        metrics_json(&r, js, sizeof js);
        fprintf(f, ",\"cvr_entire\":%s", js);
        for (size_t i = 0; i < n; i++) { a[i] = tp[i] * tv[i]; b[i] = all->click[i] * all->buy[i]; }
        metrics_compute(a, b, n, base_ctcvr, scratch, &r);
        metrics_json(&r, js, sizeof js);
        fprintf(f, ",\"ctcvr\":%s}", js);
    }
    free(tp); free(tv); free(cv); free(a); free(b); free(scratch);
    return FN_OK;
}

static int evaluate(trainer *t, long epoch, double train_seconds, double train_rate, int final)
{
    const train_conf *c = t->c;
    fn_reader *r;
    int rc = reader_open(&r, t->test_ds, t->rank, t->size);
    if (rc) return rc;
    pred_buf mine = {0}, all = {0};
    double t0 = now_s();
    for (;;) {
        if ((rc = reader_next(r, &t->batch, t->ws.cap))) break;
        if (t->batch.n == 0) break;
        if ((rc = lookup(t, &t->batch, 1))) break;
        model_forward(&t->m, &t->ws, t->batch.n);
        if ((rc = pred_push(&mine, &t->batch, &t->ws))) break;
    }
    unsigned long long bad = reader_get_stats(r)->bad_lines, bad_all = 0;
    reader_close(&r);
    if (rc) { pred_free(&mine); return rc; }
    MPI_Reduce(&bad, &bad_all, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, 0, t->comm);
    rc = pred_gather(t, &mine, &all);
    pred_free(&mine);
    if (!rc && t->rank == 0) {
        char *line = NULL;
        size_t line_len = 0;
        FILE *f = open_memstream(&line, &line_len);
        metrics_result res[TASK_COUNT];
        memset(res, 0, sizeof res);
        fprintf(f, "{\"model\":\"%s\",\"step\":%ld,\"epoch\":%ld,\"final\":%s,\"train_examples\":%.0f,\"train_seconds\":%.3f,"
                   "\"train_examples_per_sec\":%.1f,\"test_examples\":%zu,\"test_bad_lines\":%llu,\"eval_seconds\":%.3f",
                c->model, t->step, epoch, final ? "true" : "false", t->n_imp, train_seconds, train_rate, all.n, bad_all, 0.0);
        fprintf(f, ",\"tower_threads\":%d,\"worker0_seconds\":{", par_threads(t->pool));
        for (int k = 0; k < TM_COUNT; k++) fprintf(f, "%s\"%s\":%.3f", k ? "," : "", tm_name[k], t->tm[k]);
        fputc('}', f);
        rc = task_metrics(t, &all, f, res);
        if (!rc && t->have_truth) rc = truth_metrics(t, &all, f);
        /* server statistics: rows held, bytes, traffic */
        fprintf(f, ",\"servers\":[");
        for (int s = 0; s < t->n_servers; s++) {
            char js[4096];
            if (ps_client_ctrl(t->client, s, WIRE_CTRL_STATS, NULL, js, sizeof js)) snprintf(js, sizeof js, "null");
            fprintf(f, "%s%s", s ? "," : "", js);
        }
        fprintf(f, "]}\n");
        fclose(f);
        /* the eval time is known only now: patch it in */
        char *et = strstr(line, "\"eval_seconds\":0.000");
        char tmp[32];
        if (et) {
            snprintf(tmp, sizeof tmp, "%.3f", now_s() - t0);
            size_t fixed = strlen("\"eval_seconds\":");
            /* rebuild the line with the measured value */
            char *nl = NULL;
            size_t nl_len = 0;
            FILE *g = open_memstream(&nl, &nl_len);
            fwrite(line, 1, (size_t)(et - line) + fixed, g);
            fputs(tmp, g);
            fputs(et + fixed + 5, g);
            fclose(g);
            free(line);
            line = nl;
        }
        fputs(line, t->metrics);
        fflush(t->metrics);
        for (int k = 0; k < TASK_COUNT; k++)
            if (model_predicts(&t->m, k))
                log_info("eval step %ld %-5s auc %.4f  prauc %.4f  logloss %.5f  rce %6.2f%%  calibration %.3f  (n=%zu)",
                         t->step, task_name[k], res[k].auc, res[k].prauc, res[k].logloss, res[k].rce, res[k].calibration, res[k].n);
        free(line);
        if (!rc && final && !c->no_preds) {
            snprintf(t->path, sizeof t->path, "%s/test_preds.csv", c->out);
            const float *p[TASK_COUNT] = {model_predicts(&t->m, 0) ? all.p[0] : NULL, model_predicts(&t->m, 1) ? all.p[1] : NULL,
                                          model_predicts(&t->m, 2) ? all.p[2] : NULL};
            rc = predio_write(t->path, all.id, p, all.n);
        }
    }
    pred_free(&all);
    MPI_Bcast(&rc, 1, MPI_INT, 0, t->comm);
    return rc;
}

/* ---- training ------------------------------------------------------------ */

static wire_enc wire_enc_parse(const char *s) { return !strcmp(s, "f16") ? WIRE_F16 : !strcmp(s, "i8") ? WIRE_I8 : WIRE_F32; }

static int setup(trainer *t, const train_conf *c, MPI_Comm comm, int n_servers, char *const *endpoints, const secure_keys *keys)
{
    memset(t, 0, sizeof *t);
    t->c = c;
    t->comm = comm;
    t->n_servers = n_servers;
    MPI_Comm_rank(comm, &t->rank);
    MPI_Comm_size(comm, &t->size);
    int rc = schema_parse(&t->schema, c->fields);
    if (rc) return rc;
    model_spec spec;
    memset(&spec, 0, sizeof spec);
    if ((rc = model_preset(&spec, c->model))) return rc;
    /* the axes, one flag each, over the preset */
    if (c->share) spec.share = !strcmp(c->share, "nothing") ? SHARE_NOTHING : !strcmp(c->share, "emb") ? SHARE_EMB : SHARE_BOTTOM;
    if (c->w_ctr >= 0) spec.w_ctr = (float)c->w_ctr;
    if (c->w_cvr >= 0) spec.w_cvr = (float)c->w_cvr;
    if (c->w_ctcvr >= 0) spec.w_ctcvr = (float)c->w_ctcvr;
    if (spec.w_ctr == 0 && spec.w_cvr == 0 && spec.w_ctcvr == 0) return fn_fail(FN_EUSAGE, "every loss weight is 0: nothing to train");
    spec.n_fields = t->schema.n;
    spec.dim = (int)c->dim;
    spec.n_hidden = c->n_hidden;
    memcpy(spec.hidden, c->hidden, sizeof spec.hidden);
    if (spec.share == SHARE_BOTTOM) {
        if (c->n_bottom) {
            spec.n_bottom = c->n_bottom;
            memcpy(spec.bottom, c->bottom, sizeof spec.bottom);
        } else if (c->n_hidden >= 2) { /* same depth as the towers of the other presets */
            spec.n_bottom = 1;
            spec.bottom[0] = c->hidden[0];
            spec.n_hidden = c->n_hidden - 1;
            memmove(spec.hidden, c->hidden + 1, sizeof(int) * (size_t)spec.n_hidden);
        } else {
            spec.n_bottom = 1;
            spec.bottom[0] = c->hidden[0];
        }
    }
    if ((rc = model_init(&t->m, &spec))) return rc;
    model_init_params(&t->m, (uint64_t)c->seed);
    /* one replica's parameters for all: identical by construction, broadcast to be sure */
    MPI_Bcast(t->m.params, (int)t->m.n_params, MPI_FLOAT, 0, comm);
    t->bw = (int)((c->batch + t->size - 1) / t->size);
    if ((rc = model_ws_init(&t->ws, &t->m, t->bw > 1024 ? t->bw : 1024))) return rc;
    if ((rc = par_open(&t->pool, nn_blas_threads_to_towers(c->threads))) || (rc = model_ws_parallel(&t->ws, &t->m, t->pool))) return rc;
    t->grads = calloc((size_t)t->m.n_params + X_COUNT, sizeof(float));
    t->adam_m = calloc((size_t)t->m.n_params, sizeof(float));
    t->adam_v = calloc((size_t)t->m.n_params, sizeof(float));
    if (!t->grads || !t->adam_m || !t->adam_v) return FN_ENOMEM;
    t->adam = (nn_adam){.lr = (float)c->dense_lr, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .t = 0};
    for (int k = 0; k < t->m.n_tables; k++)
        if ((rc = embed_init(&t->emb[k], (uint32_t)k, n_servers, (int)c->dim, t->schema.n))) return rc;
    if ((rc = batch_init(&t->batch, t->ws.cap, (size_t)t->ws.cap * 64))) return rc;
    t->zctx = zmq_ctx_new();
    if (!t->zctx) return fn_fail(FN_EZMQ, "cannot create a ZeroMQ context");
    return ps_client_open(&t->client, t->zctx, n_servers, endpoints, (int)c->timeout * 1000, !c->no_lz4, wire_enc_parse(c->push_enc),
                          wire_enc_parse(c->pull_enc), keys);
}

static void teardown(trainer *t)
{
    ps_client_close(&t->client);
    if (t->zctx) zmq_ctx_term(t->zctx);
    for (int k = 0; k < MODEL_MAX_TABLES; k++) embed_free(&t->emb[k]);
    batch_free(&t->batch);
    model_ws_free(&t->ws);
    par_close(&t->pool);
    model_free(&t->m);
    free(t->grads); free(t->adam_m); free(t->adam_v);
    dataset_close(&t->test_ds);
    if (t->have_truth) truth_free(&t->truth);
    if (t->metrics) fclose(t->metrics);
}

/* The test set's known truth, on the lead worker.  --test-truth FILE must
 * load: the user asked to be scored against it, so a file that does not
 * ends the job naming FILE:LINE.  Without it, truth_X.csv beside
 * sample_skeleton_X.csv is used if it loads; a file of that name can be
 * anything (another tool's), so one that does not load is one warning and
 * a run without the entire-space metrics, never a failed run. */
static void truth_open(trainer *t)
{
    const train_conf *c = t->c;
    char buf[4200];
    const char *path = c->test_truth ? c->test_truth : truth_beside(c->test, buf, sizeof buf);
    if (!path) return;
    int rc = truth_load(&t->truth, path);
    if (rc && c->test_truth) fail_job("--test-truth", rc);
    if (rc) {
        log_warn("truth file beside the test data not used: %s (%s); entire-space metrics are off for this run "
                 "(it was found by its name, not given with --test-truth)", fn_err_msg(), fn_strerror(rc));
        return;
    }
    t->have_truth = 1;
    log_info("truth of the test set: %s (%zu impressions): entire-space metrics on", path, t->truth.n);
}

static void fmt_duration(double s, char *buf, size_t cap)
{
    long x = (long)(s + 0.5);
    if (x >= 3600) snprintf(buf, cap, "%ldh%02ldm", x / 3600, (x / 60) % 60);
    else if (x >= 60) snprintf(buf, cap, "%ldm%02lds", x / 60, x % 60);
    else snprintf(buf, cap, "%lds", x);
}

int train_worker(const train_conf *c, MPI_Comm comm, int n_servers, char *const *endpoints, const secure_keys *keys)
{
    trainer t;
    int rc = setup(&t, c, comm, n_servers, endpoints, keys);
    if (rc) fail_job("worker setup", rc);
    int stop_on_bad = !strcmp(c->bad_lines, "stop");

    if (t.rank == 0 && c->test) truth_open(&t); /* before the training data: a bad --test-truth ends the job at once */
    fn_dataset *train_ds = NULL;
    double t_load = now_s();
    char cache[4200];
    snprintf(cache, sizeof cache, "%s", c->common_cache ? c->common_cache : c->out);
    if (!c->common_cache) strncat(cache, "/cache", sizeof cache - strlen(cache) - 1);
    if ((rc = dataset_open_cached(&train_ds, c->format, c->train, c->common, &t.schema, stop_on_bad, cache))) fail_job("opening the training data", rc);
    if (c->test && (rc = dataset_open_cached(&t.test_ds, c->format, c->test, c->test_common, &t.schema, stop_on_bad, cache))) fail_job("opening the test data", rc);
    if (t.rank == 0) {
        log_info("model %s: %d fields x %ld dims, %d table(s), %ld dense parameters, %d worker(s) x %d examples per step",
                 c->model, t.schema.n, c->dim, t.m.n_tables, t.m.n_params, t.size, t.bw);
        char blas[320];
        log_info("towers: %s", nn_blas_describe(blas, sizeof blas));
        log_info("training data: %s, loaded in %.1f s", dataset_describe(train_ds), now_s() - t_load);
        if (c->test) log_info("test data: %s", dataset_describe(t.test_ds));
        snprintf(t.path, sizeof t.path, "%s/metrics.jsonl", c->out);
        t.metrics = fopen(t.path, "a");
        if (!t.metrics) { fn_fail(FN_EIO, "%s: cannot open: %s", t.path, strerror(errno)); fail_job("metrics file", FN_EIO); }
    }
    fn_reader *r;
    if ((rc = reader_open(&r, train_ds, t.rank, t.size))) fail_job("opening training data", rc);

    const float scale = 1.0f / (float)t.size; /* each worker's mean loss is 1/W of the step's */
    const long np = t.m.n_params;
    double t0 = now_s(), t_log = t0, train_time = 0;
    double win_loss[TASK_COUNT] = {0}, win_cnt[TASK_COUNT] = {0}, win_n = 0, trained_here = 0;
    long epoch, epoch0 = 0;
    if (c->resume && (epoch0 = resume(&t, r)) < 0) epoch0 = 0;
    prefetch *pf; /* the next batch is read while this one trains */
    if ((rc = prefetch_start(&pf, r, t.bw, t.emb, t.m.n_tables))) fail_job("reading training data", rc);
    uint64_t pos[2];
    /* Pull-ahead (the default): the next batch's rows are pulled while this
     * batch is in the towers.  The pull goes out before this worker's push
     * of this step, and a server completes a step's round only with every
     * worker's push, so the rows read are exactly the state after the
     * previous step: one step behind, the same in every run whatever the
     * timing (a retried pull reads the same state too).  After a checkpoint
     * the next batch is pulled again, so a resumed run matches. */
    const int ahead = !c->sync_pulls;
    /* Push-behind (one worker, with pull-ahead): a step's push goes out and
     * the worker moves on; its reply is taken with the next batch's pull.
     * A server answers a worker's requests in order, so the pull for batch
     * n+2, sent after push n, reads it applied: the rows are those
     * pull-ahead reads anyway.  (Several workers push in rounds, which a
     * server answers only when complete: they wait.)  Before a checkpoint,
     * an evaluation or the end every push is waited for. */
    const int behind = ahead && t.size == 1;
    for (epoch = epoch0; epoch < c->epochs; epoch++) {
        if (epoch != epoch0) prefetch_rewind(pf);
        const fn_batch *b, *nb = NULL;
        embed_table *emb, *nemb = NULL;
        uint64_t npos[2];
        int pulled = 0;     /* this batch's rows came with the last step */
        int held_prev = 0;  /* the last step's batch is still held: its push is out */
        for (;;) {
            double ta = now_s(), tb;
            if (nb) {
                b = nb;
                emb = nemb;
                pos[0] = npos[0];
                pos[1] = npos[1];
                nb = NULL;
            } else {
                if ((rc = prefetch_next(pf, &b, &emb, pos))) fail_job("reading training data", rc);
                pulled = 0;
            }
            memset(t.grads, 0, sizeof(float) * (size_t)(np + X_COUNT));
            t.tm[TM_DATA] += (tb = now_s()) - ta;
            if (b->n > 0) {
                if ((rc = pull_pool(&t, b, emb, 0, pulled))) fail_job("pull", rc);
                int sent = 0;
                if (ahead) {
                    if ((rc = prefetch_next(pf, &nb, &nemb, npos))) fail_job("reading training data", rc);
                    if (nb->n > 0) {
                        if ((rc = ps_client_pull_send(t.client, &nemb[0], 0))) fail_job("pull", rc);
                        sent = 1;
                    }
                }
                t.tm[TM_PULL] += (ta = now_s()) - tb;
                model_forward(&t.m, &t.ws, b->n);
                double loss[TASK_COUNT];
                int cnt[TASK_COUNT];
                model_backward(&t.m, &t.ws, b->n, b->click, b->buy, scale, t.grads, loss, cnt);
                for (int k = 0; k < t.m.n_tables; k++)
                    if ((rc = embed_backward(&emb[k], b, t.ws.dx[k], 1.0f, t.pool))) fail_job("embedding gradients", rc);
                t.tm[TM_TOWERS] += (tb = now_s()) - ta;
                pulled = 0;
                if (sent) { /* the next batch's rows; a second table's after the first's */
                    if ((rc = ps_client_wait(t.client))) fail_job("pull", rc);
                    for (int k = 1; k < t.m.n_tables; k++)
                        if ((rc = ps_client_pull(t.client, &nemb[k], 0))) fail_job("pull", rc);
                    pulled = 1;
                }
                t.tm[TM_PULL] += (ta = now_s()) - tb;
                tb = ta;
                if (behind) {
                    if ((rc = ps_client_wait(t.client))) fail_job("push", rc); /* the last step's, if not in yet */
                    for (int k = 0; k < t.m.n_tables; k++)
                        if ((rc = ps_client_push_send(t.client, &emb[k], t.rank, t.size))) fail_job("push", rc);
                } else {
                    for (int k = 0; k < t.m.n_tables; k++)
                        if ((rc = ps_client_push(t.client, &emb[k], t.rank, t.size))) fail_job("push", rc);
                }
                float *x = t.grads + np;
                x[X_N] = (float)b->n;
                for (int k = 0; k < TASK_COUNT; k++) { x[X_LOSS + k] = (float)(loss[k] * cnt[k]); x[X_CNT + k] = (float)cnt[k]; }
                for (int i = 0; i < b->n; i++) { x[X_CLK] += b->click[i]; x[X_BUY] += b->buy[i]; }
            } else if (t.size > 1) {
                /* no data left here: an empty part, so the servers' round completes */
                for (int k = 0; k < t.m.n_tables; k++)
                    if ((rc = ps_client_push(t.client, &emb[k], t.rank, t.size))) fail_job("push", rc);
            }
            t.tm[TM_PUSH] += (ta = now_s()) - tb;
            /* after this, every worker's pushes of the step are applied, or
             * with push-behind sent (a later pull reads them applied) */
            MPI_Allreduce(MPI_IN_PLACE, t.grads, (int)(np + X_COUNT), MPI_FLOAT, MPI_SUM, comm);
            const float *x = t.grads + np;
            if (x[X_N] == 0) break;
            nn_adam_step(&t.adam, t.m.params, t.grads, t.adam_m, t.adam_v, np);
            t.tm[TM_SYNC] += now_s() - ta;
            t.step++;
            if (epoch == 0) { t.n_imp += x[X_N]; t.n_clk += x[X_CLK]; t.n_buy += x[X_BUY]; }
            win_n += x[X_N];
            trained_here += x[X_N];
            for (int k = 0; k < TASK_COUNT; k++) { win_loss[k] += x[X_LOSS + k]; win_cnt[k] += x[X_CNT + k]; }
            double now = now_s();
            if (t.rank == 0 && now - t_log >= c->log_every) {
                double done = (epoch + prefetch_progress(pf)) / (double)c->epochs;
                char eta[32], msg[256];
                fmt_duration(done > 0 ? (now - t0) * (1 - done) / done : 0, eta, sizeof eta);
                int at = 0;
                for (int k = 0; k < TASK_COUNT; k++)
                    if (model_predicts(&t.m, k))
                        at += snprintf(msg + at, sizeof msg - (size_t)at, " %s %.5f", task_name[k], win_cnt[k] > 0 ? win_loss[k] / win_cnt[k] : 0.0);
                log_info("step %ld | epoch %ld | %.0f ex/s | loss%s | %.0f%% | ETA %s", t.step, epoch + 1,
                         win_n / (now - t_log), msg, 100 * done, eta);
                t_log = now;
                win_n = 0;
                memset(win_loss, 0, sizeof win_loss);
                memset(win_cnt, 0, sizeof win_cnt);
            }
            const int ckpt_now = c->checkpoint_every && t.step % c->checkpoint_every == 0;
            const int eval_now = c->eval_every && c->test && t.step % c->eval_every == 0;
            if ((ckpt_now || eval_now) && (rc = ps_client_wait(t.client))) fail_job("push", rc); /* this step's pushes applied first */
            if (ckpt_now) {
                double paused = now_s();
                checkpoint(&t, pos, epoch);
                pulled = 0; /* read again after the checkpoint, as a run resumed from it will */
                t0 += now_s() - paused;
            }
            if (eval_now) {
                double paused = now_s();
                if ((rc = evaluate(&t, epoch + 1, paused - t0 - 0, 0, 0))) fail_job("evaluation", rc);
                t0 += now_s() - paused; /* evaluation time is not training time */
            }
            /* this step's batch, or with push-behind the last step's (its
             * push is answered: ps_client_wait ran this step) */
            if (!behind || held_prev) prefetch_release(pf);
            held_prev = behind && b->n > 0;
        }
        if ((rc = ps_client_wait(t.client))) fail_job("push", rc); /* before the batches are read again */
    }
    prefetch_stop(&pf);
    train_time = now_s() - t0;
    double rate = trained_here / fmax(train_time, 1e-9); /* this process's run, also after a resume */
    /* reading problems, summed over workers */
    const reader_stats *st = reader_get_stats(r);
    unsigned long long loc[3] = {st->bad_lines, st->unknown_items, st->missing_common}, tot[3];
    MPI_Allreduce(loc, tot, 3, MPI_UNSIGNED_LONG_LONG, MPI_SUM, comm);
    if (t.rank == 0) {
        log_info("trained %ld steps, %.0f examples x %ld epoch(s) (%.0f in this run) in %.1f s: %.0f examples/s", t.step, t.n_imp,
                 c->epochs, trained_here, train_time, rate);
        log_info("worker 0's training time: %s %.2f s, %s %.2f s, %s %.2f s, %s %.2f s, %s %.2f s (%d tower thread(s))", tm_name[0], t.tm[0],
                 tm_name[1], t.tm[1], tm_name[2], t.tm[2], tm_name[3], t.tm[3], tm_name[4], t.tm[4], par_threads(t.pool));
        if (tot[0]) log_warn("%s: %llu malformed line(s) skipped (%llu with an unknown md5); see the warnings above for where", c->train, tot[0], tot[2]);
        if (tot[1]) log_info("%s: %llu feature item(s) of fields outside --fields ignored", c->train, tot[1]);
    }
    if (c->test && (rc = evaluate(&t, epoch, train_time, rate, 1))) fail_job("evaluation", rc);
    if (!c->test && t.rank == 0) {
        fprintf(t.metrics, "{\"model\":\"%s\",\"step\":%ld,\"epoch\":%ld,\"final\":true,\"train_examples\":%.0f,\"train_seconds\":%.3f,\"train_examples_per_sec\":%.1f,\"train_bad_lines\":%llu}\n",
                c->model, t.step, epoch, t.n_imp, train_time, rate, tot[0]);
    }
    /* export: servers write their rows, the lead worker the dense part */
    if (t.rank == 0) {
        snprintf(t.path, sizeof t.path, "%s/model", c->out);
        if (mkdir(t.path, 0755) && errno != EEXIST) { fn_fail(FN_EIO, "%s: cannot create: %s", t.path, strerror(errno)); fail_job("export", FN_EIO); }
        for (int s = 0; s < n_servers; s++) {
            char p[4200], reply[512];
            snprintf(p, sizeof p, "%s/model/emb-%d.bin", c->out, s);
            if ((rc = ps_client_ctrl(t.client, s, WIRE_CTRL_EXPORT, p, reply, sizeof reply))) fail_job("export", rc);
        }
        snprintf(t.path, sizeof t.path, "%s/model/dense.bin", c->out);
        if ((rc = modelfile_save_dense(t.path, &t.m, &t.schema))) fail_job("export", rc);
        log_info("model exported to %s/model", c->out);
        for (int s = 0; s < n_servers; s++)
            if ((rc = ps_client_ctrl(t.client, s, WIRE_CTRL_SHUTDOWN, NULL, NULL, 0))) log_warn("server %d: %s", s, fn_err_msg());
    }
    reader_close(&r);
    dataset_close(&train_ds);
    teardown(&t);
    return FN_OK;
}
