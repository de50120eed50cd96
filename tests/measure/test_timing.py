"""The sampler and its stopping rule, on the host clock with real work."""

import math
import random
import statistics
import time

import pytest

from measure.timing.policy import TimingPolicy
from measure.timing.sampler import Sampler, Spread, StoppingRule, relative_std
from tests.measure import rank_tasks


def test_rule_waits_for_samples_and_time_then_noise():
    rule = StoppingRule(min_samples=3, min_time_s=0.01, max_time_s=5, max_noise=0.1)
    assert not rule.done(Spread([1e-3, 1e-3]), 1.0, 0.1)  # too few samples
    assert not rule.done(Spread([1e-3] * 5), 0.005, 0.1)  # too little measured time
    assert not rule.done(Spread([1e-3, 2e-3, 1e-3, 3e-3]), 1.0, 0.1)  # too noisy
    assert rule.done(Spread([1e-3] * 5), 1.0, 0.1)
    assert rule.done(Spread([1e-3, 9e-3]), 0.0, 5.0)  # the cap wins over everything


def test_relative_std():
    assert relative_std([1.0]) == float("inf")
    assert relative_std([2.0, 2.0, 2.0]) == 0.0
    assert relative_std([1.0, 3.0]) == pytest.approx(2**0.5 / 2)


def test_running_spread_matches_statistics():
    rng = random.Random(7)
    values = [rng.lognormvariate(-7, 0.3) for _ in range(500)]
    spread = Spread(values)
    assert spread.n == 500
    assert spread.mean == pytest.approx(statistics.fmean(values), rel=1e-12)
    assert spread.rel_std == pytest.approx(relative_std(values), rel=1e-9)
    assert Spread([1e-3]).rel_std == float("inf")


def _timed(seconds, calls):
    """A forward that sleeps and records its own (start, end) on the host clock: on a busy
    machine a sleep lasts longer than asked, so tests compare with what the forward took."""

    def forward():
        start = time.perf_counter()
        time.sleep(seconds)
        calls.append((start, time.perf_counter()))

    return forward


def test_host_sampler_measures_real_sleeps(solo_ctx):
    policy = TimingPolicy(
        min_samples=5, min_time_s=0.02, max_time_s=2, max_noise=0.2, sample_s=0.001, warmup_s=0.01
    )
    calls = []
    stats = Sampler(solo_ctx, policy).measure(_timed(0.002, calls), "host")
    assert stats.inner == 1  # a sample shorter than one forward holds one forward
    assert len(stats.samples) >= 5
    sampled = [end - start for start, end in calls[-len(stats.samples) :]]
    # Each sample brackets its forward's call, and a sleep never ends early.
    assert all(s >= d >= 0.002 for s, d in zip(stats.samples, sampled, strict=True))
    assert stats.median - statistics.median(sampled) < 1e-3  # and adds only the call's cost
    assert stats.min <= stats.q1 <= stats.median <= stats.q3 <= stats.max
    assert stats.measured_s >= 0.02
    assert stats.rank_medians == [stats.median]  # one rank: the agreed series is its own
    assert stats.sm_clock_mhz == []  # no NVML clock on the host


def test_samples_are_sized_and_preceded_by_a_warm_up(solo_ctx):
    policy = TimingPolicy(
        min_samples=3, min_time_s=0.01, max_time_s=2, max_noise=1.0, sample_s=0.01, warmup_s=0.05
    )
    calls = []
    stats = Sampler(solo_ctx, policy).measure(_timed(0.001, calls), "host")
    # Sized from the fastest of the 3 timed forwards after the first call (the sampler's clock
    # brackets each, so reads at least as long, and by little more than the call's cost).
    fastest = min(end - start for start, end in calls[1:4])
    assert round(0.01 / (fastest + 1e-3)) <= stats.inner <= round(0.01 / fastest) <= 10
    sampled = stats.inner * len(stats.samples)
    warm_up = len(calls) - 4 - sampled
    assert warm_up >= stats.inner and warm_up % stats.inner == 0  # whole sized runs
    assert stats.warmup_s >= 0.05
    first_sampled_start = calls[-sampled][0]
    assert first_sampled_start - calls[3][1] >= 0.05  # sampling began after the warm-up
    assert 0.5 < stats.duty <= 1.0  # the host loop is the only gap between samples


def test_cold_samples_take_one_forward_each(solo_ctx):
    policy = TimingPolicy(min_samples=3, min_time_s=1e-4, max_time_s=2, max_noise=1.0, warmup_s=0)
    stats = Sampler(solo_ctx, policy).measure(lambda: time.sleep(1e-4), "host", cache="cold")
    assert stats.inner == 1 and stats.cache == "cold"


def test_ranks_stop_together_on_the_slowest_ranks_samples(gloo_pair):
    r0, r1 = gloo_pair.run(rank_tasks.measure_uneven_sleeps)
    assert r0["samples"] == r1["samples"]  # one agreed series, so one stopping decision
    assert r0["inner"] == r1["inner"]
    assert r0["rank_medians"] == r1["rank_medians"]
    fast, slow = r0["rank_medians"]
    assert fast >= 0.001 and slow >= 0.002  # each rank's own sleeps
    # Each sample is the slower rank's, so their median is at least every rank's own median
    # (on an idle machine rank 0's alone would be about 1 ms).
    assert r0["median"] >= slow and r0["median"] >= fast
    assert r0["median"] == pytest.approx(slow, rel=0.2)


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
@pytest.mark.parametrize("key", ["max_time_s", "min_time_s", "warmup_s", "energy_window_s"])
def test_timing_values_must_be_finite(key, value):
    assert "must be a finite positive number" in TimingPolicy.problem(key, value)


def test_an_infinite_time_cap_option_is_a_usage_error(pytester):
    pytester.makeconftest('pytest_plugins = ["measure.plugin"]')
    result = pytester.runpytest_inprocess("--bs-max-time=inf", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--bs-max-time must be a finite positive number, got inf*"])
