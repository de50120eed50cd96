"""Test-only pytest plugin (loaded by the study tests with `-p tests.study.study_plant`): makes one
named cell fail its check and another hang, so the study's classification and watchdog act on
real pytest processes with no hook in the harness."""

import time

import pytest

from common.errors import CorrectnessError


def pytest_addoption(parser):
    parser.addoption("--plant-fail", default=None, help="cell name that fails its check")
    parser.addoption("--plant-hang", default=None, help="cell name that sleeps until killed")


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    if pyfuncitem.name == pyfuncitem.config.getoption("--plant-fail"):
        raise CorrectnessError(f"{pyfuncitem.name}: planted wrong result (rel_fro over bound)")
    if pyfuncitem.name == pyfuncitem.config.getoption("--plant-hang"):
        time.sleep(3600)
    return None
