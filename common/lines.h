/* common/lines.h — buffered reading of one byte-range partition of a text
 * file, line by line.
 *
 * Partition p of P covers the lines whose first byte lies in
 * [size*p/P, size*(p+1)/P): a reader starting mid-line skips to the next
 * line start, and a reader reads past its end to finish its last line, so
 * partitions neither overlap nor leave gaps.  Line numbers (for error
 * messages) are exact: the number of lines before the partition is counted
 * only when first asked for, so clean files never pay for it. */
#ifndef FN_LINES_H
#define FN_LINES_H

#include <stddef.h>
#include <stdint.h>

#define LINES_MAX_LEN (64u << 20) /* bytes; longer lines are refused */

typedef struct lines lines;

/* FN_OK or FN_EIO (message names the file). */
int lines_open(lines **out, const char *path, int part, int nparts);
void lines_close(lines **l);

/* Next line (without its '\n' or "\r\n", NUL-terminated, writable until
 * the next call).  Returns 1 with a line, 0 at the end of the partition,
 * or a negative fn_err code (FN_EIO, FN_ETOOBIG) with the reason. */
int lines_next(lines *l, char **line, size_t *len);

/* 1-based line number of the last line returned, within the whole file. */
uint64_t lines_lineno(lines *l);

int lines_rewind(lines *l);

/* The position of the next line (file offset, lines read since the
 * partition start), and back to such a position: a checkpoint's resume
 * point.  lines_seek refuses offsets before the partition (FN_EINVAL). */
void lines_tell(const lines *l, uint64_t *offset, uint64_t *done);
int lines_seek(lines *l, uint64_t offset, uint64_t done);
const char *lines_path(const lines *l);
uint64_t lines_part_bytes(const lines *l);
/* Bytes of the partition consumed so far. */
uint64_t lines_consumed(const lines *l);

#endif
