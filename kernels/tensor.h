// tensor.h: dtypes, devices and a plain tensor descriptor.
//
// Activations are NHWC: an image batch is shape {B, H, W, C}; attention tokens
// {B, H*W, C} are the same memory. Tensors do not own memory: data points into
// an arena, a mapped file or a caller buffer.
#pragma once
#include <stdint.h>
#include <stddef.h>

typedef enum { DT_F32 = 0, DT_BF16 = 1, DT_F16 = 2, DT_COUNT } DType;
typedef enum { DEV_CPU = 0, DEV_CUDA = 1 } Device;

#define TENSOR_MAX_DIMS 8

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    void *data;
    DType dtype;
    Device device;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
} Tensor;

size_t dtype_size(DType t);
const char *dtype_name(DType t);  // "f32", "bf16", "f16"

// Builds a descriptor; ndim dims follow. shape entries must be >= 0.
Tensor tensor_make(void *data, DType dt, Device dev, int ndim, const int64_t *shape);
Tensor tensor_nhwc(void *data, DType dt, Device dev, int64_t b, int64_t h, int64_t w, int64_t c);
int64_t tensor_numel(const Tensor *t);
size_t tensor_bytes(const Tensor *t);
// Writes "[2, 64, 64, 320]" into buf.
const char *tensor_shape_str(const Tensor *t, char *buf, size_t n);
int tensor_same_shape(const Tensor *a, const Tensor *b);

// Scalar conversions. bf16/f16 are stored as uint16_t bit patterns.
// f32 -> bf16 and f32 -> f16 round to nearest even; NaN stays NaN, overflow gives inf.
uint16_t f32_to_bf16(float f);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
float f16_to_f32(uint16_t h);

// Converts n elements between dtypes on the CPU (src and dst must not overlap
// unless the dtypes are equal and src == dst).
void convert_dtype(void *dst, DType dst_t, const void *src, DType src_t, size_t n);

#ifdef __cplusplus
}
#endif
