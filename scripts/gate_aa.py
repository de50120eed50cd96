"""The regression gate's false-alarm rate, measured: A/A pairs of real runs of unchanged code.

    python scripts/gate_aa.py run OUT --pairs 10 -- -k "phase1 and (N256-B64 or N128-B8)"
    python scripts/gate_aa.py judge OUT --min-effect 0.05 0.10 0.20

`run` makes `--pairs` pairs of `python -m pytest bench ... --benchmark-json` runs one after the
other (A then B, as a baseline and a later run are), each in a fresh process, and keeps each
run's wall time and the machine's load average beside its JSON (OUT/runs.json). `judge` puts
every pair through the gate (`python -m measure.gate`'s code) at each minimum effect and
confidence asked for, prints how many pairs and cells it flagged, and writes OUT/judged.json.
Every run of the same code is an A/A comparison, so any flagged cell is a false alarm.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(out: Path, pairs: int, pytest_args: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "runs.json"
    log = json.loads(log_path.read_text()) if log_path.exists() else []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for i in range(pairs):
        for side in ("a", "b"):
            name = f"pair{i:02d}-{side}.json"
            if (out / name).exists():
                continue
            cmd = [
                sys.executable,
                "-m",
                "pytest",
                "bench",
                "-q",
                "-p",
                "no:cacheprovider",
                f"--benchmark-json={out / name}",
                "--bs-results",
                str(out / "results"),
                *pytest_args,
            ]
            load_before = os.getloadavg()
            t0 = time.perf_counter()
            done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if done.returncode != 0:
                sys.exit(f"{name}: pytest exited {done.returncode}\n{done.stdout[-3000:]}")
            entry = {
                "file": name,
                "wall_s": round(wall, 1),
                "loadavg_before": load_before,
                "loadavg_after": os.getloadavg(),
                "args": pytest_args,
            }
            log.append(entry)
            log_path.write_text(json.dumps(log, indent=1))
            print(json.dumps(entry), flush=True)


def judge(out: Path, confidences: list[float], min_effects: list[float]) -> None:
    from measure.gate.regression import GateRule, judge_runs

    pairs = sorted({p.name.rsplit("-", 1)[0] for p in out.glob("pair*-a.json")})
    pairs = [p for p in pairs if (out / f"{p}-b.json").exists()]
    docs = {p: [json.loads((out / f"{p}-{s}.json").read_text()) for s in "ab"] for p in pairs}
    rows = []
    for confidence in confidences:
        for min_effect in min_effects:
            rule = GateRule(confidence=confidence, min_effect=min_effect)
            flagged_pairs, flagged_cells, cells, worst = 0, 0, 0, 0.0
            fixed_pairs, fixed_cells = 0, 0  # the fixed rule: median new/old above 1 + effect
            for old, new in docs.values():
                verdicts = judge_runs(old["benchmarks"], new["benchmarks"], rule).judged
                regressed = [v for v in verdicts if v.regressed]
                fixed = [v for v in verdicts if v.ratio > rule.threshold]
                cells += len(verdicts)
                flagged_cells += len(regressed)
                flagged_pairs += bool(regressed)
                fixed_cells += len(fixed)
                fixed_pairs += bool(fixed)
                worst = max([worst, *(v.interval[0] for v in verdicts)])
            row = {
                "confidence": confidence,
                "min_effect": min_effect,
                "pairs": len(docs),
                "pairs_flagged": flagged_pairs,
                "cells_judged": cells,
                "cells_flagged": flagged_cells,
                "highest_lower_bound": round(worst, 4),
                "fixed_rule_pairs_flagged": fixed_pairs,
                "fixed_rule_cells_flagged": fixed_cells,
            }
            rows.append(row)
            print(
                f"confidence {confidence:g} min effect {min_effect:g}: {flagged_pairs} of "
                f"{len(docs)} A/A pairs flagged ({flagged_cells} of {cells} cell comparisons); "
                f"highest lower bound {worst:.3f}; a fixed median rule at {rule.threshold:g}x "
                f"flags {fixed_pairs} pairs ({fixed_cells} cells)"
            )
    (out / "judged.json").write_text(json.dumps(rows, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="make A/A pairs of real runs")
    r.add_argument("out", type=Path)
    r.add_argument("--pairs", type=int, default=10)
    j = sub.add_parser("judge", help="put every pair through the gate")
    j.add_argument("out", type=Path)
    j.add_argument("--confidence", type=float, nargs="+", default=[0.99])
    j.add_argument("--min-effect", type=float, nargs="+", default=[0.05])
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)  # after --: every pytest run's args
    args = parser.parse_args(argv[:cut])
    if args.command == "run":
        run(args.out, args.pairs, argv[cut + 1 :])
    else:
        judge(args.out, args.confidence, args.min_effect)


if __name__ == "__main__":
    main()
