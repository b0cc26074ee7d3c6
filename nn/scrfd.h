// scrfd.h: the SCRFD-10G-KPS face detector network (insightface antelopev2
// scrfd_10g_bnkps.onnx = buffalo_l det_10g.onnx), inference only, NHWC.
// Facts: shared/reference/face-detection-alignment.md sections 1-2.
//
// Structure (mmdet SCRFD: ResNetV1e backbone, PAFPN neck, SCRFDHead). Every
// BatchNorm is folded into the conv before it (as in the released ONNX), so
// every conv has a bias and there is no norm layer:
//   stem      conv3x3 s2 (3->s0) ReLU, conv3x3 (s0->s1) ReLU, conv3x3 (s1->s2) ReLU,
//             maxpool k2 s2
//   layer1..4 BasicBlocks (conv3x3 stride s, ReLU, conv3x3, + shortcut, ReLU);
//             stage strides 1, 2, 2, 2; block 0 of a stage with stride 2 or a
//             width change has the avg_down shortcut: avgpool k=s s=s
//             (ceil_mode, count_include_pad=False) then conv1x1
//   neck      PAFPN on C3, C4, C5 (layer2..4), no norm, no activation:
//             L_i = lateral_i(C_i); L1 += up2(L2); L0 += up2(L1);
//             I_i = fpn_i(L_i); I1 += down0(I0); I2 += down1(I1);
//             P3 = I0, P4 = pafpn0(I1), P5 = pafpn1(I2)
//   head      per stride (8, 16, 32; nothing shared): tower of conv3x3+ReLU,
//             then cls (A ch, sigmoid), reg (4A ch, times the learned Scale --
//             folded into reg's weights by tools/onnx2safetensors.py), kps (10A)
//
// Parameter names (our own; tools/onnx2safetensors.py maps the ONNX graph to
// them structurally), PyTorch layout in files:
//   backbone.stem.{0,1,2}.{weight,bias}
//   backbone.layer{1..4}.{i}.{conv1,conv2,downsample}.{weight,bias}
//   neck.lateral.{0,1,2}, neck.fpn.{0,1,2}, neck.down.{0,1}, neck.pafpn.{0,1}  .{weight,bias}
//   head.stride{8,16,32}.{tower.{j},cls,reg,kps}.{weight,bias}
// The widths and depths are read from the file (scrfd_config_from_file), so
// reduced-width test models use the same code.
//
// Outputs (the ONNX graph's 9 outputs, same order, same row layout: the NHWC
// conv output [H_l, W_l, A*C] IS the ONNX [(h*W_l + w)*A + a, C] matrix):
//   out[0..2] scores  [B, n_l]      sigmoid probabilities, strides 8, 16, 32
//   out[3..5] bbox    [B, n_l, 4]   distances (l, t, r, b) in units of stride
//   out[6..8] kps     [B, n_l, 10]  offsets (x0, y0, ..., x4, y4) in units of stride
// with n_l = (H/s)(W/s)A. H and W must be multiples of 32 (then every
// nearest upsample is an exact 2x, as at insightface's 640x640).
#pragma once
#include "layers.h"

#define SCRFD_MAX_BLOCKS 32
#define SCRFD_MAX_TOWER 8
#define SCRFD_LEVELS 3

typedef struct {
    int stem[3];    // stem conv widths (28, 28, 56)
    int blocks[4];  // BasicBlocks per stage (3, 4, 2, 3)
    int planes[4];  // stage widths (56, 88, 88, 224)
    int neck;       // PAFPN width (56)
    int feat;       // head tower width (80)
    int tower;      // convs per tower (3)
    int anchors;    // anchors per location (2)
} ScrfdConfig;

typedef struct {
    Conv2d conv1, conv2, down;
    int has_down, stride, cin, cout;
} ScrfdBlock;

typedef struct {
    ScrfdConfig cfg;
    Conv2d stem[3];
    ScrfdBlock blocks[SCRFD_MAX_BLOCKS];
    int stage_first[5];  // index of the first block of stage s (stage_first[4] = nblocks)
    int nblocks;
    Conv2d lateral[3], fpn[3], down[2], pafpn[2];
    Conv2d tower[SCRFD_LEVELS][SCRFD_MAX_TOWER], cls[SCRFD_LEVELS], reg[SCRFD_LEVELS], kps[SCRFD_LEVELS];
} Scrfd;

extern const int SCRFD_STRIDES[SCRFD_LEVELS];  // 8, 16, 32

// The released SCRFD-10G-KPS configuration.
ScrfdConfig scrfd_config_10g(void);
// Reads widths and depths from a converted file's tensor shapes (one error
// line naming the file and the missing / odd tensor). 0 / -1.
int scrfd_config_from_file(ScrfdConfig *cfg, const char *path);
// Builds the table in t (params_init'ed here). Checks the config. 0 / -1.
int scrfd_build(Scrfd *m, ParamTable *t, const ScrfdConfig *cfg);
// scrfd_config_from_file + scrfd_build + weights_alloc(be, dt, inference) +
// weights_load (every key present, nothing extra, shapes exact). On failure
// nothing is left allocated. 0 / -1.
int scrfd_load(Scrfd *m, Weights *W, const char *path, const Backend *be, DType dt);
// Rows of level l (0..2) for an H x W input: (H/s)(W/s)A.
size_t scrfd_rows(const Scrfd *m, int level, int H, int W);
// Activation-stack bytes one forward of B images at H x W needs (a bound,
// tested against the arena's high-water mark). Outputs and input not included.
size_t scrfd_act_bytes(const Scrfd *m, int B, int H, int W, DType dt);
// x [B, H, W, 3] preprocessed RGB ((v - 127.5) / 128) -> out[9] (caller-
// allocated, context dtype, layout above). Inference only (ctx->train
// ignored); the activation stack is back where it was on return. 0 / -1.
int scrfd_f(const Ctx *c, const Weights *W, const Scrfd *m, void *const out[9], const void *x, int B, int H, int Wd);
