/* base.c — errors, logging and allocation helpers (see base.h). */
#include "base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local char error_message[1024];
static log_level current_level = TS_LOG_INFO;

int ts_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_message, sizeof error_message, fmt, ap);
    va_end(ap);
    return -1;
}

int ts_fail_wrap(const char *fmt, ...) {
    char context[512], previous[sizeof error_message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(context, sizeof context, fmt, ap);
    va_end(ap);
    memcpy(previous, error_message, sizeof previous);
    if (previous[0])
        snprintf(error_message, sizeof error_message, "%s: %s", context, previous);
    else
        snprintf(error_message, sizeof error_message, "%s", context);
    return -1;
}

const char *ts_last_error(void) { return error_message; }
void ts_clear_error(void) { error_message[0] = 0; }

void log_set_level(log_level level) { current_level = level; }
log_level log_get_level(void) { return current_level; }

void log_msg(log_level level, const char *fmt, ...) {
    static const char *names[] = {"error", "warning", "info", "debug", "trace"};
    if (level > current_level) return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "tessera: %s: %s\n", names[level], line);
}

static void out_of_memory(size_t n) {
    fprintf(stderr, "tessera: error: out of memory allocating %zu bytes\n", n);
    abort();
}

void *ts_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) out_of_memory(n);
    return p;
}

void *ts_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) out_of_memory(n * size);
    return p;
}

void *ts_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) out_of_memory(n);
    return q;
}

char *ts_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = ts_malloc(n);
    memcpy(p, s, n);
    return p;
}

void *ts_aligned_alloc(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64) != 0) out_of_memory(n);
    return p;
}

double ts_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
