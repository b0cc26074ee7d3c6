// device.cu: device memory, copies and the default stream (see device.h).
#include <cuda_runtime.h>

#include "../common.h"
#include "device.h"

static cudaStream_t g_stream;
static int g_ready = 0;

static int fail(cudaError_t e, const char *what) {
    a2f_set_error("%s: %s", what, cudaGetErrorString(e));
    return -1;
}

extern "C" int dev_init(int ordinal) {
    if (g_ready) return 0;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) return fail(e, "cudaGetDeviceCount");
    if (ordinal < 0 || ordinal >= count) {
        a2f_set_error("CUDA device %d requested, %d present", ordinal, count);
        return -1;
    }
    if ((e = cudaSetDevice(ordinal)) != cudaSuccess) return fail(e, "cudaSetDevice");
    if ((e = cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking)) != cudaSuccess)
        return fail(e, "cudaStreamCreate");
    g_ready = 1;
    return 0;
}

extern "C" cudaStream_t dev_stream(void) { return g_stream; }

extern "C" int dev_describe(char *buf, size_t n) {
    int d = 0;
    cudaDeviceProp p;
    cudaError_t e = cudaGetDevice(&d);
    if (e == cudaSuccess) e = cudaGetDeviceProperties(&p, d);
    if (e != cudaSuccess) return fail(e, "cudaGetDeviceProperties");
    snprintf(buf, n, "%s, sm_%d%d, %.1f GiB", p.name, p.major, p.minor, p.totalGlobalMem / 1073741824.0);
    return 0;
}

extern "C" void *dev_malloc(size_t bytes) {
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        cudaGetLastError();  // clear the sticky-free error so later calls work
        a2f_set_error("cudaMalloc(%zu bytes): %s", bytes, cudaGetErrorString(e));
        return NULL;
    }
    return p;
}

extern "C" void dev_free(void *p) {
    if (p) cudaFree(p);
}

extern "C" int dev_upload(void *dst, const void *src, size_t bytes) {
    cudaError_t e = cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice);
    return e == cudaSuccess ? 0 : fail(e, "cudaMemcpy host->device");
}

extern "C" int dev_download(void *dst, const void *src, size_t bytes) {
    cudaError_t e = cudaStreamSynchronize(g_stream);
    if (e == cudaSuccess) e = cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost);
    return e == cudaSuccess ? 0 : fail(e, "cudaMemcpy device->host");
}

extern "C" int dev_memset(void *dst, int byte, size_t bytes) {
    cudaError_t e = cudaMemsetAsync(dst, byte, bytes, g_stream);
    return e == cudaSuccess ? 0 : fail(e, "cudaMemset");
}

extern "C" int dev_sync(void) {
    cudaError_t e = cudaStreamSynchronize(g_stream);
    return e == cudaSuccess ? 0 : fail(e, "kernel execution");
}

static void *g_ws;
static size_t g_ws_bytes;

extern "C" void *dev_workspace(size_t bytes) {
    if (bytes <= g_ws_bytes) return g_ws;
    if (g_ws) {
        cudaStreamSynchronize(g_stream);  // earlier launches may still read it
        cudaFree(g_ws);
    }
    g_ws = NULL;
    g_ws_bytes = 0;
    size_t want = bytes + bytes / 2;  // grow geometrically
    g_ws = dev_malloc(want);
    if (g_ws) g_ws_bytes = want;
    return g_ws;
}

extern "C" int dev_check(int status, const char *what) {
    return status == 0 ? 0 : fail((cudaError_t)status, what);
}
