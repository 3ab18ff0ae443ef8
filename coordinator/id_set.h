/*
 * id_set.h — the record ids seen so far in a dataset, to reject duplicate ids.
 *
 * The rule (README, "Jobs and output"): an id seen on an earlier line is a duplicate; the
 * later line goes to rejects.jsonl with its line number and the first line's, and the job
 * goes on. Keeping both would give two manifest lines for one file name.
 * Each id is kept as 96 bits of BLAKE2b (libsodium) and the line it was first seen on:
 * 16 bytes a record in a table kept at most half full, so about 32 bytes per record
 * (320 MB for 10 million records); two distinct ids are mistaken for each other with
 * probability about n^2 / 2^97.
 */
#ifndef TESSERA_ID_SET_H
#define TESSERA_ID_SET_H

#include <stdint.h>

typedef struct id_set id_set;

id_set *id_set_new(void);
void id_set_destroy(id_set **self);
/* Adds id first seen on line; returns 0 if new, else the line it was first seen on
 * (lines are 1-based; lines past 2^32 - 1 are kept as 2^32 - 1). */
uint64_t id_set_add(id_set *self, const char *id, uint64_t line);

#endif
