/*
 * comm_watch.c — a group's ranks watch each other's processes over TCP (see comm_watch.h).
 *
 * Set-up (collective): rank 0 listens on an ephemeral port of every interface and broadcasts
 * its host name and port over the comm; each other rank connects (loopback when on the same
 * host) and sends its group rank; rank 0 accepts them all within ACCEPT_S; the ranks then
 * all-gather whether they made it, so all fail together. Nothing but one goodbye byte ever
 * travels on these connections: readable means goodbye, end of stream or an error.
 */
#include "kernels/comm_watch.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

enum { ACCEPT_S = 60, LEAVE_S = 60, GOODBYE = 'B' };

typedef struct {
    int fd;
    int rank;   /* the group rank at the other end */
    bool gone;  /* said goodbye, or already reported */
} peer;

struct comm_watch {
    peer *peers;
    int n;
    int wake;            /* eventfd: stops the thread */
    bool thread_started;
    pthread_t thread;
    comm_watch_fn on_loss;
    void *arg;
    int lost;            /* __atomic: the lost group rank, -1 while none */
    int my_rank;
};

static void keepalive(int fd) {
    int on = 1, idle = 10, interval = 5, count = 3; /* a vanished node: noticed within ~25 s */
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
}

static void report_loss(comm_watch *self, int rank) {
    int none = -1;
    if (!__atomic_compare_exchange_n(&self->lost, &none, rank, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return;
    if (self->on_loss) {
        self->on_loss(self->arg, rank);
        return;
    }
    fprintf(stderr, "tessera: group rank %d: rank %d of this group ended without leaving (killed or crashed): "
                    "this rank ends too (exit %d)\n", self->my_rank, rank, COMM_WATCH_EXIT);
    fflush(NULL);
    _exit(COMM_WATCH_EXIT);
}

static void *watch_thread(void *arg) {
    comm_watch *self = arg;
    struct pollfd *fds = ts_calloc((size_t)self->n + 1, sizeof *fds);
    for (;;) {
        int k = 0;
        fds[k++] = (struct pollfd){.fd = self->wake, .events = POLLIN};
        for (int i = 0; i < self->n; i++)
            fds[k++] = (struct pollfd){.fd = self->peers[i].gone ? -1 : self->peers[i].fd, .events = POLLIN};
        if (poll(fds, (nfds_t)k, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (fds[0].revents) break;
        for (int i = 0; i < self->n; i++) {
            if (!fds[i + 1].revents) continue;
            peer *p = &self->peers[i];
            char c = 0;
            ssize_t got = recv(p->fd, &c, 1, MSG_DONTWAIT);
            if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            p->gone = true;
            if (got == 1 && c == GOODBYE) continue; /* left on purpose */
            report_loss(self, p->rank);
            free(fds);
            return NULL;
        }
    }
    free(fds);
    return NULL;
}

/* Connects to host:port (the loopback when host is this host); -1 on failure. */
static int connect_to(const char *host, int port) {
    char mine[256] = "", service[16];
    gethostname(mine, sizeof mine - 1);
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *list = NULL;
    if (getaddrinfo(strcmp(host, mine) ? host : "127.0.0.1", service, &hints, &list) != 0) return -1;
    int fd = -1;
    for (struct addrinfo *a = list; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(list);
    return fd;
}

/* Rank 0: accepts n - 1 connections, each announcing its rank; false (with ts_fail) if not all come. */
static bool accept_all(comm_watch *self, int listener, int size) {
    double until = ts_now() + ACCEPT_S;
    while (self->n < size - 1) {
        struct pollfd p = {.fd = listener, .events = POLLIN};
        int left_ms = (int)((until - ts_now()) * 1000);
        if (left_ms <= 0 || poll(&p, 1, left_ms) <= 0) {
            ts_fail("comm watch: %d of %d ranks connected within %d s", self->n, size - 1, ACCEPT_S);
            return false;
        }
        int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) continue;
        int32_t rank = -1;
        struct pollfd q = {.fd = fd, .events = POLLIN};
        if (poll(&q, 1, 5000) <= 0 || recv(fd, &rank, sizeof rank, MSG_WAITALL) != sizeof rank || rank <= 0 ||
            rank >= size) {
            close(fd); /* not one of ours */
            continue;
        }
        self->peers[self->n++] = (peer){.fd = fd, .rank = rank};
    }
    return true;
}

comm_watch *comm_watch_new(comm *group, comm_watch_fn on_loss, void *arg) {
    int rank = comm_rank(group), size = comm_size(group);
    comm_watch *self = ts_calloc(1, sizeof *self);
    self->on_loss = on_loss, self->arg = arg, self->lost = -1, self->my_rank = rank, self->wake = -1;
    self->peers = ts_calloc(size > 1 ? (size_t)size - 1 : 1, sizeof *self->peers);
    if (size == 1) return self;
    struct {
        char host[256];
        int32_t port;
    } where = {.port = -1};
    int listener = -1;
    bool ok = true;
    if (rank == 0) {
        /* one socket for IPv6 and IPv4 where the host has IPv6, else IPv4 alone */
        struct sockaddr_in6 addr6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT};
        struct sockaddr_in addr4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
        int v6only = 0;
        bool v6 = (listener = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0 &&
                  setsockopt(listener, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) == 0;
        if (!v6) {
            if (listener >= 0) close(listener);
            listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        }
        struct sockaddr_storage bound;
        socklen_t len = sizeof bound;
        if (listener < 0 ||
            bind(listener, v6 ? (struct sockaddr *)&addr6 : (struct sockaddr *)&addr4, v6 ? sizeof addr6 : sizeof addr4) ||
            listen(listener, size) != 0 || getsockname(listener, (struct sockaddr *)&bound, &len) != 0) {
            ok = ts_fail("comm watch: cannot listen on a TCP port: %s", strerror(errno)) == 0;
        } else {
            gethostname(where.host, sizeof where.host - 1);
            where.port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                           : ((struct sockaddr_in *)&bound)->sin_port);
        }
    }
    if (comm_broadcast(group, &where, sizeof where, 0) != 0) {
        ts_fail_wrap("comm watch: sending rank 0's address");
        if (listener >= 0) close(listener);
        free(self->peers);
        free(self);
        return NULL;
    }
    if (rank != 0 && where.port > 0) {
        int fd = connect_to(where.host, where.port);
        int32_t me = rank;
        if (fd < 0 || send(fd, &me, sizeof me, MSG_NOSIGNAL) != sizeof me) {
            ok = ts_fail("comm watch: rank %d cannot connect to rank 0 at %s:%d: %s", rank, where.host,
                         (int)where.port, strerror(errno)) == 0;
            if (fd >= 0) close(fd);
        } else {
            self->peers[self->n++] = (peer){.fd = fd, .rank = 0};
        }
    } else if (rank != 0) {
        ok = ts_fail("comm watch: rank 0 could not listen") == 0;
    }
    if (rank == 0 && ok) ok = accept_all(self, listener, size);
    if (listener >= 0) close(listener);
    int32_t mine = ok, all[64], *every = size <= 64 ? all : ts_malloc((size_t)size * sizeof mine);
    int rc = comm_all_gather(group, &mine, every, sizeof mine);
    int failed = -1;
    for (int r = 0; rc == 0 && r < size && failed < 0; r++)
        if (!every[r]) failed = r;
    if (every != all) free(every);
    if (rc == 0 && ok && failed >= 0) ts_fail("comm watch: rank %d of the group could not connect", failed);
    if (rc != 0 || !ok || failed >= 0) {
        comm_watch_abandon(&self);
        return NULL;
    }
    for (int i = 0; i < self->n; i++) keepalive(self->peers[i].fd);
    self->wake = eventfd(0, EFD_CLOEXEC);
    if (self->wake < 0 || pthread_create(&self->thread, NULL, watch_thread, self) != 0) {
        ts_fail("comm watch: cannot start its thread: %s", strerror(errno));
        comm_watch_abandon(&self);
        return NULL;
    }
    self->thread_started = true;
    return self;
}

/* Waits until the peers not yet gone have said goodbye or ended (at most `seconds`). */
static void await_goodbyes(comm_watch *self, double seconds) {
    double until = ts_now() + seconds;
    for (;;) {
        struct pollfd fds[64];
        int k = 0, which[64];
        for (int i = 0; i < self->n && k < 64; i++)
            if (!self->peers[i].gone) which[k] = i, fds[k++] = (struct pollfd){.fd = self->peers[i].fd, .events = POLLIN};
        int left_ms = (int)((until - ts_now()) * 1000);
        if (k == 0 || left_ms <= 0) return;
        if (poll(fds, (nfds_t)k, left_ms) < 0 && errno != EINTR) return;
        for (int j = 0; j < k; j++) {
            char c;
            if (fds[j].revents && recv(fds[j].fd, &c, 1, MSG_DONTWAIT) != -1) self->peers[which[j]].gone = true;
        }
    }
}

static void say_goodbye(comm_watch *self) {
    for (int i = 0; i < self->n; i++) {
        char c = GOODBYE;
        if (send(self->peers[i].fd, &c, 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1) { /* peer already gone */ }
    }
}

static void watch_close(comm_watch **self_p, bool goodbye) {
    comm_watch *self = *self_p;
    if (!self) return;
    if (self->thread_started) {
        uint64_t one = 1;
        if (write(self->wake, &one, sizeof one) < 0) { /* the thread then only ends with the process */ }
        pthread_join(self->thread, NULL);
    }
    /* Leaving in order, a barrier over these sockets: the others say goodbye to rank 0, which
     * answers once all have, so no rank leaves while another still waits for an MPI message. */
    if (goodbye && self->my_rank == 0) {
        await_goodbyes(self, LEAVE_S);
        say_goodbye(self);
    } else if (goodbye) {
        say_goodbye(self);
        await_goodbyes(self, LEAVE_S);
    }
    for (int i = 0; i < self->n; i++) close(self->peers[i].fd);
    if (self->wake >= 0) close(self->wake);
    free(self->peers);
    free(self);
    *self_p = NULL;
}

void comm_watch_destroy(comm_watch **self_p) {
    if (self_p) watch_close(self_p, true);
}

void comm_watch_abandon(comm_watch **self_p) {
    if (self_p) watch_close(self_p, false);
}

int comm_watch_lost(const comm_watch *self) {
    return self ? __atomic_load_n(&self->lost, __ATOMIC_ACQUIRE) : -1;
}
