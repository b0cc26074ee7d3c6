// gpu_test.c: device helpers for the CUDA kernel tests (see gpu_test.h).
#include "gpu_test.h"

#include <stdlib.h>
#include <string.h>

#include "../../kernels/common.h"
#include "../test.h"

#define MAX_LIVE 1024
static void *g_dev[MAX_LIVE];
static int g_ndev;
static void *g_host[MAX_LIVE];
static int g_nhost;

int gpu_ready(void) {
    if (dev_init(0) != 0) {
        test_fail(__FILE__, __LINE__, "no CUDA device: %s", a2f_last_error());
        return 0;
    }
    return 1;
}

static void *track_dev(void *p) {
    CHECK(g_ndev < MAX_LIVE);
    return g_dev[g_ndev++] = p;
}

static void *track_host(void *p) {
    CHECK(g_nhost < MAX_LIVE);
    return g_host[g_nhost++] = p;
}

void *gpu_put(const float *h, size_t n, DType dt) {
    size_t bytes = n * dtype_size(dt);
    void *tmp = xmalloc(bytes);
    convert_dtype(tmp, dt, h, DT_F32, n);
    void *d = dev_malloc(bytes);
    CHECKM(d != NULL, a2f_last_error());
    CHECKM(dev_upload(d, tmp, bytes) == 0, a2f_last_error());
    free(tmp);
    return track_dev(d);
}

void *gpu_fill(size_t n, DType dt, float value) {
    float *h = xmalloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++) h[i] = value;
    void *d = gpu_put(h, n, dt);
    free(h);
    return d;
}

float *gpu_get(const void *d, size_t n, DType dt) {
    size_t bytes = n * dtype_size(dt);
    void *tmp = xmalloc(bytes + 1);
    CHECKM(dev_download(tmp, d, bytes) == 0, a2f_last_error());
    float *h = xmalloc(n * sizeof(float) + 1);
    convert_dtype(h, DT_F32, tmp, dt, n);
    free(tmp);
    return track_host(h);
}

void round_through(float *h, size_t n, DType dt) {
    for (size_t i = 0; i < n; i++) {
        if (dt == DT_BF16) h[i] = bf16_to_f32(f32_to_bf16(h[i]));
        else if (dt == DT_F16) h[i] = f16_to_f32(f32_to_f16(h[i]));
    }
}

void gpu_free_all(void) {
    for (int i = 0; i < g_ndev; i++) dev_free(g_dev[i]);
    for (int i = 0; i < g_nhost; i++) free(g_host[i]);
    g_ndev = g_nhost = 0;
}

double dtype_eps(DType dt) { return dt == DT_BF16 ? 1.0 / 256 : dt == DT_F16 ? 1.0 / 2048 : 1.0 / 8388608; }

int gpu_ok(int status, const char *what) {
    if (dev_check(status, what) != 0 || dev_sync() != 0) {
        test_fail(__FILE__, __LINE__, "%s: %s", what, a2f_last_error());
        return 0;
    }
    return 1;
}
