#!/usr/bin/env bash
# One device-machine call: correctness on real cuSPARSELt halves, single-GPU timing, the triton
# cross-check and energy trials. Every step runs under its own time limit and the records are
# packed into OUTDIR/records.tgz at the end, so a slow step never loses what was measured.
# Usage (on the GPU machine, repo root): bash scripts/gpu_session.sh OUTDIR [check|time|agree|energy|all]
set -uo pipefail
OUT=${1:?output folder}
PART=${2:-all}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
P="timeout ${STEP_S:-300} python3 -m pytest -p no:cacheprovider --bs-results $OUT/results"
want() { [ "$PART" = all ] || [ "$PART" = "$1" ]; }
if want check; then
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.limit,temperature.gpu --format=csv
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cusparselt', torch.backends.cusparselt.version())"
  $P bench -k phase0 -q 2>&1 | tail -n 25 | tee "$OUT/phase0_smoke.txt"
  $P bench --suite gpu_check -q -rA 2>&1 | grep -E "PASS|FAIL|ERROR|passed|failed" | tee "$OUT/gpu_check.txt"
  $P bench --suite gpu_check -q --bs-backend flinear 2>&1 | tail -n 3 | tee -a "$OUT/gpu_check.txt"
fi
if want time; then
  $P bench --suite single_gpu -k phase1 --benchmark-json "$OUT/single_gpu.json" > "$OUT/single_gpu.txt" 2>&1
  grep -E "passed|failed" "$OUT/single_gpu.txt"
fi
if want agree; then
  PYTHONPATH=. timeout "${STEP_S:-300}" python3 scripts/agreement.py "$OUT/agreement.json" 2>&1 | grep -v Warn | tee "$OUT/agreement.txt"
fi
if want energy; then
  for i in 1 2 3 4 5; do
    $P bench --suite single_gpu -k "phase1 and N16384-B1024 and (dense_single or block_shock_half)" \
      --energy-window 5 -q 2>&1 | grep -E "passed|failed"
  done
fi
[ -d "$OUT/results" ] && tar czf "$OUT/records-$PART.tgz" -C "$OUT" results && rm -rf "$OUT/results"
