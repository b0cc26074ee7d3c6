#!/usr/bin/env bash
# gpu-bundle.sh: builds the GPU test and benchmark binaries HERE (nvcc, sm_80 + sm_90)
# and packs them, with the few non-CUDA shared libraries they need that a bare CUDA
# image may lack (libpng, libjpeg, libcjson), into build/gpubundle/, together with
# build/gpubundle/run.sh, which runs them on a GPU machine with time limits.
#
# For a lent device with little time (no network, minutes of budget): building there
# costs minutes; this costs none. Carry build/gpubundle (about 20 MB) and run, from
# the repository root there:
#     build/gpubundle/run.sh "$OUT" [TEST_SECONDS [BENCH_SECONDS]]
# It writes env.txt, test_cuda_gpu.txt, bench_attn.txt, bench_conv.txt and
# bench_unet.txt (ours and diffusers' SD1.5 UNet step side by side) into the folder given. cuDNN, cuBLAS and the CUDA runtime come from the machine (its
# toolkit, or the nvidia-* Python wheels next to PyTorch). For the whole check with
# sanitizers and every benchmark, tools/gpu-check.sh builds on the device instead.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
make --no-print-directory build/test_cuda_gpu build/bench_cuda build/bench_unet_gpu
b=build/gpubundle
rm -rf "$b"
mkdir -p "$b/lib" "$b/wheels"
cp build/test_cuda_gpu build/bench_cuda build/bench_unet_gpu "$b/"
# diffusers for the PyTorch side of the UNet benchmark (the device image lacks it and has
# no network; its other dependencies are there)
pip download --quiet --no-deps --dest "$b/wheels" diffusers 2>/dev/null ||
    echo "gpu-bundle: no diffusers wheel (offline?): the PyTorch UNet rows will be skipped"
for lib in libpng16.so.16 libjpeg.so.62 libcjson.so.1; do
    path=$(ldd build/test_cuda_gpu | awk -v l="$lib" '$1 == l {print $3}')
    if [ -n "$path" ]; then cp -L "$path" "$b/lib/"; fi
done
cat >"$b/run.sh" <<'EOF'
#!/usr/bin/env bash
# run.sh OUTDIR [TEST_SECONDS [BENCH_SECONDS]]: made by tools/gpu-bundle.sh; run from the repository root.
out=${1:?usage: run.sh OUTDIR [TEST_SECONDS [BENCH_SECONDS]]}
ts=${2:-120} bs=${3:-120}
b=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
lp="$b/lib"
for m in nvidia.cudnn nvidia.cublas nvidia.cuda_runtime; do
    d=$(python3 -c "import $m as m; print(m.__path__[0])" 2>/dev/null) && lp="$lp:$d/lib"
done
export LD_LIBRARY_PATH="$lp:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
{
    nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv
    python3 -m pip show nvidia-cudnn-cu13 2>/dev/null | head -2
    ldd "$b/test_cuda_gpu" "$b/bench_cuda" | grep -i "not found" || echo "all libraries found"
} >"$out/env.txt" 2>&1
timeout "$ts" "$b/test_cuda_gpu" >"$out/test_cuda_gpu.txt" 2>&1
echo "exit $?" >>"$out/test_cuda_gpu.txt"
timeout "$bs" "$b/bench_cuda" 10 attn >"$out/bench_attn.txt" 2>&1
echo "exit $?" >>"$out/bench_attn.txt"
timeout "$bs" "$b/bench_cuda" 5 "conv " >"$out/bench_conv.txt" 2>&1
echo "exit $?" >>"$out/bench_conv.txt"
{
    timeout "$bs" "$b/bench_unet_gpu" configs/sd15_unet.json 64 2 10
    echo "exit $?"
    whl=$(ls "$b"/wheels/diffusers-*.whl 2>/dev/null | head -1)
    if [ -n "$whl" ]; then
        python3 -m pip install --quiet --no-deps --target "$b/py" "$whl" >/dev/null 2>&1
        PYTHONPATH="$b/py:${PYTHONPATH:-}" timeout "$bs" python3 tools/bench/bench_unet_torch.py unet \
            configs/sd15_unet.json 64 2 10 --device cuda
        echo "exit $?"
    else
        echo "no diffusers wheel in the bundle: PyTorch side skipped"
    fi
} >"$out/bench_unet.txt" 2>&1
grep -h -E "FAIL|passed|^# UNet|^RESULT|exit" "$out"/*.txt
EOF
chmod +x "$b/run.sh"
du -sh "$b"
echo "carry $b; run: $b/run.sh \"\$OUT\""
