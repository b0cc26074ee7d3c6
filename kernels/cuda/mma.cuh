// mma.cuh: the tensor-core primitives the hand-written kernels use, as small
// device functions: mma.sync m16n8k16 (bf16 in, fp32 accumulate), ldmatrix
// (x1/x2/x4, plain and transposed) and cp.async (16 bytes, with zero fill).
//
// On the GPU each is one PTX instruction (inline asm). Under the SIMT
// emulator (SIMT_EMULATOR) the same functions are implemented in
// tools/simt/include/simt_mma.h with the fragment layouts of the PTX ISA, so
// kernels written against them are tested on the CPU.
//
// Fragment layouts (PTX ISA, "mma.m16n8k16" with .bf16; lane = threadIdx%32,
// g = lane / 4, t = lane % 4; each uint32_t holds two bf16, low half first):
//   A 16x16 row-major, uint32_t a[4]:
//     a[0] = A[g][2t..2t+1]     a[1] = A[g+8][2t..2t+1]
//     a[2] = A[g][2t+8..2t+9]   a[3] = A[g+8][2t+8..2t+9]
//   B 16x8 (k x n) "col", uint32_t b[2]:
//     b[0] = B[2t..2t+1][g]     b[1] = B[2t+8..2t+9][g]
//   C, D 16x8 fp32, float c[4]:
//     c[0..1] = C[g][2t..2t+1]  c[2..3] = C[g+8][2t..2t+1]
// ldmatrix .m8n8 .b16: lanes 8i..8i+7 give the row addresses (16 bytes
// each, shared memory) of matrix i; register i of every lane receives
// matrix i's elements (row lane/4, cols 2*(lane%4), +1); with .trans, the
// elements (rows 2*(lane%4), +1; col lane/4). x1 uses lanes 0-7, x2 0-15.
// cp.async: 16 bytes global -> shared, asynchronous; groups are committed
// with cp_async_commit() and waited for with cp_async_wait<N>() (at most N
// groups still in flight). Data is only guaranteed visible to other threads
// after cp_async_wait and a __syncthreads().
#pragma once
#include <cuda_runtime.h>
#include <stdint.h>
#include <string.h>

#ifdef SIMT_EMULATOR
#include <simt_mma.h>
#else

// D = A B + C, one warp-wide 16x8x16 bf16 product with fp32 accumulation.
__device__ __forceinline__ void mma_bf16_m16n8k16(float d[4], const uint32_t a[4], const uint32_t b[2],
                                                  const float c[4]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%10,%11,%12,%13};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
          "f"(c[3]));
}

__device__ __forceinline__ uint32_t smem_addr(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

__device__ __forceinline__ void ldmatrix_x1(uint32_t r[1], const void *row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(smem_addr(row)));
}
__device__ __forceinline__ void ldmatrix_x2(uint32_t r[2], const void *row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(smem_addr(row)));
}
__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void *row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(row)));
}
__device__ __forceinline__ void ldmatrix_x1_trans(uint32_t r[1], const void *row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(smem_addr(row)));
}
__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t r[2], const void *row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(smem_addr(row)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const void *row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(row)));
}

// 16 bytes global -> shared (both 16-byte aligned), bypassing L1.
__device__ __forceinline__ void cp_async_16(void *smem, const void *gmem) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_addr(smem)), "l"(gmem));
}
// As cp_async_16, but reads only src_bytes (0..16) and zero-fills the rest:
// src_bytes = 0 writes 16 zero bytes (padding, out-of-range rows).
__device__ __forceinline__ void cp_async_16_zfill(void *smem, const void *gmem, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(smem)), "l"(gmem),
                 "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

#endif  // SIMT_EMULATOR

// Two floats -> one uint32_t of two bf16 (low = lo), round to nearest even.
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    uint32_t u;
    memcpy(&u, &v, 4);  // not a pointer cast: g++ -O2 (emulator) enforces strict aliasing
    return u;
}
