/*
 * main.c — the `tessera` program: global flags, then a git-style subcommand.
 *
 *   tessera [-v|-vv|-q] COMMAND [args...]
 *
 * The command table is cli/commands.h; each command lives in cli/cmd_NAME.c.
 */
#include "cli/commands.h"
#include "kernels/base.h"
#include "kernels/comm.h"
#include "kernels/backend.h"
#ifdef TESSERA_HAVE_CUDA
#include "kernels/cuda/cuda.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * OpenMP's waiting threads spin by default (libgomp: 300000 turns before they sleep). A render
 * worker runs three stage threads, each with its own OpenMP team, on the same cores, and a team
 * that spins at a barrier for a preempted partner burns the CPU that partner needs: batched
 * `bench render` on tiny_sd with two busy loops beside it ran 0.18-0.33x batch 1 in 3 of 4
 * runs spinning and 0.63-1.42x waiting passively (README). So Tessera waits passively unless the user chose
 * (OMP_WAIT_POLICY=active spins, for a dedicated node; one pipeline there is ~5 % faster).
 * libgomp reads the variable in its constructor, before main, and libc sets up the environment
 * only after the program's .preinit_array has run, so the one way to set it for this process is
 * to set it and start the program again (execv keeps the pid, which mpirun and Slurm watch).
 * If that fails, or under valgrind, Tessera goes on with libgomp's default.
 */
static void wait_passively_by_default(char **argv) {
    if (getenv("OMP_WAIT_POLICY")) return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    /* valgrind (its preload names it) would run the restarted program outside itself */
    const char *preload = getenv("LD_PRELOAD");
    if (preload && strstr(preload, "vgpreload")) return;
    execv("/proc/self/exe", argv);
}

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} command;

#define COMMAND_ENTRY(name, summary) {#name, summary, cmd_##name},
static const command commands[] = {TESSERA_COMMANDS(COMMAND_ENTRY)};
#undef COMMAND_ENTRY
static const int command_count = (int)(sizeof commands / sizeof commands[0]);

/* Command names are C identifiers; users type '-' where the identifier has '_'. */
static bool command_is(const char *name, const char *typed) {
    for (; *name && *typed; name++, typed++)
        if (*name != *typed && !(*name == '_' && *typed == '-')) return false;
    return *name == *typed;
}

static void print_name(const char *name) {
    char buf[64];
    size_t i = 0;
    for (; name[i] && i < sizeof buf - 1; i++) buf[i] = name[i] == '_' ? '-' : name[i];
    buf[i] = 0;
    printf("  %-14s ", buf);
}

int cmd_help(int argc, char **argv) {
    if (argc > 1) {
        for (int i = 0; i < command_count; i++)
            if (command_is(commands[i].name, argv[1])) {
                char *args[] = {argv[1], "--help", NULL};
                return commands[i].run(2, args);
            }
        fprintf(stderr, "tessera: no command '%s'\n", argv[1]);
        return 2;
    }
    printf("usage: tessera [-v|-vv|-q] COMMAND [ARGS]\n\ncommands:\n");
    for (int i = 0; i < command_count; i++) {
        print_name(commands[i].name);
        printf("%s\n", commands[i].summary);
    }
    printf("\n'tessera help COMMAND' or 'tessera COMMAND --help' shows a command's options.\n");
    return 0;
}

static const char *yes_no(int on) { return on ? "yes" : "no"; }

int cmd_version(int argc, char **argv) {
    (void)argc; (void)argv;
    int blas = 0, dnnl = 0, cuda = 0, nccl = 0, mpi = 0;
#ifdef TESSERA_HAVE_OPENBLAS
    blas = 1;
#endif
#ifdef TESSERA_HAVE_DNNL
    dnnl = 1;
#endif
#ifdef TESSERA_HAVE_CUDA
    cuda = 1;
#endif
#ifdef TESSERA_HAVE_NCCL
    nccl = 1;
#endif
    mpi = comm_have_mpi(); /* kernels/comm_mpi.c built on an MPI library */
    printf("tessera %s\n", TESSERA_VERSION);
    ts_ctx *ctx = ts_ctx_new("cpu", 0);
    printf("features: openblas=%s onednn=%s cuda=%s nccl=%s mpi=%s openmp=yes threads=%d\n",
           yes_no(blas), yes_no(dnnl), yes_no(cuda), yes_no(nccl), yes_no(mpi), ctx ? ts_ctx_threads(ctx) : 1);
    ts_ctx_destroy(&ctx);
    printf("backends:");
    const char *const *names = ts_backend_names();
    for (int i = 0; names[i]; i++) printf(" %s", names[i]);
    printf("\n");
#ifdef TESSERA_HAVE_CUDA
    int devices = cuda_device_count();   /* the CUDA library is built: say what it sees */
    printf("cuda devices: %d\n", devices);
    for (int d = 0; d < devices; d++) {
        char desc[256];
        if (cuda_device_describe(d, desc, sizeof desc) == 0) printf("  cuda:%d %s\n", d, desc);
    }
#endif
    return 0;
}

int main(int argc, char **argv) {
    wait_passively_by_default(argv);
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-v") == 0) log_set_level(TS_LOG_DEBUG);
        else if (strcmp(argv[i], "-vv") == 0) log_set_level(TS_LOG_TRACE);
        else if (strcmp(argv[i], "-q") == 0) log_set_level(TS_LOG_ERROR);
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return cmd_help(1, argv);
        else if (strcmp(argv[i], "--version") == 0) return cmd_version(1, argv);
        else { fprintf(stderr, "tessera: unknown option '%s' (try 'tessera help')\n", argv[i]); return 2; }
    }
    if (i == argc) { cmd_help(1, argv); return 2; }
    for (int c = 0; c < command_count; c++)
        if (command_is(commands[c].name, argv[i])) return commands[c].run(argc - i, argv + i);
    fprintf(stderr, "tessera: '%s' is not a command (try 'tessera help')\n", argv[i]);
    return 2;
}
