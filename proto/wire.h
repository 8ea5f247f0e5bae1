/* proto/wire.h — the funnel wire format: framing, encoding, compression, checksums.
 *
 * Every message is a 32-byte header followed by a payload:
 *
 *   off size field
 *     0  4   magic        0x314C4E46 ("FNL1" read little-endian)
 *     4  1   version      WIRE_VERSION
 *     5  1   type         wire_type
 *     6  2   flags        bit 0: payload is LZ4 block-compressed;
 *                         bits 1-2: value encoding (wire_enc)
 *     8  8   seq          sequence number, echoed by the reply
 *    16  4   payload_len  bytes of payload that follow the header, as sent
 *    20  4   raw_len      bytes of the payload once decompressed
 *                         (== payload_len when not compressed)
 *    24  4   payload_crc  CRC-32C of the payload bytes as sent
 *    28  4   header_crc   CRC-32C of header bytes 0..27
 *
 * All integers little-endian, written byte by byte (never a struct memcpy).
 *
 * The raw (decompressed) payload has the same layout for every type:
 *
 *     0  2   table        embedding table id
 *     2  2   dim          floats per value row
 *     4  4   n            number of keys / value rows
 *     8  4   code         PUSH_REP: rows applied; ERROR_REP: fn_err code;
 *                         CTRL_*: operation / status
 *    12  1   has_keys     0/1
 *    13  1   has_values   0/1
 *    14  2   reserved     0
 *    16  4   text_len     bytes of text at the end
 *    20  ..  keys         if has_keys: n keys, strictly increasing: the first
 *                         as an unsigned LEB128 varint, every next one as the
 *                         varint of (key - previous key), which is >= 1
 *        ..  values       if has_values: n rows of dim values in the encoding
 *                         of flags bits 1-2:
 *                           F32: n*dim IEEE-754 binary32
 *                           F16: n*dim IEEE-754 binary16 (round to nearest even)
 *                           I8:  per row a binary32 scale s then dim int8 q,
 *                                value = q * s, s = max|v| / 127
 *        ..  text         text_len bytes (error reason, control argument, JSON)
 *
 * What each type carries:
 *   PULL_REQ   table, dim, n, keys
 *   PULL_REP   table, dim, n, values (row i answers key i of the request)
 *   PUSH_REQ   table, dim, n, keys, values (gradients)
 *   PUSH_REP   table, n, code = rows applied
 *   ERROR_REP  code = fn_err, text = reason
 *   CTRL_REQ   code = operation (wire_ctrl), text = argument
 *   CTRL_REP   code = status (0 ok), text = reply
 *
 * A decoder rejects (returns an fn_err code with a reason in fn_err_msg(),
 * never crashes, never reads out of bounds) anything whose magic, version,
 * type, lengths, checksums, varints, key order, or sizes are wrong, or that
 * has trailing bytes. */
#ifndef FN_WIRE_H
#define FN_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define WIRE_MAGIC 0x314C4E46u
#define WIRE_VERSION 1
#define WIRE_HEADER_SIZE 32
#define WIRE_BODY_FIXED 20
#define WIRE_MAX_PAYLOAD (512u << 20) /* bytes; larger messages are refused */
#define WIRE_MAX_DIM 4096

#define WIRE_FLAG_LZ4 0x1u
#define WIRE_ENC_SHIFT 1
#define WIRE_ENC_MASK 0x6u

typedef enum {
    WIRE_PULL_REQ = 1,
    WIRE_PULL_REP = 2,
    WIRE_PUSH_REQ = 3,
    WIRE_PUSH_REP = 4,
    WIRE_ERROR_REP = 5,
    WIRE_CTRL_REQ = 6,
    WIRE_CTRL_REP = 7,
} wire_type;

typedef enum { WIRE_F32 = 0, WIRE_F16 = 1, WIRE_I8 = 2 } wire_enc;

/* Control operations (CTRL_REQ code). */
typedef enum {
    WIRE_CTRL_PING = 1,     /* reply: empty */
    WIRE_CTRL_STATS = 2,    /* reply text: JSON object of table statistics */
    WIRE_CTRL_EXPORT = 3,   /* text: path to write this server's rows to */
    WIRE_CTRL_SHUTDOWN = 4, /* the server replies, then leaves its loop */
    WIRE_CTRL_CHECKPOINT = 5, /* text: path to write rows and optimizer state to */
    WIRE_CTRL_RESTORE = 6,  /* text: path of a checkpoint shard to load */
} wire_ctrl;

/* A decoded or to-be-encoded message.  On decode, the pointers point into
 * the codec's buffers and stay valid until the next call on that codec. */
typedef struct {
    uint8_t type;          /* wire_type */
    uint8_t enc;           /* wire_enc of values */
    uint64_t seq;
    uint16_t table;
    uint16_t dim;
    uint32_t n;
    uint32_t code;
    const uint64_t *keys;  /* n keys, or NULL */
    const float *values;   /* n*dim floats (decoded to fp32), or NULL */
    const uint8_t *values_le; /* decode by a lending codec (wire_codec_lend): fp32
                              values as n*dim little-endian floats in the decoded
                              buffer, values NULL */
    const char *text;      /* text_len bytes, not NUL-terminated on the wire;
                              on decode the codec adds a NUL after it */
    uint32_t text_len;
    uint32_t wire_bytes;   /* on decode/encode: total bytes on the wire */
} wire_msg;

/* Scratch buffers for encoding or decoding, reused across calls; they grow
 * to the largest message seen and never shrink, so the hot path does not
 * allocate once warm.  One codec per thread; use separate codecs when a
 * decoded message must stay valid while another is encoded. */
typedef struct wire_codec wire_codec;

wire_codec *wire_codec_new(void);
void wire_codec_destroy(wire_codec **c);

/* on: wire_decode of fp32 values on a little-endian host points
 * m->values_le at them in the buffer decoded (valid as long as it is)
 * instead of copying them to m->values; a worker copies pulled rows
 * straight from the received message to its batch. */
void wire_codec_lend(wire_codec *c, int on);

/* Bound on the raw payload bytes of a message with these sizes. */
size_t wire_raw_bound(uint32_t n, uint32_t dim, int has_keys, int has_values,
                      wire_enc enc, uint32_t text_len);

/* Encodes m into the codec's buffer: header + payload, LZ4-compressed when
 * try_lz4 is set and that makes the payload smaller (a codec whose last
 * few large payloads did not shrink tries only one message in 64).  Keys (if any) must be
 * strictly increasing.  On success *out and *out_len describe the bytes to send
 * (valid until the next call on c) and m->wire_bytes is set.
 * Returns FN_OK or FN_EINVAL (unsorted keys, bad sizes) / FN_ENOMEM. */
int wire_encode(wire_codec *c, wire_msg *m, int try_lz4, const uint8_t **out, size_t *out_len);

/* Where the next wire_encode on c puts the fp32 values of a message that
 * carries n rows of dim and no keys (a pull reply): a caller that writes
 * them there and passes this pointer as m->values (enc WIRE_F32) saves
 * copying them (a server gathers its rows straight into the reply).  Valid
 * until the next call on c; NULL when out of memory or on a big-endian host
 * (then values are passed as usual). */
float *wire_values_slot(wire_codec *c, uint32_t n, uint32_t dim);

/* Sends the last wire_encode of c (buf, len = its *out, *out_len) on a
 * ZeroMQ socket with zmq flags `flags`: large messages without a copy (the
 * buffer goes with the message and comes back to a process-wide pool when
 * ZeroMQ is done with it; the codec takes a pooled one for its next
 * encode), small ones copied.  0, or -1 with zmq_errno() set. */
int wire_send(void *sock, wire_codec *c, const uint8_t *buf, size_t len, int flags);

/* Decodes one message of len bytes.  Returns FN_OK and fills m, or an error
 * code with the reason in fn_err_msg(). */
int wire_decode(wire_codec *c, const uint8_t *buf, size_t len, wire_msg *m);

/* Just the header: checks magic, version, header checksum and lengths
 * against len.  Fills type, seq, enc.  Useful to answer with an error that
 * echoes seq even when the payload is bad. */
int wire_peek_header(const uint8_t *buf, size_t len, wire_msg *m);

/* CRC-32C (Castagnoli) of len bytes, continuing from crc (start with 0). */
uint32_t wire_crc32c(uint32_t crc, const void *data, size_t len);

/* fp16 conversions used by the F16 encoding. */
uint16_t wire_f32_to_f16(float f);
float wire_f16_to_f32(uint16_t h);

#endif
