/* proto/secure.c — see secure.h. */
#include "secure.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "fn_error.h"
#include "log.h"

int secure_make_keys(secure_keys *k)
{
    memset(k, 0, sizeof *k);
    if (!zmq_has("curve")) return fn_fail(FN_EZMQ, "this libzmq has no CURVE support (run with --insecure)");
    if (zmq_curve_keypair(k->server_public, k->server_secret) || zmq_curve_keypair(k->client_public, k->client_secret))
        return fn_fail(FN_EZMQ, "cannot make CURVE keys: %s", zmq_strerror(zmq_errno()));
    k->enabled = 1;
    return FN_OK;
}

int secure_server_socket(void *sock, const secure_keys *k)
{
    if (!k->enabled) return FN_OK;
    int one = 1;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, k->server_secret, 40) ||
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "funnel", 6))
        return fn_fail(FN_EZMQ, "cannot set CURVE server options: %s", zmq_strerror(zmq_errno()));
    return FN_OK;
}

int secure_client_socket(void *sock, const secure_keys *k)
{
    if (!k->enabled) return FN_OK;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, k->server_public, 40) ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, k->client_public, 40) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, k->client_secret, 40))
        return fn_fail(FN_EZMQ, "cannot set CURVE client options: %s", zmq_strerror(zmq_errno()));
    return FN_OK;
}

struct secure_zap {
    void *sock;
    pthread_t thread;
    uint8_t allowed[32];  /* the job's client public key, binary */
    _Atomic uint64_t denied;
};

/* ZAP (RFC 27): request frames version, request id, domain, address,
 * identity, mechanism, credentials...; reply version, request id, status
 * code, status text, user id, metadata. */
static void *zap_loop(void *arg)
{
    secure_zap *z = arg;
    for (;;) {
        zmq_msg_t part[8];
        int n = 0, more = 1, dead = 0;
        while (more) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, z->sock, 0) < 0) {
                zmq_msg_close(&m);
                if (zmq_errno() == EINTR) continue;
                dead = 1; /* ETERM: the context is ending */
                break;
            }
            more = zmq_msg_more(&m);
            if (n < 8) part[n++] = m;
            else zmq_msg_close(&m);
        }
        if (dead) {
            for (int i = 0; i < n; i++) zmq_msg_close(&part[i]);
            break;
        }
        int ok = n >= 7 && zmq_msg_size(&part[5]) == 5 && !memcmp(zmq_msg_data(&part[5]), "CURVE", 5) &&
                 zmq_msg_size(&part[6]) == 32 && !memcmp(zmq_msg_data(&part[6]), z->allowed, 32);
        if (!ok) {
            uint64_t d = atomic_fetch_add(&z->denied, 1) + 1;
            if (d <= 5) log_warn("refused a connection from a process that is not part of this job (key not the job's)");
        }
        const char *code = ok ? "200" : "400", *text = ok ? "OK" : "not a member of this job";
        zmq_send(z->sock, "1.0", 3, ZMQ_SNDMORE);
        if (n >= 2) zmq_send(z->sock, zmq_msg_data(&part[1]), zmq_msg_size(&part[1]), ZMQ_SNDMORE);
        else zmq_send(z->sock, "", 0, ZMQ_SNDMORE);
        zmq_send(z->sock, code, 3, ZMQ_SNDMORE);
        zmq_send(z->sock, text, strlen(text), ZMQ_SNDMORE);
        zmq_send(z->sock, ok ? "worker" : "", ok ? 6 : 0, ZMQ_SNDMORE);
        zmq_send(z->sock, "", 0, 0);
        for (int i = 0; i < n; i++) zmq_msg_close(&part[i]);
    }
    zmq_close(z->sock);
    return NULL;
}

int secure_zap_start(secure_zap **out, void *ctx, const secure_keys *k)
{
    *out = NULL;
    if (!k->enabled) return FN_OK;
    secure_zap *z = calloc(1, sizeof *z);
    if (!z) return FN_ENOMEM;
    if (!zmq_z85_decode(z->allowed, k->client_public)) { free(z); return fn_fail(FN_EINVAL, "bad client key"); }
    z->sock = zmq_socket(ctx, ZMQ_REP);
    int zero = 0;
    if (z->sock) zmq_setsockopt(z->sock, ZMQ_LINGER, &zero, sizeof zero);
    if (!z->sock || zmq_bind(z->sock, "inproc://zeromq.zap.01")) {
        int rc = fn_fail(FN_EZMQ, "cannot start the ZAP handler: %s", zmq_strerror(zmq_errno()));
        if (z->sock) zmq_close(z->sock);
        free(z);
        return rc;
    }
    if (pthread_create(&z->thread, NULL, zap_loop, z)) {
        zmq_close(z->sock);
        free(z);
        return fn_fail(FN_ENOMEM, "cannot start the ZAP thread");
    }
    *out = z;
    return FN_OK;
}

uint64_t secure_zap_denied(const secure_zap *z) { return z ? atomic_load(&((secure_zap *)z)->denied) : 0; }

void secure_zap_join(secure_zap **zp)
{
    secure_zap *z = *zp;
    if (!z) return;
    pthread_join(z->thread, NULL);
    free(z);
    *zp = NULL;
}
