/* test_journal_faults.c — a journal write that fails part-way (the file size limit stands in
 * for a full disk: write stops short, then fails) leaves no entry after the torn one: later
 * appends and commits are refused, the torn bytes are cut back, and replay finds exactly the
 * entries committed before the failure. */
#include "coordinator/journal.h"
#include "tests/test.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static int count_visit(const journal_entry *e, void *ctx) { (void)e; ++*(int *)ctx; return 0; }

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static int append(journal *j, uint64_t t) {
    const char *text = "a caption long enough to make each entry about a hundred bytes long, more or less";
    journal_entry e = {.type = J_DONE, .task = t, .a = 8, .b = t * 100, .nstr = 1, .str = &text};
    return journal_append(j, &e);
}

int main(void) {
    TEST_BEGIN();
    char path[] = "/tmp/tessera_test_journal_faults_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    unlink(path);
    journal *j = journal_open(path, NULL, NULL);
    CHECK(j != NULL, "open: %s", ts_last_error());
    if (!j) return TEST_END();
    for (uint64_t t = 0; t < 10; t++) CHECK_OK(append(j, t));
    CHECK_OK(journal_commit(j));
    long good = file_size(path);

    /* the disk fills 300 bytes further on: the next commit writes part of its entries */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = (rlim_t)good + 300;
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0, "setrlimit");
    for (uint64_t t = 10; t < 30; t++) CHECK_OK(append(j, t));
    CHECK(journal_commit(j) < 0, "a commit that could not be written must fail");
    CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0, "setrlimit back");

    /* space is back, but this journal writes nothing more: an entry here would follow a torn one */
    CHECK(append(j, 30) < 0, "append after a failed write must be refused");
    CHECK(journal_commit(j) < 0, "commit after a failed write must be refused");
    CHECK(strstr(ts_last_error(), "journal") != NULL, "error: %s", ts_last_error());
    journal_destroy(&j);
    CHECK(file_size(path) == good, "torn bytes cut back: %ld bytes, %ld committed", file_size(path), good);

    int n = 0;
    uint64_t torn = 99;
    CHECK_OK(journal_replay(path, count_visit, &n, &torn));
    CHECK(n == 10 && torn == 0, "replay: %d entries, %llu torn bytes (want 10, 0)", n, (unsigned long long)torn);
    unlink(path);
    return TEST_END();
}
