/* cmd_status.c — `tessera status OUT [--journal]`: progress, rate and ETA from a job's journal. */
#include "cli/commands.h"
#include "coordinator/journal.h"
#include "kernels/base.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>

typedef struct {
    int dump;
    uint64_t runs, tasks_done, tasks_dead, records_done, records_dead, failures, expanded, shards;
    uint64_t total, rejected, run_done, rate_done;
    int total_known;
    double first, last, run_start, run_last, rate_span;
} status;

static const char *type_name(int t) {
    static const char *names[] = {"?", "start", "expanded", "done", "failed", "dead", "total", "shard"};
    return t >= 1 && t <= 7 ? names[t] : "?";
}

static int visit(const journal_entry *e, void *ctx) {
    status *s = ctx;
    if (!s->first) s->first = e->time;
    s->last = e->time;
    if (s->dump)
        printf("%.3f %-8s task=%llu a=%llu b=%llu%s%s\n", e->time, type_name(e->type), (unsigned long long)e->task,
               (unsigned long long)e->a, (unsigned long long)e->b, e->nstr ? " " : "", e->nstr ? e->str[0] : "");
    switch (e->type) {
    case J_START: s->runs++; s->run_start = e->time; s->run_done = 0; break;
    case J_EXPANDED: s->expanded++; break;
    case J_DONE: s->tasks_done++; s->records_done += e->a; s->run_done += e->a; s->run_last = e->time; break;
    case J_DEAD: s->tasks_dead++; s->records_dead += e->a; s->run_done += e->a; s->run_last = e->time; break;
    case J_FAILED: s->failures++; break;
    case J_TOTAL: s->total = e->a; s->rejected = e->b; s->total_known = 1; break;
    case J_SHARD: s->shards++; break;
    }
    /* the rate of the latest run that finished anything */
    if ((e->type == J_DONE || e->type == J_DEAD) && s->run_last > s->run_start) {
        s->rate_done = s->run_done;
        s->rate_span = s->run_last - s->run_start;
    }
    return 0;
}

int cmd_status(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        printf("usage: tessera status OUT [--journal]\n"
               "Progress, rate and ETA of the job writing to OUT, read from OUT/journal.tsj\n"
               "(while it runs or after). --journal prints every journal entry first.\n");
        return argc < 2 ? 2 : 0;
    }
    status s = {0};
    if (argc > 2 && !strcmp(argv[2], "--journal")) s.dump = 1;
    char path[4096];
    snprintf(path, sizeof path, "%s/journal.tsj", argv[1]);
    uint64_t torn = 0;
    if (journal_replay(path, visit, &s, &torn) < 0) { fprintf(stderr, "tessera status: %s\n", ts_last_error()); return 2; }
    struct timeval tv;
    gettimeofday(&tv, NULL);
    double now = tv.tv_sec + tv.tv_usec * 1e-6;
    double rate = s.rate_span > 0 ? s.rate_done / s.rate_span : 0;
    uint64_t finished = s.records_done + s.records_dead;
    int complete = s.total_known && finished >= s.total;
    printf("job:       %s\n", complete ? "complete" : now - s.last < 10 ? "running" : "stopped (run again to resume)");
    printf("records:   %llu done, %llu dead-lettered, of %s", (unsigned long long)s.records_done,
           (unsigned long long)s.records_dead, s.total_known ? "" : "? (dataset not fully read yet)");
    if (s.total_known) printf("%llu (%.1f%%)", (unsigned long long)s.total, s.total ? 100.0 * finished / s.total : 100.0);
    printf("\ntasks:     %llu done, %llu dead, %llu failed attempts, %llu expanded\n", (unsigned long long)s.tasks_done,
           (unsigned long long)s.tasks_dead, (unsigned long long)s.failures, (unsigned long long)s.expanded);
    if (s.total_known) printf("rejected:  %llu dataset lines\n", (unsigned long long)s.rejected);
    if (s.shards) printf("shards:    %llu closed\n", (unsigned long long)s.shards);
    printf("runs:      %llu (coordinator starts)\n", (unsigned long long)s.runs);
    printf("rate:      %.2f records/s (the latest run that did work)\n", rate);
    if (s.total_known && !complete && rate > 0)
        printf("eta:       %.0f s\n", (double)(s.total - finished) / rate);
    if (torn) printf("journal:   %llu bytes of torn tail (cut at the next start)\n", (unsigned long long)torn);
    return 0;
}
