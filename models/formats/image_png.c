/* image_png.c — PNG encode/decode through libspng, and the A1111 "parameters" text. */
#include "models/formats/image_png.h"

#include <errno.h>
#include <spng.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the A1111 parameters text ------------------------------------------------ */

static void append(char **buf, size_t *len, size_t *cap, const char *fmt, ...) TS_PRINTF(4, 5);
static void append(char **buf, size_t *len, size_t *cap, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < *cap - *len) { *len += (size_t)n; return; }
        *cap = *cap * 2 + (size_t)(n > 0 ? n : 0);
        *buf = ts_realloc(*buf, *cap);
    }
}

/* The shortest decimal that reads back as the same float ("7", "7.5", "0.1"), so a
 * setting read back from the text reproduces the image. */
static const char *float_text(float v, char buf[32]) {
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, 32, "%.*g", digits, (double)v);
        if (strtof(buf, NULL) == v) break;
    }
    return buf;
}

char *gen_parameters_format(const gen_parameters *p) {
    char f[32];
    size_t len = 0, cap = 256;
    char *s = ts_malloc(cap);
    s[0] = 0;
    append(&s, &len, &cap, "%s\n", p->prompt ? p->prompt : "");
    if (p->negative && p->negative[0]) append(&s, &len, &cap, "Negative prompt: %s\n", p->negative);
    append(&s, &len, &cap, "Steps: %d, Sampler: %s, ", p->steps, p->sampler);
    if (p->schedule[0]) append(&s, &len, &cap, "Schedule type: %s, ", p->schedule);
    append(&s, &len, &cap, "CFG scale: %s, Seed: %lld, Size: %dx%d, Model: %s", float_text(p->cfg_scale, f),
           (long long)p->seed, p->width, p->height, p->model);
    if (p->batch_size > 1) append(&s, &len, &cap, ", Batch size: %d, Batch pos: %d", p->batch_size, p->batch_pos);
    if (p->clip_skip > 1) append(&s, &len, &cap, ", Clip skip: %d", p->clip_skip);
    if (p->clip_skip > 1 && p->clip_skip_positive_only) append(&s, &len, &cap, ", Clip skip mode: positive");
    if (p->truncate) append(&s, &len, &cap, ", Truncate prompts: True");
    if (p->guidance_rescale > 0) append(&s, &len, &cap, ", Guidance rescale: %s", float_text(p->guidance_rescale, f));
    if (p->eta > 0) append(&s, &len, &cap, ", Eta DDIM: %s", float_text(p->eta, f));
    return s;
}

static char *dup_range(const char *a, const char *b) {
    char *s = ts_malloc((size_t)(b - a) + 1);
    memcpy(s, a, (size_t)(b - a));
    s[b - a] = 0;
    return s;
}

static void copy_field(char *dst, size_t size, const char *v, size_t n) {
    if (n >= size) n = size - 1;
    memcpy(dst, v, n);
    dst[n] = 0;
}

/* "Key: value, Key: "quoted, value", ..." — A1111 quotes values that contain commas. */
static void parse_settings(const char *line, gen_parameters *out) {
    const char *p = line;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        const char *colon = strstr(p, ": ");
        if (!colon) break;
        const char *key = p;
        size_t key_len = (size_t)(colon - p);
        const char *v = colon + 2, *end;
        size_t vn;
        if (*v == '"') {
            end = v + 1;
            while (*end && *end != '"') end += *end == '\\' && end[1] ? 2 : 1;
            v++, vn = (size_t)(end - v);
            if (*end) end++;
        } else {
            end = strchr(v, ',');
            if (!end) end = v + strlen(v);
            vn = (size_t)(end - v);
        }
        char value[512];
        copy_field(value, sizeof value, v, vn);
#define KEY(k) (key_len == strlen(k) && strncmp(key, k, key_len) == 0)
        if (KEY("Steps")) out->steps = atoi(value);
        else if (KEY("Sampler")) copy_field(out->sampler, sizeof out->sampler, value, strlen(value));
        else if (KEY("Schedule type")) copy_field(out->schedule, sizeof out->schedule, value, strlen(value));
        else if (KEY("CFG scale")) out->cfg_scale = strtof(value, NULL);
        else if (KEY("Seed")) out->seed = strtoll(value, NULL, 10);
        else if (KEY("Size")) sscanf(value, "%dx%d", &out->width, &out->height);
        else if (KEY("Model")) copy_field(out->model, sizeof out->model, value, strlen(value));
        else if (KEY("Clip skip")) out->clip_skip = atoi(value);
        else if (KEY("Clip skip mode")) out->clip_skip_positive_only = strcmp(value, "positive") == 0;
        else if (KEY("Truncate prompts")) out->truncate = strcmp(value, "True") == 0;
        else if (KEY("Guidance rescale")) out->guidance_rescale = strtof(value, NULL);
        else if (KEY("Eta DDIM")) out->eta = strtof(value, NULL);
        else if (KEY("Batch size")) out->batch_size = atoi(value);
        else if (KEY("Batch pos")) out->batch_pos = atoi(value);
#undef KEY
        p = end;
    }
}

int gen_parameters_parse(const char *text, gen_parameters *out) {
    memset(out, 0, sizeof *out);
    /* the settings are the last line starting "Steps: " */
    const char *settings = NULL;
    for (const char *line = text; line && *line;) {
        if (strncmp(line, "Steps: ", 7) == 0) settings = line;
        const char *nl = strchr(line, '\n');
        line = nl ? nl + 1 : NULL;
    }
    if (!settings) return ts_fail("parameters text has no 'Steps:' line");
    const char *body_end = settings > text ? settings - 1 : settings;   /* the newline before */
    const char *neg = NULL;
    for (const char *line = text; line < body_end;) {
        if (strncmp(line, "Negative prompt: ", 17) == 0) { neg = line; break; }
        const char *nl = memchr(line, '\n', (size_t)(body_end - line));
        line = nl ? nl + 1 : body_end;
    }
    const char *prompt_end = neg ? (neg > text ? neg - 1 : neg) : body_end;
    out->prompt = dup_range(text, prompt_end);
    out->negative = neg ? dup_range(neg + 17, body_end) : ts_strdup("");
    const char *settings_end = strchr(settings, '\n');
    char *line = settings_end ? dup_range(settings, settings_end) : ts_strdup(settings);
    parse_settings(line, out);
    free(line);
    return 0;
}

void gen_parameters_clear(gen_parameters *p) {
    free(p->prompt);
    free(p->negative);
    memset(p, 0, sizeof *p);
}

/* ---- files -------------------------------------------------------------------- */

int write_file_atomic(const char *path, const void *data, size_t size) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return ts_fail("%s: cannot create: %s", tmp, strerror(errno));
    bool ok = fwrite(data, 1, size, f) == size;
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;   /* the data is on disk before the name appears */
    ok = fclose(f) == 0 && ok;
    if (!ok) { unlink(tmp); return ts_fail("%s: write failed: %s", tmp, strerror(errno)); }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return ts_fail("%s: cannot rename into place: %s", path, strerror(e));
    }
    return 0;
}

/* ---- PNG ---------------------------------------------------------------------- */

static bool is_ascii(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80) return false;
    return true;
}

int image_png_encode(const uint8_t *rgb, int width, int height, const char *parameters, void **out, size_t *size) {
    if (width < 1 || height < 1) return ts_fail("PNG encode: bad size %dx%d", width, height);
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    if (!ctx) return ts_fail("PNG encode: out of memory");
    int err = spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1);
    struct spng_ihdr ihdr = {.width = (uint32_t)width, .height = (uint32_t)height, .bit_depth = 8,
                             .color_type = SPNG_COLOR_TYPE_TRUECOLOR};
    if (!err) err = spng_set_ihdr(ctx, &ihdr);
    if (!err && parameters) {
        struct spng_text text = {.keyword = "parameters", .length = strlen(parameters), .text = (char *)parameters};
        text.type = is_ascii(parameters) ? SPNG_TEXT : SPNG_ITXT;
        text.language_tag = "";
        text.translated_keyword = "";
        err = spng_set_text(ctx, &text, 1);
    }
    size_t n = (size_t)width * (size_t)height * 3;
    if (!err) err = spng_encode_image(ctx, rgb, n, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
    if (err) {
        spng_ctx_free(ctx);
        return ts_fail("PNG encode: %s", spng_strerror(err));
    }
    *out = spng_get_png_buffer(ctx, size, &err);   /* ownership passes to us (malloc'd) */
    spng_ctx_free(ctx);
    if (!*out) return ts_fail("PNG encode: %s", spng_strerror(err));
    return 0;
}

int image_png_write(const char *path, const uint8_t *rgb, int width, int height, const char *parameters) {
    void *png;
    size_t size;
    if (image_png_encode(rgb, width, height, parameters, &png, &size) < 0) return ts_fail_wrap("%s", path);
    int rc = write_file_atomic(path, png, size);
    free(png);
    return rc;
}

/* tEXt is Latin-1 by the PNG spec (Pillow writes Latin-1 prompts that way). */
static char *latin1_to_utf8(const char *s, size_t n) {
    char *out = ts_malloc(2 * n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) *o++ = (char)c;
        else *o++ = (char)(0xc0 | (c >> 6)), *o++ = (char)(0x80 | (c & 0x3f));
    }
    *o = 0;
    return out;
}

int image_png_decode(const void *data, size_t size, const char *label, uint8_t **rgb, int *width, int *height,
                     char **parameters) {
    *rgb = NULL;
    if (parameters) *parameters = NULL;
    spng_ctx *ctx = spng_ctx_new(0);
    if (!ctx) return ts_fail("%s: out of memory", label);
    spng_set_crc_action(ctx, SPNG_CRC_ERROR, SPNG_CRC_ERROR);
    spng_set_image_limits(ctx, 1 << 15, 1 << 15);
    spng_set_chunk_limits(ctx, 1 << 26, 1 << 28);
    struct spng_ihdr ihdr;
    size_t n = 0;
    int err = spng_set_png_buffer(ctx, data, size);
    if (!err) err = spng_get_ihdr(ctx, &ihdr);
    if (!err) err = spng_decoded_image_size(ctx, SPNG_FMT_RGB8, &n);
    if (!err) {
        *rgb = ts_malloc(n);
        err = spng_decode_image(ctx, *rgb, n, SPNG_FMT_RGB8, 0);
    }
    uint32_t count = 0;
    if (!err && parameters && spng_get_text(ctx, NULL, &count) == 0 && count > 0) {
        struct spng_text *texts = ts_calloc(count, sizeof *texts);
        if (spng_get_text(ctx, texts, &count) == 0)
            for (uint32_t i = 0; i < count; i++)
                if (strcmp(texts[i].keyword, "parameters") == 0) {
                    *parameters = texts[i].type == SPNG_TEXT ? latin1_to_utf8(texts[i].text, texts[i].length)
                                                             : dup_range(texts[i].text, texts[i].text + texts[i].length);
                    break;
                }
        free(texts);
    }
    spng_ctx_free(ctx);
    if (err) {
        free(*rgb);
        *rgb = NULL;
        return ts_fail("%s: not a readable PNG: %s", label, spng_strerror(err));
    }
    *width = (int)ihdr.width, *height = (int)ihdr.height;
    return 0;
}

int image_png_read(const char *path, uint8_t **rgb, int *width, int *height, char **parameters) {
    FILE *f = fopen(path, "rb");
    if (!f) return ts_fail("%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0, got;
    uint8_t *buf = ts_malloc(cap);
    while ((got = fread(buf + n, 1, cap - n, f)) > 0)
        if ((n += got) == cap) buf = ts_realloc(buf, cap *= 2);
    fclose(f);
    int rc = image_png_decode(buf, n, path, rgb, width, height, parameters);
    free(buf);
    return rc;
}
