// iresnet.h: face-recognition backbones with manual backward (NHWC).
//
//  - insightface arcface_torch IResNet (style IRES_INSIGHTFACE): "r100"
//    (layers [3,13,30,3], the ArcFace / antelopev2 glintr100 network), "r50"
//    ([3,4,14,3]), "r34", "r18". Keys as in shared/reference/keys/keys_iresnet100.txt:
//      conv1, bn1, prelu, layer{1..4}.{i}.{bn1,conv1,bn2,prelu,conv2,bn3,downsample.{0,1}},
//      bn2, fc, features (BatchNorm1d; features.weight frozen at 1, no gradient)
//  - TreB1eN InsightFace_Pytorch Backbone (style IRES_TREB1EN): "irse50"
//    (mode ir_se, [3,4,14,3]) and "ir50" (mode ir). Keys: input_layer.{0,1,2},
//    body.N.{res_layer.{0..5},shortcut_layer.{0,1}}, output_layer.{0,3,4};
//    its output is L2-normalised.
//
// Forward: x [B, H, W, 3] (preprocessed RGB, see iresnet_preprocess) ->
//   stem conv3x3 -> BN -> PReLU -> 4 stages (every stage starts with stride 2)
//   -> BN2d -> flatten in PyTorch's NCHW order -> dropout -> fc -> BN1d -> y [B, E].
// The flatten: fc.weight keeps PyTorch's [E, C*h*w] layout with columns in
// (c, y, x) order, so loading/saving/gradients need no special case; the
// NHWC head activation [B, h*w, C] is transposed to [B, C, h*w] before the
// fc (a batched GEMM against an identity [h*w, h*w]: exact in f32 and bf16)
// and the gradient transposed back. fc has C4*h*w inputs, h = H after four
// stride-2 3x3 convs ((n-1)/2+1 each: 112 -> 7), so any input size works.
//
// BatchNorm mode (m->bn_train, like model.train()/eval()) is independent of
// ctx->train (keep the tape): eval-mode forward+backward gives gradients
// through a frozen network (ID losses); training mode uses batch statistics
// and updates the running stats (iresnet_layers.h says where they live).
#pragma once
#include "iresnet_block.h"

#define IRES_MAX_BLOCKS 128

typedef struct {
    int style;       // IRES_INSIGHTFACE or IRES_TREB1EN
    int se;          // TreB1eN: 1 = ir_se (squeeze-excitation), 0 = ir
    int layers[4];   // blocks per stage
    int widths[4];   // channels per stage (64, 128, 256, 512)
    int stem;        // stem conv channels (64)
    int emb;         // embedding size (512)
    int in_h, in_w;  // input size the fc is built for (112 x 112)
    float dropout;   // before fc, training mode only (insightface default 0)
} IResNetConfig;

typedef struct {
    IResNetConfig cfg;
    int style, l2norm;       // l2norm: output normalised (TreB1eN)
    Conv2d conv1;
    BatchNorm bn1;
    int prelu;               // table index [stem]
    IRBlock blocks[IRES_MAX_BLOCKS];
    int nblocks;
    BatchNorm bn2, features;
    Linear fc;
    int fh, fw;              // spatial size at the head (7 x 7)
    int bn_train;            // 1: BatchNorm training mode (set by the caller)
    uint64_t drop_seed, drop_offset;  // dropout stream (caller advances drop_offset per step)
    int nstats;              // floats of the compact fp32 running-stat copy
    float *stats32;          // that copy (backend memory) for bf16 weights without master, or NULL
    const Backend *stats_be;
} IResNet;

typedef struct {
    size_t mark;
    const void *x;
    int B;
    float *st[4][2];                         // mean/rstd of bn1, bn2, features [C] (training BN)
    void *c0, *b0, *p0;                      // stem conv, BN, PReLU [B, H, W, stem]
    void *outs[IRES_MAX_BLOCKS];             // block outputs [B, h, w, C]
    int hs[IRES_MAX_BLOCKS + 1], ws[IRES_MAX_BLOCKS + 1];  // input size of block i (i = nblocks: head)
    IRBlockSaved blk[IRES_MAX_BLOCKS];
    void *eye;                               // identity [fh*fw, fh*fw]
    void *h;                                 // bn2 [B, fh, fw, C4]
    void *t;                                 // transposed [B, C4*fh*fw] (PyTorch flatten order)
    void *td;                                // after dropout (== t when none)
    void *f;                                 // fc [B, E]
    void *z;                                 // features [B, E] (l2norm only)
    int dropped;                             // dropout applied (seed/offset below)
    uint64_t seed, offset;
} IResNetSaved;

// Named configuration: "r18", "r34", "r50", "r100", "r200" (insightface),
// "ir50", "irse50", "ir100", "irse100" (TreB1eN). 112x112, E = 512. 0 / -1.
int iresnet_config(IResNetConfig *cfg, const char *name);
// Builds the table in W->t (params_init'ed by this call). Checks the config
// (one error line). Free with iresnet_free (and weights_free / params_free).
int iresnet_build(IResNet *m, ParamTable *t, const IResNetConfig *cfg);
void iresnet_free(IResNet *m);
// y [B, E] (caller-allocated on c->act) from x [B, in_h, in_w, 3].
int iresnet_f(const Ctx *c, const Weights *W, IResNet *m, void *y, const void *x, int B, IResNetSaved *sv);
// dx [B, in_h, in_w, 3] += (may be NULL); parameter gradients +=.
int iresnet_b(const Ctx *c, const Weights *W, IResNet *m, void *dx, const void *dy, const IResNetSaved *sv);

// Loads an upstream state dict (safetensors, e.g. converted from arcface.onnx /
// glintr100.onnx or an arcface_torch .pth) into W (allocated by the caller for
// m's table): num_batches_tracked keys are ignored; missing / unexpected /
// mis-shaped keys give one error. Binds the fp32 running statistics for bf16
// inference weights. 0 / -1.
int iresnet_load(IResNet *m, Weights *W, const char *safetensors_path);
// KeyMap dropping "*.num_batches_tracked" (for weights_load with other maps).
int iresnet_keymap(const char *file_key, char *out, size_t n);
// For W without fp32 running statistics (bf16, no master): copies them from
// host [t.total] fp32 values in our layout (the array given to weights_upload)
// into m->stats32. No-op otherwise. 0 / -1.
int iresnet_bind_stats(IResNet *m, const Weights *W, const float *host);

// ArcFace input: img [n_pixels, 3] uint8 (RGB; BGR with swap_rb) -> out
// [n_pixels, 3] float RGB, (v - 127.5) / 127.5 (= (v/255 - 0.5)/0.5).
void iresnet_preprocess(float *out, const uint8_t *img, size_t n_pixels, int swap_rb);
