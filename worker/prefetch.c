/* worker/prefetch.c — see prefetch.h. */
#include "prefetch.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fn_error.h"

typedef struct {
    fn_batch b;
    uint64_t pos[2];
    double progress;
    int ready;
    int rc;
    char err[512];
} slot;

struct prefetch {
    fn_reader *r;
    int max;
    slot s[2];
    int produce, consume;   /* next slot to fill / to hand out */
    int held;               /* slot handed out and not yet released, or -1 */
    int at_end, rewind, stop;
    int end_taken;          /* the consumer has the end marker: answer empty until rewind */
    double progress;        /* of the batch handed out last */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
};

static void *run(void *arg)
{
    prefetch *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        slot *s = &p->s[p->produce];
        while (!p->stop && (s->ready || p->held == p->produce || (p->at_end && !p->rewind))) pthread_cond_wait(&p->cv, &p->mu);
        if (p->stop) break;
        if (p->at_end) { /* rewind requested: the consumer has taken the end marker */
            p->at_end = 0;
            p->rewind = 0;
            pthread_mutex_unlock(&p->mu);
            int rc = reader_rewind(p->r);
            pthread_mutex_lock(&p->mu);
            if (rc) {
                s->rc = rc;
                snprintf(s->err, sizeof s->err, "%s", fn_err_msg());
                s->b.n = 0;
                s->ready = 1;
                p->at_end = 1;
                pthread_cond_broadcast(&p->cv);
                continue;
            }
        }
        pthread_mutex_unlock(&p->mu);
        int rc = reader_next(p->r, &s->b, p->max);
        reader_tell(p->r, s->pos);
        s->progress = reader_progress(p->r);
        char err[512] = "";
        if (rc) snprintf(err, sizeof err, "%s", fn_err_msg());
        pthread_mutex_lock(&p->mu);
        s->rc = rc;
        memcpy(s->err, err, sizeof err);
        if (rc || s->b.n == 0) p->at_end = 1;
        s->ready = 1;
        p->produce ^= 1;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int prefetch_start(prefetch **out, fn_reader *r, int max)
{
    *out = NULL;
    prefetch *p = calloc(1, sizeof *p);
    if (!p) return FN_ENOMEM;
    p->r = r;
    p->max = max;
    p->held = -1;
    for (int i = 0; i < 2; i++)
        if (batch_init(&p->s[i].b, max, (size_t)max * 64)) {
            batch_free(&p->s[0].b);
            free(p);
            return FN_ENOMEM;
        }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (pthread_create(&p->thread, NULL, run, p)) {
        for (int i = 0; i < 2; i++) batch_free(&p->s[i].b);
        free(p);
        return fn_fail(FN_ENOMEM, "cannot start the reading thread");
    }
    *out = p;
    return FN_OK;
}

int prefetch_next(prefetch *p, const fn_batch **b, uint64_t pos[2])
{
    pthread_mutex_lock(&p->mu);
    if (p->end_taken) { /* at the end until rewound: the held end marker again */
        slot *e = &p->s[p->held];
        *b = &e->b;
        pos[0] = e->pos[0];
        pos[1] = e->pos[1];
        pthread_mutex_unlock(&p->mu);
        return FN_OK;
    }
    if (p->held >= 0) { /* release the previous batch */
        p->s[p->held].ready = 0;
        p->held = -1;
        pthread_cond_broadcast(&p->cv);
    }
    slot *s = &p->s[p->consume];
    while (!s->ready) pthread_cond_wait(&p->cv, &p->mu);
    p->held = p->consume;
    p->consume ^= 1;
    p->progress = s->progress;
    int rc = s->rc;
    if (rc) fn_fail(rc, "%s", s->err);
    if (!rc && s->b.n == 0) p->end_taken = 1;
    *b = &s->b;
    pos[0] = s->pos[0];
    pos[1] = s->pos[1];
    pthread_mutex_unlock(&p->mu);
    return rc;
}

double prefetch_progress(prefetch *p)
{
    pthread_mutex_lock(&p->mu);
    double v = p->progress;
    pthread_mutex_unlock(&p->mu);
    return v;
}

int prefetch_rewind(prefetch *p)
{
    pthread_mutex_lock(&p->mu);
    if (p->held >= 0) {
        p->s[p->held].ready = 0;
        p->held = -1;
    }
    p->rewind = 1;
    p->end_taken = 0;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return FN_OK;
}

void prefetch_stop(prefetch **pp)
{
    prefetch *p = *pp;
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    for (int i = 0; i < 2; i++) batch_free(&p->s[i].b);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
    *pp = NULL;
}
