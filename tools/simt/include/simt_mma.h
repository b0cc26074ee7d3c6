// simt_mma.h: the SIMT emulator's versions of the tensor-core primitives of
// kernels/cuda/mma.cuh (included from there under SIMT_EMULATOR): mma.sync
// m16n8k16 bf16 -> fp32, ldmatrix m8n8 .b16 x1/x2/x4 (plain and .trans) and
// cp.async 16-byte copies with commit / wait_group.
//
// Warp-collective instructions (mma, ldmatrix) need all 32 lanes of the warp
// (else the emulator aborts naming the instruction). Each lane writes its
// operands (mma: its a[4], b[2]; ldmatrix: its row address) into its slot of a
// per-warp exchange area, meets the other lanes at one __syncwarp, then reads
// the other lanes' slots and computes its own outputs with the PTX ISA
// fragment layouts (documented in mma.cuh). The exchange area is double
// buffered by a per-lane instruction counter (every lane of a warp executes
// the same collectives, so the counters agree): a lane can only reuse a
// buffer after the next collective's __syncwarp, which every lane reaches
// only after it has finished reading -- so one warp operation per
// instruction. Every lane also records which instruction it executed; lanes
// that met in different instructions (or different .num / .trans) abort.
//
// mma arithmetic: D[i][j] = C[i][j] + sum_k A[i][k] B[k][j] with the fp32
// additions in increasing k (k = 0..15), each bf16 product exact in fp32.
// The tensor cores' summation order and internal precision are unspecified,
// so emulator and GPU agree to within ~16 * 2^-24 * sum|a b| per instruction.
//
// cp.async: copies are per thread and asynchronous. A copy is queued in the
// thread's open group (its destination is filled with 0xff bytes -- NaN for
// bf16/fp32 -- at issue, as the data is undefined until the wait);
// cp_async_commit closes the group; cp_async_wait<N> performs, in issue order,
// every copy of the thread's committed groups except the N most recent --
// reading the source at that moment (a valid completion time, the latest the
// hardware may choose). Copies still uncommitted are not waited for (as
// cp.async.wait_group). Under SIMT_SHUFFLE=seed each copy instead completes
// at issue with probability 1/2 (a hash of the seed, block, thread and the
// thread's copy count: deterministic per seed), which also exposes a missing
// barrier between readers of a buffer and the next copy into it. Copies
// still pending when a block ends are dropped. Both addresses must be
// 16-byte aligned (else abort); cp_async_16_zfill reads only src_bytes
// (0..16) bytes and zero-fills the rest; src_bytes = 0 reads nothing, so the
// source may then point anywhere (AddressSanitizer agrees; under ASan an
// unaddressable source is reported at the issuing call, not at the wait).
#pragma once
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

namespace simt {
unsigned long long block_serial();  // simt_runtime.cpp: blocks started on this OS thread
}

namespace simt_mma_detail {

enum Op { OP_MMA = 1, OP_LDM = 2, OP_LDM_T = 3 };

struct Slot {
    uint32_t a[4];
    uint32_t b[2];
    const unsigned char *p;  // ldmatrix row address
    int op;                  // instruction id: OP_* | (matrix count << 4)
};

struct Copy {
    unsigned char *dst;
    const unsigned char *src;
    int nbytes;         // bytes read from src; the rest of the 16 is zero-filled
    unsigned group;     // index of the group the copy belongs to
};

struct Thread {
    unsigned coll;          // warp-collective instructions executed (double-buffer parity)
    unsigned committed;     // groups committed so far; the open group has this index
    unsigned ncopies;       // copies issued (for the SIMT_SHUFFLE completion choice)
    size_t head;            // q[head..] are pending, in issue order
    std::vector<Copy> q;
};

struct Warp {
    Slot s[2][32];
};

// Per-OS-thread state of the running block (all its fibers run on this OS thread).
struct State {
    unsigned long long serial = ~0ull;
    std::vector<Thread> th;
    std::vector<Warp> warps;
};

[[noreturn]] __attribute__((format(printf, 1, 2))) inline void fail(const char *fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ::simt::trap(buf);
}

inline int linear_tid() {
    return (int)(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z));
}

inline State &state() {
    static thread_local State S;
    unsigned long long ser = ::simt::block_serial();
    if (S.serial != ser) {  // first primitive of a new block on this OS thread
        S.serial = ser;
        size_t n = (size_t)blockDim.x * blockDim.y * blockDim.z;
        if (S.th.size() < n) S.th.resize(n);
        for (size_t i = 0; i < n; i++) {
            Thread &t = S.th[i];
            t.coll = t.committed = t.ncopies = 0;
            t.head = 0;
            t.q.clear();
        }
        if (S.warps.size() < (n + 31) / 32) S.warps.resize((n + 31) / 32);
    }
    return S;
}

inline unsigned shuffle_seed() {
    static const unsigned seed = [] {
        const char *s = getenv("SIMT_SHUFFLE");
        return (unsigned)((s && *s) ? atoi(s) : 0);
    }();
    return seed;
}

inline uint64_t mix(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Enters a warp-collective instruction: publishes `mine` in this lane's slot and
// meets the warp; returns the warp's 32 slots (valid until the next collective).
inline const Slot *exchange(const char *name, const Slot &mine, int *lane_out) {
    if (__activemask() != 0xffffffffu) {
        char buf[160];
        snprintf(buf, sizeof buf, "%s needs all 32 lanes of the warp (a partial or exited warp)", name);
        ::simt::trap(buf);
    }
    State &S = state();
    int tid = linear_tid(), lane = tid & 31;
    Slot *slots = S.warps[tid >> 5].s[S.th[tid].coll++ & 1];
    slots[lane] = mine;
    __syncwarp();
    // Each lane compares its neighbour's instruction: any disagreement in the warp
    // shows up between some pair of neighbours on the ring of lanes.
    if (slots[(lane + 1) & 31].op != mine.op) {
        char buf[200];
        snprintf(buf, sizeof buf, "%s: lanes of the warp met in different mma/ldmatrix instructions (lane %d executed "
                 "another one)", name, (lane + 1) & 31);
        ::simt::trap(buf);
    }
    *lane_out = lane;
    return slots;
}

inline float bf16lo(uint32_t v) {
    uint32_t u = v << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
inline float bf16hi(uint32_t v) {
    uint32_t u = v & 0xffff0000u;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

template <int NUM, bool TRANS>
inline void ldmatrix(uint32_t *r, const void *row, const char *name) {
    Slot mine;
    mine.p = (const unsigned char *)row;
    mine.op = (TRANS ? OP_LDM_T : OP_LDM) | (NUM << 4);
    int lane;
    const Slot *s = exchange(name, mine, &lane);
    // Lanes 8i..8i+7 give the rows of matrix i; other lanes' addresses are ignored.
    for (int i = 0; i < NUM; i++) {
        if (TRANS) {
            // elements (row 2*(lane%4), col lane/4) and (row 2*(lane%4)+1, col lane/4)
            const unsigned char *r0 = s[8 * i + 2 * (lane & 3)].p, *r1 = s[8 * i + 2 * (lane & 3) + 1].p;
            uint16_t lo, hi;
            memcpy(&lo, r0 + 2 * (lane >> 2), 2);
            memcpy(&hi, r1 + 2 * (lane >> 2), 2);
            r[i] = (uint32_t)lo | ((uint32_t)hi << 16);
        } else {
            // elements (row lane/4, cols 2*(lane%4), +1)
            memcpy(&r[i], s[8 * i + (lane >> 2)].p + 4 * (lane & 3), 4);
        }
    }
    // Lanes the hardware reads from must hold 16-byte aligned addresses: checked by
    // the lane that reads row 0 of each matrix, after the reads ASan checked.
    if (lane < 8 * NUM) {
        const void *p = s[lane].p;
        if ((uintptr_t)p & 15) fail("ldmatrix: row address %p (lane %d) is not 16-byte aligned", p, lane);
    }
}

inline void do_copy(const Copy &c) {
    if (c.nbytes) memcpy(c.dst, c.src, (size_t)c.nbytes);
    if (c.nbytes < 16) memset(c.dst + c.nbytes, 0, (size_t)(16 - c.nbytes));
}

inline void cp_async(void *smem, const void *gmem, int src_bytes) {
    if ((uintptr_t)smem & 15) fail("cp.async: shared address %p is not 16-byte aligned", smem);
    if ((uintptr_t)gmem & 15) fail("cp.async: global address %p is not 16-byte aligned", gmem);
    if (src_bytes < 0 || src_bytes > 16) fail("cp.async: src_bytes = %d is not in 0..16", src_bytes);
    State &S = state();
    int tid = linear_tid();
    Thread &t = S.th[tid];
    Copy c{(unsigned char *)smem, (const unsigned char *)gmem, src_bytes, t.committed};
    unsigned seed = shuffle_seed();
    unsigned k = t.ncopies++;
    if (seed) {
        uint64_t bid = blockIdx.x + (uint64_t)gridDim.x * (blockIdx.y + (uint64_t)gridDim.y * blockIdx.z);
        uint64_t h = mix(mix(mix((uint64_t)seed * 0x2545F4914F6CDD1Dull ^ bid) ^ (uint64_t)tid) ^ k);
        if (h & 1) {
            do_copy(c);  // completes at once
            return;
        }
    }
#if defined(__SANITIZE_ADDRESS__)
    // A bad source is reported at the issuing line rather than at the wait.
    if (src_bytes && __asan_region_is_poisoned(const_cast<void *>(gmem), (size_t)src_bytes)) {
        unsigned char tmp[16];
        memcpy(tmp, gmem, (size_t)src_bytes);  // AddressSanitizer reports this read
        __asm__ volatile("" ::"r"(tmp) : "memory");
    }
#endif
    memset(c.dst, 0xff, 16);  // undefined until the wait: make a read before it visible
    t.q.push_back(c);
}

inline void wait_group(unsigned n) {
    State &S = state();
    Thread &t = S.th[linear_tid()];
    // complete the groups with index < committed - n
    while (t.head < t.q.size() && t.q[t.head].group + n < t.committed) do_copy(t.q[t.head++]);
    if (t.head == t.q.size()) {
        t.q.clear();
        t.head = 0;
    }
}

}  // namespace simt_mma_detail

// D = A B + C, one warp-wide 16x8x16 bf16 product with fp32 accumulation (d may be c).
static inline void mma_bf16_m16n8k16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]) {
    using namespace simt_mma_detail;
    Slot mine;
    memcpy(mine.a, a, sizeof mine.a);
    memcpy(mine.b, b, sizeof mine.b);
    mine.p = nullptr;
    mine.op = OP_MMA;
    int lane;
    const Slot *s = exchange("mma.sync.m16n8k16", mine, &lane);
    const int g = lane >> 2, t = lane & 3;
    // A rows g and g+8 (k = 0..15): A[r][2t'..2t'+1] is in lane 4*(r%8) + t',
    // register a[0] (r < 8, k < 8), a[1] (r >= 8, k < 8), a[2] (r < 8, k >= 8), a[3].
    // B columns 2t and 2t+1: B[2t'..2t'+1][n] is in lane 4n + t', b[0] (k < 8), b[1].
    float A0[16], A1[16], B0[16], B1[16];
    for (int tt = 0; tt < 4; tt++) {
        const Slot &sa = s[4 * g + tt];
        A0[2 * tt] = bf16lo(sa.a[0]), A0[2 * tt + 1] = bf16hi(sa.a[0]);
        A1[2 * tt] = bf16lo(sa.a[1]), A1[2 * tt + 1] = bf16hi(sa.a[1]);
        A0[2 * tt + 8] = bf16lo(sa.a[2]), A0[2 * tt + 9] = bf16hi(sa.a[2]);
        A1[2 * tt + 8] = bf16lo(sa.a[3]), A1[2 * tt + 9] = bf16hi(sa.a[3]);
        const Slot &s0 = s[4 * (2 * t) + tt], &s1 = s[4 * (2 * t + 1) + tt];
        B0[2 * tt] = bf16lo(s0.b[0]), B0[2 * tt + 1] = bf16hi(s0.b[0]);
        B0[2 * tt + 8] = bf16lo(s0.b[1]), B0[2 * tt + 9] = bf16hi(s0.b[1]);
        B1[2 * tt] = bf16lo(s1.b[0]), B1[2 * tt + 1] = bf16hi(s1.b[0]);
        B1[2 * tt + 8] = bf16lo(s1.b[1]), B1[2 * tt + 9] = bf16hi(s1.b[1]);
    }
    // c[0..1] = C[g][2t..2t+1], c[2..3] = C[g+8][2t..2t+1]
    float d0 = c[0], d1 = c[1], d2 = c[2], d3 = c[3];
    for (int k = 0; k < 16; k++) {
        d0 += A0[k] * B0[k];
        d1 += A0[k] * B1[k];
        d2 += A1[k] * B0[k];
        d3 += A1[k] * B1[k];
    }
    d[0] = d0, d[1] = d1, d[2] = d2, d[3] = d3;
}

// ldmatrix .m8n8 .b16: lanes 8i..8i+7 give the 16-byte rows of matrix i (shared memory).
static inline void ldmatrix_x1(uint32_t r[1], const void *row) {
    simt_mma_detail::ldmatrix<1, false>(r, row, "ldmatrix.x1");
}
static inline void ldmatrix_x2(uint32_t r[2], const void *row) {
    simt_mma_detail::ldmatrix<2, false>(r, row, "ldmatrix.x2");
}
static inline void ldmatrix_x4(uint32_t r[4], const void *row) {
    simt_mma_detail::ldmatrix<4, false>(r, row, "ldmatrix.x4");
}
static inline void ldmatrix_x1_trans(uint32_t r[1], const void *row) {
    simt_mma_detail::ldmatrix<1, true>(r, row, "ldmatrix.x1.trans");
}
static inline void ldmatrix_x2_trans(uint32_t r[2], const void *row) {
    simt_mma_detail::ldmatrix<2, true>(r, row, "ldmatrix.x2.trans");
}
static inline void ldmatrix_x4_trans(uint32_t r[4], const void *row) {
    simt_mma_detail::ldmatrix<4, true>(r, row, "ldmatrix.x4.trans");
}

// cp.async.cg.shared.global, 16 bytes (both addresses 16-byte aligned).
static inline void cp_async_16(void *smem, const void *gmem) { simt_mma_detail::cp_async(smem, gmem, 16); }
// As cp_async_16, reading only src_bytes (0..16) and zero-filling the rest.
static inline void cp_async_16_zfill(void *smem, const void *gmem, int src_bytes) {
    simt_mma_detail::cp_async(smem, gmem, src_bytes);
}
static inline void cp_async_commit() {
    simt_mma_detail::State &S = simt_mma_detail::state();
    S.th[simt_mma_detail::linear_tid()].committed++;
}
// cp.async.wait_group N: all but the N most recent committed groups have completed.
template <int N>
static inline void cp_async_wait() {
    static_assert(N >= 0, "cp_async_wait<N>: N must be >= 0");
    simt_mma_detail::wait_group((unsigned)N);
}
