/* test_dataset_shards.c — the shard packer: counts per shard, packs a full shard's staging
 * folder into NNNNN.tar in name order (reading it back with libarchive), skips writers'
 * temporary files, journals J_SHARD, removes staging, and never rewrites a closed shard. */
#include "coordinator/journal.h"
#include "coordinator/shard_pack.h"
#include "tests/test.h"

#include <archive.h>
#include <archive_entry.h>

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/tessera_shards_XXXXXX";

static void put(const char *rel, const char *text) {
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

/* Member names of a tar, joined by ','; -1 if it cannot be read. */
static int tar_names(const char *path, char *out, size_t cap) {
    struct archive *a = archive_read_new();
    archive_read_support_format_tar(a);
    if (archive_read_open_filename(a, path, 10240) != ARCHIVE_OK) { archive_read_free(a); return -1; }
    struct archive_entry *e;
    out[0] = 0;
    int n = 0;
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        strncat(out, archive_entry_pathname(e), cap - strlen(out) - 2);
        strcat(out, ",");
        n++;
    }
    archive_read_free(a);
    return n;
}

static int commit(void *ctx) { return journal_commit(ctx); }

static int count_shards(const journal_entry *e, void *ctx) {
    if (e->type == J_SHARD) (*(int *)ctx)++;
    return 0;
}

int main(void) {
    TEST_BEGIN();
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[700], names[1024];
    snprintf(path, sizeof path, "%s/.staging", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/.staging/00000", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/.staging/00001", dir);
    mkdir(path, 0755);
    put(".staging/00000/b.png", "png-b");
    put(".staging/00000/b.txt", "text b");
    put(".staging/00000/a.png", "png-a");
    put(".staging/00000/a.txt", "text a");
    put(".staging/00000/c.png.tmp.1234", "torn");  /* a writer died mid-file */
    put(".staging/00001/d.png", "png-d");

    snprintf(path, sizeof path, "%s/journal.tsj", dir);
    journal *j = journal_open(path, NULL, NULL);
    shard_packer *p = shard_packer_new(dir, 3);   /* 3 records a shard; 4 records in all */
    shard_packer_add(p, 0, 2);                     /* records 0, 1 finished */
    CHECK_OK(shard_packer_pack_ready(p, j, commit, j));
    usleep(100000);
    CHECK_OK(shard_packer_pack_ready(p, j, commit, j));
    snprintf(path, sizeof path, "%s/00000.tar", dir);
    CHECK(access(path, F_OK) != 0, "shard 0 packed before all its records finished");
    shard_packer_add(p, 2, 2);                     /* records 2, 3: shard 0 full, shard 1 has 1 */
    shard_packer_set_total(p, 4);                  /* so shard 1 (record 3 only) is full too */
    for (int i = 0; i < 50 && !shard_packer_idle(p); i++) {
        CHECK_OK(shard_packer_pack_ready(p, j, commit, j));
        usleep(20000);
    }
    CHECK(shard_packer_idle(p), "packer still busy");
    CHECK(tar_names(path, names, sizeof names) == 4 && !strcmp(names, "a.png,a.txt,b.png,b.txt,"), "shard 0: %s", names);
    snprintf(path, sizeof path, "%s/00001.tar", dir);
    CHECK(tar_names(path, names, sizeof names) == 1 && !strcmp(names, "d.png,"), "shard 1: %s", names);
    snprintf(path, sizeof path, "%s/.staging/00000", dir);
    CHECK(access(path, F_OK) != 0, "staging of a closed shard removed");
    shard_packer_destroy(&p);
    journal_destroy(&j);
    int shards = 0;
    snprintf(path, sizeof path, "%s/journal.tsj", dir);
    CHECK_OK(journal_replay(path, count_shards, &shards, NULL));
    CHECK(shards == 2, "%d J_SHARD entries", shards);

    /* a closed shard whose staging is gone is not rewritten (e.g. packed again after a crash) */
    snprintf(path, sizeof path, "%s/00000.tar", dir);
    struct stat before, after;
    stat(path, &before);
    char staging[700];
    snprintf(staging, sizeof staging, "%s/.staging/00000", dir);
    CHECK_OK(shard_pack_folder(staging, path));
    stat(path, &after);
    CHECK(before.st_size == after.st_size && before.st_ino == after.st_ino, "closed shard rewritten");

    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0, "cleanup");
    return TEST_END();
}
