// cudnn_conv.cu: cuDNN convolution through the backend graph API (plain C calls through
// cudnn_graph.cuh). See cudnn_conv.h for the contract.
//
// Graph tensors are described in cuDNN's logical NCHW order with NHWC strides:
//   x [B, Cin, H, W]     strides {H W Cin, 1, W Cin, Cin}
//   w [Cout, Cin, KH, KW] strides {KH KW Cin, 1, KW Cin, Cin}   (our KRSC layout)
//   y [B, Cout, Ho, Wo]  strides {Ho Wo Cout, 1, Wo Cout, Cout}
// Forward with a bias is conv -> f32 virtual -> add bias [1, Cout, 1, 1] -> y (one
// rounding, cuDNN's conv + bias fusion). Backward passes write scratch (beta = 0) that
// one kernel adds into the caller's gradient.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.cuh"
#include "cudnn_conv.h"
#include "device.h"

namespace {
template <typename D, typename S>
__global__ void acc_kernel(D *__restrict__ dst, const S *__restrict__ src, size_t n) {
    GRID_STRIDE(i, n) dst[i] = from_f32<D>(to_f32(dst[i]) + to_f32(src[i]));
}
}  // namespace

#ifndef A2F_HAVE_CUDNN
extern "C" int cuda_cudnn_conv_available(DType dt, const Conv2dShape *s, int which, const char **why) {
    if (why) *why = "this build has no cuDNN (A2F_HAVE_CUDNN unset)";
    return 0;
}
extern "C" int cuda_cudnn_conv_run(int which, DType dt, void *out, const void *a, const void *b, const void *bias,
                                   const Conv2dShape *s, cudaStream_t st) {
    return (int)cudaErrorNotSupported;
}
extern "C" int cuda_cudnn_conv_check_offline(const Conv2dShape *s, DType dt, int which, int bias, int dw_f32,
                                             int arch, char *why, size_t nwhy) {
    snprintf(why, nwhy, "this build has no cuDNN");
    return 1;
}
#else
#include "cudnn_graph.cuh"

enum { U_X = 1, U_W, U_Y, U_BIAS };  // variant pack ids (dx, dy, dw reuse x, y, w)

static int conv_out(int n, int pre, int post, int k, int stride) { return (n + pre + post - k) / stride + 1; }

// The graph of pass `which` for (dt, s): bias (which 0) fuses the bias add; dw_f32 (which 2)
// asks for an fp32 dW.
static void build(Graph *g, DType dt, const Conv2dShape *s, int which, int bias, int dw_f32) {
    const cudnnDataType_t t = dt == DT_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT, f32 = CUDNN_DATA_FLOAT;
    const int64_t B = s->B, H = s->H, W = s->W, Ci = s->Cin, Co = s->Cout, KH = s->KH, KW = s->KW;
    const int64_t Ho = conv_out(s->H, s->pt, s->pb, s->KH, s->sh), Wo = conv_out(s->W, s->pl, s->pr, s->KW, s->sw);
    const int64_t xd[4] = {B, Ci, H, W}, xs[4] = {H * W * Ci, 1, W * Ci, Ci};
    const int64_t wd[4] = {Co, Ci, KH, KW}, ws[4] = {KH * KW * Ci, 1, KW * Ci, Ci};
    const int64_t yd[4] = {B, Co, Ho, Wo}, ys[4] = {Ho * Wo * Co, 1, Wo * Co, Co};
    const int64_t bd[4] = {1, Co, 1, 1}, bs[4] = {Co, 1, Co, Co};

    const char *what = "convolution descriptor";
    cudnnBackendDescriptor_t cd = g_new(g, CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR, what);
    const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
    const int64_t dims = 2, dil[2] = {1, 1}, str[2] = {s->sh, s->sw}, pre[2] = {s->pt, s->pl}, post[2] = {s->pb, s->pr};
    g_set(g, cd, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32, what);
    g_set(g, cd, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode, what);
    g_set(g, cd, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &dims, what);
    g_set(g, cd, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2, dil, what);
    g_set(g, cd, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 2, str, what);
    g_set(g, cd, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 2, pre, what);
    g_set(g, cd, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 2, post, what);
    g_final(g, cd, what);

    // the pass's operation and the attribute names of alpha, beta, the convolution and the
    // x, w, y slots (the backward passes put dx, dw, dy in them)
    static const struct {
        cudnnBackendDescriptorType_t op;
        cudnnBackendAttributeName_t alpha, beta, conv, x, w, y;
        const char *what;
    } k_pass[3] = {
        {CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA,
         CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC,
         CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W,
         CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, "convolution forward"},
        {CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY, "convolution backward data"},
        {CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_BETA,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_CONV_DESC, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_X,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DW, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DY,
         "convolution backward filter"},
    };
    const float alpha = 1.0f, beta = 0.0f;
    const bool fuse_bias = which == 0 && bias;  // y is then an f32 virtual tensor before the bias add
    cudnnBackendDescriptor_t x = g_tensor(g, t, xd, xs, U_X, "x");
    cudnnBackendDescriptor_t w = g_tensor(g, which == 2 && dw_f32 ? f32 : t, wd, ws, U_W, "w");
    cudnnBackendDescriptor_t y = g_tensor(g, fuse_bias ? f32 : t, yd, ys, fuse_bias ? 0 : U_Y, which ? "dy" : "y");
    what = k_pass[which].what;
    cudnnBackendDescriptor_t op = g_new(g, k_pass[which].op, what);
    g_set(g, op, k_pass[which].alpha, CUDNN_TYPE_FLOAT, 1, &alpha, what);
    g_set(g, op, k_pass[which].beta, CUDNN_TYPE_FLOAT, 1, &beta, what);
    g_link(g, op, k_pass[which].conv, cd, what);
    g_link(g, op, k_pass[which].x, x, what);
    g_link(g, op, k_pass[which].w, w, what);
    g_link(g, op, k_pass[which].y, y, what);
    g_op(g, op, what);
    if (fuse_bias) {
        cudnnBackendDescriptor_t b = g_tensor(g, t, bd, bs, U_BIAS, "bias");
        cudnnBackendDescriptor_t out = g_tensor(g, t, yd, ys, U_Y, "y");
        g_pw(g, CUDNN_POINTWISE_ADD, f32, y, b, NULL, out, -1, "y + bias");
    }
}

typedef struct {
    const Conv2dShape *s;
    DType dt;
    int which, bias, dw_f32;
} OfflineCase;

static void build_case(Graph *g, const void *ctx) {
    const OfflineCase *c = (const OfflineCase *)ctx;
    build(g, c->dt, c->s, c->which, c->bias, c->dw_f32);
}

extern "C" int cuda_cudnn_conv_check_offline(const Conv2dShape *s, DType dt, int which, int bias, int dw_f32,
                                             int arch, char *why, size_t nwhy) {
    const OfflineCase c = {s, dt, which, bias, dw_f32};
    return g_offline_check(arch, build_case, &c, why, nwhy);
}

// ---------------------------------------------------------------- plan cache and execution
typedef struct {
    Conv2dShape s;
    DType dt;
    int which, bias;
    int dw_f32;                     // pass 2: cuDNN writes dW in fp32
    cudnnBackendDescriptor_t plan;  // NULL: cuDNN refused (why)
    int64_t ws;
    char why[320];
} Plan;
#define PLAN_MAX 256
static Plan g_plans[PLAN_MAX];
static int g_nplans = 0, g_next = 0;

static bool same(const Conv2dShape *a, const Conv2dShape *b) { return memcmp(a, b, sizeof *a) == 0; }

static const Plan *plan_get(DType dt, const Conv2dShape *s, int which, int bias) {
    for (int i = 0; i < g_nplans; i++) {
        const Plan *p = &g_plans[i];
        if (p->dt == dt && p->which == which && p->bias == bias && same(&p->s, s)) return p;
    }
    Plan *p = g_nplans < PLAN_MAX ? &g_plans[g_nplans++] : &g_plans[g_next++ % PLAN_MAX];
    if (p->plan) cudnnBackendDestroyDescriptor(p->plan);
    memset(p, 0, sizeof *p);
    p->s = *s, p->dt = dt, p->which = which, p->bias = bias;
    const char *hwhy = NULL;
    cudnnHandle_t h = dnn_handle(&hwhy);
    if (!h) {
        snprintf(p->why, sizeof p->why, "%s", hwhy);
        return p;
    }
    // pass 2 in bf16: an fp32 dW first (no extra rounding), then a bf16 one
    for (int f32 = which == 2 && dt == DT_BF16; f32 >= 0 && !p->plan; f32--) {
        Graph g;
        g_init(&g);
        build(&g, dt, s, which, bias, f32 || dt == DT_F32);
        p->plan = g_plan_live(&g, h, &p->ws);
        p->dw_f32 = f32 || dt == DT_F32;
        if (!p->plan) snprintf(p->why, sizeof p->why, "%s", g.err);
        g_free(&g);
    }
    return p;
}

static bool shape_ok(DType dt, const Conv2dShape *s, const char **why) {
    // f32 would need TF32-free engines picked by their numerical notes: not done, the
    // legacy "cudnn" path (FMA math) serves f32
    if (dt != DT_BF16) return *why = "cuDNN graph convolution: bf16 only", false;
    if (s->B <= 0 || s->H <= 0 || s->W <= 0 || s->Cin <= 0 || s->Cout <= 0 || s->KH <= 0 || s->KW <= 0 ||
        s->sh <= 0 || s->sw <= 0 || conv2d_out_h(s) <= 0 || conv2d_out_w(s) <= 0)
        return *why = "cuDNN graph convolution: bad shape", false;
    return true;
}

extern "C" int cuda_cudnn_conv_available(DType dt, const Conv2dShape *s, int which, const char **why) {
    const char *w = NULL;
    int ok = 0;
    if (shape_ok(dt, s, &w)) {
        const Plan *p = plan_get(dt, s, which, which == 0);  // forward: the graph with the bias (every conv here has one)
        ok = p->plan != NULL;
        w = p->why;
    }
    if (why) *why = ok ? "" : w;
    return ok;
}

static size_t up256(size_t n) { return (n + 255) & ~(size_t)255; }

extern "C" int cuda_cudnn_conv_run(int which, DType dt, void *out, const void *a, const void *b, const void *bias,
                                   const Conv2dShape *s, cudaStream_t st) {
    const char *why;
    if (!shape_ok(dt, s, &why) || which < 0 || which > 2) return (int)cudaErrorInvalidValue;
    const Plan *p = plan_get(dt, s, which, which == 0 && bias);
    if (!p->plan) return (int)cudaErrorNotSupported;
    const size_t es = dtype_size(dt);
    const size_t nx = (size_t)s->B * s->H * s->W * s->Cin, nw = (size_t)s->Cout * s->KH * s->KW * s->Cin;
    // workspace: plan | scratch gradient (passes 1 and 2)
    const size_t scratch = which == 1 ? nx * es : which == 2 ? nw * (p->dw_f32 ? 4 : es) : 0;
    char *ws = (char *)dev_workspace(up256((size_t)p->ws) + scratch + 1);
    if (!ws) return (int)cudaErrorMemoryAllocation;
    char *grad = ws + up256((size_t)p->ws);
    int64_t uids[4] = {U_X, U_W, U_Y, U_BIAS};
    void *ptrs[4];
    if (which == 0) ptrs[0] = (void *)a, ptrs[1] = (void *)b, ptrs[2] = out, ptrs[3] = (void *)bias;
    else if (which == 1) ptrs[0] = grad, ptrs[1] = (void *)b, ptrs[2] = (void *)a;
    else ptrs[0] = (void *)b, ptrs[1] = grad, ptrs[2] = (void *)a;
    int rc = g_execute(p->plan, which == 0 && bias ? 4 : 3, uids, ptrs, ws, st, "cuDNN convolution");
    if (rc || which == 0) return rc;
    if (which == 1) {
        DISPATCH_T(dt, acc_kernel<T, T><<<grid_for(nx, 256), 256, 0, st>>>((T *)out, (const T *)grad, nx));
    } else if (p->dw_f32) {
        acc_kernel<float, float><<<grid_for(nw, 256), 256, 0, st>>>((float *)out, (const float *)grad, nw);
    } else {
        acc_kernel<float, bf16><<<grid_for(nw, 256), 256, 0, st>>>((float *)out, (const bf16 *)grad, nw);
    }
    return (int)cudaGetLastError();
}
#endif  // A2F_HAVE_CUDNN
