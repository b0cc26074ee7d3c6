// vae_stage.h (private to nn/vae_*.c): buffers for the chain of stage
// outputs of the VAE encoder and decoder.
//
// Forward: in training every stage output is a fresh block on the activation
// stack (kept for the backward); in inference the stages alternate between
// two buffers of the largest stage size (the previous output is the only live
// input of a stage), so the peak is two stage outputs plus one block's
// temporaries. Backward: the gradients of consecutive stage outputs alternate
// likewise between two buffers on the gradient stack, zeroed before reuse
// (ops ADD into gradients).
#pragma once
#include "../kernels/common.h"
#include "nn.h"

typedef struct {
    const Ctx *c;
    void *buf[2];
    int cur;
    size_t cap;  // elements
    int grad;    // 1: gradient buffers
} VaeStages;

static inline int vae_stages_init(VaeStages *s, const Ctx *c, size_t cap, int grad) {
    s->c = c;
    s->cur = 1;
    s->cap = cap;
    s->grad = grad;
    s->buf[0] = s->buf[1] = NULL;
    if (!grad && c->train) return 0;
    for (int i = 0; i < 2; i++) {
        s->buf[i] = grad ? nn_gpush(c, cap) : nn_push(c, cap);
        if (!s->buf[i]) return -1;
    }
    return 0;
}

// The buffer for the next stage output (n elements); NULL + error when the
// stack is full or the backend memset fails.
static inline void *vae_stage_next(VaeStages *s, size_t n) {
    if (!s->grad && s->c->train) return nn_push(s->c, n);
    CHECK(n <= s->cap);
    s->cur ^= 1;
    void *p = s->buf[s->cur];
    if (s->grad) {
        int st = s->c->be->memset(p, 0, n * nn_elt(s->c));
        if (st != 0) {
            nn_op_failed("memset", s->c->be, st);
            return NULL;
        }
    }
    return p;
}

#define VAE_NEXT(p, st, n) \
    if (!((p) = vae_stage_next((st), (n)))) return -1
