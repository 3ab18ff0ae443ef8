/*
 * test_log_levels.c — log_info() and log_debug() print in a file that also includes
 * <syslog.h>, as every file using czmq does: syslog's LOG_INFO / LOG_DEBUG macros once
 * replaced base.h's levels there, and the worker's info lines were silently dropped.
 */
#include "kernels/base.h"
#include "tests/test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>   /* after base.h, as czmq.h comes after it */
#include <unistd.h>

/* What log_fn wrote to stderr. */
static char *captured(void (*log_fn)(void)) {
    char path[] = "/tmp/tessera_log_XXXXXX";
    int fd = mkstemp(path), saved = dup(2);
    fflush(stderr);
    dup2(fd, 2);
    log_fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    static char buf[4096];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = 0;
    close(fd);
    unlink(path);
    return buf;
}

static void say_info(void) { log_info("info line %d", 42); }
static void say_debug(void) { log_debug("debug line"); }

int main(void) {
    TEST_BEGIN();
    log_set_level(TS_LOG_INFO);
    CHECK(strstr(captured(say_info), "info line 42") != NULL, "log_info printed nothing at level info");
    CHECK(strstr(captured(say_debug), "debug line") == NULL, "log_debug printed at level info");
    log_set_level(TS_LOG_DEBUG);
    CHECK(strstr(captured(say_debug), "debug line") != NULL, "log_debug printed nothing at level debug");
    log_set_level(TS_LOG_ERROR);
    CHECK(strstr(captured(say_info), "info line") == NULL, "log_info printed at level error");
    return TEST_END();
}
