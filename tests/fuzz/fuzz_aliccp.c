/* tests/fuzz/fuzz_aliccp.c — libFuzzer target for common/aliccp.c (and the
 * line reader under it, common/lines.c).
 *
 * Input: COMMON 0xFF SKELETON — the bytes before the first 0xFF are a common
 * features file, the rest a sample skeleton file (no 0xFF: the whole input
 * is a skeleton read without a common file).  Each input is used three ways:
 *
 *   1. aliccp_parse_features on the whole input (a writable copy: the
 *      parser may modify it), with the aliccp schema: on success every entry
 *      it appended has a field inside the schema and the entries plus the
 *      unknown items are the items; on failure a one-line reason.
 *   2. aliccp_common_load in skip mode (kept, used below) and in stop mode,
 *      which must fail exactly when skip mode counted a bad line.
 *   3. aliccp_reader over the skeleton, in skip mode as 1, 2 and 3
 *      partitions, and in stop mode; after the whole partition, rewind and
 *      a tell/seek round trip.  Properties:
 *        - every returned example has click and buy in {0, 1}, buy <= click,
 *          its feature entries inside the batch's counts (off[] rising from
 *          0 to nf <= fcap) and fields < the schema's size;
 *        - lines = examples + bad lines;
 *        - the partitions of 2 and of 3 together give the same examples, in
 *          the same order, and the same line counts as 1 partition (every
 *          line read by exactly one partition);
 *        - stop mode returns the examples before the first bad line, then
 *          FN_EPARSE naming the file; with no bad line, all of them;
 *        - rewind reads the same again; seek back to a tell reads the same
 *          rest again.
 * The sanitizers catch out-of-bounds access, undefined behaviour and leaks.
 *
 * Seeds: tests/fuzz/corpus/aliccp/. */
#include <inttypes.h>
#include <string.h>

#include "aliccp.h"
#include "batch.h"
#include "fn_error.h"
#include "fuzz_util.h"
#include "hash.h"
#include "schema.h"

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
    st = (aliccp_stats){.lines = c->lines, .examples = c->n_sets, .bad_lines = c->bad_lines, .unknown_items = c->unknown_items};
    return &st;
}

#define MAX_BATCH 3 /* small, so batch boundaries fall everywhere */

static fn_schema schema;

static void check_msg(int rc)
{
    const char *m = fn_err_msg();
    REQUIRE(rc > FN_OK && rc < FN_ERR_COUNT, "bad error code %d", rc);
    REQUIRE(m[0] && !strchr(m, '\n'), "error %d without a one-line reason: '%s'", rc, m);
}

/* Properties of every batch a reader returns; folds its examples into *h. */
static void check_batch(const fn_batch *b, int max, uint64_t *h)
{
    REQUIRE(b->n >= 0 && b->n <= max && b->n <= b->cap, "batch of %d examples (max %d, cap %d)", b->n, max, b->cap);
    REQUIRE(b->off[0] == 0 && b->off[b->n] == b->nf && b->nf <= b->fcap, "feature counts: off[0] %zu off[n] %zu nf %zu fcap %zu",
            b->off[0], b->off[b->n], b->nf, b->fcap);
    for (int i = 0; i < b->n; i++) {
        REQUIRE(b->click[i] == 0 || b->click[i] == 1, "example %d: click %g", i, (double)b->click[i]);
        REQUIRE(b->buy[i] == 0 || b->buy[i] == 1, "example %d: buy %g", i, (double)b->buy[i]);
        REQUIRE(b->buy[i] <= b->click[i], "example %d: buy without click", i);
        REQUIRE(b->off[i] <= b->off[i + 1], "example %d: off falls", i);
        *h = fn_mix64(*h ^ b->sample_id[i]) + (uint64_t)(b->click[i] + 2 * b->buy[i]);
        for (size_t k = b->off[i]; k < b->off[i + 1]; k++) {
            REQUIRE(b->field[k] < schema.n, "example %d: field %u of %d", i, b->field[k], schema.n);
            uint32_t v;
            memcpy(&v, &b->val[k], 4);
            *h = fn_mix64(*h ^ b->key[k]) ^ ((uint64_t)b->field[k] << 32 | v);
        }
        *h = fn_mix64(*h ^ 0x5e9);
    }
}

typedef struct {
    uint64_t n, hash;           /* examples returned, digest of them in order */
    uint64_t lines, bad;        /* reader stats */
    uint64_t good_before_bad;   /* examples before the first bad line (max = 1 only) */
    int saw_bad;
} pass;

/* Reads the rest of r's partition with batches of up to max into *p. */
static int read_rest(aliccp_reader *r, fn_batch *b, int max, pass *p)
{
    for (;;) {
        int rc = aliccp_reader_next(r, b, max);
        if (rc) return rc;
        check_batch(b, max, &p->hash);
        /* with max 1, a call that first counts a bad line returns at most
         * the one example after it */
        if (!p->saw_bad && aliccp_reader_stats(r)->bad_lines) {
            p->saw_bad = 1;
            p->good_before_bad = p->n;
        }
        p->n += (uint64_t)b->n;
        if (b->n == 0) return FN_OK;
    }
}

static void stats_of(const aliccp_reader *r, pass *p)
{
    const aliccp_stats *s = aliccp_reader_stats(r);
    REQUIRE(s->lines == s->examples + s->bad_lines, "lines %" PRIu64 " != examples %" PRIu64 " + bad %" PRIu64,
            s->lines, s->examples, s->bad_lines);
    REQUIRE(s->missing_common <= s->bad_lines, "missing common lines are bad lines");
    double prog = aliccp_reader_progress(r);
    REQUIRE(prog >= 0 && prog <= 1, "progress %g", prog);
    p->lines += s->lines;
    p->bad += s->bad_lines;
}

/* The whole skeleton in skip mode as 1 partition, with rewind and seek. */
static void whole(const char *skel, const aliccp_common *c, fn_batch *b, pass *p)
{
    aliccp_reader *r;
    int rc = aliccp_reader_open(&r, skel, c, &schema, 0, 1, 0);
    if (rc) { check_msg(rc); return; }
    rc = read_rest(r, b, 1, p);
    REQUIRE(rc == FN_OK, "skip mode failed: %s", fn_err_msg());
    stats_of(r, p);
    REQUIRE(p->n == aliccp_reader_stats(r)->examples, "examples returned %" PRIu64 " != counted", p->n);
    if (!p->saw_bad) p->good_before_bad = p->n;

    /* again from the start; the rest after the first batch is read twice,
     * the second time after seeking back to where it began */
    REQUIRE(aliccp_reader_rewind(r) == FN_OK, "rewind: %s", fn_err_msg());
    pass first = {0};
    rc = aliccp_reader_next(r, b, MAX_BATCH);
    REQUIRE(rc == FN_OK, "after rewind: %s", fn_err_msg());
    check_batch(b, MAX_BATCH, &first.hash);
    first.n = (uint64_t)b->n;
    uint64_t pos[2];
    aliccp_reader_tell(r, pos);
    pass again = first, again2 = first;
    REQUIRE(read_rest(r, b, MAX_BATCH, &again) == FN_OK, "after rewind: %s", fn_err_msg());
    REQUIRE(again.n == p->n && again.hash == p->hash, "after rewind: %" PRIu64 " examples, first pass %" PRIu64, again.n, p->n);
    REQUIRE(aliccp_reader_seek(r, pos) == FN_OK, "seek: %s", fn_err_msg());
    REQUIRE(read_rest(r, b, MAX_BATCH, &again2) == FN_OK, "after seek: %s", fn_err_msg());
    REQUIRE(again2.n == p->n && again2.hash == p->hash, "after seek: %" PRIu64 " examples, first pass %" PRIu64, again2.n, p->n);
    aliccp_reader_close(&r);
}

/* All parts of nparts in skip mode, in order, into one pass. */
static void parts(const char *skel, const aliccp_common *c, int nparts, fn_batch *b, pass *p)
{
    for (int part = 0; part < nparts; part++) {
        aliccp_reader *r;
        int rc = aliccp_reader_open(&r, skel, c, &schema, part, nparts, 0);
        REQUIRE(rc == FN_OK, "partition %d of %d does not open: %s", part, nparts, fn_err_msg());
        uint64_t n0 = p->n;
        rc = read_rest(r, b, MAX_BATCH, p);
        REQUIRE(rc == FN_OK, "skip mode failed: %s", fn_err_msg());
        stats_of(r, p);
        REQUIRE(p->n - n0 == aliccp_reader_stats(r)->examples, "partition %d of %d: examples returned != counted", part, nparts);
        aliccp_reader_close(&r);
    }
}

static void stop_mode(const char *skel, const aliccp_common *c, fn_batch *b, const pass *skip)
{
    aliccp_reader *r;
    int rc = aliccp_reader_open(&r, skel, c, &schema, 0, 1, 1);
    REQUIRE(rc == FN_OK, "stop mode does not open: %s", fn_err_msg());
    pass p = {0};
    rc = read_rest(r, b, MAX_BATCH, &p);
    if (skip->bad == 0) {
        REQUIRE(rc == FN_OK, "stop mode failed on a file skip mode found clean: %s", fn_err_msg());
        REQUIRE(p.n == skip->n && p.hash == skip->hash, "stop mode read %" PRIu64 " examples, skip mode %" PRIu64, p.n, skip->n);
    } else {
        REQUIRE(rc == FN_EPARSE, "stop mode returned %d on a file with %" PRIu64 " bad lines", rc, skip->bad);
        check_msg(rc);
        REQUIRE(!strncmp(fn_err_msg(), skel, strlen(skel)), "stop mode error does not name the file: %s", fn_err_msg());
        /* the failing call's batch holds the good examples before the bad line */
        check_batch(b, MAX_BATCH, &p.hash);
        p.n += (uint64_t)b->n;
        REQUIRE(p.n == skip->good_before_bad, "stop mode: %" PRIu64 " examples before the bad line, skip mode %" PRIu64,
                p.n, skip->good_before_bad);
    }
    aliccp_reader_close(&r);
}

static void features(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    REQUIRE(s, "out of memory");
    memcpy(s, data, size);
    s[size] = 0;
    fn_batch b;
    REQUIRE(batch_init(&b, 1, 1) == FN_OK, "out of memory");
    uint32_t items = 0;
    uint64_t unknown = 0;
    int rc = aliccp_parse_features(s, size, &schema, &b, &items, &unknown);
    if (rc) {
        check_msg(rc);
    } else {
        REQUIRE(b.nf + unknown == items, "%zu entries + %" PRIu64 " unknown != %u items", b.nf, unknown, items);
        for (size_t k = 0; k < b.nf; k++) REQUIRE(b.field[k] < schema.n, "field %u of %d", b.field[k], schema.n);
    }
    batch_free(&b);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!schema.n) {
        fuzz_setup("fuzz_aliccp");
        REQUIRE(schema_parse(&schema, "aliccp") == FN_OK, "schema: %s", fn_err_msg());
    }
    features(data, size);

    const uint8_t *mark = memchr(data, 0xFF, size);
    const char *skel;
    aliccp_common *c = NULL;
    if (mark) {
        const char *cpath = fuzz_file("a", data, (size_t)(mark - data));
        skel = fuzz_file("b", mark + 1, size - (size_t)(mark - data) - 1);
        int rc = aliccp_common_load(&c, cpath, &schema, 0);
        REQUIRE(rc == FN_OK, "skip mode common load failed: %s", fn_err_msg());
        const aliccp_stats *cs = aliccp_common_stats(c);
        REQUIRE(cs->lines == cs->examples + cs->bad_lines && cs->examples == aliccp_common_count(c),
                "common: lines %" PRIu64 " examples %" PRIu64 " bad %" PRIu64, cs->lines, cs->examples, cs->bad_lines);
        aliccp_common *c2;
        rc = aliccp_common_load(&c2, cpath, &schema, 1);
        if (cs->bad_lines) {
            REQUIRE(rc == FN_EPARSE && !c2, "stop mode common load returned %d with %" PRIu64 " bad lines", rc, cs->bad_lines);
            check_msg(rc);
        } else {
            REQUIRE(rc == FN_OK && aliccp_common_count(c2) == aliccp_common_count(c), "stop mode common load: %s", fn_err_msg());
            aliccp_common_destroy(&c2);
        }
    } else {
        skel = fuzz_file("b", data, size);
    }

    fn_batch b;
    REQUIRE(batch_init(&b, MAX_BATCH, 1) == FN_OK, "out of memory");
    pass one = {0};
    whole(skel, c, &b, &one);
    for (int nparts = 2; nparts <= 3; nparts++) {
        pass p = {0};
        parts(skel, c, nparts, &b, &p);
        REQUIRE(p.n == one.n && p.hash == one.hash, "%d partitions: %" PRIu64 " examples, 1 partition %" PRIu64, nparts, p.n, one.n);
        REQUIRE(p.lines == one.lines && p.bad == one.bad, "%d partitions: %" PRIu64 " lines (%" PRIu64 " bad), 1 partition %" PRIu64 " (%" PRIu64 ")",
                nparts, p.lines, p.bad, one.lines, one.bad);
    }
    stop_mode(skel, c, &b, &one);
    batch_free(&b);
    aliccp_common_destroy(&c);
    return 0;
}
