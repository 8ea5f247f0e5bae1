/* tests/unit/test_aliccp.c — common/aliccp.c on hand-written files.
 *
 * Each good line's expected example (sample id, labels, and the ordered
 * (field, id, value) items: its common features first, then its own) is
 * written beside the line, so the reader's output is compared entry by
 * entry: fields are schema indices, keys fn_key(0, field, id), values the
 * item's number.  Malformed variants of every column sit between good lines:
 * each must be counted and skipped while its neighbours still come out; in
 * stop mode the reader must return FN_EPARSE naming "PATH:LINE:" with the
 * true line number, also from a partition that starts mid-file.  Finally
 * a generated file with scattered bad lines is read in P = 1..5 partitions:
 * every good sample id exactly once. */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aliccp.h"
#include "batch.h"
#include "fn_error.h"
#include "hash.h"
#include "log.h"
#include "schema.h"

#include "check.h"

/* the common features are a table now (common/ctable.h): the old loader's names */
typedef fn_ctable aliccp_common;
static int aliccp_common_load(aliccp_common **c, const char *path, const fn_schema *s, int stop)
{
    int rc = ctable_from_text(c, path, s, stop, NULL);
    if (rc) *c = NULL;
    return rc;
}
#define aliccp_common_destroy ctable_close
static size_t aliccp_common_count(const fn_ctable *c) { return c->n_sets; }
static const aliccp_stats *aliccp_common_stats(const fn_ctable *c)
{
    static aliccp_stats st;
    st = (aliccp_stats){.lines = c->lines, .bad_lines = c->bad_lines, .unknown_items = c->unknown_items};
    return &st;
}


static fn_schema schema;
#define FIELDS "101,205,301,109_14" /* indices 0..3; "999" is unknown */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f) { printf("FAIL cannot create %s\n", path); exit(1); }
    fputs(text, f);
    fclose(f);
}

static void path_of(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", dir, name); }

/* ---- expected examples --------------------------------------------------- */

#define MAX_ITEMS 16
typedef struct {
    uint64_t id;
    int click, buy;
    int n;
    int field[MAX_ITEMS];
    const char *fid[MAX_ITEMS];
    float val[MAX_ITEMS];
} expect;

/* Appends items "field:id:value;..." (as text, known fields only) to e. */
static void expect_items(expect *e, const char *spec)
{
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", spec);
    for (char *save = NULL, *it = strtok_r(tmp, ";", &save); it; it = strtok_r(NULL, ";", &save)) {
        char *c1 = strchr(it, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) { printf("bad expect spec %s\n", spec); exit(1); }
        *c1 = *c2 = 0;
        int f = schema_find(&schema, it, strlen(it));
        if (f < 0) { printf("bad expect field %s\n", it); exit(1); }
        e->field[e->n] = f;
        e->fid[e->n] = strdup(c1 + 1);
        e->val[e->n] = strtof(c2 + 1, NULL);
        e->n++;
    }
}

static void expect_free(expect *e, int n)
{
    for (int i = 0; i < n; i++)
        for (int k = 0; k < e[i].n; k++) free((void *)e[i].fid[k]);
}

/* Compares example i of b with e. */
static void check_example(const char *what, const fn_batch *b, int i, const expect *e)
{
    CHECK(b->sample_id[i] == e->id, "%s: example %d sample_id %" PRIu64 ", want %" PRIu64, what, i, b->sample_id[i], e->id);
    CHECK(b->click[i] == (float)e->click && b->buy[i] == (float)e->buy, "%s: id %" PRIu64 " labels %g,%g, want %d,%d", what, e->id,
          b->click[i], b->buy[i], e->click, e->buy);
    size_t a = b->off[i], z = b->off[i + 1];
    CHECK(z - a == (size_t)e->n, "%s: id %" PRIu64 " has %zu features, want %d", what, e->id, z - a, e->n);
    if (z - a != (size_t)e->n) return;
    for (int k = 0; k < e->n; k++) {
        uint64_t key = fn_key(0, (uint32_t)e->field[k], e->fid[k], strlen(e->fid[k]));
        CHECK(b->field[a + k] == e->field[k], "%s: id %" PRIu64 " item %d field %u, want %d", what, e->id, k, b->field[a + k], e->field[k]);
        CHECK(b->key[a + k] == key, "%s: id %" PRIu64 " item %d (%s) wrong key", what, e->id, k, e->fid[k]);
        CHECK(b->val[a + k] == e->val[k], "%s: id %" PRIu64 " item %d value %g, want %g", what, e->id, k, b->val[a + k], e->val[k]);
    }
}

/* Reads a whole partition in batches of `max` and compares with want[0..nwant). */
static void read_and_check(const char *what, aliccp_reader *r, fn_batch *b0, int max, const expect *want, int nwant)
{
    int seen = 0;
    fn_batch flat, *b = &flat;
    if (batch_init(&flat, b0->cap, 64)) { CHECK(0, "out of memory"); return; }
    for (;;) {
        int rc = aliccp_reader_next(r, b0, max);
        if (!rc) rc = ctable_flatten(b0, &flat);
        CHECK(rc == FN_OK, "%s: next: %d %s", what, rc, fn_err_msg());
        if (rc) return;
        CHECK(b->n <= max, "%s: %d examples for max %d", what, b->n, max);
        if (b->n == 0) break;
        CHECK(b->off[0] == 0, "%s: off[0] = %zu", what, b->off[0]);
        CHECK(b->off[b->n] == b->nf, "%s: off[n] %zu != nf %zu", what, b->off[b->n], b->nf);
        for (int i = 0; i < b->n; i++) {
            CHECK(seen < nwant, "%s: extra example id %" PRIu64, what, b->sample_id[i]);
            if (seen < nwant) check_example(what, b, i, &want[seen]);
            seen++;
        }
    }
    CHECK(seen == nwant, "%s: %d examples, want %d", what, seen, nwant);
    batch_free(&flat);
    double pr = aliccp_reader_progress(r);
    CHECK(pr == 1.0, "%s: progress %g at the end", what, pr);
}

/* ---- common file + skeleton with every malformed variant ----------------- */

static void test_hand_written(void)
{
    char cpath[128], spath[128];
    path_of(cpath, sizeof cpath, "common.csv");
    path_of(spath, sizeof spath, "skeleton.csv");
    /* common: good lines c1..c4 and one of each malformed kind (cb*) */
    write_file(cpath,
               "c1,2,101\x02u1\x03" "1\x01" "205\x02x7\x03" "2.5\n"         /* 1 */
               "c2,1,301\x02k\x03" "0.25\n"                                 /* 2 */
               "\n"                                                         /* 3 empty */
               "c3,0,\n"                                                    /* 4 no features */
               "cb1\n"                                                      /* 5 no columns */
               "cb2,2,101\x02" "a\x03" "1\n"                                   /* 6 count mismatch */
               "c4,2,999\x02z\x03" "1\x01" "101\x02u2\x03" "-3\n"           /* 7 one unknown item */
               "cb3,1,101a\x03" "1\n"                                       /* 8 no \x02 */
               "cb4,1,101\x02" "a\x03nan\n"                                    /* 9 nan */
               ",0,\n"                                                      /* 10 empty md5 */
               "c1,0,\n"                                                    /* 11 duplicate md5 */
               "cb5,1,101\x02" "a\x03" "1\x01\n"                               /* 12 trailing \x01 */
               "cb6,x,\n"                                                   /* 13 count not a number */
               "cb7,1,101\x02" "a\n"                                           /* 14 no \x03 */
               "cb8,1,101\x02" "a\x03inf\r\n");                                /* 15 inf */
    aliccp_common *common;
    int rc = aliccp_common_load(&common, cpath, &schema, 0);
    CHECK(rc == FN_OK, "common load: %d %s", rc, fn_err_msg());
    if (rc) return;
    const aliccp_stats *cs = aliccp_common_stats(common);
    CHECK(aliccp_common_count(common) == 4, "common count %zu, want 4", aliccp_common_count(common));
    CHECK(cs->lines == 15, "common lines %" PRIu64, cs->lines);
    CHECK(cs->bad_lines == 11, "common bad lines %" PRIu64 ", want 11", cs->bad_lines);
    CHECK(cs->unknown_items == 1, "common unknown items %" PRIu64 ", want 1", cs->unknown_items);

    /* skeleton: good lines interleaved with one of each malformed kind */
    static const struct { const char *line; int good; } L[] = {
        {"1,0,0,c1,1,109_14\x02q\x03" "3", 1},
        {"2,0,0", 0},                                             /* fewer columns */
        {"2,1,0,c2,2,205\x02" "a\x03" "1\x01" "205\x02" "b\x03-0.5", 1},
        {"3,0,0,c1", 0},                                          /* no feature_count */
        {"x3,0,0,c1,0,", 0},                                      /* sample id not an integer */
        {"-3,0,0,c1,0,", 0},                                      /* negative sample id */
        {"3,1,1,c3,0,", 1},                                       /* nothing but labels */
        {"4,2,0,c1,0,", 0},                                       /* click 2 */
        {"4,0,1,c1,0,", 0},                                       /* buy without click */
        {"4,,0,c1,0,", 0},                                        /* empty click */
        {"4,0,01,c1,0,", 0},                                      /* buy "01" */
        {"4,1,0,c4,2,999\x02w\x03" "1\x01" "301\x02" "9\x03" "7", 1}, /* unknown own item */
        {"5,0,0,c1,2,101\x02" "a\x03" "1", 0},                    /* feature_count mismatch */
        {"5,0,0,c1,0,101\x02" "a\x03" "1", 0},                    /* feature_count mismatch */
        {"5,0,0,c1,z,101\x02" "a\x03" "1", 0},                    /* feature_count not a number */
        {"5,0,0,c1,1,101a\x03" "1", 0},                           /* item without \x02 */
        {"5,0,0,c1,1,101\x02" "a1", 0},                           /* item without \x03 */
        {"5,0,0,c1,1,\x02" "a\x03" "1", 0},                       /* empty field id */
        {"5,0,0,c1,1,101\x02\x03" "1", 0},                        /* empty feature id */
        {"5,0,0,c1,1,101\x02" "a\x03" "abc", 0},                  /* non-numeric value */
        {"5,0,0,c1,1,101\x02" "a\x03", 0},                        /* empty value */
        {"5,0,0,c1,1,101\x02" "a\x03" "nan", 0},                  /* nan */
        {"5,0,0,c1,1,101\x02" "a\x03" "inf", 0},                  /* inf */
        {"5,0,0,c1,1,101\x02" "a\x03" "-inf", 0},                 /* -inf */
        {"5,0,0,c1,1,101\x02" "a\x03" "1e39", 0},                 /* overflows a float */
        {"5,0,0,c1,1,101\x02" "a\x03" "1x", 0},                   /* trailing garbage */
        {"5,0,0,nomd5,0,", 0},                                    /* md5 not in common */
        {"5,0,0,cb2,1,101\x02" "a\x03" "1", 0},                   /* md5 of a bad common line */
        {"5,0,0,c1,1,101\x02" "a\x03" "1\x01", 0},                /* trailing \x01 */
        {"5,0,0,c1,2,101\x02" "a\x03" "1\x01\x01" "205\x02" "b\x03" "1", 0}, /* empty item */
        {"", 0},                                                  /* empty line */
        {"5,1,1,c2,2,101\x02" "d\x03" "1.0\x01" "109_14\x02" "e\x03" "0.125", 1},
        {"6,0,0,c1,1,101\x02" "a\x03" "1\r", 1},                  /* "\r\n" ending */
    };
    const int NL = (int)(sizeof L / sizeof L[0]);
    expect want[8];
    memset(want, 0, sizeof want);
    int nw = 0;
    want[nw] = (expect){.id = 1};
    expect_items(&want[nw++], "101:u1:1;205:x7:2.5;109_14:q:3");
    want[nw] = (expect){.id = 2, .click = 1};
    expect_items(&want[nw++], "301:k:0.25;205:a:1;205:b:-0.5");
    want[nw++] = (expect){.id = 3, .click = 1, .buy = 1};
    want[nw] = (expect){.id = 4, .click = 1};
    expect_items(&want[nw++], "101:u2:-3;301:9:7");
    want[nw] = (expect){.id = 5, .click = 1, .buy = 1};
    expect_items(&want[nw++], "301:k:0.25;101:d:1;109_14:e:0.125");
    want[nw] = (expect){.id = 6};
    expect_items(&want[nw++], "101:u1:1;205:x7:2.5;101:a:1");

    FILE *f = fopen(spath, "wb");
    int nbad = 0;
    for (int i = 0; i < NL; i++) {
        fprintf(f, "%s\n", L[i].line);
        nbad += !L[i].good;
    }
    fclose(f);

    fn_batch b;
    CHECK(batch_init(&b, 4, 4) == FN_OK, "batch_init");
    int maxes[] = {1, 2, 3, 4, 100};
    for (int m = 0; m < 5; m++) {
        aliccp_reader *r;
        rc = aliccp_reader_open(&r, spath, common, &schema, 0, 1, 0);
        CHECK(rc == FN_OK, "reader open: %s", fn_err_msg());
        if (rc) continue;
        char what[64];
        snprintf(what, sizeof what, "skeleton max=%d", maxes[m]);
        read_and_check(what, r, &b, maxes[m], want, nw);
        const aliccp_stats *st = aliccp_reader_stats(r);
        CHECK(st->lines == (uint64_t)NL, "%s: lines %" PRIu64 ", want %d", what, st->lines, NL);
        CHECK(st->bad_lines == (uint64_t)nbad, "%s: bad lines %" PRIu64 ", want %d", what, st->bad_lines, nbad);
        CHECK(st->examples == (uint64_t)nw, "%s: examples %" PRIu64, what, st->examples);
        CHECK(st->unknown_items == 1, "%s: unknown items %" PRIu64 ", want 1", what, st->unknown_items);
        CHECK(st->missing_common == 2, "%s: missing common %" PRIu64 ", want 2", what, st->missing_common);
        /* the next epoch gives the same */
        CHECK(aliccp_reader_rewind(r) == FN_OK, "rewind");
        snprintf(what, sizeof what, "skeleton max=%d after rewind", maxes[m]);
        read_and_check(what, r, &b, maxes[m], want, nw);
        aliccp_reader_close(&r);
        CHECK(r == NULL, "close must clear the pointer");
    }

    /* stop mode: the first bad line (line 2) stops the read, naming it */
    {
        aliccp_reader *r;
        rc = aliccp_reader_open(&r, spath, common, &schema, 0, 1, 1);
        CHECK(rc == FN_OK, "reader open: %s", fn_err_msg());
        rc = aliccp_reader_next(r, &b, 100);
        char want_pfx[200];
        snprintf(want_pfx, sizeof want_pfx, "%s:2:", spath);
        CHECK(rc == FN_EPARSE, "stop mode: rc %d, want FN_EPARSE", rc);
        CHECK(strstr(fn_err_msg(), want_pfx) != NULL, "stop mode: message '%s' lacks '%s'", fn_err_msg(), want_pfx);
        CHECK(strstr(fn_err_msg(), "fewer than 6 columns") != NULL, "stop mode: message '%s' lacks the reason", fn_err_msg());
        aliccp_reader_close(&r);
    }

    /* without a common file: md5 ignored, only the line's own items */
    {
        aliccp_reader *r;
        rc = aliccp_reader_open(&r, spath, NULL, &schema, 0, 1, 0);
        CHECK(rc == FN_OK, "reader open: %s", fn_err_msg());
        expect w2[8];
        memset(w2, 0, sizeof w2);
        int n2 = 0;
        w2[n2] = (expect){.id = 1};
        expect_items(&w2[n2++], "109_14:q:3");
        w2[n2] = (expect){.id = 2, .click = 1};
        expect_items(&w2[n2++], "205:a:1;205:b:-0.5");
        w2[n2++] = (expect){.id = 3, .click = 1, .buy = 1};
        w2[n2] = (expect){.id = 4, .click = 1};
        expect_items(&w2[n2++], "301:9:7");
        w2[n2++] = (expect){.id = 5}; /* "5,0,0,nomd5,0,": fine without a common file */
        w2[n2] = (expect){.id = 5};
        expect_items(&w2[n2++], "101:a:1"); /* cb2 line: fine too */
        w2[n2] = (expect){.id = 5, .click = 1, .buy = 1};
        expect_items(&w2[n2++], "101:d:1;109_14:e:0.125");
        w2[n2] = (expect){.id = 6};
        expect_items(&w2[n2++], "101:a:1");
        read_and_check("no common", r, &b, 3, w2, n2);
        CHECK(aliccp_reader_stats(r)->missing_common == 0, "no common: missing_common counted");
        aliccp_reader_close(&r);
        expect_free(w2, n2);
    }

    /* the duplicate md5 kept the first definition: checked through id 1 above;
     * stop mode on the common file names the first bad line (3, empty) */
    {
        aliccp_common *c2 = (aliccp_common *)1;
        rc = aliccp_common_load(&c2, cpath, &schema, 1);
        char pfx[200];
        snprintf(pfx, sizeof pfx, "%s:3:", cpath);
        CHECK(rc == FN_EPARSE, "common stop mode: rc %d", rc);
        CHECK(c2 == NULL, "common stop mode: *out must be NULL");
        CHECK(strstr(fn_err_msg(), pfx) != NULL, "common stop mode: '%s' lacks '%s'", fn_err_msg(), pfx);
        /* each malformed common kind alone, in stop mode, at line 2 */
        static const char *bad_common[] = {
            "c1,0,\n",                          /* duplicate of line 1 */
            "cb1\n",
            "cb2,2,101\x02" "a\x03" "1\n",
            "cb3,1,101a\x03" "1\n",
            "cb4,1,101\x02" "a\x03nan\n",
            ",0,\n",
            "cb5,1,101\x02" "a\x03" "1\x01\n",
            "cb6,x,\n",
            "cb7,1,101\x02" "a\n",
            "\n",
        };
        char p2[128];
        path_of(p2, sizeof p2, "common_bad.csv");
        for (size_t k = 0; k < sizeof bad_common / sizeof *bad_common; k++) {
            char text[256];
            snprintf(text, sizeof text, "c1,1,101\x02" "a\x03" "1\n%sc9,0,\n", bad_common[k]);
            write_file(p2, text);
            snprintf(pfx, sizeof pfx, "%s:2:", p2);
            rc = aliccp_common_load(&c2, p2, &schema, 1);
            CHECK(rc == FN_EPARSE && strstr(fn_err_msg(), pfx), "common bad kind %zu: rc %d msg '%s'", k, rc, fn_err_msg());
            aliccp_common_destroy(&c2);
            rc = aliccp_common_load(&c2, p2, &schema, 0);
            CHECK(rc == FN_OK && aliccp_common_count(c2) == 2 && aliccp_common_stats(c2)->bad_lines == 1,
                  "common bad kind %zu skipped: rc %d", k, rc);
            aliccp_common_destroy(&c2);
            CHECK(c2 == NULL, "destroy must clear the pointer");
        }
        unlink(p2);
    }

    /* a missing file names itself */
    {
        char p3[128];
        path_of(p3, sizeof p3, "absent.csv");
        aliccp_reader *r;
        rc = aliccp_reader_open(&r, p3, common, &schema, 0, 1, 0);
        CHECK(rc == FN_EIO && strstr(fn_err_msg(), p3), "missing skeleton: rc %d '%s'", rc, fn_err_msg());
        aliccp_common *c3;
        rc = aliccp_common_load(&c3, p3, &schema, 0);
        CHECK(rc == FN_EIO && strstr(fn_err_msg(), p3), "missing common: rc %d '%s'", rc, fn_err_msg());
    }

    batch_free(&b);
    expect_free(want, nw);
    aliccp_common_destroy(&common);
    unlink(cpath);
    unlink(spath);
}

/* ---- stop mode across a partition boundary -------------------------------- */

static void test_stop_line_number(void)
{
    char cpath[128], spath[128];
    path_of(cpath, sizeof cpath, "common2.csv");
    path_of(spath, sizeof spath, "part.csv");
    write_file(cpath, "c1,1,101\x02" "a\x03" "1\n");
    /* ten lines of one length: partition 1 of 2 starts exactly at line 6 */
    FILE *f = fopen(spath, "wb");
    for (int i = 1; i <= 10; i++)
        fprintf(f, "%d,%d,0,c1,1,205\x02" "b%d\x03" "1\n", 10 + i, i == 7 ? 2 : 0, i);
    fclose(f);
    aliccp_common *common;
    int rc = aliccp_common_load(&common, cpath, &schema, 1);
    CHECK(rc == FN_OK, "common: %s", fn_err_msg());
    if (rc) return;
    fn_batch b;
    batch_init(&b, 64, 64);

    aliccp_reader *r;
    rc = aliccp_reader_open(&r, spath, common, &schema, 1, 2, 1);
    CHECK(rc == FN_OK, "open part 1/2: %s", fn_err_msg());
    rc = aliccp_reader_next(r, &b, 64);
    char pfx[200];
    snprintf(pfx, sizeof pfx, "%s:7:", spath);
    CHECK(rc == FN_EPARSE, "part 1/2 stop mode: rc %d", rc);
    CHECK(strstr(fn_err_msg(), pfx) != NULL, "part 1/2 stop mode: message '%s' lacks '%s'", fn_err_msg(), pfx);
    CHECK(strstr(fn_err_msg(), "click '2' is not 0 or 1") != NULL, "part 1/2 stop mode: message '%s' lacks the reason", fn_err_msg());
    aliccp_reader_close(&r);

    /* partition 0 in stop mode: lines 1..5, no error */
    rc = aliccp_reader_open(&r, spath, common, &schema, 0, 2, 1);
    CHECK(rc == FN_OK, "open part 0/2");
    rc = aliccp_reader_next(r, &b, 64);
    CHECK(rc == FN_OK && b.n == 5, "part 0/2: rc %d n %d", rc, b.n);
    for (int i = 0; i < b.n; i++) CHECK(b.sample_id[i] == (uint64_t)(11 + i), "part 0/2 example %d id %" PRIu64, i, b.sample_id[i]);
    aliccp_reader_close(&r);

    /* partition 1 in skip mode: 16, 18, 19, 20 */
    rc = aliccp_reader_open(&r, spath, common, &schema, 1, 2, 0);
    rc = aliccp_reader_next(r, &b, 64);
    static const uint64_t ids[] = {16, 18, 19, 20};
    CHECK(rc == FN_OK && b.n == 4, "part 1/2 skip: rc %d n %d", rc, b.n);
    for (int i = 0; i < b.n && i < 4; i++) CHECK(b.sample_id[i] == ids[i], "part 1/2 skip example %d id %" PRIu64, i, b.sample_id[i]);
    CHECK(aliccp_reader_stats(r)->bad_lines == 1, "part 1/2 skip: bad %" PRIu64, aliccp_reader_stats(r)->bad_lines);
    aliccp_reader_close(&r);

    batch_free(&b);
    aliccp_common_destroy(&common);
    unlink(cpath);
    unlink(spath);
}

/* ---- an md5 the common file lacks ------------------------------------------ */

/* A skeleton line naming an md5 that is not in the common file (never
 * defined, or defined by a malformed common line) is a bad line, counted in
 * bad_lines and missing_common, never an example with its common features
 * zeroed; in stop mode it ends the read naming PATH:LINE and the md5. */
static void test_missing_md5(void)
{
    char cpath[128], spath[128];
    path_of(cpath, sizeof cpath, "common4.csv");
    path_of(spath, sizeof spath, "skeleton4.csv");
    write_file(cpath, "c1,1,101\x02" "a\x03" "1\n"
                      "cbad,2,101\x02" "b\x03" "1\n"); /* line 2: feature_count lies */
    write_file(spath, "1,0,0,c1,0,\n"
                      "2,0,0,nomd5,0,\n"
                      "3,0,0,cbad,0,\n"
                      "4,1,0,c1,1,205\x02" "x\x03" "1\n");
    aliccp_common *common;
    int rc = aliccp_common_load(&common, cpath, &schema, 1);
    char pfx[200];
    snprintf(pfx, sizeof pfx, "%s:2: malformed line: feature_count says 2", cpath);
    CHECK(rc == FN_EPARSE && strstr(fn_err_msg(), pfx), "common stop: rc %d '%s' lacks '%s'", rc, fn_err_msg(), pfx);
    rc = aliccp_common_load(&common, cpath, &schema, 0);
    CHECK(rc == FN_OK, "common skip: %s", fn_err_msg());
    if (rc) return;
    CHECK(aliccp_common_stats(common)->bad_lines == 1 && aliccp_common_count(common) == 1, "common skip: bad %" PRIu64 " count %zu",
          aliccp_common_stats(common)->bad_lines, aliccp_common_count(common));
    fn_batch b;
    batch_init(&b, 8, 8);
    aliccp_reader *r;
    rc = aliccp_reader_open(&r, spath, common, &schema, 0, 1, 0);
    CHECK(rc == FN_OK, "open: %s", fn_err_msg());
    if (!rc) {
        rc = aliccp_reader_next(r, &b, 8);
        const aliccp_stats *st = aliccp_reader_stats(r);
        CHECK(rc == FN_OK && b.n == 2 && b.sample_id[0] == 1 && b.sample_id[1] == 4, "skip: rc %d n %d", rc, b.n);
        CHECK(st->bad_lines == 2 && st->missing_common == 2, "skip: bad %" PRIu64 " missing %" PRIu64 ", want 2 and 2", st->bad_lines,
              st->missing_common);
        aliccp_reader_close(&r);
    }
    rc = aliccp_reader_open(&r, spath, common, &schema, 0, 1, 1);
    CHECK(rc == FN_OK, "open: %s", fn_err_msg());
    if (!rc) {
        rc = aliccp_reader_next(r, &b, 8);
        snprintf(pfx, sizeof pfx, "%s:2: malformed line: md5 'nomd5' is not in the common features file", spath);
        CHECK(rc == FN_EPARSE && strstr(fn_err_msg(), pfx), "stop: rc %d '%s' lacks '%s'", rc, fn_err_msg(), pfx);
        CHECK(aliccp_reader_stats(r)->missing_common == 1, "stop: missing %" PRIu64, aliccp_reader_stats(r)->missing_common);
        aliccp_reader_close(&r);
    }
    batch_free(&b);
    aliccp_common_destroy(&common);
    unlink(cpath);
    unlink(spath);
}

/* ---- partitions of a generated file --------------------------------------- */

static void test_partitions(void)
{
    char cpath[128], spath[128];
    path_of(cpath, sizeof cpath, "common3.csv");
    path_of(spath, sizeof spath, "gen.csv");
    fn_rng rng;
    fn_rng_seed(&rng, 7);
    enum { NCOMMON = 40, NLINES = 2000 };
    FILE *f = fopen(cpath, "wb");
    for (int c = 0; c < NCOMMON; c++) {
        int n = (int)fn_rng_below(&rng, 4);
        fprintf(f, "m%d,%d,", c, n);
        for (int k = 0; k < n; k++) fprintf(f, "%s101\x02" "u%d\x03" "1", k ? "\x01" : "", (int)fn_rng_below(&rng, 50));
        fputc('\n', f);
    }
    fclose(f);
    static unsigned char is_good[NLINES];
    int ngood = 0, nbad = 0;
    f = fopen(spath, "wb");
    for (int i = 0; i < NLINES; i++) {
        int kind = (int)fn_rng_below(&rng, 10);
        int n = (int)fn_rng_below(&rng, 5);
        int click = (int)fn_rng_below(&rng, 2), buy = click ? (int)fn_rng_below(&rng, 2) : 0;
        if (kind == 0) {
            fputs(fn_rng_below(&rng, 2) ? "\n" : "broken,line\n", f);
            nbad++;
            continue;
        }
        is_good[i] = 1;
        ngood++;
        fprintf(f, "%d,%d,%d,m%d,%d,", i, click, buy, (int)fn_rng_below(&rng, NCOMMON), n);
        for (int k = 0; k < n; k++)
            fprintf(f, "%s%s\x02" "v%d\x03" "%g", k ? "\x01" : "", fn_rng_below(&rng, 2) ? "205" : "109_14",
                    (int)fn_rng_below(&rng, 1000), 0.5 * (double)fn_rng_below(&rng, 8));
        fputs(fn_rng_below(&rng, 4) ? "\n" : "\r\n", f);
    }
    fclose(f);
    aliccp_common *common;
    int rc = aliccp_common_load(&common, cpath, &schema, 0);
    CHECK(rc == FN_OK && aliccp_common_count(common) == NCOMMON, "gen common: rc %d", rc);
    if (rc) return;
    fn_batch b;
    batch_init(&b, 37, 16);
    static int seen[NLINES];
    for (int P = 1; P <= 5; P++) {
        memset(seen, 0, sizeof seen);
        uint64_t bad = 0, lines = 0;
        for (int p = 0; p < P; p++) {
            aliccp_reader *r;
            rc = aliccp_reader_open(&r, spath, common, &schema, p, P, 0);
            CHECK(rc == FN_OK, "gen open %d/%d", p, P);
            if (rc) continue;
            for (;;) {
                rc = aliccp_reader_next(r, &b, 37);
                CHECK(rc == FN_OK, "gen next: %s", fn_err_msg());
                if (rc || b.n == 0) break;
                for (int i = 0; i < b.n; i++) {
                    uint64_t id = b.sample_id[i];
                    CHECK(id < NLINES && is_good[id], "P=%d: unexpected id %" PRIu64, P, id);
                    if (id < NLINES) seen[id]++;
                }
            }
            bad += aliccp_reader_stats(r)->bad_lines;
            lines += aliccp_reader_stats(r)->lines;
            aliccp_reader_close(&r);
        }
        int once = 0;
        for (int i = 0; i < NLINES; i++) {
            if (is_good[i]) CHECK(seen[i] == 1, "P=%d: id %d seen %d times", P, i, seen[i]);
            once += seen[i] == 1;
        }
        CHECK(once == ngood, "P=%d: %d ids once, want %d", P, once, ngood);
        CHECK(bad == (uint64_t)nbad, "P=%d: %" PRIu64 " bad lines, want %d", P, bad, nbad);
        CHECK(lines == NLINES, "P=%d: %" PRIu64 " lines, want %d", P, lines, NLINES);
    }
    batch_free(&b);
    aliccp_common_destroy(&common);
    unlink(cpath);
    unlink(spath);
}

/* ---- aliccp_parse_features directly --------------------------------------- */

static void test_parse_features(void)
{
    fn_batch b;
    batch_init(&b, 1, 1);
    char s[128];
    uint32_t items;
    uint64_t unknown = 0;
    snprintf(s, sizeof s, "101\x02" "abc\x03" "0.5\x01" "999\x02x\x03" "1\x01" "109_14\x02" "abc\x03" "2");
    int rc = aliccp_parse_features(s, strlen(s), &schema, &b, &items, &unknown);
    CHECK(rc == FN_OK && items == 3 && unknown == 1 && b.nf == 2, "parse: rc %d items %u unknown %" PRIu64 " nf %zu", rc, items, unknown, b.nf);
    if (b.nf == 2) {
        CHECK(b.field[0] == 0 && b.field[1] == 3, "fields %u %u", b.field[0], b.field[1]);
        CHECK(b.key[0] == fn_key(0, 0, "abc", 3) && b.key[1] == fn_key(0, 3, "abc", 3), "keys");
        CHECK(b.key[0] != b.key[1], "the same id in two fields must give two keys");
        CHECK(b.val[0] == 0.5f && b.val[1] == 2.0f, "values %g %g", b.val[0], b.val[1]);
    }
    rc = aliccp_parse_features(s, 0, &schema, &b, &items, &unknown);
    CHECK(rc == FN_OK && items == 0 && b.nf == 2, "empty features: rc %d items %u", rc, items);
    batch_free(&b);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/test_aliccp.XXXXXX");
    if (!mkdtemp(dir)) { printf("FAIL mkdtemp\n"); return 1; }
    log_set_level(LOG_ERROR); /* the skipped lines' warnings are expected */
    if (schema_parse(&schema, FIELDS)) { printf("FAIL schema_parse: %s\n", fn_err_msg()); return 1; }
    test_parse_features();
    test_hand_written();
    test_stop_line_number();
    test_missing_md5();
    test_partitions();
    CHECK(remove_dir() == 0, "files left in %s", dir);
    if (failures) { printf("test_aliccp: %d failures\n", failures); return 1; }
    printf("test_aliccp: ok\n");
    return 0;
}
