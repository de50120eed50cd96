"""The plugin driven as a user drives it: pytest runs in a fresh process over copies of bench/."""

import json
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT, run_bench


@pytest.fixture
def project(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeconftest('pytest_plugins = ["measure.plugin"]')
    pytester.makeini("[pytest]\npython_functions = test_* phase0 phase1\n")
    for name in ("test_phase0.py", "test_phase1.py"):
        shutil.copy(ROOT / "bench" / name, pytester.path / name)
    return pytester


def test_smoke_collects_40_or_more_phase0_cells_with_readable_ids(project):
    result = project.runpytest_subprocess("--co", "-q", "-k", "phase0")
    ids = [line for line in result.outlines if "::phase0[" in line]
    assert len(ids) >= 40
    assert any(
        "phase0[block_shock-N256-B64-bf16-complement_1100_0011-gaussian-ws2]" in i for i in ids
    )


def test_an_unknown_suite_is_a_usage_error_naming_the_closest(project):
    result = project.runpytest_subprocess("--suite", "smok")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*no suite 'smok' (did you mean 'smoke'?)*"])


def test_a_gpu_only_backend_on_cpu_fails_before_anything_runs(project):
    result = project.runpytest_subprocess("--bs-backend", "cslt", "--bs-device", "cpu")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--bs-backend cslt: the cslt 2:4 backend needs a CUDA GPU*cpu*"])


def test_phase1_json_holds_device_seconds_and_extra_info(project, tmp_path):
    out = tmp_path / "out.json"
    result = project.runpytest_subprocess(
        "-k",
        "phase1 and (dense_single-N128-B8 or block_shock-N128-B8-bf16-random)",
        f"--benchmark-json={out}",
        "--bs-results",
        str(tmp_path / "results"),
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*Block-Shock bench summary*", "*EMULATED*"])
    doc = json.loads(out.read_text())
    by_name = {b["name"]: b for b in doc["benchmarks"]}
    bs = by_name["phase1[block_shock-N128-B8-bf16-random_2of4-gaussian-ws2]"]
    info = bs["extra_info"]
    for key in (
        "rank_medians_s",
        "slowest_rank",
        "collective_median_s",
        "compute_median_s",
        "peak_forward_bytes_per_rank",
        "weight_bytes_per_rank",
        "floor_s",
        "pct_of_floor",
        "achieved_tb_per_s",
        "achieved_tflop_per_s",
        "state_start",
        "mode",
        "kernel_backend",
        "emulated",
        "energy",
    ):
        assert key in info, key
    assert info["emulated"] is True and info["kernel_backend"] == "emulated"
    assert info["energy"] in ("measured", "unavailable")
    if info["energy"] == "unavailable":
        assert info["energy_reason"]
    records = {
        p.stem: json.loads(p.read_text())
        for p in (tmp_path / "results").glob("*/cells/phase1/*.json")
    }
    assert len(records) == 2
    forward = records["block_shock-N128-B8-bf16-random_2of4-gaussian-ws2"]["ranks"][0]["timing"]
    forward = forward["forward"]
    # pytest-benchmark holds the cell's own primary samples (seconds per forward, one round
    # each, through the device clock), so its statistics are the harness's.
    assert bs["stats"]["data"] == pytest.approx(forward["samples"], rel=1e-9, abs=0)
    assert bs["stats"]["median"] == pytest.approx(forward["median"], rel=1e-9, abs=0)
    assert bs["stats"]["rounds"] == len(forward["samples"]) >= 5
    compare = subprocess.run(
        [sys.executable, "-m", "pytest_benchmark", "compare", str(out)],
        capture_output=True,
        text=True,
    )
    assert compare.returncode == 0, compare.stderr
    assert "block_shock-N128-B8" in compare.stdout


def test_under_torchrun_ranks_share_one_seed_and_only_rank0_writes(tmp_path):
    results = tmp_path / "results"
    run = run_bench(
        "-rs",
        "--bs-results",
        str(results),
        "-k",
        "phase0 and (dense_tp_row-N128-B8-bf16 or dense_single-N128-B8-bf16 or "
        "block_shock-N128-B8-bf16-random)",
        launcher=("-m", "torch.distributed.run", "--nproc-per-node", "2"),
    )
    assert run.stdout.count("2 passed, 1 skipped") == 2  # both ranks ran both two-rank cells
    assert "torchrun started 2 ranks; this cell needs 1" in run.stdout
    (run_dir,) = results.iterdir()
    assert len(list(run_dir.glob("cells/phase0/*.json"))) == 2


def _matrix_with(tmp_path, methods, blocks):
    """benchmarks.json plus extra method names and a suite `planted` of the given blocks."""
    from measure.cells.matrix import DEFAULT_PATH

    doc = json.loads(DEFAULT_PATH.read_text())
    doc["axes"]["method"] += methods
    doc["suites"]["planted"] = {"timing": doc["suites"]["smoke"]["timing"], "blocks": blocks}
    path = tmp_path / "matrix.json"
    path.write_text(json.dumps(doc))
    return path


def test_a_toy_method_added_through_the_registry_alone_runs_its_cells(tmp_path):
    matrix = _matrix_with(
        tmp_path,
        ["toy_transposed_dense"],
        [
            {
                "phase": ["phase0", "phase1"],
                "method": ["toy_transposed_dense"],
                "world_size": [1],
                "N": [128],
                "B": [8],
                "bias": [True],
            }
        ],
    )
    run = run_bench(
        "-p",
        "tests.kernels.planted_methods",
        "--bs-matrix",
        str(matrix),
        "--suite",
        "planted",
        "--bs-results",
        str(tmp_path / "results"),
        "--bs-energy",
        "off",
    )
    assert "2 passed" in run.stdout


def test_a_wrong_method_is_recorded_failed_and_never_published(tmp_path):
    """Planted 5% wrong: its phase1 cell fails, the benchmark JSON holds no entry for it, the
    summary marks it FAILED, and its record says so with the rank."""
    matrix = _matrix_with(
        tmp_path,
        ["planted_wrong_dense"],
        [
            {
                "phase": ["phase1"],
                "method": ["planted_wrong_dense", "dense_single"],
                "world_size": [1],
                "N": [128],
                "B": [8],
            }
        ],
    )
    out = tmp_path / "out.json"
    run = run_bench(
        "-p",
        "tests.kernels.planted_methods",
        "--bs-matrix",
        str(matrix),
        "--suite",
        "planted",
        "--bs-results",
        str(tmp_path / "results"),
        "--bs-energy",
        "off",
        f"--benchmark-json={out}",
        returncode=1,
    )
    assert "1 failed, 1 passed" in run.stdout
    names = [b["name"] for b in json.loads(out.read_text())["benchmarks"]]
    assert names == ["phase1[dense_single-N128-B8-bf16-gaussian-ws1]"]
    assert "FAILED cells (no figure published)" in run.stdout
    assert "Block-Shock bench wrote records: " in run.stdout  # the run says where they went
    assert "they are not for gating" in run.stdout  # emulated CPU timings say what they are
    assert "phase1[planted_wrong_dense-N128-B8-bf16-gaussian-ws1]" in run.stdout
    (run_dir,) = (tmp_path / "results").iterdir()
    doc = json.loads(
        (run_dir / "cells/phase1/planted_wrong_dense-N128-B8-bf16-gaussian-ws1.json").read_text()
    )
    assert doc["status"] == "failed" and doc["failure_kind"] == "wrong_result"
    assert doc["failed_rank"] == 0 and doc["published"] is False and "figures" not in doc
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"


def test_only_the_selected_cells_are_preflighted(tmp_path):
    args = ("-p", "tests.study.strict_preflight", "--bs-results", str(tmp_path / "r"), "--co")
    refused = subprocess.run(
        [sys.executable, "-m", "pytest", "bench", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode == pytest.ExitCode.USAGE_ERROR
    assert "planted machine rule: B=64" in refused.stderr
    run_bench(*args, "-k", "B8")  # every B=64 cell deselected: nothing to refuse


def test_help_and_collect_only_write_no_files(tmp_path):
    results = tmp_path / "results"
    run_bench("--co", "--bs-results", str(results))
    subprocess.run(
        [sys.executable, "-m", "pytest", "--help", "--bs-results", str(results)],
        cwd=ROOT,
        capture_output=True,
        timeout=300,
        check=True,
    )
    assert not results.exists()


def _saved_run(project, machine):
    """A run saved on another machine, as --benchmark-autosave keeps it."""
    # where the plugin points pytest-benchmark's storage for a run that compares (hooks.py)
    folder = project.path / "results" / "benchmarks" / "Other-Machine"
    folder.mkdir(parents=True)
    doc = {
        "machine_info": {"node": "gpu-node", "block_shock_bench": machine},
        "commit_info": {"id": "abc123"},
        "benchmarks": [],
        "datetime": "2026-11-25T10:00:00",
        "version": "5.3.1",
    }
    (folder / "0001_other.json").write_text(json.dumps(doc))


def _h200_pair():
    from measure.machine.environment import machine_info

    here = machine_info("cpu")
    return here, {**here, "device_type": "cuda", "gpu_count": 2,
                  "gpu_models": ["NVIDIA H200"] * 2, "driver": "580.65.06"}  # fmt: skip


def test_comparing_with_another_machine_warns_naming_each_field_and_both_values(project):
    here, h200 = _h200_pair()
    _saved_run(project, h200)
    args = ("--co", "-k", "phase1 and dense_single-N128-B8", "--benchmark-compare=*/0001")
    result = project.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "*MachineMismatchWarning: the compared run (saved 2026-11-25T10:00:00, commit abc123)"
            " was measured on another machine*",
            "*MACHINE DIFFERS*",
            "  device_type: 'cuda' (compared run) vs 'cpu' (this run): emulated host-clock times*",
            "  gpu_count: 2 (compared run) vs 0 (this run)*",
            "  gpu_models: *",
            "  driver: '580.65.06' (compared run) vs None (this run)*",
        ]
    )
    out = result.stdout.str()
    assert "gpu_models: ['NVIDIA H200', 'NVIDIA H200'] (compared run) vs [] (this run)" in out
    assert "torch:" not in out  # fields that agree are not named


def test_strict_machine_refuses_the_comparison_before_anything_runs(project, tmp_path):
    _, h200 = _h200_pair()
    _saved_run(project, h200)
    result = project.runpytest_subprocess(
        "-k", "phase1 and dense_single-N128-B8", "--benchmark-compare=*/0001",
        "--bs-strict-machine", "--bs-results", str(tmp_path / "results"),
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--bs-strict-machine: the compared run*another machine: device_type: 'cuda'*gpu_models*"]
    )
    assert not (tmp_path / "results").exists()  # no cell ran


def test_the_same_machine_elsewhere_is_no_difference(project):
    here, _ = _h200_pair()
    _saved_run(project, here)  # another host name, the same facts
    result = project.runpytest_subprocess(
        "--co", "-k", "phase1 and dense_single-N128-B8", "--benchmark-compare=*/0001",
        "--bs-strict-machine",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.OK
    assert "MACHINE DIFFERS" not in result.stdout.str()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.mkdir(), "is a folder; name a file as --bs-gate=PATH"),
        (
            lambda p: p.write_text(json.dumps({"benchmarks": [{"fullname": "a", "stats": {}}]})),
            "holds no raw samples (stats.data)*--benchmark-save-data",
        ),
        (lambda p: None, "file not found"),
    ],
)
def test_a_gate_baseline_it_cannot_use_is_a_usage_error(project, tmp_path, make, message):
    baseline = tmp_path / "baseline.json"
    make(baseline)
    result = project.runpytest_subprocess("--co", f"--bs-gate={baseline}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--bs-gate: *baseline.json*{message}*"])


def test_bare_bs_gate_needs_the_run_benchmark_compare_loads(project):
    result = project.runpytest_subprocess("--co", "--bs-gate")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--bs-gate: with no file it gates against the run*0 runs*"])
