// cudnn_graph.cuh: building and running cuDNN backend graphs with plain C calls (no
// cudnn-frontend, which is C++): the shared machinery of cudnn_sdpa.cu (fused attention)
// and cudnn_conv.cu (convolution). Only with cuDNN (A2F_HAVE_CUDNN).
//
// A Graph collects every descriptor it creates (g_free destroys them) and the first
// failure as one line (what was being built, cuDNN's status and its last error
// message); every g_* call after a failure does nothing, so a builder runs straight
// through and checks g_failed once. Tensors are 4-d (cuDNN's graphs want dims >= 3;
// attention and NHWC convolution are both 4-d); uid 0 makes a virtual tensor (uids from
// 100 up), by-value scalars are float host values in the variant pack.
#pragma once
#ifdef A2F_HAVE_CUDNN
#include <cudnn.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct CUstream_st *cudaStream_t;

#define G_MAX_DESC 160
#define G_MAX_OPS 48
typedef struct {
    cudnnBackendDescriptor_t all[G_MAX_DESC];  // everything created here, destroyed by g_free
    int nall;
    cudnnBackendDescriptor_t ops[G_MAX_OPS];  // the operations, in order
    int nops;
    int64_t next_uid;
    char err[320];  // first failure, one line
} Graph;

void g_init(Graph *g);
int g_failed(const Graph *g);
// Records the first failure (1 = st is success).
int g_check(Graph *g, cudnnStatus_t st, const char *what);
cudnnBackendDescriptor_t g_new(Graph *g, cudnnBackendDescriptorType_t type, const char *what);
void g_set(Graph *g, cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type,
           int64_t n, const void *v, const char *what);
void g_final(Graph *g, cudnnBackendDescriptor_t d, const char *what);
// Points attribute `name` of descriptor d at descriptor x.
void g_link(Graph *g, cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name, cudnnBackendDescriptor_t x,
            const char *what);
void g_free(Graph *g);

cudnnBackendDescriptor_t g_tensor_desc(Graph *g, cudnnDataType_t dt, const int64_t dim[4], const int64_t str[4],
                                       int64_t uid, bool virt, bool by_value, const char *what);
// A 4-d tensor: uid > 0 binds a caller buffer, uid 0 makes a virtual one.
cudnnBackendDescriptor_t g_tensor(Graph *g, cudnnDataType_t dt, const int64_t dim[4], const int64_t str[4],
                                  int64_t uid, const char *what);
// A float scalar passed by value.
cudnnBackendDescriptor_t g_scalar(Graph *g, int64_t uid, const char *what);
// Finalizes an operation and appends it to the graph.
void g_op(Graph *g, cudnnBackendDescriptor_t op, const char *what);
// y = mode(x [, b [, t]]) elementwise with broadcasting; axis >= 0 for GEN_INDEX.
void g_pw(Graph *g, cudnnPointwiseMode_t mode, cudnnDataType_t math, cudnnBackendDescriptor_t x,
          cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t t, cudnnBackendDescriptor_t y, int64_t axis,
          const char *what);
// y = reduce(x) over the axes where y has extent 1 (f32 arithmetic).
void g_reduce(Graph *g, cudnnReduceTensorOp_t mode, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y,
              const char *what);
// c [.., M, N] = a [.., M, K] @ b [.., K, N], f32 accumulation.
void g_matmul(Graph *g, cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t c,
              const char *what);
// y = x seen through other dimensions / strides.
void g_reshape(Graph *g, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y, const char *what);

// Operation graph, heuristics (mode A), first engine config whose execution plan
// finalizes; handle (a live device) or devprop (an offline one) targets the device.
// The plan (owned by the caller) or NULL with g->err; *no_driver = 1 when engine configs
// passed cuDNN's support checks and every plan failed only for want of a CUDA driver /
// device to load the compiled kernels into.
cudnnBackendDescriptor_t g_plan(Graph *g, cudnnHandle_t handle, cudnnBackendDescriptor_t devprop, int *no_driver);
// g_plan for the live device of handle, with the plan's workspace bytes in *ws; NULL with g->err.
cudnnBackendDescriptor_t g_plan_live(Graph *g, cudnnHandle_t handle, int64_t *ws);

// Offline check (cuDNN >= 9.8): build(g, ctx) builds a graph that is then planned for a
// described A100 (arch 80) or H100 (90) with cuDNN's own device-properties description.
// 0 when cuDNN's engines accept it (and compile or load their kernels as far as a
// machine without a GPU allows), 1 when this cuDNN cannot plan offline (skipped), -1
// otherwise; why says which in one line.
int g_offline_check(int arch, void (*build)(Graph *g, const void *ctx), const void *ctx, char *why, size_t nwhy);

// The process's cuDNN handle (NULL with *why when cuDNN cannot start, e.g. no GPU).
cudnnHandle_t dnn_handle(const char **why);
// Runs plan on stream st with the variant pack (uids, pointers) and workspace ws;
// 0 or a cudaError_t value (cuDNN failures print one line naming `who`).
int g_execute(cudnnBackendDescriptor_t plan, int n, const int64_t *uids, void **ptrs, void *ws, cudaStream_t st,
              const char *who);
#endif
