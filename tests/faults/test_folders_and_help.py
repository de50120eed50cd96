"""Unwritable folders are found before anything runs; help works with any matrix; a run folder
holds its timings; a shape no GPU can run is refused.

A folder is made read-only with a read-only bind mount in a user namespace (root ignores
permission bits, so chmod cannot make a folder unwritable for the root user CI runs as).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.faults import procs


def _namespace_works() -> str | None:
    if shutil.which("unshare") is None:
        return "no `unshare` command: cannot make a read-only bind mount here"
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True
    )
    if probe.returncode != 0:
        return f"user namespaces are not allowed here ({probe.stderr.decode().strip()})"
    return None


NO_NAMESPACE = _namespace_works()


def run_read_only(folder: Path, cmd: list[str], env: dict) -> subprocess.CompletedProcess:
    """Run `cmd` with `folder` mounted read-only (bind mount in a private mount namespace)."""
    folder.mkdir(parents=True, exist_ok=True)
    script = (
        f'mount --bind "{folder}" "{folder}" && mount -o remount,bind,ro "{folder}" && exec "$@"'
    )
    return subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh", *cmd],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def assert_one_line_error(run: subprocess.CompletedProcess, folder: Path) -> None:
    said = run.stdout + run.stderr
    assert run.returncode != 0, said[-2000:]
    assert "Traceback" not in said, said[-3000:]
    lines = [line for line in run.stderr.splitlines() if str(folder) in line]
    assert lines, f"the error must name {folder}:\n{said[-2000:]}"


@pytest.mark.skipif(NO_NAMESPACE is not None, reason=str(NO_NAMESPACE))
def test_read_only_results_folder_is_a_usage_error_before_any_cell(tmp_path):
    env, _ = procs.tagged_env(tmp_path)
    ro = tmp_path / "ro"
    run = run_read_only(ro, procs.python("-m", "pytest", "bench", "-p", "no:cacheprovider",
                                         "-k", "phase0 and dense_single and N128 and B8",
                                         "--bs-results", str(ro / "results")), env)  # fmt: skip
    assert_one_line_error(run, ro / "results")
    assert "passed" not in run.stdout, "no cell may run before the folder is checked"


@pytest.mark.skipif(NO_NAMESPACE is not None, reason=str(NO_NAMESPACE))
def test_read_only_study_folder_is_refused_before_any_slice(tmp_path):
    env, _ = procs.tagged_env(tmp_path)
    ro = tmp_path / "ro"
    matrix = str(ROOT / "tests" / "data" / "study_matrix.json")
    run = run_read_only(ro, procs.python("-m", "bench.study", "run", "--suite", "study",
                                         "--matrix", matrix, "-k", "phase0 and ws1",
                                         "--out", str(ro / "study")), env)  # fmt: skip
    assert_one_line_error(run, ro / "study")


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    """One run of two timed cells (a dense half and its 2:4 half) given no --benchmark-json:
    its run folder is all a report gets."""
    tmp = tmp_path_factory.mktemp("run")
    env, _ = procs.tagged_env(tmp)
    results = tmp / "results"
    run = subprocess.run(
        procs.python("-m", "pytest", "bench", "-p", "no:cacheprovider", "-q", "--bs-energy", "off",
                     "-k", "phase1 and N256-B8 and (dense_half or block_shock_half)",
                     "--bs-results", str(results)),
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:]
    (folder,) = [p for p in results.iterdir() if p.is_dir()]
    return folder


def test_a_run_folder_holds_its_timings_and_builds_a_report_alone(run_folder, tmp_path):
    """pytest-benchmark's samples go into the run folder by default, so the folder alone
    builds a report with its timings; a run with no training cell has no training heading."""
    env, _ = procs.tagged_env(tmp_path)
    samples = json.loads((run_folder / "benchmarks.json").read_text())["benchmarks"]
    assert {b["name"] for b in samples} == {
        "phase1[dense_half-N256-B8-bf16-gaussian-ws1]",
        "phase1[block_shock_half-N256-B8-bf16-random_2of4-gaussian-ws1]",
    }
    build = subprocess.run(
        procs.python("-m", "reports", "build", str(run_folder), "--out", str(tmp_path / "rep")),
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    report = (tmp_path / "rep" / "report.md").read_text()
    timed = (tmp_path / "rep" / "tables" / "emulated_phase1.csv").read_text()
    assert "dense_half" in timed and "block_shock_half" in timed, timed
    assert "phase1 by 2:4 backend" in report  # the phase1 table that sat under "Training"
    assert "Training" not in report, report


@pytest.mark.skipif(NO_NAMESPACE is not None, reason=str(NO_NAMESPACE))
def test_read_only_report_folder_is_refused_before_anything_is_read(run_folder, tmp_path):
    env, _ = procs.tagged_env(tmp_path)
    ro = tmp_path / "ro"
    run = run_read_only(
        ro, procs.python("-m", "reports", "build", str(run_folder), "--out", str(ro / "rep")), env
    )
    assert_one_line_error(run, ro / "rep")


def test_a_2_4_shape_no_gpu_can_run_is_refused_on_the_cpu_too(tmp_path):
    """N=100 would run emulated on a CPU, but no GPU 2:4 kernel takes it (multiples of 64):
    its result would stand for no GPU run, so collection refuses it, naming the rule."""
    env, _ = procs.tagged_env(tmp_path)
    matrix = json.loads((ROOT / "benchmarks.json").read_text())
    matrix["suites"]["odd"] = {"description": "N=100", "blocks": [
        {"phase": ["phase0"], "method": ["block_shock"], "world_size": [2], "N": [100],
         "B": [8], "mask": ["random_2of4"]}]}  # fmt: skip
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(matrix))
    run = subprocess.run(
        procs.python("-m", "pytest", "bench", "-p", "no:cacheprovider", "--bs-matrix", str(path),
                     "--suite", "odd", "--bs-results", str(tmp_path / "results")),
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 4, run.stdout[-2000:] + run.stderr[-2000:]  # a usage error
    assert "no GPU could run it" in run.stderr and "multiples of 64, got 100 x 100" in run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_work_with_a_broken_matrix_and_write_nothing(tmp_path, flag):
    """The issue's case: the checkout's own benchmarks.json is invalid. Help must still work
    and list the plugin's options, the matrix's error belongs to collecting bench/ (a usage
    error there), and neither writes anything (pytest-benchmark's storage folder included)."""
    env, _ = procs.tagged_env(tmp_path)
    clone = tmp_path / "clone"
    skip = (".git", ".venv", "results", "__pycache__", ".cutlass", "published", ".whl")
    shutil.copytree(ROOT, clone, ignore=shutil.ignore_patterns(*skip))
    (clone / "benchmarks.json").write_text(
        '{"schema_version": 1, "axes": {"method": ["no_such_method"]}}'
    )
    before = sorted(p.relative_to(clone) for p in clone.rglob("*"))
    run = subprocess.run(
        procs.python("-m", "pytest", flag),
        cwd=clone, env={**env, "PYTHONPATH": str(clone)}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    if flag == "--help":
        assert "--bs-matrix" in run.stdout
    after = sorted(p.relative_to(clone) for p in clone.rglob("*") if "__pycache__" not in p.parts)
    before = [p for p in before if "__pycache__" not in p.parts]
    assert after == before, f"{flag} wrote: {sorted(set(after) - set(before))}"
    if flag == "--help":
        collect = subprocess.run(
            procs.python("-m", "pytest", "bench", "--co", "-q", "-p", "no:cacheprovider"),
            cwd=clone, env={**env, "PYTHONPATH": str(clone)}, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        said = collect.stdout + collect.stderr
        assert collect.returncode == 4, said[-2000:]  # pytest's usage error
        assert "no_such_method" in collect.stderr and "Traceback" not in said, said[-2000:]
