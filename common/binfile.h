/* common/binfile.h — files that outlive their writers.
 *
 * Every binary file funnel writes (exported models, checkpoints) is:
 *   magic u32, version u32, then the body, then a CRC-32C u32 of all bytes
 *   before it; integers little-endian, written with the put/get helpers
 *   below (never a struct memcpy).
 * Writes are atomic: a temporary file beside the target, fsync, rename —
 * a reader sees the old file or the whole new one, never half of one. */
#ifndef FN_BINFILE_H
#define FN_BINFILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* CRC-32C (Castagnoli), continuing from crc (start with 0). */
uint32_t fn_crc32c(uint32_t crc, const void *data, size_t len);

typedef struct {
    FILE *f;
    char *path, *tmp;
    uint32_t crc;
    int failed;
} binfile_w;

/* Opens path.tmp.<pid> and writes magic and version. */
int binfile_create(binfile_w *w, const char *path, uint32_t magic, uint32_t version);
int binfile_write(binfile_w *w, const void *p, size_t n);
/* Trailer CRC, flush, fsync, rename over path.  Frees w's resources. */
int binfile_commit(binfile_w *w);
/* Removes the temporary file.  Frees w's resources. */
void binfile_abort(binfile_w *w);

/* Reads a whole file, checks size, magic, version (<= max_version) and
 * CRC.  On success *body and *body_len are what follows magic and version
 * (caller frees *body) and *version is set.  Errors name the file. */
int binfile_load(const char *path, uint32_t magic, uint32_t max_version, uint8_t **body,
                 size_t *body_len, uint32_t *version);

static inline void put_le32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24); }
static inline void put_le64(uint8_t *p, uint64_t v) { put_le32(p, (uint32_t)v); put_le32(p + 4, (uint32_t)(v >> 32)); }
static inline uint32_t get_le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static inline uint64_t get_le64(const uint8_t *p) { return get_le32(p) | (uint64_t)get_le32(p + 4) << 32; }
static inline void put_f32(uint8_t *p, float f) { uint32_t u; memcpy(&u, &f, 4); put_le32(p, u); }
static inline float get_f32(const uint8_t *p) { uint32_t u = get_le32(p); float f; memcpy(&f, &u, 4); return f; }

/* Checks a file's magic, version and CRC by streaming it (constant
 * memory, for verifying large checkpoint shards before use). */
int binfile_verify(const char *path, uint32_t magic, uint32_t max_version);

/* A bounds-checked reader over a loaded body. */
typedef struct { const uint8_t *p; size_t len, at; int bad; } binfile_r;
static inline const uint8_t *binfile_take(binfile_r *r, size_t n)
{
    if (r->bad || n > r->len - r->at) { r->bad = 1; return NULL; }
    const uint8_t *q = r->p + r->at;
    r->at += n;
    return q;
}
static inline uint32_t binfile_u32(binfile_r *r) { const uint8_t *q = binfile_take(r, 4); return q ? get_le32(q) : 0; }
static inline uint64_t binfile_u64(binfile_r *r) { const uint8_t *q = binfile_take(r, 8); return q ? get_le64(q) : 0; }
static inline float binfile_f32(binfile_r *r) { const uint8_t *q = binfile_take(r, 4); return q ? get_f32(q) : 0; }

#endif
