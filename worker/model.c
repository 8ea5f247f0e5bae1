/* worker/model.c — see model.h. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fn_error.h"
#include "hash.h"
#include "nn.h"
#include "par.h"

const char *const MODEL_PRESETS = "cvr|ctr|shared-bottom|esmm|esmm-cvr|esmm-ns|mmoe|ple|escm2-ipw|escm2-dr";

static const struct {
    const char *name;
    model_share share;
    float w_ctr, w_cvr, w_ctcvr;
    model_cf cf;
    int n_experts, n_task_experts, n_levels;
} presets[] = {
    /* name            sharing        CTR  CVR  CTCVR  regulariser  experts: shared, per task, levels */
    {"cvr",           SHARE_EMB,     0,   1,   0,     CF_NONE,     0, 0, 1},
    {"ctr",           SHARE_EMB,     1,   0,   0,     CF_NONE,     0, 0, 1},
    {"shared-bottom", SHARE_BOTTOM,  1,   1,   0,     CF_NONE,     0, 0, 1},
    {"esmm",          SHARE_EMB,     1,   0,   1,     CF_NONE,     0, 0, 1},
    {"esmm-cvr",      SHARE_EMB,     1,   1,   1,     CF_NONE,     0, 0, 1},
    {"esmm-ns",       SHARE_NOTHING, 1,   0,   1,     CF_NONE,     0, 0, 1},
    {"mmoe",          SHARE_BOTTOM,  1,   1,   0,     CF_NONE,     4, 0, 1},
    {"ple",           SHARE_BOTTOM,  1,   1,   0,     CF_NONE,     2, 2, 2},
    {"escm2-ipw",     SHARE_EMB,     1,   0,   1,     CF_IPW,      0, 0, 1},
    {"escm2-dr",      SHARE_EMB,     1,   0,   1,     CF_DR,       0, 0, 1},
};

int model_preset(model_spec *s, const char *name)
{
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        if (strcmp(presets[i].name, name)) continue;
        snprintf(s->preset, sizeof s->preset, "%s", name);
        s->share = presets[i].share;
        s->w_ctr = presets[i].w_ctr;
        s->w_cvr = presets[i].w_cvr;
        s->w_ctcvr = presets[i].w_ctcvr;
        s->n_experts = presets[i].n_experts;
        s->n_task_experts = presets[i].n_task_experts;
        s->n_levels = presets[i].n_levels;
        s->cf = presets[i].cf;
        /* the regulariser at the weight of the other losses; the propensity
         * floor bounds its importance weights 1/q by 20 */
        s->w_cf = 1.0f;
        s->ipw_clip = 0.05f;
        return FN_OK;
    }
    return fn_fail(FN_EUSAGE, "--model must be one of %s, got '%s'", MODEL_PRESETS, name);
}

/* Parameter offsets count from wherever *at starts: 0 for the experts'
 * shared template, the block's start for everything else. */
static void layer_layout(model_layer *l, int in, int out, long *at)
{
    l->in = in;
    l->out = out;
    l->w = *at;
    *at += (long)in * out;
    l->b = *at;
    *at += out;
}

static void mlp_layout(model_mlp *mlp, int in, const int *widths, int n, int logit_out, long *at)
{
    mlp->n = 0;
    mlp->relu_last = !logit_out;
    for (int i = 0; i <= n; i++) {
        int out;
        if (i < n) out = widths[i];
        else if (logit_out) out = 1;
        else break;
        layer_layout(&mlp->l[mlp->n++], in, out, at);
        in = out;
    }
}

static int mlp_out(const model_mlp *mlp) { return mlp->l[mlp->n - 1].out; }

/* Experts numbered by group (CTR's, CVR's, shared), each level laid out as
 * its n experts back to back, then its gates. */
static void moe_layout(model *m, int in, long *at)
{
    model_moe *e = &m->moe;
    const model_spec *s = &m->spec;
    e->n_levels = s->n_levels;
    e->width = s->bottom[s->n_bottom - 1];
    e->n = 0;
    for (int g = 0; g < GROUP_COUNT; g++) {
        e->first[g] = e->n;
        e->count[g] = g == GROUP_SHARED ? s->n_experts : m->has_tower[g] ? s->n_task_experts : 0;
        for (int k = 0; k < e->count[g]; k++) e->group[e->n++] = g;
    }
    for (int g = 0; g < GROUP_COUNT; g++) {
        e->n_vis[g] = 0;
        for (int h = 0; h < GROUP_COUNT; h++)
            if (g == GROUP_SHARED || h == g || h == GROUP_SHARED)
                for (int k = 0; k < e->count[h]; k++) e->vis[g][e->n_vis[g]++] = e->first[h] + k;
    }
    for (int l = 0; l < e->n_levels; l++) {
        long rel = 0;
        mlp_layout(&e->expert[l], in, s->bottom, s->n_bottom, 0, &rel);
        e->at[l] = *at;
        e->stride[l] = rel;
        *at += rel * e->n;
        for (int g = 0; g < GROUP_COUNT; g++) {
            /* a task gates at every level; the shared gate only feeds the next
             * level's shared experts */
            e->has_gate[l][g] = g == GROUP_SHARED ? l < e->n_levels - 1 && e->count[g] > 0 : m->has_tower[g];
            if (e->has_gate[l][g]) layer_layout(&e->gate[l][g], in, e->n_vis[g], at);
        }
        in = e->width;
    }
}

int model_layout(model *m, const model_spec *spec)
{
    memset(m, 0, sizeof *m);
    m->spec = *spec;
    const model_spec *s = &m->spec;
    if ((unsigned)s->cf > (unsigned)CF_DR) return fn_fail(FN_EINVAL, "unknown counterfactual regulariser %d", (int)s->cf);
    m->cf_on = s->cf != CF_NONE && s->w_cf > 0;
    m->has_tower[TASK_CTR] = s->w_ctr > 0 || s->w_ctcvr > 0;
    m->has_tower[TASK_CVR] = s->w_cvr > 0 || s->w_ctcvr > 0 || m->cf_on;
    m->has_tower[TOWER_IMP] = m->cf_on && s->cf == CF_DR;
    if (!m->has_tower[0] && !m->has_tower[1]) return fn_fail(FN_EINVAL, "model has no loss switched on");
    if (s->n_fields < 1 || s->dim < 1) return fn_fail(FN_EINVAL, "model needs fields and a dimension");
    if (s->n_hidden < 0 || s->n_hidden > MODEL_MAX_LAYERS || s->n_bottom < 0 || s->n_bottom > MODEL_MAX_LAYERS)
        return fn_fail(FN_EINVAL, "at most %d hidden and %d bottom layers", MODEL_MAX_LAYERS, MODEL_MAX_LAYERS);
    if (m->cf_on) {
        if (s->w_cvr > 0)
            return fn_fail(FN_EINVAL, "the counterfactual CVR regulariser replaces the conditional CVR loss: its weight must be 0");
        if (!m->has_tower[TASK_CTR])
            return fn_fail(FN_EINVAL, "the counterfactual CVR regulariser needs a CTR or CTCVR loss to train its propensities");
        if (!(s->ipw_clip > 0 && s->ipw_clip <= 1)) return fn_fail(FN_EINVAL, "propensity clip must be in (0, 1], got %g", (double)s->ipw_clip);
    }
    if (s->n_experts < 0 || s->n_task_experts < 0 || s->n_experts > MODEL_MAX_EXPERTS || s->n_task_experts > MODEL_MAX_EXPERTS)
        return fn_fail(FN_EINVAL, "experts must be 0..%d per group, got %d shared and %d per task", MODEL_MAX_EXPERTS,
                       s->n_experts, s->n_task_experts);
    if (s->n_experts + s->n_task_experts > 0) {
        if (s->share != SHARE_BOTTOM) return fn_fail(FN_EINVAL, "gated experts are a shared bottom: they need bottom sharing");
        if (s->n_bottom < 1) return fn_fail(FN_EINVAL, "experts need their widths (the bottom widths)");
        if (s->n_levels < 1 || s->n_levels > MODEL_MAX_LEVELS)
            return fn_fail(FN_EINVAL, "extraction levels must be 1..%d, got %d", MODEL_MAX_LEVELS, s->n_levels);
        m->has_experts = 1;
    }
    m->has_bottom = s->share == SHARE_BOTTOM && s->n_bottom > 0 && !m->has_experts;
    int both = m->has_tower[0] && m->has_tower[1];
    m->n_tables = s->share == SHARE_NOTHING && both ? 2 : 1;
    m->tower_table[TASK_CTR] = 0;
    m->tower_table[TASK_CVR] = m->n_tables == 2 ? 1 : 0;
    m->tower_table[TOWER_IMP] = m->tower_table[TASK_CVR];
    int in = s->n_fields * s->dim;
    long at = 0;
    if (m->has_bottom) {
        mlp_layout(&m->bottom, in, s->bottom, s->n_bottom, 0, &at);
        in = mlp_out(&m->bottom);
    }
    if (m->has_experts) {
        moe_layout(m, in, &at);
        in = m->moe.width;
    }
    /* CTR, CVR, then imputation: the presets of format version 1 keep their layout */
    for (int t = 0; t < TOWER_COUNT; t++)
        if (m->has_tower[t]) mlp_layout(&m->tower[t], in, s->hidden, s->n_hidden, 1, &at);
    m->n_params = at;
    return FN_OK;
}

int model_init(model *m, const model_spec *spec)
{
    int rc = model_layout(m, spec);
    if (rc) return rc;
    m->params = calloc((size_t)m->n_params, sizeof(float));
    if (!m->params) return fn_fail(FN_ENOMEM, "out of memory for %ld dense parameters", m->n_params);
    return FN_OK;
}

void model_free(model *m)
{
    free(m->params);
    m->params = NULL;
}

static void layer_init(float *P, const model_layer *l, fn_rng *r)
{
    float a = 1.0f / sqrtf((float)l->in);
    for (long k = 0; k < (long)l->in * l->out; k++) P[l->w + k] = (float)((2 * fn_rng_uniform(r) - 1) * a);
    for (int k = 0; k < l->out; k++) P[l->b + k] = (float)((2 * fn_rng_uniform(r) - 1) * a);
}

/* P: the parameters the mlp's offsets count from */
static void mlp_init(float *P, const model_mlp *mlp, fn_rng *r)
{
    for (int i = 0; i < mlp->n; i++) layer_init(P, &mlp->l[i], r);
}

void model_init_params(model *m, uint64_t seed)
{
    fn_rng r;
    fn_rng_seed(&r, seed ^ 0xD3A5E7u);
    if (m->has_bottom) mlp_init(m->params, &m->bottom, &r);
    if (m->has_experts) {
        const model_moe *e = &m->moe;
        for (int l = 0; l < e->n_levels; l++) {
            for (int j = 0; j < e->n; j++) mlp_init(m->params + e->at[l] + j * e->stride[l], &e->expert[l], &r);
            for (int g = 0; g < GROUP_COUNT; g++)
                if (e->has_gate[l][g]) layer_init(m->params, &e->gate[l][g], &r);
        }
    }
    for (int t = 0; t < TOWER_COUNT; t++)
        if (m->has_tower[t]) mlp_init(m->params, &m->tower[t], &r);
}

int model_predicts(const model *m, int task)
{
    if (task == TASK_CTCVR) return m->has_tower[0] && m->has_tower[1];
    return m->has_tower[task];
}

int model_ws_init(model_ws *ws, const model *m, int cap)
{
    memset(ws, 0, sizeof *ws);
    ws->cap = cap;
    size_t B = (size_t)cap, in = (size_t)m->spec.n_fields * (size_t)m->spec.dim;
    int ok = 1;
#define ALLOC(p, n) do { (p) = calloc((n), sizeof(float)); ok &= (p) != NULL; } while (0)
    for (int t = 0; t < m->n_tables; t++) { ALLOC(ws->x[t], B * in); ALLOC(ws->dx[t], B * in); }
    if (m->has_bottom)
        for (int i = 0; i < m->bottom.n; i++) {
            ALLOC(ws->h_bottom[i], B * (size_t)m->bottom.l[i].out);
            ALLOC(ws->dh_bottom[i], B * (size_t)m->bottom.l[i].out);
        }
    if (m->has_experts) {
        const model_moe *e = &m->moe;
        size_t E = (size_t)e->width, nv = 1;
        for (int l = 0; l < e->n_levels; l++) {
            for (int i = 0; i < e->expert[l].n; i++) {
                ALLOC(ws->eh[l][i], (size_t)e->n * B * (size_t)e->expert[l].l[i].out);
                ALLOC(ws->edh[l][i], (size_t)e->n * B * (size_t)e->expert[l].l[i].out);
            }
            for (int g = 0; g < GROUP_COUNT; g++) {
                if (!e->has_gate[l][g]) continue;
                ALLOC(ws->gate[l][g], B * (size_t)e->n_vis[g]);
                ALLOC(ws->mix[l][g], B * E);
                ALLOC(ws->dmix[l][g], B * E);
                if ((size_t)e->n_vis[g] > nv) nv = (size_t)e->n_vis[g];
            }
        }
        ALLOC(ws->dgate, B * nv);
        ALLOC(ws->scratch, B * (in > E ? in : E));
    }
    for (int t = 0; t < TOWER_COUNT; t++) {
        if (!m->has_tower[t]) continue;
        for (int i = 0; i < m->tower[t].n; i++) {
            ALLOC(ws->h[t][i], B * (size_t)m->tower[t].l[i].out);
            ALLOC(ws->dh[t][i], B * (size_t)m->tower[t].l[i].out);
        }
        ALLOC(ws->din[t], B * (size_t)m->tower[t].l[0].in);
    }
    for (int k = 0; k < TASK_COUNT; k++) ALLOC(ws->p[k], B);
    if (m->cf_on) { ALLOC(ws->cf_q, B); ALLOC(ws->cf_e, B); ALLOC(ws->cf_ehat, B); }
#undef ALLOC
    if (!ok) { model_ws_free(ws); return FN_ENOMEM; }
    return FN_OK;
}

int model_ws_parallel(model_ws *ws, const model *m, par *pool)
{
    for (int j = 0; j < PAR_MAX; j++) { free(ws->gpriv[j]); ws->gpriv[j] = NULL; }
    ws->pool = NULL;
    for (int j = 1; j < par_threads(pool); j++)
        if (!(ws->gpriv[j] = malloc(sizeof(float) * (size_t)m->n_params))) return FN_ENOMEM;
    ws->pool = pool;
    return FN_OK;
}

void model_ws_free(model_ws *ws)
{
    for (int t = 0; t < MODEL_MAX_TABLES; t++) { free(ws->x[t]); free(ws->dx[t]); }
    for (int i = 0; i <= MODEL_MAX_LAYERS; i++) {
        free(ws->h_bottom[i]); free(ws->dh_bottom[i]);
        for (int t = 0; t < TOWER_COUNT; t++) { free(ws->h[t][i]); free(ws->dh[t][i]); }
        for (int l = 0; l < MODEL_MAX_LEVELS; l++) { free(ws->eh[l][i]); free(ws->edh[l][i]); }
    }
    for (int l = 0; l < MODEL_MAX_LEVELS; l++)
        for (int g = 0; g < GROUP_COUNT; g++) { free(ws->gate[l][g]); free(ws->mix[l][g]); free(ws->dmix[l][g]); }
    free(ws->dgate);
    free(ws->scratch);
    for (int t = 0; t < TOWER_COUNT; t++) free(ws->din[t]);
    for (int k = 0; k < TASK_COUNT; k++) free(ws->p[k]);
    free(ws->cf_q); free(ws->cf_e); free(ws->cf_ehat);
    for (int j = 0; j < PAR_MAX; j++) free(ws->gpriv[j]);
    memset(ws, 0, sizeof *ws);
}

/* h[i] = layer i of mlp over in; ReLU on every layer but a tower's last.
 * P: the parameters the mlp's offsets count from. */
static void mlp_forward_seq(const float *P, const model_mlp *mlp, const float *in, float **h, int B)
{
    for (int i = 0; i < mlp->n; i++) {
        const model_layer *l = &mlp->l[i];
        nn_dense_forward(h[i], i ? h[i - 1] : in, P + l->w, P + l->b, B, l->in, l->out);
        if (i < mlp->n - 1 || mlp->relu_last) nn_relu_forward(h[i], (long)B * l->out);
    }
}

/* dh[n-1] holds d(loss)/d(output) (already masked by the ReLU if relu_last);
 * accumulates parameter gradients into G (offsets as in P) and writes
 * d(loss)/d(in) into din. */
static void mlp_backward_seq(const float *P, float *G, const model_mlp *mlp, const float *in, float **h, float **dh,
                             float *din, int B)
{
    for (int i = mlp->n - 1; i >= 0; i--) {
        const model_layer *l = &mlp->l[i];
        float *d_in = i ? dh[i - 1] : din;
        nn_dense_backward(d_in, G + l->w, G + l->b, dh[i], i ? h[i - 1] : in, P + l->w, B, l->in, l->out);
        if (i) nn_relu_backward(dh[i - 1], h[i - 1], (long)B * l->in);
    }
}

static void add_into(float *dst, const float *src, long n)
{
    for (long k = 0; k < n; k++) dst[k] += src[k];
}

/* ---- an MLP's rows split among the pool's threads ------------------------ */

/* Below this many rows a thread, one thread does the whole MLP. */
#define PAR_MIN_ROWS 64

typedef struct {
    const model_ws *ws;
    const float *P;
    float *G;
    const model_mlp *mlp;
    const float *in;
    float **h, **dh;
    float *din;
    int B;
} mlp_job;

static void shift_rows(const model_mlp *mlp, float *const *src, float **dst, int lo)
{
    for (int i = 0; i < mlp->n; i++) dst[i] = src[i] + (size_t)lo * (size_t)mlp->l[i].out;
}

/* An MLP's parameters, weights and biases of all its layers, are one block. */
static long mlp_first(const model_mlp *mlp) { return mlp->l[0].w; }
static long mlp_len(const model_mlp *mlp) { return mlp->l[mlp->n - 1].b + mlp->l[mlp->n - 1].out - mlp->l[0].w; }

static void forward_rows(void *arg, int j, int n)
{
    const mlp_job *q = arg;
    int lo, hi;
    par_rows(q->B, j, n, &lo, &hi);
    if (hi <= lo) return;
    float *h[MODEL_MAX_LAYERS + 1];
    shift_rows(q->mlp, q->h, h, lo);
    mlp_forward_seq(q->P, q->mlp, q->in + (size_t)lo * (size_t)q->mlp->l[0].in, h, hi - lo);
}

static void backward_rows(void *arg, int j, int n)
{
    const mlp_job *q = arg;
    float *G = q->G;
    if (j) { /* this thread's own gradient block, zero over the MLP's parameters */
        G = q->ws->gpriv[j] + (q->G - q->ws->grads_base);
        memset(G + mlp_first(q->mlp), 0, sizeof(float) * (size_t)mlp_len(q->mlp));
    }
    int lo, hi;
    par_rows(q->B, j, n, &lo, &hi);
    if (hi <= lo) return;
    float *h[MODEL_MAX_LAYERS + 1], *dh[MODEL_MAX_LAYERS + 1];
    shift_rows(q->mlp, q->h, h, lo);
    shift_rows(q->mlp, q->dh, dh, lo);
    size_t in = (size_t)q->mlp->l[0].in;
    mlp_backward_seq(q->P, G, q->mlp, q->in + (size_t)lo * in, h, dh, q->din ? q->din + (size_t)lo * in : NULL, hi - lo);
}

static int threads_for(const model_ws *ws, int B)
{
    int n = par_threads(ws->pool);
    if (n > 1 && B / n < PAR_MIN_ROWS) n = B / PAR_MIN_ROWS > 1 ? B / PAR_MIN_ROWS : 1;
    return n;
}

static void mlp_forward(const model_ws *ws, const float *P, const model_mlp *mlp, const float *in, float **h, int B)
{
    if (threads_for(ws, B) == 1) { mlp_forward_seq(P, mlp, in, h, B); return; }
    mlp_job q = {.ws = ws, .P = P, .mlp = mlp, .in = in, .h = h, .B = B};
    par_run(ws->pool, forward_rows, &q);
}

/* As mlp_backward_seq; G lies inside ws->grads_base's block. */
static void mlp_backward(const model_ws *ws, const float *P, float *G, const model_mlp *mlp, const float *in, float **h,
                         float **dh, float *din, int B)
{
    if (threads_for(ws, B) == 1) { mlp_backward_seq(P, G, mlp, in, h, dh, din, B); return; }
    mlp_job q = {.ws = ws, .P = P, .G = G, .mlp = mlp, .in = in, .h = h, .dh = dh, .din = din, .B = B};
    par_run(ws->pool, backward_rows, &q);
    const long first = mlp_first(mlp), len = mlp_len(mlp), off = G - ws->grads_base;
    for (int j = 1; j < par_threads(ws->pool); j++) add_into(G + first, ws->gpriv[j] + off + first, len);
}

/* z[B, n] := softmax of each row, in place */
static void softmax_rows(float *z, int B, int n)
{
    for (int i = 0; i < B; i++) {
        float *r = z + (long)i * n, mx = r[0], sum = 0;
        for (int k = 1; k < n; k++) mx = r[k] > mx ? r[k] : mx;
        for (int k = 0; k < n; k++) { r[k] = expf(r[k] - mx); sum += r[k]; }
        for (int k = 0; k < n; k++) r[k] /= sum;
    }
}

/* What group g's experts and gate read at level l: x, or the group's
 * previous-level output. */
static const float *moe_in(const model_ws *ws, int l, int g) { return l ? ws->mix[l - 1][g] : ws->x[0]; }
static float *moe_din(model_ws *ws, int l, int g) { return l ? ws->dmix[l - 1][g] : ws->dx[0]; }

/* Expert j's activations inside a level's buffers: [B, width] blocks, j-th. */
static void expert_rows(const model_mlp *x, float *const *base, int j, int B, float **h)
{
    for (int i = 0; i < x->n; i++) h[i] = base[i] + (size_t)j * (size_t)B * (size_t)x->l[i].out;
}

static void moe_forward(const model *m, model_ws *ws, int B)
{
    const model_moe *e = &m->moe;
    const int E = e->width;
    for (int l = 0; l < e->n_levels; l++) {
        const model_mlp *x = &e->expert[l];
        for (int j = 0; j < e->n; j++) {
            float *h[MODEL_MAX_LAYERS + 1];
            expert_rows(x, ws->eh[l], j, B, h);
            mlp_forward(ws, m->params + e->at[l] + j * e->stride[l], x, moe_in(ws, l, e->group[j]), h, B);
        }
        const float *eo = ws->eh[l][x->n - 1];  /* [n, B, E] the experts' outputs */
        for (int g = 0; g < GROUP_COUNT; g++) {
            if (!e->has_gate[l][g]) continue;
            const model_layer *gl = &e->gate[l][g];
            const int nv = e->n_vis[g];
            float *P = ws->gate[l][g], *out = ws->mix[l][g];
            /* P[B, nv] = softmax(in · Wgᵀ + bg) */
            nn_dense_forward(P, moe_in(ws, l, g), m->params + gl->w, m->params + gl->b, B, gl->in, nv);
            softmax_rows(P, B, nv);
            /* out[B, E] = Σ_k P[:, k] · expert_vis[k] */
            memset(out, 0, sizeof(float) * (size_t)B * (size_t)E);
            for (int k = 0; k < nv; k++) {
                const float *ek = eo + (size_t)e->vis[g][k] * (size_t)B * (size_t)E;
                for (int i = 0; i < B; i++) {
                    const float p = P[(long)i * nv + k], *src = ek + (long)i * E;
                    float *dst = out + (long)i * E;
                    for (int c = 0; c < E; c++) dst[c] += p * src[c];
                }
            }
        }
    }
}

/* ws->din of the towers back through the levels into ws->dx[0]. */
static void moe_backward(const model *m, model_ws *ws, float *grads, int B)
{
    const model_moe *e = &m->moe;
    const int E = e->width, L = e->n_levels;
    const long nE = (long)B * E;
    for (int t = 0; t < 2; t++) {
        if (!e->has_gate[L - 1][t]) continue;
        memcpy(ws->dmix[L - 1][t], ws->din[t], sizeof(float) * (size_t)nE);
        if (t == TASK_CVR && m->has_tower[TOWER_IMP]) add_into(ws->dmix[L - 1][t], ws->din[TOWER_IMP], nE);
    }
    for (int l = L - 1; l >= 0; l--) {
        const model_mlp *x = &e->expert[l];
        const int last = x->n - 1, Ni = x->l[0].in;
        const long nIn = (long)B * Ni;
        /* summed below: this level's input gradients, its experts' output gradients */
        if (l == 0) memset(ws->dx[0], 0, sizeof(float) * (size_t)nIn);
        else
            for (int g = 0; g < GROUP_COUNT; g++)
                if (e->has_gate[l - 1][g]) memset(ws->dmix[l - 1][g], 0, sizeof(float) * (size_t)nIn);
        memset(ws->edh[l][last], 0, sizeof(float) * (size_t)e->n * (size_t)nE);
        const float *eo = ws->eh[l][last];
        float *deo = ws->edh[l][last];
        for (int g = 0; g < GROUP_COUNT; g++) {
            if (!e->has_gate[l][g]) continue;
            const model_layer *gl = &e->gate[l][g];
            const int nv = e->n_vis[g];
            const float *P = ws->gate[l][g], *dout = ws->dmix[l][g];
            float *dlogit = ws->dgate;  /* [B, nv] */
            for (int i = 0; i < B; i++) {
                const float *d = dout + (long)i * E, *p = P + (long)i * nv;
                float *dl = dlogit + (long)i * nv, s = 0;
                for (int k = 0; k < nv; k++) {
                    /* out = Σ_k p_k e_k:  d p_k = <d out, e_k>,  d e_k += p_k · d out */
                    size_t off = (size_t)e->vis[g][k] * (size_t)nE + (size_t)i * (size_t)E;
                    const float *ek = eo + off;
                    float *dek = deo + off, dot = 0;
                    for (int c = 0; c < E; c++) { dot += d[c] * ek[c]; dek[c] += p[k] * d[c]; }
                    dl[k] = dot;
                    s += p[k] * dot;
                }
                /* softmax: d z_k = p_k (d p_k − Σ_j p_j d p_j) */
                for (int k = 0; k < nv; k++) dl[k] = p[k] * (dl[k] - s);
            }
            nn_dense_backward(ws->scratch, grads + gl->w, grads + gl->b, dlogit, moe_in(ws, l, g), m->params + gl->w, B, Ni, nv);
            add_into(moe_din(ws, l, g), ws->scratch, nIn);
        }
        for (int j = 0; j < e->n; j++) {
            float *h[MODEL_MAX_LAYERS + 1], *dh[MODEL_MAX_LAYERS + 1];
            expert_rows(x, ws->eh[l], j, B, h);
            expert_rows(x, ws->edh[l], j, B, dh);
            nn_relu_backward(dh[last], h[last], nE);
            long off = e->at[l] + j * e->stride[l];
            mlp_backward(ws, m->params + off, grads + off, x, moe_in(ws, l, e->group[j]), h, dh, ws->scratch, B);
            add_into(moe_din(ws, l, e->group[j]), ws->scratch, nIn);
        }
    }
}

/* The imputation tower reads what the CVR tower reads. */
static const float *tower_input(const model *m, const model_ws *ws, int t)
{
    if (t == TOWER_IMP) t = TASK_CVR;
    if (m->has_experts) return ws->mix[m->moe.n_levels - 1][t];
    if (m->has_bottom) return ws->h_bottom[m->bottom.n - 1];
    return ws->x[m->tower_table[t]];
}

void model_forward(const model *m, model_ws *ws, int B)
{
    if (m->has_bottom) mlp_forward(ws, m->params, &m->bottom, ws->x[0], ws->h_bottom, B);
    if (m->has_experts) moe_forward(m, ws, B);
    for (int t = 0; t < TOWER_COUNT; t++) {
        if (!m->has_tower[t]) continue;
        mlp_forward(ws, m->params, &m->tower[t], tower_input(m, ws, t), ws->h[t], B);
        if (t == TOWER_IMP) continue;  /* its output is ê itself, not a probability */
        const float *z = ws->h[t][m->tower[t].n - 1];
        for (int i = 0; i < B; i++) ws->p[t][i] = nn_sigmoid(z[i]);
    }
    if (model_predicts(m, TASK_CTCVR))
        for (int i = 0; i < B; i++) ws->p[TASK_CTCVR][i] = ws->p[TASK_CTR][i] * ws->p[TASK_CVR][i];
}

/* log loss of logit z against y, computed stably */
static double bce_logit(float z, float y) { return fmax(z, 0) - (double)z * y + log1p(exp(-fabs((double)z))); }

/* ESCM²'s counterfactual CVR risk (model.h): *risk = L_ipw or L_dr, its
 * gradient into dz[CVR], and for DR L_imp's into dz[IMP].  Returns L_imp
 * (0 for IPW).  The propensity q, and e in L_imp, ê in L_dr, are constants:
 * kept in ws (or reused from it when ws->cf_hold). */
static double cf_backward(const model *m, model_ws *ws, int B, const float *click, const float *buy, float scale,
                          float *const *dz, double *risk)
{
    const model_spec *s = &m->spec;
    const float *zv = ws->h[TASK_CVR][m->tower[TASK_CVR].n - 1];
    const float *ehat = m->has_tower[TOWER_IMP] ? ws->h[TOWER_IMP][m->tower[TOWER_IMP].n - 1] : NULL;
    if (!ws->cf_hold)
        for (int i = 0; i < B; i++) {
            float q = ws->p[TASK_CTR][i];
            ws->cf_q[i] = q < s->ipw_clip ? s->ipw_clip : q;
            ws->cf_e[i] = (float)bce_logit(zv[i], buy[i]);
            ws->cf_ehat[i] = ehat ? ehat[i] : 0;
        }
    const float c = s->w_cf * scale / (float)B;
    double r = 0, imp = 0;
    for (int i = 0; i < B; i++) {
        const float q = ws->cf_q[i];
        r += ws->cf_ehat[i];  /* 0 for IPW */
        if (click[i] <= 0) continue;
        double e = bce_logit(zv[i], buy[i]);
        r += (e - ws->cf_ehat[i]) / q;
        /* d e / d z_cvr = pCVR − buy */
        dz[TASK_CVR][i] += c / q * (ws->p[TASK_CVR][i] - buy[i]);
        if (ehat) {
            float d = ws->cf_e[i] - ehat[i];
            imp += (double)d * d / q;
            dz[TOWER_IMP][i] += -2.0f * c * d / q;
        }
    }
    *risk = r / B;
    return imp / B;
}

double model_backward(const model *m, model_ws *ws, int B, const float *click, const float *buy,
                      float scale, float *grads, double loss[TASK_COUNT], int counts[TASK_COUNT])
{
    const model_spec *s = &m->spec;
    ws->grads_base = grads;
    float *dz[TOWER_COUNT] = {NULL, NULL, NULL};
    for (int t = 0; t < TOWER_COUNT; t++)
        if (m->has_tower[t]) {
            dz[t] = ws->dh[t][m->tower[t].n - 1];
            memset(dz[t], 0, sizeof(float) * (size_t)B);
        }
    for (int k = 0; k < TASK_COUNT; k++) { loss[k] = 0; counts[k] = 0; }
    int n_clk = 0;
    for (int i = 0; i < B; i++) n_clk += click[i] > 0;

    if (m->has_tower[TASK_CTR]) {
        const float *z = ws->h[TASK_CTR][m->tower[TASK_CTR].n - 1];
        for (int i = 0; i < B; i++) loss[TASK_CTR] += bce_logit(z[i], click[i]);
        loss[TASK_CTR] /= B;
        counts[TASK_CTR] = B;
        if (s->w_ctr > 0) {
            float c = s->w_ctr * scale / (float)B;
            for (int i = 0; i < B; i++) dz[TASK_CTR][i] += c * (ws->p[TASK_CTR][i] - click[i]);
        }
    }
    double l_imp = 0;  /* in the total, in no slot */
    if (m->cf_on) {
        l_imp = cf_backward(m, ws, B, click, buy, scale, dz, &loss[TASK_CVR]);
        counts[TASK_CVR] = B;
    } else if (m->has_tower[TASK_CVR] && n_clk > 0) {
        const float *z = ws->h[TASK_CVR][m->tower[TASK_CVR].n - 1];
        for (int i = 0; i < B; i++)
            if (click[i] > 0) loss[TASK_CVR] += bce_logit(z[i], buy[i]);
        loss[TASK_CVR] /= n_clk;
        counts[TASK_CVR] = n_clk;
        if (s->w_cvr > 0) {
            float c = s->w_cvr * scale / (float)n_clk;
            for (int i = 0; i < B; i++)
                if (click[i] > 0) dz[TASK_CVR][i] += c * (ws->p[TASK_CVR][i] - buy[i]);
        }
    }
    if (model_predicts(m, TASK_CTCVR)) {
        const float lo = 1e-7f, hi = 1 - 1e-7f;
        float c = s->w_ctcvr * scale / (float)B;
        for (int i = 0; i < B; i++) {
            float pc = ws->p[TASK_CTR][i], pv = ws->p[TASK_CVR][i], p = pc * pv, y = click[i] * buy[i];
            float pp = p < lo ? lo : p > hi ? hi : p;
            loss[TASK_CTCVR] -= y > 0 ? log((double)pp) : log1p(-(double)pp);
            if (s->w_ctcvr > 0 && p == pp) {
                /* dL/dp = (p-y)/(p(1-p)); dp/dz_ctr = p(1-pc); dp/dz_cvr = p(1-pv) */
                float g = c * (p - y) / (1 - p);
                dz[TASK_CTR][i] += g * (1 - pc);
                dz[TASK_CVR][i] += g * (1 - pv);
            }
        }
        loss[TASK_CTCVR] /= B;
        counts[TASK_CTCVR] = B;
    }

    /* back through the towers into their inputs */
    for (int t = 0; t < TOWER_COUNT; t++)
        if (m->has_tower[t])
            mlp_backward(ws, m->params, grads, &m->tower[t], tower_input(m, ws, t), ws->h[t], ws->dh[t], ws->din[t], B);

    if (m->has_experts) {
        moe_backward(m, ws, grads, B);
    } else if (m->has_bottom) {
        long n = (long)B * m->bottom.l[m->bottom.n - 1].out;
        float *d = ws->dh_bottom[m->bottom.n - 1];
        memset(d, 0, sizeof(float) * (size_t)n);
        for (int t = 0; t < TOWER_COUNT; t++)
            if (m->has_tower[t]) add_into(d, ws->din[t], n);
        nn_relu_backward(d, ws->h_bottom[m->bottom.n - 1], n);
        mlp_backward(ws, m->params, grads, &m->bottom, ws->x[0], ws->h_bottom, ws->dh_bottom, ws->dx[0], B);
    } else {
        long n = (long)B * s->n_fields * s->dim;
        for (int k = 0; k < m->n_tables; k++) memset(ws->dx[k], 0, sizeof(float) * (size_t)n);
        for (int t = 0; t < TOWER_COUNT; t++)
            if (m->has_tower[t]) add_into(ws->dx[m->tower_table[t]], ws->din[t], n);
    }
    double w_cvr_slot = m->cf_on ? s->w_cf : s->w_cvr;
    return s->w_ctr * loss[TASK_CTR] + w_cvr_slot * loss[TASK_CVR] + s->w_ctcvr * loss[TASK_CTCVR] +
           (m->cf_on ? s->w_cf * l_imp : 0);
}
