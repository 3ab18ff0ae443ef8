/*
 * recaption_shards.h — an image recaption job's captions put back into WebDataset shards:
 * each input shard named in the job's manifest is copied to OUT_DIR/<its name>, every
 * member byte for byte, with the new caption added after each captioned record's members:
 *
 *   000123.jpg  000123.txt  000123.json  000123.descriptive.txt      (caption.style dsc)
 *                                        000123.short.txt            (caption.style ssc)
 *
 * Records the captioner could not caption (a manifest line with expand_fallback) and
 * rejected records keep their members and get no caption. A shard is written to a
 * temporary name and renamed into place; an input shard that is cut short is copied up to
 * its last whole member and reported. `tessera caption --write-shards MANIFEST -o DIR`.
 */
#ifndef TESSERA_RECAPTION_SHARDS_H
#define TESSERA_RECAPTION_SHARDS_H

typedef struct {
    int shards, captions, truncated;   /* shards written, captions added, shards cut short */
} recaption_shards_stats;

int recaption_write_shards(const char *manifest, const char *out_dir, recaption_shards_stats *stats);

#endif
