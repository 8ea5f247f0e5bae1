/* common/convert.c — `funnel convert`: writes a compact binary copy
 * (common/binfmt.h) of an Ali-CCP data set.
 *
 * Called by launch/main.c.  Owns the command line and the part files of
 * one conversion; the format itself is binfmt.c, the parsing aliccp.c (the
 * very reader training uses, so the binary copy holds exactly the examples,
 * keys and values a text run would see, and bad lines are handled and
 * counted the same way).  Streams: the skeleton file is read a batch at a
 * time and each part file written block by block, so memory is the common
 * features (loaded whole, as a text run loads them), one batch, one block
 * and 12 bytes of index per block, whatever the skeleton's size.
 *
 * Parts are written under temporary names and renamed only once every part
 * is complete (fsync'ed), so an interrupted conversion leaves no *.fbin
 * behind; a directory that already holds *.fbin files is refused unless
 * --overwrite, which removes the old parts the new ones did not replace. */
#include "convert.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aliccp.h"
#include "binfmt.h"
#include "ctable.h"
#include "flags.h"
#include "fn_error.h"
#include "hash.h"
#include "log.h"
#include "mkdirs.h"
#include "schema.h"

#define SYNOPSIS "convert --format aliccp --data FILE --common FILE --out DIR [--fields F] [--rows-per-part N] [options]"
#define CONVERT_BATCH 4096 /* examples read per call */

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) ? 0 : (uint64_t)st.st_size;
}

static int has_ext(const char *name)
{
    size_t len = strlen(name), ext = strlen(BINFMT_EXT);
    return name[0] != '.' && len > ext && !strcmp(name + len - ext, BINFMT_EXT);
}

/* Whether name is part-NNNNN.fbin with NNNNN < keep: one this conversion wrote. */
static int is_new_part(const char *name, long keep)
{
    if (strlen(name) != 15 || strncmp(name, "part-", 5) || strcmp(name + 10, BINFMT_EXT)) return 0;
    long k = 0;
    for (int i = 5; i < 10; i++) {
        if (name[i] < '0' || name[i] > '9') return 0;
        k = k * 10 + (name[i] - '0');
    }
    return k < keep;
}

/* How many *.fbin files dir holds; with `keep` parts (part-00000 ..
 * part-(keep-1)) removes the others instead of counting them. */
static int old_parts(const char *dir, long keep, int *count)
{
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) return fn_fail(FN_EIO, "%s: cannot open directory: %s", dir, strerror(errno));
    for (struct dirent *e; (e = readdir(d));) {
        if (!has_ext(e->d_name)) continue;
        if (keep < 0) { (*count)++; continue; }
        if (is_new_part(e->d_name, keep)) continue;
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (unlink(p)) log_warn("convert: cannot remove the old part %s: %s", p, strerror(errno));
        else (*count)++;
    }
    closedir(d);
    return FN_OK;
}

static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

typedef struct {
    binfmt_writer **w;  /* parts so far, the last one open */
    size_t n, cap;
} parts;

static int parts_open_next(parts *p, const char *dir, const fn_schema *schema, uint64_t id, size_t block_bytes, int level)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 8;
        binfmt_writer **w = realloc(p->w, cap * sizeof *w);
        if (!w) return fn_fail(FN_ENOMEM, "out of memory");
        p->w = w;
        p->cap = cap;
    }
    if (p->n > 99999) return fn_fail(FN_ETOOBIG, "more than 100000 parts: raise --rows-per-part");
    char path[4200];
    snprintf(path, sizeof path, "%s/part-%05zu%s", dir, p->n, BINFMT_EXT);
    int rc = binfmt_writer_open(&p->w[p->n], path, schema, id, (uint32_t)p->n, block_bytes, level);
    if (!rc) p->n++;
    return rc;
}

static void parts_abort(parts *p)
{
    for (size_t i = 0; i < p->n; i++) binfmt_writer_abort(&p->w[i]);
    free(p->w);
    memset(p, 0, sizeof *p);
}

int convert_main(int argc, char **argv)
{
    const char *format = "aliccp", *data = NULL, *common_path = NULL, *out = NULL, *fields = "aliccp", *bad = "skip";
    long rows_per_part = 0, block_kb = BINFMT_DEFAULT_BLOCK >> 10, level = BINFMT_DEFAULT_LEVEL;
    int overwrite = 0;
    flag_spec specs[] = {
        {"format", FLAG_CHOICE, &format, 0, 0, "aliccp", "input format (default aliccp, the only one for now)", 0, 0},
        {"data", FLAG_STRING, &data, 0, 0, NULL, "impressions to convert (Ali-CCP sample skeleton file)", 1, 0},
        {"common", FLAG_STRING, &common_path, 0, 0, NULL, "common features file of --data", 1, 0},
        {"out", FLAG_STRING, &out, 0, 0, NULL, "directory of the part files (created if missing)", 1, 0},
        {"fields", FLAG_STRING, &fields, 0, 0, NULL,
         "feature fields, as train's --fields: 'aliccp' (its 23 fields) or a comma list; recorded in the files, "
         "and training from them must use the same (default aliccp)", 0, 0},
        {"bad-lines", FLAG_CHOICE, &bad, 0, 0, "skip|stop", "malformed input lines: count and skip, or stop (default skip)", 0, 0},
        {"rows-per-part", FLAG_INT, &rows_per_part, 0, 1e15, NULL, "examples per part file (default 0: one part)", 0, 0},
        {"block-kb", FLAG_INT, &block_kb, 1, 131072, NULL, "raw KiB at which a block is closed (default 1024)", 0, 0},
        {"lz4-level", FLAG_INT, &level, 0, 12, NULL, "block compression: 0 = fast LZ4, 1..12 = LZ4-HC level (default 3: "
         "smaller files that also decompress faster, at a slower conversion)", 0, 0},
        {"overwrite", FLAG_BOOL, &overwrite, 0, 0, NULL, "replace the *.fbin files already in --out", 0, 0},
        {0},
    };
    log_set_role("convert");
    int rc = flags_parse(specs, argc, argv);
    if (rc == FLAGS_HELP) {
        flags_usage(stdout, SYNOPSIS, specs);
        return 0;
    }
    if (rc) { fprintf(stderr, "funnel convert: %s\n", fn_err_msg()); return 2; }
    fn_schema schema;
    if (schema_parse(&schema, fields)) { fprintf(stderr, "funnel convert: %s\n", fn_err_msg()); return 2; }
    if (fn_mkdirs(out)) { log_error("--out %s: %s", out, fn_err_msg()); return 1; } /* parents too, as train --out */
    int old;
    if ((rc = old_parts(out, -1, &old))) { log_error("%s", fn_err_msg()); return 1; }
    if (old && !overwrite) {
        log_error("--out %s already holds %d *%s file(s): give --overwrite to replace them, or another directory", out, old, BINFMT_EXT);
        return 1;
    }

    double t0 = now_sec();
    int stop = !strcmp(bad, "stop");
    fn_ctable *common = NULL;
    aliccp_reader *r = NULL;
    fn_batch b;
    memset(&b, 0, sizeof b);
    parts p = {0};
    uint64_t id = fn_mix64((uint64_t)time(NULL) ^ (uint64_t)getpid() << 32 ^ fn_hash64(data, strlen(data), (uint64_t)now_sec()));
    /* the common-feature table, under a name of its own until the parts are in */
    char ct_tmp[4200], ct_path[4200];
    snprintf(ct_tmp, sizeof ct_tmp, "%s/.%s.%016llx", out, BINFMT_CTABLE, (unsigned long long)id);
    snprintf(ct_path, sizeof ct_path, "%s/%s", out, BINFMT_CTABLE);
    if ((rc = ctable_build(common_path, &schema, stop, id, ct_tmp)) || (rc = ctable_open(&common, ct_tmp, &schema))) {
        log_error("%s", fn_err_msg());
        unlink(ct_tmp);
        return 1;
    }
    log_info("%s: %llu common feature sets, %llu entries (%.1f MB table) in %.1f s%s", common_path, (unsigned long long)common->n_sets,
             (unsigned long long)common->n_entries, (double)ctable_file_bytes(common) / 1e6, now_sec() - t0,
             common->bad_lines ? " (with malformed lines skipped, see above)" : "");
    rc = aliccp_reader_open(&r, data, common, &schema, 0, 1, stop);
    if (!rc && batch_init(&b, CONVERT_BATCH, (size_t)CONVERT_BATCH * 64)) rc = fn_fail(FN_ENOMEM, "out of memory");
    size_t block_bytes = (size_t)block_kb << 10;
    uint64_t in_part = 0;
    while (!rc) {
        if ((rc = aliccp_reader_next(r, &b, CONVERT_BATCH)) || b.n == 0) break;
        for (int i = 0; i < b.n && !rc; i++) {
            if (!p.n || (rows_per_part && in_part == (uint64_t)rows_per_part)) {
                /* a part is sealed only when a row for the next one exists, so the
                 * last part (and only it) is marked the last */
                if (p.n && (rc = binfmt_writer_finish(p.w[p.n - 1], 0))) break;
                if ((rc = parts_open_next(&p, out, &schema, id, block_bytes, (int)level))) break;
                in_part = 0;
            }
            rc = binfmt_writer_add(p.w[p.n - 1], &b, i);
            in_part++;
        }
    }
    if (!rc && !p.n) rc = parts_open_next(&p, out, &schema, id, block_bytes, (int)level); /* no examples: one empty part */
    if (!rc) rc = binfmt_writer_finish(p.w[p.n - 1], 1);
    uint64_t examples = 0, blocks = 0, raw = 0, bytes = 0;
    for (size_t i = 0; i < p.n; i++) {
        const binfmt_writer_stats *ws = binfmt_writer_get_stats(p.w[i]);
        examples += ws->examples;
        blocks += ws->blocks;
        raw += ws->raw_bytes;
        bytes += ws->file_bytes;
    }
    for (size_t i = 0; i < p.n && !rc; i++) rc = binfmt_writer_commit(&p.w[i]);
    if (!rc && rename(ct_tmp, ct_path)) rc = fn_fail(FN_EIO, "cannot rename %s to %s: %s", ct_tmp, ct_path, strerror(errno));
    if (rc) {
        unlink(ct_tmp);
        log_error("%s", fn_err_msg());
        /* removes the temporary files; if a rename failed midway, the parts
         * renamed before it lack the last-part mark and readers refuse them */
        parts_abort(&p);
    } else {
        sync_dir(out);
        int removed = 0;
        if (overwrite && old) old_parts(out, (long)p.n, &removed);
        double secs = now_sec() - t0;
        const aliccp_stats *st = aliccp_reader_stats(r);
        uint64_t in = file_size(data) + file_size(common_path);
        bytes += ctable_file_bytes(common);
        log_info("%s -> %s: %llu examples in %zu part(s), %llu blocks; %llu bad line(s) skipped (%llu with an unknown md5), "
                 "%llu feature item(s) of fields outside --fields ignored%s",
                 data, out, (unsigned long long)examples, p.n, (unsigned long long)blocks,
                 (unsigned long long)(st->bad_lines + common->bad_lines), (unsigned long long)st->missing_common,
                 (unsigned long long)(st->unknown_items + common->unknown_items), removed ? "; old parts removed" : "");
        log_info("bytes in %.1f MB (text), raw %.1f MB, out %.1f MB (%.1f%% of the text); %.2f s, %.0f impressions/s", (double)in / 1e6,
                 (double)raw / 1e6, (double)bytes / 1e6, in ? 100.0 * (double)bytes / (double)in : 0.0, secs,
                 (double)examples / (secs > 1e-9 ? secs : 1e-9));
        free(p.w);
    }
    aliccp_reader_close(&r);
    ctable_close(&common);
    batch_free(&b);
    return rc ? 1 : 0;
}
