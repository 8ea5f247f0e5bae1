/* worker/modelfile.h — the exported model: RUN_DIR/model/.
 *
 *   dense.bin     magic "FNLD", version 2: the model spec (preset, sharing,
 *                 loss weights, sizes, then the expert structure and the
 *                 counterfactual regulariser), the field list, then all dense
 *                 parameters (f32), CRC-32C trailer (common/binfile.h).
 *                 Version 1 (no expert or regulariser fields) still loads,
 *                 those fields taking the values its presets had.
 *   emb-K.bin     server K's rows (ps/server.h, PS_EXPORT_MAGIC): written by
 *                 the servers themselves, read here by predict.
 * Together they are everything `funnel predict` needs: no MPI, no servers. */
#ifndef FN_MODELFILE_H
#define FN_MODELFILE_H

#include <stddef.h>
#include <stdint.h>

#include "keymap.h"
#include "model.h"
#include "schema.h"

#define MODELFILE_DENSE_MAGIC 0x444C4E46u
#define MODELFILE_DENSE_VERSION 2
#define MODELFILE_EMB_MAGIC 0x454C4E46u /* == PS_EXPORT_MAGIC */
#define MODELFILE_EMB_VERSION 1

int modelfile_save_dense(const char *path, const model *m, const fn_schema *schema);

/* Loads dense.bin into a fresh model (model_init + parameters) and schema. */
int modelfile_load_dense(const char *path, model *m, fn_schema *schema);

/* All exported rows of a model: key -> dim weights. */
typedef struct {
    int dim;
    size_t n, cap;
    uint64_t *keys;
    float *rows;
    keymap index;
} modelfile_rows;

int modelfile_rows_init(modelfile_rows *r, int dim);
void modelfile_rows_free(modelfile_rows *r);
/* Adds every row of an emb-K.bin file. */
int modelfile_load_rows(modelfile_rows *r, const char *path);
/* The row of key, or NULL. */
const float *modelfile_row(const modelfile_rows *r, uint64_t key);

#endif
