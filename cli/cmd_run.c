/*
 * cmd_run.c — `tessera run JOB [--KEY=VALUE ...]`: the coordinator plus local expander and
 * render workers (threads) on one machine, CURVE-secured over a private ipc socket.
 * SIGINT stops cleanly; running the same command again resumes from the journal.
 */
#include "cli/commands.h"
#include "coordinator/coordinator.h"
#include "coordinator/progress.h"
#include "kernels/base.h"
#include "worker/worker.h"

#include <czmq.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested, workers_stop, drain_requested;
static void on_signal(int sig) { (void)sig; __atomic_store_n(&stop_requested, 1, __ATOMIC_RELAXED); }
static void on_drain(int sig) { (void)sig; __atomic_store_n(&drain_requested, 1, __ATOMIC_RELAXED); }

static void print_progress(const coordinator_progress *p, void *ctx) { progress_print(stderr, p, *(int *)ctx); }

/* Local workers per stage (1 expand, 2 render) and how many of them ended in error. When
 * every worker of a stage has, nothing can finish the job (a model that does not load, a
 * device that is not there): the run stops, and says so, instead of waiting forever. */
static int stage_workers[3], stage_failed[3];
static volatile sig_atomic_t workers_failed;

static void *worker_thread(void *arg) {
    worker_options *o = arg;
    if (worker_run(o) < 0) {
        log_error("worker %s: %s", o->name, ts_last_error());
        if (__atomic_add_fetch(&stage_failed[o->stage], 1, __ATOMIC_RELAXED) == stage_workers[o->stage]) {
            __atomic_store_n(&workers_failed, 1, __ATOMIC_RELAXED);
            __atomic_store_n(&stop_requested, 1, __ATOMIC_RELAXED);
        }
    }
    return NULL;
}

/* OUT/keys: the coordinator's pair, one pair for the local workers, and allow/ with its public half. */
static int local_keys(const char *out, char *dir, size_t cap) {
    char path[4096];
    snprintf(dir, cap, "%s/keys", out);
    if (coordinator_make_dirs(out) < 0) return -1;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) return ts_fail("%s: %s", dir, strerror(errno));
    snprintf(path, sizeof path, "%s/allow", dir);
    if (mkdir(path, 0700) < 0 && errno != EEXIST) return ts_fail("%s: %s", path, strerror(errno));
    const char *names[] = {"server", "local"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s.cert_secret", dir, names[i]);
        if (access(path, R_OK) == 0) continue;
        zcert_t *cert = zcert_new();
        snprintf(path, sizeof path, "%s/%s.cert", dir, names[i]);
        int rc = zcert_save(cert, path);
        if (rc == 0 && i == 1) {
            snprintf(path, sizeof path, "%s/allow/local.cert", dir);
            rc = zcert_save_public(cert, path);
        }
        zcert_destroy(&cert);
        if (rc < 0) return ts_fail("%s: cannot write key files", dir);
    }
    return 0;
}

int cmd_run(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        printf("usage: tessera run JOB.yaml|JOB.json [--KEY=VALUE ...]\n"
               "Runs a whole job on this machine: the coordinator and --workers.expand expander plus\n"
               "--workers.render render workers. Ctrl-C stops cleanly; run again to resume. SIGUSR1\n"
               "drains (leased tasks finish, nothing new is leased) and exits 3.\n"
               "Exit status: 0 complete, 1 stopped, 2 error, 3 drained.\n\nkeys:\n");
        job_keys_help(stdout);
        return argc < 2 ? 2 : 0;
    }
    int force_unlock = coordinator_take_force_unlock(&argc, argv); /* see tessera coordinator --help */
    job_spec job;
    if (job_from_command_line(&job, argc, argv) < 0 || job_check(&job) < 0) {
        fprintf(stderr, "tessera run: %s\n", ts_last_error());
        return 2;
    }
    if (!job.keys[0] && local_keys(job.output, job.keys, sizeof job.keys) < 0) {
        fprintf(stderr, "tessera run: %s\n", ts_last_error());
        return 2;
    }
    if (!job.endpoint[0]) snprintf(job.endpoint, sizeof job.endpoint, "ipc:///tmp/tessera-run-%d.ipc", (int)getpid());

    zsys_handler_set(NULL); /* our handlers own SIGINT/SIGTERM */
    zsys_init();            /* once, before any thread makes a socket */
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    struct sigaction sd = {.sa_handler = on_drain}; /* preemption: see coordinator_options.drain */
    sigaction(SIGUSR1, &sd, NULL);

    int expanders = strcmp(job.kind, "render") ? (int)job.expand_workers : 0;
    int renderers = strcmp(job.kind, "recaption") ? (int)job.render_workers : 0;
    int total = expanders + renderers;
    if (total < 1 || total > 256) { fprintf(stderr, "tessera run: need 1 to 256 workers for a %s job\n", job.kind); return 2; }
    char client[1200], server[1200];
    snprintf(client, sizeof client, "%s/local.cert_secret", job.keys);
    snprintf(server, sizeof server, "%s/server.cert", job.keys);
    worker_options *wo = ts_calloc((size_t)total, sizeof *wo);
    char (*names)[32] = ts_calloc((size_t)total, sizeof *names);
    pthread_t *threads = ts_calloc((size_t)total, sizeof *threads);
    for (int w = 0; w < total; w++) {
        int expand = w < expanders;
        snprintf(names[w], sizeof names[w], "%s-%d", expand ? "expand" : "render", w);
        wo[w] = (worker_options){
            .endpoint = job.endpoint, .stage = expand ? 1 : 2, .backend = job.backend,
            .model = expand ? job.expander : job.diffusion, .credit = (int)job.credit, .batch = (int)job.render_batch,
            .unet_shared = (int)job.unet_shared, .device = job.device[0] ? job.device : NULL,
            .expand_check = job.expand_check, .expand_retries = (int)job.expand_retries,
            .heartbeat_s = job.heartbeat_seconds, .client_cert = client, .server_cert = server,
            .stop = &workers_stop, .name = names[w],
        };
    }
    int terminal = isatty(2);
    coordinator_options o = {.job = &job, .stop = &stop_requested, .drain = &drain_requested, .progress = print_progress,
                             .progress_ctx = &terminal, .curve = 1, .force_unlock = force_unlock};
    /* the coordinator binds first in coordinator_run; workers reconnect until it is up */
    for (int w = 0; w < total; w++) stage_workers[wo[w].stage]++;
    for (int w = 0; w < total; w++) pthread_create(&threads[w], NULL, worker_thread, &wo[w]);
    int rc = coordinator_run(&o, NULL);
    __atomic_store_n(&workers_stop, 1, __ATOMIC_RELAXED); /* after Shutdown: those still reconnecting exit too */
    for (int w = 0; w < total; w++) pthread_join(threads[w], NULL);
    free(wo); free(names); free(threads);
    if (!strncmp(job.endpoint, "ipc://", 6)) unlink(job.endpoint + 6);
    if (rc < 0) { fprintf(stderr, "tessera run: %s\n", ts_last_error()); return 2; }
    if (__atomic_load_n(&workers_failed, __ATOMIC_RELAXED)) {
        fprintf(stderr, "tessera run: every local %s worker failed (the errors above); nothing is lost: fix it and run "
                        "the same command again to resume\n", stage_failed[1] == stage_workers[1] && stage_workers[1] ? "expand" : "render");
        return 2;
    }
    if (rc == 1 || rc == 3) fprintf(stderr, "tessera run: %s; run the same command again to resume\n", rc == 3 ? "drained" : "stopped");
    return rc;
}
