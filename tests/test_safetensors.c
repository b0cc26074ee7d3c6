// test_safetensors.c: the safetensors reader and writer.
//
//  - valid fixtures written by Python's safetensors library (tools/ref/
//    make_safetensors_fixtures.py): dtypes, shapes, file order and values,
//    which follow closed forms (arange etc.) this file knows independently;
//  - every malformed fixture is rejected with one line naming the file and
//    the specific problem;
//  - the writer round-trips (F32/F16/BF16/I64, scalar, empty, metadata that
//    needs escaping) and reproduces Python-written files byte for byte;
//  - writes are atomic (no PATH or PATH.tmp after a failure, old file kept);
//  - a few thousand random mutations of a valid file: open returns 0 or -1,
//    and whatever it accepts satisfies the tiling invariants.
// Run from the repository root (fixture paths are relative).
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../kernels/common.h"
#include "../nn/safetensors.h"
#include "test.h"

#define FIX "tests/fixtures/safetensors/"

static int read_file(const char *path, uint8_t **buf, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *buf = xmalloc((size_t)n + 1);
    *len = fread(*buf, 1, (size_t)n, f);
    fclose(f);
    return *len == (size_t)n ? 0 : -1;
}

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static int shape_is(const StTensor *t, int ndim, const int64_t *want) {
    if (t->ndim != ndim) return 0;
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != want[i]) return 0;
    return 1;
}

// Independent of kernels/tensor.c: bf16 of a float whose low 16 bits are zero
// is just its high half.
static uint16_t bf16_bits_exact(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)(u >> 16);
}

TEST(safetensors_read_python_mixed) {
    SafeTensors st;
    const char *path = FIX "valid_mixed.safetensors";
    if (st_open(&st, path)) {
        EXPECT(0, "open failed: %s", a2f_last_error());
        return;
    }
    EXPECT(st_count(&st) == 7, "count %d", st_count(&st));
    // File (offset) order as Python's writer laid it out: descending dtype, then name.
    const char *order[] = {"d.index", "a.weight", "e.scalar", "f.empty", "c.bf16", "b.half", "g.mask"};
    uint64_t end = 0;
    for (int i = 0; i < st_count(&st) && i < 7; i++) {
        const StTensor *t = st_tensor(&st, i);
        EXPECT(strcmp(t->name, order[i]) == 0, "tensor %d is %s, want %s", i, t->name, order[i]);
        EXPECT(t->offset == end, "%s offset %llu, want %llu", t->name, (unsigned long long)t->offset,
               (unsigned long long)end);
        end = t->offset + t->nbytes;
        EXPECT(st_find(&st, t->name) == i, "st_find(%s)", t->name);
    }
    EXPECT(end == st.data_len, "tensors end at %llu of %llu", (unsigned long long)end, (unsigned long long)st.data_len);
    EXPECT(st_find(&st, "nope") == -1, "st_find(nope)");

    // a.weight F32 [2, 3] = arange(6)
    int i = st_find(&st, "a.weight");
    int64_t s23[] = {2, 3}, s32[] = {3, 2};
    if (i >= 0) {
        EXPECT(st_tensor(&st, i)->dtype == ST_F32 && shape_is(st_tensor(&st, i), 2, s23), "a.weight dtype/shape");
        float got[6], want[6];
        for (int k = 0; k < 6; k++) want[k] = (float)k;
        EXPECT(st_load_f32(&st, "a.weight", got, 2, s23) == 0, "%s", a2f_last_error());
        EXPECT_CLOSE("a.weight", got, want, 6, 0, 0);  // exact: small integers
        uint16_t gb[6];
        EXPECT(st_load_bf16(&st, "a.weight", gb, 2, s23) == 0, "%s", a2f_last_error());
        for (int k = 0; k < 6; k++) EXPECT(gb[k] == bf16_bits_exact(want[k]), "a.weight bf16[%d] 0x%04x", k, gb[k]);
        // Shape mismatch: the error names file, tensor, actual and expected shapes.
        EXPECT(st_load_f32(&st, "a.weight", got, 2, s32) == -1, "shape mismatch accepted");
        const char *e = a2f_last_error();
        EXPECT(strstr(e, path) && strstr(e, "a.weight") && strstr(e, "[2, 3]") && strstr(e, "[3, 2]"), "error: %s", e);
    }
    // b.half F16 [5] = arange(5) * 0.5 - 1
    {
        int64_t s5[] = {5};
        float got[5], want[5];
        for (int k = 0; k < 5; k++) want[k] = k * 0.5f - 1;
        EXPECT(st_load_f32(&st, "b.half", got, 1, s5) == 0, "%s", a2f_last_error());
        EXPECT_CLOSE("b.half", got, want, 5, 0, 0);  // exact: multiples of 0.5 are exact in f16
        uint16_t gb[5];
        EXPECT(st_load_bf16(&st, "b.half", gb, 1, s5) == 0, "%s", a2f_last_error());
        for (int k = 0; k < 5; k++) EXPECT(gb[k] == bf16_bits_exact(want[k]), "b.half bf16[%d]", k);
    }
    // c.bf16 BF16 [3, 1] = (arange(3) - 1) * 1.5
    {
        int64_t s31[] = {3, 1};
        float got[3], want[3] = {-1.5f, 0.0f, 1.5f};
        EXPECT(st_load_f32(&st, "c.bf16", got, 2, s31) == 0, "%s", a2f_last_error());
        EXPECT_CLOSE("c.bf16", got, want, 3, 0, 0);  // exact in bf16
    }
    // d.index I64 [4] = arange(4) * 1e12: raw bytes, refused by the float loader.
    i = st_find(&st, "d.index");
    if (i >= 0) {
        const StTensor *t = st_tensor(&st, i);
        int64_t s4[] = {4};
        EXPECT(t->dtype == ST_I64 && shape_is(t, 1, s4) && t->nbytes == 32, "d.index dtype/shape");
        for (int k = 0; k < 4; k++) {
            int64_t v;
            memcpy(&v, (const uint8_t *)t->data + 8 * k, 8);
            EXPECT(v == k * 1000000000000ll, "d.index[%d] = %lld", k, (long long)v);
        }
        float tmp[4];
        EXPECT(st_load_f32(&st, "d.index", tmp, 1, s4) == -1, "I64 loaded as float");
        EXPECT(strstr(a2f_last_error(), "I64") && strstr(a2f_last_error(), path), "error: %s", a2f_last_error());
    }
    // e.scalar F32 [] = 7.25
    i = st_find(&st, "e.scalar");
    if (i >= 0) {
        EXPECT(st_tensor(&st, i)->ndim == 0 && st_tensor(&st, i)->numel == 1, "e.scalar rank");
        float v = 0;
        EXPECT(st_load_f32(&st, "e.scalar", &v, 0, s23) == 0 && v == 7.25f, "e.scalar %g: %s", v, a2f_last_error());
    }
    // f.empty F32 [0, 3]
    i = st_find(&st, "f.empty");
    if (i >= 0) {
        int64_t s03[] = {0, 3};
        const StTensor *t = st_tensor(&st, i);
        EXPECT(shape_is(t, 2, s03) && t->numel == 0 && t->nbytes == 0, "f.empty");
        float dummy = 42;
        EXPECT(st_load_f32(&st, "f.empty", &dummy, 2, s03) == 0 && dummy == 42, "f.empty load");
    }
    // g.mask BOOL [3] = [1, 0, 1]
    i = st_find(&st, "g.mask");
    if (i >= 0) {
        const uint8_t *d = st_tensor(&st, i)->data;
        EXPECT(st_tensor(&st, i)->dtype == ST_BOOL && d[0] == 1 && d[1] == 0 && d[2] == 1, "g.mask");
    }
    // Missing tensor: the error names it and the file.
    float tmp;
    EXPECT(st_load_f32(&st, "no.such", &tmp, 0, NULL) == -1, "missing tensor loaded");
    EXPECT(strstr(a2f_last_error(), "no.such") && strstr(a2f_last_error(), path), "error: %s", a2f_last_error());
    // Metadata.
    EXPECT(st.nmeta == 2, "nmeta %d", st.nmeta);
    const char *fmt = st_metadata_get(&st, "format"), *note = st_metadata_get(&st, "note");
    EXPECT(fmt && strcmp(fmt, "pt") == 0, "format");
    EXPECT(note && strcmp(note, "arc2face fixture") == 0, "note");
    EXPECT(st_metadata_get(&st, "nope") == NULL, "missing metadata key");
    st_close(&st);
}

TEST(safetensors_read_unaligned_and_edge_files) {
    SafeTensors st;
    // Ascending alignment: F32/F16/BF16 data at odd offsets.
    if (st_open(&st, FIX "valid_unaligned.safetensors") == 0) {
        EXPECT(st_count(&st) == 4, "count");
        int i = st_find(&st, "f32");
        EXPECT(i >= 0 && ((uintptr_t)st_tensor(&st, i)->data % 4) != 0, "f32 data should be misaligned");
        float f32[2], f16[3], bf[1];
        float w32[2] = {0.25f, -8.0f}, w16[3] = {1, 2, 3}, wbf[1] = {-3.0f};
        EXPECT(st_load_f32(&st, "f32", f32, 0, NULL) == 0, "%s", a2f_last_error());
        EXPECT(st_load_f32(&st, "f16", f16, 0, NULL) == 0, "%s", a2f_last_error());
        EXPECT(st_load_f32(&st, "bf16", bf, 0, NULL) == 0, "%s", a2f_last_error());
        EXPECT_CLOSE("f32", f32, w32, 2, 0, 0);  // exact: copied bits
        EXPECT_CLOSE("f16", f16, w16, 3, 0, 0);  // exact: small integers
        EXPECT_CLOSE("bf16", bf, wbf, 1, 0, 0);  // exact
        const uint8_t *u = st_tensor(&st, st_find(&st, "u8"))->data;
        EXPECT(u[0] == 1 && u[1] == 2 && u[2] == 3, "u8");
        st_close(&st);
    } else {
        EXPECT(0, "%s", a2f_last_error());
    }
    if (st_open(&st, FIX "valid_empty.safetensors") == 0) {
        EXPECT(st_count(&st) == 0 && st.data_len == 0, "empty");
        EXPECT(st_metadata_get(&st, "format") && !strcmp(st_metadata_get(&st, "format"), "pt"), "format");
        st_close(&st);
    } else {
        EXPECT(0, "%s", a2f_last_error());
    }
    if (st_open(&st, FIX "valid_leading_ws.safetensors") == 0) {
        float v = 0;
        int64_t s1[] = {1};
        EXPECT(st_load_f32(&st, "x", &v, 1, s1) == 0 && v == 1.5f, "x = %g", v);
        st_close(&st);
    } else {
        EXPECT(0, "%s", a2f_last_error());
    }
    // Not a file / missing file.
    EXPECT(st_open(&st, FIX "no_such.safetensors") == -1 && strstr(a2f_last_error(), "no_such.safetensors"), "missing");
    EXPECT(st_open(&st, FIX) == -1 && strstr(a2f_last_error(), "not a regular file"), "%s", a2f_last_error());
}

// Each malformed fixture with a phrase its error line must contain.
static const struct {
    const char *file, *phrase;
} k_bad[] = {
    {"bad_empty", "empty file"},
    {"bad_short", "too short"},
    {"bad_truncated", "past the end of the 5-byte data buffer"},
    {"bad_header_past_end", "header length 4096 runs past the end of the file"},
    {"bad_header_absurd", "exceeds the limit"},
    {"bad_json", "not valid JSON"},
    {"bad_utf8", "not valid UTF-8"},
    {"bad_not_object", "header is an array, not a JSON object"},
    {"bad_entry_not_object", "tensor 'a': entry is a number, not an object"},
    {"bad_missing_dtype", "missing field \"dtype\""},
    {"bad_offsets_range", "tensor 'b': data_offsets [8, 12] run past the end"},
    {"bad_overlap", "overlap tensor 'a'"},
    {"bad_hole", "hole in the data buffer: bytes [4, 8)"},
    {"bad_unknown_dtype", "unknown dtype \"F33\""},
    {"bad_shape_mismatch", "hold 8 bytes but F32 shape [2, 2] needs 16"},
    {"bad_negative_dim", "dimension 0 is -2"},
    {"bad_float_dim", "dimension 0 is 2.5"},
    {"bad_huge_dim", "dimension 0 is 281474976710656"},
    {"bad_overflow", "overflows"},
    {"bad_offsets_count", "data_offsets must be an array of two integers"},
    {"bad_duplicate_key", "duplicate key 'a'"},
    {"bad_duplicate_field", "duplicate field \"dtype\""},
    {"bad_trailing", "4 trailing bytes"},
    {"bad_metadata_nonstring", "__metadata__ value for key 'epoch' is a number, not a string"},
    {"bad_metadata_tensor", "a tensor may not be named __metadata__"},
    {"bad_nul_name", "NUL"},
    {"bad_extra_json", "extra bytes after the JSON object"},
    {"bad_bom", "non-ASCII byte outside a string at byte 0"},
    {"bad_number", "malformed number '02'"},
    {"bad_control_char", "control byte 0x01"},
};

TEST(safetensors_malformed_rejected) {
    for (size_t k = 0; k < sizeof k_bad / sizeof k_bad[0]; k++) {
        char path[256];
        snprintf(path, sizeof path, FIX "%s.safetensors", k_bad[k].file);
        SafeTensors st;
        a2f_clear_error();
        int rc = st_open(&st, path);
        if (rc == 0) {
            EXPECT(0, "%s accepted", path);
            st_close(&st);
            continue;
        }
        const char *e = a2f_last_error();
        EXPECT(strncmp(e, path, strlen(path)) == 0, "%s: error does not start with the file: %s", k_bad[k].file, e);
        EXPECT(strstr(e, k_bad[k].phrase), "%s: error lacks \"%s\": %s", k_bad[k].file, k_bad[k].phrase, e);
        EXPECT(!strchr(e, '\n'), "%s: error has a newline", k_bad[k].file);
        EXPECT(st.tensors == NULL && st.name == NULL, "%s: state left behind", k_bad[k].file);
    }
}

TEST(safetensors_writer_roundtrip) {
    char path[128];
    snprintf(path, sizeof path, "build/tmp/a2f_st_rt_%d.safetensors", (int)getpid());
    uint64_t rng = 7;
    float w[3 * 7];  // F32 [3, 7]
    test_fill_normal(w, 21, 1.0f, &rng);
    // F16 [13] and BF16 [2, 1, 5]: bit patterns chosen directly (the writer stores bytes).
    uint16_t h[13], b[10];
    for (int k = 0; k < 13; k++) h[k] = (uint16_t)(0x3c00 + 97 * k);  // 1.0 upward
    for (int k = 0; k < 10; k++) b[k] = (uint16_t)(0xbf80 - 13 * k);  // -1.0 and neighbours
    int64_t idx[3] = {-5, 0, 1ll << 40};
    float scalar = -0.125f;
    int64_t sw[] = {3, 7}, sh[] = {13}, sb[] = {2, 1, 5}, si[] = {3}, se[] = {4, 0};

    StWriter *wr = st_writer_begin(path);
    EXPECT(st_writer_add(wr, "z.weight", ST_F32, 2, sw, w) == 0, "%s", a2f_last_error());
    EXPECT(st_writer_add(wr, "half", ST_F16, 1, sh, h) == 0, "%s", a2f_last_error());
    EXPECT(st_writer_add(wr, "brain.float", ST_BF16, 3, sb, b) == 0, "%s", a2f_last_error());
    EXPECT(st_writer_add(wr, "idx", ST_I64, 1, si, idx) == 0, "%s", a2f_last_error());
    EXPECT(st_writer_add(wr, "scalar", ST_F32, 0, NULL, &scalar) == 0, "%s", a2f_last_error());
    EXPECT(st_writer_add(wr, "empty \"quoted\" \\ name", ST_F32, 2, se, NULL) == 0, "%s", a2f_last_error());
    EXPECT(st_writer_metadata(wr, "format", "pt") == 0, "meta");
    EXPECT(st_writer_metadata(wr, "multi\nline", "tab\there \xc3\xa9 \"q\" \x01") == 0, "meta");
    EXPECT(st_writer_finish(wr) == 0, "finish: %s", a2f_last_error());
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    EXPECT(!file_exists(tmp), "temp file left behind");

    SafeTensors st;
    if (st_open(&st, path)) {
        EXPECT(0, "reopen: %s", a2f_last_error());
        unlink(path);
        return;
    }
    EXPECT(st_count(&st) == 6, "count %d", st_count(&st));
    EXPECT(st.header_len % 8 == 0, "header length %llu not padded to 8", (unsigned long long)st.header_len);
    for (int i = 0; i < st_count(&st); i++) {
        const StTensor *t = st_tensor(&st, i);
        int al = st_dtype_bits(t->dtype) / 8;
        EXPECT(((uintptr_t)t->data % (uintptr_t)al) == 0, "%s misaligned", t->name);
        if (i) EXPECT(t->dtype <= st_tensor(&st, i - 1)->dtype, "%s out of dtype order", t->name);
    }
    float got[21];
    EXPECT(st_load_f32(&st, "z.weight", got, 2, sw) == 0, "%s", a2f_last_error());
    EXPECT_CLOSE("z.weight", got, w, 21, 0, 0);  // exact: bytes copied
    int i = st_find(&st, "half");
    EXPECT(i >= 0 && st_tensor(&st, i)->dtype == ST_F16 && memcmp(st_tensor(&st, i)->data, h, sizeof h) == 0, "half");
    i = st_find(&st, "brain.float");
    EXPECT(i >= 0 && st_tensor(&st, i)->dtype == ST_BF16 && shape_is(st_tensor(&st, i), 3, sb) &&
               memcmp(st_tensor(&st, i)->data, b, sizeof b) == 0,
           "bf16");
    uint16_t gb[10];
    EXPECT(st_load_bf16(&st, "brain.float", gb, 3, sb) == 0 && memcmp(gb, b, sizeof b) == 0, "bf16 load");
    i = st_find(&st, "idx");
    EXPECT(i >= 0 && memcmp(st_tensor(&st, i)->data, idx, sizeof idx) == 0, "idx");
    float s = 0;
    EXPECT(st_load_f32(&st, "scalar", &s, 0, NULL) == 0 && s == scalar, "scalar");
    i = st_find(&st, "empty \"quoted\" \\ name");
    EXPECT(i >= 0 && shape_is(st_tensor(&st, i), 2, se) && st_tensor(&st, i)->nbytes == 0, "empty tensor");
    const char *m = st_metadata_get(&st, "multi\nline");
    EXPECT(m && strcmp(m, "tab\there \xc3\xa9 \"q\" \x01") == 0, "escaped metadata");
    st_close(&st);
    unlink(path);
}

// Our writer must reproduce files written by Python's safetensors byte for byte.
TEST(safetensors_writer_matches_python_bytes) {
    const char *refs[] = {FIX "writer_ref_a.safetensors", FIX "writer_ref_b.safetensors"};
    for (int r = 0; r < 2; r++) {
        SafeTensors st;
        if (st_open(&st, refs[r])) {
            EXPECT(0, "%s", a2f_last_error());
            continue;
        }
        char out[128];
        snprintf(out, sizeof out, "build/tmp/a2f_st_ref_%d_%d.safetensors", (int)getpid(), r);
        StWriter *w = st_writer_begin(out);
        for (int i = st_count(&st) - 1; i >= 0; i--) {  // reverse file order: the writer must sort
            const StTensor *t = st_tensor(&st, i);
            st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data);
        }
        for (int i = 0; i < st.nmeta; i++) st_writer_metadata(w, st.meta_key[i], st.meta_val[i]);
        EXPECT(st_writer_finish(w) == 0, "%s", a2f_last_error());
        uint8_t *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        EXPECT(read_file(refs[r], &a, &na) == 0 && read_file(out, &b, &nb) == 0, "read back");
        EXPECT(na == nb && a && b && memcmp(a, b, na) == 0, "%s: our bytes differ from Python's (%zu vs %zu bytes)",
               refs[r], nb, na);
        free(a);
        free(b);
        unlink(out);
        st_close(&st);
    }
}

TEST(safetensors_writer_atomic_and_errors) {
    // Into a directory that does not exist: fails, names the path, leaves nothing.
    const char *bad = "build/tmp/a2f_no_such_dir_st/x.safetensors";
    float v[2] = {1, 2};
    int64_t s2[] = {2}, neg[] = {-1};
    StWriter *w = st_writer_begin(bad);
    st_writer_add(w, "v", ST_F32, 1, s2, v);
    EXPECT(st_writer_finish(w) == -1, "write into missing dir succeeded");
    EXPECT(strstr(a2f_last_error(), bad), "error: %s", a2f_last_error());
    EXPECT(!file_exists(bad) && !file_exists("build/tmp/a2f_no_such_dir_st/x.safetensors.tmp"), "file left");

    // A failed write keeps the old file intact (and leaves no .tmp).
    char path[128], tmp[160];
    snprintf(path, sizeof path, "build/tmp/a2f_st_atomic_%d.safetensors", (int)getpid());
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    w = st_writer_begin(path);
    st_writer_add(w, "v", ST_F32, 1, s2, v);
    EXPECT(st_writer_finish(w) == 0, "%s", a2f_last_error());
    uint8_t *before = NULL, *after = NULL;
    size_t nb = 0, na = 0;
    read_file(path, &before, &nb);
    struct {
        const char *what, *phrase;
    } cases[] = {{"duplicate name", "duplicate tensor name 'v'"},
                 {"reserved name", "reserved"},
                 {"negative dim", "invalid F32 shape [-1]"},
                 {"duplicate metadata", "duplicate metadata key 'k'"}};
    for (int c = 0; c < 4; c++) {
        w = st_writer_begin(path);
        float other[2] = {9, 9};
        st_writer_add(w, "w", ST_F32, 1, s2, other);
        if (c == 0) st_writer_add(w, "v", ST_F32, 1, s2, other), st_writer_add(w, "v", ST_F32, 1, s2, other);
        if (c == 1) EXPECT(st_writer_add(w, "__metadata__", ST_F32, 1, s2, other) == -1, "reserved name accepted");
        if (c == 2) EXPECT(st_writer_add(w, "n", ST_F32, 1, neg, other) == -1, "negative dim accepted");
        if (c == 3) st_writer_metadata(w, "k", "a"), st_writer_metadata(w, "k", "b");
        EXPECT(st_writer_finish(w) == -1, "%s: finish succeeded", cases[c].what);
        EXPECT(strstr(a2f_last_error(), cases[c].phrase) && strstr(a2f_last_error(), path), "%s: %s", cases[c].what,
               a2f_last_error());
        EXPECT(!file_exists(tmp), "%s: tmp left", cases[c].what);
    }
    read_file(path, &after, &na);
    EXPECT(before && after && na == nb && memcmp(before, after, na) == 0, "old file changed by failed writes");
    free(before);
    free(after);
    unlink(path);
}

static uint64_t xs(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

// Random byte flips, JSON-ish byte substitutions, truncations and extensions
// of a valid file: st_open_memory must return 0 or -1 (never crash or hang),
// and an accepted file must satisfy the invariants checked here directly.
TEST(safetensors_mutation_fuzz) {
    uint8_t *orig = NULL;
    size_t n0 = 0;
    if (read_file(FIX "valid_mixed.safetensors", &orig, &n0)) {
        EXPECT(0, "cannot read fixture");
        return;
    }
    const char interesting[] = "0123456789[]{}\",:-.e \\u\xff\x00";
    uint64_t rng = 0x5eed;
    uint8_t *buf = xmalloc(n0 + 64);
    int accepted = 0, iters = 4000;
    char path[128];
    snprintf(path, sizeof path, "build/tmp/a2f_st_mut_%d.safetensors", (int)getpid());
    for (int it = 0; it < iters; it++) {
        size_t n = n0;
        memcpy(buf, orig, n0);
        int nmut = 1 + (int)(xs(&rng) % 4);
        for (int m = 0; m < nmut; m++) {
            uint64_t r = xs(&rng);
            // Mostly hit the 8-byte length and the header, where the parser works.
            size_t pos = (r >> 8) % (r & 1 ? A2F_MIN(n, (size_t)300) : n ? n : 1);
            switch ((r >> 40) % 5) {
                case 0: if (n) buf[pos] ^= (uint8_t)(1u << ((r >> 50) % 8)); break;
                case 1: if (n) buf[pos] = (uint8_t)interesting[(r >> 50) % (sizeof interesting - 1)]; break;
                case 2: if (n) buf[pos] = (uint8_t)(r >> 52); break;
                case 3: n = (size_t)((r >> 20) % (n + 1)); break;  // truncate
                case 4:
                    if (n + 8 <= n0 + 64) {
                        memset(buf + n, (int)(r >> 50) & 0xff, 8);
                        n += 8;
                    }
                    break;
            }
        }
        SafeTensors st;
        int rc;
        if (it % 200 == 0) {  // now and then through a real file and mmap
            FILE *f = fopen(path, "wb");
            if (f) fwrite(buf, 1, n, f), fclose(f);
            rc = st_open(&st, path);
        } else {
            rc = st_open_memory(&st, "mutant", buf, n);
        }
        EXPECT(rc == 0 || rc == -1, "rc %d", rc);
        if (rc != 0) continue;
        accepted++;
        // Independent invariants: offsets tile [0, data_len) and 8 + N + data_len == file size.
        uint64_t end = 0;
        int ok = st.len == 8 + st.header_len + st.data_len;
        for (int i = 0; i < st_count(&st); i++) {
            const StTensor *t = st_tensor(&st, i);
            ok &= t->offset == end && t->nbytes * 8 == t->numel * (uint64_t)st_dtype_bits(t->dtype);
            end = t->offset + t->nbytes;
            DType dt;
            if (st_dtype_to_dtype(t->dtype, &dt) == 0 && t->numel <= 64) {
                float tmp[64];
                ok &= st_load_f32(&st, t->name, tmp, t->ndim, t->shape) == 0;
            }
        }
        ok &= end == st.data_len;
        EXPECT(ok, "iteration %d: accepted file breaks an invariant", it);
        st_close(&st);
    }
    unlink(path);
    if (getenv("A2F_VERBOSE")) printf("    accepted %d of %d mutants\n", accepted, iters);
    EXPECT(accepted > 0 && accepted < iters, "accepted %d of %d mutants (mutator too weak or too strong?)", accepted,
           iters);
    free(buf);
    free(orig);
}
