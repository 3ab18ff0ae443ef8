/* tensor.c — dtypes and their conversions, tensor views, the arena, thread count. */
#include "tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---- dtypes ------------------------------------------------------------ */

/* size: bytes per element (0 for block types); values, bytes: per block (quant.h's layouts). */
static const struct { const char *name; size_t size; int values; size_t bytes; } dtype_table[DT_COUNT] = {
    [DT_F32] = {"F32", 4, 1, 4},  [DT_F16] = {"F16", 2, 1, 2}, [DT_BF16] = {"BF16", 2, 1, 2},
    [DT_F64] = {"F64", 8, 1, 8},  [DT_I64] = {"I64", 8, 1, 8}, [DT_I32] = {"I32", 4, 1, 4},
    [DT_I16] = {"I16", 2, 1, 2},  [DT_I8] = {"I8", 1, 1, 1},   [DT_U8] = {"U8", 1, 1, 1},
    [DT_BOOL] = {"BOOL", 1, 1, 1},
    [DT_Q8_0] = {"Q8_0", 0, 32, 34},     [DT_Q4_0] = {"Q4_0", 0, 32, 18},
    [DT_Q4_K] = {"Q4_K", 0, 256, 144},   [DT_Q6_K] = {"Q6_K", 0, 256, 210},
    [DT_Q4_1] = {"Q4_1", 0, 32, 20},     [DT_Q5_0] = {"Q5_0", 0, 32, 22},
    [DT_Q5_1] = {"Q5_1", 0, 32, 24},     [DT_Q2_K] = {"Q2_K", 0, 256, 84},
    [DT_Q3_K] = {"Q3_K", 0, 256, 110},   [DT_Q5_K] = {"Q5_K", 0, 256, 176},
    [DT_IQ4_NL] = {"IQ4_NL", 0, 32, 18}, [DT_IQ4_XS] = {"IQ4_XS", 0, 256, 136},
};

size_t dtype_size(dtype t) { return (unsigned)t < DT_COUNT ? dtype_table[t].size : 0; }
const char *dtype_name(dtype t) { return (unsigned)t < DT_COUNT ? dtype_table[t].name : "?"; }
int dtype_block_values(dtype t) { return (unsigned)t < DT_COUNT ? dtype_table[t].values : 0; }
size_t dtype_block_bytes(dtype t) { return (unsigned)t < DT_COUNT ? dtype_table[t].bytes : 0; }
bool dtype_is_quantized(dtype t) { return (unsigned)t < DT_COUNT && dtype_table[t].values > 1; }

size_t dtype_row_bytes(dtype t, int64_t n) {
    int bv = dtype_block_values(t);
    if (bv == 0 || n <= 0 || n % bv) return 0;
    return (size_t)(n / bv) * dtype_block_bytes(t);
}

int dtype_from_name(const char *name, dtype *out) {
    for (int i = 0; i < DT_COUNT; i++)
        if (strcmp(name, dtype_table[i].name) == 0) { *out = (dtype)i; return 0; }
    return ts_fail("unknown dtype '%s'", name);
}

static inline uint32_t bits_of(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float float_of(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return float_of(sign | 0x7f800000u | (man << 13));   /* inf / nan */
    if (exp == 0) {
        if (man == 0) return float_of(sign);
        /* subnormal: value = man * 2^-24, exact in float */
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    return float_of(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t f32_to_f16(float f) {
    uint32_t u = bits_of(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t abs = u & 0x7fffffffu;
    if (abs >= 0x7f800000u)                       /* inf or nan (keep nan quiet) */
        return sign | 0x7c00 | (abs > 0x7f800000u ? 0x200 | ((abs >> 13) & 0x3ff) : 0);
    if (abs >= 0x477ff000u) return sign | 0x7c00; /* rounds to >= 65520: inf */
    if (abs < 0x38800000u) {                      /* below the smallest normal 2^-14 */
        /* subnormal: round abs * 2^24 to nearest even integer */
        float v = float_of(abs) * 0x1p24f;        /* exact: scaling by a power of two */
        uint32_t m = (uint32_t)v;
        float rem = v - (float)m;
        if (rem > 0.5f || (rem == 0.5f && (m & 1))) m++;
        return sign | (uint16_t)m;
    }
    uint32_t mant = abs & 0x7fffffu;
    uint32_t exp = (abs >> 23) - 112;
    uint32_t h = (exp << 10) | (mant >> 13);
    uint32_t rest = mant & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1))) h++; /* carries into exp correctly */
    return sign | (uint16_t)h;
}

float bf16_to_f32(uint16_t b) { return float_of((uint32_t)b << 16); }

uint16_t f32_to_bf16(float f) {
    uint32_t u = bits_of(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet nan */
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

#if defined(__GNUC__) && defined(__x86_64__)
/* F16C turns 8 halves into 8 floats per instruction; chosen at run time. */
#include <immintrin.h>
__attribute__((target("f16c,avx")))
static void f16_to_f32_f16c(float *dst, const void *src, size_t n) {
    const char *s = src;
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + 2 * i))));
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, s + 2 * i, 2);
        dst[i] = f16_to_f32(h);
    }
}
__attribute__((target("f16c,avx")))
static void f32_to_f16_f16c(void *dst, const float *src, size_t n) {
    char *d = dst;
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(d + 2 * i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) {
        uint16_t h = f32_to_f16(src[i]);
        memcpy(d + 2 * i, &h, 2);
    }
}
#include <cpuid.h>
static bool cpu_has_f16c(void) {
    static int cached = -1;   /* atomic: worker threads convert weights at the same time */
    int has = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (has < 0) {
        unsigned a, b, c, d;
        /* CPUID leaf 1, ECX: bit 29 F16C, bit 28 AVX, bit 27 OSXSAVE (clang lacks "f16c" in
         * __builtin_cpu_supports, so ask the CPU directly) */
        has = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29)) && (c & (1u << 28)) && (c & (1u << 27));
        __atomic_store_n(&cached, has, __ATOMIC_RELAXED);
    }
    return has;
}
#else
static bool cpu_has_f16c(void) { return false; }
static void f16_to_f32_f16c(float *d, const void *s, size_t n) { (void)d; (void)s; (void)n; }
static void f32_to_f16_f16c(void *d, const float *s, size_t n) { (void)d; (void)s; (void)n; }
#endif

/* Weight files need not align their tensors (safetensors offsets are arbitrary), so
 * elements are loaded and stored through memcpy, which compiles to a plain access. */
#define DEFINE_ACCESS(name, type)                                                         \
    static inline type load_##name(const void *p, size_t i) {                             \
        type v;                                                                          \
        memcpy(&v, (const char *)p + i * sizeof v, sizeof v);                            \
        return v;                                                                        \
    }                                                                                    \
    static inline void store_##name(void *p, size_t i, type v) { memcpy((char *)p + i * sizeof v, &v, sizeof v); }
DEFINE_ACCESS(u16, uint16_t)
DEFINE_ACCESS(f64, double)
DEFINE_ACCESS(i64, int64_t)
DEFINE_ACCESS(i32, int32_t)
DEFINE_ACCESS(i16, int16_t)

void convert_to_f32(float *dst, const void *src, dtype t, size_t n) {
    switch (t) {
    case DT_F32: memmove(dst, src, n * 4); return;
    case DT_F16:
        if (cpu_has_f16c()) { f16_to_f32_f16c(dst, src, n); return; }
        for (size_t i = 0; i < n; i++) dst[i] = f16_to_f32(load_u16(src, i));
        return;
    case DT_BF16:   /* a shift: the compiler vectorises this loop */
        for (size_t i = 0; i < n; i++) dst[i] = float_of((uint32_t)load_u16(src, i) << 16);
        return;
    case DT_F64: for (size_t i = 0; i < n; i++) dst[i] = (float)load_f64(src, i); return;
    case DT_I64: for (size_t i = 0; i < n; i++) dst[i] = (float)load_i64(src, i); return;
    case DT_I32: for (size_t i = 0; i < n; i++) dst[i] = (float)load_i32(src, i); return;
    case DT_I16: for (size_t i = 0; i < n; i++) dst[i] = (float)load_i16(src, i); return;
    case DT_I8: for (size_t i = 0; i < n; i++) dst[i] = (float)((const int8_t *)src)[i]; return;
    case DT_U8: case DT_BOOL:
        for (size_t i = 0; i < n; i++) dst[i] = (float)((const uint8_t *)src)[i];
        return;
    default: memset(dst, 0, n * 4); return;
    }
}

void convert_from_f32(void *dst, dtype t, const float *src, size_t n) {
    switch (t) {
    case DT_F32: memmove(dst, src, n * 4); return;
    case DT_F16:
        if (cpu_has_f16c()) { f32_to_f16_f16c(dst, src, n); return; }
        for (size_t i = 0; i < n; i++) store_u16(dst, i, f32_to_f16(src[i]));
        return;
    case DT_BF16: for (size_t i = 0; i < n; i++) store_u16(dst, i, f32_to_bf16(src[i])); return;
    case DT_F64: for (size_t i = 0; i < n; i++) store_f64(dst, i, src[i]); return;
    case DT_I64: for (size_t i = 0; i < n; i++) store_i64(dst, i, (int64_t)src[i]); return;
    case DT_I32: for (size_t i = 0; i < n; i++) store_i32(dst, i, (int32_t)src[i]); return;
    case DT_I16: for (size_t i = 0; i < n; i++) store_i16(dst, i, (int16_t)src[i]); return;
    case DT_I8: for (size_t i = 0; i < n; i++) ((int8_t *)dst)[i] = (int8_t)src[i]; return;
    case DT_U8: case DT_BOOL: for (size_t i = 0; i < n; i++) ((uint8_t *)dst)[i] = (uint8_t)src[i]; return;
    default: return;
    }
}

/* ---- tensors ----------------------------------------------------------- */

static void set_contiguous_strides(tensor *t) {
    int64_t s = 1;
    for (int d = t->ndim - 1; d >= 0; d--) { t->stride[d] = s; s *= t->shape[d]; }
}

tensor tensor_view(void *data, dtype type, int ndim, const int64_t *shape) {
    tensor t = {.type = type, .ndim = ndim, .data = data};
    for (int d = 0; d < ndim; d++) t.shape[d] = shape[d];
    set_contiguous_strides(&t);
    return t;
}

tensor tensor_f32(float *data, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    int64_t shape[4] = {d0, d1, d2, d3};
    int ndim = d3 ? 4 : d2 ? 3 : d1 ? 2 : 1;
    return tensor_view(data, DT_F32, ndim, shape);
}

tensor tensor_new(dtype type, int ndim, const int64_t *shape) {
    tensor t = tensor_view(NULL, type, ndim, shape);
    size_t bytes = tensor_nbytes(&t);
    t.data = ts_aligned_alloc(bytes);
    memset(t.data, 0, bytes);
    t.owns_data = true;
    return t;
}

void tensor_free(tensor *t) {
    if (t && t->owns_data) free(t->data);
    if (t) { t->data = NULL; t->owns_data = false; }
}

int64_t tensor_numel(const tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

size_t tensor_nbytes(const tensor *t) { return (size_t)tensor_numel(t) * dtype_size(t->type); }

bool tensor_is_contiguous(const tensor *t) {
    int64_t s = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->stride[d] != s) return false;
        s *= t->shape[d];
    }
    return true;
}

bool tensor_same_shape(const tensor *a, const tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return false;
    return true;
}

int tensor_slice(tensor *out, const tensor *t, int dim, int64_t start, int64_t len) {
    if (dim < 0 || dim >= t->ndim) return ts_fail("slice: dim %d out of range for %d-D tensor", dim, t->ndim);
    if (start < 0 || len < 0 || start + len > t->shape[dim])
        return ts_fail("slice: [%lld, %lld) outside dim %d of size %lld", (long long)start,
                       (long long)(start + len), dim, (long long)t->shape[dim]);
    *out = *t;
    out->owns_data = false;
    out->shape[dim] = len;
    out->data = (char *)t->data + (size_t)(start * t->stride[dim]) * dtype_size(t->type);
    return 0;
}

int tensor_permute(tensor *out, const tensor *t, const int *order) {
    tensor r = *t;
    bool seen[TENSOR_MAX_DIMS] = {0};
    for (int d = 0; d < t->ndim; d++) {
        int o = order[d];
        if (o < 0 || o >= t->ndim || seen[o]) return ts_fail("permute: bad order for %d-D tensor", t->ndim);
        seen[o] = true;
        r.shape[d] = t->shape[o];
        r.stride[d] = t->stride[o];
    }
    r.owns_data = false;
    *out = r;
    return 0;
}

int tensor_transpose(tensor *out, const tensor *t, int d0, int d1) {
    int order[TENSOR_MAX_DIMS] = {0, 1, 2, 3};
    if (d0 < 0 || d1 < 0 || d0 >= t->ndim || d1 >= t->ndim) return ts_fail("transpose: bad dims %d, %d", d0, d1);
    order[d0] = d1;
    order[d1] = d0;
    return tensor_permute(out, t, order);
}

int tensor_reshape(tensor *out, const tensor *t, int ndim, const int64_t *shape) {
    if (!tensor_is_contiguous(t)) return ts_fail("reshape: tensor is not contiguous");
    if (ndim < 1 || ndim > TENSOR_MAX_DIMS) return ts_fail("reshape: %d dims unsupported", ndim);
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    if (n != tensor_numel(t)) return ts_fail("reshape: %lld elements into %lld", (long long)tensor_numel(t), (long long)n);
    *out = tensor_view(t->data, t->type, ndim, shape);
    return 0;
}

/* Walk every element of a (up to 4-D) view, calling back with its element offset. */
#define FOR_EACH_INDEX(t, i0, i1, i2, i3)                                   \
    for (int64_t i0 = 0; i0 < ((t)->ndim > 0 ? (t)->shape[0] : 1); i0++)    \
        for (int64_t i1 = 0; i1 < ((t)->ndim > 1 ? (t)->shape[1] : 1); i1++) \
            for (int64_t i2 = 0; i2 < ((t)->ndim > 2 ? (t)->shape[2] : 1); i2++) \
                for (int64_t i3 = 0; i3 < ((t)->ndim > 3 ? (t)->shape[3] : 1); i3++)

static int64_t offset_of(const tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    int64_t idx[4] = {i0, i1, i2, i3}, off = 0;
    for (int d = 0; d < t->ndim; d++) off += idx[d] * t->stride[d];
    return off;
}

void tensor_copy_to_f32(float *dst, const tensor *src) {
    size_t es = dtype_size(src->type);
    if (tensor_is_contiguous(src)) {
        convert_to_f32(dst, src->data, src->type, (size_t)tensor_numel(src));
        return;
    }
    /* innermost run contiguous: convert row by row */
    int last = src->ndim - 1;
    int64_t inner = src->shape[last];
    bool inner_unit = src->stride[last] == 1;
    size_t k = 0;
    tensor outer = *src;
    outer.shape[last] = 1;
    FOR_EACH_INDEX(&outer, i0, i1, i2, i3) {
        const char *row = (const char *)src->data + (size_t)offset_of(src, i0, i1, i2, i3) * es;
        if (inner_unit) {
            convert_to_f32(dst + k, row, src->type, (size_t)inner);
        } else {
            for (int64_t j = 0; j < inner; j++)
                convert_to_f32(dst + k + j, row + (size_t)(j * src->stride[last]) * es, src->type, 1);
        }
        k += (size_t)inner;
    }
}

int tensor_copy(tensor *dst, const tensor *src) {
    if (!tensor_same_shape(dst, src)) {
        char a[64], b[64];
        return ts_fail("copy: shape %s into %s", tensor_shape_str(src, a, sizeof a), tensor_shape_str(dst, b, sizeof b));
    }
    size_t ss = dtype_size(src->type), ds = dtype_size(dst->type);
    FOR_EACH_INDEX(src, i0, i1, i2, i3) {
        float v;
        convert_to_f32(&v, (const char *)src->data + (size_t)offset_of(src, i0, i1, i2, i3) * ss, src->type, 1);
        convert_from_f32((char *)dst->data + (size_t)offset_of(dst, i0, i1, i2, i3) * ds, dst->type, &v, 1);
    }
    return 0;
}

float tensor_get(const tensor *t, const int64_t *index) {
    int64_t off = 0;
    for (int d = 0; d < t->ndim; d++) off += index[d] * t->stride[d];
    float v;
    convert_to_f32(&v, (const char *)t->data + (size_t)off * dtype_size(t->type), t->type, 1);
    return v;
}

const char *tensor_shape_str(const tensor *t, char *buf, size_t size) {
    size_t n = 0;
    n += (size_t)snprintf(buf + n, size - n, "[");
    for (int d = 0; d < t->ndim && n < size; d++)
        n += (size_t)snprintf(buf + n, size - n, d ? ", %lld" : "%lld", (long long)t->shape[d]);
    if (n < size) snprintf(buf + n, size - n, "]");
    return buf;
}

/* ---- arena ------------------------------------------------------------- */

struct arena {
    char *base;
    size_t capacity, used, peak;
    void (*release)(void *owner);     /* arena_over's: frees the memory instead of munmap */
    void *owner;
};

arena *arena_new(size_t capacity) {
    arena *a = ts_calloc(1, sizeof *a);
    capacity = (capacity + 4095) & ~(size_t)4095;
    /* Reserve address space only; pages are backed when first touched. */
    void *p = mmap(NULL, capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) { free(a); ts_fail("arena: cannot reserve %zu bytes", capacity); return NULL; }
    a->base = p;
    a->capacity = capacity;
    return a;
}

arena *arena_over(void *memory, size_t capacity, void (*release)(void *owner), void *owner) {
    arena *a = ts_calloc(1, sizeof *a);
    *a = (arena){.base = memory, .capacity = capacity, .release = release, .owner = owner};
    return a;
}

void arena_destroy(arena **self) {
    if (!self || !*self) return;
    if ((*self)->release) (*self)->release((*self)->owner);
    else munmap((*self)->base, (*self)->capacity);
    free(*self);
    *self = NULL;
}

void *arena_alloc(arena *a, size_t bytes) {
    size_t start = (a->used + 63) & ~(size_t)63;
    if (start + bytes > a->capacity) {
        fprintf(stderr, "tessera: error: arena exhausted (%zu of %zu bytes used, %zu more asked)\n",
                a->used, a->capacity, bytes);
        abort();
    }
    a->used = start + bytes;
    if (a->used > a->peak) a->peak = a->used;
    return a->base + start;
}

float *arena_floats(arena *a, size_t count) { return arena_alloc(a, count * sizeof(float)); }
size_t arena_mark(const arena *a) { return a->used; }
void arena_reset(arena *a, size_t mark) { a->used = mark; }
size_t arena_used(const arena *a) { return a->used; }
size_t arena_peak(const arena *a) { return a->peak; }
