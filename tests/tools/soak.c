/* tests/tools/soak.c — soak test of one parameter server under concurrent random traffic.
 *
 *   fn_soak [--clients N] [--seconds S] [--keys K] [--dim D]
 *           [--optimizer sgd|adagrad|adam|ftrl] [--seed X] [--secure]
 *           [--rss-slack-mb M] [--verbose]
 *
 * Starts one ps/server.c server in this process (a thread in ps_server_run
 * on its own ZeroMQ context, bound to 127.0.0.1, CURVE with --secure), then
 * N client threads, each with its own DEALER socket and wire codecs and one
 * request outstanding at a time, which for S seconds send random requests:
 *
 *   pulls       sorted unique subsets of 1..5000 keys (log-uniform sizes) of
 *               a universe of K keys, drawn with a skewed law (index =
 *               K u^4: the first 0.1% of the keys get 18% of the draws), plus
 *               a shared sweep (1024 keys per pull) so every key is touched
 *               early and the table fills in the first second or so;
 *   pushes      random gradients (code 0: applied at once, in arrival order)
 *               on keys whose initial row has been seen, fp32 or fp16;
 *   read-only   pulls (code 1) of universe keys and of keys outside it,
 *               which must come back as zero rows and create nothing;
 *   malformed   a bad payload CRC, a truncated message, a bad magic, a push
 *               of the wrong dim, a push with one NaN or infinity, a pull of a table out of range, a reply
 *               type sent as a request, an unknown control operation.
 *
 * Every reply is checked: type, seq echo, table, n, dim, every value
 * finite; a push's reply says all its rows were applied; a malformed
 * message gets an ERROR_REP with the expected fn_err code and the seq
 * echoed (seq 0 when the header itself is broken: the server cannot trust
 * a seq from it).  The malformed pushes carry an off-grid gradient (1/3)
 * on live keys and the malformed pulls keys outside the universe, so had
 * the server applied one, the exact final comparison (SGD) or the row
 * count would show it.
 *
 * The reference.  A row's initial value is a pure function of (seed, key);
 * the tool records it from the first (creating) pull reply that shows the
 * key, and pushes only to keys whose initial value is recorded (a key's
 * state goes 0 unseen -> 1 being recorded -> 2 recorded, and pushes need
 * 2), so no push can reach a row before its initial value is taken — the
 * same as pulling every key once before any push, but the table still
 * grows during the run, which the memory check needs.
 *
 * Exactness under concurrency (SGD).  Pushes from N threads land in an
 * order nobody controls, and float addition is not associative — unless no
 * addition ever rounds.  So: init_range r = 2^-4, which makes every initial
 * weight r (k 2^-23 - 1), a multiple of 2^-27 in [-r, r) (ps/table.c draws
 * u on that grid); lr = 2^-4 and every gradient coordinate a small integer
 * m (|m| <= 8) times 2^-20, so every update lr g is a multiple of 2^-24 =
 * 8 grid steps (exact: powers of two only scale); fp16 carries m 2^-20
 * exactly too (a subnormal half).  Each client keeps its own running sum
 * per (key, coordinate), in units, within +-B (B = min(32767, 2^20 / N):
 * when a draw would cross B it sends -m instead), so the weight after any
 * interleaving of the clients' pushes — the server applies each client's
 * pushes in that client's order, a prefix of each — is init + at most N B
 * 2^-24 <= 2^-4 away from it: |w| <= 2^-3, a multiple of 2^-27, which a
 * float holds exactly (24 bits).  So no intermediate value rounds, every
 * order gives the same bits, and at the end every coordinate must equal
 * init - 2^-24 (sum over clients of their units), compared with ==.  During
 * the run every pulled SGD weight must already lie on that grid within that
 * bound.  Adagrad, Adam and FTRL are not order-free: with them the tool
 * checks invariants only (every value finite, rows == K, keys nobody pushed
 * still equal to their initial row).
 *
 * Memory.  Every second the main thread asks the server for CTRL_STATS
 * (rows, table_bytes: what ps_table_bytes() counts — rows, chunks, index)
 * and reads this process's RSS from /proc/self/status.  The RSS is the whole
 * process: the server and also the tool's clients (their codecs and
 * buffers, the reference arrays, ZeroMQ's queues); the tool touches all its
 * own per-key arrays before the first sample so they do not look like
 * growth.  Once rows == K (every key touched), table_bytes must not change
 * any more (==), and the RSS may grow by at most max(M MiB, 5%) over its
 * value at that moment (ASan/TSan builds report the RSS but do not judge
 * it: their quarantine and shadow memory grow by design).  A table of the
 * samples is printed at the end.
 *
 * Bounded: the run lasts S seconds (up to 20 more if the key set filled
 * too late for two samples after it); a watchdog ends the process with exit
 * code 1 if anything is still going S + 50 + S/10 seconds after the start;
 * every thread is joined and the server is stopped with a SHUTDOWN control
 * request.  Exit 0: every check passed; 1: a check failed (each failure is
 * printed, "FAIL: ..."); 2: bad command line.  Traffic goes only to
 * 127.0.0.1.  tests/integration/test_soak.sh runs it for seconds; run it by
 * hand for minutes, e.g. fn_soak --clients 8 --seconds 600 --keys 1000000. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "fn_error.h"
#include "hash.h"
#include "log.h"
#include "optimizer.h"
#include "procmem.h"
#include "secure.h"
#include "server.h"
#include "wire.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SOAK_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SOAK_SANITIZED 1
#endif
#endif
#ifndef SOAK_SANITIZED
#define SOAK_SANITIZED 0
#endif

#define MAX_REQ_KEYS 5000     /* largest random subset */
#define SWEEP_CHUNK 1024      /* keys of the shared sweep added to a pull */
#define MIN_AFTER_FULL 2      /* samples needed after the key set is full */
#define MAX_EXTRA_S 20        /* the run is extended by up to this to get them */
#define OUTSIDE_KEYS 64       /* keys not in the universe */
#define GRAD_MAX 8            /* |m| of a gradient coordinate m * GRAD_UNIT */
#define GRAD_UNIT 0x1p-20f
#define SGD_LR 0x1p-4f
#define INIT_RANGE 0x1p-4f
#define STEP_UNIT 0x1p-24     /* SGD_LR * GRAD_UNIT */
#define INIT_GRID 0x1p-27     /* INIT_RANGE * 2^-23 */
#define TABLE_ID 0
#define REPLY_TIMEOUT_MS 20000
#define MAX_FAIL_PRINTS 20

typedef struct {
    int clients;
    double seconds;
    uint32_t keys;
    int dim;
    ps_opt_kind opt;
    uint64_t seed;
    int secure;
    int server_threads; /* stripes of the server's table */
    double rss_slack_mb;
    int verbose;
} soak_conf;

typedef struct {
    uint64_t key;
    uint32_t idx; /* position in the universe, or UINT32_MAX for an outside key */
} kv;

/* What the main thread samples every second. */
typedef struct {
    double t;          /* seconds since the clients started */
    uint64_t rows, table_bytes, rss;
    uint64_t requests, rows_moved;
} sample;

typedef struct soak soak;

/* The malformed messages a client sends now and then. */
enum { BAD_CRC, BAD_TRUNC, BAD_MAGIC, BAD_DIM, BAD_TABLE, BAD_TYPE, BAD_CTRL, BAD_NAN, BAD_KINDS };
static const char *const bad_names[BAD_KINDS] = {"payload crc", "truncated", "magic", "wrong dim", "table out of range",
                                                 "reply type as request", "unknown control op", "non-finite gradient"};

/* One DEALER connection to the server, with its own codecs. */
typedef struct {
    void *sock;
    wire_codec *tx, *rx;
    uint64_t seq;
} conn;

typedef struct {
    soak *g;
    int id;
    pthread_t thread;
    conn k;
    uint64_t rng;
    int16_t *sum;      /* [K*D] this client's gradient units per (key, coordinate) */
    kv *req;           /* request keys before sorting */
    uint64_t *keys;    /* request keys, sorted unique */
    uint32_t *idx;     /* their universe positions */
    uint8_t *known;    /* read-only pulls: initial row known when sent */
    float *grads;
    uint8_t *bad;      /* scratch for malformed messages */
    size_t bad_cap;
    /* counts: requests that got the expected reply */
    _Atomic uint64_t requests, rows_moved;
    uint64_t pulls, ro_pulls, pushes, empty_pushes, malformed, rows_pulled, rows_pushed;
    uint64_t malformed_kind[BAD_KINDS];
} client;

struct soak {
    soak_conf c;
    int B;               /* per-client bound on a coordinate's sum, units */
    ps_opt opt;
    void *sctx, *cctx;
    secure_keys keys;
    secure_zap *zap;
    ps_server *srv;
    const char *endpoint;
    pthread_t server_thread;
    int server_rc;
    char server_err[512];

    uint64_t *ukeys;       /* [K] key of universe position i */
    kv *sorted;            /* [K] universe sorted by key */
    kv outside[OUTSIDE_KEYS]; /* sorted by key */
    _Atomic uint8_t *state;   /* [K] 0 unseen, 1 recording, 2 initial row recorded */
    _Atomic uint8_t *pushed;  /* [K] some client pushed a gradient to it */
    float *init;              /* [K*D] initial rows */
    _Atomic uint32_t sweep;   /* next universe position of the sweep */
    atomic_int stop;
    atomic_int failures;
    atomic_int finished;      /* the watchdog may go */
    double t_start, hard_deadline; /* monotonic seconds */
    pthread_mutex_t print_mu;
    client *cl;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void failf(soak *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void failf(soak *g, const char *fmt, ...)
{
    int n = atomic_fetch_add(&g->failures, 1);
    atomic_store(&g->stop, 1);
    if (n >= MAX_FAIL_PRINTS) return;
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&g->print_mu);
    fputs("FAIL: ", stdout);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    if (n == MAX_FAIL_PRINTS - 1) fputs("FAIL: (further failures counted, not printed)\n", stdout);
    fflush(stdout);
    pthread_mutex_unlock(&g->print_mu);
    va_end(ap);
}

/* ---- random numbers ------------------------------------------------------ */

static uint64_t rnd(uint64_t *s) { return fn_mix64(*s += 0x632BE59BD9B4E019ull); }
static double rnd01(uint64_t *s) { return (double)(rnd(s) >> 11) * 0x1p-53; }
static uint32_t rnd_below(uint64_t *s, uint32_t n) { return (uint32_t)(((rnd(s) >> 32) * n) >> 32); }

/* Skewed: position K u^4; the density falls as x^-3/4. */
static uint32_t draw_idx(uint64_t *s, uint32_t K)
{
    double u = rnd01(s);
    uint32_t i = (uint32_t)(K * (u * u * u * u));
    return i < K ? i : K - 1;
}

/* Log-uniform in 1..MAX_REQ_KEYS: small and large requests alike. */
static uint32_t draw_size(uint64_t *s)
{
    uint32_t n = (uint32_t)exp(rnd01(s) * log(MAX_REQ_KEYS + 1.0));
    return n < 1 ? 1 : n > MAX_REQ_KEYS ? MAX_REQ_KEYS : n;
}

static int kv_cmp(const void *a, const void *b)
{
    uint64_t x = ((const kv *)a)->key, y = ((const kv *)b)->key;
    return x < y ? -1 : x > y;
}

/* Sorts c->req[0..n), drops duplicates into c->keys / c->idx; the count. */
static uint32_t sort_unique(client *c, uint32_t n)
{
    qsort(c->req, n, sizeof *c->req, kv_cmp);
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (m && c->keys[m - 1] == c->req[i].key) continue;
        c->keys[m] = c->req[i].key;
        c->idx[m++] = c->req[i].idx;
    }
    return m;
}

/* ---- a connection ---------------------------------------------------------- */

static int conn_open(soak *g, conn *k)
{
    memset(k, 0, sizeof *k);
    k->tx = wire_codec_new();
    k->rx = wire_codec_new();
    k->sock = zmq_socket(g->cctx, ZMQ_DEALER);
    if (!k->tx || !k->rx || !k->sock) return fn_fail(FN_ENOMEM, "cannot create a client socket: %s", zmq_strerror(zmq_errno()));
    int zero = 0;
    zmq_setsockopt(k->sock, ZMQ_LINGER, &zero, sizeof zero);
    if (secure_client_socket(k->sock, &g->keys)) return FN_EZMQ;
    if (zmq_connect(k->sock, g->endpoint)) return fn_fail(FN_EZMQ, "cannot connect to %s: %s", g->endpoint, zmq_strerror(zmq_errno()));
    return FN_OK;
}

static void conn_close(conn *k)
{
    if (k->sock) zmq_close(k->sock);
    k->sock = NULL;
    wire_codec_destroy(&k->tx);
    wire_codec_destroy(&k->rx);
}

/* Encodes m with the next seq; *buf valid until the next encode on k. */
static int conn_encode(soak *g, conn *k, wire_msg *m, int lz4, const uint8_t **buf, size_t *len, const char *what)
{
    m->seq = ++k->seq;
    int rc = wire_encode(k->tx, m, lz4, buf, len);
    if (rc) failf(g, "%s: cannot encode: %s", what, fn_err_msg());
    return rc;
}

/* Sends len bytes and waits for the one reply, decoded into *rep (valid
 * until the next call on k).  Returns 0, or -1 after reporting why. */
static int conn_call(soak *g, conn *k, const uint8_t *buf, size_t len, wire_msg *rep, const char *what)
{
    if (zmq_send(k->sock, buf, len, 0) < 0) {
        failf(g, "%s: send failed: %s", what, zmq_strerror(zmq_errno()));
        return -1;
    }
    zmq_pollitem_t it = {k->sock, 0, ZMQ_POLLIN, 0};
    double deadline = now_s() + REPLY_TIMEOUT_MS / 1000.0;
    for (;;) {
        long left = (long)((deadline - now_s()) * 1000);
        if (left <= 0) {
            failf(g, "%s: no reply within %d s", what, REPLY_TIMEOUT_MS / 1000);
            return -1;
        }
        int r = zmq_poll(&it, 1, left);
        if (r < 0 && zmq_errno() == EINTR) continue;
        if (r < 0) {
            failf(g, "%s: poll failed: %s", what, zmq_strerror(zmq_errno()));
            return -1;
        }
        if (r > 0) break;
    }
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, k->sock, ZMQ_DONTWAIT) < 0) {
        failf(g, "%s: receive failed: %s", what, zmq_strerror(zmq_errno()));
        zmq_msg_close(&msg);
        return -1;
    }
    int rc = wire_decode(k->rx, zmq_msg_data(&msg), zmq_msg_size(&msg), rep); /* copies into k->rx */
    zmq_msg_close(&msg);
    if (rc) {
        failf(g, "%s: undecodable reply: %s", what, fn_err_msg());
        return -1;
    }
    return 0;
}

/* The reply's type and seq; an ERROR_REP where none was expected is
 * reported with its reason. */
static int expect(soak *g, const wire_msg *rep, uint8_t type, uint64_t seq, const char *what)
{
    if (rep->type != type) {
        if (rep->type == WIRE_ERROR_REP)
            failf(g, "%s: server refused it: %s (code %u)", what, rep->text ? rep->text : "", rep->code);
        else
            failf(g, "%s: reply type %u, want %u", what, rep->type, type);
        return -1;
    }
    if (rep->seq != seq) {
        failf(g, "%s: reply seq %llu, want %llu", what, (unsigned long long)rep->seq, (unsigned long long)seq);
        return -1;
    }
    return 0;
}

/* A control request from k; the reply text (NUL-terminated) or NULL. */
static const char *ctrl(soak *g, conn *k, uint32_t op, const char *what)
{
    wire_msg m = {.type = WIRE_CTRL_REQ, .code = op}, rep;
    const uint8_t *buf;
    size_t len;
    if (conn_encode(g, k, &m, 0, &buf, &len, what) || conn_call(g, k, buf, len, &rep, what) ||
        expect(g, &rep, WIRE_CTRL_REP, m.seq, what))
        return NULL;
    if (rep.code) {
        failf(g, "%s: status %u: %s", what, rep.code, rep.text);
        return NULL;
    }
    return rep.text;
}

static int json_u64(const char *json, const char *name, uint64_t *v)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", name);
    const char *p = json ? strstr(json, pat) : NULL;
    if (!p) return -1;
    *v = strtoull(p + strlen(pat), NULL, 10);
    return 0;
}

/* ---- checks on values ---------------------------------------------------- */

/* SGD: w = init - STEP_UNIT * (a whole number of units within N B). */
static int sgd_units(const soak *g, float w, float init, double *units)
{
    double u = ((double)init - (double)w) / STEP_UNIT; /* exact in double */
    *units = u;
    return u == floor(u) && fabs(u) <= (double)g->c.clients * g->B;
}

/* Values of a pull reply: finite; for SGD, on the grid of their key, for
 * the keys whose initial row was known (state 2) — when the request was
 * sent if known is given (a read-only pull sent before another client's
 * pull created the row rightly returns zeros), else now. */
static int check_rows(soak *g, const wire_msg *rep, const uint32_t *idx, const uint8_t *known, const char *what)
{
    const int D = g->c.dim;
    for (uint32_t i = 0; i < rep->n; i++) {
        const float *w = rep->values + (size_t)i * D;
        for (int d = 0; d < D; d++)
            if (!isfinite(w[d])) {
                failf(g, "%s: row %u (key %u) coordinate %d is %g", what, i, idx[i], d, (double)w[d]);
                return -1;
            }
        if (g->opt.kind != PS_OPT_SGD || idx[i] == UINT32_MAX) continue;
        if (known ? !known[i] : atomic_load_explicit(&g->state[idx[i]], memory_order_acquire) != 2) continue;
        const float *w0 = g->init + (size_t)idx[i] * D;
        for (int d = 0; d < D; d++) {
            double u;
            if (!sgd_units(g, w[d], w0[d], &u)) {
                failf(g, "%s: key #%u coordinate %d is %.9g, initial %.9g: %.17g update units from it, not a whole number within %lld "
                      "(a gradient the tool did not send was applied, or one was applied inexactly)",
                      what, idx[i], d, (double)w[d], (double)w0[d], u, (long long)g->c.clients * g->B);
                return -1;
            }
        }
    }
    return 0;
}

/* Records the initial rows of keys seen for the first time.  A push is only
 * ever sent for a key in state 2, set after its row is stored here; this
 * reply was answered before we looked at the state, so if the state was 0
 * then, no push to the key had been sent, let alone applied. */
static int record_init(soak *g, const wire_msg *rep, const uint32_t *idx)
{
    const int D = g->c.dim;
    for (uint32_t i = 0; i < rep->n; i++) {
        uint8_t zero = 0;
        if (!atomic_compare_exchange_strong(&g->state[idx[i]], &zero, 1)) continue;
        float *w0 = g->init + (size_t)idx[i] * D;
        memcpy(w0, rep->values + (size_t)i * D, sizeof(float) * D);
        if (g->opt.kind == PS_OPT_SGD)
            for (int d = 0; d < D; d++) {
                double q = w0[d] / INIT_GRID;
                if (q != floor(q) || !(w0[d] >= -INIT_RANGE && w0[d] < INIT_RANGE)) {
                    failf(g, "initial row of key #%u coordinate %d is %.9g: not a multiple of 2^-27 in [-2^-4, 2^-4), "
                          "which the exact SGD check relies on (did ps/table.c change how rows start?)", idx[i], d, (double)w0[d]);
                    return -1;
                }
            }
        atomic_store_explicit(&g->state[idx[i]], 2, memory_order_release);
    }
    return 0;
}

/* ---- the clients' requests ----------------------------------------------- */

static int do_pull(client *c, int readonly)
{
    soak *g = c->g;
    const uint32_t K = g->c.keys;
    uint32_t want = draw_size(&c->rng), n = 0;
    if (!readonly && atomic_load(&g->sweep) < K) {
        uint32_t a = atomic_fetch_add(&g->sweep, SWEEP_CHUNK);
        for (uint32_t i = a; i < K && i < a + SWEEP_CHUNK; i++) c->req[n++] = (kv){g->ukeys[i], i};
    }
    while (n < want) {
        uint32_t i = draw_idx(&c->rng, K);
        c->req[n++] = (kv){g->ukeys[i], i};
    }
    if (readonly)
        for (uint32_t j = rnd_below(&c->rng, 4); j > 0; j--) c->req[n++] = g->outside[rnd_below(&c->rng, OUTSIDE_KEYS)];
    n = sort_unique(c, n);
    if (readonly)
        for (uint32_t i = 0; i < n; i++)
            c->known[i] = c->idx[i] != UINT32_MAX && atomic_load_explicit(&g->state[c->idx[i]], memory_order_acquire) == 2;
    const char *what = readonly ? "read-only pull" : "pull";
    wire_msg m = {.type = WIRE_PULL_REQ, .table = TABLE_ID, .dim = (uint16_t)g->c.dim, .n = n, .code = readonly ? 1u : 0u, .keys = c->keys},
             rep;
    const uint8_t *buf;
    size_t len;
    if (conn_encode(g, &c->k, &m, rnd_below(&c->rng, 4) == 0, &buf, &len, what) || conn_call(g, &c->k, buf, len, &rep, what) ||
        expect(g, &rep, WIRE_PULL_REP, m.seq, what))
        return -1;
    if (rep.table != TABLE_ID || rep.n != n || rep.dim != g->c.dim || (n && !rep.values) || rep.keys) {
        failf(g, "%s of %u keys: reply has table %u, n %u, dim %u, values %s, keys %s (want table %d, n %u, dim %d)", what, n,
              rep.table, rep.n, rep.dim, rep.values ? "yes" : "no", rep.keys ? "yes" : "no", TABLE_ID, n, g->c.dim);
        return -1;
    }
    if (check_rows(g, &rep, c->idx, readonly ? c->known : NULL, what)) return -1;
    if (readonly) {
        for (uint32_t i = 0; i < n; i++) {
            if (c->idx[i] != UINT32_MAX) continue;
            for (int d = 0; d < g->c.dim; d++)
                if (rep.values[(size_t)i * g->c.dim + d] != 0.0f) {
                    failf(g, "read-only pull: key %llu outside the universe came back with a value (%g), not a zero row",
                          (unsigned long long)c->keys[i], (double)rep.values[(size_t)i * g->c.dim + d]);
                    return -1;
                }
        }
        c->ro_pulls++;
    } else {
        if (record_init(g, &rep, c->idx)) return -1;
        c->pulls++;
    }
    c->rows_pulled += n;
    atomic_fetch_add_explicit(&c->rows_moved, n, memory_order_relaxed);
    return 0;
}

static int do_push(client *c)
{
    soak *g = c->g;
    const uint32_t K = g->c.keys;
    const int D = g->c.dim;
    uint32_t want = draw_size(&c->rng), n = 0;
    for (uint32_t j = 0; j < want; j++) {
        uint32_t i = draw_idx(&c->rng, K);
        if (atomic_load_explicit(&g->state[i], memory_order_acquire) == 2) c->req[n++] = (kv){g->ukeys[i], i};
    }
    n = sort_unique(c, n);
    for (uint32_t j = 0; j < n; j++) {
        int16_t *s = c->sum + (size_t)c->idx[j] * D;
        for (int d = 0; d < D; d++) {
            int m = (int)rnd_below(&c->rng, 2 * GRAD_MAX + 1) - GRAD_MAX;
            if (s[d] + m > g->B || s[d] + m < -g->B) m = -m; /* keeps every prefix sum exact, see the top */
            s[d] = (int16_t)(s[d] + m);
            c->grads[(size_t)j * D + d] = (float)m * GRAD_UNIT;
        }
        atomic_store_explicit(&g->pushed[c->idx[j]], 1, memory_order_relaxed);
    }
    wire_enc enc = rnd_below(&c->rng, 4) == 0 ? WIRE_F16 : WIRE_F32; /* both exact for m 2^-20 */
    wire_msg m = {.type = WIRE_PUSH_REQ, .enc = (uint8_t)enc, .table = TABLE_ID, .dim = (uint16_t)D, .n = n, .code = 0,
                  .keys = n ? c->keys : NULL, .values = n ? c->grads : NULL},
             rep;
    const uint8_t *buf;
    size_t len;
    if (conn_encode(g, &c->k, &m, rnd_below(&c->rng, 4) == 0, &buf, &len, "push") || conn_call(g, &c->k, buf, len, &rep, "push") ||
        expect(g, &rep, WIRE_PUSH_REP, m.seq, "push"))
        return -1;
    if (rep.code != n || rep.table != TABLE_ID || rep.keys || rep.values) {
        failf(g, "push of %u rows: reply says %u rows applied (table %u)", n, rep.code, rep.table);
        return -1;
    }
    c->pushes++;
    c->empty_pushes += n == 0;
    c->rows_pushed += n;
    atomic_fetch_add_explicit(&c->rows_moved, n, memory_order_relaxed);
    return 0;
}

/* A message the server must refuse with an ERROR_REP and no effect. */
static int do_malformed(client *c)
{
    soak *g = c->g;
    const int D = g->c.dim;
    int kind = (int)rnd_below(&c->rng, BAD_KINDS);
    /* live keys (if any yet) so an applied gradient would show; else outside
     * keys, whose rows would show in the row count */
    uint32_t n = 0;
    for (int j = 0; j < 64; j++) {
        uint32_t i = draw_idx(&c->rng, g->c.keys);
        if (atomic_load_explicit(&g->state[i], memory_order_acquire) == 2) c->req[n++] = (kv){g->ukeys[i], i};
    }
    if (!n)
        for (int j = 0; j < 8; j++) c->req[n++] = g->outside[rnd_below(&c->rng, OUTSIDE_KEYS)];
    if (kind == BAD_TABLE) {
        n = 0;
        for (int j = 0; j < 8; j++) c->req[n++] = g->outside[rnd_below(&c->rng, OUTSIDE_KEYS)];
    }
    n = sort_unique(c, n);
    int dim = kind == BAD_DIM ? D + 1 : D;
    for (size_t j = 0; j < (size_t)n * dim; j++) c->grads[j] = 1.0f / 3.0f; /* off the SGD grid */
    if (kind == BAD_NAN) /* one NaN or infinity anywhere refuses the whole push */
        c->grads[rnd_below(&c->rng, n * (uint32_t)dim)] = rnd_below(&c->rng, 2) ? NAN : -INFINITY;
    wire_msg m = {.type = WIRE_PUSH_REQ, .table = TABLE_ID, .dim = (uint16_t)dim, .n = n, .keys = c->keys, .values = c->grads};
    int want_code = FN_EBADMSG, seq_echoed = 1;
    switch (kind) {
    case BAD_CRC: want_code = FN_ECHECKSUM; break;
    case BAD_TRUNC: seq_echoed = 0; break;
    case BAD_MAGIC: want_code = FN_EMAGIC; seq_echoed = 0; break;
    case BAD_TABLE: m = (wire_msg){.type = WIRE_PULL_REQ, .table = PS_MAX_TABLES, .dim = (uint16_t)D, .n = n, .keys = c->keys}; break;
    case BAD_TYPE: m = (wire_msg){.type = WIRE_PULL_REP, .table = TABLE_ID, .dim = (uint16_t)D, .n = n, .values = c->grads}; break;
    case BAD_CTRL: m = (wire_msg){.type = WIRE_CTRL_REQ, .code = 99}; break;
    }
    char what[64];
    snprintf(what, sizeof what, "malformed message (%s)", bad_names[kind]);
    const uint8_t *enc;
    size_t len;
    if (conn_encode(g, &c->k, &m, 0, &enc, &len, what)) return -1;
    if (len > c->bad_cap) {
        uint8_t *b = realloc(c->bad, len);
        if (!b) { failf(g, "out of memory"); return -1; }
        c->bad = b;
        c->bad_cap = len;
    }
    memcpy(c->bad, enc, len);
    if (kind == BAD_CRC) c->bad[WIRE_HEADER_SIZE + rnd_below(&c->rng, (uint32_t)(len - WIRE_HEADER_SIZE))] ^= 0x10;
    if (kind == BAD_TRUNC) len = 1 + rnd_below(&c->rng, (uint32_t)len - 1);
    if (kind == BAD_MAGIC) c->bad[0] ^= 0xFF;
    wire_msg rep;
    if (conn_call(g, &c->k, c->bad, len, &rep, what)) return -1;
    uint64_t want_seq = seq_echoed ? m.seq : 0;
    int printable = rep.text_len > 0;
    for (uint32_t i = 0; i < rep.text_len; i++) printable &= rep.text[i] >= 0x20 && rep.text[i] < 0x7F; /* fn_fail escapes the rest */
    if (rep.type != WIRE_ERROR_REP || rep.seq != want_seq || rep.code != (uint32_t)want_code || !printable) {
        failf(g, "%s: reply type %u seq %llu code %u \"%s\", want ERROR_REP (%u) seq %llu code %d (%s) with a printable reason", what, rep.type,
              (unsigned long long)rep.seq, rep.code, rep.text ? rep.text : "", WIRE_ERROR_REP, (unsigned long long)want_seq, want_code,
              fn_strerror(want_code));
        return -1;
    }
    c->malformed++;
    c->malformed_kind[kind]++;
    return 0;
}

static void *client_main(void *arg)
{
    client *c = arg;
    soak *g = c->g;
    if (conn_open(g, &c->k)) failf(g, "client %d: %s", c->id, fn_err_msg());
    while (!atomic_load(&g->stop)) {
        double u = rnd01(&c->rng);
        int rc = u < 0.02 ? do_malformed(c) : u < 0.05 ? do_pull(c, 1) : u < 0.52 ? do_pull(c, 0) : do_push(c);
        if (rc) break;
        atomic_fetch_add_explicit(&c->requests, 1, memory_order_relaxed);
    }
    conn_close(&c->k);
    return NULL;
}

/* ---- the server, the watchdog, the samples ---------------------------------- */

static void *server_main(void *arg)
{
    soak *g = arg;
    g->server_rc = ps_server_run(g->srv);
    if (g->server_rc) snprintf(g->server_err, sizeof g->server_err, "%s", fn_err_msg());
    return NULL;
}

static void *watchdog_main(void *arg)
{
    soak *g = arg;
    while (!atomic_load(&g->finished)) {
        if (now_s() > g->hard_deadline) {
            printf("FAIL: still running %.0f s after the start (the hard deadline): a thread is stuck\n", now_s() - g->t_start);
            fflush(stdout);
            _exit(1);
        }
        usleep(100 * 1000);
    }
    return NULL;
}

static uint64_t rss_bytes(void)
{
    uint64_t rss;
    fn_proc_memory(&rss, NULL);
    return (uint64_t)rss;
}

static int take_sample(soak *g, conn *mon, double t0, sample *s)
{
    const char *json = ctrl(g, mon, WIRE_CTRL_STATS, "stats");
    if (!json) return -1;
    memset(s, 0, sizeof *s);
    s->t = now_s() - t0;
    if (json_u64(json, "rows", &s->rows) || json_u64(json, "table_bytes", &s->table_bytes)) {
        failf(g, "stats: no rows/table_bytes in %s", json);
        return -1;
    }
    s->rss = rss_bytes();
    for (int i = 0; i < g->c.clients; i++) {
        s->requests += atomic_load_explicit(&g->cl[i].requests, memory_order_relaxed);
        s->rows_moved += atomic_load_explicit(&g->cl[i].rows_moved, memory_order_relaxed);
    }
    return 0;
}

/* ---- end of run: the whole table against the reference ------------------- */

/* Read-only pulls of the whole universe (creates nothing: a missing row
 * would come back as zeros).  SGD: every coordinate == init - lr sum;
 * others: finite, and rows nobody pushed still equal their initial row. */
static int check_table(soak *g, conn *mon, uint64_t *exact_rows, uint64_t *pulls, uint64_t *rows)
{
    const uint32_t K = g->c.keys;
    const int D = g->c.dim;
    uint64_t *keys = malloc(sizeof *keys * MAX_REQ_KEYS);
    if (!keys) { failf(g, "out of memory"); return -1; }
    uint64_t bad = 0;
    int rc = 0;
    for (uint32_t a = 0; a < K && !rc; a += MAX_REQ_KEYS) {
        uint32_t n = K - a < MAX_REQ_KEYS ? K - a : MAX_REQ_KEYS;
        for (uint32_t j = 0; j < n; j++) keys[j] = g->sorted[a + j].key;
        wire_msg m = {.type = WIRE_PULL_REQ, .table = TABLE_ID, .dim = (uint16_t)D, .n = n, .code = 1, .keys = keys}, rep;
        const uint8_t *buf;
        size_t len;
        if (conn_encode(g, mon, &m, 0, &buf, &len, "final pull") || conn_call(g, mon, buf, len, &rep, "final pull") ||
            expect(g, &rep, WIRE_PULL_REP, m.seq, "final pull")) {
            rc = -1;
            break;
        }
        (*pulls)++;
        *rows += n;
        if (rep.n != n || rep.dim != D || !rep.values) {
            failf(g, "final pull: reply of %u rows of dim %u, want %u of %d", rep.n, rep.dim, n, D);
            rc = -1;
            break;
        }
        for (uint32_t j = 0; j < n; j++) {
            uint32_t i = g->sorted[a + j].idx;
            const float *w = rep.values + (size_t)j * D, *w0 = g->init + (size_t)i * D;
            if (atomic_load(&g->state[i]) != 2) {
                if (bad++ < 5) failf(g, "key #%u was never pulled (its initial row is unknown)", i);
                continue;
            }
            int pushed = atomic_load(&g->pushed[i]);
            for (int d = 0; d < D; d++) {
                float want = w0[d];
                if (g->opt.kind == PS_OPT_SGD) {
                    long long units = 0;
                    for (int c = 0; c < g->c.clients; c++) units += g->cl[c].sum[(size_t)i * D + d];
                    want = (float)((double)w0[d] - STEP_UNIT * (double)units); /* exact, see the top */
                } else if (pushed) {
                    if (isfinite(w[d])) continue;
                    want = NAN;
                }
                if (w[d] != want) {
                    if (bad++ < 5)
                        failf(g, "final table: key %llu (#%u) coordinate %d is %.9g, want %.9g (initial %.9g%s)",
                              (unsigned long long)g->sorted[a + j].key, i, d, (double)w[d], (double)want, (double)w0[d],
                              pushed ? ", pushed" : ", never pushed");
                    break;
                }
            }
        }
    }
    free(keys);
    if (bad) failf(g, "final table: %llu of %u rows differ from the reference", (unsigned long long)bad, K);
    *exact_rows = K - bad;
    return rc || bad ? -1 : 0;
}

/* ---- command line ---------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fn_soak [--clients N] [--seconds S] [--keys K] [--dim D]\n"
            "               [--optimizer sgd|adagrad|adam|ftrl] [--seed X] [--secure]\n"
            "               [--rss-slack-mb M] [--server-threads T] [--verbose]\n"
            "Drives one in-process parameter server (127.0.0.1) with N client threads doing\n"
            "random pulls and pushes for S seconds; checks every reply, the final table (exactly,\n"
            "with sgd) and that memory stops growing once all K keys exist.\n"
            "  --clients N        client threads (1..64, default 4)\n"
            "  --server-threads T threads serving the server's table stripes (1..16, default 1)\n"
            "  --seconds S        duration of the traffic (default 10)\n"
            "  --keys K           keys in the universe (default 100000)\n"
            "  --dim D            floats per row (default 16)\n"
            "  --optimizer O      sgd (exact reference, default) or adagrad|adam|ftrl (invariants)\n"
            "  --seed X           seed of the table and of the traffic (default 1)\n"
            "  --secure           CURVE-encrypted traffic with a ZAP handler, as in a job\n"
            "  --rss-slack-mb M   RSS growth allowed once the table is full: max(M MiB, 5%%) (default 8)\n"
            "  --verbose          the server's warnings too (refused requests)\n"
            "Exit status: 0 all checks passed, 1 a check failed, 2 bad command line.\n");
}

static int parse_num(const char *flag, const char *s, double lo, double hi, double *v)
{
    char *end;
    errno = 0;
    double x = s ? strtod(s, &end) : 0;
    if (!s || errno || end == s || *end || !(x >= lo && x <= hi)) {
        fprintf(stderr, "fn_soak: %s wants a number in [%g, %g], got %s\n", flag, lo, hi, s ? s : "nothing");
        return -1;
    }
    *v = x;
    return 0;
}

static int parse_args(int argc, char **argv, soak_conf *c)
{
    *c = (soak_conf){.clients = 4, .seconds = 10, .keys = 100000, .dim = 16, .opt = PS_OPT_SGD, .seed = 1, .rss_slack_mb = 8, .server_threads = 1};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double x;
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) { usage(stdout); exit(0); }
        else if (!strcmp(f, "--secure")) c->secure = 1;
        else if (!strcmp(f, "--verbose")) c->verbose = 1;
        else if (!strcmp(f, "--clients")) { if (parse_num(f, v, 1, 64, &x) || x != floor(x)) return -1; c->clients = (int)x; i++; }
        else if (!strcmp(f, "--server-threads")) { if (parse_num(f, v, 1, PS_MAX_THREADS, &x) || x != floor(x)) return -1; c->server_threads = (int)x; i++; }
        else if (!strcmp(f, "--seconds")) { if (parse_num(f, v, 0.5, 86400, &x)) return -1; c->seconds = x; i++; }
        else if (!strcmp(f, "--keys")) { if (parse_num(f, v, 1, 1 << 26, &x) || x != floor(x)) return -1; c->keys = (uint32_t)x; i++; }
        else if (!strcmp(f, "--dim")) { if (parse_num(f, v, 1, WIRE_MAX_DIM - 1, &x) || x != floor(x)) return -1; c->dim = (int)x; i++; }
        else if (!strcmp(f, "--seed")) { if (parse_num(f, v, 0, 9007199254740992.0, &x) || x != floor(x)) return -1; c->seed = (uint64_t)x; i++; }
        else if (!strcmp(f, "--rss-slack-mb")) { if (parse_num(f, v, 0, 1e6, &x)) return -1; c->rss_slack_mb = x; i++; }
        else if (!strcmp(f, "--optimizer")) {
            int k = ps_opt_kind_parse(v);
            if (k < 0) { fprintf(stderr, "fn_soak: --optimizer wants sgd, adagrad, adam or ftrl, got %s\n", v ? v : "nothing"); return -1; }
            c->opt = (ps_opt_kind)k;
            i++;
        } else {
            fprintf(stderr, "fn_soak: unknown argument %s (see --help)\n", f);
            return -1;
        }
    }
    /* reference arrays: init K*D floats, K*D int16 per client */
    double bytes = (double)c->keys * c->dim * (4.0 + 2.0 * c->clients);
    if (bytes > 8.0 * (1 << 30)) {
        fprintf(stderr, "fn_soak: --keys %u --dim %d --clients %d needs %.1f GiB of reference arrays; at most 8\n", c->keys, c->dim,
                c->clients, bytes / (1 << 30));
        return -1;
    }
    return 0;
}

/* The universe: K distinct keys in runs of 8 consecutive ones (delta 1,
 * one-byte varints) scattered over the 64-bit space; and OUTSIDE_KEYS
 * keys not in it. */
static int make_universe(soak *g)
{
    const uint32_t K = g->c.keys;
    for (uint64_t salt = g->c.seed * 0x9E3779B97F4A7C15ull + 1;; salt++) {
        for (uint32_t i = 0; i < K; i++) {
            g->ukeys[i] = (fn_mix64(salt ^ fn_mix64(i >> 3)) & ~7ull) | (i & 7);
            g->sorted[i] = (kv){g->ukeys[i], i};
        }
        qsort(g->sorted, K, sizeof *g->sorted, kv_cmp);
        int dup = 0;
        for (uint32_t i = 1; i < K && !dup; i++) dup = g->sorted[i].key == g->sorted[i - 1].key;
        int n = 0;
        for (uint64_t j = 0; !dup && n < OUTSIDE_KEYS; j++) {
            kv o = {fn_mix64(salt + 0x5EED0000ull + j), UINT32_MAX};
            int taken = bsearch(&o, g->sorted, K, sizeof *g->sorted, kv_cmp) != NULL;
            for (int q = 0; q < n; q++) taken |= g->outside[q].key == o.key;
            if (!taken) g->outside[n++] = o;
        }
        if (!dup) break; /* a collision of 61-bit hashes: try the next salt */
    }
    qsort(g->outside, OUTSIDE_KEYS, sizeof *g->outside, kv_cmp);
    return 0;
}

int main(int argc, char **argv)
{
    static soak G;
    soak *g = &G;
    if (parse_args(argc, argv, &g->c)) return 2;
    const soak_conf *cf = &g->c;
    const uint32_t K = cf->keys;
    const int D = cf->dim, N = cf->clients;
    log_set_level(cf->verbose ? LOG_INFO : LOG_ERROR);
    pthread_mutex_init(&g->print_mu, NULL);
    g->B = (1 << 20) / N < 32767 ? (1 << 20) / N : 32767;
    g->opt = ps_opt_default(cf->opt);
    if (cf->opt == PS_OPT_SGD) g->opt.lr = SGD_LR;
    g->t_start = now_s();
    g->hard_deadline = g->t_start + cf->seconds + MAX_EXTRA_S + 30 + cf->seconds / 10;
    pthread_t watchdog;
    pthread_create(&watchdog, NULL, watchdog_main, g);

    /* reference arrays, every page touched now so they are in the RSS
     * before the first sample */
    g->ukeys = malloc(sizeof *g->ukeys * K);
    g->sorted = malloc(sizeof *g->sorted * K);
    g->state = malloc(sizeof *g->state * K);
    g->pushed = malloc(sizeof *g->pushed * K);
    g->init = malloc(sizeof *g->init * K * (size_t)D);
    g->cl = calloc((size_t)N, sizeof *g->cl);
    if (!g->ukeys || !g->sorted || !g->state || !g->pushed || !g->init || !g->cl) { printf("FAIL: out of memory\n"); return 1; }
    for (uint32_t i = 0; i < K; i++) { atomic_init(&g->state[i], 0); atomic_init(&g->pushed[i], 0); }
    memset(g->init, 0, sizeof *g->init * K * (size_t)D);
    atomic_init(&g->sweep, 0);
    make_universe(g);
    const size_t req_cap = MAX_REQ_KEYS + SWEEP_CHUNK + OUTSIDE_KEYS;
    for (int i = 0; i < N; i++) {
        client *c = &g->cl[i];
        c->g = g;
        c->id = i;
        c->rng = fn_mix64(cf->seed ^ fn_mix64(0xC11E47ull + (uint64_t)i));
        c->sum = malloc(sizeof *c->sum * K * (size_t)D);
        c->req = malloc(sizeof *c->req * req_cap);
        c->keys = malloc(sizeof *c->keys * req_cap);
        c->idx = malloc(sizeof *c->idx * req_cap);
        c->known = malloc(req_cap);
        c->grads = malloc(sizeof *c->grads * req_cap * (size_t)(D + 1));
        if (!c->sum || !c->req || !c->keys || !c->idx || !c->known || !c->grads) { printf("FAIL: out of memory\n"); return 1; }
        memset(c->sum, 0, sizeof *c->sum * K * (size_t)D);
        memset(c->grads, 0, sizeof *c->grads * req_cap * (size_t)(D + 1));
    }

    /* the server, on its own context */
    g->sctx = zmq_ctx_new();
    g->cctx = zmq_ctx_new();
    memset(&g->keys, 0, sizeof g->keys);
    if (cf->secure && (secure_make_keys(&g->keys) || secure_zap_start(&g->zap, g->sctx, &g->keys))) {
        printf("FAIL: --secure: %s\n", fn_err_msg());
        return 1;
    }
    ps_server_conf sc = {.rank = 0, .bind_host = "127.0.0.1", .advertise_host = "127.0.0.1", .dim = D, .opt = g->opt,
                         .seed = cf->seed, .init_range = INIT_RANGE, .lz4 = 1, .keys = &g->keys, .zap = g->zap,
                         .threads = cf->server_threads};
    if (ps_server_new(&g->srv, g->sctx, &sc, &g->endpoint)) { printf("FAIL: server: %s\n", fn_err_msg()); return 1; }
    if (strncmp(g->endpoint, "tcp://127.0.0.1:", 16)) { printf("FAIL: server endpoint %s is not on 127.0.0.1\n", g->endpoint); return 1; }
    pthread_create(&g->server_thread, NULL, server_main, g);

    printf("soak: %d clients, %g s, %u keys x %d, %s (lr %g), seed %llu, %s, server %s (%d thread(s))\n", N, cf->seconds, K, D,
           ps_opt_kind_name(cf->opt), (double)g->opt.lr, (unsigned long long)cf->seed, cf->secure ? "CURVE" : "plain TCP", g->endpoint,
           cf->server_threads);
    fflush(stdout);

    conn mon;
    if (conn_open(g, &mon)) failf(g, "monitor: %s", fn_err_msg());
    sample *samples = NULL;
    size_t ns = 0, scap = 0;
    double t0 = now_s();
    if (!atomic_load(&g->failures) && ctrl(g, &mon, WIRE_CTRL_PING, "ping")) {
        t0 = now_s();
        for (int i = 0; i < N; i++) pthread_create(&g->cl[i].thread, NULL, client_main, &g->cl[i]);
        /* a sample every second until the end (or a failure); if the key
         * set filled too late for MIN_AFTER_FULL samples, a little longer */
        size_t full_i = SIZE_MAX;
        for (double next = t0; !atomic_load(&g->stop);) {
            if (now_s() >= next) {
                if (ns == scap) {
                    scap = scap ? 2 * scap : 256;
                    samples = realloc(samples, scap * sizeof *samples);
                    if (!samples) { failf(g, "out of memory"); break; }
                }
                if (take_sample(g, &mon, t0, &samples[ns])) break;
                if (full_i == SIZE_MAX && samples[ns].rows == K) full_i = ns;
                ns++;
                double t = now_s() - t0;
                if (t >= cf->seconds && ((full_i != SIZE_MAX && ns - full_i > MIN_AFTER_FULL) || t >= cf->seconds + MAX_EXTRA_S)) break;
                next += 1.0;
            }
            usleep(20 * 1000);
        }
        atomic_store(&g->stop, 1);
        for (int i = 0; i < N; i++) pthread_join(g->cl[i].thread, NULL);
    }
    double elapsed = now_s() - t0;
    const int traffic_failed = atomic_load(&g->failures) != 0;

    /* totals */
    uint64_t pulls = 0, ro = 0, pushes = 0, empty = 0, bad = 0, rpl = 0, rps = 0, kinds[BAD_KINDS] = {0};
    for (int i = 0; i < N; i++) {
        client *c = &g->cl[i];
        pulls += c->pulls, ro += c->ro_pulls, pushes += c->pushes, empty += c->empty_pushes, bad += c->malformed;
        rpl += c->rows_pulled, rps += c->rows_pushed;
        for (int k = 0; k < BAD_KINDS; k++) kinds[k] += c->malformed_kind[k];
    }
    uint64_t reqs = pulls + ro + pushes + bad;
    printf("traffic: %llu requests in %.1f s (%.0f/s): %llu pulls, %llu read-only pulls, %llu pushes (%llu empty), "
           "%llu malformed (all refused as expected)\n",
           (unsigned long long)reqs, elapsed, reqs / elapsed, (unsigned long long)pulls, (unsigned long long)ro, (unsigned long long)pushes,
           (unsigned long long)empty, (unsigned long long)bad);
    printf("rows: %llu pulled, %llu pushed (%.0f rows/s); malformed by kind:", (unsigned long long)rpl, (unsigned long long)rps,
           (rpl + rps) / elapsed);
    for (int k = 0; k < BAD_KINDS; k++) printf(" %s %llu%s", bad_names[k], (unsigned long long)kinds[k], k + 1 < BAD_KINDS ? "," : "\n");

    /* the final table, and the server's counters against ours */
    uint64_t exact = 0, mon_pulls = 0, mon_rows = 0;
    int table_ok = 0;
    if (traffic_failed) {
        printf("final checks skipped: the traffic already failed\n");
    } else {
        int before = atomic_load(&g->failures);
        table_ok = !check_table(g, &mon, &exact, &mon_pulls, &mon_rows) && atomic_load(&g->failures) == before;
        const char *json = ctrl(g, &mon, WIRE_CTRL_STATS, "final stats");
        uint64_t v[7];
        const char *names[7] = {"rows", "pulls", "pushes", "rows_pulled", "rows_pushed", "bad_requests", "refused_connections"};
        uint64_t want[7] = {K, pulls + ro + mon_pulls, pushes, rpl + mon_rows, rps, bad, 0};
        if (json) {
            printf("server: %s\n", json);
            for (int i = 0; i < 7; i++) {
                if (json_u64(json, names[i], &v[i])) failf(g, "final stats: no \"%s\"", names[i]);
                else if (v[i] != want[i])
                    failf(g, "server counts %s = %llu, the clients saw %llu", names[i], (unsigned long long)v[i], (unsigned long long)want[i]);
            }
        }
        if (table_ok)
            printf("final table: all %llu rows x %d %s\n", (unsigned long long)exact, D,
                   cf->opt == PS_OPT_SGD ? "equal, bit for bit, to initial - lr * (sum of the gradients sent)"
                                         : "finite; rows never pushed equal to their initial values");
    }

    /* memory: after the table is full, table_bytes stays put and the RSS
     * grows by at most the slack */
    printf("memory (table_bytes: the server's CTRL_STATS; rss: this whole process, /proc/self/status):\n");
    printf("  %7s %10s %12s %9s %10s %12s\n", "t/s", "rows", "table_bytes", "rss_MiB", "requests", "rows_moved");
    size_t stride = ns > 60 ? (ns + 59) / 60 : 1;
    size_t full_at = ns;
    for (size_t i = 0; i < ns; i++)
        if (samples[i].rows == K) { full_at = i; break; }
    for (size_t i = 0; i < ns; i++) {
        const sample *s = &samples[i];
        int mark = i == full_at;
        if (i % stride && i + 1 != ns && !mark) continue;
        printf("  %7.1f %10llu %12llu %9.1f %10llu %12llu%s\n", s->t, (unsigned long long)s->rows, (unsigned long long)s->table_bytes,
               s->rss / 1048576.0, (unsigned long long)s->requests, (unsigned long long)s->rows_moved, mark ? "  <- key set full" : "");
    }
    if (traffic_failed) {
        printf("memory: not judged, the traffic already failed\n");
    } else if (full_at == ns) {
        failf(g, "memory: the table never held all %u keys (rows %llu at the last sample): run longer or use fewer --keys", K,
              ns ? (unsigned long long)samples[ns - 1].rows : 0ull);
    } else if (ns - full_at <= MIN_AFTER_FULL) {
        failf(g, "memory: only %zu samples after the key set was full; need %d (run longer)", ns - full_at - 1, MIN_AFTER_FULL);
    } else {
        const sample *b = &samples[full_at];
        uint64_t max_rss = b->rss, max_tb = b->table_bytes;
        for (size_t i = full_at + 1; i < ns; i++) {
            if (samples[i].table_bytes != b->table_bytes && atomic_load(&g->failures) < MAX_FAIL_PRINTS)
                failf(g, "memory: table_bytes %llu at %.1f s, %llu when the key set became full at %.1f s",
                      (unsigned long long)samples[i].table_bytes, samples[i].t, (unsigned long long)b->table_bytes, b->t);
            if (samples[i].rows != K) failf(g, "memory: rows %llu at %.1f s, want %u", (unsigned long long)samples[i].rows, samples[i].t, K);
            if (samples[i].rss > max_rss) max_rss = samples[i].rss;
            if (samples[i].table_bytes > max_tb) max_tb = samples[i].table_bytes;
        }
        double slack = cf->rss_slack_mb * 1048576.0, pct = 0.05 * (double)b->rss;
        if (pct > slack) slack = pct;
        double grew = (double)max_rss - (double)b->rss;
        printf("memory: key set full at %.1f s; table_bytes %llu from then on (%.1f bytes/row); rss %.1f MiB then, at most %.1f MiB after "
               "(%+.2f MiB, allowed %.1f)%s\n",
               b->t, (unsigned long long)b->table_bytes, (double)b->table_bytes / K, b->rss / 1048576.0, max_rss / 1048576.0, grew / 1048576.0,
               slack / 1048576.0, SOAK_SANITIZED ? " [sanitizer build: rss not judged]" : "");
        if (!SOAK_SANITIZED && grew > slack)
            failf(g, "memory: rss grew by %.1f MiB after the key set was full (allowed %.1f MiB)", grew / 1048576.0, slack / 1048576.0);
    }

    /* shut down: SHUTDOWN, join, destroy */
    if (!ctrl(g, &mon, WIRE_CTRL_SHUTDOWN, "shutdown")) {
        printf("(the server did not answer SHUTDOWN; the watchdog ends the process if it does not stop)\n");
        fflush(stdout);
    }
    pthread_join(g->server_thread, NULL);
    if (g->server_rc) failf(g, "server loop: %s", g->server_err);
    ps_server_destroy(&g->srv);
    conn_close(&mon);
    zmq_ctx_term(g->cctx);
    zmq_ctx_term(g->sctx); /* ends the ZAP handler too */
    secure_zap_join(&g->zap);
    atomic_store(&g->finished, 1);
    pthread_join(watchdog, NULL);

    for (int i = 0; i < N; i++) {
        client *c = &g->cl[i];
        free(c->sum); free(c->req); free(c->keys); free(c->idx); free(c->known); free(c->grads); free(c->bad);
    }
    free(g->cl); free(g->ukeys); free(g->sorted); free(g->state); free(g->pushed); free(g->init); free(samples);
    memset(&g->keys, 0, sizeof g->keys);
    int nf = atomic_load(&g->failures);
    if (nf) {
        printf("soak: FAILED (%d check%s)\n", nf, nf == 1 ? "" : "s");
        return 1;
    }
    printf("soak: ok\n");
    return 0;
}
