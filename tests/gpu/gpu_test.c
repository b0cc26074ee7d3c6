// gpu_test.c: device helpers for the CUDA kernel tests (see gpu_test.h).
#include "gpu_test.h"

#include <math.h>
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

double atol_k(long K) { return 2e-6 * (double)(K + 1); }

double rtol_out(DType dt, int roundings) { return dt == DT_BF16 ? roundings * dtype_eps(dt) + 1e-5 : 1e-5; }

float *hnew(size_t n) { return hnew_bytes(n * sizeof(float)); }

void *hnew_bytes(size_t bytes) { return track_host(xcalloc(bytes ? bytes : 1, 1)); }

float *hrand_offset(size_t n, float sd, float offset, uint64_t *st, DType dt) {
    float *h = hnew(n);
    test_fill_normal(h, n, sd, st);
    if (offset != 0.0f)
        for (size_t i = 0; i < n; i++) h[i] += offset;
    round_through(h, n, dt);
    return h;
}

float *hrand(size_t n, float sd, uint64_t *st, DType dt) { return hrand_offset(n, sd, 0.0f, st, dt); }

float *hcopy(const float *a, size_t n) { return track_host(copy_buf(a, n)); }

void *dput(const float *h, size_t n, DType dt, int off) {
    float *t = hnew(n + off);
    memcpy(t + off, h, n * sizeof(float));
    return (char *)gpu_put(t, n + off, dt) + (size_t)off * dtype_size(dt);
}

void expect_rounded(const char *what, const void *d, float *want, size_t n, DType dt) {
    round_through(want, n, dt);
    EXPECT_CLOSE(what, gpu_get(d, n, dt), want, n, 0.0, 0.0);
}

float *rand_buf(size_t n, DType dt, uint64_t *rng) {
    float *h = xmalloc((n ? n : 1) * sizeof(float));
    test_fill_normal(h, n, 1.0f, rng);
    round_through(h, n, dt);
    return h;
}

float *copy_buf(const float *h, size_t n) {
    float *c = xmalloc((n ? n : 1) * sizeof(float));
    memcpy(c, h, n * sizeof(float));
    return c;
}

double max_abs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

void *be_put(const Backend *be, DType dt, const float *h, size_t n) {
    void *d = be->alloc(n * dtype_size(dt));
    void *tmp = xmalloc(n * dtype_size(dt));
    convert_dtype(tmp, dt, h, DT_F32, n);
    CHECK(d && be->upload(d, tmp, n * dtype_size(dt)) == 0);
    free(tmp);
    return d;
}

float *be_get(const Backend *be, DType dt, const void *d, size_t n) {
    void *tmp = xmalloc(n * dtype_size(dt));
    float *f = xmalloc(n * sizeof(float));
    CHECK(be->sync() == 0 && be->download(tmp, d, n * dtype_size(dt)) == 0);
    convert_dtype(f, DT_F32, tmp, dt, n);
    free(tmp);
    return f;
}

AttnShape attn_layout(int B, int H, int Nq, int Nk, int D, int causal, int fused, AttnLayout *L) {
    const int C = H * D;
    AttnShape s = {B, H, Nq, Nk, D, causal, 0, 0, 0, 0, 0, 0, 0, 0};
    L->no = (size_t)B * Nq * C;
    L->off_k = L->off_v = 0;
    if (fused) {
        s.q_st = s.k_st = s.v_st = 3 * C;
        s.q_sb = s.k_sb = s.v_sb = (long)Nq * 3 * C;
        L->nq = L->nk = L->nv = (size_t)B * Nq * 3 * C;
        L->off_k = C, L->off_v = 2 * C;
    } else {
        s.q_st = C, s.q_sb = (long)Nq * C;
        s.k_st = s.v_st = C, s.k_sb = s.v_sb = (long)Nk * C;
        L->nq = (size_t)B * Nq * C, L->nk = L->nv = (size_t)B * Nk * C;
    }
    s.o_st = C, s.o_sb = (long)Nq * C;
    return s;
}
