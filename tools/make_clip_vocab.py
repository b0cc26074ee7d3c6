#!/usr/bin/env python3
"""make_clip_vocab.py: build SD1.5's CLIP tokenizer files (vocab.json, merges.txt)
from OpenAI's original BPE file, bpe_simple_vocab_16e6.txt.gz.

The construction is OpenAI CLIP's simple_tokenizer.py (architectures.md 3.4):
  ids 0..255      the 256 byte-level unicode symbols (GPT-2's bytes_to_unicode order)
  ids 256..511    the same symbols with the end-of-word suffix "</w>"
  ids 512..49405  one token per merge: lines 1 .. 49152-256-2 of the BPE file
                  (after its "#version" header line), token = a + b
  49406, 49407    <|startoftext|>, <|endoftext|>
giving 49408 tokens; merges.txt is "#version: 0.2" followed by those 48894 merges.
This is what Hugging Face's openai/clip-vit-large-patch14 (and SD1.5's tokenizer/
folder) ships. The script checks the ids of architectures.md's table.

Where to get the BPE file offline-friendly: the PyPI wheel open_clip_torch contains
it as open_clip/bpe_simple_vocab_16e6.txt.gz (MIT licence, Copyright (c) 2021 OpenAI):
    pip download --no-deps open_clip_torch -d /tmp/oc
    unzip -o /tmp/oc/open_clip_torch-*.whl 'open_clip/bpe_simple_vocab_16e6.txt.gz' -d /tmp/oc

Usage: python3 tools/make_clip_vocab.py BPE.txt.gz [OUTDIR]   (default assets/tokenizer)
Needs only the Python standard library.
"""
import gzip
import json
import os
import sys

N_MERGES = 49152 - 256 - 2  # 48894

# architectures.md 3.4: ids computed from SD1.5's vocab.json.
EXPECTED = {
    "photo</w>": 1125, "of</w>": 539, "a</w>": 320, "id</w>": 1014, "person</w>": 2533,
    "man</w>": 786, "woman</w>": 2308, "face</w>": 1710, "portrait</w>": 5352, "cat</w>": 2368,
    "img</w>": 24157, "sks</w>": 48136, "ohwx</w>": 47993, "!": 0, "!</w>": 256,
    "<|startoftext|>": 49406, "<|endoftext|>": 49407,
}


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable unicode character map (byte order of the vocab)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def build(bpe_path):
    lines = gzip.open(bpe_path).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1:N_MERGES + 1]]
    assert len(merges) == N_MERGES and all(len(m) == 2 for m in merges), "unexpected BPE file layout"
    syms = list(bytes_to_unicode().values())
    vocab = syms + [s + "</w>" for s in syms]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408 and len(set(vocab)) == 49408, "vocabulary is not 49408 distinct tokens"
    return {t: i for i, t in enumerate(vocab)}, merges


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "assets", "tokenizer")
    vocab, merges = build(sys.argv[1])
    for tok, want in EXPECTED.items():
        assert vocab[tok] == want, f"{tok}: id {vocab[tok]}, expected {want}"
    os.makedirs(out, exist_ok=True)
    write_atomic(os.path.join(out, "vocab.json"), json.dumps(vocab, ensure_ascii=False, separators=(",", ":")))
    write_atomic(os.path.join(out, "merges.txt"), "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    print(f"wrote {out}/vocab.json ({len(vocab)} tokens) and merges.txt ({len(merges)} merges); "
          f"{len(EXPECTED)} reference ids check")


if __name__ == "__main__":
    main()
