/*
 * test_pipeline_messages.c — malformed, truncated, oversized, wrong-version, multi-frame
 * and misdirected messages sent to a live coordinator's socket are dropped and counted,
 * a stale result is ignored, and the job still completes with a real worker.
 */
#include "coordinator/coordinator.h"
#include "proto/wire.h"
#include "tests/test.h"
#include "worker/worker.h"

#include <czmq.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static job_spec job;
static coordinator_progress final;
static int coordinator_rc;
static volatile sig_atomic_t worker_stop;

static void *coordinator_thread(void *arg) {
    coordinator_options o = {.job = &job};
    coordinator_rc = coordinator_run(&o, &final);
    return NULL;
}

static void *worker_thread(void *arg) {
    worker_options o = {.endpoint = job.endpoint, .stage = 2, .backend = "null", .credit = 2,
                        .heartbeat_s = 0.2, .stop = &worker_stop, .name = "test-worker"};
    worker_run(&o);
    return NULL;
}

static void send_env(zsock_t *s, ts_envelope *env) {
    size_t n;
    uint8_t *buf = wire_encode(env, &n);
    zmq_send(zsock_resolve(s), buf, n, 0);
    free(buf);
}

int main(void) {
    TEST_BEGIN();
    zsys_handler_set(NULL);
    zsys_init();
    char dir[] = "/tmp/tessera_msgs_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[600];
    snprintf(path, sizeof path, "%s/d.txt", dir);
    FILE *f = fopen(path, "w");
    for (int i = 1; i <= 20; i++) fprintf(f, "prompt %d\n", i);
    fclose(f);
    job_defaults(&job);
    CHECK_OK(job_set(&job, "kind", "render"));
    CHECK_OK(job_set(&job, "dataset.path", path));
    snprintf(path, sizeof path, "%s/out", dir);
    CHECK_OK(job_set(&job, "output.dir", path));
    CHECK_OK(job_set(&job, "output.layout", "files"));
    CHECK_OK(job_set(&job, "heartbeat_seconds", "0.2"));
    snprintf(path, sizeof path, "ipc://%s/c.ipc", dir);
    CHECK_OK(job_set(&job, "endpoint", path));

    /* unknown fields (a newer peer's) are skipped, not refused */
    {
        Tessera__WorkRequest w0 = TESSERA__WORK_REQUEST__INIT;
        w0.credit = 3;
        ts_envelope e0 = TESSERA__ENVELOPE__INIT;
        e0.body_case = TESSERA__ENVELOPE__BODY_WORK_REQUEST;
        e0.work_request = &w0;
        size_t n0;
        uint8_t *b0 = wire_encode(&e0, &n0);
        uint8_t *b1 = malloc(n0 + 3);
        memcpy(b1, b0, n0);
        b1[n0] = 0x98; b1[n0 + 1] = 0x06; b1[n0 + 2] = 0x07; /* field 99, varint 7 */
        wire_status st;
        ts_envelope *d0 = wire_decode(b1, n0 + 3, &st);
        CHECK(d0 && st == WIRE_OK && d0->work_request->credit == 3, "unknown field refused: status %d", (int)st);
        wire_free(d0);
        free(b0); free(b1);
    }

    pthread_t ct, wt;
    pthread_create(&ct, NULL, coordinator_thread, NULL);
    zsock_t *bad = zsock_new(ZMQ_DEALER);
    zsock_set_sndhwm(bad, 0);
    CHECK(zsock_connect(bad, "%s", job.endpoint) == 0, "connect");
    zclock_sleep(300);
    void *raw = zsock_resolve(bad);

    zmq_send(raw, "hello world, not protobuf", 25, 0);                  /* malformed */
    Tessera__Hello h = TESSERA__HELLO__INIT;
    h.name = "a name long enough to cut in the middle";
    ts_envelope env = TESSERA__ENVELOPE__INIT;
    env.body_case = TESSERA__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    size_t n;
    uint8_t *buf = wire_encode(&env, &n);
    zmq_send(raw, buf, n / 2, 0);                                       /* truncated */
    free(buf);
    size_t big = TS_WIRE_MAX_BYTES + (4u << 20);
    uint8_t *huge = calloc(1, big);
    zmq_send(raw, huge, big, 0);                                        /* oversized */
    free(huge);
    Tessera__WorkRequest wr = TESSERA__WORK_REQUEST__INIT;
    env.body_case = TESSERA__ENVELOPE__BODY_WORK_REQUEST;
    env.work_request = &wr;
    buf = wire_encode(&env, &n);
    buf[1] = 99;                                                        /* version 99 */
    zmq_send(raw, buf, n, 0);
    free(buf);
    zmq_send(raw, "", 0, 0);                                            /* empty: no version, no body */
    zmq_send(raw, "a", 1, ZMQ_SNDMORE);                                 /* three frames */
    zmq_send(raw, "b", 1, ZMQ_SNDMORE);
    zmq_send(raw, "c", 1, 0);
    Tessera__Task task = TESSERA__TASK__INIT;                           /* a task sent the wrong way */
    env.body_case = TESSERA__ENVELOPE__BODY_TASK;
    env.task = &task;
    send_env(bad, &env);
    Tessera__Result res = TESSERA__RESULT__INIT;                        /* a result for no lease */
    res.task_id = 0;
    res.lease_id = 12345;
    env.body_case = TESSERA__ENVELOPE__BODY_RESULT;
    env.result = &res;
    send_env(bad, &env);
    zclock_sleep(300);

    pthread_create(&wt, NULL, worker_thread, NULL);
    pthread_join(ct, NULL);
    __atomic_store_n(&worker_stop, 1, __ATOMIC_RELAXED);
    pthread_join(wt, NULL);
    zsock_destroy(&bad);

    CHECK(coordinator_rc == 0 && final.complete, "coordinator rc %d: %s", coordinator_rc, ts_last_error());
    CHECK(final.records_done == 20, "records done %llu", (unsigned long long)final.records_done);
    CHECK(final.msgs_oversized == 1, "oversized %llu", (unsigned long long)final.msgs_oversized);
    CHECK(final.msgs_malformed == 5, "malformed %llu", (unsigned long long)final.msgs_malformed);
    CHECK(final.msgs_dropped == 7, "dropped %llu", (unsigned long long)final.msgs_dropped);
    CHECK(final.stale_results == 1, "stale results %llu", (unsigned long long)final.stale_results);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0, "cleanup");
    return TEST_END();
}
