/*
 * metrics.h — the coordinator's Prometheus endpoint: `--metrics tcp://HOST:PORT` (job key
 * `metrics`) serves GET /metrics over plain HTTP in the text exposition format (0.0.4).
 * No thread: the socket is non-blocking and polled from the coordinator's loop, a scrape is
 * answered from the loop's own counters, and a slow or silent client is dropped after 2 s.
 */
#ifndef TESSERA_METRICS_H
#define TESSERA_METRICS_H

#include <stdio.h>

typedef struct metrics_server metrics_server;

/* Writes the exposition text of one scrape to out. */
typedef void (*metrics_render)(FILE *out, void *ctx);

/* Listens on tcp://HOST:PORT (HOST may be * for every interface); NULL and ts_fail if the
 * address is malformed or cannot be bound. */
metrics_server *metrics_server_new(const char *endpoint);
/* Accepts, reads and answers what is ready; never blocks for long (a reply is a few KB). */
void metrics_server_poll(metrics_server *self, metrics_render render, void *ctx);
void metrics_server_destroy(metrics_server **self);

/* Writes a label value escaped as the text format wants (\\, \", \n). */
void metrics_label_value(FILE *out, const char *value);

#endif
