/* worker/modelfile.c — see modelfile.h. */
#include "modelfile.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "binfile.h"
#include "fn_error.h"

#define NAME_BYTES 32

/* Header bytes: version 1 ends with the bottom widths; version 2 adds the
 * expert structure and the counterfactual regulariser. */
#define HEAD_V1 (NAME_BYTES + 4 * 4 + 4 * 2 + 4 + 4 * MODEL_MAX_LAYERS + 4 + 4 * MODEL_MAX_LAYERS)
#define HEAD_V2 (HEAD_V1 + 4 * 4 + 4 * 2)

int modelfile_save_dense(const char *path, const model *m, const fn_schema *schema)
{
    const model_spec *s = &m->spec;
    size_t total = HEAD_V2 + (size_t)schema->n * NAME_BYTES + 8 + 4 * (size_t)m->n_params;
    uint8_t *buf = calloc(1, total), *p = buf;
    if (!buf) return FN_ENOMEM;
    memcpy(p, s->preset, strnlen(s->preset, NAME_BYTES - 1)); p += NAME_BYTES;
    put_le32(p, (uint32_t)s->share); p += 4;
    put_f32(p, s->w_ctr); p += 4;
    put_f32(p, s->w_cvr); p += 4;
    put_f32(p, s->w_ctcvr); p += 4;
    put_le32(p, (uint32_t)s->n_fields); p += 4;
    put_le32(p, (uint32_t)s->dim); p += 4;
    put_le32(p, (uint32_t)s->n_hidden); p += 4;
    for (int i = 0; i < MODEL_MAX_LAYERS; i++, p += 4) put_le32(p, i < s->n_hidden ? (uint32_t)s->hidden[i] : 0);
    put_le32(p, (uint32_t)s->n_bottom); p += 4;
    for (int i = 0; i < MODEL_MAX_LAYERS; i++, p += 4) put_le32(p, i < s->n_bottom ? (uint32_t)s->bottom[i] : 0);
    put_le32(p, (uint32_t)s->n_experts); p += 4;
    put_le32(p, (uint32_t)s->n_task_experts); p += 4;
    put_le32(p, (uint32_t)s->n_levels); p += 4;
    put_le32(p, (uint32_t)s->cf); p += 4;
    put_f32(p, s->w_cf); p += 4;
    put_f32(p, s->ipw_clip); p += 4;
    for (int f = 0; f < schema->n; f++, p += NAME_BYTES) memcpy(p, schema->names[f], strlen(schema->names[f]));
    put_le64(p, (uint64_t)m->n_params); p += 8;
    for (long i = 0; i < m->n_params; i++, p += 4) put_f32(p, m->params[i]);
    binfile_w w;
    int rc = binfile_create(&w, path, MODELFILE_DENSE_MAGIC, MODELFILE_DENSE_VERSION);
    if (!rc) rc = binfile_write(&w, buf, total);
    free(buf);
    if (rc) { binfile_abort(&w); return rc; }
    return binfile_commit(&w);
}

int modelfile_load_dense(const char *path, model *m, fn_schema *schema)
{
    uint8_t *body;
    size_t len;
    uint32_t version;
    int rc = binfile_load(path, MODELFILE_DENSE_MAGIC, MODELFILE_DENSE_VERSION, &body, &len, &version);
    if (rc) return rc;
    binfile_r r = {body, len, 0, 0};
    model_spec s;
    memset(&s, 0, sizeof s);
    const uint8_t *name = binfile_take(&r, NAME_BYTES);
    if (name) memcpy(s.preset, name, NAME_BYTES - 1);
    s.share = (model_share)binfile_u32(&r);
    s.w_ctr = binfile_f32(&r);
    s.w_cvr = binfile_f32(&r);
    s.w_ctcvr = binfile_f32(&r);
    s.n_fields = (int)binfile_u32(&r);
    s.dim = (int)binfile_u32(&r);
    s.n_hidden = (int)binfile_u32(&r);
    for (int i = 0; i < MODEL_MAX_LAYERS; i++) s.hidden[i] = (int)binfile_u32(&r);
    s.n_bottom = (int)binfile_u32(&r);
    for (int i = 0; i < MODEL_MAX_LAYERS; i++) s.bottom[i] = (int)binfile_u32(&r);
    /* version 1 predates experts and the regulariser: its presets had neither */
    s.n_levels = 1;
    s.cf = CF_NONE;
    s.w_cf = 1.0f;
    s.ipw_clip = 0.05f;
    if (version >= 2) {
        s.n_experts = (int)binfile_u32(&r);
        s.n_task_experts = (int)binfile_u32(&r);
        s.n_levels = (int)binfile_u32(&r);
        s.cf = (model_cf)binfile_u32(&r);
        s.w_cf = binfile_f32(&r);
        s.ipw_clip = binfile_f32(&r);
    }
    rc = FN_OK;
    if (r.bad || s.share > SHARE_BOTTOM || s.n_fields < 1 || s.n_fields > SCHEMA_MAX_FIELDS || s.dim < 1 || s.dim > 4096 ||
        s.n_hidden < 0 || s.n_hidden > MODEL_MAX_LAYERS || s.n_bottom < 0 || s.n_bottom > MODEL_MAX_LAYERS)
        rc = fn_fail(FN_EPARSE, "%s: model header out of range", path);
    else if (s.n_experts < 0 || s.n_experts > MODEL_MAX_EXPERTS || s.n_task_experts < 0 || s.n_task_experts > MODEL_MAX_EXPERTS ||
             s.n_levels < 1 || s.n_levels > MODEL_MAX_LEVELS || (unsigned)s.cf > (unsigned)CF_DR || !isfinite(s.w_cf) || s.w_cf < 0 ||
             !(s.ipw_clip > 0 && s.ipw_clip <= 1))
        rc = fn_fail(FN_EPARSE, "%s: expert or regulariser fields out of range", path);
    for (int i = 0; !rc && i < s.n_hidden; i++)
        if (s.hidden[i] < 1 || s.hidden[i] > 1000000) rc = fn_fail(FN_EPARSE, "%s: hidden width out of range", path);
    for (int i = 0; !rc && i < s.n_bottom; i++)
        if (s.bottom[i] < 1 || s.bottom[i] > 1000000) rc = fn_fail(FN_EPARSE, "%s: bottom width out of range", path);
    char spec[SCHEMA_MAX_FIELDS * (NAME_BYTES + 1)];
    size_t at = 0;
    for (int f = 0; !rc && f < s.n_fields; f++) {
        const uint8_t *nm = binfile_take(&r, NAME_BYTES);
        if (!nm) { rc = fn_fail(FN_EPARSE, "%s: truncated field list", path); break; }
        size_t l = strnlen((const char *)nm, NAME_BYTES - 1);
        if (f) spec[at++] = ',';
        memcpy(spec + at, nm, l);
        at += l;
    }
    spec[at] = 0;
    if (!rc && schema_parse(schema, spec)) rc = fn_fail(FN_EPARSE, "%s: bad field list: %s", path, fn_err_msg());
    /* a name with a comma in it would be two fields to the schema, one to
     * the model: predict sizes the towers' input by one, fills it by the other */
    if (!rc && schema->n != s.n_fields)
        rc = fn_fail(FN_EPARSE, "%s: field list names %d fields, the model has %d", path, schema->n, s.n_fields);
    /* the parameters are laid out, counted and checked against the bytes
     * the file holds before any memory is given to them: a small corrupt
     * header must not cost gigabytes */
    if (!rc && (rc = model_layout(m, &s))) rc = fn_fail(FN_EPARSE, "%s: bad model: %s", path, fn_err_msg());
    if (!rc) {
        uint64_t n = binfile_u64(&r);
        if (r.bad || n != (uint64_t)m->n_params)
            rc = fn_fail(FN_EPARSE, "%s: %llu parameters, the model needs %ld", path, (unsigned long long)n, m->n_params);
        else if ((r.len - r.at) / 4 != n || (r.len - r.at) % 4)
            rc = fn_fail(FN_EPARSE, "%s: size does not match its header", path);
        else if (!(m->params = malloc(sizeof(float) * (size_t)n)))
            rc = fn_fail(FN_ENOMEM, "%s: out of memory for %ld dense parameters", path, m->n_params);
        for (long i = 0; !rc && i < m->n_params; i++) m->params[i] = binfile_f32(&r);
        if (!rc && (r.bad || r.at != r.len)) rc = fn_fail(FN_EPARSE, "%s: size does not match its header", path);
        if (rc) model_free(m);
    }
    free(body);
    return rc;
}

static uint64_t rows_key_of(const void *ud, uint32_t slot) { return ((const modelfile_rows *)ud)->keys[slot]; }

int modelfile_rows_init(modelfile_rows *r, int dim)
{
    memset(r, 0, sizeof *r);
    r->dim = dim;
    return keymap_init(&r->index, 1024, rows_key_of, r);
}

void modelfile_rows_free(modelfile_rows *r)
{
    keymap_free(&r->index);
    free(r->keys);
    free(r->rows);
    memset(r, 0, sizeof *r);
}

int modelfile_load_rows(modelfile_rows *r, const char *path)
{
    uint8_t *body;
    size_t len;
    uint32_t version;
    int rc = binfile_load(path, MODELFILE_EMB_MAGIC, MODELFILE_EMB_VERSION, &body, &len, &version);
    if (rc) return rc;
    binfile_r in = {body, len, 0, 0};
    uint32_t dim = binfile_u32(&in);
    uint64_t n = binfile_u64(&in);
    size_t rec = 12 + 4 * (size_t)dim;
    if (in.bad || dim != (uint32_t)r->dim) rc = fn_fail(FN_EPARSE, "%s: rows of dim %u, the model has dim %d", path, dim, r->dim);
    else if (n > (len - in.at) / rec || n * rec != len - in.at) rc = fn_fail(FN_EPARSE, "%s: %llu rows do not match the file size", path, (unsigned long long)n);
    if (!rc && r->n + n > r->cap) {
        size_t cap = r->cap ? r->cap : 1024;
        while (cap < r->n + n) cap *= 2;
        uint64_t *k = realloc(r->keys, cap * sizeof *k);
        if (k) r->keys = k;
        float *w = realloc(r->rows, cap * (size_t)r->dim * sizeof *w);
        if (w) r->rows = w;
        if (!k || !w) rc = fn_fail(FN_ENOMEM, "%s: out of memory for %llu rows", path, (unsigned long long)n);
        else r->cap = cap;
    }
    for (uint64_t i = 0; !rc && i < n; i++) {
        binfile_u32(&in); /* table id: keys of different tables never collide */
        uint64_t key = binfile_u64(&in);
        float *dst;
        uint32_t slot = keymap_find(&r->index, key);
        if (slot != KEYMAP_NONE) {
            dst = r->rows + (size_t)slot * r->dim; /* a key in two shards: impossible unless files are mixed */
            rc = fn_fail(FN_EPARSE, "%s: key %016llx also appears in another shard", path, (unsigned long long)key);
            break;
        }
        r->keys[r->n] = key;
        dst = r->rows + r->n * (size_t)r->dim;
        for (int d = 0; d < r->dim; d++) dst[d] = binfile_f32(&in);
        if (keymap_insert(&r->index, key, (uint32_t)r->n)) { rc = FN_ENOMEM; break; }
        r->n++;
    }
    free(body);
    return rc;
}

const float *modelfile_row(const modelfile_rows *r, uint64_t key)
{
    uint32_t slot = keymap_find(&r->index, key);
    return slot == KEYMAP_NONE ? NULL : r->rows + (size_t)slot * r->dim;
}
