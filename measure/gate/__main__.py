"""`python -m measure.gate OLD.json NEW.json`: the regression gate on two saved runs.

Both files are pytest-benchmark JSON with raw samples (`--benchmark-json`, or `--benchmark-save-
data`). Prints a warning for each machine fact that differs (measure/gate/machine.py), then
every cell's verdict line for the regressed and faster ones. Exit status: 0 no regression,
1 a cell regressed or no cell is in both runs, 2 bad input or (with --strict-machine) another
machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common.errors import GateError
from measure.gate.machine import differences
from measure.gate.regression import GateRule, judge_runs, load_run


def main(argv: list[str] | None = None) -> int:
    rule = GateRule()
    parser = argparse.ArgumentParser(
        prog="python -m measure.gate", description=__doc__.splitlines()[0].split(": ", 1)[1]
    )
    parser.add_argument("old", type=Path, help="the baseline run (pytest-benchmark JSON)")
    parser.add_argument("new", type=Path, help="the run to judge (pytest-benchmark JSON)")
    parser.add_argument(
        "--confidence",
        type=float,
        default=rule.confidence,
        help=f"two-sided confidence of each cell's interval (default: {rule.confidence:g})",
    )
    parser.add_argument(
        "--min-effect",
        type=float,
        default=rule.min_effect,
        help="smallest slowdown, as a fraction, called a regression "
        f"(default: {rule.min_effect:g})",
    )
    parser.add_argument(
        "--strict-machine",
        action="store_true",
        help="refuse (exit 2) when the runs' machines differ in a field that matters",
    )
    args = parser.parse_args(argv)
    try:
        rule = GateRule(confidence=args.confidence, min_effect=args.min_effect)
        old, new = load_run(args.old), load_run(args.new)
    except GateError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    diffs = differences(old.get("machine_info") or {}, new.get("machine_info") or {})
    for d in diffs:
        print(f"warning: machines differ: {d.line()}: {d.why}", file=sys.stderr)
    if diffs and args.strict_machine:
        print(
            "error: --strict-machine: the runs were measured on different machines", file=sys.stderr
        )
        return 2
    judgement = judge_runs(old["benchmarks"], new["benchmarks"], rule)
    print(
        f"regression gate {'PASSED' if judgement.passed else 'FAILED'}: {args.new} against "
        f"{args.old}"
    )
    for line in judgement.lines():
        print(line)
    return 0 if judgement.passed else 1


if __name__ == "__main__":
    sys.exit(main())
