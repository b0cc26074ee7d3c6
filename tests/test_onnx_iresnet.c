// test_onnx_iresnet.c: ArcFace weights as released (ONNX) load and run. A tiny
// insightface IResNet was exported by torch.onnx.export (BatchNorm folded into
// the convs, as in arcface.onnx) and converted by tools/onnx2safetensors.py
// (tools/ref/make_onnx_fixture.py); the C network built from the converted
// file must reproduce the torch model's embeddings.
#include <stdlib.h>
#include <string.h>

#include "../kernels/common.h"
#include "../nn/iresnet.h"
#include "fixture.h"
#include "test.h"

static int skip_io(const char *key, char *out, size_t n) {
    if (strncmp(key, "io.", 3) == 0) return 0;
    return iresnet_keymap(key, out, n);
}

TEST(onnx_converted_iresnet_matches_torch) {
    enum { B = 3, HW = 32, E = 16 };
    Fixture *fx = fx_open("onnx/iresnet_tiny.safetensors");
    if (!fx) return;
    IResNetConfig cfg = {IRES_INSIGHTFACE, 0, {1, 2, 1, 1}, {8, 8, 16, 16}, 8, E, HW, HW, 0.0f};
    IResNet m;
    Weights W = {0};
    Ctx c;
    EXPECT(iresnet_build(&m, &W.t, &cfg) == 0, "build: %s", a2f_last_error());
    EXPECT(weights_alloc(&W, cpu_backend(), DT_F32, 0) == 0, "alloc");
    const char *files[] = {"tests/fixtures/onnx/iresnet_tiny.safetensors"};
    int rc = weights_load(&W, files, 1, skip_io);
    EXPECT(rc == 0, "load: %s", a2f_last_error());
    EXPECT(nn_ctx_init(&c, cpu_backend(), DT_F32, 16 << 20, 1 << 20) == 0, "ctx");
    float *x = fx_f32(fx, B * HW * HW * 3, "io.x"), *want = fx_f32(fx, B * E, "io.y");
    if (rc == 0 && x && want) {
        float *y = nn_push(&c, B * E);
        IResNetSaved *sv = xcalloc(1, sizeof *sv);
        EXPECT(iresnet_f(&c, &W, &m, y, x, B, sv) == 0, "forward: %s", a2f_last_error());
        // fp32 through ~10 layers with BN unfolded from the exporter's folded
        // convs (exact up to rounding): a few 1e-6 relative to the largest value.
        float mx = 0;
        for (int i = 0; i < B * E; i++) mx = fabsf(want[i]) > mx ? fabsf(want[i]) : mx;
        EXPECT_CLOSE("embedding", y, want, B * E, 1e-5 * mx, 0);
        free(sv);
    }
    nn_ctx_free(&c);
    weights_free(&W);
    iresnet_free(&m);
    params_free(&W.t);
    fx_close(fx);
}
