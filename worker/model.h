/* worker/model.h — the towers of the entire-space multi-task models.
 *
 * A model is a set of independent axes (DESIGN.md, "The science"):
 *   - which losses, with which weights: CTR on all impressions, CVR on
 *     clicked impressions only (conditional), CTCVR = pCTR·pCVR on all
 *     impressions (entire space);
 *   - what the two towers share: nothing (a separate embedding table per
 *     tower), the embeddings, or the embeddings and bottom layers.
 * Named presets (model_preset) set these axes; the code below knows only the
 * axes, so a new preset is a table row, not a copy of the forward pass.
 *
 * Input of a tower: the pooled embeddings of its table, x[B, F*D] (field f
 * at columns [f*D, (f+1)*D)), or, when bottom layers are shared, the shared
 * bottom's output.  A tower is [in → hidden... → 1] with ReLU on hidden
 * layers; its output is a logit.  All dense parameters and their gradients
 * live in two contiguous blocks (params, grads), so the workers' allreduce
 * and the Adam step each touch one array. */
#ifndef FN_MODEL_H
#define FN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#define MODEL_MAX_LAYERS 8
#define MODEL_MAX_TABLES 2

enum { TASK_CTR = 0, TASK_CVR = 1, TASK_CTCVR = 2, TASK_COUNT = 3 };

typedef enum { SHARE_NOTHING = 0, SHARE_EMB = 1, SHARE_BOTTOM = 2 } model_share;

typedef struct {
    char preset[32];
    model_share share;
    float w_ctr, w_cvr, w_ctcvr;      /* loss weights; 0 switches a loss off */
    int n_fields, dim;
    int n_hidden, hidden[MODEL_MAX_LAYERS];  /* each tower's hidden widths */
    int n_bottom, bottom[MODEL_MAX_LAYERS];  /* shared bottom widths (SHARE_BOTTOM) */
} model_spec;

/* Sets spec's preset name, sharing and loss weights from a preset name
 * (cvr, ctr, shared-bottom, esmm, esmm-cvr, esmm-ns).  Leaves the sizes.
 * FN_OK or FN_EUSAGE listing the known presets. */
int model_preset(model_spec *spec, const char *name);
/* "cvr|ctr|shared-bottom|esmm|esmm-cvr|esmm-ns" */
extern const char *const MODEL_PRESETS;

typedef struct {
    int in, out;
    long w, b;   /* offsets of W[out,in] and b[out] in the parameter block */
} model_layer;

typedef struct {
    int n;
    int relu_last;   /* 1 for the shared bottom, 0 for towers (logit out) */
    model_layer l[MODEL_MAX_LAYERS + 1];
} model_mlp;

typedef struct {
    model_spec spec;
    int has_tower[2];        /* TASK_CTR, TASK_CVR */
    int n_tables;            /* embedding tables (1, or 2 when nothing is shared) */
    int tower_table[2];      /* which table feeds each tower */
    int has_bottom;
    model_mlp bottom, tower[2];
    long n_params;
    float *params;           /* n_params */
} model;

/* Lays out the model of spec and allocates its parameters (not yet
 * initialised).  FN_OK, FN_EINVAL (spec has no tower), FN_ENOMEM. */
int model_init(model *m, const model_spec *spec);
void model_free(model *m);

/* PyTorch's Linear initialisation: W and b uniform in ±1/sqrt(fan_in). */
void model_init_params(model *m, uint64_t seed);

/* Which of pCTR, pCVR, pCTCVR the model predicts. */
int model_predicts(const model *m, int task);

/* Per-batch buffers, sized once for batches of up to cap examples. */
typedef struct {
    int cap;
    float *x[MODEL_MAX_TABLES];    /* [B, F*D] pooled embeddings, filled by the caller */
    float *dx[MODEL_MAX_TABLES];   /* [B, F*D] gradient w.r.t. x, filled by backward */
    float *h_bottom[MODEL_MAX_LAYERS + 1], *dh_bottom[MODEL_MAX_LAYERS + 1];
    float *h[2][MODEL_MAX_LAYERS + 1], *dh[2][MODEL_MAX_LAYERS + 1];
    float *din[2];                 /* [B, tower input] gradient of each tower's input */
    float *p[TASK_COUNT];          /* [B] predictions */
} model_ws;

int model_ws_init(model_ws *ws, const model *m, int cap);
void model_ws_free(model_ws *ws);

/* Forward over B examples (ws->x filled): sets ws->p[task] for the tasks
 * the model predicts. */
void model_forward(const model *m, model_ws *ws, int B);

/* Loss of the last forward and its gradients, scaled by `scale`: grads
 * (n_params, accumulated) and ws->dx (overwritten).  click/buy are 0/1.
 * loss[task] receives each task's mean log loss (CVR over clicked
 * impressions; NaN-free: 0 when the batch has none), and counts[task] the
 * examples it was averaged over.  Returns the weighted total loss. */
double model_backward(const model *m, model_ws *ws, int B, const float *click, const float *buy,
                      float scale, float *grads, double loss[TASK_COUNT], int counts[TASK_COUNT]);

#endif
