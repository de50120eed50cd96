"""notes/model-validation.md is what scripts/validate_model.py wrote: a few of its numbers are
re-derived here from the same committed inputs (the pairs that need no outside data)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reports.model import machine, validation
from reports.model.fitting import extrapolate, source_fit
from reports.model.observations import load

ROOT = Path(__file__).resolve().parents[2]
NOTES = (ROOT / "notes/model-validation.md").read_text()
GPUS = machine.load_all()


def at(paths: tuple[str, ...]) -> list[Path]:
    return [ROOT / p for p in paths]


@pytest.fixture(scope="module")
def h100():
    return load(at(validation.H100_RUNS + validation.H100X2_RUNS), GPUS)


@pytest.fixture(scope="module")
def h200():
    return load(at(validation.H200X2_RUNS), GPUS)


def section(title: str) -> str:
    start = NOTES.index(f"### {title}")
    end = NOTES.find("\n### ", start + 1)
    return NOTES[start : end if end > 0 else None]


def assert_matches(text: str, r: validation.PairResult) -> None:
    head = re.search(
        r"Held-out cells: (\d+); median \|error\| ([\d.]+)%, worst ([+-][\d.]+)%", text
    )
    assert head is not None
    assert int(head[1]) == len(r.judged)
    assert float(head[2]) == pytest.approx(100 * r.median, abs=0.051)
    assert float(head[3]) == pytest.approx(100 * r.worst.error, abs=0.051)
    assert (
        f"Over {r.choices} choices of one calibration cell per method, {r.choices_meeting} meet"
        in text
    )
    for method, (med, worst, n) in r.per_method.items():
        assert f"| {method} | {100 * med:.1f}% | {100 * worst:.1f}% | {n} |" in text


def test_h100_to_h200_is_re_derived(h100, h200):
    src = source_fit(h100, GPUS, "h100_sxm")
    cells = [o for o in h200.cells if o.cell.mode == "graph"]
    r = validation.out_of_sample("H100 SXM -> H200", src, cells, GPUS["h200"], "x")
    assert_matches(section("H100 SXM -> H200 (graph-mode cells"), r)


def test_the_original_subset_pair_is_re_derived(h100):
    src = source_fit(h100, GPUS, "h100_sxm")
    sub = load([ROOT / validation.ORIGINAL_SUBSET], GPUS)
    r = validation.out_of_sample("s", src, sub.cells, GPUS["rtx_pro_4000_blackwell"], "x")
    assert_matches(section("H100 SXM -> RTX PRO 4000 Blackwell (the committed subset alone"), r)
    assert r.median <= validation.TARGET_MEDIAN and abs(r.worst.error) <= validation.TARGET_WORST


def test_two_h200s_masked_split_composed_from_one_is_re_derived(h100, h200):
    fit = extrapolate(source_fit(h100, GPUS, "h100_sxm"), GPUS["h200"])
    twos = [o for o in h200.cells if o.cell.world_size == 2 and o.cell.mode == "graph"]
    rows = validation.composed_check(h200, twos, GPUS["h200"], fit)
    errs = sorted(abs(e) for *_, e in rows)
    text = section("Two H200s' masked split (graph)")
    for c, o, err in rows:
        assert f"| {1e3 * c.total_s:.4f} | {1e3 * o.median_s:.4f} | {100 * err:+.1f}% |" in text
    assert f"worst {100 * errs[-1]:.1f}%" in text
