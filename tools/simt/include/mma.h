// mma.h: the WMMA fragment API (nvcuda::wmma) for the SIMT emulator.
//
// Found before any CUDA toolkit header on the emulator's include path, so
// `#include <mma.h>` in a .cu gets this file under simtcc and NVIDIA's under
// nvcc. Supported (the tensor-core tiles the project uses, plus fp64):
//   __half, __nv_bfloat16 inputs: m16n16k16, m32n8k16, m8n32k16;
//     accumulators float (or __half for __half inputs)
//   precision::tf32 inputs (float storage): m16n16k8, float accumulators
//   double: m8n8k4
// with row_major / col_major matrix_a / matrix_b fragments and accumulators
// loaded / stored as mem_row_major or mem_col_major. Not modelled: int8/int4/
// binary fragments, the sub-byte experimental API.
//
// Distribution over the warp: a fragment of an R x C tile holds R*C/32
// elements per lane; tile element (r, c), at index e = r*C + c, lives in lane
// e % 32 as x[e / 32]. (The real mapping is unspecified and differs per
// architecture -- code may only apply the same elementwise op to every x[i] --
// so any consistent mapping is correct. This one interleaves rows across
// lanes, so code that assumes a lane owns a whole row fails visibly.)
//
// Warp-collective operations: load_matrix_sync and store_matrix_sync meet at
// a __syncwarp (every lane must call them, as on the GPU) and then each lane
// moves its own elements. mma_sync assembles the whole warp's tiles through
// the emulator's warp exchange: lane 0's table of fragment addresses is
// broadcast with __shfl_sync, every lane enters the addresses of its a, b, c
// fragments, a __syncwarp publishes them, each lane computes its own
// elements of D = A B + C reading the other lanes' fragments, and a second
// __syncwarp makes sure nobody overwrites c (often the same object as d) or
// leaves the table before every lane has read it. Arithmetic: each output
// element is c + sum_k a[k] b[k] with fmaf in increasing k (double for the
// fp64 shape), products of half/bf16/tf32 values being exact in float; real
// tensor cores sum in a different order and precision, so compare with a
// tolerance. tf32 inputs are truncated to tf32 (the hardware ignores the low
// 13 mantissa bits); __float_to_tf32 rounds to nearest, ties away (cvt.rna).
// All 32 lanes of the warp must be active (else the emulator aborts).
#pragma once
#include <stdint.h>
#include <string.h>

#include <cfloat>
#include <type_traits>

namespace nvcuda {
namespace wmma {

struct row_major {};
struct col_major {};
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
enum layout_t { mem_row_major, mem_col_major };
namespace precision {
struct tf32 {};
}  // namespace precision

namespace simt_detail {
template <class Use, int M, int N, int K> struct dims;
template <int M, int N, int K> struct dims<matrix_a, M, N, K> { enum { rows = M, cols = K }; };
template <int M, int N, int K> struct dims<matrix_b, M, N, K> { enum { rows = K, cols = N }; };
template <int M, int N, int K> struct dims<accumulator, M, N, K> { enum { rows = M, cols = N }; };

template <class T> struct storage { typedef T type; };
template <> struct storage<precision::tf32> { typedef float type; };

// (input type, shape) combinations tensor cores support and this file models.
template <class T, int M, int N, int K> struct valid_ab {
    static const bool half_shape = (M == 16 && N == 16 && K == 16) || (M == 32 && N == 8 && K == 16) ||
                                   (M == 8 && N == 32 && K == 16);
    static const bool value = ((std::is_same<T, __half>::value || std::is_same<T, __nv_bfloat16>::value) && half_shape) ||
                              (std::is_same<T, precision::tf32>::value && M == 16 && N == 16 && K == 8) ||
                              (std::is_same<T, double>::value && M == 8 && N == 8 && K == 4);
};
template <class T, int M, int N, int K> struct valid_acc {
    static const bool value = ((std::is_same<T, float>::value || std::is_same<T, __half>::value) &&
                               (valid_ab<__half, M, N, K>::value || valid_ab<precision::tf32, M, N, K>::value)) ||
                              (std::is_same<T, double>::value && M == 8 && N == 8 && K == 4);
};

static inline float tf32_trunc(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) != 0x7f800000u) u &= 0xffffe000u;  // keep inf / NaN
    memcpy(&f, &u, 4);
    return f;
}
// Multiplicand value as the tensor core sees it, and the accumulation type.
template <class T> struct in_t;
template <> struct in_t<__half> {
    typedef float acc;
    static float get(__half h) { return __half2float(h); }
};
template <> struct in_t<__nv_bfloat16> {
    typedef float acc;
    static float get(__nv_bfloat16 h) { return __bfloat162float(h); }
};
template <> struct in_t<precision::tf32> {
    typedef float acc;
    static float get(float f) { return tf32_trunc(f); }
};
template <> struct in_t<double> {
    typedef double acc;
    static double get(double d) { return d; }
};
// Accumulator element <-> accumulation type.
template <class T> struct acc_t;
template <> struct acc_t<float> {
    static float get(float f) { return f; }
    static float put(float f) { return f; }
};
template <> struct acc_t<__half> {
    static float get(__half h) { return __half2float(h); }
    static __half put(float f) { return __float2half_rn(f); }
};
template <> struct acc_t<double> {
    static double get(double d) { return d; }
    static double put(double d) { return d; }
};
static inline float fma_acc(float a, float b, float c) { return fmaf(a, b, c); }
static inline double fma_acc(double a, double b, double c) { return ::fma(a, b, c); }

// satf: +-inf (or beyond the destination's range) -> +-largest finite, NaN -> +0.
template <class TD> static inline float satf_clamp(float f) {
    const float mx = std::is_same<TD, __half>::value ? 65504.0f : FLT_MAX;
    if (f != f) return 0.0f;
    return f > mx ? mx : f < -mx ? -mx : f;
}
template <class TD> static inline double satf_clamp(double f) { return f != f ? 0.0 : f; }

// All 32 lanes must take part, and they meet here.
static inline void warp_collective(const char *what) {
    if (__activemask() != 0xffffffffu) ::simt::trap(what);
    __syncwarp();
}

template <class Layout> struct mat_layout;
template <> struct mat_layout<row_major> { static const layout_t value = mem_row_major; };
template <> struct mat_layout<col_major> { static const layout_t value = mem_col_major; };
}  // namespace simt_detail

template <class Use, int M, int N, int K, class T, class Layout = void>
class fragment {
    static_assert(std::is_same<Use, accumulator>::value ? simt_detail::valid_acc<T, M, N, K>::value
                                                        : simt_detail::valid_ab<T, M, N, K>::value,
                  "wmma::fragment: element type / shape not supported (see tools/simt/include/mma.h)");
    static_assert(std::is_same<Use, accumulator>::value || !std::is_same<Layout, void>::value,
                  "wmma::fragment: matrix_a / matrix_b need row_major or col_major");

  public:
    typedef T element_type;
    typedef typename simt_detail::storage<T>::type storage_element_type;
    enum {
        num_elements = simt_detail::dims<Use, M, N, K>::rows * simt_detail::dims<Use, M, N, K>::cols / 32
    };
    storage_element_type x[num_elements];
};

// Round to tf32 (10 mantissa bits), nearest, ties away from zero.
static inline float __float_to_tf32(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
    memcpy(&f, &u, 4);
    return f;
}

template <class Use, int M, int N, int K, class T, class Layout>
static inline void fill_fragment(fragment<Use, M, N, K, T, Layout> &f,
                                 const typename fragment<Use, M, N, K, T, Layout>::storage_element_type &v) {
    for (int i = 0; i < f.num_elements; i++) f.x[i] = v;
}

namespace simt_detail {
template <class F, class P>
static inline void load_tile(F &f, const P *p, unsigned ldm, layout_t layout, int rows, int cols) {
    int lane = ::simt::lane_id();
    for (int i = 0; i < F::num_elements; i++) {
        int e = i * 32 + lane, r = e / cols, c = e % cols;
        f.x[i] = p[layout == mem_row_major ? (size_t)r * ldm + c : (size_t)c * ldm + r];
    }
}
}  // namespace simt_detail

// matrix_a / matrix_b: p points at the tile's first element, ldm in elements.
template <class Use, int M, int N, int K, class T, class Layout>
static inline void load_matrix_sync(fragment<Use, M, N, K, T, Layout> &f,
                                    const typename fragment<Use, M, N, K, T, Layout>::storage_element_type *p,
                                    unsigned ldm) {
    static_assert(!std::is_same<Use, accumulator>::value, "wmma::load_matrix_sync: accumulators need a layout_t");
    simt_detail::warp_collective("wmma::load_matrix_sync needs all 32 lanes of the warp");
    typedef simt_detail::dims<Use, M, N, K> D;
    simt_detail::load_tile(f, p, ldm, simt_detail::mat_layout<Layout>::value, D::rows, D::cols);
}

template <int M, int N, int K, class T>
static inline void load_matrix_sync(fragment<accumulator, M, N, K, T> &f, const T *p, unsigned ldm, layout_t layout) {
    simt_detail::warp_collective("wmma::load_matrix_sync needs all 32 lanes of the warp");
    simt_detail::load_tile(f, p, ldm, layout, M, N);
}

template <int M, int N, int K, class T>
static inline void store_matrix_sync(T *p, const fragment<accumulator, M, N, K, T> &f, unsigned ldm, layout_t layout) {
    simt_detail::warp_collective("wmma::store_matrix_sync needs all 32 lanes of the warp");
    int lane = ::simt::lane_id();
    for (int i = 0; i < f.num_elements; i++) {
        int e = i * 32 + lane, r = e / N, c = e % N;
        p[layout == mem_row_major ? (size_t)r * ldm + c : (size_t)c * ldm + r] = f.x[i];
    }
}

// D = A B + C over the warp (d may be the same object as c).
template <int M, int N, int K, class TAB, class LA, class LB, class TC, class TD>
static inline void mma_sync(fragment<accumulator, M, N, K, TD> &d, const fragment<matrix_a, M, N, K, TAB, LA> &a,
                            const fragment<matrix_b, M, N, K, TAB, LB> &b, const fragment<accumulator, M, N, K, TC> &c,
                            bool satf = false) {
    typedef fragment<matrix_a, M, N, K, TAB, LA> FA;
    typedef fragment<matrix_b, M, N, K, TAB, LB> FB;
    typedef fragment<accumulator, M, N, K, TC> FC;
    static_assert(std::is_same<TAB, __half>::value || (!std::is_same<TC, __half>::value && !std::is_same<TD, __half>::value),
                  "wmma::mma_sync: __half accumulators need __half inputs");
    typedef typename simt_detail::in_t<TAB>::acc Acc;
    typedef simt_detail::in_t<TAB> In;
    struct Slot {
        const FA *a;
        const FB *b;
        const FC *c;
    };
    if (__activemask() != 0xffffffffu) ::simt::trap("wmma::mma_sync needs all 32 lanes of the warp");
    Slot table[32];  // lane 0's is the one used
    Slot *t = __shfl_sync(0xffffffffu, &table[0], 0);
    int lane = ::simt::lane_id();
    t[lane].a = &a;
    t[lane].b = &b;
    t[lane].c = &c;
    __syncwarp();
    Acc out[FC::num_elements];
    for (int i = 0; i < FC::num_elements; i++) {
        int e = i * 32 + lane, r = e / N, col = e % N;
        Acc acc = simt_detail::acc_t<TC>::get(t[e & 31].c->x[e >> 5]);
        for (int k = 0; k < K; k++) {
            int ea = r * K + k, eb = k * N + col;
            Acc av = In::get(t[ea & 31].a->x[ea >> 5]);
            Acc bv = In::get(t[eb & 31].b->x[eb >> 5]);
            acc = simt_detail::fma_acc(av, bv, acc);
        }
        out[i] = satf ? simt_detail::satf_clamp<TD>(acc) : acc;
    }
    __syncwarp();  // every lane has read every a, b, c (and lane 0's table)
    for (int i = 0; i < FC::num_elements; i++) d.x[i] = simt_detail::acc_t<TD>::put(out[i]);
}

}  // namespace wmma
}  // namespace nvcuda
