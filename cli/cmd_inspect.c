/* cmd_inspect.c — `tessera inspect FILE`: list a weight file's tensors and metadata. */
#include "cli/args.h"
#include "models/formats/safetensors.h"

#include <stdio.h>
#include <string.h>

int cmd_inspect(int argc, char **argv) {
    const char *file = NULL;
    bool option, help = false, bad = false;
    cli_args args;
    cli_args_init(&args, argc, argv);
    for (const char *a; (a = cli_args_next(&args, &option));) {
        if (option && (!strcmp(a, "--help") || !strcmp(a, "-h"))) help = true;
        else if (option || file) bad = true;
        else file = a;
    }
    if (help || bad || !file) {
        fprintf(stderr, "usage: tessera inspect [--] FILE.safetensors\n"
                        "Lists every tensor (name, dtype, shape, bytes) and the metadata.\n");
        return help && !bad ? 0 : 2;
    }
    safetensors *st = safetensors_open(file);
    if (!st) { fprintf(stderr, "tessera: error: %s\n", ts_last_error()); return 1; }
    size_t total = 0;
    for (int i = 0; i < safetensors_count(st); i++) {
        const char *name = safetensors_name_at(st, i);
        tensor t;
        safetensors_get(st, name, &t);
        char shape[96];
        printf("%-60s %-5s %-22s %zu\n", name, dtype_name(t.type), tensor_shape_str(&t, shape, sizeof shape),
               tensor_nbytes(&t));
        total += tensor_nbytes(&t);
    }
    for (int i = 0; i < safetensors_metadata_count(st); i++) {
        const char *k = safetensors_metadata_key(st, i);
        printf("metadata %s = %s\n", k, safetensors_metadata_get(st, k));
    }
    printf("%d tensors, %zu bytes\n", safetensors_count(st), total);
    safetensors_close(&st);
    return 0;
}
