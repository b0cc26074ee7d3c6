// backend.c: the CPU Backend table (kernels/backend.h): fp32 reference ops
// behind the backend-neutral signatures. Only DT_F32 activations are
// supported (CPU_ST_DTYPE otherwise); memory is plain host memory.
#include <stdlib.h>
#include <string.h>

#include "../backend.h"
#include "../common.h"
#include "../rng.h"
#include "ops.h"
#include "optim.h"

static void *cpu_alloc(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, 256, bytes ? bytes : 1) != 0) {
        a2f_set_error("out of memory allocating %zu bytes of host memory", bytes);
        return NULL;
    }
    return p;
}
static void cpu_free(void *p) {
    free(p);
}
static int cpu_copy(void *dst, const void *src, size_t bytes) {
    memmove(dst, src, bytes);
    return 0;
}
static int cpu_memset(void *dst, int byte, size_t bytes) {
    memset(dst, byte, bytes);
    return 0;
}
static int cpu_sync(void) {
    return 0;
}
static cudaStream_t cpu_stream(void) {
    return NULL;
}
static const char *cpu_status_str(int st) {
    switch (st) {
        case CPU_ST_OK:
            return "ok";
        case CPU_ST_DTYPE:
            return "the CPU backend computes in f32 only";
        default:
            return "unsupported on the CPU backend";
    }
}
static int cpu_fill_uniform(float *x, size_t n, uint64_t seed, uint64_t offset, cudaStream_t s) {
    philox_fill_uniform(x, n, seed, offset);
    return 0;
}
static int cpu_fill_normal(float *x, size_t n, uint64_t seed, uint64_t offset, cudaStream_t s) {
    philox_fill_normal(x, n, seed, offset, 0.0f, 1.0f);
    return 0;
}

#define NEED_F32(dt)                             \
    do {                                         \
        if ((dt) != DT_F32) return CPU_ST_DTYPE; \
    } while (0)

static int w_gemm(DType dt, int ta, int tb, int M, int N, int K, float alpha, const void *A, int lda, const void *B,
                  int ldb, float beta, void *C, int ldc, cudaStream_t s) {
    NEED_F32(dt);
    gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return 0;
}

static int w_gemm_batched(DType dt, int ta, int tb, int M, int N, int K, float alpha, const void *A, int lda, long sA,
                          const void *B, int ldb, long sB, float beta, void *C, int ldc, long sC, int batch,
                          cudaStream_t s) {
    NEED_F32(dt);
    gemm_batched(ta, tb, M, N, K, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch);
    return 0;
}

static int w_gemm_f32out(DType dt, int ta, int tb, int M, int N, int K, float alpha, const void *A, int lda,
                         const void *B, int ldb, float beta, float *C, int ldc, cudaStream_t s) {
    NEED_F32(dt);
    gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return 0;
}

static int w_gemm_batched_f32out(DType dt, int ta, int tb, int M, int N, int K, float alpha, const void *A, int lda,
                                 long sA, const void *B, int ldb, long sB, float beta, float *C, int ldc, long sC,
                                 int batch, cudaStream_t s) {
    NEED_F32(dt);
    gemm_batched(ta, tb, M, N, K, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch);
    return 0;
}

static int w_gemm_bias(DType dt, int ta, int tb, int M, int N, int K, const void *A, int lda, const void *B, int ldb,
                       const void *bias, void *C, int ldc, cudaStream_t s) {
    NEED_F32(dt);
    gemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
    if (bias)
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) ((float *)C)[(size_t)m * ldc + n] += ((const float *)bias)[n];
    return 0;
}

static int w_linear_fwd(DType dt, void *y, const void *x, const void *W, const void *b, int M, int K, int N,
                        cudaStream_t s) {
    NEED_F32(dt);
    linear_fwd(y, x, W, b, M, K, N);
    return 0;
}

static int w_linear_bwd(DType dt, void *dx, float *dW, float *db, const void *dy, const void *x, const void *W, int M,
                        int K, int N, cudaStream_t s) {
    NEED_F32(dt);
    linear_bwd(dx, dW, db, dy, x, W, M, K, N);
    return 0;
}

static int w_bias_grad(DType dt, float *db, const void *dy, long M, int N, cudaStream_t s) {
    NEED_F32(dt);
    for (int n = 0; n < N; n++) {
        double acc = 0;
        for (long m = 0; m < M; m++) acc += ((const float *)dy)[(size_t)m * N + n];
        db[n] += (float)acc;
    }
    return 0;
}

static int w_conv2d_fwd(DType dt, void *y, const void *x, const void *w, const void *bias, const Conv2dShape *sh,
                        cudaStream_t s) {
    NEED_F32(dt);
    conv2d_fwd(y, x, w, bias, sh);
    return 0;
}

static int w_conv2d_bwd(DType dt, void *dx, float *dw, float *dbias, const void *dy, const void *x, const void *w,
                        const Conv2dShape *sh, cudaStream_t s) {
    NEED_F32(dt);
    conv2d_bwd(dx, dw, dbias, dy, x, w, sh);
    return 0;
}

static int w_groupnorm_fwd(DType dt, void *y, float *mean, float *rstd, const void *x, const void *gamma,
                           const void *beta, int B, int HW, int C, int G, float eps, int silu, cudaStream_t s) {
    NEED_F32(dt);
    groupnorm_fwd(y, mean, rstd, x, gamma, beta, B, HW, C, G, eps, silu);
    return 0;
}

static int w_groupnorm_bwd(DType dt, void *dx, float *dgamma, float *dbeta, const void *dy, const void *x,
                           const float *mean, const float *rstd, const void *gamma, const void *beta, int B, int HW,
                           int C, int G, int silu, cudaStream_t s) {
    NEED_F32(dt);
    groupnorm_bwd(dx, dgamma, dbeta, dy, x, mean, rstd, gamma, beta, B, HW, C, G, silu);
    return 0;
}

static int w_layernorm_fwd(DType dt, void *y, float *mean, float *rstd, const void *x, const void *gamma,
                           const void *beta, int N, int C, float eps, cudaStream_t s) {
    NEED_F32(dt);
    layernorm_fwd(y, mean, rstd, x, gamma, beta, N, C, eps);
    return 0;
}

static int w_layernorm_bwd(DType dt, void *dx, float *dgamma, float *dbeta, const void *dy, const void *x,
                           const float *mean, const float *rstd, const void *gamma, int N, int C, cudaStream_t s) {
    NEED_F32(dt);
    layernorm_bwd(dx, dgamma, dbeta, dy, x, mean, rstd, gamma, N, C);
    return 0;
}

static int w_batchnorm_fwd_infer(DType dt, void *y, const void *x, const void *gamma, const void *beta,
                                 const float *run_mean, const float *run_var, int N, int C, float eps, cudaStream_t s) {
    NEED_F32(dt);
    batchnorm_fwd_infer(y, x, gamma, beta, run_mean, run_var, N, C, eps);
    return 0;
}

static int w_batchnorm_fwd_train(DType dt, void *y, float *mean, float *rstd, float *run_mean, float *run_var,
                                 const void *x, const void *gamma, const void *beta, int N, int C, float eps,
                                 float momentum, cudaStream_t s) {
    NEED_F32(dt);
    batchnorm_fwd_train(y, mean, rstd, run_mean, run_var, x, gamma, beta, N, C, eps, momentum);
    return 0;
}

static int w_batchnorm_bwd_train(DType dt, void *dx, float *dgamma, float *dbeta, const void *dy, const void *x,
                                 const float *mean, const float *rstd, const void *gamma, int N, int C,
                                 cudaStream_t s) {
    NEED_F32(dt);
    batchnorm_bwd_train(dx, dgamma, dbeta, dy, x, mean, rstd, gamma, N, C);
    return 0;
}

static int w_batchnorm_bwd_infer(DType dt, void *dx, float *dgamma, float *dbeta, const void *dy, const void *x,
                                 const void *gamma, const float *run_mean, const float *run_var, int N, int C,
                                 float eps, cudaStream_t s) {
    NEED_F32(dt);
    batchnorm_bwd_infer(dx, dgamma, dbeta, dy, x, gamma, run_mean, run_var, N, C, eps);
    return 0;
}

static int w_relu_fwd(DType dt, void *y, const void *x, size_t n, cudaStream_t s) {
    NEED_F32(dt);
    relu_fwd(y, x, n);
    return 0;
}

static int w_relu_bwd(DType dt, void *dx, const void *dy, const void *x, size_t n, cudaStream_t s) {
    NEED_F32(dt);
    relu_bwd(dx, dy, x, n);
    return 0;
}

static int w_sigmoid_fwd(DType dt, void *y, const void *x, size_t n, cudaStream_t s) {
    NEED_F32(dt);
    sigmoid_fwd(y, x, n);
    return 0;
}

static int w_sigmoid_bwd(DType dt, void *dx, const void *dy, const void *x, size_t n, cudaStream_t s) {
    NEED_F32(dt);
    sigmoid_bwd(dx, dy, x, n);
    return 0;
}

static int w_silu_fwd(DType dt, void *y, const void *x, size_t n, cudaStream_t s) {
    NEED_F32(dt);
    silu_fwd(y, x, n);
    return 0;
}

static int w_silu_bwd(DType dt, void *dx, const void *dy, const void *x, size_t n, cudaStream_t s) {
    NEED_F32(dt);
    silu_bwd(dx, dy, x, n);
    return 0;
}

static int w_gelu_fwd(DType dt, void *y, const void *x, size_t n, cudaStream_t s) {
    NEED_F32(dt);
    gelu_fwd(y, x, n);
    return 0;
}

static int w_gelu_bwd(DType dt, void *dx, const void *dy, const void *x, size_t n, cudaStream_t s) {
    NEED_F32(dt);
    gelu_bwd(dx, dy, x, n);
    return 0;
}

static int w_quickgelu_fwd(DType dt, void *y, const void *x, size_t n, cudaStream_t s) {
    NEED_F32(dt);
    quickgelu_fwd(y, x, n);
    return 0;
}

static int w_quickgelu_bwd(DType dt, void *dx, const void *dy, const void *x, size_t n, cudaStream_t s) {
    NEED_F32(dt);
    quickgelu_bwd(dx, dy, x, n);
    return 0;
}

static int w_prelu_fwd(DType dt, void *y, const void *x, const void *slope, size_t N, int C, cudaStream_t s) {
    NEED_F32(dt);
    prelu_fwd(y, x, slope, N, C);
    return 0;
}

static int w_prelu_bwd(DType dt, void *dx, float *dslope, const void *dy, const void *x, const void *slope, size_t N,
                       int C, cudaStream_t s) {
    NEED_F32(dt);
    prelu_bwd(dx, dslope, dy, x, slope, N, C);
    return 0;
}

static int w_geglu_fwd(DType dt, void *y, const void *x, size_t N, int D, cudaStream_t s) {
    NEED_F32(dt);
    geglu_fwd(y, x, N, D);
    return 0;
}

static int w_geglu_bwd(DType dt, void *dx, const void *dy, const void *x, size_t N, int D, cudaStream_t s) {
    NEED_F32(dt);
    geglu_bwd(dx, dy, x, N, D);
    return 0;
}

static int w_softmax_fwd(DType dt, void *y, const void *x, size_t N, int C, cudaStream_t s) {
    NEED_F32(dt);
    softmax_fwd(y, x, N, C);
    return 0;
}

static int w_softmax_bwd(DType dt, void *dx, const void *dy, const void *y, size_t N, int C, cudaStream_t s) {
    NEED_F32(dt);
    softmax_bwd(dx, dy, y, N, C);
    return 0;
}

static int w_maxpool2d_fwd(DType dt, void *y, int32_t *argmax, const void *x, const Pool2dShape *shape,
                           cudaStream_t s) {
    NEED_F32(dt);
    maxpool2d_fwd(y, argmax, x, shape);
    return 0;
}

static int w_maxpool2d_bwd(DType dt, void *dx, const void *dy, const int32_t *argmax, const Pool2dShape *shape,
                           cudaStream_t s) {
    NEED_F32(dt);
    maxpool2d_bwd(dx, dy, argmax, shape);
    return 0;
}

static int w_avgpool2d_fwd(DType dt, void *y, const void *x, const Pool2dShape *shape, cudaStream_t s) {
    NEED_F32(dt);
    avgpool2d_fwd(y, x, shape);
    return 0;
}

static int w_avgpool2d_bwd(DType dt, void *dx, const void *dy, const Pool2dShape *shape, cudaStream_t s) {
    NEED_F32(dt);
    avgpool2d_bwd(dx, dy, shape);
    return 0;
}

static int w_global_avgpool_fwd(DType dt, void *y, const void *x, int B, int HW, int C, cudaStream_t s) {
    NEED_F32(dt);
    global_avgpool_fwd(y, x, B, HW, C);
    return 0;
}

static int w_global_avgpool_bwd(DType dt, void *dx, const void *dy, int B, int HW, int C, cudaStream_t s) {
    NEED_F32(dt);
    global_avgpool_bwd(dx, dy, B, HW, C);
    return 0;
}

static int w_channel_scale_fwd(DType dt, void *y, const void *x, const void *sc, int B, int HW, int C, cudaStream_t s) {
    NEED_F32(dt);
    channel_scale_fwd(y, x, sc, B, HW, C);
    return 0;
}

static int w_channel_scale_bwd(DType dt, void *dx, void *dsc, const void *dy, const void *x, const void *sc, int B,
                               int HW, int C, cudaStream_t s) {
    NEED_F32(dt);
    channel_scale_bwd(dx, dsc, dy, x, sc, B, HW, C);
    return 0;
}

static int w_attention_fwd(DType dt, void *o, float *lse, const void *q, const void *k, const void *v,
                           const AttnShape *s, cudaStream_t st) {
    NEED_F32(dt);
    attention_fwd(o, lse, q, k, v, s);
    return 0;
}

static int w_attention_bwd(DType dt, void *dq, void *dk, void *dv, const void *dout, const void *q, const void *k,
                           const void *v, const void *o, const float *lse, const AttnShape *s, cudaStream_t st) {
    NEED_F32(dt);
    attention_bwd(dq, dk, dv, dout, q, k, v, o, lse, s);
    return 0;
}

static int w_upsample2x_fwd(DType dt, void *y, const void *x, int B, int H, int W, int C, cudaStream_t s) {
    NEED_F32(dt);
    upsample2x_fwd(y, x, B, H, W, C);
    return 0;
}

static int w_upsample2x_bwd(DType dt, void *dx, const void *dy, int B, int H, int W, int C, cudaStream_t s) {
    NEED_F32(dt);
    upsample2x_bwd(dx, dy, B, H, W, C);
    return 0;
}

static int w_concat_fwd(DType dt, void *y, const void *a, const void *b, size_t P, int Ca, int Cb, cudaStream_t s) {
    NEED_F32(dt);
    concat_fwd(y, a, b, P, Ca, Cb);
    return 0;
}

static int w_concat_bwd(DType dt, void *da, void *db, const void *dy, size_t P, int Ca, int Cb, cudaStream_t s) {
    NEED_F32(dt);
    concat_bwd(da, db, dy, P, Ca, Cb);
    return 0;
}

static int w_add_fwd(DType dt, void *y, const void *a, const void *b, size_t n, cudaStream_t s) {
    NEED_F32(dt);
    add_fwd(y, a, b, n);
    return 0;
}

static int w_add_bwd(DType dt, void *da, void *db, const void *dy, size_t n, cudaStream_t s) {
    NEED_F32(dt);
    add_bwd(da, db, dy, n);
    return 0;
}

static int w_embedding_fwd(DType dt, void *y, const int32_t *ids, const void *table, int N, int V, int D,
                           cudaStream_t s) {
    NEED_F32(dt);
    embedding_fwd(y, ids, table, N, V, D);
    return 0;
}

static int w_embedding_bwd(DType dt, float *dtable, const void *dy, const int32_t *ids, int N, int V, int D,
                           cudaStream_t s) {
    NEED_F32(dt);
    embedding_bwd(dtable, dy, ids, N, V, D);
    return 0;
}

static int w_timestep_embedding_fwd(DType dt, void *y, const float *t, int B, int dim, int flip_sin_to_cos,
                                    float freq_shift, float max_period, cudaStream_t s) {
    NEED_F32(dt);
    timestep_embedding_fwd(y, t, B, dim, flip_sin_to_cos, freq_shift, max_period);
    return 0;
}

static int w_timestep_embedding_bwd(DType dt, float *dt_grad, const void *dy, const float *t, int B, int dim,
                                    int flip_sin_to_cos, float freq_shift, float max_period, cudaStream_t s) {
    NEED_F32(dt);
    timestep_embedding_bwd(dt_grad, dy, t, B, dim, flip_sin_to_cos, freq_shift, max_period);
    return 0;
}

static int w_dropout_fwd(DType dt, void *y, const void *x, size_t n, float p, uint64_t seed, uint64_t offset,
                         cudaStream_t s) {
    NEED_F32(dt);
    dropout_fwd(y, x, n, p, seed, offset);
    return 0;
}

static int w_dropout_bwd(DType dt, void *dx, const void *dy, size_t n, float p, uint64_t seed, uint64_t offset,
                         cudaStream_t s) {
    NEED_F32(dt);
    dropout_bwd(dx, dy, n, p, seed, offset);
    return 0;
}

static int w_mse_loss_fwd(DType dt, float *loss, const void *a, const void *b, size_t n, cudaStream_t s) {
    NEED_F32(dt);
    *loss = mse_loss_fwd(a, b, n);
    return 0;
}

static int w_mse_loss_bwd(DType dt, void *da, void *db, float dloss, const void *a, const void *b, size_t n,
                          cudaStream_t s) {
    NEED_F32(dt);
    mse_loss_bwd(da, db, dloss, a, b, n);
    return 0;
}

static int w_l2norm_fwd(DType dt, void *y, const void *x, int N, int D, float eps, cudaStream_t s) {
    NEED_F32(dt);
    l2norm_fwd(y, x, N, D, eps);
    return 0;
}

static int w_l2norm_bwd(DType dt, void *dx, const void *dy, const void *x, int N, int D, float eps, cudaStream_t s) {
    NEED_F32(dt);
    l2norm_bwd(dx, dy, x, N, D, eps);
    return 0;
}

static int w_cosine_sim_fwd(DType dt, float *y, const void *a, const void *b, int N, int D, float eps, cudaStream_t s) {
    NEED_F32(dt);
    cosine_sim_fwd(y, a, b, N, D, eps);
    return 0;
}

static int w_cosine_sim_bwd(DType dt, void *da, void *db, const float *dy, const void *a, const void *b, int N, int D,
                            float eps, cudaStream_t s) {
    NEED_F32(dt);
    cosine_sim_bwd(da, db, dy, a, b, N, D, eps);
    return 0;
}

static int w_adamw_step(DType dt, void *work, float *master, float *m, float *v, const float *grad, size_t n,
                        AdamWHyper hyper, int64_t step, float grad_scale, const float *d_grad_scale, uint64_t seed,
                        uint64_t offset, cudaStream_t s) {
    NEED_F32(dt);
    float scale = grad_scale * (d_grad_scale ? *d_grad_scale : 1.0f);
    adamw_step(master, m, v, grad, n, &hyper, step, scale);
    if (work && work != master) memcpy(work, master, n * sizeof(float));
    (void)seed, (void)offset;
    return 0;
}

static int w_grad_norm(float *norm, float *clip_coef, const float *grad, size_t n, float max_norm, cudaStream_t s) {
    double nrm = grad_norm_l2(grad, n);
    *norm = (float)nrm;
    if (clip_coef) *clip_coef = clip_grad_coef((float)nrm, max_norm);
    return 0;
}

static const Backend g_cpu = {
    .name = "cpu",
    .device = DEV_CPU,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .memset = cpu_memset,
    .sync = cpu_sync,
    .default_stream = cpu_stream,
    .status_str = cpu_status_str,
    .philox_fill_uniform = cpu_fill_uniform,
    .philox_fill_normal = cpu_fill_normal,
    .gemm = w_gemm,
    .gemm_batched = w_gemm_batched,
    .gemm_f32out = w_gemm_f32out,
    .gemm_batched_f32out = w_gemm_batched_f32out,
    .gemm_bias = w_gemm_bias,
    .linear_fwd = w_linear_fwd,
    .linear_bwd = w_linear_bwd,
    .bias_grad = w_bias_grad,
    .conv2d_fwd = w_conv2d_fwd,
    .conv2d_bwd = w_conv2d_bwd,
    .groupnorm_fwd = w_groupnorm_fwd,
    .groupnorm_bwd = w_groupnorm_bwd,
    .layernorm_fwd = w_layernorm_fwd,
    .layernorm_bwd = w_layernorm_bwd,
    .batchnorm_fwd_infer = w_batchnorm_fwd_infer,
    .batchnorm_fwd_train = w_batchnorm_fwd_train,
    .batchnorm_bwd_train = w_batchnorm_bwd_train,
    .batchnorm_bwd_infer = w_batchnorm_bwd_infer,
    .relu_fwd = w_relu_fwd,
    .relu_bwd = w_relu_bwd,
    .sigmoid_fwd = w_sigmoid_fwd,
    .sigmoid_bwd = w_sigmoid_bwd,
    .silu_fwd = w_silu_fwd,
    .silu_bwd = w_silu_bwd,
    .gelu_fwd = w_gelu_fwd,
    .gelu_bwd = w_gelu_bwd,
    .quickgelu_fwd = w_quickgelu_fwd,
    .quickgelu_bwd = w_quickgelu_bwd,
    .prelu_fwd = w_prelu_fwd,
    .prelu_bwd = w_prelu_bwd,
    .geglu_fwd = w_geglu_fwd,
    .geglu_bwd = w_geglu_bwd,
    .softmax_fwd = w_softmax_fwd,
    .softmax_bwd = w_softmax_bwd,
    .maxpool2d_fwd = w_maxpool2d_fwd,
    .maxpool2d_bwd = w_maxpool2d_bwd,
    .avgpool2d_fwd = w_avgpool2d_fwd,
    .avgpool2d_bwd = w_avgpool2d_bwd,
    .global_avgpool_fwd = w_global_avgpool_fwd,
    .global_avgpool_bwd = w_global_avgpool_bwd,
    .channel_scale_fwd = w_channel_scale_fwd,
    .channel_scale_bwd = w_channel_scale_bwd,
    .attention_fwd = w_attention_fwd,
    .attention_bwd = w_attention_bwd,
    .upsample2x_fwd = w_upsample2x_fwd,
    .upsample2x_bwd = w_upsample2x_bwd,
    .concat_fwd = w_concat_fwd,
    .concat_bwd = w_concat_bwd,
    .add_fwd = w_add_fwd,
    .add_bwd = w_add_bwd,
    .embedding_fwd = w_embedding_fwd,
    .embedding_bwd = w_embedding_bwd,
    .timestep_embedding_fwd = w_timestep_embedding_fwd,
    .timestep_embedding_bwd = w_timestep_embedding_bwd,
    .dropout_fwd = w_dropout_fwd,
    .dropout_bwd = w_dropout_bwd,
    .mse_loss_fwd = w_mse_loss_fwd,
    .mse_loss_bwd = w_mse_loss_bwd,
    .l2norm_fwd = w_l2norm_fwd,
    .l2norm_bwd = w_l2norm_bwd,
    .cosine_sim_fwd = w_cosine_sim_fwd,
    .cosine_sim_bwd = w_cosine_sim_bwd,
    .adamw_step = w_adamw_step,
    .grad_norm = w_grad_norm,
};

const Backend *cpu_backend(void) {
    return &g_cpu;
}
