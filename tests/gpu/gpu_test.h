// gpu_test.h: helpers for the CUDA kernel tests in tests/gpu/.
//
// The same C test files run in two builds:
//  - build/test_cuda_emu: kernels/cuda/*.cu compiled by the SIMT emulator
//    (tools/simt/simtcc, with AddressSanitizer), part of `make test`;
//  - build/test_cuda_gpu: the same kernels compiled by nvcc, `make test-gpu`.
// Each test runs a CUDA launcher and compares with the CPU reference op
// (kernels/cpu/ops.h) on the same inputs. For bf16 the inputs are first
// rounded to bf16 on the host, so both sides see identical values and the
// tolerance only has to cover the output rounding and fp32 reordering.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "../../kernels/backend.h"
#include "../../kernels/cpu/ops.h"
#include "../../kernels/cuda/device.h"
#include "../../kernels/tensor.h"

// Initialises device 0 once; on failure marks the test failed and returns 0.
int gpu_ready(void);
// Uploads n floats as dtype dt (converted, RNE); returns device memory (freed by gpu_free_all).
void *gpu_put(const float *h, size_t n, DType dt);
// Allocates n elements of dt on the device filled with `value`.
void *gpu_fill(size_t n, DType dt, float value);
// Downloads n elements of dtype dt into a fresh host float array (freed by gpu_free_all).
float *gpu_get(const void *d, size_t n, DType dt);
// In-place host rounding through dt (identity for f32).
void round_through(float *h, size_t n, DType dt);
// Frees every buffer gpu_put/gpu_fill/gpu_get/dput and the tracked host helpers below handed out in this test.
void gpu_free_all(void);
// Relative tolerance of one rounding to dt: 2^-8 for bf16, 2^-23 for f32.
double dtype_eps(DType dt);
// Checks a launcher status and the stream; fails the test with the error line.
int gpu_ok(int status, const char *what);

// ---- GEMM / conv tolerances

// Absolute tolerance of a K-term fp32 sum of O(1) products: 2e-6 (K + 1).
double atol_k(long K);
// Relative tolerance of an output stored as dt after `roundings` roundings:
// roundings * dtype_eps + 1e-5 for bf16, 1e-5 otherwise.
double rtol_out(DType dt, int roundings);

// ---- host buffers freed by gpu_free_all (at most 1024 live with the device ones)

// Zeroed host array of n floats (one when n = 0).
float *hnew(size_t n);
// Zeroed host array of `bytes` bytes (one when 0), e.g. int32 indices.
void *hnew_bytes(size_t bytes);
// n values N(0, sd) + offset, rounded through dt (offset 0: nothing added).
float *hrand_offset(size_t n, float sd, float offset, uint64_t *st, DType dt);
// n values N(0, sd) rounded through dt (so the CPU sees what the GPU sees).
float *hrand(size_t n, float sd, uint64_t *st, DType dt);
// Copy of a[0..n).
float *hcopy(const float *a, size_t n);
// Device copy of h placed `off` elements into its allocation (off = 1: not 16-byte aligned).
void *dput(const float *h, size_t n, DType dt, int off);
// Exact comparison (atol = rtol = 0) of device d with want rounded in place once to dt.
void expect_rounded(const char *what, const void *d, float *want, size_t n, DType dt);

// ---- host buffers the caller frees (free())

// n values N(0, 1) rounded through dt.
float *rand_buf(size_t n, DType dt, uint64_t *rng);
// Copy of h[0..n).
float *copy_buf(const float *h, size_t n);
// max |x[i]| (0 for n = 0).
double max_abs(const float *x, size_t n);

// ---- backend memory (the CPU backend's memory is host memory); caller frees

// be->alloc of n elements of dt holding h converted to dt; aborts on failure.
void *be_put(const Backend *be, DType dt, const float *h, size_t n);
// be->sync, then n elements of dt at d as a fresh xmalloc'd float array; aborts on failure.
float *be_get(const Backend *be, DType dt, const void *d, size_t n);

// ---- attention layouts

// Element counts and offsets of one attention case: q, k, v either separate
// [B, Nq|Nk, H*D] tensors, or (fused, Nq = Nk) views of one [B, N, 3*H*D]
// tensor that nq = nk = nv all name, k and v at off_k = C and off_v = 2C.
typedef struct {
    size_t nq, nk, nv, no, off_k, off_v;
} AttnLayout;
// The AttnShape (strides filled) of that case; *L gets the counts and offsets.
AttnShape attn_layout(int B, int H, int Nq, int Nk, int D, int causal, int fused, AttnLayout *L);
