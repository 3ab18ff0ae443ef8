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
  libjpeg62-turbo-dev libwebp-dev
  libpcre2-dev libutf8proc-dev libcjson-dev libyaml-dev
  libcurl4-openssl-dev libmicrohttpd-dev curl
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

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# CLIP's vocabulary for single-file checkpoints (they carry none): bpe_simple_vocab_16e6.txt.gz
# from PyPI's open_clip_torch wheel, checked against OpenAI's sha256. Skipped when present;
# a failure (offline) only warns: folders and --tokenizer PATH work without it.
CLIP_VOCAB_DIR=/usr/local/share/tessera
CLIP_VOCAB_SHA256=924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a
if [ ! -f "$CLIP_VOCAB_DIR/bpe_simple_vocab_16e6.txt.gz" ] && command -v python3 >/dev/null; then
  tmp=$(mktemp -d)
  if python3 -m pip download --no-deps --quiet -d "$tmp" open_clip_torch >/dev/null 2>&1 &&
     python3 - "$tmp" "$CLIP_VOCAB_SHA256" <<'EOF'
import glob, hashlib, sys, zipfile
tmp, want = sys.argv[1], sys.argv[2]
data = zipfile.ZipFile(glob.glob(tmp + "/open_clip_torch-*.whl")[0]).read("open_clip/bpe_simple_vocab_16e6.txt.gz")
if hashlib.sha256(data).hexdigest() != want:
    sys.exit("install-deps: bpe_simple_vocab_16e6.txt.gz from open_clip_torch has an unexpected sha256")
open(tmp + "/bpe_simple_vocab_16e6.txt.gz", "wb").write(data)
EOF
  then
    SUDO_V=""; [ "$(id -u)" -eq 0 ] || SUDO_V="sudo"
    $SUDO_V mkdir -p "$CLIP_VOCAB_DIR" && $SUDO_V install -m 0644 "$tmp/bpe_simple_vocab_16e6.txt.gz" "$CLIP_VOCAB_DIR/"
    echo "install-deps: CLIP vocabulary -> $CLIP_VOCAB_DIR/bpe_simple_vocab_16e6.txt.gz" >&2
  else
    echo "install-deps: warning: could not fetch the CLIP vocabulary (open_clip_torch); single-file models will need --tokenizer" >&2
  fi
  rm -rf "$tmp"
fi

