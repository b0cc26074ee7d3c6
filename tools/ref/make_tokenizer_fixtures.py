#!/usr/bin/env python3
"""make_tokenizer_fixtures.py: reference token ids for tests/test_tokenizer.c
-> tests/fixtures/tokenizer/ids.txt.

The reference is transformers' CLIPTokenizer (transformers 5: the `tokenizers` backend,
what diffusers' StableDiffusionPipeline uses) loaded from the bundled SD1.5 files
assets/tokenizer/{vocab.json,merges.txt}, called as SD pipelines call it:
    tok(text, padding="max_length", max_length=L, truncation=True).input_ids
with L = 77, plus a few cases with other lengths.

File format (text, one case per line after "#" comment lines):
    L <TAB> N <TAB> HEX <TAB> id_0 id_1 ... id_{L-1}
where HEX is the UTF-8 text in hex (so any character, newline or tab is safe) and N the
number of ids before the padding (BOS .. EOS). Each case is preceded by a comment line
with the text's repr. Characters assigned after Python's Unicode version (14) are not
drawn: their classes may differ (see tools/ref/make_unicode_tables.py).

Cases: the Arc2Face prompt, the empty prompt, mixed case, punctuation, digits,
contractions, accented / combining / non-Latin text, emoji, HTML entities (not
unescaped by CLIPTokenizer), white space of all kinds, literal special tokens, long
text (truncation), rare words needing many merges, 160 random strings drawn from a
mixed alphabet and 100 from all assigned code points and combining marks (seeded).

Usage: python3 tools/ref/make_tokenizer_fixtures.py [outdir]   (needs transformers)
"""
import os
import random
import sys
import unicodedata as ud

from transformers import CLIPTokenizer

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "fixtures", "tokenizer")

CASES = [
    "photo of a id person",
    "",
    "a photo of a cat",
    "A Photo OF a CaT",
    "PHOTO of A ID PERSON",
    "hello, world! what's up?? (yes) [no] {maybe} <tag> a.b.c ...",
    "2024 is 1 year; 3.14159 and 1,000,000 -42 +7",
    "it's don't they're we've i'm you'll he'd 'S 'T O'NEIL rock'n'roll '''s ''t",
    "café naïve résumé über Müller Ångström façade",
    "e\u0301 a\u0308 o\u0302\u0323 \u1100\u1161\u11a8 한국어 텍스트",
    "中文字符 日本語のテキスト カタカナ",
    "Привет мир ΑΒΓ αβγ Σίσυφος ΣΣ",
    "مرحبا بالعالم שלום עולם हिन्दी",
    "emoji 😀👍🏽 ❤️ 👨‍👩‍👧 🇫🇷",
    "&amp; &lt;b&gt; &quot;quoted&quot; &#39;single&#39; &#x41; &nbsp; &copy;",
    "   leading and trailing   ",
    "tabs\tand\nnewlines\r\nand\u00a0nbsp\u3000ideographic\u2003em space",
    "<|startoftext|>photo of a id person<|endoftext|>",
    "a<|endoftext|>b <|ENDOFTEXT|> x<|EndOfText|>!  <|startoftext|",
    "!!!??? ... --- *** ### $$$ %%% ^^^ ~~~ ``` ||| \\\\ //",
    "x² ½ Ⅷ ① ٣ ¹²³ 𝟙",
    "İstanbul ǅ ß ẞ ﬁ ﬀ Ｆｕｌｌｗｉｄｔｈ ＡＢＣ",
    "antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "supercalifragilisticexpialidocious floccinaucinihilipilification",
    "xqzjvkwpf qqqqqqqqqqqqqqqqqqqq zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
    "sks ohwx img portrait of a man, woman, face",
    "a photo of sks person, highly detailed, 8k, trending on artstation, by greg rutkowski",
    "ohwx man wearing a red hat in paris at night, cinematic lighting",
    "hello\u200bworld zero\u200dwidth \u00adsoft hyphen",
    "control\x01chars\x7f and \x1b[0m escape",
    " ".join(["photo of a id person"] * 20),
    "word " * 100,
    "1234567890" * 10,
    "a" * 300,
    "photo of a id person " + "very " * 80 + "end",
    "@user #hashtag https://example.com/path?q=1&r=2 user@mail.com",
    "C++ C# .NET node.js 3D-printed e-mail co-op",
    "ﬁnal ﬂow Ⓐ ㍿ ㌔ ＄",
    "Ǆ ǆ ǈ Ω K Å ꭰ Ꭰ",
    "\u0130\u0307 i\u0307 I\u0307",
]
# (max_length, text): other lengths, including ones that truncate
OTHER_LENGTHS = [(10, "photo of a id person with a very long description here"),
                 (2, "photo of a id person"), (3, "photo"), (8, "photo of a id person"), (120, "word " * 70)]

RANDOM_ALPHABET = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    " \t\n  ''''''!?.,;:-_()[]{}<>|/\\\"&#@$%^*+=~`"
    "éèêëàâäôöûüçñÅåØøßÉÈ" "\u0301\u0300\u0308\u0323\u0327\u030a\u0302"
    "αβγδΣσςΩωДджЖщЩ" "中文字日本語テキ한국\u1100\u1161\u11a8" "😀👍🏽❤️\u200d\ufe0f"
    "\u00a0\u3000\u2003\u200b\u0130ǅﬁ²½Ⅷ①٣𝟙ＡＢｃ"
)


def random_text(rng):
    n = rng.randint(0, 60)
    return "".join(rng.choice(RANDOM_ALPHABET) for _ in range(n))


def random_unicode_text(rng, assigned, marks):
    """ASCII, combining marks (NFC reordering / composition) and any assigned code point."""
    out = []
    for _ in range(rng.randint(1, 40)):
        r = rng.random()
        out.append(rng.choice(ASCII) if r < 0.4 else chr(rng.choice(marks)) if r < 0.6 else
                   rng.choice(" '\t") if r < 0.7 else chr(rng.choice(assigned)))
    return "".join(out)


ASCII = [chr(c) for c in range(1, 128)]


def main():
    tok = CLIPTokenizer.from_pretrained(os.path.join(ROOT, "assets", "tokenizer"))
    rng = random.Random(1234)
    assigned = [c for c in range(1, 0x110000) if ud.category(chr(c)) not in ("Cn", "Cs")]
    marks = [c for c in assigned if ud.combining(chr(c))]
    cases = [(77, s) for s in CASES] + OTHER_LENGTHS + [(77, random_text(rng)) for _ in range(160)]
    cases += [(77, random_unicode_text(rng, assigned, marks)) for _ in range(100)]
    lines = [
        "# tests/fixtures/tokenizer/ids.txt: GENERATED by tools/ref/make_tokenizer_fixtures.py; do not edit.",
        "# transformers CLIPTokenizer (assets/tokenizer), padding=max_length, truncation=True.",
        "# MAX_LEN<TAB>N_BEFORE_PADDING<TAB>UTF8_HEX<TAB>IDS",
    ]
    for L, s in cases:
        ids = tok(s, padding="max_length", max_length=L, truncation=True).input_ids
        assert len(ids) == L
        # ids before the padding: up to and including the first EOS after the content
        n = len(tok(s, truncation=True, max_length=L).input_ids)
        assert ids[:n] == tok(s, truncation=True, max_length=L).input_ids
        lines.append("# " + ascii(s)[:200])
        lines.append(f"{L}\t{n}\t{s.encode('utf-8').hex()}\t{' '.join(map(str, ids))}")
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "ids.txt")
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)
    print(f"wrote {path}: {len(cases)} cases")


if __name__ == "__main__":
    main()
