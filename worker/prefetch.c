/* worker/prefetch.c — see prefetch.h.
 *
 * A ring of PF_SLOTS batches.  Each slot is FREE (the thread may fill it),
 * READY (filled, not yet handed out) or HELD (handed out, not released).
 * The thread fills slots in ring order; prefetch_next hands them out in the
 * same order and prefetch_release frees the oldest held one, so the
 * consumer can hold three batches (the last one, while its push is out; the
 * one in the towers; the next, whose rows are being pulled) while the
 * thread reads a fourth. */
#include "prefetch.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fn_error.h"

#define PF_SLOTS 4
enum { FREE = 0, READY, HELD };

typedef struct {
    fn_batch b;
    embed_table emb[PREFETCH_MAX_TABLES];
    uint64_t pos[2];
    double progress;
    int state;
    int rc;
    char err[512];
} slot;

struct prefetch {
    fn_reader *r;
    int max, n_tables;
    slot s[PF_SLOTS];
    int produce;            /* next slot to fill */
    int consume;            /* next slot to hand out */
    int oldest;             /* oldest held slot: the next to release */
    int n_held;
    int at_end, rewind, stop;
    int end_slot;           /* the end marker handed out (answered again until rewind), or -1 */
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
        while (!p->stop && (s->state != FREE || (p->at_end && !p->rewind))) pthread_cond_wait(&p->cv, &p->mu);
        if (p->stop) break;
        if (p->at_end) { /* rewind requested: the consumer has released every batch */
            p->at_end = 0;
            p->rewind = 0;
            pthread_mutex_unlock(&p->mu);
            int rc = reader_rewind(p->r);
            pthread_mutex_lock(&p->mu);
            if (rc) {
                s->rc = rc;
                snprintf(s->err, sizeof s->err, "%s", fn_err_msg());
                s->b.n = 0;
                s->state = READY;
                p->produce = (p->produce + 1) % PF_SLOTS;
                p->at_end = 1;
                pthread_cond_broadcast(&p->cv);
                continue;
            }
        }
        pthread_mutex_unlock(&p->mu);
        int rc = reader_next(p->r, &s->b, p->max);
        reader_tell(p->r, s->pos);
        s->progress = reader_progress(p->r);
        for (int k = 0; !rc && k < p->n_tables; k++)
            if ((rc = embed_prepare(&s->emb[k], &s->b))) fn_fail(rc, "out of memory preparing a batch's keys");
        char err[512] = "";
        if (rc) snprintf(err, sizeof err, "%s", fn_err_msg());
        pthread_mutex_lock(&p->mu);
        s->rc = rc;
        memcpy(s->err, err, sizeof err);
        if (rc || s->b.n == 0) p->at_end = 1;
        s->state = READY;
        p->produce = (p->produce + 1) % PF_SLOTS;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void free_slots(prefetch *p)
{
    for (int i = 0; i < PF_SLOTS; i++) {
        batch_free(&p->s[i].b);
        for (int k = 0; k < PREFETCH_MAX_TABLES; k++) embed_free(&p->s[i].emb[k]);
    }
}

int prefetch_start(prefetch **out, fn_reader *r, int max, const embed_table *shape, int n_tables)
{
    *out = NULL;
    if (n_tables < 0 || n_tables > PREFETCH_MAX_TABLES) return fn_fail(FN_EINVAL, "prefetch: %d embedding tables", n_tables);
    prefetch *p = calloc(1, sizeof *p);
    if (!p) return FN_ENOMEM;
    p->r = r;
    p->max = max;
    p->n_tables = n_tables;
    p->end_slot = -1;
    for (int i = 0; i < PF_SLOTS; i++) {
        int bad = batch_init(&p->s[i].b, max, (size_t)max * 64);
        for (int k = 0; !bad && k < n_tables; k++)
            bad = embed_init(&p->s[i].emb[k], shape[k].table, shape[k].n_servers, shape[k].dim, shape[k].n_fields);
        if (bad) {
            free_slots(p);
            free(p);
            return FN_ENOMEM;
        }
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (pthread_create(&p->thread, NULL, run, p)) {
        free_slots(p);
        free(p);
        return fn_fail(FN_ENOMEM, "cannot start the reading thread");
    }
    *out = p;
    return FN_OK;
}

static void hand_out(slot *s, const fn_batch **b, embed_table **emb, uint64_t pos[2])
{
    *b = &s->b;
    *emb = s->emb;
    pos[0] = s->pos[0];
    pos[1] = s->pos[1];
}

int prefetch_next(prefetch *p, const fn_batch **b, embed_table **emb, uint64_t pos[2])
{
    pthread_mutex_lock(&p->mu);
    if (p->end_slot >= 0) { /* at the end until rewound: the held end marker again */
        hand_out(&p->s[p->end_slot], b, emb, pos);
        pthread_mutex_unlock(&p->mu);
        return FN_OK;
    }
    slot *s = &p->s[p->consume];
    while (s->state != READY) pthread_cond_wait(&p->cv, &p->mu);
    s->state = HELD;
    if (p->n_held++ == 0) p->oldest = p->consume;
    int rc = s->rc;
    if (rc) fn_fail(rc, "%s", s->err);
    if (!rc && s->b.n == 0) p->end_slot = p->consume;
    p->consume = (p->consume + 1) % PF_SLOTS;
    p->progress = s->progress;
    hand_out(s, b, emb, pos);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

void prefetch_release(prefetch *p)
{
    pthread_mutex_lock(&p->mu);
    if (p->n_held > 0 && p->oldest != p->end_slot) {
        p->s[p->oldest].state = FREE;
        p->oldest = (p->oldest + 1) % PF_SLOTS;
        p->n_held--;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
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
    for (int i = 0; i < PF_SLOTS; i++)
        if (p->s[i].state == HELD) p->s[i].state = FREE;
    p->n_held = 0;
    p->end_slot = -1;
    p->rewind = 1;
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
    free_slots(p);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
    *pp = NULL;
}
