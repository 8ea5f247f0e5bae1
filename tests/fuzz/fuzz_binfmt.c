/* tests/fuzz/fuzz_binfmt.c — libFuzzer target for common/binfmt.c, the
 * binary data format's decoders.
 *
 * The first input byte picks what the rest is (mod 3):
 *   0  a block's raw payload: N = 1 + byte 1 examples, a schema of
 *      1 + byte 2 % 64 fields, payload from byte 3.  Decoded by a cursor in
 *      batches of 1..3 examples; must succeed or fail with a one-line
 *      reason.  On success every example is well formed (labels in {0, 1},
 *      fields < the schema's, off[] consistent), and skipping k examples
 *      then decoding gives the same rest as decoding all (k = N / 2).
 *   1  a stored block (24-byte header and payload) whose CRC field the
 *      target fills in, so that mutations reach the length, codec and LZ4
 *      checks; when it decodes, its raw payload goes through a cursor as in 0
 *      (schema of 64 fields).
 *   2  a whole .fbin file, opened with the schema "a,b,c" (that of the seed
 *      files) and read as 1 and as 2 partitions: success or a one-line
 *      reason naming the file; the two partitions together give the
 *      examples of one, in order; a tell/seek round trip reads the same
 *      rest.
 * The sanitizers catch out-of-bounds access, undefined behaviour and leaks.
 *
 * Seeds: tests/fuzz/corpus/binfmt/ (one of each kind, from funnel's own
 * writer). */
#include <string.h>

#include "batch.h"
#include "binfile.h"
#include "binfmt.h"
#include "fn_error.h"
#include "fuzz_util.h"
#include "hash.h"
#include "reader.h"
#include "schema.h"

static void check_msg(int rc)
{
    const char *m = fn_err_msg();
    REQUIRE(rc > FN_OK && rc < FN_ERR_COUNT, "bad error code %d", rc);
    REQUIRE(m[0] && !strchr(m, '\n'), "error %d without a one-line reason: '%s'", rc, m);
}

/* Properties of a batch; folds its examples into *h. */
static void check_batch(const fn_batch *b, int nfields, uint64_t *h)
{
    REQUIRE(b->n >= 0 && b->n <= b->cap, "batch of %d (cap %d)", b->n, b->cap);
    REQUIRE(b->off[0] == 0 && b->off[b->n] == b->nf && b->nf <= b->fcap, "feature counts");
    for (int i = 0; i < b->n; i++) {
        REQUIRE(b->click[i] == 0 || b->click[i] == 1, "click %g", (double)b->click[i]);
        REQUIRE(b->buy[i] == 0 || b->buy[i] == 1, "buy %g", (double)b->buy[i]);
        REQUIRE(b->off[i] <= b->off[i + 1], "off falls");
        *h = fn_mix64(*h ^ b->sample_id[i]) + (uint64_t)(b->click[i] + 2 * b->buy[i]);
        for (size_t k = b->off[i]; k < b->off[i + 1]; k++) {
            REQUIRE(b->field[k] < nfields, "field %u of %d", b->field[k], nfields);
            uint32_t v;
            memcpy(&v, &b->val[k], 4);
            *h = fn_mix64(*h ^ b->key[k]) ^ ((uint64_t)b->field[k] << 32 | v);
        }
    }
}

/* Decodes a raw payload of n examples (<= 256) after skipping `skip`:
 * per-example digests into ex[skip..], returns rc (the count decoded in *got). */
static int decode_all(const uint8_t *raw, size_t len, uint32_t n, int nfields, uint32_t skip, uint64_t *ex, uint32_t *got)
{
    binfmt_cursor c;
    fn_batch b;
    REQUIRE(binfmt_cursor_new(&c) == FN_OK && batch_init(&b, 3, 4) == FN_OK, "out of memory");
    *got = 0;
    int rc = binfmt_cursor_reset(&c, raw, len, n);
    if (!rc && skip) rc = binfmt_cursor_skip(&c, skip, nfields);
    for (int max = 1; !rc; max = max % 3 + 1) {
        batch_clear(&b);
        rc = binfmt_cursor_decode(&c, &b, max, nfields);
        REQUIRE(b.n <= max, "%d examples for max %d", b.n, max);
        if (rc) break;
        for (int i = 0; i < b.n; i++) {
            uint64_t h = 0;
            fn_batch one = b; /* example i alone, as a batch of one */
            one.n = 1;
            one.sample_id += i; one.click += i; one.buy += i; one.off += i;
            size_t a = b.off[i];
            size_t offs[2] = {0, b.off[i + 1] - a};
            one.off = offs;
            one.field += a; one.key += a; one.val += a;
            one.nf = offs[1];
            one.fcap = offs[1];
            one.cap = 1;
            check_batch(&one, nfields, &h);
            ex[skip + *got + (uint32_t)i] = h;
        }
        *got += (uint32_t)b.n;
        if (c.done == c.n) break;
        REQUIRE(b.n == max, "stopped at %d of max %d before the block's end", b.n, max);
    }
    if (rc) check_msg(rc);
    else REQUIRE(skip + *got == n, "%u + %u examples of %u", skip, *got, n);
    batch_free(&b);
    binfmt_cursor_free(&c);
    return rc;
}

static void fuzz_payload(const uint8_t *raw, size_t len, uint32_t n, int nfields)
{
    uint64_t all[256], rest[256];
    uint32_t got;
    if (n > 256 || decode_all(raw, len, n, nfields, 0, all, &got)) return;
    /* skipping the first half, then decoding, gives the second half */
    uint32_t k = n / 2;
    int rc = decode_all(raw, len, n, nfields, k, rest, &got);
    REQUIRE(rc == FN_OK && got == n - k, "skip %u then decode: rc %d, %u examples", k, rc, got);
    for (uint32_t i = k; i < n; i++) REQUIRE(rest[i] == all[i], "example %u differs after skipping %u", i, k);
}

static void fuzz_block(const uint8_t *data, size_t size)
{
    if (size < BINFMT_BLOCK_HEADER) return;
    uint8_t *blk = malloc(size);
    REQUIRE(blk, "out of memory");
    memcpy(blk, data, size);
    put_le32(blk + 20, fn_crc32c(fn_crc32c(0, blk, 20), blk + BINFMT_BLOCK_HEADER, size - BINFMT_BLOCK_HEADER));
    uint8_t *raw = NULL;
    size_t cap = 0, len;
    uint32_t n;
    int rc = binfmt_block_decode(blk, size, &raw, &cap, &len, &n);
    if (rc) check_msg(rc);
    else {
        REQUIRE(len <= cap && n >= 1, "decoded %zu bytes into %zu, %u examples", len, cap, n);
        fuzz_payload(raw, len, n, 64);
    }
    free(raw);
    free(blk);
}

/* Reads partition part of nparts whole: rc, count and digest. */
static int read_part(fn_dataset *ds, int part, int nparts, int nfields, uint64_t *h, uint64_t *n)
{
    fn_reader *r;
    int rc = reader_open(&r, ds, part, nparts);
    REQUIRE(rc == FN_OK, "reader_open: %s", fn_err_msg());
    fn_batch b;
    REQUIRE(batch_init(&b, 3, 4) == FN_OK, "out of memory");
    for (;;) {
        if ((rc = reader_next(r, &b, 3)) || b.n == 0) break;
        check_batch(&b, nfields, h);
        *n += (uint64_t)b.n;
    }
    if (rc) check_msg(rc);
    /* tell after the first batch, read the rest; seek back: the same rest */
    if (!rc && reader_rewind(r) == FN_OK && reader_next(r, &b, 2) == FN_OK && b.n > 0) {
        uint64_t pos[2], h1 = 0, h2 = 0;
        reader_tell(r, pos);
        while (reader_next(r, &b, 3) == FN_OK && b.n > 0) check_batch(&b, nfields, &h1);
        REQUIRE(reader_seek(r, pos) == FN_OK, "seek back to a tell: %s", fn_err_msg());
        while (reader_next(r, &b, 3) == FN_OK && b.n > 0) check_batch(&b, nfields, &h2);
        REQUIRE(h1 == h2, "the rest after a seek differs");
    }
    batch_free(&b);
    reader_close(&r);
    return rc;
}

static void fuzz_file_set(const uint8_t *data, size_t size)
{
    static fn_schema schema;
    if (!schema.n) REQUIRE(schema_parse(&schema, "a,b,c") == FN_OK, "schema");
    const char *path = fuzz_file("a", data, size);
    fn_dataset *ds = NULL;
    int rc = dataset_open(&ds, "bin", path, NULL, &schema, 0);
    if (rc) {
        check_msg(rc);
        REQUIRE(strstr(fn_err_msg(), path), "open error without the file name: %s", fn_err_msg());
        return;
    }
    uint64_t h1 = 0, n1 = 0, h2 = 0, n2 = 0;
    int rc1 = read_part(ds, 0, 1, schema.n, &h1, &n1);
    int rc2 = read_part(ds, 0, 2, schema.n, &h2, &n2);
    if (!rc2) rc2 = read_part(ds, 1, 2, schema.n, &h2, &n2);
    if (!rc1 && !rc2) REQUIRE(h1 == h2 && n1 == n2, "2 partitions gave %llu examples, 1 gave %llu", (unsigned long long)n2, (unsigned long long)n1);
    dataset_close(&ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_setup("fuzz_binfmt");
    if (size < 1) return 0;
    switch (data[0] % 3) {
    case 0:
        if (size >= 3) fuzz_payload(data + 3, size - 3, 1u + data[1], 1 + data[2] % 64);
        break;
    case 1: fuzz_block(data + 1, size - 1); break;
    default: fuzz_file_set(data + 1, size - 1); break;
    }
    return 0;
}
