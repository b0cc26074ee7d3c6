// backend.h: the backend-neutral op API.
//
// A Backend is a table of the ops of kernels/cpu/ops.h with one signature for
// every device: activations and working weights are `void *` of the context's
// DType, parameter gradients / statistics / losses are float *, every op takes
// a trailing stream (ignored on the CPU) and returns 0 or a backend status
// (status_str turns it into text). The CPU table (kernels/cpu/backend.c)
// wraps the fp32 reference ops and supports DT_F32 only; the CUDA table
// (kernels/cuda/backend.cu, cuda_backend()) holds the launchers of
// kernels/cuda/*.h and supports DT_F32 and DT_BF16. Modules in nn/ call ops
// only through a Backend, so one model code runs on both.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "cpu/ops.h"
#include "cpu/optim.h"
#include "tensor.h"

typedef struct CUstream_st *cudaStream_t;  // same typedef as the CUDA runtime's

#ifdef __cplusplus
extern "C" {
#endif

typedef struct Backend {
    const char *name;  // "cpu" or "cuda"
    Device device;
    // memory: alloc returns NULL + a2f_set_error on failure
    void *(*alloc)(size_t bytes);
    void (*free)(void *p);
    int (*upload)(void *dst, const void *src, size_t bytes);    // host -> backend memory
    int (*download)(void *dst, const void *src, size_t bytes);  // backend memory -> host
    int (*memset)(void *dst, int byte, size_t bytes);
    int (*sync)(void);
    cudaStream_t (*default_stream)(void);  // NULL on the CPU
    const char *(*status_str)(int status);
    // philox fills of float buffers (kernels/rng.h streams)
    int (*philox_fill_uniform)(float *x, size_t n, uint64_t seed, uint64_t offset, cudaStream_t s);
    int (*philox_fill_normal)(float *x, size_t n, uint64_t seed, uint64_t offset, cudaStream_t s);
    // gemm
    int (*gemm)(DType dt, int ta, int tb, int M, int N, int K, float alpha, const void *A, int lda, const void *B,
                int ldb, float beta, void *C, int ldc, cudaStream_t s);
    int (*gemm_batched)(DType dt, int ta, int tb, int M, int N, int K, float alpha, const void *A, int lda, long sA,
                        const void *B, int ldb, long sB, float beta, void *C, int ldc, long sC, int batch,
                        cudaStream_t s);
    int (*gemm_f32out)(DType dt, int ta, int tb, int M, int N, int K, float alpha, const void *A, int lda,
                       const void *B, int ldb, float beta, float *C, int ldc, cudaStream_t s);
    int (*gemm_batched_f32out)(DType dt, int ta, int tb, int M, int N, int K, float alpha, const void *A, int lda,
                               long sA, const void *B, int ldb, long sB, float beta, float *C, int ldc, long sC,
                               int batch, cudaStream_t s);
    int (*gemm_bias)(DType dt, int ta, int tb, int M, int N, int K, const void *A, int lda, const void *B, int ldb,
                     const void *bias, void *C, int ldc, cudaStream_t s);
    // linear
    int (*linear_fwd)(DType dt, void *y, const void *x, const void *W, const void *b, int M, int K, int N,
                      cudaStream_t s);
    int (*linear_bwd)(DType dt, void *dx, float *dW, float *db, const void *dy, const void *x, const void *W, int M,
                      int K, int N, cudaStream_t s);
    int (*bias_grad)(DType dt, float *db, const void *dy, long M, int N, cudaStream_t s);
    // conv2d
    int (*conv2d_fwd)(DType dt, void *y, const void *x, const void *w, const void *bias, const Conv2dShape *sh,
                      cudaStream_t s);
    int (*conv2d_bwd)(DType dt, void *dx, float *dw, float *dbias, const void *dy, const void *x, const void *w,
                      const Conv2dShape *sh, cudaStream_t s);
    // norm
    int (*groupnorm_fwd)(DType dt, void *y, float *mean, float *rstd, const void *x, const void *gamma,
                         const void *beta, int B, int HW, int C, int G, float eps, int silu, cudaStream_t s);
    int (*groupnorm_bwd)(DType dt, void *dx, float *dgamma, float *dbeta, const void *dy, const void *x,
                         const float *mean, const float *rstd, const void *gamma, const void *beta, int B, int HW,
                         int C, int G, int silu, cudaStream_t s);
    int (*layernorm_fwd)(DType dt, void *y, float *mean, float *rstd, const void *x, const void *gamma,
                         const void *beta, int N, int C, float eps, cudaStream_t s);
    int (*layernorm_bwd)(DType dt, void *dx, float *dgamma, float *dbeta, const void *dy, const void *x,
                         const float *mean, const float *rstd, const void *gamma, int N, int C, cudaStream_t s);
    int (*batchnorm_fwd_infer)(DType dt, void *y, const void *x, const void *gamma, const void *beta,
                               const float *run_mean, const float *run_var, int N, int C, float eps, cudaStream_t s);
    int (*batchnorm_fwd_train)(DType dt, void *y, float *mean, float *rstd, float *run_mean, float *run_var,
                               const void *x, const void *gamma, const void *beta, int N, int C, float eps,
                               float momentum, cudaStream_t s);
    int (*batchnorm_bwd_train)(DType dt, void *dx, float *dgamma, float *dbeta, const void *dy, const void *x,
                               const float *mean, const float *rstd, const void *gamma, int N, int C, cudaStream_t s);
    int (*batchnorm_bwd_infer)(DType dt, void *dx, float *dgamma, float *dbeta, const void *dy, const void *x,
                               const void *gamma, const float *run_mean, const float *run_var, int N, int C, float eps,
                               cudaStream_t s);
    // activation
    int (*relu_fwd)(DType dt, void *y, const void *x, size_t n, cudaStream_t s);
    int (*relu_bwd)(DType dt, void *dx, const void *dy, const void *x, size_t n, cudaStream_t s);
    int (*sigmoid_fwd)(DType dt, void *y, const void *x, size_t n, cudaStream_t s);
    int (*sigmoid_bwd)(DType dt, void *dx, const void *dy, const void *x, size_t n, cudaStream_t s);
    int (*silu_fwd)(DType dt, void *y, const void *x, size_t n, cudaStream_t s);
    int (*silu_bwd)(DType dt, void *dx, const void *dy, const void *x, size_t n, cudaStream_t s);
    int (*gelu_fwd)(DType dt, void *y, const void *x, size_t n, cudaStream_t s);
    int (*gelu_bwd)(DType dt, void *dx, const void *dy, const void *x, size_t n, cudaStream_t s);
    int (*quickgelu_fwd)(DType dt, void *y, const void *x, size_t n, cudaStream_t s);
    int (*quickgelu_bwd)(DType dt, void *dx, const void *dy, const void *x, size_t n, cudaStream_t s);
    int (*prelu_fwd)(DType dt, void *y, const void *x, const void *slope, size_t N, int C, cudaStream_t s);
    int (*prelu_bwd)(DType dt, void *dx, float *dslope, const void *dy, const void *x, const void *slope, size_t N,
                     int C, cudaStream_t s);
    int (*geglu_fwd)(DType dt, void *y, const void *x, size_t N, int D, cudaStream_t s);
    int (*geglu_bwd)(DType dt, void *dx, const void *dy, const void *x, size_t N, int D, cudaStream_t s);
    int (*softmax_fwd)(DType dt, void *y, const void *x, size_t N, int C, cudaStream_t s);
    int (*softmax_bwd)(DType dt, void *dx, const void *dy, const void *y, size_t N, int C, cudaStream_t s);
    // pool
    int (*maxpool2d_fwd)(DType dt, void *y, int32_t *argmax, const void *x, const Pool2dShape *shape, cudaStream_t s);
    int (*maxpool2d_bwd)(DType dt, void *dx, const void *dy, const int32_t *argmax, const Pool2dShape *shape,
                         cudaStream_t s);
    int (*avgpool2d_fwd)(DType dt, void *y, const void *x, const Pool2dShape *shape, cudaStream_t s);
    int (*avgpool2d_bwd)(DType dt, void *dx, const void *dy, const Pool2dShape *shape, cudaStream_t s);
    int (*global_avgpool_fwd)(DType dt, void *y, const void *x, int B, int HW, int C, cudaStream_t s);
    int (*global_avgpool_bwd)(DType dt, void *dx, const void *dy, int B, int HW, int C, cudaStream_t s);
    int (*channel_scale_fwd)(DType dt, void *y, const void *x, const void *sc, int B, int HW, int C, cudaStream_t s);
    int (*channel_scale_bwd)(DType dt, void *dx, void *dsc, const void *dy, const void *x, const void *sc, int B,
                             int HW, int C, cudaStream_t s);
    // attention
    int (*attention_fwd)(DType dt, void *o, float *lse, const void *q, const void *k, const void *v, const AttnShape *s,
                         cudaStream_t st);
    int (*attention_bwd)(DType dt, void *dq, void *dk, void *dv, const void *dout, const void *q, const void *k,
                         const void *v, const void *o, const float *lse, const AttnShape *s, cudaStream_t st);
    // shape
    int (*upsample2x_fwd)(DType dt, void *y, const void *x, int B, int H, int W, int C, cudaStream_t s);
    int (*upsample2x_bwd)(DType dt, void *dx, const void *dy, int B, int H, int W, int C, cudaStream_t s);
    int (*concat_fwd)(DType dt, void *y, const void *a, const void *b, size_t P, int Ca, int Cb, cudaStream_t s);
    int (*concat_bwd)(DType dt, void *da, void *db, const void *dy, size_t P, int Ca, int Cb, cudaStream_t s);
    int (*add_fwd)(DType dt, void *y, const void *a, const void *b, size_t n, cudaStream_t s);
    int (*add_bwd)(DType dt, void *da, void *db, const void *dy, size_t n, cudaStream_t s);
    // embed
    int (*embedding_fwd)(DType dt, void *y, const int32_t *ids, const void *table, int N, int V, int D, cudaStream_t s);
    int (*embedding_bwd)(DType dt, float *dtable, const void *dy, const int32_t *ids, int N, int V, int D,
                         cudaStream_t s);
    int (*timestep_embedding_fwd)(DType dt, void *y, const float *t, int B, int dim, int flip_sin_to_cos,
                                  float freq_shift, float max_period, cudaStream_t s);
    int (*timestep_embedding_bwd)(DType dt, float *dt_grad, const void *dy, const float *t, int B, int dim,
                                  int flip_sin_to_cos, float freq_shift, float max_period, cudaStream_t s);
    // loss
    int (*dropout_fwd)(DType dt, void *y, const void *x, size_t n, float p, uint64_t seed, uint64_t offset,
                       cudaStream_t s);
    int (*dropout_bwd)(DType dt, void *dx, const void *dy, size_t n, float p, uint64_t seed, uint64_t offset,
                       cudaStream_t s);
    int (*mse_loss_fwd)(DType dt, float *loss, const void *a, const void *b, size_t n, cudaStream_t s);
    int (*mse_loss_bwd)(DType dt, void *da, void *db, float dloss, const void *a, const void *b, size_t n,
                        cudaStream_t s);
    int (*l2norm_fwd)(DType dt, void *y, const void *x, int N, int D, float eps, cudaStream_t s);
    int (*l2norm_bwd)(DType dt, void *dx, const void *dy, const void *x, int N, int D, float eps, cudaStream_t s);
    int (*cosine_sim_fwd)(DType dt, float *y, const void *a, const void *b, int N, int D, float eps, cudaStream_t s);
    int (*cosine_sim_bwd)(DType dt, void *da, void *db, const float *dy, const void *a, const void *b, int N, int D,
                          float eps, cudaStream_t s);
    // adamw
    int (*adamw_step)(DType dt, void *work, float *master, float *m, float *v, const float *grad, size_t n,
                      AdamWHyper hyper, int64_t step, float grad_scale, const float *d_grad_scale, uint64_t seed,
                      uint64_t offset, cudaStream_t s);
    int (*grad_norm)(float *norm, float *clip_coef, const float *grad, size_t n, float max_norm, cudaStream_t s);
} Backend;

// The CPU table (always available).
const Backend *cpu_backend(void);
// Status codes of the CPU table.
enum { CPU_ST_OK = 0, CPU_ST_DTYPE = 1, CPU_ST_UNSUPPORTED = 2 };

#ifdef __cplusplus
}
#endif
