/* common/lines.h — buffered reading of one partition of a text file, line
 * by line.
 *
 * Partition p of P holds the lines [L*p/P, L*(p+1)/P) of the file's L lines
 * (0-based, integer division): contiguous, neither overlapping nor leaving
 * gaps, of L/P lines each give or take one.  It is the rule of the binary
 * format too (binfmt.h: examples [N*p/P, N*(p+1)/P)), so W workers reading
 * a clean skeleton file (one example per line, as `funnel convert` keeps
 * them) and its binary copy get the same examples in the same order, and
 * their runs the same steps.  (A file with malformed lines differs from its
 * binary copy by them: here they count as lines, there they are gone.)
 * The price: with P > 1, lines_open counts the file's lines first, one
 * memchr pass over the whole file with a handle of its own (~0.2 s per
 * 300 MB from the page cache) that also remembers every 65536th line's
 * offset, so finding the partition's first and last line reads at most
 * 65536 lines more; memory O(L / 65536).  P = 1 reads nothing first.  Line
 * numbers (for error messages) are exact and free: the partition knows how
 * many lines precede it.  (A split by byte ranges needs no counting pass,
 * but its partitions hold unequal line counts — 1,003,765 and 996,235 of a
 * generated 2M-line file, whose later lines have longer sample ids — and
 * its 2-worker runs from text and from bin took different steps, their
 * CVR AUCs 0.004 apart.) */
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
