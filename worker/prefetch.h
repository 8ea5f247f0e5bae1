/* worker/prefetch.h — reading and parsing the next batch while the towers
 * run on this one.
 *
 * A thread owns the reader and fills two batches in turn; the training loop
 * takes them in order.  Each batch comes with the reader's position after
 * it (what a checkpoint taken after training on it must record), so the
 * read-ahead never leaks into a checkpoint.  The thread also de-duplicates
 * and sorts each batch's keys for the embedding tables (embed_prepare), so
 * that work is off the training loop's path too.  Nothing about the order
 * of examples changes: results are the same as reading inline. */
#ifndef FN_PREFETCH_H
#define FN_PREFETCH_H

#include <stdint.h>

#include "batch.h"
#include "embed.h"
#include "reader.h"

typedef struct prefetch prefetch;

#define PREFETCH_MAX_TABLES 2

/* Starts reading batches of up to max examples from r (borrowed, used only
 * by the thread until prefetch_stop), each prepared for n_tables embedding
 * tables shaped like shape[0..n_tables-1] (table id, servers, dim, fields). */
int prefetch_start(prefetch **out, fn_reader *r, int max, const embed_table *shape, int n_tables);

/* The next batch (b->n == 0 at the end of the partition), its prepared
 * embedding tables (emb[k] for table k: keys de-duplicated and grouped by
 * server; rows and grads are the caller's to fill) and the reader's position
 * after it.  Both stay valid until released.  The caller holds at most three
 * batches at a time.  After the end marker, every call answers the end
 * marker again until prefetch_rewind.  Returns the reader's error, if it
 * had one. */
int prefetch_next(prefetch *p, const fn_batch **b, embed_table **emb, uint64_t pos[2]);

/* Gives back the oldest batch held (its slot is read into again); the end
 * marker stays held until prefetch_rewind. */
void prefetch_release(prefetch *p);

/* Fraction of the partition read up to the last batch handed out (the
 * reader itself belongs to the thread). */
double prefetch_progress(prefetch *p);

/* After the end: start the partition again (next epoch); releases every
 * batch still held. */
int prefetch_rewind(prefetch *p);

void prefetch_stop(prefetch **p);

#endif
