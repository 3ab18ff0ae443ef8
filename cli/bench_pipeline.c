/*
 * bench_pipeline.c — `tessera bench pipeline`: coordinator throughput and memory.
 *
 * The coordinator runs a render job of single-record tasks against 1, 8 and 64 in-process
 * null workers (the real worker loop with the "null" renderer, hashing its fixed tiny PNG
 * and writing no files) over inproc://, with the journal and manifest written as usual.
 * Printed: tasks/s, and the process's peak RSS. Then the same job with 8 workers over a
 * 1e4-record dataset (run to the end) and a 1e7-record one (generated into a temporary .gz
 * file; stopped after 1e5 tasks), each in a fresh process (this program re-run with
 * --rss-child), shows that peak RSS does not follow the dataset length.
 */
#include "cli/bench.h"
#include "coordinator/coordinator.h"
#include "kernels/base.h"
#include "worker/worker.h"

#include <czmq.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static volatile sig_atomic_t workers_stop;

static void *worker_thread(void *arg) {
    worker_run(arg);
    return NULL;
}

/* VmHWM (peak) or VmRSS of this process, in MiB. */
static double rss_mib(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, field, strlen(field))) kb = atof(line + strlen(field) + 1);
    if (f) fclose(f);
    return kb / 1024;
}

static int make_dataset(const char *path, long n) {
    gzFile gz = gzopen(path, "wb1");
    if (!gz) return ts_fail("%s: cannot write", path);
    char line[64];
    for (long i = 0; i < n; i++) {
        int k = snprintf(line, sizeof line, "prompt number %ld\n", i);
        gzwrite(gz, line, (unsigned)k);
    }
    gzclose(gz);
    return 0;
}

typedef struct {
    double tasks_per_s, rss_now, rss_peak;
    uint64_t tasks;
} bench_result;

static int run_once(const char *dir, const char *dataset, int workers, uint64_t stop_after, bench_result *r) {
    static int round;
    char out[600], ep[700], inproc[64];
    snprintf(out, sizeof out, "%s/out%d", dir, round);
    snprintf(ep, sizeof ep, "ipc://%s/c%d.ipc", dir, round);
    snprintf(inproc, sizeof inproc, "inproc://bench-%d", round++);
    job_spec job;
    job_defaults(&job);
    job_set(&job, "kind", "render");
    job_set(&job, "dataset.path", dataset);
    job_set(&job, "output.dir", out);
    job_set(&job, "output.layout", "files");
    job_set(&job, "task_size", "1");
    job_set(&job, "endpoint", ep);
    worker_options *wo = ts_calloc((size_t)workers, sizeof *wo);
    pthread_t *th = ts_calloc((size_t)workers, sizeof *th);
    __atomic_store_n(&workers_stop, 0, __ATOMIC_RELAXED);
    for (int i = 0; i < workers; i++) {
        wo[i] = (worker_options){.endpoint = inproc, .stage = 2, .backend = "null", .credit = 4,
                                 .heartbeat_s = 1, .stop = &workers_stop, .name = "bench",
                                 .inline_compute = 1, .discard_output = 1};
    }
    coordinator_options o = {.job = &job, .extra_endpoint = inproc, .stop_after_tasks = stop_after};
    coordinator_progress p;
    /* workers reconnect until the coordinator has bound the inproc endpoint */
    for (int i = 0; i < workers; i++) pthread_create(&th[i], NULL, worker_thread, &wo[i]);
    double t0 = ts_now();
    int rc = coordinator_run(&o, &p);
    double dt = ts_now() - t0;
    __atomic_store_n(&workers_stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < workers; i++) pthread_join(th[i], NULL);
    free(wo); free(th);
    if (rc < 0) return -1;
    r->tasks = p.tasks_done;
    r->tasks_per_s = p.tasks_done / dt;
    r->rss_now = rss_mib("VmRSS:");
    r->rss_peak = rss_mib("VmHWM:");
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s", out);
    if (system(cmd) != 0) log_warn("could not remove %s", out);
    return 0;
}

/* One job in this fresh process; prints its peak RSS for the parent to read. */
static int rss_child(const char *dataset, long stop_after) {
    char dir[] = "/tmp/tessera_bench_rss_XXXXXX";
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    bench_result r;
    int rc = run_once(dir, dataset, 8, (uint64_t)stop_after, &r);
    if (rc == 0) printf("tasks %llu peak_rss_mib %.1f\n", (unsigned long long)r.tasks, r.rss_peak);
    else fprintf(stderr, "%s\n", ts_last_error());
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir); /* the job's output and its ipc socket */
    if (system(cmd) != 0) log_warn("could not remove %s", dir);
    return rc == 0 ? 0 : 1;
}

static int measure_child(const char *dataset, long stop_after, unsigned long long *tasks, double *rss) {
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "/proc/%d/exe bench pipeline --rss-child %s %ld", (int)getpid(), dataset, stop_after);
    FILE *p = popen(cmd, "r");
    if (!p) return ts_fail("cannot run %s", cmd);
    char line[256];
    int got = 0;
    while (fgets(line, sizeof line, p)) /* `tessera bench` prints a threads line first */
        if (sscanf(line, "tasks %llu peak_rss_mib %lf", tasks, rss) == 2) got = 2;
    int rc = pclose(p);
    return got == 2 && rc == 0 ? 0 : ts_fail("the RSS measuring child failed");
}

int bench_pipeline(int argc, char **argv) {
    long tasks = 100000, big = 10000000;
    zsys_handler_set(NULL);
    zsys_init();
    log_set_level(TS_LOG_WARN);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tasks") && i + 1 < argc) tasks = atol(argv[++i]);
        else if (!strcmp(argv[i], "--big") && i + 1 < argc) big = atol(argv[++i]);
        else if (!strcmp(argv[i], "--rss-child") && i + 2 < argc) return rss_child(argv[i + 1], atol(argv[i + 2]));
        else { fprintf(stderr, "usage: tessera bench pipeline [--tasks N] [--big RECORDS]\n"); return 2; }
    }
    char dir[] = "/tmp/tessera_bench_XXXXXX";
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    char small_path[600], big_path[600];
    snprintf(small_path, sizeof small_path, "%s/small.txt.gz", dir);
    snprintf(big_path, sizeof big_path, "%s/big.txt.gz", dir);
    int status = 0;
    double t0 = ts_now();
    if (make_dataset(small_path, tasks) < 0) { fprintf(stderr, "%s\n", ts_last_error()); return 1; }
    printf("pipeline: render job, 1 record per task, null workers (in-process, inproc://), journal + manifest on\n");
    printf("dataset of %ld records made in %.1f s\n", tasks, ts_now() - t0);
    printf("%-10s %12s %12s %14s\n", "workers", "tasks", "tasks/s", "peak RSS MiB");
    int counts[] = {1, 8, 64};
    for (int k = 0; k < 3; k++) {
        bench_result r;
        if (run_once(dir, small_path, counts[k], 0, &r) < 0) { fprintf(stderr, "%s\n", ts_last_error()); status = 1; break; }
        printf("%-10d %12llu %12.0f %14.1f\n", counts[k], (unsigned long long)r.tasks, r.tasks_per_s, r.rss_peak);
        fflush(stdout);
    }
    /* RSS against dataset length: same work, 1e4 vs `big` records in the file */
    char tiny_path[600];
    snprintf(tiny_path, sizeof tiny_path, "%s/tiny.txt.gz", dir);
    t0 = ts_now();
    if (status == 0 && (make_dataset(tiny_path, 10000) < 0 || make_dataset(big_path, big) < 0)) { fprintf(stderr, "%s\n", ts_last_error()); status = 1; }
    if (status == 0) {
        printf("datasets of 1e4 and %.0e records made in %.1f s; each job below runs in a fresh process\n", (double)big, ts_now() - t0);
        unsigned long long ta, tb;
        double ra, rb;
        long stop_big = 10 * 10000;
        if (measure_child(tiny_path, 0, &ta, &ra) == 0 && measure_child(big_path, stop_big, &tb, &rb) == 0) {
            printf("peak RSS, %llu tasks of a 1e4-record dataset: %.1f MiB\n", ta, ra);
            printf("peak RSS, %llu tasks of a %.0e-record dataset: %.1f MiB\n", tb, (double)big, rb);
            printf("rss ratio (big/small): %.3f\n", rb / ra);
        } else {
            fprintf(stderr, "%s\n", ts_last_error());
            status = 1;
        }
    }
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) log_warn("could not remove %s", dir);
    return status;
}
