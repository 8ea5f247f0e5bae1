/* tests/fuzz/fuzz_checkpoint.c — libFuzzer target for the checkpoint
 * loaders: the files of RUN_DIR/ckpt/step-N/ (worker/checkpoint.c:
 * ckpt_load_dense for dense.bin, ckpt_load_worker for worker-W.bin,
 * ckpt_find_latest for MANIFEST and the verification of the files it names;
 * ps/server.c: ps_server_restore for server-S.bin) and the container under
 * them (common/binfile.c: binfile_load, binfile_verify).
 *
 * Input: one byte choosing the file (its value mod 4: 0 dense.bin,
 * 1 worker-W.bin, 2 MANIFEST, 3 server-S.bin), then the file.  Each file is
 * loaded twice: as given (the container's checks), and "sealed" — the
 * loader's magic written over its first 4 bytes and the trailing CRC-32C
 * recomputed — since random mutations almost never keep a CRC valid and
 * would otherwise never reach the body parser.  What the loader must be told
 * (the model's dense parameter count, the worker index, the job's shape, the
 * server's dim and optimizer) is taken from the file itself, so that a file
 * is refused by its own inconsistencies, not by a mismatch with the job.
 * Properties:
 *   - a refusal is an error code with a one-line message;
 *   - an accepted dense.bin has the parameter count it was asked for, a
 *     step, epoch and Adam clock a long can hold (the trainer's types), and
 *     saving it and loading it back gives the same state, bit for bit;
 *   - an accepted worker-W.bin is worker W's, with a step and epoch a long
 *     can hold, and survives a save and load;
 *   - ckpt_find_latest accepts a MANIFEST only with the step of its
 *     directory (it is given intact dense, worker and server files when the
 *     manifest names at most 4 of each);
 *   - a restored server shard, checkpointed, restored and checkpointed
 *     again, gives the same file twice.
 * The sanitizers catch out-of-bounds access, undefined behaviour, leaks and
 * (libFuzzer's -malloc_limit_mb) allocations a small file must not cause.
 * The servers (one per dim 1..32 and optimizer, made on first use) bind
 * 127.0.0.1 and live until exit.
 *
 * Seeds: tests/fuzz/corpus/checkpoint/ (files of real checkpoints of tiny
 * jobs: 1 + 1 with each sparse optimizer, 2 + 2 esmm-ns). */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#include "binfile.h"
#include "checkpoint.h"
#include "fn_error.h"
#include "fuzz_util.h"
#include "optimizer.h"
#include "server.h"

#define MAX_DIM 32

static char dir_ck[96], dir_ck2[96], dir_run[96];
static void *zctx;
static ps_server *servers[4][MAX_DIM + 1];

static void check_refusal(int rc, const char *what)
{
    const char *m = fn_err_msg();
    REQUIRE(rc > FN_OK && rc < FN_ERR_COUNT, "%s: bad error code %d", what, rc);
    REQUIRE(m[0] && !strchr(m, '\n'), "%s: error %d without a one-line reason: '%s'", what, rc, m);
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f, "cannot create %s", path);
    REQUIRE(fwrite(data, 1, n, f) == n && fclose(f) == 0, "cannot write %s", path);
}

/* Removes every file of dir (and dir itself when rm_dir). */
static void clear_dir(const char *dir, int rm_dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    if (rm_dir) rmdir(dir);
}

static void cleanup(void)
{
    for (int k = 0; k < 4; k++)
        for (int d = 0; d <= MAX_DIM; d++) ps_server_destroy(&servers[k][d]);
    if (zctx) zmq_ctx_term(zctx);
    zctx = NULL;
    char p[160];
    snprintf(p, sizeof p, "%s/ckpt", dir_run);
    DIR *d = opendir(p);
    if (d) {
        struct dirent *e;
        char q[512];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(q, sizeof q, "%s/%s", p, e->d_name);
            clear_dir(q, 1);
        }
        closedir(d);
    }
    rmdir(p);
    rmdir(dir_run);
    clear_dir(dir_ck, 1);
    clear_dir(dir_ck2, 1);
}

static void setup(void)
{
    if (dir_ck[0]) return;
    fuzz_setup("fuzz_checkpoint");
    snprintf(dir_ck, sizeof dir_ck, "%s/ck", fuzz_dir);
    snprintf(dir_ck2, sizeof dir_ck2, "%s/ck2", fuzz_dir);
    snprintf(dir_run, sizeof dir_run, "%s/run", fuzz_dir);
    REQUIRE(!mkdir(dir_ck, 0700) && !mkdir(dir_ck2, 0700) && !mkdir(dir_run, 0700), "cannot create directories in %s", fuzz_dir);
    char p[160];
    snprintf(p, sizeof p, "%s/ckpt", dir_run);
    REQUIRE(!mkdir(p, 0700), "cannot create %s", p);
    atexit(cleanup); /* runs before fuzz_dir_remove (registered first) */
}

/* ---- dense.bin ------------------------------------------------------------ */

static void load_dense(const uint8_t *file, size_t n)
{
    char p[160];
    snprintf(p, sizeof p, "%s/dense.bin", dir_ck);
    write_file(p, file, n);
    /* the parameter count the file claims (header: 8 bytes, then 7 u64);
     * a model has at least one */
    long np = n >= 64 ? (long)get_le64(file + 56) : 1;
    if (np < 1) np = 1;
    ckpt_dense d, d2;
    int rc = ckpt_load_dense(dir_ck, &d, np);
    unlink(p);
    if (rc) {
        check_refusal(rc, "ckpt_load_dense");
        REQUIRE(!d.params && !d.m && !d.v, "a refused dense.bin left buffers");
        return;
    }
    REQUIRE(d.n_params == np && np > 0 && d.params && d.m && d.v, "accepted %ld parameters, asked for %ld", d.n_params, np);
    REQUIRE(d.step <= (uint64_t)LONG_MAX && d.epoch <= (uint64_t)LONG_MAX && d.adam_t >= 0, "step %llu, epoch %llu or Adam clock %ld out of range",
            (unsigned long long)d.step, (unsigned long long)d.epoch, d.adam_t);
    REQUIRE(ckpt_save_dense(dir_ck2, &d) == FN_OK, "cannot save: %s", fn_err_msg());
    rc = ckpt_load_dense(dir_ck2, &d2, np);
    REQUIRE(rc == FN_OK, "a saved dense.bin does not load: %s", fn_err_msg());
    REQUIRE(d.step == d2.step && d.epoch == d2.epoch && !memcmp(&d.n_imp, &d2.n_imp, sizeof(double)) &&
                !memcmp(&d.n_clk, &d2.n_clk, sizeof(double)) && !memcmp(&d.n_buy, &d2.n_buy, sizeof(double)) &&
                d.adam_t == d2.adam_t && d.n_params == d2.n_params,
            "dense header changed in a save and load");
    size_t bytes = sizeof(float) * (size_t)np;
    REQUIRE(!memcmp(d.params, d2.params, bytes) && !memcmp(d.m, d2.m, bytes) && !memcmp(d.v, d2.v, bytes),
            "dense parameters changed in a save and load");
    ckpt_dense_free(&d);
    ckpt_dense_free(&d2);
    clear_dir(dir_ck2, 0);
}

/* ---- worker-W.bin --------------------------------------------------------- */

static void load_worker(const uint8_t *file, size_t n)
{
    uint32_t worker = n >= 12 ? get_le32(file + 8) : 0;
    char p[160];
    snprintf(p, sizeof p, "%s/worker-%u.bin", dir_ck, worker);
    write_file(p, file, n);
    ckpt_worker w, w2;
    memset(&w, 0, sizeof w);
    memset(&w2, 0, sizeof w2);
    int rc = ckpt_load_worker(dir_ck, worker, &w);
    unlink(p);
    if (rc) {
        check_refusal(rc, "ckpt_load_worker");
        return;
    }
    REQUIRE(w.worker == worker, "asked for worker %u, got %u", worker, w.worker);
    REQUIRE(w.step <= (uint64_t)LONG_MAX && w.epoch <= (uint64_t)LONG_MAX, "step %llu or epoch %llu out of range",
            (unsigned long long)w.step, (unsigned long long)w.epoch);
    REQUIRE(ckpt_save_worker(dir_ck2, &w) == FN_OK, "cannot save: %s", fn_err_msg());
    rc = ckpt_load_worker(dir_ck2, worker, &w2);
    REQUIRE(rc == FN_OK, "a saved worker file does not load: %s", fn_err_msg());
    REQUIRE(w.worker == w2.worker && w.workers == w2.workers && w.step == w2.step && w.epoch == w2.epoch &&
                w.pos[0] == w2.pos[0] && w.pos[1] == w2.pos[1],
            "worker state changed in a save and load");
    clear_dir(dir_ck2, 0);
}

/* ---- MANIFEST (through ckpt_find_latest) ---------------------------------- */

/* An intact container with an empty body: what verify() checks of the
 * files a manifest names. */
static void write_empty(const char *path, uint32_t magic, uint32_t version)
{
    uint8_t b[12];
    put_le32(b, magic);
    put_le32(b + 4, version);
    put_le32(b + 8, fn_crc32c(0, b, 8));
    write_file(path, b, sizeof b);
}

static void load_manifest(const uint8_t *file, size_t n)
{
    /* body: u64 step, u32 servers, u32 workers, u64 parameters, 32 bytes model */
    uint64_t step = n >= 16 ? get_le64(file + 8) : 0;
    int S = n >= 20 ? (int)get_le32(file + 16) : 1, W = n >= 24 ? (int)get_le32(file + 20) : 1;
    long np = n >= 32 ? (long)get_le64(file + 24) : 1;
    char model[33] = {0};
    if (n >= 64) memcpy(model, file + 32, 32);
    char dir[160], p[200];
    snprintf(p, sizeof p, "%s/ckpt", dir_run);
    REQUIRE(!mkdir(p, 0700) || errno == EEXIST, "cannot create %s", p);
    ckpt_dir(dir_run, step, dir, sizeof dir);
    REQUIRE(!mkdir(dir, 0700), "cannot create %s", dir);
    snprintf(p, sizeof p, "%s/MANIFEST", dir);
    write_file(p, file, n);
    if (S >= 0 && S <= 4 && W >= 0 && W <= 4) {
        snprintf(p, sizeof p, "%s/dense.bin", dir);
        write_empty(p, CKPT_DENSE_MAGIC, CKPT_VERSION);
        for (int w = 0; w < W; w++) {
            snprintf(p, sizeof p, "%s/worker-%d.bin", dir, w);
            write_empty(p, CKPT_WORKER_MAGIC, CKPT_VERSION);
        }
        for (int s = 0; s < S; s++) {
            snprintf(p, sizeof p, "%s/server-%d.bin", dir, s);
            write_empty(p, PS_CKPT_MAGIC, PS_CKPT_VERSION);
        }
    }
    uint64_t got = ~step;
    int rc = ckpt_find_latest(dir_run, S, W, model, np, &got);
    clear_dir(dir, 1);
    if (rc) {
        check_refusal(rc, "ckpt_find_latest");
        return;
    }
    REQUIRE(got == step, "found step %llu in the directory of step %llu", (unsigned long long)got, (unsigned long long)step);
}

/* ---- server-S.bin --------------------------------------------------------- */

static ps_server *server_for(int kind, int dim)
{
    if (kind < 0 || kind > 3 || dim < 1 || dim > MAX_DIM) { kind = PS_OPT_ADAGRAD; dim = 2; }
    if (servers[kind][dim]) return servers[kind][dim];
    if (!zctx) REQUIRE((zctx = zmq_ctx_new()), "cannot create a ZeroMQ context");
    ps_server_conf conf = {0};
    conf.rank = 0;
    conf.bind_host = conf.advertise_host = "127.0.0.1";
    conf.dim = dim;
    conf.opt = ps_opt_default((ps_opt_kind)kind);
    conf.seed = 1;
    conf.init_range = 0.05f;
    conf.lz4 = 1;
    const char *endpoint;
    REQUIRE(ps_server_new(&servers[kind][dim], zctx, &conf, &endpoint) == FN_OK, "cannot start a server: %s", fn_err_msg());
    return servers[kind][dim];
}

static uint8_t *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    REQUIRE(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    rewind(f);
    uint8_t *b = malloc((size_t)len + 1);
    REQUIRE(b && fread(b, 1, (size_t)len, f) == (size_t)len, "cannot read %s", path);
    fclose(f);
    *n = (size_t)len;
    return b;
}

static void load_server(const uint8_t *file, size_t n)
{
    /* body: u32 dim, u32 state floats, u32 optimizer kind, ... */
    int dim = n >= 12 ? (int)get_le32(file + 8) : 2, kind = n >= 20 ? (int)get_le32(file + 16) : PS_OPT_ADAGRAD;
    ps_server *s = server_for(kind, dim);
    const char *path = fuzz_file("a", file, n);
    int rc = ps_server_restore(s, path);
    if (rc) {
        check_refusal(rc, "ps_server_restore");
        return;
    }
    char b[96], c[96];
    snprintf(b, sizeof b, "%s/b", fuzz_dir);
    snprintf(c, sizeof c, "%s/c", fuzz_dir);
    REQUIRE(ps_server_checkpoint(s, b) == FN_OK, "cannot checkpoint a restored server: %s", fn_err_msg());
    REQUIRE(ps_server_restore(s, b) == FN_OK, "a server's own checkpoint does not restore: %s", fn_err_msg());
    REQUIRE(ps_server_checkpoint(s, c) == FN_OK, "cannot checkpoint a restored server: %s", fn_err_msg());
    size_t nb, nc;
    uint8_t *fb = read_all(b, &nb), *fc = read_all(c, &nc);
    REQUIRE(nb == nc && !memcmp(fb, fc, nb), "a restored checkpoint checkpoints differently (%zu vs %zu bytes)", nb, nc);
    free(fb);
    free(fc);
}

/* ---- driver --------------------------------------------------------------- */

static const struct {
    uint32_t magic;
    void (*load)(const uint8_t *file, size_t n);
} loaders[4] = {
    {CKPT_DENSE_MAGIC, load_dense},
    {CKPT_WORKER_MAGIC, load_worker},
    {CKPT_MANIFEST_MAGIC, load_manifest},
    {PS_CKPT_MAGIC, load_server},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    if (size < 1) return 0;
    const int k = data[0] & 3;
    const uint8_t *file = data + 1;
    size_t n = size - 1;
    loaders[k].load(file, n);
    if (n < 12) return 0;
    uint8_t *sealed = malloc(n);
    REQUIRE(sealed, "out of memory");
    memcpy(sealed, file, n);
    put_le32(sealed, loaders[k].magic);
    put_le32(sealed + n - 4, fn_crc32c(0, sealed, n - 4));
    loaders[k].load(sealed, n);
    free(sealed);
    return 0;
}
