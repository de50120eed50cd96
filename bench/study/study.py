"""A study's run and collect loops: preflight, then slices until every cell run is done.

Order: cycle 1 runs every cell (in pytest's order, one slice per world size or per cell), then
cycle 2, and so on; cells to retry (a hang or a crash, once) run alone at the end of their cycle.
The manifest is saved after every state change. Ctrl+C, SIGTERM or SIGHUP stops the running
slice, marks the study `interrupted` with the signal and the runner exits 128 + the signal.
`--resume` first settles the slices its dead predecessor left running (their finished cells
keep their records; the rest run again), then continues with the cells not done. A slice's
records are kept or set apart as bench.study.records says, so each cell run is recorded once,
and the study says `completed` only when `verify` finds every cell run recorded exactly once.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape

from bench.study import integrity, records
from bench.study.manifest import DONE, CellRun, Manifest, SliceRun
from bench.study.plan import Launcher, SliceSpec, group_pending, slice_command
from bench.study.preflight import (
    Machine,
    Preflight,
    cannot_run,
    collect_cells,
    design_hash,
    energy_metered,
    estimate,
    timing_policy,
)
from bench.study.slices import classify
from bench.study.slices.execute import CellOutcome, SliceResult, outcomes_from, read_events
from common.errors import StudyError
from measure.ranks.failures import describe_exit

if TYPE_CHECKING:
    from bench.study.progress import StudyProgress

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

DEFAULT_CELL_BUDGET_S = 600.0
DEFAULT_STARTUP_BUDGET_S = 300.0


@dataclass
class StudyOptions:
    suite: str
    out: Path
    k: str | None = None
    cycles: int = 1
    gap_s: float = 0.0
    isolation: str = "slice"  # slice | cell
    executor: str = "inprocess"  # inprocess | local | slurm
    resume: bool = False
    wait: bool = True
    launcher: Launcher = field(default_factory=Launcher)
    matrix: str | None = None
    pytest_args: list[str] = field(default_factory=list)
    cell_budget_s: float = DEFAULT_CELL_BUDGET_S
    startup_budget_s: float = DEFAULT_STARTUP_BUDGET_S
    history: list[Path] = field(default_factory=list)
    slurm: dict = field(default_factory=dict)  # partition, time_min, account

    def recorded(self) -> dict:
        """The options the manifest keeps (a resumed study runs with the same ones)."""
        return {
            "cycles": self.cycles,
            "gap_s": self.gap_s,
            "isolation": self.isolation,
            "executor": self.executor,
            "launcher": self.launcher.__dict__,
            "pytest_args": self.pytest_args,
            "cell_budget_s": self.cell_budget_s,
            "startup_budget_s": self.startup_budget_s,
            "slurm": self.slurm,
        }


def _history(folders: list[Path]) -> dict[str, list[float]]:
    """Measured cell durations of earlier studies (their manifests), by cell name."""
    out: dict[str, list[float]] = {}
    for folder in folders:
        for c in Manifest.load(Path(folder) / "manifest.json").cells:
            if c.duration_s is not None and c.state == "passed":
                out.setdefault(c.name, []).append(c.duration_s)
    return out


def preflight(opts: StudyOptions) -> Preflight:
    cells = collect_cells(opts.suite, opts.k, opts.matrix, opts.pytest_args)
    timing = timing_policy(opts.suite, opts.matrix, opts.pytest_args)
    machine = Machine.here(opts.launcher.nnodes, gpus_come_with_job=opts.executor == "slurm")
    skipped = {c.name: why for c in cells if (why := cannot_run(c, machine))}
    runnable = [c for c in cells if c.name not in skipped]
    sizes = {c.world_size for c in runnable}
    n_slices = len(runnable) if opts.isolation == "cell" else len(sizes)
    history = _history(opts.history + ([opts.out] if (opts.out / "manifest.json").exists() else []))
    slices, energy = n_slices * opts.cycles, energy_metered(opts.pytest_args)
    total, measured = estimate(runnable, timing, history, opts.cycles, slices, energy)
    total += opts.gap_s * max(0, slices - 1)
    return Preflight(
        cells, timing, design_hash(cells, timing, opts.matrix), skipped, total, measured
    )


def new_manifest(opts: StudyOptions, pf: Preflight) -> Manifest:
    runs = [
        CellRun(
            c.name,
            c.phase,
            c.method,
            c.world_size,
            cycle,
            state="skipped" if c.name in pf.skipped else "pending",
            reason=pf.skipped.get(c.name),
        )
        for cycle in range(1, opts.cycles + 1)
        for c in pf.cells
    ]
    return Manifest(
        path=opts.out / "manifest.json",
        suite=opts.suite,
        k=opts.k,
        matrix=opts.matrix or "benchmarks.json",
        design_hash=pf.design_hash,
        options=opts.recorded(),
        estimate={"total_s": pf.estimate_s, "measured_cells": pf.measured_cells},
        cells=runs,
    )


def open_study(opts: StudyOptions, pf: Preflight) -> Manifest:
    """A new manifest, or (with --resume) the existing one after checking its design."""
    path = opts.out / "manifest.json"
    if not path.exists():
        if opts.resume:
            raise StudyError(f"{opts.out}: --resume, but no study was started here")
        return new_manifest(opts, pf)
    if not opts.resume:
        raise StudyError(
            f"{opts.out} already holds a study; pass --resume to continue it or another --out"
        )
    m = Manifest.load(path)
    if m.design_hash != pf.design_hash:
        raise StudyError(
            f"{opts.out}: the study's design {m.design_hash[:12]} differs from this one's "
            f"{pf.design_hash[:12]} (cells, timing policy or matrix changed); use another --out"
        )
    m.status, m.stopped_by = "running", None
    return m


class Study:
    """The running study: its manifest, options, stop flag and the bookkeeping of slices."""

    def __init__(self, opts: StudyOptions, manifest: Manifest):
        self.opts = opts
        self.m = manifest
        self.stop = threading.Event()
        self.stopped_by: int | None = None  # the signal that set `stop`
        self.progress: StudyProgress | None = None  # while one is shown
        self.ran_any = False
        self._ended: set[tuple[str, str]] = set()  # (slice, cell run) already given its state

    # -- slices -------------------------------------------------------------------------------
    def new_slice(self, runs: list[CellRun], gap_s: float) -> SliceSpec:
        seq = self.m.next_slice
        self.m.next_slice += 1
        ws, cycle = runs[0].world_size, runs[0].cycle
        slice_id = f"c{cycle}-ws{ws}-{seq:04d}"
        names = [r.name for r in runs]
        cmd = slice_command(
            self.opts.out,
            slice_id,
            seq,
            ws,
            names,
            self.m.suite,
            self.opts.matrix,
            self.opts.pytest_args,
            self.opts.launcher,
        )
        spec = SliceSpec(
            slice_id,
            seq,
            cycle,
            ws,
            tuple(names),
            self.opts.out,
            tuple(cmd),
            gap_s,
            self.opts.cell_budget_s,
            self.opts.startup_budget_s,
        )
        spec.runs.mkdir(parents=True, exist_ok=True)
        (spec.runs / "study_slice.json").write_text(
            json.dumps(
                {
                    "slice": slice_id,
                    "cycle": cycle,
                    "gap_s": gap_s,
                    "world_size": ws,
                    "cells": names,
                    "design_hash": self.m.design_hash,
                    "command": cmd,
                },
                indent=1,
            )
        )
        for r in runs:
            r.gap_s = gap_s
        self.m.slices[slice_id] = SliceRun(slice_id, cycle, ws, names, cmd, state="running")
        self.m.current = slice_id
        self.save()
        return spec

    def spec_of(self, slice_id: str) -> SliceSpec:
        """The spec of a slice the manifest lists (for `collect` in a later process)."""
        s = self.m.slices[slice_id]
        return SliceSpec(
            slice_id,
            0,
            s.cycle,
            s.world_size,
            tuple(s.cells),
            self.opts.out,
            tuple(s.command),
            self.m.options.get("gap_s", 0.0),
            self.opts.cell_budget_s,
            self.opts.startup_budget_s,
        )

    def _runs(self, spec: SliceSpec) -> list[CellRun]:
        keys = self.m.by_key()
        return [keys[f"{n}@{spec.cycle}"] for n in spec.cells]

    def on_event(self, spec: SliceSpec, outcomes: list[CellOutcome]) -> None:
        """Live: the started cell becomes running, ended cells take their final state."""
        self._apply(spec, outcomes, final=None)
        running = [o.name for o in outcomes if o.outcome == "running"]
        self.m.current = f"{running[-1]} (cycle {spec.cycle})" if running else spec.id
        self.save()

    def finish(self, spec: SliceSpec, result: SliceResult) -> None:
        """The slice ended (its processes are gone): final states, retries, the records it
        leaves set apart where the study does not keep them, sidecars, manifest."""
        self._apply(spec, result.outcomes, final=result)
        self._unrecorded_passes(spec)
        s = self.m.slices[spec.id]
        s.returncode = result.returncode
        s.state = {"exit": "done", "watchdog": "killed", "interrupt": "interrupted"}.get(
            result.ended_by, "killed"
        )
        s.note = result.cause
        keep = {r.name for r in self._runs(spec) if r.slice == spec.id and r.state in DONE}
        moved = records.set_apart(self.opts.out, spec.id, keep)
        if moved and self.progress:
            where = f"{records.SUPERSEDED}/{spec.id}/"
            self.progress.log(f"{spec.id}: records of {len(moved)} unfinished cell(s) in {where}")
        integrity.write_sidecars(self.opts.out, spec.id)
        self.m.current = None
        self.ran_any = True
        self.save()

    def _apply(self, spec, outcomes, final: SliceResult | None) -> None:
        by_name = {o.name: o for o in outcomes}
        runs = self._runs(spec)
        for r in runs:
            o = by_name.get(r.name)
            if (spec.id, r.key) in self._ended:
                continue  # already took its state from this slice
            if o is None:
                if final is not None and r.state == "running":
                    r.state = "pending"
                continue
            if o.outcome == "running":
                if final is None:
                    r.state, r.started = "running", o.started
                elif final.ended_by == "interrupt":
                    r.state = "pending"  # stopped by the user: not a failure, runs on resume
                else:
                    kind, why = self._charge(spec, final)
                    self._end(r, spec, o, "failed", kind, f"{r.name}: {why}")
                continue
            if o.outcome == "passed":
                self._end(r, spec, o, "passed", None, None)
            elif o.outcome == "skipped":
                self._end(r, spec, o, "skipped", None, o.message)
            else:
                cell_id = r.name[r.name.index("[") + 1 : -1]
                recorded = classify.kind_from_record(spec.runs, r.phase, cell_id)
                kind = recorded or classify.kind_from_text(o.message)
                self._end(r, spec, o, "failed", kind, o.message)
        if final is not None and final.ended_by != "interrupt":
            self._unstarted(spec, runs, by_name, final)

    def _unrecorded_passes(self, spec: SliceSpec) -> None:
        """A cell counts as passed only with its record (and benchmark entry) in the slice: one
        the slice was stopped before writing runs again, and that try is not charged."""
        if not records.writes_records(self.m):
            return
        for r in self._runs(spec):
            if r.slice == spec.id and r.state == "passed":
                missing = records.not_recorded(self.opts.out, spec.id, r)
                if missing:
                    r.state, r.slice, r.attempts = "pending", None, r.attempts - 1
                    r.reason = f"{r.name} passed in slice {spec.id}, but {missing}"

    @staticmethod
    def _charge(spec: SliceSpec, final: SliceResult) -> tuple[str, str]:
        """The failure class and reason a slice's end charges the cell it ended under with."""
        if final.ended_by == "watchdog":
            return "rank_hang", f"outlived its {spec.cell_budget_s:g} s budget; killed"
        if final.ended_by == "killed":
            return final.kind or "killed", final.cause or "the slice was killed"
        if final.returncode is None:
            return "rank_crash", final.cause or "its slice ended without an exit status"
        return "rank_crash", f"its slice's process {describe_exit(final.returncode)}"

    def _unstarted(self, spec, runs, by_name, final: SliceResult) -> None:
        """Cells the slice never started. After a hang or crash of another cell they run in
        the next slice; when no cell started at all, the slice itself failed (the first cell is
        charged with it, so a slice that cannot start is retried once, then given up)."""
        if any(r.name in by_name for r in runs):
            if final.finished:  # pytest ended its session without them: -k did not select them
                for r in runs:
                    if r.name not in by_name and r.state not in DONE:
                        why = f"{r.name}: pytest -k did not select it in slice {spec.id}"
                        self._end(r, spec, None, "failed", "rank_error", why)
            return
        first = runs[0]
        kind, cause = self._charge(spec, final)
        tail = spec.log.read_text(errors="replace")[-1500:] if spec.log.exists() else ""
        why = f"slice {spec.id} started no cell ({cause}); log tail:\n{tail}"
        self._end(first, spec, None, "failed", kind, why)

    def _end(self, r: CellRun, spec, o, state, kind, reason) -> None:
        self._ended.add((spec.id, r.key))
        r.attempts += 1 if state != "skipped" else 0
        r.slice, r.failure_kind, r.reason = spec.id, kind, reason
        if o is not None:
            r.started, r.ended = o.started, o.ended or time.time()
            r.duration_s = r.ended - r.started
        name = escape(r.name)  # "phase0[...]" is not rich markup
        if state == "failed" and classify.should_retry(kind, r.attempts):
            r.state = "pending"
            r.reason = f"retrying in a fresh process after {kind}: {reason}"
            if self.progress:
                self.progress.log(f"[yellow]{name} (cycle {r.cycle}): {kind}, retrying")
        else:
            r.state = state
            if state == "failed" and self.progress:
                self.progress.log(f"[red]{name} (cycle {r.cycle}): {kind}")

    # -- a predecessor's leftovers ------------------------------------------------------------
    def settle_unfinished(self) -> None:
        """On --resume: settle the slices a runner that died left running, or (a local
        executor's) submitted. Their processes are gone (the lock checked), so what their events
        show is final: finished cells keep their records, the cell in flight and the rest run
        again (the runner's death is not the cells' fault), and their leftover records are set
        apart. A SLURM job may still run: it is left to `collect` (executors)."""
        local = self.m.options.get("executor") != "slurm"
        for sid, sl in list(self.m.slices.items()):
            if sl.state != "running" and not (sl.state == "submitted" and local):
                continue
            spec = self.spec_of(sid)
            # cells its runner saw end keep that end (and their attempt count) as it was
            self._ended |= {(sid, r.key) for r in self._runs(spec) if r.slice == sid}
            if spec.result.exists():
                self.finish(spec, SliceResult.load(spec.result))
            else:
                outcomes, finished = outcomes_from(read_events(spec.events))
                why = f"its study runner (PID {self.m.owner_pid or '?'}) ended while it ran"
                now = time.time()
                lost = SliceResult(sid, None, "interrupt", finished, outcomes, now, now, why)
                self.finish(spec, lost)

    # -- the loop -----------------------------------------------------------------------------
    def pending_groups(self) -> list[list[CellRun]]:
        return group_pending([c for c in self.m.cells if c.state == "pending"], self.opts.isolation)

    def save(self) -> None:
        self.m.save()
        if self.progress:
            self.progress.refresh(self.m)

    def _on_signal(self, signum, frame) -> None:
        if self.stopped_by is None:
            self.stopped_by = signum
        self.stop.set()

    def run(self, executor) -> int:
        """Run slices until none is pending, or until stopped; return the exit status."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        try:
            while not self.stop.is_set() and (groups := self.pending_groups()):
                if not executor.run_wave(self, groups):
                    return self._close("submitted", 0)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if self.stop.is_set():
            self.m.stopped_by = signal.Signals(self.stopped_by or signal.SIGINT).name
            return self._close("interrupted", 128 + (self.stopped_by or signal.SIGINT))
        if any(c.state == "running" for c in self.m.cells):
            return self._close("submitted", 0)  # a SLURM job of an earlier runner still out
        problems = records.problems(self.opts.out) + integrity.verify(self.opts.out)
        self.m.problems = problems
        if problems:
            return self._close("unverified", 1)
        failed = any(c.state == "failed" for c in self.m.cells)
        return self._close("completed", 1 if failed else 0)

    def _close(self, status: str, exitstatus: int) -> int:
        self.m.status, self.m.exitstatus, self.m.current = status, exitstatus, None
        self.save()
        return exitstatus
