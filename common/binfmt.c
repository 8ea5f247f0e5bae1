/* common/binfmt.c — see binfmt.h for the format, byte by byte. */
#include "binfmt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lz4.h>
#include <lz4hc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "binfile.h"
#include "ctable.h"
#include "fn_error.h"

/* ---- examples <-> raw payload ------------------------------------------- */

static inline size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t k = 0;
    while (v >= 0x80) {
        p[k++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[k++] = (uint8_t)v;
    return k;
}

/* 0 if the varint is cut off by end or longer than 10 bytes. */
static inline int get_varint(const uint8_t *p, const uint8_t *end, uint64_t *v, size_t *used)
{
    uint64_t x = 0;
    for (size_t k = 0; k < 10 && p + k < end; k++) {
        uint8_t c = p[k];
        x |= (uint64_t)(c & 0x7F) << (7 * k);
        if (!(c & 0x80)) {
            if (k == 9 && c > 1) return 0; /* bits past 64 */
            *v = x;
            *used = k + 1;
            return 1;
        }
    }
    return 0;
}

static inline uint64_t zigzag(uint64_t d) { return (d << 1) ^ (0 - (d >> 63)); }
static inline uint64_t unzigzag(uint64_t z) { return (z >> 1) ^ (0 - (z & 1)); }

static inline uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

#define ONE_BITS 0x3F800000u /* 1.0f */
#define RAW_COUNTS 12u       /* H, N, V before the sections */

/* ---- raw payload -> examples --------------------------------------------- */

int binfmt_cursor_new(binfmt_cursor *c)
{
    memset(c, 0, sizeof *c);
    return batch_init(&c->last, 1, 64);
}

void binfmt_cursor_free(binfmt_cursor *c)
{
    batch_free(&c->last);
    memset(c, 0, sizeof *c);
}

int binfmt_cursor_reset(binfmt_cursor *c, const uint8_t *raw, size_t len, uint32_t n)
{
    c->n = c->done = 0;
    c->h_len = c->h_at = 0;
    c->nnew = c->new_at = c->nval = c->val_at = 0;
    c->prev_id = 0;
    batch_clear(&c->last);
    if (len < RAW_COUNTS) return fn_fail(FN_EPARSE, "raw payload of %zu bytes, shorter than its counts", len);
    uint64_t h = get_le32(raw), nn = get_le32(raw + 4), nv = get_le32(raw + 8);
    if (nv > nn || RAW_COUNTS + h + 10 * nn + 4 * nv != (uint64_t)len)
        return fn_fail(FN_EPARSE, "section sizes (heads %llu bytes, %llu new features, %llu values) do not add up to the %zu raw bytes",
                       (unsigned long long)h, (unsigned long long)nn, (unsigned long long)nv, len);
    c->heads = raw + RAW_COUNTS;
    c->fields = c->heads + h;
    c->keys = c->fields + 2 * nn;
    c->vals = c->keys + 8 * nn;
    c->h_len = (size_t)h;
    c->nnew = (uint32_t)nn;
    c->nval = (uint32_t)nv;
    c->n = n;
    return FN_OK;
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define BINFMT_HOST_LE 1
#endif

/* n little-endian u16 / u64 / binary32 from src; on a little-endian host
 * that is the in-memory layout, so a plain copy. */
static inline void get_u16s(uint16_t *dst, const uint8_t *src, size_t n)
{
#ifdef BINFMT_HOST_LE
    memcpy(dst, src, n * 2);
#else
    for (size_t j = 0; j < n; j++) dst[j] = (uint16_t)(src[2 * j] | src[2 * j + 1] << 8);
#endif
}

static inline void get_u64s(uint64_t *dst, const uint8_t *src, size_t n)
{
#ifdef BINFMT_HOST_LE
    memcpy(dst, src, n * 8);
#else
    for (size_t j = 0; j < n; j++) dst[j] = get_le64(src + 8 * j);
#endif
}

static inline void get_f32s(float *dst, const uint8_t *src, size_t n)
{
#ifdef BINFMT_HOST_LE
    memcpy(dst, src, n * 4);
#else
    for (size_t j = 0; j < n; j++) dst[j] = get_f32(src + 4 * j);
#endif
}

/* Decodes example c->done into b (appending), its shared features taken
 * from c->last (from_last) or from b's last example; sn: how many the
 * previous example has.  On error b's counts and c are unchanged. */
static inline int decode_one(binfmt_cursor *c, fn_batch *b, int from_last, size_t sn, int nfields)
{
    const uint8_t *p = c->heads + c->h_at, *end = c->heads + c->h_len;
    uint64_t z, sh, nw, gs;
    unsigned fl;
    size_t u;
    if (end - p >= 5 && !((p[0] | p[2] | p[3]) & 0x80)) {
        /* the usual head: four one-byte fields, then the set */
        z = p[0];
        fl = p[1];
        sh = p[2];
        nw = p[3];
        p += 4;
    } else {
        if (!get_varint(p, end, &z, &u)) return fn_fail(FN_EPARSE, "example %u: sample id cut off or malformed", c->done);
        p += u;
        if (p >= end) return fn_fail(FN_EPARSE, "example %u: flags cut off", c->done);
        fl = *p++;
        if (!get_varint(p, end, &sh, &u)) return fn_fail(FN_EPARSE, "example %u: shared feature count cut off or malformed", c->done);
        p += u;
        if (!get_varint(p, end, &nw, &u)) return fn_fail(FN_EPARSE, "example %u: feature count cut off or malformed", c->done);
        p += u;
    }
    if (!get_varint(p, end, &gs, &u)) return fn_fail(FN_EPARSE, "example %u: common-feature set cut off or malformed", c->done);
    p += u;
    if (gs > c->n_sets)
        return fn_fail(FN_EPARSE, "example %u names common-feature set %llu, the data set's table has %llu%s", c->done,
                       (unsigned long long)(gs - 1), (unsigned long long)c->n_sets, c->n_sets ? "" : " (no " BINFMT_CTABLE " beside the part files)");
    if (fl & ~(BINFMT_FLAG_CLICK | BINFMT_FLAG_BUY | BINFMT_FLAG_ONES)) return fn_fail(FN_EPARSE, "example %u: unknown flags 0x%02x", c->done, fl);
    if (sh > sn) return fn_fail(FN_EPARSE, "example %u shares %llu features with the previous example, which has %zu", c->done, (unsigned long long)sh, sn);
    if (nw > BINFMT_MAX_FEATURES - sh)
        return fn_fail(FN_EPARSE, "example %u: %llu features, over the limit of %u", c->done, (unsigned long long)(sh + nw), BINFMT_MAX_FEATURES);
    if (nw > c->nnew - c->new_at)
        return fn_fail(FN_EPARSE, "example %u: %llu new features, the block has %u left", c->done, (unsigned long long)nw, c->nnew - c->new_at);
    int ones = fl & BINFMT_FLAG_ONES;
    if (!ones && nw > c->nval - c->val_at)
        return fn_fail(FN_EPARSE, "example %u: %llu values, the block has %u left", c->done, (unsigned long long)nw, c->nval - c->val_at);
    size_t nf = (size_t)nw, ns = (size_t)sh;
    if (b->nf + ns + nf > b->fcap && batch_reserve_features(b, ns + nf)) return fn_fail(FN_ENOMEM, "out of memory");
    size_t o = b->nf;
    if (ns) {
        /* after the reserve, which may move b's arrays.  Skipping decodes
         * c->last onto itself: then the shared features are in place; else
         * source and destination do not overlap. */
        const fn_batch *src = from_last ? &c->last : b;
        size_t a = from_last ? 0 : b->off[b->n - 1];
        if (src != b || a != o) {
            memcpy(b->field + o, src->field + a, ns * sizeof *b->field);
            memcpy(b->key + o, src->key + a, ns * sizeof *b->key);
            memcpy(b->val + o, src->val + a, ns * sizeof *b->val);
        }
        o += ns;
    }
    uint16_t *field = b->field + o;
    get_u16s(field, c->fields + 2 * (size_t)c->new_at, nf);
    unsigned fmax = 0;
    for (size_t j = 0; j < nf; j++) fmax = field[j] > fmax ? field[j] : fmax;
    if (fmax >= (unsigned)nfields) {
        for (size_t j = 0; j < nf; j++)
            if (field[j] >= nfields)
                return fn_fail(FN_EPARSE, "example %u: feature %zu has field index %u, the schema has %d fields", c->done, ns + j, field[j], nfields);
    }
    get_u64s(b->key + o, c->keys + 8 * (size_t)c->new_at, nf);
    float *val = b->val + o;
    if (ones) {
        for (size_t j = 0; j < nf; j++) val[j] = 1.0f;
    } else {
        get_f32s(val, c->vals + 4 * (size_t)c->val_at, nf);
        c->val_at += (uint32_t)nf;
    }
    c->new_at += (uint32_t)nf;
    int i = b->n;
    c->prev_id += unzigzag(z);
    b->sample_id[i] = c->prev_id;
    b->click[i] = (float)(fl & BINFMT_FLAG_CLICK);
    b->buy[i] = (float)((fl & BINFMT_FLAG_BUY) >> 1);
    b->set[i] = gs ? (uint32_t)(gs - 1) : CTABLE_NONE;
    b->nf = o + nf;
    b->n = i + 1;
    b->off[i + 1] = b->nf;
    c->h_at = (size_t)(p - c->heads);
    c->done++;
    return FN_OK;
}

static int check_end(const binfmt_cursor *c)
{
    if (c->done == c->n && (c->h_at != c->h_len || c->new_at != c->nnew || c->val_at != c->nval))
        return fn_fail(FN_EPARSE, "left over after the block's %u examples: %zu head bytes, %u features, %u values", c->n,
                       c->h_len - c->h_at, c->nnew - c->new_at, c->nval - c->val_at);
    return FN_OK;
}

/* Keeps a copy of b's last example in c->last. */
static int keep_last(binfmt_cursor *c, const fn_batch *b)
{
    size_t a = b->off[b->n - 1], nf = b->nf - a;
    batch_clear(&c->last);
    if (batch_reserve_features(&c->last, nf)) return fn_fail(FN_ENOMEM, "out of memory");
    memcpy(c->last.field, b->field + a, nf * sizeof *b->field);
    memcpy(c->last.key, b->key + a, nf * sizeof *b->key);
    memcpy(c->last.val, b->val + a, nf * sizeof *b->val);
    c->last.nf = nf;
    c->last.n = 1;
    c->last.off[1] = nf;
    return FN_OK;
}

int binfmt_cursor_decode(binfmt_cursor *c, fn_batch *b, int max, int nfields)
{
    int first = b->n;
    while (b->n < max && c->done < c->n) {
        /* the example before: in b once this call produced one, else kept */
        int from_last = b->n == first;
        size_t sn = from_last ? (c->done ? c->last.nf : 0) : b->nf - b->off[b->n - 1];
        int rc = decode_one(c, b, from_last, sn, nfields);
        if (rc) return rc;
    }
    if (b->n > first && c->done < c->n && keep_last(c, b)) return FN_ENOMEM;
    return check_end(c);
}

int binfmt_cursor_skip(binfmt_cursor *c, uint32_t k, int nfields)
{
    for (uint32_t s = 0; s < k && c->done < c->n; s++) {
        size_t sn = c->done ? c->last.nf : 0;
        batch_clear(&c->last); /* the arrays keep their contents: shared features stay in place */
        int rc = decode_one(c, &c->last, 1, sn, nfields);
        if (rc) return rc;
    }
    return check_end(c);
}

/* ---- blocks ------------------------------------------------------------- */

size_t binfmt_block_bound(size_t raw_len)
{
    size_t lz = raw_len <= (size_t)LZ4_MAX_INPUT_SIZE ? (size_t)LZ4_compressBound((int)raw_len) : raw_len;
    return BINFMT_BLOCK_HEADER + (lz > raw_len ? lz : raw_len);
}

size_t binfmt_block_encode(uint8_t *dst, const uint8_t *raw, size_t raw_len, uint32_t n, int level)
{
    if (raw_len > BINFMT_MAX_RAW) return 0;
    uint8_t *pay = dst + BINFMT_BLOCK_HEADER;
    /* room for one byte less than raw_len: LZ4 gives up when it cannot win */
    int k = 0;
    if (raw_len > 1)
        k = level > 0 ? LZ4_compress_HC((const char *)raw, (char *)pay, (int)raw_len, (int)raw_len - 1, level)
                      : LZ4_compress_default((const char *)raw, (char *)pay, (int)raw_len, (int)raw_len - 1);
    uint32_t codec = BINFMT_CODEC_LZ4, stored = (uint32_t)k;
    if (k <= 0) {
        memcpy(pay, raw, raw_len);
        codec = BINFMT_CODEC_NONE;
        stored = (uint32_t)raw_len;
    }
    put_le32(dst, BINFMT_BLOCK_MAGIC);
    put_le32(dst + 4, codec);
    put_le32(dst + 8, n);
    put_le32(dst + 12, (uint32_t)raw_len);
    put_le32(dst + 16, stored);
    put_le32(dst + 20, fn_crc32c(fn_crc32c(0, dst, 20), pay, stored));
    return BINFMT_BLOCK_HEADER + stored;
}

int binfmt_block_decode(const uint8_t *blk, size_t len, uint8_t **raw, size_t *raw_cap, size_t *raw_len, uint32_t *n)
{
    if (len < BINFMT_BLOCK_HEADER) return fn_fail(FN_EPARSE, "%zu bytes, shorter than a block header", len);
    uint32_t crc = fn_crc32c(fn_crc32c(0, blk, 20), blk + BINFMT_BLOCK_HEADER, len - BINFMT_BLOCK_HEADER);
    if (crc != get_le32(blk + 20)) return fn_fail(FN_ECHECKSUM, "checksum mismatch: the block is corrupt");
    uint32_t magic = get_le32(blk), codec = get_le32(blk + 4), cnt = get_le32(blk + 8), rlen = get_le32(blk + 12),
             plen = get_le32(blk + 16);
    if (magic != BINFMT_BLOCK_MAGIC) return fn_fail(FN_EPARSE, "no block magic");
    if (plen != len - BINFMT_BLOCK_HEADER) return fn_fail(FN_EPARSE, "payload of %u bytes in a block extent of %zu", plen, len);
    if (cnt == 0) return fn_fail(FN_EPARSE, "block of 0 examples");
    if (rlen > BINFMT_MAX_RAW) return fn_fail(FN_EPARSE, "raw payload of %u bytes, over the limit of %u", rlen, BINFMT_MAX_RAW);
    if (codec == BINFMT_CODEC_NONE && rlen != plen) return fn_fail(FN_EPARSE, "stored block with raw %u != stored %u bytes", rlen, plen);
    if (codec != BINFMT_CODEC_NONE && codec != BINFMT_CODEC_LZ4) return fn_fail(FN_EPARSE, "unknown codec %u", codec);
    if (*raw_cap < rlen || !*raw) {
        size_t cap = rlen ? rlen : 1;
        uint8_t *p = realloc(*raw, cap);
        if (!p) return fn_fail(FN_ENOMEM, "out of memory (%u bytes)", rlen);
        *raw = p;
        *raw_cap = cap;
    }
    if (codec == BINFMT_CODEC_NONE) {
        memcpy(*raw, blk + BINFMT_BLOCK_HEADER, rlen);
    } else {
        int got = LZ4_decompress_safe((const char *)blk + BINFMT_BLOCK_HEADER, (char *)*raw, (int)plen, (int)rlen);
        if (got != (int)rlen) return fn_fail(FN_EPARSE, "LZ4 payload does not decompress to its %u raw bytes", rlen);
    }
    *raw_len = rlen;
    *n = cnt;
    return FN_OK;
}

/* ---- writer ------------------------------------------------------------- */

/* A growable byte buffer (a column of the open block). */
typedef struct { uint8_t *p; size_t len, cap; } wbuf;

static int wbuf_room(wbuf *b, size_t more)
{
    if (b->len + more <= b->cap) return FN_OK;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more) cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) return FN_ENOMEM;
    b->p = p;
    b->cap = cap;
    return FN_OK;
}

struct binfmt_writer {
    FILE *f;
    char *path, *tmp;
    size_t block_bytes;
    int level;
    wbuf heads, fields, keys, vals;  /* the open block's sections */
    uint32_t block_n;                /* examples in the open block */
    uint64_t prev_id;
    fn_batch prev;                   /* the open block's last example (what the next may share) */
    uint8_t *raw, *out;              /* the block assembled; compressed */
    size_t raw_cap, out_cap;
    uint64_t *idx_off;               /* index so far: offset and examples of each block */
    uint32_t *idx_n;
    size_t idx_cap;
    uint64_t at;                     /* bytes written */
    int finished;
    binfmt_writer_stats stats;
};

static int w_write(binfmt_writer *w, const void *p, size_t n)
{
    if (n && fwrite(p, 1, n, w->f) != n) return fn_fail(FN_EIO, "%s: write failed: %s", w->tmp, strerror(errno));
    w->at += n;
    return FN_OK;
}

static void w_free_buffers(binfmt_writer *w)
{
    wbuf *cols[4] = {&w->heads, &w->fields, &w->keys, &w->vals};
    for (int k = 0; k < 4; k++) { free(cols[k]->p); memset(cols[k], 0, sizeof *cols[k]); }
    free(w->raw); free(w->out); free(w->idx_off); free(w->idx_n);
    w->raw = w->out = NULL;
    w->idx_off = NULL;
    w->idx_n = NULL;
    w->raw_cap = w->out_cap = w->idx_cap = 0;
    batch_free(&w->prev);
}

static void w_destroy(binfmt_writer *w)
{
    if (w->f) fclose(w->f);
    w_free_buffers(w);
    free(w->path);
    free(w->tmp);
    free(w);
}

int binfmt_writer_open(binfmt_writer **out, const char *path, const fn_schema *schema, uint64_t dataset_id,
                       uint32_t part, size_t block_bytes, int level)
{
    *out = NULL;
    binfmt_writer *w = calloc(1, sizeof *w);
    if (!w) return FN_ENOMEM;
    w->block_bytes = block_bytes ? block_bytes : BINFMT_DEFAULT_BLOCK;
    if (w->block_bytes > BINFMT_MAX_RAW / 2) w->block_bytes = BINFMT_MAX_RAW / 2;
    w->level = level < 0 ? 0 : level > LZ4HC_CLEVEL_MAX ? LZ4HC_CLEVEL_MAX : level;
    size_t n = strlen(path) + 32;
    w->path = strdup(path);
    w->tmp = malloc(n);
    int brc = batch_init(&w->prev, 1, 256);
    if (!w->path || !w->tmp || brc) { w_destroy(w); return fn_fail(FN_ENOMEM, "%s: out of memory", path); }
    snprintf(w->tmp, n, "%s.tmp.%d", path, (int)getpid());
    w->f = fopen(w->tmp, "wb");
    if (!w->f) {
        int rc = fn_fail(FN_EIO, "%s: cannot create: %s", w->tmp, strerror(errno));
        w_destroy(w);
        return rc;
    }
    char s[BINFMT_MAX_SCHEMA + 1];
    schema_format(schema, s, sizeof s);
    uint32_t slen = (uint32_t)strlen(s);
    uint8_t h[BINFMT_HEADER_FIXED + BINFMT_MAX_SCHEMA];
    put_le32(h, BINFMT_MAGIC);
    put_le32(h + 4, BINFMT_VERSION);
    put_le64(h + 8, dataset_id);
    put_le32(h + 16, part);
    put_le32(h + 20, slen);
    memcpy(h + 24, s, slen);
    put_le32(h + 24 + slen, fn_crc32c(0, h, 24 + slen));
    int rc = w_write(w, h, BINFMT_HEADER_FIXED + slen);
    if (rc) { unlink(w->tmp); w_destroy(w); return rc; }
    *out = w;
    return FN_OK;
}

static size_t w_raw_len(const binfmt_writer *w) { return RAW_COUNTS + w->heads.len + w->fields.len + w->keys.len + w->vals.len; }

static int w_flush_block(binfmt_writer *w)
{
    if (!w->block_n) return FN_OK;
    size_t raw_len = w_raw_len(w);
    if (raw_len > BINFMT_MAX_RAW) return fn_fail(FN_ETOOBIG, "%s: a block of %zu raw bytes is over the limit of %u", w->path, raw_len, BINFMT_MAX_RAW);
    size_t need = binfmt_block_bound(raw_len);
    if (raw_len > w->raw_cap) {
        uint8_t *p = realloc(w->raw, raw_len);
        if (!p) return fn_fail(FN_ENOMEM, "%s: out of memory", w->path);
        w->raw = p;
        w->raw_cap = raw_len;
    }
    if (need > w->out_cap) {
        uint8_t *p = realloc(w->out, need);
        if (!p) return fn_fail(FN_ENOMEM, "%s: out of memory", w->path);
        w->out = p;
        w->out_cap = need;
    }
    put_le32(w->raw, (uint32_t)w->heads.len);
    put_le32(w->raw + 4, (uint32_t)(w->fields.len / 2));
    put_le32(w->raw + 8, (uint32_t)(w->vals.len / 4));
    size_t at = RAW_COUNTS;
    const wbuf *cols[4] = {&w->heads, &w->fields, &w->keys, &w->vals};
    for (int k = 0; k < 4; k++) {
        if (cols[k]->len) memcpy(w->raw + at, cols[k]->p, cols[k]->len);
        at += cols[k]->len;
    }
    size_t len = binfmt_block_encode(w->out, w->raw, raw_len, w->block_n, w->level);
    if (w->stats.blocks == w->idx_cap) {
        size_t cap = w->idx_cap ? w->idx_cap * 2 : 256;
        uint64_t *o = realloc(w->idx_off, cap * sizeof *o);
        if (o) w->idx_off = o;
        uint32_t *c = realloc(w->idx_n, cap * sizeof *c);
        if (c) w->idx_n = c;
        if (!o || !c) return fn_fail(FN_ENOMEM, "%s: out of memory", w->path);
        w->idx_cap = cap;
    }
    if (w->stats.blocks >= UINT32_MAX) return fn_fail(FN_ETOOBIG, "%s: more than %u blocks in one part (use --rows-per-part)", w->path, UINT32_MAX);
    w->idx_off[w->stats.blocks] = w->at;
    w->idx_n[w->stats.blocks] = w->block_n;
    int rc = w_write(w, w->out, len);
    if (rc) return rc;
    w->stats.blocks++;
    w->stats.raw_bytes += raw_len;
    w->heads.len = w->fields.len = w->keys.len = w->vals.len = 0;
    w->block_n = 0;
    w->prev_id = 0;
    batch_clear(&w->prev);
    return FN_OK;
}

int binfmt_writer_add(binfmt_writer *w, const fn_batch *b, int i)
{
    size_t a = b->off[i], nf = b->off[i + 1] - a;
    if (nf > BINFMT_MAX_FEATURES)
        return fn_fail(FN_ETOOBIG, "%s: sample %llu has %zu features, over the limit of %u", w->path, (unsigned long long)b->sample_id[i], nf,
                       BINFMT_MAX_FEATURES);
    /* a block never outgrows BINFMT_MAX_RAW (nor u32 counts) */
    if (w_raw_len(w) + 41 + 14 * nf > BINFMT_MAX_RAW) {
        int rc = w_flush_block(w);
        if (rc) return rc;
    }
    const uint16_t *field = b->field + a;
    const uint64_t *key = b->key + a;
    const float *val = b->val + a;
    size_t sh = 0, lim = nf < w->prev.nf ? nf : w->prev.nf;
    while (sh < lim && field[sh] == w->prev.field[sh] && key[sh] == w->prev.key[sh] && f32_bits(val[sh]) == f32_bits(w->prev.val[sh])) sh++;
    size_t nw = nf - sh;
    int ones = 1;
    for (size_t j = sh; j < nf && ones; j++) ones = f32_bits(val[j]) == ONE_BITS;
    if (wbuf_room(&w->heads, 41) || wbuf_room(&w->fields, 2 * nw) || wbuf_room(&w->keys, 8 * nw) || wbuf_room(&w->vals, ones ? 0 : 4 * nw) ||
        batch_reserve_features(&w->prev, nf))
        return fn_fail(FN_ENOMEM, "%s: out of memory", w->path);
    uint8_t *h = w->heads.p + w->heads.len;
    size_t hl = put_varint(h, zigzag(b->sample_id[i] - w->prev_id));
    h[hl++] = (uint8_t)((b->click[i] != 0 ? BINFMT_FLAG_CLICK : 0) | (b->buy[i] != 0 ? BINFMT_FLAG_BUY : 0) | (ones ? BINFMT_FLAG_ONES : 0));
    hl += put_varint(h + hl, sh);
    hl += put_varint(h + hl, nw);
    hl += put_varint(h + hl, b->ct && b->set[i] != CTABLE_NONE ? (uint64_t)b->set[i] + 1 : 0);
    w->heads.len += hl;
    uint8_t *fp = w->fields.p + w->fields.len, *kp = w->keys.p + w->keys.len, *vp = w->vals.p + w->vals.len;
    for (size_t j = 0; j < nw; j++) {
        fp[2 * j] = (uint8_t)field[sh + j];
        fp[2 * j + 1] = (uint8_t)(field[sh + j] >> 8);
        put_le64(kp + 8 * j, key[sh + j]);
    }
    w->fields.len += 2 * nw;
    w->keys.len += 8 * nw;
    if (!ones) {
        for (size_t j = 0; j < nw; j++) put_f32(vp + 4 * j, val[sh + j]);
        w->vals.len += 4 * nw;
    }
    w->prev_id = b->sample_id[i];
    memcpy(w->prev.field, field, nf * sizeof *field);
    memcpy(w->prev.key, key, nf * sizeof *key);
    memcpy(w->prev.val, val, nf * sizeof *val);
    w->prev.nf = nf;
    w->block_n++;
    w->stats.examples++;
    if (w_raw_len(w) >= w->block_bytes || w->block_n == UINT32_MAX) return w_flush_block(w);
    return FN_OK;
}

int binfmt_writer_finish(binfmt_writer *w, int last)
{
    int rc = w_flush_block(w);
    uint64_t nb = w->stats.blocks, index_at = w->at, index_len = 16 + 12 * nb + 4;
    uint8_t *ix = rc ? NULL : malloc((size_t)index_len);
    if (!rc && !ix) rc = fn_fail(FN_ENOMEM, "%s: out of memory", w->path);
    if (!rc) {
        put_le32(ix, BINFMT_INDEX_MAGIC);
        put_le32(ix + 4, (uint32_t)nb);
        put_le64(ix + 8, w->stats.examples);
        for (uint64_t k = 0; k < nb; k++) {
            put_le64(ix + 16 + 12 * k, w->idx_off[k]);
            put_le32(ix + 24 + 12 * k, w->idx_n[k]);
        }
        put_le32(ix + index_len - 4, fn_crc32c(0, ix, (size_t)index_len - 4));
        rc = w_write(w, ix, (size_t)index_len);
    }
    free(ix);
    if (!rc) {
        uint8_t ft[BINFMT_FOOTER];
        put_le64(ft, index_at);
        put_le64(ft + 8, index_len);
        put_le32(ft + 16, last ? 1u : 0u);
        put_le32(ft + 20, BINFMT_END_MAGIC);
        put_le32(ft + 24, BINFMT_VERSION);
        put_le32(ft + 28, fn_crc32c(0, ft, 28));
        rc = w_write(w, ft, sizeof ft);
    }
    if (!rc && (fflush(w->f) || fsync(fileno(w->f)))) rc = fn_fail(FN_EIO, "%s: flush failed: %s", w->tmp, strerror(errno));
    int c = fclose(w->f);
    w->f = NULL;
    if (!rc && c) rc = fn_fail(FN_EIO, "%s: close failed: %s", w->tmp, strerror(errno));
    w_free_buffers(w);
    w->stats.file_bytes = w->at;
    w->finished = !rc;
    return rc;
}

int binfmt_writer_commit(binfmt_writer **wp)
{
    binfmt_writer *w = *wp;
    int rc = FN_OK;
    if (!w->finished) rc = fn_fail(FN_EINVAL, "%s: committed before it was finished", w->path);
    else if (rename(w->tmp, w->path)) rc = fn_fail(FN_EIO, "cannot rename %s to %s: %s", w->tmp, w->path, strerror(errno));
    if (rc) { binfmt_writer_abort(wp); return rc; }
    w_destroy(w);
    *wp = NULL;
    return FN_OK;
}

void binfmt_writer_abort(binfmt_writer **wp)
{
    binfmt_writer *w = *wp;
    if (!w) return;
    if (w->f) { fclose(w->f); w->f = NULL; }
    unlink(w->tmp);
    w_destroy(w);
    *wp = NULL;
}

const binfmt_writer_stats *binfmt_writer_get_stats(const binfmt_writer *w) { return &w->stats; }

/* ---- one part file, as a reader sees it ---------------------------------- */

typedef struct {
    char *path;
    uint64_t id, size;
    uint32_t part, last;
    uint32_t nb;
    uint64_t *off;   /* nb + 1: block b spans [off[b], off[b+1]); off[nb] = index offset */
    uint32_t *n;     /* examples of each block */
    uint64_t examples;
    uint64_t base;   /* global number of its first block */
} bfile;

static void bfile_free(bfile *f)
{
    free(f->path); free(f->off); free(f->n);
    memset(f, 0, sizeof *f);
}

static int pread_all(int fd, void *buf, size_t n, uint64_t at)
{
    uint8_t *p = buf;
    while (n) {
        ssize_t k = pread(fd, p, n, (off_t)at);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return k < 0 ? -1 : 0;
        p += k;
        n -= (size_t)k;
        at += (uint64_t)k;
    }
    return 1;
}

/* Reads and checks a part file's header, footer and index; its schema
 * string goes into schema (BINFMT_MAX_SCHEMA + 1 bytes). */
static int bfile_open(bfile *f, const char *path, char *schema)
{
    memset(f, 0, sizeof *f);
    if (!(f->path = strdup(path))) return FN_ENOMEM;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return fn_fail(FN_EIO, "%s: cannot open: %s", path, strerror(errno));
    int rc = FN_OK;
    uint8_t h[BINFMT_HEADER_FIXED + BINFMT_MAX_SCHEMA], ft[BINFMT_FOOTER];
    uint8_t *ix = NULL;
    struct stat st;
    if (fstat(fd, &st)) { rc = fn_fail(FN_EIO, "%s: cannot stat: %s", path, strerror(errno)); goto out; }
    f->size = (uint64_t)st.st_size;
    if (f->size >= 4 && pread_all(fd, h, 4, 0) == 1 && get_le32(h) != BINFMT_MAGIC) {
        rc = fn_fail(FN_EMAGIC, "%s: not a funnel binary data file (bad magic)", path);
        goto out;
    }
    if (f->size < BINFMT_HEADER_FIXED + 1 + 20 + BINFMT_FOOTER) {
        rc = fn_fail(FN_EPARSE, "%s: truncated (%llu bytes)", path, (unsigned long long)f->size);
        goto out;
    }
    if (pread_all(fd, h, 24, 0) != 1) { rc = fn_fail(FN_EIO, "%s: cannot read its header", path); goto out; }
    uint32_t ver = get_le32(h + 4), slen = get_le32(h + 20);
    if (ver != BINFMT_VERSION) { rc = fn_fail(FN_EVERSION, "%s: format version %u, this build reads version %u", path, ver, BINFMT_VERSION); goto out; }
    if (slen == 0 || slen > BINFMT_MAX_SCHEMA || BINFMT_HEADER_FIXED + slen + 20 + BINFMT_FOOTER > f->size) {
        rc = fn_fail(FN_EPARSE, "%s: corrupt header (schema of %u bytes)", path, slen);
        goto out;
    }
    if (pread_all(fd, h + 24, slen + 4, 24) != 1) { rc = fn_fail(FN_EIO, "%s: cannot read its header", path); goto out; }
    if (fn_crc32c(0, h, 24 + slen) != get_le32(h + 24 + slen)) { rc = fn_fail(FN_ECHECKSUM, "%s: header checksum mismatch: the file is corrupt", path); goto out; }
    f->id = get_le64(h + 8);
    f->part = get_le32(h + 16);
    memcpy(schema, h + 24, slen);
    schema[slen] = 0;
    uint64_t hlen = BINFMT_HEADER_FIXED + slen;

    if (pread_all(fd, ft, sizeof ft, f->size - BINFMT_FOOTER) != 1) { rc = fn_fail(FN_EIO, "%s: cannot read its footer", path); goto out; }
    if (get_le32(ft + 20) != BINFMT_END_MAGIC || fn_crc32c(0, ft, 28) != get_le32(ft + 28)) {
        rc = fn_fail(FN_EPARSE, "%s: no valid footer: the file is truncated or was not finished (convert it again)", path);
        goto out;
    }
    uint64_t ixo = get_le64(ft), ixl = get_le64(ft + 8);
    uint32_t flags = get_le32(ft + 16);
    if (get_le32(ft + 24) != BINFMT_VERSION || (flags & ~1u) || ixl < 20 || (ixl - 20) % 12 || ixo < hlen ||
        ixo > f->size - BINFMT_FOOTER || ixl != f->size - BINFMT_FOOTER - ixo) {
        rc = fn_fail(FN_EPARSE, "%s: corrupt footer (index at %llu, %llu bytes, in a file of %llu)", path, (unsigned long long)ixo,
                     (unsigned long long)ixl, (unsigned long long)f->size);
        goto out;
    }
    f->last = flags & 1u;
    if (!(ix = malloc((size_t)ixl))) { rc = fn_fail(FN_ENOMEM, "%s: out of memory reading the index", path); goto out; }
    if (pread_all(fd, ix, (size_t)ixl, ixo) != 1) { rc = fn_fail(FN_EIO, "%s: cannot read its index", path); goto out; }
    if (fn_crc32c(0, ix, (size_t)ixl - 4) != get_le32(ix + ixl - 4)) { rc = fn_fail(FN_ECHECKSUM, "%s: index checksum mismatch: the file is corrupt", path); goto out; }
    f->nb = get_le32(ix + 4);
    if (get_le32(ix) != BINFMT_INDEX_MAGIC || (uint64_t)f->nb != (ixl - 20) / 12) { rc = fn_fail(FN_EPARSE, "%s: corrupt index", path); goto out; }
    f->off = malloc(((size_t)f->nb + 1) * sizeof *f->off);
    f->n = malloc(((size_t)f->nb + 1) * sizeof *f->n);
    if (!f->off || !f->n) { rc = fn_fail(FN_ENOMEM, "%s: out of memory reading the index", path); goto out; }
    uint64_t total = 0;
    for (uint32_t b = 0; b < f->nb; b++) {
        f->off[b] = get_le64(ix + 16 + 12 * (size_t)b);
        f->n[b] = get_le32(ix + 24 + 12 * (size_t)b);
        total += f->n[b];
        /* blocks are contiguous from the header on; each holds a header and
         * at least one example (so at least one payload byte) */
        if (b == 0 ? f->off[0] != hlen : f->off[b] <= f->off[b - 1] + BINFMT_BLOCK_HEADER || f->off[b] >= ixo) f->n[b] = 0;
        if (f->n[b] == 0) { rc = fn_fail(FN_EPARSE, "%s: corrupt index (entry of block %u)", path, b); goto out; }
    }
    f->off[f->nb] = ixo;
    if (f->nb ? ixo - f->off[f->nb - 1] <= BINFMT_BLOCK_HEADER : ixo != hlen) { rc = fn_fail(FN_EPARSE, "%s: corrupt index (last block)", path); goto out; }
    f->examples = get_le64(ix + 8);
    if (f->examples != total) { rc = fn_fail(FN_EPARSE, "%s: corrupt index (example counts disagree)", path); goto out; }
out:
    free(ix);
    close(fd);
    if (rc) bfile_free(f);
    return rc;
}

/* ---- data set ------------------------------------------------------------ */

struct binfmt_set {
    bfile *files;
    size_t nfiles;
    uint64_t blocks, examples, bytes;
    uint64_t *first;   /* blocks + 1: global number of each global block's first example */
    int nfields;
    fn_ctable *ct;     /* the common-feature table beside the parts, if any */
};

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The .fbin files of a directory, sorted by name (caller frees each and the array). */
static int list_parts(const char *dir, char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return fn_fail(FN_EIO, "%s: cannot open directory: %s", dir, strerror(errno));
    size_t cap = 0, ext = strlen(BINFMT_EXT);
    int rc = FN_OK;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len <= ext || strcmp(e->d_name + len - ext, BINFMT_EXT)) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            char **p = realloc(*names, cap * sizeof *p);
            if (!p) { rc = FN_ENOMEM; break; }
            *names = p;
        }
        size_t plen = strlen(dir) + len + 2;
        char *s = malloc(plen);
        if (!s) { rc = FN_ENOMEM; break; }
        snprintf(s, plen, "%s/%s", dir, e->d_name);
        (*names)[(*n)++] = s;
    }
    closedir(d);
    if (!rc && *n) qsort(*names, *n, sizeof **names, cmp_str);
    if (rc) fn_fail(rc, "%s: out of memory listing the directory", dir);
    return rc;
}

int binfmt_set_open(binfmt_set **out, const char *path, const fn_schema *schema)
{
    *out = NULL;
    struct stat st;
    if (stat(path, &st)) return fn_fail(FN_EIO, "%s: %s", path, strerror(errno));
    char **names = NULL;
    size_t n = 0;
    int rc = FN_OK, is_dir = S_ISDIR(st.st_mode);
    if (is_dir) {
        if ((rc = list_parts(path, &names, &n))) goto done;
        if (!n) { rc = fn_fail(FN_ENOTFOUND, "%s: no *%s part files in this directory (write them with funnel convert)", path, BINFMT_EXT); goto done; }
    } else {
        names = malloc(sizeof *names);
        if (!names || !(names[0] = strdup(path))) { free(names); names = NULL; rc = FN_ENOMEM; goto done; }
        n = 1;
    }
    binfmt_set *s = calloc(1, sizeof *s);
    if (!s || !(s->files = calloc(n, sizeof *s->files))) { free(s); rc = FN_ENOMEM; goto done; }
    s->nfiles = n;
    s->nfields = schema->n;
    char want[BINFMT_MAX_SCHEMA + 1], got[BINFMT_MAX_SCHEMA + 1];
    schema_format(schema, want, sizeof want);
    for (size_t i = 0; i < n && !rc; i++) {
        bfile *f = &s->files[i];
        if ((rc = bfile_open(f, names[i], got))) break;
        if (strcmp(got, want)) {
            rc = fn_fail(FN_EUSAGE, "%s was converted with --fields %s, but this run uses --fields %s: the keys are hashed with "
                         "the field list, so give the same --fields (or convert again with this one)", names[i],
                         strcmp(got, SCHEMA_ALICCP) ? got : "aliccp", strcmp(want, SCHEMA_ALICCP) ? want : "aliccp");
            break;
        }
        if (is_dir) {
            const bfile *f0 = &s->files[0];
            if (f->id != f0->id) rc = fn_fail(FN_EPARSE, "%s and %s belong to different conversions: a directory holds one data set", f0->path, f->path);
            else if (f->part != i) rc = fn_fail(FN_EPARSE, "%s is part %u but file %zu of %zu in name order: a part is missing or renamed", f->path, f->part, i + 1, n);
            else if (f->last != (i + 1 == n))
                rc = fn_fail(FN_EPARSE, f->last ? "%s is marked the last part, but more part files follow it" : "%s: parts after this one are missing (it is not marked the last)", f->path);
            if (rc) break;
        }
        f->base = s->blocks;
        s->blocks += f->nb;
        s->examples += f->examples;
        s->bytes += f->size;
    }
    if (!rc && !(s->first = malloc(((size_t)s->blocks + 1) * sizeof *s->first))) rc = FN_ENOMEM;
    if (!rc) {
        uint64_t g = 0, e = 0;
        for (size_t i = 0; i < n; i++)
            for (uint32_t b = 0; b < s->files[i].nb; b++) {
                s->first[g++] = e;
                e += s->files[i].n[b];
            }
        s->first[g] = e;
    }
    if (!rc) { /* the common-feature table: DIR/common.fct, or beside the one file */
        char tp[4200];
        if (is_dir) snprintf(tp, sizeof tp, "%s/%s", path, BINFMT_CTABLE);
        else {
            const char *sl = strrchr(path, '/');
            snprintf(tp, sizeof tp, "%.*s%s", sl ? (int)(sl - path + 1) : 0, path, BINFMT_CTABLE);
        }
        if (access(tp, F_OK) == 0) {
            rc = ctable_open(&s->ct, tp, schema);
            if (!rc && s->ct->dataset_id != s->files[0].id)
                rc = fn_fail(FN_EPARSE, "%s belongs to another conversion than %s (data set ids differ)", tp, s->files[0].path);
        }
    }
    if (rc) binfmt_set_close(&s);
    else *out = s;
done:
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    if (rc == FN_ENOMEM && !*fn_err_msg()) fn_fail(FN_ENOMEM, "%s: out of memory", path);
    return rc;
}

void binfmt_set_close(binfmt_set **sp)
{
    binfmt_set *s = *sp;
    if (!s) return;
    for (size_t i = 0; i < s->nfiles; i++) bfile_free(&s->files[i]);
    free(s->files);
    free(s->first);
    ctable_close(&s->ct);
    free(s);
    *sp = NULL;
}

size_t binfmt_set_files(const binfmt_set *s) { return s->nfiles; }
uint64_t binfmt_set_blocks(const binfmt_set *s) { return s->blocks; }
uint64_t binfmt_set_examples(const binfmt_set *s) { return s->examples; }
uint64_t binfmt_set_bytes(const binfmt_set *s) { return s->bytes; }

/* The file holding global block g (< s->blocks). */
static size_t set_file_of(const binfmt_set *s, uint64_t g)
{
    size_t lo = 0, hi = s->nfiles;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (s->files[mid].base <= g) lo = mid;
        else hi = mid;
    }
    while (lo + 1 < s->nfiles && g >= s->files[lo].base + s->files[lo].nb) lo++; /* skip empty parts */
    return lo;
}

/* The global block holding global example e (< s->examples); s->blocks
 * for e == s->examples. */
static uint64_t set_block_of(const binfmt_set *s, uint64_t e)
{
    if (e >= s->examples) return s->blocks;
    uint64_t lo = 0, hi = s->blocks; /* first[lo] <= e < first[hi] */
    while (hi - lo > 1) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (s->first[mid] <= e) lo = mid;
        else hi = mid;
    }
    return lo;
}

/* ---- reader --------------------------------------------------------------- */

struct binfmt_reader {
    const binfmt_set *s;
    uint64_t e0, e1;       /* the partition: global examples [e0, e1) */
    uint64_t g;            /* the block in the cursor (have), else the next to load */
    uint32_t skip;         /* examples of block g to skip when it is loaded */
    int have;
    int fd;
    size_t fi;             /* file of fd */
    uint8_t *stored, *raw;
    size_t stored_cap, raw_cap, raw_len;
    binfmt_cursor cur;
    aliccp_stats stats;
};

/* Positions the reader before global example e (in [e0, e1]); the block
 * is loaded (and the examples before e skipped) by the next read. */
static void place(binfmt_reader *r, uint64_t e)
{
    r->have = 0;
    r->g = set_block_of(r->s, e);
    r->skip = r->g < r->s->blocks ? (uint32_t)(e - r->s->first[r->g]) : 0;
}

int binfmt_reader_open(binfmt_reader **out, const binfmt_set *s, int part, int nparts)
{
    *out = NULL;
    if (nparts < 1 || part < 0 || part >= nparts) return fn_fail(FN_EINVAL, "partition %d of %d", part, nparts);
    binfmt_reader *r = calloc(1, sizeof *r);
    if (!r) return FN_ENOMEM;
    r->s = s;
    /* by examples, not blocks: partitions differ by one example at most
     * whatever the block size; neighbours share at most a boundary block */
    r->e0 = s->examples * (uint64_t)part / (uint64_t)nparts;
    r->e1 = s->examples * (uint64_t)(part + 1) / (uint64_t)nparts;
    r->fd = -1;
    if (binfmt_cursor_new(&r->cur)) { free(r); return FN_ENOMEM; }
    r->cur.n_sets = s->ct ? s->ct->n_sets : 0;
    place(r, r->e0);
    *out = r;
    return FN_OK;
}

void binfmt_reader_close(binfmt_reader **rp)
{
    binfmt_reader *r = *rp;
    if (!r) return;
    if (r->fd >= 0) close(r->fd);
    free(r->stored);
    free(r->raw);
    binfmt_cursor_free(&r->cur);
    free(r);
    *rp = NULL;
}

static int block_error(const binfmt_reader *r, int rc)
{
    const bfile *f = &r->s->files[r->fi];
    uint32_t b = (uint32_t)(r->g - f->base);
    char why[256];
    snprintf(why, sizeof why, "%s", fn_err_msg());
    return fn_fail(rc, "%s: block %u of %u (offset %llu): %s", f->path, b, f->nb, (unsigned long long)f->off[b], why);
}

/* Reads, checks and decompresses block r->g into the cursor and skips
 * r->skip examples of it. */
static int load_block(binfmt_reader *r)
{
    r->have = 0;
    uint64_t g = r->g;
    size_t fi = set_file_of(r->s, g);
    const bfile *f = &r->s->files[fi];
    uint32_t b = (uint32_t)(g - f->base);
    if (r->fd < 0 || r->fi != fi) {
        if (r->fd >= 0) close(r->fd);
        r->fd = open(f->path, O_RDONLY);
        if (r->fd < 0) return fn_fail(FN_EIO, "%s: cannot open: %s", f->path, strerror(errno));
        r->fi = fi;
#ifdef POSIX_FADV_SEQUENTIAL
        posix_fadvise(r->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
    }
    uint64_t at = f->off[b], len = f->off[b + 1] - at;
    if (len > (uint64_t)binfmt_block_bound(BINFMT_MAX_RAW))
        return fn_fail(FN_EPARSE, "%s: block %u of %u (offset %llu): %llu bytes, over any block's size", f->path, b, f->nb,
                       (unsigned long long)at, (unsigned long long)len);
    if (len > r->stored_cap) {
        uint8_t *p = realloc(r->stored, (size_t)len);
        if (!p) return fn_fail(FN_ENOMEM, "%s: out of memory", f->path);
        r->stored = p;
        r->stored_cap = (size_t)len;
    }
    int got = pread_all(r->fd, r->stored, (size_t)len, at);
    if (got != 1)
        return fn_fail(FN_EIO, "%s: block %u of %u (offset %llu, %llu bytes): %s", f->path, b, f->nb, (unsigned long long)at,
                       (unsigned long long)len, got < 0 ? strerror(errno) : "the file is shorter than its index says (truncated?)");
    uint32_t n;
    int rc = binfmt_block_decode(r->stored, (size_t)len, &r->raw, &r->raw_cap, &r->raw_len, &n);
    if (!rc && n != f->n[b]) rc = fn_fail(FN_EPARSE, "holds %u examples, the index says %u", n, f->n[b]);
    if (!rc) rc = binfmt_cursor_reset(&r->cur, r->raw, r->raw_len, n);
    if (!rc && r->skip) rc = binfmt_cursor_skip(&r->cur, r->skip, r->s->nfields);
    if (rc) {
        char why[256];
        snprintf(why, sizeof why, "%s", fn_err_msg());
        return fn_fail(rc, "%s: block %u of %u (offset %llu, %llu bytes): %s", f->path, b, f->nb, (unsigned long long)at,
                       (unsigned long long)len, why);
    }
    r->skip = 0;
    r->have = 1;
    return FN_OK;
}

/* Global number of the next example. */
static uint64_t next_example(const binfmt_reader *r)
{
    if (r->g >= r->s->blocks) return r->s->examples;
    return r->s->first[r->g] + (r->have ? r->cur.done : r->skip);
}

int binfmt_reader_next(binfmt_reader *r, fn_batch *b, int max)
{
    batch_clear(b);
    b->ct = r->s->ct;
    if (max > b->cap) max = b->cap;
    int rc = FN_OK;
    while (b->n < max) {
        if (r->have && r->cur.done == r->cur.n) {
            r->have = 0;
            r->g++;
        }
        uint64_t e = next_example(r);
        if (e >= r->e1) break;
        if (!r->have && (rc = load_block(r))) break;
        /* not past the partition's end, which may fall inside this block */
        uint64_t left = r->e1 - e;
        int lim = left < (uint64_t)(max - b->n) ? b->n + (int)left : max;
        int n0 = b->n;
        rc = binfmt_cursor_decode(&r->cur, b, lim, r->s->nfields);
        r->stats.examples += (uint64_t)(b->n - n0);
        if (rc) { rc = block_error(r, rc); break; }
    }
    r->stats.lines = r->stats.examples;
    return rc;
}

int binfmt_reader_rewind(binfmt_reader *r)
{
    place(r, r->e0);
    return FN_OK;
}

void binfmt_reader_tell(const binfmt_reader *r, uint64_t pos[2])
{
    uint64_t e = next_example(r);
    uint64_t g = set_block_of(r->s, e);
    pos[0] = g;
    pos[1] = g < r->s->blocks ? e - r->s->first[g] : 0;
}

int binfmt_reader_seek(binfmt_reader *r, const uint64_t pos[2])
{
    uint64_t g = pos[0], k = pos[1];
    const binfmt_set *s = r->s;
    uint64_t e = g < s->blocks && k <= s->first[g + 1] - s->first[g] ? s->first[g] + k : g == s->blocks && k == 0 ? s->examples : UINT64_MAX;
    if (e < r->e0 || e > r->e1)
        return fn_fail(FN_EINVAL, "position (block %llu, example %llu) is outside this partition (examples %llu..%llu of the data set)",
                       (unsigned long long)g, (unsigned long long)k, (unsigned long long)r->e0, (unsigned long long)r->e1);
    place(r, e);
    return FN_OK;
}

double binfmt_reader_progress(const binfmt_reader *r)
{
    if (r->e1 == r->e0) return 1.0;
    uint64_t e = next_example(r);
    if (e > r->e1) e = r->e1;
    return (double)(e - r->e0) / (double)(r->e1 - r->e0);
}

const aliccp_stats *binfmt_reader_stats(const binfmt_reader *r) { return &r->stats; }
