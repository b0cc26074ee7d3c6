// simt_runtime.cpp: the SIMT emulator's runtime. Runs a kernel grid on the CPU:
// blocks are spread over OS threads (OpenMP), and within a block every CUDA thread is
// a fiber with its own stack. A fiber runs until it reaches a barrier (__syncthreads,
// a warp intrinsic) or returns, then control goes back to the block's scheduler
// through a hand-written x86-64 context switch (callee-saved registers + stack
// pointer, no system call). Also: the host runtime API (memory, streams, events,
// errors), SIMT_SHUFFLE thread orders, and AddressSanitizer fiber annotations.
#include "include/simt.h"

#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <unordered_map>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define SIMT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SIMT_ASAN 1
#endif
#endif
#ifdef SIMT_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

__thread uint3 threadIdx;
__thread uint3 blockIdx;
__thread dim3 blockDim;
__thread dim3 gridDim;

// ---------------------------------------------------------------------------------
// Context switch. simt_ctx_switch(save, to): pushes the callee-saved registers on the
// current stack, stores the stack pointer in *save, loads `to` and pops the registers
// saved there. A new fiber's stack is prepared so that the first switch "returns" into
// simt_ctx_start, which calls r13(r12). The FP control words (mxcsr, x87) are shared by
// all fibers and not switched: kernels do not change rounding modes.
#if defined(__x86_64__)
asm(R"(
    .pushsection .text
    .globl simt_ctx_switch
    .hidden simt_ctx_switch
    .type simt_ctx_switch, @function
    .p2align 4
simt_ctx_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size simt_ctx_switch, .-simt_ctx_switch

    .globl simt_ctx_start
    .hidden simt_ctx_start
    .type simt_ctx_start, @function
    .p2align 4
simt_ctx_start:
    movq %r12, %rdi
    callq *%r13
    ud2
    .size simt_ctx_start, .-simt_ctx_start
    .popsection
)");
extern "C" void simt_ctx_switch(void **save, void *to);
extern "C" void simt_ctx_start(void);

static void *ctx_init(char *stack_lo, size_t size, void (*fn)(void *), void *arg) {
    uintptr_t top = ((uintptr_t)(stack_lo + size)) & ~(uintptr_t)15;
    void **sp = (void **)top;
    *--sp = (void *)simt_ctx_start;  // return address at top-8: simt_ctx_start runs with rsp = top
    *--sp = 0;                       // rbp
    *--sp = 0;                       // rbx
    *--sp = arg;                     // r12
    *--sp = (void *)fn;              // r13
    *--sp = 0;                       // r14
    *--sp = 0;                       // r15
    return sp;
}
#else
#error "simt: only x86-64 has a context switch so far (see README: portability)"
#endif

namespace simt {

// ---------------------------------------------------------------------------------
// Configuration from the environment (read once).
static int env_int(const char *name, int dflt) {
    const char *s = getenv(name);
    return (s && *s) ? atoi(s) : dflt;
}
static unsigned g_shuffle_seed = (unsigned)env_int("SIMT_SHUFFLE", 0);
static size_t g_stack_bytes = (size_t)(env_int("SIMT_STACK_KB", 64) > 4 ? env_int("SIMT_STACK_KB", 64) : 4) * 1024;
static std::atomic<unsigned long long> g_launch_count{0};

static thread_local cudaError_t g_last_error = cudaSuccess;
static void set_error(cudaError_t e) {
    if (e != cudaSuccess) g_last_error = e;
}

[[noreturn]] void trap(const char *what) {
    fprintf(stderr, "simt: %s in block (%u,%u,%u) thread (%u,%u,%u)\n", what, blockIdx.x, blockIdx.y, blockIdx.z,
            threadIdx.x, threadIdx.y, threadIdx.z);
    abort();
}

// ---------------------------------------------------------------------------------
// Per-OS-thread block scheduler.
enum FiberState { F_RUN = 0, F_BAR = 1, F_WARP = 2, F_DONE = 3 };

struct Fiber {
    void *sp;
    char *stack_lo;
    uint3 tid;
    int lane, warp, state;
    const char *bar_file;
    int bar_line;
    // warp operation in flight
    unsigned wmask, wsize;
    int wop, wsrc, wpred;
    unsigned wballot;
    alignas(16) unsigned char wval[16];
    alignas(16) unsigned char wres[16];
};

struct Warp {
    unsigned live, arrived;
};

struct Worker {
    std::vector<Fiber> fibers;
    std::vector<char *> stacks;  // one mmap'd stack (with a guard page below) per fiber slot
    size_t stack_bytes = 0;
    std::vector<Warp> warps;
    std::vector<int> order;
    void *sched_sp = nullptr;
    Fiber *cur = nullptr;
    int nthreads = 0, live = 0, nrun = 0, nbar = 0;
    int bar_acc = 0, bar_result = 0, bar_op = 0;
    ThreadFn fn = nullptr;
    const void *obj = nullptr;
    const char *kname = "";
    unsigned char *dsmem = nullptr;
    size_t dsmem_size = 0;
    uint64_t rng = 0;
#ifdef SIMT_ASAN
    const void *sched_stack_lo = nullptr;
    size_t sched_stack_size = 0;
#endif
};
static thread_local Worker *t_worker = nullptr;

static Worker &worker() {
    if (!t_worker) t_worker = new Worker();  // lives as long as its OS thread (pool threads persist)
    return *t_worker;
}

static void ensure_stacks(Worker &W, int n) {
    if (W.stack_bytes != g_stack_bytes) {
        for (char *s : W.stacks) munmap(s - 4096, W.stack_bytes + 4096);
        W.stacks.clear();
        W.stack_bytes = g_stack_bytes;
    }
    while ((int)W.stacks.size() < n) {
        size_t len = W.stack_bytes + 4096;
        char *m = (char *)mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) {
            fprintf(stderr, "simt: cannot map fiber stacks (%d threads x %zu KB)\n", n, W.stack_bytes / 1024);
            abort();
        }
        mprotect(m, 4096, PROT_NONE);  // guard page: a fiber stack overflow faults instead of corrupting
        W.stacks.push_back(m + 4096);
    }
}

static inline void resume(Worker &W, Fiber *f) {
    W.cur = f;
    threadIdx = f->tid;
#ifdef SIMT_ASAN
    void *fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, f->stack_lo, W.stack_bytes);
    simt_ctx_switch(&W.sched_sp, f->sp);
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
    simt_ctx_switch(&W.sched_sp, f->sp);
#endif
}

static inline void suspend(Worker &W, Fiber *f, bool exiting) {
#ifdef SIMT_ASAN
    void *fake = nullptr;
    __sanitizer_start_switch_fiber(exiting ? nullptr : &fake, W.sched_stack_lo, W.sched_stack_size);
    simt_ctx_switch(&f->sp, W.sched_sp);
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
    (void)exiting;
    simt_ctx_switch(&f->sp, W.sched_sp);
#endif
}

// Completes the pending warp operation of warp `wi` if every lane it waits for has arrived.
static bool try_release_warp(Worker &W, int wi) {
    Warp &w = W.warps[wi];
    if (!w.arrived) return false;
    Fiber *base = &W.fibers[(size_t)wi * 32];
    unsigned need = 0;
    for (unsigned m = w.arrived; m; m &= m - 1) need |= base[__builtin_ctz(m)].wmask;
    need &= w.live;
    if ((w.arrived & need) != need) return false;
    unsigned group = w.arrived, ballot = 0;
    for (unsigned m = group; m; m &= m - 1) ballot |= (unsigned)(base[__builtin_ctz(m)].wpred != 0) << __builtin_ctz(m);
    for (unsigned m = group; m; m &= m - 1) {
        Fiber &f = base[__builtin_ctz(m)];
        f.wballot = ballot;
        if (f.wop == WOP_SHFL) {
            const Fiber *src = (f.wsrc >= 0 && f.wsrc < 32 && ((group >> f.wsrc) & 1)) ? &base[f.wsrc] : &f;
            memcpy(f.wres, src->wval, f.wsize);
        } else if (f.wop >= WOP_ADD) {
            uint32_t acc = 0;
            if (f.wop != WOP_ADD) memcpy(&acc, f.wval, 4);
            for (unsigned k = group; k; k &= k - 1) {
                uint32_t v;
                memcpy(&v, base[__builtin_ctz(k)].wval, 4);
                switch (f.wop) {
                    case WOP_ADD: acc += v; break;
                    case WOP_MIN: acc = (int32_t)v < (int32_t)acc ? v : acc; break;
                    case WOP_MAX: acc = (int32_t)v > (int32_t)acc ? v : acc; break;
                    case WOP_UMIN: acc = v < acc ? v : acc; break;
                    case WOP_UMAX: acc = v > acc ? v : acc; break;
                }
            }
            memcpy(f.wres, &acc, 4);
        }
        f.state = F_RUN;
        W.nrun++;
    }
    w.arrived = 0;
    return true;
}

static void fiber_main(void *arg) {
    Worker &W = worker();
    Fiber *f = (Fiber *)arg;
#ifdef SIMT_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &W.sched_stack_lo, &W.sched_stack_size);
#endif
    W.fn(W.obj);
    f->state = F_DONE;
    W.live--;
    W.nrun--;
    W.warps[f->warp].live &= ~(1u << f->lane);
    try_release_warp(W, f->warp);
    suspend(W, f, true);
    __builtin_unreachable();
}

static uint64_t splitmix(uint64_t &s) {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static void shuffle_order(Worker &W) {
    int n = W.nthreads;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(splitmix(W.rng) % (uint64_t)(i + 1));
        int t = W.order[i];
        W.order[i] = W.order[j];
        W.order[j] = t;
    }
}

[[noreturn]] static void block_fatal(Worker &W, const char *why) {
    fprintf(stderr, "simt: %s in kernel %s, block (%u,%u,%u):\n", why, W.kname, blockIdx.x, blockIdx.y, blockIdx.z);
    int shown_bar = 0, shown_warp = 0;
    for (int i = 0; i < W.nthreads; i++) {
        Fiber &f = W.fibers[i];
        if (f.state == F_BAR && shown_bar++ < 4)
            fprintf(stderr, "  thread (%u,%u,%u) waits at __syncthreads %s:%d\n", f.tid.x, f.tid.y, f.tid.z, f.bar_file,
                    f.bar_line);
        else if (f.state == F_WARP && shown_warp++ < 4)
            fprintf(stderr, "  thread (%u,%u,%u) waits in a warp operation (mask %08x)\n", f.tid.x, f.tid.y, f.tid.z,
                    f.wmask);
    }
    abort();
}

// Counts the blocks this OS thread has started: include/simt_mma.h keys its per-block
// state (cp.async queues, warp exchange slots) on it, discarding a previous block's.
static thread_local unsigned long long t_block_serial = 0;
unsigned long long block_serial() { return t_block_serial; }

// Runs one block to completion on the calling OS thread.
static void run_block(Worker &W, uint3 bidx) {
    blockIdx = bidx;
    t_block_serial++;
    int n = W.nthreads;
    int bx = (int)blockDim.x, by = (int)blockDim.y;
    for (int i = 0; i < n; i++) {
        Fiber &f = W.fibers[i];
        f.tid = uint3{(unsigned)(i % bx), (unsigned)((i / bx) % by), (unsigned)(i / (bx * by))};
        f.lane = i & 31;
        f.warp = i >> 5;
        f.state = F_RUN;
        f.stack_lo = W.stacks[i];
#ifdef SIMT_ASAN
        // a fiber that finished never unwound its frames: clear their stale poison
        __asan_unpoison_memory_region(f.stack_lo, W.stack_bytes);
#endif
        f.sp = ctx_init(f.stack_lo, W.stack_bytes, fiber_main, &f);
    }
    for (size_t w = 0; w < W.warps.size(); w++) {
        int lanes = n - (int)w * 32 < 32 ? n - (int)w * 32 : 32;
        W.warps[w].live = lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1);
        W.warps[w].arrived = 0;
    }
    W.live = W.nrun = n;
    W.nbar = 0;
    W.bar_acc = 0;
    for (int i = 0; i < n; i++) W.order[i] = i;
    if (g_shuffle_seed) shuffle_order(W);
    if (W.dsmem) memset(W.dsmem, 0xff, W.dsmem_size);  // shared memory starts as garbage (NaN)

    for (;;) {
        for (int k = 0; k < n; k++) {
            Fiber *f = &W.fibers[W.order[k]];
            if (f->state == F_RUN) resume(W, f);
        }
        if (W.live == 0) break;
        if (W.nrun > 0) continue;  // lanes released from a warp barrier during the pass
        if (W.nbar == W.live) {
            // every thread still running waits at a __syncthreads: they must be the same one
            const Fiber *first = nullptr;
            for (int i = 0; i < n; i++) {
                Fiber &f = W.fibers[i];
                if (f.state != F_BAR) continue;
                if (!first) first = &f;
                else if (f.bar_line != first->bar_line || strcmp(f.bar_file, first->bar_file) != 0)
                    block_fatal(W, "threads wait at different __syncthreads (divergent barrier)");
            }
            int acc = W.bar_acc;
            W.bar_result = W.bar_op == 0 ? acc : W.bar_op == 1 ? (acc == W.nbar) : (acc != 0);
            W.bar_acc = 0;
            for (int i = 0; i < n; i++)
                if (W.fibers[i].state == F_BAR) W.fibers[i].state = F_RUN;
            W.nrun = W.nbar;
            W.nbar = 0;
            if (g_shuffle_seed) shuffle_order(W);
            continue;
        }
        block_fatal(W, "deadlock (a thread waits for lanes that wait elsewhere)");
    }
}

// ---------------------------------------------------------------------------------
// Intrinsics called from kernels (on a fiber).
static inline Fiber *current(Worker &W, const char *what) {
    if (!W.cur) {
        fprintf(stderr, "simt: %s called outside a kernel\n", what);
        abort();
    }
    return W.cur;
}

void syncthreads(const char *file, int line) { syncthreads_reduce(0, 0, file, line); }

int syncthreads_reduce(int pred, int op, const char *file, int line) {
    Worker &W = worker();
    Fiber *f = current(W, "__syncthreads");
    f->state = F_BAR;
    f->bar_file = file;
    f->bar_line = line;
    W.bar_acc += pred;
    W.bar_op = op;
    W.nbar++;
    W.nrun--;
    suspend(W, f, false);
    return W.bar_result;
}

unsigned warp_op(unsigned mask, int op, const void *in, void *out, unsigned size, int src, int pred) {
    Worker &W = worker();
    Fiber *f = current(W, "warp intrinsic");
    if (!((mask >> f->lane) & 1)) trap("warp intrinsic called with a mask that excludes the calling lane");
    f->wmask = mask;
    f->wop = op;
    f->wsrc = src;
    f->wpred = pred;
    f->wsize = size;
    if (size) memcpy(f->wval, in, size);
    f->state = F_WARP;
    W.nrun--;
    W.warps[f->warp].arrived |= 1u << f->lane;
    if (!try_release_warp(W, f->warp)) suspend(W, f, false);
    if (out && size) memcpy(out, f->wres, size);
    return f->wballot;
}

unsigned active_mask() {
    Worker &W = worker();
    Fiber *f = current(W, "__activemask");
    return W.warps[f->warp].live;
}

int lane_id() { return current(worker(), "lane id")->lane; }

void *dynamic_smem() { return worker().dsmem; }

// ---------------------------------------------------------------------------------
// Grid launch.
static std::atomic<size_t> g_max_dyn_smem{48 * 1024};
static const size_t k_smem_optin = 232448;  // sm_90: 227 KB per block with the attribute

void run_grid(const char *name, const char *file, int line, const LaunchConfig &cfg, ThreadFn fn, const void *obj) {
    const dim3 g = cfg.grid, b = cfg.block;
    unsigned long long nthr = (unsigned long long)b.x * b.y * b.z;
    if (!g.x || !g.y || !g.z || !b.x || !b.y || !b.z || nthr > 1024 || b.z > 64 || g.y > 65535 || g.z > 65535 ||
        g.x > 2147483647u) {
        set_error(cudaErrorInvalidConfiguration);
        return;
    }
    if (cfg.smem > g_max_dyn_smem.load() || cfg.smem > k_smem_optin) {
        set_error(cudaErrorInvalidValue);  // what the driver reports for too much dynamic shared memory
        return;
    }
    unsigned long long nblocks = (unsigned long long)g.x * g.y * g.z;
    uint64_t launch_id = g_launch_count.fetch_add(1);
    std::atomic<unsigned long long> next{0};

    auto work = [&]() {
        Worker &W = worker();
        W.nthreads = (int)nthr;
        ensure_stacks(W, (int)nthr);
        if (W.fibers.size() < nthr) W.fibers.resize(nthr);
        W.order.resize(nthr);
        W.warps.resize((nthr + 31) / 32);
        W.fn = fn;
        W.obj = obj;
        W.kname = name;
        W.dsmem_size = cfg.smem;
        W.dsmem = nullptr;
        // exact size, so AddressSanitizer catches an access past the launch's dynamic shared memory
        if (cfg.smem && posix_memalign((void **)&W.dsmem, 128, cfg.smem) != 0) {
            fprintf(stderr, "simt: out of memory for %zu bytes of dynamic shared memory\n", cfg.smem);
            abort();
        }
        gridDim = g;
        blockDim = b;
        for (;;) {
            unsigned long long i = next.fetch_add(1);
            if (i >= nblocks) break;
            W.rng = (uint64_t)g_shuffle_seed * 0x9E3779B97F4A7C15ull ^ (launch_id << 32) ^ i;
            run_block(W, uint3{(unsigned)(i % g.x), (unsigned)((i / g.x) % g.y), (unsigned)(i / ((unsigned long long)g.x * g.y))});
        }
        free(W.dsmem);
        W.dsmem = nullptr;
        W.cur = nullptr;
        threadIdx = uint3{0, 0, 0};
    };
    (void)file;
    (void)line;
#ifdef _OPENMP
    static int max_threads = env_int("SIMT_THREADS", 0) > 0 ? env_int("SIMT_THREADS", 0) : omp_get_max_threads();
    int nt = nblocks < (unsigned long long)max_threads ? (int)nblocks : max_threads;
    if (nt > 1 && !omp_in_parallel()) {
#pragma omp parallel num_threads(nt)
        work();
        return;
    }
#endif
    work();
}

}  // namespace simt

// ---------------------------------------------------------------------------------
// Host runtime API.
using simt::set_error;

static std::mutex g_alloc_mu;
static std::unordered_map<void *, size_t> g_allocs;  // live cudaMalloc blocks
static size_t g_alloc_bytes = 0;
static const size_t k_total_mem = (size_t)80 << 30;  // an 80 GB card

static cudaError_t ret(cudaError_t e) {
    set_error(e);
    return e;
}

cudaError_t cudaMalloc(void **ptr, size_t size) {
    if (!ptr) return ret(cudaErrorInvalidValue);
    void *p = nullptr;
    // exact size (AddressSanitizer sees one past the end), 256-byte aligned like the GPU's
    if (posix_memalign(&p, 256, size ? size : 1) != 0) return *ptr = nullptr, ret(cudaErrorMemoryAllocation);
    memset(p, 0xff, size);  // fresh device memory is garbage: NaN floats, -1 integers
    std::lock_guard<std::mutex> lk(g_alloc_mu);
    g_allocs[p] = size;
    g_alloc_bytes += size;
    *ptr = p;
    return cudaSuccess;
}
cudaError_t cudaMallocManaged(void **ptr, size_t size, unsigned) { return cudaMalloc(ptr, size); }
cudaError_t cudaMallocAsync(void **ptr, size_t size, cudaStream_t) { return cudaMalloc(ptr, size); }
cudaError_t cudaFree(void *ptr) {
    if (!ptr) return cudaSuccess;
    {
        std::lock_guard<std::mutex> lk(g_alloc_mu);
        auto it = g_allocs.find(ptr);
        if (it == g_allocs.end()) return ret(cudaErrorInvalidDevicePointer);
        g_alloc_bytes -= it->second;
        g_allocs.erase(it);
    }
    free(ptr);
    return cudaSuccess;
}
cudaError_t cudaFreeAsync(void *ptr, cudaStream_t) { return cudaFree(ptr); }
cudaError_t cudaMallocHost(void **ptr, size_t size) {
    if (!ptr) return ret(cudaErrorInvalidValue);
    *ptr = malloc(size ? size : 1);
    return *ptr ? cudaSuccess : ret(cudaErrorMemoryAllocation);
}
cudaError_t cudaHostAlloc(void **ptr, size_t size, unsigned) { return cudaMallocHost(ptr, size); }
cudaError_t cudaFreeHost(void *ptr) {
    free(ptr);
    return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
    std::lock_guard<std::mutex> lk(g_alloc_mu);
    if (free_bytes) *free_bytes = k_total_mem - g_alloc_bytes;
    if (total_bytes) *total_bytes = k_total_mem;
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind kind) {
    if ((unsigned)kind > 4u) return ret(cudaErrorInvalidMemcpyDirection);
    if (n == 0) return cudaSuccess;
    if (!dst || !src) return ret(cudaErrorInvalidValue);
    memcpy(dst, src, n);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaStream_t) {
    return cudaMemcpy(dst, src, n, kind);
}
cudaError_t cudaMemcpy2D(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                         cudaMemcpyKind kind) {
    if ((unsigned)kind > 4u) return ret(cudaErrorInvalidMemcpyDirection);
    if (width > dpitch || width > spitch) return ret(cudaErrorInvalidPitchValue);
    for (size_t r = 0; r < height; r++) memcpy((char *)dst + r * dpitch, (const char *)src + r * spitch, width);
    return cudaSuccess;
}
cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t) {
    return cudaMemcpy2D(dst, dpitch, src, spitch, width, height, kind);
}
cudaError_t cudaMemset(void *dst, int value, size_t n) {
    if (n == 0) return cudaSuccess;
    if (!dst) return ret(cudaErrorInvalidValue);
    memset(dst, value, n);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *dst, int value, size_t n, cudaStream_t) { return cudaMemset(dst, value, n); }

cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
cudaError_t cudaDeviceReset(void) { return cudaSuccess; }
cudaError_t cudaSetDevice(int dev) { return dev == 0 ? cudaSuccess : ret(cudaErrorInvalidDevice); }
cudaError_t cudaGetDevice(int *dev) {
    *dev = 0;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceCount(int *n) {
    *n = 1;
    return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int *v) {
    *v = CUDART_VERSION;
    return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int *v) {
    *v = CUDART_VERSION;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int dev) {
    if (!p) return ret(cudaErrorInvalidValue);
    if (dev != 0) return ret(cudaErrorInvalidDevice);
    memset(p, 0, sizeof *p);
    // An H100-like sm_90 part, as the emulator presents it.
    snprintf(p->name, sizeof p->name, "SIMT emulator (sm_90, CPU)");
    p->totalGlobalMem = k_total_mem;
    p->sharedMemPerBlock = 48 * 1024;
    p->regsPerBlock = 65536;
    p->warpSize = 32;
    p->memPitch = (size_t)1 << 31;
    p->maxThreadsPerBlock = 1024;
    p->maxThreadsDim[0] = 1024, p->maxThreadsDim[1] = 1024, p->maxThreadsDim[2] = 64;
    p->maxGridSize[0] = 2147483647, p->maxGridSize[1] = 65535, p->maxGridSize[2] = 65535;
    p->totalConstMem = 65536;
    p->major = 9, p->minor = 0;
    p->textureAlignment = 512;
    p->multiProcessorCount = 132;
    p->canMapHostMemory = 1;
    p->concurrentKernels = 1;
    p->asyncEngineCount = 2;
    p->unifiedAddressing = 1;
    p->memoryBusWidth = 5120;
    p->l2CacheSize = 50 * 1024 * 1024;
    p->maxThreadsPerMultiProcessor = 2048;
    p->sharedMemPerMultiprocessor = 233472;
    p->regsPerMultiprocessor = 65536;
    p->managedMemory = 1;
    p->cooperativeLaunch = 1;
    p->sharedMemPerBlockOptin = simt::k_smem_optin;
    p->maxBlocksPerMultiProcessor = 32;
    p->reservedSharedMemPerBlock = 1024;
    return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int dev) {
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, dev) != cudaSuccess) return cudaErrorInvalidDevice;
    switch (attr) {
        case cudaDevAttrMaxThreadsPerBlock: *value = p.maxThreadsPerBlock; break;
        case cudaDevAttrMaxBlockDimX: *value = p.maxThreadsDim[0]; break;
        case cudaDevAttrMaxBlockDimY: *value = p.maxThreadsDim[1]; break;
        case cudaDevAttrMaxBlockDimZ: *value = p.maxThreadsDim[2]; break;
        case cudaDevAttrMaxGridDimX: *value = p.maxGridSize[0]; break;
        case cudaDevAttrMaxGridDimY: *value = p.maxGridSize[1]; break;
        case cudaDevAttrMaxGridDimZ: *value = p.maxGridSize[2]; break;
        case cudaDevAttrMaxSharedMemoryPerBlock: *value = (int)p.sharedMemPerBlock; break;
        case cudaDevAttrWarpSize: *value = 32; break;
        case cudaDevAttrMultiProcessorCount: *value = p.multiProcessorCount; break;
        case cudaDevAttrComputeCapabilityMajor: *value = p.major; break;
        case cudaDevAttrComputeCapabilityMinor: *value = p.minor; break;
        case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = (int)p.sharedMemPerBlockOptin; break;
        default: return ret(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}
cudaError_t cudaFuncSetAttribute(const void *func, cudaFuncAttribute attr, int value) {
    if (!func) return ret(cudaErrorInvalidDeviceFunction);
    if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
        if (value < 0 || (size_t)value > simt::k_smem_optin) return ret(cudaErrorInvalidValue);
        size_t cur = simt::g_max_dyn_smem.load();
        while ((size_t)value > cur && !simt::g_max_dyn_smem.compare_exchange_weak(cur, (size_t)value)) {
        }
    }
    return cudaSuccess;
}

// Streams run everything synchronously; they exist so handles can be validated.
struct CUstream_st {
    unsigned flags;
};
struct CUevent_st {
    double t;  // seconds, CLOCK_MONOTONIC, when recorded
    int recorded;
};
static double now_s() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}
cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, 0); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags) {
    if (!s) return ret(cudaErrorInvalidValue);
    *s = new CUstream_st{flags};
    return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
    if (!s) return ret(cudaErrorInvalidResourceHandle);
    if (s != cudaStreamLegacy && s != cudaStreamPerThread) delete s;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamQuery(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t e, unsigned) {
    return e ? cudaSuccess : ret(cudaErrorInvalidResourceHandle);
}
cudaError_t cudaEventCreate(cudaEvent_t *e) { return cudaEventCreateWithFlags(e, 0); }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned) {
    if (!e) return ret(cudaErrorInvalidValue);
    *e = new CUevent_st{0.0, 0};
    return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    if (!e) return ret(cudaErrorInvalidResourceHandle);
    delete e;
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
    if (!e) return ret(cudaErrorInvalidResourceHandle);
    e->t = now_s();
    e->recorded = 1;
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) { return e ? cudaSuccess : ret(cudaErrorInvalidResourceHandle); }
cudaError_t cudaEventQuery(cudaEvent_t e) { return e ? cudaSuccess : ret(cudaErrorInvalidResourceHandle); }
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    if (!ms || !a || !b) return ret(cudaErrorInvalidValue);
    if (!a->recorded || !b->recorded) return ret(cudaErrorInvalidResourceHandle);
    *ms = (float)((b->t - a->t) * 1e3);
    return cudaSuccess;
}

cudaError_t cudaGetLastError(void) {
    cudaError_t e = simt::g_last_error;
    simt::g_last_error = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError(void) { return simt::g_last_error; }

const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
#define C(x) \
    case x: return #x;
        C(cudaSuccess) C(cudaErrorInvalidValue) C(cudaErrorMemoryAllocation) C(cudaErrorInitializationError)
        C(cudaErrorCudartUnloading) C(cudaErrorInvalidConfiguration) C(cudaErrorInvalidPitchValue)
        C(cudaErrorInvalidSymbol) C(cudaErrorInvalidDevicePointer) C(cudaErrorInvalidMemcpyDirection)
        C(cudaErrorInvalidDeviceFunction) C(cudaErrorNoDevice) C(cudaErrorInvalidDevice)
        C(cudaErrorInvalidResourceHandle) C(cudaErrorNotReady) C(cudaErrorIllegalAddress)
        C(cudaErrorLaunchOutOfResources) C(cudaErrorLaunchFailure) C(cudaErrorNotSupported) C(cudaErrorUnknown)
#undef C
    }
    return "cudaErrorUnknown";
}
const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
        case cudaSuccess: return "no error";
        case cudaErrorInvalidValue: return "invalid argument";
        case cudaErrorMemoryAllocation: return "out of memory";
        case cudaErrorInitializationError: return "initialization error";
        case cudaErrorInvalidConfiguration: return "invalid configuration argument";
        case cudaErrorInvalidPitchValue: return "invalid pitch argument";
        case cudaErrorInvalidSymbol: return "invalid device symbol";
        case cudaErrorInvalidDevicePointer: return "invalid device pointer";
        case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
        case cudaErrorInvalidDeviceFunction: return "invalid device function";
        case cudaErrorNoDevice: return "no CUDA-capable device is detected";
        case cudaErrorInvalidDevice: return "invalid device ordinal";
        case cudaErrorInvalidResourceHandle: return "invalid resource handle";
        case cudaErrorNotReady: return "device not ready";
        case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
        case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
        case cudaErrorLaunchFailure: return "unspecified launch failure";
        case cudaErrorNotSupported: return "operation not supported";
        default: return "unknown error";
    }
}
