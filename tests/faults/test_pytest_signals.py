"""`python -m pytest bench` stopped by the signals a scheduler or a user sends: SIGTERM (what
`timeout`, `scancel` and a job's time limit send), SIGHUP (a closed terminal) and SIGINT.

The run must stop its ranks, remove its temp files, mark run.json `interrupted` with the
signal, and exit 128 + the signal, like a shell reports a process killed by it.
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


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_stops_the_ranks_cleans_up_and_marks_the_run_interrupted(tmp_path, sig):
    env, tag = procs.tagged_env(tmp_path)
    results = tmp_path / "results"
    cmd = procs.python("-m", "pytest", "bench", "-p", "no:cacheprovider", "-q", "-k", SELECT,
                       "--bs-results", str(results), "--bs-rank-timeout", "600")  # fmt: skip
    proc = procs.spawn(cmd, env, tmp_path / "pytest.log")
    try:
        procs.wait_for(
            lambda: list(results.glob("*/cells/phase0/*.json")), 240, "the first ws2 cell's record"
        )
        ranks = [p for p in procs.tagged_pids(tag) if p != proc.pid]
        assert ranks, "expected rank worker processes while two-rank cells run"
        sent = time.monotonic()
        proc.send_signal(sig)
        try:
            rc = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            alive = procs.describe(procs.tagged_pids(tag))
            log = (tmp_path / "pytest.log").read_text()[-6000:]
            pytest.fail(f"no exit 60 s after {sig.name}; alive:\n{alive}\nlog:\n{log}")
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
    env, tag = procs.tagged_env(tmp_path)
    results = tmp_path / "results"
    cmd = procs.python("-m", "pytest", "bench", "-p", "no:cacheprovider", "-q", "-k", SELECT,
                       "--bs-results", str(results), "--bs-rank-timeout", "600")  # fmt: skip
    proc = procs.spawn(cmd, env, tmp_path / "pytest.log")
    try:
        procs.wait_for(
            lambda: list(results.glob("*/cells/phase0/*.json")), 240, "the first ws2 cell's record"
        )
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
