// warp.cu (simt test): warp intrinsics against CPU loops -- an inclusive block scan
// built from __shfl_up_sync (odd n, partial last warp), __ballot_sync + __popc counts,
// __any_sync/__all_sync, __shfl_xor_sync butterflies, __shfl_sync broadcast with
// width 16, and __syncwarp with a partial mask.
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

// Inclusive scan of x within each block of 256 threads (8 warps).
__global__ void block_scan(const int *x, int *y, int n) {
    __shared__ int warp_tot[8];
    int i = blockIdx.x * blockDim.x + threadIdx.x, lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    int v = i < n ? x[i] : 0;
    for (int d = 1; d < 32; d *= 2) {
        int u = __shfl_up_sync(0xffffffffu, v, d);
        if (lane >= d) v += u;
    }
    if (lane == 31) warp_tot[w] = v;
    __syncthreads();
    if (w == 0) {
        int t = lane < 8 ? warp_tot[lane] : 0;
        for (int d = 1; d < 8; d *= 2) {
            int u = __shfl_up_sync(0xffffffffu, t, d);
            if (lane >= d) t += u;
        }
        if (lane < 8) warp_tot[lane] = t;
    }
    __syncthreads();
    if (w > 0) v += warp_tot[w - 1];
    if (i < n) y[i] = v;
}

// Per warp: ballot of x > 0, its popcount, any/all, xor-butterfly max, width-16 broadcast.
__global__ void votes(const int *x, unsigned *ballot, int *count, int *any, int *all, int *wmax, int *bcast) {
    int i = blockIdx.x * blockDim.x + threadIdx.x, lane = threadIdx.x & 31, w = i >> 5;
    int v = x[i];
    unsigned b = __ballot_sync(0xffffffffu, v > 0);
    int a = __any_sync(0xffffffffu, v > 90);
    int l = __all_sync(0xffffffffu, v > -90);
    int m = v;
    for (int o = 16; o > 0; o >>= 1) m = max(m, __shfl_xor_sync(0xffffffffu, m, o));
    bcast[i] = __shfl_sync(0xffffffffu, v, 3, 16);  // lane 3 of each half-warp
    if (lane < 16) __syncwarp(0x0000ffffu);        // a partial-mask barrier must not wait for lanes 16..31
    if (lane == 0) ballot[w] = b, count[w] = __popc(b), any[w] = a, all[w] = l, wmax[w] = m;
}

int main(void) {
    int ok = 1;
    const int n = 1000;  // 4 blocks, the last one partial
    int *hx = (int *)malloc(1024 * sizeof(int)), *hy = (int *)malloc(1024 * sizeof(int));
    unsigned s = 7;
    for (int i = 0; i < 1024; i++) { s = s * 1664525u + 1013904223u; hx[i] = (int)(s >> 24) % 201 - 100; }
    int *dx, *dy;
    cudaMalloc(&dx, 1024 * sizeof(int));
    cudaMalloc(&dy, 1024 * sizeof(int));
    cudaMemcpy(dx, hx, 1024 * sizeof(int), cudaMemcpyHostToDevice);
    block_scan<<<(n + 255) / 256, 256>>>(dx, dy, n);
    cudaMemcpy(hy, dy, n * sizeof(int), cudaMemcpyDeviceToHost);
    for (int i = 0, acc = 0; i < n; i++) {
        acc = (i % 256 == 0) ? hx[i] : acc + hx[i];
        if (hy[i] != acc) { if (ok) printf("FAIL scan[%d]: got %d want %d\n", i, hy[i], acc); ok = 0; }
    }

    const int nw = 1024 / 32;
    unsigned *db; int *dc, *da, *dl, *dm, *dbc;
    cudaMalloc(&db, nw * 4); cudaMalloc(&dc, nw * 4); cudaMalloc(&da, nw * 4);
    cudaMalloc(&dl, nw * 4); cudaMalloc(&dm, nw * 4); cudaMalloc(&dbc, 1024 * 4);
    votes<<<4, 256>>>(dx, db, dc, da, dl, dm, dbc);
    unsigned hb[nw]; int hc[nw], ha[nw], hl[nw], hm[nw], *hbc = (int *)malloc(1024 * 4);
    cudaMemcpy(hb, db, nw * 4, cudaMemcpyDeviceToHost); cudaMemcpy(hc, dc, nw * 4, cudaMemcpyDeviceToHost);
    cudaMemcpy(ha, da, nw * 4, cudaMemcpyDeviceToHost); cudaMemcpy(hl, dl, nw * 4, cudaMemcpyDeviceToHost);
    cudaMemcpy(hm, dm, nw * 4, cudaMemcpyDeviceToHost); cudaMemcpy(hbc, dbc, 1024 * 4, cudaMemcpyDeviceToHost);
    for (int w = 0; w < nw; w++) {
        unsigned b = 0; int c = 0, a = 0, l = 1, m = -1000;
        for (int j = 0; j < 32; j++) {
            int v = hx[w * 32 + j];
            if (v > 0) b |= 1u << j, c++;
            if (v > 90) a = 1;
            if (!(v > -90)) l = 0;
            if (v > m) m = v;
            int want = hx[w * 32 + (j / 16) * 16 + 3];
            if (hbc[w * 32 + j] != want) { if (ok) printf("FAIL bcast warp %d lane %d\n", w, j); ok = 0; }
        }
        if (hb[w] != b || hc[w] != c || ha[w] != a || hl[w] != l || hm[w] != m) {
            if (ok) printf("FAIL votes warp %d: ballot %08x/%08x count %d/%d any %d/%d all %d/%d max %d/%d\n", w,
                           hb[w], b, hc[w], c, ha[w], a, hl[w], l, hm[w], m);
            ok = 0;
        }
    }
    printf("%s warp\n", ok ? "PASS" : "FAIL");
    return ok ? 0 : 1;
}
