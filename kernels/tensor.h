/*
 * tensor.h — dtypes, tensors (views with strides, up to 4-D), the arena and threads.
 *
 * A tensor here is a *view*: a pointer, a dtype, a shape and strides. It never owns
 * memory unless made by tensor_new(), so slicing, permuting and pointing into a
 * memory-mapped weight file are free.  Shapes are written outermost first, as in
 * numpy and torch: a conv weight is [out, in, kh, kw], an activation [n, c, h, w].
 * Strides are in elements, not bytes.
 *
 * The math (ops.h) works on contiguous float32 buffers; weights may be any dtype
 * and are widened on the fly (tensor_to_f32 / the ops that take `const tensor *`).
 */
#ifndef TESSERA_TENSOR_H
#define TESSERA_TENSOR_H

#include "base.h"

typedef enum {
    DT_F32 = 0,
    DT_F16,
    DT_BF16,
    DT_F64,
    DT_I64,
    DT_I32,
    DT_I16,
    DT_I8,
    DT_U8,
    DT_BOOL,
    /* ggml's block-quantized weight formats (GGUF); kernels/quant.h gives their layouts */
    DT_Q8_0,
    DT_Q4_0,
    DT_Q4_K,
    DT_Q6_K,
    DT_Q4_1,
    DT_Q5_0,
    DT_Q5_1,
    DT_Q2_K,
    DT_Q3_K,
    DT_Q5_K,
    DT_IQ4_NL,
    DT_IQ4_XS,
    DT_COUNT
} dtype;

/* Bytes of one element; 0 for the block types, which have no per-element size. */
size_t dtype_size(dtype t);
const char *dtype_name(dtype t);           /* "F32", "F16", "BF16", "Q8_0", ... as in safetensors / GGUF */
/* Elements per block (1 for plain types, 32 or 256 for the block types) and its bytes. */
int dtype_block_values(dtype t);
size_t dtype_block_bytes(dtype t);
bool dtype_is_quantized(dtype t);
/* Bytes of one row of n values; 0 if n is not a whole number of blocks. */
size_t dtype_row_bytes(dtype t, int64_t n);
int dtype_from_name(const char *name, dtype *out); /* -1 (with ts_fail) if unknown */

/* Exact IEEE conversions, round-to-nearest-even, NaN/Inf/subnormals preserved. */
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
float bf16_to_f32(uint16_t b);
uint16_t f32_to_bf16(float f);

/* Bulk conversion of n contiguous values (vectorised where the CPU allows). */
void convert_to_f32(float *dst, const void *src, dtype src_type, size_t n);
void convert_from_f32(void *dst, dtype dst_type, const float *src, size_t n);

#define TENSOR_MAX_DIMS 4

typedef struct tensor {
    dtype type;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    int64_t stride[TENSOR_MAX_DIMS]; /* in elements */
    void *data;
    bool owns_data;                  /* true only for tensor_new() */
    struct ts_buffer *buffer;        /* the backend buffer data lies in (backend.h); NULL: host memory */
} tensor;

/* A contiguous view over existing memory. ndim 1..4, shape given outermost first. */
tensor tensor_view(void *data, dtype type, int ndim, const int64_t *shape);
/* Convenience: tensor_view of float32 with up to 4 dims (pass 0 for unused trailing dims). */
tensor tensor_f32(float *data, int64_t d0, int64_t d1, int64_t d2, int64_t d3);

/* Heap tensor, zero-filled, 64-byte aligned. Free with tensor_free. */
tensor tensor_new(dtype type, int ndim, const int64_t *shape);
void tensor_free(tensor *t);

int64_t tensor_numel(const tensor *t);
size_t tensor_nbytes(const tensor *t);   /* numel * dtype size (contiguous size) */
bool tensor_is_contiguous(const tensor *t);
bool tensor_same_shape(const tensor *a, const tensor *b);

/* Views: no copy. Return -1 with ts_fail on a bad argument. */
int tensor_slice(tensor *out, const tensor *t, int dim, int64_t start, int64_t len);
int tensor_permute(tensor *out, const tensor *t, const int *order); /* order[ndim] */
int tensor_transpose(tensor *out, const tensor *t, int d0, int d1);
int tensor_reshape(tensor *out, const tensor *t, int ndim, const int64_t *shape); /* contiguous only */

/* Copy any view (any dtype, any strides) into a contiguous buffer of the same shape. */
void tensor_copy_to_f32(float *dst, const tensor *src);
/* Copy between views of equal shape, converting dtype; handles strides on both sides. */
int tensor_copy(tensor *dst, const tensor *src);

/* Element access for tests and small code paths (slow). */
float tensor_get(const tensor *t, const int64_t *index);

/* "[2, 4, 64, 64]" into buf; returns buf. */
const char *tensor_shape_str(const tensor *t, char *buf, size_t size);

/*
 * Arena: bump allocation for the activations of one forward pass, so the inner
 * loops never call malloc. Reserve once (virtual memory; untouched pages cost
 * nothing), then mark/reset around each layer or step.
 */
typedef struct arena arena;
arena *arena_new(size_t capacity_bytes);
/* An arena over memory someone else allocated (a device buffer: the arena only hands out
 * addresses, it never touches the memory); destroying it calls release(owner). */
arena *arena_over(void *memory, size_t capacity_bytes, void (*release)(void *owner), void *owner);
void arena_destroy(arena **self);
void *arena_alloc(arena *self, size_t bytes);        /* 64-byte aligned; aborts when full */
float *arena_floats(arena *self, size_t count);
size_t arena_mark(const arena *self);
void arena_reset(arena *self, size_t mark);
size_t arena_used(const arena *self);
size_t arena_peak(const arena *self);


#endif
