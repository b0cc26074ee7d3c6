// misc_fixture.h: reader for the PyTorch fixtures of the misc ops
// (tests/fixtures/misc/*.bin, written by tools/ref/make_misc_fixtures.py).
//
// Format (little-endian): 8 bytes "A2FMISC1", uint32 count, then count
// records of uint32 name_len, name, uint32 dtype (0 f32, 1 i32), uint32 ndim,
// int64 shape[ndim], numel * 4 bytes of data. The whole file is read into
// memory; lookups return pointers into it. Paths are relative to the
// repository root, where the test binary runs.
#pragma once
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#define MF_MAX 256

typedef struct {
    int count;
    char name[MF_MAX][64];
    int dtype[MF_MAX];
    int64_t numel[MF_MAX];
    void *data[MF_MAX];
    char *buf;
} MiscFix;

// Loads tests/fixtures/misc/<file>; on any problem reports a test failure
// and returns 0 (the caller then skips its checks).
static inline int mf_load(MiscFix *f, const char *file) {
    memset(f, 0, sizeof *f);
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/misc/%s", file);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        test_fail(__FILE__, __LINE__, "cannot open %s (run from the repository root)", path);
        return 0;
    }
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    f->buf = malloc((size_t)n);
    int ok = f->buf && fread(f->buf, 1, (size_t)n, fp) == (size_t)n && n >= 12 && !memcmp(f->buf, "A2FMISC1", 8);
    fclose(fp);
    long pos = 12;
    uint32_t count = 0;
    if (ok) memcpy(&count, f->buf + 8, 4);
    for (uint32_t r = 0; ok && r < count; r++) {
        uint32_t len, dt, nd;
        ok = r < MF_MAX && pos + 4 <= n;
        if (!ok) break;
        memcpy(&len, f->buf + pos, 4), pos += 4;
        ok = len < 64 && pos + len + 8 <= n;
        if (!ok) break;
        memcpy(f->name[r], f->buf + pos, len), f->name[r][len] = 0, pos += len;
        memcpy(&dt, f->buf + pos, 4), memcpy(&nd, f->buf + pos + 4, 4), pos += 8;
        ok = dt <= 1 && nd <= 8 && pos + 8 * (long)nd <= n;
        if (!ok) break;
        int64_t numel = 1;
        for (uint32_t d = 0; d < nd; d++) {
            int64_t s;
            memcpy(&s, f->buf + pos, 8), pos += 8;
            numel *= s;
        }
        ok = numel >= 0 && pos + 4 * numel <= n;
        if (!ok) break;
        f->dtype[r] = (int)dt, f->numel[r] = numel, f->data[r] = f->buf + pos;  // may be unaligned: mf_get copies
        pos += 4 * numel;
        f->count = (int)r + 1;
    }
    if (!ok) {
        test_fail(__FILE__, __LINE__, "%s: malformed fixture file", path);
        free(f->buf);
        f->buf = NULL;
        return 0;
    }
    return 1;
}

// The array called name with exactly numel elements of dtype (0 f32, 1 i32),
// copied into a fresh malloc'd buffer (aligned, caller frees); NULL plus a
// test failure when missing or of another size.
static inline void *mf_get(const MiscFix *f, const char *name, int dtype, int64_t numel) {
    for (int i = 0; i < f->count; i++)
        if (!strcmp(f->name[i], name)) {
            if (f->dtype[i] != dtype || f->numel[i] != numel) {
                test_fail(__FILE__, __LINE__, "fixture %s: dtype %d numel %lld, expected %d %lld", name, f->dtype[i],
                          (long long)f->numel[i], dtype, (long long)numel);
                return NULL;
            }
            void *p = malloc((size_t)(numel > 0 ? numel : 1) * 4);
            memcpy(p, f->data[i], (size_t)numel * 4);
            return p;
        }
    test_fail(__FILE__, __LINE__, "fixture array %s missing", name);
    return NULL;
}

// Convenience: f32 array with a formatted name "prefix.suffix".
static inline float *mf_f32(const MiscFix *f, const char *prefix, const char *suffix, int64_t numel) {
    char name[64];
    snprintf(name, sizeof name, "%s.%s", prefix, suffix);
    return mf_get(f, name, 0, numel);
}

static inline void mf_free(MiscFix *f) {
    free(f->buf);
    f->buf = NULL;
}
