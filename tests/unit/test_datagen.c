/* tests/unit/test_datagen.c — `funnel datagen` (common/datagen.c,
 * common/world.c) end to end: runs datagen_main into a temporary directory
 * and reads back every file.
 *
 *   format       every line parses as Ali-CCP (column counts, md5 shape,
 *                feature_count == items, only the 23 fields, user fields in
 *                the common file and the rest in the skeleton, a feature id
 *                never under two fields, positive values, sample ids
 *                consecutive from 1 and continuing into test), every
 *                skeleton md5 in its split's common file, md5s unique
 *   labels       buy implies click; buy == click && conv; truth rows align
 *                with the skeleton; probabilities in (0,1)
 *   calibration  realised CTR and CVR among clicks near --ctr / --cvr
 *                (binomial bands plus the pilot's error); clicks, buys and
 *                counterfactual conversions consistent with the truth
 *   signal       exact AUC of the true pCTR against clicks well above 0.5,
 *                of the true pCVR against buys among clicks too; CVR among
 *                clicks above the entire-space CVR (selection bias)
 *   determinism  same seed => byte-identical files, another seed => not
 *   flags        bad values, unknown options, missing --out return 2
 *   shapes       --shape aliccp: history ids per common line near
 *                N·(117,342,209,191)/859, ~868 common ids per md5, ids of a
 *                line distinct, ceil(n/58) common lines all named by the
 *                skeleton (and only they), CTR and CVR among clicks (true
 *                and realised) near 0.039 / 0.0055; K = 1 scatters an md5's
 *                impressions, K = 6 keeps ~5/6 of adjacent lines together,
 *                K = 16 (runs past the default's 8) ~15/16; tiny
 *                vocabularies cap the lists exactly (the fallback fills
 *                them, nothing loops); same flags => same bytes
 * Deterministic (fixed seeds); prints every failure, exits 1 if any. */
#include "datagen.h"
#include "log.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

#define N_TRAIN 50000
#define N_TEST  20000

static const char *const files[] = {
    "sample_skeleton_train.csv", "common_features_train.csv", "truth_train.csv",
    "sample_skeleton_test.csv",  "common_features_test.csv",  "truth_test.csv", "world.json",
};
#define N_FILES (int)(sizeof files / sizeof files[0])

/* The 23 Ali-CCP fields; the first 13 are user-side (common file). */
static const char *const fields[] = {
    "101", "121", "122", "124", "125", "126", "127", "128", "129",
    "109_14", "110_14", "127_14", "150_14",
    "205", "206", "207", "210", "216", "301", "508", "509", "702", "853",
};
#define N_FIELDS 23
#define N_USER_FIELDS 13

static int run(const char *dir, const char *seed_flag, int extra_argc, const char **extra)
{
    const char *argv[40] = {"datagen", "--out", dir, "--train", "50000", "--test", "20000",
                            seed_flag, "--users", "20000", "--ads", "10000", "--pilot", "60000"};
    int argc = 14;
    for (int i = 0; i < extra_argc; i++) argv[argc++] = extra[i];
    return datagen_main(argc, (char **)argv);
}

/* ---- feature-id ownership: an id never appears under two fields ---------- */

static signed char *id_field;
static size_t id_cap;

static void note_id(uint64_t id, int field)
{
    if (id >= 100000000ull) { CHECK(0, "feature id %llu implausibly large", (unsigned long long)id); return; }
    if (id >= id_cap) {
        size_t cap = id_cap ? id_cap : 1024;
        while (cap <= id) cap *= 2;
        id_field = realloc(id_field, cap);
        memset(id_field + id_cap, -1, cap - id_cap);
        id_cap = cap;
    }
    if (id_field[id] < 0) id_field[id] = (signed char)field;
    CHECK(id_field[id] == field, "feature id %llu under fields %s and %s", (unsigned long long)id,
          fields[id_field[id]], fields[field]);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Parses `features` (up to end) with declared count; checks every item and
 * that no id repeats within the line; counts the items of the history
 * fields 109_14, 110_14, 127_14, 150_14 into n_hist[4].  Returns 0 if all
 * fine. */
static int check_features(char *s, long count, int user_side, int *n_hist)
{
    static uint64_t *ids;
    static size_t ids_cap;
    long items = 0;
    int bad = 0;
    for (int h = 0; h < 4; h++) n_hist[h] = 0;
    while (*s) {
        char *next = strchr(s, '\x01');
        if (next) *next = 0;
        char *a = strchr(s, '\x02'), *b = a ? strchr(a + 1, '\x03') : NULL;
        if (!a || !b) { bad = 1; break; }
        *a = 0;
        int f = -1;
        for (int i = 0; i < N_FIELDS; i++) if (!strcmp(s, fields[i])) f = i;
        if (f < 0 || (f < N_USER_FIELDS) != user_side) { bad = 2; break; }
        if (f >= 9 && f < N_USER_FIELDS) n_hist[f - 9]++;
        char *end;
        if (a[1] < '0' || a[1] > '9') { bad = 3; break; }
        unsigned long long id = strtoull(a + 1, &end, 10);
        if (end != b) { bad = 3; break; }
        note_id(id, f);
        if ((size_t)items >= ids_cap) ids = realloc(ids, (ids_cap = ids_cap ? 2 * ids_cap : 1024) * sizeof *ids);
        ids[items] = id;
        double v = strtod(b + 1, &end);
        if (*end || !(v > 0) || end == b + 1) { bad = 4; break; }
        if (f < 9 || (f >= N_USER_FIELDS && f < 19)) { if (v != 1.0) { bad = 5; break; } }
        items++;
        if (!next) break;
        s = next + 1;
    }
    if (!bad && items != count) bad = 6;
    if (!bad) {
        qsort(ids, (size_t)items, sizeof *ids, cmp_u64);
        for (long i = 1; i < items && !bad; i++) if (ids[i] == ids[i - 1]) bad = 9;
    }
    return bad;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int is_md5(const char *s, size_t n)
{
    if (n != 32) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

typedef struct { double p; int y; } scored;

static int cmp_scored(const void *a, const void *b)
{
    double x = ((const scored *)a)->p, y = ((const scored *)b)->p;
    return (x > y) - (x < y);
}

/* exact ROC-AUC, ties one half (sort + mid-ranks); NaN if one class only */
static double auc(scored *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_scored);
    double rank_sum = 0, pos = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && v[j].p == v[i].p) j++;
        double mid = 0.5 * ((double)i + 1 + (double)j);
        for (size_t t = i; t < j; t++) if (v[t].y) { rank_sum += mid; pos++; }
        i = j;
    }
    double neg = (double)n - pos;
    if (pos == 0 || neg == 0) return NAN;
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg);
}

/* What a world is expected to be, and what a split realised. */
typedef struct {
    double ctr, cvr;   /* --ctr, --cvr */
    int light;         /* default histories (3..10 categories) and the default world's AUC bands */
    int degenerate;    /* tiny vocabularies: labels and calibration only, no selection-bias check */
} expect;

typedef struct {
    long common_lines, md5s_used, impressions, adjacent_same;
    double common_ids, hist_ids[4];  /* summed over common lines */
    int min_hist[4], max_hist[4];    /* per common line */
    long clicks, buys;
    double pctr_weighted_pcvr;       /* Σ pctr·pcvr / Σ pctr, the true CVR among clicks */
} shape;

/* Checks one split of directory dir; first_id is its first sample id. */
static shape check_split(const char *dir, const char *split, long n_expect, long first_id, const expect *ex)
{
    shape sh = {0};
    for (int h = 0; h < 4; h++) sh.min_hist[h] = 1 << 30;
    char path[512];
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;

    /* common file: md5 set */
    snprintf(path, sizeof path, "%s/common_features_%s.csv", dir, split);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "cannot open %s", path);
    if (!f) return sh;
    char **md5 = NULL;
    size_t n_md5 = 0, md5_cap = 0;
    long lineno = 0, bad_lines = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        lineno++;
        if (line[len - 1] != '\n') { bad_lines++; continue; }
        line[--len] = 0;
        char *c1 = strchr(line, ','), *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
        if (!c1 || !c2 || strchr(c2 + 1, ',') || !is_md5(line, (size_t)(c1 - line))) { bad_lines++; continue; }
        *c1 = 0;
        char *end;
        long count = strtol(c1 + 1, &end, 10);
        int n_hist[4];
        int why = end == c2 ? check_features(c2 + 1, count, 1, n_hist) : 7;
        if (!why && ex->light && (n_hist[0] < 3 || n_hist[0] > 10)) why = 8;
        if (why) {
            if (bad_lines < 3) fprintf(stderr, "%s:%ld: bad common line (%d)\n", path, lineno, why);
            bad_lines++;
            continue;
        }
        sh.common_lines++;
        sh.common_ids += (double)count;
        for (int h = 0; h < 4; h++) {
            sh.hist_ids[h] += n_hist[h];
            if (n_hist[h] < sh.min_hist[h]) sh.min_hist[h] = n_hist[h];
            if (n_hist[h] > sh.max_hist[h]) sh.max_hist[h] = n_hist[h];
        }
        if (n_md5 == md5_cap) md5 = realloc(md5, (md5_cap = md5_cap ? 2 * md5_cap : 4096) * sizeof *md5);
        md5[n_md5++] = strdup(line);
    }
    fclose(f);
    CHECK(bad_lines == 0, "%s: %ld malformed lines", path, bad_lines);
    CHECK(n_md5 > 0, "%s: empty", path);
    qsort(md5, n_md5, sizeof *md5, cmp_str);
    size_t dups = 0;
    for (size_t i = 1; i < n_md5; i++) dups += !strcmp(md5[i - 1], md5[i]);
    CHECK(dups == 0, "%s: %zu duplicate md5s", path, dups);

    /* skeleton and truth side by side */
    snprintf(path, sizeof path, "%s/sample_skeleton_%s.csv", dir, split);
    FILE *fs = fopen(path, "r");
    char tpath[512];
    snprintf(tpath, sizeof tpath, "%s/truth_%s.csv", dir, split);
    FILE *ft = fopen(tpath, "r");
    CHECK(fs && ft, "cannot open %s or %s", path, tpath);
    if (!fs || !ft) goto done;
    char *tline = NULL;
    size_t tcap = 0;
    CHECK(getline(&tline, &tcap, ft) > 0 && !strcmp(tline, "sample_id,pctr,pcvr,conv\n"), "%s: bad header", tpath);
    scored *ctr = malloc((size_t)n_expect * sizeof *ctr), *cvr = malloc((size_t)n_expect * sizeof *cvr);
    char *named = calloc(n_md5 ? n_md5 : 1, 1);  /* common lines the skeleton names */
    char prev[40] = "";
    long n = 0, n_clicked = 0, clicks = 0, buys = 0, convs = 0, bad_truth = 0, missing_md5 = 0;
    double sum_pctr = 0, var_click = 0, sum_pcvr = 0, var_conv = 0, sum_pcvr_clk = 0, var_buy = 0;
    double sum_pctcvr = 0;
    bad_lines = 0;
    lineno = 0;
    while ((len = getline(&line, &cap, fs)) > 0) {
        lineno++;
        if (line[len - 1] != '\n') { bad_lines++; continue; }
        line[--len] = 0;
        char *col[6];
        int nc = 0;
        col[nc++] = line;
        for (char *p = line; *p && nc <= 6; p++)
            if (*p == ',') { *p = 0; if (nc < 6) col[nc] = p + 1; nc++; }
        char *end;
        long sid = -1, count = -1;
        int click = -1, buy = -1, n_hist[4], why = 0;
        if (nc == 6) {
            sid = strtol(col[0], &end, 10);
            click = col[1][0] - '0';
            buy = col[2][0] - '0';
            count = strtol(col[4], &end, 10);
        }
        if (nc != 6) why = 1;
        else if (sid != first_id + n) why = 2;
        else if (strlen(col[1]) != 1 || strlen(col[2]) != 1 || click < 0 || click > 1 || buy < 0 || buy > 1) why = 3;
        else if (buy && !click) why = 4;
        else if (!is_md5(col[3], strlen(col[3]))) why = 5;
        else why = check_features(col[5], count, 0, n_hist) ? 6 : 0;
        if (why) {
            if (bad_lines < 3) fprintf(stderr, "%s:%ld: bad skeleton line (%d)\n", path, lineno, why);
            bad_lines++;
            continue;
        }
        char **hit = bsearch(&col[3], md5, n_md5, sizeof *md5, cmp_str);
        missing_md5 += !hit;
        if (hit) named[hit - md5] = 1;
        sh.adjacent_same += !strcmp(prev, col[3]);
        snprintf(prev, sizeof prev, "%s", col[3]);

        /* the truth row of the same impression */
        long tsid = -1;
        double pctr = -1, pcvr = -1;
        int conv = -1;
        if (getline(&tline, &tcap, ft) <= 0 ||
            sscanf(tline, "%ld,%lf,%lf,%d", &tsid, &pctr, &pcvr, &conv) != 4 || tsid != sid ||
            !(pctr > 0 && pctr < 1) || !(pcvr > 0 && pcvr < 1) || conv < 0 || conv > 1 ||
            buy != (click && conv)) {
            if (bad_truth < 3) fprintf(stderr, "%s: bad truth for sample %ld: %s", tpath, sid, tline);
            bad_truth++;
            continue;
        }
        if (n < n_expect) ctr[n] = (scored){pctr, click};
        n++;
        clicks += click;
        buys += buy;
        convs += conv;
        sum_pctr += pctr;
        var_click += pctr * (1 - pctr);
        sum_pcvr += pcvr;
        var_conv += pcvr * (1 - pcvr);
        sum_pctcvr += pctr * pcvr;
        if (click) {
            cvr[n_clicked++] = (scored){pcvr, buy};
            sum_pcvr_clk += pcvr;
            var_buy += pcvr * (1 - pcvr);
        }
    }
    CHECK(getline(&tline, &tcap, ft) <= 0, "%s: more rows than the skeleton", tpath);
    CHECK(bad_lines == 0, "%s: %ld malformed lines", path, bad_lines);
    CHECK(bad_truth == 0, "%s: %ld bad truth rows", tpath, bad_truth);
    CHECK(missing_md5 == 0, "%s: %ld md5s not in the common file", path, missing_md5);
    CHECK(n == n_expect, "%s: %ld impressions, expected %ld", path, n, n_expect);
    for (size_t i = 0; i < n_md5; i++) sh.md5s_used += named[i];
    sh.impressions = n;
    sh.clicks = clicks;
    sh.buys = buys;
    sh.pctr_weighted_pcvr = sum_pctcvr / sum_pctr;
    const double tc = ex->ctr, tv = ex->cvr;

    if (n == n_expect && n > 0 && clicks > 0) {
        double ctr_rate = (double)clicks / n, cvr_clk = (double)buys / clicks;
        /* labels drawn from the truth: 5 binomial sigmas */
        CHECK(fabs(clicks - sum_pctr) <= 5 * sqrt(var_click), "%s: clicks %ld vs Σ pctr %.1f", split, clicks, sum_pctr);
        CHECK(fabs(convs - sum_pcvr) <= 5 * sqrt(var_conv), "%s: conversions %ld vs Σ pcvr %.1f", split, convs, sum_pcvr);
        CHECK(fabs(buys - sum_pcvr_clk) <= 5 * sqrt(var_buy) + 1, "%s: buys %ld vs Σ pcvr over clicks %.1f", split,
              buys, sum_pcvr_clk);
        /* calibration: the pilot fixes the truth's means to ~1% (heavy users
         * make the split's own mean wander a little more; a pool of md5s,
         * fewer users than requests, more) */
        CHECK(fabs(sum_pctr / n - tc) < 0.1 * tc, "%s: mean true pctr %.5f, target %g", split, sum_pctr / n, tc);
        CHECK(fabs(sum_pctcvr / sum_pctr - tv) < 0.1 * tv, "%s: pctr-weighted pcvr %.6f, target %g", split,
              sum_pctcvr / sum_pctr, tv);
        CHECK(fabs(ctr_rate - tc) < 0.1 * tc + 5 * sqrt(tc * (1 - tc) / n), "%s: CTR %.5f, target %g", split,
              ctr_rate, tc);
        CHECK(fabs(cvr_clk - tv) < 0.1 * tv + 5 * sqrt(tv * (1 - tv) / clicks), "%s: CVR among clicks %.5f, "
              "target %g", split, cvr_clk, tv);
        /* selection bias: the clicked impressions convert more than all */
        CHECK(ex->degenerate || sum_pcvr_clk / clicks > 1.1 * sum_pcvr / n, "%s: mean pcvr clicked %.5f vs all %.5f",
              split, sum_pcvr_clk / clicks, sum_pcvr / n);
        double a_ctr = auc(ctr, (size_t)n), a_cvr = auc(cvr, (size_t)n_clicked);
        if (ex->light) {
            CHECK(a_ctr > 0.68 && a_ctr < 0.82, "%s: AUC of true pctr vs clicks %.4f", split, a_ctr);
            CHECK(a_cvr > 0.62, "%s: AUC of true pcvr vs buys among clicks %.4f", split, a_cvr);
        } else {  /* few buys: the signal only */
            CHECK(a_ctr > 0.6, "%s: AUC of true pctr vs clicks %.4f", split, a_ctr);
            CHECK(buys < 20 || a_cvr > 0.55, "%s: AUC of true pcvr vs buys among clicks %.4f", split, a_cvr);
        }
        fprintf(stderr, "%s: CTR %.5f, CVR|click %.5f, CVR entire %.5f, AUC pctr %.4f, AUC pcvr|click %.4f\n", split,
                ctr_rate, cvr_clk, (double)convs / n, a_ctr, a_cvr);
    }
    free(ctr);
    free(cvr);
    free(named);
    free(tline);
done:
    if (fs) fclose(fs);
    if (ft) fclose(ft);
    for (size_t i = 0; i < n_md5; i++) free(md5[i]);
    free(md5);
    free(line);
    return sh;
}

/* 1 if the two files have the same bytes */
static int same_file(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    static char ba[1 << 16], bb[1 << 16];
    while (same) {
        size_t na = fread(ba, 1, sizeof ba, fa), nb = fread(bb, 1, sizeof bb, fb);
        if (na != nb || memcmp(ba, bb, na)) same = 0;
        if (na == 0) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

static void remove_run(const char *dir)
{
    char p[512];
    for (int i = 0; i < N_FILES; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

static void reset_ids(void)
{
    free(id_field);
    id_field = NULL;
    id_cap = 0;
}

/* datagen into dir with exactly these flags (after --out dir). */
static int run_flags(const char *dir, const char *flags)
{
    char buf[512];
    const char *argv[40] = {"datagen", "--out", dir};
    int argc = 3;
    snprintf(buf, sizeof buf, "%s", flags);
    for (char *t = strtok(buf, " "); t && argc < 40; t = strtok(NULL, " ")) argv[argc++] = t;
    return datagen_main(argc, (char **)argv);
}

/* The md5s of a common file, sorted (*n of them). */
static char **read_md5s(const char *path, size_t *n)
{
    FILE *f = fopen(path, "r");
    char **v = NULL, *line = NULL;
    size_t cap = 0, vcap = 0;
    *n = 0;
    while (f && getline(&line, &cap, f) > 0) {
        char *c = strchr(line, ',');
        if (!c) continue;
        *c = 0;
        if (*n == vcap) v = realloc(v, (vcap = vcap ? 2 * vcap : 1024) * sizeof *v);
        v[(*n)++] = strdup(line);
    }
    if (f) fclose(f);
    free(line);
    if (*n) qsort(v, *n, sizeof *v, cmp_str);
    return v;
}

/* --shape aliccp (K = 1), K = 6, K = 16, tiny vocabularies, determinism. */
static void check_shapes(const char *root)
{
    char a[600], b[600], c[600], p[700], q[700];
    const expect aliccp = {0.039, 0.0055, 0, 0}, light = {0.04, 0.05, 1, 0};
    static const double target[4] = {117, 342, 209, 191};
    static const char *const hist[4] = {"109_14", "110_14", "127_14", "150_14"};

    /* the preset: K = 1, M = 58, behavior 859 */
    snprintf(a, sizeof a, "%s/shaped1", root);
    reset_ids();
    CHECK(run_flags(a, "--shape aliccp --train 150000 --test 15000 --seed 5") == 0, "shaped run failed");
    shape tr = check_split(a, "train", 150000, 1, &aliccp);
    shape te = check_split(a, "test", 15000, 150001, &aliccp);
    const shape *sp[2] = {&tr, &te};
    const long pool[2] = {(150000 + 57) / 58, (15000 + 57) / 58};
    for (int s = 0; s < 2; s++) {
        /* a line's list has sd ~0.29 x its mean, and heavy users own several
         * lines: 6% on train's 2587 lines, 10% on test's 259 */
        const shape *x = sp[s];
        const double tol = s ? 0.10 : 0.06;
        double lines = (double)x->common_lines;
        CHECK(x->common_lines == pool[s], "split %d: %ld common lines, expected ceil(n/58) = %ld", s,
              x->common_lines, pool[s]);
        CHECK(x->md5s_used == x->common_lines, "split %d: skeleton names %ld of %ld md5s", s, x->md5s_used,
              x->common_lines);
        for (int h = 0; h < 4; h++) {
            double mean = x->hist_ids[h] / lines;
            CHECK(fabs(mean - target[h]) < tol * target[h], "split %d: %s has %.1f ids per common line, "
                  "target %g", s, hist[h], mean, target[h]);
            CHECK(x->min_hist[h] >= (int)(0.45 * target[h]) && x->max_hist[h] <= (int)(1.55 * target[h]),
                  "split %d: %s lengths in [%d, %d], target %g x [0.5, 1.5]", s, hist[h], x->min_hist[h],
                  x->max_hist[h], target[h]);
        }
        CHECK(fabs(x->common_ids / lines - 868) < tol * 868, "split %d: %.1f common ids per md5", s,
              x->common_ids / lines);
        double adj = (double)x->adjacent_same / (double)(x->impressions - 1);
        CHECK(adj < 0.01, "split %d: K = 1 but %.4f of adjacent lines share an md5", s, adj);
        fprintf(stderr, "shaped split %d: %ld md5s, %.1f common ids per md5, history %.1f %.1f %.1f %.1f, "
                "adjacent %.4f, true CVR|click %.5f, buys %ld of %ld clicks\n", s, x->common_lines,
                x->common_ids / lines, x->hist_ids[0] / lines, x->hist_ids[1] / lines, x->hist_ids[2] / lines,
                x->hist_ids[3] / lines, adj, x->pctr_weighted_pcvr, x->buys, x->clicks);
    }
    /* CVR among clicks over both splits: realised within 4 binomial sigmas
     * (+3% for the splits' own truth), true within 5% */
    {
        double clicks = (double)(tr.clicks + te.clicks), rate = (double)(tr.buys + te.buys) / clicks;
        CHECK(fabs(rate - 0.0055) < 0.03 * 0.0055 + 4 * sqrt(0.0055 / clicks), "realised CVR among clicks %.5f "
              "over %.0f clicks, target 0.0055", rate, clicks);
        CHECK(fabs(tr.pctr_weighted_pcvr - 0.0055) < 0.05 * 0.0055, "true CVR among clicks %.6f, target 0.0055",
              tr.pctr_weighted_pcvr);
    }
    /* the splits' pools are disjoint */
    {
        size_t n0, n1, common = 0;
        snprintf(p, sizeof p, "%s/common_features_train.csv", a);
        snprintf(q, sizeof q, "%s/common_features_test.csv", a);
        char **m0 = read_md5s(p, &n0), **m1 = read_md5s(q, &n1);
        for (size_t i = 0; i < n1; i++) common += bsearch(&m1[i], m0, n0, sizeof *m0, cmp_str) != NULL;
        CHECK(n0 > 0 && n1 > 0 && common == 0, "%zu md5s in both splits' common files", common);
        for (size_t i = 0; i < n0; i++) free(m0[i]);
        for (size_t i = 0; i < n1; i++) free(m1[i]);
        free(m0);
        free(m1);
    }
    remove_run(a);

    /* K = 6: runs of ~6 adjacent lines share an md5 (5/6 of the pairs) */
    snprintf(a, sizeof a, "%s/shaped6", root);
    snprintf(b, sizeof b, "%s/shaped6b", root);
    snprintf(c, sizeof c, "%s/shaped6c", root);
    reset_ids();
    const char *k6 = "--shape aliccp --impressions-per-request 6 --train 30000 --test 3000 --seed 5";
    CHECK(run_flags(a, k6) == 0, "K = 6 run failed");
    tr = check_split(a, "train", 30000, 1, &aliccp);
    double adj = (double)tr.adjacent_same / (double)(tr.impressions - 1);
    CHECK(adj > 0.80 && adj < 0.87, "K = 6: %.4f of adjacent lines share an md5, expected ~5/6", adj);
    /* ~9.7 runs per md5: P(an md5 gets none) = e^-9.7, ~0.03 of 518 */
    CHECK(tr.common_lines == (30000 + 57) / 58 && tr.md5s_used >= tr.common_lines - 3, "K = 6: %ld md5s, %ld named",
          tr.common_lines, tr.md5s_used);
    fprintf(stderr, "K = 6: adjacent %.4f\n", adj);

    /* same flags => same bytes; another seed => not */
    CHECK(run_flags(b, k6) == 0, "K = 6 rerun failed");
    CHECK(run_flags(c, "--shape aliccp --impressions-per-request 6 --train 30000 --test 3000 --seed 6") == 0,
          "K = 6 seed 6 failed");
    for (int i = 0; i < N_FILES; i++) {
        char pc[700];
        snprintf(p, sizeof p, "%s/%s", a, files[i]);
        snprintf(q, sizeof q, "%s/%s", b, files[i]);
        snprintf(pc, sizeof pc, "%s/%s", c, files[i]);
        CHECK(same_file(p, q), "shaped %s differs between two runs with the same flags", files[i]);
        CHECK(!same_file(p, pc), "shaped %s identical under seeds 5 and 6", files[i]);
    }
    remove_run(a);
    remove_run(b);
    remove_run(c);

    /* K = 16 (runs up to 31, past the default's 8), light histories */
    snprintf(a, sizeof a, "%s/k16", root);
    reset_ids();
    CHECK(run_flags(a, "--impressions-per-request 16 --impressions-per-md5 100 --train 20000 --test 2000 "
                       "--users 5000 --ads 10000 --seed 5") == 0, "K = 16 run failed");
    tr = check_split(a, "train", 20000, 1, &light);
    adj = (double)tr.adjacent_same / (double)(tr.impressions - 1);
    CHECK(adj > 0.92 && adj < 0.955, "K = 16: %.4f of adjacent lines share an md5, expected ~15/16", adj);
    CHECK(tr.common_lines == 200, "K = 16, M = 100: %ld md5s", tr.common_lines);
    remove_run(a);

    /* tiny vocabularies: every list capped at its vocabulary, filled */
    snprintf(a, sizeof a, "%s/tiny", root);
    reset_ids();
    CHECK(run_flags(a, "--behavior 859 --categories 20 --shops 30 --brands 30 --ads 1000 --users 300 "
                       "--train 3000 --test 300 --pilot 5000 --seed 5") == 0, "tiny run failed");
    static const int cap[4] = {20, 30, 30, 5};
    const expect tiny = {0.04, 0.05, 0, 1};
    tr = check_split(a, "train", 3000, 1, &tiny);
    for (int h = 0; h < 4; h++)
        CHECK(tr.min_hist[h] == cap[h] && tr.max_hist[h] == cap[h], "tiny: %s lengths in [%d, %d], vocabulary %d",
              hist[h], tr.min_hist[h], tr.max_hist[h], cap[h]);
    remove_run(a);
    reset_ids();
}

int main(void)
{
    log_set_level(LOG_WARN);
    char root[] = "/tmp/test_datagen.XXXXXX";
    if (!mkdtemp(root)) { perror("mkdtemp"); return 1; }
    char a[600], b[600], c[600], d[600];
    snprintf(a, sizeof a, "%s/a", root);
    snprintf(b, sizeof b, "%s/b/nested", root);  /* created with its parent */
    snprintf(c, sizeof c, "%s/c", root);
    snprintf(d, sizeof d, "%s/d", root);

    CHECK(run(a, "--seed=7", 0, NULL) == 0, "run a failed");
    const expect light = {0.04, 0.05, 1, 0};
    check_split(a, "train", N_TRAIN, 1, &light);
    check_split(a, "test", N_TEST, 1 + N_TRAIN, &light);
    free(id_field);
    id_field = NULL;
    id_cap = 0;

    CHECK(run(b, "--seed=7", 0, NULL) == 0, "run b failed");
    const char *other[] = {"--seed", "8"};
    CHECK(run(c, "--seed=7", 2, other) == 0, "run c failed");
    for (int i = 0; i < N_FILES; i++) {
        char pa[700], pb[700], pc[700];
        snprintf(pa, sizeof pa, "%s/%s", a, files[i]);
        snprintf(pb, sizeof pb, "%s/%s", b, files[i]);
        snprintf(pc, sizeof pc, "%s/%s", c, files[i]);
        CHECK(same_file(pa, pb), "%s differs between two runs with the same seed", files[i]);
        CHECK(!same_file(pa, pc), "%s identical under seeds 7 and 8", files[i]);
    }

    /* world.json names the fitted intercepts and the realised AUCs */
    {
        char p[700], buf[16384];
        snprintf(p, sizeof p, "%s/world.json", a);
        FILE *f = fopen(p, "r");
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        buf[n] = 0;
        if (f) fclose(f);
        CHECK(strstr(buf, "\"alpha_c\"") && strstr(buf, "\"alpha_v\"") && strstr(buf, "\"seed\": 7,") &&
              strstr(buf, "\"auc\"") && strstr(buf, "\"test\": {"), "world.json incomplete");
    }

    /* bad flags: exit code 2, nothing written */
    static const char *const bad[][2] = {
        {"--ctr", "abc"}, {"--ctr", "1"}, {"--ctr", "0"}, {"--cvr", "1.5"}, {"--share", "2"},
        {"--users", "0"}, {"--users", "-3"}, {"--ads", "12x"}, {"--exposure-bias", "-1"},
        {"--click-bias", "nan"}, {"--dim-latent", "0"}, {"--zipf", "inf"}, {"--train", "1e6"},
        {"--seed", "-1"}, {"--pilot", "10"}, {"--bogus", "1"}, {"--shape", "ali"}, {"--behavior", "20001"},
        {"--impressions-per-request", "33"}, {"--impressions-per-md5", "0"},
        {"--impressions-per-md5", "58"},  /* without --impressions-per-request */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *argv[] = {"datagen", "--out", d, bad[i][0], bad[i][1]};
        CHECK(datagen_main(5, (char **)argv) == 2, "%s %s accepted", bad[i][0], bad[i][1]);
    }
    {
        const char *argv1[] = {"datagen", "--train", "10"};
        CHECK(datagen_main(3, (char **)argv1) == 2, "missing --out accepted");
        const char *argv2[] = {"datagen", "--out", d, "--train"};
        CHECK(datagen_main(4, (char **)argv2) == 2, "missing value accepted");
        const char *argv3[] = {"datagen", "--out", d, "stray"};
        CHECK(datagen_main(4, (char **)argv3) == 2, "stray argument accepted");
        CHECK(access(d, F_OK) != 0, "a rejected command line created its output directory");
    }

    remove_run(a);
    remove_run(b);
    snprintf(b, sizeof b, "%s/b", root);
    rmdir(b);
    remove_run(c);
    check_shapes(root);
    rmdir(root);
    free(id_field);
    if (failures) { fprintf(stderr, "test_datagen: %d failure(s)\n", failures); return 1; }
    fprintf(stderr, "test_datagen: ok\n");
    return 0;
}
