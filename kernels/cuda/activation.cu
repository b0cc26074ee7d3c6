// activation.cu: CUDA activations, forward and backward (see activation.h;
// the CPU reference is kernels/cpu/activation.c and these use the same formulas).
//
// Elementwise ops are grid-stride loops over 16-byte packs (4 floats or 8
// bf16) when every pointer is 16-byte aligned, with a scalar loop for the
// tail (and for unaligned pointers). PReLU's dslope is a two-pass reduction:
// blocks of 32 channels x 8 row-threads write per-row-chunk partials into
// dev_workspace(), a second kernel sums them in chunk order, so the result
// only depends on (N, C). Softmax keeps a row in registers: one warp per row
// for C <= 1024, one 256-thread block per row for C <= 4096, and a three-pass
// block loop over global memory above that. Reductions are warp xor-butterflies
// plus a fixed-order sum over warps: deterministic.
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "activation.h"
#include "common.cuh"
#include "device.h"

namespace {

// ---------------------------------------------------------------- scalar math (as activation.c)

__device__ __forceinline__ float phi_cdf(float x) { return 0.5f * erfcf(-x * 0.70710678118654752f); }
__device__ __forceinline__ float phi_pdf(float x) { return 0.39894228040143268f * expf(-0.5f * x * x); }
__device__ __forceinline__ float gelu1(float x) { return x * phi_cdf(x); }
__device__ __forceinline__ float gelu1_grad(float x) { return phi_cdf(x) + x * phi_pdf(x); }

#define QUICKGELU_K 1.702f

// fwd(x) = f(x); bwd(x, g) = the increment of dx for upstream gradient g.
struct OpRelu {
    static __device__ __forceinline__ float fwd(float x) { return x > 0.0f ? x : 0.0f; }
    static __device__ __forceinline__ float bwd(float x, float g) { return x > 0.0f ? g : 0.0f; }
};
struct OpSigmoid {
    static __device__ __forceinline__ float fwd(float x) { return sigm(x); }
    static __device__ __forceinline__ float bwd(float x, float g) {
        float s = sigm(x);
        return g * s * (1.0f - s);
    }
};
struct OpSilu {
    static __device__ __forceinline__ float fwd(float x) { return x * sigm(x); }
    static __device__ __forceinline__ float bwd(float x, float g) {
        float s = sigm(x);
        return g * s * (1.0f + x * (1.0f - s));
    }
};
struct OpGelu {
    static __device__ __forceinline__ float fwd(float x) { return gelu1(x); }
    static __device__ __forceinline__ float bwd(float x, float g) { return g * gelu1_grad(x); }
};
struct OpQuickGelu {
    static __device__ __forceinline__ float fwd(float x) { return x * sigm(QUICKGELU_K * x); }
    static __device__ __forceinline__ float bwd(float x, float g) {
        float s = sigm(QUICKGELU_K * x);
        return g * (s + QUICKGELU_K * x * s * (1.0f - s));
    }
};

// ---------------------------------------------------------------- unary elementwise

// y [n] = Op::fwd(x [n]); y may alias x. vec: all pointers 16-byte aligned.
template <typename T, typename Op> __global__ void unary_fwd_kernel(T *y, const T *x, size_t n, int vec) {
    constexpr int V = Pack<T>::N;
    const size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x, stride = (size_t)gridDim.x * blockDim.x;
    const size_t nv = vec ? n / V : 0;
    for (size_t i = tid; i < nv; i += stride) {
        float f[V];
        Pack<T>::load(x + i * V, f);
        for (int k = 0; k < V; k++) f[k] = Op::fwd(f[k]);
        Pack<T>::store(y + i * V, f);
    }
    for (size_t i = nv * V + tid; i < n; i += stride) y[i] = from_f32<T>(Op::fwd(to_f32(x[i])));
}

// dx [n] += Op::bwd(x [n], dy [n]).
template <typename T, typename Op>
__global__ void unary_bwd_kernel(T *dx, const T *dy, const T *x, size_t n, int vec) {
    constexpr int V = Pack<T>::N;
    const size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x, stride = (size_t)gridDim.x * blockDim.x;
    const size_t nv = vec ? n / V : 0;
    for (size_t i = tid; i < nv; i += stride) {
        float fx[V], fg[V], fd[V];
        Pack<T>::load(x + i * V, fx);
        Pack<T>::load(dy + i * V, fg);
        Pack<T>::load(dx + i * V, fd);
        for (int k = 0; k < V; k++) fd[k] += Op::bwd(fx[k], fg[k]);
        Pack<T>::store(dx + i * V, fd);
    }
    for (size_t i = nv * V + tid; i < n; i += stride)
        dx[i] = from_f32<T>(to_f32(dx[i]) + Op::bwd(to_f32(x[i]), to_f32(dy[i])));
}

// Threads for n items done V at a time plus a scalar tail.
template <typename T> unsigned int pack_grid(size_t n, int vec, int threads) {
    const size_t V = Pack<T>::N;
    size_t items = vec ? n / V : n;
    if (vec && n % V > items) items = n % V;
    return grid_for(items, threads);
}

template <typename T, typename Op> int unary_fwd(void *y, const void *x, size_t n, cudaStream_t s) {
    if (n == 0) return 0;
    const int vec = al16(y) && al16(x);
    unary_fwd_kernel<T, Op><<<pack_grid<T>(n, vec, 256), 256, 0, s>>>((T *)y, (const T *)x, n, vec);
    return (int)cudaGetLastError();
}

template <typename T, typename Op> int unary_bwd(void *dx, const void *dy, const void *x, size_t n, cudaStream_t s) {
    if (n == 0 || !dx) return 0;
    const int vec = al16(dx) && al16(dy) && al16(x);
    unary_bwd_kernel<T, Op><<<pack_grid<T>(n, vec, 256), 256, 0, s>>>((T *)dx, (const T *)dy, (const T *)x, n, vec);
    return (int)cudaGetLastError();
}

// ---------------------------------------------------------------- PReLU

// y, x [N*C = n], slope [C]. vec: aligned pointers and C % V == 0 (a pack never crosses a row).
// I: index type (uint32_t when n fits: 64-bit divisions are slow on the GPU).
template <typename T, typename I>
__global__ void prelu_fwd_kernel(T *y, const T *x, const T *slope, size_t n, int C, int vec) {
    constexpr int V = Pack<T>::N;
    const size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x, stride = (size_t)gridDim.x * blockDim.x;
    const size_t nv = vec ? n / V : 0;
    for (size_t i = tid; i < nv; i += stride) {
        const int c0 = (int)((I)(i * V) % (I)C);
        float f[V];
        Pack<T>::load(x + i * V, f);
        for (int k = 0; k < V; k++) f[k] = f[k] > 0.0f ? f[k] : to_f32(slope[c0 + k]) * f[k];
        Pack<T>::store(y + i * V, f);
    }
    for (size_t i = nv * V + tid; i < n; i += stride) {
        const float v = to_f32(x[i]);
        y[i] = from_f32<T>(v > 0.0f ? v : to_f32(slope[(I)i % (I)C]) * v);
    }
}

// Block (32, 8): 32 channels x 8 row-threads over one chunk of rows (blockIdx.y).
// dx [N, C] += dy * (x > 0 ? 1 : slope); part [nchunk, C] = chunk sums of dy * x over x <= 0.
template <typename T>
__global__ void prelu_bwd_kernel(T *dx, float *part, const T *dy, const T *x, const T *slope, size_t N, int C,
                                 size_t rows_per_chunk) {
    __shared__ float sh[8][33];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int c = blockIdx.x * 32 + tx;
    const size_t r0 = (size_t)blockIdx.y * rows_per_chunk;
    const size_t r1 = r0 + rows_per_chunk < N ? r0 + rows_per_chunk : N;
    float acc = 0.0f;
    if (c < C) {
        const float sl = to_f32(slope[c]);
        for (size_t r = r0 + ty; r < r1; r += 8) {
            const size_t i = r * (size_t)C + c;
            const float xv = to_f32(x[i]), g = to_f32(dy[i]);
            if (dx) dx[i] = from_f32<T>(to_f32(dx[i]) + (xv > 0.0f ? g : sl * g));
            if (xv <= 0.0f) acc += g * xv;
        }
    }
    if (part) {  // uniform over the block
        sh[ty][tx] = acc;
        __syncthreads();
        if (ty == 0 && c < C) {
            float t = 0.0f;
            for (int k = 0; k < 8; k++) t += sh[k][tx];
            part[(size_t)blockIdx.y * C + c] = t;
        }
    }
}

// dslope [C] += sum over chunks of part [nchunk, C], in chunk order.
__global__ void prelu_dslope_kernel(float *dslope, const float *part, int nchunk, int C) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float t = 0.0f;
    for (int k = 0; k < nchunk; k++) t += part[(size_t)k * C + c];
    dslope[c] += t;
}

template <typename T> int prelu_fwd(void *y, const void *x, const void *slope, size_t N, int C, cudaStream_t s) {
    if (C <= 0) return (int)cudaErrorInvalidValue;
    const size_t n = N * (size_t)C;
    if (n == 0) return 0;
    const int vec = al16(y) && al16(x) && C % Pack<T>::N == 0;
    const unsigned g = pack_grid<T>(n, vec, 256);
    if (n <= 0xffffffffu)
        prelu_fwd_kernel<T, uint32_t><<<g, 256, 0, s>>>((T *)y, (const T *)x, (const T *)slope, n, C, vec);
    else
        prelu_fwd_kernel<T, size_t><<<g, 256, 0, s>>>((T *)y, (const T *)x, (const T *)slope, n, C, vec);
    return (int)cudaGetLastError();
}

template <typename T>
int prelu_bwd(void *dx, float *dslope, const void *dy, const void *x, const void *slope, size_t N, int C,
              cudaStream_t s) {
    if (C <= 0) return (int)cudaErrorInvalidValue;
    if (N == 0 || (!dx && !dslope)) return 0;
    // Chunks of rows so that about 4 blocks per SM of a 132-SM part run; the
    // split depends only on (N, C), which makes dslope deterministic.
    const size_t cblocks = ((size_t)C + 31) / 32;
    size_t nchunk = (528 + cblocks - 1) / cblocks;
    const size_t max_chunks = (N + 31) / 32;  // at least 32 rows (4 per row-thread) per chunk
    if (nchunk > max_chunks) nchunk = max_chunks;
    if (nchunk > 65535) nchunk = 65535;
    if (nchunk < 1) nchunk = 1;
    const size_t rows = (N + nchunk - 1) / nchunk;
    nchunk = (N + rows - 1) / rows;
    float *part = nullptr;
    if (dslope) {
        part = (float *)dev_workspace(nchunk * (size_t)C * sizeof(float));
        if (!part) return (int)cudaErrorMemoryAllocation;
    }
    dim3 grid((unsigned)cblocks, (unsigned)nchunk), block(32, 8);
    prelu_bwd_kernel<T><<<grid, block, 0, s>>>((T *)dx, part, (const T *)dy, (const T *)x, (const T *)slope, N, C,
                                               rows);
    if (dslope) prelu_dslope_kernel<<<(C + 255) / 256, 256, 0, s>>>(dslope, part, (int)nchunk, C);
    return (int)cudaGetLastError();
}

// ---------------------------------------------------------------- GEGLU

// x [N, 2D] -> y [N, D] over n = N*D outputs. vec: aligned and D % V == 0.
template <typename T, typename I> __global__ void geglu_fwd_kernel(T *y, const T *x, size_t n, int D, int vec) {
    constexpr int V = Pack<T>::N;
    const size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x, stride = (size_t)gridDim.x * blockDim.x;
    const size_t nv = vec ? n / V : 0;
    for (size_t i = tid; i < nv; i += stride) {
        const I e = (I)(i * V), r = e / (I)D, d = e % (I)D;
        const T *h = x + (size_t)r * 2 * D + d;
        float fh[V], fg[V];
        Pack<T>::load(h, fh);
        Pack<T>::load(h + D, fg);
        for (int k = 0; k < V; k++) fh[k] = fh[k] * gelu1(fg[k]);
        Pack<T>::store(y + e, fh);
    }
    for (size_t i = nv * V + tid; i < n; i += stride) {
        const I r = (I)i / (I)D, d = (I)i % (I)D;
        const T *h = x + (size_t)r * 2 * D + d;
        y[i] = from_f32<T>(to_f32(h[0]) * gelu1(to_f32(h[D])));
    }
}

// dx [N, 2D] += (dy * gelu(gate), dy * hidden * gelu'(gate)); dy [N, D].
template <typename T, typename I>
__global__ void geglu_bwd_kernel(T *dx, const T *dy, const T *x, size_t n, int D, int vec) {
    constexpr int V = Pack<T>::N;
    const size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x, stride = (size_t)gridDim.x * blockDim.x;
    const size_t nv = vec ? n / V : 0;
    for (size_t i = tid; i < nv; i += stride) {
        const I e0 = (I)(i * V), r = e0 / (I)D, d = e0 % (I)D;
        const size_t e = e0, o = (size_t)r * 2 * D + d;
        float fh[V], fgt[V], fdy[V], fdh[V], fdg[V];
        Pack<T>::load(x + o, fh);
        Pack<T>::load(x + o + D, fgt);
        Pack<T>::load(dy + e, fdy);
        Pack<T>::load(dx + o, fdh);
        Pack<T>::load(dx + o + D, fdg);
        for (int k = 0; k < V; k++) {
            fdh[k] += fdy[k] * gelu1(fgt[k]);
            fdg[k] += fdy[k] * fh[k] * gelu1_grad(fgt[k]);
        }
        Pack<T>::store(dx + o, fdh);
        Pack<T>::store(dx + o + D, fdg);
    }
    for (size_t i = nv * V + tid; i < n; i += stride) {
        const I r = (I)i / (I)D, d = (I)i % (I)D;
        const size_t o = (size_t)r * 2 * D + d;
        const float h = to_f32(x[o]), g = to_f32(x[o + D]), gy = to_f32(dy[i]);
        dx[o] = from_f32<T>(to_f32(dx[o]) + gy * gelu1(g));
        dx[o + D] = from_f32<T>(to_f32(dx[o + D]) + gy * h * gelu1_grad(g));
    }
}

template <typename T> int geglu_fwd(void *y, const void *x, size_t N, int D, cudaStream_t s) {
    if (D <= 0) return (int)cudaErrorInvalidValue;
    const size_t n = N * (size_t)D;
    if (n == 0) return 0;
    const int vec = al16(y) && al16(x) && D % Pack<T>::N == 0;
    const unsigned g = pack_grid<T>(n, vec, 256);
    if (n <= 0xffffffffu) geglu_fwd_kernel<T, uint32_t><<<g, 256, 0, s>>>((T *)y, (const T *)x, n, D, vec);
    else geglu_fwd_kernel<T, size_t><<<g, 256, 0, s>>>((T *)y, (const T *)x, n, D, vec);
    return (int)cudaGetLastError();
}

template <typename T> int geglu_bwd(void *dx, const void *dy, const void *x, size_t N, int D, cudaStream_t s) {
    if (D <= 0) return (int)cudaErrorInvalidValue;
    const size_t n = N * (size_t)D;
    if (n == 0 || !dx) return 0;
    const int vec = al16(dx) && al16(dy) && al16(x) && D % Pack<T>::N == 0;
    const unsigned g = pack_grid<T>(n, vec, 256);
    if (n <= 0xffffffffu)
        geglu_bwd_kernel<T, uint32_t><<<g, 256, 0, s>>>((T *)dx, (const T *)dy, (const T *)x, n, D, vec);
    else
        geglu_bwd_kernel<T, size_t><<<g, 256, 0, s>>>((T *)dx, (const T *)dy, (const T *)x, n, D, vec);
    return (int)cudaGetLastError();
}

// ---------------------------------------------------------------- softmax

// One warp per row of x, y [N, C], C <= 32 * NPL; lane holds columns lane + 32 k.
template <typename T, int NPL> __global__ void softmax_fwd_warp(T *y, const T *x, size_t N, int C) {
    const size_t row = (size_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= N) return;  // whole warps leave together
    const T *xr = x + row * C;
    T *yr = y + row * C;
    float v[NPL];
    float mx = -INFINITY;
    for (int k = 0; k < NPL; k++) {
        const int c = lane + 32 * k;
        v[k] = c < C ? to_f32(xr[c]) : -INFINITY;
        mx = fmaxf(mx, v[k]);
    }
    mx = warp_max(mx);
    float sum = 0.0f;
    for (int k = 0; k < NPL; k++) {
        const int c = lane + 32 * k;
        v[k] = c < C ? expf(v[k] - mx) : 0.0f;
        sum += v[k];
    }
    const float inv = 1.0f / warp_sum(sum);
    for (int k = 0; k < NPL; k++) {
        const int c = lane + 32 * k;
        if (c < C) yr[c] = from_f32<T>(v[k] * inv);
    }
}

// dx [N, C] += y * (dy - sum(dy * y)), one warp per row.
template <typename T, int NPL> __global__ void softmax_bwd_warp(T *dx, const T *dy, const T *y, size_t N, int C) {
    const size_t row = (size_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= N) return;
    const size_t o = row * C;
    float vy[NPL], vg[NPL];
    float dot = 0.0f;
    for (int k = 0; k < NPL; k++) {
        const int c = lane + 32 * k;
        vy[k] = c < C ? to_f32(y[o + c]) : 0.0f;
        vg[k] = c < C ? to_f32(dy[o + c]) : 0.0f;
        dot += vg[k] * vy[k];
    }
    dot = warp_sum(dot);
    for (int k = 0; k < NPL; k++) {
        const int c = lane + 32 * k;
        if (c < C) dx[o + c] = from_f32<T>(to_f32(dx[o + c]) + vy[k] * (vg[k] - dot));
    }
}

// One block per row (blockIdx.x); NPL > 0: C <= blockDim.x * NPL, row in
// registers; NPL == 0: any C, three passes over global memory.
template <typename T, int NPL> __global__ void softmax_fwd_block(T *y, const T *x, int C) {
    __shared__ float sh[32];
    const T *xr = x + (size_t)blockIdx.x * C;
    T *yr = y + (size_t)blockIdx.x * C;
    const int nt = blockDim.x, t = threadIdx.x;
    float v[NPL > 0 ? NPL : 1];
    float mx = -INFINITY;
    if (NPL > 0) {
        for (int k = 0; k < NPL; k++) {
            const int c = t + nt * k;
            v[k] = c < C ? to_f32(xr[c]) : -INFINITY;
            mx = fmaxf(mx, v[k]);
        }
    } else {
        for (int c = t; c < C; c += nt) mx = fmaxf(mx, to_f32(xr[c]));
    }
    mx = block_max(mx, sh);
    float sum = 0.0f;
    if (NPL > 0) {
        for (int k = 0; k < NPL; k++) {
            const int c = t + nt * k;
            v[k] = c < C ? expf(v[k] - mx) : 0.0f;
            sum += v[k];
        }
    } else {
        for (int c = t; c < C; c += nt) sum += expf(to_f32(xr[c]) - mx);
    }
    const float inv = 1.0f / block_sum(sum, sh);
    if (NPL > 0) {
        for (int k = 0; k < NPL; k++) {
            const int c = t + nt * k;
            if (c < C) yr[c] = from_f32<T>(v[k] * inv);
        }
    } else {
        for (int c = t; c < C; c += nt) yr[c] = from_f32<T>(expf(to_f32(xr[c]) - mx) * inv);
    }
}

template <typename T, int NPL> __global__ void softmax_bwd_block(T *dx, const T *dy, const T *y, int C) {
    __shared__ float sh[32];
    const size_t o = (size_t)blockIdx.x * C;
    const int nt = blockDim.x, t = threadIdx.x;
    float vy[NPL > 0 ? NPL : 1], vg[NPL > 0 ? NPL : 1];
    float dot = 0.0f;
    if (NPL > 0) {
        for (int k = 0; k < NPL; k++) {
            const int c = t + nt * k;
            vy[k] = c < C ? to_f32(y[o + c]) : 0.0f;
            vg[k] = c < C ? to_f32(dy[o + c]) : 0.0f;
            dot += vg[k] * vy[k];
        }
    } else {
        for (int c = t; c < C; c += nt) dot += to_f32(dy[o + c]) * to_f32(y[o + c]);
    }
    dot = block_sum(dot, sh);
    if (NPL > 0) {
        for (int k = 0; k < NPL; k++) {
            const int c = t + nt * k;
            if (c < C) dx[o + c] = from_f32<T>(to_f32(dx[o + c]) + vy[k] * (vg[k] - dot));
        }
    } else {
        for (int c = t; c < C; c += nt) {
            const float yv = to_f32(y[o + c]);
            dx[o + c] = from_f32<T>(to_f32(dx[o + c]) + yv * (to_f32(dy[o + c]) - dot));
        }
    }
}

#define SOFTMAX_WARP_ROWS 4      // rows (warps) per 128-thread block
#define SOFTMAX_BLOCK_THREADS 256

// The smallest NPL that holds a row: warps up to C = 1024, blocks above.
template <typename T> int softmax_fwd(void *y, const void *x, size_t N, int C, cudaStream_t s) {
    if (C <= 0) return (int)cudaErrorInvalidValue;
    if (N == 0) return 0;
    T *Y = (T *)y;
    const T *X = (const T *)x;
    if (C <= 1024) {
        const unsigned g = (unsigned)((N + SOFTMAX_WARP_ROWS - 1) / SOFTMAX_WARP_ROWS);
        const int b = 32 * SOFTMAX_WARP_ROWS;
        if (C <= 32) softmax_fwd_warp<T, 1><<<g, b, 0, s>>>(Y, X, N, C);
        else if (C <= 64) softmax_fwd_warp<T, 2><<<g, b, 0, s>>>(Y, X, N, C);
        else if (C <= 128) softmax_fwd_warp<T, 4><<<g, b, 0, s>>>(Y, X, N, C);
        else if (C <= 256) softmax_fwd_warp<T, 8><<<g, b, 0, s>>>(Y, X, N, C);
        else if (C <= 512) softmax_fwd_warp<T, 16><<<g, b, 0, s>>>(Y, X, N, C);
        else softmax_fwd_warp<T, 32><<<g, b, 0, s>>>(Y, X, N, C);
    } else {
        if (N > 0x7fffffffu) return (int)cudaErrorInvalidValue;
        const unsigned g = (unsigned)N;
        const int b = SOFTMAX_BLOCK_THREADS;
        if (C <= 8 * SOFTMAX_BLOCK_THREADS) softmax_fwd_block<T, 8><<<g, b, 0, s>>>(Y, X, C);
        else if (C <= 16 * SOFTMAX_BLOCK_THREADS) softmax_fwd_block<T, 16><<<g, b, 0, s>>>(Y, X, C);
        else softmax_fwd_block<T, 0><<<g, b, 0, s>>>(Y, X, C);
    }
    return (int)cudaGetLastError();
}

template <typename T> int softmax_bwd(void *dx, const void *dy, const void *y, size_t N, int C, cudaStream_t s) {
    if (C <= 0) return (int)cudaErrorInvalidValue;
    if (N == 0 || !dx) return 0;
    T *DX = (T *)dx;
    const T *DY = (const T *)dy, *Y = (const T *)y;
    if (C <= 1024) {
        const unsigned g = (unsigned)((N + SOFTMAX_WARP_ROWS - 1) / SOFTMAX_WARP_ROWS);
        const int b = 32 * SOFTMAX_WARP_ROWS;
        if (C <= 32) softmax_bwd_warp<T, 1><<<g, b, 0, s>>>(DX, DY, Y, N, C);
        else if (C <= 64) softmax_bwd_warp<T, 2><<<g, b, 0, s>>>(DX, DY, Y, N, C);
        else if (C <= 128) softmax_bwd_warp<T, 4><<<g, b, 0, s>>>(DX, DY, Y, N, C);
        else if (C <= 256) softmax_bwd_warp<T, 8><<<g, b, 0, s>>>(DX, DY, Y, N, C);
        else if (C <= 512) softmax_bwd_warp<T, 16><<<g, b, 0, s>>>(DX, DY, Y, N, C);
        else softmax_bwd_warp<T, 32><<<g, b, 0, s>>>(DX, DY, Y, N, C);
    } else {
        if (N > 0x7fffffffu) return (int)cudaErrorInvalidValue;
        const unsigned g = (unsigned)N;
        const int b = SOFTMAX_BLOCK_THREADS;
        if (C <= 8 * SOFTMAX_BLOCK_THREADS) softmax_bwd_block<T, 8><<<g, b, 0, s>>>(DX, DY, Y, C);
        else if (C <= 16 * SOFTMAX_BLOCK_THREADS) softmax_bwd_block<T, 16><<<g, b, 0, s>>>(DX, DY, Y, C);
        else softmax_bwd_block<T, 0><<<g, b, 0, s>>>(DX, DY, Y, C);
    }
    return (int)cudaGetLastError();
}

}  // namespace

// ---------------------------------------------------------------- launchers

#define UNARY_LAUNCHERS(name, Op)                                                                          \
    extern "C" int cuda_##name##_fwd(DType dt, void *y, const void *x, size_t n, cudaStream_t s) {         \
        DISPATCH_T(dt, return unary_fwd<T, Op>(y, x, n, s));                                               \
        return 0;                                                                                          \
    }                                                                                                      \
    extern "C" int cuda_##name##_bwd(DType dt, void *dx, const void *dy, const void *x, size_t n,          \
                                     cudaStream_t s) {                                                     \
        DISPATCH_T(dt, return unary_bwd<T, Op>(dx, dy, x, n, s));                                          \
        return 0;                                                                                          \
    }

UNARY_LAUNCHERS(relu, OpRelu)
UNARY_LAUNCHERS(sigmoid, OpSigmoid)
UNARY_LAUNCHERS(silu, OpSilu)
UNARY_LAUNCHERS(gelu, OpGelu)
UNARY_LAUNCHERS(quickgelu, OpQuickGelu)

extern "C" int cuda_prelu_fwd(DType dt, void *y, const void *x, const void *slope, size_t N, int C, cudaStream_t s) {
    DISPATCH_T(dt, return prelu_fwd<T>(y, x, slope, N, C, s));
    return 0;
}

extern "C" int cuda_prelu_bwd(DType dt, void *dx, float *dslope, const void *dy, const void *x, const void *slope,
                              size_t N, int C, cudaStream_t s) {
    DISPATCH_T(dt, return prelu_bwd<T>(dx, dslope, dy, x, slope, N, C, s));
    return 0;
}

extern "C" int cuda_geglu_fwd(DType dt, void *y, const void *x, size_t N, int D, cudaStream_t s) {
    DISPATCH_T(dt, return geglu_fwd<T>(y, x, N, D, s));
    return 0;
}

extern "C" int cuda_geglu_bwd(DType dt, void *dx, const void *dy, const void *x, size_t N, int D, cudaStream_t s) {
    DISPATCH_T(dt, return geglu_bwd<T>(dx, dy, x, N, D, s));
    return 0;
}

extern "C" int cuda_softmax_fwd(DType dt, void *y, const void *x, size_t N, int C, cudaStream_t s) {
    DISPATCH_T(dt, return softmax_fwd<T>(y, x, N, C, s));
    return 0;
}

extern "C" int cuda_softmax_bwd(DType dt, void *dx, const void *dy, const void *y, size_t N, int C, cudaStream_t s) {
    DISPATCH_T(dt, return softmax_bwd<T>(dx, dy, y, N, C, s));
    return 0;
}
