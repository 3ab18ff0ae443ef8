/* test_journal.c — journal round trip, replay order, torn-tail detection and cutting. */
#include "coordinator/journal.h"
#include "tests/test.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    int count, done;
    uint64_t last_task;
    char last_str[64];
} seen;

static int visit(const journal_entry *e, void *ctx) {
    seen *s = ctx;
    s->count++;
    if (e->type == J_DONE) s->done++;
    s->last_task = e->task;
    if (e->nstr) snprintf(s->last_str, sizeof s->last_str, "%s", e->str[e->nstr - 1]);
    return 0;
}

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

int main(void) {
    TEST_BEGIN();
    char path[] = "/tmp/tessera_test_journal_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    unlink(path);

    journal *j = journal_open(path, NULL, NULL);
    CHECK(j != NULL, "open: %s", ts_last_error());
    for (uint64_t t = 0; t < 100; t++) {
        const char *texts[2] = {"first text", t % 2 ? "odd" : "even"};
        journal_entry e = {.type = t % 3 ? J_DONE : J_EXPANDED, .task = t, .a = 4, .b = t * 10, .nstr = 2, .str = texts};
        CHECK_OK(journal_append(j, &e));
    }
    CHECK(journal_pending(j) == 100, "pending %llu", (unsigned long long)journal_pending(j));
    CHECK_OK(journal_commit(j));
    CHECK(journal_pending(j) == 0, "commit clears pending");
    long good = (long)journal_size(j);
    journal_destroy(&j);
    CHECK(file_size(path) == good, "size %ld vs %ld", file_size(path), good);

    seen s = {0};
    j = journal_open(path, visit, &s);
    CHECK(s.count == 100 && s.done == 66, "replayed %d entries, %d done", s.count, s.done);
    CHECK(s.last_task == 99 && !strcmp(s.last_str, "odd"), "last entry task %llu '%s'", (unsigned long long)s.last_task, s.last_str);
    journal_destroy(&j);

    /* a torn tail: half an entry appended (a crash mid-write) */
    FILE *f = fopen(path, "ab");
    const uint8_t torn[] = {60, 0, 0, 0, 1, 2, 3, 4, 3, 0, 0};
    fwrite(torn, 1, sizeof torn, f);
    fclose(f);
    uint64_t torn_bytes = 0;
    memset(&s, 0, sizeof s);
    CHECK_OK(journal_replay(path, visit, &s, &torn_bytes));
    CHECK(s.count == 100 && torn_bytes == sizeof torn, "read-only replay: %d entries, torn %llu", s.count, (unsigned long long)torn_bytes);
    memset(&s, 0, sizeof s);
    j = journal_open(path, visit, &s);
    CHECK(s.count == 100, "replay stops before the torn tail: %d", s.count);
    CHECK(file_size(path) == good, "torn tail cut: size %ld, want %ld", file_size(path), good);
    /* new entries follow the last good one and replay */
    journal_entry e = {.type = J_DEAD, .task = 7, .a = 4};
    CHECK_OK(journal_append(j, &e));
    journal_destroy(&j);
    memset(&s, 0, sizeof s);
    CHECK_OK(journal_replay(path, visit, &s, &torn_bytes));
    CHECK(s.count == 101 && s.last_task == 7 && torn_bytes == 0, "after append: %d entries", s.count);

    /* a flipped byte inside an entry fails its checksum: replay stops there */
    fd = open(path, O_RDWR);
    uint8_t b;
    off_t at = good / 2;
    pread(fd, &b, 1, at);
    b ^= 0x40;
    pwrite(fd, &b, 1, at);
    close(fd);
    memset(&s, 0, sizeof s);
    CHECK_OK(journal_replay(path, visit, &s, &torn_bytes));
    CHECK(s.count < 100 && s.count > 30 && torn_bytes > 0, "corrupt entry stops replay: %d entries, %llu bad bytes", s.count, (unsigned long long)torn_bytes);

    /* a file of garbage replays nothing and is cut to empty */
    f = fopen(path, "wb");
    for (int i = 0; i < 1000; i++) fputc(i * 7, f);
    fclose(f);
    memset(&s, 0, sizeof s);
    j = journal_open(path, visit, &s);
    CHECK(j && s.count == 0 && file_size(path) == 0, "garbage: %d entries, size %ld", s.count, file_size(path));
    journal_destroy(&j);
    unlink(path);
    return TEST_END();
}
