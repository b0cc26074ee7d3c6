// tokenizer.c: the CLIP byte-level BPE tokenizer (see tokenizer.h for the exact rules).
//
// Pipeline of clip_tokenize:
//   UTF-8 text -> code points (strictly validated)
//   -> segments between literal special tokens (<|startoftext|>, <|endoftext|>)
//   -> per segment: NFC, white space -> ' ', lowercase           (normalise)
//   -> pieces of the CLIP regex                                   (pre_tokenize)
//   -> per piece: byte symbols + "</w>", rank-ordered merges      (bpe)
//   -> [BOS, first max_len-2 tokens, EOS, EOS...]
// Lookups: token string -> id and (left id, right id) -> (rank, merged id) are open
// addressing hash maps built at load time; BPE inside a piece uses a binary heap of
// candidate merges (O(n log n) in the piece length), the same order as the
// `tokenizers` library: lowest rank first, then leftmost position.
#include "tokenizer.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../kernels/common.h"
#include "../kernels/mapfile.h"
#include "unicode_tables.h"

#define MAX_FILE_BYTES (256L << 20)  // far above the 0.9 MB vocab.json / 0.5 MB merges.txt of SD1.5

typedef struct {
    uint64_t key;    // (left id << 32) | right id; EMPTY_KEY when unused
    int32_t rank;    // merge priority (line order in merges.txt, 0 first)
    int32_t new_id;  // id of the merged token
} MergeSlot;
#define EMPTY_KEY UINT64_MAX  // ids are < 2^31, so no real key has all bits set

struct ClipTokenizer {
    int ntok;
    char *strs;       // all token strings, NUL-terminated, back to back
    size_t *tok_off;  // [ntok] offset of token k in strs
    int32_t *tok_id;  // [ntok]
    int32_t *by_id;   // [ntok] token indices sorted by id (for clip_token_str)
    int32_t *vmap;    // [vcap] token index, -1 empty
    uint32_t vcap;    // power of two
    MergeSlot *mmap;  // [mcap]
    uint32_t mcap;    // power of two
    int nmerges;
    int32_t byte_id[256];    // id of the byte symbol of byte b
    int32_t byte_w_id[256];  // id of the same symbol + "</w>" (end of a word)
    int32_t bos, eos;        // <|startoftext|>, <|endoftext|> (eos also pads)
};

// ---------------------------------------------------------------------------------------
// Unicode classes (tables from unicode_tables.c, binary searches over sorted ranges)

static int in_ranges(const uint32_t (*r)[2], int n, uint32_t c) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (c < r[mid][0])
            hi = mid - 1;
        else if (c > r[mid][1])
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

static int is_space(uint32_t c) {
    if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
    return in_ranges(uni_space_ranges, uni_space_ranges_n, c);
}
static int is_letter(uint32_t c) {
    if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
    return in_ranges(uni_letter_ranges, uni_letter_ranges_n, c);
}
static int is_number(uint32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    return in_ranges(uni_number_ranges, uni_number_ranges_n, c);
}

// Simple lowercase of one code point (U+0130 is handled by the caller).
static uint32_t to_lower(uint32_t c) {
    if (c < 0x80) return c >= 'A' && c <= 'Z' ? c + 32 : c;
    int lo = 0, hi = uni_lower_runs_n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const UniLowerRun *r = &uni_lower_runs[mid];
        uint32_t last = r->start + (uint32_t)(r->count - 1) * r->stride;
        if (c < r->start)
            hi = mid - 1;
        else if (c > last)
            lo = mid + 1;
        else
            return (c - r->start) % r->stride == 0 ? (uint32_t)((int64_t)c + r->delta) : c;
    }
    return c;
}

static int ccc_of(uint32_t c) {
    if (c < 0x300) return 0;
    int lo = 0, hi = uni_ccc_runs_n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (c < uni_ccc_runs[mid].lo)
            hi = mid - 1;
        else if (c > uni_ccc_runs[mid].hi)
            lo = mid + 1;
        else
            return uni_ccc_runs[mid].ccc;
    }
    return 0;
}

// Hangul syllable constants (Unicode chapter 3.12).
enum {
    SBASE = 0xAC00,
    LBASE = 0x1100,
    VBASE = 0x1161,
    TBASE = 0x11A7,
    LCOUNT = 19,
    VCOUNT = 21,
    TCOUNT = 28,
    NCOUNT = VCOUNT * TCOUNT,
    SCOUNT = LCOUNT * NCOUNT
};

// Writes the full canonical decomposition of c to out (<= 4 code points); returns the count.
static int decompose(uint32_t c, uint32_t *out) {
    if (c >= SBASE && c < SBASE + SCOUNT) {
        uint32_t i = c - SBASE;
        out[0] = LBASE + i / NCOUNT;
        out[1] = VBASE + (i % NCOUNT) / TCOUNT;
        if (i % TCOUNT == 0) return 2;
        out[2] = TBASE + i % TCOUNT;
        return 3;
    }
    if (c >= 0xC0) {
        int lo = 0, hi = uni_decomp_n - 1;
        while (lo <= hi) {
            int mid = (lo + hi) / 2;
            if (c < uni_decomp[mid].cp)
                hi = mid - 1;
            else if (c > uni_decomp[mid].cp)
                lo = mid + 1;
            else {
                memcpy(out, &uni_decomp_cps[uni_decomp[mid].off], uni_decomp[mid].len * sizeof *out);
                return uni_decomp[mid].len;
            }
        }
    }
    out[0] = c;
    return 1;
}

// The primary composite of (a, b), or 0 if none.
static uint32_t compose(uint32_t a, uint32_t b) {
    if (a >= LBASE && a < LBASE + LCOUNT && b >= VBASE && b < VBASE + VCOUNT)
        return SBASE + ((a - LBASE) * VCOUNT + (b - VBASE)) * TCOUNT;
    if (a >= SBASE && a < SBASE + SCOUNT && (a - SBASE) % TCOUNT == 0 && b > TBASE && b < TBASE + TCOUNT)
        return a + (b - TBASE);
    int lo = 0, hi = uni_comp_n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const UniComp *p = &uni_comp[mid];
        if (a < p->first || (a == p->first && b < p->second))
            hi = mid - 1;
        else if (a > p->first || b > p->second)
            lo = mid + 1;
        else
            return p->composite;
    }
    return 0;
}

// NFC of in[0..n) into out (capacity 4n); returns the output length.
static int nfc(const uint32_t *in, int n, uint32_t *out) {
    int m = 0;
    for (int i = 0; i < n; i++) m += decompose(in[i], out + m);
    // Canonical ordering: stable insertion sort of each run of non-starters by class.
    for (int i = 1; i < m; i++) {
        int cc = ccc_of(out[i]);
        if (!cc) continue;
        for (int k = i; k > 0; k--) {
            int pc = ccc_of(out[k - 1]);
            if (pc <= cc) break;
            uint32_t t = out[k - 1];
            out[k - 1] = out[k];
            out[k] = t;
        }
    }
    // Canonical composition: a character joins the last starter unless blocked by an
    // intervening character of class 0 or of a class >= its own.
    int w = 0, starter = -1, last_cc = 0;
    for (int i = 0; i < m; i++) {
        uint32_t c = out[i];
        int cc = ccc_of(c);
        if (starter >= 0 && (last_cc < cc || (last_cc == 0 && w - 1 == starter))) {
            uint32_t comp = compose(out[starter], c);
            if (comp) {
                out[starter] = comp;
                continue;
            }
        }
        if (cc == 0) starter = w;
        last_cc = cc;
        out[w++] = c;
    }
    return w;
}

// ---------------------------------------------------------------------------------------
// UTF-8

// Strict decoding (no overlongs, surrogates or code points above U+10FFFF). Returns the
// number of code points, or -1 with *bad = byte offset of the first invalid sequence.
static long utf8_decode(const unsigned char *s, size_t n, uint32_t *out, size_t *bad) {
    long m = 0;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        int len;
        uint32_t cp;
        unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte
        if (c < 0x80)
            len = 1, cp = c;
        else if (c >= 0xC2 && c <= 0xDF)
            len = 2, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF)
            len = 3, cp = c & 0x0F, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        else if (c >= 0xF0 && c <= 0xF4)
            len = 4, cp = c & 0x07, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        else {
            *bad = i;
            return -1;
        }
        if (i + (size_t)len > n) {
            *bad = i;
            return -1;
        }
        for (int k = 1; k < len; k++) {
            unsigned b = s[i + k];
            if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) {
                *bad = i;
                return -1;
            }
            cp = (cp << 6) | (b & 0x3F);
        }
        out[m++] = cp;
        i += (size_t)len;
    }
    return m;
}

static int utf8_encode(uint32_t c, unsigned char *o) {
    if (c < 0x80) return o[0] = (unsigned char)c, 1;
    if (c < 0x800) return o[0] = (unsigned char)(0xC0 | c >> 6), o[1] = (unsigned char)(0x80 | (c & 0x3F)), 2;
    if (c < 0x10000) {
        o[0] = (unsigned char)(0xE0 | c >> 12), o[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | c >> 18), o[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3F)), o[3] = (unsigned char)(0x80 | (c & 0x3F));
    return 4;
}

// GPT-2's byte -> printable character map: printable Latin-1 bytes map to themselves,
// the other 68 bytes to U+0100.. in byte order.
static uint32_t byte_to_unicode(int b) {
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) return (uint32_t)b;
    int n = 0;
    for (int k = 0; k < b; k++)
        if (!((k >= '!' && k <= '~') || (k >= 0xA1 && k <= 0xAC) || (k >= 0xAE && k <= 0xFF))) n++;
    return 256 + (uint32_t)n;
}

// ---------------------------------------------------------------------------------------
// Hash maps

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;  // FNV-1a
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static uint64_t hash_u64(uint64_t x) {  // splitmix64 finaliser
    x ^= x >> 30, x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27, x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint32_t pow2_at_least(uint64_t n) {
    uint32_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

// Slot of token string s in vmap: its index, or the empty slot where it would go.
static uint32_t vocab_slot(const ClipTokenizer *t, const char *s) {
    uint32_t mask = t->vcap - 1, h = (uint32_t)hash_str(s) & mask;
    while (t->vmap[h] >= 0 && strcmp(t->strs + t->tok_off[t->vmap[h]], s) != 0) h = (h + 1) & mask;
    return h;
}

int clip_token_id(const ClipTokenizer *t, const char *token) {
    int32_t k = t->vmap[vocab_slot(t, token)];
    return k >= 0 ? t->tok_id[k] : -1;
}

const char *clip_token_str(const ClipTokenizer *t, int id) {
    int lo = 0, hi = t->ntok - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, mid_id = t->tok_id[t->by_id[mid]];
        if (id < mid_id)
            hi = mid - 1;
        else if (id > mid_id)
            lo = mid + 1;
        else
            return t->strs + t->tok_off[t->by_id[mid]];
    }
    return NULL;
}

static MergeSlot *merge_slot(const ClipTokenizer *t, int32_t a, int32_t b) {
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    uint32_t mask = t->mcap - 1, h = (uint32_t)hash_u64(key) & mask;
    while (t->mmap[h].key != EMPTY_KEY && t->mmap[h].key != key) h = (h + 1) & mask;
    return &t->mmap[h];
}

static const MergeSlot *merge_find(const ClipTokenizer *t, int32_t a, int32_t b) {
    const MergeSlot *s = merge_slot(t, a, b);
    return s->key == EMPTY_KEY ? NULL : s;
}

// ---------------------------------------------------------------------------------------
// Loading

// Reads a whole file into a malloc'd, NUL-terminated buffer (freed with
// free()). NULL + error naming the file.
static char *read_all(const char *path, size_t *len) {
    MappedFile m;
    if (read_file(&m, path, MAX_FILE_BYTES, "a tokenizer file") != 0) return NULL;
    *len = m.len;
    return (char *)m.data;
}

static ClipTokenizer *fail(ClipTokenizer *t) {
    clip_tokenizer_free(t);
    return NULL;
}

static int cmp_by_id(const void *a, const void *b, void *ctx) {
    const int32_t *ids = ctx;
    int32_t x = ids[*(const int32_t *)a], y = ids[*(const int32_t *)b];
    return (x > y) - (x < y);
}

static int load_vocab(ClipTokenizer *t, const char *path) {
    size_t len = 0;
    char *buf = read_all(path, &len);
    if (!buf) return 1;
    cJSON *root = cJSON_ParseWithLength(buf, len);
    if (!root) {
        const char *e = cJSON_GetErrorPtr();
        long at = e && e >= buf && e <= buf + len ? (long)(e - buf) : -1;
        a2f_set_error("%s: not valid JSON (error near byte %ld)", path, at);
        free(buf);
        return 1;
    }
    free(buf);
    int rc = 1;
    if (!cJSON_IsObject(root) || !root->child) {
        a2f_set_error("%s: expected a non-empty JSON object {token: id, ...}", path);
        goto done;
    }
    size_t nstr = 0;
    int n = 0;
    for (cJSON *e = root->child; e; e = e->next) {
        double v = e->valuedouble;
        if (!e->string || !e->string[0]) {
            a2f_set_error("%s: entry %d has an empty token", path, n);
            goto done;
        }
        if (!cJSON_IsNumber(e) || !isfinite(v) || v != floor(v) || v < 0 || v > INT32_MAX) {
            a2f_set_error("%s: token \"%.40s\": id is not an integer in [0, 2^31)", path, e->string);
            goto done;
        }
        nstr += strlen(e->string) + 1;
        n++;
    }
    t->ntok = n;
    t->strs = xmalloc(nstr);
    t->tok_off = xmalloc((size_t)n * sizeof *t->tok_off);
    t->tok_id = xmalloc((size_t)n * sizeof *t->tok_id);
    t->by_id = xmalloc((size_t)n * sizeof *t->by_id);
    t->vcap = pow2_at_least(2 * (uint64_t)n);
    t->vmap = xmalloc(t->vcap * sizeof *t->vmap);
    memset(t->vmap, 0xff, t->vcap * sizeof *t->vmap);
    size_t off = 0;
    int k = 0;
    for (cJSON *e = root->child; e; e = e->next, k++) {
        size_t l = strlen(e->string) + 1;
        memcpy(t->strs + off, e->string, l);
        t->tok_off[k] = off;
        t->tok_id[k] = (int32_t)e->valuedouble;
        t->by_id[k] = k;
        uint32_t h = vocab_slot(t, e->string);
        if (t->vmap[h] >= 0) {
            a2f_set_error("%s: token \"%.40s\" appears twice", path, e->string);
            goto done;
        }
        t->vmap[h] = k;
        off += l;
    }
    qsort_r(t->by_id, (size_t)n, sizeof *t->by_id, cmp_by_id, t->tok_id);
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

static int load_merges(ClipTokenizer *t, const char *path) {
    size_t len = 0;
    char *buf = read_all(path, &len);
    if (!buf) return 1;
    if (memchr(buf, 0, len)) {
        a2f_set_error("%s: contains a NUL byte (not a text merges file)", path);
        free(buf);
        return 1;
    }
    long nlines = 1;
    for (size_t i = 0; i < len; i++) nlines += buf[i] == '\n';
    t->mcap = pow2_at_least(2 * (uint64_t)nlines);
    t->mmap = xmalloc(t->mcap * sizeof *t->mmap);
    for (uint32_t i = 0; i < t->mcap; i++) t->mmap[i].key = EMPTY_KEY;
    char *joined = NULL;
    size_t joined_cap = 0;
    int rc = 1, rank = 0;
    long lineno = 0;
    for (char *line = buf; line < buf + len;) {
        char *nl = strchr(line, '\n');
        char *end = nl ? nl : buf + len;
        lineno++;
        if (end > line && end[-1] == '\r') end--;
        *end = 0;
        char *next = nl ? nl + 1 : buf + len;
        if (line == end || strncmp(line, "#version", 8) == 0) {  // header and blank lines
            line = next;
            continue;
        }
        char *sp = strchr(line, ' ');
        if (!sp || sp == line || sp + 1 == end || strchr(sp + 1, ' ')) {
            a2f_set_error("%s:%ld: expected a merge \"LEFT RIGHT\" (two tokens, one space)", path, lineno);
            goto done;
        }
        *sp = 0;
        const char *a = line, *b = sp + 1;
        int ia = clip_token_id(t, a), ib = clip_token_id(t, b);
        size_t la = (size_t)(sp - line), lb = strlen(b);
        if (la + lb + 1 > joined_cap) {
            joined_cap = 2 * (la + lb + 1);
            free(joined);
            joined = xmalloc(joined_cap);
        }
        memcpy(joined, a, la);
        memcpy(joined + la, b, lb + 1);
        int im = clip_token_id(t, joined);
        if (ia < 0 || ib < 0 || im < 0) {
            a2f_set_error("%s:%ld: merge token \"%.40s\" is not in the vocabulary", path, lineno,
                          ia < 0   ? a
                          : ib < 0 ? b
                                   : joined);
            goto done;
        }
        MergeSlot *s = merge_slot(t, ia, ib);  // a repeated pair: the later line wins (as tokenizers)
        s->key = (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib;
        s->rank = rank++;
        s->new_id = im;
        line = next;
    }
    t->nmerges = rank;
    rc = 0;
done:
    free(joined);
    free(buf);
    return rc;
}

ClipTokenizer *clip_tokenizer_load(const char *vocab_json, const char *merges_txt) {
    ClipTokenizer *t = xcalloc(1, sizeof *t);
    if (load_vocab(t, vocab_json)) return fail(t);
    for (int b = 0; b < 256; b++) {
        unsigned char s[8];
        int l = utf8_encode(byte_to_unicode(b), s);
        memcpy(s + l, "</w>", 5);
        t->byte_w_id[b] = clip_token_id(t, (const char *)s);
        s[l] = 0;
        t->byte_id[b] = clip_token_id(t, (const char *)s);
        if (t->byte_id[b] < 0 || t->byte_w_id[b] < 0) {
            a2f_set_error("%s: byte symbol \"%s%s\" (byte 0x%02X) is missing: not a byte-level BPE vocabulary",
                          vocab_json, (const char *)s, t->byte_id[b] < 0 ? "" : "</w>", b);
            return fail(t);
        }
    }
    t->bos = clip_token_id(t, "<|startoftext|>");
    t->eos = clip_token_id(t, "<|endoftext|>");
    if (t->bos < 0 || t->eos < 0) {
        a2f_set_error("%s: special token %s is missing", vocab_json, t->bos < 0 ? "<|startoftext|>" : "<|endoftext|>");
        return fail(t);
    }
    if (load_merges(t, merges_txt)) return fail(t);
    return t;
}

const char *clip_bundled_dir(void) {
    static char dir[4096];
    if (access("assets/tokenizer/vocab.json", R_OK) == 0) return "assets/tokenizer";
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return NULL;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return NULL;
    *slash = 0;
    char probe[4096 + 64];
    snprintf(dir, sizeof dir, "%.4000s/../assets/tokenizer", exe);
    snprintf(probe, sizeof probe, "%s/vocab.json", dir);
    return access(probe, R_OK) == 0 ? dir : NULL;
}

ClipTokenizer *clip_tokenizer_load_dir(const char *dir) {
    if (!dir && !(dir = clip_bundled_dir())) {
        a2f_set_error(
            "assets/tokenizer/vocab.json: bundled tokenizer not found (run from the repository root "
            "or pass the tokenizer files)");
        return NULL;
    }
    size_t n = strlen(dir) + 16;
    char *v = xmalloc(n), *m = xmalloc(n);
    snprintf(v, n, "%s/vocab.json", dir);
    snprintf(m, n, "%s/merges.txt", dir);
    ClipTokenizer *t = clip_tokenizer_load(v, m);
    free(v);
    free(m);
    return t;
}

void clip_tokenizer_free(ClipTokenizer *t) {
    if (!t) return;
    free(t->strs);
    free(t->tok_off);
    free(t->tok_id);
    free(t->by_id);
    free(t->vmap);
    free(t->mmap);
    free(t);
}

// ---------------------------------------------------------------------------------------
// BPE of one piece

typedef struct {
    int32_t id, prev, next;  // prev/next: neighbouring live symbols, -1 at the ends
    int32_t alive;
} Sym;

typedef struct {
    int32_t rank, pos, new_id;
} Cand;

static int cand_less(const Cand *x, const Cand *y) {
    return x->rank != y->rank ? x->rank < y->rank : x->pos < y->pos;
}

static void heap_push(Cand *h, int *n, Cand c) {
    int i = (*n)++;
    while (i > 0 && cand_less(&c, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = c;
}

static Cand heap_pop(Cand *h, int *n) {
    Cand top = h[0], last = h[--(*n)];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && cand_less(&h[c + 1], &h[c])) c++;
        if (!cand_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0) h[i] = last;
    return top;
}

static void push_pair(const ClipTokenizer *t, const Sym *s, int pos, Cand *h, int *nh) {
    if (pos < 0 || s[pos].next < 0) return;
    const MergeSlot *m = merge_find(t, s[pos].id, s[s[pos].next].id);
    if (m) heap_push(h, nh, (Cand){m->rank, pos, m->new_id});
}

// BPE of the bytes b[0..n) (n >= 1) as one word; appends at most `room` ids to out.
// Returns the number appended. sym/heap: scratch of n and 3n entries.
static int bpe_word(const ClipTokenizer *t, const unsigned char *b, int n, Sym *s, Cand *h, int32_t *out, int room) {
    for (int i = 0; i < n; i++)
        s[i] = (Sym){i == n - 1 ? t->byte_w_id[b[i]] : t->byte_id[b[i]], i - 1, i + 1 < n ? i + 1 : -1, 1};
    int nh = 0;
    for (int i = 0; i + 1 < n; i++) push_pair(t, s, i, h, &nh);
    while (nh > 0) {
        Cand c = heap_pop(h, &nh);
        Sym *l = &s[c.pos];
        if (!l->alive || l->next < 0) continue;
        // A stale candidate: the pair at pos changed since it was pushed.
        const MergeSlot *m = merge_find(t, l->id, s[l->next].id);
        if (!m || m->new_id != c.new_id) continue;
        Sym *r = &s[l->next];
        l->id = c.new_id;
        r->alive = 0;
        l->next = r->next;
        if (r->next >= 0) s[r->next].prev = c.pos;
        push_pair(t, s, l->prev, h, &nh);
        push_pair(t, s, c.pos, h, &nh);
    }
    int k = 0;
    for (int i = 0; i >= 0 && k < room; i = s[i].next) out[k++] = s[i].id;
    return k;
}

// ---------------------------------------------------------------------------------------
// Tokenization

typedef struct {
    const ClipTokenizer *t;
    int32_t *out;    // content ids
    int n, cap;      // written, wanted
    size_t scratch;  // capacity of the three buffers below, in bytes of the piece
    unsigned char *bytes;
    Sym *sym;    // [scratch]
    Cand *heap;  // [3 * scratch]
} Emit;

// BPE of the piece p[0..n) (code points) into e.
static void emit_piece(Emit *e, const uint32_t *p, int n) {
    if (n <= 0 || e->n >= e->cap) return;
    size_t need = 4 * (size_t)n;
    if (need > e->scratch) {
        free(e->bytes), free(e->sym), free(e->heap);
        e->scratch = need > 2 * e->scratch ? need : 2 * e->scratch;
        e->bytes = xmalloc(e->scratch);
        e->sym = xmalloc(e->scratch * sizeof *e->sym);
        e->heap = xmalloc(3 * e->scratch * sizeof *e->heap);
    }
    int nb = 0;
    for (int i = 0; i < n; i++) nb += utf8_encode(p[i], e->bytes + nb);
    e->n += bpe_word(e->t, e->bytes, nb, e->sym, e->heap, e->out + e->n, e->cap - e->n);
}

static int match_ascii(const uint32_t *p, int n, const char *lit) {
    int i = 0;
    for (; lit[i]; i++)
        if (i >= n || p[i] != (unsigned char)lit[i]) return 0;
    return i;
}

// Normalises the segment in[0..n) and emits its pieces. buf: scratch of 12n code points
// (NFC gives <= 4 per input code point, lowercase <= 2 per NFC code point).
static void emit_segment(Emit *e, const uint32_t *in, int n, uint32_t *buf) {
    if (n == 0) return;
    uint32_t *norm = buf, *low = buf + 4 * (size_t)n;
    int m = nfc(in, n, norm), k = 0;
    for (int i = 0; i < m; i++) {
        uint32_t c = norm[i];
        if (is_space(c))
            low[k++] = ' ';
        else if (c == 0x130)
            low[k++] = 'i', low[k++] = 0x307;  // the one multi-character lowercase
        else
            low[k++] = to_lower(c);
    }
    // The CLIP regex, alternatives in order, at each position; white space is dropped.
    static const char *const specials[2] = {"<|startoftext|>", "<|endoftext|>"};
    static const char *const contractions[7] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    for (int i = 0; i < k && e->n < e->cap;) {
        const uint32_t *p = low + i;
        int rest = k - i, len = 0;
        if (is_space(*p)) {
            i++;
            continue;
        }
        for (int s = 0; s < 2 && !len; s++) {
            if ((len = match_ascii(p, rest, specials[s]))) {
                // The ByteLevel pre-tokenizer then splits it into "<|", NAME, "|>".
                emit_piece(e, p, 2);
                emit_piece(e, p + 2, len - 4);
                emit_piece(e, p + len - 2, 2);
            }
        }
        if (len) {
            i += len;
            continue;
        }
        for (int s = 0; s < 7 && !len; s++) len = match_ascii(p, rest, contractions[s]);
        if (!len) {
            if (is_letter(*p)) {
                while (len < rest && is_letter(p[len])) len++;
            } else if (is_number(*p)) {
                len = 1;
            } else {
                while (len < rest && !is_space(p[len]) && !is_letter(p[len]) && !is_number(p[len])) len++;
            }
        }
        emit_piece(e, p, len);
        i += len;
    }
}

int clip_tokenize(const ClipTokenizer *t, const char *text, int32_t *ids, int max_len) {
    if (max_len < 2) {
        a2f_set_error("tokenize: max_len %d is too small (BOS and EOS need 2)", max_len);
        return -1;
    }
    size_t nbytes = strlen(text), bad = 0;
    if (nbytes > (size_t)INT_MAX / 64) {
        a2f_set_error("tokenize: text of %zu bytes is too long", nbytes);
        return -1;
    }
    uint32_t *cps = xmalloc((nbytes + 1) * sizeof *cps);
    long n = utf8_decode((const unsigned char *)text, nbytes, cps, &bad);
    if (n < 0) {
        free(cps);
        a2f_set_error("tokenize: invalid UTF-8 at byte %zu of the text", bad);
        return -1;
    }
    uint32_t *buf = xmalloc((12 * (size_t)n + 1) * sizeof *buf);
    Emit e = {.t = t, .out = ids + 1, .n = 0, .cap = max_len - 2};
    // Special tokens written in the raw text are matched first (case-sensitive).
    long start = 0;
    for (long i = 0; i < n && e.n < e.cap;) {
        int len = 0, id = -1;
        if (cps[i] == '<') {
            if ((len = match_ascii(cps + i, (int)(n - i), "<|startoftext|>")))
                id = t->bos;
            else if ((len = match_ascii(cps + i, (int)(n - i), "<|endoftext|>")))
                id = t->eos;
        }
        if (id < 0) {
            i++;
            continue;
        }
        emit_segment(&e, cps + start, (int)(i - start), buf);
        if (e.n < e.cap) e.out[e.n++] = id;
        i += len;
        start = i;
    }
    if (e.n < e.cap) emit_segment(&e, cps + start, (int)(n - start), buf);
    free(cps);
    free(buf);
    free(e.bytes);
    free(e.sym);
    free(e.heap);
    ids[0] = t->bos;
    ids[1 + e.n] = t->eos;
    for (int i = 2 + e.n; i < max_len; i++) ids[i] = t->eos;
    return e.n + 2;
}
