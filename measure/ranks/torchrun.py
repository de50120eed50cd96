"""Under torchrun the processes already exist: `TorchrunGroup` joins the group from the
environment and runs each task in place on every rank; results are all-gathered, and only rank
0 reports."""

from __future__ import annotations

import datetime
import os
import traceback
from typing import Any

import torch
import torch.distributed as dist

from common.errors import RankError
from measure.ranks.context import RankContext
from measure.ranks.failures import Timeouts, failure_kind


class TorchrunGroup:
    """The group torchrun started: tasks run in this process; results gathered to every rank."""

    def __init__(self, device_type: str, timeouts: Timeouts | None = None):
        self.timeouts = timeouts or Timeouts()
        self.world_size = int(os.environ["WORLD_SIZE"])
        self.rank = int(os.environ["RANK"])
        local = int(os.environ.get("LOCAL_RANK", 0))
        shared = device_type == "cuda" and torch.cuda.device_count() < int(
            os.environ.get("LOCAL_WORLD_SIZE", self.world_size)
        )
        self.backend = "nccl" if device_type == "cuda" and not shared else "gloo"
        self.shared_device = shared
        self.generation = 0
        self.alive = True
        if device_type == "cuda":
            device = torch.device("cuda", 0 if shared else local)
            torch.cuda.set_device(device)
        else:
            device = torch.device("cpu")
        if not dist.is_initialized():
            dist.init_process_group(
                self.backend, timeout=datetime.timedelta(seconds=self.timeouts.collective_s)
            )
        self.ctx = RankContext(
            self.rank, self.world_size, device, self.backend, dist.group.WORLD, shared
        )

    def run(self, fn, *args) -> list:
        """fn(ctx, *args) on this rank; every rank's result, or RankError naming the first rank
        that raised (torchrun itself ends the job when a process dies or the group times out)."""
        try:
            mine = (True, fn(self.ctx, *args))
        except BaseException:
            mine = (False, traceback.format_exc())
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, mine)
        for rank, (ok, payload) in enumerate(gathered):
            if not ok:
                raise RankError(
                    f"{fn.__name__}: rank {rank} of world_size {self.world_size} raised:\n"
                    f"{payload}",
                    rank=rank,
                    kind=failure_kind(payload),
                )
        return [payload for _, payload in gathered]

    run_setup = run  # no per-call bound here: the group's collective timeout is the bound

    def close(self, force=False):
        pass


def launched_by_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or (
        "RANK" in os.environ and "WORLD_SIZE" in os.environ and "MASTER_ADDR" in os.environ
    )
