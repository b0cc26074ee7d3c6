// cudnn_sdpa.cu: cuDNN's fused attention through the backend graph API (plain C
// calls, no frontend library). See cudnn_sdpa.h for the contract.
//
// The graphs are the ones cuDNN's fused flash-attention engines match (the
// decomposition cudnn-frontend lowers its SDPA nodes to for cuDNN 8.9 - 9.x):
//
// forward   S = Q K^T (KT is K's view with the last two axes swapped)   [B,H,Nq,Nk] f32
//           S = S * scale  ->  causal: S = select(row >= col, S, -inf)
//           M = max_j S,  E = exp(S - M),  Z = sum_j E,  Stats = M + log Z    [B,H,Nq,1]
//           O = (E / Z) V
// backward  Dsum = sum_d (dO * O) * 1                                   [B,H,Nq,1] f32 (workspace)
//           P = exp(Q K^T * scale - Stats) (causal: -inf where col > row)
//           dV = P^T dO,  dP = dO V^T,  dS = P * (dP - Dsum) * scale
//           dK = dS^T Q,  dQ = dS K   (non-deterministic variant: dQ through an f32
//                                      accumulator in the workspace, then identity)
// Every intermediate is a virtual f32 tensor except the bf16 operands of the second
// matmuls (P for P V, the transposed P and dS for dV and dK), as the engines require.
// Scalars (scale, -inf, 1) are by-value tensors. Where cuDNN has it (9.13.1+) and there
// is no mask, the forward is first tried as cuDNN's single SDPA operation (what
// cudnn-frontend picks there), then as the composite graph.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.cuh"
#include "cudnn_sdpa.h"
#include "device.h"

// ---------------------------------------------------------------- view add
namespace {
template <typename T>
__global__ void view_add_kernel(T *dst, long dsb, long dstr, const T *src, int B, int N, int C) {
    const size_t n = (size_t)B * N * C;
    GRID_STRIDE(i, n) {
        const int c = (int)(i % C);
        const size_t r = i / C;
        const int t = (int)(r % N), b = (int)(r / N);
        T *d = dst + (size_t)b * dsb + (size_t)t * dstr + c;
        *d = from_f32<T>(to_f32(*d) + to_f32(src[i]));
    }
}
}  // namespace

extern "C" int cuda_view_add(DType dt, void *dst, long dsb, long dstr, const void *src, int B, int N, int C,
                             cudaStream_t st) {
    if (B <= 0 || N <= 0 || C <= 0) return 0;
    DISPATCH_T(dt, {
        const size_t n = (size_t)B * N * C;
        view_add_kernel<T><<<grid_for(n, 256), 256, 0, st>>>((T *)dst, dsb, dstr, (const T *)src, B, N, C);
    });
    return (int)cudaGetLastError();
}

#ifndef A2F_HAVE_CUDNN
// ---------------------------------------------------------------- built without cuDNN
extern "C" int cuda_cudnn_sdpa_built(void) { return 0; }
extern "C" int cuda_cudnn_sdpa_available(DType dt, const AttnShape *s, int bwd, const void *const *ptrs, int nptrs,
                                         const char **why) {
    if (why) *why = "this build has no cuDNN (A2F_HAVE_CUDNN unset)";
    return 0;
}
extern "C" int cuda_cudnn_sdpa_fwd(DType dt, void *o, float *lse, const void *q, const void *k, const void *v,
                                   const AttnShape *s, cudaStream_t st) {
    return (int)cudaErrorNotSupported;
}
extern "C" int cuda_cudnn_sdpa_bwd(DType dt, void *dq, void *dk, void *dv, const void *dout, const void *q,
                                   const void *k, const void *v, const void *o, const float *lse, const AttnShape *s,
                                   cudaStream_t st) {
    return (int)cudaErrorNotSupported;
}
extern "C" int cuda_cudnn_sdpa_check_offline(const AttnShape *s, int variant, int arch, char *why, size_t nwhy) {
    snprintf(why, nwhy, "this build has no cuDNN");
    return 1;
}
extern "C" const char *cuda_cudnn_sdpa_variant(const AttnShape *s, int bwd) { return NULL; }
#else
#include "cudnn_graph.cuh"

// Unique ids of the tensors the caller binds (variant pack); virtual ones count from 100.
enum { U_Q = 1, U_K, U_V, U_O, U_STATS, U_SCALE, U_NEG_INF, U_DO, U_DQ, U_DK, U_DV, U_ONE, U_DSUM, U_DQACC };

// ---------------------------------------------------------------- the two graphs
typedef struct {  // the shapes every graph needs
    int64_t b, h, sq, sk, d;
    int64_t q_dim[4], q_str[4], kt_dim[4], kt_str[4], v_dim[4], v_str[4], vt_dim[4], vt_str[4], o_dim[4], o_str[4];
    int64_t s_dim[4], s_str[4], r_dim[4], r_str[4], pt_dim[4], pt_str[4];
} Dims;

static void make_dims(Dims *m, const AttnShape *s) {
    const int64_t b = s->B, h = s->H, sq = s->Nq, sk = s->Nk, d = s->D;
    m->b = b, m->h = h, m->sq = sq, m->sk = sk, m->d = d;
    // element (b, h, i, d) of q sits at b*q_sb + i*q_st + h*D + d: [B,H,Nq,D] with strides {q_sb, D, q_st, 1}
    const int64_t qd[4] = {b, h, sq, d}, qs[4] = {s->q_sb, d, s->q_st, 1};
    const int64_t ktd[4] = {b, h, d, sk}, kts[4] = {s->k_sb, d, 1, s->k_st};
    const int64_t vd[4] = {b, h, sk, d}, vs[4] = {s->v_sb, d, s->v_st, 1};
    const int64_t vtd[4] = {b, h, d, sk}, vts[4] = {s->v_sb, d, 1, s->v_st};
    const int64_t od[4] = {b, h, sq, d}, os[4] = {s->o_sb, d, s->o_st, 1};
    const int64_t sd[4] = {b, h, sq, sk}, ss[4] = {h * sq * sk, sq * sk, sk, 1};
    const int64_t rd[4] = {b, h, sq, 1}, rs[4] = {h * sq, sq, 1, 1};
    const int64_t ptd[4] = {b, h, sk, sq}, pts[4] = {h * sq * sk, sq * sk, 1, sk};
    memcpy(m->q_dim, qd, sizeof qd), memcpy(m->q_str, qs, sizeof qs);
    memcpy(m->kt_dim, ktd, sizeof ktd), memcpy(m->kt_str, kts, sizeof kts);
    memcpy(m->v_dim, vd, sizeof vd), memcpy(m->v_str, vs, sizeof vs);
    memcpy(m->vt_dim, vtd, sizeof vtd), memcpy(m->vt_str, vts, sizeof vts);
    memcpy(m->o_dim, od, sizeof od), memcpy(m->o_str, os, sizeof os);
    memcpy(m->s_dim, sd, sizeof sd), memcpy(m->s_str, ss, sizeof ss);
    memcpy(m->r_dim, rd, sizeof rd), memcpy(m->r_str, rs, sizeof rs);
    memcpy(m->pt_dim, ptd, sizeof ptd), memcpy(m->pt_str, pts, sizeof pts);
}

static const cudnnDataType_t F32 = CUDNN_DATA_FLOAT, BF16 = CUDNN_DATA_BFLOAT16;

// S -> select(row >= col, S, -inf): keys after the query are masked (top-left diagonal).
static cudnnBackendDescriptor_t g_causal(Graph *g, const Dims *m, cudnnBackendDescriptor_t s,
                                         cudnnBackendDescriptor_t neg_inf) {
    cudnnBackendDescriptor_t row = g_tensor(g, CUDNN_DATA_INT32, m->s_dim, m->s_str, 0, "causal row index");
    cudnnBackendDescriptor_t col = g_tensor(g, CUDNN_DATA_INT32, m->s_dim, m->s_str, 0, "causal column index");
    cudnnBackendDescriptor_t keep = g_tensor(g, CUDNN_DATA_BOOLEAN, m->s_dim, m->s_str, 0, "causal mask");
    cudnnBackendDescriptor_t y = g_tensor(g, F32, m->s_dim, m->s_str, 0, "masked scores");
    g_pw(g, CUDNN_POINTWISE_GEN_INDEX, F32, s, NULL, NULL, row, 2, "gen row index");
    g_pw(g, CUDNN_POINTWISE_GEN_INDEX, F32, s, NULL, NULL, col, 3, "gen column index");
    g_pw(g, CUDNN_POINTWISE_CMP_GE, CUDNN_DATA_BOOLEAN, row, col, NULL, keep, -1, "row >= col");
    g_pw(g, CUDNN_POINTWISE_BINARY_SELECT, F32, s, neg_inf, keep, y, -1, "causal select");
    return y;
}

static void build_fwd(Graph *g, const AttnShape *s) {
    Dims m;
    make_dims(&m, s);
    cudnnBackendDescriptor_t q = g_tensor(g, BF16, m.q_dim, m.q_str, U_Q, "Q");
    cudnnBackendDescriptor_t kt = g_tensor(g, BF16, m.kt_dim, m.kt_str, U_K, "K^T");
    cudnnBackendDescriptor_t v = g_tensor(g, BF16, m.v_dim, m.v_str, U_V, "V");
    cudnnBackendDescriptor_t o = g_tensor(g, BF16, m.o_dim, m.o_str, U_O, "O");
    cudnnBackendDescriptor_t stats = g_tensor(g, F32, m.r_dim, m.r_str, U_STATS, "Stats");
    cudnnBackendDescriptor_t scale = g_scalar(g, U_SCALE, "scale");

    cudnnBackendDescriptor_t s0 = g_tensor(g, F32, m.s_dim, m.s_str, 0, "S");
    g_matmul(g, q, kt, s0, "matmul Q K^T");
    cudnnBackendDescriptor_t s1 = g_tensor(g, F32, m.s_dim, m.s_str, 0, "S scaled");
    g_pw(g, CUDNN_POINTWISE_MUL, F32, s0, scale, NULL, s1, -1, "S * scale");
    if (s->causal) s1 = g_causal(g, &m, s1, g_scalar(g, U_NEG_INF, "-inf"));

    cudnnBackendDescriptor_t mx = g_tensor(g, F32, m.r_dim, m.r_str, 0, "row max");
    g_reduce(g, CUDNN_REDUCE_TENSOR_MAX, s1, mx, "max over keys");
    cudnnBackendDescriptor_t sub = g_tensor(g, F32, m.s_dim, m.s_str, 0, "S - max");
    g_pw(g, CUDNN_POINTWISE_SUB, F32, s1, mx, NULL, sub, -1, "S - max");
    cudnnBackendDescriptor_t e = g_tensor(g, F32, m.s_dim, m.s_str, 0, "exp");
    g_pw(g, CUDNN_POINTWISE_EXP, F32, sub, NULL, NULL, e, -1, "exp");
    cudnnBackendDescriptor_t z = g_tensor(g, F32, m.r_dim, m.r_str, 0, "row sum");
    g_reduce(g, CUDNN_REDUCE_TENSOR_ADD, e, z, "sum over keys");
    cudnnBackendDescriptor_t lz = g_tensor(g, F32, m.r_dim, m.r_str, 0, "log sum");
    g_pw(g, CUDNN_POINTWISE_LOG, F32, z, NULL, NULL, lz, -1, "log");
    g_pw(g, CUDNN_POINTWISE_ADD, F32, mx, lz, NULL, stats, -1, "Stats = max + log sum");
    cudnnBackendDescriptor_t p = g_tensor(g, BF16, m.s_dim, m.s_str, 0, "P");  // the P V matmul takes bf16 x bf16
    g_pw(g, CUDNN_POINTWISE_DIV, F32, e, z, NULL, p, -1, "P = exp / sum");
    g_matmul(g, p, v, o, "matmul P V");
}

static void build_bwd(Graph *g, const AttnShape *s, int deterministic) {
    Dims m;
    make_dims(&m, s);
    cudnnBackendDescriptor_t q = g_tensor(g, BF16, m.q_dim, m.q_str, U_Q, "Q");
    cudnnBackendDescriptor_t kt = g_tensor(g, BF16, m.kt_dim, m.kt_str, U_K, "K^T");
    cudnnBackendDescriptor_t vt = g_tensor(g, BF16, m.vt_dim, m.vt_str, U_V, "V^T");
    cudnnBackendDescriptor_t o = g_tensor(g, BF16, m.o_dim, m.o_str, U_O, "O");
    cudnnBackendDescriptor_t dO = g_tensor(g, BF16, m.o_dim, m.o_str, U_DO, "dO");
    cudnnBackendDescriptor_t stats = g_tensor(g, F32, m.r_dim, m.r_str, U_STATS, "Stats");
    cudnnBackendDescriptor_t scale = g_scalar(g, U_SCALE, "scale");
    cudnnBackendDescriptor_t one = g_scalar(g, U_ONE, "one");
    // gradients are written contiguous [B, N, H*D] into scratch (the caller's views get them added)
    const int64_t hd = m.h * m.d;
    const int64_t dq_str[4] = {m.sq * hd, m.d, hd, 1}, dk_str[4] = {m.sk * hd, m.d, hd, 1};
    const int64_t dk_dim[4] = {m.b, m.h, m.sk, m.d};
    cudnnBackendDescriptor_t dq = g_tensor(g, BF16, m.q_dim, dq_str, U_DQ, "dQ");
    cudnnBackendDescriptor_t dk = g_tensor(g, BF16, dk_dim, dk_str, U_DK, "dK");
    cudnnBackendDescriptor_t dv = g_tensor(g, BF16, dk_dim, dk_str, U_DV, "dV");

    // Dsum = rowsum(dO * O) * 1 (f32, in the workspace)
    const int64_t odo_str[4] = {m.h * m.sq * m.d, m.sq * m.d, hd, 1};
    cudnnBackendDescriptor_t odo = g_tensor(g, F32, m.o_dim, odo_str, 0, "dO * O");
    g_pw(g, CUDNN_POINTWISE_MUL, F32, dO, o, NULL, odo, -1, "dO * O");
    cudnnBackendDescriptor_t rs = g_tensor(g, F32, m.r_dim, m.r_str, 0, "rowsum dO * O");
    g_reduce(g, CUDNN_REDUCE_TENSOR_ADD, odo, rs, "sum over head dim");
    cudnnBackendDescriptor_t dsum = g_tensor(g, F32, m.r_dim, m.r_str, U_DSUM, "Dsum");
    g_pw(g, CUDNN_POINTWISE_MUL, F32, rs, one, NULL, dsum, -1, "Dsum * 1");

    // P = exp(Q K^T * scale - Stats), masked
    cudnnBackendDescriptor_t s0 = g_tensor(g, F32, m.s_dim, m.s_str, 0, "S");
    g_matmul(g, q, kt, s0, "matmul Q K^T");
    cudnnBackendDescriptor_t s1 = g_tensor(g, F32, m.s_dim, m.s_str, 0, "S scaled");
    g_pw(g, CUDNN_POINTWISE_MUL, F32, s0, scale, NULL, s1, -1, "S * scale");
    cudnnBackendDescriptor_t s2 = g_tensor(g, F32, m.s_dim, m.s_str, 0, "S - Stats");
    g_pw(g, CUDNN_POINTWISE_SUB, F32, s1, stats, NULL, s2, -1, "S - Stats");
    if (s->causal) s2 = g_causal(g, &m, s2, g_scalar(g, U_NEG_INF, "-inf"));
    cudnnBackendDescriptor_t p = g_tensor(g, F32, m.s_dim, m.s_str, 0, "P");
    g_pw(g, CUDNN_POINTWISE_EXP, F32, s2, NULL, NULL, p, -1, "P = exp");

    // dV = P^T dO
    cudnnBackendDescriptor_t pt = g_tensor(g, BF16, m.pt_dim, m.pt_str, 0, "P^T");
    g_reshape(g, p, pt, "reshape P^T");
    g_matmul(g, pt, dO, dv, "matmul P^T dO");

    // dS = P * (dO V^T - Dsum) * scale
    cudnnBackendDescriptor_t dp = g_tensor(g, F32, m.s_dim, m.s_str, 0, "dP");
    g_matmul(g, dO, vt, dp, "matmul dO V^T");
    cudnnBackendDescriptor_t dp1 = g_tensor(g, F32, m.s_dim, m.s_str, 0, "dP - Dsum");
    g_pw(g, CUDNN_POINTWISE_SUB, F32, dp, dsum, NULL, dp1, -1, "dP - Dsum");
    cudnnBackendDescriptor_t dp2 = g_tensor(g, F32, m.s_dim, m.s_str, 0, "P * (dP - Dsum)");
    g_pw(g, CUDNN_POINTWISE_MUL, F32, dp1, p, NULL, dp2, -1, "* P");
    cudnnBackendDescriptor_t ds = g_tensor(g, F32, m.s_dim, m.s_str, 0, "dS");
    g_pw(g, CUDNN_POINTWISE_MUL, F32, dp2, scale, NULL, ds, -1, "dS * scale");

    // dK = dS^T Q
    cudnnBackendDescriptor_t dst = g_tensor(g, BF16, m.pt_dim, m.pt_str, 0, "dS^T");
    g_reshape(g, ds, dst, "reshape dS^T");
    g_matmul(g, dst, q, dk, "matmul dS^T Q");

    // dQ = dS K (K as [B,H,Nk,D]: K^T's view with the last axes swapped back)
    const int64_t k_dim[4] = {m.b, m.h, m.sk, m.d}, k_str[4] = {s->k_sb, m.d, s->k_st, 1};
    cudnnBackendDescriptor_t k = g_tensor(g, BF16, k_dim, k_str, 0, "K");
    g_reshape(g, kt, k, "reshape K");
    if (deterministic) {
        g_matmul(g, ds, k, dq, "matmul dS K");
    } else {
        const int64_t acc_str[4] = {m.h * m.sq * m.d, m.sq * m.d, m.d, 1};
        cudnnBackendDescriptor_t acc = g_tensor(g, F32, m.q_dim, acc_str, U_DQACC, "dQ accumulator");
        g_matmul(g, ds, k, acc, "matmul dS K");
        g_pw(g, CUDNN_POINTWISE_IDENTITY, F32, acc, NULL, NULL, dq, -1, "dQ = accumulator");
    }
}

// The forward as cuDNN's single SDPA operation (cuDNN 9.13.1+; what cudnn-frontend picks
// first there): Q, K, V (K untransposed), O, Stats, scale. No mask (causal would need
// a score-modifier subgraph): causal shapes take the composite graph.
static void build_fwd_unified(Graph *g, const AttnShape *s) {
#if CUDNN_VERSION >= 91301
    Dims m;
    make_dims(&m, s);
    const int64_t k_dim[4] = {m.b, m.h, m.sk, m.d}, k_str[4] = {s->k_sb, m.d, s->k_st, 1};
    cudnnBackendDescriptor_t q = g_tensor(g, BF16, m.q_dim, m.q_str, U_Q, "Q");
    cudnnBackendDescriptor_t k = g_tensor(g, BF16, k_dim, k_str, U_K, "K");
    cudnnBackendDescriptor_t v = g_tensor(g, BF16, m.v_dim, m.v_str, U_V, "V");
    cudnnBackendDescriptor_t o = g_tensor(g, BF16, m.o_dim, m.o_str, U_O, "O");
    cudnnBackendDescriptor_t stats = g_tensor(g, F32, m.r_dim, m.r_str, U_STATS, "Stats");
    cudnnBackendDescriptor_t scale = g_scalar(g, U_SCALE, "scale");
    const char *what = "SDPA forward operation";
    cudnnBackendDescriptor_t op =
        g_new(g, (cudnnBackendDescriptorType_t)CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR, what);
    g_link(g, op, CUDNN_ATTR_OPERATION_SDPA_FWD_QDESC, q, what);
    g_link(g, op, CUDNN_ATTR_OPERATION_SDPA_FWD_KDESC, k, what);
    g_link(g, op, CUDNN_ATTR_OPERATION_SDPA_FWD_VDESC, v, what);
    g_link(g, op, CUDNN_ATTR_OPERATION_SDPA_FWD_ODESC, o, what);
    g_link(g, op, CUDNN_ATTR_OPERATION_SDPA_FWD_STATSDESC, stats, what);
    g_link(g, op, CUDNN_ATTR_OPERATION_SDPA_FWD_SCALEDESC, scale, what);
    g_op(g, op, what);
#else
    snprintf(g->err, sizeof g->err, "the SDPA operation needs cuDNN 9.13.1 headers");
#endif
}

static const char *const g_variant_name[A2F_SDPA_NVARIANTS] = {"composite", "unified", "composite-det",
                                                                 "composite-nondet"};

// 1 when this cuDNN can run graph variant v for shape s at all (before asking its engines).
static int variant_possible(int v, const AttnShape *s) {
    if (v == A2F_SDPA_FWD_UNIFIED) return !s->causal && cudnnGetVersion() >= 91301 && CUDNN_VERSION >= 91301;
    return 1;
}

static void build_variant(Graph *g, const AttnShape *s, int v) {
    if (v == A2F_SDPA_FWD_UNIFIED) build_fwd_unified(g, s);
    else if (v == A2F_SDPA_FWD) build_fwd(g, s);
    else build_bwd(g, s, v == A2F_SDPA_BWD);
}

// ---------------------------------------------------------------- offline check
typedef struct {
    const AttnShape *s;
    int variant;
} OfflineCase;

static void build_case(Graph *g, const void *ctx) {
    const OfflineCase *c = (const OfflineCase *)ctx;
    build_variant(g, c->s, c->variant);
}

extern "C" int cuda_cudnn_sdpa_check_offline(const AttnShape *s, int variant, int arch, char *why, size_t nwhy) {
    snprintf(why, nwhy, "ok");
    if (variant < 0 || variant >= A2F_SDPA_NVARIANTS) {
        snprintf(why, nwhy, "no graph variant %d", variant);
        return -1;
    }
    if (!variant_possible(variant, s)) {
        snprintf(why, nwhy, "the %s graph does not apply here (cuDNN %zu)", g_variant_name[variant], cudnnGetVersion());
        return 1;
    }
    const OfflineCase c = {s, variant};
    return g_offline_check(arch, build_case, &c, why, nwhy);
}

// ---------------------------------------------------------------- plan cache and execution
typedef struct {
    AttnShape s;
    int bwd, det;
    int variant;                    // the graph the plan runs (A2F_SDPA_*)
    cudnnBackendDescriptor_t plan;  // NULL: cuDNN refused the shape (why says how)
    int64_t ws;
    char why[320];
} Plan;
#define PLAN_MAX 64
static Plan g_plans[PLAN_MAX];
static int g_nplans = 0;
static int deterministic_mode(void) {
    const char *e = getenv("A2F_CUDNN_SDPA_NONDET");
    return !(e && !strcmp(e, "1"));
}

static const Plan *plan_get(const AttnShape *s, int bwd) {
    const int det = bwd ? deterministic_mode() : 1;
    for (int i = 0; i < g_nplans; i++)
        if (g_plans[i].bwd == bwd && g_plans[i].det == det && !memcmp(&g_plans[i].s, s, sizeof *s))
            return &g_plans[i];
    Plan *p = g_nplans < PLAN_MAX ? &g_plans[g_nplans++] : &g_plans[(s->Nq + s->Nk + s->D + bwd) % PLAN_MAX];
    if (p->plan) cudnnBackendDestroyDescriptor(p->plan);
    memset(p, 0, sizeof *p);
    p->s = *s, p->bwd = bwd, p->det = det;
    const char *hwhy = NULL;
    cudnnHandle_t h = dnn_handle(&hwhy);
    if (!h) {
        snprintf(p->why, sizeof p->why, "%s", hwhy);
        return p;
    }
    // forward: the single SDPA operation where it applies, else the composite graph
    const int first = bwd ? (det ? A2F_SDPA_BWD : A2F_SDPA_BWD_NONDET) : A2F_SDPA_FWD_UNIFIED;
    const int last = bwd ? first : A2F_SDPA_FWD;
    for (int v = first; v >= last && !p->plan; v--) {
        if (!variant_possible(v, s)) continue;
        Graph g;
        g_init(&g);
        build_variant(&g, s, v);
        p->plan = g_plan_live(&g, h, &p->ws);
        p->variant = v;
        if (!p->plan) snprintf(p->why, sizeof p->why, "%s graph: %s", g_variant_name[v], g.err);
        g_free(&g);
    }
    return p;
}

extern "C" const char *cuda_cudnn_sdpa_variant(const AttnShape *s, int bwd) {
    const char *why = NULL;
    if (!cuda_cudnn_sdpa_available(DT_BF16, s, bwd, NULL, 0, &why)) return NULL;
    return g_variant_name[plan_get(s, bwd)->variant];
}

extern "C" int cuda_cudnn_sdpa_built(void) { return 1; }

static bool views_ok(DType dt, const AttnShape *s, const void *const *ptrs, int nptrs, const char **why) {
    const long st[8] = {s->q_sb, s->q_st, s->k_sb, s->k_st, s->v_sb, s->v_st, s->o_sb, s->o_st};
    if (dt != DT_BF16) return *why = "cuDNN SDPA path is bf16 only", false;
    if (s->B <= 0 || s->H <= 0 || s->Nq <= 0 || s->Nk <= 0 || s->D <= 0 || s->D % 8)
        return *why = "head dim must be a multiple of 8", false;
    for (int i = 0; i < 8; i++)
        if (st[i] % 8) return *why = "strides must be multiples of 8 elements", false;
    for (int i = 0; i < nptrs; i++)
        if (ptrs && ptrs[i] && !al16(ptrs[i])) return *why = "pointers must be 16-byte aligned", false;
    return true;
}

extern "C" int cuda_cudnn_sdpa_available(DType dt, const AttnShape *s, int bwd, const void *const *ptrs, int nptrs,
                                         const char **why) {
    const char *w = NULL;
    int ok = 0;
    if (views_ok(dt, s, ptrs, nptrs, &w)) {
        const Plan *p = plan_get(s, bwd);
        ok = p->plan != NULL;
        w = p->why;
    }
    if (why) *why = ok ? "" : w;
    return ok;
}

static size_t up256(size_t n) { return (n + 255) & ~(size_t)255; }

extern "C" int cuda_cudnn_sdpa_fwd(DType dt, void *o, float *lse, const void *q, const void *k, const void *v,
                                   const AttnShape *s, cudaStream_t st) {
    const void *pp[5] = {o, lse, q, k, v};
    if (!cuda_cudnn_sdpa_available(dt, s, 0, pp, 5, NULL)) return (int)cudaErrorNotSupported;
    const Plan *p = plan_get(s, 0);
    float scale = 1.0f / sqrtf((float)s->D), neg_inf = -INFINITY;
    void *ws = p->ws ? dev_workspace((size_t)p->ws) : NULL;
    if (p->ws && !ws) return (int)cudaErrorMemoryAllocation;
    int64_t uids[7] = {U_Q, U_K, U_V, U_O, U_STATS, U_SCALE, U_NEG_INF};
    void *ptrs[7] = {(void *)q, (void *)k, (void *)v, o, lse, &scale, &neg_inf};
    return g_execute(p->plan, s->causal ? 7 : 6, uids, ptrs, ws, st, "cuDNN SDPA");
}

extern "C" int cuda_cudnn_sdpa_bwd(DType dt, void *dq, void *dk, void *dv, const void *dout, const void *q,
                                   const void *k, const void *v, const void *o, const float *lse, const AttnShape *s,
                                   cudaStream_t st) {
    const void *pp[9] = {dq, dk, dv, dout, q, k, v, o, lse};
    if (!cuda_cudnn_sdpa_available(dt, s, 1, pp, 9, NULL)) return (int)cudaErrorNotSupported;
    if (!dq && !dk && !dv) return 0;
    const Plan *p = plan_get(s, 1);
    const int HD = s->H * s->D;
    const size_t nq = (size_t)s->B * s->Nq * HD, nk = (size_t)s->B * s->Nk * HD;
    // workspace: plan | Dsum [B,H,Nq] f32 | dQ accumulator [B,H,Nq,D] f32 (non-deterministic) | dQ, dK, dV bf16
    const size_t o_dsum = up256((size_t)p->ws), o_acc = o_dsum + up256((size_t)s->B * s->H * s->Nq * 4);
    const size_t o_dq = o_acc + (p->det ? 0 : up256(nq * 4)), o_dk = o_dq + up256(nq * 2), o_dv = o_dk + up256(nk * 2);
    char *ws = (char *)dev_workspace(o_dv + up256(nk * 2));
    if (!ws) return (int)cudaErrorMemoryAllocation;
    if (!p->det && cudaMemsetAsync(ws + o_acc, 0, nq * 4, st) != cudaSuccess) return (int)cudaGetLastError();
    float scale = 1.0f / sqrtf((float)s->D), neg_inf = -INFINITY, one = 1.0f;
    int64_t uids[14] = {U_Q, U_K, U_V, U_O, U_DO, U_STATS, U_DQ, U_DK, U_DV, U_DSUM, U_SCALE, U_ONE};
    void *ptrs[14] = {(void *)q, (void *)k,     (void *)v,     (void *)o,  (void *)dout, (void *)lse,
                      ws + o_dq, ws + o_dk,     ws + o_dv,     ws + o_dsum, &scale,      &one};
    int n = 12;
    if (s->causal) uids[n] = U_NEG_INF, ptrs[n++] = &neg_inf;
    if (!p->det) uids[n] = U_DQACC, ptrs[n++] = ws + o_acc;
    int rc = g_execute(p->plan, n, uids, ptrs, ws, st, "cuDNN SDPA");
    if (!rc && dq) rc = cuda_view_add(dt, dq, s->q_sb, s->q_st, ws + o_dq, s->B, s->Nq, HD, st);
    if (!rc && dk) rc = cuda_view_add(dt, dk, s->k_sb, s->k_st, ws + o_dk, s->B, s->Nk, HD, st);
    if (!rc && dv) rc = cuda_view_add(dt, dv, s->v_sb, s->v_st, ws + o_dv, s->B, s->Nk, HD, st);
    return rc;
}
#endif  // A2F_HAVE_CUDNN
