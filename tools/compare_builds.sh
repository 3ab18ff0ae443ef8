#!/usr/bin/env bash
# compare_builds.sh — the speed check of a refactor: two `tessera` binaries (the commit before
# and the new one), the same benchmarks run alternately ROUNDS times, and the new/old ratio of
# each benchmark's best figure (seconds per U-Net CFG step, VAE decode seconds, LLM decode
# tokens/s inverted to seconds). Alternating and taking the best of each side keeps a shared
# machine's noise from favouring either build.
#
#   tools/compare_builds.sh OLD/tessera NEW/tessera [ROUNDS] [LLM.gguf]
#
# The U-Net runs `bench unet --arch sd15 --res 512 --reps 1`, the VAE `bench vae --res 512
# --only untiled --reps 1`, the LLM `bench llm -m LLM.gguf` (skipped without a model; make one
# with tools/make_bench_gguf.py).
set -euo pipefail
old=${1:?old tessera binary}; new=${2:?new tessera binary}; rounds=${3:-3}; llm=${4:-}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

unet() { "$1" bench unet --arch sd15 --res 512 --reps 1 | awk '/seconds per CFG step/ {print $(NF-1)}'; }
vae() { "$1" bench vae --res 512 --only untiled --reps 1 | awk '/untiled:/ {print $2}'; }
# seconds per decode token at batch 1 (the latency a sampler sees)
llm_decode() { "$1" bench llm -m "$llm" --prompt 64 --gen 16 --batch 4 | awk '$1 == 1 {print 1.0 / $3}'; }

benches=(unet vae)
[ -n "$llm" ] && benches+=(llm_decode)
declare -A best_old best_new
for b in "${benches[@]}"; do best_old[$b]=1e30; best_new[$b]=1e30; done
min() { awk -v a="$1" -v b="$2" 'BEGIN {print (a < b ? a : b)}'; }
for ((r = 1; r <= rounds; r++)); do
  for b in "${benches[@]}"; do
    # alternate which build goes first, so neither always runs on a cooler or warmer machine
    if ((r % 2)); then order=(old new); else order=(new old); fi
    for side in "${order[@]}"; do
      bin=$old; [ "$side" = new ] && bin=$new
      t=$($b "$bin")
      echo "round $r $b $side: $t s"
      if [ "$side" = old ]; then best_old[$b]=$(min "${best_old[$b]}" "$t"); else best_new[$b]=$(min "${best_new[$b]}" "$t"); fi
    done
  done
done
echo
printf '%-12s %12s %12s %10s\n' benchmark "old best s" "new best s" "new/old"
for b in "${benches[@]}"; do
  awk -v n="$b" -v o="${best_old[$b]}" -v w="${best_new[$b]}" 'BEGIN {printf "%-12s %12.4f %12.4f %10.3f\n", n, o, w, w / o}'
done
