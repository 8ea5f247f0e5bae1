/* common/aliccp.c — see aliccp.h. */
#include "aliccp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fn_error.h"
#include "hash.h"
#include "lines.h"
#include "log.h"

#define REPORT_FIRST 10 /* malformed lines logged one by one, per file and process */

static int is_uint(const char *s, size_t len)
{
    if (len == 0 || len > 19) return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

static uint64_t parse_uint(const char *s, size_t len)
{
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) v = v * 10 + (uint64_t)(s[i] - '0');
    return v;
}

/* Splits off the next comma-separated column; NULL if there is none. */
static char *column(char **p, char *end, size_t *len)
{
    char *s = *p;
    if (s > end) return NULL;
    char *c = memchr(s, ',', (size_t)(end - s));
    if (!c) c = end;
    *len = (size_t)(c - s);
    *p = c + 1;
    return s;
}

static float parse_value(char *s, size_t len, int *ok)
{
    *ok = 1;
    if (len == 1 && s[0] == '1') return 1.0f;
    if (len == 3 && s[0] == '1' && s[1] == '.' && s[2] == '0') return 1.0f;
    if (len == 0 || len > 63) { *ok = 0; return 0; }
    char tmp[64];
    memcpy(tmp, s, len);
    tmp[len] = 0;
    char *e;
    errno = 0;
    float v = strtof(tmp, &e);
    if (e != tmp + len || errno == ERANGE || v != v || v > 3.4e38f || v < -3.4e38f) *ok = 0;
    return v;
}

int aliccp_parse_features(char *s, size_t len, const fn_schema *schema, fn_batch *b,
                          uint32_t *items, uint64_t *unknown)
{
    char *p = s, *end = s + len;
    uint32_t count = 0;
    *items = 0;
    if (len == 0) return FN_OK;
    for (;;) {
        char *item_end = memchr(p, '\x01', (size_t)(end - p));
        if (!item_end) item_end = end;
        char *sep2 = memchr(p, '\x02', (size_t)(item_end - p));
        if (!sep2) return fn_fail(FN_EPARSE, "feature item %u has no \\x02 after its field", count + 1);
        char *sep3 = memchr(sep2 + 1, '\x03', (size_t)(item_end - sep2 - 1));
        if (!sep3) return fn_fail(FN_EPARSE, "feature item %u has no \\x03 before its value", count + 1);
        size_t flen = (size_t)(sep2 - p), idlen = (size_t)(sep3 - sep2 - 1), vlen = (size_t)(item_end - sep3 - 1);
        if (flen == 0) return fn_fail(FN_EPARSE, "feature item %u has an empty field id", count + 1);
        if (idlen == 0) return fn_fail(FN_EPARSE, "feature item %u has an empty feature id", count + 1);
        int ok;
        float v = parse_value(sep3 + 1, vlen, &ok);
        if (!ok) return fn_fail(FN_EPARSE, "feature item %u: value '%.*s' is not a finite number", count + 1, (int)(vlen > 40 ? 40 : vlen), sep3 + 1);
        count++;
        int f = schema_find(schema, p, flen);
        if (f < 0) {
            (*unknown)++;
        } else {
            if (batch_reserve_features(b, 1)) return fn_fail(FN_ENOMEM, "out of memory");
            b->field[b->nf] = (uint16_t)f;
            b->key[b->nf] = fn_key(0, (uint32_t)f, sep2 + 1, idlen);
            b->val[b->nf] = v;
            b->nf++;
        }
        if (item_end == end) break;
        p = item_end + 1;
        if (p == end) return fn_fail(FN_EPARSE, "features end with a separator");
    }
    *items = count;
    return FN_OK;
}

static void report_bad(const char *path, uint64_t line, uint64_t nbad, const char *why)
{
    if (nbad <= REPORT_FIRST) log_warn("%s:%llu: malformed line skipped: %s", path, (unsigned long long)line, why);
    if (nbad == REPORT_FIRST) log_warn("%s: further malformed lines are counted, not logged", path);
}

/* Checks and parses `feature_count,features` (the rest of a line) into b. */
static int parse_count_and_features(char *p, char *end, const fn_schema *schema, fn_batch *b, uint64_t *unknown)
{
    size_t len;
    char *cnt = column(&p, end, &len);
    if (!cnt || p > end + 1) return fn_fail(FN_EPARSE, "missing feature_count and features columns");
    if (!is_uint(cnt, len)) return fn_fail(FN_EPARSE, "feature_count '%.*s' is not an unsigned integer", (int)(len > 20 ? 20 : len), cnt);
    uint64_t want = parse_uint(cnt, len);
    if (p > end) p = end; /* no features column at all: only ok if count is 0 */
    size_t nf0 = b->nf;
    uint32_t items;
    int rc = aliccp_parse_features(p, (size_t)(end - p), schema, b, &items, unknown);
    if (rc) { b->nf = nf0; return rc; }
    if (items != want) {
        b->nf = nf0;
        return fn_fail(FN_EPARSE, "feature_count says %llu but the line has %u feature items", (unsigned long long)want, items);
    }
    return FN_OK;
}

int aliccp_parse_common(char *line, size_t len, const fn_schema *schema, fn_batch *b, uint64_t *unknown,
                        const char **md5, size_t *md5_len)
{
    char *p = line, *end = line + len;
    size_t mlen;
    if (len == 0) return fn_fail(FN_EPARSE, "empty line");
    char *m = column(&p, end, &mlen);
    if (!m || mlen == 0 || p > end) return fn_fail(FN_EPARSE, "no md5 column");
    *md5 = m;
    *md5_len = mlen;
    return parse_count_and_features(p, end, schema, b, unknown);
}

/* ---- skeleton reader ----------------------------------------------------- */

struct aliccp_reader {
    lines *l;
    const fn_ctable *common;
    const fn_schema *schema;
    int stop_on_bad;
    aliccp_stats stats;
};

int aliccp_reader_open(aliccp_reader **out, const char *path, const fn_ctable *common,
                       const fn_schema *schema, int part, int nparts, int stop_on_bad)
{
    *out = NULL;
    aliccp_reader *r = calloc(1, sizeof *r);
    if (!r) return FN_ENOMEM;
    int rc = lines_open(&r->l, path, part, nparts);
    if (rc) { free(r); return rc; }
    r->common = common;
    r->schema = schema;
    r->stop_on_bad = stop_on_bad;
    *out = r;
    return FN_OK;
}

void aliccp_reader_close(aliccp_reader **rp)
{
    aliccp_reader *r = *rp;
    if (!r) return;
    lines_close(&r->l);
    free(r);
    *rp = NULL;
}

int aliccp_reader_rewind(aliccp_reader *r) { return lines_rewind(r->l); }
void aliccp_reader_tell(const aliccp_reader *r, uint64_t pos[2]) { lines_tell(r->l, &pos[0], &pos[1]); }
int aliccp_reader_seek(aliccp_reader *r, const uint64_t pos[2]) { return lines_seek(r->l, pos[0], pos[1]); }
const aliccp_stats *aliccp_reader_stats(const aliccp_reader *r) { return &r->stats; }
uint64_t aliccp_reader_bytes(const aliccp_reader *r) { return lines_part_bytes(r->l); }

double aliccp_reader_progress(const aliccp_reader *r)
{
    uint64_t total = lines_part_bytes(r->l);
    return total ? (double)lines_consumed(r->l) / (double)total : 1.0;
}

static int label(const char *s, size_t len, float *out)
{
    if (len != 1 || (s[0] != '0' && s[0] != '1')) return 0;
    *out = (float)(s[0] - '0');
    return 1;
}

/* Parses one skeleton line into example b->n.  Returns FN_OK, FN_EPARSE
 * (reason in fn_err_msg) or FN_ENOMEM. */
static int parse_line(aliccp_reader *r, char *line, size_t len, fn_batch *b)
{
    char *p = line, *end = line + len;
    size_t ilen, clen, blen, mlen;
    if (len == 0) return fn_fail(FN_EPARSE, "empty line");
    char *id = column(&p, end, &ilen);
    char *click = column(&p, end, &clen);
    char *buy = column(&p, end, &blen);
    char *md5 = column(&p, end, &mlen);
    if (!id || !click || !buy || !md5 || p > end + 1)
        return fn_fail(FN_EPARSE, "fewer than 6 columns (want sample_id,click,buy,md5,feature_count,features)");
    if (!is_uint(id, ilen)) return fn_fail(FN_EPARSE, "sample_id '%.*s' is not an unsigned integer", (int)(ilen > 24 ? 24 : ilen), id);
    int i = b->n;
    if (!label(click, clen, &b->click[i])) return fn_fail(FN_EPARSE, "click '%.*s' is not 0 or 1", (int)(clen > 24 ? 24 : clen), click);
    if (!label(buy, blen, &b->buy[i])) return fn_fail(FN_EPARSE, "buy '%.*s' is not 0 or 1", (int)(blen > 24 ? 24 : blen), buy);
    if (b->buy[i] > b->click[i]) return fn_fail(FN_EPARSE, "buy=1 on an impression without a click");
    size_t nf0 = b->nf;
    uint32_t set = CTABLE_NONE;
    if (r->common) {
        set = ctable_find(r->common, md5, mlen);
        if (set == CTABLE_NONE) {
            r->stats.missing_common++;
            return fn_fail(FN_EPARSE, "md5 '%.*s' is not in the common features file", (int)(mlen > 40 ? 40 : mlen), md5);
        }
    }
    int rc = parse_count_and_features(p, end, r->schema, b, &r->stats.unknown_items);
    if (rc) { b->nf = nf0; return rc; }
    b->sample_id[i] = parse_uint(id, ilen);
    b->set[i] = set;
    b->n++;
    b->off[b->n] = b->nf;
    return FN_OK;
}

int aliccp_reader_next(aliccp_reader *r, fn_batch *b, int max)
{
    batch_clear(b);
    b->ct = r->common;
    if (max > b->cap) max = b->cap;
    char *line;
    size_t len;
    while (b->n < max) {
        int got = lines_next(r->l, &line, &len);
        if (got < 0) return -got;
        if (got == 0) break;
        r->stats.lines++;
        int rc = parse_line(r, line, len, b);
        if (rc == FN_ENOMEM) return fn_fail(FN_ENOMEM, "%s: out of memory", lines_path(r->l));
        if (rc) {
            r->stats.bad_lines++;
            uint64_t ln = lines_lineno(r->l);
            /* a copy: fn_fail must not format its own buffer into itself */
            char why[256];
            snprintf(why, sizeof why, "%s", fn_err_msg());
            if (r->stop_on_bad)
                return fn_fail(FN_EPARSE, "%s:%llu: malformed line: %s", lines_path(r->l), (unsigned long long)ln, why);
            report_bad(lines_path(r->l), ln, r->stats.bad_lines, why);
            continue;
        }
        r->stats.examples++;
    }
    return FN_OK;
}
