#!/usr/bin/env bash
# One device-machine call: correctness on real cuSPARSELt halves, single-GPU timing, the triton
# cross-check and energy trials. Every step runs under its own time limit and the records are
# packed into OUTDIR/records.tgz at the end, so a slow step never loses what was measured.
# Usage (on the GPU machine, repo root):
#   bash scripts/gpu_session.sh OUTDIR [check|time|agree|energy|all]   the 2026-11 session
#   bash scripts/gpu_session.sh OUTDIR build      the sm90 CUTLASS build alone (JIT, ~100 s, cached)
#   bash scripts/gpu_session.sh OUTDIR gputests   every GPU test (-m gpu), the sm90 and auto ones too
#   bash scripts/gpu_session.sh OUTDIR kernels    kernel_bench over every backend, then auto vs cslt at B 1..4096
#   bash scripts/gpu_session.sh OUTDIR h2         the training_h2 suite (H2 per 2:4 backend), energy off
# `build`, `gputests`, `kernels` and `h2` are not part of `all`: name each.
set -uo pipefail
OUT=${1:?output folder}
PART=${2:-all}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
P="timeout ${STEP_S:-300} python3 -m pytest -p no:cacheprovider --bs-results $OUT/results"
want() { [ "$PART" = all ] || [ "$PART" = "$1" ]; }
only() { [ "$PART" = "$1" ]; }
PY="timeout ${STEP_S:-300} python3"
export PYTHONPATH=.
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
if only build; then
  $PY scripts/sm90_gpu_check.py --build-only 2>&1 | tail -n 5 | tee "$OUT/sm90_build.txt"
fi
if only gputests; then
  $PY -m pytest -p no:cacheprovider -m gpu tests -q -rs 2>&1 | tail -n 40 | tee "$OUT/gpu_tests.txt"
fi
if only kernels; then
  $PY scripts/kernel_bench.py "$OUT/kernel_bench.json" > "$OUT/kernel_bench.txt" 2>&1
  tail -n 60 "$OUT/kernel_bench.txt"
  $PY scripts/kernel_bench.py "$OUT/kernel_bench_sweep_b.json" --sweep-b --backends cslt auto \
    > "$OUT/kernel_bench_sweep_b.txt" 2>&1
  tail -n 30 "$OUT/kernel_bench_sweep_b.txt"
fi
if only h2; then
  P="timeout -s INT -k 30 ${STEP_S:-300} python3 -m pytest -p no:cacheprovider --bs-results $OUT/results"
  $P bench --suite training_h2 --bs-energy off --benchmark-json "$OUT/training_h2.json" -q \
    > "$OUT/training_h2.txt" 2>&1
  tail -n 40 "$OUT/training_h2.txt"
fi
[ -d "$OUT/results" ] && tar czf "$OUT/records-$PART.tgz" -C "$OUT" results && rm -rf "$OUT/results"
