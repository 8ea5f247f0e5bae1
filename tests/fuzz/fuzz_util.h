/* tests/fuzz/fuzz_util.h — what the file-reading fuzz targets share: a
 * failed-property macro that aborts (so libFuzzer keeps the input), a
 * per-process scratch directory, and writing bytes to a file in it.
 *
 * Header-only (static functions): the CMake glob builds every fuzz_*.c as
 * its own executable, and this file is none of them. */
#ifndef FN_FUZZ_UTIL_H
#define FN_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* A failed property is a bug in the code under test: report and abort so
 * libFuzzer keeps the input. */
#define REQUIRE(cond, ...)                                                              \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "%s:%d: property failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                               \
            fputc('\n', stderr);                                                        \
            abort();                                                                    \
        }                                                                               \
    } while (0)

static char fuzz_dir[64] __attribute__((unused));

static inline void fuzz_dir_remove(void)
{
    static const char *const names[] = {"a", "b", "c", "d", NULL};
    char p[96];
    for (int i = 0; names[i]; i++) {
        snprintf(p, sizeof p, "%s/%s", fuzz_dir, names[i]);
        unlink(p);
    }
    rmdir(fuzz_dir);
}

/* Once per process: a private directory under $TMPDIR (or /dev/shm, where
 * the fsync of an atomic write costs nothing, or /tmp), removed at exit;
 * quiets the warnings the code under test logs for bad input unless
 * FUZZ_VERBOSE is set. */
static inline void fuzz_setup(const char *name)
{
    if (fuzz_dir[0]) return;
    const char *t = getenv("TMPDIR");
    if (!t || !*t) t = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(fuzz_dir, sizeof fuzz_dir, "%.30s/%s.XXXXXX", t, name);
    REQUIRE(mkdtemp(fuzz_dir), "cannot create %s", fuzz_dir);
    atexit(fuzz_dir_remove);
    if (!getenv("FUZZ_VERBOSE")) log_set_level(LOG_ERROR + 1);
}

/* Writes n bytes to fuzz_dir/<name> ("a".."d") and returns the path (a
 * static buffer per name). */
static inline const char *fuzz_file(const char *name, const void *data, size_t n)
{
    static char paths[4][96];
    char *p = paths[(name[0] - 'a') & 3];
    snprintf(p, 96, "%s/%s", fuzz_dir, name);
    FILE *f = fopen(p, "wb");
    REQUIRE(f, "cannot create %s", p);
    REQUIRE(fwrite(data, 1, n, f) == n && fclose(f) == 0, "cannot write %s", p);
    return p;
}

#endif
