"""The statistical regression gate's arithmetic and its command, on synthetic samples.

(Real runs of the harness, unchanged and with a planted slowdown: test_regression_gate_runs.py.)
"""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from common.errors import GateError
from measure.gate.machine import COMPARED, KEY, differences
from measure.gate.regression import (
    MIN_SAMPLES,
    GateRule,
    block_length,
    judge_runs,
    load_run,
    median_ratio_interval,
)
from tests.conftest import ROOT


def _bench(name, samples):
    return {
        "name": name,
        "fullname": f"bench/test_phase1.py::{name}",
        "stats": {"data": list(samples)},
    }


def _noisy(rng, n, scale=1e-4, spread=0.05):
    return scale * rng.lognormal(0.0, spread, n)


def test_a_slowdown_beyond_the_minimum_effect_regresses_and_noise_does_not():
    rng = np.random.default_rng()  # fresh samples each run
    old = [_bench("phase1[a]", _noisy(rng, 300)), _bench("phase1[b]", _noisy(rng, 300))]
    new = [
        _bench("phase1[a]", 1.2 * _noisy(rng, 300)),  # 20% slower
        _bench("phase1[b]", _noisy(rng, 300)),  # the same law
    ]
    judged = {v.name: v for v in judge_runs(old, new, GateRule()).judged}
    slow, same = (
        judged["bench/test_phase1.py::phase1[a]"],
        judged["bench/test_phase1.py::phase1[b]"],
    )
    assert slow.regressed and slow.interval[0] > 1.05 and 1.15 < slow.ratio < 1.25
    assert not same.regressed and not same.improved


def test_a_slowdown_inside_the_minimum_effect_is_not_a_regression():
    rng = np.random.default_rng()
    old = [_bench("phase1[a]", _noisy(rng, 400, spread=0.01))]
    new = [_bench("phase1[a]", 1.03 * _noisy(rng, 400, spread=0.01))]
    (v,) = judge_runs(old, new, GateRule(min_effect=0.05)).judged
    assert v.interval[0] > 1.0  # shown slower ...
    assert not v.regressed  # ... but by less than the effect that matters
    (v,) = judge_runs(old, new, GateRule(min_effect=0.01)).judged
    assert v.regressed


def test_the_interval_covers_the_true_ratio_at_its_confidence():
    """Independent lognormal samples, 200 pairs with fixed seeds: a 90% interval of the median
    ratio misses the true ratio (1.1) about 10% of the time."""
    misses = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        a, b = rng.lognormal(0, 0.3, 60), 1.1 * rng.lognormal(0, 0.3, 60)
        _, (lo, hi) = median_ratio_interval(
            list(a), list(b), GateRule(confidence=0.9, resamples=500, seed=seed)
        )
        misses += not lo <= 1.1 <= hi
    assert 8 <= misses <= 32  # 10% of 200 = 20, binomial sd 4.2


def test_dependent_samples_get_longer_blocks_and_a_wider_interval():
    """A run whose load drifts (a slow random walk) has samples that are not independent: its
    blocks are long, and its interval is wider than for the same values in random order."""
    rng = np.random.default_rng(5)
    drift = np.exp(np.cumsum(rng.normal(0, 0.02, 1000)))
    walk = 1e-4 * drift * rng.lognormal(0, 0.01, 1000)
    shuffled = rng.permutation(walk)
    assert block_length(walk) >= 20
    assert block_length(shuffled) <= 3
    base = list(1e-4 * rng.lognormal(0, 0.01, 1000))
    rule = GateRule(confidence=0.9)
    _, (lo_w, hi_w) = median_ratio_interval(base, list(walk), rule)
    _, (lo_s, hi_s) = median_ratio_interval(base, list(shuffled), rule)
    assert hi_w - lo_w > 3 * (hi_s - lo_s)


def test_cells_with_too_few_samples_or_in_one_run_only_are_listed_not_judged():
    rng = np.random.default_rng()
    old = [
        _bench("phase1[few]", _noisy(rng, MIN_SAMPLES - 1)),
        _bench("phase1[both]", _noisy(rng, 50)),
        _bench("phase1[gone]", _noisy(rng, 50)),
    ]
    new = [
        _bench("phase1[few]", 3 * _noisy(rng, 50)),
        _bench("phase1[both]", _noisy(rng, 50)),
        _bench("phase1[added]", _noisy(rng, 50)),
    ]
    j = judge_runs(old, new, GateRule())
    assert [v.name for v in j.judged] == ["bench/test_phase1.py::phase1[both]"]
    assert j.too_few == ["bench/test_phase1.py::phase1[few]"]
    assert j.only_old == ["bench/test_phase1.py::phase1[gone]"]
    assert j.only_new == ["bench/test_phase1.py::phase1[added]"]
    assert j.passed
    text = "\n".join(j.lines())
    assert "not judged (fewer than 5 samples): bench/test_phase1.py::phase1[few]" in text


def test_a_gate_that_compared_nothing_does_not_pass():
    rng = np.random.default_rng()
    j = judge_runs(
        [_bench("phase1[a]", _noisy(rng, 50))], [_bench("phase1[b]", _noisy(rng, 50))], GateRule()
    )
    assert not j.passed and not j.regressed
    assert "the gate compared nothing" in "\n".join(j.lines())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"confidence": 1.0}, "confidence must be in"),
        ({"confidence": 0.2}, "confidence must be in"),
        ({"min_effect": -0.1}, "minimum effect must be"),
        ({"min_effect": float("nan")}, "minimum effect must be"),
        ({"resamples": 10}, "resamples must be at least"),
    ],
)
def test_a_rule_out_of_range_is_refused(kwargs, message):
    with pytest.raises(GateError, match=message):
        GateRule(**kwargs)


def test_a_run_saved_without_its_samples_is_refused_by_name(tmp_path):
    path = tmp_path / "saved.json"
    path.write_text(
        json.dumps({"benchmarks": [{"fullname": "x::phase1[a]", "stats": {"median": 1.0}}]})
    )
    with pytest.raises(
        GateError, match=r"saved.json: x::phase1\[a\] holds no raw samples.*save-data"
    ):
        load_run(path)
    path.write_text("{not json")
    with pytest.raises(GateError, match="saved.json: not a pytest-benchmark JSON file"):
        load_run(path)
    with pytest.raises(GateError, match="missing.json: file not found"):
        load_run(tmp_path / "missing.json")


def test_machine_differences_name_the_fields_that_matter_only():
    facts = {f: f"value of {f}" for f in COMPARED}
    same_but_host = {"node": "other-host", KEY: dict(facts)}
    assert differences({"node": "host", KEY: facts}, same_but_host) == []
    other = {KEY: {**facts, "gpu_models": ["NVIDIA H200"], "driver": "580"}}
    diffs = differences({KEY: facts}, other)
    assert [d.field for d in diffs] == ["gpu_models", "driver"]
    assert diffs[0].line() == (
        "gpu_models: 'value of gpu_models' (compared run) vs ['NVIDIA H200'] (this run)"
    )
    assert "GPU model" in diffs[0].why
    (missing,) = differences({"node": "old"}, other)
    assert missing.field == KEY and missing.compared == "not recorded"


def _gate(*args):
    return subprocess.run(
        [sys.executable, "-m", "measure.gate", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_command_exits_1_naming_the_regressed_cell_and_2_on_bad_input(tmp_path):
    rng = np.random.default_rng()
    machine = {KEY: {f: 1 for f in COMPARED}}
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(
        json.dumps(
            {
                "machine_info": machine,
                "benchmarks": [
                    _bench("phase1[a]", _noisy(rng, 100)),
                    _bench("phase1[b]", _noisy(rng, 100)),
                ],
            }
        )
    )
    new.write_text(
        json.dumps(
            {
                "machine_info": machine,
                "benchmarks": [
                    _bench("phase1[a]", 1.5 * _noisy(rng, 100)),
                    _bench("phase1[b]", _noisy(rng, 100)),
                ],
            }
        )
    )
    run = _gate(old, new)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "regression gate FAILED" in run.stdout
    (flagged,) = [line for line in run.stdout.splitlines() if line.startswith("REGRESSED")]
    ratio, lo, hi = map(
        float, re.search(r"phase1\[a\]: new/old (\S+) \[(\S+), (\S+)\]", flagged).groups()
    )
    assert 1.05 < lo < ratio < hi and 1.4 < ratio < 1.6 and "100/100 samples" in flagged

    other = {KEY: {**machine[KEY], "gpu_models": ["NVIDIA H200"]}}
    new.write_text(json.dumps({**json.loads(new.read_text()), "machine_info": other}))
    same = _gate(old, old)
    assert same.returncode == 0 and "machines differ" not in same.stderr
    warned = _gate(old, new)
    assert (
        "warning: machines differ: gpu_models: 1 (compared run) vs ['NVIDIA H200']" in warned.stderr
    )
    strict = _gate(old, new, "--strict-machine")
    assert strict.returncode == 2 and "different machines" in strict.stderr

    missing = _gate(old, tmp_path / "nope.json")
    assert missing.returncode == 2 and "nope.json: file not found" in missing.stderr
