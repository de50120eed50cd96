"""What a task sees on its rank (`RankContext`), and how a rank joins its process group."""

from __future__ import annotations

import datetime
import socket
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class RankContext:
    """What a task sees on its rank: identity, device, the explicit group, and how it was made."""

    rank: int
    world_size: int
    device: torch.device
    backend: str  # "gloo" or "nccl"
    group: dist.ProcessGroup | None  # None for world_size 1
    shared_device: bool  # several ranks on one GPU: correct, but timings not representative
    generation: int = 0  # how many times this world size's pool was (re)started in this run

    def barrier(self):
        if self.world_size > 1:
            dist.barrier(group=self.group)

    def agree_max(self, *values: float) -> list[float]:
        """Each value's maximum over the ranks. Every loop whose length a rank decides from its
        own clock (samples, warm-up, energy windows) must decide from these, or a rank that
        stops one collective early leaves the others waiting in it."""
        if self.world_size == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.group)
        return t.tolist()


def pick_backend(world_size: int, device_type: str) -> tuple[str, bool]:
    """(backend, shared_device): NCCL with one rank per GPU, else gloo (on CPU or one GPU)."""
    if device_type == "cuda":
        if world_size <= torch.cuda.device_count() and world_size > 1:
            return "nccl", False
        return "gloo", world_size > 1
    return "gloo", False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def join_group(rank, world_size, port, backend, device_type, timeouts, shared):
    if device_type == "cuda":
        device = torch.device("cuda", 0 if shared else rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
        # One intra-op thread per rank: each rank stands for one device, so a one-rank cell
        # gets the compute a rank of a two-rank cell gets; and a GEMM split over two OpenMP
        # threads waits at every parallel region for a thread the OS has descheduled, so any
        # other process on a 2-core machine turned a 40 us median into 20 ms (seen under load).
        torch.set_num_threads(1)
    group = None
    if world_size > 1:
        dist.init_process_group(
            backend,
            init_method=f"tcp://127.0.0.1:{port}",
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(seconds=timeouts.collective_s),
            device_id=device if backend == "nccl" else None,
        )
        group = dist.group.WORLD
        # First collective outside any timed region: NCCL's first call costs hundreds of ms.
        warm = torch.ones(1, device=device)
        dist.all_reduce(warm, group=group)
    return RankContext(rank, world_size, device, backend, group, shared)


def collectives_issued(ctx) -> int:
    """How many collectives this rank has issued on its group: equal counts on every rank mean
    none is left pending after a failed task."""
    return 0 if ctx is None or ctx.group is None else ctx.group._get_sequence_number_for_group()
