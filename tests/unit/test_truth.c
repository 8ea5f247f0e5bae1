/* tests/unit/test_truth.c — common/truth.c: loading a truth file, all of it
 * or nothing, and every failure named PATH:LINE with a reason (what
 * worker/train.c puts in its warning about a sidecar, or its error about an
 * explicit --test-truth); and truth_beside, which finds a file by its name
 * only and so must hand over garbage too, for truth_load to judge. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fn_error.h"
#include "truth.h"

#include "check.h"

static void write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) { printf("FAIL cannot create %s\n", path); exit(1); }
    fwrite(text, 1, len, f);
    fclose(f);
}

static void test_good(void)
{
    char p[128];
    snprintf(p, sizeof p, "%s/truth_good.csv", dir);
    static const char text[] = "sample_id,pctr,pcvr,conv\r\n7,0.25,0.5,1\r\n9,0,1,0\n18446744073709551615,1,0.125,0"; /* CRLF, no final EOL */
    write_file(p, text, sizeof text - 1);
    fn_truth t;
    int rc = truth_load(&t, p);
    CHECK(rc == FN_OK, "good: rc %d '%s'", rc, fn_err_msg());
    if (rc) return;
    CHECK(t.n == 3, "good: %zu rows, want 3", t.n);
    long j = truth_find(&t, 7);
    CHECK(j >= 0 && t.pctr[j] == 0.25f && t.pcvr[j] == 0.5f && t.conv[j] == 1, "good: row of 7");
    j = truth_find(&t, UINT64_MAX);
    CHECK(j >= 0 && t.pctr[j] == 1 && t.pcvr[j] == 0.125f && t.conv[j] == 0, "good: row of 2^64-1");
    CHECK(truth_find(&t, 8) == -1, "good: 8 has no row");
    truth_free(&t);
    CHECK(t.n == 0 && t.id == NULL, "truth_free must clear");
    unlink(p);
}

/* Each text must fail with FN_EPARSE and "PATH:LINE:" and the reason. */
static void test_bad(void)
{
    static const struct { const char *text; size_t len; int line; const char *why; } B[] = {
#define T(s) s, sizeof s - 1
        {T(""), 1, "empty file"},
        {T("id,label\n1,0\n"), 1, "header is 'id,label'"},                           /* another tool's file */
        {T("sample_id,pctr,pcvr,conv,extra\n1,0.5,0.5,1,x\n"), 1, "header is"},        /* wrong columns */
        {T("sample_id,pctr,pcvr\n1,0.5,0.5\n"), 1, "header is"},
        {T("\xef\xbb\xbfsample_id,pctr,pcvr,conv\n"), 1, "header is"},               /* a BOM */
        {T("sample_id,pctr,pcvr,conv\n1,0.5,0.5,1\n2,0.5,0.5\n"), 3, "want sample_id,pctr,pcvr,conv"},
        {T("sample_id,pctr,pcvr,conv\n1,0.5,0.5,1\n2,0.5,0.5,1,9\n"), 3, "'2,0.5,0.5,1,9'"},
        {T("sample_id,pctr,pcvr,conv\n1,1.5,0.5,1\n"), 2, "probabilities in [0,1]"},
        {T("sample_id,pctr,pcvr,conv\n1,0.5,nan,1\n"), 2, "probabilities in [0,1]"},
        {T("sample_id,pctr,pcvr,conv\n1,0.5,0.5,0.5\n"), 2, "conv 0/1"},
        {T("sample_id,pctr,pcvr,conv\n-1,0.5,0.5,1\n"), 2, "want sample_id"},
        {T("sample_id,pctr,pcvr,conv\nx,0.5,0.5,1\n"), 2, "want sample_id"},
        {T("sample_id,pctr,pcvr,conv\n\n"), 2, "want sample_id"},
        {T("sample_id,pctr,pcvr,conv\n1,0.5,0.5,1\0junk\n"), 2, "want sample_id"},   /* a NUL inside the line */
        {T("sample_id,pctr,pcvr,conv\n5,0.5,0.5,1\n6,0.1,0.1,0\n5,0.5,0.5,1\n"), 4, "sample id 5 repeated"},
#undef T
    };
    char p[128], want[256];
    snprintf(p, sizeof p, "%s/truth_bad.csv", dir);
    for (size_t k = 0; k < sizeof B / sizeof *B; k++) {
        write_file(p, B[k].text, B[k].len);
        fn_truth t;
        memset(&t, 0xa5, sizeof t);
        int rc = truth_load(&t, p);
        snprintf(want, sizeof want, "%s:%d: ", p, B[k].line);
        CHECK(rc == FN_EPARSE, "bad %zu: rc %d, want FN_EPARSE", k, rc);
        CHECK(strstr(fn_err_msg(), want) == fn_err_msg(), "bad %zu: '%s' does not start with '%s'", k, fn_err_msg(), want);
        CHECK(strstr(fn_err_msg(), B[k].why) != NULL, "bad %zu: '%s' lacks '%s'", k, fn_err_msg(), B[k].why);
        CHECK(t.n == 0 && t.id == NULL, "bad %zu: a failed load must leave nothing", k);
    }
    unlink(p);

    /* a missing file names itself */
    fn_truth t;
    snprintf(p, sizeof p, "%s/absent.csv", dir);
    int rc = truth_load(&t, p);
    CHECK(rc == FN_EIO && strstr(fn_err_msg(), p), "missing: rc %d '%s'", rc, fn_err_msg());
    /* a directory of that name */
    snprintf(p, sizeof p, "%s/truth_dir.csv", dir);
    CHECK(mkdir(p, 0700) == 0, "mkdir %s", p);
    rc = truth_load(&t, p);
    CHECK(rc != FN_OK && strstr(fn_err_msg(), p), "directory: rc %d '%s'", rc, fn_err_msg());
    rmdir(p);
}

static void test_beside(void)
{
    char skel[128], truth[128], buf[256];
    snprintf(skel, sizeof skel, "%s/sample_skeleton_test.csv", dir);
    snprintf(truth, sizeof truth, "%s/truth_test.csv", dir);
    CHECK(truth_beside(skel, buf, sizeof buf) == NULL, "no truth file yet: found one");
    write_file(truth, "not a truth file\n", 17); /* found all the same: the name is all it looks at */
    const char *got = truth_beside(skel, buf, sizeof buf);
    CHECK(got == buf && !strcmp(buf, truth), "beside: got '%s', want '%s'", got ? got : "(null)", truth);
    CHECK(truth_beside(skel, buf, 10) == NULL, "a buffer too small must give NULL");
    snprintf(skel, sizeof skel, "%s/other_test.csv", dir);
    CHECK(truth_beside(skel, buf, sizeof buf) == NULL, "a file not named sample_skeleton_X has no truth beside it");
    CHECK(truth_beside("sample_skeleton_zz.csv", buf, sizeof buf) == NULL, "no truth_zz.csv in the current directory");
    unlink(truth);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/test_truth.XXXXXX");
    if (!mkdtemp(dir)) { printf("FAIL mkdtemp\n"); return 1; }
    test_good();
    test_bad();
    test_beside();
    CHECK(remove_dir() == 0, "files left in %s", dir);
    if (failures) { printf("test_truth: %d failures\n", failures); return 1; }
    printf("test_truth: ok\n");
    return 0;
}
