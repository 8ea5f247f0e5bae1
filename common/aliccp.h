/* common/aliccp.h — the Ali-CCP reader.
 *
 * Format (DESIGN.md): skeleton lines `sample_id,click,buy,md5,feature_count,
 * features`; common lines `md5,feature_count,features`; features are
 * `field\x02feature_id\x03value` items joined by `\x01`.  A skeleton line
 * gets the features of the common line whose md5 it names.
 *
 * The common file is a common-feature table (common/ctable.h), mapped and
 * shared read-only by the readers of a host: a skeleton line's example
 * names its set (fn_batch.set) instead of copying it.  A reader streams one partition of a skeleton
 * file: partition p of P covers its lines [L*p/P, L*(p+1)/P) of L (lines.h;
 * the binary format's rule too), so every line is read by exactly one
 * partition.
 *
 * Bad input: a malformed line is never fatal to the process and never
 * silently lost.  It is counted and, for the first few, logged with file
 * and line number; with stop_on_bad the reader returns FN_EPARSE naming
 * them instead.  Items of fields not in the schema are counted and ignored. */
#ifndef FN_ALICCP_H
#define FN_ALICCP_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "ctable.h"
#include "schema.h"

typedef struct aliccp_reader aliccp_reader;

typedef struct {
    uint64_t lines;          /* lines read (good and bad) */
    uint64_t examples;       /* examples produced */
    uint64_t bad_lines;      /* malformed lines skipped */
    uint64_t unknown_items;  /* feature items of fields outside the schema */
    uint64_t missing_common; /* skeleton lines whose md5 is not in the common file (counted as bad) */
} aliccp_stats;

/* Opens partition `part` of `nparts` of a skeleton file.  common may be NULL
 * (then every line must carry all its features itself; its md5 is ignored). */
int aliccp_reader_open(aliccp_reader **out, const char *path, const fn_ctable *common,
                       const fn_schema *schema, int part, int nparts, int stop_on_bad);
void aliccp_reader_close(aliccp_reader **r);

/* Appends up to max examples to b (which it clears first).  Returns FN_OK
 * with b->n == 0 at the end of the partition; FN_EPARSE (stop_on_bad) or
 * FN_EIO / FN_ENOMEM on error. */
int aliccp_reader_next(aliccp_reader *r, fn_batch *b, int max);

/* Back to the start of the partition (next epoch). */
int aliccp_reader_rewind(aliccp_reader *r);
/* Resume points (see lines_tell / lines_seek). */
void aliccp_reader_tell(const aliccp_reader *r, uint64_t pos[2]);
int aliccp_reader_seek(aliccp_reader *r, const uint64_t pos[2]);

const aliccp_stats *aliccp_reader_stats(const aliccp_reader *r);
/* Fraction of the partition's bytes consumed, in [0, 1]. */
double aliccp_reader_progress(const aliccp_reader *r);
/* Bytes in this partition. */
uint64_t aliccp_reader_bytes(const aliccp_reader *r);

/* Parses a common-features line `md5,feature_count,features` (modified in
 * place) into b's feature arrays (appending) and points *md5 at its md5
 * column.  FN_OK, FN_EPARSE with a reason (no file/line), FN_ENOMEM. */
int aliccp_parse_common(char *line, size_t len, const fn_schema *schema, fn_batch *b, uint64_t *unknown,
                        const char **md5, size_t *md5_len);

/* Parses one features column (len bytes, may be modified in place) into b's
 * feature arrays (appending).  Returns FN_OK with *items set, or FN_EPARSE
 * with a reason (no file/line) in fn_err_msg().  Exposed for tests/fuzzing. */
int aliccp_parse_features(char *s, size_t len, const fn_schema *schema, fn_batch *b,
                          uint32_t *items, uint64_t *unknown);

#endif
