/*
 * test_comm.c — the comm object (kernels/comm.h) against numpy's sums and concatenations
 * (tests/fixtures/comm, tools/gen_comm_fixtures.py).
 *
 * Run by ctest, it tests the single-rank comm, then starts itself under
 *   mpirun -np N --allow-run-as-root --oversubscribe   for N = 2, 3, 4
 * where every rank runs the MPI tests: odd and empty sizes, split groups used side by side,
 * ranks that disagree on a call (all must fail with the same message, none may hang), and a
 * comm used from a thread other than the one that made it (MPI_THREAD_SERIALIZED).
 */
#include "kernels/comm.h"
#include "tests/test.h"

#include <pthread.h>
#ifdef TESSERA_HAVE_MPI
#include <mpi.h>
#endif
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const int lengths[] = {0, 1, 13, 1001, 10007};

/* A fixture named by a format ("comm/x%d_r%d.npy", length, rank) as floats; its length in *n_out. */
static float *load(size_t *n_out, const char *fmt, ...) TS_PRINTF(2, 3);
static float *load(size_t *n_out, const char *fmt, ...) {
    char name[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    tensor shape;
    float *x = fixture_npy(name, &shape);
    *n_out = x ? (size_t)tensor_numel(&shape) : 0;
    return x;
}

static uint64_t fnv1a(const void *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ ((const uint8_t *)p)[i]) * 1099511628211ull;
    return h;
}

/* Every rank of c holds the same bytes. */
static bool same_on_every_rank(comm *c, const void *p, size_t n) {
    uint64_t mine = fnv1a(p, n), all[64];
    if (comm_size(c) > 64 || comm_all_gather(c, &mine, all, sizeof mine) != 0) return false;
    for (int r = 0; r < comm_size(c); r++)
        if (all[r] != mine) return false;
    return true;
}

static bool contains(const char *text, const char *part) { return strstr(text, part) != NULL; }

/* ---- one rank ---- */

static void test_single(void) {
    comm *c = comm_new_single();
    CHECK(c && comm_rank(c) == 0 && comm_size(c) == 1, "single comm is rank 0 of 1");
    CHECK(strcmp(comm_kind(c), "single") == 0, "kind %s", comm_kind(c));
    size_t n;
    float *x = load(&n, "comm/x%d_r%d.npy", 13, 0);
    float got[13] = {0};
    CHECK_OK(comm_all_reduce_sum(c, x, got, n, DT_F32));
    CHECK(memcmp(got, x, sizeof got) == 0, "the sum over one rank is its input");
    float gathered[13] = {0};
    CHECK_OK(comm_all_gather(c, x, gathered, sizeof gathered));
    CHECK(memcmp(gathered, x, sizeof gathered) == 0, "gather over one rank");
    CHECK_OK(comm_broadcast(c, got, sizeof got, 0));
    void *message = got;
    size_t message_bytes = sizeof got;
    CHECK(comm_broadcast_message(c, &message, &message_bytes, 0) == 0 && message == got &&
          message_bytes == sizeof got, "message to oneself: %s", ts_last_error());
    CHECK_OK(comm_barrier(c));
    CHECK_OK(comm_all_reduce_sum(c, NULL, NULL, 0, DT_F32));

    CHECK(comm_broadcast(c, got, sizeof got, 1) == -1 && contains(ts_last_error(), "root 1 is not a rank"),
          "root out of range: %s", ts_last_error());
    uint16_t h[4] = {0};
    CHECK(comm_all_reduce_sum(c, h, h, 4, DT_F16) == -1 && contains(ts_last_error(), "does not sum F16"),
          "F16 refused: %s", ts_last_error());
    CHECK(comm_all_reduce_sum(c, NULL, got, 3, DT_F32) == -1 && contains(ts_last_error(), "NULL buffer"),
          "NULL refused: %s", ts_last_error());

    comm *group = comm_split(c, 5, 0);
    CHECK(group && comm_size(group) == 1 && comm_rank(group) == 0, "split of one rank");
    comm_destroy(&group);
    CHECK(group == NULL, "destroy clears the pointer");
    CHECK(comm_split(c, -1, 0) == NULL && contains(ts_last_error(), "color -1"), "%s", ts_last_error());
    CHECK(comm_split_groups(c, 2, NULL) == NULL && contains(ts_last_error(), "size 1 does not divide into groups of 2"),
          "%s", ts_last_error());
    comm_destroy(&c);
    free(x);

    comm *world = comm_new_world();
    CHECK(world && strcmp(comm_kind(world), "single") == 0, "without a launcher the world is one rank");
    comm_destroy(&world);
    if (comm_have_mpi())
        CHECK(comm_new_mpi_world() == NULL && contains(ts_last_error(), "not started by an MPI launcher"),
              "%s", ts_last_error());
}

/* ---- every rank, under mpirun ---- */

static void test_ranks(comm *world) {
    const char *size_env = getenv("OMPI_COMM_WORLD_SIZE"), *rank_env = getenv("OMPI_COMM_WORLD_RANK");
    if (size_env && rank_env)
        CHECK(comm_size(world) == atoi(size_env) && comm_rank(world) == atoi(rank_env),
              "rank %d of %d, mpirun says %s of %s", comm_rank(world), comm_size(world), rank_env, size_env);
    CHECK(strcmp(comm_kind(world), "mpi") == 0, "kind %s", comm_kind(world));
}

static void test_all_reduce(comm *world) {
    int rank = comm_rank(world), np = comm_size(world);
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        int len = lengths[i];
        size_t n, n_want;
        float *x = load(&n, "comm/x%d_r%d.npy", len, rank);
        float *want = load(&n_want, "comm/sum%d_np%d.npy", len, np);
        CHECK(n == (size_t)len && n_want == (size_t)len, "fixture length %d", len);
        float *got = ts_calloc(n + 1, sizeof *got);
        char what[64];
        snprintf(what, sizeof what, "all-reduce of %d floats over %d ranks", len, np);
        CHECK_OK(comm_all_reduce_sum(world, x, got, n, DT_F32));
        if (n) CHECK_CLOSE_ARRAYS(got, want, n, 1e-6f, what);
        CHECK(same_on_every_rank(world, got, n * sizeof *got), "%s: same bits on every rank", what);
        /* In place gives the same bits. */
        float *inplace = ts_calloc(n + 1, sizeof *inplace);
        if (n) memcpy(inplace, x, n * sizeof *x);
        CHECK_OK(comm_all_reduce_sum(world, inplace, inplace, n, DT_F32));
        CHECK(memcmp(inplace, got, n * sizeof *got) == 0, "%s: in place", what);
        free(x); free(want); free(got); free(inplace);
    }
    /* Integers: the sum is exact whatever order MPI adds in. */
    size_t n, n_want;
    float *x = load(&n, "comm/int%d_r%d.npy", 4099, rank);
    float *want = load(&n_want, "comm/int%d_np%d.npy", 4099, np);
    CHECK_OK(comm_all_reduce_sum(world, x, x, n, DT_F32));
    CHECK(n == 4099 && memcmp(x, want, n * sizeof *x) == 0, "exact integer sum over %d ranks", np);
    free(x); free(want);
}

static void test_gather_broadcast(comm *world) {
    int rank = comm_rank(world), np = comm_size(world);
    size_t n, n_want;
    float *x = load(&n, "comm/x%d_r%d.npy", 13, rank);
    float *want = load(&n_want, "comm/gather13_np%d.npy", np);
    float *got = ts_calloc(n_want, sizeof *got);
    CHECK_OK(comm_all_gather(world, x, got, n * sizeof *x));
    CHECK(n_want == 13u * np && memcmp(got, want, n_want * sizeof *got) == 0, "all-gather of 13 floats");
    free(x); free(want); free(got);

    float *b = load(&n, "comm/bytes_r%d.npy", rank);
    float *bwant = load(&n_want, "comm/gather_bytes_np%d.npy", np);
    uint8_t mine[37], all[4 * 37];
    for (size_t i = 0; i < n && i < sizeof mine; i++) mine[i] = (uint8_t)b[i];
    CHECK_OK(comm_all_gather(world, mine, all, sizeof mine));
    bool same = n == 37 && n_want == 37u * np;
    for (size_t i = 0; same && i < n_want; i++) same = all[i] == (uint8_t)bwant[i];
    CHECK(same, "all-gather of 37 bytes over %d ranks", np);
    CHECK_OK(comm_all_gather(world, NULL, NULL, 0));
    free(b); free(bwant);

    float *payload = load(&n, "comm/bcast.npy");
    uint8_t *data = ts_calloc(n, 1);
    if (rank == np - 1)
        for (size_t i = 0; i < n; i++) data[i] = (uint8_t)payload[i];
    CHECK_OK(comm_broadcast(world, data, n, np - 1));
    same = n == 100003;
    for (size_t i = 0; same && i < n; i++) same = data[i] == (uint8_t)payload[i];
    CHECK(same, "broadcast of %zu bytes from rank %d", n, np - 1);
    CHECK_OK(comm_broadcast(world, NULL, 0, 0));

    /* A message whose length only the root knows (a task handed to a group). */
    void *message = rank == np - 1 ? data : NULL;
    size_t message_bytes = rank == np - 1 ? n : 0;
    CHECK_OK(comm_broadcast_message(world, &message, &message_bytes, np - 1));
    same = message_bytes == 100003;
    for (size_t i = 0; same && i < message_bytes; i++) same = ((uint8_t *)message)[i] == (uint8_t)payload[i];
    CHECK(same, "message of %zu bytes from rank %d", message_bytes, np - 1);
    if (rank != np - 1) free(message);
    message = NULL;
    message_bytes = rank == 0 ? 0 : 5;
    CHECK_OK(comm_broadcast_message(world, &message, &message_bytes, 0));
    CHECK(message == NULL && message_bytes == 0, "empty message: %zu bytes", message_bytes);
    CHECK_OK(comm_barrier(world));
    free(payload); free(data);
}

/* Ranks that disagree: every rank returns -1 with the same message, then the comm still works. */
static void test_mismatches(comm *world) {
    int rank = comm_rank(world), np = comm_size(world), last = np - 1;
    float buf[14] = {0};
    char want[160];

    int rc = comm_all_reduce_sum(world, buf, buf, rank == last ? 14 : 13, DT_F32);
    snprintf(want, sizeof want, "all-reduce: rank %d passes 14 F32 values, rank 0 passes 13", last);
    CHECK(rc == -1 && contains(ts_last_error(), want), "count mismatch: %s", ts_last_error());

    float gathered[4 * 8];
    rc = comm_all_gather(world, buf, gathered, rank == last ? 8 : 4);
    snprintf(want, sizeof want, "all-gather: rank %d passes 8 bytes, rank 0 passes 4", last);
    CHECK(rc == -1 && contains(ts_last_error(), want), "gather mismatch: %s", ts_last_error());

    rc = rank == last ? comm_barrier(world) : comm_all_reduce_sum(world, buf, buf, 13, DT_F32);
    snprintf(want, sizeof want, "rank %d calls barrier while rank 0 calls all-reduce", last);
    CHECK(rc == -1 && contains(ts_last_error(), want), "collective mismatch: %s", ts_last_error());

    rc = comm_broadcast(world, buf, sizeof buf, rank == 1 ? 1 : 0);
    CHECK(rc == -1 && contains(ts_last_error(), "broadcast: rank 1 names root 1, rank 0 names root 0"),
          "root mismatch: %s", ts_last_error());

    rc = comm_all_reduce_sum(world, rank == 1 ? NULL : buf, buf, 13, DT_F32);
    CHECK(rc == -1 && contains(ts_last_error(), rank == 1 ? "NULL buffer" : "rank 1 refused its arguments"),
          "one rank's bad argument: %s", ts_last_error());

    rc = comm_broadcast(world, buf, sizeof buf, np);
    CHECK(rc == -1 && contains(ts_last_error(), "is not a rank of a group of"), "%s", ts_last_error());

    /* After all that, the comm still works. */
    for (int i = 0; i < 13; i++) buf[i] = (float)(rank + i);
    CHECK_OK(comm_all_reduce_sum(world, buf, buf, 13, DT_F32));
    CHECK(buf[0] == np * (np - 1) / 2.0f && buf[12] == np * (np - 1) / 2.0f + 12.0f * np,
          "works after errors: %g %g", buf[0], buf[12]);
}

static void check_group_sum(comm *group, const char *kind, int color, int rank, int np) {
    size_t n, n_want;
    float *x = load(&n, "comm/x%d_r%d.npy", 1001, rank);
    float *want = load(&n_want, "comm/split_%s_np%d_c%d.npy", kind, np, color);
    float *got = ts_calloc(n, sizeof *got);
    char what[64];
    snprintf(what, sizeof what, "%s group %d of %d ranks", kind, color, np);
    CHECK_OK(comm_all_reduce_sum(group, x, got, n, DT_F32));
    CHECK(n == 1001 && n_want == 1001, "%s fixtures", what);
    CHECK_CLOSE_ARRAYS(got, want, n, 1e-6f, what);
    free(x); free(want); free(got);
}

/* Two splits of the world held at once (a tensor-parallel x data-parallel grid), used in turn. */
static void test_split(comm *world) {
    int rank = comm_rank(world), np = comm_size(world);
    comm *mod2 = comm_split(world, rank % 2, rank);
    comm *div2 = comm_split(world, rank / 2, rank);
    CHECK(mod2 && div2, "%s", ts_last_error());
    if (!mod2 || !div2) return;
    CHECK(comm_rank(mod2) == rank / 2 && comm_size(mod2) == (np - rank % 2 + 1) / 2,
          "mod2: rank %d of %d", comm_rank(mod2), comm_size(mod2));
    CHECK(comm_rank(div2) == rank % 2 && comm_size(div2) == (rank / 2 * 2 + 2 <= np ? 2 : 1),
          "div2: rank %d of %d", comm_rank(div2), comm_size(div2));
    for (int round = 0; round < 2; round++) {
        check_group_sum(mod2, "mod2", rank % 2, rank, np);
        check_group_sum(div2, "div2", rank / 2, rank, np);
        size_t n, n_want;
        float *x = load(&n, "comm/x%d_r%d.npy", 1001, rank);
        float *want = load(&n_want, "comm/sum%d_np%d.npy", 1001, np);
        CHECK_OK(comm_all_reduce_sum(world, x, x, n, DT_F32));
        CHECK_CLOSE_ARRAYS(x, want, n, 1e-6f, "world sum between group sums");
        free(x); free(want);
    }
    /* A group's setting is its own. */
    comm_set_checked(div2, false);
    check_group_sum(div2, "div2", rank / 2, rank, np);
    float one = 1;
    int rc = comm_all_reduce_sum(mod2, &one, &one, comm_rank(mod2) == 0 ? 1 : 2, DT_F32);
    if (comm_size(mod2) > 1) CHECK(rc == -1, "mod2 still checks after div2 stopped checking");
    /* A broadcast inside each group reaches only that group. */
    int value = comm_rank(div2) == 0 ? 100 + rank : -1;
    CHECK_OK(comm_broadcast(div2, &value, sizeof value, 0));
    CHECK(value == 100 + rank / 2 * 2, "broadcast within a group: %d", value);
    comm_destroy(&mod2);
    comm_destroy(&div2);

    int group_index = -1;
    comm *pairs = comm_split_groups(world, 2, &group_index);
    if (np % 2 == 0) {
        CHECK(pairs && comm_size(pairs) == 2 && comm_rank(pairs) == rank % 2 && group_index == rank / 2,
              "groups of 2: %s", ts_last_error());
    } else {
        char want[96];
        snprintf(want, sizeof want, "size %d does not divide into groups of 2", np);
        CHECK(!pairs && contains(ts_last_error(), want), "refused on every rank: %s", ts_last_error());
    }
    comm_destroy(&pairs);
    comm *odd = comm_split_groups(world, rank == np - 1 ? np : 1, NULL);
    CHECK(!odd && contains(ts_last_error(), "asks for groups of"), "group sizes disagree: %s", ts_last_error());
    comm_destroy(&odd);
}

/* Unchecked calls give the same results; a second world comm is independent of the first. */
static void test_unchecked_and_second_world(comm *world) {
    comm *again = comm_new_mpi_world();
    CHECK(again && comm_rank(again) == comm_rank(world), "%s", ts_last_error());
    if (!again) return;
    comm_set_checked(again, false);
    int rank = comm_rank(world), np = comm_size(world);
    size_t n, n_want;
    float *x = load(&n, "comm/x%d_r%d.npy", 10007, rank);
    float *want = load(&n_want, "comm/sum%d_np%d.npy", 10007, np);
    CHECK_OK(comm_all_reduce_sum(again, x, x, n, DT_F32));
    CHECK_CLOSE_ARRAYS(x, want, n, 1e-6f, "unchecked all-reduce");
    CHECK_OK(comm_barrier(again));
    int token = rank == 0 ? 42 : 0;
    CHECK_OK(comm_broadcast(again, &token, sizeof token, 0));
    CHECK(token == 42, "unchecked broadcast");
    CHECK_OK(comm_barrier(world));
    comm_destroy(&again);
    free(x); free(want);
}

typedef struct {
    comm *c;
    float *x;
    size_t n;
    int rc;
} thread_job;

static void *reduce_on_thread(void *arg) {
    thread_job *job = arg;
    job->rc = comm_all_reduce_sum(job->c, job->x, job->x, job->n, DT_F32);
    return NULL;
}

/* MPI_THREAD_SERIALIZED: a comm made on the main thread is used from another one. */
static void test_other_thread(comm *world) {
    int rank = comm_rank(world), np = comm_size(world);
    float x[13];
    for (int i = 0; i < 13; i++) x[i] = (float)(rank + i);
#ifdef TESSERA_HAVE_MPI
    int level = -1;
    MPI_Query_thread(&level);
    CHECK(level >= MPI_THREAD_SERIALIZED, "MPI thread level %d", level);
#endif
    thread_job job = {world, x, 13, -1};
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, reduce_on_thread, &job) == 0, "pthread_create");
    pthread_join(thread, NULL);
    CHECK(job.rc == 0 && x[0] == np * (np - 1) / 2.0f && x[12] == np * (np - 1) / 2.0f + 12.0f * np,
          "all-reduce from another thread: %s", ts_last_error());
}

int main(void) {
    TEST_BEGIN();
    if (!comm_under_launcher()) {
        test_single();
        if (comm_have_mpi())
            for (int np = 2; np <= 4; np++) CHECK(test_run_under_mpirun(np, 120), "mpirun -np %d: a rank failed", np);
        else
            fprintf(stderr, "test_comm: built without MPI, only the single-rank comm is tested\n");
        return TEST_END();
    }
    comm *world = comm_new_world();
    CHECK(world, "%s", ts_last_error());
    if (!world) return TEST_END();
    test_ranks(world);
    test_all_reduce(world);
    test_gather_broadcast(world);
    test_mismatches(world);
    test_split(world);
    test_unchecked_and_second_world(world);
    test_other_thread(world);
    comm_destroy(&world);
    return TEST_END();
}
