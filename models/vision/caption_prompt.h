/*
 * caption_prompt.h — what the captioner is asked, in DALL·E 3's two caption kinds:
 *
 *   SSC (short synthetic caption)        the main subject only, one sentence
 *   DSC (descriptive synthetic caption)  the main subject, its surroundings and background,
 *                                        any text in the image, the style and the colours
 *
 * The prompt is a template with "<image>" where the image features go and "{instruction}"
 * where the style's instruction goes; the default is LLaVA-1.5's conversation format:
 *
 *   USER: <image>\n{instruction} ASSISTANT:
 *
 * The original alt-text can be given as context; it is appended to the instruction as
 *
 *   The image was published with this alt-text, which may be incomplete or wrong; use it
 *   only where the image agrees: "ALT"
 *
 * (newlines folded to spaces, "<image>" removed, cut to 500 bytes at a UTF-8 boundary).
 */
#ifndef TESSERA_CAPTION_PROMPT_H
#define TESSERA_CAPTION_PROMPT_H

#include "kernels/base.h"

typedef enum { CAPTION_DSC = 0, CAPTION_SSC } caption_style;

#define CAPTION_TEMPLATE_LLAVA "USER: <image>\n{instruction} ASSISTANT:"
#define CAPTION_INSTRUCTION_SSC "Write a short caption for this image: one sentence that names its main subject."
#define CAPTION_INSTRUCTION_DSC \
    "Describe this image in detail: the main subject, its surroundings and background, " \
    "any text in the image, the style and the colours."

/* "dsc" / "descriptive", "ssc" / "short"; -1 with a message otherwise. */
int caption_style_from_name(const char *name, caption_style *out);
const char *caption_style_name(caption_style s);   /* "dsc", "ssc" */

/* The prompt (malloc'd): template (NULL: LLaVA-1.5's) with {instruction} filled for the
 * style and the alt-text context (alt_text NULL or blank: none). -1-like NULL with a
 * message when the template lacks "<image>". */
char *caption_prompt(const char *template_text, caption_style style, const char *alt_text);

#endif
