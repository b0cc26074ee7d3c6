// reduce.cu (simt test): block sum reductions -- a shared-memory tree with __syncthreads
// and a warp-shuffle version -- over odd sizes and block sizes up to 1024, against a
// double-precision CPU sum. Prints PASS/FAIL; exit 0/1.
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { \
    printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, cudaGetErrorString(e_)); exit(1); } } while (0)

// One partial sum per block; blockDim.x must be a power of two <= 1024.
__global__ void reduce_tree(const float *x, float *partial, int n) {
    __shared__ float s[1024];
    int t = threadIdx.x;
    float v = 0.0f;
    for (int i = blockIdx.x * blockDim.x + t; i < n; i += blockDim.x * gridDim.x) v += x[i];
    s[t] = v;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
        if (t < stride) s[t] += s[t + stride];
        __syncthreads();
    }
    if (t == 0) partial[blockIdx.x] = s[0];
}

__device__ float warp_sum(float v) {
    for (int o = 16; o > 0; o /= 2) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}

// Warp shuffles, then one value per warp through shared memory; any blockDim.x % 32 == 0.
__global__ void reduce_shfl(const float *x, float *partial, int n) {
    __shared__ float warp_sums[32];
    int t = threadIdx.x, lane = t % 32, w = t / 32;
    float v = 0.0f;
    for (int i = blockIdx.x * blockDim.x + t; i < n; i += blockDim.x * gridDim.x) v += x[i];
    v = warp_sum(v);
    if (lane == 0) warp_sums[w] = v;
    __syncthreads();
    if (w == 0) {
        v = lane < (int)(blockDim.x / 32) ? warp_sums[lane] : 0.0f;
        v = warp_sum(v);
        if (lane == 0) partial[blockIdx.x] = v;
    }
}

static int check(const char *what, const float *hx, int n, int blocks, int threads, int shfl) {
    float *dx, *dp;
    CHECK(cudaMalloc(&dx, n * sizeof(float)));
    CHECK(cudaMalloc(&dp, blocks * sizeof(float)));
    CHECK(cudaMemcpy(dx, hx, n * sizeof(float), cudaMemcpyHostToDevice));
    if (shfl) reduce_shfl<<<blocks, threads>>>(dx, dp, n);
    else reduce_tree<<<blocks, threads>>>(dx, dp, n);
    CHECK(cudaGetLastError());
    CHECK(cudaDeviceSynchronize());
    float *hp = (float *)malloc(blocks * sizeof(float));
    CHECK(cudaMemcpy(hp, dp, blocks * sizeof(float), cudaMemcpyDeviceToHost));
    double got = 0, want = 0, mag = 0;
    for (int b = 0; b < blocks; b++) got += hp[b];
    for (int i = 0; i < n; i++) want += hx[i], mag += fabs(hx[i]);
    // fp32 partial sums: error grows like eps * sum|x| * log2(n); 1e-5 * sum|x| is ample
    int ok = fabs(got - want) <= 1e-5 * mag + 1e-6;
    if (!ok) printf("FAIL %s n=%d blocks=%d threads=%d: got %.9g want %.9g\n", what, n, blocks, threads, got, want);
    free(hp);
    CHECK(cudaFree(dx));
    CHECK(cudaFree(dp));
    return ok;
}

int main(void) {
    const int sizes[] = {1, 7, 1000, 100003};
    const int threads[] = {32, 128, 1024};
    int ok = 1;
    for (int si = 0; si < 4; si++) {
        int n = sizes[si];
        float *hx = (float *)malloc(n * sizeof(float));
        unsigned s = 12345u + n;
        for (int i = 0; i < n; i++) { s = s * 1664525u + 1013904223u; hx[i] = (float)(s >> 8) / 16777216.0f - 0.5f; }
        for (int ti = 0; ti < 3; ti++) {
            int blocks = (n + threads[ti] - 1) / threads[ti];
            if (blocks > 13) blocks = 13;  // grid-stride loop covers the rest
            ok &= check("tree", hx, n, blocks, threads[ti], 0);
            ok &= check("shfl", hx, n, blocks, threads[ti], 1);
        }
        free(hx);
    }
    printf("%s reduce\n", ok ? "PASS" : "FAIL");
    return ok ? 0 : 1;
}
