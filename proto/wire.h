/*
 * wire.h — decoding and encoding of the Envelope with the protocol's two guards:
 * the size limit (checked before protobuf-c sees a byte) and the version check.
 * Header-only because proto/ compiles only .proto files; both the coordinator and
 * the workers include it.
 */
#ifndef TESSERA_WIRE_H
#define TESSERA_WIRE_H

#include "proto/tessera.pb-c.h"

#include <stdint.h>
#include <stdlib.h>

#define TS_WIRE_VERSION 1u
#define TS_WIRE_MAX_BYTES (16u << 20) /* 16 MiB: a task of records or a result of names */

typedef Tessera__Envelope ts_envelope;

typedef enum { WIRE_OK = 0, WIRE_OVERSIZED, WIRE_MALFORMED, WIRE_BAD_VERSION, WIRE_EMPTY } wire_status;

/* Decodes one frame; NULL with *status set when it is too big, not protobuf, of another
 * version or without a body. Free with wire_free. */
static inline ts_envelope *wire_decode(const void *data, size_t size, wire_status *status) {
    if (size > TS_WIRE_MAX_BYTES) { *status = WIRE_OVERSIZED; return NULL; }
    ts_envelope *env = tessera__envelope__unpack(NULL, size, (const uint8_t *)data);
    if (!env) { *status = WIRE_MALFORMED; return NULL; }
    if (env->version != TS_WIRE_VERSION) {
        tessera__envelope__free_unpacked(env, NULL);
        *status = WIRE_BAD_VERSION;
        return NULL;
    }
    if (env->body_case == TESSERA__ENVELOPE__BODY__NOT_SET) {
        tessera__envelope__free_unpacked(env, NULL);
        *status = WIRE_EMPTY;
        return NULL;
    }
    *status = WIRE_OK;
    return env;
}

static inline void wire_free(ts_envelope *env) {
    if (env) tessera__envelope__free_unpacked(env, NULL);
}

/* Packs an envelope (version filled in) into a malloc'ed buffer; NULL if over the limit. */
static inline uint8_t *wire_encode(ts_envelope *env, size_t *size) {
    env->version = TS_WIRE_VERSION;
    size_t n = tessera__envelope__get_packed_size(env);
    if (n > TS_WIRE_MAX_BYTES) return NULL;
    uint8_t *buf = (uint8_t *)malloc(n ? n : 1);
    if (!buf) return NULL;
    *size = tessera__envelope__pack(env, buf);
    return buf;
}

#endif
