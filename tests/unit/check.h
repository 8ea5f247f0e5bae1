/* tests/unit/check.h — what every unit test shares: CHECK, which counts a
 * failure and prints where (the first 40), and a temporary directory that
 * is emptied and removed at the end even when checks fail. */
#ifndef FN_TEST_CHECK_H
#define FN_TEST_CHECK_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            if (failures++ < 40) {                                         \
                printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);     \
                printf(__VA_ARGS__);                                       \
                printf("\n");                                              \
            }                                                              \
        }                                                                  \
    } while (0)

/* the test's temporary directory, made by mkdtemp from "/tmp/NAME.XXXXXX" */
static char dir[64];

/* Removes every file in dir, then dir; returns how many files were left. */
static inline int remove_dir(void)
{
    int left = 0;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
        left++;
    }
    if (d) closedir(d);
    if (rmdir(dir)) printf("FAIL cannot remove %s\n", dir);
    return left;
}

#endif
