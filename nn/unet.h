// unet.h: diffusers UNet2DConditionModel (the SD1.5 family): config,
// parameters under the diffusers keys, forward, hand-written backward and
// gradient checkpointing per block.
//
//   emb = time_embedding.linear_2(SiLU(linear_1(timestep_embedding(t))))
//   h = conv_in(sample); skips = [h]
//   down blocks: (resnet [+ transformer]) x layers, each output pushed on skips,
//                then a 3x3 stride-2 downsampler (pushed too) except the last
//   mid: resnet, transformer, resnet
//   up blocks: (concat([h, skips.pop()]) -> resnet [+ transformer]) x (layers+1),
//              then nearest 2x upsample (cropped to the next skip's size for
//              odd sizes, as diffusers' upsample_size) + 3x3 conv, except the last
//   out = conv_out(SiLU(conv_norm_out(h)))
// Activations NHWC: sample [B, H, W, in], encoder_hidden_states [B, Nc, cross],
// out [B, H, W, out]. Any H, W >= 1.
#pragma once
#include "resnet.h"
#include "transformer2d.h"

#define UNET_MAX_LEVELS 6
#define UNET_MAX_LAYERS 4                       // layers_per_block; up blocks have one more
#define UNET_MAX_SKIPS (1 + UNET_MAX_LEVELS * (UNET_MAX_LAYERS + 1))

typedef struct {
    int in_channels, out_channels, sample_size;
    int cross_dim;                       // cross_attention_dim
    int groups;                          // norm_num_groups
    float eps;                           // norm_eps (resnets, conv_norm_out)
    int nlevels;                         // len(block_out_channels)
    int channels[UNET_MAX_LEVELS];       // block_out_channels
    int layers[UNET_MAX_LEVELS];         // layers_per_block, per down level
    int heads[UNET_MAX_LEVELS];          // attention heads per down level (attention_head_dim quirk)
    int down_attn[UNET_MAX_LEVELS];      // down_block_types[i] == CrossAttnDownBlock2D
    int up_attn[UNET_MAX_LEVELS];        // up_block_types[i] == CrossAttnUpBlock2D
    int flip_sin_to_cos;
    float freq_shift;
} UNetConfig;

// SD1.5's unet/config.json.
void unet_config_sd15(UNetConfig *cfg);
// Parses a diffusers config.json text (name is used in error messages).
// Options outside this family give one error naming the key. Returns 0 / -1.
int unet_config_parse(UNetConfig *cfg, const char *json, const char *name);
int unet_config_load(UNetConfig *cfg, const char *path);

typedef struct {
    ResnetBlock res[UNET_MAX_LAYERS + 1];
    Transformer2D attn[UNET_MAX_LAYERS + 1];
    int nres, has_attn, has_sampler;
    int cin, cout;  // input (previous block's) and output channels
    Conv2d sampler; // downsamplers.0.conv / upsamplers.0.conv
} UNetBlock;

typedef struct {
    UNetConfig cfg;
    int temb;  // time embedding width, 4 * channels[0]
    Conv2d conv_in, conv_out;
    GroupNorm norm_out;
    Linear time1, time2;
    UNetBlock down[UNET_MAX_LEVELS], mid, up[UNET_MAX_LEVELS];
    // Gradient checkpointing: set to 1 to keep nothing of that block in a
    // training forward and recompute it in backward.
    int ckpt_down[UNET_MAX_LEVELS], ckpt_mid, ckpt_up[UNET_MAX_LEVELS];
} UNet;

// Builds the module and registers every parameter in t. Returns 0, or -1
// with an error (inconsistent config: channels not divisible by the groups
// or the heads, too many levels/layers, skip channels that do not match).
int unet_build(UNet *m, ParamTable *t, const UNetConfig *cfg);

// What one block's backward needs.
typedef struct {
    size_t mark;                         // activation stack at the block's entry
    int H, W, Ho, Wo;                    // input / output spatial size
    const void *x;                       // block input [B, H, W, cin]
    void *res[UNET_MAX_LAYERS + 1];      // resnet outputs [B, H, W, cout]
    void *out[UNET_MAX_LAYERS + 1];      // layer outputs (transformer or resnet output)
    void *cat[UNET_MAX_LAYERS + 1];      // up: concat([h, skip]) [B, H, W, ch + cs]
    int skip[UNET_MAX_LAYERS + 2];       // skip indices produced (down) or consumed (up)
    void *one;                           // [1] one (the crop copy)
    void *up2, *upc;                     // up: 2x upsample [B, 2H, 2W, C], cropped [B, Ho, Wo, C]
    void *samp;                          // sampler output [B, Ho, Wo, cout]
    ResnetSaved rs[UNET_MAX_LAYERS + 1];
    T2DSaved ts[UNET_MAX_LAYERS + 1];
} UNetBlockSaved;

// Everything a UNet backward needs (~60 KB: allocate it on the heap).
typedef struct {
    size_t mark;
    int B, H, W, Nc;
    const void *sample, *ehs;
    const float *timestep;
    void *tproj, *t1, *t1a, *emb;        // [B, C0], [B, temb] x3
    void *hin;                           // conv_in output [B, H, W, C0] (skip 0)
    int nskip;
    void *skip[UNET_MAX_SKIPS];
    int skipC[UNET_MAX_SKIPS], skipH[UNET_MAX_SKIPS], skipW[UNET_MAX_SKIPS];
    UNetBlockSaved down[UNET_MAX_LEVELS], mid, up[UNET_MAX_LEVELS];
    void *hlast;                         // last up block output [B, H, W, C0]
    void *nout;                          // SiLU(conv_norm_out(hlast))
    float *nm, *nr;                      // [B, G]
} UNetSaved;

// out [B, H, W, out_channels] (caller-allocated). timestep [B] float in the
// backend's memory; ehs [B, Nc, cross_dim]. sv may be NULL when !c->train.
int unet_f(const Ctx *c, const Weights *W, const UNet *m, void *out, const void *sample, const float *timestep,
           const void *ehs, int B, int H, int Wd, int Nc, UNetSaved *sv);
// dsample [B, H, W, in] += (may be NULL), dehs [B, Nc, cross_dim] += (may be
// NULL), parameter gradients +=. Checkpointed blocks are recomputed (sv is
// refilled). Restores both stacks to the forward's entry.
int unet_b(const Ctx *c, const Weights *W, const UNet *m, void *dsample, void *dehs, const void *dout, UNetSaved *sv);

// Builds the model from DIR/config.json and loads DIR/diffusion_pytorch_model
// .safetensors (or .fp16.safetensors when that is the file present): table
// built into W->t, weights allocated on be in dtype dt (train: master + grad
// too) and loaded. Returns 0 / -1 with one error line.
int unet_load_diffusers(UNet *m, Weights *W, const char *dir, const Backend *be, DType dt, int train);
