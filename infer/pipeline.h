// pipeline.h: Arc2Face generation end to end -- ID vector in, images out --
// as upstream runs it (shared/reference/arc2face-upstream.md section 1):
//
//   conditioning   cond   = CLIP("photo of a id person") with the L2-normalised
//                           ID vector at the "id" token, zero-padded 512 -> hidden
//                           (or cropped to hidden for tiny test encoders: F.pad with
//                           a negative pad, as upstream would)           [1, 77, D]
//                  uncond = CLIP("")  (diffusers' default negative, upstream) or,
//                           NEGATIVE_ZERO, the prompt with a zero ID vector [1, 77, D]
//   latents        x_T = randn([n, 4, H/8, W/8]) * init_noise_sigma: torch's CPU
//                  generator (a seed gives diffusers' latents, NCHW -> our NHWC), or
//                  the Philox stream (element i of the NHWC tensor)
//   per step i     in  = [x, x] * input_scale(i)   (B = 2n: n uncond rows, n cond rows)
//                  eps = UNet(in, t_i, [uncond x n, cond x n])   ONE call
//                  e   = eps_u + g (eps_c - eps_u)   (guidance g <= 1: cond only, B = n)
//                  x   = scheduler_step(i, e, x)     (host fp32)
//   decode         img = clamp(VAE.decode(x / scaling_factor) / 2 + 0.5, 0, 1)
//                  PNG bytes = round(255 img) (diffusers' numpy_to_pil)
//
// The latents live on the host in fp32 between steps (4 x 64 x 64 per SD
// image: tiny), the networks run on the models' backend in its dtype.
#pragma once
#include <stdint.h>

#include "../nn/clip.h"
#include "../nn/unet.h"
#include "../data/image.h"
#include "../nn/vae.h"
#include "scheduler.h"
#include "tokenizer.h"

#define GEN_PROMPT "photo of a id person"
#define GEN_TOKENS 77          // the tokenizer's model_max_length
#define GEN_MAX_STEPS 1000
#define GEN_MAX_IMAGES 64

// Where the parts of a model are (the CLI builds these from --model / --base).
typedef struct {
    const char *unet_dir;        // diffusers UNet folder (Arc2Face: MODEL/arc2face)
    const char *encoder_dir;     // transformers CLIPTextModel folder (MODEL/encoder)
    const char *vae_dir;         // diffusers AutoencoderKL folder (BASE/vae)
    const char *scheduler_json;  // BASE/scheduler/scheduler_config.json; NULL: SD1.5's values
    const char *tokenizer_dir;   // folder with vocab.json + merges.txt (BASE/tokenizer)
} ModelPaths;

// Everything generation needs, loaded on one backend in one dtype.
typedef struct {
    const Backend *be;
    DType dt;
    UNet unet;
    Weights unet_w;
    ClipText clip;
    Weights clip_w;
    Vae vae;  // decoder only
    Weights vae_w;
    ClipTokenizer *tok;
    SchedulerConfig sched;
    Ctx ctx;  // activation stack (inference: no gradient stack)
} Models;

// Loads every part (one error line naming the file on failure; nothing left
// allocated). act_bytes: activation stack size (0: a default from the UNet's
// size). Returns 0 / -1.
int models_load(Models *m, const ModelPaths *p, const Backend *be, DType dt, size_t act_bytes);
void models_free(Models *m);

typedef enum { NOISE_TORCH = 0, NOISE_PHILOX = 1 } NoiseSource;
typedef enum { NEGATIVE_EMPTY = 0, NEGATIVE_ZERO = 1 } NegativeKind;

// Called after every denoising step with the host latents x [n, h, w, 4]
// (NHWC, fp32) -- diffusers' callback_on_step_end. Non-zero return aborts.
typedef int (*GenStepFn)(void *user, int step, int nsteps, const float *latents, int n, int h, int w);

typedef struct {
    int steps;             // 25
    float guidance;        // 3.0; <= 1: no classifier-free guidance (cond only)
    SamplerKind sampler;   // SAMPLER_DPMPP2M
    uint64_t seed;         // 0
    int n_images;          // 1 .. GEN_MAX_IMAGES
    int height, width;     // 512 x 512 (multiples of the VAE's downsampling factor)
    NoiseSource noise;     // NOISE_TORCH
    NegativeKind negative; // NEGATIVE_EMPTY
    const float *init_latents;  // optional host [n, h, w, 4] NHWC: replaces the noise draw
    GenStepFn on_step;     // optional per-step callback
    void *user;
    int progress;          // 1: progress bar on stderr when stderr is a terminal
} GenerateOptions;

void generate_options_default(GenerateOptions *o);

// Wall-clock seconds per stage (the backend is synchronised at stage ends).
typedef struct {
    double cond_s, denoise_s, decode_s, total_s;
    int nsteps;
    double step_s[GEN_MAX_STEPS];
} GenerateStats;

// Latent size of the options' image for these models (VAE factor 8 for SD).
// Returns 0, or -1 with an error when height/width are not multiples of it.
int generate_latent_hw(const Models *m, const GenerateOptions *o, int *h, int *w);
// The initial latents x_T [n, h, w, 4] host fp32 (noise source, seed,
// init_noise_sigma of the sampler).
int generate_initial_latents(const Models *m, const GenerateOptions *o, float *x);
// The conditioning [2, 77, D] host fp32: row 0 the negative, row 1 the ID
// prompt with id[512] (L2-normalised here; the encoder takes the first
// min(512, D) components zero-padded to D).
int generate_conditioning(const Models *m, const GenerateOptions *o, const float id[512], float *cond);

// The whole pipeline: img [n, H, W, 3] host fp32 in [0, 1] (before the uint8
// rounding), H = height, W = width. stats may be NULL. Returns 0 / -1.
int generate_f32(const Models *m, const GenerateOptions *o, const float id[512], float *img, GenerateStats *stats);
// The same, as n RGB8 images out[0 .. n-1] (allocated here; image_free each).
int generate(const Models *m, const GenerateOptions *o, const float id[512], Image *out, GenerateStats *stats);
// img [n, H, W, 3] in [0, 1] -> RGB bytes round(255 x) (diffusers' numpy_to_pil).
void generate_to_u8(const float *img, uint8_t *rgb, size_t n);

// ID vector helpers: L2-normalise in place (zero vector: error); blend
// (1 - t) a + t b renormalised (interpolation between two identities).
int id_normalize(float v[512]);
int id_blend(const float a[512], const float b[512], float t, float out[512]);
