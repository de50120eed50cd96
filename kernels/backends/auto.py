"""The auto backend: per shape, the fastest 2:4 backend that runs here, checked first.

For each GPU, dtype, shape and batch it builds every candidate the registry names
(`candidate=True`: cuSPARSELt, cuSPARSELt padded, Triton, the CUTLASS sm90 GEMM) that is
available and takes the shape, checks each one's product against a float64 reference of the same
bf16/fp16 inputs, and times the ones that pass in CUDA graphs of back-to-back products (the way
the cells time a forward, so a backend's host cost per call does not count against it). The
fastest wins; its name is kept in a cache file (`$BS_AUTO_CACHE`, default
~/.cache/block-shock-bench/auto_backend.json; "off" chooses in every process) keyed by the GPU,
the library versions and the shape, so every later process builds only the winner. The half it
returns is the winner's own; the record's backend is the winner's name and its alg_source says
it was picked and from what, so a cell on "auto" always says which kernel ran.

The check is the output rounding alone (relative Frobenius error, over up to CHECK_ROWS random
output rows, under the storage dtype's unit roundoff: the first term of measure/checks/bounds.py's
bound; the accumulation term is four orders smaller at these K): a kernel that drops or
misplaces a group is off by far more. The
cell's own float check and exact probe still run on the chosen half afterwards.
"""

from __future__ import annotations

import statistics

import torch

from common.dtypes import UNIT_ROUNDOFF
from common.errors import CellSpecError
from kernels import alg_cache, registry
from kernels.backends.base import Backend, Half, HalfRecord, needs_cuda

CACHE_ENV = "BS_AUTO_CACHE"
CACHE_FILE = "auto_backend.json"
GRAPH_CALLS = 20  # products per captured graph: launch gaps vanish, a replay lasts >= ~0.1 ms
REPLAYS = 7  # graph replays timed; the median is the candidate's time
CHECK_ROWS = 1024  # output rows checked against float64


def graph_ms(fn) -> float:
    """Median device ms of one call of `fn`, replayed in a CUDA graph of GRAPH_CALLS calls."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):  # warm-up outside capture (lazy init, workspace)
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(GRAPH_CALLS):
            fn()
    graph.replay()
    times = []
    for _ in range(REPLAYS):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / GRAPH_CALLS)
    return statistics.median(times)


def rel_error(y: torch.Tensor, ref: torch.Tensor) -> float:
    """Relative Frobenius error; inf where y holds NaN or inf (never a pass)."""
    if not torch.isfinite(y).all():
        return float("inf")
    return float((y.double() - ref).norm() / ref.norm().clamp_min(1e-300))


def _library(names: tuple[str, ...]) -> str:
    import triton

    return (
        f"auto over {'+'.join(names)} | cusparselt {torch.backends.cusparselt.version()} "
        f"| triton {triton.__version__}"
    )


class Auto(Backend):
    def candidates(self, device: torch.device) -> list[Backend]:
        runs = [registry.backend(n) for n in registry.auto_candidates()]
        return [b for b in runs if b.available(device) is None]

    def available(self, device: torch.device) -> str | None:
        reason = needs_cuda(self.name, device)
        if reason is not None:
            return reason
        if not self.candidates(device):
            names = ", ".join(registry.auto_candidates())
            return f"the {self.name} 2:4 backend: none of its candidates ({names}) runs here"
        return None

    def check_shape(
        self, n_out: int, n_in: int, batch: int, dtype: torch.dtype, where: str
    ) -> None:
        """Fine where at least one candidate takes the shape; else every candidate's reason."""
        reasons = []
        for b in self.candidates(torch.device("cuda")) or [
            registry.backend(n) for n in registry.auto_candidates()
        ]:
            try:
                b.check_shape(n_out, n_in, batch, dtype, where)
                return
            except CellSpecError as e:
                reasons.append(f"{b.name}: {e}")
        raise CellSpecError(
            f"{where}: no candidate of the {self.name} backend takes it: " + "; ".join(reasons)
        )

    def _takes(self, b: Backend, w: torch.Tensor, batch: int, where: str) -> bool:
        try:
            b.check_shape(w.shape[0], w.shape[1], batch, w.dtype, where)
            return True
        except CellSpecError:
            return False

    def build(
        self,
        w_masked: torch.Tensor,
        bias: torch.Tensor | None,
        x_example: torch.Tensor,
        where: str,
    ) -> Half:
        batch = x_example.shape[0]
        cands = [
            b for b in self.candidates(w_masked.device) if self._takes(b, w_masked, batch, where)
        ]
        if not cands:
            self.check_shape(w_masked.shape[0], w_masked.shape[1], batch, w_masked.dtype, where)
        names = tuple(b.name for b in cands)
        path = alg_cache.cache_path(CACHE_ENV, CACHE_FILE)
        device_name = torch.cuda.get_device_name(w_masked.device)
        n_out, n_in = w_masked.shape
        k = alg_cache.key(device_name, w_masked.dtype, n_out, n_in, batch, library=_library(names))
        cached = alg_cache.lookup_name(path, k) if path is not None else None
        if cached in names:
            half = registry.backend(cached).build(w_masked, bias, x_example, where)
            return _picked(half, f"auto: {cached}, cached in {path}")
        # float64 of up to CHECK_ROWS random output rows: a layout fault shows in any of them,
        # and the reference of a 32768-wide weight in float64 would take 8 GB
        gen = torch.Generator(device=w_masked.device).manual_seed(n_out * 31 + batch)
        rows = torch.randperm(n_out, device=w_masked.device, generator=gen)[:CHECK_ROWS]
        ref = x_example.double() @ w_masked[rows].double().t()
        if bias is not None:
            ref += bias[rows].double()
        u = UNIT_ROUNDOFF[w_masked.dtype]
        times: dict[str, float] = {}
        verdicts: list[str] = []
        built: dict[str, Half] = {}
        for b in cands:
            try:
                half = b.build(w_masked, bias, x_example, where)
                out = torch.empty(batch, n_out, dtype=w_masked.dtype, device=w_masked.device)
                out.fill_(float("nan"))
                err = rel_error(half.mm_into(x_example, out)[:, rows], ref)
                if not err <= u:
                    verdicts.append(f"{b.name} refused: rel error {err:.2e} > {u:.1e}")
                    continue
                times[b.name] = graph_ms(lambda h=half, o=out: h.mm_into(x_example, o))
                built[b.name] = half
            except (CellSpecError, RuntimeError) as e:  # a candidate that cannot run this shape
                verdicts.append(f"{b.name} not run: {str(e).splitlines()[0][:160]}")
        if not times:
            raise CellSpecError(
                f"{where}: no candidate of the {self.name} backend passed: {verdicts}"
            )
        best = min(times, key=lambda n: times[n])
        if path is not None:
            alg_cache.store(path, k, best)
        timed = ", ".join(
            f"{n} {ms:.4f} ms" for n, ms in sorted(times.items(), key=lambda kv: kv[1])
        )
        source = f"auto: {best} fastest in CUDA graphs of {timed}" + (
            f"; {'; '.join(verdicts)}" if verdicts else ""
        )
        return _picked(built[best], source)


def _picked(half: Half, source: str) -> Half:
    """The winner's half with a record that keeps its kernel fields and says how it was picked."""
    rec = half.record
    half.record = HalfRecord(rec.backend, rec.alg_id, source, rec.search_error, rec.padded_batch)
    return half
