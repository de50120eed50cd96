"""python -m reports build RESULTS... --out DIR | compare-runs BASE NEW"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common.errors import ReportInputError, ReportOutputError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reports")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser(
        "build",
        help="build a report from pytest-benchmark JSON files and "
        "run-record folders (results/<run_id>)",
    )
    b.add_argument("inputs", nargs="+", type=Path)
    b.add_argument(
        "--out",
        required=True,
        type=Path,
        help="report folder: created, or replaced whole if an earlier report folder "
        "(one holding .block-shock-report); any other non-empty folder is refused",
    )
    c = sub.add_parser(
        "compare-runs",
        help="do two run folders agree cell for cell: the same cells, statuses and check "
        "figures (exit 1 where they differ)",
    )
    c.add_argument("base", type=Path, help="run folder (results/<run_id>) to compare against")
    c.add_argument("new", type=Path, help="run folder of the same suite, ideally its seed")
    c.add_argument(
        "--rtol",
        type=float,
        default=1e-6,
        help="relative tolerance of a check figure (default 1e-6: the same seed repeats to "
        "rounding; other seeds need a tolerance near 1)",
    )
    args = p.parse_args(argv)
    try:
        if args.command == "compare-runs":
            from reports.read.compare import compare_runs

            comparison = compare_runs(args.base, args.new, args.rtol)
            print("\n".join(comparison.lines()))
            return 0 if comparison.agree else 1
        from reports.build import build

        out = build(args.inputs, args.out)
    except (ReportInputError, ReportOutputError) as e:
        print(f"reports: {e}", file=sys.stderr)
        return 2
    print(out / "report.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
