/* ps/server.c — see server.h. */
#include "server.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "binfile.h"
#include "fn_error.h"
#include "hash.h"
#include "log.h"
#include "par.h"
#include "procmem.h"
#include "sketch.h"
#include "table.h"
#include "wire.h"

/* One worker's push of the current synchronous round, held until every
 * worker's has arrived (see apply_round). */
typedef struct {
    int have;
    zmq_msg_t ident;
    uint64_t seq;
    uint32_t n;
    uint64_t *keys;
    float *vals;
    size_t cap;           /* rows */
} push_slot;

/* Index of the first value of v[0..n) that is NaN or infinite, or n.
 * Every pushed value goes through it: four at a time where SSE2 is (one
 * exponent mask and compare each), then the scalar loop finds which. */
static size_t first_not_finite(const float *v, size_t n)
{
    size_t i = 0;
#ifdef __SSE2__
    const __m128i expo = _mm_set1_epi32(0x7F800000);
    for (; i + 16 <= n; i += 16) {
        __m128i bad = _mm_setzero_si128();
        for (int k = 0; k < 16; k += 4) {
            __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(v + i + k));
            bad = _mm_or_si128(bad, _mm_cmpeq_epi32(_mm_and_si128(x, expo), expo));
        }
        if (_mm_movemask_epi8(bad)) break; /* the scalar loop below names it */
    }
#endif
    for (; i < n; i++)
        if (!isfinite(v[i])) return i;
    return n;
}

/* The last push a client (by routing id) had applied: a retry of it is
 * answered from here, never applied twice. */
typedef struct {
    uint64_t id;   /* hash of the routing id */
    uint64_t seq;
    uint32_t n;
} push_record;
#define PS_MAX_RECORDS 65536

struct ps_server {
    ps_server_conf conf;
    void *sock;
    char endpoint[256];
    int T;                /* stripes of each table = threads serving them */
    ps_table **tables;    /* [PS_MAX_TABLES * T]: stripe j of table t at t * T + j */
    par *pool;            /* T threads, the receiving one included */
    uint64_t *skeys;      /* a request's keys by stripe (split_keys) */
    uint32_t *sat;        /* ... and their rows in the request */
    uint8_t *sof;         /* stripe of each key of the request */
    size_t scap;          /* keys */
    uint32_t soff[PS_MAX_THREADS + 1]; /* stripe j: skeys[soff[j] .. soff[j+1]) */
    wire_codec *rx, *tx;
    float *vals;          /* pull reply scratch */
    size_t vals_cap;      /* floats */
    uint32_t step;        /* pushes applied */
    uint32_t clock[PS_MAX_TABLES]; /* pushes applied to each table: its rows' time */
    ps_sketch *sketch;    /* admission counts (conf.admit_after >= 2) */
    uint64_t headroom;    /* rows kept free under max_rows after a push */
    uint64_t created_mark; /* rows created by the end of the last push */
    int overrun_warned;
    push_record *done;    /* per client, see push_record */
    size_t n_done, done_cap, done_next;
    uint64_t retried_pushes, replies, drop_every;
    uint64_t pulls, pushes, rows_pulled, rows_pushed, bad_requests, bytes_in, bytes_out;
    push_slot *slots;     /* per worker, for rounds of W >= 2 workers */
    int round_w, round_have;
    uint16_t round_table, round_dim;
    char ctrl_text[4096]; /* control replies */
    uint64_t *mkeys;      /* merged round */
    float *mvals;
    size_t mcap;
    int stop;
};

int ps_server_new(ps_server **out, void *ctx, const ps_server_conf *conf, const char **endpoint)
{
    *out = NULL;
    ps_server *s = calloc(1, sizeof *s);
    if (!s) return FN_ENOMEM;
    s->conf = *conf;
    s->T = conf->threads > 1 ? conf->threads : 1;
    if (s->T > PS_MAX_THREADS) {
        free(s);
        return fn_fail(FN_EINVAL, "server %d: %d threads, at most %d", conf->rank, conf->threads, PS_MAX_THREADS);
    }
    s->tables = calloc((size_t)PS_MAX_TABLES * (size_t)s->T, sizeof *s->tables);
    if (!s->tables || par_open(&s->pool, s->T)) {
        ps_server_destroy(&s);
        return fn_fail(FN_ENOMEM, "server %d: cannot start %d threads", conf->rank, conf->threads);
    }
    s->rx = wire_codec_new();
    s->tx = wire_codec_new();
    s->sock = zmq_socket(ctx, ZMQ_ROUTER);
    s->headroom = conf->max_rows / 32;
    if (conf->admit_after > 1 && !(s->sketch = ps_sketch_new(conf->admit_sketch_bytes))) {
        ps_server_destroy(&s);
        return fn_fail(FN_ENOMEM, "server %d: no memory for an admission sketch of %zu bytes", conf->rank, conf->admit_sketch_bytes);
    }
    if (!s->rx || !s->tx || !s->sock) { ps_server_destroy(&s); return fn_fail(FN_EZMQ, "server %d: cannot create socket", conf->rank); }
    int zero = 0, one = 1;
    /* a worker that reconnects keeps its routing id and its record */
    zmq_setsockopt(s->sock, ZMQ_ROUTER_HANDOVER, &one, sizeof one);
    zmq_setsockopt(s->sock, ZMQ_LINGER, &zero, sizeof zero);
    const char *drop = getenv("FUNNEL_FAULT_DROP_REPLY");
    if (drop && atoi(drop) > 0) {
        s->drop_every = (uint64_t)atoi(drop);
        log_warn("server %d: FAULT INJECTION: every %llu-th pull or push reply is dropped (FUNNEL_FAULT_DROP_REPLY, for tests)", conf->rank,
                 (unsigned long long)s->drop_every);
    }
    zmq_setsockopt(s->sock, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(s->sock, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_setsockopt(s->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    if (conf->keys && secure_server_socket(s->sock, conf->keys)) {
        int rc = fn_fail(FN_EZMQ, "server %d: %s", conf->rank, fn_err_msg());
        ps_server_destroy(&s);
        return rc;
    }
    char bind[300];
    snprintf(bind, sizeof bind, "tcp://%s:*", conf->bind_host);
    if (zmq_bind(s->sock, bind)) {
        int rc = fn_fail(FN_EZMQ, "server %d: cannot bind %s: %s", conf->rank, bind, zmq_strerror(zmq_errno()));
        ps_server_destroy(&s);
        return rc;
    }
    char last[256];
    size_t len = sizeof last;
    zmq_getsockopt(s->sock, ZMQ_LAST_ENDPOINT, last, &len);
    const char *port = strrchr(last, ':');
    snprintf(s->endpoint, sizeof s->endpoint, "tcp://%s%s", conf->advertise_host, port ? port : ":0");
    *endpoint = s->endpoint;
    *out = s;
    return FN_OK;
}

void ps_server_destroy(ps_server **sp)
{
    ps_server *s = *sp;
    if (!s) return;
    if (s->sock) zmq_close(s->sock);
    for (int t = 0; s->tables && t < PS_MAX_TABLES * s->T; t++) ps_table_destroy(&s->tables[t]);
    free(s->tables);
    par_close(&s->pool);
    free(s->skeys);
    free(s->sat);
    free(s->sof);
    for (int w = 0; s->slots && w < s->round_w; w++) {
        if (s->slots[w].have) zmq_msg_close(&s->slots[w].ident);
        free(s->slots[w].keys);
        free(s->slots[w].vals);
    }
    free(s->slots);
    free(s->mkeys);
    free(s->mvals);
    wire_codec_destroy(&s->rx);
    wire_codec_destroy(&s->tx);
    ps_sketch_destroy(&s->sketch);
    free(s->done);
    free(s->vals);
    free(s);
    *sp = NULL;
}

/* The T stripes of table id (created if absent and `create`), or NULL. */
static ps_table **table_of(ps_server *s, uint16_t id, uint16_t dim, int create, int *rc)
{
    *rc = FN_OK;
    if (id >= PS_MAX_TABLES) { *rc = fn_fail(FN_EBADMSG, "table %u out of range (max %d)", id, PS_MAX_TABLES - 1); return NULL; }
    if (dim != s->conf.dim) { *rc = fn_fail(FN_EBADMSG, "dim %u, this job's tables have dim %d", dim, s->conf.dim); return NULL; }
    ps_table **st = s->tables + (size_t)id * s->T;
    if (!st[0] && create) {
        /* each table draws its initial rows from its own seed; its stripes
         * share it (a row's values depend on the seed and its key) */
        for (int j = 0; j < s->T && !*rc; j++) {
            st[j] = ps_table_new(s->conf.dim, &s->conf.opt, s->conf.seed + 0x1000193u * id, s->conf.init_range);
            if (!st[j]) *rc = fn_fail(FN_ENOMEM, "out of memory creating table %u", id);
            else ps_table_set_admission(st[j], s->sketch, s->conf.admit_after);
        }
        if (*rc)
            for (int j = 0; j < s->T; j++) ps_table_destroy(&st[j]);
    }
    return st[0] ? st : NULL;
}

/* Sorts the n keys of a request by stripe (stably: each stripe's stay
 * sorted) into skeys, with their rows in the request in sat. */
static int split_keys(ps_server *s, const uint64_t *keys, uint32_t n)
{
    if (n > s->scap) {
        size_t cap = s->scap ? s->scap : 4096;
        while (cap < n) cap *= 2;
        uint64_t *k = realloc(s->skeys, cap * sizeof *k);
        if (k) s->skeys = k;
        uint32_t *a = realloc(s->sat, cap * sizeof *a);
        if (a) s->sat = a;
        uint8_t *o = realloc(s->sof, cap);
        if (o) s->sof = o;
        if (!k || !a || !o) return FN_ENOMEM;
        s->scap = cap;
    }
    uint32_t at[PS_MAX_THREADS + 1] = {0};
    for (uint32_t i = 0; i < n; i++) {
        uint32_t j = fn_key_stripe(keys[i], (uint32_t)s->T);
        s->sof[i] = (uint8_t)j;
        at[j + 1]++;
    }
    for (int j = 0; j < s->T; j++) at[j + 1] += at[j];
    memcpy(s->soff, at, sizeof(uint32_t) * (size_t)(s->T + 1));
    for (uint32_t i = 0; i < n; i++) {
        uint32_t p = at[s->sof[i]]++;
        s->skeys[p] = keys[i];
        s->sat[p] = i;
    }
    return FN_OK;
}

enum { OP_PULL, OP_READ, OP_PUSH };

/* One request's work on the stripes; stripe j's on thread j. */
typedef struct {
    ps_server *s;
    ps_table **st;
    int op;
    const uint64_t *keys; /* one stripe: the request's own */
    uint32_t n;
    float *out;           /* pull: the reply's rows */
    const float *in;      /* push: the gradients */
    uint32_t step;
    int rc[PS_MAX_THREADS];
} stripe_job;

static void stripe_run(void *arg, int j, int n_threads)
{
    (void)n_threads;
    stripe_job *q = arg;
    const ps_server *s = q->s;
    const uint64_t *keys = q->keys;
    const uint32_t *at = NULL;
    uint32_t n = q->n;
    if (s->T > 1) {
        keys = s->skeys + s->soff[j];
        at = s->sat + s->soff[j];
        n = s->soff[j + 1] - s->soff[j];
    }
    switch (q->op) {
    case OP_PULL: q->rc[j] = ps_table_pull_at(q->st[j], keys, at, n, q->out, q->step); break;
    case OP_READ: ps_table_read_at(q->st[j], keys, at, n, q->out); break;
    default: q->rc[j] = ps_table_push_at(q->st[j], keys, at, n, q->in, q->step); break;
    }
}

/* Pulls (op OP_PULL, OP_READ: rows to out) or pushes (OP_PUSH: gradients
 * from in) the n keys of a request on table st's stripes. */
static int serve_stripes(ps_server *s, ps_table **st, int op, const uint64_t *keys, uint32_t n, float *out, const float *in, uint32_t step)
{
    stripe_job q = {.s = s, .st = st, .op = op, .keys = keys, .n = n, .out = out, .in = in, .step = step};
    if (s->T == 1) {
        stripe_run(&q, 0, 1);
        return q.rc[0];
    }
    if (op == OP_PUSH && s->sketch) {
        /* pushes count keys in the one sketch the stripes share: one
         * thread, in the request's order, as a single table would */
        for (uint32_t i = 0; i < n; i++) {
            int rc = ps_table_push_at(st[fn_key_stripe(keys[i], (uint32_t)s->T)], keys + i, &i, 1, in, step);
            if (rc) return rc;
        }
        return FN_OK;
    }
    if (split_keys(s, keys, n)) return FN_ENOMEM;
    if (n >= PS_STRIPE_MIN) par_run(s->pool, stripe_run, &q);
    else
        for (int j = 0; j < s->T; j++) stripe_run(&q, j, s->T);
    for (int j = 0; j < s->T; j++)
        if (q.rc[j]) return q.rc[j];
    return FN_OK;
}

static int reserve_vals(ps_server *s, size_t n)
{
    if (n <= s->vals_cap) return FN_OK;
    size_t cap = s->vals_cap ? s->vals_cap : 4096;
    while (cap < n) cap *= 2;
    float *v = realloc(s->vals, cap * sizeof *v);
    if (!v) return FN_ENOMEM;
    s->vals = v;
    s->vals_cap = cap;
    return FN_OK;
}

static uint64_t total_rows(const ps_server *s);

static uint64_t total_created(const ps_server *s)
{
    uint64_t n = 0;
    for (int t = 0; t < PS_MAX_TABLES * s->T; t++)
        if (s->tables[t]) {
            ps_table_stats st;
            ps_table_counts(s->tables[t], &st);
            n += st.created;
        }
    return n;
}

/* After a push: keeps `headroom` rows free under the budget for the next
 * step's pulls, evicting a further max/16 when it acts so that it acts
 * seldom (each eviction scans the rows a few times; see server.h). */
static void keep_budget(ps_server *s)
{
    uint64_t max = s->conf.max_rows, low = max - s->headroom;
    if (max && total_rows(s) > low)
        ps_tables_evict(s->tables, PS_MAX_TABLES * s->T, (size_t)(low > max / 16 ? low - max / 16 : 0), 0, s->conf.evict_policy);
}

/* Applies a push (or a whole round's sum) to table id, then the TTL and
 * the row budget. */
static int apply_push(ps_server *s, uint16_t id, ps_table **st, const uint64_t *keys, uint32_t n, const float *vals)
{
    s->step++;
    uint32_t now = ++s->clock[id];
    int rc = serve_stripes(s, st, OP_PUSH, keys, n, NULL, vals, now);
    uint32_t ttl = s->conf.ttl_steps;
    if (!rc && ttl && now > ttl && now % (ttl / 8 + 1) == 0)
        ps_tables_evict(st, s->T, SIZE_MAX, now - ttl, s->conf.evict_policy);
    if (s->conf.max_rows) {
        /* room for twice the most rows one push period has created, so the
         * next step's pulls fit under the budget */
        uint64_t created = total_created(s), max = s->conf.max_rows, fresh = 2 * (created - s->created_mark);
        if (fresh > s->headroom) s->headroom = fresh > max / 2 ? max / 2 : fresh;
        else if (s->headroom > max / 32) s->headroom -= s->headroom / 64; /* new keys grow rarer: use the room */
        keep_budget(s);
        s->created_mark = created; /* eviction creates nothing */
    }
    return rc ? fn_fail(rc, "out of memory applying a push") : FN_OK;
}

/* The record of the client whose routing id is ident (created if absent,
 * reusing the oldest slot past PS_MAX_RECORDS clients); NULL only when out
 * of memory. */
static push_record *record_of(ps_server *s, zmq_msg_t *ident)
{
    uint64_t id = fn_hash64(zmq_msg_data(ident), zmq_msg_size(ident), 0x51ED27);
    for (size_t i = 0; i < s->n_done; i++)
        if (s->done[i].id == id) return &s->done[i];
    if (s->n_done == PS_MAX_RECORDS) {
        push_record *r = &s->done[s->done_next++ % PS_MAX_RECORDS];
        *r = (push_record){id, 0, 0};
        return r;
    }
    if (s->n_done == s->done_cap) {
        size_t cap = s->done_cap ? 2 * s->done_cap : 16;
        push_record *d = realloc(s->done, cap * sizeof *d);
        if (!d) return NULL;
        s->done = d;
        s->done_cap = cap;
    }
    s->done[s->n_done] = (push_record){id, 0, 0};
    return &s->done[s->n_done++];
}

/* Builds the reply to request m in *reply; returns FN_OK or an error whose
 * message becomes an ERROR_REP. */
static int hold_push(ps_server *s, const wire_msg *m, zmq_msg_t *ident);

static int handle(ps_server *s, const wire_msg *m, wire_msg *reply, zmq_msg_t *ident, int *deferred)
{
    int rc;
    *deferred = 0;
    memset(reply, 0, sizeof *reply);
    reply->seq = m->seq;
    switch (m->type) {
    case WIRE_PULL_REQ: {
        int readonly = m->code == 1;
        ps_table **t = table_of(s, m->table, m->dim, !readonly, &rc);
        if (rc) return rc;
        size_t need = (size_t)m->n * m->dim;
        /* fp32 rows go straight into the reply's buffer; others are converted from vals */
        float *vals = m->enc == WIRE_F32 ? wire_values_slot(s->tx, m->n, m->dim) : NULL;
        if (!vals) {
            if (reserve_vals(s, need)) return fn_fail(FN_ENOMEM, "out of memory for %u rows", m->n);
            vals = s->vals;
        }
        if (readonly) {
            if (!t) memset(vals, 0, need * sizeof(float));
            else if ((rc = serve_stripes(s, t, OP_READ, m->keys, m->n, vals, NULL, 0))) return fn_fail(rc, "out of memory");
        } else if ((rc = serve_stripes(s, t, OP_PULL, m->keys, m->n, vals, NULL, s->clock[m->table]))) {
            return fn_fail(rc, "out of memory creating rows");
        } else if (s->conf.max_rows && total_rows(s) > s->conf.max_rows) {
            if (!s->overrun_warned++)
                log_warn("server %d: one step's new keys overran --max-rows-per-server %llu; evicting during pulls "
                         "(results then depend on the order pulls arrive in)", s->conf.rank, (unsigned long long)s->conf.max_rows);
            keep_budget(s);
        }
        /* the reply's value encoding is the one the request asks for */
        *reply = (wire_msg){.type = WIRE_PULL_REP, .enc = m->enc, .seq = m->seq, .table = m->table, .dim = m->dim, .n = m->n, .values = vals};
        s->pulls++;
        s->rows_pulled += m->n;
        return FN_OK;
    }
    case WIRE_PUSH_REQ: {
        ps_table **t = table_of(s, m->table, m->dim, 1, &rc);
        if (rc) return rc;
        push_record *pr = record_of(s, ident);
        if (pr && m->seq <= pr->seq) { /* a retry: applied already */
            s->retried_pushes++;
            if (m->seq < pr->seq) { *deferred = 1; return FN_OK; } /* older still: its answer is moot */
            *reply = (wire_msg){.type = WIRE_PUSH_REP, .seq = m->seq, .table = m->table, .n = 0, .code = pr->n};
            return FN_OK;
        }
        /* one NaN would poison a row for good: refuse the whole push */
        size_t nv = (size_t)m->n * m->dim, bad = nv ? first_not_finite(m->values, nv) : 0;
        if (bad < nv) return fn_fail(FN_EBADMSG, "gradient of key %zu is not finite", bad / m->dim);
        if ((m->code >> 16) >= 2) { /* a synchronous round of several workers */
            *deferred = 1;
            return hold_push(s, m, ident);
        }
        if ((rc = apply_push(s, m->table, t, m->keys, m->n, m->values))) return rc;
        if (pr) { pr->seq = m->seq; pr->n = m->n; }
        *reply = (wire_msg){.type = WIRE_PUSH_REP, .seq = m->seq, .table = m->table, .n = 0, .code = m->n};
        s->pushes++;
        s->rows_pushed += m->n;
        return FN_OK;
    }
    case WIRE_CTRL_REQ: {
        char *text = s->ctrl_text; /* the reply is sent before the next request is read */
        int status = 0;
        text[0] = 0;
        switch (m->code) {
        case WIRE_CTRL_PING: break;
        case WIRE_CTRL_STATS: ps_server_stats_json(s, text, sizeof s->ctrl_text); break;
        case WIRE_CTRL_EXPORT:
            if (!m->text_len) { status = FN_EINVAL; snprintf(text, sizeof s->ctrl_text, "export needs a path"); break; }
            if ((status = ps_server_export(s, m->text))) snprintf(text, sizeof s->ctrl_text, "%s", fn_err_msg());
            break;
        case WIRE_CTRL_CHECKPOINT:
        case WIRE_CTRL_RESTORE:
            if (!m->text_len) { status = FN_EINVAL; snprintf(text, sizeof s->ctrl_text, "checkpoint needs a path"); break; }
            status = m->code == WIRE_CTRL_CHECKPOINT ? ps_server_checkpoint(s, m->text) : ps_server_restore(s, m->text);
            if (status) snprintf(text, sizeof s->ctrl_text, "%s", fn_err_msg());
            break;
        case WIRE_CTRL_SHUTDOWN: s->stop = 1; break;
        default: return fn_fail(FN_EBADMSG, "unknown control operation %u", m->code);
        }
        *reply = (wire_msg){.type = WIRE_CTRL_REP, .seq = m->seq, .code = (uint32_t)status, .text = text, .text_len = (uint32_t)strlen(text)};
        return FN_OK;
    }
    default:
        return fn_fail(FN_EBADMSG, "a server does not accept messages of type %u", m->type);
    }
}

static int send_reply(ps_server *s, zmq_msg_t *ident, wire_msg *reply);

/* The round is complete: sum the workers' gradients of each key in worker
 * order, apply the optimizer once per key, answer every worker.  The sum
 * is the global batch's gradient, and its order — hence the result, to the
 * bit — does not depend on which push arrived first. */
static int apply_round(ps_server *s)
{
    const int W = s->round_w, D = s->round_dim;
    size_t total = 0;
    for (int w = 0; w < W; w++) total += s->slots[w].n;
    if (total > s->mcap) {
        uint64_t *k = realloc(s->mkeys, total * sizeof *k);
        if (k) s->mkeys = k;
        float *v = realloc(s->mvals, total * (size_t)D * sizeof *v);
        if (v) s->mvals = v;
        if (!k || !v) return fn_fail(FN_ENOMEM, "out of memory merging a round of %zu rows", total);
        s->mcap = total;
    }
    uint32_t at[1024] = {0};
    size_t nm = 0;
    for (;;) {
        uint64_t min = UINT64_MAX;
        int any = 0;
        for (int w = 0; w < W; w++)
            if (at[w] < s->slots[w].n && (!any || s->slots[w].keys[at[w]] < min)) { min = s->slots[w].keys[at[w]]; any = 1; }
        if (!any) break;
        float *dst = s->mvals + nm * (size_t)D;
        memset(dst, 0, sizeof(float) * (size_t)D);
        for (int w = 0; w < W; w++) {
            push_slot *sl = &s->slots[w];
            if (at[w] < sl->n && sl->keys[at[w]] == min) {
                const float *g = sl->vals + (size_t)at[w] * D;
                for (int d = 0; d < D; d++) dst[d] += g[d];
                at[w]++;
            }
        }
        s->mkeys[nm++] = min;
    }
    int rc = FN_OK;
    ps_table **t = table_of(s, s->round_table, (uint16_t)D, 1, &rc);
    if (!rc) rc = apply_push(s, s->round_table, t, s->mkeys, (uint32_t)nm, s->mvals);
    s->rows_pushed += nm;
    char why[512]; /* the replies point into it until sent */
    for (int w = 0; w < W; w++) {
        push_slot *sl = &s->slots[w];
        wire_msg reply = {.type = WIRE_PUSH_REP, .seq = sl->seq, .table = s->round_table, .code = sl->n};
        if (rc) {
            snprintf(why, sizeof why, "%s", fn_err_msg());
            reply = (wire_msg){.type = WIRE_ERROR_REP, .seq = sl->seq, .code = (uint32_t)rc, .text = why, .text_len = (uint32_t)strlen(why)};
        }
        push_record *pr = rc ? NULL : record_of(s, &sl->ident);
        if (pr) { pr->seq = sl->seq; pr->n = sl->n; }
        int src = send_reply(s, &sl->ident, &reply);
        zmq_msg_close(&sl->ident);
        sl->have = 0;
        if (src) return src;
    }
    s->round_have = 0;
    s->pushes++;
    return FN_OK;
}

/* Keeps worker w's push of the current round; applies the round when all
 * W workers' pushes are in.  code = W << 16 | w. */
static int hold_push(ps_server *s, const wire_msg *m, zmq_msg_t *ident)
{
    int W = (int)(m->code >> 16), w = (int)(m->code & 0xFFFF);
    if (W > 1024 || w >= W) return fn_fail(FN_EBADMSG, "push from worker %d of %d", w, W);
    if (s->round_have == 0) {
        if (W != s->round_w) {
            for (int i = 0; s->slots && i < s->round_w; i++) { free(s->slots[i].keys); free(s->slots[i].vals); }
            free(s->slots);
            s->slots = calloc((size_t)W, sizeof *s->slots);
            if (!s->slots) { s->round_w = 0; return fn_fail(FN_ENOMEM, "out of memory"); }
            s->round_w = W;
        }
        s->round_table = m->table;
        s->round_dim = m->dim;
    } else if (W != s->round_w || m->table != s->round_table || m->dim != s->round_dim) {
        return fn_fail(FN_EBADMSG, "push of worker %d/%d table %u does not belong to the open round (%d workers, table %u)", w, W, m->table,
                       s->round_w, s->round_table);
    }
    push_slot *sl = &s->slots[w];
    if (sl->have && sl->seq == m->seq) { s->retried_pushes++; return FN_OK; } /* a retry of the push held: answered with the round */
    if (sl->have) return fn_fail(FN_EBADMSG, "worker %d pushed twice in one round", w);
    if (m->n > sl->cap) {
        uint64_t *k = realloc(sl->keys, m->n * sizeof *k);
        if (k) sl->keys = k;
        float *v = realloc(sl->vals, (size_t)m->n * m->dim * sizeof *v);
        if (v) sl->vals = v;
        if (!k || !v) return fn_fail(FN_ENOMEM, "out of memory holding a push of %u rows", m->n);
        sl->cap = m->n;
    }
    if (m->n) {
        memcpy(sl->keys, m->keys, m->n * sizeof *sl->keys);
        memcpy(sl->vals, m->values, (size_t)m->n * m->dim * sizeof *sl->vals);
    }
    sl->n = m->n;
    sl->seq = m->seq;
    zmq_msg_init(&sl->ident);
    zmq_msg_copy(&sl->ident, ident);
    sl->have = 1;
    if (++s->round_have == s->round_w) return apply_round(s);
    return FN_OK;
}

static int send_reply(ps_server *s, zmq_msg_t *ident, wire_msg *reply)
{
    const uint8_t *buf;
    size_t len;
    /* fault injection (tests): lose replies of requests the workers retry */
    if (s->drop_every && (reply->type == WIRE_PULL_REP || reply->type == WIRE_PUSH_REP) && ++s->replies % s->drop_every == 0)
        return FN_OK;
    int rc = wire_encode(s->tx, reply, s->conf.lz4, &buf, &len);
    if (rc) return rc;
    if (zmq_send(s->sock, zmq_msg_data(ident), zmq_msg_size(ident), ZMQ_SNDMORE) < 0 ||
        wire_send(s->sock, s->tx, buf, len, 0) < 0) {
        /* the peer went away: ROUTER_MANDATORY reports EHOSTUNREACH; not fatal */
        log_warn("server %d: reply not delivered: %s", s->conf.rank, zmq_strerror(zmq_errno()));
        return FN_OK;
    }
    s->bytes_out += len;
    return FN_OK;
}

int ps_server_run(ps_server *s)
{
    zmq_msg_t ident, body;
    zmq_msg_init(&ident);
    zmq_msg_init(&body);
    int rc = FN_OK;
    while (!s->stop) {
        if (zmq_msg_recv(&ident, s->sock, 0) < 0) {
            if (zmq_errno() == EINTR) continue;
            rc = fn_fail(FN_EZMQ, "server %d: receive failed: %s", s->conf.rank, zmq_strerror(zmq_errno()));
            break;
        }
        int more = zmq_msg_more(&ident);
        if (!more) continue; /* a lone frame is not a request */
        if (zmq_msg_recv(&body, s->sock, 0) < 0) continue;
        while (zmq_msg_more(&body)) { /* extra frames: drain and refuse */
            zmq_msg_t extra;
            zmq_msg_init(&extra);
            zmq_msg_recv(&extra, s->sock, 0);
            more = zmq_msg_more(&extra);
            zmq_msg_close(&extra);
            if (!more) break;
        }
        s->bytes_in += zmq_msg_size(&body);
        wire_msg m, reply;
        char why[512]; /* an ERROR_REP's text points into it until sent */
        int deferred = 0;
        int drc = wire_decode(s->rx, zmq_msg_data(&body), zmq_msg_size(&body), &m);
        if (!drc) drc = handle(s, &m, &reply, &ident, &deferred);
        if (!drc && deferred) continue; /* answered when its round completes */
        if (drc) {
            s->bad_requests++;
            if (s->bad_requests <= 10) log_warn("server %d: refused a request: %s", s->conf.rank, fn_err_msg());
            wire_msg hdr = {0};
            wire_peek_header(zmq_msg_data(&body), zmq_msg_size(&body), &hdr);
            snprintf(why, sizeof why, "%s", fn_err_msg());
            reply = (wire_msg){.type = WIRE_ERROR_REP, .seq = hdr.seq, .code = (uint32_t)drc, .text = why, .text_len = (uint32_t)strlen(why)};
        }
        if ((rc = send_reply(s, &ident, &reply))) break;
    }
    zmq_msg_close(&ident);
    zmq_msg_close(&body);
    return rc;
}

/* Every row of every table after `head`: (u32 table, u64 key[, u32
 * last_step, u32 count], dim f32 weights[, state f32]) — the body of both
 * exports and checkpoints (`full`: with the bracketed parts), then `tail`. */
static int write_rows(ps_server *s, const char *path, uint32_t magic, uint32_t version, const uint8_t *head, size_t head_len,
                      int full, const uint8_t *tail, size_t tail_len)
{
    binfile_w w;
    int rc = binfile_create(&w, path, magic, version);
    if (rc) return rc;
    const int D = s->conf.dim;
    const size_t SF = full ? ps_opt_state_floats(&s->conf.opt, D) : 0, M = full ? 8 : 0;
    rc = binfile_write(&w, head, head_len);
    size_t rec = 12 + M + 4 * ((size_t)D + SF);
    uint8_t *buf = malloc(rec);
    if (!buf) rc = FN_ENOMEM;
    for (int ts = 0; ts < PS_MAX_TABLES * s->T && !rc; ts++) {
        const ps_table *tab = s->tables[ts];
        const int t = ts / s->T; /* the table id: a stripe is no part of the format */
        if (!tab) continue;
        size_t n = ps_table_rows(tab);
        for (size_t i = 0; i < n && !rc; i++) {
            uint64_t key;
            const float *wts, *state;
            ps_table_row_at(tab, i, &key, &wts, &state);
            put_le32(buf, (uint32_t)t);
            put_le64(buf + 4, key);
            if (full) {
                uint32_t last, count;
                ps_table_row_meta(tab, i, &last, &count);
                put_le32(buf + 12, last);
                put_le32(buf + 16, count);
            }
            for (int d = 0; d < D; d++) put_f32(buf + 12 + M + 4 * d, wts[d]);
            for (size_t q = 0; q < SF; q++) put_f32(buf + 12 + M + 4 * ((size_t)D + q), state[q]);
            rc = binfile_write(&w, buf, rec);
        }
    }
    free(buf);
    if (!rc && tail_len) rc = binfile_write(&w, tail, tail_len);
    if (rc) { binfile_abort(&w); return rc; }
    return binfile_commit(&w);
}

static uint64_t total_rows(const ps_server *s)
{
    uint64_t rows = 0;
    for (int t = 0; t < PS_MAX_TABLES * s->T; t++) rows += s->tables[t] ? ps_table_rows(s->tables[t]) : 0;
    return rows;
}

int ps_server_export(ps_server *s, const char *path)
{
    uint8_t head[12];
    put_le32(head, (uint32_t)s->conf.dim);
    put_le64(head + 4, total_rows(s));
    return write_rows(s, path, PS_EXPORT_MAGIC, PS_EXPORT_VERSION, head, sizeof head, 0, NULL, 0);
}

#define CKPT_HEAD (32 + PS_MAX_TABLES * 28)

int ps_server_checkpoint(ps_server *s, const char *path)
{
    uint8_t head[CKPT_HEAD];
    put_le32(head, (uint32_t)s->conf.dim);
    put_le32(head + 4, (uint32_t)ps_opt_state_floats(&s->conf.opt, s->conf.dim));
    put_le32(head + 8, (uint32_t)s->conf.opt.kind);
    put_le32(head + 12, s->step);
    put_le64(head + 16, total_rows(s));
    put_le64(head + 24, s->headroom);
    for (int t = 0; t < PS_MAX_TABLES; t++) {
        uint64_t created = 0, evicted = 0, dropped = 0;
        for (int j = 0; j < s->T; j++) {
            ps_table_stats st = {0};
            if (s->tables[t * s->T + j]) ps_table_counts(s->tables[t * s->T + j], &st);
            created += st.created;
            evicted += st.evicted;
            dropped += st.dropped;
        }
        uint8_t *h = head + 32 + 28 * t;
        put_le32(h, s->clock[t]);
        put_le64(h + 4, created);
        put_le64(h + 12, evicted);
        put_le64(h + 20, dropped);
    }
    /* the sketch goes after the rows, its length first */
    size_t sk = s->sketch ? ps_sketch_bytes(s->sketch) : 0;
    uint8_t *tail = malloc(8 + sk);
    if (!tail) return fn_fail(FN_ENOMEM, "%s: out of memory", path);
    put_le64(tail, sk);
    if (sk) memcpy(tail + 8, ps_sketch_data(s->sketch), sk);
    int rc = write_rows(s, path, PS_CKPT_MAGIC, PS_CKPT_VERSION, head, sizeof head, 1, tail, 8 + sk);
    free(tail);
    return rc;
}

int ps_server_restore(ps_server *s, const char *path)
{
    uint8_t *body;
    size_t len;
    uint32_t version;
    int rc = binfile_load(path, PS_CKPT_MAGIC, PS_CKPT_VERSION, &body, &len, &version);
    if (rc) return rc;
    if (version != PS_CKPT_VERSION) {
        free(body);
        return fn_fail(FN_EPARSE, "%s: a version %u shard (an older funnel, without eviction state); this one restores version %d", path,
                       version, PS_CKPT_VERSION);
    }
    binfile_r r = {body, len, 0, 0};
    const int D = s->conf.dim;
    const size_t SF = ps_opt_state_floats(&s->conf.opt, D);
    uint32_t dim = binfile_u32(&r), sf = binfile_u32(&r), kind = binfile_u32(&r), clock = binfile_u32(&r);
    uint64_t rows = binfile_u64(&r), headroom = binfile_u64(&r);
    uint32_t clocks[PS_MAX_TABLES];
    uint64_t counts[PS_MAX_TABLES][3];
    for (int t = 0; t < PS_MAX_TABLES; t++) {
        clocks[t] = binfile_u32(&r);
        for (int k = 0; k < 3; k++) counts[t][k] = binfile_u64(&r);
    }
    const size_t rec = 20 + 4 * ((size_t)D + SF);
    const size_t sk = s->sketch ? ps_sketch_bytes(s->sketch) : 0;
    if (r.bad || dim != (uint32_t)D || sf != SF || kind != (uint32_t)s->conf.opt.kind)
        rc = fn_fail(FN_EPARSE, "%s: written with dim %u and optimizer %u (%u state floats); this job has dim %d and %s", path, dim, kind,
                     sf, D, ps_opt_kind_name(s->conf.opt.kind));
    else if (rows > (len - r.at) / rec || len - r.at - rows * rec < 8)
        rc = fn_fail(FN_EPARSE, "%s: %llu rows do not match the file size", path, (unsigned long long)rows);
    else {
        binfile_r tr = {body, len, r.at + (size_t)rows * rec, 0};
        uint64_t have = binfile_u64(&tr);
        if (have != sk)
            rc = fn_fail(FN_EPARSE, "%s: holds an admission sketch of %llu bytes; this job's is %zu (--admit-after and "
                                    "--admit-sketch-mb must match the checkpointed run)", path, (unsigned long long)have, sk);
        else if (len - tr.at != sk)
            rc = fn_fail(FN_EPARSE, "%s: %zu bytes after the rows, expected %zu", path, len - tr.at, sk + 8);
    }
    float *w = malloc(sizeof(float) * ((size_t)D + SF + 1));
    if (!rc && !w) rc = FN_ENOMEM;
    if (!rc)
        for (int t = 0; t < PS_MAX_TABLES * s->T; t++) ps_table_destroy(&s->tables[t]);
    for (uint64_t i = 0; !rc && i < rows; i++) {
        uint32_t t = binfile_u32(&r);
        uint64_t key = binfile_u64(&r);
        uint32_t last = binfile_u32(&r), count = binfile_u32(&r);
        for (size_t k = 0; k < (size_t)D + SF; k++) w[k] = binfile_f32(&r);
        ps_table **st = table_of(s, (uint16_t)(t < PS_MAX_TABLES ? t : PS_MAX_TABLES), (uint16_t)D, 1, &rc);
        if (rc) { rc = fn_fail(FN_EPARSE, "%s: row %llu: %s", path, (unsigned long long)i, fn_err_msg()); break; }
        ps_table *tab = st[fn_key_stripe(key, (uint32_t)s->T)];
        if (ps_table_set(tab, key, w, SF ? w + D : NULL)) rc = fn_fail(FN_ENOMEM, "%s: out of memory", path);
        else ps_table_set_meta(tab, key, last, count);
    }
    if (!rc) {
        s->step = clock;
        if (s->conf.max_rows) s->headroom = headroom > s->conf.max_rows / 2 ? s->conf.max_rows / 2 : headroom;
        for (int t = 0; t < PS_MAX_TABLES; t++) {
            s->clock[t] = clocks[t];
            /* a table's counts go to its first stripe; the stripes' sum is what is reported */
            for (int j = 0; j < s->T; j++)
                if (s->tables[t * s->T + j])
                    ps_table_restore_counts(s->tables[t * s->T + j], j ? 0 : counts[t][0], j ? 0 : counts[t][1], j ? 0 : counts[t][2]);
        }
        if (sk) memcpy(ps_sketch_data(s->sketch), body + (len - sk), sk);
        s->created_mark = total_created(s);
    }
    free(w);
    free(body);
    return rc;
}

int ps_server_stats_json(ps_server *s, char *buf, size_t cap)
{
    size_t rows = 0, bytes = 0, need = 0;
    uint64_t created = 0, evicted = 0, dropped = 0, rss = 0, peak = 0;
    for (int t = 0; t < PS_MAX_TABLES * s->T; t++) {
        if (!s->tables[t]) continue;
        ps_table_stats st;
        ps_table_counts(s->tables[t], &st);
        rows += st.rows;
        bytes += st.bytes;
        created += st.created;
        evicted += st.evicted;
        dropped += st.dropped;
        need += st.rows * ps_table_row_need(s->tables[t]);
    }
    size_t sketch = s->sketch ? ps_sketch_bytes(s->sketch) : 0;
    fn_proc_memory(&rss, &peak);
    return snprintf(buf, cap,
                    "{\"rank\":%d,\"rows\":%zu,\"admitted\":%llu,\"evicted\":%llu,\"dropped_grads\":%llu,\"max_rows\":%llu,"
                    "\"table_bytes\":%zu,\"sketch_bytes\":%zu,\"resident_bytes\":%zu,\"row_need_bytes\":%zu,\"rss\":%llu,\"peak_rss\":%llu,"
                    "\"pulls\":%llu,\"pushes\":%llu,"
                    "\"rows_pulled\":%llu,\"rows_pushed\":%llu,\"retried_pushes\":%llu,\"bad_requests\":%llu,\"refused_connections\":%llu,\"bytes_in\":%llu,\"bytes_out\":%llu}",
                    s->conf.rank, rows, (unsigned long long)created, (unsigned long long)evicted, (unsigned long long)dropped,
                    (unsigned long long)s->conf.max_rows, bytes, sketch, bytes + sketch, need, (unsigned long long)rss,
                    (unsigned long long)peak, (unsigned long long)s->pulls, (unsigned long long)s->pushes,
                    (unsigned long long)s->rows_pulled, (unsigned long long)s->rows_pushed, (unsigned long long)s->retried_pushes,
                    (unsigned long long)s->bad_requests, (unsigned long long)secure_zap_denied(s->conf.zap), (unsigned long long)s->bytes_in, (unsigned long long)s->bytes_out);
}
