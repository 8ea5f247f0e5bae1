/* common/ctable.c — see ctable.h. */
#include "ctable.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aliccp.h"
#include "batch.h"
#include "binfile.h"
#include "fn_error.h"
#include "hash.h"
#include "lines.h"
#include "log.h"
#include "mkdirs.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "common-feature tables are mapped in place: a little-endian host is needed"
#endif

enum { SEC_MD5, SEC_OFF, SEC_KEYS, SEC_ENT, SEC_FIELD, SEC_COUNT };
static const char *const sec_name[SEC_COUNT] = {"md5", "off", "keys", "ent", "field"};
#define SEC_AT 80u
#define SCHEMA_AT 200u
#define REPORT_FIRST 10

uint64_t ctable_md5_hash(const char *md5, size_t len) { return fn_hash64(md5, len, 0x6d6435); }

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- building ------------------------------------------------------------ */

typedef struct {
    uint64_t *keys;      /* the dictionary, by kid */
    size_t n, cap;
    keymap index;        /* key -> kid */
} dict;

static uint64_t dict_key_of(const void *ud, uint32_t slot) { return ((const dict *)ud)->keys[slot]; }

static int dict_kid(dict *d, uint64_t key, uint32_t *kid)
{
    uint32_t s = keymap_find(&d->index, key);
    if (s != KEYMAP_NONE) { *kid = s; return FN_OK; }
    if (d->n >= UINT32_MAX - 1) return fn_fail(FN_EINVAL, "more than 2^32 distinct common feature keys");
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4096;
        uint64_t *k = realloc(d->keys, cap * sizeof *k);
        if (!k) return FN_ENOMEM;
        d->keys = k;
        d->cap = cap;
    }
    d->keys[d->n] = key;
    if (keymap_insert(&d->index, key, (uint32_t)d->n)) return FN_ENOMEM;
    *kid = (uint32_t)d->n++;
    return FN_OK;
}

typedef struct {
    FILE *f;
    const char *path;
    uint64_t at;     /* bytes written */
    uint32_t crc;    /* of the current section */
    int err;         /* errno of the first failure */
} wfile;

static void w_put(wfile *w, const void *p, size_t n)
{
    if (w->err || !n) return;
    if (fwrite(p, 1, n, w->f) != n) { w->err = errno ? errno : EIO; return; }
    w->crc = fn_crc32c(w->crc, p, n);
    w->at += n;
}

static void w_pad(wfile *w)
{
    static const uint8_t zero[64];
    size_t r = (size_t)(w->at % 64);
    if (r) {
        uint32_t crc = w->crc;
        w_put(w, zero, 64 - r);
        w->crc = crc; /* padding belongs to no section */
    }
}

typedef struct { uint64_t off, bytes; uint32_t crc; } section;

static void sec_begin(wfile *w, section *s) { w_pad(w); s->off = w->at; w->crc = 0; }
static void sec_end(wfile *w, section *s) { s->bytes = w->at - s->off; s->crc = w->crc; }

static uint64_t md5_key_of(const void *ud, uint32_t slot) { return ((const uint64_t *const *)ud)[0][slot]; }

int ctable_build(const char *common_path, const fn_schema *schema, int stop_on_bad, uint64_t dataset_id,
                 const char *out_path)
{
    double t0 = now_s();
    char tmp[PATH_MAX + 32], ftmp[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out_path, (long)getpid());
    snprintf(ftmp, sizeof ftmp, "%s.fld.%ld", out_path, (long)getpid());
    struct stat st;
    if (stat(common_path, &st)) return fn_fail(FN_EIO, "%s: cannot read: %s", common_path, strerror(errno));

    dict d = {0};
    uint64_t *md5 = NULL, *off = NULL;
    size_t n_sets = 0, set_cap = 0;
    keymap md5_index = {0};
    const uint64_t *md5_ud[1] = {NULL};
    fn_batch b = {0};
    lines *l = NULL;
    wfile w = {.path = tmp}, wf = {.path = ftmp};
    uint64_t n_lines = 0, n_bad = 0, unknown = 0, n_entries = 0;
    ctable_ent *ebuf = malloc(65536 * sizeof *ebuf);
    int rc = FN_OK;
    if (!ebuf || keymap_init(&d.index, 1 << 16, dict_key_of, &d) || keymap_init(&md5_index, 1 << 12, md5_key_of, md5_ud) ||
        batch_init(&b, 1, 4096)) { rc = fn_fail(FN_ENOMEM, "%s: out of memory", common_path); goto out; }
    set_cap = 4096;
    md5 = malloc(set_cap * sizeof *md5);
    off = malloc((set_cap + 1) * sizeof *off);
    if (!md5 || !off) { rc = fn_fail(FN_ENOMEM, "%s: out of memory", common_path); goto out; }
    md5_ud[0] = md5;
    off[0] = 0;
    if (!(w.f = fopen(tmp, "wb"))) { rc = fn_fail(FN_EIO, "cannot create %s: %s", tmp, strerror(errno)); goto out; }
    if (!(wf.f = fopen(ftmp, "w+b"))) { rc = fn_fail(FN_EIO, "cannot create %s: %s", ftmp, strerror(errno)); goto out; }
    {
        static const uint8_t zero[CTABLE_HEADER];
        w_put(&w, zero, sizeof zero);
    }
    section sec[SEC_COUNT] = {{0}};
    sec_begin(&w, &sec[SEC_ENT]);
    if ((rc = lines_open(&l, common_path, 0, 1))) goto out;
    char *line;
    size_t len;
    int got;
    while ((got = lines_next(l, &line, &len)) == 1) {
        n_lines++;
        const char *m;
        size_t mlen;
        batch_clear(&b);
        char why[256] = "";
        int prc = aliccp_parse_common(line, len, schema, &b, &unknown, &m, &mlen);
        if (prc == FN_ENOMEM) { rc = fn_fail(FN_ENOMEM, "%s: out of memory", common_path); goto out; }
        uint64_t h = 0;
        if (prc) snprintf(why, sizeof why, "%s", fn_err_msg());
        else if (keymap_find(&md5_index, (h = ctable_md5_hash(m, mlen))) != KEYMAP_NONE)
            snprintf(why, sizeof why, "md5 '%.*s' already defined earlier in the file", (int)(mlen > 40 ? 40 : mlen), m);
        if (why[0]) {
            n_bad++;
            uint64_t ln = lines_lineno(l);
            if (stop_on_bad) { rc = fn_fail(FN_EPARSE, "%s:%llu: malformed line: %s", common_path, (unsigned long long)ln, why); goto out; }
            if (n_bad <= REPORT_FIRST) log_warn("%s:%llu: malformed line skipped: %s", common_path, (unsigned long long)ln, why);
            if (n_bad == REPORT_FIRST) log_warn("%s: further malformed lines are counted, not logged", common_path);
            continue;
        }
        if (n_sets >= UINT32_MAX - 1) { rc = fn_fail(FN_EINVAL, "%s: more than 2^32 common feature sets", common_path); goto out; }
        if (n_sets == set_cap) {
            size_t cap = set_cap * 2;
            uint64_t *a = realloc(md5, cap * sizeof *a);
            if (a) md5 = a;
            uint64_t *o = realloc(off, (cap + 1) * sizeof *o);
            if (o) off = o;
            md5_ud[0] = md5;
            if (!a || !o) { rc = fn_fail(FN_ENOMEM, "%s: out of memory", common_path); goto out; }
            set_cap = cap;
        }
        for (size_t k = 0; k < b.nf; k += 65536) {
            size_t z = b.nf - k < 65536 ? b.nf - k : 65536;
            uint8_t fb[65536];
            for (size_t j = 0; j < z; j++) {
                if ((rc = dict_kid(&d, b.key[k + j], &ebuf[j].kid))) {
                    if (rc == FN_ENOMEM) fn_fail(FN_ENOMEM, "%s: out of memory", common_path);
                    goto out;
                }
                ebuf[j].val = b.val[k + j];
                fb[j] = (uint8_t)b.field[k + j];
            }
            w_put(&w, ebuf, z * sizeof *ebuf);
            w_put(&wf, fb, z);
        }
        n_entries += b.nf;
        md5[n_sets] = h;
        off[n_sets + 1] = n_entries;
        if (keymap_insert(&md5_index, h, (uint32_t)n_sets)) { rc = fn_fail(FN_ENOMEM, "%s: out of memory", common_path); goto out; }
        n_sets++;
    }
    if (got < 0) { rc = -got; goto out; }
    sec_end(&w, &sec[SEC_ENT]);
    /* the fields, copied from their side file */
    if (fflush(wf.f) || wf.err) { rc = fn_fail(FN_EIO, "%s: write failed: %s", ftmp, strerror(wf.err ? wf.err : errno)); goto out; }
    rewind(wf.f);
    sec_begin(&w, &sec[SEC_FIELD]);
    {
        uint8_t buf[1 << 16];
        size_t got_b;
        while ((got_b = fread(buf, 1, sizeof buf, wf.f)) > 0) w_put(&w, buf, got_b);
        if (ferror(wf.f)) { rc = fn_fail(FN_EIO, "%s: read failed", ftmp); goto out; }
    }
    sec_end(&w, &sec[SEC_FIELD]);
    sec_begin(&w, &sec[SEC_MD5]);
    w_put(&w, md5, n_sets * sizeof *md5);
    sec_end(&w, &sec[SEC_MD5]);
    sec_begin(&w, &sec[SEC_OFF]);
    w_put(&w, off, (n_sets + 1) * sizeof *off);
    sec_end(&w, &sec[SEC_OFF]);
    sec_begin(&w, &sec[SEC_KEYS]);
    w_put(&w, d.keys, d.n * sizeof *d.keys);
    sec_end(&w, &sec[SEC_KEYS]);
    w_pad(&w);
    if (w.err) { rc = fn_fail(FN_EIO, "%s: write failed: %s", tmp, strerror(w.err)); goto out; }

    uint8_t hd[CTABLE_HEADER];
    memset(hd, 0, sizeof hd);
    put_le32(hd, CTABLE_MAGIC);
    put_le32(hd + 4, CTABLE_VERSION);
    put_le64(hd + 8, n_sets);
    put_le64(hd + 16, n_entries);
    put_le64(hd + 24, d.n);
    put_le64(hd + 32, dataset_id);
    put_le64(hd + 40, (uint64_t)st.st_size);
    put_le64(hd + 48, (uint64_t)st.st_mtim.tv_sec * 1000000000ull + (uint64_t)st.st_mtim.tv_nsec);
    put_le64(hd + 56, n_lines);
    put_le64(hd + 64, n_bad);
    put_le64(hd + 72, unknown);
    for (int s = 0; s < SEC_COUNT; s++) {
        put_le64(hd + SEC_AT + 24 * s, sec[s].off);
        put_le64(hd + SEC_AT + 24 * s + 8, sec[s].bytes);
        put_le32(hd + SEC_AT + 24 * s + 16, sec[s].crc);
    }
    char spec[CTABLE_HEADER];
    schema_format(schema, spec, sizeof spec);
    size_t slen = strlen(spec);
    if (slen > CTABLE_HEADER - SCHEMA_AT - 8) { rc = fn_fail(FN_EINVAL, "field list too long for a common-feature table"); goto out; }
    put_le32(hd + SCHEMA_AT, (uint32_t)slen);
    memcpy(hd + SCHEMA_AT + 4, spec, slen);
    put_le32(hd + CTABLE_HEADER - 4, fn_crc32c(0, hd, CTABLE_HEADER - 4));
    if (fflush(w.f) || fseek(w.f, 0, SEEK_SET) || fwrite(hd, 1, sizeof hd, w.f) != sizeof hd || fflush(w.f) || fsync(fileno(w.f))) {
        rc = fn_fail(FN_EIO, "%s: write failed: %s", tmp, strerror(errno));
        goto out;
    }
    int c = fclose(w.f);
    w.f = NULL;
    if (c) { rc = fn_fail(FN_EIO, "%s: close failed: %s", tmp, strerror(errno)); goto out; }
    if (rename(tmp, out_path)) { rc = fn_fail(FN_EIO, "cannot rename %s to %s: %s", tmp, out_path, strerror(errno)); goto out; }
    log_info("%s: %zu common feature sets, %llu entries, %zu distinct keys, %llu malformed lines: table %s (%.1f MB) built in %.2f s",
             common_path, n_sets, (unsigned long long)n_entries, d.n, (unsigned long long)n_bad, out_path,
             (double)w.at / 1e6, now_s() - t0);
out:
    if (w.f) { fclose(w.f); unlink(tmp); }
    if (wf.f) fclose(wf.f);
    unlink(ftmp);
    lines_close(&l);
    batch_free(&b);
    keymap_free(&d.index);
    keymap_free(&md5_index);
    free(d.keys);
    free(md5);
    free(off);
    free(ebuf);
    return rc;
}

/* ---- opening --------------------------------------------------------------- */

void ctable_close(fn_ctable **tp)
{
    fn_ctable *t = *tp;
    if (!t) return;
    if (t->map) munmap(t->map, t->map_len);
    keymap_free(&t->index);
    free(t);
    *tp = NULL;
}

static uint64_t index_key_of(const void *ud, uint32_t slot) { return ((const fn_ctable *)ud)->md5[slot]; }

int ctable_open(fn_ctable **out, const char *path, const fn_schema *schema)
{
    *out = NULL;
    fn_ctable *t = calloc(1, sizeof *t);
    if (!t) return FN_ENOMEM;
    snprintf(t->path, sizeof t->path, "%s", path);
    int rc = FN_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st)) { rc = fn_fail(FN_EIO, "%s: cannot open: %s", path, strerror(errno)); goto out; }
    if ((uint64_t)st.st_size < CTABLE_HEADER) { rc = fn_fail(FN_EPARSE, "%s: not a common-feature table (%lld bytes)", path, (long long)st.st_size); goto out; }
    t->map_len = (size_t)st.st_size;
    t->map = mmap(NULL, t->map_len, PROT_READ, MAP_SHARED, fd, 0);
    if (t->map == MAP_FAILED) { t->map = NULL; rc = fn_fail(FN_EIO, "%s: cannot map: %s", path, strerror(errno)); goto out; }
    const uint8_t *p = t->map;
    if (get_le32(p) != CTABLE_MAGIC) { rc = fn_fail(FN_EPARSE, "%s: not a common-feature table (bad magic)", path); goto out; }
    if (get_le32(p + 4) != CTABLE_VERSION) { rc = fn_fail(FN_EPARSE, "%s: common-feature table version %u, this funnel reads %u", path, get_le32(p + 4), CTABLE_VERSION); goto out; }
    if (get_le32(p + CTABLE_HEADER - 4) != fn_crc32c(0, p, CTABLE_HEADER - 4)) { rc = fn_fail(FN_ECHECKSUM, "%s: header checksum mismatch", path); goto out; }
    t->n_sets = get_le64(p + 8);
    t->n_entries = get_le64(p + 16);
    t->n_keys = get_le64(p + 24);
    t->dataset_id = get_le64(p + 32);
    t->src_bytes = get_le64(p + 40);
    t->src_mtime_ns = get_le64(p + 48);
    t->lines = get_le64(p + 56);
    t->bad_lines = get_le64(p + 64);
    t->unknown_items = get_le64(p + 72);
    uint32_t slen = get_le32(p + SCHEMA_AT);
    char spec[CTABLE_HEADER];
    schema_format(schema, spec, sizeof spec);
    if (slen > CTABLE_HEADER - SCHEMA_AT - 8 || slen != strlen(spec) || memcmp(p + SCHEMA_AT + 4, spec, slen)) {
        rc = fn_fail(FN_EINVAL, "%s: built for the fields '%.*s', not '%s' (keys are hashed with the field list)", path,
                     (int)(slen > 300 ? 300 : slen), (const char *)p + SCHEMA_AT + 4, spec);
        goto out;
    }
    if (t->n_sets >= UINT32_MAX || t->n_keys >= UINT32_MAX || t->n_entries > t->map_len) {
        rc = fn_fail(FN_EPARSE, "%s: corrupt header (counts)", path);
        goto out;
    }
    const uint64_t want[SEC_COUNT] = {t->n_sets * 8, (t->n_sets + 1) * 8, t->n_keys * 8, t->n_entries * sizeof(ctable_ent), t->n_entries};
    const void *base[SEC_COUNT];
    for (int s = 0; s < SEC_COUNT; s++) {
        uint64_t o = get_le64(p + SEC_AT + 24 * s), n = get_le64(p + SEC_AT + 24 * s + 8);
        if (o % 64 || o < CTABLE_HEADER || n != want[s] || o > t->map_len || n > t->map_len - o) {
            rc = fn_fail(FN_EPARSE, "%s: corrupt header (section %s)", path, sec_name[s]);
            goto out;
        }
        if (fn_crc32c(0, p + o, n) != get_le32(p + SEC_AT + 24 * s + 16)) {
            rc = fn_fail(FN_ECHECKSUM, "%s: section %s: checksum mismatch", path, sec_name[s]);
            goto out;
        }
        base[s] = p + o;
    }
    t->md5 = base[SEC_MD5];
    t->off = base[SEC_OFF];
    t->keys = base[SEC_KEYS];
    t->ent = base[SEC_ENT];
    t->field = base[SEC_FIELD];
    /* never trust an index: offsets rise to n_entries, kids and fields in range */
    if (t->off[0] != 0 || t->off[t->n_sets] != t->n_entries) { rc = fn_fail(FN_EPARSE, "%s: corrupt set offsets", path); goto out; }
    for (uint64_t s = 0; s < t->n_sets; s++)
        if (t->off[s + 1] < t->off[s]) { rc = fn_fail(FN_EPARSE, "%s: corrupt set offsets (set %llu)", path, (unsigned long long)s); goto out; }
    {
        uint32_t kmax = 0;
        uint8_t fmax = 0;
        for (uint64_t e = 0; e < t->n_entries; e++) {
            kmax = t->ent[e].kid > kmax ? t->ent[e].kid : kmax;
            fmax = t->field[e] > fmax ? t->field[e] : fmax;
        }
        if (t->n_entries && (kmax >= t->n_keys || fmax >= schema->n)) {
            rc = fn_fail(FN_EPARSE, "%s: corrupt entries (key index %u of %llu, field %u of %d)", path, kmax,
                         (unsigned long long)t->n_keys, fmax, schema->n);
            goto out;
        }
    }
    if (keymap_init(&t->index, t->n_sets ? t->n_sets : 1, index_key_of, t)) { rc = FN_ENOMEM; goto out; }
    for (uint64_t s = 0; s < t->n_sets; s++) {
        if (keymap_find(&t->index, t->md5[s]) != KEYMAP_NONE) { rc = fn_fail(FN_EPARSE, "%s: md5 of set %llu appears twice", path, (unsigned long long)s); goto out; }
        if (keymap_insert(&t->index, t->md5[s], (uint32_t)s)) { rc = FN_ENOMEM; goto out; }
    }
out:
    if (fd >= 0) close(fd);
    if (rc) {
        if (rc == FN_ENOMEM) fn_fail(FN_ENOMEM, "%s: out of memory", path);
        ctable_close(&t);
        return rc;
    }
    *out = t;
    return FN_OK;
}

uint32_t ctable_find(const fn_ctable *t, const char *md5, size_t len)
{
    uint32_t s = keymap_find(&t->index, ctable_md5_hash(md5, len));
    return s == KEYMAP_NONE ? CTABLE_NONE : s;
}

size_t ctable_file_bytes(const fn_ctable *t) { return t->map_len; }
size_t ctable_private_bytes(const fn_ctable *t) { return sizeof *t + keymap_bytes(&t->index); }

/* ---- through a cache ------------------------------------------------------ */

int ctable_from_text(fn_ctable **out, const char *common_path, const fn_schema *schema, int stop_on_bad,
                     const char *cache_dir)
{
    *out = NULL;
    char path[PATH_MAX + 64];
    if (!cache_dir) {
        const char *td = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/funnel-ctable-%ld-%llx%s", td && *td ? td : "/tmp", (long)getpid(),
                 (unsigned long long)fn_mix64((uint64_t)(uintptr_t)common_path ^ (uint64_t)time(NULL)), CTABLE_EXT);
        int rc = ctable_build(common_path, schema, stop_on_bad, 0, path);
        if (!rc) rc = ctable_open(out, path, schema);
        unlink(path);
        return rc;
    }
    struct stat st;
    char real[PATH_MAX];
    if (stat(common_path, &st) || !realpath(common_path, real)) return fn_fail(FN_EIO, "%s: cannot read: %s", common_path, strerror(errno));
    char spec[CTABLE_HEADER];
    schema_format(schema, spec, sizeof spec);
    char id[PATH_MAX + CTABLE_HEADER + 64];
    int n = snprintf(id, sizeof id, "%s|%lld|%lld.%09ld|%s|%u", real, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
                     st.st_mtim.tv_nsec, spec, CTABLE_VERSION);
    const char *base = strrchr(real, '/');
    base = base ? base + 1 : real;
    snprintf(path, sizeof path, "%s/%.120s-%016llx%s", cache_dir, base, (unsigned long long)fn_hash64(id, (size_t)n, 0x43414348), CTABLE_EXT);
    int rc = fn_mkdirs(cache_dir);
    if (rc) return rc;
    char lock[PATH_MAX + 80];
    snprintf(lock, sizeof lock, "%s.lock", path);
    int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lfd < 0) return fn_fail(FN_EIO, "%s: cannot create: %s", lock, strerror(errno));
    while (flock(lfd, LOCK_EX) && errno == EINTR) {}
    if (access(path, F_OK) == 0) {
        rc = ctable_open(out, path, schema);
        if (rc && rc != FN_ENOMEM) {
            log_warn("%s: %s: building it again", path, fn_err_msg());
            unlink(path);
        }
        if (!rc && ((*out)->src_bytes != (uint64_t)st.st_size)) { ctable_close(out); unlink(path); rc = FN_EPARSE; }
        if (!rc) log_info("%s: common feature table %s (%llu sets, %.1f MB, shared)", common_path, path,
                          (unsigned long long)(*out)->n_sets, (double)(*out)->map_len / 1e6);
    } else {
        rc = FN_EIO;
    }
    if (rc && rc != FN_ENOMEM) {
        rc = ctable_build(common_path, schema, stop_on_bad, 0, path);
        if (!rc) rc = ctable_open(out, path, schema);
    }
    flock(lfd, LOCK_UN);
    close(lfd);
    return rc;
}

/* ---- the per-impression layout ------------------------------------------- */

int ctable_flatten(const fn_batch *src, fn_batch *dst)
{
    batch_clear(dst);
    if (src->n > dst->cap) return fn_fail(FN_EINVAL, "ctable_flatten: %d examples, room for %d", src->n, dst->cap);
    const fn_ctable *ct = src->ct;
    for (int i = 0; i < src->n; i++) {
        uint64_t a = 0, z = 0;
        if (ct && src->set[i] != CTABLE_NONE && src->set[i] < ct->n_sets) { a = ct->off[src->set[i]]; z = ct->off[src->set[i] + 1]; }
        size_t own = src->off[i + 1] - src->off[i];
        if (batch_reserve_features(dst, (size_t)(z - a) + own)) return FN_ENOMEM;
        for (uint64_t k = a; k < z; k++, dst->nf++) {
            dst->field[dst->nf] = ct->field[k];
            dst->key[dst->nf] = ct->keys[ct->ent[k].kid];
            dst->val[dst->nf] = ct->ent[k].val;
        }
        memcpy(dst->field + dst->nf, src->field + src->off[i], own * sizeof *dst->field);
        memcpy(dst->key + dst->nf, src->key + src->off[i], own * sizeof *dst->key);
        memcpy(dst->val + dst->nf, src->val + src->off[i], own * sizeof *dst->val);
        dst->nf += own;
        dst->sample_id[i] = src->sample_id[i];
        dst->click[i] = src->click[i];
        dst->buy[i] = src->buy[i];
        dst->set[i] = CTABLE_NONE;
        dst->off[i + 1] = dst->nf;
    }
    dst->n = src->n;
    return FN_OK;
}
