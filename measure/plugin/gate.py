"""The statistical regression gate as a pytest option: `--bs-gate[=BASELINE.json]`.

The baseline is a pytest-benchmark JSON file holding raw samples (`--benchmark-json`, or a run
saved with `--benchmark-autosave --benchmark-save-data`), or, with no file named, the one run
`--benchmark-compare` loaded. It is read and its machine checked (measure/plugin/machine.py)
before any cell runs; at the end this run's samples are judged against it cell by cell
(measure/gate/regression.py), each regressed cell is printed with its ratio and interval, and
the run exits 1 (tests failed) if any cell regressed or no cell could be compared.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import GateError
from measure.gate.regression import GateRule, Judgement, judge_runs, load_run, samples_of
from measure.plugin.machine import check_compared
from measure.plugin.options import GATE_FROM_COMPARE

_BASELINE = pytest.StashKey[tuple[str, list[dict]]]()
_JUDGEMENT = pytest.StashKey[Judgement]()


def gate_rule(config: pytest.Config) -> GateRule:
    return GateRule(
        confidence=config.getoption("--bs-gate-confidence"),
        min_effect=config.getoption("--bs-gate-min-effect"),
    )


def _baseline(config: pytest.Config) -> tuple[str, list[dict]]:
    """(where it came from, its benchmarks), checked: raises GateError."""
    wanted = config.getoption("--bs-gate")
    if wanted != GATE_FROM_COMPARE:
        path = Path(wanted)
        if path.is_dir():
            raise GateError(
                f"{path} is a folder; name a file as --bs-gate=PATH (a bare --bs-gate "
                "followed by a test path takes that path for the baseline)"
            )
        doc = load_run(path)
        check_compared(config, doc.get("machine_info") or {}, f"the gate's baseline {path}")
        return str(path), doc["benchmarks"]
    loaded = getattr(config, "_benchmarksession", None)
    runs = getattr(loaded, "compared_mapping", None) or {}
    if len(runs) != 1:
        raise GateError(
            "with no file it gates against the run --benchmark-compare loads; "
            f"{len(runs)} runs were loaded (give --benchmark-compare=ID, or --bs-gate=PATH)"
        )
    ((path, by_name),) = runs.items()  # its machine was checked when pytest-benchmark loaded it
    benchmarks = [{**b, "fullname": name} for name, b in by_name.items()]
    samples_of(benchmarks, str(path))
    return str(path), benchmarks


def pytest_sessionstart(session: pytest.Session) -> None:
    """Read and check the baseline before anything runs (after --benchmark-compare loaded its
    run in pytest-benchmark's configure)."""
    config = session.config
    if config.getoption("--bs-gate") is None:
        return
    try:
        gate_rule(config)
        config.stash[_BASELINE] = _baseline(config)
    except GateError as e:
        message = str(e)
        raise pytest.UsageError(
            message if message.startswith("--bs-strict-machine") else f"--bs-gate: {message}"
        ) from None


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus) -> None:
    """Judge this run's cells (pytest-benchmark has just built them) against the baseline."""
    config = session.config
    if _BASELINE not in config.stash:
        return
    _, baseline = config.stash[_BASELINE]
    loaded = config._benchmarksession  # type: ignore[attr-defined]
    current = [b.as_dict(include_data=True) for b in loaded.benchmarks if b and not b.has_error]
    judgement = judge_runs(baseline, current, gate_rule(config))
    config.stash[_JUDGEMENT] = judgement
    if not judgement.passed and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _JUDGEMENT not in config.stash:
        return
    judgement = config.stash[_JUDGEMENT]
    source, _ = config.stash[_BASELINE]
    verdict = "PASSED" if judgement.passed else "FAILED"
    terminalreporter.write_sep(
        "=",
        f"Block-Shock regression gate {verdict}",
        red=not judgement.passed,
        green=judgement.passed,
    )
    terminalreporter.write_line(f"baseline: {source}")
    for line in judgement.lines():
        terminalreporter.write_line(line)
