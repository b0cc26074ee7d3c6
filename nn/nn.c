// nn.c: execution context and the activation stacks (see nn.h).
#include "nn.h"

#include <string.h>

#include "../kernels/common.h"

int nn_op_failed(const char *op, const Backend *be, int status) {
    a2f_set_error("%s (%s backend): %s", op, be->name, be->status_str(status));
    return -1;
}

static void *push(const Ctx *c, Arena *a, size_t bytes, int zero) {
    void *p = arena_alloc(a, bytes);
    if (p && zero && c->be->memset(p, 0, bytes) != 0) return NULL;
    return p;
}

void *nn_push(const Ctx *c, size_t n) { return push(c, c->act, n * dtype_size(c->dt), 0); }
float *nn_push_f32(const Ctx *c, size_t n) { return push(c, c->act, n * sizeof(float), 0); }
void *nn_gpush(const Ctx *c, size_t n) { return push(c, c->grad, n * dtype_size(c->dt), 1); }
float *nn_gpush_f32(const Ctx *c, size_t n) { return push(c, c->grad, n * sizeof(float), 1); }

static int stack_init(const Backend *be, Arena *a, const char *name, size_t bytes) {
    void *base = be->alloc(bytes);
    if (!base) {
        a2f_set_error("%s stack: cannot allocate %zu bytes on %s: %s", name, bytes, be->name, a2f_last_error());
        return -1;
    }
    arena_wrap(a, name, base, bytes, be->device);
    return 0;
}

int nn_ctx_init(Ctx *c, const Backend *be, DType dt, size_t act_bytes, size_t grad_bytes) {
    memset(c, 0, sizeof *c);
    c->be = be;
    c->dt = dt;
    c->stream = be->default_stream();
    c->act = xcalloc(1, sizeof(Arena));
    c->grad = xcalloc(1, sizeof(Arena));
    if (stack_init(be, c->act, "activation", act_bytes) != 0) return -1;
    if (stack_init(be, c->grad, "gradient", grad_bytes) != 0) return -1;
    return 0;
}

void nn_ctx_free(Ctx *c) {
    if (c->act) c->be->free(c->act->base);
    if (c->grad) c->be->free(c->grad->base);
    free(c->act);
    free(c->grad);
    memset(c, 0, sizeof *c);
}
