"""`python -m pytest bench` stopped by the signals a scheduler or a user sends: SIGTERM (what
`timeout`, `scancel` and a job's time limit send), SIGHUP (a closed terminal) and SIGINT.

The run must stop its ranks, remove its temp files, mark run.json `interrupted` with the
signal, and exit 128 + the signal, like a shell reports a process killed by it; a signal that
lands where pytest cannot draw a traceback is sent again, and must not raise while pytest
already reports the stop.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.faults import procs

SELECT = "phase0 and ws2"  # 71 two-rank cells: rank workers are up, and the run goes on for a while


def _two_rank_run(tmp_path):
    """`pytest bench` over the two-rank cells, started in its own tagged environment and
    waited on until its first cell's record is written (rank workers are up then)."""
    env, tag = procs.tagged_env(tmp_path)
    results = tmp_path / "results"
    cmd = procs.python("-m", "pytest", "bench", "-p", "no:cacheprovider", "-q", "-k", SELECT,
                       "--bs-results", str(results), "--bs-rank-timeout", "600")  # fmt: skip
    proc = procs.spawn(cmd, env, tmp_path / "pytest.log")
    try:
        procs.wait_for(
            lambda: list(results.glob("*/cells/phase0/*.json")), 240, "the first ws2 cell's record"
        )
    except BaseException:
        procs.kill_all(tag)
        raise
    return env, tag, results, proc


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_stops_the_ranks_cleans_up_and_marks_the_run_interrupted(tmp_path, sig):
    env, tag, results, proc = _two_rank_run(tmp_path)
    try:
        ranks = [p for p in procs.tagged_pids(tag) if p != proc.pid]
        assert ranks, "expected rank worker processes while two-rank cells run"
        sent = time.monotonic()
        proc.send_signal(sig)
        try:
            rc = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            alive = procs.describe(procs.tagged_pids(tag))
            log = (tmp_path / "pytest.log").read_text()[-6000:]
            stacks = procs.dump_stacks(proc, tmp_path / "pytest.log")
            pytest.fail(
                f"no exit 60 s after {sig.name}; alive:\n{alive}\nlog:\n{log}\nstacks:\n{stacks}"
            )
        left = procs.wait_gone(tag, max(0.0, 15 - (time.monotonic() - sent)))
        log = (tmp_path / "pytest.log").read_text()[-3000:]
        assert not left, f"alive 15 s after {sig.name}:\n{procs.describe(left)}\n{log}"
        assert rc == 128 + sig, f"exit code {rc}, expected {128 + sig} for {sig.name}\n{log}"
        (run_json,) = results.glob("*/run.json")
        doc = json.loads(run_json.read_text())
        assert doc["status"] == "interrupted", doc["status"]
        assert sig.name in json.dumps(doc), "run.json must name the signal that stopped the run"
        leftovers = sorted(p.name for p in Path(env["TMPDIR"]).iterdir())
        assert not leftovers, f"temp files left behind: {leftovers}"
    finally:
        procs.kill_all(tag)


def test_sigkill_of_pytest_takes_its_ranks_down_and_a_later_run_removes_its_stack_files(
    tmp_path,
):
    """SIGKILL runs no clean-up: the ranks still die with their pytest (the kernel's
    parent-death signal), run.json says `running` (a crash, as README says), and the stack
    folder it could not remove is removed by the next run that starts a rank pool."""
    env, tag, results, proc = _two_rank_run(tmp_path)
    try:
        proc.kill()
        assert proc.wait(timeout=60) == -signal.SIGKILL
        left = procs.wait_gone(tag, 15)
        assert not left, f"alive 15 s after SIGKILL:\n{procs.describe(left)}"
        (run_json,) = results.glob("*/run.json")
        assert json.loads(run_json.read_text())["status"] == "running"
        stale = [p.name for p in Path(env["TMPDIR"]).iterdir()]
        assert any(name.startswith("bs-stacks-") for name in stale), stale
        again = procs.spawn(
            procs.python("-m", "pytest", "bench", "-p", "no:cacheprovider", "-q",
                         "-k", "phase0 and dense_tp_row and N128 and B8 and bf16",
                         "--bs-results", str(results)),
            env, tmp_path / "again.log",
        )  # fmt: skip
        assert again.wait(timeout=300) == 0, (tmp_path / "again.log").read_text()[-3000:]
        leftovers = sorted(p.name for p in Path(env["TMPDIR"]).iterdir())
        assert not leftovers, f"temp files left behind: {leftovers}"
    finally:
        procs.kill_all(tag)


RETRY_PLANT = {
    "pytest.ini": "[pytest]\n",
    "conftest.py": '''
import os
import time

pytest_plugins = ["measure.plugin"]


def pytest_configure(config):
    import measure.plugin.signals

    if "PLANT_RETRY_S" in os.environ:  # to land the signal sent again in the report below
        measure.plugin.signals.RETRY_S = float(os.environ["PLANT_RETRY_S"])


def pytest_keyboard_interrupt(excinfo):
    """pytest reporting the interruption, as slowly as PLANT_SLOW_REPORT_S says."""
    deadline = time.monotonic() + float(os.environ.get("PLANT_SLOW_REPORT_S", "0"))
    while time.monotonic() < deadline:
        time.sleep(0.05)
''',
    "test_plant.py": '''
import os
import signal
import time


def _no_line_numbers(fn):
    """fn with a location table that gives no instruction a line (3.11's code 15: none), as
    some generated frames have: pytest cannot draw a traceback through such a frame."""
    units = len(fn.__code__.co_code) // 2
    table = bytes([0xFF] * (units // 8) + ([0xF8 | (units % 8 - 1)] if units % 8 else []))
    fn.__code__ = fn.__code__.replace(co_linetable=table)
    return fn


@_no_line_numbers
def _stopped_here():
    os.kill(os.getpid(), signal.SIGTERM)
    start = time.monotonic()
    while time.monotonic() - start < 0.2:
        pass


def test_stopped_in_a_frame_with_no_line_number():
    _stopped_here()


def test_stopped_there_then_busy_for_a_minute():
    _stopped_here()
    start = time.monotonic()
    while time.monotonic() - start < 60:  # a long cell, in frames pytest can draw
        time.sleep(0.01)
''',
}


def _run_plant(
    tmp_path, select: str, **env_extra: str
) -> tuple[subprocess.CompletedProcess, float]:
    for name, text in RETRY_PLANT.items():
        (tmp_path / name).write_text(text)
    env, tag = procs.tagged_env(tmp_path, **env_extra)
    cmd = procs.python("-m", "pytest", "-p", "no:cacheprovider", "-q", "-k", select)
    start = time.monotonic()
    try:
        run = subprocess.run(
            cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
        )
    finally:
        procs.kill_all(tag)
    return run, time.monotonic() - start


def test_a_stop_signal_sent_again_while_pytest_reports_the_stop_raises_nothing(tmp_path):
    """A SIGTERM landing in a frame with no line number is sent again RETRY_S later; pytest has
    meanwhile stopped at the cell boundary (shouldstop) and is reporting its Interrupted. The
    signal sent again must not raise there: it would escape pytest, exit 1 with a traceback
    (seen under load: 22 cells, then exit 1)."""
    run, _ = _run_plant(tmp_path, "no_line_number", PLANT_RETRY_S="1.0", PLANT_SLOW_REPORT_S="3.0")
    out = run.stdout + run.stderr
    assert run.returncode == 128 + signal.SIGTERM, out[-3000:]
    assert "Traceback" not in out and "stopped by SIGTERM" in out, out[-3000:]


def test_a_stop_that_landed_in_a_frame_with_no_line_number_still_stops_a_long_cell(tmp_path):
    """The signal sent again raises in the next frame pytest can draw: the run stops within
    seconds, not at the end of the cell in flight (a minute here), as shouldstop alone would."""
    run, took_s = _run_plant(tmp_path, "busy")
    out = run.stdout + run.stderr
    assert run.returncode == 128 + signal.SIGTERM, out[-3000:]
    assert "RunStopped: stopped by SIGTERM" in out and "Traceback" not in out, out[-3000:]
    assert took_s < 45, f"stopped after {took_s:.0f} s: the cell ran to its end\n{out[-3000:]}"
