/* tests/bench/bench_micro.c — the micro benchmarks behind tests/bench/run.sh.
 *
 *   fn_bench_micro sgemm    [--batch B] [--seconds S] [--reps R] [--threads 1,2] [--split T]
 *   fn_bench_micro loopback [--mb MB] [--reps R]
 *   fn_bench_micro server   [--clients 1,4] [--keys 1000,10000,100000] [--window 1,2]
 *                           [--seconds S] [--reps R] [--no-lz4] [--enc f32|f16|i8]
 *                           [--server-threads T]
 *   fn_bench_micro memory   [--rows 1000000,10000000] [--reps R]
 *
 * sgemm     The reference towers' dense math on one batch (default 1024):
 *           per tower [B,368]x[368,200] -> [B,200]x[200,80] -> [B,80]x[80,1],
 *           each layer's forward and its two backward products (dW and
 *           d(in); the first layer's d(in) too, since the embeddings are
 *           trained), both towers, through worker/nn.c as the trainer calls
 *           it, OpenBLAS threads as OPENBLAS_NUM_THREADS says, or each
 *           count of --threads in turn (openblas_set_num_threads).  FLOP are
 *           counted from the shapes, 2*M*N*K per product (bias adds, ReLU
 *           and Adam are not sgemm and not counted); the impressions/s a
 *           worker's towers allow = GFLOP/s / FLOP per impression.
 *           --split T adds the way training runs them (train --threads T):
 *           worker/model.c's reference ESMM forward and backward with every
 *           MLP's rows split among T threads (worker/par.h), one OpenBLAS
 *           thread per call; printed as threads=T split=1.
 * loopback  The machine's loopback bandwidth: a TCP socket pair on
 *           127.0.0.1 streaming MB megabytes (default 2000) in 1 MiB
 *           writes, then ZeroMQ PAIR and DEALER->ROUTER streams of 1 MiB
 *           messages over tcp://127.0.0.1 (the parameter traffic's path).
 * server    One ps/server.c server in this process (a thread, its own ZeroMQ
 *           context, plain TCP on 127.0.0.1, Adagrad, dim 16, LZ4 tried as
 *           in training unless --no-lz4) and 1 or 4 client threads, each with
 *           its own context and a worker/client.c ps_client over its own
 *           embed_table of N random 64-bit keys (fresh keys per client and
 *           configuration).  A first pull creates the rows (timed apart, as
 *           "create"); then each repetition is S seconds (at least 3
 *           requests per client) of back-to-back pulls, then of pushes,
 *           each client keeping W requests in flight for each W of
 *           --window (1: request-reply; 2: a training worker's next pull
 *           beside its last push).  The server serves with T threads
 *           (table stripes, default 1).
 *           Throughput = rows moved by all clients / the longest client's
 *           time; MB/s of values = rows/s * 16 * 4 / 1e6 (fp32 values, the
 *           payload that matters); wire MB/s counts every byte the clients
 *           sent and received (keys, headers, values as encoded).
 * memory    A ps_table (dim 16, Adagrad) filled with N random keys in pulls
 *           of 4096, in a child process per N so each starts from a clean
 *           heap: ps_table_bytes()/rows (what the table counts),
 *           ps_table_row_need() (key + weights + optimizer state) and the
 *           growth of the process's resident set per row (/proc/self/status).
 *
 * Output: one `bench=NAME key=value ...` line per measured row, medians
 * over the repetitions with min and max beside them; `#` lines are
 * comments.  MB = 10^6 bytes.  Exit 0, or 1 with a line saying what failed. */
#include <arpa/inet.h>
#include <cblas.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "batch.h"
#include "client.h"
#include "embed.h"
#include "fn_error.h"
#include "hash.h"
#include "nn.h"
#include "model.h"
#include "optimizer.h"
#include "par.h"
#include "procmem.h"
#include "server.h"
#include "table.h"
#include "wire.h"

#define DIM 16
#define MAX_LIST 16

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median of v[0..n-1] (sorts v). */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* "1,4" -> {1, 4}; returns the count, 0 if malformed. */
static int parse_list(const char *s, long *out, int cap)
{
    int n = 0;
    while (*s && n < cap) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v <= 0) return 0;
        out[n++] = v;
        if (*end == ',') end++;
        else if (*end) return 0;
        s = end;
    }
    return *s ? 0 : n;
}

static void die(const char *what)
{
    printf("FAIL: %s\n", what);
    fflush(stdout);
    exit(1);
}

/* <cblas.h> brings <complex.h>, whose `I` macro is why the widths are Ni/No. */

/* ---- sgemm --------------------------------------------------------------- */

/* The reference tower: 368 -> 200 -> 80 -> 1. */
#define N_LAYERS 3
static const int tower_w[N_LAYERS + 1] = {23 * DIM, 200, 80, 1};

typedef struct {
    float *W[N_LAYERS], *b[N_LAYERS], *dW[N_LAYERS], *db[N_LAYERS];
    float *h[N_LAYERS], *dh[N_LAYERS];
} tower;

static float *randbuf(size_t n, uint64_t *seed)
{
    float *p = malloc(n * sizeof *p);
    if (!p) die("out of memory");
    for (size_t i = 0; i < n; i++) {
        *seed = fn_mix64(*seed);
        p[i] = (float)((*seed >> 40) * 0x1p-24) - 0.5f;
    }
    return p;
}

static void tower_init(tower *t, int B, uint64_t *seed)
{
    for (int l = 0; l < N_LAYERS; l++) {
        size_t Ni = (size_t)tower_w[l], No = (size_t)tower_w[l + 1];
        t->W[l] = randbuf(No * Ni, seed);
        t->b[l] = randbuf(No, seed);
        t->dW[l] = randbuf(No * Ni, seed);
        t->db[l] = randbuf(No, seed);
        t->h[l] = randbuf((size_t)B * No, seed);
        t->dh[l] = randbuf((size_t)B * No, seed);
    }
}

static void tower_free(tower *t)
{
    for (int l = 0; l < N_LAYERS; l++) {
        free(t->W[l]); free(t->b[l]); free(t->dW[l]); free(t->db[l]); free(t->h[l]); free(t->dh[l]);
    }
}

/* One training step's dense math of one tower, as worker/model.c does it. */
static void tower_step(tower *t, const float *x, float *dx, int B)
{
    for (int l = 0; l < N_LAYERS; l++) {
        nn_dense_forward(t->h[l], l ? t->h[l - 1] : x, t->W[l], t->b[l], B, tower_w[l], tower_w[l + 1]);
        if (l < N_LAYERS - 1) nn_relu_forward(t->h[l], (long)B * tower_w[l + 1]);
    }
    for (int l = N_LAYERS - 1; l >= 0; l--) {
        nn_dense_backward(l ? t->dh[l - 1] : dx, t->dW[l], t->db[l], t->dh[l], l ? t->h[l - 1] : x, t->W[l], B, tower_w[l],
                          tower_w[l + 1]);
        if (l) nn_relu_backward(t->dh[l - 1], t->h[l - 1], (long)B * tower_w[l]);
    }
}

/* FLOP per impression: per layer forward + dW + d(in), 2*I*O each, both towers */
static double tower_flop_per_imp(void)
{
    double f = 0;
    for (int l = 0; l < N_LAYERS; l++) f += 3.0 * 2.0 * tower_w[l] * tower_w[l + 1];
    return 2 * f;
}

/* Times whole training steps of B impressions (step(arg) after a warm-up),
 * reps repetitions of `seconds` each, and prints the bench=sgemm line:
 * threads (OpenBLAS's, or the tower threads when split). */
static void time_steps(void (*step)(void *), void *arg, int B, double seconds, int reps, int threads, int split)
{
    const double flop_imp = tower_flop_per_imp();
    double g[64], ips[64];
    int nr = reps < 64 ? reps : 64;
    step(arg); /* warm-up */
    for (int r = 0; r < nr; r++) {
        long it = 0;
        double t0 = now_s(), t;
        do {
            step(arg);
            it++;
            t = now_s() - t0;
        } while (t < seconds);
        g[r] = it * (double)B * flop_imp / t / 1e9;
        ips[r] = it * (double)B / t;
    }
    double gm = median(g, nr);
    printf("bench=sgemm threads=%d%s batch=%d flop_per_imp=%.0f gflops=%.3f gflops_min=%.3f gflops_max=%.3f ceiling_imp_per_s=%.0f reps=%d\n",
           threads, split ? " split=1" : "", B, flop_imp, gm, g[0], g[nr - 1], median(ips, nr), nr);
}

typedef struct {
    tower *tw;
    const float *x;
    float *dx;
    int B;
} towers_arg;

static void towers_step(void *arg)
{
    towers_arg *a = arg;
    tower_step(&a->tw[0], a->x, a->dx, a->B);
    tower_step(&a->tw[1], a->x, a->dx, a->B);
}

/* One thread count: each product alone, then whole training steps. */
static void sgemm_once(int B, double seconds, int reps)
{
    uint64_t seed = 42;
    tower tw[2];
    for (int k = 0; k < 2; k++) tower_init(&tw[k], B, &seed);
    float *x = randbuf((size_t)B * tower_w[0], &seed), *dx = randbuf((size_t)B * tower_w[0], &seed);
    printf("# openblas: %s, %d thread(s); batch %d; towers %d-%d-%d-%d x2\n", openblas_get_config(), openblas_get_num_threads(), B,
           tower_w[0], tower_w[1], tower_w[2], tower_w[3]);

    /* each product alone, one tower's buffers: [which layer][fwd, dW, din] */
    static const char *kind[3] = {"fwd", "dW", "din"};
    for (int l = 0; l < N_LAYERS; l++)
        for (int k = 0; k < 3; k++) {
            int Ni = tower_w[l], No = tower_w[l + 1];
            const float *in = l ? tw[0].h[l - 1] : x;
            float *din = l ? tw[0].dh[l - 1] : dx;
            double g[64];
            int nr = reps < 64 ? reps : 64;
            for (int r = 0; r < nr; r++) {
                long it = 0;
                double t0 = now_s(), t;
                do {
                    for (int j = 0; j < 16; j++) {
                        if (k == 0)
                            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, No, Ni, 1.0f, in, Ni, tw[0].W[l], Ni, 1.0f, tw[0].h[l], No);
                        else if (k == 1)
                            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, No, Ni, B, 1.0f, tw[0].dh[l], No, in, Ni, 1.0f, tw[0].dW[l], Ni);
                        else
                            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, Ni, No, 1.0f, tw[0].dh[l], No, tw[0].W[l], Ni, 0.0f, din, Ni);
                    }
                    it += 16;
                    t = now_s() - t0;
                } while (t < seconds / 9);
                g[r] = it * 2.0 * B * Ni * No / t / 1e9;
            }
            double med = median(g, nr);
            printf("bench=sgemm_product threads=%d layer=%d kind=%s m=%d n=%d k=%d gflops=%.2f gflops_min=%.2f gflops_max=%.2f\n",
                   openblas_get_num_threads(), l + 1, kind[k],
                   k == 1 ? No : B, k == 1 ? Ni : (k == 0 ? No : Ni), k == 0 ? Ni : (k == 1 ? B : No), med, g[0], g[nr - 1]);
        }

    /* the whole step, both towers, as training runs it */
    towers_arg a = {tw, x, dx, B};
    time_steps(towers_step, &a, B, seconds, reps, openblas_get_num_threads(), 0);
    for (int k = 0; k < 2; k++) tower_free(&tw[k]);
    free(x);
    free(dx);
}

typedef struct {
    model *m;
    model_ws *ws;
    float *grads, *click, *buy;
    int B;
} model_arg;

static void model_step(void *arg)
{
    model_arg *a = arg;
    double loss[TASK_COUNT];
    int cnt[TASK_COUNT];
    model_forward(a->m, a->ws, a->B);
    model_backward(a->m, a->ws, a->B, a->click, a->buy, 1.0f, a->grads, loss, cnt);
}

/* The reference ESMM's towers through worker/model.c, rows split among T
 * threads of single-threaded OpenBLAS calls: what a training step runs. */
static void sgemm_split(int B, double seconds, int reps, int T)
{
    openblas_set_num_threads(1);
    model_spec spec;
    memset(&spec, 0, sizeof spec);
    model_preset(&spec, "esmm");
    spec.n_fields = 23;
    spec.dim = DIM;
    spec.n_hidden = 2;
    spec.hidden[0] = tower_w[1];
    spec.hidden[1] = tower_w[2];
    model m;
    model_ws ws;
    par *pool = NULL;
    if (model_init(&m, &spec) || model_ws_init(&ws, &m, B) || par_open(&pool, T) || model_ws_parallel(&ws, &m, pool)) die("sgemm --split: cannot set up the model");
    model_init_params(&m, 1);
    uint64_t seed = 7;
    float *x = randbuf((size_t)B * tower_w[0], &seed), *grads = calloc((size_t)m.n_params, sizeof(float));
    float *click = calloc((size_t)B, sizeof(float)), *buy = calloc((size_t)B, sizeof(float));
    if (!grads || !click || !buy) die("out of memory");
    memcpy(ws.x[0], x, sizeof(float) * (size_t)B * tower_w[0]);
    for (int i = 0; i < B; i += 25) click[i] = 1;
    model_arg a = {&m, &ws, grads, click, buy, B};
    time_steps(model_step, &a, B, seconds, reps, T, 1);
    free(x); free(grads); free(click); free(buy);
    model_ws_free(&ws);
    par_close(&pool);
    model_free(&m);
}

static int bench_sgemm(int B, double seconds, int reps, const long *threads, int nt, int split)
{
    for (int ti = 0; ti < nt; ti++) {
        if (threads[ti] > 0) openblas_set_num_threads((int)threads[ti]);
        sgemm_once(B, seconds, reps);
    }
    if (split > 0) sgemm_split(B, seconds, reps, split);
    return 0;
}

/* ---- loopback ------------------------------------------------------------ */

#define CHUNK (1u << 20)

typedef struct {
    int fd;
    size_t total;
    int rc;
} tcp_arg;

static void *tcp_writer(void *p)
{
    tcp_arg *a = p;
    char *buf = malloc(CHUNK);
    if (!buf) { a->rc = 1; return NULL; }
    memset(buf, 0x5a, CHUNK);
    size_t sent = 0;
    while (sent < a->total) {
        size_t want = a->total - sent < CHUNK ? a->total - sent : CHUNK;
        ssize_t w = write(a->fd, buf, want);
        if (w < 0) {
            if (errno == EINTR) continue;
            a->rc = 1;
            break;
        }
        sent += (size_t)w;
    }
    free(buf);
    return NULL;
}

/* Seconds to stream `total` bytes through a fresh TCP connection on 127.0.0.1. */
static double tcp_once(size_t total)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof sa) || listen(ls, 1) || getsockname(ls, (struct sockaddr *)&sa, &sl))
        die("loopback: cannot listen on 127.0.0.1");
    int cs = socket(AF_INET, SOCK_STREAM, 0);
    if (cs < 0 || connect(cs, (struct sockaddr *)&sa, sizeof sa)) die("loopback: cannot connect");
    int rs = accept(ls, NULL, NULL);
    if (rs < 0) die("loopback: accept failed");
    close(ls);
    char *buf = malloc(CHUNK);
    if (!buf) die("out of memory");
    tcp_arg a = {.fd = cs, .total = total};
    pthread_t th;
    double t0 = now_s();
    pthread_create(&th, NULL, tcp_writer, &a);
    size_t got = 0;
    while (got < total) {
        ssize_t r = read(rs, buf, CHUNK);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) die("loopback: read failed");
        got += (size_t)r;
    }
    double t = now_s() - t0;
    pthread_join(th, NULL);
    if (a.rc) die("loopback: write failed");
    close(cs);
    close(rs);
    free(buf);
    return t;
}

typedef struct {
    void *sock;
    size_t n;
} zmq_arg;

static void *zmq_sender(void *p)
{
    zmq_arg *a = p;
    char *buf = malloc(CHUNK);
    if (!buf) return NULL;
    memset(buf, 0x5a, CHUNK);
    for (size_t i = 0; i < a->n; i++)
        if (zmq_send(a->sock, buf, CHUNK, 0) < 0) break;
    free(buf);
    return NULL;
}

/* Seconds to stream n 1-MiB messages, sender type st -> receiver type rt. */
static double zmq_once(int st, int rt, size_t n)
{
    void *ctx = zmq_ctx_new();
    void *r = zmq_socket(ctx, rt), *s = zmq_socket(ctx, st);
    int hwm = 16, zero = 0;
    zmq_setsockopt(r, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(r, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    char ep[256];
    size_t len = sizeof ep;
    if (zmq_bind(r, "tcp://127.0.0.1:*") || zmq_getsockopt(r, ZMQ_LAST_ENDPOINT, ep, &len) || zmq_connect(s, ep))
        die("loopback: zmq bind/connect failed");
    zmq_arg a = {s, n};
    pthread_t th;
    zmq_msg_t m;
    zmq_msg_init(&m);
    double t0 = now_s();
    pthread_create(&th, NULL, zmq_sender, &a);
    for (size_t i = 0; i < n; i++) {
        if (rt == ZMQ_ROUTER && zmq_msg_recv(&m, r, 0) < 0) die("loopback: zmq receive failed"); /* identity frame */
        if (zmq_msg_recv(&m, r, 0) < 0) die("loopback: zmq receive failed");
    }
    double t = now_s() - t0;
    pthread_join(th, NULL);
    zmq_msg_close(&m);
    zmq_close(r);
    zmq_close(s);
    zmq_ctx_term(ctx);
    return t;
}

static int bench_loopback(long mb, int reps)
{
    size_t total = (size_t)mb * 1000000u;
    size_t nmsg = total / CHUNK ? total / CHUNK : 1;
    const char *name[3] = {"tcp", "zmq_pair", "zmq_dealer_router"};
    for (int k = 0; k < 3; k++) {
        double v[64];
        int nr = reps < 64 ? reps : 64;
        size_t bytes = k ? nmsg * CHUNK : total;
        for (int r = 0; r < nr; r++) {
            double t = k == 0 ? tcp_once(total) : k == 1 ? zmq_once(ZMQ_PAIR, ZMQ_PAIR, nmsg) : zmq_once(ZMQ_DEALER, ZMQ_ROUTER, nmsg);
            v[r] = bytes / t / 1e6;
        }
        double med = median(v, nr);
        printf("bench=loopback kind=%s bytes=%zu write_bytes=%u mb_per_s=%.0f mb_per_s_min=%.0f mb_per_s_max=%.0f reps=%d\n", name[k], bytes,
               CHUNK, med, v[0], v[nr - 1], nr);
        fflush(stdout);
    }
    return 0;
}

/* ---- server -------------------------------------------------------------- */

typedef struct {
    ps_server *srv;
    int rc;
    char err[512];
} server_arg;

static void *server_main(void *p)
{
    server_arg *a = p;
    a->rc = ps_server_run(a->srv);
    if (a->rc) snprintf(a->err, sizeof a->err, "%s", fn_err_msg());
    return NULL;
}

typedef struct bench_srv bench_srv;

typedef struct {
    bench_srv *g;
    int id;
    pthread_t th;
    void *ctx;
    ps_client *c;
    embed_table e;
    fn_batch b;
    /* results of the current phase */
    long requests;
    double seconds;
    uint64_t wire0;
    int rc;
    char err[512];
} bench_client;

struct bench_srv {
    const char *endpoint;
    int lz4;
    wire_enc enc;
    double seconds;
    int window;             /* requests each client keeps in flight */
    int phase;              /* 0 create, 1 pull, 2 push */
    pthread_barrier_t start, done;
    int quit;
};

/* One phase of one client: the creating pull, or `seconds` of pulls or
 * pushes, each sent while the window's older ones are still out (a worker
 * keeps its next batch's pull and its last push out at once). */
static int client_phase(bench_client *k, int phase)
{
    bench_srv *g = k->g;
    const ps_client_stats *st = ps_client_get_stats(k->c);
    const int W = phase == 0 ? 1 : g->window;
    k->wire0 = st->bytes_sent + st->bytes_received;
    k->requests = 0;
    double t0 = now_s(), t;
    int rc;
    do {
        rc = phase == 2 ? ps_client_push_send(k->c, &k->e, 0, 1) : ps_client_pull_send(k->c, &k->e, 0);
        if (!rc) rc = ps_client_wait_until(k->c, W - 1);
        if (rc) break;
        k->requests++;
        t = now_s() - t0;
    } while (phase != 0 && (t < g->seconds || k->requests < 3));
    if (!rc) rc = ps_client_wait(k->c);
    if (rc) {
        snprintf(k->err, sizeof k->err, "%s", fn_err_msg());
        return rc;
    }
    k->seconds = now_s() - t0;
    return FN_OK;
}

static void *client_main(void *p)
{
    bench_client *k = p;
    bench_srv *g = k->g;
    for (;;) {
        pthread_barrier_wait(&g->start);
        if (g->quit) break;
        if (!k->rc) k->rc = client_phase(k, g->phase);
        pthread_barrier_wait(&g->done);
    }
    return NULL;
}

/* Rows of n fresh random keys in client k's embed_table, via a one-example batch. */
static int client_keys(bench_client *k, uint32_t n, uint64_t seed)
{
    batch_clear(&k->b);
    if (batch_reserve_features(&k->b, n)) return FN_ENOMEM;
    k->b.n = 1;
    k->b.nf = n;
    k->b.off[0] = 0;
    k->b.off[1] = n;
    uint64_t x = seed;
    for (uint32_t i = 0; i < n; i++) {
        x = fn_mix64(x);
        k->b.key[i] = x;
        k->b.field[i] = 0;
        k->b.val[i] = 1;
    }
    int rc = embed_prepare(&k->e, &k->b);
    if (rc) return rc;
    if (k->e.n_uniq != n) return fn_fail(FN_EINVAL, "duplicate random keys (%zu of %u unique)", k->e.n_uniq, n);
    /* small gradients: Adagrad moves the rows a little each push */
    for (size_t i = 0; i < (size_t)n * DIM; i++) {
        x = fn_mix64(x);
        k->e.grads[i] = (float)((x >> 40) * 0x1p-24 - 0.5) * 1e-3f;
    }
    return FN_OK;
}

static int bench_server(const long *clients, int nc, const long *keys, int nk, const long *windows, int nw, double seconds, int reps, int lz4,
                        wire_enc enc, int sthreads)
{
    void *sctx = zmq_ctx_new();
    ps_server_conf sc = {.rank = 0, .bind_host = "127.0.0.1", .advertise_host = "127.0.0.1", .dim = DIM,
                         .opt = ps_opt_default(PS_OPT_ADAGRAD), .seed = 1, .init_range = 0.05f, .lz4 = lz4, .keys = NULL,
                         .threads = sthreads};
    server_arg sa = {0};
    bench_srv g = {.lz4 = lz4, .enc = enc, .seconds = seconds};
    if (ps_server_new(&sa.srv, sctx, &sc, &g.endpoint)) { printf("FAIL: server: %s\n", fn_err_msg()); return 1; }
    pthread_t sth;
    pthread_create(&sth, NULL, server_main, &sa);
    printf("# server %s, %d thread(s), adagrad, dim %d, lz4 %s, value encoding %s both ways, %.2f s per repetition\n", g.endpoint, sthreads, DIM, lz4 ? "tried" : "off",
           enc == WIRE_F16 ? "f16" : enc == WIRE_I8 ? "i8" : "f32", seconds);
    fflush(stdout);
    static const char *phase_name[3] = {"create", "pull", "push"};
    int failed = 0;
    uint64_t cfg = 0;
    char *eps[1] = {(char *)g.endpoint};
    for (int ci = 0; ci < nc && !failed; ci++) {
        int C = (int)clients[ci];
        bench_client *k = calloc((size_t)C, sizeof *k);
        if (!k) die("out of memory");
        pthread_barrier_init(&g.start, NULL, (unsigned)C + 1);
        pthread_barrier_init(&g.done, NULL, (unsigned)C + 1);
        g.quit = 0;
        for (int i = 0; i < C; i++) {
            k[i].g = &g;
            k[i].id = i;
            k[i].ctx = zmq_ctx_new();
            if (embed_init(&k[i].e, 0, 1, DIM, 1) || batch_init(&k[i].b, 1, 1024)) die("out of memory");
            if (ps_client_open(&k[i].c, k[i].ctx, 1, eps, 120000, lz4, enc, enc, NULL)) {
                printf("FAIL: client: %s\n", fn_err_msg());
                die("cannot open a client");
            }
            /* connect and handshake now, so that no phase measures them */
            if (ps_client_ctrl(k[i].c, 0, WIRE_CTRL_PING, NULL, NULL, 0)) {
                printf("FAIL: ping: %s\n", fn_err_msg());
                die("the server does not answer");
            }
            pthread_create(&k[i].th, NULL, client_main, &k[i]);
        }
        for (int ki = 0; ki < nk && !failed; ki++) {
            uint32_t n = (uint32_t)keys[ki];
            cfg++;
            for (int i = 0; i < C; i++)
                if (client_keys(&k[i], n, fn_mix64(cfg * 1000003u + (uint64_t)i))) die("cannot build the keys");
            double rows_s[64], wire_s[64];
            int nr = reps < 64 ? reps : 64;
            /* the creating pull once, then pulls and pushes at each window */
            for (int step = 0; step < 1 + 2 * nw && !failed; step++) {
                int ph = step ? 1 + (step - 1) % 2 : 0, win = step ? (int)windows[(step - 1) / 2] : 1;
                g.window = win;
                for (int r = 0; r < (ph ? nr : 1); r++) {
                    g.phase = ph;
                    pthread_barrier_wait(&g.start);
                    pthread_barrier_wait(&g.done);
                    double tmax = 0, rows = 0, wire = 0;
                    for (int i = 0; i < C; i++) {
                        if (k[i].rc) {
                            printf("FAIL: client %d, %u keys, %s: %s\n", i, n, phase_name[ph], k[i].err);
                            failed = 1;
                        }
                        const ps_client_stats *st = ps_client_get_stats(k[i].c);
                        tmax = k[i].seconds > tmax ? k[i].seconds : tmax;
                        rows += (double)k[i].requests * n;
                        wire += (double)(st->bytes_sent + st->bytes_received - k[i].wire0);
                    }
                    if (failed) break;
                    rows_s[r] = rows / tmax;
                    wire_s[r] = wire / tmax / 1e6;
                }
                if (failed) break;
                int m = ph ? nr : 1;
                double wmed = median(wire_s, m), rmed = median(rows_s, m);
                printf("bench=server op=%s clients=%d window=%d keys=%u rows_per_s=%.0f rows_per_s_min=%.0f rows_per_s_max=%.0f "
                       "value_mb_per_s=%.1f value_mb_per_s_min=%.1f value_mb_per_s_max=%.1f wire_mb_per_s=%.1f req_per_s=%.1f reps=%d\n",
                       phase_name[ph], C, win, n, rmed, rows_s[0], rows_s[m - 1], rmed * DIM * 4 / 1e6, rows_s[0] * DIM * 4 / 1e6,
                       rows_s[m - 1] * DIM * 4 / 1e6, wmed, rmed / n, m);
                fflush(stdout);
            }
        }
        g.quit = 1;
        pthread_barrier_wait(&g.start);
        for (int i = 0; i < C; i++) {
            pthread_join(k[i].th, NULL);
            if (ci == nc - 1 && i == 0 && !failed) {
                char js[4096];
                if (!ps_client_ctrl(k[i].c, 0, WIRE_CTRL_STATS, NULL, js, sizeof js)) printf("# server stats %s\n", js);
            }
        }
        /* the last client set stops the server */
        if (ci == nc - 1 || failed) {
            if (ps_client_ctrl(k[0].c, 0, WIRE_CTRL_SHUTDOWN, NULL, NULL, 0)) printf("FAIL: shutdown: %s\n", fn_err_msg());
        }
        for (int i = 0; i < C; i++) {
            ps_client_close(&k[i].c);
            embed_free(&k[i].e);
            batch_free(&k[i].b);
            zmq_ctx_term(k[i].ctx);
        }
        pthread_barrier_destroy(&g.start);
        pthread_barrier_destroy(&g.done);
        free(k);
    }
    pthread_join(sth, NULL);
    if (sa.rc) { printf("FAIL: server: %s\n", sa.err); failed = 1; }
    ps_server_destroy(&sa.srv);
    zmq_ctx_term(sctx);
    return failed;
}

/* ---- memory -------------------------------------------------------------- */

static size_t rss_bytes(void)
{
    uint64_t rss;
    fn_proc_memory(&rss, NULL);
    return (size_t)rss;
}

typedef struct {
    double tab_per_row, rss_per_row, insert_per_s;
    size_t need;
} mem_result;

/* Fills a fresh table with `rows` random keys; run in a child process. */
static mem_result memory_once(size_t rows)
{
    ps_opt opt = ps_opt_default(PS_OPT_ADAGRAD);
    enum { BATCH = 4096 };
    uint64_t keys[BATCH];
    float *out = calloc((size_t)BATCH * DIM, sizeof(float));
    if (!out) die("out of memory");
    ps_table *t = ps_table_new(DIM, &opt, 1, 0.05f);
    if (!t) die("ps_table_new failed");
    size_t rss0 = rss_bytes();
    uint64_t x = 0x1234567ull;
    double t0 = now_s();
    for (size_t done = 0; done < rows;) {
        uint32_t n = rows - done < BATCH ? (uint32_t)(rows - done) : BATCH;
        for (uint32_t i = 0; i < n; i++) keys[i] = fn_mix64(x++);
        if (ps_table_pull(t, keys, n, out, 0)) die("ps_table_pull: out of memory");
        done += n;
    }
    double secs = now_s() - t0;
    size_t rss1 = rss_bytes();
    if (ps_table_rows(t) != rows) die("the table holds fewer rows than keys inserted");
    mem_result r = {.tab_per_row = (double)ps_table_bytes(t) / (double)rows, .rss_per_row = ((double)rss1 - (double)rss0) / (double)rows,
                    .insert_per_s = rows / secs, .need = ps_table_row_need(t)};
    ps_table_destroy(&t);
    free(out);
    return r;
}

static int bench_memory(const long *rows, int n, int reps)
{
    for (int i = 0; i < n; i++) {
        double tab[64], rss[64], ins[64];
        size_t need = 0;
        int nr = reps < 64 ? reps : 64;
        for (int r = 0; r < nr; r++) {
            int fd[2];
            if (pipe(fd)) die("pipe failed");
            fflush(stdout);
            pid_t pid = fork();
            if (pid < 0) die("fork failed");
            if (pid == 0) { /* a fresh heap: the parent's allocations do not blur the RSS */
                close(fd[0]);
                mem_result m = memory_once((size_t)rows[i]);
                _exit(write(fd[1], &m, sizeof m) == (ssize_t)sizeof m ? 0 : 1);
            }
            close(fd[1]);
            mem_result m;
            ssize_t got = read(fd[0], &m, sizeof m);
            close(fd[0]);
            int st;
            if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) || got != (ssize_t)sizeof m) {
                printf("FAIL: memory: the child filling %ld rows failed\n", rows[i]);
                return 1;
            }
            tab[r] = m.tab_per_row;
            rss[r] = m.rss_per_row;
            ins[r] = m.insert_per_s;
            need = m.need;
        }
        double tm = median(tab, nr), rm = median(rss, nr), im = median(ins, nr);
        printf("bench=memory rows=%ld row_need=%zu table_bytes_per_row=%.2f table_ratio=%.3f rss_bytes_per_row=%.2f rss_ratio=%.3f "
               "rss_bytes_per_row_min=%.2f rss_bytes_per_row_max=%.2f insert_rows_per_s=%.0f reps=%d\n",
               rows[i], need, tm, tm / (double)need, rm, rm / (double)need, rss[0], rss[nr - 1], im, nr);
        fflush(stdout);
    }
    return 0;
}

/* ---- main ---------------------------------------------------------------- */

static void usage(void)
{
    fputs("usage: fn_bench_micro sgemm    [--batch B] [--seconds S] [--reps R] [--threads 1,2] [--split T]\n"
          "       fn_bench_micro loopback [--mb MB] [--reps R]\n"
          "       fn_bench_micro server   [--clients 1,4] [--keys 1000,10000,100000] [--seconds S] [--reps R]\n"
          "                               [--window 1,2] [--no-lz4] [--enc f32|f16|i8] [--server-threads T]\n"
          "       fn_bench_micro memory   [--rows 1000000,10000000] [--reps R]\n",
          stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2) usage();
    const char *what = argv[1];
    int reps = 3, batch = 1024, lz4 = 1;
    double seconds = -1;
    long mb = 2000;
    long threads[MAX_LIST] = {0}, clients[MAX_LIST] = {1, 4}, windows[MAX_LIST] = {1}, keys[MAX_LIST] = {1000, 10000, 100000}, rows[MAX_LIST] = {1000000, 10000000};
    int nc = 2, nk = 3, nrows = 2, nthreads = 1, split = 0, sthreads = 1, nwin = 1;
    wire_enc enc = WIRE_F32;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-lz4")) { lz4 = 0; continue; }
        if (!v) usage();
        i++;
        if (!strcmp(a, "--reps")) reps = atoi(v);
        else if (!strcmp(a, "--batch")) batch = atoi(v);
        else if (!strcmp(a, "--seconds")) seconds = atof(v);
        else if (!strcmp(a, "--mb")) mb = atol(v);
        else if (!strcmp(a, "--threads")) nthreads = parse_list(v, threads, MAX_LIST);
        else if (!strcmp(a, "--split")) split = atoi(v);
        else if (!strcmp(a, "--server-threads")) sthreads = atoi(v);
        else if (!strcmp(a, "--clients")) nc = parse_list(v, clients, MAX_LIST);
        else if (!strcmp(a, "--window")) nwin = parse_list(v, windows, MAX_LIST);
        else if (!strcmp(a, "--keys")) nk = parse_list(v, keys, MAX_LIST);
        else if (!strcmp(a, "--rows")) nrows = parse_list(v, rows, MAX_LIST);
        else if (!strcmp(a, "--enc")) enc = !strcmp(v, "f16") ? WIRE_F16 : !strcmp(v, "i8") ? WIRE_I8 : !strcmp(v, "f32") ? WIRE_F32 : (wire_enc)-1;
        else usage();
    }
    if (reps < 1 || reps > 64 || batch < 1 || mb < 1 || !nc || !nk || !nrows || !nthreads || (int)enc < 0 || sthreads < 1 || sthreads > PS_MAX_THREADS) usage();
    for (int i = 0; i < nk; i++)
        if (keys[i] > 4000000) usage();
    for (int i = 0; i < nwin; i++)
        if (windows[i] < 1 || windows[i] > 4) usage(); /* the client keeps at most 4 out (PS_MAX_OUT) */
    if (!strcmp(what, "sgemm")) return bench_sgemm(batch, seconds > 0 ? seconds : 2.0, reps, threads, nthreads, split > 64 ? 64 : split);
    if (!strcmp(what, "loopback")) return bench_loopback(mb, reps);
    if (!strcmp(what, "server")) return bench_server(clients, nc, keys, nk, windows, nwin, seconds > 0 ? seconds : 2.0, reps, lz4, enc, sthreads);
    if (!strcmp(what, "memory")) return bench_memory(rows, nrows, reps);
    usage();
    return 2;
}
