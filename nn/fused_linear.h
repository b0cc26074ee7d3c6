// fused_linear.h: a run of n (2 or 3) Linear layers of one shape [out, in]
// that read the same input -- attention's q/k/v (or k/v) projections -- done
// as ONE GEMM when their parameters lie stacked in memory.
//
// The flat parameter buffers place tensors registered back to back next to
// each other when their sizes are multiples of 64 elements (kernels/params.h),
// so n weights [out, in] registered in a row ARE one weight [n*out, in] and
// no copy is needed. Whether that holds is checked where it is used
// (linear_run_fusable), never assumed: in the working copy, in the gradient
// buffer when there is one, for the biases as well; otherwise the n layers
// run as n GEMMs, so results never depend on the table layout.
//
// A run's output buffer y holds M * n*out elements in one of two layouts:
//   fused  y [M, n*out]: output j = columns [j*out, (j+1)*out), row stride n*out
//   split  y = n blocks [M, out]: output j starts at j*M*out, row stride out
// The attention ops take strided views, so either layout feeds them as is;
// linear_run_ptr / linear_run_stride give the view of output j.
#pragma once
#include "layers.h"

#define LINEAR_RUN_MAX 3

typedef struct {
    const Linear *l[LINEAR_RUN_MAX];
    int n;
} LinearRun;

// Registers n Linear layers prefixes[j].weight [out, in] in a row, then their
// biases prefixes[j].bias [out] (bias != 0) in a row, so that a run over them
// can fuse its weights and its biases (tensor order in the table is free:
// loading and saving go by name).
void linear_run_add(Linear *const *l, int n, ParamTable *t, const char *const *prefixes, int in, int out, int bias);

// 1 when the run's weights (and biases) are stacked in every buffer W holds
// that the run uses: the working copy and, when training, the gradients.
int linear_run_fusable(const Weights *W, const LinearRun *r);

// Output j of a run buffer y of M rows (see the layouts above).
void *linear_run_ptr(const Ctx *c, void *y, const LinearRun *r, int fused, int j, int M);
long linear_run_stride(const LinearRun *r, int fused);

// y [M * n*out] (layout by `fused`, which must be linear_run_fusable's
// answer or 0) from x [M, in].
int linear_run_f(const Ctx *c, const Weights *W, const LinearRun *r, int fused, void *y, const void *x, int M);
// dx [M, in] += (may be NULL), weight and bias gradients +=, from dy in the
// layout the forward wrote y in.
int linear_run_b(const Ctx *c, const Weights *W, const LinearRun *r, int fused, void *dx, const void *dy, const void *x,
                 int M);
