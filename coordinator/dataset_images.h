/*
 * dataset_images.h — image records for a `recaption` job that captions the images
 * themselves (dataset.format: images). dataset.c hands DS_IMAGES datasets to it.
 *
 * dataset.path is one of
 *   a .tar file        one WebDataset shard as img2dataset writes it: key.jpg (or .png,
 *                      .webp) + key.txt (the alt-text) + key.json (its metadata), the
 *                      members of one key next to each other
 *   a folder           its *.tar shards in name order; without any, its image files
 *                      (key = file name without extension; key.txt beside it is the alt-text)
 *   a list file        one image or .tar path a line (relative to the list's folder)
 *
 * A record: id = key, prompt = the alt-text ("" if none), params_json =
 *   {"image": PATH[, "offset": BYTES, "size": BYTES], "style": "dsc"|"ssc",
 *    "alt_text": true|false[, "meta": key.json]}
 * so the captioner reads the image itself from shared storage: a tar member is read at
 * its offset in the (uncompressed) shard, nothing is copied.
 *
 * Rejected, with the reason, and the job goes on: a key with no image, a member or file
 * that is not a JPEG/PNG/WebP, an image cut short (no JPEG end marker, no PNG IEND, WebP
 * shorter than its RIFF size), a truncated tar member (the rest of that shard is
 * unreadable: reading goes on with the next shard), an unreadable file. An image damaged
 * inside its data is found by the captioner, which records it (see worker/captioner.c).
 */
#ifndef TESSERA_DATASET_IMAGES_H
#define TESSERA_DATASET_IMAGES_H

#include "coordinator/dataset.h"

typedef struct image_source image_source;

image_source *image_source_open(const char *path, const dataset_options *options, FILE *rejects);
/* 1: a record; 0: the end; -1: an error that stops the job (the list unreadable). */
int image_source_next(image_source *self, dataset_record *out);
uint64_t image_source_rejected(const image_source *self);
uint64_t image_source_count(const image_source *self);   /* records and rejects so far */
void image_source_destroy(image_source **self);

/* Whether bytes look like a whole JPEG / PNG / WebP; NULL if so, else the reason. */
const char *image_bytes_problem(const uint8_t *data, size_t size);

#endif
