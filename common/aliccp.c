/* common/aliccp.c — see aliccp.h. */
#include "aliccp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fn_error.h"
#include "hash.h"
#include "keymap.h"
#include "lines.h"
#include "log.h"

#define REPORT_FIRST 10 /* malformed lines logged one by one, per file and process */

/* ---- common features: md5 -> a run of (field, key, value) ---------------- */

struct aliccp_common {
    uint64_t *md5;        /* hash of each md5 string, by entry */
    size_t *off;          /* entry i owns features [off[i], off[i+1]) */
    size_t n, cap;
    fn_batch feats;       /* feature arena (only its feature arrays are used) */
    keymap index;
    aliccp_stats stats;
};

static uint64_t common_key_of(const void *ud, uint32_t slot) { return ((const aliccp_common *)ud)->md5[slot]; }

static uint64_t md5_hash(const char *s, size_t len) { return fn_hash64(s, len, 0x6d6435); }

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

int aliccp_common_load(aliccp_common **out, const char *path, const fn_schema *schema, int stop_on_bad)
{
    *out = NULL;
    aliccp_common *c = calloc(1, sizeof *c);
    if (!c) return FN_ENOMEM;
    int rc = batch_init(&c->feats, 1, 1024); /* grows by doubling */
    if (!rc) rc = keymap_init(&c->index, 1024, common_key_of, c);
    c->cap = 1024;
    c->md5 = malloc(c->cap * sizeof *c->md5);
    c->off = malloc((c->cap + 1) * sizeof *c->off);
    if (rc || !c->md5 || !c->off) { aliccp_common_destroy(&c); return fn_fail(FN_ENOMEM, "%s: out of memory", path); }
    c->off[0] = 0;
    lines *l;
    rc = lines_open(&l, path, 0, 1);
    if (rc) { aliccp_common_destroy(&c); return rc; }
    char *line;
    size_t len;
    int got;
    while ((got = lines_next(l, &line, &len)) == 1) {
        c->stats.lines++;
        char *p = line, *end = line + len;
        size_t mlen;
        char *md5 = column(&p, end, &mlen);
        const char *why = NULL;
        char reason[256];
        if (len == 0) why = "empty line";
        else if (!md5 || mlen == 0 || p > end) why = "no md5 column";
        if (!why) {
            uint64_t h = md5_hash(md5, mlen);
            if (keymap_find(&c->index, h) != KEYMAP_NONE) {
                why = "md5 already defined earlier in the file";
            } else {
                rc = parse_count_and_features(p, end, schema, &c->feats, &c->stats.unknown_items);
                if (rc == FN_ENOMEM) break;
                if (rc) {
                    snprintf(reason, sizeof reason, "%s", fn_err_msg());
                    why = reason;
                } else {
                    if (c->n == c->cap) {
                        size_t cap = c->cap * 2;
                        uint64_t *m = realloc(c->md5, cap * sizeof *m);
                        if (m) c->md5 = m;
                        size_t *o = realloc(c->off, (cap + 1) * sizeof *o);
                        if (o) c->off = o;
                        if (!m || !o) { rc = FN_ENOMEM; break; }
                        c->cap = cap;
                    }
                    c->md5[c->n] = h;
                    c->off[c->n + 1] = c->feats.nf;
                    if (keymap_insert(&c->index, h, (uint32_t)c->n)) { rc = FN_ENOMEM; break; }
                    c->n++;
                }
            }
        }
        if (why) {
            c->stats.bad_lines++;
            uint64_t ln = lines_lineno(l);
            if (stop_on_bad) {
                rc = fn_fail(FN_EPARSE, "%s:%llu: malformed line: %s", path, (unsigned long long)ln, why);
                break;
            }
            report_bad(path, ln, c->stats.bad_lines, why);
        }
        rc = FN_OK;
    }
    if (got < 0) rc = -got;
    lines_close(&l);
    if (rc) {
        if (rc == FN_ENOMEM) fn_fail(FN_ENOMEM, "%s: out of memory loading common features", path);
        aliccp_common_destroy(&c);
        return rc;
    }
    c->stats.examples = c->n;
    /* to size: the arrays grew by doubling (the slack was never touched, so
     * not resident, but aliccp_common_bytes should be what is held) */
    if (c->feats.nf && c->feats.nf < c->feats.fcap) {
        uint16_t *f = realloc(c->feats.field, c->feats.nf * sizeof *f);
        if (f) c->feats.field = f;
        uint64_t *k = realloc(c->feats.key, c->feats.nf * sizeof *k);
        if (k) c->feats.key = k;
        float *v = realloc(c->feats.val, c->feats.nf * sizeof *v);
        if (v) c->feats.val = v;
        if (f && k && v) c->feats.fcap = c->feats.nf;
    }
    if (c->n && c->n < c->cap) {
        uint64_t *m = realloc(c->md5, c->n * sizeof *m);
        if (m) c->md5 = m;
        size_t *o = realloc(c->off, (c->n + 1) * sizeof *o);
        if (o) c->off = o;
        if (m && o) c->cap = c->n;
    }
    *out = c;
    return FN_OK;
}

void aliccp_common_destroy(aliccp_common **cp)
{
    aliccp_common *c = *cp;
    if (!c) return;
    batch_free(&c->feats);
    keymap_free(&c->index);
    free(c->md5);
    free(c->off);
    free(c);
    *cp = NULL;
}

size_t aliccp_common_count(const aliccp_common *c) { return c->n; }
size_t aliccp_common_features(const aliccp_common *c) { return c->feats.nf; }

size_t aliccp_common_bytes(const aliccp_common *c)
{
    const fn_batch *b = &c->feats;
    return sizeof *c + c->cap * sizeof *c->md5 + (c->cap + 1) * sizeof *c->off + keymap_bytes(&c->index) +
           b->fcap * (sizeof *b->field + sizeof *b->key + sizeof *b->val) +
           (size_t)b->cap * (sizeof *b->sample_id + sizeof *b->click + sizeof *b->buy + sizeof *b->off);
}
const aliccp_stats *aliccp_common_stats(const aliccp_common *c) { return &c->stats; }

/* ---- skeleton reader ----------------------------------------------------- */

struct aliccp_reader {
    lines *l;
    const aliccp_common *common;
    const fn_schema *schema;
    int stop_on_bad;
    aliccp_stats stats;
};

int aliccp_reader_open(aliccp_reader **out, const char *path, const aliccp_common *common,
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
    if (r->common) {
        uint32_t slot = keymap_find(&r->common->index, md5_hash(md5, mlen));
        if (slot == KEYMAP_NONE) {
            r->stats.missing_common++;
            return fn_fail(FN_EPARSE, "md5 '%.*s' is not in the common features file", (int)(mlen > 40 ? 40 : mlen), md5);
        }
        const fn_batch *cf = &r->common->feats;
        size_t a = r->common->off[slot], z = r->common->off[slot + 1];
        if (batch_reserve_features(b, z - a)) return FN_ENOMEM;
        memcpy(b->field + b->nf, cf->field + a, (z - a) * sizeof *b->field);
        memcpy(b->key + b->nf, cf->key + a, (z - a) * sizeof *b->key);
        memcpy(b->val + b->nf, cf->val + a, (z - a) * sizeof *b->val);
        b->nf += z - a;
    }
    int rc = parse_count_and_features(p, end, r->schema, b, &r->stats.unknown_items);
    if (rc) { b->nf = nf0; return rc; }
    b->sample_id[i] = parse_uint(id, ilen);
    b->n++;
    b->off[b->n] = b->nf;
    return FN_OK;
}

int aliccp_reader_next(aliccp_reader *r, fn_batch *b, int max)
{
    batch_clear(b);
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
