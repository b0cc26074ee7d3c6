// iresnet_layers.h: the leaves the face-recognition backbones add to
// nn/layers.h -- BatchNorm (2d over NHWC rows, and 1d), in inference or
// training mode -- and the BN-mode record every IResNet module threads through.
//
// Running statistics are Weights entries (prefix.running_mean/var, trainable
// 0: no gradient, never updated by an optimizer). The BN ops read and update
// them as fp32, so a module finds them as fp32 in this order:
//   1. W->master (training weights: fp32 master copy; aliases w for f32),
//   2. W->w when W->dt == DT_F32,
//   3. BnMode.stats32 -- a compact fp32 copy, for bf16 inference weights
//      (no master); filled by iresnet_bind_stats / iresnet_load.
// PyTorch's num_batches_tracked is not stored: it only matters for
// momentum=None (cumulative averaging), which these models do not use;
// loaders skip the key and PyTorch's load_state_dict fills it in with 0.
#pragma once
#include "layers.h"

typedef struct {
    int w, b;     // table indices of weight / bias (-1: affine=False)
    int rm, rv;   // running_mean / running_var (buffers)
    int soff;     // offset of [mean | var] (2*C floats) in BnMode.stats32
    int C;
    float eps, momentum;
} BatchNorm;

// How every BatchNorm of a model runs (passed down to all modules).
typedef struct {
    int train;             // 1: batch statistics + running-stat update (model.train())
    float *stats32;        // fp32 running stats for bf16 weights without master, or NULL
} BnMode;

// prefix.weight, prefix.bias [C] (trainable per affine_trainable: 1, or 0 for a
// frozen scale like insightface's features.weight), running_mean/var [C].
// *nstats counts the floats the compact stats32 copy needs (2*C per BN).
void batchnorm_add(BatchNorm *m, ParamTable *t, const char *prefix, int C, int weight_trainable, int *nstats);
// y [N, C] from x [N, C] (N = B*H*W rows of NHWC). mode->train: mean, rstd [C]
// (float, caller-allocated) receive the batch statistics, running stats are
// updated (momentum 0.1, unbiased variance); N must be > 1. Otherwise the
// running statistics are used and mean/rstd are ignored (may be NULL).
int batchnorm_f(const Ctx *c, const Weights *W, const BatchNorm *m, const BnMode *mode, void *y, float *mean,
                float *rstd, const void *x, int N);
// dx [N, C] += (may be NULL), dgamma/dbeta += (when trainable). Uses the same
// mode as the forward (training: the saved mean/rstd; inference: the running stats).
int batchnorm_b(const Ctx *c, const Weights *W, const BatchNorm *m, const BnMode *mode, void *dx, const void *dy,
                const void *x, const float *mean, const float *rstd, int N);
