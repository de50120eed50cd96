"""phase2: every method's grad_X equals float64 grad_Y W_eff within the derived bound; a planted
wrong backward fails; Block-Shock says which backward kernel it ran."""

import pytest

from common.cell import CellSpec
from common.errors import CorrectnessError, MaskError
from measure.checks import bounds as checks
from tests.measure.rank_tasks import backward_figures

TWO_RANK = [
    ("dense_tp_row", None),
    ("dense_tp_col", None),
    ("dense_tp_interleaved", "complement_1010_0101"),
    ("masked_split_dense", "transposable_random"),
    ("block_shock", "transposable_magnitude"),
    ("block_shock", "random_2of4"),
]
ONE_RANK = [
    ("dense_single", None),
    ("dense_half", None),
    ("block_shock_half", "transposable_periodic"),
]


def _cell(method, mask, ws, n=256, n_out=128, b=8, dtype="bf16"):
    return CellSpec("phase2", method, n, n_out, b, dtype, mask, "gaussian", ws, False)


def _assert_all(figs, cell):
    for rank, fig in enumerate(figs):
        checks.assert_correct(fig.errors, cell.name, rank)
        assert fig.errors.rel_fro > 0  # bf16 did round: the comparison is not vacuous


@pytest.mark.parametrize("method, mask", TWO_RANK)
def test_two_rank_backward_equals_float64(gloo_pair, method, mask):
    cell = _cell(method, mask, 2)
    figs = gloo_pair.run(backward_figures, cell.as_dict(), 21)
    _assert_all(figs, cell)
    if method == "block_shock":
        expected = "emulated" if mask.startswith("transposable") else "masked_dense"
        assert {f.backward_backend for f in figs} == {expected}


@pytest.mark.parametrize("dtype", ["bf16", "fp32"])
@pytest.mark.parametrize("method, mask", ONE_RANK)
def test_one_rank_backward_equals_float64(solo_ctx, method, mask, dtype):
    cell = _cell(method, mask, 1, n=128, n_out=256, dtype=dtype)
    _assert_all([backward_figures(solo_ctx, cell.as_dict(), 22)], cell)


def test_planted_wrong_backward_fails_its_check(gloo_pair):
    cell = _cell("block_shock", "transposable_random", 2)
    figs = gloo_pair.run(backward_figures, cell.as_dict(), 23, 1)
    checks.assert_correct(figs[0].errors, cell.name, 0)
    with pytest.raises(CorrectnessError, match=r"rank 1: relative Frobenius error"):
        checks.assert_correct(figs[1].errors, cell.name, 1)


def test_demanded_2of4_backward_refuses_a_non_transposable_mask(solo_ctx):
    cell = _cell("block_shock_half", "magnitude_2of4", 1)
    with pytest.raises(MaskError, match="not transposable: column"):
        backward_figures(solo_ctx, cell.as_dict(), 24, require_sparse=True)


def test_demanded_2of4_backward_takes_a_transposable_mask(gloo_pair):
    cell = _cell("block_shock", "transposable_periodic", 2)
    figs = gloo_pair.run(backward_figures, cell.as_dict(), 25, None, True)
    _assert_all(figs, cell)
    assert {f.backward_backend for f in figs} == {"emulated"}
