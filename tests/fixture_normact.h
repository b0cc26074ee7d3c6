// fixture_normact.h: reader for the PyTorch fixtures under tests/fixtures/normact/
// (written by tools/ref/make_norm_act_fixtures.py; format documented there):
//   "A2FNA01\0", u32 count, then count x { char name[32], u32 numel, f32 data[numel] }.
// Used by test_norm.c and test_activation.c only; static so each includes its own copy.
#pragma once
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#define NAFIX_MAX 32

typedef struct {
    int n;
    char name[NAFIX_MAX][32];
    uint32_t numel[NAFIX_MAX];
    float *data[NAFIX_MAX];
} NAFix;

// Directory of this header + "fixtures/normact/<name>.bin" (tests may run from any cwd
// as long as the sources were compiled from the repository root or with absolute paths).
static inline FILE *nafix_open(const char *name, char *path, size_t np) {
    const char *here = __FILE__;
    const char *slash = strrchr(here, '/');
    int dl = slash ? (int)(slash - here + 1) : 0;
    snprintf(path, np, "%.*sfixtures/normact/%s.bin", dl, here, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(path, np, "tests/fixtures/normact/%s.bin", name);
        f = fopen(path, "rb");
    }
    return f;
}

static inline void nafix_free(NAFix *fx) {
    for (int i = 0; i < fx->n; i++) free(fx->data[i]);
    fx->n = 0;
}

// Loads a case; on any problem reports a test failure and returns 0.
static inline int nafix_load(NAFix *fx, const char *name) {
    memset(fx, 0, sizeof *fx);
    char path[1024];
    FILE *f = nafix_open(name, path, sizeof path);
    if (!f) {
        test_fail(__FILE__, __LINE__, "fixture %s: cannot open %s", name, path);
        return 0;
    }
    char magic[8];
    uint32_t count = 0;
    int ok = fread(magic, 1, 8, f) == 8 && memcmp(magic, "A2FNA01\0", 8) == 0 && fread(&count, 4, 1, f) == 1 &&
             count <= NAFIX_MAX;
    for (uint32_t i = 0; ok && i < count; i++) {
        uint32_t ne = 0;
        ok = fread(fx->name[i], 1, 32, f) == 32 && fread(&ne, 4, 1, f) == 1 && ne <= (1u << 24);
        if (!ok) break;
        fx->name[i][31] = 0;
        fx->numel[i] = ne;
        fx->data[i] = malloc((size_t)(ne ? ne : 1) * sizeof(float));
        fx->n = (int)i + 1;
        ok = fread(fx->data[i], sizeof(float), ne, f) == ne;
    }
    fclose(f);
    if (!ok) {
        test_fail(__FILE__, __LINE__, "fixture %s: malformed file %s", name, path);
        nafix_free(fx);
    }
    return ok;
}

// Array by name; n == 0 accepts any size. Reports a failure and returns NULL if missing
// or of another size.
static inline float *nafix_get(NAFix *fx, const char *key, size_t n) {
    for (int i = 0; i < fx->n; i++)
        if (strcmp(fx->name[i], key) == 0) {
            if (n && fx->numel[i] != n) {
                test_fail(__FILE__, __LINE__, "fixture array %s has %u values, expected %zu", key, fx->numel[i], n);
                return NULL;
            }
            return fx->data[i];
        }
    test_fail(__FILE__, __LINE__, "fixture array %s missing", key);
    return NULL;
}

static inline int nafix_has(const NAFix *fx, const char *key) {
    for (int i = 0; i < fx->n; i++)
        if (strcmp(fx->name[i], key) == 0) return 1;
    return 0;
}
