// test_tokenizer.c: the CLIP BPE tokenizer (infer/tokenizer.h) on the bundled SD1.5
// files (assets/tokenizer/).
//
// Reference: tests/fixtures/tokenizer/ids.txt, written by
// tools/ref/make_tokenizer_fixtures.py with transformers' CLIPTokenizer (the one
// diffusers uses) loaded from the same files; ids must match exactly (integers, no
// tolerance). Also: architectures.md 3.4's id table, invalid UTF-8 rejected, malformed
// vocab/merges files rejected with one error line naming the file (and no crash on
// truncated files), long inputs (truncation, a 200k-letter word) stay fast, and the
// `arc2face tokenize` verb (run as a child process: $A2F_BIN or build/arc2face).
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../infer/tokenizer.h"
#include "../kernels/common.h"
#include "test.h"

#define VOCAB "assets/tokenizer/vocab.json"
#define MERGES "assets/tokenizer/merges.txt"
#define FIXTURE "tests/fixtures/tokenizer/ids.txt"

static ClipTokenizer *sd15(void) {
    static ClipTokenizer *t;
    if (!t) t = clip_tokenizer_load(VOCAB, MERGES);
    if (!t) test_fail(__FILE__, __LINE__, "loading the bundled tokenizer: %s", a2f_last_error());
    return t;
}

static int hexval(int c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

TEST(tokenizer_matches_transformers) {
    ClipTokenizer *t = sd15();
    FILE *f = fopen(FIXTURE, "r");
    EXPECT(f != NULL, "missing %s", FIXTURE);
    if (!t || !f) {
        if (f) fclose(f);
        return;
    }
    size_t cap = 1 << 16;
    char *line = xmalloc(cap), *text = xmalloc(cap);
    int cases = 0, bad = 0, lineno = 0;
    while (fgets(line, (int)cap, f)) {
        lineno++;
        if (line[0] == '#' || line[0] == '\n') continue;
        // MAX_LEN \t N \t HEX \t IDS (HEX is empty for the empty text)
        char *p = line;
        int L = (int)strtol(p, &p, 10);
        int ok = *p++ == '\t';
        int n = (int)strtol(p, &p, 10);
        if (!ok || *p++ != '\t' || L < 2 || L > 1024) {
            test_fail(__FILE__, __LINE__, "%s:%d: unreadable line", FIXTURE, lineno);
            break;
        }
        size_t nb = 0;
        while (hexval(p[0]) >= 0 && hexval(p[1]) >= 0) text[nb++] = (char)(hexval(p[0]) * 16 + hexval(p[1])), p += 2;
        text[nb] = 0;
        if (*p++ != '\t') {
            test_fail(__FILE__, __LINE__, "%s:%d: unreadable text", FIXTURE, lineno);
            break;
        }
        int32_t want[1024], got[1024];
        for (int i = 0; i < L; i++) want[i] = (int32_t)strtol(p, &p, 10);
        int rn = clip_tokenize(t, text, got, L);
        int first = -1;
        for (int i = 0; i < L && first < 0; i++)
            if (got[i] != want[i]) first = i;
        if (rn != n || first >= 0) {
            if (bad++ < 5)
                test_fail(__FILE__, __LINE__,
                          "%s:%d (\"%.60s\"): returned %d (want %d); first wrong id at %d: %d, want %d", FIXTURE,
                          lineno, text, rn, n, first, first >= 0 ? got[first] : 0, first >= 0 ? want[first] : 0);
        }
        cases++;
    }
    fclose(f);
    free(line);
    free(text);
    EXPECT(cases >= 200, "only %d fixture cases read", cases);
    EXPECT(bad == 0, "%d of %d cases differ from transformers", bad, cases);
}

// architectures.md 3.4, computed there from SD1.5's vocab.json.
TEST(tokenizer_reference_ids) {
    ClipTokenizer *t = sd15();
    if (!t) return;
    static const struct {
        const char *tok;
        int id;
    } k[] = {
        {"photo</w>", 1125},      {"of</w>", 539},   {"a</w>", 320},      {"id</w>", 1014},
        {"person</w>", 2533},     {"man</w>", 786},  {"woman</w>", 2308}, {"face</w>", 1710},
        {"portrait</w>", 5352},   {"cat</w>", 2368}, {"img</w>", 24157},  {"sks</w>", 48136},
        {"ohwx</w>", 47993},      {"!", 0},          {"!</w>", 256},      {"<|startoftext|>", 49406},
        {"<|endoftext|>", 49407},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        EXPECT(clip_token_id(t, k[i].tok) == k[i].id, "%s: %d, want %d", k[i].tok, clip_token_id(t, k[i].tok), k[i].id);
        const char *s = clip_token_str(t, k[i].id);
        EXPECT(s && !strcmp(s, k[i].tok), "clip_token_str(%d) = %s, want %s", k[i].id, s ? s : "NULL", k[i].tok);
    }
    EXPECT(clip_token_id(t, "notatoken</w>") == -1, "unknown token must give -1");
    EXPECT(clip_token_str(t, 49408) == NULL && clip_token_str(t, -1) == NULL, "ids outside the vocab give NULL");
    int32_t ids[77];
    EXPECT(clip_tokenize(t, "photo of a id person", ids, 77) == 7, "Arc2Face prompt length");
    static const int32_t want[7] = {49406, 1125, 539, 320, 1014, 2533, 49407};
    EXPECT(!memcmp(ids, want, sizeof want), "Arc2Face prompt ids");
    for (int i = 7; i < 77; i++) EXPECT(ids[i] == 49407, "padding at %d is %d", i, ids[i]);
    EXPECT(clip_tokenize(t, "x", ids, 1) == -1, "max_len 1 must be refused");
}

TEST(tokenizer_invalid_utf8) {
    ClipTokenizer *t = sd15();
    if (!t) return;
    static const char *bad[] = {
        "\xff",         "abc\xc3",           "\xc0\xaf",         "\xc1\xbf",
        "\xe0\x80\xaf", "\xed\xa0\x80",      "\xf4\x90\x80\x80", "\xf0\x8f\xbf\xbf",
        "\x80",         "photo \xe2\x82 of", "\xf5\x80\x80\x80", "ok\xe2\x82\xac\xfe",
    };
    int32_t ids[77];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        a2f_clear_error();
        EXPECT(clip_tokenize(t, bad[i], ids, 77) == -1, "invalid UTF-8 case %zu accepted", i);
        EXPECT(strstr(a2f_last_error(), "invalid UTF-8") != NULL, "case %zu: error \"%s\"", i, a2f_last_error());
    }
    // The extremes of valid UTF-8 are accepted.
    static const char *good[] = {"\xf4\x8f\xbf\xbf", "\xef\xbf\xbf", "\xc2\x80",    "\xe0\xa0\x80",
                                 "\xf0\x90\x80\x80", "\xed\x9f\xbf", "\xee\x80\x80"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        EXPECT(clip_tokenize(t, good[i], ids, 77) >= 3, "valid UTF-8 case %zu refused: %s", i, a2f_last_error());
}

// Long inputs: the output is always max_len ids ending in EOS, and the cost does not
// explode (one 200k-letter word goes through the heap BPE; 1 MB of text through all).
TEST(tokenizer_long_inputs) {
    ClipTokenizer *t = sd15();
    if (!t) return;
    size_t n = 1 << 20;
    char *s = xmalloc(n + 1);
    for (size_t i = 0; i < n; i++) s[i] = "photo of a id person "[i % 21];
    s[n] = 0;
    int32_t ids[77];
    clock_t c0 = clock();
    int r = clip_tokenize(t, s, ids, 77);
    EXPECT(r == 77 && ids[0] == 49406 && ids[76] == 49407 && ids[75] == 2533, "1 MB text: %d ids, last %d", r, ids[75]);
    memset(s, 'q', 200000);
    s[200000] = 0;
    r = clip_tokenize(t, s, ids, 77);
    EXPECT(r == 77 && ids[76] == 49407, "200k-letter word: %d ids", r);
    for (int i = 1; i < 76; i++) EXPECT(ids[i] >= 0 && ids[i] < 49406, "id %d at %d", ids[i], i);
    double sec = (double)(clock() - c0) / CLOCKS_PER_SEC;
    EXPECT(sec < 5.0, "long inputs took %.2f s", sec);
    free(s);
}

// ---- malformed files -------------------------------------------------------------------

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = xmalloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, f);
    b[*len] = 0;
    fclose(f);
    return b;
}

static void write_file(const char *path, const char *data, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f);
    CHECK(fwrite(data, 1, n, f) == n);
    fclose(f);
}

// Loading must fail with one line that names the bad file (and mentions `what`).
static void expect_rejected(const char *vocab, const char *merges, const char *bad_file, const char *what,
                            const char *label) {
    a2f_clear_error();
    ClipTokenizer *t = clip_tokenizer_load(vocab, merges);
    const char *e = a2f_last_error();
    EXPECT(t == NULL, "%s: accepted", label);
    EXPECT(strstr(e, bad_file) != NULL && strchr(e, '\n') == NULL, "%s: error \"%s\" should be one line naming %s",
           label, e, bad_file);
    EXPECT(!what || strstr(e, what), "%s: error \"%s\" should mention \"%s\"", label, e, what);
    clip_tokenizer_free(t);
}

TEST(tokenizer_rejects_malformed_files) {
    char v[64], m[64];
    snprintf(v, sizeof v, "build/tmp/a2f_tok_vocab_%d.json", (int)getpid());
    snprintf(m, sizeof m, "build/tmp/a2f_tok_merges_%d.txt", (int)getpid());
    size_t vlen = 0, mlen = 0;
    char *vocab = slurp(VOCAB, &vlen), *merges = slurp(MERGES, &mlen);
    EXPECT(vocab && merges, "cannot read the bundled files");
    if (!vocab || !merges) goto out;

    expect_rejected("/nonexistent/vocab.json", MERGES, "/nonexistent/vocab.json", "cannot open", "missing vocab");
    expect_rejected(VOCAB, "/nonexistent/merges.txt", "/nonexistent/merges.txt", "cannot open", "missing merges");
    static const struct {
        const char *json, *what;
    } bad_vocab[] = {
        {"", "JSON"},
        {"not json", "JSON"},
        {"[1, 2, 3]", "object"},
        {"{}", "object"},
        {"{\"a\": \"x\"}", "integer"},
        {"{\"a\": 1.5}", "integer"},
        {"{\"a\": -1}", "integer"},
        {"{\"a\": 1e12}", "integer"},
        {"{\"a\": null}", "integer"},
        {"{\"a\": 0, \"a\": 1}", "twice"},
        {"{\"\": 0}", "empty"},
        {"{\"a\": 0, \"b\": 1}", "byte symbol"},
        {"{\"a\": 0,", "JSON"},
    };
    for (size_t i = 0; i < sizeof bad_vocab / sizeof bad_vocab[0]; i++) {
        write_file(v, bad_vocab[i].json, strlen(bad_vocab[i].json));
        char label[64];
        snprintf(label, sizeof label, "bad vocab %zu", i);
        expect_rejected(v, MERGES, v, bad_vocab[i].what, label);
    }
    // The real vocab without its special tokens.
    {
        char *c = xmalloc(vlen + 1);
        memcpy(c, vocab, vlen + 1);
        char *p = strstr(c, "<|endoftext|>");
        CHECK(p);
        p[2] = 'E';  // "<|Endoftext|>"
        write_file(v, c, vlen);
        expect_rejected(v, MERGES, v, "<|endoftext|>", "vocab without <|endoftext|>");
        free(c);
    }
    // Truncated vocab.json: never a crash, always one error line.
    for (int k = 1; k <= 12; k++) {
        size_t cut = vlen * (size_t)k / 13;
        write_file(v, vocab, cut);
        expect_rejected(v, MERGES, v, NULL, "truncated vocab");
    }
    static const struct {
        const char *text, *what;
    } bad_merges[] = {
        {"#version: 0.2\ni n x\n", ":2:"},
        {"#version: 0.2\nin\n", ":2:"},
        {"i n\nt  h\n", ":2:"},
        {"i n\n n\n", ":2:"},
        {"i n\nzzqqzzqq n\n", "zzqqzzqq"},
        {"i n\n<|startoftext|> a\n", "<|startoftext|>a"},
        {"i n\nt h\x00x\n", "NUL"},
    };
    for (size_t i = 0; i < sizeof bad_merges / sizeof bad_merges[0]; i++) {
        const char *s = bad_merges[i].text;
        size_t n = strlen(s);
        if (strstr(bad_merges[i].what, "NUL")) n += 3;  // includes the embedded NUL and "x\n"
        write_file(m, s, n);
        char label[64];
        snprintf(label, sizeof label, "bad merges %zu", i);
        expect_rejected(VOCAB, m, m, bad_merges[i].what, label);
    }
    // Truncated merges.txt (cut inside a line) is still a valid prefix: it loads; a cut that
    // leaves half a token either loads or is rejected with one line, never crashes.
    for (int k = 1; k <= 6; k++) {
        write_file(m, merges, mlen * (size_t)k / 7);
        a2f_clear_error();
        ClipTokenizer *t = clip_tokenizer_load(VOCAB, m);
        EXPECT(t || (strstr(a2f_last_error(), m) && !strchr(a2f_last_error(), '\n')), "truncated merges: \"%s\"",
               a2f_last_error());
        clip_tokenizer_free(t);
    }
out:
    unlink(v);
    unlink(m);
    free(vocab);
    free(merges);
}

// ---- the CLI verb ----------------------------------------------------------------------

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

TEST(tokenizer_cli) {
    const char *bin = getenv("A2F_BIN");
    if (access(bin && *bin ? bin : "build/arc2face", X_OK) != 0) {
        test_fail(__FILE__, __LINE__, "build/arc2face not found: run `make` first (or set A2F_BIN)");
        return;
    }
    char *out, *err;
    int rc = test_run(NULL, "tokenize 'photo of a id person'", &out, &err);
    char want[1024];
    int o = snprintf(want, sizeof want, "49406 1125 539 320 1014 2533 49407");
    for (int i = 7; i < 77; i++) o += snprintf(want + o, sizeof want - (size_t)o, " 49407");
    snprintf(want + o, sizeof want - (size_t)o, "\n");
    EXPECT(rc == 0 && !strcmp(out, want) && !*err, "tokenize: rc %d, stdout \"%.80s\", stderr \"%s\"", rc, out, err);
    free(out), free(err);

    // ids from transformers: tok("it's 2 CATS", padding="max_length", max_length=8, truncation=True)
    rc = test_run(NULL, "tokenize \"it's 2 CATS\" --max-len 8 --tokenizer assets/tokenizer --tokens", &out, &err);
    EXPECT(rc == 0 && !strncmp(out, "49406 585 568 273 3989 49407 49407 49407\n", 41) && count_lines(out) == 7,
           "tokenize --max-len 8 --tokens: rc %d, stdout \"%s\"", rc, out);
    free(out), free(err);

    rc = test_run(NULL, "tokenize \"$(printf 'bad \\377 text')\"", &out, &err);
    EXPECT(rc == 1 && !*out && count_lines(err) == 1 && strstr(err, "arc2face: error:") && strstr(err, "UTF-8"),
           "invalid UTF-8: rc %d, stdout \"%s\", stderr \"%s\"", rc, out, err);
    free(out), free(err);

    rc = test_run(NULL, "tokenize x --vocab /nonexistent/v.json --merges assets/tokenizer/merges.txt", &out, &err);
    EXPECT(rc == 1 && !*out && count_lines(err) == 1 && strstr(err, "/nonexistent/v.json"),
           "missing vocab: rc %d, stderr \"%s\"", rc, err);
    free(out), free(err);

    rc = test_run(NULL, "tokenize x --vocab assets/tokenizer/vocab.json", &out, &err);
    EXPECT(rc == 2 && count_lines(err) == 1, "--vocab without --merges: rc %d, stderr \"%s\"", rc, err);
    free(out), free(err);
    rc = test_run(NULL, "tokenize", &out, &err);
    EXPECT(rc == 2 && count_lines(err) == 1, "no TEXT: rc %d, stderr \"%s\"", rc, err);
    free(out), free(err);
}
