/* fuzz_message.c — libFuzzer target: wire_decode on arbitrary bytes, then every field walked
 * the way the coordinator and the workers read them. Must never crash or leak. */
#include "proto/wire.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static volatile size_t sink;

static void touch(const char *s) { if (s) sink += strlen(s); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    wire_status st;
    ts_envelope *env = wire_decode(data, size, &st);
    if (!env) return 0;
    switch (env->body_case) {
    case TESSERA__ENVELOPE__BODY_HELLO:
        touch(env->hello->name);
        for (size_t i = 0; i < env->hello->n_models; i++) touch(env->hello->models[i]);
        for (size_t i = 0; i < env->hello->n_stages; i++) sink += (size_t)env->hello->stages[i];
        break;
    case TESSERA__ENVELOPE__BODY_TASK:
        for (size_t i = 0; i < env->task->n_records; i++) {
            const Tessera__Record *r = env->task->records[i];
            touch(r->id); touch(r->prompt); touch(r->negative); touch(r->params_json); touch(r->expanded);
        }
        if (env->task->settings) { touch(env->task->settings->output_dir); touch(env->task->settings->layout); }
        break;
    case TESSERA__ENVELOPE__BODY_RESULT:
        touch(env->result->error);
        for (size_t i = 0; i < env->result->n_records; i++) {
            const Tessera__RecordResult *r = env->result->records[i];
            touch(r->id); touch(r->file); touch(r->sha256); touch(r->expanded); touch(r->error);
        }
        break;
    case TESSERA__ENVELOPE__BODY_HEARTBEAT:
        for (size_t i = 0; i < env->heartbeat->n_task_ids; i++) sink += env->heartbeat->task_ids[i];
        break;
    case TESSERA__ENVELOPE__BODY_HAND_BACK:
        for (size_t i = 0; i < env->hand_back->n_task_ids; i++) sink += env->hand_back->task_ids[i];
        break;
    case TESSERA__ENVELOPE__BODY_SHUTDOWN: touch(env->shutdown->reason); break;
    case TESSERA__ENVELOPE__BODY_WORK_REQUEST: sink += env->work_request->credit; break;
    default: break;
    }
    /* re-encoding what was decoded must work and fit */
    size_t n = 0;
    uint8_t *buf = wire_encode(env, &n);
    free(buf);
    wire_free(env);
    return 0;
}
