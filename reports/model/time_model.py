"""A forward's time from physics: per-call cost + max(memory, math) + collective.

For a cell (method, 2:4 backend, shape, dtype, world size, timing mode) on a machine:

    time = per_call[kernel, mode]
         + max(bytes / (bw_eff[kernel] * memory peak),
               flops x expansion / (math_eff[kernel] * math peak, dense or 2:4 sparse))
         + min over NCCL's protocols of latency + bus bytes / (eff * link peak)  (world size > 1)

Bytes, FLOPs and the collective's payload per rank are the method's work model
(kernels/registry.py: `spec(method).work(...)`); the peaks are the machine description's
(reports/model/machine.py); only the achieved fractions and the fixed costs are fitted
(reports/model/fitting.py): per kernel a per-call cost per timing mode, an efficiency on memory
bandwidth and one on the math rate; per link a latency and an efficiency on its bandwidth for
each of NCCL's two kinds of protocol (LinkParams).
A kernel is what runs the GEMM: every dense method shares cuBLAS ("dense"), a 2:4 method runs its
backend ("2:4 cslt", "2:4 triton", ...). Each prediction keeps its terms, so the regime that
decides it (per-call, memory, math or link) is read off rather than guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from common.dtypes import DTYPES
from common.errors import ReportInputError
from kernels.registry import DENSE_KERNEL, backend_specs, find_backend, spec
from reports.model.machine import GpuSpec, LinkSpec

MODES = ("graph", "eager")
REGIMES = ("per-call", "memory", "math", "link")
# The FLOPs a 2:4 GEMM is charged per FLOP of the half's work model (which counts the kept
# weights only), in the datasheet's own units: a "with sparsity" rate credits a 2:4 GEMM with its
# dense-equivalent FLOPs, twice the kept ones, so at best the sparse tensor cores run a half in the
# time the dense ones take for a dense N x N/2 shard (docs/DESIGN.md: a tie with TP when
# math-bound); a backend whose GEMM expands the compressed weight into dense MMAs over all N
# columns (the registry's tensor_cores="dense") does twice the work too, at the dense rate.
EXPANSION_2OF4 = 2.0


def backend_math(backend: str | None) -> tuple[bool, float]:
    """(whether the 2:4 backend's GEMM runs on the sparse tensor cores, its FLOP expansion), from
    the registry's description of the backend; ReportInputError where it gives no model."""
    found = find_backend(backend)
    if found is None or found.tensor_cores is None:
        modelled = sorted(b.name for b in backend_specs() if b.tensor_cores is not None)
        raise ReportInputError(f"2:4 backend {backend!r} has no math model; known: {modelled}")
    return found.tensor_cores == "sparse", EXPANSION_2OF4


# NCCL's bus-bandwidth convention: the bytes each rank's link carries per byte of payload.
BUS_FACTOR: Mapping[str, float] = {"all_reduce": 2.0, "all_gather": 1.0}


def bus_bytes(collective: str, payload: float, world_size: int) -> float:
    """Bytes over one rank's link for `payload` bytes of result: 2(w-1)/w for an all-reduce,
    (w-1)/w for an all-gather (ring algorithms, as NCCL's busbw counts them)."""
    if collective not in BUS_FACTOR:
        raise ReportInputError(f"no link model for collective {collective!r}")
    return BUS_FACTOR[collective] * (world_size - 1) / world_size * payload


@dataclass(frozen=True)
class Cell:
    """What a prediction is asked for: one phase-1 forward."""

    method: str
    backend: str | None
    n_in: int
    n_out: int
    batch: int
    dtype: str
    world_size: int
    mode: str = "graph"

    @property
    def kernel(self) -> str:
        return kernel_of(self.method, self.backend)

    @property
    def label(self) -> str:
        b = f"[{self.backend}]" if self.backend and spec(self.method).semi_structured else ""
        return f"{self.method}{b}"


def kernel_of(method: str, backend: str | None) -> str:
    """The GEMM a method runs: 'dense' for every dense method, '2:4 <backend>' for a 2:4 one."""
    if not spec(method).semi_structured:
        return DENSE_KERNEL
    try:
        backend_math(backend)
    except ReportInputError as e:
        raise ReportInputError(f"{method}: {e}") from None
    return f"2:4 {backend}"


@dataclass(frozen=True)
class KernelParams:
    """A kernel's achieved rates: fixed cost per call by timing mode, fractions of the peaks."""

    per_call_s: Mapping[str, float]
    bw_eff: float
    math_eff: float


@dataclass(frozen=True)
class LinkParams:
    """A link's achieved collective under NCCL's two kinds of protocol: a low-latency one
    (LL/LL128: short fixed cost, part of the bandwidth) and the bulk one (Simple: longer fixed
    cost, most of the bandwidth). NCCL picks the faster per message, so a collective costs
    min(small_latency + bus/(small_eff x peak), latency + bus/(bw_eff x peak)); one line alone
    misses either the 0.5 MB or the 32 MB all-reduces of the committed runs by 30-70%."""

    latency_s: float
    bw_eff: float
    small_latency_s: float
    small_bw_eff: float

    def time(self, bus_s_at_peak: float) -> float:
        """Seconds for a collective whose bus bytes take `bus_s_at_peak` at the link's peak."""
        return min(
            self.small_latency_s + bus_s_at_peak / self.small_bw_eff,
            self.latency_s + bus_s_at_peak / self.bw_eff,
        )

    def protocol(self, bus_s_at_peak: float) -> str:
        """'small' or 'bulk': the protocol the model says NCCL runs this message with."""
        small = self.small_latency_s + bus_s_at_peak / self.small_bw_eff
        return "small" if small < self.latency_s + bus_s_at_peak / self.bw_eff else "bulk"


@dataclass(frozen=True)
class Fit:
    """Fitted parameters and where each came from (the cells, a source machine, or a default)."""

    machine: str  # the machine description the parameters hold for
    kernels: Mapping[str, KernelParams]
    links: Mapping[str, LinkParams]  # by link description key
    basis: str  # one sentence: fitted on what, calibrated with what, or extrapolated from what
    origin: Mapping[str, str] = field(default_factory=dict)  # "kernel.param" -> where from
    residuals: Mapping[str, tuple[float, ...]] = field(default_factory=dict)  # kernel -> rel.
    extrapolated: bool = False


@dataclass(frozen=True)
class Prediction:
    """A predicted forward time with its terms, in seconds."""

    cell: Cell
    machine: str
    per_call_s: float
    memory_s: float
    math_s: float
    collective_s: float
    l2_resident: bool  # the rank's bytes fit in L2: a warm timing reads them from L2, not DRAM
    basis: str
    extrapolated: bool

    @property
    def compute_s(self) -> float:
        return self.per_call_s + max(self.memory_s, self.math_s)

    @property
    def total_s(self) -> float:
        return self.compute_s + self.collective_s

    @property
    def terms(self) -> dict[str, float]:
        return {
            "per-call": self.per_call_s,
            "memory": self.memory_s,
            "math": self.math_s,
            "link": self.collective_s,
        }

    @property
    def regime(self) -> str:
        """The largest term: what bounds this cell."""
        terms = self.terms
        return max(terms, key=lambda k: terms[k])


@dataclass(frozen=True)
class Units:
    """A cell's work on a machine in units of the fitted parameters: time = per_call +
    max(mem_s_at_peak / bw_eff, math_s_at_peak / math_eff) + link terms."""

    mem_s_at_peak: float
    math_s_at_peak: float
    link_s_at_peak: float  # bus bytes over the link's peak, 0 with no collective
    has_collective: bool
    l2_resident: bool


def units(cell: Cell, gpu: GpuSpec) -> Units:
    """The cell's bytes, FLOPs and bus bytes over the machine's peaks."""
    if cell.dtype not in DTYPES:
        raise ReportInputError(f"{cell.label}: dtype {cell.dtype!r} is not one of bf16/fp16/fp32")
    if cell.mode not in MODES:
        raise ReportInputError(f"{cell.label}: timing mode {cell.mode!r} is not one of {MODES}")
    work = spec(cell.method).work(
        cell.n_in, cell.n_out, cell.batch, DTYPES[cell.dtype].itemsize, cell.world_size
    )
    sparse, expansion = (
        backend_math(cell.backend) if spec(cell.method).semi_structured else (False, 1.0)
    )
    link: LinkSpec = gpu.link
    coll = work.collective
    return Units(
        mem_s_at_peak=work.bytes / gpu.memory_bytes_per_s,
        math_s_at_peak=work.flops * expansion / gpu.math_rate(cell.dtype, sparse),
        link_s_at_peak=(
            bus_bytes(coll, work.collective_bytes, cell.world_size) / link.bytes_per_s
            if coll
            else 0.0
        ),
        has_collective=coll is not None,
        l2_resident=work.bytes <= gpu.l2_bytes,
    )


def link_time(u: Units, p: LinkParams) -> float:
    return p.time(u.link_s_at_peak) if u.has_collective else 0.0


def link_params(fit: Fit, link: LinkSpec) -> LinkParams:
    """The fit's parameters for this link, else for a link of the same kind (NVLink for NVLink,
    PCIe for PCIe); a fit with neither cannot say what the collective costs."""
    if link.key in fit.links:
        return fit.links[link.key]
    same = [k for k in fit.links if k.startswith(link.kind)]
    if same:
        return fit.links[same[0]]
    raise ReportInputError(
        f"{fit.basis}: no collective fitted on a {link.kind} link like {link.name}; give "
        f"records with a collective over one (fitted links: {sorted(fit.links) or 'none'})"
    )


def predict(cell: Cell, gpu: GpuSpec, fit: Fit) -> Prediction:
    """The cell's time on `gpu` from the fit's parameters and the description's peaks."""
    if cell.kernel not in fit.kernels:
        raise ReportInputError(
            f"{cell.label}: kernel {cell.kernel!r} has no fitted parameters in {fit.basis}; "
            f"fitted: {sorted(fit.kernels)}"
        )
    k = fit.kernels[cell.kernel]
    u = units(cell, gpu)
    return Prediction(
        cell=cell,
        machine=gpu.key,
        per_call_s=k.per_call_s[cell.mode],
        memory_s=u.mem_s_at_peak / k.bw_eff,
        math_s=u.math_s_at_peak / k.math_eff,
        collective_s=link_time(u, link_params(fit, gpu.link)) if u.has_collective else 0.0,
        l2_resident=u.l2_resident,
        basis=fit.basis,
        extrapolated=fit.extrapolated or gpu.key != fit.machine,
    )
