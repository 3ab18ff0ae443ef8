/*
 * storage_faults.c — an LD_PRELOAD library that makes writes under one folder fail the way a
 * full or broken disk does, for the storage-fault tests (tests/integration/test_storage_*.sh).
 * A mounted tmpfs needs privileges CI may not give; this needs none and hits exact moments.
 *
 * Counted operations are the ones that need space or reach the disk, on paths under
 * TESSERA_FAULT_DIR (and containing TESSERA_FAULT_MATCH if set): write, pwrite, writev,
 * fsync, fdatasync, fflush, fclose, rename, link, mkdir, and open/fopen that create a file.
 *   TESSERA_FAULT_AT=N     the Nth counted operation is the first to fail (1-based)
 *   TESSERA_FAULT_LEN=K    K operations fail, then the disk "has space again" (0: all after)
 *   TESSERA_FAULT_ERRNO    ENOSPC (default), EIO, EDQUOT or EROFS
 *   TESSERA_FAULT_LOG      file that gets one line per injected fault ("op errno path")
 * The first failing write writes half its bytes and returns that short count, as a disk
 * that fills mid-write does; later ones return -1. The library is not part of tessera: the
 * tests compile it with cc -shared.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

static const char *dir, *match;
static long at, len;
static int fault_errno = ENOSPC, log_fd = -1, ready;
static long counted;          /* atomic */
static int short_write_done;  /* atomic */

static void setup(void) {
    if (__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) return;
    dir = getenv("TESSERA_FAULT_DIR");
    match = getenv("TESSERA_FAULT_MATCH");
    const char *s = getenv("TESSERA_FAULT_AT");
    at = s ? atol(s) : 0;
    s = getenv("TESSERA_FAULT_LEN");
    len = s ? atol(s) : 0;
    s = getenv("TESSERA_FAULT_ERRNO");
    if (s && !strcmp(s, "EIO")) fault_errno = EIO;
    else if (s && !strcmp(s, "EDQUOT")) fault_errno = EDQUOT;
    else if (s && !strcmp(s, "EROFS")) fault_errno = EROFS;
    s = getenv("TESSERA_FAULT_LOG");
    if (s) log_fd = (int)syscall(SYS_open, s, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
}

static int under(const char *path) {
    if (!dir || !dir[0] || !path) return 0;
    char abs[PATH_MAX * 2];
    if (path[0] != '/') {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd)) return 0;
        snprintf(abs, sizeof abs, "%s/%s", cwd, path);
        path = abs;
    }
    size_t n = strlen(dir);
    if (strncmp(path, dir, n) || (path[n] && path[n] != '/')) return 0;
    return !match || strstr(path, match) != NULL;
}

static int fd_under(int fd, char *path, size_t cap) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, cap - 1);
    if (n <= 0) return 0;
    path[n] = 0;
    return under(path);
}

/* 1 when this counted operation must fail (and logs it). */
static int fault(const char *op, const char *path) {
    setup();
    if (at <= 0) return 0;
    long k = __atomic_add_fetch(&counted, 1, __ATOMIC_RELAXED);
    if (k < at || (len > 0 && k >= at + len)) return 0;
    if (log_fd >= 0) {
        char line[PATH_MAX + 64];
        int n = snprintf(line, sizeof line, "%s %d %s\n", op, fault_errno, path);
        if (syscall(SYS_write, log_fd, line, (size_t)n) < 0) { /* best effort */ }
    }
    return 1;
}

#define REAL(ret, name, ...) \
    static ret (*real_##name)(__VA_ARGS__); \
    if (!real_##name) real_##name = (ret (*)(__VA_ARGS__))dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void *buf, size_t count) {
    REAL(ssize_t, write, int, const void *, size_t);
    char path[PATH_MAX];
    setup();
    if (dir && fd > 2 && fd_under(fd, path, sizeof path) && fault("write", path)) {
        if (count > 1 && !__atomic_exchange_n(&short_write_done, 1, __ATOMIC_RELAXED)) {
            ssize_t w = real_write(fd, buf, count / 2);
            if (w > 0) return w;
        }
        errno = fault_errno;
        return -1;
    }
    return real_write(fd, buf, count);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t off) {
    REAL(ssize_t, pwrite, int, const void *, size_t, off_t);
    char path[PATH_MAX];
    setup();
    if (dir && fd_under(fd, path, sizeof path) && fault("pwrite", path)) { errno = fault_errno; return -1; }
    return real_pwrite(fd, buf, count, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t off) { return pwrite(fd, buf, count, off); }

ssize_t writev(int fd, const struct iovec *iov, int n) {
    REAL(ssize_t, writev, int, const struct iovec *, int);
    char path[PATH_MAX];
    setup();
    if (dir && fd > 2 && fd_under(fd, path, sizeof path) && fault("writev", path)) { errno = fault_errno; return -1; }
    return real_writev(fd, iov, n);
}

int fsync(int fd) {
    REAL(int, fsync, int);
    char path[PATH_MAX];
    setup();
    if (dir && fd_under(fd, path, sizeof path) && fault("fsync", path)) { errno = fault_errno; return -1; }
    return real_fsync(fd);
}

int fdatasync(int fd) {
    REAL(int, fdatasync, int);
    char path[PATH_MAX];
    setup();
    if (dir && fd_under(fd, path, sizeof path) && fault("fdatasync", path)) { errno = fault_errno; return -1; }
    return real_fdatasync(fd);
}

int fflush(FILE *f) {
    REAL(int, fflush, FILE *);
    char path[PATH_MAX];
    setup();
    if (dir && f && fileno(f) > 2 && fd_under(fileno(f), path, sizeof path) && fault("fflush", path)) {
        errno = fault_errno;
        return EOF;
    }
    return real_fflush(f);
}

int fclose(FILE *f) {
    REAL(int, fclose, FILE *);
    char path[PATH_MAX];
    setup();
    int failed = dir && f && fileno(f) > 2 && fd_under(fileno(f), path, sizeof path) && fault("fclose", path);
    int rc = real_fclose(f);
    if (failed) { errno = fault_errno; return EOF; }
    return rc;
}

int rename(const char *from, const char *to) {
    REAL(int, rename, const char *, const char *);
    setup();
    if (under(to) && fault("rename", to)) { errno = fault_errno; return -1; }
    return real_rename(from, to);
}

int link(const char *from, const char *to) {
    REAL(int, link, const char *, const char *);
    setup();
    if (under(to) && fault("link", to)) { errno = fault_errno; return -1; }
    return real_link(from, to);
}

int mkdir(const char *path, mode_t mode) {
    REAL(int, mkdir, const char *, mode_t);
    setup();
    struct stat st;
    if (under(path) && stat(path, &st) < 0 && fault("mkdir", path)) { errno = fault_errno; return -1; }
    return real_mkdir(path, mode);
}

/* Creating a file needs space; opening one that exists does not. */
static int creates(const char *path, int flags) {
    struct stat st;
    return (flags & O_CREAT) && under(path) && stat(path, &st) < 0;
}

int open(const char *path, int flags, ...) {
    REAL(int, open, const char *, int, ...);
    va_list ap;
    va_start(ap, flags);
    mode_t mode = (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, mode_t) : 0;
    va_end(ap);
    setup();
    if (creates(path, flags) && fault("open", path)) { errno = fault_errno; return -1; }
    return real_open(path, flags, mode);
}

int open64(const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, mode_t) : 0;
    va_end(ap);
    return open(path, flags, mode);
}

int openat(int dfd, const char *path, int flags, ...) {
    REAL(int, openat, int, const char *, int, ...);
    va_list ap;
    va_start(ap, flags);
    mode_t mode = (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, mode_t) : 0;
    va_end(ap);
    setup();
    if (path[0] == '/' && creates(path, flags) && fault("open", path)) { errno = fault_errno; return -1; }
    return real_openat(dfd, path, flags, mode);
}

FILE *fopen(const char *path, const char *how) {
    REAL(FILE *, fopen, const char *, const char *);
    setup();
    if ((how[0] == 'w' || how[0] == 'a') && creates(path, O_CREAT) && fault("fopen", path)) {
        errno = fault_errno;
        return NULL;
    }
    return real_fopen(path, how);
}

FILE *fopen64(const char *path, const char *how) { return fopen(path, how); }
