/* metrics.c — a non-blocking HTTP/1.0 responder for GET /metrics (see metrics.h). */
#include "coordinator/metrics.h"
#include "kernels/base.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define MAX_CLIENTS 16
#define REQUEST_MAX 4096

typedef struct {
    int fd;
    double deadline;
    size_t len;
    char buf[REQUEST_MAX];
} client;

struct metrics_server {
    int fd;
    client clients[MAX_CLIENTS];
    char endpoint[256];
};

metrics_server *metrics_server_new(const char *endpoint) {
    if (strncmp(endpoint, "tcp://", 6) != 0) {
        ts_fail("metrics endpoint '%s': expected tcp://HOST:PORT", endpoint);
        return NULL;
    }
    char host[256];
    snprintf(host, sizeof host, "%s", endpoint + 6);
    char *colon = strrchr(host, ':');
    if (!colon || !colon[1]) { ts_fail("metrics endpoint '%s': no port", endpoint); return NULL; }
    *colon = 0;
    const char *port = colon + 1;
    char *end;
    long p = strtol(port, &end, 10);
    if (*end || p < 1 || p > 65535) { ts_fail("metrics endpoint '%s': bad port '%s'", endpoint, port); return NULL; }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res = NULL;
    int any = !host[0] || !strcmp(host, "*");
    int gai = getaddrinfo(any ? NULL : host, port, &hints, &res);
    if (gai) { ts_fail("metrics endpoint '%s': %s", endpoint, gai_strerror(gai)); return NULL; }
    int fd = -1, err = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        /* '*' binds IPv4's any address first: it is what a scraper on another node reaches */
        if (any && a->ai_family != AF_INET && res->ai_next) continue;
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0) { err = errno; continue; }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 16) == 0) break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) { ts_fail("metrics endpoint '%s': cannot listen: %s", endpoint, strerror(err)); return NULL; }
    metrics_server *m = ts_calloc(1, sizeof *m);
    m->fd = fd;
    for (int i = 0; i < MAX_CLIENTS; i++) m->clients[i].fd = -1;
    snprintf(m->endpoint, sizeof m->endpoint, "%s", endpoint);
    return m;
}

static double now_s(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec * 1e-6;
}

static void drop(client *c) {
    close(c->fd);
    c->fd = -1;
    c->len = 0;
}

static void send_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return; /* the scraper went away or is too slow (SO_SNDTIMEO): its loss */
        p += w;
        n -= (size_t)w;
    }
}

static void answer(client *c, metrics_render render, void *ctx) {
    char *body = NULL;
    size_t body_len = 0;
    const char *status = "200 OK", *type = "text/plain; version=0.0.4; charset=utf-8";
    int head = !strncmp(c->buf, "HEAD ", 5);
    if (!strncmp(c->buf, "GET /metrics", 12) || !strncmp(c->buf, "HEAD /metrics", 13)) {
        FILE *out = open_memstream(&body, &body_len);
        if (out) { render(out, ctx); fclose(out); }
    } else {
        status = "404 Not Found";
        type = "text/plain";
        body = ts_strdup("only GET /metrics is served here\n");
        body_len = strlen(body);
    }
    char header[256];
    int n = snprintf(header, sizeof header, "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                     status, type, body_len);
    /* blocking from here, with a bound: a reply is small and the loop must not stall */
    int flags = fcntl(c->fd, F_GETFL);
    fcntl(c->fd, F_SETFL, flags & ~O_NONBLOCK);
    struct timeval tv = {.tv_sec = 0, .tv_usec = 500000};
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    send_all(c->fd, header, (size_t)n);
    if (!head && body) send_all(c->fd, body, body_len);
    free(body);
    drop(c);
}

void metrics_server_poll(metrics_server *m, metrics_render render, void *ctx) {
    if (!m) return;
    double now = now_s();
    for (;;) { /* new connections */
        int fd = accept4(m->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) break;
        int slot = -1;
        for (int i = 0; i < MAX_CLIENTS && slot < 0; i++) if (m->clients[i].fd < 0) slot = i;
        if (slot < 0) { close(fd); continue; } /* too many at once: a scraper retries */
        m->clients[slot] = (client){.fd = fd, .deadline = now + 2, .len = 0};
    }
    for (int i = 0; i < MAX_CLIENTS; i++) {
        client *c = &m->clients[i];
        if (c->fd < 0) continue;
        for (;;) {
            ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len, 0);
            if (r > 0) { c->len += (size_t)r; c->buf[c->len] = 0; if (c->len == sizeof c->buf - 1) break; continue; }
            if (r == 0) { if (!c->len) drop(c); break; } /* closed; a request may still be whole */
            break; /* EAGAIN */
        }
        if (c->fd < 0) continue;
        c->buf[c->len] = 0;
        if (strstr(c->buf, "\r\n\r\n") || strstr(c->buf, "\n\n") || c->len == sizeof c->buf - 1) answer(c, render, ctx);
        else if (now > c->deadline) drop(c);
    }
}

void metrics_server_destroy(metrics_server **self) {
    metrics_server *m = *self;
    if (!m) return;
    for (int i = 0; i < MAX_CLIENTS; i++) if (m->clients[i].fd >= 0) close(m->clients[i].fd);
    close(m->fd);
    free(m);
    *self = NULL;
}

void metrics_label_value(FILE *out, const char *v) {
    for (; *v; v++) {
        if (*v == '\\') fputs("\\\\", out);
        else if (*v == '"') fputs("\\\"", out);
        else if (*v == '\n') fputs("\\n", out);
        else fputc(*v, out);
    }
}
