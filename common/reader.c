/* common/reader.c — see reader.h. */
#include "reader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binfmt.h"
#include "ctable.h"
#include "log.h"
#include "fn_error.h"
#include "zipfstream.h"

enum { FORMAT_ALICCP = 1, FORMAT_BIN = 2, FORMAT_ZIPF = 3 };

struct fn_dataset {
    int format;
    char *path;
    const fn_schema *schema;
    int stop_on_bad;
    fn_ctable *common;
    binfmt_set *bin;
    zipf_spec zipf;
    char describe[4400];
};

struct fn_reader {
    int format;
    aliccp_reader *aliccp;
    binfmt_reader *bin;
    zipf_reader *zipf;
};

int dataset_open(fn_dataset **out, const char *format, const char *path, const char *common,
                 const fn_schema *schema, int stop_on_bad)
{
    return dataset_open_cached(out, format, path, common, schema, stop_on_bad, NULL);
}

int dataset_open_cached(fn_dataset **out, const char *format, const char *path, const char *common,
                        const fn_schema *schema, int stop_on_bad, const char *cache_dir)
{
    *out = NULL;
    int fmt = !strcmp(format, "aliccp") ? FORMAT_ALICCP : !strcmp(format, "bin") ? FORMAT_BIN : !strcmp(format, "zipf") ? FORMAT_ZIPF : 0;
    if (!fmt) return fn_fail(FN_EUSAGE, "format '%s' is not available in this version (use aliccp, bin or zipf)", format);
    if (fmt == FORMAT_ZIPF && common) return fn_fail(FN_EUSAGE, "%s: a zipf stream has no common features file", path);
    if (fmt == FORMAT_ALICCP && !common) return fn_fail(FN_EUSAGE, "%s: the aliccp format needs its common features file", path);
    if (fmt == FORMAT_BIN && common)
        return fn_fail(FN_EUSAGE, "%s: the bin format carries its common features already; give no common features file", path);
    fn_dataset *d = calloc(1, sizeof *d);
    if (!d || !(d->path = strdup(path))) { free(d); return FN_ENOMEM; }
    d->format = fmt;
    d->schema = schema;
    d->stop_on_bad = stop_on_bad;
    int rc;
    if (fmt == FORMAT_ZIPF) {
        rc = zipf_spec_parse(&d->zipf, path);
        if (!rc)
            snprintf(d->describe, sizeof d->describe, "generated Zipf stream of %llu impressions, %d fields, vocab %llu per field, s %g, seed %llu, world %llu",
                     (unsigned long long)d->zipf.n, schema->n, (unsigned long long)d->zipf.vocab, d->zipf.s, (unsigned long long)d->zipf.seed,
                     (unsigned long long)d->zipf.world);
    } else if (fmt == FORMAT_ALICCP) {
        rc = ctable_from_text(&d->common, common, schema, stop_on_bad, cache_dir);
        /* the common file's malformed lines were logged one by one (the first
         * ten, by the process that built the table); their total is said here */
        uint64_t bad = rc ? 0 : d->common->bad_lines;
        if (bad && stop_on_bad)
            rc = fn_fail(FN_EPARSE, "%s: %llu malformed line(s) (see the log of the run that built %s)", common, (unsigned long long)bad,
                         d->common->path);
        char badc[96] = "";
        if (bad) snprintf(badc, sizeof badc, "; %llu malformed common line(s) skipped", (unsigned long long)bad);
        if (!rc) snprintf(d->describe, sizeof d->describe, "%s (aliccp, %llu common feature sets, %llu entries, %llu distinct keys; table %.1f MB mapped, %.1f MB private%s)",
                          path, (unsigned long long)d->common->n_sets, (unsigned long long)d->common->n_entries,
                          (unsigned long long)d->common->n_keys, (double)ctable_file_bytes(d->common) / 1e6,
                          (double)ctable_private_bytes(d->common) / 1e6, badc);
    } else {
        rc = binfmt_set_open(&d->bin, path, schema);
        if (!rc)
            snprintf(d->describe, sizeof d->describe, "%s (bin, %zu part file(s), %llu blocks, %llu examples, %.1f MB)", path,
                     binfmt_set_files(d->bin), (unsigned long long)binfmt_set_blocks(d->bin),
                     (unsigned long long)binfmt_set_examples(d->bin), (double)binfmt_set_bytes(d->bin) / 1e6);
    }
    if (rc) { dataset_close(&d); return rc; }
    *out = d;
    return FN_OK;
}

void dataset_close(fn_dataset **dp)
{
    fn_dataset *d = *dp;
    if (!d) return;
    ctable_close(&d->common);
    binfmt_set_close(&d->bin);
    free(d->path);
    free(d);
    *dp = NULL;
}

const char *dataset_describe(const fn_dataset *d) { return d->describe; }

int reader_open(fn_reader **out, const fn_dataset *d, int part, int nparts)
{
    *out = NULL;
    fn_reader *r = calloc(1, sizeof *r);
    if (!r) return FN_ENOMEM;
    r->format = d->format;
    int rc = d->format == FORMAT_ZIPF ? zipf_reader_open(&r->zipf, &d->zipf, d->schema, part, nparts)
             : d->format == FORMAT_BIN ? binfmt_reader_open(&r->bin, d->bin, part, nparts)
                                       : aliccp_reader_open(&r->aliccp, d->path, d->common, d->schema, part, nparts, d->stop_on_bad);
    if (rc) { free(r); return rc; }
    *out = r;
    return FN_OK;
}

void reader_close(fn_reader **rp)
{
    fn_reader *r = *rp;
    if (!r) return;
    aliccp_reader_close(&r->aliccp);
    binfmt_reader_close(&r->bin);
    zipf_reader_close(&r->zipf);
    free(r);
    *rp = NULL;
}

int reader_next(fn_reader *r, fn_batch *b, int max)
{
    return r->zipf ? zipf_reader_next(r->zipf, b, max) : r->bin ? binfmt_reader_next(r->bin, b, max) : aliccp_reader_next(r->aliccp, b, max);
}
int reader_rewind(fn_reader *r)
{
    return r->zipf ? zipf_reader_rewind(r->zipf) : r->bin ? binfmt_reader_rewind(r->bin) : aliccp_reader_rewind(r->aliccp);
}
double reader_progress(const fn_reader *r)
{
    return r->zipf ? zipf_reader_progress(r->zipf) : r->bin ? binfmt_reader_progress(r->bin) : aliccp_reader_progress(r->aliccp);
}
const reader_stats *reader_get_stats(const fn_reader *r)
{
    return r->zipf ? zipf_reader_stats(r->zipf) : r->bin ? binfmt_reader_stats(r->bin) : aliccp_reader_stats(r->aliccp);
}
void reader_tell(const fn_reader *r, uint64_t pos[2])
{
    if (r->zipf) zipf_reader_tell(r->zipf, pos);
    else if (r->bin) binfmt_reader_tell(r->bin, pos);
    else aliccp_reader_tell(r->aliccp, pos);
}
int reader_seek(fn_reader *r, const uint64_t pos[2])
{
    return r->zipf ? zipf_reader_seek(r->zipf, pos) : r->bin ? binfmt_reader_seek(r->bin, pos) : aliccp_reader_seek(r->aliccp, pos);
}
