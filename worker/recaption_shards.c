/* recaption_shards.c — captions back into WebDataset shards (see recaption_shards.h);
 * tar reading and writing through libarchive. */
#include "worker/recaption_shards.h"
#include "kernels/base.h"

#include <archive.h>
#include <archive_entry.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    char *key, *caption;
    const char *suffix;          /* "descriptive" or "short" */
} caption_entry;

typedef struct {
    char *path;
    caption_entry *entries;
    int n, cap;
} shard_captions;

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const caption_entry *)a)->key, ((const caption_entry *)b)->key);
}

static void shards_free(shard_captions *s, int n) {
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < s[i].n; j++) free(s[i].entries[j].key), free(s[i].entries[j].caption);
        free(s[i].entries);
        free(s[i].path);
    }
    free(s);
}

/* The manifest's captioned tar records, grouped by shard (in order of first appearance). */
static int read_manifest(const char *manifest, shard_captions **out, int *n_out) {
    FILE *f = fopen(manifest, "r");
    if (!f) return ts_fail("%s: cannot open manifest: %s", manifest, strerror(errno));
    shard_captions *s = NULL;
    int n = 0, cap = 0, rc = 0;
    size_t len = 0;
    char *line = NULL;
    long line_no = 0;
    while (getline(&line, &len, f) > 0) {
        line_no++;
        cJSON *o = cJSON_Parse(line);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(o, "expanded");
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(o, "params");
        const cJSON *image = cJSON_GetObjectItemCaseSensitive(params, "image");
        const cJSON *style = cJSON_GetObjectItemCaseSensitive(params, "style");
        if (!cJSON_IsString(id) || !cJSON_IsString(text)) {
            cJSON_Delete(o);
            rc = ts_fail("%s:%ld: not a recaption manifest line", manifest, line_no);
            break;
        }
        bool usable = cJSON_IsString(image) && !cJSON_GetObjectItemCaseSensitive(o, "expand_fallback");
        size_t il = usable ? strlen(image->valuestring) : 0;
        if (usable && il > 4 && !strcmp(image->valuestring + il - 4, ".tar")) {
            int k = 0;
            while (k < n && strcmp(s[k].path, image->valuestring)) k++;
            if (k == n) {
                if (n == cap) s = ts_realloc(s, (size_t)(cap = cap ? 2 * cap : 8) * sizeof *s);
                s[n++] = (shard_captions){.path = ts_strdup(image->valuestring)};
            }
            shard_captions *sc = &s[k];
            if (sc->n == sc->cap) sc->entries = ts_realloc(sc->entries, (size_t)(sc->cap = sc->cap ? 2 * sc->cap : 64) * sizeof *sc->entries);
            bool ssc = cJSON_IsString(style) && !strcmp(style->valuestring, "ssc");
            sc->entries[sc->n++] = (caption_entry){ts_strdup(id->valuestring), ts_strdup(text->valuestring), ssc ? "short" : "descriptive"};
        }
        cJSON_Delete(o);
    }
    free(line);
    fclose(f);
    for (int k = 0; k < n; k++) qsort(s[k].entries, (size_t)s[k].n, sizeof *s[k].entries, cmp_entry);
    if (rc) { shards_free(s, n); return -1; }
    *out = s, *n_out = n;
    return 0;
}

/* "dir/000123.jpg" -> "dir/000123" (WebDataset: the key ends at the file name's first dot). */
static void member_key(const char *name, char *key, size_t size) {
    const char *base = strrchr(name, '/');
    const char *dot = strchr(base ? base + 1 : name, '.');
    size_t k = dot ? (size_t)(dot - name) : strlen(name);
    if (k >= size) k = size - 1;
    memcpy(key, name, k);
    key[k] = 0;
}

static int add_caption(struct archive *w, const char *path, const shard_captions *sc, const char *key, int *added) {
    caption_entry probe = {.key = (char *)key}, *e = bsearch(&probe, sc->entries, (size_t)sc->n, sizeof probe, cmp_entry);
    if (!e) return 0;
    char name[PATH_MAX];
    snprintf(name, sizeof name, "%s.%s.txt", key, e->suffix);
    size_t len = strlen(e->caption);
    struct archive_entry *ae = archive_entry_new();
    archive_entry_set_pathname(ae, name);
    archive_entry_set_filetype(ae, AE_IFREG);
    archive_entry_set_perm(ae, 0644);
    archive_entry_set_size(ae, (la_int64_t)len);
    int ok = archive_write_header(w, ae) == ARCHIVE_OK && archive_write_data(w, e->caption, len) == (la_ssize_t)len;
    archive_entry_free(ae);
    if (!ok) return ts_fail("%s: writing %s: %s", path, name, archive_error_string(w));
    (*added)++;
    return 0;
}

static int copy_shard(const shard_captions *sc, const char *out_dir, recaption_shards_stats *st) {
    const char *base = strrchr(sc->path, '/');
    base = base ? base + 1 : sc->path;
    char out[PATH_MAX], tmp[PATH_MAX + 32];
    snprintf(out, sizeof out, "%s/%s", out_dir, base);
    char *real_in = realpath(sc->path, NULL), *real_out_dir = realpath(out_dir, NULL);
    char real_out[PATH_MAX + 256];
    snprintf(real_out, sizeof real_out, "%s/%s", real_out_dir ? real_out_dir : out_dir, base);
    bool same = real_in && !strcmp(real_in, real_out);
    free(real_in), free(real_out_dir);
    if (same) return ts_fail("%s: the output folder holds the input shard; give another -o", sc->path);
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", out, (int)getpid());
    struct archive *r = archive_read_new(), *w = archive_write_new();
    archive_read_support_format_tar(r);
    archive_write_set_format_pax_restricted(w);   /* ustar, pax headers only for long names */
    int rc = 0, added = 0;
    if (archive_read_open_filename(r, sc->path, 1 << 16) != ARCHIVE_OK)
        rc = ts_fail("%s: %s", sc->path, archive_error_string(r));
    else if (archive_write_open_filename(w, tmp) != ARCHIVE_OK)
        rc = ts_fail("%s: cannot create: %s", tmp, archive_error_string(w));
    char key[PATH_MAX] = "", k2[PATH_MAX];
    size_t buf_size = 1 << 16;
    char *buf = ts_malloc(buf_size);
    struct archive_entry *e;
    bool cut = false;
    while (rc == 0) {
        int h = archive_read_next_header(r, &e);
        if (h == ARCHIVE_EOF) break;
        if (h < ARCHIVE_WARN) { cut = true; break; }
        member_key(archive_entry_pathname(e), k2, sizeof k2);
        if (key[0] && strcmp(k2, key) && add_caption(w, out, sc, key, &added)) { rc = -1; break; }
        snprintf(key, sizeof key, "%s", k2);
        /* read the member whole first: a member cut short is not copied */
        la_int64_t size = archive_entry_size(e), got = 0;
        if ((size_t)size + 1 > buf_size) buf = ts_realloc(buf, buf_size = (size_t)size + 1);
        while (got < size) {
            la_ssize_t k = archive_read_data(r, buf + got, (size_t)(size - got));
            if (k <= 0) break;
            got += k;
        }
        if (got < size) { cut = true; key[0] = 0; break; }
        if (archive_write_header(w, e) != ARCHIVE_OK || (size > 0 && archive_write_data(w, buf, (size_t)size) != size)) {
            rc = ts_fail("%s: writing %s: %s", tmp, archive_entry_pathname(e), archive_error_string(w));
            break;
        }
    }
    if (rc == 0 && key[0] && add_caption(w, out, sc, key, &added)) rc = -1;
    free(buf);
    archive_read_free(r);
    if (archive_write_close(w) != ARCHIVE_OK && rc == 0) rc = ts_fail("%s: closing: %s", tmp, archive_error_string(w));
    archive_write_free(w);
    if (rc == 0 && rename(tmp, out) != 0) rc = ts_fail("%s: cannot rename into place: %s", out, strerror(errno));
    if (rc) { unlink(tmp); return -1; }
    if (cut) {
        st->truncated++;
        log_warn("%s: cut short; copied up to its last whole member", sc->path);
    }
    st->shards++;
    st->captions += added;
    return 0;
}

int recaption_write_shards(const char *manifest, const char *out_dir, recaption_shards_stats *stats) {
    memset(stats, 0, sizeof *stats);
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST) return ts_fail("%s: cannot create: %s", out_dir, strerror(errno));
    shard_captions *s = NULL;
    int n = 0;
    if (read_manifest(manifest, &s, &n)) return -1;
    if (n == 0) { shards_free(s, n); return ts_fail("%s: no captioned records of tar shards", manifest); }
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) rc = copy_shard(&s[i], out_dir, stats);
    shards_free(s, n);
    return rc;
}
