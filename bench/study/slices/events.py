"""pytest plugin loaded into each slice's pytest (`-p bench.study.slices.events`): cell starts and
ends.

The study process must know which cell is running (its watchdog classifies a hang by cell) and
each cell's outcome the moment it ends, without importing pytest. This plugin appends one JSON
line per event to `--bs-study-events PATH` (per rank: `.rank<RANK>` is added under torchrun),
flushed at once, so another process can follow it while the slice runs. A cell's `call` event
marks the end of its set-up (rank pools start there), so the watchdog can give set-up and the
cell's own work separate budgets.
"""

from __future__ import annotations

import json
import os
import time


def pytest_addoption(parser):
    parser.getgroup("block-shock").addoption(
        "--bs-study-events",
        default=None,
        help="file the study runner follows: one JSON line per cell start and outcome "
        "(default: none; written by bench.study)",
    )


def _message(report) -> str:
    if report.passed:
        return ""
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])  # (path, line, "Skipped: reason")
    return report.longreprtext[-4000:]


class _EventLog:
    def __init__(self, path: str):
        rank = int(os.environ.get("RANK", "0"))
        self._f = open(f"{path}.rank{rank}.jsonl", "a", buffering=1)  # noqa: SIM115
        self._outcome: dict[str, tuple[str, str]] = {}

    def emit(self, event: str, **fields) -> None:
        self._f.write(json.dumps({"event": event, "t": time.time(), **fields}) + "\n")
        self._f.flush()

    def pytest_runtest_logstart(self, nodeid, location):
        self.emit("start", nodeid=nodeid)

    def pytest_runtest_logreport(self, report):
        if report.when == "setup" and report.passed:
            self.emit("call", nodeid=report.nodeid)  # fixtures (rank pools) are up
        # A cell's outcome: its call phase, or the setup/teardown phase that failed or skipped.
        if report.when == "call" or report.outcome != "passed":
            prev = self._outcome.get(report.nodeid)
            if prev is None or prev[0] == "passed":
                message = _message(report)
                outcome = report.outcome
                if report.when != "call" and outcome == "failed":
                    outcome = "error"
                self._outcome[report.nodeid] = (outcome, message)

    def pytest_runtest_logfinish(self, nodeid, location):
        outcome, message = self._outcome.pop(nodeid, ("error", "no outcome reported"))
        self.emit("end", nodeid=nodeid, outcome=outcome, message=message)

    def pytest_sessionfinish(self, session, exitstatus):
        self.emit("finish", exitstatus=int(exitstatus))
        self._f.close()


def pytest_configure(config):
    path = config.getoption("--bs-study-events")
    if path:
        config.pluginmanager.register(_EventLog(path), "bs-study-events")
