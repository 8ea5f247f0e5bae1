/* tests/fuzz/fuzz_modelfile.c — libFuzzer target for the loaders of
 * funnel's binary files: the exported model (worker/modelfile.c:
 * modelfile_load_dense for dense.bin, modelfile_load_rows for emb-K.bin) and
 * the container under them (common/binfile.c: size, magic, version, CRC).
 * Checkpoints will use the same container: their loader is one more row of
 * loaders[] below.
 *
 * Every loader reads the input twice: as given (the container's checks),
 * and "sealed" — the loader's magic written over the first 4 bytes and the
 * trailing CRC-32C recomputed — since random mutations almost never keep a
 * CRC valid and would otherwise never reach the body parser.  Properties:
 *   - a refusal is an error code with a one-line message;
 *   - an accepted dense.bin has as many fields in its schema as its model
 *     has (predict sizes the towers' input by one and fills it by the
 *     other), and saving it and loading it back gives the same model and
 *     field list, parameters bit for bit;
 *   - an accepted emb-K.bin finds each of its keys at its own row, and
 *     loading it a second time into the same rows is refused (a key in two
 *     shards) without changing them.
 * The sanitizers catch out-of-bounds access, undefined behaviour, leaks and
 * (libFuzzer's -malloc_limit_mb) allocations a small file must not cause.
 *
 * Seeds: tests/fuzz/corpus/modelfile/ (models of each preset, written by a
 * real `funnel train`, a version-1 dense.bin and small emb files). */
#include <string.h>

#include "binfile.h"
#include "fn_error.h"
#include "fuzz_util.h"
#include "model.h"
#include "modelfile.h"
#include "schema.h"

static void check_refusal(int rc, const char *what)
{
    const char *m = fn_err_msg();
    REQUIRE(rc > FN_OK && rc < FN_ERR_COUNT, "%s: bad error code %d", what, rc);
    REQUIRE(m[0] && !strchr(m, '\n'), "%s: error %d without a one-line reason: '%s'", what, rc, m);
}

static void same_model(const model *a, const fn_schema *sa, const model *b, const fn_schema *sb)
{
    const model_spec *x = &a->spec, *y = &b->spec;
    REQUIRE(!strcmp(x->preset, y->preset) && x->share == y->share && x->n_fields == y->n_fields && x->dim == y->dim &&
                x->n_hidden == y->n_hidden && x->n_bottom == y->n_bottom && x->n_experts == y->n_experts &&
                x->n_task_experts == y->n_task_experts && x->n_levels == y->n_levels && x->cf == y->cf,
            "spec changed in a save and load");
    REQUIRE(!memcmp(&x->w_ctr, &y->w_ctr, 4) && !memcmp(&x->w_cvr, &y->w_cvr, 4) && !memcmp(&x->w_ctcvr, &y->w_ctcvr, 4) &&
                !memcmp(&x->w_cf, &y->w_cf, 4) && !memcmp(&x->ipw_clip, &y->ipw_clip, 4),
            "weights changed in a save and load");
    REQUIRE(!memcmp(x->hidden, y->hidden, sizeof(int) * (size_t)x->n_hidden) &&
                !memcmp(x->bottom, y->bottom, sizeof(int) * (size_t)x->n_bottom),
            "widths changed in a save and load");
    REQUIRE(a->n_params == b->n_params && !memcmp(a->params, b->params, sizeof(float) * (size_t)a->n_params),
            "parameters changed in a save and load");
    REQUIRE(sa->n == sb->n, "field count changed in a save and load");
    for (int f = 0; f < sa->n; f++) REQUIRE(!strcmp(sa->names[f], sb->names[f]), "field %d changed in a save and load", f);
}

static void load_dense(const char *path, const uint8_t *data, size_t size)
{
    (void)data;
    (void)size;
    model m;
    static fn_schema schema, schema2;
    int rc = modelfile_load_dense(path, &m, &schema);
    if (rc) {
        check_refusal(rc, "modelfile_load_dense");
        return;
    }
    REQUIRE(schema.n == m.spec.n_fields, "schema has %d fields, the model %d", schema.n, m.spec.n_fields);
    REQUIRE(m.params && m.n_params > 0, "a model without parameters");
    char out[96];
    snprintf(out, sizeof out, "%s/c", fuzz_dir);
    REQUIRE(modelfile_save_dense(out, &m, &schema) == FN_OK, "cannot save: %s", fn_err_msg());
    model m2;
    rc = modelfile_load_dense(out, &m2, &schema2);
    REQUIRE(rc == FN_OK, "a saved model does not load: %s", fn_err_msg());
    same_model(&m, &schema, &m2, &schema2);
    model_free(&m2);
    model_free(&m);
}

static void load_rows(const char *path, const uint8_t *data, size_t size)
{
    /* the dim the file claims, so that its rows are read (the loader
     * refuses a dim other than the model's) */
    uint32_t dim = size >= 12 ? get_le32(data + 8) : 1;
    if (dim < 1 || dim > 4096) dim = 1;
    modelfile_rows r;
    REQUIRE(modelfile_rows_init(&r, (int)dim) == FN_OK, "out of memory");
    int rc = modelfile_load_rows(&r, path);
    if (rc) {
        check_refusal(rc, "modelfile_load_rows");
    } else {
        for (size_t i = 0; i < r.n; i++)
            REQUIRE(modelfile_row(&r, r.keys[i]) == r.rows + i * dim, "row %zu not found by its key", i);
        size_t n = r.n;
        rc = modelfile_load_rows(&r, path);
        if (n) {
            REQUIRE(rc == FN_EPARSE, "the same rows loaded twice");
            check_refusal(rc, "modelfile_load_rows");
            REQUIRE(r.n == n, "a refused file changed the rows");
        } else {
            REQUIRE(rc == FN_OK && r.n == 0, "an empty file loaded twice");
        }
    }
    modelfile_rows_free(&r);
}

/* Every loader of a binfile container: its magic and its check.  Adding the
 * checkpoint loader is one more row. */
static const struct {
    uint32_t magic;
    void (*load)(const char *path, const uint8_t *data, size_t size);
} loaders[] = {
    {MODELFILE_DENSE_MAGIC, load_dense},
    {MODELFILE_EMB_MAGIC, load_rows},
};
#define N_LOADERS (sizeof loaders / sizeof loaders[0])

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_setup("fuzz_modelfile");
    const char *raw = fuzz_file("a", data, size);
    for (size_t k = 0; k < N_LOADERS; k++) loaders[k].load(raw, data, size);
    if (size < 12) return 0;
    uint8_t *sealed = malloc(size);
    REQUIRE(sealed, "out of memory");
    memcpy(sealed, data, size);
    for (size_t k = 0; k < N_LOADERS; k++) {
        put_le32(sealed, loaders[k].magic);
        put_le32(sealed + size - 4, fn_crc32c(0, sealed, size - 4));
        loaders[k].load(fuzz_file("b", sealed, size), sealed, size);
    }
    free(sealed);
    return 0;
}
