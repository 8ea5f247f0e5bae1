/* worker/predio.c — see predio.h. */
#include "predio.h"

#include <errno.h>
#include <string.h>

#include "fn_error.h"

FILE *predio_open(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) { fn_fail(FN_EIO, "%s: cannot write: %s", path, strerror(errno)); return NULL; }
    static char buf[1 << 20];
    setvbuf(f, buf, _IOFBF, sizeof buf);
    fputs("sample_id,pctr,pcvr,pctcvr\n", f);
    return f;
}

void predio_row(FILE *f, uint64_t id, const float *const p[3], size_t i)
{
    fprintf(f, "%llu", (unsigned long long)id);
    for (int k = 0; k < 3; k++) {
        if (p[k]) fprintf(f, ",%.9g", (double)p[k][i]);
        else fputc(',', f);
    }
    fputc('\n', f);
}

int predio_close(FILE *f, const char *path)
{
    int bad = ferror(f);
    if (fclose(f) || bad) return fn_fail(FN_EIO, "%s: write failed: %s", path, strerror(errno));
    return FN_OK;
}

int predio_write(const char *path, const uint64_t *ids, const float *const p[3], size_t n)
{
    FILE *f = predio_open(path);
    if (!f) return FN_EIO;
    for (size_t i = 0; i < n; i++) predio_row(f, ids[i], p, i);
    return predio_close(f, path);
}
