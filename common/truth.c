/* common/truth.c — see truth.h. */
#include "truth.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fn_error.h"
#include "lines.h"

static uint64_t truth_key_of(const void *ud, uint32_t slot) { return ((const fn_truth *)ud)->id[slot]; }

static int grow(fn_truth *t)
{
    size_t cap = t->cap ? t->cap * 2 : 1024; /* grows: small worlds stay small */
    uint64_t *id = realloc(t->id, cap * sizeof *id);
    if (id) t->id = id;
    float *a = realloc(t->pctr, cap * sizeof *a);
    if (a) t->pctr = a;
    float *b = realloc(t->pcvr, cap * sizeof *b);
    if (b) t->pcvr = b;
    float *c = realloc(t->conv, cap * sizeof *c);
    if (c) t->conv = c;
    if (!id || !a || !b || !c) return FN_ENOMEM;
    t->cap = cap;
    return FN_OK;
}

static int prob(const char *s, char **end, float *out)
{
    errno = 0;
    double v = strtod(s, end);
    if (*end == s || errno || !(v >= 0 && v <= 1)) return 0;
    *out = (float)v;
    return 1;
}

int truth_load(fn_truth *t, const char *path)
{
    memset(t, 0, sizeof *t);
    int rc = keymap_init(&t->index, 1024, truth_key_of, t);
    if (rc) return fn_fail(rc, "%s: out of memory", path);
    lines *l;
    if ((rc = lines_open(&l, path, 0, 1))) { truth_free(t); return rc; }
    char *line;
    size_t len;
    int got = lines_next(l, &line, &len);
    /* the whole header: a file of another tool that happens to be named
     * truth_X.csv is told apart at its first line */
    static const char header[] = "sample_id,pctr,pcvr,conv";
    if (got != 1 || len != sizeof header - 1 || memcmp(line, header, len)) {
        if (got < 0) rc = fn_fail(-got, "%s (line 1)", fn_err_msg());
        else if (got == 0) rc = fn_fail(FN_EPARSE, "%s:1: empty file, want the header %s", path, header);
        else rc = fn_fail(FN_EPARSE, "%s:1: header is '%.*s', want %s", path, (int)(len > 60 ? 60 : len), line, header);
        lines_close(&l);
        truth_free(t);
        return rc;
    }
    while ((got = lines_next(l, &line, &len)) == 1) {
        if (t->n == t->cap && (rc = grow(t))) { rc = fn_fail(rc, "%s:%llu: out of memory", path, (unsigned long long)lines_lineno(l)); break; }
        char *p = line, *end;
        errno = 0;
        unsigned long long id = strtoull(p, &end, 10);
        float pc, pv, cv;
        int ok = *p >= '0' && *p <= '9' && !errno && *end == ','; /* strtoull would take "-1" (and " 1") */
        ok = ok && prob(end + 1, &end, &pc) && *end == ',';
        ok = ok && prob(end + 1, &end, &pv) && *end == ',';
        ok = ok && prob(end + 1, &end, &cv) && end == line + len && (cv == 0 || cv == 1); /* a NUL inside is no end */
        if (!ok) {
            rc = fn_fail(FN_EPARSE, "%s:%llu: '%.*s%s': want sample_id,pctr,pcvr,conv with probabilities in [0,1] and conv 0/1", path,
                         (unsigned long long)lines_lineno(l), (int)(len > 60 ? 60 : len), line, len > 60 ? "..." : "");
            break;
        }
        if (keymap_find(&t->index, id) != KEYMAP_NONE) { rc = fn_fail(FN_EPARSE, "%s:%llu: sample id %llu repeated", path, (unsigned long long)lines_lineno(l), id); break; }
        t->id[t->n] = id;
        t->pctr[t->n] = pc;
        t->pcvr[t->n] = pv;
        t->conv[t->n] = cv;
        if ((rc = keymap_insert(&t->index, id, (uint32_t)t->n))) { rc = fn_fail(rc, "%s:%llu: out of memory", path, (unsigned long long)lines_lineno(l)); break; }
        t->n++;
    }
    if (got < 0) rc = fn_fail(-got, "%s (line %llu)", fn_err_msg(), (unsigned long long)lines_lineno(l) + 1);
    lines_close(&l);
    if (rc) truth_free(t);
    return rc;
}

void truth_free(fn_truth *t)
{
    keymap_free(&t->index);
    free(t->id); free(t->pctr); free(t->pcvr); free(t->conv);
    memset(t, 0, sizeof *t);
}

long truth_find(const fn_truth *t, uint64_t id)
{
    uint32_t s = keymap_find(&t->index, id);
    return s == KEYMAP_NONE ? -1 : (long)s;
}

const char *truth_beside(const char *skeleton, char *buf, size_t cap)
{
    const char *base = strrchr(skeleton, '/');
    base = base ? base + 1 : skeleton;
    const char *pre = "sample_skeleton_";
    if (strncmp(base, pre, strlen(pre))) return NULL;
    int n = snprintf(buf, cap, "%.*struth_%s", (int)(base - skeleton), skeleton, base + strlen(pre));
    if (n < 0 || (size_t)n >= cap) return NULL;
    /* exists, readable or not: one that cannot be read is warned about by
     * whoever loads it, not passed over in silence */
    return access(buf, F_OK) == 0 ? buf : NULL;
}
