/* proto/wire.c — the funnel wire format: see wire.h for the byte layout.
 *
 * Owns: header framing and validation, CRC-32C, key varint/delta coding,
 * F32/F16/I8 value coding, optional LZ4 of the payload, and the codec's
 * scratch buffers.  Called by ps/ and worker/ on every request and reply.
 *
 * It must never trust a byte it decodes: every length is checked against
 * the bytes actually present (in 64-bit arithmetic) before anything is read
 * or allocated, and every rejection returns a specific fn_err code with a
 * reason naming the field.  It must not allocate on the hot path once the
 * codec has seen a message of the same size: buffers only grow.
 *
 * Speed matters (1k-100k keys of 16-float rows per message), so the hot
 * loops have x86 paths chosen at compile time (we build with -march=native):
 * CRC-32C with the SSE4.2 crc32 instruction on three interleaved streams
 * (vs a byte table), fp16 with F16C (vs integer code), I8 with AVX2 (vs the
 * same arithmetic in scalar code); keys move as 64-bit words (portable).
 * Every pair must give identical bits: tests/unit/test_wire.c compares the
 * portable CRC and fp16 code through the wire_test_* hooks below, and the
 * other paths against references; a build with FUNNEL_NATIVE=OFF runs the
 * portable code through the same tests. */
#include "wire.h"

#include "fn_error.h"

#include <errno.h>
#include <float.h>
#include <lz4.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#if defined(__SSE4_2__) && defined(__x86_64__)
#define WIRE_HW_CRC 1
#endif
#if defined(__F16C__)
#define WIRE_HW_F16 1
#endif
#if defined(WIRE_HW_CRC) || defined(WIRE_HW_F16) || defined(__AVX2__)
#include <immintrin.h>
#endif

/* Test hooks: the portable paths, callable even when the hardware path is
 * compiled in.  Not part of wire.h on purpose. */
uint32_t wire_test_crc32c_sw(uint32_t crc, const void *data, size_t len);
uint16_t wire_test_f32_to_f16_sw(float f);
float wire_test_f16_to_f32_sw(uint16_t h);

/* Largest I8 row scale: |q| <= 128 times it still fits in a float, so
 * decoded I8 values are always finite.  FLT_MAX/127 would not do: it rounds
 * up, and 127 times it overflows. */
#define I8_MAX_SCALE (FLT_MAX / 128.0f)

/* LZ4 cannot expand a block by more than this: each input byte yields at
 * most 255 output bytes.  Checked before allocating raw_len bytes, so a
 * 40-byte message cannot make us allocate 512 MiB. */
#define LZ4_MAX_RATIO 255u

/* Adaptive LZ4 (wire_encode): payloads of at least LZ4_WORTH bytes that
 * fail to shrink LZ4_GIVE_UP times in a row make the codec skip the next
 * LZ4_RETRY - 1 attempts. */
#define LZ4_WORTH 4096u
#define LZ4_GIVE_UP 4u
#define LZ4_RETRY 64u

struct wire_codec {
    uint8_t *buf;      /* encode: header + payload as sent */
    size_t buf_cap;    /* bytes */
    uint8_t *scratch;  /* encode: LZ4 output; decode: decompressed payload */
    size_t scratch_cap;
    uint64_t *keys;    /* decode: typed, so 8-byte aligned */
    size_t keys_cap;   /* bytes */
    float *vals;       /* decode: n*dim fp32 */
    size_t vals_cap;   /* bytes */
    char *text;        /* decode: text + NUL */
    int lend;          /* decode: fp32 values stay in the buffer (values_le) */
    size_t text_cap;   /* bytes */
    unsigned lz4_misses; /* encode: LZ4 attempts in a row that did not shrink */
    unsigned lz4_skip;   /* encode: messages to send before trying LZ4 again */
};

/* What each type carries (wire.h); index = wire_type, 0 = unknown. */
static const struct {
    const char *name;
    uint8_t keys, values;
} type_info[] = {
    [0] = {NULL, 0, 0},
    [WIRE_PULL_REQ] = {"PULL_REQ", 1, 0},
    [WIRE_PULL_REP] = {"PULL_REP", 0, 1},
    [WIRE_PUSH_REQ] = {"PUSH_REQ", 1, 1},
    [WIRE_PUSH_REP] = {"PUSH_REP", 0, 0},
    [WIRE_ERROR_REP] = {"ERROR_REP", 0, 0},
    [WIRE_CTRL_REQ] = {"CTRL_REQ", 0, 0},
    [WIRE_CTRL_REP] = {"CTRL_REP", 0, 0},
};
#define TYPE_COUNT (sizeof type_info / sizeof type_info[0])

static int type_known(unsigned t) { return t < TYPE_COUNT && type_info[t].name != NULL; }

/* ---- little-endian byte access ------------------------------------------ */

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t rd64(const uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static inline void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline void wr64(uint8_t *p, uint64_t v) { wr32(p, (uint32_t)v); wr32(p + 4, (uint32_t)(v >> 32)); }

static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define WIRE_HOST_LE 1
#endif

/* n floats to/from little-endian binary32; on a little-endian host that is
 * the in-memory layout, so a plain copy. */
static void put_f32s(uint8_t *dst, const float *src, size_t n)
{
#ifdef WIRE_HOST_LE
    memcpy(dst, src, n * 4);
#else
    for (size_t i = 0; i < n; i++) wr32(dst + 4 * i, f2u(src[i]));
#endif
}

static void get_f32s(float *dst, const uint8_t *src, size_t n)
{
#ifdef WIRE_HOST_LE
    memcpy(dst, src, n * 4);
#else
    for (size_t i = 0; i < n; i++) dst[i] = u2f(rd32(src + 4 * i));
#endif
}

/* ---- CRC-32C ------------------------------------------------------------- */

/* crc32c_table[b] = CRC of byte b, reflected polynomial 0x82F63B78. */
static const uint32_t crc32c_table[256] = {
    0x00000000u, 0xF26B8303u, 0xE13B70F7u, 0x1350F3F4u, 0xC79A971Fu, 0x35F1141Cu,
    0x26A1E7E8u, 0xD4CA64EBu, 0x8AD958CFu, 0x78B2DBCCu, 0x6BE22838u, 0x9989AB3Bu,
    0x4D43CFD0u, 0xBF284CD3u, 0xAC78BF27u, 0x5E133C24u, 0x105EC76Fu, 0xE235446Cu,
    0xF165B798u, 0x030E349Bu, 0xD7C45070u, 0x25AFD373u, 0x36FF2087u, 0xC494A384u,
    0x9A879FA0u, 0x68EC1CA3u, 0x7BBCEF57u, 0x89D76C54u, 0x5D1D08BFu, 0xAF768BBCu,
    0xBC267848u, 0x4E4DFB4Bu, 0x20BD8EDEu, 0xD2D60DDDu, 0xC186FE29u, 0x33ED7D2Au,
    0xE72719C1u, 0x154C9AC2u, 0x061C6936u, 0xF477EA35u, 0xAA64D611u, 0x580F5512u,
    0x4B5FA6E6u, 0xB93425E5u, 0x6DFE410Eu, 0x9F95C20Du, 0x8CC531F9u, 0x7EAEB2FAu,
    0x30E349B1u, 0xC288CAB2u, 0xD1D83946u, 0x23B3BA45u, 0xF779DEAEu, 0x05125DADu,
    0x1642AE59u, 0xE4292D5Au, 0xBA3A117Eu, 0x4851927Du, 0x5B016189u, 0xA96AE28Au,
    0x7DA08661u, 0x8FCB0562u, 0x9C9BF696u, 0x6EF07595u, 0x417B1DBCu, 0xB3109EBFu,
    0xA0406D4Bu, 0x522BEE48u, 0x86E18AA3u, 0x748A09A0u, 0x67DAFA54u, 0x95B17957u,
    0xCBA24573u, 0x39C9C670u, 0x2A993584u, 0xD8F2B687u, 0x0C38D26Cu, 0xFE53516Fu,
    0xED03A29Bu, 0x1F682198u, 0x5125DAD3u, 0xA34E59D0u, 0xB01EAA24u, 0x42752927u,
    0x96BF4DCCu, 0x64D4CECFu, 0x77843D3Bu, 0x85EFBE38u, 0xDBFC821Cu, 0x2997011Fu,
    0x3AC7F2EBu, 0xC8AC71E8u, 0x1C661503u, 0xEE0D9600u, 0xFD5D65F4u, 0x0F36E6F7u,
    0x61C69362u, 0x93AD1061u, 0x80FDE395u, 0x72966096u, 0xA65C047Du, 0x5437877Eu,
    0x4767748Au, 0xB50CF789u, 0xEB1FCBADu, 0x197448AEu, 0x0A24BB5Au, 0xF84F3859u,
    0x2C855CB2u, 0xDEEEDFB1u, 0xCDBE2C45u, 0x3FD5AF46u, 0x7198540Du, 0x83F3D70Eu,
    0x90A324FAu, 0x62C8A7F9u, 0xB602C312u, 0x44694011u, 0x5739B3E5u, 0xA55230E6u,
    0xFB410CC2u, 0x092A8FC1u, 0x1A7A7C35u, 0xE811FF36u, 0x3CDB9BDDu, 0xCEB018DEu,
    0xDDE0EB2Au, 0x2F8B6829u, 0x82F63B78u, 0x709DB87Bu, 0x63CD4B8Fu, 0x91A6C88Cu,
    0x456CAC67u, 0xB7072F64u, 0xA457DC90u, 0x563C5F93u, 0x082F63B7u, 0xFA44E0B4u,
    0xE9141340u, 0x1B7F9043u, 0xCFB5F4A8u, 0x3DDE77ABu, 0x2E8E845Fu, 0xDCE5075Cu,
    0x92A8FC17u, 0x60C37F14u, 0x73938CE0u, 0x81F80FE3u, 0x55326B08u, 0xA759E80Bu,
    0xB4091BFFu, 0x466298FCu, 0x1871A4D8u, 0xEA1A27DBu, 0xF94AD42Fu, 0x0B21572Cu,
    0xDFEB33C7u, 0x2D80B0C4u, 0x3ED04330u, 0xCCBBC033u, 0xA24BB5A6u, 0x502036A5u,
    0x4370C551u, 0xB11B4652u, 0x65D122B9u, 0x97BAA1BAu, 0x84EA524Eu, 0x7681D14Du,
    0x2892ED69u, 0xDAF96E6Au, 0xC9A99D9Eu, 0x3BC21E9Du, 0xEF087A76u, 0x1D63F975u,
    0x0E330A81u, 0xFC588982u, 0xB21572C9u, 0x407EF1CAu, 0x532E023Eu, 0xA145813Du,
    0x758FE5D6u, 0x87E466D5u, 0x94B49521u, 0x66DF1622u, 0x38CC2A06u, 0xCAA7A905u,
    0xD9F75AF1u, 0x2B9CD9F2u, 0xFF56BD19u, 0x0D3D3E1Au, 0x1E6DCDEEu, 0xEC064EEDu,
    0xC38D26C4u, 0x31E6A5C7u, 0x22B65633u, 0xD0DDD530u, 0x0417B1DBu, 0xF67C32D8u,
    0xE52CC12Cu, 0x1747422Fu, 0x49547E0Bu, 0xBB3FFD08u, 0xA86F0EFCu, 0x5A048DFFu,
    0x8ECEE914u, 0x7CA56A17u, 0x6FF599E3u, 0x9D9E1AE0u, 0xD3D3E1ABu, 0x21B862A8u,
    0x32E8915Cu, 0xC083125Fu, 0x144976B4u, 0xE622F5B7u, 0xF5720643u, 0x07198540u,
    0x590AB964u, 0xAB613A67u, 0xB831C993u, 0x4A5A4A90u, 0x9E902E7Bu, 0x6CFBAD78u,
    0x7FAB5E8Cu, 0x8DC0DD8Fu, 0xE330A81Au, 0x115B2B19u, 0x020BD8EDu, 0xF0605BEEu,
    0x24AA3F05u, 0xD6C1BC06u, 0xC5914FF2u, 0x37FACCF1u, 0x69E9F0D5u, 0x9B8273D6u,
    0x88D28022u, 0x7AB90321u, 0xAE7367CAu, 0x5C18E4C9u, 0x4F48173Du, 0xBD23943Eu,
    0xF36E6F75u, 0x0105EC76u, 0x12551F82u, 0xE03E9C81u, 0x34F4F86Au, 0xC69F7B69u,
    0xD5CF889Du, 0x27A40B9Eu, 0x79B737BAu, 0x8BDCB4B9u, 0x988C474Du, 0x6AE7C44Eu,
    0xBE2DA0A5u, 0x4C4623A6u, 0x5F16D052u, 0xAD7D5351u,
};

/* The portable path: a byte at a time.  Only builds without SSE4.2 use it
 * for real, so it is kept simple rather than fast. */
uint32_t wire_test_crc32c_sw(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = data;
    crc = ~crc;
    for (size_t i = 0; i < len; i++) crc = crc32c_table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

#ifdef WIRE_HW_CRC
static inline uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8); /* the crc32 instruction consumes the bytes in memory order */
    return v;
}

#ifdef __PCLMUL__
/* crc32 has a 3-cycle latency but issues every cycle, so one stream runs at
 * a third of the speed the unit can do (~4 GB/s here vs ~12).  Three streams
 * over adjacent blocks run in parallel; the first two are then moved past the
 * blocks after them (multiplied by x^(8*bytes) mod P with one carry-less
 * multiply, reduced by crc32) and XORed in.  CRC_K1/K2 are x^(8*CRC_BLOCK-33)
 * and x^(16*CRC_BLOCK-33) mod P, bit-reflected; the -33 absorbs the x^32 of
 * the crc32 reduction and the one-bit shift of a reflected clmul. */
#define CRC_BLOCK 4096
#define CRC_K1 0x82F89C77u
#define CRC_K2 0x54A86326u

static inline uint64_t crc_shift(uint64_t c, uint32_t k)
{
    __m128i t = _mm_clmulepi64_si128(_mm_cvtsi64_si128((long long)c), _mm_cvtsi32_si128((int)k), 0);
    return _mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(t));
}
#endif
#endif

uint32_t wire_crc32c(uint32_t crc, const void *data, size_t len)
{
#ifdef WIRE_HW_CRC
    const uint8_t *p = data;
    uint64_t c = ~crc & 0xFFFFFFFFu;
#ifdef __PCLMUL__
    for (; len >= 3 * CRC_BLOCK; p += 3 * CRC_BLOCK, len -= 3 * CRC_BLOCK) {
        uint64_t c1 = 0, c2 = 0;
        for (size_t i = 0; i < CRC_BLOCK; i += 8) {
            c = _mm_crc32_u64(c, load64(p + i));
            c1 = _mm_crc32_u64(c1, load64(p + CRC_BLOCK + i));
            c2 = _mm_crc32_u64(c2, load64(p + 2 * CRC_BLOCK + i));
        }
        c = crc_shift(c, CRC_K2) ^ crc_shift(c1, CRC_K1) ^ c2;
    }
#endif
    for (; len >= 8; p += 8, len -= 8) c = _mm_crc32_u64(c, load64(p));
    uint32_t c32 = (uint32_t)c;
    for (; len; p++, len--) c32 = _mm_crc32_u8(c32, *p);
    return ~c32;
#else
    return wire_test_crc32c_sw(crc, data, len);
#endif
}

/* ---- fp16 ---------------------------------------------------------------- */

/* IEEE binary16, round to nearest even.  NaNs keep the top 10 payload bits
 * and become quiet, which is what the F16C instruction does, so both paths
 * give the same bits for every input. */
uint16_t wire_test_f32_to_f16_sw(float f)
{
    uint32_t x = f2u(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7FFFFFFFu;
    if (ax >= 0x7F800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7C00 | (ax > 0x7F800000u ? 0x0200 | ((ax >> 13) & 0x3FF) : 0));
    if (ax >= 0x477FF000u) /* >= 65520: halfway past 65504 rounds (to even) to inf */
        return (uint16_t)(sign | 0x7C00);
    if (ax < 0x38800000u) { /* below 2^-14: a half subnormal, units of 2^-24 */
        if (ax <= 0x33000000u) return sign; /* <= 2^-25: rounds to zero (tie to even) */
        uint32_t e = ax >> 23, m = (ax & 0x7FFFFFu) | 0x800000u;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t h = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++; /* may carry into the smallest normal: right */
        return (uint16_t)(sign | h);
    }
    uint32_t h = (ax >> 13) - ((127u - 15u) << 10); /* rebias the exponent */
    uint32_t rem = ax & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++; /* carry into exponent is right */
    return (uint16_t)(sign | h);
}

float wire_test_f16_to_f32_sw(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t e = (h >> 10) & 0x1F, m = h & 0x3FF;
    if (e == 0x1F) return u2f(sign | 0x7F800000u | (m ? 0x400000u | m << 13 : 0));
    if (e == 0) {
        float v = (float)m * 0x1p-24f; /* exact: m < 2^10 */
        return sign ? -v : v;
    }
    return u2f(sign | (e + 112) << 23 | m << 13);
}

uint16_t wire_f32_to_f16(float f)
{
#ifdef WIRE_HW_F16
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
#else
    return wire_test_f32_to_f16_sw(f);
#endif
}

float wire_f16_to_f32(uint16_t h)
{
#ifdef WIRE_HW_F16
    return _cvtsh_ss(h);
#else
    return wire_test_f16_to_f32_sw(h);
#endif
}

static void put_f16s(uint8_t *dst, const float *src, size_t n)
{
    size_t i = 0;
#ifdef WIRE_HW_F16
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(dst + 2 * i), h); /* x86 is little-endian */
    }
#endif
    for (; i < n; i++) wr16(dst + 2 * i, wire_f32_to_f16(src[i]));
}

static void get_f16s(float *dst, const uint8_t *src, size_t n)
{
    size_t i = 0;
#ifdef WIRE_HW_F16
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + 2 * i))));
#endif
    for (; i < n; i++) dst[i] = wire_f16_to_f32(rd16(src + 2 * i));
}

/* ---- I8 ------------------------------------------------------------------ */

/* gcc 12 at -O2 only vectorises loops it can replace without a scalar
 * epilogue, which a row of runtime dim is not; so the I8 loops are written
 * with AVX2 for 8 floats at a time, and the scalar tail (the whole row
 * without AVX2) computes the very same IEEE operations: a correctly rounded
 * divide, a clamp to [-127, 127] on integers and a round to nearest even
 * commute, so every path gives the same bytes. */

/* max |v[j]| as the bits of a non-negative float: integer order is float
 * order there, and inf/NaN compare above every finite value, so one max
 * finds both the scale and any non-finite value. */
static uint32_t i8_maxabs_bits(const float *v, uint32_t dim)
{
    uint32_t j = 0, mx = 0;
#ifdef __AVX2__
    if (dim >= 8) {
        const __m256i abs = _mm256_set1_epi32(0x7FFFFFFF);
        __m256i m = _mm256_setzero_si256();
        for (; j + 8 <= dim; j += 8)
            m = _mm256_max_epu32(m, _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(v + j)), abs));
        __m128i h = _mm_max_epu32(_mm256_castsi256_si128(m), _mm256_extracti128_si256(m, 1));
        h = _mm_max_epu32(h, _mm_shuffle_epi32(h, 0x4E));
        h = _mm_max_epu32(h, _mm_shuffle_epi32(h, 0xB1));
        mx = (uint32_t)_mm_cvtsi128_si32(h);
    }
#endif
    for (; j < dim; j++) {
        uint32_t a = f2u(v[j]) & 0x7FFFFFFFu;
        mx = a > mx ? a : mx;
    }
    return mx;
}

/* q[j] = rint(v[j] / s) clamped to [-127, 127]; s > 0. */
static void i8_quantize(int8_t *q, const float *v, float s, uint32_t dim)
{
    uint32_t j = 0;
#ifdef __AVX2__
    const __m256 vs = _mm256_set1_ps(s), lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
    for (; j + 8 <= dim; j += 8) {
        __m256 x = _mm256_div_ps(_mm256_loadu_ps(v + j), vs);
        x = _mm256_round_ps(_mm256_min_ps(_mm256_max_ps(x, lo), hi), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m256i i = _mm256_cvtps_epi32(x);
        __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
        _mm_storel_epi64((__m128i *)(q + j), _mm_packs_epi16(w, w));
    }
#endif
    for (; j < dim; j++) {
        float t = v[j] / s;
        t = t > 127.0f ? 127.0f : t < -127.0f ? -127.0f : t;
        q[j] = (int8_t)rintf(t);
    }
}

static void i8_dequantize(float *o, const int8_t *q, float s, uint32_t dim)
{
    uint32_t j = 0;
#ifdef __AVX2__
    const __m256 vs = _mm256_set1_ps(s);
    for (; j + 8 <= dim; j += 8) {
        __m256i i = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(q + j)));
        _mm256_storeu_ps(o + j, _mm256_mul_ps(_mm256_cvtepi32_ps(i), vs));
    }
#endif
    for (; j < dim; j++) o[j] = (float)q[j] * s;
}

/* One row: binary32 scale s = max|v|/127 then dim int8 q = rint(v/s).
 * Returns 0, or -1 if the row holds a NaN or infinity (no scale fits). */
static int put_i8_row(uint8_t *dst, const float *v, uint32_t dim)
{
    uint32_t mx = i8_maxabs_bits(v, dim);
    if (mx >= 0x7F800000u) return -1;
    float s = u2f(mx) / 127.0f;
    /* Only rows within 1% of FLT_MAX hit this; their error is then up to s
     * instead of s/2, the price of decoded values never overflowing. */
    if (s > I8_MAX_SCALE) s = I8_MAX_SCALE;
    wr32(dst, f2u(s));
    if (s == 0.0f) /* zero row, or so small that the scale underflows */
        memset(dst + 4, 0, dim);
    else
        i8_quantize((int8_t *)(dst + 4), v, s, dim);
    return 0;
}

/* ---- varints ------------------------------------------------------------- */

/* Keys are the bulk of a PULL_REQ; with hashed 64-bit ids the deltas of
 * 1k-100k sorted keys are 5-8 bytes, so varints of up to 8 bytes (56 bits)
 * are moved as one 64-bit word: the 7-bit groups spread to bytes (encode)
 * or gathered back (decode) with three mask-and-shift steps.  Longer ones,
 * and the last few bytes of a region, take the byte loop. */

static inline uint32_t varint_len(uint64_t x)
{
    uint32_t bits = 64 - (uint32_t)__builtin_clzll(x | 1);
    return (9 * bits + 64) / 64; /* == ceil(bits / 7) for 1..64 */
}

/* Writes x; needs 8 writable bytes at p even when x takes fewer. */
static inline uint8_t *put_varint(uint8_t *p, uint64_t x)
{
    if (x < (1ull << 56)) {
        uint32_t nb = varint_len(x);
        uint64_t y = (x & 0x000000000FFFFFFFull) | (x & 0x00FFFFFFF0000000ull) << 4;
        y = (y & 0x00003FFF00003FFFull) | (y & 0x0FFFC0000FFFC000ull) << 2;
        y = (y & 0x007F007F007F007Full) | (y & 0x3F803F803F803F80ull) << 1;
        y |= 0x8080808080808080ull & ((1ull << (8 * (nb - 1))) - 1); /* continuation bits */
        wr64(p, y);
        return p + nb;
    }
    while (x >= 0x80) {
        *p++ = (uint8_t)(x | 0x80);
        x >>= 7;
    }
    *p++ = (uint8_t)x;
    return p;
}

enum { VARINT_OK, VARINT_TRUNC, VARINT_OVERFLOW, VARINT_NONMINIMAL };

/* Reads one LEB128 varint from [*pp, end).  Rejects what our encoder never
 * writes: more than 64 bits, and a redundant final zero byte, so each
 * message has exactly one encoding. */
static inline int get_varint(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
    const uint8_t *p = *pp;
    if (end - p >= 8) {
        uint64_t w = rd64(p), stop = ~w & 0x8080808080808080ull;
        if (stop) { /* ends within these 8 bytes */
            unsigned t = (unsigned)__builtin_ctzll(stop); /* 8 * (bytes - 1) + 7 */
            if (t > 7 && ((w >> (t - 7)) & 0xFF) == 0) return VARINT_NONMINIMAL;
            uint64_t x = w & (stop ^ (stop - 1)) & 0x7F7F7F7F7F7F7F7Full;
            x = (x & 0x007F007F007F007Full) | (x & 0x7F007F007F007F00ull) >> 1;
            x = (x & 0x00003FFF00003FFFull) | (x & 0x3FFF00003FFF0000ull) >> 2;
            x = (x & 0x000000000FFFFFFFull) | (x & 0x0FFFFFFF00000000ull) >> 4;
            *pp = p + (t >> 3) + 1;
            *out = x;
            return VARINT_OK;
        }
    }
    uint64_t x = 0;
    for (unsigned shift = 0;; shift += 7) {
        if (p == end) return VARINT_TRUNC;
        uint8_t b = *p++;
        if (shift == 63 && b > 1) return VARINT_OVERFLOW; /* 10th byte: 1 bit left, no more bytes */
        x |= (uint64_t)(b & 0x7F) << shift;
        if (b < 0x80) {
            if (b == 0 && shift > 0) return VARINT_NONMINIMAL;
            *pp = p;
            *out = x;
            return VARINT_OK;
        }
    }
}

/* ---- codec --------------------------------------------------------------- */

wire_codec *wire_codec_new(void)
{
    wire_codec *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    /* text is always returned NUL-terminated, even when empty */
    c->text = malloc(64);
    if (!c->text) {
        free(c);
        return NULL;
    }
    c->text_cap = 64;
    return c;
}

void wire_codec_destroy(wire_codec **c)
{
    if (!c || !*c) return;
    free((*c)->buf);
    free((*c)->scratch);
    free((*c)->keys);
    free((*c)->vals);
    free((*c)->text);
    free(*c);
    *c = NULL;
}

/* Below this, ZeroMQ copies the bytes into the message itself (or keeps
 * them inline, under 33 bytes), cheaper than handing a buffer over. */
#define WIRE_ZEROCOPY_MIN 16384

/* Buffers ZeroMQ has finished sending come back here (from its I/O thread)
 * and go to the next codec that hands one over, so zero-copy sends do not
 * allocate once warm.  Process-wide: a message may be freed after the codec
 * that sent it is gone. */
#define WIRE_POOL 8
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static struct { uint8_t *p; size_t cap; } pool[WIRE_POOL];
static int pool_n;

static void recycle(void *data, void *hint)
{
    pthread_mutex_lock(&pool_mu);
    if (pool_n < WIRE_POOL) {
        pool[pool_n].p = data;
        pool[pool_n].cap = (size_t)(uintptr_t)hint;
        pool_n++;
        data = NULL;
    }
    pthread_mutex_unlock(&pool_mu);
    free(data);
}

/* The codec's buffer after its old one went out: the pool's largest. */
static void refill(wire_codec *c)
{
    pthread_mutex_lock(&pool_mu);
    int best = -1;
    for (int i = 0; i < pool_n; i++)
        if (best < 0 || pool[i].cap > pool[best].cap) best = i;
    if (best >= 0) {
        c->buf = pool[best].p;
        c->buf_cap = pool[best].cap;
        pool[best] = pool[--pool_n];
    }
    pthread_mutex_unlock(&pool_mu);
}

int wire_send(void *sock, wire_codec *c, const uint8_t *buf, size_t len, int flags)
{
    if (len < WIRE_ZEROCOPY_MIN || buf != c->buf) return zmq_send(sock, buf, len, flags) < 0 ? -1 : 0;
    zmq_msg_t msg;
    if (zmq_msg_init_data(&msg, c->buf, len, recycle, (void *)(uintptr_t)c->buf_cap)) return -1; /* the codec keeps its buffer */
    c->buf = NULL; /* the message owns it now */
    c->buf_cap = 0;
    refill(c);
    if (zmq_msg_send(&msg, sock, flags) < 0) {
        int e = zmq_errno();
        zmq_msg_close(&msg); /* gives the buffer back */
        errno = e;
        return -1;
    }
    return 0;
}

/* Returns p grown to at least need bytes (or NULL, p untouched, on failure).
 * Grows by at least half again so a slowly rising message size does not
 * realloc every time; never shrinks. */
static void *grow(void *p, size_t *cap, size_t need)
{
    if (need <= *cap) return p;
    size_t ncap = *cap + *cap / 2;
    if (ncap < need) ncap = need;
    void *q = realloc(p, ncap);
    if (!q && ncap > need) q = realloc(p, ncap = need);
    if (q) *cap = ncap;
    return q;
}

#define GROW(c, field, capfield, need, what)                                            \
    do {                                                                                \
        void *q_ = grow((c)->field, &(c)->capfield, (need));                            \
        if (!q_) return fn_fail(FN_ENOMEM, "wire: cannot grow the %s buffer to %zu bytes", \
                                (what), (size_t)(need));                                \
        (c)->field = q_;                                                                \
    } while (0)

/* Bytes of values on the wire; dim <= WIRE_MAX_DIM so this cannot overflow. */
static uint64_t values_bytes(uint32_t n, uint32_t dim, unsigned enc)
{
    uint64_t nd = (uint64_t)n * dim;
    switch (enc) {
    case WIRE_F32: return nd * 4;
    case WIRE_F16: return nd * 2;
    default: return nd + (uint64_t)n * 4; /* I8: scale + dim bytes per row */
    }
}

size_t wire_raw_bound(uint32_t n, uint32_t dim, int has_keys, int has_values,
                      wire_enc enc, uint32_t text_len)
{
    if (dim > WIRE_MAX_DIM) return SIZE_MAX; /* never encodable; keeps the math in range */
    uint64_t b = WIRE_BODY_FIXED + (uint64_t)text_len;
    if (has_keys) b += (uint64_t)n * 10;
    if (has_values) b += values_bytes(n, dim, enc);
    return b > SIZE_MAX ? SIZE_MAX : (size_t)b;
}

void wire_codec_lend(wire_codec *c, int on) { c->lend = on; }

/* ---- encode -------------------------------------------------------------- */

float *wire_values_slot(wire_codec *c, uint32_t n, uint32_t dim)
{
#ifdef WIRE_HOST_LE
    if (dim > WIRE_MAX_DIM) return NULL;
    uint64_t need = WIRE_HEADER_SIZE + WIRE_BODY_FIXED + values_bytes(n, dim, WIRE_F32) + 8;
    if (need > (uint64_t)WIRE_HEADER_SIZE + WIRE_MAX_PAYLOAD) return NULL;
    void *q = grow(c->buf, &c->buf_cap, (size_t)need);
    if (!q) return NULL;
    c->buf = q;
    uint8_t *at = c->buf + WIRE_HEADER_SIZE + WIRE_BODY_FIXED; /* as wire_encode lays a keyless body out */
    return ((uintptr_t)at & 3) ? NULL : (float *)(void *)at;
#else
    (void)c, (void)n, (void)dim;
    return NULL;
#endif
}

int wire_encode(wire_codec *c, wire_msg *m, int try_lz4, const uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (!type_known(m->type)) return fn_fail(FN_EINVAL, "wire: encode: unknown message type %u", m->type);
    const char *tn = type_info[m->type].name;
    int hk = type_info[m->type].keys, hv = type_info[m->type].values;
    if (m->enc > WIRE_I8) return fn_fail(FN_EINVAL, "wire: encode: unknown value encoding %u", m->enc);
    if (m->dim > WIRE_MAX_DIM)
        return fn_fail(FN_EINVAL, "wire: encode: dim %u over the limit of %d", m->dim, WIRE_MAX_DIM);
    uint64_t nd = (uint64_t)m->n * m->dim;
    if (!hk && m->keys) return fn_fail(FN_EINVAL, "wire: encode: %s carries no keys but keys is set", tn);
    if (hk && m->n && !m->keys) return fn_fail(FN_EINVAL, "wire: encode: %s with n=%u has keys NULL", tn, m->n);
    if (!hv && m->values)
        return fn_fail(FN_EINVAL, "wire: encode: %s carries no values but values is set", tn);
    if (hv && nd && !m->values)
        return fn_fail(FN_EINVAL, "wire: encode: %s with n=%u dim=%u has values NULL", tn, m->n, m->dim);
    if (m->text_len && !m->text)
        return fn_fail(FN_EINVAL, "wire: encode: text_len %u with text NULL", m->text_len);

    /* Pass 1 over keys: order, and the exact varint bytes, so the buffer is
     * sized exactly and the size limit checked before writing anything. */
    uint64_t kbytes = 0;
    if (hk && m->n) {
        const uint64_t *k = m->keys;
        kbytes = varint_len(k[0]);
        for (uint32_t i = 1; i < m->n; i++) {
            if (k[i] <= k[i - 1])
                return fn_fail(FN_EINVAL, "wire: encode: key %u (%llu) not greater than key %u (%llu)",
                               i, (unsigned long long)k[i], i - 1, (unsigned long long)k[i - 1]);
            kbytes += varint_len(k[i] - k[i - 1]);
        }
    }
    uint64_t vbytes = hv ? values_bytes(m->n, m->dim, m->enc) : 0;
    uint64_t raw_len = WIRE_BODY_FIXED + kbytes + vbytes + m->text_len;
    if (raw_len > WIRE_MAX_PAYLOAD)
        return fn_fail(FN_EINVAL, "wire: encode: %s payload of %llu bytes over the limit of %u", tn,
                       (unsigned long long)raw_len, WIRE_MAX_PAYLOAD);
    /* values already in place (wire_values_slot) must stay where they are */
    if (c->buf && (const void *)m->values == (const void *)(c->buf + WIRE_HEADER_SIZE + WIRE_BODY_FIXED) &&
        (kbytes || m->text_len || m->enc != WIRE_F32 || WIRE_HEADER_SIZE + raw_len + 8 > c->buf_cap))
        return fn_fail(FN_EINVAL, "wire: encode: %s values in the codec's slot, but the message has keys, text or another encoding", tn);
    GROW(c, buf, buf_cap, WIRE_HEADER_SIZE + raw_len + 8, "encode"); /* + 8: put_varint stores words */

    uint8_t *body = c->buf + WIRE_HEADER_SIZE, *p = body;
    wr16(p, m->table);
    wr16(p + 2, m->dim);
    wr32(p + 4, m->n);
    wr32(p + 8, m->code);
    p[12] = (uint8_t)hk;
    p[13] = (uint8_t)hv;
    wr16(p + 14, 0);
    wr32(p + 16, m->text_len);
    p += WIRE_BODY_FIXED;
    if (hk && m->n) {
        const uint64_t *k = m->keys;
        p = put_varint(p, k[0]);
        for (uint32_t i = 1; i < m->n; i++) p = put_varint(p, k[i] - k[i - 1]);
    }
    if (hv && nd) {
        switch (m->enc) {
        case WIRE_F32:
            if ((const void *)m->values != (const void *)p) put_f32s(p, m->values, nd); /* else written in place */
            break;
        case WIRE_F16: put_f16s(p, m->values, nd); break;
        default:
            for (uint32_t r = 0; r < m->n; r++)
                if (put_i8_row(p + (size_t)r * (4 + m->dim), m->values + (size_t)r * m->dim, m->dim))
                    return fn_fail(FN_EINVAL, "wire: encode: %s row %u has a NaN or infinity, "
                                   "which I8 cannot carry", tn, r);
        }
    } else if (hv && m->enc == WIRE_I8) {
        /* dim == 0: each of the n rows is just a zero scale */
        memset(p, 0, vbytes);
    }
    p += vbytes;
    if (m->text_len) memcpy(p, m->text, m->text_len);

    uint32_t payload_len = (uint32_t)raw_len;
    uint16_t flags = (uint16_t)(m->enc << WIRE_ENC_SHIFT);
    /* Payloads LZ4 cannot shrink (fp32 weights and gradients are mostly
     * noise in their low bits) cost a full compression attempt each: after
     * LZ4_GIVE_UP misses in a row, try only one message in LZ4_RETRY. */
    if (try_lz4 && raw_len > 1 && c->lz4_skip) {
        c->lz4_skip--;
        try_lz4 = 0;
    }
    if (try_lz4 && raw_len > 1) {
        /* A destination one byte short of raw_len makes LZ4 give up (return
         * 0) as soon as the result would not be strictly smaller. */
        GROW(c, scratch, scratch_cap, raw_len - 1, "compression");
        int k = LZ4_compress_default((const char *)body, (char *)c->scratch, (int)raw_len,
                                     (int)raw_len - 1);
        if (k > 0) {
            memcpy(body, c->scratch, (size_t)k);
            payload_len = (uint32_t)k;
            flags |= WIRE_FLAG_LZ4;
            c->lz4_misses = 0;
        } else if (raw_len >= LZ4_WORTH && ++c->lz4_misses >= LZ4_GIVE_UP) {
            c->lz4_misses = 0;
            c->lz4_skip = LZ4_RETRY - 1;
        }
    }

    uint8_t *h = c->buf;
    wr32(h, WIRE_MAGIC);
    h[4] = WIRE_VERSION;
    h[5] = m->type;
    wr16(h + 6, flags);
    wr64(h + 8, m->seq);
    wr32(h + 16, payload_len);
    wr32(h + 20, (uint32_t)raw_len);
    wr32(h + 24, wire_crc32c(0, body, payload_len));
    wr32(h + 28, wire_crc32c(0, h, 28));
    m->wire_bytes = WIRE_HEADER_SIZE + payload_len;
    *out = c->buf;
    *out_len = m->wire_bytes;
    return FN_OK;
}

/* ---- decode -------------------------------------------------------------- */

/* Everything the header alone can tell, in the order that gives the most
 * useful reason: what the bytes are, then whether they arrived intact,
 * then whether their fields make sense. */
static int check_header(const uint8_t *buf, size_t len, wire_msg *m, uint32_t *payload_len,
                        uint32_t *raw_len)
{
    if (len < WIRE_HEADER_SIZE)
        return fn_fail(FN_EBADMSG, "wire: %zu bytes is shorter than the %d-byte header", len,
                       WIRE_HEADER_SIZE);
    uint32_t magic = rd32(buf);
    if (magic != WIRE_MAGIC)
        return fn_fail(FN_EMAGIC, "wire: magic 0x%08x, want 0x%08x", magic, WIRE_MAGIC);
    if (buf[4] != WIRE_VERSION)
        return fn_fail(FN_EVERSION, "wire: version %u, this build speaks %d", buf[4], WIRE_VERSION);
    uint32_t hcrc = wire_crc32c(0, buf, 28), want = rd32(buf + 28);
    if (hcrc != want)
        return fn_fail(FN_ECHECKSUM, "wire: header crc mismatch (got 0x%08x, want 0x%08x)", hcrc, want);
    uint8_t type = buf[5];
    uint16_t flags = rd16(buf + 6);
    uint32_t plen = rd32(buf + 16), rlen = rd32(buf + 20);
    if (plen > WIRE_MAX_PAYLOAD)
        return fn_fail(FN_ETOOBIG, "wire: payload_len %u over the limit of %u", plen, WIRE_MAX_PAYLOAD);
    if (rlen > WIRE_MAX_PAYLOAD)
        return fn_fail(FN_ETOOBIG, "wire: raw_len %u over the limit of %u", rlen, WIRE_MAX_PAYLOAD);
    if (len != (uint64_t)WIRE_HEADER_SIZE + plen)
        return fn_fail(FN_EBADMSG, "wire: message is %zu bytes, header says %llu", len,
                       (unsigned long long)WIRE_HEADER_SIZE + plen);
    if (!type_known(type)) return fn_fail(FN_EBADMSG, "wire: unknown message type %u", type);
    if (flags & ~(WIRE_FLAG_LZ4 | WIRE_ENC_MASK))
        return fn_fail(FN_EBADMSG, "wire: reserved flag bits set (flags 0x%04x)", flags);
    unsigned enc = (flags & WIRE_ENC_MASK) >> WIRE_ENC_SHIFT;
    if (enc > WIRE_I8) return fn_fail(FN_EBADMSG, "wire: unknown value encoding %u", enc);
    if (flags & WIRE_FLAG_LZ4) {
        if ((uint64_t)rlen > (uint64_t)plen * LZ4_MAX_RATIO)
            return fn_fail(FN_EBADMSG, "wire: raw_len %u is more than LZ4 can expand %u bytes to",
                           rlen, plen);
    } else if (rlen != plen) {
        return fn_fail(FN_EBADMSG, "wire: raw_len %u != payload_len %u in an uncompressed message",
                       rlen, plen);
    }
    m->type = type;
    m->enc = (uint8_t)enc;
    m->seq = rd64(buf + 8);
    m->wire_bytes = (uint32_t)len;
    *payload_len = plen;
    *raw_len = rlen;
    return FN_OK;
}

int wire_peek_header(const uint8_t *buf, size_t len, wire_msg *m)
{
    uint32_t plen, rlen;
    memset(m, 0, sizeof *m);
    int rc = check_header(buf, len, m, &plen, &rlen);
    if (rc) memset(m, 0, sizeof *m);
    return rc;
}

static const char *varint_why(int r)
{
    switch (r) {
    case VARINT_TRUNC: return "is truncated";
    case VARINT_OVERFLOW: return "overflows 64 bits (overlong)";
    default: return "is not minimal (ends in a zero byte)";
    }
}

/* The raw payload p[0..raw_len): fixed part, keys, values, text. */
static int decode_body(wire_codec *c, const uint8_t *p, uint32_t raw_len, wire_msg *m)
{
    const char *tn = type_info[m->type].name;
    if (raw_len < WIRE_BODY_FIXED)
        return fn_fail(FN_EBADMSG, "wire: body of %u bytes is shorter than its %d fixed bytes", raw_len,
                       WIRE_BODY_FIXED);
    uint16_t table = rd16(p), dim = rd16(p + 2);
    uint32_t n = rd32(p + 4), code = rd32(p + 8), text_len = rd32(p + 16);
    uint8_t hk = p[12], hv = p[13];
    uint16_t rsv = rd16(p + 14);
    if (dim > WIRE_MAX_DIM) return fn_fail(FN_ETOOBIG, "wire: dim %u over the limit of %d", dim, WIRE_MAX_DIM);
    if (hk > 1) return fn_fail(FN_EBADMSG, "wire: has_keys is %u, not 0 or 1", hk);
    if (hv > 1) return fn_fail(FN_EBADMSG, "wire: has_values is %u, not 0 or 1", hv);
    if (rsv) return fn_fail(FN_EBADMSG, "wire: reserved body field is 0x%04x, not 0", rsv);
    if (hk != type_info[m->type].keys)
        return fn_fail(FN_EBADMSG, "wire: %s must %scarry keys (has_keys=%u)", tn, hk ? "not " : "", hk);
    if (hv != type_info[m->type].values)
        return fn_fail(FN_EBADMSG, "wire: %s must %scarry values (has_values=%u)", tn, hv ? "not " : "", hv);

    /* Carve the body from both ends: text is last, values before it, and
     * whatever is left after the fixed part must be exactly the keys. */
    uint64_t left = raw_len - WIRE_BODY_FIXED;
    if (text_len > left)
        return fn_fail(FN_EBADMSG, "wire: text_len %u runs past the %llu body bytes left", text_len,
                       (unsigned long long)left);
    left -= text_len;
    uint64_t nd = hv ? (uint64_t)n * dim : 0;
    uint64_t vbytes = hv ? values_bytes(n, dim, m->enc) : 0;
    if (vbytes > left)
        return fn_fail(FN_EBADMSG, "wire: %u rows of dim %u need %llu value bytes, body has %llu",
                       n, dim, (unsigned long long)vbytes, (unsigned long long)left);
    left -= vbytes;
    const uint8_t *kp = p + WIRE_BODY_FIXED, *kend = kp + left;

    if (!hk) {
        if (left)
            return fn_fail(FN_EBADMSG, "wire: %llu trailing bytes in a %s body",
                           (unsigned long long)left, tn);
        m->keys = NULL;
    } else if (n == 0) {
        if (left)
            return fn_fail(FN_EBADMSG, "wire: %llu trailing bytes after 0 keys", (unsigned long long)left);
        m->keys = NULL;
    } else {
        if (n > left) /* each varint is at least a byte; also bounds the allocation below */
            return fn_fail(FN_EBADMSG, "wire: %u keys cannot fit in %llu key bytes", n,
                           (unsigned long long)left);
        GROW(c, keys, keys_cap, (size_t)n * sizeof(uint64_t), "keys");
        uint64_t *k = c->keys, prev, d;
        int r = get_varint(&kp, kend, &prev);
        if (r) return fn_fail(FN_EBADMSG, "wire: key 0 varint %s", varint_why(r));
        k[0] = prev;
        for (uint32_t i = 1; i < n; i++) {
            if ((r = get_varint(&kp, kend, &d)))
                return fn_fail(FN_EBADMSG, "wire: key %u delta varint %s", i, varint_why(r));
            if (d == 0) return fn_fail(FN_EBADMSG, "wire: key %u not greater than previous", i);
            if (d > UINT64_MAX - prev)
                return fn_fail(FN_EBADMSG, "wire: key %u overflows 2^64-1 (previous %llu + delta %llu)", i,
                               (unsigned long long)prev, (unsigned long long)d);
            k[i] = prev += d;
        }
        if (kp != kend)
            return fn_fail(FN_EBADMSG, "wire: %td trailing bytes after %u keys", kend - kp, n);
        m->keys = k;
    }

    const uint8_t *vp = kend;
    m->values = NULL;
#ifdef WIRE_HOST_LE
    if (hv && nd && m->enc == WIRE_F32 && c->lend) {
        m->values_le = vp;
    } else
#endif
    if (hv && nd) {
        GROW(c, vals, vals_cap, (size_t)nd * sizeof(float), "values");
        float *v = c->vals;
        switch (m->enc) {
        case WIRE_F32: get_f32s(v, vp, nd); break;
        case WIRE_F16: get_f16s(v, vp, nd); break;
        default:
            for (uint32_t r = 0; r < n; r++) {
                const uint8_t *row = vp + (size_t)r * (4 + dim);
                float s = u2f(rd32(row)), *o = v + (size_t)r * dim;
                /* what the encoder can produce; keeps every decoded value finite */
                if (!(s >= 0.0f && s <= I8_MAX_SCALE))
                    return fn_fail(FN_EBADMSG, "wire: I8 row %u scale %g not in [0, %g]", r, (double)s,
                                   (double)I8_MAX_SCALE);
                i8_dequantize(o, (const int8_t *)(row + 4), s, dim);
            }
        }
        m->values = v;
    } else if (hv && m->enc == WIRE_I8) {
        /* dim == 0: the n scales carry nothing, but must still be sane */
        for (uint32_t r = 0; r < n; r++) {
            float s = u2f(rd32(vp + (size_t)r * 4));
            if (!(s >= 0.0f && s <= I8_MAX_SCALE))
                return fn_fail(FN_EBADMSG, "wire: I8 row %u scale %g not in [0, %g]", r, (double)s,
                               (double)I8_MAX_SCALE);
        }
    }

    GROW(c, text, text_cap, (size_t)text_len + 1, "text");
    memcpy(c->text, vp + vbytes, text_len);
    c->text[text_len] = '\0';
    m->text = c->text;
    m->text_len = text_len;
    m->table = table;
    m->dim = dim;
    m->n = n;
    m->code = code;
    return FN_OK;
}

int wire_decode(wire_codec *c, const uint8_t *buf, size_t len, wire_msg *m)
{
    uint32_t plen = 0, rlen = 0; /* set by check_header; GCC -O2 cannot see it */
    memset(m, 0, sizeof *m);
    int rc = check_header(buf, len, m, &plen, &rlen);
    if (rc) goto fail;
    const uint8_t *payload = buf + WIRE_HEADER_SIZE;
    uint32_t pcrc = wire_crc32c(0, payload, plen), want = rd32(buf + 24);
    if (pcrc != want) {
        rc = fn_fail(FN_ECHECKSUM, "wire: payload crc mismatch (got 0x%08x, want 0x%08x)", pcrc, want);
        goto fail;
    }
    const uint8_t *raw = payload;
    if (rd16(buf + 6) & WIRE_FLAG_LZ4) {
        if (rlen < WIRE_BODY_FIXED) {
            rc = fn_fail(FN_EBADMSG, "wire: raw_len %u is shorter than the %d fixed body bytes", rlen,
                         WIRE_BODY_FIXED);
            goto fail;
        }
        void *q = grow(c->scratch, &c->scratch_cap, rlen);
        if (!q) {
            rc = fn_fail(FN_ENOMEM, "wire: cannot grow the decompression buffer to %u bytes", rlen);
            goto fail;
        }
        c->scratch = q;
        int got = LZ4_decompress_safe((const char *)payload, (char *)c->scratch, (int)plen, (int)rlen);
        if (got < 0) {
            rc = fn_fail(FN_EBADMSG, "wire: LZ4 payload of %u bytes is corrupt (error %d)", plen, got);
            goto fail;
        }
        if ((uint32_t)got != rlen) {
            rc = fn_fail(FN_EBADMSG, "wire: LZ4 payload decompressed to %d bytes, raw_len says %u", got, rlen);
            goto fail;
        }
        raw = c->scratch;
    }
    rc = decode_body(c, raw, rlen, m);
    if (rc) goto fail;
    return FN_OK;
fail:
    memset(m, 0, sizeof *m);
    return rc;
}
