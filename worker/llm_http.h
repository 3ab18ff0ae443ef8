/*
 * llm_http.h — prompt expansion through any OpenAI-compatible server
 * (`POST {url}/v1/chat/completions`: vLLM, llama.cpp's server, TGI, `tessera serve-llm`).
 *
 * Each prompt becomes the same upsampling conversation the embedded expander uses
 * (models/llm/upsample.h) and the reply goes through the same clean-up, so both backends
 * judge replies alike. Requests run concurrently up to a limit; each has a timeout;
 * 429 and 5xx answers and connection failures are retried with exponential backoff
 * (doubling from backoff_s, with jitter, honouring Retry-After). The API key is read
 * from an environment variable and is never logged.
 */
#ifndef TESSERA_LLM_HTTP_H
#define TESSERA_LLM_HTTP_H

#include "models/llm/llm_expander.h"

typedef struct llm_http_options {
    const char *url;             /* "http://127.0.0.1:8080" (the /v1/chat/completions path is added) */
    const char *model;           /* "model" field of the request; NULL: "default" */
    const char *api_key_env;     /* variable holding the key; NULL: OPENAI_API_KEY */
    const char *system_file, *examples_file;
    double timeout_s;            /* per attempt; default 60 */
    int retries;                 /* extra attempts after the first; default 4 */
    double backoff_s;            /* first wait; default 0.5 */
    int concurrency;             /* requests in flight; default 8 */
    float temperature, top_p;
    int max_tokens;
    uint64_t seed;               /* 0: not sent */
} llm_http_options;

llm_http_options llm_http_default_options(void);

typedef struct llm_http llm_http;

llm_http *llm_http_new(const llm_http_options *options);
void llm_http_destroy(llm_http **self);

/* Expands n prompts (as llm_expander_run): a request that fails after its retries is a
 * fallback with verdict UPSAMPLE_FAILED and the reason in raw. Returns 0. */
int llm_http_expand(llm_http *self, int n, const char *const *prompts, expansion *out);

/* One chat request with retries: the reply's content (malloc'd) and whether the server
 * cut it at max_tokens. -1 with a message (status, timeout) after the last attempt. */
int llm_http_chat(llm_http *self, const chat_message *messages, int n, char **content, bool *truncated);

#endif
