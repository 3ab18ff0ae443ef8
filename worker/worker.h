/*
 * worker.h — an expander or render worker: a ZeroMQ DEALER that says hello, pulls tasks up
 * to its credit, renews its leases with heartbeats while a separate compute thread runs
 * the backend, returns results, and on coordinator silence reconnects with exponential
 * backoff (the ZeroMQ guide's Paranoid Pirate worker). On *stop (SIGTERM) it hands back the
 * tasks it has not started, finishes the one it is running (the two, for a render worker
 * whose model runs a pipeline: worker/backend.h, render sessions), and exits.
 */
#ifndef TESSERA_WORKER_H
#define TESSERA_WORKER_H

#include "worker/backend.h"

#include <signal.h>

typedef struct {
    const char *endpoint;
    int stage;                      /* 1 expand, 2 render (tessera.proto Stage) */
    const char *backend;            /* "null", "echo", or a real backend */
    const char *model;
    const char *expand_check;       /* expander faithfulness check: none | keep-words (NULL: none) */
    int expand_retries;             /* further samples when the check fails; < 0: the default */
    int credit;                     /* tasks held at once (queued + running) */
    double heartbeat_s;             /* coordinator presumed lost after 5 silent beats */
    double reconnect_max_s;         /* backoff doubles from heartbeat_s up to this */
    const char *client_cert;        /* CURVE: this worker's secret cert file (NULL: no CURVE) */
    const char *server_cert;        /* CURVE: the coordinator's public cert file */
    volatile sig_atomic_t *stop;    /* SIGTERM: hand back, finish, exit (__atomic_* both sides: threads) */
    const char *name;
    int inline_compute;             /* run the backend in the network thread (bench) */
    int discard_output;             /* render but write no files (bench: measures the pipeline) */
    int batch;                      /* render: records of a task in one model call (workers.batch; 0: 1) */
    int unet_shared;                /* render: their U-Net rows in one call (backend.h render_batching) */
    const char *device;             /* where the model computes, cpu (NULL) or cuda[:N] (workers.device) */
    struct comm *group;             /* render: rank 0 of a group sharing the U-Net (render_group.h); NULL */
    int parallel;                   /* its unet_parallel */
    int tp_pieces;                  /* render: the U-Net's tensor-parallel pieces (txt2img_options); 0 */
    struct comm_watch *group_watch; /* render group: its ranks' liveness (comm_watch.h); NULL */
} worker_options;

/* 0 after a Shutdown or a clean stop, -1 on a set-up error. When group_watch reports a rank
 * of the group lost, the worker hands back every task it holds (the running ones too: nothing
 * of theirs has been sent) and returns -1 at once, leaving its compute thread, stuck in a
 * collective with the dead rank, behind: the process must then end (_exit, no MPI_Finalize). */
int worker_run(const worker_options *options);

#endif
