/* llm_http.c — the OpenAI-compatible chat client (see llm_http.h), through libcurl. */
#include "worker/llm_http.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct llm_http {
    llm_http_options o;
    char *endpoint;
    char *auth_header;           /* "Authorization: Bearer ..." or NULL; never printed */
    upsample_instruction *instruction;
};

llm_http_options llm_http_default_options(void) {
    return (llm_http_options){.timeout_s = 60, .retries = 4, .backoff_s = 0.5, .concurrency = 8,
                              .temperature = 0.7f, .top_p = 0.9f, .max_tokens = 160};
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

llm_http *llm_http_new(const llm_http_options *o) {
    if (!o->url || !*o->url) { ts_fail("llm http: no server URL"); return NULL; }
    pthread_once(&curl_once, curl_init_once);
    llm_http *h = ts_calloc(1, sizeof *h);
    h->o = *o;
    if (h->o.concurrency <= 0) h->o.concurrency = 1;
    if (h->o.timeout_s <= 0) h->o.timeout_s = 60;
    size_t n = strlen(o->url) + 32;
    h->endpoint = ts_malloc(n);
    const char *url = o->url;
    size_t ul = strlen(url);
    while (ul > 0 && url[ul - 1] == '/') ul--;
    snprintf(h->endpoint, n, "%.*s/v1/chat/completions", (int)ul, url);
    const char *key = getenv(o->api_key_env ? o->api_key_env : "OPENAI_API_KEY");
    if (key && *key) {
        size_t k = strlen(key) + 32;
        h->auth_header = ts_malloc(k);
        snprintf(h->auth_header, k, "Authorization: Bearer %s", key);
    }
    h->instruction = upsample_load_instruction(o->system_file, o->examples_file);
    if (!h->instruction) { llm_http_destroy(&h); return NULL; }
    return h;
}

void llm_http_destroy(llm_http **self) {
    if (!self || !*self) return;
    llm_http *h = *self;
    if (h->auth_header) {   /* the key does not outlive its use in memory either */
        memset(h->auth_header, 0, strlen(h->auth_header));
        free(h->auth_header);
    }
    free(h->endpoint);
    upsample_instruction_destroy(&h->instruction);
    free(h);
    *self = NULL;
}

typedef struct { char *data; size_t n; } body;

static size_t on_body(char *p, size_t size, size_t count, void *ctx) {
    body *b = ctx;
    size_t k = size * count;
    if (b->n + k > (16u << 20)) return 0;   /* a reply over 16 MB is not a chat answer */
    b->data = ts_realloc(b->data, b->n + k + 1);
    memcpy(b->data + b->n, p, k);
    b->n += k;
    b->data[b->n] = 0;
    return k;
}


typedef struct { double retry_after; } header_state;

static size_t on_header(char *p, size_t size, size_t count, void *ctx) {
    header_state *hs = ctx;
    size_t k = size * count;
    if (k > 12 && strncasecmp(p, "Retry-After:", 12) == 0) hs->retry_after = atof(p + 12);
    return k;
}

static char *request_json(const llm_http *h, const chat_message *m, int n) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", h->o.model ? h->o.model : "default");
    cJSON *msgs = cJSON_AddArrayToObject(root, "messages");
    for (int i = 0; i < n; i++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "role", m[i].role);
        cJSON_AddStringToObject(x, "content", m[i].content);
        cJSON_AddItemToArray(msgs, x);
    }
    cJSON_AddNumberToObject(root, "temperature", h->o.temperature);
    cJSON_AddNumberToObject(root, "top_p", h->o.top_p);
    cJSON_AddNumberToObject(root, "max_tokens", h->o.max_tokens);
    if (h->o.seed) cJSON_AddNumberToObject(root, "seed", (double)h->o.seed);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

/* 0: content parsed; 1: retryable failure; -1: permanent failure (message set). */
static int attempt(const llm_http *h, const char *json, char **content, bool *truncated, double *wait_hint) {
    CURL *c = curl_easy_init();
    if (!c) return ts_fail("llm http: curl_easy_init failed"), 1;
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (h->auth_header) headers = curl_slist_append(headers, h->auth_header);
    body b = {0};
    header_state hs = {0};
    curl_easy_setopt(c, CURLOPT_URL, h->endpoint);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &hs);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(h->o.timeout_s * 1000));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)fmin(h->o.timeout_s * 1000, 10000));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);   /* holds the key: freed right away */
    curl_easy_cleanup(c);
    int result;
    *wait_hint = hs.retry_after;
    if (rc != CURLE_OK) {
        ts_fail("%s: %s", h->endpoint, curl_easy_strerror(rc));
        result = 1;
    } else if (status == 429 || status >= 500) {
        ts_fail("%s: HTTP %ld", h->endpoint, status);
        result = 1;
    } else if (status != 200) {
        ts_fail("%s: HTTP %ld: %.200s", h->endpoint, status, b.data ? b.data : "");
        result = -1;
    } else {
        cJSON *root = cJSON_Parse(b.data ? b.data : "");
        const cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "choices"), 0);
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(choice, "message");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(msg, "content");
        const cJSON *finish = cJSON_GetObjectItemCaseSensitive(choice, "finish_reason");
        if (cJSON_IsString(text)) {
            *content = ts_strdup(text->valuestring);
            *truncated = cJSON_IsString(finish) && strcmp(finish->valuestring, "length") == 0;
            result = 0;
        } else {
            ts_fail("%s: the reply has no choices[0].message.content", h->endpoint);
            result = -1;
        }
        cJSON_Delete(root);
    }
    free(b.data);
    return result;
}

static void sleep_s(double s) {
    struct timespec t = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&t, NULL);
}

int llm_http_chat(llm_http *h, const chat_message *m, int n, char **content, bool *truncated) {
    char *json = request_json(h, m, n);
    double wait = h->o.backoff_s;
    unsigned seed = (unsigned)(uintptr_t)content ^ (unsigned)time(NULL);
    int rc = -1;
    for (int k = 0; k <= h->o.retries; k++) {
        double hint = 0;
        int r = attempt(h, json, content, truncated, &hint);
        if (r == 0) { rc = 0; break; }
        if (r < 0 || k == h->o.retries) break;
        double jitter = 0.5 + (double)rand_r(&seed) / RAND_MAX;   /* spreads retries of many workers */
        double w = hint > 0 ? hint : wait * jitter;
        log_debug("llm http: attempt %d failed (%s); retrying in %.2f s", k + 1, ts_last_error(), w);
        sleep_s(w);
        wait *= 2;
    }
    if (rc != 0) ts_fail_wrap("after %d attempts", h->o.retries + 1);
    free(json);
    return rc;
}

typedef struct {
    llm_http *h;
    int n;
    const char *const *prompts;
    expansion *out;
    int next;
    pthread_mutex_t lock;
} job;

static void *run_requests(void *arg) {
    job *j = arg;
    int count = 2 + 2 * upsample_example_count(j->h->instruction);
    chat_message *msgs = ts_malloc(sizeof(chat_message) * (size_t)count);
    for (;;) {
        pthread_mutex_lock(&j->lock);
        int i = j->next++;
        pthread_mutex_unlock(&j->lock);
        if (i >= j->n) break;
        upsample_messages(j->h->instruction, j->prompts[i], msgs);
        char *reply = NULL;
        bool truncated = false;
        expansion *e = &j->out[i];
        if (llm_http_chat(j->h, msgs, count, &reply, &truncated) != 0) {
            e->verdict = UPSAMPLE_FAILED;
            e->raw = ts_strdup(ts_last_error());
            e->text = ts_strdup(j->prompts[i]);
            continue;
        }
        e->raw = reply;
        char *clean = upsample_clean(reply, truncated, &e->verdict);
        if (e->verdict == UPSAMPLE_OK) e->text = clean;
        else { free(clean); e->text = ts_strdup(j->prompts[i]); }
    }
    free(msgs);
    return NULL;
}

int llm_http_expand(llm_http *h, int n, const char *const *prompts, expansion *out) {
    job j = {.h = h, .n = n, .prompts = prompts, .out = out};
    pthread_mutex_init(&j.lock, NULL);
    int threads = h->o.concurrency < n ? h->o.concurrency : n;
    pthread_t *t = ts_malloc(sizeof(pthread_t) * (size_t)(threads + 1));
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, run_requests, &j);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    free(t);
    pthread_mutex_destroy(&j.lock);
    return 0;
}
