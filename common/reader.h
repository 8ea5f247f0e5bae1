/* common/reader.h — one interface over the input formats.
 *
 * A dataset is what the processes of a job share about an input: its
 * format, path(s) and, for Ali-CCP, the loaded common features.  A reader
 * streams one partition of it into batches.  The worker's training loop,
 * its evaluation and `funnel predict` see only this interface, so a format
 * is added here, not in every caller.
 *
 * Formats: "aliccp" (common/aliccp.h): path is a sample skeleton file,
 * common its common features file, partitions are ranges of lines; "bin"
 * (common/binfmt.h, written by `funnel convert`): path is a directory of
 * part files or one .fbin file, common must be NULL (the features are in
 * the file), partitions are contiguous ranges of examples (so of blocks) —
 * for both, partition p of P holds items [N*p/P, N*(p+1)/P) of N, so a
 * clean text file and its binary copy split the same way among workers —
 * and the files' field list must equal the schema given (refused
 * otherwise: the keys were hashed with it).  A position (reader_tell) is
 * two numbers that reader_seek takes back — what a checkpoint records:
 * (file offset, lines done) for aliccp, (global block, example within it)
 * for bin.  For bin, reader_progress counts examples and the stats count
 * examples as lines (a damaged block is an error, never skipped).  "zipf"
 * (common/zipfstream.h): path is a generator SPEC ("n=...,s=...,seed=..."),
 * not a file; impressions are made on the fly, partitions are ranges of
 * them, positions the next impression's index. */
#ifndef FN_READER_H
#define FN_READER_H

#include <stdint.h>

#include "aliccp.h"
#include "batch.h"
#include "schema.h"

typedef aliccp_stats reader_stats;

typedef struct fn_dataset fn_dataset;
typedef struct fn_reader fn_reader;

/* common: the Ali-CCP common features file (required for aliccp, NULL
 * for bin). */
int dataset_open(fn_dataset **out, const char *format, const char *path, const char *common,
                 const fn_schema *schema, int stop_on_bad);
/* The same, with the Ali-CCP common features' table (common/ctable.h)
 * built into, or reused from, cache_dir (NULL: a private temporary file). */
int dataset_open_cached(fn_dataset **out, const char *format, const char *path, const char *common,
                        const fn_schema *schema, int stop_on_bad, const char *cache_dir);
void dataset_close(fn_dataset **d);
/* One line for logs: what was loaded. */
const char *dataset_describe(const fn_dataset *d);

int reader_open(fn_reader **out, const fn_dataset *d, int part, int nparts);
void reader_close(fn_reader **r);
/* Clears b and fills it with up to max examples; b->n == 0 at the end. */
int reader_next(fn_reader *r, fn_batch *b, int max);
int reader_rewind(fn_reader *r);
double reader_progress(const fn_reader *r);
const reader_stats *reader_get_stats(const fn_reader *r);
void reader_tell(const fn_reader *r, uint64_t pos[2]);
int reader_seek(fn_reader *r, const uint64_t pos[2]);

#endif
