"""`python -m pytest bench` stopped by the signals a scheduler or a user sends: SIGTERM (what
`timeout`, `scancel` and a job's time limit send), SIGHUP (a closed terminal) and SIGINT.

The run must stop its ranks, remove its temp files, mark run.json `interrupted` with the
signal, and exit 128 + the signal, like a shell reports a process killed by it.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.faults import procs

SELECT = "phase1 and ws2"  # two-rank cells: rank worker processes are up while it runs


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_stops_the_ranks_cleans_up_and_marks_the_run_interrupted(tmp_path, sig):
    env, tag = procs.tagged_env(tmp_path)
    results = tmp_path / "results"
    cmd = procs.python("-m", "pytest", "bench", "-p", "no:cacheprovider", "-q", "-k", SELECT,
                       "--bs-results", str(results), "--bs-rank-timeout", "600")  # fmt: skip
    proc = procs.spawn(cmd, env, tmp_path / "pytest.log")
    try:
        procs.wait_for(
            lambda: list(results.glob("*/cells/phase1/*.json")), 240, "the first ws2 cell's record"
        )
        ranks = [p for p in procs.tagged_pids(tag) if p != proc.pid]
        assert ranks, "expected rank worker processes while two-rank cells run"
        sent = time.monotonic()
        proc.send_signal(sig)
        rc = proc.wait(timeout=60)
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
