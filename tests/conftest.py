"""Shared fixtures for the unit tests: rank pools of the real harness, on CPU (gloo)."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from measure.ranks.context import RankContext
from measure.ranks.failures import Timeouts
from measure.ranks.pool import RankPool


@pytest.fixture(scope="session")
def gloo_pair():
    """Two gloo ranks on the CPU, started once for the unit tests that need a real group."""
    pool = RankPool(2, "cpu", Timeouts(task_s=60))
    yield pool
    pool.close()


@pytest.fixture
def solo_ctx():
    """A world_size-1 context in this process (no group needed)."""
    return RankContext(0, 1, torch.device("cpu"), "gloo", None, False)


ROOT = Path(__file__).resolve().parent.parent


def run_bench(
    *args: str, launcher: tuple[str, ...] = (), returncode: int = 0
) -> subprocess.CompletedProcess:
    """`python [launcher] -m pytest bench -q ARGS` in the project root, as a user runs it; fails
    the calling test with the tail of the output unless it exits with `returncode`."""
    cmd = [
        sys.executable,
        *launcher,
        "-m",
        "pytest",
        "bench",
        "-q",
        "-p",
        "no:cacheprovider",
        *args,
    ]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == returncode, run.stdout[-3000:] + run.stderr[-3000:]
    return run
