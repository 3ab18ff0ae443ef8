#!/usr/bin/env bash
# test_bench_parallel.sh — `tessera bench parallel` without measuring (--measure-arch none):
# the plan's totals for the published architectures (SD 1.5: 16 transformer blocks x 3
# all-reduces + 22 ResNets = 70 per step; SDXL: 70 transformer layers x 3 + 17 ResNets = 227),
# the prediction table for the three links and --parallel auto's choice with its reason.
set -euo pipefail
: "${TESSERA_BIN:?}"
out=$("$TESSERA_BIN" bench parallel --measure-arch none --layers)
echo "$out" | grep -q "sd15 at 512x512, one CFG step (batch 2): .* 70 all-reduces" || { echo "$out"; exit 1; }
echo "$out" | grep -q "sdxl at 1024x1024, one CFG step (batch 2): .* 227 all-reduces" || { echo "$out"; exit 1; }
# every all-reduce of SD 1.5's first level is [2, 320, 64, 64] floats: 10.49 MB
echo "$out" | grep -Eq "down_blocks.0.attentions.0 +transformer +3 +10.49" || { echo "$out"; exit 1; }
# the links, and auto's reasons (TP over NVLink at 4 ranks; the CFG split at 2 ranks)
[ "$(echo "$out" | grep -c "NVLink 4\|PCIe 5\|InfiniBand")" -ge 18 ] || { echo "$out"; exit 1; }
echo "$out" | grep -Eq "NVLink 4 .* 4 .* tp$" || { echo "$out"; exit 1; }
echo "$out" | grep -q "auto at T = 2 over PCIe 5: batch split" || { echo "$out"; exit 1; }
# SDXL has 10 heads at level 1: no 4-way split
echo "$out" | grep -Eq "NVLink 4 .* 4 .*refused" || { echo "$out"; exit 1; }
if "$TESSERA_BIN" bench parallel --arch sd3 2>/dev/null; then echo "--arch sd3 accepted"; exit 1; fi
echo ok
