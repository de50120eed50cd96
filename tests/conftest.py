"""Shared fixtures for the unit tests: rank pools of the real harness, on CPU (gloo)."""

import pytest
import torch

from measure.ranks import RankContext, RankPool


@pytest.fixture(scope="session")
def gloo_pair():
    """Two gloo ranks on the CPU, started once for the unit tests that need a real group."""
    pool = RankPool(2, "cpu", timeout_s=60)
    yield pool
    pool.close()


@pytest.fixture
def solo_ctx():
    """A world_size-1 context in this process (no group needed)."""
    return RankContext(0, 1, torch.device("cpu"), "gloo", None, False)
