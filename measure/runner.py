"""What a cell does on each rank: build the method, check it, time it, meter it.

These are the tasks the rank pool runs (top-level functions, so they pickle under spawn). Each
returns plain data; the pytest cell asserts on it and writes the record.
"""

from __future__ import annotations

import time

import torch

from common.dtypes import DTYPES
from common.errors import MeterUnavailable
from kernels.masks import make_mask_pair
from kernels.methods import METHODS, BuildArgs
from kernels.sparse24 import check_shape, default_backend
from measure import checks, energy, nvml
from measure.matrix import CellSpec
from measure.timing import Sampler, StoppingRule, capture_graph
from measure.workloads import make_inputs


def resolve_backend(method: str, device_type: str, requested: str) -> str | None:
    if not METHODS[method].semi_structured:
        return None
    if device_type != "cuda":
        return "emulated"
    return default_backend(torch.device("cuda")) if requested == "auto" else requested


def preflight(cell: CellSpec, device_type: str, requested_backend: str = "auto") -> None:
    """Rules that depend on the machine; raised before any rank starts work on the cell."""
    backend = resolve_backend(cell.method, device_type, requested_backend)
    if backend and backend != "emulated":
        check_shape(cell.N_out, cell.N, cell.B, DTYPES[cell.dtype], backend, cell.name)


def _memory_reset(ctx):
    if ctx.device.type == "cuda":
        torch.cuda.synchronize(ctx.device)
        torch.cuda.reset_peak_memory_stats(ctx.device)


def _memory_peak(ctx):
    if ctx.device.type == "cuda":
        torch.cuda.synchronize(ctx.device)
        return torch.cuda.max_memory_allocated(ctx.device)
    return None


def build(ctx, cell: CellSpec, seed: int, requested_backend: str):
    """Inputs, masks and this rank's method; identical X and W on every rank from one seed."""
    dtype = DTYPES[cell.dtype]
    x, w, b = _make(ctx, cell, seed, dtype)
    masks = None
    if cell.mask:
        g = torch.Generator(device=ctx.device)
        g.manual_seed(seed + 1)
        masks = make_mask_pair(cell.mask, w, g)
    backend = resolve_backend(cell.method, ctx.device.type, requested_backend)
    args = BuildArgs(w, b, masks, cell.mask, cell.B, ctx.group, backend)
    _memory_reset(ctx)
    layer = METHODS[cell.method](args)
    build_peak = _memory_peak(ctx)
    return layer, x, args, build_peak


def _make(ctx, cell, seed, dtype):
    return make_inputs(
        cell.workload, cell.B, cell.N, cell.N_out, cell.bias, dtype, ctx.device, seed
    )


def check(ctx, cell: CellSpec, layer, x, args) -> dict:
    """Poison `out`, run one forward, compare with float64; figures (asserted by the cell)."""
    x_local = layer.local_input(x)
    layer.out.fill_(float("nan"))
    if hasattr(layer, "local"):
        layer.local.fill_(float("nan"))
    y = layer.forward(x_local)
    if ctx.device.type == "cuda":
        torch.cuda.synchronize(ctx.device)
    ref, absref = checks.reference(x, METHODS[cell.method].effective_weight(args), args.bias)
    bound = checks.bounds(DTYPES[cell.dtype], cell.N, layer.collective, ctx.world_size)
    return checks.error_figures(y, ref, absref, bound)


def _base(ctx, cell, layer, build_peak, seed):
    return {
        "rank": ctx.rank,
        "device": str(ctx.device),
        "process_group_backend": ctx.backend if ctx.world_size > 1 else None,
        "shared_device": ctx.shared_device,
        "pool_generation": ctx.generation,
        "kernel_backend": getattr(getattr(layer, "half", None), "backend", None) or "dense",
        "emulated": ctx.device.type != "cuda",
        "alg_id": layer.alg_id,
        "alg_source": getattr(getattr(layer, "half", None), "alg_source", None),
        "alg_search_error": getattr(getattr(layer, "half", None), "search_error", None),
        "weight_bytes": layer.weight_bytes,
        "peak_build_bytes": build_peak,
        "seed": seed,
    }


def run_phase0(ctx, cell_dict: dict, seed: int, options: dict) -> dict:
    cell = CellSpec.from_dict(cell_dict)
    layer, x, args, build_peak = build(ctx, cell, seed, options.get("backend", "auto"))
    return {**_base(ctx, cell, layer, build_peak, seed), "errors": check(ctx, cell, layer, x, args)}


def run_phase1(ctx, cell_dict: dict, seed: int, options: dict) -> dict:
    """Check, then time forward (primary mode, other mode, cold), compute and collective alone,
    then meter energy over a window filled by repeating the primary forward."""
    cell = CellSpec.from_dict(cell_dict)
    layer, x, args, build_peak = build(ctx, cell, seed, options.get("backend", "auto"))
    result = _base(ctx, cell, layer, build_peak, seed)
    result["errors"] = check(ctx, cell, layer, x, args)
    result["state_start"] = nvml.state(ctx.device) if ctx.device.type == "cuda" else {}
    rule = StoppingRule(**options["rule"])
    sampler = Sampler(ctx, rule, **options["sampling"])
    xl = layer.local_input(x)
    cuda = ctx.device.type == "cuda"
    graph_ok = cuda and (ctx.world_size == 1 or ctx.backend == "nccl")
    modes = (["graph", "eager"] if graph_ok else ["eager"]) if cuda else ["host"]
    if options.get("mode") == "eager" and "eager" in modes:
        modes.remove("eager")
        modes.insert(0, "eager")
    timing = {}
    _memory_reset(ctx)
    timing["forward"] = sampler.measure(lambda: layer.forward(xl), modes[0]).as_dict()
    result["peak_forward_bytes"] = _memory_peak(ctx)
    for mode in modes[1:]:
        timing[f"forward_{mode}"] = sampler.measure(lambda: layer.forward(xl), mode).as_dict()
    timing["forward_cold"] = sampler.measure(lambda: layer.forward(xl), modes[0], "cold").as_dict()
    if layer.collective and ctx.world_size > 1:
        timing["compute"] = sampler.measure(lambda: layer.compute(xl), modes[0]).as_dict()
        partial = layer.compute(xl)
        timing["collective"] = sampler.measure(lambda: layer.collect(partial), modes[0]).as_dict()
    result["timing"] = timing
    result["modes"] = modes
    result["energy"] = meter_energy(ctx, layer, xl, modes[0], options, cell.B)
    result["state_end"] = nvml.state(ctx.device) if cuda else {}
    return result


def meter_energy(ctx, layer, xl, mode, options, tokens) -> dict:
    """Idle baseline, then a window of back-to-back forwards lasting at least window_s."""
    if not options.get("energy", True):
        return {"energy": "off", "reason": "--bs-energy off"}
    try:
        meter = energy.make_meter(ctx.device)
    except MeterUnavailable as e:
        return {"energy": "unavailable", "reason": str(e)}
    run = lambda: layer.forward(xl)  # noqa: E731
    if mode == "graph":
        run = capture_graph(run, ctx.device).replay
    ctx.barrier()
    idle = energy.idle_power(meter, options["idle_s"])
    ctx.barrier()
    meter.begin_window("forward")
    forwards = fill_window(ctx, run, options["energy_window_s"])
    window = meter.end_window("forward")
    fig = energy.energy_figures(window, idle, forwards, tokens)
    fig["series"] = window.samples
    ctx.barrier()
    return fig


def fill_window(ctx, run, window_s: float) -> int:
    """Back-to-back forwards in doubling chunks until window_s has passed on every rank;
    returns how many ran. The ranks agree after each chunk, so all run the same number."""
    forwards, chunk, t0 = 0, 1, time.perf_counter()
    while True:
        for _ in range(chunk):
            run()
        forwards += chunk
        if ctx.device.type == "cuda":
            torch.cuda.synchronize(ctx.device)  # keep the host from queueing far past the window
        (elapsed,) = ctx.agree_max(time.perf_counter() - t0)
        if elapsed >= window_s:
            return forwards
        chunk = min(chunk * 2, 1024)


def ceilings_task(ctx) -> dict:
    from measure.ceilings import measure_ceilings

    return measure_ceilings(ctx)


def environment_task(ctx) -> dict:
    from measure.environment import describe

    return describe(ctx.device)
