/* common/world.c — see world.h; the model is described in datagen.c. */
#include "world.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fn_error.h"
#include "log.h"

const uint32_t world_profile_vocab[WORLD_PROFILE] = {100, 3, 8, 10, 5, 4, 3, 10};

const double world_behavior_share[WORLD_N_HIST] = {117, 342, 209, 191};

static const world_consts world_default_consts = {
    .zipf_offset = 10.0,
    .cat_zipf = 1.0,
    .shop_cat_p = 0.7,
    .retrieval_p = 0.3,
    .hist_continue = 0.55,
    .ad_c_cat = 0.5, .ad_c_brand = 0.2, .ad_c_own = 0.3,
    .ad_d_cat = 0.4, .ad_d_brand = 0.2, .ad_d_own = 0.4,
    .user_a_cat = 0.45, .user_a_brand = 0.15, .user_a_own = 0.4,
    .user_b_cat = 0.3, .user_b_brand = 0.1, .user_b_own = 0.6,
    .w_click_aff = 0.5,
    .w_conv_aff = 0.9,
    .sd_user_click_group = 0.3, .sd_user_click_own = 0.35,
    .ad_pop_slope = 0.15, .sd_ad_click = 0.4,
    .position = {0.35, 0.15, 0.0, -0.15, -0.3},
    .hit_bonus = {0.25, 0.15, 0.15, 0.1},
    .sd_shop_quality = 0.4, .sd_ad_quality = 0.35,
    .sd_user_cvr_122 = 0.15, .sd_user_cvr_124 = 0.2,
    .p_min = 1e-6,
    .cross_buckets = 100000,
};

/* ---- samplers ----------------------------------------------------------- */

typedef struct world_alias world_alias;

static void alias_free(world_alias *t)
{
    free(t->prob);
    free(t->alias);
    t->prob = NULL;
    t->alias = NULL;
}

/* Vose's alias method over weights w[n] (all > 0). */
static int alias_build(world_alias *t, const double *w, uint32_t n)
{
    t->n = n;
    t->prob = malloc(n * sizeof *t->prob);
    t->alias = malloc(n * sizeof *t->alias);
    uint32_t *small = malloc(n * sizeof *small), *large = malloc(n * sizeof *large);
    double *q = malloc(n * sizeof *q);
    if (!t->prob || !t->alias || !small || !large || !q) {
        free(small); free(large); free(q); alias_free(t);
        return FN_ENOMEM;
    }
    double sum = 0;
    for (uint32_t i = 0; i < n; i++) sum += w[i];
    uint32_t ns = 0, nl = 0;
    for (uint32_t i = 0; i < n; i++) {
        q[i] = w[i] * n / sum;
        if (q[i] < 1.0) small[ns++] = i; else large[nl++] = i;
    }
    while (ns && nl) {
        uint32_t s = small[--ns], l = large[nl - 1];
        t->prob[s] = (float)q[s];
        t->alias[s] = l;
        q[l] -= 1.0 - q[s];
        if (q[l] < 1.0) { nl--; small[ns++] = l; }
    }
    while (nl) { uint32_t l = large[--nl]; t->prob[l] = 1.0f; t->alias[l] = l; }
    while (ns) { uint32_t s = small[--ns]; t->prob[s] = 1.0f; t->alias[s] = s; }  /* rounding */
    free(small); free(large); free(q);
    return FN_OK;
}

static uint32_t alias_draw(const world_alias *t, fn_rng *r)
{
    uint64_t x = fn_rng_next(r);
    uint32_t i = (uint32_t)(((x >> 32) * t->n) >> 32);
    float u = (float)((double)(uint32_t)x * 0x1.0p-32);
    return u < t->prob[i] ? i : t->alias[i];
}

/* Zipf–Mandelbrot weights over n ids whose popularity ranks are a random
 * permutation (so an id says nothing about its popularity). */
static int zipf_weights(double *w, uint32_t n, double s, double offset, fn_rng *r)
{
    uint32_t *perm = malloc(n * sizeof *perm);
    if (!perm) return FN_ENOMEM;
    for (uint32_t i = 0; i < n; i++) perm[i] = i;
    for (uint32_t i = n; i > 1; i--) {
        uint32_t j = (uint32_t)fn_rng_below(r, i);
        uint32_t t = perm[i - 1]; perm[i - 1] = perm[j]; perm[j] = t;
    }
    for (uint32_t rank = 0; rank < n; rank++) w[perm[rank]] = pow(rank + 1.0 + offset, -s);
    free(perm);
    return FN_OK;
}

/* ---- small helpers ------------------------------------------------------ */

double world_hist_weight(uint32_t count) { return log1p((double)count); }

double world_prob(const world *w, double z)
{
    double p = 1.0 / (1.0 + exp(-z));
    double lo = w->k.p_min;
    return p < lo ? lo : p > 1.0 - lo ? 1.0 - lo : p;
}

const world_hist_item *world_hist(const world *w, uint32_t u, int h, int *n)
{
    const world_user *us = &w->user[u];
    uint32_t off = us->hist_off;
    for (int i = 0; i < h; i++) off += us->hist_len[i];
    *n = us->hist_len[h];
    return &w->hist[off];
}

uint32_t world_cross_id(const world *w, int h, uint32_t u, uint32_t v)
{
    /* u, v < 2^27 (the flag limits), so the pair maps to distinct x */
    uint64_t x = fn_mix64(w->p.seed ^ 0xC205C205C205ull) ^ ((uint64_t)h << 60) ^ ((uint64_t)u << 28) ^ v;
    return (uint32_t)(fn_mix64(x) % w->k.cross_buckets);
}

/* An ad of category c, by popularity; a globally popular ad if c has none. */
static uint32_t ad_in_category(const world *w, uint32_t c, fn_rng *r)
{
    uint32_t lo = w->cat_start[c], hi = w->cat_start[c + 1];
    if (lo == hi) return alias_draw(&w->ad_pick, r);
    double base = lo ? w->cat_cum[lo - 1] : 0.0;
    double x = base + fn_rng_uniform(r) * (w->cat_cum[hi - 1] - base);
    while (lo + 1 < hi) {  /* first i in [lo,hi) with cat_cum[i] > x */
        uint32_t mid = lo + (hi - lo - 1) / 2;
        if (w->cat_cum[mid] > x) hi = mid + 1; else lo = mid + 1;
    }
    return w->cat_ads[lo];
}

/* Index of id in a list sorted by id (ids distinct), or -1. */
static int hist_find(const world_hist_item *it, int n, uint32_t id)
{
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (it[mid].id < id) lo = mid + 1; else hi = mid;
    }
    return lo < n && it[lo].id == id ? lo : -1;
}

static uint32_t hist_count(fn_rng *r, double cont)
{
    uint32_t c = 1;
    while (c < WORLD_MAX_COUNT && fn_rng_uniform(r) < cont) c++;
    return c;
}

static int hist_cmp(const void *a, const void *b)
{
    uint32_t x = ((const world_hist_item *)a)->id, y = ((const world_hist_item *)b)->id;
    return (x > y) - (x < y);
}

/* ids are distinct within a list, so any sort gives the same order */
static void hist_sort(world_hist_item *it, int n) { qsort(it, (size_t)n, sizeof *it, hist_cmp); }

/* out[dim] = Σ wt_i · lat[id_i] / sqrt(Σ wt_i²): unit variance per component. */
static void hist_mix(double *out, const world_hist_item *it, int n, const float *lat, uint32_t dim)
{
    double ss = 0;
    for (uint32_t j = 0; j < dim; j++) out[j] = 0;
    for (int i = 0; i < n; i++) {
        double wt = world_hist_weight(it[i].count);
        ss += wt * wt;
        for (uint32_t j = 0; j < dim; j++) out[j] += wt * lat[(size_t)it[i].id * dim + j];
    }
    if (ss > 0) for (uint32_t j = 0; j < dim; j++) out[j] /= sqrt(ss);
}

static float *normals(fn_rng *r, size_t n)
{
    float *v = malloc((n ? n : 1) * sizeof *v);
    if (v) for (size_t i = 0; i < n; i++) v[i] = (float)fn_rng_normal(r);
    return v;
}

/* ---- building ----------------------------------------------------------- */

/* The list being drawn, with O(1) membership: mark[v] == stamp iff id v is
 * in it, at index at[v].  mark/at span the field's vocabulary and are
 * shared by all users (a new stamp per user). */
typedef struct {
    world_hist_item *it;
    int n;
    uint32_t *mark, *at, stamp;
} hist_list;

static inline int list_at(const hist_list *l, uint32_t v) { return l->mark[v] == l->stamp ? (int)l->at[v] : -1; }

static inline void list_add(hist_list *l, uint32_t v, uint32_t count)
{
    l->mark[v] = l->stamp;
    l->at[v] = (uint32_t)l->n;
    l->it[l->n++] = (world_hist_item){v, count};
}

/* Tops l up to m (<= vocab) items with ids not in it, each from a uniform
 * start then the next free id (mod vocab): terminates because a free id
 * exists while n < m <= vocab.  Only after the popularity draws ran out of
 * attempts; counted in *fallback. */
static void list_fill(hist_list *l, int m, uint32_t vocab, fn_rng *r, double cont, uint64_t *fallback)
{
    while (l->n < m) {
        uint32_t v = (uint32_t)fn_rng_below(r, vocab);
        while (list_at(l, v) >= 0) v = v + 1 == vocab ? 0 : v + 1;
        list_add(l, v, hist_count(r, cont));
        (*fallback)++;
    }
}

/* Length of list h with behavior > 0: uniform in [0.5, 1.5] x its mean,
 * rounded, at least 1, at most vocab. */
static int behavior_length(const world *w, fn_rng *r, int h, uint32_t vocab)
{
    int m = (int)floor(w->hist_mean[h] * (0.5 + fn_rng_uniform(r)) + 0.5);
    if (m < 1) m = 1;
    if ((uint32_t)m > vocab) m = (int)vocab;
    return m;
}

typedef struct {
    uint32_t *mark[WORLD_N_HIST], *at[WORLD_N_HIST];
    uint32_t stamp;
} hist_scratch;

/* Draws the four history lists of one user into it[] (room for
 * Σ w->hist_max), setting len[].  behavior 0: the light lists of the model
 * in datagen.c, drawn exactly as they always were (so a default world is
 * byte-identical across versions); behavior > 0: longer lists drawn the
 * same way, with 20 attempts per wanted item and then list_fill.
 * Returns nothing that can fail. */
static void build_histories(world *w, fn_rng *r, world_hist_item *it, uint16_t *len, hist_scratch *sc)
{
    const world_params *p = &w->p;
    const double cont = w->k.hist_continue;
    const int beh = p->behavior > 0;
    const uint32_t vocab[WORLD_N_HIST] = {p->categories, p->shops, p->brands, w->nodes};
    hist_list l[WORLD_N_HIST];
    sc->stamp++;
    for (int h = 0; h < WORLD_N_HIST; h++) l[h] = (hist_list){NULL, 0, sc->mark[h], sc->at[h], sc->stamp};

    /* categories of ads drawn by popularity */
    hist_list *cat = &l[WORLD_H_CAT];
    cat->it = it;
    int m = beh ? behavior_length(w, r, WORLD_H_CAT, vocab[WORLD_H_CAT]) : 3 + (int)fn_rng_below(r, 8);
    if ((uint32_t)m > p->categories) m = (int)p->categories;
    for (int tries = 0; cat->n < m && tries < 20 * m; tries++) {
        uint32_t c = w->ad[alias_draw(&w->ad_pick, r)].category;
        if (list_at(cat, c) < 0) list_add(cat, c, hist_count(r, cont));
    }
    if (beh) list_fill(cat, m, vocab[WORLD_H_CAT], r, cont, &w->hist_fallback[WORLD_H_CAT]);
    world_hist_item *cur = it + cat->n;

    /* shops and brands of popular ads in the user's categories */
    for (int h = WORLD_H_SHOP; h <= WORLD_H_BRAND; h++) {
        hist_list *lh = &l[h];
        lh->it = cur;
        int mh = beh ? behavior_length(w, r, h, vocab[h]) : 3 + (int)fn_rng_below(r, 8);
        for (int tries = 0; lh->n < mh && tries < 20 * mh; tries++) {
            uint32_t c = cat->it[fn_rng_below(r, (uint64_t)cat->n)].id;
            const world_ad *a = &w->ad[ad_in_category(w, c, r)];
            uint32_t v = h == WORLD_H_SHOP ? a->shop : a->brand;
            if (list_at(lh, v) < 0) list_add(lh, v, hist_count(r, cont));
        }
        if (beh) list_fill(lh, mh, vocab[h], r, cont, &w->hist_fallback[h]);
        cur += lh->n;
    }

    /* the nodes of the user's categories (counts summed), topped up with
     * nodes of categories by popularity to 3 (behavior: to a drawn length) */
    hist_list *node = &l[WORLD_H_NODE];
    node->it = cur;
    for (int i = 0; i < cat->n; i++) {
        uint32_t v = w->cat_node[cat->it[i].id];
        int at = list_at(node, v);
        if (at >= 0) {
            node->it[at].count += cat->it[i].count;
            if (node->it[at].count > WORLD_MAX_COUNT) node->it[at].count = WORLD_MAX_COUNT;
        } else {
            list_add(node, v, cat->it[i].count);
        }
    }
    int want = beh ? behavior_length(w, r, WORLD_H_NODE, w->nodes) : w->nodes < 3 ? (int)w->nodes : 3;
    for (int tries = 0; node->n < want && tries < (beh ? 20 * want : 60); tries++) {
        uint32_t v = w->cat_node[alias_draw(&w->cat_pick, r)];
        if (list_at(node, v) < 0) list_add(node, v, hist_count(r, cont));
    }
    if (beh) list_fill(node, want, w->nodes, r, cont, &w->hist_fallback[WORLD_H_NODE]);

    for (int h = 0; h < WORLD_N_HIST; h++) {
        len[h] = (uint16_t)l[h].n;
        w->hist_items[h] += (uint64_t)l[h].n;
        hist_sort(l[h].it, l[h].n);
    }
}

static int build(world *w)
{
    const world_params *p = &w->p;
    const world_consts *k = &w->k;
    const uint32_t dim = p->dim;
    fn_rng r;
    fn_rng_seed(&r, fn_mix64(p->seed ^ 0x574F524C44ull));  /* "WORLD" */
    int rc = FN_ENOMEM;

    size_t nmax = p->users;
    if (p->ads > nmax) nmax = p->ads;
    if (p->categories > nmax) nmax = p->categories;
    if (p->shops > nmax) nmax = p->shops;
    if (p->brands > nmax) nmax = p->brands;
    double *wt = malloc(nmax * sizeof *wt);
    double *shop_w = malloc(p->shops * sizeof *shop_w), *brand_w = malloc(p->brands * sizeof *brand_w);
    world_alias shop_pick = {0}, brand_pick = {0};
    float *g = NULL, *gv = NULL, *hb = NULL, *hv = NULL, *shop_q = NULL;
    uint32_t *shop_cat = malloc(p->shops * sizeof *shop_cat);
    double *mix = malloc(4 * (size_t)dim * sizeof *mix);
    w->cat_node = malloc(p->categories * sizeof *w->cat_node);
    w->user = calloc(p->users, sizeof *w->user);
    w->ad = calloc(p->ads, sizeof *w->ad);
    size_t room = 0, mean_items = 16;  /* most items of one user; a first guess of the mean */
    for (int h = 0; h < WORLD_N_HIST; h++) room += w->hist_max[h];
    if (p->behavior) {
        double sum = 0;
        for (int h = 0; h < WORLD_N_HIST; h++) sum += w->hist_mean[h];
        mean_items = (size_t)(1.02 * sum) + 1;
    }
    size_t hist_cap = (size_t)p->users * mean_items + room;  /* grows; shrunk to fit at the end */
    w->hist = malloc(hist_cap * sizeof *w->hist);
    hist_scratch sc = {.stamp = 0};
    const uint32_t hvocab[WORLD_N_HIST] = {p->categories, p->shops, p->brands, w->nodes};
    for (int h = 0; h < WORLD_N_HIST; h++) {
        sc.mark[h] = calloc(hvocab[h], sizeof *sc.mark[h]);
        sc.at[h] = malloc(hvocab[h] * sizeof *sc.at[h]);
        if (!sc.mark[h] || !sc.at[h]) goto out;
    }
    w->ua = malloc((size_t)p->users * dim * sizeof *w->ua);
    w->ub = malloc((size_t)p->users * dim * sizeof *w->ub);
    w->ac = malloc((size_t)p->ads * dim * sizeof *w->ac);
    w->ad_d = malloc((size_t)p->ads * dim * sizeof *w->ad_d);
    w->cat_start = calloc((size_t)p->categories + 1, sizeof *w->cat_start);
    w->cat_ads = malloc(p->ads * sizeof *w->cat_ads);
    w->cat_cum = malloc(p->ads * sizeof *w->cat_cum);
    if (!wt || !shop_w || !brand_w || !shop_cat || !mix || !w->cat_node || !w->user || !w->ad ||
        !w->hist || !w->ua || !w->ub || !w->ac || !w->ad_d || !w->cat_start || !w->cat_ads ||
        !w->cat_cum)
        goto out;

    /* categories: popularity, node, click and purchase latents */
    if (zipf_weights(wt, p->categories, k->cat_zipf, k->zipf_offset, &r) ||
        alias_build(&w->cat_pick, wt, p->categories))
        goto out;
    for (uint32_t c = 0; c < p->categories; c++) w->cat_node[c] = (uint32_t)fn_rng_below(&r, w->nodes);
    if (!(g = normals(&r, (size_t)p->categories * dim)) || !(gv = normals(&r, (size_t)p->categories * dim)))
        goto out;

    /* shops (main category, quality) and brands (latents) */
    if (zipf_weights(shop_w, p->shops, k->cat_zipf, k->zipf_offset, &r) ||
        alias_build(&shop_pick, shop_w, p->shops) ||
        zipf_weights(brand_w, p->brands, k->cat_zipf, k->zipf_offset, &r) ||
        alias_build(&brand_pick, brand_w, p->brands) || !(shop_q = normals(&r, p->shops)) ||
        !(hb = normals(&r, (size_t)p->brands * dim)) || !(hv = normals(&r, (size_t)p->brands * dim)))
        goto out;
    for (uint32_t s = 0; s < p->shops; s++) shop_cat[s] = alias_draw(&w->cat_pick, &r);

    /* ads */
    if (zipf_weights(wt, p->ads, p->zipf, k->zipf_offset, &r) || alias_build(&w->ad_pick, wt, p->ads))
        goto out;
    double lm = 0, lv = 0;  /* mean and variance of log popularity */
    for (uint32_t a = 0; a < p->ads; a++) lm += log(wt[a]);
    lm /= p->ads;
    for (uint32_t a = 0; a < p->ads; a++) lv += (log(wt[a]) - lm) * (log(wt[a]) - lm);
    lv /= p->ads;
    for (uint32_t a = 0; a < p->ads; a++) {
        world_ad *ad = &w->ad[a];
        ad->shop = alias_draw(&shop_pick, &r);
        ad->category = fn_rng_uniform(&r) < k->shop_cat_p ? shop_cat[ad->shop] : alias_draw(&w->cat_pick, &r);
        ad->brand = alias_draw(&brand_pick, &r);
        ad->node = w->cat_node[ad->category];
        double popz = lv > 0 ? (log(wt[a]) - lm) / sqrt(lv) : 0.0;
        ad->click_bias = (float)(k->ad_pop_slope * popz + k->sd_ad_click * fn_rng_normal(&r));
        ad->quality = (float)(k->sd_shop_quality * shop_q[ad->shop] + k->sd_ad_quality * fn_rng_normal(&r));
        for (uint32_t j = 0; j < dim; j++) {
            size_t cj = (size_t)ad->category * dim + j, bj = (size_t)ad->brand * dim + j;
            w->ac[(size_t)a * dim + j] = (float)(sqrt(k->ad_c_cat) * g[cj] + sqrt(k->ad_c_brand) * hb[bj] +
                                                 sqrt(k->ad_c_own) * fn_rng_normal(&r));
            w->ad_d[(size_t)a * dim + j] = (float)(sqrt(k->ad_d_cat) * gv[cj] + sqrt(k->ad_d_brand) * hv[bj] +
                                                   sqrt(k->ad_d_own) * fn_rng_normal(&r));
        }
    }
    /* ads grouped by category, with cumulative popularity for ad_in_category */
    for (uint32_t a = 0; a < p->ads; a++) w->cat_start[w->ad[a].category + 1]++;
    for (uint32_t c = 0; c < p->categories; c++) w->cat_start[c + 1] += w->cat_start[c];
    uint32_t *pos = malloc(((size_t)p->categories + 1) * sizeof *pos);
    if (!pos) goto out;
    memcpy(pos, w->cat_start, ((size_t)p->categories + 1) * sizeof *pos);
    for (uint32_t a = 0; a < p->ads; a++) w->cat_ads[pos[w->ad[a].category]++] = a;
    free(pos);
    for (uint32_t c = 0; c < p->categories; c++) {
        double cum = 0;
        for (uint32_t i = w->cat_start[c]; i < w->cat_start[c + 1]; i++) {
            cum += wt[w->cat_ads[i]];
            w->cat_cum[i] = cum;
        }
    }

    /* users: activity, profile, histories, then latents mixed from them */
    if (zipf_weights(wt, p->users, p->user_zipf, k->zipf_offset, &r) ||
        alias_build(&w->user_pick, wt, p->users))
        goto out;
    double t121[100], t122[3], t124[8];
    for (int i = 0; i < 100; i++) t121[i] = k->sd_user_click_group * fn_rng_normal(&r);
    for (int i = 0; i < 3; i++) t122[i] = k->sd_user_cvr_122 * fn_rng_normal(&r);
    for (int i = 0; i < 8; i++) t124[i] = k->sd_user_cvr_124 * fn_rng_normal(&r);
    size_t off = 0;
    for (uint32_t u = 0; u < p->users; u++) {
        world_user *us = &w->user[u];
        for (int j = 0; j < WORLD_PROFILE; j++)
            us->profile[j] = (uint8_t)fn_rng_below(&r, world_profile_vocab[j]);
        if (off + room > hist_cap) {
            size_t cap = hist_cap + hist_cap / 2 + room;
            world_hist_item *grown = realloc(w->hist, cap * sizeof *w->hist);
            if (!grown) goto out;
            w->hist = grown;
            hist_cap = cap;
        }
        if (off > UINT32_MAX - room) {  /* hist_off is 32-bit */
            rc = fn_fail(FN_EINVAL, "funnel datagen: more than 2^32 history items (%u users, behavior %u): "
                         "fewer users or a smaller --behavior", p->users, p->behavior);
            goto out;
        }
        us->hist_off = (uint32_t)off;
        build_histories(w, &r, &w->hist[off], us->hist_len, &sc);
        for (int h = 0; h < WORLD_N_HIST; h++) off += us->hist_len[h];
        us->click_bias = (float)(t121[us->profile[0]] + k->sd_user_click_own * fn_rng_normal(&r));
        us->cvr_bias = (float)(t122[us->profile[1]] + t124[us->profile[2]]);

        int nc, nb;
        const world_hist_item *hc = world_hist(w, u, WORLD_H_CAT, &nc);
        const world_hist_item *hbr = world_hist(w, u, WORLD_H_BRAND, &nb);
        double *mc = mix, *mb = mix + dim, *mcv = mix + 2 * dim, *mbv = mix + 3 * dim;
        hist_mix(mc, hc, nc, g, dim);
        hist_mix(mb, hbr, nb, hb, dim);
        hist_mix(mcv, hc, nc, gv, dim);
        hist_mix(mbv, hbr, nb, hv, dim);
        for (uint32_t j = 0; j < dim; j++) {
            w->ua[(size_t)u * dim + j] = (float)(sqrt(k->user_a_cat) * mc[j] + sqrt(k->user_a_brand) * mb[j] +
                                                 sqrt(k->user_a_own) * fn_rng_normal(&r));
            w->ub[(size_t)u * dim + j] = (float)(sqrt(k->user_b_cat) * mcv[j] + sqrt(k->user_b_brand) * mbv[j] +
                                                 sqrt(k->user_b_own) * fn_rng_normal(&r));
        }
    }
    world_hist_item *shrunk = realloc(w->hist, (off ? off : 1) * sizeof *w->hist);
    if (shrunk) w->hist = shrunk;
    rc = FN_OK;
out:
    free(wt); free(shop_w); free(brand_w); free(shop_cat); free(mix);
    free(g); free(gv); free(hb); free(hv); free(shop_q);
    alias_free(&shop_pick); alias_free(&brand_pick);
    for (int h = 0; h < WORLD_N_HIST; h++) { free(sc.mark[h]); free(sc.at[h]); }
    return rc == FN_ENOMEM ? fn_fail(rc, "funnel datagen: out of memory building the world") : rc;
}

int world_new(world **out, const world_params *p)
{
    *out = NULL;
    if (!p->users || !p->ads || !p->categories || !p->shops || !p->brands || !p->dim)
        return fn_fail(FN_EINVAL, "funnel datagen: world sizes must be >= 1");
    world *w = calloc(1, sizeof *w);
    if (!w) return fn_fail(FN_ENOMEM, "funnel datagen: out of memory");
    w->p = *p;
    w->k = world_default_consts;
    w->nodes = (p->categories + 3) / 4;
    w->inv_sqrt_dim = 1.0 / sqrt((double)p->dim);
    const uint32_t vocab[WORLD_N_HIST] = {p->categories, p->shops, p->brands, w->nodes};
    for (int h = 0; h < WORLD_N_HIST; h++) {
        uint32_t mx = WORLD_MAX_HIST;
        if (p->behavior) {
            w->hist_mean[h] = p->behavior * world_behavior_share[h] / 859.0;
            mx = (uint32_t)floor(1.5 * w->hist_mean[h] + 0.5);  /* behavior_length's largest */
            if (mx < 1) mx = 1;
        }
        w->hist_max[h] = mx < vocab[h] ? mx : vocab[h];
    }
    if (p->behavior) {  /* the node list also holds the nodes of the category list */
        uint32_t mx = w->hist_max[WORLD_H_CAT] > w->hist_max[WORLD_H_NODE] ? w->hist_max[WORLD_H_CAT]
                                                                             : w->hist_max[WORLD_H_NODE];
        w->hist_max[WORLD_H_NODE] = mx < w->nodes ? mx : w->nodes;
    }
    int rc = build(w);
    if (rc) { world_destroy(&w); return rc; }
    *out = w;
    return FN_OK;
}

void world_destroy(world **pw)
{
    world *w = *pw;
    if (!w) return;
    free(w->user); free(w->ad); free(w->hist);
    free(w->ua); free(w->ub); free(w->ac); free(w->ad_d);
    free(w->cat_node); free(w->cat_start); free(w->cat_ads); free(w->cat_cum);
    alias_free(&w->user_pick); alias_free(&w->ad_pick); alias_free(&w->cat_pick);
    free(w);
    *pw = NULL;
}

/* ---- requests ----------------------------------------------------------- */

static double dot(const float *x, const float *y, uint32_t n)
{
    double s = 0;
    for (uint32_t i = 0; i < n; i++) s += (double)x[i] * y[i];
    return s;
}

uint32_t world_draw_user(const world *w, fn_rng *r) { return alias_draw(&w->user_pick, r); }

int world_run_length(fn_rng *r, int k)
{
    int n = 1;
    for (int i = 0; i < 2 * (k - 1); i++) n += fn_rng_uniform(r) < 0.5;
    return n;
}

void world_draw_request(const world *w, fn_rng *r, int max_imps, world_req *q)
{
    uint32_t u = world_draw_user(w, r);
    int n = 1;  /* 1 + Binomial(7, 3/7): mean 4 */
    for (int i = 0; i < WORLD_REQ_TRIALS; i++) n += fn_rng_uniform(r) < 3.0 / 7.0;
    if (n > max_imps) n = max_imps;
    world_draw_request_of(w, r, u, n, q);
}

void world_draw_request_of(const world *w, fn_rng *r, uint32_t u, int n, world_req *q)
{
    const world_params *p = &w->p;
    const world_consts *k = &w->k;
    const uint32_t dim = p->dim;
    const world_user *us = &w->user[u];
    const float *au = &w->ua[(size_t)u * dim], *bu = &w->ub[(size_t)u * dim];
    q->user = u;

    /* candidates by popularity, globally or (retrieval) within one of the
     * user's categories, distinct when the catalogue allows; shown
     * as the first n of a Plackett–Luce ranking with scores e·A_c
     * (Gumbel-top-n) */
    uint32_t cand[WORLD_MAX_IMPS * WORLD_CAND_MULT];
    double key[WORLD_MAX_IMPS * WORLD_CAND_MULT], aff[WORLD_MAX_IMPS * WORLD_CAND_MULT];
    int m = n * WORLD_CAND_MULT;
    int ncat;
    const world_hist_item *cats = world_hist(w, u, WORLD_H_CAT, &ncat);
    for (int i = 0; i < m; i++) {
        uint32_t a = 0;
        for (int t = 0; t < 8; t++) {  /* retry duplicates a few times */
            int retrieve = fn_rng_uniform(r) < k->retrieval_p && ncat > 0;
            a = retrieve ? ad_in_category(w, cats[fn_rng_below(r, (uint64_t)ncat)].id, r)
                         : alias_draw(&w->ad_pick, r);
            int dup = 0;
            for (int j = 0; j < i; j++) dup |= cand[j] == a;
            if (!dup) break;
        }
        cand[i] = a;
        aff[i] = dot(au, &w->ac[(size_t)a * dim], dim) * w->inv_sqrt_dim;
        double un = ((double)(fn_rng_next(r) >> 11) + 0.5) * 0x1.0p-53;  /* (0,1) */
        key[i] = p->exposure_bias * aff[i] - log(-log(un));
    }
    for (int i = 0; i < n; i++) {  /* partial selection sort, descending key */
        int best = i;
        for (int j = i + 1; j < m; j++) if (key[j] > key[best]) best = j;
        double tk = key[i]; key[i] = key[best]; key[best] = tk;
        double ta = aff[i]; aff[i] = aff[best]; aff[best] = ta;
        uint32_t tc = cand[i]; cand[i] = cand[best]; cand[best] = tc;
    }

    const double ws = sqrt(1.0 - p->share * p->share);
    for (int i = 0; i < n; i++) {
        world_imp *im = &q->imp[i];
        const world_ad *ad = &w->ad[cand[i]];
        im->ad = cand[i];
        im->position = (uint8_t)(i < WORLD_POSITIONS - 1 ? i : WORLD_POSITIONS - 1);
        im->hit = 0;
        double bonus = 0;
        const uint32_t side[WORLD_N_HIST] = {ad->category, ad->shop, ad->brand, ad->node};
        for (int h = 0; h < WORLD_N_HIST; h++) {
            int nh;
            const world_hist_item *it = world_hist(w, u, h, &nh);
            int at = hist_find(it, nh, side[h]);
            im->hit_count[h] = at >= 0 ? it[at].count : 0;
            if (at >= 0) { im->hit |= (uint8_t)(1u << h); bonus += k->hit_bonus[h]; }
        }
        im->aff_click = aff[i];
        im->aff_conv = p->share * aff[i] + ws * dot(bu, &w->ad_d[(size_t)cand[i] * dim], dim) * w->inv_sqrt_dim;
        im->zc = p->click_bias * (k->w_click_aff * im->aff_click + bonus) + us->click_bias + ad->click_bias +
                 k->position[im->position];
        im->zv = k->w_conv_aff * im->aff_conv + ad->quality + us->cvr_bias;
        im->pctr = world_prob(w, w->alpha_c + im->zc);
        im->pcvr = world_prob(w, w->alpha_v + im->zv);
        im->click = fn_rng_uniform(r) < im->pctr;
        im->conv = fn_rng_uniform(r) < im->pcvr;
    }
    q->n = n;
}

/* ---- calibration -------------------------------------------------------- */

/* Solves f(alpha) = target for increasing f on [-50, 50] by bisection. */
static double bisect(double (*f)(double, const double *, const double *, size_t, const world *),
                     const double *x, const double *y, size_t n, const world *w, double target)
{
    double lo = -50, hi = 50;
    for (int it = 0; it < 48; it++) {
        double mid = 0.5 * (lo + hi);
        if (f(mid, x, y, n, w) < target) lo = mid; else hi = mid;
    }
    return 0.5 * (lo + hi);
}

/* mean pCTR */
static double f_ctr(double a, const double *zc, const double *unused, size_t n, const world *w)
{
    (void)unused;
    double s = 0;
    for (size_t i = 0; i < n; i++) s += world_prob(w, a + zc[i]);
    return s / (double)n;
}

/* Σ pCTR·pCVR / Σ pCTR, with pctr[] precomputed */
static double f_cvr(double a, const double *zv, const double *pctr, size_t n, const world *w)
{
    double s = 0, sw = 0;
    for (size_t i = 0; i < n; i++) {
        s += pctr[i] * world_prob(w, a + zv[i]);
        sw += pctr[i];
    }
    return s / sw;
}

int world_calibrate(world *w, size_t n_pilot, double ctr, double cvr, int run_k, world_pilot *out)
{
    double *zc = malloc(n_pilot * sizeof *zc), *zv = malloc(n_pilot * sizeof *zv);
    double *pc = malloc(n_pilot * sizeof *pc);
    if (!zc || !zv || !pc) {
        free(zc); free(zv); free(pc);
        return fn_fail(FN_ENOMEM, "funnel datagen: out of memory for the pilot");
    }
    fn_rng r;
    fn_rng_seed(&r, fn_mix64(w->p.seed ^ 0x50494C4F54ull));  /* "PILOT" */
    world_req q;
    size_t n = 0;
    while (n < n_pilot) {
        int room = n_pilot - n < WORLD_MAX_IMPS ? (int)(n_pilot - n) : WORLD_MAX_IMPS;
        if (run_k >= 1) {
            uint32_t u = world_draw_user(w, &r);
            int len = world_run_length(&r, run_k);
            world_draw_request_of(w, &r, u, len < room ? len : room, &q);
        } else {
            world_draw_request(w, &r, room, &q);
        }
        for (int i = 0; i < q.n; i++, n++) { zc[n] = q.imp[i].zc; zv[n] = q.imp[i].zv; }
    }
    w->alpha_c = bisect(f_ctr, zc, NULL, n, w, ctr);
    for (size_t i = 0; i < n; i++) pc[i] = world_prob(w, w->alpha_c + zc[i]);
    w->alpha_v = bisect(f_cvr, zv, pc, n, w, cvr);
    out->mean_pctr = f_ctr(w->alpha_c, zc, NULL, n, w);
    out->cvr_clicked = f_cvr(w->alpha_v, zv, pc, n, w);
    out->mean_pcvr = 0;
    for (size_t i = 0; i < n; i++) out->mean_pcvr += world_prob(w, w->alpha_v + zv[i]);
    out->mean_pcvr /= (double)n;
    free(zc); free(zv); free(pc);
    int bad = fabs(out->mean_pctr - ctr) > 1e-3 * ctr || fabs(out->cvr_clicked - cvr) > 1e-3 * cvr;
    if (bad)
        log_warn("datagen: calibration missed: mean pCTR %.6g (target %.6g), CVR among clicks %.6g "
                 "(target %.6g)", out->mean_pctr, ctr, out->cvr_clicked, cvr);
    return FN_OK;
}
