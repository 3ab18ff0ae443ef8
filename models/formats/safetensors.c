/* safetensors.c — memory-mapped, fully validated safetensors reader and a writer. */
#include "models/formats/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* No real checkpoint has a header near this; anything larger is a lie or an attack. */
#define MAX_HEADER_BYTES (100u << 20)

typedef struct {
    char *name;
    dtype type;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    uint64_t begin, end;   /* relative to the data section */
} entry;

struct safetensors {
    char *label;               /* the path, for messages */
    const uint8_t *base;       /* whole file */
    size_t size;
    bool mapped;
    const uint8_t *data;       /* data section */
    uint64_t data_size;
    entry *entries;            /* sorted by begin offset */
    int count;
    int *by_name;              /* indexes into entries, sorted by name */
    char **meta_keys, **meta_values;
    int meta_count;
};

static const entry *find_entry(const safetensors *st, const char *name);

static int compare_begin(const void *a, const void *b) {
    const entry *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

/* qsort_r's context: render workers are threads that open model files at the same time */
static int compare_name(const void *a, const void *b, void *context) {
    const safetensors *st = context;
    return strcmp(st->entries[*(const int *)a].name, st->entries[*(const int *)b].name);
}

static int parse_metadata(safetensors *st, const cJSON *meta) {
    if (!cJSON_IsObject(meta)) return ts_fail("%s: __metadata__ is not an object", st->label);
    if (st->meta_keys) return ts_fail("%s: __metadata__ appears twice", st->label);
    int n = cJSON_GetArraySize(meta);
    st->meta_keys = ts_calloc((size_t)n + 1, sizeof(char *));
    st->meta_values = ts_calloc((size_t)n + 1, sizeof(char *));
    const cJSON *item;
    cJSON_ArrayForEach(item, meta) {
        if (!cJSON_IsString(item))
            return ts_fail("%s: __metadata__ value of '%s' is not a string", st->label, item->string);
        st->meta_keys[st->meta_count] = ts_strdup(item->string);
        st->meta_values[st->meta_count] = ts_strdup(item->valuestring);
        st->meta_count++;
    }
    return 0;
}

/* Checks one header entry completely before it can be used. */
static int parse_entry(safetensors *st, const cJSON *item, entry *e) {
    const char *name = item->string;
    if (!cJSON_IsObject(item)) return ts_fail("%s: tensor '%s': entry is not an object", st->label, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dt)) return ts_fail("%s: tensor '%s': missing dtype", st->label, name);
    /* GGUF's block types are dtypes too, but never a safetensors tensor's (no element size) */
    if (dtype_from_name(dt->valuestring, &e->type) != 0 || dtype_size(e->type) == 0)
        return ts_fail("%s: tensor '%s': unsupported dtype '%s'", st->label, name, dt->valuestring);
    if (!cJSON_IsArray(shape)) return ts_fail("%s: tensor '%s': missing shape", st->label, name);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > TENSOR_MAX_DIMS)
        return ts_fail("%s: tensor '%s': %d dimensions (at most %d supported)", st->label, name, ndim, TENSOR_MAX_DIMS);
    uint64_t numel = 1;
    int d = 0;
    const cJSON *dim;
    cJSON_ArrayForEach(dim, shape) {
        double v = cJSON_IsNumber(dim) ? dim->valuedouble : -1;
        if (v < 0 || v > 9.0e15 || v != (double)(int64_t)v)
            return ts_fail("%s: tensor '%s': shape entry %d is not a non-negative integer", st->label, name, d);
        e->shape[d++] = (int64_t)v;
        if (v != 0 && numel > UINT64_MAX / (uint64_t)v)
            return ts_fail("%s: tensor '%s': shape overflows", st->label, name);
        numel *= (uint64_t)v;
    }
    e->ndim = ndim;
    if (ndim == 0) { e->ndim = 1; e->shape[0] = 1; }   /* a scalar */
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return ts_fail("%s: tensor '%s': data_offsets must be [begin, end]", st->label, name);
    const cJSON *jb = cJSON_GetArrayItem(offs, 0), *je = cJSON_GetArrayItem(offs, 1);
    if (!cJSON_IsNumber(jb) || !cJSON_IsNumber(je))
        return ts_fail("%s: tensor '%s': data_offsets are not numbers", st->label, name);
    double b = jb->valuedouble, en = je->valuedouble;
    /* range first: converting an out-of-range double to an integer is undefined */
    if (!(b >= 0 && en >= b && en < 9.0e15) || b != (double)(uint64_t)b || en != (double)(uint64_t)en)
        return ts_fail("%s: tensor '%s': bad data_offsets [%g, %g]", st->label, name, b, en);
    e->begin = (uint64_t)b;
    e->end = (uint64_t)en;
    if (e->end > st->data_size)
        return ts_fail("%s: tensor '%s': data offsets [%llu, %llu) run past the end of the data (%llu bytes)",
                       st->label, name, (unsigned long long)e->begin, (unsigned long long)e->end,
                       (unsigned long long)st->data_size);
    uint64_t es = dtype_size(e->type);
    if (numel > UINT64_MAX / es || numel * es != e->end - e->begin)
        return ts_fail("%s: tensor '%s': %llu bytes of data, but %s x %llu elements needs %llu",
                       st->label, name, (unsigned long long)(e->end - e->begin), dt->valuestring,
                       (unsigned long long)numel, (unsigned long long)(numel * es));
    e->name = ts_strdup(name);
    return 0;
}

static int parse_header(safetensors *st) {
    if (st->size < 8) return ts_fail("%s: file is %zu bytes, too short for a safetensors header", st->label, st->size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | st->base[i];
    if (n > st->size - 8)
        return ts_fail("%s: header length %llu exceeds the file size (%zu bytes): truncated or not safetensors",
                       st->label, (unsigned long long)n, st->size);
    if (n > MAX_HEADER_BYTES)
        return ts_fail("%s: header length %llu is over the %u-byte limit", st->label, (unsigned long long)n, MAX_HEADER_BYTES);
    st->data = st->base + 8 + n;
    st->data_size = st->size - 8 - n;

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)st->base + 8, (size_t)n, &end, false);
    if (!root) return ts_fail("%s: header is not valid JSON (near byte %zu)", st->label,
                              end ? (size_t)(end - (const char *)st->base) : (size_t)8);
    int rc = -1;
    if (!cJSON_IsObject(root)) { ts_fail("%s: header is not a JSON object", st->label); goto done; }
    int total = cJSON_GetArraySize(root);
    st->entries = ts_calloc((size_t)total + 1, sizeof(entry));
    const cJSON *item;
    cJSON_ArrayForEach(item, root) {
        if (strcmp(item->string, "__metadata__") == 0) {
            if (parse_metadata(st, item) != 0) goto done;
            continue;
        }
        if (parse_entry(st, item, &st->entries[st->count]) != 0) goto done;
        st->count++;
    }
    qsort(st->entries, (size_t)st->count, sizeof(entry), compare_begin);
    for (int i = 1; i < st->count; i++)
        if (st->entries[i].begin < st->entries[i - 1].end) {
            ts_fail("%s: tensors '%s' and '%s' overlap in the data section", st->label,
                    st->entries[i - 1].name, st->entries[i].name);
            goto done;
        }
    st->by_name = ts_malloc(sizeof(int) * ((size_t)st->count + 1));
    for (int i = 0; i < st->count; i++) st->by_name[i] = i;
    qsort_r(st->by_name, (size_t)st->count, sizeof(int), compare_name, st);
    for (int i = 1; i < st->count; i++)
        if (strcmp(st->entries[st->by_name[i]].name, st->entries[st->by_name[i - 1]].name) == 0) {
            ts_fail("%s: tensor '%s' appears twice", st->label, st->entries[st->by_name[i]].name);
            goto done;
        }
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

static safetensors *finish_open(safetensors *st) {
    if (parse_header(st) != 0) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", ts_last_error());
        safetensors_close(&st);
        ts_fail("%s", msg);
        return NULL;
    }
    return st;
}

safetensors *safetensors_open(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) { ts_fail("%s: cannot open: %s", path, strerror(errno)); return NULL; }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        ts_fail("%s: not a regular file", path);
        return NULL;
    }
    safetensors *st = ts_calloc(1, sizeof *st);
    st->label = ts_strdup(path);
    st->size = (size_t)sb.st_size;
    if (st->size > 0) {
        void *p = mmap(NULL, st->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            free(st->label);
            free(st);
            ts_fail("%s: cannot map: %s", path, strerror(errno));
            return NULL;
        }
        st->base = p;
        st->mapped = true;
    }
    close(fd);
    return finish_open(st);
}

safetensors *safetensors_open_buffer(const void *data, size_t size, const char *label) {
    safetensors *st = ts_calloc(1, sizeof *st);
    st->label = ts_strdup(label ? label : "<buffer>");
    st->base = data;
    st->size = size;
    return finish_open(st);
}

void safetensors_close(safetensors **self) {
    if (!self || !*self) return;
    safetensors *st = *self;
    if (st->mapped) munmap((void *)st->base, st->size);
    for (int i = 0; i < st->count; i++) free(st->entries[i].name);
    free(st->entries);
    free(st->by_name);
    for (int i = 0; i < st->meta_count; i++) { free(st->meta_keys[i]); free(st->meta_values[i]); }
    free(st->meta_keys);
    free(st->meta_values);
    free(st->label);
    free(st);
    *self = NULL;
}

const char *safetensors_path(const safetensors *st) { return st->label; }
int safetensors_count(const safetensors *st) { return st->count; }
const char *safetensors_name_at(const safetensors *st, int i) {
    return i >= 0 && i < st->count ? st->entries[i].name : NULL;
}

static const entry *find_entry(const safetensors *st, const char *name) {
    int lo = 0, hi = st->count - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const entry *e = &st->entries[st->by_name[mid]];
        int c = strcmp(name, e->name);
        if (c == 0) return e;
        if (c < 0) hi = mid - 1; else lo = mid + 1;
    }
    return NULL;
}

bool safetensors_has(const safetensors *st, const char *name) { return find_entry(st, name) != NULL; }

int safetensors_get(const safetensors *st, const char *name, tensor *out) {
    const entry *e = find_entry(st, name);
    if (!e) return ts_fail("%s: no tensor '%s'", st->label, name);
    *out = tensor_view((void *)(st->data + e->begin), e->type, e->ndim, e->shape);
    return 0;
}

int safetensors_get_shaped(const safetensors *st, const char *name, tensor *out, int ndim, const int64_t *shape) {
    if (safetensors_get(st, name, out) != 0) return -1;
    bool ok = out->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = out->shape[d] == shape[d];
    if (!ok) {
        tensor want = tensor_view(NULL, DT_F32, ndim, shape);
        char a[96], b[96];
        return ts_fail("%s: tensor '%s' has shape %s, expected %s", st->label, name,
                       tensor_shape_str(out, a, sizeof a), tensor_shape_str(&want, b, sizeof b));
    }
    return 0;
}

int safetensors_metadata_count(const safetensors *st) { return st->meta_count; }
const char *safetensors_metadata_key(const safetensors *st, int i) {
    return i >= 0 && i < st->meta_count ? st->meta_keys[i] : NULL;
}
const char *safetensors_metadata_get(const safetensors *st, const char *key) {
    for (int i = 0; i < st->meta_count; i++)
        if (strcmp(st->meta_keys[i], key) == 0) return st->meta_values[i];
    return NULL;
}

/* ---- writer ------------------------------------------------------------ */

struct safetensors_writer {
    char *path;
    cJSON *header;
    cJSON *metadata;
    uint8_t **blobs;
    size_t *blob_sizes;
    int count;
    uint64_t offset;
};

safetensors_writer *safetensors_writer_new(const char *path) {
    safetensors_writer *w = ts_calloc(1, sizeof *w);
    w->path = ts_strdup(path);
    w->header = cJSON_CreateObject();
    return w;
}

int safetensors_writer_add(safetensors_writer *w, const char *name, const tensor *t) {
    if (cJSON_GetObjectItemCaseSensitive(w->header, name))
        return ts_fail("%s: tensor '%s' added twice", w->path, name);
    tensor c = tensor_new(t->type, t->ndim, t->shape);
    if (tensor_is_contiguous(t)) memcpy(c.data, t->data, tensor_nbytes(t));
    else tensor_copy(&c, t);
    size_t bytes = tensor_nbytes(&c);
    w->blobs = ts_realloc(w->blobs, sizeof(uint8_t *) * (size_t)(w->count + 1));
    w->blob_sizes = ts_realloc(w->blob_sizes, sizeof(size_t) * (size_t)(w->count + 1));
    w->blobs[w->count] = c.data;   /* ownership moves to the writer */
    w->blob_sizes[w->count] = bytes;
    w->count++;

    cJSON *item = cJSON_CreateObject();
    cJSON_AddStringToObject(item, "dtype", dtype_name(t->type));
    cJSON *shape = cJSON_AddArrayToObject(item, "shape");
    for (int d = 0; d < t->ndim; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
    cJSON *offs = cJSON_AddArrayToObject(item, "data_offsets");
    cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)w->offset));
    cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(w->offset + bytes)));
    cJSON_AddItemToObject(w->header, name, item);
    w->offset += bytes;
    return 0;
}

int safetensors_writer_metadata(safetensors_writer *w, const char *key, const char *value) {
    if (!w->metadata) {
        w->metadata = cJSON_CreateObject();
        cJSON_AddItemToObject(w->header, "__metadata__", w->metadata);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(w->metadata, key);
    cJSON_AddStringToObject(w->metadata, key, value);
    return 0;
}

void safetensors_writer_destroy(safetensors_writer **self) {
    if (!self || !*self) return;
    safetensors_writer *w = *self;
    for (int i = 0; i < w->count; i++) free(w->blobs[i]);
    free(w->blobs);
    free(w->blob_sizes);
    cJSON_Delete(w->header);
    free(w->path);
    free(w);
    *self = NULL;
}

int safetensors_writer_finish(safetensors_writer **self) {
    safetensors_writer *w = *self;
    char *json = cJSON_PrintUnformatted(w->header);
    size_t n = strlen(json);
    size_t padded = (n + 7) & ~(size_t)7;   /* keeps the data 8-byte aligned */
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", w->path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    int rc = -1;
    if (!f) { ts_fail("%s: cannot create: %s", tmp, strerror(errno)); goto done; }
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    fwrite(len, 1, 8, f);
    fwrite(json, 1, n, f);
    for (size_t i = n; i < padded; i++) fputc(' ', f);
    for (int i = 0; i < w->count; i++) fwrite(w->blobs[i], 1, w->blob_sizes[i], f);
    if (fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0) {
        fclose(f);
        unlink(tmp);
        ts_fail("%s: write failed: %s", tmp, strerror(errno));
        goto done;
    }
    fclose(f);
    if (rename(tmp, w->path) != 0) { unlink(tmp); ts_fail("%s: cannot rename into place", w->path); goto done; }
    rc = 0;
done:
    free(json);
    safetensors_writer_destroy(self);
    return rc;
}
