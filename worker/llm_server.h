/*
 * llm_server.h — the embedded LLM behind an OpenAI-compatible HTTP endpoint
 * (`tessera serve-llm`), so one loaded model can serve many expander workers, and the
 * HTTP backend (llm_http.h) has a real server to be tested against.
 *
 *   POST /v1/chat/completions   {"messages": [...], "max_tokens", "temperature",
 *                                "top_p", "seed", "stop"}  ->  chat.completion JSON
 *   GET  /v1/models, GET /health
 *
 * Requests are answered one generation at a time (a mutex around the model). For tests,
 * faults can be injected: the first N requests answered 503, or every answer delayed.
 */
#ifndef TESSERA_LLM_SERVER_H
#define TESSERA_LLM_SERVER_H

#include "kernels/base.h"

typedef struct llm_server_options {
    const char *model, *tokenizer, *template_name;
    const char *host;             /* default 127.0.0.1 */
    int port;
    int fault_503;                /* answer the first N chat requests with 503 */
    int fault_stall_ms;           /* sleep this long before every chat answer */
} llm_server_options;

typedef struct llm_server llm_server;

llm_server *llm_server_start(const llm_server_options *options);
int llm_server_port(const llm_server *self);
/* Chat requests answered so far (including injected faults). */
long llm_server_requests(const llm_server *self);
void llm_server_stop(llm_server **self);

#endif
