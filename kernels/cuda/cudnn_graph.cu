// cudnn_graph.cu: see cudnn_graph.cuh.
#ifdef A2F_HAVE_CUDNN
#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

#include "cudnn_graph.cuh"

void g_init(Graph *g) {
    memset(g, 0, sizeof *g);
    g->next_uid = 100;
}

int g_failed(const Graph *g) { return g->err[0] != 0; }

// Records the first failure: what was done, cuDNN's status and its last error message.
int g_check(Graph *g, cudnnStatus_t st, const char *what) {
    if (st == CUDNN_STATUS_SUCCESS) return 1;
    if (!g->err[0]) {
        char m[200] = "";
        cudnnGetLastErrorString(m, sizeof m);
        for (char *p = m; *p; p++)
            if (*p == '\n') *p = ' ';
        snprintf(g->err, sizeof g->err, "%s: %s%s%s", what, cudnnGetErrorString(st), m[0] ? ": " : "", m);
    }
    return 0;
}

cudnnBackendDescriptor_t g_new(Graph *g, cudnnBackendDescriptorType_t type, const char *what) {
    if (g_failed(g)) return NULL;
    if (g->nall == G_MAX_DESC) {
        snprintf(g->err, sizeof g->err, "%s: graph too large", what);
        return NULL;
    }
    cudnnBackendDescriptor_t d = NULL;
    if (!g_check(g, cudnnBackendCreateDescriptor(type, &d), what)) return NULL;
    g->all[g->nall++] = d;
    return d;
}

void g_set(Graph *g, cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name,
                  cudnnBackendAttributeType_t type, int64_t n, const void *v, const char *what) {
    if (!g_failed(g) && d) g_check(g, cudnnBackendSetAttribute(d, name, type, n, v), what);
}

void g_final(Graph *g, cudnnBackendDescriptor_t d, const char *what) {
    if (!g_failed(g) && d) g_check(g, cudnnBackendFinalize(d), what);
}

// Points attribute `name` of descriptor d at descriptor x.
void g_link(Graph *g, cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name, cudnnBackendDescriptor_t x,
                   const char *what) {
    g_set(g, d, name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x, what);
}

void g_free(Graph *g) {
    for (int i = g->nall - 1; i >= 0; i--) cudnnBackendDestroyDescriptor(g->all[i]);
    g->nall = g->nops = 0;
}

// A 4-d tensor descriptor of `uid`, virtual or bound in the variant pack, by value (a host scalar) or not.
cudnnBackendDescriptor_t g_tensor_desc(Graph *g, cudnnDataType_t dt, const int64_t dim[4],
                                              const int64_t str[4], int64_t uid, bool virt, bool by_value,
                                              const char *what) {
    cudnnBackendDescriptor_t t = g_new(g, CUDNN_BACKEND_TENSOR_DESCRIPTOR, what);
    const int64_t align = 16;
    g_set(g, t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt, what);
    g_set(g, t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dim, what);
    g_set(g, t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, str, what);
    g_set(g, t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, what);
    g_set(g, t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align, what);
    g_set(g, t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &virt, what);
    if (by_value) g_set(g, t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &by_value, what);
    g_final(g, t, what);
    return t;
}

// A 4-d tensor: uid > 0 binds a caller buffer, uid 0 makes a virtual one.
cudnnBackendDescriptor_t g_tensor(Graph *g, cudnnDataType_t dt, const int64_t dim[4], const int64_t str[4],
                                         int64_t uid, const char *what) {
    const bool virt = uid == 0;
    return g_tensor_desc(g, dt, dim, str, virt ? g->next_uid++ : uid, virt, false, what);
}

// A float scalar passed by value (the variant pack points at host memory).
cudnnBackendDescriptor_t g_scalar(Graph *g, int64_t uid, const char *what) {
    const int64_t one[4] = {1, 1, 1, 1};
    return g_tensor_desc(g, CUDNN_DATA_FLOAT, one, one, uid, false, true, what);
}

void g_op(Graph *g, cudnnBackendDescriptor_t op, const char *what) {
    g_final(g, op, what);
    if (g_failed(g)) return;
    if (g->nops == G_MAX_OPS) {
        snprintf(g->err, sizeof g->err, "%s: too many operations", what);
        return;
    }
    g->ops[g->nops++] = op;
}

// y = mode(x [, b [, t]]) elementwise with broadcasting; axis >= 0 for GEN_INDEX.
void g_pw(Graph *g, cudnnPointwiseMode_t mode, cudnnDataType_t math, cudnnBackendDescriptor_t x,
                 cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t t, cudnnBackendDescriptor_t y, int64_t axis,
                 const char *what) {
    cudnnBackendDescriptor_t pw = g_new(g, CUDNN_BACKEND_POINTWISE_DESCRIPTOR, what);
    g_set(g, pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode, what);
    g_set(g, pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &math, what);
    if (axis >= 0) g_set(g, pw, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis, what);
    g_final(g, pw, what);
    cudnnBackendDescriptor_t op = g_new(g, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, what);
    g_link(g, op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw, what);
    g_link(g, op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x, what);
    if (b) g_link(g, op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, b, what);
    if (t) g_link(g, op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, t, what);
    g_link(g, op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y, what);
    g_op(g, op, what);
}

// y = reduce(x) over the axes where y has extent 1 (f32 arithmetic).
void g_reduce(Graph *g, cudnnReduceTensorOp_t mode, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y,
                     const char *what) {
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t r = g_new(g, CUDNN_BACKEND_REDUCTION_DESCRIPTOR, what);
    g_set(g, r, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &mode, what);
    g_set(g, r, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32, what);
    g_final(g, r, what);
    cudnnBackendDescriptor_t op = g_new(g, CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR, what);
    g_link(g, op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, r, what);
    g_link(g, op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x, what);
    g_link(g, op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y, what);
    g_op(g, op, what);
}

// c [.., M, N] = a [.., M, K] @ b [.., K, N], f32 accumulation.
void g_matmul(Graph *g, cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t c,
                     const char *what) {
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t m = g_new(g, CUDNN_BACKEND_MATMUL_DESCRIPTOR, what);
    g_set(g, m, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32, what);
    g_final(g, m, what);
    cudnnBackendDescriptor_t op = g_new(g, CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, what);
    g_link(g, op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, a, what);
    g_link(g, op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, b, what);
    g_link(g, op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, c, what);
    g_link(g, op, CUDNN_ATTR_OPERATION_MATMUL_DESC, m, what);
    g_op(g, op, what);
}

// y = x seen through other dimensions / strides (the transposes of P and dS).
void g_reshape(Graph *g, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y, const char *what) {
    cudnnBackendDescriptor_t op = g_new(g, CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR, what);
    g_link(g, op, CUDNN_ATTR_OPERATION_RESHAPE_XDESC, x, what);
    g_link(g, op, CUDNN_ATTR_OPERATION_RESHAPE_YDESC, y, what);
    g_op(g, op, what);
}

// Operation graph, heuristics, first engine config whose plan finalizes. handle or devprop
// (offline) targets the device. Returns the plan (owned by the caller) or NULL with g->err;
// *no_driver = 1 when engine configs passed cuDNN's support checks and every plan failed
// only for want of a CUDA driver / device to load the compiled kernels into.
cudnnBackendDescriptor_t g_plan(Graph *g, cudnnHandle_t handle, cudnnBackendDescriptor_t devprop,
                                       int *no_driver) {
    *no_driver = 0;
    if (g_failed(g)) return NULL;
    cudnnBackendDescriptor_t og = g_new(g, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, "operation graph");
    g_set(g, og, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, g->nops, g->ops, "operation graph");
    if (handle) g_set(g, og, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle, "operation graph");
    g_final(g, og, "operation graph");

    cudnnBackendDescriptor_t heur = g_new(g, CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, "heuristics");
    const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
    g_link(g, heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, og, "heuristics");
    g_set(g, heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode, "heuristics");
    if (devprop) g_link(g, heur, CUDNN_ATTR_ENGINEHEUR_DEVICEPROP, devprop, "heuristics");
    g_final(g, heur, "heuristics");
    if (g_failed(g)) return NULL;

    enum { MAX_CFG = 8 };
    cudnnBackendDescriptor_t cfg[MAX_CFG];
    for (int i = 0; i < MAX_CFG; i++) cfg[i] = g_new(g, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, "engine config");
    int64_t ncfg = 0;
    if (!g_failed(g))
        g_check(g, cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                            MAX_CFG, &ncfg, cfg),
                "heuristics results");
    if (g_failed(g)) return NULL;
    if (ncfg == 0) {
        snprintf(g->err, sizeof g->err,
                 "heuristics: no engine supports this graph on this device (cuDNN's reasons: run with "
                 "CUDNN_LOGWARN_DBG=1 CUDNN_LOGDEST_DBG=stderr)");
        return NULL;
    }
    char first[320] = "";
    int driver_failures = 0;
    for (int64_t i = 0; i < ncfg; i++) {
        cudnnBackendDescriptor_t plan = NULL;
        cudnnStatus_t st = cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &plan);
        if (st == CUDNN_STATUS_SUCCESS && handle)
            st = cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
        if (st == CUDNN_STATUS_SUCCESS && devprop)
            st = cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_DEVICEPROP, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                          1, &devprop);
        if (st == CUDNN_STATUS_SUCCESS)
            st = cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                                          CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfg[i]);
        if (st == CUDNN_STATUS_SUCCESS) st = cudnnBackendFinalize(plan);
        if (st == CUDNN_STATUS_SUCCESS) return plan;
        driver_failures += st == CUDNN_STATUS_EXECUTION_FAILED_CUDA_DRIVER ||
                           st == CUDNN_STATUS_NOT_SUPPORTED_RUNTIME_PREREQUISITE_MISSING;
        if (!first[0]) {
            Graph tmp;
            tmp.err[0] = 0;
            g_check(&tmp, st, "execution plan");
            snprintf(first, sizeof first, "%s", tmp.err);
        }
        if (plan) cudnnBackendDestroyDescriptor(plan);
    }
    snprintf(g->err, sizeof g->err, "%s (all %d engine configs failed)", first, (int)ncfg);
    *no_driver = driver_failures == ncfg;
    return NULL;
}

cudnnBackendDescriptor_t g_plan_live(Graph *g, cudnnHandle_t handle, int64_t *ws) {
    int no_driver = 0;
    cudnnBackendDescriptor_t plan = g_plan(g, handle, NULL, &no_driver);
    if (plan && !g_check(g, cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64,
                                                     1, NULL, ws),
                         "workspace size")) {
        cudnnBackendDestroyDescriptor(plan);
        plan = NULL;
    }
    return plan;
}

// ---------------------------------------------------------------- offline check
// cuDNN's JSON description of an A100 / H100 SXM (the properties cuDNN reads from a
// live device), so that plans can be built on a machine without a GPU. cuDNN then runs
// its pattern and support checks for its engines against that device
// and, given a CUDA driver library (the toolkit's stub libcuda.so serves), compiles the
// kernels; only loading them needs a real GPU.
static const char *devprop_json(int arch) {
    if (arch == 90)
        return "{\"maxGridSize\":[2147483647,65535,65535],\"maxBlockSize\":[1024,1024,64],\"regsPerBlock\":65536,"
               "\"multiProcessorCount\":132,\"warpSize\":32,\"maxSharedMemoryPerBlock\":49152,"
               "\"maxSharedMemoryPerBlockOptin\":232448,\"reservedSharedMemoryPerBlock\":1024,"
               "\"maxRegistersPerSM\":65536,\"maxCtasPerSM\":32,\"maxThreadsPerBlock\":1024,\"maxThreadsPerSM\":2048,"
               "\"pciDeviceId\":9008,\"isTccDriver\":0,\"supportCoopLaunch\":1,\"totalGlobalMem\":85045526528,"
               "\"smClockRateKHz\":1980000,\"memClockRateKHz\":2619000,\"l2CacheSize\":52428800,\"cudaDeviceId\":0,"
               "\"deviceVer\":900,\"driverVer\":13000,\"deviceName\":\"NVIDIA H100 80GB HBM3\"}";
    if (arch == 80)
        return "{\"maxGridSize\":[2147483647,65535,65535],\"maxBlockSize\":[1024,1024,64],\"regsPerBlock\":65536,"
               "\"multiProcessorCount\":108,\"warpSize\":32,\"maxSharedMemoryPerBlock\":49152,"
               "\"maxSharedMemoryPerBlockOptin\":166912,\"reservedSharedMemoryPerBlock\":1024,"
               "\"maxRegistersPerSM\":65536,\"maxCtasPerSM\":32,\"maxThreadsPerBlock\":1024,\"maxThreadsPerSM\":2048,"
               "\"pciDeviceId\":8368,\"isTccDriver\":0,\"supportCoopLaunch\":1,\"totalGlobalMem\":85198045184,"
               "\"smClockRateKHz\":1410000,\"memClockRateKHz\":1593000,\"l2CacheSize\":41943040,\"cudaDeviceId\":0,"
               "\"deviceVer\":800,\"driverVer\":13000,\"deviceName\":\"NVIDIA A100-SXM4-80GB\"}";
    return NULL;
}

static cudnnBackendDescriptor_t g_devprop(Graph *g, int arch, int *skip) {
    *skip = 0;
    if (cudnnGetVersion() < 90800) {
        snprintf(g->err, sizeof g->err, "cuDNN %zu cannot build plans without a device (needs 9.8)", cudnnGetVersion());
        *skip = 1;
        return NULL;
    }
    const char *json = devprop_json(arch);
    if (!json) {
        snprintf(g->err, sizeof g->err, "no device description for sm_%d", arch);
        return NULL;
    }
    cudnnBackendDescriptor_t dp = g_new(g, CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR, "device properties");
    g_set(g, dp, CUDNN_ATTR_DEVICEPROP_JSON_REPRESENTATION, CUDNN_TYPE_CHAR, (int64_t)strlen(json) + 1, json,
          "device properties");
    g_final(g, dp, "device properties");
    return g_failed(g) ? NULL : dp;
}

static int g_offline_result(Graph *g, cudnnBackendDescriptor_t dp, char *why, size_t nwhy) {
    int no_driver = 0, rc = 0;
    cudnnBackendDescriptor_t plan = g_plan(g, NULL, dp, &no_driver);
    if (plan) {
        cudnnBackendDestroyDescriptor(plan);
        snprintf(why, nwhy, "ok");
    } else if (no_driver) {
        snprintf(why, nwhy, "engines accept the graph; kernels compiled, not loadable without a GPU");
    } else {
        snprintf(why, nwhy, "%s", g->err);
        rc = -1;
    }
    g_free(g);
    return rc;
}

int g_offline_check(int arch, void (*build)(Graph *g, const void *ctx), const void *ctx, char *why, size_t nwhy) {
    Graph g;
    g_init(&g);
    int skip = 0;
    cudnnBackendDescriptor_t dp = g_devprop(&g, arch, &skip);
    if (!dp) {
        snprintf(why, nwhy, "%s", g.err);
        g_free(&g);
        return skip ? 1 : -1;
    }
    build(&g, ctx);
    return g_offline_result(&g, dp, why, nwhy);
}

// ---------------------------------------------------------------- handle and execution
static cudnnHandle_t g_handle;
static int g_handle_state = 0;  // 0 untried, 1 ready, -1 unavailable
static char g_handle_why[160];

cudnnHandle_t dnn_handle(const char **why) {
    if (!g_handle_state) {
        cudnnStatus_t st = cudnnCreate(&g_handle);
        g_handle_state = st == CUDNN_STATUS_SUCCESS ? 1 : -1;
        if (st != CUDNN_STATUS_SUCCESS)
            snprintf(g_handle_why, sizeof g_handle_why, "cudnnCreate: %s", cudnnGetErrorString(st));
    }
    if (why) *why = g_handle_why;
    return g_handle_state == 1 ? g_handle : NULL;
}

int g_execute(cudnnBackendDescriptor_t plan, int n, const int64_t *uids, void **ptrs, void *ws, cudaStream_t st,
              const char *who) {
    cudnnHandle_t h = dnn_handle(NULL);
    if (!h || cudnnSetStream(h, st) != CUDNN_STATUS_SUCCESS) return (int)cudaErrorNotSupported;
    Graph g;
    g_init(&g);
    cudnnBackendDescriptor_t vp = g_new(&g, CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, "variant pack");
    g_set(&g, vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids, "variant pack");
    g_set(&g, vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs, "variant pack");
    g_set(&g, vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws, "variant pack");
    g_final(&g, vp, "variant pack");
    if (!g_failed(&g)) g_check(&g, cudnnBackendExecute(h, plan, vp), "execute");
    const bool failed = g_failed(&g);
    if (failed) fprintf(stderr, "%s: %s\n", who, g.err);
    g_free(&g);
    return failed ? (int)cudaErrorLaunchFailure : (int)cudaGetLastError();
}
#endif  // A2F_HAVE_CUDNN
