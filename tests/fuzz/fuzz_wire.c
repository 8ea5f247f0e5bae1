/* tests/fuzz/fuzz_wire.c — libFuzzer target for proto/wire.c's decoder.
 *
 * Decodes arbitrary bytes, twice: as given, and "sealed" (payload_len,
 * raw_len and both CRCs rewritten to match), since random mutations almost
 * never keep a CRC valid and would otherwise never reach the body parser.
 * The sanitizers catch any out-of-bounds read or undefined behaviour.  When a message is accepted it must survive a trip
 * back: re-encoding it (without and with LZ4) must succeed and decode to
 * the same message — type, seq, table, dim, n, code, text and keys exact,
 * values bit-exact for F32 and F16 (F16 values are halves already), and
 * within half a step of the new scale for I8 (requantising changes the
 * scale).  For F32, and F16 without NaNs, the re-encoded raw payload must
 * equal the one received byte for byte: the format has one encoding per
 * message.
 *
 * Build by hand (see tests/fuzz/corpus/wire/ for seeds):
 *   clang -std=c11 -O1 -g -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *     -I common -I proto tests/fuzz/fuzz_wire.c proto/wire.c common/fn_error.c \
 *     common/log.c -llz4 -lm -o /tmp/fuzz_wire */
#include "fn_error.h"
#include "wire.h"

#include <float.h>
#include <lz4.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A failed property is a bug in wire.c: report and abort so libFuzzer keeps
 * the input. */
#define REQUIRE(cond, ...)                                                 \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "fuzz_wire: %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
            abort();                                                       \
        }                                                                  \
    } while (0)

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* The raw payload of an accepted message (decompressed if need be). */
static const uint8_t *raw_payload(const uint8_t *msg, size_t len, uint8_t **owned)
{
    *owned = NULL;
    uint32_t plen = rd32(msg + 16), rlen = rd32(msg + 20);
    if (!(msg[6] & WIRE_FLAG_LZ4)) return msg + WIRE_HEADER_SIZE;
    uint8_t *raw = malloc(rlen);
    REQUIRE(raw, "out of memory");
    int got = LZ4_decompress_safe((const char *)msg + WIRE_HEADER_SIZE, (char *)raw, (int)plen, (int)rlen);
    REQUIRE(got == (int)rlen && len == WIRE_HEADER_SIZE + (size_t)plen, "accepted LZ4 payload does not decompress");
    *owned = raw;
    return raw;
}

static int has_keys(int t) { return t == WIRE_PULL_REQ || t == WIRE_PUSH_REQ; }
static int has_values(int t) { return t == WIRE_PULL_REP || t == WIRE_PUSH_REQ; }

static void same_message(const wire_msg *a, const wire_msg *b, const uint8_t *b_raw, uint32_t b_rawlen)
{
    REQUIRE(a->type == b->type && a->seq == b->seq && a->table == b->table && a->dim == b->dim &&
                a->n == b->n && a->code == b->code && a->text_len == b->text_len,
            "fixed fields differ");
    REQUIRE(memcmp(a->text, b->text, a->text_len) == 0 && b->text[b->text_len] == '\0', "text differs");
    if (has_keys(a->type) && a->n)
        REQUIRE(a->keys && b->keys && memcmp(a->keys, b->keys, (size_t)a->n * 8) == 0, "keys differ");
    size_t nd = (size_t)a->n * a->dim;
    if (!has_values(a->type) || nd == 0) {
        REQUIRE(a->values == NULL && b->values == NULL, "values where none belong");
        return;
    }
    REQUIRE(a->enc == b->enc && a->values && b->values, "values missing");
    if (a->enc != WIRE_I8) {
        REQUIRE(memcmp(a->values, b->values, nd * 4) == 0, "values not bit-exact (enc %u)", a->enc);
        return;
    }
    /* I8: b was requantised from a; its scales sit at the end of b's raw
     * payload, just before the text */
    const uint8_t *rows = b_raw + b_rawlen - b->text_len - (size_t)b->n * (4 + b->dim);
    for (uint32_t r = 0; r < a->n; r++) {
        float s = u2f(rd32(rows + (size_t)r * (4 + a->dim)));
        /* half a step, with room for the rounding of v/s; a full step for
         * rows near FLT_MAX, where the scale is clamped; subnormal scales
         * carry an absolute error too */
        float tol = s >= FLT_MAX / 128.0f ? s * 1.00001f : s * 0.50001f + 0x1p-142f;
        for (uint32_t j = 0; j < a->dim; j++) {
            float va = a->values[(size_t)r * a->dim + j], vb = b->values[(size_t)r * a->dim + j];
            REQUIRE(isfinite(va) && isfinite(vb) && fabsf(va - vb) <= tol,
                    "I8 row %u col %u: %a became %a (scale %a)", r, j, (double)va, (double)vb, (double)s);
        }
    }
}

static void check_one(const uint8_t *data, size_t size)
{
    /* one codec per role, kept across inputs as a server keeps them: the
     * buffers grow and are reused, which is part of what is being tested */
    static wire_codec *dec, *enc, *dec2;
    if (!dec) {
        dec = wire_codec_new();
        enc = wire_codec_new();
        dec2 = wire_codec_new();
        REQUIRE(dec && enc && dec2, "out of memory");
    }
    wire_msg pm, m;
    int prc = wire_peek_header(data, size, &pm);
    int rc = wire_decode(dec, data, size, &m);
    if (rc) {
        REQUIRE(rc > FN_OK && rc < FN_ERR_COUNT && fn_err_msg()[0], "bad error code %d", rc);
        REQUIRE(m.keys == NULL && m.values == NULL && m.n == 0, "message not cleared on failure");
        return;
    }
    REQUIRE(prc == FN_OK && pm.seq == m.seq && pm.type == m.type, "peek disagrees with decode");
    REQUIRE(m.wire_bytes == size && m.text && m.text[m.text_len] == '\0', "bad wire_bytes or text");

    uint8_t *owned;
    const uint8_t *raw = raw_payload(data, size, &owned);
    uint32_t rawlen = rd32(data + 20);

    for (int lz4 = 0; lz4 < 2; lz4++) {
        wire_msg again = m, back;
        const uint8_t *buf;
        size_t len;
        rc = wire_encode(enc, &again, lz4, &buf, &len);
        REQUIRE(rc == FN_OK, "re-encode failed: %s", fn_err_msg());
        rc = wire_decode(dec2, buf, len, &back);
        REQUIRE(rc == FN_OK, "re-encoded message rejected: %s", fn_err_msg());
        uint8_t *owned2;
        const uint8_t *raw2 = raw_payload(buf, len, &owned2);
        uint32_t rawlen2 = rd32(buf + 20);
        same_message(&m, &back, raw2, rawlen2);

        /* canonical: same raw bytes, unless requantised or NaNs were quieted */
        int nan = 0;
        if (m.values && m.enc == WIRE_F16)
            for (size_t i = 0; i < (size_t)m.n * m.dim; i++) nan |= isnan(m.values[i]);
        if (!(has_values(m.type) && m.enc == WIRE_I8) && !nan)
            REQUIRE(rawlen2 == rawlen && memcmp(raw2, raw, rawlen) == 0, "re-encoding is not byte-identical");
        free(owned2);
    }
    free(owned);
}

static void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* as received: exercises the header checks and the CRCs */
    check_one(data, size);
    /* sealed: lengths and CRCs made to agree with the bytes, so mutations of
     * the body reach the body parser instead of dying at the checksum */
    if (size < WIRE_HEADER_SIZE || size - WIRE_HEADER_SIZE > WIRE_MAX_PAYLOAD) return 0;
    uint8_t *copy = malloc(size);
    REQUIRE(copy, "out of memory");
    memcpy(copy, data, size);
    uint32_t plen = (uint32_t)(size - WIRE_HEADER_SIZE);
    wr32(copy + 16, plen);
    if (!(copy[6] & WIRE_FLAG_LZ4)) wr32(copy + 20, plen);
    wr32(copy + 24, wire_crc32c(0, copy + WIRE_HEADER_SIZE, plen));
    wr32(copy + 28, wire_crc32c(0, copy, 28));
    check_one(copy, size);
    free(copy);
    return 0;
}
