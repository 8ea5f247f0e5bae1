/* common/datagen.c — `funnel datagen`: a synthetic world in the Ali-CCP
 * format whose true click and conversion probabilities are known.
 *
 * Called by launch/main.c for `funnel datagen ...` (and by
 * tests/unit/test_datagen.c).  Owns the command line, the streaming
 * writers of the CSV files, the realised statistics and world.json.  The
 * population, the request simulator and the calibration of the intercepts
 * are common/world.c; the model they implement is written out here, because
 * this is what "truth" means in every experiment that uses these files.
 * Nothing is ever held per impression: each line is written as it is drawn,
 * so memory is O(users + ads + history items) whatever --train and --test
 * are (8 bytes per history item: ~26 a user by default, ~860 with
 * --behavior 859; plus one bit per md5 of a pool).  Same flags and seed =>
 * byte-identical files.
 *
 * THE GENERATIVE MODEL
 * k = --dim-latent.  Latent vectors have i.i.d. N(0,1) components, so x·y/√k
 * of two independent ones has variance 1.  "Mix" weights below are variance
 * shares (x = Σ √share_i · part_i).
 *
 * Popularity.  Ids are ranked by a random permutation; the id of rank
 * r = 1, 2, ... has weight (r + 10)^-s (Zipf–Mandelbrot; the offset keeps the
 * head from swallowing the world).  s = --zipf for ads, --user-zipf for users,
 * 1 for categories, shops and brands.
 *
 * Catalogue.
 *   category c   node(c) uniform over N = ceil(categories / 4) intention
 *                nodes; click latent g_c, purchase latent g'_c
 *   brand b      click latent h_b, purchase latent h'_b
 *   shop s       main category (by category popularity); quality Q_s ~ N(0,1)
 *   ad           shop by shop popularity; category = the shop's main one
 *                with probability 0.7, else by category popularity; brand by
 *                brand popularity; node = node(category);
 *                c_ad = √.5 g_cat + √.2 h_brand + √.3 ε   (appeal)
 *                d_ad = √.4 g'_cat + √.2 h'_brand + √.4 ε' (purchase fit)
 *                κ_ad = 0.15 · std(log popularity) + 0.4 N(0,1)  (click)
 *                q_ad = 0.4 Q_shop + 0.35 N(0,1)                 (conversion)
 * Users.
 *   profile      121,122,124,125,126,127,128,129 uniform on vocabularies
 *                100,3,8,10,5,4,3,10
 *   109_14       3..10 distinct categories, each that of an ad drawn by
 *                popularity (so popular ads' categories), each with a count
 *                n = 1 + Geometric (P(n+1 | n) = 0.55, n <= 50); weight log(1+n)
 *   110_14,      3..10 distinct shops / brands: those of ads drawn by
 *   127_14       popularity within a category drawn uniformly from 109_14
 *   150_14       the nodes of the 109_14 categories (counts summed), topped
 *                up with random nodes to 3 (nodes of categories drawn by
 *                popularity)
 *   --behavior N > 0 (Ali-CCP-sized histories): the same lists drawn the
 *                same way, but list h has length uniform in [0.5, 1.5] x
 *                N·(117, 342, 209, 191)/859 (rounded, >= 1, <= the field's
 *                vocabulary) -- the mean lengths of 109_14, 110_14, 127_14,
 *                150_14 on an Ali-CCP common line; 150_14 is topped up to
 *                its length (it keeps all the nodes of 109_14 if those are
 *                more).  A list draws 20 candidates per wanted item; if
 *                distinct ids run out first, the rest are uniform ids not
 *                yet in the list (uniform start, next free id), counted in
 *                world.json ("histories": "fallback_share").
 *   M(L, x)      = Σ_i w_i x_i / √(Σ_i w_i²) over history list L (unit variance)
 *   a_u          = √.45 M(109_14, g) + √.15 M(127_14, h) + √.4 ε   (click taste)
 *   b_u          = √.3 M(109_14, g') + √.1 M(127_14, h') + √.6 ε'  (purchase taste)
 *   κ_u          = T121[profile 121] + 0.35 N(0,1), T121[.] ~ N(0, 0.3²)
 *   ν_u          = T122[profile 122] + T124[profile 124], sd 0.15 and 0.2
 * Requests (one common line each, its own md5).  A user by activity;
 *   n = 1 + Binomial(7, 3/7) impressions (1..8, mean 4; the last request of
 *   a split is cut to fit).
 * Pools (--impressions-per-request K >= 1; M = --impressions-per-md5).
 *   Each split has a pool of R = ceil(impressions / M) md5s, md5 i with
 *   user u_i by activity (drawn from a stream of its own, so nothing is
 *   stored per md5), each written once to the common file, in pool order.
 *   The skeleton is a sequence of runs: a run has n = 1 + Binomial(2(K-1),
 *   1/2) impressions (mean K; K = 1: always 1; the last run is cut to fit),
 *   an md5 i drawn UNIFORMLY from the pool (so ~M impressions per md5,
 *   Poisson-spread; heavy users get more md5s, not longer ones) and one
 *   request of u_i with n impressions.  K = 1 scatters an md5's
 *   impressions over the whole file; K = 6 writes them in runs of ~6.
 *   The calibration pilot draws its requests the same way (user by
 *   activity, a run of about K).
 * Every request:  3n distinct candidate ads, each with
 *   probability 0.3 a popular ad (by popularity within the category) of a
 *   category drawn uniformly from the user's 109_14 ("retrieval"), else an
 *   ad by global popularity.  A_c(u,ad) = a_u·c_ad/√k.  The shown ads are
 *   the first n of a Plackett–Luce ranking of the candidates with weights
 *   exp(e · A_c), e = --exposure-bias (Gumbel-top-n), in that order; slot i
 *   (from 0) has position min(i, 4) (field 301).  So e > 0 makes exposure
 *   depend on the taste that also drives clicks and (through s)
 *   conversions; e = 0 shows a uniformly random subset of the candidates.
 * Impressions.
 *   H_cat = [ad's category in the user's 109_14], H_shop (110_14), H_brand
 *   (127_14), H_node (150_14); the cross features 508, 509, 702, 853 are
 *   present exactly when these hit, valued with the history item's weight.
 *   A_v = s · A_c + √(1-s²) · b_u·d_ad/√k            s = --share
 *   logit pCTR = α_c + b · (0.5 A_c + 0.25 H_cat + 0.15 H_shop + 0.15 H_brand
 *                              + 0.1 H_node) + κ_u + κ_ad + π[position]
 *                b = --click-bias, π = (0.35, 0.15, 0, -0.15, -0.3)
 *   b scales every click factor that is correlated with conversion (the
 *   hits share the category and brand latents with A_v); κ_u, κ_ad and π
 *   are not (π only through the ranking, when e > 0).
 *   logit pCVR = α_v + 0.9 · A_v + q_ad + ν_u
 *   Both clamped to [1e-6, 1 - 1e-6].  click ~ Bernoulli(pCTR); conv ~
 *   Bernoulli(pCVR) independently, for EVERY impression; buy = click ∧ conv.
 *   pCVR is thus P(buy | click, features) and also the entire-space
 *   conversion propensity; it does not depend on position.  Selection bias:
 *   clicks favour high A_c, which (s > 0) carries high A_v, so the CVR among
 *   clicked impressions exceeds the CVR over all impressions.
 * Calibration.  α_c and α_v are bisected on a pilot of --pilot impressions
 *   (250,000) from their own RNG stream (independent of --train/--test): mean
 *   pCTR = --ctr and Σ pCTR·pCVR / Σ pCTR (the CVR among clicks) = --cvr.
 * Shapes.  --shape aliccp presets the public Ali-CCP set's proportions
 *   (see shape_aliccp()); every flag given explicitly wins over it.
 * RNG streams.  World, pilot, train and test each have their own stream
 *   derived from --seed; train and test are independent draws of requests
 *   from the same world; the test split does not depend on --train except
 *   for its sample_ids, which continue after the train ones (from 1).
 *
 * FILES (in --out, created if missing)
 *   sample_skeleton_{train,test}.csv  sample_id,click,buy,md5,count,features
 *   common_features_{train,test}.csv  md5,count,features
 *   truth_{train,test}.csv            sample_id,pctr,pcvr,conv (header line)
 *   world.json                        parameters, constants, intercepts,
 *                                     field id ranges, realised statistics
 * features = items field\x02id\x03value joined by \x01.  The feature id of
 * local id v (from 0) of a field is first_id(field) + v, the fields' ranges
 * laid end to end from 1 in the order of dg_field_name[] (world.json lists
 * first_id and vocab of each), so an id names its field.
 * Single-valued fields have value 1; history lists and crosses log(1+n). */
#include "datagen.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fn_error.h"
#include "log.h"
#include "mkdirs.h"
#include "world.h"

#define DG_BUF       (1u << 20)   /* bytes per output buffer, at least */
#define DG_LINE_MAX  (16u << 10)  /* bytes kept free for one skeleton or truth line */
#define DG_ITEM_MAX  44           /* bytes of one feature item: 1 + name 6 + 2 + id 20 + value 15 */

/* --shape aliccp (shape_aliccp) */
#define DG_ALICCP_USERS_PER_MD5  0.55     /* 0.4M users / 730k md5s */
#define DG_ALICCP_MIN_USERS      1000
#define DG_ALICCP_IMPS_PER_AD    20.0     /* 84M impressions / 4.3M items */
#define DG_ALICCP_MIN_ADS        50000
#define DG_ALICCP_CATEGORIES     4000     /* 1000 nodes: ~191 (up to 287) drawable by popularity */
#define DG_ALICCP_ADS_PER_SHOP   2.0      /* shops and brands */
#define DG_ALICCP_MIN_SHOPS      40000
#define DG_AUC_BINS  (1u << 17)   /* logit histogram for the AUCs */
#define DG_AUC_LO    (-40.0)
#define DG_AUC_HI    20.0

/* ---- fields ------------------------------------------------------------- */

enum {
    F_101, F_121, F_122, F_124, F_125, F_126, F_127, F_128, F_129,
    F_109_14, F_110_14, F_127_14, F_150_14,
    F_205, F_206, F_207, F_210, F_216, F_301,
    F_508, F_509, F_702, F_853,
    DG_NFIELDS
};

static const char *const dg_field_name[DG_NFIELDS] = {
    "101", "121", "122", "124", "125", "126", "127", "128", "129",
    "109_14", "110_14", "127_14", "150_14",
    "205", "206", "207", "210", "216", "301",
    "508", "509", "702", "853",
};

typedef struct {
    uint64_t first[DG_NFIELDS], vocab[DG_NFIELDS];
    uint8_t name_len[DG_NFIELDS];
    char weight[WORLD_MAX_COUNT + 1][16];  /* "%.5f" of log(1+n) */
} dg_fields;

static void fields_init(dg_fields *f, const world *w)
{
    const world_params *p = &w->p;
    uint64_t v[DG_NFIELDS] = {
        [F_101] = p->users,
        [F_109_14] = p->categories, [F_110_14] = p->shops, [F_127_14] = p->brands, [F_150_14] = w->nodes,
        [F_205] = p->ads, [F_206] = p->categories, [F_207] = p->shops, [F_210] = w->nodes,
        [F_216] = p->brands, [F_301] = WORLD_POSITIONS,
        [F_508] = w->k.cross_buckets, [F_509] = w->k.cross_buckets,
        [F_702] = w->k.cross_buckets, [F_853] = w->k.cross_buckets,
    };
    for (int j = 0; j < WORLD_PROFILE; j++) v[F_121 + j] = world_profile_vocab[j];
    uint64_t next = 1;
    for (int i = 0; i < DG_NFIELDS; i++) {
        f->first[i] = next;
        f->vocab[i] = v[i];
        f->name_len[i] = (uint8_t)strlen(dg_field_name[i]);
        next += v[i];
    }
    for (uint32_t n = 0; n <= WORLD_MAX_COUNT; n++)
        snprintf(f->weight[n], sizeof f->weight[n], "%.5f", world_hist_weight(n));
}

/* ---- buffered output ---------------------------------------------------- */

typedef struct {
    FILE *f;
    char *buf;
    size_t len, cap;      /* bytes in buf, bytes of buf */
    size_t line_max;      /* bytes kept free for one line */
    int failed;           /* errno of the first failed write, 0 if none */
    char path[PATH_MAX];
} dg_file;

/* Opens dir/name for lines of at most line_max bytes. */
static int file_open(dg_file *o, const char *dir, const char *name, size_t line_max)
{
    memset(o, 0, sizeof *o);
    snprintf(o->path, sizeof o->path, "%s/%s", dir, name);
    o->line_max = line_max;
    o->cap = 4 * line_max > DG_BUF ? 4 * line_max : DG_BUF;
    o->buf = malloc(o->cap);
    if (!o->buf) return fn_fail(FN_ENOMEM, "funnel datagen: out of memory");
    o->f = fopen(o->path, "wb");
    if (!o->f) {
        int e = errno;
        free(o->buf);
        o->buf = NULL;
        return fn_fail(FN_EIO, "funnel datagen: cannot create %s: %s", o->path, strerror(e));
    }
    return FN_OK;
}

static void file_flush(dg_file *o)
{
    if (o->len && !o->failed && fwrite(o->buf, 1, o->len, o->f) != o->len) o->failed = errno ? errno : EIO;
    o->len = 0;
}

/* Makes room for one line (at most o->line_max bytes). */
static inline void file_reserve(dg_file *o)
{
    if (o->len + o->line_max > o->cap) file_flush(o);
}

static int file_close(dg_file *o)
{
    if (!o->f) return FN_OK;
    file_flush(o);
    if (fclose(o->f) && !o->failed) o->failed = errno ? errno : EIO;
    o->f = NULL;
    free(o->buf);
    o->buf = NULL;
    if (o->failed) return fn_fail(FN_EIO, "funnel datagen: writing %s: %s", o->path, strerror(o->failed));
    return FN_OK;
}

static inline void put_c(dg_file *o, char c) { o->buf[o->len++] = c; }

static inline void put_s(dg_file *o, const char *s, size_t n)
{
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static inline void put_u64(dg_file *o, uint64_t v)
{
    char t[20];
    int n = 0;
    do { t[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) o->buf[o->len++] = t[--n];
}

/* One feature item, preceded by \x01 unless it is the first. */
static inline void put_item(dg_file *o, const dg_fields *f, int field, uint64_t local, const char *val,
                            int first)
{
    if (!first) put_c(o, '\x01');
    put_s(o, dg_field_name[field], f->name_len[field]);
    put_c(o, '\x02');
    put_u64(o, f->first[field] + local);
    put_c(o, '\x03');
    put_s(o, val, strlen(val));
}

static void put_prob(dg_file *o, double p)
{
    o->len += (size_t)snprintf(o->buf + o->len, 32, "%.7g", p);
}

/* ---- statistics --------------------------------------------------------- */

/* ROC-AUC from a histogram of logit(score) by label: exact up to ties within
 * a bin (width ~5e-4 in logit), which count one half. */
typedef struct { uint64_t *pos, *neg; } dg_auc;

static inline void auc_add(dg_auc *a, double p, int y)
{
    double z = log(p) - log1p(-p);
    double x = (z - DG_AUC_LO) / (DG_AUC_HI - DG_AUC_LO) * DG_AUC_BINS;
    uint32_t b = x <= 0 ? 0 : x >= DG_AUC_BINS - 1 ? DG_AUC_BINS - 1 : (uint32_t)x;
    (y ? a->pos : a->neg)[b]++;
}

static double auc_value(const dg_auc *a)
{
    double below = 0, sum = 0, np = 0;
    for (uint32_t b = 0; b < DG_AUC_BINS; b++) {
        sum += (double)a->pos[b] * (below + 0.5 * (double)a->neg[b]);
        below += (double)a->neg[b];
        np += (double)a->pos[b];
    }
    return np > 0 && below > 0 ? sum / (np * below) : NAN;
}

enum { A_CTR, A_CVR_CLICKED, A_CVR_ALL, A_CTCVR, DG_NAUC };
static const char *const dg_auc_name[DG_NAUC] = {"ctr", "cvr_clicked", "cvr_entire", "ctcvr"};

typedef struct {
    uint64_t requests, imps, clicks, buys, convs, hits[WORLD_N_HIST];
    /* shape of the files: common lines and their ids (history ids per list),
     * distinct md5s the skeleton names, Σ over impressions of the common
     * ids of its md5 and of its own ids, adjacent skeleton lines sharing
     * an md5 */
    uint64_t common_lines, common_ids, common_hist[WORLD_N_HIST];
    uint64_t md5s_used, imp_common_ids, imp_own_ids, adjacent_same;
    double sum_pctr, sum_pcvr, sum_pctcvr, sum_pcvr_clicked;
    double sum_ac, sum_av, sum_av_clicked;
    double ll[DG_NAUC];
    dg_auc auc[DG_NAUC];
} dg_stats;

static int stats_init(dg_stats *s)
{
    memset(s, 0, sizeof *s);
    for (int i = 0; i < DG_NAUC; i++) {
        s->auc[i].pos = calloc(DG_AUC_BINS, sizeof(uint64_t));
        s->auc[i].neg = calloc(DG_AUC_BINS, sizeof(uint64_t));
        if (!s->auc[i].pos || !s->auc[i].neg) return fn_fail(FN_ENOMEM, "funnel datagen: out of memory");
    }
    return FN_OK;
}

static void stats_free(dg_stats *s)
{
    for (int i = 0; i < DG_NAUC; i++) {
        free(s->auc[i].pos);
        free(s->auc[i].neg);
        s->auc[i].pos = s->auc[i].neg = NULL;
    }
}

static inline double logloss(double p, int y) { return y ? -log(p) : -log1p(-p); }

static void stats_add(dg_stats *s, const world_imp *im)
{
    int buy = im->click && im->conv;
    double pctcvr = im->pctr * im->pcvr;
    s->imps++;
    s->clicks += im->click;
    s->buys += (uint64_t)buy;
    s->convs += im->conv;
    for (int h = 0; h < WORLD_N_HIST; h++) s->hits[h] += (im->hit >> h) & 1u;
    s->sum_pctr += im->pctr;
    s->sum_pcvr += im->pcvr;
    s->sum_pctcvr += pctcvr;
    s->sum_ac += im->aff_click;
    s->sum_av += im->aff_conv;
    s->ll[A_CTR] += logloss(im->pctr, im->click);
    s->ll[A_CVR_ALL] += logloss(im->pcvr, im->conv);
    s->ll[A_CTCVR] += logloss(pctcvr, buy);
    auc_add(&s->auc[A_CTR], im->pctr, im->click);
    auc_add(&s->auc[A_CVR_ALL], im->pcvr, im->conv);
    auc_add(&s->auc[A_CTCVR], pctcvr, buy);
    if (im->click) {
        s->sum_pcvr_clicked += im->pcvr;
        s->sum_av_clicked += im->aff_conv;
        s->ll[A_CVR_CLICKED] += logloss(im->pcvr, im->conv);
        auc_add(&s->auc[A_CVR_CLICKED], im->pcvr, im->conv);
    }
}

/* ---- command line ------------------------------------------------------- */

typedef struct {
    const char *out;
    const char *shape;    /* "light" (the default) or "aliccp" */
    uint64_t n_train, n_test;
    uint32_t pilot;       /* impressions of the calibration pilot */
    uint32_t run_k;       /* --impressions-per-request: 0 = an md5 per request */
    uint32_t per_md5;     /* --impressions-per-md5 (with run_k >= 1) */
    double ctr, cvr;
    world_params wp;
} dg_opts;

enum { O_U64, O_U32, O_DBL, O_STR };

typedef struct {
    const char *name, *arg, *help;
    int type;
    void *dst;
    double lo, hi;      /* hi = INFINITY: unbounded */
    int lo_open, hi_open;
    int set;            /* given on the command line */
} dg_opt;

static int dg_options(dg_opts *o, dg_opt *t)
{
    int n = 0;
#define OPT(nm, ar, ty, ds, l, h, lop, hop, hl) t[n++] = (dg_opt){nm, ar, hl, ty, ds, l, h, lop, hop, 0}
    OPT("out", "DIR", O_STR, &o->out, 0, 0, 0, 0, "output directory, created if missing (required)");
    OPT("shape", "NAME", O_STR, &o->shape, 0, 0, 0, 0,
        "light or aliccp: presets (see below) [light]");
    OPT("train", "N", O_U64, &o->n_train, 0, 1e12, 0, 0, "train impressions [1000000]");
    OPT("test", "N", O_U64, &o->n_test, 0, 1e12, 0, 0, "test impressions [100000]");
    OPT("seed", "S", O_U64, &o->wp.seed, 0, 18446744073709551615.0, 0, 0, "random seed [1]");
    OPT("ctr", "P", O_DBL, &o->ctr, 0, 1, 1, 1, "target mean true pCTR [0.04]");
    OPT("cvr", "P", O_DBL, &o->cvr, 0, 1, 1, 1, "target CVR among clicks [0.05]");
    OPT("share", "S", O_DBL, &o->wp.share, 0, 1, 0, 0,
        "share of the click affinity in the conversion affinity [0.5]");
    OPT("exposure-bias", "E", O_DBL, &o->wp.exposure_bias, 0, 50, 0, 0,
        "exposure ~ exp(E * click affinity); 0 = shown at random [1.0]");
    OPT("click-bias", "B", O_DBL, &o->wp.click_bias, 0, 50, 0, 0,
        "weight of the conversion-correlated affinity in the click logit [1.0]");
    OPT("pilot", "N", O_U32, &o->pilot, 1000, 1e8, 0, 0, "impressions of the calibration pilot [250000]");
    OPT("users", "N", O_U32, &o->wp.users, 1, 1e8, 0, 0, "users [100000]");
    OPT("ads", "N", O_U32, &o->wp.ads, 1, 1e8, 0, 0, "ads [50000]");
    OPT("categories", "N", O_U32, &o->wp.categories, 1, 1e7, 0, 0, "categories [1000]");
    OPT("shops", "N", O_U32, &o->wp.shops, 1, 1e8, 0, 0, "shops [5000]");
    OPT("brands", "N", O_U32, &o->wp.brands, 1, 1e8, 0, 0, "brands [5000]");
    OPT("zipf", "S", O_DBL, &o->wp.zipf, 0, 5, 0, 0, "ad popularity exponent [1.1]");
    OPT("user-zipf", "S", O_DBL, &o->wp.user_zipf, 0, 5, 0, 0, "user activity exponent [0.8]");
    OPT("dim-latent", "K", O_U32, &o->wp.dim, 1, 256, 0, 0, "latent dimension [8]");
    OPT("behavior", "N", O_U32, &o->wp.behavior, 0, WORLD_MAX_BEHAVIOR, 0, 0,
        "history ids per user: 0 = 3..10 a list; N > 0 = ~N (see below) [0]");
    OPT("impressions-per-request", "K", O_U32, &o->run_k, 0, WORLD_MAX_RUN, 0, 0,
        "0 = an md5 per request; K >= 1 = md5 pools, runs of ~K (below) [0]");
    OPT("impressions-per-md5", "M", O_U32, &o->per_md5, 1, 1e9, 0, 0,
        "with K >= 1: ceil(impressions / M) md5s a split [58]");
#undef OPT
    return n;
}

static void usage(FILE *f, const dg_opt *t, int n)
{
    char lhs[40];
    fprintf(f,
            "usage: funnel datagen --out DIR [options]\n"
            "\n"
            "Writes a synthetic world in the Ali-CCP format with known click and\n"
            "conversion probabilities: sample_skeleton_{train,test}.csv,\n"
            "common_features_{train,test}.csv, truth_{train,test}.csv\n"
            "(sample_id,pctr,pcvr,conv) and world.json.  The model is described\n"
            "in common/datagen.c.\n"
            "\n"
            "options:\n");
    for (int i = 0; i < n; i++) {
        snprintf(lhs, sizeof lhs, "--%s %s", t[i].name, t[i].arg);
        if (strlen(lhs) > 22) fprintf(f, "  %s\n  %-22s %s\n", lhs, "", t[i].help);
        else fprintf(f, "  %-22s %s\n", lhs, t[i].help);
    }
    fprintf(f, "  %-22s %s\n", "--help", "this text");
    fprintf(f,
            "\n"
            "--behavior N > 0: the history lists 109_14, 110_14, 127_14, 150_14 have\n"
            "mean lengths N x (117, 342, 209, 191) / 859 (Ali-CCP's), each user's\n"
            "uniform in [0.5, 1.5] x the mean, at most the field's vocabulary.\n"
            "\n"
            "--impressions-per-request K >= 1: each split has a pool of\n"
            "ceil(impressions / M) md5s, each of a user drawn by activity and written\n"
            "once to the common file; the skeleton is runs of 1 + Binomial(2(K-1), 1/2)\n"
            "adjacent impressions (mean K), each a request of the user of an md5 drawn\n"
            "uniformly from the pool (K = 1: one impression a request, position 0).\n"
            "K = 0: an md5 per request of 1 + Binomial(7, 3/7) impressions.\n"
            "\n"
            "--shape aliccp sets, unless given: --behavior 859 (~868 common ids per\n"
            "md5), --impressions-per-md5 58, --impressions-per-request 1, --ctr 0.039,\n"
            "--cvr 0.0055, and vocabularies scaled like the public set's (0.4M users,\n"
            "4.3M items for 84M impressions): users = %g x the md5 pools (at least\n"
            "%u), ads = impressions / %g (at least %u), categories %u, shops and\n"
            "brands ads / %g (at least %u), so that the long lists are drawable.\n"
            "\n"
            "Memory: O(users + ads + categories + shops + brands + history items),\n"
            "8 bytes per history item (~26 per user by default, ~860 per user with\n"
            "--behavior 859), plus one bit per md5 of a pool; never per impression.\n",
            DG_ALICCP_USERS_PER_MD5, DG_ALICCP_MIN_USERS, DG_ALICCP_IMPS_PER_AD, DG_ALICCP_MIN_ADS,
            DG_ALICCP_CATEGORIES, DG_ALICCP_ADS_PER_SHOP, DG_ALICCP_MIN_SHOPS);
}

static void fmt_range(char *b, size_t cap, const dg_opt *o)
{
    if (o->type == O_DBL && isinf(o->hi)) snprintf(b, cap, "%s %g", o->lo_open ? ">" : ">=", o->lo);
    else if (o->type == O_DBL)
        snprintf(b, cap, "in %c%g,%g%c", o->lo_open ? '(' : '[', o->lo, o->hi, o->hi_open ? ')' : ']');
    else if (o->hi >= 1.8e19) snprintf(b, cap, "a non-negative integer");
    else snprintf(b, cap, "an integer in [%.0f,%.0f]", o->lo, o->hi);
}

static int parse_value(const dg_opt *o, const char *s)
{
    char *end;
    if (o->type == O_STR) {
        if (!*s) goto bad;
        *(const char **)o->dst = s;
        return 0;
    }
    if (o->type == O_DBL) {
        errno = 0;
        double v = strtod(s, &end);
        if (!*s || *end || errno || !isfinite(v)) goto bad;
        if (o->lo_open ? v <= o->lo : v < o->lo) goto bad;
        if (o->hi_open ? v >= o->hi : v > o->hi) goto bad;
        *(double *)o->dst = v;
        return 0;
    }
    if (*s < '0' || *s > '9') goto bad;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno || (double)v < o->lo || (double)v > o->hi) goto bad;
    if (o->type == O_U32) *(uint32_t *)o->dst = (uint32_t)v;
    else *(uint64_t *)o->dst = v;
    return 0;
bad:;
    char range[96];
    if (o->type == O_STR) snprintf(range, sizeof range, "a non-empty path");
    else fmt_range(range, sizeof range, o);
    fprintf(stderr, "funnel datagen: --%s must be %s, got '%s'\n", o->name, range, s);
    return 2;
}

static int opt_given(const dg_opt *t, int n, const char *name)
{
    for (int i = 0; i < n; i++) if (!strcmp(t[i].name, name)) return t[i].set;
    return 0;
}

/* Pool size of a split of n impressions: ceil(n / m). */
static uint64_t pool_size(uint64_t n, uint32_t m) { return n / m + (n % m != 0); }

/* --shape aliccp: the public set's proportions (84M impressions, ~730k
 * md5s, ~0.4M users, ~4.3M items; ~860 history ids per common line; CTR
 * ~3.9%, ~0.55% of clicks convert), scaled to --train/--test, into every
 * option not given on the command line.  Categories, shops and brands are
 * sized for the lists to be drawable by popularity (few fallback items). */
static void shape_aliccp(dg_opts *o, const dg_opt *t, int n)
{
#define UNLESS(name, stmt) if (!opt_given(t, n, name)) stmt
    UNLESS("behavior", o->wp.behavior = 859);
    UNLESS("impressions-per-md5", o->per_md5 = 58);
    UNLESS("impressions-per-request", o->run_k = 1);
    UNLESS("ctr", o->ctr = 0.039);
    UNLESS("cvr", o->cvr = 0.0055);
    uint64_t imps = o->n_train + o->n_test;
    uint64_t pool = pool_size(o->n_train, o->per_md5) + pool_size(o->n_test, o->per_md5);
    double users = DG_ALICCP_USERS_PER_MD5 * (double)pool;
    double ads = (double)imps / DG_ALICCP_IMPS_PER_AD;
    if (users < DG_ALICCP_MIN_USERS) users = DG_ALICCP_MIN_USERS;
    if (users > 1e8) users = 1e8;
    if (ads < DG_ALICCP_MIN_ADS) ads = DG_ALICCP_MIN_ADS;
    if (ads > 1e8) ads = 1e8;
    UNLESS("users", o->wp.users = (uint32_t)ceil(users));
    UNLESS("ads", o->wp.ads = (uint32_t)ceil(ads));
    double shops = o->wp.ads / DG_ALICCP_ADS_PER_SHOP;  /* of the ads chosen, preset or given */
    if (shops < DG_ALICCP_MIN_SHOPS) shops = DG_ALICCP_MIN_SHOPS;
    UNLESS("categories", o->wp.categories = DG_ALICCP_CATEGORIES);
    UNLESS("shops", o->wp.shops = (uint32_t)ceil(shops));
    UNLESS("brands", o->wp.brands = (uint32_t)ceil(shops));
#undef UNLESS
}

/* Returns 0 to run, 1 after --help, 2 on a usage error (message printed). */
static int parse_args(int argc, char **argv, dg_opts *o)
{
    *o = (dg_opts){
        .out = NULL, .shape = "light", .n_train = 1000000, .n_test = 100000, .pilot = 250000,
        .run_k = 0, .per_md5 = 58, .ctr = 0.04, .cvr = 0.05,
        .wp = {.seed = 1, .share = 0.5, .exposure_bias = 1.0, .click_bias = 1.0, .zipf = 1.1,
               .user_zipf = 0.8, .users = 100000, .ads = 50000, .categories = 1000,
               .shops = 5000, .brands = 5000, .dim = 8, .behavior = 0},
    };
    dg_opt t[32];
    int n = dg_options(o, t);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout, t, n); return 1; }
        if (strncmp(a, "--", 2)) {
            fprintf(stderr, "funnel datagen: unexpected argument '%s' (see --help)\n", a);
            return 2;
        }
        const char *eq = strchr(a + 2, '=');
        size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        dg_opt *opt = NULL;
        for (int j = 0; j < n; j++)
            if (strlen(t[j].name) == len && !strncmp(t[j].name, a + 2, len)) opt = &t[j];
        if (!opt) {
            fprintf(stderr, "funnel datagen: unknown option '%.*s' (see --help)\n", (int)(len + 2), a);
            return 2;
        }
        const char *val = eq ? eq + 1 : NULL;
        if (!val) {
            if (i + 1 >= argc) { fprintf(stderr, "funnel datagen: --%s needs a value\n", opt->name); return 2; }
            val = argv[++i];
        }
        if (parse_value(opt, val)) return 2;
        opt->set = 1;
    }
    if (!o->out) {
        fprintf(stderr, "funnel datagen: --out DIR is required (see --help)\n");
        return 2;
    }
    if (!strcmp(o->shape, "aliccp")) {
        shape_aliccp(o, t, n);
    } else if (strcmp(o->shape, "light")) {
        fprintf(stderr, "funnel datagen: --shape must be light or aliccp, got '%s'\n", o->shape);
        return 2;
    }
    if (opt_given(t, n, "impressions-per-md5") && !o->run_k) {
        fprintf(stderr, "funnel datagen: --impressions-per-md5 needs --impressions-per-request >= 1\n");
        return 2;
    }
    return 0;
}

/* ---- one split ---------------------------------------------------------- */

static void put_md5(dg_file *o, uint64_t key)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t h[2] = {fn_mix64(key), 0};  /* fn_mix64 is a bijection: unique per key */
    h[1] = fn_mix64(h[0] ^ 0x6D6435ull);
    for (int j = 0; j < 2; j++)
        for (int s = 60; s >= 0; s -= 4) put_c(o, hex[(h[j] >> s) & 15]);
}

/* Feature ids of user u's common line. */
static uint64_t common_count(const world *w, uint32_t u)
{
    uint64_t count = 1 + WORLD_PROFILE;
    for (int h = 0; h < WORLD_N_HIST; h++) count += w->user[u].hist_len[h];
    return count;
}

/* Writes user u's common line under md5 key; counts it in st. */
static void put_common(dg_file *o, const dg_fields *f, const world *w, uint32_t u, uint64_t key, dg_stats *st)
{
    file_reserve(o);
    put_md5(o, key);
    put_c(o, ',');
    const world_user *us = &w->user[u];
    uint64_t count = common_count(w, u);
    st->common_lines++;
    st->common_ids += count;
    for (int h = 0; h < WORLD_N_HIST; h++) st->common_hist[h] += us->hist_len[h];
    put_u64(o, count);
    put_c(o, ',');
    put_item(o, f, F_101, u, "1", 1);
    for (int j = 0; j < WORLD_PROFILE; j++) put_item(o, f, F_121 + j, us->profile[j], "1", 0);
    for (int h = 0; h < WORLD_N_HIST; h++) {
        int n;
        const world_hist_item *it = world_hist(w, u, h, &n);
        for (int i = 0; i < n; i++) put_item(o, f, F_109_14 + h, it[i].id, f->weight[it[i].count], 0);
    }
    put_c(o, '\n');
}

static void put_skeleton(dg_file *o, const dg_fields *f, const world *w, uint32_t u, const world_imp *im,
                         uint64_t sample_id, uint64_t key)
{
    static const int cross[WORLD_N_HIST] = {F_508, F_509, F_702, F_853};
    const world_ad *ad = &w->ad[im->ad];
    const uint32_t side[WORLD_N_HIST] = {ad->category, ad->shop, ad->brand, ad->node};
    file_reserve(o);
    put_u64(o, sample_id);
    put_c(o, ',');
    put_c(o, (char)('0' + im->click));
    put_c(o, ',');
    put_c(o, (char)('0' + (im->click && im->conv)));
    put_c(o, ',');
    put_md5(o, key);
    put_c(o, ',');
    put_u64(o, 6 + (uint64_t)__builtin_popcount(im->hit));
    put_c(o, ',');
    put_item(o, f, F_205, im->ad, "1", 1);
    put_item(o, f, F_206, ad->category, "1", 0);
    put_item(o, f, F_207, ad->shop, "1", 0);
    put_item(o, f, F_210, ad->node, "1", 0);
    put_item(o, f, F_216, ad->brand, "1", 0);
    put_item(o, f, F_301, im->position, "1", 0);
    for (int h = 0; h < WORLD_N_HIST; h++)
        if ((im->hit >> h) & 1u)
            put_item(o, f, cross[h], world_cross_id(w, h, u, side[h]), f->weight[im->hit_count[h]], 0);
    put_c(o, '\n');
}

static void put_truth(dg_file *o, const world_imp *im, uint64_t sample_id)
{
    file_reserve(o);
    put_u64(o, sample_id);
    put_c(o, ',');
    put_prob(o, im->pctr);
    put_c(o, ',');
    put_prob(o, im->pcvr);
    put_c(o, ',');
    put_c(o, (char)('0' + im->conv));
    put_c(o, '\n');
}

/* The user of md5 i of a pool: by activity, from a stream of its own (pool
 * seed and i), so that a pool needs no memory. */
static uint32_t pool_user(const world *w, uint64_t pool_seed, uint64_t i)
{
    fn_rng r;
    fn_rng_seed(&r, fn_mix64(pool_seed ^ i));
    return world_draw_user(w, &r);
}

/* Bytes of the longest common line of w. */
static size_t common_line_max(const world *w)
{
    size_t items = 1 + WORLD_PROFILE;
    for (int h = 0; h < WORLD_N_HIST; h++) items += w->hist_max[h];
    return 64 + items * DG_ITEM_MAX;
}

/* Writes the impressions of request q (md5 key) and counts them. */
static void put_request(dg_file *fo, const dg_fields *f, const world *w, const world_req *q, uint64_t key,
                        uint64_t *sid, uint64_t *prev_key, dg_stats *st)
{
    uint64_t cids = common_count(w, q->user);
    st->requests++;
    for (int i = 0; i < q->n; i++, (*sid)++) {
        put_skeleton(&fo[0], f, w, q->user, &q->imp[i], *sid, key);
        put_truth(&fo[2], &q->imp[i], *sid);
        st->adjacent_same += st->imps > 0 && *prev_key == key;
        *prev_key = key;
        st->imp_common_ids += cids;
        st->imp_own_ids += 6 + (uint64_t)__builtin_popcount(q->imp[i].hit);
        stats_add(st, &q->imp[i]);
    }
}

/* Draws n impressions of split `split` (0 train, 1 test), sample ids from
 * first_id, into the three files of that split: an md5 per request
 * (o->run_k == 0), or a pool of md5s written first and runs of about
 * run_k impressions drawing from it (see the header comment). */
static int gen_split(const world *w, const dg_fields *f, const dg_opts *o, int split, uint64_t n,
                     uint64_t first_id, dg_stats *st)
{
    static const char *const suffix[2] = {"train", "test"};
    char name[3][64];
    snprintf(name[0], sizeof name[0], "sample_skeleton_%s.csv", suffix[split]);
    snprintf(name[1], sizeof name[1], "common_features_%s.csv", suffix[split]);
    snprintf(name[2], sizeof name[2], "truth_%s.csv", suffix[split]);
    const size_t line_max[3] = {DG_LINE_MAX, common_line_max(w), DG_LINE_MAX};
    dg_file fo[3] = {0};
    uint8_t *used = NULL;  /* pool md5s named by the skeleton, a bit each */
    int rc = FN_OK;
    for (int i = 0; i < 3 && !rc; i++) rc = file_open(&fo[i], o->out, name[i], line_max[i]);
    if (!rc) {
        fn_rng r;
        fn_rng_seed(&r, fn_mix64(w->p.seed ^ (0x53504C4954ull + (uint64_t)split)));  /* "SPLIT" */
        const uint64_t md5_base = fn_mix64(w->p.seed ^ 0x4D4435ull) ^ ((uint64_t)split << 63);
        put_s(&fo[2], "sample_id,pctr,pcvr,conv\n", 25);
        world_req q;
        uint64_t done = 0, sid = first_id, prev_key = 0;
        if (!o->run_k) {
            while (done < n) {
                int room = n - done < WORLD_MAX_IMPS ? (int)(n - done) : WORLD_MAX_IMPS;
                world_draw_request(w, &r, room, &q);
                uint64_t key = md5_base ^ st->requests;
                put_common(&fo[1], f, w, q.user, key, st);
                put_request(fo, f, w, &q, key, &sid, &prev_key, st);
                st->md5s_used++;
                done += (uint64_t)q.n;
            }
        } else {
            /* keys md5_base ^ i, i < pool < 2^63: the splits' pools differ in bit 63 */
            const uint64_t pool = pool_size(n, o->per_md5);
            const uint64_t pool_seed = fn_mix64(w->p.seed ^ (0x504F4F4Cull + (uint64_t)split));  /* "POOL" */
            used = calloc(pool / 8 + 1, 1);
            if (!used) rc = fn_fail(FN_ENOMEM, "funnel datagen: out of memory for a pool of %llu md5s",
                                    (unsigned long long)pool);
            for (uint64_t i = 0; i < pool && !rc; i++)
                put_common(&fo[1], f, w, pool_user(w, pool_seed, i), md5_base ^ i, st);
            while (done < n && !rc) {
                int len = world_run_length(&r, (int)o->run_k);
                if ((uint64_t)len > n - done) len = (int)(n - done);
                uint64_t i = fn_rng_below(&r, pool);
                world_draw_request_of(w, &r, pool_user(w, pool_seed, i), len, &q);
                put_request(fo, f, w, &q, md5_base ^ i, &sid, &prev_key, st);
                if (!(used[i / 8] >> (i % 8) & 1)) { used[i / 8] |= (uint8_t)(1u << (i % 8)); st->md5s_used++; }
                done += (uint64_t)q.n;
            }
        }
    }
    free(used);
    for (int i = 0; i < 3; i++) {
        int c = file_close(&fo[i]);
        if (!rc) rc = c;
    }
    return rc;
}

/* ---- world.json --------------------------------------------------------- */

static void json_num(FILE *f, const char *key, double v, const char *sep)
{
    if (isfinite(v)) fprintf(f, "\"%s\": %.10g%s", key, v, sep);
    else fprintf(f, "\"%s\": null%s", key, sep);
}

static void json_split(FILE *f, const char *name, const dg_stats *s, const char *sep)
{
    double n = (double)s->imps, c = (double)s->clicks;
    double buys = (double)s->buys, convs = (double)s->convs;
    double rate[DG_NAUC] = {c / n, buys / c, convs / n, buys / n};
    double cnt[DG_NAUC] = {n, c, n, n};
    fprintf(f, "    \"%s\": {\n", name);
    fprintf(f, "      \"impressions\": %llu, \"requests\": %llu, \"clicks\": %llu, \"buys\": %llu, "
               "\"conversions_entire\": %llu,\n      ",
            (unsigned long long)s->imps, (unsigned long long)s->requests, (unsigned long long)s->clicks,
            (unsigned long long)s->buys, (unsigned long long)s->convs);
    json_num(f, "ctr", rate[A_CTR], ", ");
    json_num(f, "cvr_clicked", rate[A_CVR_CLICKED], ", ");
    json_num(f, "cvr_entire", rate[A_CVR_ALL], ", ");
    json_num(f, "ctcvr", rate[A_CTCVR], ",\n      ");
    json_num(f, "mean_pctr", s->sum_pctr / n, ", ");
    json_num(f, "mean_pcvr", s->sum_pcvr / n, ", ");
    json_num(f, "mean_pcvr_clicked", s->sum_pcvr_clicked / c, ", ");
    json_num(f, "pctr_weighted_pcvr", s->sum_pctcvr / s->sum_pctr, ", ");
    json_num(f, "mean_pctcvr", s->sum_pctcvr / n, ",\n      ");
    json_num(f, "mean_aff_click", s->sum_ac / n, ", ");
    json_num(f, "mean_aff_conv", s->sum_av / n, ", ");
    json_num(f, "mean_aff_conv_clicked", s->sum_av_clicked / c, ",\n      ");
    double lines = (double)s->common_lines;
    fprintf(f, "\"common_lines\": %llu, \"md5s_in_skeleton\": %llu, ", (unsigned long long)s->common_lines,
            (unsigned long long)s->md5s_used);
    json_num(f, "impressions_per_md5", n / (double)s->md5s_used, ", ");
    json_num(f, "adjacent_same_md5", n > 1 ? (double)s->adjacent_same / (n - 1) : NAN, ",\n      ");
    json_num(f, "common_ids_per_md5", (double)s->common_ids / lines, ", ");
    json_num(f, "common_ids_per_impression", (double)s->imp_common_ids / n, ", ");
    json_num(f, "skeleton_ids_per_impression", (double)s->imp_own_ids / n, ", ");
    json_num(f, "ids_per_impression", (double)(s->imp_common_ids + s->imp_own_ids) / n, ",\n      ");
    fprintf(f, "\"history_ids_per_md5\": {");
    static const char *const hist[WORLD_N_HIST] = {"109_14", "110_14", "127_14", "150_14"};
    for (int h = 0; h < WORLD_N_HIST; h++)
        json_num(f, hist[h], (double)s->common_hist[h] / lines, h + 1 < WORLD_N_HIST ? ", " : "},\n      ");
    fprintf(f, "\"cross_hit_rate\": {");
    static const char *const cross[WORLD_N_HIST] = {"508", "509", "702", "853"};
    for (int h = 0; h < WORLD_N_HIST; h++)
        json_num(f, cross[h], (double)s->hits[h] / n, h + 1 < WORLD_N_HIST ? ", " : "},\n");
    fprintf(f, "      \"truth\": {\n");
    for (int i = 0; i < DG_NAUC; i++) {
        double ll = s->ll[i] / cnt[i], r = rate[i];
        double base = -(r * log(r) + (1 - r) * log1p(-r));
        fprintf(f, "        \"%s\": {", dg_auc_name[i]);
        json_num(f, "auc", auc_value(&s->auc[i]), ", ");
        json_num(f, "logloss", ll, ", ");
        json_num(f, "rce", 100.0 * (base - ll) / base, "}");
        fprintf(f, "%s\n", i + 1 < DG_NAUC ? "," : "");
    }
    fprintf(f, "      }\n    }%s\n", sep);
}

static int write_json(const char *dir, const dg_opts *o, const world *w, const dg_fields *fl,
                      const world_pilot *pi, const dg_stats *st)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/world.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return fn_fail(FN_EIO, "funnel datagen: cannot create %s: %s", path, strerror(errno));
    const world_params *p = &w->p;
    const world_consts *k = &w->k;
    fprintf(f, "{\n  \"format\": \"funnel-datagen-world\", \"version\": 1,\n  \"params\": {\n");
    fprintf(f, "    \"seed\": %llu, \"train\": %llu, \"test\": %llu,\n    ", (unsigned long long)p->seed,
            (unsigned long long)o->n_train, (unsigned long long)o->n_test);
    json_num(f, "ctr", o->ctr, ", ");
    json_num(f, "cvr", o->cvr, ", ");
    json_num(f, "share", p->share, ", ");
    json_num(f, "exposure_bias", p->exposure_bias, ", ");
    json_num(f, "click_bias", p->click_bias, ",\n    ");
    fprintf(f, "\"users\": %u, \"ads\": %u, \"categories\": %u, \"shops\": %u, \"brands\": %u, "
               "\"nodes\": %u,\n    ", p->users, p->ads, p->categories, p->shops, p->brands, w->nodes);
    json_num(f, "zipf", p->zipf, ", ");
    json_num(f, "user_zipf", p->user_zipf, ", ");
    fprintf(f, "\"dim_latent\": %u,\n    ", p->dim);
    fprintf(f, "\"shape\": \"%s\", \"behavior\": %u, \"impressions_per_request\": %u, ", o->shape, p->behavior,
            o->run_k);
    if (o->run_k) fprintf(f, "\"impressions_per_md5\": %u, \"md5_pick\": \"uniform over the pool\"", o->per_md5);
    else fprintf(f, "\"impressions_per_md5\": null, \"md5_pick\": \"one per request\"");
    fprintf(f, "\n  },\n");
    fprintf(f, "  \"intercepts\": {\"alpha_c\": %.17g, \"alpha_v\": %.17g, \"pilot_impressions\": %u, ",
            w->alpha_c, w->alpha_v, o->pilot);
    json_num(f, "pilot_mean_pctr", pi->mean_pctr, ", ");
    json_num(f, "pilot_cvr_clicked", pi->cvr_clicked, ", ");
    json_num(f, "pilot_mean_pcvr", pi->mean_pcvr, "},\n");
    fprintf(f, "  \"constants\": {\n    ");
    json_num(f, "zipf_offset", k->zipf_offset, ", ");
    json_num(f, "cat_shop_brand_zipf", k->cat_zipf, ", ");
    json_num(f, "shop_category_p", k->shop_cat_p, ", ");
    json_num(f, "history_count_continue", k->hist_continue, ", ");
    json_num(f, "retrieval_p", k->retrieval_p, ", ");
    fprintf(f, "\"history_count_max\": %d,\n    ", WORLD_MAX_COUNT);
    fprintf(f, "\"ad_appeal_mix\": {\"category\": %g, \"brand\": %g, \"own\": %g},\n    ", k->ad_c_cat,
            k->ad_c_brand, k->ad_c_own);
    fprintf(f, "\"ad_purchase_mix\": {\"category\": %g, \"brand\": %g, \"own\": %g},\n    ", k->ad_d_cat,
            k->ad_d_brand, k->ad_d_own);
    fprintf(f, "\"user_click_mix\": {\"hist_category\": %g, \"hist_brand\": %g, \"own\": %g},\n    ",
            k->user_a_cat, k->user_a_brand, k->user_a_own);
    fprintf(f, "\"user_purchase_mix\": {\"hist_category\": %g, \"hist_brand\": %g, \"own\": %g},\n    ",
            k->user_b_cat, k->user_b_brand, k->user_b_own);
    json_num(f, "w_click_aff", k->w_click_aff, ", ");
    json_num(f, "w_conv_aff", k->w_conv_aff, ",\n    ");
    json_num(f, "sd_user_click_121", k->sd_user_click_group, ", ");
    json_num(f, "sd_user_click_own", k->sd_user_click_own, ", ");
    json_num(f, "ad_pop_slope", k->ad_pop_slope, ", ");
    json_num(f, "sd_ad_click", k->sd_ad_click, ",\n    ");
    fprintf(f, "\"position_effect\": [");
    for (int i = 0; i < WORLD_POSITIONS; i++) fprintf(f, "%g%s", k->position[i], i + 1 < WORLD_POSITIONS ? ", " : "],\n    ");
    fprintf(f, "\"hit_bonus\": {\"508\": %g, \"509\": %g, \"702\": %g, \"853\": %g},\n    ", k->hit_bonus[0],
            k->hit_bonus[1], k->hit_bonus[2], k->hit_bonus[3]);
    json_num(f, "sd_shop_quality", k->sd_shop_quality, ", ");
    json_num(f, "sd_ad_quality", k->sd_ad_quality, ", ");
    json_num(f, "sd_user_cvr_122", k->sd_user_cvr_122, ", ");
    json_num(f, "sd_user_cvr_124", k->sd_user_cvr_124, ",\n    ");
    json_num(f, "p_min", k->p_min, ", ");
    if (o->run_k)
        fprintf(f, "\"impressions_per_request\": \"1 + Binomial(%u, 1/2)\", ", 2 * (o->run_k - 1));
    else
        fprintf(f, "\"impressions_per_request\": \"1 + Binomial(%d, 3/7)\", ", WORLD_REQ_TRIALS);
    fprintf(f, "\"candidates_per_slot\": %d, \"cross_buckets\": %u\n  },\n", WORLD_CAND_MULT, k->cross_buckets);
    /* histories as built (over all users) and the memory they take */
    static const char *const hist_name[WORLD_N_HIST] = {"109_14", "110_14", "127_14", "150_14"};
    uint64_t items = 0, fallback = 0;
    for (int h = 0; h < WORLD_N_HIST; h++) { items += w->hist_items[h]; fallback += w->hist_fallback[h]; }
    fprintf(f, "  \"histories\": {\n    \"length\": \"%s\",\n    \"mean_length_target\": {",
            p->behavior ? "uniform in [0.5, 1.5] x N*(117, 342, 209, 191)/859, >= 1, <= vocabulary"
                        : "3..10 (150_14: the 109_14 nodes, at least 3)");
    for (int h = 0; h < WORLD_N_HIST; h++)
        json_num(f, hist_name[h], p->behavior ? w->hist_mean[h] : NAN, h + 1 < WORLD_N_HIST ? ", " : "},\n    ");
    fprintf(f, "\"mean_length\": {");
    for (int h = 0; h < WORLD_N_HIST; h++)
        json_num(f, hist_name[h], (double)w->hist_items[h] / p->users, h + 1 < WORLD_N_HIST ? ", " : "},\n    ");
    fprintf(f, "\"fallback_share\": {");
    for (int h = 0; h < WORLD_N_HIST; h++)
        json_num(f, hist_name[h], w->hist_items[h] ? (double)w->hist_fallback[h] / (double)w->hist_items[h] : 0,
                 h + 1 < WORLD_N_HIST ? ", " : "},\n    ");
    fprintf(f, "\"items\": %llu, \"fallback_items\": %llu, \"bytes\": %llu,\n    ", (unsigned long long)items,
            (unsigned long long)fallback, (unsigned long long)(items * sizeof(world_hist_item)));
    fprintf(f, "\"memory\": \"O(users + ads + categories + shops + brands + history items): %zu bytes per "
               "history item, %.1f items per user; one bit per md5 of a pool; nothing per impression\"\n  },\n",
            sizeof(world_hist_item), (double)items / p->users);
    fprintf(f, "  \"fields\": [\n");
    for (int i = 0; i < DG_NFIELDS; i++) {
        const char *side = i <= F_150_14 ? "user" : i <= F_216 ? "ad" : i == F_301 ? "context" : "cross";
        fprintf(f, "    {\"field\": \"%s\", \"side\": \"%s\", \"first_id\": %llu, \"vocab\": %llu}%s\n",
                dg_field_name[i], side, (unsigned long long)fl->first[i], (unsigned long long)fl->vocab[i],
                i + 1 < DG_NFIELDS ? "," : "");
    }
    fprintf(f, "  ],\n  \"splits\": {\n");
    json_split(f, "train", &st[0], ",");
    json_split(f, "test", &st[1], "");
    fprintf(f, "  }\n}\n");
    if (ferror(f) | fclose(f)) return fn_fail(FN_EIO, "funnel datagen: writing %s failed", path);
    return FN_OK;
}

/* ---- entry -------------------------------------------------------------- */

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int datagen_main(int argc, char **argv)
{
    dg_opts o;
    int prc = parse_args(argc, argv, &o);
    if (prc) return prc == 1 ? 0 : 2;

    double t0 = now_sec();
    world *w = NULL;
    dg_fields *fl = malloc(sizeof *fl);
    dg_stats st[2];
    int s0 = stats_init(&st[0]), s1 = stats_init(&st[1]);
    int rc = !fl || s0 || s1 ? fn_fail(FN_ENOMEM, "funnel datagen: out of memory") : FN_OK;
    if (!rc && (rc = fn_mkdirs(o.out))) fn_fail(rc, "funnel datagen: --out %s: %s", o.out, fn_err_msg());
    if (!rc) rc = world_new(&w, &o.wp);
    world_pilot pilot = {0};
    if (!rc) {
        log_info("datagen: world of %u users, %u ads built in %.2f s", o.wp.users, o.wp.ads, now_sec() - t0);
        rc = world_calibrate(w, o.pilot, o.ctr, o.cvr, (int)o.run_k, &pilot);
    }
    if (!rc) {
        log_info("datagen: alpha_c %.4f, alpha_v %.4f (pilot: mean pCTR %.5f, CVR among clicks %.5f, "
                 "mean pCVR %.5f)", w->alpha_c, w->alpha_v, pilot.mean_pctr, pilot.cvr_clicked, pilot.mean_pcvr);
        fields_init(fl, w);
        rc = gen_split(w, fl, &o, 0, o.n_train, 1, &st[0]);
    }
    if (!rc) rc = gen_split(w, fl, &o, 1, o.n_test, 1 + o.n_train, &st[1]);
    if (!rc) rc = write_json(o.out, &o, w, fl, &pilot, st);
    if (!rc) {
        for (int s = 0; s < 2; s++) {
            const dg_stats *x = &st[s];
            if (!x->imps) continue;
            log_info("datagen: %s: %llu impressions, CTR %.5f, CVR among clicks %.5f, CVR entire %.5f, "
                     "AUC of true pCTR %.4f, of true pCVR (clicked) %.4f",
                     s ? "test" : "train", (unsigned long long)x->imps, (double)x->clicks / (double)x->imps,
                     (double)x->buys / (double)x->clicks, (double)x->convs / (double)x->imps,
                     auc_value(&x->auc[A_CTR]), auc_value(&x->auc[A_CVR_CLICKED]));
        }
        log_info("datagen: wrote %s in %.2f s", o.out, now_sec() - t0);
    } else {
        fprintf(stderr, "%s\n", fn_err_msg());
    }
    world_destroy(&w);
    stats_free(&st[0]);
    stats_free(&st[1]);
    free(fl);
    return rc ? 1 : 0;
}
