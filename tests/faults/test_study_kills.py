"""A study killed the ways a cluster kills it, then resumed: no orphan, every cell exactly once.

Each test drives `python -m bench.study` in real processes over the test matrix's 24 one-rank
phase0 cells; one of them (SLOW) is planted to sleep on its first run, so a signal lands while
a slice is in flight.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.faults import procs

MATRIX = str(ROOT / "tests" / "data" / "study_matrix.json")
SLOW = "phase0[dense_single-N128-B64-bf16-gaussian-ws1]"  # the 10th of 24 in the ws1 slice
SLOW_S = 60  # longer than the 30 s an orphan may live: a slice that outlives its runner shows


def plant(tmp: Path) -> list[str]:
    """The arguments that plant SLOW (slow on its first run only) into a study's slices."""
    return [
        "--pytest-arg=-p",
        "--pytest-arg=tests.study.study_plant",
        f"--pytest-arg=--plant-slow={SLOW}:{SLOW_S}:{tmp / 'slow-once'}",
        "-k",
        "phase0 and ws1",
    ]


N_CELLS = 24


def study_cmd(out: Path, *extra: str) -> list[str]:
    return procs.python("-m", "bench.study", "run", "--suite", "study", "--matrix", MATRIX,
                        "--out", str(out), *plant(out.parent), *extra)  # fmt: skip


@pytest.fixture
def tagged(tmp_path):
    env, tag = procs.tagged_env(tmp_path)
    yield env, tag
    procs.kill_all(tag)


def record_names(study: Path) -> collections.Counter:
    """How many cell records of each cell the study's run folders hold (a killed attempt's
    records, if the study keeps them, must be kept apart from these)."""
    names: collections.Counter = collections.Counter()
    for f in (study / "runs").glob("*/*/cells/*/*.json"):
        names[json.loads(f.read_text())["name"]] += 1
    return names


def assert_exactly_once(study: Path, env: dict) -> None:
    names = record_names(study)
    twice = {n: c for n, c in names.items() if c != 1}
    assert not twice, f"cells with other than one record: {twice}"
    assert len(names) == N_CELLS, f"{len(names)} cells have records, {N_CELLS} were selected"
    verify = subprocess.run(
        procs.python("-m", "bench.study", "verify", "--out", str(study)),
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
    manifest = json.loads((study / "manifest.json").read_text())
    assert manifest["status"] == "completed"


def assert_report_builds(study: Path, out: Path, env: dict) -> None:
    build = subprocess.run(
        procs.python("-m", "reports", "build", str(study), "--out", str(out)),
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]


def test_runner_sigkilled_mid_slice_leaves_no_orphan_and_resume_runs_each_cell_once(
    tmp_path, tagged
):
    env, tag = tagged
    out = tmp_path / "study"
    runner = procs.spawn(study_cmd(out), env, tmp_path / "runner.log")
    procs.wait_for(lambda: SLOW in procs.started_cells(out), 180, f"{SLOW} to start")
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait()
    left = procs.wait_gone(tag, 30)
    assert not left, "processes of the killed study still run after 30 s:\n" + procs.describe(left)
    resume = subprocess.run(
        study_cmd(out, "--resume"), cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert resume.returncode == 0, resume.stdout[-3000:] + resume.stderr[-3000:]
    assert f"from the study runner PID {runner.pid}" in resume.stdout  # it took over, and said so
    assert_exactly_once(out, env)
    killed = json.loads((out / "manifest.json").read_text())["slices"]["c1-ws1-0001"]
    assert killed["state"] == "interrupted" and f"PID {runner.pid}" in killed["note"], killed
    assert_report_builds(out, tmp_path / "report", env)


def test_local_executor_job_sigkilled_is_classified_and_retried_without_duplicates(
    tmp_path, tagged
):
    env, tag = tagged
    out = tmp_path / "study"
    runner = procs.spawn(study_cmd(out, "--executor", "local"), env, tmp_path / "runner.log")
    procs.wait_for(lambda: SLOW in procs.started_cells(out), 240, f"{SLOW} to start")

    def job_pid():
        """The job as its scheduler sees it: submitit's local controller (its task, the
        slice and the ranks run under it), not whichever process of the job comes first."""
        for pid in procs.tagged_pids(tag):
            if "submitit.local._local" in procs.describe([pid]):
                return pid
        return None

    os.kill(procs.wait_for(job_pid, 10, "the submitit job's controller"), signal.SIGKILL)
    assert runner.wait(timeout=300) in (0, 1), (tmp_path / "runner.log").read_text()[-3000:]
    left = procs.wait_gone(tag, 30)
    assert not left, "processes of the study still run after it ended:\n" + procs.describe(left)
    manifest = json.loads((out / "manifest.json").read_text())
    slow = next(c for c in manifest["cells"] if c["name"] == SLOW)
    reasons = json.dumps(manifest)
    assert "exit None" not in reasons, "a killed job's cause must be named, not 'exit None'"
    assert "SIGKILL" in reasons or "signal 9" in reasons, reasons[-2000:]
    assert slow["state"] == "passed", slow
    assert_exactly_once(out, env)


def test_a_second_runner_is_refused_while_the_first_owns_the_study(tmp_path, tagged):
    env, tag = tagged
    out = tmp_path / "study"
    first = procs.spawn(study_cmd(out), env, tmp_path / "first.log")
    procs.wait_for(lambda: SLOW in procs.started_cells(out), 180, f"{SLOW} to start")
    second = subprocess.run(
        study_cmd(out, "--resume"), cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    said = second.stdout + second.stderr
    assert second.returncode != 0, said
    assert str(first.pid) in said and socket.gethostname() in said, said
    assert "Traceback" not in said, said
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert not procs.wait_gone(tag, 30)
    taken = subprocess.run(
        study_cmd(out, "--resume"), cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    said = taken.stdout + taken.stderr
    assert taken.returncode == 0, said[-3000:]
    assert str(first.pid) in said, f"taking over a dead owner's lock must say so: {said[-2000:]}"
    assert_exactly_once(out, env)


def test_sigterm_to_the_runner_stops_its_slice_like_ctrl_c(tmp_path, tagged):
    """What `timeout` or a scheduler sends the runner (SIGHUP takes the same path, SIGINT is
    tests/study's): its slice is stopped (and closes its run as stopped by SIGTERM), the study is
    interrupted with the signal, the runner exits 128 + the signal, and nothing of it is left."""
    env, tag = tagged
    sig = signal.SIGTERM
    out = tmp_path / "study"
    runner = procs.spawn(study_cmd(out), env, tmp_path / "runner.log")
    procs.wait_for(lambda: SLOW in procs.started_cells(out), 180, f"{SLOW} to start")
    runner.send_signal(sig)
    rc = runner.wait(timeout=60)
    left = procs.wait_gone(tag, 15)
    log = (tmp_path / "runner.log").read_text()[-3000:]
    assert not left, f"alive 15 s after {sig.name}:\n{procs.describe(left)}\n{log}"
    assert rc == 128 + sig, f"exit code {rc}, expected {128 + sig}\n{log}"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["stopped_by"] == sig.name
    slow = next(c for c in manifest["cells"] if c["name"] == SLOW)
    assert slow["state"] == "pending" and slow["attempts"] == 0  # not charged: the user's stop
    (run_json,) = out.glob("runs/*/*/run.json")
    assert json.loads(run_json.read_text())["stopped_by"] == "SIGTERM"  # the slice's own stop


def test_resume_is_refused_while_a_process_of_the_study_still_runs(tmp_path, tagged):
    """A process an earlier runner started (here a stand-in: a real process carrying the
    study in its environment, as every process of a study run does) blocks --resume, named."""
    env, tag = tagged
    out = tmp_path / "study"
    out.mkdir()
    left = procs.spawn(procs.python("-c", "import time; time.sleep(120)"),
                       {**env, "BS_STUDY": str(out)}, tmp_path / "left.log")  # fmt: skip
    refused = subprocess.run(
        study_cmd(out, "--resume"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    said = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "Traceback" not in said, said[-2000:]
    assert f"PID {left.pid}" in said, said[-2000:]
    left.kill()
    left.wait()
