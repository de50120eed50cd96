"""`python -m bench.study run|status|collect|verify`: the study runner's command line.

`run` checks that --out can be written, then takes the study folder's lock (bench.study.lock)
for its whole life, before anything else is written or run; `collect` takes it too. `status`
and `verify` only read. `verify` checks every record against its sidecar and every cell run for
exactly one record (bench.study.records), naming each problem.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench.study import integrity, records
from bench.study.lock import StudyLock
from bench.study.manifest import Manifest
from bench.study.plan import Launcher
from bench.study.progress import StudyProgress, status_line
from bench.study.slices.executors import InProcessExecutor, SubmititExecutor, collect
from bench.study.study import (
    DEFAULT_CELL_BUDGET_S,
    DEFAULT_STARTUP_BUDGET_S,
    Study,
    StudyOptions,
    open_study,
    preflight,
)
from common.errors import StudyError
from common.folders import unwritable


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.study", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="preflight, then run a suite's cells into one folder")
    run.add_argument("--suite", required=True, help="named suite of the matrix")
    run.add_argument("-k", dest="k", default=None, help="pytest -k expression over the suite")
    run.add_argument("--out", required=True, type=Path, help="the study folder")
    run.add_argument("--matrix", default=None, help="matrix file (default: benchmarks.json)")
    run.add_argument("--cycles", type=int, default=1, help="times every cell runs (default: 1)")
    run.add_argument(
        "--gap-s", type=float, default=0.0, help="pause between slices, s (default: 0)"
    )
    run.add_argument(
        "--isolation",
        choices=("slice", "cell"),
        default="slice",
        help="one pytest process per world size and cycle, or per cell (default: slice)",
    )
    run.add_argument(
        "--executor",
        choices=("inprocess", "local", "slurm"),
        default="inprocess",
        help="where slices run: subprocesses of this one, submitit's LocalExecutor, or SLURM "
        "job arrays (default: inprocess)",
    )
    run.add_argument("--resume", action="store_true", help="continue the study in --out")
    run.add_argument("--no-wait", action="store_true", help="submitit executors: submit and return")
    run.add_argument("--launcher", choices=("none", "torchrun"), default="none")
    run.add_argument("--nnodes", type=int, default=1, help="torchrun nodes (default: 1)")
    run.add_argument("--node-rank", type=int, default=0, help="torchrun node rank (default: 0)")
    run.add_argument("--master-addr", default="127.0.0.1", help="torchrun, many nodes")
    run.add_argument(
        "--master-port",
        type=int,
        default=29500,
        help="torchrun, many nodes: slice n uses this + n (default: 29500)",
    )
    run.add_argument(
        "--cell-budget-s",
        type=float,
        default=DEFAULT_CELL_BUDGET_S,
        help="watchdog: seconds a cell may run after its set-up "
        f"(default: {DEFAULT_CELL_BUDGET_S:g})",
    )
    run.add_argument(
        "--startup-budget-s",
        type=float,
        default=DEFAULT_STARTUP_BUDGET_S,
        help="watchdog: seconds pytest's start and a cell's set-up (rank pools) may take "
        f"(default: {DEFAULT_STARTUP_BUDGET_S:g})",
    )
    run.add_argument(
        "--history",
        action="append",
        type=Path,
        default=[],
        help="earlier study folder whose measured cell times feed the estimate (repeatable)",
    )
    run.add_argument(
        "--pytest-arg",
        action="append",
        default=[],
        help="argument passed to every pytest the study runs, e.g. --pytest-arg=--bs-seed=1",
    )
    run.add_argument("--slurm-partition", default=None)
    run.add_argument("--slurm-time", type=int, default=None, help="minutes per job")
    run.add_argument("--slurm-account", default=None)
    for name, text in (
        ("status", "print one line about a running or finished study"),
        ("collect", "merge the finished jobs of a submitted study"),
        ("verify", "check every record against its sha256 sidecar and every cell run for "
         "exactly one record; name each duplicate or missing cell"),
    ):  # fmt: skip
        folder = sub.add_parser(name, help=text)
        folder.add_argument("dir", type=Path, nargs="?", help="the study folder")
        folder.add_argument("--out", type=Path, default=None, help="the study folder (as run)")
    return p


def _verify(folder: Path) -> list[str]:
    """Sidecars, then exactly one record per cell run."""
    return integrity.verify(folder) + records.problems(folder)


def _options(a) -> StudyOptions:
    if a.cycles < 1:
        raise StudyError(f"--cycles must be at least 1, got {a.cycles}")
    return StudyOptions(
        suite=a.suite,
        out=a.out.resolve(),
        k=a.k,
        cycles=a.cycles,
        gap_s=a.gap_s,
        isolation=a.isolation,
        executor=a.executor,
        resume=a.resume,
        wait=not a.no_wait,
        launcher=Launcher(a.launcher, a.nnodes, a.node_rank, a.master_addr, a.master_port),
        matrix=a.matrix,
        pytest_args=a.pytest_arg,
        cell_budget_s=a.cell_budget_s,
        startup_budget_s=a.startup_budget_s,
        history=a.history,
        slurm={
            "partition": a.slurm_partition,
            "time_min": a.slurm_time,
            "account": a.slurm_account,
        },
    )


def _run(a) -> int:
    opts = _options(a)
    problem = unwritable(opts.out)
    if problem:
        raise StudyError(f"--out {opts.out}: {problem}")
    with StudyLock(opts.out) as lock:
        if lock.took_over_text():
            print(lock.took_over_text(), flush=True)
        pf = preflight(opts)
        for line in pf.lines(opts.cycles):
            print(line, flush=True)
        study = Study(opts, open_study(opts, pf))
        if opts.resume:
            study.settle_unfinished()  # before this runner's pid replaces the dead one's
            if opts.executor == "slurm":
                collect(study)  # jobs of an earlier runner that ended meanwhile
        study.m.owner_pid = os.getpid()
        study.save()
        executor: InProcessExecutor | SubmititExecutor
        if opts.executor == "inprocess":
            executor = InProcessExecutor()
        else:
            executor = SubmititExecutor(opts.executor, opts.wait)
        with StudyProgress(study.m) as progress:
            study.progress = progress
            rc = study.run(executor)
        print(status_line(study.m), flush=True)
        for line in study.m.problems:
            print(f"verify: {line}", flush=True)
    return rc


def _collect(folder: Path) -> int:
    with StudyLock(folder.resolve()):
        m = Manifest.load(folder / "manifest.json")
        opts = StudyOptions(suite=m.suite, out=folder.resolve(), matrix=None)
        opts.cell_budget_s = m.options["cell_budget_s"]
        opts.startup_budget_s = m.options["startup_budget_s"]
        study = Study(opts, m)
        left = collect(study)
        pending = sum(c.state == "pending" for c in m.cells)
        if not left and not pending:
            m.problems = _verify(folder)
            m.status = "unverified" if m.problems else "completed"
        elif not left:
            m.status = "interrupted"
        study.save()
    print(status_line(m))
    for line in m.problems:
        print(f"verify: {line}")
    if pending:
        print(f"{pending} cell run(s) pending (retries or never run): run again with --resume")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    a = parser.parse_args(argv)
    if a.command != "run":
        if (a.dir is None) == (a.out is None):
            parser.error(f"{a.command}: give the study folder once, as DIR or --out DIR")
        a.dir = a.dir or a.out
    try:
        if a.command == "run":
            return _run(a)
        if a.command == "status":
            print(status_line(Manifest.load(a.dir / "manifest.json")))
            return 0
        if a.command == "collect":
            return _collect(a.dir)
        problems = _verify(a.dir)
        print("\n".join(problems) or "every record matches its sha256 sidecar, every cell run "
              "has exactly one record")  # fmt: skip
        return 1 if problems else 0
    except StudyError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
