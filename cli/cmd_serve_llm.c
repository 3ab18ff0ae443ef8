/*
 * cmd_serve_llm.c — `tessera serve-llm -m MODEL --port P`: the embedded LLM as an
 * OpenAI-compatible /v1/chat/completions server on this machine (see worker/llm_server.h).
 * Runs until SIGINT/SIGTERM. --fault-503 N and --fault-stall-ms MS inject failures for tests.
 */
#include "cli/args.h"
#include "cli/commands.h"
#include "worker/llm_server.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) { (void)sig; __atomic_store_n(&stop_requested, 1, __ATOMIC_RELAXED); }

static int usage(int status) {
    fprintf(status ? stderr : stdout,
            "usage: tessera serve-llm -m MODEL [--port P] [--host ADDR] [options]\n"
            "  -m MODEL            .gguf file or Hugging Face folder\n"
            "  --port P            TCP port (default 8080; 0 picks a free one, printed)\n"
            "  --host ADDR         IPv4 address to listen on (default 127.0.0.1)\n"
            "  --template NAME     chat template override (chatml, llama3, llama2, mistral)\n"
            "  --tokenizer PATH    tokenizer override\n"
            "  --fault-503 N       answer the first N chat requests with 503 (tests)\n"
            "  --fault-stall-ms MS delay every chat answer by MS (tests)\n");
    return status;
}

int cmd_serve_llm(int argc, char **argv) {
    llm_server_options o = {.port = 8080, .host = "127.0.0.1"};
    cli_args args;
    cli_args_init(&args, argc, argv);
    bool option;
    for (const char *a; (a = cli_args_next(&args, &option));) {
        if (!option) { fprintf(stderr, "tessera serve-llm: unexpected argument '%s'\n", a); return usage(2); }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return usage(0);
        const char *v = cli_args_value(&args);
        if (!v) { fprintf(stderr, "tessera serve-llm: %s needs a value\n", a); return 2; }
        if (strcmp(a, "-m") == 0) o.model = v;
        else if (strcmp(a, "--port") == 0) o.port = atoi(v);
        else if (strcmp(a, "--host") == 0) o.host = v;
        else if (strcmp(a, "--template") == 0) o.template_name = v;
        else if (strcmp(a, "--tokenizer") == 0) o.tokenizer = v;
        else if (strcmp(a, "--fault-503") == 0) o.fault_503 = atoi(v);
        else if (strcmp(a, "--fault-stall-ms") == 0) o.fault_stall_ms = atoi(v);
        else { fprintf(stderr, "tessera serve-llm: unknown option '%s'\n", a); return usage(2); }
    }
    if (!o.model) return usage(2);
    llm_server *s = llm_server_start(&o);
    if (!s) { fprintf(stderr, "tessera: error: %s\n", ts_last_error()); return 1; }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    /* the port on stdout, so scripts that asked for port 0 can read it */
    printf("listening on http://%s:%d\n", o.host, llm_server_port(s));
    fflush(stdout);
    while (!__atomic_load_n(&stop_requested, __ATOMIC_RELAXED)) usleep(100 * 1000);
    log_info("serve-llm: %ld chat requests answered; stopping", llm_server_requests(s));
    llm_server_stop(&s);
    return 0;
}
