/* ps/server.h — a parameter server: one process's shard of every table.
 *
 * The server binds a ZeroMQ ROUTER, and answers pulls, pushes and control
 * requests from any number of workers, one message at a time in arrival
 * order (ZeroMQ's fair queueing), so no worker starves another.  A
 * malformed request gets an ERROR_REP naming the reason and changes
 * nothing.  Tables are created on first use of a table id; each has the
 * job's dim, optimizer, seed and initial range.
 *
 * Bounded tables.  Each table keeps a clock: the pushes applied to it (one
 * per training step).  With admit_after >= 2 a key gets a row only in the
 * push that brings its count in a count-min sketch (admit_sketch_bytes,
 * shared by the tables) to admit_after; until then pulls read zeros and its
 * gradients are dropped (ps/table.h).  With max_rows set, every push ends
 * with at most max_rows less a headroom rows, so the next step's new keys
 * fit under the budget: the headroom follows twice the most rows a step
 * has created (up to half the budget, at least 1/32; it shrinks by 1/64 a
 * step while steps bring fewer).  When over, rows are evicted — least
 * often used (LFU, the default), or least recently used — to a further
 * max_rows/16 below, so that an eviction's scans come every few steps
 * only.  Pulls that would create rows past max_rows evict at once (bounded
 * memory wins over determinism then, and the server says so once).  With
 * ttl_steps set, rows unseen for ttl_steps of their table's clock go,
 * checked every ttl_steps/8 steps.  Evictions and admissions happen at
 * pushes, which the
 * server applies in a fixed order, so a bounded run stays deterministic.
 *
 * Threads.  Each table is split into `threads` stripes by key
 * (fn_key_stripe), each a ps_table of its own, and a request's keys are
 * served stripe by stripe on a fixed pool of threads (common/par.h), one
 * thread a stripe: no lock, since no two threads ever touch one stripe.
 * A row's values depend on its key and the order of the pushes only, and
 * evictions pick rows by a total order on (use, key), so the stripes
 * change no result.  One thread receives, decodes, encodes and sends.
 * Small requests (under PS_STRIPE_MIN keys) are served stripe by stripe
 * on that thread, and pushes under admission key by key in the request's
 * order (the count-min sketch is shared by the stripes, and the order of
 * its counts decides admissions).
 *
 * Who calls it: launch/main.c on ranks 0..S-1 — ps_server_new() binds (the
 * endpoint is then shared over MPI), ps_server_run() serves until a
 * SHUTDOWN control request. */
#ifndef FN_PS_SERVER_H
#define FN_PS_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "optimizer.h"
#include "secure.h"
#include "table.h"

#define PS_MAX_TABLES 16
#define PS_MAX_THREADS 16
/* requests with fewer keys are served on the receiving thread alone */
#define PS_STRIPE_MIN 512

typedef struct {
    int rank;               /* server index 0..S-1 */
    const char *bind_host;  /* address to bind, e.g. "127.0.0.1" or "*" */
    const char *advertise_host; /* address workers connect to */
    int dim;
    ps_opt opt;
    uint64_t seed;
    float init_range;
    int lz4;                /* compress replies when it pays */
    const secure_keys *keys; /* CURVE keys (keys->enabled 0: plain TCP) */
    const secure_zap *zap;   /* the context's ZAP handler, for statistics (may be NULL) */
    /* bounded memory (0: off) — see "Bounded tables" above */
    uint32_t admit_after;     /* a key gets a row once pushed in this many steps */
    size_t admit_sketch_bytes; /* the count-min sketch that counts them */
    uint64_t max_rows;        /* rows over all tables of this server */
    uint32_t ttl_steps;       /* rows unseen this many steps may go */
    ps_evict_policy evict_policy; /* which rows go first past max_rows */
    int threads;              /* stripes of each table, and threads serving them (0: 1) */
} ps_server_conf;

typedef struct ps_server ps_server;

/* Binds; *endpoint (owned by the server) is what workers connect to. */
int ps_server_new(ps_server **out, void *zmq_ctx, const ps_server_conf *conf, const char **endpoint);
void ps_server_destroy(ps_server **s);

/* Serves until SHUTDOWN.  Returns FN_OK or a fatal error (socket failure). */
int ps_server_run(ps_server *s);

/* Writes every row of every table to path (format: ps_export_*). */
int ps_server_export(ps_server *s, const char *path);

/* Writes every row with its optimizer state and the server's clock to path
 * (format: PS_CKPT_*), atomically. */
int ps_server_checkpoint(ps_server *s, const char *path);

/* Replaces the tables' contents with a checkpoint shard written by
 * ps_server_checkpoint with the same dim and optimizer. */
int ps_server_restore(ps_server *s, const char *path);

/* JSON object of the server's statistics into buf. */
int ps_server_stats_json(ps_server *s, char *buf, size_t cap);

/* Exported shard files: magic "FNLE", version 1; body: u32 dim, u64 rows,
 * then rows of (u32 table, u64 key, dim f32 weights). */
#define PS_EXPORT_MAGIC 0x454C4E46u
#define PS_EXPORT_VERSION 1

/* Checkpoint shards: magic "FNLC", version 2; body: u32 dim, u32 state
 * floats per row, u32 optimizer kind, u32 server clock (pushes applied),
 * u64 rows, u64 eviction headroom; per table (PS_MAX_TABLES): u32 clock, u64 created, u64
 * evicted, u64 dropped; then rows of (u32 table, u64 key, u32 last_step,
 * u32 count, dim f32 weights, state f32); then u64 sketch bytes and the
 * admission sketch's counters. */
#define PS_CKPT_MAGIC 0x434C4E46u
#define PS_CKPT_VERSION 2

#endif
