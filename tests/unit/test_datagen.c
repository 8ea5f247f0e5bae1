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

/* Parses `features` (up to end) with declared count; checks every item;
 * counts items of field 109_14 into *n_cat.  Returns 0 if all fine. */
static int check_features(char *s, long count, int user_side, int *n_cat)
{
    long items = 0;
    int bad = 0;
    *n_cat = 0;
    while (*s) {
        char *next = strchr(s, '\x01');
        if (next) *next = 0;
        char *a = strchr(s, '\x02'), *b = a ? strchr(a + 1, '\x03') : NULL;
        if (!a || !b) { bad = 1; break; }
        *a = 0;
        int f = -1;
        for (int i = 0; i < N_FIELDS; i++) if (!strcmp(s, fields[i])) f = i;
        if (f < 0 || (f < N_USER_FIELDS) != user_side) { bad = 2; break; }
        if (f == 9) (*n_cat)++;
        char *end;
        if (a[1] < '0' || a[1] > '9') { bad = 3; break; }
        unsigned long long id = strtoull(a + 1, &end, 10);
        if (end != b) { bad = 3; break; }
        note_id(id, f);
        double v = strtod(b + 1, &end);
        if (*end || !(v > 0) || end == b + 1) { bad = 4; break; }
        if (f < 9 || (f >= N_USER_FIELDS && f < 19)) { if (v != 1.0) { bad = 5; break; } }
        items++;
        if (!next) break;
        s = next + 1;
    }
    if (!bad && items != count) bad = 6;
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

/* Checks one split of directory dir; first_id is its first sample id. */
static void check_split(const char *dir, const char *split, long n_expect, long first_id)
{
    char path[512];
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;

    /* common file: md5 set */
    snprintf(path, sizeof path, "%s/common_features_%s.csv", dir, split);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "cannot open %s", path);
    if (!f) return;
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
        int n_cat;
        int why = end == c2 ? check_features(c2 + 1, count, 1, &n_cat) : 7;
        if (!why && (n_cat < 3 || n_cat > 10)) why = 8;
        if (why) {
            if (bad_lines < 3) fprintf(stderr, "%s:%ld: bad common line (%d)\n", path, lineno, why);
            bad_lines++;
            continue;
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
        int click = -1, buy = -1, n_cat, why = 0;
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
        else why = check_features(col[5], count, 0, &n_cat) ? 6 : 0;
        if (why) {
            if (bad_lines < 3) fprintf(stderr, "%s:%ld: bad skeleton line (%d)\n", path, lineno, why);
            bad_lines++;
            continue;
        }
        missing_md5 += !bsearch(&col[3], md5, n_md5, sizeof *md5, cmp_str);

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

    if (n == n_expect && n > 0 && clicks > 0) {
        double ctr_rate = (double)clicks / n, cvr_clk = (double)buys / clicks;
        /* labels drawn from the truth: 5 binomial sigmas */
        CHECK(fabs(clicks - sum_pctr) <= 5 * sqrt(var_click), "%s: clicks %ld vs Σ pctr %.1f", split, clicks, sum_pctr);
        CHECK(fabs(convs - sum_pcvr) <= 5 * sqrt(var_conv), "%s: conversions %ld vs Σ pcvr %.1f", split, convs, sum_pcvr);
        CHECK(fabs(buys - sum_pcvr_clk) <= 5 * sqrt(var_buy) + 1, "%s: buys %ld vs Σ pcvr over clicks %.1f", split,
              buys, sum_pcvr_clk);
        /* calibration: the pilot fixes the truth's means to ~1% (heavy users
         * make the split's own mean wander a little more) */
        CHECK(fabs(sum_pctr / n - 0.04) < 0.004, "%s: mean true pctr %.5f, target 0.04", split, sum_pctr / n);
        CHECK(fabs(sum_pctcvr / sum_pctr - 0.05) < 0.005, "%s: pctr-weighted pcvr %.5f, target 0.05", split,
              sum_pctcvr / sum_pctr);
        CHECK(fabs(ctr_rate - 0.04) < 0.004 + 5 * sqrt(0.04 * 0.96 / n), "%s: CTR %.5f, target 0.04", split, ctr_rate);
        CHECK(fabs(cvr_clk - 0.05) < 0.005 + 5 * sqrt(0.05 * 0.95 / clicks), "%s: CVR among clicks %.5f, target 0.05",
              split, cvr_clk);
        /* selection bias: the clicked impressions convert more than all */
        CHECK(sum_pcvr_clk / clicks > 1.1 * sum_pcvr / n, "%s: mean pcvr clicked %.5f vs all %.5f", split,
              sum_pcvr_clk / clicks, sum_pcvr / n);
        double a_ctr = auc(ctr, (size_t)n), a_cvr = auc(cvr, (size_t)n_clicked);
        CHECK(a_ctr > 0.68 && a_ctr < 0.82, "%s: AUC of true pctr vs clicks %.4f", split, a_ctr);
        CHECK(a_cvr > 0.62, "%s: AUC of true pcvr vs buys among clicks %.4f", split, a_cvr);
        fprintf(stderr, "%s: CTR %.5f, CVR|click %.5f, CVR entire %.5f, AUC pctr %.4f, AUC pcvr|click %.4f\n", split,
                ctr_rate, cvr_clk, (double)convs / n, a_ctr, a_cvr);
    }
    free(ctr);
    free(cvr);
    free(tline);
done:
    if (fs) fclose(fs);
    if (ft) fclose(ft);
    for (size_t i = 0; i < n_md5; i++) free(md5[i]);
    free(md5);
    free(line);
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
    check_split(a, "train", N_TRAIN, 1);
    check_split(a, "test", N_TEST, 1 + N_TRAIN);
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
        {"--seed", "-1"}, {"--pilot", "10"}, {"--bogus", "1"},
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
    rmdir(root);
    free(id_field);
    if (failures) { fprintf(stderr, "test_datagen: %d failure(s)\n", failures); return 1; }
    fprintf(stderr, "test_datagen: ok\n");
    return 0;
}
