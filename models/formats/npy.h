/*
 * npy.h — numpy's .npy format: fixtures for tests, latents for --save-latent and
 * --init-noise. Little-endian, C order; versions 1.0–3.0 read, 1.0 written.
 */
#ifndef TESSERA_NPY_H
#define TESSERA_NPY_H

#include "kernels/tensor.h"

/* Reads the whole file into a new tensor (tensor_free it). Any shape up to 4-D;
 * a 0-D array loads as shape [1]. Errors name the file and what is wrong. */
int npy_load(const char *path, tensor *out);
/* Writes a view (any strides) as a contiguous array of its own dtype;
 * temp file then rename, so readers never see a torn file. */
int npy_save(const char *path, const tensor *t);

#endif
