/* launch/main.c — the `funnel` command: dispatches to a subcommand.
 *
 *   funnel train    (under mpirun: ranks 0..S-1 serve, the rest train)
 *   funnel predict  (one process, no MPI job)
 *   funnel convert  (Ali-CCP text to the binary format)
 *   funnel datagen  (synthetic Ali-CCP-format worlds)
 */
#include <stdio.h>
#include <string.h>

#include "datagen.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: funnel COMMAND [options]\n"
            "\n"
            "commands:\n"
            "  train     distributed training (run under mpirun)\n"
            "  predict   score a file with an exported model\n"
            "  datagen   write a synthetic Ali-CCP-format world\n"
            "\n"
            "`funnel COMMAND --help` describes each command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) { usage(stderr); return 2; }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) { usage(stdout); return 0; }
    if (!strcmp(cmd, "datagen")) return datagen_main(argc - 1, argv + 1);
    fprintf(stderr, "funnel: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
