// gradcheck.h: central finite-difference check of a hand-written backward.
//
// The op under test is wrapped as fwd(ctx) -> out and bwd(ctx, dout). For a
// fixed random projection r, L(x) = sum_i r_i * out_i (accumulated in double).
// The backward run with dout = r must give dL/dx for every registered input.
// Checked two ways, per input:
//  1. directional: for 3 random directions v, (L(x+hv) - L(x-hv)) / 2h
//     against sum(grad * v);
//  2. coordinates: every coordinate when the input has <= 256 values, else
//     64 random ones plus the first and last, against grad[j].
// Tolerance (see gradcheck.c for the derivation): |a - n| <= rtol*max(|a|,|n|)
// + atol_scale * noise, where noise is the estimated round-off of the
// central difference in fp32.
#pragma once
#include <stddef.h>
#include <stdint.h>

#define GC_MAX_INPUTS 8

typedef struct {
    void *ctx;
    void (*fwd)(void *ctx);                    // reads inputs, writes out
    void (*bwd)(void *ctx, const float *dout); // adds into the grad buffers
    float *out;
    size_t out_n;
    int n_in;
    const char *in_name[GC_MAX_INPUTS];
    float *in[GC_MAX_INPUTS];
    float *grad[GC_MAX_INPUTS];
    size_t in_n[GC_MAX_INPUTS];
    double h;     // step; default 1e-2 (inputs are O(1))
    double rtol;  // default 2e-3
    uint64_t seed;
    int quiet;    // 1: do not report failures through test_fail (self-tests)
} GradCheck;

void gc_init(GradCheck *g, void *ctx, void (*fwd)(void *), void (*bwd)(void *, const float *), float *out,
             size_t out_n);
void gc_input(GradCheck *g, const char *name, float *x, float *grad, size_t n);
// Runs the check; returns 1 when every input passes. On failure reports the
// first offending input, direction or coordinate through test_fail().
int gc_run(GradCheck *g, const char *label);
