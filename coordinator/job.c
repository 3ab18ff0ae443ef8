/* job.c — job spec: a table of keys, loaded from YAML (libyaml) or JSON (cJSON), overridden by flags. */
#include "coordinator/job.h"
#include "kernels/base.h"

#include <cjson/cJSON.h>
#include <yaml.h>

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef enum { K_STR, K_INT, K_DBL } key_type;
typedef struct {
    const char *name;
    key_type type;
    size_t offset, size;
    const char *help;
} job_key;

#define S(n, f, h) {n, K_STR, offsetof(job_spec, f), sizeof(((job_spec *)0)->f), h}
#define I(n, f, h) {n, K_INT, offsetof(job_spec, f), 0, h}
#define D(n, f, h) {n, K_DBL, offsetof(job_spec, f), 0, h}
static const job_key keys[] = {
    S("kind", kind, "generate | render | recaption"),
    S("dataset.path", dataset, "txt / jsonl / csv file, optionally .gz or .zst"),
    S("dataset.format", format, "auto | txt | jsonl | csv | images (tar shards, image folder or list)"),
    S("dataset.id_field", id_field, "record id field (missing: line number)"),
    S("dataset.prompt_field", prompt_field, "prompt or caption field"),
    S("dataset.negative_field", negative_field, "negative prompt field"),
    S("dataset.seed_field", seed_field, "per-record seed field"),
    S("dataset.params_field", params_field, "per-record parameters (JSON object) field"),
    I("dataset.max_line", max_line, "longer lines are rejected (bytes)"),
    S("models.expander", expander, "expander LLM (GGUF / folder)"),
    S("models.diffusion", diffusion, "diffusion model (safetensors / diffusers folder)"),
    I("sampler.steps", steps, "denoising steps"),
    D("sampler.cfg", cfg, "classifier-free guidance scale"),
    S("sampler.name", sampler, "sampler name"),
    I("sampler.width", width, "image width"),
    I("sampler.height", height, "image height"),
    S("output.dir", output, "output folder"),
    S("output.layout", layout, "tar | files"),
    I("output.shard_size", shard_size, "records per shard"),
    I("task_size", task_size, "records per task"),
    I("retries", retries, "failed attempts before a task is dead-lettered"),
    D("lease_seconds", lease_seconds, "lease length; renewed by heartbeats"),
    D("heartbeat_seconds", heartbeat_seconds, "heartbeat interval"),
    I("seed", seed, "job seed (record seeds derive from it and the record id)"),
    S("expand.check", expand_check, "none | keep-words: an expansion must keep the prompt's content words"),
    I("expand.retries", expand_retries, "further samples when expand.check fails, then the short prompt"),
    I("workers.expand", expand_workers, "local expander workers (tessera run)"),
    I("workers.render", render_workers, "local render workers (tessera run)"),
    I("workers.credit", credit, "tasks a worker asks for at once"),
    I("workers.batch", render_batch, "records of a task a render worker runs in one model call; task_size is raised to a multiple of it"),
    I("workers.unet_shared", unet_shared, "1: a batch's records share each U-Net call (faster; pixels may move by the kernels' batch dependence)"),
    S("workers.device", device, "cpu | cuda | cuda:N: where the workers' models compute (tessera run; tessera worker --device)"),
    S("caption.style", caption_style, "images: dsc (descriptive) | ssc (short) captions"),
    I("caption.alt_text", caption_alt_text, "images: 1 gives the captioner the alt-text as context"),
    S("workers.backend", backend, "null | model"),
    S("endpoint", endpoint, "coordinator address (tcp://host:port)"),
    S("keys", keys, "CURVE key folder (server.cert, server.cert_secret, allow/); empty: off"),
    I("window", window, "most tasks held in memory"),
    S("metrics", metrics, "Prometheus text endpoint tcp://HOST:PORT (GET /metrics); empty: off"),
    D("drain_seconds", drain_seconds, "SIGUSR1 (preemption): longest wait for leased tasks to come back"),
    S("publish", publish, "folder (shared storage) where the coordinator writes endpoint and server.cert for workers; empty: off"),
};
#undef S
#undef I
#undef D
static const int key_count = (int)(sizeof keys / sizeof keys[0]);

void job_defaults(job_spec *j) {
    memset(j, 0, sizeof *j);
    strcpy(j->kind, "generate");
    strcpy(j->format, "auto");
    strcpy(j->caption_style, "dsc");
    j->caption_alt_text = 1;
    strcpy(j->id_field, "id");
    strcpy(j->prompt_field, "prompt");
    strcpy(j->negative_field, "negative");
    strcpy(j->seed_field, "seed");
    strcpy(j->params_field, "params");
    j->max_line = 1 << 20;
    j->steps = 20; j->width = 512; j->height = 512; j->cfg = 7.5;
    strcpy(j->sampler, "euler");
    strcpy(j->layout, "tar");
    j->shard_size = 1000; j->task_size = 8; j->retries = 3;
    j->lease_seconds = 60; j->heartbeat_seconds = 1;
    j->seed = 0;
    j->expand_workers = 1; j->render_workers = 2; j->credit = 2;
    j->render_batch = 1;
    strcpy(j->expand_check, "none"); j->expand_retries = 4;
    strcpy(j->backend, "null");
    j->endpoint[0] = 0; /* coordinator: tcp on port 5555; run: an ipc socket of its own */
    j->window = 4096;
    j->drain_seconds = 90;
}

int job_set(job_spec *j, const char *key, const char *value) {
    for (int i = 0; i < key_count; i++) {
        if (strcmp(keys[i].name, key)) continue;
        char *field = (char *)j + keys[i].offset;
        char *end;
        errno = 0;
        switch (keys[i].type) {
        case K_STR:
            if (strlen(value) >= keys[i].size) return ts_fail("job key '%s': value too long", key);
            strcpy(field, value);
            return 0;
        case K_INT: {
            long long v = strtoll(value, &end, 10);
            if (!*value || *end || errno) return ts_fail("job key '%s': '%s' is not an integer", key, value);
            *(int64_t *)field = v;
            return 0;
        }
        case K_DBL: {
            double v = strtod(value, &end);
            if (!*value || *end || errno) return ts_fail("job key '%s': '%s' is not a number", key, value);
            *(double *)field = v;
            return 0;
        }
        }
    }
    return ts_fail("unknown job key '%s' (see 'tessera run --help')", key);
}

static int set_json(job_spec *j, const char *prefix, const cJSON *o, const char *path) {
    for (const cJSON *c = o->child; c; c = c->next) {
        char key[256];
        snprintf(key, sizeof key, "%s%s%s", prefix, *prefix ? "." : "", c->string);
        char num[64];
        const char *value;
        if (cJSON_IsObject(c)) { if (set_json(j, key, c, path) < 0) return -1; continue; }
        if (cJSON_IsString(c)) value = c->valuestring;
        else if (cJSON_IsNumber(c)) { snprintf(num, sizeof num, "%.17g", c->valuedouble); value = num; }
        else if (cJSON_IsBool(c)) value = cJSON_IsTrue(c) ? "1" : "0";
        else return ts_fail("%s: job key '%s': expected a string or number", path, key);
        if (job_set(j, key, value) < 0) return ts_fail_wrap("%s", path);
    }
    return 0;
}

static int load_json(job_spec *j, const char *path, const char *text) {
    cJSON *o = cJSON_Parse(text);
    if (!cJSON_IsObject(o)) { cJSON_Delete(o); return ts_fail("%s: not a JSON object", path); }
    int rc = set_json(j, "", o, path);
    cJSON_Delete(o);
    return rc;
}

/* Walks libyaml events keeping the path of mapping keys; scalars under a key are set. */
static int load_yaml(job_spec *j, const char *path, const char *text) {
    yaml_parser_t p;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
    char stack[8][256];
    int depth = -1, expect_key[8] = {0}, rc = 0;
    char current[256] = "";
    for (int done = 0; !done && rc == 0;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            rc = ts_fail("%s:%zu: YAML: %s", path, p.problem_mark.line + 1, p.problem ? p.problem : "error");
            break;
        }
        switch (ev.type) {
        case YAML_STREAM_END_EVENT: done = 1; break;
        case YAML_MAPPING_START_EVENT:
            if (depth >= 7) { rc = ts_fail("%s: job spec nested too deeply", path); break; }
            depth++;
            snprintf(stack[depth], sizeof stack[depth], "%s", depth ? current : "");
            expect_key[depth] = 1;
            break;
        case YAML_MAPPING_END_EVENT:
            depth--;
            if (depth >= 0) expect_key[depth] = 1; /* the parent's value is complete */
            break;
        case YAML_SEQUENCE_START_EVENT:
            rc = ts_fail("%s:%zu: job key '%s': lists are not supported", path, ev.start_mark.line + 1, current);
            break;
        case YAML_SCALAR_EVENT: {
            const char *s = (const char *)ev.data.scalar.value;
            if (depth < 0) { rc = ts_fail("%s: job spec is not a mapping", path); break; }
            if (expect_key[depth]) {
                snprintf(current, sizeof current, "%s%s%s", stack[depth], stack[depth][0] ? "." : "", s);
                expect_key[depth] = 0;
            } else {
                if (job_set(j, current, s) < 0) rc = ts_fail_wrap("%s:%zu", path, ev.start_mark.line + 1);
                expect_key[depth] = 1;
            }
            break;
        }
        default: break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    return rc;
}

int job_load_file(job_spec *j, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return ts_fail("%s: cannot open job spec: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (n < 0 || n > (1 << 20)) { fclose(f); return ts_fail("%s: job spec larger than 1 MiB", path); }
    char *text = ts_malloc((size_t)n + 1);
    size_t got = fread(text, 1, (size_t)n, f);
    fclose(f);
    text[got] = 0;
    const char *dot = strrchr(path, '.');
    int rc = dot && !strcmp(dot, ".json") ? load_json(j, path, text) : load_yaml(j, path, text);
    free(text);
    return rc;
}

int job_parse_args(job_spec *j, int argc, char **argv, int *i) {
    for (; *i < argc; (*i)++) {
        const char *a = argv[*i];
        if (strncmp(a, "--", 2) || !a[2]) return 0;
        char key[256];
        const char *eq = strchr(a, '=');
        const char *value;
        if (eq) {
            snprintf(key, sizeof key, "%.*s", (int)(eq - a - 2), a + 2);
            value = eq + 1;
        } else {
            snprintf(key, sizeof key, "%s", a + 2);
            if (*i + 1 >= argc) return ts_fail("option --%s needs a value", key);
            value = argv[++*i];
        }
        if (job_set(j, key, value) < 0) return -1;
    }
    return 0;
}

int job_check(const job_spec *j) {
    if (strcmp(j->kind, "generate") && strcmp(j->kind, "render") && strcmp(j->kind, "recaption"))
        return ts_fail("job key 'kind': '%s' is not generate, render or recaption", j->kind);
    if (!j->dataset[0]) return ts_fail("job key 'dataset.path' is required");
    if (!j->output[0]) return ts_fail("job key 'output.dir' is required");
    if (strcmp(j->layout, "tar") && strcmp(j->layout, "files"))
        return ts_fail("job key 'output.layout': '%s' is not tar or files", j->layout);
    if (strcmp(j->format, "auto") && strcmp(j->format, "txt") && strcmp(j->format, "jsonl") && strcmp(j->format, "csv") &&
        strcmp(j->format, "images"))
        return ts_fail("job key 'dataset.format': '%s' is not auto, txt, jsonl, csv or images", j->format);
    if (strcmp(j->caption_style, "dsc") && strcmp(j->caption_style, "ssc"))
        return ts_fail("job key 'caption.style': '%s' is not dsc or ssc", j->caption_style);
    if (!strcmp(j->format, "images") && strcmp(j->kind, "recaption"))
        return ts_fail("job key 'dataset.format': images are read by recaption jobs only (kind is '%s')", j->kind);
    if (j->task_size < 1 || j->task_size > 100000) return ts_fail("job key 'task_size': %lld out of [1, 100000]", (long long)j->task_size);
    if (j->shard_size < 1) return ts_fail("job key 'output.shard_size' must be >= 1");
    if (j->retries < 1) return ts_fail("job key 'retries' must be >= 1");
    if (j->lease_seconds <= 0 || j->heartbeat_seconds <= 0) return ts_fail("lease_seconds and heartbeat_seconds must be > 0");
    if (j->window < 1) return ts_fail("job key 'window' must be >= 1");
    if (j->credit < 1) return ts_fail("job key 'workers.credit' must be >= 1");
    if (j->render_batch < 1 || j->render_batch > 64) return ts_fail("job key 'workers.batch': %lld out of [1, 64]", (long long)j->render_batch);
    if (j->max_line < 16) return ts_fail("job key 'dataset.max_line' must be >= 16");
    if (strcmp(j->expand_check, "none") && strcmp(j->expand_check, "keep-words"))
        return ts_fail("job key 'expand.check': '%s' is not none or keep-words", j->expand_check);
    if (j->expand_retries < 0 || j->expand_retries > 100) return ts_fail("job key 'expand.retries' must be in [0, 100]");
    return 0;
}

void job_keys_help(FILE *out) {
    for (int i = 0; i < key_count; i++) fprintf(out, "  --%-24s %s\n", keys[i].name, keys[i].help);
}

int job_to_json(const job_spec *j, FILE *out) {
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < key_count; i++) {
        const char *field = (const char *)j + keys[i].offset;
        if (keys[i].type == K_STR) cJSON_AddStringToObject(o, keys[i].name, field);
        else if (keys[i].type == K_INT) cJSON_AddNumberToObject(o, keys[i].name, (double)*(const int64_t *)field);
        else cJSON_AddNumberToObject(o, keys[i].name, *(const double *)field);
    }
    char *s = cJSON_Print(o);
    fprintf(out, "%s\n", s);
    free(s);
    cJSON_Delete(o);
    return 0;
}

int job_from_command_line(job_spec *job, int argc, char **argv) {
    job_defaults(job);
    int i = 1;
    if (argc > 1 && argv[1][0] != '-') {
        if (job_load_file(job, argv[1]) < 0) return -1;
        i = 2;
    }
    if (job_parse_args(job, argc, argv, &i) < 0) return -1;
    if (i < argc) return ts_fail("unexpected argument '%s'", argv[i]);
    /* full batches: a task holds a whole number of them (the same spec, the same tasks) */
    if (job->render_batch > 1 && job->task_size % job->render_batch)
        job->task_size += job->render_batch - job->task_size % job->render_batch;
    return 0;
}
