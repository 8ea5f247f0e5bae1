/* worker/model.h — the towers of the entire-space multi-task models.
 *
 * A model is a set of independent axes (DESIGN.md, "The science"):
 *   - which losses, with which weights: CTR on all impressions, CVR on
 *     clicked impressions only (conditional), CTCVR = pCTR·pCVR on all
 *     impressions (entire space), and a counterfactual CVR regulariser over
 *     the entire space (ESCM², below);
 *   - what the two towers share: nothing (a separate embedding table per
 *     tower), the embeddings, or the embeddings and bottom layers;
 *   - how a shared bottom is built: one MLP, or gated experts (below).
 * Named presets (model_preset) set these axes; the code below knows only the
 * axes, so a new preset is a table row, not a copy of the forward pass.
 *
 * Input of a tower: the pooled embeddings of its table, x[B, F*D] (field f
 * at columns [f*D, (f+1)*D)), or, when bottom layers are shared, the shared
 * bottom's output for that tower.  A tower is [in → hidden... → 1] with ReLU
 * on hidden layers; its output is a logit.  All dense parameters and their
 * gradients live in two contiguous blocks (params, grads), so the workers'
 * allreduce and the Adam step each touch one array.
 *
 * Gated experts (share == SHARE_BOTTOM and n_experts + n_task_experts > 0).
 * Every expert is an MLP with the `bottom` widths and ReLU on every layer
 * (so the trainer's --bottom, or its split of --hidden into bottom[0] and
 * the towers' widths, sizes the experts: E = the last bottom width).  Each
 * of n_levels extraction levels has n_task_experts experts of its own per
 * task and n_experts shared ones; a task's gate is softmax(in · Wgᵀ + bg)
 * over its own and the shared experts, and its output, Σ_k g_k·expert_k
 * [B, E], is the task's input to the next level, or its tower's input after
 * the last level.  Below the last level a shared gate over all experts
 * feeds the next level's shared experts.  Level 1 reads x; the experts and
 * gate of a task (or the shared ones) at level l > 1 read that task's (or
 * the shared) level l-1 output.
 *   - MMoE (Ma et al., KDD 2018): n_experts = K, n_task_experts = 0,
 *     n_levels = 1.
 *   - PLE (Tang et al., RecSys 2020): n_experts = Ks, n_task_experts = Kt;
 *     n_levels = 1 is its single-level CGC, n_levels = 2 the two-level PLE.
 *
 * Counterfactual CVR regulariser (ESCM², Wang et al., SIGIR 2022), cf != CF_NONE
 * and w_cf > 0.  It replaces the conditional CVR loss (w_cvr must be 0: both
 * estimate the same CVR risk, ESCM² debiased over the entire space).  With
 * o_i = click_i, e_i = BCE(pCVR_i, buy_i), the propensity
 * q_i = max(pCTR_i, ipw_clip) is held constant, so the CTR tower is trained
 * by the CTR and CTCVR losses alone (PaddleRec's ESCM² detaches it for IPW):
 *   - CF_IPW, the paper's IPS counterfactual risk:
 *       L_ipw = (1/B) Σ_i o_i e_i / q_i                 trains the CVR tower.
 *   - CF_DR, the paper's doubly robust risk and imputation loss, with an
 *     imputation tower (the towers' shape, on the CVR tower's input, a linear
 *     output ê_i: an imputed CVR loss, not squashed):
 *       L_dr  = (1/B) Σ_i [ ê_i + o_i (e_i − ê_i) / q_i ]  trains the CVR tower,
 *                                                          ê_i held constant;
 *       L_imp = (1/B) Σ_i o_i (e_i − ê_i)² / q_i           trains the imputation
 *                                                          tower, e_i held constant.
 *     Each tower is trained by its own loss only.  A consequence: the CVR
 *     tower's gradient of L_dr equals that of L_ipw; what DR adds is the
 *     imputation tower's gradient into the shared input (the embeddings)
 *     and the value of the risk it reports.  (PaddleRec's ESCM²-DR holds
 *     nothing constant, so there L_imp also pulls e_i towards ê_i.)
 * Both are weighted by w_cf; the returned total is
 *   w_ctr·L_ctr + w_ctcvr·L_ctcvr + w_cf·L_ipw,   or  + w_cf·(L_dr + L_imp),
 * and the CVR slot of loss[] reports L_ipw or L_dr (an estimate of the CVR
 * log loss over the entire space), averaged over all B impressions; L_imp is
 * in the total only. */
#ifndef FN_MODEL_H
#define FN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#define MODEL_MAX_LAYERS 8
#define MODEL_MAX_TABLES 2
#define MODEL_MAX_EXPERTS 16  /* per group: each task's own, or the shared ones */
#define MODEL_MAX_LEVELS 4

enum { TASK_CTR = 0, TASK_CVR = 1, TASK_CTCVR = 2, TASK_COUNT = 3 };
/* towers 0 and 1 are the CTR and CVR tasks'; 2 is ESCM²-DR's imputation tower */
enum { TOWER_IMP = 2, TOWER_COUNT = 3 };
/* expert groups: 0 and 1 the CTR and CVR tasks' own experts, 2 the shared ones */
enum { GROUP_SHARED = 2, GROUP_COUNT = 3 };

typedef enum { SHARE_NOTHING = 0, SHARE_EMB = 1, SHARE_BOTTOM = 2 } model_share;
typedef enum { CF_NONE = 0, CF_IPW = 1, CF_DR = 2 } model_cf;

typedef struct {
    char preset[32];
    model_share share;
    float w_ctr, w_cvr, w_ctcvr;      /* loss weights; 0 switches a loss off */
    int n_fields, dim;
    int n_hidden, hidden[MODEL_MAX_LAYERS];  /* each tower's hidden widths */
    int n_bottom, bottom[MODEL_MAX_LAYERS];  /* shared bottom widths (SHARE_BOTTOM);
                                                with experts, every expert's widths */
    /* gated experts (SHARE_BOTTOM only; both 0: the bottom is one MLP) */
    int n_experts;        /* shared experts per level: MMoE's K, PLE's Ks */
    int n_task_experts;   /* each task's own experts per level: PLE's Kt */
    int n_levels;         /* extraction levels, >= 1 */
    /* counterfactual CVR regulariser (ESCM²) */
    model_cf cf;
    float w_cf;           /* its weight; 0 switches it off */
    float ipw_clip;       /* propensity floor: pCTR is clipped to [ipw_clip, 1] */
} model_spec;

/* Sets spec's preset name, sharing, loss weights, expert structure and
 * regulariser from a preset name (see MODEL_PRESETS).  Leaves the sizes
 * (n_fields, dim, hidden, bottom).  FN_OK or FN_EUSAGE listing the presets. */
int model_preset(model_spec *spec, const char *name);
/* "cvr|ctr|shared-bottom|esmm|esmm-cvr|esmm-ns|mmoe|ple|escm2-ipw|escm2-dr" */
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

/* The gated experts.  All experts of a level have one shape: `expert[l]`
 * holds offsets relative to an expert's first parameter, and expert j of
 * level l starts at at[l] + j·stride[l].  Experts are numbered by group:
 * first[g] .. first[g]+count[g]-1. */
typedef struct {
    int n_levels, width;                       /* width = E, every expert's output */
    int n, first[GROUP_COUNT], count[GROUP_COUNT];
    int group[GROUP_COUNT * MODEL_MAX_EXPERTS]; /* the group of each expert */
    int n_vis[GROUP_COUNT], vis[GROUP_COUNT][GROUP_COUNT * MODEL_MAX_EXPERTS]; /* experts a gate mixes */
    int has_gate[MODEL_MAX_LEVELS][GROUP_COUNT];
    model_mlp expert[MODEL_MAX_LEVELS];
    long at[MODEL_MAX_LEVELS], stride[MODEL_MAX_LEVELS];
    model_layer gate[MODEL_MAX_LEVELS][GROUP_COUNT];  /* [in → n_vis] logits */
} model_moe;

typedef struct {
    model_spec spec;
    int has_tower[TOWER_COUNT];   /* TASK_CTR, TASK_CVR, TOWER_IMP */
    int n_tables;            /* embedding tables (1, or 2 when nothing is shared) */
    int tower_table[TOWER_COUNT]; /* which table feeds each tower */
    int has_bottom;          /* a shared bottom MLP */
    int has_experts;         /* a shared bottom of gated experts */
    int cf_on;               /* the counterfactual regulariser is on */
    model_mlp bottom, tower[TOWER_COUNT];
    model_moe moe;
    long n_params;
    float *params;           /* n_params */
} model;

/* Lays out the model of spec and allocates its parameters (not yet
 * initialised).  FN_OK, FN_EINVAL (spec has no tower, or an impossible
 * combination of axes, with the reason), FN_ENOMEM. */
int model_init(model *m, const model_spec *spec);
/* model_init without the allocation (m->params stays NULL): how a loader
 * checks m->n_params against its file before trusting it with memory. */
int model_layout(model *m, const model_spec *spec);
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
    float *h[TOWER_COUNT][MODEL_MAX_LAYERS + 1], *dh[TOWER_COUNT][MODEL_MAX_LAYERS + 1];
    float *din[TOWER_COUNT];       /* [B, tower input] gradient of each tower's input */
    float *p[TASK_COUNT];          /* [B] predictions */
    /* gated experts, per level l: */
    float *eh[MODEL_MAX_LEVELS][MODEL_MAX_LAYERS + 1];  /* [n, B, width of layer] expert j at j·B·width */
    float *edh[MODEL_MAX_LEVELS][MODEL_MAX_LAYERS + 1]; /* same shape: their gradients */
    float *gate[MODEL_MAX_LEVELS][GROUP_COUNT];  /* [B, n_vis] softmax weights */
    float *mix[MODEL_MAX_LEVELS][GROUP_COUNT];   /* [B, E] a group's output */
    float *dmix[MODEL_MAX_LEVELS][GROUP_COUNT];  /* [B, E] its gradient */
    float *dgate;                  /* [B, max n_vis] scratch */
    float *scratch;                /* [B, max(F*D, E)] an input gradient before it is summed */
    /* counterfactual regulariser: the quantities held constant, [B] each */
    float *cf_q, *cf_e, *cf_ehat;  /* propensity, CVR loss e, imputed ê */
    int cf_hold;  /* 0 (training, predict): backward computes them from the last
                     forward and keeps them here; 1: backward reuses the kept
                     values, so the returned loss is the surrogate whose exact
                     gradient backward computes — how tests/unit/test_model.c
                     checks the stop-gradients by finite differences */
    /* threads (model_ws_parallel): every MLP's rows are split among them;
     * thread j > 0 accumulates parameter gradients into its own block
     * gpriv[j] (the grads layout), summed into grads after the MLP */
    struct par *pool;
    float *gpriv[64];              /* PAR_MAX */
    float *grads_base;             /* the grads of the running backward */
} model_ws;

int model_ws_init(model_ws *ws, const model *m, int cap);
/* Forward and backward from now on split each MLP's rows among the pool's
 * threads (NULL or 1 thread: one thread).  The pool stays the caller's.
 * FN_OK or FN_ENOMEM. */
int model_ws_parallel(model_ws *ws, const model *m, struct par *pool);
void model_ws_free(model_ws *ws);

/* Forward over B examples (ws->x filled): sets ws->p[task] for the tasks
 * the model predicts. */
void model_forward(const model *m, model_ws *ws, int B);

/* Loss of the last forward and its gradients, scaled by `scale`: grads
 * (n_params, accumulated) and ws->dx (overwritten).  click/buy are 0/1.
 * loss[task] receives each task's mean log loss (CVR over clicked
 * impressions; NaN-free: 0 when the batch has none), and counts[task] the
 * examples it was averaged over.  With the counterfactual regulariser on,
 * the CVR slot holds L_ipw or L_dr instead, over all B impressions (see the
 * top of this file).  Returns the weighted total loss. */
double model_backward(const model *m, model_ws *ws, int B, const float *click, const float *buy,
                      float scale, float *grads, double loss[TASK_COUNT], int counts[TASK_COUNT]);

#endif
