/*
 * fuzz_clip_tokenizer.c — libFuzzer target: any bytes into the CLIP tokenizer (both flavors).
 * Invalid UTF-8 must be refused with a message; valid text must give ids inside the
 * vocabulary and chunks of 77 that start with BOS. Half the inputs are first mapped to valid
 * UTF-8 (each 3-byte group picks a code point) so the Unicode paths get exercised too.
 * The vocabulary is the real one from $TESSERA_DATA (../shared/data).
 */
#include "models/text/clip_tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static clip_tokenizer *tok;

static void load(void) {
    const char *data = getenv("TESSERA_DATA");
    char path[4096];
    snprintf(path, sizeof path, "%s/clip_tokenizer_sd15", data ? data : "../shared/data");
    tok = clip_tokenizer_load(path);
    if (!tok) {
        fprintf(stderr, "fuzz_clip_tokenizer: %s\n", ts_last_error());
        abort();
    }
}

/* Three input bytes -> one code point from a mix of ASCII, Latin, CJK, emoji, controls. */
static size_t to_utf8(const uint8_t *in, size_t n, char *out) {
    size_t w = 0;
    for (size_t i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        uint32_t cp;
        switch (v % 5) {
        case 0: cp = v % 0x80; break;
        case 1: cp = 0x80 + v % 0x780; break;
        case 2: cp = 0x800 + v % 0xF800; break;
        case 3: cp = 0x1F300 + v % 0x700; break;
        default: cp = 0x10000 + v % 0x100000; break;
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
        if (cp < 0x80) out[w++] = (char)cp;
        else if (cp < 0x800) out[w++] = (char)(0xC0 | cp >> 6), out[w++] = (char)(0x80 | (cp & 0x3F));
        else if (cp < 0x10000)
            out[w++] = (char)(0xE0 | cp >> 12), out[w++] = (char)(0x80 | (cp >> 6 & 0x3F)), out[w++] = (char)(0x80 | (cp & 0x3F));
        else
            out[w++] = (char)(0xF0 | cp >> 18), out[w++] = (char)(0x80 | (cp >> 12 & 0x3F)),
            out[w++] = (char)(0x80 | (cp >> 6 & 0x3F)), out[w++] = (char)(0x80 | (cp & 0x3F));
    }
    return w;
}

static void run(const char *text, size_t len, bool must_be_valid) {
    for (int flavor = 0; flavor < 2; flavor++) {
        clip_tokenizer_set_flavor(tok, (clip_tokenizer_flavor)flavor);
        int32_t *ids = NULL, *chunks = NULL;
        int n = 0;
        if (clip_tokenizer_encode(tok, text, len, &ids, &n) != 0) {
            if (must_be_valid || !strstr(ts_last_error(), "invalid UTF-8 at byte")) abort();
            continue;
        }
        for (int i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= clip_tokenizer_vocab_size(tok)) abort();
        int c = clip_tokens_to_chunks(tok, ids, n, clip_tokenizer_eos(tok), false, 1, &chunks);
        if (c != clip_chunk_count(n, false)) abort();
        for (int k = 0; k < c; k++)
            if (chunks[k * CLIP_CONTEXT_LENGTH] != clip_tokenizer_bos(tok)) abort();
        free(ids);
        free(chunks);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!tok) load();
    if (size == 0 || size > 1 << 16) return 0;
    if (data[0] & 1) {
        char *text = malloc(size / 3 * 4 + 1);
        size_t len = to_utf8(data + 1, size - 1, text);
        run(text, len, true);
        free(text);
    } else {
        run((const char *)data + 1, size - 1, false);
    }
    return 0;
}
