/* common/binfile.c — see binfile.h. */
#include "binfile.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "fn_error.h"

#if defined(__SSE4_2__)
#include <nmmintrin.h>
#endif

static uint32_t crc_table[8][256];
static int crc_ready;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++) crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xFF];
    crc_ready = 1;
}

uint32_t fn_crc32c(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = data;
    crc = ~crc;
#if defined(__SSE4_2__)
    uint64_t c = crc;
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = _mm_crc32_u64(c, v);
        p += 8;
        len -= 8;
    }
    crc = (uint32_t)c;
    while (len--) crc = _mm_crc32_u8(crc, *p++);
#else
    if (!crc_ready) crc_init();
    while (len >= 8) {
        uint32_t lo = crc ^ get_le32(p), hi = get_le32(p + 4);
        crc = crc_table[7][lo & 0xFF] ^ crc_table[6][(lo >> 8) & 0xFF] ^ crc_table[5][(lo >> 16) & 0xFF] ^ crc_table[4][lo >> 24] ^
              crc_table[3][hi & 0xFF] ^ crc_table[2][(hi >> 8) & 0xFF] ^ crc_table[1][(hi >> 16) & 0xFF] ^ crc_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--) crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xFF];
#endif
    (void)crc_init;
    (void)crc_ready;
    return ~crc;
}

static void w_free(binfile_w *w)
{
    if (w->f) fclose(w->f);
    free(w->path);
    free(w->tmp);
    memset(w, 0, sizeof *w);
}

int binfile_create(binfile_w *w, const char *path, uint32_t magic, uint32_t version)
{
    memset(w, 0, sizeof *w);
    w->path = strdup(path);
    size_t n = strlen(path) + 32;
    w->tmp = malloc(n);
    if (!w->path || !w->tmp) { w_free(w); return FN_ENOMEM; }
    snprintf(w->tmp, n, "%s.tmp.%d", path, (int)getpid());
    w->f = fopen(w->tmp, "wb");
    if (!w->f) {
        int rc = fn_fail(FN_EIO, "%s: cannot create: %s", w->tmp, strerror(errno));
        w_free(w);
        return rc;
    }
    uint8_t h[8];
    put_le32(h, magic);
    put_le32(h + 4, version);
    return binfile_write(w, h, 8);
}

int binfile_write(binfile_w *w, const void *p, size_t n)
{
    if (w->failed) return FN_EIO;
    if (n && fwrite(p, 1, n, w->f) != n) {
        w->failed = 1;
        return fn_fail(FN_EIO, "%s: write failed: %s", w->tmp, strerror(errno));
    }
    w->crc = fn_crc32c(w->crc, p, n);
    return FN_OK;
}

int binfile_commit(binfile_w *w)
{
    uint8_t t[4];
    put_le32(t, w->crc);
    int rc = binfile_write(w, t, 4);
    if (!rc && (fflush(w->f) || fsync(fileno(w->f)))) rc = fn_fail(FN_EIO, "%s: flush failed: %s", w->tmp, strerror(errno));
    if (!rc) {
        int c = fclose(w->f);
        w->f = NULL;
        if (c) rc = fn_fail(FN_EIO, "%s: close failed: %s", w->tmp, strerror(errno));
    }
    if (!rc && rename(w->tmp, w->path)) rc = fn_fail(FN_EIO, "cannot rename %s to %s: %s", w->tmp, w->path, strerror(errno));
    if (rc) {
        binfile_abort(w);
        return rc;
    }
    w_free(w);
    return FN_OK;
}

void binfile_abort(binfile_w *w)
{
    if (w->f) { fclose(w->f); w->f = NULL; }
    if (w->tmp) unlink(w->tmp);
    w_free(w);
}

int binfile_verify(const char *path, uint32_t magic, uint32_t max_version)
{
    FILE *f = fopen(path, "rb");
    if (!f) return fn_fail(FN_EIO, "%s: cannot open: %s", path, strerror(errno));
    if (fseeko(f, 0, SEEK_END)) { fclose(f); return fn_fail(FN_EIO, "%s: cannot seek", path); }
    off_t size = ftello(f);
    rewind(f);
    if (size < 12) { fclose(f); return fn_fail(FN_EPARSE, "%s: truncated (%lld bytes)", path, (long long)size); }
    static _Thread_local uint8_t buf[1 << 16];
    uint8_t head[8], tail[4];
    uint32_t crc = 0;
    off_t left = size - 4;
    int first = 1;
    while (left > 0) {
        size_t want = left < (off_t)sizeof buf ? (size_t)left : sizeof buf;
        if (fread(buf, 1, want, f) != want) { fclose(f); return fn_fail(FN_EIO, "%s: short read", path); }
        if (first) { memcpy(head, buf, 8); first = 0; }
        crc = fn_crc32c(crc, buf, want);
        left -= (off_t)want;
    }
    int ok = fread(tail, 1, 4, f) == 4;
    fclose(f);
    if (!ok) return fn_fail(FN_EIO, "%s: short read", path);
    if (get_le32(head) != magic) return fn_fail(FN_EMAGIC, "%s: not a funnel file of this kind (bad magic)", path);
    if (crc != get_le32(tail)) return fn_fail(FN_ECHECKSUM, "%s: checksum mismatch (file is corrupt or truncated)", path);
    uint32_t v = get_le32(head + 4);
    if (v == 0 || v > max_version) return fn_fail(FN_EVERSION, "%s: format version %u, this build reads up to %u", path, v, max_version);
    return FN_OK;
}

int binfile_load(const char *path, uint32_t magic, uint32_t max_version, uint8_t **body, size_t *body_len, uint32_t *version)
{
    *body = NULL;
    *body_len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return fn_fail(FN_EIO, "%s: cannot open: %s", path, strerror(errno));
    if (fseeko(f, 0, SEEK_END)) { fclose(f); return fn_fail(FN_EIO, "%s: cannot seek", path); }
    off_t size = ftello(f);
    rewind(f);
    if (size < 12) { fclose(f); return fn_fail(FN_EPARSE, "%s: truncated (%lld bytes)", path, (long long)size); }
    uint8_t *buf = malloc((size_t)size);
    if (!buf) { fclose(f); return fn_fail(FN_ENOMEM, "%s: out of memory (%lld bytes)", path, (long long)size); }
    size_t got = fread(buf, 1, (size_t)size, f);
    fclose(f);
    if (got != (size_t)size) { free(buf); return fn_fail(FN_EIO, "%s: short read", path); }
    size_t n = (size_t)size - 4;
    if (get_le32(buf) != magic) { free(buf); return fn_fail(FN_EMAGIC, "%s: not a funnel file of this kind (bad magic)", path); }
    uint32_t crc = fn_crc32c(0, buf, n), want = get_le32(buf + n);
    if (crc != want) { free(buf); return fn_fail(FN_ECHECKSUM, "%s: checksum mismatch (file is corrupt or truncated)", path); }
    uint32_t v = get_le32(buf + 4);
    if (v == 0 || v > max_version) { free(buf); return fn_fail(FN_EVERSION, "%s: format version %u, this build reads up to %u", path, v, max_version); }
    memmove(buf, buf + 8, n - 8);
    *body = buf;
    *body_len = n - 8;
    *version = v;
    return FN_OK;
}
