// test_cudnn_offline.c: cuDNN itself checks the attention graphs of
// kernels/cuda/cudnn_sdpa.cu and the convolution graphs of kernels/cuda/cudnn_conv.cu
// on a machine without a GPU. For each shape the graph is
// built, cuDNN's heuristics run against a described A100 / H100 (cuDNN's own device-
// properties JSON), its fused-attention engines apply their pattern and support checks,
// and the kernels are compiled (NVRTC); only loading them needs a device, so the run
// goes as far as a GPU-less machine allows (tests/cudnn/run_offline.sh provides the CUDA
// toolkit's stub driver library for that step). A graph cuDNN does not recognise (wrong
// dtype of an intermediate, a mis-wired operand, a bad stride) fails here with cuDNN's
// reason. Independent reference: cuDNN's support checks, not our code.
//
// Shapes: the attentions of the SD1.5 UNet at batch 2 (self 4096/1024 tokens with head
// dims 40/80, cross over 77 tokens with 40/160) and CLIP's causal self-attention, forward
// (composite graph and cuDNN's single SDPA operation) and backward (deterministic, and
// the dQ-accumulator variant once), Q/K/V as slices of one fused QKV projection, on
// sm_90; a subset on sm_80. Two shapes cuDNN must refuse
// show the check is not vacuous: backward with head dim 160 on sm_80 (cuDNN's Ampere
// backward stops at 128) and head dim 20 (not a multiple of 8). (cuDNN 9.26 accepts
// forward head dims up to 512 and beyond through other engines, so "too large" is no
// refusal to test.)
#include <stdio.h>
#include <string.h>

#include "../../kernels/cuda/cudnn_conv.h"
#include "../../kernels/cuda/cudnn_sdpa.h"
#include "../test.h"

typedef struct {
    int B, H, Nq, Nk, D, causal, fused, variant, arch;  // variant: A2F_SDPA_*
} Case;

static const char *const variant_label[A2F_SDPA_NVARIANTS] = {"fwd", "fwd unified-op", "bwd det", "bwd nondet"};

static AttnShape shape_of(const Case *c) {
    const long C = (long)c->H * c->D, row = c->fused ? 3 * C : C;  // fused: [B, N, 3*H*D] projection
    AttnShape s = {.B = c->B, .H = c->H, .Nq = c->Nq, .Nk = c->Nk, .D = c->D, .causal = c->causal,
                   .q_sb = c->Nq * row, .q_st = row, .k_sb = c->Nk * row, .k_st = row,
                   .v_sb = c->Nk * row, .v_st = row, .o_sb = (long)c->Nq * C, .o_st = C};
    return s;
}

static int g_skipped;

// Checks cuDNN's answer for case c: accept = 1 must build, 0 must be refused.
static void run(const Case *c, int accept) {
    AttnShape s = shape_of(c);
    char why[400];
    const int rc = cuda_cudnn_sdpa_check_offline(&s, c->variant, c->arch, why, sizeof why);
    printf("  sm_%d %s B%d H%d Nq%d Nk%d D%d%s%s: %s\n", c->arch, variant_label[c->variant], c->B, c->H, c->Nq, c->Nk,
           c->D, c->causal ? " causal" : "", c->fused ? " fused-qkv" : "", why);
    if (rc == 1) {
        g_skipped = 1;
        return;
    }
    if (accept) EXPECT(rc == 0, "cuDNN refused a graph it must accept: %s", why);
    else EXPECT(rc == -1, "cuDNN accepted a graph outside its support (head dim / arch): %s", why);
}

TEST(cudnn_sdpa_graphs_accepted_offline) {
    enum { F = A2F_SDPA_FWD, U = A2F_SDPA_FWD_UNIFIED, BD = A2F_SDPA_BWD, BN = A2F_SDPA_BWD_NONDET };
    static const Case cases[] = {
        // B, H, Nq, Nk, D, causal, fused, variant, arch
        {2, 8, 4096, 4096, 40, 0, 1, F, 90}, {2, 8, 4096, 4096, 40, 0, 1, U, 90},  // UNet 64x64 self
        {2, 8, 4096, 4096, 40, 0, 1, BD, 90},                                     //
        {2, 8, 4096, 77, 40, 0, 0, F, 90},   {2, 8, 4096, 77, 40, 0, 0, U, 90},    // 64x64 cross
        {2, 8, 4096, 77, 40, 0, 0, BD, 90},                                       //
        {2, 8, 1024, 1024, 80, 0, 0, F, 90}, {2, 8, 1024, 1024, 80, 0, 0, U, 90},  // 32x32 self
        {2, 8, 1024, 1024, 80, 0, 0, BD, 90},                                     //
        {2, 8, 256, 77, 160, 0, 0, F, 90},   {2, 8, 256, 77, 160, 0, 0, U, 90},    // 16x16 cross
        {2, 8, 256, 77, 160, 0, 0, BD, 90},                                       //
        {2, 12, 77, 77, 64, 1, 1, F, 90},    {2, 12, 77, 77, 64, 1, 1, BD, 90},    // CLIP causal
        {2, 8, 1024, 77, 80, 0, 0, BN, 90},                                       // dQ accumulator
        {2, 8, 4096, 4096, 40, 0, 0, F, 80}, {2, 12, 77, 77, 64, 1, 0, BD, 80},    // A100
    };
    g_skipped = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0] && !test_current_failed(); i++) run(&cases[i], 1);
    if (g_skipped) printf("  this cuDNN cannot plan without a device: nothing checked\n");
}

TEST(cudnn_sdpa_graphs_refused_offline) {
    static const Case cases[] = {
        {2, 8, 256, 256, 160, 0, 0, A2F_SDPA_BWD, 80},  // Ampere backward: head dim <= 128
        {1, 2, 64, 64, 20, 0, 0, A2F_SDPA_FWD, 90},     // head dim not a multiple of 8
    };
    g_skipped = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run(&cases[i], 0);
    if (g_skipped) printf("  this cuDNN cannot plan without a device: nothing checked\n");
}

// ---------------------------------------------------------------- convolution (kernels/cuda/cudnn_conv.cu)
// The graph-API convolutions of the dispatcher's "cudnn-graph" path: forward with the
// fused bias, backward data, backward filter (bf16 dW), for the UNet's 3x3 and 1x1 shapes,
// conv_in (Cin 4) and conv_out (Cout 4), the VAE encoder's right/bottom-only padding
// and IResNet's strided 1x1 shortcut, on sm_90 and sm_80. cuDNN must refuse an fp32 dW
// with bf16 operands: the code relies on that refusal to fall back to a bf16 dW.
typedef struct {
    const char *what;
    Conv2dShape s;
} ConvCase;

static void conv_run(const ConvCase *c, int which, int bias, int dw_f32, int arch, int accept) {
    char why[400];
    const int rc = cuda_cudnn_conv_check_offline(&c->s, DT_BF16, which, bias, dw_f32, arch, why, sizeof why);
    static const char *const pass[3] = {"fwd", "bwd-data", "bwd-filter"};
    printf("  sm_%d conv %s %s%s%s: %s\n", arch, c->what, pass[which], bias ? " +bias" : "", dw_f32 ? " f32 dW" : "",
           why);
    if (rc == 1) {
        g_skipped = 1;
        return;
    }
    if (accept) EXPECT(rc == 0, "cuDNN refused a convolution it must accept: %s", why);
    else EXPECT(rc == -1, "cuDNN accepted an fp32 dW with bf16 operands (the fallback assumes it does not): %s", why);
}

TEST(cudnn_conv_graphs_offline) {
    // B, H, W, Cin, Cout, KH, KW, sh, sw, pt, pb, pl, pr
    static const ConvCase cases[] = {
        {"UNet res 320 @64", {2, 64, 64, 320, 320, 3, 3, 1, 1, 1, 1, 1, 1}},
        {"UNet conv_in 4->320", {2, 64, 64, 4, 320, 3, 3, 1, 1, 1, 1, 1, 1}},
        {"UNet 1x1 1280 @16", {2, 16, 16, 1280, 1280, 1, 1, 1, 1, 0, 0, 0, 0}},
        {"UNet conv_out 320->4", {2, 64, 64, 320, 4, 3, 3, 1, 1, 1, 1, 1, 1}},
        {"VAE down s2 right/bottom pad", {1, 512, 512, 128, 128, 3, 3, 2, 2, 0, 1, 0, 1}},
        {"IResNet 1x1 s2 64->128", {32, 56, 56, 64, 128, 1, 1, 2, 2, 0, 0, 0, 0}},
    };
    g_skipped = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int arch = 90; arch >= 80; arch -= 10) {
            if (arch == 80 && i > 1) break;  // a subset on sm_80
            conv_run(&cases[i], 0, 1, 0, arch, 1);
            conv_run(&cases[i], 1, 0, 0, arch, 1);
            conv_run(&cases[i], 2, 0, 0, arch, 1);
        }
    conv_run(&cases[0], 2, 0, 1, 90, 0);
    if (g_skipped) printf("  this cuDNN cannot plan without a device: nothing checked\n");
}
