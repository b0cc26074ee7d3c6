#!/usr/bin/env bash
# run.sh SECONDS: fuzzes the safetensors parser with libFuzzer for SECONDS
# (default 60). Builds tools/fuzz/fuzz_safetensors.c with
# clang -fsanitize=fuzzer,address,undefined, copies the committed seeds
# (tools/fuzz/seeds/, = the test fixtures) into tools/fuzz/corpus-work/
# (gitignored), and runs. Exits non-zero on a crash, leak or sanitizer report;
# libFuzzer writes the crashing input as tools/fuzz/corpus-work/crash-*.
set -euo pipefail
secs="${1:-60}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
CLANG="${CLANG:-$(command -v clang-14 || command -v clang)}"
work=tools/fuzz/corpus-work
mkdir -p "$work/corpus" build
bin=build/fuzz_safetensors
"$CLANG" -std=c11 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    tools/fuzz/fuzz_safetensors.c nn/safetensors.c kernels/common.c kernels/tensor.c \
    -lcjson -lm -o "$bin"
cp -n tools/fuzz/seeds/* "$work/corpus/" 2>/dev/null || true
echo "fuzz: running $bin for ${secs}s (corpus $work/corpus)"
# -max_len: the seeds are small; 4 KiB leaves room for growth without slowing the run.
"$bin" "$work/corpus" -dict=tools/fuzz/safetensors.dict -max_total_time="$secs" -max_len=4096 \
    -artifact_prefix="$work/" -print_final_stats=1
