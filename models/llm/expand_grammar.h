/*
 * expand_grammar.h — constrained decoding for expanders whose output is a closed language:
 * the decode may only write text that the grammar can still finish into an expansion that
 * keeps every element of the short prompt. The model still chooses everything the prompt
 * leaves open; it can no longer move, drop, recolour or double what the prompt names.
 *
 * One grammar today, "shapes": the descriptive captions of the demo's shapes world
 * (tools/shapes/world.py, whose grammar eval/shapes_eval.c reads too — keep the three in
 * step):
 *     A large red circle in the top left, a small blue square in the center, on a white background.
 * one to three clauses "a SIZE COLOUR SHAPE in the POSITION", one object per cell. The short
 * prompt is read with the world's short-caption grammar ("two red circles, a square in the
 * bottom right and a small triangle") and means what world.py means by it: every phrase
 * with count N is fitted by exactly N objects of the scene, and no object fits two phrases;
 * one rule stricter than the world: a phrase that names a position gets no look-alikes
 * elsewhere that no other phrase asks for (no extra "red square" beside "a red square in
 * the top left": copies in other cells would hedge the position instead of keeping it).
 * A prefix is allowed when some completion of it (within three objects, distinct cells) makes
 * that true; the search is exact, over the values that the prompt names plus one it does not.
 * A prompt outside the short-caption grammar (a word it does not know, more than three
 * objects, phrases no scene can satisfy) is left unconstrained: the keep-words check
 * (expand_check.h) still judges its expansion.
 *
 * An expander takes its grammar from the option or the GGUF key tessera.expander.grammar
 * (llm_expander.h).
 */
#ifndef TESSERA_EXPAND_GRAMMAR_H
#define TESSERA_EXPAND_GRAMMAR_H

#include "kernels/base.h"

typedef struct expand_grammar expand_grammar;

/* 0 for a known grammar name ("shapes") or "none", -1 with a message naming it otherwise. */
int expand_grammar_check_name(const char *name);

/* The grammar `name` for n short prompts. NULL with ts_fail for an unknown name. */
expand_grammar *expand_grammar_new(const char *name, int n, const char *const *prompts);
void expand_grammar_destroy(expand_grammar **self);

/* Whether prompt i is constrained (false: outside the grammar, decoded freely). */
bool expand_grammar_applies(const expand_grammar *self, int i);

typedef enum { GRAMMAR_DEAD = 0, GRAMMAR_PREFIX = 1, GRAMMAR_COMPLETE = 2 } grammar_status;

/* How text (len bytes, as generated: leading spaces allowed) stands for prompt i: the start
 * of a faithful expansion, a complete one, or neither. GRAMMAR_PREFIX for a prompt the
 * grammar does not apply to. */
grammar_status expand_grammar_status(const expand_grammar *self, int i, const char *text, size_t len);

/* The same, text followed by piece[piece_len]: what a constrained decoder asks per token.
 * Reads text once per (i, text) and caches that state, so asking every token is cheap. */
grammar_status expand_grammar_status_after(expand_grammar *self, int i, const char *text, size_t len,
                                           const char *piece, size_t piece_len);

#endif
