#!/usr/bin/env bash
# On the GPU machine (no asv there: carried as wheels in .whl/): asv over the asv suite with
# --python=same, beside pytest-benchmark medians of the same cells. Usage: bash scripts/asv_gpu.sh OUTDIR
set -uo pipefail
OUT=${1:?output folder}
mkdir -p "$OUT"
# asv starts benchmarks with a clean environment (no PYTHONPATH), so asv and the project go into
# the machine's own Python environment (the device machine is discarded after the session).
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade .whl/*.whl
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e .
git rev-parse -q --verify HEAD >/dev/null 2>&1 || { git init -q -b main; git add -A; git -c user.email=bench@localhost -c user.name=bench -c commit.gpgsign=false commit -qm "device copy" 2>&1 | tail -3; git log --oneline | head -1; }
python3 -m asv machine --yes > /dev/null
timeout 400 python3 -m asv run --python=same --quick --set-commit-hash "$(git rev-parse HEAD)" 2>&1 | grep -v "^ *$" | tee "$OUT/asv_run.txt" | tail -n 40
PYTHONUNBUFFERED=1 timeout 240 python3 -m pytest -p no:cacheprovider bench --suite asv -v --durations=10 \
  --benchmark-json "$OUT/asv_cells_pytest.json" --bs-results "$OUT/r" > "$OUT/asv_cells_pytest.txt" 2>&1
grep -E "passed|failed|s call|s setup" "$OUT/asv_cells_pytest.txt"
tar czf "$OUT/records.tgz" -C "$OUT" r && rm -rf "$OUT/r"
cp "$(ls results/asv/*/*.json | grep -v machine.json | head -1)" "$OUT/asv_results.json" 2>/dev/null
tar czf "$OUT/asv-records.tgz" results/asv-records
python3 - "$OUT" <<'PY'
import json, sys, glob
out = sys.argv[1]
pb = {b["name"].split("[")[1].split("-")[0]: b for b in json.load(open(f"{out}/asv_cells_pytest.json"))["benchmarks"]}
alg = {}
for f in glob.glob("results/asv-records/*/cells/phase1/*.json"):
    doc = json.load(open(f))
    alg[f.split("/")[-1].split("-")[0]] = [r["alg_id"] for r in doc["ranks"]]
res = json.load(open(f"{out}/asv_results.json"))["results"]["cells.DeviceTime.track_forward"]
methods, values = res[1][0], res[0]
for m, v in zip(methods, values):
    m = m.strip("'")
    p = pb[m]["stats"]["median"]
    print(f"{m:20s} asv {v*1e3:.4f} ms (alg {alg.get(m)})  pytest-benchmark {p*1e3:.4f} ms "
          f"(alg {pb[m]['extra_info']['alg_id']}, {pb[m]['extra_info'].get('alg_source')})  ratio {v/p:.3f}")
PY
