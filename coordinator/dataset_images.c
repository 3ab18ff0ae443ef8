/* dataset_images.c — image records from WebDataset tar shards, folders and lists (see
 * dataset_images.h). Tar shards are read with libarchive. */
#include "coordinator/dataset_images.h"
#include "kernels/base.h"

#include <archive.h>
#include <archive_entry.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_MEMBER (64u << 20)   /* bigger tar members are rejected, not read */
#define MAX_TEXT (64u << 10)     /* alt-text and metadata members */

struct image_source {
    dataset_options opt;
    FILE *rejects;
    char **paths;                /* the shards or image files, in order */
    int n_paths, next_path;
    struct archive *tar;         /* the shard being read */
    const char *tar_path;
    struct member *pending;      /* a member read but not yet used: the next key's first */
    bool tar_end;                /* the shard's last member has been read */
    uint64_t count, rejected;
};

/* One tar member, read when its header is: images are checked, texts kept. */
struct member {
    char name[1024], key[1024], ext[16];
    int64_t offset, size;
    const char *problem;         /* an image's, or "" */
    char broken[512];            /* the shard ends here: libarchive's reason */
    char *text;                  /* .txt / .json contents */
};

/* ---- the image checks ------------------------------------------------------ */

static const char *image_kind(const uint8_t *d, size_t n) {
    if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return "jpeg";
    if (n >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0) return "png";
    if (n >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0) return "webp";
    return NULL;
}

const char *image_bytes_problem(const uint8_t *d, size_t n) {
    const char *kind = image_kind(d, n);
    if (!kind) return n == 0 ? "empty image" : "not a JPEG, PNG or WebP image";
    /* the end marker within the last bytes (some writers pad after it) */
    size_t tail = n < 64 ? n : 64;
    if (!strcmp(kind, "jpeg")) {
        for (size_t i = n - tail; i + 1 < n; i++)
            if (d[i] == 0xFF && d[i + 1] == 0xD9) return NULL;
        return "JPEG cut short (no end-of-image marker)";
    }
    if (!strcmp(kind, "png")) {
        for (size_t i = n - tail; i + 4 <= n; i++)
            if (memcmp(d + i, "IEND", 4) == 0) return NULL;
        return "PNG cut short (no IEND chunk)";
    }
    uint32_t riff = (uint32_t)d[4] | (uint32_t)d[5] << 8 | (uint32_t)d[6] << 16 | (uint32_t)d[7] << 24;
    return (uint64_t)riff + 8 > n ? "WebP cut short (shorter than its RIFF size)" : NULL;
}

static bool is_image_ext(const char *ext) {
    return !strcasecmp(ext, "jpg") || !strcasecmp(ext, "jpeg") || !strcasecmp(ext, "png") || !strcasecmp(ext, "webp");
}

/* ---- records and rejects --------------------------------------------------- */

static void reject(image_source *s, const char *where, const char *reason) {
    s->rejected++;
    s->count++;
    log_debug("%s: rejected: %s", where, reason);
    if (!s->rejects) return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "line", (double)s->count);
    cJSON_AddStringToObject(o, "reason", reason);
    cJSON_AddStringToObject(o, "text", where);
    char *txt = cJSON_PrintUnformatted(o);
    fprintf(s->rejects, "%s\n", txt);
    fflush(s->rejects);
    free(txt);
    cJSON_Delete(o);
}

/* The alt-text as a prompt: trailing newlines dropped, NUL bytes refused by the caller. */
static char *alt_text(const char *data, size_t n) {
    while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == '\r')) n--;
    char *s = ts_malloc(n + 1);
    memcpy(s, data, n);
    s[n] = 0;
    return s;
}

static void fill_record(image_source *s, dataset_record *r, const char *key, const char *image, int64_t offset,
                        int64_t size, const char *alt, const char *meta) {
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "image", image);
    if (offset >= 0) {
        cJSON_AddNumberToObject(p, "offset", (double)offset);
        cJSON_AddNumberToObject(p, "size", (double)size);
    }
    cJSON_AddStringToObject(p, "style", s->opt.caption_style && s->opt.caption_style[0] ? s->opt.caption_style : "dsc");
    cJSON_AddBoolToObject(p, "alt_text", s->opt.caption_alt_text);
    cJSON *m = meta ? cJSON_Parse(meta) : NULL;
    if (cJSON_IsObject(m)) cJSON_AddItemToObject(p, "meta", m);
    else cJSON_Delete(m);
    r->id = ts_strdup(key);
    r->prompt = ts_strdup(alt ? alt : "");
    r->negative = ts_strdup("");
    r->params_json = cJSON_PrintUnformatted(p);
    r->seed = dataset_seed_for(s->opt.job_seed, key);
    r->line = ++s->count;
    cJSON_Delete(p);
}

static bool valid_text(const char *s, size_t n) {
    return memchr(s, 0, n) == NULL;
}

/* ---- tar shards ------------------------------------------------------------- */

/* "dir/000123.jpg" -> key "dir/000123", ext "jpg" (WebDataset: the key ends at the first
 * dot of the file name). */
static void split_name(const char *name, char *key, size_t key_size, char *ext, size_t ext_size) {
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    const char *dot = strchr(base, '.');
    size_t k = dot ? (size_t)(dot - name) : strlen(name);
    if (k >= key_size) k = key_size - 1;
    memcpy(key, name, k);
    key[k] = 0;
    snprintf(ext, ext_size, "%s", dot ? dot + 1 : "");
}

static void member_free(struct member **m) {
    if (!*m) return;
    free((*m)->text);
    free(*m);
    *m = NULL;
}

static void close_tar(image_source *s) {
    if (s->tar) archive_read_free(s->tar);
    s->tar = NULL;
    s->tar_end = false;
    member_free(&s->pending);
}

static int open_tar(image_source *s, const char *path) {
    s->tar = archive_read_new();
    archive_read_support_format_tar(s->tar);   /* plain tar only: members are read at their offset */
    if (archive_read_open_filename(s->tar, path, 1 << 16) != ARCHIVE_OK) {
        char why[512];
        snprintf(why, sizeof why, "unreadable tar shard: %s", archive_error_string(s->tar));
        reject(s, path, why);
        close_tar(s);
        return -1;
    }
    s->tar_path = path;
    return 0;
}

/* Reads the next regular member of the shard: 1 read (perhaps broken), 0 the end. */
static int read_member(image_source *s, struct member **out) {
    struct archive_entry *e;
    if (s->tar_end) return 0;
    for (;;) {
        int h = archive_read_next_header(s->tar, &e);
        if (h == ARCHIVE_EOF) { s->tar_end = true; return 0; }
        struct member *m = ts_calloc(1, sizeof *m);
        if (h < ARCHIVE_WARN) {   /* a header cut short or garbled: the shard ends here */
            snprintf(m->name, sizeof m->name, "(member after the last good one)");
            snprintf(m->broken, sizeof m->broken, "%s", archive_error_string(s->tar));
            *out = m;
            return 1;
        }
        if (archive_entry_filetype(e) != AE_IFREG) { free(m); continue; }
        snprintf(m->name, sizeof m->name, "%s", archive_entry_pathname(e));
        split_name(m->name, m->key, sizeof m->key, m->ext, sizeof m->ext);
        m->offset = archive_filter_bytes(s->tar, 0);   /* the data's start: the header is consumed */
        m->size = archive_entry_size(e);
        m->problem = "";
        bool image = is_image_ext(m->ext), text = !strcasecmp(m->ext, "txt") || !strcasecmp(m->ext, "json");
        size_t want = image ? MAX_MEMBER : text ? MAX_TEXT : 0;
        if ((image || text) && m->size > (int64_t)want) {
            m->problem = image ? "image larger than 64 MiB" : "";
            image = text = false;
        }
        if (!image && !text) {
            if (archive_read_data_skip(s->tar) < ARCHIVE_WARN)
                snprintf(m->broken, sizeof m->broken, "%s", archive_error_string(s->tar));
            *out = m;
            return 1;
        }
        uint8_t *buf = ts_malloc((size_t)m->size + 1);
        int64_t got = 0;
        while (got < m->size) {
            la_ssize_t k = archive_read_data(s->tar, buf + got, (size_t)(m->size - got));
            if (k <= 0) {
                snprintf(m->broken, sizeof m->broken, "truncated tar member (%lld of %lld bytes): %s", (long long)got,
                         (long long)m->size, k < 0 ? archive_error_string(s->tar) : "end of file");
                break;
            }
            got += k;
        }
        if (!m->broken[0]) {
            if (image) m->problem = image_bytes_problem(buf, (size_t)m->size) ? image_bytes_problem(buf, (size_t)m->size) : "";
            else if (valid_text((char *)buf, (size_t)m->size)) m->text = alt_text((char *)buf, (size_t)m->size);
        }
        free(buf);
        *out = m;
        return 1;
    }
}

/* The next key of the open shard: 1 a record, 2 a reject (go on), 0 the shard's end. */
static int next_from_tar(image_source *s, dataset_record *out) {
    char key[1024] = "", image[1024] = "", where[2200];
    char *alt = NULL, *meta = NULL;
    int64_t offset = -1, size = 0;
    const char *problem = NULL;
    bool any = false;
    for (;;) {
        if (!s->pending && read_member(s, &s->pending) == 0) break;
        struct member *m = s->pending;
        if (m->broken[0]) {
            /* a broken member ends the shard; the key it belongs to is rejected with it */
            if (any && strcmp(m->key, key) != 0) break;   /* the current key first */
            snprintf(where, sizeof where, "%s:%s", s->tar_path, m->name);
            char why[700];
            snprintf(why, sizeof why, "%s", m->broken);
            reject(s, where, why);
            close_tar(s);
            free(alt), free(meta);
            return 2;
        }
        if (any && strcmp(m->key, key) != 0) break;
        if (!any) snprintf(key, sizeof key, "%s", m->key);
        any = true;
        if (is_image_ext(m->ext) || (m->problem && !strcmp(m->problem, "image larger than 64 MiB"))) {
            snprintf(image, sizeof image, "%s", m->name);
            offset = m->offset, size = m->size;
            problem = m->problem[0] ? m->problem : NULL;
        } else if (!strcasecmp(m->ext, "txt") && m->text) {
            free(alt);
            alt = m->text, m->text = NULL;
        } else if (!strcasecmp(m->ext, "json") && m->text) {
            free(meta);
            meta = m->text, m->text = NULL;
        }
        member_free(&s->pending);
    }
    if (!any) return 0;
    int rc = 1;
    snprintf(where, sizeof where, "%s:%s", s->tar_path, image[0] ? image : key);
    if (!image[0]) { reject(s, where, "no image member (.jpg, .jpeg, .png or .webp) for this key"); rc = 2; }
    else if (problem) { reject(s, where, problem); rc = 2; }
    else fill_record(s, out, key, s->tar_path, offset, size, alt, meta);
    free(alt), free(meta);
    return rc;
}

/* ---- image files -------------------------------------------------------------- */

static int next_from_file(image_source *s, const char *path, dataset_record *out) {
    FILE *f = fopen(path, "rb");
    if (!f) { reject(s, path, strerror(errno)); return 2; }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size > (off_t)MAX_MEMBER) {
        fclose(f);
        reject(s, path, "unreadable or larger than 64 MiB");
        return 2;
    }
    uint8_t *buf = ts_malloc((size_t)st.st_size + 1);
    size_t n = fread(buf, 1, (size_t)st.st_size, f);
    fclose(f);
    const char *problem = n != (size_t)st.st_size ? "read error" : image_bytes_problem(buf, n);
    free(buf);
    if (problem) { reject(s, path, problem); return 2; }
    /* key: the file name without its extension; key.txt beside it: the alt-text */
    char key[1024], ext[16], txt[4200];
    const char *base = strrchr(path, '/');
    split_name(base ? base + 1 : path, key, sizeof key, ext, sizeof ext);
    snprintf(txt, sizeof txt, "%.*s%s.txt", base ? (int)(base + 1 - path) : 0, path, key);
    char *alt = NULL;
    FILE *t = fopen(txt, "rb");
    if (t) {
        char *b = ts_malloc(MAX_TEXT + 1);
        size_t k = fread(b, 1, MAX_TEXT, t);
        fclose(t);
        if (valid_text(b, k)) alt = alt_text(b, k);
        free(b);
    }
    fill_record(s, out, key, path, -1, 0, alt, NULL);
    free(alt);
    return 1;
}

/* ---- the source ------------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcasecmp(s + n - k, suffix) == 0;
}

static bool is_image_path(const char *p) {
    const char *dot = strrchr(p, '.');
    return dot && is_image_ext(dot + 1);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void add_path(image_source *s, int *cap, const char *p) {
    if (s->n_paths == *cap) s->paths = ts_realloc(s->paths, (size_t)(*cap = *cap ? 2 * *cap : 64) * sizeof *s->paths);
    s->paths[s->n_paths++] = ts_strdup(p);
}

static int list_folder(image_source *s, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return ts_fail("%s: cannot open folder: %s", dir, strerror(errno));
    int cap = 0, tars = 0;
    struct dirent *e;
    char p[PATH_MAX];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (ends_with(e->d_name, ".tar")) tars++;
    }
    rewinddir(d);
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (tars ? ends_with(e->d_name, ".tar") : is_image_path(e->d_name)) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            add_path(s, &cap, p);
        }
    }
    closedir(d);
    qsort(s->paths, (size_t)s->n_paths, sizeof *s->paths, cmp_str);
    if (s->n_paths == 0) return ts_fail("%s: no .tar shards and no .jpg/.jpeg/.png/.webp images in the folder", dir);
    return 0;
}

static int read_list(image_source *s, const char *list) {
    FILE *f = fopen(list, "r");
    if (!f) return ts_fail("%s: cannot open image list: %s", list, strerror(errno));
    const char *slash = strrchr(list, '/');
    int dir_len = slash ? (int)(slash - list) : 0, cap = 0;
    char line[PATH_MAX], p[PATH_MAX + 8];
    while (fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\r\n");
        line[n] = 0;
        if (n == 0 || line[0] == '#') continue;
        if (line[0] == '/' || !slash) snprintf(p, sizeof p, "%s", line);
        else snprintf(p, sizeof p, "%.*s/%s", dir_len, list, line);
        add_path(s, &cap, p);
    }
    fclose(f);
    if (s->n_paths == 0) return ts_fail("%s: the image list is empty", list);
    return 0;
}

image_source *image_source_open(const char *path, const dataset_options *options, FILE *rejects) {
    image_source *s = ts_calloc(1, sizeof *s);
    s->opt = *options;
    s->rejects = rejects;
    struct stat st;
    int rc;
    if (stat(path, &st) != 0) rc = ts_fail("%s: cannot open dataset: %s", path, strerror(errno));
    else if (S_ISDIR(st.st_mode)) rc = list_folder(s, path);
    else if (ends_with(path, ".tar") || is_image_path(path)) { int cap = 0; add_path(s, &cap, path); rc = 0; }
    else rc = read_list(s, path);
    if (rc) { image_source_destroy(&s); return NULL; }
    return s;
}

int image_source_next(image_source *s, dataset_record *out) {
    dataset_record_clear(out);
    for (;;) {
        if (s->tar) {
            int rc = next_from_tar(s, out);
            if (rc == 1) return 1;
            if (rc == 0) close_tar(s);
            continue;
        }
        if (s->next_path == s->n_paths) return 0;
        const char *p = s->paths[s->next_path++];
        if (ends_with(p, ".tar")) { open_tar(s, p); continue; }
        if (next_from_file(s, p, out) == 1) return 1;
    }
}

uint64_t image_source_rejected(const image_source *s) { return s->rejected; }
uint64_t image_source_count(const image_source *s) { return s->count; }

void image_source_destroy(image_source **self) {
    image_source *s = *self;
    if (!s) return;
    close_tar(s);
    for (int i = 0; i < s->n_paths; i++) free(s->paths[i]);
    free(s->paths);
    free(s);
    *self = NULL;
}
