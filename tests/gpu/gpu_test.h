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
// Frees every buffer gpu_put/gpu_fill/gpu_get handed out in this test.
void gpu_free_all(void);
// Relative tolerance of one rounding to dt: 2^-8 for bf16, 2^-23 for f32.
double dtype_eps(DType dt);
// Checks a launcher status and the stream; fails the test with the error line.
int gpu_ok(int status, const char *what);
