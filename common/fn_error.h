/* common/fn_error.h — error codes as values, and the detail that goes with them.
 *
 * Every function that can fail because of something outside our own code
 * (a file, a socket, a flag, a peer) returns one of these codes (0 = ok) and
 * leaves a one-line human message, naming the file, line, field or rank,
 * in a thread-local buffer read by fn_err_msg().  abort()/assert are for
 * bugs in our own code only. */
#ifndef FN_ERROR_H
#define FN_ERROR_H

#define FN_ERRORS(X)                                            \
    X(FN_OK,         "ok")                                      \
    X(FN_EINVAL,     "invalid argument")                        \
    X(FN_ENOMEM,     "out of memory")                           \
    X(FN_EIO,        "input/output error")                      \
    X(FN_EPARSE,     "malformed input")                         \
    X(FN_EBADMSG,    "malformed message")                       \
    X(FN_EMAGIC,     "bad magic number")                        \
    X(FN_EVERSION,   "unsupported format version")              \
    X(FN_ECHECKSUM,  "checksum mismatch")                       \
    X(FN_ETOOBIG,    "size over limit")                         \
    X(FN_EPEERLOST,  "peer stopped answering")                  \
    X(FN_ENOTFOUND,  "not found")                               \
    X(FN_EMPI,       "MPI error")                               \
    X(FN_EZMQ,       "ZeroMQ error")                            \
    X(FN_EUSAGE,     "bad command line")

#define FN_ERR_ENUM(name, text) name,
typedef enum { FN_ERRORS(FN_ERR_ENUM) FN_ERR_COUNT } fn_err;
#undef FN_ERR_ENUM

/* The fixed text of a code ("checksum mismatch"). */
const char *fn_strerror(int code);

/* Sets the detail message for the current thread and returns code, so that
 * `return fn_fail(FN_EPARSE, "%s:%lu: bad click", path, line);` reads well.
 * Control characters in the result are escaped (\x0a), so the message is
 * one line whatever bytes of a file or flag it quotes. */
int fn_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The detail message of the last fn_fail on this thread ("" if none). */
const char *fn_err_msg(void);

#endif
