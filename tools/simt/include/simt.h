// simt.h: the SIMT emulator's stand-in for the CUDA headers. A .cu file compiled by
// tools/simt/simtcc sees this instead of cuda_runtime.h / cuda_bf16.h / cuda_fp16.h:
// CUDA qualifiers mapped to host C++, the builtin index variables, vector types,
// warp intrinsics, atomics, fast-math intrinsics, bf16/f16 types, and the runtime
// API (cudaMalloc, streams, events, errors) as host functions. Kernels run on
// fibers; the runtime (tools/simt/simt_runtime.cpp) holds the scheduler.
// Launch syntax `k<<<g, b, smem, stream>>>(args)` is rewritten by simt_rewrite.pl
// into ::simt::launch(...), declared at the bottom of this file.
#pragma once
#ifndef SIMT_H
#define SIMT_H

#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <utility>

// CUDA declares the classification functions in the global namespace for
// device code; <cmath> puts them in std:: only.
using std::isfinite;
using std::isinf;
using std::isnan;
using std::signbit;

#define SIMT_EMULATOR 1
#ifndef __CUDACC__
#define __CUDACC__ 1
#endif
#ifndef CUDART_VERSION
#define CUDART_VERSION 13000
#endif

// ---------------------------------------------------------------------------------
// Qualifiers. Kernels and device functions are ordinary host functions. __shared__
// variables are per-OS-thread statics: each OS thread runs one block at a time and all
// fibers (CUDA threads) of that block share the OS thread, hence the variable.
#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __grid_constant__
#define __device_builtin__
#define __shared__ static thread_local __attribute__((aligned(16)))
#define __forceinline__ __attribute__((always_inline)) inline
#define __noinline__ __attribute__((noinline))
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __maxnreg__(n)
#define __align__(n) __attribute__((aligned(n)))
#define __builtin_align__(n) __attribute__((aligned(n)))
#define CUDART_CB

// ---------------------------------------------------------------------------------
// Vector types (sizes and alignments as in CUDA's vector_types.h).
#define SIMT_VEC2(T, N, A)                                                                   \
    struct __attribute__((aligned(A))) N##2 { T x, y; };                                    \
    static inline N##2 make_##N##2(T x, T y) { N##2 r; r.x = x; r.y = y; return r; }
#define SIMT_VEC3(T, N)                                                                      \
    struct N##3 { T x, y, z; };                                                              \
    static inline N##3 make_##N##3(T x, T y, T z) { N##3 r; r.x = x; r.y = y; r.z = z; return r; }
#define SIMT_VEC4(T, N, A)                                                                   \
    struct __attribute__((aligned(A))) N##4 { T x, y, z, w; };                              \
    static inline N##4 make_##N##4(T x, T y, T z, T w) {                                    \
        N##4 r; r.x = x; r.y = y; r.z = z; r.w = w; return r;                                \
    }
#define SIMT_VEC_ALL(T, N, A2, A4) SIMT_VEC2(T, N, A2) SIMT_VEC3(T, N) SIMT_VEC4(T, N, A4)
SIMT_VEC_ALL(signed char, char, 2, 4)
SIMT_VEC_ALL(unsigned char, uchar, 2, 4)
SIMT_VEC_ALL(short, short, 4, 8)
SIMT_VEC_ALL(unsigned short, ushort, 4, 8)
SIMT_VEC_ALL(int, int, 8, 16)
SIMT_VEC_ALL(float, float, 8, 16)
SIMT_VEC_ALL(long long, longlong, 16, 16)
SIMT_VEC_ALL(unsigned long long, ulonglong, 16, 16)
SIMT_VEC_ALL(double, double, 16, 16)
SIMT_VEC2(unsigned, uint, 8)
SIMT_VEC4(unsigned, uint, 16)
#undef SIMT_VEC2
#undef SIMT_VEC3
#undef SIMT_VEC4
#undef SIMT_VEC_ALL
struct uint3 {
    unsigned x, y, z;
};
static inline uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return uint3{x, y, z}; }

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return uint3{x, y, z}; }
};

// ---------------------------------------------------------------------------------
// Builtin variables: per OS thread; the scheduler stores the running fiber's
// threadIdx here on every switch, and the block's indices once per block.
extern __thread uint3 threadIdx;
extern __thread uint3 blockIdx;
extern __thread dim3 blockDim;
extern __thread dim3 gridDim;
static constexpr int warpSize = 32;

// ---------------------------------------------------------------------------------
// Runtime API types and error codes (values as in CUDA's driver_types.h).
enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInitializationError = 3,
    cudaErrorCudartUnloading = 4,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidPitchValue = 12,
    cudaErrorInvalidSymbol = 13,
    cudaErrorInvalidDevicePointer = 17,
    cudaErrorInvalidMemcpyDirection = 21,
    cudaErrorInvalidDeviceFunction = 98,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorNotReady = 600,
    cudaErrorIllegalAddress = 700,
    cudaErrorLaunchOutOfResources = 701,
    cudaErrorLaunchFailure = 719,
    cudaErrorNotSupported = 801,
    cudaErrorUnknown = 999,
};
typedef enum cudaError cudaError_t;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};
enum cudaFuncAttribute {
    cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
    cudaFuncAttributePreferredSharedMemoryCarveout = 9,
};
enum cudaDeviceAttr {
    cudaDevAttrMaxThreadsPerBlock = 1,
    cudaDevAttrMaxBlockDimX = 2,
    cudaDevAttrMaxBlockDimY = 3,
    cudaDevAttrMaxBlockDimZ = 4,
    cudaDevAttrMaxGridDimX = 5,
    cudaDevAttrMaxGridDimY = 6,
    cudaDevAttrMaxGridDimZ = 7,
    cudaDevAttrMaxSharedMemoryPerBlock = 8,
    cudaDevAttrWarpSize = 10,
    cudaDevAttrMultiProcessorCount = 16,
    cudaDevAttrComputeCapabilityMajor = 75,
    cudaDevAttrComputeCapabilityMinor = 76,
    cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};
#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01
#define cudaEventDefault 0x00
#define cudaEventBlockingSync 0x01
#define cudaEventDisableTiming 0x02
#define cudaHostAllocDefault 0x00
#define cudaMemAttachGlobal 0x01
typedef struct CUstream_st *cudaStream_t;
typedef struct CUevent_st *cudaEvent_t;
#define cudaStreamLegacy ((cudaStream_t)0x1)
#define cudaStreamPerThread ((cudaStream_t)0x2)

struct cudaUUID_t {
    char bytes[16];
};
// The fields of CUDA 13's cudaDeviceProp that programs commonly read (CUDA 13 dropped
// clockRate, memoryClockRate and computeMode, so they are absent here too).
struct cudaDeviceProp {
    char name[256];
    cudaUUID_t uuid;
    size_t totalGlobalMem;
    size_t sharedMemPerBlock;
    int regsPerBlock;
    int warpSize;
    size_t memPitch;
    int maxThreadsPerBlock;
    int maxThreadsDim[3];
    int maxGridSize[3];
    size_t totalConstMem;
    int major;
    int minor;
    size_t textureAlignment;
    int multiProcessorCount;
    int integrated;
    int canMapHostMemory;
    int concurrentKernels;
    int ECCEnabled;
    int pciBusID;
    int pciDeviceID;
    int pciDomainID;
    int asyncEngineCount;
    int unifiedAddressing;
    int memoryBusWidth;
    int l2CacheSize;
    int persistingL2CacheMaxSize;
    int maxThreadsPerMultiProcessor;
    size_t sharedMemPerMultiprocessor;
    int regsPerMultiprocessor;
    int managedMemory;
    int cooperativeLaunch;
    size_t sharedMemPerBlockOptin;
    int maxBlocksPerMultiProcessor;
    size_t reservedSharedMemPerBlock;
};

// ---------------------------------------------------------------------------------
// Runtime API (host functions; see simt_runtime.cpp). Streams execute synchronously.
cudaError_t cudaMalloc(void **ptr, size_t size);
cudaError_t cudaMallocHost(void **ptr, size_t size);
cudaError_t cudaHostAlloc(void **ptr, size_t size, unsigned flags);
cudaError_t cudaMallocManaged(void **ptr, size_t size, unsigned flags = cudaMemAttachGlobal);
cudaError_t cudaMallocAsync(void **ptr, size_t size, cudaStream_t stream);
cudaError_t cudaFree(void *ptr);
// Typed overloads, as cuda_runtime.h has them (cudaMalloc(&float_ptr, n)).
template <class T> static inline cudaError_t cudaMalloc(T **p, size_t n) { return cudaMalloc((void **)p, n); }
template <class T> static inline cudaError_t cudaMallocHost(T **p, size_t n) { return cudaMallocHost((void **)p, n); }
template <class T> static inline cudaError_t cudaHostAlloc(T **p, size_t n, unsigned f) {
    return cudaHostAlloc((void **)p, n, f);
}
template <class T> static inline cudaError_t cudaMallocManaged(T **p, size_t n, unsigned f = cudaMemAttachGlobal) {
    return cudaMallocManaged((void **)p, n, f);
}
template <class T> static inline cudaError_t cudaMallocAsync(T **p, size_t n, cudaStream_t s) {
    return cudaMallocAsync((void **)p, n, s);
}
cudaError_t cudaFreeHost(void *ptr);
cudaError_t cudaFreeAsync(void *ptr, cudaStream_t stream);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaStream_t s = 0);
cudaError_t cudaMemcpy2D(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                         cudaMemcpyKind kind);
cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                              size_t height, cudaMemcpyKind kind, cudaStream_t s = 0);
cudaError_t cudaMemset(void *dst, int value, size_t n);
cudaError_t cudaMemsetAsync(void *dst, int value, size_t n, cudaStream_t s = 0);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaDeviceReset(void);
cudaError_t cudaSetDevice(int dev);
cudaError_t cudaGetDevice(int *dev);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int dev);
cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int dev);
cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamQuery(cudaStream_t s);
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags = 0);
cudaError_t cudaEventCreate(cudaEvent_t *e);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = 0);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventQuery(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);
cudaError_t cudaRuntimeGetVersion(int *v);
cudaError_t cudaDriverGetVersion(int *v);
// Records the largest dynamic shared memory a kernel was allowed (the emulator does not
// tell kernels apart here: a launch may use the largest limit set for any kernel).
cudaError_t cudaFuncSetAttribute(const void *func, cudaFuncAttribute attr, int value);
template <class F>
static inline cudaError_t cudaFuncSetAttribute(F *func, cudaFuncAttribute attr, int value) {
    return cudaFuncSetAttribute((const void *)func, attr, value);
}

// __device__ / __constant__ globals are host globals: symbols are their addresses.
template <class T>
static inline cudaError_t cudaMemcpyToSymbol(T &symbol, const void *src, size_t n, size_t offset = 0,
                                             cudaMemcpyKind kind = cudaMemcpyHostToDevice) {
    if (offset + n > sizeof(T)) return cudaErrorInvalidValue;
    return cudaMemcpy((char *)&symbol + offset, src, n, kind);
}
template <class T>
static inline cudaError_t cudaMemcpyFromSymbol(void *dst, const T &symbol, size_t n, size_t offset = 0,
                                               cudaMemcpyKind kind = cudaMemcpyDeviceToHost) {
    if (offset + n > sizeof(T)) return cudaErrorInvalidValue;
    return cudaMemcpy(dst, (const char *)&symbol + offset, n, kind);
}
template <class T>
static inline cudaError_t cudaGetSymbolAddress(void **p, T &symbol) {
    *p = (void *)&symbol;
    return cudaSuccess;
}

// ---------------------------------------------------------------------------------
// Scheduler entry points used by the intrinsics below (simt_runtime.cpp).
namespace simt {
enum WarpOp { WOP_SHFL = 0, WOP_VOTE = 1, WOP_ADD = 2, WOP_MIN = 3, WOP_MAX = 4, WOP_UMIN = 5, WOP_UMAX = 6 };
void syncthreads(const char *file, int line);
int syncthreads_reduce(int pred, int op, const char *file, int line);  // op: 0 count, 1 and, 2 or
// All lanes of `mask` (that have not exited) meet; for WOP_SHFL `out` receives lane src's
// `in` (own `in` when src < 0 or src is not taking part); returns the ballot of `pred`.
unsigned warp_op(unsigned mask, int op, const void *in, void *out, unsigned size, int src, int pred);
unsigned active_mask();
int lane_id();
void *dynamic_smem();
[[noreturn]] void trap(const char *what);
}  // namespace simt

#define __syncthreads() ::simt::syncthreads(__FILE__, __LINE__)
#define __syncthreads_count(p) ::simt::syncthreads_reduce((p) ? 1 : 0, 0, __FILE__, __LINE__)
#define __syncthreads_and(p) ::simt::syncthreads_reduce((p) ? 1 : 0, 1, __FILE__, __LINE__)
#define __syncthreads_or(p) ::simt::syncthreads_reduce((p) ? 1 : 0, 2, __FILE__, __LINE__)

static inline void __syncwarp(unsigned mask = 0xffffffffu) { ::simt::warp_op(mask, ::simt::WOP_VOTE, 0, 0, 0, -1, 0); }
static inline unsigned __activemask() { return ::simt::active_mask(); }
static inline unsigned __ballot_sync(unsigned mask, int pred) {
    return ::simt::warp_op(mask, ::simt::WOP_VOTE, 0, 0, 0, -1, pred != 0);
}
static inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }
static inline int __all_sync(unsigned mask, int pred) {
    // all lanes taking part voted yes <=> nobody voted no
    return ::simt::warp_op(mask, ::simt::WOP_VOTE, 0, 0, 0, -1, pred == 0) == 0;
}

template <class T>
static inline T simt_shfl_(unsigned mask, T v, int src) {
    static_assert(sizeof(T) <= 16, "__shfl_*_sync: type larger than 16 bytes");
    T r;
    ::simt::warp_op(mask, ::simt::WOP_SHFL, &v, &r, (unsigned)sizeof(T), src, 0);
    return r;
}
template <class T>
static inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
    int lane = ::simt::lane_id();
    return simt_shfl_(mask, v, (lane & ~(width - 1)) + (src & (width - 1)));
}
template <class T>
static inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    int lane = ::simt::lane_id();
    int src = ((lane & (width - 1)) < (int)delta) ? -1 : lane - (int)delta;
    return simt_shfl_(mask, v, src);
}
template <class T>
static inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    int lane = ::simt::lane_id();
    int src = ((lane & (width - 1)) + (int)delta >= width) ? -1 : lane + (int)delta;
    return simt_shfl_(mask, v, src);
}
template <class T>
static inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    int lane = ::simt::lane_id();
    int src = lane ^ lane_mask;
    // lanes may read earlier groups of `width`, not later ones (CUDA programming guide)
    if (src >= 32 || (src & ~(width - 1)) > (lane & ~(width - 1))) src = -1;
    return simt_shfl_(mask, v, src);
}
static inline unsigned __reduce_add_sync(unsigned mask, unsigned v) {
    unsigned r;
    ::simt::warp_op(mask, ::simt::WOP_ADD, &v, &r, 4, -1, 0);
    return r;
}
static inline int __reduce_add_sync(unsigned mask, int v) { return (int)__reduce_add_sync(mask, (unsigned)v); }
static inline unsigned __reduce_min_sync(unsigned mask, unsigned v) {
    unsigned r;
    ::simt::warp_op(mask, ::simt::WOP_UMIN, &v, &r, 4, -1, 0);
    return r;
}
static inline unsigned __reduce_max_sync(unsigned mask, unsigned v) {
    unsigned r;
    ::simt::warp_op(mask, ::simt::WOP_UMAX, &v, &r, 4, -1, 0);
    return r;
}
static inline int __reduce_min_sync(unsigned mask, int v) {
    int r;
    ::simt::warp_op(mask, ::simt::WOP_MIN, &v, &r, 4, -1, 0);
    return r;
}
static inline int __reduce_max_sync(unsigned mask, int v) {
    int r;
    ::simt::warp_op(mask, ::simt::WOP_MAX, &v, &r, 4, -1, 0);
    return r;
}

// Memory fences: blocks run in parallel on OS threads, so fences are real.
static inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void __nanosleep(unsigned) {}
static inline void __trap() { ::simt::trap("__trap()"); }
static inline long long clock64() { return (long long)__builtin_ia32_rdtsc(); }

// Cache-hinted loads/stores are plain accesses.
template <class T> static inline T __ldg(const T *p) { return *p; }
template <class T> static inline T __ldcg(const T *p) { return *p; }
template <class T> static inline T __ldca(const T *p) { return *p; }
template <class T> static inline T __ldcs(const T *p) { return *p; }
template <class T> static inline T __ldlu(const T *p) { return *p; }
template <class T> static inline T __ldcv(const T *p) { return *p; }
template <class T> static inline void __stcg(T *p, T v) { *p = v; }
template <class T> static inline void __stcs(T *p, T v) { *p = v; }
template <class T> static inline void __stwb(T *p, T v) { *p = v; }
template <class T> static inline void __stwt(T *p, T v) { *p = v; }

// ---------------------------------------------------------------------------------
// Integer intrinsics.
static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
static inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
static inline int __clzll(long long x) { return x ? __builtin_clzll((unsigned long long)x) : 64; }
static inline int __ffs(int x) { return __builtin_ffs(x); }
static inline int __ffsll(long long x) { return __builtin_ffsll(x); }
static inline unsigned __brev(unsigned x) {
    x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
    x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
    x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
    return __builtin_bswap32(x);
}
static inline int __mul24(int a, int b) { return (int)((long long)((a << 8) >> 8) * ((b << 8) >> 8)); }
static inline unsigned __umul24(unsigned a, unsigned b) { return (a & 0xffffffu) * (b & 0xffffffu); }
static inline int __mulhi(int a, int b) { return (int)(((long long)a * b) >> 32); }
static inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
static inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
    return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}
static inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
    unsigned long long v = ((unsigned long long)y << 32) | x;
    unsigned r = 0;
    for (int i = 0; i < 4; i++) r |= (unsigned)((v >> (8 * ((s >> (4 * i)) & 7))) & 0xff) << (8 * i);
    return r;
}
static inline unsigned __funnelshift_l(unsigned lo, unsigned hi, unsigned s) {
    unsigned long long v = ((unsigned long long)hi << 32) | lo;
    return (unsigned)((v << (s & 31)) >> 32);
}
static inline unsigned __funnelshift_r(unsigned lo, unsigned hi, unsigned s) {
    unsigned long long v = ((unsigned long long)hi << 32) | lo;
    return (unsigned)(v >> (s & 31));
}
static inline int __float_as_int(float f) { int i; memcpy(&i, &f, 4); return i; }
static inline unsigned __float_as_uint(float f) { unsigned i; memcpy(&i, &f, 4); return i; }
static inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
static inline float __uint_as_float(unsigned i) { float f; memcpy(&f, &i, 4); return f; }
static inline long long __double_as_longlong(double d) { long long i; memcpy(&i, &d, 8); return i; }
static inline double __longlong_as_double(long long i) { double d; memcpy(&d, &i, 8); return d; }
static inline int __float2int_rn(float f) { return (int)nearbyintf(f); }
static inline int __float2int_rz(float f) { return (int)f; }
static inline int __float2int_rd(float f) { return (int)floorf(f); }
static inline int __float2int_ru(float f) { return (int)ceilf(f); }
static inline unsigned __float2uint_rn(float f) { return (unsigned)nearbyintf(f); }
static inline long long __float2ll_rn(float f) { return (long long)nearbyintf(f); }
static inline float __int2float_rn(int i) { return (float)i; }
static inline float __uint2float_rn(unsigned i) { return (float)i; }
static inline int __double2int_rn(double d) { return (int)nearbyint(d); }
static inline float __double2float_rn(double d) { return (float)d; }

// min/max overloads that CUDA provides at global scope.
#define SIMT_MINMAX(T)                                                      \
    static inline T min(T a, T b) { return a < b ? a : b; }                 \
    static inline T max(T a, T b) { return a > b ? a : b; }
SIMT_MINMAX(int)
SIMT_MINMAX(unsigned)
SIMT_MINMAX(long)
SIMT_MINMAX(unsigned long)
SIMT_MINMAX(long long)
SIMT_MINMAX(unsigned long long)
#undef SIMT_MINMAX
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }
static inline double min(double a, double b) { return fmin(a, b); }
static inline double max(double a, double b) { return fmax(a, b); }

// ---------------------------------------------------------------------------------
// Float intrinsics. The fast-math ones use the accurate libm function: results can
// differ from the GPU's approximations in the last bits (tests need a tolerance).
// glibc's <math.h> already declares __expf & co., hence macros for those names.
#define __expf(x) (::expf(x))
#define __exp10f(x) (::exp10f(x))
#define __logf(x) (::logf(x))
#define __log2f(x) (::log2f(x))
#define __log10f(x) (::log10f(x))
#define __sinf(x) (::sinf(x))
#define __cosf(x) (::cosf(x))
#define __tanf(x) (::tanf(x))
#define __powf(x, y) (::powf((x), (y)))
#define __sincosf(x, s, c) (::sincosf((x), (s), (c)))
static inline float __fdividef(float a, float b) { return a / b; }
static inline float __frcp_rn(float a) { return 1.0f / a; }
static inline float __fsqrt_rn(float a) { return sqrtf(a); }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
static inline double __dadd_rn(double a, double b) { return a + b; }
static inline double __dmul_rn(double a, double b) { return a * b; }
static inline float rsqrtf(float a) { return 1.0f / sqrtf(a); }
static inline double rsqrt(double a) { return 1.0 / sqrt(a); }
static inline float __frsqrt_rn(float a) { return 1.0f / sqrtf(a); }
static inline float rcbrtf(float a) { return 1.0f / cbrtf(a); }
static inline float __saturatef(float a) { return a >= 1.0f ? 1.0f : (a > 0.0f ? a : 0.0f); }  // NaN -> 0
static inline float saturate(float a) { return __saturatef(a); }
static inline float normcdff(float a) { return 0.5f * erfcf(-a * 0.70710678118654752f); }
static inline void sincospif(float a, float *s, float *c) {
    *s = sinf(a * 3.14159265358979f);
    *c = cosf(a * 3.14159265358979f);
}
static inline float sinpif(float a) { return sinf(a * 3.14159265358979f); }
static inline float cospif(float a) { return cosf(a * 3.14159265358979f); }

// ---------------------------------------------------------------------------------
// bf16 and f16. Conversions from float round to nearest even (NaN -> canonical NaN,
// overflow -> inf, subnormals kept) like cvt.rn.bf16.f32 / cvt.rn.f16.f32.
// Arithmetic converts to float, computes, rounds back (one rounding per operation).
namespace simt {
static inline uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline unsigned short f32_to_bf16_rn(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
    uint32_t lsb = (u >> 16) & 1u;
    return (unsigned short)((u + 0x7fffu + lsb) >> 16);
}
static inline unsigned short f32_to_bf16_rz(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
    return (unsigned short)(u >> 16);
}
// toward +inf (up = 1) or -inf (up = 0)
static inline unsigned short f32_to_bf16_dir(float f, int up) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
    unsigned short h = (unsigned short)(u >> 16);
    int neg = (int)(u >> 31);
    if ((u & 0xffffu) && (up != neg)) h++;  // away from zero on the side we round to
    return h;
}
static inline float bf16_to_f32(unsigned short h) { return bits_f32((uint32_t)h << 16); }
static inline unsigned short f64_to_bf16_rn(double d) {
    // double -> bf16 with a single rounding: round the mantissa from 52 to 7 bits.
    if (d != d) return 0x7fff;
    float f = (float)d;  // round-to-odd-free path: exact when |d| fits float's 24 bits
    if ((double)f == d) return f32_to_bf16_rn(f);
    // inexact: choose between the two bf16 neighbours of d
    unsigned short lo = f32_to_bf16_rz(f);
    float flo = bf16_to_f32(lo);
    if (fabs((double)flo) > fabs(d)) lo = (unsigned short)(lo - 1), flo = bf16_to_f32(lo);
    unsigned short hi = (unsigned short)(lo + 1);
    double dlo = fabs(d - (double)flo), dhi = fabs((double)bf16_to_f32(hi) - d);
    if (dlo < dhi) return lo;
    if (dhi < dlo) return hi;
    return (lo & 1) ? hi : lo;
}
static inline unsigned short f32_to_f16_rn(float f) {
    uint32_t u = f32_bits(f);
    uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return 0x7fff;                        // NaN (canonical)
    if (a >= 0x477ff000u) return (unsigned short)(sign | 0x7c00u);  // >= 65520 rounds to inf
    if (a < 0x38800000u) {                                         // f16 subnormal range
        uint32_t m = (a & 0x7fffffu) | 0x800000u;                  // 24-bit significand
        // value = m * 2^(e-150); the f16 subnormal unit is 2^-24, so q = m * 2^(e-126)
        int shift = 126 - (int)(a >> 23);
        if (a < 0x33000000u) return (unsigned short)sign;          // < 2^-25: rounds to 0
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (unsigned short)(sign | q);
    }
    uint32_t h = ((((a >> 23) - 112u) << 10) | ((a & 0x7fffffu) >> 13));
    uint32_t rest = a & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
    return (unsigned short)(sign | h);
}
static inline float f16_to_f32(unsigned short h) {
    uint32_t sign = ((uint32_t)h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) {
        float v = (float)m * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    if (e == 31) return bits_f32(sign | 0x7f800000u | (m << 13));
    return bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}
}  // namespace simt

struct __nv_bfloat16_raw {
    unsigned short x;
};
struct __half_raw {
    unsigned short x;
};

#define SIMT_HALF_TYPE(T, RAW, TO16, FROM16, F64TO16)                                           \
    struct __attribute__((aligned(2))) T {                                                      \
        unsigned short __x;                                                                     \
        T() = default;                                                                          \
        constexpr T(const RAW &r) : __x(r.x) {}                                                 \
        T(float f) : __x(TO16(f)) {}                                                            \
        T(double d) : __x(F64TO16(d)) {}                                                        \
        T(int i) : __x(F64TO16((double)i)) {}                                                   \
        T(unsigned i) : __x(F64TO16((double)i)) {}                                              \
        T(long long i) : __x(F64TO16((double)i)) {}                                            \
        T(unsigned long long i) : __x(F64TO16((double)i)) {}                                   \
        T(short i) : __x(TO16((float)i)) {}                                                     \
        T(unsigned short i) : __x(TO16((float)i)) {}                                            \
        operator float() const { return FROM16(__x); }                                          \
        operator RAW() const { return RAW{__x}; }                                               \
        explicit operator bool() const { return (__x & 0x7fffu) != 0; }                         \
        T &operator=(const RAW &r) { __x = r.x; return *this; }                                 \
        T &operator+=(const T &o) { *this = T(float(*this) + float(o)); return *this; }        \
        T &operator-=(const T &o) { *this = T(float(*this) - float(o)); return *this; }        \
        T &operator*=(const T &o) { *this = T(float(*this) * float(o)); return *this; }        \
        T &operator/=(const T &o) { *this = T(float(*this) / float(o)); return *this; }        \
    };                                                                                          \
    static inline T operator+(const T &a, const T &b) { return T(float(a) + float(b)); }       \
    static inline T operator-(const T &a, const T &b) { return T(float(a) - float(b)); }       \
    static inline T operator*(const T &a, const T &b) { return T(float(a) * float(b)); }       \
    static inline T operator/(const T &a, const T &b) { return T(float(a) / float(b)); }       \
    static inline T operator-(const T &a) { T r = a; r.__x ^= 0x8000u; return r; }            \
    static inline T operator+(const T &a) { return a; }                                         \
    static inline bool operator==(const T &a, const T &b) { return float(a) == float(b); }     \
    static inline bool operator!=(const T &a, const T &b) { return float(a) != float(b); }     \
    static inline bool operator<(const T &a, const T &b) { return float(a) < float(b); }       \
    static inline bool operator<=(const T &a, const T &b) { return float(a) <= float(b); }     \
    static inline bool operator>(const T &a, const T &b) { return float(a) > float(b); }       \
    static inline bool operator>=(const T &a, const T &b) { return float(a) >= float(b); }

static inline unsigned short simt_f64_to_f16_(double d) {
    float f = (float)d;  // double rounding is possible for f16 ties in the low float bits
    return simt::f32_to_f16_rn(f);
}
SIMT_HALF_TYPE(__nv_bfloat16, __nv_bfloat16_raw, ::simt::f32_to_bf16_rn, ::simt::bf16_to_f32,
               ::simt::f64_to_bf16_rn)
SIMT_HALF_TYPE(__half, __half_raw, ::simt::f32_to_f16_rn, ::simt::f16_to_f32, simt_f64_to_f16_)
#undef SIMT_HALF_TYPE
typedef __nv_bfloat16 nv_bfloat16;
typedef __half half;

struct __attribute__((aligned(4))) __nv_bfloat162 {
    __nv_bfloat16 x, y;
};
struct __attribute__((aligned(4))) __half2 {
    __half x, y;
};
typedef __nv_bfloat162 nv_bfloat162;
typedef __half2 half2;

#define SIMT_PAIR_OPS(P, T)                                                                         \
    static inline P operator+(const P &a, const P &b) { return P{a.x + b.x, a.y + b.y}; }         \
    static inline P operator-(const P &a, const P &b) { return P{a.x - b.x, a.y - b.y}; }         \
    static inline P operator*(const P &a, const P &b) { return P{a.x * b.x, a.y * b.y}; }         \
    static inline P operator/(const P &a, const P &b) { return P{a.x / b.x, a.y / b.y}; }         \
    static inline P &operator+=(P &a, const P &b) { a = a + b; return a; }                        \
    static inline P &operator*=(P &a, const P &b) { a = a * b; return a; }                        \
    static inline P __hadd2(P a, P b) { return a + b; }                                            \
    static inline P __hsub2(P a, P b) { return a - b; }                                            \
    static inline P __hmul2(P a, P b) { return a * b; }                                            \
    static inline P __h2div(P a, P b) { return a / b; }                                            \
    static inline P __hfma2(P a, P b, P c) {                                                       \
        return P{T(fmaf(float(a.x), float(b.x), float(c.x))), T(fmaf(float(a.y), float(b.y), float(c.y)))}; \
    }                                                                                              \
    static inline P __hneg2(P a) { return P{-a.x, -a.y}; }

#define SIMT_SCALAR_OPS(T)                                                                      \
    static inline T __hadd(T a, T b) { return a + b; }                                         \
    static inline T __hsub(T a, T b) { return a - b; }                                         \
    static inline T __hmul(T a, T b) { return a * b; }                                         \
    static inline T __hdiv(T a, T b) { return a / b; }                                         \
    static inline T __hfma(T a, T b, T c) { return T(fmaf(float(a), float(b), float(c))); }    \
    static inline T __hneg(T a) { return -a; }                                                 \
    static inline T __habs(T a) { T r = a; r.__x &= 0x7fffu; return r; }                       \
    static inline T __hmax(T a, T b) { return float(a) >= float(b) || float(b) != float(b) ? a : b; } \
    static inline T __hmin(T a, T b) { return float(a) <= float(b) || float(b) != float(b) ? a : b; } \
    static inline bool __heq(T a, T b) { return a == b; }                                      \
    static inline bool __hne(T a, T b) { return a != b; }                                      \
    static inline bool __hlt(T a, T b) { return a < b; }                                       \
    static inline bool __hle(T a, T b) { return a <= b; }                                      \
    static inline bool __hgt(T a, T b) { return a > b; }                                       \
    static inline bool __hge(T a, T b) { return a >= b; }                                      \
    static inline bool __hisnan(T a) { return (a.__x & 0x7fffu) > simt_nan_threshold_(a); } \
    static inline T hexp(T a) { return T(expf(float(a))); }                                    \
    static inline T hlog(T a) { return T(logf(float(a))); }                                    \
    static inline T hsqrt(T a) { return T(sqrtf(float(a))); }                                  \
    static inline T hrsqrt(T a) { return T(1.0f / sqrtf(float(a))); }                          \
    static inline T htanh(T a) { return T(tanhf(float(a))); }

static inline unsigned simt_nan_threshold_(__nv_bfloat16) { return 0x7f80u; }
static inline unsigned simt_nan_threshold_(__half) { return 0x7c00u; }
SIMT_SCALAR_OPS(__nv_bfloat16)
SIMT_SCALAR_OPS(__half)
SIMT_PAIR_OPS(__nv_bfloat162, __nv_bfloat16)
SIMT_PAIR_OPS(__half2, __half)
#undef SIMT_SCALAR_OPS
#undef SIMT_PAIR_OPS

// bf16 conversions
static inline __nv_bfloat16 simt_bf16_bits_(unsigned short x) { __nv_bfloat16 r; r.__x = x; return r; }
static inline __nv_bfloat16 __float2bfloat16(float f) { return simt_bf16_bits_(simt::f32_to_bf16_rn(f)); }
static inline __nv_bfloat16 __float2bfloat16_rn(float f) { return simt_bf16_bits_(simt::f32_to_bf16_rn(f)); }
static inline __nv_bfloat16 __float2bfloat16_rz(float f) { return simt_bf16_bits_(simt::f32_to_bf16_rz(f)); }
static inline __nv_bfloat16 __float2bfloat16_ru(float f) { return simt_bf16_bits_(simt::f32_to_bf16_dir(f, 1)); }
static inline __nv_bfloat16 __float2bfloat16_rd(float f) { return simt_bf16_bits_(simt::f32_to_bf16_dir(f, 0)); }
static inline __nv_bfloat16 __double2bfloat16(double d) { return simt_bf16_bits_(simt::f64_to_bf16_rn(d)); }
static inline float __bfloat162float(__nv_bfloat16 h) { return simt::bf16_to_f32(h.__x); }
static inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }
static inline short __bfloat16_as_short(__nv_bfloat16 h) { return (short)h.__x; }
static inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short x) { return simt_bf16_bits_(x); }
static inline __nv_bfloat16 __short_as_bfloat16(short x) { return simt_bf16_bits_((unsigned short)x); }
static inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) {
    return __nv_bfloat162{__float2bfloat16(a), __float2bfloat16(b)};
}
static inline __nv_bfloat162 __float2bfloat162_rn(float a) { return __floats2bfloat162_rn(a, a); }
static inline __nv_bfloat162 __float22bfloat162_rn(float2 v) { return __floats2bfloat162_rn(v.x, v.y); }
static inline float2 __bfloat1622float2(__nv_bfloat162 v) {
    return make_float2(__bfloat162float(v.x), __bfloat162float(v.y));
}
static inline __nv_bfloat162 __halves2bfloat162(__nv_bfloat16 a, __nv_bfloat16 b) { return __nv_bfloat162{a, b}; }
static inline __nv_bfloat162 make_bfloat162(__nv_bfloat16 a, __nv_bfloat16 b) { return __nv_bfloat162{a, b}; }
static inline __nv_bfloat162 __bfloat162bfloat162(__nv_bfloat16 a) { return __nv_bfloat162{a, a}; }
static inline __nv_bfloat16 __low2bfloat16(__nv_bfloat162 v) { return v.x; }
static inline __nv_bfloat16 __high2bfloat16(__nv_bfloat162 v) { return v.y; }
static inline float __low2float(__nv_bfloat162 v) { return __bfloat162float(v.x); }
static inline float __high2float(__nv_bfloat162 v) { return __bfloat162float(v.y); }
static inline int __bfloat162int_rn(__nv_bfloat16 h) { return (int)nearbyintf(__bfloat162float(h)); }
static inline __nv_bfloat16 __int2bfloat16_rn(int i) { return simt_bf16_bits_(simt::f64_to_bf16_rn((double)i)); }

// f16 conversions
static inline __half simt_f16_bits_(unsigned short x) { __half r; r.__x = x; return r; }
static inline __half __float2half(float f) { return simt_f16_bits_(simt::f32_to_f16_rn(f)); }
static inline __half __float2half_rn(float f) { return simt_f16_bits_(simt::f32_to_f16_rn(f)); }
static inline float __half2float(__half h) { return simt::f16_to_f32(h.__x); }
static inline unsigned short __half_as_ushort(__half h) { return h.__x; }
static inline short __half_as_short(__half h) { return (short)h.__x; }
static inline __half __ushort_as_half(unsigned short x) { return simt_f16_bits_(x); }
static inline __half __short_as_half(short x) { return simt_f16_bits_((unsigned short)x); }
static inline __half2 __floats2half2_rn(float a, float b) { return __half2{__float2half(a), __float2half(b)}; }
static inline __half2 __float2half2_rn(float a) { return __floats2half2_rn(a, a); }
static inline __half2 __float22half2_rn(float2 v) { return __floats2half2_rn(v.x, v.y); }
static inline float2 __half22float2(__half2 v) { return make_float2(__half2float(v.x), __half2float(v.y)); }
static inline __half2 __halves2half2(__half a, __half b) { return __half2{a, b}; }
static inline __half2 make_half2(__half a, __half b) { return __half2{a, b}; }
static inline __half2 __half2half2(__half a) { return __half2{a, a}; }
static inline __half __low2half(__half2 v) { return v.x; }
static inline __half __high2half(__half2 v) { return v.y; }
static inline float __low2float(__half2 v) { return __half2float(v.x); }
static inline float __high2float(__half2 v) { return __half2float(v.y); }

// ---------------------------------------------------------------------------------
// Atomics: blocks run in parallel on OS threads, so these are real atomic operations
// (relaxed, like CUDA's). Float/double/bf16/f16 adds are compare-and-swap loops.
#define SIMT_ATOMIC_INT(T)                                                                               \
    static inline T atomicAdd(T *a, T v) { return __atomic_fetch_add(a, v, __ATOMIC_RELAXED); }         \
    static inline T atomicSub(T *a, T v) { return __atomic_fetch_sub(a, v, __ATOMIC_RELAXED); }         \
    static inline T atomicExch(T *a, T v) { return __atomic_exchange_n(a, v, __ATOMIC_RELAXED); }       \
    static inline T atomicAnd(T *a, T v) { return __atomic_fetch_and(a, v, __ATOMIC_RELAXED); }         \
    static inline T atomicOr(T *a, T v) { return __atomic_fetch_or(a, v, __ATOMIC_RELAXED); }           \
    static inline T atomicXor(T *a, T v) { return __atomic_fetch_xor(a, v, __ATOMIC_RELAXED); }         \
    static inline T atomicCAS(T *a, T cmp, T v) {                                                       \
        __atomic_compare_exchange_n(a, &cmp, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);             \
        return cmp;                                                                                     \
    }                                                                                                   \
    static inline T atomicMax(T *a, T v) {                                                              \
        T old = __atomic_load_n(a, __ATOMIC_RELAXED);                                                   \
        while (old < v && !__atomic_compare_exchange_n(a, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) { \
        }                                                                                               \
        return old;                                                                                     \
    }                                                                                                   \
    static inline T atomicMin(T *a, T v) {                                                              \
        T old = __atomic_load_n(a, __ATOMIC_RELAXED);                                                   \
        while (old > v && !__atomic_compare_exchange_n(a, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) { \
        }                                                                                               \
        return old;                                                                                     \
    }
SIMT_ATOMIC_INT(int)
SIMT_ATOMIC_INT(unsigned)
SIMT_ATOMIC_INT(long long)
SIMT_ATOMIC_INT(unsigned long long)
#undef SIMT_ATOMIC_INT
static inline unsigned short atomicCAS(unsigned short *a, unsigned short cmp, unsigned short v) {
    __atomic_compare_exchange_n(a, &cmp, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return cmp;
}
static inline unsigned atomicInc(unsigned *a, unsigned lim) {
    unsigned old = __atomic_load_n(a, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(a, &old, old >= lim ? 0u : old + 1u, true, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED)) {
    }
    return old;
}
static inline unsigned atomicDec(unsigned *a, unsigned lim) {
    unsigned old = __atomic_load_n(a, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(a, &old, (old == 0u || old > lim) ? lim : old - 1u, true,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    return old;
}
// Read-modify-write of a value of type T stored in an unsigned word U via CAS.
template <class T, class U, class F>
static inline T simt_atomic_rmw_(T *a, F f) {
    static_assert(sizeof(T) == sizeof(U), "size");
    U *w = reinterpret_cast<U *>(a);
    U old = __atomic_load_n(w, __ATOMIC_RELAXED), nw;
    T told, tnew;
    do {
        memcpy(&told, &old, sizeof(T));
        tnew = f(told);
        memcpy(&nw, &tnew, sizeof(T));
    } while (!__atomic_compare_exchange_n(w, &old, nw, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return told;
}
static inline float atomicAdd(float *a, float v) {
    return simt_atomic_rmw_<float, uint32_t>(a, [v](float x) { return x + v; });
}
static inline double atomicAdd(double *a, double v) {
    return simt_atomic_rmw_<double, uint64_t>(a, [v](double x) { return x + v; });
}
static inline float atomicExch(float *a, float v) {
    return simt_atomic_rmw_<float, uint32_t>(a, [v](float) { return v; });
}
static inline __nv_bfloat16 atomicAdd(__nv_bfloat16 *a, __nv_bfloat16 v) {
    return simt_atomic_rmw_<__nv_bfloat16, uint16_t>(a, [v](__nv_bfloat16 x) { return x + v; });
}
static inline __half atomicAdd(__half *a, __half v) {
    return simt_atomic_rmw_<__half, uint16_t>(a, [v](__half x) { return x + v; });
}
#define atomicAdd_block atomicAdd
#define atomicAdd_system atomicAdd
#define atomicCAS_block atomicCAS
#define atomicExch_block atomicExch
#define atomicMax_block atomicMax
#define atomicMin_block atomicMin

// ---------------------------------------------------------------------------------
// Kernel launch. simt_rewrite.pl turns `k<<<g, b, smem, stream>>>(args)` into
//   ::simt::launch("k", __FILE__, __LINE__, ::simt::LaunchConfig(g, b, smem, stream),
//                  [&](auto... a) { k(a...); }, args)
// The arguments are evaluated once on the host; every CUDA thread then calls the kernel
// with its own copies (kernel parameters are per-thread values, as on the GPU).
namespace simt {
struct LaunchConfig {
    dim3 grid, block;
    size_t smem;
    cudaStream_t stream;
    LaunchConfig(dim3 g, dim3 b, size_t s = 0, cudaStream_t st = 0) : grid(g), block(b), smem(s), stream(st) {}
};
typedef void (*ThreadFn)(const void *obj);
// Validates the configuration (errors go to cudaGetLastError), then runs every block.
void run_grid(const char *name, const char *file, int line, const LaunchConfig &cfg, ThreadFn fn, const void *obj);

template <class F, class... A>
static inline void launch(const char *name, const char *file, int line, const LaunchConfig &cfg, F &&f, A... args) {
    auto bound = [&f, args...]() { f(args...); };
    run_grid(name, file, line, cfg, [](const void *p) { (*static_cast<const decltype(bound) *>(p))(); }, &bound);
}
}  // namespace simt

// The C-style launch API: args[i] points at the i-th argument.
template <class... P, size_t... I>
static inline void simt_launch_args_(void (*f)(P...), void **args, std::index_sequence<I...>, dim3 g, dim3 b,
                                     size_t smem, cudaStream_t s) {
    ::simt::launch("cudaLaunchKernel", __FILE__, __LINE__, ::simt::LaunchConfig(g, b, smem, s),
                   [&](auto... a) { f(a...); }, *static_cast<std::decay_t<P> *>(args[I])...);
}
template <class... P>
static inline cudaError_t cudaLaunchKernel(void (*f)(P...), dim3 g, dim3 b, void **args, size_t smem = 0,
                                           cudaStream_t s = 0) {
    simt_launch_args_(f, args, std::index_sequence_for<P...>{}, g, b, smem, s);
    return cudaPeekAtLastError();
}

#endif  // SIMT_H
