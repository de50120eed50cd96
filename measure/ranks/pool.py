"""Process groups: rank workers started once per pytest run, or the ranks torchrun launched.

`RankPool(world_size)` spawns one worker process per rank (spawn start method, free port chosen
at run time), each joins one process group and then runs tasks sent to it until the run ends:
every cell of that world size reuses the same group. A task is a top-level function called as
fn(ctx, *args) on every rank; `run` (a cell's task) and `run_setup` (the once-per-pool set-up,
such as the ceilings) return each rank's result or raise RankError. Three bounds, `Timeouts`,
keep a slow start-up on a busy machine from being read as a hung task: start-up (spawn, import
torch, join the group), set-up and the task.

Failures say which rank and how, and cost no more than they must:
- a rank that raised: its traceback. When every rank answered having issued the same number of
  collectives (an error raised before any collective, on every rank), nothing is left pending
  and the pool is kept; otherwise the others get a short grace, then the pool is torn down.
- a rank whose process died: named by its exit (signal or code), before any survivor's
  secondary "connection reset" error.
- a rank that did not answer in time: every rank's Python stack at that moment (faulthandler
  on SIGUSR1) goes into the message and onto the exception, then the pool is torn down.
A torn-down pool is replaced for the next cell (the only time a group is re-created within a
run; records say so through `generation`).

Workers die with the pytest process that started them, however it ends (measure.ranks.lifetime:
the kernel's parent-death signal, SIGKILL; a watcher thread where there is no such signal), so a
pool is started from the main thread only. A run stopped by a signal closes its pools with
`force` (a busy rank would not read the stop request). Each pool's stack files live in a
`bs-stacks-*` folder under tempfile's folder (TMPDIR); `close` removes it, and a pool started
later removes those whose process is gone (a pytest killed with SIGKILL cannot).

Under torchrun the processes already exist: `TorchrunGroup` joins the group from the
environment and runs each task in place on every rank; results are all-gathered, and only rank
0 reports.
"""

from __future__ import annotations

import faulthandler
import os
import queue
import shutil
import signal
import tempfile
import time
import traceback

import torch.distributed as dist
import torch.multiprocessing as mp

from common.errors import RankError, RankTimeout
from measure.ranks.context import (
    collectives_issued,
    free_port,
    join_group,
    pick_backend,
)
from measure.ranks.failures import (
    GRACE_S,
    Timeouts,
    describe_exit,
    failure_kind,
    format_stacks,
)
from measure.ranks.lifetime import alive, die_with_parent
from measure.ranks.torchrun import TorchrunGroup, launched_by_torchrun

_POLL_S = 0.2  # how often a waiting pool looks for dead workers
_STACK_WAIT_S = 3.0  # how long to wait for the ranks' stack dumps
_STACK_SIGNAL = getattr(signal, "SIGUSR1", None)  # none on Windows: no stacks there

_stack_file = None  # kept open for faulthandler, which writes to its descriptor
_STACK_PREFIX = "bs-stacks-"


def _worker_main(
    parent_pid,
    rank,
    world_size,
    port,
    backend,
    device_type,
    timeouts,
    shared,
    generation,
    stack_path,
    tasks,
    results,
):
    global _stack_file
    # nothing to clean up here (the parent does): SIGKILL, and no watcher where the kernel acts
    die_with_parent(parent_pid, signal.SIGKILL, watch=False)
    if _STACK_SIGNAL is not None:
        # The file gets its name only once the handler is in place: the pool signals a rank
        # only when the file exists, since before that the signal would kill it.
        _stack_file = open(stack_path + ".tmp", "w")  # noqa: SIM115 (lives with the process)
        faulthandler.register(_STACK_SIGNAL, file=_stack_file, all_threads=True)
        os.rename(stack_path + ".tmp", stack_path)
    ctx = None
    try:
        ctx = join_group(rank, world_size, port, backend, device_type, timeouts, shared)
        ctx.generation = generation
        results.put((0, rank, True, None, collectives_issued(ctx)))
    except BaseException:
        results.put((0, rank, False, traceback.format_exc(), collectives_issued(ctx)))
        return
    while True:
        item = tasks.get()
        if item is None:
            break
        seq, fn, args = item
        try:
            answer = (True, fn(ctx, *args))
        except BaseException:
            answer = (False, traceback.format_exc())
        results.put((seq, rank, *answer, collectives_issued(ctx)))
    if world_size > 1:
        dist.destroy_process_group()


class RankPool:
    """world_size worker processes joined in one group, reused by every task of the run."""

    def __init__(
        self,
        world_size: int,
        device_type: str,
        timeouts: Timeouts | None = None,
        generation: int = 0,
    ):
        self.world_size = world_size
        self.device_type = device_type
        self.timeouts = timeouts or Timeouts()
        self.backend, self.shared_device = pick_backend(world_size, device_type)
        self.generation = generation
        ctx = mp.get_context("spawn")
        self._results = ctx.Queue()
        # SimpleQueue: a put writes the task to the rank's pipe in the caller, under a lock
        # taken in C. A Queue's put takes a Python-level lock and hands the task to a feeder
        # thread that the process joins at exit, after its finalizer has taken that lock again:
        # a stop signal raised inside the put (just after the lock was taken) left it held and
        # the pytest hung at exit, its summary printed (seen after SIGHUP; tests/measure).
        self._tasks = [ctx.SimpleQueue() for _ in range(world_size)]
        _remove_orphaned_stack_dirs()
        self._stack_dir = tempfile.mkdtemp(prefix=f"{_STACK_PREFIX}{os.getpid()}-ws{world_size}-")
        port = free_port()
        self._procs = [
            ctx.Process(
                target=_worker_main,
                args=(
                    os.getpid(),
                    r,
                    world_size,
                    port,
                    self.backend,
                    device_type,
                    self.timeouts,
                    self.shared_device,
                    generation,
                    self._stack_path(r),
                    self._tasks[r],
                    self._results,
                ),
                daemon=True,
                name=f"bs-rank{r}-ws{world_size}",
            )
            for r in range(world_size)
        ]
        for p in self._procs:
            p.start()
        self._seq = 0
        self.alive = True
        try:
            self._collect(0, "start-up (process group join)", self.timeouts.startup_s)
        except BaseException:  # a stop signal during start-up: no registry holds this pool yet
            self.close(force=True)
            raise

    def run(self, fn, *args) -> list:
        """A cell's task: fn(ctx, *args) on every rank within timeouts.task_s; results in rank
        order."""
        return self._submit(fn, args, self.timeouts.task_s)

    def run_setup(self, fn, *args) -> list:
        """A once-per-pool set-up task (environment, ceilings) within timeouts.setup_s."""
        return self._submit(fn, args, self.timeouts.setup_s)

    def _submit(self, fn, args, timeout_s: float) -> list:
        if not self.alive:
            raise RankError("this rank pool was torn down after an earlier failure")
        self._seq += 1
        for q in self._tasks:
            q.put((self._seq, fn, args))
        return self._collect(self._seq, getattr(fn, "__name__", str(fn)), timeout_s)

    def _stack_path(self, rank: int) -> str:
        return os.path.join(self._stack_dir, f"rank{rank}.txt")

    def _dead(self, answers) -> list[tuple[int, int]]:
        """(rank, exitcode) of every worker that exited without answering (a rank whose join
        failed answers with its traceback, then exits: that is not a crash)."""
        return [
            (r, p.exitcode)
            for r, p in enumerate(self._procs)
            if r not in answers and p.exitcode is not None
        ]

    def _wait(self, seq, timeout_s):
        """Answers to task `seq` by rank, (ok, payload, collectives issued), and the rank whose
        error came first (the likeliest cause), once every rank answered, a rank died, the bound
        passed, or the grace after a first error ran out."""
        deadline = time.monotonic() + timeout_s
        answers: dict[int, tuple[bool, object, int]] = {}
        first_failed = None
        while len(answers) < self.world_size:
            now = time.monotonic()
            if now >= deadline:
                break
            try:
                item = self._results.get(timeout=min(_POLL_S, deadline - now))
            except queue.Empty:
                if self._dead(answers):  # nothing more is coming from a dead rank
                    break
                continue
            s, rank, ok, payload, ncoll = item
            if s != seq:
                continue  # a late answer to a task that already failed
            answers[rank] = (ok, payload, ncoll)
            if not ok and first_failed is None:
                first_failed = rank
                deadline = min(deadline, time.monotonic() + GRACE_S)
        return answers, first_failed

    def _collect(self, seq, what, timeout_s):
        """Every rank's result for task `seq`, or the failure raised with its rank and kind."""
        answers, first_failed = self._wait(seq, timeout_s)
        missing = [r for r in range(self.world_size) if r not in answers]

        def where(rank):
            return f"{what}: rank {rank} of world_size {self.world_size}"

        dead = self._dead(answers)
        if dead:
            rank, code = dead[0]
            self._fail(
                f"{where(rank)} died: {describe_exit(code)}",
                answers,
                missing,
                rank=rank,
                kind="rank_crash",
            )
        if first_failed is not None:
            tb = answers[first_failed][1]
            counts = {r: n for r, (_, _, n) in sorted(answers.items())}
            uneven = not missing and len(set(counts.values())) > 1
            message = f"{where(first_failed)} raised:\n{tb}"
            if uneven:
                message += (
                    f"\nthe ranks had issued different numbers of collectives {counts}: "
                    "one is left pending"
                )
            # A failed start-up leaves no worker to keep; a rank still busy, or one that issued
            # a collective the others did not, would meet the next task's collectives.
            keep = not (seq == 0 or missing or uneven)
            self._fail(message, answers, missing, first_failed, failure_kind(tb), keep)
        if missing:
            stacks = self._stacks(range(self.world_size))
            self.close(force=True)
            raise RankTimeout(
                f"{what}: rank(s) {missing} of world_size {self.world_size} did not answer "
                f"within {timeout_s:g} s; the group was torn down. Stacks at the timeout:\n"
                + format_stacks(stacks, missing),
                rank=missing[0] if len(missing) == 1 else None,
                stacks=stacks,
            )
        return [answers[r][1] for r in range(self.world_size)]

    def _fail(self, message, answers, missing, rank, kind, keep=False):
        """Raise the failure, first tearing the pool down unless `keep` (every rank answered
        with no collective pending). Other ranks' errors are added as secondary."""
        others = [r for r, (ok, _, _) in sorted(answers.items()) if not ok and r != rank]
        for r in others:
            first_line = answers[r][1].strip().splitlines()[-1]
            message += f"\nalso rank {r} (secondary): {first_line}"
        stacks = None
        if not keep:
            live = [r for r in missing if self._procs[r].exitcode is None]
            if live:
                stacks = self._stacks(live)
                message += f"\nrank(s) {live} were still busy; their stacks:\n"
                message += format_stacks(stacks, live)
            self.close(force=True)
            message += "\nthe group was torn down"
        raise RankError(message, rank=rank, kind=kind, stacks=stacks)

    def _stacks(self, ranks) -> dict[int, str]:
        """Each live rank's Python stack (all threads) now: SIGUSR1 makes faulthandler dump it
        into the rank's file; read what it added."""
        if _STACK_SIGNAL is None:
            return {}
        start, stacks = {}, {}
        for r in ranks:
            if self._procs[r].exitcode is not None:
                continue
            if not os.path.exists(self._stack_path(r)):  # no handler yet: the signal would kill
                stacks[r] = "(no stack: the rank had not yet installed its stack handler)"
                continue
            start[r] = os.path.getsize(self._stack_path(r))
            stacks[r] = ""
            os.kill(self._procs[r].pid, _STACK_SIGNAL)
        deadline = time.monotonic() + _STACK_WAIT_S
        waiting = set(start)
        while waiting and time.monotonic() < deadline:
            time.sleep(0.05)
            for r in list(waiting):
                with open(self._stack_path(r)) as f:
                    f.seek(start[r])
                    text = f.read()
                if text and text == stacks[r]:  # unchanged since the last look: complete
                    waiting.discard(r)
                stacks[r] = text
        for r in waiting:
            stacks[r] += f"\n(rank {r}'s dump did not finish within {_STACK_WAIT_S:g} s)"
        return stacks

    def close(self, force: bool = False):
        """Stop the workers: ask them to leave and wait (a rank may be between tasks), or with
        `force` kill them at once (a failed pool, or a run stopped mid-task)."""
        if not self.alive:
            return
        self.alive = False
        if not force:
            for q in self._tasks:
                q.put(None)
            for p in self._procs:
                p.join(timeout=10)
        for p in self._procs:
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
        shutil.rmtree(self._stack_dir, ignore_errors=True)


def _remove_orphaned_stack_dirs() -> None:
    """Remove this user's stack folders whose pytest process is gone (killed with SIGKILL, it
    could not remove its own); the folder's name carries that process's pid."""
    root = tempfile.gettempdir()
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if not name.startswith(_STACK_PREFIX):
            continue
        owner = name[len(_STACK_PREFIX) :].split("-", 1)[0]
        try:
            mine = os.stat(path).st_uid == os.getuid()
        except OSError:
            continue
        if owner.isdigit() and mine and not alive(int(owner)):
            shutil.rmtree(path, ignore_errors=True)


class PoolRegistry:
    """One pool per world size for the whole pytest run; replaced only after a failure."""

    def __init__(self, device_type: str, timeouts: Timeouts | None = None):
        self.device_type = device_type
        self.timeouts = timeouts or Timeouts()
        self._pools: dict[int, RankPool | TorchrunGroup] = {}
        self._starts: dict[int, int] = {}
        self.torchrun = (
            TorchrunGroup(device_type, self.timeouts) if launched_by_torchrun() else None
        )

    def get(self, world_size: int):
        if self.torchrun is not None:
            return self.torchrun
        pool = self._pools.get(world_size)
        if pool is None or not pool.alive:
            gen = self._starts.get(world_size, 0)
            self._starts[world_size] = gen + 1
            pool = self._pools[world_size] = RankPool(
                world_size, self.device_type, self.timeouts, gen
            )
        return pool

    def close(self, force: bool = False):
        for pool in self._pools.values():
            pool.close(force)
        self._pools.clear()
