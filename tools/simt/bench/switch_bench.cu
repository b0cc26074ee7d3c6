// switch_bench.cu: micro-benchmark of the SIMT emulator's fiber switching. A block of
// T threads passes K __syncthreads; every thread-barrier costs two context switches
// (fiber -> scheduler -> next fiber). Also times __shfl_xor_sync (a warp barrier per
// call) and an empty kernel launch. Build: tools/simt/simtcc -O2 switch_bench.cu -o b
#include <cuda_runtime.h>
#include <stdio.h>
#include <time.h>

__global__ void barriers(int k, int *out) {
    int v = threadIdx.x;
    for (int i = 0; i < k; i++) {
        v = v * 3 + 1;
        __syncthreads();
    }
    out[threadIdx.x] = v;
}

__global__ void shuffles(int k, int *out) {
    int v = threadIdx.x;
    for (int i = 0; i < k; i++) v += __shfl_xor_sync(0xffffffffu, v, i & 31);
    out[threadIdx.x] = v;
}

__global__ void empty(int *out) {
    if (out && threadIdx.x == 1024) out[0] = 0;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(void) {
    int *out;
    cudaMalloc(&out, 1024 * sizeof(int));
    const int threads[] = {32, 256, 1024};
    for (int ti = 0; ti < 3; ti++) {
        int t = threads[ti], k = 20000000 / t;
        barriers<<<1, t>>>(10, out);  // warm up (stacks mapped)
        double t0 = now();
        barriers<<<1, t>>>(k, out);
        double dt = now() - t0;
        double sw = 2.0 * t * k;
        printf("__syncthreads  block %4d: %6.1f M thread-barriers/s, %6.1f M context switches/s (%.1f ns each)\n",
               t, t * (double)k / dt / 1e6, sw / dt / 1e6, dt / sw * 1e9);
    }
    {
        int k = 200000;
        double t0 = now();
        shuffles<<<1, 256>>>(k, out);
        double dt = now() - t0;
        printf("__shfl_xor_sync block  256: %6.1f M lane-shuffles/s (%.1f ns per lane-shuffle)\n",
               256.0 * k / dt / 1e6, dt / (256.0 * k) * 1e9);
    }
    {
        int n = 20000;
        double t0 = now();
        for (int i = 0; i < n; i++) empty<<<1, 32>>>(out);
        double dt = now() - t0;
        printf("empty launch <<<1, 32>>>: %.2f us each; ", dt / n * 1e6);
        t0 = now();
        empty<<<10000, 256>>>(out);
        dt = now() - t0;
        printf("<<<10000, 256>>> %.1f M threads/s (all cores)\n", 2560000.0 / dt / 1e6);
    }
    cudaFree(out);
    return 0;
}
