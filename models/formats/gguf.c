/* gguf.c — memory-mapped GGUF v2/v3 reader with every field bounds-checked (see gguf.h).
 * Hand-written: the only other reader is ggml's, which lives inside llama.cpp. */
#include "models/formats/gguf.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Block sizes of the ggml types, so a file holding types we do not compute with still
 * opens (and its other tensors stay usable). From ggml.c's type_traits. */
static const struct { const char *name; int values; int bytes; } ggml_types[] = {
    [0] = {"F32", 1, 4},        [1] = {"F16", 1, 2},       [2] = {"Q4_0", 32, 18},
    [3] = {"Q4_1", 32, 20},     [6] = {"Q5_0", 32, 22},    [7] = {"Q5_1", 32, 24},
    [8] = {"Q8_0", 32, 34},     [9] = {"Q8_1", 32, 40},    [10] = {"Q2_K", 256, 84},
    [11] = {"Q3_K", 256, 110},  [12] = {"Q4_K", 256, 144}, [13] = {"Q5_K", 256, 176},
    [14] = {"Q6_K", 256, 210},  [15] = {"Q8_K", 256, 292}, [16] = {"IQ2_XXS", 256, 66},
    [17] = {"IQ2_XS", 256, 74}, [18] = {"IQ3_XXS", 256, 98}, [19] = {"IQ1_S", 256, 50},
    [20] = {"IQ4_NL", 32, 18},  [21] = {"IQ3_S", 256, 110}, [22] = {"IQ2_S", 256, 82},
    [23] = {"IQ4_XS", 256, 136}, [24] = {"I8", 1, 1},      [25] = {"I16", 1, 2},
    [26] = {"I32", 1, 4},       [27] = {"I64", 1, 8},      [28] = {"F64", 1, 8},
    [29] = {"IQ1_M", 256, 56},  [30] = {"BF16", 1, 2},     [34] = {"TQ1_0", 256, 54},
    [35] = {"TQ2_0", 256, 66},  [39] = {"MXFP4", 32, 17},
};
#define GGML_TYPE_SLOTS ((uint32_t)(sizeof ggml_types / sizeof ggml_types[0]))

static const int value_sizes[GGUF_TYPE_COUNT] = {
    [GGUF_U8] = 1, [GGUF_I8] = 1, [GGUF_U16] = 2, [GGUF_I16] = 2, [GGUF_U32] = 4,
    [GGUF_I32] = 4, [GGUF_F32] = 4, [GGUF_BOOL] = 1, [GGUF_U64] = 8, [GGUF_I64] = 8,
    [GGUF_F64] = 8, /* strings and arrays are variable */
};

typedef struct {
    gguf_str key;
    gguf_type type;
    const uint8_t *value;        /* scalar bytes, or the first array element */
    gguf_type elem_type;         /* arrays */
    uint64_t count;              /* arrays */
    uint64_t *string_offsets;    /* string arrays: offset of element i from value */
} kv_entry;

struct gguf {
    char *path;
    const uint8_t *base;
    size_t size;
    bool mapped;
    uint32_t version;
    int n_kv, n_tensors;
    kv_entry *kv;
    gguf_tensor *tensors;
    int *by_name;                /* tensor indices sorted by name, for lookup */
};

/* ---- a cursor that never reads past the end ---- */

typedef struct { const uint8_t *start, *p, *end; const char *label; } cursor;

static int take(cursor *c, size_t n, const void **out, const char *what) {
    if ((size_t)(c->end - c->p) < n)
        return ts_fail("%s: %s needs %zu bytes at offset %zu but the file ends there",
                       c->label, what, n, (size_t)(c->p - c->start));
    *out = c->p;
    c->p += n;
    return 0;
}

static int read_u32(cursor *c, uint32_t *v, const char *what) {
    const void *p = NULL;
    if (take(c, 4, &p, what)) return -1;
    memcpy(v, p, 4);
    return 0;
}

static int read_u64(cursor *c, uint64_t *v, const char *what) {
    const void *p = NULL;
    if (take(c, 8, &p, what)) return -1;
    memcpy(v, p, 8);
    return 0;
}

static int read_str(cursor *c, gguf_str *s, const char *what) {
    uint64_t len;
    const void *p = NULL;
    if (read_u64(c, &len, what)) return -1;
    if (len > (uint64_t)(c->end - c->p))
        return ts_fail("%s: %s: string length %llu runs past the end of the file",
                       c->label, what, (unsigned long long)len);
    if (take(c, (size_t)len, &p, what)) return -1;
    s->ptr = p;
    s->len = len;
    return 0;
}

static const char *type_str(uint32_t t) {
    static const char *names[GGUF_TYPE_COUNT] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                                 "bool", "string", "array", "u64", "i64", "f64"};
    return t < GGUF_TYPE_COUNT ? names[t] : "unknown";
}

/* ---- parsing ---- */

static int parse_kv(gguf *g, cursor *c, kv_entry *e, int index) {
    char what[64];
    snprintf(what, sizeof what, "key #%d", index);
    if (read_str(c, &e->key, what)) return -1;
    if (memchr(e->key.ptr, 0, (size_t)e->key.len)) /* could never be looked up by name */
        return ts_fail("%s: %s: the key's name contains a NUL byte", g->path, what);
    uint32_t t;
    char key[96];
    snprintf(key, sizeof key, "key '%.*s'", (int)(e->key.len > 80 ? 80 : e->key.len), e->key.ptr);
    if (read_u32(c, &t, key)) return -1;
    if (t >= GGUF_TYPE_COUNT) return ts_fail("%s: %s: unknown value type %u", g->path, key, t);
    e->type = (gguf_type)t;
    const void *p = NULL;
    if (t == GGUF_STRING) {
        gguf_str s;
        e->value = c->p;
        return read_str(c, &s, key);
    }
    if (t != GGUF_ARRAY) {
        if (take(c, (size_t)value_sizes[t], &p, key)) return -1;
        e->value = p;
        return 0;
    }
    uint32_t et;
    if (read_u32(c, &et, key) || read_u64(c, &e->count, key)) return -1;
    if (et >= GGUF_TYPE_COUNT) return ts_fail("%s: %s: unknown array element type %u", g->path, key, et);
    if (et == GGUF_ARRAY) return ts_fail("%s: %s: nested arrays are not supported", g->path, key);
    e->elem_type = (gguf_type)et;
    e->value = c->p;
    size_t left = (size_t)(c->end - c->p);
    if (et != GGUF_STRING) {
        uint64_t es = (uint64_t)value_sizes[et];
        if (e->count > left / es)
            return ts_fail("%s: %s: array of %llu %s runs past the end of the file", g->path, key,
                           (unsigned long long)e->count, type_str(et));
        return take(c, (size_t)(e->count * es), &p, key);
    }
    if (e->count > left / 8) /* every string takes at least its 8-byte length */
        return ts_fail("%s: %s: array of %llu strings runs past the end of the file", g->path, key,
                       (unsigned long long)e->count);
    e->string_offsets = ts_malloc((size_t)(e->count ? e->count : 1) * sizeof(uint64_t));
    for (uint64_t i = 0; i < e->count; i++) {
        gguf_str s;
        e->string_offsets[i] = (uint64_t)(c->p - e->value);
        if (read_str(c, &s, key)) return -1;
    }
    return 0;
}

/* qsort_r's context: expander and render workers are threads that open files at once */
static int compare_names(const void *a, const void *b, void *context) {
    const gguf *g = context;
    const gguf_str *x = &g->tensors[*(const int *)a].name, *y = &g->tensors[*(const int *)b].name;
    size_t n = x->len < y->len ? x->len : y->len;
    int r = memcmp(x->ptr, y->ptr, n);
    return r ? r : (x->len > y->len) - (x->len < y->len);
}

typedef struct { uint64_t begin, end; int index; } extent;
static int compare_extents(const void *a, const void *b) {
    const extent *x = a, *y = b;
    return (x->begin > y->begin) - (x->begin < y->begin);
}

static int parse_tensor(gguf *g, cursor *c, gguf_tensor *t, uint64_t *offset, int index) {
    char what[64];
    snprintf(what, sizeof what, "tensor #%d", index);
    if (read_str(c, &t->name, what)) return -1;
    char name[140];
    snprintf(name, sizeof name, "tensor '%.*s'", (int)(t->name.len > 120 ? 120 : t->name.len), t->name.ptr);
    uint32_t nd;
    if (read_u32(c, &nd, name)) return -1;
    if (nd < 1 || nd > 4) return ts_fail("%s: %s: %u dimensions (1 to 4 allowed)", g->path, name, nd);
    t->ndim = (int)nd;
    uint64_t ne[4], numel = 1;
    for (uint32_t d = 0; d < nd; d++) {
        if (read_u64(c, &ne[d], name)) return -1;
        if (ne[d] == 0 || ne[d] > ((uint64_t)1 << 40) || numel > ((uint64_t)1 << 42) / ne[d])
            return ts_fail("%s: %s: dimension %u of size %llu is zero or too large", g->path, name, d,
                           (unsigned long long)ne[d]);
        numel *= ne[d];
        t->shape[nd - 1 - d] = (int64_t)ne[d];
    }
    if (read_u32(c, &t->ggml_type, name) || read_u64(c, offset, name)) return -1;
    if (t->ggml_type >= GGML_TYPE_SLOTS || !ggml_types[t->ggml_type].name)
        return ts_fail("%s: %s: unknown ggml type %u", g->path, name, t->ggml_type);
    t->type_name = ggml_types[t->ggml_type].name;
    uint64_t bv = (uint64_t)ggml_types[t->ggml_type].values;
    if (ne[0] % bv)
        return ts_fail("%s: %s: row length %llu is not a multiple of the %s block size %llu", g->path, name,
                       (unsigned long long)ne[0], t->type_name, (unsigned long long)bv);
    t->nbytes = (size_t)(numel / bv * (uint64_t)ggml_types[t->ggml_type].bytes);
    return 0;
}

static int parse(gguf *g) {
    cursor c = {g->base, g->base, g->base + g->size, g->path};
    const void *magic = NULL;
    if (take(&c, 4, &magic, "magic")) return -1;
    if (memcmp(magic, "GGUF", 4) != 0) return ts_fail("%s: not a GGUF file (bad magic)", g->path);
    if (read_u32(&c, &g->version, "version")) return -1;
    if (g->version != 2 && g->version != 3)
        return ts_fail("%s: GGUF version %u is not supported (2 and 3 are)", g->path, g->version);
    uint64_t nt, nk;
    if (read_u64(&c, &nt, "tensor count") || read_u64(&c, &nk, "key count")) return -1;
    size_t left = (size_t)(c.end - c.p);
    /* a key takes at least 12 bytes, a tensor info at least 32: bounds the allocation */
    if (nk > left / 12 || nk > INT32_MAX)
        return ts_fail("%s: key count %llu cannot fit in the file", g->path, (unsigned long long)nk);
    if (nt > left / 32 || nt > INT32_MAX)
        return ts_fail("%s: tensor count %llu cannot fit in the file", g->path, (unsigned long long)nt);
    g->kv = ts_calloc(nk ? nk : 1, sizeof(kv_entry));
    g->n_kv = (int)nk;
    for (int i = 0; i < g->n_kv; i++) {
        if (parse_kv(g, &c, &g->kv[i], i)) return -1;
        for (int j = 0; j < i; j++)
            if (g->kv[j].key.len == g->kv[i].key.len && memcmp(g->kv[j].key.ptr, g->kv[i].key.ptr, g->kv[i].key.len) == 0)
                return ts_fail("%s: key '%.*s' appears twice", g->path, (int)g->kv[i].key.len, g->kv[i].key.ptr);
    }
    uint64_t alignment = 32;
    int ai = gguf_find_key(g, "general.alignment");
    if (ai >= 0) {
        if (g->kv[ai].type != GGUF_U32) return ts_fail("%s: key 'general.alignment' is %s, not u32", g->path, type_str(g->kv[ai].type));
        uint32_t a;
        memcpy(&a, g->kv[ai].value, 4);
        if (a == 0 || (a & (a - 1)))
            return ts_fail("%s: key 'general.alignment' is %u, not a power of two", g->path, a);
        alignment = a;
    }
    g->tensors = ts_calloc(nt ? nt : 1, sizeof(gguf_tensor));
    g->n_tensors = (int)nt;
    uint64_t *offsets = ts_calloc(nt ? nt : 1, sizeof(uint64_t));
    int rc = -1;
    for (int i = 0; i < g->n_tensors; i++)
        if (parse_tensor(g, &c, &g->tensors[i], &offsets[i], i)) goto done;
    uint64_t header_end = (uint64_t)(c.p - g->base);
    uint64_t data_start = (header_end + alignment - 1) / alignment * alignment;
    if (g->n_tensors > 0 && data_start > g->size) {
        ts_fail("%s: the data section would start at %llu, past the end of the file (%zu bytes)", g->path,
                (unsigned long long)data_start, g->size);
        goto done;
    }
    uint64_t data_size = g->size - (data_start < g->size ? data_start : g->size);
    extent *ext = ts_calloc(nt ? nt : 1, sizeof(extent));
    for (int i = 0; i < g->n_tensors; i++) {
        gguf_tensor *t = &g->tensors[i];
        if (offsets[i] % alignment) {
            ts_fail("%s: tensor '%.*s': offset %llu is not a multiple of the alignment %llu", g->path,
                    (int)t->name.len, t->name.ptr, (unsigned long long)offsets[i], (unsigned long long)alignment);
            free(ext);
            goto done;
        }
        if (offsets[i] > data_size || t->nbytes > data_size - offsets[i]) {
            ts_fail("%s: tensor '%.*s': data [%llu, +%zu) runs past the end of the data section (%llu bytes)",
                    g->path, (int)t->name.len, t->name.ptr, (unsigned long long)offsets[i], t->nbytes,
                    (unsigned long long)data_size);
            free(ext);
            goto done;
        }
        t->data = g->base + data_start + offsets[i];
        ext[i] = (extent){offsets[i], offsets[i] + t->nbytes, i};
    }
    qsort(ext, (size_t)g->n_tensors, sizeof(extent), compare_extents);
    for (int i = 1; i < g->n_tensors; i++)
        if (ext[i].begin < ext[i - 1].end) {
            const gguf_tensor *a = &g->tensors[ext[i - 1].index], *b = &g->tensors[ext[i].index];
            ts_fail("%s: tensor '%.*s' overlaps tensor '%.*s'", g->path, (int)b->name.len, b->name.ptr,
                    (int)a->name.len, a->name.ptr);
            free(ext);
            goto done;
        }
    free(ext);
    g->by_name = ts_malloc((size_t)(nt ? nt : 1) * sizeof(int));
    for (int i = 0; i < g->n_tensors; i++) g->by_name[i] = i;
    qsort_r(g->by_name, (size_t)g->n_tensors, sizeof(int), compare_names, g);
    for (int i = 1; i < g->n_tensors; i++)
        if (compare_names(&g->by_name[i - 1], &g->by_name[i], g) == 0) {
            const gguf_tensor *t = &g->tensors[g->by_name[i]];
            ts_fail("%s: tensor '%.*s' appears twice", g->path, (int)t->name.len, t->name.ptr);
            goto done;
        }
    rc = 0;
done:
    free(offsets);
    return rc;
}

static gguf *finish_open(gguf *g) {
    if (parse(g) == 0) return g;
    gguf_close(&g);
    return NULL;
}

gguf *gguf_open_buffer(const void *data, size_t size, const char *label) {
    gguf *g = ts_calloc(1, sizeof *g);
    g->path = ts_strdup(label ? label : "<buffer>");
    g->base = data;
    g->size = size;
    return finish_open(g);
}

gguf *gguf_open(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) { ts_fail("%s: cannot open", path); return NULL; }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) { close(fd); ts_fail("%s: not a regular file", path); return NULL; }
    if (st.st_size < 24) { close(fd); ts_fail("%s: %lld bytes is too small for a GGUF file", path, (long long)st.st_size); return NULL; }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) { ts_fail("%s: cannot memory-map", path); return NULL; }
    gguf *g = ts_calloc(1, sizeof *g);
    g->path = ts_strdup(path);
    g->base = m;
    g->size = (size_t)st.st_size;
    g->mapped = true;
    return finish_open(g);
}

void gguf_close(gguf **self) {
    gguf *g = *self;
    if (!g) return;
    if (g->mapped) munmap((void *)g->base, g->size);
    for (int i = 0; i < g->n_kv && g->kv; i++) free(g->kv[i].string_offsets);
    free(g->kv);
    free(g->tensors);
    free(g->by_name);
    free(g->path);
    free(g);
    *self = NULL;
}

const char *gguf_path(const gguf *self) { return self->path; }
uint32_t gguf_version(const gguf *self) { return self->version; }

/* ---- metadata ---- */

bool gguf_str_eq(gguf_str s, const char *c) { return strlen(c) == s.len && memcmp(s.ptr, c, s.len) == 0; }

char *gguf_strdup(gguf_str s) {
    char *r = ts_malloc((size_t)s.len + 1);
    memcpy(r, s.ptr, (size_t)s.len);
    r[s.len] = 0;
    return r;
}

int gguf_kv_count(const gguf *self) { return self->n_kv; }
gguf_str gguf_kv_key(const gguf *self, int i) { return self->kv[i].key; }
gguf_type gguf_kv_type(const gguf *self, int i) { return self->kv[i].type; }

int gguf_find_key(const gguf *self, const char *key) {
    for (int i = 0; i < self->n_kv; i++)
        if (gguf_str_eq(self->kv[i].key, key)) return i;
    return -1;
}

/* Reads one numeric value of type t at p as int64 (false if not an integer type or out of range). */
static bool value_int(gguf_type t, const uint8_t *p, int64_t *out) {
    switch (t) {
    case GGUF_U8: *out = *p; return true;
    case GGUF_I8: *out = (int8_t)*p; return true;
    case GGUF_BOOL: *out = *p != 0; return true;
    case GGUF_U16: { uint16_t v; memcpy(&v, p, 2); *out = v; return true; }
    case GGUF_I16: { int16_t v; memcpy(&v, p, 2); *out = v; return true; }
    case GGUF_U32: { uint32_t v; memcpy(&v, p, 4); *out = v; return true; }
    case GGUF_I32: { int32_t v; memcpy(&v, p, 4); *out = v; return true; }
    case GGUF_I64: { int64_t v; memcpy(&v, p, 8); *out = v; return true; }
    case GGUF_U64: { uint64_t v; memcpy(&v, p, 8); if (v > INT64_MAX) return false; *out = (int64_t)v; return true; }
    default: return false;
    }
}

static bool value_float(gguf_type t, const uint8_t *p, double *out) {
    if (t == GGUF_F32) { float v; memcpy(&v, p, 4); *out = v; return true; }
    if (t == GGUF_F64) { memcpy(out, p, 8); return true; }
    int64_t i;
    if (value_int(t, p, &i)) { *out = (double)i; return true; }
    return false;
}

static const kv_entry *need_key(const gguf *self, const char *key) {
    int i = gguf_find_key(self, key);
    if (i < 0) { ts_fail("%s: no key '%s'", self->path, key); return NULL; }
    return &self->kv[i];
}

int gguf_get_int(const gguf *self, const char *key, int64_t *out) {
    const kv_entry *e = need_key(self, key);
    if (!e) return -1;
    if (e->type == GGUF_BOOL || !value_int(e->type, e->value, out))
        return ts_fail("%s: key '%s' is %s, not an integer that fits int64", self->path, key, type_str(e->type));
    return 0;
}

int gguf_get_float(const gguf *self, const char *key, double *out) {
    const kv_entry *e = need_key(self, key);
    if (!e) return -1;
    if (e->type == GGUF_BOOL || !value_float(e->type, e->value, out))
        return ts_fail("%s: key '%s' is %s, not a number", self->path, key, type_str(e->type));
    return 0;
}

int gguf_get_bool(const gguf *self, const char *key, bool *out) {
    const kv_entry *e = need_key(self, key);
    if (!e) return -1;
    if (e->type != GGUF_BOOL) return ts_fail("%s: key '%s' is %s, not bool", self->path, key, type_str(e->type));
    *out = *e->value != 0;
    return 0;
}

int gguf_get_string(const gguf *self, const char *key, gguf_str *out) {
    const kv_entry *e = need_key(self, key);
    if (!e) return -1;
    if (e->type != GGUF_STRING) return ts_fail("%s: key '%s' is %s, not a string", self->path, key, type_str(e->type));
    memcpy(&out->len, e->value, 8);
    out->ptr = (const char *)e->value + 8;
    return 0;
}

int gguf_get_int_or(const gguf *self, const char *key, int64_t dflt, int64_t *out) {
    if (gguf_find_key(self, key) < 0) { *out = dflt; return 0; }
    return gguf_get_int(self, key, out);
}

int gguf_get_float_or(const gguf *self, const char *key, double dflt, double *out) {
    if (gguf_find_key(self, key) < 0) { *out = dflt; return 0; }
    return gguf_get_float(self, key, out);
}

static const kv_entry *need_array(const gguf *self, const char *key) {
    const kv_entry *e = need_key(self, key);
    if (e && e->type != GGUF_ARRAY) { ts_fail("%s: key '%s' is %s, not an array", self->path, key, type_str(e->type)); return NULL; }
    return e;
}

int gguf_get_array(const gguf *self, const char *key, gguf_type *elem_type, uint64_t *count) {
    const kv_entry *e = need_array(self, key);
    if (!e) return -1;
    *elem_type = e->elem_type;
    *count = e->count;
    return 0;
}

static const kv_entry *need_element(const gguf *self, const char *key, uint64_t i) {
    const kv_entry *e = need_array(self, key);
    if (e && i >= e->count) {
        ts_fail("%s: key '%s': index %llu past the array's %llu elements", self->path, key,
                (unsigned long long)i, (unsigned long long)e->count);
        return NULL;
    }
    return e;
}

int gguf_array_int(const gguf *self, const char *key, uint64_t i, int64_t *out) {
    const kv_entry *e = need_element(self, key, i);
    if (!e) return -1;
    if (e->elem_type == GGUF_STRING || !value_int(e->elem_type, e->value + i * (uint64_t)value_sizes[e->elem_type], out))
        return ts_fail("%s: key '%s': array of %s, not integers", self->path, key, type_str(e->elem_type));
    return 0;
}

int gguf_array_float(const gguf *self, const char *key, uint64_t i, double *out) {
    const kv_entry *e = need_element(self, key, i);
    if (!e) return -1;
    if (e->elem_type == GGUF_STRING || !value_float(e->elem_type, e->value + i * (uint64_t)value_sizes[e->elem_type], out))
        return ts_fail("%s: key '%s': array of %s, not numbers", self->path, key, type_str(e->elem_type));
    return 0;
}

int gguf_array_string(const gguf *self, const char *key, uint64_t i, gguf_str *out) {
    const kv_entry *e = need_element(self, key, i);
    if (!e) return -1;
    if (e->elem_type != GGUF_STRING) return ts_fail("%s: key '%s': array of %s, not strings", self->path, key, type_str(e->elem_type));
    const uint8_t *p = e->value + e->string_offsets[i];
    memcpy(&out->len, p, 8);
    out->ptr = (const char *)p + 8;
    return 0;
}

/* ---- tensors ---- */

int gguf_tensor_count(const gguf *self) { return self->n_tensors; }
const gguf_tensor *gguf_tensor_at(const gguf *self, int i) { return &self->tensors[i]; }

const gguf_tensor *gguf_find_tensor(const gguf *self, const char *name) {
    size_t len = strlen(name);
    int lo = 0, hi = self->n_tensors - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const gguf_str *s = &self->tensors[self->by_name[mid]].name;
        size_t n = s->len < len ? (size_t)s->len : len;
        int r = memcmp(s->ptr, name, n);
        if (r == 0) r = (s->len > len) - (s->len < len);
        if (r == 0) return &self->tensors[self->by_name[mid]];
        if (r < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

int gguf_tensor_dtype(const gguf *self, const gguf_tensor *t, dtype *out) {
    switch (t->ggml_type) {
    case GGML_F32: *out = DT_F32; return 0;
    case GGML_F16: *out = DT_F16; return 0;
    case GGML_BF16: *out = DT_BF16; return 0;
    case GGML_Q8_0: *out = DT_Q8_0; return 0;
    case GGML_Q4_0: *out = DT_Q4_0; return 0;
    case GGML_Q4_K: *out = DT_Q4_K; return 0;
    case GGML_Q6_K: *out = DT_Q6_K; return 0;
    case GGML_Q4_1: *out = DT_Q4_1; return 0;
    case GGML_Q5_0: *out = DT_Q5_0; return 0;
    case GGML_Q5_1: *out = DT_Q5_1; return 0;
    case GGML_Q2_K: *out = DT_Q2_K; return 0;
    case GGML_Q3_K: *out = DT_Q3_K; return 0;
    case GGML_Q5_K: *out = DT_Q5_K; return 0;
    case GGML_IQ4_NL: *out = DT_IQ4_NL; return 0;
    case GGML_IQ4_XS: *out = DT_IQ4_XS; return 0;
    default:
        return ts_fail("%s: tensor '%.*s' is %s; supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, "
                       "Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS", self->path,
                       (int)t->name.len, t->name.ptr, t->type_name);
    }
}
