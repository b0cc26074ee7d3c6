// test_scrfd_cuda.c: the SCRFD detector network (nn/scrfd.h) on the CUDA
// backend against the CPU backend, with the reduced-width fixture weights
// tests/fixtures/scrfd/scrfd_small.safetensors (real depths) loaded straight
// onto the device by scrfd_load, on a 64x96 input (the top-left of the
// fixture's letterboxed image, preprocessed as insightface does), in f32 and
// bf16; plus face_detect_ex end to end on the CUDA f32 backend (det 64x64).
//
// Tolerances:
//  - f32: summation order only: max error <= 1e-4 * max|ref| per output
//    (measured <= 1.3e-6 under the emulator; the CPU test bounds CPU vs torch
//    at 1e-5). Faces: same count, boxes within 1e-2 px, scores within 1e-4.
//  - bf16: the CPU reference sees the same bf16-rounded weights and input;
//    the CUDA side rounds every activation to bf16 (2^-9 relative) through
//    ~45 convs with random untrained weights. Norm-wise relative error
//    ||got - ref|| / ||ref|| per output <= 5e-2 (measured <= 1.8e-2; a wiring
//    error is O(1)); scores (sigmoid probabilities) are also checked max-abs
//    <= 5e-2 (measured <= 3.6e-3).
#include <stdlib.h>
#include <string.h>

#include "../../infer/detect.h"
#include "../../infer/resize.h"
#include "../../kernels/common.h"
#include "../../kernels/cuda/backend_cuda.h"
#include "../test.h"
#include "gpu_test.h"

#define WEIGHTS "tests/fixtures/scrfd/scrfd_small.safetensors"
enum { H = 64, W = 96, DET = 160 };
static const int PER[3] = {1, 4, 10};

// 9 outputs (host, fresh) of the network on backend be / dtype dt; weights host
// values `wts` in our layout (NULL: load the file onto the device directly).
static int run(const Backend *be, DType dt, const float *wts, const float *x, float *outs[9]) {
    Scrfd m;
    Weights Wt = {0};
    Ctx c;
    int rc;
    if (wts) {
        ScrfdConfig cfg;
        CHECK(scrfd_config_from_file(&cfg, WEIGHTS) == 0 && scrfd_build(&m, &Wt.t, &cfg) == 0);
        CHECK(weights_alloc(&Wt, be, dt, 0) == 0 && weights_upload(&Wt, wts) == 0);
    } else if (scrfd_load(&m, &Wt, WEIGHTS, be, dt) != 0) {
        return -1;
    }
    CHECK(nn_ctx_init(&c, be, dt, scrfd_act_bytes(&m, 1, H, W, dt) + (4 << 20), 256) == 0);
    void *dx = nn_push(&c, (size_t)H * W * 3), *out[9];
    size_t rows[9];
    for (int k = 0; k < 9; k++) rows[k] = scrfd_rows(&m, k % 3, H, W) * PER[k / 3], out[k] = nn_push(&c, rows[k]);
    void *tmp = xmalloc((size_t)H * W * 3 * dtype_size(dt));
    convert_dtype(tmp, dt, x, DT_F32, (size_t)H * W * 3);
    CHECK(be->upload(dx, tmp, (size_t)H * W * 3 * dtype_size(dt)) == 0);
    free(tmp);
    rc = scrfd_f(&c, &Wt, &m, out, dx, 1, H, W);
    for (int k = 0; k < 9 && rc == 0; k++) {
        void *h = xmalloc(rows[k] * dtype_size(dt));
        CHECK(be->sync() == 0 && be->download(h, out[k], rows[k] * dtype_size(dt)) == 0);
        outs[k] = xmalloc(rows[k] * sizeof(float));
        convert_dtype(outs[k], DT_F32, h, dt, rows[k]);
        free(h);
    }
    nn_ctx_free(&c);
    weights_free(&Wt);
    params_free(&Wt.t);
    return rc;
}

TEST(scrfd_cuda_matches_cpu) {
    if (!gpu_ready()) return;
    const Backend *cuda = cuda_backend();
    EXPECT(cuda != NULL, "no CUDA table: %s", a2f_last_error());
    if (!cuda) return;
    // host weights (our layout) and the input: top-left 64x96 of the letterboxed fixture image
    Scrfd m;
    Weights W0;
    if (scrfd_load(&m, &W0, WEIGHTS, cpu_backend(), DT_F32) != 0) {
        EXPECT(0, "load: %s", a2f_last_error());
        return;
    }
    const size_t total = W0.t.total, nx = (size_t)H * W * 3;
    float *wts = xmalloc(total * sizeof(float)), *wr = xmalloc(total * sizeof(float)), *x = xmalloc(nx * 4);
    CHECK(weights_download(&W0, wts) == 0);
    size_t rows[9];
    for (int k = 0; k < 9; k++) rows[k] = scrfd_rows(&m, k % 3, H, W) * PER[k / 3];
    uint8_t *img = xmalloc((size_t)DET * DET * 3);
    uint8_t src[3 * 7 * 5];
    for (int i = 0; i < 3 * 7 * 5; i++) src[i] = (uint8_t)(37 * i + 11);  // a small pattern, upscaled
    double ds;
    CHECK(letterbox_u8(img, DET, DET, src, 5, 7, &ds) == 0);
    for (int y = 0; y < H; y++)
        for (int xx = 0; xx < W; xx++)
            for (int ch = 0; ch < 3; ch++)
                x[((size_t)y * W + xx) * 3 + ch] = ((float)img[((size_t)y * DET + xx) * 3 + ch] - 127.5f) / 128.0f;
    free(img);
    const DType dts[2] = {DT_F32, DT_BF16};
    for (int d = 0; d < 2; d++) {
        const DType dt = dts[d];
        memcpy(wr, wts, total * sizeof(float));
        round_through(wr, total, dt);
        round_through(x, nx, dt);
        float *rc[9] = {NULL}, *rg[9] = {NULL};
        EXPECT(run(cpu_backend(), DT_F32, wr, x, rc) == 0, "cpu: %s", a2f_last_error());
        // f32: the file straight onto the device; bf16: the rounded host values
        EXPECT(run(cuda, dt, dt == DT_F32 ? NULL : wr, x, rg) == 0, "cuda %s: %s", dtype_name(dt), a2f_last_error());
        for (int k = 0; k < 9 && rc[k] && rg[k]; k++) {
            double mx = 0, err = 0, e2 = 0, w2 = 0;
            for (size_t i = 0; i < rows[k]; i++) {
                const double e = (double)rg[k][i] - rc[k][i];
                mx = fmax(mx, fabs(rc[k][i])), err = fmax(err, fabs(e)), e2 += e * e, w2 += (double)rc[k][i] * rc[k][i];
            }
            const double nrm = sqrt(e2 / (w2 > 0 ? w2 : 1));
            if (getenv("SCRFD_VERBOSE")) printf("      %s out.%d: max err %.3g of %.3g, norm-wise %.3g\n", dtype_name(dt), k,
                                                err, mx, nrm);
            if (dt == DT_F32) EXPECT(err <= 1e-4 * mx, "f32 out.%d: max err %.3g of max|ref| %.3g", k, err, mx);
            else {
                EXPECT(nrm <= 5e-2, "bf16 out.%d: norm-wise error %.3g", k, nrm);
                if (k < 3) EXPECT(err <= 5e-2, "bf16 scores out.%d: max err %.3g", k, err);
            }
        }
        for (int k = 0; k < 9; k++) free(rc[k]), free(rg[k]);
    }
    free(wts), free(wr), free(x);
    weights_free(&W0);
    params_free(&W0.t);
}

// x1 y1 x2 y2 score kps[10]
static void fields(const Face *f, float v[15]) {
    v[0] = f->x1, v[1] = f->y1, v[2] = f->x2, v[3] = f->y2, v[4] = f->score;
    memcpy(v + 5, f->kps, sizeof f->kps);
}

TEST(scrfd_cuda_face_detect) {
    if (!gpu_ready()) return;
    const Backend *cuda = cuda_backend();
    if (!cuda) return;
    enum { D = 64, IH = 45, IW = 61 };
    uint8_t img[IH * IW * 3];
    for (int i = 0; i < IH * IW * 3; i++) img[i] = (uint8_t)((i * 7919) >> 3);
    Face f[2][64];
    int n[2] = {-1, -1};
    const Backend *bes[2] = {cpu_backend(), cuda};
    for (int b = 0; b < 2; b++) {
        Scrfd m;
        Weights Wt;
        if (scrfd_load(&m, &Wt, WEIGHTS, bes[b], DT_F32) != 0) {
            EXPECT(0, "load on %s: %s", bes[b]->name, a2f_last_error());
            return;
        }
        Ctx c;
        CHECK(nn_ctx_init(&c, bes[b], DT_F32, face_detect_act_bytes(&m, D, D, DT_F32), 256) == 0);
        // a low threshold so that some anchors pass on this input
        EXPECT(face_detect_ex(&c, &Wt, &m, img, IH, IW, D, D, 0.05f, 0.4f, f[b], 64, &n[b]) == 0, "%s: %s",
               bes[b]->name, a2f_last_error());
        nn_ctx_free(&c);
        weights_free(&Wt);
        params_free(&Wt.t);
    }
    EXPECT(n[0] > 0 && n[0] == n[1], "faces: cpu %d, cuda %d", n[0], n[1]);
    if (getenv("SCRFD_VERBOSE")) printf("      face_detect det %d: %d faces\n", D, n[0]);
    for (int i = 0; i < n[0] && i < n[1]; i++) {
        float a[15], g[15];
        fields(&f[0][i], a), fields(&f[1][i], g);
        for (int k = 0; k < 15; k++)
            EXPECT(fabsf(a[k] - g[k]) <= (k == 4 ? 1e-4f : 1e-2f), "face %d field %d: cpu %g cuda %g", i, k, a[k], g[k]);
    }
}
