/*
 * cmd_status.c — `tessera status OUT [--journal] [--verify]`: progress, rate and ETA from a
 * job's journal, and whether its output is whole; `tessera status --summary OUT...`: one
 * line per job (array tasks, many datasets) and their sums.
 *
 * It reads only the output folder, so it works from any node that mounts the shared
 * storage, while the job runs or after: the journal (counts, runs, failures by reason) and
 * the stats.json the coordinator rewrites every 5 s (per-worker throughput, leases, queues).
 *
 * "complete" means: no coordinator holds the folder (output_lock.h), the journal says every
 * record finished, has no torn tail, and the manifest, the shards and the journal agree (the
 * manifest is exactly as long as the journal vouches for and has one line per record done;
 * every shard the journal closed is there and no staging folder is left). --verify then
 * checks every record: each manifest line's file is in its shard (or a repair shard
 * NNNNN-rK.tar beside it) with the manifest's SHA-256, no id is listed twice, and no image in
 * the shards is missing from the manifest. Exit status: 0, or 1 when --verify finds a fault.
 */
#include "cli/commands.h"
#include "coordinator/journal.h"
#include "coordinator/output_lock.h"
#include "kernels/base.h"
#include "worker/output_writer.h" /* output_utf8_locale_enter */
#include "worker/record_files.h"  /* record_sha256_hex */

#include <archive.h>
#include <archive_entry.h>
#include <cjson/cJSON.h>
#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>

typedef struct {
    int dump;
    uint64_t runs, tasks_done, tasks_dead, records_done, records_dead, failures, expanded, shards;
    uint64_t total, rejected, run_done, rate_done;
    uint64_t manifest_size;   /* what the last J_DONE / J_DEAD vouches for */
    int total_known;
    double first, last, run_start, run_last, rate_span;
    zhashx_t *closed;         /* shard files the journal closed */
    zhashx_t *reasons;        /* failure bucket (text before ':') -> count, every run */
    char run_info[8][160];    /* where the first runs ran (J_START str[1]) */
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
        printf("%.3f %-8s task=%llu a=%llu b=%llu%s%s%s%s\n", e->time, type_name(e->type), (unsigned long long)e->task,
               (unsigned long long)e->a, (unsigned long long)e->b, e->nstr ? " " : "", e->nstr ? e->str[0] : "",
               e->type == J_START && e->nstr > 1 ? " " : "", e->type == J_START && e->nstr > 1 ? e->str[1] : "");
    switch (e->type) {
    case J_START:
        if (s->runs < 8) snprintf(s->run_info[s->runs], sizeof s->run_info[0], "%s", e->nstr > 1 ? e->str[1] : "");
        s->runs++; s->run_start = e->time; s->run_done = 0;
        break;
    case J_EXPANDED: s->expanded++; break;
    case J_DONE: s->tasks_done++; s->records_done += e->a; s->run_done += e->a; s->run_last = e->time; s->manifest_size = e->b; break;
    case J_DEAD: s->tasks_dead++; s->records_dead += e->a; s->run_done += e->a; s->run_last = e->time; s->manifest_size = e->b; break;
    case J_FAILED:
        s->failures++;
        if (e->nstr && s->reasons) { /* "render: out of memory on x" -> "render", as stats.json buckets them */
            char key[96];
            snprintf(key, sizeof key, "%s", e->str[0]);
            char *colon = strchr(key, ':');
            if (colon) *colon = 0;
            uintptr_t n = (uintptr_t)zhashx_lookup(s->reasons, key);
            zhashx_update(s->reasons, key, (void *)(n + 1));
        }
        break;
    case J_TOTAL: s->total = e->a; s->rejected = e->b; s->total_known = 1; break;
    case J_SHARD:
        s->shards++;
        if (e->nstr) zhashx_insert(s->closed, e->str[0], (void *)1);
        break;
    }
    /* the rate of the latest run that finished anything */
    if ((e->type == J_DONE || e->type == J_DEAD) && s->run_last > s->run_start) {
        s->rate_done = s->run_done;
        s->rate_span = s->run_last - s->run_start;
    }
    return 0;
}

/* Lines and bytes of the manifest; -1 if it cannot be read. */
static int manifest_counts(const char *out, uint64_t *lines, uint64_t *bytes) {
    char path[4200];
    snprintf(path, sizeof path, "%s/manifest.jsonl", out);
    *lines = *bytes = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return errno == ENOENT ? 0 : ts_fail("%s: %s", path, strerror(errno));
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        *bytes += n;
        for (size_t i = 0; i < n; i++) *lines += buf[i] == '\n';
    }
    int bad = ferror(f);
    fclose(f);
    return bad ? ts_fail("%s: read error", path) : 0;
}

/* Why the output and the journal disagree, or "" when they agree. */
static void check_agreement(const char *out, status *s, char *why, size_t cap) {
    why[0] = 0;
    uint64_t lines, bytes;
    if (manifest_counts(out, &lines, &bytes) < 0) { snprintf(why, cap, "%s", ts_last_error()); return; }
    if (bytes != s->manifest_size) {
        snprintf(why, cap, "manifest.jsonl has %llu bytes, the journal vouches for %llu", (unsigned long long)bytes,
                 (unsigned long long)s->manifest_size);
        return;
    }
    if (lines != s->records_done) {
        snprintf(why, cap, "manifest.jsonl has %llu lines for %llu records done", (unsigned long long)lines,
                 (unsigned long long)s->records_done);
        return;
    }
    char path[4200];
    struct stat st;
    for (const void *v = zhashx_first(s->closed); v; v = zhashx_next(s->closed)) {
        const char *name = zhashx_cursor(s->closed);
        snprintf(path, sizeof path, "%s/%s", out, name);
        if (stat(path, &st) < 0) { snprintf(why, cap, "shard %s is closed in the journal but missing", name); return; }
    }
    snprintf(path, sizeof path, "%s/.staging", out);
    if (stat(path, &st) == 0) snprintf(why, cap, "shards are still being packed (%s exists)", path);
}

/* ---------- --verify ---------- */

typedef struct {
    zhashx_t *want;       /* "SHARD/NAME" -> expected sha256 (malloc'ed) */
    zhashx_t *seen_ids;
    uint64_t records, missing, mismatched, stray, duplicated, twice;
    int shown;
} verify;

static void problem(verify *v, const char *fmt, const char *a, const char *b) {
    if (v->shown++ < 10) { printf("verify:    "); printf(fmt, a, b); printf("\n"); }
}

/* Checks one image (its shard's name without -rK, its member name, its bytes). */
static void check_image(verify *v, const char *shard, const char *name, const void *data, size_t n) {
    char key[4400], sha[65];
    snprintf(key, sizeof key, "%s/%s", shard, name);
    char *want = zhashx_lookup(v->want, key);
    if (!want) {
        /* a .txt or .json of a record is not an image; anything else the manifest lacks is */
        const char *dot = strrchr(name, '.');
        if (dot && (!strcmp(dot, ".txt") || !strcmp(dot, ".json"))) return;
        v->stray++;
        problem(v, "%s: an image no manifest line names (%s)", key, "stray");
        return;
    }
    if (!strcmp(want, "seen")) { v->twice++; problem(v, "%s: stored twice%s", key, ""); return; }
    record_sha256_hex(data, n, sha);
    if (strcmp(sha, want)) { v->mismatched++; problem(v, "%s: sha256 %s differs from the manifest's", key, sha); }
    zhashx_update(v->want, key, ts_strdup("seen"));
}

static int verify_tar(verify *v, const char *out, const char *file, const char *shard) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", out, file);
    locale_t old = output_utf8_locale_enter();
    if (!old) return -1;
    struct archive *a = archive_read_new();
    archive_read_support_format_tar(a);
    int rc = 0;
    if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
        rc = ts_fail("%s: %s", path, archive_error_string(a));
    } else {
        struct archive_entry *e;
        int r;
        char *buf = NULL;
        size_t cap = 0;
        while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
            size_t n = (size_t)archive_entry_size(e);
            if (n + 1 > cap) { cap = n + 1; buf = ts_realloc(buf, cap); }
            if (archive_read_data(a, buf, n) != (la_ssize_t)n) { r = ARCHIVE_FATAL; break; }
            check_image(v, shard, archive_entry_pathname(e), buf, n);
        }
        if (r != ARCHIVE_EOF) rc = ts_fail("%s: damaged tar: %s", path, archive_error_string(a));
        free(buf);
    }
    archive_read_free(a);
    output_utf8_locale_leave(old);
    return rc;
}

static int verify_folder(verify *v, const char *out, const char *shard) {
    char dir[4200], path[4500];
    snprintf(dir, sizeof dir, "%s/%s", out, shard);
    DIR *d = opendir(dir);
    if (!d) return ts_fail("%s: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strstr(e->d_name, ".tmp")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) { closedir(d); return ts_fail("%s: %s", path, strerror(errno)); }
        struct stat st;
        fstat(fileno(f), &st);
        char *buf = ts_malloc((size_t)st.st_size + 1);
        size_t n = fread(buf, 1, (size_t)st.st_size, f);
        fclose(f);
        check_image(v, shard, e->d_name, buf, n);
        free(buf);
    }
    closedir(d);
    return 0;
}

/* A shard file or folder: NNNNN.tar, NNNNN-rK.tar (checked as NNNNN.tar) or NNNNN/. */
static int verify_shards(verify *v, const char *out) {
    DIR *d = opendir(out);
    if (!d) return ts_fail("%s: %s", out, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        const char *n = e->d_name;
        size_t digits = strspn(n, "0123456789"), len = strlen(n);
        if (digits < 5) continue;
        char shard[64];
        if (len > 4 && !strcmp(n + len - 4, ".tar") && (n[digits] == '.' || n[digits] == '-') && digits < 40) {
            snprintf(shard, sizeof shard, "%.*s.tar", (int)digits, n);
            rc = verify_tar(v, out, n, shard);
        } else if (digits == len) {
            rc = verify_folder(v, out, n);
        }
    }
    closedir(d);
    return rc;
}

static void free_str(void **item) { free(*item); *item = NULL; }

static int run_verify(const char *out) {
    verify v = {.want = zhashx_new(), .seen_ids = zhashx_new()};
    zhashx_set_destructor(v.want, free_str);
    char path[4200], *line = NULL;
    size_t cap = 0;
    snprintf(path, sizeof path, "%s/manifest.jsonl", out);
    FILE *f = fopen(path, "rb");
    if (!f) { zhashx_destroy(&v.want); zhashx_destroy(&v.seen_ids); return ts_fail("%s: %s", path, strerror(errno)); }
    uint64_t lineno = 0;
    int rc = 0;
    while (getline(&line, &cap, f) > 0) {
        lineno++;
        cJSON *o = cJSON_Parse(line);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
        const cJSON *file = cJSON_GetObjectItemCaseSensitive(o, "file");
        const cJSON *sha = cJSON_GetObjectItemCaseSensitive(o, "sha256");
        if (!cJSON_IsString(id)) { rc = ts_fail("%s:%llu: not a manifest line", path, (unsigned long long)lineno); cJSON_Delete(o); break; }
        v.records++;
        if (zhashx_lookup(v.seen_ids, id->valuestring)) { v.duplicated++; problem(&v, "id '%s' is listed twice%s", id->valuestring, ""); }
        else zhashx_insert(v.seen_ids, id->valuestring, (void *)1);
        if (cJSON_IsString(file) && cJSON_IsString(sha)) zhashx_update(v.want, file->valuestring, ts_strdup(sha->valuestring));
        cJSON_Delete(o);
    }
    free(line);
    fclose(f);
    if (rc == 0) rc = verify_shards(&v, out);
    if (rc == 0) {
        for (char *s = zhashx_first(v.want); s; s = zhashx_next(v.want))
            if (strcmp(s, "seen")) { v.missing++; problem(&v, "%s: in the manifest, not in the shards%s", (const char *)zhashx_cursor(v.want), ""); }
        printf("verify:    %llu records: %llu missing, %llu sha256 mismatches, %llu ids listed twice, %llu images stored twice, "
               "%llu images outside the manifest\n", (unsigned long long)v.records, (unsigned long long)v.missing,
               (unsigned long long)v.mismatched, (unsigned long long)v.duplicated, (unsigned long long)v.twice,
               (unsigned long long)v.stray);
    }
    int bad = v.missing || v.mismatched || v.duplicated || v.twice || v.stray;
    zhashx_destroy(&v.want);
    zhashx_destroy(&v.seen_ids);
    return rc < 0 ? -1 : bad;
}

/* stats.json of a running (or finished) job: per-worker throughput, leases, queues. */
static void print_live(const char *out, double now) {
    char path[4200];
    snprintf(path, sizeof path, "%s/stats.json", out);
    FILE *f = fopen(path, "rb");
    if (!f) return;
    char *text = NULL;
    size_t cap = 0;
    ssize_t n = getdelim(&text, &cap, 0, f);
    fclose(f);
    cJSON *o = n > 0 ? cJSON_Parse(text) : NULL;
    free(text);
    if (!o) { printf("stats:     %s is not readable JSON (being rewritten?)\n", path); return; }
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(o, "written_at");
    const cJSON *leased = cJSON_GetObjectItemCaseSensitive(o, "tasks_leased");
    const cJSON *qe = cJSON_GetObjectItemCaseSensitive(o, "queue_expand"), *qr = cJSON_GetObjectItemCaseSensitive(o, "queue_render");
    const cJSON *rate = cJSON_GetObjectItemCaseSensitive(o, "records_per_s");
    const cJSON *draining = cJSON_GetObjectItemCaseSensitive(o, "draining");
    if (cJSON_IsNumber(at))
        printf("live:      stats.json of %.0f s ago: %.2f records/s this run, %d leased, queued %d expand / %d render%s\n",
               now - at->valuedouble, cJSON_IsNumber(rate) ? rate->valuedouble : 0.0,
               cJSON_IsNumber(leased) ? leased->valueint : 0, cJSON_IsNumber(qe) ? qe->valueint : 0,
               cJSON_IsNumber(qr) ? qr->valueint : 0, cJSON_IsTrue(draining) ? ", draining" : "");
    const cJSON *ws = cJSON_GetObjectItemCaseSensitive(o, "workers"), *w;
    if (cJSON_GetArraySize(ws) > 0)
        printf("workers:   %-28s %-7s %9s %7s %10s %8s\n", "name", "stage", "records", "tasks", "records/s", "failures");
    cJSON_ArrayForEach(w, ws) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(w, "name"), *stage = cJSON_GetObjectItemCaseSensitive(w, "stage");
        const cJSON *conn = cJSON_GetObjectItemCaseSensitive(w, "connected");
        printf("           %-28s %-7s %9.0f %7.0f %10.2f %8.0f%s\n", cJSON_IsString(name) ? name->valuestring : "?",
               cJSON_IsString(stage) ? stage->valuestring : "?", cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(w, "records")),
               cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(w, "tasks")),
               cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(w, "records_per_s")),
               cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(w, "failures")), cJSON_IsFalse(conn) ? "  (gone)" : "");
    }
    cJSON_Delete(o);
}

/* Replays OUT's journal into s and says whether a coordinator holds OUT (*running, owner). */
static int status_read(const char *out, status *s, uint64_t *torn, int *running, char *owner, size_t cap) {
    char path[4096];
    snprintf(path, sizeof path, "%s/journal.tsj", out);
    if (journal_replay(path, visit, s, torn) < 0) return -1;
    *running = output_lock_probe(out, owner, cap);
    if (*running < 0) { fprintf(stderr, "tessera status: %s\n", ts_last_error()); *running = 0; }
    return 0;
}

static double wall_now(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv.tv_sec + tv.tv_usec * 1e-6;
}

/* One word for a job's state, and why it is not complete (why[] empty when it agrees). */
static const char *job_state(const char *out, status *s, uint64_t torn, int running, double now, char *why, size_t cap) {
    why[0] = 0;
    int all_finished = s->total_known && s->records_done + s->records_dead >= s->total;
    if (running) return "running";
    if (all_finished) {
        if (torn) snprintf(why, cap, "the journal has a torn tail");
        else check_agreement(out, s, why, cap);
        return why[0] ? "incomplete" : "complete";
    }
    return now - s->last < 10 ? "running" : "stopped";
}

static void status_free(status *s) {
    zhashx_destroy(&s->closed);
    zhashx_destroy(&s->reasons);
}

/* `tessera status --summary OUT...`: a line per folder and the sums (job arrays). */
static int summary(int n, char **outs, int json) {
    uint64_t sum_done = 0, sum_dead = 0, sum_total = 0, sum_rejected = 0, sum_failures = 0, sum_runs = 0;
    int complete = 0, bad = 0, all_known = 1;
    double now = wall_now(), sum_rate = 0;
    cJSON *arr = json ? cJSON_CreateArray() : NULL;
    if (!json)
        printf("%-40s %-10s %9s %7s %9s %8s %8s %4s %9s\n", "output", "state", "done", "dead", "total", "rejected",
               "failures", "runs", "rec/s");
    for (int i = 0; i < n; i++) {
        status s = {.closed = zhashx_new(), .reasons = zhashx_new()};
        uint64_t torn = 0;
        int running = 0;
        char owner[1024], why[1024];
        if (status_read(outs[i], &s, &torn, &running, owner, sizeof owner) < 0) {
            fprintf(stderr, "tessera status: %s\n", ts_last_error());
            status_free(&s);
            bad = 1;
            continue;
        }
        const char *state = job_state(outs[i], &s, torn, running, now, why, sizeof why);
        double rate = s.rate_span > 0 ? s.rate_done / s.rate_span : 0;
        complete += !strcmp(state, "complete");
        all_known &= s.total_known;
        sum_done += s.records_done; sum_dead += s.records_dead; sum_total += s.total; sum_rejected += s.rejected;
        sum_failures += s.failures; sum_runs += s.runs;
        if (!strcmp(state, "running")) sum_rate += rate;
        if (json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "output", outs[i]);
            cJSON_AddStringToObject(o, "state", state);
            cJSON_AddNumberToObject(o, "records_done", (double)s.records_done);
            cJSON_AddNumberToObject(o, "records_dead", (double)s.records_dead);
            if (s.total_known) cJSON_AddNumberToObject(o, "records_total", (double)s.total);
            cJSON_AddNumberToObject(o, "rejected_lines", (double)s.rejected);
            cJSON_AddNumberToObject(o, "task_failures", (double)s.failures);
            cJSON_AddNumberToObject(o, "runs", (double)s.runs);
            cJSON_AddNumberToObject(o, "records_per_s", rate);
            cJSON_AddItemToArray(arr, o);
        } else {
            char total[32];
            if (s.total_known) snprintf(total, sizeof total, "%llu", (unsigned long long)s.total);
            else snprintf(total, sizeof total, "?");
            printf("%-40s %-10s %9llu %7llu %9s %8llu %8llu %4llu %9.2f\n", outs[i], state, (unsigned long long)s.records_done,
                   (unsigned long long)s.records_dead, total, (unsigned long long)s.rejected, (unsigned long long)s.failures,
                   (unsigned long long)s.runs, rate);
        }
        status_free(&s);
    }
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "jobs", arr);
        cJSON *t = cJSON_AddObjectToObject(o, "total");
        cJSON_AddNumberToObject(t, "jobs", n);
        cJSON_AddNumberToObject(t, "complete", complete);
        cJSON_AddNumberToObject(t, "records_done", (double)sum_done);
        cJSON_AddNumberToObject(t, "records_dead", (double)sum_dead);
        if (all_known) cJSON_AddNumberToObject(t, "records_total", (double)sum_total);
        cJSON_AddNumberToObject(t, "rejected_lines", (double)sum_rejected);
        cJSON_AddNumberToObject(t, "task_failures", (double)sum_failures);
        cJSON_AddNumberToObject(t, "runs", (double)sum_runs);
        cJSON_AddNumberToObject(t, "records_per_s", sum_rate);
        char *text = cJSON_Print(o);
        printf("%s\n", text);
        free(text);
        cJSON_Delete(o);
    } else {
        char total[32];
        if (all_known) snprintf(total, sizeof total, "%llu", (unsigned long long)sum_total);
        else snprintf(total, sizeof total, "?");
        char label[64];
        snprintf(label, sizeof label, "total (%d jobs, %d complete)", n, complete);
        printf("%-51s %9llu %7llu %9s %8llu %8llu %4llu %9.2f\n", label, (unsigned long long)sum_done,
               (unsigned long long)sum_dead, total, (unsigned long long)sum_rejected, (unsigned long long)sum_failures,
               (unsigned long long)sum_runs, sum_rate);
    }
    return bad ? 2 : 0;
}

int cmd_status(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        printf("usage: tessera status OUT [--journal] [--verify]\n"
               "       tessera status --summary [--json] OUT...\n"
               "Progress, rate and ETA of the job writing to OUT, read from OUT/journal.tsj\n"
               "(while it runs or after, from any node that sees OUT); per-worker throughput, leases\n"
               "and queues from OUT/stats.json; failures by reason. \"complete\" only when no\n"
               "coordinator runs on OUT and the manifest, the shards and the journal agree. --journal\n"
               "prints every journal entry first; --verify checks every record's file against the\n"
               "manifest and its sha256 (exit status 1 if any is missing, different, doubled or\n"
               "unlisted). --summary: one line per output folder (job arrays, many datasets) and\n"
               "their sums; --json prints it as JSON.\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--summary")) {
        int json = argc > 2 && !strcmp(argv[2], "--json");
        int first = 2 + json;
        if (first >= argc) { fprintf(stderr, "tessera status: --summary needs output folders\n"); return 2; }
        return summary(argc - first, argv + first, json);
    }
    status s = {.closed = zhashx_new(), .reasons = zhashx_new()};
    int verify_all = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--journal")) s.dump = 1;
        else if (!strcmp(argv[i], "--verify")) verify_all = 1;
        else { fprintf(stderr, "tessera status: unknown option '%s'\n", argv[i]); status_free(&s); return 2; }
    }
    const char *out = argv[1];
    uint64_t torn = 0;
    char owner[1024], why[1024] = "";
    int running = 0;
    if (status_read(out, &s, &torn, &running, owner, sizeof owner) < 0) {
        fprintf(stderr, "tessera status: %s\n", ts_last_error());
        status_free(&s);
        return 2;
    }
    double now = wall_now();
    double rate = s.rate_span > 0 ? s.rate_done / s.rate_span : 0;
    uint64_t finished = s.records_done + s.records_dead;
    int all_finished = s.total_known && finished >= s.total;
    const char *state = job_state(out, &s, torn, running, now, why, sizeof why);
    if (running) printf("job:       running (coordinator %s)\n", owner);
    else if (!strcmp(state, "complete")) printf("job:       complete\n");
    else if (!strcmp(state, "incomplete")) printf("job:       not complete: %s (run again to repair)\n", why);
    else printf("job:       %s\n", !strcmp(state, "running") ? "running" : "stopped (run again to resume)");
    printf("records:   %llu done, %llu dead-lettered, of %s", (unsigned long long)s.records_done,
           (unsigned long long)s.records_dead, s.total_known ? "" : "? (dataset not fully read yet)");
    if (s.total_known) printf("%llu (%.1f%%)", (unsigned long long)s.total, s.total ? 100.0 * finished / s.total : 100.0);
    printf("\ntasks:     %llu done, %llu dead, %llu failed attempts, %llu expanded\n", (unsigned long long)s.tasks_done,
           (unsigned long long)s.tasks_dead, (unsigned long long)s.failures, (unsigned long long)s.expanded);
    if (zhashx_size(s.reasons)) {
        printf("failures:");
        const char *sep = "  ";
        for (void *v = zhashx_first(s.reasons); v; v = zhashx_next(s.reasons)) {
            printf("%s%s %llu", sep, (const char *)zhashx_cursor(s.reasons), (unsigned long long)(uintptr_t)v);
            sep = ", ";
        }
        printf(" (by reason, every run)\n");
    }
    if (s.total_known) printf("rejected:  %llu dataset lines\n", (unsigned long long)s.rejected);
    if (s.shards) printf("shards:    %llu closed\n", (unsigned long long)s.shards);
    printf("runs:      %llu (coordinator starts)\n", (unsigned long long)s.runs);
    for (uint64_t r = 0; r < s.runs && r < 8; r++)
        if (s.run_info[r][0]) printf("           run %llu: %s\n", (unsigned long long)r + 1, s.run_info[r]);
    printf("rate:      %.2f records/s (the latest run that did work)\n", rate);
    if (s.total_known && !all_finished && rate > 0)
        printf("eta:       %.0f s\n", (double)(s.total - finished) / rate);
    if (torn) printf("journal:   %llu bytes of torn tail (cut at the next start)\n", (unsigned long long)torn);
    if (running || !strcmp(state, "running")) print_live(out, now);
    status_free(&s);
    if (!verify_all) return 0;
    int bad = run_verify(out);
    if (bad < 0) { fprintf(stderr, "tessera status: %s\n", ts_last_error()); return 2; }
    return bad ? 1 : 0;
}
