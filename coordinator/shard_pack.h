/*
 * shard_pack.h — closes WebDataset shards. Render workers write each record's files
 * (key.png, key.txt, key.json) into OUT/.staging/NNNNN/; once every record of shard NNNNN
 * (indices [N*size, N*size + size)) is finished or dead-lettered, the folder is packed in
 * name order into OUT/NNNNN.tar (libarchive, pax-restricted ustar) by a packing thread,
 * written as NNNNN.tar.tmp, fsynced and linked into place (link fails rather than replace),
 * journalled (J_SHARD) and the staging folder removed.
 * A closed shard is never rewritten. When a shard's tar exists already but the journal does
 * not say so (a damaged journal made its records be done again), the staged files are
 * checked against the tar: those in it are dropped, missing ones are logged and written to
 * a new tar NNNNN-rK.tar beside it. Member names are UTF-8 (record ids are).
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
 * group commit) before their staging folders are removed. 0 ok, -1 on error (a shard could
 * not be packed, or the journal not written): the caller stops; a rerun packs again. */
int shard_packer_pack_ready(shard_packer *self, journal *j, int (*commit)(void *ctx), void *ctx);
/* 1 when no shard is waiting to be packed. */
int shard_packer_idle(const shard_packer *self);
/* Packs the staging folder of one shard into a tar, or checks it against the tar that is
 * there already (see above); exposed for tests. */
int shard_pack_folder(const char *staging_dir, const char *tar_path);

#endif
