/* journal.c — append-only, checksummed, group-fsynced task log with torn-tail repair (see journal.h). */
#include "coordinator/journal.h"
#include "kernels/base.h"

#include <zlib.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

struct journal {
    char *path;
    int fd;
    uint64_t size, pending;
    uint8_t *buf;            /* one encoded entry */
    size_t cap;
    uint8_t *out;            /* entries not yet written to the file */
    size_t out_len, out_cap;
    uint64_t durable;        /* file size after the last good commit */
    int broken;              /* a write or fsync failed: nothing more is written */
    char why[512];
};

#define JOURNAL_BUFFER (1u << 20)

/* After a failed write (a full disk, EIO) part of an entry may be in the file. Nothing is
 * written after it, ever: the journal refuses every later append and commit, the torn bytes
 * are cut back to the last commit if the file system lets us, and otherwise the next open
 * cuts them as a torn tail. So the journal never holds good entries after a torn one. */
static int break_journal(journal *j, const char *what, int err) {
    snprintf(j->why, sizeof j->why, "%s: journal %s: %s", j->path, what, strerror(err));
    j->broken = 1;
    j->out_len = 0;
    if (ftruncate(j->fd, (off_t)j->durable) == 0) fdatasync(j->fd);
    return ts_fail("%s", j->why);
}

static int write_all(journal *j, const uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(j->fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return break_journal(j, "write", errno);
        if (w == 0) return break_journal(j, "write", EIO);
        p += w; n -= (size_t)w;
    }
    return 0;
}

static int flush_out(journal *j) {
    if (!j->out_len) return 0;
    int rc = write_all(j, j->out, j->out_len);
    j->out_len = 0;
    return rc;
}

static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint32_t get32(const uint8_t *p) { uint32_t v = 0; for (int i = 3; i >= 0; i--) v = v << 8 | p[i]; return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }

static double wall_time(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec * 1e-6;
}

#define FIXED_BODY (1 + 8 + 8 + 8 + 8 + 4)

/* Decodes a body into e (strings point into body, which must outlive e); -1 if inconsistent. */
static int decode_body(uint8_t *body, uint32_t n, journal_entry *e, const char ***strs, uint32_t **lens) {
    if (n < FIXED_BODY) return -1;
    e->type = (journal_type)body[0];
    uint64_t t = get64(body + 1);
    memcpy(&e->time, &t, 8);
    e->task = get64(body + 9);
    e->a = get64(body + 17);
    e->b = get64(body + 25);
    e->nstr = get32(body + 33);
    if (e->nstr > (n - FIXED_BODY) / 4) return -1;
    *strs = ts_realloc(*strs, (e->nstr + 1) * sizeof **strs);
    *lens = ts_realloc(*lens, (e->nstr + 1) * sizeof **lens);
    size_t off = FIXED_BODY;
    for (uint32_t i = 0; i < e->nstr; i++) {
        if (off + 4 > n) return -1;
        uint32_t len = get32(body + off);
        off += 4;
        if (len > n - off) return -1;
        /* strings are stored with a trailing NUL so they can be used in place */
        if (len == 0 || body[off + len - 1] != 0) return -1;
        (*strs)[i] = (const char *)body + off;
        (*lens)[i] = len - 1;
        off += len;
    }
    if (off != n) return -1;
    e->str = *strs;
    e->len = *lens;
    return 0;
}

/* Reads entries from fd, calling visit; returns the offset just past the last good entry. */
static int64_t replay_fd(int fd, const char *path, journal_visit visit, void *ctx) {
    FILE *f = fdopen(dup(fd), "rb");
    if (!f) return ts_fail("%s: %s", path, strerror(errno));
    uint8_t *body = NULL;
    const char **strs = NULL;
    uint32_t *lens = NULL;
    size_t cap = 0;
    int64_t good = 0;
    int failed = 0;
    for (;;) {
        uint8_t head[8];
        if (fread(head, 1, 8, f) != 8) break;
        uint32_t n = get32(head), crc = get32(head + 4);
        if (n > JOURNAL_MAX_ENTRY || n < FIXED_BODY) break;
        if (n > cap) { cap = n; body = ts_realloc(body, cap); }
        if (fread(body, 1, n, f) != n) break;
        if ((uint32_t)crc32(0, body, n) != crc) break;
        journal_entry e;
        if (decode_body(body, n, &e, &strs, &lens) < 0) break;
        if (visit && visit(&e, ctx) < 0) { failed = 1; break; }
        good += 8 + n;
    }
    fclose(f);
    free(body); free(strs); free(lens);
    return failed ? -1 : good;
}

journal *journal_open(const char *path, journal_visit visit, void *ctx) {
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) { ts_fail("%s: cannot open journal: %s", path, strerror(errno)); return NULL; }
    int64_t good = replay_fd(fd, path, visit, ctx);
    if (good < 0) { close(fd); ts_fail_wrap("%s: replaying journal", path); return NULL; }
    struct stat st;
    fstat(fd, &st);
    if ((int64_t)st.st_size > good) {
        log_warn("%s: torn tail of %lld bytes after offset %lld cut off", path,
                 (long long)(st.st_size - good), (long long)good);
        if (ftruncate(fd, good) < 0 || fsync(fd) < 0) {
            close(fd);
            ts_fail("%s: cannot cut torn tail: %s", path, strerror(errno));
            return NULL;
        }
    }
    lseek(fd, good, SEEK_SET);
    journal *j = ts_calloc(1, sizeof *j);
    j->path = ts_strdup(path);
    j->fd = fd;
    j->size = j->durable = (uint64_t)good;
    return j;
}

int journal_replay(const char *path, journal_visit visit, void *ctx, uint64_t *torn_bytes) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ts_fail("%s: cannot open journal: %s", path, strerror(errno));
    int64_t good = replay_fd(fd, path, visit, ctx);
    struct stat st;
    fstat(fd, &st);
    close(fd);
    if (good < 0) return -1;
    if (torn_bytes) *torn_bytes = (uint64_t)(st.st_size - good);
    return 0;
}

int journal_append(journal *j, const journal_entry *e) {
    if (j->broken) return ts_fail("%s", j->why);
    size_t n = FIXED_BODY;
    for (uint32_t i = 0; i < e->nstr; i++) n += 4 + (e->len ? e->len[i] : strlen(e->str[i])) + 1;
    if (n > JOURNAL_MAX_ENTRY) return ts_fail("%s: journal entry of %zu bytes is too large", j->path, n);
    if (8 + n > j->cap) { j->cap = 8 + n; j->buf = ts_realloc(j->buf, j->cap); }
    uint8_t *b = j->buf + 8;
    b[0] = (uint8_t)e->type;
    double t = e->time ? e->time : wall_time();
    uint64_t tb;
    memcpy(&tb, &t, 8);
    put64(b + 1, tb);
    put64(b + 9, e->task);
    put64(b + 17, e->a);
    put64(b + 25, e->b);
    put32(b + 33, e->nstr);
    size_t off = FIXED_BODY;
    for (uint32_t i = 0; i < e->nstr; i++) {
        uint32_t len = (uint32_t)(e->len ? e->len[i] : strlen(e->str[i]));
        put32(b + off, len + 1);
        memcpy(b + off + 4, e->str[i], len);
        b[off + 4 + len] = 0;
        off += 4 + len + 1;
    }
    put32(j->buf, (uint32_t)n);
    put32(j->buf + 4, (uint32_t)crc32(0, b, (uInt)n));
    size_t total = 8 + n;
    if (j->out_len + total > JOURNAL_BUFFER && flush_out(j) < 0) return -1;
    if (total > JOURNAL_BUFFER) {
        if (write_all(j, j->buf, total) < 0) return -1;
    } else {
        if (j->out_len + total > j->out_cap) {
            j->out_cap = JOURNAL_BUFFER;
            j->out = ts_realloc(j->out, j->out_cap);
        }
        memcpy(j->out + j->out_len, j->buf, total);
        j->out_len += total;
    }
    j->size += total;
    j->pending++;
    return 0;
}

int journal_commit(journal *j) {
    if (j->broken) return ts_fail("%s", j->why);
    if (!j->pending) return 0;
    if (flush_out(j) < 0) return -1;
    /* after a failed fsync the kernel may have dropped the pages: what is on disk is unknown */
    if (fdatasync(j->fd) < 0) return break_journal(j, "fsync", errno);
    j->pending = 0;
    j->durable = j->size;
    return 0;
}

int journal_broken(const journal *j) { return j->broken; }

uint64_t journal_pending(const journal *j) { return j->pending; }
uint64_t journal_size(const journal *j) { return j->size; }

void journal_abandon(journal **self) {
    if (*self) (*self)->broken = 1;
    journal_destroy(self);
}

void journal_destroy(journal **self) {
    journal *j = *self;
    if (!j) return;
    if (!j->broken) journal_commit(j);
    close(j->fd);
    free(j->buf); free(j->out); free(j->path);
    free(j);
    *self = NULL;
}
