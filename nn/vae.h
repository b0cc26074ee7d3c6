// vae.h: the Stable Diffusion AutoencoderKL (diffusers), NHWC, with manual
// backward for the encoder and the decoder.
//
// Encoder: image x [B, H, W, in] (values in [-1, 1]) -> moments [B, h, w, 2L]
//   conv_in 3x3 -> per block i: layers_per_block ResnetBlock2D (GroupNorm eps
//   1e-6, no temb) then, except for the last block, a stride-2 3x3 conv after
//   zero padding right 1 / bottom 1 (diffusers downsample_padding=0)
//   -> mid block (resnet, single-head attention, resnet) -> GroupNorm + SiLU
//   -> conv_out 3x3 -> 2L channels -> quant_conv 1x1.  h = H halved per
//   downsample as floor((H - 2) / 2) + 1 (odd sizes allowed).
// Posterior: mean = moments[..., :L], logvar = clamp(moments[..., L:], -30, 20),
//   std = exp(0.5 logvar), sample = mean + std * eps.
// Decoder: z [B, h, w, L] -> post_quant_conv 1x1 -> conv_in 3x3 -> mid block
//   -> per block (block_out_channels reversed) layers_per_block + 1 resnets
//   (no skip connections) and, except for the last, nearest 2x upsample +
//   3x3 conv -> GroupNorm + SiLU -> conv_out 3x3 -> image [B, 8h', 8w', out].
//
// Scaling. The networks (vae_encoder_f / vae_decoder_f) work on the raw latent
// z. The caller API applies the config's scaling_factor s (SD1.5: 0.18215,
// also shift_factor when the config has one): vae_encode(.., scaled = 1)
// returns (z - shift) * s, the UNet's latent; vae_decode(.., scaled = 1)
// takes such latents and decodes latents / s + shift.
//
// Parameters are registered under the diffusers keys (new attention names
// to_q/to_k/to_v/to_out.0). vae_load accepts those and the old ones
// (query/key/value/proj_attn), with [C, C] or [C, C, 1, 1] attention
// weights; weights_save writes the new names.
#pragma once
#include "resnet.h"
#include "vae_attention.h"

#define VAE_MAX_BLOCKS 8
#define VAE_MAX_LAYERS 8  // decoder resnets per block = layers_per_block + 1

typedef struct {
    int in_channels, out_channels, latent_channels;
    int nblocks, block_out[VAE_MAX_BLOCKS];
    int layers_per_block, norm_num_groups;
    int use_quant_conv, use_post_quant_conv, mid_attention;
    float scaling_factor, shift_factor;  // shift 0 when the config has none
} VaeConfig;

// The SD1.5 configuration (architectures.md section 2.1).
VaeConfig vae_config_sd15(void);
// Reads a diffusers AutoencoderKL config.json (unknown keys ignored; options
// this implementation does not support -- act_fn other than silu, other block
// types, latents_mean/latents_std -- are an error). Returns 0 / -1.
int vae_config_load(VaeConfig *cfg, const char *path);
// Checks the values (positive sizes, groups dividing every width, limits).
int vae_config_check(const VaeConfig *cfg);

typedef struct {
    ResnetBlock res0, res1;
    VaeAttention attn;
    int has_attn;
} VaeMid;

typedef struct {
    size_t mark;
    ResnetSaved res0, res1;
    VaeAttnSaved attn;
    void *h0, *h1;  // res0 output, attention output [B, HW, C]
} VaeMidSaved;

typedef struct {
    Conv2d conv_in;
    ResnetBlock res[VAE_MAX_BLOCKS][VAE_MAX_LAYERS];
    Conv2d down[VAE_MAX_BLOCKS];  // blocks 0 .. nblocks-2
    VaeMid mid;
    GroupNorm norm_out;
    Conv2d conv_out, quant_conv;
} VaeEncoder;

typedef struct {
    Conv2d post_quant_conv, conv_in;
    VaeMid mid;
    ResnetBlock res[VAE_MAX_BLOCKS][VAE_MAX_LAYERS];
    Conv2d up[VAE_MAX_BLOCKS];  // blocks 0 .. nblocks-2
    GroupNorm norm_out;
    Conv2d conv_out;
} VaeDecoder;

typedef struct {
    VaeConfig cfg;
    VaeEncoder enc;
    VaeDecoder dec;
} Vae;

// Which halves to build: VAE_ENCODER, VAE_DECODER or both (the table then
// holds only those keys; loading a full file needs vae_keymap_* that skip the rest).
enum { VAE_ENCODER = 1, VAE_DECODER = 2, VAE_BOTH = 3 };
// Registers the parameters of the parts in t (params_init'ed by the caller).
void vae_add(Vae *m, ParamTable *t, const VaeConfig *cfg, int parts);
void vae_encoder_add(VaeEncoder *e, ParamTable *t, const VaeConfig *cfg);  // encoder.*, quant_conv.*
void vae_decoder_add(VaeDecoder *d, ParamTable *t, const VaeConfig *cfg);  // post_quant_conv.*, decoder.*

// What a training forward keeps for the backward (plain host structs; the
// pointers are into the activation stack).
typedef struct {
    size_t mark;
    const void *x;
    int B, H, W;
    void *h_in;  // conv_in output
    ResnetSaved res[VAE_MAX_BLOCKS][VAE_MAX_LAYERS];
    void *down_in[VAE_MAX_BLOCKS];  // downsample conv inputs
    int down_h[VAE_MAX_BLOCKS], down_w[VAE_MAX_BLOCKS];
    VaeMidSaved mid;
    void *mid_out, *g;  // mid block output; SiLU(norm_out(mid_out))
    float *gm, *gr;     // norm_out stats [B, G]
    void *co;           // conv_out output (quant_conv input)
    int h, w;           // latent size
} VaeEncSaved;

typedef struct {
    size_t mark;
    const void *z;
    int B, h, w;
    void *pq, *h_in;  // post_quant_conv output, conv_in output
    VaeMidSaved mid;
    ResnetSaved res[VAE_MAX_BLOCKS][VAE_MAX_LAYERS];
    void *up_in[VAE_MAX_BLOCKS], *up_x[VAE_MAX_BLOCKS];  // upsampled (conv input); block output before upsample
    int up_h[VAE_MAX_BLOCKS], up_w[VAE_MAX_BLOCKS];      // size before upsampling
    void *last, *g;  // last block output; SiLU(norm_out(last))
    float *gm, *gr;
    int H, W;  // image size
} VaeDecSaved;

// Latent size of an H x W image: each downsample maps n -> (n - 2) / 2 + 1.
void vae_latent_hw(const VaeConfig *cfg, int H, int W, int *h, int *w);
// Image size decoded from an h x w latent: n -> 2n per upsample.
void vae_image_hw(const VaeConfig *cfg, int h, int w, int *H, int *W);

// Encoder network: moments [B, h, w, 2L] (caller-allocated) from x [B, H, W, in].
// sv may be NULL when !c->train. The stage activations alternate between two
// buffers in inference, so the stack peak is two stage outputs plus one block.
int vae_encoder_f(const Ctx *c, const Weights *W, const Vae *m, void *moments, const void *x, int B, int H, int Wd,
                  VaeEncSaved *sv);
// dx [B, H, W, in] += (may be NULL); encoder and quant_conv gradients +=.
int vae_encoder_b(const Ctx *c, const Weights *W, const Vae *m, void *dx, const void *dmoments, const VaeEncSaved *sv);
// Decoder network: image [B, H, W, out] from the raw latent z [B, h, w, L].
int vae_decoder_f(const Ctx *c, const Weights *W, const Vae *m, void *img, const void *z, int B, int h, int w,
                  VaeDecSaved *sv);
// dz [B, h, w, L] += (may be NULL); decoder and post_quant_conv gradients +=.
int vae_decoder_b(const Ctx *c, const Weights *W, const Vae *m, void *dz, const void *dimg, const VaeDecSaved *sv);

// Mid block (resnet, attention, resnet) on x [B, H, W, C]; y caller-allocated.
void vae_mid_add(VaeMid *m, ParamTable *t, const char *prefix, int C, int groups, int attn);
int vae_mid_f(const Ctx *c, const Weights *W, const VaeMid *m, void *y, const void *x, int B, int H, int Wd,
              VaeMidSaved *sv);
int vae_mid_b(const Ctx *c, const Weights *W, const VaeMid *m, void *dx, const void *dy, const VaeMidSaved *sv);

// ------------------------------------------------------------------ posterior and scaling
// These run on the host (the latents are small: 4 x 64 x 64 per SD1.5 image):
// download, fp32 arithmetic, upload in the context dtype.

// mean, logvar [B, h, w, L] (backend memory, either may be NULL) from moments
// [P = B*h*w, 2L]; logvar clamped to [-30, 20].
int vae_posterior(const Ctx *c, int L, size_t P, const void *moments, void *mean, void *logvar);
// z [P, L] = ((mean + exp(0.5 logvar) * eps) - shift) * scale, with eps the
// given host floats [P, L], or (eps NULL) the Philox normal stream (seed,
// offset) of the backend (element i of the [P, L] NHWC latent = index i).
// mode_only = 1 uses z = mean (no noise).
int vae_sample(const Ctx *c, int L, size_t P, const void *moments, const float *eps, uint64_t seed, uint64_t offset,
               int mode_only, float shift, float scale, void *z);
// y[i] = x[i] * scale + shift over n values (backend memory; y may be x).
int vae_affine(const Ctx *c, void *y, const void *x, size_t n, float scale, float shift);

// ------------------------------------------------------------------ caller API
enum { VAE_MODE = 0, VAE_SAMPLE = 1 };
// Image x [B, H, W, in] -> latents [B, h, w, L]: the posterior mean
// (VAE_MODE) or a sample (VAE_SAMPLE, eps / Philox as vae_sample); scaled = 1
// applies (z - shift_factor) * scaling_factor. Inference only (c->train 0).
int vae_encode(const Ctx *c, const Weights *W, const Vae *m, void *latents, const void *x, int B, int H, int Wd,
               int mode, const float *eps, uint64_t seed, uint64_t offset, int scaled);
// Latents [B, h, w, L] -> image [B, H, W, out]; scaled = 1 first maps the
// latents to latents / scaling_factor + shift_factor. Inference only.
int vae_decode(const Ctx *c, const Weights *W, const Vae *m, void *img, const void *latents, int B, int h, int w,
               int scaled);

// ------------------------------------------------------------------ loading
// KeyMap for VAE files: renames the old attention names (query, key, value,
// proj_attn -> to_q, to_k, to_v, to_out.0); vae_keymap_encoder / _decoder
// also skip the keys of the other half (for an encoder- or decoder-only model).
int vae_keymap(const char *file_key, char *out, size_t n);
int vae_keymap_encoder(const char *file_key, char *out, size_t n);
int vae_keymap_decoder(const char *file_key, char *out, size_t n);
// Loads a diffusers folder: DIR/config.json and DIR/diffusion_pytorch_model.safetensors
// (or, when absent, diffusion_pytorch_model.fp16.safetensors; F32/F16/BF16
// files are converted). Builds m and W (both parts), allocates W on the CPU
// backend in fp32 without gradients and loads the weights. On failure nothing
// is left allocated and a2f_last_error() names the file and problem. 0 / -1.
int vae_load_diffusers(Vae *m, Weights *W, const char *dir);
// The same with the parts to build (vae_add), the backend (NULL = CPU), the
// working dtype and train = 1 for master weights and gradients.
int vae_load_diffusers_ex(Vae *m, Weights *W, const char *dir, int parts, const Backend *be, DType dt, int train);
