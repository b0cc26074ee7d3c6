// resnet.h: diffusers ResnetBlock2D (time_embedding_norm "default",
// output_scale_factor 1, dropout 0), used by the UNet (GroupNorm eps 1e-5,
// temb 1280) and the VAE (eps 1e-6, no time embedding):
//
//   h = conv1(SiLU(norm1(x)))                        3x3 pad 1, bias
//   h = h + time_emb_proj(SiLU(temb))[:, None, None, :]   (temb_channels > 0)
//   h = conv2(SiLU(norm2(h)))                        3x3 pad 1, bias
//   y = (Cin != Cout ? conv_shortcut(x) : x) + h     conv_shortcut 1x1 with bias
//
// Keys under prefix: norm1.*, conv1.*, time_emb_proj.*, norm2.*, conv2.*,
// conv_shortcut.* (diffusers names). Activations NHWC.
#pragma once
#include "layers.h"

typedef struct {
    GroupNorm norm1, norm2;
    Conv2d conv1, conv2, shortcut;
    Linear temb_proj;
    int cin, cout, temb;  // temb = 0: no time embedding
    int has_shortcut;     // cin != cout
} ResnetBlock;

// What the backward needs (filled by a training forward; plain host struct).
typedef struct {
    size_t mark;            // activation stack position on entry
    const void *x, *temb;   // the forward's inputs (caller-owned, must stay alive)
    int B, H, W;
    void *h1;               // SiLU(norm1(x)) [B, H, W, cin]
    float *m1, *r1;         // norm1 stats [B, G]
    void *c1;               // conv1 + temb projection [B, H, W, cout]
    void *ta;               // SiLU(temb) [B, temb] (temb > 0)
    void *ones;             // [H*W] ones, broadcasting the projection (temb > 0)
    void *h2;               // SiLU(norm2(c1)) [B, H, W, cout]
    float *m2, *r2;         // norm2 stats [B, G]
} ResnetSaved;

// groups / eps of both GroupNorms; temb_channels 0 = no time_emb_proj.
void resnet_add(ResnetBlock *m, ParamTable *t, const char *prefix, int cin, int cout, int temb_channels, int groups,
                float eps);
// y [B, H, W, cout] (allocated by the caller) from x [B, H, W, cin] and
// temb [B, temb] (ignored when temb == 0). sv may be NULL when !c->train.
int resnet_f(const Ctx *c, const Weights *W, const ResnetBlock *m, void *y, const void *x, const void *temb, int B,
             int H, int Wd, ResnetSaved *sv);
// dx [B, H, W, cin] += (may be NULL), dtemb [B, temb] += (may be NULL; the
// gradient w.r.t. temb before the SiLU), parameter gradients +=.
int resnet_b(const Ctx *c, const Weights *W, const ResnetBlock *m, void *dx, void *dtemb, const void *dy,
             const ResnetSaved *sv);

// n ones of the context dtype on the activation stack (broadcast helper).
void *nn_push_ones(const Ctx *c, size_t n);
