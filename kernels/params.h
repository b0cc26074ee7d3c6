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

// How a parameter's file layout (PyTorch) maps to the kernels' layout.
enum {
    PARAM_PLAIN = 0,  // same layout (Linear [out, in], norms, embeddings)
    PARAM_CONV = 1,   // PyTorch [O, I, KH, KW] <-> ours [O, KH, KW, I]
};

typedef struct {
    char name[PARAM_NAME_MAX];
    int layout;     // PARAM_PLAIN or PARAM_CONV
    int trainable;  // 0 for buffers (BatchNorm running stats): no gradient, not updated
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
// Appends a trainable PARAM_PLAIN tensor; offsets are aligned to 64 elements so every tensor starts
// on a 256-byte boundary in f32. Returns its index. Duplicate names: CHECK.
int params_add(ParamTable *t, const char *name, int ndim, const int64_t *shape);
// Appends with an explicit layout and trainable flag (shape in OUR layout).
int params_add_ex(ParamTable *t, const char *name, int ndim, const int64_t *shape, int layout, int trainable);
// The shape as stored in PyTorch files (conv: [O, I, KH, KW]).
void params_file_shape(const ParamEntry *e, int64_t *shape);
// Index of name, or -1.
int params_find(const ParamTable *t, const char *name);
// Tensor view of entry i inside a flat buffer of dtype dt.
Tensor params_view(const ParamTable *t, int i, void *flat, DType dt, Device dev);
