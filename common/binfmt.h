/* common/binfmt.h — the compact binary data format (`.fbin` part files).
 *
 * Written once by `funnel convert` (common/convert.c) through a
 * binfmt_writer, read by `--format bin` (common/reader.c) through a
 * binfmt_set (the part files of a data set, their schema and block index,
 * shared read-only by a process) and binfmt_readers (one partition each).
 * Examples come out exactly as the Ali-CCP reader produced them for
 * convert: same sample ids, labels, keys (already hashed, fn_key(0, field,
 * id)), field indices, values bit for bit, features in the same order.
 *
 * FILE LAYOUT (version 1).  All integers little-endian, written and read
 * byte by byte (put_le32/get_le32 and friends), never a struct memcpy.
 * CRC is CRC-32C (fn_crc32c, starting from 0).
 *
 *   file header, at offset 0, H = 28 + S bytes:
 *     0   u32  magic 0x4E494246 (the bytes "FBIN")
 *     4   u32  version (1)
 *     8   u64  data set id: the same in every part of one conversion
 *     16  u32  part number (0, 1, ... in file-name order)
 *     20  u32  S: bytes of the schema string (1 .. BINFMT_MAX_SCHEMA)
 *     24  S    schema: the field list the keys were hashed with, "f1,f2,...",
 *              exactly as schema_format() writes it (no terminating NUL)
 *     24+S u32 CRC of bytes [0, 24+S)
 *   blocks, back to back from offset H; block b, at the offset the index
 *   gives, is a 24-byte header and its stored payload:
 *     0   u32  magic 0x4B4C4246 ("FBLK")
 *     4   u32  codec: 0 = stored as is, 1 = one LZ4 block (any LZ4 or
 *              LZ4-HC compressor; convert uses LZ4-HC, whose output
 *              decompresses faster)
 *     8   u32  n: examples in the block (>= 1)
 *     12  u32  R: bytes of the raw payload (<= BINFMT_MAX_RAW)
 *     16  u32  P: bytes of the stored payload that follows (= R if codec 0)
 *     20  u32  CRC of header bytes [0, 20) followed by the P stored bytes
 *     24  P    stored payload
 *   index, at index_offset (right after the last block):
 *     0   u32  magic 0x58444946 ("FIDX")
 *     4   u32  B: blocks
 *     8   u64  examples in the file (the sum of the blocks' n)
 *     16  B x { u64 block offset, u32 block's n }   (12 bytes each)
 *     16+12B u32 CRC of the index bytes before it
 *   footer, the last 32 bytes of the file:
 *     0   u64  index_offset
 *     8   u64  index bytes (16 + 12B + 4)
 *     16  u32  flags: bit 0 = last part of its data set; others 0
 *     20  u32  magic 0x444E4546 ("FEND")
 *     24  u32  version (1)
 *     28  u32  CRC of footer bytes [0, 28)
 *   so file size = index_offset + index bytes + 32, blocks are contiguous
 *   (block b ends where block b+1, or the index, starts) and a reader finds
 *   everything from the two ends without scanning.
 *
 * RAW PAYLOAD of a block of n examples: three counts, then four sections
 * (columns), so that like bytes sit together (they compress better and
 * decode in tight loops):
 *     0   u32  H: bytes of the heads section
 *     4   u32  N: new features in the block (the sum of the heads' F)
 *     8   u32  V: stored values (the sum of F over heads without flag bit 2)
 *     12  H    heads, one per example, back to back:
 *              varint  zigzag(sample_id - previous sample_id)  (previous =
 *                      0 for the block's first example; mod 2^64)
 *              u8      flags: bit 0 click, bit 1 buy, bit 2 every value of
 *                      the example's new features is 1.0 (none stored);
 *                      others 0
 *              varint  S: shared features: the example's first S features
 *                      are the previous example's first S (field, key,
 *                      value bits); 0 in a block's first example, <= the
 *                      previous example's feature count
 *              varint  F: new features, following the shared ones (S + F
 *                      <= BINFMT_MAX_FEATURES)
 *     12+H       N x u16  field index of each new feature (< the schema's count)
 *     12+H+2N    N x u64  key of each new feature
 *     12+H+10N   V x f32  value of each new feature whose example stores
 *                          values, IEEE-754 bits as a u32
 *   in example order, so R = 12 + H + 10N + 4V exactly, and every head,
 *   feature and value is used exactly once by the n examples.
 *   varint = LEB128: 7 bits per byte, low first, high bit = more; at most
 *   10 bytes.
 *   Sharing is what makes the format small and fast: impressions of one
 *   request come one after the other and begin with the same common
 *   features, which are then stored (and decompressed) once per block.
 *
 * Why so: blocks carry their own CRC and length, so one bad byte costs one
 * block and is named (file, block, offsets); the index and footer come last
 * so the writer streams (memory independent of the data: one block buffer
 * and 12 bytes of index per block) and a reader splits the data by blocks
 * without reading them.  Readers check each block's CRC before decoding and
 * bound every decode by the payload, so arbitrary bytes never crash them.
 *
 * A DATA SET is a directory of part files `*.fbin` taken in name order
 * (convert writes part-00000.fbin, part-00001.fbin, ...), or one .fbin
 * file.  In a directory every part must carry the same data set id and
 * schema, part numbers 0, 1, ... in order and only the last the last-part
 * flag, so a mix of conversions or a missing part is refused.  The blocks
 * of all parts form one global list, their examples one global sequence.
 * Partition p of P reads the contiguous examples [N*p/P, N*(p+1)/P) of it,
 * i.e. a contiguous range of blocks, of which only the first and last may
 * be shared with the neighbours (each reads its own examples of them):
 * partitions differ by one example at most whatever the block size, as
 * the workers of a synchronous step want (a split by whole blocks gives
 * 6 and 7 blocks of a 13-block file to two workers).  It is the text
 * reader's rule with lines for examples (lines.h), so W workers get the
 * same examples from a clean skeleton file as from its binary copy, and a
 * run from either takes the same steps.  A reader's position
 * is (global block, example within the block): what reader_tell returns
 * and reader_seek takes back; progress counts examples (from the index).
 *
 * Memory of a reader: one stored and one raw block buffer, reused, plus
 * one example's features; of a data set: 12 + 8 bytes per block of index.
 * Neither grows with the data otherwise. */
#ifndef FN_BINFMT_H
#define FN_BINFMT_H

#include <stddef.h>
#include <stdint.h>

#include "aliccp.h"
#include "batch.h"
#include "schema.h"

#define BINFMT_MAGIC 0x4E494246u       /* "FBIN" */
#define BINFMT_BLOCK_MAGIC 0x4B4C4246u /* "FBLK" */
#define BINFMT_INDEX_MAGIC 0x58444946u /* "FIDX" */
#define BINFMT_END_MAGIC 0x444E4546u   /* "FEND" */
#define BINFMT_VERSION 2u
#define BINFMT_CTABLE "common.fct"     /* the data set's common-feature table, beside its parts */
#define BINFMT_HEADER_FIXED 28u        /* file header bytes besides the schema */
#define BINFMT_BLOCK_HEADER 24u
#define BINFMT_FOOTER 32u
#define BINFMT_CODEC_NONE 0u
#define BINFMT_CODEC_LZ4 1u
#define BINFMT_FLAG_CLICK 1u
#define BINFMT_FLAG_BUY 2u
#define BINFMT_FLAG_ONES 4u
#define BINFMT_MAX_SCHEMA (SCHEMA_MAX_FIELDS * (SCHEMA_MAX_NAME + 1))
#define BINFMT_MAX_RAW (256u << 20)       /* bytes of one block's raw payload */
#define BINFMT_MAX_FEATURES (16u << 20)   /* features of one example */
#define BINFMT_DEFAULT_BLOCK (1u << 20)   /* raw bytes at which a writer closes a block */
#define BINFMT_DEFAULT_LEVEL 3            /* LZ4-HC level of convert (fast enough, decodes fastest) */
#define BINFMT_EXT ".fbin"

/* ---- raw payload -> examples --------------------------------------------- */

/* A cursor over one decoded block's raw payload.  It keeps a copy of the
 * last example it produced (what the next one may share) across calls. */
typedef struct {
    const uint8_t *heads, *fields, *keys, *vals;   /* sections (borrowed) */
    size_t h_len, h_at;                            /* heads: bytes, read position */
    uint32_t nnew, new_at, nval, val_at;           /* features and values: count, used */
    uint32_t n, done;                              /* examples in the block, produced */
    uint64_t prev_id;
    uint64_t n_sets;                               /* sets of the data set's table (0: none) */
    fn_batch last;                                 /* the last example produced (owned) */
} binfmt_cursor;

/* FN_OK or FN_ENOMEM.  binfmt_cursor_free releases it. */
int binfmt_cursor_new(binfmt_cursor *c);
void binfmt_cursor_free(binfmt_cursor *c);
/* Points the cursor at a block's raw payload (len bytes, borrowed) of n
 * examples.  FN_OK, or FN_EPARSE if its counts do not add up to len. */
int binfmt_cursor_reset(binfmt_cursor *c, const uint8_t *raw, size_t len, uint32_t n);

/* Appends up to max - b->n of the block's remaining examples to b (without
 * clearing it).  nfields bounds the field indices.  FN_OK, FN_ENOMEM, or
 * FN_EPARSE with the reason (no file or block: the caller adds them) in
 * fn_err_msg(); after an error the cursor must be reset before further
 * use.  A payload with heads, features or values left over after its last
 * example is FN_EPARSE too. */
int binfmt_cursor_decode(binfmt_cursor *c, fn_batch *b, int max, int nfields);

/* Skips k examples without producing them (seeking). */
int binfmt_cursor_skip(binfmt_cursor *c, uint32_t k, int nfields);

/* ---- blocks ------------------------------------------------------------- */

/* Bytes a stored block (header + payload) of a raw payload of raw_len bytes
 * can take: what binfmt_block_encode's dst needs. */
size_t binfmt_block_bound(size_t raw_len);

/* Builds a block of n examples from raw (raw_len bytes) into dst: LZ4
 * (level 0: LZ4_compress_default; 1..12: LZ4-HC at that level) when that is
 * smaller, else stored.  Returns the block's bytes (header included), or 0
 * if raw_len is over BINFMT_MAX_RAW. */
size_t binfmt_block_encode(uint8_t *dst, const uint8_t *raw, size_t raw_len, uint32_t n, int level);

/* Checks one whole stored block (header and payload, `len` bytes: exactly
 * its extent in the file) and decompresses its payload into *raw (grown as
 * needed, *raw_cap updated; caller frees).  Returns FN_OK with *raw_len and
 * *n set, FN_ECHECKSUM, FN_EPARSE or FN_ENOMEM with the reason (no file
 * name) in fn_err_msg().  Never trusts a byte before the CRC matched. */
int binfmt_block_decode(const uint8_t *blk, size_t len, uint8_t **raw, size_t *raw_cap, size_t *raw_len, uint32_t *n);

/* ---- writer: one part file, streamed ----------------------------------- */

typedef struct binfmt_writer binfmt_writer;

typedef struct {
    uint64_t examples, blocks;
    uint64_t raw_bytes;   /* raw payload bytes before compression */
    uint64_t file_bytes;  /* bytes of the finished file */
} binfmt_writer_stats;

/* Creates path.tmp.<pid> and writes the file header.  block_bytes: raw
 * bytes at which a block is closed (0: BINFMT_DEFAULT_BLOCK); level: LZ4
 * level as binfmt_block_encode's.  The final name appears only at
 * binfmt_writer_commit.  Memory: one block's columns and its compressed
 * copy, and 12 bytes of index per block written. */
int binfmt_writer_open(binfmt_writer **out, const char *path, const fn_schema *schema, uint64_t dataset_id,
                       uint32_t part, size_t block_bytes, int level);
/* Appends example i of b. */
int binfmt_writer_add(binfmt_writer *w, const fn_batch *b, int i);
/* Writes the last block, the index and the footer (flag: last part), then
 * flushes, fsyncs and closes the temporary file; frees the buffers. */
int binfmt_writer_finish(binfmt_writer *w, int last);
/* Renames a finished temporary file to its final name and frees w. */
int binfmt_writer_commit(binfmt_writer **w);
/* Removes the temporary file (finished or not) and frees w.  NULL is fine. */
void binfmt_writer_abort(binfmt_writer **w);
const binfmt_writer_stats *binfmt_writer_get_stats(const binfmt_writer *w);

/* ---- data set and readers ----------------------------------------------- */

typedef struct binfmt_set binfmt_set;
typedef struct binfmt_reader binfmt_reader;

/* Opens a directory of part files or one .fbin file: reads and checks
 * every file's header, index and footer, and that the files' schema is
 * `schema` (refused with both lists named otherwise: keys are hashed with
 * the schema, so another one would silently mean other features). */
int binfmt_set_open(binfmt_set **out, const char *path, const fn_schema *schema);
void binfmt_set_close(binfmt_set **s);
size_t binfmt_set_files(const binfmt_set *s);
uint64_t binfmt_set_blocks(const binfmt_set *s);
uint64_t binfmt_set_examples(const binfmt_set *s);
/* Bytes of all part files. */
uint64_t binfmt_set_bytes(const binfmt_set *s);

/* Partition part of nparts: the global examples [N*part/nparts, N*(part+1)/nparts). */
int binfmt_reader_open(binfmt_reader **out, const binfmt_set *s, int part, int nparts);
void binfmt_reader_close(binfmt_reader **r);
/* Clears b and fills it with up to max examples (a batch may span blocks
 * and files); b->n == 0 at the end of the partition.  Errors name the
 * file and block: FN_EIO, FN_ECHECKSUM, FN_EPARSE, FN_ENOMEM. */
int binfmt_reader_next(binfmt_reader *r, fn_batch *b, int max);
int binfmt_reader_rewind(binfmt_reader *r);
/* pos = {global block, example within it} of the next example. */
void binfmt_reader_tell(const binfmt_reader *r, uint64_t pos[2]);
/* Back to a position of this partition (FN_EINVAL outside it); the block
 * is read (and checked) by the next binfmt_reader_next. */
int binfmt_reader_seek(binfmt_reader *r, const uint64_t pos[2]);
/* Fraction of the partition's examples consumed, in [0, 1]. */
double binfmt_reader_progress(const binfmt_reader *r);
/* lines = examples = examples read; nothing is ever skipped. */
const aliccp_stats *binfmt_reader_stats(const binfmt_reader *r);

#endif
