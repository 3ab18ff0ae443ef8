/*
 * test.h — the tiny test harness every C test uses.
 *
 *   int main(void) {
 *       TEST_BEGIN();
 *       CHECK(x == 3, "x is %d", x);
 *       CHECK_CLOSE_ARRAYS(got, want, n, 1e-5f, "conv output");
 *       return TEST_END();        // prints "N passed, N failed", exit status 0/1
 *   }
 *
 * A program that ran no check fails: a test that cannot fail is not a test. A test that
 * cannot run on this machine (no GPU, say) calls TEST_SKIP("why"): it exits with status 77,
 * which ctest reports as skipped (SKIP_RETURN_CODE in tests/CMakeLists.txt), and `make test`
 * fails on any skip not listed in tests/expected_skips.txt. Shell tests skip with `exit 77`.
 *
 * Fixture paths come from the environment that ctest sets (tests/CMakeLists.txt).
 */
#ifndef TESSERA_TEST_H
#define TESSERA_TEST_H

#include "kernels/base.h"
#include "kernels/backend.h"
#include <stdio.h>

extern int test_passed, test_failed;

#define TEST_BEGIN() (test_passed = 0, test_failed = 0)
#define TEST_END() test_report()
/* Stops the test as skipped (exit status 77), saying why; a failure counted before wins. */
#define TEST_SKIP(...) test_skip(__VA_ARGS__)
#define TEST_SKIP_CODE 77

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (cond) test_passed++;                                             \
        else {                                                               \
            test_failed++;                                                   \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                    \
            fprintf(stderr, "\n");                                           \
        }                                                                    \
    } while (0)

/* Checks that a call returning 0/-1 succeeded, printing ts_last_error() if not. */
#define CHECK_OK(call) CHECK((call) == 0, "%s", ts_last_error())

/* max |got - want| <= tol * max(1, max |want|); prints the worst element. */
#define CHECK_CLOSE_ARRAYS(got, want, n, tol, what) \
    CHECK(test_arrays_close(got, want, n, tol, what), "%s", what)

int test_report(void);
_Noreturn void test_skip(const char *why, ...) __attribute__((format(printf, 1, 2)));
bool test_arrays_close(const float *got, const float *want, size_t n, float tol, const char *what);
/* Largest absolute difference, and the largest |want|. */
float test_max_abs_diff(const float *got, const float *want, size_t n, float *max_want);

/* Runs this program again under mpirun with np ranks (as root, --oversubscribe, and a
 * timeout of timeout_s so a hung collective fails the test instead of stalling ctest); true
 * when every rank passed. In the ASan build the ranks take OpenMPI's leak suppressions
 * (tests/unit/test_comm_lsan.supp: OpenMPI's libraries only). */
bool test_run_under_mpirun(int np, int timeout_s);

/* The test's context, made on first use and kept for the whole program: the CPU (all cores),
 * or $TESSERA_TEST_DEVICE (e.g. cuda: the parity tests on a GPU, tests/gpu/CMakeLists.txt;
 * the test is skipped, exit 77, where there is no such device). */
ts_ctx *test_ctx(void);
const char *test_device(void);   /* "cpu" or $TESSERA_TEST_DEVICE */

/* $TESSERA_FIXTURES/rel and $TESSERA_DATA/rel (static buffers, rotate through 8). */
const char *fixture_path(const char *rel);
const char *data_path(const char *rel);
/* Loads an .npy fixture as float32 (any float/int dtype widened); NULL on failure. */
float *fixture_npy(const char *rel, tensor *shape_out);

#endif
