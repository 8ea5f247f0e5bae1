/* common/zipfstream.h — a generated stream of impressions whose feature
 * keys are Zipf-distributed over a huge vocabulary: the input of scale
 * tests (`funnel train --format zipf --train SPEC`), made on the fly, never
 * stored, so a job can meet hundreds of millions of distinct keys without
 * a data set of that size on disk.
 *
 * SPEC is a comma list of name=value (all optional):
 *   n=IMPRESSIONS   stream length [1000000]
 *   vocab=V         distinct ids per field [1000000000]
 *   s=S             Zipf exponent of each field's ids, > 1 [1.05]
 *   seed=N          which impressions are drawn [1]
 *   world=N         the hidden model that labels them [1]
 *   ctr=P, cvr=P    base click rate, conversion rate among clicks [0.04, 0.1]
 * Impression i has one id per schema field, id of rank k with probability
 * k^-s / H(vocab, s), drawn by rejection-inversion (Hörmann & Derflinger
 * 1996: O(1) a draw for any vocab), then scrambled into a 64-bit key
 * unique per (field, rank).  Labels follow a logistic model of the keys:
 * every (field, rank) carries hidden click and conversion weights (normal,
 * from a hash of world and key, scaled so the head of the distribution
 * carries the signal), so a model can learn the frequent keys and cannot
 * learn keys it saw once — the regime of real ad logs.
 *
 * Impression i depends only on (seed, world, i): partitions are contiguous
 * ranges of impressions, a position is the next impression's index, and W
 * workers together read exactly the stream one worker would. */
#ifndef FN_ZIPFSTREAM_H
#define FN_ZIPFSTREAM_H

#include <stdint.h>

#include "aliccp.h"
#include "batch.h"
#include "hash.h"
#include "schema.h"

typedef struct {
    uint64_t n, vocab, seed, world;
    double s, ctr, cvr;
} zipf_spec;

/* Parses SPEC; FN_EUSAGE naming the bad item otherwise. */
int zipf_spec_parse(zipf_spec *z, const char *spec);

/* A Zipf(s) sampler over ranks 1..vocab. */
typedef struct {
    double s, h_x1, h_n, sq;
    uint64_t vocab;
} zipf_sampler;
void zipf_sampler_init(zipf_sampler *z, double s, uint64_t vocab);
uint64_t zipf_sample(const zipf_sampler *z, fn_rng *rng);

typedef struct zipf_reader zipf_reader;

int zipf_reader_open(zipf_reader **out, const zipf_spec *spec, const fn_schema *schema, int part, int nparts);
void zipf_reader_close(zipf_reader **r);
int zipf_reader_next(zipf_reader *r, fn_batch *b, int max);
int zipf_reader_rewind(zipf_reader *r);
double zipf_reader_progress(const zipf_reader *r);
const aliccp_stats *zipf_reader_stats(const zipf_reader *r);
void zipf_reader_tell(const zipf_reader *r, uint64_t pos[2]);
int zipf_reader_seek(zipf_reader *r, const uint64_t pos[2]);

/* The key of the id of rank k in field f (also what the tests count). */
static inline uint64_t zipf_key(int field, uint64_t rank)
{
    return fn_mix64(((uint64_t)(field + 1) << 44) ^ rank ^ 0x2545F4914F6CDD1Dull);
}

#endif
