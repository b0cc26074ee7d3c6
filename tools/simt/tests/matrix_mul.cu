// matrix_mul.cu: the classic shared-memory tiled matrix multiply of the CUDA
// programming guide (template block size, 2-D grid, two barriers per tile),
// on sizes that are multiples of the tile as the sample requires. Prints PASS/FAIL.
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

// C[hA, wB] = A[hA, wA] @ B[wA, wB], row-major; one BLOCK x BLOCK tile of C per block.
template <int BLOCK>
__global__ void matrix_mul(float *C, const float *A, const float *B, int wA, int wB) {
    int bx = blockIdx.x, by = blockIdx.y, tx = threadIdx.x, ty = threadIdx.y;
    float acc = 0.0f;
    for (int t = 0; t < wA / BLOCK; t++) {
        __shared__ float As[BLOCK][BLOCK];
        __shared__ float Bs[BLOCK][BLOCK];
        As[ty][tx] = A[(by * BLOCK + ty) * wA + t * BLOCK + tx];
        Bs[ty][tx] = B[(t * BLOCK + ty) * wB + bx * BLOCK + tx];
        __syncthreads();
#pragma unroll
        for (int k = 0; k < BLOCK; k++) acc += As[ty][k] * Bs[k][tx];
        __syncthreads();
    }
    C[(by * BLOCK + ty) * wB + bx * BLOCK + tx] = acc;
}

int main(void) {
    const int BLOCK = 16, hA = 5 * BLOCK, wA = 3 * BLOCK, wB = 4 * BLOCK;
    size_t na = (size_t)hA * wA, nb = (size_t)wA * wB, nc = (size_t)hA * wB;
    float *A = (float *)malloc(na * 4), *B = (float *)malloc(nb * 4), *C = (float *)malloc(nc * 4);
    for (size_t i = 0; i < na; i++) A[i] = (float)((i * 7) % 13) / 13.0f - 0.5f;
    for (size_t i = 0; i < nb; i++) B[i] = (float)((i * 5) % 11) / 11.0f - 0.5f;
    float *dA, *dB, *dC;
    cudaMalloc((void **)&dA, na * 4);
    cudaMalloc((void **)&dB, nb * 4);
    cudaMalloc((void **)&dC, nc * 4);
    cudaMemcpy(dA, A, na * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(dB, B, nb * 4, cudaMemcpyHostToDevice);
    dim3 threads(BLOCK, BLOCK), grid(wB / BLOCK, hA / BLOCK);
    matrix_mul<BLOCK><<<grid, threads>>>(dC, dA, dB, wA, wB);
    cudaError_t err = cudaDeviceSynchronize();
    if (err == cudaSuccess) err = cudaGetLastError();
    cudaMemcpy(C, dC, nc * 4, cudaMemcpyDeviceToHost);
    int bad = err != cudaSuccess;
    for (int i = 0; i < hA; i++)
        for (int j = 0; j < wB; j++) {
            double ref = 0;
            for (int k = 0; k < wA; k++) ref += (double)A[i * wA + k] * B[k * wB + j];
            // fp32 dot product of 48 terms with |a b| <= 0.25: error <= 48 * 2^-24 * 12 ~ 3.4e-5
            bad += fabs(C[i * wB + j] - ref) > 1e-4;
        }
    cudaFree(dA), cudaFree(dB), cudaFree(dC);
    free(A), free(B), free(C);
    printf("matrix_mul %dx%dx%d: %s (%s)\n", hA, wB, wA, bad ? "FAIL" : "PASS", cudaGetErrorString(err));
    return bad ? 1 : 0;
}
