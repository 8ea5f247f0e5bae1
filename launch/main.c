/* launch/main.c — the `funnel` command: dispatches to a subcommand.
 *
 *   funnel train    under mpirun: ranks 0..S-1 serve the embedding tables
 *                   (ps/), ranks S.. train (worker/)
 *   funnel predict  one process, no MPI job
 *   funnel datagen  synthetic Ali-CCP-format worlds
 *   funnel convert  Ali-CCP text to the binary format (common/convert.c)
 *
 * This file is the only place that knows both roles: it starts MPI, splits
 * the ranks, has the servers bind and hands their endpoints to the workers
 * (MPI_Allgather), and records the cluster in RUN_DIR/cluster.json. */
#include <errno.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "config.h"
#include "convert.h"
#include "datagen.h"
#include "flags.h"
#include "fn_error.h"
#include "log.h"
#include "mkdirs.h"
#include "optimizer.h"
#include "secure.h"
#include "server.h"
#include "train.h"

#define ENDPOINT_BYTES 256

static void usage(FILE *f)
{
    fprintf(f,
            "usage: funnel COMMAND [options]\n"
            "\n"
            "commands:\n"
            "  train     distributed training (run under mpirun: -np SERVERS+WORKERS)\n"
            "  predict   score a file with an exported model (no MPI)\n"
            "  datagen   write a synthetic Ali-CCP-format world with known truth\n"
            "  convert   write a compact binary copy of an Ali-CCP data set (--format bin)\n"
            "\n"
            "`funnel COMMAND --help` describes each command's options.\n");
}

static ps_opt server_opt(const train_conf *c)
{
    ps_opt o = ps_opt_default((ps_opt_kind)ps_opt_kind_parse(c->emb_opt));
    o.lr = (float)c->emb_lr;
    if (c->emb_eps >= 0) o.eps = (float)c->emb_eps;
    o.init_acc = (float)c->emb_init_acc;
    o.beta1 = (float)c->emb_beta1;
    o.beta2 = (float)c->emb_beta2;
    o.l1 = (float)c->emb_l1;
    o.l2 = (float)c->emb_l2;
    return o;
}

static int write_cluster_json(const char *out, int n_servers, const char *endpoints, const char *hosts)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/cluster.json", out);
    FILE *f = fopen(path, "w");
    if (!f) return fn_fail(FN_EIO, "%s: cannot write: %s", path, strerror(errno));
    fprintf(f, "{\"servers\":[\n");
    for (int s = 0; s < n_servers; s++)
        fprintf(f, "  {\"rank\":%d,\"host\":\"%s\",\"endpoint\":\"%s\"}%s\n", s, hosts + (size_t)s * MPI_MAX_PROCESSOR_NAME,
                endpoints + (size_t)s * ENDPOINT_BYTES, s + 1 < n_servers ? "," : "");
    fprintf(f, "]}\n");
    return fclose(f) ? fn_fail(FN_EIO, "%s: write failed", path) : FN_OK;
}

/* --server-threads, or by default the cores of this host shared among the
 * job's processes on it (a server alone on a 32-core host serves with 16
 * threads; on a 2-core laptop running a server and a worker, with 1). */
static int server_threads(const train_conf *c, const char *hosts, int size, const char *me)
{
    if (c->server_threads > 0) return (int)c->server_threads;
    long cores = sysconf(_SC_NPROCESSORS_ONLN), here = 0;
    for (int r = 0; r < size; r++) here += !strcmp(hosts + (size_t)r * MPI_MAX_PROCESSOR_NAME, me);
    long t = cores / (here > 0 ? here : 1);
    int n = (int)(t < 1 ? 1 : t > PS_MAX_THREADS ? PS_MAX_THREADS : t);
    log_info("%d thread(s) serving the tables' stripes (--server-threads; %ld cores, %ld processes of the job on this host)", n, cores, here);
    return n;
}

static int train_main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    train_conf c;
    int rc = config_parse_train(&c, argc, argv);
    if (rc == FLAGS_HELP) { MPI_Finalize(); return 0; }
    if (rc) {
        if (rank == 0) fprintf(stderr, "funnel train: %s\n", fn_err_msg());
        MPI_Finalize();
        return 2;
    }
    int S = (int)c.servers, W = size - S;
    if (c.checkpoint_every) {
        char hint[2048];
        int at = snprintf(hint, sizeof hint, "mpirun -np %d funnel", size);
        for (int i = 0; i < argc && at < (int)sizeof hint; i++)
            if (strcmp(argv[i], "--resume")) at += snprintf(hint + at, sizeof hint - (size_t)at, " %s", argv[i]);
        if (at < (int)sizeof hint) snprintf(hint + at, sizeof hint - (size_t)at, " --resume");
        train_set_resume_hint(hint);
    }
    if (W < 1) {
        if (rank == 0)
            fprintf(stderr, "funnel train: --servers %d needs at least %d MPI processes (servers + at least one worker), mpirun gave %d\n", S, S + 1, size);
        MPI_Finalize();
        return 2;
    }
    int is_server = rank < S;
    char role[64];
    snprintf(role, sizeof role, is_server ? "server %d" : "worker %d", is_server ? rank : rank - S);
    log_set_role(role);
    if (c.verbose) log_set_level(LOG_DEBUG);

    /* the run directory, made by the lead worker before anyone needs it */
    if (rank == S) {
        if ((rc = fn_mkdirs(c.out))) fn_fail(rc, "--out %s: %s", c.out, fn_err_msg()); /* parents too */
        char path[4200];
        snprintf(path, sizeof path, "%s/config.json", c.out);
        if (!rc) rc = config_write_json(&c, path, S, W);
        if (rc) log_error("%s", fn_err_msg());
    }
    MPI_Bcast(&rc, 1, MPI_INT, S, MPI_COMM_WORLD);
    if (rc) { MPI_Finalize(); return 1; }

    /* one host or many: servers bind to loopback only when the whole job is on one machine */
    char *hosts = calloc((size_t)size, MPI_MAX_PROCESSOR_NAME);
    char me[MPI_MAX_PROCESSOR_NAME] = {0};
    int len;
    MPI_Get_processor_name(me, &len);
    MPI_Allgather(me, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, hosts, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, MPI_COMM_WORLD);
    int one_host = 1;
    for (int r = 1; r < size; r++) one_host &= !strcmp(hosts, hosts + (size_t)r * MPI_MAX_PROCESSOR_NAME);
    const char *bind = c.bind, *advertise = c.bind;
    if (!strcmp(c.bind, "auto")) {
        bind = one_host ? "127.0.0.1" : "*";
        advertise = one_host ? "127.0.0.1" : me;
    }

    /* the job's keys: made by rank 0, handed out over MPI, never written anywhere */
    secure_keys keys;
    memset(&keys, 0, sizeof keys);
    if (rank == 0 && !c.insecure && (rc = secure_make_keys(&keys))) log_error("%s", fn_err_msg());
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (rc) { MPI_Finalize(); return 1; }
    MPI_Bcast(&keys, (int)sizeof keys, MPI_BYTE, 0, MPI_COMM_WORLD);

    MPI_Comm role_comm;
    MPI_Comm_split(MPI_COMM_WORLD, is_server, rank, &role_comm);
    void *zctx = NULL;
    ps_server *srv = NULL;
    secure_zap *zap = NULL;
    char endpoint[ENDPOINT_BYTES] = {0};
    if (is_server) {
        zctx = zmq_ctx_new();
        if ((rc = secure_zap_start(&zap, zctx, &keys))) {
            log_error("%s", fn_err_msg());
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        ps_server_conf sc = {.rank = rank, .bind_host = bind, .advertise_host = advertise, .dim = (int)c.dim,
                             .opt = server_opt(&c), .seed = (uint64_t)c.seed, .init_range = (float)c.init_range, .lz4 = !c.no_lz4,
                             .keys = &keys, .zap = zap, .admit_after = (uint32_t)c.admit_after,
                             .admit_sketch_bytes = (size_t)c.admit_sketch_mb << 20, .max_rows = (uint64_t)c.max_rows_per_server,
                             .ttl_steps = (uint32_t)c.ttl_steps, .evict_policy = strcmp(c.evict, "lfu") ? PS_EVICT_LRU : PS_EVICT_LFU,
                             .threads = server_threads(&c, hosts, size, me)};
        const char *ep;
        if ((rc = ps_server_new(&srv, zctx, &sc, &ep))) {
            log_error("%s", fn_err_msg());
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        snprintf(endpoint, sizeof endpoint, "%s", ep);
        log_info("serving on %s", endpoint);
    }
    char *all = calloc((size_t)size, ENDPOINT_BYTES);
    MPI_Allgather(endpoint, ENDPOINT_BYTES, MPI_CHAR, all, ENDPOINT_BYTES, MPI_CHAR, MPI_COMM_WORLD);
    if (rank == S && (rc = write_cluster_json(c.out, S, all, hosts))) log_warn("%s", fn_err_msg());

    if (is_server) {
        if ((rc = ps_server_run(srv))) log_error("%s", fn_err_msg());
        ps_server_destroy(&srv);
        zmq_ctx_term(zctx); /* ends the ZAP handler too */
        secure_zap_join(&zap);
    } else {
        char **eps = malloc(sizeof(char *) * (size_t)S);
        for (int s = 0; s < S; s++) eps[s] = all + (size_t)s * ENDPOINT_BYTES;
        rc = train_worker(&c, role_comm, S, eps, &keys);
        free(eps);
    }
    memset(&keys, 0, sizeof keys);
    free(all);
    free(hosts);
    MPI_Comm_free(&role_comm);
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_Finalize();
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) { usage(stderr); return 2; }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) { usage(stdout); return 0; }
    if (!strcmp(cmd, "train")) return train_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "predict")) return predict_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "datagen")) return datagen_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "convert")) return convert_main(argc - 1, argv + 1);
    fprintf(stderr, "funnel: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
