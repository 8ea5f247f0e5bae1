/* worker/checkpoint.c — see checkpoint.h. */
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "binfile.h"
#include "fn_error.h"
#include "log.h"

#define PS_CKPT_MAGIC 0x434C4E46u /* ps/server.h: the servers' shards */
#define PS_CKPT_VERSION 2         /* ps/server.h: keep in step */

const char *ckpt_dir(const char *run_dir, uint64_t step, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/ckpt/step-%010llu", run_dir, (unsigned long long)step);
    return buf;
}

int ckpt_mkdir(const char *run_dir, uint64_t step)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/ckpt", run_dir);
    if (mkdir(p, 0755) && errno != EEXIST) return fn_fail(FN_EIO, "%s: cannot create: %s", p, strerror(errno));
    ckpt_dir(run_dir, step, p, sizeof p);
    if (mkdir(p, 0755) && errno != EEXIST) return fn_fail(FN_EIO, "%s: cannot create: %s", p, strerror(errno));
    return FN_OK;
}

static int write_floats(binfile_w *w, const float *x, long n)
{
    uint8_t buf[4096];
    long i = 0;
    while (i < n) {
        int k = 0;
        for (; k < 1024 && i < n; k++, i++) put_f32(buf + 4 * k, x[i]);
        int rc = binfile_write(w, buf, (size_t)k * 4);
        if (rc) return rc;
    }
    return FN_OK;
}

int ckpt_save_dense(const char *dir, const ckpt_dense *d)
{
    char p[4300];
    snprintf(p, sizeof p, "%s/dense.bin", dir);
    binfile_w w;
    int rc = binfile_create(&w, p, CKPT_DENSE_MAGIC, CKPT_VERSION);
    if (rc) return rc;
    uint8_t h[56];
    put_le64(h, d->step);
    put_le64(h + 8, d->epoch);
    put_le64(h + 16, (uint64_t)d->n_imp);
    put_le64(h + 24, (uint64_t)d->n_clk);
    put_le64(h + 32, (uint64_t)d->n_buy);
    put_le64(h + 40, (uint64_t)d->adam_t);
    put_le64(h + 48, (uint64_t)d->n_params);
    rc = binfile_write(&w, h, sizeof h);
    if (!rc) rc = write_floats(&w, d->params, d->n_params);
    if (!rc) rc = write_floats(&w, d->m, d->n_params);
    if (!rc) rc = write_floats(&w, d->v, d->n_params);
    if (rc) { binfile_abort(&w); return rc; }
    return binfile_commit(&w);
}

int ckpt_load_dense(const char *dir, ckpt_dense *d, long n_params)
{
    memset(d, 0, sizeof *d);
    char p[4300];
    snprintf(p, sizeof p, "%s/dense.bin", dir);
    uint8_t *body;
    size_t len;
    uint32_t version;
    int rc = binfile_load(p, CKPT_DENSE_MAGIC, CKPT_VERSION, &body, &len, &version);
    if (rc) return rc;
    binfile_r r = {body, len, 0, 0};
    d->step = binfile_u64(&r);
    d->epoch = binfile_u64(&r);
    uint64_t imp = binfile_u64(&r), clk = binfile_u64(&r), buy = binfile_u64(&r), adam_t = binfile_u64(&r), np = binfile_u64(&r);
    /* the step, epoch and Adam clock are longs to the trainer; the
     * counters doubles that must convert back exactly */
    if (r.bad || d->step > LONG_MAX || d->epoch > LONG_MAX || adam_t > LONG_MAX || imp > (1ull << 53) || clk > (1ull << 53) ||
        buy > (1ull << 53)) {
        free(body);
        return fn_fail(FN_EPARSE, "%s: malformed header (a step, epoch or count out of range)", p);
    }
    d->n_imp = (double)imp;
    d->n_clk = (double)clk;
    d->n_buy = (double)buy;
    d->adam_t = (long)adam_t;
    d->n_params = (long)np;
    if (d->n_params != n_params || (len - r.at) / 12 != (size_t)n_params || (len - r.at) % 12) { /* no 12 * n overflow */
        free(body);
        return fn_fail(FN_EPARSE, "%s: %ld dense parameters in %zu bytes, this model has %ld", p, d->n_params, len - r.at, n_params);
    }
    d->params = malloc(sizeof(float) * (size_t)n_params);
    d->m = malloc(sizeof(float) * (size_t)n_params);
    d->v = malloc(sizeof(float) * (size_t)n_params);
    if (!d->params || !d->m || !d->v) { free(body); ckpt_dense_free(d); return fn_fail(FN_ENOMEM, "%s: out of memory", p); }
    float *dst[3] = {d->params, d->m, d->v};
    for (int k = 0; k < 3; k++)
        for (long i = 0; i < n_params; i++) dst[k][i] = binfile_f32(&r);
    free(body);
    return FN_OK;
}

void ckpt_dense_free(ckpt_dense *d)
{
    free(d->params); free(d->m); free(d->v);
    d->params = d->m = d->v = NULL;
}

int ckpt_save_worker(const char *dir, const ckpt_worker *wk)
{
    char p[4300];
    snprintf(p, sizeof p, "%s/worker-%u.bin", dir, wk->worker);
    binfile_w w;
    int rc = binfile_create(&w, p, CKPT_WORKER_MAGIC, CKPT_VERSION);
    if (rc) return rc;
    uint8_t h[40];
    put_le32(h, wk->worker);
    put_le32(h + 4, wk->workers);
    put_le64(h + 8, wk->step);
    put_le64(h + 16, wk->epoch);
    put_le64(h + 24, wk->pos[0]);
    put_le64(h + 32, wk->pos[1]);
    rc = binfile_write(&w, h, sizeof h);
    if (rc) { binfile_abort(&w); return rc; }
    return binfile_commit(&w);
}

int ckpt_load_worker(const char *dir, uint32_t worker, ckpt_worker *wk)
{
    char p[4300];
    snprintf(p, sizeof p, "%s/worker-%u.bin", dir, worker);
    uint8_t *body;
    size_t len;
    uint32_t version;
    int rc = binfile_load(p, CKPT_WORKER_MAGIC, CKPT_VERSION, &body, &len, &version);
    if (rc) return rc;
    binfile_r r = {body, len, 0, 0};
    wk->worker = binfile_u32(&r);
    wk->workers = binfile_u32(&r);
    wk->step = binfile_u64(&r);
    wk->epoch = binfile_u64(&r);
    wk->pos[0] = binfile_u64(&r);
    wk->pos[1] = binfile_u64(&r);
    free(body);
    if (r.bad || r.at != len || wk->worker != worker || wk->step > LONG_MAX || wk->epoch > LONG_MAX)
        return fn_fail(FN_EPARSE, "%s: malformed worker state", p);
    return FN_OK;
}

int ckpt_save_manifest(const char *dir, uint64_t step, int servers, int workers, const char *model, long n_params)
{
    char p[4300];
    snprintf(p, sizeof p, "%s/MANIFEST", dir);
    binfile_w w;
    int rc = binfile_create(&w, p, CKPT_MANIFEST_MAGIC, CKPT_VERSION);
    if (rc) return rc;
    uint8_t h[56] = {0};
    put_le64(h, step);
    put_le32(h + 8, (uint32_t)servers);
    put_le32(h + 12, (uint32_t)workers);
    put_le64(h + 16, (uint64_t)n_params);
    snprintf((char *)h + 24, 32, "%s", model);
    rc = binfile_write(&w, h, sizeof h);
    if (rc) { binfile_abort(&w); return rc; }
    return binfile_commit(&w);
}

/* Step numbers of RUN_DIR/ckpt/step-* directories, newest first. */
static int list_steps(const char *run_dir, uint64_t **out)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/ckpt", run_dir);
    DIR *d = opendir(p);
    *out = NULL;
    if (!d) return 0;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        unsigned long long s;
        char tail;
        if (sscanf(e->d_name, "step-%llu%c", &s, &tail) != 1) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *q = realloc(*out, sizeof(uint64_t) * (size_t)cap);
            if (!q) break;
            *out = q;
        }
        (*out)[n++] = s;
    }
    closedir(d);
    for (int i = 1; i < n; i++) /* few entries: insertion sort, newest first */
        for (int j = i; j > 0 && (*out)[j] > (*out)[j - 1]; j--) { uint64_t t = (*out)[j]; (*out)[j] = (*out)[j - 1]; (*out)[j - 1] = t; }
    return n;
}

/* FN_OK if the checkpoint at dir is complete, verified and of this shape. */
static int verify(const char *dir, uint64_t step, int servers, int workers, const char *model, long n_params)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/MANIFEST", dir);
    if (access(p, F_OK)) return fn_fail(FN_ENOTFOUND, "no MANIFEST (incomplete: the job stopped while writing it)");
    uint8_t *body;
    size_t len;
    uint32_t version;
    int rc = binfile_load(p, CKPT_MANIFEST_MAGIC, CKPT_VERSION, &body, &len, &version);
    if (rc) return rc;
    binfile_r r = {body, len, 0, 0};
    uint64_t s = binfile_u64(&r);
    int S = (int)binfile_u32(&r), W = (int)binfile_u32(&r);
    long np = (long)binfile_u64(&r);
    char m[33] = {0};
    const uint8_t *mp = binfile_take(&r, 32);
    if (mp) memcpy(m, mp, 32);
    free(body);
    if (r.bad || s != step) return fn_fail(FN_EPARSE, "%s: malformed manifest", p);
    if (S != servers || W != workers)
        return fn_fail(FN_EINVAL, "written by %d servers + %d workers; resume with the same counts (this job: %d + %d)", S, W, servers, workers);
    if (strcmp(m, model) || np != n_params)
        return fn_fail(FN_EINVAL, "written by model %s with %ld dense parameters; this job: %s with %ld", m, np, model, n_params);
    snprintf(p, sizeof p, "%s/dense.bin", dir);
    if ((rc = binfile_verify(p, CKPT_DENSE_MAGIC, CKPT_VERSION))) return rc;
    for (int w = 0; w < workers; w++) {
        snprintf(p, sizeof p, "%s/worker-%d.bin", dir, w);
        if ((rc = binfile_verify(p, CKPT_WORKER_MAGIC, CKPT_VERSION))) return rc;
    }
    for (int sv = 0; sv < servers; sv++) {
        snprintf(p, sizeof p, "%s/server-%d.bin", dir, sv);
        if ((rc = binfile_verify(p, PS_CKPT_MAGIC, PS_CKPT_VERSION))) return rc;
    }
    return FN_OK;
}

int ckpt_find_latest(const char *run_dir, int servers, int workers, const char *model, long n_params, uint64_t *step)
{
    uint64_t *steps;
    int n = list_steps(run_dir, &steps), rc = FN_ENOTFOUND;
    for (int i = 0; i < n; i++) {
        char dir[4200];
        ckpt_dir(run_dir, steps[i], dir, sizeof dir);
        if (verify(dir, steps[i], servers, workers, model, n_params)) {
            log_warn("checkpoint %s skipped: %s", dir, fn_err_msg());
            continue;
        }
        *step = steps[i];
        rc = FN_OK;
        break;
    }
    free(steps);
    if (rc) fn_fail(FN_ENOTFOUND, "%s/ckpt: no complete, verified checkpoint", run_dir);
    return rc;
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[4600];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

void ckpt_prune(const char *run_dir, int keep)
{
    uint64_t *steps;
    int n = list_steps(run_dir, &steps), complete = 0;
    for (int i = 0; i < n; i++) {
        char dir[4200], man[4300];
        ckpt_dir(run_dir, steps[i], dir, sizeof dir);
        snprintf(man, sizeof man, "%s/MANIFEST", dir);
        int has = access(man, F_OK) == 0;
        if (has && complete < keep) { complete++; continue; }
        if (!has && complete == 0) continue; /* newer than every complete one: maybe being written */
        remove_dir(dir);
    }
    free(steps);
}
