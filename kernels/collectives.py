"""The two collectives the methods use, as small named functions over an explicit group.

A group of size 1 (or None) skips the collective, as Megatron-core's mappings do.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def group_size(group) -> int:
    return 1 if group is None else dist.get_world_size(group)


def all_reduce_sum(t: torch.Tensor, group) -> torch.Tensor:
    """Sum `t` in place over the group's ranks and return it."""
    if group_size(group) > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM, group=group)
    return t


def all_gather_columns(local: torch.Tensor, out: torch.Tensor, staging: torch.Tensor, group):
    """Gather each rank's column block (B x n) into `out` (B x ws*n) through `staging` (ws x B x n).

    gloo has no all_gather_into_tensor for every build, so the gather lands in a list of views of
    one contiguous staging buffer, then one strided copy lays the blocks side by side.
    """
    ws = group_size(group)
    if ws == 1:
        return out.copy_(local)
    dist.all_gather(list(staging.unbind(0)), local, group=group)
    out.view(out.shape[0], ws, -1).copy_(staging.permute(1, 0, 2))
    return out


def all_gather_to_columns(
    local: torch.Tensor, out: torch.Tensor, staging: torch.Tensor, columns: torch.Tensor, group
):
    """Gather each rank's block (B x n) and scatter it to its columns of `out` (B x ws*n).

    `columns` lists rank 0's columns, then rank 1's, ...: an interleaved shard's layout.
    """
    if group_size(group) > 1:
        dist.all_gather(list(staging.unbind(0)), local, group=group)
    else:
        staging[0].copy_(local)
    out.index_copy_(1, columns, staging.permute(1, 0, 2).reshape(out.shape[0], -1))
    return out
