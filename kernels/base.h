/*
 * base.h — the one error and logging convention every Tessera file follows.
 *
 * Errors are returned, never hidden:
 *   - A function that can fail returns int: 0 on success, -1 on failure.
 *     A constructor returns a pointer, NULL on failure.
 *   - On failure it records one human-readable line with ts_fail(), naming what
 *     and where ("model.safetensors: tensor 'conv.weight': data offsets [8, 4096)
 *     run past the end of the file (2048 bytes)").  ts_fail returns -1 so you
 *     can write:   return ts_fail("%s: bad magic", path);
 *   - A caller that adds context wraps the message: ts_fail_wrap("loading U-Net").
 *     The command-line program prints ts_last_error() once and exits non-zero.
 *   - The message is thread-local, so worker threads do not clobber each other.
 *
 * Logging goes to stderr with a level. `-q` shows errors only, `-v` adds debug,
 * `-vv` adds trace.  Library code logs sparingly (info for milestones, debug for
 * detail); it never prints to stdout, which belongs to the command's output.
 */
#ifndef TESSERA_BASE_H
#define TESSERA_BASE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define TS_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Record an error message (printf-style); returns -1. */
int ts_fail(const char *fmt, ...) TS_PRINTF(1, 2);
/* Prefix the current message with context: "context: previous message"; returns -1. */
int ts_fail_wrap(const char *fmt, ...) TS_PRINTF(1, 2);
/* The last recorded message on this thread ("" if none). */
const char *ts_last_error(void);
void ts_clear_error(void);

/* TS_ prefixed: <syslog.h> (which czmq includes) defines LOG_INFO and LOG_DEBUG as macros,
 * which silently turned log_info() into a level nothing prints. */
typedef enum { TS_LOG_ERROR = 0, TS_LOG_WARN = 1, TS_LOG_INFO = 2, TS_LOG_DEBUG = 3, TS_LOG_TRACE = 4 } log_level;

void log_set_level(log_level level);
log_level log_get_level(void);
void log_msg(log_level level, const char *fmt, ...) TS_PRINTF(2, 3);

#define log_error(...) log_msg(TS_LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(TS_LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(TS_LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(TS_LOG_DEBUG, __VA_ARGS__)

/* Allocation that never returns NULL: out of memory is not recoverable here. */
void *ts_malloc(size_t n);
void *ts_calloc(size_t n, size_t size);
void *ts_realloc(void *p, size_t n);
char *ts_strdup(const char *s);
/* 64-byte aligned, for SIMD and cache lines; free with free(). */
void *ts_aligned_alloc(size_t n);

/* Monotonic seconds, for timings and deadlines. */
double ts_now(void);

#endif
