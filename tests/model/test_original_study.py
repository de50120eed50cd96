"""The original study's records, imported as labelled peer data from the committed real subset."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from common.errors import ReportInputError
from reports.analysis.figures import ORIGINAL_STUDY, ORIGINAL_STUDY_COLUMNS
from reports.imports import original_study as osd

ROOT = Path(__file__).resolve().parents[2]
SUBSET = ROOT / "tests/data/original_study/results/official"


@pytest.fixture(scope="module")
def imported() -> osd.ImportResult:
    return osd.load([SUBSET])


def test_every_run_becomes_one_labelled_cell_and_the_empty_run_is_skipped(imported):
    assert len(imported.cells) == 12
    assert [(Path(p).parent.name, why) for p, why in imported.skipped] == [
        ("20260118_040304_d2bbd8be", "empty metrics.jsonl: the run wrote no record")
    ]
    for c in imported.cells:
        assert c.imported and c.imported_from.startswith("MathewYoussef/Block-Shock")
        assert c.timing.startswith("original study: one CUDA-event pair per eager forward call")
        assert c.mode == "eager" and c.samples is None and c.phase == "phase1"
        assert c.gpu == "NVIDIA RTX PRO 4000 Blackwell" and c.machine == "rtx_pro_4000_blackwell"
        assert c.name.startswith("original:phase1[") and Path(c.source).name == "metrics.jsonl"


def test_methods_map_to_ours_with_the_backend_the_original_ran(imported):
    seen = {(c.original_method, c.method, c.backend, c.world_size, c.mask) for c in imported.cells}
    assert seen == {
        ("dense_single", "dense_single", None, 1, None),
        ("dense_tp", "dense_tp_row", None, 2, None),
        ("masked_split_dense", "masked_split_dense", None, 2, "complement_1100_0011"),
        ("block_shock_2gpu", "block_shock", "flinear", 2, "complement_1100_0011"),
    }


def test_median_is_the_records_p50_in_seconds(imported):
    for c in imported.cells:
        doc = json.loads(Path(c.source).read_text())
        fwd = doc["timings_ms"]["forward"]
        assert c.median_s == fwd["p50_ms"] / 1e3 and c.p95_s == fwd["p95_ms"] / 1e3
        assert (c.N, c.B, c.dtype, c.calls) == (doc["N"], doc["B"], doc["dtype"], 100)
        coll = doc["timings_ms"]["allreduce"]["p50_ms"]
        assert c.collective_median_s == (coll / 1e3 if coll > 0 else None)


def test_the_typed_in_table_is_derivable_from_the_records(imported):
    """reports/analysis/figures.py's ORIGINAL_STUDY holds one reading of the sweeps (they differ
    by a few percent): the subset's N=16384 row agrees within 2%."""
    derived = osd.typed_table(imported.cells)
    typed = dict(zip(ORIGINAL_STUDY_COLUMNS, ORIGINAL_STUDY[16384], strict=True))
    assert set(derived[16384]) == set(typed)
    for column, ms in typed.items():
        assert derived[16384][column] == pytest.approx(ms, rel=0.02), column


def test_pooling_takes_the_median_of_repeated_runs(imported):
    one = imported.cells[0]
    twins = [one, *(replace(one, median_s=one.median_s * f, run_id=str(f)) for f in (1.1, 3.0))]
    (pooled,) = osd.pooled(twins)
    assert pooled.median_s == pytest.approx(one.median_s * 1.1)
    assert pooled.calls == 300 and pooled.run_id == "median of 3 runs"


def _run(tmp_path: Path) -> Path:
    src = next(SUBSET.glob("sweeps/*/phase1_forward/dense_tp/*"))
    dst = tmp_path / "phase1_forward" / "dense_tp" / src.name
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(method="dense_tp_2d"), "field method is 'dense_tp_2d'"),
        (lambda d: d["timings_ms"].pop("forward"), "field timings_ms.forward is missing"),
        (lambda d: d["timings_ms"]["forward"].update(p50_ms=-1.0), "p50_ms is -1.0"),
        (lambda d: d.update(phase="phase2_backward_input"), "not phase1_forward"),
    ],
)
def test_a_malformed_record_is_refused_by_file_and_field(tmp_path, edit, message):
    run = _run(tmp_path)
    doc = json.loads((run / "metrics.jsonl").read_text())
    edit(doc)
    (run / "metrics.jsonl").write_text(json.dumps(doc) + "\n")
    with pytest.raises(ReportInputError) as err:
        osd.load([tmp_path])
    assert "metrics.jsonl" in str(err.value) and message in str(err.value)


def test_a_run_without_env_or_a_folder_without_runs_is_refused(tmp_path):
    run = _run(tmp_path)
    (run / "env.json").unlink()
    with pytest.raises(ReportInputError, match="env.json: no such file"):
        osd.load([run])
    with pytest.raises(ReportInputError, match="not the original study's results folder"):
        osd.load([ROOT / "reports"])
