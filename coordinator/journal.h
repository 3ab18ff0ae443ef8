/*
 * journal.h — the coordinator's append-only log of task state changes.
 *
 * On disk each entry is   u32 length | u32 crc32 | body[length]
 * (little endian; crc32 of the body, zlib's polynomial), and the body is
 *   u8 type | f64 unix time | u64 task | u64 a | u64 b | u32 nstr | (u32 len | bytes) * nstr
 * Entries collect in memory and are written and fsynced in groups by journal_commit (the
 * coordinator commits every 50 ms): a crash loses at most the last group, whose tasks are
 * then simply done again (the coordinator cuts the manifest back to match). At open
 * the journal is replayed; the first entry that is short or fails its checksum marks a
 * torn tail, which is cut off so new entries follow the last good one.
 * A write or fsync that fails (ENOSPC, EIO, EDQUOT, EROFS) breaks the journal for the rest of
 * the process: the bytes after the last good commit are cut back where possible, and every
 * later append or commit fails with the first error, so no entry ever follows a torn one.
 */
#ifndef TESSERA_JOURNAL_H
#define TESSERA_JOURNAL_H

#include <stdint.h>
#include <stddef.h>

typedef enum {
    J_START = 1,     /* a coordinator run began; a = wire version, str[0] = job kind,
                      * str[1] = where: "host=H slurm_job=J [array_task=A] restart=N" or "host=H pid=P" */
    J_EXPANDED = 2,  /* task's prompts expanded; str[i] = expanded text of record i */
    J_DONE = 3,      /* task finished; a = records, b = manifest size after its lines */
    J_FAILED = 4,    /* one failed attempt; a = attempt number, str[0] = reason */
    J_DEAD = 5,      /* task given up after K failures; a = records, b = manifest size */
    J_TOTAL = 6,     /* dataset fully read; a = records, b = rejected lines, task = tasks */
    J_SHARD = 7,     /* shard `task` closed (tar written); str[0] = file */
} journal_type;

typedef struct {
    journal_type type;
    double time;
    uint64_t task, a, b;
    uint32_t nstr;
    const char **str;
    const uint32_t *len; /* optional: lengths of str (else strlen) */
} journal_entry;

typedef struct journal journal;
typedef int (*journal_visit)(const journal_entry *e, void *ctx);

#define JOURNAL_MAX_ENTRY (64u << 20)

/* Opens (creating) for append, replaying every good entry through visit (may be NULL) and
 * cutting a torn tail. */
journal *journal_open(const char *path, journal_visit visit, void *ctx);
/* Read-only replay (for `tessera status`); *torn_bytes gets the size of a bad tail. */
int journal_replay(const char *path, journal_visit visit, void *ctx, uint64_t *torn_bytes);
int journal_append(journal *self, const journal_entry *e);
/* Writes and fsyncs what was appended since the last commit (no-op when nothing was). */
int journal_commit(journal *self);
/* 1 once a write or fsync has failed (see above). */
int journal_broken(const journal *self);
uint64_t journal_pending(const journal *self);
uint64_t journal_size(const journal *self);
/* Commits what is pending, then closes. */
void journal_destroy(journal **self);
/* Closes without writing what is pending (after a storage failure elsewhere: entries whose
 * manifest lines may not be on disk must not become durable). */
void journal_abandon(journal **self);

#endif
