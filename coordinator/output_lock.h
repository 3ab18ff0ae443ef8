/*
 * output_lock.h — one coordinator per output folder.
 *
 * The coordinator holds a write lock on OUT/coordinator.lock for as long as it runs: an
 * open-file-description lock (fcntl F_OFD_SETLK; plain POSIX F_SETLK where the kernel lacks
 * it), which NFS passes to the server (NLM for v3, in-protocol for v4) and Lustre honours
 * across nodes when mounted with -o flock. The kernel (or the NFS server's lease) drops the
 * lock when its holder dies, so a crash never leaves the folder locked on local disks.
 * The file holds "host pid endpoint start-time" of the holder, for the refusal message.
 *
 * --force-unlock is for a lock whose holder is gone but whose lock survived (an NFS client
 * that vanished before its lease ran out, a server without lock recovery): the lock file is
 * replaced by a new one. It refuses when the holder is a live process on this host.
 */
#ifndef TESSERA_OUTPUT_LOCK_H
#define TESSERA_OUTPUT_LOCK_H

#include <stddef.h>

typedef struct output_lock output_lock;

/* Takes the lock on dir (which must exist) or fails with a line naming the holder. */
output_lock *output_lock_take(const char *dir, const char *endpoint, int force_unlock);
void output_lock_release(output_lock **self);
/* 1: a coordinator holds dir's lock now (its "host pid endpoint time" in owner), 0: none, -1: error. */
int output_lock_probe(const char *dir, char *owner, size_t cap);

#endif
