/* common/mkdirs.c — see mkdirs.h. */
#include "mkdirs.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fn_error.h"

int fn_mkdirs(const char *path)
{
    char b[PATH_MAX];
    if (!*path) return fn_fail(FN_EINVAL, "empty directory path");
    if (snprintf(b, sizeof b, "%s", path) >= (int)sizeof b) return fn_fail(FN_EINVAL, "%.64s...: path too long", path);
    /* each prefix ending before a '/', then the whole path; "/" itself is
     * never made (b + 1) */
    for (char *s = b + 1;; s++) {
        if (*s == '/' || !*s) {
            char c = *s;
            *s = 0;
            if (mkdir(b, 0777) && errno != EEXIST) return fn_fail(FN_EIO, "cannot create directory %s: %s", b, strerror(errno));
            *s = c;
            if (!c) break;
        }
    }
    struct stat st;
    if (stat(path, &st)) return fn_fail(FN_EIO, "%s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return fn_fail(FN_EIO, "%s exists and is not a directory", path);
    return FN_OK;
}
