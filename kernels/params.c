// params.c: flat parameter table.
#include "params.h"

#include <string.h>

#include "common.h"

void params_init(ParamTable *t) { memset(t, 0, sizeof *t); }

void params_free(ParamTable *t) {
    free(t->entries);
    memset(t, 0, sizeof *t);
}

int params_find(const ParamTable *t, const char *name) {
    for (int i = 0; i < t->count; i++)
        if (strcmp(t->entries[i].name, name) == 0) return i;
    return -1;
}

int params_add(ParamTable *t, const char *name, int ndim, const int64_t *shape) {
    return params_add_ex(t, name, ndim, shape, PARAM_PLAIN, 1);
}

void params_file_shape(const ParamEntry *e, int64_t *shape) {
    for (int i = 0; i < e->ndim; i++) shape[i] = e->shape[i];
    if (e->layout == PARAM_CONV) {  // ours [O, KH, KW, I] -> file [O, I, KH, KW]
        shape[1] = e->shape[3];
        shape[2] = e->shape[1];
        shape[3] = e->shape[2];
    }
}

int params_add_ex(ParamTable *t, const char *name, int ndim, const int64_t *shape, int layout, int trainable) {
    CHECK(layout == PARAM_PLAIN || (layout == PARAM_CONV && ndim == 4));
    CHECK(strlen(name) < PARAM_NAME_MAX);
    CHECK(ndim >= 0 && ndim <= TENSOR_MAX_DIMS);
    CHECKM(params_find(t, name) < 0, name);
    if (t->count == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->entries = realloc(t->entries, (size_t)t->cap * sizeof *t->entries);
        CHECK(t->entries);
    }
    ParamEntry *e = &t->entries[t->count];
    memset(e, 0, sizeof *e);
    strcpy(e->name, name);
    e->layout = layout;
    e->trainable = trainable;
    e->ndim = ndim;
    e->numel = 1;
    for (int i = 0; i < ndim; i++) {
        CHECK(shape[i] >= 0);
        e->shape[i] = shape[i];
        e->numel *= (size_t)shape[i];
    }
    e->offset = CEIL_DIV(t->total, (size_t)64) * 64;
    t->total = e->offset + e->numel;
    return t->count++;
}

Tensor params_view(const ParamTable *t, int i, void *flat, DType dt, Device dev) {
    CHECK(i >= 0 && i < t->count);
    const ParamEntry *e = &t->entries[i];
    return tensor_make((char *)flat + e->offset * dtype_size(dt), dt, dev, e->ndim, e->shape);
}
