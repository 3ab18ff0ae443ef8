/*
 * captioner.h — the "caption" expander backend: a recaption job's records are images
 * (coordinator/dataset_images.h), and this backend writes their captions with a
 * LLaVA-style captioner (models/vision/llava.h).
 *
 * models.expander is the captioner: a LlavaForConditionalGeneration folder, or
 * "LLM.gguf,MMPROJ.gguf" (llama.cpp's pair). Each record's params name its image (a file,
 * or a member of a tar shard at an offset), the caption style (dsc | ssc) and whether the
 * record's prompt, its alt-text, is given as context (models/vision/caption_prompt.h).
 * The images of one task go through the vision tower in one batch, and their captions are
 * decoded together, 4 sequences at a time (llava_generate_batch).
 *
 * An image that cannot be decoded (damaged inside its data) is not a task failure: its
 * record gets the alt-text back and the reason as a fallback ("image: ..."), which the
 * coordinator counts and writes to the manifest, and the job goes on.
 */
#ifndef TESSERA_CAPTIONER_H
#define TESSERA_CAPTIONER_H

#include "worker/backend.h"

ts_expander *captioner_expander_new(const char *name, const char *model, const char *device);

#endif
