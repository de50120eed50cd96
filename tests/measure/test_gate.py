"""The correctness gate bites: a planted wrong kernel fails its cell, loudly, is recorded as
failed, and leaves nothing behind for the benchmark files."""

import pytest

from common.cell import CellSpec
from common.errors import CorrectnessError
from kernels.methods import BlockShockHalf
from measure.cells.matrix import load_matrix
from measure.phases.pipeline import TaskOptions
from measure.plugin.session import BenchSession
from measure.records.writer import RunRecords, read_json

CELL = CellSpec(
    "phase0", "block_shock_half", 256, 256, 64, "bf16", "random_2of4", "gaussian", 1, False
)


class InProcessPool:
    """A world_size-1 'pool' that runs the task in this process (so monkeypatches apply)."""

    world_size, generation, torchrun = 1, 0, None

    def __init__(self, ctx):
        self.ctx = ctx

    def get(self, world_size):
        return self

    def run(self, fn, *args):
        return [fn(self.ctx, *args)]

    run_setup = run

    def close(self):
        pass


def _session(tmp_path, ctx):
    matrix = load_matrix()
    return BenchSession(
        matrix=matrix,
        suite=matrix.suite("smoke"),
        seed=1,
        device_type="cpu",
        options=TaskOptions(),
        records=RunRecords(tmp_path, "planted"),
        registry_factory=lambda: InProcessPool(ctx),
    )


def _record(tmp_path, cell):
    return read_json(tmp_path / "planted" / "cells" / cell.phase / f"{cell.id}.json")


def test_a_kernel_that_drops_one_group_fails_the_cell(solo_ctx, tmp_path, monkeypatch):
    def drop_group_1(self, a):
        m = a.masks[0].clone()
        m[:, 4:8] = False  # every row loses input group 1: no longer the half it claims to be
        return m

    monkeypatch.setattr(BlockShockHalf, "_half_mask", drop_group_1)
    with pytest.raises(CorrectnessError) as e:
        _session(tmp_path, solo_ctx).run(CELL)
    msg = str(e.value)
    assert CELL.name in msg and "rank 0" in msg and "exceeds" in msg
    doc = _record(tmp_path, CELL)
    assert doc["status"] == "failed" and doc["correct"] is False
    assert doc["failure_kind"] == "wrong_result" and doc["failed_rank"] == 0
    errors = doc["ranks"][0]["errors"]
    assert errors["rel_fro"] > 10 * errors["rel_fro_bound"]
    assert doc["published"] is False


def test_the_same_cell_passes_without_the_plant(solo_ctx, tmp_path):
    result = _session(tmp_path, solo_ctx).run(CELL)
    assert result.passed
    assert 0 < result.ranks[0].errors.rel_fro < result.ranks[0].errors.rel_fro_bound
    assert _record(tmp_path, CELL)["status"] == "passed"


def test_nan_in_the_output_always_fails(solo_ctx, tmp_path, monkeypatch):
    original = BlockShockHalf.compute

    def one_nan(self, x):
        out = original(self, x)
        out[0, 0] = float("nan")
        return out

    monkeypatch.setattr(BlockShockHalf, "compute", one_nan)
    with pytest.raises(CorrectnessError, match="1 output elements are NaN/inf"):
        _session(tmp_path, solo_ctx).run(CELL)


def test_nan_in_the_input_is_named_as_the_inputs_fault(solo_ctx, tmp_path, monkeypatch):
    import measure.cells.build as cb

    original = cb.make_inputs

    def nan_input(*a, **k):
        x, w, b = original(*a, **k)
        x[0, 0] = float("nan")
        return x, w, b

    monkeypatch.setattr(cb, "make_inputs", nan_input)
    with pytest.raises(CorrectnessError, match=r"inputs \(X, W or b\) hold 1 NaN/inf"):
        _session(tmp_path, solo_ctx).run(CELL)


def test_a_phase1_cell_that_fails_its_check_is_never_timed(solo_ctx, tmp_path, monkeypatch):
    """The ranks stop after the check: no sample is taken, no figure derived or recorded."""
    cell = CellSpec(
        "phase1", "block_shock_half", 256, 256, 8, "bf16", "random_2of4", "gaussian", 1, False
    )
    original = BlockShockHalf.compute

    def five_percent_off(self, x):
        return original(self, x).mul_(1.05)

    monkeypatch.setattr(BlockShockHalf, "compute", five_percent_off)
    with pytest.raises(CorrectnessError):
        _session(tmp_path, solo_ctx).run(cell)
    doc = _record(tmp_path, cell)
    assert doc["status"] == "failed" and "figures" not in doc
    assert doc["ranks"][0]["timing"] == {} and doc["published"] is False
