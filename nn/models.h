// models.h: the registry of whole networks that `arc2face forward` (and any
// other generic driver) can run by name: unet, vae-enc, vae-dec, clip,
// clip-id, mlp, iresnet.
//
// Each ModelDef describes its named inputs and output in PYTORCH layout (what
// diffusers / transformers / insightface take: images and latents NCHW), so a
// forward/backward can be compared with PyTorch directly; the adapters convert
// to and from the framework's NHWC. A model is plugged in with a handful of
// small adapter functions (load / check / forward / backward / weights /
// free) around its module API (nn/unet.h, nn/vae.h, nn/clip.h,
// nn/mlp_encoder.h, nn/iresnet.h).
//
// models_run() is the whole driver: read inputs, build and load the model,
// forward, optional backward with an upstream gradient, gather results.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "nn.h"

#define MODEL_MAX_INPUTS 4
#define MODEL_MAX_DIMS 8

enum { MODEL_PLAIN = 0, MODEL_NCHW = 1 };  // file layout of an input / output (NCHW: ours is NHWC)
// What an input holds: floats uploaded in the context dtype, integer ids kept
// on the host (int32), or floats always uploaded as fp32 (a diffusion timestep).
enum { MI_FLOAT = 0, MI_INT = 1, MI_F32 = 2 };

typedef struct {
    const char *name;    // the input's name in --inputs
    int kind;            // MI_FLOAT, MI_INT (I64/I32 in the file) or MI_F32
    int ndim;            // PyTorch rank; 0 with ndim_alt: see below
    int ndim_alt;        // another accepted rank (e.g. a scalar timestep), or -1
    int layout;          // MODEL_PLAIN or MODEL_NCHW (ndim 4)
    int differentiable;  // backward gives grad.<name>
    const char *doc;     // "[B, 4, H, W] float (latents)"
} ModelInput;

// One input as read from the file: shape in PyTorch layout, values on the host
// in OUR layout (NHWC for MODEL_NCHW), fp32 (or int32 for is_int).
typedef struct {
    int ndim;
    int64_t shape[MODEL_MAX_DIMS];
    size_t numel;
    float *f;
    int32_t *i;
} ModelArg;

typedef struct {
    const char *name;         // --model NAME
    const char *summary;
    const char *weights_doc;  // what --weights is
    int ninputs;
    ModelInput in[MODEL_MAX_INPUTS];
    const char *out_doc;
    int out_layout;           // MODEL_PLAIN or MODEL_NCHW
    // Builds the model from weights on be in dt (train: gradients). *state is the adapter's.
    int (*load)(void **state, const char *weights, const Backend *be, DType dt, int train);
    // Checks the inputs against each other and the model; gives the output's PyTorch shape.
    int (*check)(void *state, const ModelArg *args, int *out_ndim, int64_t *out_shape);
    // out: [numel(out_shape)] context dtype on the backend (our layout); in_dev[k]: input k
    // on the backend (context dtype, fp32 for MI_F32; NULL for MI_INT, read from args[k].i).
    int (*forward)(void *state, const Ctx *c, void *out, void *const *in_dev, const ModelArg *args);
    // din[k] (NULL or zeroed, context dtype) += input gradients; parameter gradients +=.
    int (*backward)(void *state, const Ctx *c, void *const *din, const void *dout);
    Weights *(*weights)(void *state);
    void (*free)(void *state);
} ModelDef;

int models_count(void);
const ModelDef *models_get(int i);
const ModelDef *models_find(const char *name);

typedef struct {
    const char *model;       // registry name
    const char *weights;     // --weights
    const char *inputs;      // safetensors with the named inputs
    const char *out;         // safetensors to write
    const char *grad;        // safetensors with "out" (the upstream gradient), or NULL
    const Backend *be;       // NULL: CPU
    DType dt;                // activations and working weights
    size_t act_bytes;        // activation / gradient stack sizes
} ModelRunOpts;

// The whole `forward` verb: writes o->out with "out" (PyTorch layout, fp32),
// and with o->grad also "grad.<input>" for each differentiable input and
// "grad.<upstream key>" for every trainable parameter (PyTorch layout).
// Every problem -> one error line (a2f_last_error), -1.
int models_run(const ModelRunOpts *o);
