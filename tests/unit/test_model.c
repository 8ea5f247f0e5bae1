/* tests/unit/test_model.c — the towers' gradients against finite
 * differences, for every preset: d(loss)/d(parameter) for every dense
 * parameter and d(loss)/d(x) for every input of every embedding table. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "model.h"

static int failures;
#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            failures++;                                                    \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
        }                                                                  \
    } while (0)

enum { B = 8, F = 3, D = 4 };

static double loss_of(const model *m, model_ws *ws, const float *click, const float *buy, float *scratch)
{
    double l[TASK_COUNT];
    int c[TASK_COUNT];
    memset(scratch, 0, sizeof(float) * (size_t)m->n_params);
    model_forward(m, ws, B);
    return model_backward(m, ws, B, click, buy, 1.0f, scratch, l, c);
}

static int close_enough(double analytic, double numeric)
{
    return fabs(analytic - numeric) <= 2e-3 + 3e-2 * fabs(numeric);
}

static void check_preset(const char *name)
{
    model_spec s;
    memset(&s, 0, sizeof s);
    CHECK(model_preset(&s, name) == 0, "preset %s", name);
    s.n_fields = F;
    s.dim = D;
    s.n_hidden = 2;
    s.hidden[0] = 7;
    s.hidden[1] = 5;
    if (s.share == SHARE_BOTTOM) { s.n_bottom = 1; s.bottom[0] = 6; s.n_hidden = 1; s.hidden[0] = 5; }
    model m;
    CHECK(model_init(&m, &s) == 0, "init %s", name);
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
    int c[TASK_COUNT];
    model_forward(&m, &ws, B);
    model_backward(&m, &ws, B, click, buy, 1.0f, grads, l, c);
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
    /* what each preset predicts */
    int want_ctr = strcmp(name, "cvr") != 0, want_cvr = strcmp(name, "ctr") != 0;
    CHECK(model_predicts(&m, TASK_CTR) == want_ctr, "%s predicts ctr", name);
    CHECK(model_predicts(&m, TASK_CVR) == want_cvr, "%s predicts cvr", name);
    CHECK(model_predicts(&m, TASK_CTCVR) == (want_ctr && want_cvr), "%s predicts ctcvr", name);
    CHECK(m.n_tables == (strcmp(name, "esmm-ns") ? 1 : 2), "%s tables %d", name, m.n_tables);
    for (int t = 0; t < 2; t++) free(dx[t]);
    free(grads);
    free(scratch);
    model_ws_free(&ws);
    model_free(&m);
    printf("%-14s gradients match finite differences\n", name);
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

int main(void)
{
    const char *presets[] = {"cvr", "ctr", "shared-bottom", "esmm", "esmm-cvr", "esmm-ns"};
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) check_preset(presets[i]);
    check_loss_value();
    model_spec s;
    CHECK(model_preset(&s, "nope") != 0, "unknown preset refused");
    if (failures) { fprintf(stderr, "test_model: %d failure(s)\n", failures); return 1; }
    printf("test_model: all passed\n");
    return 0;
}
