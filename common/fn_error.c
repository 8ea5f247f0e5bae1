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
    memcpy(err_buf, tmp, sizeof err_buf);
    return code;
}

const char *fn_err_msg(void) { return err_buf; }
