"""Workloads: real generators with the statistics they claim; bad names are refused."""

import pytest
import torch

from common.errors import CellSpecError
from measure.cells.workloads import FIXED_SEED, WORKLOADS, describe


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_every_workload_is_finite_nonzero_and_described(workload_inputs, name):
    x, w, b = workload_inputs(name, 64, 256, 128, bias=True, dtype=torch.float32, seed=3)
    assert x.shape == (64, 256) and w.shape == (128, 256) and b.shape == (128,)
    assert torch.isfinite(x).all() and x.abs().max() > 0 and x.std() > 0.1
    assert describe(name)


def test_seeds_give_fresh_inputs_except_fixed_seed(workload_inputs):
    a = workload_inputs("gaussian", 8, 64, 64, seed=1)[0]
    b = workload_inputs("gaussian", 8, 64, 64, seed=2)[0]
    f1 = workload_inputs("fixed_seed", 8, 64, 64, seed=1)[0]
    f2 = workload_inputs("fixed_seed", 8, 64, 64, seed=2)[0]
    assert not torch.equal(a, b) and torch.equal(f1, f2)
    assert str(FIXED_SEED) in describe("fixed_seed")


def test_the_statistics_differ_as_described(workload_inputs):
    def x(name):
        return workload_inputs(name, 256, 512, 64, dtype=torch.float32, seed=5)[0]

    mlp = x("transformer_mlp_like")
    col_rms = mlp.pow(2).mean(0).sqrt()
    assert (col_rms > 10).sum() >= 2  # a few outlier channels
    act = x("activation_like")
    assert act.mean() > 0.3 and (act < 0).float().mean() > 0.3  # skewed, mostly small negatives
    conv = x("vision_conv")
    neighbours = torch.corrcoef(torch.stack([conv[:, 10], conv[:, 11]]))[0, 1]
    far = torch.corrcoef(torch.stack([conv[:, 10], conv[:, 100]]))[0, 1]
    assert neighbours > 0.5 and abs(far) < 0.3


def test_unknown_workload_suggests_the_closest(workload_inputs):
    with pytest.raises(CellSpecError, match="did you mean 'vision_conv'"):
        workload_inputs("vision_con", 8, 64, 64)
