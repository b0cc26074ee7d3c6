// mlp_encoder.h: the MLP ID encoder of the paper's ablation (Arc2Face,
// Sec. 4.4 "ID-conditioning via MLP"): instead of the fine-tuned CLIP text
// encoder, an MLP maps the 512-d ArcFace vector to the [77, 768] conditioning
// the UNet cross-attends to.
//
// What the paper specifies: "replacing the CLIP encoder with a 4-layer MLP
// while maintaining the same training setting" -- nothing more (no widths,
// activation, normalisation). What we chose (all config-driven, JSON):
//   {"in_dim": 512, "hidden_dims": [1024, 2048, 2048], "activation": "gelu",
//    "num_tokens": 77, "token_dim": 768, "final_layer_norm": true,
//    "layer_norm_eps": 1e-5, "normalize_input": true}
//  - 4 Linear layers (len(hidden_dims) + 1) with bias, the activation
//    (exact "gelu", "silu" or "relu") between them, none after the last;
//  - the last layer outputs num_tokens * token_dim values, reshaped to
//    [B, num_tokens, token_dim] (row-major, token-major);
//  - widths 1024/2048/2048 give ~128M parameters, matching the CLIP text
//    encoder's 123M it replaces (the 2048 x 59136 output layer dominates);
//  - final_layer_norm: a LayerNorm over token_dim, as CLIP's final_layer_norm
//    ends the conditioning it replaces (and as the MLP projections of the
//    works the paper cites, e.g. IP-Adapter's MLPProjModel, end);
//  - normalize_input: the ArcFace vector is L2-normalised first, as in the
//    CLIP path (gradients are then w.r.t. the raw vector).
// Keys: mlp.layers.{i}.weight [out, in] / .bias [out], mlp.norm.weight/bias
// [token_dim]; equivalent to torch nn.Sequential(Linear, act, ..., Linear)
// (+ nn.LayerNorm(token_dim)) with the Linear modules renumbered 0..n-1.
#pragma once
#include "layers.h"

#define MLP_MAX_LAYERS 16

enum { MLP_GELU = 0, MLP_SILU = 1, MLP_RELU = 2 };

typedef struct {
    int in_dim;
    int n_hidden, hidden[MLP_MAX_LAYERS - 1];
    int act;  // MLP_GELU / MLP_SILU / MLP_RELU
    int num_tokens, token_dim;
    int final_norm, normalize;
    float eps;
} MlpConfig;

// The defaults above (the paper-scale ablation encoder).
void mlp_config_default(MlpConfig *c);
// JSON (keys above; missing keys keep the defaults). One error line, -1 on bad values.
int mlp_config_parse(MlpConfig *c, const char *json, const char *name);
int mlp_config_read(MlpConfig *c, const char *path);

typedef struct {
    MlpConfig cfg;
    int nl;  // Linear layers
    Linear layer[MLP_MAX_LAYERS];
    LayerNorm norm;
} MlpEncoder;

typedef struct {
    size_t mark;
    int B;
    const void *x;                 // [B, in_dim] caller's input
    const void *xin;               // [B, in_dim] what layer 0 reads (normalised x, or x)
    void *h[MLP_MAX_LAYERS];       // [B, width_i] pre-activation outputs of layers 0..nl-2
    void *a[MLP_MAX_LAYERS];       // [B, width_i] activations
    void *z;                       // [B, T*D] last layer output before the norm (final_norm only)
    float *m, *r;                  // [B*T] norm statistics
} MlpSaved;

// Registers mlp.* for cfg; -1 on an invalid config.
int mlp_add(MlpEncoder *m, ParamTable *t, const MlpConfig *cfg);
// y [B, num_tokens, token_dim] (caller-allocated) from x [B, in_dim].
int mlp_f(const Ctx *c, const Weights *W, const MlpEncoder *m, void *y, const void *x, int B, MlpSaved *sv);
// Parameter gradients +=, dx [B, in_dim] += (may be NULL).
int mlp_b(const Ctx *c, const Weights *W, const MlpEncoder *m, void *dx, const void *dy, MlpSaved *sv);
// Reads the JSON config, builds m and W->t, allocates W on W->be (NULL: CPU,
// F32) in W->dt (with gradients when train) and loads the safetensors files.
int mlp_load(MlpEncoder *m, Weights *W, const char *config_json, const char *const *weight_files, int n, int train);
