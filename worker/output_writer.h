/*
 * output_writer.h — where a render worker's results go: plain files or WebDataset tar shards.
 *
 * A record is a key plus parts, each a file extension and bytes (".png", ".txt", ".json").
 *   OUTPUT_FILES:  DIR/KEY.png, DIR/KEY.txt, DIR/KEY.json
 *   OUTPUT_TAR:    DIR/PREFIX-000000.tar, PREFIX-000001.tar, ... each holding up to
 *                  records_per_shard records as KEY.png, KEY.txt, KEY.json (WebDataset:
 *                  members of one record are adjacent and share the name up to the first dot).
 *
 * Safety rules, all enforced here:
 *   - every file is written to a temporary name in the same folder (NAME.tmp.PID) and
 *     renamed into place, so a reader or a crash never leaves a torn file under a real name;
 *   - a shard is built as PREFIX-NNNNNN.tar.tmp.PID and renamed when closed; a closed shard
 *     is never opened again: a new writer starts after the highest shard index present in DIR
 *     (unless first_shard says otherwise, and then it refuses to overwrite an existing shard);
 *   - keys are sanitised (output_key) so nothing escapes DIR: no '/', '\', "..", NUL, control
 *     characters or dots (a dot would split a WebDataset record).
 *
 * Usage (the diffusion worker):
 *   output_writer *w = output_writer_new(&(output_writer_options){
 *       .dir = "out", .format = OUTPUT_TAR, .records_per_shard = 1000});
 *   char key[OUTPUT_KEY_MAX];
 *   output_key(record_id, key, sizeof key);
 *   output_part parts[] = {{".png", png, png_size}, {".txt", caption, strlen(caption)},
 *                          {".json", json, strlen(json)}};
 *   if (output_writer_add(w, key, parts, 3) < 0) ... ts_last_error() says why
 *   output_writer_close_shard(w);         // optional: close the open shard now (end of a task)
 *   output_writer_finish(&w);             // closes the open shard, frees; -1 if that failed
 * output_writer_destroy(&w) abandons instead: the open shard's temporary file is removed.
 * One writer per thread; two writers must not share a DIR+prefix in tar mode.
 */
#ifndef TESSERA_OUTPUT_WRITER_H
#define TESSERA_OUTPUT_WRITER_H

#include <locale.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OUTPUT_KEY_MAX 160

typedef enum { OUTPUT_FILES, OUTPUT_TAR } output_format;

typedef struct {
    const char *dir;               /* created (with parents) if missing */
    output_format format;
    int records_per_shard;         /* tar: default 1000 */
    const char *shard_prefix;      /* tar: default "shard" */
    bool first_shard_set;          /* tar: false: start after the highest shard index in dir */
    int64_t first_shard;           /* tar: the first index when first_shard_set */
} output_writer_options;

typedef struct {
    const char *ext;               /* ".png", ".txt", ".json", ... (dot and [a-z0-9.] only) */
    const void *data;
    size_t size;
} output_part;

typedef struct output_writer output_writer;

output_writer *output_writer_new(const output_writer_options *options);
int output_writer_add(output_writer *self, const char *key, const output_part *parts, int count);
/* Closes the open shard (if any records are in it) and renames it into place. */
int output_writer_close_shard(output_writer *self);
int output_writer_finish(output_writer **self);
void output_writer_destroy(output_writer **self);

/* Shards closed so far, and the path of the last one ("" if none). */
int64_t output_writer_shards_closed(const output_writer *self);
const char *output_writer_last_shard(const output_writer *self);

/* The file name stem ("key") of a record id. The mapping is injective, so two ids never
 * share a key, even where the file system folds case or Unicode normalisation forms:
 *   - an id of 1 to 100 bytes of [a-z0-9_-] that does not end in "-" + 32 hex digits is its
 *     own key ("photo_001");
 *   - any other id becomes a readable part (at most 100 bytes, whole UTF-8 characters;
 *     '.', '/', '\', controls and other ASCII punctuation as '_') followed by "-" and 32 hex
 *     digits of SHA-256(id) ("caf\xc3\xa9-5d1b...", "A_B-...", "_-..." for the empty id).
 * Keys of the first kind never end in the suffix of the second, and distinct keys of the
 * second kind differ in that lowercase ASCII suffix (distinct unless SHA-256 collides), so
 * neither case folding nor normalisation can make two keys equal. At most 133 bytes: with
 * an extension and ".tmp.PID" a name stays far below the 255-byte limit of file systems.
 * cap >= OUTPUT_KEY_MAX. */
void output_key(const char *id, char *key, size_t cap);
/* True when key is already safe as output_key would make it (what _add checks). */
bool output_key_is_safe(const char *key);

/* libarchive converts member names through the calling thread's locale (LC_CTYPE) and fails
 * on non-ASCII names in the C locale, while record ids are UTF-8: tar writers and readers
 * switch the thread to C.UTF-8 around their libarchive calls. Returns the locale to restore
 * with output_utf8_locale_leave, or (locale_t)0 with ts_fail set if no UTF-8 locale exists. */
locale_t output_utf8_locale_enter(void);
void output_utf8_locale_leave(locale_t previous);

/* 1 when errno says the storage itself failed (full, quota, read-only, I/O error), not the
 * record: such an error stops the job instead of counting against a task. */
bool output_storage_errno(int err);
/* The same test on an error text (a worker's error message carries strerror's words). */
bool output_storage_error_text(const char *text);

#endif
