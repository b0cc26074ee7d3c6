#!/usr/bin/env bash
# Installs the Debian packages the build needs, only those missing (idempotent;
# no network use when everything is present). `--bench` adds OpenBLAS, used by
# `make bench-cpu` as the reference GEMM only.
set -euo pipefail
pkgs=(gcc g++ make libc6-dev perl libcjson-dev zlib1g-dev libpng-dev libjpeg62-turbo-dev libhdf5-dev
      libopenmpi-dev openmpi-bin clang libclang-rt-14-dev)
[ "${1:-}" = "--bench" ] && pkgs=(libopenblas-dev)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
