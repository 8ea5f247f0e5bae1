/* tests/unit/test_model.c — the towers' gradients against finite
 * differences, for every preset: d(loss)/d(parameter) for every dense
 * parameter (experts and gates included) and d(loss)/d(x) for every input of
 * every embedding table.  Where the loss holds a quantity constant (ESCM²'s
 * propensity, e and ê), the differences are taken with ws.cf_hold set, i.e.
 * of the surrogate loss whose gradient backward claims to compute; that the
 * constants really are constant is checked against ESMM's gradients.  Also:
 * the ESMM and ESCM² loss values by hand, and the exported model file
 * (version 2 round trip, version 1 still read).  And the towers split among
 * threads (worker/par.h) against one thread: same predictions, parameter
 * and input gradients up to float rounding, for every preset. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "binfile.h"
#include "fn_error.h"
#include "hash.h"
#include "config.h"
#include "model.h"
#include "modelfile.h"
#include "par.h"

#include "check.h"

enum { B = 8, F = 3, D = 4 };

static double loss_of(const model *m, model_ws *ws, const float *click, const float *buy, float *scratch)
{
    double l[TASK_COUNT];
    int c[TASK_COUNT];
    memset(scratch, 0, sizeof(float) * (size_t)m->n_params);
    model_forward(m, ws, B);
    return model_backward(m, ws, B, click, buy, 1.0f, scratch, l, c);
}

/* Measured |analytic − numeric| is at most ~4e-5 for every preset (float32
 * forward, h = 3e-4); gate gradients are ~1e-4..1e-3, so the absolute part
 * must sit well below them for the check to see the gates at all. */
static int close_enough(double analytic, double numeric)
{
    return fabs(analytic - numeric) <= 2e-4 + 3e-2 * fabs(numeric);
}

/* The sizes of the checks: towers [12 -> 7 -> 5 -> 1]; with a shared bottom
 * [12 -> 6] and towers [6 -> 5 -> 1]; experts [in -> 6 -> 4], two layers so
 * their inner ReLU is crossed too. */
static void test_sizes(model_spec *s)
{
    s->n_fields = F;
    s->dim = D;
    s->n_hidden = 2;
    s->hidden[0] = 7;
    s->hidden[1] = 5;
    if (s->share == SHARE_BOTTOM) { s->n_bottom = 1; s->bottom[0] = 6; s->n_hidden = 1; s->hidden[0] = 5; }
    if (s->n_experts + s->n_task_experts > 0) { s->n_bottom = 2; s->bottom[0] = 6; s->bottom[1] = 4; }
}

/* Every parameter's and every input's gradient against central differences;
 * counts[] of the batch's losses. */
static void check_gradients(const char *name, const model_spec *s, int counts[TASK_COUNT])
{
    model m;
    CHECK(model_init(&m, s) == 0, "init %s: %s", name, fn_err_msg());
    model_init_params(&m, 42);
    model_ws ws;
    CHECK(model_ws_init(&ws, &m, B) == 0, "ws %s", name);
    fn_rng r;
    fn_rng_seed(&r, 7);
    for (int t = 0; t < m.n_tables; t++)
        for (int i = 0; i < B * F * D; i++) ws.x[t][i] = (float)(2 * fn_rng_uniform(&r) - 1);
    /* a batch with clicks and buys, so every loss is active */
    float click[B] = {1, 0, 1, 1, 0, 0, 1, 0}, buy[B] = {1, 0, 0, 1, 0, 0, 0, 0};
    float *grads = calloc((size_t)m.n_params, sizeof(float)), *scratch = calloc((size_t)m.n_params, sizeof(float));
    double l[TASK_COUNT];
    model_forward(&m, &ws, B);
    model_backward(&m, &ws, B, click, buy, 1.0f, grads, l, counts);
    ws.cf_hold = 1; /* ESCM²'s stop-gradients: differentiate the surrogate */
    float *dx[2] = {NULL, NULL};
    for (int t = 0; t < m.n_tables; t++) {
        dx[t] = malloc(sizeof(float) * B * F * D);
        memcpy(dx[t], ws.dx[t], sizeof(float) * B * F * D);
    }
    const float h = getenv("FD_H") ? (float)atof(getenv("FD_H")) : 3e-4f; /* small enough that no ReLU kink lies within ±h */
    int bad = 0, nonzero = 0;
    for (long k = 0; k < m.n_params; k++) {
        float w = m.params[k];
        m.params[k] = w + h;
        double lp = loss_of(&m, &ws, click, buy, scratch);
        m.params[k] = w - h;
        double lm = loss_of(&m, &ws, click, buy, scratch);
        m.params[k] = w;
        double num = (lp - lm) / (2.0 * h);
        nonzero += fabs(grads[k]) > 1e-6;
        if (!close_enough(grads[k], num)) {
            if (bad++ < 5) fprintf(stderr, "  %s: param %ld analytic %.6g numeric %.6g\n", name, k, grads[k], num);
        }
    }
    CHECK(bad == 0, "%s: %d of %ld parameter gradients differ from finite differences", name, bad, m.n_params);
    CHECK(nonzero > m.n_params / 2, "%s: only %d of %ld gradients non-zero", name, nonzero, m.n_params);
    for (int t = 0; t < m.n_tables; t++) {
        int badx = 0;
        for (int i = 0; i < B * F * D; i++) {
            float v = ws.x[t][i];
            ws.x[t][i] = v + h;
            double lp = loss_of(&m, &ws, click, buy, scratch);
            ws.x[t][i] = v - h;
            double lm = loss_of(&m, &ws, click, buy, scratch);
            ws.x[t][i] = v;
            double num = (lp - lm) / (2.0 * h);
            if (!close_enough(dx[t][i], num)) {
                if (badx++ < 5) fprintf(stderr, "  %s: table %d x[%d] analytic %.6g numeric %.6g\n", name, t, i, dx[t][i], num);
            }
        }
        CHECK(badx == 0, "%s: %d input gradients of table %d differ from finite differences", name, badx, t);
    }
    for (int t = 0; t < 2; t++) free(dx[t]);
    free(grads);
    free(scratch);
    model_ws_free(&ws);
    model_free(&m);
    printf("%-14s gradients match finite differences\n", name);
}

static void check_preset(const char *name)
{
    model_spec s;
    memset(&s, 0, sizeof s);
    CHECK(model_preset(&s, name) == 0, "preset %s", name);
    test_sizes(&s);
    int c[TASK_COUNT];
    check_gradients(name, &s, c);
    model m;
    if (model_init(&m, &s)) return;
    /* what each preset predicts */
    int want_ctr = strcmp(name, "cvr") != 0, want_cvr = strcmp(name, "ctr") != 0;
    CHECK(model_predicts(&m, TASK_CTR) == want_ctr, "%s predicts ctr", name);
    CHECK(model_predicts(&m, TASK_CVR) == want_cvr, "%s predicts cvr", name);
    CHECK(model_predicts(&m, TASK_CTCVR) == (want_ctr && want_cvr), "%s predicts ctcvr", name);
    CHECK(m.n_tables == (strcmp(name, "esmm-ns") ? 1 : 2), "%s tables %d", name, m.n_tables);
    /* the axes each preset sets */
    int mmoe = !strcmp(name, "mmoe"), ple = !strcmp(name, "ple");
    CHECK(m.has_experts == (mmoe || ple), "%s experts %d", name, m.has_experts);
    if (mmoe) CHECK(m.moe.n == 4 && m.moe.n_levels == 1 && m.moe.n_vis[0] == 4 && m.moe.n_vis[1] == 4 && !m.moe.has_gate[0][GROUP_SHARED],
                    "mmoe: 4 shared experts, one level, each task's gate over all");
    if (ple) CHECK(m.moe.n == 6 && m.moe.n_levels == 2 && m.moe.n_vis[0] == 4 && m.moe.n_vis[GROUP_SHARED] == 6 &&
                   m.moe.has_gate[0][GROUP_SHARED] && !m.moe.has_gate[1][GROUP_SHARED],
                   "ple: 2+2+2 experts on two levels, task gates over own+shared, a shared gate below the top");
    int ipw = !strcmp(name, "escm2-ipw"), dr = !strcmp(name, "escm2-dr");
    CHECK(m.cf_on == (ipw || dr) && m.has_tower[TOWER_IMP] == dr, "%s regulariser %d imputation %d", name, m.cf_on, m.has_tower[TOWER_IMP]);
    if (m.cf_on) CHECK(c[TASK_CVR] == B && s.w_cf == 1.0f && s.ipw_clip == 0.05f, "%s: CVR slot over all %d, w_cf %g clip %g", name, c[TASK_CVR],
                       (double)s.w_cf, (double)s.ipw_clip);
    model_free(&m);
}

/* Axes compose beyond the presets: ESCM²-DR over PLE's experts (the
 * imputation tower then reads the CVR task's gated mixture), IPW over a
 * one-level CGC with its own experts only. */
static void check_combinations(void)
{
    model_spec s;
    int c[TASK_COUNT];
    memset(&s, 0, sizeof s);
    model_preset(&s, "ple");
    s.w_cvr = 0; s.w_ctcvr = 1; s.cf = CF_DR;
    test_sizes(&s);
    check_gradients("ple+dr", &s, c);
    memset(&s, 0, sizeof s);
    model_preset(&s, "ple");
    s.w_cvr = 0; s.w_ctcvr = 1; s.cf = CF_IPW; s.n_levels = 1; s.n_experts = 0; s.ipw_clip = 0.6f;
    test_sizes(&s);
    check_gradients("cgc-own+ipw", &s, c);
}

/* The ESMM loss by hand for one example, against model_backward's value. */
static void check_loss_value(void)
{
    model_spec s;
    memset(&s, 0, sizeof s);
    model_preset(&s, "esmm-cvr");
    s.n_fields = 1;
    s.dim = 1;
    s.n_hidden = 0;
    model m;
    model_init(&m, &s);
    /* towers are [1 -> 1] linear: logit = w*x + b */
    m.params[m.tower[0].l[0].w] = 2.0f;
    m.params[m.tower[0].l[0].b] = -1.0f;
    m.params[m.tower[1].l[0].w] = -1.0f;
    m.params[m.tower[1].l[0].b] = 0.5f;
    model_ws ws;
    model_ws_init(&ws, &m, 1);
    ws.x[0][0] = 0.25f;
    float click = 1, buy = 1, g[4] = {0};
    double l[TASK_COUNT];
    int c[TASK_COUNT];
    model_forward(&m, &ws, 1);
    double total = model_backward(&m, &ws, 1, &click, &buy, 1.0f, g, l, c);
    double pc = 1 / (1 + exp(-(2 * 0.25 - 1))), pv = 1 / (1 + exp(-(-0.25 + 0.5)));
    double want = -log(pc) - log(pv) - log(pc * pv);
    CHECK(fabs(total - want) < 1e-5, "esmm-cvr loss %.8f, by hand %.8f", total, want);
    CHECK(fabs(ws.p[TASK_CTCVR][0] - pc * pv) < 1e-6, "pctcvr %.8f want %.8f", ws.p[TASK_CTCVR][0], pc * pv);
    model_ws_free(&ws);
    model_free(&m);
}

/* Towers [1 -> 1] linear: logit = w*x + b. */
static void set_linear(model *m, int t, float w, float b)
{
    m->params[m->tower[t].l[0].w] = w;
    m->params[m->tower[t].l[0].b] = b;
}

/* One forward + backward of a [1 field x 1 dim] preset with linear towers
 * over two clicked impressions, the second under the propensity clip. */
enum { NB = 2 };
static double escm_run(const char *name, float *g, long *n_params, double l[TASK_COUNT], int c[TASK_COUNT], model *out)
{
    model_spec s;
    memset(&s, 0, sizeof s);
    model_preset(&s, name);
    s.n_fields = 1;
    s.dim = 1;
    s.n_hidden = 0;
    model m;
    CHECK(model_init(&m, &s) == 0, "init %s", name);
    set_linear(&m, TASK_CTR, 2.0f, -1.0f);
    set_linear(&m, TASK_CVR, -1.0f, 0.5f);
    if (m.has_tower[TOWER_IMP]) set_linear(&m, TOWER_IMP, 0.4f, 0.1f);
    model_ws ws;
    model_ws_init(&ws, &m, NB);
    ws.x[0][0] = 0.25f;
    ws.x[0][1] = -2.0f;
    float click[NB] = {1, 1}, buy[NB] = {1, 0};
    CHECK(m.n_params <= 8, "%s: %ld parameters", name, m.n_params);
    memset(g, 0, sizeof(float) * 8);
    model_forward(&m, &ws, NB);
    double total = model_backward(&m, &ws, NB, click, buy, 1.0f, g, l, c);
    *n_params = m.n_params;
    model_ws_free(&ws);
    *out = m;
    return total;
}

/* ESCM²'s IPW and DR values by hand; the propensity, and ê in L_dr, held
 * constant: the CTR tower's gradients are ESMM's, the CVR tower's under DR
 * are IPW's. */
static void check_escm2_values(void)
{
    double pc[NB], pv[NB], e[NB], q[NB];
    const double x[NB] = {0.25, -2.0}, buy[NB] = {1, 0};
    for (int i = 0; i < NB; i++) {
        pc[i] = 1 / (1 + exp(-(2 * x[i] - 1)));
        pv[i] = 1 / (1 + exp(-(-x[i] + 0.5)));
        e[i] = buy[i] > 0 ? -log(pv[i]) : -log(1 - pv[i]);
        q[i] = pc[i] < 0.05 ? 0.05 : pc[i];
    }
    CHECK(pc[0] > 0.05 && pc[1] < 0.05, "the example straddles the clip: %g %g", pc[0], pc[1]);
    double l_ctr = -(log(pc[0]) + log(pc[1])) / NB;
    double l_ctcvr = -(log(pc[0] * pv[0]) + log(1 - pc[1] * pv[1])) / NB;
    double l_ipw = (e[0] / q[0] + e[1] / q[1]) / NB;

    float g_esmm[8], g_ipw[8], g_dr[8];
    double l[TASK_COUNT];
    int c[TASK_COUNT];
    long n;
    model m_esmm, m_ipw, m_dr;
    escm_run("esmm", g_esmm, &n, l, c, &m_esmm);
    double total = escm_run("escm2-ipw", g_ipw, &n, l, c, &m_ipw);
    CHECK(fabs(l[TASK_CVR] - l_ipw) < 1e-5, "L_ipw %.8f, by hand %.8f", l[TASK_CVR], l_ipw);
    CHECK(c[TASK_CVR] == NB, "L_ipw averaged over %d, want %d", c[TASK_CVR], NB);
    CHECK(fabs(total - (l_ctr + l_ctcvr + l_ipw)) < 1e-5, "escm2-ipw total %.8f, by hand %.8f", total, l_ctr + l_ctcvr + l_ipw);
    /* CVR bias: ESMM's gradient + (1/B) Σ click (pv − buy) / q */
    long bv = m_ipw.tower[TASK_CVR].l[0].b;
    double want_bv = g_esmm[bv] + ((pv[0] - 1) / q[0] + (pv[1] - 0) / q[1]) / NB;
    CHECK(fabs(g_ipw[bv] - want_bv) < 1e-5, "escm2-ipw d/d b_cvr %.8f, by hand %.8f", g_ipw[bv], want_bv);
    for (int k = 0; k < 2; k++) {
        long p = k ? m_ipw.tower[TASK_CTR].l[0].b : m_ipw.tower[TASK_CTR].l[0].w;
        CHECK(g_ipw[p] == g_esmm[p], "propensity detached: CTR gradient %g under IPW, %g under ESMM", g_ipw[p], g_esmm[p]);
    }

    total = escm_run("escm2-dr", g_dr, &n, l, c, &m_dr);
    double eh[NB] = {0.4 * x[0] + 0.1, 0.4 * x[1] + 0.1};
    double l_dr = 0, l_imp = 0, d_bimp = 0;
    for (int i = 0; i < NB; i++) {
        l_dr += eh[i] + (e[i] - eh[i]) / q[i];
        l_imp += (e[i] - eh[i]) * (e[i] - eh[i]) / q[i];
        d_bimp += -2 * (e[i] - eh[i]) / q[i];
    }
    l_dr /= NB; l_imp /= NB; d_bimp /= NB;
    CHECK(fabs(l[TASK_CVR] - l_dr) < 1e-5, "L_dr %.8f, by hand %.8f", l[TASK_CVR], l_dr);
    CHECK(fabs(total - (l_ctr + l_ctcvr + l_dr + l_imp)) < 1e-5, "escm2-dr total %.8f, by hand %.8f", total, l_ctr + l_ctcvr + l_dr + l_imp);
    long bi = m_dr.tower[TOWER_IMP].l[0].b;
    CHECK(fabs(g_dr[bi] - d_bimp) < 1e-5, "d L_imp / d b_imp %.8f, by hand %.8f", g_dr[bi], d_bimp);
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < 2; k++) {
            long p = k ? m_dr.tower[t].l[0].b : m_dr.tower[t].l[0].w;
            CHECK(fabs(g_dr[p] - g_ipw[p]) < 1e-6, "DR's tower %d gradient %g, IPW's %g (ê constant in L_dr)", t, g_dr[p], g_ipw[p]);
        }
    model_free(&m_esmm);
    model_free(&m_ipw);
    model_free(&m_dr);
    printf("escm2          IPW and DR losses match the hand computation\n");
}

/* Combinations of axes the model refuses, with a reason. */
static void check_refusals(void)
{
    model_spec s;
    model m;
    memset(&s, 0, sizeof s);
    model_preset(&s, "escm2-ipw");
    s.n_fields = F; s.dim = D;
    s.w_cvr = 1;
    CHECK(model_init(&m, &s) == FN_EINVAL, "IPW with the conditional CVR loss refused");
    s.w_cvr = 0; s.ipw_clip = 0;
    CHECK(model_init(&m, &s) == FN_EINVAL, "propensity clip 0 refused");
    memset(&s, 0, sizeof s);
    model_preset(&s, "esmm");
    s.n_fields = F; s.dim = D; s.n_bottom = 1; s.bottom[0] = 4;
    s.n_experts = 2;
    CHECK(model_init(&m, &s) == FN_EINVAL, "experts without a shared bottom refused");
    memset(&s, 0, sizeof s);
    model_preset(&s, "mmoe");
    s.n_fields = F; s.dim = D;
    CHECK(model_init(&m, &s) == FN_EINVAL, "experts without widths refused");
}

/* The exported model of every preset loads back identical and predicts the
 * same; a version-1 file (written here as the old writer did) still loads. */
static void check_modelfile(const char *dir)
{
    fn_schema *schema = calloc(1, sizeof *schema), *back = calloc(1, sizeof *back);
    CHECK(schema_parse(schema, "101,205,206") == 0, "schema");
    const char *names[] = {"esmm", "mmoe", "ple", "escm2-ipw", "escm2-dr"};
    char path[256];
    snprintf(path, sizeof path, "%s/dense.bin", dir);
    for (size_t n = 0; n < sizeof names / sizeof names[0]; n++) {
        model_spec s;
        memset(&s, 0, sizeof s);
        model_preset(&s, names[n]);
        s.n_fields = F; s.dim = D; s.n_hidden = 1; s.hidden[0] = 5; s.n_bottom = 1; s.bottom[0] = 6;
        model m, l;
        CHECK(model_init(&m, &s) == 0, "init %s", names[n]);
        model_init_params(&m, 3);
        CHECK(modelfile_save_dense(path, &m, schema) == 0, "save %s: %s", names[n], fn_err_msg());
        int rc = modelfile_load_dense(path, &l, back);
        CHECK(rc == 0, "load %s: %s", names[n], fn_err_msg());
        if (rc) { model_free(&m); continue; }
        CHECK(!memcmp(&l.spec, &m.spec, sizeof m.spec), "%s: spec read back differs", names[n]);
        CHECK(l.n_params == m.n_params && !memcmp(l.params, m.params, sizeof(float) * (size_t)m.n_params), "%s: parameters differ", names[n]);
        CHECK(back->n == F && !strcmp(back->names[2], "206"), "%s: field list", names[n]);
        model_ws a, b;
        model_ws_init(&a, &m, B);
        model_ws_init(&b, &l, B);
        for (int i = 0; i < B * F * D; i++) a.x[0][i] = b.x[0][i] = (float)((i * 37 % 11) - 5) / 5.0f;
        model_forward(&m, &a, B);
        model_forward(&l, &b, B);
        for (int k = 0; k < TASK_COUNT; k++)
            CHECK(model_predicts(&l, k) && !memcmp(a.p[k], b.p[k], sizeof(float) * B), "%s: task %d predictions differ", names[n], k);
        model_ws_free(&a);
        model_ws_free(&b);
        model_free(&m);
        model_free(&l);
    }
    /* version 1: the header stops after the bottom widths */
    model_spec s;
    memset(&s, 0, sizeof s);
    model_preset(&s, "shared-bottom");
    s.n_fields = F; s.dim = D; s.n_hidden = 1; s.hidden[0] = 5; s.n_bottom = 1; s.bottom[0] = 6;
    model m, l;
    model_init(&m, &s);
    model_init_params(&m, 4);
    size_t total = 32 + 4 * 4 + 4 * 2 + 4 + 4 * MODEL_MAX_LAYERS + 4 + 4 * MODEL_MAX_LAYERS + F * 32 + 8 + 4 * (size_t)m.n_params;
    uint8_t *buf = calloc(1, total), *p = buf;
    memcpy(p, "shared-bottom", 13); p += 32;
    put_le32(p, SHARE_BOTTOM); p += 4;
    put_f32(p, 1); p += 4;
    put_f32(p, 1); p += 4;
    put_f32(p, 0); p += 4;
    put_le32(p, F); p += 4;
    put_le32(p, D); p += 4;
    put_le32(p, 1); p += 4;
    put_le32(p, 5); p += 4 * MODEL_MAX_LAYERS;
    put_le32(p, 1); p += 4;
    put_le32(p, 6); p += 4 * MODEL_MAX_LAYERS;
    for (int f = 0; f < F; f++, p += 32) memcpy(p, schema->names[f], strlen(schema->names[f]));
    put_le64(p, (uint64_t)m.n_params); p += 8;
    for (long i = 0; i < m.n_params; i++, p += 4) put_f32(p, m.params[i]);
    binfile_w w;
    CHECK(binfile_create(&w, path, MODELFILE_DENSE_MAGIC, 1) == 0 && binfile_write(&w, buf, total) == 0 && binfile_commit(&w) == 0, "write v1");
    int rc = modelfile_load_dense(path, &l, back);
    CHECK(rc == 0, "load v1: %s", fn_err_msg());
    if (!rc) {
        CHECK(!memcmp(&l.spec, &m.spec, sizeof m.spec), "v1 spec: experts %d/%d levels %d cf %d w_cf %g clip %g", l.spec.n_experts,
              l.spec.n_task_experts, l.spec.n_levels, (int)l.spec.cf, (double)l.spec.w_cf, (double)l.spec.ipw_clip);
        CHECK(l.n_params == m.n_params && !memcmp(l.params, m.params, sizeof(float) * (size_t)m.n_params), "v1 parameters differ");
        model_free(&l);
    }
    model_free(&m);
    free(buf);
    unlink(path);
    free(schema);
    free(back);
    printf("modelfile      version 2 round trip for every new preset, version 1 read\n");
}

/* `funnel train --model` accepts exactly the presets the model knows. */
static void check_flag_choices(void)
{
    char list[256];
    snprintf(list, sizeof list, "%s", MODEL_PRESETS);
    for (char *name = strtok(list, "|"); name; name = strtok(NULL, "|")) {
        char *argv[] = {"train", "--train", "x", "--common", "y", "--out", "z", "--model", name};
        train_conf c;
        CHECK(config_parse_train(&c, 9, argv) == 0, "--model %s refused by the flag parser", name);
        model_spec s;
        CHECK(model_preset(&s, name) == 0, "preset %s", name);
    }
}

/* Rows split among 3 threads (uneven shares: 301 rows) against 1 thread. */
static void check_threads(const char *name)
{
    enum { NB = 301 };
    model_spec s;
    memset(&s, 0, sizeof s);
    CHECK(model_preset(&s, name) == 0, "preset %s", name);
    test_sizes(&s);
    model m;
    CHECK(model_init(&m, &s) == 0, "init %s", name);
    model_init_params(&m, 5);
    par *pool = NULL;
    CHECK(par_open(&pool, 3) == 0 && par_threads(pool) == 3, "a pool of 3 threads");
    model_ws ws[2];
    float *g[2], *click = malloc(sizeof(float) * NB), *buy = malloc(sizeof(float) * NB);
    fn_rng r;
    fn_rng_seed(&r, 11);
    for (int i = 0; i < NB; i++) {
        click[i] = fn_rng_uniform(&r) < 0.3;
        buy[i] = click[i] > 0 && fn_rng_uniform(&r) < 0.4;
    }
    double l[2][TASK_COUNT];
    int c[2][TASK_COUNT];
    for (int v = 0; v < 2; v++) {
        CHECK(model_ws_init(&ws[v], &m, NB) == 0, "ws %s", name);
        if (v) CHECK(model_ws_parallel(&ws[v], &m, pool) == 0, "ws %s on 3 threads", name);
        fn_rng_seed(&r, 3);
        for (int t = 0; t < m.n_tables; t++)
            for (int i = 0; i < NB * F * D; i++) ws[v].x[t][i] = (float)(2 * fn_rng_uniform(&r) - 1);
        g[v] = calloc((size_t)m.n_params, sizeof(float));
        /* twice: the threads' own gradient blocks must start from zero each time */
        for (int rep = 0; rep < 2; rep++) {
            model_forward(&m, &ws[v], NB);
            model_backward(&m, &ws[v], NB, click, buy, 1.0f, g[v], l[v], c[v]);
        }
    }
    int bad = 0;
    for (long k = 0; k < m.n_params; k++)
        if (fabs(g[0][k] - g[1][k]) > 1e-6 + 1e-4 * fabs(g[0][k])) {
            if (bad++ < 5) fprintf(stderr, "  %s: param %ld: 1 thread %.8g, 3 threads %.8g\n", name, k, g[0][k], g[1][k]);
        }
    CHECK(bad == 0, "%s: %d of %ld parameter gradients differ between 1 and 3 threads", name, bad, m.n_params);
    int badp = 0, badx = 0;
    for (int k = 0; k < TASK_COUNT; k++)
        if (model_predicts(&m, k))
            for (int i = 0; i < NB; i++) badp += fabs(ws[0].p[k][i] - ws[1].p[k][i]) > 1e-6;
    for (int t = 0; t < m.n_tables; t++)
        for (int i = 0; i < NB * F * D; i++) badx += fabs(ws[0].dx[t][i] - ws[1].dx[t][i]) > 1e-6 + 1e-4 * fabs(ws[0].dx[t][i]);
    CHECK(badp == 0 && badx == 0, "%s: %d predictions and %d input gradients differ between 1 and 3 threads", name, badp, badx);
    for (int k = 0; k < TASK_COUNT; k++) CHECK(c[0][k] == c[1][k] && fabs(l[0][k] - l[1][k]) < 1e-6, "%s: loss %d", name, k);
    for (int v = 0; v < 2; v++) { model_ws_free(&ws[v]); free(g[v]); }
    free(click);
    free(buy);
    par_close(&pool);
    CHECK(pool == NULL, "par_close clears the handle");
    model_free(&m);
    printf("%-14s 3 threads match 1 thread\n", name);
}

int main(void)
{
    check_flag_choices();
    const char *presets[] = {"cvr", "ctr", "shared-bottom", "esmm", "esmm-cvr", "esmm-ns",
                             "mmoe", "ple", "escm2-ipw", "escm2-dr"};
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) check_preset(presets[i]);
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) check_threads(presets[i]);
    check_loss_value();
    check_combinations();
    check_escm2_values();
    check_refusals();
    char dir[] = "/tmp/test_model.XXXXXX";
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    check_modelfile(dir);
    rmdir(dir);
    model_spec s;
    CHECK(model_preset(&s, "nope") != 0, "unknown preset refused");
    if (failures) { fprintf(stderr, "test_model: %d failure(s)\n", failures); return 1; }
    printf("test_model: all passed\n");
    return 0;
}
