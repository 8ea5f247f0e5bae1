/* tests/unit/test_binfile.c — common/binfile.c: CRC-32C, atomic writes,
 * and a loader that refuses every damaged file.
 *
 * The CRC is checked against the standard check value and a bit-at-a-time
 * reference (whatever implementation the build picked: SSE4.2 or tables).
 * A committed ~200-byte file is damaged in every way a disk or a copy can
 * damage it — each byte flipped (three patterns), truncated at every
 * length, one byte appended — and every version must be refused with the
 * right kind of error and no body. */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "binfile.h"
#include "fn_error.h"
#include "hash.h"

#include "check.h"

#define MAGIC 0x464E5442u /* arbitrary */


static uint32_t crc_ref(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
    }
    return ~crc;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int dir_entries(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

static size_t read_all(const char *path, uint8_t *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

static void write_raw(const char *path, const uint8_t *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) { printf("FAIL cannot write %s\n", path); exit(1); }
    if (n) fwrite(buf, 1, n, f);
    fclose(f);
}

/* Writes a file of the given version and body through the writer, in
 * uneven chunks. */
static int write_file(const char *path, uint32_t magic, uint32_t version, const uint8_t *body, size_t n)
{
    binfile_w w;
    int rc = binfile_create(&w, path, magic, version);
    if (rc) return rc;
    size_t at = 0, step = 1;
    while (!rc && at < n) {
        size_t k = step < n - at ? step : n - at;
        rc = binfile_write(&w, body + at, k);
        at += k;
        step = step * 3 + 1;
    }
    if (!rc) rc = binfile_write(&w, body, 0);
    if (rc) { binfile_abort(&w); return rc; }
    return binfile_commit(&w);
}

static void test_crc(void)
{
    CHECK(fn_crc32c(0, "123456789", 9) == 0xE3069283u, "crc32c check value: %08x", fn_crc32c(0, "123456789", 9));
    CHECK(fn_crc32c(0, "", 0) == 0, "crc of nothing");
    CHECK(fn_crc32c(0x12345678u, "", 0) == 0x12345678u, "crc of nothing continues unchanged");
    fn_rng rng;
    fn_rng_seed(&rng, 99);
    uint8_t buf[300];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)fn_rng_next(&rng);
    for (int t = 0; t < 2000; t++) {
        size_t off = fn_rng_below(&rng, 16), n = fn_rng_below(&rng, sizeof buf - 16);
        uint32_t want = crc_ref(0, buf + off, n), got = fn_crc32c(0, buf + off, n);
        CHECK(got == want, "crc of %zu bytes at offset %zu: %08x, want %08x", n, off, got, want);
        size_t cut = n ? fn_rng_below(&rng, n + 1) : 0;
        uint32_t two = fn_crc32c(fn_crc32c(0, buf + off, cut), buf + off + cut, n - cut);
        CHECK(two == want, "crc in two pieces (%zu + %zu): %08x, want %08x", cut, n - cut, two, want);
        if (failures > 10) break;
    }
}

static void test_le(void)
{
    uint8_t b[8];
    put_le32(b, 0x04030201u);
    CHECK(b[0] == 1 && b[1] == 2 && b[2] == 3 && b[3] == 4, "put_le32 byte order");
    CHECK(get_le32(b) == 0x04030201u, "get_le32");
    put_le64(b, 0x0807060504030201ull);
    for (int i = 0; i < 8; i++) CHECK(b[i] == i + 1, "put_le64 byte %d = %u", i, b[i]);
    CHECK(get_le64(b) == 0x0807060504030201ull, "get_le64");
    put_f32(b, -1.5f);
    CHECK(b[0] == 0 && b[1] == 0 && b[2] == 0xC0 && b[3] == 0xBF, "put_f32(-1.5) %02x %02x %02x %02x", b[0], b[1], b[2], b[3]);
    CHECK(get_f32(b) == -1.5f, "get_f32");
}

static void test_round_trip_and_damage(void)
{
    char path[128], bad[128];
    snprintf(path, sizeof path, "%s/model.bin", dir);
    snprintf(bad, sizeof bad, "%s/damaged.bin", dir);
    fn_rng rng;
    fn_rng_seed(&rng, 5);
    enum { BODY = 188 }; /* + 12 bytes of framing = 200 */
    uint8_t body[BODY];
    for (int i = 0; i < BODY; i++) body[i] = (uint8_t)fn_rng_next(&rng);

    int rc = write_file(path, MAGIC, 3, body, BODY);
    CHECK(rc == FN_OK, "write: %s", fn_err_msg());
    CHECK(dir_entries() == 1, "after commit: %d entries in the directory (temporary file left?)", dir_entries());

    /* the layout on disk */
    uint8_t file[BODY + 64];
    size_t size = read_all(path, file, sizeof file);
    CHECK(size == BODY + 12, "file size %zu", size);
    CHECK(get_le32(file) == MAGIC && get_le32(file + 4) == 3, "header magic %08x version %u", get_le32(file), get_le32(file + 4));
    CHECK(!memcmp(file + 8, body, BODY), "body bytes");
    CHECK(get_le32(file + size - 4) == crc_ref(0, file, size - 4), "trailer is the CRC-32C of all bytes before it");

    uint8_t *got = NULL;
    size_t len = 0;
    uint32_t version = 0;
    rc = binfile_load(path, MAGIC, 3, &got, &len, &version);
    CHECK(rc == FN_OK && len == BODY && version == 3 && got && !memcmp(got, body, BODY), "load: rc %d len %zu version %u (%s)", rc,
          len, version, fn_err_msg());
    free(got);
    rc = binfile_load(path, MAGIC, 7, &got, &len, &version);
    CHECK(rc == FN_OK && version == 3, "load with a higher max: rc %d", rc);
    free(got);
    rc = binfile_load(path, MAGIC, 2, &got, &len, &version);
    CHECK(rc == FN_EVERSION && got == NULL, "version 3 with max 2: rc %d", rc);
    CHECK(strstr(fn_err_msg(), path) != NULL, "message '%s' names no file", fn_err_msg());
    rc = binfile_load(path, MAGIC + 1, 3, &got, &len, &version);
    CHECK(rc == FN_EMAGIC && got == NULL, "other magic: rc %d", rc);

    /* every byte flipped (the pattern varies with the position: one bit,
     * each bit position in turn, or the whole byte) */
    for (size_t i = 0; i < size; i++) {
        uint8_t mask = i % 3 == 0 ? 0xFF : (uint8_t)(1u << (i % 8));
        uint8_t copy[BODY + 64];
        memcpy(copy, file, size);
        copy[i] ^= mask;
        write_raw(bad, copy, size);
        got = (uint8_t *)1;
        rc = binfile_load(bad, MAGIC, 3, &got, &len, &version);
        CHECK(rc == FN_ECHECKSUM || rc == FN_EMAGIC || rc == FN_EVERSION, "byte %zu ^ %02x: rc %d", i, mask, rc);
        CHECK(got == NULL, "byte %zu ^ %02x: body returned", i, mask);
        if (rc == FN_OK) free(got);
        if (i < 4) CHECK(rc == FN_EMAGIC, "magic byte %zu damaged: rc %d", i, rc);
        else if (i >= 8) CHECK(rc == FN_ECHECKSUM, "byte %zu ^ %02x: rc %d, want FN_ECHECKSUM", i, mask, rc);
    }
    CHECK(strstr(fn_err_msg(), bad) != NULL, "message '%s' names no file", fn_err_msg());

    /* truncated at every length, and one byte longer */
    for (size_t n = 0; n < size; n++) {
        write_raw(bad, file, n);
        got = (uint8_t *)1;
        rc = binfile_load(bad, MAGIC, 3, &got, &len, &version);
        CHECK(rc != FN_OK && got == NULL, "truncated to %zu bytes: rc %d", n, rc);
        if (rc == FN_OK) free(got);
    }
    for (int extra = 0; extra < 256; extra += 85) {
        uint8_t copy[BODY + 64];
        memcpy(copy, file, size);
        copy[size] = (uint8_t)extra;
        write_raw(bad, copy, size + 1);
        got = (uint8_t *)1;
        rc = binfile_load(bad, MAGIC, 3, &got, &len, &version);
        CHECK(rc != FN_OK && got == NULL, "one byte (%d) appended: rc %d", extra, rc);
        if (rc == FN_OK) free(got);
    }
    unlink(bad);

    /* versions: above max and zero, with valid checksums */
    rc = write_file(bad, MAGIC, 4, body, 10);
    CHECK(rc == FN_OK, "write v4");
    rc = binfile_load(bad, MAGIC, 3, &got, &len, &version);
    CHECK(rc == FN_EVERSION, "version 4 with max 3: rc %d", rc);
    rc = binfile_load(bad, MAGIC, 4, &got, &len, &version);
    CHECK(rc == FN_OK && version == 4 && len == 10, "version 4 with max 4: rc %d", rc);
    free(got);
    rc = write_file(bad, MAGIC, 0, body, 10);
    rc = binfile_load(bad, MAGIC, 3, &got, &len, &version);
    CHECK(rc == FN_EVERSION, "version 0: rc %d", rc);
    /* an empty body */
    rc = write_file(bad, MAGIC, 1, body, 0);
    rc = binfile_load(bad, MAGIC, 1, &got, &len, &version);
    CHECK(rc == FN_OK && len == 0, "empty body: rc %d len %zu", rc, len);
    free(got);
    unlink(bad);

    /* a missing file */
    char absent[128];
    snprintf(absent, sizeof absent, "%s/absent.bin", dir);
    rc = binfile_load(absent, MAGIC, 3, &got, &len, &version);
    CHECK(rc == FN_EIO && got == NULL && strstr(fn_err_msg(), absent), "missing file: rc %d '%s'", rc, fn_err_msg());

    /* aborted writes leave nothing behind, and never touch the old file */
    binfile_w w;
    rc = binfile_create(&w, absent, MAGIC, 1);
    CHECK(rc == FN_OK, "create");
    binfile_write(&w, body, BODY);
    binfile_abort(&w);
    CHECK(!exists(absent), "aborted write created the file");
    CHECK(dir_entries() == 1, "aborted write left %d entries (temporary file?)", dir_entries());
    CHECK(w.f == NULL && w.tmp == NULL && w.path == NULL, "abort must free the writer");
    rc = binfile_create(&w, path, MAGIC, 9);
    binfile_write(&w, "junk", 4);
    binfile_abort(&w);
    rc = binfile_load(path, MAGIC, 3, &got, &len, &version);
    CHECK(rc == FN_OK && len == BODY && !memcmp(got, body, BODY), "old file damaged by an aborted write: rc %d", rc);
    free(got);
    CHECK(dir_entries() == 1, "%d entries after abort over an existing file", dir_entries());

    /* a commit replaces the old file whole */
    rc = write_file(path, MAGIC, 2, body + 10, 50);
    CHECK(rc == FN_OK, "rewrite");
    rc = binfile_load(path, MAGIC, 3, &got, &len, &version);
    CHECK(rc == FN_OK && version == 2 && len == 50 && !memcmp(got, body + 10, 50), "rewritten file: rc %d len %zu", rc, len);
    free(got);
    CHECK(dir_entries() == 1, "%d entries after rewrite", dir_entries());
    unlink(path);

    /* a writer that cannot create its file says so and holds nothing */
    char nodir[128];
    snprintf(nodir, sizeof nodir, "%s/no/such/dir/x.bin", dir);
    rc = binfile_create(&w, nodir, MAGIC, 1);
    CHECK(rc == FN_EIO && w.f == NULL && strstr(fn_err_msg(), "no/such/dir"), "create in a missing dir: rc %d '%s'", rc, fn_err_msg());
}

static void test_reader(void)
{
    uint8_t buf[14];
    put_le32(buf, 0xDEADBEEFu);
    put_le64(buf + 4, 0x0123456789ABCDEFull);
    buf[12] = 7;
    buf[13] = 9;
    binfile_r r = {buf, sizeof buf, 0, 0};
    CHECK(binfile_u32(&r) == 0xDEADBEEFu, "u32");
    CHECK(binfile_u64(&r) == 0x0123456789ABCDEFull, "u64");
    CHECK(!r.bad && r.at == 12, "bad %d at %zu", r.bad, r.at);
    CHECK(binfile_u32(&r) == 0 && r.bad, "u32 past the end must read 0 and flag it");
    CHECK(binfile_take(&r, 1) == NULL, "after a bad read every read fails");
    CHECK(binfile_f32(&r) == 0, "f32 after bad");

    binfile_r r2 = {buf, sizeof buf, 0, 0};
    CHECK(binfile_take(&r2, 14) == buf && !r2.bad, "take exactly all");
    CHECK(binfile_take(&r2, 0) != NULL && !r2.bad, "take 0 at the end");
    CHECK(binfile_take(&r2, 1) == NULL && r2.bad, "take 1 past the end");

    binfile_r r3 = {buf, sizeof buf, 0, 0};
    binfile_take(&r3, 3);
    CHECK(binfile_take(&r3, SIZE_MAX) == NULL && r3.bad, "a huge length must not wrap around");
    binfile_r r4 = {buf, sizeof buf, 0, 0};
    binfile_take(&r4, 10);
    CHECK(binfile_u64(&r4) == 0 && r4.bad && r4.at == 10, "u64 over the end: at %zu", r4.at);
    binfile_r r5 = {buf, 0, 0, 0};
    CHECK(binfile_u32(&r5) == 0 && r5.bad, "empty body");
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/test_binfile.XXXXXX");
    if (!mkdtemp(dir)) { printf("FAIL mkdtemp\n"); return 1; }
    test_crc();
    test_le();
    test_round_trip_and_damage();
    test_reader();
    CHECK(remove_dir() == 0, "files left in %s", dir);
    if (failures) { printf("test_binfile: %d failures\n", failures); return 1; }
    printf("test_binfile: ok\n");
    return 0;
}
