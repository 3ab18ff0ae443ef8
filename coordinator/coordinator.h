/*
 * coordinator.h — the job's one coordinator: streams the dataset into tasks, leases them to
 * workers over a ZeroMQ ROUTER (credit-based pull), journals every state change, writes the
 * manifest, stats and dead letters, and resumes from the journal after a crash.
 *
 * Output folder (job->output):
 *   journal.tsj        the task log (journal.h)        manifest.jsonl  one line per record
 *   stats.json         counts, failures, rates         rejects.jsonl   bad dataset lines
 *   dead_letter.jsonl  tasks given up, with reasons    keys/           CURVE keys of `tessera run`
 *   NNNNN/ or NNNNN.tar  the records of shard NNNNN (index / shard_size)
 *   NNNNN-rK.tar       records of closed shard NNNNN that a damaged journal made be redone
 *                      and that the closed tar lacked (shard_pack.h)
 *   coordinator.lock   held while a coordinator runs on the folder (output_lock.h)
 *
 * Monitoring: stats.json is rewritten every 5 s while the job runs (per-worker throughput,
 * queues, leases), `tessera status OUT` reads it and the journal from any node, and the job
 * key `metrics` (tcp://HOST:PORT) serves the same counts to Prometheus (metrics.h).
 * Drain (preemption, a time limit): see coordinator_options.drain.
 *
 * Storage faults: a failed write to the output folder (ENOSPC, EDQUOT, EIO, EROFS, by the
 * coordinator or a worker) stops the run with -1 and one line saying what failed; nothing is
 * written after it, so a rerun resumes from what was durable. Duplicate ids: id_set.h.
 */
#ifndef TESSERA_COORDINATOR_H
#define TESSERA_COORDINATOR_H

#include "coordinator/job.h"

#include <signal.h>
#include <stdint.h>

typedef struct {
    uint64_t records_done, records_dead, records_total; /* total: 0 until the dataset is read */
    uint64_t records_resumed;                           /* done by earlier runs (journal) */
    uint64_t tasks_done, tasks_dead, tasks_failed, rejected;
    uint64_t leases_expired, handed_back, stale_results;
    uint64_t msgs_received, msgs_dropped, msgs_oversized, msgs_malformed;
    uint64_t workers;
    double elapsed, records_per_s;
    int complete, dataset_done;
} coordinator_progress;

typedef struct {
    const job_spec *job;
    volatile sig_atomic_t *stop;       /* set (by a signal handler, __atomic_store_n) to stop cleanly */
    volatile sig_atomic_t *drain;      /* set to drain (preemption): lease nothing more, wait up to
                                        * job->drain_seconds for leased tasks, return 3 */
    void (*progress)(const coordinator_progress *p, void *ctx);
    void *progress_ctx;
    const char *extra_endpoint;        /* also bind here (bench: inproc://...) */
    uint64_t stop_after_tasks;         /* bench: stop once this many tasks are done (0: all) */
    int curve;                         /* 1: CURVE with job->keys (server cert + allow/) */
    int force_unlock;                  /* take the output folder's lock from a gone holder */
} coordinator_options;

/* Removes "--force-unlock" from argv (for tessera coordinator / run); 1 if it was there. */
int coordinator_take_force_unlock(int *argc, char **argv);

/* mkdir -p. */
int coordinator_make_dirs(const char *path);

/* Runs until the job is complete (returns 0), stopped (1), drained (3: *options->drain was
 * set; resume by running again) or broken (-1, ts_fail set: a storage failure, an
 * unreadable dataset, a locked output folder). */
int coordinator_run(const coordinator_options *options, coordinator_progress *final);

#endif
