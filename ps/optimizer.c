/* ps/optimizer.c — see optimizer.h.
 *
 * Owns the update rules only; ps/table.c owns where w and the state live.
 * Called once per pushed row on the server's hot path, so: no allocation,
 * no branches inside the loops over dim (selects only), every pointer
 * `restrict` (a row's weights, its state and the pushed gradient never
 * overlap), scalars that depend only on the step computed once per row in
 * double.
 *
 * State layout per row (floats):
 *   sgd      none
 *   adagrad  acc[dim]
 *   adam     m[dim] v[dim] t      t = this row's step count (lazy Adam: a
 *                                 row's moments and bias correction advance
 *                                 only when the row gets a gradient); exact
 *                                 as a float up to 2^24 updates of one row
 *   ftrl     z[dim] n[dim]
 *
 * Vectorisation: the loops are plain float loops the compiler can
 * vectorise, but gcc needs -fno-math-errno for any loop that calls sqrtf
 * (otherwise each sqrtf may set errno, a side effect that blocks it), and
 * gcc 12 at -O2 uses the "very cheap" cost model that refuses loops of
 * unknown trip count; both are build flags, not code. */
#include "optimizer.h"

#include <math.h>
#include <string.h>

static const char *const opt_names[] = {"sgd", "adagrad", "adam", "ftrl"};

ps_opt ps_opt_default(ps_opt_kind kind)
{
    ps_opt o;
    memset(&o, 0, sizeof o);
    o.kind = kind;
    switch (kind) {
    case PS_OPT_SGD:
        o.lr = 0.05f;
        break;
    case PS_OPT_ADAGRAD:
        o.lr = 0.05f;
        o.eps = 1e-10f;
        o.init_acc = 0.0f;
        break;
    case PS_OPT_ADAM:
        o.lr = 1e-3f;
        o.beta1 = 0.9f;
        o.beta2 = 0.999f;
        o.eps = 1e-8f;
        break;
    case PS_OPT_FTRL:
        o.lr = 0.05f;
        o.beta = 1.0f;
        break;
    }
    return o;
}

int ps_opt_kind_parse(const char *name)
{
    if (!name) return -1;
    for (int k = 0; k < (int)(sizeof opt_names / sizeof *opt_names); k++)
        if (strcmp(name, opt_names[k]) == 0) return k;
    return -1;
}

const char *ps_opt_kind_name(ps_opt_kind kind)
{
    if ((unsigned)kind < sizeof opt_names / sizeof *opt_names) return opt_names[kind];
    return "unknown";
}

size_t ps_opt_state_floats(const ps_opt *o, int dim)
{
    size_t d = (size_t)dim;
    switch (o->kind) {
    case PS_OPT_SGD: return 0;
    case PS_OPT_ADAGRAD: return d;
    case PS_OPT_ADAM: return 2 * d + 1;
    case PS_OPT_FTRL: return 2 * d;
    }
    return 0;
}

void ps_opt_init_state(const ps_opt *o, float *state, int dim)
{
    size_t n = ps_opt_state_floats(o, dim);
    if (o->kind == PS_OPT_ADAGRAD) {
        for (size_t i = 0; i < n; i++) state[i] = o->init_acc;
    } else if (n) {
        memset(state, 0, n * sizeof *state);
    }
}

/* w -= lr * (g + l2 w) */
static void opt_sgd(const ps_opt *o, float *restrict w, const float *restrict g, int dim)
{
    const float lr = o->lr, l2 = o->l2;
    for (int i = 0; i < dim; i++) w[i] -= lr * (g[i] + l2 * w[i]);
}

/* PyTorch's Adagrad (lr_decay 0): acc += g^2; w -= lr * g / (sqrt(acc) + eps) */
static void opt_adagrad(const ps_opt *o, float *restrict w, float *restrict acc,
                        const float *restrict g, int dim)
{
    const float lr = o->lr, eps = o->eps, l2 = o->l2;
    for (int i = 0; i < dim; i++) {
        float gi = g[i] + l2 * w[i];
        float a = acc[i] + gi * gi;
        acc[i] = a;
        w[i] -= lr * gi / (sqrtf(a) + eps);
    }
}

/* PyTorch's Adam (amsgrad off), written as it does:
 *   w -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps),  bc = 1 - beta^t
 * which is lr * mhat / (sqrt(vhat) + eps) with eps outside the correction. */
static void opt_adam(const ps_opt *o, float *restrict w, float *restrict state,
                     const float *restrict g, int dim)
{
    float *restrict m = state;
    float *restrict v = state + dim;
    float t = state[2 * dim] + 1.0f;
    state[2 * dim] = t;
    const double bc1 = 1.0 - pow((double)o->beta1, (double)t);
    const double bc2 = 1.0 - pow((double)o->beta2, (double)t);
    const float step = (float)((double)o->lr / bc1);
    const float inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    const float b1 = o->beta1, b2 = o->beta2, eps = o->eps, l2 = o->l2;
    const float c1 = 1.0f - b1, c2 = 1.0f - b2;
    for (int i = 0; i < dim; i++) {
        float gi = g[i] + l2 * w[i];
        float mi = b1 * m[i] + c1 * gi;
        float vi = b2 * v[i] + c2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        w[i] -= step * mi / (sqrtf(vi) * inv_sqrt_bc2 + eps);
    }
}

/* FTRL-proximal (McMahan et al. 2013, Algorithm 1), per coordinate, with w
 * the stored weight the gradient was computed at:
 *   sigma = (sqrt(n + g^2) - sqrt(n)) / alpha;  z += g - sigma w;  n += g^2
 *   w = 0 if |z| <= l1, else -(z - sign(z) l1) / ((beta + sqrt(n)) / alpha + l2)
 * A new row's z = n = 0 does not reproduce its random initial w; the first
 * update keeps it with weight |g| / (beta + |g|) (see tests). */
static void opt_ftrl(const ps_opt *o, float *restrict w, float *restrict state,
                     const float *restrict g, int dim)
{
    float *restrict z = state;
    float *restrict n = state + dim;
    const float inv_alpha = 1.0f / o->lr, beta = o->beta, l1 = o->l1, l2 = o->l2;
    for (int i = 0; i < dim; i++) {
        float gi = g[i];
        float n0 = n[i], n1 = n0 + gi * gi;
        float sqrt_n1 = sqrtf(n1);
        float sigma = (sqrt_n1 - sqrtf(n0)) * inv_alpha;
        float zi = z[i] + gi - sigma * w[i];
        z[i] = zi;
        n[i] = n1;
        float over = fabsf(zi) - l1; /* > 0: the coordinate survives l1 */
        float wi = -copysignf(over, zi) / ((beta + sqrt_n1) * inv_alpha + l2);
        w[i] = over > 0.0f ? wi : 0.0f;
    }
}

void ps_opt_apply(const ps_opt *o, float *w, float *state, const float *g, int dim)
{
    switch (o->kind) {
    case PS_OPT_SGD: opt_sgd(o, w, g, dim); return;
    case PS_OPT_ADAGRAD: opt_adagrad(o, w, state, g, dim); return;
    case PS_OPT_ADAM: opt_adam(o, w, state, g, dim); return;
    case PS_OPT_FTRL: opt_ftrl(o, w, state, g, dim); return;
    }
}
