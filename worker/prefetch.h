/* worker/prefetch.h — reading and parsing the next batch while the towers
 * run on this one.
 *
 * A thread owns the reader and fills two batches in turn; the training loop
 * takes them in order.  Each batch comes with the reader's position after
 * it (what a checkpoint taken after training on it must record), so the
 * read-ahead never leaks into a checkpoint.  Nothing about the order of
 * examples changes: results are the same as reading inline. */
#ifndef FN_PREFETCH_H
#define FN_PREFETCH_H

#include <stdint.h>

#include "batch.h"
#include "reader.h"

typedef struct prefetch prefetch;

/* Starts reading batches of up to max examples from r (borrowed, used only
 * by the thread until prefetch_stop). */
int prefetch_start(prefetch **out, fn_reader *r, int max);

/* The next batch (b->n == 0 at the end of the partition) and the reader's
 * position after it.  The batch stays valid until the next call.  Returns
 * the reader's error, if it had one. */
int prefetch_next(prefetch *p, const fn_batch **b, uint64_t pos[2]);

/* Fraction of the partition read up to the last batch handed out (the
 * reader itself belongs to the thread). */
double prefetch_progress(prefetch *p);

/* After the end: start the partition again (next epoch). */
int prefetch_rewind(prefetch *p);

void prefetch_stop(prefetch **p);

#endif
