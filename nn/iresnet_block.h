// iresnet_block.h: the residual unit of the face-recognition backbones, in
// the two upstream flavours (activations NHWC):
//
// IRES_INSIGHTFACE: insightface arcface_torch IBasicBlock, keys under prefix
//   (e.g. "layer2.0"):
//     r = bn3(conv2_s(prelu(bn2(conv1(bn1(x))))))      conv 3x3 pad 1, no bias
//     y = r + (downsample ? downsample.1(downsample.0(x)) : x)
//   downsample.0 = conv1x1 stride s, downsample.1 = BN; present when
//   stride != 1 or cin != cout.
// IRES_TREB1EN: TreB1eN InsightFace_Pytorch bottleneck_IR(_SE), prefix "body.N":
//     r = res_layer.4(res_layer.3_s(res_layer.2(res_layer.1(res_layer.0(x)))))
//         (BN, conv3x3, PReLU, conv3x3 stride s, BN -- no BN before the PReLU)
//     r = r * sigmoid(fc2(relu(fc1(avgpool(r)))))    SE (res_layer.5.fc1/fc2,
//                                                    1x1 convs C->C/16->C, no bias)
//     y = r + (cin == cout ? x[:, ::s, ::s] (MaxPool2d(1, s)) : shortcut_layer.1(shortcut_layer.0(x)))
#pragma once
#include "iresnet_layers.h"

enum { IRES_INSIGHTFACE = 0, IRES_TREB1EN = 1 };

typedef struct {
    int style, se;
    int cin, cout, stride, red;  // red = cout / 16 (SE width)
    BatchNorm bn1, bn2, bn3;     // bn2: insightface only
    Conv2d conv1, conv2;
    int prelu;                   // table index of the PReLU slopes [cout]
    int has_down;                // conv1x1 + BN shortcut
    Conv2d down;
    BatchNorm down_bn;
    Conv2d se1, se2;             // 1x1 convs used as Linear [red, cin=cout] / [cout, red]
} IRBlock;

// What the backward needs (filled by a training forward).
typedef struct {
    size_t mark;                    // activation stack position on entry
    const void *x;                  // input [B, H, W, cin] (caller's, must stay alive)
    int B, H, W, Ho, Wo;
    void *a1;                       // bn1(x) [B, H, W, cin]
    void *c1;                       // conv1 [B, H, W, cout]
    void *a2;                       // bn2(c1) [B, H, W, cout] (insightface; else = c1)
    void *p;                        // prelu [B, H, W, cout]
    void *c2;                       // conv2 [B, Ho, Wo, cout]
    void *r;                        // bn3(c2) [B, Ho, Wo, cout] (SE only)
    void *g, *s1, *s1r, *s2, *sg;   // SE: pool [B, cout], fc1 [B, red], relu, fc2 [B, cout], sigmoid
    void *d;                        // downsample conv [B, Ho, Wo, cout]
    float *st[4][2];                // batch mean / rstd of bn1, bn2, bn3, down_bn [C] (BN training)
} IRBlockSaved;

// Registers the block's parameters; *nstats grows by the BN stats it needs.
void irblock_add(IRBlock *m, ParamTable *t, const char *prefix, int style, int se, int cin, int cout, int stride,
                 int *nstats);
// Output spatial size for an input of size n (3x3 pad 1 conv with the block's stride).
static inline int irblock_out(const IRBlock *m, int n) { return (n - 1) / m->stride + 1; }
// y [B, Ho, Wo, cout] (allocated by the caller) from x [B, H, W, cin]. sv may be NULL when !c->train.
int irblock_f(const Ctx *c, const Weights *W, const IRBlock *m, const BnMode *bn, void *y, const void *x, int B,
              int H, int Wd, IRBlockSaved *sv);
// dx [B, H, W, cin] += (may be NULL); parameter gradients +=.
int irblock_b(const Ctx *c, const Weights *W, const IRBlock *m, const BnMode *bn, void *dx, const void *dy,
              const IRBlockSaved *sv);
