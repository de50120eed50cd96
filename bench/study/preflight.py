"""Before anything runs: which cells, how long, which cannot run here, and the design hash.

The cell list comes from pytest itself (`python -m pytest bench --co -q`, in a subprocess), so a
study runs exactly what the same `pytest -k` would; each collected name is resolved to its
CellSpec through benchmarks.json to count it by phase, method and world size.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from common.cell import CellSpec
from common.dtypes import DTYPES
from common.errors import StudyError
from measure.cells.matrix import load_matrix
from measure.phases import PHASES
from measure.ranks.lifetime import armed, child_env
from measure.timing.policy import options_in

ROOT = Path(__file__).resolve().parents[2]
# Seconds per cell beyond its timing policy (inputs, checks, records) and per slice (python,
# torch and pytest start, one rank pool start): rough constants of the model, stated as such.
CELL_OVERHEAD_S = 1.0
SLICE_OVERHEAD_S = 8.0


def pytest_base(suite: str, matrix: str | None, pytest_args: list[str]) -> list[str]:
    """`python -m pytest bench --suite S [--bs-matrix M] [passthrough args]`."""
    cmd = [sys.executable, "-m", "pytest", "bench", "-p", "no:cacheprovider", "--suite", suite]
    if matrix:
        cmd += ["--bs-matrix", matrix]
    return cmd + list(pytest_args)


def collect_cells(
    suite: str, k: str | None, matrix: str | None, pytest_args: list[str]
) -> list[CellSpec]:
    """The cells `pytest --co -q --suite S -k K` selects, in pytest's order, as CellSpecs."""
    cmd = [*pytest_base(suite, matrix, pytest_args), "--co", "-q"]
    if k:
        cmd += ["-k", k]
    run = subprocess.run(  # it dies with the runner, like every process the runner starts
        armed(cmd), cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=600
    )
    if run.returncode not in (0, 5):  # 5: nothing selected, reported below
        raise StudyError(
            f"collecting suite {suite!r} -k {k!r} failed (exit {run.returncode}):\n"
            + (run.stdout + run.stderr)[-3000:]
        )
    defined = load_matrix(matrix or ROOT / "benchmarks.json").suite(suite).cells
    by_name = {c.name: c for c in defined}
    cells = []
    for line in run.stdout.splitlines():
        if "::" not in line:
            continue
        name = line.rsplit("::", 1)[1].strip()
        if name.endswith("[NOTSET]"):
            continue  # pytest's placeholder for a phase this suite has no cells of
        if name not in by_name:
            raise StudyError(f"collected {name!r}, which suite {suite!r} does not define")
        cells.append(by_name[name])
    if not cells:
        raise StudyError(f"suite {suite!r} with -k {k!r} selects no cells")
    return cells


def timing_policy(suite: str, matrix: str | None, pytest_args: list[str]) -> dict:
    """The policy the study's pytest runs will use: the suite's, with the timing options among
    `pytest_args` laid over it, as the plugin lays them (a bad value is the plugin's error,
    raised when the cells are collected)."""
    s = load_matrix(matrix or ROOT / "benchmarks.json").suite(suite)
    return s.timing.updated(**options_in(pytest_args)).as_dict()


def design_hash(cells: list[CellSpec], timing: dict, matrix: str | None) -> str:
    """sha256 of the resolved cell list, the timing policy and the matrix file's bytes."""
    path = Path(matrix) if matrix else ROOT / "benchmarks.json"
    doc = {
        "cells": [c.as_dict() for c in cells],
        "timing": timing,
        "matrix_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def policy_seconds(cell: CellSpec, timing: dict, energy: bool = True) -> float:
    """Expected seconds of one cell from the timing policy: each measurement its phase makes on
    CUDA (`Phase.measurement_count`) warmed up and held to its minimum time, plus the energy
    window and the idle baseline before it where a timed phase meters energy. A measurement that
    does not settle under `max_noise` runs on to `max_time_s`, so a noisy machine takes longer."""
    t = timing
    phase = PHASES[cell.phase]
    measure = t["warmup_s"] + max(t["min_time_s"], t["min_samples"] * t["sample_s"])
    metered = t["energy_window_s"] + t["idle_s"] if phase.timed and energy else 0.0
    return CELL_OVERHEAD_S + phase.measurement_count(cell.world_size) * measure + metered


def cell_bytes(cell: CellSpec) -> int:
    """Device bytes one rank's tensors need: X, W, Y and the halves in the cell's dtype, plus a
    float64 reference of all three (an estimate from the shapes, not a measurement)."""
    elem = DTYPES[cell.dtype].itemsize
    x, w, y = cell.B * cell.N, cell.N * cell.N_out, cell.B * cell.N_out
    return elem * (x + 2 * w + 2 * y) + 8 * (x + w + y)


@dataclass(frozen=True)
class Machine:
    """What this machine offers the cells (read once, by the study process)."""

    device_type: str
    gpus: int
    free_bytes: int | None
    nnodes: int = 1
    gpus_come_with_job: bool = False  # a SLURM job is given the GPUs its world size needs

    @classmethod
    def here(cls, nnodes: int = 1, gpus_come_with_job: bool = False) -> Machine:
        import torch

        if torch.cuda.is_available():
            free, _ = torch.cuda.mem_get_info(0)
            return cls("cuda", torch.cuda.device_count(), free, nnodes, gpus_come_with_job)
        return cls("cpu", 0, None, nnodes, gpus_come_with_job)


def cannot_run(cell: CellSpec, machine: Machine) -> str | None:
    """Why the cell cannot run here (recorded as its skip reason), or None."""
    if cell.world_size % machine.nnodes:
        return f"world_size {cell.world_size} cannot be split over {machine.nnodes} nodes"
    if machine.device_type != "cuda" or machine.gpus_come_with_job:
        return None
    per_node = cell.world_size // machine.nnodes
    if per_node > machine.gpus:
        return f"needs {per_node} GPUs per node, {machine.gpus} visible"
    need = cell_bytes(cell)
    if machine.free_bytes is not None and need > machine.free_bytes:
        return f"needs about {need / 2**30:.1f} GiB per rank, {machine.free_bytes / 2**30:.1f} free"
    return None


@dataclass
class Preflight:
    cells: list[CellSpec]
    timing: dict
    design_hash: str
    skipped: dict[str, str]  # cell name -> reason
    estimate_s: float
    measured_cells: int  # how many cells the estimate took from earlier measurements

    def counts(self) -> dict[str, Counter]:
        return {
            axis: Counter(str(getattr(c, axis)) for c in self.cells)
            for axis in ("phase", "method", "world_size")
        }

    def lines(self, cycles: int) -> list[str]:
        out = [f"{len(self.cells)} cells x {cycles} cycle(s), design {self.design_hash[:12]}"]
        for axis, counter in self.counts().items():
            out.append(f"  by {axis}: " + ", ".join(f"{k} {v}" for k, v in sorted(counter.items())))
        src = f"{self.measured_cells} cells from earlier measurements, the rest from the policy"
        out.append(f"  estimated wall time: {fmt_s(self.estimate_s)} ({src})")
        if self.skipped:
            out.append(f"  cannot run here ({len(self.skipped)}, recorded as skipped):")
            out += [f"    {name}: {why}" for name, why in self.skipped.items()]
        return out


def energy_metered(pytest_args: list[str]) -> bool:
    """Whether the study's runs meter energy: the plugin's `--bs-energy` (on unless `off`)."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--bs-energy", default="on")
    return parser.parse_known_args(pytest_args)[0].bs_energy != "off"


def estimate(
    cells: list[CellSpec],
    timing: dict,
    history: dict[str, list[float]],
    cycles: int,
    slices: int,
    energy: bool = True,
) -> tuple[float, int]:
    """(seconds, cells measured before): a cell's median measured duration where earlier
    studies ran it, else its policy estimate; plus a start-up per slice."""
    total, measured = 0.0, 0
    for c in cells:
        if history.get(c.name):
            total += statistics.median(history[c.name])
            measured += 1
        else:
            total += policy_seconds(c, timing, energy)
    return cycles * total + slices * SLICE_OVERHEAD_S, measured


def fmt_s(s: float | None) -> str:
    if s is None:
        return "?"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{sec:02d}s" if m else f"{sec}s"
