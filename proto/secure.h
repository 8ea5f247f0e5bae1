/* proto/secure.h — authenticated, encrypted parameter traffic (ZeroMQ CURVE).
 *
 * A job makes its keys at start-up (rank 0: one keypair for the servers,
 * one for the workers) and hands them to every process over MPI, so no key
 * ever sits in a file or on a command line.  Servers run CURVE as server
 * and a ZAP handler that admits only the job's worker key: a stranger
 * without the keys cannot complete a handshake, and one with a wrong key is
 * refused by the handler (and counted), before any message is read. */
#ifndef FN_SECURE_H
#define FN_SECURE_H

#include <stdint.h>

typedef struct {
    int enabled;
    char server_public[41], server_secret[41]; /* Z85, NUL-terminated */
    char client_public[41], client_secret[41];
} secure_keys;

/* Fresh keys (FN_OK), or FN_EZMQ if this libzmq lacks CURVE. */
int secure_make_keys(secure_keys *k);

/* Socket options of each side; call before bind / connect. */
int secure_server_socket(void *sock, const secure_keys *k);
int secure_client_socket(void *sock, const secure_keys *k);

/* The ZAP handler of a context: admits the job's client key only.  Start it
 * before binding any CURVE server socket in ctx; it ends when ctx is
 * terminated. */
typedef struct secure_zap secure_zap;
int secure_zap_start(secure_zap **out, void *ctx, const secure_keys *k);
/* Handshakes refused so far. */
uint64_t secure_zap_denied(const secure_zap *z);
/* Joins the handler thread; call after zmq_ctx_term(ctx) has begun or
 * from another thread while it runs (it returns once ctx is terminated). */
void secure_zap_join(secure_zap **z);

#endif
