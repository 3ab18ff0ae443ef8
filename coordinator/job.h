/*
 * job.h — the job spec: one YAML or JSON file, every field overridable on the command line.
 *
 * Keys are dotted paths; a file may nest them (`output: {dir: x}`) or write them flat
 * (`output.dir: x`). On the command line:  --output.dir=x  or  --output.dir x.
 * An unknown key is an error naming the key. job_keys_help() lists them all.
 */
#ifndef TESSERA_JOB_H
#define TESSERA_JOB_H

#include <stdint.h>
#include <stdio.h>

typedef struct {
    char kind[16];              /* generate | render | recaption */
    char dataset[1024];
    char format[16];            /* auto | txt | jsonl | csv */
    char id_field[64], prompt_field[64], negative_field[64], seed_field[64], params_field[64];
    int64_t max_line;
    char expander[1024], diffusion[1024];      /* model paths / names */
    int64_t steps, width, height;
    double cfg;
    char sampler[32];
    char output[1024];          /* output folder (shared storage) */
    char layout[16];            /* tar | files */
    int64_t shard_size, task_size, retries;
    double lease_seconds, heartbeat_seconds;
    int64_t seed;
    int64_t expand_workers, render_workers, credit;
    int64_t render_batch;       /* records a render worker runs in one model call */
    int64_t unet_shared;        /* 1: their U-Net rows in one call a step (worker/backend.h) */
    char device[32];            /* render workers' device: cpu | cuda | cuda:N (empty: cpu) */
    char expand_check[16];      /* none | keep-words (models/llm/expand_check.h) */
    int64_t expand_retries;
    char caption_style[8];      /* recaption of images: dsc | ssc (models/vision/caption_prompt.h) */
    int64_t caption_alt_text;   /* 1: the alt-text goes to the captioner as context */
    char backend[32];           /* null | model */
    char endpoint[256];         /* coordinator bind/connect address */
    char keys[1024];            /* folder: server.cert(_secret), allow/ (CURVE); "" = off */
    int64_t window;             /* most tasks in memory at once */
    char metrics[256];          /* Prometheus endpoint tcp://HOST:PORT (coordinator/metrics.h); "" = off */
    double drain_seconds;       /* on a drain (SIGUSR1, preemption): longest wait for leases to return */
    char publish[1024];         /* folder where the coordinator publishes its address and public key; "" = off */
} job_spec;

void job_defaults(job_spec *job);
int job_load_file(job_spec *job, const char *path);            /* .yaml/.yml or .json */
int job_set(job_spec *job, const char *key, const char *value); /* one override */
/* Applies --key=value / --key value arguments from argv[*i...]; stops at a non --option.
 * Unknown options are errors. */
int job_parse_args(job_spec *job, int argc, char **argv, int *i);
/* A command's job: defaults, then argv[1] as the spec file unless it is an option, then
 * every --KEY=VALUE after it; anything else is an error. */
int job_from_command_line(job_spec *job, int argc, char **argv);
int job_check(const job_spec *job);
void job_keys_help(FILE *out);
int job_to_json(const job_spec *job, FILE *out);

#endif
