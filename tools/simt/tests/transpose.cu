// transpose.cu (simt test): tiled matrix transpose with 2-D blocks (32x8 threads, a
// 32x33 shared tile, 2-D grid) on odd shapes, compared exactly with a CPU transpose.
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

#define TILE 32
#define ROWS 8

// in: [rows, cols] -> out: [cols, rows]
__global__ void transpose(const float *__restrict__ in, float *__restrict__ out, int rows, int cols) {
    __shared__ float tile[TILE][TILE + 1];
    int x = blockIdx.x * TILE + threadIdx.x;
    int y = blockIdx.y * TILE + threadIdx.y;
    for (int j = 0; j < TILE; j += ROWS)
        if (x < cols && y + j < rows) tile[threadIdx.y + j][threadIdx.x] = in[(size_t)(y + j) * cols + x];
    __syncthreads();
    x = blockIdx.y * TILE + threadIdx.x;  // column in out = row in in
    y = blockIdx.x * TILE + threadIdx.y;
    for (int j = 0; j < TILE; j += ROWS)
        if (x < rows && y + j < cols) out[(size_t)(y + j) * rows + x] = tile[threadIdx.x][threadIdx.y + j];
}

int main(void) {
    const int shapes[][2] = {{1, 1}, {7, 13}, {33, 65}, {100, 37}, {64, 64}};
    int ok = 1;
    for (int s = 0; s < 5; s++) {
        int rows = shapes[s][0], cols = shapes[s][1];
        size_t n = (size_t)rows * cols;
        float *h = (float *)malloc(n * sizeof(float)), *r = (float *)malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) h[i] = (float)i * 0.5f - 3.0f;
        float *din, *dout;
        cudaMalloc(&din, n * sizeof(float));
        cudaMalloc(&dout, n * sizeof(float));
        cudaMemcpy(din, h, n * sizeof(float), cudaMemcpyHostToDevice);
        dim3 block(TILE, ROWS), grid((cols + TILE - 1) / TILE, (rows + TILE - 1) / TILE);
        transpose<<<grid, block>>>(din, dout, rows, cols);
        if (cudaGetLastError() != cudaSuccess) ok = 0;
        cudaMemcpy(r, dout, n * sizeof(float), cudaMemcpyDeviceToHost);
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++)
                if (r[(size_t)j * rows + i] != h[(size_t)i * cols + j]) {  // a copy: exact
                    if (ok) printf("FAIL %dx%d at (%d,%d): got %g want %g\n", rows, cols, i, j,
                                   r[(size_t)j * rows + i], h[(size_t)i * cols + j]);
                    ok = 0;
                }
        cudaFree(din);
        cudaFree(dout);
        free(h);
        free(r);
    }
    printf("%s transpose\n", ok ? "PASS" : "FAIL");
    return ok ? 0 : 1;
}
