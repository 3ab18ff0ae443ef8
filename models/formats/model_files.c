/* model_files.c — find a model component's weights and configs in either layout. */
#include "models/formats/model_files.h"
#include "models/formats/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static bool is_file(const char *p) { struct stat s; return stat(p, &s) == 0 && S_ISREG(s.st_mode); }

bool model_is_folder(const char *model) { struct stat s; return stat(model, &s) == 0 && S_ISDIR(s.st_mode); }

int model_component_weights(const char *model, const char *component, char *out, size_t size) {
    if (!model_is_folder(model)) {
        if (!is_file(model)) return ts_fail("%s: no such model file or folder", model);
        snprintf(out, size, "%s", model);
        return 0;
    }
    static const char *names[] = {
        "diffusion_pytorch_model.safetensors", "model.safetensors",
        "diffusion_pytorch_model.fp16.safetensors", "model.fp16.safetensors",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(out, size, "%s/%s/%s", model, component, names[i]);
        if (is_file(out)) return 0;
    }
    return ts_fail("%s: no %s weights (looked for %s/{diffusion_pytorch_model,model}[.fp16].safetensors)",
                   model, component, component);
}

int model_component_file(const char *model, const char *component, const char *name, char *out, size_t size) {
    if (!model_is_folder(model)) return -1;
    snprintf(out, size, "%s/%s/%s", model, component, name);
    return is_file(out) ? 0 : -1;
}

char *read_text_file(const char *path, size_t *size_out) {
    FILE *f = fopen(path, "rb");
    if (!f) { ts_fail("%s: cannot open: %s", path, strerror(errno)); return NULL; }
    size_t cap = 4096, n = 0;
    char *buf = ts_malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) buf = ts_realloc(buf, cap *= 2);
    }
    bool failed = ferror(f);
    fclose(f);
    if (failed) { free(buf); ts_fail("%s: read error", path); return NULL; }
    buf[n] = 0;
    if (size_out) *size_out = n;
    return buf;
}

struct cJSON *json_parse_config(const char *text, const char *label) {
    size_t n = strlen(text);
    char *copy = ts_malloc(n * 2 + 1), *w = copy;   /* "NaN" -> "null" grows by one byte */
    bool in_string = false;
    for (const char *p = text; *p;) {
        if (in_string) {
            if (*p == '\\' && p[1]) { *w++ = *p++; *w++ = *p++; continue; }
            if (*p == '"') in_string = false;
            *w++ = *p++;
        } else if (*p == '"') { in_string = true; *w++ = *p++; }
        else if (strncmp(p, "Infinity", 8) == 0) { memcpy(w, "1e999", 5); w += 5; p += 8; }   /* strtod: inf */
        else if (strncmp(p, "NaN", 3) == 0) { memcpy(w, "null", 4); w += 4; p += 3; }
        else *w++ = *p++;
    }
    *w = 0;
    cJSON *root = cJSON_Parse(copy);
    if (!root) {   /* the error pointer points into the copy: report before freeing it */
        const char *at = cJSON_GetErrorPtr();
        ts_fail("%s: invalid JSON near '%.20s'", label, at ? at : "");
    }
    free(copy);
    return root;
}

int safetensors_open_folder(const char *folder, safetensors ***shards, int *count) {
    char path[4096];
    *shards = NULL;
    *count = 0;
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", folder);
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        snprintf(path, sizeof path, "%s/model.safetensors", folder);
        *shards = ts_calloc(1, sizeof **shards);
        if (!((*shards)[0] = safetensors_open(path))) return -1;
        *count = 1;
        return 0;
    }
    fclose(probe);
    size_t size;
    char *text = read_text_file(path, &size);
    if (!text) return -1;
    cJSON *idx = cJSON_Parse(text);
    free(text);
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(idx, "weight_map");
    if (!cJSON_IsObject(map)) { cJSON_Delete(idx); return ts_fail("%s: no \"weight_map\" object", path); }
    int cap = cJSON_GetArraySize(map), rc = 0;
    *shards = ts_calloc((size_t)(cap ? cap : 1), sizeof **shards);
    const char **names = ts_calloc((size_t)(cap ? cap : 1), sizeof *names);
    const cJSON *e;
    cJSON_ArrayForEach(e, map) {
        if (!cJSON_IsString(e) || strchr(e->valuestring, '/')) { rc = ts_fail("%s: bad shard name for '%s'", path, e->string); break; }
        bool seen = false;
        for (int i = 0; i < *count; i++) seen |= strcmp(names[i], e->valuestring) == 0;
        if (seen) continue;
        names[*count] = e->valuestring;
        char shard[4096];
        snprintf(shard, sizeof shard, "%s/%s", folder, e->valuestring);
        if (!((*shards)[*count] = safetensors_open(shard))) { rc = -1; break; }
        (*count)++;
    }
    free(names);
    cJSON_Delete(idx);
    return rc;
}
