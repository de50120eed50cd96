"""phase3 and drift: k >= 3 train steps of every method equal a float64 reference trained with
the same rule, within the bound carried step by step; a planted stale compression fails; the
drift block stays under its bound and a planted 1% layer error fails it."""

from dataclasses import replace

import pytest
import torch

from common.cell import CellSpec
from common.errors import CellSpecError, CorrectnessError, MatrixError
from kernels import registry
from kernels.training import make_optimizer
from measure.cells.matrix import validate_cell
from measure.checks.training import assert_drift, assert_trained
from tests.measure.rank_tasks import run_drift_block, train_figures

STEPS = 3


def _cell(method, mask, ws, n=256, n_out=128, dtype="bf16", phase="phase3"):
    return CellSpec(phase, method, n, n_out, 8, dtype, mask, "gaussian", ws, False)


def _assert_all(figs, cell, variant=None):
    for rank, fig in enumerate(figs):
        assert_trained(fig, cell.name, rank)
        if variant == "T2":  # the forward stays at W_0: the loss does not move (the master does)
            assert fig.losses[0] == fig.losses[-1]
        else:
            assert fig.losses[-1] < 0.6 * fig.losses[0]  # it trained: not vacuous


TWO_RANK = [
    ("dense_tp_row", None, None, "sgd", "bf16"),
    ("dense_tp_col", None, None, "adamw", "bf16"),
    ("dense_tp_interleaved", "complement_1001_0110", None, "sgd", "fp32"),
    ("masked_split_dense", "random_2of4", None, "adamw", "bf16"),
    ("block_shock", "transposable_random", "T1", "sgd", "bf16"),
    ("block_shock", "transposable_magnitude", "T1m", "adamw", "bf16"),
    ("block_shock", "random_2of4", "T2", "sgd", "fp32"),
    ("block_shock", "transposable_periodic", "T1", "adamw", "fp32"),
]


@pytest.mark.parametrize("method, mask, variant, optimizer, dtype", TWO_RANK)
def test_two_rank_train_steps_equal_float64(gloo_pair, method, mask, variant, optimizer, dtype):
    cell = _cell(method, mask, 2, dtype=dtype)
    figs = gloo_pair.run(train_figures, cell.as_dict(), 31, optimizer, variant, STEPS)
    _assert_all(figs, cell, variant)


ONE_RANK = [
    ("dense_single", None, None),
    ("dense_half", None, None),
    ("block_shock_half", "transposable_random", "T1"),
    ("block_shock_half", "transposable_magnitude", "T1m"),
    ("block_shock_half", "transposable_periodic", "T2"),
]


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
@pytest.mark.parametrize("dtype", ["bf16", "fp32"])
@pytest.mark.parametrize("method, mask, variant", ONE_RANK)
def test_one_rank_train_steps_equal_float64(solo_ctx, method, mask, variant, dtype, optimizer):
    cell = _cell(method, mask, 1, n=128, n_out=256, dtype=dtype)
    fig = train_figures(solo_ctx, cell.as_dict(), 32, optimizer, variant, STEPS)
    _assert_all([fig], cell, variant)


CHUNKED = [
    ("dense_tp_col", None, None, "adamw"),
    ("dense_tp_row", None, None, "sgd"),
    ("block_shock", "transposable_magnitude", "T1m", "adamw"),
    ("block_shock", "transposable_random", "T2", "sgd"),
]


@pytest.mark.parametrize("method, mask, variant, optimizer", CHUNKED)
def test_row_chunked_reference_equals_the_whole(gloo_pair, method, mask, variant, optimizer):
    """The reference trains W a few rows at a time (N = 32768 needs it); 7 and 48 rows cut
    through dense_tp_col's row split (64 rows a rank) and give one chunk's figures."""
    cell = _cell(method, mask, 2)
    whole = gloo_pair.run(train_figures, cell.as_dict(), 35, optimizer, variant, STEPS, False)
    for rows in (7, 48):
        chunked = gloo_pair.run(
            train_figures, cell.as_dict(), 35, optimizer, variant, STEPS, False, rows
        )
        for rank, (a, b) in enumerate(zip(whole, chunked, strict=True)):
            assert a.losses == b.losses, rank  # the same run
            for key in ("reference_losses", "weight_rel_fro", "weight_rel_fro_bound"):
                assert getattr(b, key) == pytest.approx(getattr(a, key), rel=1e-9), (rank, key)
            # float64 GEMMs over other shapes round differently, far below the run's error
            assert b.weight_max_abs_over_bound == pytest.approx(a.weight_max_abs_over_bound)
            assert b.loss_error_over_bound == pytest.approx(a.loss_error_over_bound, 1e-6)
            assert 0 < b.weight_rel_fro < b.weight_rel_fro_bound


def test_stale_compression_fails_the_two_rank_check(gloo_pair):
    """T1 whose optimizer step is not followed by a re-compression: bf16, SGD."""
    cell = _cell("block_shock", "transposable_random", 2)
    figs = gloo_pair.run(train_figures, cell.as_dict(), 33, "sgd", "T1", STEPS, True)
    for rank, fig in enumerate(figs):
        with pytest.raises(CorrectnessError, match=rf"rank {rank}: a step's loss is"):
            assert_trained(fig, cell.name, rank)


def test_stale_compression_fails_the_adamw_check_in_fp32(solo_ctx):
    """AdamW's bf16 bound is too loose to see a stale half over 3 steps (see the report)."""
    cell = _cell("block_shock_half", "transposable_random", 1, dtype="fp32")
    fig = train_figures(solo_ctx, cell.as_dict(), 34, "adamw", "T1", STEPS, True)
    with pytest.raises(CorrectnessError, match="a step's loss is"):
        assert_trained(fig, cell.name)


@pytest.mark.parametrize(
    "method, mask, variant, bad, rule",
    [
        ("dense_single", None, None, {"variant": "T1"}, "takes no variant"),
        ("block_shock", "random_2of4", "T1", {"variant": None}, "needs a variant"),
        ("block_shock", "random_2of4", "T1", {"variant": "T1m"}, "T1m re-chooses a transposable"),
        ("dense_tp_row", None, None, {"bias": True}, "phase3 cells take bias false"),
    ],
)
def test_bad_training_axes_are_refused_before_anything_runs(method, mask, variant, bad, rule):
    """The matrix holds a train step's rules (validate_cell runs as benchmarks.json loads): the
    cell passes, and with one axis broken it is refused naming the rule."""
    ws = registry.spec(method).world_size or 2
    cell = replace(_cell(method, mask, ws), optimizer="sgd", variant=variant, steps=STEPS)
    validate_cell(cell)
    with pytest.raises(MatrixError, match=rule):
        validate_cell(replace(cell, **bad))


def test_a_variant_name_is_never_guessed(solo_ctx):
    """Any variant but T1m and T2 would otherwise train as T1."""
    cell = replace(_cell("block_shock_half", "transposable_random", 1), variant="T3")
    with pytest.raises(CellSpecError, match="unknown variant 'T3'; variants: "):
        train_figures(solo_ctx, cell.as_dict(), 38, "sgd", "T3")


def test_an_optimizer_name_is_never_guessed():
    w = [torch.nn.Parameter(torch.ones(2))]
    assert isinstance(make_optimizer("adamw", w, 0.1), torch.optim.AdamW)
    assert isinstance(make_optimizer("sgd", w, 0.1), torch.optim.SGD)
    with pytest.raises(CellSpecError, match="unknown optimizer 'adam' \\(did you mean 'adamw'"):
        make_optimizer("adam", w, 0.1)


@pytest.mark.parametrize("dtype", ["bf16", "fp32"])
def test_two_rank_drift_stays_under_its_bound(gloo_pair, dtype):
    cell = _cell("block_shock", "transposable_random", 2, n=128, dtype=dtype, phase="drift")
    for rank, fig in enumerate(gloo_pair.run(run_drift_block, cell.as_dict(), 35, 32)):
        assert_drift(fig, cell.name, rank)
        assert len(fig.errors) == 32 and fig.errors[-1] > 0


def test_drift_fails_on_a_planted_one_percent_layer_error(solo_ctx):
    cell = _cell("dense_single", None, 1, n=128, dtype="fp32", phase="drift")
    fig = run_drift_block(solo_ctx, cell.as_dict(), 36, 32, 1.01)
    with pytest.raises(CorrectnessError, match="drift step 1: relative error"):
        assert_drift(fig, cell.name)


def test_drift_needs_a_positive_number_of_steps(solo_ctx):
    cell = _cell("dense_single", None, 1, n=128, dtype="fp32", phase="drift")
    with pytest.raises(CellSpecError, match="T must be a positive"):
        run_drift_block(solo_ctx, cell.as_dict(), 37, 0)
