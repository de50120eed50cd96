"""The regression gate on real runs of the harness: unchanged runs pass it, a cell planted to do
20% more work fails it, and `--bs-gate` fails the pytest run that regressed.

Runs that are compared are started together and time each cell side by side
(tests.measure.gate_sync), so they see the same load from whatever else shares the machine:
on a shared 2-core CPU, runs taken minutes apart differ by more than a 20% slowdown (README,
"History and gates", has those A/A figures). The cells are fp32 dense products at N=256, B=64,
where the time of a CPU GEMM grows in step with its work (at bf16 and N=256, 20% more rows cost
only 7-11% more time), timed in short samples by one thread per rank.
"""

import itertools
import json
import os
import shutil
import subprocess
import sys
from importlib import metadata

import pytest
import torch

from measure.cells.matrix import DEFAULT_PATH
from measure.gate.regression import GateRule, judge_runs
from tests.conftest import ROOT

PLANTED = "bench/test_phase1.py::phase1[dense_single-N256-B64-fp32-gaussian-ws1]"
CONTROL = "bench/test_phase1.py::phase1[dense_half-N256-B64-fp32-gaussian-ws1]"
UNCHANGED = 5  # runs of unchanged code: 10 A/A pairs among them
GATE_SUITE = {
    "description": "Two one-rank fp32 cells in short samples, for the gate's tests.",
    "timing": {
        "min_samples": 100,
        "min_time_s": 0.5,
        "max_time_s": 3.0,
        "max_noise": 1e-9,  # every measurement runs to its 3 s cap: the runs stay in step
        "sample_s": 1e-4,
        "warmup_s": 0.2,
        "energy_window_s": 0.2,
        "idle_s": 0.1,
    },
    "blocks": [
        {
            "phase": ["phase1"],
            "method": ["dense_single", "dense_half"],
            "world_size": [1],
            "N": [256],
            "B": [64],
            "dtype": ["fp32"],
        }
    ],
}


def _side_by_side(
    folder, runs: dict[str, tuple[str, ...]]
) -> dict[str, subprocess.CompletedProcess]:
    """Start one pytest run per entry (its extra arguments) at once, synced cell by cell, from
    `folder` (so pytest-benchmark's storage is there); wait for all."""
    doc = json.loads(DEFAULT_PATH.read_text())
    doc["suites"] = {"gate": GATE_SUITE}
    matrix = folder / "matrix.json"
    matrix.write_text(json.dumps(doc))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = {}
    for name, extra in runs.items():
        cmd = [
            sys.executable, "-m", "pytest", str(ROOT / "bench"), "-q", "-p", "no:cacheprovider",
            "--bs-matrix", str(matrix), "--suite", "gate", "--bs-energy", "off",
            "--bs-results", str(folder / "results"), f"--benchmark-json={folder / name}.json",
            "-p", "tests.measure.gate_sync", "--gate-sync-dir", str(folder / "sync"),
            "--gate-sync-parties", str(len(runs)), *extra,
        ]  # fmt: skip
        procs[name] = subprocess.Popen(
            cmd, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    done = {}
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=900)
        done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, "")
    return done


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Five unchanged runs and one with tests.measure.planted_slowdown, side by side."""
    folder = tmp_path_factory.mktemp("gate_runs")
    plan = {f"unchanged{i}": () for i in range(UNCHANGED)}
    plan["planted"] = ("-p", "tests.measure.planted_slowdown")
    done = _side_by_side(folder, plan)
    for name, run in done.items():
        assert run.returncode == 0 and "2 passed" in run.stdout, f"{name}:\n{run.stdout[-3000:]}"
    return folder, {name: json.loads((folder / f"{name}.json").read_text()) for name in plan}


def test_unchanged_runs_pass_the_gate_in_10_of_10_a_a_comparisons(runs):
    _, docs = runs
    pairs = list(itertools.combinations([f"unchanged{i}" for i in range(UNCHANGED)], 2))
    assert len(pairs) == 10
    for old, new in pairs:
        j = judge_runs(docs[old]["benchmarks"], docs[new]["benchmarks"], GateRule())
        assert len(j.judged) == 2 and j.passed, (old, new, j.lines())


def test_the_cell_planted_20_percent_more_work_is_flagged_against_every_unchanged_run(runs):
    _, docs = runs
    for i in range(UNCHANGED):
        j = judge_runs(
            docs[f"unchanged{i}"]["benchmarks"], docs["planted"]["benchmarks"], GateRule()
        )
        assert [v.name for v in j.regressed] == [PLANTED], j.lines()
        assert not j.passed
        (control,) = [v for v in j.judged if v.name == CONTROL]
        assert not control.regressed


def test_saved_runs_carry_the_machine_and_say_there_is_no_gpu(runs):
    _, docs = runs
    info = docs["unchanged0"]["machine_info"]["block_shock_bench"]
    assert info["device_type"] == "cpu" and info["gpu_count"] == 0 and info["gpu_models"] == []
    assert info["gpu"] == "none: torch sees no CUDA device"
    assert info["power_limits_w"] == [] and info["driver"] is None  # nothing made up
    assert info["torch"] == torch.__version__ and info["cuda"] == torch.version.cuda
    assert info["triton"] == metadata.version("triton")
    assert info["cpu_count"] == len(os.sched_getaffinity(0)) and info["cpu_model"]
    assert all(d["machine_info"]["block_shock_bench"] == info for d in docs.values())


def test_bs_gate_fails_the_run_that_regressed_and_passes_the_one_that_did_not(runs, tmp_path):
    """Against an earlier run, so with a minimum effect of 50%: runs minutes apart drift by
    tens of percent here; the planted cell does three times the work."""
    folder, _ = runs
    baseline = folder / "unchanged0.json"
    saved = tmp_path / "results" / "benchmarks" / "Some-Machine"
    saved.mkdir(parents=True)
    shutil.copy(baseline, saved / "0001_baseline.json")  # as --benchmark-autosave keeps it
    done = _side_by_side(
        tmp_path,
        {
            "slower": ("-p", "tests.measure.planted_slowdown", "--plant-extra-work=2",
                       f"--bs-gate={baseline}", "--bs-gate-min-effect=0.5"),
            "same": ("--benchmark-compare=*/0001", "--bs-gate", "--bs-gate-min-effect=0.5"),
        },
    )  # fmt: skip
    slower, same = done["slower"], done["same"]
    assert slower.returncode == 1, slower.stdout[-3000:]
    assert "2 passed" in slower.stdout and "Block-Shock regression gate FAILED" in slower.stdout
    regressed = [line for line in slower.stdout.splitlines() if line.startswith("REGRESSED")]
    assert len(regressed) == 1 and PLANTED in regressed[0]
    assert same.returncode == 0, same.stdout[-3000:]
    assert "Block-Shock regression gate PASSED" in same.stdout
    assert "2 cells judged: 0 regressed" in same.stdout
    assert "0001_baseline.json" in same.stdout
