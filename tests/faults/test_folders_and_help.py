"""Unwritable folders are found before anything runs; help works with any matrix.

A folder is made read-only with a read-only bind mount in a user namespace (root ignores
permission bits, so chmod cannot make a folder unwritable for the root user CI runs as).
"""

from __future__ import annotations

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


@pytest.mark.skipif(NO_NAMESPACE is not None, reason=str(NO_NAMESPACE))
def test_read_only_report_folder_is_refused_before_anything_is_read(tmp_path):
    env, _ = procs.tagged_env(tmp_path)
    results = tmp_path / "results"
    first = subprocess.run(
        procs.python("-m", "pytest", "bench", "-p", "no:cacheprovider", "-q",
                     "-k", "phase0 and dense_single and N128 and B8",
                     "--bs-results", str(results)),
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert first.returncode == 0, first.stdout[-2000:]
    (run_folder,) = [p for p in results.iterdir() if p.is_dir()]
    ro = tmp_path / "ro"
    run = run_read_only(
        ro, procs.python("-m", "reports", "build", str(run_folder), "--out", str(ro / "rep")), env
    )
    assert_one_line_error(run, ro / "rep")


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_work_with_a_broken_matrix_and_write_nothing(tmp_path, flag):
    """Help must always work (the matrix's error belongs to collecting bench/), and must leave
    no folder behind (pytest-benchmark's storage from pyproject's addopts included)."""
    env, _ = procs.tagged_env(tmp_path)
    broken = tmp_path / "benchmarks.json"
    broken.write_text('{"schema_version": 1, "axes": {"method": ["no_such_method"]}}')
    clone = tmp_path / "clone"
    skip = (".git", ".venv", "results", "__pycache__", ".cutlass", "published", ".whl")
    shutil.copytree(ROOT, clone, ignore=shutil.ignore_patterns(*skip))
    before = sorted(p.relative_to(clone) for p in clone.rglob("*"))
    run = subprocess.run(
        procs.python("-m", "pytest", flag, "--bs-matrix", str(broken)),
        cwd=clone, env={**env, "PYTHONPATH": str(clone)}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    if flag == "--help":
        assert "--bs-matrix" in run.stdout
    after = sorted(p.relative_to(clone) for p in clone.rglob("*") if "__pycache__" not in p.parts)
    before = [p for p in before if "__pycache__" not in p.parts]
    assert after == before, f"--help wrote: {sorted(set(after) - set(before))}"
