#!/usr/bin/env python3
"""make_unicode_tables.py: generate infer/unicode_tables.c, the Unicode data the CLIP
tokenizer (infer/tokenizer.c) needs, from Python's unicodedata (no Unicode library in C).

transformers' CLIPTokenizer (the `tokenizers` backend) runs, per text segment:
  NFC -> replace \\s+ by " " -> lowercase (per character, char::to_lowercase)
  -> split on <\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+
so the C side needs, over all of Unicode (0..0x10FFFF, not only the BMP):
  - letter ranges (general category L*) and number ranges (N*), for \\p{L} / \\p{N};
  - the White_Space set (\\s);
  - simple lowercase mappings as runs (start, count, stride, delta); U+0130 -> "i\\u0307" is
    the one multi-character mapping and is handled in code (this script asserts that);
  - NFC: canonical combining classes (runs), full canonical decompositions (NFD of each
    character, Hangul syllables excluded: they are algorithmic), and the primary-composite
    pairs (a, b) -> c for recomposition.
Exception, to match transformers' ids: the characters of TOKENIZERS_NFC_UNKNOWN (below)
get no NFC data, as in the `tokenizers` library's older Unicode tables.
The script checks its own tables: an NFC written in Python from exactly these tables
(the algorithm infer/tokenizer.c implements) must equal unicodedata.normalize("NFC") on
every code point and on sequences of combining marks. With --check it also compares the
letter/number/space/lowercase/NFC classification of every code point with the
`tokenizers` library's CLIP normalizer and pre-tokenizer and prints the disagreements
(they come from different Unicode versions: Python's unicodedata vs the Rust crates).

Usage: python3 tools/ref/make_unicode_tables.py [--check] [OUT.c]   (default infer/unicode_tables.c)
"""
import os
import sys
import unicodedata as ud

MAXCP = 0x110000
SBASE, LBASE, VBASE, TBASE = 0xAC00, 0x1100, 0x1161, 0x11A7
LCOUNT, VCOUNT, TCOUNT = 19, 21, 28
NCOUNT, SCOUNT = VCOUNT * TCOUNT, 19 * 21 * 28
# Unicode White_Space (PropList.txt); Oniguruma's \s in Unicode mode is this set.
WHITE_SPACE = [0x9, 0xA, 0xB, 0xC, 0xD, 0x20, 0x85, 0xA0, 0x1680] + list(range(0x2000, 0x200B)) + \
              [0x2028, 0x2029, 0x202F, 0x205F, 0x3000]

# Characters that the NFC of the `tokenizers` library (crate unicode-normalization-alignments,
# Unicode 9 data) does not know: combining marks added in Unicode 10..14 (it gives them class 0,
# so they are never reordered and they block composition) and U+11938 (a Unicode 13 composite it
# neither decomposes nor composes). The C tables follow tokenizers here, since the goal is
# transformers' ids. Found by probing tokenizers' NFC; --check re-derives the list.
TOKENIZERS_NFC_UNKNOWN = [
    0x7FD, 0x898, 0x899, 0x89A, 0x89B, 0x89C, 0x89D, 0x89E, 0x89F, 0x8CA, 0x8CB, 0x8CC,
    0x8CD, 0x8CE, 0x8CF, 0x8D0, 0x8D1, 0x8D2, 0x8D3, 0x9FE, 0xC3C, 0xD3B, 0xD3C, 0xEBA,
    0x1715, 0x1ABF, 0x1AC0, 0x1AC1, 0x1AC2, 0x1AC3, 0x1AC4, 0x1AC5, 0x1AC6, 0x1AC7, 0x1AC8, 0x1AC9,
    0x1ACA, 0x1ACB, 0x1ACC, 0x1ACD, 0x1ACE, 0x1DF6, 0x1DF7, 0x1DF8, 0x1DF9, 0x1DFA, 0xA82C, 0x10D24,
    0x10D25, 0x10D26, 0x10D27, 0x10EAB, 0x10EAC, 0x10F46, 0x10F47, 0x10F48, 0x10F49, 0x10F4A, 0x10F4B, 0x10F4C,
    0x10F4D, 0x10F4E, 0x10F4F, 0x10F50, 0x10F82, 0x10F83, 0x10F84, 0x10F85, 0x11070, 0x1133B, 0x1145E, 0x11839,
    0x1183A, 0x1193D, 0x1193E, 0x11943, 0x119E0, 0x11A34, 0x11A47, 0x11A99, 0x11D42, 0x11D44, 0x11D45, 0x11D97,
    0x16FF0, 0x16FF1, 0x1E130, 0x1E131, 0x1E132, 0x1E133, 0x1E134, 0x1E135, 0x1E136, 0x1E2AE, 0x1E2EC, 0x1E2ED,
    0x1E2EE, 0x1E2EF, 0x11938,
]


def is_surrogate(c):
    return 0xD800 <= c <= 0xDFFF


def ranges(cps):
    r = []
    for c in cps:
        if r and r[-1][1] == c - 1:
            r[-1][1] = c
        else:
            r.append([c, c])
    return r


def lower_runs():
    """Runs (start, count, stride, delta): cp = start + k*stride (k < count) lowercases to cp + delta."""
    pairs = []
    for c in range(MAXCP):
        if is_surrogate(c):
            continue
        lo = chr(c).lower()
        if lo == chr(c):
            continue
        if len(lo) != 1:
            assert c == 0x130 and lo == "i\u0307", f"unexpected multi-char lowercase U+{c:04X}"
            continue
        pairs.append((c, ord(lo) - c))
    runs = []
    for c, d in pairs:
        if runs:
            s, n, st, dd = runs[-1]
            last = s + (n - 1) * st
            if dd == d and n == 1 and c - s in (1, 2):
                runs[-1] = [s, 2, c - s, d]
                continue
            if dd == d and n > 1 and c == last + st:
                runs[-1][1] += 1
                continue
        runs.append([c, 1, 1, d])
    return runs


def ccc_runs_of(ccc):
    runs = []
    for c in sorted(ccc):
        if runs and runs[-1][1] == c - 1 and runs[-1][2] == ccc[c]:
            runs[-1][1] = c
        else:
            runs.append([c, c, ccc[c]])
    return runs


def nfc_tables():
    ccc = {}
    for c in range(MAXCP):
        if not is_surrogate(c) and ud.combining(chr(c)):
            ccc[c] = ud.combining(chr(c))
    decomp = {}
    for c in range(MAXCP):
        if is_surrogate(c) or SBASE <= c < SBASE + SCOUNT:
            continue
        d = ud.normalize("NFD", chr(c))
        if d != chr(c):
            decomp[c] = [ord(x) for x in d]
    comp = {}
    for c in range(MAXCP):
        if is_surrogate(c) or SBASE <= c < SBASE + SCOUNT:
            continue
        d = ud.decomposition(chr(c))
        if not d or d.startswith("<"):
            continue
        parts = [int(x, 16) for x in d.split()]
        # a primary composite: a canonical pair that NFC keeps (not a composition exclusion)
        if len(parts) == 2 and ud.normalize("NFC", chr(c)) == chr(c):
            comp[(parts[0], parts[1])] = c
    return ccc, decomp, comp


def nfc_model(s, ccc, decomp, comp):
    """The NFC algorithm of infer/tokenizer.c, on these tables (for self-checking)."""
    d = []
    for ch in s:
        c = ord(ch)
        if SBASE <= c < SBASE + SCOUNT:
            i = c - SBASE
            d += [LBASE + i // NCOUNT, VBASE + (i % NCOUNT) // TCOUNT] + ([TBASE + i % TCOUNT] if i % TCOUNT else [])
        else:
            d += decomp.get(c, [c])
    # canonical ordering: stable insertion sort of each run of non-starters by class
    for i in range(1, len(d)):
        k = i
        while k > 0 and ccc.get(d[k], 0) and ccc.get(d[k - 1], 0) > ccc.get(d[k], 0):
            d[k - 1], d[k] = d[k], d[k - 1]
            k -= 1
    out, starter, last_cc = [], -1, 0
    for c in d:
        cc = ccc.get(c, 0)
        if starter >= 0 and (last_cc < cc or (last_cc == 0 and len(out) - 1 == starter)):
            a = out[starter]
            m = None
            if LBASE <= a < LBASE + LCOUNT and VBASE <= c < VBASE + VCOUNT:
                m = SBASE + ((a - LBASE) * VCOUNT + (c - VBASE)) * TCOUNT
            elif SBASE <= a < SBASE + SCOUNT and (a - SBASE) % TCOUNT == 0 and TBASE < c < TBASE + TCOUNT:
                m = a + (c - TBASE)
            else:
                m = comp.get((a, c))
            if m is not None:
                out[starter] = m
                continue
        if cc == 0:
            starter = len(out)
        last_cc = cc
        out.append(c)
    return "".join(chr(c) for c in out)


def self_check(ccc, decomp, comp):
    bad = 0
    for c in range(MAXCP):
        if is_surrogate(c):
            continue
        if nfc_model(chr(c), ccc, decomp, comp) != ud.normalize("NFC", chr(c)):
            bad += 1
    marks = [0x301, 0x300, 0x323, 0x308, 0x327, 0x31B, 0x345, 0x3099, 0x1DCE, 0x5B0, 0x302]
    bases = [ord(x) for x in "aeoAuyEIs"] + [0x3B1, 0x3C9, 0x1100, 0x1161, 0x11A8, 0xAC00, 0x304B, 0x1B05, 0x915]
    import itertools
    for b in bases:
        for n in range(1, 4):
            for ms in itertools.permutations(marks, n):
                s = chr(b) + "".join(map(chr, ms))
                if nfc_model(s, ccc, decomp, comp) != ud.normalize("NFC", s):
                    bad += 1
    for s in ["\u1100\u1161\u11a8", "\uac00\u11a8", "\u1100\u1161x", "e\u0301\u0301", "\u0301e", "\u0ec8\u0eb3\u0ec8"]:
        if nfc_model(s, ccc, decomp, comp) != ud.normalize("NFC", s):
            bad += 1
    assert bad == 0, f"NFC model disagrees with unicodedata on {bad} inputs"


def check_against_tokenizers(letters, numbers, space, low_runs, ccc, decomp, comp):
    """Compares the classification of every code point with tokenizers' CLIP normalizer/pre-tokenizer."""
    from tokenizers import Regex, normalizers, pre_tokenizers
    norm = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()])
    pre = pre_tokenizers.Split(Regex(r"""[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""), behavior="removed", invert=True)
    lower = {}
    for s, n, st, d in low_runs:
        for k in range(n):
            lower[s + k * st] = s + k * st + d
    lset, nset, sset = set(), set(), set(space)
    for a, b in letters:
        lset.update(range(a, b + 1))
    for a, b in numbers:
        nset.update(range(a, b + 1))

    def mine(c):
        s = nfc_model(chr(c), ccc, decomp, comp)
        s = "".join(" " if ord(x) in sset else x for x in s)
        s = "".join("i\u0307" if ord(x) == 0x130 else chr(lower.get(ord(x), ord(x))) for x in s)
        # classes: L = letter, N = number, S = space, P = other; pieces as the regex would cut them
        cls = "".join("S" if ord(x) in sset else "L" if ord(x) in lset else "N" if ord(x) in nset else "P" for x in s)
        return s, cls

    bad = []
    for c in range(MAXCP):
        if is_surrogate(c):
            continue
        s, cls = mine(c)
        t = norm.normalize_str(chr(c))
        # wrap with letters so that the piece boundaries show the class of each character
        pieces_t = [p for p, _ in pre.pre_tokenize_str("q" + t + "q")]
        pieces_m = []
        text = "q" + s + "q"
        k = "L" + cls + "L"
        i = 0
        while i < len(text):
            if k[i] == "S":
                i += 1
                continue
            j = i + 1
            if k[i] in "LP":
                while j < len(text) and k[j] == k[i]:
                    j += 1
            pieces_m.append(text[i:j])
            i = j
        if t != s or pieces_t != pieces_m:
            bad.append(c)
    nfc = normalizers.NFC()
    probe = [c for c in range(MAXCP) if not is_surrogate(c) and ud.combining(chr(c)) > 1 and
             nfc.normalize_str(chr(c) + "\u0334") != ud.normalize("NFC", chr(c) + "\u0334")]
    probe += [c for c in range(MAXCP) if not is_surrogate(c) and ud.combining(chr(c)) == 1 and
              nfc.normalize_str("a" + chr(c) + "\u0301") != ud.normalize("NFC", "a" + chr(c) + "\u0301")]
    probe += [c for c in range(MAXCP) if not is_surrogate(c) and ud.normalize("NFD", chr(c)) != chr(c) and
              nfc.normalize_str(ud.normalize("NFD", chr(c))) != ud.normalize("NFC", chr(c))]
    if sorted(probe) != sorted(TOKENIZERS_NFC_UNKNOWN):
        print("--check: TOKENIZERS_NFC_UNKNOWN is out of date; tokenizers' NFC lacks: " +
              " ".join(f"{c:X}" for c in sorted(set(probe))))
    else:
        print(f"--check: TOKENIZERS_NFC_UNKNOWN matches tokenizers' NFC ({len(probe)} code points)")
    print(f"--check: {len(bad)} code points classified differently from tokenizers "
          f"(unicodedata {ud.unidata_version} vs the Rust crates' Unicode versions)")
    assigned = [c for c in bad if ud.category(chr(c)) != "Cn"]
    print(f"  {len(bad) - len(assigned)} of them are unassigned (Cn) in Unicode {ud.unidata_version}; {len(assigned)} assigned:")
    for c in assigned[:40]:
        print(f"  U+{c:04X} {ud.category(chr(c))} {ud.name(chr(c), '?')}")


def c_array(name, ctype, rows, per_line, dims=""):
    out = [f"const {ctype} {name}[]{dims} = {{"]
    line = []
    for r in rows:
        line.append("{" + ", ".join(str(x) if not isinstance(x, str) else x for x in r) + "}" if isinstance(r, (list, tuple)) else str(r))
        if len(line) == per_line:
            out.append("    " + ", ".join(line) + ",")
            line = []
    if line:
        out.append("    " + ", ".join(line) + ",")
    out.append("};")
    out.append(f"const int {name}_n = (int)(sizeof {name} / sizeof {name}[0]);")
    return "\n".join(out) + "\n"


def hx(c):
    return f"0x{c:04X}"


def main():
    args = [a for a in sys.argv[1:] if a != "--check"]
    out = args[0] if args else os.path.join(os.path.dirname(__file__), "..", "..", "infer", "unicode_tables.c")
    letters = ranges(c for c in range(MAXCP) if not is_surrogate(c) and ud.category(chr(c)).startswith("L"))
    numbers = ranges(c for c in range(MAXCP) if not is_surrogate(c) and ud.category(chr(c)).startswith("N"))
    space = ranges(WHITE_SPACE)
    low = lower_runs()
    ccc, decomp, comp = nfc_tables()
    self_check(ccc, decomp, comp)
    for c in TOKENIZERS_NFC_UNKNOWN:
        ccc.pop(c, None)
        decomp.pop(c, None)
    comp = {k: v for k, v in comp.items() if v not in TOKENIZERS_NFC_UNKNOWN}
    ccc_runs = ccc_runs_of(ccc)
    if "--check" in sys.argv:
        check_against_tokenizers(letters, numbers, WHITE_SPACE, low, ccc, decomp, comp)

    dec_rows, flat = [], []
    for c in sorted(decomp):
        dec_rows.append((hx(c), len(flat), len(decomp[c])))
        flat += decomp[c]
    comp_rows = [(hx(a), hx(b), hx(c)) for (a, b), c in sorted(comp.items())]

    src = [
        "// unicode_tables.c: Unicode data for the CLIP tokenizer (infer/tokenizer.c).",
        "// GENERATED by tools/ref/make_unicode_tables.py from Python's unicodedata "
        f"(Unicode {ud.unidata_version}); do not edit.",
        "// All tables are sorted by code point and cover 0..0x10FFFF; see infer/unicode_tables.h.",
        '#include "unicode_tables.h"',
        "",
        "// General category L* (\\p{L}) and N* (\\p{N}) as inclusive ranges [lo, hi].",
        c_array("uni_letter_ranges", "uint32_t", [(hx(a), hx(b)) for a, b in letters], 6, "[2]"),
        c_array("uni_number_ranges", "uint32_t", [(hx(a), hx(b)) for a, b in numbers], 6, "[2]"),
        "// White_Space (\\s).",
        c_array("uni_space_ranges", "uint32_t", [(hx(a), hx(b)) for a, b in space], 6, "[2]"),
        "// Lowercase runs: cp = start + k*stride (k < count) maps to cp + delta.",
        c_array("uni_lower_runs", "UniLowerRun", [(hx(s), n, st, d) for s, n, st, d in low], 4),
        "// Canonical combining class runs [lo, hi] -> class (non-zero classes only).",
        c_array("uni_ccc_runs", "UniCccRun", [(hx(a), hx(b), k) for a, b, k in ccc_runs], 5),
        "// Full canonical decompositions (NFD of one character; Hangul syllables excluded):",
        "// uni_decomp_cps[off .. off+len).",
        c_array("uni_decomp", "UniDecomp", dec_rows, 5),
        c_array("uni_decomp_cps", "uint32_t", [hx(c) for c in flat], 10),
        "// Primary composites: (first, second) -> composite, sorted by (first, second).",
        c_array("uni_comp", "UniComp", comp_rows, 4),
    ]
    text = "\n".join(src)
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, out)
    print(f"wrote {out}: {len(letters)} letter ranges, {len(numbers)} number ranges, {len(low)} lowercase runs, "
          f"{len(ccc_runs)} ccc runs, {len(decomp)} decompositions, {len(comp)} compositions")


if __name__ == "__main__":
    main()
