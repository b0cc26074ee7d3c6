#!/usr/bin/env bash
# Installs the Debian packages the project needs, only those missing
# (idempotent; no network use when everything is present).
#   tools/deps.sh            build + test packages
#   tools/deps.sh --bench    OpenBLAS, the reference GEMM of `make bench-cpu`
#   tools/deps.sh --download DIR   fetch the .debs of the build packages into DIR
#                            (for an offline machine, e.g. the GPU box: copy DIR
#                            there as .debs/ and this script unpacks them)
# Packages the current build needs are required (libpng and libjpeg-turbo for
# data/image.c among them); the others (clang + its runtime for the fuzz
# targets, HDF5, OpenMPI) are installed when a package server is reachable and
# only warned about when it is not (e.g. on an offline GPU machine).
set -euo pipefail
cd "$(dirname "$0")/.."
required=(gcc g++ make perl libc6-dev libcjson-dev libcjson1 zlib1g-dev libpng-dev libjpeg62-turbo-dev)
optional=(clang libclang-rt-14-dev libhdf5-dev libopenmpi-dev openmpi-bin)
case "${1:-}" in
    --bench) required=(libopenblas-dev); optional=() ;;
    --download)
        mkdir -p "$2"
        (cd "$2" && apt-get download libcjson1 libcjson-dev zlib1g-dev libpng-dev libpng16-16 libjpeg62-turbo-dev libjpeg62-turbo)
        exit 0 ;;
esac
missing() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"
    done
}
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
mapfile -t need < <(missing "${required[@]}" "${optional[@]}")
[ ${#need[@]} -eq 0 ] && exit 0
echo "deps: installing ${need[*]}"
if $SUDO apt-get update -qq >/dev/null 2>&1 &&
    $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; then
    exit 0
fi
# Offline: unpack bundled .debs (tools/deps.sh --download .debs on a connected machine).
if compgen -G ".debs/*.deb" >/dev/null; then
    echo "deps: no package server; installing from .debs/"
    $SUDO dpkg -i .debs/*.deb >/dev/null || true
fi
mapfile -t still < <(missing "${required[@]}")
if [ ${#still[@]} -gt 0 ]; then
    echo "deps: error: cannot install required packages: ${still[*]}" >&2
    exit 1
fi
mapfile -t opt < <(missing "${optional[@]}")
[ ${#opt[@]} -gt 0 ] && echo "deps: warning: not installed (not needed by the current build): ${opt[*]}"
exit 0
