// test_backend_cuda.c: the backend-neutral tables (kernels/backend.h). A small
// transformer-style chain -- layernorm, linear, GEGLU, linear, residual add,
// then GroupNorm+SiLU and a 3x3 conv, forward and backward -- runs through
// the CPU table and the CUDA table with the same code; the results must
// agree. This checks the tables' wiring and that one model code drives both.
#include <stdlib.h>
#include <string.h>

#include "../../kernels/backend.h"
#include "../../kernels/common.h"
#include "../../kernels/cuda/backend_cuda.h"
#include "../test.h"
#include "gpu_test.h"

enum { B = 2, H = 3, W = 2, N = B * H * W, C = 8, F = 12 };  // N = B*H*W tokens of width C

typedef struct {
    float *x, *g, *b, *w1, *b1, *w2, *b2, *gn_g, *gn_b, *cw, *cb;  // inputs and weights (host, f32)
} Inputs;

typedef struct {
    float out[N * C], dx[N * C], dw1[2 * F * C], dcw[C * 9 * C];
} Results;

// Copies n floats to backend memory (the CPU backend's memory is host memory).
static void *put(const Backend *be, const float *h, size_t n) {
    void *d = be->alloc(n * 4);
    CHECK(d && be->upload(d, h, n * 4) == 0);
    return d;
}

static void *zeros(const Backend *be, size_t n) {
    void *d = be->alloc(n * 4);
    CHECK(d && be->memset(d, 0, n * 4) == 0);
    return d;
}

#define OK(call) EXPECT((call) == 0, "%s on %s", #call, be->name)

static void run_chain(const Backend *be, const Inputs *in, Results *r) {
    DType dt = DT_F32;
    cudaStream_t s = NULL;
    if (be->device == DEV_CUDA) s = dev_stream();
    void *x = put(be, in->x, N * C), *g = put(be, in->g, C), *b = put(be, in->b, C);
    void *w1 = put(be, in->w1, 2 * F * C), *b1 = put(be, in->b1, 2 * F), *w2 = put(be, in->w2, C * F);
    void *b2 = put(be, in->b2, C), *gng = put(be, in->gn_g, C), *gnb = put(be, in->gn_b, C);
    void *cw = put(be, in->cw, C * 9 * C), *cb = put(be, in->cb, C);
    float *mean = zeros(be, N), *rstd = zeros(be, N), *gmean = zeros(be, B * 2), *grstd = zeros(be, B * 2);
    void *h = zeros(be, N * C), *p = zeros(be, N * 2 * F), *a = zeros(be, N * F), *f = zeros(be, N * C);
    void *res = zeros(be, N * C), *gn = zeros(be, N * C), *out = zeros(be, N * C);
    Conv2dShape cs = {B, H, W, C, C, 3, 3, 1, 1, 1, 1, 1, 1};
    // forward
    OK(be->layernorm_fwd(dt, h, mean, rstd, x, g, b, N, C, 1e-5f, s));
    OK(be->linear_fwd(dt, p, h, w1, b1, N, C, 2 * F, s));
    OK(be->geglu_fwd(dt, a, p, N, F, s));
    OK(be->linear_fwd(dt, f, a, w2, b2, N, F, C, s));
    OK(be->add_fwd(dt, res, f, x, N * C, s));
    OK(be->groupnorm_fwd(dt, gn, gmean, grstd, res, gng, gnb, B, H * W, C, 2, 1e-5f, 1, s));
    OK(be->conv2d_fwd(dt, out, gn, cw, cb, &cs, s));
    // backward of sum(out * out_grad) with out_grad = 1
    float ones[N * C];
    for (int i = 0; i < N * C; i++) ones[i] = 1.0f;
    void *dout = put(be, ones, N * C), *dgn = zeros(be, N * C), *dres = zeros(be, N * C), *df = zeros(be, N * C);
    void *da = zeros(be, N * F), *dp = zeros(be, N * 2 * F), *dh = zeros(be, N * C), *dx = zeros(be, N * C);
    float *dcw = zeros(be, C * 9 * C), *dcb = zeros(be, C), *dgng = zeros(be, C), *dgnb = zeros(be, C);
    float *dw1 = zeros(be, 2 * F * C), *db1 = zeros(be, 2 * F), *dw2 = zeros(be, C * F), *db2 = zeros(be, C);
    float *dg = zeros(be, C), *db = zeros(be, C);
    OK(be->conv2d_bwd(dt, dgn, dcw, dcb, dout, gn, cw, &cs, s));
    OK(be->groupnorm_bwd(dt, dres, dgng, dgnb, dgn, res, gmean, grstd, gng, gnb, B, H * W, C, 2, 1, s));
    OK(be->add_bwd(dt, df, dx, dres, N * C, s));  // residual: dx gets dres directly
    OK(be->linear_bwd(dt, da, dw2, db2, df, a, w2, N, F, C, s));
    OK(be->geglu_bwd(dt, dp, da, p, N, F, s));
    OK(be->linear_bwd(dt, dh, dw1, db1, dp, h, w1, N, C, 2 * F, s));
    OK(be->layernorm_bwd(dt, dx, dg, db, dh, x, mean, rstd, g, N, C, s));
    OK(be->sync());
    OK(be->download(r->out, out, sizeof r->out));
    OK(be->download(r->dx, dx, sizeof r->dx));
    OK(be->download(r->dw1, dw1, sizeof r->dw1));
    OK(be->download(r->dcw, dcw, sizeof r->dcw));
    void *all[] = {x, g, b, w1, b1, w2, b2, gng, gnb, cw, cb, mean, rstd, gmean, grstd, h, p, a, f, res, gn, out,
                   dout, dgn, dres, df, da, dp, dh, dx, dcw, dcb, dgng, dgnb, dw1, db1, dw2, db2, dg, db};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) be->free(all[i]);
}

TEST(backend_tables_agree) {
    if (!gpu_ready()) return;
    const Backend *cuda = cuda_backend();
    EXPECT(cuda != NULL && strcmp(cuda->name, "cuda") == 0, "no CUDA table: %s", a2f_last_error());
    if (!cuda) return;
    uint64_t st = 99;
    Inputs in;
    float buf[N * C + 2 * C + 2 * F * C + 2 * F + C * F + C + 2 * C + C * 9 * C + C];
    test_fill_normal(buf, sizeof buf / sizeof buf[0], 0.5f, &st);
    float *q = buf;
    in.x = q, q += N * C;
    in.g = q, q += C;
    in.b = q, q += C;
    in.w1 = q, q += 2 * F * C;
    in.b1 = q, q += 2 * F;
    in.w2 = q, q += C * F;
    in.b2 = q, q += C;
    in.gn_g = q, q += C;
    in.gn_b = q, q += C;
    in.cw = q, q += C * 9 * C;
    in.cb = q;
    static Results rc, rg;
    run_chain(cpu_backend(), &in, &rc);
    run_chain(cuda, &in, &rg);
    // Both sides compute in fp32; they differ only in summation order inside
    // the GEMMs and reductions (K <= 72 terms), a few ulps relative to the
    // magnitudes involved: 1e-4 relative + 1e-4 absolute covers that after 7
    // chained ops, while a mis-wired table slot gives O(1) differences.
    EXPECT_CLOSE("out", rg.out, rc.out, N * C, 1e-4, 1e-4);
    EXPECT_CLOSE("dx", rg.dx, rc.dx, N * C, 1e-4, 1e-4);
    EXPECT_CLOSE("dw1", rg.dw1, rc.dw1, 2 * F * C, 1e-4, 1e-4);
    EXPECT_CLOSE("dconv_w", rg.dcw, rc.dcw, C * 9 * C, 1e-4, 1e-4);
}

TEST(cpu_backend_rejects_bf16) {
    const Backend *be = cpu_backend();
    float x[4] = {1, 2, 3, 4}, y[4];
    int st = be->silu_fwd(DT_BF16, y, x, 4, NULL);
    EXPECT(st == CPU_ST_DTYPE && strstr(be->status_str(st), "f32"), "status %d (%s)", st, be->status_str(st));
    EXPECT(be->silu_fwd(DT_F32, y, x, 4, NULL) == 0 && y[0] > 0.73f && y[0] < 0.74f, "silu(1) = %g", y[0]);
}
