"""The correctness gate bites: a planted wrong kernel fails its phase0 cell, loudly."""

import pytest

from common.errors import CorrectnessError
from kernels.methods import BlockShockHalf
from measure.matrix import CellSpec, load_matrix
from measure.records import RunRecords, read_json
from measure.runner import run_phase0
from measure.session import BenchSession

CELL = CellSpec(
    "phase0", "block_shock_half", 256, 256, 64, "bf16", "random_2of4", "gaussian", 1, False
)


def _session(tmp_path):
    matrix = load_matrix()
    return BenchSession(
        matrix=matrix,
        suite=matrix.suite("smoke"),
        seed=1,
        device_type="cpu",
        timing={},
        options={"backend": "auto"},
        records=RunRecords(tmp_path, "planted"),
        registry_factory=None,
    )


def test_a_kernel_that_drops_one_group_fails_the_cell(solo_ctx, tmp_path, monkeypatch):
    def drop_group_1(self, a):
        m = a.masks[0].clone()
        m[:, 4:8] = False  # every row loses input group 1: no longer the half it claims to be
        return m

    monkeypatch.setattr(BlockShockHalf, "_half_mask", drop_group_1)
    bench = _session(tmp_path)
    result = run_phase0(solo_ctx, CELL.as_dict(), 7, {"backend": "auto"})
    with pytest.raises(CorrectnessError) as e:
        bench.finish(CELL, [result])
    msg = str(e.value)
    assert CELL.name in msg and "rank 0" in msg
    assert f"relative Frobenius error {result['errors']['rel_fro']:.3e} exceeds" in msg
    assert result["errors"]["rel_fro"] > 10 * result["errors"]["rel_fro_bound"]
    doc = read_json(tmp_path / "planted" / "cells" / "phase0" / f"{CELL.id}.json")
    assert doc["correct"] is False and "exceeds the bound" in doc["failure"]


def test_the_same_cell_passes_without_the_plant(solo_ctx, tmp_path):
    bench = _session(tmp_path)
    result = run_phase0(solo_ctx, CELL.as_dict(), 7, {"backend": "auto"})
    bench.finish(CELL, [result])
    assert 0 < result["errors"]["rel_fro"] < result["errors"]["rel_fro_bound"]


def test_nan_in_the_output_always_fails(solo_ctx, tmp_path, monkeypatch):
    original = BlockShockHalf.compute

    def one_nan(self, x):
        out = original(self, x)
        out[0, 0] = float("nan")
        return out

    monkeypatch.setattr(BlockShockHalf, "compute", one_nan)
    result = run_phase0(solo_ctx, CELL.as_dict(), 7, {"backend": "auto"})
    with pytest.raises(CorrectnessError, match="1 output elements are NaN/inf"):
        _session(tmp_path).finish(CELL, [result])
