"""Test-only plugin (`-p tests.measure.gate_sync --gate-sync-dir D --gate-sync-parties K`): K
pytest runs of the same cells, started together, wait for each other before every cell (the
first time after each has started its one-rank pool and measured its ceilings), so the same
cell is timed side by side in every run: they see the same load from whatever else the machine
is doing, and two runs differ only by what they run."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

_WAIT_S = 300.0


def pytest_addoption(parser):
    parser.addoption("--gate-sync-dir", default=None, help="folder the runs meet in")
    parser.addoption("--gate-sync-parties", type=int, default=1, help="how many runs meet")


def _meet(config, tag: str) -> None:
    folder = Path(config.getoption("--gate-sync-dir")) / tag
    folder.mkdir(parents=True, exist_ok=True)
    (folder / str(os.getpid())).touch()
    parties = config.getoption("--gate-sync-parties")
    deadline = time.monotonic() + _WAIT_S
    while len(list(folder.iterdir())) < parties:
        if time.monotonic() > deadline:
            raise RuntimeError(f"gate_sync: {parties} runs did not all reach {tag} in {_WAIT_S}s")
        time.sleep(0.01)


def pytest_collection_finish(session):
    config = session.config
    if config.getoption("--gate-sync-dir") is None or config.getoption("--co"):
        return
    bs = config.bs
    bs.ceilings(bs.pool(1))  # start-up and ceilings, the heavy one-off work, before meeting
    _meet(config, "start")


@pytest.hookimpl(trylast=True)
def pytest_runtest_setup(item):
    if item.config.getoption("--gate-sync-dir") is not None:
        _meet(item.config, item.name)
