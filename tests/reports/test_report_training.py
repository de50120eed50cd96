"""Reports of phase2, phase3 and drift (#14.6), backends side by side (#16.3) and study folders
(#15.7), built from files the harness and the study runner write on this machine."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from reports.__main__ import main
from reports.analysis import figures as analysis
from reports.analysis import h2
from reports.analysis.verdicts import verdicts
from reports.build import build
from reports.read.load import load
from reports.read.outcomes import sort_out
from tests.conftest import ROOT, run_bench

MATRIX = str(ROOT / "tests" / "data" / "report_matrix.json")
PLANTED = "phase1[dense_half-N128-B8-bf16-gaussian-ws1]"


@pytest.fixture(scope="module")
def harness_run(tmp_path_factory):
    """phase1, phase2, phase3 and drift of the one-GPU and two-rank pairs (15 cells)."""
    tmp = tmp_path_factory.mktemp("train")
    run_bench(
        "--suite", "report", "--bs-matrix", MATRIX,
        f"--benchmark-json={tmp / 'bench.json'}", "--bs-results", str(tmp / "results"),
    )  # fmt: skip
    (run_dir,) = (tmp / "results").iterdir()
    return tmp / "bench.json", run_dir


@pytest.fixture(scope="module")
def timed(harness_run):
    return sort_out(load(list(harness_run))).timed


def as_gpu(t: pd.DataFrame) -> pd.DataFrame:
    """The emulated rows relabelled as GPU rows, to drive the verdicts (GPU rows only)."""
    return t.assign(emulated=False)


def test_each_record_holds_what_its_phase_describes(harness_run):
    """Every record of the run reads back strictly as the current record version, times only
    what its phase names (no more measurements than the study charges it, common/phases.py),
    publishes the phase's primary timing and fills exactly the phase figures it lists; phase3
    makes all five of its measurements on every rank."""
    from common.phases import CATALOG
    from common.schema.codec import to_json
    from common.schema.versions import RECORD_VERSION, read_cell_record

    _, run_dir = harness_run
    seen = {}
    for path in (run_dir / "cells").glob("*/*.json"):
        doc = json.loads(path.read_text())
        record = read_cell_record(doc, str(path))
        assert record.record_version == RECORD_VERSION and to_json(record) == doc
        phase, ws = CATALOG[record.phase], record.cell.world_size
        for rank in record.ranks:
            assert set(rank.timing) <= set(phase.timing_names), (path, sorted(rank.timing))
            assert len(rank.timing) <= phase.measurement_count(ws)
            assert rank.primary == (phase.primary or "forward")
            if phase.timed:
                assert rank.forward is not None and rank.forward is rank.timing[phase.primary]
            filled = rank.phase_figures
            names = {k for k, v in vars(filled).items() if v is not None} if filled else set()
            assert names == set(phase.figures), (path, names)
            seen.setdefault((record.phase, ws), set()).add(len(rank.timing))
        assert (record.figures is not None) == phase.timed
        if record.figures is not None:
            assert (record.figures.floor.floor_s is None) == (phase.floor == "none")
    assert {p for p, _ in seen} == {"phase1", "phase2", "phase3", "drift"}
    assert {ws for _, ws in seen} == {1, 2}
    assert all(counts == {5} for (phase, _), counts in seen.items() if phase == "phase3")


def test_each_phase_gets_its_own_table_and_plots(harness_run, tmp_path):
    out = build(list(harness_run), tmp_path / "report")
    phase1 = pd.read_csv(out / "tables" / "emulated_phase1.csv")
    assert len(phase1) == 4 and (phase1.floor_s > 0).all()  # phase2/3 rows stay out of it
    phase2 = pd.read_csv(out / "tables" / "emulated_phase2.csv")
    assert sorted(phase2.method) == ["block_shock_half", "dense_half"]
    assert set(phase2.backward_backend) == {"dense", "emulated"}
    assert (phase2.forward_backward_median_s > 0).all()
    phase3 = pd.read_csv(out / "tables" / "emulated_phase3.csv")
    assert len(phase3) == 6 and phase3.floor_s.isna().all() if "floor_s" in phase3 else True
    parts = ["backward_median_s", "grad_weight_median_s", "optimizer_median_s"]
    assert (phase3[[*parts, "compress_median_s", "median_s"]] > 0).all().all()
    by_opt = phase3.groupby("optimizer").optimizer_mib.min()
    assert by_opt["sgd"] == 0 and by_opt["adamw"] > 0  # AdamW's two moments are counted
    assert set(phase3.variant.dropna()) == {"T1", "T2"}
    for png in ("train_breakdown", "train_memory", "drift"):
        assert (out / f"emulated_{png}.png").stat().st_size > 5000
    md = (out / "report.md").read_text()
    assert "### phase3 train step" in md and "### phase2 backward wrt input" in md


def test_h2_ratio_and_interval_come_from_all_four_cells(timed):
    table = h2.table(timed)
    assert len(table) == 4  # block_shock_half x (sgd, adamw) x (T1, T2); no two-rank phase3
    assert set(table.pair) == {"block_shock_half/dense_half"}
    p1, p3 = timed[timed.phase == "phase1"], timed[timed.phase == "phase3"]
    fwd = (
        p1.median_s[p1.method == "block_shock_half"].item()
        / p1.median_s[p1.method == "dense_half"].item()
    )
    for r in table.itertuples():
        step = p3[(p3.optimizer == r.optimizer) & (p3.method == "dense_half")].median_s.item()
        bs = p3[(p3.optimizer == r.optimizer) & (p3.variant == r.variant)]
        assert r.r_train == pytest.approx(bs.median_s.item() / step)
        assert r.r_fwd == pytest.approx(fwd)
        assert r.ratio == pytest.approx(r.r_train / r.r_fwd) and r.lo <= r.ratio <= r.hi
    stated = [v for v in verdicts(as_gpu(timed)) if v.hypothesis.startswith("H2")]
    assert len(stated) == 4 and all("variant T" in v.basis for v in stated)


def planted(step_factor: float, fwd_factor: float = 1.0, spread: float = 0.01) -> pd.DataFrame:
    """phase1 and phase3 of both halves on one shape: Block-Shock's step `step_factor` times
    the dense step, its forward `fwd_factor` times the dense forward."""
    rng = np.random.default_rng(1)
    rows = []
    for phase, method, t, variant in (
        ("phase1", "dense_half", 1.0, None),
        ("phase1", "block_shock_half", fwd_factor, None),
        ("phase3", "dense_half", 3.0, None),
        ("phase3", "block_shock_half", 3.0 * step_factor, "T1"),
    ):
        samples = list(t * (1 + spread * rng.standard_normal(30)))
        rows.append(
            dict(phase=phase, method=method, N=4096, N_out=4096, B=64, dtype="bf16",
                 workload="gaussian", bias=False, emulated=False, samples=samples,
                 median_s=float(np.median(samples)),
                 backend="cslt" if "block" in method else "dense",
                 mask="transposable_random" if "block" in method else None,
                 optimizer="adamw" if phase == "phase3" else None, variant=variant,
                 shared_device=False)
        )  # fmt: skip
    return pd.DataFrame(rows)


def test_h2_verdict_follows_the_interval():
    def h2_verdict(t):
        (v,) = [v for v in verdicts(t) if v.hypothesis.startswith("H2")]
        return v

    shrinks = h2_verdict(planted(step_factor=1.5, fwd_factor=0.8))
    assert shrinks.verdict == "supported"
    assert shrinks.table.ratio.item() == pytest.approx(1.5 / 0.8, rel=0.02)
    assert h2_verdict(planted(step_factor=0.5, fwd_factor=0.8)).verdict == "refuted"
    assert h2_verdict(planted(step_factor=0.8, fwd_factor=0.8)).verdict == "inconclusive"
    both = pd.concat([planted(1.5, 0.8), planted(0.5, 0.8).assign(N=8192, N_out=8192)])
    assert h2_verdict(both).verdict == "mixed: supported in 1 of 2 cells, refuted in 1"


def test_bootstrap_is_one_approach_for_ratios_and_h2():
    a, b = [1.0, 1.1, 0.9, 1.05], [2.0, 2.1, 1.9, 2.2]
    assert analysis.bootstrap_ratio(a, b) == analysis.bootstrap(np.divide, a, b)


def test_h1_is_stated_per_backend_and_the_backend_is_in_the_table():
    t = planted(1.0, 0.8)
    t = t[t.phase == "phase1"]
    slow = t[t.method == "block_shock_half"].assign(
        backend="triton", samples=lambda d: [[s * 2 for s in x] for x in d.samples]
    )
    slow["median_s"] = [float(np.median(s)) for s in slow.samples]
    t = pd.concat([t, slow], ignore_index=True)
    h1 = {v.hypothesis: v for v in verdicts(t) if v.hypothesis.startswith("H1")}
    assert len(h1) == 2
    (cslt,) = [v for k, v in h1.items() if k.endswith("[backend cslt]")]
    (triton,) = [v for k, v in h1.items() if k.endswith("[backend triton]")]
    assert cslt.verdict == "supported" and triton.verdict == "refuted"
    assert set(triton.table.backend) == {"triton"}
    from reports.analysis.tables import backends

    table = backends(t.assign(pct_of_floor=50.0))
    assert sorted(table.backend) == ["cslt", "triton"]
    assert table.set_index("backend").vs_dense_half["triton"] == pytest.approx(1.6, rel=0.05)


def test_drift_plot_draws_one_line_and_its_bound_per_method(harness_run, monkeypatch, tmp_path):
    from reports.render import train_plots

    drawn = {}
    monkeypatch.setattr(train_plots, "_save", lambda fig, out, name: drawn.setdefault(name, fig))
    records = load([harness_run[1]]).records
    train_plots.drift(records, tmp_path, "x_")
    (ax,) = drawn["x_drift.png"].axes
    assert len(ax.lines) == 4  # two methods: error and bound each
    d = records[records.phase == "drift"].set_index("method")
    ys = sorted(tuple(ln.get_ydata()) for ln in ax.lines)
    for m in ("dense_half", "block_shock_half"):
        assert tuple(d.drift_errors[m]) in ys and tuple(d.drift_bounds[m]) in ys
        assert max(d.drift_errors[m]) < min(d.drift_bounds[m][-1:])  # passed: under its bound


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A two-cycle study of the two one-GPU phase1 cells, the dense half planted to fail."""
    out = tmp_path_factory.mktemp("study") / "s"
    cmd = [sys.executable, "-m", "bench.study", "run", "--suite", "report", "--matrix", MATRIX,
           "--out", str(out), "-k", "phase1 and ws1", "--cycles", "2", "--gap-s", "0",
           "--pytest-arg=-p", "--pytest-arg=tests.study.study_plant",
           f"--pytest-arg=--plant-fail={PLANTED}"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]  # 1: a cell failed
    return out


def test_a_study_folder_is_read_with_its_failures_and_spread_on_top(study, tmp_path):
    data = load([study])
    (row,) = data.benchmarks.itertuples()
    per_cycle = [
        len(b["stats"]["data"])
        for f in sorted((study / "bench").glob("*.json"))
        for b in json.loads(f.read_text())["benchmarks"]
        if b["name"] == row.name
    ]
    # both cycles' samples pooled (how many each cycle took depends on the machine's load)
    assert row.cycles == 2 and len(per_cycle) == 2 and len(row.samples) == sum(per_cycle)
    out = build([study], tmp_path / "report")
    md = (out / "report.md").read_text()
    top = md[: md.index("## Cells")]
    assert "### Failed or skipped cell runs (2)" in top
    reason = f"common.errors.CorrectnessError: {PLANTED}: planted"
    assert f"| {PLANTED} | 1 | failed | wrong_result | 1 | {reason}" in top
    assert "| phase1[block_shock_half-N128-B8-bf16-transposable_random" in top
    assert "phase1: 1 of 1 cells passed." in md


def test_a_study_record_that_fails_its_sidecar_is_refused_with_exit_2(study, tmp_path, capsys):
    edited = tmp_path / "edited"
    shutil.copytree(study, edited)
    (bench,) = sorted((edited / "bench").glob("c1-*.json"))
    doc = json.loads(bench.read_text())
    doc["benchmarks"][0]["stats"]["median"] *= 0.5
    bench.write_text(json.dumps(doc))
    assert main(["build", str(edited), "--out", str(tmp_path / "report")]) == 2
    err = capsys.readouterr().err
    assert str(edited) in err and f"bench/{bench.name}: sha256 differs" in err
    assert not (tmp_path / "report").exists()
