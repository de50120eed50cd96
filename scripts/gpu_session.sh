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
#                                                 (H2_K=EXPR narrows it with -k, H2_TAG=_x names its files)
# `build`, `gputests`, `kernels` and `h2` are not part of `all`: name each.
set -uo pipefail
OUT=${1:?output folder}
PART=${2:-all}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
want() { [ "$PART" = all ] || [ "$PART" = "$1" ]; }
only() { [ "$PART" = "$1" ]; }
PY="timeout -s INT -k 20 ${STEP_S:-300} python3"  # SIGINT: pytest still prints its summary
P="$PY -m pytest -p no:cacheprovider --bs-results $OUT/results"
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
  # the newest tests first, so a short call still runs them
  $PY -m pytest -p no:cacheprovider -m gpu -q -rs tests/gpu/test_training_gpu.py \
    tests/gpu/test_auto_gpu.py tests/kernels/test_sm90_24.py tests/kernels/test_sddmm24.py \
    tests/gpu/test_gpu.py tests/gpu/test_probe_gpu.py tests/gpu/test_machine_info_gpu.py \
    tests/kernels/test_triton24.py > "$OUT/gpu_tests.txt" 2>&1
  tail -n 40 "$OUT/gpu_tests.txt"
fi
if only kernels; then
  # KB_SIZES narrows the full grid to some N
  $PY scripts/kernel_bench.py "$OUT/kernel_bench.json" ${KB_SIZES:+--sizes $KB_SIZES} \
    > "$OUT/kernel_bench.txt" 2>&1
  tail -n 60 "$OUT/kernel_bench.txt"
  if [ -z "${KB_NO_SWEEP:-}" ]; then
    $PY scripts/kernel_bench.py "$OUT/kernel_bench_sweep_b.json" --sweep-b --backends cslt auto \
      > "$OUT/kernel_bench_sweep_b.txt" 2>&1
    tail -n 30 "$OUT/kernel_bench_sweep_b.txt"
  fi
fi
if only h2; then
  # H2_K narrows the suite with -k (H2_TAG names the files), so a short device call can run the
  # full grid at one shape first and the rest after
  $P bench --suite training_h2 --bs-energy off -k "${H2_K:-phase}" -q \
    --benchmark-json "$OUT/training_h2${H2_TAG:-}.json" > "$OUT/training_h2${H2_TAG:-}.txt" 2>&1
  tail -n 40 "$OUT/training_h2${H2_TAG:-}.txt"
fi
[ -d "$OUT/results" ] && tar czf "$OUT/records-$PART${H2_TAG:-}.tgz" -C "$OUT" results && rm -rf "$OUT/results"
