// test_vae_cuda.c: the AutoencoderKL (nn/vae*.c) on the CUDA backend against
// the CPU backend, in the tiny configuration "a" of tests/fixtures/vae/
// (block_out_channels (8, 16), 2 levels, groups 4): encoder forward and
// backward, decoder forward and backward, in f32 and bf16. The same model
// code drives both tables; this checks that every op the VAE uses (strided
// single-head attention with head dim C, asymmetric-padding stride-2 conv,
// upsample, GroupNorm+SiLU, 1x1 convs) runs on the CUDA side with the
// shapes the VAE gives it, and that the stack discipline holds on device
// memory.
//
// bf16: the CPU reference uses the bf16-rounded weights and inputs, so the
// difference is only the rounding of activations to bf16 (2^-9 relative per
// op) along ~25 chained ops and the bf16 GEMM operands: a random walk of
// ~sqrt(25) * 2^-9 ~ 1e-2 relative. Checked: relative L2 error <= 8e-2 and
// every element within 0.1 * max|ref|. Measured: L2 median 1.3e-2, worst
// 4.4e-2 (max-element 5.5e-2) for a GroupNorm scale gradient, a sum of
// dy * xhat over all positions that cancels, so its relative error is the
// terms' rounding times sum|terms| / |sum|. f32 agrees to 3e-6, so these are
// bf16 rounding, not logic; a wrong op or wiring gives O(1) errors.
#include <stdlib.h>
#include <string.h>

#include "../../kernels/common.h"
#include "../../kernels/cuda/backend_cuda.h"
#include "../../nn/vae.h"
#include "../test.h"
#include "gpu_test.h"

enum { B = 2, H = 16, W = 12, EH = 8, EW = 6, h = 3, w = 5, L = 4 };  // image HxW encodes to EHxEW; latent hxw
#define DIR "tests/fixtures/vae/a"

typedef struct {
    float *mom, *dx, *img, *dz, *grad;  // host results; grad [t.total] in our layout
    size_t total;
} Result;

// Runs encoder fwd+bwd and decoder fwd+bwd on backend be in dtype dt with the
// weights `wts` (host fp32, our layout). Returns 0 / -1.
static int run(const Backend *be, DType dt, const float *wts, const float *x, const float *dm, const float *z,
               const float *dimg, Result *r) {
    Vae m;
    Weights Wt;
    Ctx c;
    const size_t nx = (size_t)B * H * W * 3, nm = (size_t)B * EH * EW * 2 * L, nz = (size_t)B * h * w * L;
    int Hi, Wi;
    if (vae_load_diffusers_ex(&m, &Wt, DIR, VAE_BOTH, be, dt, 1) != 0) return -1;
    vae_image_hw(&m.cfg, h, w, &Hi, &Wi);
    const size_t ni = (size_t)B * Hi * Wi * 3;
    CHECK(weights_upload(&Wt, wts) == 0);
    CHECK(nn_ctx_init(&c, be, dt, 32 << 20, 32 << 20) == 0);
    c.stream = be->default_stream();
    c.train = 1;
    void *dx_ = be_put(be, dt, x, nx), *ddm = be_put(be, dt, dm, nm);
    void *dz_ = be_put(be, dt, z, nz), *ddi = be_put(be, dt, dimg, ni);
    void *mom = be->alloc(nm * dtype_size(dt)), *img = be->alloc(ni * dtype_size(dt));
    void *gx = be->alloc(nx * dtype_size(dt)), *gz = be->alloc(nz * dtype_size(dt));
    CHECK(be->memset(gx, 0, nx * dtype_size(dt)) == 0 && be->memset(gz, 0, nz * dtype_size(dt)) == 0);
    VaeEncSaved es;
    VaeDecSaved ds;
    int rc = vae_encoder_f(&c, &Wt, &m, mom, dx_, B, H, W, &es);
    if (rc == 0) rc = vae_encoder_b(&c, &Wt, &m, gx, ddm, &es);
    if (rc == 0) rc = vae_decoder_f(&c, &Wt, &m, img, dz_, B, h, w, &ds);
    if (rc == 0) rc = vae_decoder_b(&c, &Wt, &m, gz, ddi, &ds);
    if (rc == 0) {
        r->mom = be_get(be, dt, mom, nm);
        r->dx = be_get(be, dt, gx, nx);
        r->img = be_get(be, dt, img, ni);
        r->dz = be_get(be, dt, gz, nz);
        r->total = Wt.t.total;
        r->grad = be_get(be, DT_F32, Wt.grad, Wt.t.total);
    }
    void *all[] = {dx_, ddm, dz_, ddi, mom, img, gx, gz};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) be->free(all[i]);
    nn_ctx_free(&c);
    weights_free(&Wt);
    params_free(&Wt.t);
    return rc;
}

static void compare(const char *what, DType dt, const float *got, const float *want, size_t n) {
    double m = max_abs(want, n), worst = 0, e2 = 0, w2 = 0;
    for (size_t i = 0; i < n; i++) {
        double d = got[i] - want[i];
        worst = fmax(worst, fabs(d));
        e2 += d * d, w2 += (double)want[i] * want[i];
    }
    double l2 = w2 > 0 ? sqrt(e2 / w2) : sqrt(e2);
    if (getenv("VAE_VERBOSE"))
        printf("      %s %-50s max err / max|ref| = %.2e  L2 rel = %.2e\n", dtype_name(dt), what, worst / m, l2);
    if (dt == DT_F32) {
        // summation order only (GEMM/conv K <= 144, GroupNorm over <= 384 values)
        EXPECT_CLOSE(what, got, want, n, 1e-4 * m, 1e-4);
    } else {
        // see the header: relative L2 error ~1e-2 typical; the max error is
        // larger for gradients that are cancelling sums (GroupNorm scales)
        EXPECT(l2 <= 8e-2, "%s: bf16 relative L2 error %.3g > 8e-2", what, l2);
        EXPECT_CLOSE(what, got, want, n, 1e-1 * m, 0);
    }
}

TEST(vae_cuda_matches_cpu) {
    if (!gpu_ready()) return;
    const Backend *cuda = cuda_backend();
    EXPECT(cuda != NULL, "no CUDA table: %s", a2f_last_error());
    if (!cuda) return;
    Vae m;
    Weights W0;
    if (vae_load_diffusers_ex(&m, &W0, DIR, VAE_BOTH, cpu_backend(), DT_F32, 0) != 0) {
        EXPECT(0, "load: %s", a2f_last_error());
        return;
    }
    const size_t total = W0.t.total, nx = (size_t)B * H * W * 3, nm = (size_t)B * EH * EW * 2 * L;
    const size_t nz = (size_t)B * h * w * L, ni = (size_t)B * 6 * 10 * 3;
    float *wts = xmalloc(total * 4), *wr = xmalloc(total * 4);
    CHECK(weights_download(&W0, wts) == 0);
    float *x = xmalloc(nx * 4), *dm = xmalloc(nm * 4), *z = xmalloc(nz * 4), *dimg = xmalloc(ni * 4);
    uint64_t st = 5;
    test_fill_normal(x, nx, 1.0f, &st);
    test_fill_normal(dm, nm, 1.0f, &st);
    test_fill_normal(z, nz, 1.0f, &st);
    test_fill_normal(dimg, ni, 1.0f, &st);
    DType dts[2] = {DT_F32, DT_BF16};
    for (int k = 0; k < 2; k++) {
        DType dt = dts[k];
        // both sides see the same (rounded) weights and inputs
        memcpy(wr, wts, total * 4);
        round_through(wr, total, dt);
        round_through(x, nx, dt), round_through(dm, nm, dt), round_through(z, nz, dt), round_through(dimg, ni, dt);
        Result rc = {0}, rg = {0};
        EXPECT(run(cpu_backend(), DT_F32, wr, x, dm, z, dimg, &rc) == 0, "cpu: %s", a2f_last_error());
        EXPECT(run(cuda, dt, wr, x, dm, z, dimg, &rg) == 0, "cuda %s: %s", dtype_name(dt), a2f_last_error());
        if (rc.mom && rg.mom) {
            compare("moments", dt, rg.mom, rc.mom, nm);
            compare("enc dx", dt, rg.dx, rc.dx, nx);
            compare("image", dt, rg.img, rc.img, ni);
            compare("dec dz", dt, rg.dz, rc.dz, nz);
            // every parameter gradient, each against its own scale
            for (int i = 0; i < W0.t.count; i++) {
                const ParamEntry *e = &W0.t.entries[i];
                size_t len = strlen(e->name);
                if (len > 9 && strcmp(e->name + len - 9, "to_k.bias") == 0) continue;  // exactly 0 (softmax shift)
                compare(e->name, dt, rg.grad + e->offset, rc.grad + e->offset, e->numel);
            }
        }
        Result *rs[2] = {&rc, &rg};
        for (int j = 0; j < 2; j++)
            free(rs[j]->mom), free(rs[j]->dx), free(rs[j]->img), free(rs[j]->dz), free(rs[j]->grad);
    }
    free(wts), free(wr), free(x), free(dm), free(z), free(dimg);
    weights_free(&W0);
    params_free(&W0.t);
}
