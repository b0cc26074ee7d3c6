// plan.h: memory plan of a training or inference run, computed before
// anything is allocated (`arc2face plan --config FILE.json`).
//
// Parameter counts come from the real parameter tables: each model is BUILT
// (unet_build, clip_add, vae_add, mlp_add, iresnet_build) from its config file
// without allocating weights, so the counts are exactly what a run allocates.
// Bytes per trained parameter (bf16 compute, fp32 master, AdamW):
//   working weights  dtype size (2 for bf16; fp32 runs use the master itself)
//   gradients        4 (fp32; all-reduced whole, not sharded under ZeRO-1)
//   master weights   4 (fp32; sharded over the ZeRO-1 world)
//   AdamW m, v       8 (fp32; sharded over the ZeRO-1 world)
// Frozen models keep only their working weights.
// Activations: an analytic count of what each module keeps on the activation
// stack in a training forward (read off the Saved structs of nn/resnet.h,
// nn/transformer2d.h, nn/unet.h; CLIP uses clip_act_bytes), plus the gradient
// working set of the backward; see plan.c for the formulas. "with
// checkpointing" = every UNet block checkpointed (keeps only block outputs and
// skips; the backward recomputes one block at a time).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "../kernels/tensor.h"

#define PLAN_MAX_MODELS 6

typedef struct {
    char model[16];    // unet, clip, vae-enc, vae-dec, vae, mlp, iresnet
    char config[512];  // the model's config file (iresnet: a name such as "r100")
    int train;         // 1: trained (gradients, optimizer state, training activations)
} PlanModel;

typedef struct {
    PlanModel m[PLAN_MAX_MODELS];
    int nmodels;
    int resolution;  // image pixels (latents are resolution / 8 for the UNet)
    int batch;       // per GPU
    int text_tokens; // conditioning length (77)
    DType compute;   // working weights and activations
    int master_f32;  // keep fp32 master weights (always for bf16 training)
    int zero1;       // ZeRO-1 world size (1 = no sharding)
    double gpu_gb;   // budget per GPU (GB = 1e9 bytes)
} PlanConfig;

typedef struct {
    char name[32];
    int train;
    uint64_t params;      // all entries (incl. buffers)
    uint64_t trainable;
    double weights, grads, master, adam;  // bytes per GPU
    double act, act_ckpt;                 // activation peak without / with checkpointing
} PlanRow;

// Reads the plan JSON (keys: models [{model, config, train}], resolution,
// batch, text_tokens, compute_dtype f32|bf16, master_weights f32|none,
// zero1_world_size, gpu_memory_gb). Relative config paths are taken as given
// (run from the repository root). 0 / -1 with one error line.
int plan_config_read(PlanConfig *p, const char *path);
// Builds each model's table and fills rows[0..nmodels). 0 / -1.
int plan_compute(const PlanConfig *p, PlanRow *rows);
// Parameter count of one model built from its config (no allocation).
int plan_count_params(const char *model, const char *config, uint64_t *params, uint64_t *trainable);

// Fixed per-process overhead assumed on a GPU (CUDA context, cuBLAS/cuDNN
// workspaces, allocator slack), bytes.
#define PLAN_RUNTIME_OVERHEAD 2.0e9
