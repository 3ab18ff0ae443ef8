/*
 * weight_binder.c — names to checked tensors, whole or sharded, from a weight file, random,
 * or counted (weight_binder.h).
 */
#include "models/formats/weight_binder.h"

#include "models/formats/gguf.h"
#include "models/formats/model_files.h"
#include "models/formats/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { SOURCE_SAFETENSORS, SOURCE_GGUF, SOURCE_RANDOM, SOURCE_COUNTING } source_kind;

struct weight_binder {
    source_kind kind;
    char *path;
    safetensors **shards;            /* SOURCE_SAFETENSORS: one file, or a folder's shards */
    int n_shards;
    gguf *g;                         /* SOURCE_GGUF */
    dtype random_type;               /* SOURCE_RANDOM */
    uint64_t rng;
    void **owned;                    /* column shards and random tensors */
    int n_owned, cap_owned;
    size_t bytes;
    int64_t params;
};

static weight_binder *binder_new(source_kind kind, const char *path) {
    weight_binder *b = ts_calloc(1, sizeof *b);
    b->kind = kind;
    b->path = ts_strdup(path);
    return b;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

weight_binder *weight_binder_open(const char *path) {
    if (!path || !*path) { ts_fail("weight_binder: no weight file given"); return NULL; }
    if (model_is_folder(path)) {
        weight_binder *b = binder_new(SOURCE_SAFETENSORS, path);
        if (safetensors_open_folder(path, &b->shards, &b->n_shards)) weight_binder_destroy(&b);
        return b;
    }
    char magic[4] = {0};
    FILE *f = fopen(path, "rb");
    bool gguf_magic = f && fread(magic, 1, 4, f) == 4 && memcmp(magic, "GGUF", 4) == 0;
    if (f) fclose(f);
    if (gguf_magic || ends_with(path, ".gguf")) {
        weight_binder *b = binder_new(SOURCE_GGUF, path);
        b->g = gguf_open(path);
        if (!b->g) weight_binder_destroy(&b);
        return b;
    }
    safetensors *st = safetensors_open(path);
    if (!st) return NULL;
    weight_binder *b = binder_new(SOURCE_SAFETENSORS, path);
    b->shards = ts_malloc(sizeof *b->shards);
    b->shards[0] = st;
    b->n_shards = 1;
    return b;
}

weight_binder *weight_binder_random(dtype type, uint64_t seed) {
    if (type != DT_F32 && type != DT_F16 && type != DT_BF16) {
        ts_fail("weight_binder: random weights are F32, F16 or BF16, not %s", dtype_name(type));
        return NULL;
    }
    weight_binder *b = binder_new(SOURCE_RANDOM, "random");
    b->random_type = type;
    b->rng = seed * 2654435761u + 1;
    return b;
}

weight_binder *weight_binder_counting(void) { return binder_new(SOURCE_COUNTING, "counting"); }

void weight_binder_destroy(weight_binder **self) {
    if (!self || !*self) return;
    weight_binder *b = *self;
    for (int i = 0; i < b->n_shards; i++) safetensors_close(&b->shards[i]);
    free(b->shards);
    gguf_close(&b->g);
    for (int i = 0; i < b->n_owned; i++) free(b->owned[i]);
    free(b->owned);
    free(b->path);
    free(b);
    *self = NULL;
}

const char *weight_binder_path(const weight_binder *self) { return self->path; }
gguf *weight_binder_gguf(const weight_binder *self) { return self->g; }
bool weight_binder_is_file(const weight_binder *self) {
    return self->kind == SOURCE_SAFETENSORS || self->kind == SOURCE_GGUF;
}
size_t weight_binder_bytes(const weight_binder *self) { return self->bytes; }
int64_t weight_binder_params(const weight_binder *self) { return self->params; }

bool weight_binder_has(const weight_binder *self, const char *name) {
    for (int i = 0; i < self->n_shards; i++)
        if (safetensors_has(self->shards[i], name)) return true;
    return self->g && gguf_find_tensor(self->g, name) != NULL;
}

static int find_stored(weight_binder *b, const char *name, tensor *out);

int weight_binder_shape(const weight_binder *self, const char *name, int *ndim, int64_t shape[TENSOR_MAX_DIMS]) {
    if (!weight_binder_is_file(self)) return ts_fail("%s weights have no stored shapes ('%s')", self->path, name);
    tensor t;
    if (find_stored((weight_binder *)self, name, &t)) return -1;
    *ndim = t.ndim;
    memcpy(shape, t.shape, sizeof t.shape);
    return 0;
}

int weight_binder_get_stored(weight_binder *self, tensor *out, const char *name) {
    int ndim = 0;
    int64_t shape[TENSOR_MAX_DIMS];
    if (weight_binder_shape(self, name, &ndim, shape)) return -1;
    return weight_binder_get(self, out, SHARD_NONE_SPEC, ndim, shape, name);
}

static void *own(weight_binder *b, size_t bytes) {
    if (b->n_owned == b->cap_owned) {
        b->cap_owned = b->cap_owned ? 2 * b->cap_owned : 64;
        b->owned = ts_realloc(b->owned, (size_t)b->cap_owned * sizeof *b->owned);
    }
    void *p = ts_aligned_alloc(bytes ? bytes : 1);
    b->owned[b->n_owned++] = p;
    return p;
}

/* The stored tensor called name, as a view of the file. */
static int find_stored(weight_binder *b, const char *name, tensor *out) {
    if (b->kind == SOURCE_SAFETENSORS) {
        for (int i = 0; i < b->n_shards; i++)
            if (safetensors_has(b->shards[i], name)) return safetensors_get(b->shards[i], name, out);
        return ts_fail("%s: no tensor '%s'", b->path, name);
    }
    const gguf_tensor *t = gguf_find_tensor(b->g, name);
    if (!t) return ts_fail("%s: no tensor '%s'", b->path, name);
    dtype type;
    if (gguf_tensor_dtype(b->g, t, &type)) return -1;
    *out = tensor_view((void *)t->data, type, t->ndim, t->shape);
    return 0;
}

/* Shapes equal once trailing 1s past the second dimension are dropped ([a, b, 1, 1] is [a, b]). */
static int significant_dims(int ndim, const int64_t *shape) {
    while (ndim > 2 && shape[ndim - 1] == 1) ndim--;
    return ndim;
}

static bool same_shape(int na, const int64_t *a, int nb, const int64_t *b) {
    na = significant_dims(na, a), nb = significant_dims(nb, b);
    if (na != nb) return false;
    for (int i = 0; i < na; i++)
        if (a[i] != b[i]) return false;
    return true;
}

static const char *shape_text(int ndim, const int64_t *shape, char *buf, size_t n) {
    tensor t = {.ndim = ndim};
    for (int i = 0; i < ndim; i++) t.shape[i] = shape[i];
    return tensor_shape_str(&t, buf, n);
}

static uint64_t next_random(uint64_t *s) {
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

/* Fills t (of its own type) with the values weight_binder_random promises. */
static void fill_random(weight_binder *b, tensor *t, const char *name, int64_t fan_in) {
    bool bias = ends_with(name, ".bias") || ends_with(name, "_bias"), norm = !bias && t->ndim == 1;
    float scale = bias || norm ? 0.02f : sqrtf(3.0f / (float)(fan_in > 0 ? fan_in : 1)), base = norm ? 1.0f : 0.0f;
    float block[4096];
    for (int i = 0; i < 4096; i++)
        block[i] = base + scale * (2.0f * (float)(next_random(&b->rng) >> 40) / (float)(1 << 24) - 1.0f);
    int64_t n = tensor_numel(t);
    size_t es = dtype_size(t->type);
    for (int64_t i = 0; i < n; i += 4096)
        convert_from_f32((char *)t->data + (size_t)i * es, t->type, block, (size_t)(n - i < 4096 ? n - i : 4096));
}

static int get(weight_binder *b, tensor *out, shard_spec shard, int ndim, const int64_t *shape, const char *name,
               bool quantized_ok);

int weight_binder_get(weight_binder *self, tensor *out, shard_spec shard, int ndim, const int64_t *shape,
                      const char *name) {
    return get(self, out, shard, ndim, shape, name, false);
}

int weight_binder_get_quantized(weight_binder *self, tensor *out, shard_spec shard, int ndim, const int64_t *shape,
                                const char *name) {
    return get(self, out, shard, ndim, shape, name, true);
}

static int get(weight_binder *b, tensor *out, shard_spec shard, int ndim, const int64_t *shape, const char *name,
               bool quantized_ok) {
    char want[96], got[96];
    if (ndim < 1 || ndim > TENSOR_MAX_DIMS) return ts_fail("%s: tensor '%s': %d dims asked", b->path, name, ndim);
    int64_t part[TENSOR_MAX_DIMS];
    memcpy(part, shape, (size_t)ndim * sizeof *part);
    int axis = shard.axis == SHARD_ROWS ? 0 : shard.axis == SHARD_COLS ? 1 : -1;
    if (axis >= 0) {
        if (shard.ranks < 1 || shard.rank < 0 || shard.rank >= shard.ranks || axis >= ndim)
            return ts_fail("%s: tensor '%s': bad shard %d of %d along dim %d", b->path, name, shard.rank, shard.ranks, axis);
        if (shape[axis] % shard.ranks)
            return ts_fail("%s: tensor '%s' %s: dim %d (%lld) does not split into %d equal parts", b->path, name,
                           shape_text(ndim, shape, want, sizeof want), axis, (long long)shape[axis], shard.ranks);
        part[axis] = shape[axis] / shard.ranks;
    }
    int64_t fan_in = 1;
    for (int i = 1; i < ndim; i++) fan_in *= shape[i];

    if (b->kind == SOURCE_COUNTING || b->kind == SOURCE_RANDOM) {
        *out = tensor_view(NULL, b->kind == SOURCE_RANDOM ? b->random_type : DT_F32, ndim, part);
        if (b->kind == SOURCE_RANDOM) {
            out->data = own(b, tensor_nbytes(out));
            fill_random(b, out, name, fan_in);
        }
        b->bytes += tensor_nbytes(out);
        b->params += tensor_numel(out);
        return 0;
    }

    tensor t;
    if (find_stored(b, name, &t)) return -1;
    if (!same_shape(t.ndim, t.shape, ndim, shape))
        return ts_fail("%s: tensor '%s' has shape %s, expected %s", b->path, name, tensor_shape_str(&t, got, sizeof got),
                       shape_text(ndim, shape, want, sizeof want));
    bool blocks = dtype_is_quantized(t.type);
    if (blocks ? !quantized_ok : t.type != DT_F32 && t.type != DT_F16 && t.type != DT_BF16)
        return ts_fail("%s: tensor '%s' is %s; weights here must be F32, F16 or BF16", b->path, name, dtype_name(t.type));
    if (blocks && axis == 1)
        return ts_fail("%s: tensor '%s' is %s: block-quantized rows are split by rows only", b->path, name, dtype_name(t.type));
    if (!blocks && !tensor_is_contiguous(&t)) return ts_fail("%s: tensor '%s' is not contiguous", b->path, name);
    size_t es = dtype_size(t.type);
    int64_t rows = shape[0], row_elems = tensor_numel(&t) / rows;
    size_t row_bytes = blocks ? dtype_row_bytes(t.type, row_elems) : (size_t)row_elems * es;
    if (blocks && row_bytes == 0)
        return ts_fail("%s: tensor '%s': rows of %lld values are not whole %s blocks", b->path, name, (long long)row_elems,
                       dtype_name(t.type));
    void *data = t.data;
    if (axis == 0) {
        data = (char *)t.data + (size_t)(shard.rank * part[0]) * row_bytes;
    } else if (axis == 1) {
        /* each row keeps its `rank`-th run of part[1] * inner elements */
        int64_t inner = row_elems / shape[1], run = part[1] * inner;
        char *dst = own(b, (size_t)(rows * run) * es);
        for (int64_t r = 0; r < rows; r++)
            memcpy(dst + (size_t)(r * run) * es, (const char *)t.data + (size_t)(r * row_elems + shard.rank * run) * es,
                   (size_t)run * es);
        data = dst;
    }
    *out = tensor_view(data, t.type, ndim, part);
    b->bytes += blocks ? (size_t)part[0] * row_bytes : tensor_nbytes(out);
    b->params += tensor_numel(out);
    return 0;
}
