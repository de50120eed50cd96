#!/usr/bin/env bash
# One device-machine call: correctness on real cuSPARSELt halves, then single-GPU timing.
# Usage (on the GPU machine, repo root): bash scripts/gpu_session.sh OUTDIR [part]
set -uo pipefail
OUT=${1:?output folder}
PART=${2:-all}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
P="python3 -m pytest -p no:cacheprovider --bs-results $OUT/results"
if [ "$PART" = all ] || [ "$PART" = check ]; then
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.limit,temperature.gpu --format=csv
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cusparselt', torch.backends.cusparselt.version())"
  $P bench -k phase0 -q 2>&1 | tail -n 25 | tee "$OUT/phase0_smoke.txt"
  $P bench --suite gpu_check -q -rA 2>&1 | grep -E "PASS|FAIL|ERROR|passed|failed" | tee "$OUT/gpu_check.txt"
  $P bench --suite gpu_check -q --bs-backend flinear 2>&1 | tail -n 3 | tee -a "$OUT/gpu_check.txt"
fi
if [ "$PART" = all ] || [ "$PART" = time ]; then
  $P bench --suite single_gpu -k phase1 --benchmark-json "$OUT/single_gpu.json" 2>&1 \
    | tee "$OUT/single_gpu.txt" | grep -E "passed|failed|Error" ; grep -A200 "bench summary" "$OUT/single_gpu.txt" | head -80
fi
if [ "$PART" = all ] || [ "$PART" = agree ]; then
  python3 scripts/agreement.py "$OUT/agreement.json" 2>&1 | tee "$OUT/agreement.txt"
fi
if [ "$PART" = all ] || [ "$PART" = energy ]; then
  for i in 1 2 3 4 5; do
    $P bench --suite single_gpu -k "phase1 and N16384-B1024 and (dense_single or block_shock_half)" \
      --energy-window 5 -q --bs-results "$OUT/energy" 2>&1 | grep -E "passed|failed"
  done
fi
