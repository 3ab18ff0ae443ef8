/* test_dataset.c — txt / jsonl / csv readers, gzip and zstd, rejects with line numbers, seeds. */
#include "coordinator/dataset.h"
#include "tests/test.h"

#include <cjson/cJSON.h>
#include <zlib.h>
#include <zstd.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/tessera_test_dataset_XXXXXX";

static const char *tmp(const char *name) {
    static char paths[4][512];
    static int k;
    char *p = paths[k++ % 4];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

static void write_file(const char *path, const char *text, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(text, 1, n, f);
    fclose(f);
}

/* Reads every record; returns the count and copies the ids (joined by ',') and prompts. */
static int read_all(const char *path, dataset_options *o, char *ids, size_t cap, char *last_prompt) {
    dataset *d = dataset_open(path, o);
    if (!d) { fprintf(stderr, "%s\n", ts_last_error()); return -1; }
    dataset_record r = {0};
    int n = 0;
    ids[0] = 0;
    while (dataset_next(d, &r) == 1) {
        n++;
        if (strlen(ids) + strlen(r.id) + 2 < cap) { strcat(ids, r.id); strcat(ids, ","); }
        if (last_prompt) snprintf(last_prompt, 256, "%s", r.prompt);
    }
    dataset_record_clear(&r);
    dataset_destroy(&d);
    return n;
}

static const char *txt = "a red fox\r\n\n   \nblue sky\nthird prompt";

int main(void) {
    TEST_BEGIN();
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char ids[4096], prompt[256];
    dataset_options o = {.job_seed = 42};

    /* txt: blank lines skipped, CRLF stripped, ids are line numbers, no final newline needed */
    write_file(tmp("p.txt"), txt, strlen(txt));
    CHECK(read_all(tmp("p.txt"), &o, ids, sizeof ids, prompt) == 3, "txt count");
    CHECK(!strcmp(ids, "1,4,5,"), "txt ids '%s'", ids);
    CHECK(!strcmp(prompt, "third prompt"), "last prompt '%s'", prompt);

    /* the same through gzip and zstd */
    gzFile gz = gzopen(tmp("p.txt.gz"), "wb");
    gzwrite(gz, txt, (unsigned)strlen(txt));
    gzclose(gz);
    CHECK(read_all(tmp("p.txt.gz"), &o, ids, sizeof ids, NULL) == 3 && !strcmp(ids, "1,4,5,"), "gz ids '%s'", ids);
    size_t bound = ZSTD_compressBound(strlen(txt));
    char *z = malloc(bound);
    size_t zn = ZSTD_compress(z, bound, txt, strlen(txt), 3);
    write_file(tmp("p.txt.zst"), z, zn);
    free(z);
    CHECK(read_all(tmp("p.txt.zst"), &o, ids, sizeof ids, NULL) == 3 && !strcmp(ids, "1,4,5,"), "zst ids '%s'", ids);

    /* truncated compressed files are read errors, not a short dataset */
    {
        char *many = malloc(400000);
        size_t m = 0;
        for (int i = 0; i < 10000; i++) m += (size_t)sprintf(many + m, "prompt %d with some words\n", i * 7919);
        gz = gzopen(tmp("t.txt.gz"), "wb");
        gzwrite(gz, many, (unsigned)m);
        gzclose(gz);
        FILE *in = fopen(tmp("t.txt.gz"), "rb");
        char *head = malloc(m);
        size_t hn = fread(head, 1, m, in);
        fclose(in);
        write_file(tmp("t.txt.gz"), head, hn / 2);
        size_t zb = ZSTD_compressBound(m);
        char *zz = malloc(zb);
        size_t zzn = ZSTD_compress(zz, zb, many, m, 3);
        write_file(tmp("t.txt.zst"), zz, zzn / 2);
        const char *names[] = {"t.txt.gz", "t.txt.zst"};
        for (int k = 0; k < 2; k++) {
            dataset *t = dataset_open(tmp(names[k]), &o);
            dataset_record tr = {0};
            int rc, count = 0;
            while ((rc = dataset_next(t, &tr)) == 1) count++;
            CHECK(rc == -1 && strstr(ts_last_error(), "truncated"), "%s: rc %d after %d records: %s", names[k], rc, count, ts_last_error());
            dataset_record_clear(&tr);
            dataset_destroy(&t);
        }
        free(many); free(head); free(zz);
    }

    /* jsonl with every kind of bad line */
    size_t big = 10u << 20;
    char *bad = malloc(big + 4096);
    size_t n = 0;
    n += sprintf(bad + n, "{\"id\":\"a\",\"prompt\":\"ok one\",\"seed\":7}\n");         /* 1 */
    n += sprintf(bad + n, "{\"id\":\"b\",\"prompt\":\"broken\"\n");                     /* 2 bad JSON */
    n += sprintf(bad + n, "{\"id\":\"c\",\"negative\":\"x\"}\n");                      /* 3 no prompt */
    n += sprintf(bad + n, "{\"id\":\"d\",\"prompt\":\"bad \xff\xfe utf8\"}\n");       /* 4 invalid UTF-8 */
    n += sprintf(bad + n, "{\"prompt\":\"");                                            /* 5 a 10 MB line */
    memset(bad + n, 'x', big); n += big;
    n += sprintf(bad + n, "\"}\n");
    n += sprintf(bad + n, "{\"id\":12,\"caption\":\"a caption\",\"params\":{\"w\":3}}\n"); /* 6 ok, caption */
    n += sprintf(bad + n, "[1,2,3]\n");                                                 /* 7 not an object */
    n += sprintf(bad + n, "{\"prompt\":\"no id\"}\n");                                  /* 8 ok, id = 8 */
    write_file(tmp("d.jsonl"), bad, n);
    free(bad);
    o.rejects_path = tmp("rejects.jsonl");
    dataset *d = dataset_open(tmp("d.jsonl"), &o);
    CHECK(d != NULL, "open jsonl: %s", ts_last_error());
    dataset_record r = {0};
    CHECK(dataset_next(d, &r) == 1 && !strcmp(r.id, "a") && r.seed == 7 && r.line == 1, "record a: id %s seed %llu", r.id, (unsigned long long)r.seed);
    CHECK(dataset_next(d, &r) == 1 && !strcmp(r.id, "12") && !strcmp(r.prompt, "a caption") && r.line == 6, "record 12: id %s line %llu", r.id, (unsigned long long)r.line);
    CHECK(!strcmp(r.params_json, "{\"w\":3}"), "params '%s'", r.params_json);
    CHECK(dataset_next(d, &r) == 1 && !strcmp(r.id, "8") && r.line == 8, "record 8: id %s", r.id);
    CHECK(r.seed == dataset_seed_for(42, "8"), "derived seed");
    CHECK(dataset_next(d, &r) == 0, "end");
    CHECK(dataset_rejected(d) == 5, "rejected %llu", (unsigned long long)dataset_rejected(d));
    dataset_record_clear(&r);
    dataset_destroy(&d);
    FILE *f = fopen(tmp("rejects.jsonl"), "r");
    char line[4096];
    int want_lines[] = {2, 3, 4, 5, 7}, k = 0;
    while (f && fgets(line, sizeof line, f)) {
        cJSON *j = cJSON_Parse(line);
        CHECK(j != NULL, "rejects line is JSON: %s", line);
        cJSON *ln = cJSON_GetObjectItem(j, "line"), *why = cJSON_GetObjectItem(j, "reason");
        CHECK(k < 5 && cJSON_IsNumber(ln) && ln->valueint == want_lines[k] && cJSON_IsString(why),
              "reject %d at line %d", k, ln ? ln->valueint : -1);
        if (k == 3) CHECK(strstr(why->valuestring, "longer") != NULL, "10 MB line reason: %s", why->valuestring);
        cJSON_Delete(j);
        k++;
    }
    if (f) fclose(f);
    CHECK(k == 5, "%d rejects written", k);
    o.rejects_path = NULL;

    /* configurable field names */
    const char *custom = "{\"key\":\"k1\",\"text\":\"custom\"}\n";
    write_file(tmp("c.jsonl"), custom, strlen(custom));
    dataset_options oc = {.id_field = "key", .prompt_field = "text"};
    CHECK(read_all(tmp("c.jsonl"), &oc, ids, sizeof ids, prompt) == 1 && !strcmp(ids, "k1,") && !strcmp(prompt, "custom"), "custom fields");

    /* csv with quotes, doubled quotes and commas inside quotes */
    const char *csv = "id,prompt,seed\nx1,\"a, quoted \"\"prompt\"\"\",5\nx2,plain,\nx3,\"unterminated,1\n";
    write_file(tmp("p.csv"), csv, strlen(csv));
    d = dataset_open(tmp("p.csv"), &o);
    CHECK(d != NULL, "open csv");
    CHECK(dataset_next(d, &r) == 1 && !strcmp(r.prompt, "a, quoted \"prompt\"") && r.seed == 5, "csv quoted '%s'", r.prompt);
    CHECK(dataset_next(d, &r) == 1 && !strcmp(r.id, "x2") && r.seed == dataset_seed_for(42, "x2"), "csv plain");
    CHECK(dataset_next(d, &r) == 0 && dataset_rejected(d) == 1, "csv unterminated quote rejected");
    dataset_record_clear(&r);
    dataset_destroy(&d);

    /* seeds depend on the job seed and the id only */
    CHECK(dataset_seed_for(1, "abc") == dataset_seed_for(1, "abc"), "seed stable");
    CHECK(dataset_seed_for(1, "abc") != dataset_seed_for(2, "abc"), "seed follows job seed");
    CHECK(dataset_seed_for(1, "abc") != dataset_seed_for(1, "abd"), "seed follows id");

    /* a missing file is a clear error */
    CHECK(dataset_open(tmp("nope.txt"), &o) == NULL && strstr(ts_last_error(), "nope.txt"), "missing file: %s", ts_last_error());
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0, "cleanup");
    return TEST_END();
}
