/* common/world.h — the synthetic world behind `funnel datagen`.
 *
 * Owns the population (users with profiles, histories and latent tastes;
 * ads with category, shop, brand, intention node and latents), the fixed
 * model constants, and the request simulator that turns one draw of the
 * RNG into one request: a user, the ads shown to them in order, each
 * impression's true pCTR / pCVR and its click and (counterfactual)
 * conversion labels; and the calibration of the two intercepts on a pilot
 * of such requests.  The generative model itself is written out in the
 * header comment of common/datagen.c; every constant it names lives in
 * world_consts, and world.json records them.
 *
 * Memory is O(users + ads + categories + shops + brands + history items):
 * 8 bytes per history item, ~26 items per user by default and ~860 with
 * behavior 859 (~7 KB per user); nothing here is ever O(impressions).  Everything is a pure function of the parameters and
 * of the RNG streams the caller passes in, so the same seed gives the same
 * world on every run.  Only datagen.c uses this module. */
#ifndef FN_WORLD_H
#define FN_WORLD_H

#include <stddef.h>
#include <stdint.h>

#include "hash.h"

#define WORLD_MAX_IMPS   64   /* impressions per request */
#define WORLD_REQ_TRIALS 7    /* default request: 1 + Binomial(7, 3/7) impressions */
#define WORLD_MAX_RUN    32   /* largest mean run length K (world_run_length) */
#define WORLD_CAND_MULT  3    /* candidates drawn per shown slot */
#define WORLD_MAX_HIST   10   /* items per history list by default (behavior 0) */
#define WORLD_MAX_BEHAVIOR 20000  /* largest behavior: lists stay < 2^16 items */
#define WORLD_MAX_COUNT  50   /* interaction count cap; weight = log(1+count) */
#define WORLD_PROFILE    8    /* profile fields 121,122,124,125,126,127,128,129 */
#define WORLD_POSITIONS  5    /* field 301 */

/* The history lists of a user, in the order of their Ali-CCP fields. */
enum { WORLD_H_CAT, WORLD_H_SHOP, WORLD_H_BRAND, WORLD_H_NODE, WORLD_N_HIST };

/* Vocabulary of each profile field, indexed like world_user.profile. */
extern const uint32_t world_profile_vocab[WORLD_PROFILE];

/* Ali-CCP's mean history lengths per common line (109_14, 110_14, 127_14,
 * 150_14), summing to 859: with behavior N, list h has mean length
 * N · world_behavior_share[h] / 859. */
extern const double world_behavior_share[WORLD_N_HIST];

/* What the user chooses on the command line. */
typedef struct {
    uint64_t seed;
    double share;          /* [0,1]: weight of the click affinity in the conversion affinity */
    double exposure_bias;  /* >= 0: exposure ~ exp(e * click affinity) */
    double click_bias;     /* >= 0: multiplier of the click affinity in the click logit */
    double zipf;           /* ad popularity exponent */
    double user_zipf;      /* user activity exponent */
    uint32_t users, ads, categories, shops, brands, dim;
    uint32_t behavior;     /* 0: light histories (3..10 items a list); N > 0: ~N items a user */
} world_params;

/* The fixed constants of the model (see datagen.c).  Mixing weights are
 * variance shares: a latent = Σ sqrt(share_i) · part_i, Σ share_i = 1. */
typedef struct {
    double zipf_offset;        /* Zipf–Mandelbrot: weight(rank r>=1) = (r + offset)^-s */
    double cat_zipf;           /* popularity exponent of categories, shops, brands */
    double shop_cat_p;         /* P(ad's category = its shop's main category) */
    double hist_continue;      /* P(count > c | count >= c) of a history item */
    double retrieval_p;        /* P(a candidate comes from the user's categories) */
    double ad_c_cat, ad_c_brand, ad_c_own;     /* c_ad = appeal */
    double ad_d_cat, ad_d_brand, ad_d_own;     /* d_ad = purchase fit */
    double user_a_cat, user_a_brand, user_a_own;  /* a_u = click taste */
    double user_b_cat, user_b_brand, user_b_own;  /* b_u = purchase taste */
    double w_click_aff;        /* click logit weight of A_c (times click_bias) */
    double w_conv_aff;         /* conversion logit weight of A_v */
    double sd_user_click_group, sd_user_click_own;  /* user click propensity */
    double ad_pop_slope, sd_ad_click;                 /* ad click propensity */
    double position[WORLD_POSITIONS];                 /* click logit, per slot */
    double hit_bonus[WORLD_N_HIST];                   /* click logit, per cross hit */
    double sd_shop_quality, sd_ad_quality;            /* conversion logit */
    double sd_user_cvr_122, sd_user_cvr_124;          /* conversion logit */
    double p_min;              /* probabilities clamped to [p_min, 1 - p_min] */
    uint32_t cross_buckets;    /* vocabulary of 508/509/702/853 */
} world_consts;

typedef struct { uint32_t id, count; } world_hist_item;

typedef struct {
    uint32_t hist_off;                /* into world.hist; lists follow each other */
    uint16_t hist_len[WORLD_N_HIST];
    uint8_t profile[WORLD_PROFILE];   /* local ids, < world_profile_vocab[j] */
    float click_bias, cvr_bias;       /* logit terms */
} world_user;

typedef struct {
    uint32_t category, shop, brand, node;
    float click_bias, quality;        /* logit terms */
} world_ad;

typedef struct {
    world_params p;
    world_consts k;
    uint32_t nodes;                   /* intention nodes: ceil(categories / 4) */
    double alpha_c, alpha_v;          /* intercepts, set by calibration */

    world_user *user;                 /* [users] */
    world_ad *ad;                     /* [ads] */
    world_hist_item *hist;            /* pooled history lists, sorted by id each */
    float *ua, *ub;                   /* [users · dim] a_u, b_u */
    float *ac, *ad_d;                 /* [ads · dim] c_ad, d_ad */
    uint32_t *cat_node;               /* [categories] */

    /* samplers (alias tables) and the ads of each category (CSR) */
    struct world_alias { float *prob; uint32_t *alias; uint32_t n; } user_pick, ad_pick, cat_pick;
    uint32_t *cat_start;              /* [categories + 1] */
    uint32_t *cat_ads;                /* [ads], grouped by category */
    double *cat_cum;                  /* [ads], cumulative popularity within category */

    double inv_sqrt_dim;

    /* histories: longest possible list, and what building them realised */
    uint32_t hist_max[WORLD_N_HIST];
    double hist_mean[WORLD_N_HIST];   /* target mean length (behavior > 0), else 0 */
    uint64_t hist_items[WORLD_N_HIST];    /* items over all users */
    uint64_t hist_fallback[WORLD_N_HIST]; /* of which drawn by the fallback (behavior > 0) */
} world;

/* One impression of a request, in shown order (slot i has position min(i, 4)). */
typedef struct {
    uint32_t ad;
    uint8_t position;
    uint8_t hit;                      /* bit h set: cross hit of history list h */
    uint8_t click, conv;              /* conv drawn for every impression */
    uint32_t hit_count[WORLD_N_HIST]; /* the matching history item's count */
    double aff_click, aff_conv;       /* A_c, A_v */
    double zc, zv;                    /* logits without the intercepts */
    double pctr, pcvr;                /* with the current intercepts, clamped */
} world_imp;

typedef struct {
    uint32_t user;
    int n;
    world_imp imp[WORLD_MAX_IMPS];
} world_req;

/* Builds the world.  Returns FN_OK, FN_EINVAL or FN_ENOMEM (detail in
 * fn_err_msg()); on failure *out is NULL. */
int world_new(world **out, const world_params *p);
void world_destroy(world **w);

/* Draws one request of at most max_imps (1..WORLD_MAX_IMPS) impressions
 * from r, including labels, with the current alpha_c / alpha_v: a user by
 * activity, 1 + Binomial(7, 3/7) impressions (cut to max_imps), then as
 * world_draw_request_of. */
void world_draw_request(const world *w, fn_rng *r, int max_imps, world_req *q);

/* A user by activity. */
uint32_t world_draw_user(const world *w, fn_rng *r);

/* Draws one request of user u with exactly n (1..WORLD_MAX_IMPS)
 * impressions: candidates, ranking, labels. */
void world_draw_request_of(const world *w, fn_rng *r, uint32_t u, int n, world_req *q);

/* The length of a run of about k (1..WORLD_MAX_RUN) impressions:
 * 1 + Binomial(2(k-1), 1/2), so mean k and range 1..2k-1; 1 for k = 1
 * (without drawing). */
int world_run_length(fn_rng *r, int k);

/* What the calibration pilot realised with the fitted intercepts. */
typedef struct { double mean_pctr, cvr_clicked, mean_pcvr; } world_pilot;

/* Sets alpha_c, then alpha_v, by bisection on a pilot of n_pilot (>= 1)
 * impressions drawn from their own stream of the seed, so that the mean
 * pCTR is ctr and Σ pCTR·pCVR / Σ pCTR (the CVR among clicks) is cvr.
 * The pilot's requests are shaped like the splits': run_k = 0 draws them
 * with world_draw_request, run_k >= 1 as a user by activity and a request
 * of world_run_length(run_k) impressions.  Warns if a target is out of
 * reach.  Returns FN_OK or FN_ENOMEM. */
int world_calibrate(world *w, size_t n_pilot, double ctr, double cvr, int run_k, world_pilot *out);

/* The history list h of user u (length in *n). */
const world_hist_item *world_hist(const world *w, uint32_t u, int h, int *n);

/* Local id (< cross_buckets) of the cross feature of history list h for
 * user u and the ad-side id v (category, shop, brand or node). */
uint32_t world_cross_id(const world *w, int h, uint32_t u, uint32_t v);

/* log(1 + count), the weight of a history item. */
double world_hist_weight(uint32_t count);

/* clamp(1 / (1 + exp(-z)), p_min, 1 - p_min) */
double world_prob(const world *w, double z);

#endif
