/* tests/unit/test_wire.c — proto/wire.c against independent references.
 *
 * CRC-32C against a bitwise reference and the known vector, with the SSE4.2
 * and table paths compared; fp16 against the F16C path exhaustively over
 * halves and over every rounding boundary of floats; round trips of every
 * type x value encoding x LZ4 on/off, empty and 100k-key messages; and the
 * decoder's rejections: every single-byte flip, every truncation, bad header
 * fields resealed with a valid CRC, and hand-crafted bodies (duplicate keys,
 * overlong varints, n*dim overflow, has_* mismatches, bad LZ4) framed with
 * valid CRCs so that the body check, not the CRC, is what rejects them.
 *
 * Seeded and deterministic; prints every failure, exits 1 if any.
 * `test_wire --write-corpus DIR` instead writes the fuzz seed corpus
 * (tests/fuzz/corpus/wire/) — rerun it whenever the format changes. */
#include "fn_error.h"
#include "wire.h"

#include <errno.h>
#include <float.h>
#include <lz4.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The portable paths of wire.c (test hooks, deliberately not in wire.h). */
uint32_t wire_test_crc32c_sw(uint32_t crc, const void *data, size_t len);
uint16_t wire_test_f32_to_f16_sw(float f);
float wire_test_f16_to_f32_sw(uint16_t h);

#include "check.h"

/* splitmix64: the test's own RNG, so it depends on nothing but wire.c */
static uint64_t rng_state;
static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double rng_uniform(void) { return (double)(rng_next() >> 11) * 0x1.0p-53; }
static float rng_normal(void)
{
    double u1 = rng_uniform(), u2 = rng_uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void wr32(uint8_t *p, uint32_t v) { wr16(p, (uint16_t)v); wr16(p + 2, (uint16_t)(v >> 16)); }
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "test_wire: out of memory (%zu bytes)\n", n);
        exit(2);
    }
    return p;
}

/* n strictly increasing keys; gaps uniform in [1, maxgap]. */
static void make_keys(uint64_t *k, uint32_t n, uint64_t first, uint64_t maxgap)
{
    uint64_t x = first;
    for (uint32_t i = 0; i < n; i++) {
        k[i] = x;
        x += 1 + rng_next() % maxgap;
    }
}

static void make_values(float *v, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++) v[i] = rng_normal() * scale;
}

/* ---- CRC-32C ------------------------------------------------------------- */

/* Bit at a time: the definition, sharing nothing with wire.c. */
static uint32_t crc32c_ref(uint32_t crc, const uint8_t *p, size_t len)
{
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
    }
    return ~crc;
}

static void test_crc32c(void)
{
    const char *v = "123456789";
    CHECK(wire_crc32c(0, v, 9) == 0xE3069283u, "crc32c(123456789) = 0x%08x", wire_crc32c(0, v, 9));
    CHECK(wire_test_crc32c_sw(0, v, 9) == 0xE3069283u, "table crc32c = 0x%08x",
          wire_test_crc32c_sw(0, v, 9));
    CHECK(crc32c_ref(0, (const uint8_t *)v, 9) == 0xE3069283u, "reference crc is wrong");
    CHECK(wire_crc32c(0, NULL, 0) == 0, "crc of nothing is 0x%08x", wire_crc32c(0, NULL, 0));

    /* every length 0..300 at every alignment, and a split in the middle */
    uint8_t buf[320];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)rng_next();
    for (size_t off = 0; off < 8; off++)
        for (size_t len = 0; len <= 300; len++) {
            uint32_t ref = crc32c_ref(0, buf + off, len);
            uint32_t hw = wire_crc32c(0, buf + off, len), sw = wire_test_crc32c_sw(0, buf + off, len);
            CHECK(hw == ref && sw == ref, "off %zu len %zu: hw 0x%08x sw 0x%08x ref 0x%08x", off, len, hw,
                  sw, ref);
            size_t cut = len / 3;
            uint32_t part = wire_crc32c(wire_crc32c(0, buf + off, cut), buf + off + cut, len - cut);
            CHECK(part == ref, "continued crc off %zu len %zu cut %zu", off, len, cut);
        }
    /* long buffers: the 3-stream path works in 3 x 4096-byte rounds */
    size_t big = (1u << 20) + 64;
    uint8_t *b = xmalloc(big);
    for (size_t i = 0; i < big; i++) b[i] = (uint8_t)rng_next();
    static const size_t lens[] = {12287, 12288, 12289, 12296, 24575, 24576, 24583, 36864 + 13, 1u << 20};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
        for (size_t off = 0; off < 4; off++) {
            uint32_t ref = crc32c_ref(0, b + off, lens[i]);
            uint32_t hw = wire_crc32c(0, b + off, lens[i]), sw = wire_test_crc32c_sw(0, b + off, lens[i]);
            CHECK(hw == ref && sw == ref, "len %zu off %zu: hw 0x%08x sw 0x%08x ref 0x%08x", lens[i], off, hw,
                  sw, ref);
            uint32_t part = wire_crc32c(wire_crc32c(0xDEADBEEF, b + off, 5000), b + off + 5000, lens[i] - 5000);
            CHECK(part == crc32c_ref(0xDEADBEEF, b + off, lens[i]), "continued long crc len %zu", lens[i]);
        }
    free(b);
}

/* ---- varints: encoded bytes against a byte-at-a-time reference ---------- */

static size_t ref_varint(uint8_t *p, uint64_t x)
{
    size_t n = 0;
    while (x >= 0x80) {
        p[n++] = (uint8_t)(x | 0x80);
        x >>= 7;
    }
    p[n++] = (uint8_t)x;
    return n;
}

static void test_varints(void)
{
    /* deltas of every varint length, at and around each length boundary */
    enum { N = 400 };
    uint64_t keys[N], deltas[N];
    uint32_t n = 0;
    for (int bits = 0; bits <= 64 && n + 4 < N; bits += 7)
        for (int k = -2; k <= 1; k++) {
            uint64_t d = bits == 0 ? (uint64_t)(3 + k) : bits >= 63 ? UINT64_MAX >> 8 : (1ull << bits) + (uint64_t)k;
            deltas[n++] = d ? d : 1;
        }
    while (n < N) deltas[n++] = 1 + (rng_next() >> (rng_next() % 64));
    /* keys from the deltas, restarting near 0 when they would overflow */
    uint64_t x = 0;
    for (uint32_t i = 0; i < N; i++) {
        if (i > 0 && deltas[i] > UINT64_MAX - x) deltas[i] = 1;
        x = i ? x + deltas[i] : deltas[0];
        keys[i] = x;
    }
    /* a first key of every length too: try each as the first key */
    wire_codec *c = wire_codec_new();
    static const uint64_t firsts[] = {0, 1, 127, 128, 1ull << 14, (1ull << 21) - 1, 1ull << 28, 1ull << 35,
                                      1ull << 42, 1ull << 49, (1ull << 56) - 1, 1ull << 56, 1ull << 63};
    for (uint32_t first = 0; first < sizeof firsts / sizeof firsts[0]; first++) {
        /* offsets scaled by 1/4 plus i: still strictly increasing, and
         * k0 <= 2^63 plus at most 2^62 + N cannot overflow */
        uint64_t k0 = firsts[first], ks[N];
        for (uint32_t i = 0; i < N; i++) ks[i] = k0 + ((keys[i] - keys[0]) >> 2) + i;
        wire_msg m = {.type = WIRE_PULL_REQ, .n = N, .keys = ks};
        const uint8_t *buf;
        size_t len;
        CHECK(wire_encode(c, &m, 0, &buf, &len) == FN_OK, "varint encode: %s", fn_err_msg());
        uint8_t want[N * 10];
        size_t wl = ref_varint(want, ks[0]);
        for (uint32_t i = 1; i < N; i++) wl += ref_varint(want + wl, ks[i] - ks[i - 1]);
        CHECK(len == 32 + 20 + wl && memcmp(buf + 52, want, wl) == 0, "first %u: key bytes differ from reference",
              first);
        wire_msg out;
        CHECK(wire_decode(c, buf, len, &out) == FN_OK && memcmp(out.keys, ks, sizeof ks) == 0,
              "first %u: keys do not round-trip: %s", first, fn_err_msg());
    }
    /* full-range keys: 0 then 2^64-1 (a 10-byte delta), and 2^64-1 alone */
    uint64_t edge[2] = {0, UINT64_MAX};
    wire_msg m = {.type = WIRE_PULL_REQ, .n = 2, .keys = edge};
    const uint8_t *buf;
    size_t len;
    wire_msg out;
    CHECK(wire_encode(c, &m, 0, &buf, &len) == FN_OK && len == 32 + 20 + 11 &&
              wire_decode(c, buf, len, &out) == FN_OK && out.keys[1] == UINT64_MAX,
          "keys 0, 2^64-1");
    m.n = 1;
    m.keys = edge + 1;
    CHECK(wire_encode(c, &m, 0, &buf, &len) == FN_OK && len == 32 + 20 + 10 &&
              wire_decode(c, buf, len, &out) == FN_OK && out.keys[0] == UINT64_MAX,
          "key 2^64-1");
    wire_codec_destroy(&c);
}

/* ---- fp16 ---------------------------------------------------------------- */

static void test_f16(void)
{
    /* known values */
    static const struct { float f; uint16_t h; } known[] = {
        {0.0f, 0x0000}, {-0.0f, 0x8000}, {1.0f, 0x3C00}, {-2.0f, 0xC000}, {0.5f, 0x3800},
        {65504.0f, 0x7BFF}, {65519.99f, 0x7BFF}, {65520.0f, 0x7C00}, {1e9f, 0x7C00},
        {0x1p-14f, 0x0400}, {0x1p-24f, 0x0001}, {0x1p-25f, 0x0000}, {0x1.000002p-25f, 0x0001},
        {0x1.8p-24f, 0x0002}, /* tie between 1 and 2 units: to even */
        {0x1.ff8p-15f, 0x03FF}, {0x1.ffcp-15f, 0x0400}, /* largest subnormal; tie with 2^-14 */
        {1.0009765625f, 0x3C01}, {1.00048828125f, 0x3C00}, /* tie to even */
        {1.00146484375f, 0x3C02}, /* tie between 0x3C01 and 0x3C02: to even */
        {INFINITY, 0x7C00}, {-INFINITY, 0xFC00},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        uint16_t hw = wire_f32_to_f16(known[i].f), sw = wire_test_f32_to_f16_sw(known[i].f);
        CHECK(hw == known[i].h && sw == known[i].h, "f16(%a) hw 0x%04x sw 0x%04x want 0x%04x",
              (double)known[i].f, hw, sw, known[i].h);
    }
    CHECK((wire_f32_to_f16(NAN) & 0x7C00) == 0x7C00 && (wire_f32_to_f16(NAN) & 0x3FF),
          "NaN -> 0x%04x", wire_f32_to_f16(NAN));

    /* every half, both ways */
    for (uint32_t h = 0; h < 65536; h++) {
        float hw = wire_f16_to_f32((uint16_t)h), sw = wire_test_f16_to_f32_sw((uint16_t)h);
        CHECK(f2u(hw) == f2u(sw), "half 0x%04x: hw 0x%08x sw 0x%08x", h, f2u(hw), f2u(sw));
        uint16_t back = wire_f32_to_f16(hw), back_sw = wire_test_f32_to_f16_sw(sw);
        int nan = (h & 0x7C00) == 0x7C00 && (h & 0x3FF);
        if (nan)
            CHECK(back == (h | 0x200) && back_sw == back, "NaN 0x%04x -> 0x%04x / 0x%04x", h, back, back_sw);
        else
            CHECK(back == h && back_sw == h, "half 0x%04x does not round-trip: 0x%04x / 0x%04x", h, back,
                  back_sw);
    }

    /* floats: every (sign, exponent, top 10 mantissa bits) with the low 13
     * bits at and around the normal rounding point, then the whole
     * subnormal-result range with a stride, then random bit patterns */
    static const uint32_t lows[] = {0, 1, 0x0FFF, 0x1000, 0x1001, 0x1FFF};
    for (uint32_t top = 0; top < (1u << 19); top++)
        for (size_t j = 0; j < sizeof lows / sizeof lows[0]; j++) {
            float f = u2f(top << 13 | lows[j]);
            uint16_t hw = wire_f32_to_f16(f), sw = wire_test_f32_to_f16_sw(f);
            CHECK(hw == sw, "f32 0x%08x: hw 0x%04x sw 0x%04x", f2u(f), hw, sw);
        }
    for (uint32_t u = 0x32FFFF00u; u < 0x38800100u; u += 7)
        for (uint32_t sign = 0; sign < 2; sign++) {
            float f = u2f(u | sign << 31);
            uint16_t hw = wire_f32_to_f16(f), sw = wire_test_f32_to_f16_sw(f);
            CHECK(hw == sw, "f32 0x%08x: hw 0x%04x sw 0x%04x", f2u(f), hw, sw);
        }
    for (int i = 0; i < 2000000; i++) {
        float f = u2f((uint32_t)rng_next());
        uint16_t hw = wire_f32_to_f16(f), sw = wire_test_f32_to_f16_sw(f);
        CHECK(hw == sw, "f32 0x%08x: hw 0x%04x sw 0x%04x", f2u(f), hw, sw);
    }
    /* round to nearest: against double arithmetic on the neighbouring halves */
    for (int i = 0; i < 200000; i++) {
        float f = rng_normal() * 100.0f;
        float r = wire_f16_to_f32(wire_f32_to_f16(f));
        uint16_t h = wire_f32_to_f16(f);
        float up = wire_f16_to_f32((uint16_t)(h + 1)), down = wire_f16_to_f32((uint16_t)(h - 1));
        double e = fabs((double)r - f);
        CHECK(e <= fabs((double)up - f) && e <= fabs((double)down - f), "f16(%a) is not the nearest",
              (double)f);
    }
}

/* ---- round trips --------------------------------------------------------- */

static const char *type_name(int t)
{
    static const char *names[] = {"?", "PULL_REQ", "PULL_REP", "PUSH_REQ", "PUSH_REP",
                                  "ERROR_REP", "CTRL_REQ", "CTRL_REP"};
    return t >= 1 && t <= 7 ? names[t] : "?";
}
static int type_keys(int t) { return t == WIRE_PULL_REQ || t == WIRE_PUSH_REQ; }
static int type_values(int t) { return t == WIRE_PULL_REP || t == WIRE_PUSH_REQ; }

/* Checks decoded values against what was sent, by the encoding's promise. */
static void check_values(const float *in, const float *out, uint32_t n, uint32_t dim, int enc,
                         const char *what)
{
    int bad = 0;
    for (uint32_t r = 0; r < n && bad < 3; r++) {
        const float *a = in + (size_t)r * dim, *b = out + (size_t)r * dim;
        float mx = 0;
        for (uint32_t j = 0; j < dim; j++) mx = fmaxf(mx, fabsf(a[j]));
        for (uint32_t j = 0; j < dim; j++) {
            int ok;
            if (enc == WIRE_F32) {
                ok = f2u(a[j]) == f2u(b[j]);
            } else if (enc == WIRE_F16) {
                float ax = fabsf(a[j]);
                if (ax >= 0x1p-14f && ax <= 65504.0f)
                    ok = fabsf(b[j] - a[j]) <= 1e-3f * ax;
                else if (ax < 0x1p-14f)
                    ok = fabsf(b[j] - a[j]) <= 0x1p-25f;
                else
                    ok = isinf(b[j]) || isnan(a[j]);
                /* and bit-exact with what a single conversion gives */
                ok = ok && f2u(b[j]) == f2u(wire_f16_to_f32(wire_f32_to_f16(a[j])));
            } else {
                float s = mx / 127.0f;
                ok = mx == 0 ? b[j] == 0 : fabsf(b[j] - a[j]) <= 0.5f * s * (1 + 1e-5f);
            }
            if (!ok) {
                bad++;
                CHECK(ok, "%s: row %u col %u: sent %.9g got %.9g", what, r, j, (double)a[j], (double)b[j]);
            }
        }
    }
}

/* Encodes in with codec e, decodes with codec d, compares everything.
 * Returns whether LZ4 was used (-1 on failure). */
static int roundtrip(wire_codec *e, wire_codec *d, wire_msg *in, int try_lz4, const char *what)
{
    const uint8_t *buf;
    size_t len;
    int rc = wire_encode(e, in, try_lz4, &buf, &len);
    CHECK(rc == FN_OK, "%s: encode: %s", what, fn_err_msg());
    if (rc) return -1;
    CHECK(len == in->wire_bytes, "%s: wire_bytes %u vs len %zu", what, in->wire_bytes, len);
    size_t bound = wire_raw_bound(in->n, in->dim, type_keys(in->type), type_values(in->type),
                                  (wire_enc)in->enc, in->text_len);
    CHECK(rd32(buf + 20) <= bound, "%s: raw_len %u over bound %zu", what, rd32(buf + 20), bound);
    int used = buf[6] & 1;
    if (!try_lz4) CHECK(!used, "%s: LZ4 used without being asked", what);
    if (used) CHECK(rd32(buf + 16) < rd32(buf + 20), "%s: LZ4 used but not smaller", what);

    wire_msg out;
    rc = wire_decode(d, buf, len, &out);
    CHECK(rc == FN_OK, "%s: decode: %s", what, fn_err_msg());
    if (rc) return -1;
    CHECK(out.type == in->type && out.seq == in->seq && out.table == in->table && out.dim == in->dim &&
              out.n == in->n && out.code == in->code && out.wire_bytes == len,
          "%s: header fields differ", what);
    CHECK(out.text_len == in->text_len && out.text && out.text[out.text_len] == '\0' &&
              (in->text_len == 0 || memcmp(out.text, in->text, in->text_len) == 0),
          "%s: text differs", what);
    if (type_keys(in->type) && in->n) {
        CHECK(out.keys && memcmp(out.keys, in->keys, (size_t)in->n * 8) == 0, "%s: keys differ", what);
        CHECK(((uintptr_t)out.keys & 7) == 0, "%s: keys misaligned", what);
    } else {
        CHECK(out.keys == NULL, "%s: keys set", what);
    }
    if (type_values(in->type) && in->n && in->dim) {
        CHECK(out.values != NULL && out.enc == in->enc, "%s: values missing", what);
        CHECK(((uintptr_t)out.values & 3) == 0, "%s: values misaligned", what);
        if (out.values) check_values(in->values, out.values, in->n, in->dim, in->enc, what);
    } else {
        CHECK(out.values == NULL, "%s: values set", what);
    }
    return used;
}

static void test_roundtrips(void)
{
    wire_codec *e = wire_codec_new(), *d = wire_codec_new();
    enum { N = 300, DIM = 16 };
    uint64_t *keys = xmalloc(N * sizeof *keys);
    float *vals = xmalloc(N * DIM * sizeof *vals);
    char what[128];
    for (int type = WIRE_PULL_REQ; type <= WIRE_CTRL_REP; type++)
        for (int enc = WIRE_F32; enc <= WIRE_I8; enc++)
            for (int lz4 = 0; lz4 < 2; lz4++)
                for (int shape = 0; shape < 4; shape++) {
                    /* shape 0: random; 1: n=0; 2: dim 1, one key; 3: huge keys near 2^64 */
                    uint32_t n = shape == 1 ? 0 : shape == 2 ? 1 : N, dim = shape == 2 ? 1 : DIM;
                    if (shape == 3)
                        make_keys(keys, n, UINT64_MAX - (uint64_t)n * 1000, 999);
                    else
                        make_keys(keys, n, rng_next() >> 8, 1ull << 40);
                    make_values(vals, (size_t)n * dim, 0.1f);
                    if (n) vals[0] = 0; /* a zero value in the mix; row 1 all zero for I8 */
                    if (n > 2) memset(vals + dim, 0, dim * sizeof *vals);
                    wire_msg m = {.type = (uint8_t)type, .enc = (uint8_t)enc, .seq = rng_next(),
                                  .table = (uint16_t)rng_next(), .dim = (uint16_t)dim, .n = n,
                                  .code = (uint32_t)rng_next()};
                    if (type_keys(type)) m.keys = keys;
                    if (type_values(type)) m.values = vals;
                    if (type == WIRE_ERROR_REP || type >= WIRE_CTRL_REQ) {
                        m.text = "table 3: key 17 out of range";
                        m.text_len = (uint32_t)strlen(m.text);
                    }
                    snprintf(what, sizeof what, "%s enc %d lz4 %d shape %d", type_name(type), enc, lz4,
                             shape);
                    roundtrip(e, d, &m, lz4, what);
                }
    /* text may hold any byte, NUL included */
    wire_msg m = {.type = WIRE_CTRL_REP, .text = "a\0b\xff", .text_len = 4};
    roundtrip(e, d, &m, 0, "binary text");
    free(keys);
    free(vals);
    wire_codec_destroy(&e);
    wire_codec_destroy(&d);
    CHECK(e == NULL && d == NULL, "destroy does not clear the pointer");
}

/* Things F16/I8 must get exactly right, beyond the tolerance checks. */
static void test_value_encodings(void)
{
    wire_codec *c = wire_codec_new();
    /* F16: representable values come back exact, specials survive */
    float v16[] = {1.0f, -0.5f, 65504.0f, 0x1p-24f, -0x1p-14f, 0.0f, -0.0f, INFINITY, -INFINITY, 3.140625f};
    wire_msg m = {.type = WIRE_PULL_REP, .enc = WIRE_F16, .dim = 10, .n = 1, .values = v16};
    const uint8_t *buf;
    size_t len;
    wire_msg out;
    CHECK(wire_encode(c, &m, 0, &buf, &len) == FN_OK && wire_decode(c, buf, len, &out) == FN_OK,
          "F16 specials: %s", fn_err_msg());
    for (int i = 0; i < 10 && out.values; i++)
        CHECK(f2u(out.values[i]) == f2u(v16[i]), "F16 value %d: sent %a got %a", i, (double)v16[i],
              (double)out.values[i]);
    float vnan[8] = {NAN, 1, 2, 3, 4, 5, 6, 7};
    m.values = vnan;
    m.dim = 8;
    CHECK(wire_encode(c, &m, 0, &buf, &len) == FN_OK && wire_decode(c, buf, len, &out) == FN_OK &&
              isnan(out.values[0]) && out.values[7] == 7,
          "F16 NaN does not survive");

    /* I8: exact on the grid, the max maps to +-127, scale is max/127 */
    float v8[4] = {127.0f, -127.0f, 0.0f, 63.0f};
    m = (wire_msg){.type = WIRE_PULL_REP, .enc = WIRE_I8, .dim = 4, .n = 1, .values = v8};
    CHECK(wire_encode(c, &m, 0, &buf, &len) == FN_OK, "I8 encode: %s", fn_err_msg());
    CHECK(len == 32 + 20 + 4 + 4 && u2f(rd32(buf + 52)) == 1.0f && (int8_t)buf[56] == 127 &&
              (int8_t)buf[57] == -127 && buf[58] == 0 && buf[59] == 63,
          "I8 layout");
    CHECK(wire_decode(c, buf, len, &out) == FN_OK && memcmp(out.values, v8, sizeof v8) == 0, "I8 exact");
    /* a row at the float limit still decodes finite */
    float vbig[2] = {FLT_MAX, -FLT_MAX / 3};
    m.values = vbig;
    m.dim = 2;
    CHECK(wire_encode(c, &m, 0, &buf, &len) == FN_OK && wire_decode(c, buf, len, &out) == FN_OK &&
              isfinite(out.values[0]) && out.values[0] > 0.99f * FLT_MAX,
          "I8 at FLT_MAX: %s", fn_err_msg());
    /* I8 bytes against the definition, for every dim 1..40 (vector body and
     * scalar tail), rows with ties (x.5 after scaling) included */
    for (uint32_t dim = 1; dim <= 40; dim++) {
        float row[40];
        make_values(row, dim, 3.0f);
        if (dim > 3) {
            row[0] = 127.0f;
            row[1] = 2.5f; /* scale 1: exact tie, to even (2) */
            row[2] = -3.5f;
        }
        m = (wire_msg){.type = WIRE_PULL_REP, .enc = WIRE_I8, .dim = (uint16_t)dim, .n = 1, .values = row};
        CHECK(wire_encode(c, &m, 0, &buf, &len) == FN_OK && len == 32 + 20 + 4 + dim, "I8 dim %u", dim);
        float mx = 0;
        for (uint32_t j = 0; j < dim; j++) mx = fmaxf(mx, fabsf(row[j]));
        float s = mx / 127.0f;
        CHECK(f2u(s) == rd32(buf + 52), "I8 dim %u: scale %a want %a", dim, (double)u2f(rd32(buf + 52)), (double)s);
        for (uint32_t j = 0; j < dim; j++) {
            float t = rintf(row[j] / s);
            int q = t > 127 ? 127 : t < -127 ? -127 : (int)t;
            CHECK((int8_t)buf[56 + j] == q, "I8 dim %u col %u: q %d want %d", dim, j, (int8_t)buf[56 + j], q);
        }
        if (dim > 3) CHECK(buf[57] == 2 && (int8_t)buf[58] == -4, "I8 ties not to even: %d %d", buf[57],
                           (int8_t)buf[58]);
        CHECK(wire_decode(c, buf, len, &out) == FN_OK, "I8 dim %u decode", dim);
        for (uint32_t j = 0; j < dim; j++)
            CHECK(f2u(out.values[j]) == f2u((float)(int8_t)buf[56 + j] * s), "I8 dim %u col %u decode", dim, j);
    }
    /* I8 with n rows of dim 0: n zero scales */
    m = (wire_msg){.type = WIRE_PULL_REP, .enc = WIRE_I8, .dim = 0, .n = 5};
    CHECK(wire_encode(c, &m, 0, &buf, &len) == FN_OK && len == 32 + 20 + 20 &&
              wire_decode(c, buf, len, &out) == FN_OK && out.n == 5 && out.values == NULL,
          "I8 dim 0: %s", fn_err_msg());
    wire_codec_destroy(&c);
}

static void test_lz4(void)
{
    wire_codec *e = wire_codec_new(), *d = wire_codec_new();
    enum { N = 5000, DIM = 16 };
    uint64_t *keys = xmalloc(N * sizeof *keys);
    float *vals = xmalloc(N * DIM * sizeof *vals);
    /* compressible: dense keys, few distinct values */
    make_keys(keys, N, 1000, 1);
    for (size_t i = 0; i < (size_t)N * DIM; i++) vals[i] = (float)(i % 4) * 0.25f;
    for (int enc = WIRE_F32; enc <= WIRE_I8; enc++) {
        wire_msg m = {.type = WIRE_PUSH_REQ, .enc = (uint8_t)enc, .seq = 7, .dim = DIM, .n = N,
                      .keys = keys, .values = vals};
        int used = roundtrip(e, d, &m, 1, "compressible");
        uint32_t small = m.wire_bytes;
        roundtrip(e, d, &m, 0, "compressible, no lz4");
        CHECK(used == 1 && small < m.wire_bytes / 4, "enc %d: LZ4 used %d, %u vs %u bytes", enc, used, small,
              m.wire_bytes);
    }
    /* random: must still round-trip whichever way it goes */
    make_keys(keys, N, 5, UINT64_MAX / N / 2);
    make_values(vals, (size_t)N * DIM, 1.0f);
    for (int enc = WIRE_F32; enc <= WIRE_I8; enc++) {
        wire_msg m = {.type = WIRE_PUSH_REQ, .enc = (uint8_t)enc, .dim = DIM, .n = N, .keys = keys, .values = vals};
        roundtrip(e, d, &m, 1, "random with lz4");
    }
    /* LZ4 is used exactly when it makes the payload strictly smaller:
     * texts from all-zero to random, checked against liblz4 directly */
    char text[64], raw[20 + sizeof text], z[LZ4_COMPRESSBOUND(sizeof raw)];
    for (uint32_t tl = 0; tl < sizeof text; tl++)
        for (int kind = 0; kind < 3; kind++) {
            for (uint32_t i = 0; i < tl; i++)
                text[i] = kind == 0 ? 0 : kind == 1 ? (char)('a' + i % 5) : (char)rng_next();
            wire_msg m = {.type = WIRE_CTRL_REP, .seq = 1, .text = text, .text_len = tl};
            const uint8_t *buf;
            size_t len;
            if (wire_encode(e, &m, 0, &buf, &len)) continue;
            memcpy(raw, buf + 32, len - 32);
            int zl = LZ4_compress_default(raw, z, (int)(len - 32), (int)sizeof z);
            int want = zl > 0 && (size_t)zl < len - 32;
            int used = roundtrip(e, d, &m, 1, "small text");
            CHECK(used == want, "text_len %u kind %d: LZ4 used %d, smaller %d", tl, kind, used, want);
        }
    free(keys);
    free(vals);
    wire_codec_destroy(&e);
    wire_codec_destroy(&d);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* 100k keys x 16: correctness, buffer reuse (same pointers once warm), and
 * a rough speed print so regressions are visible in the log. */
static void test_large(void)
{
    wire_codec *e = wire_codec_new(), *d = wire_codec_new();
    enum { N = 100000, DIM = 16 };
    uint64_t *keys = xmalloc(N * sizeof *keys);
    float *vals = xmalloc((size_t)N * DIM * sizeof *vals);
    make_keys(keys, N, rng_next() >> 20, UINT64_MAX / N / 2); /* hashed ids: ~7-byte deltas */
    make_values(vals, (size_t)N * DIM, 0.01f);
    for (int enc = WIRE_F32; enc <= WIRE_I8; enc++)
        for (int lz4 = 0; lz4 < 2; lz4++) {
            wire_msg m = {.type = WIRE_PUSH_REQ, .enc = (uint8_t)enc, .seq = 99, .table = 2, .dim = DIM,
                          .n = N, .keys = keys, .values = vals};
            char what[64];
            snprintf(what, sizeof what, "100k enc %d lz4 %d", enc, lz4);
            if (roundtrip(e, d, &m, lz4, what) < 0) continue;

            /* warm: same buffers, and time a few passes */
            const uint8_t *b1, *b2;
            size_t l1, l2;
            wire_msg o1, o2;
            wire_encode(e, &m, lz4, &b1, &l1);
            wire_decode(d, b1, l1, &o1);
            int reps = 5;
            double t0 = now();
            for (int i = 0; i < reps; i++) wire_encode(e, &m, lz4, &b2, &l2);
            double t1 = now();
            for (int i = 0; i < reps; i++) wire_decode(d, b2, l2, &o2);
            double t2 = now();
            CHECK(b1 == b2 && o1.keys == o2.keys && o1.values == o2.values && o1.text == o2.text,
                  "%s: buffers moved on a warm codec", what);
            printf("  %-18s %8zu bytes  encode %6.2f ms  decode %6.2f ms\n", what, l2,
                   1e3 * (t1 - t0) / reps, 1e3 * (t2 - t1) / reps);
        }
    /* a small message on a codec that has seen a large one */
    wire_msg m = {.type = WIRE_PULL_REQ, .n = 3, .keys = keys};
    roundtrip(e, d, &m, 0, "small after large");
    free(keys);
    free(vals);
    wire_codec_destroy(&e);
    wire_codec_destroy(&d);
}

/* ---- encoder rejections -------------------------------------------------- */

static void test_encode_rejects(void)
{
    wire_codec *c = wire_codec_new();
    const uint8_t *buf;
    size_t len;
    uint64_t keys[4] = {1, 5, 5, 9};
    float vals[8] = {0};
    wire_msg m = {.type = WIRE_PULL_REQ, .n = 4, .keys = keys};
    CHECK(wire_encode(c, &m, 0, &buf, &len) == FN_EINVAL && strstr(fn_err_msg(), "key 2"),
          "duplicate key: %s", fn_err_msg());
    CHECK(buf == NULL && len == 0, "failed encode leaves output");
    keys[2] = 3;
    CHECK(wire_encode(c, &m, 0, &buf, &len) == FN_EINVAL && strstr(fn_err_msg(), "key 2"),
          "decreasing key: %s", fn_err_msg());
    keys[2] = 7;
    CHECK(wire_encode(c, &m, 0, &buf, &len) == FN_OK, "sorted keys: %s", fn_err_msg());

    struct { wire_msg m; const char *why; } bad[] = {
        {{.type = 0}, "type 0"},
        {{.type = 8}, "type 8"},
        {{.type = WIRE_PULL_REP, .enc = 3, .n = 1, .dim = 1, .values = vals}, "enc 3"},
        {{.type = WIRE_PULL_REP, .n = 1, .dim = WIRE_MAX_DIM + 1, .values = vals}, "dim over max"},
        {{.type = WIRE_PULL_REP, .n = 1, .dim = 1, .keys = keys, .values = vals}, "keys on PULL_REP"},
        {{.type = WIRE_PULL_REQ, .n = 1, .dim = 1, .keys = keys, .values = vals}, "values on PULL_REQ"},
        {{.type = WIRE_PUSH_REQ, .n = 2, .dim = 1, .keys = keys}, "PUSH_REQ without values"},
        {{.type = WIRE_PUSH_REQ, .n = 2, .dim = 1, .values = vals}, "PUSH_REQ without keys"},
        {{.type = WIRE_CTRL_REQ, .text_len = 3}, "text NULL"},
        {{.type = WIRE_PUSH_REP, .keys = keys}, "keys on PUSH_REP"},
        {{.type = WIRE_PULL_REP, .n = 200000, .dim = WIRE_MAX_DIM, .values = vals}, "over max payload"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(wire_encode(c, &bad[i].m, 0, &buf, &len) == FN_EINVAL, "%s accepted", bad[i].why);
    /* I8 cannot carry non-finite values; F16/F32 can */
    vals[1] = NAN;
    m = (wire_msg){.type = WIRE_PULL_REP, .enc = WIRE_I8, .n = 2, .dim = 4, .values = vals};
    CHECK(wire_encode(c, &m, 0, &buf, &len) == FN_EINVAL && strstr(fn_err_msg(), "row 0"), "I8 NaN: %s",
          fn_err_msg());
    vals[1] = 0;
    vals[6] = -INFINITY;
    CHECK(wire_encode(c, &m, 0, &buf, &len) == FN_EINVAL && strstr(fn_err_msg(), "row 1"), "I8 inf: %s",
          fn_err_msg());
    m.enc = WIRE_F16;
    CHECK(wire_encode(c, &m, 0, &buf, &len) == FN_OK, "F16 inf: %s", fn_err_msg());
    /* keys may be NULL when n == 0 */
    m = (wire_msg){.type = WIRE_PUSH_REQ, .dim = 8};
    CHECK(wire_encode(c, &m, 1, &buf, &len) == FN_OK, "empty PUSH_REQ: %s", fn_err_msg());
    wire_codec_destroy(&c);
}

/* ---- decoder rejections -------------------------------------------------- */

/* Recomputes the header CRC after a test edits a header field. */
static void reseal(uint8_t *b) { wr32(b + 28, wire_crc32c(0, b, 28)); }

/* A message around a hand-made payload, with valid CRCs.  Returns its size. */
static size_t frame(uint8_t *out, uint8_t type, uint16_t flags, const uint8_t *payload, uint32_t plen,
                    uint32_t rlen)
{
    wr32(out, WIRE_MAGIC);
    out[4] = WIRE_VERSION;
    out[5] = type;
    wr16(out + 6, flags);
    for (int i = 0; i < 8; i++) out[8 + i] = (uint8_t)(0x11 * (i + 1)); /* seq */
    wr32(out + 16, plen);
    wr32(out + 20, rlen);
    memcpy(out + 32, payload, plen);
    wr32(out + 24, wire_crc32c(0, payload, plen));
    reseal(out);
    return 32 + (size_t)plen;
}

static void fixed(uint8_t *b, uint16_t dim, uint32_t n, uint8_t hk, uint8_t hv, uint32_t text_len)
{
    memset(b, 0, 20);
    wr16(b, 3);
    wr16(b + 2, dim);
    wr32(b + 4, n);
    b[12] = hk;
    b[13] = hv;
    wr32(b + 16, text_len);
}

static wire_codec *gd; /* the decoder all rejection tests share, as a server would */

/* Decodes a framed body; checks the code and (if given) a piece of the reason. */
static void expect(const uint8_t *msg, size_t len, int want, const char *reason, const char *what)
{
    wire_msg m;
    memset(&m, 0xAB, sizeof m);
    int rc = wire_decode(gd, msg, len, &m);
    CHECK(rc == want, "%s: got %s (%s), want %s", what, fn_strerror(rc), fn_err_msg(), fn_strerror(want));
    if (rc && reason) CHECK(strstr(fn_err_msg(), reason), "%s: reason \"%s\" lacks \"%s\"", what, fn_err_msg(), reason);
    if (rc) CHECK(m.keys == NULL && m.values == NULL && m.n == 0, "%s: m not cleared on failure", what);
}

static void expect_body(uint8_t type, int enc, const uint8_t *body, uint32_t blen, int want, const char *reason,
                        const char *what)
{
    uint8_t *msg = xmalloc(32 + (size_t)blen);
    size_t len = frame(msg, type, (uint16_t)(enc << WIRE_ENC_SHIFT), body, blen, blen);
    expect(msg, len, want, reason, what);
    free(msg);
}

static void test_flips_and_truncation(void)
{
    wire_codec *e = wire_codec_new();
    uint64_t keys[40];
    float vals[40 * 4];
    make_keys(keys, 40, 12345, 1u << 20);
    make_values(vals, 40 * 4, 1.0f);
    for (int k = 0; k < 40; k++) vals[k * 4] = 1.0f; /* some repetition, so LZ4 kicks in */
    struct { wire_msg m; int lz4; } cases[] = {
        {{.type = WIRE_PUSH_REQ, .enc = WIRE_F16, .seq = 5, .dim = 4, .n = 40, .keys = keys, .values = vals}, 0},
        {{.type = WIRE_PUSH_REQ, .enc = WIRE_F32, .seq = 6, .dim = 4, .n = 40, .keys = keys, .values = vals}, 1},
        {{.type = WIRE_PULL_REP, .enc = WIRE_I8, .seq = 7, .dim = 4, .n = 10, .values = vals}, 0},
        {{.type = WIRE_ERROR_REP, .code = FN_EBADMSG, .text = "bad", .text_len = 3}, 0},
    };
    uint8_t *copy = xmalloc(4096);
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const uint8_t *buf;
        size_t len;
        CHECK(wire_encode(e, &cases[ci].m, cases[ci].lz4, &buf, &len) == FN_OK && len < 4096, "encode %zu", ci);
        if (cases[ci].lz4) CHECK(buf[6] & 1, "case %zu should be compressed", ci);
        memcpy(copy, buf, len);
        expect(copy, len, FN_OK, NULL, "unflipped");
        /* every byte, three ways; the CRCs catch any single-byte change */
        static const uint8_t masks[] = {0x01, 0x80, 0xFF};
        for (size_t i = 0; i < len; i++)
            for (size_t k = 0; k < 3; k++) {
                copy[i] ^= masks[k];
                int want = i < 4 ? FN_EMAGIC : i == 4 ? FN_EVERSION : FN_ECHECKSUM;
                char what[64];
                snprintf(what, sizeof what, "case %zu byte %zu ^ 0x%02x", ci, i, masks[k]);
                expect(copy, len, want, NULL, what);
                copy[i] ^= masks[k];
            }
        /* every truncation, and one extra byte */
        for (size_t l = 0; l < len; l++) {
            char what[64];
            snprintf(what, sizeof what, "case %zu cut to %zu", ci, l);
            wire_msg m;
            int rc = wire_decode(gd, copy, l, &m);
            CHECK(rc == FN_EBADMSG, "%s: got %s", what, fn_strerror(rc));
        }
        copy[len] = 0;
        expect(copy, len + 1, FN_EBADMSG, "header says", "trailing byte after payload");

        /* header peek: fine even when the payload is damaged */
        copy[len - 1] ^= 0x40;
        wire_msg pm;
        CHECK(wire_peek_header(copy, len, &pm) == FN_OK && pm.seq == cases[ci].m.seq &&
                  pm.type == cases[ci].m.type && pm.enc == cases[ci].m.enc && pm.wire_bytes == len,
              "peek on a damaged payload: %s", fn_err_msg());
        expect(copy, len, FN_ECHECKSUM, "payload crc mismatch", "damaged payload");
        copy[len - 1] ^= 0x40;
        copy[9] ^= 1;
        CHECK(wire_peek_header(copy, len, &pm) == FN_ECHECKSUM && pm.seq == 0, "peek on a damaged header");
        copy[9] ^= 1;
    }
    free(copy);
    wire_codec_destroy(&e);
}

static void test_header_fields(void)
{
    wire_codec *e = wire_codec_new();
    uint64_t keys[3] = {1, 2, 3};
    wire_msg m = {.type = WIRE_PULL_REQ, .dim = 8, .n = 3, .keys = keys};
    const uint8_t *buf;
    size_t len;
    CHECK(wire_encode(e, &m, 0, &buf, &len) == FN_OK, "encode");
    uint8_t good[64], b[64];
    memcpy(good, buf, len);

#define EDIT(stmt, want, reason, what)  \
    do {                                \
        memcpy(b, good, len);           \
        stmt;                           \
        reseal(b);                      \
        expect(b, len, want, reason, what); \
    } while (0)
    EDIT(wr32(b, 0x314C4E47), FN_EMAGIC, "magic", "wrong magic");
    EDIT(b[4] = 2, FN_EVERSION, "version 2", "version 2");
    EDIT(b[4] = 0, FN_EVERSION, "version", "version 0");
    EDIT(b[5] = 0, FN_EBADMSG, "type 0", "type 0");
    EDIT(b[5] = 8, FN_EBADMSG, "type 8", "type 8");
    EDIT(b[5] = 0xFF, FN_EBADMSG, "type", "type 255");
    EDIT(b[6] |= 0x08, FN_EBADMSG, "reserved flag", "flag bit 3");
    EDIT(b[7] = 0x80, FN_EBADMSG, "reserved flag", "flag bit 15");
    EDIT(b[6] |= 0x06, FN_EBADMSG, "encoding 3", "enc 3");
    EDIT(wr32(b + 16, rd32(b + 16) + 1), FN_EBADMSG, "header says", "payload_len + 1");
    EDIT(wr32(b + 16, rd32(b + 16) - 1), FN_EBADMSG, "header says", "payload_len - 1");
    EDIT(wr32(b + 16, WIRE_MAX_PAYLOAD + 1), FN_ETOOBIG, "payload_len", "payload_len over max");
    EDIT(wr32(b + 20, WIRE_MAX_PAYLOAD + 1), FN_ETOOBIG, "raw_len", "raw_len over max");
    EDIT(wr32(b + 20, rd32(b + 20) + 1), FN_EBADMSG, "raw_len", "raw_len != payload_len");
    EDIT(wr32(b + 24, rd32(b + 24) ^ 1), FN_ECHECKSUM, "payload crc", "payload crc");
    EDIT(b[5] = WIRE_PULL_REP, FN_EBADMSG, "must not carry keys", "PULL_REQ body as PULL_REP");
    EDIT(b[5] = WIRE_PUSH_REQ, FN_EBADMSG, "must carry values", "PULL_REQ body as PUSH_REQ");
#undef EDIT
    memcpy(b, good, len);
    wr32(b + 28, rd32(b + 28) ^ 0x100);
    expect(b, len, FN_ECHECKSUM, "header crc mismatch", "header crc");
    wire_codec_destroy(&e);
}

static void test_crafted_bodies(void)
{
    uint8_t body[2048];
    size_t o;

    /* a valid PULL_REQ by hand first, so the failures below are the edit */
    fixed(body, 8, 3, 1, 0, 0);
    body[20] = 5; body[21] = 1; body[22] = 0x80; body[23] = 0x01; /* keys 5, 6, 134 */
    expect_body(WIRE_PULL_REQ, 0, body, 24, FN_OK, NULL, "hand-made PULL_REQ");
    {
        wire_msg m;
        uint8_t msg[64];
        size_t len = frame(msg, WIRE_PULL_REQ, 0, body, 24, 24);
        CHECK(wire_decode(gd, msg, len, &m) == FN_OK && m.keys[0] == 5 && m.keys[1] == 6 && m.keys[2] == 134,
              "hand-made keys");
    }
    expect_body(WIRE_PULL_REQ, 0, body, 25, FN_EBADMSG, "trailing", "trailing body byte");
    expect_body(WIRE_PULL_REQ, 0, body, 19, FN_EBADMSG, "shorter than", "body under 20 bytes");
    expect_body(WIRE_PULL_REQ, 0, body, 0, FN_EBADMSG, "shorter than", "empty body");

    /* duplicate key: delta 0 at index 2 */
    fixed(body, 8, 3, 1, 0, 0);
    body[20] = 5; body[21] = 1; body[22] = 0;
    expect_body(WIRE_PULL_REQ, 0, body, 23, FN_EBADMSG, "key 2 not greater than previous", "duplicate key");
    /* duplicate key through the multi-byte path: 0x80 0x00 is a non-minimal zero */
    fixed(body, 8, 2, 1, 0, 0);
    body[20] = 5; body[21] = 0x80; body[22] = 0x00;
    expect_body(WIRE_PULL_REQ, 0, body, 23, FN_EBADMSG, "not minimal", "non-minimal delta");

    /* the same, where the decoder reads whole 8-byte words */
    fixed(body, 8, 8, 1, 0, 0);
    body[20] = 0x81; body[21] = 0x00;
    memset(body + 22, 1, 7);
    expect_body(WIRE_PULL_REQ, 0, body, 29, FN_EBADMSG, "key 0 varint is not minimal", "non-minimal word varint");
    body[21] = 0x01;
    expect_body(WIRE_PULL_REQ, 0, body, 29, FN_OK, NULL, "minimal word varint");
    body[22] = 0;
    expect_body(WIRE_PULL_REQ, 0, body, 29, FN_EBADMSG, "key 1 not greater", "duplicate in word path");

    /* overlong varints */
    fixed(body, 8, 1, 1, 0, 0);
    memset(body + 20, 0x80, 10);
    body[30] = 0x01; /* 11 bytes */
    expect_body(WIRE_PULL_REQ, 0, body, 31, FN_EBADMSG, "overflows 64 bits", "11-byte varint");
    memset(body + 20, 0xFF, 9);
    body[29] = 0x02; /* 10 bytes, 65th bit set */
    expect_body(WIRE_PULL_REQ, 0, body, 30, FN_EBADMSG, "overflows 64 bits", "varint over 2^64");
    body[29] = 0x01; /* exactly 2^64-1: fine */
    expect_body(WIRE_PULL_REQ, 0, body, 30, FN_OK, NULL, "varint 2^64-1");
    /* key overflow past 2^64-1: first key 2^64-1, then delta 1 */
    fixed(body, 8, 2, 1, 0, 0);
    memset(body + 20, 0xFF, 9);
    body[29] = 0x01;
    body[30] = 1;
    expect_body(WIRE_PULL_REQ, 0, body, 31, FN_EBADMSG, "overflows 2^64-1", "key past 2^64-1");
    /* truncated varint: the keys region ends mid-varint */
    fixed(body, 8, 2, 1, 0, 0);
    body[20] = 1; body[21] = 0x80;
    expect_body(WIRE_PULL_REQ, 0, body, 22, FN_EBADMSG, "truncated", "truncated varint");
    /* more keys than bytes */
    fixed(body, 8, 1000, 1, 0, 0);
    memset(body + 20, 1, 10);
    expect_body(WIRE_PULL_REQ, 0, body, 30, FN_EBADMSG, "cannot fit", "n over key bytes");
    fixed(body, 8, 0xFFFFFFFFu, 1, 0, 0);
    expect_body(WIRE_PULL_REQ, 0, body, 30, FN_EBADMSG, "cannot fit", "n = 2^32-1 keys");

    /* n*dim overflow and huge values: must fail without a huge allocation */
    fixed(body, WIRE_MAX_DIM, 0xFFFFFFFFu, 0, 1, 0);
    for (int enc = 0; enc < 3; enc++)
        expect_body(WIRE_PULL_REP, enc, body, 40, FN_EBADMSG, "value bytes", "n*dim overflow");
    fixed(body, WIRE_MAX_DIM + 1, 1, 0, 1, 0);
    expect_body(WIRE_PULL_REP, 0, body, 20, FN_ETOOBIG, "dim 4097", "dim over max");
    fixed(body, 0xFFFF, 1, 0, 1, 0);
    expect_body(WIRE_PULL_REP, 0, body, 20, FN_ETOOBIG, "dim", "dim 65535");
    /* values short by one byte, and long by one */
    fixed(body, 4, 2, 0, 1, 0);
    memset(body + 20, 0, 16);
    expect_body(WIRE_PULL_REP, 0, body, 20 + 31, FN_EBADMSG, "value bytes", "values short");
    expect_body(WIRE_PULL_REP, 0, body, 20 + 32, FN_OK, NULL, "values exact");
    expect_body(WIRE_PULL_REP, 0, body, 20 + 33, FN_EBADMSG, "trailing", "values long");
    /* n=0 with values is fine, even with a large dim */
    fixed(body, WIRE_MAX_DIM, 0, 0, 1, 0);
    expect_body(WIRE_PULL_REP, 0, body, 20, FN_OK, NULL, "n=0 PULL_REP");

    /* has_keys / has_values: values 0/1 only and what the type carries */
    static const struct { uint8_t type, hk, hv; const char *reason; } mism[] = {
        {WIRE_PULL_REQ, 1, 1, "must not carry values"}, {WIRE_PULL_REQ, 0, 0, "must carry keys"},
        {WIRE_PULL_REP, 1, 1, "must not carry keys"},   {WIRE_PULL_REP, 0, 0, "must carry values"},
        {WIRE_PUSH_REQ, 1, 0, "must carry values"},     {WIRE_PUSH_REQ, 0, 1, "must carry keys"},
        {WIRE_PUSH_REP, 0, 1, "must not carry values"}, {WIRE_CTRL_REQ, 1, 0, "must not carry keys"},
        {WIRE_ERROR_REP, 0, 1, "must not carry values"}, {WIRE_CTRL_REP, 1, 1, "must not carry keys"},
        {WIRE_PULL_REQ, 2, 0, "has_keys is 2"},          {WIRE_PULL_REP, 0, 2, "has_values is 2"},
        {WIRE_PUSH_REQ, 0xFF, 1, "has_keys is 255"},
    };
    for (size_t i = 0; i < sizeof mism / sizeof mism[0]; i++) {
        fixed(body, 4, 0, mism[i].hk, mism[i].hv, 0);
        expect_body(mism[i].type, 0, body, 20, FN_EBADMSG, mism[i].reason, mism[i].reason);
    }
    fixed(body, 4, 0, 0, 0, 0);
    wr16(body + 14, 1);
    expect_body(WIRE_CTRL_REQ, 0, body, 20, FN_EBADMSG, "reserved body field", "reserved body field");

    /* text: past the end, exact, one short */
    fixed(body, 0, 0, 0, 0, 5);
    memcpy(body + 20, "hello", 5);
    expect_body(WIRE_CTRL_REP, 0, body, 25, FN_OK, NULL, "text exact");
    expect_body(WIRE_CTRL_REP, 0, body, 24, FN_EBADMSG, "text_len 5", "text past end");
    expect_body(WIRE_CTRL_REP, 0, body, 26, FN_EBADMSG, "trailing", "byte after text");
    fixed(body, 0, 0, 0, 0, 0xFFFFFFFFu);
    expect_body(WIRE_CTRL_REP, 0, body, 25, FN_EBADMSG, "text_len", "text_len 2^32-1");

    /* I8 scales the encoder can never produce */
    static const float bad_scales[] = {-1.0f, NAN, INFINITY, FLT_MAX};
    for (size_t i = 0; i < sizeof bad_scales / sizeof bad_scales[0]; i++) {
        fixed(body, 2, 2, 0, 1, 0);
        o = 20;
        wr32(body + o, f2u(0.5f)); body[o + 4] = 1; body[o + 5] = 2; o += 6;
        wr32(body + o, f2u(bad_scales[i])); body[o + 4] = 1; body[o + 5] = 2; o += 6;
        expect_body(WIRE_PULL_REP, WIRE_I8, body, (uint32_t)o, FN_EBADMSG, "I8 row 1 scale", "bad I8 scale");
    }
    fixed(body, 0, 1, 0, 1, 0); /* dim 0: the lone scale is still checked */
    wr32(body + 20, f2u(-2.0f));
    expect_body(WIRE_PULL_REP, WIRE_I8, body, 24, FN_EBADMSG, "I8 row 0 scale", "bad I8 scale, dim 0");

    /* LZ4: right raw_len, raw_len off by one either way, corrupt stream */
    fixed(body, 4, 64, 0, 1, 0);
    memset(body + 20, 0, 64 * 4 * 4);
    uint32_t rlen = 20 + 64 * 16;
    char z[600];
    int zl = LZ4_compress_default((const char *)body, z, (int)rlen, (int)sizeof z);
    CHECK(zl > 0 && (uint32_t)zl < rlen, "test LZ4 compress");
    uint8_t msg[700];
    size_t len = frame(msg, WIRE_PULL_REP, WIRE_FLAG_LZ4, (const uint8_t *)z, (uint32_t)zl, rlen);
    expect(msg, len, FN_OK, NULL, "hand LZ4");
    len = frame(msg, WIRE_PULL_REP, WIRE_FLAG_LZ4, (const uint8_t *)z, (uint32_t)zl, rlen + 1);
    expect(msg, len, FN_EBADMSG, "raw_len says", "LZ4 raw_len + 1");
    len = frame(msg, WIRE_PULL_REP, WIRE_FLAG_LZ4, (const uint8_t *)z, (uint32_t)zl, rlen - 1);
    expect(msg, len, FN_EBADMSG, "LZ4", "LZ4 raw_len - 1");
    len = frame(msg, WIRE_PULL_REP, WIRE_FLAG_LZ4, (const uint8_t *)z, (uint32_t)zl, 19);
    expect(msg, len, FN_EBADMSG, "raw_len 19", "LZ4 raw_len under 20");
    len = frame(msg, WIRE_PULL_REP, WIRE_FLAG_LZ4, (const uint8_t *)z, (uint32_t)zl, (uint32_t)zl * 255 + 1);
    expect(msg, len, FN_EBADMSG, "more than LZ4 can expand", "LZ4 ratio");
    len = frame(msg, WIRE_PULL_REP, WIRE_FLAG_LZ4, (const uint8_t *)z, 0, rlen);
    expect(msg, len, FN_EBADMSG, "LZ4", "LZ4 empty payload");
    for (int t = 0; t < 200; t++) {
        uint8_t junk[64];
        for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)rng_next();
        wire_msg m;
        len = frame(msg, WIRE_PULL_REP, WIRE_FLAG_LZ4, junk, sizeof junk, 20 + (uint32_t)(rng_next() % 2000));
        CHECK(wire_decode(gd, msg, len, &m) == FN_EBADMSG, "random LZ4 junk accepted");
    }
    /* a valid LZ4 stream around a bad body: the body check still runs */
    fixed(body, 8, 3, 1, 0, 0);
    body[20] = 5; body[21] = 1; body[22] = 0;
    zl = LZ4_compress_default((const char *)body, z, 23, (int)sizeof z);
    len = frame(msg, WIRE_PULL_REQ, WIRE_FLAG_LZ4, (const uint8_t *)z, (uint32_t)zl, 23);
    expect(msg, len, FN_EBADMSG, "key 2 not greater", "duplicate key under LZ4");
}

/* ---- corpus -------------------------------------------------------------- */

/* Small valid messages of every type and encoding, for the fuzzer to mutate. */
static int write_corpus(const char *dir)
{
    wire_codec *c = wire_codec_new();
    uint64_t keys[24];
    float vals[24 * 4];
    int count = 0;
    for (int type = WIRE_PULL_REQ; type <= WIRE_CTRL_REP; type++)
        for (int enc = 0; enc < 3; enc++)
            for (int lz4 = 0; lz4 < 2; lz4++) {
                if (!type_values(type) && enc) continue; /* encoding only matters with values */
                uint32_t n = type == WIRE_PUSH_REP || type_keys(type) || type_values(type) ? 24 : 0;
                make_keys(keys, 24, lz4 ? 100 : rng_next() >> 1, lz4 ? 1 : 1u << 30);
                for (int i = 0; i < 24 * 4; i++) vals[i] = lz4 ? (float)(i % 3) : rng_normal();
                wire_msg m = {.type = (uint8_t)type, .enc = (uint8_t)enc, .seq = (uint64_t)count + 1,
                              .table = 1, .dim = 4, .n = n, .code = type == WIRE_CTRL_REQ ? WIRE_CTRL_STATS : 0};
                if (type_keys(type)) m.keys = keys;
                if (type_values(type)) m.values = vals;
                if (type >= WIRE_ERROR_REP) {
                    m.text = lz4 ? "{\"rows\":100,\"rows_per_table\":[100,100,100,100,100,100,100,100]}"
                                 : "/tmp/export.bin";
                    m.text_len = (uint32_t)strlen(m.text);
                }
                const uint8_t *buf;
                size_t len;
                if (wire_encode(c, &m, lz4, &buf, &len)) {
                    fprintf(stderr, "test_wire: corpus encode: %s\n", fn_err_msg());
                    return 1;
                }
                char path[512];
                snprintf(path, sizeof path, "%s/%s_%s%s.bin", dir, type_name(type),
                         enc == 0 ? "f32" : enc == 1 ? "f16" : "i8", lz4 ? "_lz4" : "");
                FILE *f = fopen(path, "wb");
                if (!f || fwrite(buf, 1, len, f) != len || fclose(f)) {
                    fprintf(stderr, "test_wire: %s: %s\n", path, strerror(errno));
                    return 1;
                }
                count++;
            }
    /* edge cases: full-range keys, F16 specials, I8 with a zero row, empty */
    static const uint64_t edge_keys[3] = {0, 1ull << 56, UINT64_MAX};
    static const float specials[8] = {INFINITY, -INFINITY, NAN, -0.0f, 0x1p-24f, 65504.0f, 1e-8f, 70000.0f};
    static const float i8rows[8] = {0, 0, 0, 0, -1.0f, 0.5f, 1e-3f, 3.0f};
    const struct { const char *name; wire_msg m; } edges[] = {
        {"edge_keys", {.type = WIRE_PULL_REQ, .dim = 16, .n = 3, .keys = edge_keys}},
        {"edge_f16_specials", {.type = WIRE_PULL_REP, .enc = WIRE_F16, .dim = 8, .n = 1, .values = specials}},
        {"edge_i8_zero_row", {.type = WIRE_PULL_REP, .enc = WIRE_I8, .dim = 4, .n = 2, .values = i8rows}},
        {"edge_i8_dim0", {.type = WIRE_PULL_REP, .enc = WIRE_I8, .dim = 0, .n = 3}},
        {"edge_empty_push", {.type = WIRE_PUSH_REQ, .enc = WIRE_F16, .dim = 16}},
        {"edge_binary_text", {.type = WIRE_ERROR_REP, .code = FN_EBADMSG, .text = "a\0b\xff", .text_len = 4}},
    };
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        wire_msg m = edges[i].m;
        const uint8_t *buf;
        size_t len;
        if (wire_encode(c, &m, 0, &buf, &len)) {
            fprintf(stderr, "test_wire: corpus encode %s: %s\n", edges[i].name, fn_err_msg());
            return 1;
        }
        char path[512];
        snprintf(path, sizeof path, "%s/%s.bin", dir, edges[i].name);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(buf, 1, len, f) != len || fclose(f)) {
            fprintf(stderr, "test_wire: %s: %s\n", path, strerror(errno));
            return 1;
        }
        count++;
    }
    printf("wrote %d corpus files to %s\n", count, dir);
    wire_codec_destroy(&c);
    return 0;
}

/* The in-place paths: a pull reply whose rows were written into the
 * encoder's slot is the same bytes as one encoded from a copy, with and
 * without LZ4; a lending decoder hands the same floats back as bytes in the
 * buffer (values NULL); the slot refuses messages laid out otherwise. */
static void test_in_place(void)
{
    const uint32_t n = 700, dim = 16;
    float *v = xmalloc(sizeof(float) * n * dim);
    make_values(v, (size_t)n * dim, 1.0f);
    for (int lz = 0; lz < 2; lz++) {
        if (lz) /* compressible rows, so LZ4 is really used */
            for (size_t i = 0; i < (size_t)n * dim; i++) v[i] = (float)(i % 7);
        wire_codec *a = wire_codec_new(), *b = wire_codec_new(), *d = wire_codec_new();
        wire_msg m = {.type = WIRE_PULL_REP, .enc = WIRE_F32, .seq = 9, .table = 3, .dim = (uint16_t)dim, .n = n, .values = v};
        const uint8_t *ref, *got;
        size_t ref_len, got_len;
        CHECK(wire_encode(a, &m, lz, &ref, &ref_len) == FN_OK, "copy encode: %s", fn_err_msg());
        float *slot = wire_values_slot(b, n, dim);
        CHECK(slot != NULL, "no slot");
        if (!slot) continue;
        memcpy(slot, v, sizeof(float) * n * dim);
        wire_msg ms = m;
        ms.values = slot;
        CHECK(wire_encode(b, &ms, lz, &got, &got_len) == FN_OK, "slot encode: %s", fn_err_msg());
        CHECK(got_len == ref_len && memcmp(got, ref, ref_len) == 0, "lz4 %d: in-place encoding differs from the copied one", lz);
        CHECK(!lz || (got[6] & 1), "LZ4 not used on compressible rows");
        wire_codec_lend(d, 1);
        wire_msg out;
        CHECK(wire_decode(d, got, got_len, &out) == FN_OK, "lending decode: %s", fn_err_msg());
        CHECK(out.values == NULL && out.values_le != NULL, "lending decode set values %p values_le %p", (const void *)out.values,
              (const void *)out.values_le);
        CHECK(out.values_le && memcmp(out.values_le, v, sizeof(float) * n * dim) == 0, "lent values differ");
        CHECK(lz || out.values_le == got + 52, "uncompressed values not lent from the message itself");
        wire_codec_lend(d, 0);
        CHECK(wire_decode(d, got, got_len, &out) == FN_OK && out.values && !out.values_le &&
                  memcmp(out.values, v, sizeof(float) * n * dim) == 0, "copying decode after lending");
        /* the slot is for keyless fp32 messages without text */
        slot = wire_values_slot(b, n, dim);
        wire_msg bad = {.type = WIRE_PULL_REP, .enc = WIRE_F16, .seq = 1, .dim = (uint16_t)dim, .n = n, .values = slot};
        CHECK(slot && wire_encode(b, &bad, 0, &got, &got_len) == FN_EINVAL, "f16 from the f32 slot accepted");
        wire_codec_destroy(&a);
        wire_codec_destroy(&b);
        wire_codec_destroy(&d);
    }
    free(v);
}

int main(int argc, char **argv)
{
    rng_state = 20240611;
    if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0) return write_corpus(argv[2]);
    gd = wire_codec_new();
    if (!gd) return 2;
    test_crc32c();
    test_varints();
    test_f16();
    test_roundtrips();
    test_value_encodings();
    test_lz4();
    test_encode_rejects();
    test_flips_and_truncation();
    test_header_fields();
    test_crafted_bodies();
    test_large();
    test_in_place();
    wire_codec_destroy(&gd);
    if (failures) {
        fprintf(stderr, "test_wire: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_wire: all checks passed\n");
    return 0;
}
