"""Top-level task functions the unit tests send to rank pools (they must pickle under spawn)."""

import os
import time

import torch
import torch.distributed as dist

from measure.matrix import CellSpec
from measure.runner import build


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


def forward_output(ctx, cell_dict, seed):
    """Build the cell's method on this rank and return (X, W, b, Y) as float64 CPU tensors."""
    cell = CellSpec.from_dict(cell_dict)
    layer, x, args, _ = build(ctx, cell, seed, "auto")
    y = layer.forward(layer.local_input(x))
    b = None if args.bias is None else args.bias.double()
    return x.double(), args.weight.double(), b, y.double()
