/* ps/optimizer.h — sparse optimizers, applied row by row on the servers.
 *
 * A row is `dim` weights plus ps_opt_state_floats() floats of optimizer
 * state, stored next to it by ps/table.c.  ps_opt_apply() is called once per
 * pushed (key, gradient) pair; gradients arrive already summed over a batch.
 *
 *   SGD      w -= lr * g
 *   Adagrad  a += g^2;  w -= lr * g / (sqrt(a) + eps);  a starts at init_acc
 *   Adam     lazy (per-row step count t): m = b1 m + (1-b1) g;
 *            v = b2 v + (1-b2) g^2;  w -= lr * mhat / (sqrt(vhat) + eps),
 *            mhat = m / (1 - b1^t), vhat = v / (1 - b2^t)
 *   FTRL     FTRL-proximal (McMahan et al. 2013) with alpha = lr, beta,
 *            l1, l2; state z, n
 * l2 (all but FTRL, where it is the proximal l2) adds l2 * w to g first. */
#ifndef FN_PS_OPTIMIZER_H
#define FN_PS_OPTIMIZER_H

#include <stddef.h>

typedef enum { PS_OPT_SGD = 0, PS_OPT_ADAGRAD = 1, PS_OPT_ADAM = 2, PS_OPT_FTRL = 3 } ps_opt_kind;

typedef struct {
    ps_opt_kind kind;
    float lr;
    float eps;       /* adagrad, adam */
    float init_acc;  /* adagrad: initial accumulator */
    float beta1;     /* adam */
    float beta2;     /* adam */
    float beta;      /* ftrl */
    float l1;        /* ftrl */
    float l2;
} ps_opt;

/* Defaults of each kind: sgd lr 0.05; adagrad lr 0.05 eps 1e-10 init_acc 0
 * (PyTorch's Adagrad defaults); adam lr 1e-3 b1 0.9 b2 0.999 eps 1e-8;
 * ftrl lr 0.05 beta 1 l1 0 l2 0. */
ps_opt ps_opt_default(ps_opt_kind kind);

/* Parses "sgd", "adagrad", "adam", "ftrl"; returns -1 if unknown. */
int ps_opt_kind_parse(const char *name);
const char *ps_opt_kind_name(ps_opt_kind kind);

/* Floats of state per row (adagrad: dim; adam: 2*dim + 1; ftrl: 2*dim; sgd: 0). */
size_t ps_opt_state_floats(const ps_opt *o, int dim);

/* Sets the state of a new row (adagrad: init_acc; others: 0). */
void ps_opt_init_state(const ps_opt *o, float *state, int dim);

/* One update of row w (dim floats) with gradient g. */
void ps_opt_apply(const ps_opt *o, float *w, float *state, const float *g, int dim);

#endif
