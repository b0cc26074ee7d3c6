// test_gradcheck.c: the finite-difference harness must accept a correct
// backward and reject wrong ones (a test of the test), checked on linear.
#include <stdlib.h>
#include <string.h>

#include "../kernels/cpu/ops.h"
#include "gradcheck.h"
#include "test.h"

typedef struct {
    int M, K, N;
    float *x, *W, *b, *y, *gx, *gW, *gb;
    int bug;  // 0: correct backward; 1: dW scaled by 1.01; 2: one dx element wrong; 3: db sign flipped
} LinCtx;

static void lin_fwd(void *p) {
    LinCtx *c = p;
    linear_fwd(c->y, c->x, c->W, c->b, c->M, c->K, c->N);
}

static void lin_bwd(void *p, const float *dy) {
    LinCtx *c = p;
    linear_bwd(c->gx, c->gW, c->gb, dy, c->x, c->W, c->M, c->K, c->N);
    if (c->bug == 1)
        for (int i = 0; i < c->N * c->K; i++) c->gW[i] *= 1.01f;
    if (c->bug == 2) c->gx[c->M * c->K / 2] += 0.05f;
    if (c->bug == 3)
        for (int i = 0; i < c->N; i++) c->gb[i] = -c->gb[i];
}

static int run_linear(int M, int K, int N, int bug, int quiet) {
    LinCtx c = {M, K, N};
    uint64_t st = 7 + M * 131 + K * 17 + N;
    c.x = malloc(sizeof(float) * M * K), c.gx = malloc(sizeof(float) * M * K);
    c.W = malloc(sizeof(float) * N * K), c.gW = malloc(sizeof(float) * N * K);
    c.b = malloc(sizeof(float) * N), c.gb = malloc(sizeof(float) * N);
    c.y = malloc(sizeof(float) * M * N);
    c.bug = bug;
    test_fill_normal(c.x, M * K, 1.0f, &st);
    test_fill_normal(c.W, N * K, 0.5f, &st);
    test_fill_normal(c.b, N, 1.0f, &st);
    GradCheck g;
    gc_init(&g, &c, lin_fwd, lin_bwd, c.y, (size_t)M * N);
    g.quiet = quiet;
    gc_input(&g, "x", c.x, c.gx, (size_t)M * K);
    gc_input(&g, "W", c.W, c.gW, (size_t)N * K);
    gc_input(&g, "b", c.b, c.gb, (size_t)N);
    char label[64];
    snprintf(label, sizeof label, "linear %dx%dx%d", M, K, N);
    int ok = gc_run(&g, label);
    free(c.x), free(c.gx), free(c.W), free(c.gW), free(c.b), free(c.gb), free(c.y);
    return ok;
}

TEST(gradcheck_linear) {
    int shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {17, 33, 9}, {64, 31, 48}};
    for (int i = 0; i < 4; i++) run_linear(shapes[i][0], shapes[i][1], shapes[i][2], 0, 0);
}

TEST(gradcheck_rejects_wrong_backward) {
    EXPECT(!run_linear(5, 7, 6, 1, 1), "a dW 1%% too large was accepted");
    EXPECT(!run_linear(5, 7, 6, 2, 1), "one wrong dx element was accepted");
    EXPECT(!run_linear(5, 7, 6, 3, 1), "a flipped db was accepted");
    EXPECT(!run_linear(40, 30, 20, 1, 1), "a dW 1%% too large was accepted (large)");
}
