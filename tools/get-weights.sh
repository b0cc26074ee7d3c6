#!/usr/bin/env bash
# get-weights.sh: the commands that fetch and convert the released weights
# Arc2Face needs, and the `arc2face generate` line that uses them.
#
#   tools/get-weights.sh [--dir DIR]          print the commands (default DIR: models)
#   tools/get-weights.sh [--dir DIR] --run    run them (needs a network, huggingface-cli or
#                                             hf, curl, unzip, sha256sum, python3 + onnx)
#
# What and from where (shared/reference/arc2face-upstream.md sections 1-2):
#   DIR/arc2face/, DIR/encoder/, DIR/arcface.onnx  Hugging Face FoivosPar/Arc2Face (MIT): the
#                     fine-tuned UNet (diffusers, fp32 3.4 GB), the fine-tuned CLIP text encoder
#                     (pytorch_model.bin, 492 MB; read as is) and the ArcFace recognizer
#                     (IResNet-100 trained on WebFace42M; NOT antelopev2's glintr100).
#   DIR/sd15/         stable-diffusion-v1-5/stable-diffusion-v1-5 (the base upstream names): only
#                     vae/, scheduler/ and tokenizer/ are used (Arc2Face replaces UNet and encoder).
#   DIR/antelopev2/   insightface's antelopev2.zip (GitHub release v0.7): only the SCRFD-10G
#                     detector scrfd_10g_bnkps.onnx is used (glintr100.onnx is upstream's default
#                     recognizer, which Arc2Face replaces by arcface.onnx; it is deleted here).
# The two ONNX models are converted to safetensors by `arc2face convert` (tools/onnx2safetensors.py).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=models
RUN=0
while [ $# -gt 0 ]; do
    case "$1" in
        --run) RUN=1 ;;
        --dir) DIR="${2:?--dir needs a value}"; shift ;;
        -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "get-weights.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done

HF=huggingface-cli
if ! command -v huggingface-cli >/dev/null 2>&1 && command -v hf >/dev/null 2>&1; then HF=hf; fi
ANTELOPE_URL=https://github.com/deepinsight/insightface/releases/download/v0.7/antelopev2.zip
ANTELOPE_SHA=8e182f14fc6e80b3bfa375b33eb6cff7ee05d8ef7633e738d1c89021dcf0c5c5

cmds=(
    "# 1. Arc2Face (UNet, encoder, ArcFace recognizer) -- pip install -U 'huggingface_hub[cli]' for $HF"
    "$HF download FoivosPar/Arc2Face --local-dir $DIR --include 'arc2face/*' 'encoder/*' arcface.onnx"
    "# 2. Stable Diffusion 1.5: VAE, scheduler config, tokenizer"
    "$HF download stable-diffusion-v1-5/stable-diffusion-v1-5 --local-dir $DIR/sd15 --include vae/config.json vae/diffusion_pytorch_model.safetensors scheduler/scheduler_config.json 'tokenizer/*'"
    "# 3. insightface antelopev2 (the SCRFD-10G detector)"
    "curl -L --fail -o $DIR/antelopev2.zip $ANTELOPE_URL"
    "echo '$ANTELOPE_SHA  $DIR/antelopev2.zip' | sha256sum -c -"
    "unzip -o -j $DIR/antelopev2.zip 'antelopev2/scrfd_10g_bnkps.onnx' -d $DIR/antelopev2"
    "# 4. ONNX -> safetensors (needs python3 and: pip install onnx)"
    "make build/arc2face"
    "build/arc2face convert $DIR/arcface.onnx $DIR/arcface.safetensors"
    "build/arc2face convert $DIR/antelopev2/scrfd_10g_bnkps.onnx $DIR/antelopev2/scrfd_10g_bnkps.safetensors"
)
GEN="build/arc2face generate --model $DIR --base $DIR/sd15 --arcface $DIR/arcface.safetensors --detector $DIR/antelopev2/scrfd_10g_bnkps.safetensors --photo face.jpg --n 4 --out out --grid"

if [ "$RUN" -eq 0 ]; then
    echo "# Download and convert the released weights into $DIR/ (about 4.5 GB), then generate:"
    for c in "${cmds[@]}"; do echo "$c"; done
    echo "# 5. generate (add --device cuda --dtype bf16 on a CUDA build)"
    echo "$GEN"
    echo "# (run these with: tools/get-weights.sh --dir $DIR --run)"
    exit 0
fi

for tool in "$HF" curl unzip sha256sum python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "get-weights.sh: '$tool' not found (see --help)" >&2; exit 1; }
done
mkdir -p "$DIR/antelopev2"
for c in "${cmds[@]}"; do
    case "$c" in "#"*) echo "$c"; continue ;; esac
    echo "+ $c"
    eval "$c"
done
echo "done. Now run:"
echo "$GEN"
