/* output_lock.c — the output folder's coordinator lock: fcntl OFD lock plus holder line (see output_lock.h). */
#include "coordinator/output_lock.h"
#include "kernels/base.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct output_lock {
    int fd;
    char *path;
};

static void lock_path(const char *dir, char *path, size_t cap) { snprintf(path, cap, "%s/coordinator.lock", dir); }

/* F_OFD_SETLK, or F_SETLK where the kernel or file system refuses OFD locks (EINVAL). */
static int set_lock(int fd, short type) {
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(fd, F_OFD_SETLK, &fl) == 0) return 0;
    if (errno != EINVAL) return -1;
    fl = (struct flock){.l_type = type, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    return fcntl(fd, F_SETLK, &fl);
}

static void read_owner(const char *path, char *owner, size_t cap) {
    owner[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f) return;
    if (!fgets(owner, (int)cap, f)) owner[0] = 0;
    fclose(f);
    owner[strcspn(owner, "\n")] = 0;
}

/* The holder is a live process on this host (so --force-unlock must not take its folder). */
static int owner_alive_here(const char *owner) {
    char host[256] = "", other[256];
    long pid = 0;
    if (sscanf(owner, "host=%255s pid=%ld", other, &pid) != 2 || pid <= 0) return 0;
    gethostname(host, sizeof host - 1);
    if (strcmp(host, other)) return 0;
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

static int is_held(int err) { return err == EAGAIN || err == EACCES; }

output_lock *output_lock_take(const char *dir, const char *endpoint, int force_unlock) {
    char path[4200], owner[1024];
    lock_path(dir, path, sizeof path);
    for (int attempt = 0;; attempt++) {
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) { ts_fail("%s: cannot open the lock file: %s", path, strerror(errno)); return NULL; }
        if (set_lock(fd, F_WRLCK) == 0) {
            char host[256] = "?", line[1600];
            gethostname(host, sizeof host - 1);
            time_t now = time(NULL);
            struct tm tm;
            char when[32];
            strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
            int n = snprintf(line, sizeof line, "host=%s pid=%d endpoint=%s since=%s\n", host, (int)getpid(),
                             endpoint && endpoint[0] ? endpoint : "?", when);
            if (ftruncate(fd, 0) < 0 || pwrite(fd, line, (size_t)n, 0) != n || fdatasync(fd) < 0) {
                ts_fail("%s: cannot write the lock file: %s", path, strerror(errno));
                close(fd);
                return NULL;
            }
            output_lock *l = ts_calloc(1, sizeof *l);
            l->fd = fd;
            l->path = ts_strdup(path);
            return l;
        }
        int err = errno;
        close(fd);
        if (!is_held(err)) {
            ts_fail("%s: cannot lock: %s (a second coordinator on this folder could not be stopped; "
                    "on Lustre mount with -o flock, on NFS do not mount with nolock)", path, strerror(err));
            return NULL;
        }
        read_owner(path, owner, sizeof owner);
        if (!force_unlock || attempt > 0) {
            ts_fail("%s is in use by another coordinator (%s); if that coordinator is gone, run again with "
                    "--force-unlock", dir, owner[0] ? owner : "holder unknown");
            return NULL;
        }
        if (owner_alive_here(owner)) {
            ts_fail("%s is in use by a coordinator still running on this host (%s); --force-unlock refused", dir, owner);
            return NULL;
        }
        /* the old holder's lock stays on the old file, which nobody opens again */
        log_warn("%s: forcing the lock of %s", dir, owner[0] ? owner : "an unknown holder");
        if (unlink(path) < 0) { ts_fail("%s: cannot remove the lock file: %s", path, strerror(errno)); return NULL; }
    }
}

void output_lock_release(output_lock **self) {
    output_lock *l = *self;
    if (!l) return;
    close(l->fd); /* drops the lock; the file stays (removing it would race a new holder) */
    free(l->path);
    free(l);
    *self = NULL;
}

int output_lock_probe(const char *dir, char *owner, size_t cap) {
    char path[4200];
    lock_path(dir, path, sizeof path);
    owner[0] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? 0 : ts_fail("%s: %s", path, strerror(errno));
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    int rc = fcntl(fd, F_OFD_GETLK, &fl);
    if (rc < 0 && errno == EINVAL) {
        fl = (struct flock){.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
        rc = fcntl(fd, F_GETLK, &fl);
    }
    close(fd);
    if (rc < 0) return ts_fail("%s: cannot test the lock: %s", path, strerror(errno));
    if (fl.l_type == F_UNLCK) return 0;
    read_owner(path, owner, cap);
    return 1;
}
