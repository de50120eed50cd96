"""The run's state and its one path for every cell: pools, ceilings, records, the summary.

`BenchSession.run(cell)` sends the cell's phase task to the cell's ranks, turns what comes back
into a CellResult (passed, failed its check, or a rank error), writes the cell's record (pass
or fail), adds it to the summary, and raises unless it passed: a cell function only ever sees
a passed result, so a failed check's timing can never reach pytest-benchmark.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch.distributed as dist

from common.cell import CellSpec
from common.errors import BenchError, CorrectnessError, RankError
from common.schema.codec import to_json
from kernels.registry import spec
from measure.cells.matrix import Matrix, Suite
from measure.machine.ceilings import measure_ceilings
from measure.machine.environment import describe_rank
from measure.phases import PHASES, TaskOptions
from measure.plugin.replay import DEVICE_CLOCK
from measure.plugin.summary import Summary
from measure.ranks.pool import PoolRegistry
from measure.records import figures
from measure.records.results import CellResult, RankResult
from measure.records.writer import RunRecords


@dataclass
class BenchSession:
    matrix: Matrix
    suite: Suite
    seed: int
    device_type: str
    options: TaskOptions
    records: RunRecords | None
    registry_factory: Callable[[], PoolRegistry]
    summary: Summary = field(default_factory=Summary)
    _registry: PoolRegistry | None = None
    _ceilings: dict = field(default_factory=dict)
    _environments: dict = field(default_factory=dict)
    _seed_agreed: bool = False

    def __post_init__(self):
        if self.records is not None:
            self.records.update_run(
                suite=self.suite.name,
                seed=self.seed,
                device_type=self.device_type,
                timing=self.options.policy.as_dict(),
                options={
                    "backend": self.options.backend,
                    "mode": self.options.mode,
                    "energy": self.options.energy,
                },
            )

    @property
    def registry(self):
        if self._registry is None:
            self._registry = self.registry_factory()
        return self._registry

    def base_seed(self) -> int:
        """The run's base seed, the same on every rank: under torchrun each rank's pytest drew
        its own, so rank 0's is broadcast once (records and cells then agree)."""
        if not self._seed_agreed:
            if self.registry.torchrun is not None:
                box = [self.seed]
                dist.broadcast_object_list(box, src=0)
                self.seed = box[0]
            self._seed_agreed = True
        return self.seed

    def cell_seed(self, cell: CellSpec) -> int:
        """A seed per cell, derived from the run's base seed and the cell id (recorded)."""
        return zlib.crc32(f"{self.base_seed()}:{cell.id}".encode()) & 0x7FFFFFFF

    def pool(self, world_size: int):
        pool = self.registry.get(world_size)
        key = (world_size, pool.generation)
        if key not in self._environments:
            self._environments[key] = pool.run_setup(describe_rank)
            if self.records is not None:
                self.records.update_run(environment={f"ws{world_size}": self._environments[key]})
        return pool

    def environment(self, pool) -> dict:
        """Rank 0's environment (GPU, driver, versions, commit) for this pool."""
        return self._environments[(pool.world_size, pool.generation)][0]

    def ceilings(self, pool) -> dict:
        """Measured once per pool (per world size and start), shared by every cell's floor."""
        key = (pool.world_size, pool.generation)
        if key not in self._ceilings:
            per_rank = pool.run_setup(measure_ceilings)
            merged = {
                k: min(r[k] for r in per_rank)
                if isinstance(per_rank[0][k], float)
                else per_rank[0][k]
                for k in per_rank[0]
            }
            self._ceilings[key] = merged
            if self.records is not None:
                self.records.update_run(
                    ceilings={
                        f"ws{pool.world_size}": {"min_over_ranks": merged, "per_rank": per_rank}
                    }
                )
        return self._ceilings[key]

    def run(self, cell: CellSpec) -> CellResult:
        """Run the cell's phase on its ranks, record it, and return it if it passed; raise
        (after recording) if its check failed or a rank failed."""
        result = self._outcome(cell)
        if result.passed and PHASES[cell.phase].timed:
            pool = self.pool(cell.world_size)
            result.figures = figures.cell_figures(
                cell, result.ranks, self.ceilings(pool), self.environment(pool)
            )
        self.summary.add(result)
        if self.records is not None:
            self.records.write_cell(result)
        if result.status == "failed":
            raise CorrectnessError(result.failure)
        if result.status == "error":
            raise RankError(result.failure or f"{cell.name}: a rank failed")
        return result

    def run_timed(self, cell: CellSpec, benchmark) -> CellResult:
        """Run a timed cell and, only if it passed, hand its primary samples (device seconds)
        and figures to pytest-benchmark through the device clock."""
        result = self.run(cell)
        published = result.ranks[0].forward
        if published is None:
            raise BenchError(f"{cell.name}: passed but holds no timing to publish")
        benchmark.group = f"{cell.phase}-N{cell.N}x{cell.N_out}-B{cell.B}-{cell.dtype}"
        benchmark.extra_info.update(to_json(result.figures))
        DEVICE_CLOCK.replay(benchmark, published.samples)
        return result

    def _outcome(self, cell: CellSpec) -> CellResult:
        phase = PHASES[cell.phase]
        try:
            pool = self.pool(cell.world_size)
            if phase.timed:
                self.ceilings(pool)
            ranks: list[RankResult] = pool.run(
                phase.task, cell.as_dict(), spec(cell.method), self.cell_seed(cell), self.options
            )
        except RankError as e:
            return CellResult(
                cell,
                "error",
                failure=f"{cell.name}: {e}",
                failure_kind=getattr(e, "kind", None) or "rank_error",
                failed_rank=getattr(e, "rank", None),
                stacks=getattr(e, "stacks", None),
            )
        failed = [r for r in ranks if r.failure is not None]
        if failed:
            return CellResult(
                cell,
                "failed",
                ranks,
                failure=failed[0].failure,
                failure_kind="wrong_result",
                failed_rank=failed[0].rank,
            )
        return CellResult(cell, "passed", ranks)

    def close(
        self, exitstatus: int | None = None, interrupted: bool = False, signal: str | None = None
    ):
        """End the run: its pools stopped (killed at once when interrupted: a rank busy with
        the abandoned cell would not read a stop request), run.json closed."""
        if self._registry is not None:
            self._registry.close(force=interrupted)
        if self.records is not None:
            self.records.finish(exitstatus, interrupted, signal)
