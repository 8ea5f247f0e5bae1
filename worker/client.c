/* worker/client.c — see client.h. */
#include "client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "fn_error.h"
#include "hash.h"
#include "log.h"

/* A reply's handler: checks it and takes what it carries. */
typedef int (*reply_fn)(ps_client *c, int s, const wire_msg *m, void *ud);

/* An outstanding request: its sequence number, the request itself (to send
 * again; its keys, values and text stay put until the reply is in), the
 * reply type it wants and what to do with the reply.  A worker has at most
 * a pushed step and the next batch's pull out at a server at once. */
#define PS_MAX_OUT 4
typedef struct {
    uint64_t seq;
    wire_msg req;
    uint8_t want_type;
    reply_fn on_reply;
    void *ud;
} pending;

struct ps_client {
    int n;
    void **sock;
    char **endpoint;
    int timeout_ms;
    int lz4;
    wire_enc enc, pull_enc;
    wire_codec *tx, *rx;
    uint64_t seq;
    pending *out;            /* per server: PS_MAX_OUT outstanding requests, oldest first */
    int *n_out;              /* per server: how many */
    zmq_pollitem_t *items;
    ps_client_stats stats;
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int ps_client_open(ps_client **out, void *ctx, int n_servers, char *const *endpoints, int timeout_ms, int lz4, wire_enc enc,
                   wire_enc pull_enc, const secure_keys *keys)
{
    *out = NULL;
    ps_client *c = calloc(1, sizeof *c);
    if (!c) return FN_ENOMEM;
    c->n = n_servers;
    c->timeout_ms = timeout_ms;
    c->lz4 = lz4;
    c->enc = enc;
    c->pull_enc = pull_enc;
    c->sock = calloc((size_t)n_servers, sizeof *c->sock);
    c->endpoint = calloc((size_t)n_servers, sizeof *c->endpoint);
    c->out = calloc((size_t)n_servers * PS_MAX_OUT, sizeof *c->out);
    c->n_out = calloc((size_t)n_servers, sizeof *c->n_out);
    c->items = calloc((size_t)n_servers, sizeof *c->items);
    c->tx = wire_codec_new();
    c->rx = wire_codec_new();
    if (c->rx) wire_codec_lend(c->rx, 1);
    if (!c->sock || !c->endpoint || !c->out || !c->n_out || !c->items || !c->tx || !c->rx) { ps_client_close(&c); return FN_ENOMEM; }
    for (int s = 0; s < n_servers; s++) {
        c->endpoint[s] = strdup(endpoints[s]);
        c->sock[s] = zmq_socket(ctx, ZMQ_DEALER);
        if (!c->sock[s] || !c->endpoint[s]) { ps_client_close(&c); return fn_fail(FN_EZMQ, "cannot create socket: %s", zmq_strerror(zmq_errno())); }
        int zero = 0, hwm = 0;
        /* a routing id of our own: a reconnected socket keeps it, so the
         * server still knows which requests it has answered (retries) */
        unsigned char rid[16];
        uint64_t r1 = fn_mix64((uint64_t)now_ns() ^ ((uint64_t)getpid() << 32)), r2 = fn_mix64(r1 + (uint64_t)s + 1);
        memcpy(rid, &r1, 8);
        memcpy(rid + 8, &r2, 8);
        rid[0] |= 1; /* ZeroMQ reserves routing ids that start with a zero byte */
        zmq_setsockopt(c->sock[s], ZMQ_ROUTING_ID, rid, sizeof rid);
        zmq_setsockopt(c->sock[s], ZMQ_LINGER, &zero, sizeof zero);
        zmq_setsockopt(c->sock[s], ZMQ_SNDHWM, &hwm, sizeof hwm);
        zmq_setsockopt(c->sock[s], ZMQ_RCVHWM, &hwm, sizeof hwm);
        if (keys && secure_client_socket(c->sock[s], keys)) {
            int rc = fn_fail(FN_EZMQ, "server %d: %s", s, fn_err_msg());
            ps_client_close(&c);
            return rc;
        }
        if (zmq_connect(c->sock[s], endpoints[s])) {
            int rc = fn_fail(FN_EZMQ, "cannot connect to server %d at %s: %s", s, endpoints[s], zmq_strerror(zmq_errno()));
            ps_client_close(&c);
            return rc;
        }
        c->items[s].socket = c->sock[s];
        c->items[s].events = ZMQ_POLLIN;
    }
    *out = c;
    return FN_OK;
}

void ps_client_close(ps_client **cp)
{
    ps_client *c = *cp;
    if (!c) return;
    for (int s = 0; s < c->n; s++) {
        if (c->sock && c->sock[s]) zmq_close(c->sock[s]);
        if (c->endpoint) free(c->endpoint[s]);
    }
    free(c->sock); free(c->endpoint); free(c->out); free(c->n_out); free(c->items);
    wire_codec_destroy(&c->tx);
    wire_codec_destroy(&c->rx);
    free(c);
    *cp = NULL;
}

const ps_client_stats *ps_client_get_stats(const ps_client *c) { return &c->stats; }

/* Encodes and sends m to server s (again, for a retry: same seq). */
static int send_encoded(ps_client *c, int s, const wire_msg *m)
{
    const uint8_t *buf;
    size_t len;
    wire_msg copy = *m; /* the encoder notes its size in the message */
    int rc = wire_encode(c->tx, &copy, c->lz4, &buf, &len);
    if (rc) return rc;
    if (wire_send(c->sock[s], c->tx, buf, len, 0) < 0)
        return fn_fail(FN_EZMQ, "send to server %d at %s failed: %s", s, c->endpoint[s], zmq_strerror(zmq_errno()));
    c->stats.bytes_sent += len;
    return FN_OK;
}

static int send_msg(ps_client *c, int s, wire_msg *m, uint8_t want_type, reply_fn on_reply, void *ud)
{
    if (c->n_out[s] == PS_MAX_OUT) return fn_fail(FN_EINVAL, "over %d requests outstanding at server %d", PS_MAX_OUT, s);
    m->seq = ++c->seq;
    int rc = send_encoded(c, s, m);
    if (rc) return rc;
    c->out[(size_t)s * PS_MAX_OUT + (size_t)c->n_out[s]++] =
        (pending){.seq = m->seq, .req = *m, .want_type = want_type, .on_reply = on_reply, .ud = ud};
    c->stats.requests++;
    return FN_OK;
}

/* Receives replies, handing each to its handler, until at most `keep`
 * requests are outstanding (0: every reply).  The deadline covers the whole round.  A request not answered
 * after timeout/8 (at least 1 s) is sent again, then after twice that, and
 * so on until the deadline (at most 3 retries with the defaults): a reply
 * lost with a dropped connection costs a second, not the job.  The server
 * answers a retried push from its record without applying it twice
 * (ps/server.c); pulls and statistics are safe to repeat; checkpoint,
 * export and restore are never retried.  A reply whose sequence number is
 * not outstanding (a late duplicate) is dropped. */
static int await_replies(ps_client *c, int keep)
{
    long long start = now_ms(), deadline = start + c->timeout_ms;
    long long gap = c->timeout_ms / 8 > 1000 ? c->timeout_ms / 8 : 1000, next_retry = start + gap;
    int pending_n = 0, rc = FN_OK;
    for (int s = 0; s < c->n; s++) pending_n += c->n_out[s];
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    while (pending_n > keep) {
        long long left = deadline - now_ms();
        if (left <= 0) {
            for (int s = 0; s < c->n; s++)
                if (c->n_out[s]) {
                    rc = fn_fail(FN_EPEERLOST, "server %d at %s did not answer within %d s", s, c->endpoint[s], c->timeout_ms / 1000);
                    break;
                }
            break;
        }
        long long now = now_ms();
        if (now >= next_retry) {
            for (int s = 0; s < c->n && !rc; s++)
                for (int k = 0; k < c->n_out[s] && !rc; k++) {
                    const wire_msg *q = &c->out[(size_t)s * PS_MAX_OUT + (size_t)k].req;
                    if (q->type == WIRE_CTRL_REQ && q->code != WIRE_CTRL_PING && q->code != WIRE_CTRL_STATS) continue;
                    log_warn("no reply from server %d at %s for %lld ms: sending the request again", s, c->endpoint[s], now - start);
                    rc = send_encoded(c, s, q);
                    c->stats.retries++;
                }
            if (rc) break;
            gap *= 2;
            next_retry = now + gap;
        }
        if (left > next_retry - now) left = next_retry - now;
        for (int s = 0; s < c->n; s++) c->items[s].revents = 0;
        int ready = zmq_poll(c->items, c->n, left);
        if (ready < 0) {
            if (zmq_errno() == EINTR) continue;
            rc = fn_fail(FN_EZMQ, "poll failed: %s", zmq_strerror(zmq_errno()));
            break;
        }
        for (int s = 0; s < c->n && !rc; s++) {
            if (!(c->items[s].revents & ZMQ_POLLIN)) continue;
            if (zmq_msg_recv(&msg, c->sock[s], ZMQ_DONTWAIT) < 0) continue;
            c->stats.bytes_received += zmq_msg_size(&msg);
            wire_msg m;
            int drc = wire_decode(c->rx, zmq_msg_data(&msg), zmq_msg_size(&msg), &m);
            if (drc) { rc = fn_fail(drc, "bad reply from server %d at %s: %s", s, c->endpoint[s], fn_err_msg()); break; }
            pending *q = c->out + (size_t)s * PS_MAX_OUT;
            int k = 0;
            while (k < c->n_out[s] && q[k].seq != m.seq) k++;
            if (k == c->n_out[s]) {
                log_warn("ignoring a stale reply from server %d (seq %llu)", s, (unsigned long long)m.seq);
                continue;
            }
            pending p = q[k];
            memmove(q + k, q + k + 1, sizeof *q * (size_t)(c->n_out[s] - k - 1));
            c->n_out[s]--;
            pending_n--;
            if (m.type == WIRE_ERROR_REP) {
                rc = fn_fail(m.code ? (int)m.code : FN_EBADMSG, "server %d at %s refused the request: %s", s, c->endpoint[s], m.text ? m.text : "");
                break;
            }
            if (m.type != p.want_type) { rc = fn_fail(FN_EBADMSG, "server %d sent a reply of type %d, want %d", s, m.type, p.want_type); break; }
            rc = p.on_reply(c, s, &m, p.ud);
        }
        if (rc) break;
    }
    zmq_msg_close(&msg);
    if (rc) /* a failed round leaves nothing outstanding we still wait for */
        for (int s = 0; s < c->n; s++) c->n_out[s] = 0;
    return rc;
}

static int on_pull_reply(ps_client *c, int s, const wire_msg *m, void *ud)
{
    (void)c;
    embed_table *e = ud;
    uint32_t a = e->srv_off[s], n = e->srv_off[s + 1] - a;
    if (m->n != n || m->dim != e->dim || (!m->values && !m->values_le))
        return fn_fail(FN_EBADMSG, "server %d answered %u rows of dim %u, want %u of dim %d", s, m->n, m->dim, n, e->dim);
    const size_t D = (size_t)e->dim;
    /* fp32 rows come straight from the message (the codec lends them) */
    const uint8_t *src = m->values_le ? m->values_le : (const uint8_t *)m->values;
    for (uint32_t j = 0; j < n; j++) memcpy(e->rows + (size_t)e->srv[a + j].pos * D, src + (size_t)j * D * sizeof(float), sizeof(float) * D);
    return FN_OK;
}

int ps_client_pull_send(ps_client *c, embed_table *e, int readonly)
{
    for (int s = 0; s < c->n; s++) {
        uint32_t a = e->srv_off[s], n = e->srv_off[s + 1] - a;
        if (!n) continue;
        wire_msg m = {.type = WIRE_PULL_REQ, .enc = (uint8_t)c->pull_enc, .table = (uint16_t)e->table, .dim = (uint16_t)e->dim, .n = n,
                      .code = readonly ? 1u : 0u, .keys = e->srv_keys + a};
        int rc = send_msg(c, s, &m, WIRE_PULL_REP, on_pull_reply, e);
        if (rc) return rc;
    }
    return FN_OK;
}

int ps_client_wait(ps_client *c) { return await_replies(c, 0); }

int ps_client_wait_until(ps_client *c, int keep) { return await_replies(c, keep < 0 ? 0 : keep); }

int ps_client_pull(ps_client *c, embed_table *e, int readonly)
{
    int rc = ps_client_pull_send(c, e, readonly);
    return rc ? rc : await_replies(c, 0);
}

static int on_push_reply(ps_client *c, int s, const wire_msg *m, void *ud)
{
    (void)c;
    embed_table *e = ud;
    uint32_t n = e->srv_off[s + 1] - e->srv_off[s];
    if (m->code != n) return fn_fail(FN_EBADMSG, "server %d applied %u rows, want %u", s, m->code, n);
    return FN_OK;
}

int ps_client_push_send(ps_client *c, embed_table *e, int worker, int workers)
{
    const int D = e->dim;
    for (size_t j = 0; j < e->n_uniq; j++)
        memcpy(e->scratch + j * D, e->grads + (size_t)e->srv[j].pos * D, sizeof(float) * (size_t)D);
    for (int s = 0; s < c->n; s++) {
        uint32_t a = e->srv_off[s], n = e->srv_off[s + 1] - a;
        if (!n && workers < 2) continue;
        wire_msg m = {.type = WIRE_PUSH_REQ, .enc = (uint8_t)c->enc, .table = (uint16_t)e->table, .dim = (uint16_t)D,
                      .n = n, .code = workers >= 2 ? (uint32_t)workers << 16 | (uint32_t)worker : 0,
                      .keys = n ? e->srv_keys + a : NULL, .values = n ? e->scratch + (size_t)a * D : NULL};
        int rc = send_msg(c, s, &m, WIRE_PUSH_REP, on_push_reply, e);
        if (rc) return rc;
    }
    return FN_OK;
}

int ps_client_push(ps_client *c, embed_table *e, int worker, int workers)
{
    int rc = ps_client_push_send(c, e, worker, workers);
    return rc ? rc : await_replies(c, 0);
}

typedef struct { char *reply; size_t cap; } ctrl_ud;

static int on_ctrl_reply(ps_client *c, int s, const wire_msg *m, void *ud)
{
    (void)c;
    ctrl_ud *u = ud;
    if (u->reply && u->cap) snprintf(u->reply, u->cap, "%.*s", (int)m->text_len, m->text ? m->text : "");
    if (m->code) return fn_fail(FN_EIO, "server %d: %.*s", s, (int)m->text_len, m->text ? m->text : "");
    return FN_OK;
}

int ps_client_ctrl(ps_client *c, int server, int op, const char *arg, char *reply, size_t cap)
{
    wire_msg m = {.type = WIRE_CTRL_REQ, .code = (uint32_t)op, .text = arg, .text_len = arg ? (uint32_t)strlen(arg) : 0};
    ctrl_ud u = {reply, cap};
    int rc = send_msg(c, server, &m, WIRE_CTRL_REP, on_ctrl_reply, &u);
    return rc ? rc : await_replies(c, 0);
}
