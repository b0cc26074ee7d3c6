// vector_add.cu: the classic first CUDA program, written the way CUDA samples
// are (host buffers, cudaMalloc, copies, a 1-D grid, error checks, events),
// to show simtcc builds ordinary CUDA code unchanged. Prints PASS/FAIL.
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK_CUDA(call)                                                                      \
    do {                                                                                      \
        cudaError_t err = (call);                                                             \
        if (err != cudaSuccess) {                                                             \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(err)); \
            return 1;                                                                         \
        }                                                                                     \
    } while (0)

__global__ void vector_add(const float *a, const float *b, float *c, int n) {
    int i = blockDim.x * blockIdx.x + threadIdx.x;
    if (i < n) c[i] = a[i] + b[i];
}

int main(void) {
    const int n = 50000;
    size_t bytes = n * sizeof(float);
    float *ha = (float *)malloc(bytes), *hb = (float *)malloc(bytes), *hc = (float *)malloc(bytes);
    for (int i = 0; i < n; i++) {
        ha[i] = rand() / (float)RAND_MAX;
        hb[i] = rand() / (float)RAND_MAX;
    }
    float *da, *db, *dc;
    CHECK_CUDA(cudaMalloc((void **)&da, bytes));
    CHECK_CUDA(cudaMalloc((void **)&db, bytes));
    CHECK_CUDA(cudaMalloc((void **)&dc, bytes));
    CHECK_CUDA(cudaMemcpy(da, ha, bytes, cudaMemcpyHostToDevice));
    CHECK_CUDA(cudaMemcpy(db, hb, bytes, cudaMemcpyHostToDevice));
    cudaEvent_t t0, t1;
    CHECK_CUDA(cudaEventCreate(&t0));
    CHECK_CUDA(cudaEventCreate(&t1));
    int threads = 256, blocks = (n + threads - 1) / threads;
    CHECK_CUDA(cudaEventRecord(t0));
    vector_add<<<blocks, threads>>>(da, db, dc, n);
    CHECK_CUDA(cudaGetLastError());
    CHECK_CUDA(cudaEventRecord(t1));
    CHECK_CUDA(cudaEventSynchronize(t1));
    float ms = 0;
    CHECK_CUDA(cudaEventElapsedTime(&ms, t0, t1));
    CHECK_CUDA(cudaMemcpy(hc, dc, bytes, cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int i = 0; i < n; i++) bad += fabsf(ha[i] + hb[i] - hc[i]) > 1e-5f;  // one fp32 add: exact
    CHECK_CUDA(cudaFree(da));
    CHECK_CUDA(cudaFree(db));
    CHECK_CUDA(cudaFree(dc));
    free(ha), free(hb), free(hc);
    printf("vector_add: %d blocks x %d threads, %.3f ms, %d wrong: %s\n", blocks, threads, ms, bad, bad ? "FAIL" : "PASS");
    return bad ? 1 : 0;
}
