"""One slice: its pytest process (or torchrun) under the study's watchdog.

The slice's pytest writes cell starts and outcomes to its event file (bench.study.events); this
module follows that file. A cell whose own work outlives the cell budget, or a set-up (pytest
start, collection, a rank pool's start) that outlives the start-up budget, is killed with its
whole process tree (SIGTERM, then SIGKILL after a grace period). A stop request (Ctrl+C in
the study) kills it the same way. What the slice did is returned as a `SliceResult` and
written beside the events (`<id>.result.json`), so a study process that was not there when it
ended (a SLURM job, `collect`) reads the same thing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.study.plan import SliceSpec
from bench.study.preflight import ROOT

KILL_GRACE_S = 10.0
POLL_S = 0.25


@dataclass
class CellOutcome:
    name: str
    outcome: str  # passed, failed, error, skipped; "running" when the slice ended under it
    message: str
    started: float
    ended: float | None
    call_started: float | None = None  # set-up done (rank pools up), the cell's work begun


@dataclass
class SliceResult:
    id: str
    returncode: int | None
    ended_by: str  # exit, watchdog, interrupt
    finished: bool  # pytest reached the end of its session
    outcomes: list[CellOutcome] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> SliceResult:
        doc = json.loads(Path(path).read_text())
        doc["outcomes"] = [CellOutcome(**o) for o in doc["outcomes"]]
        return cls(**doc)


def read_events(prefix: Path) -> list[dict]:
    """Events of the lowest rank that wrote any (rank 0 on the first node)."""
    files = sorted(
        prefix.parent.glob(prefix.name + ".rank*.jsonl"),
        key=lambda p: int(p.name.rsplit(".rank", 1)[1].split(".")[0]),
    )
    if not files:
        return []
    events = []
    for line in files[0].read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line being written right now
    return events


def outcomes_from(events: list[dict]) -> tuple[list[CellOutcome], bool]:
    """(per-cell outcomes in start order, whether the session finished)."""
    by_id: dict[str, CellOutcome] = {}
    finished = False
    for e in events:
        if e["event"] == "start":
            name = e["nodeid"].rsplit("::", 1)[1]
            by_id[e["nodeid"]] = CellOutcome(name, "running", "", e["t"], None)
        elif e["event"] == "call" and e["nodeid"] in by_id:
            by_id[e["nodeid"]].call_started = e["t"]
        elif e["event"] == "end" and e["nodeid"] in by_id:
            o = by_id[e["nodeid"]]
            o.outcome, o.message, o.ended = e["outcome"], e["message"], e["t"]
        elif e["event"] == "finish":
            finished = True
    return list(by_id.values()), finished


def _descendants(pid: int) -> list[int]:
    """Every process below pid (torchrun's workers sit in sessions of their own)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGTERM the slice's process group (torchrun passes it to its workers), then SIGKILL
    whatever of the tree is left after the grace period."""
    tree = _descendants(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        pass
    for pid in [proc.pid, *tree]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def execute_slice(
    spec: SliceSpec, stop: threading.Event | None = None, on_event=None
) -> SliceResult:
    """Run the slice to its end, its watchdog's kill, or a stop request; save and return what
    it did. `on_event(outcomes)` is called whenever the event file grows (for the display)."""
    for d in (spec.runs, spec.bench_json.parent, spec.log.parent, spec.events.parent):
        d.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **spec.env, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    started = time.time()
    ended_by = "exit"
    seen = 0
    with spec.log.open("ab") as log:
        proc = subprocess.Popen(
            list(spec.command),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # the terminal's Ctrl+C reaches the study, not the slice
        )
        while True:
            rc = proc.poll()
            events = read_events(spec.events)
            outcomes, _ = outcomes_from(events)
            if len(events) != seen:
                seen = len(events)
                if on_event is not None:
                    on_event(outcomes)
            if rc is not None:
                break
            now = time.time()
            running = [o for o in outcomes if o.outcome == "running"]
            if running and running[-1].call_started is not None:
                overdue = now - running[-1].call_started > spec.cell_budget_s
            elif running:  # in set-up: a rank pool may be starting
                overdue = now - running[-1].started > spec.startup_budget_s
            else:
                last = max([started] + [e["t"] for e in events])
                overdue = now - last > spec.startup_budget_s
            if overdue or (stop is not None and stop.is_set()):
                ended_by = "watchdog" if overdue else "interrupt"
                kill_tree(proc)
                break
            time.sleep(POLL_S)
    outcomes, finished = outcomes_from(read_events(spec.events))
    result = SliceResult(
        spec.id, proc.returncode, ended_by, finished, outcomes, started, time.time()
    )
    result.save(spec.result)
    return result


def run_job(spec: SliceSpec) -> SliceResult:
    """A submitit job's body: the gap, then the slice; SIGTERM (scancel, a time limit) stops it
    like Ctrl+C stops a local study."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if spec.gap_s:
        time.sleep(spec.gap_s)
    return execute_slice(spec, stop)
