/* dataset.c — streaming record readers for txt / jsonl / csv, plain, gzip or zstd (see dataset.h). */
#include "coordinator/dataset.h"
#include "coordinator/dataset_images.h"
#include "kernels/base.h"

#include <cjson/cJSON.h>
#include <utf8proc.h>
#include <zlib.h>
#include <zstd.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define READ_CHUNK (64 * 1024)
#define MAX_CSV_COLUMNS 256

struct dataset {
    char *path;
    dataset_options opt;
    /* byte source: zlib reads plain and gzip files alike; zstd is detected by magic */
    gzFile gz;
    FILE *zst_file;
    ZSTD_DCtx *zst;
    ZSTD_inBuffer zin;
    uint8_t *zin_buf;
    int zst_left;             /* inside a frame: end of file here means truncation */
    /* decoded bytes not yet consumed */
    uint8_t *buf;
    size_t buf_len, buf_pos;
    int eof;
    /* the current line */
    char *line;
    size_t line_len;
    uint64_t line_no, rejected;
    FILE *rejects;
    int rejects_errno;        /* a reject line could not be written (a full disk): reading stops */
    /* csv header: the column of each field, -1 if absent */
    int col_id, col_prompt, col_negative, col_seed, col_params;
    image_source *images;     /* DS_IMAGES: records come from there */
};

uint64_t dataset_seed_for(uint64_t job_seed, const char *id) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a 64 */
    for (const unsigned char *p = (const unsigned char *)id; *p; p++) h = (h ^ *p) * 1099511628211ull;
    uint64_t z = h ^ job_seed;           /* splitmix64 finaliser */
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return z & 0xffffffffull;
}

dataset_format dataset_format_from_name(const char *name) {
    if (!name || !strcmp(name, "auto")) return DS_AUTO;
    if (!strcmp(name, "txt")) return DS_TXT;
    if (!strcmp(name, "jsonl") || !strcmp(name, "json")) return DS_JSONL;
    if (!strcmp(name, "csv")) return DS_CSV;
    if (!strcmp(name, "images")) return DS_IMAGES;
    return (dataset_format)-1;
}

static dataset_format format_from_path(const char *path) {
    char stem[4096];
    snprintf(stem, sizeof stem, "%s", path);
    size_t n = strlen(stem);
    if (n > 3 && !strcmp(stem + n - 3, ".gz")) stem[n - 3] = 0;
    else if (n > 4 && !strcmp(stem + n - 4, ".zst")) stem[n - 4] = 0;
    const char *dot = strrchr(stem, '.');
    if (dot && (!strcmp(dot, ".jsonl") || !strcmp(dot, ".json") || !strcmp(dot, ".ndjson"))) return DS_JSONL;
    if (dot && !strcmp(dot, ".csv")) return DS_CSV;
    return DS_TXT;
}

/* Refills buf; returns bytes available (0 at end), -1 on error. */
static long fill(dataset *d) {
    d->buf_pos = d->buf_len = 0;
    if (d->eof) return 0;
    if (d->gz) {
        int n = gzread(d->gz, d->buf, READ_CHUNK);
        if (n < 0) { int e; return ts_fail("%s", gzerror(d->gz, &e)); /* zlib names the file */ }
        if (n == 0) {
            int e;
            const char *msg = gzerror(d->gz, &e);
            if (e != Z_OK && e != Z_STREAM_END) return ts_fail("%s (truncated .gz?)", msg); /* zlib names the file */
            d->eof = 1;
        }
        d->buf_len = (size_t)n;
        return n;
    }
    while (d->buf_len == 0) {
        if (d->zin.pos == d->zin.size) {
            size_t n = fread(d->zin_buf, 1, ZSTD_DStreamInSize(), d->zst_file);
            if (n == 0) {
                if (ferror(d->zst_file)) return ts_fail("%s: read error: %s", d->path, strerror(errno));
                if (d->zst_left) return ts_fail("%s: zstd stream ends mid-frame (truncated .zst?)", d->path);
                d->eof = 1;
                return 0;
            }
            d->zin.src = d->zin_buf; d->zin.size = n; d->zin.pos = 0;
        }
        ZSTD_outBuffer out = {d->buf, READ_CHUNK, 0};
        size_t rc = ZSTD_decompressStream(d->zst, &out, &d->zin);
        if (ZSTD_isError(rc)) return ts_fail("%s: zstd: %s", d->path, ZSTD_getErrorName(rc));
        d->zst_left = rc != 0; /* 0: a frame just ended */
        d->buf_len = out.pos;
    }
    return (long)d->buf_len;
}

/* Reads the next line into d->line (without the newline). 1 ok, 2 overlong (skipped to
 * its end, d->line holds its head), 0 end, -1 error. */
static int read_line(dataset *d) {
    d->line_len = 0;
    int overlong = 0, any = 0;
    for (;;) {
        if (d->buf_pos == d->buf_len) {
            long n = fill(d);
            if (n < 0) return -1;
            if (n == 0) break;
        }
        uint8_t *start = d->buf + d->buf_pos;
        size_t avail = d->buf_len - d->buf_pos;
        uint8_t *nl = memchr(start, '\n', avail);
        size_t take = nl ? (size_t)(nl - start) : avail;
        any = 1;
        if (!overlong) {
            if (d->line_len + take > d->opt.max_line) {
                size_t room = d->opt.max_line - d->line_len;
                memcpy(d->line + d->line_len, start, room);
                d->line_len += room;
                overlong = 1;
            } else {
                memcpy(d->line + d->line_len, start, take);
                d->line_len += take;
            }
        }
        d->buf_pos += take + (nl ? 1 : 0);
        if (nl) break;
    }
    if (!any) return 0;
    d->line_no++;
    if (d->line_len && d->line[d->line_len - 1] == '\r') d->line_len--;
    d->line[d->line_len] = 0;
    return overlong ? 2 : 1;
}

static int valid_utf8(const char *s, size_t n) {
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    utf8proc_int32_t cp;
    while (n > 0) {
        utf8proc_ssize_t k = utf8proc_iterate(p, (utf8proc_ssize_t)n, &cp);
        if (k < 0) return 0;
        p += k; n -= (size_t)k;
    }
    return 1;
}

static void reject(dataset *d, const char *reason) {
    d->rejected++;
    log_debug("%s:%llu: rejected: %s", d->path, (unsigned long long)d->line_no, reason);
    if (!d->rejects) return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "line", (double)d->line_no);
    cJSON_AddStringToObject(o, "reason", reason);
    size_t n = d->line_len < 200 ? d->line_len : 200;
    while (n > 0 && !valid_utf8(d->line, n)) n--; /* an excerpt that is valid UTF-8 */
    char saved = d->line[n];
    d->line[n] = 0;
    cJSON_AddStringToObject(o, "text", d->line);
    d->line[n] = saved;
    char *s = cJSON_PrintUnformatted(o);
    if ((fprintf(d->rejects, "%s\n", s) < 0 || fflush(d->rejects) != 0) && !d->rejects_errno)
        d->rejects_errno = errno ? errno : EIO;
    free(s);
    cJSON_Delete(o);
}

void dataset_record_clear(dataset_record *r) {
    free(r->id); free(r->prompt); free(r->negative); free(r->params_json);
    memset(r, 0, sizeof *r);
}

static void fill_defaults(dataset *d, dataset_record *r, const char *id, const char *prompt,
                          const char *negative, const char *params, int has_seed, uint64_t seed) {
    char line_id[32];
    if (!id || !*id) { snprintf(line_id, sizeof line_id, "%llu", (unsigned long long)d->line_no); id = line_id; }
    r->id = ts_strdup(id);
    r->prompt = ts_strdup(prompt);
    r->negative = ts_strdup(negative ? negative : "");
    r->params_json = ts_strdup(params ? params : "");
    r->seed = has_seed ? seed : dataset_seed_for(d->opt.job_seed, r->id);
    r->line = d->line_no;
}

static int parse_jsonl(dataset *d, dataset_record *r) {
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(d->line, d->line_len, &end, 0);
    if (!o) {
        char why[64];
        snprintf(why, sizeof why, "invalid JSON near byte %zu", end ? (size_t)(end - d->line) : (size_t)0);
        reject(d, why);
        return 0;
    }
    if (!cJSON_IsObject(o)) { cJSON_Delete(o); reject(d, "not a JSON object"); return 0; }
    cJSON *p = cJSON_GetObjectItemCaseSensitive(o, d->opt.prompt_field);
    if (!p && !strcmp(d->opt.prompt_field, "prompt")) p = cJSON_GetObjectItemCaseSensitive(o, "caption");
    if (!cJSON_IsString(p) || !p->valuestring[0]) {
        cJSON_Delete(o);
        char why[160];
        snprintf(why, sizeof why, "missing or empty string field '%s'", d->opt.prompt_field);
        reject(d, why);
        return 0;
    }
    cJSON *id = cJSON_GetObjectItemCaseSensitive(o, d->opt.id_field);
    char idbuf[64] = "";
    const char *ids = NULL;
    if (cJSON_IsString(id)) ids = id->valuestring;
    else if (cJSON_IsNumber(id)) { snprintf(idbuf, sizeof idbuf, "%.17g", id->valuedouble); ids = idbuf; }
    else if (id) { cJSON_Delete(o); reject(d, "id field is neither a string nor a number"); return 0; }
    cJSON *neg = cJSON_GetObjectItemCaseSensitive(o, d->opt.negative_field);
    cJSON *seed = cJSON_GetObjectItemCaseSensitive(o, d->opt.seed_field);
    cJSON *params = cJSON_GetObjectItemCaseSensitive(o, d->opt.params_field);
    char *params_s = cJSON_IsObject(params) ? cJSON_PrintUnformatted(params) : NULL;
    int has_seed = cJSON_IsNumber(seed) && seed->valuedouble >= 0;
    fill_defaults(d, r, ids, p->valuestring, cJSON_IsString(neg) ? neg->valuestring : NULL, params_s,
                  has_seed, has_seed ? (uint64_t)seed->valuedouble : 0);
    free(params_s);
    cJSON_Delete(o);
    return 1;
}

/* Splits one csv line in place (RFC 4180 quotes, "" for a quote); returns the column count
 * or -1 on an unterminated quote. */
static int split_csv(char *s, char **cols, int max) {
    int n = 0;
    char *w = s;
    for (;;) {
        if (n == max) return n;
        cols[n++] = w;
        if (*s == '"') {
            s++;
            for (;;) {
                if (!*s) return -1;
                if (*s == '"' && s[1] == '"') { *w++ = '"'; s += 2; continue; }
                if (*s == '"') { s++; break; }
                *w++ = *s++;
            }
            while (*s && *s != ',') s++; /* junk after the closing quote is dropped */
        } else {
            while (*s && *s != ',') *w++ = *s++;
        }
        int more = *s == ',';
        *w++ = 0;
        if (!more) return n;
        s++;
    }
}

static int csv_header(dataset *d) {
    char *cols[MAX_CSV_COLUMNS];
    int n = split_csv(d->line, cols, MAX_CSV_COLUMNS);
    if (n < 0) return ts_fail("%s:1: malformed csv header", d->path);
    d->col_id = d->col_prompt = d->col_negative = d->col_seed = d->col_params = -1;
    for (int i = 0; i < n; i++) {
        if (!strcmp(cols[i], d->opt.id_field)) d->col_id = i;
        else if (!strcmp(cols[i], d->opt.prompt_field)) d->col_prompt = i;
        else if (d->col_prompt < 0 && !strcmp(cols[i], "caption")) d->col_prompt = i;
        else if (!strcmp(cols[i], d->opt.negative_field)) d->col_negative = i;
        else if (!strcmp(cols[i], d->opt.seed_field)) d->col_seed = i;
        else if (!strcmp(cols[i], d->opt.params_field)) d->col_params = i;
    }
    if (d->col_prompt < 0) return ts_fail("%s:1: csv header has no column '%s'", d->path, d->opt.prompt_field);
    return 0;
}

static int parse_csv(dataset *d, dataset_record *r) {
    char *cols[MAX_CSV_COLUMNS];
    int n = split_csv(d->line, cols, MAX_CSV_COLUMNS);
    if (n < 0) { reject(d, "unterminated quote"); return 0; }
    if (d->col_prompt >= n || !cols[d->col_prompt][0]) { reject(d, "missing prompt column"); return 0; }
    const char *id = d->col_id >= 0 && d->col_id < n ? cols[d->col_id] : NULL;
    const char *neg = d->col_negative >= 0 && d->col_negative < n ? cols[d->col_negative] : NULL;
    const char *params = d->col_params >= 0 && d->col_params < n ? cols[d->col_params] : NULL;
    int has_seed = 0;
    uint64_t seed = 0;
    if (d->col_seed >= 0 && d->col_seed < n && cols[d->col_seed][0]) {
        char *end;
        seed = strtoull(cols[d->col_seed], &end, 10);
        if (*end) { reject(d, "seed is not a non-negative integer"); return 0; }
        has_seed = 1;
    }
    if (params && *params) {
        cJSON *p = cJSON_Parse(params);
        int ok = cJSON_IsObject(p);
        cJSON_Delete(p);
        if (!ok) { reject(d, "params column is not a JSON object"); return 0; }
    }
    fill_defaults(d, r, id, cols[d->col_prompt], neg, params, has_seed, seed);
    return 1;
}

dataset *dataset_open(const char *path, const dataset_options *options) {
    dataset *d = ts_calloc(1, sizeof *d);
    d->path = ts_strdup(path);
    d->opt = *options;
    if (!d->opt.id_field) d->opt.id_field = "id";
    if (!d->opt.prompt_field) d->opt.prompt_field = "prompt";
    if (!d->opt.negative_field) d->opt.negative_field = "negative";
    if (!d->opt.seed_field) d->opt.seed_field = "seed";
    if (!d->opt.params_field) d->opt.params_field = "params";
    if (!d->opt.max_line) d->opt.max_line = 1u << 20;
    if (d->opt.format == DS_AUTO) d->opt.format = format_from_path(path);
    d->buf = ts_malloc(READ_CHUNK);
    d->line = ts_malloc(d->opt.max_line + 1);
    if (d->opt.format == DS_IMAGES) {
        if (options->rejects_path && !(d->rejects = fopen(options->rejects_path, "a"))) {
            ts_fail("%s: cannot open rejects file: %s", options->rejects_path, strerror(errno));
            dataset_destroy(&d);
            return NULL;
        }
        if (!(d->images = image_source_open(path, &d->opt, d->rejects))) dataset_destroy(&d);
        return d;
    }

    FILE *f = fopen(path, "rb");
    if (!f) { ts_fail("%s: cannot open dataset: %s", path, strerror(errno)); dataset_destroy(&d); return NULL; }
    uint8_t magic[4] = {0};
    size_t got = fread(magic, 1, 4, f);
    if (got == 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd) {
        rewind(f);
        d->zst_file = f;
        d->zst = ZSTD_createDCtx();
        d->zin_buf = ts_malloc(ZSTD_DStreamInSize());
    } else {
        fclose(f);
        d->gz = gzopen(path, "rb");
        if (!d->gz) { ts_fail("%s: cannot open dataset", path); dataset_destroy(&d); return NULL; }
        gzbuffer(d->gz, READ_CHUNK);
    }
    if (options->rejects_path) {
        d->rejects = fopen(options->rejects_path, "a");
        if (!d->rejects) { ts_fail("%s: cannot open rejects file: %s", options->rejects_path, strerror(errno)); dataset_destroy(&d); return NULL; }
    }
    if (d->opt.format == DS_CSV) {
        int rc = read_line(d);
        if (rc <= 0 || csv_header(d) < 0) {
            if (rc == 0) ts_fail("%s: empty csv file (no header)", path);
            dataset_destroy(&d);
            return NULL;
        }
    }
    return d;
}

int dataset_next(dataset *d, dataset_record *out) {
    if (d->images) return image_source_next(d->images, out);
    dataset_record_clear(out);
    for (;;) {
        if (d->rejects_errno) return ts_fail("%s: %s", d->opt.rejects_path, strerror(d->rejects_errno));
        int rc = read_line(d);
        if (rc <= 0) return rc;
        if (rc == 2) {
            char why[96];
            snprintf(why, sizeof why, "line longer than %zu bytes", d->opt.max_line);
            reject(d, why);
            continue;
        }
        size_t start = 0;
        while (start < d->line_len && (d->line[start] == ' ' || d->line[start] == '\t')) start++;
        if (start == d->line_len) continue; /* blank */
        if (memchr(d->line, 0, d->line_len)) { reject(d, "NUL byte in line"); continue; }
        if (!valid_utf8(d->line, d->line_len)) { reject(d, "invalid UTF-8"); continue; }
        int ok;
        switch (d->opt.format) {
        case DS_JSONL: ok = parse_jsonl(d, out); break;
        case DS_CSV: ok = parse_csv(d, out); break;
        default: fill_defaults(d, out, NULL, d->line, NULL, NULL, 0, 0); ok = 1; break;
        }
        if (ok) return 1;
    }
}

uint64_t dataset_rejected(const dataset *d) { return d->images ? image_source_rejected(d->images) : d->rejected; }
uint64_t dataset_lines(const dataset *d) { return d->images ? image_source_count(d->images) : d->line_no; }

void dataset_destroy(dataset **self) {
    dataset *d = *self;
    if (!d) return;
    image_source_destroy(&d->images);
    if (d->gz) gzclose(d->gz);
    if (d->zst_file) fclose(d->zst_file);
    if (d->zst) ZSTD_freeDCtx(d->zst);
    if (d->rejects) fclose(d->rejects);
    free(d->zin_buf); free(d->buf); free(d->line); free(d->path);
    free(d);
    *self = NULL;
}
