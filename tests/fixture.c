// fixture.c: fx_* helpers over nn/safetensors.h for the reference fixtures
// (see fixture.h).
#include "fixture.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/common.h"
#include "../nn/safetensors.h"
#include "test.h"

struct Fixture {
    SafeTensors st;
    char path[512];
    void **copies;  // [ncopies] arrays handed out, freed by fx_close
    int ncopies, cap;
};

Fixture *fx_open(const char *fmt, ...) {
    char rel[256];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= sizeof rel) {
        test_fail(__FILE__, __LINE__, "fixture path too long");
        return NULL;
    }
    Fixture *fx = calloc(1, sizeof *fx);
    CHECK(fx);
    // Next to this source file first (works from any cwd when compiled with an
    // absolute path), then relative to the repository root.
    const char *here = __FILE__, *slash = strrchr(here, '/');
    int dl = slash ? (int)(slash - here + 1) : 0;
    snprintf(fx->path, sizeof fx->path, "%.*sfixtures/%s", dl, here, rel);
    if (st_open(&fx->st, fx->path) == 0) return fx;
    char err[A2F_ERR_MAX];
    snprintf(err, sizeof err, "%s", a2f_last_error());
    snprintf(fx->path, sizeof fx->path, "tests/fixtures/%s", rel);
    if (st_open(&fx->st, fx->path) == 0) return fx;
    test_fail(__FILE__, __LINE__, "fixture: %s", err);
    free(fx);
    return NULL;
}

// The tensor named by fmt/ap with dtype dt and numel elements, copied; NULL
// plus a test failure when missing or different.
static void *get(Fixture *fx, StDType dt, size_t numel, const char *fmt, va_list ap) {
    char name[256];
    int len = vsnprintf(name, sizeof name, fmt, ap);
    if (len < 0 || (size_t)len >= sizeof name) {
        test_fail(__FILE__, __LINE__, "fixture %s: tensor name too long", fx->path);
        return NULL;
    }
    int i = st_find(&fx->st, name);
    if (i < 0) {
        test_fail(__FILE__, __LINE__, "fixture %s: tensor %s missing", fx->path, name);
        return NULL;
    }
    const StTensor *t = st_tensor(&fx->st, i);
    if (t->dtype != dt || t->numel != numel) {
        test_fail(__FILE__, __LINE__, "fixture %s: tensor %s is %s with %llu elements, expected %s with %zu", fx->path,
                  name, st_dtype_name(t->dtype), (unsigned long long)t->numel, st_dtype_name(dt), numel);
        return NULL;
    }
    void *p = malloc(t->nbytes ? t->nbytes : 1);
    CHECK(p);
    memcpy(p, t->data, t->nbytes);  // the mapping may be unaligned; the copy is not
    if (fx->ncopies == fx->cap) {
        fx->cap = fx->cap ? 2 * fx->cap : 32;
        fx->copies = realloc(fx->copies, (size_t)fx->cap * sizeof *fx->copies);
        CHECK(fx->copies);
    }
    fx->copies[fx->ncopies++] = p;
    return p;
}

float *fx_f32(Fixture *fx, size_t numel, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    float *p = get(fx, ST_F32, numel, fmt, ap);
    va_end(ap);
    return p;
}

int32_t *fx_i32(Fixture *fx, size_t numel, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int32_t *p = get(fx, ST_I32, numel, fmt, ap);
    va_end(ap);
    return p;
}

int fx_has(const Fixture *fx, const char *name) { return st_find(&fx->st, name) >= 0; }

void fx_close(Fixture *fx) {
    if (!fx) return;
    for (int i = 0; i < fx->ncopies; i++) free(fx->copies[i]);
    free(fx->copies);
    st_close(&fx->st);
    free(fx);
}
