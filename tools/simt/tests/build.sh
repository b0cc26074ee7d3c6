#!/bin/sh
# build.sh: builds the SIMT emulator's test programs into OUTDIR (default build/simt),
# two compiler jobs at a time. Run from the repository root. Each program NAME leaves
# OUTDIR/NAME (on success) and OUTDIR/NAME.log (compiler output).
out=${1:-build/simt}
S=tools/simt
T=$S/tests
mkdir -p "$out"
export SIMT_CACHE="$out/cache"
b() {
    name=$1
    shift
    rm -f "$out/$name"
    "$S/simtcc" "$@" -o "$out/$name" >"$out/$name.log" 2>&1
}
# first pair also builds the two cached runtime variants (plain and ASan)
b reduce $T/reduce.cu & b oob --asan $T/oob.cu & wait
b reduce_asan --asan $T/reduce.cu & b transpose $T/transpose.cu & wait
b warp $T/warp.cu & b histogram $T/histogram.cu & wait
b race $T/race.cu & b api $T/api.cu & wait
b bf16 $T/bf16.cu kernels/tensor.c kernels/common.c & b cublas $T/cublas.cu & wait
b wmma --asan $T/wmma.cu & b vector_add $T/vector_add.cu & wait
b matrix_mul $T/matrix_mul.cu & b mma --asan -I kernels/cuda $T/mma.cu & wait
exit 0
