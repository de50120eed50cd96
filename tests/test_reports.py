"""Reports built from files the harness itself wrote (a small smoke run on this machine)."""

import json

import pandas as pd
import pytest

from reports.__main__ import main
from reports.build import build
from reports.load import ReportInputError
from tests.conftest import run_bench

SELECT = (
    "N128-B8-bf16 and (dense_single or dense_tp_row or "
    "block_shock-N128-B8-bf16-random or masked_split_dense-N128-B8-bf16-random)"
)


@pytest.fixture(scope="module")
def harness_run(tmp_path_factory):
    """phase0 + phase1 of four smoke cells, written by the real harness."""
    tmp = tmp_path_factory.mktemp("run")
    run_bench(
        "-k", SELECT, f"--benchmark-json={tmp / 'bench.json'}", "--bs-results", str(tmp / "results")
    )
    (run_dir,) = (tmp / "results").iterdir()
    return tmp / "bench.json", run_dir


def test_build_writes_every_file_with_the_rows_of_the_run(harness_run, tmp_path):
    bench_json, run_dir = harness_run
    out = build([bench_json, run_dir], tmp_path / "report")
    names = {p.name for p in out.iterdir()}
    assert {"report.md", "report.html", "tables"} <= names
    pngs = sorted(p for p in out.glob("*.png"))
    assert {p.name for p in pngs} >= {
        "emulated_time_vs_n.png",
        "emulated_speedup_vs_dense_single.png",
        "emulated_speedup_vs_dense_tp_row.png",
        "emulated_breakdown.png",
        "emulated_pct_of_floor.png",
        "emulated_memory.png",
        "emulated_quality_speed.png",
        "emulated_errors.png",
    }
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    phase1 = pd.read_csv(out / "tables" / "emulated_phase1.csv")
    assert sorted(phase1.method) == [
        "block_shock",
        "dense_single",
        "dense_tp_row",
        "masked_split_dense",
    ]
    assert (phase1.median_s > 0).all() and (phase1.floor_s > 0).all()
    phase0 = pd.read_csv(out / "tables" / "emulated_phase0.csv")
    assert len(phase0) == 4 and phase0.correct.all()
    assert (phase0.rel_fro_error < phase0.rel_fro_bound).all()
    study = pd.read_csv(out / "tables" / "original_study.csv")
    assert list(study.N) == [4096, 16384, 40960, 81920]  # emulated rows never join the GPU table
    md = (out / "report.md").read_text()
    assert "Emulated results (CPU" in md and "## GPU results" not in md
    assert "H1 kernel ceiling" in md and "not yet measured" in md
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(pngs)


def test_bad_inputs_are_named_and_leave_the_folder_untouched(tmp_path, capsys):
    out = tmp_path / "report"
    out.mkdir()
    (out / "keep.txt").write_text("earlier report")
    empty = tmp_path / "empty.json"
    empty.write_text("")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": 1}))
    for bad, message in (
        (tmp_path / "missing.json", "no such file"),
        (empty, "empty file"),
        (broken, "not valid JSON"),
        (other, "not a pytest-benchmark JSON"),
    ):
        assert main(["build", str(bad), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert str(bad) in err and message in err
        with pytest.raises(ReportInputError):
            build([bad], out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report-")]


def test_a_verdict_needs_every_cell():
    import pandas as pd

    from reports.analysis import _verdict

    def table(*intervals):
        return pd.DataFrame([{"lo": lo, "hi": hi} for lo, hi in intervals])

    assert _verdict(table((0.5, 0.6), (0.7, 0.8)), True) == "supported"
    assert _verdict(table((1.2, 1.3), (2.0, 2.1)), True) == "refuted"
    assert _verdict(table((0.5, 0.6), (1.2, 1.3), (2.0, 2.1)), True) == (
        "mixed: supported in 1 of 3 cells, refuted in 2"
    )
    assert _verdict(table((0.9, 1.1)), True) == "inconclusive"
    assert _verdict(table(), True) == "not yet measured"
