/* common/flags.c — see flags.h. */
#include "flags.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fn_error.h"

static flag_spec *find(flag_spec *specs, const char *name, size_t len)
{
    for (flag_spec *s = specs; s->name; s++)
        if (strlen(s->name) == len && !strncmp(s->name, name, len)) return s;
    return NULL;
}

static int choice_ok(const char *choices, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        const char *e = strchr(p, '|');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !strncmp(p, v, n)) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

static int set_value(flag_spec *s, const char *v)
{
    char *end;
    switch (s->type) {
    case FLAG_INT: {
        errno = 0;
        long x = strtol(v, &end, 10);
        if (errno || end == v || *end || x < s->min || x > s->max)
            return fn_fail(FN_EUSAGE, "--%s must be an integer in [%.0f, %.0f], got '%.*s%s'", s->name, s->min, s->max, FLAGS_QUOTE(v));
        *(long *)s->dst = x;
        return FN_OK;
    }
    case FLAG_DOUBLE: {
        errno = 0;
        double x = strtod(v, &end);
        if (errno || end == v || *end || !isfinite(x) || x < s->min || x > s->max)
            return fn_fail(FN_EUSAGE, "--%s must be a number in [%g, %g], got '%.*s%s'", s->name, s->min, s->max, FLAGS_QUOTE(v));
        *(double *)s->dst = x;
        return FN_OK;
    }
    case FLAG_STRING:
        if (!*v) return fn_fail(FN_EUSAGE, "--%s needs a non-empty value", s->name);
        *(const char **)s->dst = v;
        return FN_OK;
    case FLAG_CHOICE:
        if (!choice_ok(s->choices, v))
            return fn_fail(FN_EUSAGE, "--%s must be one of %s, got '%.*s%s'", s->name, s->choices, FLAGS_QUOTE(v));
        *(const char **)s->dst = v;
        return FN_OK;
    case FLAG_BOOL:
        break;
    }
    return fn_fail(FN_EUSAGE, "--%s: internal flag type error", s->name);
}

int flags_parse(flag_spec *specs, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return FLAGS_HELP;
        if (strncmp(a, "--", 2) || !a[2])
            return fn_fail(FN_EUSAGE, "unexpected argument '%.*s%s' (flags start with --)", FLAGS_QUOTE(a));
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        flag_spec *s = find(specs, name, len);
        if (!s) return fn_fail(FN_EUSAGE, "unknown flag '--%.*s%s' (see --help)", (int)(len > FLAGS_QUOTE_MAX ? FLAGS_QUOTE_MAX : len), name, len > FLAGS_QUOTE_MAX ? "..." : "");
        if (s->seen) return fn_fail(FN_EUSAGE, "--%s given twice", s->name);
        s->seen = 1;
        if (s->type == FLAG_BOOL) {
            if (eq) {
                if (!strcmp(eq + 1, "1") || !strcmp(eq + 1, "true")) *(int *)s->dst = 1;
                else if (!strcmp(eq + 1, "0") || !strcmp(eq + 1, "false")) *(int *)s->dst = 0;
                else return fn_fail(FN_EUSAGE, "--%s takes no value or =true/=false, got '%.*s%s'", s->name, FLAGS_QUOTE(eq + 1));
            } else {
                *(int *)s->dst = 1;
            }
            continue;
        }
        const char *v;
        /* "--train --resume" is a forgotten value, not a file named
         * "--resume"; such a value can still be given as --train=--resume */
        if (eq) v = eq + 1;
        else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2)) v = argv[++i];
        else return fn_fail(FN_EUSAGE, "--%s needs a value", s->name);
        int rc = set_value(s, v);
        if (rc) return rc;
    }
    for (flag_spec *s = specs; s->name; s++)
        if (s->required && !s->seen) return fn_fail(FN_EUSAGE, "--%s is required (see --help)", s->name);
    return FN_OK;
}

void flags_usage(FILE *f, const char *synopsis, const flag_spec *specs)
{
    fprintf(f, "usage: funnel %s\n\noptions:\n", synopsis);
    for (const flag_spec *s = specs; s->name; s++) {
        char range[96] = "";
        if (s->type == FLAG_INT) snprintf(range, sizeof range, " [%.0f..%.0f]", s->min, s->max);
        else if (s->type == FLAG_DOUBLE) snprintf(range, sizeof range, " [%g..%g]", s->min, s->max);
        else if (s->type == FLAG_CHOICE) snprintf(range, sizeof range, " {%s}", s->choices);
        fprintf(f, "  --%-22s %s%s%s\n", s->name, s->help, range, s->required ? " (required)" : "");
    }
}

int flags_seen(const flag_spec *specs, const char *name)
{
    for (const flag_spec *s = specs; s->name; s++)
        if (!strcmp(s->name, name)) return s->seen;
    return 0;
}

int flags_int_list(const char *s, int *out, int cap)
{
    int n = 0;
    const char *p = s;
    if (!*p) return -1;
    while (*p) {
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (errno || end == p || x < 1 || x > 1000000 || n >= cap) return -1;
        out[n++] = (int)x;
        if (*end == ',') p = end + 1;
        else if (!*end) break;
        else return -1;
        if (!*p) return -1;
    }
    return n;
}
