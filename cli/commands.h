/*
 * commands.h — the subcommands of `tessera`, one line each.
 * To add one: write cli/cmd_NAME.c with `int cmd_NAME(int argc, char **argv)`
 * (argv[0] is the subcommand's name), then add a line here.
 * A command returns the process exit status; on failure it has printed why.
 */
#ifndef TESSERA_COMMANDS_H
#define TESSERA_COMMANDS_H

#define TESSERA_COMMANDS(X)                                                  \
    X(help,    "list the commands, or show one command's help")             \
    X(version, "print the version and the features this build has")         \
    X(inspect, "list the tensors and metadata of a .safetensors file")

#define DECLARE_COMMAND(name, summary) int cmd_##name(int argc, char **argv);
TESSERA_COMMANDS(DECLARE_COMMAND)
#undef DECLARE_COMMAND

#endif
