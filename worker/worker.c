/* worker.c — the DEALER side: credit-based pull, heartbeats, Paranoid Pirate reconnects (see worker.h). */
#include "worker/worker.h"
#include "kernels/comm.h"
#include "kernels/comm_watch.h"
#include "worker/output_writer.h"
#include "worker/record_files.h"
#include "kernels/base.h"
#include "proto/wire.h"

#include <cjson/cJSON.h>
#include <czmq.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

typedef struct {
    int stage;
    ts_expander *expander;
    ts_renderer *renderer;
    int render_log; /* TESSERA_RENDER_LOG: ids rendered, one a line (tests count recomputation) */
    int discard_output;
    render_batching batching;   /* workers.batch, workers.unet_shared */
    /* render tasks finished in the session's decode stage, for the compute thread to send */
    pthread_mutex_t finished_lock;
    struct task_run *finished;
    int finished_fd;            /* eventfd: wakes the compute thread */
} compute;

/* ---------- doing one task ---------- */

/* The shard folder's writer, reused while consecutive records fall in the same shard. */
typedef struct {
    output_writer *writer;
    char dir[4096];
} shard_out;

static output_writer *writer_for(shard_out *so, const char *dir) {
    if (so->writer && !strcmp(so->dir, dir)) return so->writer;
    output_writer_finish(&so->writer);
    snprintf(so->dir, sizeof so->dir, "%s", dir);
    /* files mode; first_shard_set skips the writer's scan for tar shards in the folder */
    so->writer = output_writer_new(&(output_writer_options){.dir = dir, .format = OUTPUT_FILES, .first_shard_set = true});
    return so->writer;
}

/* One task being done: its records' results, filled by the expander or by the render
 * session's done() calls; Result sent when none is left. */
typedef struct task_run task_run;
struct task_run {
    task_run *next;                      /* the finished list */
    compute *w;
    ts_envelope *env;
    const Tessera__Task *task;
    size_t n;
    Tessera__RecordResult *rr, **ptrs;
    char (*files)[4200];
    char (*shas)[65];
    char **expanded, **errors, **fallbacks;
    render_request *reqs;
    shard_out so;
    size_t left;                         /* records not yet rendered */
    double last;                         /* when the previous record came out */
    char *task_error;
    uint64_t id;                         /* the network side's task id */
    bool async;                          /* finished through push_finished (the compute thread) */
};

static task_run *task_run_new(compute *w, const uint8_t *data, size_t size) {
    wire_status st;
    ts_envelope *env = wire_decode(data, size, &st);
    if (!env || env->body_case != TESSERA__ENVELOPE__BODY_TASK) { wire_free(env); return NULL; }
    task_run *t = ts_calloc(1, sizeof *t);
    t->w = w, t->env = env, t->task = env->task;
    size_t n = t->n = t->task->n_records, k = n ? n : 1;
    t->rr = ts_calloc(k, sizeof *t->rr);
    t->ptrs = ts_calloc(k, sizeof *t->ptrs);
    t->files = ts_calloc(k, sizeof *t->files);
    t->shas = ts_calloc(k, sizeof *t->shas);
    t->expanded = ts_calloc(k, sizeof *t->expanded);
    t->errors = ts_calloc(k, sizeof *t->errors);
    t->fallbacks = ts_calloc(k, sizeof *t->fallbacks);
    for (size_t i = 0; i < n; i++) {
        tessera__record_result__init(&t->rr[i]);
        t->rr[i].id = t->task->records[i]->id;
        t->ptrs[i] = &t->rr[i];
    }
    return t;
}

/* The encoded Result envelope (malloc'ed); frees the task. */
static uint8_t *task_run_finish(task_run *t, size_t *out_size) {
    Tessera__Result res = TESSERA__RESULT__INIT;
    res.task_id = t->task->task_id;
    res.lease_id = t->task->lease_id;
    res.stage = t->task->stage;
    if (t->task_error) res.error = t->task_error;   /* protobuf-c's unset strings are a static "", never freed */
    res.n_records = t->n;
    res.records = t->ptrs;
    ts_envelope out = TESSERA__ENVELOPE__INIT;
    out.body_case = TESSERA__ENVELOPE__BODY_RESULT;
    out.result = &res;
    uint8_t *buf = wire_encode(&out, out_size);
    for (size_t i = 0; i < t->n; i++) { free(t->expanded[i]); free(t->errors[i]); free(t->fallbacks[i]); }
    free(t->task_error);
    free(t->rr); free(t->ptrs); free(t->files); free(t->shas); free(t->expanded); free(t->errors); free(t->fallbacks);
    free(t->reqs);
    wire_free(t->env);
    free(t);
    return buf;
}

static void expand_records(compute *w, task_run *t) {
    size_t n = t->n;
    const char **prompts = ts_calloc(n ? n : 1, sizeof *prompts);
    uint64_t *seeds = ts_calloc(n ? n : 1, sizeof *seeds);
    const char **params = ts_calloc(n ? n : 1, sizeof *params);
    for (size_t i = 0; i < n; i++) {
        prompts[i] = t->task->records[i]->prompt;
        seeds[i] = t->task->records[i]->seed;
        params[i] = t->task->records[i]->params_json;
    }
    double t0 = ts_now();
    int rc = w->expander->expand_records
             ? w->expander->expand_records(w->expander, prompts, params, seeds, (int)n, t->expanded, t->errors, t->fallbacks)
             : w->expander->expand(w->expander, prompts, seeds, (int)n, t->expanded, t->errors, t->fallbacks);
    free(params);
    if (rc < 0) t->task_error = ts_strdup(ts_last_error());
    uint32_t ms = (uint32_t)((ts_now() - t0) * 1000 / (n ? n : 1));
    for (size_t i = 0; i < n && !t->task_error; i++) {
        Tessera__RecordResult *rr = &t->rr[i];
        rr->expanded = t->expanded[i] ? t->expanded[i] : (char *)"";
        if (!t->expanded[i] && !t->errors[i]) t->errors[i] = ts_strdup("expander returned nothing");
        if (t->errors[i]) rr->error = t->errors[i];
        if (t->fallbacks[i]) rr->expand_fallback = t->fallbacks[i];
        rr->expand_ms = ms;
    }
    free(prompts); free(seeds);
}

/* A finished task for the compute thread to send (render tasks finish in the decode stage). */
static void push_finished(compute *w, task_run *t) {
    pthread_mutex_lock(&w->finished_lock);
    task_run **p = &w->finished;
    while (*p) p = &(*p)->next;
    *p = t;
    pthread_mutex_unlock(&w->finished_lock);
    uint64_t one = 1;
    if (write(w->finished_fd, &one, sizeof one) < 0) { /* the counter is only a wake-up */ }
}

/* One rendered record (the render session's callback): written to its shard folder, its
 * result filled in; the task is finished with its last record. */
static void on_rendered(void *user, void *tag, int i, render_output *out, const char *error) {
    compute *w = user;
    task_run *t = tag;
    const Tessera__Settings *s = t->task->settings;
    const Tessera__Record *r = t->task->records[i];
    Tessera__RecordResult *rr = &t->rr[i];
    double now = ts_now();
    rr->render_ms = (uint32_t)((now - t->last) * 1000);   /* the worker's time per record */
    t->last = now;
    int rc = 0;
    if (error) {
        rr->error = t->errors[i] = ts_strdup(error);
        rc = 1;
    }
    char *file = t->files[i], *sha = t->shas[i];
    char key[OUTPUT_KEY_MAX], dir[4096], ext[16];
    uint64_t shard_size = s && s->shard_size ? s->shard_size : 1000;
    uint64_t shard = r->index / shard_size;
    const char *layout = s && s->layout[0] ? s->layout : "files";
    if (rc == 0) {
        output_key(r->id, key, sizeof key);
        const char *out_dir = s && s->output_dir[0] ? s->output_dir : ".";
        record_shard_dir(out_dir, layout, shard, dir, sizeof dir);
        record_sha256_hex(out->bytes, out->size, sha);
    }
    if (rc == 0 && !w->discard_output) {
        const char *prompt = t->reqs[i].prompt;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", r->id);
        cJSON_AddStringToObject(o, "prompt", r->prompt);
        if (r->expanded[0]) cJSON_AddStringToObject(o, "expanded", r->expanded);
        if (r->negative[0]) cJSON_AddStringToObject(o, "negative", r->negative);
        cJSON_AddNumberToObject(o, "seed", (double)r->seed);
        cJSON_AddStringToObject(o, "sha256", sha);
        char *js = cJSON_PrintUnformatted(o);
        snprintf(ext, sizeof ext, ".%s", out->ext);
        output_part parts[] = {{ext, out->bytes, out->size}, {".txt", prompt, strlen(prompt)}, {".json", js, strlen(js)}};
        output_writer *ow = writer_for(&t->so, dir);
        rc = ow ? output_writer_add(ow, key, parts, 3) : -1;
        free(js);
        cJSON_Delete(o);
        if (rc < 0) rr->error = t->errors[i] = ts_strdup(ts_last_error());
    }
    if (rc == 0) {
        snprintf(file, 4200, "%05llu%s/%s.%s", (unsigned long long)shard, strcmp(layout, "tar") ? "" : ".tar", key, out->ext);
        rr->file = file;
        rr->sha256 = sha;
        rr->bytes = out->size;
        if (w->render_log >= 0) {
            char line[1200];
            int n = snprintf(line, sizeof line, "%s\n", r->id);
            if (write(w->render_log, line, (size_t)(n < (int)sizeof line ? n : (int)sizeof line - 1)) < 0) { /* best effort */ }
        }
    }
    if (out) free(out->bytes), out->bytes = NULL;
    if (--t->left == 0) {
        output_writer_finish(&t->so.writer);
        if (t->async) push_finished(w, t);
    }
}

/* A task's records into the render session (up to workers.batch of them in one model call). */
static void render_records(compute *w, task_run *t, render_session *session) {
    const Tessera__Settings *s = t->task->settings;
    size_t n = t->n;
    t->reqs = ts_calloc(n ? n : 1, sizeof *t->reqs);
    for (size_t i = 0; i < n; i++) {
        const Tessera__Record *r = t->task->records[i];
        t->reqs[i] = (render_request){
            .prompt = r->expanded[0] ? r->expanded : r->prompt, .negative = r->negative,
            .params_json = r->params_json, .sampler = s ? s->sampler : "", .seed = r->seed,
            .width = s ? (int)s->width : 512, .height = s ? (int)s->height : 512,
            .steps = s ? (int)s->steps : 20, .cfg = s ? s->cfg : 7.5f,
        };
    }
    t->left = n, t->last = ts_now();
    if (n == 0) {
        if (t->async) push_finished(w, t);
        return;
    }
    render_session_submit(session, t->reqs, (int)n, t);
}

/* Starts a task: an expand task is done at once, a render task goes into the session and
 * finishes in its decode stage (push_finished). */
static void task_run_start(compute *w, task_run *t, render_session *session) {
    if (t->task->stage == TESSERA__STAGE__STAGE_RENDER && w->renderer && session) {
        render_records(w, t, session);
        return;
    }
    if (t->task->stage == TESSERA__STAGE__STAGE_EXPAND && w->expander) expand_records(w, t);
    else if (t->task->stage == TESSERA__STAGE__STAGE_RENDER && w->renderer)
        t->task_error = ts_strdup("worker: the render pipeline could not start (see the worker's log)");
    else t->task_error = ts_strdup("worker: this worker does not do that stage");
    if (t->async) push_finished(w, t);
}

/* The whole task in the calling thread (inline_compute): the encoded Result, or NULL. */
static uint8_t *do_task(compute *w, const uint8_t *data, size_t size, size_t *out_size) {
    task_run *t = task_run_new(w, data, size);
    if (!t) return NULL;
    render_session *session = NULL;
    if (t->task->stage == TESSERA__STAGE__STAGE_RENDER && w->renderer)
        session = render_session_new(w->renderer, &w->batching, on_rendered, w);
    task_run_start(w, t, session);
    render_session_destroy(&session, NULL);   /* waits for the records */
    return task_run_finish(t, out_size);
}

/* Sends the finished tasks' results up the pipe: [task id][Result]. */
static void send_finished(compute *w, zsock_t *pipe) {
    for (;;) {
        pthread_mutex_lock(&w->finished_lock);
        task_run *t = w->finished;
        if (t) w->finished = t->next;
        pthread_mutex_unlock(&w->finished_lock);
        if (!t) return;
        uint64_t id = t->id;
        size_t n = 0;
        uint8_t *buf = task_run_finish(t, &n);
        zmsg_t *msg = zmsg_new();
        zmsg_addmem(msg, &id, sizeof id);
        if (buf) zmsg_addmem(msg, buf, n);
        else zmsg_addmem(msg, NULL, 0);
        free(buf);
        zmsg_send(&msg, pipe);
    }
}

/* The compute thread: [task id][Task] in, [task id][Result] out, until $TERM. Render tasks
 * go into one render session that lives as long as the thread, so the model's stages run on
 * from one task into the next. */
static void compute_actor(zsock_t *pipe, void *arg) {
    compute *w = arg;
    render_session *session = NULL;
    if (w->renderer && !(session = render_session_new(w->renderer, &w->batching, on_rendered, w)))
        log_warn("render worker: %s", ts_last_error());
    zsock_signal(pipe, 0);
    zmq_pollitem_t items[2] = {{zsock_resolve(pipe), 0, ZMQ_POLLIN, 0}, {NULL, w->finished_fd, ZMQ_POLLIN, 0}};
    for (;;) {
        send_finished(w, pipe);
        if (zmq_poll(items, 2, -1) < 0) {
            if (zmq_errno() == EINTR) continue;
            break;
        }
        if (items[1].revents & ZMQ_POLLIN) {
            uint64_t count;
            if (read(w->finished_fd, &count, sizeof count) < 0) { /* a wake-up only */ }
        }
        if (!(items[0].revents & ZMQ_POLLIN)) continue;
        zmsg_t *msg = zmsg_recv(pipe);
        if (!msg) break;
        zframe_t *f = zmsg_first(msg);
        if (zframe_streq(f, "$TERM")) { zmsg_destroy(&msg); break; }
        uint64_t id = 0;
        if (zframe_size(f) == sizeof id) memcpy(&id, zframe_data(f), sizeof id);
        zframe_t *body = zmsg_next(msg);
        task_run *t = body ? task_run_new(w, zframe_data(body), zframe_size(body)) : NULL;
        zmsg_destroy(&msg);
        if (!t) {   /* not a task: an empty Result so the network side counts it done */
            zmsg_t *reply = zmsg_new();
            zmsg_addmem(reply, &id, sizeof id);
            zmsg_addmem(reply, NULL, 0);
            zmsg_send(&reply, pipe);
            continue;
        }
        t->id = id, t->async = true;
        task_run_start(w, t, session);
    }
    render_session_destroy(&session, NULL);   /* the records in flight are finished, not sent */
    pthread_mutex_lock(&w->finished_lock);
    task_run *t = w->finished;
    w->finished = NULL;
    pthread_mutex_unlock(&w->finished_lock);
    for (task_run *next; t; t = next) {
        next = t->next;
        size_t n;
        free(task_run_finish(t, &n));
    }
}

/* ---------- the network side ---------- */

typedef struct {
    uint64_t id;
    zframe_t *frame;
} held_task;

/* A render worker with a pipelined model keeps two tasks in its compute thread, so the
 * render session has the next task's records while it finishes the last one's. */
enum { WORKER_IN_FLIGHT_MAX = 2 };

typedef struct {
    const worker_options *opt;
    zsock_t *sock;
    zcert_t *cert;
    char server_key[41];
    held_task queue[1024];
    int queued;
    int running;                /* tasks in the compute thread */
    uint64_t running_ids[WORKER_IN_FLIGHT_MAX];
    int in_flight;              /* most tasks in the compute thread at once */
    int credit;                 /* tasks held at once: options.credit, at least in_flight */
} net;

static void send_env(net *n, ts_envelope *env) {
    size_t size;
    uint8_t *buf = wire_encode(env, &size);
    if (!buf) return;
    zmq_send(zsock_resolve(n->sock), buf, size, ZMQ_DONTWAIT);
    free(buf);
}

static void send_hello(net *n) {
    Tessera__Stage stages[1] = {(Tessera__Stage)n->opt->stage};
    Tessera__Hello h = TESSERA__HELLO__INIT;
    h.n_stages = 1;
    h.stages = stages;
    char *model = (char *)(n->opt->model ? n->opt->model : n->opt->backend);
    h.n_models = 1;
    h.models = &model;
    h.batch_size = (uint32_t)(n->opt->batch > 1 ? n->opt->batch : 1);
    h.tensor_parallel = n->opt->group ? (uint32_t)comm_size(n->opt->group) : 1;   /* a render group (render_group.h) */
    h.name = (char *)n->opt->name;
    ts_envelope env = TESSERA__ENVELOPE__INIT;
    env.body_case = TESSERA__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    send_env(n, &env);
}

static void send_credit(net *n) {
    int in_hand = n->queued + n->running;
    Tessera__WorkRequest r = TESSERA__WORK_REQUEST__INIT;
    r.credit = (uint32_t)(n->credit > in_hand ? n->credit - in_hand : 0);
    r.stage = (Tessera__Stage)n->opt->stage;
    ts_envelope env = TESSERA__ENVELOPE__INIT;
    env.body_case = TESSERA__ENVELOPE__BODY_WORK_REQUEST;
    env.work_request = &r;
    send_env(n, &env);
}

static void send_heartbeat(net *n) {
    uint64_t ids[1024 + WORKER_IN_FLIGHT_MAX];
    size_t k = 0;
    for (int i = 0; i < n->queued; i++) ids[k++] = n->queue[i].id;
    for (int i = 0; i < n->running; i++) ids[k++] = n->running_ids[i];
    Tessera__Heartbeat hb = TESSERA__HEARTBEAT__INIT;
    hb.n_task_ids = k;
    hb.task_ids = ids;
    ts_envelope env = TESSERA__ENVELOPE__INIT;
    env.body_case = TESSERA__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    send_env(n, &env);
}

/* Hands back the queued tasks, and the running ones too when `running` (a render group that
 * lost a rank: their results will never come). */
static void send_hand_back(net *n, bool running) {
    int k = running ? n->running : 0;
    if (!n->queued && !k) return;
    uint64_t ids[1024 + WORKER_IN_FLIGHT_MAX];
    for (int i = 0; i < n->queued; i++) { ids[i] = n->queue[i].id; zframe_destroy(&n->queue[i].frame); }
    for (int i = 0; i < k; i++) ids[n->queued + i] = n->running_ids[i];
    Tessera__HandBack hb = TESSERA__HAND_BACK__INIT;
    hb.n_task_ids = (size_t)(n->queued + k);
    hb.task_ids = ids;
    ts_envelope env = TESSERA__ENVELOPE__INIT;
    env.body_case = TESSERA__ENVELOPE__BODY_HAND_BACK;
    env.hand_back = &hb;
    send_env(n, &env);
    log_info("handed back %d queued and %d running task(s)", n->queued, k);
    n->queued = 0;
    n->running -= k;
}

/* The rank of this worker's render group seen dead, or -1. */
static int group_lost(const net *n) {
    return n->opt->group_watch ? comm_watch_lost(n->opt->group_watch) : -1;
}

static int connect_socket(net *n) {
    n->sock = zsock_new(ZMQ_DEALER);
    if (!n->sock) return ts_fail("cannot create ZeroMQ socket");
    zsock_set_linger(n->sock, 1000);
    zsock_set_rcvhwm(n->sock, 0);
    zsock_set_sndhwm(n->sock, 0);
    zsock_set_maxmsgsize(n->sock, (int64_t)TS_WIRE_MAX_BYTES + 1);
    if (n->cert) {
        zcert_apply(n->cert, n->sock);
        zsock_set_curve_serverkey(n->sock, n->server_key);
    }
    if (zsock_connect(n->sock, "%s", n->opt->endpoint) < 0)
        return ts_fail("cannot connect to %s: %s", n->opt->endpoint, zmq_strerror(zmq_errno()));
    return 0;
}

int worker_run(const worker_options *o) {
    net n;
    memset(&n, 0, sizeof n);
    n.opt = o;
    if (o->credit < 1 || o->credit > 1024) return ts_fail("worker credit %d out of [1, 1024]", o->credit);
    if (o->batch < 0 || o->batch > 64) return ts_fail("worker batch %d out of [1, 64]", o->batch);
    if (o->client_cert) {
        n.cert = zcert_load(o->client_cert);
        zcert_t *server = o->server_cert ? zcert_load(o->server_cert) : NULL;
        if (!n.cert) return ts_fail("%s: cannot load this worker's certificate", o->client_cert);
        if (!server) { zcert_destroy(&n.cert); return ts_fail("%s: cannot load the coordinator's public certificate", o->server_cert ? o->server_cert : "(none given)"); }
        snprintf(n.server_key, sizeof n.server_key, "%s", zcert_public_txt(server));
        zcert_destroy(&server);
    }
    compute w = {.stage = o->stage, .render_log = -1, .discard_output = o->discard_output,
                 .batching = {.batch = o->batch > 1 ? o->batch : 1, .unet_shared = o->unet_shared},
                 .finished_lock = PTHREAD_MUTEX_INITIALIZER, .finished_fd = -1};
    if (o->stage == TESSERA__STAGE__STAGE_EXPAND) w.expander = backend_expander_new(o->backend, o->model, o->device);
    if (w.expander && backend_expander_set_check(w.expander, o->expand_check, o->expand_retries) != 0)
        backend_expander_destroy(&w.expander);
    else if (o->group || o->tp_pieces)
        w.renderer = backend_renderer_new_in_group(o->backend, o->model, o->device, o->group, o->parallel, o->tp_pieces);
    else w.renderer = backend_renderer_new(o->backend, o->model, o->device);
    if (!w.expander && !w.renderer) { zcert_destroy(&n.cert); return -1; }
    const char *log_path = getenv("TESSERA_RENDER_LOG");
    if (log_path && *log_path) w.render_log = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

    n.in_flight = w.renderer && w.renderer->pipelined && !o->inline_compute ? WORKER_IN_FLIGHT_MAX : 1;
    n.credit = o->credit > n.in_flight ? o->credit : n.in_flight;
    if (!o->inline_compute && (w.finished_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        backend_expander_destroy(&w.expander);
        backend_renderer_destroy(&w.renderer);
        zcert_destroy(&n.cert);
        return ts_fail("worker: cannot make an eventfd: %s", strerror(errno));
    }
    zactor_t *actor = o->inline_compute ? NULL : zactor_new(compute_actor, &w);
    double hb = o->heartbeat_s > 0 ? o->heartbeat_s : 1;
    double backoff = hb, backoff_max = o->reconnect_max_s > hb ? o->reconnect_max_s : 8 * hb;
    int rc = 0, done = 0, stopping = 0, lost = -1;
    while (!done && lost < 0) {
        if (connect_socket(&n) < 0) { rc = -1; break; }
        send_hello(&n);
        if (!stopping) send_credit(&n);
        double last_heard = ts_now(), next_hb = ts_now() + hb;
        zpoller_t *poller = zpoller_new(n.sock, actor ? zactor_sock(actor) : NULL, NULL);
        for (;;) {
            if (o->stop && __atomic_load_n(o->stop, __ATOMIC_RELAXED) && !stopping) {
                stopping = 1;
                send_hand_back(&n, false);
            }
            if ((lost = group_lost(&n)) >= 0) break;
            if (stopping && !n.running && !n.queued) { done = 1; break; }
            /* start the next task */
            if (n.running < n.in_flight && n.queued && !stopping) {
                held_task t = n.queue[0];
                memmove(n.queue, n.queue + 1, (size_t)(n.queued - 1) * sizeof *n.queue);
                n.queued--;
                if (actor) {
                    n.running_ids[n.running++] = t.id;
                    zmsg_t *msg = zmsg_new();
                    zmsg_addmem(msg, &t.id, sizeof t.id);
                    zmsg_append(msg, &t.frame);
                    zmsg_send(&msg, zactor_sock(actor));
                } else {
                    size_t size = 0;
                    uint8_t *buf = do_task(&w, zframe_data(t.frame), zframe_size(t.frame), &size);
                    zframe_destroy(&t.frame);
                    if (buf) zmq_send(zsock_resolve(n.sock), buf, size, ZMQ_DONTWAIT);
                    free(buf);
                    if (!stopping) send_credit(&n);
                }
                continue;
            }
            int wait_ms = (int)((next_hb - ts_now()) * 1000);
            void *ready = zpoller_wait(poller, wait_ms > 0 ? wait_ms : 0);
            double now = ts_now();
            if (ready == n.sock) {
                zframe_t *f = zframe_recv(n.sock);
                if (!f) continue;
                wire_status st;
                ts_envelope *env = wire_decode(zframe_data(f), zframe_size(f), &st);
                if (!env) { log_warn("dropped a malformed message from the coordinator"); zframe_destroy(&f); continue; }
                last_heard = now;
                backoff = hb;
                if (env->body_case == TESSERA__ENVELOPE__BODY_TASK) {
                    if (stopping || n.queued == (int)(sizeof n.queue / sizeof n.queue[0])) {
                        uint64_t id = env->task->task_id;
                        Tessera__HandBack back = TESSERA__HAND_BACK__INIT;
                        back.n_task_ids = 1;
                        back.task_ids = &id;
                        ts_envelope e2 = TESSERA__ENVELOPE__INIT;
                        e2.body_case = TESSERA__ENVELOPE__BODY_HAND_BACK;
                        e2.hand_back = &back;
                        send_env(&n, &e2);
                        zframe_destroy(&f);
                    } else {
                        n.queue[n.queued].id = env->task->task_id;
                        n.queue[n.queued++].frame = f;
                    }
                } else {
                    if (env->body_case == TESSERA__ENVELOPE__BODY_SHUTDOWN) {
                        log_info("coordinator says shutdown: %s", env->shutdown->reason);
                        done = 1;
                    }
                    zframe_destroy(&f);
                }
                wire_free(env);
                if (done) break;
            } else if (actor && ready == zactor_sock(actor)) {
                zmsg_t *msg = zmsg_recv(zactor_sock(actor));   /* [task id][Result] */
                zframe_t *idf = msg ? zmsg_first(msg) : NULL, *f = msg ? zmsg_next(msg) : NULL;
                uint64_t id = 0;
                if (idf && zframe_size(idf) == sizeof id) memcpy(&id, zframe_data(idf), sizeof id);
                if ((lost = group_lost(&n)) >= 0) {
                    /* a render group that has just lost a rank sends nothing more: this task
                     * stays among the running ones, handed back below */
                    zmsg_destroy(&msg);
                    break;
                }
                for (int i = 0; i < n.running; i++)
                    if (n.running_ids[i] == id) {
                        n.running_ids[i] = n.running_ids[--n.running];
                        break;
                    }
                if (f && zframe_size(f)) zmq_send(zsock_resolve(n.sock), zframe_data(f), zframe_size(f), ZMQ_DONTWAIT);
                zmsg_destroy(&msg);
                if (!stopping) send_credit(&n);
            } else if (zpoller_terminated(poller)) {
                /* czmq's interrupt flag: our handlers own signals, so only a real error lands here */
            }
            if (now >= next_hb) {
                next_hb = now + hb;
                send_heartbeat(&n);
                if (!stopping && n.queued + n.running < n.credit) send_credit(&n);
            }
            if (now - last_heard > 5 * hb) {
                log_warn("coordinator silent for %.1f s; reconnecting in %.1f s", now - last_heard, backoff);
                break;
            }
        }
        if (lost >= 0) {
            /* the running tasks are given back with the queued ones; the socket stays open a
             * moment so the message leaves (the leases would expire anyway if it did not) */
            send_hand_back(&n, true);
            zclock_sleep(500);
        }
        zpoller_destroy(&poller);
        zsock_destroy(&n.sock);
        if (lost >= 0) {
            /* the compute thread is inside a collective with the dead rank: leave it there */
            zcert_destroy(&n.cert);
            return ts_fail("render group: rank %d of the group ended without leaving (killed or crashed); "
                           "its tasks were handed back", lost);
        }
        if (!done) {
            double until = ts_now() + backoff;
            while (ts_now() < until && !(o->stop && __atomic_load_n(o->stop, __ATOMIC_RELAXED))) zclock_sleep(50);
            backoff = backoff * 2 > backoff_max ? backoff_max : backoff * 2;
            if (o->stop && __atomic_load_n(o->stop, __ATOMIC_RELAXED) && !n.running) { n.queued = 0; done = 1; }
        }
    }
    for (int i = 0; i < n.queued; i++) zframe_destroy(&n.queue[i].frame);
    zactor_destroy(&actor);
    backend_expander_destroy(&w.expander);
    backend_renderer_destroy(&w.renderer);
    if (w.render_log >= 0) close(w.render_log);
    if (w.finished_fd >= 0) close(w.finished_fd);
    zcert_destroy(&n.cert);
    return rc;
}
