/* tests/unit/test_binfmt.c — common/binfmt.c (the binary data format), its
 * place in common/reader.c, and `funnel convert` (common/convert.c).
 *
 * A seeded generator makes examples the way Ali-CCP data looks to the
 * format and at its edges: impressions of one request sharing a prefix of
 * features (the common features), examples with no features, with
 * hundreds (multi-byte counts), values all 1.0 or any bit pattern (-0,
 * subnormals, huge), sample ids rising, falling and jumping by 2^63.
 *   - round trip: written through binfmt_writer into several part files of
 *     many small blocks, read back through reader.h in batches of 1, 7 and
 *     1000 (batches that span blocks and files): every field equal, values
 *     bit for bit, in order; a second pass after rewind reads the same;
 *   - partitions W = 1..7: read one after the other they give every example
 *     exactly once, in order;
 *   - tell/seek: after every batch of a partition, the rest read after a
 *     seek back to the tell (in the same and in a fresh reader) is the rest
 *     read the first time; positions outside the partition are refused;
 *   - damage: every byte of a small file flipped must be refused (at open
 *     or as a read error naming the file), never crash or read wrong; a
 *     flipped payload byte is FN_ECHECKSUM naming the file and the block;
 *     every truncation is refused at open naming the file;
 *   - data sets: schema mismatch, parts of two conversions, a missing last
 *     part, an empty directory are refused with a reason; a single .fbin
 *     file reads alone;
 *   - convert: hand-written Ali-CCP files with bad lines converted into
 *     parts (--rows-per-part), read back identical to the text reader's
 *     output; --bad-lines stop fails leaving no file; an existing output
 *     is refused without --overwrite; an empty skeleton gives an empty
 *     data set. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batch.h"
#include "binfile.h"
#include "binfmt.h"
#include "ctable.h"
#include "convert.h"
#include "fn_error.h"
#include "hash.h"
#include "log.h"
#include "reader.h"
#include "schema.h"

#include "check.h"

static fn_schema schema;
#define FIELDS "101,205,301,109_14,f4,f5,f6,f7,f8,f9" /* 10 fields */

/* Removes every file in d and its subdirectories, then d (the data sets
 * are directories in dir, so check.h's remove_dir is not enough). */
static int remove_tree(const char *d)
{
    int left = 0;
    DIR *h = opendir(d);
    for (struct dirent *e; h && (e = readdir(h));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", d, e->d_name);
        struct stat st;
        if (!stat(p, &st) && S_ISDIR(st.st_mode)) left += remove_tree(p);
        else { unlink(p); left++; }
    }
    if (h) closedir(h);
    rmdir(d);
    return left;
}

static void path_of(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", dir, name); }

/* ---- generated examples --------------------------------------------------- */

/* Appends one example to all (grown as needed; all->cap is its capacity). */
static void add_example(fn_batch *all, fn_rng *r)
{
    if (all->n == all->cap) {
        int cap = all->cap * 2;
        all->sample_id = realloc(all->sample_id, sizeof(uint64_t) * (size_t)cap);
        all->click = realloc(all->click, sizeof(float) * (size_t)cap);
        all->buy = realloc(all->buy, sizeof(float) * (size_t)cap);
        all->off = realloc(all->off, sizeof(size_t) * ((size_t)cap + 1));
        all->cap = cap;
    }
    int i = all->n;
    uint64_t prev = i ? all->sample_id[i - 1] : 0;
    uint64_t u = fn_rng_below(r, 100);
    all->sample_id[i] = u < 70 ? prev + 1 : u < 85 ? prev - fn_rng_below(r, 1000) : u < 95 ? fn_rng_next(r) : prev + (1ull << 63);
    all->click[i] = fn_rng_below(r, 4) == 0;
    all->buy[i] = all->click[i] && fn_rng_below(r, 3) == 0;
    size_t prev_nf = i ? all->off[i] - all->off[i - 1] : 0;
    /* a new request (fresh common prefix) or another impression of the last one */
    size_t shared = i && fn_rng_below(r, 4) ? fn_rng_below(r, prev_nf + 1) : 0;
    u = fn_rng_below(r, 100);
    size_t own = u < 5 ? 0 : u < 8 ? 150 + fn_rng_below(r, 200) : fn_rng_below(r, 12);
    int ones = fn_rng_below(r, 3) == 0;
    batch_reserve_features(all, shared + own);
    size_t o = all->nf, a = i ? all->off[i - 1] : 0;
    for (size_t j = 0; j < shared; j++) {
        all->field[o + j] = all->field[a + j];
        all->key[o + j] = all->key[a + j];
        all->val[o + j] = all->val[a + j];
    }
    for (size_t j = shared; j < shared + own; j++) {
        all->field[o + j] = (uint16_t)fn_rng_below(r, (uint64_t)schema.n);
        all->key[o + j] = fn_rng_next(r);
        float v = 1.0f;
        if (!ones) {
            uint64_t k = fn_rng_below(r, 10);
            if (k == 0) { uint32_t bits = (uint32_t)fn_rng_next(r) & 0x807FFFFFu; memcpy(&v, &bits, 4); } /* subnormal or 0 */
            else if (k == 1) v = -0.0f;
            else if (k == 2) v = 3.0e38f;
            else if (k < 5) v = 1.0f;
            else v = (float)(fn_rng_uniform(r) * 10 - 5);
        }
        all->val[o + j] = v;
    }
    all->nf = o + shared + own;
    all->n = i + 1;
    all->off[i + 1] = all->nf;
}

static void make_examples(fn_batch *all, int n, uint64_t seed)
{
    batch_init(all, 64, 1024);
    fn_rng r;
    fn_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) add_example(all, &r);
}

static int same_example(const fn_batch *a, int i, const fn_batch *b, int j)
{
    if (a->sample_id[i] != b->sample_id[j] || a->click[i] != b->click[j] || a->buy[i] != b->buy[j]) return 0;
    size_t na = a->off[i + 1] - a->off[i], nb = b->off[j + 1] - b->off[j];
    if (na != nb) return 0;
    const size_t x = a->off[i], y = b->off[j];
    if (memcmp(a->field + x, b->field + y, na * sizeof *a->field) || memcmp(a->key + x, b->key + y, na * sizeof *a->key) ||
        memcmp(a->val + x, b->val + y, na * sizeof *a->val)) /* bit for bit */
        return 0;
    return 1;
}

/* Writes all[0..n) as a data set in directory name: parts of rows_per_part
 * examples (0: one part), blocks closed at block_bytes raw bytes. */
static void write_set(const char *name, const fn_batch *all, int rows_per_part, size_t block_bytes, uint64_t id)
{
    char d[256], p[300];
    path_of(d, sizeof d, name);
    mkdir(d, 0755);
    binfmt_writer *w = NULL;
    int part = 0, in_part = 0;
    for (int i = 0; i <= all->n; i++) {
        int end = i == all->n;
        if (!end && w && rows_per_part && in_part == rows_per_part) {
            CHECK(binfmt_writer_finish(w, 0) == FN_OK, "finish: %s", fn_err_msg());
            CHECK(binfmt_writer_commit(&w) == FN_OK, "commit: %s", fn_err_msg());
        }
        if (!w && (!end || part == 0)) {
            snprintf(p, sizeof p, "%s/part-%05d.fbin", d, part++);
            CHECK(binfmt_writer_open(&w, p, &schema, id, (uint32_t)(part - 1), block_bytes, (int)(i % 2 ? 0 : 3)) == FN_OK, "open %s: %s", p,
                  fn_err_msg());
            in_part = 0;
        }
        if (end) break;
        CHECK(binfmt_writer_add(w, all, i) == FN_OK, "add: %s", fn_err_msg());
        in_part++;
    }
    CHECK(binfmt_writer_finish(w, 1) == FN_OK, "finish: %s", fn_err_msg());
    CHECK(binfmt_writer_commit(&w) == FN_OK, "commit: %s", fn_err_msg());
    CHECK(w == NULL, "commit leaves the writer");
}

/* Reads partition part/nparts of path through reader.h in batches of max,
 * appending what it returns to got[*ngot] (as indices into all, checked). */
static int read_part(const char *what, fn_dataset *ds, int part, int nparts, int max, const fn_batch *all, int *pos)
{
    fn_reader *r = NULL;
    int rc = reader_open(&r, ds, part, nparts);
    CHECK(rc == FN_OK, "%s: reader_open: %s", what, fn_err_msg());
    if (rc) return 0;
    fn_batch b;
    batch_init(&b, max, 16);
    int n = 0, bad = 0;
    double last_progress = 0;
    for (;;) {
        rc = reader_next(r, &b, max);
        CHECK(rc == FN_OK, "%s: next: %s", what, fn_err_msg());
        if (rc || b.n == 0) break;
        CHECK(b.n <= max && b.off[0] == 0 && b.off[b.n] == b.nf, "%s: batch shape", what);
        for (int i = 0; i < b.n; i++, n++) {
            if (*pos + n >= all->n || !same_example(all, *pos + n, &b, i)) {
                if (bad++ < 3) CHECK(0, "%s: example %d of the partition differs from example %d written", what, n, *pos + n);
            }
        }
        double pr = reader_progress(r);
        CHECK(pr >= last_progress && pr <= 1.0, "%s: progress %g after %g", what, pr, last_progress);
        last_progress = pr;
    }
    CHECK(reader_progress(r) == 1.0, "%s: progress %g at the end", what, reader_progress(r));
    CHECK(reader_get_stats(r)->examples == (uint64_t)n, "%s: stats say %llu examples, read %d", what,
          (unsigned long long)reader_get_stats(r)->examples, n);
    /* rewind: the same again */
    CHECK(reader_rewind(r) == FN_OK, "%s: rewind", what);
    int n2 = 0;
    while (reader_next(r, &b, max) == FN_OK && b.n > 0) {
        for (int i = 0; i < b.n; i++, n2++)
            if (*pos + n2 >= all->n || !same_example(all, *pos + n2, &b, i)) { CHECK(0, "%s: second pass differs at %d", what, n2); break; }
    }
    CHECK(n2 == n, "%s: second pass %d examples, first %d", what, n2, n);
    *pos += n;
    batch_free(&b);
    reader_close(&r);
    CHECK(r == NULL, "reader_close");
    return n;
}

/* ---- round trip, partitions ------------------------------------------------ */

static void test_round_trip(void)
{
    fn_batch all;
    make_examples(&all, 3000, 11);
    write_set("rt", &all, 1100, 4096, 0x1234); /* 3 parts, blocks of ~4 KB */
    char d[256];
    path_of(d, sizeof d, "rt");
    fn_dataset *ds = NULL;
    int rc = dataset_open(&ds, "bin", d, NULL, &schema, 0);
    CHECK(rc == FN_OK, "dataset_open: %s", fn_err_msg());
    if (rc) { batch_free(&all); return; }
    printf("round trip: %s\n", dataset_describe(ds));
    const int maxes[3] = {1, 7, 1000};
    for (int m = 0; m < 3; m++) {
        int pos = 0;
        char what[64];
        snprintf(what, sizeof what, "round trip, batch %d", maxes[m]);
        read_part(what, ds, 0, 1, maxes[m], &all, &pos);
        CHECK(pos == all.n, "%s: %d examples of %d", what, pos, all.n);
    }
    for (int W = 1; W <= 7; W++) {
        int pos = 0;
        for (int p = 0; p < W; p++) {
            char what[64];
            snprintf(what, sizeof what, "partition %d of %d", p, W);
            read_part(what, ds, p, W, 333, &all, &pos);
        }
        CHECK(pos == all.n, "W=%d: the partitions gave %d examples of %d", W, pos, all.n);
    }
    /* more partitions than blocks: the extra ones are empty, none repeats */
    {
        int pos = 0;
        for (int p = 0; p < 50; p++) read_part("50 partitions", ds, p, 50, 64, &all, &pos);
        CHECK(pos == all.n, "50 partitions gave %d of %d", pos, all.n);
    }
    dataset_close(&ds);
    CHECK(ds == NULL, "dataset_close");
    /* a single part file on its own */
    char p[300];
    snprintf(p, sizeof p, "%s/part-00001.fbin", d);
    rc = dataset_open(&ds, "bin", p, NULL, &schema, 0);
    CHECK(rc == FN_OK, "one part file: %s", fn_err_msg());
    if (!rc) {
        fn_reader *r;
        fn_batch b;
        batch_init(&b, 500, 16);
        reader_open(&r, ds, 0, 1);
        int n = 0, ok = 1;
        while (reader_next(r, &b, 500) == FN_OK && b.n > 0)
            for (int i = 0; i < b.n; i++, n++) ok &= 1100 + n < all.n && same_example(&all, 1100 + n, &b, i);
        CHECK(ok && n == 1100, "part 1 alone: %d examples, ok %d", n, ok);
        reader_close(&r);
        batch_free(&b);
        dataset_close(&ds);
    }
    batch_free(&all);
}

/* ---- tell / seek ------------------------------------------------------------ */

static void test_tell_seek(void)
{
    fn_batch all;
    make_examples(&all, 1500, 12);
    write_set("ts", &all, 700, 2048, 0x55);
    char d[256];
    path_of(d, sizeof d, "ts");
    fn_dataset *ds = NULL;
    if (dataset_open(&ds, "bin", d, NULL, &schema, 0)) { CHECK(0, "open: %s", fn_err_msg()); batch_free(&all); return; }
    fn_batch b;
    batch_init(&b, 64, 16);
    for (int W = 1; W <= 3; W++)
        for (int part = 0; part < W; part++) {
            fn_reader *r, *r2;
            reader_open(&r, ds, part, W);
            reader_open(&r2, ds, part, W);
            /* the whole partition once, remembering the sample ids and a tell before each batch */
            uint64_t ids[2000], pos[200][2];
            int start[200], nb = 0, n = 0;
            for (;;) {
                reader_tell(r, pos[nb]);
                start[nb] = n;
                if (reader_next(r, &b, 37) || b.n == 0) break;
                for (int i = 0; i < b.n; i++) ids[n++] = b.sample_id[i];
                nb++;
            }
            uint64_t endpos[2];
            reader_tell(r, endpos);
            for (int k = 0; k <= nb; k++) {
                fn_reader *rr = k % 2 ? r2 : r; /* the same reader, or another one */
                int rc = reader_seek(rr, pos[k]);
                CHECK(rc == FN_OK, "W %d part %d: seek to (%llu,%llu): %s", W, part, (unsigned long long)pos[k][0],
                      (unsigned long long)pos[k][1], fn_err_msg());
                int m = start[k], ok = 1;
                while (reader_next(rr, &b, 50) == FN_OK && b.n > 0)
                    for (int i = 0; i < b.n; i++, m++) ok &= m < n && b.sample_id[i] == ids[m];
                CHECK(ok && m == n, "W %d part %d: after seek %d the rest differs (%d of %d)", W, part, k, m, n);
            }
            /* outside the partition */
            uint64_t beyond[2] = {endpos[0] + 1, 0};
            CHECK(reader_seek(r, beyond) == FN_EINVAL, "W %d part %d: seek beyond the partition accepted", W, part);
            if (pos[0][0] > 0) {
                uint64_t before[2] = {pos[0][0] - 1, 0};
                CHECK(reader_seek(r, before) == FN_EINVAL, "W %d part %d: seek before the partition accepted", W, part);
            }
            uint64_t past[2] = {endpos[0], endpos[1] + 1};
            CHECK(reader_seek(r, past) == FN_EINVAL, "seek past the end of the partition accepted");
            if (pos[0][1] > 0) {
                uint64_t before[2] = {pos[0][0], pos[0][1] - 1};
                CHECK(reader_seek(r, before) == FN_EINVAL, "W %d part %d: seek to the example before the partition accepted", W, part);
            }
            if (nb > 0) {
                uint64_t inside[2] = {pos[0][0], 1u << 30};
                CHECK(reader_seek(r, inside) == FN_EINVAL, "seek past a block's examples accepted");
            }
            reader_close(&r);
            reader_close(&r2);
        }
    batch_free(&b);
    dataset_close(&ds);
    batch_free(&all);
}

/* ---- damage ------------------------------------------------------------------ */

static long file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) ? -1 : (long)st.st_size;
}

static uint8_t *slurp(const char *p, long *n)
{
    *n = file_size(p);
    uint8_t *buf = malloc((size_t)*n);
    FILE *f = fopen(p, "rb");
    if (!f || fread(buf, 1, (size_t)*n, f) != (size_t)*n) { printf("FAIL read %s\n", p); exit(1); }
    fclose(f);
    return buf;
}

static void spit(const char *p, const uint8_t *buf, long n)
{
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(buf, 1, (size_t)n, f) != (size_t)n) { printf("FAIL write %s\n", p); exit(1); }
    fclose(f);
}

/* Opens and reads the whole file: FN_OK with *n examples, or the error. */
static int read_all(const char *path, int *n, const fn_batch *want)
{
    fn_dataset *ds = NULL;
    fn_reader *r = NULL;
    *n = 0;
    int rc = dataset_open(&ds, "bin", path, NULL, &schema, 0);
    if (!rc) rc = reader_open(&r, ds, 0, 1);
    fn_batch b;
    batch_init(&b, 16, 16);
    int same = 1;
    while (!rc) {
        if ((rc = reader_next(r, &b, 16)) || b.n == 0) break;
        for (int i = 0; i < b.n; i++, (*n)++) same &= want && *n < want->n && same_example(want, *n, &b, i);
    }
    if (!rc && want && (!same || *n != want->n)) rc = -1;
    batch_free(&b);
    reader_close(&r);
    dataset_close(&ds);
    return rc;
}

static void test_damage(void)
{
    fn_batch all;
    make_examples(&all, 60, 13);
    write_set("dmg", &all, 0, 512, 7);
    char p[300], q[300];
    path_of(p, sizeof p, "dmg/part-00000.fbin");
    path_of(q, sizeof q, "damaged.fbin");
    long n;
    uint8_t *orig = slurp(p, &n);
    int got, rc = read_all(p, &got, &all);
    CHECK(rc == FN_OK && got == all.n, "undamaged file: rc %d, %d examples: %s", rc, got, fn_err_msg());
    uint8_t *buf = malloc((size_t)n);
    int at_open = 0, at_read = 0, named = 0;
    for (long k = 0; k < n; k++) {
        memcpy(buf, orig, (size_t)n);
        buf[k] ^= (uint8_t)(1u << (k % 8));
        spit(q, buf, n);
        rc = read_all(q, &got, &all);
        if (rc == FN_OK || rc == -1) {
            CHECK(0, "byte %ld flipped: %s (%d examples)", k, rc ? "read wrong examples" : "not noticed", got);
            continue;
        }
        if (strstr(fn_err_msg(), q)) named++;
        else CHECK(0, "byte %ld flipped: error without the file name: %s", k, fn_err_msg());
        if (got) at_read++;
        else at_open++;
    }
    printf("damage: %ld single-byte flips refused (%d at open or first block, %d later), %d naming the file\n", n, at_open, at_read, named);
    /* a payload byte of the second block: a checksum error naming file and block */
    {
        const uint32_t slen = get_le32(orig + 20);
        uint64_t b0 = BINFMT_HEADER_FIXED + slen, b1 = b0 + BINFMT_BLOCK_HEADER + get_le32(orig + b0 + 16);
        memcpy(buf, orig, (size_t)n);
        buf[b1 + BINFMT_BLOCK_HEADER + 3] ^= 0x40;
        spit(q, buf, n);
        rc = read_all(q, &got, NULL);
        CHECK(rc == FN_ECHECKSUM, "flipped payload: rc %d: %s", rc, fn_err_msg());
        CHECK(strstr(fn_err_msg(), q) && strstr(fn_err_msg(), "block 1 of"), "message names file and block 1: %s", fn_err_msg());
        printf("corrupt block: %s\n", fn_err_msg());
    }
    /* truncation at every length: refused at open, naming the file */
    for (long len = 0; len < n; len++) {
        spit(q, orig, len);
        fn_dataset *ds = NULL;
        rc = dataset_open(&ds, "bin", q, NULL, &schema, 0);
        CHECK(rc != FN_OK && strstr(fn_err_msg(), q), "truncated to %ld bytes: rc %d: %s", len, rc, fn_err_msg());
        if (len == n / 2) printf("truncated: %s\n", fn_err_msg());
        dataset_close(&ds);
    }
    /* a file truncated after open (shorter than its index says): an error, no crash */
    {
        fn_dataset *ds = NULL;
        fn_reader *r = NULL;
        spit(q, orig, n);
        rc = dataset_open(&ds, "bin", q, NULL, &schema, 0);
        if (!rc) rc = reader_open(&r, ds, 0, 1);
        if (!rc) {
            if (truncate(q, 100)) printf("FAIL truncate\n");
            fn_batch b;
            batch_init(&b, 1000, 16);
            rc = reader_next(r, &b, 1000);
            CHECK(rc == FN_EIO && strstr(fn_err_msg(), "block 0"), "truncated under the reader: rc %d: %s", rc, fn_err_msg());
            batch_free(&b);
        }
        reader_close(&r);
        dataset_close(&ds);
    }
    unlink(q);
    free(buf);
    free(orig);
    batch_free(&all);
}

/* ---- data sets --------------------------------------------------------------- */

static void test_sets(void)
{
    fn_batch all;
    make_examples(&all, 200, 14);
    char d[256], a[300], b[300];
    fn_dataset *ds = NULL;
    int rc;
    write_set("s1", &all, 80, 1024, 100); /* 3 parts */
    path_of(d, sizeof d, "s1");
    /* another field list */
    fn_schema other;
    schema_parse(&other, "101,205,301");
    rc = dataset_open(&ds, "bin", d, NULL, &other, 0);
    CHECK(rc == FN_EUSAGE && strstr(fn_err_msg(), "101,205,301") && strstr(fn_err_msg(), FIELDS), "schema mismatch: %d %s", rc, fn_err_msg());
    printf("schema mismatch: %s\n", fn_err_msg());
    /* a common file with bin */
    rc = dataset_open(&ds, "bin", d, "x.csv", &schema, 0);
    CHECK(rc == FN_EUSAGE, "bin with a common file: %d", rc);
    /* the last part missing */
    snprintf(a, sizeof a, "%s/part-00002.fbin", d);
    snprintf(b, sizeof b, "%s/x", d);
    rename(a, b);
    rc = dataset_open(&ds, "bin", d, NULL, &schema, 0);
    CHECK(rc != FN_OK && strstr(fn_err_msg(), "missing"), "missing last part: %d %s", rc, fn_err_msg());
    /* a part in the middle missing */
    rename(b, a);
    snprintf(a, sizeof a, "%s/part-00001.fbin", d);
    rename(a, b);
    rc = dataset_open(&ds, "bin", d, NULL, &schema, 0);
    CHECK(rc != FN_OK && strstr(fn_err_msg(), "part 2"), "missing middle part: %d %s", rc, fn_err_msg());
    rename(b, a);
    CHECK(dataset_open(&ds, "bin", d, NULL, &schema, 0) == FN_OK, "restored set: %s", fn_err_msg());
    dataset_close(&ds);
    /* a part of another conversion */
    write_set("s2", &all, 80, 1024, 200);
    char a2[300];
    path_of(a2, sizeof a2, "s2/part-00001.fbin");
    rename(a2, a);
    rc = dataset_open(&ds, "bin", d, NULL, &schema, 0);
    CHECK(rc != FN_OK && strstr(fn_err_msg(), "different conversions"), "mixed conversions: %d %s", rc, fn_err_msg());
    /* empty directory, missing path */
    path_of(d, sizeof d, "empty");
    mkdir(d, 0755);
    rc = dataset_open(&ds, "bin", d, NULL, &schema, 0);
    CHECK(rc == FN_ENOTFOUND && strstr(fn_err_msg(), d), "empty directory: %d %s", rc, fn_err_msg());
    path_of(d, sizeof d, "nothing-here");
    rc = dataset_open(&ds, "bin", d, NULL, &schema, 0);
    CHECK(rc == FN_EIO && strstr(fn_err_msg(), d), "missing path: %d %s", rc, fn_err_msg());
    /* not a binary file */
    path_of(a, sizeof a, "text.fbin");
    spit(a, (const uint8_t *)"1,0,0,abc,0,\n2,0,0,abc,0,\n3,0,0,abc,0,\n4,0,0,abc,0,\n5,0,0,abc,0,\n6,0,0,abc,0,\n", 78);
    rc = dataset_open(&ds, "bin", a, NULL, &schema, 0);
    CHECK(rc == FN_EMAGIC, "text file as bin: %d %s", rc, fn_err_msg());
    batch_free(&all);
}

/* ---- convert ---------------------------------------------------------------- */

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f) { printf("FAIL cannot create %s\n", path); exit(1); }
    fputs(text, f);
    fclose(f);
}

static int run_convert(const char *a0, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    va_start(ap, a0);
    for (const char *s = a0; s && argc < 31; s = va_arg(ap, const char *)) argv[argc++] = (char *)s;
    va_end(ap);
    argv[argc] = NULL;
    return convert_main(argc, argv);
}

/* A generated Ali-CCP pair: requests of 1..4 impressions, some bad lines. */
static void write_aliccp(const char *skel, const char *common, int requests, uint64_t seed)
{
    FILE *s = fopen(skel, "wb"), *c = fopen(common, "wb");
    fn_rng r;
    fn_rng_seed(&r, seed);
    static const char *const fields[] = {"101", "205", "301", "109_14", "f4", "f5", "999"};
    uint64_t id = 1;
    for (int q = 0; q < requests; q++) {
        fprintf(c, "md5_%d,", q);
        int nc = (int)fn_rng_below(&r, 6);
        fprintf(c, "%d,", nc);
        for (int k = 0; k < nc; k++)
            fprintf(c, "%s%s\x02%llu\x03%s", k ? "\x01" : "", fields[fn_rng_below(&r, 7)], (unsigned long long)fn_rng_below(&r, 50),
                    fn_rng_below(&r, 2) ? "1" : "0.69315");
        fputc('\n', c);
        int imps = 1 + (int)fn_rng_below(&r, 4);
        for (int k = 0; k < imps; k++) {
            if (fn_rng_below(&r, 20) == 0) fprintf(s, "%llu,2,0,md5_%d,0,\n", (unsigned long long)id++, q); /* bad click */
            int click = fn_rng_below(&r, 3) == 0, buy = click && fn_rng_below(&r, 2);
            int ns = (int)fn_rng_below(&r, 4);
            fprintf(s, "%llu,%d,%d,md5_%d,%d,", (unsigned long long)id++, click, buy, q, ns);
            for (int j = 0; j < ns; j++)
                fprintf(s, "%s%s\x02%llu\x03%.3f", j ? "\x01" : "", fields[fn_rng_below(&r, 7)], (unsigned long long)fn_rng_below(&r, 1000),
                        fn_rng_uniform(&r) * 3);
            fputc('\n', s);
        }
    }
    fclose(s);
    fclose(c);
}

static int count_fbin(const char *d)
{
    int n = 0;
    DIR *h = opendir(d);
    for (struct dirent *e; h && (e = readdir(h));) n += strstr(e->d_name, ".fbin") != NULL;
    if (h) closedir(h);
    return n;
}

static void test_convert(void)
{
    char skel[256], common[256], out[256], out2[256];
    path_of(skel, sizeof skel, "skel.csv");
    path_of(common, sizeof common, "common.csv");
    path_of(out, sizeof out, "conv");
    path_of(out2, sizeof out2, "conv2");
    write_aliccp(skel, common, 1500, 21);
    int rc = run_convert("convert", "--data", skel, "--common", common, "--out", out, "--fields", FIELDS, "--rows-per-part", "1000",
                         "--block-kb", "8", NULL);
    CHECK(rc == 0, "convert: exit %d", rc);
    CHECK(count_fbin(out) >= 3, "convert wrote %d parts", count_fbin(out));
    /* the text reader's examples, in one big batch */
    fn_dataset *ta = NULL, *tb = NULL;
    fn_reader *ra = NULL, *rb = NULL;
    rc = dataset_open(&ta, "aliccp", skel, common, &schema, 0);
    if (!rc) rc = reader_open(&ra, ta, 0, 1);
    if (!rc) rc = dataset_open(&tb, "bin", out, NULL, &schema, 0);
    if (!rc) rc = reader_open(&rb, tb, 0, 1);
    CHECK(rc == FN_OK, "open: %s", fn_err_msg());
    fn_batch x, y;
    batch_init(&x, 100000, 16);
    batch_init(&y, 100000, 16);
    if (!rc) {
        reader_next(ra, &x, 100000);
        reader_next(rb, &y, 100000);
        /* the same sets named, and the same features once each set is copied in */
        fn_batch fx, fy;
        batch_init(&fx, 100000, 16);
        batch_init(&fy, 100000, 16);
        int same = x.n == y.n && x.ct && y.ct && ctable_flatten(&x, &fx) == FN_OK && ctable_flatten(&y, &fy) == FN_OK;
        for (int i = 0; same && i < x.n; i++) same = x.set[i] == y.set[i] && x.set[i] != CTABLE_NONE && same_example(&fx, i, &fy, i);
        CHECK(same && x.n > 3000, "text and converted differ: %d vs %d examples", x.n, y.n);
        CHECK(fx.nf > x.nf, "the common features are not copied into the examples (%zu own entries, %zu in all)", x.nf, fx.nf);
        batch_free(&fx);
        batch_free(&fy);
        CHECK(reader_get_stats(ra)->bad_lines > 0, "the text had bad lines");
        printf("convert: %d examples identical to the text reader's (%llu bad lines skipped)\n", x.n,
               (unsigned long long)reader_get_stats(ra)->bad_lines);
    }
    reader_close(&ra);
    reader_close(&rb);
    dataset_close(&ta);
    dataset_close(&tb);
    /* an existing output is refused, then replaced with --overwrite (one part now) */
    rc = run_convert("convert", "--data", skel, "--common", common, "--out", out, "--fields", FIELDS, NULL);
    CHECK(rc == 1, "existing output not refused: exit %d", rc);
    rc = run_convert("convert", "--data", skel, "--common", common, "--out", out, "--fields", FIELDS, "--overwrite", NULL);
    CHECK(rc == 0 && count_fbin(out) == 1, "overwrite: exit %d, %d parts", rc, count_fbin(out));
    int got;
    rc = read_all(out, &got, &y);
    CHECK(rc == FN_OK && got == y.n, "after overwrite: rc %d, %d examples", rc, got);
    /* stop on bad lines: fails, leaves nothing */
    rc = run_convert("convert", "--data", skel, "--common", common, "--out", out2, "--fields", FIELDS, "--bad-lines", "stop", NULL);
    CHECK(rc == 1 && count_fbin(out2) == 0, "--bad-lines stop: exit %d, %d files", rc, count_fbin(out2));
    /* usage errors */
    CHECK(run_convert("convert", "--data", skel, "--out", out2, NULL) == 2, "missing --common accepted");
    CHECK(run_convert("convert", "--data", skel, "--common", common, "--out", out2, "--format", "bin", NULL) == 2, "--format bin accepted");
    /* an empty skeleton: an empty data set */
    write_text(skel, "");
    rc = run_convert("convert", "--data", skel, "--common", common, "--out", out2, "--fields", FIELDS, NULL);
    CHECK(rc == 0 && count_fbin(out2) == 1, "empty input: exit %d", rc);
    rc = read_all(out2, &got, NULL);
    CHECK(rc == FN_OK && got == 0, "empty data set: rc %d, %d examples", rc, got);
    batch_free(&x);
    batch_free(&y);
}

/* ---- cursor and block edges ------------------------------------------------- */

static void test_block_edges(void)
{
    uint8_t raw[64], *out = NULL;
    size_t cap = 0, len;
    uint32_t n;
    /* one example: id 5, click, shares 0, 1 feature (field 2, key 9, value 1.0 -> flag) */
    memset(raw, 0, sizeof raw);
    put_le32(raw, 5);
    put_le32(raw + 4, 1);
    put_le32(raw + 8, 0);
    raw[12] = 10; raw[13] = BINFMT_FLAG_CLICK | BINFMT_FLAG_ONES; raw[14] = 0; raw[15] = 1; raw[16] = 0; /* no common set */
    raw[17] = 2; raw[18] = 0;
    put_le64(raw + 19, 9);
    size_t rl = 27;
    uint8_t blk[256];
    size_t bl = binfmt_block_encode(blk, raw, rl, 1, 3);
    CHECK(binfmt_block_decode(blk, bl, &out, &cap, &len, &n) == FN_OK && len == rl && n == 1, "block of one: %s", fn_err_msg());
    binfmt_cursor c;
    binfmt_cursor_new(&c);
    fn_batch b;
    batch_init(&b, 4, 4);
    CHECK(binfmt_cursor_reset(&c, out, len, 1) == FN_OK, "reset");
    CHECK(binfmt_cursor_decode(&c, &b, 4, 3) == FN_OK && b.n == 1 && b.sample_id[0] == 5 && b.click[0] == 1 && b.buy[0] == 0 &&
              b.nf == 1 && b.field[0] == 2 && b.key[0] == 9 && b.val[0] == 1.0f,
          "hand-made example: %s", fn_err_msg());
    CHECK(b.set[0] == CTABLE_NONE, "hand-made example: set %u, want none", b.set[0]);
    /* a common set: 2 of a table of 2 is out of range, 1 is set 0, and without a table none is */
    raw[16] = 3;
    c.n_sets = 2;
    batch_clear(&b);
    binfmt_cursor_reset(&c, raw, rl, 1);
    CHECK(binfmt_cursor_decode(&c, &b, 4, 3) == FN_EPARSE && strstr(fn_err_msg(), "set 2"), "set past the table accepted: %s", fn_err_msg());
    raw[16] = 1;
    batch_clear(&b);
    binfmt_cursor_reset(&c, raw, rl, 1);
    CHECK(binfmt_cursor_decode(&c, &b, 4, 3) == FN_OK && b.set[0] == 0, "set 0: %s", fn_err_msg());
    c.n_sets = 0;
    batch_clear(&b);
    binfmt_cursor_reset(&c, raw, rl, 1);
    CHECK(binfmt_cursor_decode(&c, &b, 4, 3) == FN_EPARSE && strstr(fn_err_msg(), "common.fct"), "a set without a table accepted: %s", fn_err_msg());
    raw[16] = 0;
    /* field index out of the schema */
    batch_clear(&b);
    binfmt_cursor_reset(&c, out, len, 1);
    CHECK(binfmt_cursor_decode(&c, &b, 4, 2) == FN_EPARSE && b.n == 0, "field 2 of a 2-field schema accepted");
    /* sharing in a block's first example */
    raw[14] = 1;
    batch_clear(&b);
    binfmt_cursor_reset(&c, raw, rl, 1);
    CHECK(binfmt_cursor_decode(&c, &b, 4, 3) == FN_EPARSE, "sharing in the first example accepted");
    raw[14] = 0;
    /* bytes left over / counts that do not add up */
    CHECK(binfmt_cursor_reset(&c, raw, rl + 1, 1) == FN_EPARSE, "section sizes with an extra byte accepted");
    batch_clear(&b);
    binfmt_cursor_reset(&c, raw, rl, 2);
    CHECK(binfmt_cursor_decode(&c, &b, 4, 3) == FN_EPARSE, "block claiming 2 examples with one accepted");
    /* unknown flags */
    raw[13] |= 0x80;
    batch_clear(&b);
    binfmt_cursor_reset(&c, raw, rl, 1);
    CHECK(binfmt_cursor_decode(&c, &b, 4, 3) == FN_EPARSE, "unknown flag accepted");
    /* a stored (incompressible) block round trip */
    uint8_t noise[200];
    for (int i = 0; i < 200; i++) noise[i] = (uint8_t)fn_mix64((uint64_t)i);
    bl = binfmt_block_encode(blk, noise, sizeof noise, 3, 3);
    CHECK(get_le32(blk + 4) == BINFMT_CODEC_NONE && bl == BINFMT_BLOCK_HEADER + sizeof noise, "incompressible block stored");
    CHECK(binfmt_block_decode(blk, bl, &out, &cap, &len, &n) == FN_OK && len == sizeof noise && !memcmp(out, noise, len), "stored block back");
    CHECK(binfmt_block_decode(blk, bl - 1, &out, &cap, &len, &n) == FN_ECHECKSUM, "short block accepted");
    free(out);
    batch_free(&b);
    binfmt_cursor_free(&c);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/test_binfmt.XXXXXX");
    if (!mkdtemp(dir)) { printf("FAIL mkdtemp\n"); return 1; }
    log_set_level(LOG_ERROR); /* convert's reports and the skipped lines' warnings are expected */
    if (schema_parse(&schema, FIELDS)) { printf("FAIL schema_parse: %s\n", fn_err_msg()); return 1; }
    test_block_edges();
    test_round_trip();
    test_tell_seek();
    test_damage();
    test_sets();
    test_convert();
    remove_tree(dir);
    if (failures) { printf("test_binfmt: %d failures\n", failures); return 1; }
    printf("test_binfmt: ok\n");
    return 0;
}
