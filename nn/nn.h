// nn.h: what every module in nn/ shares -- the execution context, the
// model's weights, and the activation stack discipline.
//
// Execution context (Ctx). A module runs its ops through ctx->be (the CPU or
// CUDA table of kernels/backend.h) in dtype ctx->dt on ctx->stream.
//
// Activation stack. ctx->act is one arena on the backend used as a LIFO
// stack; ctx->grad is a second one for activation gradients.
//  - The caller allocates a module's output, then calls its forward, which
//    allocates its intermediates above it.
//  - Inference (ctx->train == 0): the forward releases its intermediates
//    before returning (the stack is back where it was on entry).
//  - Training: the forward keeps them (this is the tape) and records the
//    stack position of its entry in its Saved struct; the backward uses them
//    and resets the stack to that position on exit. Modules are undone in
//    reverse order, so the stack discipline is exactly LIFO.
//  - Gradient checkpointing of a block: run its forward with train == 0
//    (keeps nothing); its backward first re-runs the forward with train == 1
//    at the same stack position, then runs the backward.
//
// Errors. Every module function returns 0, or -1 with a2f_last_error() set
// (out of memory names the arena and the sizes; a failing op names itself).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "../kernels/arena.h"
#include "../kernels/backend.h"
#include "../kernels/params.h"

typedef struct {
    const Backend *be;
    DType dt;             // activations and working weights (CPU: DT_F32)
    cudaStream_t stream;  // NULL on the CPU
    Arena *act;           // activation stack (backend memory)
    Arena *grad;          // activation-gradient stack (backend memory)
    int train;            // 1: forwards keep what their backward needs
} Ctx;

// A model's parameters: one flat buffer per role, indexed by one table whose
// names are the upstream checkpoint keys.
typedef struct {
    ParamTable t;
    const Backend *be;
    DType dt;        // dtype of the working copy w
    void *w;         // working weights [t.total] (backend memory, dtype dt)
    float *master;   // fp32 master weights [t.total], or NULL (inference); aliases w for f32
    float *grad;     // fp32 gradients [t.total], or NULL
} Weights;

// ------------------------------------------------------------------ ops

// Calls be->NAME(dt, ..., stream); on failure sets "NAME: <backend message>"
// and returns -1 from the calling function.
#define OP(ctx, name, ...)                                                                   \
    do {                                                                                     \
        int st_ = (ctx)->be->name((ctx)->dt, __VA_ARGS__, (ctx)->stream);                    \
        if (st_ != 0) return nn_op_failed(#name, (ctx)->be, st_);                            \
    } while (0)
// Propagates a failing module call.
#define TRY(call)                    \
    do {                             \
        if ((call) != 0) return -1;  \
    } while (0)

int nn_op_failed(const char *op, const Backend *be, int status);

// ------------------------------------------------------------------ stack

// n elements of the context dtype / of float on the activation stack (NULL +
// error when full); nn_gpush / nn_gpush_f32 on the gradient stack, zeroed.
void *nn_push(const Ctx *c, size_t n);
float *nn_push_f32(const Ctx *c, size_t n);
void *nn_gpush(const Ctx *c, size_t n);
float *nn_gpush_f32(const Ctx *c, size_t n);
static inline size_t nn_elt(const Ctx *c) { return dtype_size(c->dt); }

// Allocates both stacks on the backend (bytes each). Returns 0 / -1.
int nn_ctx_init(Ctx *c, const Backend *be, DType dt, size_t act_bytes, size_t grad_bytes);
void nn_ctx_free(Ctx *c);

// ------------------------------------------------------------------ weights

// Allocates w (and master + grad when train) for the table already built in
// W->t. Contents are undefined until loaded. Returns 0 / -1.
int weights_alloc(Weights *W, const Backend *be, DType dt, int train);
void weights_free(Weights *W);
// Working weight / gradient of table entry i (NULL grad when not training or
// the entry is a buffer).
void *wptr(const Weights *W, int i);
float *gptr(const Weights *W, int i);

// Maps a key found in a file to a table key: writes it into out (size n) and
// returns 1, or returns 0 to ignore the key (e.g. position_ids). NULL = identity.
typedef int (*KeyMap)(const char *file_key, char *out, size_t n);

// Loads every table entry from the files -- safetensors, or PyTorch zip
// checkpoints (.bin/.pt/.pth/.ckpt, nn/torch_zip.h) -- (F32/F16/BF16, converted;
// conv weights transposed from PyTorch layout; [O, I, 1, 1] accepted for a
// [O, I] entry). Every file key must map to an entry and every entry must be
// present: otherwise one error line lists what is missing, unexpected or
// mis-shaped (the first few of each) and nothing is changed. Returns 0 / -1.
int weights_load(Weights *W, const char *const *files, int nfiles, KeyMap map);
// Loads from host fp32 values already in our layout ([t.total]).
int weights_upload(Weights *W, const float *host);
// Downloads the fp32 values (master when present, else w) in our layout.
int weights_download(const Weights *W, float *host);
// Writes the weights as safetensors with the upstream names and PyTorch
// layouts (file_dt F32, F16 or BF16); atomic (temp file, fsync, rename).
int weights_save(const Weights *W, const char *path, DType file_dt);
// Deterministic random init for tests and tiny models: normal(0, std) for
// weights with ndim >= 2, zeros for 1-D tensors named "*bias", ones for
// "*weight" 1-D tensors (norm scales). Buffers: running_mean 0, running_var 1.
int weights_init_random(Weights *W, uint64_t seed, float std);
