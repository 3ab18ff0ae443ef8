/* output_writer.c — plain files and WebDataset tar shards (libarchive), written atomically. */
#include "worker/output_writer.h"

#include "kernels/base.h"
#include "models/formats/image_png.h"   /* write_file_atomic */

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KEY_BYTES 100
#define HASH_HEX 32   /* 128 bits of SHA-256 */

struct output_writer {
    char *dir;
    output_format format;
    int records_per_shard;
    char *prefix;
    int64_t next_shard;            /* index of the shard to open next */
    struct archive *tar;           /* the open shard, or NULL */
    char tar_tmp[4096], tar_path[4096];
    int records_in_shard;
    int64_t shards_closed;
    char last_shard[4096];
};

/* ---- keys ------------------------------------------------------------------------ */

static bool key_byte_ok(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c >= 0x80;
}

static bool is_hex_lower(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

/* Ends in "-" and HASH_HEX lowercase hex digits: the suffix of a hashed key. */
static bool has_hash_suffix(const char *s, size_t len) {
    if (len < HASH_HEX + 1 || s[len - HASH_HEX - 1] != '-') return false;
    for (size_t i = len - HASH_HEX; i < len; i++)
        if (!is_hex_lower(s[i])) return false;
    return true;
}

static bool verbatim_byte(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'; }

void output_key(const char *id, char *key, size_t cap) {
    size_t len = strlen(id);
    bool verbatim = len > 0 && len <= KEY_BYTES && !has_hash_suffix(id, len);
    for (size_t i = 0; verbatim && i < len; i++) verbatim = verbatim_byte((unsigned char)id[i]);
    if (verbatim && len < cap) { memcpy(key, id, len + 1); return; }
    /* the readable part: whole UTF-8 characters (the dataset reader checked the encoding) */
    size_t keep = len > KEY_BYTES ? KEY_BYTES : len, n = 0;
    while (keep > 0 && keep < len && ((unsigned char)id[keep] & 0xc0) == 0x80) keep--;
    for (size_t i = 0; i < keep && n + HASH_HEX + 2 < cap; i++) {
        unsigned char c = (unsigned char)id[i];
        key[n++] = key_byte_ok(c) ? (char)c : '_';
    }
    while (n > 0 && ((unsigned char)key[n - 1] & 0x80)) { /* never end on half a character */
        size_t start = n - 1;
        while (start > 0 && ((unsigned char)key[start] & 0xc0) == 0x80) start--;
        size_t want = (unsigned char)key[start] >= 0xf0 ? 4 : (unsigned char)key[start] >= 0xe0 ? 3 : 2;
        if (n - start == want) break;
        n = start;
    }
    if (n == 0) key[n++] = '_';
    uint8_t h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)id, len);
    static const char digits[] = "0123456789abcdef";
    key[n++] = '-';
    for (int i = 0; i < HASH_HEX / 2; i++) { key[n++] = digits[h[i] >> 4]; key[n++] = digits[h[i] & 15]; }
    key[n] = 0;
}

bool output_key_is_safe(const char *key) {
    size_t len = strlen(key);
    if (len == 0 || len >= OUTPUT_KEY_MAX) return false;
    for (size_t i = 0; i < len; i++)
        if (!key_byte_ok((unsigned char)key[i])) return false;
    return true;
}

static locale_t utf8_locale;
static pthread_once_t utf8_once = PTHREAD_ONCE_INIT;
static void make_utf8_locale(void) {
    utf8_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    if (!utf8_locale) utf8_locale = newlocale(LC_CTYPE_MASK, "en_US.UTF-8", (locale_t)0);
}

locale_t output_utf8_locale_enter(void) {
    pthread_once(&utf8_once, make_utf8_locale);
    if (!utf8_locale) { ts_fail("no UTF-8 locale (C.UTF-8) for tar member names"); return (locale_t)0; }
    return uselocale(utf8_locale);
}

void output_utf8_locale_leave(locale_t previous) { if (previous) uselocale(previous); }

bool output_storage_errno(int err) {
    return err == ENOSPC || err == EIO || err == EDQUOT || err == EROFS;
}

bool output_storage_error_text(const char *text) {
    static const int errs[] = {ENOSPC, EIO, EDQUOT, EROFS};
    if (!text) return false;
    for (size_t i = 0; i < sizeof errs / sizeof *errs; i++)
        if (strstr(text, strerror(errs[i]))) return true;
    return false;
}

static bool ext_ok(const char *ext) {
    if (!ext || ext[0] != '.' || !ext[1] || strlen(ext) > 32) return false;
    for (const char *p = ext + 1; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.') || (p[0] == '.' && p[-1] == '.'))
            return false;
    return true;
}

/* ---- folders and shard names -------------------------------------------------------- */

static int make_dirs(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s", dir);
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(path, 0755) != 0 && errno != EEXIST) return ts_fail("%s: cannot create: %s", path, strerror(errno));
            *p = '/';
        }
    if (mkdir(path, 0755) != 0 && errno != EEXIST) return ts_fail("%s: cannot create: %s", path, strerror(errno));
    struct stat s;
    if (stat(path, &s) != 0 || !S_ISDIR(s.st_mode)) return ts_fail("%s: not a folder", path);
    return 0;
}

/* One past the highest PREFIX-NNNNNN.tar in dir (0 if none). */
static int64_t next_free_shard(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    size_t pl = strlen(prefix);
    int64_t next = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if (strncmp(n, prefix, pl) != 0 || n[pl] != '-') continue;
        char *end;
        long long idx = strtoll(n + pl + 1, &end, 10);
        if (end != n + pl + 1 && strcmp(end, ".tar") == 0 && idx >= next) next = idx + 1;
    }
    closedir(d);
    return next;
}

output_writer *output_writer_new(const output_writer_options *o) {
    if (!o || !o->dir || !o->dir[0]) { ts_fail("output writer: no output folder given"); return NULL; }
    const char *prefix = o->shard_prefix && o->shard_prefix[0] ? o->shard_prefix : "shard";
    if (!output_key_is_safe(prefix)) { ts_fail("output writer: shard prefix '%s' is not a safe name", prefix); return NULL; }
    if (make_dirs(o->dir) < 0) { ts_fail_wrap("output writer"); return NULL; }
    output_writer *w = ts_calloc(1, sizeof *w);
    w->dir = ts_strdup(o->dir);
    w->format = o->format;
    w->records_per_shard = o->records_per_shard > 0 ? o->records_per_shard : 1000;
    w->prefix = ts_strdup(prefix);
    w->next_shard = o->first_shard_set ? o->first_shard : next_free_shard(o->dir, prefix);
    if (w->next_shard < 0) w->next_shard = 0;
    return w;
}

/* ---- tar shards --------------------------------------------------------------------- */

static int open_shard(output_writer *w) {
    snprintf(w->tar_path, sizeof w->tar_path, "%s/%s-%06" PRId64 ".tar", w->dir, w->prefix, w->next_shard);
    if (access(w->tar_path, F_OK) == 0)
        return ts_fail("%s: shard exists already; a closed shard is never reopened", w->tar_path);
    snprintf(w->tar_tmp, sizeof w->tar_tmp, "%s.tmp.%d", w->tar_path, (int)getpid());
    w->tar = archive_write_new();
    if (archive_write_set_format_pax_restricted(w->tar) != ARCHIVE_OK ||
        archive_write_open_filename(w->tar, w->tar_tmp) != ARCHIVE_OK) {
        ts_fail("%s: cannot create: %s", w->tar_tmp, archive_error_string(w->tar));
        archive_write_free(w->tar);
        w->tar = NULL;
        return -1;
    }
    w->records_in_shard = 0;
    return 0;
}

static int tar_member(output_writer *w, const char *name, const void *data, size_t size) {
    locale_t old = output_utf8_locale_enter();
    if (!old) return -1;
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_size(e, (la_int64_t)size);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_mtime(e, time(NULL), 0);
    int rc = archive_write_header(w->tar, e) == ARCHIVE_OK &&
                     (size == 0 || archive_write_data(w->tar, data, size) == (la_ssize_t)size)
                 ? 0 : ts_fail("%s: writing %s: %s", w->tar_tmp, name, archive_error_string(w->tar));
    archive_entry_free(e);
    output_utf8_locale_leave(old);
    return rc;
}

static void abandon_shard(output_writer *w) {
    if (!w->tar) return;
    archive_write_free(w->tar);
    w->tar = NULL;
    unlink(w->tar_tmp);
}

int output_writer_close_shard(output_writer *w) {
    if (!w->tar) return 0;
    struct archive *a = w->tar;
    w->tar = NULL;
    int rc = archive_write_close(a) == ARCHIVE_OK ? 0 : ts_fail("%s: closing: %s", w->tar_tmp, archive_error_string(a));
    archive_write_free(a);
    w->next_shard++;   /* this index is spent whether or not the rename works */
    if (rc == 0) {     /* the shard is on disk before its name appears */
        int fd = open(w->tar_tmp, O_RDONLY);
        if (fd < 0 || fsync(fd) != 0) rc = ts_fail("%s: cannot sync: %s", w->tar_tmp, strerror(errno));
        if (fd >= 0) close(fd);
    }
    if (rc == 0 && rename(w->tar_tmp, w->tar_path) != 0)
        rc = ts_fail("%s: cannot rename into place: %s", w->tar_path, strerror(errno));
    if (rc < 0) { unlink(w->tar_tmp); return -1; }
    w->shards_closed++;
    snprintf(w->last_shard, sizeof w->last_shard, "%s", w->tar_path);
    return 0;
}

/* ---- records ------------------------------------------------------------------------ */

int output_writer_add(output_writer *w, const char *key, const output_part *parts, int count) {
    if (!output_key_is_safe(key))
        return ts_fail("output writer: record key '%s' is not safe (make it with output_key)", key);
    if (count < 1) return ts_fail("output writer: record '%s' has no parts", key);
    for (int i = 0; i < count; i++) {
        if (!ext_ok(parts[i].ext))
            return ts_fail("output writer: record '%s': bad extension '%s'", key, parts[i].ext ? parts[i].ext : "(null)");
        if (parts[i].size && !parts[i].data) return ts_fail("output writer: record '%s': no data for %s", key, parts[i].ext);
    }
    char name[OUTPUT_KEY_MAX + 40], path[4096 + sizeof name];
    if (w->format == OUTPUT_FILES) {
        for (int i = 0; i < count; i++) {
            snprintf(path, sizeof path, "%s/%s%s", w->dir, key, parts[i].ext);
            if (write_file_atomic(path, parts[i].data, parts[i].size) < 0) return -1;
        }
        return 0;
    }
    if (!w->tar && open_shard(w) < 0) return -1;
    for (int i = 0; i < count; i++) {
        snprintf(name, sizeof name, "%s%s", key, parts[i].ext);
        if (tar_member(w, name, parts[i].data, parts[i].size) < 0) {
            abandon_shard(w);    /* a half-written member would corrupt the shard: drop it */
            return ts_fail_wrap("shard abandoned");
        }
    }
    if (++w->records_in_shard >= w->records_per_shard) return output_writer_close_shard(w);
    return 0;
}

int output_writer_finish(output_writer **self) {
    if (!*self) return 0;
    int rc = output_writer_close_shard(*self);
    output_writer_destroy(self);
    return rc;
}

void output_writer_destroy(output_writer **self) {
    output_writer *w = *self;
    if (!w) return;
    abandon_shard(w);
    free(w->dir);
    free(w->prefix);
    free(w);
    *self = NULL;
}

int64_t output_writer_shards_closed(const output_writer *w) { return w->shards_closed; }
const char *output_writer_last_shard(const output_writer *w) { return w->last_shard; }
