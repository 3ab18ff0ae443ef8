/*
 * dataset.h — streams prompt/caption records out of txt, jsonl or csv files, plain, .gz
 * or .zst, in constant memory (one line buffer, capped at max_line bytes).
 *
 *   txt    one prompt a line; the id is the line number.
 *   jsonl  one JSON object a line; field names configurable (id, prompt, negative, seed,
 *          params); a missing id field means the line number.
 *   csv    a header row names the columns; RFC 4180 quoting within one line.
 *
 * Blank lines are skipped. A malformed line (bad JSON, no prompt, invalid UTF-8, longer
 * than max_line) is written to the rejects file as one JSON line {line, reason, text}
 * and reading goes on.
 *
 * Seeds: a record's own seed field wins; otherwise
 *     seed = splitmix64(fnv1a64(id) ^ job_seed) & 0xffffffff
 * so it depends only on the job seed and the record id, never on the worker or retry.
 */
#ifndef TESSERA_DATASET_H
#define TESSERA_DATASET_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef enum { DS_AUTO = 0, DS_TXT, DS_JSONL, DS_CSV, DS_IMAGES } dataset_format;   /* images: dataset_images.h */

typedef struct {
    dataset_format format;       /* DS_AUTO: from the name (.txt/.jsonl/.json/.csv before .gz/.zst) */
    const char *id_field;        /* default "id" */
    const char *prompt_field;    /* default "prompt"; "caption" is tried too */
    const char *negative_field;  /* default "negative" */
    const char *seed_field;      /* default "seed" */
    const char *params_field;    /* default "params" */
    size_t max_line;             /* default 1 MiB */
    uint64_t job_seed;
    const char *rejects_path;    /* NULL: rejects are only counted */
    const char *caption_style;   /* DS_IMAGES: "dsc" (default) or "ssc", into each record's params */
    bool caption_alt_text;       /* DS_IMAGES: give the captioner the alt-text as context */
} dataset_options;

typedef struct {
    char *id, *prompt, *negative, *params_json; /* owned; negative/params may be "" */
    uint64_t seed;
    uint64_t line;               /* 1-based line number in the file */
} dataset_record;

typedef struct dataset dataset;

dataset *dataset_open(const char *path, const dataset_options *options);
/* 1: *out holds the next record (previous contents freed); 0: end; -1: read error. */
int dataset_next(dataset *self, dataset_record *out);
uint64_t dataset_rejected(const dataset *self);
uint64_t dataset_lines(const dataset *self);
void dataset_destroy(dataset **self);
void dataset_record_clear(dataset_record *r);

uint64_t dataset_seed_for(uint64_t job_seed, const char *id);
dataset_format dataset_format_from_name(const char *name); /* "txt", "jsonl", "csv", "images", "auto" */

#endif
