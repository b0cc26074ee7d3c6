#!/usr/bin/env bash
# run_offline.sh BINARY [ARGS]: runs the offline cuDNN graph test with the CUDA
# toolkit's stub driver library as libcuda.so.1, so cuDNN can compile kernels on a
# machine without a GPU (loading them then fails, which the test expects). The stub
# comes first even where a real driver exists: the test targets described devices,
# not the local one.
set -euo pipefail
bin=$1; shift
cuda_home=${CUDA_HOME:-$(dirname "$(dirname "$(command -v nvcc)")")}
stub=$cuda_home/lib64/stubs/libcuda.so
[ -f "$stub" ] || stub=$cuda_home/targets/x86_64-linux/lib/stubs/libcuda.so
if [ ! -f "$stub" ]; then
    echo "run_offline.sh: no stub libcuda.so under $cuda_home: offline cuDNN check not run"
    echo "0 passed, 0 failed"
    exit 0
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
ln -s "$stub" "$dir/libcuda.so.1"
LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$bin" "$@"
