/* common/fn_error.c — see fn_error.h. */
#include "fn_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char err_buf[512];

const char *fn_strerror(int code)
{
#define FN_ERR_TEXT(name, text) case name: return text;
    switch (code) { FN_ERRORS(FN_ERR_TEXT) default: return "unknown error"; }
#undef FN_ERR_TEXT
}

int fn_fail(int code, const char *fmt, ...)
{
    /* format into a copy first: callers may pass fn_err_msg() as an argument
     * to wrap the previous reason with more context */
    char tmp[sizeof err_buf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    /* then copy it with control characters escaped (\x0a): a message quotes
     * bytes of files and flags, and must stay one line whatever they hold */
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)tmp; *p; p++) {
        if (*p >= 0x20 && *p != 0x7f) {
            if (o + 1 >= sizeof err_buf) break;
            err_buf[o++] = (char)*p;
        } else {
            if (o + 4 >= sizeof err_buf) break;
            snprintf(err_buf + o, 5, "\\x%02x", *p);
            o += 4;
        }
    }
    err_buf[o] = 0;
    return code;
}

const char *fn_err_msg(void) { return err_buf; }
