/* tests/unit/test_flags.c — common/flags.c, common/schema.c and
 * config_parse_train() of common/config.c.
 *
 * Every refusal is checked twice: the code (FN_EUSAGE) and the message,
 * which must name the flag and, for numbers, the accepted range; every
 * acceptance checks the value that landed in the destination.  Range
 * boundaries are accepted and one step past them refused. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "flags.h"
#include "fn_error.h"
#include "schema.h"

#include "check.h"

/* ---- a flag table of every type ------------------------------------------ */

static long n_val;
static double lr_val;
static const char *path_val, *mode_val;
static int verbose_val;
static flag_spec specs[8];

static void reset(void)
{
    n_val = 7;
    lr_val = 0.5;
    path_val = NULL;
    mode_val = "a";
    verbose_val = 0;
    flag_spec s[] = {
        {"n", FLAG_INT, &n_val, 1, 100, NULL, "a count", 0, 0},
        {"lr", FLAG_DOUBLE, &lr_val, 1e-6, 10, NULL, "a rate", 0, 0},
        {"path", FLAG_STRING, &path_val, 0, 0, NULL, "a path", 1, 0},
        {"verbose", FLAG_BOOL, &verbose_val, 0, 0, NULL, "chatty", 0, 0},
        {"mode", FLAG_CHOICE, &mode_val, 0, 0, "a|bb|ccc", "a mode", 0, 0},
        {"big", FLAG_INT, &n_val, -5, 1L << 40, NULL, "a big one", 0, 0},
        {0},
    };
    memcpy(specs, s, sizeof s);
}

/* Parses a NULL-terminated argument list (argv[0] = "cmd" is added). */
static int parse(const char *first, ...)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = "cmd";
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a && argc < 31; a = va_arg(ap, const char *)) argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    reset();
    return flags_parse(specs, argc, argv);
}

#define OK(...)                                                                              \
    do {                                                                                     \
        int rc_ = parse(__VA_ARGS__, NULL);                                                  \
        CHECK(rc_ == FN_OK, "%s: rc %d (%s)", #__VA_ARGS__, rc_, fn_err_msg());              \
    } while (0)
/* refused, and the message contains each of the given fragments */
#define REFUSED(frag1, frag2, ...)                                                           \
    do {                                                                                     \
        int rc_ = parse(__VA_ARGS__, NULL);                                                  \
        CHECK(rc_ == FN_EUSAGE, "%s: rc %d, want FN_EUSAGE", #__VA_ARGS__, rc_);             \
        CHECK(strstr(fn_err_msg(), frag1) && strstr(fn_err_msg(), frag2),                    \
              "%s: message '%s' lacks '%s' or '%s'", #__VA_ARGS__, fn_err_msg(), frag1, frag2); \
    } while (0)

static void test_flags(void)
{
    /* ints */
    OK("--path", "p", "--n", "1");
    CHECK(n_val == 1, "n %ld", n_val);
    OK("--path", "p", "--n", "100");
    CHECK(n_val == 100, "n %ld", n_val);
    OK("--path", "p", "--n=5");
    CHECK(n_val == 5, "n %ld", n_val);
    OK("--n", "42", "--path=p");
    CHECK(n_val == 42 && path_val && !strcmp(path_val, "p"), "n %ld path %s", n_val, path_val);
    OK("--path", "p");
    CHECK(n_val == 7, "default kept: n %ld", n_val);
    REFUSED("--n", "[1, 100]", "--path", "p", "--n", "0");
    REFUSED("--n", "[1, 100]", "--path", "p", "--n", "101");
    REFUSED("--n", "[1, 100]", "--path", "p", "--n", "-1");
    REFUSED("--n", "[1, 100]", "--path", "p", "--n", "abc");
    REFUSED("--n", "[1, 100]", "--path", "p", "--n", "5x");
    REFUSED("--n", "[1, 100]", "--path", "p", "--n", "1.5");
    REFUSED("--n", "[1, 100]", "--path", "p", "--n", "");
    REFUSED("--n", "[1, 100]", "--path", "p", "--n=");
    REFUSED("--n", "[1, 100]", "--path", "p", "--n", "99999999999999999999999");
    REFUSED("--n", "needs a value", "--path", "p", "--n");
    OK("--path", "p", "--big", "-5");
    CHECK(n_val == -5, "negative value: n %ld", n_val);
    OK("--path", "p", "--big", "1099511627776");
    CHECK(n_val == 1099511627776L, "n %ld", n_val);
    REFUSED("--big", "1099511627776", "--path", "p", "--big", "1099511627777");
    REFUSED("--big", "-5", "--path", "p", "--big", "-6");

    /* doubles */
    OK("--path", "p", "--lr", "1e-6");
    CHECK(lr_val == 1e-6, "lr %g", lr_val);
    OK("--path", "p", "--lr", "10");
    CHECK(lr_val == 10, "lr %g", lr_val);
    OK("--path", "p", "--lr=0.25");
    CHECK(lr_val == 0.25, "lr %g", lr_val);
    REFUSED("--lr", "[1e-06, 10]", "--path", "p", "--lr", "10.000001");
    REFUSED("--lr", "[1e-06, 10]", "--path", "p", "--lr", "9.99e-7");
    REFUSED("--lr", "[1e-06, 10]", "--path", "p", "--lr", "0");
    REFUSED("--lr", "[1e-06, 10]", "--path", "p", "--lr", "nan");
    REFUSED("--lr", "[1e-06, 10]", "--path", "p", "--lr", "inf");
    REFUSED("--lr", "[1e-06, 10]", "--path", "p", "--lr", "1e400");
    REFUSED("--lr", "[1e-06, 10]", "--path", "p", "--lr", "0.5.1");
    REFUSED("--lr", "[1e-06, 10]", "--path", "p", "--lr", "x");

    /* strings, missing values, twice, unknown, required */
    REFUSED("--path", "needs a value", "--path");
    REFUSED("--path", "needs a value", "--path", "--verbose");      /* a flag is not a value */
    REFUSED("--n", "needs a value", "--n", "--path", "p");
    OK("--path=--odd-name");
    CHECK(path_val && !strcmp(path_val, "--odd-name"), "path %s", path_val);
    REFUSED("--path", "", "--path", "");
    REFUSED("--n", "twice", "--path", "p", "--n", "5", "--n", "6");
    REFUSED("--n", "twice", "--path", "p", "--n=5", "--n=5");
    REFUSED("--nope", "unknown", "--path", "p", "--nope", "1");
    REFUSED("--pat", "unknown", "--pat", "p");                      /* no prefix matching */
    REFUSED("--path", "required", "--n", "5");
    REFUSED("stray", "unexpected", "--path", "p", "stray");
    REFUSED("-n", "unexpected", "--path", "p", "-n", "5");
    REFUSED("--", "unexpected", "--path", "p", "--");

    /* bools */
    OK("--path", "p", "--verbose");
    CHECK(verbose_val == 1, "verbose %d", verbose_val);
    OK("--path", "p", "--verbose=true");
    CHECK(verbose_val == 1, "verbose %d", verbose_val);
    OK("--path", "p", "--verbose=1");
    CHECK(verbose_val == 1, "verbose %d", verbose_val);
    OK("--verbose=false", "--path", "p");
    CHECK(verbose_val == 0, "verbose %d", verbose_val);
    OK("--verbose=0", "--path", "p");
    CHECK(verbose_val == 0, "verbose %d", verbose_val);
    OK("--verbose", "--path", "p"); /* a bool does not swallow the next argument */
    CHECK(verbose_val == 1 && path_val && !strcmp(path_val, "p"), "verbose %d path %s", verbose_val, path_val);
    REFUSED("--verbose", "yes", "--path", "p", "--verbose=yes");
    REFUSED("--verbose", "true", "--path", "p", "--verbose=");
    REFUSED("--verbose", "twice", "--path", "p", "--verbose", "--verbose");

    /* choices */
    OK("--path", "p", "--mode", "bb");
    CHECK(mode_val && !strcmp(mode_val, "bb"), "mode %s", mode_val);
    OK("--path", "p", "--mode=ccc");
    CHECK(mode_val && !strcmp(mode_val, "ccc"), "mode %s", mode_val);
    OK("--path", "p", "--mode", "a");
    REFUSED("--mode", "a|bb|ccc", "--path", "p", "--mode", "b");
    REFUSED("--mode", "a|bb|ccc", "--path", "p", "--mode", "bbb");
    REFUSED("--mode", "a|bb|ccc", "--path", "p", "--mode", "");
    REFUSED("--mode", "a|bb|ccc", "--path", "p", "--mode", "a|bb");
    REFUSED("--mode", "a|bb|ccc", "--path", "p", "--mode", "A");

    /* help, seen */
    CHECK(parse("--path", "p", "--help", NULL) == FLAGS_HELP, "--help");
    CHECK(parse("-h", NULL) == FLAGS_HELP, "-h");
    OK("--path", "p", "--n", "3");
    CHECK(flags_seen(specs, "n") && flags_seen(specs, "path") && !flags_seen(specs, "lr") && !flags_seen(specs, "absent"),
          "flags_seen");

    /* usage lists every flag with its range */
    char *text = NULL;
    size_t tlen = 0;
    FILE *mf = open_memstream(&text, &tlen);
    flags_usage(mf, "cmd [options]", specs);
    fclose(mf);
    CHECK(text && strstr(text, "usage: funnel cmd") && strstr(text, "--lr") && strstr(text, "[1..100]") &&
          strstr(text, "{a|bb|ccc}") && strstr(text, "(required)"),
          "usage text:\n%s", text ? text : "");
    free(text);
}

static void test_int_list(void)
{
    int out[8];
    CHECK(flags_int_list("200,80", out, 8) == 2 && out[0] == 200 && out[1] == 80, "200,80");
    CHECK(flags_int_list("5", out, 8) == 1 && out[0] == 5, "5");
    CHECK(flags_int_list("1,2,3,4,5,6,7,8", out, 8) == 8 && out[7] == 8, "exactly cap");
    CHECK(flags_int_list("1000000", out, 8) == 1, "upper bound");
    static const char *bad[] = {"", "200,", ",80", "0", "a", "200,,80", "200,80x", "200;80", "1000001", "-5", "200,0",
                                "1,2,3,4,5,6,7,8,9", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK(flags_int_list(bad[i], out, 8) == -1, "'%s' must be refused", bad[i]);
    CHECK(flags_int_list("1,2,3", out, 2) == -1, "more than cap");
    CHECK(flags_int_list("1,2", out, 2) == 2, "cap 2");
}

static void test_schema(void)
{
    fn_schema s;
    CHECK(schema_parse(&s, "aliccp") == FN_OK, "aliccp: %s", fn_err_msg());
    static const char *want[] = {"101", "121", "122", "124", "125", "126", "127", "128", "129", "205", "206", "207",
                                 "210", "216", "508", "509", "702", "853", "301", "109_14", "110_14", "127_14", "150_14"};
    CHECK(s.n == 23, "aliccp has %d fields", s.n);
    for (int i = 0; i < 23 && i < s.n; i++) {
        CHECK(!strcmp(s.names[i], want[i]), "field %d is '%s', want '%s'", i, s.names[i], want[i]);
        CHECK(schema_find(&s, want[i], strlen(want[i])) == i, "find '%s'", want[i]);
    }
    static const char *absent[] = {"", "10", "1011", "109", "109_1", "109_140", "150_14 ", "X", "aliccp"};
    for (size_t i = 0; i < sizeof absent / sizeof *absent; i++)
        CHECK(schema_find(&s, absent[i], strlen(absent[i])) == -1, "'%s' must be absent", absent[i]);
    CHECK(schema_find(&s, "1011", 3) == 0, "find uses len, not the NUL");
    char buf[512];
    schema_format(&s, buf, sizeof buf);
    CHECK(!strcmp(buf, SCHEMA_ALICCP), "format '%s'", buf);

    CHECK(schema_parse(&s, "b,a") == FN_OK && s.n == 2 && schema_find(&s, "b", 1) == 0 && schema_find(&s, "a", 1) == 1,
          "custom order");
    static const char *bad[] = {"", "a,,b", ",a", "a,", "a,b,a", "a,a", ",", "a\tb",
                                "12345678901234567890123456789012" /* 32 chars */};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = schema_parse(&s, bad[i]);
        CHECK(rc == FN_EUSAGE, "'%s' must be refused (rc %d)", bad[i], rc);
        CHECK(strstr(fn_err_msg(), "--fields") != NULL, "'%s': message '%s' names no flag", bad[i], fn_err_msg());
    }
    CHECK(schema_parse(&s, "a,b,a") == FN_EUSAGE && strstr(fn_err_msg(), "'a'"), "duplicate named: '%s'", fn_err_msg());
    CHECK(schema_parse(&s, "1234567890123456789012345678901") == FN_OK, "31 chars accepted");

    /* the full 256 fields, each findable; 257 refused */
    char *big = malloc(257 * 8);
    size_t used = 0;
    for (int i = 0; i < 257; i++) used += (size_t)sprintf(big + used, "%sf%d", i ? "," : "", i);
    CHECK(schema_parse(&s, big) == FN_EUSAGE, "257 fields must be refused");
    *strrchr(big, ',') = 0;
    CHECK(schema_parse(&s, big) == FN_OK && s.n == 256, "256 fields: %s", fn_err_msg());
    for (int i = 0; i < 256; i++) {
        char name[16];
        int n = snprintf(name, sizeof name, "f%d", i);
        CHECK(schema_find(&s, name, (size_t)n) == i, "find f%d", i);
    }
    CHECK(schema_find(&s, "f256", 4) == -1, "f256 absent");

    /* 256 names sharing a long prefix: every prefix of it is absent, though
     * each is a prefix of all names (a lookup must compare whole names) */
    static const char pfx[] = "abcdefghijklmnopqrstuvwxyz";
    big = realloc(big, 256 * 32);
    used = 0;
    for (int i = 0; i < 256; i++) used += (size_t)sprintf(big + used, "%s%s%d", i ? "," : "", pfx, i);
    CHECK(schema_parse(&s, big) == FN_OK && s.n == 256, "prefixed names: %s", fn_err_msg());
    for (size_t len = 0; len <= strlen(pfx); len++)
        CHECK(schema_find(&s, pfx, len) == -1, "prefix of length %zu must be absent", len);
    CHECK(schema_find(&s, "abcdefghijklmnopqrstuvwxyz25", 28) == 25, "find a prefixed name");
    free(big);
}

/* ---- config_parse_train ---------------------------------------------------- */

static int train(train_conf *c, const char *first, ...)
{
    char *argv[40];
    int argc = 0;
    argv[argc++] = "train";
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a && argc < 39; a = va_arg(ap, const char *)) argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    return config_parse_train(c, argc, argv);
}

static void test_config(void)
{
    train_conf c;
    int rc = train(&c, "--train", "T", "--common", "C", "--out", "O", NULL);
    CHECK(rc == FN_OK, "minimal: %s", fn_err_msg());
    CHECK(!strcmp(c.train, "T") && !strcmp(c.common, "C") && !strcmp(c.out, "O"), "paths");
    CHECK(c.servers == 1 && c.batch == 1024 && c.dim == 16 && c.epochs == 1 && !strcmp(c.model, "esmm") &&
          !strcmp(c.format, "aliccp"), "defaults: servers %ld batch %ld dim %ld", c.servers, c.batch, c.dim);
    CHECK(c.n_hidden == 2 && c.hidden[0] == 200 && c.hidden[1] == 80, "default hidden");
    CHECK(c.emb_lr == 0.05 && c.dense_lr == 1e-3 && !strcmp(c.emb_opt, "adagrad"), "default optimizers");

    rc = train(&c, "--train", "T", "--common", "C", "--out", "O", "--batch", "64", "--hidden", "32,16,8", "--servers", "3",
               "--model", "cvr", "--test", "X", "--test-common", "Y", "--seed", "9", NULL);
    CHECK(rc == FN_OK, "full: %s", fn_err_msg());
    CHECK(c.batch == 64 && c.n_hidden == 3 && c.hidden[2] == 8 && c.servers == 3 && !strcmp(c.model, "cvr") &&
          !strcmp(c.test, "X") && !strcmp(c.test_common, "Y") && c.seed == 9, "full values");

    rc = train(&c, "--train", "T", "--out", "O", NULL);
    CHECK(rc == FN_EUSAGE && strstr(fn_err_msg(), "--common"), "no --common: rc %d '%s'", rc, fn_err_msg());
    rc = train(&c, "--train", "T", "--common", "C", "--out", "O", "--batch", "0", NULL);
    CHECK(rc == FN_EUSAGE && strstr(fn_err_msg(), "--batch"), "--batch 0: rc %d '%s'", rc, fn_err_msg());
    rc = train(&c, "--train", "T", "--common", "C", "--out", "O", "--batch", "1", NULL);
    CHECK(rc == FN_OK && c.batch == 1, "--batch 1: %s", fn_err_msg());
    rc = train(&c, "--train", "T", "--common", "C", "--out", "O", "--hidden", "200,", NULL);
    CHECK(rc == FN_EUSAGE && strstr(fn_err_msg(), "--hidden"), "--hidden 200,: rc %d '%s'", rc, fn_err_msg());
    rc = train(&c, "--train", "T", "--common", "C", NULL);
    CHECK(rc == FN_EUSAGE && strstr(fn_err_msg(), "--out"), "no --out: rc %d '%s'", rc, fn_err_msg());
    rc = train(&c, "--common", "C", "--out", "O", NULL);
    CHECK(rc == FN_EUSAGE && strstr(fn_err_msg(), "--train"), "no --train: rc %d '%s'", rc, fn_err_msg());
    rc = train(&c, "--train", "T", "--common", "C", "--out", "O", "--test", "X", NULL);
    CHECK(rc == FN_EUSAGE && strstr(fn_err_msg(), "--test-common"), "--test alone: rc %d '%s'", rc, fn_err_msg());
    rc = train(&c, "--train", "T", "--common", "C", "--out", "O", "--model", "nope", NULL);
    CHECK(rc == FN_EUSAGE && strstr(fn_err_msg(), "--model"), "--model nope: rc %d '%s'", rc, fn_err_msg());
    rc = train(&c, "--train", "T", "--common", "C", "--out", "O", "--servers", "0", NULL);
    CHECK(rc == FN_EUSAGE && strstr(fn_err_msg(), "--servers"), "--servers 0: rc %d '%s'", rc, fn_err_msg());
    rc = train(&c, "--train", "--common", "C", "--out", "O", NULL);
    CHECK(rc == FN_EUSAGE && strstr(fn_err_msg(), "--train"), "--train without value: rc %d '%s'", rc, fn_err_msg());
}

int main(void)
{
    test_flags();
    test_int_list();
    test_schema();
    test_config();
    if (failures) { printf("test_flags: %d failures\n", failures); return 1; }
    printf("test_flags: ok\n");
    return 0;
}
