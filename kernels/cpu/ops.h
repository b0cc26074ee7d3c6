// ops.h: CPU reference ops, forward and backward (fp32, NHWC).
//
// Conventions for every op here:
//  - Activations are NHWC / row-major; "[B, H, W, C]" comments give shapes.
//  - Backward functions ADD into every gradient buffer they are given (+=),
//    so gradients of shared inputs and residual branches accumulate; callers
//    zero them first. A NULL gradient pointer means "not needed".
//  - Reductions accumulate in double where fp32 would lose accuracy.
//  - Work is split over threads with OpenMP where it pays.
// One file per op family implements these, named after the section.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---------------------------------------------------------------- gemm.c
// Row-major C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C.
// op(A) = A (ta=0, A is [M,K] with leading dim lda) or A^T (ta=1, A is [K,M]).
// op(B) = B (tb=0, B is [K,N]) or B^T (tb=1, B is [N,K]).
// Cache-blocked, vectorised, OpenMP over output tiles. beta = 0 ignores C's contents.
void gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
          float beta, float *C, int ldc);
// Batched: batch b uses A + b*sA, B + b*sB, C + b*sC (strides in elements).
void gemm_batched(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, long sA,
                  const float *B, int ldb, long sB, float beta, float *C, int ldc, long sC, int batch);

// ---------------------------------------------------------------- linear.c
// y[M,N] = x[M,K] @ W^T + b, W is [N,K] (PyTorch Linear layout), b [N] or NULL.
void linear_fwd(float *y, const float *x, const float *W, const float *b, int M, int K, int N);
// dx[M,K] += dy @ W; dW[N,K] += dy^T @ x; db[N] += sum_rows dy.
void linear_bwd(float *dx, float *dW, float *db, const float *dy, const float *x, const float *W, int M, int K,
                int N);

// ---------------------------------------------------------------- conv2d.c
// NHWC convolution. Weight layout [Cout, KH, KW, Cin] (converted from
// PyTorch's [Cout, Cin, KH, KW] on load), so the op is a GEMM with
// M = B*Ho*Wo, N = Cout, K = KH*KW*Cin. Padding may be asymmetric
// (the VAE encoder pads right/bottom only). Ho = (H + pt + pb - KH) / sh + 1.
typedef struct {
    int B, H, W, Cin, Cout, KH, KW;
    int sh, sw;              // stride
    int pt, pb, pl, pr;      // padding top, bottom, left, right
} Conv2dShape;
int conv2d_out_h(const Conv2dShape *s);
int conv2d_out_w(const Conv2dShape *s);
// y [B,Ho,Wo,Cout] = conv(x [B,H,W,Cin], w) + bias [Cout] (bias may be NULL).
void conv2d_fwd(float *y, const float *x, const float *w, const float *bias, const Conv2dShape *s);
// dx [B,H,W,Cin] +=, dw [Cout,KH,KW,Cin] +=, dbias [Cout] += (each may be NULL).
void conv2d_bwd(float *dx, float *dw, float *dbias, const float *dy, const float *x, const float *w,
                const Conv2dShape *s);

// ---------------------------------------------------------------- norm.c
// GroupNorm over x [B, HW, C] with G groups (C % G == 0): statistics per
// (b, g) over HW * C/G values; y = (x - mean) * rstd * gamma + beta, then
// SiLU when silu != 0. mean, rstd [B, G] are saved for backward.
void groupnorm_fwd(float *y, float *mean, float *rstd, const float *x, const float *gamma, const float *beta,
                   int B, int HW, int C, int G, float eps, int silu);
// dx, dgamma [C], dbeta [C] +=. Recomputes the pre-SiLU value from x, mean, rstd.
void groupnorm_bwd(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x, const float *mean,
                   const float *rstd, const float *gamma, const float *beta, int B, int HW, int C, int G, int silu);
// LayerNorm over the last dim of x [N, C]; mean, rstd [N] saved.
void layernorm_fwd(float *y, float *mean, float *rstd, const float *x, const float *gamma, const float *beta, int N,
                   int C, float eps);
void layernorm_bwd(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x, const float *mean,
                   const float *rstd, const float *gamma, int N, int C);
// BatchNorm2d on x [N, C] (N = B*H*W rows, NHWC). Inference: uses running
// stats. Training: batch statistics (biased variance for normalising),
// saves mean, rstd [C], and updates running stats with momentum using the
// unbiased variance (PyTorch semantics). gamma/beta may be NULL (affine=False).
void batchnorm_fwd_infer(float *y, const float *x, const float *gamma, const float *beta, const float *run_mean,
                         const float *run_var, int N, int C, float eps);
void batchnorm_fwd_train(float *y, float *mean, float *rstd, float *run_mean, float *run_var, const float *x,
                         const float *gamma, const float *beta, int N, int C, float eps, float momentum);
void batchnorm_bwd_train(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                         const float *mean, const float *rstd, const float *gamma, int N, int C);
// Inference-mode backward (stats are constants): dx = dy * gamma * rsqrt(var + eps).
void batchnorm_bwd_infer(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                         const float *gamma, const float *run_mean, const float *run_var, int N, int C, float eps);

// ---------------------------------------------------------------- activation.c
// Elementwise over n values; backward uses the forward input x.
void relu_fwd(float *y, const float *x, size_t n);
void relu_bwd(float *dx, const float *dy, const float *x, size_t n);
// PReLU with one slope per channel; x [N, C] (NHWC rows). dslope [C] +=.
void prelu_fwd(float *y, const float *x, const float *slope, size_t N, int C);
void prelu_bwd(float *dx, float *dslope, const float *dy, const float *x, const float *slope, size_t N, int C);
void sigmoid_fwd(float *y, const float *x, size_t n);
void sigmoid_bwd(float *dx, const float *dy, const float *x, size_t n);
void silu_fwd(float *y, const float *x, size_t n);
void silu_bwd(float *dx, const float *dy, const float *x, size_t n);
// Exact GELU: 0.5 x (1 + erf(x / sqrt 2)).
void gelu_fwd(float *y, const float *x, size_t n);
void gelu_bwd(float *dx, const float *dy, const float *x, size_t n);
// quick-GELU (CLIP): x * sigmoid(1.702 x).
void quickgelu_fwd(float *y, const float *x, size_t n);
void quickgelu_bwd(float *dx, const float *dy, const float *x, size_t n);
// GEGLU (diffusers): x [N, 2D] = [hidden | gate]; y [N, D] = hidden * gelu(gate).
void geglu_fwd(float *y, const float *x, size_t N, int D);
void geglu_bwd(float *dx, const float *dy, const float *x, size_t N, int D);
// Softmax over the last dim of x [N, C] (max-subtracted). Backward uses y.
void softmax_fwd(float *y, const float *x, size_t N, int C);
void softmax_bwd(float *dx, const float *dy, const float *y, size_t N, int C);

// ---------------------------------------------------------------- pool.c
// Max / average pooling on x [B, H, W, C] (NHWC). ceil_mode as in PyTorch
// (the last window must start inside the input or left padding). Average
// divides by the window clipped to the padded input when count_include_pad,
// else by the number of real input elements.
typedef struct {
    int B, H, W, C, KH, KW, sh, sw, ph, pw, ceil_mode, count_include_pad;
} Pool2dShape;
int pool2d_out_h(const Pool2dShape *s);
int pool2d_out_w(const Pool2dShape *s);
// argmax [B,Ho,Wo,C] (int32 index h*W+w in the input plane) saved for backward.
void maxpool2d_fwd(float *y, int32_t *argmax, const float *x, const Pool2dShape *s);
void maxpool2d_bwd(float *dx, const float *dy, const int32_t *argmax, const Pool2dShape *s);
void avgpool2d_fwd(float *y, const float *x, const Pool2dShape *s);
void avgpool2d_bwd(float *dx, const float *dy, const Pool2dShape *s);
// Global average pool: x [B, HW, C] -> y [B, C].
void global_avgpool_fwd(float *y, const float *x, int B, int HW, int C);
void global_avgpool_bwd(float *dx, const float *dy, int B, int HW, int C);
// Per-channel scaling (squeeze-excitation): y[b,p,c] = x[b,p,c] * s[b,c].
void channel_scale_fwd(float *y, const float *x, const float *s, int B, int HW, int C);
void channel_scale_bwd(float *dx, float *ds, const float *dy, const float *x, const float *s, int B, int HW, int C);

// ---------------------------------------------------------------- attention.c
// Multi-head scaled-dot-product attention on strided views, so Q, K, V can be
// read straight out of projection outputs (e.g. one fused [B, N, 3*C] qkv).
// q: element (b, i, h, d) at q[b*q_sb + i*q_st + h*D + d]; same for k, v
// (Nk keys) and o [B, Nq, H*D] (o_sb, o_st). Scale = 1/sqrt(D). causal: key j
// masked for j > i. lse [B, H, Nq] (log-sum-exp of scaled scores) is saved.
typedef struct {
    int B, H, Nq, Nk, D, causal;
    long q_sb, q_st, k_sb, k_st, v_sb, v_st, o_sb, o_st;  // strides in elements
} AttnShape;
void attention_fwd(float *o, float *lse, const float *q, const float *k, const float *v, const AttnShape *s);
// dq, dk, dv use the strides of q, k, v. Recomputes probabilities from lse.
void attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                   const float *v, const float *o, const float *lse, const AttnShape *s);

// ---------------------------------------------------------------- shape.c
// Nearest 2x upsample: x [B, H, W, C] -> y [B, 2H, 2W, C].
void upsample2x_fwd(float *y, const float *x, int B, int H, int W, int C);
void upsample2x_bwd(float *dx, const float *dy, int B, int H, int W, int C);
// Channel concat: a [P, Ca], b [P, Cb] -> y [P, Ca+Cb] (P = B*H*W).
void concat_fwd(float *y, const float *a, const float *b, size_t P, int Ca, int Cb);
void concat_bwd(float *da, float *db, const float *dy, size_t P, int Ca, int Cb);
// Residual add y = a + b over n values; backward adds dy into da and db.
void add_fwd(float *y, const float *a, const float *b, size_t n);
void add_bwd(float *da, float *db, const float *dy, size_t n);

// ---------------------------------------------------------------- embed.c
// Lookup: ids [N] (int32, checked 0 <= id < V) -> y [N, D] from table [V, D].
void embedding_fwd(float *y, const int32_t *ids, const float *table, int N, int V, int D);
void embedding_bwd(float *dtable, const float *dy, const int32_t *ids, int N, int V, int D);
// diffusers get_timestep_embedding: t [B] -> y [B, dim]; half = dim/2,
// freq_k = exp(-ln(max_period) * k / (half - freq_shift)); [sin | cos], or
// [cos | sin] with flip_sin_to_cos; odd dim gets a zero last column.
void timestep_embedding_fwd(float *y, const float *t, int B, int dim, int flip_sin_to_cos, float freq_shift,
                            float max_period);
void timestep_embedding_bwd(float *dt, const float *dy, const float *t, int B, int dim, int flip_sin_to_cos,
                            float freq_shift, float max_period);

// ---------------------------------------------------------------- loss.c
// Seeded dropout: element i is kept when philox_uniform(seed, offset, i) >= p
// and scaled by 1/(1-p); the mask is recomputed in backward, never stored.
void dropout_fwd(float *y, const float *x, size_t n, float p, uint64_t seed, uint64_t offset);
void dropout_bwd(float *dx, const float *dy, size_t n, float p, uint64_t seed, uint64_t offset);
// Mean squared error over n values: returns mean((a - b)^2).
float mse_loss_fwd(const float *a, const float *b, size_t n);
// da += dloss * 2 (a - b) / n; db += the negative.
void mse_loss_bwd(float *da, float *db, float dloss, const float *a, const float *b, size_t n);
// L2-normalise rows of x [N, D]: y = x / max(||x||, eps) (F.normalize).
void l2norm_fwd(float *y, const float *x, int N, int D, float eps);
void l2norm_bwd(float *dx, const float *dy, const float *x, int N, int D, float eps);
// Cosine similarity of rows: y [N] = a.b / (max(||a||, eps) max(||b||, eps))
// (current PyTorch cosine_similarity clamps each norm; its backward treats
// the clamp as identity, and so does cosine_sim_bwd).
void cosine_sim_fwd(float *y, const float *a, const float *b, int N, int D, float eps);
void cosine_sim_bwd(float *da, float *db, const float *dy, const float *a, const float *b, int N, int D,
                    float eps);

#ifdef __cplusplus
}
#endif
