/* ps/sketch.h — a count-min sketch of how often keys were seen, for feature
 * admission (`--admit-after N`).
 *
 * A fixed block of `depth` x `width` saturating 8-bit counters: memory does
 * not grow with the number of distinct keys, so a server can count a
 * vocabulary far larger than it could hold rows for.  A key's estimate is
 * the minimum of its `depth` counters; it never undercounts, and it
 * overcounts only through collisions.  Increments are conservative (only
 * the counters at the minimum are raised), which cuts that overcount
 * several-fold for skewed (Zipf) streams (Estan & Varghese 2002).
 * Counters saturate at 255, so thresholds above 255 cannot be expressed.
 *
 * Who uses it: ps/table.c, on pushes of keys that have no row yet. */
#ifndef FN_PS_SKETCH_H
#define FN_PS_SKETCH_H

#include <stddef.h>
#include <stdint.h>

#define PS_SKETCH_DEPTH 4
#define PS_SKETCH_MAX_COUNT 255u

typedef struct ps_sketch ps_sketch;

/* A sketch of about `bytes` bytes (rounded down to DEPTH x a power of two,
 * at least 4 KiB); NULL when out of memory. */
ps_sketch *ps_sketch_new(size_t bytes);
void ps_sketch_destroy(ps_sketch **s);

/* Counts one more sighting of key; returns its new estimate. */
uint32_t ps_sketch_add(ps_sketch *s, uint64_t key);

/* The current estimate for key (no change). */
uint32_t ps_sketch_count(const ps_sketch *s, uint64_t key);

/* The counters, for checkpoints: ps_sketch_bytes() bytes at ps_sketch_data(). */
size_t ps_sketch_bytes(const ps_sketch *s);
uint8_t *ps_sketch_data(ps_sketch *s);

#endif
