/* test.c — the shared test harness (see test.h). */
#include "test.h"
#include "models/formats/npy.h"
#ifdef TESSERA_HAVE_CUDA
#include "kernels/cuda/cuda.h"
#endif

#include <limits.h>
#include <math.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int test_passed, test_failed;

int test_report(void) {
    printf("%d passed, %d failed\n", test_passed, test_failed);
    if (test_passed + test_failed == 0) {
        fprintf(stderr, "FAIL: no check ran (a test must check something, or call TEST_SKIP)\n");
        return 1;
    }
    return test_failed ? 1 : 0;
}

void test_skip(const char *why, ...) {
    printf("%d passed, %d failed\n", test_passed, test_failed);
    if (test_failed) {
        fprintf(stderr, "FAIL: %d checks failed before the test skipped\n", test_failed);
        exit(1);
    }
    va_list ap;
    va_start(ap, why);
    printf("SKIP: ");
    vprintf(why, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    exit(TEST_SKIP_CODE);
}

float test_max_abs_diff(const float *got, const float *want, size_t n, float *max_want) {
    float worst = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(got[i] - want[i]);
        if (!(d <= worst)) worst = d;   /* NaN counts as worst */
        if (fabsf(want[i]) > scale) scale = fabsf(want[i]);
    }
    if (max_want) *max_want = scale;
    return worst;
}

bool test_arrays_close(const float *got, const float *want, size_t n, float tol, const char *what) {
    float scale;
    float worst = test_max_abs_diff(got, want, n, &scale);
    float limit = tol * (scale > 1 ? scale : 1);
    /* the achieved error, always: tolerances are kept within 10x of it (see README, Testing) */
    printf("  %s: max abs diff %.3g (limit %.3g, scale %.3g)\n", what, worst, limit, scale);
    if (worst <= limit) return true;
    size_t at = 0;
    for (size_t i = 0; i < n; i++)
        if (!(fabsf(got[i] - want[i]) <= limit)) { at = i; break; }
    fprintf(stderr, "  %s: max abs diff %.3g > %.3g (scale %.3g); first at [%zu]: got %.7g want %.7g\n",
            what, worst, limit, scale, at, got[at], want[at]);
    return false;
}

static const char *env_path(const char *var, const char *fallback, const char *rel) {
    static char bufs[8][4096];
    static int next;
    const char *root = getenv(var);
    if (!root) root = fallback;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", root, rel);
    return b;
}

const char *fixture_path(const char *rel) { return env_path("TESSERA_FIXTURES", "tests/fixtures", rel); }
const char *data_path(const char *rel) { return env_path("TESSERA_DATA", "../shared/data", rel); }

float *fixture_npy(const char *rel, tensor *shape_out) {
    tensor t;
    if (npy_load(fixture_path(rel), &t) != 0) {
        fprintf(stderr, "cannot load fixture %s: %s\n", rel, ts_last_error());
        return NULL;
    }
    float *f = ts_malloc((size_t)tensor_numel(&t) * sizeof(float));
    tensor_copy_to_f32(f, &t);
    if (shape_out) { *shape_out = t; shape_out->data = f; shape_out->type = DT_F32; shape_out->owns_data = false; }
    tensor_free(&t);
    return f;
}

static ts_ctx *the_ctx;
static void test_ctx_free(void) { ts_ctx_destroy(&the_ctx); }

const char *test_device(void) {
    const char *d = getenv("TESSERA_TEST_DEVICE");
    return d && *d ? d : "cpu";
}

ts_ctx *test_ctx(void) {
    if (!the_ctx) {
        const char *device = test_device();
        if (strncmp(device, "cuda", 4) == 0) {   /* a GPU run of a parity test: skipped without one */
#ifdef TESSERA_HAVE_CUDA
            if (cuda_device_count() == 0) test_skip("TESSERA_TEST_DEVICE=%s: no CUDA device on this machine", device);
#else
            test_skip("TESSERA_TEST_DEVICE=%s: this build has no CUDA backend", device);
#endif
        }
        the_ctx = ts_ctx_new(device, 0);
        if (!the_ctx) {
            fprintf(stderr, "test_ctx: %s\n", ts_last_error());
            exit(1);
        }
        atexit(test_ctx_free);
    }
    return the_ctx;
}

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif

bool test_run_under_mpirun(int np, int timeout_s) {
#ifndef TESSERA_MPIEXEC
#define TESSERA_MPIEXEC "mpirun"
#endif
    char self[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) return false;
    self[len] = 0;
    char ranks[16], timeout[16];
    snprintf(ranks, sizeof ranks, "%d", np);
    snprintf(timeout, sizeof timeout, "%d", timeout_s);
    char *args[] = {TESSERA_MPIEXEC, "-np", ranks, "--allow-run-as-root", "--oversubscribe",
                    "--tag-output", "--timeout", timeout, self, NULL};
#ifdef SANITIZED
    /* LeakSanitizer would fail every rank on OpenMPI's own allocations kept until exit */
    const char *source = getenv("TESSERA_SOURCE"), *old = getenv("LSAN_OPTIONS");
    char options[PATH_MAX + 256];
    snprintf(options, sizeof options,
             "%s%ssuppressions=%s/tests/unit/test_comm_lsan.supp:fast_unwind_on_malloc=0:print_suppressions=0",
             old ? old : "", old && *old ? ":" : "", source ? source : ".");
    setenv("LSAN_OPTIONS", options, 1);
#endif
    setenv("OMPI_MCA_mca_base_component_disable_dlclose", "1", 1);
    pid_t pid;
    if (posix_spawnp(&pid, args[0], NULL, NULL, args, environ) != 0) return false;
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return false;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}
