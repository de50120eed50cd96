"""The pytest plugin: options, session objects, fixtures and the cell parametrization.

conftest.py loads it. One `block-shock` option group holds every option with its default in the
help text; benchmarks.json's suite supplies the timing policy and options override it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from common.errors import BenchError
from measure import records as rec
from measure.cell import CellSpec
from measure.cellbuild import preflight, unavailable_here
from measure.matrix import DEFAULT_PATH, load_matrix
from measure.phases import TaskOptions
from measure.policy import DEFAULT_POLICY, TimingPolicy
from measure.policy import OPTIONS as POLICY_OPTIONS
from measure.ranks import PoolRegistry, Timeouts, launched_by_torchrun, timeout_problem
from measure.session import BenchSession


def _default(key: str) -> str:
    return f"the suite's, else {getattr(DEFAULT_POLICY, key):g}"


def pytest_addoption(parser):
    g = parser.getgroup("block-shock", "Block-Shock bench")
    g.addoption(
        "--suite",
        default="smoke",
        help="named suite of benchmarks.json whose cells to run (default: smoke)",
    )
    g.addoption(
        "--bs-matrix",
        default=str(DEFAULT_PATH),
        help="cell matrix file (default: benchmarks.json at the project root)",
    )
    g.addoption("--bs-results", default="results", help="folder for run records (default: results)")
    g.addoption(
        "--bs-seed",
        type=int,
        default=None,
        help="base seed; each cell derives its own (default: fresh each run, recorded)",
    )
    g.addoption(
        "--bs-device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where ranks run (default: auto = cuda when available)",
    )
    g.addoption(
        "--bs-backend",
        choices=("auto", "cslt", "cslt_padded", "flinear", "triton"),
        default="auto",
        help="2:4 kernel path on CUDA for cells that name none: cslt = torch._cslt_sparse_mm "
        "with searched alg id, cslt_padded = the same with B padded to its fastest batch, "
        "flinear = to_sparse_semi_structured + F.linear, triton = this project's Triton "
        "kernel (kernels/triton24.py) (default: auto = cslt)",
    )
    g.addoption(
        "--bs-mode",
        choices=("graph", "eager"),
        default="graph",
        help="primary CUDA timing mode stored in pytest-benchmark; the other is recorded "
        "too (default: graph; gloo groups cannot be captured and use eager)",
    )
    g.addoption(
        "--bs-rank-timeout",
        type=float,
        default=Timeouts.task_s,
        help=f"seconds the ranks may take per cell's task (default: {Timeouts.task_s:g})",
    )
    g.addoption(
        "--bs-startup-timeout",
        type=float,
        default=Timeouts.startup_s,
        help="seconds the ranks may take to start and join their process group "
        f"(default: {Timeouts.startup_s:g})",
    )
    g.addoption(
        "--bs-setup-timeout",
        type=float,
        default=Timeouts.setup_s,
        help="seconds the ranks may take per once-per-pool set-up task: environment, "
        f"ceilings (default: {Timeouts.setup_s:g})",
    )
    g.addoption(
        "--bs-min-samples",
        type=int,
        default=None,
        help=f"stopping rule: at least this many samples (default: {_default('min_samples')})",
    )
    g.addoption(
        "--bs-min-time",
        type=float,
        default=None,
        help="stopping rule: at least this much measured time, s "
        f"(default: {_default('min_time_s')})",
    )
    g.addoption(
        "--bs-max-time",
        type=float,
        default=None,
        help=f"stopping rule: wall-time cap per measurement, s (default: {_default('max_time_s')})",
    )
    g.addoption(
        "--bs-max-noise",
        type=float,
        default=None,
        help=f"stopping rule: stop once relative std <= this (default: {_default('max_noise')})",
    )
    g.addoption(
        "--bs-sample-time",
        type=float,
        default=None,
        help="seconds one warm sample lasts (forwards per sample sized to it; default: "
        f"{_default('sample_s')})",
    )
    g.addoption(
        "--bs-warmup",
        type=float,
        default=None,
        help="seconds of back-to-back forwards before sampling, so clocks and power reach "
        f"their loaded state (0: one call; default: {_default('warmup_s')})",
    )
    g.addoption(
        "--bs-max-duty",
        type=float,
        default=None,
        help="load while timed: 1 = sustained, back to back (default); below 1 = idle gaps "
        "keep the device busy at most this fraction of the time (a power-capped GPU then "
        "stays at full clocks: the burst rate)",
    )
    g.addoption(
        "--bs-energy",
        choices=("on", "off"),
        default="on",
        help="meter energy in phase1 cells (default: on; unavailable meters say why)",
    )
    g.addoption(
        "--energy-window",
        type=float,
        default=None,
        dest="energy_window",
        help="seconds of back-to-back forwards per energy window "
        f"(default: {_default('energy_window_s')})",
    )
    g.addoption(
        "--bs-idle-seconds",
        type=float,
        default=None,
        help=f"seconds of idle power measured before each window (default: {_default('idle_s')})",
    )


def _device_type(config) -> str:
    want = config.getoption("--bs-device")
    if want == "cuda" and not torch.cuda.is_available():
        raise pytest.UsageError("--bs-device cuda: no CUDA device is visible to torch")
    if want == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return want


def _policy(config, suite):
    """The suite's policy with the options that were given laid over it."""
    policy = suite.timing
    for opt, key in POLICY_OPTIONS.items():
        v = config.getoption(opt)
        if v is not None:
            problem = TimingPolicy.problem(key, v)
            if problem:
                raise pytest.UsageError(f"{opt} {problem}")
            policy = policy.updated(**{key: v})
    return policy


RANK_TIMEOUT_OPTIONS = {
    "startup_s": "--bs-startup-timeout",
    "setup_s": "--bs-setup-timeout",
    "task_s": "--bs-rank-timeout",
}


def rank_timeouts(config) -> Timeouts:
    """The rank pools' bounds from the options; a bound that is not a finite positive number
    of seconds is a usage error naming its option."""
    values = {}
    for key, opt in RANK_TIMEOUT_OPTIONS.items():
        values[key] = config.getoption(opt)
        problem = timeout_problem(values[key])
        if problem:
            raise pytest.UsageError(f"{opt} {problem}")
    return Timeouts(**values)


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
    device_type = _device_type(config)
    if device_type != "cuda" and config.getoption("--bs-backend") != "auto":
        raise pytest.UsageError(
            f"--bs-backend {config.getoption('--bs-backend')} needs a CUDA GPU; on "
            f"{device_type} the 2:4 halves are emulated with masked dense math"
        )
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
            policy=_policy(config, suite),
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


@pytest.fixture(scope="session")
def bench(request) -> BenchSession:
    """The run: matrix, suite, seed, timing policy, records, and the rank pools."""
    return request.config.bs


@pytest.fixture
def ranks(bench, cell):
    """The process group for this cell's world size (started once per run, then reused): for
    a cell of one's own that sends tasks to the ranks; the harness's cells go through
    `bench.run(cell)`."""
    return bench.pool(cell.world_size)


@pytest.fixture
def cell_seed(bench, cell) -> int:
    """A seed per cell, derived from the run's base seed and the cell id (recorded)."""
    return bench.cell_seed(cell)


@pytest.fixture
def mask_pair():
    """make(name, weight, seed=0) -> validated complementary 2:4 masks (M0, M1) for `weight`."""
    from kernels.masks import make_mask_pair

    def make(name, weight, seed=0):
        g = torch.Generator(device=weight.device)
        g.manual_seed(seed)
        return make_mask_pair(name, weight, g)

    return make


@pytest.fixture
def workload_inputs():
    """make(workload, B, N_in, N_out, bias=False, dtype=bf16, seed=0) -> (X, W, b) on the CPU."""
    from measure.workloads import make_inputs

    def make(workload, batch, n_in, n_out, bias=False, dtype=torch.bfloat16, seed=0):
        return make_inputs(workload, batch, n_in, n_out, bias, dtype, torch.device("cpu"), seed)

    return make
