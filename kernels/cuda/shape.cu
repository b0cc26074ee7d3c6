// shape.cu: CUDA nearest 2x upsample, channel concat and residual add,
// forward and backward (see shape.h; CPU reference kernels/cpu/shape.c).
//
// Pure data movement, so the kernels are grid-stride loops over 16-byte packs
// (4 floats or 8 bf16) along C when every pointer is 16-byte aligned and the
// channel counts keep a pack inside one pixel; otherwise one element per
// thread. Upsample works per input pack: one load, four stores (forward) or
// four loads summed in the CPU's order (backward), so results are exact
// copies / bit-identical sums for f32.
#include <cuda_runtime.h>
#include <stdint.h>

#include "common.cuh"
#include "shape.h"

namespace {

// Threads for n items, V at a time when vec.
template <typename T> unsigned int pack_grid(size_t n, int vec, int threads) {
    return grid_for(vec ? n / Pack<T>::N : n, threads);
}

// ---------------------------------------------------------------- upsample 2x

// x [B,H,W,C] -> y [B,2H,2W,C]; n = B*H*W*C; W2C = 2W*C. vec: aligned, C % V == 0.
// I: index type (uint32_t when n fits: 64-bit divisions are slow on the GPU).
template <typename T, typename I>
__global__ void upsample_fwd_kernel(T *y, const T *x, size_t n, int H, int W, int C, int vec) {
    const int V = vec ? Pack<T>::N : 1;
    const size_t W2C = (size_t)2 * W * C;
    GRID_STRIDE(i, n / V) {
        const I e = (I)(i * V), p = e / (I)C, c = e % (I)C;
        const I w = p % (I)W, q = p / (I)W, h = q % (I)H, b = q / (I)H;
        T *o = y + (((size_t)b * 2 * H + 2 * h) * 2 * W + 2 * w) * C + c;
        if (vec) {
            float f[Pack<T>::N];
            Pack<T>::load(x + e, f);
            Pack<T>::store(o, f);
            Pack<T>::store(o + C, f);
            Pack<T>::store(o + W2C, f);
            Pack<T>::store(o + W2C + C, f);
        } else {
            const T v = x[e];
            o[0] = v, o[C] = v, o[W2C] = v, o[W2C + C] = v;
        }
    }
}

// dx [B,H,W,C] += (g00 + g01) + (g10 + g11) of dy [B,2H,2W,C].
template <typename T, typename I>
__global__ void upsample_bwd_kernel(T *dx, const T *dy, size_t n, int H, int W, int C, int vec) {
    constexpr int PV = Pack<T>::N;
    const int V = vec ? PV : 1;
    const size_t W2C = (size_t)2 * W * C;
    GRID_STRIDE(i, n / V) {
        const I e = (I)(i * V), p = e / (I)C, c = e % (I)C;
        const I w = p % (I)W, q = p / (I)W, h = q % (I)H, b = q / (I)H;
        const T *g = dy + (((size_t)b * 2 * H + 2 * h) * 2 * W + 2 * w) * C + c;
        if (vec) {
            float d[PV], g00[PV], g01[PV], g10[PV], g11[PV];
            Pack<T>::load(dx + e, d);
            Pack<T>::load(g, g00);
            Pack<T>::load(g + C, g01);
            Pack<T>::load(g + W2C, g10);
            Pack<T>::load(g + W2C + C, g11);
            for (int k = 0; k < PV; k++) d[k] += (g00[k] + g01[k]) + (g10[k] + g11[k]);
            Pack<T>::store(dx + e, d);
        } else {
            const float s = (to_f32(g[0]) + to_f32(g[C])) + (to_f32(g[W2C]) + to_f32(g[W2C + C]));
            dx[e] = from_f32<T>(to_f32(dx[e]) + s);
        }
    }
}

template <typename T> int upsample_fwd(void *y, const void *x, int B, int H, int W, int C, cudaStream_t s) {
    if (B < 0 || H < 0 || W < 0 || C < 0) return (int)cudaErrorInvalidValue;
    const size_t n = (size_t)B * H * W * C;
    if (n == 0) return 0;
    const int vec = al16(y) && al16(x) && C % Pack<T>::N == 0;
    if (n <= 0xffffffffu)
        upsample_fwd_kernel<T, uint32_t><<<pack_grid<T>(n, vec, 256), 256, 0, s>>>((T *)y, (const T *)x, n, H, W, C,
                                                                                    vec);
    else
        upsample_fwd_kernel<T, size_t><<<pack_grid<T>(n, vec, 256), 256, 0, s>>>((T *)y, (const T *)x, n, H, W, C,
                                                                                  vec);
    return (int)cudaGetLastError();
}

template <typename T> int upsample_bwd(void *dx, const void *dy, int B, int H, int W, int C, cudaStream_t s) {
    if (B < 0 || H < 0 || W < 0 || C < 0) return (int)cudaErrorInvalidValue;
    const size_t n = (size_t)B * H * W * C;
    if (n == 0 || !dx) return 0;
    const int vec = al16(dx) && al16(dy) && C % Pack<T>::N == 0;
    if (n <= 0xffffffffu)
        upsample_bwd_kernel<T, uint32_t><<<pack_grid<T>(n, vec, 256), 256, 0, s>>>((T *)dx, (const T *)dy, n, H, W, C,
                                                                                    vec);
    else
        upsample_bwd_kernel<T, size_t><<<pack_grid<T>(n, vec, 256), 256, 0, s>>>((T *)dx, (const T *)dy, n, H, W, C,
                                                                                  vec);
    return (int)cudaGetLastError();
}

// ---------------------------------------------------------------- concat

// y [P, Ca+Cb] from a [P, Ca], b [P, Cb]; n = P*(Ca+Cb). vec: aligned, Ca, Cb % V == 0.
template <typename T, typename I>
__global__ void concat_fwd_kernel(T *y, const T *a, const T *b, size_t n, int Ca, int Cb, int vec) {
    const int V = vec ? Pack<T>::N : 1;
    const I Cy = (I)Ca + (I)Cb;
    GRID_STRIDE(i, n / V) {
        const I e = (I)(i * V), p = e / Cy, c = e % Cy;
        const T *src = c < (I)Ca ? a + (size_t)p * Ca + c : b + (size_t)p * Cb + (c - Ca);
        if (vec) *reinterpret_cast<uint4 *>(y + e) = *reinterpret_cast<const uint4 *>(src);
        else y[e] = *src;
    }
}

// da [P, Ca] += dy[:, :Ca]; db [P, Cb] += dy[:, Ca:] (either may be NULL).
template <typename T, typename I>
__global__ void concat_bwd_kernel(T *da, T *db, const T *dy, size_t n, int Ca, int Cb, int vec) {
    constexpr int PV = Pack<T>::N;
    const int V = vec ? PV : 1;
    const I Cy = (I)Ca + (I)Cb;
    GRID_STRIDE(i, n / V) {
        const I e = (I)(i * V), p = e / Cy, c = e % Cy;
        T *d = c < (I)Ca ? (da ? da + (size_t)p * Ca + c : nullptr) : (db ? db + (size_t)p * Cb + (c - Ca) : nullptr);
        if (!d) continue;
        if (vec) {
            float f[PV], g[PV];
            Pack<T>::load(d, f);
            Pack<T>::load(dy + e, g);
            for (int k = 0; k < PV; k++) f[k] += g[k];
            Pack<T>::store(d, f);
        } else {
            *d = from_f32<T>(to_f32(*d) + to_f32(dy[e]));
        }
    }
}

template <typename T>
int concat_fwd(void *y, const void *a, const void *b, size_t P, int Ca, int Cb, cudaStream_t s) {
    if (Ca < 0 || Cb < 0) return (int)cudaErrorInvalidValue;
    const size_t n = P * ((size_t)Ca + Cb);
    if (n == 0) return 0;
    const int V = Pack<T>::N;
    const int vec = al16(y) && al16(a) && al16(b) && Ca % V == 0 && Cb % V == 0;
    if (n <= 0xffffffffu)
        concat_fwd_kernel<T, uint32_t><<<pack_grid<T>(n, vec, 256), 256, 0, s>>>((T *)y, (const T *)a, (const T *)b, n,
                                                                                  Ca, Cb, vec);
    else
        concat_fwd_kernel<T, size_t><<<pack_grid<T>(n, vec, 256), 256, 0, s>>>((T *)y, (const T *)a, (const T *)b, n,
                                                                                Ca, Cb, vec);
    return (int)cudaGetLastError();
}

template <typename T> int concat_bwd(void *da, void *db, const void *dy, size_t P, int Ca, int Cb, cudaStream_t s) {
    if (Ca < 0 || Cb < 0) return (int)cudaErrorInvalidValue;
    const size_t n = P * ((size_t)Ca + Cb);
    if (n == 0 || (!da && !db)) return 0;
    const int V = Pack<T>::N;
    const int vec = al16(da) && al16(db) && al16(dy) && Ca % V == 0 && Cb % V == 0;  // al16(NULL) is true
    if (n <= 0xffffffffu)
        concat_bwd_kernel<T, uint32_t><<<pack_grid<T>(n, vec, 256), 256, 0, s>>>((T *)da, (T *)db, (const T *)dy, n,
                                                                                  Ca, Cb, vec);
    else
        concat_bwd_kernel<T, size_t><<<pack_grid<T>(n, vec, 256), 256, 0, s>>>((T *)da, (T *)db, (const T *)dy, n, Ca,
                                                                                Cb, vec);
    return (int)cudaGetLastError();
}

// ---------------------------------------------------------------- add

// y [n] = a + b (y may alias a or b).
template <typename T> __global__ void add_fwd_kernel(T *y, const T *a, const T *b, size_t n, int vec) {
    constexpr int V = Pack<T>::N;
    const size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x, stride = (size_t)gridDim.x * blockDim.x;
    const size_t nv = vec ? n / V : 0;
    for (size_t i = tid; i < nv; i += stride) {
        float fa[V], fb[V];
        Pack<T>::load(a + i * V, fa);
        Pack<T>::load(b + i * V, fb);
        for (int k = 0; k < V; k++) fa[k] += fb[k];
        Pack<T>::store(y + i * V, fa);
    }
    for (size_t i = nv * V + tid; i < n; i += stride) y[i] = from_f32<T>(to_f32(a[i]) + to_f32(b[i]));
}

// da [n] += dy; db [n] += dy (either may be NULL).
template <typename T> __global__ void add_bwd_kernel(T *da, T *db, const T *dy, size_t n, int vec) {
    constexpr int V = Pack<T>::N;
    const size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x, stride = (size_t)gridDim.x * blockDim.x;
    const size_t nv = vec ? n / V : 0;
    for (size_t i = tid; i < nv; i += stride) {
        float g[V], f[V];
        Pack<T>::load(dy + i * V, g);
        if (da) {
            Pack<T>::load(da + i * V, f);
            for (int k = 0; k < V; k++) f[k] += g[k];
            Pack<T>::store(da + i * V, f);
        }
        if (db) {
            Pack<T>::load(db + i * V, f);
            for (int k = 0; k < V; k++) f[k] += g[k];
            Pack<T>::store(db + i * V, f);
        }
    }
    for (size_t i = nv * V + tid; i < n; i += stride) {
        const float g = to_f32(dy[i]);
        if (da) da[i] = from_f32<T>(to_f32(da[i]) + g);
        if (db) db[i] = from_f32<T>(to_f32(db[i]) + g);
    }
}

template <typename T> unsigned int tail_grid(size_t n, int vec, int threads) {
    const size_t V = Pack<T>::N;
    size_t items = vec ? n / V : n;
    if (vec && n % V > items) items = n % V;
    return grid_for(items, threads);
}

template <typename T> int add_fwd(void *y, const void *a, const void *b, size_t n, cudaStream_t s) {
    if (n == 0) return 0;
    const int vec = al16(y) && al16(a) && al16(b);
    add_fwd_kernel<T><<<tail_grid<T>(n, vec, 256), 256, 0, s>>>((T *)y, (const T *)a, (const T *)b, n, vec);
    return (int)cudaGetLastError();
}

template <typename T> int add_bwd(void *da, void *db, const void *dy, size_t n, cudaStream_t s) {
    if (n == 0 || (!da && !db)) return 0;
    const int vec = al16(da) && al16(db) && al16(dy);
    add_bwd_kernel<T><<<tail_grid<T>(n, vec, 256), 256, 0, s>>>((T *)da, (T *)db, (const T *)dy, n, vec);
    return (int)cudaGetLastError();
}

}  // namespace

// ---------------------------------------------------------------- launchers

extern "C" int cuda_upsample2x_fwd(DType dt, void *y, const void *x, int B, int H, int W, int C, cudaStream_t s) {
    DISPATCH_T(dt, return upsample_fwd<T>(y, x, B, H, W, C, s));
    return 0;
}

extern "C" int cuda_upsample2x_bwd(DType dt, void *dx, const void *dy, int B, int H, int W, int C, cudaStream_t s) {
    DISPATCH_T(dt, return upsample_bwd<T>(dx, dy, B, H, W, C, s));
    return 0;
}

extern "C" int cuda_concat_fwd(DType dt, void *y, const void *a, const void *b, size_t P, int Ca, int Cb,
                               cudaStream_t s) {
    DISPATCH_T(dt, return concat_fwd<T>(y, a, b, P, Ca, Cb, s));
    return 0;
}

extern "C" int cuda_concat_bwd(DType dt, void *da, void *db, const void *dy, size_t P, int Ca, int Cb,
                               cudaStream_t s) {
    DISPATCH_T(dt, return concat_bwd<T>(da, db, dy, P, Ca, Cb, s));
    return 0;
}

extern "C" int cuda_add_fwd(DType dt, void *y, const void *a, const void *b, size_t n, cudaStream_t s) {
    DISPATCH_T(dt, return add_fwd<T>(y, a, b, n, s));
    return 0;
}

extern "C" int cuda_add_bwd(DType dt, void *da, void *db, const void *dy, size_t n, cudaStream_t s) {
    DISPATCH_T(dt, return add_bwd<T>(da, db, dy, n, s));
    return 0;
}
