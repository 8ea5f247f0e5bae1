/* common/par.h — a small fixed pool of threads (towers, server stripes).
 *
 * par_run(p, fn, arg) calls fn(arg, j, n) for j = 0 .. n-1 at once, j = 0
 * on the calling thread, and returns when every call has returned.
 *
 * The towers use it to split a batch's rows among the threads: each runs
 * its rows' products on its own core (OpenBLAS is then asked for one thread
 * per call, which on these shapes beats OpenBLAS's own splitting: 1.8–1.9x
 * vs 1.4x on 2 cores).  A server uses it to serve a request's keys stripe
 * by stripe, each stripe's rows owned by one thread (ps/server.c).  Idle
 * threads sleep on a condition variable; they never spin against the other
 * processes sharing the cores (waking one costs 30–100 µs in this VM). */
#ifndef FN_PAR_H
#define FN_PAR_H

#define PAR_MAX 64

typedef struct par par;
typedef void (*par_fn)(void *arg, int j, int n);

/* n threads in all, the caller included (1: par_run calls fn inline).
 * FN_OK, FN_EINVAL (n outside 1..PAR_MAX), FN_ENOMEM. */
int par_open(par **out, int n);
void par_close(par **p);
/* 1 for a NULL pool */
int par_threads(const par *p);
void par_run(par *p, par_fn fn, void *arg);

/* the rows [lo, hi) of B that thread j of n takes */
static inline void par_rows(int B, int j, int n, int *lo, int *hi)
{
    *lo = (int)((long)B * j / n);
    *hi = (int)((long)B * (j + 1) / n);
}

#endif
