"""One file adds a method, one file a 2:4 backend (tests/extension/dummy_*.py): loaded with
`--bs-extension`, they validate in the matrix, run every phase they take on the CPU (the backend
through forward, backward and a train step's re-compression), reach the records and a report
built from that run, which labels and colours them from the registry.

Everything that loads the extensions runs in a subprocess, so this test process's registry keeps
the built-in methods only (other tests count them)."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from measure.cells.matrix import DEFAULT_PATH
from tests.conftest import ROOT, run_bench

EXTENSIONS = ("tests.extension.dummy_method", "tests.extension.dummy_backend")
# What the two files register, written out here: importing them would register them in this
# process too, and later tests count the built-in methods and backends.
METHOD, METHOD_LABEL = "dummy_transposed", "dummy: X (W^T), from an extension"
BACKEND, BACKEND_LABEL = "dummy24", "dummy24: decompress, then dense"
OPTIONS = [arg for m in EXTENSIONS for arg in ("--bs-extension", m)]
SMALL = {"world_size": [1], "N": [128], "B": [8]}


def _matrix(tmp_path, blocks) -> str:
    doc = json.loads(DEFAULT_PATH.read_text())
    doc["axes"]["method"].append(METHOD)
    doc["axes"]["backend"].append(BACKEND)
    doc["suites"]["extension"] = {"timing": doc["suites"]["smoke"]["timing"], "blocks": blocks}
    path = tmp_path / "matrix.json"
    path.write_text(json.dumps(doc))
    return str(path)


def _python(code: str) -> str:
    """Run `code` in a fresh interpreter that loads the extensions the way ranks do."""
    env = {**os.environ, "BS_EXTENSIONS": ",".join(EXTENSIONS)}
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


@pytest.fixture(scope="module")
def extension_run(tmp_path_factory):
    """A run of the dummy method (phase0, phase1) beside dense_single, and Block-Shock's one-GPU
    half on the dummy backend in phase0 to phase3."""
    tmp = tmp_path_factory.mktemp("extension")
    half = {**SMALL, "method": ["block_shock_half"], "mask": ["transposable_random"]}
    matrix = _matrix(
        tmp,
        [
            {**SMALL, "phase": ["phase0", "phase1"], "method": [METHOD, "dense_single"]},
            {**half, "phase": ["phase0", "phase1", "phase2"], "backend": [BACKEND]},
            {
                **half,
                "phase": ["phase3"],
                "backend": [BACKEND],
                "optimizer": ["sgd"],
                "variant": ["T1"],
                "steps": [3],
            },
        ],
    )
    results = tmp / "results"
    run = run_bench(
        *OPTIONS,
        *("--bs-matrix", matrix, "--suite", "extension", "--bs-results", str(results)),
        *("--bs-energy", "off", f"--benchmark-json={tmp / 'out.json'}"),
    )
    (run_dir,) = results.iterdir()
    return run, run_dir, tmp


def test_the_extensions_run_every_phase_they_take(extension_run):
    run, run_dir, tmp = extension_run
    assert "8 passed" in run.stdout, run.stdout[-2000:]
    assert METHOD in run.stdout  # the end-of-run summary lists it
    names = {b["name"] for b in json.loads((tmp / "out.json").read_text())["benchmarks"]}
    assert f"phase1[{METHOD}-N128-B8-bf16-gaussian-ws1]" in names


def test_the_records_name_the_method_and_the_backend(extension_run):
    _, run_dir, _ = extension_run
    mine = run_dir / "cells" / "phase1" / f"{METHOD}-N128-B8-bf16-gaussian-ws1.json"
    doc = json.loads(mine.read_text())
    assert doc["status"] == "passed" and doc["ranks"][0]["kernel_backend"] == "dense"
    stem = f"block_shock_half-N128-B8-bf16-transposable_random-gaussian-ws1-{BACKEND}"
    for phase in ("phase0", "phase1", "phase2"):
        doc = json.loads((run_dir / "cells" / phase / f"{stem}.json").read_text())
        assert doc["status"] == "passed", (phase, doc["failure"])
        r0 = doc["ranks"][0]
        assert r0["kernel_backend"] == BACKEND and r0["alg_id"] == "decompress"
        exact = r0["exact"]  # the exact probe ran through the dummy half, every group covered
        assert exact["mismatches"] == 0 and exact["covered_groups"] == exact["groups"], phase
    assert doc["figures"]["backward_backend"] == [BACKEND]  # W_g^T on it too
    step = run_dir / "cells" / "phase3" / f"{stem}-sgd-T1-T3.json"
    assert json.loads(step.read_text())["status"] == "passed"  # re-compressed every step


def test_a_report_of_the_run_shows_them_labelled_from_the_registry(extension_run, tmp_path):
    _, run_dir, tmp = extension_run
    out, inputs = tmp_path / "report", [str(tmp / "out.json"), str(run_dir)]
    _python(f"from reports.build import build; build({inputs!r}, {str(out)!r})")
    phase1 = pd.read_csv(out / "tables" / "emulated_phase1.csv")
    assert METHOD in set(phase1.method)
    assert BACKEND in set(phase1.backend)
    backends = pd.read_csv(out / "tables" / "emulated_backends.csv")
    assert BACKEND in set(backends.backend)
    looks = json.loads(
        _python(
            "import json\n"
            "import pandas as pd\n"
            "from reports.render import plots\n"
            f"t = plots._series(pd.read_csv({str(out / 'tables' / 'emulated_phase1.csv')!r}))\n"
            "print(json.dumps({s: v['color'] for s, v in plots._styles(t).items()}))"
        )
    )
    assert looks[METHOD_LABEL] == "tab:gray"  # its label and colour, as registered
    (half,) = [s for s in looks if s.endswith(f"[{BACKEND_LABEL}]")]
    assert looks[half] == "tab:brown"  # the method's colour; the backend shows in the label


def test_a_phase_the_method_does_not_run_is_refused_before_anything_runs(tmp_path):
    block = {**SMALL, "phase": ["phase2"], "method": [METHOD]}
    args = (*OPTIONS, "--bs-matrix", _matrix(tmp_path, [block]), "--suite", "extension", "--co")
    run = run_bench(*args, returncode=pytest.ExitCode.USAGE_ERROR)
    assert f"{METHOD} runs ('phase0', 'phase1') only, not phase2" in run.stderr


def test_without_the_extension_its_names_are_refused_naming_the_choices(tmp_path):
    block = {**SMALL, "phase": ["phase0"], "method": [METHOD]}
    args = ("--bs-matrix", _matrix(tmp_path, [block]), "--suite", "extension", "--co")
    run = run_bench(*args, returncode=pytest.ExitCode.USAGE_ERROR)
    assert f"'{METHOD}' is not implemented; implemented:" in run.stderr
