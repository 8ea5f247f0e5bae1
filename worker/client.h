/* worker/client.h — a worker's connections to the parameter servers.
 *
 * One ZeroMQ DEALER per server (the servers run ROUTERs).  A pull or push
 * of one table is a round: one request to every server that owns keys of
 * the batch, all sent before any reply is awaited, so the servers work in
 * parallel.  Every round has a deadline: a server that does not answer in
 * time is reported by rank and endpoint (FN_EPEERLOST), never waited on
 * forever; before that, an unanswered request is sent again a bounded
 * number of times (see await_replies in client.c).  Replies are checked
 * (type, sequence number, sizes); a late duplicate is dropped. */
#ifndef FN_CLIENT_H
#define FN_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "embed.h"
#include "secure.h"
#include "wire.h"

typedef struct ps_client ps_client;

typedef struct {
    uint64_t bytes_sent, bytes_received;
    uint64_t requests;
    uint64_t retries;   /* requests sent again after no reply */
} ps_client_stats;

/* endpoints[s] is server s's ZeroMQ endpoint.  timeout_ms: deadline of a
 * round.  lz4: try compressing payloads; push_enc: value encoding of
 * pushed gradients; pull_enc: the encoding asked of the servers' replies. */
int ps_client_open(ps_client **out, void *zmq_ctx, int n_servers, char *const *endpoints,
                   int timeout_ms, int lz4, wire_enc push_enc, wire_enc pull_enc, const secure_keys *keys);
void ps_client_close(ps_client **c);

/* Fills e->rows for e's unique keys.  readonly: missing keys read as zeros
 * and are not created (evaluation, prediction). */
int ps_client_pull(ps_client *c, embed_table *e, int readonly);

/* ps_client_pull without waiting, so the caller can work while the servers
 * answer: e->rows is filled by the next wait (ps_client_wait, or any
 * blocking call).  e must stay as it is until then. */
int ps_client_pull_send(ps_client *c, embed_table *e, int readonly);

/* ps_client_push without waiting: the replies are taken by the next wait
 * (ps_client_wait, or any blocking call).  e must stay
 * as it is until then (a retry sends it again).  Requests to a server are
 * answered in the order sent, so a pull sent after it reads its rows with
 * this push applied (one worker: no round holds it back). */
int ps_client_push_send(ps_client *c, embed_table *e, int worker, int workers);

/* Waits for every reply outstanding. */
int ps_client_wait(ps_client *c);

/* Waits until at most `keep` requests are outstanding.  A server answers
 * in the order sent, so with one server this takes the oldest replies:
 * a caller keeps a window of requests in flight (the server benchmark). */
int ps_client_wait_until(ps_client *c, int keep);

/* Pushes e->grads for e's unique keys.  With workers >= 2 the push is one
 * worker's part of a synchronous round: every server gets a push (empty
 * ones too) tagged with (worker, workers), and answers once all workers'
 * parts are in. */
int ps_client_push(ps_client *c, embed_table *e, int worker, int workers);

/* A control request to one server; the reply text (NUL-terminated, cut to
 * cap) goes to reply if not NULL. */
int ps_client_ctrl(ps_client *c, int server, int op, const char *arg, char *reply, size_t cap);

const ps_client_stats *ps_client_get_stats(const ps_client *c);

#endif
