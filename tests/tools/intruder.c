/* tests/tools/intruder.c — a ZeroMQ client that is not part of the job.
 *
 *   intruder ENDPOINT MODE SECONDS
 *     MODE plain: no CURVE at all;  wrongkey: CURVE with keys of its own
 *     (a made-up server key and client keypair)
 *
 * For SECONDS it keeps sending well-formed pulls and pushes (large
 * gradients on keys a job would use) to the server and counts replies.
 * Prints "replies N" and exits 0 if it got none, 1 if the server answered. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "wire.h"

int main(int argc, char **argv)
{
    if (argc != 4) { fprintf(stderr, "usage: intruder ENDPOINT plain|wrongkey SECONDS\n"); return 2; }
    void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if (!strcmp(argv[2], "wrongkey")) {
        char pub[41], sec[41], spub[41], ssec[41];
        zmq_curve_keypair(pub, sec);
        zmq_curve_keypair(spub, ssec);
        zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, spub, 40);
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 40);
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40);
    }
    if (zmq_connect(s, argv[1])) { fprintf(stderr, "connect: %s\n", zmq_strerror(zmq_errno())); return 2; }
    wire_codec *c = wire_codec_new();
    uint64_t keys[256];
    float vals[256 * 16];
    for (int i = 0; i < 256; i++) keys[i] = (uint64_t)i * 0x9E3779B97F4A7C15ull / 256 * 256 + (uint64_t)i;
    for (int i = 1; i < 256; i++) if (keys[i] <= keys[i - 1]) keys[i] = keys[i - 1] + 1;
    for (int i = 0; i < 256 * 16; i++) vals[i] = 1000.0f;
    long replies = 0, sent = 0;
    time_t end = time(NULL) + atoi(argv[3]);
    for (uint64_t seq = 1; time(NULL) < end; seq++) {
        wire_msg m = {.type = seq % 2 ? WIRE_PULL_REQ : WIRE_PUSH_REQ, .seq = seq, .table = 0, .dim = 16, .n = 256, .keys = keys,
                      .values = seq % 2 ? NULL : vals};
        const uint8_t *buf;
        size_t len;
        if (wire_encode(c, &m, 0, &buf, &len)) return 2;
        if (zmq_send(s, buf, len, ZMQ_DONTWAIT) >= 0) sent++;
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 100) > 0) {
            char r[65536];
            if (zmq_recv(s, r, sizeof r, ZMQ_DONTWAIT) >= 0) replies++;
        }
    }
    printf("sent %ld replies %ld\n", sent, replies);
    wire_codec_destroy(&c);
    zmq_close(s);
    zmq_ctx_term(ctx);
    return replies ? 1 : 0;
}
