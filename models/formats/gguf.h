/*
 * gguf.h — the GGUF weight file of llama.cpp (versions 2 and 3), memory-mapped.
 *
 * Layout (little-endian): "GGUF", u32 version, u64 tensor count, u64 key count,
 * the key/value pairs (string key, u32 type, value; arrays are u32 element type,
 * u64 count, elements), the tensor infos (string name, u32 n_dims, u64 ne[n_dims],
 * u32 ggml type, u64 offset), padding to general.alignment (default 32), the data.
 * Strings are u64 length + bytes, not NUL-terminated.
 *
 * gguf_open checks every field before anything is used: lengths and counts against
 * the bytes left, known value types, no nested arrays, dims > 0 with no overflow,
 * known tensor types, rows a whole number of blocks, offsets aligned and inside the
 * file, no two tensors overlapping, no duplicate names. A bad file is refused with one
 * line naming the file, the key or tensor, and what was wrong.
 * Everything returned points into the mapping: valid until gguf_close.
 *
 * Shapes: ne[0] is the innermost dimension, so a torch weight [out, in] is
 * ne = {in, out}. gguf_tensor.shape is given outermost first, as in torch.
 */
#ifndef TESSERA_GGUF_H
#define TESSERA_GGUF_H

#include "kernels/quant.h"
#include "kernels/tensor.h"

typedef enum {
    GGUF_U8 = 0, GGUF_I8 = 1, GGUF_U16 = 2, GGUF_I16 = 3, GGUF_U32 = 4, GGUF_I32 = 5,
    GGUF_F32 = 6, GGUF_BOOL = 7, GGUF_STRING = 8, GGUF_ARRAY = 9, GGUF_U64 = 10,
    GGUF_I64 = 11, GGUF_F64 = 12, GGUF_TYPE_COUNT
} gguf_type;

/* ggml tensor type ids that Tessera computes with. */
enum { GGML_F32 = 0, GGML_F16 = 1, GGML_Q4_0 = 2, GGML_Q4_1 = 3, GGML_Q5_0 = 6, GGML_Q5_1 = 7,
       GGML_Q8_0 = 8, GGML_Q2_K = 10, GGML_Q3_K = 11, GGML_Q4_K = 12, GGML_Q5_K = 13, GGML_Q6_K = 14,
       GGML_IQ4_NL = 20, GGML_IQ4_XS = 23, GGML_BF16 = 30 };

typedef struct { const char *ptr; uint64_t len; } gguf_str;

typedef struct gguf_tensor {
    gguf_str name;
    uint32_t ggml_type;
    const char *type_name;       /* "Q4_K", ... */
    int ndim;
    int64_t shape[4];            /* outermost first: [rows, cols] for a matrix */
    const void *data;
    size_t nbytes;
} gguf_tensor;

typedef struct gguf gguf;

gguf *gguf_open(const char *path);
/* Same checks over a buffer in memory (the fuzz target uses this; the buffer must
 * outlive the object). */
gguf *gguf_open_buffer(const void *data, size_t size, const char *label);
void gguf_close(gguf **self);

const char *gguf_path(const gguf *self);
uint32_t gguf_version(const gguf *self);

/* ---- key/value metadata ---- */
int gguf_kv_count(const gguf *self);
gguf_str gguf_kv_key(const gguf *self, int i);
int gguf_find_key(const gguf *self, const char *key);      /* index, or -1 */
gguf_type gguf_kv_type(const gguf *self, int i);
/* Typed getters: -1 with a message naming the key if absent or of another type.
 * Integers accept any integer type whose value fits; floats accept F32/F64. */
int gguf_get_int(const gguf *self, const char *key, int64_t *out);
int gguf_get_float(const gguf *self, const char *key, double *out);
int gguf_get_bool(const gguf *self, const char *key, bool *out);
int gguf_get_string(const gguf *self, const char *key, gguf_str *out);
/* With a default when the key is absent (still -1 when present with a bad type). */
int gguf_get_int_or(const gguf *self, const char *key, int64_t dflt, int64_t *out);
int gguf_get_float_or(const gguf *self, const char *key, double dflt, double *out);
/* Arrays: element type and count; numeric elements by index (widened), strings by index. */
int gguf_get_array(const gguf *self, const char *key, gguf_type *elem_type, uint64_t *count);
int gguf_array_int(const gguf *self, const char *key, uint64_t i, int64_t *out);
int gguf_array_float(const gguf *self, const char *key, uint64_t i, double *out);
int gguf_array_string(const gguf *self, const char *key, uint64_t i, gguf_str *out);
/* Copy of a string as a NUL-terminated heap string (free it); NULL if absent. */
char *gguf_strdup(gguf_str s);
bool gguf_str_eq(gguf_str s, const char *c);

/* ---- tensors ---- */
int gguf_tensor_count(const gguf *self);
const gguf_tensor *gguf_tensor_at(const gguf *self, int i);
const gguf_tensor *gguf_find_tensor(const gguf *self, const char *name); /* NULL if absent */
/* The tensor's ggml type as a dtype; -1 with a message naming the tensor if Tessera
 * cannot compute with that type. */
int gguf_tensor_dtype(const gguf *self, const gguf_tensor *t, dtype *out);

#endif
