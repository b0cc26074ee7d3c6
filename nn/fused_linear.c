// fused_linear.c: runs of Linear layers over one input as one GEMM when their
// parameters are stacked (see fused_linear.h).
#include "fused_linear.h"

#include "../kernels/common.h"

void linear_run_add(Linear *const *l, int n, ParamTable *t, const char *const *prefixes, int in, int out, int bias) {
    const int64_t ws[2] = {out, in}, bs[1] = {out};
    CHECK(n >= 1 && n <= LINEAR_RUN_MAX);
    for (int j = 0; j < n; j++) {
        l[j]->in = in;
        l[j]->out = out;
        l[j]->w = nn_param(t, prefixes[j], "weight", 2, ws, PARAM_PLAIN);
        l[j]->b = -1;
    }
    for (int j = 0; bias && j < n; j++) l[j]->b = nn_param(t, prefixes[j], "bias", 1, bs, PARAM_PLAIN);
}

// Tensor idx[j] starts exactly j*numel elements after idx[0] in a buffer
// whose entry i is at ptr(W, i) (elt bytes per element).
static int stacked(const Weights *W, void *(*ptr)(const Weights *, int), const int *idx, int n, size_t numel,
                   size_t elt) {
    const char *p0 = ptr(W, idx[0]);
    if (!p0) return 0;
    for (int j = 1; j < n; j++)
        if ((const char *)ptr(W, idx[j]) != p0 + (size_t)j * numel * elt) return 0;
    return 1;
}

static void *grad_ptr(const Weights *W, int i) {
    return gptr(W, i);
}

int linear_run_fusable(const Weights *W, const LinearRun *r) {
    const Linear *l0 = r->l[0];
    const int has_b = l0->b >= 0;
    int w[LINEAR_RUN_MAX], b[LINEAR_RUN_MAX];
    if (r->n < 2 || r->n > LINEAR_RUN_MAX) return 0;
    for (int j = 0; j < r->n; j++) {
        const Linear *l = r->l[j];
        if (l->in != l0->in || l->out != l0->out || (l->b >= 0) != has_b) return 0;
        w[j] = l->w, b[j] = l->b;
    }
    const size_t nw = (size_t)l0->out * l0->in, nb = (size_t)l0->out, e = dtype_size(W->dt);
    if (!stacked(W, wptr, w, r->n, nw, e) || (has_b && !stacked(W, wptr, b, r->n, nb, e))) return 0;
    if (!W->grad) return 1;  // inference: no gradient buffer to check
    return stacked(W, grad_ptr, w, r->n, nw, sizeof(float)) &&
           (!has_b || stacked(W, grad_ptr, b, r->n, nb, sizeof(float)));
}

void *linear_run_ptr(const Ctx *c, void *y, const LinearRun *r, int fused, int j, int M) {
    const size_t out = (size_t)r->l[0]->out;
    return (char *)y + (fused ? j * out : (size_t)j * M * out) * nn_elt(c);
}

long linear_run_stride(const LinearRun *r, int fused) {
    return (long)r->l[0]->out * (fused ? r->n : 1);
}

int linear_run_f(const Ctx *c, const Weights *W, const LinearRun *r, int fused, void *y, const void *x, int M) {
    if (fused) {  // y [M, n*out] = x [M, in] W_stacked^T [in, n*out] + b_stacked [n*out]
        const Linear *l0 = r->l[0];
        const void *b = l0->b >= 0 ? wptr(W, l0->b) : NULL;
        OP(c, linear_fwd, y, x, wptr(W, l0->w), b, M, l0->in, r->n * l0->out);
        return 0;
    }
    for (int j = 0; j < r->n; j++) TRY(linear_f(c, W, r->l[j], linear_run_ptr(c, y, r, 0, j, M), x, M));
    return 0;
}

int linear_run_b(const Ctx *c, const Weights *W, const LinearRun *r, int fused, void *dx, const void *dy, const void *x,
                 int M) {
    if (fused) {  // dx += dy [M, n*out] W_stacked; dW_stacked [n*out, in] += dy^T x; db_stacked += colsum(dy)
        const Linear *l0 = r->l[0];
        CHECK(linear_run_fusable(W, r));  // the forward's layout must still hold
        float *db = l0->b >= 0 ? gptr(W, l0->b) : NULL;
        OP(c, linear_bwd, dx, gptr(W, l0->w), db, dy, x, wptr(W, l0->w), M, l0->in, r->n * l0->out);
        return 0;
    }
    for (int j = 0; j < r->n; j++) TRY(linear_b(c, W, r->l[j], dx, linear_run_ptr(c, (void *)dy, r, 0, j, M), x, M));
    return 0;
}
