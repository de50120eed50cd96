"""The plugin's hooks: the run's session at configure (a matrix that cannot be read is an error
of collecting bench/), the cells' parametrization, their machine rules and the run's folders
checked at collection, the summary at the end.

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
from common.folders import unwritable
from common.schema.run import BENCHMARK_JSON
from kernels import registry
from measure.cells.build import preflight, unavailable_here
from measure.cells.matrix import load_matrix
from measure.phases import PHASES
from measure.phases.pipeline import TaskOptions
from measure.plugin.options import device_type_option, rank_timeouts, timing_policy
from measure.plugin.session import BenchSession
from measure.plugin.signals import stop_signals
from measure.ranks.pool import PoolRegistry
from measure.ranks.torchrun import launched_by_torchrun
from measure.records import writer as rec

BENCHMARK_DEFAULT_STORAGE = "file://./.benchmarks"  # pytest-benchmark's own default
BENCHMARK_STORAGE = "file://./results/benchmarks"


def pytest_configure(config):
    """The run's session, or, when the matrix cannot be read, the reason: raised as a usage
    error once bench/ is collected (the matrix's error belongs to collecting cells), so --help,
    which runs configure too, and runs of other tests work whatever benchmarks.json says. A bad
    option is a usage error at once; --help checks none. It runs after options.py's configure
    (tryfirst: extensions loaded, --bs-backend checked against the registry) and before
    pytest-benchmark's (trylast), which reads the storage option set here."""
    config.addinivalue_line("markers", "cell: an experiment cell generated from benchmarks.json")
    _benchmark_storage(config)
    config.bs, config.bs_problem, config.bs_wanted = None, None, False
    if config.option.help:
        return
    timeouts = rank_timeouts(config)
    try:
        matrix = load_matrix(config.getoption("--bs-matrix"))
        suite = matrix.suite(config.getoption("--suite"))
    except BenchError as e:
        config.bs_problem = str(e)
        return
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
    records = None
    if reporting:
        attempt = config.getoption("--bs-attempt")
        records = rec.RunRecords(Path(config.getoption("--bs-results")), attempt=attempt)
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
        records=records,
        registry_factory=lambda: PoolRegistry(device_type, timeouts),
    )


def _benchmark_storage(config) -> None:
    """pytest-benchmark makes its storage folder the moment it starts, whatever the run does
    (--help too). Its saved runs live in results/benchmarks, so a run that saves or compares
    (--benchmark-save, --benchmark-autosave, --benchmark-compare) gets that; any other run
    names the current folder, which exists, so no folder is made. A --benchmark-storage given
    on the command line is kept."""
    if config.getoption("benchmark_storage", None) != BENCHMARK_DEFAULT_STORAGE:
        return
    saves = any(
        config.getoption(opt, None)
        for opt in ("benchmark_save", "benchmark_autosave", "benchmark_compare")
    )
    config.option.benchmark_storage = BENCHMARK_STORAGE if saves else "file://."


def pytest_generate_tests(metafunc):
    if "cell" not in metafunc.fixturenames:
        return
    config = metafunc.config
    config.bs_wanted = True
    bs: BenchSession | None = config.bs
    if bs is None:
        return  # the matrix could not be read: a usage error once collection ends
    phase = metafunc.function.__name__
    cells = [c for c in bs.suite.cells if c.phase == phase]
    metafunc.parametrize("cell", cells, ids=[c.id for c in cells])


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    """Machine-dependent rules for the selected cells only (after -k/-m deselection), before
    anything runs; under torchrun, cells of another world size are skipped with the reason.
    The folders the run writes are checked here too, before the first cell."""
    if config.bs_wanted and config.bs_problem is not None:
        raise pytest.UsageError(config.bs_problem)
    if config.bs is None:
        return
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
    cells = [i for i in items if i.get_closest_marker("cell")]
    if cells and not config.option.collectonly:
        _check_outputs(config, bs, timed=any("benchmark" in i.fixturenames for i in cells))


def _check_outputs(config, bs: BenchSession, timed: bool) -> None:
    """Usage error unless the run can write its records and benchmark JSON; with no
    --benchmark-json, a run of timed cells writes its samples into its run folder."""
    if bs.records is None:
        return  # a torchrun rank other than 0 writes nothing
    given = getattr(config.option, "benchmark_json", None)
    folders = {"--bs-results": Path(config.getoption("--bs-results"))}
    if given is not None:
        folders["--benchmark-json"] = Path(given).parent
    for option, folder in folders.items():
        problem = unwritable(folder)
        if problem:
            raise pytest.UsageError(f"{option} {folder}: {problem}")
    benchmark = getattr(config, "_benchmarksession", None)
    if timed and given is None and benchmark is not None:
        benchmark.json = bs.records.dir / BENCHMARK_JSON


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    bs: BenchSession | None = getattr(config, "bs", None)
    if bs is None:
        return
    bs.summary.print(terminalreporter)
    if bs.records is not None and bs.records.cells:
        where = [f"records: {bs.records.dir}/ ({bs.records.cells} cells; report input)"]
        json_path = getattr(getattr(config, "_benchmarksession", None), "json", None)
        if json_path and Path(json_path).exists():
            where.append(f"benchmark JSON: {json_path}")
        terminalreporter.write_line("Block-Shock bench wrote " + "; ".join(where))


def pytest_sessionfinish(session, exitstatus):
    bs = getattr(session.config, "bs", None)
    if bs is not None:
        stop = stop_signals(session.config)
        signal_name = stop.name if stop is not None else None
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED or signal_name is not None
        bs.close(int(session.exitstatus), interrupted, signal_name)


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector, name, obj):
    """Collect a bench/ function named after a phase as a test (its cells parametrize it)."""
    if name in PHASES and inspect.isfunction(obj) and isinstance(collector, pytest.Module):
        return list(collector._genfunctions(name, obj))
    return None
