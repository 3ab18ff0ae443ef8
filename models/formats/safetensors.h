/*
 * safetensors.h — the weight file format of Hugging Face and most SD checkpoints.
 *
 * Layout: u64 little-endian header length N, N bytes of JSON
 *   {"name": {"dtype": "F16", "shape": [..], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {"k": "v"}}
 * then the data; offsets are relative to the byte after the header.
 *
 * safetensors_open memory-maps the file and checks, before anything is used, every
 * dtype, shape, offset range (inside the file, matching dtype x shape, no overlaps).
 * A bad file is refused with one line naming the file, the tensor and the problem.
 * Tensors returned are views into the mapping: valid until safetensors_close.
 */
#ifndef TESSERA_SAFETENSORS_H
#define TESSERA_SAFETENSORS_H

#include "kernels/tensor.h"

typedef struct safetensors safetensors;

safetensors *safetensors_open(const char *path);
/* Same checks over a buffer in memory (the fuzz target uses this; the buffer must
 * outlive the object). */
safetensors *safetensors_open_buffer(const void *data, size_t size, const char *label);
void safetensors_close(safetensors **self);

const char *safetensors_path(const safetensors *self);
int safetensors_count(const safetensors *self);
/* i-th tensor in file order (sorted by data offset), for listing. */
const char *safetensors_name_at(const safetensors *self, int i);
bool safetensors_has(const safetensors *self, const char *name);
/* View of the named tensor; -1 with "FILE: no tensor 'NAME'" if absent. */
int safetensors_get(const safetensors *self, const char *name, tensor *out);
/* Like safetensors_get, and also checks the shape (ndim entries); names both on mismatch. */
int safetensors_get_shaped(const safetensors *self, const char *name, tensor *out, int ndim, const int64_t *shape);

/* __metadata__ entries. */
int safetensors_metadata_count(const safetensors *self);
const char *safetensors_metadata_key(const safetensors *self, int i);
const char *safetensors_metadata_get(const safetensors *self, const char *key); /* NULL if absent */

/* Writer, for tools and tests: add tensors (any view), metadata, then finish
 * (writes to PATH.tmp and renames into place). */
typedef struct safetensors_writer safetensors_writer;
safetensors_writer *safetensors_writer_new(const char *path);
int safetensors_writer_add(safetensors_writer *self, const char *name, const tensor *t);
int safetensors_writer_metadata(safetensors_writer *self, const char *key, const char *value);
int safetensors_writer_finish(safetensors_writer **self);   /* also frees */
void safetensors_writer_destroy(safetensors_writer **self); /* abandon without writing */

#endif
