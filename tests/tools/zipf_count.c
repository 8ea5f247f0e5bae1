/* tests/tools/zipf_count.c — fn_zipf_count: how many distinct keys a
 * generated Zipf stream holds, in all and per server.
 *
 *   fn_zipf_count SPEC [SERVERS] [FIELDS]
 *
 * SPEC is a `--format zipf` stream spec (common/zipfstream.h), FIELDS the
 * schema (default aliccp).  Reads the whole stream as one worker would and
 * counts keys exactly in an open-addressing set (8 bytes a slot, load
 * under 3/4: about 11 bytes per distinct key), so the scale test can state
 * its vocabulary and budgets as fractions of it.  Prints one JSON line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fn_error.h"
#include "hash.h"
#include "zipfstream.h"

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: fn_zipf_count SPEC [SERVERS] [FIELDS]\n");
        return 2;
    }
    int servers = argc > 2 ? atoi(argv[2]) : 1;
    if (servers < 1 || servers > 4096) { fprintf(stderr, "fn_zipf_count: SERVERS must be 1..4096\n"); return 2; }
    fn_schema sch;
    zipf_spec sp;
    if (schema_parse(&sch, argc > 3 ? argv[3] : "aliccp") || zipf_spec_parse(&sp, argv[1])) {
        fprintf(stderr, "fn_zipf_count: %s\n", fn_err_msg());
        return 2;
    }
    /* room for every draw to be distinct, at load <= 3/4 */
    uint64_t most = sp.n * (uint64_t)sch.n, cap = 1024;
    while (cap * 3 / 4 < most) cap *= 2;
    uint64_t *set = calloc(cap, sizeof *set); /* 0 = empty (key 0 stored aside) */
    uint64_t *per = calloc((size_t)servers, sizeof *per);
    if (!set || !per) { fprintf(stderr, "fn_zipf_count: no memory for %llu slots\n", (unsigned long long)cap); return 1; }
    zipf_reader *r;
    fn_batch b;
    if (zipf_reader_open(&r, &sp, &sch, 0, 1) || batch_init(&b, 4096, 4096 * (size_t)sch.n)) { fprintf(stderr, "fn_zipf_count: %s\n", fn_err_msg()); return 1; }
    uint64_t distinct = 0, draws = 0, zero = 0;
    for (;;) {
        if (zipf_reader_next(r, &b, 4096)) { fprintf(stderr, "fn_zipf_count: %s\n", fn_err_msg()); return 1; }
        if (!b.n) break;
        for (size_t i = 0; i < b.nf; i++, draws++) {
            uint64_t k = b.key[i], at = fn_mix64(k) & (cap - 1);
            if (!k) { if (!zero++) { distinct++; per[fn_key_server(k, (uint32_t)servers)]++; } continue; }
            while (set[at] && set[at] != k) at = (at + 1) & (cap - 1);
            if (!set[at]) {
                set[at] = k;
                distinct++;
                per[fn_key_server(k, (uint32_t)servers)]++;
            }
        }
    }
    printf("{\"spec\":\"%s\",\"impressions\":%llu,\"fields\":%d,\"draws\":%llu,\"distinct_keys\":%llu,\"per_server\":[", argv[1],
           (unsigned long long)sp.n, sch.n, (unsigned long long)draws, (unsigned long long)distinct);
    for (int s = 0; s < servers; s++) printf("%s%llu", s ? "," : "", (unsigned long long)per[s]);
    printf("]}\n");
    zipf_reader_close(&r);
    batch_free(&b);
    free(set);
    free(per);
    return 0;
}
