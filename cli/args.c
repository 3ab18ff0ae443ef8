/* args.c — the subcommands' argument walk, with "--" ending the options (see args.h). */
#include "cli/args.h"

#include <string.h>

void cli_args_init(cli_args *self, int argc, char **argv) {
    *self = (cli_args){.argc = argc, .argv = argv, .next = 1};
}

const char *cli_args_next(cli_args *self, bool *is_option) {
    if (!self->options_ended && self->next < self->argc && strcmp(self->argv[self->next], "--") == 0) {
        self->options_ended = true;
        self->next++;
    }
    if (self->next >= self->argc) return NULL;
    const char *a = self->argv[self->next++];
    *is_option = !self->options_ended && a[0] == '-' && a[1] != 0;
    return a;
}

const char *cli_args_value(cli_args *self) {
    return self->next < self->argc ? self->argv[self->next++] : NULL;
}
