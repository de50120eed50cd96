"""python -m reports build RESULTS... --out DIR"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common.errors import ReportInputError, ReportOutputError


def main(argv=None) -> int:
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
    args = p.parse_args(argv)
    from reports.build import build

    try:
        out = build(args.inputs, args.out)
    except (ReportInputError, ReportOutputError) as e:
        print(f"reports: {e}", file=sys.stderr)
        return 2
    print(out / "report.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
