#!/usr/bin/env bash
# gpu-check.sh: one command for a machine with an NVIDIA GPU. Builds the CUDA
# backend for the card's architecture and runs, in order,
#   make test       the CPU suite and every CUDA kernel under the SIMT emulator
#   make test-gpu   the kernel tests on the GPU, compute-sanitizer memcheck/racecheck
#   make bench      CPU benchmark, then build/bench_cuda (GB/s, %DRAM, TFLOP/s)
# and writes everything, with timestamps and each step's exit code, into
# OUTDIR/report.txt (plus OUTDIR/<step>.log per step and the sanitizer logs).
#
# Usage: tools/gpu-check.sh [OUTDIR]        (default build/gpu-report; run from anywhere)
# Environment: TIMEOUT_TEST, TIMEOUT_TEST_GPU, TIMEOUT_BENCH (seconds; defaults
# 300, 150, 150: the lent GPU machine allows 10 minutes a command) bound each step; CUDA_ARCH overrides the detected one.
#
# Exit status: 0 every step passed; 1 some step failed or timed out (the
# remaining steps still run); 2 no usable GPU or no nvcc -- nothing else is run.
#
# cuDNN (the convolution and attention comparison paths) and NCCL are located: system
# libraries (ldconfig, $CUDA_HOME) and the pip wheels nvidia-cudnn-cu13 /
# nvidia-nccl-cu13 (also -cu12), whose lib/ and include/ directories are added
# to LD_LIBRARY_PATH, LIBRARY_PATH and CPATH for the build and the runs.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2
out=${1:-build/gpu-report}
mkdir -p "$out" || exit 2
out=$(cd "$out" && pwd)
report="$out/report.txt"
: >"$report"

ts() { date -u +%Y-%m-%dT%H:%M:%SZ; }
log() { echo "[$(ts)] $*" | tee -a "$report"; }
# Runs a command with its output into the report (unprefixed, as it comes).
show() { "$@" 2>&1 | tee -a "$report"; return "${PIPESTATUS[0]}"; }

log "gpu-check: $root -> $report"
log "host: $(uname -srm), $(nproc) cores, git $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')"

# ---------------------------------------------------------------- GPU and toolkit
if ! command -v nvidia-smi >/dev/null 2>&1; then
    log "NO GPU: nvidia-smi not found. This script needs a machine with an NVIDIA GPU and driver;"
    log "on a machine without one run 'make test' (CPU + SIMT emulator) instead."
    log "RESULT: no GPU (exit 2)"
    exit 2
fi
if ! gpus=$(nvidia-smi -L 2>&1) || ! grep -q '^GPU [0-9]' <<<"$gpus"; then
    log "NO GPU: 'nvidia-smi -L' lists no GPU: $gpus"
    log "RESULT: no GPU (exit 2)"
    exit 2
fi
log "nvidia-smi:"
show nvidia-smi
show nvidia-smi --query-gpu=index,name,compute_cap,memory.total,clocks.max.sm,clocks.max.memory,driver_version --format=csv

NVCC=${NVCC:-$(command -v nvcc 2>/dev/null || true)}
if [ -z "$NVCC" ] && [ -x /usr/local/cuda/bin/nvcc ]; then NVCC=/usr/local/cuda/bin/nvcc; fi
if [ -z "$NVCC" ]; then
    log "NO NVCC: the CUDA toolkit (nvcc) is not on PATH nor in /usr/local/cuda/bin: cannot build the kernels."
    log "RESULT: no nvcc (exit 2)"
    exit 2
fi
nvcc_dir=$(dirname "$NVCC")
export PATH="$nvcc_dir:$PATH"
cuda_home=$(dirname "$(dirname "$NVCC")")
log "nvcc: $NVCC"
show "$NVCC" --version
command -v compute-sanitizer >/dev/null 2>&1 || [ ! -x "$cuda_home/bin/compute-sanitizer" ] ||
    export PATH="$cuda_home/bin:$PATH"
log "compute-sanitizer: $(command -v compute-sanitizer || echo 'not found (make test-gpu skips memcheck/racecheck)')"

if [ -z "${CUDA_ARCH:-}" ]; then
    CUDA_ARCH=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | tr -d ' .' | sort -u | tr '\n' ' ')
    CUDA_ARCH=${CUDA_ARCH% }
fi
if [ -z "$CUDA_ARCH" ]; then
    log "could not read compute_cap from nvidia-smi; using the Makefile default (80 90)"
    CUDA_ARCH="80 90"
fi
log "CUDA_ARCH=$CUDA_ARCH"

# ---------------------------------------------------------------- cuDNN / NCCL
add_path() {  # add_path VAR DIR: prepend DIR to VAR once
    local var=$1 dir=$2
    [ -d "$dir" ] || return 0
    case ":${!var:-}:" in *":$dir:"*) ;; *) export "$var=$dir${!var:+:${!var}}" ;; esac
}
for lib in cudnn nccl; do
    found=""
    # pip wheels nvidia-<lib>-cu13 / -cu12: the package nvidia.<lib> with lib/ and include/
    pydir=$(python3 -c "import nvidia.$lib as m, os; print(os.path.realpath(list(m.__path__)[0]))" 2>/dev/null || true)
    if [ -n "$pydir" ] && [ -d "$pydir/lib" ]; then
        add_path LD_LIBRARY_PATH "$pydir/lib"
        add_path LIBRARY_PATH "$pydir/lib"
        add_path CPATH "$pydir/include"
        found="python package nvidia.$lib: $pydir ($(ls "$pydir/lib" | tr '\n' ' '))"
    fi
    sys=$(ldconfig -p 2>/dev/null | grep -m1 "lib$lib\.so" | sed 's/.*=> //' || true)
    [ -z "$sys" ] && sys=$(ls "$cuda_home"/lib64/lib$lib.so* 2>/dev/null | head -1 || true)
    [ -n "$sys" ] && found="${found:+$found; }system: $sys"
    log "$lib: ${found:-not found}"
done
log "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"

# ---------------------------------------------------------------- steps
# Objects built earlier for another architecture would be reused by make
# (it does not track flags): remove the CUDA objects so they are rebuilt.
rm -f build/kernels/cuda/*.o build/libarc2face_cuda.a build/test_cuda_gpu build/bench_cuda

names=()
codes=()
secs=()
run_step() {  # run_step NAME TIMEOUT make-args...
    local name=$1 limit=$2
    shift 2
    log "=== step '$name': make $* (timeout ${limit}s)"
    local t0=$SECONDS
    timeout --kill-after=30 "$limit" make --no-print-directory NVCC="$NVCC" CUDA_ARCH="$CUDA_ARCH" "$@" 2>&1 |
        tee "$out/$name.log" | tee -a "$report"
    local rc=${PIPESTATUS[0]}
    [ "$rc" -eq 124 ] && log "step '$name' TIMED OUT after ${limit}s"
    log "=== step '$name': exit $rc ($((SECONDS - t0)) s)"
    names+=("$name")
    codes+=("$rc")
    secs+=("$((SECONDS - t0))")
}

run_step test "${TIMEOUT_TEST:-300}" test
run_step test-gpu "${TIMEOUT_TEST_GPU:-150}" test-gpu
for f in memcheck.log racecheck.log; do [ -f "build/$f" ] && cp "build/$f" "$out/"; done
run_step bench "${TIMEOUT_BENCH:-150}" bench
grep -E '^(#|[a-z])' "$out/bench.log" 2>/dev/null | grep -E 'bench_cuda|GB/s|TFLOP/s|ERROR' >"$out/bench_cuda.txt" || true

# ---------------------------------------------------------------- summary
status=0
log "summary:"
for i in "${!names[@]}"; do
    r=${codes[$i]}
    [ "$r" -ne 0 ] && status=1
    log "  $(printf '%-10s' "${names[$i]}") exit ${r} ($(printf '%5s' "${secs[$i]}") s) $([ "$r" -eq 0 ] && echo PASS || echo FAIL)"
done
log "RESULT: $([ $status -eq 0 ] && echo 'all steps passed' || echo 'FAILED') (exit $status); report in $report"
exit $status
