// layers.h: the leaf modules every network is built from -- Linear, Conv2d,
// GroupNorm (optional fused SiLU), LayerNorm. Each registers its parameters
// under the upstream key prefix, and runs through the Ctx's backend.
//
// Leaf modules do not own saved state: forward writes its output (and, for
// the norms, the statistics into caller buffers); backward takes what it
// needs as arguments. Composite modules decide what to keep on the stack.
// Backward ADDS into dx and into the parameter gradients (kernels' rule).
#pragma once
#include "nn.h"

typedef struct {
    int w, b;  // table indices (b = -1: no bias)
    int in, out;
} Linear;

// prefix.weight [out, in], prefix.bias [out] (when bias).
void linear_add(Linear *m, ParamTable *t, const char *prefix, int in, int out, int bias);
// y [M, out] = x [M, in] W^T + b
int linear_f(const Ctx *c, const Weights *W, const Linear *m, void *y, const void *x, int M);
// dx [M, in] += dy W (dx may be NULL); dW, db += (when training)
int linear_b(const Ctx *c, const Weights *W, const Linear *m, void *dx, const void *dy, const void *x, int M);

typedef struct {
    int w, b;
    int cin, cout, k, stride;
    int pt, pb, pl, pr;  // padding
} Conv2d;

// prefix.weight [cout, k, k, cin] (PyTorch [cout, cin, k, k]), prefix.bias [cout] when bias;
// symmetric padding `pad`.
void conv2d_add(Conv2d *m, ParamTable *t, const char *prefix, int cin, int cout, int k, int stride, int pad,
                int bias);
// Shape of an application to x [B, H, W, cin].
Conv2dShape conv2d_shape(const Conv2d *m, int B, int H, int W);
// y [B, Ho, Wo, cout]
int conv2d_f(const Ctx *c, const Weights *W, const Conv2d *m, void *y, const void *x, int B, int H, int Wd);
int conv2d_b(const Ctx *c, const Weights *W, const Conv2d *m, void *dx, const void *dy, const void *x, int B, int H,
             int Wd);

typedef struct {
    int w, b;
    int C, G;
    float eps;
} GroupNorm;

void groupnorm_add(GroupNorm *m, ParamTable *t, const char *prefix, int C, int G, float eps);
// y [B, HW, C]; mean, rstd [B, G] float (saved for backward)
int groupnorm_f(const Ctx *c, const Weights *W, const GroupNorm *m, void *y, float *mean, float *rstd,
                const void *x, int B, int HW, int silu);
int groupnorm_b(const Ctx *c, const Weights *W, const GroupNorm *m, void *dx, const void *dy, const void *x,
                const float *mean, const float *rstd, int B, int HW, int silu);

typedef struct {
    int w, b;
    int C;
    float eps;
} LayerNorm;

void layernorm_add(LayerNorm *m, ParamTable *t, const char *prefix, int C, float eps);
// y [N, C]; mean, rstd [N] float
int layernorm_f(const Ctx *c, const Weights *W, const LayerNorm *m, void *y, float *mean, float *rstd,
                const void *x, int N);
int layernorm_b(const Ctx *c, const Weights *W, const LayerNorm *m, void *dx, const void *dy, const void *x,
                const float *mean, const float *rstd, int N);

// Registers prefix.NAME with the given shape; returns the index.
int nn_param(ParamTable *t, const char *prefix, const char *name, int ndim, const int64_t *shape, int layout);
