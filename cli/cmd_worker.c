/* cmd_worker.c — `tessera worker expand|render --connect ENDPOINT ...`: one worker process. */
#include "cli/commands.h"
#include "kernels/base.h"
#include "worker/render_group.h"
#include "worker/worker.h"

#include <czmq.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) { (void)sig; __atomic_store_n(&stop_requested, 1, __ATOMIC_RELAXED); }

static int usage(int rc) {
    printf("usage: tessera worker expand|render --connect ENDPOINT [options]\n"
           "  --backend NAME      null | echo | a model backend (default null)\n"
           "  --model PATH        model for the backend\n"
           "  --expand-check C    none | keep-words: expansions must keep the prompt's content words\n"
           "  --expand-retries N  further samples when the check fails (default 4)\n"
           "  --credit N          tasks held at once (default 2)\n"
           "  --batch N           render: records of a task in one model call (default 1)\n"
           "  --unet-shared 0|1   render: a batch's records share each U-Net call (faster, not bit-exact)\n"
           "  --device D          cpu (default) or cuda[:N]: where the model (expander, captioner, renderer) computes\n"
           "  --tp T              render under mpirun: groups of T ranks share one U-Net; rank 0 of each\n"
           "                      group is the worker (README: Parallel rendering)\n"
           "  --parallel MODE     with --tp: tp (default), or cfg / dp (the U-Net batch split)\n"
           "  --tp-pieces P       the U-Net cut into P pieces (a multiple of --tp; without --tp one rank\n"
           "                      computes all P): the same image bytes for every --tp dividing P\n"
           "  --heartbeat S       heartbeat interval in seconds (default 1)\n"
           "  --reconnect-max S   longest reconnect backoff (default 8 beats)\n"
           "  --cert FILE         this worker's secret certificate (CURVE)\n"
           "  --server-cert FILE  the coordinator's public certificate (CURVE)\n"
           "  --name NAME         shown in the coordinator's log\n"
           "SIGTERM or SIGUSR1 (Slurm's preemption signal): hands back queued tasks, finishes the\n"
           "running one, exits.\n");
    return rc;
}

int cmd_worker(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) return usage(argc < 2 ? 2 : 0);
    worker_options o = {.backend = "null", .credit = 2, .heartbeat_s = 1, .stop = &stop_requested, .expand_retries = -1};
    if (!strcmp(argv[1], "expand")) o.stage = 1;
    else if (!strcmp(argv[1], "render")) o.stage = 2;
    else { fprintf(stderr, "tessera worker: '%s' is not expand or render\n", argv[1]); return 2; }
    int tp = 0;
    const char *parallel = NULL;
    char name[128];
    snprintf(name, sizeof name, "%s-%d", argv[1], (int)getpid());
    o.name = name;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) { fprintf(stderr, "tessera worker: '%s' needs a value\n", a); return 2; }
        const char *v = argv[++i];
        if (!strcmp(a, "--connect")) o.endpoint = v;
        else if (!strcmp(a, "--backend")) o.backend = v;
        else if (!strcmp(a, "--model")) o.model = v;
        else if (!strcmp(a, "--expand-check")) o.expand_check = v;
        else if (!strcmp(a, "--expand-retries")) o.expand_retries = atoi(v);
        else if (!strcmp(a, "--credit")) o.credit = atoi(v);
        else if (!strcmp(a, "--batch")) o.batch = atoi(v);
        else if (!strcmp(a, "--unet-shared")) o.unet_shared = atoi(v);
        else if (!strcmp(a, "--device")) o.device = v;
        else if (!strcmp(a, "--heartbeat")) o.heartbeat_s = atof(v);
        else if (!strcmp(a, "--reconnect-max")) o.reconnect_max_s = atof(v);
        else if (!strcmp(a, "--cert")) o.client_cert = v;
        else if (!strcmp(a, "--server-cert")) o.server_cert = v;
        else if (!strcmp(a, "--name")) o.name = v;
        else if (!strcmp(a, "--tp")) tp = atoi(v);
        else if (!strcmp(a, "--parallel")) parallel = v;
        else if (!strcmp(a, "--tp-pieces")) o.tp_pieces = atoi(v);
        else { fprintf(stderr, "tessera worker: unknown option '%s'\n", a); return 2; }
    }
    if (!o.endpoint) { fprintf(stderr, "tessera worker: --connect ENDPOINT is required\n"); return 2; }
    zsys_handler_set(NULL); /* our handlers own SIGINT/SIGTERM */
    zsys_init();            /* once, before any thread makes a socket */
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);   /* --signal=USR1@T reaching a worker started outside our scripts */
    if (tp < 0 || (parallel && tp == 0)) { fprintf(stderr, "tessera worker: --tp wants a positive group size\n"); return 2; }
    if (o.tp_pieces < 0 || (o.tp_pieces && o.stage != 2)) {
        fprintf(stderr, "tessera worker: --tp-pieces wants a positive count, for render workers\n");
        return 2;
    }
    if (tp > 0 ? render_group_run(&o, tp, parallel) < 0 : worker_run(&o) < 0) {
        fprintf(stderr, "tessera worker: %s\n", ts_last_error());
        return 2;
    }
    return 0;
}
