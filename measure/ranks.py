"""Process groups: rank workers started once per pytest run, or the ranks torchrun launched.

`RankPool(world_size)` spawns one worker process per rank (spawn start method, free port chosen
at run time), each joins one process group and then runs tasks sent to it until the run ends:
every cell of that world size reuses the same group. A task is a top-level function called as
fn(ctx, *args) on every rank; `run` returns each rank's result, or raises RankError with the
failing rank's traceback, or RankTimeout when a rank does not answer within the bound. After a
failure the pool's ranks may be stuck inside a collective, so the pool is torn down and the
next cell gets a new one (the only time a group is re-created within a run; records say so).

Under torchrun the processes already exist: `TorchrunGroup` joins the group from the
environment and runs each task in place on every rank; results are all-gathered, and only rank
0 reports.
"""

from __future__ import annotations

import datetime
import os
import queue
import socket
import time
import traceback
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from common.errors import RankError, RankTimeout

DEFAULT_TIMEOUT_S = 120.0
_GRACE_S = 5.0  # how long the other ranks get to finish after one rank raised


@dataclass
class RankContext:
    """What a task sees on its rank: identity, device, the explicit group, and how it was made."""

    rank: int
    world_size: int
    device: torch.device
    backend: str  # "gloo" or "nccl"
    group: object  # None for world_size 1
    shared_device: bool  # several ranks on one GPU: correct, but timings not representative
    generation: int = 0  # how many times this world size's pool was (re)started in this run

    def barrier(self):
        if self.world_size > 1:
            dist.barrier(group=self.group)

    def agree_max(self, *values: float) -> list[float]:
        """Each value's maximum over the ranks. Every loop whose length a rank decides from its
        own clock (samples, warm-up, energy windows) must decide from these, or a rank that
        stops one collective early leaves the others waiting in it."""
        if self.world_size == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.group)
        return t.tolist()


def pick_backend(world_size: int, device_type: str) -> tuple[str, bool]:
    """(backend, shared_device): NCCL with one rank per GPU, else gloo (on CPU or one GPU)."""
    if device_type == "cuda":
        if world_size <= torch.cuda.device_count() and world_size > 1:
            return "nccl", False
        return "gloo", world_size > 1
    return "gloo", False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _join(rank, world_size, port, backend, device_type, timeout_s, shared):
    if device_type == "cuda":
        device = torch.device("cuda", 0 if shared else rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
    group = None
    if world_size > 1:
        dist.init_process_group(
            backend,
            init_method=f"tcp://127.0.0.1:{port}",
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(seconds=timeout_s),
            device_id=device if backend == "nccl" else None,
        )
        group = dist.group.WORLD
        # First collective outside any timed region: NCCL's first call costs hundreds of ms.
        warm = torch.ones(1, device=device)
        dist.all_reduce(warm, group=group)
    return RankContext(rank, world_size, device, backend, group, shared)


def _worker_main(
    rank, world_size, port, backend, device_type, timeout_s, shared, generation, tasks, results
):
    try:
        ctx = _join(rank, world_size, port, backend, device_type, timeout_s, shared)
        ctx.generation = generation
        results.put((0, rank, True, None))
    except BaseException:
        results.put((0, rank, False, traceback.format_exc()))
        return
    while True:
        item = tasks.get()
        if item is None:
            break
        seq, fn, args = item
        try:
            results.put((seq, rank, True, fn(ctx, *args)))
        except BaseException:
            results.put((seq, rank, False, traceback.format_exc()))
    if world_size > 1:
        dist.destroy_process_group()


class RankPool:
    """world_size worker processes joined in one group, reused by every task of the run."""

    def __init__(
        self,
        world_size: int,
        device_type: str,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        generation: int = 0,
    ):
        self.world_size = world_size
        self.device_type = device_type
        self.timeout_s = timeout_s
        self.backend, self.shared_device = pick_backend(world_size, device_type)
        self.generation = generation
        ctx = mp.get_context("spawn")
        self._results = ctx.Queue()
        self._tasks = [ctx.Queue() for _ in range(world_size)]
        port = free_port()
        self._procs = [
            ctx.Process(
                target=_worker_main,
                args=(
                    r,
                    world_size,
                    port,
                    self.backend,
                    device_type,
                    timeout_s,
                    self.shared_device,
                    generation,
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
        self._collect(0, "start-up (process group join)")

    def run(self, fn, *args, timeout_s: float | None = None) -> list:
        """Run fn(ctx, *args) on every rank; return the results in rank order."""
        if not self.alive:
            raise RankError("this rank pool was torn down after an earlier failure")
        self._seq += 1
        for q in self._tasks:
            q.put((self._seq, fn, args))
        return self._collect(self._seq, getattr(fn, "__name__", str(fn)), timeout_s)

    def _collect(self, seq, what, timeout_s=None):
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        got: dict[int, object] = {}
        failed: tuple[int, str] | None = None
        while len(got) < self.world_size:
            now = time.monotonic()
            if now >= deadline:
                break
            try:
                s, rank, ok, payload = self._results.get(timeout=min(1.0, deadline - now))
            except queue.Empty:
                dead = [p.name for p in self._procs if not p.is_alive()]
                if dead and failed is None:
                    failed = (-1, f"worker process(es) {dead} died without a traceback")
                    deadline = min(deadline, time.monotonic() + _GRACE_S)
                continue
            if s != seq:
                continue  # a late answer to a task that already failed
            got[rank] = payload
            if not ok and failed is None:
                failed = (rank, payload)
                deadline = min(deadline, time.monotonic() + _GRACE_S)
        if failed is not None:
            self.close(force=True)
            rank, tb = failed
            who = f"rank {rank}" if rank >= 0 else "a rank"
            raise RankError(f"{what}: {who} of world_size {self.world_size} raised:\n{tb}")
        if len(got) < self.world_size:
            missing = sorted(set(range(self.world_size)) - set(got))
            self.close(force=True)
            raise RankTimeout(
                f"{what}: rank(s) {missing} of world_size {self.world_size} did not answer "
                f"within {timeout_s or self.timeout_s:.0f} s; the group was torn down"
            )
        return [got[r] for r in range(self.world_size)]

    def close(self, force: bool = False):
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


class TorchrunGroup:
    """The group torchrun started: tasks run in this process; results gathered to every rank."""

    def __init__(self, device_type: str, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.world_size = int(os.environ["WORLD_SIZE"])
        self.rank = int(os.environ["RANK"])
        local = int(os.environ.get("LOCAL_RANK", 0))
        shared = device_type == "cuda" and torch.cuda.device_count() < int(
            os.environ.get("LOCAL_WORLD_SIZE", self.world_size)
        )
        self.backend = "nccl" if device_type == "cuda" and not shared else "gloo"
        self.shared_device = shared
        self.generation = 0
        self.alive = True
        if device_type == "cuda":
            device = torch.device("cuda", 0 if shared else local)
            torch.cuda.set_device(device)
        else:
            device = torch.device("cpu")
        if not dist.is_initialized():
            dist.init_process_group(self.backend, timeout=datetime.timedelta(seconds=timeout_s))
        self.ctx = RankContext(
            self.rank, self.world_size, device, self.backend, dist.group.WORLD, shared
        )

    def run(self, fn, *args, timeout_s=None) -> list:
        try:
            mine = (True, fn(self.ctx, *args))
        except BaseException:
            mine = (False, traceback.format_exc())
        gathered = [None] * self.world_size
        dist.all_gather_object(gathered, mine)
        for rank, (ok, payload) in enumerate(gathered):
            if not ok:
                raise RankError(f"{fn.__name__}: rank {rank} raised:\n{payload}")
        return [payload for _, payload in gathered]

    def close(self, force=False):
        pass


def launched_by_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or (
        "RANK" in os.environ and "WORLD_SIZE" in os.environ and "MASTER_ADDR" in os.environ
    )


class PoolRegistry:
    """One pool per world size for the whole pytest run; replaced only after a failure."""

    def __init__(self, device_type: str, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.device_type = device_type
        self.timeout_s = timeout_s
        self._pools: dict[int, RankPool | TorchrunGroup] = {}
        self._starts: dict[int, int] = {}
        self.torchrun = TorchrunGroup(device_type, timeout_s) if launched_by_torchrun() else None

    def get(self, world_size: int):
        if self.torchrun is not None:
            return self.torchrun
        pool = self._pools.get(world_size)
        if pool is None or not pool.alive:
            gen = self._starts.get(world_size, 0)
            self._starts[world_size] = gen + 1
            pool = self._pools[world_size] = RankPool(
                world_size, self.device_type, self.timeout_s, gen
            )
        return pool

    def close(self):
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
