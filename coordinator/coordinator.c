/*
 * coordinator.c — task queue, leases, journal replay and output bookkeeping (see coordinator.h).
 *
 * Tasks are cut from the accepted records in dataset order: task t holds records
 * [t*N, t*N + N). Only a window of tasks lives in memory, in a ring indexed by task id:
 * from the watermark (the lowest task not yet finished) up to the next task to read. So
 * memory depends on the window, never on the dataset length; on resume the dataset is read
 * again from the top and the records of finished tasks are skipped as they stream past.
 *
 * Exactly once: a task's manifest lines are appended, then its J_DONE entry records the
 * manifest size; at start the manifest is cut back to the size of the last J_DONE, so lines
 * of a task whose J_DONE never made it are removed and that task is done again. Image files
 * are named after record ids and written temp-then-rename, so a redone task rewrites the
 * same names. The manifest is fsynced before the journal in every group commit.
 */
#include "coordinator/coordinator.h"
#include "coordinator/dataset.h"
#include "coordinator/id_set.h"
#include "coordinator/journal.h"
#include "coordinator/metrics.h"
#include "coordinator/output_lock.h"
#include "coordinator/shard_pack.h"
#include "coordinator/task_state.h"
#include "kernels/base.h"
#include "proto/wire.h"
#include "worker/output_writer.h" /* output_storage_error_text */

#include <cjson/cJSON.h>
#include <czmq.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>


typedef struct {
    char *id, *prompt, *negative, *params, *expanded;
    char *fallback;           /* why the expander's reply was rejected (this run only) */
    uint64_t seed, index;
} crecord;

typedef struct task {
    uint64_t id;
    int used, loaded;         /* loaded: records read from the dataset */
    task_state state;
    int attempts;
    uint64_t lease_id;
    uint64_t owner;           /* hash of the leaseholder's identity, for hand-backs */
    double deadline;
    int n;
    crecord *recs;
    char **replayed;          /* expanded texts from the journal, until the records load */
    uint32_t n_replayed;
    char *reasons;            /* failure reasons, "; "-joined, for the dead-letter file */
    struct task *next;        /* queue link */
} task;

typedef struct {
    task *head, *tail;
    uint64_t len;
} task_queue;

/* What one worker did this run (kept after it leaves, for stats.json and /metrics). */
typedef struct {
    char name[64];            /* the worker's Hello name (host-pid), else its identity */
    int stage;
    uint64_t tasks, records, failures;
    double joined, last_result;
} worker_stats;

typedef struct {
    char key[64];
    uint64_t key_hash;
    worker_stats *stats;      /* in coordinator.wstats */
    zframe_t *identity;
    int stage;                /* TESSERA__STAGE__STAGE_EXPAND / _RENDER */
    uint32_t credit;
    double last_seen;
} worker_peer;

#define MAX_REASONS 32
typedef struct {
    char reason[96];
    uint64_t count;
} reason_count;

typedef struct {
    const coordinator_options *opt;
    const job_spec *job;
    int expand_stage, render_stage; /* which stages this job kind has */
    char path_journal[1200], path_manifest[1200], path_stats[1200], path_rejects[1200], path_dead[1200];

    zsock_t *router;
    void *raw;                /* libzmq handle of router */
    zactor_t *auth;
    zhashx_t *peers;

    journal *journal;
    FILE *manifest;
    FILE *dead;
    dataset *ds;
    dataset_record rec;
    int dataset_done;

    task *ring;
    uint64_t cap, watermark, next_task, records_read;
    task_queue expand_q, render_q;
    uint64_t lease_counter;
    int need_dispatch;        /* tasks were queued: offer them to workers holding credit */
    int read_error;           /* the dataset could not be read on: stop (a rerun resumes) */
    char read_error_text[1024];

    shard_packer *packer;     /* tar layout only */
    output_lock *lock;        /* one coordinator per output folder */
    id_set *ids;              /* ids seen, to reject duplicates */
    FILE *rejects;            /* duplicate ids go here (the dataset reader writes the rest) */
    uint64_t duplicates;
    int storage_failed;       /* a write to the output failed: stop, write nothing more */
    char storage_error[1024];

    coordinator_progress p;
    reason_count reasons[MAX_REASONS];
    reason_count fallbacks[MAX_REASONS];   /* expander replies rejected, by verdict */
    double started, last_tick, last_heartbeat, last_stats, last_progress;
    zhashx_t *wstats;         /* identity -> worker_stats, every worker seen this run */
    metrics_server *metrics;  /* GET /metrics (job key metrics), NULL when off */
    int draining;             /* a drain was asked for (SIGUSR1): lease nothing more */
    double drain_started;
    uint64_t drain_leased, drain_results, drain_handed_back;
    uint64_t manifest_size_replayed, dead_size_replayed;
    uint64_t done_at_start;
} coordinator;

/* ---------- the task ring ---------- */

static task *slot(coordinator *c, uint64_t id) { return &c->ring[id & (c->cap - 1)]; }

static task *find_task(coordinator *c, uint64_t id) {
    if (id < c->watermark) return NULL;
    task *t = slot(c, id);
    return t->used && t->id == id ? t : NULL;
}

static void free_task(task *t) {
    for (int i = 0; i < t->n; i++) {
        crecord *r = &t->recs[i];
        free(r->id); free(r->prompt); free(r->negative); free(r->params); free(r->expanded); free(r->fallback);
    }
    free(t->recs);
    for (uint32_t i = 0; i < t->n_replayed; i++) free(t->replayed[i]);
    free(t->replayed);
    free(t->reasons);
    memset(t, 0, sizeof *t);
}

static void grow_ring(coordinator *c, uint64_t need) {
    uint64_t cap = c->cap;
    while (cap < need) cap *= 2;
    if (cap == c->cap) return;
    task *old = c->ring;
    uint64_t old_cap = c->cap;
    c->ring = ts_calloc(cap, sizeof *c->ring);
    c->cap = cap;
    for (uint64_t i = 0; i < old_cap; i++)
        if (old[i].used) *slot(c, old[i].id) = old[i];
    free(old);
}

static task *get_or_create(coordinator *c, uint64_t id) {
    if (id >= c->watermark + c->cap) grow_ring(c, (id - c->watermark + 1) * 2);
    task *t = slot(c, id);
    if (!t->used) { t->used = 1; t->id = id; }
    return t;
}

static int terminal(const task *t) { return task_state_terminal(t->state); }
static int leased(const task *t) { return t->state == TASK_EXPANDING || t->state == TASK_RENDERING; }

static void advance_watermark(coordinator *c) {
    for (;;) {
        task *t = slot(c, c->watermark);
        if (!(t->used && t->id == c->watermark && terminal(t))) break;
        free_task(t);
        c->watermark++;
    }
}

static void push(task_queue *q, task *t) {
    t->next = NULL;
    if (q->tail) q->tail->next = t; else q->head = t;
    q->tail = t;
    q->len++;
}

static task *pop(task_queue *q) {
    task *t = q->head;
    if (!t) return NULL;
    q->head = t->next;
    if (!q->head) q->tail = NULL;
    q->len--;
    t->next = NULL;
    return t;
}

/* ---------- journal ---------- */

static double wall_now(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec * 1e-6;
}

static void append_reason(task *t, const char *reason) {
    size_t old = t->reasons ? strlen(t->reasons) : 0;
    if (old >= 4000) return; /* enough to diagnose; the journal has them all */
    t->reasons = ts_realloc(t->reasons, old + strlen(reason) + 3);
    if (old) strcpy(t->reasons + old, "; "), old += 2;
    strcpy(t->reasons + old, reason);
}

static int task_transition(coordinator *c, task *t, task_event ev, const char *reason, const journal_entry *e);

static int replay_entry(const journal_entry *e, void *ctx) {
    coordinator *c = ctx;
    if (e->type == J_TOTAL || e->type == J_START) return 0;
    if (e->type == J_SHARD) {
        if (c->packer) shard_packer_mark_closed(c->packer, e->task);
        return 0;
    }
    if (e->task < c->watermark) return 0; /* already finished: a stale entry */
    task_event ev;
    switch (e->type) {
    case J_EXPANDED: ev = TASK_EV_REPLAY_EXPANDED; break;
    case J_FAILED: ev = TASK_EV_REPLAY_FAILED; break;
    case J_DONE: ev = TASK_EV_REPLAY_DONE; break;
    case J_DEAD: ev = TASK_EV_REPLAY_DEAD; break;
    default: return 0;
    }
    return task_transition(c, get_or_create(c, e->task), ev, NULL, e);
}

/* A write to the output failed (a full disk, a quota, EIO, a read-only remount): hand out
 * no more work and write nothing more, so what is durable stays consistent (a J_DONE on disk
 * always has its manifest lines on disk); the run ends with this error and a rerun resumes. */
static void storage_fail(coordinator *c, const char *what) {
    if (c->storage_failed) return;
    c->storage_failed = 1;
    snprintf(c->storage_error, sizeof c->storage_error, "%s", what);
}

/* Manifest, then journal: a J_DONE on disk always has its manifest lines on disk. */
static int group_commit(coordinator *c) {
    if (c->storage_failed) return -1;
    if (!journal_pending(c->journal)) return 0;
    int rc;
    if (fflush(c->manifest) != 0 || fdatasync(fileno(c->manifest)) < 0)
        rc = ts_fail("%s: %s", c->path_manifest, strerror(errno));
    else if (fflush(c->dead) != 0 || fdatasync(fileno(c->dead)) < 0)
        rc = ts_fail("%s: %s", c->path_dead, strerror(errno));
    else
        rc = journal_commit(c->journal);
    if (rc < 0) storage_fail(c, ts_last_error());
    return rc;
}

static int commit_cb(void *ctx) { return group_commit(ctx); }

static int journal_simple(coordinator *c, journal_type type, uint64_t task_id, uint64_t a, uint64_t b,
                          const char *s) {
    journal_entry e = {.type = type, .task = task_id, .a = a, .b = b, .nstr = s ? 1 : 0, .str = &s};
    if (c->storage_failed) return -1;
    if (journal_append(c->journal, &e) < 0) { storage_fail(c, ts_last_error()); return -1; }
    return journal_pending(c->journal) >= 4096 ? group_commit(c) : 0;
}

/* ---------- stats and reasons ---------- */

static void count_in(reason_count *table, const char *reason);

static void count_reason(coordinator *c, const char *reason) { count_in(c->reasons, reason); }

static void count_in(reason_count *table, const char *reason) {
    char key[96];
    snprintf(key, sizeof key, "%s", reason);
    char *colon = strchr(key, ':'); /* "render: out of memory on x" -> bucket "render" */
    if (colon) *colon = 0;
    for (int i = 0; i < MAX_REASONS; i++) {
        if (!table[i].count) { snprintf(table[i].reason, sizeof table[i].reason, "%s", key); table[i].count = 1; return; }
        if (!strcmp(table[i].reason, key)) { table[i].count++; return; }
    }
}

static const char *stage_name(int stage) {
    return stage == TESSERA__STAGE__STAGE_EXPAND ? "expand" : stage == TESSERA__STAGE__STAGE_RENDER ? "render" : "none";
}

/* Tasks leased to workers now. */
static uint64_t leases_out(coordinator *c) {
    uint64_t n = 0;
    for (uint64_t id = c->watermark; id < c->next_task; id++) {
        task *t = find_task(c, id);
        if (t && leased(t)) n++;
    }
    return n;
}

static void write_stats(coordinator *c) {
    if (c->storage_failed) return;
    cJSON *o = cJSON_CreateObject();
    coordinator_progress *p = &c->p;
    cJSON_AddStringToObject(o, "kind", c->job->kind);
    cJSON_AddBoolToObject(o, "complete", p->complete);
    cJSON_AddNumberToObject(o, "records_done", (double)p->records_done);
    cJSON_AddNumberToObject(o, "records_resumed", (double)p->records_resumed);
    cJSON_AddNumberToObject(o, "records_dead", (double)p->records_dead);
    cJSON_AddNumberToObject(o, "records_total", (double)p->records_total);
    cJSON_AddNumberToObject(o, "rejected_lines", (double)p->rejected);
    cJSON_AddNumberToObject(o, "tasks_done", (double)p->tasks_done);
    cJSON_AddNumberToObject(o, "tasks_dead", (double)p->tasks_dead);
    cJSON_AddNumberToObject(o, "task_failures", (double)p->tasks_failed);
    cJSON_AddNumberToObject(o, "leases_expired", (double)p->leases_expired);
    cJSON_AddNumberToObject(o, "handed_back", (double)p->handed_back);
    cJSON_AddNumberToObject(o, "stale_results", (double)p->stale_results);
    cJSON *m = cJSON_AddObjectToObject(o, "messages");
    cJSON_AddNumberToObject(m, "received", (double)p->msgs_received);
    cJSON_AddNumberToObject(m, "dropped", (double)p->msgs_dropped);
    cJSON_AddNumberToObject(m, "oversized", (double)p->msgs_oversized);
    cJSON_AddNumberToObject(m, "malformed", (double)p->msgs_malformed);
    cJSON *f = cJSON_AddObjectToObject(o, "failures_by_reason");
    for (int i = 0; i < MAX_REASONS && c->reasons[i].count; i++)
        cJSON_AddNumberToObject(f, c->reasons[i].reason, (double)c->reasons[i].count);
    cJSON *fb = cJSON_AddObjectToObject(o, "expand_fallbacks_by_reason");
    for (int i = 0; i < MAX_REASONS && c->fallbacks[i].count; i++)
        cJSON_AddNumberToObject(fb, c->fallbacks[i].reason, (double)c->fallbacks[i].count);
    cJSON_AddNumberToObject(o, "elapsed_s", p->elapsed);
    cJSON_AddNumberToObject(o, "records_per_s", p->records_per_s);
    cJSON_AddNumberToObject(o, "tasks_leased", (double)leases_out(c));
    cJSON_AddNumberToObject(o, "queue_expand", (double)c->expand_q.len);
    cJSON_AddNumberToObject(o, "queue_render", (double)c->render_q.len);
    cJSON_AddBoolToObject(o, "draining", c->draining);
    cJSON_AddNumberToObject(o, "written_at", wall_now());
    cJSON *ws = cJSON_AddArrayToObject(o, "workers");
    double now = ts_now();
    for (worker_stats *w = zhashx_first(c->wstats); w; w = zhashx_next(c->wstats)) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "name", w->name);
        cJSON_AddStringToObject(x, "stage", stage_name(w->stage));
        cJSON_AddBoolToObject(x, "connected", zhashx_lookup(c->peers, zhashx_cursor(c->wstats)) != NULL);
        cJSON_AddNumberToObject(x, "tasks", (double)w->tasks);
        cJSON_AddNumberToObject(x, "records", (double)w->records);
        cJSON_AddNumberToObject(x, "failures", (double)w->failures);
        cJSON_AddNumberToObject(x, "records_per_s", now > w->joined ? (double)w->records / (now - w->joined) : 0);
        cJSON_AddItemToArray(ws, x);
    }
    char *s = cJSON_Print(o);
    char tmp[1300];
    snprintf(tmp, sizeof tmp, "%s.tmp", c->path_stats);
    FILE *out = fopen(tmp, "w");
    int ok = out && fprintf(out, "%s\n", s) >= 0;
    ok = out && fclose(out) == 0 && ok;
    if (!ok || rename(tmp, c->path_stats) < 0) {
        ts_fail("%s: %s", c->path_stats, strerror(errno));
        unlink(tmp);
        storage_fail(c, ts_last_error());
    }
    free(s);
    cJSON_Delete(o);
}

/* ---------- Prometheus /metrics ---------- */

static void metric(FILE *out, const char *name, const char *type, const char *help, double v) {
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

/* One scrape: the job's counts (all runs, from the journal and this run), this run's rates,
 * the queues, failures by reason and per-worker throughput. */
static void render_metrics(FILE *out, void *ctx) {
    coordinator *c = ctx;
    const coordinator_progress *p = &c->p;
    metric(out, "tessera_tasks_done_total", "counter", "Tasks finished (every run of the job).", (double)p->tasks_done);
    metric(out, "tessera_tasks_dead_total", "counter", "Tasks given up and dead-lettered.", (double)p->tasks_dead);
    metric(out, "tessera_tasks_failed_total", "counter", "Failed task attempts this run (retried or given up).", (double)p->tasks_failed);
    metric(out, "tessera_tasks_leased", "gauge", "Tasks leased to workers now.", (double)leases_out(c));
    metric(out, "tessera_records_done_total", "counter", "Records finished (every run of the job).", (double)p->records_done);
    metric(out, "tessera_records_dead_total", "counter", "Records dead-lettered.", (double)p->records_dead);
    if (p->dataset_done) metric(out, "tessera_records", "gauge", "Records in the dataset (known once it is read).", (double)p->records_total);
    metric(out, "tessera_rejected_lines_total", "counter", "Dataset lines rejected.", (double)p->rejected);
    metric(out, "tessera_images_per_second", "gauge", "Records finished per second this run (images for render jobs).", p->records_per_s);
    metric(out, "tessera_leases_expired_total", "counter", "Leases that ran out.", (double)p->leases_expired);
    metric(out, "tessera_handed_back_total", "counter", "Leases workers handed back unstarted.", (double)p->handed_back);
    metric(out, "tessera_workers", "gauge", "Workers connected.", (double)zhashx_size(c->peers));
    metric(out, "tessera_draining", "gauge", "1 while the coordinator drains (preemption).", c->draining);
    metric(out, "tessera_job_complete", "gauge", "1 once every record is finished.", p->complete);
    fprintf(out, "# HELP tessera_queue_depth Tasks queued for a worker, by stage.\n# TYPE tessera_queue_depth gauge\n");
    fprintf(out, "tessera_queue_depth{stage=\"expand\"} %llu\ntessera_queue_depth{stage=\"render\"} %llu\n",
            (unsigned long long)c->expand_q.len, (unsigned long long)c->render_q.len);
    fprintf(out, "# HELP tessera_failures_total Failed attempts this run by reason.\n# TYPE tessera_failures_total counter\n");
    for (int i = 0; i < MAX_REASONS && c->reasons[i].count; i++) {
        fputs("tessera_failures_total{reason=\"", out);
        metrics_label_value(out, c->reasons[i].reason);
        fprintf(out, "\"} %llu\n", (unsigned long long)c->reasons[i].count);
    }
    fprintf(out, "# HELP tessera_worker_records_total Records each worker finished this run.\n"
                 "# TYPE tessera_worker_records_total counter\n");
    for (worker_stats *w = zhashx_first(c->wstats); w; w = zhashx_next(c->wstats)) {
        fputs("tessera_worker_records_total{worker=\"", out);
        metrics_label_value(out, w->name);
        fprintf(out, "\",stage=\"%s\"} %llu\n", stage_name(w->stage), (unsigned long long)w->records);
    }
    fprintf(out, "# HELP tessera_worker_records_per_second Records per second of each worker since it joined.\n"
                 "# TYPE tessera_worker_records_per_second gauge\n");
    double now = ts_now();
    for (worker_stats *w = zhashx_first(c->wstats); w; w = zhashx_next(c->wstats)) {
        fputs("tessera_worker_records_per_second{worker=\"", out);
        metrics_label_value(out, w->name);
        fprintf(out, "\",stage=\"%s\"} %.6g\n", stage_name(w->stage),
                now > w->joined ? (double)w->records / (now - w->joined) : 0.0);
    }
}

/* ---------- reading the dataset into tasks ---------- */

static void take_record(crecord *r, dataset_record *d, uint64_t index) {
    r->id = d->id; r->prompt = d->prompt; r->negative = d->negative; r->params = d->params_json;
    r->seed = d->seed; r->index = index; r->expanded = NULL; r->fallback = NULL;
    memset(d, 0, sizeof *d);
}

/* The rule for duplicate ids (id_set.h): the later line is rejected, naming the first. */
static void reject_duplicate(coordinator *c, uint64_t first_line) {
    c->duplicates++;
    char why[160];
    snprintf(why, sizeof why, "duplicate id (first on line %llu)", (unsigned long long)first_line);
    log_debug("%s:%llu: rejected: %s", c->job->dataset, (unsigned long long)c->rec.line, why);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "line", (double)c->rec.line);
    cJSON_AddStringToObject(o, "reason", why);
    cJSON_AddStringToObject(o, "id", c->rec.id);
    char *s = cJSON_PrintUnformatted(o);
    if (!c->storage_failed && (fprintf(c->rejects, "%s\n", s) < 0 || fflush(c->rejects) != 0)) {
        ts_fail("%s: %s", c->path_rejects, strerror(errno));
        storage_fail(c, ts_last_error());
    }
    free(s);
    cJSON_Delete(o);
}

/* Reads one task's records; returns 0 when the dataset ended before any record. */
static int read_task(coordinator *c) {
    uint64_t id = c->next_task;
    int n = 0, cap = (int)c->job->task_size;
    crecord *recs = NULL;
    int skip = id < c->watermark; /* finished in an earlier run and forgotten */
    task *t = find_task(c, id);
    int finished = t && terminal(t);
    while (n < cap) {
        int rc = dataset_next(c->ds, &c->rec);
        if (rc < 0 && output_storage_error_text(ts_last_error())) { /* the rejects file: the disk is full */
            storage_fail(c, ts_last_error());
            free(recs);
            return 0;
        }
        if (rc < 0) { /* a truncated .gz, an I/O error: stop rather than finish short */
            c->read_error = 1;
            snprintf(c->read_error_text, sizeof c->read_error_text, "%s", ts_last_error());
            free(recs);
            return 0;
        }
        if (rc == 0) { c->dataset_done = 1; break; }
        uint64_t first = id_set_add(c->ids, c->rec.id, c->rec.line);
        if (first) { reject_duplicate(c, first); continue; }
        if (!finished && !skip) {
            if (!recs) recs = ts_calloc((size_t)cap, sizeof *recs);
            take_record(&recs[n], &c->rec, c->records_read);
        }
        n++;
        c->records_read++;
    }
    if (c->dataset_done) {
        c->p.records_total = c->records_read;
        c->p.rejected = dataset_rejected(c->ds) + c->duplicates;
        c->p.dataset_done = 1;
        journal_entry e = {.type = J_TOTAL, .task = c->next_task + (n > 0), .a = c->records_read, .b = c->p.rejected};
        if (!c->storage_failed && journal_append(c->journal, &e) < 0) storage_fail(c, ts_last_error());
        if (c->packer) shard_packer_set_total(c->packer, c->records_read);
    }
    if (n == 0) { free(recs); return 0; }
    c->next_task++;
    if (finished || skip) { free(recs); return 1; }
    c->need_dispatch = 1;
    t = get_or_create(c, id);
    t->recs = recs;
    t->n = n;
    t->loaded = 1;
    task_event ev = c->expand_stage ? TASK_EV_QUEUE_EXPAND : TASK_EV_QUEUE_RENDER;
    if (t->n_replayed == (uint32_t)n && c->render_stage) {
        for (int i = 0; i < n; i++) { t->recs[i].expanded = t->replayed[i]; t->replayed[i] = NULL; }
        ev = TASK_EV_QUEUE_RENDER; /* expanded in an earlier run */
    }
    task_transition(c, t, ev, NULL, NULL);
    return 1;
}

/* Keeps enough tasks queued that no worker starves, within the window. */
static void fill_queues(coordinator *c) {
    uint64_t ahead = 256;
    if (c->draining) return;
    while (!c->dataset_done && !c->read_error && c->next_task < c->watermark + (uint64_t)c->job->window &&
           c->expand_q.len + c->render_q.len < ahead) {
        if (c->next_task >= c->watermark + c->cap) grow_ring(c, c->next_task - c->watermark + 1);
        if (!read_task(c)) break;
    }
}

/* ---------- sending ---------- */

static void send_to(coordinator *c, worker_peer *w, ts_envelope *env) {
    size_t n;
    uint8_t *buf = wire_encode(env, &n);
    if (!buf) { log_error("message to %s over the size limit; not sent", w->key); return; }
    zmq_send(c->raw, zframe_data(w->identity), zframe_size(w->identity), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(c->raw, buf, n, ZMQ_DONTWAIT);
    free(buf);
}

static void send_task(coordinator *c, worker_peer *w, task *t, int stage) {
    const job_spec *j = c->job;
    Tessera__Settings settings = TESSERA__SETTINGS__INIT;
    settings.width = (uint32_t)j->width; settings.height = (uint32_t)j->height;
    settings.steps = (uint32_t)j->steps; settings.cfg = (float)j->cfg;
    settings.sampler = (char *)j->sampler;
    settings.output_dir = (char *)j->output;
    settings.layout = (char *)j->layout;
    settings.shard_size = (uint32_t)j->shard_size;
    settings.expander = (char *)j->expander;
    settings.diffusion = (char *)j->diffusion;
    Tessera__Record *recs = ts_calloc((size_t)t->n, sizeof *recs);
    Tessera__Record **ptrs = ts_calloc((size_t)t->n, sizeof *ptrs);
    for (int i = 0; i < t->n; i++) {
        crecord *r = &t->recs[i];
        tessera__record__init(&recs[i]);
        recs[i].id = r->id; recs[i].prompt = r->prompt; recs[i].negative = r->negative;
        recs[i].seed = r->seed; recs[i].params_json = r->params; recs[i].index = r->index;
        recs[i].expanded = r->expanded ? r->expanded : (char *)"";
        ptrs[i] = &recs[i];
    }
    Tessera__Task msg = TESSERA__TASK__INIT;
    msg.task_id = t->id;
    msg.lease_id = t->lease_id = ++c->lease_counter;
    msg.stage = (Tessera__Stage)stage;
    msg.lease_ms = (uint32_t)(j->lease_seconds * 1000);
    msg.n_records = (size_t)t->n;
    msg.records = ptrs;
    msg.settings = &settings;
    ts_envelope env = TESSERA__ENVELOPE__INIT;
    env.body_case = TESSERA__ENVELOPE__BODY_TASK;
    env.task = &msg;
    send_to(c, w, &env);
    free(recs); free(ptrs);
    t->deadline = ts_now() + j->lease_seconds;
}

static void dispatch(coordinator *c, worker_peer *w) {
    if (c->draining) return; /* preempted: what is leased finishes or comes back; nothing new goes out */
    task_queue *q = w->stage == TESSERA__STAGE__STAGE_EXPAND ? &c->expand_q : &c->render_q;
    while (w->credit > 0 && q->len > 0) {
        task *t = pop(q);
        if (task_transition(c, t, TASK_EV_LEASE, NULL, NULL) < 0) continue;
        send_task(c, w, t, w->stage);
        t->owner = w->key_hash;
        w->credit--;
        if (q->len == 0) fill_queues(c);
    }
}

static void dispatch_all(coordinator *c) {
    if (!c->need_dispatch) return;
    c->need_dispatch = 0;
    if (!c->expand_q.len && !c->render_q.len) return;
    for (worker_peer *w = zhashx_first(c->peers); w; w = zhashx_next(c->peers)) dispatch(c, w);
}

static void send_simple(coordinator *c, worker_peer *w, int shutdown) {
    ts_envelope env = TESSERA__ENVELOPE__INIT;
    Tessera__Heartbeat hb = TESSERA__HEARTBEAT__INIT;
    Tessera__Shutdown sd = TESSERA__SHUTDOWN__INIT;
    if (shutdown) {
        sd.reason = (char *)(c->p.complete ? "job complete" : "coordinator stopping");
        env.body_case = TESSERA__ENVELOPE__BODY_SHUTDOWN;
        env.shutdown = &sd;
    } else {
        env.body_case = TESSERA__ENVELOPE__BODY_HEARTBEAT;
        env.heartbeat = &hb;
    }
    send_to(c, w, &env);
}

/* ---------- task outcomes ---------- */

/* The dead-letter file's line for a task given up. */
static void dead_letter(coordinator *c, task *t) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "task", (double)t->id);
    cJSON *ids = cJSON_AddArrayToObject(o, "ids");
    for (int i = 0; i < t->n; i++) cJSON_AddItemToArray(ids, cJSON_CreateString(t->recs[i].id));
    cJSON_AddNumberToObject(o, "attempts", t->attempts);
    cJSON_AddStringToObject(o, "reasons", t->reasons);
    char *s = cJSON_PrintUnformatted(o);
    fprintf(c->dead, "%s\n", s);
    free(s);
    cJSON_Delete(o);
    log_warn("task %llu dead-lettered after %d attempts: %s", (unsigned long long)t->id, t->attempts, t->reasons);
}

/* Replayed expansions wait in t->replayed until the task's records are read again. */
static void keep_replayed(task *t, const journal_entry *e) {
    for (uint32_t i = 0; i < t->n_replayed; i++) free(t->replayed[i]);
    free(t->replayed);
    t->replayed = ts_calloc(e->nstr ? e->nstr : 1, sizeof *t->replayed);
    t->n_replayed = e->nstr;
    for (uint32_t i = 0; i < e->nstr; i++) t->replayed[i] = ts_strdup(e->str[i]);
}

/* The one place a task's state changes: the (state, event) pair is looked up in the table
 * of task_state.c and the entry's actions are done here, in this order: attempt counted,
 * journal entries (J_EXPANDED, J_FAILED, dead letter + J_DEAD, J_DONE), the new state,
 * queueing, and for a terminal state the counts, the shard packer and the watermark.
 * reason: why an attempt failed (failed, give_up). e: the journal entry being replayed
 * (replay_* events; nothing is written then). An illegal pair changes nothing and is an
 * error naming the task, its state and the event. J_DONE / J_DEAD record the manifest's and
 * the dead-letter file's sizes after the task's lines, so a restart can cut lines whose
 * entry never reached the journal. */
static int task_transition(coordinator *c, task *t, task_event ev, const char *reason, const journal_entry *e) {
    task_step step;
    if (task_state_step(t->state, ev, &step) < 0) {
        ts_fail("task %llu: illegal transition: event '%s' in state '%s'", (unsigned long long)t->id,
                task_event_name(ev), task_state_name(t->state));
        log_error("%s", ts_last_error());
        return -1;
    }
    unsigned act = step.actions;
    if (e && ev == TASK_EV_REPLAY_EXPANDED) keep_replayed(t, e);
    if (e && ev == TASK_EV_REPLAY_FAILED) { /* attempts and reasons survive restarts, for the dead-letter file */
        t->attempts = (int)e->a;
        if (e->nstr) append_reason(t, e->str[0]);
    }
    if (act & TASK_ACT_COUNT_ATTEMPT) {
        t->attempts++;
        c->p.tasks_failed++;
        count_reason(c, reason);
        append_reason(t, reason);
        log_debug("task %llu attempt %d failed: %s", (unsigned long long)t->id, t->attempts, reason);
    }
    if (act & TASK_ACT_JOURNAL_FAILED) journal_simple(c, J_FAILED, t->id, (uint64_t)t->attempts, 0, reason);
    if (act & TASK_ACT_JOURNAL_EXPANDED) {
        const char **texts = ts_calloc((size_t)t->n, sizeof *texts);
        for (int i = 0; i < t->n; i++) texts[i] = t->recs[i].expanded;
        journal_entry je = {.type = J_EXPANDED, .task = t->id, .a = (uint64_t)t->n, .nstr = (uint32_t)t->n, .str = texts};
        if (!c->storage_failed && journal_append(c->journal, &je) < 0) storage_fail(c, ts_last_error());
        free(texts);
    }
    if (act & TASK_ACT_JOURNAL_DEAD) dead_letter(c, t);
    if (act & (TASK_ACT_JOURNAL_DONE | TASK_ACT_JOURNAL_DEAD)) {
        uint64_t size = (uint64_t)ftell(c->manifest); /* counts stdio's buffer: flushed at commit */
        char dead_size[24];
        snprintf(dead_size, sizeof dead_size, "%lld", (long long)ftell(c->dead));
        journal_simple(c, act & TASK_ACT_JOURNAL_DONE ? J_DONE : J_DEAD, t->id, (uint64_t)t->n, size, dead_size);
    }
    task_state from = t->state;
    t->state = step.to;
    if ((from == TASK_EXPANDING || from == TASK_RENDERING) && !leased(t)) t->lease_id = 0;
    if (act & TASK_ACT_QUEUE) {
        push(step.to == TASK_WAIT_EXPAND ? &c->expand_q : &c->render_q, t);
        c->need_dispatch = 1;
    }
    if (act & TASK_ACT_FINISH) {
        uint64_t n = e ? e->a : (uint64_t)t->n;
        if (step.to == TASK_DONE) { c->p.records_done += n; c->p.tasks_done++; }
        else { c->p.records_dead += n; c->p.tasks_dead++; }
        if (e) {
            c->manifest_size_replayed = e->b;
            if (e->nstr) c->dead_size_replayed = strtoull(e->str[0], NULL, 10);
        }
        if (c->packer) shard_packer_add(c->packer, e ? e->task * (uint64_t)c->job->task_size : t->recs[0].index, n);
        advance_watermark(c); /* may free t */
    }
    return 0;
}

/* An attempt failed: back to the queue while retries are left, else dead-lettered. */
static void fail_task(coordinator *c, task *t, const char *reason) {
    task_event ev = t->attempts + 1 < c->job->retries ? TASK_EV_FAILED : TASK_EV_GIVE_UP;
    task_transition(c, t, ev, reason, NULL);
}

/* A result of n records came from w (per-worker throughput). */
static void credit_worker(coordinator *c, worker_peer *w, int n) {
    if (!w || !w->stats) return;
    w->stats->tasks++;
    w->stats->records += (uint64_t)n;
    w->stats->last_result = ts_now();
    (void)c;
}

/* Integers go in as raw JSON: exact for 64-bit seeds, and without cJSON's printf+sscanf
 * round trip, which was the coordinator's hottest path. */
static void add_u64(cJSON *o, const char *name, uint64_t v) {
    char buf[24], *p = buf + sizeof buf - 1;
    *p = 0;
    do { *--p = (char)('0' + v % 10); v /= 10; } while (v);
    cJSON_AddRawToObject(o, name, p);
}

static void manifest_line(coordinator *c, const crecord *r, const Tessera__RecordResult *rr) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", r->id);
    if (!strcmp(c->job->kind, "recaption")) {
        cJSON_AddStringToObject(o, "caption", r->prompt);
        cJSON_AddStringToObject(o, "expanded", rr->expanded);
        if (rr->expand_fallback && rr->expand_fallback[0]) cJSON_AddStringToObject(o, "expand_fallback", rr->expand_fallback);
    } else {
        cJSON_AddStringToObject(o, "prompt", r->prompt);
        if (r->expanded) cJSON_AddStringToObject(o, "expanded", r->expanded);
        if (r->fallback) cJSON_AddStringToObject(o, "expand_fallback", r->fallback);
        if (r->negative[0]) cJSON_AddStringToObject(o, "negative", r->negative);
        cJSON_AddStringToObject(o, "file", rr->file);
        cJSON_AddStringToObject(o, "sha256", rr->sha256);
        add_u64(o, "render_ms", rr->render_ms);
    }
    add_u64(o, "seed", r->seed);
    add_u64(o, "index", r->index);
    if (r->params[0]) {
        cJSON *params = cJSON_Parse(r->params);
        if (params) cJSON_AddItemToObject(o, "params", params);
    }
    char *s = cJSON_PrintUnformatted(o);
    fputs(s, c->manifest);
    fputc('\n', c->manifest);
    free(s);
    cJSON_Delete(o);
}

static void on_result(coordinator *c, worker_peer *w, const Tessera__Result *res) {
    task *t = find_task(c, res->task_id);
    if (!t || t->lease_id != res->lease_id || !leased(t)) {
        c->p.stale_results++; /* an expired lease's late result, or a duplicate */
        return;
    }
    /* the storage failed under the worker, not the task: stop rather than dead-letter it */
    if (res->error && output_storage_error_text(res->error)) { storage_fail(c, res->error); return; }
    for (size_t i = 0; i < res->n_records; i++)
        if (res->records[i]->error && output_storage_error_text(res->records[i]->error)) {
            storage_fail(c, res->records[i]->error);
            return;
        }
    if (c->draining) c->drain_results++;
    if (w && w->stats && ((res->error && res->error[0]) || res->n_records != (size_t)t->n)) w->stats->failures++;
    if (res->error && res->error[0]) { fail_task(c, t, res->error); return; }
    if (res->n_records != (size_t)t->n) { fail_task(c, t, "protocol: result has the wrong number of records"); return; }
    for (int i = 0; i < t->n; i++) {
        const Tessera__RecordResult *rr = res->records[i];
        if (strcmp(rr->id, t->recs[i].id)) { fail_task(c, t, "protocol: result record ids do not match the task"); return; }
        if (rr->error && rr->error[0]) {
            char why[512];
            snprintf(why, sizeof why, "%s (record %s)", rr->error, rr->id);
            fail_task(c, t, why);
            return;
        }
    }
    int recaption = !strcmp(c->job->kind, "recaption");
    if (t->state == TASK_EXPANDING) {
        for (int i = 0; i < t->n; i++) {
            free(t->recs[i].expanded);
            t->recs[i].expanded = ts_strdup(res->records[i]->expanded);
            const char *fb = res->records[i]->expand_fallback;
            free(t->recs[i].fallback);
            t->recs[i].fallback = fb && fb[0] ? ts_strdup(fb) : NULL;
            if (t->recs[i].fallback) count_in(c->fallbacks, fb);
        }
        if (!recaption) { credit_worker(c, w, t->n); task_transition(c, t, TASK_EV_EXPANDED, NULL, NULL); return; }
    }
    for (int i = 0; i < t->n; i++) manifest_line(c, &t->recs[i], res->records[i]);
    credit_worker(c, w, t->n);
    task_transition(c, t, TASK_EV_COMPLETED, NULL, NULL);
}

/* A lost worker's leases go back now (Paranoid Pirate), not when they run out: tasks sent
 * to a worker that had already reconnected under a new identity would otherwise wait a
 * whole lease. A late result from the old lease is stale and dropped, so nothing doubles. */
static void fail_tasks_of(coordinator *c, uint64_t owner, const char *why) {
    for (uint64_t id = c->watermark; id < c->next_task; id++) {
        task *t = find_task(c, id);
        if (t && t->owner == owner && leased(t)) fail_task(c, t, why);
    }
}

static void expire_leases(coordinator *c, double now) {
    for (uint64_t id = c->watermark; id < c->next_task; id++) {
        task *t = find_task(c, id);
        if (!t || !leased(t) || t->deadline > now) continue;
        c->p.leases_expired++;
        fail_task(c, t, "lease expired: worker lost or too slow");
    }
}

/* ---------- receiving ---------- */

static worker_peer *peer_for(coordinator *c, zmq_msg_t *id, int create) {
    static const char hex[] = "0123456789abcdef";
    char key[64];
    size_t n = zmq_msg_size(id);
    if (n > 24) n = 24;
    const uint8_t *b = zmq_msg_data(id);
    for (size_t i = 0; i < n; i++) { key[2 * i] = hex[b[i] >> 4]; key[2 * i + 1] = hex[b[i] & 15]; }
    key[2 * n] = 0;
    worker_peer *w = zhashx_lookup(c->peers, key);
    if (!w && create) {
        w = ts_calloc(1, sizeof *w);
        snprintf(w->key, sizeof w->key, "%s", key);
        w->key_hash = 1469598103934665603ull;
        for (const char *p = key; *p; p++) w->key_hash = (w->key_hash ^ (uint8_t)*p) * 1099511628211ull;
        w->identity = zframe_new(zmq_msg_data(id), zmq_msg_size(id));
        zhashx_insert(c->peers, key, w);
        w->stats = zhashx_lookup(c->wstats, key);
        if (!w->stats) {
            w->stats = ts_calloc(1, sizeof *w->stats);
            snprintf(w->stats->name, sizeof w->stats->name, "%.16s", key);
            w->stats->joined = ts_now();
            zhashx_insert(c->wstats, key, w->stats);
        }
    }
    return w;
}

static void free_stats(void **item) { free(*item); *item = NULL; }

/* A worker's Hello names it. A worker that reconnects comes back under a new identity with
 * the same name: its row of stats (stats.json, /metrics) goes on where it was, now under the
 * new identity, instead of a second row. */
static void name_worker(coordinator *c, worker_peer *w, const char *name) {
    worker_stats *same = NULL;
    const char *same_key = NULL;
    for (worker_stats *s = zhashx_first(c->wstats); s; s = zhashx_next(c->wstats))
        if (s != w->stats && !strncmp(s->name, name, sizeof s->name - 1)) { same = s; same_key = zhashx_cursor(c->wstats); break; }
    if (!same) { snprintf(w->stats->name, sizeof w->stats->name, "%s", name); return; }
    same->tasks += w->stats->tasks;
    same->records += w->stats->records;
    same->failures += w->stats->failures;
    char old_key[64];
    snprintf(old_key, sizeof old_key, "%s", same_key);
    zhashx_delete(c->wstats, w->key); /* the fresh row (frees it) */
    zhashx_rename(c->wstats, old_key, w->key);
    w->stats = same;
}

static void peer_destroy(void **item) {
    worker_peer *w = *item;
    if (!w) return;
    zframe_destroy(&w->identity);
    free(w);
    *item = NULL;
}

static void on_message(coordinator *c, zmq_msg_t *id, zmq_msg_t *body) {
    c->p.msgs_received++;
    wire_status st;
    ts_envelope *env = wire_decode(zmq_msg_data(body), zmq_msg_size(body), &st);
    if (!env) {
        c->p.msgs_dropped++;
        if (st == WIRE_OVERSIZED) c->p.msgs_oversized++;
        else c->p.msgs_malformed++;
        return;
    }
    double now = ts_now();
    worker_peer *w = peer_for(c, id, env->body_case == TESSERA__ENVELOPE__BODY_HELLO ||
                                         env->body_case == TESSERA__ENVELOPE__BODY_WORK_REQUEST);
    if (w) w->last_seen = now;
    switch (env->body_case) {
    case TESSERA__ENVELOPE__BODY_HELLO: {
        const Tessera__Hello *h = env->hello;
        w->stage = 0;
        for (size_t i = 0; i < h->n_stages; i++) {
            int s = (int)h->stages[i];
            if ((s == TESSERA__STAGE__STAGE_RENDER && c->render_stage) || (s == TESSERA__STAGE__STAGE_EXPAND && c->expand_stage))
                if (!w->stage || s == TESSERA__STAGE__STAGE_RENDER) w->stage = s;
        }
        w->credit = 0;
        if (h->name && h->name[0]) name_worker(c, w, h->name);
        w->stats->stage = w->stage;
        log_info("worker %s (%s) joined for %s", w->key, h->name,
                 w->stage == TESSERA__STAGE__STAGE_EXPAND ? "expand" : w->stage ? "render" : "nothing this job needs");
        break;
    }
    case TESSERA__ENVELOPE__BODY_WORK_REQUEST: {
        int s = (int)env->work_request->stage;
        if ((s == TESSERA__STAGE__STAGE_RENDER && c->render_stage) || (s == TESSERA__STAGE__STAGE_EXPAND && c->expand_stage))
            w->stage = s;
        if (w->stage) {
            w->credit = env->work_request->credit > 1024 ? 1024 : env->work_request->credit;
            w->stats->stage = w->stage;
            dispatch(c, w);
        }
        break;
    }
    case TESSERA__ENVELOPE__BODY_HEARTBEAT:
        for (size_t i = 0; i < env->heartbeat->n_task_ids; i++) {
            task *t = find_task(c, env->heartbeat->task_ids[i]);
            if (t && leased(t)) t->deadline = now + c->job->lease_seconds;
        }
        break;
    case TESSERA__ENVELOPE__BODY_RESULT:
        on_result(c, w, env->result);
        break;
    case TESSERA__ENVELOPE__BODY_HAND_BACK:
        for (size_t i = 0; i < env->hand_back->n_task_ids; i++) {
            task *t = find_task(c, env->hand_back->task_ids[i]);
            if (t && w && t->owner == w->key_hash && leased(t) && task_transition(c, t, TASK_EV_HAND_BACK, NULL, NULL) == 0) {
                c->p.handed_back++;
                if (c->draining) c->drain_handed_back++;
            }
        }
        break;
    default:
        c->p.msgs_dropped++; /* a Task or Shutdown sent to the coordinator: not for us */
        break;
    }
    wire_free(env);
}

/* Drains what is waiting on the socket (bounded, so timers still run). */
static void receive(coordinator *c, int timeout_ms) {
    zmq_pollitem_t item = {c->raw, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, timeout_ms) <= 0) return;
    for (int k = 0; k < 4096; k++) {
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        if (zmq_msg_recv(&id, c->raw, ZMQ_DONTWAIT) < 0) { zmq_msg_close(&id); return; }
        if (!zmq_msg_more(&id)) { zmq_msg_close(&id); continue; }
        zmq_msg_init(&body);
        zmq_msg_recv(&body, c->raw, 0);
        int extra = zmq_msg_more(&body);
        if (!extra) on_message(c, &id, &body);
        else {
            /* more than one body frame: not our protocol; drain and count */
            c->p.msgs_received++; c->p.msgs_dropped++; c->p.msgs_malformed++;
            while (zmq_msg_more(&body)) { zmq_msg_close(&body); zmq_msg_init(&body); zmq_msg_recv(&body, c->raw, 0); }
        }
        zmq_msg_close(&body);
        zmq_msg_close(&id);
    }
}

/* ---------- timers ---------- */

static void tick(coordinator *c, double now) {
    metrics_server_poll(c->metrics, render_metrics, c);
    if (now - c->last_tick < 0.05) return;
    c->last_tick = now;
    group_commit(c);
    if (c->storage_failed) return;
    expire_leases(c, now);
    if (now - c->last_heartbeat >= c->job->heartbeat_seconds) {
        c->last_heartbeat = now;
        double dead_after = c->job->heartbeat_seconds * 5;
        worker_peer *w = zhashx_first(c->peers);
        while (w) {
            if (now - w->last_seen > dead_after) {
                log_info("worker %s silent for %.1f s; forgotten", w->key, now - w->last_seen);
                fail_tasks_of(c, w->key_hash, "worker lost: silent past its heartbeats");
                zhashx_delete(c->peers, w->key);
                w = zhashx_first(c->peers); /* restart: the cursor is invalid after a delete */
                continue;
            }
            send_simple(c, w, 0);
            w = zhashx_next(c->peers);
        }
    }
    if (c->packer && !c->storage_failed && shard_packer_pack_ready(c->packer, c->journal, commit_cb, c) < 0)
        storage_fail(c, ts_last_error());
    c->p.workers = zhashx_size(c->peers);
    c->p.elapsed = now - c->started;
    uint64_t fresh = c->p.records_done - c->done_at_start;
    c->p.records_per_s = c->p.elapsed > 0 ? fresh / c->p.elapsed : 0;
    if (!c->dataset_done) c->p.rejected = (c->ds ? dataset_rejected(c->ds) : 0) + c->duplicates;
    if (now - c->last_stats >= 5) { c->last_stats = now; write_stats(c); }
    if (c->opt->progress && now - c->last_progress >= 0.5) {
        c->last_progress = now;
        c->opt->progress(&c->p, c->opt->progress_ctx);
    }
}

/* ---------- set-up ---------- */

/* Writes PATH by temp-then-rename, so a reader never sees half of it. */
static int write_whole(const char *path, const char *text) {
    char tmp[1400];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int ok = f && fputs(text, f) >= 0;
    ok = f && fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) < 0) {
        int err = errno;
        unlink(tmp);
        return ts_fail("%s: %s", path, strerror(err));
    }
    return 0;
}

/* job key publish=DIR: DIR/endpoint (tcp://HOST:PORT, the address workers on other nodes
 * connect to: this host's name, or TESSERA_PUBLISH_HOST, and the port actually bound, so
 * tcp://\*:0 works) and DIR/server.cert (the CURVE public key). Workers of a heterogeneous job
 * wait for them on shared storage (jobs/tessera-het.sbatch). */
static int publish_address(coordinator *c) {
    const job_spec *j = c->job;
    if (coordinator_make_dirs(j->publish) < 0) return -1;
    char *bound = zsock_last_endpoint(c->router); /* tcp://0.0.0.0:PORT, the port as bound */
    const char *colon = bound ? strrchr(bound, ':') : NULL;
    char port[16] = "";
    if (bound && !strncmp(bound, "tcp://", 6) && colon) snprintf(port, sizeof port, "%s", colon + 1);
    free(bound);
    if (!port[0]) return ts_fail("publish: endpoint %s is not tcp://", j->endpoint);
    char host[256] = "";
    const char *env = getenv("TESSERA_PUBLISH_HOST");
    if (env && *env) snprintf(host, sizeof host, "%s", env);
    else if (gethostname(host, sizeof host - 1) < 0) return ts_fail("publish: gethostname: %s", strerror(errno));
    char path[1300], text[512];
    if (c->opt->curve) {
        char secret[1200];
        snprintf(secret, sizeof secret, "%s/server.cert_secret", j->keys);
        zcert_t *cert = zcert_load(secret);
        snprintf(path, sizeof path, "%s/server.cert", j->publish);
        char tmp[1400];
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        int rc = cert ? zcert_save_public(cert, tmp) : -1;
        zcert_destroy(&cert);
        if (rc < 0 || rename(tmp, path) < 0) { unlink(tmp); return ts_fail("%s: cannot write the public certificate", path); }
    }
    snprintf(path, sizeof path, "%s/endpoint", j->publish);
    snprintf(text, sizeof text, "tcp://%s:%s\n", host, port);
    if (write_whole(path, text) < 0) return -1;
    log_info("published tcp://%s:%s%s in %s", host, port, c->opt->curve ? " and server.cert" : "", j->publish);
    return 0;
}

static int setup_socket(coordinator *c) {
    const job_spec *j = c->job;
    c->router = zsock_new(ZMQ_ROUTER);
    if (!c->router) return ts_fail("cannot create ZeroMQ socket");
    zsock_set_rcvhwm(c->router, 0);
    zsock_set_sndhwm(c->router, 0);
    zsock_set_linger(c->router, 500);
    /* up to twice the limit arrives and is counted as oversized; libzmq cuts off a peer that
     * sends more than that, so a huge message never fills our memory */
    zsock_set_maxmsgsize(c->router, 2 * (int64_t)TS_WIRE_MAX_BYTES);
    if (c->opt->curve) {
        char path[1200], allow[1200];
        snprintf(path, sizeof path, "%s/server.cert_secret", j->keys);
        snprintf(allow, sizeof allow, "%s/allow", j->keys);
        zcert_t *cert = zcert_load(path);
        if (!cert) return ts_fail("%s: cannot load the server's secret certificate (make one with 'tessera keygen')", path);
        struct stat st;
        if (stat(allow, &st) < 0 || !S_ISDIR(st.st_mode)) { zcert_destroy(&cert); return ts_fail("%s: allow-list folder missing", allow); }
        c->auth = zactor_new(zauth, NULL);
        zstr_sendx(c->auth, "CURVE", allow, NULL);
        zsock_wait(c->auth);
        zcert_apply(cert, c->router);
        zsock_set_curve_server(c->router, 1);
        zcert_destroy(&cert);
    }
    const char *endpoint = j->endpoint[0] ? j->endpoint : "tcp://*:5555";
    if (zsock_bind(c->router, "%s", endpoint) < 0)
        return ts_fail("cannot bind %s: %s", endpoint, zmq_strerror(zmq_errno()));
    if (c->opt->extra_endpoint && zsock_bind(c->router, "%s", c->opt->extra_endpoint) < 0)
        return ts_fail("cannot bind %s: %s", c->opt->extra_endpoint, zmq_strerror(zmq_errno()));
    c->raw = zsock_resolve(c->router);
    if (j->publish[0] && publish_address(c) < 0) return -1;
    if (j->metrics[0]) {
        c->metrics = metrics_server_new(j->metrics);
        if (!c->metrics) return -1;
        log_info("metrics on %s (GET /metrics)", j->metrics);
    }
    return 0;
}

/* Truncates an output file to the size the journal vouches for (creating it if missing). */
static int cut_to(const char *path, uint64_t size) {
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return ts_fail("%s: %s", path, strerror(errno));
    struct stat st;
    fstat(fd, &st);
    if ((uint64_t)st.st_size > size) {
        log_warn("%s: cutting %llu bytes of lines not confirmed by the journal", path,
                 (unsigned long long)(st.st_size - size));
        if (ftruncate(fd, (off_t)size) < 0) { close(fd); return ts_fail("%s: %s", path, strerror(errno)); }
    } else if ((uint64_t)st.st_size < size) {
        log_warn("%s: shorter than the journal says (%llu < %llu bytes): lines were lost", path,
                 (unsigned long long)st.st_size, (unsigned long long)size);
    }
    close(fd);
    return 0;
}

int coordinator_take_force_unlock(int *argc, char **argv) {
    int found = 0, n = 0;
    for (int i = 0; i < *argc; i++) {
        if (i > 0 && !strcmp(argv[i], "--force-unlock")) { found = 1; continue; }
        argv[n++] = argv[i];
    }
    *argc = n;
    return found;
}

int coordinator_make_dirs(const char *path) {
    char p[4096];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) < 0 && errno != EEXIST) return ts_fail("%s: cannot create folder: %s", p, strerror(errno));
        *s = '/';
    }
    if (mkdir(p, 0755) < 0 && errno != EEXIST) return ts_fail("%s: cannot create folder: %s", p, strerror(errno));
    return 0;
}

/* A writer's temporary file (NAME.tmp.PID from workers, NAME.tmp from the packer and the
 * stats) whose writer died is never renamed into place; at start and once the job is
 * complete, with the folder locked, they are removed from the output folder, the staging
 * folders and the shard folders. */
static int is_temp_name(const char *name) {
    size_t n = strlen(name);
    return strstr(name, ".tmp.") != NULL || (n > 4 && !strcmp(name + n - 4, ".tmp"));
}

static int is_shard_folder(const char *name) {
    size_t n = strlen(name);
    if (n < 5) return 0;
    for (size_t i = 0; i < n; i++) if (name[i] < '0' || name[i] > '9') return 0;
    return 1;
}

static uint64_t remove_temps(const char *dir, int depth) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    uint64_t removed = 0;
    struct dirent *e;
    char path[4400];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (is_temp_name(e->d_name)) { if (unlink(path) == 0) removed++; continue; }
        if (depth == 0 && (is_shard_folder(e->d_name) || !strcmp(e->d_name, ".staging")))
            removed += remove_temps(path, strcmp(e->d_name, ".staging") ? 2 : 1);
        else if (depth == 1 && is_shard_folder(e->d_name)) {
            removed += remove_temps(path, 2);
            rmdir(path); /* a staging folder left empty: workers make it again when they write */
        }
    }
    closedir(d);
    return removed;
}

static int open_outputs(coordinator *c) {
    const job_spec *j = c->job;
    if (coordinator_make_dirs(j->output) < 0) return -1;
    c->lock = output_lock_take(j->output, j->endpoint[0] ? j->endpoint : "tcp://*:5555", c->opt->force_unlock);
    if (!c->lock) return -1;
    uint64_t stale = remove_temps(j->output, 0);
    if (stale) log_info("%s: removed %llu temporary files left by writers that died", j->output, (unsigned long long)stale);
    snprintf(c->path_journal, sizeof c->path_journal, "%s/journal.tsj", j->output);
    snprintf(c->path_manifest, sizeof c->path_manifest, "%s/manifest.jsonl", j->output);
    snprintf(c->path_stats, sizeof c->path_stats, "%s/stats.json", j->output);
    snprintf(c->path_rejects, sizeof c->path_rejects, "%s/rejects.jsonl", j->output);
    snprintf(c->path_dead, sizeof c->path_dead, "%s/dead_letter.jsonl", j->output);
    if (!strcmp(j->layout, "tar") && c->render_stage) c->packer = shard_packer_new(j->output, (uint64_t)j->shard_size);

    c->journal = journal_open(c->path_journal, replay_entry, c);
    if (!c->journal) return -1;
    c->p.records_resumed = c->done_at_start = c->p.records_done;
    if (c->p.records_done || c->p.records_dead)
        log_info("resuming: %llu records done and %llu dead-lettered in earlier runs",
                 (unsigned long long)c->p.records_done, (unsigned long long)c->p.records_dead);
    /* cut lines of tasks whose J_DONE / J_DEAD never reached the journal */
    if (cut_to(c->path_manifest, c->manifest_size_replayed) < 0 || cut_to(c->path_dead, c->dead_size_replayed) < 0)
        return -1;
    c->manifest = fopen(c->path_manifest, "a");
    c->dead = fopen(c->path_dead, "a");
    if (!c->manifest || !c->dead) return ts_fail("%s: cannot open output files: %s", j->output, strerror(errno));

    dataset_options o = {
        .format = dataset_format_from_name(j->format),
        .id_field = j->id_field, .prompt_field = j->prompt_field, .negative_field = j->negative_field,
        .seed_field = j->seed_field, .params_field = j->params_field,
        .max_line = (size_t)j->max_line, .job_seed = (uint64_t)j->seed,
        .rejects_path = c->path_rejects,
        .caption_style = j->caption_style, .caption_alt_text = j->caption_alt_text != 0,
    };
    /* the dataset is read again from the top, so its rejects are written again */
    FILE *r = fopen(c->path_rejects, "w");
    if (!r || fclose(r) != 0) return ts_fail("%s: %s", c->path_rejects, strerror(errno));
    c->ds = dataset_open(j->dataset, &o);
    if (!c->ds) return -1;
    c->ids = id_set_new();
    c->rejects = fopen(c->path_rejects, "a");
    if (!c->ids || !c->rejects) return ts_fail("%s: cannot open: %s", c->path_rejects, strerror(errno));
    /* str[1]: where this run ran, so the journal shows each Slurm restart */
    char where[256];
    const char *slurm_job = getenv("SLURM_JOB_ID"), *restart = getenv("SLURM_RESTART_COUNT");
    const char *array = getenv("SLURM_ARRAY_TASK_ID");
    char host[128] = "?";
    gethostname(host, sizeof host - 1);
    if (slurm_job)
        snprintf(where, sizeof where, "host=%s slurm_job=%s%s%s restart=%s", host, slurm_job, array ? " array_task=" : "",
                 array ? array : "", restart ? restart : "0");
    else snprintf(where, sizeof where, "host=%s pid=%d", host, (int)getpid());
    if (slurm_job) log_info("Slurm job %s%s%s, SLURM_RESTART_COUNT=%s", slurm_job, array ? " array task " : "",
                            array ? array : "", restart ? restart : "0 (first run)");
    const char *strs[2] = {j->kind, where};
    journal_entry e = {.type = J_START, .a = TS_WIRE_VERSION, .nstr = 2, .str = strs};
    return journal_append(c->journal, &e);
}

/* Closes an output file; a failure (the last buffered bytes did not reach the disk) is a
 * storage failure like any other. */
static void close_output(coordinator *c, FILE **f, const char *path) {
    if (*f && fclose(*f) != 0 && !c->storage_failed) {
        ts_fail("%s: %s", path, strerror(errno));
        storage_fail(c, ts_last_error());
    }
    *f = NULL;
}

static void teardown(coordinator *c) {
    if (c->journal) {
        if (group_commit(c) == 0) journal_destroy(&c->journal);
        else journal_abandon(&c->journal); /* what is pending may lack its manifest lines */
    }
    close_output(c, &c->manifest, c->path_manifest);
    close_output(c, &c->dead, c->path_dead);
    close_output(c, &c->rejects, c->path_rejects);
    id_set_destroy(&c->ids);
    dataset_destroy(&c->ds);
    dataset_record_clear(&c->rec);
    if (c->ring) for (uint64_t i = 0; i < c->cap; i++) if (c->ring[i].used) free_task(&c->ring[i]);
    free(c->ring);
    zhashx_destroy(&c->peers);
    zhashx_destroy(&c->wstats);
    metrics_server_destroy(&c->metrics);
    zsock_destroy(&c->router);
    zactor_destroy(&c->auth);
    shard_packer_destroy(&c->packer);
    output_lock_release(&c->lock); /* last: nothing of this run writes after it */
}

/* ---------- draining (preemption, time limits) ---------- */

/* SIGUSR1: lease nothing more; what is leased finishes (its result is journalled) or is
 * handed back; then the run ends with 3 and a requeued job resumes from the journal. */
static void start_drain(coordinator *c) {
    c->draining = 1;
    c->drain_started = ts_now();
    c->drain_leased = leases_out(c);
    log_info("draining: %llu tasks leased; leasing nothing more (waiting at most %.0f s)",
             (unsigned long long)c->drain_leased, c->job->drain_seconds);
    group_commit(c);
}

/* 1 once nothing is leased (or the drain's time is up); says how it went. */
static int drain_over(coordinator *c) {
    uint64_t out = leases_out(c);
    double took = ts_now() - c->drain_started;
    if (out && took < c->job->drain_seconds) return 0;
    log_info("drained in %.2f s: %llu tasks were leased: %llu finished, %llu handed back, %llu still out "
             "(done again after the restart); %llu records done in all", took, (unsigned long long)c->drain_leased,
             (unsigned long long)c->drain_results, (unsigned long long)c->drain_handed_back, (unsigned long long)out,
             (unsigned long long)c->p.records_done);
    return 1;
}

int coordinator_run(const coordinator_options *opt, coordinator_progress *final) {
    coordinator c;
    memset(&c, 0, sizeof c);
    c.opt = opt;
    c.job = opt->job;
    if (job_check(c.job) < 0) return -1;
    c.expand_stage = strcmp(c.job->kind, "render") != 0;
    c.render_stage = strcmp(c.job->kind, "recaption") != 0;
    c.cap = 64;
    while (c.cap < (uint64_t)c.job->window) c.cap *= 2;
    c.ring = ts_calloc(c.cap, sizeof *c.ring);
    c.peers = zhashx_new();
    zhashx_set_destructor(c.peers, peer_destroy);
    c.wstats = zhashx_new();
    zhashx_set_destructor(c.wstats, free_stats);
    c.lease_counter = (uint64_t)(wall_now() * 1e6) << 8; /* unique across restarts */
    c.started = ts_now();
    int rc = 0;
    if (open_outputs(&c) < 0 || setup_socket(&c) < 0) { rc = -1; goto out; }
    log_info("coordinator on %s: %s job, dataset %s, output %s", c.job->endpoint, c.job->kind, c.job->dataset, c.job->output);

    for (;;) {
        if (opt->stop && __atomic_load_n(opt->stop, __ATOMIC_RELAXED)) { rc = 1; break; }
        if (opt->drain && __atomic_load_n(opt->drain, __ATOMIC_RELAXED) && !c.draining) start_drain(&c);
        fill_queues(&c);
        if (c.read_error || c.storage_failed) { rc = -1; break; }
        dispatch_all(&c);
        receive(&c, 20);
        tick(&c, ts_now());
        if (c.storage_failed) { rc = -1; break; }
        int all_done = c.dataset_done && c.watermark >= c.next_task;
        if (all_done && c.packer) {
            if (shard_packer_pack_ready(c.packer, c.journal, commit_cb, &c) < 0) { storage_fail(&c, ts_last_error()); rc = -1; break; }
            all_done = shard_packer_idle(c.packer);
        }
        if (all_done) {
            c.p.complete = 1;
            char staging[1300];
            snprintf(staging, sizeof staging, "%s/.staging", c.job->output);
            rmdir(staging); /* empty once every shard is packed */
            /* a writer that died mid-job (kill -9 of a group's rank 0 mid-write) left its
             * temporary file; every record is in place now, so the folder holds only them */
            uint64_t stale = remove_temps(c.job->output, 0);
            if (stale)
                log_info("%s: removed %llu temporary files left by writers that died", c.job->output, (unsigned long long)stale);
            break;
        }
        if (opt->stop_after_tasks && c.p.tasks_done >= opt->stop_after_tasks) { rc = 1; break; }
        if (c.draining && drain_over(&c)) { rc = 3; break; }
    }
    /* tell the workers; on SIGINT they exit too (a later run resumes) */
    for (worker_peer *w = zhashx_first(c.peers); w; w = zhashx_next(c.peers)) send_simple(&c, w, 1);
    if (group_commit(&c) < 0) { rc = -1; c.p.complete = 0; }
    c.p.elapsed = ts_now() - c.started;
    c.p.workers = zhashx_size(c.peers);
    c.p.records_per_s = c.p.elapsed > 0 ? (c.p.records_done - c.done_at_start) / c.p.elapsed : 0;
    write_stats(&c);
    if (c.storage_failed) { rc = -1; c.p.complete = 0; }
    if (opt->progress) opt->progress(&c.p, opt->progress_ctx);
    if (c.p.complete)
        log_info("job complete: %llu records, %llu dead-lettered, %llu lines rejected",
                 (unsigned long long)c.p.records_done, (unsigned long long)c.p.records_dead, (unsigned long long)c.p.rejected);
out:
    teardown(&c);
    if (c.storage_failed) { rc = -1; c.p.complete = 0; }
    if (final) *final = c.p;
    if (c.read_error) ts_fail("reading the dataset: %s", c.read_error_text);
    else if (c.storage_failed)
        ts_fail("stopped on a storage failure: %s (everything journalled before it is kept; run the same "
                "command again once the storage is fixed to resume)", c.storage_error);
    return rc;
}
