/* test_output_writer.c — plain files and WebDataset tar shards: contents read back with
 * libarchive's reader, atomic names, no appends to closed shards, safe keys that never clash
 * (expected keys: Python's hashlib.sha256; folding: utf8proc's NFKC_Casefold), UTF-8 member
 * names. */
#include "tests/test.h"
#include "worker/output_writer.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <utf8proc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[256];

/* "name=content;name=content;..." of a tar, in member order. */
static char *tar_listing(const char *path) {
    struct archive *a = archive_read_new();
    archive_read_support_format_tar(a);
    static char out[8192];
    out[0] = 0;
    if (archive_read_open_filename(a, path, 4096) != ARCHIVE_OK) {
        archive_read_free(a);
        return NULL;
    }
    struct archive_entry *e;
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        char data[256] = {0};
        la_ssize_t n = archive_read_data(a, data, sizeof data - 1);
        if (n < 0) n = 0;
        data[n] = 0;
        size_t l = strlen(out);
        snprintf(out + l, sizeof out - l, "%s=%s;", archive_entry_pathname(e), data);
    }
    archive_read_free(a);
    return out;
}

static int count_files(const char *dir, const char *needle) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.' && strstr(e->d_name, needle)) n++;
    if (d) closedir(d);
    return n;
}

static int add(output_writer *w, const char *id, const char *caption) {
    char key[OUTPUT_KEY_MAX];
    output_key(id, key, sizeof key);
    output_part parts[] = {{".png", "PNG", 3}, {".txt", caption, strlen(caption)}, {".json", "{}", 2}};
    return output_writer_add(w, key, parts, 3);
}

int main(void) {
    TEST_BEGIN();
    snprintf(root, sizeof root, "test_output_writer_%d", (int)getpid());

    /* keys */
    char key[OUTPUT_KEY_MAX];
    output_key("rec-0001_ok", key, sizeof key);
    CHECK(strcmp(key, "rec-0001_ok") == 0, "safe id kept: %s", key);
    const char *evil[] = {"../../etc/passwd", "a/b", "a\\b", "..", ".", "a\nb", "x.png", "", "\x01\x7f"};
    for (size_t i = 0; i < sizeof evil / sizeof *evil; i++) {
        output_key(evil[i], key, sizeof key);
        CHECK(output_key_is_safe(key) && !strchr(key, '/') && !strchr(key, '.') && !strchr(key, '\\'),
              "id #%zu gave unsafe key '%s'", i, key);
    }
    char k1[OUTPUT_KEY_MAX], k2[OUTPUT_KEY_MAX];
    output_key("a/b", k1, sizeof k1);
    output_key("a_b", k2, sizeof k2);
    CHECK(strcmp(k1, k2) != 0, "sanitised ids must not collide: %s %s", k1, k2);
    char longid[400];
    memset(longid, 'z', sizeof longid - 1);
    longid[sizeof longid - 1] = 0;
    output_key(longid, key, sizeof key);
    CHECK(strlen(key) < OUTPUT_KEY_MAX && output_key_is_safe(key), "long id: %zu bytes", strlen(key));
    CHECK(!output_key_is_safe("../x") && !output_key_is_safe("a.b") && !output_key_is_safe(""), "is_safe rejects");

    /* keys from hashlib: readable part + "-" + 32 hex digits of sha256(id) */
    output_key("a/b", key, sizeof key);
    CHECK(strcmp(key, "a_b-c14cddc033f64b9dea80ea675cf280a0") == 0, "a/b: %s", key);
    output_key("caf\xc3\xa9", key, sizeof key);
    CHECK(strcmp(key, "caf\xc3\xa9-850f7dc43910ff890f8879c0ed26fe69") == 0, "café: %s", key);
    output_key("A", key, sizeof key);
    CHECK(strcmp(key, "A-559aead08264d5795d3909718cdd05ab") == 0, "A: %s", key);
    output_key("", key, sizeof key);
    CHECK(strcmp(key, "_-e3b0c44298fc1c149afbf4c8996fb924") == 0, "empty id: %s", key);

    /* adversarial ids: no two keys equal, even folded by case and Unicode normalisation
     * (NFKC_Casefold covers case-insensitive and normalising file systems) */
    static char ids[40][400];
    int n_ids = 0;
    const char *plain[] = {"a/b", "a_b-e09ffa510d0f158b", "a_b-c14cddc033f64b9dea80ea675cf280a0", "a_b", "A", "a",
                           "Photo", "photo", "caf\xc3\xa9", "cafe\xcc\x81", "\xe2\x84\xa6", "\xce\xa9",
                           "\xef\xac\x81", "fi", "\xc7\x85", "\xc7\x86", "x.png", "x_png", "..", "_", "-", ""};
    for (size_t i = 0; i < sizeof plain / sizeof *plain; i++) snprintf(ids[n_ids++], sizeof ids[0], "%s", plain[i]);
    memset(ids[n_ids], 'e', 255); ids[n_ids++][255] = 0;             /* 255 bytes */
    for (int i = 0; i < 127; i++) memcpy(ids[n_ids] + 2 * i, "\xc3\xa9", 2); /* 254 bytes of é */
    ids[n_ids++][254] = 0;
    for (int k = 0; k < 2; k++) { memset(ids[n_ids], 'z', 300); ids[n_ids][300] = (char)('1' + k); ids[n_ids++][301] = 0; }
    snprintf(ids[n_ids], sizeof ids[0], "%.100s", ids[n_ids - 1]);  /* the first 100 bytes of those */
    n_ids++;
    char keys[40][OUTPUT_KEY_MAX];
    char *folded[40];
    for (int i = 0; i < n_ids; i++) {
        output_key(ids[i], keys[i], sizeof keys[i]);
        CHECK(output_key_is_safe(keys[i]) && strlen(keys[i]) + strlen(".json.tmp.4194304") <= 255,
              "id #%d: key '%s' (%zu bytes)", i, keys[i], strlen(keys[i]));
        folded[i] = (char *)utf8proc_NFKC_Casefold((const utf8proc_uint8_t *)keys[i]);
    }
    for (int i = 0; i < n_ids; i++)
        for (int j = i + 1; j < n_ids; j++)
            CHECK(folded[i] && folded[j] && strcmp(folded[i], folded[j]) != 0, "ids #%d and #%d share key %s / %s", i, j,
                  keys[i], keys[j]);
    for (int i = 0; i < n_ids; i++) free(folded[i]);
    output_key("photo_001-x", key, sizeof key);
    CHECK(strcmp(key, "photo_001-x") == 0, "a plain lowercase id is its own key: %s", key);

    /* plain files */
    char dir[512];
    snprintf(dir, sizeof dir, "%s/files/sub", root);
    output_writer *w = output_writer_new(&(output_writer_options){.dir = dir, .format = OUTPUT_FILES});
    CHECK(w != NULL, "%s", ts_last_error());
    if (w) {
        CHECK_OK(add(w, "one", "a cat"));
        output_part bad[] = {{".png", "x", 1}};
        CHECK(output_writer_add(w, "../escape", bad, 1) < 0, "unsafe key refused");
        output_part badext[] = {{"/../x", "x", 1}};
        CHECK(output_writer_add(w, "ok", badext, 1) < 0, "unsafe extension refused");
        CHECK_OK(output_writer_finish(&w));
        char p[600];
        snprintf(p, sizeof p, "%s/one.txt", dir);
        FILE *f = fopen(p, "r");
        char buf[32] = {0};
        CHECK(f && fread(buf, 1, sizeof buf, f) == 5 && strcmp(buf, "a cat") == 0, "one.txt content '%s'", buf);
        if (f) fclose(f);
        CHECK(count_files(dir, ".tmp.") == 0, "temporary files left behind");
        CHECK(count_files(dir, "one.") == 3, "three files for the record");
    }

    /* tar shards: 5 records, 2 per shard -> 3 shards */
    snprintf(dir, sizeof dir, "%s/tar", root);
    w = output_writer_new(&(output_writer_options){.dir = dir, .format = OUTPUT_TAR, .records_per_shard = 2});
    CHECK(w != NULL, "%s", ts_last_error());
    if (w) {
        for (int i = 0; i < 5; i++) {
            char id[32], cap[32];
            snprintf(id, sizeof id, "rec%d", i);
            snprintf(cap, sizeof cap, "caption %d", i);
            CHECK_OK(add(w, id, cap));
        }
        CHECK(output_writer_shards_closed(w) == 2, "2 shards closed before finish");
        CHECK(count_files(dir, ".tar.tmp.") == 1, "the open shard is a temporary file");
        CHECK(count_files(dir, ".tar") == 3, "2 closed + 1 open");
        CHECK_OK(output_writer_finish(&w));
        CHECK(count_files(dir, ".tmp.") == 0, "no temporary files after finish");
        char p[600];
        snprintf(p, sizeof p, "%s/shard-000000.tar", dir);
        char *l = tar_listing(p);
        CHECK(l && strcmp(l, "rec0.png=PNG;rec0.txt=caption 0;rec0.json={};rec1.png=PNG;rec1.txt=caption 1;rec1.json={};") == 0,
              "shard 0: %s", l ? l : "(unreadable)");
        snprintf(p, sizeof p, "%s/shard-000002.tar", dir);
        l = tar_listing(p);
        CHECK(l && strcmp(l, "rec4.png=PNG;rec4.txt=caption 4;rec4.json={};") == 0, "shard 2: %s", l ? l : "(unreadable)");
    }
    /* non-ASCII ids in tars: UTF-8 member names, in the C locale this test runs in */
    {
        char d2[512], p[600];
        snprintf(d2, sizeof d2, "%s/utf8", root);
        output_writer *u = output_writer_new(&(output_writer_options){.dir = d2, .format = OUTPUT_TAR});
        CHECK(u != NULL, "%s", ts_last_error());
        if (u) {
            CHECK_OK(add(u, "caf\xc3\xa9", "x"));
            CHECK_OK(output_writer_finish(&u));
            snprintf(p, sizeof p, "%s/shard-000000.tar", d2);
            locale_t old = output_utf8_locale_enter();
            char *l = tar_listing(p);
            output_utf8_locale_leave(old);
            CHECK(l && strncmp(l, "caf\xc3\xa9-850f7dc43910ff890f8879c0ed26fe69.png=", 43) == 0, "utf8 tar: %s", l ? l : "(unreadable)");
        }
    }

    /* a second writer never appends to or overwrites closed shards */
    w = output_writer_new(&(output_writer_options){.dir = dir, .format = OUTPUT_TAR, .records_per_shard = 2});
    if (w) {
        CHECK_OK(add(w, "later", "x"));
        CHECK_OK(output_writer_finish(&w));
        char p[600];
        snprintf(p, sizeof p, "%s/shard-000003.tar", dir);
        char *l = tar_listing(p);
        CHECK(l && strncmp(l, "later.png", 9) == 0, "new writer continues at shard 3: %s", l ? l : "(missing)");
        snprintf(p, sizeof p, "%s/shard-000002.tar", dir);
        l = tar_listing(p);
        CHECK(l && strstr(l, "later") == NULL, "closed shard 2 untouched");
    }
    w = output_writer_new(&(output_writer_options){.dir = dir, .format = OUTPUT_TAR, .first_shard_set = true, .first_shard = 1});
    if (w) {
        CHECK(add(w, "again", "x") < 0, "explicit index of an existing shard refused");
        CHECK(strstr(ts_last_error(), "never reopened") != NULL, "error: %s", ts_last_error());
        output_writer_destroy(&w);
    }
    /* abandoned writer leaves no temporary file */
    w = output_writer_new(&(output_writer_options){.dir = dir, .format = OUTPUT_TAR});
    if (w) {
        CHECK_OK(add(w, "gone", "x"));
        output_writer_destroy(&w);
        CHECK(count_files(dir, ".tmp.") == 0, "abandoned shard removed");
    }
    CHECK(output_writer_new(&(output_writer_options){.dir = "/proc/forbidden/x"}) == NULL, "bad folder refused");

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
    return TEST_END();
}
