/* shard_pack.c — counts finished records per shard and packs full shards into tars (see shard_pack.h). */
#include "coordinator/shard_pack.h"
#include "kernels/base.h"

#include <archive.h>
#include <archive_entry.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    uint64_t shard, finished;
    int packing;              /* handed to the packing thread */
} open_shard;

/* Packing reads and writes every file of a shard, so it runs on its own thread and the
 * coordinator's loop stays responsive; the main thread journals and forgets closed shards. */
typedef struct {
    uint64_t shard;
    int ok;
    char error[512];
} pack_job;

struct shard_packer {
    char *out;
    uint64_t size, total; /* total: 0 until the dataset has been read to its end */
    open_shard *open;
    size_t n, cap;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pack_job *todo, *done;    /* protected by lock */
    size_t n_todo, n_done, cap_todo, cap_done;
    int quit, started;
};

static void shard_paths(const shard_packer *p, uint64_t shard, char *dir, char *tar, char *name) {
    snprintf(name, 32, "%05llu.tar", (unsigned long long)shard);
    snprintf(dir, 4096, "%s/.staging/%05llu", p->out, (unsigned long long)shard);
    snprintf(tar, 4096, "%s/%s", p->out, name);
}

static void *pack_thread(void *arg) {
    shard_packer *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->n_todo && !p->quit) pthread_cond_wait(&p->wake, &p->lock);
        if (!p->n_todo) break;
        pack_job job = p->todo[0];
        memmove(p->todo, p->todo + 1, (p->n_todo - 1) * sizeof *p->todo);
        p->n_todo--;
        pthread_mutex_unlock(&p->lock);
        char dir[4096], tar[4096], name[32];
        shard_paths(p, job.shard, dir, tar, name);
        job.ok = shard_pack_folder(dir, tar) == 0;
        if (!job.ok) snprintf(job.error, sizeof job.error, "%s", ts_last_error());
        pthread_mutex_lock(&p->lock);
        if (p->n_done == p->cap_done) { p->cap_done = p->cap_done ? 2 * p->cap_done : 8; p->done = ts_realloc(p->done, p->cap_done * sizeof *p->done); }
        p->done[p->n_done++] = job;
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

shard_packer *shard_packer_new(const char *output_dir, uint64_t shard_size) {
    shard_packer *p = ts_calloc(1, sizeof *p);
    p->out = ts_strdup(output_dir);
    p->size = shard_size;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    p->started = pthread_create(&p->thread, NULL, pack_thread, p) == 0;
    return p;
}

void shard_packer_destroy(shard_packer **self) {
    shard_packer *p = *self;
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    p->quit = 1;
    p->n_todo = 0; /* shards not packed yet are packed by the next run */
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
    if (p->started) pthread_join(p->thread, NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    free(p->out); free(p->open); free(p->todo); free(p->done); free(p);
    *self = NULL;
}

static open_shard *find(shard_packer *p, uint64_t shard, int create) {
    for (size_t i = 0; i < p->n; i++) if (p->open[i].shard == shard) return &p->open[i];
    if (!create) return NULL;
    if (p->n == p->cap) { p->cap = p->cap ? p->cap * 2 : 16; p->open = ts_realloc(p->open, p->cap * sizeof *p->open); }
    p->open[p->n] = (open_shard){shard, 0, 0};
    return &p->open[p->n++];
}

static void drop(shard_packer *p, open_shard *s) { *s = p->open[--p->n]; }

void shard_packer_add(shard_packer *p, uint64_t first, uint64_t n) {
    while (n > 0) {
        uint64_t shard = first / p->size, end = (shard + 1) * p->size;
        uint64_t take = end - first < n ? end - first : n;
        find(p, shard, 1)->finished += take;
        first += take; n -= take;
    }
}

void shard_packer_mark_closed(shard_packer *p, uint64_t shard) {
    open_shard *s = find(p, shard, 0);
    if (s) drop(p, s);
}

void shard_packer_set_total(shard_packer *p, uint64_t total) { p->total = total; }

static uint64_t expected(const shard_packer *p, uint64_t shard) {
    if (!p->total) return p->size;
    uint64_t start = shard * p->size;
    if (start >= p->total) return 0;
    return p->total - start < p->size ? p->total - start : p->size;
}

static int pack_entry(struct archive *a, const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) return ts_fail("%s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = ts_malloc(n > 0 ? (size_t)n : 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_size(e, (la_int64_t)got);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_mtime(e, 0, 0); /* reproducible shards */
    int rc = 0;
    if (archive_write_header(a, e) != ARCHIVE_OK || archive_write_data(a, buf, got) != (la_ssize_t)got)
        rc = ts_fail("%s: tar: %s", path, archive_error_string(a));
    archive_entry_free(e);
    free(buf);
    return rc;
}

/* Skips hidden names and the temporary files of a writer that died mid-write (KEY.png.tmp.PID). */
static int is_member(const struct dirent *d) { return d->d_name[0] != '.' && !strstr(d->d_name, ".tmp."); }

int shard_pack_folder(const char *dir, const char *tar_path) {
    struct stat st;
    if (stat(dir, &st) < 0 && errno == ENOENT && stat(tar_path, &st) == 0)
        return 0; /* packed and cleaned up before; never rewrite a closed shard */
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", tar_path);
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    if (archive_write_open_filename(a, tmp) != ARCHIVE_OK) {
        int rc = ts_fail("%s: %s", tmp, archive_error_string(a));
        archive_write_free(a);
        return rc;
    }
    struct dirent **names = NULL;
    int n = scandir(dir, &names, is_member, alphasort); /* name order keeps key.* together */
    int rc = 0;
    for (int i = 0; i < n; i++) {
        if (rc == 0) rc = pack_entry(a, dir, names[i]->d_name);
        free(names[i]);
    }
    free(names);
    if (archive_write_close(a) != ARCHIVE_OK && rc == 0) rc = ts_fail("%s: %s", tmp, archive_error_string(a));
    archive_write_free(a);
    if (rc == 0 && rename(tmp, tar_path) < 0) rc = ts_fail("%s: rename: %s", tar_path, strerror(errno));
    if (rc < 0) unlink(tmp);
    return rc;
}

static void remove_folder(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[4200];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

int shard_packer_pack_ready(shard_packer *p, journal *j, int (*commit)(void *ctx), void *ctx) {
    /* hand full shards to the packing thread */
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->n; i++) {
        open_shard *s = &p->open[i];
        uint64_t want = expected(p, s->shard);
        if (s->packing || s->finished < want || (want == 0 && !p->total)) continue;
        s->packing = 1;
        if (p->n_todo == p->cap_todo) { p->cap_todo = p->cap_todo ? 2 * p->cap_todo : 8; p->todo = ts_realloc(p->todo, p->cap_todo * sizeof *p->todo); }
        p->todo[p->n_todo++] = (pack_job){.shard = s->shard};
        pthread_cond_signal(&p->wake);
    }
    pack_job *done = p->done;
    size_t n_done = p->n_done;
    p->done = NULL;
    p->n_done = p->cap_done = 0;
    pthread_mutex_unlock(&p->lock);
    /* journal the shards it closed */
    int rc = 0;
    for (size_t k = 0; k < n_done; k++) {
        open_shard *s = find(p, done[k].shard, 0);
        if (!s) continue;
        if (!done[k].ok) {
            rc = ts_fail("closing shard %llu: %s", (unsigned long long)done[k].shard, done[k].error);
            s->packing = 0; /* tried again at the next tick */
            continue;
        }
        char dir[4096], tar[4096], name[32];
        shard_paths(p, done[k].shard, dir, tar, name);
        const char *str = name;
        journal_entry e = {.type = J_SHARD, .task = done[k].shard, .nstr = 1, .str = &str};
        if (journal_append(j, &e) < 0) { rc = -1; continue; }
        done[k].ok = 2; /* journalled */
        log_debug("shard %s closed", name);
        drop(p, s);
    }
    /* the staging folders go only once their J_SHARD is on disk: a restart before that packs
     * the shard again from the same files */
    int any = 0;
    for (size_t k = 0; k < n_done; k++) any |= done[k].ok == 2;
    if (any && commit(ctx) < 0) rc = -1;
    else for (size_t k = 0; k < n_done; k++) {
        if (done[k].ok != 2) continue;
        char dir[4096], tar[4096], name[32];
        shard_paths(p, done[k].shard, dir, tar, name);
        remove_folder(dir);
    }
    free(done);
    return rc;
}

int shard_packer_idle(const shard_packer *p) { return p->n == 0; }
