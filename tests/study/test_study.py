"""The study runner driven as a user drives it: `python -m bench.study` in subprocesses, over a
test matrix of 27 cells that each take well under a second on a CPU."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from bench.study import integrity
from bench.study.manifest import CellRun, Manifest
from bench.study.plan import group_pending
from bench.study.preflight import (
    CELL_OVERHEAD_S,
    design_hash,
    energy_metered,
    policy_seconds,
    timing_policy,
)
from bench.study.progress import status_line
from bench.study.slices.classify import kind_from_text, should_retry
from bench.study.tables import study_tables
from common.errors import StudyError
from measure.cells.matrix import load_matrix
from tests.conftest import ROOT

MATRIX = str(ROOT / "tests" / "data" / "study_matrix.json")
FAIL = "phase0[dense_single-N128-B16-fp16-gaussian-ws1]"
HANG = "phase0[dense_single-N256-B64-fp32-gaussian-ws1]"  # last of its slice
PLANT = [
    "--pytest-arg=-p",
    "--pytest-arg=tests.study.study_plant",
    f"--pytest-arg=--plant-fail={FAIL}",
    f"--pytest-arg=--plant-hang={HANG}",
    "--cell-budget-s=5",
    "-k",
    "phase0 and ws1",
]


def study_cmd(out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "bench.study", "run", "--suite", "study", "--matrix", MATRIX,
            "--out", str(out), *args]  # fmt: skip


def run_study(out: Path, *args: str, rc: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        study_cmd(out, *args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == rc, run.stdout[-3000:] + run.stderr[-3000:]
    return run


def final_states(out: Path) -> dict:
    m = Manifest.load(out / "manifest.json")
    return {c.key: (c.state, c.failure_kind) for c in m.cells}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """One uninterrupted study of the 24 one-rank phase0 cells, a failing and a hanging one
    planted."""
    out = tmp_path_factory.mktemp("study") / "planted"
    run = run_study(out, *PLANT, rc=1)  # 1: the study completed with failed cells
    return out, run


def test_preflight_counts_estimates_and_hashes_the_design(planted):
    out, run = planted
    assert "24 cells x 1 cycle(s)" in run.stdout
    assert "by world_size: 1 24" in run.stdout
    assert re.search(r"estimated wall time: \d+s", run.stdout)
    m = Manifest.load(out / "manifest.json")
    assert len(m.design_hash) == 64 and m.estimate["total_s"] > 0


def test_timing_options_passed_to_pytest_reach_the_estimate_and_the_design_hash():
    """`--pytest-arg=--bs-min-time=2` makes every phase1 run longer: the estimate and the design
    hash must see the policy the runs will use, not the suite's alone."""
    base = timing_policy("study", MATRIX, [])
    args = ["-p", "tests.study.study_plant", "--bs-min-time=2", "--bs-warmup", "3", "--bs-warmup=4"]
    over = timing_policy("study", MATRIX, args)
    assert over == {**base, "min_time_s": 2.0, "warmup_s": 4.0}  # the last one given wins
    cells = list(load_matrix(MATRIX).suite("study").cells)
    timed = next(c for c in cells if c.phase == "phase1")
    assert policy_seconds(timed, over) - policy_seconds(timed, base) > 3 * (2.0 - 0.02)
    assert design_hash(cells, over, MATRIX) != design_hash(cells, base, MATRIX)


def test_the_estimate_charges_training_cells_their_measurements_and_energy_only_if_metered():
    """A phase3 cell makes five warmed-up measurements and an energy window: the estimate must
    not charge it the one second of an untimed cell; `--bs-energy=off` takes the window and its
    idle baseline off every timed cell and nothing off an untimed one."""
    t = timing_policy("study", MATRIX, [])
    cell = replace(load_matrix(MATRIX).suite("study").cells[0], world_size=1)
    secs = {p: policy_seconds(replace(cell, phase=p), t) for p in ("phase0", "phase1", "phase3")}
    one = t["warmup_s"] + max(t["min_time_s"], t["min_samples"] * t["sample_s"])
    assert secs["phase0"] == CELL_OVERHEAD_S
    assert secs["phase3"] >= CELL_OVERHEAD_S + 5 * one + t["energy_window_s"]
    assert secs["phase3"] > secs["phase1"] > secs["phase0"]
    split = policy_seconds(replace(cell, phase="phase1", world_size=2), t)
    assert split - secs["phase1"] == pytest.approx(2 * one)  # compute and collective apart
    args = ["--bs-energy", "on", "--bs-energy=off"]  # the last one given wins
    assert energy_metered([]) and not energy_metered(args)
    for phase, s in secs.items():
        off = policy_seconds(replace(cell, phase=phase), t, energy_metered(args))
        metered = t["energy_window_s"] + t["idle_s"] if phase != "phase0" else 0.0
        assert s - off == pytest.approx(metered)


def test_planted_failure_and_hang_are_classified_and_the_rest_pass(planted):
    out, run = planted
    # the live log names each failed cell by its pytest id (rich must not read "[...]" as markup)
    assert f"{FAIL} (cycle" in run.stderr and f"{HANG} (cycle" in run.stderr, run.stderr[-2000:]
    states = final_states(out)
    assert len(states) == 24
    assert states.pop(f"{FAIL}@1") == ("failed", "wrong_result")
    assert states.pop(f"{HANG}@1") == ("failed", "rank_hang")
    assert set(states.values()) == {("passed", None)}
    m = Manifest.load(out / "manifest.json")
    by_key = m.by_key()
    assert by_key[f"{HANG}@1"].attempts == 2  # a hang is retried once in a fresh process
    assert by_key[f"{FAIL}@1"].attempts == 1  # a wrong result is not retried
    assert m.status == "completed" and m.exitstatus == 1
    assert integrity.verify(out) == []
    assert "completed | 24/24" in status_line(m)


def test_killed_with_sigint_and_resumed_it_ends_like_an_uninterrupted_run(planted, tmp_path):
    out = tmp_path / "resumed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        study_cmd(out, *PLANT), cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            n = Manifest.load(out / "manifest.json").counts()
        except StudyError:  # not written yet
            n = {"passed": 0}
        if n["passed"] >= 3:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130, output[-3000:]
    m = Manifest.load(out / "manifest.json")
    assert m.status == "interrupted" and any(c.state == "pending" for c in m.cells)
    for p in out.rglob("*.json"):
        json.loads(p.read_text())  # every file parseable
    for p in out.rglob("*.jsonl"):
        [json.loads(line) for line in p.read_text().splitlines()]

    run_study(out, *PLANT, "--resume", rc=1)
    assert final_states(out) == final_states(planted[0])
    ends: dict[str, int] = {}
    for p in (out / "events").glob("*.rank0.jsonl"):
        for e in map(json.loads, p.read_text().splitlines()):
            if e["event"] == "end" and e["outcome"] == "passed":
                ends[e["nodeid"]] = ends.get(e["nodeid"], 0) + 1
    assert len(ends) == 22 and set(ends.values()) == {1}  # every passing cell ran exactly once
    assert integrity.verify(out) == []


def _layout(out: Path) -> list[str]:
    rel = [str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()]
    rel = [re.sub(r"\d{8}T\d{6}-\d+", "RUN", r) for r in rel if not r.startswith("submitit")]
    return sorted(rel)


def test_local_executor_makes_the_same_folder_as_in_process_with_cycles_and_spread(tmp_path):
    select = ["-k", "phase1", "--cycles", "2", "--gap-s", "0.3"]
    run_study(tmp_path / "inproc", *select)
    run_study(tmp_path / "local", *select, "--executor", "local")
    assert _layout(tmp_path / "inproc") == _layout(tmp_path / "local")
    assert "bench/c2-ws1-0002.json" in _layout(tmp_path / "local")
    for name in ("inproc", "local"):
        m = Manifest.load(tmp_path / name / "manifest.json")
        assert {(c.cycle, c.state) for c in m.cells} == {(1, "passed"), (2, "passed")}
        assert [c.gap_s for c in m.cells] == [0.0, 0.3]
        tables = study_tables(tmp_path / name)
        assert tables.failures == ()
        (row,) = tables.spread
        assert row.name == "phase1[dense_single-N128-B8-bf16-gaussian-ws1]"
        assert row.cycles == (1, 2) and row.spread is not None and row.spread >= 0
    (tmp_path / "local" / "bench" / "c1-ws1-0001.json").write_text("{}")
    with pytest.raises(StudyError, match="c1-ws1-0001.json: sha256 differs"):
        study_tables(tmp_path / "local")


def test_two_node_torchrun_on_one_machine_passes_its_cells(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    port = 20000 + os.getpid() % 20000
    nodes = [
        subprocess.Popen(
            study_cmd(
                tmp_path / f"node{rank}",
                "-k",
                "ws2",
                "--launcher",
                "torchrun",
                "--nnodes",
                "2",
                "--node-rank",
                str(rank),
                "--master-port",
                str(port),
            ),
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for rank in (0, 1)
    ]
    outputs = [p.communicate(timeout=240)[0] for p in nodes]
    for p, text in zip(nodes, outputs, strict=True):
        assert p.returncode == 0, text[-3000:]
    states = final_states(tmp_path / "node0")
    assert set(states) == {
        "phase0[dense_tp_row-N128-B8-bf16-gaussian-ws2]@1",
        "phase0[dense_tp_row-N128-B64-bf16-gaussian-ws2]@1",
    }
    assert set(states.values()) == {("passed", None)}
    (run,) = (tmp_path / "node0" / "runs").glob("*/*/run.json")
    assert len(list(run.parent.glob("cells/phase0/*.json"))) == 2  # rank 0 of 2 nodes wrote


def test_retry_policy_and_failure_text():
    assert should_retry("rank_hang", 1) and not should_retry("rank_hang", 2)
    assert not should_retry("out_of_memory", 1) and not should_retry("wrong_result", 1)
    assert kind_from_text("torch.OutOfMemoryError: CUDA out of memory") == "out_of_memory"
    assert kind_from_text("CorrectnessError: rel_fro 3e-2 over bound") == "wrong_result"
    assert kind_from_text("RankTimeout: rank(s) [1] did not answer") == "rank_hang"
    assert kind_from_text("RankError: rank 1 raised: ValueError") == "rank_error"


def test_cycles_interleave_and_retries_run_alone():
    runs = [
        CellRun(f"phase0[c{i}]", "phase0", "m", ws, cycle)
        for cycle in (1, 2)
        for i, ws in enumerate((1, 2, 1))
    ]
    runs[0].attempts = 1  # a hang to retry
    groups = group_pending(runs, "slice")
    assert [[(r.name, r.cycle) for r in g] for g in groups] == [
        [("phase0[c1]", 1)],
        [("phase0[c2]", 1)],
        [("phase0[c0]", 1)],
        [("phase0[c0]", 2), ("phase0[c2]", 2)],
        [("phase0[c1]", 2)],
    ]
