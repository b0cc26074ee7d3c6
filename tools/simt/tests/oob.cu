// oob.cu (simt test): an off-by-one kernel that writes one element past the end of a
// cudaMalloc'd buffer. Built with `simtcc --asan`, AddressSanitizer must report it
// with this file and the line marked OOB-LINE (tests/test_simt.c checks both).
#include <cuda_runtime.h>
#include <stdio.h>

__global__ void fill(float *y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) y[i] = 1.0f;  // OOB-LINE: should be i < n
}

int main(void) {
    const int n = 100;
    float *y;
    cudaMalloc(&y, n * sizeof(float));
    fill<<<(n + 1 + 63) / 64, 64>>>(y, n);
    cudaDeviceSynchronize();
    cudaFree(y);
    printf("no error detected\n");
    return 0;
}
