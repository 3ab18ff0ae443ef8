/* cmd_keygen.c — `tessera keygen NAME [--dir DIR]`: a CURVE key pair (czmq zcert). */
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
    const char *dir = ".";
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
        else { fprintf(stderr, "tessera keygen: unknown option '%s'\n", argv[i]); return 2; }
    }
    if (strchr(argv[1], '/')) { fprintf(stderr, "tessera keygen: NAME '%s' must not contain '/'\n", argv[1]); return 2; }
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) { fprintf(stderr, "tessera keygen: %s: %s\n", dir, strerror(errno)); return 2; }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.cert", dir, argv[1]);
    zcert_t *cert = zcert_new();
    zcert_set_meta(cert, "name", "%s", argv[1]);
    int rc = zcert_save(cert, path);
    if (rc == 0) printf("%s\n", zcert_public_txt(cert));
    else fprintf(stderr, "tessera keygen: cannot write %s\n", path);
    zcert_destroy(&cert);
    return rc == 0 ? 0 : 2;
}
