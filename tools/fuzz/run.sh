#!/usr/bin/env bash
# run.sh SECONDS: fuzzes the weight-file parsers and the image decoders with
# libFuzzer for SECONDS in all (default 60), split evenly between the targets:
#   fuzz_safetensors  tools/fuzz/fuzz_safetensors.c  seeds tools/fuzz/seeds/ (= the test fixtures)
#   fuzz_torch        tools/fuzz/fuzz_torch.c        seeds tools/fuzz/seeds-torch/ (torch.save
#                     files and their data.pkl, first byte = mode, see fuzz_torch.c)
#   fuzz_image        tools/fuzz/fuzz_image.c        seeds tools/fuzz/seeds-image/ (tiny PNGs
#                     and JPEGs from tests/fixtures/image; libpng + libjpeg-turbo)
# Each is built with clang -fsanitize=fuzzer,address,undefined; the committed
# seeds are copied into tools/fuzz/corpus-work/<target>/ (gitignored) and the
# target runs there. Exits non-zero on a crash, leak or sanitizer report;
# libFuzzer writes the crashing input as tools/fuzz/corpus-work/<target>-crash-*.
# SECONDS = 0: builds every target and runs it once over its committed seeds
# only (-runs=0; no mutation) -- the smoke check `make test` runs, so a
# target that no longer builds, or a seed that now crashes, fails the suite.
set -euo pipefail
secs="${1:-60}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
CLANG="${CLANG:-$(command -v clang-14 || command -v clang || true)}"
if [ -z "$CLANG" ]; then
    [ "$secs" = 0 ] && { echo "fuzz: no clang here (tools/deps.sh installs it where a package server answers): smoke check skipped"; exit 0; }
    echo "fuzz: clang not found" >&2
    exit 1
fi
work=tools/fuzz/corpus-work
mkdir -p "$work" build
each=$(( secs / 3 > 0 ? secs / 3 : 1 ))
[ "$secs" = 0 ] && each=0

# fuzz_one TARGET SEEDS DICT MAX_LEN SOURCES...
fuzz_one() {
    local name=$1 seeds=$2 dict=$3 maxlen=$4
    shift 4
    local bin=build/$name corpus=$work/$name
    mkdir -p "$corpus"
    "$CLANG" -std=c11 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        "$@" -lcjson -lz -lm -o "$bin"
    if [ "$each" = 0 ]; then  # smoke check: the seeds alone, quietly
        "$bin" "$seeds" -runs=0 -max_len="$maxlen" >"$work/$name-smoke.log" 2>&1 ||
            { cat "$work/$name-smoke.log"; echo "fuzz: $name failed on its seeds"; return 1; }
        echo "fuzz: $name builds and passes its $(ls "$seeds" | wc -l) seeds"
        return 0
    fi
    cp -n "$seeds"/* "$corpus/" 2>/dev/null || true
    echo "fuzz: running $bin for ${each}s (corpus $corpus)"
    "$bin" "$corpus" -dict="$dict" -max_total_time="$each" -max_len="$maxlen" \
        -artifact_prefix="$work/$name-" -print_final_stats=1
}

# -max_len: the seeds are small; 4 KiB (8 KiB for whole torch files, the
# largest seed is ~5 KiB) leaves room to grow without slowing the run.
fuzz_one fuzz_safetensors tools/fuzz/seeds tools/fuzz/safetensors.dict 4096 \
    tools/fuzz/fuzz_safetensors.c nn/safetensors.c kernels/common.c kernels/tensor.c kernels/mapfile.c
fuzz_one fuzz_torch tools/fuzz/seeds-torch tools/fuzz/torch.dict 8192 \
    tools/fuzz/fuzz_torch.c nn/torch_zip.c nn/torch_pickle.c nn/safetensors.c kernels/common.c kernels/tensor.c kernels/mapfile.c
fuzz_one fuzz_image tools/fuzz/seeds-image tools/fuzz/image.dict 8192 \
    tools/fuzz/fuzz_image.c data/image.c kernels/common.c kernels/mapfile.c -lpng -ljpeg
