// tokenizer.h: the CLIP byte-level BPE tokenizer of Stable Diffusion 1.5, reading the
// Hugging Face tokenizer files (tokenizer/vocab.json, tokenizer/merges.txt).
//
// Produces exactly the ids of transformers' CLIPTokenizer (transformers 5, the
// `tokenizers` backend diffusers uses) called as SD pipelines call it:
//   tokenizer(text, padding="max_length", max_length=77, truncation=True)
// Per text segment:
//   1. The special tokens "<|startoftext|>" / "<|endoftext|>" written literally in the
//      raw text become their ids (case-sensitive, before any normalisation).
//   2. Normalise: Unicode NFC; every run of white space -> one space; lowercase
//      (per character, so U+0130 -> "i" U+0307 and final sigma is not special).
//   3. Split with <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
//      (white space is dropped; digits are one token each).
//   4. Each piece: its UTF-8 bytes -> GPT-2 byte symbols, the last with "</w>"; merges
//      applied lowest rank first (leftmost on ties), as the tokenizers library does.
// Not done, as in transformers 5's CLIPTokenizer: ftfy and HTML unescaping ("&amp;"
// stays the three tokens "&", "amp", ";"). OpenAI's original simple_tokenizer does
// ftfy + html.unescape twice, and transformers 4's slow CLIPTokenizer did ftfy (which
// unescapes HTML) only where ftfy was installed; for ordinary prompts all agree.
// Unicode data (infer/unicode_tables.c) is Unicode 14, except that
// NFC ignores the 99 characters the tokenizers library's older NFC tables lack (as it
// does); only characters first assigned after Unicode 14 may classify differently.
//
// Output: [BOS, tokens (truncated to max_len - 2), EOS, EOS padding up to max_len];
// BOS/EOS/pad are the vocab ids of <|startoftext|> / <|endoftext|> (49406 / 49407
// for SD1.5). The bundled files are assets/tokenizer/ (see its README).
#pragma once
#include <stdint.h>

typedef struct ClipTokenizer ClipTokenizer;

// Loads and validates the two files. NULL plus one a2f_last_error() line naming the
// file and problem on any malformed input (bad JSON, non-integer ids, merge lines
// that are not "A B", merge tokens or their concatenation missing from the vocab,
// missing byte symbols or special tokens).
ClipTokenizer *clip_tokenizer_load(const char *vocab_json, const char *merges_txt);

// Loads DIR/vocab.json and DIR/merges.txt (e.g. an SD1.5 folder's tokenizer/); dir NULL
// means the bundled files (clip_bundled_dir()).
ClipTokenizer *clip_tokenizer_load_dir(const char *dir);

// The bundled tokenizer folder: ./assets/tokenizer, else <executable dir>/../assets/tokenizer
// (so build/arc2face finds it from anywhere). NULL if neither holds vocab.json.
const char *clip_bundled_dir(void);

// Tokenizes NUL-terminated UTF-8 text into exactly max_len ids (max_len >= 2):
// BOS, tokens, EOS, then EOS padding. Returns the number of ids before the padding
// (2 .. max_len), or -1 plus an a2f_last_error() line for invalid UTF-8.
int clip_tokenize(const ClipTokenizer *t, const char *text, int32_t *ids, int max_len);

// The id of a vocabulary token ("id</w>" -> 1014 for SD1.5), or -1 if absent.
int clip_token_id(const ClipTokenizer *t, const char *token);

// The token string of an id, or NULL if no token has it (for printing).
const char *clip_token_str(const ClipTokenizer *t, int id);

void clip_tokenizer_free(ClipTokenizer *t);
