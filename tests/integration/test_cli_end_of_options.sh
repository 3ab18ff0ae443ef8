#!/usr/bin/env bash
# "--" ends the options in every subcommand that takes free text (cli/args.h): a prompt that
# starts with '-' can follow it, and gives what -p gives. (issue 11: `tessera tokenize --
# "-a prompt"` was refused; txt2img/tokenize are checked in test_txt2img_options_cli.)
set -euo pipefail
T=${TESSERA_BIN:?}
D=${TESSERA_DATA:?}
F=${TESSERA_FIXTURES:?}
fail() { echo "FAIL: $*" >&2; exit 1; }
M="$D/llama2c/stories260K.bin"; TOK="$D/llama2c/tok512.bin"
[ -f "$M" ] || fail "missing $M"

a=$("$T" -q complete -m "$M" --tokenizer "$TOK" -n 8 -p "-Once upon")
b=$("$T" -q complete -m "$M" --tokenizer "$TOK" -n 8 -- "-Once upon")
[ -n "$a" ] || fail "complete -p gave nothing"
[ "$a" = "$b" ] || fail "complete: '-- TEXT' gave '$b', -p gave '$a'"
if "$T" -q complete -m "$M" --tokenizer "$TOK" -n 8 -- "-a" "-b" 2>/dev/null; then fail "two prompts accepted"; fi

a=$("$T" -q expand -m "$F/expander_tiny" -p "-a red cat" 2>/dev/null)
b=$("$T" -q expand -m "$F/expander_tiny" -- "-a red cat" 2>/dev/null)
[ -n "$a" ] || fail "expand -p gave nothing"
[ "$a" = "$b" ] || fail "expand: '-- PROMPT' gave '$b', -p gave '$a'"
# without "--", a prompt starting with '-' is an unknown option
if "$T" -q expand -m "$F/expander_tiny" "-a red cat" 2>/dev/null; then fail "expand took '-a red cat' as a prompt without --"; fi
echo "1 passed, 0 failed"
