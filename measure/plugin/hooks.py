"""The plugin's hooks: the run's session at configure, the cells' parametrization and their
machine rules at collection, the summary at the end.

Cell functions in bench/ are named after their phase (`phase0`, `phase1`, ...); they are
collected because the phase table (measure/phases) names them, not through pyproject's
python_functions, so adding a phase needs no edit there.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import pytest
import torch

from common.cell import CellSpec
from common.errors import BenchError
from kernels import registry
from measure.cells.build import preflight, unavailable_here
from measure.cells.matrix import load_matrix
from measure.phases import PHASES
from measure.phases.pipeline import TaskOptions
from measure.plugin.options import device_type_option, rank_timeouts, timing_policy
from measure.plugin.session import BenchSession
from measure.ranks.pool import PoolRegistry
from measure.ranks.torchrun import launched_by_torchrun
from measure.records import writer as rec


def pytest_configure(config):
    config.addinivalue_line("markers", "cell: an experiment cell generated from benchmarks.json")
    timeouts = rank_timeouts(config)
    try:
        matrix = load_matrix(config.getoption("--bs-matrix"))
        suite = matrix.suite(config.getoption("--suite"))
    except BenchError as e:
        raise pytest.UsageError(str(e)) from None
    seed = config.getoption("--bs-seed")
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
    device_type = device_type_option(config)
    backend = config.getoption("--bs-backend")
    if backend != registry.AUTO:  # AUTO means the device's default, which always runs there
        reason = registry.backend(backend).available(torch.device(device_type))
        if reason is not None:
            raise pytest.UsageError(f"--bs-backend {backend}: {reason}")
    reporting = int(os.environ.get("RANK", "0")) == 0
    if not reporting:  # under torchrun only rank 0 writes records and benchmark files
        for opt in ("benchmark_json", "benchmark_autosave", "benchmark_save"):
            if hasattr(config.option, opt):
                setattr(config.option, opt, None if opt == "benchmark_json" else False)
    config.bs = BenchSession(
        matrix=matrix,
        suite=suite,
        seed=seed,
        device_type=device_type,
        options=TaskOptions(
            backend=config.getoption("--bs-backend"),
            mode=config.getoption("--bs-mode"),
            energy=config.getoption("--bs-energy") == "on",
            policy=timing_policy(config, suite),
        ),
        records=rec.RunRecords(Path(config.getoption("--bs-results"))) if reporting else None,
        registry_factory=lambda: PoolRegistry(device_type, timeouts),
    )


def pytest_generate_tests(metafunc):
    if "cell" not in metafunc.fixturenames:
        return
    bs: BenchSession = metafunc.config.bs
    phase = metafunc.function.__name__
    cells = [c for c in bs.suite.cells if c.phase == phase]
    metafunc.parametrize("cell", cells, ids=[c.id for c in cells])


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    """Machine-dependent rules for the selected cells only (after -k/-m deselection), before
    anything runs; under torchrun, cells of another world size are skipped with the reason."""
    bs: BenchSession = config.bs
    torchrun = int(os.environ["WORLD_SIZE"]) if launched_by_torchrun() else None
    problems = []
    for item in items:
        cell = getattr(item, "callspec", None) and item.callspec.params.get("cell")
        if not isinstance(cell, CellSpec):
            continue
        item.add_marker(pytest.mark.cell)
        if torchrun is not None and torchrun != cell.world_size:
            item.add_marker(
                pytest.mark.skip(
                    reason=f"torchrun started {torchrun} ranks; this cell needs {cell.world_size}"
                )
            )
            continue
        reason = unavailable_here(cell, bs.device_type)
        if reason:
            item.add_marker(pytest.mark.skip(reason=f"{cell.name}: {reason}"))
            continue
        try:
            preflight(cell, bs.device_type, bs.options.backend)
        except BenchError as e:
            problems.append(str(e))
    if problems:
        raise pytest.UsageError("cells that cannot run here:\n  " + "\n  ".join(problems))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    bs: BenchSession | None = getattr(config, "bs", None)
    if bs is None:
        return
    bs.summary.print(terminalreporter)
    if bs.records is not None and bs.records.cells:
        where = [f"records: {bs.records.dir}/ ({bs.records.cells} cells; report input)"]
        if getattr(config.option, "benchmark_json", None):
            where.append(f"benchmark JSON: {config.option.benchmark_json.name}")
        terminalreporter.write_line("Block-Shock bench wrote " + "; ".join(where))


def pytest_sessionfinish(session, exitstatus):
    bs = getattr(session.config, "bs", None)
    if bs is not None:
        bs.close(int(exitstatus), exitstatus == pytest.ExitCode.INTERRUPTED)


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector, name, obj):
    """Collect a bench/ function named after a phase as a test (its cells parametrize it)."""
    if name in PHASES and inspect.isfunction(obj) and isinstance(collector, pytest.Module):
        return list(collector._genfunctions(name, obj))
    return None
