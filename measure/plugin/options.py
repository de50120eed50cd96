"""The `--bs-*` option group and how its values are read: each option once, with its default in
its help text; a value that breaks a rule is a pytest usage error naming the option."""

from __future__ import annotations

import pytest
import torch

from common.errors import closest
from kernels import registry
from measure.cells.matrix import DEFAULT_PATH
from measure.gate.regression import GateRule
from measure.ranks.failures import Timeouts, timeout_problem
from measure.timing.policy import DEFAULT_POLICY, TimingPolicy
from measure.timing.policy import OPTIONS as POLICY_OPTIONS


def _default(key: str) -> str:
    return f"the suite's, else {getattr(DEFAULT_POLICY, key):g}"


def _backend_help() -> str:
    specs = registry.backend_specs()
    each = "; ".join(f"{b.name} = {b.summary}" for b in specs)
    auto = ", ".join(f"{b.name} on {'/'.join(b.default_on)}" for b in specs if b.default_on)
    return f"2:4 kernel path for cells that name none: {each} (default: auto = {auto})"


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
        "--bs-attempt",
        default=None,
        help="the study attempt (slice) running these cells, written into run.json and every "
        "record so a study keeps each cell's records apart by attempt (default: none; set by "
        "bench.study)",
    )
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
        "--bs-extension",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE before the matrix is read: it registers methods and 2:4 backends "
        "(kernels/registry.py); repeatable; rank workers and study slices load it too, "
        f"through ${registry.EXTENSIONS_ENV}",
    )
    g.addoption("--bs-backend", default=registry.AUTO, help=_backend_help())
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

    _comparison_options(g)


GATE_FROM_COMPARE = "compare"  # what --bs-gate holds when no file follows it


def _comparison_options(g) -> None:
    """Comparing runs: the machine check and the statistical regression gate."""
    g.addoption(
        "--bs-strict-machine",
        action="store_true",
        help="refuse (usage error, before any cell runs) to compare with a run measured on a "
        "machine that differs in GPU model or count, driver, clocks, power limit, CUDA, torch, "
        "cuSPARSELt, Triton or CPU (default: warn and say so in the summary)",
    )
    g.addoption(
        "--bs-gate",
        nargs="?",
        const=GATE_FROM_COMPARE,
        default=None,
        metavar="BASELINE.json",
        help="regression gate on raw samples: exit 1 if a cell's bootstrap interval of median "
        "new/old lies wholly above 1 + the minimum effect; BASELINE.json comes from "
        "--benchmark-json or --benchmark-save-data (write --bs-gate=PATH); bare --bs-gate "
        "gates against the run --benchmark-compare loads",
    )
    g.addoption(
        "--bs-gate-confidence",
        type=float,
        metavar="C",
        default=GateRule.confidence,
        help=f"two-sided confidence of the gate's interval (default: {GateRule.confidence:g})",
    )
    g.addoption(
        "--bs-gate-min-effect",
        type=float,
        metavar="FRACTION",
        default=GateRule.min_effect,
        help="smallest slowdown, as a fraction, the gate calls a regression "
        f"(default: {GateRule.min_effect:g})",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """Extensions first (the matrix may name their methods and backends), then the backend
    option checked against the registry they extended."""
    try:
        registry.load_extensions(config.getoption("--bs-extension"))
    except ImportError as e:
        raise pytest.UsageError(f"--bs-extension: {e}") from None
    backend = config.getoption("--bs-backend")
    if backend not in registry.backend_names():
        raise pytest.UsageError(
            f"--bs-backend {backend!r}{closest(backend, registry.backend_names())}: "
            f"choose one of {registry.backend_names()}"
        )


def device_type_option(config) -> str:
    want = config.getoption("--bs-device")
    if want == "cuda" and not torch.cuda.is_available():
        raise pytest.UsageError("--bs-device cuda: no CUDA device is visible to torch")
    if want == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return want


def timing_policy(config, suite):
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
