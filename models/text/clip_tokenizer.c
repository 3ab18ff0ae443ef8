/*
 * clip_tokenizer.c — CLIP byte-level BPE (see clip_tokenizer.h for the pipeline).
 *
 * Libraries do the Unicode work: PCRE2 (UTF + UCP) for the pre-tokenizer regex and the
 * character classes of the cleaning step, utf8proc for NFC and case mapping, cJSON for
 * vocab.json, zlib for the .txt.gz vocabulary. The vocabulary, merge table, byte-level
 * alphabet and merge loop are models/text/bpe.h's; what is CLIP's own is the "</w>" suffix on the
 * last symbol of each word.
 */
#include "models/text/clip_tokenizer.h"
#include "models/text/bpe.h"
#include "models/formats/model_files.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <cjson/cJSON.h>
#include <pcre2.h>
#include <utf8proc.h>
#include <zlib.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- the tokenizer ----------------------------------------------------- */

struct clip_tokenizer {
    bpe *vocab;                /* vocabulary and merge table */
    int32_t byte_id[256];      /* byte-level character of each byte */
    int32_t byte_id_end[256];  /* the same with "</w>" */
    int32_t bos, eos;
    clip_tokenizer_flavor flavor;
    pcre2_code *pre_tokenizer;   /* CLIP's split regex */
    pcre2_code *remove_chars;    /* what BasicTokenizer._clean_text drops */
    pcre2_code *space_chars;     /* what it turns into a space */
    pcre2_code *cased, *case_ignorable; /* for Python's final-sigma rule */
};

static const char *CLIP_PATTERN =
    "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+";

static pcre2_code *compile_regex(const char *pattern, uint32_t extra) {
    int err;
    PCRE2_SIZE at;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | extra, &err, &at, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        ts_fail("clip tokenizer: regex '%s' at %zu: %s", pattern, (size_t)at, (char *)msg);
    }
    return re;
}

static clip_tokenizer *tokenizer_new(void) {
    clip_tokenizer *self = ts_calloc(1, sizeof *self);
    self->vocab = bpe_new(50000);
    self->pre_tokenizer = compile_regex(CLIP_PATTERN, PCRE2_CASELESS);
    self->remove_chars = compile_regex("[\\x{0}\\x{FFFD}]|(?![\\t\\n\\r])\\p{C}", 0);
    self->space_chars = compile_regex("[\\t\\n\\r]|\\p{Zs}", 0);
    self->cased = compile_regex("\\p{Cased}", PCRE2_ANCHORED);
    self->case_ignorable = compile_regex("\\p{CI}", PCRE2_ANCHORED);
    if (!self->pre_tokenizer || !self->remove_chars || !self->space_chars || !self->cased || !self->case_ignorable) {
        clip_tokenizer_destroy(&self);
        return NULL;
    }
    return self;
}

void clip_tokenizer_destroy(clip_tokenizer **self) {
    if (!self || !*self) return;
    clip_tokenizer *t = *self;
    bpe_destroy(&t->vocab);
    pcre2_code_free(t->pre_tokenizer);
    pcre2_code_free(t->remove_chars);
    pcre2_code_free(t->space_chars);
    pcre2_code_free(t->cased);
    pcre2_code_free(t->case_ignorable);
    free(t);
    *self = NULL;
}

/* After the vocabulary is in: the byte tables, the special ids, then the merges. */
static int finish_vocab(clip_tokenizer *self, const char *label) {
    for (int b = 0; b < 256; b++) {
        char s[16];
        int n = (int)utf8proc_encode_char((utf8proc_int32_t)bpe_byte_to_codepoint((uint8_t)b), (utf8proc_uint8_t *)s);
        self->byte_id[b] = bpe_token_id(self->vocab, s, (size_t)n);
        memcpy(s + n, "</w>", 4);
        self->byte_id_end[b] = bpe_token_id(self->vocab, s, (size_t)n + 4);
        if (self->byte_id[b] < 0 || self->byte_id_end[b] < 0)
            return ts_fail("%s: vocabulary lacks the byte-level character for byte 0x%02x", label, b);
    }
    self->bos = bpe_token_id(self->vocab, "<|startoftext|>", 15);
    self->eos = bpe_token_id(self->vocab, "<|endoftext|>", 13);
    if (self->bos < 0 || self->eos < 0)
        return ts_fail("%s: vocabulary lacks <|startoftext|> or <|endoftext|>", label);
    return 0;
}

/* Merge rules "a b", one a line, rank = order (a repeated rule keeps its first rank).
 * CLIP uses the first 48894 (49152-256-2). */
static int add_merges(clip_tokenizer *self, char **lines, int count, const char *label) {
    for (int r = 0; r < count; r++) {
        const char *line = lines[r];
        const char *space = strchr(line, ' ');
        if (!space || strchr(space + 1, ' '))
            return ts_fail("%s: merge rule %d is not two symbols: '%.40s'", label, r + 1, line);
        if (bpe_add_merge_text(self->vocab, line, (size_t)(space - line), space + 1, strlen(space + 1)) != 0)
            return ts_fail_wrap("%s: merge rule %d", label, r + 1);
    }
    return 0;
}

/* Splits text (modified in place) into lines without the trailing newline / CR. */
static char **split_lines(char *text, int *count) {
    int cap = 1024, n = 0;
    char **lines = ts_malloc(sizeof *lines * (size_t)cap);
    for (char *p = text; *p;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        size_t len = strlen(p);
        if (len && p[len - 1] == '\r') p[len - 1] = 0;
        if (n == cap) lines = ts_realloc(lines, sizeof *lines * (size_t)(cap *= 2));
        lines[n++] = p;
        if (!nl) break;
        p = nl + 1;
    }
    *count = n;
    return lines;
}

#define CLIP_MERGE_COUNT (49152 - 256 - 2)

clip_tokenizer *clip_tokenizer_from_vocab_files(const char *vocab_json, const char *merges_txt) {
    clip_tokenizer *self = tokenizer_new();
    if (!self) return NULL;
    char *json_text = read_text_file(vocab_json, NULL);
    char *merges_text = json_text ? read_text_file(merges_txt, NULL) : NULL;
    cJSON *root = json_text ? cJSON_Parse(json_text) : NULL;
    int ok = merges_text != NULL;
    if (ok && !cJSON_IsObject(root)) ok = ts_fail("%s: not a JSON object", vocab_json) == 0;
    if (ok) {
        for (cJSON *e = root->child; e; e = e->next) {
            if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 1e7) {
                ok = ts_fail("%s: entry '%.40s' is not a token id", vocab_json, e->string) == 0;
                break;
            }
            bpe_add_token(self->vocab, e->string, strlen(e->string), (int32_t)e->valuedouble);
        }
    }
    ok = ok && finish_vocab(self, vocab_json) == 0;
    if (ok) {
        int count;
        char **lines = split_lines(merges_text, &count);
        int first = count > 0 && strncmp(lines[0], "#version", 8) == 0;
        int n = count - first;
        while (n > 0 && lines[first + n - 1][0] == 0) n--;   /* trailing empty lines */
        if (n > CLIP_MERGE_COUNT) n = CLIP_MERGE_COUNT;        /* as transformers' slow tokenizer */
        ok = add_merges(self, lines + first, n, merges_txt) == 0;
        free(lines);
    }
    cJSON_Delete(root);
    free(json_text);
    free(merges_text);
    if (!ok) clip_tokenizer_destroy(&self);
    return self;
}

/* OpenAI's file: a header line, then merges. The vocabulary is built from it as CLIP's
 * simple_tokenizer.py does: 256 byte characters, the same with </w>, one entry per merge,
 * then <|startoftext|> and <|endoftext|>. */
clip_tokenizer *clip_tokenizer_from_bpe_gz(const char *path) {
    gzFile gz = gzopen(path, "rb");
    if (!gz) {
        ts_fail("%s: cannot open", path);
        return NULL;
    }
    size_t cap = 1 << 22, len = 0;
    char *text = ts_malloc(cap);
    for (;;) {
        if (cap - len < (1 << 16)) text = ts_realloc(text, cap *= 2);
        int got = gzread(gz, text + len, (unsigned)(cap - len - 1));
        if (got < 0) {
            int code;
            ts_fail("%s: gzip error: %s", path, gzerror(gz, &code));
            gzclose(gz);
            free(text);
            return NULL;
        }
        if (got == 0) break;
        len += (size_t)got;
    }
    gzclose(gz);
    text[len] = 0;
    if (memchr(text, 0, len)) {
        ts_fail("%s: NUL byte in the vocabulary text", path);
        free(text);
        return NULL;
    }
    int count;
    char **lines = split_lines(text, &count);
    int n = count - 1;
    if (n > CLIP_MERGE_COUNT) n = CLIP_MERGE_COUNT;
    clip_tokenizer *self = n > 0 ? tokenizer_new() : NULL;
    if (n <= 0) ts_fail("%s: no merge rules", path);
    int ok = self != NULL;
    if (ok) {
        /* bytes_to_unicode's dict order: the printable bytes first, then the others. */
        int32_t order[256], k = 0, id = 0;
        for (int b = 0; b < 256; b++) if (bpe_byte_to_codepoint((uint8_t)b) == (uint32_t)b) order[k++] = b;
        for (int b = 0; b < 256; b++) if (bpe_byte_to_codepoint((uint8_t)b) != (uint32_t)b) order[k++] = b;
        for (int pass = 0; pass < 2; pass++)
            for (int i = 0; i < 256; i++) {
                char s[16];
                int k = (int)utf8proc_encode_char((utf8proc_int32_t)bpe_byte_to_codepoint((uint8_t)order[i]),
                                                  (utf8proc_uint8_t *)s);
                if (pass) memcpy(s + k, "</w>", 4), k += 4;
                bpe_add_token(self->vocab, s, (size_t)k, id++);
            }
        for (int r = 0; r < n && ok; r++) {
            const char *line = lines[1 + r], *space = strchr(line, ' ');
            if (!space) {
                ok = ts_fail("%s: line %d is not a merge rule", path, r + 2) == 0;
                break;
            }
            char joined[512];
            size_t na = (size_t)(space - line), nb = strlen(space + 1);
            if (na + nb >= sizeof joined) {
                ok = ts_fail("%s: line %d too long", path, r + 2) == 0;
                break;
            }
            memcpy(joined, line, na);
            memcpy(joined + na, space + 1, nb);
            bpe_add_token(self->vocab, joined, na + nb, id++);
        }
        if (ok) {
            bpe_add_token(self->vocab, "<|startoftext|>", 15, id++);
            bpe_add_token(self->vocab, "<|endoftext|>", 13, id++);
            ok = finish_vocab(self, path) == 0 && add_merges(self, lines + 1, n, path) == 0;
        }
    }
    free(lines);
    free(text);
    if (!ok) clip_tokenizer_destroy(&self);
    return self;
}

static bool is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

clip_tokenizer *clip_tokenizer_load(const char *path) {
    char vocab[4096], merges[4096];
    struct stat st;
    if (stat(path, &st) != 0) {
        ts_fail("%s: no such tokenizer file or folder", path);
        return NULL;
    }
    if (S_ISREG(st.st_mode)) return clip_tokenizer_from_bpe_gz(path);
    const char *sub[] = {"", "/tokenizer"};
    for (int i = 0; i < 2; i++) {
        snprintf(vocab, sizeof vocab, "%s%s/vocab.json", path, sub[i]);
        snprintf(merges, sizeof merges, "%s%s/merges.txt", path, sub[i]);
        if (is_file(vocab) && is_file(merges)) return clip_tokenizer_from_vocab_files(vocab, merges);
    }
    snprintf(vocab, sizeof vocab, "%s/bpe_simple_vocab_16e6.txt.gz", path);
    if (is_file(vocab)) return clip_tokenizer_from_bpe_gz(vocab);
    ts_fail("%s: no vocab.json + merges.txt here or in tokenizer/, nor bpe_simple_vocab_16e6.txt.gz", path);
    return NULL;
}

void clip_tokenizer_set_flavor(clip_tokenizer *self, clip_tokenizer_flavor flavor) { self->flavor = flavor; }

int clip_tokenizer_vocab_size(const clip_tokenizer *self) { return bpe_token_count(self->vocab); }

int clip_tokenizer_token_id(const clip_tokenizer *self, const char *token) {
    return bpe_token_id(self->vocab, token, strlen(token));
}

/* ---- text -> ids ------------------------------------------------------- */

typedef struct {
    char *data;
    size_t len, cap;
} buffer;

static void buffer_put(buffer *b, const void *p, size_t n) {
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->data = ts_realloc(b->data, b->cap);
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
}

static void buffer_put_char(buffer *b, int32_t cp) {
    utf8proc_uint8_t s[4];
    buffer_put(b, s, (size_t)utf8proc_encode_char(cp, s));
}

typedef struct {
    int32_t *ids;
    int count, cap;
} id_list;

static void id_push(id_list *l, int32_t id) {
    if (l->count == l->cap) l->ids = ts_realloc(l->ids, sizeof *l->ids * (size_t)(l->cap = l->cap ? l->cap * 2 : 64));
    l->ids[l->count++] = id;
}

/* Decodes the code point at s[*i] (valid UTF-8 already checked) and advances *i. */
static int32_t next_char(const char *s, size_t len, size_t *i) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)s + *i, (utf8proc_ssize_t)(len - *i), &cp);
    *i += (size_t)(n > 0 ? n : 1);
    return cp;
}

static bool char_matches(const pcre2_code *re, int32_t cp) {
    utf8proc_uint8_t s[4];
    utf8proc_ssize_t n = utf8proc_encode_char(cp, s);
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    int rc = pcre2_match(re, s, (PCRE2_SIZE)n, 0, PCRE2_NO_UTF_CHECK, md, NULL);
    pcre2_match_data_free(md);
    return rc > 0;
}

/* pcre2_substitute with a global replacement into a new buffer. */
static int substitute(const pcre2_code *re, const char *s, size_t len, const char *with, buffer *out) {
    PCRE2_SIZE size = len + len / 2 + 16;
    for (int attempt = 0; attempt < 3; attempt++) {
        if (out->cap < size + 1) out->data = ts_realloc(out->data, out->cap = size + 1);
        PCRE2_SIZE got = out->cap;
        int rc = pcre2_substitute(re, (PCRE2_SPTR)s, len, 0,
                                  PCRE2_SUBSTITUTE_GLOBAL | PCRE2_SUBSTITUTE_OVERFLOW_LENGTH | PCRE2_NO_UTF_CHECK,
                                  NULL, NULL, (PCRE2_SPTR)with, PCRE2_ZERO_TERMINATED,
                                  (PCRE2_UCHAR *)out->data, &got);
        if (rc >= 0) {
            out->len = got;
            return 0;
        }
        if (rc != PCRE2_ERROR_NOMEMORY) return ts_fail("clip tokenizer: pcre2_substitute failed (%d)", rc);
        size = got;
    }
    return ts_fail("clip tokenizer: pcre2_substitute kept running out of room");
}

static bool is_cjk(int32_t cp) { /* BasicTokenizer._is_chinese_char */
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
           (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

/* Python's str.isspace among what survives cleaning: the space and the line/paragraph
 * separators (everything else that is whitespace was removed or turned into a space). */
static bool is_split_space(int32_t cp) { return cp == ' ' || cp == 0x2028 || cp == 0x2029; }

/* Lower-cases one word (code points w[0..n)) as Python's str.lower: full mapping (only
 * U+0130 differs from the simple one) and the Final_Sigma rule for U+03A3. */
static void python_lower(const clip_tokenizer *self, const int32_t *w, int n, buffer *out) {
    for (int i = 0; i < n; i++) {
        int32_t c = w[i];
        if (c == 0x0130) {
            buffer_put(out, "i\xcc\x87", 3);
        } else if (c == 0x03A3) {
            int j = i - 1;
            while (j >= 0 && char_matches(self->case_ignorable, w[j])) j--;
            bool final = j >= 0 && char_matches(self->cased, w[j]);
            if (final) {
                j = i + 1;
                while (j < n && char_matches(self->case_ignorable, w[j])) j++;
                final = j == n || !char_matches(self->cased, w[j]);
            }
            buffer_put_char(out, final ? 0x03C2 : 0x03C3);
        } else {
            buffer_put_char(out, utf8proc_tolower(c));
        }
    }
}

static int nfc(const char *s, size_t len, buffer *out) {
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &dst,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (n < 0) return ts_fail("clip tokenizer: NFC: %s", utf8proc_errmsg(n));
    out->len = 0;
    buffer_put(out, dst, (size_t)n);
    free(dst);
    return 0;
}

/* BasicTokenizer(strip_accents=False, do_split_on_punc=False).tokenize, words joined by ' '. */
static int clean_slow(const clip_tokenizer *self, const char *s, size_t len, buffer *out) {
    buffer a = {0}, b = {0};
    int rc = substitute(self->remove_chars, s, len, "", &a);
    if (rc == 0) rc = substitute(self->space_chars, a.data, a.len, " ", &b);
    if (rc == 0) {
        a.len = 0;
        for (size_t i = 0; i < b.len;) {
            int32_t c = next_char(b.data, b.len, &i);
            if (is_cjk(c)) buffer_put(&a, " ", 1), buffer_put_char(&a, c), buffer_put(&a, " ", 1);
            else buffer_put_char(&a, c);
        }
        rc = nfc(a.data ? a.data : "", a.len, &b);
    }
    if (rc == 0) {
        int32_t *word = ts_malloc(sizeof *word * (b.len + 1));
        out->len = 0;
        for (size_t i = 0; i < b.len;) {
            int n = 0;
            size_t at = i;
            while (at < b.len) {
                size_t next = at;
                int32_t c = next_char(b.data, b.len, &next);
                if (is_split_space(c)) break;
                word[n++] = c;
                at = next;
            }
            if (n) {
                if (out->len) buffer_put(out, " ", 1);
                python_lower(self, word, n, out);
            }
            i = at;
            if (i < b.len) next_char(b.data, b.len, &i); /* skip the separator */
        }
        free(word);
    }
    free(a.data);
    free(b.data);
    return rc;
}

/* tokenizers' normalizer for CLIP: NFC, then per-character full lower-casing. */
static int clean_fast(const char *s, size_t len, buffer *out) {
    buffer a = {0};
    int rc = nfc(s, len, &a);
    out->len = 0;
    for (size_t i = 0; rc == 0 && i < a.len;) {
        int32_t c = next_char(a.data, a.len, &i);
        if (c == 0x0130) buffer_put(out, "i\xcc\x87", 3);
        else buffer_put_char(out, utf8proc_tolower(c));
    }
    free(a.data);
    return rc;
}

/* BPE over one pre-token: symbols start as its bytes' characters, the last one with "</w>";
 * bpe_merge does the rest (lowest rank first, leftmost among equals: the result of
 * transformers' merge-every-occurrence loop). The symbols are laid out in out's tail. */
static void bpe_word(const clip_tokenizer *self, const unsigned char *p, size_t n, id_list *out) {
    if (n == 0) return;
    if (out->count + (int)n > out->cap) {
        while (out->count + (int)n > out->cap) out->cap = out->cap ? out->cap * 2 : 64;
        out->ids = ts_realloc(out->ids, sizeof *out->ids * (size_t)out->cap);
    }
    int32_t *sym = out->ids + out->count;
    for (size_t i = 0; i + 1 < n; i++) sym[i] = self->byte_id[p[i]];
    sym[n - 1] = self->byte_id_end[p[n - 1]];
    out->count += bpe_merge(self->vocab, sym, (int)n);
}

/* One piece of text between special tokens. */
static int encode_segment(const clip_tokenizer *self, const char *s, size_t len, id_list *out) {
    buffer text = {0};
    int rc = self->flavor == CLIP_TOKENIZER_FAST ? clean_fast(s, len, &text) : clean_slow(self, s, len, &text);
    if (rc != 0 || text.len == 0) {
        free(text.data);
        return rc;
    }
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(self->pre_tokenizer, NULL);
    for (PCRE2_SIZE at = 0; at < text.len;) {
        int m = pcre2_match(self->pre_tokenizer, (PCRE2_SPTR)text.data, text.len, at, PCRE2_NO_UTF_CHECK, md, NULL);
        if (m == PCRE2_ERROR_NOMATCH) break;
        if (m < 0) {
            rc = ts_fail("clip tokenizer: regex match failed (%d)", m);
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        const char *piece = text.data + ov[0];
        size_t n = ov[1] - ov[0];
        if (n == 0) { at = ov[1] + 1; continue; } /* cannot happen: every alternative consumes */
        /* The slow tokenizer's BPE cache maps these two pieces straight to their ids. */
        if (self->flavor == CLIP_TOKENIZER_SLOW && n == 15 && memcmp(piece, "<|startoftext|>", 15) == 0)
            id_push(out, self->bos);
        else if (self->flavor == CLIP_TOKENIZER_SLOW && n == 13 && memcmp(piece, "<|endoftext|>", 13) == 0)
            id_push(out, self->eos);
        else if (self->flavor == CLIP_TOKENIZER_FAST && ((n == 15 && memcmp(piece, "<|startoftext|>", 15) == 0) ||
                                                         (n == 13 && memcmp(piece, "<|endoftext|>", 13) == 0))) {
            /* tokenizers' ByteLevel step re-splits with GPT-2's regex: "<|", the word, "|>". */
            bpe_word(self, (const unsigned char *)piece, 2, out);
            bpe_word(self, (const unsigned char *)piece + 2, n - 4, out);
            bpe_word(self, (const unsigned char *)piece + n - 2, 2, out);
        } else
            bpe_word(self, (const unsigned char *)piece, n, out);
        at = ov[1];
    }
    pcre2_match_data_free(md);
    free(text.data);
    return rc;
}

/* Offset of the first invalid UTF-8 byte, or -1 when all of it is valid. */
static long invalid_utf8_at(const char *s, size_t len) {
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (n <= 0) return (long)i;
        i += (size_t)n;
    }
    return -1;
}

int clip_tokenizer_encode(const clip_tokenizer *self, const char *text, size_t len, int32_t **ids, int *count) {
    *ids = NULL;
    *count = 0;
    long bad = invalid_utf8_at(text, len);
    if (bad >= 0) return ts_fail("text: invalid UTF-8 at byte %ld (0x%02x)", bad, (unsigned char)text[bad]);
    static const char *special[2] = {"<|startoftext|>", "<|endoftext|>"};
    int32_t special_id[2] = {self->bos, self->eos};
    id_list out = {0};
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        int which = -1;
        for (int k = 0; k < 2 && i < len; k++)
            if (text[i] == '<' && len - i >= strlen(special[k]) && memcmp(text + i, special[k], strlen(special[k])) == 0)
                which = k;
        if (which < 0 && i < len) continue;
        if (encode_segment(self, text + start, i - start, &out) != 0) {
            free(out.ids);
            return -1;
        }
        if (which >= 0) {
            id_push(&out, special_id[which]);
            i += strlen(special[which]) - 1;
            start = i + 1;
        }
    }
    *ids = out.ids;
    *count = out.count;
    return 0;
}

/* ---- chunks ------------------------------------------------------------ */

int clip_chunk_count(int count, bool truncate) {
    if (truncate || count <= CLIP_CHUNK_TOKENS) return 1;
    return (count + CLIP_CHUNK_TOKENS - 1) / CLIP_CHUNK_TOKENS;
}

int32_t clip_tokenizer_bos(const clip_tokenizer *self) { return self->bos; }
int32_t clip_tokenizer_eos(const clip_tokenizer *self) { return self->eos; }

int clip_tokens_to_chunks(const clip_tokenizer *self, const int32_t *ids, int count, int32_t pad_id, bool truncate,
                          int min_chunks, int32_t **chunks) {
    int n = clip_chunk_count(count, truncate);
    if (n < min_chunks) n = min_chunks;
    int32_t *out = ts_malloc(sizeof *out * (size_t)n * CLIP_CONTEXT_LENGTH);
    for (int c = 0; c < n; c++) {
        int32_t *row = out + (size_t)c * CLIP_CONTEXT_LENGTH;
        int from = c * CLIP_CHUNK_TOKENS;
        int take = count - from;
        if (take < 0 || (truncate && c > 0)) take = 0;
        if (take > CLIP_CHUNK_TOKENS) take = CLIP_CHUNK_TOKENS;
        int k = 0;
        row[k++] = self->bos;
        for (int i = 0; i < take; i++) row[k++] = ids[from + i];
        row[k++] = self->eos;
        while (k < CLIP_CONTEXT_LENGTH) row[k++] = pad_id;
    }
    *chunks = out;
    return n;
}
