"""`reports build` reads every record the harness writes, failures included, and refuses what
does not add up by name (#12.5, #12.6, #11.2)."""

import pandas as pd
import pytest

from common.errors import ReportInputError
from common.schema.versions import RECORD_VERSION
from reports.__main__ import main
from reports.build import build
from tests.reports.report_inputs import cell, rank, record, write_run

DEAD = "rank 1 of world_size 2 died (signal SIGKILL) in block_shock\nTraceback (most recent)"


def failing_run(folder):
    """One passed cell, one whose rank 1 wrote NaN (rel_fro null), one whose rank died."""
    return write_run(
        folder,
        [
            record(cell()),
            record(
                cell("block_shock", mask="random_2of4"),
                "failed",
                ranks=[rank(0), rank(1, rel_fro=None)],
                failure="phase0[...] rank 1: output has NaN",
                kind="wrong_result",
                failed=1,
            ),
            record(
                cell("masked_split_dense", mask="random_2of4"),
                "error",
                ranks=[],
                failure=DEAD,
                kind="rank_crash",
                failed=1,
            ),
        ],
    )


def test_failed_and_errored_cells_are_counted_and_listed(tmp_path):
    out = build([failing_run(tmp_path / "run")], tmp_path / "report")
    md = (out / "report.md").read_text()
    assert "phase0: 1 of 3 cells correct (2 left out, listed below)." in md
    assert "### Failed and excluded cells (2)" in md
    crash = "| phase0[masked_split_dense-N256-B8-bf16-random_2of4-gaussian-ws2] | error"
    assert crash + " | rank_crash | 1 | rank 1 of world_size 2 died (signal SIGKILL)" in md
    assert "Traceback" not in md  # the first line only
    left = pd.read_csv(out / "tables" / "left_out.csv")
    assert sorted(left.status) == ["error", "failed"]
    phase0 = pd.read_csv(out / "tables" / "emulated_phase0.csv")
    nan_cell = phase0[phase0.method == "block_shock"]
    assert len(phase0) == 2 and nan_cell.rel_fro_error.isna().all() and not nan_cell.correct.any()
    assert (out / "emulated_errors.png").is_file()


@pytest.mark.parametrize(
    "status, ended, words",
    [
        ("interrupted", 1.0e9, "was interrupted"),
        ("crashed", None, "was crashed"),
        ("running", None, "did not finish (run.json says status 'running', ended None)"),
        ("completed", None, "did not finish"),
    ],
)
def test_a_run_that_stopped_early_says_so_on_top(tmp_path, status, ended, words):
    run = write_run(tmp_path / "run7", [record(cell())], status=status, ended=ended)
    out = build([run], tmp_path / "report")
    md = (out / "report.md").read_text().splitlines()
    assert md[2].startswith("> **Warning:** Run run7") and words in md[2]
    html = (out / "report.html").read_text()
    assert "<blockquote>\n<p><strong>Warning:</strong> Run run7" in html


def test_a_completed_run_has_no_warning(tmp_path):
    out = build([write_run(tmp_path / "run", [record(cell())])], tmp_path / "report")
    assert "Warning" not in (out / "report.md").read_text()


def refused(inputs, out, *words, capsys):
    """The build exits 2 with the project's error naming `words`, and writes nothing."""
    assert main(["build", *map(str, inputs), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "reports: " in err and all(w in err for w in words), err
    with pytest.raises(ReportInputError):
        build(inputs, out)
    assert not out.exists()


def test_an_unknown_record_version_is_refused_by_name(tmp_path, capsys):
    doc = {**record(cell()), "record_version": RECORD_VERSION + 1}
    run = write_run(tmp_path / "run", [doc])
    path = run / "cells" / "phase0" / f"{cell().id}.json"
    words = f"record_version is {RECORD_VERSION + 1}"
    refused([run], tmp_path / "report", str(path), words, capsys=capsys)


def test_a_version_one_record_is_still_read(tmp_path):
    """A version-1 record: `correct` instead of a status, memory figures beside the rest."""
    v1 = record(cell())
    for k in ("status", "failure_kind", "failed_rank", "published", "stacks"):
        del v1[k]
    for r in v1["ranks"]:
        memory = r.pop("memory")
        r.update(weight_bytes=memory["weight_bytes"], peak_build_bytes=None)
    run = write_run(tmp_path / "run", [{**v1, "record_version": 1, "correct": False}])
    out = build([run], tmp_path / "report")
    md = (out / "report.md").read_text()
    assert "phase0: 0 of 1 cells correct (1 left out, listed below)." in md
    assert "| failed | wrong_result |" in md  # the upgrade's reading of correct: false


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda d: d["ranks"][0]["errors"].update(rel_fro="small"), "ranks[0].errors.rel_fro"),
        (lambda d: d.update(status="fine"), "field status is 'fine', not one of"),
        (lambda d: d["cell"].pop("N"), "field cell.N is missing"),
        (lambda d: d.update(ranks=[]), "field ranks is []; a passed cell needs ranks"),
        (lambda d: d.update(name="phase0[other]"), "field name is 'phase0[other]' but its cell"),
        (lambda d: d["ranks"][0].update(flops=1), "field ranks[0].flops is not part of"),
        (lambda d: d["ranks"][0].pop("memory"), "field ranks[0].memory is missing"),
    ],
)
def test_a_malformed_record_names_file_and_field(tmp_path, capsys, edit, field):
    doc = record(cell())
    edit(doc)
    run = write_run(tmp_path / "run", [doc])
    refused([run], tmp_path / "report", "run/cells/phase0/", field, capsys=capsys)


def test_the_same_cell_twice_is_refused_by_name(tmp_path, capsys):
    one = write_run(tmp_path / "run1", [record(cell())])
    two = write_run(tmp_path / "run2", [record(cell())])
    refused([one, one], tmp_path / "report", "given twice", capsys=capsys)
    refused([one, two], tmp_path / "report", cell().name, "found twice", capsys=capsys)


def test_compare_runs_names_every_cell_that_differs(tmp_path, capsys):
    cells = [cell(), cell("block_shock", mask="random_2of4"), cell("dense_tp_row")]
    base = write_run(tmp_path / "base", [record(c) for c in cells])
    same = write_run(tmp_path / "same", [record(c) for c in cells])
    assert main(["compare-runs", str(base), str(same)]) == 0
    assert "3 cells in both runs" in capsys.readouterr().out
    off = [rank(0), rank(1, rel_fro=2.5e-3)]  # one rank's error moved by 4%
    new = write_run(
        tmp_path / "new",
        [
            record(cells[0], "failed", kind="wrong_result", failure="planted"),
            record(cells[1], ranks=off),
            record(cell("dense_tp_col")),
        ],
    )
    assert main(["compare-runs", str(base), str(new)]) == 1
    out = capsys.readouterr().out
    assert f"status differs: {cells[0].name}: passed -> failed" in out
    assert f"figure differs: {cells[1].name} rank 1 rel_fro: 0.0024 vs 0.0025" in out
    assert f"only in the base run: {cells[2].name}" in out and "only in the new run" in out
    assert main(["compare-runs", str(base), str(new), "--rtol", "0.1"]) == 1  # status, cells
    assert "figure differs" not in capsys.readouterr().out
