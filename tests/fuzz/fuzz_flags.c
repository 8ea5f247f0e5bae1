/* tests/fuzz/fuzz_flags.c — libFuzzer target for the command line:
 * common/flags.c (flags_parse, flags_int_list), common/config.c
 * (config_parse_train) and common/schema.c (schema_parse).
 *
 * Input: arguments separated by NUL bytes.  They are given to
 * config_parse_train as `funnel train ARGS...`, and each one on its own to
 * flags_int_list and schema_parse.  Properties:
 *   - a refusal is FN_EUSAGE with a message of one line that names a flag
 *     ("--"); nothing else comes back but FN_OK and FLAGS_HELP;
 *   - an accepted command line has every value inside its range: the
 *     required flags set (and the common files exactly with --format
 *     aliccp), numbers within their bounds, choices from their lists, 1..8
 *     layer widths in [1, 1000000];
 *   - flags_int_list gives -1 or 1..cap values in [1, 1000000], and what it
 *     accepts, printed back as "a,b,c", parses to the same values;
 *   - an accepted field list has 1..256 distinct, non-empty names of at most
 *     31 bytes without control characters or commas, each found at its own
 *     index, and schema_format's text of it parses to the same list.
 *
 * Seeds: tests/fuzz/corpus/flags/. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "flags.h"
#include "fn_error.h"
#include "fuzz_util.h"
#include "schema.h"

#define MAX_ARGS 64

static void check_refusal(int rc, const char *what)
{
    const char *m = fn_err_msg();
    REQUIRE(rc == FN_EUSAGE, "%s returned %d", what, rc);
    REQUIRE(m[0] && !strchr(m, '\n'), "%s: no one-line message: '%s'", what, m);
}

static int one_of(const char *v, const char *choices)
{
    size_t n = strlen(v);
    for (const char *p = choices;;) {
        const char *e = strchr(p, '|');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !strncmp(p, v, n)) return 1;
        if (!e) return 0;
        p = e + 1;
    }
}

static void check_widths(const int *w, int n, const char *what)
{
    REQUIRE(n >= 1 && n <= CONFIG_MAX_LAYERS, "%s: %d widths", what, n);
    for (int i = 0; i < n; i++) REQUIRE(w[i] >= 1 && w[i] <= 1000000, "%s: width %d", what, w[i]);
}

#define IN(x, lo, hi) REQUIRE((x) >= (lo) && (x) <= (hi), #x " = %g outside [%g, %g]", (double)(x), (double)(lo), (double)(hi))

static void check_conf(const train_conf *c)
{
    REQUIRE(c->train && c->train[0] && c->out && c->out[0], "accepted without --train or --out");
    if (!strcmp(c->format, "aliccp")) {
        REQUIRE(c->common && c->common[0], "accepted aliccp without --common");
        REQUIRE(!c->test || c->test_common, "--test without --test-common");
    } else {
        REQUIRE(!strcmp(c->format, "bin") && !c->common && !c->test_common, "format '%s' with common files", c->format);
    }
    REQUIRE(!c->test_common || c->test, "--test-common without --test");
    REQUIRE(!c->test_truth || c->test, "--test-truth without --test");
    REQUIRE(one_of(c->model, "cvr|ctr|shared-bottom|esmm|esmm-cvr|esmm-ns|mmoe|ple|escm2-ipw|escm2-dr"), "model '%s'", c->model);
    REQUIRE(!c->share || one_of(c->share, "nothing|emb|bottom"), "share '%s'", c->share);
    REQUIRE(one_of(c->emb_opt, "adagrad|adam|ftrl|sgd") && one_of(c->bad_lines, "skip|stop"), "choice");
    IN(c->servers, 1, 4096);
    IN(c->epochs, 1, 1000);
    IN(c->batch, 1, 1 << 20);
    IN(c->dim, 1, 1024);
    IN(c->seed, 0, 2147483647);
    IN(c->timeout, 1, 86400);
    IN(c->log_every, 0.1, 86400);
    IN(c->emb_lr, 1e-9, 100);
    IN(c->dense_lr, 1e-9, 100);
    IN(c->init_range, 0, 10);
    REQUIRE(c->eval_every >= 0, "eval_every %ld", c->eval_every);
    double ws[] = {c->w_ctr, c->w_cvr, c->w_ctcvr};
    for (int i = 0; i < 3; i++) REQUIRE(ws[i] == -1 || (ws[i] >= 0 && ws[i] <= 1000), "loss weight %g", ws[i]);
    double others[] = {c->emb_init_acc, c->emb_l1, c->emb_l2, c->emb_beta1, c->emb_beta2};
    for (int i = 0; i < 5; i++) REQUIRE(isfinite(others[i]) && others[i] >= 0 && others[i] <= 100, "optimizer setting %g", others[i]);
    REQUIRE(c->emb_eps == -1 || (c->emb_eps >= 0 && c->emb_eps <= 1), "emb_eps %g", c->emb_eps);
    check_widths(c->hidden, c->n_hidden, "--hidden");
    if (c->bottom_s) check_widths(c->bottom, c->n_bottom, "--bottom");
    REQUIRE(c->checkpoint_every >= 0 && c->keep_checkpoints >= 0, "checkpoint settings");
}

static void int_list(const char *s)
{
    int v[CONFIG_MAX_LAYERS], w[CONFIG_MAX_LAYERS];
    int n = flags_int_list(s, v, CONFIG_MAX_LAYERS);
    if (n < 0) {
        REQUIRE(n == -1, "flags_int_list returned %d", n);
        return;
    }
    check_widths(v, n, "flags_int_list");
    char buf[CONFIG_MAX_LAYERS * 8 + 1];
    size_t at = 0;
    for (int i = 0; i < n; i++) at += (size_t)snprintf(buf + at, sizeof buf - at, "%s%d", i ? "," : "", v[i]);
    REQUIRE(flags_int_list(buf, w, CONFIG_MAX_LAYERS) == n && !memcmp(v, w, sizeof(int) * (size_t)n), "'%s' does not parse back", buf);
}

static void fields(const char *s)
{
    static fn_schema a, b;
    int rc = schema_parse(&a, s);
    if (rc) {
        check_refusal(rc, "schema_parse");
        return;
    }
    REQUIRE(a.n >= 1 && a.n <= SCHEMA_MAX_FIELDS, "%d fields", a.n);
    for (int i = 0; i < a.n; i++) {
        size_t len = strlen(a.names[i]);
        REQUIRE(len >= 1 && len <= SCHEMA_MAX_NAME, "field %d: %zu bytes", i, len);
        for (size_t k = 0; k < len; k++)
            REQUIRE((unsigned char)a.names[i][k] >= 0x20 && a.names[i][k] != ',', "field %d has byte %#x", i, (unsigned char)a.names[i][k]);
        REQUIRE(schema_find(&a, a.names[i], len) == i, "field %d '%s' not found at its index", i, a.names[i]);
    }
    static char text[SCHEMA_MAX_FIELDS * (SCHEMA_MAX_NAME + 1) + 1];
    schema_format(&a, text, sizeof text);
    REQUIRE(schema_parse(&b, text) == FN_OK && b.n == a.n, "'%s' does not parse back: %s", text, fn_err_msg());
    for (int i = 0; i < a.n; i++) REQUIRE(!strcmp(a.names[i], b.names[i]), "field %d changed", i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        /* --help prints the usage to stdout: not wanted a million times */
        REQUIRE(freopen("/dev/null", "w", stdout), "cannot silence stdout");
        ready = 1;
    }
    char *buf = malloc(size + 1);
    REQUIRE(buf, "out of memory");
    memcpy(buf, data, size);
    buf[size] = 0;
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = "train";
    for (char *p = buf; p <= buf + size && argc <= MAX_ARGS; p += strlen(p) + 1) argv[argc++] = p;
    argv[argc] = NULL;
    /* an input without a trailing NUL ends with its last argument; one with
     * it gets an empty last argument: both are command lines */

    train_conf c;
    int rc = config_parse_train(&c, argc, argv);
    if (rc == FN_OK) {
        check_conf(&c);
    } else if (rc != FLAGS_HELP) {
        check_refusal(rc, "config_parse_train");
        REQUIRE(strstr(fn_err_msg(), "--"), "refusal names no flag: %s", fn_err_msg());
    }
    for (int i = 1; i < argc; i++) {
        int_list(argv[i]);
        fields(argv[i]);
    }
    free(buf);
    return 0;
}
