/* llm_server.c — OpenAI-compatible chat endpoint over the embedded LLM, on libmicrohttpd. */
#include "worker/llm_server.h"
#include "models/llm/llm_codec.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_BODY (1u << 20)

struct llm_server {
    llm_server_options o;
    ts_ctx *compute;                 /* where the model runs */
    struct MHD_Daemon *daemon;
    llm *model;
    llm_codec *codec;
    llm_state *state;
    pthread_mutex_t lock;        /* one generation at a time */
    long requests;
    char model_name[256];
};

typedef struct { char *data; size_t n; bool too_big; } upload;

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *json) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(json), (void *)json, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *message) {
    cJSON *root = cJSON_CreateObject(), *err = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(err, "message", message);
    cJSON_AddStringToObject(err, "type", status >= 500 ? "server_error" : "invalid_request_error");
    char *s = cJSON_PrintUnformatted(root);
    enum MHD_Result rc = reply(c, status, s);
    free(s);
    cJSON_Delete(root);
    return rc;
}

static double number_or(const cJSON *o, const char *key, double dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* A JSON string literal of n bytes of text, NUL bytes included (as \u0000): cJSON's
 * strings end at the first NUL, and generated text may hold one (a <0x00> byte token). */
static char *json_string(const char *text, size_t n) {
    char *out = ts_malloc(n * 6 + 3), *w = out;
    *w++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch == '"' || ch == '\\') { *w++ = '\\'; *w++ = (char)ch; }
        else if (ch == '\n') { *w++ = '\\'; *w++ = 'n'; }
        else if (ch == '\r') { *w++ = '\\'; *w++ = 'r'; }
        else if (ch == '\t') { *w++ = '\\'; *w++ = 't'; }
        else if (ch < 0x20) w += sprintf(w, "\\u%04x", ch);
        else *w++ = (char)ch;
    }
    *w++ = '"';
    *w = 0;
    return out;
}

/* Builds the chat.completion answer for a parsed request; NULL + message on bad input. */
static char *complete_chat(llm_server *s, const cJSON *req, long number, unsigned *status) {
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(req, "messages");
    int n = cJSON_GetArraySize(msgs);
    if (!cJSON_IsArray(msgs) || n == 0 || n > 256) { *status = 400; ts_fail("'messages' must be a non-empty array"); return NULL; }
    chat_message *m = ts_calloc((size_t)n, sizeof *m);
    for (int i = 0; i < n; i++) {
        const cJSON *x = cJSON_GetArrayItem(msgs, i);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(x, "role"), *content = cJSON_GetObjectItemCaseSensitive(x, "content");
        if (!cJSON_IsString(role) || !cJSON_IsString(content)) {
            free(m);
            *status = 400;
            ts_fail("messages[%d] needs string 'role' and 'content'", i);
            return NULL;
        }
        m[i] = (chat_message){role->valuestring, content->valuestring};
    }
    char *prompt = llm_codec_render_chat(s->codec, m, n);
    free(m);
    int *ids = NULL, n_ids = 0;
    if (llm_codec_encode(s->codec, prompt, false, true, &ids, &n_ids) != 0) { free(prompt); *status = 400; return NULL; }
    free(prompt);

    llm_sampling sp = llm_sampling_greedy();
    sp.temperature = (float)number_or(req, "temperature", 0.7);
    sp.top_p = (float)number_or(req, "top_p", 1.0);
    sp.seed = (uint64_t)number_or(req, "seed", 0);
    int max_tokens = (int)number_or(req, "max_tokens", 256);
    if (max_tokens <= 0 || max_tokens > 4096) max_tokens = 256;
    const char *stops[4];
    int n_stop = 0;
    const cJSON *stop = cJSON_GetObjectItemCaseSensitive(req, "stop"), *st;
    if (cJSON_IsString(stop)) stops[n_stop++] = stop->valuestring;
    const cJSON *stop_list = cJSON_IsArray(stop) ? stop : NULL;
    cJSON_ArrayForEach(st, stop_list) if (cJSON_IsString(st) && n_stop < 4) stops[n_stop++] = st->valuestring;
    int end_ids[8];
    llm_generation gen = {.max_tokens = max_tokens, .stop = stops, .n_stop = n_stop};
    gen.n_end = llm_codec_end_ids(s->codec, end_ids, 8);
    gen.end_ids = gen.n_end ? end_ids : NULL;

    pthread_mutex_lock(&s->lock);
    llm_detokenizer detok = llm_codec_detokenizer(s->codec);
    llm_output out = {0};
    const int *prompts[1] = {ids};
    int rc = llm_generate(s->model, s->state, 1, prompts, &n_ids, &sp, &gen, &detok, &out);
    pthread_mutex_unlock(&s->lock);
    free(ids);
    if (rc != 0) { *status = 500; return NULL; }

    cJSON *root = cJSON_CreateObject();
    char id[64];
    snprintf(id, sizeof id, "chatcmpl-%ld", number);   /* this request's own number: s->requests moves under other threads */
    cJSON_AddStringToObject(root, "id", id);
    cJSON_AddStringToObject(root, "object", "chat.completion");
    cJSON_AddNumberToObject(root, "created", (double)time(NULL));
    cJSON_AddStringToObject(root, "model", s->model_name);
    cJSON *choice = cJSON_CreateObject();
    cJSON_AddNumberToObject(choice, "index", 0);
    cJSON *msg = cJSON_AddObjectToObject(choice, "message");
    cJSON_AddStringToObject(msg, "role", "assistant");
    char *content = json_string(out.text ? out.text : "", out.text ? out.text_len : 0);
    cJSON_AddRawToObject(msg, "content", content);
    free(content);
    cJSON_AddStringToObject(choice, "finish_reason", out.finish == LLM_FINISH_LENGTH ? "length" : "stop");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "choices"), choice);
    cJSON *usage = cJSON_AddObjectToObject(root, "usage");
    cJSON_AddNumberToObject(usage, "prompt_tokens", n_ids);
    cJSON_AddNumberToObject(usage, "completion_tokens", out.n_tokens);
    cJSON_AddNumberToObject(usage, "total_tokens", n_ids + out.n_tokens);
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    llm_output_free(&out, 1);
    *status = 200;
    return json;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *data, size_t *size, void **state) {
    llm_server *s = cls;
    (void)version;
    if (strcmp(method, "GET") == 0) {
        if (strcmp(url, "/health") == 0) return reply(c, 200, "{\"status\":\"ok\"}");
        if (strcmp(url, "/v1/models") == 0) {
            char body[512];
            snprintf(body, sizeof body, "{\"object\":\"list\",\"data\":[{\"id\":\"%s\",\"object\":\"model\"}]}", s->model_name);
            return reply(c, 200, body);
        }
        return reply_error(c, 404, "not found");
    }
    if (strcmp(method, "POST") != 0) return reply_error(c, 405, "method not allowed");
    upload *u = *state;
    if (!u) { *state = ts_calloc(1, sizeof(upload)); return MHD_YES; }
    if (*size > 0) {   /* more of the body */
        if (u->n + *size > MAX_BODY) u->too_big = true;
        else {
            u->data = ts_realloc(u->data, u->n + *size + 1);
            memcpy(u->data + u->n, data, *size);
            u->n += *size;
            u->data[u->n] = 0;
        }
        *size = 0;
        return MHD_YES;
    }
    if (strcmp(url, "/v1/chat/completions") != 0) return reply_error(c, 404, "not found");
    if (u->too_big) return reply_error(c, 413, "request body over 1 MB");
    long number = __atomic_add_fetch(&s->requests, 1, __ATOMIC_SEQ_CST);
    if (number <= s->o.fault_503) return reply_error(c, 503, "injected fault: service unavailable");
    if (s->o.fault_stall_ms > 0) usleep((useconds_t)s->o.fault_stall_ms * 1000);
    cJSON *req = cJSON_Parse(u->data ? u->data : "");
    if (!cJSON_IsObject(req)) { cJSON_Delete(req); return reply_error(c, 400, "the body is not a JSON object"); }
    unsigned status = 500;
    char *json = complete_chat(s, req, number, &status);
    cJSON_Delete(req);
    enum MHD_Result rc = json ? reply(c, status, json) : reply_error(c, status, ts_last_error());
    free(json);
    return rc;
}

static void request_done(void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode code) {
    (void)cls; (void)c; (void)code;
    upload *u = *state;
    if (u) { free(u->data); free(u); *state = NULL; }
}

llm_server *llm_server_start(const llm_server_options *o) {
    llm_server *s = ts_calloc(1, sizeof *s);
    s->o = *o;
    pthread_mutex_init(&s->lock, NULL);
    s->model = llm_open(o->model);
    if (!s->model) goto fail;
    s->codec = llm_codec_open(s->model, o->model, o->tokenizer);
    if (!s->codec || llm_codec_set_template(s->codec, o->template_name) != 0) goto fail;
    int ctx = llm_get_config(s->model)->max_seq_len;
    if (ctx <= 0 || ctx > 4096) ctx = 4096;
    s->compute = ts_ctx_new("cpu", 0);
    if (!s->compute) goto fail;
    s->state = llm_state_new(s->model, s->compute, 1, ctx, 512);
    if (!s->state) goto fail;
    const char *slash = strrchr(o->model, '/');
    snprintf(s->model_name, sizeof s->model_name, "%s", slash ? slash + 1 : o->model);

    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
    if (inet_pton(AF_INET, o->host ? o->host : "127.0.0.1", &addr.sin_addr) != 1) {
        ts_fail("serve-llm: bad host '%s' (an IPv4 address)", o->host);
        goto fail;
    }
    s->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG,
                                 (uint16_t)o->port, NULL, NULL, handle, s,
                                 MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                                 MHD_OPTION_NOTIFY_COMPLETED, request_done, s,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_END);
    if (!s->daemon) { ts_fail("serve-llm: cannot listen on %s:%d", o->host ? o->host : "127.0.0.1", o->port); goto fail; }
    return s;
fail:
    llm_server_stop(&s);
    return NULL;
}

int llm_server_port(const llm_server *s) {
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info ? info->port : s->o.port;
}

long llm_server_requests(const llm_server *s) { return __atomic_load_n(&s->requests, __ATOMIC_SEQ_CST); }

void llm_server_stop(llm_server **self) {
    if (!self || !*self) return;
    llm_server *s = *self;
    if (s->daemon) MHD_stop_daemon(s->daemon);
    llm_state_destroy(&s->state);
    ts_ctx_destroy(&s->compute);
    llm_codec_destroy(&s->codec);
    llm_destroy(&s->model);
    pthread_mutex_destroy(&s->lock);
    free(s);
    *self = NULL;
}
