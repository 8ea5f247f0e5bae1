/* common/par.c — see par.h. */
#include "par.h"

#include <pthread.h>
#include <stdlib.h>

#include "fn_error.h"

struct par {
    int n;
    pthread_t th[PAR_MAX];
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    unsigned long gen;   /* bumped for each par_run */
    int pending;         /* helpers still running this generation */
    int stop;
    par_fn fn;
    void *arg;
};

typedef struct {
    par *p;
    int j;
} helper_arg;

static void *helper(void *a)
{
    par *p = ((helper_arg *)a)->p;
    int j = ((helper_arg *)a)->j;
    free(a);
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->gen == seen) pthread_cond_wait(&p->go, &p->mu);
        if (p->stop) break;
        seen = p->gen;
        par_fn fn = p->fn;
        void *arg = p->arg;
        pthread_mutex_unlock(&p->mu);
        fn(arg, j, p->n);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int par_open(par **out, int n)
{
    *out = NULL;
    if (n < 1 || n > PAR_MAX) return fn_fail(FN_EINVAL, "thread count %d outside 1..%d", n, PAR_MAX);
    par *p = calloc(1, sizeof *p);
    if (!p) return FN_ENOMEM;
    p->n = 1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    for (int j = 1; j < n; j++) {
        helper_arg *a = malloc(sizeof *a);
        if (!a) { par_close(&p); return FN_ENOMEM; }
        a->p = p;
        a->j = j;
        if (pthread_create(&p->th[j], NULL, helper, a)) {
            free(a);
            par_close(&p);
            return fn_fail(FN_ENOMEM, "cannot start pool thread %d of %d", j + 1, n);
        }
        p->n = j + 1;
    }
    *out = p;
    return FN_OK;
}

void par_close(par **pp)
{
    par *p = *pp;
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int j = 1; j < p->n; j++) pthread_join(p->th[j], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    free(p);
    *pp = NULL;
}

int par_threads(const par *p) { return p ? p->n : 1; }

void par_run(par *p, par_fn fn, void *arg)
{
    if (!p || p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->pending = p->n - 1;
    p->gen++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    fn(arg, 0, p->n);
    pthread_mutex_lock(&p->mu);
    while (p->pending) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
