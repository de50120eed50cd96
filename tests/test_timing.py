"""The sampler and its stopping rule, on the host clock with real work."""

import time

import pytest

from measure.timing import Sampler, StoppingRule, relative_std


def test_rule_waits_for_samples_and_time_then_noise():
    rule = StoppingRule(min_samples=3, min_time_s=0.01, max_time_s=5, max_noise=0.1)
    assert not rule.done([1e-3, 1e-3], 1.0, 0.1)  # too few samples
    assert not rule.done([1e-3] * 5, 0.005, 0.1)  # too little measured time
    assert not rule.done([1e-3, 2e-3, 1e-3, 3e-3], 1.0, 0.1)  # too noisy
    assert rule.done([1e-3] * 5, 1.0, 0.1)
    assert rule.done([1e-3, 9e-3], 0.0, 5.0)  # the cap wins over everything


def test_relative_std():
    assert relative_std([1.0]) == float("inf")
    assert relative_std([2.0, 2.0, 2.0]) == 0.0
    assert relative_std([1.0, 3.0]) == pytest.approx(2**0.5 / 2)


def test_host_sampler_measures_real_sleeps(solo_ctx):
    rule = StoppingRule(min_samples=5, min_time_s=0.02, max_time_s=2, max_noise=0.2)
    stats = Sampler(solo_ctx, rule).measure(lambda: time.sleep(0.002), "host")
    assert len(stats.samples) >= 5
    assert 0.002 <= stats.median < 0.01
    assert stats.min <= stats.q1 <= stats.median <= stats.q3 <= stats.max
    assert stats.measured_s >= 0.02
    assert stats.rank_medians == [pytest.approx(stats.median, rel=0.5)]


def test_cold_samples_take_one_forward_each(solo_ctx):
    rule = StoppingRule(min_samples=3, min_time_s=1e-4, max_time_s=2, max_noise=1.0)
    stats = Sampler(solo_ctx, rule).measure(lambda: time.sleep(1e-4), "host", cache="cold")
    assert stats.inner == 1 and stats.cache == "cold"
