/* common/procmem.c — see procmem.h. */
#include "procmem.h"

#include <stdio.h>
#include <string.h>

int fn_proc_memory(uint64_t *rss, uint64_t *peak)
{
    uint64_t r = 0, p = 0;
    int found = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        char line[256];
        unsigned long long kb;
        while (fgets(line, sizeof line, f)) {
            if (sscanf(line, "VmRSS: %llu kB", &kb) == 1) { r = kb * 1024; found |= 1; }
            else if (sscanf(line, "VmHWM: %llu kB", &kb) == 1) { p = kb * 1024; found |= 2; }
        }
        fclose(f);
    }
    if (rss) *rss = r;
    if (peak) *peak = p;
    return found == 3 ? 0 : -1;
}
