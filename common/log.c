/* common/log.c — see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char log_role[64] = "funnel";
static int log_level = LOG_INFO;

void log_set_role(const char *role) { snprintf(log_role, sizeof log_role, "%s", role); }
void log_set_level(int level) { log_level = level; }

void log_msg(int level, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warning", "error"};
    if (level < log_level) return;
    char line[1024];
    int n = snprintf(line, sizeof line, "[%s] %s%s", log_role,
                     level >= LOG_WARN ? names[level] : "", level >= LOG_WARN ? ": " : "");
    if (n < 0) return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    if (m < 0) return;
    size_t len = strlen(line);
    if (len >= sizeof line - 1) len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(2, line, len);
    (void)w;
}
