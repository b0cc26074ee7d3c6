// test_iresnet_cuda.c: the face-recognition backbones (nn/iresnet.h) on the
// CUDA backend against the CPU backend, with the weights of the tiny fixtures
// tests/fixtures/iresnet/{iresnet_s1,irse_s1} (48x32 input, head 3x2, batch 4):
// eval-mode BN forward + backward, training-mode BN forward + backward (and
// the updated running statistics), in f32 and bf16; plus a bf16 inference
// forward with weights that have no fp32 master (running statistics from the
// compact fp32 copy, iresnet_bind_stats). One model code drives both tables.
//
// Tolerances (gradients with a floor of 1% of the largest parameter
// gradient: training-mode BN makes some bias gradients analytically zero):
//  - f32: summation order only: max error <= 1e-4 * max|ref| per tensor
//    (measured <= 2e-6).
//  - bf16: both sides see the same bf16-rounded weights and inputs; the CUDA
//    side rounds every activation and activation gradient to bf16 (2^-9
//    relative per op) through ~40 ops forward and as many backward, with
//    random untrained weights, and the small parameter tensors (8-32 channel
//    sums over ~1.5k positions) cancel heavily. Measured as the norm-wise
//    relative error ||got - ref|| / ||ref||: y <= 1.5e-2 (bound 5e-2), dx
//    <= 6.3e-2 (bound 1e-1), all parameter gradients together <= 1.3e-2 eval /
//    5.0e-2 training BN (bounds 5e-2 / 1e-1), the worst single tensor 7.9e-2
//    eval / 2.0e-1 training (bounds 0.2 / 0.4; the error grows with backward
//    depth, no single op stands out; training-mode BN divides by batch
//    standard deviations of bf16 values, which amplifies it). A wrong op or
//    wiring gives O(1); the f32 run is the tight check of the wiring.
#include <stdlib.h>
#include <string.h>

#include "../../kernels/common.h"
#include "../../kernels/cuda/backend_cuda.h"
#include "../../nn/iresnet.h"
#include "../test.h"
#include "gpu_test.h"

enum { B = 4, H = 48, W = 32 };

typedef struct {
    const char *file;
    int style, se, layers[4], widths[4], stem, emb;
} Case;

static const Case CASES[] = {
    {"iresnet_s1", IRES_INSIGHTFACE, 0, {2, 1, 1, 1}, {8, 8, 16, 16}, 8, 12},
    {"irse_s1", IRES_TREB1EN, 1, {2, 1, 1, 1}, {16, 16, 32, 32}, 16, 8},
};

typedef struct {
    float *y, *dx, *grad, *wts;  // host results; grad / wts [t.total] in our layout
} Result;

static IResNetConfig case_config(const Case *k) {
    IResNetConfig c = {k->style, k->se, {0}, {0}, k->stem, k->emb, H, W, 0.0f};
    memcpy(c.layers, k->layers, sizeof c.layers);
    memcpy(c.widths, k->widths, sizeof c.widths);
    return c;
}

static int skip_io(const char *key, char *out, size_t n) {
    if (strncmp(key, "io.", 3) == 0) return 0;
    return iresnet_keymap(key, out, n);
}

// One forward (+ backward when bwd) on backend be in dtype dt; train_w: weights
// with master + gradients (else inference weights, stats bound from wts).
static int run(const Backend *be, DType dt, const Case *k, const float *wts, int bn_train, int bwd, int train_w,
               const float *x, const float *dy, Result *r) {
    IResNet m;
    Weights Wt = {0};
    Ctx c;
    IResNetConfig cfg = case_config(k);
    const size_t nx = (size_t)B * H * W * 3, ny = (size_t)B * k->emb;
    CHECK(iresnet_build(&m, &Wt.t, &cfg) == 0);
    CHECK(weights_alloc(&Wt, be, dt, train_w) == 0 && weights_upload(&Wt, wts) == 0);
    CHECK(iresnet_bind_stats(&m, &Wt, wts) == 0);
    CHECK(nn_ctx_init(&c, be, dt, 16 << 20, 16 << 20) == 0);
    c.train = bwd;
    m.bn_train = bn_train;
    void *dx_ = be_put(be, dt, x, nx), *ddy = be_put(be, dt, dy, ny);
    void *y = be->alloc(ny * dtype_size(dt)), *gx = be->alloc(nx * dtype_size(dt));
    CHECK(y && gx && be->memset(gx, 0, nx * dtype_size(dt)) == 0);
    IResNetSaved *sv = xcalloc(1, sizeof *sv);
    int rc = iresnet_f(&c, &Wt, &m, y, dx_, B, bwd ? sv : NULL);
    if (rc == 0 && bwd) rc = iresnet_b(&c, &Wt, &m, gx, ddy, sv);
    if (rc == 0) {
        r->y = be_get(be, dt, y, ny);
        if (bwd) {
            r->dx = be_get(be, dt, gx, nx);
            r->grad = be_get(be, DT_F32, Wt.grad, Wt.t.total);
        }
        r->wts = xmalloc(Wt.t.total * sizeof(float));
        CHECK(be->sync() == 0 && weights_download(&Wt, r->wts) == 0);
    }
    void *all[] = {dx_, ddy, y, gx};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) be->free(all[i]);
    free(sv);
    nn_ctx_free(&c);
    weights_free(&Wt);
    params_free(&Wt.t);
    iresnet_free(&m);
    return rc;
}

// f32: max|got - want| <= tol * max(max|want|, floor). bf16: the norm-wise
// relative error ||got - want|| / max(||want||, floor * sqrt(n)) <= tol
// (bf16 noise is per element; a wiring error is O(1) in either measure).
// Accumulates ||err||^2 and ||ref||^2 into acc[2] (the global measure).
static void compare(const char *what, DType dt, const float *got, const float *want, size_t n, double tol,
                    double floor, double *acc) {
    double m = floor, err = 0, e2 = 0, w2 = 0;
    for (size_t i = 0; i < n; i++) {
        m = fmax(m, fabs(want[i])), err = fmax(err, fabs(got[i] - want[i]));
        e2 += ((double)got[i] - want[i]) * ((double)got[i] - want[i]), w2 += (double)want[i] * want[i];
    }
    const double nrm = sqrt(e2) / fmax(sqrt(w2), floor * sqrt((double)n));
    if (acc) acc[0] += e2, acc[1] += w2;
    if (getenv("IRESNET_VERBOSE")) printf("      %-40s max err / max|ref| %.2e  norm-wise %.2e\n", what, err / m, nrm);
    if (dt == DT_F32) EXPECT_CLOSE(what, got, want, n, tol * m, 0);
    else EXPECT(nrm <= tol, "%s: norm-wise relative error %.3g > %.3g", what, nrm, tol);
}

static void free_result(Result *r) { free(r->y), free(r->dx), free(r->grad), free(r->wts); }

static void run_case(const Backend *cuda, const Case *k) {
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/iresnet/%s.safetensors", k->file);
    const char *files[] = {path};
    IResNet m0;
    Weights W0 = {0};
    IResNetConfig cfg = case_config(k);
    CHECK(iresnet_build(&m0, &W0.t, &cfg) == 0);
    CHECK(weights_alloc(&W0, cpu_backend(), DT_F32, 0) == 0);
    if (weights_load(&W0, files, 1, skip_io) != 0) {
        EXPECT(0, "load: %s", a2f_last_error());
        weights_free(&W0), params_free(&W0.t);
        return;
    }
    const size_t total = W0.t.total, nx = (size_t)B * H * W * 3, ny = (size_t)B * k->emb;
    float *wts = xmalloc(total * 4), *wr = xmalloc(total * 4), *x = xmalloc(nx * 4), *dy = xmalloc(ny * 4);
    CHECK(weights_download(&W0, wts) == 0);
    uint64_t st = 11;
    test_fill_normal(x, nx, 1.0f, &st);
    test_fill_normal(dy, ny, 1.0f, &st);
    const DType dts[2] = {DT_F32, DT_BF16};
    for (int d = 0; d < 2; d++) {
        DType dt = dts[d];
        memcpy(wr, wts, total * 4);  // both sides see the same rounded values
        round_through(wr, total, dt), round_through(x, nx, dt), round_through(dy, ny, dt);
        for (int bn_train = 0; bn_train < 2; bn_train++) {
            // bf16 per-tensor bounds: outputs / input gradient, parameter gradients, all gradients together
            const double tol = dt == DT_F32 ? 1e-4 : 5e-2, tolp = dt == DT_F32 ? 1e-4 : bn_train ? 0.4 : 0.2;
            const double tolg = bn_train ? 0.1 : 5e-2;
            double acc[2] = {0, 0};
            Result rc = {0}, rg = {0};
            char what[PARAM_NAME_MAX + 64];
            EXPECT(run(cpu_backend(), DT_F32, k, wr, bn_train, 1, 1, x, dy, &rc) == 0, "cpu: %s", a2f_last_error());
            EXPECT(run(cuda, dt, k, wr, bn_train, 1, 1, x, dy, &rg) == 0, "cuda %s: %s", dtype_name(dt),
                   a2f_last_error());
            if (rc.y && rg.y) {
                snprintf(what, sizeof what, "%s %s bn_train %d y", k->file, dtype_name(dt), bn_train);
                compare(what, dt, rg.y, rc.y, ny, tol, 0, NULL);
                snprintf(what, sizeof what, "%s %s bn_train %d dx", k->file, dtype_name(dt), bn_train);
                compare(what, dt, rg.dx, rc.dx, nx, 2 * tol, 0, NULL);
                double S = 0;
                for (size_t i = 0; i < total; i++) S = fmax(S, fabs(rc.grad[i]));
                for (int i = 0; i < W0.t.count; i++) {
                    const ParamEntry *e = &W0.t.entries[i];
                    snprintf(what, sizeof what, "%s %s bn_train %d %s", k->file, dtype_name(dt), bn_train,
                             e->name);
                    if (e->trainable)  // gradients
                        compare(what, dt, rg.grad + e->offset, rc.grad + e->offset, e->numel, tolp, 1e-2 * S, acc);
                    else if (bn_train && strstr(e->name, "running_"))  // updated running stats
                        compare(what, dt, rg.wts + e->offset, rc.wts + e->offset, e->numel, tol, 0, NULL);
                }
                const double glob = sqrt(acc[0] / (acc[1] > 0 ? acc[1] : 1));
                if (getenv("IRESNET_VERBOSE")) printf("      %s %s bn_train %d all gradients: norm-wise %.2e\n", k->file,
                                                      dtype_name(dt), bn_train, glob);
                if (dt != DT_F32) EXPECT(glob <= tolg, "%s: gradients norm-wise %.3g > %.3g", what, glob, tolg);
            }
            free_result(&rc), free_result(&rg);
        }
        if (dt == DT_BF16) {  // inference weights: running stats from the compact fp32 copy
            Result rc = {0}, rg = {0};
            EXPECT(run(cpu_backend(), DT_F32, k, wr, 0, 0, 0, x, dy, &rc) == 0, "cpu: %s", a2f_last_error());
            EXPECT(run(cuda, dt, k, wr, 0, 0, 0, x, dy, &rg) == 0, "cuda bf16 inference: %s", a2f_last_error());
            if (rc.y && rg.y) compare("bf16 inference y", dt, rg.y, rc.y, ny, 5e-2, 0, NULL);
            free_result(&rc), free_result(&rg);
        }
    }
    free(wts), free(wr), free(x), free(dy);
    weights_free(&W0);
    params_free(&W0.t);
}

TEST(iresnet_cuda_matches_cpu) {
    if (!gpu_ready()) return;
    const Backend *cuda = cuda_backend();
    EXPECT(cuda != NULL, "no CUDA table: %s", a2f_last_error());
    if (!cuda) return;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) run_case(cuda, &CASES[i]);
}
