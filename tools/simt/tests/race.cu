// race.cu (simt test): a kernel whose __syncthreads can be left out (argv[1] = "nosync").
// Without it, thread t reads s[t-1] that thread t-1 may not have written yet: correct
// when threads run in index order, wrong under SIMT_SHUFFLE for some seed -- which is
// what tests/test_simt.c asserts. With the barrier every order gives the right answer.
#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

__global__ void pair_sum(const int *x, int *y, int sync) {
    __shared__ int s[128];
    int t = threadIdx.x, i = blockIdx.x * blockDim.x + t;
    s[t] = x[i];
    if (sync) __syncthreads();
    y[i] = s[t] + (t > 0 ? s[t - 1] : 0);
}

int main(int argc, char **argv) {
    int sync = !(argc > 1 && strcmp(argv[1], "nosync") == 0);
    const int blocks = 4, n = blocks * 128;
    int hx[n], hy[n];
    for (int i = 0; i < n; i++) hx[i] = 3 * i + 1;
    int *dx, *dy;
    cudaMalloc(&dx, sizeof hx);
    cudaMalloc(&dy, sizeof hy);
    cudaMemcpy(dx, hx, sizeof hx, cudaMemcpyHostToDevice);
    pair_sum<<<blocks, 128>>>(dx, dy, sync);
    cudaMemcpy(hy, dy, sizeof hy, cudaMemcpyDeviceToHost);
    int bad = 0;
    for (int i = 0; i < n; i++) bad += hy[i] != hx[i] + (i % 128 ? hx[i - 1] : 0);
    printf("%s race (%s, %d wrong)\n", bad ? "FAIL" : "PASS", sync ? "sync" : "nosync", bad);
    return bad ? 1 : 0;
}
