// tensor.c: dtype table, tensor descriptors and bf16/f16 conversions.
#include "tensor.h"

#include <math.h>
#include <string.h>

#include "common.h"

size_t dtype_size(DType t) {
    switch (t) {
        case DT_F32: return 4;
        case DT_BF16: return 2;
        case DT_F16: return 2;
        default: CHECKM(0, "bad dtype");
    }
}

const char *dtype_name(DType t) {
    static const char *names[DT_COUNT] = {"f32", "bf16", "f16"};
    CHECK(t >= 0 && t < DT_COUNT);
    return names[t];
}

Tensor tensor_make(void *data, DType dt, Device dev, int ndim, const int64_t *shape) {
    CHECK(ndim >= 0 && ndim <= TENSOR_MAX_DIMS);
    Tensor t;
    memset(&t, 0, sizeof t);
    t.data = data;
    t.dtype = dt;
    t.device = dev;
    t.ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        CHECK(shape[i] >= 0);
        t.shape[i] = shape[i];
    }
    return t;
}

Tensor tensor_nhwc(void *data, DType dt, Device dev, int64_t b, int64_t h, int64_t w, int64_t c) {
    int64_t s[4] = {b, h, w, c};
    return tensor_make(data, dt, dev, 4, s);
}

int64_t tensor_numel(const Tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t tensor_bytes(const Tensor *t) { return (size_t)tensor_numel(t) * dtype_size(t->dtype); }

const char *tensor_shape_str(const Tensor *t, char *buf, size_t n) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, n - k, "[");
    for (int i = 0; i < t->ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

int tensor_same_shape(const Tensor *a, const Tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);                                            // round to nearest even
    return (uint16_t)(u >> 16);
}

float bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);  // NaN
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); // rounds to >= 65520: inf
    if (a < 0x38800000u) {                                    // below 2^-14: subnormal or zero
        // value * 2^24 rounded to nearest even gives the subnormal mantissa
        float v = bits_f32(a) * 16777216.0f;                  // exact (power of two)
        uint32_t m = (uint32_t)lrintf(v);                     // default rounding: nearest even
        return (uint16_t)(sign | m);
    }
    uint32_t e = ((a >> 23) - 127 + 15);
    uint32_t m = a & 0x7fffffu;
    uint32_t h = (e << 10) | (m >> 13);
    uint32_t rest = m & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;  // may carry into exponent: correct
    return (uint16_t)(sign | h);
}

float f16_to_f32(uint16_t h) {
    uint32_t sign = ((uint32_t)h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu;
    uint32_t m = h & 0x3ffu;
    if (e == 0) {
        float v = (float)m * (1.0f / 16777216.0f);  // m * 2^-24
        return sign ? -v : v;
    }
    if (e == 31) return bits_f32(sign | 0x7f800000u | (m << 13));
    return bits_f32(sign | ((e - 15 + 127) << 23) | (m << 13));
}

static float load_elem(const void *src, DType t, size_t i) {
    switch (t) {
        case DT_F32: return ((const float *)src)[i];
        case DT_BF16: return bf16_to_f32(((const uint16_t *)src)[i]);
        case DT_F16: return f16_to_f32(((const uint16_t *)src)[i]);
        default: CHECKM(0, "bad dtype");
    }
}

void convert_dtype(void *dst, DType dst_t, const void *src, DType src_t, size_t n) {
    if (dst_t == src_t) {
        if (dst != src) memcpy(dst, src, n * dtype_size(dst_t));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        float v = load_elem(src, src_t, i);
        switch (dst_t) {
            case DT_F32: ((float *)dst)[i] = v; break;
            case DT_BF16: ((uint16_t *)dst)[i] = f32_to_bf16(v); break;
            case DT_F16: ((uint16_t *)dst)[i] = f32_to_f16(v); break;
            default: CHECKM(0, "bad dtype");
        }
    }
}
