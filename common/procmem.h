/* common/procmem.h — this process's resident memory, from /proc/self/status.
 *
 * What a server reports as rss/peak_rss in its statistics, and what the
 * soak and benchmark tools watch.  Linux only (like the rest of funnel). */
#ifndef FN_PROCMEM_H
#define FN_PROCMEM_H

#include <stdint.h>

/* *rss = VmRSS, *peak = VmHWM (the high-water mark), in bytes; either may
 * be NULL.  Returns 0, or -1 (values 0) if /proc cannot be read. */
int fn_proc_memory(uint64_t *rss, uint64_t *peak);

#endif
