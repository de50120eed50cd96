"""Did a cell get slower? A bootstrap interval of its median time, new over old, per cell.

A fixed rule ("fail if the median moved more than 5%") ignores how much a cell's samples
spread: a cell that swings with a power cap fails unchanged code, and a cell measured from a
handful of samples passes or fails by luck. Here each cell's raw samples (pytest-benchmark's
stored `stats.data`: device seconds per forward, one per sample, in the order they were taken)
give an interval for median(new) / median(old), and the cell regresses only when the whole
interval lies above 1 + `min_effect`: the data must show, at the stated confidence, a slowdown
at least that large. The minimum effect is the size of change that matters, and it absorbs what
no within-run interval can see: two runs taken at different times differ by more than their
samples spread (the machine's load, clocks and caches move between runs).

Samples taken one after another are not independent (a burst of other load, a power
controller's clock swing, span many), so the interval comes from a circular block bootstrap:
each resample strings together blocks of consecutive samples drawn at random starts, which keeps
that dependence and widens the interval where it exists. The block length is chosen per run of
samples by Politis and White's rule (2004, with Patton, Politis and White's 2009 correction)
from the autocorrelation of sign(x - median), the series the median's error follows: 1-2 for
independent samples, 40-80 for CPU runs of a few thousand samples under load. On simulated
AR(1) data with correlation 0.9 a 90% interval missed the true ratio 15% of the time at 1000
samples (25% at 200): strong dependence still narrows it somewhat, which the minimum effect
covers. The resamples are seeded, so the same two runs always get the same verdict.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import GateError

MIN_SAMPLES = 5  # a side with fewer is listed as not judged, never passed or failed silently
_CHUNK_ELEMENTS = 4_000_000  # resampled values held at once (bounds memory for long runs)


@dataclass(frozen=True)
class GateRule:
    """The gate's two numbers, and how many resamples make the interval."""

    confidence: float = 0.99  # two-sided; the lower bound is a one-sided 99.5% bound
    min_effect: float = 0.05  # a regression must be at least this fraction slower
    resamples: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.5 <= self.confidence < 1:
            raise GateError(f"gate confidence must be in [0.5, 1), got {self.confidence!r}")
        if not (math.isfinite(self.min_effect) and self.min_effect >= 0):
            raise GateError(
                f"gate minimum effect must be a finite fraction >= 0, got {self.min_effect!r}"
            )
        if self.resamples < 200:
            raise GateError(f"gate resamples must be at least 200, got {self.resamples!r}")

    @property
    def threshold(self) -> float:
        return 1 + self.min_effect


@dataclass(frozen=True)
class Verdict:
    """One cell judged: medians (s), their ratio new/old and its interval at the confidence."""

    name: str
    old_median: float
    new_median: float
    ratio: float
    interval: tuple[float, float]
    n_old: int
    n_new: int
    regressed: bool  # the whole interval lies above 1 + min_effect
    improved: bool  # the whole interval lies below 1 / (1 + min_effect)

    def line(self) -> str:
        lo, hi = self.interval
        return (
            f"{self.name}: new/old {self.ratio:.3f} [{lo:.3f}, {hi:.3f}] "
            f"({_ms(self.old_median)} -> {_ms(self.new_median)}, {self.n_old}/{self.n_new} "
            "samples)"
        )


@dataclass
class Judgement:
    """Every cell of two runs: judged, too few samples to judge, or in one run only."""

    rule: GateRule
    judged: list[Verdict] = field(default_factory=list)
    too_few: list[str] = field(default_factory=list)
    only_old: list[str] = field(default_factory=list)
    only_new: list[str] = field(default_factory=list)

    @property
    def regressed(self) -> list[Verdict]:
        return [v for v in self.judged if v.regressed]

    @property
    def improved(self) -> list[Verdict]:
        return [v for v in self.judged if v.improved]

    @property
    def passed(self) -> bool:
        """No regression, and at least one cell was judged: a gate that compared nothing
        (a baseline of other cells) must not pass as if it had."""
        return bool(self.judged) and not self.regressed

    def lines(self) -> list[str]:
        r = self.rule
        steady = len(self.judged) - len(self.regressed) - len(self.improved)
        out = [
            f"{len(self.judged)} cells judged: {len(self.regressed)} regressed, "
            f"{len(self.improved)} faster, {steady} not shown to move by more than "
            f"{r.min_effect:.0%} (median new/old, {r.confidence:.0%} block-bootstrap interval)"
        ]
        out += [f"REGRESSED {v.line()}" for v in self.regressed]
        out += [f"faster {v.line()}" for v in self.improved]
        if self.too_few:
            out.append(f"not judged (fewer than {MIN_SAMPLES} samples): {', '.join(self.too_few)}")
        if self.only_old:
            out.append(f"in the baseline only: {len(self.only_old)} cells")
        if self.only_new:
            out.append(f"in this run only: {len(self.only_new)} cells")
        if not self.judged:
            out.append("no cell of this run is in the baseline: the gate compared nothing")
        return out


def load_run(path: Path) -> dict[str, Any]:
    """A pytest-benchmark JSON document whose every benchmark holds its raw samples;
    GateError naming the file otherwise."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise GateError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise GateError(f"{path}: not a pytest-benchmark JSON file: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise GateError(f"{path}: no `benchmarks` list (not a pytest-benchmark run)")
    samples_of(doc["benchmarks"], str(path))
    return doc


def samples_of(benchmarks: list[dict[str, Any]], source: str) -> dict[str, list[float]]:
    """Each benchmark's raw samples by full name, from pytest-benchmark's JSON `benchmarks`;
    GateError naming `source` where a benchmark has none (saved without its data)."""
    out: dict[str, list[float]] = {}
    for bench in benchmarks:
        name = bench.get("fullname") or bench.get("name")
        data = (bench.get("stats") or {}).get("data")
        if not name:
            raise GateError(f"{source}: a benchmark has no name")
        if not data:
            raise GateError(
                f"{source}: {name} holds no raw samples (stats.data); the gate needs them: "
                "save runs with --benchmark-json, or --benchmark-autosave --benchmark-save-data"
            )
        values = [float(v) for v in data]
        if not all(math.isfinite(v) and v > 0 for v in values):
            raise GateError(f"{source}: {name} holds a sample that is not a positive time")
        out[name] = values
    return out


def median_ratio_interval(
    old: list[float], new: list[float], rule: GateRule
) -> tuple[float, tuple[float, float]]:
    """median(new) / median(old) and its bootstrap interval at `rule.confidence`."""
    a, b = np.asarray(old, dtype=float), np.asarray(new, dtype=float)
    rng = np.random.default_rng(rule.seed)
    ratios = _block_medians(b, rule.resamples, rng) / _block_medians(a, rule.resamples, rng)
    tail = (1 - rule.confidence) / 2
    lo, hi = np.quantile(ratios, [tail, 1 - tail])
    return float(np.median(b) / np.median(a)), (float(lo), float(hi))


def judge_runs(old: list[dict[str, Any]], new: list[dict[str, Any]], rule: GateRule) -> Judgement:
    """Judge every cell two pytest-benchmark runs share (their `benchmarks` lists)."""
    before = samples_of(old, "baseline")
    after = samples_of(new, "this run")
    out = Judgement(rule)
    out.only_old = sorted(set(before) - set(after))
    out.only_new = sorted(set(after) - set(before))
    for name in sorted(set(before) & set(after)):
        a, b = before[name], after[name]
        if min(len(a), len(b)) < MIN_SAMPLES:
            out.too_few.append(name)
            continue
        ratio, (lo, hi) = median_ratio_interval(a, b, rule)
        out.judged.append(
            Verdict(
                name,
                float(np.median(a)),
                float(np.median(b)),
                ratio,
                (lo, hi),
                len(a),
                len(b),
                regressed=lo > rule.threshold,
                improved=hi < 1 / rule.threshold,
            )
        )
    return out


def block_length(values: np.ndarray) -> int:
    """Politis and White's block length for the circular block bootstrap, computed on
    sign(x - median(x)): the flat-top lag window's estimate of the spectral density's
    derivative over its value at zero, times n^(1/3); at most min(3 sqrt(n), n/3)."""
    x = np.sign(values - np.median(values))
    x = x - x.mean()
    n = len(x)
    variance = float(np.dot(x, x)) / n
    if n < 8 or variance == 0:
        return 1
    kn = max(5, math.ceil(math.sqrt(math.log10(n))))  # lags that must all look uncorrelated
    max_lag = min(n - 1, math.ceil(math.sqrt(n)) + kn)
    acv = np.array([np.dot(x[: n - k], x[k:]) / n for k in range(max_lag + 1)])
    acf = np.abs(acv[1:] / variance)
    small = 2 * math.sqrt(math.log10(n) / n)
    m_hat = next((m for m in range(max_lag - kn + 1) if np.all(acf[m : m + kn] < small)), max_lag)
    window = min(2 * max(m_hat, 1), max_lag)
    lags = np.arange(-window, window + 1)
    u = np.abs(lags) / window
    flat_top = np.where(u <= 0.5, 1.0, 2 * (1 - u))
    r = acv[np.abs(lags)]
    g = float(np.sum(flat_top * np.abs(lags) * r))
    g0 = float(np.sum(flat_top * r))
    if g0 <= 0:
        return 1
    b = (2 * g**2 / (4 / 3 * g0**2)) ** (1 / 3) * n ** (1 / 3)
    return int(min(max(1, round(b)), math.ceil(min(3 * math.sqrt(n), n / 3))))


def _block_medians(x: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Medians of `resamples` circular block-bootstrap resamples of x."""
    n = len(x)
    length = block_length(x)
    blocks = -(-n // length)
    offsets = np.arange(length)
    out = np.empty(resamples)
    step = max(1, _CHUNK_ELEMENTS // (blocks * length))
    for start in range(0, resamples, step):
        m = min(step, resamples - start)
        starts = rng.integers(0, n, size=(m, blocks))
        idx = ((starts[:, :, None] + offsets) % n).reshape(m, blocks * length)[:, :n]
        out[start : start + m] = np.median(x[idx], axis=1)
    return out


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.4f} ms"
