/* tests/unit/test_mkdirs.c — common/mkdirs.c: `mkdir -p` as train, datagen
 * and convert use it for --out. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fn_error.h"
#include "mkdirs.h"

#include "check.h"

static int is_dir(const char *p)
{
    struct stat st;
    return !stat(p, &st) && S_ISDIR(st.st_mode);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/test_mkdirs.XXXXXX");
    if (!mkdtemp(dir)) { printf("FAIL mkdtemp\n"); return 1; }
    char a[128], ab[128], abc[128], file[128], under[128];
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(ab, sizeof ab, "%s/a/b", dir);
    snprintf(abc, sizeof abc, "%s/a/b/c", dir);

    int rc = fn_mkdirs(abc);
    CHECK(rc == FN_OK && is_dir(abc), "nested: rc %d '%s'", rc, fn_err_msg());
    rc = fn_mkdirs(abc);
    CHECK(rc == FN_OK, "existing: rc %d '%s'", rc, fn_err_msg());
    char slash[140];
    snprintf(slash, sizeof slash, "%s/", ab);
    rc = fn_mkdirs(slash);
    CHECK(rc == FN_OK, "trailing slash: rc %d '%s'", rc, fn_err_msg());

    /* a file in the way: named, with the reason */
    snprintf(file, sizeof file, "%s/f", dir);
    FILE *f = fopen(file, "w");
    if (f) fclose(f);
    rc = fn_mkdirs(file);
    CHECK(rc == FN_EIO && strstr(fn_err_msg(), file) && strstr(fn_err_msg(), "not a directory"), "file: rc %d '%s'", rc, fn_err_msg());
    snprintf(under, sizeof under, "%s/f/x/y", dir);
    rc = fn_mkdirs(under);
    char want[160];
    snprintf(want, sizeof want, "cannot create directory %s/f/x: %s", dir, strerror(ENOTDIR));
    CHECK(rc == FN_EIO && strstr(fn_err_msg(), want), "under a file: rc %d '%s', want '%s'", rc, fn_err_msg(), want);
    CHECK(fn_mkdirs("") == FN_EINVAL, "empty path");

    CHECK(!rmdir(abc) && !rmdir(ab) && !rmdir(a), "cannot remove the made directories");
    CHECK(remove_dir() == 1, "want only the file f left in %s", dir); /* removes f */
    if (failures) { printf("test_mkdirs: %d failures\n", failures); return 1; }
    printf("test_mkdirs: ok\n");
    return 0;
}
