// params.h: a model's parameters as one flat buffer with a name table.
//
// Each entry is (upstream checkpoint key, shape in the layout the kernels
// use, offset in elements). Gradients, AdamW moments and master weights are
// further flat buffers indexed by the same table, so all-reduce, AdamW,
// ZeRO-1 sharding and checkpointing are loops over one range.
#pragma once
#include <stdint.h>

#include "tensor.h"

#define PARAM_NAME_MAX 160

typedef struct {
    char name[PARAM_NAME_MAX];
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    size_t offset;  // elements from the start of the flat buffer
    size_t numel;
} ParamEntry;

typedef struct {
    ParamEntry *entries;
    int count, cap;
    size_t total;  // elements
} ParamTable;

void params_init(ParamTable *t);
void params_free(ParamTable *t);
// Appends a tensor; offsets are aligned to 64 elements so every tensor starts
// on a 256-byte boundary in f32. Returns its index. Duplicate names: CHECK.
int params_add(ParamTable *t, const char *name, int ndim, const int64_t *shape);
// Index of name, or -1.
int params_find(const ParamTable *t, const char *name);
// Tensor view of entry i inside a flat buffer of dtype dt.
Tensor params_view(const ParamTable *t, int i, void *flat, DType dt, Device dev);
