"""One slice: its pytest process (or torchrun) under the study's watchdog.

The slice's pytest writes cell starts and outcomes to its event file
(bench.study.slices.events); this module follows that file. A cell whose own work outlives the
cell budget, or a set-up (pytest start, collection, a rank pool's start) that outlives the
start-up budget, is killed with its whole process tree (SIGTERM to the slice, which stops its
ranks and closes its run like Ctrl+C, then SIGKILL to what is left after a grace period). A stop
request (Ctrl+C in the study) kills it the same way. What the slice did is returned as a
`SliceResult` and written beside the events (`<id>.result.json`), so a study process that was
not there when it ended (a SLURM job, `collect`) reads the same thing.

The slice dies with the process that runs it, even one killed with SIGKILL: it starts through
measure.ranks.lifetime (the kernel's parent-death signal, SIGTERM, and its pytest's watcher
thread). A submitit job (`run_job`) dies with its own launcher the same way, and with a local
study runner that stops waiting for it; it turns the signals a scheduler sends into a stop with
the cause named (SIGTERM, SIGINT, SIGHUP: killed; submitit's SIGUSR2: time limit or
preemption, told apart as submitit tells them).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.study.plan import SliceSpec
from bench.study.preflight import ROOT
from measure.ranks.lifetime import alive, armed, child_env, die_with_parent

KILL_GRACE_S = 10.0
POLL_S = 0.25
INTERRUPTED = 2  # pytest's exit status for a stopped session (its ExitCode.INTERRUPTED)


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
    """How a slice ended and what each of its cells did.

    `ended_by`: exit (the process ended by itself), watchdog (the study killed a cell that
    outlived its budget), interrupt (the study was asked to stop, or its runner ended: the cell
    in flight is not charged), killed (a signal, a time limit, memory, preemption or a lost node
    ended it from outside: the cell in flight is charged with `kind` and `cause`, and retried as
    the study's policy says).
    """

    id: str
    returncode: int | None
    ended_by: str  # exit, watchdog, interrupt, killed
    finished: bool  # pytest ran its session to the end (not stopped by a signal)
    outcomes: list[CellOutcome] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0
    cause: str | None = None  # what ended it, in words, when not its own exit
    kind: str | None = None  # the failure class `killed` charges the cell in flight with

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
    """(per-cell outcomes in start order, whether the session finished: ran to its end, not
    stopped by a signal, which also ends the session but leaves cells unstarted)."""
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
            finished = e.get("exitstatus") != INTERRUPTED
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
    """SIGTERM the slice's process alone (its pytest stops its ranks and closes its run;
    torchrun passes it to its workers), then SIGKILL whatever of the tree is left after the
    grace period. The ranks are not signalled first: a rank that died before its pytest heard
    the stop would be recorded as a crash of the cell."""
    tree = _descendants(proc.pid)
    try:
        proc.send_signal(signal.SIGTERM)
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
    env = child_env({**os.environ, **spec.env, "PYTHONUNBUFFERED": "1"})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    started = time.time()
    ended_by = "exit"
    seen = 0
    with spec.log.open("ab") as log:
        proc = subprocess.Popen(
            armed(list(spec.command)),
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


def timed_out(elapsed_s: float, limit_s: float | None) -> bool:
    """Whether SIGUSR2 after `elapsed_s` means the time limit rather than preemption: the
    rule submitit's own handler applies (SignalHandler.has_timed_out): past 80% of the limit,
    or within 10 minutes of it."""
    if limit_s is None:
        return False
    return elapsed_s >= min(0.8 * limit_s, limit_s - 600)


class _JobStop:
    """A job's stop request and its cause: the first signal, or its study runner's end."""

    def __init__(self, spec: SliceSpec):
        self.event = threading.Event()
        self.cause: str | None = None
        self.kind = "killed"
        self._spec = spec
        self._started = time.monotonic()

    def on_signal(self, signum, frame) -> None:
        if self.cause is None:
            name = signal.Signals(signum).name
            if signum == getattr(signal, "SIGUSR2", None):
                limit = timed_out(time.monotonic() - self._started, self._spec.time_limit_s)
                self.kind = "time_limit" if limit else "preempted"
                what = "the job's time limit is near" if limit else "the job is preempted"
                self.cause = f"{name}: {what}"
            else:
                self.cause = f"the job was sent {name}"
        self.event.set()

    def watch_owner(self, pid: int, started: int | None) -> None:
        """Stop when the study runner that waits for this job is gone (same host only)."""
        while alive(pid, started):
            if self.event.wait(1.0):
                return
        if self.cause is None:
            self.cause = f"its study runner PID {pid} ended"
            self.kind = "interrupt"
        self.event.set()


def run_job(spec: SliceSpec) -> SliceResult:
    """A submitit job's body: the gap, then the slice. It dies with its launcher (submitit's
    controller, SLURM's step) and, on the runner's host, with a study runner that waits for
    it; a signal stops the slice like Ctrl+C stops a local study, and the result names it."""
    if read_events(spec.events):  # a scheduler ran this job before (SLURM requeued it)
        outcomes, finished = outcomes_from(read_events(spec.events))
        why = "the job was started again after its first run ended (requeued); the study runs "
        result = SliceResult(spec.id, None, "killed", finished, outcomes, time.time(), time.time())
        result.cause, result.kind = why + "the cells it did not finish in new slices", "preempted"
        result.save(spec.result)
        return result
    stop = _JobStop(spec)
    for sig in ("SIGTERM", "SIGINT", "SIGHUP", "SIGUSR2"):
        if hasattr(signal, sig):
            signal.signal(getattr(signal, sig), stop.on_signal)
    die_with_parent(os.getppid(), signal.SIGTERM)
    if spec.owner is not None and spec.owner[0] == socket.gethostname():
        threading.Thread(
            target=stop.watch_owner, args=spec.owner[1:], name="bs-owner-watch", daemon=True
        ).start()
    if spec.gap_s and stop.event.wait(spec.gap_s):
        result = SliceResult(spec.id, None, "interrupt", False, [], time.time(), time.time())
    else:
        result = execute_slice(spec, stop.event)
    if stop.cause is not None:
        result.cause = stop.cause
        if stop.kind != "interrupt":
            result.ended_by, result.kind = "killed", stop.kind
        result.save(spec.result)
    return result
