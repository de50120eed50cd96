"""Fit the time model's few parameters on measured cells, calibrate them on another machine.

Parameters (reports/model/time_model.py): per kernel, a per-call cost per timing mode (graph,
eager), an efficiency on memory bandwidth and one on the math rate (each in (0, 1] of the
description's peak); per link, a latency and an efficiency for each of NCCL's two kinds of
protocol. Three ways to get them:

- `fit`: on many cells of one machine. Both models are piecewise linear: a kernel's compute time
  is the per-call cost plus the larger of its memory and math terms, a collective the smaller of
  its two protocols' times, each term linear in (fixed cost, 1 / efficiency). So the fit
  alternates least squares on relative error with reassigning each measurement to the branch the
  current parameters pick, until none changes; bounds (costs >= 0, efficiencies <= 1) by active
  set. Collectives are fitted on what was timed alone: each cell's collective and the run's link
  ceilings (nccl-tests' bus bandwidth at 256 MiB). A parameter nothing constrains keeps its prior
  (another machine's fit, or DEFAULT_KERNEL / DEFAULT_LINK) and `origin` says which.
- `calibrate`: a few cells of a target machine on top of a fit from another one. Each measurement
  fixes the one parameter of the term that dominates it under the prior (a memory-bound cell its
  kernel's bw_eff, a per-call-bound one its per-call cost, a collective the latency or the
  efficiency of the protocol that carries it), so the model reproduces it; several fixing one
  parameter give their median. Everything else stays the source machine's, so labelled.
- `extrapolate`: no cell on the target: the source's parameters over the target's peaks,
  labelled extrapolated and from which machine.
Cells whose bytes fit in L2 are left out of every fit: warm timings read them from L2, which no
DRAM term describes.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import numpy as np

from common.errors import ReportInputError
from reports.model.machine import GpuSpec
from reports.model.observations import Measured, Observation
from reports.model.time_model import (
    MODES,
    Fit,
    KernelParams,
    LinkParams,
    Units,
    bus_bytes,
    link_params,
    link_time,
    units,
)

# Priors where nothing constrains a parameter; each use is named in the fit's `origin`.
DEFAULT_KERNEL = KernelParams(per_call_s={"graph": 5e-6, "eager": 20e-6}, bw_eff=0.85, math_eff=0.7)
DEFAULT_LINK = LinkParams(latency_s=40e-6, bw_eff=0.7, small_latency_s=10e-6, small_bw_eff=0.2)
# A 2:4 backend with no cells of its own borrows the parameters of the same library's kernel:
# F.linear on a to_sparse_semi_structured weight and the padded path both call cuSPARSELt.
KERNEL_FALLBACK = {"2:4 flinear": "2:4 cslt", "2:4 cslt_padded": "2:4 cslt"}
LENT = "(same library)"
KERNEL_NAMES = (*(f"per_call_s.{m}" for m in MODES), "bw_eff", "math_eff")
LINK_NAMES = ("small_latency_s", "small_bw_eff", "latency_s", "bw_eff")
_RIDGE = 1e-3  # pull toward the prior: negligible wherever measurements constrain a parameter


def _bounded_lstsq(a: np.ndarray, b: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """min |a x - b| subject to x >= lower, by clamping the worst violator and re-solving."""
    free = np.ones(a.shape[1], bool)
    x = lower.astype(float).copy()
    for _ in range(a.shape[1] + 1):
        rhs = b - a[:, ~free] @ x[~free]
        sol, *_ = np.linalg.lstsq(a[:, free], rhs, rcond=None)
        x[free] = sol
        bad = free & (x < lower)
        if not bad.any():
            return x
        worst = np.argmax(np.where(bad, lower - x, -np.inf))
        free[worst], x[worst] = False, lower[worst]
    return x


def _fit_branches(
    branches: Sequence[Sequence[np.ndarray]],
    y: np.ndarray,
    theta0: np.ndarray,
    lower: np.ndarray,
    pick: Callable[[np.ndarray], int],
    complete: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """theta minimising relative error of y_i ~ branch_i . theta, where each measurement's
    branch is the one `pick` (argmax or argmin) chooses among its branches' predictions under
    the current theta; `complete(theta, used)` may set the parameters no measurement used.
    Returns theta, relative residuals and which parameters were used."""
    theta = theta0
    chosen = [pick(np.array([b @ theta for b in bs])) for bs in branches]
    ridge = _RIDGE * np.diag(1 / np.maximum(np.abs(theta0), 1e-6))
    for _ in range(20):
        a = np.array([bs[c] for bs, c in zip(branches, chosen, strict=True)])
        a_rel = np.vstack([a / y[:, None], ridge])
        b = np.concatenate([np.ones_like(y), _RIDGE * np.sign(theta0)])
        theta = _bounded_lstsq(a_rel, b, lower)
        if complete is not None:
            theta = complete(theta, np.abs(a).sum(axis=0) > 0)
        new = [pick(np.array([b @ theta for b in bs])) for bs in branches]
        if new == chosen:
            break
        chosen = new
    a = np.array([bs[c] for bs, c in zip(branches, chosen, strict=True)])
    return theta, (a @ theta - y) / y, np.abs(a).sum(axis=0) > 0


def _kernel_theta(k: KernelParams) -> np.ndarray:
    return np.array([*(k.per_call_s[m] for m in MODES), 1 / k.bw_eff, 1 / k.math_eff])


def _kernel_branches(mode: str, u: Units) -> list[np.ndarray]:
    """c_mode + mem/bw_eff, or c_mode + math/math_eff, in theta's order."""
    mem, math_ = np.zeros(len(MODES) + 2), np.zeros(len(MODES) + 2)
    mem[MODES.index(mode)] = math_[MODES.index(mode)] = 1.0
    mem[-2], math_[-1] = u.mem_s_at_peak, u.math_s_at_peak
    return [mem, math_]


def _link_theta(p: LinkParams) -> np.ndarray:
    return np.array([p.small_latency_s, 1 / p.small_bw_eff, p.latency_s, 1 / p.bw_eff])


def _link_branches(x: float) -> list[np.ndarray]:
    return [np.array([1.0, x, 0, 0]), np.array([0, 0, 1.0, x])]


def _link_complete(theta0: np.ndarray) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A protocol no collective used keeps the prior's ratio to the one that was used (latency to
    latency, efficiency to efficiency), so an unmeasured protocol is never left faster than the
    measured one (as _rescaled does for calibration)."""

    def complete(theta: np.ndarray, used: np.ndarray) -> np.ndarray:
        out = theta.copy()
        for pair in ((0, 2), (1, 3)):  # (small, bulk) latency, then 1/efficiency
            done = [i for i in pair if used[i]]
            if len(done) == 1:
                i, j = done[0], pair[1 - pair.index(done[0])]
                out[j] = theta0[j] * theta[i] / theta0[i]
        return out

    return complete


def _compute_target(o: Observation, u: Units, link: LinkParams) -> float | None:
    """The compute part of a measured forward: timed alone, or the whole less the link model."""
    if o.compute_s is not None:
        return o.compute_s
    y = o.median_s - link_time(u, link)
    return y if y > 0 else None


def _prior_kernel(prior: Fit | None, kernel: str) -> tuple[KernelParams, str]:
    if prior is not None:
        for k in (kernel, KERNEL_FALLBACK.get(kernel, kernel)):
            if k in prior.kernels:
                how = "" if k == kernel else f" ({k}'s: the same library)"
                return prior.kernels[k], f"{prior.basis}{how}"
    return DEFAULT_KERNEL, "default prior (nothing constrains it)"


def _prior_link(prior: Fit | None, gpu: GpuSpec) -> tuple[LinkParams, str]:
    if prior is not None and prior.links:
        try:
            return link_params(prior, gpu.link), prior.basis
        except ReportInputError:  # no link of that kind in the prior: the default
            pass
    return DEFAULT_LINK, "default prior (no collective timed on such a link)"


def _usable(measured: Measured, gpu: GpuSpec) -> list[tuple[Observation, Units]]:
    """The machine's cells the DRAM model describes (not L2-resident), with their units."""
    out = []
    for o in measured.on(gpu.key).cells:
        u = units(o.cell, gpu)
        if not u.l2_resident:
            out.append((o, u))
    return out


def _link_points(measured: Measured, gpu: GpuSpec) -> list[tuple[float, float]]:
    """(bus bytes over the link's peak, seconds) of every collective timed alone, once each."""
    pts = {
        (bus_bytes(c.collective, c.payload_bytes, c.world_size) / gpu.link.bytes_per_s, c.seconds)
        for c in measured.on(gpu.key).collectives
    }
    for o, u in _usable(measured, gpu):
        if o.collective_s and u.has_collective:
            pts.add((u.link_s_at_peak, o.collective_s))
    return sorted(pts)


def fit(measured: Measured, gpu: GpuSpec, prior: Fit | None = None) -> Fit:
    """Every parameter the machine's measurements constrain, by least squares (module doc)."""
    cells = _usable(measured, gpu)
    basis = f"fit on {len(cells)} cells of {gpu.name}"
    origin: dict[str, str] = {}
    residuals: dict[str, tuple[float, ...]] = {}
    link, link_from = _prior_link(prior, gpu)
    pts = _link_points(measured, gpu)
    if pts:
        theta, res, used = _fit_branches(
            [_link_branches(x) for x, _ in pts],
            np.array([t for _, t in pts]),
            _link_theta(link),
            np.array([0.0, 1.0, 0.0, 1.0]),
            lambda t: int(np.argmin(t)),
            _link_complete(_link_theta(link)),
        )
        link = LinkParams(
            float(theta[2]), float(1 / theta[3]), float(theta[0]), float(1 / theta[1])
        )
        residuals["link"] = tuple(res)
        for name, u in zip(LINK_NAMES, used, strict=True):
            origin[f"link.{name}"] = f"{basis} ({len(pts)} collectives)" if u else link_from
    else:
        origin.update({f"link.{n}": link_from for n in LINK_NAMES})
    rows: dict[str, list[tuple[str, Units, float]]] = {}
    for o, u in cells:
        y = _compute_target(o, u, link)
        if y is not None:
            rows.setdefault(o.cell.kernel, []).append((o.cell.mode, u, y))
    # the prior's kernels stand where these cells have none; borrowed ones are re-borrowed from
    # the refitted lender by with_fallbacks, never carried over stale
    lent = borrowed(prior) if prior is not None else set()
    kernels = {k: v for k, v in prior.kernels.items() if k not in lent} if prior else {}
    if prior is not None:
        origin.update({k: v for k, v in prior.origin.items() if not k.startswith("link.")})
    for kernel, kr in sorted(rows.items()):
        k0, k_from = _prior_kernel(prior, kernel)
        theta, res, used = _fit_branches(
            [_kernel_branches(mode, u) for mode, u, _ in kr],
            np.array([y for *_, y in kr]),
            _kernel_theta(k0),
            np.array([0.0] * len(MODES) + [1.0, 1.0]),
            lambda t: int(np.argmax(t)),
        )
        kernels[kernel] = KernelParams(
            {m: float(theta[i]) for i, m in enumerate(MODES)},
            float(1 / theta[-2]),
            float(1 / theta[-1]),
        )
        residuals[kernel] = tuple(res)
        for name, u in zip(KERNEL_NAMES, used, strict=True):
            origin[f"{kernel}.{name}"] = basis if u else k_from
    return Fit(gpu.key, kernels, {gpu.link.key: link}, basis, origin, residuals)


def _pin(terms: Sequence[tuple[str, str, float, float]], y: float) -> tuple[str, float] | None:
    """The parameter of the largest term, set so the terms sum to y: each term is
    (name, 'cost' | 'eff', its value now, its work at peak); None when y leaves no room."""
    name, kind, value, work = max(terms, key=lambda t: t[2])
    rest = y - sum(t[2] for t in terms) + value
    if kind == "cost":
        return name, max(0.0, rest)
    return (name, min(1.0, work / rest)) if rest > 0 else None


def _rescaled(link: LinkParams, pinned: Mapping[str, float]) -> LinkParams:
    """The link with its pinned parameters set and each unpinned one of the same kind (latency or
    efficiency) scaled by the pinned ones' median factor: the two protocols keep the source's
    ratio, so a link calibrated on its bulk protocol cannot leave the other one faster than it
    (a PCIe pair at 8% of its peak keeps NVLink's small-message efficiency otherwise)."""
    out = dict(pinned)
    for kind in ("latency_s", "bw_eff"):
        names = [n for n in LINK_NAMES if n.endswith(kind)]
        factors = [pinned[n] / getattr(link, n) for n in names if n in pinned and getattr(link, n)]
        for n in names:
            if n not in pinned and factors:
                scaled = getattr(link, n) * statistics.median(factors)
                out[n] = min(1.0, scaled) if kind == "bw_eff" else scaled
    return replace(link, **out)


def calibrate(prior: Fit, measured: Measured, gpu: GpuSpec) -> Fit:
    """The prior (another machine's fit) with the parameters the target's measurements pin
    (module doc); with nothing usable on the target this is `extrapolate`."""
    cells = _usable(measured, gpu)
    pts = _link_points(measured, gpu)
    if not cells and not pts:
        return extrapolate(prior, gpu)
    basis = f"{prior.basis}, calibrated with {len(cells)} cells of {gpu.name}"
    origin = {k: f"{prior.basis} (not calibrated on {gpu.name})" for k in prior.origin}
    link, link_from = _prior_link(prior, gpu)
    origin.update({f"link.{n}": f"{link_from} (not calibrated on {gpu.name})" for n in LINK_NAMES})
    pins: dict[str, list[float]] = {}
    for x, t in pts:
        small = link.protocol(x) == "small"
        lat, eff = ("small_latency_s", "small_bw_eff") if small else ("latency_s", "bw_eff")
        got = _pin(
            [(lat, "cost", getattr(link, lat), 0.0), (eff, "eff", x / getattr(link, eff), x)], t
        )
        if got:
            pins.setdefault(got[0], []).append(got[1])
    link = _rescaled(link, {k: statistics.median(v) for k, v in pins.items()})
    for x, t in pts:  # the protocol not calibrated must not undercut a calibrated collective
        if link.time(x) < t * (1 - 1e-9):
            lat, eff = ("small_latency_s", "small_bw_eff")
            if link.protocol(x) == "bulk":
                lat, eff = ("latency_s", "bw_eff")
            f = t / link.time(x)
            link = replace(link, **{lat: getattr(link, lat) * f, eff: getattr(link, eff) / f})
    for name in LINK_NAMES:
        values = pins.get(name)
        if values:
            origin[f"link.{name}"] = f"calibrated with {len(values)} collectives of {gpu.name}"
        elif pins:
            origin[f"link.{name}"] = f"scaled as the calibrated protocol's on {gpu.name}"
    kernels = dict(prior.kernels)
    kpins: dict[str, dict[str, list[float]]] = {}
    for o, u in cells:
        kernel = o.cell.kernel
        kernels.setdefault(kernel, _prior_kernel(prior, kernel)[0])
        k = kernels[kernel]
        y = _compute_target(o, u, link)
        if y is None:
            continue
        mem, math_ = u.mem_s_at_peak / k.bw_eff, u.math_s_at_peak / k.math_eff
        mode = f"per_call_s.{o.cell.mode}"
        terms = [(mode, "cost", k.per_call_s[o.cell.mode], 0.0)]
        terms.append(
            ("bw_eff", "eff", mem, u.mem_s_at_peak)
            if mem >= math_
            else ("math_eff", "eff", math_, u.math_s_at_peak)
        )
        got = _pin(terms, y)
        if got:
            kpins.setdefault(kernel, {}).setdefault(got[0], []).append(got[1])
    for kernel, kernel_pins in kpins.items():
        k = kernels[kernel]
        per_call = {
            m: statistics.median(kernel_pins.get(f"per_call_s.{m}", [k.per_call_s[m]]))
            for m in MODES
        }
        kernels[kernel] = KernelParams(
            per_call,
            statistics.median(kernel_pins.get("bw_eff", [k.bw_eff])),
            statistics.median(kernel_pins.get("math_eff", [k.math_eff])),
        )
        for name, values in kernel_pins.items():
            origin[f"{kernel}.{name}"] = f"calibrated with {len(values)} cells of {gpu.name}"
    return Fit(gpu.key, kernels, {gpu.link.key: link}, basis, origin, prior.residuals)


def extrapolate(prior: Fit, gpu: GpuSpec) -> Fit:
    """The prior's parameters over the target's peaks, labelled as an extrapolation."""
    if prior.machine == gpu.key and not prior.extrapolated:
        return prior
    basis = f"extrapolated to {gpu.name} from the {prior.basis}"
    links = dict(prior.links)
    origin = {k: f"{v}; extrapolated to {gpu.name}" for k, v in prior.origin.items()}
    if gpu.link.key not in links:
        try:
            links[gpu.link.key] = link_params(prior, gpu.link)
            lender = next(k for k, v in prior.links.items() if v == links[gpu.link.key])
            how = prior.origin.get(f"link {lender}") or prior.origin.get("link.bw_eff", "")
            origin[f"link {gpu.link.key}"] = (
                f"{lender}'s ({how}), same kind as {gpu.link.name}: extrapolated"
            )
        except ReportInputError:  # no link of that kind: predictions with a collective say so
            pass
    return replace(
        prior, machine=gpu.key, links=links, basis=basis, origin=origin, extrapolated=True
    )


def with_fallbacks(fit_: Fit) -> Fit:
    """The fit with each 2:4 backend it lacks answered by its same-library kernel, labelled."""
    add = {
        k: fit_.kernels[v]
        for k, v in KERNEL_FALLBACK.items()
        if k not in fit_.kernels and v in fit_.kernels
    }
    if not add:
        return fit_
    origin = {**fit_.origin, **{k: f"{KERNEL_FALLBACK[k]}'s parameters {LENT}" for k in add}}
    lender = {k: KERNEL_FALLBACK[k] for k in add if KERNEL_FALLBACK[k] in fit_.residuals}
    residuals = {**fit_.residuals, **{k: fit_.residuals[v] for k, v in lender.items()}}
    return replace(fit_, kernels={**fit_.kernels, **add}, origin=origin, residuals=residuals)


def borrowed(fit_: Fit) -> set[str]:
    """The kernels `with_fallbacks` lent the fit (each its same-library kernel's parameters)."""
    return {k for k in fit_.kernels if fit_.origin.get(k, "").endswith(LENT)}


def source_fit(measured: Measured, gpus: Mapping[str, GpuSpec], machine: str) -> Fit:
    """The fit on one machine's measurements, every 2:4 backend it lacks borrowed (labelled)."""
    if not measured.on(machine).cells:
        raise ReportInputError(f"no measured cells of {machine!r} to fit the model on")
    return with_fallbacks(fit(measured, gpus[machine]))
