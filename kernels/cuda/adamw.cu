// adamw.cu: the fused AdamW step over the flat parameter buffer and the
// global gradient L2 norm (see adamw.h).
//
// AdamW: one thread per group of 4 consecutive elements (grid-stride), one
// Philox block per group gives the 4 random words of those elements
// (philox_u32(seed, offset, 4b + k) is word k of block b). When every buffer
// is 16-byte aligned the group is loaded and stored with float4 (and 8-byte
// bf16x4) accesses; otherwise, and for the tail, element by element. Per
// element: 16 B read (p, m, v, g) + 12 B written (p, m, v) + 2 or 4 B of
// working copy, so the kernel is DRAM-bound.
//
// Gradient norm: stage 1 has a fixed number of blocks for a given n (at most
// 1024); each thread squares 4 floats at a time in float and accumulates the
// group sums in double, then a warp-shuffle + shared-memory tree gives one
// double per block in dev_workspace(). Stage 2 (one block) sums those in a
// fixed order in double and stores the float norm. No atomics: bit-identical
// run to run.
#include <cuda_runtime.h>

#include "../philox.h"
#include "adamw.h"
#include "common.cuh"
#include "device.h"

enum { WORK_NONE = 0, WORK_BF16 = 1, WORK_F32 = 2 };

template <int MODE>
__device__ __forceinline__ void store_work(void *work, size_t i, float p, uint32_t bits) {
    if (MODE == WORK_BF16) {
        reinterpret_cast<uint16_t *>(work)[i] = bf16_stochastic_round(p, bits);
    } else if (MODE == WORK_F32) {
        reinterpret_cast<float *>(work)[i] = p;
    }
}

// master, m, v, grad [n] fp32; work [n] bf16 bits / f32 / unused (MODE).
template <int MODE>
__global__ void adamw_kernel(void *__restrict__ work, float *__restrict__ master, float *__restrict__ m,
                             float *__restrict__ v, const float *__restrict__ grad, size_t n, AdamWCoef c,
                             float grad_scale, const float *__restrict__ d_grad_scale, uint64_t seed,
                             uint64_t offset, int vec) {
    float gs = grad_scale;
    if (d_grad_scale) gs = PHILOX_MUL(gs, *d_grad_scale);
    size_t ngroups = (n + 3) / 4;
    for (size_t b = (size_t)blockIdx.x * blockDim.x + threadIdx.x; b < ngroups; b += (size_t)gridDim.x * blockDim.x) {
        Philox4 r;
        if (MODE == WORK_BF16) r = philox_block(seed, offset, b);
        size_t base = b * 4;
        if (vec && base + 4 <= n) {
            float4 p4 = *reinterpret_cast<const float4 *>(master + base);
            float4 m4 = *reinterpret_cast<const float4 *>(m + base);
            float4 v4 = *reinterpret_cast<const float4 *>(v + base);
            float4 g4 = *reinterpret_cast<const float4 *>(grad + base);
            adamw_elem(&p4.x, &m4.x, &v4.x, PHILOX_MUL(g4.x, gs), c);
            adamw_elem(&p4.y, &m4.y, &v4.y, PHILOX_MUL(g4.y, gs), c);
            adamw_elem(&p4.z, &m4.z, &v4.z, PHILOX_MUL(g4.z, gs), c);
            adamw_elem(&p4.w, &m4.w, &v4.w, PHILOX_MUL(g4.w, gs), c);
            *reinterpret_cast<float4 *>(master + base) = p4;
            *reinterpret_cast<float4 *>(m + base) = m4;
            *reinterpret_cast<float4 *>(v + base) = v4;
            if (MODE == WORK_BF16) {
                uint2 w;
                w.x = (uint32_t)bf16_stochastic_round(p4.x, r.v[0]) |
                      ((uint32_t)bf16_stochastic_round(p4.y, r.v[1]) << 16);
                w.y = (uint32_t)bf16_stochastic_round(p4.z, r.v[2]) |
                      ((uint32_t)bf16_stochastic_round(p4.w, r.v[3]) << 16);
                *reinterpret_cast<uint2 *>(reinterpret_cast<uint16_t *>(work) + base) = w;
            } else if (MODE == WORK_F32) {
                *reinterpret_cast<float4 *>(reinterpret_cast<float *>(work) + base) = p4;
            }
        } else {
            for (int k = 0; k < 4 && base + k < n; k++) {
                size_t i = base + k;
                float p = master[i], mm = m[i], vv = v[i];
                adamw_elem(&p, &mm, &vv, PHILOX_MUL(grad[i], gs), c);
                master[i] = p;
                m[i] = mm;
                v[i] = vv;
                store_work<MODE>(work, i, p, MODE == WORK_BF16 ? r.v[k] : 0u);
            }
        }
    }
}


extern "C" int cuda_adamw_step(DType dt, void *work, float *master, float *m, float *v, const float *grad, size_t n,
                               AdamWHyper hyper, int64_t step, float grad_scale, const float *d_grad_scale,
                               uint64_t seed, uint64_t offset, cudaStream_t s) {
    if (step < 1 || (work && dt != DT_BF16 && dt != DT_F32)) return (int)cudaErrorInvalidValue;
    if (n == 0) return 0;
    AdamWCoef c = adamw_coef(&hyper, step);
    const int threads = 256;
    unsigned int grid = grid_for((n + 3) / 4, threads);
    int vec = al16(master) && al16(m) && al16(v) && al16(grad);
    if (!work) {
        adamw_kernel<WORK_NONE><<<grid, threads, 0, s>>>(nullptr, master, m, v, grad, n, c, grad_scale,
                                                         d_grad_scale, seed, offset, vec);
    } else if (dt == DT_BF16) {
        vec = vec && ((uintptr_t)work & 7) == 0;
        adamw_kernel<WORK_BF16><<<grid, threads, 0, s>>>(work, master, m, v, grad, n, c, grad_scale, d_grad_scale,
                                                         seed, offset, vec);
    } else {
        vec = vec && al16(work);
        adamw_kernel<WORK_F32><<<grid, threads, 0, s>>>(work, master, m, v, grad, n, c, grad_scale, d_grad_scale,
                                                        seed, offset, vec);
    }
    return (int)cudaGetLastError();
}

// ---------------------------------------------------------------- gradient norm
#define NORM_THREADS 256
#define NORM_MAX_BLOCKS 1024

// Sum of `x` over the block (blockDim.x == NORM_THREADS), valid in thread 0.
__device__ double block_sum_double(double x) {
    __shared__ double warp_sums[NORM_THREADS / 32];
    x = warp_sum(x);
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    if (lane == 0) warp_sums[w] = x;
    __syncthreads();
    if (w == 0) {
        x = lane < NORM_THREADS / 32 ? warp_sums[lane] : 0.0;
        x = warp_sum(x);
    }
    return x;
}

// grad [n] -> partial [gridDim.x] sums of squares.
__global__ void __launch_bounds__(NORM_THREADS) grad_sumsq_kernel(double *__restrict__ partial,
                                                                  const float *__restrict__ grad, size_t n, int vec) {
    double acc = 0.0;
    size_t ngroups = (n + 3) / 4;
    for (size_t b = (size_t)blockIdx.x * blockDim.x + threadIdx.x; b < ngroups; b += (size_t)gridDim.x * blockDim.x) {
        size_t base = b * 4;
        float s4;
        if (vec && base + 4 <= n) {
            float4 g = *reinterpret_cast<const float4 *>(grad + base);
            s4 = fmaf(g.w, g.w, fmaf(g.z, g.z, fmaf(g.y, g.y, __fmul_rn(g.x, g.x))));
        } else {
            s4 = 0.0f;
            for (int k = 0; k < 4 && base + k < n; k++) s4 = fmaf(grad[base + k], grad[base + k], s4);
        }
        acc += (double)s4;
    }
    acc = block_sum_double(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// partial [nparts] -> norm [1], clip_coef [1] (optional).
__global__ void __launch_bounds__(NORM_THREADS) grad_norm_final_kernel(float *__restrict__ norm,
                                                                       float *__restrict__ clip_coef,
                                                                       const double *__restrict__ partial,
                                                                       int nparts, float max_norm) {
    double acc = 0.0;
    for (int i = threadIdx.x; i < nparts; i += NORM_THREADS) acc += partial[i];
    acc = block_sum_double(acc);
    if (threadIdx.x == 0) {
        float nf = (float)sqrt(acc);
        *norm = nf;
        if (clip_coef) *clip_coef = clip_grad_coef(nf, max_norm);
    }
}

extern "C" int cuda_grad_norm(float *norm, float *clip_coef, const float *grad, size_t n, float max_norm,
                              cudaStream_t s) {
    size_t ngroups = (n + 3) / 4;
    size_t nb = (ngroups + NORM_THREADS - 1) / NORM_THREADS;
    if (nb > NORM_MAX_BLOCKS) nb = NORM_MAX_BLOCKS;
    if (nb == 0) nb = 1;
    double *partial = (double *)dev_workspace(nb * sizeof(double));
    if (!partial) return (int)cudaErrorMemoryAllocation;
    grad_sumsq_kernel<<<(unsigned int)nb, NORM_THREADS, 0, s>>>(partial, grad, n, al16(grad));
    grad_norm_final_kernel<<<1, NORM_THREADS, 0, s>>>(norm, clip_coef, partial, (int)nb, max_norm);
    return (int)cudaGetLastError();
}
