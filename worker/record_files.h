/*
 * record_files.h — where a render worker puts a record's files (written by
 * worker/output_writer in files mode, temp-then-rename, keys from output_key):
 *   layout "files": OUT/NNNNN/KEY.{png,txt,json}          (NNNNN = index / shard_size)
 *   layout "tar":   OUT/.staging/NNNNN/KEY.{png,txt,json}  (packed by the coordinator,
 *                   coordinator/shard_pack.h, once every record of the shard is finished)
 * Placing records by index, not by worker, is what keeps shards exactly-once under retries.
 */
#ifndef TESSERA_RECORD_FILES_H
#define TESSERA_RECORD_FILES_H

#include <stddef.h>
#include <stdint.h>

/* The folder for a shard: OUT/NNNNN or OUT/.staging/NNNNN. */
void record_shard_dir(const char *out, const char *layout, uint64_t shard, char *dir, size_t cap);
/* sha256 of data as 64 hex digits and a NUL (libsodium). */
void record_sha256_hex(const void *data, size_t n, char hex[65]);

#endif
