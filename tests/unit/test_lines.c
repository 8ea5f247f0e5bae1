/* tests/unit/test_lines.c — common/lines.c against a reference splitter.
 *
 * For each test file the reference cuts the whole file into lines (split at
 * '\n', a trailing "\r" dropped, a last line without '\n' kept); then for
 * every P in 1..9 the lines returned by partitions 0..P-1, concatenated,
 * must be exactly the reference lines in order — none lost, none twice —
 * and lines_lineno() must give each one's true 1-based number.  Files hit
 * the awkward cases: empty lines, a last line without '\n', "\r\n", a 10 MB
 * line (longer than the 4 MB read buffer), lines straddling buffer refills,
 * an empty file, a file of only "\n", and many small random files whose
 * partition boundaries fall on every kind of byte. */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fn_error.h"
#include "hash.h"
#include "lines.h"

#include "check.h"



/* ---- reference ----------------------------------------------------------- */

typedef struct {
    size_t n;
    size_t *off, *len; /* each line's bytes in the file buffer (without "\r\n") */
} ref_lines;

static ref_lines ref_split(const char *buf, size_t size)
{
    ref_lines r = {0, NULL, NULL};
    size_t cap = 16;
    r.off = malloc(cap * sizeof *r.off);
    r.len = malloc(cap * sizeof *r.len);
    size_t s = 0;
    while (s < size) {
        const char *nl = memchr(buf + s, '\n', size - s);
        size_t e = nl ? (size_t)(nl - buf) : size;
        size_t n = e - s;
        if (n && buf[s + n - 1] == '\r') n--;
        if (r.n == cap) {
            cap *= 2;
            r.off = realloc(r.off, cap * sizeof *r.off);
            r.len = realloc(r.len, cap * sizeof *r.len);
        }
        r.off[r.n] = s;
        r.len[r.n] = n;
        r.n++;
        s = e + 1;
    }
    return r;
}

static void write_file(const char *path, const char *buf, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f) { printf("FAIL cannot create %s\n", path); exit(1); }
    if (size && fwrite(buf, 1, size, f) != size) { printf("FAIL cannot write %s\n", path); exit(1); }
    fclose(f);
}

/* Writes the file, reads every partition of it for P = 1..maxP, twice
 * (lines_rewind between), and checks them against the reference;
 * lineno_P: the P for which every line's number is checked (0 = all P). */
static void check_file(const char *name, const char *buf, size_t size, int maxP, int lineno_P)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    write_file(path, buf, size);
    ref_lines ref = ref_split(buf, size);
    for (int P = 1; P <= maxP; P++) {
        size_t next = 0; /* index of the next reference line expected */
        int fails0 = failures;
        for (int p = 0; p < P; p++) {
            lines *l;
            int rc = lines_open(&l, path, p, P);
            CHECK(rc == FN_OK, "%s: open part %d/%d: %s", name, p, P, fn_err_msg());
            if (rc) continue;
            size_t first = next, got_n = 0;
            for (int pass = 0; pass < 2; pass++) {
                size_t idx = first;
                char *line;
                size_t len;
                int got;
                while ((got = lines_next(l, &line, &len)) == 1) {
                    CHECK(idx < ref.n, "%s P=%d p=%d pass %d: extra line %zu (len %zu)", name, P, p, pass, idx, len);
                    if (idx >= ref.n) break;
                    CHECK(len == ref.len[idx] && !memcmp(line, buf + ref.off[idx], len),
                          "%s P=%d p=%d pass %d: line %zu: got len %zu, want %zu", name, P, p, pass, idx + 1, len, ref.len[idx]);
                    CHECK(line[len] == 0, "%s P=%d p=%d: line %zu not NUL-terminated", name, P, p, idx + 1);
                    if (lineno_P == 0 || P == lineno_P) {
                        uint64_t ln = lines_lineno(l);
                        CHECK(ln == idx + 1, "%s P=%d p=%d pass %d: lines_lineno %" PRIu64 ", want %zu", name, P, p, pass, ln, idx + 1);
                    }
                    idx++;
                }
                CHECK(got == 0, "%s P=%d p=%d: lines_next returned %d (%s)", name, P, p, got, fn_err_msg());
                /* at the end it stays at the end */
                CHECK(lines_next(l, &line, &len) == 0, "%s P=%d p=%d: lines_next after the end", name, P, p);
                CHECK(lines_consumed(l) == lines_part_bytes(l), "%s P=%d p=%d: consumed %" PRIu64 " of %" PRIu64, name, P, p,
                      lines_consumed(l), lines_part_bytes(l));
                if (pass == 0) {
                    got_n = idx - first;
                    next = idx;
                    CHECK(lines_rewind(l) == FN_OK, "%s: rewind: %s", name, fn_err_msg());
                    CHECK(lines_consumed(l) == 0, "%s P=%d p=%d: consumed after rewind", name, P, p);
                } else {
                    CHECK(idx - first == got_n, "%s P=%d p=%d: %zu lines after rewind, %zu before", name, P, p, idx - first, got_n);
                }
            }
            CHECK(!strcmp(lines_path(l), path), "%s: lines_path '%s'", name, lines_path(l));
            lines_close(&l);
            CHECK(l == NULL, "lines_close must clear the pointer");
        }
        CHECK(next == ref.n, "%s P=%d: %zu lines over all partitions, want %zu", name, P, next, ref.n);
        if (failures != fails0) break; /* one P's worth of failures is enough */
    }
    free(ref.off);
    free(ref.len);
    unlink(path);
}

/* Appends a string to a growing buffer. */
typedef struct { char *p; size_t n, cap; } sbuf;
static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->n + n > b->cap) {
        while (b->n + n > b->cap) b->cap = b->cap ? b->cap * 2 : 256;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}
static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

/* Random printable line of length n (no '\n', no '\r'). */
static void sb_rand_line(sbuf *b, fn_rng *rng, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = (char)('!' + fn_rng_below(rng, 94));
        sb_add(b, &c, 1);
    }
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/test_lines.XXXXXX");
    if (!mkdtemp(dir)) { printf("FAIL mkdtemp\n"); return 1; }
    fn_rng rng;
    fn_rng_seed(&rng, 12345);

    /* fixed small cases */
#define CHECK_LIT(name, lit) check_file(name, lit, sizeof lit - 1, 9, 0)
    CHECK_LIT("empty", "");
    CHECK_LIT("nl", "\n");
    CHECK_LIT("nl3", "\n\n\n");
    CHECK_LIT("one", "a");
    CHECK_LIT("one_nl", "a\n");
    CHECK_LIT("crlf_only", "\r\n");
    CHECK_LIT("mixed", "abc\n\nde\r\n\r\nf\n\n\nlast");
    CHECK_LIT("nul_inside", "a\0b\n\0\ncd");

    /* random lines with empty ones, ending with and without '\n' */
    for (int variant = 0; variant < 3; variant++) {
        sbuf b = {0};
        for (int i = 0; i < 3000; i++) {
            size_t n = fn_rng_below(&rng, 5) == 0 ? 0 : fn_rng_below(&rng, 200);
            sb_rand_line(&b, &rng, n);
            sb_str(&b, variant == 2 ? "\r\n" : "\n");
        }
        if (variant == 1) sb_rand_line(&b, &rng, 77); /* last line without '\n' */
        static const char *names[] = {"random_nl", "random_no_last_nl", "random_crlf"};
        check_file(names[variant], b.p, b.n, 9, 0);
        free(b.p);
    }

    /* ~9 MB of short lines: many refills of the 4 MB buffer, lines across them */
    {
        sbuf b = {0};
        while (b.n < (9u << 20)) {
            sb_rand_line(&b, &rng, fn_rng_below(&rng, 120));
            sb_str(&b, fn_rng_below(&rng, 3) ? "\n" : "\r\n");
        }
        check_file("many_lines", b.p, b.n, 9, 3);
        free(b.p);
    }

    /* one 10 MB line, alone and without '\n' */
    {
        size_t big = 10u << 20;
        char *s = malloc(big);
        for (size_t i = 0; i < big; i++) s[i] = (char)('a' + i % 26);
        check_file("huge_alone", s, big, 9, 0);
        /* between short lines: a refill in the middle of a line that must grow the buffer */
        sbuf b = {0};
        sb_str(&b, "first\n\nthird\n");
        sb_add(&b, s, big);
        sb_str(&b, "\r\nafter\n\nlast");
        check_file("huge_middle", b.p, b.n, 9, 0);
        free(b.p);
        free(s);
    }

    /* small random files over {a, \n, \r\n}: partition boundaries on every
     * byte.  Each reader allocates a 4 MB buffer, which costs ~10 ms under
     * AddressSanitizer (fresh mappings and shadow): fewer files there. */
#ifdef __SANITIZE_ADDRESS__
    const int n_small = 12;
#else
    const int n_small = 300;
#endif
    for (int t = 0; t < n_small; t++) {
        sbuf b = {0};
        size_t n = fn_rng_below(&rng, 40);
        for (size_t i = 0; i < n; i++) {
            uint64_t c = fn_rng_below(&rng, 6);
            if (c < 3) sb_str(&b, "a");
            else if (c < 5) sb_str(&b, "\n");
            else sb_str(&b, "\r\n");
        }
        char name[32];
        snprintf(name, sizeof name, "small_%d", t);
        check_file(name, b.p ? b.p : "", b.n, 9, 0);
        free(b.p);
    }

    /* errors */
    {
        char path[128];
        snprintf(path, sizeof path, "%s/no_such_file", dir);
        lines *l = (lines *)1;
        int rc = lines_open(&l, path, 0, 1);
        CHECK(rc == FN_EIO, "missing file: rc %d", rc);
        CHECK(l == NULL, "missing file: *out must be NULL");
        CHECK(strstr(fn_err_msg(), path) != NULL, "missing file: message '%s' lacks the path", fn_err_msg());

        snprintf(path, sizeof path, "%s/x", dir);
        write_file(path, "a\nb\n", 4);
        CHECK(lines_open(&l, path, 2, 2) == FN_EINVAL, "part == nparts must be refused");
        CHECK(lines_open(&l, path, -1, 2) == FN_EINVAL, "negative part must be refused");
        CHECK(lines_open(&l, path, 0, 0) == FN_EINVAL, "nparts 0 must be refused");
        CHECK(lines_open(&l, dir, 0, 1) == FN_EIO, "a directory must be refused");
        unlink(path);
    }

    CHECK(remove_dir() == 0, "files left in %s", dir);
    if (failures) { printf("test_lines: %d failures\n", failures); return 1; }
    printf("test_lines: ok\n");
    return 0;
}
