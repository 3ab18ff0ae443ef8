#!/usr/bin/env bash
# Installs every Debian package Tessera needs to build, test and run.
# Idempotent: when everything is present it does nothing (no apt-get update).
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake pkg-config clang libclang-rt-14-dev libomp-14-dev
  # GEMM / convolution
  libopenblas-dev libdnnl-dev
  # transport and wire format
  libzmq3-dev libczmq-dev libprotobuf-c-dev protobuf-c-compiler libsodium-dev
  openmpi-bin libopenmpi-dev
  # files and text
  libspng-dev libpng-dev libarchive-dev zlib1g-dev libzstd-dev
  libpcre2-dev libutf8proc-dev libcjson-dev libyaml-dev
  libcurl4-openssl-dev
  # Slurm dev cluster for the Slurm tests
  slurm-wlm munge
  # test helpers
  python3 ca-certificates
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
