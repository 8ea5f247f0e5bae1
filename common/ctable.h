/* common/ctable.h — the common-feature table: every common-feature set of
 * an Ali-CCP data set, stored once, memory-mapped, shared.
 *
 * Real Ali-CCP impressions carry ~880 feature ids, ~860 of them the
 * request's common features (long behaviour fields), shared by ~58
 * impressions per md5.  Readers therefore never copy a set into the
 * impressions that use it: an example names its set (fn_batch.set) and the
 * worker pools each distinct set of a batch once (worker/embed.c).  The
 * sets live in one file, built once from `common_features_*.csv` (by
 * `funnel convert`, which puts it beside the part files, or by a text run,
 * into its cache directory) and mapped read-only by every process that
 * reads the data, so workers on one host share one copy in the page cache
 * and none holds a private table.
 *
 * FILE LAYOUT (`.fct`, version 1).  Integers little-endian; the sections
 * are arrays used in place (mapped), each starting on a 64-byte boundary.
 *   header, 4096 bytes at offset 0:
 *     0   u32  magic 0x54464346 ("FCFT")
 *     4   u32  version (1)
 *     8   u64  n_sets       common-feature sets
 *     16  u64  n_entries    (field, key, value) entries over all sets
 *     24  u64  n_keys       distinct table-0 keys (the key dictionary)
 *     32  u64  data set id  (`convert`: the id of its part files; 0 else)
 *     40  u64  source bytes, 48 u64 source mtime (ns): the text it came from
 *     56  u64  lines, 64 u64 bad lines, 72 u64 unknown items of the source
 *     80  5 x {u64 offset, u64 bytes, u32 CRC-32C, u32 0}: the sections
 *         md5, off, keys, ent, field (below), 24 bytes each
 *     200 u32  S: bytes of the schema string; 204 S bytes: the field list
 *         the keys were hashed with, as schema_format() writes it
 *     4092 u32 CRC-32C of header bytes [0, 4092)
 *   sections:
 *     md5   u64[n_sets]      fn_hash64 of each set's md5 string
 *     off   u64[n_sets + 1]  set s owns entries [off[s], off[s+1])
 *     keys  u64[n_keys]      the table-0 key (fn_key(0, field, id)) of a kid
 *     ent   {u32 kid, f32 value}[n_entries]   in the source line's order
 *     field u8[n_entries]    the entry's field index in the schema
 * Opening checks the header, every section's bounds and CRC, and that
 * offsets rise to n_entries, every kid < n_keys, every field < the
 * schema's count, so that no byte of a damaged file is ever trusted. */
#ifndef FN_CTABLE_H
#define FN_CTABLE_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "keymap.h"
#include "schema.h"

#define CTABLE_MAGIC 0x54464346u /* "FCFT" */
#define CTABLE_VERSION 1u
#define CTABLE_HEADER 4096u
#define CTABLE_EXT ".fct"
#define CTABLE_NONE UINT32_MAX   /* fn_batch.set of an example without a set */

typedef struct {
    uint32_t kid;   /* index into keys */
    float val;
} ctable_ent;

typedef struct fn_ctable_s {
    uint64_t n_sets, n_entries, n_keys, dataset_id;
    uint64_t src_bytes, src_mtime_ns, lines, bad_lines, unknown_items;
    const uint64_t *md5, *off, *keys;
    const ctable_ent *ent;
    const uint8_t *field;
    keymap index;            /* md5 hash -> set (private, ~16 bytes per set) */
    void *map;
    size_t map_len;
    char path[4096];
} fn_ctable;

/* Builds the table of a common-features text file into out_path (written
 * under a temporary name, fsync'ed, renamed): malformed lines are counted,
 * the first ten logged as FILE:LINE (stop_on_bad: FN_EPARSE naming the
 * first).  Streams: memory is the key dictionary and 16 bytes per set. */
int ctable_build(const char *common_path, const fn_schema *schema, int stop_on_bad, uint64_t dataset_id,
                 const char *out_path);

/* Maps and checks a table file; schema must be the one it was built with. */
int ctable_open(fn_ctable **out, const char *path, const fn_schema *schema);
void ctable_close(fn_ctable **t);

/* The table of a common-features text file, through a cache directory:
 * cache_dir/NAME-HASH.fct, HASH naming the file (path, size, mtime) and
 * the schema; built by the first process that needs it (an flock
 * serialises the processes of a host, or of a shared file system), reused
 * by the others and by later runs.  cache_dir NULL: built into $TMPDIR
 * (or /tmp), mapped and unlinked at once (one process only). */
int ctable_from_text(fn_ctable **out, const char *common_path, const fn_schema *schema, int stop_on_bad,
                     const char *cache_dir);

/* The set of an md5 string, or CTABLE_NONE. */
uint32_t ctable_find(const fn_ctable *t, const char *md5, size_t len);
uint64_t ctable_md5_hash(const char *md5, size_t len);

/* dst = src with every example's set copied in before its own features
 * (the per-impression layout: what the tests compare against).  dst's
 * capacity must hold src's examples.  FN_OK, FN_EINVAL, FN_ENOMEM. */
int ctable_flatten(const fn_batch *src, fn_batch *dst);

/* Bytes of the mapped file; bytes of private memory (the md5 index). */
size_t ctable_file_bytes(const fn_ctable *t);
size_t ctable_private_bytes(const fn_ctable *t);

#endif
