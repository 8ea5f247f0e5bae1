/* tests/unit/test_optimizer.c — ps/optimizer.c against its formulas.
 *
 * For each optimizer, 3 successive updates of a 4-dim row with known
 * gradients, compared with the same formulas written out again here in
 * double precision (so a wrong sign, a missing bias correction or state
 * kept in the wrong place shows).  Also a 13-dim row (not a multiple of any
 * vector width, so vectorised loops' tails are covered), l2, the FTRL l1
 * cut to exactly 0, and the small functions (defaults, parse, state size).
 *
 * Hand-computed anchors (no code involved):
 *   Adagrad, lr 0.05, w 0.5, g 0.1: acc = 0.01, sqrt = 0.1,
 *     w = 0.5 - 0.05 * 0.1 / 0.1 = 0.45.
 *   Adam, lr 1e-3, t = 1: mhat = g, vhat = g^2, so the step is lr * sign(g)
 *     (up to eps): w = 0.5 - 0.001 = 0.499 for any g > 0.
 *   FTRL, alpha 0.05, beta 1, l1 = l2 = 0, w 0, g 0.3 from z = n = 0:
 *     sigma = 0.3 / 0.05 = 6, z = 0.3, n = 0.09,
 *     w = -0.3 / ((1 + 0.3) / 0.05) = -0.3 / 26 = -0.0115384615... */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "optimizer.h"

#include "check.h"

/* float results against double references: a few float ulps of the values
 * involved, never loose enough to hide a wrong formula. */
static int close_to(double got, double want)
{
    return fabs(got - want) <= 2e-6 * fmax(1.0, fabs(want));
}

#define D 4
#define STEPS 3
static const float w0[D] = {0.5f, -0.25f, 0.0f, 0.125f};
static const float grads[STEPS][D] = {
    {0.1f, -0.2f, 0.3f, 0.0f},
    {-0.05f, -0.2f, 0.01f, 0.4f},
    {0.2f, 0.1f, -0.02f, -0.1f},
};

static void check_row(const char *what, int step, const float *w, const double *ref, int dim)
{
    for (int i = 0; i < dim; i++)
        CHECK(close_to(w[i], ref[i]), "%s step %d w[%d] = %.9g, want %.9g", what, step + 1, i, w[i], ref[i]);
}

static void test_sgd(void)
{
    ps_opt o = ps_opt_default(PS_OPT_SGD);
    CHECK(ps_opt_state_floats(&o, D) == 0, "sgd keeps no state");
    float w[D];
    double rw[D];
    for (int i = 0; i < D; i++) rw[i] = w[i] = w0[i];
    for (int s = 0; s < STEPS; s++) {
        ps_opt_apply(&o, w, NULL, grads[s], D);
        for (int i = 0; i < D; i++) rw[i] -= 0.05 * grads[s][i];
        check_row("sgd", s, w, rw, D);
    }
    /* with l2: g + l2 w */
    o.l2 = 0.1f;
    for (int i = 0; i < D; i++) rw[i] = w[i] = w0[i];
    for (int s = 0; s < STEPS; s++) {
        ps_opt_apply(&o, w, NULL, grads[s], D);
        for (int i = 0; i < D; i++) rw[i] -= 0.05 * (grads[s][i] + 0.1 * rw[i]);
        check_row("sgd l2", s, w, rw, D);
    }
}

static void test_adagrad(void)
{
    ps_opt o = ps_opt_default(PS_OPT_ADAGRAD);
    CHECK(ps_opt_state_floats(&o, D) == D, "adagrad state");
    float w[D], acc[D];
    double rw[D], racc[D];
    ps_opt_init_state(&o, acc, D);
    for (int i = 0; i < D; i++) {
        CHECK(acc[i] == 0.0f, "adagrad init_acc default 0");
        rw[i] = w[i] = w0[i];
        racc[i] = 0.0;
    }
    for (int s = 0; s < STEPS; s++) {
        ps_opt_apply(&o, w, acc, grads[s], D);
        for (int i = 0; i < D; i++) {
            double g = grads[s][i];
            racc[i] += g * g;
            rw[i] -= 0.05 * g / (sqrt(racc[i]) + 1e-10);
            CHECK(close_to(acc[i], racc[i]), "adagrad step %d acc[%d]", s + 1, i);
        }
        check_row("adagrad", s, w, rw, D);
        if (s == 0) {
            CHECK(fabsf(w[0] - 0.45f) < 1e-6f, "hand value: w[0] = %.9g, want 0.45", w[0]);
            /* g = 0 on a fresh accumulator: 0 / (0 + eps), no move, no NaN */
            CHECK(w[3] == w0[3], "w[3] moved without a gradient: %.9g", w[3]);
        }
    }

    /* init_acc and l2 */
    o.init_acc = 0.1f;
    o.l2 = 0.01f;
    ps_opt_init_state(&o, acc, D);
    for (int i = 0; i < D; i++) {
        CHECK(acc[i] == 0.1f, "init_acc");
        rw[i] = w[i] = w0[i];
        racc[i] = (double)0.1f;
    }
    for (int s = 0; s < STEPS; s++) {
        ps_opt_apply(&o, w, acc, grads[s], D);
        for (int i = 0; i < D; i++) {
            double g = grads[s][i] + (double)0.01f * rw[i];
            racc[i] += g * g;
            rw[i] -= 0.05 * g / (sqrt(racc[i]) + 1e-10);
        }
        check_row("adagrad init_acc l2", s, w, rw, D);
    }
}

static void test_adam(void)
{
    ps_opt o = ps_opt_default(PS_OPT_ADAM);
    CHECK(ps_opt_state_floats(&o, D) == 2 * D + 1, "adam state");
    float w[D], st[2 * D + 1];
    double rw[D], m[D] = {0}, v[D] = {0};
    ps_opt_init_state(&o, st, D);
    for (int i = 0; i < 2 * D + 1; i++) CHECK(st[i] == 0.0f, "adam fresh state");
    for (int i = 0; i < D; i++) rw[i] = w[i] = w0[i];
    const double b1 = 0.9, b2 = 0.999, lr = 1e-3, eps = 1e-8;
    for (int s = 0; s < STEPS; s++) {
        ps_opt_apply(&o, w, st, grads[s], D);
        int t = s + 1;
        double bc1 = 1 - pow(b1, t), bc2 = 1 - pow(b2, t); /* t=1: 0.1, 0.001; t=2: 0.19, 0.001999 */
        for (int i = 0; i < D; i++) {
            double g = grads[s][i];
            m[i] = b1 * m[i] + (1 - b1) * g;
            v[i] = b2 * v[i] + (1 - b2) * g * g;
            rw[i] -= lr * (m[i] / bc1) / (sqrt(v[i] / bc2) + eps);
            CHECK(close_to(st[i], m[i]) && close_to(st[D + i], v[i]), "adam step %d moments[%d]", t, i);
        }
        CHECK(st[2 * D] == (float)t, "adam step count %g, want %d", st[2 * D], t);
        check_row("adam", s, w, rw, D);
        if (s == 0) {
            CHECK(fabsf(w[0] - 0.499f) < 1e-6f, "hand value: w[0] = %.9g, want 0.499", w[0]);
            CHECK(fabsf(w[1] - (-0.249f)) < 1e-6f, "hand value: w[1] = %.9g, want -0.249", w[1]);
        }
    }
    /* Lazy: the count is the row's own, so a row first updated now gets the
     * t = 1 correction whatever the global step. */
    float w2[D], st2[2 * D + 1];
    memcpy(w2, w0, sizeof w2);
    ps_opt_init_state(&o, st2, D);
    ps_opt_apply(&o, w2, st2, grads[2], D);
    CHECK(fabsf(w2[0] - (0.5f - 0.001f)) < 1e-6f, "lazy adam t=1 step: %.9g", w2[0]);
}

/* One FTRL update per the formula, double precision. */
static void ftrl_ref(double *w, double *z, double *n, double g, double alpha, double beta, double l1,
                     double l2)
{
    double sigma = (sqrt(*n + g * g) - sqrt(*n)) / alpha;
    *z += g - sigma * *w;
    *n += g * g;
    if (fabs(*z) <= l1)
        *w = 0.0;
    else
        *w = -(*z - (*z > 0 ? l1 : -l1)) / ((beta + sqrt(*n)) / alpha + l2);
}

static void test_ftrl(void)
{
    ps_opt o = ps_opt_default(PS_OPT_FTRL);
    CHECK(ps_opt_state_floats(&o, D) == 2 * D, "ftrl state");
    /* hand value: from w = z = n = 0, g = 0.3 */
    {
        float w = 0.0f, st[2] = {0.0f, 0.0f}, g = 0.3f;
        ps_opt_apply(&o, &w, st, &g, 1);
        CHECK(fabsf(w - (-0.3f / 26.0f)) < 1e-7f, "hand value: w = %.9g, want -0.0115384615", w);
        CHECK(fabsf(st[0] - 0.3f) < 1e-7f && fabsf(st[1] - 0.09f) < 1e-7f, "z %g n %g", st[0], st[1]);
    }
    /* l1 = 0.25 with l2 = 0.5: coordinate 3 has |z| <= l1 throughout
     * (|g| sums stay small) and must be exactly 0; others shrink by l1. */
    o.l1 = 0.25f;
    o.l2 = 0.5f;
    float w[D], st[2 * D];
    double rw[D], rz[D] = {0}, rn[D] = {0};
    ps_opt_init_state(&o, st, D);
    static const float g4[STEPS][D] = {
        {0.6f, -0.5f, 0.3f, 0.05f},
        {0.4f, -0.7f, -0.1f, 0.05f},
        {0.5f, 0.2f, 0.6f, -0.02f},
    };
    for (int i = 0; i < D; i++) rw[i] = w[i] = w0[i];
    for (int s = 0; s < STEPS; s++) {
        ps_opt_apply(&o, w, st, g4[s], D);
        for (int i = 0; i < D; i++) {
            ftrl_ref(&rw[i], &rz[i], &rn[i], g4[s][i], 0.05, 1.0, 0.25, 0.5);
            CHECK(close_to(st[i], rz[i]) && close_to(st[D + i], rn[i]), "ftrl step %d z/n[%d]", s + 1, i);
        }
        check_row("ftrl", s, w, rw, D);
        CHECK(w[3] == 0.0f, "ftrl step %d: l1 must zero w[3], got %.9g (z %.9g)", s + 1, w[3], st[3]);
    }
    CHECK(w[0] != 0.0f && w[1] != 0.0f, "ftrl: large-|z| coordinates survive l1");
}

/* dim 13, every optimizer, against the double references (tails of the
 * vector loops). */
static void test_odd_dim(void)
{
    enum { N = 13 };
    float g[N], w[4][N], st[4][2 * N + 1];
    double rw[4][N], acc[N] = {0}, m[N] = {0}, v[N] = {0}, z[N] = {0}, n[N] = {0};
    for (int i = 0; i < N; i++) g[i] = 0.07f * (float)(i - 6);
    for (int k = 0; k < 4; k++) {
        ps_opt o = ps_opt_default((ps_opt_kind)k);
        ps_opt_init_state(&o, st[k], N);
        for (int i = 0; i < N; i++) rw[k][i] = w[k][i] = 0.01f * (float)i;
    }
    for (int s = 0; s < 2; s++) {
        for (int k = 0; k < 4; k++) {
            ps_opt o = ps_opt_default((ps_opt_kind)k);
            ps_opt_apply(&o, w[k], st[k], g, N);
        }
        double bc1 = 1 - pow(0.9, s + 1), bc2 = 1 - pow(0.999, s + 1);
        for (int i = 0; i < N; i++) {
            double gi = g[i];
            rw[0][i] -= (double)0.05f * gi;
            acc[i] += gi * gi;
            rw[1][i] -= (double)0.05f * gi / (sqrt(acc[i]) + 1e-10);
            m[i] = 0.9 * m[i] + 0.1 * gi;
            v[i] = 0.999 * v[i] + 0.001 * gi * gi;
            rw[2][i] -= 1e-3 * (m[i] / bc1) / (sqrt(v[i] / bc2) + 1e-8);
            ftrl_ref(&rw[3][i], &z[i], &n[i], gi, (double)0.05f, 1.0, 0.0, 0.0);
        }
        for (int k = 0; k < 4; k++) check_row(ps_opt_kind_name((ps_opt_kind)k), s, w[k], rw[k], N);
    }
}

static void test_names_defaults(void)
{
    for (int k = 0; k < 4; k++) {
        const char *name = ps_opt_kind_name((ps_opt_kind)k);
        CHECK(ps_opt_kind_parse(name) == k, "parse(name(%d)) for %s", k, name);
    }
    CHECK(strcmp(ps_opt_kind_name(PS_OPT_ADAGRAD), "adagrad") == 0, "adagrad name");
    CHECK(ps_opt_kind_parse("adamw") == -1 && ps_opt_kind_parse("") == -1 && ps_opt_kind_parse(NULL) == -1,
          "unknown names");
    ps_opt o = ps_opt_default(PS_OPT_SGD);
    CHECK(o.kind == PS_OPT_SGD && o.lr == 0.05f && o.l2 == 0.0f, "sgd defaults");
    o = ps_opt_default(PS_OPT_ADAGRAD);
    CHECK(o.lr == 0.05f && o.eps == 1e-10f && o.init_acc == 0.0f, "adagrad defaults");
    o = ps_opt_default(PS_OPT_ADAM);
    CHECK(o.lr == 1e-3f && o.beta1 == 0.9f && o.beta2 == 0.999f && o.eps == 1e-8f, "adam defaults");
    o = ps_opt_default(PS_OPT_FTRL);
    CHECK(o.lr == 0.05f && o.beta == 1.0f && o.l1 == 0.0f && o.l2 == 0.0f, "ftrl defaults");
}

int main(void)
{
    test_names_defaults();
    test_sgd();
    test_adagrad();
    test_adam();
    test_ftrl();
    test_odd_dim();
    if (failures) {
        printf("test_optimizer: %d failures\n", failures);
        return 1;
    }
    printf("test_optimizer: ok\n");
    return 0;
}
