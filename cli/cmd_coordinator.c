/* cmd_coordinator.c — `tessera coordinator JOB [--key=value...]`: the coordinator alone. */
#include "cli/commands.h"
#include "coordinator/coordinator.h"
#include "coordinator/progress.h"
#include "kernels/base.h"

#include <czmq.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested, drain_requested;
static void on_signal(int sig) { (void)sig; __atomic_store_n(&stop_requested, 1, __ATOMIC_RELAXED); }
static void on_drain(int sig) { (void)sig; __atomic_store_n(&drain_requested, 1, __ATOMIC_RELAXED); }

static void print_progress(const coordinator_progress *p, void *ctx) {
    static double last;
    if (!p->complete && p->elapsed - last < 5) return; /* a line every 5 s in logs */
    last = p->elapsed;
    progress_print(stderr, p, 0);
}

int cmd_coordinator(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        printf("usage: tessera coordinator JOB.yaml|JOB.json [--KEY=VALUE ...] [--force-unlock]\n"
               "Runs the coordinator of a job; workers connect to --endpoint (default tcp://*:5555).\n"
               "One coordinator per output folder: a second one refuses, naming the first.\n"
               "--force-unlock takes the folder's lock from a coordinator that is gone.\n"
               "With --keys=DIR, CURVE is on: DIR/server.cert_secret and DIR/allow/*.cert.\n"
               "--metrics=tcp://HOST:PORT serves Prometheus metrics (GET /metrics).\n"
               "SIGUSR1 drains (preemption): nothing more is leased, leased tasks finish or come back\n"
               "(at most --drain_seconds), the journal is flushed, and it exits with 3.\n"
               "Exit status: 0 complete, 1 stopped (SIGINT/SIGTERM; run again to resume), 2 error,\n"
               "3 drained (run again to resume).\n\nkeys:\n");
        job_keys_help(stdout);
        return argc < 2 ? 2 : 0;
    }
    int force_unlock = coordinator_take_force_unlock(&argc, argv);
    job_spec job;
    if (job_from_command_line(&job, argc, argv) < 0) {
        fprintf(stderr, "tessera coordinator: %s\n", ts_last_error());
        return 2;
    }
    zsys_handler_set(NULL); /* our handlers own SIGINT/SIGTERM */
    zsys_init();            /* once, before any thread makes a socket */
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    struct sigaction sd = {.sa_handler = on_drain};
    sigaction(SIGUSR1, &sd, NULL);
    coordinator_options o = {.job = &job, .stop = &stop_requested, .drain = &drain_requested, .progress = print_progress,
                             .curve = job.keys[0] != 0, .force_unlock = force_unlock};
    int rc = coordinator_run(&o, NULL);
    if (rc < 0) { fprintf(stderr, "tessera coordinator: %s\n", ts_last_error()); return 2; }
    return rc;
}
