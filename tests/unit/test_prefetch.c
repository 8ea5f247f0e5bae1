/* tests/unit/test_prefetch.c — the reading thread's ring of batches
 * (worker/prefetch.c) against reading inline: the same batches in the same
 * order with the same positions, each with its keys prepared (de-duplicated,
 * grouped by server, sorted), while the consumer holds up to three at once
 * and releases them oldest first; the end marker answered again until a
 * rewind, and after the rewind the partition from its start. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "embed.h"
#include "fn_error.h"
#include "hash.h"
#include "prefetch.h"
#include "reader.h"
#include "schema.h"

#include "check.h"

enum { MAX = 256, SERVERS = 3, DIM = 4 };

typedef struct {
    int n;
    uint64_t sum; /* of the batch's keys, mixed */
    uint64_t pos[2];
} seen;

static uint64_t key_sum(const fn_batch *b)
{
    uint64_t s = (uint64_t)b->nf;
    for (size_t k = 0; k < b->nf; k++) s += fn_mix64(b->key[k] + k);
    return s;
}

/* e is b's keys, de-duplicated, grouped by server and sorted in each group */
static int prepared(const embed_table *e, const fn_batch *b)
{
    if (e->n_uniq == 0) return b->nf == 0;
    if (e->srv_off[SERVERS] != e->n_uniq) return 0;
    for (int s = 0; s < SERVERS; s++)
        for (uint32_t j = e->srv_off[s]; j < e->srv_off[s + 1]; j++) {
            if (fn_key_server(e->srv_keys[j], SERVERS) != (uint32_t)s) return 0;
            if (j > e->srv_off[s] && e->srv_keys[j] <= e->srv_keys[j - 1]) return 0;
        }
    for (size_t k = 0; k < b->nf; k++)
        if (e->uniq[e->entry_u[k]] != batch_table_key(b->key[k], e->table)) return 0;
    return 1;
}

int main(void)
{
    fn_schema schema;
    CHECK(schema_parse(&schema, "aliccp") == FN_OK, "schema");
    fn_dataset *ds = NULL;
    CHECK(dataset_open(&ds, "zipf", "n=5000,vocab=2000,s=1.1,seed=3", NULL, &schema, 1) == FN_OK, "dataset: %s", fn_err_msg());
    if (!ds) return 1;

    /* the reference: read inline */
    seen ref[64];
    int nref = 0;
    fn_reader *r;
    fn_batch b;
    CHECK(reader_open(&r, ds, 0, 1) == FN_OK && batch_init(&b, MAX, MAX * 64) == FN_OK, "reader");
    for (;;) {
        CHECK(reader_next(r, &b, MAX) == FN_OK, "reader_next");
        if (b.n == 0 || nref == 64) break;
        ref[nref].n = b.n;
        ref[nref].sum = key_sum(&b);
        reader_tell(r, ref[nref].pos);
        nref++;
    }
    reader_close(&r);
    batch_free(&b);
    CHECK(nref == 5000 / MAX + 1, "%d reference batches", nref);

    embed_table shape;
    CHECK(embed_init(&shape, 0, SERVERS, DIM, schema.n) == FN_OK, "shape");
    CHECK(reader_open(&r, ds, 0, 1) == FN_OK, "reader");
    prefetch *pf = NULL;
    CHECK(prefetch_start(&pf, r, MAX, &shape, 1) == FN_OK, "prefetch_start");
    for (int epoch = 0; epoch < 2; epoch++) {
        if (epoch) prefetch_rewind(pf);
        /* hold three, then one in, one out: the training loop's pattern */
        const fn_batch *held[3];
        int got = 0, bad = 0, n_held = 0;
        for (;;) {
            const fn_batch *x;
            embed_table *e;
            uint64_t pos[2];
            CHECK(prefetch_next(pf, &x, &e, pos) == FN_OK, "prefetch_next");
            if (x->n == 0) break;
            if (got < nref) {
                bad += x->n != ref[got].n || key_sum(x) != ref[got].sum || pos[0] != ref[got].pos[0] || pos[1] != ref[got].pos[1];
                bad += !prepared(e, x);
            }
            got++;
            if (n_held == 3) {
                prefetch_release(pf);
                memmove(held, held + 1, 2 * sizeof *held);
                n_held = 2;
            }
            held[n_held++] = x;
            /* the batches still held are intact: the thread reads into a free slot only */
            for (int i = 0; i < n_held; i++) bad += held[i]->n <= 0 || held[i]->n > MAX;
        }
        CHECK(got == nref && bad == 0, "epoch %d: %d batches (want %d), %d mismatches", epoch + 1, got, nref, bad);
        /* the end marker again, until the rewind */
        for (int i = 0; i < 3; i++) {
            const fn_batch *x;
            embed_table *e;
            uint64_t pos[2];
            CHECK(prefetch_next(pf, &x, &e, pos) == FN_OK && x->n == 0, "end marker answered again");
            prefetch_release(pf); /* a no-op on the end marker */
        }
    }
    prefetch_stop(&pf);
    CHECK(pf == NULL, "prefetch_stop clears the handle");
    reader_close(&r);
    embed_free(&shape);
    dataset_close(&ds);
    if (failures) { fprintf(stderr, "test_prefetch: %d failure(s)\n", failures); return 1; }
    printf("test_prefetch: all passed (%d batches, two epochs)\n", nref);
    return 0;
}
