"""Test-only pytest plugin (loaded by the study tests with `-p tests.study.study_plant`): makes one
named cell fail its check, another hang and a third run slowly, so the study's classification,
watchdog and fault handling act on real pytest processes with no hook in the harness."""

import time
from pathlib import Path

import pytest

from common.errors import CorrectnessError


def pytest_addoption(parser):
    parser.addoption("--plant-fail", default=None, help="cell name that fails its check")
    parser.addoption("--plant-hang", default=None, help="cell name that sleeps until killed")
    parser.addoption(
        "--plant-slow",
        default=None,
        help="NAME:SECONDS:MARKER, a cell that sleeps that long, then runs, the first time "
        "only (it creates the file MARKER; later runs find it and do not sleep), so a test can "
        "kill its slice while it is in flight and the resumed study runs at full speed",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    if pyfuncitem.name == pyfuncitem.config.getoption("--plant-fail"):
        raise CorrectnessError(f"{pyfuncitem.name}: planted wrong result (rel_fro over bound)")
    if pyfuncitem.name == pyfuncitem.config.getoption("--plant-hang"):
        time.sleep(3600)
    slow = pyfuncitem.config.getoption("--plant-slow")
    if slow:
        name, seconds, marker = slow.rsplit(":", 2)
        if pyfuncitem.name == name and not Path(marker).exists():
            Path(marker).touch()
            time.sleep(float(seconds))
    return None
