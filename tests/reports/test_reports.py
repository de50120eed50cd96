"""Reports built from files the harness itself wrote (a small smoke run on this machine)."""

import json
import shutil

import pandas as pd
import pytest

from common.errors import ReportInputError
from reports.__main__ import main
from reports.build import build
from reports.render.outdir import MARKER

METHODS = {
    "dense_single",
    "dense_tp_row",
    "dense_tp_col",
    "dense_tp_interleaved",
    "masked_split_dense",
    "block_shock",
    "dense_half",
    "block_shock_half",
}


def test_build_writes_every_file_with_the_rows_of_the_run(smoke_run, smoke_report):
    out = smoke_report
    names = {p.name for p in out.iterdir()}
    assert {"report.md", "report.html", "tables", MARKER} <= names
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
    assert set(phase1.method) == METHODS and len(phase1) == 10  # one row per phase1 cell
    assert (phase1.median_s > 0).all() and (phase1.floor_s > 0).all()
    phase0 = pd.read_csv(out / "tables" / "emulated_phase0.csv")
    assert len(phase0) == 12 and phase0.correct.all()
    assert (phase0.rel_fro_error < phase0.rel_fro_bound).all()
    study = pd.read_csv(out / "tables" / "original_study.csv")
    assert study.empty  # emulated rows never join the GPU table, and no original was given
    md = (out / "report.md").read_text()
    assert "No original-study records among the inputs" in md  # and how to add them
    assert "Emulated results (CPU" in md and "## GPU results" not in md
    assert "phase0: 12 of 12 cells correct." in md and "phase1: 10 of 10 cells passed." in md
    assert "### phase1 forward (median host time, passed cells only)" in md
    assert "device time" not in md  # the emulated path times with the host clock
    assert "H1 kernel ceiling" in md and "not yet measured" in md
    assert "PREDICTED" not in md  # nothing is predicted from emulated halves
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(pngs)
    # markdown rendered: every table of the report is an HTML table, no row left as text
    assert html.count("<table>") == md.count("\n| --- |") + md.startswith("| --- |")
    assert "\n| " not in html and "<strong>H1 kernel ceiling" in html


def edited(bench_json, tmp_path, edit):
    """A copy of the harness's benchmark JSON with `edit(phase1 benchmarks by method)` applied."""
    doc = json.loads(bench_json.read_text())
    phase1 = [b for b in doc["benchmarks"] if b["extra_info"]["cell"]["phase"] == "phase1"]
    edit({b["extra_info"]["cell"]["method"]: b for b in phase1})
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(doc))
    return path


def test_only_passed_cells_reach_tables_and_the_rest_are_listed(smoke_run, tmp_path):
    bench_json, run_dir = smoke_run

    def edit(by_method):
        by_method["dense_tp_row"]["extra_info"]["correct"] = False
        by_method["dense_single"]["extra_info"]["capped_before_min_samples"] = True

    records = shutil.copytree(run_dir, tmp_path / run_dir.name)
    (bs_record,) = records.glob("cells/phase1/block_shock-N128-B8-bf16-random_2of4-*.json")
    doc = json.loads(bs_record.read_text())
    failed = {"status": "failed", "correct": False, "failure": "planted\nmore"}
    bs_record.write_text(json.dumps({**doc, **failed, "failure_kind": "wrong_result"}))
    out = build([edited(bench_json, tmp_path, edit), records], tmp_path / "report")
    phase1 = pd.read_csv(out / "tables" / "emulated_phase1.csv")
    assert set(phase1.method) == METHODS - {"dense_tp_row"} and len(phase1) == 8
    assert not ((phase1.method == "block_shock") & (phase1["mask"] == "random_2of4")).any()
    capped = phase1.set_index("method").capped_before_min_samples
    assert capped["dense_single"] and not capped.drop("dense_single").any()
    md = (out / "report.md").read_text()
    assert "phase1: 8 of 10 cells passed (2 left out, listed below)." in md
    assert "| excluded | - | - | benchmark extra_info says correct: false |" in md
    assert "random_2of4-gaussian-ws2] | failed | wrong_result | - | planted |" in md
    assert "(capped_before_min_samples): phase1[dense_single-N128-B8-bf16-gaussian-ws1]" in md


def test_a_malformed_or_repeated_benchmark_file_is_refused_by_name(smoke_run, tmp_path, capsys):
    bench_json, _ = smoke_run
    out = tmp_path / "report"

    def slow(by_method):
        by_method["dense_single"]["stats"]["median"] = "fast"

    bad = edited(bench_json, tmp_path, slow)
    copy = shutil.copy(bench_json, tmp_path / "copy.json")
    for inputs, words in (
        ([bad], [str(bad), "stats.median is 'fast', not a finite number"]),
        ([bench_json, bench_json], [str(bench_json), "given twice"]),
        ([bench_json, copy], ["-N128-B8-bf16-", "benchmark found twice", str(copy)]),
    ):
        assert main(["build", *map(str, inputs), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert all(w in err for w in words), err
        assert not out.exists()


def test_bad_inputs_are_named_and_leave_the_folder_untouched(tmp_path, capsys):
    out = tmp_path / "report"
    out.mkdir()
    (out / MARKER).write_text("an earlier report folder\n")
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
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "keep.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report-")]


def test_a_verdict_needs_every_cell():
    import pandas as pd

    from reports.analysis.figures import _verdict

    def table(*intervals):
        return pd.DataFrame([{"lo": lo, "hi": hi} for lo, hi in intervals])

    assert _verdict(table((0.5, 0.6), (0.7, 0.8)), True) == "supported"
    assert _verdict(table((1.2, 1.3), (2.0, 2.1)), True) == "refuted"
    assert _verdict(table((0.5, 0.6), (1.2, 1.3), (2.0, 2.1)), True) == (
        "mixed: supported in 1 of 3 cells, refuted in 2"
    )
    assert _verdict(table((0.9, 1.1)), True) == "inconclusive"
    assert _verdict(table(), True) == "not yet measured"


def test_backends_are_never_pooled_in_the_model_or_the_study_table():
    """Two 2:4 backends on one shape: each keeps its own ratio and efficiency (pooling them
    once reported the mean of a cslt 2.10 and a Triton 1.79 as 1.95)."""
    import pandas as pd

    from reports.analysis import figures as analysis

    t = pd.DataFrame(
        {
            "method": ["block_shock_half", "block_shock_half", "dense_half"],
            "backend": ["cslt", "triton", None],
            "mask": ["random_2of4", "random_2of4", None],
            "N": [8192] * 3,
            "B": [64] * 3,
            "dtype": ["bf16"] * 3,
            "emulated": [False] * 3,
            "gpu": ["H100"] * 3,
            "median_s": [2.0e-4, 1.2e-4, 1.0e-4],
            "floor_s": [0.5e-4, 0.6e-4, 0.9e-4],
        }
    )
    rows = analysis.study_table(t, pd.DataFrame())
    ours = rows[rows.source == "this harness"].set_index("2:4 backend")
    assert ours.loc["cslt", "half: block_shock/dense (one GPU)"] == pytest.approx(2.0)
    assert ours.loc["triton", "half: block_shock/dense (one GPU)"] == pytest.approx(1.2)
    m, eff = analysis.model(t)
    assert eff == pytest.approx(
        {"block_shock_half [cslt]": 0.25, "block_shock_half [triton]": 0.5, "dense_half": 0.9}
    )
    assert m.error.abs().max() < 1e-12  # one cell per kernel: the fit is exact
