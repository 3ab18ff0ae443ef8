/*
 * comm_mpi.c — the comm over MPI (OpenMPI here), on host buffers.
 *
 * MPI is initialised on the first comm_new_mpi_world() only, and only when the process was
 * started by a launcher, so a plain `tessera` never touches MPI. It is asked for
 * MPI_THREAD_SERIALIZED: one thread at a time calls into a comm, not necessarily the thread
 * that made it. MPI is finalised at exit when this file initialised it. Every comm holds its own
 * MPI communicator (a duplicate of MPI_COMM_WORLD, or a split of one), with MPI_ERRORS_RETURN so
 * that a failing call returns an error here instead of aborting the job.
 *
 * MPI counts are ints: all-reduce and broadcast go in pieces of at most 2^30 elements; an
 * all-gather of more than 2 GiB per rank is refused.
 */
#include "kernels/comm_impl.h"

#include <stdlib.h>

bool comm_under_launcher(void) {
    /* OpenMPI's mpirun, PMIx launchers (srun --mpi=pmix, prrte), MPICH/Hydra and PMI-2. */
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return true;
    return false;
}

#ifndef TESSERA_HAVE_MPI

bool comm_have_mpi(void) { return false; }

void comm_set_finalize_at_exit(bool finalize) { (void)finalize; }

comm *comm_new_mpi_world(void) {
    ts_fail("comm mpi: this tessera was built without MPI (install libopenmpi-dev and rebuild)");
    return NULL;
}

#else

#include <limits.h>
#include <mpi.h>
#include <stdio.h>

bool comm_have_mpi(void) { return true; }

enum { PIECE = 1 << 30 }; /* elements per MPI call, under INT_MAX */

/* Records "CALL: MPI's message" for a failed MPI call; returns -1. */
static int mpi_fail(const char *call, int code) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "error %d", code);
    return ts_fail("%s: %s", call, text);
}

static bool finalize_at_exit = true;

void comm_set_finalize_at_exit(bool finalize) { finalize_at_exit = finalize; }

static void mpi_finish(void) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && finalize_at_exit) MPI_Finalize();
}

static int mpi_start(void) {
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (finalized) return ts_fail("comm mpi: MPI was already finalised in this process");
    if (initialized) return 0; /* by us earlier, or by the program that links us */
    int provided = 0;
    int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided);
    if (rc != MPI_SUCCESS) return mpi_fail("comm mpi: MPI_Init_thread", rc);
    atexit(mpi_finish);
    if (provided < MPI_THREAD_SERIALIZED)
        return ts_fail("comm mpi: this MPI gives thread level %d, comm needs MPI_THREAD_SERIALIZED (%d)",
                       provided, MPI_THREAD_SERIALIZED);
    return 0;
}

typedef struct {
    MPI_Comm c;
} mpi_state;

static bool mpi_supports_sum(dtype type) { return type == DT_F32; }

static int mpi_all_reduce_sum(void *state, const void *send, void *recv, size_t count, dtype type) {
    mpi_state *s = state;
    for (size_t at = 0; at < count; at += PIECE) {
        int n = (int)(count - at < PIECE ? count - at : PIECE);
        const void *in = send == recv ? MPI_IN_PLACE : (const float *)send + at;
        int rc = MPI_Allreduce(in, (float *)recv + at, n, MPI_FLOAT, MPI_SUM, s->c);
        if (rc != MPI_SUCCESS) return mpi_fail("MPI_Allreduce", rc);
    }
    return 0;
}

static int mpi_all_gather(void *state, const void *send, void *recv, size_t bytes) {
    mpi_state *s = state;
    if (bytes > INT_MAX) return ts_fail("%zu bytes per rank is over MPI's count limit (2 GiB)", bytes);
    int rc = MPI_Allgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, s->c);
    return rc == MPI_SUCCESS ? 0 : mpi_fail("MPI_Allgather", rc);
}

static int mpi_broadcast(void *state, void *data, size_t bytes, int root) {
    mpi_state *s = state;
    for (size_t at = 0; at < bytes; at += PIECE) {
        int n = (int)(bytes - at < PIECE ? bytes - at : PIECE);
        int rc = MPI_Bcast((char *)data + at, n, MPI_BYTE, root, s->c);
        if (rc != MPI_SUCCESS) return mpi_fail("MPI_Bcast", rc);
    }
    return 0;
}

static int mpi_barrier(void *state) {
    int rc = MPI_Barrier(((mpi_state *)state)->c);
    return rc == MPI_SUCCESS ? 0 : mpi_fail("MPI_Barrier", rc);
}

static int mpi_agree(void *state, const int64_t *mine, int64_t *all, int n) {
    int rc = MPI_Allgather(mine, n, MPI_INT64_T, all, n, MPI_INT64_T, ((mpi_state *)state)->c);
    return rc == MPI_SUCCESS ? 0 : mpi_fail("MPI_Allgather", rc);
}

/* Wraps an MPI communicator (owned from now on) as state; NULL with ts_fail on failure. */
static mpi_state *mpi_state_of(MPI_Comm c, int *rank, int *size) {
    int rc = MPI_Comm_set_errhandler(c, MPI_ERRORS_RETURN);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(c, rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(c, size);
    if (rc != MPI_SUCCESS) {
        mpi_fail("MPI_Comm_rank", rc);
        MPI_Comm_free(&c);
        return NULL;
    }
    mpi_state *s = ts_malloc(sizeof *s);
    s->c = c;
    return s;
}

static void *mpi_split(void *state, int color, int key, int *rank, int *size) {
    MPI_Comm c;
    int rc = MPI_Comm_split(((mpi_state *)state)->c, color, key, &c);
    if (rc != MPI_SUCCESS) {
        mpi_fail("MPI_Comm_split", rc);
        return NULL;
    }
    return mpi_state_of(c, rank, size);
}

static void mpi_destroy(void *state) {
    mpi_state *s = state;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&s->c); /* MPI_Finalize has freed it otherwise */
    free(s);
}

static const comm_impl mpi_impl = {
    .name = "mpi",
    .all_reduce_sum = mpi_all_reduce_sum,
    .supports_sum = mpi_supports_sum,
    .all_gather = mpi_all_gather,
    .broadcast = mpi_broadcast,
    .barrier = mpi_barrier,
    .agree = mpi_agree,
    .split = mpi_split,
    .destroy = mpi_destroy,
};

comm *comm_new_mpi_world(void) {
    if (!comm_under_launcher()) {
        ts_fail("comm mpi: not started by an MPI launcher (no OMPI_COMM_WORLD_SIZE, PMIX_RANK or "
                "PMI_RANK in the environment): run under mpirun");
        return NULL;
    }
    if (mpi_start() != 0) return NULL;
    MPI_Comm c;
    /* A duplicate, so our error handler and traffic never mix with other users of the world. */
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &c);
    if (rc != MPI_SUCCESS) {
        mpi_fail("comm mpi: MPI_Comm_dup", rc);
        return NULL;
    }
    int rank = 0, size = 0;
    mpi_state *s = mpi_state_of(c, &rank, &size);
    if (!s) {
        ts_fail_wrap("comm mpi");
        return NULL;
    }
    return comm_wrap(&mpi_impl, s, rank, size);
}

#endif
