/* cmd_keygen.c — `tessera keygen NAME [--dir DIR]`: a CURVE key pair (czmq zcert). */
#include "cli/args.h"
#include "cli/commands.h"
#include "kernels/base.h"

#include <czmq.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

int cmd_keygen(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        printf("usage: tessera keygen NAME [--dir DIR]\n"
               "Writes DIR/NAME.cert (public: copy it into the coordinator's allow/ folder, or give\n"
               "it to workers as --server-cert) and DIR/NAME.cert_secret (keep it private).\n"
               "The coordinator's pair is named 'server'.\n");
        return argc < 2 ? 2 : 0;
    }
    const char *dir = ".", *name = NULL;
    cli_args args;
    cli_args_init(&args, argc, argv);
    bool option;
    for (const char *a; (a = cli_args_next(&args, &option));) {
        if (!option && !name) name = a;
        else if (option && !strcmp(a, "--dir") && (dir = cli_args_value(&args))) continue;
        else { fprintf(stderr, "tessera keygen: unexpected '%s'\n", a); return 2; }
    }
    if (!name) { fprintf(stderr, "tessera keygen: NAME is required\n"); return 2; }
    if (strchr(name, '/')) { fprintf(stderr, "tessera keygen: NAME '%s' must not contain '/'\n", name); return 2; }
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) { fprintf(stderr, "tessera keygen: %s: %s\n", dir, strerror(errno)); return 2; }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.cert", dir, name);
    zcert_t *cert = zcert_new();
    zcert_set_meta(cert, "name", "%s", name);
    int rc = zcert_save(cert, path);
    if (rc == 0) printf("%s\n", zcert_public_txt(cert));
    else fprintf(stderr, "tessera keygen: cannot write %s\n", path);
    zcert_destroy(&cert);
    return rc == 0 ? 0 : 2;
}
