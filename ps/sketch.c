/* ps/sketch.c — see sketch.h.
 *
 * Row i of the sketch indexes with h1 + i*h2 (Kirsch & Mitzenmacher 2006:
 * two hashes are as good as `depth` independent ones here), h1 and h2 the
 * halves of one 128-bit mix of the key.  Width is a power of two so the
 * index is a mask. */
#include "sketch.h"

#include <stdlib.h>

#include "hash.h"

struct ps_sketch {
    size_t width_mask; /* width - 1 */
    size_t bytes;      /* DEPTH * width */
    uint8_t c[];       /* row i at c + i*width */
};

ps_sketch *ps_sketch_new(size_t bytes)
{
    size_t width = 1024;
    while (width * 2 * PS_SKETCH_DEPTH <= bytes) width *= 2;
    ps_sketch *s = calloc(1, sizeof *s + width * PS_SKETCH_DEPTH);
    if (!s) return NULL;
    s->width_mask = width - 1;
    s->bytes = width * PS_SKETCH_DEPTH;
    return s;
}

void ps_sketch_destroy(ps_sketch **s)
{
    free(*s);
    *s = NULL;
}

static inline void sketch_slots(const ps_sketch *s, uint64_t key, size_t at[PS_SKETCH_DEPTH])
{
    uint64_t h1 = fn_mix64(key ^ 0x5BD1E9955BD1E995ull), h2 = fn_mix64(h1) | 1;
    size_t width = s->width_mask + 1;
    for (size_t i = 0; i < PS_SKETCH_DEPTH; i++) at[i] = i * width + (size_t)((h1 + i * h2) & s->width_mask);
}

uint32_t ps_sketch_count(const ps_sketch *s, uint64_t key)
{
    size_t at[PS_SKETCH_DEPTH];
    sketch_slots(s, key, at);
    uint32_t min = PS_SKETCH_MAX_COUNT;
    for (size_t i = 0; i < PS_SKETCH_DEPTH; i++)
        if (s->c[at[i]] < min) min = s->c[at[i]];
    return min;
}

uint32_t ps_sketch_add(ps_sketch *s, uint64_t key)
{
    size_t at[PS_SKETCH_DEPTH];
    sketch_slots(s, key, at);
    uint32_t min = PS_SKETCH_MAX_COUNT;
    for (size_t i = 0; i < PS_SKETCH_DEPTH; i++)
        if (s->c[at[i]] < min) min = s->c[at[i]];
    if (min == PS_SKETCH_MAX_COUNT) return min;
    /* conservative update: raise only the counters that hold the minimum */
    for (size_t i = 0; i < PS_SKETCH_DEPTH; i++)
        if (s->c[at[i]] == min) s->c[at[i]] = (uint8_t)(min + 1);
    return min + 1;
}

size_t ps_sketch_bytes(const ps_sketch *s) { return s->bytes; }
uint8_t *ps_sketch_data(ps_sketch *s) { return s->c; }
