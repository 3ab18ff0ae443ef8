/* test_dataset_jobspec.c — job specs: nested and flat YAML, JSON, command-line overrides,
 * unknown keys and bad values named in the error. */
#include "coordinator/job.h"
#include "tests/test.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

int main(void) {
    TEST_BEGIN();
    char dir[] = "/tmp/tessera_jobspec_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char yaml[600], json[600], bad[600];
    snprintf(yaml, sizeof yaml, "%s/job.yaml", dir);
    snprintf(json, sizeof json, "%s/job.json", dir);
    snprintf(bad, sizeof bad, "%s/bad.yaml", dir);

    write_file(yaml,
               "# a job\n"
               "kind: recaption\n"
               "dataset:\n"
               "  path: captions.jsonl.zst\n"
               "  prompt_field: caption\n"
               "output:\n"
               "  dir: /data/out\n"
               "  shard_size: 500\n"
               "sampler.steps: 30\n"
               "sampler:\n"
               "  cfg: 5.5\n"
               "task_size: 16\n"
               "lease_seconds: 90\n");
    job_spec j;
    job_defaults(&j);
    CHECK_OK(job_load_file(&j, yaml));
    CHECK(!strcmp(j.kind, "recaption") && !strcmp(j.dataset, "captions.jsonl.zst"), "kind %s dataset %s", j.kind, j.dataset);
    CHECK(!strcmp(j.prompt_field, "caption") && !strcmp(j.output, "/data/out"), "nested keys");
    CHECK(j.shard_size == 500 && j.steps == 30 && j.cfg == 5.5 && j.task_size == 16 && j.lease_seconds == 90, "numbers");
    CHECK(j.retries == 3 && !strcmp(j.layout, "tar"), "defaults kept");
    CHECK_OK(job_check(&j));

    /* command-line overrides: --key=value and --key value */
    char *argv[] = {"run", "--task_size=4", "--output.layout", "files", "extra"};
    int i = 1;
    CHECK_OK(job_parse_args(&j, 5, argv, &i));
    CHECK(i == 4 && j.task_size == 4 && !strcmp(j.layout, "files"), "overrides: i %d task_size %lld layout %s", i, (long long)j.task_size, j.layout);

    /* JSON works the same */
    write_file(json, "{\"kind\":\"render\",\"dataset\":{\"path\":\"p.txt\"},\"output\":{\"dir\":\"o\"},\"seed\":1234,\"workers\":{\"render\":3}}");
    job_defaults(&j);
    CHECK_OK(job_load_file(&j, json));
    CHECK(!strcmp(j.kind, "render") && j.seed == 1234 && j.render_workers == 3, "json");

    /* unknown keys name the key; bad values name key and value */
    write_file(bad, "kind: generate\noutput:\n  dri: x\n");
    job_defaults(&j);
    CHECK(job_load_file(&j, bad) < 0 && strstr(ts_last_error(), "'output.dri'") && strstr(ts_last_error(), ":3"),
          "unknown nested key: %s", ts_last_error());
    char *argv2[] = {"run", "--nope=1"};
    i = 1;
    CHECK(job_parse_args(&j, 2, argv2, &i) < 0 && strstr(ts_last_error(), "'nope'"), "unknown flag: %s", ts_last_error());
    CHECK(job_set(&j, "task_size", "12x") < 0 && strstr(ts_last_error(), "task_size") && strstr(ts_last_error(), "12x"),
          "bad integer: %s", ts_last_error());
    job_defaults(&j);
    CHECK(job_set(&j, "kind", "paint") == 0 && job_set(&j, "dataset.path", "d") == 0 && job_set(&j, "output.dir", "o") == 0, "set");
    CHECK(job_check(&j) < 0 && strstr(ts_last_error(), "paint"), "bad kind: %s", ts_last_error());
    write_file(bad, "kind: [a, b]\n");
    CHECK(job_load_file(&j, bad) < 0 && strstr(ts_last_error(), "lists"), "list value: %s", ts_last_error());
    write_file(bad, "kind: \"unterminated\n");
    CHECK(job_load_file(&j, bad) < 0 && strstr(ts_last_error(), "YAML"), "broken YAML: %s", ts_last_error());

    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0, "cleanup");
    return TEST_END();
}
