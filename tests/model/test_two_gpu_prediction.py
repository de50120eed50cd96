"""The report's predicted two-GPU H1 (reports/analysis/predicted.py) held to a real two-GPU run.

The one-H100 run `h100-2026-11-25c` timed every 2:4 half beside the dense half; two H100s over
NCCL then timed Block-Shock and row-parallel TP on the same shapes (`h100x2-2026-11-25c`, both in
reports/published/data). The prediction composes each two-GPU forward from the one-GPU half plus
the link model, so it can be wrong in ways its interval does not cover (the second run's own
cuSPARSELt search, its clocks, overlap); what a reader relies on is the verdict's direction.
This test builds both from the committed records, as `reports build` does, and holds each
predicted ratio to the measured one's side of 1 (Block-Shock slower or faster than TP), prints
the errors, and checks a shape measured on two GPUs is never predicted beside it.
"""

from __future__ import annotations

import statistics

import pytest

from reports.analysis.predicted import PREDICTED, predictions
from reports.analysis.verdicts import verdicts
from reports.read.load import load
from reports.read.outcomes import sort_out
from tests.conftest import ROOT

DATA = ROOT / "reports" / "published" / "data"
ONE = [DATA / "h100-2026-11-25c" / "backends.json"]
TWO = [DATA / "h100x2-2026-11-25c" / f"b2_{part}.json" for part in "ab"]


def _by_backend(vs, prefix: str) -> dict[str, dict[tuple[int, int], float]]:
    out = {}
    for v in vs:
        if v.slug.startswith(prefix) and v.table is not None and not v.table.empty:
            backend = str(v.table.backend.iloc[0]) if "backend" in v.table else v.slug
            out[backend] = {(int(r.N), int(r.B)): float(r.ratio) for r in v.table.itertuples()}
    return out


@pytest.fixture(scope="module")
def one_gpu():
    return sort_out(load(ONE)).timed


def test_predicted_h1_takes_the_measured_side_of_one_in_every_shared_cell(one_gpu):
    predicted = predictions(one_gpu)
    assert all(v.hypothesis.startswith(PREDICTED) for v in predicted.verdicts)
    guess = _by_backend(predicted.verdicts, "predicted_h1_")
    seen = _by_backend(verdicts(sort_out(load(TWO)).timed), "h1_")
    assert set(guess) == set(seen) == {"cslt", "cslt_padded", "triton"}
    errors, shared = [], 0
    for backend, cells in seen.items():
        for shape, measured in cells.items():
            assert shape in guess[backend], f"{backend} {shape}: measured, not predicted"
            p = guess[backend][shape]
            assert (p < 1) == (measured < 1), f"{backend} N,B={shape}: {p:.3f} vs {measured:.3f}"
            errors.append(abs(p / measured - 1))
            shared += 1
    assert shared == 12
    print(f"predicted/measured - 1 over {shared} cells: median {statistics.median(errors):.1%}, "
          f"worst {max(errors):.1%}")  # fmt: skip


def test_a_shape_measured_on_two_gpus_is_not_predicted_beside_it(one_gpu):
    """With the two-GPU cuSPARSELt cells (b2_b: Block-Shock only; b2_a repeats a one-GPU
    cell's name) among the inputs, their shapes lose their predictions, every backend's."""
    both = sort_out(load([*ONE, TWO[1]])).timed
    measured = {(int(r.N), int(r.B)) for r in both[both.world_size == 2].itertuples()}
    predicted = _by_backend(predictions(both).verdicts, "predicted_h1_")
    alone = _by_backend(predictions(one_gpu).verdicts, "predicted_h1_")
    assert measured and set(predicted) == set(alone)
    for backend, cells in predicted.items():
        assert not set(cells) & measured, backend
        assert set(cells) == set(alone[backend]) - measured  # the rest still predicted
