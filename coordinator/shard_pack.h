/*
 * shard_pack.h — closes WebDataset shards. Render workers write each record's files
 * (key.png, key.txt, key.json) into OUT/.staging/NNNNN/; once every record of shard NNNNN
 * (indices [N*size, N*size + size)) is finished or dead-lettered, the folder is packed in
 * name order into OUT/NNNNN.tar (libarchive, pax-restricted ustar) by a packing thread,
 * written as NNNNN.tar.tmp and renamed, journalled (J_SHARD) and the staging folder removed.
 * A closed shard is never rewritten.
 * Memory: one counter per open shard.
 */
#ifndef TESSERA_SHARD_PACK_H
#define TESSERA_SHARD_PACK_H

#include "coordinator/journal.h"

#include <stdint.h>

typedef struct shard_packer shard_packer;

shard_packer *shard_packer_new(const char *output_dir, uint64_t shard_size);
void shard_packer_destroy(shard_packer **self);
/* Records [first_index, first_index + n) are finished (done or dead). */
void shard_packer_add(shard_packer *self, uint64_t first_index, uint64_t n);
void shard_packer_mark_closed(shard_packer *self, uint64_t shard);
void shard_packer_set_total(shard_packer *self, uint64_t total_records);
/* Hands every shard whose records are all finished to the packing thread, and journals
 * (J_SHARD) those it has packed; commit(ctx) must make the journal durable (the coordinator's
 * group commit) before their staging folders are removed. 0 ok, -1 on error. */
int shard_packer_pack_ready(shard_packer *self, journal *j, int (*commit)(void *ctx), void *ctx);
/* 1 when no shard is waiting to be packed. */
int shard_packer_idle(const shard_packer *self);
/* Packs the staging folder of one shard into a tar (exposed for tests). */
int shard_pack_folder(const char *staging_dir, const char *tar_path);

#endif
