/* worker/model.c — see model.h. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fn_error.h"
#include "hash.h"
#include "nn.h"

const char *const MODEL_PRESETS = "cvr|ctr|shared-bottom|esmm|esmm-cvr|esmm-ns";

static const struct {
    const char *name;
    model_share share;
    float w_ctr, w_cvr, w_ctcvr;
} presets[] = {
    /* name            sharing        CTR  CVR  CTCVR */
    {"cvr",           SHARE_EMB,     0,   1,   0},
    {"ctr",           SHARE_EMB,     1,   0,   0},
    {"shared-bottom", SHARE_BOTTOM,  1,   1,   0},
    {"esmm",          SHARE_EMB,     1,   0,   1},
    {"esmm-cvr",      SHARE_EMB,     1,   1,   1},
    {"esmm-ns",       SHARE_NOTHING, 1,   0,   1},
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
        return FN_OK;
    }
    return fn_fail(FN_EUSAGE, "--model must be one of %s, got '%s'", MODEL_PRESETS, name);
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
        model_layer *l = &mlp->l[mlp->n++];
        l->in = in;
        l->out = out;
        l->w = *at;
        *at += (long)in * out;
        l->b = *at;
        *at += out;
        in = out;
    }
}

static int mlp_out(const model_mlp *mlp) { return mlp->l[mlp->n - 1].out; }

int model_init(model *m, const model_spec *spec)
{
    memset(m, 0, sizeof *m);
    m->spec = *spec;
    m->has_tower[TASK_CTR] = spec->w_ctr > 0 || spec->w_ctcvr > 0;
    m->has_tower[TASK_CVR] = spec->w_cvr > 0 || spec->w_ctcvr > 0;
    if (!m->has_tower[0] && !m->has_tower[1]) return fn_fail(FN_EINVAL, "model has no loss switched on");
    if (spec->n_fields < 1 || spec->dim < 1) return fn_fail(FN_EINVAL, "model needs fields and a dimension");
    m->has_bottom = spec->share == SHARE_BOTTOM && spec->n_bottom > 0;
    int both = m->has_tower[0] && m->has_tower[1];
    m->n_tables = spec->share == SHARE_NOTHING && both ? 2 : 1;
    m->tower_table[TASK_CTR] = 0;
    m->tower_table[TASK_CVR] = m->n_tables == 2 ? 1 : 0;
    int in = spec->n_fields * spec->dim;
    long at = 0;
    if (m->has_bottom) {
        mlp_layout(&m->bottom, in, spec->bottom, spec->n_bottom, 0, &at);
        in = mlp_out(&m->bottom);
    }
    for (int t = 0; t < 2; t++)
        if (m->has_tower[t]) mlp_layout(&m->tower[t], in, spec->hidden, spec->n_hidden, 1, &at);
    m->n_params = at;
    m->params = calloc((size_t)at, sizeof(float));
    if (!m->params) return FN_ENOMEM;
    return FN_OK;
}

void model_free(model *m)
{
    free(m->params);
    m->params = NULL;
}

static void mlp_init(model *m, const model_mlp *mlp, fn_rng *r)
{
    for (int i = 0; i < mlp->n; i++) {
        const model_layer *l = &mlp->l[i];
        float a = 1.0f / sqrtf((float)l->in);
        for (long k = 0; k < (long)l->in * l->out; k++) m->params[l->w + k] = (float)((2 * fn_rng_uniform(r) - 1) * a);
        for (int k = 0; k < l->out; k++) m->params[l->b + k] = (float)((2 * fn_rng_uniform(r) - 1) * a);
    }
}

void model_init_params(model *m, uint64_t seed)
{
    fn_rng r;
    fn_rng_seed(&r, seed ^ 0xD3A5E7u);
    if (m->has_bottom) mlp_init(m, &m->bottom, &r);
    for (int t = 0; t < 2; t++)
        if (m->has_tower[t]) mlp_init(m, &m->tower[t], &r);
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
    for (int t = 0; t < 2; t++) {
        if (!m->has_tower[t]) continue;
        for (int i = 0; i < m->tower[t].n; i++) {
            ALLOC(ws->h[t][i], B * (size_t)m->tower[t].l[i].out);
            ALLOC(ws->dh[t][i], B * (size_t)m->tower[t].l[i].out);
        }
        ALLOC(ws->din[t], B * (size_t)m->tower[t].l[0].in);
    }
    for (int k = 0; k < TASK_COUNT; k++) ALLOC(ws->p[k], B);
#undef ALLOC
    if (!ok) { model_ws_free(ws); return FN_ENOMEM; }
    return FN_OK;
}

void model_ws_free(model_ws *ws)
{
    for (int t = 0; t < MODEL_MAX_TABLES; t++) { free(ws->x[t]); free(ws->dx[t]); }
    for (int i = 0; i <= MODEL_MAX_LAYERS; i++) {
        free(ws->h_bottom[i]); free(ws->dh_bottom[i]);
        for (int t = 0; t < 2; t++) { free(ws->h[t][i]); free(ws->dh[t][i]); }
    }
    for (int t = 0; t < 2; t++) free(ws->din[t]);
    for (int k = 0; k < TASK_COUNT; k++) free(ws->p[k]);
    memset(ws, 0, sizeof *ws);
}

/* h[i] = layer i of mlp over in; ReLU on every layer but a tower's last. */
static void mlp_forward(const model *m, const model_mlp *mlp, const float *in, float **h, int B)
{
    for (int i = 0; i < mlp->n; i++) {
        const model_layer *l = &mlp->l[i];
        nn_dense_forward(h[i], i ? h[i - 1] : in, m->params + l->w, m->params + l->b, B, l->in, l->out);
        if (i < mlp->n - 1 || mlp->relu_last) nn_relu_forward(h[i], (long)B * l->out);
    }
}

/* dh[n-1] holds d(loss)/d(output) (already masked by the ReLU if relu_last);
 * accumulates parameter gradients and writes d(loss)/d(in) into din. */
static void mlp_backward(const model *m, const model_mlp *mlp, const float *in, float **h, float **dh,
                         float *din, float *grads, int B)
{
    for (int i = mlp->n - 1; i >= 0; i--) {
        const model_layer *l = &mlp->l[i];
        float *d_in = i ? dh[i - 1] : din;
        nn_dense_backward(d_in, grads + l->w, grads + l->b, dh[i], i ? h[i - 1] : in, m->params + l->w, B, l->in, l->out);
        if (i) nn_relu_backward(dh[i - 1], h[i - 1], (long)B * l->in);
    }
}

static const float *tower_input(const model *m, const model_ws *ws, int t)
{
    return m->has_bottom ? ws->h_bottom[m->bottom.n - 1] : ws->x[m->tower_table[t]];
}

void model_forward(const model *m, model_ws *ws, int B)
{
    if (m->has_bottom) mlp_forward(m, &m->bottom, ws->x[0], ws->h_bottom, B);
    for (int t = 0; t < 2; t++) {
        if (!m->has_tower[t]) continue;
        mlp_forward(m, &m->tower[t], tower_input(m, ws, t), ws->h[t], B);
        const float *z = ws->h[t][m->tower[t].n - 1];
        for (int i = 0; i < B; i++) ws->p[t][i] = nn_sigmoid(z[i]);
    }
    if (model_predicts(m, TASK_CTCVR))
        for (int i = 0; i < B; i++) ws->p[TASK_CTCVR][i] = ws->p[TASK_CTR][i] * ws->p[TASK_CVR][i];
}

/* log loss of logit z against y, computed stably */
static double bce_logit(float z, float y) { return fmax(z, 0) - (double)z * y + log1p(exp(-fabs((double)z))); }

double model_backward(const model *m, model_ws *ws, int B, const float *click, const float *buy,
                      float scale, float *grads, double loss[TASK_COUNT], int counts[TASK_COUNT])
{
    const model_spec *s = &m->spec;
    float *dz[2] = {NULL, NULL};
    for (int t = 0; t < 2; t++)
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
    if (m->has_tower[TASK_CVR] && n_clk > 0) {
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
    for (int t = 0; t < 2; t++)
        if (m->has_tower[t])
            mlp_backward(m, &m->tower[t], tower_input(m, ws, t), ws->h[t], ws->dh[t], ws->din[t], grads, B);

    long in0 = (long)B * (m->has_bottom ? m->bottom.l[m->bottom.n - 1].out : s->n_fields * s->dim);
    if (m->has_bottom) {
        float *d = ws->dh_bottom[m->bottom.n - 1];
        memset(d, 0, sizeof(float) * (size_t)in0);
        for (int t = 0; t < 2; t++)
            if (m->has_tower[t]) for (long k = 0; k < in0; k++) d[k] += ws->din[t][k];
        nn_relu_backward(d, ws->h_bottom[m->bottom.n - 1], in0);
        mlp_backward(m, &m->bottom, ws->x[0], ws->h_bottom, ws->dh_bottom, ws->dx[0], grads, B);
    } else {
        for (int k = 0; k < m->n_tables; k++) memset(ws->dx[k], 0, sizeof(float) * (size_t)in0);
        for (int t = 0; t < 2; t++) {
            if (!m->has_tower[t]) continue;
            float *d = ws->dx[m->tower_table[t]];
            for (long k = 0; k < in0; k++) d[k] += ws->din[t][k];
        }
    }
    return s->w_ctr * loss[TASK_CTR] + s->w_cvr * loss[TASK_CVR] + s->w_ctcvr * loss[TASK_CTCVR];
}
