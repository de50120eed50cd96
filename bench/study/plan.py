"""Slices: which pending cells run together, and the command line each one runs.

A slice is the cells of one cycle and one world size (`--isolation slice`) or a single cell
(`--isolation cell`, and every retry): one pytest process, a fresh CUDA context and fresh rank
pools. Cycles are interleaved: every cell of cycle 1 runs before any cell of cycle 2.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.study.manifest import CellRun
from bench.study.preflight import pytest_base


@dataclass(frozen=True)
class Launcher:
    """How a slice's ranks start: the harness's own rank pools, or torchrun (many nodes too)."""

    kind: str = "none"  # none | torchrun
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 29500  # many nodes: slice n uses master_port + n (the same on every node)

    def prefix(self, world_size: int, seq: int) -> list[str]:
        if self.kind == "none":
            return [sys.executable]
        per_node = world_size // self.nnodes
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(per_node)]
        if self.nnodes == 1:
            return cmd + ["--standalone"]
        return cmd + [
            "--nnodes",
            str(self.nnodes),
            "--node-rank",
            str(self.node_rank),
            "--master-addr",
            self.master_addr,
            "--master-port",
            str(self.master_port + seq),
        ]


@dataclass(frozen=True)
class SliceSpec:
    """Everything one slice needs to run anywhere (pickled into a submitit job as is)."""

    id: str
    seq: int
    cycle: int
    world_size: int
    cells: tuple[str, ...]
    study: Path
    command: tuple[str, ...]
    gap_s: float
    cell_budget_s: float
    startup_budget_s: float
    env: dict = field(default_factory=dict)
    # a submitit job's: the study runner that waits for it, (host, pid, start time), so a local
    # job stops when that runner is gone; and the job's time limit, s (SIGUSR2 means either
    # the limit or preemption: which one, the elapsed time tells)
    owner: tuple[str, int, int | None] | None = None
    time_limit_s: float | None = None

    @property
    def runs(self) -> Path:
        return self.study / "runs" / self.id

    @property
    def bench_json(self) -> Path:
        return self.study / "bench" / f"{self.id}.json"

    @property
    def log(self) -> Path:
        return self.study / "logs" / f"{self.id}.log"

    @property
    def events(self) -> Path:
        """Prefix of the event files; rank r writes `<prefix>.rank<r>.jsonl`."""
        return self.study / "events" / self.id

    @property
    def result(self) -> Path:
        """Written when the slice ends, wherever it ran: what `collect` reads."""
        return self.study / "events" / f"{self.id}.result.json"


def selection(names: list[str] | tuple[str, ...]) -> str:
    """A -k expression selecting exactly these cells (a full name with its brackets matches one
    test only)."""
    return " or ".join(names)


def slice_command(
    study: Path,
    slice_id: str,
    seq: int,
    world_size: int,
    names: list[str],
    suite: str,
    matrix: str | None,
    pytest_args: list[str],
    launcher: Launcher,
) -> list[str]:
    base = pytest_base(suite, matrix, pytest_args)
    return [
        *launcher.prefix(world_size, seq),
        *base[1:],
        "-v",
        "-p",
        "bench.study.slices.events",
        "--bs-study-events",
        str(study / "events" / slice_id),
        "-k",
        selection(names),
        "--bs-results",
        str(study / "runs" / slice_id),
        "--bs-attempt",
        slice_id,
        f"--benchmark-json={study / 'bench' / f'{slice_id}.json'}",
    ]


def group_pending(pending: list[CellRun], isolation: str) -> list[list[CellRun]]:
    """Pending cell runs grouped into slices: by cycle, then world size in order of first
    appearance; retried cells (attempts > 0) always alone."""
    groups: list[list[CellRun]] = []
    for cycle in sorted({c.cycle for c in pending}):
        in_cycle = [c for c in pending if c.cycle == cycle]
        fresh = [c for c in in_cycle if c.attempts == 0]
        if isolation == "cell":
            groups += [[c] for c in fresh]
        else:
            for ws in dict.fromkeys(c.world_size for c in fresh):
                groups.append([c for c in fresh if c.world_size == ws])
        groups += [[c] for c in in_cycle if c.attempts > 0]
    return groups
