// api.cu (simt test): launch forms and the runtime API -- 3-D grids and blocks index
// every thread exactly once; kernel parameters are per-thread copies; templates with
// deduced and explicit arguments, namespaced kernels, function pointers, no-argument
// kernels, file-scope extern __shared__; __syncthreads_count/and/or over 1024 threads;
// __constant__ + cudaMemcpyToSymbol; atomicCAS/Exch/Min; launch-configuration errors
// (cudaGetLastError / cudaPeekAtLastError), the dynamic shared memory limit and
// cudaFuncSetAttribute, device properties, streams and events.
#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

static int g_ok = 1;
#define EXPECT(c) do { if (!(c)) { printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #c); g_ok = 0; } } while (0)

__constant__ int c_scale[4];
extern __shared__ float file_scope_smem[];

// Every thread of a 3-D grid increments its own global linear index.
__global__ void index3d(int *hits, int *scaled) {
    int bx = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    int tx = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    int id = bx * (blockDim.x * blockDim.y * blockDim.z) + tx;
    atomicAdd(&hits[id], 1);
    scaled[id] = id * c_scale[id % 4];
}

// Parameters are per-thread copies: modifying n in one thread must not affect others.
__global__ void param_copy(int *out, int n) {
    n += threadIdx.x;
    __syncthreads();
    out[threadIdx.x] = n;
}

template <typename T, int K>
__global__ void scale_t(T *x, T s) {
    x[threadIdx.x] = x[threadIdx.x] * s + (T)K;
}
template <typename T>
__global__ void add_t(T *x, T v) { x[threadIdx.x] += v; }

namespace ns {
__global__ void noarg(void) {}
__global__ void set(int *p, int v) { p[threadIdx.x] = v; }
}  // namespace ns

__global__ void votes1024(int *out) {
    int t = threadIdx.x;
    int c = __syncthreads_count(t % 3 == 0);
    int a = __syncthreads_and(t < 2000);
    int o = __syncthreads_or(t == 777);
    int z = __syncthreads_or(0);
    if (t == 0) out[0] = c, out[1] = a, out[2] = o, out[3] = z;
}

__global__ void dyn_smem_sum(const float *x, float *y) {
    file_scope_smem[threadIdx.x] = x[threadIdx.x];
    __syncthreads();
    y[threadIdx.x] = file_scope_smem[(threadIdx.x + 1) % blockDim.x];
}

__global__ void atomics(int *lock_sum, int *mn, unsigned *ex) {
    atomicMin(mn, 1000 - (int)(blockIdx.x * blockDim.x + threadIdx.x));
    atomicExch(ex, 7u);
    atomicCAS(&lock_sum[0], 0, 1 + (int)(blockIdx.x * blockDim.x + threadIdx.x));  // one thread wins
    atomicAdd(&lock_sum[1], 2);
}

int main(void) {
    // 3-D indexing: grid (3,2,2) x block (4,3,2) = 288 threads
    const int total = 3 * 2 * 2 * 4 * 3 * 2;
    int hscale[4] = {1, 2, 3, 4};
    EXPECT(cudaMemcpyToSymbol(c_scale, hscale, sizeof hscale) == cudaSuccess);
    int *hits, *scaled, hh[total], hs[total];
    cudaMalloc(&hits, sizeof hh);
    cudaMalloc(&scaled, sizeof hs);
    cudaMemset(hits, 0, sizeof hh);
    index3d<<<dim3(3, 2, 2),
              dim3(4, 3, 2)>>>(hits, scaled);  // configuration split over lines
    EXPECT(cudaGetLastError() == cudaSuccess);
    cudaMemcpy(hh, hits, sizeof hh, cudaMemcpyDeviceToHost);
    cudaMemcpy(hs, scaled, sizeof hs, cudaMemcpyDeviceToHost);
    for (int i = 0; i < total; i++) EXPECT(hh[i] == 1 && hs[i] == i * hscale[i % 4]);

    int *out, ho[1024];
    cudaMalloc(&out, sizeof ho);
    param_copy<<<1, 64>>>(out, 100);
    cudaMemcpy(ho, out, 64 * sizeof(int), cudaMemcpyDeviceToHost);
    for (int i = 0; i < 64; i++) EXPECT(ho[i] == 100 + i);

    float *xf, hf[32];
    for (int i = 0; i < 32; i++) hf[i] = (float)i;
    cudaMalloc(&xf, sizeof hf);
    cudaMemcpy(xf, hf, sizeof hf, cudaMemcpyHostToDevice);
    scale_t<float, 3><<<1, 32, 0, 0>>>(xf, 2.0f);
    add_t<<<1, 32>>>(xf, 0.5f);  // T deduced from the arguments
    cudaMemcpy(hf, xf, sizeof hf, cudaMemcpyDeviceToHost);
    for (int i = 0; i < 32; i++) EXPECT(hf[i] == (float)i * 2.0f + 3.0f + 0.5f);

    ns::noarg<<<2, 2>>>();
    void (*fp)(int *, int) = ns::set;
    fp<<<1, 8>>>(out, 42);
    cudaMemcpy(ho, out, 8 * sizeof(int), cudaMemcpyDeviceToHost);
    for (int i = 0; i < 8; i++) EXPECT(ho[i] == 42);

    votes1024<<<1, 1024>>>(out);
    cudaMemcpy(ho, out, 4 * sizeof(int), cudaMemcpyDeviceToHost);
    EXPECT(ho[0] == 342 && ho[1] == 1 && ho[2] == 1 && ho[3] == 0);

    // dynamic shared memory declared at file scope, 33 threads (a partial warp)
    float *dy;
    cudaMalloc(&dy, 33 * sizeof(float));
    for (int i = 0; i < 32; i++) hf[i] = (float)(i * i);
    cudaMemcpy(xf, hf, sizeof hf, cudaMemcpyHostToDevice);
    dyn_smem_sum<<<1, 32, 32 * sizeof(float)>>>(xf, dy);
    float hy[32];
    cudaMemcpy(hy, dy, sizeof hy, cudaMemcpyDeviceToHost);
    for (int i = 0; i < 32; i++) EXPECT(hy[i] == hf[(i + 1) % 32]);

    int *ls, *mn; unsigned *ex;
    cudaMalloc(&ls, 8); cudaMalloc(&mn, 4); cudaMalloc(&ex, 4);
    cudaMemset(ls, 0, 8);
    int big = 1 << 30;
    cudaMemcpy(mn, &big, 4, cudaMemcpyHostToDevice);
    atomics<<<4, 50>>>(ls, mn, ex);
    int hl[2], hmn; unsigned hex;
    cudaMemcpy(hl, ls, 8, cudaMemcpyDeviceToHost); cudaMemcpy(&hmn, mn, 4, cudaMemcpyDeviceToHost);
    cudaMemcpy(&hex, ex, 4, cudaMemcpyDeviceToHost);
    EXPECT(hl[1] == 400 && hmn == 1000 - 199 && hex == 7u && hl[0] >= 1 && hl[0] <= 200);

    // configuration errors: the kernel does not run, cudaGetLastError reports and clears
    cudaMemset(out, 0, 4);
    ns::set<<<1, 1025>>>(out, 5);
    EXPECT(cudaPeekAtLastError() == cudaErrorInvalidConfiguration);
    EXPECT(cudaGetLastError() == cudaErrorInvalidConfiguration);
    EXPECT(cudaGetLastError() == cudaSuccess);
    ns::set<<<dim3(1, 70000), 1>>>(out, 5);
    EXPECT(cudaGetLastError() == cudaErrorInvalidConfiguration);
    ns::set<<<0, 32>>>(out, 5);
    EXPECT(cudaGetLastError() == cudaErrorInvalidConfiguration);
    cudaMemcpy(ho, out, 4, cudaMemcpyDeviceToHost);
    EXPECT(ho[0] == 0);
    dyn_smem_sum<<<1, 32, 100 * 1024>>>(xf, dy);  // > 48 KB without the attribute
    EXPECT(cudaGetLastError() == cudaErrorInvalidValue);
    EXPECT(cudaFuncSetAttribute(dyn_smem_sum, cudaFuncAttributeMaxDynamicSharedMemorySize, 100 * 1024) == cudaSuccess);
    dyn_smem_sum<<<1, 32, 100 * 1024>>>(xf, dy);
    EXPECT(cudaGetLastError() == cudaSuccess);
    EXPECT(cudaFree((void *)0x1234) == cudaErrorInvalidDevicePointer);
    cudaGetLastError();
    EXPECT(strcmp(cudaGetErrorString(cudaErrorInvalidConfiguration), "invalid configuration argument") == 0);

    cudaDeviceProp p;
    EXPECT(cudaGetDeviceProperties(&p, 0) == cudaSuccess);
    EXPECT(p.warpSize == 32 && p.major == 9 && p.maxThreadsPerBlock == 1024 && p.sharedMemPerBlock == 48 * 1024);

    cudaStream_t st;
    cudaEvent_t e0, e1;
    EXPECT(cudaStreamCreate(&st) == cudaSuccess);
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    cudaEventRecord(e0, st);
    ns::set<<<1, 8, 0, st>>>(out, 9);
    cudaMemcpyAsync(ho, out, 8 * sizeof(int), cudaMemcpyDeviceToHost, st);
    cudaEventRecord(e1, st);
    EXPECT(cudaStreamSynchronize(st) == cudaSuccess);
    float ms = -1;
    EXPECT(cudaEventElapsedTime(&ms, e0, e1) == cudaSuccess && ms >= 0.0f);
    EXPECT(ho[7] == 9);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cudaStreamDestroy(st);
    cudaFree(hits); cudaFree(scaled); cudaFree(out); cudaFree(xf); cudaFree(dy);
    cudaFree(ls); cudaFree(mn); cudaFree(ex);
    printf("%s api\n", g_ok ? "PASS" : "FAIL");
    return g_ok ? 0 : 1;
}
