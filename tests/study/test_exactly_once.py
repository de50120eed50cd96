"""Every cell run recorded exactly once, and a killed job classified by its real cause.

`verify` is driven on a real study's folder, edited the ways a kill or a second runner would
leave it; job ends are read through submitit's own objects: a local job's controller killed for
real, SLURM states through submitit's SlurmJob reading `sacct` (a stand-in script on PATH that
prints sacct's own output format: no SLURM cluster is reachable here).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench.study import integrity
from bench.study.manifest import Manifest, SliceRun
from bench.study.slices.classify import local_job_end, should_retry, slurm_job_end
from bench.study.slices.execute import timed_out
from bench.study.slices.executors import SubmititExecutor
from tests.conftest import ROOT

MATRIX = str(ROOT / "tests" / "data" / "study_matrix.json")
SELECT = "phase0 and ws1 and N128 and B16"  # three one-rank cells


def study(out: Path, *args: str, rc: int = 0) -> subprocess.CompletedProcess:
    run = subprocess.run(
        [sys.executable, "-m", "bench.study", *args],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert run.returncode == rc, run.stdout[-3000:] + run.stderr[-3000:]
    return run


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("once") / "study"
    study(out, "run", "--suite", "study", "--matrix", MATRIX, "--out", str(out), "-k", SELECT,
          "--cycles", "2")  # fmt: skip
    return out


def test_a_finished_study_is_completed_and_verified(finished):
    m = Manifest.load(finished / "manifest.json")
    assert m.status == "completed" and m.problems == []
    said = study(finished, "verify", str(finished)).stdout
    assert "every cell run has exactly one record" in said
    for record in finished.glob("runs/*/*/cells/*/*.json"):  # each says which attempt wrote it
        slice_id = record.relative_to(finished / "runs").parts[0]
        assert json.loads(record.read_text())["attempt"]["id"] == slice_id


def test_verify_names_every_duplicate_and_missing_cell(finished, tmp_path):
    out = tmp_path / "edited"
    shutil.copytree(finished, out)
    m = Manifest.load(out / "manifest.json")
    first, second = sorted(m.slices)[:2]  # cycle 1's slice and cycle 2's
    assert (m.slices[first].cycle, m.slices[second].cycle) == (1, 2)
    records = sorted(out.glob(f"runs/{first}/*/cells/phase0/*.json"))
    twice, gone = records[0], records[1]
    # a copy of a cycle-1 record inside another cycle-1 slice: what a second runner leaves
    (run_dir,) = (out / "runs" / first).glob("*/cells")
    copy = out / "runs" / "c1-ws1-0099" / run_dir.parent.name / "cells" / "phase0" / twice.name
    copy.parent.mkdir(parents=True)
    shutil.copy(twice, copy)
    m.slices["c1-ws1-0099"] = SliceRun("c1-ws1-0099", 1, 1, [], [], state="done")
    m.save()
    gone.unlink()
    integrity.write_sidecars(out, "c1-ws1-0099")
    integrity.write_sidecars(out, first)
    run = study(out, "verify", "--out", str(out), rc=1)
    name_twice = json.loads(twice.read_text())["name"]
    name_gone = f"phase0[{gone.stem}]"
    assert f"duplicate: {name_twice} (cycle 1) has a record in each of {first}, c1-ws1-0099" in (
        run.stdout
    )
    assert f"{copy.relative_to(out)}: written by attempt '{first}', not c1-ws1-0099" in run.stdout
    assert f"missing: {name_gone} (cycle 1) passed without a record" in run.stdout
    assert f"{name_gone} (cycle 2)" not in run.stdout  # its cycle-2 record is still there


def test_a_local_job_killed_by_a_signal_is_named_by_it():
    """The controller's own exit status, as the LocalJob's Popen holds it."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    proc.send_signal(signal.SIGKILL)
    kind, cause = local_job_end(proc.wait())
    assert (kind, cause) == ("killed", "the job was killed by signal 9 (SIGKILL)")
    assert should_retry(kind, 1) and not should_retry(kind, 2)
    done = subprocess.run([sys.executable, "-c", "raise SystemExit(3)"]).returncode
    assert local_job_end(done) == ("rank_crash", "the job exited with code 3")
    assert local_job_end(0) is None and local_job_end(None) is None


SACCT = """JobID|State|NodeList
{job}_0|{state}|node17
{job}_0.batch|CANCELLED|node17
{job}_0.0|CANCELLED by 0|node17
"""


def sacct_saying(tmp_path: Path, job: str, state: str) -> Path:
    """A folder with an `sacct` that prints, in sacct's --parsable2 format, `state` for job
    array task `job`_0 (what submitit's SlurmInfoWatcher runs and parses)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sacct = bin_dir / "sacct"
    sacct.write_text("#!/bin/sh\ncat <<'EOF'\n" + SACCT.format(job=job, state=state) + "EOF\n")
    sacct.chmod(0o755)
    return bin_dir


@pytest.mark.parametrize(
    "job_id, state, kind, retries",
    [
        ("4001", "TIMEOUT", "time_limit", 1),
        ("4002", "PREEMPTED", "preempted", 3),
        ("4003", "OUT_OF_MEMORY", "out_of_memory", 0),
        ("4004", "CANCELLED by 1234", "killed", 1),
        ("4005", "NODE_FAIL", "rank_crash", 1),
        ("4006", "FAILED", "rank_crash", 1),
        ("4007", "COMPLETED", None, 0),
    ],
)
def test_slurm_job_states_read_through_submitit_are_classified(
    tmp_path, job_id, state, kind, retries
):
    """One job id per case: submitit's watcher caches the states of finished jobs."""
    submitit = pytest.importorskip("submitit")
    bin_dir = sacct_saying(tmp_path, job_id, state)
    path = os.environ["PATH"]
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{path}"
    try:
        job = submitit.SlurmJob(tmp_path, f"{job_id}_0")
        assert job.state == state
        ended = SubmititExecutor("slurm")._ended(job)
    finally:
        os.environ["PATH"] = path
    if kind is None:
        assert ended is None
        return
    assert ended == (kind, slurm_job_end(state)[1])
    assert state in ended[1]
    assert [should_retry(kind, n) for n in (1, 2, 3, 4)] == [n <= retries for n in (1, 2, 3, 4)]


def test_collect_classifies_a_slurm_job_that_hit_its_time_limit_and_retries_its_cell(
    finished, tmp_path
):
    """A --no-wait SLURM study whose second job SLURM ended at its time limit, under its last
    cell, with no result written: `collect` asks SLURM (through submitit; sacct stood in for),
    charges that cell `time_limit`, retries it, and sets its record apart."""
    out = tmp_path / "slurm"
    shutil.copytree(finished, out)
    m = Manifest.load(out / "manifest.json")
    sid = sorted(m.slices)[1]
    m.options["executor"], m.status = "slurm", "submitted"
    m.slices[sid].state, m.slices[sid].job_id = "submitted", "5001_0"
    for r in m.cells:
        if r.slice == sid:
            r.state, r.slice, r.attempts = "running", None, 0
    m.save()
    (out / "events" / f"{sid}.result.json").unlink()
    events = out / "events" / f"{sid}.rank0.jsonl"
    lines = events.read_text().splitlines()
    ends = [i for i, line in enumerate(lines) if json.loads(line)["event"] in ("end", "finish")]
    last = json.loads(lines[ends[-2]])["nodeid"].rsplit("::", 1)[1]  # the last cell to end
    events.write_text("\n".join(lines[: ends[-2]]) + "\n")  # it never did; no finish either
    bin_dir = sacct_saying(tmp_path, "5001", "TIMEOUT")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }
    collect = [sys.executable, "-m", "bench.study", "collect", "--out", str(out)]
    run = subprocess.run(collect, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    m = Manifest.load(out / "manifest.json")
    assert m.slices[sid].state == "killed" and "time limit" in m.slices[sid].note
    by_key = m.by_key()
    retried = by_key[f"{last}@2"]
    assert (retried.state, retried.failure_kind, retried.attempts) == ("pending", "time_limit", 1)
    assert "SLURM state TIMEOUT" in retried.reason
    others = [r for r in m.cells if r.cycle == 2 and r.name != last]
    assert {r.state for r in others} == {"passed"} and len(others) == 2
    cell_id = last[last.index("[") + 1 : -1]
    assert list(out.glob(f"superseded/{sid}/*/cells/phase0/{cell_id}.json"))
    assert not list(out.glob(f"runs/{sid}/*/cells/phase0/{cell_id}.json"))
    assert integrity.verify(out) == []
    assert m.status == "interrupted" and "run again with --resume" in run.stdout


def test_sigusr2_means_the_time_limit_late_in_a_job_and_preemption_early():
    """submitit's rule: past 80% of the limit, or within 10 minutes of it."""
    assert timed_out(50 * 60, 60 * 60) and not timed_out(40 * 60, 60 * 60)
    assert timed_out(5, 60)  # a one-minute job is always within 10 minutes of its limit
    assert not timed_out(10**6, None)
