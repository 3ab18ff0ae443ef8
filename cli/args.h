/*
 * args.h — how every subcommand walks its arguments, so that "--" means the same everywhere:
 * it ends the options (POSIX utility syntax guideline 10), and each argument after it is an
 * operand even when it starts with '-' (`tessera tokenize -- "-a prompt"`). An option's
 * value is the next argument verbatim, so `-p -a` and `-p --` give the values "-a" and "--".
 *
 *   cli_args args;
 *   cli_args_init(&args, argc, argv);            // argv[0] is the subcommand's name
 *   bool option;
 *   for (const char *a; (a = cli_args_next(&args, &option));) {
 *       if (!option) { ... an operand ... continue; }
 *       if (strcmp(a, "-m") == 0) model = cli_args_value(&args);   // NULL: no value left
 *       ...
 *   }
 */
#ifndef TESSERA_CLI_ARGS_H
#define TESSERA_CLI_ARGS_H

#include <stdbool.h>

typedef struct {
    int argc;
    char **argv;
    int next;              /* index of the next argument */
    bool options_ended;    /* "--" was seen */
} cli_args;

void cli_args_init(cli_args *self, int argc, char **argv);
/* The next argument, or NULL after the last. *is_option: it starts with '-', is not "-"
 * alone, and comes before "--" ("--" itself is consumed, never returned). */
const char *cli_args_next(cli_args *self, bool *is_option);
/* The value of the option just returned: the following argument, whatever it looks like;
 * NULL when there is none. */
const char *cli_args_value(cli_args *self);

#endif
