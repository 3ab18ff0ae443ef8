/* shard_pack.c — counts finished records per shard and packs full shards into tars (see shard_pack.h). */
#include "coordinator/shard_pack.h"
#include "kernels/base.h"
#include "worker/output_writer.h" /* output_utf8_locale_enter */

#include <archive.h>
#include <archive_entry.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

/* libarchive's message, with the system's reason when the message lacks it ("Write error"),
 * so a full disk reads as one (output_storage_error_text). */
static const char *tar_error(struct archive *a, char *buf, size_t cap) {
    const char *msg = archive_error_string(a);
    int err = archive_errno(a);
    if (!msg) msg = "error";
    if (err > 0 && !strstr(msg, strerror(err))) snprintf(buf, cap, "%s: %s", msg, strerror(err));
    else snprintf(buf, cap, "%s", msg);
    return buf;
}

/* Reads a whole staged file; its size in *n. NULL (ts_fail set) on error. */
static char *read_whole(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) { ts_fail("%s: %s", path, strerror(errno)); return NULL; }
    struct stat st;
    if (fstat(fileno(f), &st) < 0) { ts_fail("%s: %s", path, strerror(errno)); fclose(f); return NULL; }
    char *buf = ts_malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
    *n = fread(buf, 1, (size_t)st.st_size, f);
    int bad = ferror(f) || *n != (size_t)st.st_size;
    fclose(f);
    if (bad) { ts_fail("%s: short read", path); free(buf); return NULL; }
    return buf;
}

static int pack_entry(struct archive *a, const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t got;
    char *buf = read_whole(path, &got);
    if (!buf) return -1;
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name); /* UTF-8: the thread runs in C.UTF-8 (output_utf8_locale_enter) */
    archive_entry_set_size(e, (la_int64_t)got);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_mtime(e, 0, 0); /* reproducible shards */
    int rc = 0;
    if (archive_write_header(a, e) != ARCHIVE_OK || archive_write_data(a, buf, got) != (la_ssize_t)got)
        rc = ts_fail("%s: tar: %s", path, tar_error(a, (char[512]){0}, 512));
    archive_entry_free(e);
    free(buf);
    return rc;
}

/* Skips hidden names and the temporary files of a writer that died mid-write (KEY.png.tmp.PID). */
static int is_member(const struct dirent *d) { return d->d_name[0] != '.' && !strstr(d->d_name, ".tmp."); }

static int fsync_dir_of(const char *path) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0; else snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ts_fail("%s: %s", dir, strerror(errno));
    int rc = fsync(fd) < 0 && errno != EINVAL ? ts_fail("%s: fsync: %s", dir, strerror(errno)) : 0;
    close(fd);
    return rc;
}

/* Writes names[] (members of dir) into a new tar at tar_path: written to a temporary file,
 * fsynced, then linked into place, which fails rather than replace a tar already there. */
static int write_tar(const char *dir, struct dirent **names, int n, const char *tar_path) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", tar_path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return ts_fail("%s: %s", tmp, strerror(errno));
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    int rc = 0;
    char why[512];
    if (archive_write_open_fd(a, fd) != ARCHIVE_OK) rc = ts_fail("%s: %s", tmp, tar_error(a, why, sizeof why));
    for (int i = 0; i < n && rc == 0; i++)
        if (names[i]) rc = pack_entry(a, dir, names[i]->d_name);
    if (archive_write_close(a) != ARCHIVE_OK && rc == 0) rc = ts_fail("%s: %s", tmp, tar_error(a, why, sizeof why));
    archive_write_free(a);
    if (rc == 0 && fsync(fd) < 0) rc = ts_fail("%s: fsync: %s", tmp, strerror(errno));
    if (close(fd) < 0 && rc == 0) rc = ts_fail("%s: close: %s", tmp, strerror(errno));
    if (rc == 0 && link(tmp, tar_path) < 0)
        rc = errno == EEXIST ? ts_fail("%s: exists already; a closed shard is never rewritten", tar_path)
                             : ts_fail("%s: link: %s", tar_path, strerror(errno));
    unlink(tmp);
    if (rc == 0) rc = fsync_dir_of(tar_path);
    return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Member names of a closed tar, sorted (for bsearch); -1 if it cannot be read. */
static int tar_names(const char *tar_path, char ***out, size_t *count) {
    struct archive *a = archive_read_new();
    archive_read_support_format_tar(a);
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    if (archive_read_open_filename(a, tar_path, 1 << 16) != ARCHIVE_OK) {
        rc = ts_fail("%s: %s", tar_path, archive_error_string(a));
    } else {
        struct archive_entry *e;
        int r;
        while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
            if (n == cap) { cap = cap ? 2 * cap : 64; names = ts_realloc(names, cap * sizeof *names); }
            names[n++] = ts_strdup(archive_entry_pathname(e));
        }
        if (r != ARCHIVE_EOF) rc = ts_fail("%s: damaged tar: %s", tar_path, archive_error_string(a));
    }
    archive_read_free(a);
    qsort(names, n, sizeof *names, cmp_str);
    *out = names;
    *count = n;
    return rc;
}

/* A shard whose tar exists already (its J_SHARD was lost with a damaged journal, or the
 * coordinator died between the rename and the journal): the redone records staged for it
 * are checked against the tar. Those in it are dropped; any missing are said loudly and
 * written to a new tar NNNNN-rK.tar beside it, so nothing is lost and nothing rewritten. */
static int repack_closed(const char *dir, const char *tar_path, struct dirent **names, int n) {
    char **have = NULL;
    size_t n_have = 0;
    int rc = tar_names(tar_path, &have, &n_have);
    int missing = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        const char *name = names[i]->d_name;
        if (bsearch(&name, have, n_have, sizeof *have, cmp_str)) { free(names[i]); names[i] = NULL; }
        else missing++;
    }
    for (size_t i = 0; i < n_have; i++) free(have[i]);
    free(have);
    if (rc < 0 || missing == 0) return rc;
    char repair[4200], base[4200];
    snprintf(base, sizeof base, "%.*s", (int)(strlen(tar_path) - 4), tar_path); /* without ".tar" */
    struct stat st;
    for (int k = 1;; k++) {
        snprintf(repair, sizeof repair, "%s-r%d.tar", base, k);
        if (stat(repair, &st) < 0) break;
    }
    log_error("%s is closed but lacks %d of the files staged for it (journal damaged?): they go to %s",
             tar_path, missing, repair);
    return write_tar(dir, names, n, repair);
}

int shard_pack_folder(const char *dir, const char *tar_path) {
    struct stat st;
    int closed = stat(tar_path, &st) == 0;
    if (stat(dir, &st) < 0 && errno == ENOENT && closed)
        return 0; /* packed and cleaned up before; never rewrite a closed shard */
    locale_t old = output_utf8_locale_enter();
    if (!old) return -1;
    struct dirent **names = NULL;
    int n = scandir(dir, &names, is_member, alphasort); /* name order keeps key.* together */
    if (n < 0 && errno == ENOENT) n = 0; /* every record of the shard was dead-lettered: an empty tar */
    int rc = n < 0 ? ts_fail("%s: %s", dir, strerror(errno)) : 0;
    if (rc == 0) rc = closed ? repack_closed(dir, tar_path, names, n) : write_tar(dir, names, n, tar_path);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    output_utf8_locale_leave(old);
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
            s->packing = 0; /* the coordinator stops on this error; the next run packs again */
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
