/* common/lines.c — see lines.h. */
#include "lines.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fn_error.h"

#define LINES_BUF (4u << 20)

struct lines {
    FILE *f;
    char *path;
    uint64_t start, end;      /* partition bounds as given */
    uint64_t first;           /* offset of the first line start >= start */
    uint64_t pos;             /* file offset of buf[0] */
    char *buf;
    size_t cap, len, at;      /* buffer capacity, bytes in it, next unread */
    int eof;
    uint64_t line_off;        /* offset of the next line to return */
    uint64_t lines_done;      /* lines returned since `first` */
    uint64_t base;            /* lines before `first` */
};

#define SCAN_BUF (1u << 20)
#define MARK_EVERY 65536u     /* lines between two offsets remembered by count_lines */

/* One pass over the file (a handle of its own): the number of lines (line
 * starts before size: a last line without '\n' counts) and the offset of
 * every MARK_EVERY-th line start, mark[k] = start of line k*MARK_EVERY. */
static int count_lines(const char *path, uint64_t size, uint64_t *nlines, uint64_t **mark)
{
    *nlines = 0;
    *mark = NULL;
    if (size == 0) return FN_OK;
    size_t cap = 16;
    uint64_t *m = malloc(cap * sizeof *m);
    char *b = malloc(SCAN_BUF);
    FILE *f = fopen(path, "rb");
    int rc = FN_OK;
    if (!m || !b) rc = fn_fail(FN_ENOMEM, "%s: out of memory", path);
    else if (!f) rc = fn_fail(FN_EIO, "%s: cannot open: %s", path, strerror(errno));
    uint64_t k = 1, at = 0; /* line 0 starts at 0 */
    size_t nm = 1;
    if (m) m[0] = 0;
    while (!rc && at < size) {
        size_t want = size - at < SCAN_BUF ? (size_t)(size - at) : SCAN_BUF;
        size_t got = fread(b, 1, want, f);
        if (got == 0) {
            rc = ferror(f) ? fn_fail(FN_EIO, "%s: read error: %s", path, strerror(errno))
                           : fn_fail(FN_EIO, "%s: shorter than its size while counting lines (changed while read?)", path);
            break;
        }
        for (char *p = b, *e = b + got; (p = memchr(p, '\n', (size_t)(e - p))); p++) {
            uint64_t start = at + (uint64_t)(p - b) + 1;
            if (start >= size) break;
            if (k % MARK_EVERY == 0) {
                if (nm == cap) {
                    uint64_t *q = realloc(m, 2 * cap * sizeof *q);
                    if (!q) { rc = fn_fail(FN_ENOMEM, "%s: out of memory", path); break; }
                    m = q;
                    cap *= 2;
                }
                m[nm++] = start;
            }
            k++;
        }
        at += got;
    }
    if (f) fclose(f);
    free(b);
    if (rc) { free(m); return rc; }
    *nlines = k;
    *mark = m;
    return FN_OK;
}

/* The offset of the start of line `line` (< nlines), from the marks. */
static int line_start(const char *path, const uint64_t *mark, uint64_t line, uint64_t *off)
{
    uint64_t at = mark[line / MARK_EVERY], left = line % MARK_EVERY;
    *off = at;
    if (!left) return FN_OK;
    char *b = malloc(SCAN_BUF);
    FILE *f = fopen(path, "rb");
    int rc = FN_OK;
    if (!b) rc = fn_fail(FN_ENOMEM, "%s: out of memory", path);
    else if (!f) rc = fn_fail(FN_EIO, "%s: cannot open: %s", path, strerror(errno));
    else if (fseeko(f, (off_t)at, SEEK_SET)) rc = fn_fail(FN_EIO, "%s: cannot seek: %s", path, strerror(errno));
    while (!rc && left) {
        size_t got = fread(b, 1, SCAN_BUF, f);
        if (got == 0) { rc = fn_fail(FN_EIO, "%s: changed while read (fewer lines than counted)", path); break; }
        for (char *p = b, *e = b + got; left && (p = memchr(p, '\n', (size_t)(e - p))); p++)
            if (--left == 0) *off = at + (uint64_t)(p - b) + 1;
        at += got;
    }
    if (f) fclose(f);
    free(b);
    return rc;
}

static int fill(lines *l)
{
    /* keep the unread tail, read more after it */
    if (l->at > 0) {
        memmove(l->buf, l->buf + l->at, l->len - l->at);
        l->pos += l->at;
        l->len -= l->at;
        l->at = 0;
    }
    if (l->len == l->cap) {
        if (l->cap >= LINES_MAX_LEN) return fn_fail(FN_ETOOBIG, "%s: line at byte %llu longer than %u bytes", l->path, (unsigned long long)l->pos, LINES_MAX_LEN);
        size_t cap = l->cap * 2;
        char *b = realloc(l->buf, cap + 1);
        if (!b) return fn_fail(FN_ENOMEM, "%s: out of memory for a long line", l->path);
        l->buf = b;
        l->cap = cap;
    }
    size_t got = fread(l->buf + l->len, 1, l->cap - l->len, l->f);
    if (got == 0) {
        if (ferror(l->f)) return fn_fail(FN_EIO, "%s: read error: %s", l->path, strerror(errno));
        l->eof = 1;
    }
    l->len += got;
    return FN_OK;
}

static int seek_to(lines *l, uint64_t off)
{
    if (fseeko(l->f, (off_t)off, SEEK_SET)) return fn_fail(FN_EIO, "%s: cannot seek: %s", l->path, strerror(errno));
    l->pos = off;
    l->len = l->at = 0;
    l->eof = 0;
    return FN_OK;
}

int lines_rewind(lines *l)
{
    int rc = seek_to(l, l->first);
    l->line_off = l->first;
    l->lines_done = 0;
    return rc;
}

int lines_open(lines **out, const char *path, int part, int nparts)
{
    *out = NULL;
    if (nparts < 1 || part < 0 || part >= nparts) return fn_fail(FN_EINVAL, "%s: bad partition %d of %d", path, part, nparts);
    lines *l = calloc(1, sizeof *l);
    if (!l) return FN_ENOMEM;
    l->path = strdup(path);
    l->f = fopen(path, "rb");
    if (!l->path || !l->f) {
        int rc = l->f ? FN_ENOMEM : fn_fail(FN_EIO, "%s: cannot open: %s", path, strerror(errno));
        lines_close(&l);
        return rc;
    }
    struct stat st;
    if (fstat(fileno(l->f), &st) || !S_ISREG(st.st_mode)) {
        lines_close(&l);
        return fn_fail(FN_EIO, "%s: not a regular file", path);
    }
    uint64_t size = (uint64_t)st.st_size;
    /* a small file gets a small buffer (fill() grows it if the file does) */
    l->cap = size < LINES_BUF ? (size < 4096 ? 4096 : (size_t)size) : LINES_BUF;
    l->buf = malloc(l->cap + 1);
    if (!l->buf) {
        lines_close(&l);
        return fn_fail(FN_ENOMEM, "%s: out of memory", path);
    }
    if (nparts == 1) {
        l->start = l->first = 0;
        l->end = size;
    } else {
        /* lines [L*part/nparts, L*(part+1)/nparts) of the file's L */
        uint64_t nlines, *mark;
        int rc = count_lines(path, size, &nlines, &mark);
        uint64_t a = nlines * (uint64_t)part / (uint64_t)nparts, z = nlines * (uint64_t)(part + 1) / (uint64_t)nparts;
        l->start = l->end = size;
        if (!rc && a < nlines) rc = line_start(path, mark, a, &l->start);
        if (!rc && z < nlines) rc = line_start(path, mark, z, &l->end);
        free(mark);
        if (rc) { lines_close(&l); return rc; }
        l->first = l->start;
        l->base = a;
    }
    if (l->first > l->end) l->first = l->end;
    int rc = lines_rewind(l);
    if (rc) { lines_close(&l); return rc; }
    *out = l;
    return FN_OK;
}

void lines_close(lines **lp)
{
    lines *l = *lp;
    if (!l) return;
    if (l->f) fclose(l->f);
    free(l->buf);
    free(l->path);
    free(l);
    *lp = NULL;
}

int lines_next(lines *l, char **line, size_t *len)
{
    if (l->line_off >= l->end) return 0;
    for (;;) {
        char *nl = l->at < l->len ? memchr(l->buf + l->at, '\n', l->len - l->at) : NULL;
        if (nl || (l->eof && l->at < l->len)) {
            char *s = l->buf + l->at;
            size_t n = nl ? (size_t)(nl - s) : l->len - l->at;
            l->at += n + (nl ? 1 : 0);
            l->line_off = l->pos + l->at;
            if (n && s[n - 1] == '\r') n--;
            s[n] = 0; /* buf has one spare byte past cap for a last line without '\n' */
            *line = s;
            *len = n;
            l->lines_done++;
            return 1;
        }
        if (l->eof) return 0;
        int rc = fill(l);
        if (rc) return -rc;
    }
}

void lines_tell(const lines *l, uint64_t *offset, uint64_t *done)
{
    *offset = l->line_off;
    *done = l->lines_done;
}

int lines_seek(lines *l, uint64_t offset, uint64_t done)
{
    /* an offset at or past the end is a finished partition: the reader reads
     * past its end to complete its last line */
    if (offset < l->first)
        return fn_fail(FN_EINVAL, "%s: position %llu before this partition's start %llu", l->path,
                       (unsigned long long)offset, (unsigned long long)l->first);
    int rc = seek_to(l, offset);
    l->line_off = offset;
    l->lines_done = done;
    return rc;
}

uint64_t lines_lineno(lines *l) { return l->base + l->lines_done; }

const char *lines_path(const lines *l) { return l->path; }
uint64_t lines_part_bytes(const lines *l) { return l->end > l->first ? l->end - l->first : 0; }
uint64_t lines_consumed(const lines *l)
{
    uint64_t c = l->line_off > l->first ? l->line_off - l->first : 0;
    uint64_t total = lines_part_bytes(l);
    return c > total ? total : c;
}
