/* worker/predio.h — the predictions file (DESIGN.md, fixed contract):
 * header `sample_id,pctr,pcvr,pctcvr`, one row per input impression, a
 * column the model does not predict left empty.  Probabilities are written
 * with 9 significant digits, enough to round-trip a float exactly, so the
 * job's own test predictions and `funnel predict` can be compared. */
#ifndef FN_PREDIO_H
#define FN_PREDIO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* p[task] (TASK_CTR, TASK_CVR, TASK_CTCVR) may be NULL: empty column. */
int predio_write(const char *path, const uint64_t *ids, const float *const p[3], size_t n);

/* Streaming form, for predict: open, append rows, close. */
FILE *predio_open(const char *path);
void predio_row(FILE *f, uint64_t id, const float *const p[3], size_t i);
int predio_close(FILE *f, const char *path);

#endif
