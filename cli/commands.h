/*
 * commands.h — the subcommands of `tessera`, one line each.
 * To add one: write cli/cmd_NAME.c with `int cmd_NAME(int argc, char **argv)`
 * (argv[0] is the subcommand's name), then add a line here. An underscore in NAME is
 * typed as '-' on the command line: encode_text is `tessera encode-text`.
 * A command returns the process exit status; on failure it has printed why.
 */
#ifndef TESSERA_COMMANDS_H
#define TESSERA_COMMANDS_H

#define TESSERA_COMMANDS(X)                                                  \
    X(help,    "list the commands, or show one command's help")             \
    X(run,         "run a whole job on this machine: coordinator + local workers") \
    X(coordinator, "run a job's coordinator (workers connect to it)")         \
    X(worker,      "run one expander or render worker: tessera worker render") \
    X(status,      "progress, rate and ETA of a job from its journal")        \
    X(keygen,      "make a CURVE key pair for the coordinator or a worker")   \
    X(version, "print the version and the features this build has")         \
    X(mpi_info, "under mpirun: how the ranks form groups (--tp T) and who leads each") \
    X(txt2img, "render a prompt to PNG: tessera txt2img -m MODEL -p PROMPT -o a.png") \
    X(inspect, "list the tensors and metadata of a .safetensors file")  \
    X(complete, "raw continuation of a text by an LLM: tessera complete -m MODEL -p TEXT") \
    X(bench,   "measure kernels and models: tessera bench gemm")               \
    X(eval,    "score images against their prompts: tessera eval shapes") \
    X(tokenize, "CLIP token ids of a prompt, one 77-id chunk per line")     \
    X(encode_text, "a prompt through the text encoder(s) into a .npy context") \
    X(expand,  "rewrite short prompts into detailed descriptions with an LLM")  \
    X(caption, "describe images with a LLaVA-style captioner: tessera caption -m M -i a.jpg") \
    X(serve_llm, "serve an LLM as an OpenAI-compatible /v1/chat/completions")

#define DECLARE_COMMAND(name, summary) int cmd_##name(int argc, char **argv);
TESSERA_COMMANDS(DECLARE_COMMAND)
#undef DECLARE_COMMAND

#endif
