"""The process-group pool: real gloo ranks, reuse, and failures that never hang pytest."""

import time

import pytest

from common.errors import RankError, RankTimeout
from measure.ranks import RankPool
from tests.rank_tasks import all_reduce_rank_plus_one, raise_on_rank1, rank_and_pid, sleep_on_rank0


def test_two_gloo_ranks_all_reduce(gloo_pair):
    assert gloo_pair.backend == "gloo"
    assert gloo_pair.run(all_reduce_rank_plus_one) == [3.0, 3.0]


def test_the_pool_is_reused_not_restarted(gloo_pair):
    first = gloo_pair.run(rank_and_pid)
    second = gloo_pair.run(rank_and_pid)
    assert first == second and [r for r, _ in first] == [0, 1]


def test_a_rank_that_raises_fails_fast_with_its_traceback():
    pool = RankPool(2, "cpu", timeout_s=60)
    t0 = time.monotonic()
    with pytest.raises(RankError, match=r"rank 1 of world_size 2 raised:[\s\S]*planted failure"):
        pool.run(raise_on_rank1)
    assert time.monotonic() - t0 < 20  # the grace period, not the 60 s bound
    assert not pool.alive
    with pytest.raises(RankError, match="torn down"):
        pool.run(rank_and_pid)


def test_a_rank_that_hangs_times_out_within_the_bound():
    pool = RankPool(2, "cpu", timeout_s=3)
    t0 = time.monotonic()
    with pytest.raises(RankTimeout, match=r"rank\(s\) \[0\] of world_size 2 did not answer"):
        pool.run(sleep_on_rank0, 30)
    assert time.monotonic() - t0 < 10
    assert not pool.alive
