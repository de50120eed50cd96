"""The machine in every saved run, and comparisons that know it.

pytest-benchmark saves `machine_info` with every run and, under `--benchmark-compare`, warns
when any key of it differs (the host name included) in one long line of both dicts. This module
adds the facts that decide whether device times may be compared (GPU model and count, driver,
clocks, power limit, CUDA, torch, cuSPARSELt, Triton, CPU: measure/machine/environment.py)
under `machine_info["block_shock_bench"]`, and when a compared run differs in one of the fields
that matter (measure/gate/machine.py says which and why) it warns naming each field and both
values, and says so again at the end of the run; with `--bs-strict-machine` it refuses the
comparison, a usage error before any cell runs.
"""

from __future__ import annotations

import pytest

from common.errors import GateError
from measure.gate.machine import KEY, Difference, differences, summary
from measure.machine.environment import machine_info
from measure.plugin.options import device_type_option

_FACTS = pytest.StashKey[dict]()
_SEEN = pytest.StashKey[list[tuple[str, list[Difference]]]]()


class MachineMismatchWarning(pytest.PytestWarning):
    """A compared run was measured on a machine that differs in a field that matters."""


def facts(config: pytest.Config) -> dict:
    """This machine's facts, read once per run (the same dict for saving and comparing)."""
    if _FACTS not in config.stash:
        bs = getattr(config, "bs", None)
        device_type = bs.device_type if bs is not None else device_type_option(config)
        config.stash[_FACTS] = machine_info(device_type)
    return config.stash[_FACTS]


def check_compared(config: pytest.Config, compared_info: dict, source: str) -> list[Difference]:
    """Compare a run's saved machine_info with this machine: under --bs-strict-machine a
    difference is a GateError; otherwise a warning, kept for the end-of-run summary."""
    diffs = differences(compared_info, {KEY: facts(config)})
    if not diffs:
        return diffs
    if config.getoption("--bs-strict-machine"):
        raise GateError(
            f"--bs-strict-machine: {source} was measured on another machine: {summary(diffs)}"
        )
    config.stash.setdefault(_SEEN, []).append((source, diffs))
    config.issue_config_time_warning(
        MachineMismatchWarning(
            f"{source} was measured on another machine, so its times may not compare with "
            f"this run's: {summary(diffs)}"
        ),
        stacklevel=2,
    )
    return diffs


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info[KEY] = facts(config)


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_compare_machine_info(
    config, benchmarksession, machine_info, compared_benchmark
):
    """Called by --benchmark-compare for each run it loads, while pytest configures."""
    commit = (compared_benchmark.get("commit_info") or {}).get("id", "?")
    source = f"the compared run (saved {compared_benchmark.get('datetime', '?')}, commit {commit})"
    try:
        check_compared(config, compared_benchmark.get("machine_info") or {}, source)
    except GateError as e:
        raise pytest.UsageError(str(e)) from None


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    for source, diffs in config.stash.get(_SEEN, []):
        terminalreporter.write_sep("=", "MACHINE DIFFERS", yellow=True)
        terminalreporter.write_line(f"{source} was measured on another machine:")
        for d in diffs:
            terminalreporter.write_line(f"  {d.line()}: {d.why}")
