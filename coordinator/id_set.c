/* id_set.c — open-addressing set of id digests with first-seen lines (see id_set.h). */
#include "coordinator/id_set.h"
#include "kernels/base.h"

#include <sodium.h>

#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t h;      /* first 64 bits of the digest (96 are kept); 0 marks an empty slot */
    uint32_t h2;     /* next 32 bits */
    uint32_t line;
} slot;

struct id_set {
    slot *slots;
    uint64_t cap, used;
};

id_set *id_set_new(void) {
    if (sodium_init() < 0) { ts_fail("libsodium failed to initialise"); return NULL; }
    id_set *s = ts_calloc(1, sizeof *s);
    s->cap = 1024;
    s->slots = ts_calloc(s->cap, sizeof *s->slots);
    return s;
}

void id_set_destroy(id_set **self) {
    if (!*self) return;
    free((*self)->slots);
    free(*self);
    *self = NULL;
}

static slot *find(slot *slots, uint64_t cap, uint64_t h, uint32_t h2) {
    for (uint64_t i = h & (cap - 1);; i = (i + 1) & (cap - 1))
        if (!slots[i].h || (slots[i].h == h && slots[i].h2 == h2)) return &slots[i];
}

static void grow(id_set *s) {
    uint64_t cap = s->cap * 2;
    slot *slots = ts_calloc(cap, sizeof *slots);
    for (uint64_t i = 0; i < s->cap; i++)
        if (s->slots[i].h) *find(slots, cap, s->slots[i].h, s->slots[i].h2) = s->slots[i];
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
}

uint64_t id_set_add(id_set *s, const char *id, uint64_t line) {
    uint8_t d[crypto_generichash_BYTES_MIN];
    crypto_generichash(d, sizeof d, (const unsigned char *)id, strlen(id), NULL, 0);
    uint64_t h;
    uint32_t h2;
    memcpy(&h, d, 8);
    memcpy(&h2, d + 8, 4);
    if (!h) h = 1; /* 0 marks empty slots */
    slot *e = find(s->slots, s->cap, h, h2);
    if (e->h) return e->line;
    if ((s->used + 1) * 2 > s->cap) { grow(s); e = find(s->slots, s->cap, h, h2); }
    *e = (slot){h, h2, line > UINT32_MAX ? UINT32_MAX : (uint32_t)line};
    s->used++;
    return 0;
}
