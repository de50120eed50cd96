"""Top-level task functions the unit tests send to rank pools (they must pickle under spawn)."""

import dataclasses
import os
import signal
import time

import torch
import torch.distributed as dist

from common.cell import CellSpec
from measure.cells.build import build


def rank_and_pid(ctx):
    return ctx.rank, os.getpid()


def all_reduce_rank_plus_one(ctx):
    t = torch.tensor([float(ctx.rank + 1)])
    dist.all_reduce(t, group=ctx.group)
    return t.item()


def raise_on_rank1(ctx):
    if ctx.rank == 1:
        raise ValueError("planted failure on rank 1")
    dist.barrier(group=ctx.group)  # rank 0 would wait here forever without the pool's bound
    return "unreachable"


def sleep_on_rank0(ctx, seconds):
    if ctx.rank == 0:
        time.sleep(seconds)
    return ctx.rank


def die_in_a_collective(ctx, rank, how):
    """`rank` dies (SIGKILL, or os._exit(3)) while the others wait for it in an all-reduce, so
    theirs fails with a connection error that must not be blamed."""
    if ctx.rank == rank:
        if how == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(3)
    dist.all_reduce(torch.ones(1), group=ctx.group)
    return "unreachable"


def raise_on_every_rank(ctx, message):
    """An error before any collective on every rank (a mask error in every cell, say)."""
    raise ValueError(f"{message} on rank {ctx.rank}")


def out_of_memory_on_every_rank(ctx):
    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (planted)")


def raise_after_a_pending_collective_on_rank0(ctx):
    """Every rank raises, but rank 0 first issued an all-reduce that rank 1 never joins: both
    answer, yet the group is not reusable (the next task's all-reduce would meet this one)."""
    if ctx.rank == 0:
        dist.all_reduce(torch.ones(1), group=ctx.group, async_op=True)
    raise ValueError(f"planted failure on rank {ctx.rank}")


def wait_in_all_reduce_on_rank0(ctx):
    """Rank 0 waits in an all-reduce that rank 1 (which returns) never joins: a hang."""
    if ctx.rank == 0:
        dist.all_reduce(torch.ones(1), group=ctx.group)
    return ctx.rank


def forward_output(ctx, cell_dict, seed):
    """Build the cell's method on this rank and return (X, W, b, Y) as float64 CPU tensors."""
    cell = CellSpec.from_dict(cell_dict)
    built = build(ctx, cell, seed, "auto")
    layer, x, args = built.layer, built.x, built.args
    y = layer.forward(layer.local_input(x))
    b = None if args.bias is None else args.bias.double()
    return x.double(), args.weight.double(), b, y.double()


def measure_uneven_sleeps(ctx):
    """Rank 1 sleeps twice as long per forward: both ranks must stop on the same sample, and
    the samples must be rank 1's (the slowest)."""
    from measure.timing.policy import TimingPolicy
    from measure.timing.sampler import Sampler

    policy = TimingPolicy(min_samples=4, min_time_s=0.01, max_time_s=2, max_noise=1.0)
    per = 0.001 * (1 + ctx.rank)
    stats = Sampler(ctx, policy.updated(sample_s=0.004, warmup_s=0.02)).measure(
        lambda: time.sleep(per), "host"
    )
    return dataclasses.asdict(stats)


def fill_uneven_window(ctx):
    """Forwards that all-reduce, rank 1 entering the window 30 ms late (its clock starts later):
    the loop must end on the same forward on both ranks, or the rank that stops first leaves
    the other waiting in all_reduce."""
    from measure.machine.energy import fill_window

    t = torch.ones(4)

    def forward():
        time.sleep(0.001)
        dist.all_reduce(t, group=ctx.group)

    time.sleep(0.03 * ctx.rank)
    return fill_window(ctx, forward, 0.05), ctx.agree_max(float(ctx.rank), -float(ctx.rank))


def backward_figures(ctx, cell_dict, seed, scale_rank=None, require_sparse=False, backend="auto"):
    """Build the cell, prepare its backward, check grad_X against float64; the figures and
    the backend. `scale_rank` plants a wrong backward: that rank's grad_X times 1.01."""
    from common.dtypes import DTYPES
    from measure.checks.training import check_backward, grad_output

    cell = CellSpec.from_dict(cell_dict)
    built = build(ctx, cell, seed, backend)
    layer, args = built.layer, built.args
    args.require_sparse_backward = require_sparse
    layer.prepare_backward(args)
    if scale_rank == ctx.rank:
        plain = layer.collect_backward
        layer.collect_backward = lambda p: plain(p).mul_(1.01)
    gy = grad_output(cell.B, cell.N_out, DTYPES[cell.dtype], ctx.device, seed)
    return check_backward(layer, type(layer).effective_weight(args), gy, ctx.world_size)


def train_figures(
    ctx, cell_dict, seed, optimizer, variant, steps=3, stale=False, chunk_rows=None, backend="auto"
):
    """Train the cell's method `steps` steps and compare with the float64 reference; `stale`
    plants a T1 that skips the re-compression after the optimizer step; `chunk_rows` sets the
    reference's chunk of rows (None: its default)."""
    from kernels.training import TrainConfig, TrainState
    from measure.checks.training import learning_rate, reference_for, training_figures

    cell = CellSpec.from_dict(cell_dict)
    built = build(ctx, cell, seed, backend)
    layer, x, args = built.layer, built.x, built.args
    g = torch.Generator(device=ctx.device).manual_seed(seed + 3)
    target = torch.randn(cell.B, cell.N_out, generator=g, device=ctx.device)
    cfg = TrainConfig(optimizer, learning_rate(optimizer, x, args.weight), variant)
    state = TrainState(layer, args, cfg, target, record_masks=True)
    if stale:
        state.compress = lambda: None
    xl = layer.local_input(x)
    losses = [state.step(xl).item() for _ in range(steps)]
    ref, weights = reference_for(state, args, x, target, steps, ctx.world_size, chunk_rows)
    return training_figures(weights, ref, losses)


def run_drift_block(ctx, cell_dict, seed, steps, scale=1.0):
    """Run the drift block `steps` times; `scale` plants a wrong layer (output times scale)."""
    from kernels.training import drift_run
    from measure.checks.training import drift_figures

    cell = CellSpec.from_dict(cell_dict)
    built = build(ctx, cell, seed, "auto")
    layer, x, args = built.layer, built.x, built.args
    if scale != 1.0:
        plain = layer.forward
        layer.forward = lambda xl: plain(xl) * scale
    traj = drift_run(layer, x, steps)
    w_eff = type(layer).effective_weight(args)
    return drift_figures(traj, x, w_eff, layer.collective, ctx.world_size)
