/*
 * image_png.h — PNG in and out (libspng), with the generation parameters in the text chunk
 * that the AUTOMATIC1111 web UI writes and that existing tools (A1111's "PNG info",
 * ComfyUI, civitai, sd-parsers) read back:
 *
 *   keyword "parameters", text:
 *     a photo of a cat                                  <- prompt (may span lines)
 *     Negative prompt: blurry                           <- omitted when empty
 *     Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x512, Model: sd15
 *     (then, for image 3 of a batch of 4 from one seed: ", Batch size: 4, Batch pos: 2")
 *
 * The chunk is tEXt when the text is ASCII, iTXt (UTF-8) otherwise, as Pillow does for A1111.
 * Files are written to a temporary name and renamed into place, so readers never see a
 * torn image.
 */
#ifndef TESSERA_IMAGE_PNG_H
#define TESSERA_IMAGE_PNG_H

#include "kernels/base.h"

typedef struct {
    char *prompt, *negative;      /* owned; negative may be "" */
    int steps;
    char sampler[64];             /* A1111 names: "Euler a", "Euler", "DDIM", "DPM++ 2M", ... */
    char schedule[32];            /* "Karras" or "" (A1111's "Schedule type") */
    float cfg_scale;
    int64_t seed;
    int width, height;
    char model[256];
    int clip_skip;                /* written when > 1 */
    /* written when not the default; A1111's keys where A1111 has the setting */
    bool clip_skip_positive_only; /* "Clip skip mode: positive" (diffusers' way) */
    bool truncate;                /* "Truncate prompts: True" (one 77-token chunk) */
    float guidance_rescale;       /* "Guidance rescale: 0.7" (diffusers' name) */
    float eta;                    /* "Eta DDIM: 0.5" */
    int batch_size, batch_pos;    /* "Batch size: 4, Batch pos: 2" when batch_size > 1; pos 0-based */
} gen_parameters;

/* The A1111 text for p (malloc'd, free() it). */
char *gen_parameters_format(const gen_parameters *p);
/* Parses A1111 text into out (strings owned by out; free with gen_parameters_clear).
 * Unknown keys are ignored; -1 with a message if there is no "Steps:" line. */
int gen_parameters_parse(const char *text, gen_parameters *out);
void gen_parameters_clear(gen_parameters *p);

/* RGB8 (interleaved, rows top to bottom) -> PNG in memory (malloc'd *out). parameters may be NULL. */
int image_png_encode(const uint8_t *rgb, int width, int height, const char *parameters, void **out, size_t *size);
/* Same, to a file (temp name + rename). */
int image_png_write(const char *path, const uint8_t *rgb, int width, int height, const char *parameters);
/* Reads any PNG as RGB8 (*rgb malloc'd). parameters may be NULL; else *parameters is the
 * "parameters" text (malloc'd) or NULL if the file has none. */
int image_png_read(const char *path, uint8_t **rgb, int *width, int *height, char **parameters);
int image_png_decode(const void *data, size_t size, const char *label, uint8_t **rgb, int *width, int *height,
                     char **parameters);

/* Writes size bytes to path through path.tmp.PID and rename (shared by the writers). */
int write_file_atomic(const char *path, const void *data, size_t size);

#endif
