// test_clip_cuda.c: the CLIP text encoder with ID injection (tiny config
// tests/fixtures/clip/tiny_s0: hidden 32, 4 heads, 2 layers, 77 tokens,
// batch 2) and the MLP encoder, forward and backward through the CUDA
// backend table, against the same model code on the CPU backend.
//  - f32: both sides compute in fp32 and differ only in summation order
//    (GEMM tiles, attention, reductions): 1e-4 of max|ref| per tensor.
//  - bf16: weights and inputs are rounded to bf16 on the host and the CPU
//    reference runs on the same rounded values; the CUDA side also rounds
//    every activation and activation gradient to bf16 (2^-9 relative each)
//    through ~15 chained ops per layer, so errors of a few 2^-8 of max|ref|
//    are expected: 3e-2 on outputs and gradients.
// The k_proj bias gradient is exactly zero in exact arithmetic (softmax
// ignores a per-row constant), so it is compared on the scale of the same
// layer's k_proj weight gradient.
#include <stdlib.h>
#include <string.h>

#include "../../kernels/common.h"
#include "../../kernels/cuda/backend_cuda.h"
#include "../../nn/clip.h"
#include "../../nn/mlp_encoder.h"
#include "../../nn/safetensors.h"
#include "../test.h"
#include "gpu_test.h"

#define TINY "tests/fixtures/clip/tiny_s0/"

typedef struct {
    float *y, *did, *grad;  // host copies
    size_t ny, nid, ngrad;
} Result;

static void expect_scaled(const char *what, const float *got, const float *want, size_t n, double tol, double floor) {
    double mx = fmax(max_abs(want, n), floor), err = 0;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        if (!(e <= err)) err = e, worst = i;
    }
    if (getenv("CLIP_VERBOSE")) printf("    %-62s rel err %.2e (scale %.3g)\n", what, err / (mx > 0 ? mx : 1), mx);
    EXPECT(err <= tol * (mx > 0 ? mx : 1), "%s: max error %.3g = %.2e of max|ref| %.3g > %.1e (at [%zu] got %.6g want %.6g)",
           what, err, err / (mx > 0 ? mx : 1), mx, tol, worst, got[worst], want[worst]);
}

// Fixture tensors through the library's reader (tests/fixture.c is not part
// of the CUDA test binaries). NULL + test failure when missing or mis-sized.
static void *ld(const SafeTensors *st, const char *name, size_t n, int i32) {
    int i = st_find(st, name);
    const StTensor *t = i >= 0 ? st_tensor(st, i) : NULL;
    if (!t || t->numel != n || t->dtype != (i32 ? ST_I32 : ST_F32)) {
        test_fail(__FILE__, __LINE__, "%s: missing or not %s [%zu]", name, i32 ? "I32" : "F32", n);
        return NULL;
    }
    void *p = xmalloc(n * 4);
    memcpy(p, t->data, n * 4);
    return p;
}

static int ends_with(const char *name, const char *tail) {
    size_t n = strlen(name), k = strlen(tail);
    return n >= k && strcmp(name + n - k, tail) == 0;
}
static int is_k_bias(const char *name) { return ends_with(name, "k_proj.bias"); }
static int is_k_weight(const char *name) { return ends_with(name, "k_proj.weight"); }

// Loads tiny_s0 on backend be in dtype dt (host weights rounded through
// bf16 first when `round`), runs forward + backward with the ID injection,
// and returns host copies of y, d_id and all parameter gradients.
static int run_clip(const Backend *be, DType dt, int round, const int32_t *ids, const float *id, const float *dy,
                    int B, int L, int K, Result *r) {
    const char *files[] = {TINY "model.safetensors"};
    ClipText m;
    Weights W = {0};
    W.be = be, W.dt = dt;
    if (clip_load_ex(&m, &W, TINY "config.json", files, 1, 1) != 0) return -1;
    if (round) {  // CPU reference on bf16-rounded weights
        float *h = xmalloc(W.t.total * 4);
        CHECK(weights_download(&W, h) == 0);
        round_through(h, W.t.total, DT_BF16);
        CHECK(weights_upload(&W, h) == 0);
        free(h);
    }
    m.id_dim = K;
    const int D = m.cfg.hidden;
    const size_t N = (size_t)B * L;
    Ctx c;
    CHECK(nn_ctx_init(&c, be, dt, clip_act_bytes(&m, B, L, dt) + N * D * 4 + 65536, 64u << 20) == 0);
    c.train = 1;
    void *y = nn_push(&c, N * D), *did = nn_gpush(&c, (size_t)B * K);
    void *d_id_in = be->alloc((size_t)B * K * dtype_size(dt)), *dy_in = be->alloc(N * D * dtype_size(dt));
    void *tmp = xmalloc(N * D * 4);
    convert_dtype(tmp, dt, id, DT_F32, (size_t)B * K);
    CHECK(be->upload(d_id_in, tmp, (size_t)B * K * dtype_size(dt)) == 0);
    convert_dtype(tmp, dt, dy, DT_F32, N * D);
    CHECK(be->upload(dy_in, tmp, N * D * dtype_size(dt)) == 0);
    ClipSaved sv;
    int rc = clip_f(&c, &W, &m, y, ids, d_id_in, B, L, &sv);
    rc = rc ? rc : clip_b(&c, &W, &m, did, dy_in, &sv);
    if (rc == 0) {
        CHECK(be->sync() == 0);
        void *hy = xmalloc(N * D * dtype_size(dt)), *hd = xmalloc((size_t)B * K * dtype_size(dt));
        r->ny = N * D, r->nid = (size_t)B * K, r->ngrad = W.t.total;
        r->y = xmalloc(r->ny * 4), r->did = xmalloc(r->nid * 4), r->grad = xmalloc(r->ngrad * 4);
        CHECK(be->download(hy, y, N * D * dtype_size(dt)) == 0);
        CHECK(be->download(hd, did, (size_t)B * K * dtype_size(dt)) == 0);
        CHECK(be->download(r->grad, W.grad, W.t.total * 4) == 0);
        convert_dtype(r->y, DT_F32, hy, dt, r->ny);
        convert_dtype(r->did, DT_F32, hd, dt, r->nid);
        free(hy), free(hd);
    }
    free(tmp);
    be->free(d_id_in), be->free(dy_in);
    nn_ctx_free(&c);
    weights_free(&W);
    params_free(&W.t);
    return rc;
}

static void compare(const char *tag, const Result *g, const Result *c, double tol) {
    char what[200];
    snprintf(what, sizeof what, "%s y", tag);
    expect_scaled(what, g->y, c->y, c->ny, tol, 0);
    snprintf(what, sizeof what, "%s d_id", tag);
    expect_scaled(what, g->did, c->did, c->nid, tol, 0);
    // per-parameter comparison through a rebuilt table (same config -> same offsets)
    ClipConfig cfg;
    ClipText m;
    ParamTable t;
    params_init(&t);
    CHECK(clip_config_read(&cfg, TINY "config.json") == 0 && clip_add(&m, &t, &cfg) == 0);
    double kscale = 0;  // max|ref| of this layer's k_proj weight gradient (registered before the biases)
    for (int i = 0; i < t.count; i++) {
        const ParamEntry *e = &t.entries[i];
        snprintf(what, sizeof what, "%s grad %s", tag, e->name);
        expect_scaled(what, g->grad + e->offset, c->grad + e->offset, e->numel, tol, is_k_bias(e->name) ? kscale : 0);
        if (is_k_weight(e->name)) kscale = max_abs(c->grad + e->offset, e->numel);
    }
    params_free(&t);
}

static void free_result(Result *r) {
    free(r->y), free(r->did), free(r->grad);
    memset(r, 0, sizeof *r);
}

TEST(clip_cuda_matches_cpu) {
    if (!gpu_ready()) return;
    const Backend *cuda = cuda_backend();
    EXPECT(cuda != NULL, "no CUDA table: %s", a2f_last_error());
    SafeTensors fx;
    if (!cuda) return;
    if (st_open(&fx, TINY "io.safetensors") != 0) {
        test_fail(__FILE__, __LINE__, "%s", a2f_last_error());
        return;
    }
    enum { B = 2, L = 77, K = 20, D = 32 };  // tools/ref/make_clip_fixtures.py, seed 0
    int32_t *ids = ld(&fx, "ids", B * L, 1);
    float *id = ld(&fx, "id", B * K, 0), *dy = ld(&fx, "dy", B * L * D, 0);
    st_close(&fx);
    if (!ids || !id || !dy) {
        free(ids), free(id), free(dy);
        return;
    }
    for (int bf = 0; bf < 2; bf++) {
        const DType dt = bf ? DT_BF16 : DT_F32;
        if (bf) round_through(id, (size_t)B * K, DT_BF16), round_through(dy, (size_t)B * L * D, DT_BF16);
        Result rc = {0}, rg = {0};
        EXPECT(run_clip(cpu_backend(), DT_F32, bf, ids, id, dy, B, L, K, &rc) == 0, "cpu: %s", a2f_last_error());
        EXPECT(run_clip(cuda, dt, 0, ids, id, dy, B, L, K, &rg) == 0, "cuda %s: %s", dtype_name(dt),
               a2f_last_error());
        if (rc.y && rg.y) compare(bf ? "clip bf16" : "clip f32", &rg, &rc, bf ? 3e-2 : 1e-4);
        free_result(&rc);
        free_result(&rg);
    }
    free(ids), free(id), free(dy);
}

// The MLP encoder (fixture mlp_m0: GELU, final LayerNorm, normalised input,
// batch 3): forward and backward on both backends, f32 and bf16.
static int run_mlp(const Backend *be, DType dt, int round, const float *x, const float *dy, int B, Result *r) {
    MlpEncoder m;
    MlpConfig mc;
    Weights W = {0};
    params_init(&W.t);
    CHECK(mlp_config_read(&mc, "tests/fixtures/clip/mlp_m0.json") == 0 && mlp_add(&m, &W.t, &mc) == 0);
    CHECK(weights_alloc(&W, be, dt, 1) == 0);
    SafeTensors fx;
    CHECK(st_open(&fx, "tests/fixtures/clip/mlp_m0.safetensors") == 0);
    float *h = xcalloc(W.t.total + 1, 4);
    for (int i = 0; i < W.t.count; i++)
        CHECK(st_load_f32(&fx, W.t.entries[i].name, h + W.t.entries[i].offset, 0, NULL) == 0);
    st_close(&fx);
    if (round) round_through(h, W.t.total, DT_BF16);
    CHECK(weights_upload(&W, h) == 0);
    free(h);
    const size_t K = mc.in_dim, TD = (size_t)mc.num_tokens * mc.token_dim, es = dtype_size(dt);
    Ctx c;
    CHECK(nn_ctx_init(&c, be, dt, 1 << 20, 1 << 20) == 0);
    c.train = 1;
    void *y = nn_push(&c, B * TD), *dx = nn_gpush(&c, B * K);
    void *xin = be->alloc(B * K * es), *dyin = be->alloc(B * TD * es), *tmp = xmalloc(B * TD * 4);
    convert_dtype(tmp, dt, x, DT_F32, B * K);
    CHECK(be->upload(xin, tmp, B * K * es) == 0);
    convert_dtype(tmp, dt, dy, DT_F32, B * TD);
    CHECK(be->upload(dyin, tmp, B * TD * es) == 0);
    MlpSaved sv;
    int rc = mlp_f(&c, &W, &m, y, xin, B, &sv);
    rc = rc ? rc : mlp_b(&c, &W, &m, dx, dyin, &sv);
    if (rc == 0) {
        r->ny = B * TD, r->nid = B * K, r->ngrad = W.t.total;
        r->y = xmalloc(r->ny * 4), r->did = xmalloc(r->nid * 4), r->grad = xmalloc(r->ngrad * 4);
        void *hy = xmalloc(B * TD * es);
        CHECK(be->download(hy, y, B * TD * es) == 0);
        convert_dtype(r->y, DT_F32, hy, dt, r->ny);
        CHECK(be->download(hy, dx, B * K * es) == 0);
        convert_dtype(r->did, DT_F32, hy, dt, r->nid);
        CHECK(be->download(r->grad, W.grad, W.t.total * 4) == 0);
        free(hy);
    }
    free(tmp);
    be->free(xin), be->free(dyin);
    nn_ctx_free(&c);
    weights_free(&W);
    params_free(&W.t);
    return rc;
}

TEST(mlp_encoder_cuda_matches_cpu) {
    if (!gpu_ready()) return;
    const Backend *cuda = cuda_backend();
    SafeTensors fx;
    if (!cuda) return;
    if (st_open(&fx, "tests/fixtures/clip/mlp_m0.safetensors") != 0) {
        test_fail(__FILE__, __LINE__, "%s", a2f_last_error());
        return;
    }
    enum { B = 3, K = 24, TD = 7 * 16 };
    float *x = ld(&fx, "io.x", B * K, 0), *dy = ld(&fx, "io.dy", B * TD, 0);
    st_close(&fx);
    for (int bf = 0; x && dy && bf < 2; bf++) {
        if (bf) round_through(x, B * K, DT_BF16), round_through(dy, B * TD, DT_BF16);
        Result rc = {0}, rg = {0};
        EXPECT(run_mlp(cpu_backend(), DT_F32, bf, x, dy, B, &rc) == 0, "cpu: %s", a2f_last_error());
        EXPECT(run_mlp(cuda, bf ? DT_BF16 : DT_F32, 0, x, dy, B, &rg) == 0, "cuda: %s", a2f_last_error());
        const double tol = bf ? 3e-2 : 1e-4;
        if (rc.y && rg.y) {
            expect_scaled(bf ? "mlp bf16 y" : "mlp f32 y", rg.y, rc.y, rc.ny, tol, 0);
            expect_scaled(bf ? "mlp bf16 dx" : "mlp f32 dx", rg.did, rc.did, rc.nid, tol, 0);
            expect_scaled(bf ? "mlp bf16 grads" : "mlp f32 grads", rg.grad, rc.grad, rc.ngrad, tol, 0);
        }
        free_result(&rc);
        free_result(&rg);
    }
    free(x), free(dy);
}
