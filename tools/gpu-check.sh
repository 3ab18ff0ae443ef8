#!/usr/bin/env bash
# gpu-check.sh — the one prepared command for a machine with an NVIDIA GPU (issue 14):
# builds the CUDA library and its tests in the CUDA-only configuration, runs the GPU tests,
# runs the hand-written kernels under compute-sanitizer memcheck, and times the heavy ops
# beside PyTorch on the same GPU, printing one table. Meant to finish in well under 8 minutes.
#
#   bash tools/gpu-check.sh            on the GPU machine (nvcc, PyTorch with its NVIDIA wheels)
#   bash tools/gpu-check.sh --dry-run  anywhere with nvcc: everything but the GPU (the tests
#                                      must report SKIP; no sanitizer, no timings)
#   bash tools/gpu-check.sh --bundle   here, before a GPU run: puts into build/gpu-deps what the
#                                      GPU machine lacks (cJSON's header and library, for the U-Net
#                                      and VAE parity tests; the diffusers wheel, for the U-Net
#                                      baseline), to be carried along (`carry: build/gpu-deps`)
#
# The device tool takes at most 64 MiB of working tree and the tracked tree is ~82 MB, mostly
# fixtures no GPU test reads: move tests/fixtures/{clip,llm,llm_quant,llm_llamacpp,tiny_sd,
# tiny_sdxl} aside for the call (and back after). The GPU tests read fixtures/cuda,
# backend_ops, unet and vae.
#
# The GPU machine has no Debian -dev packages: cuDNN (and NCCL) come from PyTorch's
# nvidia-* wheels, whose include/ and lib/ folders are handed to CMake (TESSERA_CUDA_HINTS)
# and to the loader (LD_LIBRARY_PATH). Logs go to $OUT (the device tool's folder) or
# build/gpu-check-out; the build to $TESSERA_GPU_BUILD or build/gpu-check.
set -uo pipefail

DRY=0 BUNDLE=0
for a in "$@"; do
    case "$a" in
    --dry-run) DRY=1 ;;
    --bundle) BUNDLE=1 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "gpu-check.sh: unknown argument '$a' (try --help)" >&2; exit 2 ;;
    esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEPS=$ROOT/build/gpu-deps

if [ $BUNDLE = 1 ]; then
    set -e
    mkdir -p "$DEPS/include/cjson" "$DEPS/lib" "$DEPS/wheels"
    cp /usr/include/cjson/cJSON.h "$DEPS/include/cjson/"
    cp -L "$(ldconfig -p | awk '/libcjson.so.1 /{print $NF; exit}')" "$DEPS/lib/libcjson.so.1"
    ln -sf libcjson.so.1 "$DEPS/lib/libcjson.so"
    PYBIN=${PYTHON:-$ROOT/.venv/bin/python}
    ver=$("$PYBIN" -c 'import diffusers; print(diffusers.__version__)' 2>/dev/null || echo "")
    "$PYBIN" -m pip download -q --no-deps -d "$DEPS/wheels" "diffusers${ver:+==$ver}"
    du -sh "$DEPS"; ls -R "$DEPS" | head -20
    exit 0
fi
BUILD=${TESSERA_GPU_BUILD:-$ROOT/build/gpu-check}
LOGS=${OUT:-$ROOT/build/gpu-check-out}
PY=${PYTHON:-python3}
mkdir -p "$LOGS" "$BUILD"
exec > >(tee "$LOGS/gpu-check.log") 2>&1
START=$SECONDS
FAILED=()

step() { printf '\n== %s (%ds)\n' "$1" $((SECONDS - START)); }
fail() { FAILED+=("$1"); echo "FAILED: $1"; }

# Limits per step keep a GPU run inside its lease; a dry run on a busy shared machine may
# take far longer to compile, so it gets no tight limits.
if [ $DRY = 1 ]; then T_CONFIGURE=1800 T_BUILD=3600 T_TESTS=600; else T_CONFIGURE=120 T_BUILD=240 T_TESTS=180; fi

step "machine"
echo "mode: $([ $DRY = 1 ] && echo dry run || echo GPU run)"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv,noheader
for d in /usr/local/cuda/bin /usr/local/cuda-*/bin; do [ -x "$d/nvcc" ] && PATH="$PATH:$d"; done
command -v nvcc >/dev/null || { echo "no nvcc on PATH"; exit 1; }
nvcc --version | tail -1
cmake --version | head -1

# Folders of the nvidia-* wheels that hold include/ or lib/ (cuDNN, cuBLAS, NCCL, ...).
HINTS=$("$PY" - <<'EOF' 2>/dev/null
import os
try:
    import nvidia
    roots = list(nvidia.__path__)
except Exception:
    roots = []
found = []
for r in roots:
    for d in sorted(os.listdir(r)):
        p = os.path.join(r, d)
        if os.path.isdir(os.path.join(p, "include")) or os.path.isdir(os.path.join(p, "lib")):
            found.append(p)
print(";".join(found))
EOF
)
if [ -d "$DEPS/lib" ]; then HINTS="${HINTS:+$HINTS;}$DEPS"; fi   # cJSON from --bundle
echo "wheel folders: ${HINTS:-none}"
for d in ${HINTS//;/ }; do
    [ -d "$d/lib" ] && LD_LIBRARY_PATH="$d/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}
export TESSERA_FIXTURES="$ROOT/tests/fixtures"

# Only the GPU that is here on a real run (faster to build); both targets on a dry run.
ARCHS="80;90"
if [ $DRY = 0 ]; then
    cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '. ')
    [ -n "$cap" ] && ARCHS=$cap
fi

step "configure (CUDA only, sm $ARCHS)"
GEN=()   # a fresh build folder gets Ninja when there is one; an old one keeps its generator
if [ ! -f "$BUILD/CMakeCache.txt" ] && command -v ninja >/dev/null; then GEN=(-G Ninja); fi
if ! timeout $T_CONFIGURE cmake -S "$ROOT" -B "$BUILD" "${GEN[@]}" -DTESSERA_CUDA_ONLY=ON -DCMAKE_BUILD_TYPE=Release \
        "-DCMAKE_CUDA_ARCHITECTURES=$ARCHS" "-DTESSERA_CUDA_HINTS=$HINTS" > "$LOGS/build.log" 2>&1; then
    cat "$LOGS/build.log"; fail "configure"; echo "gpu-check: cannot go on"; exit 1
fi
grep -E 'CUDA:|NCCL:' "$LOGS/build.log"

step "build"
if ! timeout $T_BUILD cmake --build "$BUILD" -j "$(nproc)" >> "$LOGS/build.log" 2>&1; then
    tail -40 "$LOGS/build.log"; fail "build"; echo "gpu-check: cannot go on"; exit 1
fi
echo "built: $(ls "$BUILD"/tests/gpu | grep -c '^gpu_') programs"

step "GPU tests (ctest -L gpu)"
(cd "$BUILD" && timeout $T_TESTS ctest -L gpu --output-on-failure) > "$LOGS/ctest.log" 2>&1
rc=$?
cat "$LOGS/ctest.log"
if [ $DRY = 1 ]; then
    # the tests that need a device (tests/expected_skips.txt) must report SKIP; the others pass
    total=$(grep -c ' Test *#' "$LOGS/ctest.log")
    skipped=$(grep -c '(Skipped)$' "$LOGS/ctest.log")   # ctest's "did not run" list
    missing=""
    for t in $(awk '$1 ~ /^gpu\// {print $1}' "$ROOT/tests/expected_skips.txt"); do
        grep -q " $t " "$LOGS/ctest.log" || continue   # not built in this configuration
        grep -q -- "- $t (Skipped)" "$LOGS/ctest.log" || missing="$missing $t"
    done
    echo "dry run: $skipped of $total GPU tests skipped${missing:+; did not skip:$missing}"
    [ $rc = 0 ] && [ "$total" -gt 0 ] && [ -z "$missing" ] || fail "dry run: the device tests must report SKIP, the others pass"
else
    [ $rc = 0 ] && ! grep -q 'Skipped' "$LOGS/ctest.log" || fail "GPU tests"
fi

step "NCCL comm against the host comm (gpu/test_comm_nccl, T = 1: one GPU)"
# all-reduce-sum and all-gather through NCCL and through the host comm (MPI when built with
# it and started by mpirun, else the single rank) on the same data; already run by ctest above,
# shown here with its achieved errors
timeout 60 "$BUILD/tests/gpu/gpu_test_comm_nccl" > "$LOGS/comm_nccl.log" 2>&1
rc=$?
cat "$LOGS/comm_nccl.log"
if [ $DRY = 1 ]; then
    [ $rc = 77 ] || fail "dry run: gpu_test_comm_nccl must report SKIP (exit $rc)"
else
    [ $rc = 0 ] || fail "NCCL comm (exit $rc; 77: built without NCCL or no GPU)"
fi

step "compute-sanitizer memcheck (hand-written kernels)"
if [ $DRY = 1 ]; then
    echo "dry run: skipped"
elif ! CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer /opt/nvidia/*/compute-sanitizer 2>/dev/null | head -1) || [ -z "$CS" ]; then
    fail "compute-sanitizer not found"
else
    TESSERA_CUDA_TEST_OPS=attention,norm,elementwise timeout 150 "$CS" --tool memcheck --error-exitcode 3 \
        "$BUILD/tests/gpu/gpu_test_cuda_ops" > "$LOGS/sanitizer.log" 2>&1
    rc=$?
    tail -5 "$LOGS/sanitizer.log"
    [ $rc = 0 ] || fail "memcheck (exit $rc, see sanitizer.log)"
    # the op table's CUDA backend (cuda_backend.c, cuda_f32.cu): every op the models call
    timeout 120 "$CS" --tool memcheck --error-exitcode 3 "$BUILD/tests/gpu/gpu_test_backend_ops" cuda \
        > "$LOGS/sanitizer_table.log" 2>&1
    rc=$?
    tail -3 "$LOGS/sanitizer_table.log"
    [ $rc = 0 ] || fail "memcheck of the op table (exit $rc, see sanitizer_table.log)"
fi

step "op benchmark: Tessera vs PyTorch on the same GPU"
timeout 120 "$BUILD/tests/gpu/gpu_bench_cuda_ops" > "$LOGS/bench_tessera.txt" 2>&1
rc=$?
if [ -x "$BUILD/tests/gpu/gpu_bench_unet_cuda" ]; then   # a whole U-Net step through the op table
    timeout 120 "$BUILD/tests/gpu/gpu_bench_unet_cuda" 512 >> "$LOGS/bench_tessera.txt" 2>&1 || rc=$?
fi
# diffusers for the U-Net baseline: the carried wheel, installed where this run can see it
if [ $DRY = 0 ] && ls "$DEPS"/wheels/diffusers-*.whl >/dev/null 2>&1 && ! "$PY" -c 'import diffusers' 2>/dev/null; then
    "$PY" -m pip install -q --disable-pip-version-check --no-deps --no-index --target "$LOGS/pydeps" \
        "$DEPS"/wheels/diffusers-*.whl 2>&1 | grep -v WARNING
    export PYTHONPATH="$LOGS/pydeps${PYTHONPATH:+:$PYTHONPATH}"
fi
cat "$LOGS/bench_tessera.txt" | grep -v '^BENCH'
if [ $DRY = 0 ] && [ $rc != 0 ]; then fail "benchmark (exit $rc)"; fi
TESSERA_BENCH="$LOGS/bench_tessera.txt" timeout 150 "$PY" - <<'EOF' | tee "$LOGS/bench.txt"
# The same cases in PyTorch (the baseline), timed the same way: CUDA events around each run,
# median of 20 after 3 warm-ups. Then one table.
import os, re, statistics
rows = {}
for line in open(os.environ["TESSERA_BENCH"]):
    if line.startswith("BENCH "):
        _, name, ms, rate, unit = line.split()
        rows[name] = (float(ms), float(rate), unit)
try:
    import torch
    import torch.nn.functional as F
    gpu = torch.cuda.is_available()
except Exception:
    gpu = False
DT = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}

def timed(fn):
    for _ in range(3):
        fn()
    ms = []
    for _ in range(20):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); fn(); b.record()
        ms.append((a, b))
    torch.cuda.synchronize()
    return statistics.median(a.elapsed_time(b) for a, b in ms)

def rnd(*shape, dt):
    return (torch.rand(*shape, device="cuda", dtype=torch.float32) * 2 - 1).to(getattr(torch, dt))

def baseline(name):
    m = re.match(r"gemm_(\d+)_(\w+)$", name)
    if m:
        n, dt = int(m[1]), DT[m[2]]
        a, b = rnd(n, n, dt=dt), rnd(n, n, dt=dt)
        ms = timed(lambda: torch.matmul(a, b))
        return ms, 2 * n ** 3 / (ms * 1e-3) / 1e12
    m = re.match(r"attention_b(\d+)_h(\d+)_n(\d+)_d(\d+)_(\w+)$", name)
    if m:
        B, H, N, D, dt = int(m[1]), int(m[2]), int(m[3]), int(m[4]), DT[m[5]]
        q, k, v = (rnd(B, N, H, D, dt=dt).transpose(1, 2) for _ in range(3))
        ms = timed(lambda: F.scaled_dot_product_attention(q, k, v))
        return ms, 4 * B * H * N * N * D / (ms * 1e-3) / 1e12
    m = re.match(r"conv3x3_b(\d+)_(\d+)x(\d+)_c(\d+)_(\w+)$", name)
    if m:
        B, S, C, dt = int(m[1]), int(m[2]), int(m[4]), DT[m[5]]
        x = rnd(B, C, S, S, dt=dt).to(memory_format=torch.channels_last)
        w = rnd(C, C, 3, 3, dt=dt).to(memory_format=torch.channels_last)
        bias = rnd(C, dt=dt)
        ms = timed(lambda: F.conv2d(x, w, bias, padding=1))
        return ms, 2 * B * S * S * C * C * 9 / (ms * 1e-3) / 1e12
    m = re.match(r"groupnorm_silu_b(\d+)_(\d+)x(\d+)_c(\d+)_(\w+)$", name)
    if m:
        B, S, C, dt = int(m[1]), int(m[2]), int(m[4]), DT[m[5]]
        x = rnd(B, C, S, S, dt=dt).to(memory_format=torch.channels_last)
        ms = timed(lambda: F.silu(F.group_norm(x, 32)))
        return ms, 2 * x.numel() * x.element_size() / (ms * 1e-3) / 1e9
    m = re.match(r"unet_sd15_(\d+)_b(\d+)_F32$", name)
    if m:   # diffusers' UNet2DConditionModel, SD 1.5's config, random weights, float32, no TF32
        res, B = int(m[1]), int(m[2])
        try:
            from diffusers import UNet2DConditionModel
        except Exception as e:
            print("(no diffusers for the U-Net baseline:", e, ")")
            return None
        u = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8,
                                 block_out_channels=(320, 640, 1280, 1280)).to("cuda").eval()
        x, c = rnd(B, 4, res // 8, res // 8, dt="float32"), rnd(B, 77, 768, dt="float32")
        t = torch.tensor([999.0, 899.0][:B], device="cuda")
        with torch.no_grad():
            ms = timed(lambda: u(x, t, encoder_hidden_states=c))
        rate = float(rows[name][1]) * rows[name][0] / ms   # the same FLOPs at torch's time
        return ms, rate
    return None

if gpu:
    torch.backends.cuda.matmul.allow_tf32 = False   # Tessera's F32 GEMM has no TF32 either
    torch.backends.cudnn.allow_tf32 = False
    print("baseline: torch", torch.__version__, "on", torch.cuda.get_device_name(0))
print(f"{'case':<36} {'tessera ms':>10} {'rate':>14} {'torch ms':>10} {'rate':>14} {'time ratio':>10}")
for name, (ms, rate, unit) in rows.items():
    base = baseline(name) if gpu else None
    if base:
        bms, brate = base
        print(f"{name:<36} {ms:>10.3f} {rate:>8.1f} {unit:<5} {bms:>10.3f} {brate:>8.1f} {unit:<5} {ms / bms:>10.2f}")
    else:
        print(f"{name:<36} {ms:>10.3f} {rate:>8.1f} {unit:<5} {'-':>10} {'-':>14} {'-':>10}")
if not rows:
    print("(no Tessera timings: no GPU here)")
print("time ratio = Tessera / PyTorch (below 1: Tessera faster)")
EOF

step "done"
if [ ${#FAILED[@]} -gt 0 ]; then
    printf 'gpu-check: FAILED: %s\n' "${FAILED[*]}"
    exit 1
fi
echo "gpu-check: all steps passed$([ $DRY = 1 ] && echo ' (dry run)') in $((SECONDS - START)) s"
